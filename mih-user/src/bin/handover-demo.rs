//! The end-to-end handover demo (run as root): a plain HTTP client in a UE
//! namespace downloads a file from the service address while the server
//! side of its TCP connection moves between eNBC namespaces, each running
//! `mihfd`, the `mih-user` daemon (`sessions.mode = "tcp_repair"`) and the
//! example HTTP service; handovers are driven by X2AP HandoverRequest and
//! HandoverRequestAcknowledge PDUs sent to the source eNBC's X2 tap.
//!
//! See `--help` and the README ("The handover demo").

use std::collections::HashSet;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use mih_user::content::{fnv1a64_update, FNV1A64_INIT};
use mih_user::daemon::control;
use mih_user::report::{histogram_svg, render_size_distribution, PhaseTable, Summary};
use mih_user::sessions::netns::{self, ip};
use mih_user::x2ap::build::{
    handover_request, handover_request_acknowledge, HandoverRequestAcknowledgeParams,
    HandoverRequestParams,
};
use mih_user::x2ap::Plmn;
use serde_json::{json, Value};

const SERVICE_IP: &str = "10.99.0.1";
const SERVICE_PORT: u16 = 8080;
const UE_IP: &str = "10.77.0.2";
const PLMN: &str = "001-01";
const ENB_BASE: u32 = 0x1A2B0;
const UL_TEID: u32 = 0x101;
const FILE: &str = "demo.bin";
const SEED: u64 = 7;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Rollback {
    /// Every handover is expected to commit.
    None,
    /// Every Nth handover goes to an extra eNBC whose service refuses the
    /// context (it serves another file): the source restores the socket.
    Refuse,
    /// Every Nth handover goes to an extra eNBC whose mih-user is killed
    /// (SIGKILL) while it rebuilds the sockets: the source restores the
    /// socket at the CXTP timeout.
    Kill,
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
/// every check passed.
#[derive(Parser, Debug)]
#[command(version)]
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
    /// Download rate in octets per second (the service paces the body).
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    rate: u64,
    /// Pause between handovers, in milliseconds.
    #[arg(long, default_value_t = 100)]
    interval_ms: u64,
    /// Rollback scenario.
    #[arg(long, value_enum, default_value_t = Rollback::None)]
    rollback: Rollback,
    /// With --rollback: every Nth handover goes to the failing eNBC.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    rollback_every: u32,
    /// Output directory (figures, summary.json, logs).
    #[arg(long, default_value = "handover-demo-out")]
    out: PathBuf,
    /// Fail if the client's download pauses longer than this, in
    /// milliseconds (not checked with --rollback kill, whose rollback waits
    /// for the CXTP timeout; 0: not checked).
    #[arg(long, default_value_t = 500)]
    max_pause_ms: u64,
    /// Directory with the mihfd, mih-user and example-http-service
    /// binaries (default: next to this program).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
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
fn in_ns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> Result<T, String> {
    netns::run_in(&netns::path(ns), f).map_err(|e| e.to_string())
}

/// One eNBC: namespace, processes, sockets.
struct Enbc {
    idx: u32,
    ns: String,
    failing: Option<Rollback>,
    mihfd: Option<Child>,
    user: Option<Child>,
    service: Option<Child>,
    ctl: PathBuf,
    x2: Option<UdpSocket>,
}

impl Enbc {
    fn id(&self) -> String {
        format!("enbc{}", self.idx)
    }
}

/// Everything the demo made; removed on drop.
struct Topology {
    prefix: String,
    ue_ns: String,
    core_ns: String,
    enbcs: Vec<Enbc>,
    dir: PathBuf,
    bins: PathBuf,
    file_size: u64,
    rate: u64,
}

impl Drop for Topology {
    fn drop(&mut self) {
        for e in &mut self.enbcs {
            for c in [&mut e.service, &mut e.user, &mut e.mihfd]
                .into_iter()
                .flatten()
            {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        for e in &self.enbcs {
            let _ = ip(&["netns", "del", &e.ns]);
        }
        let _ = ip(&["netns", "del", &self.ue_ns]);
        let _ = ip(&["netns", "del", &self.core_ns]);
        for f in ["api", "ctl", "handoff"] {
            for e in &self.enbcs {
                let _ = std::fs::remove_file(self.dir.join(format!("e{}-{f}.sock", e.idx)));
            }
        }
    }
}

/// Remove namespaces left by a demo that died without cleaning up.
fn remove_stale() {
    let Ok(rd) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(rest) = name.strip_prefix("hod") else {
            continue;
        };
        let Some((pid, _)) = rest.split_once('-') else {
            continue;
        };
        if let Ok(pid) = pid.parse::<u32>() {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = ip(&["netns", "del", &name]);
            }
        }
    }
}

fn mihfd_toml(t: &Topology, e: &Enbc) -> String {
    let mut s = format!(
        "mihf_id = \"{id}\"\n[listen]\nudp = [\"10.200.0.{i}:4551\"]\ntcp = []\n[sap]\nlisten = \"127.0.0.1:1025\"\n",
        id = e.id(),
        i = e.idx
    );
    for o in t.enbcs.iter().filter(|o| o.idx != e.idx) {
        s += &format!(
            "[[peers]]\nid = \"{}\"\nudp = \"10.200.0.{}:4551\"\n",
            o.id(),
            o.idx
        );
    }
    s
}

fn user_toml(t: &Topology, e: &Enbc) -> String {
    let d = t.dir.display();
    let i = e.idx;
    let mut s = format!(
        r#"[mihf]
sap = "127.0.0.1:1025"
user_id = "mih-user"
register_interval_ms = 500

[api]
socket = "{d}/e{i}-api.sock"
export_timeout_ms = 1000
import_timeout_ms = 1000

[cxtp]
listen = "10.200.0.{i}:5091"
transfer_timeout_ms = 1500

[timers]
mih_timeout_ms = 1000
context_timeout_ms = 3000
complete_timeout_ms = 2000

[x2]
udp = "127.0.0.1:36422"

[control]
socket = "{d}/e{i}-ctl.sock"

[sessions]
mode = "tcp_repair"
handoff_socket = "{d}/e{i}-handoff.sock"

"#
    );
    // The hold: the UE's packets to the service stop at the UE (the
    // network's job in a real deployment), until a path switch (the
    // destination's on commit, ours on rollback) replaces the route.
    s += &format!(
        "[sessions.hold]\nnetns = \"{ue}\"\nroute = \"{SERVICE_IP}/32\"\nvia = \"blackhole\"\n\n",
        ue = t.ue_ns
    );
    if e.failing == Some(Rollback::Kill) {
        s += "[sessions.path_switch]\ncommand = [\"sh\", \"-c\", \"kill -9 $PPID\"]\n\n";
    } else {
        s += &format!(
            "[sessions.path_switch]\nnetns = \"{ue}\"\nroute = \"{SERVICE_IP}/32\"\nvia = \"10.231.{i}.1\"\nsrc = \"{UE_IP}\"\n\n",
            ue = t.ue_ns
        );
    }
    if t.enbcs.iter().any(|o| o.failing.is_some()) {
        // One attempt per X2 trigger: the demo reads each trigger's own
        // record, and a retry towards the failing eNBC would add records
        // (and freezes of the stream) it does not expect.
        s += "[schedule]\nmax_attempts = 1\n\n";
    }
    s += &format!("[[ues]]\nue_address = \"{UE_IP}\"\nul_gtp_teid = {UL_TEID}\n\n");
    for o in t.enbcs.iter().filter(|o| o.idx != e.idx) {
        s += &format!(
            "[[neighbours]]\nplmn = \"{PLMN}\"\nenb_id = {}\nmihf_id = \"{}\"\n\n[[peers]]\nmihf_id = \"{}\"\ncxtp = \"10.200.0.{}:5091\"\n\n",
            ENB_BASE + o.idx,
            o.id(),
            o.id(),
            o.idx
        );
    }
    s
}

impl Topology {
    fn build(args: &Args, file_size: u64, bins: PathBuf, dir: PathBuf) -> Result<Topology, String> {
        let prefix = format!("hod{}", std::process::id());
        let extra = u32::from(args.rollback != Rollback::None);
        let mut t = Topology {
            ue_ns: format!("{prefix}-ue"),
            core_ns: format!("{prefix}-core"),
            enbcs: Vec::new(),
            prefix,
            dir,
            bins,
            file_size,
            rate: args.rate,
        };
        for i in 1..=args.enbcs + extra {
            t.enbcs.push(Enbc {
                idx: i,
                ns: format!("{}-e{i}", t.prefix),
                failing: (i > args.enbcs).then_some(args.rollback),
                mihfd: None,
                user: None,
                service: None,
                ctl: t.dir.join(format!("e{i}-ctl.sock")),
                x2: None,
            });
        }
        let (ue, core) = (t.ue_ns.clone(), t.core_ns.clone());
        for ns in [&ue, &core] {
            ip(&["netns", "add", ns])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        ip(&["-n", &core, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &core, "link", "set", "br0", "up"])?;
        ip(&[
            "-n",
            &ue,
            "addr",
            "add",
            &format!("{UE_IP}/32"),
            "dev",
            "lo",
        ])?;
        for e in &t.enbcs {
            let (ns, i) = (&e.ns, e.idx);
            ip(&["netns", "add", ns])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            let (ue_if, bh_if) = (format!("ue{i}"), format!("bh{i}"));
            ip(&[
                "-n", ns, "link", "add", "acc", "type", "veth", "peer", "name", &ue_if, "netns",
                &ue,
            ])?;
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("10.231.{i}.1/24"),
                "dev",
                "acc",
            ])?;
            ip(&["-n", ns, "link", "set", "acc", "up"])?;
            ip(&[
                "-n",
                &ue,
                "addr",
                "add",
                &format!("10.231.{i}.2/24"),
                "dev",
                &ue_if,
            ])?;
            ip(&["-n", &ue, "link", "set", &ue_if, "up"])?;
            ip(&[
                "-n", ns, "link", "add", "bh", "type", "veth", "peer", "name", &bh_if, "netns",
                &core,
            ])?;
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("10.200.0.{i}/24"),
                "dev",
                "bh",
            ])?;
            ip(&["-n", ns, "link", "set", "bh", "up"])?;
            ip(&["-n", &core, "link", "set", &bh_if, "master", "br0", "up"])?;
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{SERVICE_IP}/32"),
                "dev",
                "lo",
            ])?;
            ip(&[
                "-n",
                ns,
                "route",
                "add",
                &format!("{UE_IP}/32"),
                "via",
                &format!("10.231.{i}.2"),
            ])?;
        }
        ip(&[
            "-n",
            &ue,
            "route",
            "add",
            &format!("{SERVICE_IP}/32"),
            "via",
            "10.231.1.1",
            "src",
            UE_IP,
        ])?;
        Ok(t)
    }

    fn spawn(&self, ns: &str, log: &str, prog: &str, args: &[String]) -> Result<Child, String> {
        let path = self.bins.join(prog);
        let log = std::fs::File::create(self.dir.join(format!("{log}.log")))
            .map_err(|e| format!("log file: {e}"))?;
        Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(&path)
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    fn start_user(&mut self, k: usize) -> Result<(), String> {
        let e = &self.enbcs[k];
        let cfg = self.dir.join(format!("e{}-mih-user.toml", e.idx));
        std::fs::write(&cfg, user_toml(self, e)).map_err(|x| x.to_string())?;
        let _ = std::fs::remove_file(&e.ctl);
        let child = self.spawn(
            &e.ns,
            &format!("e{}-mih-user", e.idx),
            "mih-user",
            &["-c".into(), cfg.display().to_string(), "--log-json".into()],
        )?;
        self.enbcs[k].user = Some(child);
        let ctl = self.enbcs[k].ctl.clone();
        wait_for(
            &format!("{} mih-user control socket", self.enbcs[k].id()),
            10,
            || status(&ctl).map(|_| ()),
        )?;
        Ok(())
    }

    fn start_service(&mut self, k: usize) -> Result<(), String> {
        let e = &self.enbcs[k];
        let seed = if e.failing == Some(Rollback::Refuse) {
            SEED + 1
        } else {
            SEED
        };
        let d = self.dir.display();
        let i = e.idx;
        let mut child = self.spawn(
            &e.ns,
            &format!("e{i}-service"),
            "example-http-service",
            &[
                "--listen".into(),
                format!("{SERVICE_IP}:{SERVICE_PORT}"),
                "--api-socket".into(),
                format!("{d}/e{i}-api.sock"),
                "--handoff-socket".into(),
                format!("{d}/e{i}-handoff.sock"),
                "--file-size".into(),
                self.file_size.to_string(),
                "--rate".into(),
                self.rate.to_string(),
                "--seed".into(),
                seed.to_string(),
            ],
        )?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        if !line.starts_with("listening on") {
            let _ = child.kill();
            return Err(format!(
                "enbc{i}: example-http-service did not start (see {d}/e{i}-service.log)"
            ));
        }
        self.enbcs[k].service = Some(child);
        let ctl = self.enbcs[k].ctl.clone();
        wait_for(&format!("enbc{i} service registration"), 10, || {
            let s = status(&ctl)?;
            (s["registered"] == true && !s["services"].as_array()?.is_empty()).then_some(())
        })
    }

    fn start(&mut self) -> Result<(), String> {
        for k in 0..self.enbcs.len() {
            let e = &self.enbcs[k];
            let cfg = self.dir.join(format!("e{}-mihfd.toml", e.idx));
            std::fs::write(&cfg, mihfd_toml(self, e)).map_err(|x| x.to_string())?;
            let child = self.spawn(
                &e.ns,
                &format!("e{}-mihfd", e.idx),
                "mihfd",
                &["-c".into(), cfg.display().to_string()],
            )?;
            self.enbcs[k].mihfd = Some(child);
        }
        for k in 0..self.enbcs.len() {
            self.start_user(k)?;
            self.start_service(k)?;
            let ns = self.enbcs[k].ns.clone();
            let sock = in_ns(&ns, || UdpSocket::bind("127.0.0.1:0"))?
                .map_err(|e| format!("X2 socket: {e}"))?;
            self.enbcs[k].x2 = Some(sock);
        }
        Ok(())
    }

    /// Kill and restart a failing eNBC's mih-user and service.
    fn restart(&mut self, k: usize) -> Result<(), String> {
        let e = &mut self.enbcs[k];
        for c in [&mut e.service, &mut e.user].into_iter().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.enbcs[k].service = None;
        self.enbcs[k].user = None;
        self.start_user(k)?;
        self.start_service(k)
    }
}

fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> Result<T, String> {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        check_interrupt()?;
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() > end {
            return Err(format!("timed out waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A daemon's `status` (None while its control socket does not answer).
fn status(path: &Path) -> Option<Value> {
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

/// Source records of a node, by id.
fn source_records(ctl: &Path) -> Vec<Value> {
    status(ctl)
        .and_then(|s| s["recent"].as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r["role"] == "source")
        .collect()
}

// ------------------------------------------------------------ the client --

/// What the plain client saw.
#[derive(Debug, Default)]
struct ClientResult {
    received: u64,
    checksum: u64,
    error: Option<String>,
    longest_gap: Duration,
}

/// A plain client: std sockets only, one GET, reads to the end, checks
/// every octet against the content rule.
fn client(size: u64, progress: Arc<AtomicU64>) -> ClientResult {
    let mut r = ClientResult {
        checksum: FNV1A64_INIT,
        ..ClientResult::default()
    };
    let addr: SocketAddr = format!("{SERVICE_IP}:{SERVICE_PORT}").parse().unwrap();
    let mut s = match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
        Ok(s) => s,
        Err(e) => {
            r.error = Some(format!("connect: {e}"));
            return r;
        }
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
    if let Err(e) = write!(s, "GET /file/{FILE} HTTP/1.1\r\nHost: demo\r\n\r\n") {
        r.error = Some(format!("request: {e}"));
        return r;
    }
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => {
                r.error = Some("connection closed in the HTTP head".into());
                return r;
            }
        }
    }
    let head = String::from_utf8_lossy(&head).to_string();
    if !head.starts_with("HTTP/1.1 200") || !head.contains(&format!("Content-Length: {size}")) {
        r.error = Some(format!("unexpected response head: {head:?}"));
        return r;
    }
    let mut buf = vec![0u8; 64 * 1024];
    let mut want = vec![0u8; 64 * 1024];
    let mut last = Instant::now();
    while r.received < size {
        match s.read(&mut buf) {
            Ok(0) => {
                r.error = Some(format!("connection closed at octet {}", r.received));
                return r;
            }
            Ok(n) => {
                let now = Instant::now();
                r.longest_gap = r.longest_gap.max(now - last);
                last = now;
                let n = n.min((size - r.received) as usize);
                mih_user::content::fill(SEED, FILE, r.received, &mut want[..n]);
                if buf[..n] != want[..n] {
                    let i = buf[..n].iter().zip(&want[..n]).position(|(a, b)| a != b);
                    r.error = Some(format!(
                        "wrong octet at offset {}",
                        r.received + i.unwrap_or(0) as u64
                    ));
                    return r;
                }
                r.checksum = fnv1a64_update(r.checksum, &buf[..n]);
                r.received += n as u64;
                progress.store(r.received, Ordering::Relaxed);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                r.error = Some(format!("read at octet {}: {e}", r.received));
                return r;
            }
        }
    }
    r
}

fn expected_checksum(size: u64) -> u64 {
    let mut h = FNV1A64_INIT;
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0;
    while off < size {
        let n = (size - off).min(buf.len() as u64) as usize;
        mih_user::content::fill(SEED, FILE, off, &mut buf[..n]);
        h = fnv1a64_update(h, &buf[..n]);
        off += n as u64;
    }
    h
}

/// `EstabResets` of the UE namespace: resets of established connections.
fn client_resets(ns: &str) -> Result<u64, String> {
    netns::tcp_counter(&netns::path(ns), "Tcp", "EstabResets").map_err(|e| e.to_string())
}

// ------------------------------------------------------------------ main --

fn us(r: &Value, k: &str) -> Option<f64> {
    r["phases_us"][k].as_f64().map(|v| v / 1000.0)
}

fn x2_handover(t: &Topology, src: usize, dst: usize, n: u32) -> Result<(), String> {
    let plmn = Plmn::parse(PLMN).ok_or("PLMN")?;
    let old_id = (n % 4000) as u16 + 1;
    let new_id = ((n + 2000) % 4000) as u16 + 1;
    let target_cell = ((ENB_BASE + t.enbcs[dst].idx) << 8) | 1;
    let mut req = HandoverRequestParams::new(old_id, plmn, target_cell);
    req.e_rabs[0].ul_gtp_tunnel.teid = UL_TEID;
    let ack = HandoverRequestAcknowledgeParams::admitting(&req, new_id);
    let req = handover_request(&req).map_err(|e| e.to_string())?;
    let ack = handover_request_acknowledge(&ack).map_err(|e| e.to_string())?;
    let sock = t.enbcs[src].x2.as_ref().ok_or("no X2 socket")?;
    let tap: SocketAddr = "127.0.0.1:36422".parse().unwrap();
    sock.send_to(&req, tap)
        .map_err(|e| format!("X2 send: {e}"))?;
    sock.send_to(&ack, tap)
        .map_err(|e| format!("X2 send: {e}"))?;
    Ok(())
}

struct Run {
    committed: Vec<Value>,
    rolled_back: Vec<Value>,
    failures: Vec<String>,
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
    for b in ["mihfd", "mih-user", "example-http-service"] {
        if !bins.join(b).exists() {
            return Err(format!(
                "{} not found: build the binaries first (cargo build --release --bins) or pass --bin-dir",
                bins.join(b).display()
            ));
        }
    }
    let file_size = if args.file_size > 0 {
        args.file_size
    } else {
        // Handovers take a few ms each plus the pause; leave 3 s spare.
        let secs = f64::from(args.handovers) * (args.interval_ms as f64 + 60.0) / 1000.0 + 3.0;
        ((args.rate as f64 * secs) as u64).max(1 << 20)
    };
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let out = args.out.canonicalize().map_err(|e| e.to_string())?;
    let logs = out.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| e.to_string())?;
    remove_stale();

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
        args.rate as f64 / 1e6,
        logs.display()
    );
    let mut t = Topology::build(args, file_size, bins, logs.clone())?;
    t.start()?;
    println!(
        "topology up: namespaces {}-{{ue,core,e1..e{}}}",
        t.prefix,
        t.enbcs.len()
    );

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
    let mut r = Run {
        committed: vec![],
        rolled_back: vec![],
        failures: vec![],
    };
    let mut seen: Vec<HashSet<u64>> = vec![HashSet::new(); t.enbcs.len()];
    for n in 0..args.handovers {
        check_interrupt()?;
        std::thread::sleep(Duration::from_millis(args.interval_ms));
        if progress.load(Ordering::Relaxed) >= file_size {
            return Err(format!(
                "the download ended after {n} handovers: raise --file-size or lower --rate"
            ));
        }
        let to_failing = failing.is_some() && (n + 1) % args.rollback_every == 0;
        let dst = if to_failing {
            failing.unwrap_or(0)
        } else {
            next_normal
        };
        for rec in source_records(&t.enbcs[cur].ctl) {
            if let Some(id) = rec["id"].as_u64() {
                seen[cur].insert(id);
            }
        }
        let at = progress.load(Ordering::Relaxed);
        x2_handover(&t, cur, dst, n)?;
        let ctl = t.enbcs[cur].ctl.clone();
        let rec = wait_for("the migration record", 20, || {
            source_records(&ctl)
                .into_iter()
                .find(|r| r["id"].as_u64().is_some_and(|id| !seen[cur].contains(&id)))
        })?;
        let outcome = rec["outcome"].as_str().unwrap_or("?").to_string();
        let size = rec["sizes"]["app_octets"].as_u64().unwrap_or(0)
            + rec["sizes"]["session_octets"].as_u64().unwrap_or(0);
        let f = |k| us(&rec, k).map_or("-".to_string(), |v| format!("{v:.2}"));
        println!(
            "#{:<3} {} -> {}  {:<11} total {:>7} ms  (MIH {} | app {} | sockets {} | CXTP {})  context {:.1} KB  at {:.1} MB{}",
            n + 1,
            t.enbcs[cur].id(),
            t.enbcs[dst].id(),
            outcome,
            f("total"),
            f("mih_commit"),
            f("app_data"),
            f("socket_data"),
            f("cxtp"),
            size as f64 / 1024.0,
            at as f64 / 1e6,
            rec["cause"]
                .as_str()
                .map(|c| format!("  [{c}]"))
                .unwrap_or_default()
        );
        match (outcome.as_str(), to_failing) {
            ("committed", false) => {
                cur = dst;
                next_normal = (dst + 1) % normal;
                if next_normal == cur {
                    next_normal = (cur + 1) % normal;
                }
                r.committed.push(rec);
            }
            ("rolled_back", true) => r.rolled_back.push(rec),
            (o, want_fail) => {
                r.failures.push(format!(
                    "handover {}: {o}, expected {}",
                    n + 1,
                    if want_fail { "a rollback" } else { "a commit" }
                ));
                if o == "committed" {
                    cur = dst;
                }
            }
        }
        if to_failing && args.rollback == Rollback::Kill {
            t.restart(dst)?;
        }
        // The download goes on from wherever the socket now lives.
        let moved = wait_for("the download to continue after the handover", 10, || {
            (progress.load(Ordering::Relaxed) > at || progress.load(Ordering::Relaxed) >= file_size)
                .then_some(())
        });
        if let Err(e) = moved {
            r.failures.push(format!("handover {}: {e}", n + 1));
            break;
        }
    }
    println!("handovers done; waiting for the download to finish");
    let remaining = file_size.saturating_sub(progress.load(Ordering::Relaxed));
    let wait = Duration::from_secs_f64(remaining as f64 / args.rate.max(1) as f64)
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
    report(args, &out, file_size, &result, before, after, r)
}

#[allow(clippy::too_many_arguments)]
fn report(
    args: &Args,
    out: &Path,
    file_size: u64,
    client: &ClientResult,
    before: u64,
    after: u64,
    mut r: Run,
) -> Result<(), String> {
    let col = |k: &str| -> Vec<f64> { r.committed.iter().filter_map(|x| us(x, k)).collect() };
    let mut table = PhaseTable::new();
    table
        .push("MIH HO commit transaction", &col("mih_commit"))
        .push("Retrieving application data", &col("app_data"))
        .push("Retrieving socket data", &col("socket_data"))
        .push("CXTP transaction", &col("cxtp"))
        .push("Total", &col("total"));
    println!(
        "\nTable I: migration phases over {} committed handovers (source side)",
        r.committed.len()
    );
    print!("{}", table.render());
    let sizes: Vec<u64> = r
        .committed
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
        r.failures.push(format!("{}: {e}", f11.display()));
    }
    let kb: Vec<f64> = sizes.iter().map(|s| *s as f64 / 1024.0).collect();
    if let Err(e) = histogram_svg(
        &f12,
        "Fig. 12: migration data length",
        "migration data length (KB)",
        &kb,
        20,
    ) {
        r.failures.push(format!("{}: {e}", f12.display()));
    }
    if !r.rolled_back.is_empty() {
        let causes: Vec<&str> = r
            .rolled_back
            .iter()
            .filter_map(|x| x["cause_label"].as_str())
            .collect();
        println!(
            "\nrollbacks: {} (causes: {}); the source resumed each time",
            r.rolled_back.len(),
            causes.join(", ")
        );
    }
    let expected = expected_checksum(file_size);
    let resets = after.saturating_sub(before);
    println!(
        "\ndownload: {} of {} octets, checksum {:016x} (expected {:016x}), longest pause {:.1} ms, client resets {}{}",
        client.received,
        file_size,
        client.checksum,
        expected,
        client.longest_gap.as_secs_f64() * 1000.0,
        resets,
        client
            .error
            .as_ref()
            .map(|e| format!(", error: {e}"))
            .unwrap_or_default()
    );
    if let Some(e) = &client.error {
        r.failures.push(format!("client: {e}"));
    }
    if client.received != file_size || client.checksum != expected {
        r.failures.push("the download is not byte-exact".into());
    }
    let pause_ms = client.longest_gap.as_secs_f64() * 1000.0;
    if args.max_pause_ms > 0
        && args.rollback != Rollback::Kill
        && pause_ms > args.max_pause_ms as f64
    {
        r.failures.push(format!(
            "the download paused {pause_ms:.1} ms (more than --max-pause-ms {})",
            args.max_pause_ms
        ));
    }
    if resets != 0 {
        r.failures
            .push(format!("the client's TCP saw {resets} reset(s)"));
    }
    for x in &r.committed {
        for k in ["mih_commit", "app_data", "socket_data", "cxtp"] {
            if us(x, k).is_none() {
                r.failures
                    .push(format!("record {} lacks phase {k}", x["id"]));
            }
        }
        if x["sizes"]["sessions"].as_u64() != Some(1) {
            r.failures.push(format!(
                "record {} moved {} TCP sessions, not 1",
                x["id"], x["sizes"]["sessions"]
            ));
        }
    }
    let summary = json!({
        "handovers": args.handovers,
        "enbcs": args.enbcs,
        "rollback": format!("{:?}", args.rollback).to_lowercase(),
        "committed": r.committed.len(),
        "rolled_back": r.rolled_back.len(),
        "file_size": file_size,
        "received": client.received,
        "checksum_ok": client.checksum == expected && client.received == file_size,
        "client_error": client.error,
        "client_resets": resets,
        "longest_pause_ms": client.longest_gap.as_secs_f64() * 1000.0,
        "phases_ms": {
            "mih_commit": Summary::of(&col("mih_commit")),
            "app_data": Summary::of(&col("app_data")),
            "socket_data": Summary::of(&col("socket_data")),
            "cxtp": Summary::of(&col("cxtp")),
            "total": Summary::of(&totals),
        },
        "data_length_octets": Summary::of(&sizes.iter().map(|s| *s as f64).collect::<Vec<_>>()),
        "records": r.committed.iter().chain(&r.rolled_back).collect::<Vec<_>>(),
        "failures": r.failures,
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
    if r.failures.is_empty() {
        println!("PASS: byte-exact download, no reset, every handover as expected");
        Ok(())
    } else {
        Err(format!("FAIL:\n  {}", r.failures.join("\n  ")))
    }
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
