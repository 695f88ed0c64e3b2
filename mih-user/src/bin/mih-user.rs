//! mih-user: the MIH-User daemon of an eNBC (handover orchestration), and
//! its operator commands.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use mih_user::daemon::config::Config;
use mih_user::daemon::{control, Backends, MihUser};
use tracing::{error, info};

// The command line, in a file of its own: the man page generator
// (manpages/) includes it too.
#[path = "mih-user/cli.rs"]
mod cli;
use cli::{Args, Cmd};

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(cmd) = args.cmd {
        return client(cmd);
    }
    daemon_kit::logging::init(args.log_json, &args.log_level);
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
    let rt = match daemon_kit::runtime::runtime(args.threads) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mih-user: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        // Install the handlers before anything can be signalled.
        let mut signals = match daemon_kit::runtime::ShutdownSignals::install() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("mih-user: cannot install signal handlers: {e}");
                return ExitCode::FAILURE;
            }
        };
        let backends = match Backends::from_config(
            &cfg.sessions,
            std::time::Duration::from_millis(cfg.api.export_timeout_ms),
        ) {
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
