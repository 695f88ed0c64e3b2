//! Prometheus text exposition (format 0.0.4) of the node's counters, written
//! by hand, served over a minimal HTTP/1.0 endpoint: `GET /metrics` and
//! `GET /peers` (JSON). Each connection is bounded in size and time.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::debug;

use super::Shared;
use crate::proto::node::Direction;
use crate::wire::{message::primitive_name, Mid};

/// Upper bounds (seconds) of the transaction latency histogram.
pub const BUCKETS: [f64; 18] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 15.0,
];

/// A fixed-bucket histogram.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    counts: [u64; BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

impl Histogram {
    pub fn observe(&mut self, d: Duration) {
        let s = d.as_secs_f64();
        let i = BUCKETS
            .iter()
            .position(|&b| s <= b)
            .unwrap_or(BUCKETS.len());
        self.counts[i] += 1;
        self.sum += s;
        self.count += 1;
    }
}

fn message_label(mid: u16, ack: bool) -> String {
    let m = Mid(mid);
    let base = match primitive_name(m) {
        Some(n) => format!("{n}.{}", m.opcode().suffix()),
        None if mid == 0x1c07 => "User_Register.indication".into(),
        None if mid == 0x1007 => "User_Register.confirm".into(),
        None if mid == 0x1c08 => "User_Deregister.indication".into(),
        None if mid == 0xffff => "other".into(),
        None => format!("MID {mid:#06x}"),
    };
    if ack {
        format!("{base} (ACK)")
    } else {
        base
    }
}

/// Render every metric.
pub(crate) fn render(shared: &Shared) -> String {
    let (stats, tables, hist) = {
        let st = shared.lock();
        (st.node.stats(), st.node.table_sizes(), st.latency.clone())
    };
    let e = &stats.engine;
    let mut o = String::with_capacity(8192);
    let mut counter = |name: &str, help: &str, v: u64| {
        let _ = writeln!(
            o,
            "# HELP mihf_{name} {help}\n# TYPE mihf_{name} counter\nmihf_{name} {v}"
        );
    };
    counter(
        "frames_received_total",
        "Frames received from peer MIHFs.",
        e.frames_in,
    );
    counter(
        "frames_sent_total",
        "Frames sent to peer MIHFs.",
        e.frames_out,
    );
    counter(
        "decode_errors_total",
        "Peer frames that did not decode.",
        e.decode_errors,
    );
    counter(
        "fragments_received_total",
        "Fragments received.",
        e.fragments_in,
    );
    counter("fragments_sent_total", "Fragments sent.", e.fragments_out);
    counter(
        "reassembled_total",
        "Messages reassembled from fragments.",
        e.reassembled,
    );
    counter(
        "reassembly_errors_total",
        "Fragments refused (limits, conflicts).",
        e.reassembly_errors,
    );
    counter(
        "reassembly_timeouts_total",
        "Partial messages dropped at their deadline.",
        e.reassembly_timeouts,
    );
    counter(
        "retransmissions_total",
        "Frames retransmitted by the ACK requestor.",
        e.retransmissions,
    );
    counter(
        "duplicates_dropped_total",
        "Duplicate frames dropped (stored ACK/response re-sent).",
        e.duplicates,
    );
    counter("acks_sent_total", "Pure ACK frames sent.", e.acks_sent);
    counter(
        "acks_received_total",
        "ACKs received (pure or piggy-backed).",
        e.acks_received,
    );
    counter(
        "piggybacked_acks_total",
        "ACKs piggy-backed on responses.",
        e.piggybacked_acks,
    );
    counter(
        "unmatched_total",
        "Responses or ACKs matching no transaction.",
        e.unmatched,
    );
    counter(
        "wrong_destination_total",
        "Frames for another MIHF ID.",
        e.wrong_destination,
    );
    counter(
        "bad_opcode_total",
        "Confirm frames received from peers.",
        e.bad_opcode,
    );
    counter(
        "table_full_total",
        "Frames dropped because a transaction table was full.",
        e.table_full,
    );
    counter(
        "peer_transactions_full_total",
        "Requests dropped because their peer had limits.max_transactions_per_peer open.",
        e.peer_table_full,
    );
    counter(
        "transactions_failed_no_ack_total",
        "Transactions failed without ACK.",
        e.failed_no_ack,
    );
    counter(
        "transactions_failed_timeout_total",
        "Transactions failed without response.",
        e.failed_timeout,
    );
    counter(
        "requests_expired_total",
        "Peer requests never answered by a user.",
        e.expired_unanswered,
    );
    counter(
        "queue_overflow_total",
        "Outputs dropped because a queue was full.",
        e.queue_overflow,
    );
    counter(
        "unknown_peer_dropped_total",
        "Frames from MIHF IDs not in the peer table.",
        stats.unknown_peer,
    );
    counter(
        "address_mismatch_dropped_total",
        "Frames from an address that is not the peer's.",
        stats.address_mismatch,
    );
    counter(
        "unknown_source_dropped_total",
        "Frames refused before decoding: from an address of no peer.",
        stats.unknown_source,
    );
    counter(
        "peers_learned_total",
        "Unknown MIHFs added to the learned peer table.",
        stats.peers_learned,
    );
    counter(
        "learned_peers_evicted_total",
        "Learned peers removed to make room (least recently heard first).",
        stats.learned_evicted,
    );
    counter(
        "learn_rate_limited_total",
        "Unknown MIHFs not learned because of security.learn_rate.",
        stats.learn_rate_limited,
    );
    counter(
        "learn_outside_range_total",
        "Unknown MIHFs not learned because of security.learn_from.",
        stats.learn_outside_range,
    );
    counter(
        "users_refused_total",
        "User registrations refused at limits.max_users.",
        stats.users_refused,
    );
    counter(
        "users_replaced_total",
        "Registrations at limits.max_users that took over the entry of their user ID.",
        stats.users_replaced,
    );
    counter(
        "subscriptions_refused_total",
        "Event subscriptions refused (table or per-subscriber cap, unregistered sender).",
        stats.subscriptions_refused,
    );
    counter(
        "events_dropped_total",
        "Node events dropped on a full queue.",
        stats.events_dropped,
    );
    counter(
        "sap_errors_total",
        "SAP frames that did not decode.",
        stats.sap_errors,
    );
    counter(
        "unsupported_total",
        "Requests or indications not supported.",
        stats.unsupported,
    );
    counter(
        "no_handler_total",
        "Commands no user handles.",
        stats.no_handler,
    );
    counter(
        "no_route_total",
        "Requests for unknown destinations.",
        stats.no_route,
    );
    counter(
        "user_timeouts_total",
        "Indications a user did not answer in time.",
        stats.user_timeouts,
    );
    counter(
        "pending_full_total",
        "Requests refused because the pending table was full.",
        stats.pending_full,
    );
    let io = &shared.io;
    counter(
        "udp_send_errors_total",
        "UDP sends that failed.",
        io.udp_send_errors.load(Ordering::Relaxed),
    );
    counter(
        "sap_send_errors_total",
        "SAP sends that failed.",
        io.sap_send_errors.load(Ordering::Relaxed),
    );
    counter(
        "tcp_queue_drops_total",
        "Frames dropped on a full TCP queue.",
        io.tcp_queue_drops.load(Ordering::Relaxed),
    );
    counter(
        "tcp_connect_errors_total",
        "Outgoing TCP connections that failed.",
        io.tcp_connect_errors.load(Ordering::Relaxed),
    );
    counter(
        "tcp_rejected_total",
        "TCP connections refused at the cap.",
        io.tcp_rejected.load(Ordering::Relaxed),
    );
    counter(
        "tcp_refused_unknown_total",
        "Incoming TCP connections refused unread: from an address of no peer.",
        io.tcp_refused_unknown.load(Ordering::Relaxed),
    );
    counter(
        "tcp_refused_per_ip_total",
        "Incoming TCP connections refused at limits.max_tcp_connections_per_ip.",
        io.tcp_refused_per_ip.load(Ordering::Relaxed),
    );
    counter(
        "tcp_closed_unknown_total",
        "TCP connections closed after a frame from an unknown MIHF.",
        io.tcp_closed_unknown.load(Ordering::Relaxed),
    );
    counter(
        "frames_dropped_total",
        "Input frames dropped for any reason.",
        io.dropped_frames.load(Ordering::Relaxed),
    );

    let _ = writeln!(
        o,
        "# HELP mihf_messages_total MIH frames per direction and message."
    );
    let _ = writeln!(o, "# TYPE mihf_messages_total counter");
    for ((dir, mid, ack), v) in &stats.messages {
        let _ = writeln!(
            o,
            "mihf_messages_total{{direction=\"{}\",message=\"{}\"}} {v}",
            dir_label(*dir),
            message_label(*mid, *ack)
        );
    }
    let mut gauge = |name: &str, help: &str, v: usize| {
        let _ = writeln!(
            o,
            "# HELP mihf_{name} {help}\n# TYPE mihf_{name} gauge\nmihf_{name} {v}"
        );
    };
    gauge("users", "Registered MIH-Users.", tables.users);
    gauge(
        "peers",
        "Entries in the peer table (configured and learned).",
        tables.peers,
    );
    gauge(
        "learned_peers",
        "Learned peers (at most limits.max_learned_peers).",
        tables.learned_peers,
    );
    gauge(
        "subscriptions",
        "Event subscriptions.",
        tables.subscriptions,
    );
    gauge(
        "pending",
        "Requests waiting for a confirm or a user's response.",
        tables.pending,
    );
    gauge(
        "source_transactions",
        "Open source transactions.",
        tables.source_transactions,
    );
    gauge(
        "destination_transactions",
        "Open destination transactions.",
        tables.destination_transactions,
    );
    gauge(
        "reassembly_messages",
        "Messages being reassembled.",
        tables.reassembly_messages,
    );
    gauge(
        "reassembly_bytes",
        "Octets held for reassembly.",
        tables.reassembly_bytes,
    );
    gauge(
        "uptime_seconds",
        "Seconds since start.",
        super::uptime(shared).as_secs() as usize,
    );

    let _ = writeln!(
        o,
        "# HELP mihf_transaction_latency_seconds Request to response, remote transactions."
    );
    let _ = writeln!(o, "# TYPE mihf_transaction_latency_seconds histogram");
    let mut cum = 0;
    for (i, b) in BUCKETS.iter().enumerate() {
        cum += hist.counts[i];
        let _ = writeln!(
            o,
            "mihf_transaction_latency_seconds_bucket{{le=\"{b}\"}} {cum}"
        );
    }
    cum += hist.counts[BUCKETS.len()];
    let _ = writeln!(
        o,
        "mihf_transaction_latency_seconds_bucket{{le=\"+Inf\"}} {cum}"
    );
    let _ = writeln!(o, "mihf_transaction_latency_seconds_sum {}", hist.sum);
    let _ = writeln!(o, "mihf_transaction_latency_seconds_count {}", hist.count);
    o
}

fn dir_label(d: Direction) -> &'static str {
    d.label()
}

/// The peer table as JSON.
pub(crate) fn peers_json(shared: &Shared) -> String {
    let st = shared.lock();
    let mut peers: Vec<_> = st.node.peers().collect();
    peers.sort_by(|a, b| a.id.cmp(&b.id));
    let list: Vec<serde_json::Value> = peers
        .iter()
        .map(|p| {
            let caps = p.capabilities.as_ref().map(|c| {
                serde_json::json!({
                    "events": c.events.map(|e| format!("{:#010x}", e.0)),
                    "commands": c.commands.map(|e| format!("{:#010x}", e.0)),
                    "queries": c.queries.map(|e| format!("{:#018x}", e.0)),
                    "transports": c.transports.map(|e| format!("{:#06x}", e.0)),
                })
            });
            serde_json::json!({
                "id": p.id.to_string(),
                "udp": p.udp.map(|a| a.to_string()),
                "tcp": p.tcp.map(|a| a.to_string()),
                "transport": if p.prefer_tcp { "tcp" } else { "udp" },
                "configured": p.configured,
                "last_from": p.last_from.map(|e| e.to_string()),
                "registered": p.registered_until.is_some(),
                "capabilities": caps,
            })
        })
        .collect();
    let users: Vec<serde_json::Value> = st
        .node
        .users()
        .map(|u| {
            serde_json::json!({
                "id": u.id.to_string(),
                "addr": u.addr.to_string(),
                "commands": format!("{:#010x}", u.commands.0),
                "events": format!("{:#010x}", u.events.0),
            })
        })
        .collect();
    serde_json::json!({ "mihf_id": st.node.own_id().to_string(), "peers": list, "users": users })
        .to_string()
}

pub(crate) async fn serve(shared: Arc<Shared>, l: TcpListener) {
    let limit = Arc::new(Semaphore::new(16));
    loop {
        let Ok((s, from)) = l.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let r = tokio::time::timeout(Duration::from_secs(5), http(shared, s)).await;
            debug!(%from, ok = r.is_ok(), "metrics request");
            drop(permit);
        });
    }
}

async fn http(shared: Arc<Shared>, mut s: TcpStream) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && !buf.windows(2).any(|w| w == b"\n\n") {
        let n = s.read(&mut chunk).await?;
        if n == 0 || buf.len() > 8192 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = String::from_utf8_lossy(&buf);
    let path = line.split_whitespace().nth(1).unwrap_or("/");
    let (status, ctype, body) = match path {
        "/metrics" => ("200 OK", "text/plain; version=0.0.4", render(&shared)),
        "/peers" => ("200 OK", "application/json", peers_json(&shared)),
        _ => (
            "404 Not Found",
            "text/plain",
            "try /metrics or /peers\n".to_string(),
        ),
    };
    let head = format!(
        "HTTP/1.0 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(body.as_bytes()).await?;
    s.shutdown().await
}

/// Fetch `path` from a metrics endpoint (used by mihctl and tests).
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: mihfd\r\n\r\n").as_bytes())
        .await?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    let text = String::from_utf8_lossy(&out).into_owned();
    match text.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.0 200") => Ok(body.to_string()),
        Some((head, _)) => Err(std::io::Error::other(
            head.lines().next().unwrap_or("").to_string(),
        )),
        None => Err(std::io::Error::other("malformed HTTP response")),
    }
}
