//! The example HTTP service across two nodes on loopback: a client
//! downloads part of a file from instance A, the orchestrator (this test,
//! through two `ApiServer`s) exports the UE's context from A and imports it
//! into instance B, and the download continues on B from the offset, byte
//! for byte. Both service processes are killed when the test ends.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mih_user::api::server::{ApiConfig, ApiServer};
use mih_user::api::{ImportStatus, Outcome};

const FILE_SIZE: u64 = 300_000;
const SEED: u64 = 77;

fn expected(name: &str, offset: u64, len: usize) -> Vec<u8> {
    common::expected(SEED, name, offset, len)
}

/// A running example service; killed on drop.
struct Instance {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(api: &std::path::Path, rate: u64) -> Instance {
    let mut child = Command::new(env!("CARGO_BIN_EXE_example-http-service"))
        .args(["--listen", "127.0.0.1:0", "--api-socket"])
        .arg(api)
        .args(["--file-size", &FILE_SIZE.to_string()])
        .args(["--seed", &SEED.to_string()])
        .args(["--rate", &rate.to_string(), "--chunk", "4096"])
        .env("RUST_LOG", "warn")
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
    Instance { child, addr }
}

/// Send a GET and read the response head; the stream is left at the body.
fn get(addr: SocketAddr, path: &str, extra: &str) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: test\r\n{extra}\r\n").unwrap();
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

/// The offset of the first download in an HTD1 context (format in the
/// example's documentation).
fn context_offset(ctx: &[u8]) -> (String, u64) {
    assert_eq!(&ctx[..4], b"HTD1");
    assert_eq!(u16::from_be_bytes([ctx[20], ctx[21]]), 1, "one download");
    let mut p = 22;
    for _ in 0..2 {
        p += match ctx[p] {
            4 => 1 + 4 + 2,
            6 => 1 + 16 + 2,
            f => panic!("family {f}"),
        };
    }
    let offset = u64::from_be_bytes(ctx[p..p + 8].try_into().unwrap());
    let n = ctx[p + 16] as usize;
    let name = String::from_utf8(ctx[p + 17..p + 17 + n].to_vec()).unwrap();
    (name, offset)
}

async fn wait_until(what: &str, f: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < Duration::from_secs(10), "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn download_continues_on_the_other_node_byte_exact() {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            tokio::time::timeout(Duration::from_secs(60), scenario())
                .await
                .expect("test deadline")
        });
}

async fn scenario() {
    let dir = tempfile::tempdir().unwrap();
    let api_a = ApiServer::bind(ApiConfig::new(dir.path().join("a.sock")))
        .await
        .unwrap();
    let api_b = ApiServer::bind(ApiConfig::new(dir.path().join("b.sock")))
        .await
        .unwrap();
    // A is slow (so the download is mid-way when the UE moves), B is not.
    let a = spawn(api_a.socket_path(), 100_000);
    let b = spawn(api_b.socket_path(), 0);
    wait_until("both registered", || {
        api_a.has_service("http-download") && api_b.has_service("http-download")
    })
    .await;
    let (a_addr, b_addr) = (a.addr, b.addr);

    // The UE starts downloading from A.
    let ue: IpAddr = "127.0.0.1".parse().unwrap();
    let (mut from_a, head) =
        tokio::task::spawn_blocking(move || get(a_addr, "/file/movie.bin", ""))
            .await
            .unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(header(&head, "content-length"), Some("300000"));
    let mut received = vec![0u8; 20_000];
    from_a.read_exact(&mut received).unwrap();
    wait_until("UE registered at A", || api_a.user_count() == 1).await;
    let conns = api_a.user_connections(ue);
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].1[0].client, from_a.local_addr().unwrap());
    assert_eq!(conns[0].1[0].server, a_addr);

    // Handover: export from A.
    let contexts = api_a.request_export(ue).await.unwrap();
    assert_eq!(contexts.len(), 1);
    assert_eq!(contexts[0].service_id, "http-download");
    assert_eq!(contexts[0].fpt, cxtp::profile::fpt::APP_SERVICE);
    let (name, offset) = context_offset(&contexts[0].data);
    assert_eq!(name, "movie.bin");
    assert!(
        (20_000..FILE_SIZE).contains(&offset),
        "offset {offset} mid-file"
    );

    // A is frozen: exactly `offset` octets reach the client, then nothing.
    let mut rest = vec![0u8; offset as usize - received.len()];
    from_a.read_exact(&mut rest).unwrap();
    received.extend_from_slice(&rest);
    from_a
        .set_read_timeout(Some(Duration::from_millis(400)))
        .unwrap();
    let mut one = [0u8; 1];
    assert!(
        from_a.read(&mut one).is_err(),
        "A wrote past the exported offset"
    );

    // The context crosses in its CXTP form and is imported at B.
    let carried = contexts
        .iter()
        .map(|c| mih_user::api::ServiceContext::from_cxtp(&c.to_cxtp()).unwrap())
        .collect();
    let reports = api_b.deliver_import(ue, carried).await.unwrap();
    assert_eq!(reports[0].status, ImportStatus::Accepted, "{reports:?}");
    assert_eq!(api_b.user_count(), 1);
    assert_eq!(api_a.notify_outcome(ue, Outcome::Committed, "test"), Ok(1));
    assert_eq!(api_b.notify_outcome(ue, Outcome::Committed, "test"), Ok(1));
    assert_eq!(api_a.user_count(), 0);

    // The UE asks B for the same file: B continues from the offset.
    let (mut from_b, head) =
        tokio::task::spawn_blocking(move || get(b_addr, "/file/movie.bin", ""))
            .await
            .unwrap();
    assert!(head.starts_with("HTTP/1.1 206"), "{head}");
    let resumed = offset.to_string();
    assert_eq!(header(&head, "x-resumed-from"), Some(resumed.as_str()));
    assert_eq!(
        header(&head, "content-range").map(str::to_string),
        Some(format!("bytes {offset}-{}/{FILE_SIZE}", FILE_SIZE - 1))
    );
    let mut tail = Vec::new();
    from_b.read_to_end(&mut tail).unwrap();
    received.extend_from_slice(&tail);
    assert_eq!(received.len() as u64, FILE_SIZE);
    assert!(
        received == expected("movie.bin", 0, FILE_SIZE as usize),
        "content differs"
    );

    // A Range request (the client's own view of its offset) works on B too.
    let (mut s, head) = tokio::task::spawn_blocking(move || {
        get(b_addr, "/file/movie.bin", "Range: bytes=299990-\r\n")
    })
    .await
    .unwrap();
    assert!(head.starts_with("HTTP/1.1 206"), "{head}");
    let mut last = Vec::new();
    s.read_to_end(&mut last).unwrap();
    assert_eq!(last, expected("movie.bin", 299_990, 10));

    drop(a);
    drop(b);
    api_a.shutdown().await;
    api_b.shutdown().await;
}

#[test]
fn help_lists_the_options() {
    let out = Command::new(env!("CARGO_BIN_EXE_example-http-service"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for opt in [
        "--listen",
        "--api-socket",
        "--service-id",
        "--fpt",
        "--file-size",
        "--seed",
        "--rate",
        "--chunk",
        "--max-connections",
    ] {
        assert!(text.contains(opt), "{opt} missing from --help");
    }
    let bad = Command::new(env!("CARGO_BIN_EXE_example-http-service"))
        .args(["--fpt", "0xZZ"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
}
