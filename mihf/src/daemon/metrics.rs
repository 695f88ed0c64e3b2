//! The node's counters as OpenMetrics text ([`daemon_kit::metrics`]),
//! served with the peer table over HTTP ([`daemon_kit::http`]):
//! `GET /metrics` and `GET /peers` (JSON). The endpoint is bounded as
//! [`daemon_kit::listener`] says: at most [`MAX_CONNECTIONS`] connections
//! (a new one closes the oldest idle one), a request within
//! [`REQUEST_TIMEOUT`].

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use daemon_kit::http::axum::http::StatusCode;
use daemon_kit::http::axum::routing::get;
use daemon_kit::http::axum::Router;
use daemon_kit::http::text;
use daemon_kit::listener::{LocalLimits, LocalStats};
use daemon_kit::metrics::{labels, Exposition, Histogram, CONTENT_TYPE, TIME_BUCKETS};
use tokio::net::TcpListener;

use super::Shared;
use crate::proto::node::Direction;
use crate::wire::{message::primitive_name, Mid};

/// The transaction latency histogram, over [`TIME_BUCKETS`].
pub fn latency_histogram() -> Histogram {
    Histogram::new(TIME_BUCKETS)
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
    let mut x = Exposition::new();
    let mut counter = |name: &str, help: &str, v: u64| {
        x.counter(&format!("mihf_{name}"), help, v);
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
        "tid_exhausted_total",
        "Requests and indications to a peer refused because every TID towards it was in use or in quarantine (back-pressure).",
        e.tid_exhausted,
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

    x.counters(
        "mihf_messages_total",
        "MIH frames per direction and message.",
        stats.messages.iter().map(|((dir, mid, ack), v)| {
            let m = message_label(*mid, *ack);
            (
                labels(&[("direction", dir_label(*dir)), ("message", &m)]),
                *v,
            )
        }),
    );
    let mut gauge = |name: &str, help: &str, v: usize| {
        x.gauge(&format!("mihf_{name}"), help, v as i64);
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

    x.metric(
        "mihf_transaction_latency_seconds",
        "Request to response, remote transactions.",
        hist,
    );
    x.encode()
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

/// Most connections to the endpoint at once.
pub const MAX_CONNECTIONS: usize = 16;
/// Time for a request to arrive, and for its answer to be taken.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The endpoint's routes.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let m = shared.clone();
    Router::new()
        .route(
            "/metrics",
            get(move || async move { text(StatusCode::OK, CONTENT_TYPE, render(&m)) }),
        )
        .route(
            "/peers",
            get(move || async move {
                text(StatusCode::OK, "application/json", peers_json(&shared))
            }),
        )
        .fallback(|| async {
            text(
                StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                "try /metrics or /peers\n".into(),
            )
        })
}

pub(crate) async fn serve(shared: Arc<Shared>, l: TcpListener, stats: Arc<LocalStats>) {
    let limits = LocalLimits {
        max_connections: MAX_CONNECTIONS,
        request_timeout: REQUEST_TIMEOUT,
    };
    daemon_kit::http::serve("metrics", l, limits, stats, router(shared)).await
}
