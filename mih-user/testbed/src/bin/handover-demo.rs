//! The end-to-end handover demo (run as root): a plain HTTP client in a UE
//! namespace downloads a file from the service address while the server
//! side of its TCP connection moves between eNBC namespaces, each running
//! `mihfd`, the `mih-user` daemon (`sessions.mode = "tcp_repair"`) and the
//! example HTTP service; handovers are driven by X2AP HandoverRequest and
//! HandoverRequestAcknowledge PDUs sent to the source eNBC's X2 tap (and a
//! UEContextRelease once the handover ended).
//!
//! With `--loss`, `--delay-ms`, `--reorder`, `--duplicate` and `--kill` it
//! runs under faults on the backhaul ([`faults`], [`relay`]).
//!
//! See `--help` and the README ("The handover demo").

#[path = "handover-demo/client.rs"]
mod client;
#[path = "handover-demo/faults.rs"]
mod faults;
#[path = "handover-demo/fleet.rs"]
mod fleet;
#[path = "handover-demo/floor.rs"]
mod floor;
#[path = "handover-demo/relay.rs"]
mod relay;
#[path = "handover-demo/report.rs"]
mod report;
#[path = "handover-demo/topology.rs"]
mod topology;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use mih_user::daemon::control;
use mih_user::sessions::netns;
use mih_user::x2ap::build::{
    handover_request, handover_request_acknowledge, HandoverRequestAcknowledgeParams,
    HandoverRequestParams,
};
use mih_user::x2ap::Plmn;
use serde_json::{json, Value};

use client::{client, ClientResult};
use relay::{Arm, Relay, RelayConfig, Trigger};
use topology::{Daemon, Timers, Topology, UePath, ENB_BASE, PLMN, UL_TEID};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Rollback {
    /// Every handover is expected to commit.
    None,
    /// Every Nth handover goes to an extra eNBC whose service refuses the
    /// context (it serves another file): the source restores the socket.
    Refuse,
    /// Every Nth handover goes to an extra eNBC whose mih-user is killed
    /// (SIGKILL) when its CTDR reaches the relay (it imported the sockets;
    /// its answer dies with it): the source restores the socket at the CXTP
    /// timeout.
    Kill,
}

/// Which daemon `--kill` kills.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KillTarget {
    /// The source's mih-user, when its first CTD reaches the relay (the
    /// session is frozen and exported; the CTD is dropped, as if it died
    /// just before sending it).
    Source,
    /// The destination's mih-user, when the source's first CTD reaches the
    /// relay (it accepted the commit; the CTD is dropped, as if it died
    /// just before reading it).
    Destination,
    /// The destination's mih-user, when its successful CTDR reaches the
    /// relay (the CTDR is forwarded: the source commits on it while the
    /// destination is dead, its imported sessions only in its session
    /// journal; the restarted destination rebuilds them and commits on
    /// the source's repeated MIH_N2N_HO_Complete).
    DestinationAfterCtdr,
    /// The source's mihfd, when its MIH_N2N_HO_Commit.request reaches the
    /// relay (the request is forwarded; mihfd dies with the transaction
    /// open).
    Mihfd,
}

impl KillTarget {
    fn label(self) -> &'static str {
        match self {
            KillTarget::Source => "source",
            KillTarget::Destination => "destination",
            KillTarget::DestinationAfterCtdr => "destination-after-ctdr",
            KillTarget::Mihfd => "mihfd",
        }
    }
}

/// End-to-end handover demo: live TCP session migration between edge
/// clouds (network namespaces), driven by X2AP handovers.
///
/// Run as root. Builds namespaces UE, core (a bridge for the backhaul) and
/// eNBC 1..N, starts mihfd, mih-user and example-http-service in each eNBC,
/// downloads a file from the UE with a plain client, hands the UE over
/// back and forth, prints a line per handover, Table I and the context
/// sizes, writes fig11_total_time.svg, fig12_data_length.svg and
/// summary.json to --out, checks the download byte by byte, and removes
/// everything it made (also on Ctrl-C or failure). Exit status 0 only if
/// the download is byte-exact with no reset and every handover ended
/// (committed or rolled back) at both ends.
///
/// Faults on the backhaul: --loss (nftables in every eNBC namespace),
/// --delay-ms, --reorder, --duplicate (a relay in the core namespace),
/// --kill (a daemon SIGKILLed mid-migration and restarted after 1 s).
#[derive(Parser, Debug)]
// `--version` says "mih-user", as it did when this binary was part of that package.
#[command(name = "mih-user", version)]
struct Args {
    /// Number of handovers.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    handovers: u32,
    /// Number of eNBCs the UE moves between (round robin).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(2..=8))]
    enbcs: u32,
    /// Size of the downloaded file in octets (0: enough for the run at
    /// --rate).
    #[arg(long, default_value_t = 0)]
    file_size: u64,
    /// Download rate in octets per second (the service paces the body;
    /// default 4 MiB/s, with several UEs or services 64 KiB/s per
    /// download).
    #[arg(long)]
    rate: Option<u64>,
    /// Number of UEs (addresses 10.77.0.2 .. on lo in one UE namespace,
    /// each with its own routing table).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=fleet::MAX_UES as i64))]
    ues: u32,
    /// The services every eNBC runs, comma-separated: http (progressive
    /// download), interactive (request/response, both ways in flight),
    /// state (request/response on a per-UE state of --state-kb).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "http")]
    services: Vec<fleet::Svc>,
    /// TCP sessions per UE, N or LO-HI (UE i has LO + i % (HI-LO+1)), 1
    /// to 4; session j of UE i goes to service (i + j) % (number of
    /// services).
    #[arg(long, default_value = "1", value_parser = fleet::parse_sessions)]
    sessions_per_ue: (u32, u32),
    /// Storm: every round hands all UEs over within --storm-window-ms
    /// (from one eNBC to the next, then back); --handovers is the number
    /// of rounds. Without it, several UEs move one after the other.
    #[arg(long)]
    storm: bool,
    /// With --storm: the X2 triggers of a round are spread over this
    /// long, in milliseconds.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(0..=600_000))]
    storm_window_ms: u64,
    /// The state service's per-UE state, in KiB.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(0..=16 * 1024))]
    state_kb: u64,
    /// The mih-users' `admission.max_incoming` (UEs arriving at once;
    /// default the daemon's, 64, as `max_outgoing`): below 64 a storm
    /// meets refusals, which roll back and are retried.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=4096))]
    max_incoming: Option<u32>,
    /// A request-response session sends a request this often, in
    /// milliseconds (two at most unanswered).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    request_interval_ms: u64,
    /// Pause between handovers (after one ended at both ends), in
    /// milliseconds.
    #[arg(long, default_value_t = 100)]
    interval_ms: u64,
    /// Rollback scenario.
    #[arg(long, value_enum, default_value_t = Rollback::None)]
    rollback: Rollback,
    /// With --rollback: every Nth handover goes to the failing eNBC.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    rollback_every: u32,
    /// Random loss of MIH (UDP/TCP 4551) and CXTP (TCP 5091) packets on the
    /// backhaul, in percent, both directions (nftables in every eNBC
    /// namespace).
    #[arg(long, default_value_t = 0.0, value_parser = percent)]
    loss: f64,
    /// Added one-way delay of MIH datagrams and CXTP messages on the
    /// backhaul, in milliseconds (the relay).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=10_000))]
    delay_ms: u64,
    /// Reorder MIH datagrams: each gets a random extra delay of up to
    /// --reorder-ms (the relay).
    #[arg(long)]
    reorder: bool,
    /// With --reorder: the largest extra delay, in milliseconds.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    reorder_ms: u64,
    /// Duplicate this percentage of MIH datagrams (the relay).
    #[arg(long, default_value_t = 0.0, value_parser = percent)]
    duplicate: f64,
    /// SIGKILL this daemon of every --kill-every-th handover in the middle
    /// of the migration, and restart it 1 s later with the same
    /// configuration.
    #[arg(long, value_enum)]
    kill: Option<KillTarget>,
    /// With --kill: every Nth handover.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    kill_every: u32,
    /// Seed of the relay's random choices (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
    /// Output directory (figures, summary.json, logs).
    #[arg(long, default_value = "handover-demo-out")]
    out: PathBuf,
    /// Fail if the client's download pauses longer than this, in
    /// milliseconds (default 500, but not checked with --rollback kill,
    /// --kill or backhaul faults, whose rollbacks and retransmissions wait
    /// for timers, unless given; 0: not checked).
    #[arg(long)]
    max_pause_ms: Option<u64>,
    /// Directory with the mihfd, mih-user and example-http-service
    /// binaries (default: next to this program).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

fn percent(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=100.0).contains(&v) {
        Ok(v)
    } else {
        Err("must be 0 to 100".into())
    }
}

impl Args {
    /// More than the one UE with one download.
    fn fleet(&self) -> bool {
        fleet::Plan::from_args(self).is_some()
    }

    /// The download rate.
    fn rate(&self) -> u64 {
        self.rate.unwrap_or(if self.fleet() {
            64 * 1024
        } else {
            4 * 1024 * 1024
        })
    }

    /// The relay is needed (delay, reordering, duplication, kills).
    fn needs_relay(&self) -> bool {
        self.delay_ms > 0
            || self.reorder
            || self.duplicate > 0.0
            || self.kill.is_some()
            || self.rollback == Rollback::Kill
    }

    /// Any fault on the backhaul.
    fn faulty(&self) -> bool {
        self.loss > 0.0 || self.needs_relay()
    }

    /// The most one-way delay the relay adds.
    fn extra_one_way_ms(&self) -> u64 {
        self.delay_ms + if self.reorder { self.reorder_ms } else { 0 }
    }

    fn faults_line(&self) -> String {
        let mut v = Vec::new();
        if self.loss > 0.0 {
            v.push(format!("{} % loss", self.loss));
        }
        if self.delay_ms > 0 {
            v.push(format!("{} ms delay", self.delay_ms));
        }
        if self.reorder {
            v.push(format!("reordering (up to +{} ms)", self.reorder_ms));
        }
        if self.duplicate > 0.0 {
            v.push(format!("{} % duplicated", self.duplicate));
        }
        if let Some(k) = self.kill {
            v.push(format!(
                "{} killed every {} handovers",
                k.label(),
                self.kill_every
            ));
        }
        v.join(", ")
    }
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn install_signals() {
    for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic (async-signal-safe).
        unsafe {
            libc::signal(
                s,
                on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
            );
        }
    }
}

fn check_interrupt() -> Result<(), String> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        Err("interrupted".into())
    } else {
        Ok(())
    }
}

/// Run `f` on a thread that entered namespace `ns` (a name).
pub fn in_ns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> Result<T, String> {
    netns::run_in(&netns::path(ns), f).map_err(|e| e.to_string())
}

pub fn wait_for<T>(what: &str, secs: u64, f: impl FnMut() -> Option<T>) -> Result<T, String> {
    wait_every(what, secs, Duration::from_millis(5), f)
}

/// [`wait_for`], asking every `every`.
pub fn wait_every<T>(
    what: &str,
    secs: u64,
    every: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Result<T, String> {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        check_interrupt()?;
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() > end {
            return Err(format!("timed out waiting for {what}"));
        }
        std::thread::sleep(every);
    }
}

/// A daemon's `status` (None while its control socket does not answer).
pub fn status(path: &Path) -> Option<Value> {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    let rt = RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
    });
    let req = json!({"op": "status"});
    rt.block_on(control::request(path, &req, Duration::from_secs(10)))
        .ok()
}

/// `EstabResets` of the UE namespace: resets of established connections.
fn client_resets(ns: &str) -> Result<u64, String> {
    netns::tcp_counter(&netns::path(ns), "Tcp", "EstabResets").map_err(|e| e.to_string())
}

// ------------------------------------------------------------------ X2 --

fn x2_ids(n: u32) -> (u16, u16) {
    ((n % 4000) as u16 + 1, ((n + 2000) % 4000) as u16 + 1)
}

fn x2_send(t: &Topology, k: usize, pdus: &[&[u8]]) -> Result<(), String> {
    if let Some(mut tcp) = t.enbcs[k].x2_tcp.as_ref() {
        use std::io::Write;
        let mut out = Vec::new();
        for p in pdus {
            out.extend(mih_user::x2ap::framing::encode(p));
        }
        return tcp.write_all(&out).map_err(|e| format!("X2 TCP send: {e}"));
    }
    let sock = t.enbcs[k].x2.as_ref().ok_or("no X2 socket")?;
    let tap: SocketAddr = "127.0.0.1:36422".parse().unwrap();
    for p in pdus {
        sock.send_to(p, tap).map_err(|e| format!("X2 send: {e}"))?;
    }
    Ok(())
}

fn x2_handover(t: &Topology, src: usize, dst: usize, n: u32) -> Result<(), String> {
    let plmn = Plmn::parse(PLMN).ok_or("PLMN")?;
    x2_handover_ue(t, plmn, src, dst, x2_ids(n), UL_TEID)
}

/// HandoverRequest and HandoverRequestAcknowledge for the UE whose E-RAB
/// has uplink TEID `teid`, into the source eNBC's X2 tap.
fn x2_handover_ue(
    t: &Topology,
    plmn: Plmn,
    src: usize,
    dst: usize,
    (old_id, new_id): (u16, u16),
    teid: u32,
) -> Result<(), String> {
    let target_cell = ((ENB_BASE + t.enbcs[dst].idx) << 8) | 1;
    let mut req = HandoverRequestParams::new(old_id, plmn, target_cell);
    req.e_rabs[0].ul_gtp_tunnel.teid = teid;
    let ack = HandoverRequestAcknowledgeParams::admitting(&req, new_id);
    let req = handover_request(&req).map_err(|e| e.to_string())?;
    let ack = handover_request_acknowledge(&ack).map_err(|e| e.to_string())?;
    x2_send(t, src, &[&req, &ack])
}

/// UEContextRelease (target eNB -> source eNB, the X2 handover is over),
/// aligned PER as pycrate encodes it (`conformance/vectors/x2ap/
/// ue_context_release.json`): initiatingMessage, procedure 5, criticality
/// ignore, two IEs (Old eNB UE X2AP ID 10, New eNB UE X2AP ID 9, both
/// reject, INTEGER (0..4095) in two octets).
fn ue_context_release(old_id: u16, new_id: u16) -> Vec<u8> {
    let mut v = vec![
        0x00, 0x05, 0x40, 0x0f, 0x00, 0x00, 0x02, 0x00, 0x0a, 0x00, 0x02,
    ];
    v.extend_from_slice(&old_id.to_be_bytes());
    v.extend_from_slice(&[0x00, 0x09, 0x00, 0x02]);
    v.extend_from_slice(&new_id.to_be_bytes());
    v
}

// ------------------------------------------------------- one handover --

fn us(r: &Value, k: &str) -> Option<f64> {
    r["phases_us"][k].as_f64().map(|v| v / 1000.0)
}

/// What a node's status says, for one handover.
#[derive(Default)]
struct Snap {
    started: [u64; 2],
    seen: HashSet<(String, u64)>,
}

fn snap(s: &Value) -> Snap {
    let mut x = Snap::default();
    for (i, r) in ["source", "destination"].iter().enumerate() {
        x.started[i] = s["started"][r].as_u64().unwrap_or(0);
    }
    for r in s["recent"].as_array().into_iter().flatten() {
        if let (Some(role), Some(id)) = (r["role"].as_str(), r["id"].as_u64()) {
            x.seen.insert((role.to_string(), id));
        }
    }
    x
}

/// Records of `role` in `s` that `before` did not have, by id.
fn new_records(s: &Value, before: &Snap, role: &str) -> Vec<Value> {
    let mut v: Vec<Value> = s["recent"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| {
            r["role"] == role
                && r["id"]
                    .as_u64()
                    .is_some_and(|id| !before.seen.contains(&(role.to_string(), id)))
        })
        .cloned()
        .collect();
    v.sort_by_key(|r| r["id"].as_u64());
    v
}

/// Nothing under way or waiting for the UE on this node (session work
/// such as a commit's path switch included).
fn quiet(s: &Value) -> bool {
    let zero = |k: &str| s["in_progress"][k].as_u64().unwrap_or(0) == 0;
    zero("source")
        && zero("destination")
        && s["session_work"].as_u64().unwrap_or(0) == 0
        && s["handovers"].as_array().is_none_or(|a| a.is_empty())
        && s["waiting"].as_array().is_none_or(|a| a.is_empty())
}

/// One end of a handover, followed through its status.
struct Watch {
    ctl: PathBuf,
    role: &'static str,
    base: Snap,
    /// The mih-user is dead (killed, not restarted yet).
    dead: bool,
    was_killed: bool,
    /// Records of an instance that was killed.
    prior: Vec<Value>,
    records: Vec<Value>,
    last: Option<Value>,
}

impl Watch {
    fn new(ctl: PathBuf, base: Snap, role: &'static str) -> Watch {
        Watch {
            ctl,
            role,
            base,
            dead: false,
            was_killed: false,
            prior: vec![],
            records: vec![],
            last: None,
        }
    }

    fn killed(&mut self) {
        self.dead = true;
        self.was_killed = true;
        self.prior = std::mem::take(&mut self.records);
        self.last = None;
    }

    fn restarted(&mut self) {
        self.dead = false;
        self.base = Snap::default();
    }

    fn poll(&mut self) {
        if self.dead {
            return;
        }
        self.last = status(&self.ctl);
        if let Some(s) = &self.last {
            let mut r = self.prior.clone();
            r.extend(new_records(s, &self.base, self.role));
            self.records = r;
        }
    }

    fn started(&self) -> u64 {
        let i = usize::from(self.role != "source");
        self.last.as_ref().map_or(0, |s| {
            s["started"][self.role]
                .as_u64()
                .unwrap_or(0)
                .saturating_sub(self.base.started[i])
        })
    }

    fn started_any(&self) -> bool {
        self.started() > 0 || !self.records.is_empty()
    }

    /// Nothing under way here, and a record for every handover this
    /// instance started (a dead one is waited for by its restart).
    fn done(&self) -> bool {
        if self.dead {
            return true;
        }
        self.last.as_ref().is_some_and(|s| {
            let mine = self.records.len() - self.prior.len();
            quiet(s) && mine as u64 >= self.started()
        })
    }

    fn describe(&self) -> String {
        match &self.last {
            None if self.dead => "killed".into(),
            None => "no status".into(),
            Some(s) => json!({"in_progress": s["in_progress"], "handovers": s["handovers"], "waiting": s["waiting"]}).to_string(),
        }
    }
}

/// How one handover ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    Committed,
    RolledBack,
    /// The ends disagree, or nothing ended.
    Broken,
}

/// One handover, as the demo saw it.
pub struct Handover {
    pub n: u32,
    pub src: usize,
    pub dst: usize,
    pub to_failing: bool,
    pub end: End,
    /// Source records (more than one: the scheduler retried).
    pub src_records: Vec<Value>,
    pub dst_records: Vec<Value>,
    pub killed: Option<KillTarget>,
    /// The kill fired this long after the X2 trigger.
    pub kill_at: Option<Duration>,
    /// Where the UE is now (index in `Topology::enbcs`).
    pub location: usize,
    pub notes: Vec<String>,
    pub failures: Vec<String>,
    pub at_octet: u64,
    pub took: Duration,
}

impl Handover {
    /// The record that decided: the source's last.
    pub fn record(&self) -> Option<&Value> {
        self.src_records.last()
    }

    pub fn retries(&self) -> usize {
        // A killed source's first attempt left no record (it died with the
        // process): the restarted one's records are all retries.
        let lost = usize::from(
            self.killed == Some(KillTarget::Source)
                && self.kill_at.is_some()
                && !self.src_records.is_empty(),
        );
        (self.src_records.len() + lost).saturating_sub(1)
    }

    pub fn to_json(&self, t: &Topology) -> Value {
        json!({
            "n": self.n,
            "source": t.enbcs[self.src].id(),
            "destination": t.enbcs[self.dst].id(),
            "end": match self.end { End::Committed => "committed", End::RolledBack => "rolled_back", End::Broken => "broken" },
            "retries": self.retries(),
            "killed": self.killed.map(KillTarget::label),
            "kill_after_ms": self.kill_at.map(|d| d.as_secs_f64() * 1000.0),
            "served_by": t.enbcs[self.location].id(),
            "at_octet": self.at_octet,
            "took_ms": self.took.as_secs_f64() * 1000.0,
            "source_records": self.src_records,
            "destination_records": self.dst_records,
            "notes": self.notes,
            "failures": self.failures,
        })
    }
}

/// A daemon to restart at a given time.
struct Restart {
    k: usize,
    daemon: Daemon,
    at: Instant,
}

fn restart_now(t: &mut Topology, r: &Restart) -> Result<(), String> {
    t.reap(r.k, r.daemon);
    match r.daemon {
        Daemon::Mihfd => {
            t.start_mihfd(r.k, true)?;
            // The mih-user finds it at its next re-registration.
            let ctl = t.enbcs[r.k].ctl.clone();
            std::thread::sleep(Duration::from_millis(t.timers.register_interval_ms + 200));
            wait_for(
                "the mih-user to register with the restarted mihfd",
                10,
                || (status(&ctl)?["registered"] == true).then_some(()),
            )
        }
        Daemon::User => {
            t.start_user(r.k, true)?;
            // The example service reconnects to the restarted mih-user's
            // API socket and registers again.
            let ctl = t.enbcs[r.k].ctl.clone();
            wait_for(
                "the service to register with the restarted mih-user",
                15,
                || {
                    let s = status(&ctl)?;
                    (!s["services"].as_array()?.is_empty()).then_some(())
                },
            )?;
            // What it recovered from its journal (asked its peer, restored,
            // committed, retried) is over before the next trigger.
            wait_for("the restarted mih-user's recovery to end", 30, || {
                quiet(&status(&ctl)?).then_some(())
            })
        }
        Daemon::Service => t.start_service(r.k, true),
    }
}

/// Run handover `n` from `src` to `dst` until it ended at both ends.
fn one_handover(
    t: &mut Topology,
    args: &Args,
    progress: &AtomicU64,
    n: u32,
    src: usize,
    dst: usize,
    to_failing: bool,
) -> Result<Handover, String> {
    let mut h = Handover {
        n: n + 1,
        src,
        dst,
        to_failing,
        end: End::Broken,
        src_records: vec![],
        dst_records: vec![],
        killed: None,
        kill_at: None,
        location: src,
        notes: vec![],
        failures: vec![],
        at_octet: progress.load(Ordering::Relaxed),
        took: Duration::ZERO,
    };
    let (sctl, dctl) = (t.enbcs[src].ctl.clone(), t.enbcs[dst].ctl.clone());
    let s0 = snap(&status(&sctl).ok_or("the source's status does not answer")?);
    let d0 = snap(&status(&dctl).ok_or("the destination's status does not answer")?);

    // The kill, armed in the relay.
    let kill = args
        .kill
        .filter(|_| (n + 1) % args.kill_every == 0)
        .map(|k| {
            let (node, daemon, trigger, drop) = match k {
                KillTarget::Source => (
                    src,
                    Daemon::User,
                    Trigger::Ctd {
                        from: t.enbcs[src].idx,
                        to: t.enbcs[dst].idx,
                    },
                    true,
                ),
                KillTarget::Destination => (
                    dst,
                    Daemon::User,
                    Trigger::Ctd {
                        from: t.enbcs[src].idx,
                        to: t.enbcs[dst].idx,
                    },
                    true,
                ),
                KillTarget::DestinationAfterCtdr => (
                    dst,
                    Daemon::User,
                    Trigger::Ctdr {
                        from: t.enbcs[dst].idx,
                        to: t.enbcs[src].idx,
                    },
                    false,
                ),
                KillTarget::Mihfd => (
                    src,
                    Daemon::Mihfd,
                    Trigger::MihCommit {
                        from: t.enbcs[src].idx,
                        to: t.enbcs[dst].idx,
                    },
                    false,
                ),
            };
            (k, node, daemon, trigger, drop)
        });
    // --rollback kill: the failing eNBC's mih-user dies when its CTDR
    // reaches the relay: it has imported the sockets (still in repair
    // mode), its answer is lost with it, and the source must restore at
    // its CXTP timeout. The main loop restarts it (and its service).
    let failing_kill = to_failing && args.rollback == Rollback::Kill;
    let kill = kill.or_else(|| {
        failing_kill.then(|| {
            (
                KillTarget::Destination,
                dst,
                Daemon::User,
                Trigger::Ctdr {
                    from: t.enbcs[dst].idx,
                    to: t.enbcs[src].idx,
                },
                true,
            )
        })
    });
    if let Some((_, node, daemon, trigger, drop)) = kill {
        let pid = t.pid(node, daemon).ok_or("no process to kill")?;
        let relay = t.relay.as_ref().ok_or("--kill needs the relay")?;
        relay.arm(Arm { trigger, pid, drop });
    }

    let started = Instant::now();
    x2_handover(t, src, dst, n)?;

    let budget = t.timers.handover_budget();
    let deadline = started + budget;
    let mut restart: Option<Restart> = None;
    let mut w = [
        Watch::new(sctl, s0, "source"),
        Watch::new(dctl, d0, "destination"),
    ];
    let mut began = false;
    loop {
        check_interrupt()?;
        let now = Instant::now();
        if let (Some((k, node, daemon, _, _)), None) = (kill, h.kill_at) {
            if let Some(at) = t.relay.as_ref().and_then(Relay::take_fired) {
                h.killed = Some(k);
                h.kill_at = Some(at.saturating_duration_since(started));
                t.reap(node, daemon);
                if daemon == Daemon::User {
                    w[usize::from(node != src)].killed();
                }
                if !failing_kill {
                    restart = Some(Restart {
                        k: node,
                        daemon,
                        at: at + Duration::from_secs(1),
                    });
                }
            }
        }
        if let Some(r) = restart.as_ref().filter(|r| now >= r.at) {
            restart_now(t, r)?;
            h.notes.push(format!(
                "{} of {} killed and restarted",
                r.daemon.label(),
                t.enbcs[r.k].id()
            ));
            if r.daemon == Daemon::User {
                // A new instance: everything it records is new.
                w[usize::from(r.k != src)].restarted();
            }
            restart = None;
        }
        for (i, node) in [src, dst].into_iter().enumerate() {
            // A mih-user that died by other hands than the relay's (the
            // failing eNBC of --rollback kill kills itself). A kill the
            // relay made since this loop's check is taken at the next turn.
            let relay_fired = t.relay.as_ref().is_some_and(Relay::has_fired);
            if !w[i].dead && !relay_fired {
                let exited = t.enbcs[node]
                    .user
                    .as_mut()
                    .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
                if exited {
                    let code = t.enbcs[node]
                        .user
                        .as_mut()
                        .and_then(|c| c.try_wait().ok().flatten());
                    t.reap(node, Daemon::User);
                    w[i].killed();
                    if !failing_kill {
                        h.failures.push(format!(
                            "handover {}: the mih-user of {} exited ({})",
                            n + 1,
                            t.enbcs[node].id(),
                            code.map_or("?".into(), |c| c.to_string())
                        ));
                    }
                }
            }
            w[i].poll();
        }
        began |= w[0].started_any() || h.kill_at.is_some();
        if !began && now > started + Duration::from_secs(5) {
            let why = t.log_lines(src, Daemon::User, "not acted on", 1);
            h.failures.push(format!(
                "handover {}: the X2 trigger at {} was not acted on{}",
                n + 1,
                t.enbcs[src].id(),
                why.first().map(|l| format!(": {l}")).unwrap_or_default()
            ));
            break;
        }
        // The source has the handover's record (unless it was killed:
        // handovers in progress are not persisted); the destination has
        // one for each handover it started.
        let src_done = w[0].done() && (w[0].was_killed || !w[0].records.is_empty());
        let dst_done = w[1].done();
        if began && src_done && dst_done && restart.is_none() {
            break;
        }
        if now > deadline {
            h.failures.push(format!(
                "handover {}: did not end at both ends within {:.1} s (source: {}, destination: {})",
                n + 1,
                budget.as_secs_f64(),
                w[0].describe(),
                w[1].describe(),
            ));
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let [ws, wd] = w;
    h.src_records = ws.records;
    h.dst_records = wd.records;
    if let Some(relay) = &t.relay {
        relay.disarm();
    }
    if let Some(r) = restart.take() {
        // The handover ended before the restart was due: restart anyway.
        let wait = r.at.saturating_duration_since(Instant::now());
        std::thread::sleep(wait);
        restart_now(t, &r)?;
        h.notes.push(format!(
            "{} of {} killed and restarted",
            r.daemon.label(),
            t.enbcs[r.k].id()
        ));
    }
    if kill.is_some() && h.kill_at.is_none() {
        h.notes.push(format!(
            "the kill did not fire (the migration ended before {})",
            match args.kill {
                Some(KillTarget::Mihfd) => "the commit request",
                Some(KillTarget::DestinationAfterCtdr) => "the CTDR",
                _ => "the first CTD",
            }
        ));
    }
    h.took = started.elapsed();
    // The X2 handover is over at the radio side too (a restarted source
    // never heard of it).
    if h.killed != Some(KillTarget::Source) || h.kill_at.is_none() {
        let (old_id, new_id) = x2_ids(n);
        let _ = x2_send(t, src, &[&ue_context_release(old_id, new_id)]);
    }

    decide(t, &mut h, args);
    Ok(h)
}

/// From the records at both ends (and the UE's path), how the handover
/// ended and where the UE is.
fn decide(t: &Topology, h: &mut Handover, args: &Args) {
    let n = h.n;
    let src_out = h
        .record()
        .and_then(|r| r["outcome"].as_str())
        .map(String::from);
    let dst_out = h
        .dst_records
        .last()
        .and_then(|r| r["outcome"].as_str())
        .map(String::from);
    let src_killed = h.killed == Some(KillTarget::Source) && h.kill_at.is_some();
    let dst_killed = matches!(
        h.killed,
        Some(KillTarget::Destination | KillTarget::DestinationAfterCtdr)
    ) && h.kill_at.is_some();
    let (end, location) = match (src_out.as_deref(), dst_out.as_deref()) {
        (Some("committed"), Some("committed")) => (End::Committed, h.dst),
        (Some("committed"), None) if dst_killed => {
            h.failures.push(format!(
                "handover {n}: the source committed but the destination was killed"
            ));
            (End::Broken, h.dst)
        }
        (Some("rolled_back"), Some("rolled_back")) => (End::RolledBack, h.src),
        (Some("rolled_back"), None) => {
            // The destination never knew (the commit request never
            // reached it, or it refused at admission), or it was killed.
            (End::RolledBack, h.src)
        }
        (None, Some("committed")) if src_killed => (End::Committed, h.dst),
        (None, Some("rolled_back")) if src_killed => (End::RolledBack, h.src),
        (None, None) if src_killed => (End::RolledBack, h.src),
        (s, d) => {
            h.failures.push(format!(
                "handover {n}: the ends disagree or have no record (source {}, destination {})",
                s.unwrap_or("none"),
                d.unwrap_or("none")
            ));
            let loc = if s == Some("committed") { h.dst } else { h.src };
            (End::Broken, loc)
        }
    };
    h.end = end;
    h.location = location;
    if src_killed {
        h.notes.push(
            "the source's record died with it (handovers in progress are not persisted)".into(),
        );
    }
    if dst_killed && h.killed == Some(KillTarget::Destination) {
        h.notes.push(
            "the destination's record died with it (handovers in progress are not persisted)"
                .into(),
        );
    }
    // What the scenario expects.
    match (end, h.to_failing) {
        (End::Committed, true) => h
            .failures
            .push(format!("handover {n}: committed, expected a rollback")),
        (End::RolledBack, false) if !args.faulty() => h
            .failures
            .push(format!("handover {n}: rolled back, expected a commit")),
        _ => {}
    }
    // Where the UE's packets really go.
    match t.ue_path() {
        Ok(UePath::Enbc(k)) if k == location => {}
        Ok(UePath::Enbc(k)) => {
            h.failures.push(format!(
                "handover {n}: the records say the UE is served by {}, its path goes to {}",
                t.enbcs[location].id(),
                t.enbcs[k].id()
            ));
            h.location = k;
        }
        Ok(UePath::Held) => h.failures.push(format!(
            "handover {n}: the UE's path is still held (blackhole): nobody restored or took the session"
        )),
        Ok(UePath::Other(r)) => h
            .failures
            .push(format!("handover {n}: unexpected UE route {r:?}")),
        Err(e) => h.failures.push(format!("handover {n}: {e}")),
    }
}

fn print_handover(t: &Topology, h: &Handover) {
    let rec = h.record().cloned().unwrap_or(Value::Null);
    let f = |k| us(&rec, k).map_or("-".to_string(), |v| format!("{v:.2}"));
    let size = rec["sizes"]["app_octets"].as_u64().unwrap_or(0)
        + rec["sizes"]["session_octets"].as_u64().unwrap_or(0);
    let outcome = match h.end {
        End::Committed => "committed",
        End::RolledBack => "rolled_back",
        End::Broken => "BROKEN",
    };
    let mut extra = String::new();
    if let Some(c) = rec["cause"].as_str() {
        extra += &format!("  [{c}]");
    }
    if h.retries() > 0 {
        extra += &format!("  ({} retries)", h.retries());
    }
    if let Some(k) = h.killed {
        extra += &format!(
            "  {{{} killed at +{:.1} ms}}",
            k.label(),
            h.kill_at.unwrap_or_default().as_secs_f64() * 1000.0
        );
    }
    if let Some(d) = h.dst_records.last() {
        let c = d["cause_label"].as_str().unwrap_or("none");
        if c != "none" {
            extra += &format!(
                "  (destination: {} {c})",
                d["outcome"].as_str().unwrap_or("?")
            );
        }
    }
    println!(
        "#{:<3} {} -> {}  {:<11} total {:>7} ms  (MIH {} | app {} | sockets {} | CXTP {})  context {:.1} KB  at {:.1} MB{}",
        h.n,
        t.enbcs[h.src].id(),
        t.enbcs[h.dst].id(),
        outcome,
        f("total"),
        f("mih_commit"),
        f("app_data"),
        f("socket_data"),
        f("cxtp"),
        size as f64 / 1024.0,
        h.at_octet as f64 / 1e6,
        extra
    );
    for x in &h.failures {
        println!("     ! {x}");
    }
}

// ------------------------------------------------------------------ run --

/// Thousands of sessions need more descriptors than the usual 1024 (the
/// client here, the services and the mih-users inherit the limit): the
/// soft limit goes up to the hard one, which must hold `need`.
fn raise_fd_limit(need: u64) -> Result<(), String> {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write one `struct rlimit`.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) != 0 {
            return Err(format!("getrlimit: {}", std::io::Error::last_os_error()));
        }
        if l.rlim_max < need {
            return Err(format!(
                "the open file limit is {} (hard); {need} are needed for these sessions (ulimit -Hn)",
                l.rlim_max
            ));
        }
        l.rlim_cur = l.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &l) != 0 {
            return Err(format!(
                "raising the open file limit: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

fn run(args: &Args) -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(
            "run as root: the demo creates network namespaces, and TCP_REPAIR needs CAP_NET_ADMIN"
                .into(),
        );
    }
    let bins = match &args.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()
            .map_err(|e| e.to_string())?
            .parent()
            .ok_or("no executable directory")?
            .to_path_buf(),
    };
    if args.fleet() && (args.rollback != Rollback::None || args.kill.is_some()) {
        return Err("--rollback and --kill run with one UE (not with --ues, --services, --sessions-per-ue or --storm)".into());
    }
    let mut needed = vec!["mihfd", "mih-user", "example-http-service"];
    if args.services.iter().any(|s| *s != fleet::Svc::Http) {
        needed.push("example-session-service");
    }
    if !args.services.contains(&fleet::Svc::Http) {
        return Err("--services: http is always one of them (the eNBC's first service)".into());
    }
    if args.fleet() {
        // The client's sessions and a service's: 4 per UE at most, each.
        raise_fd_limit(8 * u64::from(args.ues) + 1024)?;
    }
    for b in needed {
        if !bins.join(b).exists() {
            return Err(format!(
                "{} not found: build the binaries first (cargo build --release --bins) or pass --bin-dir",
                bins.join(b).display()
            ));
        }
    }
    if args.loss > 0.0 {
        faults::check_nft()?;
    }
    let timers = Timers::for_backhaul(args.extra_one_way_ms());
    let file_size = if args.file_size > 0 {
        args.file_size
    } else if args.fleet() {
        // The fleet's downloads stop when the run does.
        1 << 40
    } else {
        // Handovers take a few ms each plus the pause; faults add
        // retransmission waits (about a retransmission timeout per lost
        // packet) and the kills their timeouts. Leave spare.
        let mut per_ms = args.interval_ms as f64 + 60.0 + 4.0 * args.extra_one_way_ms() as f64;
        // Per handover about 8 MIH datagrams and 5 CXTP segments can be
        // lost, each costing a retransmission timeout (MIH's, or TCP's
        // 200 ms doubling); 200 handovers at 30 % took 0.88 s each.
        per_ms += args.loss / 100.0 * (8.0 * timers.retransmission_timeout_ms as f64 + 1500.0);
        let mut secs = f64::from(args.handovers) * per_ms / 1000.0;
        if let Some(k) = args.kill {
            let each = match k {
                KillTarget::Source => timers.context_timeout_ms,
                KillTarget::Destination => timers.transfer_timeout_ms,
                KillTarget::DestinationAfterCtdr => timers.complete_timeout_ms,
                KillTarget::Mihfd => timers.mih_timeout_ms,
            } as f64
                / 1000.0
                + 2.0;
            secs += f64::from(args.handovers / args.kill_every) * each;
        }
        if args.rollback == Rollback::Kill {
            secs += f64::from(args.handovers / args.rollback_every)
                * (timers.transfer_timeout_ms as f64 / 1000.0 + 1.0);
        }
        let spare = if args.faulty() { 1.3 } else { 1.0 };
        ((args.rate() as f64 * (secs * spare + 3.0)) as u64).max(1 << 20)
    };
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let out = args.out.canonicalize().map_err(|e| e.to_string())?;
    let logs = out.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| e.to_string())?;
    topology::remove_stale();

    println!(
        "handover demo: {} handovers between {} eNBCs{}, {:.1} MB file at {:.2} MB/s; logs in {}",
        args.handovers,
        args.enbcs,
        match args.rollback {
            Rollback::None => String::new(),
            r => format!(
                " (+1 failing eNBC: {r:?}, every {}th handover)",
                args.rollback_every
            ),
        },
        file_size as f64 / 1e6,
        args.rate() as f64 / 1e6,
        logs.display()
    );
    if args.faulty() {
        println!("faults on the backhaul: {}", args.faults_line());
    }
    println!(
        "timers: mihfd retransmission {} ms x{} (max {}), lifetime {} ms; mih-user MIH {} ms, CXTP {} ms, context {} ms, complete {} ms",
        timers.retransmission_timeout_ms,
        timers.retransmission_backoff,
        timers.max_retransmissions,
        timers.transaction_lifetime_ms,
        timers.mih_timeout_ms,
        timers.transfer_timeout_ms,
        timers.context_timeout_ms,
        timers.complete_timeout_ms
    );
    let mut t = Topology::build(args, file_size, bins, logs.clone(), timers)?;
    if args.loss > 0.0 {
        for e in &t.enbcs {
            faults::install_loss(&e.ns, args.loss)?;
        }
    }
    if args.needs_relay() {
        let seed = args.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
        let cfg = RelayConfig {
            nodes: t.enbcs.iter().map(|e| e.idx).collect(),
            delay: Duration::from_millis(args.delay_ms),
            reorder: args.reorder.then(|| Duration::from_millis(args.reorder_ms)),
            duplicate_pct: args.duplicate,
            seed,
        };
        t.relay = Some(Relay::start(&t.core_ns, cfg)?);
        println!("relay in {} (seed {seed})", t.core_ns);
    }
    t.start()?;
    println!(
        "topology up: namespaces {}-{{ue,core,e1..e{}}}",
        t.prefix,
        t.enbcs.len()
    );

    if t.fleet.is_some() {
        return fleet::run(&mut t, args, &out);
    }
    let before = client_resets(&t.ue_ns)?;
    let progress = Arc::new(AtomicU64::new(0));
    let (tx, rx) = mpsc::channel();
    {
        let p = progress.clone();
        let ns = t.ue_ns.clone();
        std::thread::spawn(move || {
            let r = match netns::enter(&netns::path(&ns)) {
                Ok(()) => client(file_size, p),
                Err(e) => ClientResult {
                    error: Some(e.to_string()),
                    ..ClientResult::default()
                },
            };
            let _ = tx.send(r);
        });
    }
    wait_for("the download to start", 10, || {
        (progress.load(Ordering::Relaxed) > 0).then_some(())
    })?;

    let normal = args.enbcs as usize;
    let failing = (args.rollback != Rollback::None).then_some(normal);
    let mut cur = 0usize;
    let mut next_normal = 1usize;
    let mut hands: Vec<Handover> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    for n in 0..args.handovers {
        check_interrupt()?;
        std::thread::sleep(Duration::from_millis(args.interval_ms));
        if progress.load(Ordering::Relaxed) >= file_size {
            failures.push(format!(
                "the download ended after {n} handovers: raise --file-size or lower --rate"
            ));
            break;
        }
        let to_failing = failing.is_some() && (n + 1) % args.rollback_every == 0;
        let dst = if to_failing {
            failing.unwrap_or(0)
        } else {
            next_normal
        };
        let h = one_handover(&mut t, args, &progress, n, cur, dst, to_failing)?;
        print_handover(&t, &h);
        // The next handover starts wherever the UE really is.
        if h.location != cur {
            cur = h.location;
            if cur < normal {
                next_normal = (cur + 1) % normal;
            }
        }
        if to_failing && args.rollback == Rollback::Kill {
            t.restart(dst)?;
        }
        let stop = !h.failures.is_empty() && h.end == End::Broken;
        failures.extend(h.failures.iter().cloned());
        hands.push(h);
        if stop {
            break;
        }
        // The download goes on from wherever the socket now lives.
        let at = progress.load(Ordering::Relaxed);
        let moved = wait_for("the download to continue after the handover", 10, || {
            (progress.load(Ordering::Relaxed) > at || progress.load(Ordering::Relaxed) >= file_size)
                .then_some(())
        });
        if let Err(e) = moved {
            failures.push(format!("handover {}: {e}", n + 1));
            break;
        }
    }
    println!("handovers done; waiting for the download to finish");
    let remaining = file_size.saturating_sub(progress.load(Ordering::Relaxed));
    let wait = Duration::from_secs_f64(remaining as f64 / args.rate().max(1) as f64)
        + Duration::from_secs(30);
    let end = Instant::now() + wait;
    let result = loop {
        check_interrupt()?;
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(res) => break res,
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < end => {}
            Err(_) => return Err("the client did not finish".into()),
        }
    };
    let after = client_resets(&t.ue_ns)?;
    let mut loss = None;
    if args.loss > 0.0 {
        let mut c = faults::LossCounters::default();
        for e in &t.enbcs {
            match faults::read_loss(&e.ns) {
                Ok(x) => c.add(&x),
                Err(e) => failures.push(e),
            }
        }
        loss = Some(c);
    }
    let relay = t.relay.as_ref().map(|r| (r.stats(), r.line()));
    report::report(
        args,
        &out,
        &t,
        report::Outcome {
            file_size,
            client: &result,
            resets: after.saturating_sub(before),
            hands: &hands,
            failures,
            loss,
            relay,
        },
    )
}

fn main() -> ExitCode {
    let args = Args::parse();
    install_signals();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("handover-demo: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ue_context_release_matches_the_pycrate_vector() {
        assert_eq!(
            hex::encode(ue_context_release(17, 42)),
            "0005400f000002000a0002001100090002002a"
        );
        let pdu = mih_user::x2ap::decode(&ue_context_release(4000, 1)).unwrap();
        match pdu.message {
            mih_user::x2ap::Message::UeContextRelease(r) => {
                assert_eq!((r.old_enb_ue_x2ap_id, r.new_enb_ue_x2ap_id), (4000, 1))
            }
            m => panic!("{m:?}"),
        }
    }

    #[test]
    fn timers_survive_two_lost_commits_and_tcp_retransmissions() {
        let t = Timers::for_backhaul(0);
        let r = t.retransmission_timeout_ms;
        // Sends at 0, R, 3R: the third is answered before the timeout.
        assert!(t.mih_timeout_ms > 3 * r + 100);
        // And the fifth, mihfd's last (four losses) too.
        assert!(t.mih_timeout_ms > 15 * r + 100);
        // TCP: 200 + 400 + 800 ms of retransmission timers in a row.
        assert!(t.transfer_timeout_ms > 1400 + t.import_timeout_ms);
        assert!(t.ack_delay_ms < r);
        assert!(t.transaction_lifetime_ms >= 31 * r);
        // With 50 ms of delay the round trip is in the timers.
        let d = Timers::for_backhaul(50);
        assert!(d.retransmission_timeout_ms > 100);
        assert!(d.mih_timeout_ms > 15 * d.retransmission_timeout_ms + 100);
    }
}
