//! mihfd: the IEEE 802.21 MIH Function daemon.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use mihf::daemon::{config::Config, logging, Daemon};
use tracing::{error, info};

/// IEEE 802.21 MIHF daemon: MIH transactions with peer MIHFs over UDP/TCP
/// (port 4551 by default) and a local MIH_SAP for MIH-Users.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// TOML configuration file (see mihf/README.md).
    #[arg(short, long, value_name = "FILE")]
    config: PathBuf,
    /// Validate the configuration and exit.
    #[arg(long)]
    check: bool,
    /// Log JSON lines instead of text (the filter comes from RUST_LOG).
    #[arg(long)]
    log_json: bool,
    /// Default log filter when RUST_LOG is not set.
    #[arg(long, default_value = "info", value_name = "FILTER")]
    log_level: String,
    /// Worker threads (1 = a single-threaded runtime, the fastest on a small host).
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

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
        return ExitCode::SUCCESS;
    }
    let rt = match mihf::daemon::runtime(args.threads) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mihfd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        // Install the handlers before anything can be signalled.
        let mut signals = match mihf::daemon::ShutdownSignals::install() {
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
