//! mih-user: the MIH-User daemon of an eNBC (handover orchestration), and
//! its operator commands.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use mih_user::daemon::config::Config;
use mih_user::daemon::{control, Backends, MihUser};
use tracing::{error, info};
use tracing_subscriber::EnvFilter;

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
#[command(version, args_conflicts_with_subcommands = true)]
struct Args {
    /// TOML configuration file (see mih-user/README.md).
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Validate the configuration and exit.
    #[arg(long)]
    check: bool,
    /// Log JSON lines instead of text.
    #[arg(long)]
    log_json: bool,
    /// Default log filter when RUST_LOG is not set.
    #[arg(long, default_value = "info", value_name = "FILTER")]
    log_level: String,
    /// Worker threads (1 = a single-threaded runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
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

fn init_logs(json: bool, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    use std::io::IsTerminal;
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = if json {
        b.json().try_init()
    } else {
        b.try_init()
    };
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(cmd) = args.cmd {
        return client(cmd);
    }
    init_logs(args.log_json, &args.log_level);
    let Some(path) = args.config else {
        eprintln!("mih-user: --config FILE is required to run the daemon (see --help)");
        return ExitCode::from(2);
    };
    let cfg = match Config::from_file(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mih-user: {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    if args.check {
        println!("{}: OK", path.display());
        return ExitCode::SUCCESS;
    }
    let rt = match mihf::daemon::runtime(args.threads) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mih-user: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        // Install the handlers before anything can be signalled.
        let mut signals = match mihf::daemon::ShutdownSignals::install() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("mih-user: cannot install signal handlers: {e}");
                return ExitCode::FAILURE;
            }
        };
        let backends = match Backends::from_config(&cfg.sessions) {
            Ok(b) => b,
            Err(e) => {
                error!("cannot start: {e}");
                eprintln!("mih-user: {e}");
                return ExitCode::FAILURE;
            }
        };
        let daemon = match MihUser::start(&cfg, backends).await {
            Ok(d) => d,
            Err(e) => {
                error!("cannot start: {e}");
                eprintln!("mih-user: {e}");
                return ExitCode::FAILURE;
            }
        };
        let sig = signals.recv().await;
        info!(signal = sig, "shutting down");
        daemon.shutdown().await;
        ExitCode::SUCCESS
    })
}

fn client(cmd: Cmd) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mih-user: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (path, req, wait) = match &cmd {
        Cmd::Handover {
            control,
            ue,
            target,
            timeout_ms,
        } => (
            control,
            serde_json::json!({"op": "handover", "ue": ue.to_string(), "target": target, "timeout_ms": timeout_ms}),
            Duration::from_millis(*timeout_ms + 2000),
        ),
        Cmd::Abort { control, ue } => (
            control,
            serde_json::json!({"op": "abort", "ue": ue.to_string()}),
            Duration::from_secs(5),
        ),
        Cmd::Status { control } => (
            control,
            serde_json::json!({"op": "status"}),
            Duration::from_secs(5),
        ),
    };
    let answer = match rt.block_on(control::request(path, &req, wait)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("mih-user: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&answer).unwrap_or_else(|_| answer.to_string())
    );
    let ok = answer.get("ok").and_then(|v| v.as_bool()) == Some(true);
    match cmd {
        Cmd::Handover { .. } if ok => {
            let committed =
                answer.pointer("/record/outcome").and_then(|v| v.as_str()) == Some("committed");
            if committed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(3)
            }
        }
        Cmd::Handover { .. } if answer.get("reason").is_some() => ExitCode::from(3),
        _ if ok => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}
