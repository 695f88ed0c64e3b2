//! Example service for the Service Mobility API: an HTTP progressive-download
//! server whose per-UE context (file name and byte offset of each download)
//! moves with the UE from one edge node to the next.
//!
//! * `GET /file/<name>` serves a synthetic file of `--file-size` octets
//!   (`<name>`: 1 to 64 of `A-Z a-z 0-9 . _ -`), paced at `--rate`
//!   octets per second per download. `Range: bytes=N-` and `bytes=N-M`
//!   are honoured (206). Every response closes the connection.
//! * Content: octet `i` of file `name` is octet `i % 8` (little-endian) of
//!   `splitmix64(seed ^ fnv1a64(name) ^ (i / 8) * 0x9E3779B97F4A7C15)`, so
//!   two instances with the same `--seed` and `--file-size` serve the same
//!   octets and any range can be produced directly.
//! * With `--api-socket`, the service registers with the MIH-User's API
//!   (`--service-id`, `--fpt`) and registers each downloading UE (its
//!   address and the download's TCP 4-tuple).
//!   - `ExportRequested(ue)`: the UE's downloads are frozen (no octet is
//!     written after the answer) and the context lists, per download, the
//!     4-tuple, the file name, the offset of the next octet to send and the
//!     end of the range (format below).
//!   - `ImportRequested(ue)`: the context is checked (same file size and
//!     seed) and kept; when that UE next asks for the same file without a
//!     `Range`, the download continues from the imported offset (206 with
//!     `Content-Range` and `X-Resumed-From`).
//!   - With `--handoff-socket` (the MIH-User's `sessions.handoff_socket`,
//!     `sessions.mode = "tcp_repair"`), the TCP connection itself moves:
//!     at the export each download stops writing and its socket is handed
//!     to the MIH-User (`GIVE`), which freezes it with TCP_REPAIR; a socket
//!     that comes back (`TAKE`: rebuilt at the destination, or restored at
//!     the source after a rollback) continues the body from the offset,
//!     with no new HTTP header. The client sees one uninterrupted response.
//!   - `MigrationOutcome`: at the source, committed closes the UE's
//!     downloads, rolled back resumes them; at the destination, rolled back
//!     drops the imported context.
//!   - When the API connection closes (the MIH-User restarted), the service
//!     reconnects, registers again with the UEs it serves, and goes on; a
//!     download whose socket was handed over stays parked until the socket
//!     comes back (`TAKE`: the restarted MIH-User restored it from its
//!     session journal) or an outcome says the UE left.
//!
//! The context's format (what moves with the UE) is in `context.rs`.
//!
//! The source is split by concern: `http.rs` (serving), `service.rs` (the
//! downloads), `context.rs`, `mobility.rs` (the Service Mobility API) and
//! `handoff.rs` (the socket hand-off); `mih-user/testbed/README.md`, "Shape
//! of the code", says what each holds.

mod context;
mod handoff;
mod http;
mod mobility;
mod service;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use clap::Parser;
use testbed::svc_kit::{self, ServiceArgs};

use service::{Service, Shared, Tables};

/// HTTP progressive-download example service for the Service Mobility API.
///
/// Serves GET /file/NAME (NAME of 1 to 64 of A-Z a-z 0-9 . _ -) with
/// synthetic content, Range supported, at a per-download rate limit, and
/// moves each UE's download offsets to another node through the MIH-User's
/// Service Mobility API (--api-socket). Octet i of file NAME is octet
/// i % 8 (little-endian) of splitmix64(seed ^ fnv1a64(name) ^ (i / 8) *
/// 0x9E3779B97F4A7C15). The first line on stdout is "listening on
/// http://ADDR"; logs go to stderr (RUST_LOG, default info).
#[derive(Parser, Debug, Clone)]
// `--version` says "mih-user", as it did when this binary was part of that package.
#[command(name = "mih-user", version)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) svc: ServiceArgs<Http>,
    /// Size of every synthetic file, in octets.
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    pub(crate) file_size: u64,
    /// Seed of the synthetic content (instances that share a seed and size
    /// serve identical files).
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Per-download rate limit in octets per second (0: unlimited).
    #[arg(long, default_value_t = 1024 * 1024)]
    pub(crate) rate: u64,
    /// Octets per write.
    #[arg(long, default_value_t = 16 * 1024, value_parser = clap::value_parser!(u64).range(1..=1024 * 1024))]
    pub(crate) chunk: u64,
    /// Most simultaneous HTTP connections.
    #[arg(long, default_value_t = 256)]
    pub(crate) max_connections: usize,
}

// `--listen`, `--service-id`, `--fpt` of the HTTP service.
testbed::service_defaults!(Http, "127.0.0.1:8080", "http-download", "0xFF01");

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let make = |kit| -> Shared {
        Arc::new(Service {
            kit,
            args: args.clone(),
            tables: Mutex::new(Tables::default()),
            next_id: AtomicU64::new(1),
        })
    };
    svc_kit::run_service(
        &args.svc,
        "http",
        args.max_connections,
        make,
        http::handle_http,
    )
    .await
}

fn main() {
    let args = Args::parse();
    svc_kit::run_main("example-http-service", || run(args));
}
