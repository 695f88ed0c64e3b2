//! mihfd's HTTP endpoint (daemon-kit: axum on hyper 1) with a real HTTP
//! client: `/metrics` (valid OpenMetrics text, the names mihf/README.md
//! documents), `/peers`, 404 for other paths, malformed requests refused,
//! and idle connections that do not lock the scraper out.

use std::net::SocketAddr;
use std::time::Duration;

use daemon_kit::http::{axum::http::StatusCode, get};
use daemon_kit::metrics::{CONTENT_TYPE, TIME_BUCKETS};
use mihf::daemon::config::Config;
use mihf::daemon::Daemon;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn start() -> Daemon {
    let mut c = Config::with_id("mihf-http");
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    c.listen.udp = vec![any];
    c.listen.tcp = vec![any];
    c.sap.listen = any;
    c.metrics.listen = Some(any);
    c.timers.discovery_interval_ms = 0;
    Daemon::start(&c).await.unwrap()
}

/// Counters (sample names) and gauges mihf/README.md names.
const COUNTERS: &[&str] = &[
    "mihf_decode_errors_total",
    "mihf_retransmissions_total",
    "mihf_duplicates_dropped_total",
    "mihf_acks_sent_total",
    "mihf_piggybacked_acks_total",
    "mihf_unknown_peer_dropped_total",
    "mihf_address_mismatch_dropped_total",
    "mihf_reassembly_errors_total",
    "mihf_transactions_failed_no_ack_total",
    "mihf_transactions_failed_timeout_total",
    "mihf_unknown_source_dropped_total",
    "mihf_peers_learned_total",
    "mihf_learned_peers_evicted_total",
    "mihf_learn_rate_limited_total",
    "mihf_learn_outside_range_total",
    "mihf_users_refused_total",
    "mihf_users_replaced_total",
    "mihf_subscriptions_refused_total",
    "mihf_peer_transactions_full_total",
    "mihf_tid_exhausted_total",
    "mihf_tcp_refused_unknown_total",
    "mihf_tcp_refused_per_ip_total",
    "mihf_tcp_closed_unknown_total",
    "mihf_events_dropped_total",
];
const GAUGES: &[&str] = &["mihf_users", "mihf_learned_peers", "mihf_peers"];

/// Write `request` raw and read the whole answer.
async fn raw(at: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(at).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("answered")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn metrics_are_valid_openmetrics_with_the_documented_names() {
    let d = start().await;
    let a = get(d.metrics_addr.unwrap(), "/metrics").await.unwrap();
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.content_type.as_deref(), Some(CONTENT_TYPE));
    assert!(a.body.ends_with("# EOF\n"), "{}", a.body);
    let lines: Vec<&str> = a.body.lines().collect();
    for c in COUNTERS {
        let family = c.strip_suffix("_total").unwrap();
        assert!(
            lines.contains(&format!("# TYPE {family} counter").as_str()),
            "{c}"
        );
        assert!(lines.contains(&format!("{c} 0").as_str()), "{c}");
    }
    for g in GAUGES {
        assert!(lines.contains(&format!("# TYPE {g} gauge").as_str()), "{g}");
        assert!(lines.contains(&format!("{g} 0").as_str()), "{g}");
    }
    let h = "mihf_transaction_latency_seconds";
    assert!(lines.contains(&format!("# TYPE {h} histogram").as_str()));
    let buckets = lines
        .iter()
        .filter(|l| l.starts_with(&format!("{h}_bucket{{le=")))
        .count();
    assert_eq!(buckets, TIME_BUCKETS.len() + 1, "18 bounds and +Inf");
    assert!(lines.contains(&format!("{h}_count 0").as_str()));

    let scrape = prometheus_parse::Scrape::parse(a.body.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let names: Vec<&str> = scrape.samples.iter().map(|s| s.metric.as_str()).collect();
    for n in COUNTERS.iter().chain(GAUGES).chain([&h]) {
        assert!(names.contains(n), "{n} not parsed: {names:?}");
    }
    d.shutdown().await;
}

#[tokio::test]
async fn peers_unknown_paths_and_malformed_requests() {
    let d = start().await;
    let at = d.metrics_addr.unwrap();
    let p = get(at, "/peers").await.unwrap();
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(p.content_type.as_deref(), Some("application/json"));
    let v: serde_json::Value = serde_json::from_str(&p.body).unwrap();
    assert_eq!(v["mihf_id"], "mihf-http");

    let n = get(at, "/nope").await.unwrap();
    assert_eq!(n.status, StatusCode::NOT_FOUND);
    assert_eq!(n.body, "try /metrics or /peers\n");

    let bad = raw(at, b"NOT AN HTTP REQUEST\r\n\r\n").await;
    assert!(bad.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{bad}");
    // An HTTP/1.0 request with bare LF line ends, as before.
    let lf = raw(at, b"GET /metrics HTTP/1.0\n\n").await;
    assert!(lf.starts_with("HTTP/1.0 200 OK\r\n"), "{lf}");
    assert!(lf.ends_with("# EOF\n"), "{lf}");
    d.shutdown().await;
}

#[tokio::test]
async fn idle_connections_do_not_lock_the_scraper_out() {
    let d = start().await;
    let at = d.metrics_addr.unwrap();
    let mut idle = vec![];
    for i in 0..32 {
        let mut s = TcpStream::connect(at).await.unwrap();
        if i % 4 == 0 {
            s.write_all(b"GET /metr").await.unwrap();
        }
        idle.push(s);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Answered at once (well before the 5 s request timeout), by closing
    // the oldest idle connection.
    let a = tokio::time::timeout(Duration::from_secs(2), get(at, "/metrics"))
        .await
        .expect("answered at once")
        .unwrap();
    assert_eq!(a.status, StatusCode::OK);
    d.shutdown().await;
}
