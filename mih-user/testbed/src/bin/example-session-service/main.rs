//! Example service for the Service Mobility API: an interactive
//! request/response TCP service (a game or chat server, say) with an
//! optional large per-UE state; the state and every connection's progress
//! move with the UE from one edge node to the next.
//!
//! * The protocol (requests that write into and read from the UE's state,
//!   responses in order, pipelining) is `testbed::session`'s; a client
//!   checks it with `testbed::session::SessionChecker`.
//! * Per UE: a state of `--state-bytes` octets, all zero when the UE first
//!   connects, kept while the UE has connections here or an imported
//!   context waits. Per connection: the seq expected next, the octets of a
//!   request not yet complete (input) and of responses not yet written
//!   (output).
//! * With `--api-socket`, the service registers with the MIH-User's API
//!   (`--service-id`, `--fpt`) and registers each UE with its connections.
//!   - `ExportRequested(ue)`: each connection of the UE stops reading and
//!     writing at once (its partial input and pending output go into the
//!     context, nothing waits for a request to complete), gives its socket
//!     to the MIH-User with `--handoff-socket`, and the context is the
//!     state with every connection's (4-tuple, next seq, input, output)
//!     (format in `context.rs`).
//!   - `ImportRequested(ue)`: the context is checked (same state size, else
//!     refused) and kept; a socket that comes back (`TAKE`) with a 4-tuple
//!     of the context first writes the pending output, then goes on
//!     parsing the pending input. A new connection of the UE works on the
//!     imported state.
//!   - `MigrationOutcome`: at the source, committed drops the UE's state
//!     and parked connections, rolled back resumes them (sockets handed
//!     off come back through `TAKE`); at the destination, rolled back drops
//!     the imported context.
//!   - After an MIH-User restart the service connects and registers again
//!     (`testbed::svc_kit`).
//!
//! The source: `service.rs` (the connections and the states), `context.rs`
//! (what moves), `mobility.rs` (the API events); the API connection and
//! the socket hand-off are `testbed::svc_kit`'s, shared with
//! `example-http-service`.

mod context;
mod mobility;
mod service;

use std::sync::Arc;

use clap::Parser;
use testbed::session::MAX_STATE_BYTES;
use testbed::svc_kit::{self, ServiceArgs};

use service::Service;

/// Interactive request/response example service for the Service Mobility
/// API.
///
/// Requests ("RQ" | seq u32 | write_off u32 | write_len u16 | data |
/// read_off u32 | read_len u16 | pad_len u16 | pad) write into the UE's
/// state and read from it; responses ("RS" | seq u32 | status u8 | read
/// data | pad_len u16 | pad reversed) come in order. The per-UE state and
/// each connection's progress move to another node through the MIH-User's
/// Service Mobility API (--api-socket), the TCP connections too with
/// --handoff-socket. The first line on stdout is "listening on
/// tcp://ADDR"; logs go to stderr (RUST_LOG, default info).
#[derive(Parser, Debug, Clone)]
#[command(name = "example-session-service", version)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) svc: ServiceArgs<Session>,
    /// Size of each UE's state in octets (0: a pure interactive echo; at
    /// most 16 MiB). Contexts travel in API frames of at most 4 MiB by
    /// default.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=MAX_STATE_BYTES as i64))]
    pub(crate) state_bytes: u32,
    /// Most simultaneous TCP connections.
    #[arg(long, default_value_t = 4096)]
    pub(crate) max_connections: usize,
}

// `--listen`, `--service-id`, `--fpt` of the session service.
testbed::service_defaults!(Session, "127.0.0.1:8081", "session", "0xFF11");

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let make = |kit| Arc::new(Service::new(kit, args.state_bytes));
    svc_kit::run_service(&args.svc, "tcp", args.max_connections, make, service::serve).await
}

fn main() {
    let args = Args::parse();
    svc_kit::run_main("example-session-service", || run(args));
}
