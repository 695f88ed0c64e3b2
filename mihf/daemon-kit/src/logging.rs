//! tracing setup: an env filter (`RUST_LOG`, default `info`) and text or
//! JSON lines on stderr.
//!
//! Peer-supplied text (MIHF IDs, names, reasons) reaches the log through
//! the escaping [`Display`](std::fmt::Display) of
//! `mihf::wire::MihfId` and `mihf::wire::Escaped`:
//! no newline, escape sequence or other control character of a peer gets
//! into a text line, and JSON lines are valid JSON either way.

use std::io::IsTerminal;

use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;
pub use tracing_subscriber::EnvFilter;

/// Install the global subscriber. `json` selects JSON lines. Colours only
/// when stderr is a terminal.
pub fn init(json: bool, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let ansi = std::io::stderr().is_terminal();
    let _ = subscriber(json, filter, ansi, std::io::stderr).try_init();
}

/// The subscriber [`init`] installs, writing to `writer` (tests capture
/// the daemon's log lines with it).
pub fn subscriber<W>(
    json: bool,
    filter: EnvFilter,
    ansi: bool,
    writer: W,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    if json {
        Box::new(b.json().finish())
    } else {
        Box::new(b.finish())
    }
}
