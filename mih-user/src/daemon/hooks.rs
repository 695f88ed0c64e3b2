//! The `[sessions]` network hooks (flow hold, release, path switch) built
//! from the configuration: a command, or a built-in route change over
//! rtnetlink (`mih_user::sessions::route`, tens of microseconds instead of
//! the milliseconds of spawning `ip`).

use std::io::Read;
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::config::HookConfig;
use crate::sessions::handoff::Hook;
use crate::sessions::route::{is_not_found, RouteHandle};

/// The longest a hook command may run.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// `ADDR/LEN` (or a bare address: a host route) → (address, prefix length).
pub fn parse_prefix(text: &str) -> Result<(IpAddr, u8), String> {
    let (a, l) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (text, None),
    };
    let addr: IpAddr = a
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not ADDRESS[/LENGTH]"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = match l {
        None => max,
        Some(l) => l
            .trim()
            .parse::<u8>()
            .ok()
            .filter(|l| *l <= max)
            .ok_or_else(|| format!("{text:?}: prefix length must be 0 to {max}"))?,
    };
    Ok((addr, len))
}

/// Run `argv` (with `{ue}` replaced), wait at most [`COMMAND_TIMEOUT`].
pub fn run_command(argv: &[String], ue: IpAddr) -> Result<(), String> {
    let ue = ue.to_string();
    let args: Vec<String> = argv.iter().map(|a| a.replace("{ue}", &ue)).collect();
    let Some((prog, rest)) = args.split_first() else {
        return Err("empty command".into());
    };
    let mut child = Command::new(prog)
        .args(rest)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{prog}: {e}"))?;
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if start.elapsed() > COMMAND_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{args:?}: no exit within {COMMAND_TIMEOUT:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_micros(200)),
            Err(e) => return Err(format!("{prog}: {e}")),
        }
    };
    if status.success() {
        return Ok(());
    }
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    Err(format!("{args:?}: {status}: {}", err.trim()))
}

/// Build the hook a [`HookConfig`] describes. Built-in routes open their
/// rtnetlink socket now (in the configured namespace), so a missing
/// namespace or capability shows at start.
pub fn build(key: &str, cfg: &HookConfig) -> Result<Hook, String> {
    if !cfg.command.is_empty() {
        let argv = cfg.command.clone();
        return Ok(Arc::new(move |ue| run_command(&argv, ue)));
    }
    let route = cfg
        .route
        .clone()
        .ok_or_else(|| format!("{key}: needs `command` or `route`"))?;
    let handle = match &cfg.netns {
        Some(ns) => RouteHandle::in_netns(&crate::sessions::netns::path(ns)),
        None => RouteHandle::new(),
    }
    .map_err(|e| format!("{key}: {e}"))?;
    let cfg = cfg.clone();
    Ok(Arc::new(move |ue| {
        let (dst, len) = parse_prefix(&route.replace("{ue}", &ue.to_string()))?;
        let table = cfg.table_for(ue)?;
        let r = if cfg.delete {
            match handle.delete_in(table, dst, len) {
                Err(e) if is_not_found(&e) => Ok(()),
                r => r,
            }
        } else {
            match cfg.via.as_deref() {
                Some("blackhole") => handle.replace_blackhole_in(table, dst, len),
                Some(gw) => {
                    let gw: IpAddr = gw.parse().map_err(|_| format!("via {gw:?}"))?;
                    handle.replace_via_in(table, dst, len, gw, cfg.src)
                }
                None => return Err("no `via`".into()),
            }
        };
        r.map_err(|e| e.to_string())
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert_eq!(
            parse_prefix("10.0.0.1/32").unwrap(),
            ("10.0.0.1".parse().unwrap(), 32)
        );
        assert_eq!(
            parse_prefix("10.0.0.1").unwrap(),
            ("10.0.0.1".parse().unwrap(), 32)
        );
        assert_eq!(
            parse_prefix("2001:db8::1/64").unwrap(),
            ("2001:db8::1".parse().unwrap(), 64)
        );
        assert!(parse_prefix("10.0.0.1/33").is_err());
        assert!(parse_prefix("nope/3").is_err());
        assert!(parse_prefix("").is_err());
    }

    #[test]
    fn commands_substitute_the_ue_and_report_failures() {
        let ue: IpAddr = "10.77.0.2".parse().unwrap();
        let ok = vec![
            "sh".into(),
            "-c".into(),
            "test \"$0\" = 10.77.0.2".into(),
            "{ue}".into(),
        ];
        run_command(&ok, ue).unwrap();
        let bad = vec!["sh".into(), "-c".into(), "echo boom >&2; exit 3".into()];
        let e = run_command(&bad, ue).unwrap_err();
        assert!(e.contains("boom") && e.contains('3'), "{e}");
        assert!(run_command(&["/nonexistent/x".into()], ue).is_err());
    }
}
