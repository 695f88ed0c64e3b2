//! Many UEs, several services and sessions each, moved one by one or in a
//! storm (`--ues`, `--services`, `--sessions-per-ue`, `--storm`).
//!
//! ```text
//! UE namespace: 10.77.0.2 .. 10.77.x.y on lo, one each per UE;
//!   ip rule from <UE> lookup <1000 + UE - 10.77.0.0>; in that table
//!   10.99.0.1/32 via 10.231.<serving eNBC>.1 (the hold and the path
//!   switch of each mih-user change that table only: `table_per_ue`)
//! eNBC i: 10.77.0.0/16 via 10.231.i.2; services on 10.99.0.1:
//!   8080 HTTP progressive download (example-http-service)
//!   8081 interactive request/response (example-session-service)
//!   8082 request/response on a large per-UE state (example-session-service
//!        --state-bytes)
//! ```
//!
//! The client is one tokio thread in the UE namespace: every session is a
//! task bound to its UE's address that checks every octet (the download
//! against the content rule, every response with
//! [`testbed::session::SessionChecker`]) and records its longest pause (the
//! longest gap between two reads of a download; the longest wait for a
//! response). A round hands every UE over from where it is to the next
//! eNBC: with `--storm` every UE's X2 trigger within `--storm-window-ms`,
//! otherwise one UE after the other (each after the previous one ended).
//! Each round is waited for at both ends, read back from the daemons'
//! `migration finished` log lines, and followed by a check that every
//! session moves again.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime};

use clap::ValueEnum;
use mih_user::sessions::netns;
use serde_json::{json, Value};

use crate::floor;
use testbed::session::SessionChecker;
use testkit::netns::ip;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::topology::{Daemon, Topology, SEED, SERVICE_IP, UL_TEID};
use crate::{check_interrupt, status, wait_every, wait_for, Args};

/// The UEs' prefix.
pub const UE_PREFIX: &str = "10.77.0.0/16";
const UE_BASE: u32 = 0x0a4d_0000;
/// The UEs' routing tables: `TABLE_BASE + (UE − 10.77.0.0)`.
const TABLE_BASE: u32 = 1000;
/// Most UEs (addresses 10.77.0.2 ..).
pub const MAX_UES: u32 = 4000;

/// UE `i`'s address.
pub fn ue_ip(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(UE_BASE + 2 + i)
}

/// UE `i`'s routing table in the UE namespace.
fn table_of(i: u32) -> u32 {
    TABLE_BASE + 2 + i
}

/// The hook keys that give each UE its own table.
pub fn hook_tables() -> String {
    format!("table = {TABLE_BASE}\ntable_per_ue = \"{UE_PREFIX}\"\n")
}

/// A service of the fleet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, ValueEnum)]
pub enum Svc {
    /// HTTP progressive download (example-http-service, port 8080).
    Http,
    /// Interactive request/response, traffic both ways (example-session-
    /// service, port 8081).
    Interactive,
    /// Request/response on a per-UE state of --state-kb (example-session-
    /// service --state-bytes, port 8082).
    State,
}

impl Svc {
    pub fn label(self) -> &'static str {
        match self {
            Svc::Http => "http",
            Svc::Interactive => "interactive",
            Svc::State => "state",
        }
    }

    fn port(self) -> u16 {
        match self {
            Svc::Http => crate::topology::SERVICE_PORT,
            Svc::Interactive => 8081,
            Svc::State => 8082,
        }
    }
}

/// What the fleet is.
#[derive(Clone, Debug)]
pub struct Plan {
    pub ues: u32,
    pub services: Vec<Svc>,
    /// Sessions per UE: UE `i` has `lo + i % (hi - lo + 1)`.
    pub sessions: (u32, u32),
    pub storm: bool,
    pub window: Duration,
    pub state_bytes: u32,
    pub request_interval: Duration,
    /// Requests in flight per interactive session.
    pub pipeline: usize,
    /// The mih-users' `admission.max_incoming` (None: the default).
    pub max_incoming: Option<u32>,
}

/// `N` or `LO-HI` (1 to 4).
pub fn parse_sessions(s: &str) -> Result<(u32, u32), String> {
    let (lo, hi) = match s.split_once('-') {
        Some((a, b)) => (a.trim(), b.trim()),
        None => (s.trim(), s.trim()),
    };
    let p = |x: &str| x.parse::<u32>().map_err(|e| format!("{x:?}: {e}"));
    let (lo, hi) = (p(lo)?, p(hi)?);
    if !(1..=4).contains(&lo) || !(lo..=4).contains(&hi) {
        return Err("sessions per UE: N or LO-HI, 1 to 4".into());
    }
    Ok((lo, hi))
}

impl Plan {
    /// The plan, when the arguments ask for more than the one UE with one
    /// download.
    pub(crate) fn from_args(a: &Args) -> Option<Plan> {
        let services: Vec<Svc> = a.services.clone();
        let multi = a.ues > 1 || a.storm || services != [Svc::Http] || a.sessions_per_ue != (1, 1);
        multi.then(|| Plan {
            ues: a.ues,
            services,
            sessions: a.sessions_per_ue,
            storm: a.storm,
            window: Duration::from_millis(a.storm_window_ms),
            state_bytes: (a.state_kb * 1024) as u32,
            request_interval: Duration::from_millis(a.request_interval_ms),
            pipeline: 2,
            max_incoming: a.max_incoming,
        })
    }

    fn sessions_of(&self, i: u32) -> u32 {
        let (lo, hi) = self.sessions;
        lo + i % (hi - lo + 1)
    }

    /// The service of UE `i`'s session `j`.
    fn service_of(&self, i: u32, j: u32) -> Svc {
        self.services[((i + j) as usize) % self.services.len()]
    }

    fn total_sessions(&self) -> u32 {
        (0..self.ues).map(|i| self.sessions_of(i)).sum()
    }

    /// Addresses, rules and tables of every UE in namespace `ns` (one
    /// `ip -batch`).
    pub fn ue_namespace(&self, dir: &Path, ns: &str) -> Result<(), String> {
        let mut b = String::new();
        for i in 0..self.ues {
            let (a, t) = (ue_ip(i), table_of(i));
            b += &format!("addr add {a}/32 dev lo\n");
            b += &format!("rule add from {a} lookup {t} pref 100\n");
            b += &format!("route add {SERVICE_IP}/32 via 10.231.1.1 dev ue1 table {t}\n");
        }
        let path = dir.join("ue-namespace.batch");
        std::fs::write(&path, b).map_err(|e| format!("{}: {e}", path.display()))?;
        ip(&["-n", ns, "-batch", &path.display().to_string()])?;
        Ok(())
    }

    /// The mih-user's `[schedule]` and `[[ues]]` for the fleet.
    pub fn user_toml(&self) -> String {
        // A storm queues most triggers behind `max_outgoing`: room for all.
        let mut s = format!(
            "[schedule]\nmax_queued = {}\nqueue_deadline_ms = 60000\n\n",
            (self.ues as usize).clamp(1024, 65_536)
        );
        if let Some(n) = self.max_incoming {
            // A destination that admits fewer UEs at once than a source
            // sends: its refusals roll back, and the source's scheduler
            // retries them.
            s += &format!("[admission]\nmax_incoming = {n}\n\n");
        }
        for i in 0..self.ues {
            s += &format!(
                "[[ues]]\nue_address = \"{}\"\nul_gtp_teid = {}\n\n",
                ue_ip(i),
                UL_TEID + i
            );
        }
        s
    }

    /// More options of the HTTP service: connections for every session,
    /// writes of a hundredth of a second at the rate.
    pub fn http_args(&self, rate: u64) -> Vec<String> {
        vec![
            "--max-connections".into(),
            (4 * self.ues + 64).to_string(),
            "--chunk".into(),
            (rate / 100).clamp(512, 16 * 1024).to_string(),
        ]
    }

    /// The other services of an eNBC whose sockets start with `prefix`:
    /// (log name, program, arguments).
    pub fn other_services(&self, prefix: &str) -> Vec<(String, &'static str, Vec<String>)> {
        let mut v = Vec::new();
        for (svc, fpt, state) in [
            (Svc::Interactive, "0xFF11", 0u32),
            (Svc::State, "0xFF12", self.state_bytes),
        ] {
            if !self.services.contains(&svc) {
                continue;
            }
            v.push((
                svc.label().to_string(),
                "example-session-service",
                vec![
                    "--listen".into(),
                    format!("{SERVICE_IP}:{}", svc.port()),
                    "--api-socket".into(),
                    format!("{prefix}-api.sock"),
                    "--handoff-socket".into(),
                    format!("{prefix}-handoff.sock"),
                    "--service-id".into(),
                    svc.label().into(),
                    "--fpt".into(),
                    fpt.into(),
                    "--state-bytes".into(),
                    state.to_string(),
                    "--max-connections".into(),
                    (4 * self.ues + 64).to_string(),
                ],
            ));
        }
        v
    }
}

// --------------------------------------------------------------- client --

/// One session's view, kept up to date while it runs.
#[derive(Default)]
struct Live {
    octets: AtomicU64,
}

/// What a session saw, at the end.
#[derive(Clone, Debug)]
pub struct SessionStat {
    pub ue: u32,
    pub svc: Svc,
    pub octets: u64,
    pub answered: u64,
    pub longest_pause: Duration,
    pub error: Option<String>,
}

impl SessionStat {
    fn new(ue: u32, svc: Svc) -> SessionStat {
        SessionStat {
            ue,
            svc,
            octets: 0,
            answered: 0,
            longest_pause: Duration::ZERO,
            error: None,
        }
    }
}

struct Session {
    ue: u32,
    j: u32,
    svc: Svc,
    /// Index of this session among its UE's sessions to the same service.
    nth: u32,
}

fn sessions(plan: &Plan) -> Vec<Session> {
    let mut v = Vec::new();
    for i in 0..plan.ues {
        let mut nth: HashMap<Svc, u32> = HashMap::new();
        for j in 0..plan.sessions_of(i) {
            let svc = plan.service_of(i, j);
            let n = nth.entry(svc).or_default();
            v.push(Session {
                ue: i,
                j,
                svc,
                nth: *n,
            });
            *n += 1;
        }
    }
    v
}

async fn connect(ue: u32, port: u16) -> std::io::Result<tokio::net::TcpStream> {
    let s = tokio::net::TcpSocket::new_v4()?;
    s.bind(SocketAddr::from((ue_ip(ue), 0)))?;
    let to: SocketAddr = format!("{SERVICE_IP}:{port}").parse().expect("address");
    tokio::time::timeout(Duration::from_secs(10), s.connect(to))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))?
}

/// A download of a file far larger than the run, checked octet by octet.
async fn http_session(s: &Session, live: &Live, stop: &AtomicBool) -> SessionStat {
    let mut st = SessionStat::new(s.ue, s.svc);
    let name = format!("u{}s{}.bin", s.ue, s.j);
    let r: Result<(), String> = async {
        let mut c = connect(s.ue, s.svc.port())
            .await
            .map_err(|e| format!("connect: {e}"))?;
        c.write_all(format!("GET /file/{name} HTTP/1.1\r\nHost: demo\r\n\r\n").as_bytes())
            .await
            .map_err(|e| format!("request: {e}"))?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut want = vec![0u8; 64 * 1024];
        let mut head = Vec::new();
        let mut body_at = None;
        let mut last = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let n = match tokio::time::timeout(Duration::from_millis(200), c.read(&mut buf)).await {
                Err(_) => continue,
                Ok(Ok(0)) => return Err(format!("connection closed at octet {}", st.octets)),
                Ok(Ok(n)) => n,
                Ok(Err(e)) => return Err(format!("read at octet {}: {e}", st.octets)),
            };
            let now = Instant::now();
            let data = &buf[..n];
            if body_at.is_none() {
                head.extend_from_slice(data);
                let Some(p) = head.windows(4).position(|w| w == b"\r\n\r\n") else {
                    if head.len() > 4096 {
                        return Err("HTTP head too long".into());
                    }
                    continue;
                };
                if !head.starts_with(b"HTTP/1.1 200") {
                    return Err(format!(
                        "unexpected head {:?}",
                        String::from_utf8_lossy(&head[..p])
                    ));
                }
                let rest = head.split_off(p + 4);
                body_at = Some(());
                want.resize(want.len().max(rest.len()), 0);
                check_body(&name, st.octets, &rest, &mut want)?;
                st.octets += rest.len() as u64;
                last = now;
                continue;
            }
            st.longest_pause = st.longest_pause.max(now - last);
            last = now;
            check_body(&name, st.octets, data, &mut want)?;
            st.octets += data.len() as u64;
            live.octets.store(st.octets, Ordering::Relaxed);
        }
        Ok(())
    }
    .await;
    st.error = r.err();
    st
}

fn check_body(name: &str, at: u64, got: &[u8], want: &mut [u8]) -> Result<(), String> {
    let want = &mut want[..got.len()];
    testbed::content::fill(SEED, name, at, want);
    if got != want {
        let i = got.iter().zip(want.iter()).position(|(a, b)| a != b);
        return Err(format!(
            "wrong octet at offset {}",
            at + i.unwrap_or(0) as u64
        ));
    }
    Ok(())
}

/// Requests every `interval` (at most `pipeline` unanswered), every
/// response checked; the pause is the longest wait for a response.
async fn rr_session(
    s: &Session,
    plan: &Plan,
    live: &Live,
    stop: &AtomicBool,
    seed: u64,
) -> SessionStat {
    let mut st = SessionStat::new(s.ue, s.svc);
    let state = if s.svc == Svc::State {
        plan.state_bytes
    } else {
        0
    };
    // Up to 4 sessions of a UE share its state: each its own quarter.
    let quarter = state / 4;
    let region = quarter * s.nth..quarter * (s.nth + 1);
    let mut checker = SessionChecker::new(seed, state, region, 1024);
    let r: Result<(), String> = async {
        let c = connect(s.ue, s.svc.port())
            .await
            .map_err(|e| format!("connect: {e}"))?;
        // Each request leaves at once (no Nagle wait behind a delayed ACK).
        let _ = c.set_nodelay(true);
        let (mut rd, mut wr) = c.into_split();
        let mut sent: std::collections::VecDeque<Instant> = Default::default();
        let mut tick = tokio::time::interval(plan.request_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut buf = vec![0u8; 64 * 1024];
        let mut out = Vec::new();
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    if checker.outstanding() < plan.pipeline {
                        out.clear();
                        checker.next_request(&mut out);
                        sent.push_back(Instant::now());
                        wr.write_all(&out).await.map_err(|e| format!("write: {e}"))?;
                    }
                    // A response overdue for this long is a stall.
                    if let Some(t) = sent.front() {
                        st.longest_pause = st.longest_pause.max(t.elapsed());
                    }
                }
                r = rd.read(&mut buf) => {
                    let n = match r {
                        Ok(0) => return Err(format!("connection closed after {} responses", checker.answered())),
                        Ok(n) => n,
                        Err(e) => return Err(format!("read: {e}")),
                    };
                    let done = checker.on_bytes(&buf[..n])?;
                    let now = Instant::now();
                    for _ in 0..done {
                        if let Some(t) = sent.pop_front() {
                            st.longest_pause = st.longest_pause.max(now - t);
                        }
                    }
                    st.octets += n as u64;
                    live.octets.store(st.octets, Ordering::Relaxed);
                }
            }
        }
        Ok(())
    }
    .await;
    st.answered = checker.answered();
    st.error = r.err();
    st
}

/// The running client.
pub struct Client {
    live: Vec<Arc<Live>>,
    stop: Arc<AtomicBool>,
    done: mpsc::Receiver<Vec<SessionStat>>,
    started: Arc<AtomicU64>,
}

impl Client {
    /// Start every session from a thread in the UE namespace.
    pub fn start(plan: &Plan, ue_ns: &str) -> Result<Client, String> {
        let list = sessions(plan);
        let live: Vec<Arc<Live>> = list.iter().map(|_| Arc::new(Live::default())).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let started = Arc::new(AtomicU64::new(0));
        let (tx, done) = mpsc::channel();
        let (plan2, live2, stop2, started2) =
            (plan.clone(), live.clone(), stop.clone(), started.clone());
        let path = netns::path(ue_ns);
        std::thread::Builder::new()
            .name("fleet-client".into())
            .spawn(move || {
                let stats = match netns::enter(&path) {
                    Err(e) => vec![SessionStat {
                        error: Some(format!("entering the UE namespace: {e}")),
                        ..SessionStat::new(0, Svc::Http)
                    }],
                    Ok(()) => {
                        let rt = tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                            .expect("tokio runtime");
                        rt.block_on(async move {
                            let plan = Arc::new(plan2);
                            let mut tasks = Vec::new();
                            for (k, s) in list.into_iter().enumerate() {
                                let (plan, live, stop, started) = (
                                    plan.clone(),
                                    live2[k].clone(),
                                    stop2.clone(),
                                    started2.clone(),
                                );
                                tasks.push(tokio::spawn(async move {
                                    started.fetch_add(1, Ordering::Relaxed);
                                    match s.svc {
                                        Svc::Http => http_session(&s, &live, &stop).await,
                                        _ => {
                                            let seed =
                                                SEED ^ (u64::from(s.ue) << 8) ^ u64::from(s.j);
                                            rr_session(&s, &plan, &live, &stop, seed).await
                                        }
                                    }
                                }));
                                // Connects in small steps (no SYN flood at the service).
                                if k % 64 == 63 {
                                    tokio::time::sleep(Duration::from_millis(5)).await;
                                }
                            }
                            let mut out = Vec::new();
                            for t in tasks {
                                if let Ok(s) = t.await {
                                    out.push(s);
                                }
                            }
                            out
                        })
                    }
                };
                let _ = tx.send(stats);
            })
            .map_err(|e| e.to_string())?;
        Ok(Client {
            live,
            stop,
            done,
            started,
        })
    }

    fn octets(&self) -> Vec<u64> {
        self.live
            .iter()
            .map(|l| l.octets.load(Ordering::Relaxed))
            .collect()
    }

    /// Wait until every session has received more than `since`.
    fn wait_moving(&self, since: &[u64], secs: u64) -> Result<(), String> {
        wait_for("every session to move", secs, || {
            self.octets()
                .iter()
                .zip(since)
                .all(|(now, then)| now > then)
                .then_some(())
        })
        .map_err(|e| {
            let stuck: Vec<usize> = self
                .octets()
                .iter()
                .zip(since)
                .enumerate()
                .filter(|(_, (n, t))| n <= t)
                .map(|(k, _)| k)
                .take(10)
                .collect();
            format!("{e}: sessions {stuck:?} (of {}) did not", self.live.len())
        })
    }

    fn finish(self) -> Result<Vec<SessionStat>, String> {
        self.stop.store(true, Ordering::Relaxed);
        self.done
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| "the client did not stop".to_string())
    }
}

// ---------------------------------------------------------------- storm --

/// One `migration finished` line of a mih-user log.
#[derive(Clone, Debug)]
struct Rec {
    ue: String,
    role: String,
    outcome: String,
    cause: String,
    /// When it was logged (its end).
    at: SystemTime,
    f: Value,
}

impl Rec {
    /// The migration's context octets (application and sessions).
    fn context_octets(&self) -> f64 {
        self.us("app_octets").unwrap_or(0.0) + self.us("session_octets").unwrap_or(0.0)
    }

    fn us(&self, k: &str) -> Option<f64> {
        self.f[k].as_i64().filter(|v| *v >= 0).map(|v| v as f64)
    }
}

/// Reads the `migration finished` lines a log gained since the last call.
struct LogTail {
    path: PathBuf,
    at: u64,
}

impl LogTail {
    fn new(path: PathBuf) -> LogTail {
        let at = std::fs::metadata(&path).map_or(0, |m| m.len());
        LogTail { path, at }
    }

    fn read(&mut self) -> Vec<Rec> {
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return vec![];
        };
        if f.seek(SeekFrom::Start(self.at)).is_err() {
            return vec![];
        }
        let mut out = Vec::new();
        let mut r = BufReader::new(f);
        let mut line = String::new();
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(n) if !line.ends_with('\n') => {
                    // A line still being written: read it next time.
                    let _ = n;
                    break;
                }
                Ok(n) => {
                    self.at += n as u64;
                    if !line.contains("\"migration finished\"") {
                        continue;
                    }
                    let Ok(v) = serde_json::from_str::<Value>(&line) else {
                        continue;
                    };
                    let at = v["timestamp"]
                        .as_str()
                        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                        .map_or(SystemTime::UNIX_EPOCH, SystemTime::from);
                    let f = v["fields"].clone();
                    let s = |k: &str| f[k].as_str().unwrap_or("").to_string();
                    out.push(Rec {
                        ue: s("ue"),
                        role: s("role"),
                        outcome: s("outcome"),
                        cause: s("cause_label"),
                        at,
                        f,
                    });
                }
            }
        }
        out
    }
}

/// How one UE's move in one round ended.
struct Move {
    ue: u32,
    src: usize,
    dst: usize,
    trigger: SystemTime,
    end: &'static str,
    source: Vec<Rec>,
    destination: Vec<Rec>,
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let k = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
    v[k]
}

fn dist(mut v: Vec<f64>) -> Value {
    json!({
        "n": v.len(),
        "p50": pct(&mut v, 0.50),
        "p99": pct(&mut v, 0.99),
        "max": pct(&mut v, 1.0),
    })
}

/// Peak resident set of a process (`VmHWM`), in octets.
fn peak_rss(pid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let l = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = l.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The largest sum of context octets of migrations under way at once at
/// one node in one role (each migration's interval: its end less its total).
fn max_in_flight(recs: &[&Rec]) -> u64 {
    let mut ev: Vec<(SystemTime, i64)> = Vec::new();
    for r in recs {
        let octets =
            (r.us("app_octets").unwrap_or(0.0) + r.us("session_octets").unwrap_or(0.0)) as i64;
        let total = Duration::from_micros(r.us("total_us").unwrap_or(0.0) as u64);
        ev.push((r.at - total, octets));
        ev.push((r.at, -octets));
    }
    ev.sort_by_key(|(t, d)| (*t, *d));
    let (mut cur, mut max) = (0i64, 0i64);
    for (_, d) in ev {
        cur += d;
        max = max.max(cur);
    }
    max.max(0) as u64
}

/// Where each UE's packets to the service go: table → eNBC index.
fn ue_paths(t: &Topology) -> Result<HashMap<u32, String>, String> {
    let out = ip(&[
        "-n",
        &t.ue_ns,
        "route",
        "show",
        "table",
        "all",
        &format!("{SERVICE_IP}/32"),
    ])?;
    let mut m = HashMap::new();
    for l in out.lines() {
        let w: Vec<&str> = l.split_whitespace().collect();
        let Some(tbl) = w
            .iter()
            .position(|x| *x == "table")
            .and_then(|k| w.get(k + 1))
            .and_then(|x| x.parse::<u32>().ok())
        else {
            continue;
        };
        let via = if w.first() == Some(&"blackhole") {
            "blackhole".to_string()
        } else {
            w.iter()
                .position(|x| *x == "via")
                .and_then(|k| w.get(k + 1))
                .map_or_else(|| l.to_string(), |s| s.to_string())
        };
        m.insert(tbl, via);
    }
    Ok(m)
}

/// Run the fleet: start the client, the rounds, the checks, the report.
pub(crate) fn run(t: &mut Topology, args: &Args, out: &Path) -> Result<(), String> {
    let plan = t.fleet.clone().ok_or("no fleet")?;
    let normal = args.enbcs as usize;
    let n_sessions = plan.total_sessions();
    println!(
        "fleet: {} UEs, {} sessions ({}-{} per UE) to {} ({}), {}",
        plan.ues,
        n_sessions,
        plan.sessions.0,
        plan.sessions.1,
        plan.services.len(),
        plan.services
            .iter()
            .map(|s| s.label())
            .collect::<Vec<_>>()
            .join(", "),
        if plan.storm {
            format!(
                "storm: every UE triggered within {} ms",
                plan.window.as_millis()
            )
        } else {
            "one UE after the other".into()
        }
    );
    let resets_before = crate::client_resets(&t.ue_ns)?;
    let client = Client::start(&plan, &t.ue_ns)?;
    let zero = vec![0u64; client.live.len()];
    client
        .wait_moving(&zero, 30)
        .map_err(|e| format!("starting the sessions: {e}"))?;
    println!(
        "{} sessions up and checked",
        client.started.load(Ordering::Relaxed)
    );

    let mut tails: Vec<LogTail> = t
        .enbcs
        .iter()
        .map(|e| LogTail::new(t.dir.join(format!("e{}-mih-user.log", e.idx))))
        .collect();
    let mut loc = vec![0usize; plan.ues as usize];
    let mut moves: Vec<Move> = Vec::new();
    let mut rounds: Vec<Value> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    let plmn = mih_user::x2ap::Plmn::parse(crate::topology::PLMN).ok_or("PLMN")?;
    for round in 0..args.handovers {
        check_interrupt()?;
        std::thread::sleep(Duration::from_millis(args.interval_ms));
        for tl in &mut tails {
            let _ = tl.read();
        }
        let base: Vec<u64> = t
            .enbcs
            .iter()
            .map(|e| status(&e.ctl).map_or(0, |s| s["started"]["source"].as_u64().unwrap_or(0)))
            .collect();
        let mut round_moves: Vec<Move> = Vec::new();
        let t0 = Instant::now();
        let mut recs: Vec<Vec<Rec>> = vec![Vec::new(); t.enbcs.len()];
        for i in 0..plan.ues {
            let (src, dst) = (loc[i as usize], (loc[i as usize] + 1) % normal);
            if plan.storm {
                let due = t0 + plan.window.mul_f64(f64::from(i) / f64::from(plan.ues));
                if let Some(d) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                }
            }
            let trigger = SystemTime::now();
            let ids = crate::x2_ids(i);
            crate::x2_handover_ue(t, plmn, src, dst, ids, UL_TEID + i)?;
            round_moves.push(Move {
                ue: i,
                src,
                dst,
                trigger,
                end: "failed",
                source: vec![],
                destination: vec![],
            });
            if !plan.storm {
                // One after the other: this UE's move ended at both ends.
                let ue = ue_ip(i).to_string();
                let (mut s_done, mut d_done) = (false, false);
                wait_for(
                    &format!("UE {ue}'s handover"),
                    t.timers.handover_budget().as_secs(),
                    || {
                        for (k, tl) in tails.iter_mut().enumerate() {
                            recs[k].extend(tl.read());
                        }
                        s_done |= recs[src].iter().any(|r| r.ue == ue && r.role == "source");
                        d_done |= recs[dst]
                            .iter()
                            .any(|r| r.ue == ue && r.role == "destination");
                        (s_done && d_done && quiet_all(t)).then_some(())
                    },
                )?;
            }
        }
        let triggered = t0.elapsed();
        // Every trigger started a migration, and nothing is under way or
        // waiting anywhere.
        let budget = t.timers.handover_budget() + Duration::from_millis(50) * plan.ues;
        // Every 20 ms: each status answer costs the daemons a little.
        let every = Duration::from_millis(20);
        let waited = wait_every(
            "the round to end at every eNBC",
            budget.as_secs(),
            every,
            || {
                let started: u64 = t
                    .enbcs
                    .iter()
                    .zip(&base)
                    .map(|(e, b)| {
                        status(&e.ctl).map_or(0, |s| {
                            s["started"]["source"]
                                .as_u64()
                                .unwrap_or(0)
                                .saturating_sub(*b)
                        })
                    })
                    .sum();
                (started >= u64::from(plan.ues) && quiet_all(t)).then_some(())
            },
        );
        for (k, tl) in tails.iter_mut().enumerate() {
            recs[k].extend(tl.read());
        }
        if let Err(e) = waited {
            failures.push(format!("round {}: {e}", round + 1));
        }
        // Each UE's records in this round.
        let mut by_ue: Vec<HashMap<(String, String), Vec<Rec>>> =
            vec![HashMap::new(); t.enbcs.len()];
        for (k, rs) in recs.into_iter().enumerate() {
            for r in rs {
                by_ue[k]
                    .entry((r.ue.clone(), r.role.clone()))
                    .or_default()
                    .push(r);
            }
        }
        let (mut committed, mut rolled_back, mut failed) = (0u32, 0u32, 0u32);
        for m in &mut round_moves {
            let ue = ue_ip(m.ue).to_string();
            m.source = by_ue[m.src]
                .remove(&(ue.clone(), "source".into()))
                .unwrap_or_default();
            m.destination = by_ue[m.dst]
                .remove(&(ue.clone(), "destination".into()))
                .unwrap_or_default();
            let s = m.source.last().map(|r| r.outcome.as_str());
            let d = m.destination.last().map(|r| r.outcome.as_str());
            m.end = match (s, d) {
                (Some("committed"), Some("committed")) => "committed",
                (Some("rolled_back"), Some("rolled_back") | None) => "rolled_back",
                _ => "failed",
            };
            match m.end {
                "committed" => {
                    committed += 1;
                    loc[m.ue as usize] = m.dst;
                }
                "rolled_back" => rolled_back += 1,
                _ => {
                    failed += 1;
                    if failures.len() < 50 {
                        failures.push(format!(
                            "round {}: UE {ue} {} -> {}: source {:?}, destination {:?}",
                            round + 1,
                            t.enbcs[m.src].id(),
                            t.enbcs[m.dst].id(),
                            m.source
                                .iter()
                                .map(|r| (&r.outcome, &r.cause))
                                .collect::<Vec<_>>(),
                            m.destination
                                .iter()
                                .map(|r| (&r.outcome, &r.cause))
                                .collect::<Vec<_>>()
                        ));
                    }
                }
            }
        }
        // The RAN's handovers are over: the UE context releases.
        for m in &round_moves {
            let (old, new) = crate::x2_ids(m.ue);
            let _ = crate::x2_send(t, m.src, &[&crate::ue_context_release(old, new)]);
        }
        let first = round_moves.iter().map(|m| m.trigger).min();
        let last_end = round_moves
            .iter()
            .flat_map(|m| m.source.last().map(|r| r.at))
            .max();
        let makespan = match (first, last_end) {
            (Some(a), Some(b)) => b.duration_since(a).unwrap_or_default(),
            _ => Duration::ZERO,
        };
        let totals: Vec<f64> = round_moves
            .iter()
            .filter(|m| m.end == "committed")
            .flat_map(|m| m.source.last().and_then(|r| r.us("total_us")))
            .map(|v| v / 1000.0)
            .collect();
        let mut tt = totals.clone();
        println!(
            "round {:>2}: {} UEs {}  committed {committed}, rolled back {rolled_back}, failed {failed}; triggered in {:.0} ms, makespan {:.0} ms ({:.0} migrations/s), total p50 {:.1} ms p99 {:.1} ms",
            round + 1,
            plan.ues,
            if round % 2 == 0 { "->" } else { "<-" },
            triggered.as_secs_f64() * 1000.0,
            makespan.as_secs_f64() * 1000.0,
            f64::from(plan.ues) / makespan.as_secs_f64().max(1e-9),
            pct(&mut tt, 0.5),
            pct(&mut tt, 0.99),
        );
        rounds.push(json!({
            "round": round + 1,
            "committed": committed,
            "rolled_back": rolled_back,
            "failed": failed,
            "triggered_ms": triggered.as_secs_f64() * 1000.0,
            "makespan_ms": makespan.as_secs_f64() * 1000.0,
            "migrations_per_s": f64::from(plan.ues) / makespan.as_secs_f64().max(1e-9),
        }));
        moves.extend(round_moves);
        if failed > 0 && failures.len() >= 50 {
            break;
        }
        // Every session moves again wherever its UE now is.
        let since = client.octets();
        if let Err(e) = client.wait_moving(&since, 15) {
            failures.push(format!("after round {}: {e}", round + 1));
            break;
        }
    }

    // The UEs' paths lead to where they are served.
    let paths = ue_paths(t)?;
    let mut misrouted = 0;
    for (i, l) in loc.iter().enumerate() {
        let want = format!("10.231.{}.1", t.enbcs[*l].idx);
        let got = paths.get(&table_of(i as u32)).cloned().unwrap_or_default();
        if got != want {
            misrouted += 1;
            if misrouted <= 10 {
                failures.push(format!(
                    "UE {}: path {got:?}, served by {}",
                    ue_ip(i as u32),
                    t.enbcs[*l].id()
                ));
            }
        }
    }
    let resets = crate::client_resets(&t.ue_ns)?.saturating_sub(resets_before);
    let rss: Vec<Value> = t
        .enbcs
        .iter()
        .enumerate()
        .map(|(k, e)| {
            let r = |d: Daemon| t.pid(k, d).and_then(peak_rss);
            json!({
                "enbc": e.id(),
                "mih_user_peak_rss_octets": r(Daemon::User),
                "mihfd_peak_rss_octets": r(Daemon::Mihfd),
            })
        })
        .collect();
    let stats = client.finish()?;
    // The copy floor of the same contexts over the same links, the traffic
    // stopped: what no protocol can beat on this machine.
    let floor = if plan.storm && t.enbcs.len() >= 2 {
        let mut octets: Vec<f64> = moves
            .iter()
            .filter(|m| m.end == "committed")
            .flat_map(|m| m.source.last())
            .map(Rec::context_octets)
            .collect();
        let each = pct(&mut octets, 0.5).max(1.0) as u64;
        let dst_ip = crate::topology::backhaul_ip(t.enbcs[1].idx)
            .parse()
            .map_err(|e| format!("backhaul address: {e}"))?;
        match floor::measure(
            &t.enbcs[0].ns,
            &t.enbcs[1].ns,
            dst_ip,
            u64::from(plan.ues),
            each,
        ) {
            Ok(f) => Some(f),
            Err(e) => {
                failures.push(format!("measuring the copy floor: {e}"));
                None
            }
        }
    } else {
        None
    };
    report(
        &plan, args, out, t, &moves, &rounds, &stats, resets, rss, failures, misrouted, floor,
    )
}

fn quiet_all(t: &Topology) -> bool {
    t.enbcs
        .iter()
        .all(|e| status(&e.ctl).is_some_and(|s| crate::quiet(&s)))
}

#[allow(clippy::too_many_arguments)]
fn report(
    plan: &Plan,
    args: &Args,
    out: &Path,
    t: &Topology,
    moves: &[Move],
    rounds: &[Value],
    stats: &[SessionStat],
    resets: u64,
    rss: Vec<Value>,
    mut failures: Vec<String>,
    misrouted: usize,
    floor: Option<floor::Floor>,
) -> Result<(), String> {
    let count = |e: &str| moves.iter().filter(|m| m.end == e).count();
    let (committed, rolled_back, failed) =
        (count("committed"), count("rolled_back"), count("failed"));
    let src: Vec<&Rec> = moves
        .iter()
        .filter(|m| m.end == "committed")
        .flat_map(|m| m.source.last())
        .collect();
    let phase = |k: &str| {
        dist(
            src.iter()
                .flat_map(|r| r.us(k))
                .map(|v| v / 1000.0)
                .collect(),
        )
    };
    let from_trigger = dist(
        moves
            .iter()
            .filter(|m| m.end == "committed")
            .flat_map(|m| {
                m.source
                    .last()
                    .and_then(|r| r.at.duration_since(m.trigger).ok())
            })
            .map(|d| d.as_secs_f64() * 1000.0)
            .collect(),
    );
    let context = dist(src.iter().map(|r| r.context_octets()).collect());
    // Context octets in flight at each eNBC (source role, destination role).
    let mut in_flight = Vec::new();
    for (k, e) in t.enbcs.iter().enumerate() {
        let s: Vec<&Rec> = moves
            .iter()
            .filter(|m| m.src == k)
            .flat_map(|m| m.source.iter())
            .collect();
        let d: Vec<&Rec> = moves
            .iter()
            .filter(|m| m.dst == k)
            .flat_map(|m| m.destination.iter())
            .collect();
        in_flight.push(json!({"enbc": e.id(), "source_octets": max_in_flight(&s), "destination_octets": max_in_flight(&d)}));
    }
    // Per UE: its longest pause over all its sessions.
    let mut pause: BTreeMap<u32, f64> = BTreeMap::new();
    let mut errors = 0;
    for s in stats {
        let p = pause.entry(s.ue).or_default();
        *p = p.max(s.longest_pause.as_secs_f64() * 1000.0);
        if let Some(e) = &s.error {
            errors += 1;
            if errors <= 10 {
                failures.push(format!("UE {} {} session: {e}", ue_ip(s.ue), s.svc.label()));
            }
        }
    }
    if stats.len() != plan.total_sessions() as usize {
        failures.push(format!(
            "{} of {} sessions reported",
            stats.len(),
            plan.total_sessions()
        ));
    }
    if resets > 0 {
        failures.push(format!("{resets} connection resets in the UE namespace"));
    }
    if failed > 0 {
        failures.push(format!(
            "{failed} migrations failed (the ends disagree or did not end)"
        ));
    }
    let longest = pause.values().cloned().fold(0.0, f64::max);
    if let Some(max) = args.max_pause_ms.filter(|m| *m > 0) {
        if longest > max as f64 {
            failures.push(format!(
                "a UE paused {longest:.0} ms (more than --max-pause-ms {max})"
            ));
        }
    }
    // Attempts: a rolled-back attempt the scheduler retried (a refusal by
    // admission, say) is a source record before the one that decided.
    let attempts: usize = moves.iter().map(|m| m.source.len()).sum();
    let mut attempt_causes: BTreeMap<String, usize> = BTreeMap::new();
    for m in moves {
        for r in &m.source[..m.source.len().saturating_sub(1)] {
            *attempt_causes.entry(r.cause.clone()).or_default() += 1;
        }
    }
    let makespan: f64 = rounds.iter().flat_map(|r| r["makespan_ms"].as_f64()).sum();
    let migrations = moves.len();
    let per_service: BTreeMap<&str, Value> = plan
        .services
        .iter()
        .map(|svc| {
            let ss: Vec<&SessionStat> = stats.iter().filter(|s| s.svc == *svc).collect();
            (
                svc.label(),
                json!({
                    "sessions": ss.len(),
                    "octets": ss.iter().map(|s| s.octets).sum::<u64>(),
                    "responses_checked": ss.iter().map(|s| s.answered).sum::<u64>(),
                    "longest_pause_ms": dist(ss.iter().map(|s| s.longest_pause.as_secs_f64() * 1000.0).collect()),
                }),
            )
        })
        .collect();
    let summary = json!({
        "mode": if plan.storm { "storm" } else { "sequential" },
        "ues": plan.ues,
        "enbcs": args.enbcs,
        "services": plan.services.iter().map(|s| s.label()).collect::<Vec<_>>(),
        "sessions_per_ue": [plan.sessions.0, plan.sessions.1],
        "sessions": stats.len(),
        "state_bytes": plan.state_bytes,
        "storm_window_ms": plan.window.as_millis() as u64,
        "request_interval_ms": plan.request_interval.as_millis() as u64,
        "rate": args.rate(),
        "rounds": rounds,
        "migrations": migrations,
        "committed": committed,
        "rolled_back": rolled_back,
        "failed": failed,
        "attempts": attempts,
        "retried_attempts": attempt_causes,
        "max_incoming": plan.max_incoming,
        "client_resets": resets,
        "session_errors": errors,
        "misrouted_ues": misrouted,
        "longest_pause_ms": longest,
        "ue_longest_pause_ms": dist(pause.values().cloned().collect()),
        "total_ms": phase("total_us"),
        "from_trigger_ms": from_trigger,
        "phases_ms": {
            "mih_commit": phase("mih_commit_us"),
            "app_data": phase("app_data_us"),
            "socket_data": phase("socket_data_us"),
            "cxtp": phase("cxtp_us"),
        },
        "context_octets": context,
        "context_octets_in_flight": in_flight,
        "makespan_ms": makespan,
        "migrations_per_s": migrations as f64 / (makespan / 1000.0).max(1e-9),
        "peak_rss": rss,
        "copy_floor": floor.as_ref().map(floor::Floor::json),
        "per_service": per_service,
        "failures": failures,
        "ok": failures.is_empty(),
    });
    let path = out.join("summary.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&summary).unwrap_or_default(),
    )
    .map_err(|e| format!("{}: {e}", path.display()))?;
    println!(
        "{migrations} migrations: {committed} committed, {rolled_back} rolled back, {failed} failed; {resets} client resets; longest UE pause {longest:.1} ms",
    );
    println!(
        "total (start to CTDR) p50 {:.1} / p99 {:.1} / max {:.1} ms; from the X2 trigger p50 {:.1} / p99 {:.1} / max {:.1} ms; {:.0} migrations/s over {:.0} ms",
        summary["total_ms"]["p50"].as_f64().unwrap_or(f64::NAN),
        summary["total_ms"]["p99"].as_f64().unwrap_or(f64::NAN),
        summary["total_ms"]["max"].as_f64().unwrap_or(f64::NAN),
        from_trigger["p50"].as_f64().unwrap_or(f64::NAN),
        from_trigger["p99"].as_f64().unwrap_or(f64::NAN),
        from_trigger["max"].as_f64().unwrap_or(f64::NAN),
        summary["migrations_per_s"].as_f64().unwrap_or(0.0),
        makespan,
    );
    for r in &summary["peak_rss"].as_array().cloned().unwrap_or_default() {
        println!(
            "{}: peak RSS mih-user {:.1} MB, mihfd {:.1} MB",
            r["enbc"].as_str().unwrap_or("?"),
            r["mih_user_peak_rss_octets"].as_f64().unwrap_or(0.0) / 1e6,
            r["mihfd_peak_rss_octets"].as_f64().unwrap_or(0.0) / 1e6
        );
    }
    if let Some(f) = &floor {
        println!(
            "copy floor: {} contexts of {:.2} MB through unix -> TCP on the backhaul -> unix alone in {:.0} ms ({:.0}/s, {:.3} ms of CPU each; the rounds made {:.0}/s)",
            f.count,
            f.octets as f64 / 1e6,
            f.wall.as_secs_f64() * 1000.0,
            f.per_s(),
            f.cpu_ms_each(),
            summary["migrations_per_s"].as_f64().unwrap_or(0.0),
        );
    }
    println!("summary: {}", path.display());
    if failures.is_empty() {
        println!("OK: every stream byte-exact, no reset, every migration ended at both ends");
        Ok(())
    } else {
        for f in &failures {
            println!("  ! {f}");
        }
        Err(format!(
            "{} failures (see {})",
            failures.len(),
            path.display()
        ))
    }
}
