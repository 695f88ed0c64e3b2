//! The `mih-user` TOML configuration, validated at start: every error
//! names the key that is wrong.
//!
//! ```toml
//! [mihf]                          # the local mihfd's MIH_SAP
//! sap = "127.0.0.1:1025"
//! user_id = "mih-user"
//!
//! [api]                           # Service Mobility API (Unix socket)
//! socket = "/run/mih-user/api.sock"
//!
//! [cxtp]                          # CXTP between eNBCs (TCP)
//! listen = "192.0.2.1:5091"
//!
//! [[peers]]                       # neighbouring eNBCs: MIHF ID -> CXTP address
//! mihf_id = "enbc-b"
//! cxtp = "192.0.2.2:5091"
//!
//! [x2]                            # X2AP tap (optional)
//! udp = "127.0.0.1:36422"
//!
//! [[neighbours]]                  # target eNB/cell -> destination MIHF ID
//! plmn = "001-01"
//! enb_id = 0x1a2b3
//! mihf_id = "enbc-b"
//!
//! [[ues]]                         # X2AP key -> UE address
//! ue_address = "10.45.0.7"
//! ul_gtp_teid = 0x101
//!
//! [control]
//! socket = "/run/mih-user/control.sock"
//!
//! [metrics]
//! listen = "127.0.0.1:9552"
//! ```
//!
//! `[timers]`, `[admission]` and `[sessions]` are optional; see the
//! structs for keys and defaults. Every listener is bounded: `[cxtp]`
//! accepts only the `[[peers]]` addresses (unless `accept_any`), caps its
//! connections in total and per peer and closes idle ones; `[control]`,
//! `[metrics]` and `[api]` cap their connections and close the ones that
//! do not send a request (or a `Hello`, or register a service) in time.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::api::registry::Limits;
use crate::api::server::ApiConfig;
use crate::orchestrator::OrchestratorConfig;
use crate::x2ap::{NeighbourConfig, UeConfig, X2TriggerConfig};

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The local MIHF.
    #[serde(default)]
    pub mihf: Mihf,
    /// The Service Mobility API.
    pub api: Api,
    /// CXTP.
    #[serde(default)]
    pub cxtp: Cxtp,
    /// Orchestration timers.
    #[serde(default)]
    pub timers: Timers,
    /// Admission and concurrency limits.
    #[serde(default)]
    pub admission: Admission,
    /// Queueing of X2 triggers and retries after a rollback.
    #[serde(default)]
    pub schedule: Schedule,
    /// Session export/import.
    #[serde(default)]
    pub sessions: Sessions,
    /// X2AP ingestion.
    #[serde(default)]
    pub x2: X2,
    /// Neighbour table (target eNB or cell → destination MIHF ID).
    #[serde(default)]
    pub neighbours: Vec<NeighbourConfig>,
    /// UE table (X2AP key → UE address).
    #[serde(default)]
    pub ues: Vec<UeConfig>,
    /// Neighbouring eNBCs.
    #[serde(default)]
    pub peers: Vec<Peer>,
    /// Operator control socket.
    #[serde(default)]
    pub control: Control,
    /// Metrics endpoint.
    #[serde(default)]
    pub metrics: Metrics,
}

/// `[mihf]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mihf {
    /// mihfd's MIH_SAP (loopback).
    pub sap: SocketAddr,
    /// Our MIH-User ID.
    pub user_id: String,
    /// Re-send the User_Register.indication this often (mihfd restarts).
    pub register_interval_ms: u64,
}

impl Default for Mihf {
    fn default() -> Self {
        Mihf {
            sap: SocketAddr::from(([127, 0, 0, 1], 1025)),
            user_id: "mih-user".into(),
            register_interval_ms: 10_000,
        }
    }
}

/// `[api]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Api {
    /// Unix socket path.
    pub socket: PathBuf,
    /// How long services have to export (ms).
    #[serde(default = "two_s")]
    pub export_timeout_ms: u64,
    /// How long services have to import (ms).
    #[serde(default = "two_s")]
    pub import_timeout_ms: u64,
    /// Registered services.
    #[serde(default = "d_services")]
    pub max_services: usize,
    /// User registrations.
    #[serde(default = "d_users")]
    pub max_users: usize,
    /// Client connections. When they are all taken, a new one closes the
    /// oldest connection without a registered service, or is refused when
    /// every connection has one.
    #[serde(default = "d_clients")]
    pub max_clients: usize,
    /// Time a new connection has to send `Hello` (ms).
    #[serde(default = "five_s")]
    pub handshake_timeout_ms: u64,
    /// Time a connection may stay without a registered service, from its
    /// `Hello` or its last deregistration (ms).
    #[serde(default = "thirty_s")]
    pub registration_timeout_ms: u64,
    /// Frames queued towards one client before it is closed as a slow
    /// consumer. Default: 256 plus 8 per migration admission allows at
    /// once (`admission.max_incoming + max_outgoing`): in a storm each of
    /// those has a few events and answers on its way to every service
    /// (1,280 with the default admission).
    #[serde(default)]
    pub queue_frames: Option<usize>,
}

fn two_s() -> u64 {
    2000
}
fn d_services() -> usize {
    256
}
fn d_users() -> usize {
    65_536
}
fn d_clients() -> usize {
    64
}
fn five_s() -> u64 {
    5000
}
fn thirty_s() -> u64 {
    30_000
}
fn d_local_connections() -> usize {
    16
}

/// `[cxtp]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cxtp {
    /// TCP listen address; its IP is this eNBC's CXTP address (outgoing
    /// connections are made from it).
    pub listen: SocketAddr,
    /// The source waits this long for a CTDR after its last progress, and
    /// the destination between two messages (ms). Must exceed
    /// `api.import_timeout_ms` (the final CTDR waits for the imports).
    pub transfer_timeout_ms: u64,
    /// Largest context accepted (octets).
    pub max_context_len: usize,
    /// Largest total of contexts being reassembled (octets).
    pub max_buffered: usize,
    /// Accept CXTP connections from any address. Off: only from the
    /// `[[peers]]` addresses; any other is closed before it is read.
    pub accept_any: bool,
    /// Most accepted CXTP connections at once.
    pub max_connections: usize,
    /// Most accepted CXTP connections at once from one address.
    pub max_connections_per_peer: usize,
    /// Close a CXTP connection on which no complete message travelled for
    /// this long (ms; must exceed `transfer_timeout_ms`).
    pub idle_timeout_ms: u64,
}

impl Default for Cxtp {
    fn default() -> Self {
        Cxtp {
            listen: SocketAddr::from(([0, 0, 0, 0], 5091)),
            transfer_timeout_ms: 4000,
            max_context_len: 16 << 20,
            max_buffered: 64 << 20,
            accept_any: false,
            max_connections: 64,
            max_connections_per_peer: 4,
            idle_timeout_ms: 120_000,
        }
    }
}

/// `[timers]` (ms).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timers {
    /// Source: wait for MIH_N2N_HO_Commit.confirm.
    pub mih_timeout_ms: u64,
    /// Destination: wait for the first CTD after accepting.
    pub context_timeout_ms: u64,
    /// Destination: wait for MIH_N2N_HO_Complete after the CTDR (must be
    /// longer than the source keeps trying: `cxtp.transfer_timeout_ms +
    /// (complete_retries + 1) x complete_retry_interval_ms`).
    pub complete_timeout_ms: u64,
    /// Source: repeats of MIH_N2N_HO_Complete until the destination
    /// answers.
    pub complete_retries: u32,
    /// Source: interval between two MIH_N2N_HO_Complete of one attempt.
    pub complete_retry_interval_ms: u64,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            mih_timeout_ms: 5000,
            context_timeout_ms: 5000,
            complete_timeout_ms: 10_000,
            complete_retries: 4,
            complete_retry_interval_ms: 1000,
        }
    }
}

/// `[admission]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Admission {
    /// Most UEs arriving at once (0 refuses every handover).
    pub max_incoming: usize,
    /// Most UEs on this node: registered with a service plus arriving (0
    /// refuses every handover).
    pub max_ues: usize,
    /// Most UEs leaving at once.
    pub max_outgoing: usize,
}

impl Default for Admission {
    fn default() -> Self {
        Admission {
            max_incoming: 64,
            max_ues: 65_536,
            max_outgoing: 64,
        }
    }
}

/// `[schedule]`: X2 triggers that cannot start at once wait; X2-triggered
/// migrations that roll back for a cause that can change are retried
/// (`orchestrator::schedule`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Schedule {
    /// Most waiting triggers, queued and retrying together (1 to 65536).
    pub max_queued: usize,
    /// A queued trigger not started within this long is dropped (ms).
    pub queue_deadline_ms: u64,
    /// Wait before the first retry (ms).
    pub retry_initial_ms: u64,
    /// Each further wait is this many times the previous one (1 to 16).
    pub retry_factor: u32,
    /// Longest wait between two attempts (ms; at least `retry_initial_ms`).
    pub retry_max_ms: u64,
    /// Most attempts, the first included (1 = no retry; at most 100).
    pub max_attempts: u32,
    /// Each wait is shortened by up to this share (0 to 100 %), the same
    /// for the same UE and attempt.
    pub retry_jitter_percent: u8,
}

impl Default for Schedule {
    fn default() -> Self {
        let d = crate::orchestrator::SchedulerConfig::default();
        Schedule {
            max_queued: d.max_queued,
            queue_deadline_ms: d.queue_deadline.as_millis() as u64,
            retry_initial_ms: d.retry_initial.as_millis() as u64,
            retry_factor: d.retry_factor,
            retry_max_ms: d.retry_max.as_millis() as u64,
            max_attempts: d.max_attempts,
            retry_jitter_percent: d.jitter_percent,
        }
    }
}

/// How sessions are exported and imported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionMode {
    /// No session contexts (application state only).
    #[default]
    None,
    /// In memory: one synthetic session per connection the services
    /// registered (tests and dry runs; nothing touches the kernel).
    Memory,
    /// Live TCP sessions with `TCP_REPAIR` (Linux, CAP_NET_ADMIN): the
    /// services hand their sockets over `handoff_socket`
    /// (`mih_user::sessions::handoff`).
    TcpRepair,
}

/// A network action: a command (argv; `{ue}` in any argument is replaced
/// by the UE's address) or a built-in route change over rtnetlink.
/// (Serialized as JSON into the session journal: the hold an entry laid.)
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct HookConfig {
    /// Run this command (no shell) and wait for it; a non-zero exit is a
    /// failure.
    #[serde(default)]
    pub command: Vec<String>,
    /// Built-in: the network namespace to act in (a name under
    /// `/run/netns`, or a path); the daemon's own when absent.
    #[serde(default)]
    pub netns: Option<String>,
    /// Built-in route: destination prefix (`{ue}` allowed, e.g.
    /// `"{ue}/32"`).
    #[serde(default)]
    pub route: Option<String>,
    /// Built-in route: `"blackhole"` or a gateway address.
    #[serde(default)]
    pub via: Option<String>,
    /// Built-in route: preferred source address.
    #[serde(default)]
    pub src: Option<IpAddr>,
    /// Built-in route: delete the route instead of replacing it.
    #[serde(default)]
    pub delete: bool,
    /// Built-in route: the routing table (`ip route ... table N`; default
    /// the main table, 254). With `table_per_ue`, the first of the UEs'
    /// tables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<u32>,
    /// Built-in route: one routing table per UE, for source-policy routing
    /// (`ip rule add from UE lookup N` at the router): a UE address inside
    /// this prefix (e.g. `"10.77.0.0/16"`) uses table `table + (UE address
    /// − the prefix's first address)`; a UE outside it fails the hook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_per_ue: Option<String>,
}

impl HookConfig {
    /// The routing table a built-in route acts in for `ue`.
    pub fn table_for(&self, ue: IpAddr) -> Result<u32, String> {
        let base = self.table.unwrap_or(crate::sessions::route::MAIN_TABLE);
        let Some(prefix) = &self.table_per_ue else {
            return Ok(base);
        };
        let (net, len) = super::hooks::parse_prefix(prefix)?;
        let offset = match (net, ue.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(u)) => {
                let host = 32 - u32::from(len);
                let mask = u32::MAX.checked_shl(host).unwrap_or(0);
                (u32::from(u) & mask == u32::from(n) & mask)
                    .then(|| u128::from(u32::from(u) & !mask))
            }
            (IpAddr::V6(n), IpAddr::V6(u)) => {
                let host = 128 - u32::from(len);
                let mask = u128::MAX.checked_shl(host).unwrap_or(0);
                (u128::from(u) & mask == u128::from(n) & mask).then(|| u128::from(u) & !mask)
            }
            _ => None,
        }
        .ok_or_else(|| format!("UE {ue} is outside table_per_ue {prefix}"))?;
        u32::try_from(u128::from(base) + offset)
            .ok()
            .filter(|t| *t != 0)
            .ok_or_else(|| format!("UE {ue}: table {base} + {offset} is not a routing table"))
    }
}

/// `[sessions]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sessions {
    /// `none`, `memory` or `tcp_repair`.
    pub mode: SessionMode,
    /// `tcp_repair`: the Unix datagram socket where services hand their
    /// sockets in (required in that mode).
    pub handoff_socket: Option<PathBuf>,
    /// `tcp_repair`, source: before freezing (e.g. a blackhole route
    /// towards the UE), held until `release`.
    pub hold: Option<HookConfig>,
    /// `tcp_repair`, source: after a commit or a restore.
    pub release: Option<HookConfig>,
    /// `tcp_repair`: after rebuilding, before the sockets leave repair
    /// mode (make the UE's path lead here).
    pub path_switch: Option<HookConfig>,
    /// `tcp_repair`: the session journal's directory (what a source froze,
    /// written before the sockets close; read back at start). Default:
    /// next to `handoff_socket`, `<its directory>/<its stem>.journal`.
    /// One mih-user per directory (locked).
    pub journal_dir: Option<PathBuf>,
    /// `tcp_repair`: most journal entries at once (one per export under
    /// way; a full journal fails the export, which rolls back).
    pub journal_max_entries: usize,
    /// `tcp_repair`: most octets in all journal entries together.
    pub journal_max_bytes: u64,
    /// `tcp_repair`: after a restart, how long recovery asks the
    /// destination what became of an unfinished attempt before it decides
    /// without its answer (ms).
    pub recovery_timeout_ms: u64,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions {
            mode: SessionMode::None,
            handoff_socket: None,
            hold: None,
            release: None,
            path_switch: None,
            journal_dir: None,
            journal_max_entries: 1024,
            journal_max_bytes: 256 << 20,
            recovery_timeout_ms: 30_000,
        }
    }
}

impl Sessions {
    /// The journal directory: `journal_dir`, or next to `handoff_socket`
    /// (`None` without either).
    pub fn journal_dir(&self) -> Option<PathBuf> {
        if let Some(d) = &self.journal_dir {
            return Some(d.clone());
        }
        let h = self.handoff_socket.as_deref()?;
        let stem = h.file_stem()?.to_string_lossy().into_owned();
        Some(
            h.parent()
                .unwrap_or(Path::new("."))
                .join(format!("{stem}.journal")),
        )
    }
}

/// `[x2]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct X2 {
    /// UDP tap (one PDU per datagram).
    pub udp: Option<SocketAddr>,
    /// TCP tap (length-prefixed PDUs).
    pub tcp: Option<SocketAddr>,
    /// Replay this pcap/pcapng capture at start.
    pub pcap: Option<PathBuf>,
    /// Replay speed (0 = as fast as possible, 1 = real time).
    pub pcap_speed: f64,
    /// See `X2TriggerConfig`.
    pub max_pending: usize,
    /// TRELOCprep (ms).
    pub preparation_timeout_ms: u64,
    /// TX2RELOCoverall (ms).
    pub completion_timeout_ms: u64,
    /// Neighbour table capacity.
    pub max_neighbours: usize,
    /// UE table capacity.
    pub max_ues: usize,
}

impl Default for X2 {
    fn default() -> Self {
        let t = X2TriggerConfig::default();
        X2 {
            udp: None,
            tcp: None,
            pcap: None,
            pcap_speed: 0.0,
            max_pending: t.max_pending,
            preparation_timeout_ms: t.preparation_timeout_ms,
            completion_timeout_ms: t.completion_timeout_ms,
            max_neighbours: t.max_neighbours,
            max_ues: t.max_ues,
        }
    }
}

/// `[[peers]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    /// The peer eNBC's MIHF ID (its mihfd's `mihf_id`).
    pub mihf_id: String,
    /// Its CXTP address.
    pub cxtp: SocketAddr,
}

/// `[control]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Control {
    /// Unix socket for `mih-user handover|status|abort`.
    #[serde(default)]
    pub socket: Option<PathBuf>,
    /// Most connections at once. When all are taken, a new one closes the
    /// oldest connection that waits for a request, or is refused when
    /// every connection has a request in progress.
    #[serde(default = "d_local_connections")]
    pub max_connections: usize,
    /// A request line must be complete this long after the connection
    /// opened or the previous answer was written (ms); else it is closed.
    #[serde(default = "five_s")]
    pub request_timeout_ms: u64,
}

impl Default for Control {
    fn default() -> Self {
        Control {
            socket: None,
            max_connections: d_local_connections(),
            request_timeout_ms: five_s(),
        }
    }
}

/// `[metrics]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    /// HTTP endpoint: GET /metrics (Prometheus text), GET /status (JSON).
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// Most connections at once (the same rule as `control.max_connections`).
    #[serde(default = "d_local_connections")]
    pub max_connections: usize,
    /// The request must be read and answered within this time (ms).
    #[serde(default = "five_s")]
    pub request_timeout_ms: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            listen: None,
            max_connections: d_local_connections(),
            request_timeout_ms: five_s(),
        }
    }
}

/// A configuration error naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {error}")]
    Read {
        /// Path.
        path: String,
        /// Error.
        error: std::io::Error,
    },
    /// TOML syntax, unknown key or wrong type (the message names the key).
    #[error("{0}")]
    Parse(String),
    /// A value that is not acceptable.
    #[error("invalid value for `{key}`: {reason}")]
    Invalid {
        /// Key.
        key: String,
        /// Why.
        reason: String,
    },
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

impl HookConfig {
    fn validate(&self, key: &str) -> Result<(), ConfigError> {
        let builtin = self.route.is_some();
        match (self.command.is_empty(), builtin) {
            (false, true) => return Err(invalid(key, "set either `command` or `route`, not both")),
            (true, false) => return Err(invalid(key, "needs `command` or `route`")),
            (false, false) => {
                if self.netns.is_some()
                    || self.via.is_some()
                    || self.src.is_some()
                    || self.delete
                    || self.table.is_some()
                    || self.table_per_ue.is_some()
                {
                    return Err(invalid(
                        key,
                        "`netns`, `via`, `src`, `delete`, `table` and `table_per_ue` belong to a built-in `route`",
                    ));
                }
            }
            (true, true) => {
                let route = self.route.as_deref().unwrap_or_default();
                let probe = route.replace("{ue}", "192.0.2.1");
                super::hooks::parse_prefix(&probe)
                    .map_err(|e| invalid(format!("{key}.route"), e))?;
                if self.table == Some(0) {
                    return Err(invalid(format!("{key}.table"), "0 is no routing table"));
                }
                if let Some(p) = &self.table_per_ue {
                    let (net, len) = super::hooks::parse_prefix(p)
                        .map_err(|e| invalid(format!("{key}.table_per_ue"), e))?;
                    if self.table.is_none() {
                        return Err(invalid(
                            format!("{key}.table"),
                            "needed with `table_per_ue` (the first UE's table)",
                        ));
                    }
                    let host = u32::from(if net.is_ipv4() { 32 } else { 128 } - len);
                    let last = u128::from(self.table.unwrap_or(0))
                        + 1u128.checked_shl(host).map_or(u128::MAX, |n| n - 1);
                    if last > u128::from(u32::MAX) {
                        return Err(invalid(
                            format!("{key}.table_per_ue"),
                            "the prefix holds more UEs than there are tables above `table`",
                        ));
                    }
                }
                match (self.via.as_deref(), self.delete) {
                    (Some(_), true) => {
                        return Err(invalid(key, "`delete` takes no `via`"));
                    }
                    (None, false) => {
                        return Err(invalid(
                            format!("{key}.via"),
                            "needed: \"blackhole\" or a gateway address",
                        ));
                    }
                    (Some(v), false) if v != "blackhole" && v.parse::<IpAddr>().is_err() => {
                        return Err(invalid(
                            format!("{key}.via"),
                            "must be \"blackhole\" or an IP address",
                        ));
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

impl Config {
    fn validate_schedule(&self) -> Result<(), ConfigError> {
        let s = &self.schedule;
        if !(1..=65_536).contains(&s.max_queued) {
            return Err(invalid("schedule.max_queued", "must be 1 to 65536"));
        }
        for (k, v) in [
            ("schedule.queue_deadline_ms", s.queue_deadline_ms),
            ("schedule.retry_initial_ms", s.retry_initial_ms),
            ("schedule.retry_max_ms", s.retry_max_ms),
        ] {
            if v == 0 || v > 600_000 {
                return Err(invalid(k, "must be 1 to 600000 ms"));
            }
        }
        if s.retry_max_ms < s.retry_initial_ms {
            return Err(invalid(
                "schedule.retry_max_ms",
                "must be at least schedule.retry_initial_ms",
            ));
        }
        if !(1..=16).contains(&s.retry_factor) {
            return Err(invalid("schedule.retry_factor", "must be 1 to 16"));
        }
        if !(1..=100).contains(&s.max_attempts) {
            return Err(invalid("schedule.max_attempts", "must be 1 to 100"));
        }
        if s.retry_jitter_percent > 100 {
            return Err(invalid("schedule.retry_jitter_percent", "must be 0 to 100"));
        }
        Ok(())
    }

    fn validate_sessions(&self) -> Result<(), ConfigError> {
        let s = &self.sessions;
        let hooks = [
            ("sessions.hold", &s.hold),
            ("sessions.release", &s.release),
            ("sessions.path_switch", &s.path_switch),
        ];
        if s.mode != SessionMode::TcpRepair {
            if s.handoff_socket.is_some() {
                return Err(invalid(
                    "sessions.handoff_socket",
                    "only used with mode = \"tcp_repair\"",
                ));
            }
            if let Some((k, _)) = hooks.iter().find(|(_, h)| h.is_some()) {
                return Err(invalid(*k, "only used with mode = \"tcp_repair\""));
            }
            if s.journal_dir.is_some() {
                return Err(invalid(
                    "sessions.journal_dir",
                    "only used with mode = \"tcp_repair\"",
                ));
            }
            return Ok(());
        }
        if !(1..=65_536).contains(&s.journal_max_entries) {
            return Err(invalid(
                "sessions.journal_max_entries",
                "must be 1 to 65536",
            ));
        }
        if !((64 << 10)..=(1 << 40)).contains(&s.journal_max_bytes) {
            return Err(invalid(
                "sessions.journal_max_bytes",
                "must be 64 KiB to 1 TiB",
            ));
        }
        if !(1000..=3_600_000).contains(&s.recovery_timeout_ms) {
            return Err(invalid(
                "sessions.recovery_timeout_ms",
                "must be 1000 to 3600000 ms",
            ));
        }
        if s.journal_dir
            .as_ref()
            .is_some_and(|d| d.as_os_str().is_empty())
        {
            return Err(invalid("sessions.journal_dir", "must not be empty"));
        }
        match &s.handoff_socket {
            Some(p) if !p.as_os_str().is_empty() => {}
            _ => {
                return Err(invalid(
                    "sessions.handoff_socket",
                    "required with mode = \"tcp_repair\" (where services hand their sockets in)",
                ))
            }
        }
        for (k, h) in hooks {
            if let Some(h) = h {
                h.validate(k)?;
            }
        }
        Ok(())
    }

    /// Read, parse and validate.
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

    /// Check every value; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.mihf.sap.ip().is_loopback() {
            return Err(invalid("mihf.sap", "must be a loopback address"));
        }
        if self.mihf.user_id.is_empty() || self.mihf.user_id.len() > 253 {
            return Err(invalid("mihf.user_id", "must be 1 to 253 octets"));
        }
        if self.mihf.register_interval_ms < 100 {
            return Err(invalid("mihf.register_interval_ms", "must be at least 100"));
        }
        if self.api.socket.as_os_str().is_empty() {
            return Err(invalid("api.socket", "must be a path"));
        }
        for (k, v) in [
            ("api.export_timeout_ms", self.api.export_timeout_ms),
            ("api.import_timeout_ms", self.api.import_timeout_ms),
            ("timers.mih_timeout_ms", self.timers.mih_timeout_ms),
            ("timers.context_timeout_ms", self.timers.context_timeout_ms),
            (
                "timers.complete_timeout_ms",
                self.timers.complete_timeout_ms,
            ),
            (
                "timers.complete_retry_interval_ms",
                self.timers.complete_retry_interval_ms,
            ),
            ("cxtp.transfer_timeout_ms", self.cxtp.transfer_timeout_ms),
            ("api.handshake_timeout_ms", self.api.handshake_timeout_ms),
            (
                "api.registration_timeout_ms",
                self.api.registration_timeout_ms,
            ),
            (
                "control.request_timeout_ms",
                self.control.request_timeout_ms,
            ),
            (
                "metrics.request_timeout_ms",
                self.metrics.request_timeout_ms,
            ),
        ] {
            if v == 0 || v > 600_000 {
                return Err(invalid(k, "must be 1 to 600000 ms"));
            }
        }
        if !(100..=86_400_000).contains(&self.cxtp.idle_timeout_ms) {
            return Err(invalid(
                "cxtp.idle_timeout_ms",
                "must be 100 to 86400000 ms",
            ));
        }
        if self.cxtp.idle_timeout_ms <= self.cxtp.transfer_timeout_ms {
            return Err(invalid(
                "cxtp.idle_timeout_ms",
                "must be longer than cxtp.transfer_timeout_ms (a transfer may pause that long)",
            ));
        }
        if self.timers.complete_retries > 100 {
            return Err(invalid("timers.complete_retries", "must be at most 100"));
        }
        // The destination waits longer than the source keeps trying.
        let horizon = self.cxtp.transfer_timeout_ms
            + self.timers.complete_retry_interval_ms
                * (u64::from(self.timers.complete_retries) + 1);
        if self.timers.complete_timeout_ms <= horizon {
            return Err(invalid(
                "timers.complete_timeout_ms",
                format!(
                    "must be longer than cxtp.transfer_timeout_ms + (timers.complete_retries + 1) x timers.complete_retry_interval_ms = {horizon} (the destination waits longer than the source keeps trying)"
                ),
            ));
        }
        if self.cxtp.transfer_timeout_ms <= self.api.import_timeout_ms {
            return Err(invalid(
                "cxtp.transfer_timeout_ms",
                "must be longer than api.import_timeout_ms (the final CTDR waits for the imports)",
            ));
        }
        for (k, v) in [
            ("api.max_services", self.api.max_services),
            ("api.max_users", self.api.max_users),
            ("api.max_clients", self.api.max_clients),
            ("admission.max_outgoing", self.admission.max_outgoing),
            ("cxtp.max_connections", self.cxtp.max_connections),
            (
                "cxtp.max_connections_per_peer",
                self.cxtp.max_connections_per_peer,
            ),
            ("control.max_connections", self.control.max_connections),
            ("metrics.max_connections", self.metrics.max_connections),
        ] {
            if v == 0 {
                return Err(invalid(k, "must be > 0"));
            }
        }
        if self.cxtp.max_connections_per_peer > self.cxtp.max_connections {
            return Err(invalid(
                "cxtp.max_connections_per_peer",
                "must not exceed cxtp.max_connections",
            ));
        }
        if self.admission.max_outgoing >= 4095 {
            return Err(invalid(
                "admission.max_outgoing",
                "must be below 4095 (MIH TIDs)",
            ));
        }
        if !(4096..=1 << 30).contains(&self.cxtp.max_context_len) {
            return Err(invalid("cxtp.max_context_len", "must be 4096 to 2^30"));
        }
        // Reassembly counts its bookkeeping (received indices and ranges)
        // against max_buffered too: leave room for it beside one context.
        if self.cxtp.max_buffered < self.cxtp.max_context_len + (64 << 10) {
            return Err(invalid(
                "cxtp.max_buffered",
                "must be at least cxtp.max_context_len + 64 KiB",
            ));
        }
        self.validate_sessions()?;
        self.validate_schedule()?;
        if !(self.x2.pcap_speed >= 0.0 && self.x2.pcap_speed.is_finite()) {
            return Err(invalid("x2.pcap_speed", "must be >= 0"));
        }
        for (i, p) in self.peers.iter().enumerate() {
            if p.mihf_id.is_empty() || p.mihf_id.len() > 253 {
                return Err(invalid(
                    format!("peers[{i}].mihf_id"),
                    "must be 1 to 253 octets",
                ));
            }
            if self.peers[..i].iter().any(|q| q.mihf_id == p.mihf_id) {
                return Err(invalid(
                    format!("peers[{i}].mihf_id"),
                    format!("`{}` is listed twice", p.mihf_id),
                ));
            }
            if p.cxtp.ip().is_unspecified() || p.cxtp.port() == 0 {
                return Err(invalid(
                    format!("peers[{i}].cxtp"),
                    "needs an address and a port",
                ));
            }
            if let Some(j) = self.peers[..i]
                .iter()
                .position(|q| q.cxtp.ip() == p.cxtp.ip())
            {
                return Err(invalid(
                    format!("peers[{i}].cxtp"),
                    format!("IP already used by peers[{j}] (peers are told apart by address)"),
                ));
            }
            if p.cxtp.ip() == self.cxtp.listen.ip() {
                return Err(invalid(
                    format!("peers[{i}].cxtp"),
                    "is our own cxtp.listen address",
                ));
            }
        }
        self.trigger_config()
            .and_then(crate::x2ap::X2Trigger::new)
            .map_err(|e| invalid("neighbours / ues", e.to_string()))?;
        Ok(())
    }

    /// The X2 trigger's configuration.
    pub fn trigger_config(&self) -> Result<X2TriggerConfig, crate::x2ap::TableError> {
        Ok(X2TriggerConfig {
            max_pending: self.x2.max_pending,
            preparation_timeout_ms: self.x2.preparation_timeout_ms,
            completion_timeout_ms: self.x2.completion_timeout_ms,
            max_neighbours: self.x2.max_neighbours,
            max_ues: self.x2.max_ues,
            neighbours: self.neighbours.clone(),
            ues: self.ues.clone(),
        })
    }

    /// The API server's configuration.
    pub fn api_config(&self) -> ApiConfig {
        let mut a = ApiConfig::new(self.api.socket.clone());
        a.export_timeout = Duration::from_millis(self.api.export_timeout_ms);
        a.import_timeout = Duration::from_millis(self.api.import_timeout_ms);
        a.max_clients = self.api.max_clients;
        a.handshake_timeout = Duration::from_millis(self.api.handshake_timeout_ms);
        a.registration_timeout = Duration::from_millis(self.api.registration_timeout_ms);
        a.queue_capacity = self
            .api
            .queue_frames
            .unwrap_or(256 + 8 * (self.admission.max_incoming + self.admission.max_outgoing));
        a.limits = Limits {
            max_services: self.api.max_services,
            max_users: self.api.max_users,
            ..Limits::default()
        };
        a
    }

    /// The orchestrator's configuration.
    pub fn orchestrator_config(&self) -> OrchestratorConfig {
        let ms = Duration::from_millis;
        // Backstops a little beyond the API's own timeouts.
        let grace = ms(500);
        let mut segment = cxtp::segment::SegmentConfig {
            max_context_len: self.cxtp.max_context_len,
            max_buffered: self.cxtp.max_buffered,
            ..Default::default()
        };
        segment.timeout = ms(self.cxtp.transfer_timeout_ms);
        OrchestratorConfig {
            user_id: self.mihf.user_id.clone(),
            mih_timeout: ms(self.timers.mih_timeout_ms),
            export_timeout: ms(self.api.export_timeout_ms) + grace,
            import_timeout: ms(self.api.import_timeout_ms) + grace,
            context_timeout: ms(self.timers.context_timeout_ms),
            transfer_timeout: ms(self.cxtp.transfer_timeout_ms),
            complete_timeout: ms(self.timers.complete_timeout_ms),
            complete_retries: self.timers.complete_retries,
            complete_retry_interval: ms(self.timers.complete_retry_interval_ms),
            first_attempt: None,
            max_outcomes: OrchestratorConfig::default().max_outcomes,
            outcome_memory: OrchestratorConfig::default().outcome_memory,
            max_outgoing: self.admission.max_outgoing,
            max_incoming: self.admission.max_incoming,
            max_ues: self.admission.max_ues,
            max_peers: self.peers.len().max(1),
            segment,
        }
    }

    /// The CXTP transport's settings: our listen address, the peers' ports,
    /// and the bounds (only the peers' addresses may connect unless
    /// `cxtp.accept_any`).
    pub fn transport_config(&self) -> cxtp::transport::TransportConfig {
        use cxtp::transport::{PeerFilter, TransportConfig};
        TransportConfig {
            listen: self.cxtp.listen,
            peer_port: cxtp::transport::DEFAULT_PORT,
            peer_ports: self
                .peers
                .iter()
                .map(|p| (p.cxtp.ip(), p.cxtp.port()))
                .collect(),
            accept_from: if self.cxtp.accept_any {
                PeerFilter::any()
            } else {
                PeerFilter::only(self.peers.iter().map(|p| p.cxtp.ip()))
            },
            max_connections: self.cxtp.max_connections,
            max_connections_per_peer: self.cxtp.max_connections_per_peer,
            idle_timeout: Some(Duration::from_millis(self.cxtp.idle_timeout_ms)),
            ..TransportConfig::default()
        }
    }

    /// The scheduler's configuration.
    pub fn scheduler_config(&self) -> crate::orchestrator::SchedulerConfig {
        let s = &self.schedule;
        crate::orchestrator::SchedulerConfig {
            max_queued: s.max_queued,
            queue_deadline: Duration::from_millis(s.queue_deadline_ms),
            retry_initial: Duration::from_millis(s.retry_initial_ms),
            retry_factor: s.retry_factor,
            retry_max: Duration::from_millis(s.retry_max_ms),
            max_attempts: s.max_attempts,
            jitter_percent: s.retry_jitter_percent,
            seed: 0,
        }
    }

    /// The peers as (MIHF ID, CXTP address).
    pub fn peer_list(&self) -> Vec<(String, IpAddr)> {
        self.peers
            .iter()
            .map(|p| (p.mihf_id.clone(), p.cxtp.ip()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = "[api]\nsocket = \"/tmp/x.sock\"\n";

    fn err(extra: &str) -> String {
        Config::parse(&format!("{MIN}{extra}"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn the_api_queue_grows_with_admission() {
        let q = |extra: &str| {
            Config::parse(&format!("{MIN}{extra}"))
                .unwrap()
                .api_config()
                .queue_capacity
        };
        assert_eq!(q(""), 256 + 8 * 128);
        assert_eq!(
            q("[admission]\nmax_incoming = 8\nmax_outgoing = 4\n"),
            256 + 8 * 12
        );
        let c = Config::parse("[api]\nsocket = \"/tmp/x.sock\"\nqueue_frames = 10\n").unwrap();
        assert_eq!(c.api_config().queue_capacity, 10);
    }

    #[test]
    fn defaults() {
        let c = Config::parse(MIN).unwrap();
        assert_eq!(c.mihf.sap.port(), 1025);
        assert_eq!(c.cxtp.listen.port(), 5091);
        assert_eq!(c.sessions.mode, SessionMode::None);
        let o = c.orchestrator_config();
        assert_eq!(o.transfer_timeout, Duration::from_secs(4));
        assert_eq!(o.import_timeout, Duration::from_millis(2500));
        // Listener bounds.
        assert_eq!(
            (c.control.max_connections, c.control.request_timeout_ms),
            (16, 5000)
        );
        assert_eq!(
            (c.metrics.max_connections, c.metrics.request_timeout_ms),
            (16, 5000)
        );
        let a = c.api_config();
        assert_eq!(a.handshake_timeout, Duration::from_secs(5));
        assert_eq!(a.registration_timeout, Duration::from_secs(30));
        let t = c.transport_config();
        assert_eq!((t.max_connections, t.max_connections_per_peer), (64, 4));
        assert_eq!(t.idle_timeout, Some(Duration::from_secs(120)));
        // Nobody may connect without [[peers]].
        assert!(!t.accept_from.allows("192.0.2.2".parse().unwrap()));
    }

    #[test]
    fn cxtp_accepts_the_peers_only_unless_told_otherwise() {
        let peers = "[[peers]]\nmihf_id = \"b\"\ncxtp = \"192.0.2.2:5092\"\n";
        let c = Config::parse(&format!("{MIN}{peers}")).unwrap();
        let t = c.transport_config();
        assert!(t.accept_from.allows("192.0.2.2".parse().unwrap()));
        assert!(t.accept_from.allows("::ffff:192.0.2.2".parse().unwrap()));
        assert!(!t.accept_from.allows("192.0.2.3".parse().unwrap()));
        assert_eq!(t.peer_ports.get(&"192.0.2.2".parse().unwrap()), Some(&5092));
        let c = Config::parse(&format!("{MIN}[cxtp]\naccept_any = true\n{peers}")).unwrap();
        assert!(c
            .transport_config()
            .accept_from
            .allows("192.0.2.3".parse().unwrap()));
        let c = Config::parse(&format!(
            "{MIN}[cxtp]\nmax_connections = 8\nmax_connections_per_peer = 2\nidle_timeout_ms = 9000\n"
        ))
        .unwrap();
        let t = c.transport_config();
        assert_eq!((t.max_connections, t.max_connections_per_peer), (8, 2));
        assert_eq!(t.idle_timeout, Some(Duration::from_secs(9)));
    }

    #[test]
    fn listener_bounds_are_checked() {
        for (extra, key) in [
            ("[cxtp]\nmax_connections = 0", "`cxtp.max_connections`"),
            (
                "[cxtp]\nmax_connections = 2\nmax_connections_per_peer = 3",
                "`cxtp.max_connections_per_peer`",
            ),
            ("[cxtp]\nidle_timeout_ms = 50", "`cxtp.idle_timeout_ms`"),
            ("[cxtp]\nidle_timeout_ms = 4000", "`cxtp.idle_timeout_ms`"),
            (
                "[control]\nmax_connections = 0",
                "`control.max_connections`",
            ),
            (
                "[control]\nrequest_timeout_ms = 0",
                "`control.request_timeout_ms`",
            ),
            (
                "[metrics]\nmax_connections = 0",
                "`metrics.max_connections`",
            ),
            (
                "[metrics]\nrequest_timeout_ms = 0",
                "`metrics.request_timeout_ms`",
            ),
            (
                "[api]\nhandshake_timeout_ms = 0",
                "`api.handshake_timeout_ms`",
            ),
            (
                "[api]\nregistration_timeout_ms = 700000",
                "`api.registration_timeout_ms`",
            ),
            ("[control]\nmax_conections = 3", "max_conections"),
        ] {
            let text = if extra.starts_with("[api]") {
                format!("{MIN}{}", &extra["[api]\n".len()..])
            } else {
                format!("{MIN}{extra}")
            };
            let e = Config::parse(&text).unwrap_err().to_string();
            assert!(e.contains(key), "{extra}: {e}");
        }
        let c = Config::parse(&format!(
            "{MIN}registration_timeout_ms = 1000\n[control]\nmax_connections = 2\nrequest_timeout_ms = 300\n"
        ))
        .unwrap();
        assert_eq!(c.api.registration_timeout_ms, 1000);
        assert_eq!(
            (c.control.max_connections, c.control.request_timeout_ms),
            (2, 300)
        );
    }

    #[test]
    fn errors_name_the_key() {
        assert!(Config::parse("").unwrap_err().to_string().contains("api"));
        assert!(err("[mihf]\nsap = \"10.0.0.1:1025\"").contains("`mihf.sap`"));
        assert!(err("[mihf]\nsapp = \"127.0.0.1:1\"").contains("sapp"));
        assert!(err("[cxtp]\ntransfer_timeout_ms = 1000").contains("`cxtp.transfer_timeout_ms`"));
        assert!(err("[timers]\nmih_timeout_ms = 0").contains("`timers.mih_timeout_ms`"));
        assert!(err("[sessions]\nmode = \"tcp\"").contains("mode"));
        // tcp_repair needs the hand-off socket; hooks only in that mode.
        let e = err("[sessions]\nmode = \"tcp_repair\"");
        assert!(e.contains("sessions.handoff_socket"), "{e}");
        let e = err("[sessions]\nmode = \"memory\"\n[sessions.hold]\ncommand = [\"true\"]");
        assert!(e.contains("sessions.hold"), "{e}");
        let base = "[sessions]\nmode = \"tcp_repair\"\nhandoff_socket = \"/run/h.sock\"\n";
        let e = err(&format!("{base}[sessions.hold]\nroute = \"{{ue}}/32\""));
        assert!(e.contains("sessions.hold.via"), "{e}");
        let e = err(&format!(
            "{base}[sessions.hold]\nroute = \"{{ue}}/40\"\nvia = \"blackhole\""
        ));
        assert!(e.contains("sessions.hold.route"), "{e}");
        let e = err(&format!(
            "{base}[sessions.hold]\ncommand = [\"x\"]\nroute = \"{{ue}}/32\""
        ));
        assert!(e.contains("not both"), "{e}");
        let e = err(&format!(
            "{base}[sessions.release]\ncommand = [\"x\"]\nnetns = \"ue\""
        ));
        assert!(e.contains("sessions.release"), "{e}");
        let e = err(&format!(
            "{base}[sessions.path_switch]\nroute = \"10.0.0.1\"\nvia = \"nowhere\""
        ));
        assert!(e.contains("sessions.path_switch.via"), "{e}");
        let e = err(&format!(
            "{base}[sessions.release]\nroute = \"{{ue}}/32\"\nvia = \"blackhole\"\ndelete = true"
        ));
        assert!(e.contains("delete"), "{e}");
        let ok = format!(
            "{MIN}{base}[sessions.hold]\nnetns = \"ue\"\nroute = \"10.99.0.1/32\"\nvia = \"blackhole\"\n\
             [sessions.path_switch]\nnetns = \"ue\"\nroute = \"10.99.0.1/32\"\nvia = \"10.231.2.1\"\nsrc = \"10.77.0.2\"\n\
             [sessions.release]\ncommand = [\"true\", \"{{ue}}\"]\n"
        );
        let c = Config::parse(&ok).unwrap();
        assert_eq!(c.sessions.mode, SessionMode::TcpRepair);
        // The journal sits next to the hand-off socket unless told.
        assert_eq!(
            c.sessions.journal_dir(),
            Some(PathBuf::from("/run/h.journal"))
        );
        assert_eq!(
            (c.sessions.journal_max_entries, c.sessions.journal_max_bytes),
            (1024, 256 << 20)
        );
        assert_eq!(c.sessions.recovery_timeout_ms, 30_000);
        let c = Config::parse(&format!(
            "{MIN}{base}journal_dir = \"/var/lib/mih-user/journal\"\njournal_max_entries = 8\n\
             journal_max_bytes = 1048576\nrecovery_timeout_ms = 5000\n"
        ))
        .unwrap();
        assert_eq!(
            c.sessions.journal_dir(),
            Some(PathBuf::from("/var/lib/mih-user/journal"))
        );
        for (bad, key) in [
            ("journal_max_entries = 0", "`sessions.journal_max_entries`"),
            ("journal_max_bytes = 10", "`sessions.journal_max_bytes`"),
            ("recovery_timeout_ms = 10", "`sessions.recovery_timeout_ms`"),
            ("journal_dir = \"\"", "`sessions.journal_dir`"),
        ] {
            let e = err(&format!("{base}{bad}"));
            assert!(e.contains(key), "{bad}: {e}");
        }
        let e = err("[sessions]\nmode = \"memory\"\njournal_dir = \"/tmp/j\"");
        assert!(e.contains("sessions.journal_dir"), "{e}");
        // One table per UE.
        let e = err(&format!(
            "{base}[sessions.path_switch]\nroute = \"10.99.0.1/32\"\nvia = \"10.0.0.1\"\ntable_per_ue = \"10.77.0.0/16\""
        ));
        assert!(e.contains("sessions.path_switch.table"), "{e}");
        let e = err(&format!(
            "{base}[sessions.path_switch]\nroute = \"10.99.0.1/32\"\nvia = \"10.0.0.1\"\ntable = 4294967000\ntable_per_ue = \"10.77.0.0/16\""
        ));
        assert!(e.contains("table_per_ue"), "{e}");
        let e = err(&format!(
            "{base}[sessions.release]\ncommand = [\"x\"]\ntable = 5"
        ));
        assert!(e.contains("sessions.release"), "{e}");
        let h = HookConfig {
            table: Some(1000),
            table_per_ue: Some("10.77.0.0/16".into()),
            ..serde_json::from_str(r#"{"route": "10.99.0.1/32", "via": "blackhole"}"#).unwrap()
        };
        assert_eq!(h.table_for("10.77.0.0".parse().unwrap()), Ok(1000));
        assert_eq!(
            h.table_for("10.77.3.7".parse().unwrap()),
            Ok(1000 + 3 * 256 + 7)
        );
        assert!(h
            .table_for("10.78.0.1".parse().unwrap())
            .unwrap_err()
            .contains("outside"));
        let main = HookConfig {
            table: None,
            table_per_ue: None,
            ..h.clone()
        };
        assert_eq!(main.table_for("10.78.0.1".parse().unwrap()), Ok(254));
        // A hook serializes (into the journal) and reads back.
        let c = Config::parse(&ok).unwrap();
        let hold = c.sessions.hold.clone().unwrap();
        let text = serde_json::to_string(&hold).unwrap();
        assert_eq!(serde_json::from_str::<HookConfig>(&text).unwrap(), hold);
        assert_eq!(c.sessions.hold.unwrap().via.as_deref(), Some("blackhole"));
        assert!(err("[x2]\nudp = \"nonsense\"").contains("udp"));
        assert!(err("[[peers]]\nmihf_id = \"b\"\ncxtp = \"127.0.0.2:5091\"\n[[peers]]\nmihf_id = \"c\"\ncxtp = \"127.0.0.2:5092\"").contains("`peers[1].cxtp`"));
        assert!(err("[[peers]]\nmihf_id = \"b\"\ncxtp = \"127.0.0.2:5091\"\n[[peers]]\nmihf_id = \"b\"\ncxtp = \"127.0.0.3:5091\"").contains("`peers[1].mihf_id`"));
        assert!(err("[[neighbours]]\nplmn = \"001-01\"\nmihf_id = \"b\"").contains("neighbours"));
        assert!(err("[admission]\nmax_outgoing = 0").contains("`admission.max_outgoing`"));
    }

    #[test]
    fn schedule_keys() {
        let c = Config::parse(MIN).unwrap();
        assert_eq!(
            c.scheduler_config(),
            crate::orchestrator::SchedulerConfig::default()
        );
        let c = Config::parse(&format!(
            "{MIN}[schedule]\nmax_queued = 8\nqueue_deadline_ms = 3000\nretry_initial_ms = 100\n\
             retry_factor = 3\nretry_max_ms = 900\nmax_attempts = 1\nretry_jitter_percent = 0\n"
        ))
        .unwrap();
        let s = c.scheduler_config();
        assert_eq!((s.max_queued, s.retry_factor, s.max_attempts), (8, 3, 1));
        assert_eq!(s.queue_deadline, Duration::from_secs(3));
        assert_eq!(s.retry_max, Duration::from_millis(900));
        for (bad, key) in [
            ("max_queued = 0", "`schedule.max_queued`"),
            ("queue_deadline_ms = 0", "`schedule.queue_deadline_ms`"),
            ("retry_initial_ms = 700000", "`schedule.retry_initial_ms`"),
            ("retry_max_ms = 100", "`schedule.retry_max_ms`"),
            ("retry_factor = 0", "`schedule.retry_factor`"),
            ("max_attempts = 0", "`schedule.max_attempts`"),
            (
                "retry_jitter_percent = 101",
                "`schedule.retry_jitter_percent`",
            ),
            ("max_queue = 1", "max_queue"),
        ] {
            let e = err(&format!("[schedule]\n{bad}"));
            assert!(e.contains(key), "{bad}: {e}");
        }
    }
}
