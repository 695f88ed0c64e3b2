//! The whole handover flow across two eNBCs on loopback: two mihfd
//! (in-process, ephemeral ports), two `mih-user` daemon processes (eNBC A
//! on 127.0.0.1, eNBC B on 127.0.0.2 for CXTP), the example HTTP service on
//! both, and real X2AP PDUs (the pycrate vectors HandoverRequest +
//! HandoverRequestAcknowledge) sent to A's X2 UDP tap. A "UE" (a client on
//! 127.0.0.1) downloads a file from A's service while it is handed over.
//!
//! * success: the context arrives at B and the download continues there
//!   from the offset, byte for byte; metrics, JSON log line, sessions;
//! * refusal (B's admission limit 0; the service not registered at B), MIH
//!   timeout (B's mihfd absent), CXTP timeout (B's CXTP address a black
//!   hole) and destination crash (B's mih-user killed while it holds the
//!   contexts): A rolls back, its service keeps serving the UE and the
//!   download completes from A, byte for byte;
//! * retry: refused for capacity, A tries again until its attempts are
//!   spent; B's mih-user absent at the trigger and started later, A's
//!   retry moves the download to B.
//!
//! Every process is killed when its test ends; sockets live in a temporary
//! directory; ports are ephemeral. The tests run one at a time (a lock),
//! to keep the 2-core machine's timing sane.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mihf::daemon::config::Config as MihfConfig;
use mihf::daemon::Daemon;
use mihf::proto::node::PeerConfig;
use mihf::wire::MihfId;
use serde_json::Value;

static SERIAL: Mutex<()> = Mutex::new(());

const SEED: u64 = 5;
const UE: &str = "127.0.0.1";

// ------------------------------------------------------------- helpers

fn vector(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../conformance/vectors/x2ap/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    hex::decode(v["hex"].as_str().unwrap()).unwrap()
}

fn expected(name: &str, offset: u64, len: usize) -> Vec<u8> {
    common::expected(SEED, name, offset, len)
}

fn free_tcp(ip: &str) -> SocketAddr {
    TcpListener::bind((ip, 0)).unwrap().local_addr().unwrap()
}

fn free_udp(ip: &str) -> SocketAddr {
    UdpSocket::bind((ip, 0)).unwrap().local_addr().unwrap()
}

/// A child process killed (SIGKILL) on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn control(path: &Path, req: &Value) -> Option<Value> {
    let mut s = UnixStream::connect(path).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    writeln!(s, "{req}").ok()?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).ok()?;
    serde_json::from_str(&line).ok()
}

fn status(path: &Path) -> Option<Value> {
    control(path, &serde_json::json!({"op": "status"}))
}

fn http_get(addr: SocketAddr, path: &str) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut b).unwrap(), 1, "connection closed in the head");
        head.push(b[0]);
    }
    (s, String::from_utf8(head).unwrap())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn spawn_service(api: &Path, service_id: &str, file_size: u64, rate: u64) -> (Proc, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_example-http-service"))
        .args(["--listen", "127.0.0.1:0", "--api-socket"])
        .arg(api)
        .args(["--service-id", service_id])
        .args(["--file-size", &file_size.to_string()])
        .args(["--seed", &SEED.to_string()])
        .args(["--rate", &rate.to_string(), "--chunk", "4096"])
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("example-http-service");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();
    (Proc(child), addr)
}

// ------------------------------------------------------------- testbed

#[derive(Clone)]
struct Opts {
    /// B's `admission.max_ues`.
    b_max_ues: usize,
    /// Run B's mihfd.
    b_mihfd: bool,
    /// Run B's mih-user.
    b_user: bool,
    /// A's idea of B's CXTP address (default: B's real one).
    b_cxtp_seen_by_a: Option<SocketAddr>,
    /// Default mihfd timers on A (slow MIH failure, so A's own MIH timeout fires).
    a_mihfd_default_timers: bool,
    /// A replays the pycrate X2AP capture at start.
    a_x2_pcap: bool,
    /// A's `[schedule]` keys (TOML lines).
    a_schedule: &'static str,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            b_max_ues: 1000,
            b_mihfd: true,
            b_user: true,
            b_cxtp_seen_by_a: None,
            a_mihfd_default_timers: false,
            a_x2_pcap: false,
            a_schedule: "",
        }
    }
}

struct Enbc {
    api: PathBuf,
    ctl: PathBuf,
    metrics: SocketAddr,
    x2: SocketAddr,
    x2_tcp: SocketAddr,
    log: PathBuf,
    user: Option<Proc>,
}

struct Bed {
    rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
    /// B's configuration (to start it later when it did not run at first).
    b_toml: String,
    mihfds: Vec<Daemon>,
    a: Enbc,
    b: Enbc,
}

fn mihfd_cfg(id: &str, fast: bool) -> MihfConfig {
    let mut c = MihfConfig::with_id(id);
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    c.listen.udp = vec![any];
    c.listen.tcp = vec![];
    c.sap.listen = any;
    c.timers.discovery_interval_ms = 0;
    if fast {
        c.timers.retransmission_timeout_ms = 200;
        c.timers.ack_delay_ms = 20;
        c.timers.transaction_lifetime_ms = 5000;
    }
    c
}

#[allow(clippy::too_many_arguments)]
fn user_toml(
    dir: &Path,
    name: &str,
    sap: SocketAddr,
    cxtp: SocketAddr,
    peer: (&str, SocketAddr),
    x2: (SocketAddr, SocketAddr, &str),
    metrics: SocketAddr,
    max_ues: usize,
    schedule: &str,
) -> String {
    format!(
        r#"
[mihf]
sap = "{sap}"
user_id = "mih-user-{name}"
register_interval_ms = 500

[api]
socket = "{api}"
export_timeout_ms = 1000
import_timeout_ms = 1000

[cxtp]
listen = "{cxtp}"
transfer_timeout_ms = 1500

[timers]
mih_timeout_ms = 1000
context_timeout_ms = 3000
# Longer than the source keeps repeating its Complete: 1500 + 3 x 300.
complete_timeout_ms = 3000
complete_retries = 2
complete_retry_interval_ms = 300

[admission]
max_ues = {max_ues}

[schedule]
{schedule}

[sessions]
mode = "memory"

[x2]
udp = "{x2udp}"
tcp = "{x2tcp}"
{x2extra}

[[neighbours]]
plmn = "001-01"
enb_id = 0x1a2b3
mihf_id = "enbc-b"

[[ues]]
ue_address = "{UE}"
old_enb_ue_x2ap_id = 17

[[peers]]
mihf_id = "{pid}"
cxtp = "{paddr}"

[control]
socket = "{ctl}"

[metrics]
listen = "{metrics}"
"#,
        api = dir.join(format!("{name}-api.sock")).display(),
        ctl = dir.join(format!("{name}-ctl.sock")).display(),
        pid = peer.0,
        paddr = peer.1,
        x2udp = x2.0,
        x2tcp = x2.1,
        x2extra = x2.2,
    )
}

fn spawn_user(dir: &Path, name: &str, toml: &str) -> (Proc, PathBuf) {
    let cfg = dir.join(format!("{name}.toml"));
    std::fs::write(&cfg, toml).unwrap();
    let log = dir.join(format!("{name}.log"));
    let child = Command::new(common::bin("mih-user"))
        .arg("-c")
        .arg(&cfg)
        .arg("--log-json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("mih-user");
    (Proc(child), log)
}

impl Bed {
    fn new(o: Opts) -> Bed {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let da = rt
            .block_on(Daemon::start(&mihfd_cfg(
                "enbc-a",
                !o.a_mihfd_default_timers,
            )))
            .unwrap();
        let mut mihfds = vec![];
        let b_mihfd_udp = if o.b_mihfd {
            let db = rt
                .block_on(Daemon::start(&mihfd_cfg("enbc-b", true)))
                .unwrap();
            db.add_peer(PeerConfig {
                id: MihfId::from_static("enbc-a"),
                udp: Some(da.udp_addrs[0]),
                tcp: None,
                prefer_tcp: false,
            })
            .unwrap();
            let u = db.udp_addrs[0];
            mihfds.push(db);
            u
        } else {
            free_udp("127.0.0.1") // nobody there
        };
        da.add_peer(PeerConfig {
            id: MihfId::from_static("enbc-b"),
            udp: Some(b_mihfd_udp),
            tcp: None,
            prefer_tcp: false,
        })
        .unwrap();
        let a_sap = da.sap_addr;
        let b_sap = mihfds.first().map(|d| d.sap_addr);
        mihfds.insert(0, da);

        let (a_cxtp, b_cxtp) = (free_tcp("127.0.0.1"), free_tcp("127.0.0.2"));
        let (a_metrics, b_metrics) = (free_tcp("127.0.0.1"), free_tcp("127.0.0.1"));
        let (a_x2, b_x2) = (free_udp("127.0.0.1"), free_udp("127.0.0.1"));
        let (a_x2t, b_x2t) = (free_tcp("127.0.0.1"), free_tcp("127.0.0.1"));
        let pcap = format!(
            "pcap = \"{}/../../conformance/vectors/x2ap/x2ap_sctp.pcap\"",
            env!("CARGO_MANIFEST_DIR")
        );
        let a_extra = if o.a_x2_pcap { pcap.as_str() } else { "" };
        let d = dir.path();
        let ta = user_toml(
            d,
            "a",
            a_sap,
            a_cxtp,
            ("enbc-b", o.b_cxtp_seen_by_a.unwrap_or(b_cxtp)),
            (a_x2, a_x2t, a_extra),
            a_metrics,
            1000,
            o.a_schedule,
        );
        let (ua, la) = spawn_user(d, "a", &ta);
        let tb = user_toml(
            d,
            "b",
            b_sap.unwrap_or(a_sap),
            b_cxtp,
            ("enbc-a", a_cxtp),
            (b_x2, b_x2t, ""),
            b_metrics,
            o.b_max_ues,
            "",
        );
        let b = if o.b_user {
            let (ub, lb) = spawn_user(d, "b", &tb);
            Some((ub, lb))
        } else {
            None
        };
        let a = Enbc {
            api: d.join("a-api.sock"),
            ctl: d.join("a-ctl.sock"),
            metrics: a_metrics,
            x2: a_x2,
            x2_tcp: a_x2t,
            log: la,
            user: Some(ua),
        };
        let (ub, lb) = match b {
            Some((u, l)) => (Some(u), l),
            None => (None, d.join("b.log")),
        };
        let b = Enbc {
            api: d.join("b-api.sock"),
            ctl: d.join("b-ctl.sock"),
            metrics: b_metrics,
            x2: b_x2,
            x2_tcp: b_x2t,
            log: lb,
            user: ub,
        };
        let bed = Bed {
            rt,
            _dir: dir,
            b_toml: tb,
            mihfds,
            a,
            b,
        };
        let mut nodes = vec![&bed.a];
        if o.b_user {
            nodes.push(&bed.b);
        }
        for n in nodes {
            bed.wait(
                "mih-user registered with mihfd",
                Duration::from_secs(40),
                || {
                    let s = status(&n.ctl)?;
                    (s["registered"] == true).then_some(())
                },
            );
        }
        bed
    }

    /// Start B's mih-user (a bed made with `b_user: false`).
    fn start_b(&mut self) {
        // B's ports were picked free when the bed was made and B starts
        // later: a parallel test may have taken its metrics port meanwhile
        // (nothing else refers to that one, so it can move; seen once in CI).
        for _ in 0..5 {
            let (mut u, l) = spawn_user(self._dir.path(), "b", &self.b_toml);
            self.b.log = l;
            std::thread::sleep(Duration::from_millis(200));
            let exited = u.0.try_wait().ok().flatten().is_some();
            let clash = std::fs::read_to_string(&self.b.log)
                .unwrap_or_default()
                .contains("metrics.listen: Address already in use");
            self.b.user = Some(u);
            if !(exited && clash) {
                break;
            }
            let old = format!("listen = \"{}\"", self.b.metrics);
            self.b.metrics = free_tcp("127.0.0.1");
            self.b_toml = self
                .b_toml
                .replace(&old, &format!("listen = \"{}\"", self.b.metrics));
        }
        let ctl = self.b.ctl.clone();
        self.wait("B registered with mihfd", Duration::from_secs(40), || {
            (status(&ctl)?["registered"] == true).then_some(())
        });
    }

    /// Poll `f` until it gives a value; on a timeout, panic with the
    /// daemons' logs.
    fn wait<T>(&self, what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
        let t0 = Instant::now();
        loop {
            if let Some(v) = f() {
                return v;
            }
            if t0.elapsed() >= limit {
                let tail = |p: &Path| {
                    let t = std::fs::read_to_string(p).unwrap_or_default();
                    let lines: Vec<&str> = t.lines().collect();
                    lines[lines.len().saturating_sub(40)..].join("\n")
                };
                panic!(
                    "timed out waiting for {what}\n--- A log:\n{}\n--- B log:\n{}",
                    tail(&self.a.log),
                    tail(&self.b.log)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_service(&self, n: &Enbc, id: &str) {
        self.wait("service registered", Duration::from_secs(30), || {
            let s = status(&n.ctl)?;
            s["services"]
                .as_array()?
                .iter()
                .any(|x| x == id)
                .then_some(())
        });
    }

    /// Send HandoverRequest + HandoverRequestAcknowledge to A's X2 tap.
    fn x2_handover(&self) {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.send_to(&vector("handover_request"), self.a.x2).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        s.send_to(&vector("handover_request_acknowledge"), self.a.x2)
            .unwrap();
    }

    /// Send X2AP PDUs to A's TCP tap (u32 length prefix each).
    fn x2_tcp(&self, names: &[&str]) {
        let mut s = TcpStream::connect(self.a.x2_tcp).unwrap();
        for n in names {
            let pdu = vector(n);
            s.write_all(&(pdu.len() as u32).to_be_bytes()).unwrap();
            s.write_all(&pdu).unwrap();
        }
    }

    /// The first finished migration of `n` (waits for it).
    fn record(&self, n: &Enbc, role: &str, limit: Duration) -> Value {
        self.wait("a migration record", limit, || {
            let s = status(&n.ctl)?;
            s["recent"]
                .as_array()?
                .iter()
                .find(|r| r["role"] == role)
                .cloned()
        })
    }

    fn metrics(&self, n: &Enbc) -> String {
        let mut s = TcpStream::connect(n.metrics).unwrap();
        write!(s, "GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    /// SIGTERM both mih-users; they must exit 0.
    fn stop(mut self) {
        for n in [&mut self.a, &mut self.b] {
            if let Some(mut p) = n.user.take() {
                let pid = p.0.id().to_string();
                let ok = Command::new("kill")
                    .args(["-TERM", &pid])
                    .status()
                    .unwrap()
                    .success();
                assert!(ok);
                let t0 = Instant::now();
                let st = loop {
                    if let Some(st) = p.0.try_wait().unwrap() {
                        break st;
                    }
                    assert!(
                        t0.elapsed() < Duration::from_secs(30),
                        "no exit after SIGTERM"
                    );
                    std::thread::sleep(Duration::from_millis(20));
                };
                assert!(st.success(), "mih-user exit status {st}");
            }
        }
        for d in self.mihfds.drain(..) {
            self.rt.block_on(d.shutdown());
        }
    }
}

/// The UE downloads `/file/movie.bin` from `addr`; returns the stream after
/// `first` octets of body have been read, and those octets.
fn start_download(addr: SocketAddr, size: u64, first: usize) -> (TcpStream, Vec<u8>) {
    let (mut s, head) = http_get(addr, "/file/movie.bin");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(
        header(&head, "content-length"),
        Some(size.to_string().as_str())
    );
    let mut got = vec![0u8; first];
    s.read_exact(&mut got).unwrap();
    (s, got)
}

/// After a rollback the service at A keeps serving: the rest of the file
/// arrives from A, and the whole is byte-exact.
fn finish_from_a(mut s: TcpStream, mut got: Vec<u8>, size: u64) {
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    got.extend_from_slice(&rest);
    assert_eq!(
        got.len() as u64,
        size,
        "download from A incomplete after the rollback"
    );
    assert!(
        got == expected("movie.bin", 0, size as usize),
        "content differs"
    );
}

fn ue_registered(bed: &Bed, n: &Enbc) {
    bed.wait("UE registered at A", Duration::from_secs(30), || {
        let s = status(&n.ctl)?;
        (s["users"].as_u64()? >= 1).then_some(())
    });
}

// --------------------------------------------------------------- tests

#[test]
fn x2_handover_moves_the_download_to_the_destination() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let size = 400_000;
    let bed = Bed::new(Opts::default());
    let (_sa, a_http) = spawn_service(&bed.a.api, "http-download", size, 100_000);
    let (_sb, b_http) = spawn_service(&bed.b.api, "http-download", size, 0);
    bed.wait_service(&bed.a, "http-download");
    bed.wait_service(&bed.b, "http-download");

    let (mut from_a, mut got) = start_download(a_http, size, 20_000);
    ue_registered(&bed, &bed.a);
    bed.x2_handover();

    let src = bed.record(&bed.a, "source", Duration::from_secs(40));
    assert_eq!(src["outcome"], "committed", "{src}");
    assert_eq!(src["trigger"], "x2");
    assert_eq!(src["peer"], "enbc-b");
    assert_eq!(src["ue"], UE);
    for phase in ["mih_commit", "app_data", "socket_data", "cxtp", "total"] {
        assert!(src["phases_us"][phase].as_u64().is_some(), "{phase}: {src}");
    }
    assert!(src["sizes"]["app_octets"].as_u64().unwrap() > 0);
    assert_eq!(src["sizes"]["sessions"], 1, "one synthetic session: {src}");
    let dst = bed.record(&bed.b, "destination", Duration::from_secs(30));
    assert_eq!(dst["outcome"], "committed", "{dst}");
    assert_eq!(
        dst["cause"],
        Value::Null,
        "committed on the Complete: {dst}"
    );
    assert_eq!(dst["sizes"]["app_octets"], src["sizes"]["app_octets"]);

    // A froze the download at the exported offset and closed it on commit.
    let mut rest = Vec::new();
    from_a.read_to_end(&mut rest).unwrap();
    got.extend_from_slice(&rest);
    let offset = got.len() as u64;
    assert!((20_000..size).contains(&offset), "offset {offset}");

    // The UE asks B: the download continues from the offset.
    let (mut from_b, head) = http_get(b_http, "/file/movie.bin");
    assert!(head.starts_with("HTTP/1.1 206"), "{head}");
    assert_eq!(
        header(&head, "x-resumed-from"),
        Some(offset.to_string().as_str())
    );
    let mut tail = Vec::new();
    from_b.read_to_end(&mut tail).unwrap();
    got.extend_from_slice(&tail);
    assert_eq!(got.len() as u64, size);
    assert!(
        got == expected("movie.bin", 0, size as usize),
        "content differs"
    );

    // Metrics, sessions and the JSON log line.
    let m = bed.metrics(&bed.a);
    assert!(
        m.contains(
            r#"mih_user_migrations_total{role="source",outcome="committed",cause="none"} 1"#
        ),
        "{m}"
    );
    for phase in ["mih_commit", "app_data", "socket_data", "cxtp", "total"] {
        let line =
            format!(r#"mih_user_migration_phase_seconds_count{{role="source",phase="{phase}"}} 1"#);
        assert!(m.contains(&line), "{line}");
    }
    assert!(m.contains("mih_user_x2_triggered_total 1"), "{m}");
    let mb = bed.metrics(&bed.b);
    assert!(mb.contains(
        r#"mih_user_migrations_total{role="destination",outcome="committed",cause="none"} 1"#
    ));
    let sa = status(&bed.a.ctl).unwrap();
    assert_eq!(sa["sessions"]["export"], 1);
    assert_eq!(sa["sessions"]["release"], 1);
    let sb = status(&bed.b.ctl).unwrap();
    assert_eq!(sb["sessions"]["import"], 1);
    assert_eq!(sb["sessions"]["commit"], 1);
    let log = std::fs::read_to_string(&bed.a.log).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("migration finished"))
        .expect("one log line per migration");
    let j: Value = serde_json::from_str(line).unwrap();
    for f in [
        "mih_commit_us",
        "app_data_us",
        "socket_data_us",
        "cxtp_us",
        "total_us",
        "app_octets",
        "cxtp_octets",
    ] {
        assert!(j["fields"][f].is_number(), "{f} missing in {line}");
    }
    assert_eq!(j["fields"]["outcome"], "committed");
    bed.stop();
}

/// Shared body of the rollback tests: trigger over X2, expect A's record
/// rolled back with `label`, and the download to complete from A.
fn rollback_case(bed: &Bed, label: &str, size: u64) -> Value {
    let (_sa, a_http) = spawn_service(&bed.a.api, "http-download", size, 200_000);
    bed.wait_service(&bed.a, "http-download");
    let (from_a, got) = start_download(a_http, size, 10_000);
    ue_registered(bed, &bed.a);
    bed.x2_handover();
    let src = bed.record(&bed.a, "source", Duration::from_secs(40));
    assert_eq!(src["outcome"], "rolled_back", "{src}");
    assert_eq!(src["cause_label"], label, "{src}");
    finish_from_a(from_a, got, size);
    // (Counted once per attempt: retried causes count more than once.)
    let m = bed.metrics(&bed.a);
    let line = format!(
        r#"mih_user_migrations_total{{role="source",outcome="rolled_back",cause="{label}"}} "#
    );
    assert!(m.contains(&line), "{m}");
    src
}

/// The value of one metric line (name with labels) in `m`.
fn metric(m: &str, name: &str) -> Option<u64> {
    m.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn refusal_by_admission_limit_zero_rolls_back() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bed = Bed::new(Opts {
        b_max_ues: 0,
        a_schedule: "retry_initial_ms = 50\nretry_max_ms = 100\nmax_attempts = 3",
        ..Opts::default()
    });
    let (_sb, _) = spawn_service(&bed.b.api, "http-download", 200_000, 0);
    bed.wait_service(&bed.b, "http-download");
    let src = rollback_case(&bed, "refused", 200_000);
    assert!(
        src["cause"].as_str().unwrap().contains("no capacity"),
        "{src}"
    );
    // Capacity can change: A tried three times, then gave up.
    let m = bed.wait("A to give up", Duration::from_secs(30), || {
        let m = bed.metrics(&bed.a);
        (metric(&m, r#"mih_user_handovers_gave_up_total{cause="refused"}"#) == Some(1)).then_some(m)
    });
    for (name, v) in [
        (
            r#"mih_user_migrations_total{role="source",outcome="rolled_back",cause="refused"}"#,
            3,
        ),
        ("mih_user_handover_retries_total", 2),
        (r#"mih_user_handover_requests_total{fate="gave_up"}"#, 1),
        (r#"mih_user_handovers_queued{state="retrying"}"#, 0),
    ] {
        assert_eq!(metric(&m, name), Some(v), "{name}\n{m}");
    }
    let mb = bed.metrics(&bed.b);
    assert_eq!(
        metric(
            &mb,
            r#"mih_user_admission_refused_total{reason="capacity"}"#
        ),
        Some(3),
        "{mb}"
    );
    let log = std::fs::read_to_string(&bed.a.log).unwrap();
    assert_eq!(log.matches("handover will be retried").count(), 2, "{log}");
    assert_eq!(
        log.matches("handover retries exhausted").count(),
        1,
        "{log}"
    );
    bed.stop();
}

#[test]
fn refusal_when_the_service_is_not_registered_at_the_destination() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bed = Bed::new(Opts::default());
    let (_sb, _) = spawn_service(&bed.b.api, "another-service", 200_000, 0);
    bed.wait_service(&bed.b, "another-service");
    let src = rollback_case(&bed, "refused", 200_000);
    assert!(
        src["cause"].as_str().unwrap().contains("not registered"),
        "{src}"
    );
    // A missing service does not appear by waiting: no retry.
    let m = bed.metrics(&bed.a);
    assert_eq!(
        metric(&m, "mih_user_handover_retries_total"),
        Some(0),
        "{m}"
    );
    assert_eq!(
        metric(&m, r#"mih_user_handover_requests_total{fate="done"}"#),
        Some(1),
        "{m}"
    );
    bed.stop();
}

#[test]
fn mih_timeout_when_the_destination_mihfd_is_absent() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bed = Bed::new(Opts {
        b_mihfd: false,
        b_user: false,
        a_mihfd_default_timers: true,
        ..Opts::default()
    });
    let src = rollback_case(&bed, "mih_timeout", 200_000);
    assert!(src["phases_us"]["total"].as_u64().unwrap() >= 1_000_000);
    bed.stop();
}

#[test]
fn cxtp_timeout_rolls_back_and_restores_sessions() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // A sends its CTDs into a listener that never answers.
    let hole = TcpListener::bind("127.0.0.3:0").unwrap();
    let hole_addr = hole.local_addr().unwrap();
    let sink = std::thread::spawn(move || {
        if let Ok((mut s, _)) = hole.accept() {
            let mut buf = [0u8; 65536];
            while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
        }
    });
    let bed = Bed::new(Opts {
        b_cxtp_seen_by_a: Some(hole_addr),
        // One attempt: the test counts its export and restore.
        a_schedule: "max_attempts = 1",
        ..Opts::default()
    });
    let (_sb, _) = spawn_service(&bed.b.api, "http-download", 300_000, 0);
    bed.wait_service(&bed.b, "http-download");
    rollback_case(&bed, "cxtp_timeout", 300_000);
    let sa = status(&bed.a.ctl).unwrap();
    assert_eq!(sa["sessions"]["export"], 1);
    assert_eq!(sa["sessions"]["restore"], 1, "{sa}");
    // B had accepted and heard A's MIH_N2N_HO_Complete(failure).
    let dst = bed.record(&bed.b, "destination", Duration::from_secs(30));
    assert_eq!(dst["outcome"], "rolled_back", "{dst}");
    bed.stop();
    drop(sink);
}

/// B's service that holds every import without answering and reports
/// it on the returned channel.
fn holding_service(
    bed: &Bed,
) -> (
    tokio::task::JoinHandle<()>,
    std::sync::mpsc::Receiver<usize>,
) {
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let api_b = bed.b.api.clone();
    let svc = bed.rt.spawn(async move {
        use mih_user::api::client::{Event, ServiceClient};
        let (c, mut ev) = ServiceClient::connect(&api_b).await.unwrap();
        c.register_service("http-download", 0xFF01).await.unwrap();
        while let Some(e) = ev.recv().await {
            if let Event::ImportRequested(r) = e {
                let _ = held_tx.send(r.data.len());
            }
        }
    });
    bed.wait_service(&bed.b, "http-download");
    (svc, held_rx)
}

#[test]
fn x2_handover_cancel_over_the_tcp_tap_aborts() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bed = Bed::new(Opts::default());
    let (svc, held) = holding_service(&bed);
    let size = 300_000;
    let (_sa, a_http) = spawn_service(&bed.a.api, "http-download", size, 200_000);
    bed.wait_service(&bed.a, "http-download");
    let (from_a, got) = start_download(a_http, size, 10_000);
    ue_registered(&bed, &bed.a);
    bed.x2_tcp(&["handover_request", "handover_request_acknowledge"]);
    // While B holds the contexts, the source eNB cancels the handover.
    held.recv_timeout(Duration::from_secs(40)).unwrap();
    bed.x2_tcp(&["handover_cancel"]);
    let src = bed.record(&bed.a, "source", Duration::from_secs(40));
    assert_eq!(src["outcome"], "rolled_back", "{src}");
    assert_eq!(src["cause_label"], "aborted", "{src}");
    assert!(
        src["cause"].as_str().unwrap().contains("Cancelled"),
        "{src}"
    );
    finish_from_a(from_a, got, size);
    // B dropped what it held on A's MIH_N2N_HO_Complete(failure).
    let dst = bed.record(&bed.b, "destination", Duration::from_secs(30));
    assert_eq!(dst["cause_label"], "source_rolled_back", "{dst}");
    svc.abort();
    bed.stop();
}

#[test]
fn destination_crash_mid_transfer_rolls_back() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut bed = Bed::new(Opts::default());
    // B's service: holds the import without answering and tells the test.
    let (svc, held_rx) = holding_service(&bed);
    let size = 300_000;
    let (_sa, a_http) = spawn_service(&bed.a.api, "http-download", size, 200_000);
    bed.wait_service(&bed.a, "http-download");
    let (from_a, got) = start_download(a_http, size, 10_000);
    ue_registered(&bed, &bed.a);
    bed.x2_handover();
    // B holds the contexts: the CTDR is not sent yet. Kill B's mih-user.
    let n = held_rx.recv_timeout(Duration::from_secs(40)).unwrap();
    assert!(n > 0);
    let mut b_user = bed.b.user.take().unwrap();
    b_user.0.kill().unwrap();
    let _ = b_user.0.wait();
    let src = bed.record(&bed.a, "source", Duration::from_secs(40));
    assert_eq!(src["outcome"], "rolled_back", "{src}");
    assert_eq!(src["cause_label"], "cxtp_timeout", "{src}");
    finish_from_a(from_a, got, size);
    svc.abort();
    bed.stop();
}

#[test]
fn retry_moves_the_download_once_the_destination_is_back() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // B's mihfd runs, its mih-user not yet: A's commit fails. A retries
    // every 4 s, long enough for B's mih-user and service to come up in
    // between (a commit that reached B before its service registered
    // would be refused for good: "not registered" is not retried).
    let mut bed = Bed::new(Opts {
        b_user: false,
        a_schedule: "retry_initial_ms = 4000\nretry_factor = 1\nretry_max_ms = 4000\n\
                     max_attempts = 5\nretry_jitter_percent = 0",
        ..Opts::default()
    });
    let size = 1_500_000;
    let (_sa, a_http) = spawn_service(&bed.a.api, "http-download", size, 100_000);
    bed.wait_service(&bed.a, "http-download");
    let (mut from_a, mut got) = start_download(a_http, size, 20_000);
    ue_registered(&bed, &bed.a);
    bed.x2_handover();
    let first = bed.record(&bed.a, "source", Duration::from_secs(40));
    assert_eq!(first["outcome"], "rolled_back", "{first}");
    // The status lists the UE as retrying.
    let waiting = bed.wait("A's retry in the status", Duration::from_secs(10), || {
        let s = status(&bed.a.ctl)?;
        s["waiting"].as_array()?.first().cloned()
    });
    assert_eq!(waiting["ue"], UE, "{waiting}");
    assert_eq!(waiting["target"], "enbc-b", "{waiting}");
    assert_eq!(waiting["state"], "retrying", "{waiting}");
    assert!(waiting["attempt"].as_u64().unwrap() >= 2, "{waiting}");
    // B comes up with the service; a retry moves the UE.
    bed.start_b();
    let (_sb, b_http) = spawn_service(&bed.b.api, "http-download", size, 0);
    bed.wait_service(&bed.b, "http-download");
    let src = bed.wait("a committed retry", Duration::from_secs(40), || {
        let s = status(&bed.a.ctl)?;
        s["recent"]
            .as_array()?
            .iter()
            .find(|r| r["role"] == "source" && r["outcome"] == "committed")
            .cloned()
    });
    assert_eq!(src["trigger"], "x2", "{src}");
    let mut rest = Vec::new();
    from_a.read_to_end(&mut rest).unwrap();
    got.extend_from_slice(&rest);
    let offset = got.len() as u64;
    assert!((20_000..size).contains(&offset), "offset {offset}");
    let (mut from_b, head) = http_get(b_http, "/file/movie.bin");
    assert!(head.starts_with("HTTP/1.1 206"), "{head}");
    let mut tail = Vec::new();
    from_b.read_to_end(&mut tail).unwrap();
    got.extend_from_slice(&tail);
    assert!(
        got == expected("movie.bin", 0, size as usize),
        "content differs"
    );
    let m = bed.metrics(&bed.a);
    assert!(
        metric(&m, "mih_user_handover_retries_total").unwrap() >= 1,
        "{m}"
    );
    assert_eq!(
        metric(&m, r#"mih_user_handover_requests_total{fate="done"}"#),
        Some(1),
        "{m}"
    );
    let s = status(&bed.a.ctl).unwrap();
    assert_eq!(s["waiting"], serde_json::json!([]), "{s}");
    bed.stop();
}

#[test]
fn operator_command_and_cli() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // A also replays the pycrate capture at start: its HandoverRequest +
    // Acknowledge trigger a handover of UE 17 = 127.0.0.1, which has no
    // service yet, so the orchestrator refuses it (counted).
    let bed = Bed::new(Opts {
        a_x2_pcap: true,
        ..Opts::default()
    });
    bed.wait("pcap replayed", Duration::from_secs(30), || {
        let m = bed.metrics(&bed.a);
        (m.contains("mih_user_x2_triggered_total 1")
            && m.contains("mih_user_x2_not_started_total 1")
            && m.contains("mih_user_x2_forgotten_total"))
        .then_some(())
    });
    assert!(bed
        .metrics(&bed.a)
        .contains(r#"mih_user_start_refused_total{reason="no_services"} 1"#));
    let size = 200_000;
    let (_sa, a_http) = spawn_service(&bed.a.api, "http-download", size, 200_000);
    let (_sb, _) = spawn_service(&bed.b.api, "http-download", size, 0);
    bed.wait_service(&bed.a, "http-download");
    bed.wait_service(&bed.b, "http-download");
    // Unknown UE: refused at once, exit 3.
    let out = Command::new(common::bin("mih-user"))
        .args(["handover", "--control"])
        .arg(&bed.a.ctl)
        .args(["--ue", "10.9.9.9", "--target", "enbc-b"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("no_services"));
    // The UE's download; then the operator moves it.
    let (_from_a, _) = start_download(a_http, size, 10_000);
    ue_registered(&bed, &bed.a);
    let out = Command::new(common::bin("mih-user"))
        .args(["handover", "--control"])
        .arg(&bed.a.ctl)
        .args(["--ue", UE, "--target", "enbc-b"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["record"]["outcome"], "committed");
    assert_eq!(v["record"]["trigger"], "operator");
    let st = Command::new(common::bin("mih-user"))
        .args(["status", "--control"])
        .arg(&bed.a.ctl)
        .output()
        .unwrap();
    assert!(st.status.success());
    assert!(String::from_utf8_lossy(&st.stdout).contains("\"registered\": true"));
    // --check and config errors.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[api]\nsocket = \"/tmp/x\"\n[cxtp]\ntransfer_timout_ms = 5\n",
    )
    .unwrap();
    let out = Command::new(common::bin("mih-user"))
        .arg("-c")
        .arg(&bad)
        .arg("--check")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("transfer_timout_ms"));
    let help = Command::new(common::bin("mih-user"))
        .arg("--help")
        .output()
        .unwrap();
    let h = String::from_utf8_lossy(&help.stdout);
    for w in [
        "--config",
        "--check",
        "--log-json",
        "handover",
        "status",
        "abort",
    ] {
        assert!(h.contains(w), "{w} missing from --help");
    }
    bed.stop();
}
