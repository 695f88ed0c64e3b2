//! mih-user's HTTP endpoint (daemon-kit: axum on hyper 1) with a real HTTP
//! client: `/metrics` (valid OpenMetrics text, the names mih-user/README.md
//! documents), `/status`, 404 for other paths, a malformed request
//! refused. An in-process daemon without mihfd. (Idle connections:
//! `daemon_limits.rs`.)

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use daemon_kit::http::{axum::http::StatusCode, get};
use daemon_kit::metrics::{CONTENT_TYPE, TIME_BUCKETS};
use mih_user::daemon::config::{Config, SessionMode};
use mih_user::daemon::{Backends, MihUser};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn config(dir: &Path) -> Config {
    Config::parse(&format!(
        r#"
[mihf]
sap = "127.0.0.1:9"

[api]
socket = "{api}"

[cxtp]
listen = "127.0.0.1:0"

[[peers]]
mihf_id = "enbc-b"
cxtp = "127.0.0.2:5091"

[control]
socket = "{ctl}"

[metrics]
listen = "127.0.0.1:0"
"#,
        api = dir.join("api.sock").display(),
        ctl = dir.join("ctl.sock").display(),
    ))
    .unwrap()
}

/// Families shown from the start (counters by sample name), with their
/// `# TYPE`.
const SHOWN: &[(&str, &str)] = &[
    ("mih_user_migrations_started_total", "counter"),
    ("mih_user_handovers_in_progress", "gauge"),
    ("mih_user_handovers_queued_total", "counter"),
    ("mih_user_handovers_queued", "gauge"),
    ("mih_user_handover_retries_total", "counter"),
    ("mih_user_handover_requests_total", "counter"),
    ("mih_user_handover_queue_full_total", "counter"),
    ("mih_user_stale_inputs_total", "counter"),
    ("mih_user_cxtp_messages_total", "counter"),
    ("mih_user_complete_total", "counter"),
    ("mih_user_commit_repeated_total", "counter"),
    ("mih_user_cxtp_connections_open", "gauge"),
    ("mih_user_cxtp_connections_accepted_total", "counter"),
    ("mih_user_cxtp_connections_refused_total", "counter"),
    ("mih_user_cxtp_connections_closed_total", "counter"),
    ("mih_user_sap_frames_total", "counter"),
    ("mih_user_sap_registered", "gauge"),
    ("mih_user_api_connections_evicted_total", "counter"),
    ("mih_user_api_registration_timeouts_total", "counter"),
    ("mih_user_local_connections_open", "gauge"),
    ("mih_user_local_connections_accepted_total", "counter"),
    ("mih_user_local_connections_refused_total", "counter"),
    ("mih_user_local_connections_closed_total", "counter"),
    ("mih_user_accept_errors_total", "counter"),
    ("mih_user_uptime_seconds", "gauge"),
];

#[tokio::test]
async fn metrics_status_404_and_malformed() {
    let dir = tempfile::tempdir().unwrap();
    let d = MihUser::start(&config(dir.path()), Backends::from_mode(SessionMode::None))
        .await
        .unwrap();
    let at: SocketAddr = d.addrs.metrics.unwrap();

    let m = get(at, "/metrics").await.unwrap();
    assert_eq!(m.status, StatusCode::OK);
    assert_eq!(m.content_type.as_deref(), Some(CONTENT_TYPE));
    assert!(m.body.ends_with("# EOF\n"), "{}", m.body);
    let lines: Vec<&str> = m.body.lines().collect();
    for (name, ty) in SHOWN {
        let family = name.strip_suffix("_total").unwrap_or(name);
        let t = format!("# TYPE {family} {ty}");
        assert!(lines.contains(&t.as_str()), "{t} missing in\n{}", m.body);
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("{name} ")) || l.starts_with(&format!("{name}{{"))),
            "no {name} sample"
        );
    }
    for l in [
        "mih_user_accept_errors_total{listener=\"metrics\"} 0",
        "mih_user_local_connections_closed_total{listener=\"metrics\",reason=\"evicted_idle\"} 0",
        "mih_user_handover_requests_total{fate=\"done\"} 0",
    ] {
        assert!(lines.contains(&l), "{l} missing");
    }
    let scrape = prometheus_parse::Scrape::parse(m.body.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let names: Vec<&str> = scrape.samples.iter().map(|s| s.metric.as_str()).collect();
    for (n, _) in SHOWN {
        assert!(names.contains(n), "{n} not parsed");
    }
    // The phase histograms have mihfd's buckets.
    assert_eq!(TIME_BUCKETS.len(), 18);

    let s = get(at, "/status").await.unwrap();
    assert_eq!(s.status, StatusCode::OK);
    assert_eq!(s.content_type.as_deref(), Some("application/json"));
    let v: serde_json::Value = serde_json::from_str(&s.body).unwrap();
    assert_eq!(v["ok"], true);

    let n = get(at, "/peers").await.unwrap();
    assert_eq!(n.status, StatusCode::NOT_FOUND);
    assert_eq!(n.body, "try /metrics or /status\n");

    let mut c = TcpStream::connect(at).await.unwrap();
    c.write_all(b"\x16\x03\x01\x02\x00 not http\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), c.read_to_end(&mut out))
        .await
        .expect("answered")
        .unwrap();
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{out}");
    d.shutdown().await;
}
