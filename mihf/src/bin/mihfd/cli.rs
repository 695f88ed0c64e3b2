//! mihfd's command line (also read by the man page generator, manpages/).

use std::path::PathBuf;

use clap::Parser;

/// IEEE 802.21 MIHF daemon: MIH transactions with peer MIHFs over UDP/TCP
/// (port 4551 by default) and a local MIH_SAP for MIH-Users.
#[derive(Parser, Debug)]
// The name is explicit: the default is the crate's (mihf, or the generator's).
#[command(name = "mihfd", version)]
pub struct Args {
    /// TOML configuration file (see mihf/README.md).
    #[arg(short, long, value_name = "FILE")]
    pub config: PathBuf,
    /// Validate the configuration and exit.
    #[arg(long)]
    pub check: bool,
    /// Log JSON lines instead of text (the filter comes from RUST_LOG).
    #[arg(long)]
    pub log_json: bool,
    /// Default log filter when RUST_LOG is not set.
    #[arg(long, default_value = "info", value_name = "FILTER")]
    pub log_level: String,
    /// Worker threads (1 = a single-threaded runtime, the fastest on a small host).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}
