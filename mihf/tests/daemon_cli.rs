//! The binaries: mihfd started from a config file and stopped by SIGTERM;
//! mihctl as both MIH-Users of an N2N_HO_Commit, and its peers/counters
//! commands.
#![cfg(feature = "daemon")]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use mihf::daemon::config::Config;
use mihf::daemon::Daemon;
use mihf::proto::node::PeerConfig;
use mihf::wire::MihfId;

fn cfg(id: &str) -> Config {
    let mut c = Config::with_id(id);
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    c.listen.udp = vec![any];
    c.listen.tcp = vec![any];
    c.sap.listen = any;
    c.metrics.listen = Some(any);
    c.timers.discovery_interval_ms = 0;
    c
}

#[test]
fn mihfd_starts_from_a_file_and_stops_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("mihfd-sig-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("a.toml");
    std::fs::write(
        &path,
        "mihf_id = \"mihf1\"\n[listen]\nudp = [\"127.0.0.1:0\", \"[::1]:0\"]\ntcp = [\"127.0.0.1:0\"]\n[sap]\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mihfd"))
        .args(["--log-json", "-c"])
        .arg(&path)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let started = lines.next().unwrap().unwrap();
    assert!(started.contains("mihfd started"), "{started}");
    assert!(started.starts_with('{'), "JSON log line: {started}");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?} {rest:?}");
    assert!(rest.iter().any(|l| l.contains("SIGTERM")), "{rest:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn mihctl_drives_an_n2n_ho_commit_and_reads_the_tables() {
    let a = Daemon::start(&cfg("mihf1")).await.unwrap();
    let b = Daemon::start(&cfg("mihf2")).await.unwrap();
    let peer = |id: &'static str, d: &Daemon| PeerConfig {
        id: MihfId::from_static(id),
        udp: Some(d.udp_addrs[0]),
        tcp: None,
        prefer_tcp: false,
    };
    a.add_peer(peer("mihf2", &b)).unwrap();
    b.add_peer(peer("mihf1", &a)).unwrap();
    let ctl = env!("CARGO_BIN_EXE_mihctl");
    for (status, code) in [("success", 0), ("rejected", 3)] {
        let mut answer = tokio::process::Command::new(ctl)
            .kill_on_drop(true)
            .args([
                "--sap",
                &b.sap_addr.to_string(),
                "--user-id",
                "target-enb",
                "answer",
                "--count",
                "1",
                "--status",
                status,
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // Wait until the answering user is registered.
        for _ in 0..100 {
            if b.stats().users > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let out = tokio::process::Command::new(ctl)
            .args([
                "--sap",
                &a.sap_addr.to_string(),
                "--timeout-ms",
                "5000",
                "n2n-commit",
                "--peer",
                "mihf2",
                "--mn-id",
                "mn-01",
            ])
            .args([
                "--mn-mac",
                "02:00:00:00:00:01",
                "--poa-mac",
                "02:00:00:00:00:02",
            ])
            .output()
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.starts_with("MIH_N2N_HO_Commit.confirm from mihf2"),
            "{text}"
        );
        let want = if code == 0 {
            "Status=Success (0)"
        } else {
            "Status=Rejected (2)"
        };
        assert!(text.contains(want), "{text}");
        let ans = tokio::time::timeout(Duration::from_secs(5), answer.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(ans.success());
        // It deregistered on its way out.
        for _ in 0..100 {
            if b.stats().users == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(b.stats().users, 0);
    }
    let admin = a.metrics_addr.unwrap().to_string();
    // tokio::process: a blocking wait would stall the in-process daemons.
    let peers = tokio::process::Command::new(ctl)
        .args(["--admin", &admin, "peers"])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&peers.stdout);
    assert!(
        peers.status.success() && text.contains("\"id\": \"mihf2\""),
        "{text}"
    );
    let counters = tokio::process::Command::new(ctl)
        .args(["--admin", &admin, "counters"])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&counters.stdout);
    assert!(
        text.contains(
            "mihf_messages_total{direction=\"sap_out\",message=\"MIH_N2N_HO_Commit.confirm\"} 2"
        ),
        "{text}"
    );
    // Unknown destination: a failure confirm, exit status 3.
    let out = tokio::process::Command::new(ctl)
        .args([
            "--sap",
            &a.sap_addr.to_string(),
            "discover",
            "--peer",
            "nobody",
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Network Error"));
    a.shutdown().await;
    b.shutdown().await;
}
