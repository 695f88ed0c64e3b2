//! The end of a run: Table I, the size distribution, the figures, the
//! checks and `summary.json`.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};
use testbed::report::{histogram_svg, render_size_distribution, PhaseTable, Summary};

use crate::client::{expected_checksum, ClientResult};
use crate::faults::LossCounters;
use crate::topology::Topology;
use crate::{us, Args, End, Handover, Rollback};

/// What the run produced.
pub struct Outcome<'a> {
    pub file_size: u64,
    pub client: &'a ClientResult,
    pub resets: u64,
    pub hands: &'a [Handover],
    pub failures: Vec<String>,
    pub loss: Option<LossCounters>,
    pub relay: Option<(Value, String)>,
}

fn fmt_ms(s: &Option<Summary>, f: impl Fn(&Summary) -> f64) -> String {
    s.as_ref().map_or("-".into(), |s| format!("{:.2} ms", f(s)))
}

pub fn report(args: &Args, out: &Path, t: &Topology, o: Outcome<'_>) -> Result<(), String> {
    let mut failures = o.failures;
    let committed: Vec<&Value> = o
        .hands
        .iter()
        .filter(|h| h.end == End::Committed)
        .filter_map(Handover::record)
        .collect();
    let n_committed = o.hands.iter().filter(|h| h.end == End::Committed).count();
    let n_rolled_back = o.hands.iter().filter(|h| h.end == End::RolledBack).count();
    let n_broken = o.hands.iter().filter(|h| h.end == End::Broken).count();
    let n_retried: usize = o.hands.iter().map(Handover::retries).sum();
    let n_killed = o.hands.iter().filter(|h| h.kill_at.is_some()).count();
    let col = |k: &str| -> Vec<f64> { committed.iter().filter_map(|x| us(x, k)).collect() };
    let mut table = PhaseTable::new();
    table
        .push("MIH HO commit transaction", &col("mih_commit"))
        .push("Retrieving application data", &col("app_data"))
        .push("Retrieving socket data", &col("socket_data"))
        .push("CXTP transaction", &col("cxtp"))
        .push("Total", &col("total"));
    println!(
        "\nTable I: migration phases over {} committed handovers (source side)",
        committed.len()
    );
    print!("{}", table.render());
    let sizes: Vec<u64> = committed
        .iter()
        .map(|x| {
            x["sizes"]["app_octets"].as_u64().unwrap_or(0)
                + x["sizes"]["session_octets"].as_u64().unwrap_or(0)
        })
        .collect();
    println!();
    print!(
        "{}",
        render_size_distribution(
            "Migration data length (application + TCP session contexts)",
            &sizes,
            8
        )
    );
    let totals = col("total");
    let f11 = out.join("fig11_total_time.svg");
    let f12 = out.join("fig12_data_length.svg");
    if let Err(e) = histogram_svg(
        &f11,
        "Fig. 11: total migration time",
        "total migration time (ms)",
        &totals,
        20,
    ) {
        failures.push(format!("{}: {e}", f11.display()));
    }
    let kb: Vec<f64> = sizes.iter().map(|s| *s as f64 / 1024.0).collect();
    if let Err(e) = histogram_svg(
        &f12,
        "Fig. 12: migration data length",
        "migration data length (KB)",
        &kb,
        20,
    ) {
        failures.push(format!("{}: {e}", f12.display()));
    }
    let mut causes: BTreeMap<String, usize> = BTreeMap::new();
    for h in o.hands.iter().filter(|h| h.end == End::RolledBack) {
        let c = h
            .record()
            .and_then(|r| r["cause_label"].as_str())
            .unwrap_or(if h.kill_at.is_some() { "killed" } else { "?" });
        *causes.entry(c.to_string()).or_default() += 1;
    }
    if n_rolled_back > 0 {
        let list: Vec<String> = causes.iter().map(|(c, n)| format!("{c} {n}")).collect();
        println!(
            "\nrollbacks: {n_rolled_back} (causes: {}); the UE stayed with its source each time",
            list.join(", ")
        );
    }
    let total = Summary::of(&totals);
    let pause_ms = o.client.longest_gap.as_secs_f64() * 1000.0;
    println!(
        "\nhandovers: {} (committed {n_committed}, rolled back {n_rolled_back}, retried {n_retried}{}{}); committed migrations p50 {} p99 {}; longest client pause {pause_ms:.1} ms",
        o.hands.len(),
        if n_broken > 0 { format!(", BROKEN {n_broken}") } else { String::new() },
        if n_killed > 0 { format!(", kills {n_killed}") } else { String::new() },
        fmt_ms(&total, |s| s.p50),
        fmt_ms(&total, |s| s.p99),
    );
    if let Some(c) = &o.loss {
        println!("loss (nftables counters): {}", c.line());
    }
    if let Some((_, line)) = &o.relay {
        println!("{line}");
    }
    let expected = expected_checksum(o.file_size);
    let client = o.client;
    println!(
        "download: {} of {} octets, checksum {:016x} (expected {:016x}), longest pause {pause_ms:.1} ms, client resets {}{}",
        client.received,
        o.file_size,
        client.checksum,
        expected,
        o.resets,
        client
            .error
            .as_ref()
            .map(|e| format!(", error: {e}"))
            .unwrap_or_default()
    );
    if let Some(e) = &client.error {
        failures.push(format!("client: {e}"));
    }
    if client.received != o.file_size || client.checksum != expected {
        failures.push("the download is not byte-exact".into());
    }
    let max_pause =
        args.max_pause_ms
            .unwrap_or(if args.faulty() || args.rollback == Rollback::Kill {
                0
            } else {
                500
            });
    if max_pause > 0 && pause_ms > max_pause as f64 {
        failures.push(format!(
            "the download paused {pause_ms:.1} ms (more than --max-pause-ms {max_pause})"
        ));
    }
    if o.resets != 0 {
        failures.push(format!("the client's TCP saw {} reset(s)", o.resets));
    }
    if o.hands.len() < args.handovers as usize {
        failures.push(format!(
            "only {} of {} handovers ran",
            o.hands.len(),
            args.handovers
        ));
    }
    for x in &committed {
        for k in ["mih_commit", "app_data", "socket_data", "cxtp"] {
            if us(x, k).is_none() {
                failures.push(format!("record {} lacks phase {k}", x["id"]));
            }
        }
        if x["sizes"]["sessions"].as_u64() != Some(1) {
            failures.push(format!(
                "record {} moved {} TCP sessions, not 1",
                x["id"], x["sizes"]["sessions"]
            ));
        }
    }
    let records: Vec<&Value> = o.hands.iter().flat_map(|h| &h.src_records).collect();
    let dst_records: Vec<&Value> = o.hands.iter().flat_map(|h| &h.dst_records).collect();
    let summary = json!({
        "handovers": args.handovers,
        "handovers_run": o.hands.len(),
        // The fleet's names for the same (one UE, one session).
        "ues": 1,
        "migrations": o.hands.len(),
        "failed": n_broken,
        "enbcs": args.enbcs,
        "rollback": format!("{:?}", args.rollback).to_lowercase(),
        "faults": {
            "loss_percent": args.loss,
            "delay_ms": args.delay_ms,
            "reorder_max_ms": args.reorder.then_some(args.reorder_ms),
            "duplicate_percent": args.duplicate,
            "kill": args.kill.map(|k| k.label()),
            "kill_every": args.kill.map(|_| args.kill_every),
        },
        "timers": t.timers.to_json(),
        "committed": n_committed,
        "rolled_back": n_rolled_back,
        "retried": n_retried,
        "broken": n_broken,
        "kills": n_killed,
        "rollback_causes": causes,
        "committed_total_ms": total.as_ref().map(|s| json!({"p50": s.p50, "p99": s.p99, "max": s.max})),
        "file_size": o.file_size,
        "received": client.received,
        "checksum_ok": client.checksum == expected && client.received == o.file_size,
        "client_error": client.error,
        "client_resets": o.resets,
        "longest_pause_ms": pause_ms,
        "phases_ms": {
            "mih_commit": Summary::of(&col("mih_commit")),
            "app_data": Summary::of(&col("app_data")),
            "socket_data": Summary::of(&col("socket_data")),
            "cxtp": Summary::of(&col("cxtp")),
            "total": total,
        },
        "data_length_octets": Summary::of(&sizes.iter().map(|s| *s as f64).collect::<Vec<_>>()),
        "loss": o.loss.map(LossCounters::to_json),
        "relay": o.relay.as_ref().map(|(v, _)| v.clone()),
        "records": records,
        "destination_records": dst_records,
        "per_handover": o.hands.iter().map(|h| h.to_json(t)).collect::<Vec<_>>(),
        "failures": failures,
    });
    let sp = out.join("summary.json");
    std::fs::write(
        &sp,
        serde_json::to_string_pretty(&summary).unwrap_or_default(),
    )
    .map_err(|e| format!("{}: {e}", sp.display()))?;
    println!(
        "wrote {}, {} and {}",
        f11.display(),
        f12.display(),
        sp.display()
    );
    if failures.is_empty() {
        println!(
            "PASS: byte-exact download, no reset, every handover ended at both ends ({n_committed} committed, {n_rolled_back} rolled back)"
        );
        Ok(())
    } else {
        Err(format!("FAIL:\n  {}", failures.join("\n  ")))
    }
}
