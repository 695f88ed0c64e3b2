//! mih-user's command line (also read by the man page generator, manpages/).

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// MIH-User daemon of an edge cloud node (eNBC): service mobility across LTE handovers.
///
/// Moves the services' state of a UE to the next eNBC when the UE is
/// handed over. Connects to the
/// local mihfd's MIH_SAP (MIH_N2N_HO_Commit / _Complete), serves the
/// Service Mobility API to local services, transfers contexts with CXTP,
/// listens to X2AP (UDP/TCP tap, pcap replay), and takes operator commands
/// on a control socket. Without a subcommand it runs the daemon from
/// --config; SIGINT/SIGTERM stop it cleanly (handovers under way roll back).
#[derive(Parser, Debug)]
// The name is explicit: the default is the crate's (the generator's there).
#[command(name = "mih-user", version, args_conflicts_with_subcommands = true)]
pub struct Args {
    /// TOML configuration file (see mih-user/README.md).
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Validate the configuration and exit.
    #[arg(long)]
    pub check: bool,
    /// Log JSON lines instead of text.
    #[arg(long)]
    pub log_json: bool,
    /// Default log filter when RUST_LOG is not set.
    #[arg(long, default_value = "info", value_name = "FILTER")]
    pub log_level: String,
    /// Worker threads (1 = a single-threaded runtime).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    #[command(subcommand)]
    pub cmd: Option<Cmd>,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Hand a UE over to a target eNBC now, wait for the outcome and print
    /// it as JSON (exit 0 committed, 3 rolled back or refused, 1 error).
    Handover {
        /// The daemon's control socket.
        #[arg(long, value_name = "PATH")]
        control: PathBuf,
        /// The UE's IP address.
        #[arg(long)]
        ue: IpAddr,
        /// The target eNBC's MIHF ID.
        #[arg(long)]
        target: String,
        /// Longest wait for the outcome, in milliseconds.
        #[arg(long, default_value_t = 30_000)]
        timeout_ms: u64,
    },
    /// Roll back the handover of a UE under way.
    Abort {
        /// The daemon's control socket.
        #[arg(long, value_name = "PATH")]
        control: PathBuf,
        /// The UE's IP address.
        #[arg(long)]
        ue: IpAddr,
    },
    /// Print the daemon's status (handovers under way, last migrations) as JSON.
    Status {
        /// The daemon's control socket.
        #[arg(long, value_name = "PATH")]
        control: PathBuf,
    },
}
