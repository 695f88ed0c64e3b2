//! mihfd: the IEEE 802.21 MIH Function daemon.

use std::process::ExitCode;

use clap::Parser;
use daemon_kit::logging;
use daemon_kit::runtime::{runtime, ShutdownSignals};
use mihf::daemon::{config::Config, Daemon};
use tracing::{error, info};

// The command line, in a file of its own: the man page generator
// (manpages/) includes it too.
#[path = "mihfd/cli.rs"]
mod cli;
use cli::Args;

fn main() -> ExitCode {
    let args = Args::parse();
    logging::init(args.log_json, &args.log_level);
    let cfg = match Config::from_file(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mihfd: {}: {e}", args.config.display());
            return ExitCode::from(2);
        }
    };
    if args.check {
        println!("{}: OK", args.config.display());
        let e = cfg.node_config().engine;
        println!(
            "duplicate life {} ms, TID quarantine {} ms: at most {} answered transactions/s per peer over UDP (TCP: not limited by TIDs)",
            e.duplicate_life().as_millis(),
            e.tid_quarantine().as_millis(),
            e.udp_rate_per_peer()
        );
        return ExitCode::SUCCESS;
    }
    let rt = match runtime(args.threads) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mihfd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        // Install the handlers before anything can be signalled.
        let mut signals = match ShutdownSignals::install() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("mihfd: cannot install signal handlers: {e}");
                return ExitCode::FAILURE;
            }
        };
        let daemon = match Daemon::start(&cfg).await {
            Ok(d) => d,
            Err(e) => {
                error!("cannot start: {e}");
                eprintln!("mihfd: {e}");
                return ExitCode::FAILURE;
            }
        };
        let sig = signals.recv().await;
        info!(signal = sig, "shutting down");
        daemon.shutdown().await;
        ExitCode::SUCCESS
    })
}
