//! tracing setup: an env filter (`RUST_LOG`, default `info`) and text or
//! JSON lines on stderr.

use tracing_subscriber::EnvFilter;

/// Install the global subscriber. `json` selects JSON lines.
pub fn init(json: bool, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        b.json().try_init()
    } else {
        b.try_init()
    };
}
