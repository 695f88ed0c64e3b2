//! The handover demo end to end, as CI runs it (root): network namespaces,
//! mihfd + mih-user (`sessions.mode = "tcp_repair"`) + the example HTTP
//! service per eNBC, a plain client downloading in the UE namespace,
//! handovers driven by X2AP PDUs. Each test runs the `handover-demo`
//! binary and checks its `summary.json`:
//!
//! * 20 handovers: all committed, the download byte-exact with no reset,
//!   every phase timed in every record, one TCP session moved each time;
//! * rollback, destination refuses (its service serves another file): the
//!   source restores the socket and the stream continues from it;
//! * rollback, destination killed (by the demo's relay) when its CTDR
//!   leaves, after it imported the socket: the source restores at the
//!   CXTP timeout and the stream continues;
//! * faults on the backhaul (nftables loss in every eNBC namespace, the
//!   demo's relay for delay, reordering and duplication, SIGKILLs
//!   mid-migration): 10 % and 30 % loss, a source killed mid-migration,
//!   a destination and a source mihfd killed, delay + reordering +
//!   duplication. Each asserts a byte-exact download, no reset, and that
//!   every handover ended (committed or rolled back) at both ends.
//!
//! * a storm: 100 UEs, each with a download and an interactive
//!   request/response session (both ways in flight at the freeze), all
//!   handed over within 500 ms, four rounds there and back: every stream
//!   checked octet by octet, no reset, every migration committed at both
//!   ends, every UE's path where it is served; and 100 UEs triggered at
//!   once into destinations that admit 8 UEs at a time: the refusals roll
//!   back and are retried until every UE has moved.
//!
//! Without root (no namespaces) the tests print SKIP, unless `CI` is set.

mod common;

use std::process::Command;
use std::sync::Mutex;

use serde_json::Value;

static SERIAL: Mutex<()> = Mutex::new(());

fn can_run() -> bool {
    testkit::require_root("the handover demo (network namespaces, TCP_REPAIR)")
}

fn demo(args: &[&str]) -> Value {
    let out = tempfile::tempdir().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_handover-demo"))
        .args(args)
        .arg("--out")
        .arg(out.path())
        .arg("--bin-dir")
        .arg(common::bin_dir())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("handover-demo");
    let pid = child.id();
    let o = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    let summary = std::fs::read_to_string(out.path().join("summary.json"));
    if !o.status.success() {
        for log in std::fs::read_dir(out.path().join("logs"))
            .unwrap()
            .flatten()
        {
            let text = std::fs::read_to_string(log.path()).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            eprintln!("--- {} (tail)", log.path().display());
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
        panic!("handover-demo failed: {stderr}");
    }
    let fleet = args.contains(&"--ues");
    if !fleet {
        assert!(stdout.contains("Table I"), "{stdout}");
        assert!(out.path().join("fig11_total_time.svg").exists());
        assert!(out.path().join("fig12_data_length.svg").exists());
    }
    // Every namespace it made is gone.
    let left = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let left = String::from_utf8_lossy(&left.stdout).to_string();
    let mine = format!("hod{pid}-");
    assert!(!left.lines().any(|l| l.starts_with(&mine)), "{left}");
    serde_json::from_str(&summary.unwrap()).unwrap()
}

fn assert_download(s: &Value) {
    assert_eq!(s["checksum_ok"], true, "{s}");
    assert_eq!(s["received"], s["file_size"], "{s}");
    assert_eq!(s["client_resets"], 0, "{s}");
    assert!(s["client_error"].is_null(), "{s}");
    assert_eq!(s["failures"].as_array().unwrap().len(), 0, "{s}");
}

#[test]
fn twenty_handovers_keep_the_download_byte_exact() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run() {
        return;
    }
    let s = demo(&["--handovers", "20"]);
    assert_download(&s);
    assert_eq!(s["committed"], 20, "{s}");
    for k in ["mih_commit", "app_data", "socket_data", "cxtp", "total"] {
        assert_eq!(s["phases_ms"][k]["n"], 20, "phase {k}: {s}");
    }
    let records = s["records"].as_array().unwrap();
    assert_eq!(records.len(), 20);
    for r in records {
        assert_eq!(r["outcome"], "committed");
        assert_eq!(r["sizes"]["sessions"], 1, "{r}");
        assert!(r["sizes"]["app_octets"].as_u64().unwrap() > 0, "{r}");
    }
}

#[test]
fn rollback_when_the_destination_refuses() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run() {
        return;
    }
    let s = demo(&[
        "--handovers",
        "6",
        "--rollback",
        "refuse",
        "--rollback-every",
        "3",
    ]);
    assert_download(&s);
    assert_eq!(s["committed"], 4, "{s}");
    assert_eq!(s["rolled_back"], 2, "{s}");
    let causes: Vec<&str> = s["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] == "rolled_back")
        .map(|r| r["cause_label"].as_str().unwrap())
        .collect();
    assert_eq!(causes, ["ctdr_failure", "ctdr_failure"], "{s}");
}

#[test]
fn rollback_when_the_destination_is_killed_mid_transfer() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run() {
        return;
    }
    let s = demo(&[
        "--handovers",
        "4",
        "--rollback",
        "kill",
        "--rollback-every",
        "2",
    ]);
    assert_download(&s);
    assert_eq!(s["committed"], 2, "{s}");
    assert_eq!(s["rolled_back"], 2, "{s}");
    for r in s["records"].as_array().unwrap() {
        if r["outcome"] == "rolled_back" {
            assert_eq!(r["cause_label"], "cxtp_timeout", "{r}");
            // The socket was exported before the destination died.
            assert_eq!(r["sizes"]["sessions"], 1, "{r}");
        }
    }
}

/// Every handover ran and ended, committed or rolled back, at both ends.
fn assert_every_handover_ended(s: &Value, n: u64) {
    assert_eq!(s["handovers_run"], n, "{s}");
    assert_eq!(s["broken"], 0, "{s}");
    let committed = s["committed"].as_u64().unwrap();
    let rolled_back = s["rolled_back"].as_u64().unwrap();
    assert_eq!(committed + rolled_back, n, "{s}");
    for h in s["per_handover"].as_array().unwrap() {
        assert!(h["failures"].as_array().unwrap().is_empty(), "{h}");
        // The source's record decided (unless the source was killed: its
        // record died with it).
        if h["killed"] != "source" {
            assert!(!h["source_records"].as_array().unwrap().is_empty(), "{h}");
        }
    }
}

fn loss_run(pct: &str, n: u64) -> Value {
    let handovers = n.to_string();
    let s = demo(&[
        "--handovers",
        &handovers,
        "--loss",
        pct,
        "--interval-ms",
        "50",
    ]);
    assert_download(&s);
    assert_every_handover_ended(&s, n);
    // The loss was there, and the rules saw both protocols.
    for class in ["mih", "cxtp"] {
        assert!(s["loss"][class]["seen"].as_u64().unwrap() > 0, "{s}");
    }
    assert!(
        s["loss"]["mih"]["dropped"].as_u64().unwrap()
            + s["loss"]["cxtp"]["dropped"].as_u64().unwrap()
            > 0,
        "{s}"
    );
    s
}

#[test]
fn ten_percent_loss_on_the_backhaul() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run() {
        return;
    }
    let s = loss_run("10", 20);
    assert!(s["committed"].as_u64().unwrap() > 0, "{s}");
}

#[test]
fn thirty_percent_loss_on_the_backhaul() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run() {
        return;
    }
    loss_run("30", 12);
}

#[test]
fn source_killed_mid_migration() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run() {
        return;
    }
    // The source's mih-user dies with the session frozen and exported,
    // before its CTD leaves; it is restarted 1 s later.
    let s = demo(&["--handovers", "4", "--kill", "source", "--kill-every", "2"]);
    assert_download(&s);
    assert_every_handover_ended(&s, 4);
    assert_eq!(s["kills"], 2, "{s}");
}

#[test]
fn destination_and_mihfd_killed_mid_migration() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run() {
        return;
    }
    // (destination-after-ctdr: killed once its successful CTDR is out; the
    // source commits, the restarted destination commits from its journal.)
    for target in ["destination", "destination-after-ctdr", "mihfd"] {
        let s = demo(&["--handovers", "4", "--kill", target, "--kill-every", "2"]);
        assert_download(&s);
        assert_every_handover_ended(&s, 4);
        assert_eq!(s["kills"], 2, "{target}: {s}");
    }
}

#[test]
fn delay_reordering_and_duplication() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run() {
        return;
    }
    let s = demo(&[
        "--handovers",
        "10",
        "--delay-ms",
        "10",
        "--reorder",
        "--duplicate",
        "30",
    ]);
    assert_download(&s);
    assert_every_handover_ended(&s, 10);
    assert!(s["relay"]["mih_duplicated"].as_u64().unwrap() > 0, "{s}");
    // Every MIH round trip went through the 10 ms each way.
    assert!(
        s["phases_ms"]["mih_commit"]["min"].as_f64().unwrap() >= 20.0,
        "{s}"
    );
}

/// A fleet run (`args` split at spaces), one at a time; None: it cannot
/// run here (no root, and `CI` unset).
fn fleet(args: &str) -> Option<Value> {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run() {
        return None;
    }
    Some(demo(&args.split_whitespace().collect::<Vec<_>>()))
}

/// A fleet run's checks: every move committed at both ends, every stream
/// byte-exact (no session error) with no reset, every UE routed to where
/// it is served.
fn assert_every_ue_moved(s: &Value, migrations: u64) {
    assert_eq!(s["ok"], true, "{s}");
    assert_eq!(s["migrations"], migrations, "{s}");
    assert_eq!(s["committed"], migrations, "{s}");
    assert_eq!(s["failed"], 0, "{s}");
    assert_eq!(s["client_resets"], 0, "{s}");
    assert_eq!(s["session_errors"], 0, "{s}");
    assert_eq!(s["misrouted_ues"], 0, "{s}");
}

#[test]
fn a_storm_of_a_hundred_ues_with_two_services_and_two_sessions_each() {
    let Some(s) = fleet(
        "--ues 100 --services http,interactive --sessions-per-ue 2 --storm --storm-window-ms 500 --handovers 4",
    ) else {
        return;
    };
    assert_every_ue_moved(&s, 400);
    assert_eq!(s["ues"], 100, "{s}");
    assert_eq!(s["sessions"], 200, "{s}");
    assert_eq!(s["rolled_back"], 0, "{s}");
    // Both services, every session with data, every response checked.
    for svc in ["http", "interactive"] {
        assert_eq!(s["per_service"][svc]["sessions"], 100, "{svc}: {s}");
        assert!(s["per_service"][svc]["octets"].as_u64().unwrap() > 0, "{s}");
    }
    assert!(
        s["per_service"]["interactive"]["responses_checked"]
            .as_u64()
            .unwrap()
            > 100,
        "{s}"
    );
    // Every UE's longest pause, every phase and the rates are recorded.
    assert_eq!(s["ue_longest_pause_ms"]["n"], 100, "{s}");
    assert_eq!(s["total_ms"]["n"], 400, "{s}");
    assert_eq!(s["from_trigger_ms"]["n"], 400, "{s}");
    for k in ["mih_commit", "app_data", "socket_data", "cxtp"] {
        assert_eq!(s["phases_ms"][k]["n"], 400, "phase {k}: {s}");
    }
    assert_eq!(s["rounds"].as_array().unwrap().len(), 4, "{s}");
    assert!(s["migrations_per_s"].as_f64().unwrap() > 0.0, "{s}");
    for r in s["peak_rss"].as_array().unwrap() {
        assert!(r["mih_user_peak_rss_octets"].as_u64().unwrap() > 0, "{r}");
        assert!(r["mihfd_peak_rss_octets"].as_u64().unwrap() > 0, "{r}");
    }
}

#[test]
fn a_storm_into_a_destination_that_admits_eight_at_once_retries_its_refusals() {
    let Some(s) = fleet("--ues 100 --storm --storm-window-ms 0 --handovers 2 --max-incoming 8")
    else {
        return;
    };
    assert_eq!(s["max_incoming"], 8, "{s}");
    // Every UE moved, there and back, at both ends.
    assert_every_ue_moved(&s, 200);
    // The destination refused what it could not admit; each refusal
    // rolled back and was retried.
    let refused = s["retried_attempts"]["refused"].as_u64().unwrap_or(0);
    assert!(refused > 0, "{s}");
    assert_eq!(s["attempts"].as_u64().unwrap(), 200 + refused, "{s}");
}
