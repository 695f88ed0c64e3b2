//! The mihfd TOML configuration, validated at start: every error names the
//! key that is wrong.
//!
//! ```toml
//! mihf_id = "mihf1"
//!
//! [listen]                      # peer MIHFs (UDP and TCP, port 4551 by default)
//! udp = ["0.0.0.0:4551", "[::]:4551"]
//! tcp = ["0.0.0.0:4551", "[::]:4551"]
//!
//! [sap]                         # local MIH-Users (UDP on loopback)
//! listen = "127.0.0.1:1025"
//!
//! [metrics]                     # Prometheus text on GET /metrics, peers on /peers
//! listen = "127.0.0.1:9551"
//!
//! [[peers]]
//! id = "mihf2"
//! udp = "192.0.2.2:4551"
//! tcp = "192.0.2.2:4551"        # optional
//! transport = "udp"             # or "tcp"
//! ```
//!
//! `[timers]`, `[limits]` and `[security]` are optional; see
//! [`Timers`], [`Limits`] and [`Security`] for keys and defaults.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::proto::fragment::ReassemblyLimits;
use crate::proto::node::{NodeConfig, PeerConfig};
use crate::proto::peers::IpRange;
use crate::wire::{MihfId, TransportList};

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Our MIHF ID (an NAI, 1 to 253 octets).
    pub mihf_id: String,
    #[serde(default)]
    pub listen: Listen,
    #[serde(default)]
    pub sap: Sap,
    #[serde(default)]
    pub metrics: Metrics,
    #[serde(default)]
    pub timers: Timers,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub security: Security,
    #[serde(default)]
    pub peers: Vec<Peer>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    #[serde(default = "default_listen")]
    pub udp: Vec<SocketAddr>,
    #[serde(default = "default_listen")]
    pub tcp: Vec<SocketAddr>,
    /// SO_RCVBUF / SO_SNDBUF of the UDP sockets, octets (0 = system default).
    #[serde(default = "default_socket_buffer")]
    pub udp_buffer: usize,
}

impl Default for Listen {
    fn default() -> Self {
        Listen {
            udp: default_listen(),
            tcp: default_listen(),
            udp_buffer: default_socket_buffer(),
        }
    }
}

fn default_listen() -> Vec<SocketAddr> {
    vec![
        SocketAddr::from(([0, 0, 0, 0], 4551)),
        SocketAddr::from(([0u16; 8], 4551)),
    ]
}
fn default_socket_buffer() -> usize {
    1 << 20
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sap {
    #[serde(default = "default_sap")]
    pub listen: SocketAddr,
}

impl Default for Sap {
    fn default() -> Self {
        Sap {
            listen: default_sap(),
        }
    }
}

fn default_sap() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 1025))
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    /// HTTP endpoint for /metrics and /peers; absent = disabled.
    pub listen: Option<SocketAddr>,
}

/// Timers, in milliseconds (see mihf/README.md, "Timers").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timers {
    pub retransmission_timeout_ms: u64,
    pub retransmission_backoff: u32,
    pub max_retransmissions: u8,
    pub transaction_lifetime_ms: u64,
    /// The longest a frame may take through the network: a destination
    /// record of a message that asked for an ACK is kept for the sender's
    /// retransmission span plus this; absent = `retransmission_timeout_ms`.
    pub duplicate_margin_ms: Option<u64>,
    pub ack_delay_ms: u64,
    pub user_response_timeout_ms: u64,
    pub reassembly_timeout_ms: u64,
    /// Capability_Discover to every configured peer at start and then at
    /// this interval; 0 = never.
    pub discovery_interval_ms: u64,
    /// Shortest time between two INFO summaries of learned peers and
    /// refused users (which are otherwise logged at DEBUG, or once per
    /// interval).
    pub log_summary_interval_ms: u64,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            retransmission_timeout_ms: 1000,
            retransmission_backoff: 2,
            max_retransmissions: 3,
            transaction_lifetime_ms: 15_000,
            duplicate_margin_ms: None,
            ack_delay_ms: 200,
            user_response_timeout_ms: 10_000,
            reassembly_timeout_ms: 5000,
            discovery_interval_ms: 60_000,
            log_summary_interval_ms: 10_000,
        }
    }
}

/// Caps on every table and queue.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest MIH frame sent over UDP; longer ones are fragmented.
    pub mtu: usize,
    /// Open transactions per direction.
    pub max_transactions: usize,
    /// Destination transactions of one peer MIHF.
    pub max_transactions_per_peer: usize,
    pub max_reassembly_messages: usize,
    pub max_reassembly_bytes: usize,
    /// Messages in reassembly from one source IP address.
    pub max_reassembly_messages_per_peer: usize,
    /// Octets buffered for reassembly from one source IP address.
    pub max_reassembly_bytes_per_peer: usize,
    /// Registered MIH-Users; registrations beyond it are refused.
    pub max_users: usize,
    /// Configured peers.
    pub max_peers: usize,
    /// Learned peers (`security.learn_peers`), in a table of their own.
    pub max_learned_peers: usize,
    pub max_subscriptions: usize,
    /// Event subscriptions of one peer MIHF or local user.
    pub max_subscriptions_per_subscriber: usize,
    pub max_pending: usize,
    pub max_tcp_connections: usize,
    /// An incoming TCP connection is refused when this many connections
    /// (either direction) with its IP address are open.
    pub max_tcp_connections_per_ip: usize,
    /// Frames queued per TCP connection before new ones are dropped.
    pub tcp_queue: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            mtu: 1400,
            max_transactions: 16_384,
            max_transactions_per_peer: 4096,
            max_reassembly_messages: 64,
            max_reassembly_bytes: 1 << 20,
            max_reassembly_messages_per_peer: 16,
            max_reassembly_bytes_per_peer: 1 << 18,
            max_users: 64,
            max_peers: 1024,
            max_learned_peers: 64,
            max_subscriptions: 4096,
            max_subscriptions_per_subscriber: 64,
            max_pending: 16_384,
            max_tcp_connections: 256,
            max_tcp_connections_per_ip: 8,
            tcp_queue: 1024,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Security {
    /// Accept frames from MIHF IDs not in the peer table.
    pub allow_unknown_peers: bool,
    /// Learn an unknown MIHF from its MIH_Capability_Discover.request (as
    /// ODTONE does), for peers that are not configured.
    pub learn_peers: bool,
    /// New learned peers per second (burst of as many); the rest dropped.
    pub learn_rate: u32,
    /// Address ranges peers may be learned from (`"10.0.0.0/8"`,
    /// `"2001:db8::/32"`, an address); empty = any.
    pub learn_from: Vec<String>,
    /// Drop frames whose source IP is not one of the peer's addresses.
    pub check_peer_address: bool,
}

impl Default for Security {
    fn default() -> Self {
        Security {
            allow_unknown_peers: false,
            learn_peers: false,
            learn_rate: 10,
            learn_from: Vec::new(),
            check_peer_address: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    #[default]
    Udp,
    Tcp,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    pub id: String,
    pub udp: Option<SocketAddr>,
    pub tcp: Option<SocketAddr>,
    #[serde(default)]
    pub transport: Transport,
}

/// A configuration error, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("{0}")]
    Parse(String),
    #[error("invalid value for `{key}`: {reason}")]
    Invalid { key: String, reason: String },
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

impl Config {
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.display().to_string(),
            error,
        })?;
        Config::parse(&text)
    }

    /// Parse and validate.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let c: Config = toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        c.validate()?;
        Ok(c)
    }

    /// A configuration with defaults and the given ID (for tests and tools).
    pub fn with_id(id: &str) -> Config {
        Config {
            mihf_id: id.to_string(),
            listen: Listen::default(),
            sap: Sap::default(),
            metrics: Metrics::default(),
            timers: Timers::default(),
            limits: Limits::default(),
            security: Security::default(),
            peers: Vec::new(),
        }
    }

    /// Check every value; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.mihf_id.is_empty() || self.mihf_id.len() > MihfId::MAX_LEN {
            return Err(invalid("mihf_id", "must be 1 to 253 octets"));
        }
        if self.mihf_id == crate::proto::sap::LOCAL_MIHF {
            return Err(invalid("mihf_id", "`local-mihf` is reserved for the SAP"));
        }
        if !self.sap.listen.ip().is_loopback() {
            return Err(invalid(
                "sap.listen",
                "must be a loopback address (the MIH_SAP has no authentication)",
            ));
        }
        if self.listen.udp.is_empty() && self.listen.tcp.is_empty() {
            return Err(invalid("listen", "needs at least one udp or tcp address"));
        }
        let t = &self.timers;
        let ms = |k: &str, v: u64| {
            if v == 0 {
                Err(invalid(format!("timers.{k}"), "must be > 0"))
            } else {
                Ok(())
            }
        };
        ms("retransmission_timeout_ms", t.retransmission_timeout_ms)?;
        ms("transaction_lifetime_ms", t.transaction_lifetime_ms)?;
        ms("user_response_timeout_ms", t.user_response_timeout_ms)?;
        ms("reassembly_timeout_ms", t.reassembly_timeout_ms)?;
        ms("log_summary_interval_ms", t.log_summary_interval_ms)?;
        if t.retransmission_backoff == 0 || t.retransmission_backoff > 16 {
            return Err(invalid("timers.retransmission_backoff", "must be 1 to 16"));
        }
        if t.ack_delay_ms >= t.retransmission_timeout_ms {
            return Err(invalid(
                "timers.ack_delay_ms",
                "must be shorter than timers.retransmission_timeout_ms",
            ));
        }
        if t.transaction_lifetime_ms < t.retransmission_timeout_ms {
            return Err(invalid(
                "timers.transaction_lifetime_ms",
                "must be at least timers.retransmission_timeout_ms",
            ));
        }
        if let Some(m) = t.duplicate_margin_ms {
            if m == 0 || m > t.transaction_lifetime_ms {
                return Err(invalid(
                    "timers.duplicate_margin_ms",
                    "must be > 0 and at most timers.transaction_lifetime_ms",
                ));
            }
        }
        let l = &self.limits;
        if !(64..=65_507).contains(&l.mtu) {
            return Err(invalid("limits.mtu", "must be 64 to 65507"));
        }
        for (k, v) in [
            ("max_transactions", l.max_transactions),
            ("max_transactions_per_peer", l.max_transactions_per_peer),
            ("max_reassembly_messages", l.max_reassembly_messages),
            (
                "max_reassembly_messages_per_peer",
                l.max_reassembly_messages_per_peer,
            ),
            ("max_users", l.max_users),
            ("max_peers", l.max_peers),
            ("max_learned_peers", l.max_learned_peers),
            ("max_subscriptions", l.max_subscriptions),
            (
                "max_subscriptions_per_subscriber",
                l.max_subscriptions_per_subscriber,
            ),
            ("max_pending", l.max_pending),
            ("max_tcp_connections", l.max_tcp_connections),
            ("max_tcp_connections_per_ip", l.max_tcp_connections_per_ip),
            ("tcp_queue", l.tcp_queue),
        ] {
            if v == 0 {
                return Err(invalid(format!("limits.{k}"), "must be > 0"));
            }
        }
        if l.max_reassembly_bytes < l.mtu {
            return Err(invalid(
                "limits.max_reassembly_bytes",
                "must be at least limits.mtu",
            ));
        }
        if l.max_reassembly_bytes_per_peer < l.mtu {
            return Err(invalid(
                "limits.max_reassembly_bytes_per_peer",
                "must be at least limits.mtu",
            ));
        }
        for (k, v, total, of) in [
            (
                "max_transactions_per_peer",
                l.max_transactions_per_peer,
                l.max_transactions,
                "max_transactions",
            ),
            (
                "max_reassembly_messages_per_peer",
                l.max_reassembly_messages_per_peer,
                l.max_reassembly_messages,
                "max_reassembly_messages",
            ),
            (
                "max_reassembly_bytes_per_peer",
                l.max_reassembly_bytes_per_peer,
                l.max_reassembly_bytes,
                "max_reassembly_bytes",
            ),
            (
                "max_subscriptions_per_subscriber",
                l.max_subscriptions_per_subscriber,
                l.max_subscriptions,
                "max_subscriptions",
            ),
            (
                "max_tcp_connections_per_ip",
                l.max_tcp_connections_per_ip,
                l.max_tcp_connections,
                "max_tcp_connections",
            ),
        ] {
            if v > total {
                return Err(invalid(
                    format!("limits.{k}"),
                    format!("must be at most limits.{of}"),
                ));
            }
        }
        if self.security.learn_rate == 0 {
            return Err(invalid(
                "security.learn_rate",
                "must be > 0 (set security.learn_peers = false to learn nothing)",
            ));
        }
        for (i, r) in self.security.learn_from.iter().enumerate() {
            if let Err(e) = r.parse::<IpRange>() {
                return Err(invalid(format!("security.learn_from[{i}]"), e));
            }
        }
        if self.peers.len() > l.max_peers {
            return Err(invalid("peers", "more entries than limits.max_peers"));
        }
        for (i, p) in self.peers.iter().enumerate() {
            if p.id.is_empty() || p.id.len() > MihfId::MAX_LEN {
                return Err(invalid(format!("peers[{i}].id"), "must be 1 to 253 octets"));
            }
            if p.id == self.mihf_id {
                return Err(invalid(format!("peers[{i}].id"), "is our own mihf_id"));
            }
            if self.peers[..i].iter().any(|q| q.id == p.id) {
                return Err(invalid(
                    format!("peers[{i}].id"),
                    format!("`{}` is listed twice", p.id),
                ));
            }
            if p.udp.is_none() && p.tcp.is_none() {
                return Err(invalid(format!("peers[{i}]"), "needs `udp` or `tcp`"));
            }
            if p.transport == Transport::Tcp && p.tcp.is_none() {
                return Err(invalid(
                    format!("peers[{i}].transport"),
                    "is tcp but `tcp` is not set",
                ));
            }
            if p.transport == Transport::Udp && p.udp.is_none() {
                return Err(invalid(
                    format!("peers[{i}].transport"),
                    "is udp but `udp` is not set",
                ));
            }
        }
        self.node_config()
            .validate()
            .map_err(|e| invalid("(node)", e))?;
        Ok(())
    }

    /// The sans-IO node configuration.
    pub fn node_config(&self) -> NodeConfig {
        let mut n = NodeConfig::new(MihfId::new(self.mihf_id.clone().into_bytes()));
        let t = &self.timers;
        let l = &self.limits;
        let e = &mut n.engine;
        e.retransmission_timeout = Duration::from_millis(t.retransmission_timeout_ms);
        e.retransmission_backoff = t.retransmission_backoff;
        e.max_retransmissions = t.max_retransmissions;
        e.transaction_lifetime = Duration::from_millis(t.transaction_lifetime_ms);
        e.duplicate_margin = t.duplicate_margin_ms.map(Duration::from_millis);
        e.ack_delay = Duration::from_millis(t.ack_delay_ms);
        e.mtu = l.mtu;
        e.max_transactions = l.max_transactions;
        e.max_transactions_per_peer = l.max_transactions_per_peer;
        e.reassembly = ReassemblyLimits {
            max_messages: l.max_reassembly_messages,
            max_bytes: l.max_reassembly_bytes,
            max_messages_per_source: l.max_reassembly_messages_per_peer,
            max_bytes_per_source: l.max_reassembly_bytes_per_peer,
            timeout: Duration::from_millis(t.reassembly_timeout_ms),
        };
        n.user_response_timeout = Duration::from_millis(t.user_response_timeout_ms);
        n.discovery_interval =
            (t.discovery_interval_ms > 0).then(|| Duration::from_millis(t.discovery_interval_ms));
        n.summary_interval = Duration::from_millis(t.log_summary_interval_ms);
        n.max_users = l.max_users;
        n.max_peers = l.max_peers;
        n.max_learned_peers = l.max_learned_peers;
        n.max_subscriptions = l.max_subscriptions;
        n.max_subscriptions_per_subscriber = l.max_subscriptions_per_subscriber;
        n.max_pending = l.max_pending;
        n.allow_unknown_peers = self.security.allow_unknown_peers;
        n.learn_peers = self.security.learn_peers;
        n.learn_rate = self.security.learn_rate;
        let ranges: Result<Vec<IpRange>, _> =
            self.security.learn_from.iter().map(|r| r.parse()).collect();
        match ranges {
            Ok(r) => n.learn_from = r,
            Err(_) => {
                // `validate` refuses this; without it, learn nothing rather
                // than from anywhere.
                n.learn_peers = false;
                n.allow_unknown_peers = false;
            }
        }
        n.check_peer_address = self.security.check_peer_address;
        n.transports = match (self.listen.udp.is_empty(), self.listen.tcp.is_empty()) {
            (false, false) => TransportList::UDP | TransportList::TCP,
            (false, true) => TransportList::UDP,
            _ => TransportList::TCP,
        };
        n.peers = self
            .peers
            .iter()
            .map(|p| PeerConfig {
                id: MihfId::new(p.id.clone().into_bytes()),
                udp: p.udp,
                tcp: p.tcp,
                prefer_tcp: p.transport == Transport::Tcp,
            })
            .collect();
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Config::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn defaults() {
        let c = Config::parse("mihf_id = \"mihf1\"").unwrap();
        assert_eq!(c.listen.udp.len(), 2);
        assert_eq!(c.listen.udp[0].port(), 4551);
        assert!(c.listen.udp[1].is_ipv6());
        assert_eq!(c.sap.listen.port(), 1025);
        let n = c.node_config();
        assert_eq!(n.engine.retransmission_timeout, Duration::from_secs(1));
        assert_eq!(n.engine.transaction_lifetime, Duration::from_secs(15));
        assert!(!n.learn_peers, "learning is off unless asked for");
        assert_eq!((n.max_learned_peers, n.learn_rate), (64, 10));
        assert!(n.learn_from.is_empty());
        assert_eq!(n.summary_interval, Duration::from_secs(10));
        assert_eq!(n.engine.max_transactions_per_peer, 4096);
        assert_eq!(n.engine.duplicate_margin, None);
        assert_eq!(n.engine.margin(), Duration::from_secs(1));
        assert_eq!(n.engine.tid_quarantine(), Duration::from_secs(8));
        let c = Config::parse("mihf_id = \"a\"\n[timers]\nduplicate_margin_ms = 3000").unwrap();
        assert_eq!(
            c.node_config().engine.duplicate_life(),
            Duration::from_secs(10)
        );
        assert_eq!(n.engine.reassembly.max_messages_per_source, 16);
        assert_eq!(c.limits.max_tcp_connections_per_ip, 8);
        let c = Config::parse(
            "mihf_id = \"a\"\n[security]\nlearn_peers = true\nlearn_from = [\"10.0.0.0/8\", \"2001:db8::1\"]",
        )
        .unwrap();
        let n = c.node_config();
        assert!(n.learn_peers);
        assert_eq!(n.learn_from.len(), 2);
        assert!(n.learn_from[0].contains("10.1.2.3".parse().unwrap()));
    }

    #[test]
    fn abuse_limits_name_the_key() {
        let sec = |body: &str| err(&format!("mihf_id = \"a\"\n[security]\n{body}"));
        assert!(sec("learn_from = [\"10.0.0.0/40\"]").contains("security.learn_from[0]"));
        assert!(sec("learn_from = [\"any\"]").contains("security.learn_from[0]"));
        assert!(sec("learn_rate = 0").contains("security.learn_rate"));
        let lim = |body: &str| err(&format!("mihf_id = \"a\"\n[limits]\n{body}"));
        assert!(
            lim("max_transactions_per_peer = 20000").contains("limits.max_transactions_per_peer")
        );
        assert!(lim("max_learned_peers = 0").contains("limits.max_learned_peers"));
        assert!(
            lim("max_tcp_connections_per_ip = 300").contains("limits.max_tcp_connections_per_ip")
        );
        assert!(lim("max_reassembly_bytes_per_peer = 100")
            .contains("limits.max_reassembly_bytes_per_peer"));
        assert!(
            err("mihf_id = \"a\"\n[timers]\nlog_summary_interval_ms = 0")
                .contains("timers.log_summary_interval_ms")
        );
        for m in ["0", "15001"] {
            assert!(err(&format!(
                "mihf_id = \"a\"\n[timers]\nduplicate_margin_ms = {m}"
            ))
            .contains("timers.duplicate_margin_ms"));
        }
        // A bad range never widens learning when validation is skipped.
        let mut c = Config::with_id("a");
        c.security.learn_peers = true;
        c.security.learn_from = vec!["nonsense".into()];
        assert!(!c.node_config().learn_peers);
    }

    #[test]
    fn errors_name_the_key() {
        assert!(err("mihf_id = \"\"").contains("`mihf_id`"));
        assert!(err("mihf_id = \"a\"\n[sap]\nlisten = \"0.0.0.0:1025\"").contains("sap.listen"));
        assert!(
            err("mihf_id = \"a\"\n[timers]\nretransmision_timeout_ms = 5")
                .contains("retransmision_timeout_ms")
        );
        assert!(
            err("mihf_id = \"a\"\n[timers]\nack_delay_ms = 5000").contains("timers.ack_delay_ms")
        );
        assert!(err("mihf_id = \"a\"\n[limits]\nmtu = 10").contains("limits.mtu"));
        assert!(err("mihf_id = \"a\"\n[[peers]]\nid = \"b\"").contains("peers[0]"));
        assert!(err("mihf_id = \"a\"\n[[peers]]\nid = \"b\"\nudp = \"nonsense\"").contains("udp"));
        assert!(err(
            "mihf_id = \"a\"\n[[peers]]\nid = \"b\"\nudp = \"127.0.0.1:1\"\n[[peers]]\nid = \"b\"\nudp = \"127.0.0.1:2\""
        )
        .contains("peers[1].id"));
        assert!(err(
            "mihf_id = \"a\"\n[[peers]]\nid = \"b\"\nudp = \"127.0.0.1:1\"\ntransport = \"tcp\""
        )
        .contains("peers[0].transport"));
    }
}
