//! A source mih-user killed (SIGKILL) in the middle of a TCP_REPAIR
//! migration loses no session: its session journal brings the session
//! back when it restarts (run as root; network namespaces made by the
//! test, like `handover-demo`'s: a UE namespace, two eNBCs, each with
//! mihfd, mih-user in `sessions.mode = "tcp_repair"` and the example HTTP
//! service on the shared service address).
//!
//! A plain client in the UE namespace downloads a file from eNBC 1; an
//! operator handover moves the UE to eNBC 2; eNBC 1's mih-user kills
//! itself at a named point (`MIH_USER_TEST_KILL_AT`) and is started again:
//!
//! * `exported` (the journal entry durable, the frozen sockets not yet
//!   closed): nothing left eNBC 1, so it restores the session at once;
//! * `sent` (the CTD not yet sent): it asks eNBC 2, whose Complete(Failure)
//!   rolls its attempt back, and restores;
//! * `before_commit` (eNBC 2's successful CTDR arrived, nothing committed),
//!   restarted after eNBC 2 committed at its complete timeout: eNBC 2
//!   answers committed, eNBC 1 drops its state and the download goes on
//!   from eNBC 2.
//!
//! A destination killed after its successful CTDR (eNBC 1 committed on
//! it) loses nothing either: its journal entry, written before the CTDR
//! left, holds the imported session, which the restarted eNBC 2 rebuilds
//! and commits (`dest_commit`: still waiting for the Complete; `resuming`:
//! in its commit).
//!
//! Each checks that the download is byte-exact and never reset
//! (`EstabResets` 0 in the UE namespace), that the hold is gone (the UE's
//! route to the service leads to the eNBC that serves it), and that the
//! journal is empty.
#![cfg(target_os = "linux")]

mod common;

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mih_user::sessions::journal::{self, Phase};
use mih_user::sessions::netns;
use serde_json::{json, Value};
use testkit::netns::{ip, run_in, Netns};

static SERIAL: Mutex<()> = Mutex::new(());

const UE_IP: &str = "10.77.0.2";
const SERVICE: &str = "10.99.0.1";
const PORT: u16 = 8080;
const SEED: u64 = 11;
const FILE: &str = "movie.bin";
const FILE_SIZE: u64 = 5 << 20;
const RATE: u64 = 1 << 20;

fn control(path: &Path, req: &Value, wait: Duration) -> Option<Value> {
    let mut s = UnixStream::connect(path).ok()?;
    s.set_read_timeout(Some(wait)).ok()?;
    writeln!(s, "{req}").ok()?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).ok()?;
    serde_json::from_str(&line).ok()
}

fn status(path: &Path) -> Option<Value> {
    control(path, &json!({"op": "status"}), Duration::from_secs(5))
}

fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let t = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The namespaces of [`Bed`], in this order.
const NAMESPACES: [&str; 3] = ["ue", "e1", "e2"];

/// The namespaces and processes of one test; all removed on drop (the
/// processes first, then the namespaces).
struct Bed {
    netns: Netns,
    dir: tempfile::TempDir,
    procs: Vec<(String, Child)>,
}

impl Drop for Bed {
    fn drop(&mut self) {
        for (_, c) in &mut self.procs {
            let _ = c.kill();
            let _ = c.wait();
        }
        // `netns` goes next and deletes the namespaces.
    }
}

impl Bed {
    /// The name of namespace `n` (one of [`NAMESPACES`]).
    fn ns(&self, n: &str) -> String {
        let i = NAMESPACES.iter().position(|x| *x == n).unwrap();
        self.netns.name(i).to_string()
    }

    fn d(&self) -> &Path {
        self.dir.path()
    }

    /// Build the namespaces; `None`: not root (skip, unless under CI).
    fn new(tag: &str) -> Option<Bed> {
        if !testkit::require_root("the journal recovery test (network namespaces, TCP_REPAIR)") {
            return None;
        }
        let bed = Bed {
            netns: Netns::new(&format!("jr{tag}"), &NAMESPACES)?,
            dir: tempfile::tempdir().unwrap(),
            procs: Vec::new(),
        };
        let (ue, e1, e2) = (bed.ns("ue"), bed.ns("e1"), bed.ns("e2"));
        ip(&[
            "-n",
            &ue,
            "addr",
            "add",
            &format!("{UE_IP}/32"),
            "dev",
            "lo",
        ])
        .unwrap();
        for (i, e) in [(1, &e1), (2, &e2)] {
            let ue_if = format!("ue{i}");
            ip(&[
                "-n", e, "link", "add", "acc", "type", "veth", "peer", "name", &ue_if, "netns", &ue,
            ])
            .unwrap();
            ip(&[
                "-n",
                e,
                "addr",
                "add",
                &format!("10.231.{i}.1/24"),
                "dev",
                "acc",
            ])
            .unwrap();
            ip(&["-n", e, "link", "set", "acc", "up"]).unwrap();
            ip(&[
                "-n",
                &ue,
                "addr",
                "add",
                &format!("10.231.{i}.2/24"),
                "dev",
                &ue_if,
            ])
            .unwrap();
            ip(&["-n", &ue, "link", "set", &ue_if, "up"]).unwrap();
            ip(&[
                "-n",
                e,
                "addr",
                "add",
                &format!("{SERVICE}/32"),
                "dev",
                "lo",
            ])
            .unwrap();
            ip(&[
                "-n",
                e,
                "route",
                "add",
                &format!("{UE_IP}/32"),
                "via",
                &format!("10.231.{i}.2"),
            ])
            .unwrap();
        }
        // The backhaul: one veth pair between the eNBCs.
        ip(&[
            "-n", &e1, "link", "add", "bh", "type", "veth", "peer", "name", "bh", "netns", &e2,
        ])
        .unwrap();
        for (i, e) in [(1, &e1), (2, &e2)] {
            ip(&[
                "-n",
                e,
                "addr",
                "add",
                &format!("10.230.0.{i}/24"),
                "dev",
                "bh",
            ])
            .unwrap();
            ip(&["-n", e, "link", "set", "bh", "up"]).unwrap();
        }
        ip(&[
            "-n",
            &ue,
            "route",
            "add",
            &format!("{SERVICE}/32"),
            "via",
            "10.231.1.1",
            "src",
            UE_IP,
        ])
        .unwrap();
        Some(bed)
    }

    fn spawn(&mut self, name: &str, ns: &str, prog: &Path, args: &[String], env: &[(&str, &str)]) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.d().join(format!("{name}.log")))
            .unwrap();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns])
            .arg(prog)
            .args(args)
            .env("RUST_LOG", "info")
            .env_remove("MIH_USER_TEST_KILL_AT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        self.procs.push((name.to_string(), child));
    }

    fn child(&mut self, name: &str) -> &mut Child {
        &mut self
            .procs
            .iter_mut()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no process {name}"))
            .1
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.d().join(format!("{name}.log"))).unwrap_or_default()
    }

    fn ctl(&self, i: usize) -> PathBuf {
        self.d().join(format!("e{i}-ctl.sock"))
    }

    fn journal_dir(&self, i: usize) -> PathBuf {
        // The default: next to the hand-off socket.
        self.d().join(format!("e{i}-handoff.journal"))
    }

    fn mihfd(&mut self, i: usize) {
        let j = 3 - i;
        let cfg = self.d().join(format!("e{i}-mihfd.toml"));
        std::fs::write(
            &cfg,
            format!(
                "mihf_id = \"enbc{i}\"\n[listen]\nudp = [\"10.230.0.{i}:4551\"]\ntcp = []\n\
                 [sap]\nlisten = \"127.0.0.1:1025\"\n[[peers]]\nid = \"enbc{j}\"\nudp = \"10.230.0.{j}:4551\"\n"
            ),
        )
        .unwrap();
        let ns = self.ns(&format!("e{i}"));
        let prog = common::bin("mihfd");
        self.spawn(
            &format!("e{i}-mihfd"),
            &ns,
            &prog,
            &["-c".into(), cfg.display().to_string()],
            &[],
        );
    }

    fn user_toml(&self, i: usize) -> String {
        let j = 3 - i;
        let d = self.d().display();
        let ue = self.ns("ue");
        format!(
            r#"[mihf]
sap = "127.0.0.1:1025"
user_id = "mih-user"
register_interval_ms = 500

[api]
socket = "{d}/e{i}-api.sock"
export_timeout_ms = 1000
import_timeout_ms = 1000

[cxtp]
listen = "10.230.0.{i}:5091"
transfer_timeout_ms = 1500

[timers]
mih_timeout_ms = 2000
context_timeout_ms = 4000
complete_timeout_ms = 2500
complete_retries = 1
complete_retry_interval_ms = 300

[control]
socket = "{d}/e{i}-ctl.sock"

[sessions]
mode = "tcp_repair"
handoff_socket = "{d}/e{i}-handoff.sock"
recovery_timeout_ms = 8000

[sessions.hold]
netns = "{ue}"
route = "{SERVICE}/32"
via = "blackhole"

[sessions.path_switch]
netns = "{ue}"
route = "{SERVICE}/32"
via = "10.231.{i}.1"
src = "{UE_IP}"

[[peers]]
mihf_id = "enbc{j}"
cxtp = "10.230.0.{j}:5091"
"#
        )
    }

    fn user(&mut self, i: usize, kill_at: Option<&str>) {
        let cfg = self.d().join(format!("e{i}-mih-user.toml"));
        std::fs::write(&cfg, self.user_toml(i)).unwrap();
        let ctl = self.ctl(i);
        let _ = std::fs::remove_file(&ctl);
        let ns = self.ns(&format!("e{i}"));
        let env: Vec<(&str, &str)> = kill_at
            .map(|k| vec![("MIH_USER_TEST_KILL_AT", k)])
            .unwrap_or_default();
        self.spawn(
            &format!("e{i}-mih-user"),
            &ns,
            &common::bin("mih-user"),
            &["-c".into(), cfg.display().to_string()],
            &env,
        );
        wait_for(
            &format!("e{i} mih-user registered with mihfd"),
            Duration::from_secs(15),
            || status(&ctl).filter(|s| s["registered"] == true),
        );
    }

    fn service(&mut self, i: usize) {
        let d = self.d().display().to_string();
        let ns = self.ns(&format!("e{i}"));
        self.spawn(
            &format!("e{i}-service"),
            &ns,
            Path::new(env!("CARGO_BIN_EXE_example-http-service")),
            &[
                "--listen".into(),
                format!("{SERVICE}:{PORT}"),
                "--api-socket".into(),
                format!("{d}/e{i}-api.sock"),
                "--handoff-socket".into(),
                format!("{d}/e{i}-handoff.sock"),
                "--file-size".into(),
                FILE_SIZE.to_string(),
                "--rate".into(),
                RATE.to_string(),
                "--seed".into(),
                SEED.to_string(),
            ],
            &[],
        );
        let ctl = self.ctl(i);
        wait_for(
            &format!("e{i} service registration"),
            Duration::from_secs(15),
            || status(&ctl).filter(|s| s["services"].as_array().is_some_and(|a| !a.is_empty())),
        );
    }

    fn ue_route(&self) -> String {
        ip(&[
            "-n",
            &self.ns("ue"),
            "route",
            "show",
            &format!("{SERVICE}/32"),
        ])
        .unwrap()
        .trim()
        .to_string()
    }

    fn ue_counter(&self, key: &str) -> u64 {
        netns::tcp_counter(&netns::path(&self.ns("ue")), "Tcp", key).unwrap()
    }

    /// The one entry eNBC `i`'s journal holds, decoded.
    fn only_entry(&self, i: usize) -> journal::Entry {
        let entries = self.entries(i);
        assert_eq!(entries.len(), 1, "{entries:?}");
        let bytes = bytes::Bytes::from(std::fs::read(&entries[0]).unwrap());
        journal::decode(&entries[0], bytes).unwrap()
    }

    fn entries(&self, i: usize) -> Vec<PathBuf> {
        let Ok(rd) = std::fs::read_dir(self.journal_dir(i)) else {
            return Vec::new();
        };
        let mut v: Vec<PathBuf> = rd
            .flatten()
            .map(|d| d.path())
            .filter(|p| p.extension().is_some_and(|e| e == "jrnl"))
            .collect();
        v.sort();
        v
    }

    fn aside(&self, i: usize) -> Vec<PathBuf> {
        std::fs::read_dir(self.journal_dir(i).join(journal::ASIDE))
            .map(|rd| rd.flatten().map(|d| d.path()).collect())
            .unwrap_or_default()
    }
}

/// The client: one GET, then the body read to the end in a thread;
/// returns the octets and the error, if any.
struct Download {
    got: std::sync::Arc<std::sync::atomic::AtomicU64>,
    handle: std::thread::JoinHandle<(Vec<u8>, Option<std::io::Error>)>,
}

fn download(bed: &Bed) -> Download {
    let mut s = run_in(&bed.ns("ue"), || TcpStream::connect((SERVICE, PORT))).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET /file/{FILE} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut b).unwrap(), 1, "closed in the head");
        head.push(b[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let got = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let g = got.clone();
    let handle = std::thread::spawn(move || {
        let mut body = Vec::with_capacity(FILE_SIZE as usize);
        let mut buf = vec![0u8; 65536];
        loop {
            match s.read(&mut buf) {
                Ok(0) => return (body, None),
                Ok(n) => {
                    body.extend_from_slice(&buf[..n]);
                    g.store(body.len() as u64, std::sync::atomic::Ordering::Relaxed);
                }
                Err(e) => return (body, Some(e)),
            }
        }
    });
    Download { got, handle }
}

/// The download ends byte-exact and never reset, and the UE's route to the
/// service leads to eNBC `served_by`.
fn finished_at(bed: &Bed, dl: Download, served_by: usize) {
    let (body, err) = dl.handle.join().unwrap();
    assert!(err.is_none(), "client read error: {err:?}");
    assert_eq!(body.len() as u64, FILE_SIZE, "octets received");
    let want = common::expected(SEED, FILE, 0, FILE_SIZE as usize);
    if let Some(i) = (0..body.len()).find(|&i| body[i] != want[i]) {
        panic!("download differs at octet {i}");
    }
    assert_eq!(bed.ue_counter("EstabResets"), 0, "the client saw a reset");
    let route = bed.ue_route();
    assert!(
        route.contains(&format!("via 10.231.{served_by}.1")),
        "UE route: {route}"
    );
}

/// One run: download from eNBC 1, hand over to eNBC 2, eNBC 1's mih-user
/// kills itself at `kill_at`; it is restarted (after `restart_after`, or
/// once eNBC 2 committed); the download must complete from `served_by`.
fn run(tag: &str, kill_at: &str, phase: Phase, wait_for_commit: bool, served_by: usize) {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(mut bed) = Bed::new(tag) else {
        return;
    };
    bed.mihfd(1);
    bed.mihfd(2);
    bed.user(1, Some(kill_at));
    bed.user(2, None);
    bed.service(1);
    bed.service(2);

    let dl = download(&bed);
    wait_for(
        "the UE registered at eNBC 1",
        Duration::from_secs(10),
        || status(&bed.ctl(1)).filter(|s| s["users"] == 1),
    );
    wait_for("500 KB downloaded", Duration::from_secs(10), || {
        (dl.got.load(std::sync::atomic::Ordering::Relaxed) > 500_000).then_some(())
    });

    // The operator handover: eNBC 1's mih-user dies in the middle.
    let ctl1 = bed.ctl(1);
    let asker = std::thread::spawn(move || {
        control(
            &ctl1,
            &json!({"op": "handover", "ue": UE_IP, "target": "enbc2", "timeout_ms": 10000}),
            Duration::from_secs(15),
        )
    });
    let killed = wait_for("eNBC 1's mih-user to die", Duration::from_secs(10), || {
        bed.child("e1-mih-user").try_wait().unwrap()
    });
    assert_eq!(killed.signal(), Some(libc::SIGKILL), "{killed:?}");
    let answer = asker.join().unwrap();
    assert!(
        answer.is_none(),
        "the daemon died before answering: {answer:?}"
    );
    bed.procs.retain(|(n, _)| n != "e1-mih-user");

    // What it left: one journal entry, and the hold.
    let e = bed.only_entry(1);
    assert_eq!(e.phase, phase, "{e:?}");
    assert_eq!(e.record.ue.to_string(), UE_IP);
    assert_eq!(e.record.peer, "enbc2");
    assert_eq!(e.record.services, vec!["http-download".to_string()]);
    assert_eq!(e.record.sessions.len(), 1);
    assert_eq!(
        e.record.sessions[0].local.to_string(),
        format!("{SERVICE}:{PORT}")
    );
    assert!(e.record.attempt.is_some());
    assert!(e
        .record
        .hooks
        .hold
        .as_deref()
        .unwrap()
        .contains("blackhole"));
    if !wait_for_commit {
        assert!(
            bed.ue_route().starts_with("blackhole"),
            "{}",
            bed.ue_route()
        );
    }

    if wait_for_commit {
        // eNBC 2 commits at its complete timeout: the session is its own.
        wait_for("eNBC 2 to commit", Duration::from_secs(10), || {
            let s = status(&bed.ctl(2))?;
            s["recent"]
                .as_array()?
                .iter()
                .any(|r| r["role"] == "destination" && r["outcome"] == "committed")
                .then_some(())
        });
    } else {
        std::thread::sleep(Duration::from_secs(1));
    }
    bed.user(1, None);

    // The hold is gone: the UE's path leads to the eNBC that serves it.
    finished_at(&bed, dl, served_by);
    // Recovery is over, the journal empty, nothing set aside.
    wait_for("eNBC 1's recovery to end", Duration::from_secs(10), || {
        status(&bed.ctl(1)).filter(|s| s["recovering"] == 0)
    });
    assert!(bed.entries(1).is_empty(), "{:?}", bed.entries(1));
    assert!(bed.aside(1).is_empty(), "{:?}", bed.aside(1));
    let log = bed.log("e1-mih-user");
    // (Shown with --nocapture: what the recovery did.)
    for l in log
        .lines()
        .filter(|l| l.contains("recovery") || l.contains("journal"))
    {
        println!("{l}");
    }
    let decided = if served_by == 1 {
        "sessions restored here"
    } else {
        "migration committed: state dropped here"
    };
    assert!(log.contains(decided), "eNBC 1's log:\n{log}");
    if served_by == 2 {
        assert!(!log.contains("sessions restored here"), "{log}");
    }
    // eNBC 2 agrees.
    let s2 = status(&bed.ctl(2)).unwrap();
    let want = if served_by == 1 {
        "rolled_back"
    } else {
        "committed"
    };
    assert!(
        s2["recent"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["role"] == "destination" && r["outcome"] == want),
        "{s2}"
    );
}

#[test]
fn killed_after_the_export_wrote_the_journal_restores_at_the_source() {
    run("x", "exported", Phase::Exported, false, 1);
}

#[test]
fn killed_before_the_contexts_left_asks_and_restores_at_the_source() {
    run("s", "sent", Phase::Sent, false, 1);
}

#[test]
fn killed_before_its_commit_when_the_destination_committed_does_not_restore() {
    run("c", "before_commit", Phase::Sent, true, 2);
}

#[test]
fn a_blackhole_is_deleted_only_while_it_is_one() {
    use mih_user::sessions::route::{is_not_found, RouteHandle};
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !testkit::require_root("route changes in a network namespace") {
        return;
    }
    let Some(ns) = Netns::new("jrb", &["rt"]) else {
        return;
    };
    let name = ns.name(0);
    ip(&[
        "-n", name, "link", "add", "d0", "type", "veth", "peer", "name", "d1",
    ])
    .unwrap();
    ip(&["-n", name, "addr", "add", "10.231.9.2/24", "dev", "d0"]).unwrap();
    ip(&["-n", name, "link", "set", "d0", "up"]).unwrap();
    let h = RouteHandle::in_netns(&ns.path(0)).unwrap();
    let svc: std::net::IpAddr = SERVICE.parse().unwrap();
    h.replace_blackhole(svc, 32).unwrap();
    h.delete_blackhole(svc, 32).unwrap();
    let show = || ip(&["-n", name, "route", "show", "10.99.0.1/32"]).unwrap();
    assert_eq!(show().trim(), "");
    // A path switch replaced it: left alone.
    h.replace_via(svc, 32, "10.231.9.1".parse().unwrap(), None)
        .unwrap();
    let e = h.delete_blackhole(svc, 32).unwrap_err();
    assert!(is_not_found(&e), "{e}");
    assert!(show().contains("via 10.231.9.1"), "{}", show());
}

/// One run with the destination killed: eNBC 2's mih-user kills itself at
/// `kill_at`, after the successful CTDR (eNBC 1 commits on it), and is
/// restarted a second later; its journal entry (`phase`) brings the
/// imported session back and the restarted daemon commits it: the
/// download completes from eNBC 2, byte-exact, without a reset.
fn run_destination(tag: &str, kill_at: &str, phase: Phase) {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(mut bed) = Bed::new(tag) else {
        return;
    };
    bed.mihfd(1);
    bed.mihfd(2);
    bed.user(1, None);
    bed.user(2, Some(kill_at));
    bed.service(1);
    bed.service(2);

    let dl = download(&bed);
    wait_for(
        "the UE registered at eNBC 1",
        Duration::from_secs(10),
        || status(&bed.ctl(1)).filter(|s| s["users"] == 1),
    );
    wait_for("500 KB downloaded", Duration::from_secs(10), || {
        (dl.got.load(std::sync::atomic::Ordering::Relaxed) > 500_000).then_some(())
    });
    let answer = control(
        &bed.ctl(1),
        &json!({"op": "handover", "ue": UE_IP, "target": "enbc2", "timeout_ms": 10000}),
        Duration::from_secs(15),
    )
    .expect("eNBC 1 answers the handover");
    assert_eq!(answer["record"]["outcome"], "committed", "{answer}");
    let killed = wait_for("eNBC 2's mih-user to die", Duration::from_secs(10), || {
        bed.child("e2-mih-user").try_wait().unwrap()
    });
    assert_eq!(killed.signal(), Some(libc::SIGKILL), "{killed:?}");
    bed.procs.retain(|(n, _)| n != "e2-mih-user");

    // What it left: the imported session, durable.
    let e = bed.only_entry(2);
    assert_eq!(e.phase, phase, "{e:?}");
    assert_eq!(e.record.ue.to_string(), UE_IP);
    assert_eq!(e.record.peer, "enbc1");
    assert_eq!(e.record.sessions.len(), 1);
    assert!(e.record.attempt.is_some());

    std::thread::sleep(Duration::from_secs(1));
    bed.user(2, None);

    finished_at(&bed, dl, 2);
    wait_for("eNBC 2's journal to empty", Duration::from_secs(10), || {
        bed.entries(2).is_empty().then_some(())
    });
    assert!(bed.aside(2).is_empty(), "{:?}", bed.aside(2));
    let log = bed.log("e2-mih-user");
    for l in log
        .lines()
        .filter(|l| l.contains("recovery") || l.contains("journal"))
    {
        println!("{l}");
    }
    let said = if phase == Phase::Resuming {
        "incoming migration committed after a restart"
    } else {
        "imported sessions rebuilt"
    };
    assert!(log.contains(said), "eNBC 2's log:\n{log}");
    let s2 = status(&bed.ctl(2)).unwrap();
    if phase == Phase::Imported {
        assert!(
            s2["recent"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["role"] == "destination" && r["outcome"] == "committed"),
            "{s2}"
        );
    }
}

#[test]
fn destination_killed_after_its_ctdr_commits_the_journalled_import_after_restart() {
    run_destination("d", "dest_commit", Phase::Imported);
}

#[test]
fn destination_killed_in_its_commit_finishes_it_after_restart() {
    run_destination("r", "resuming", Phase::Resuming);
}
