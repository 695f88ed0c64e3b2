//! The MIHF node, sans-IO: local MIH-Users on the MIH_SAP, the peer table,
//! the management services, and the routing of requests, responses and
//! events between users and peer MIHFs (through the transaction [`Engine`]).
//!
//! Routing:
//! * a user's `.request` for a peer MIHF → a remote `.request`; its
//!   `.response` → a `.confirm` to the user with the user's TID;
//! * a peer's `.request` for a command → an `.indication` to the user that
//!   declared the command; that user's `.response` → the remote `.response`;
//! * MIH_Capability_Discover, MIH_Register, MIH_DeRegister,
//!   MIH_Event_Subscribe and MIH_Event_Unsubscribe addressed to this MIHF are
//!   served here; events published by users go to every subscriber.
//! * Whatever cannot be served (unknown destination, no handling user, no
//!   ACK, timeout, unsupported message) is answered with a failure STATUS
//!   (see [`crate::proto::status`]); a requester is never left without answer.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use thiserror::Error;

use super::peers::{IpRange, PeerTable, RateLimit};
use super::sap::{self, Registration, SapError, SapMessage};
use super::status::{failure_message, status_of};
use super::transaction::{Engine, EngineConfig, EngineStats, Event, Inbound, RxError, SendError};
use super::{canon, Endpoint, Token, Transmit};
use crate::wire::message::*;
use crate::wire::{
    Body, CommandList, EventList, Header, IsQueryTypeList, LinkId, Message, Mid, MihfId, Opcode,
    ServiceId, Status, TransportList,
};

/// A peer MIHF from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    pub id: MihfId,
    pub udp: Option<SocketAddr>,
    pub tcp: Option<SocketAddr>,
    /// Send over TCP when a TCP address is known (otherwise UDP).
    pub prefer_tcp: bool,
}

/// Configuration of a [`Node`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    pub engine: EngineConfig,
    pub peers: Vec<PeerConfig>,
    /// Accept frames from MIHF IDs that are not in the peer table (their
    /// senders enter the learned table, as with `learn_peers`).
    pub allow_unknown_peers: bool,
    /// Add the sender of an MIH_Capability_Discover.request from an unknown
    /// MIHF to the learned peer table (as ODTONE does), for peers that are
    /// not configured.
    pub learn_peers: bool,
    /// Drop frames whose source IP is not an address of the peer.
    pub check_peer_address: bool,
    /// Configured peers.
    pub max_peers: usize,
    /// Learned peers, in their own table: the least recently heard one
    /// makes room for a new one; configured peers are never evicted.
    pub max_learned_peers: usize,
    /// New learned peers per second (a token bucket with a burst of as
    /// many); the discoveries beyond it are dropped and counted.
    pub learn_rate: u32,
    /// Source addresses a peer may be learned from; empty = any.
    pub learn_from: Vec<IpRange>,
    /// Registered MIH-Users; a registration beyond it is refused.
    pub max_users: usize,
    pub max_subscriptions: usize,
    /// Event subscriptions of one subscriber (a peer MIHF or a local user).
    pub max_subscriptions_per_subscriber: usize,
    /// Shortest time between two [`NodeEvent::Summary`] reports.
    pub summary_interval: Duration,
    /// Requests waiting for a confirm plus indications waiting for a user's
    /// response.
    pub max_pending: usize,
    /// Time a user has to answer an indication before the peer gets a
    /// failure response.
    pub user_response_timeout: Duration,
    /// Transports advertised in every MIH_Capability_Discover this MIHF
    /// sends (its own and its users') or answers: the ones it listens on.
    pub transports: TransportList,
    /// VALID_TIME_INTERVAL (s) granted in MIH_Register.response.
    pub registration_lifetime: u32,
    /// Send MIH_Capability_Discover.request to every configured peer at
    /// start and then at this interval (None: never).
    pub discovery_interval: Option<Duration>,
}

impl NodeConfig {
    pub fn new(own_id: MihfId) -> NodeConfig {
        NodeConfig {
            engine: EngineConfig::new(own_id),
            peers: Vec::new(),
            allow_unknown_peers: false,
            learn_peers: false,
            check_peer_address: true,
            max_peers: 1024,
            max_learned_peers: 64,
            learn_rate: 10,
            learn_from: Vec::new(),
            max_users: 64,
            max_subscriptions: 4096,
            max_subscriptions_per_subscriber: 64,
            summary_interval: Duration::from_secs(10),
            max_pending: 16_384,
            user_response_timeout: Duration::from_secs(10),
            transports: TransportList::UDP | TransportList::TCP,
            registration_lifetime: 3600,
            discovery_interval: None,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        self.engine.validate()?;
        if self.peers.len() > self.max_peers {
            return Err("peers: more peers than max_peers".into());
        }
        for (i, p) in self.peers.iter().enumerate() {
            if p.id.is_broadcast() || p.id == self.engine.own_id {
                return Err(format!(
                    "peers[{i}].id: must be non-empty and not our own ID"
                ));
            }
            if p.udp.is_none() && p.tcp.is_none() {
                return Err(format!("peers[{i}]: needs a udp or a tcp address"));
            }
            if self.peers[..i].iter().any(|q| q.id == p.id) {
                return Err(format!("peers[{i}].id: {} is listed twice", p.id));
            }
        }
        for (name, v) in [
            ("max_users", self.max_users),
            ("max_peers", self.max_peers),
            ("max_learned_peers", self.max_learned_peers),
            ("learn_rate", self.learn_rate as usize),
            ("max_subscriptions", self.max_subscriptions),
            (
                "max_subscriptions_per_subscriber",
                self.max_subscriptions_per_subscriber,
            ),
            ("max_pending", self.max_pending),
        ] {
            if v == 0 {
                return Err(format!("{name}: must be > 0"));
            }
        }
        if self.user_response_timeout.is_zero() {
            return Err("user_response_timeout: must be > 0".into());
        }
        if self.summary_interval.is_zero() {
            return Err("summary_interval: must be > 0".into());
        }
        Ok(())
    }
}

/// Capabilities a peer advertised in MIH_Capability_Discover.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub events: Option<EventList>,
    pub commands: Option<CommandList>,
    pub queries: Option<IsQueryTypeList>,
    pub transports: Option<TransportList>,
}

impl Capabilities {
    /// Capabilities as a peer advertised them, with bitmaps that use the
    /// other bit order (bit 0 = most significant bit of the first octet, as
    /// Wireshark reads them) turned around: see [`lenient_events`].
    pub fn lenient(
        events: Option<EventList>,
        commands: Option<CommandList>,
        queries: Option<IsQueryTypeList>,
        transports: Option<TransportList>,
    ) -> Capabilities {
        Capabilities {
            events: events.map(lenient_events),
            commands: commands.map(lenient_commands),
            queries,
            transports: transports.map(lenient_transports),
        }
    }
}

/// Bits IEEE 802.21-2008 (and ODTONE) define in MIH_EVT_LIST (0..=8).
const EVENT_BITS: u32 = 0x1ff;
/// Bits defined in MIH_CMD_LIST (0..=4).
const COMMAND_BITS: u32 = 0x1f;
/// Bits defined in TRANSPORT_LIST (0 UDP, 1 TCP).
const TRANSPORT_BITS: u16 = 0x3;

/// Lenient decoding of MIH_EVT_LIST: we send bit i as the value 2^i of the
/// big-endian integer (the standard's and ODTONE's order). A bitmap with no
/// defined bit set in that order but some in the reversed order (bit 0 = the
/// most significant bit, Wireshark's reading) is taken as reversed.
pub fn lenient_events(e: EventList) -> EventList {
    if e.0 & EVENT_BITS == 0 && e.0.reverse_bits() & EVENT_BITS != 0 {
        EventList(e.0.reverse_bits())
    } else {
        e
    }
}

/// Lenient decoding of MIH_CMD_LIST (see [`lenient_events`]).
pub fn lenient_commands(c: CommandList) -> CommandList {
    if c.0 & COMMAND_BITS == 0 && c.0.reverse_bits() & COMMAND_BITS != 0 {
        CommandList(c.0.reverse_bits())
    } else {
        c
    }
}

/// Lenient decoding of TRANSPORT_LIST (see [`lenient_events`]).
pub fn lenient_transports(t: TransportList) -> TransportList {
    if t.0 & TRANSPORT_BITS == 0 && t.0.reverse_bits() & TRANSPORT_BITS != 0 {
        TransportList(t.0.reverse_bits())
    } else {
        t
    }
}

/// One entry of the peer table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub id: MihfId,
    pub udp: Option<SocketAddr>,
    pub tcp: Option<SocketAddr>,
    pub prefer_tcp: bool,
    /// From the configuration (never evicted) or learned.
    pub configured: bool,
    /// Where its last frame came from.
    pub last_from: Option<Endpoint>,
    pub capabilities: Option<Capabilities>,
    /// When it registered with us (MIH_Register), until this instant.
    pub registered_until: Option<Instant>,
}

impl Peer {
    fn matches_ip(&self, ip: IpAddr) -> bool {
        let same = |a: &Option<SocketAddr>| a.is_some_and(|a| canon(a.ip()) == canon(ip));
        same(&self.udp) || same(&self.tcp)
    }

    /// The endpoint requests to this peer are sent to.
    pub fn endpoint(&self) -> Option<Endpoint> {
        let peer_tcp = self
            .capabilities
            .as_ref()
            .and_then(|c| c.transports)
            .is_none_or(|t| t.contains(TransportList::TCP));
        match (self.udp, self.tcp) {
            (_, Some(t)) if self.prefer_tcp && peer_tcp => Some(Endpoint::Tcp(t)),
            (Some(u), _) => Some(Endpoint::Udp(u)),
            (None, Some(t)) => Some(Endpoint::Tcp(t)),
            (None, None) => self.last_from,
        }
    }
}

fn configured_peer(p: PeerConfig) -> Peer {
    Peer {
        id: p.id,
        udp: p.udp,
        tcp: p.tcp,
        prefer_tcp: p.prefer_tcp,
        configured: true,
        last_from: None,
        capabilities: None,
        registered_until: None,
    }
}

/// A local MIH-User registered through the SAP (User_Register.indication).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub addr: SocketAddr,
    pub id: MihfId,
    pub commands: CommandList,
    pub events: EventList,
    pub queries: IsQueryTypeList,
    pub last_active: Instant,
}

/// Who receives an event.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Subscriber {
    Peer(MihfId),
    User(SocketAddr),
}

#[derive(Debug, Clone)]
struct Subscription {
    subscriber: Subscriber,
    /// The link, or None for any link.
    link: Option<LinkId>,
    events: EventList,
}

/// A user's subscription to a peer's events (confirmed by the peer).
#[derive(Debug, Clone)]
struct RemoteSubscription {
    user: SocketAddr,
    peer: MihfId,
    link: Option<LinkId>,
    events: EventList,
}

/// A user's request sent on to a peer, waiting for the response.
#[derive(Debug, Clone)]
struct UserRequest {
    user: SocketAddr,
    user_id: MihfId,
    /// The user's request as received (its TID is the user's TID).
    request: Message,
    peer: MihfId,
}

/// Where the request behind an indication given to a user came from.
#[derive(Debug, Clone)]
enum Origin {
    Peer { inbound: Inbound, request: Message },
    User { user: SocketAddr, request: Message },
}

#[derive(Debug, Clone)]
struct Handling {
    origin: Origin,
    deadline: Instant,
}

/// Direction of a counted message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    FromPeer,
    ToPeer,
    FromUser,
    ToUser,
}

impl Direction {
    pub fn label(self) -> &'static str {
        match self {
            Direction::FromPeer => "peer_in",
            Direction::ToPeer => "peer_out",
            Direction::FromUser => "sap_in",
            Direction::ToUser => "sap_out",
        }
    }
}

/// Why a frame was dropped by the node (the engine's reasons included).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NodeError {
    #[error(transparent)]
    Rx(#[from] RxError),
    #[error("SAP: {0}")]
    Sap(#[from] SapError),
    #[error("frame from unknown MIHF {0}")]
    UnknownPeer(MihfId),
    #[error("frame from {0}, an address of no peer")]
    UnknownSource(SocketAddr),
    #[error("unknown MIHF {id} at {from} not learned: address outside learn_from")]
    OutsideLearnFrom { id: MihfId, from: SocketAddr },
    #[error("unknown MIHF {0} not learned: learning rate limit")]
    LearnRateLimited(MihfId),
    #[error("frame from {id} at {from}, which is not one of its addresses")]
    AddressMismatch { id: MihfId, from: SocketAddr },
    #[error("{0} from a peer is not served")]
    Unsupported(String),
    #[error("no pending request for user {user} TID {tid}")]
    NoPending { user: SocketAddr, tid: u16 },
    #[error("user table full ({0} registered users)")]
    UserTableFull(usize),
}

impl NodeError {
    /// The frame was refused because its sender is not (or may not become)
    /// a peer: unknown source address or MIHF ID, an address that is not
    /// the peer's, or learning refused.
    pub fn is_unknown_sender(&self) -> bool {
        matches!(
            self,
            NodeError::UnknownPeer(_)
                | NodeError::UnknownSource(_)
                | NodeError::AddressMismatch { .. }
                | NodeError::OutsideLearnFrom { .. }
                | NodeError::LearnRateLimited(_)
        )
    }
}

/// Counters of the node, next to [`EngineStats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeStats {
    pub engine: EngineStats,
    pub unknown_peer: u64,
    pub address_mismatch: u64,
    pub sap_errors: u64,
    pub unsupported: u64,
    pub no_handler: u64,
    pub no_route: u64,
    pub user_timeouts: u64,
    pub pending_full: u64,
    /// Frames refused before decoding: their source IP is no peer's.
    pub unknown_source: u64,
    /// Peers added to the learned table.
    pub peers_learned: u64,
    /// Learned peers removed to make room (least recently heard first).
    pub learned_evicted: u64,
    /// Unknown MIHFs not learned because of `learn_rate`.
    pub learn_rate_limited: u64,
    /// Unknown MIHFs not learned because of `learn_from`.
    pub learn_outside_range: u64,
    /// User registrations refused at `max_users`.
    pub users_refused: u64,
    /// Registrations at `max_users` of a user ID already registered from
    /// another address (the user restarted): the old address is forgotten.
    pub users_replaced: u64,
    /// Subscriptions refused: at `max_subscriptions`, at
    /// `max_subscriptions_per_subscriber`, or from a SAP sender that did not
    /// register.
    pub subscriptions_refused: u64,
    /// Events the driver did not poll before the queue filled.
    pub events_dropped: u64,
    /// Registered users.
    pub users: usize,
    /// Configured and learned peers.
    pub peers: usize,
    pub learned_peers: usize,
    pub subscriptions: usize,
    pub pending: usize,
    /// Frames per (direction, MID, pure ACK).
    pub messages: BTreeMap<(Direction, u16, bool), u64>,
}

/// Something the driver may log or measure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeEvent {
    /// A remote request completed (response received).
    Completed {
        mid: Mid,
        rtt: Duration,
        status: Option<Status>,
    },
    /// A remote request failed (no ACK or timeout).
    Failed {
        mid: Mid,
        reason: super::transaction::FailReason,
    },
    /// An unknown MIHF entered the learned table (`evicted`: the least
    /// recently heard learned peer that made room).
    PeerLearned {
        id: MihfId,
        from: Endpoint,
        evicted: Option<MihfId>,
    },
    /// A user registered from a new address (`previous`: the address of
    /// the entry of the same user ID it took over, at `max_users`). A
    /// registration that only refreshes a user is not reported.
    UserRegistered {
        id: MihfId,
        addr: SocketAddr,
        previous: Option<SocketAddr>,
    },
    UserDeregistered {
        id: MihfId,
        addr: SocketAddr,
    },
    /// The first registration refused in a summary interval because the
    /// user table is full; later ones are only counted in the summary.
    UserRefused {
        id: MihfId,
        addr: SocketAddr,
        max: usize,
    },
    /// What happened to learned peers and refused users since the first
    /// of these was counted, at most once per `summary_interval`.
    Summary(Summary),
}

/// Counts of one summary interval (see [`NodeEvent::Summary`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// From the first counted item to the report.
    pub interval: Duration,
    /// Peers added to the learned table.
    pub learned: u64,
    /// Learned peers removed to make room for newer ones.
    pub evicted: u64,
    /// Unknown MIHFs not learned because of the learning rate limit.
    pub rate_limited: u64,
    /// Unknown MIHFs not learned because their address is outside
    /// `learn_from`.
    pub outside_learn_from: u64,
    /// User registrations refused because the user table was full.
    pub users_refused: u64,
}

const MAX_COUNTER_KEYS: usize = 1024;

/// The MIHF. See the module documentation.
#[derive(Debug)]
pub struct Node {
    cfg: NodeConfig,
    engine: Engine,
    peers: PeerTable,
    learn_limit: RateLimit,
    /// The current summary interval: its start and counts.
    summary: Option<(Instant, Summary)>,
    /// Registered users only: a sender that did not register is served
    /// (its confirm goes to the address it sent from) but not remembered.
    users: HashMap<SocketAddr, User>,
    subscriptions: Vec<Subscription>,
    remote_subs: Vec<RemoteSubscription>,
    user_requests: HashMap<Token, UserRequest>,
    handling: HashMap<(SocketAddr, u16), Handling>,
    handling_timers: BTreeMap<(Instant, SocketAddr, u16), ()>,
    next_sap_tid: u16,
    next_discovery: Option<Instant>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<NodeEvent>,
    stats: NodeStats,
}

impl Node {
    pub fn new(cfg: NodeConfig, now: Instant) -> Node {
        let engine = Engine::new(cfg.engine.clone());
        let mut peers = PeerTable::new(cfg.max_peers, cfg.max_learned_peers);
        for p in &cfg.peers {
            // Validated configurations fit (NodeConfig::validate).
            let _ = peers.configure(configured_peer(p.clone()));
        }
        let next_discovery = cfg.discovery_interval.map(|_| now);
        let learn_limit = RateLimit::new(cfg.learn_rate);
        Node {
            cfg,
            engine,
            peers,
            learn_limit,
            summary: None,
            users: HashMap::new(),
            subscriptions: Vec::new(),
            remote_subs: Vec::new(),
            user_requests: HashMap::new(),
            handling: HashMap::new(),
            handling_timers: BTreeMap::new(),
            next_sap_tid: 1,
            next_discovery,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: NodeStats::default(),
        }
    }

    pub fn own_id(&self) -> &MihfId {
        &self.cfg.engine.own_id
    }

    /// Add (or replace) a configured peer at run time.
    pub fn add_peer(&mut self, p: PeerConfig) -> Result<(), String> {
        if p.id.is_broadcast() || &p.id == self.own_id() {
            return Err("peer id must be non-empty and not our own ID".into());
        }
        if p.udp.is_none() && p.tcp.is_none() {
            return Err("peer needs a udp or a tcp address".into());
        }
        self.peers
            .configure(configured_peer(p))
            .map_err(String::from)
    }
    pub fn config(&self) -> &NodeConfig {
        &self.cfg
    }
    /// Every peer, configured ones first.
    pub fn peers(&self) -> impl Iterator<Item = &Peer> {
        self.peers.iter()
    }
    /// Learned peers, least recently heard first (the next to be evicted
    /// first).
    pub fn learned_peers(&self) -> impl Iterator<Item = &Peer> {
        self.peers.learned_by_age()
    }
    /// True when a frame or TCP connection from `ip` could be admitted:
    /// it is an address of a peer, or the address checks are off, or an
    /// unknown MIHF may be learned from it (`learn_peers` or
    /// `allow_unknown_peers`, within `learn_from`). The daemon refuses TCP
    /// connections from other addresses before reading from them.
    pub fn accepts_source(&self, ip: IpAddr) -> bool {
        !self.cfg.check_peer_address
            || self.peers.knows_ip(ip)
            || ((self.cfg.learn_peers || self.cfg.allow_unknown_peers)
                && self.learn_from_allows(ip))
    }
    fn learn_from_allows(&self, ip: IpAddr) -> bool {
        self.cfg.learn_from.is_empty() || self.cfg.learn_from.iter().any(|r| r.contains(ip))
    }
    pub fn peer(&self, id: &MihfId) -> Option<&Peer> {
        self.peers.get(id)
    }
    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }
    pub fn stats(&self) -> NodeStats {
        let mut s = self.stats.clone();
        s.engine = self.engine.stats();
        s.users = self.users.len();
        s.peers = self.peers.len();
        s.learned_peers = self.peers.learned_len();
        s.subscriptions = self.subscriptions.len() + self.remote_subs.len();
        s.pending = self.user_requests.len() + self.handling.len();
        s
    }
    /// Sizes of the bounded tables (for tests and metrics).
    pub fn table_sizes(&self) -> TableSizes {
        let (out, inc) = self.engine.open_transactions();
        let (rm, rb) = self.engine.reassembly_usage();
        TableSizes {
            source_transactions: out,
            destination_transactions: inc,
            reassembly_messages: rm,
            reassembly_bytes: rb,
            users: self.users.len(),
            peers: self.peers.len(),
            learned_peers: self.peers.learned_len(),
            subscriptions: self.subscriptions.len() + self.remote_subs.len(),
            pending: self.user_requests.len() + self.handling.len(),
        }
    }

    // ------------------------------------------------------------------ outputs

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if let Some(t) = self.transmits.pop_front() {
            return Some(t);
        }
        let t = self.engine.poll_transmit()?;
        if let Ok(h) = Header::parse(&t.payload) {
            if !h.is_fragment() || h.frag_no == 0 {
                let ack = h.ack_rsp && is_pure_ack(&t.payload);
                self.count(Direction::ToPeer, h.mid, ack);
            }
        }
        Some(t)
    }

    pub fn poll_event(&mut self) -> Option<NodeEvent> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.engine.poll_timeout(),
            self.handling_timers.keys().next().map(|k| k.0),
            self.next_discovery,
            self.summary.map(|(t, _)| t + self.cfg.summary_interval),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn count(&mut self, dir: Direction, mid: Mid, ack: bool) {
        let key = (dir, mid.0, ack);
        if let Some(c) = self.stats.messages.get_mut(&key) {
            *c += 1;
        } else if self.stats.messages.len() < MAX_COUNTER_KEYS {
            self.stats.messages.insert(key, 1);
        } else {
            *self.stats.messages.entry((dir, 0xffff, false)).or_insert(0) += 1;
        }
    }

    fn send_to_user(&mut self, user: SocketAddr, msg: &Message) {
        let Ok(bytes) = msg.to_bytes() else { return };
        if self.transmits.len() >= self.cfg.engine.max_queue {
            self.stats.engine.queue_overflow += 1;
            return;
        }
        self.count(Direction::ToUser, msg.header.mid, false);
        self.transmits.push_back(Transmit {
            to: Endpoint::Sap(user),
            payload: bytes,
        });
    }

    fn event(&mut self, e: NodeEvent) {
        if self.events.len() < self.cfg.engine.max_queue {
            self.events.push_back(e);
        } else {
            self.stats.events_dropped += 1;
        }
    }

    /// Count into the current summary interval (which starts now if none
    /// is open). Returns the counts before this one.
    fn summarize(&mut self, now: Instant, f: impl FnOnce(&mut Summary)) -> Summary {
        let (_, sum) = self.summary.get_or_insert((now, Summary::default()));
        let before = *sum;
        f(sum);
        before
    }

    // ------------------------------------------------------------------- input

    /// One frame from a peer (UDP/TCP) or a user (SAP).
    pub fn handle_frame(
        &mut self,
        now: Instant,
        from: Endpoint,
        bytes: Bytes,
    ) -> Result<(), NodeError> {
        let r = if from.is_sap() {
            self.handle_sap(now, from.addr(), bytes)
        } else {
            self.handle_peer(now, from, bytes)
        };
        self.drain_engine(now);
        r
    }

    /// Before stopping: answer every user waiting for a confirm (Network
    /// Error) and every peer waiting for a user's response (Unspecified
    /// Failure), so that nobody waits for a lifetime.
    pub fn shutdown(&mut self, now: Instant) {
        let waiting: Vec<UserRequest> = self.user_requests.drain().map(|(_, u)| u).collect();
        for u in waiting {
            let m = failure_message(&u.request, Status::NETWORK_ERROR, Opcode::Confirm);
            self.send_to_user(u.user, &m);
        }
        let handling: Vec<Handling> = self.handling.drain().map(|(_, h)| h).collect();
        self.handling_timers.clear();
        for h in handling {
            self.answer_origin_failure(now, h.origin, Status::UNSPECIFIED_FAILURE);
        }
        self.drain_engine(now);
    }

    /// The transport to a peer endpoint failed (TCP connect refused, reset):
    /// requests waiting on it fail now instead of at the end of their
    /// lifetime.
    pub fn endpoint_failed(&mut self, now: Instant, to: Endpoint) {
        self.engine.endpoint_failed(now, to);
        self.drain_engine(now);
    }

    /// Run the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.engine.handle_timeout(now);
        while let Some((&(t, user, tid), _)) = self.handling_timers.iter().next() {
            if t > now {
                break;
            }
            self.handling_timers.remove(&(t, user, tid));
            if let Some(h) = self.handling.remove(&(user, tid)) {
                self.stats.user_timeouts += 1;
                self.answer_origin_failure(now, h.origin, Status::UNSPECIFIED_FAILURE);
            }
        }
        if let Some((start, mut sum)) = self.summary {
            if now >= start + self.cfg.summary_interval {
                self.summary = None;
                sum.interval = now.saturating_duration_since(start);
                self.event(NodeEvent::Summary(sum));
            }
        }
        if let (Some(t), Some(iv)) = (self.next_discovery, self.cfg.discovery_interval) {
            if t <= now {
                self.next_discovery = Some(now + iv);
                self.discover_configured(now);
            }
        }
        self.drain_engine(now);
    }

    fn discover_configured(&mut self, now: Instant) {
        let targets: Vec<(MihfId, Endpoint)> = self
            .peers
            .iter()
            .filter(|p| p.configured)
            .filter_map(|p| Some((p.id.clone(), p.endpoint()?)))
            .collect();
        for (id, ep) in targets {
            let msg = Message::new(
                Mid::new(ServiceId::MANAGEMENT, Opcode::Request, 1),
                0,
                self.own_id().clone(),
                id,
                Body::CapabilityDiscoverRequest(self.capability_request()),
            );
            // The response only refreshes the peer table (no user waits).
            let _ = self.engine.send_request(now, ep, msg);
        }
    }

    /// This MIHF's capabilities, as every Capability_Discover it sends or
    /// answers carries them: the transports it listens on
    /// ([`NodeConfig::transports`]) and the union of its users' events,
    /// commands and query types.
    fn capability_request(&self) -> CapabilityDiscoverRequest {
        let (events, commands, queries) = self.local_capabilities();
        CapabilityDiscoverRequest {
            link_addr_list: None,
            event_list: Some(events),
            command_list: Some(commands),
            is_query_types: Some(queries),
            transports: Some(self.cfg.transports),
            mbb_ho_support: None,
        }
    }

    fn local_capabilities(&self) -> (EventList, CommandList, IsQueryTypeList) {
        self.users.values().fold(
            (EventList(0), CommandList(0), IsQueryTypeList(0)),
            |(e, c, q), u| (e | u.events, c | u.commands, q | u.queries),
        )
    }

    // ------------------------------------------------------------- peer input

    fn handle_peer(&mut self, now: Instant, from: Endpoint, bytes: Bytes) -> Result<(), NodeError> {
        // Before anything is decoded or buffered for reassembly.
        if !self.accepts_source(from.addr().ip()) {
            self.stats.unknown_source += 1;
            return Err(NodeError::UnknownSource(from.addr()));
        }
        let Some((raw, msg)) = self.engine.decode(now, from, bytes)? else {
            return Ok(());
        };
        self.admit(now, from, &msg)?;
        let ack = matches!(msg.body, Body::Ack);
        self.count(Direction::FromPeer, msg.header.mid, ack);
        self.engine.handle_message(now, from, &raw, msg)?;
        Ok(())
    }

    /// The security check: known MIHF ID, from one of its addresses; or an
    /// unknown MIHF that may be learned.
    fn admit(&mut self, now: Instant, from: Endpoint, msg: &Message) -> Result<(), NodeError> {
        let is_discovery = msg.header.mid == Mid(0x1401) && !msg.header.ack_rsp;
        let id = &msg.source;
        let ip = from.addr().ip();
        if let Some(p) = self.peers.get(id) {
            let address_ok = !self.cfg.check_peer_address
                || p.matches_ip(ip)
                || p.last_from.is_some_and(|l| canon(l.addr().ip()) == canon(ip))
                // A learned peer announcing itself from a new address.
                || (is_discovery && !p.configured && self.cfg.learn_peers && self.learn_from_allows(ip));
            if !address_ok {
                self.stats.address_mismatch += 1;
                return Err(NodeError::AddressMismatch {
                    id: id.clone(),
                    from: from.addr(),
                });
            }
            self.peers.heard(id, from);
            return Ok(());
        }
        let for_us = msg.destination == *self.own_id() || msg.destination.is_broadcast();
        if !(self.cfg.allow_unknown_peers || (is_discovery && self.cfg.learn_peers)) || !for_us {
            self.stats.unknown_peer += 1;
            return Err(NodeError::UnknownPeer(id.clone()));
        }
        if !self.learn_from_allows(ip) {
            self.stats.learn_outside_range += 1;
            self.summarize(now, |s| s.outside_learn_from += 1);
            return Err(NodeError::OutsideLearnFrom {
                id: id.clone(),
                from: from.addr(),
            });
        }
        if !self.learn_limit.allow(now) {
            self.stats.learn_rate_limited += 1;
            self.summarize(now, |s| s.rate_limited += 1);
            return Err(NodeError::LearnRateLimited(id.clone()));
        }
        let udp = match from {
            Endpoint::Udp(a) => Some(a),
            _ => None,
        };
        let evicted = self.peers.learn(Peer {
            id: id.clone(),
            udp,
            tcp: None,
            prefer_tcp: false,
            configured: false,
            last_from: Some(from),
            capabilities: None,
            registered_until: None,
        });
        let evicted = evicted.map(|v| {
            self.forget_peer(&v.id);
            v.id
        });
        self.stats.peers_learned += 1;
        let gone = u64::from(evicted.is_some());
        self.stats.learned_evicted += gone;
        self.summarize(now, |s| {
            s.learned += 1;
            s.evicted += gone;
        });
        self.event(NodeEvent::PeerLearned {
            id: id.clone(),
            from,
            evicted,
        });
        Ok(())
    }

    /// A learned peer left the table: drop what it subscribed to and what
    /// our users subscribed to at it.
    fn forget_peer(&mut self, id: &MihfId) {
        self.subscriptions
            .retain(|s| !matches!(&s.subscriber, Subscriber::Peer(p) if p == id));
        self.remote_subs.retain(|s| &s.peer != id);
    }

    fn drain_engine(&mut self, now: Instant) {
        while let Some(e) = self.engine.poll_event() {
            match e {
                Event::Request { inbound, from, msg } => {
                    self.on_peer_request(now, inbound, from, msg)
                }
                Event::Indication { from, msg } => self.on_peer_indication(from, msg),
                Event::Response {
                    token, msg, rtt, ..
                } => self.on_peer_response(token, msg, rtt),
                Event::Delivered { .. } => {}
                Event::Failed { token, mid, reason } => {
                    self.event(NodeEvent::Failed { mid, reason });
                    if let Some(u) = self.user_requests.remove(&token) {
                        let m = failure_message(&u.request, Status::NETWORK_ERROR, Opcode::Confirm);
                        self.send_to_user(u.user, &m);
                    }
                }
                Event::Expired { inbound } => {
                    // The user never answered: forget what we waited for.
                    self.handling.retain(|_, h| {
                        !matches!(&h.origin, Origin::Peer { inbound: i, .. } if *i == inbound)
                    });
                }
            }
        }
    }

    fn on_peer_request(&mut self, now: Instant, inbound: Inbound, from: Endpoint, msg: Message) {
        let own = self.own_id().clone();
        let reply_body: Option<(Body, Vec<crate::wire::RawTlvs>)> = match &msg.body {
            Body::CapabilityDiscoverRequest(req) => {
                self.peers.modify(&msg.source, |p| {
                    p.capabilities = Some(Capabilities::lenient(
                        req.event_list,
                        req.command_list,
                        req.is_query_types,
                        req.transports,
                    ));
                    if p.udp.is_none() && !p.configured {
                        if let Endpoint::Udp(a) = from {
                            p.udp = Some(a);
                        }
                    }
                });
                Some((
                    Body::CapabilityDiscoverResponse(self.capability_response()),
                    vec![],
                ))
            }
            Body::RegisterRequest(_) => {
                let secs = self.cfg.registration_lifetime;
                let until = now + Duration::from_secs(u64::from(secs));
                self.peers
                    .modify(&msg.source, |p| p.registered_until = Some(until));
                Some((
                    Body::RegisterResponse(RegisterResponse {
                        status: Status::SUCCESS,
                        valid_time_interval: Some(secs),
                        odtone_time_interval: None,
                    }),
                    vec![],
                ))
            }
            Body::DeRegisterRequest(_) => {
                self.peers
                    .modify(&msg.source, |p| p.registered_until = None);
                Some((
                    Body::DeRegisterResponse(DeRegisterResponse {
                        status: Status::SUCCESS,
                    }),
                    vec![],
                ))
            }
            Body::EventSubscribeRequest(req) => {
                let body = self.subscribe(Subscriber::Peer(msg.source.clone()), req);
                Some((body, vec![]))
            }
            Body::EventUnsubscribeRequest(req) => {
                let body = self.unsubscribe(&Subscriber::Peer(msg.source.clone()), req);
                Some((body, vec![]))
            }
            _ => None,
        };
        if let Some((body, extra)) = reply_body {
            let mut rsp = Message::new(
                msg.header.mid.with_opcode(Opcode::Response),
                msg.header.tid,
                own,
                msg.source.clone(),
                body,
            );
            rsp.extra = extra;
            let _ = self.engine.send_response(now, &inbound, rsp);
            return;
        }
        // A command: to the user that handles it.
        match self.handler_for(msg.header.mid, None) {
            Some(user) => {
                let origin = Origin::Peer {
                    inbound,
                    request: msg.clone(),
                };
                self.give_to_user(now, user, msg, origin);
            }
            None => {
                if primitive_name(msg.header.mid).is_none() {
                    self.stats.unsupported += 1;
                } else {
                    self.stats.no_handler += 1;
                }
                let rsp = failure_message(&msg, Status::UNSPECIFIED_FAILURE, Opcode::Response);
                let _ = self.engine.send_response(now, &inbound, rsp);
            }
        }
    }

    fn capability_response(&self) -> CapabilityDiscoverResponse {
        let r = self.capability_request();
        CapabilityDiscoverResponse {
            status: Status::SUCCESS,
            link_addr_list: r.link_addr_list,
            event_list: r.event_list,
            command_list: r.command_list,
            is_query_types: r.is_query_types,
            transports: r.transports,
            mbb_ho_support: r.mbb_ho_support,
        }
    }

    /// The user that declared the command of `mid` (not `except`).
    fn handler_for(&self, mid: Mid, except: Option<SocketAddr>) -> Option<SocketAddr> {
        let bit = command_bit(mid)?;
        self.users
            .values()
            .filter(|u| Some(u.addr) != except && u.commands.contains(bit))
            .max_by_key(|u| u.last_active)
            .map(|u| u.addr)
    }

    fn give_to_user(&mut self, now: Instant, user: SocketAddr, msg: Message, origin: Origin) {
        if self.handling.len() >= self.cfg.max_pending {
            self.stats.pending_full += 1;
            self.answer_origin_failure(now, origin, Status::UNSPECIFIED_FAILURE);
            return;
        }
        let Some(user_id) = self.users.get(&user).map(|u| u.id.clone()) else {
            return;
        };
        let mut tid = 0;
        for _ in 0..4095 {
            let t = self.next_sap_tid;
            self.next_sap_tid = if t >= 4095 { 1 } else { t + 1 };
            if !self.handling.contains_key(&(user, t)) {
                tid = t;
                break;
            }
        }
        if tid == 0 {
            self.stats.pending_full += 1;
            self.answer_origin_failure(now, origin, Status::UNSPECIFIED_FAILURE);
            return;
        }
        let mut ind = msg;
        ind.header = Header::new(ind.header.mid.with_opcode(Opcode::Indication), tid);
        ind.destination = user_id;
        self.send_to_user(user, &ind);
        let deadline = now + self.cfg.user_response_timeout;
        self.handling
            .insert((user, tid), Handling { origin, deadline });
        self.handling_timers.insert((deadline, user, tid), ());
    }

    fn answer_origin_failure(&mut self, now: Instant, origin: Origin, status: Status) {
        match origin {
            Origin::Peer { inbound, request } => {
                let rsp = failure_message(&request, status, Opcode::Response);
                let _ = self.engine.send_response(now, &inbound, rsp);
            }
            Origin::User { user, request } => {
                let c = failure_message(&request, status, Opcode::Confirm);
                self.send_to_user(user, &c);
            }
        }
    }

    fn on_peer_indication(&mut self, _from: Endpoint, msg: Message) {
        let mid = msg.header.mid;
        let Some(bit) = event_bit(mid) else {
            self.stats.unsupported += 1;
            return;
        };
        let link = event_link(&msg.body);
        let targets: Vec<SocketAddr> = self
            .remote_subs
            .iter()
            .filter(|s| {
                s.peer == msg.source && s.events.contains(bit) && link_matches(&s.link, &link)
            })
            .map(|s| s.user)
            .collect();
        for user in dedup(targets) {
            let Some(uid) = self.users.get(&user).map(|u| u.id.clone()) else {
                continue;
            };
            let mut ind = msg.clone();
            ind.header = Header::new(mid, 0);
            ind.destination = uid;
            self.send_to_user(user, &ind);
        }
    }

    fn on_peer_response(&mut self, token: Token, msg: Message, rtt: Duration) {
        let status = status_of(&msg);
        self.event(NodeEvent::Completed {
            mid: msg.header.mid,
            rtt,
            status,
        });
        if let Body::CapabilityDiscoverResponse(r) = &msg.body {
            let caps =
                Capabilities::lenient(r.event_list, r.command_list, r.is_query_types, r.transports);
            self.peers
                .modify(&msg.source, |p| p.capabilities = Some(caps));
        }
        let Some(u) = self.user_requests.remove(&token) else {
            return;
        };
        // Track the user's subscriptions to the peer's events.
        match (&u.request.body, &msg.body) {
            (Body::EventSubscribeRequest(req), Body::EventSubscribeResponse(rsp))
                if rsp.status.is_success() =>
            {
                let events = rsp.events.unwrap_or(req.events);
                if self.remote_subs.len() < self.cfg.max_subscriptions {
                    self.remote_subs.push(RemoteSubscription {
                        user: u.user,
                        peer: u.peer.clone(),
                        link: Some(req.link.link.clone()),
                        events,
                    });
                } else {
                    self.stats.pending_full += 1;
                }
            }
            (Body::EventUnsubscribeRequest(req), Body::EventUnsubscribeResponse(rsp))
                if rsp.status.is_success() =>
            {
                for s in self.remote_subs.iter_mut() {
                    if s.user == u.user
                        && s.peer == u.peer
                        && s.link.as_ref() == Some(&req.link.link)
                    {
                        s.events = EventList(s.events.0 & !req.events.0);
                    }
                }
                self.remote_subs.retain(|s| s.events.0 != 0);
            }
            _ => {}
        }
        let mut c = msg;
        c.header = Header::new(
            c.header.mid.with_opcode(Opcode::Confirm),
            u.request.header.tid,
        );
        c.destination = u.user_id;
        self.send_to_user(u.user, &c);
    }

    // ------------------------------------------------------------- subscriptions

    fn subscribe(&mut self, who: Subscriber, req: &EventSubscribeRequest) -> Body {
        let (supported, _, _) = self.local_capabilities();
        let granted = EventList(lenient_events(req.events).0 & supported.0);
        let link = Some(req.link.link.clone());
        let existing = self
            .subscriptions
            .iter()
            .position(|s| s.subscriber == who && s.link == link);
        let status = match existing {
            _ if granted.0 == 0 => Status::REJECTED,
            Some(i) => {
                self.subscriptions[i].events = self.subscriptions[i].events | granted;
                Status::SUCCESS
            }
            None if self.subscriptions.len() >= self.cfg.max_subscriptions => {
                self.stats.subscriptions_refused += 1;
                Status::UNSPECIFIED_FAILURE
            }
            None if self
                .subscriptions
                .iter()
                .filter(|s| s.subscriber == who)
                .count()
                >= self.cfg.max_subscriptions_per_subscriber =>
            {
                self.stats.subscriptions_refused += 1;
                Status::UNSPECIFIED_FAILURE
            }
            None => {
                self.subscriptions.push(Subscription {
                    subscriber: who,
                    link,
                    events: granted,
                });
                Status::SUCCESS
            }
        };
        Body::EventSubscribeResponse(EventSubscribeResponse {
            status,
            link: req.link.clone(),
            events: status.is_success().then_some(granted),
        })
    }

    fn unsubscribe(&mut self, who: &Subscriber, req: &EventUnsubscribeRequest) -> Body {
        let link = Some(req.link.link.clone());
        let mut found = false;
        for s in self.subscriptions.iter_mut() {
            if &s.subscriber == who && s.link == link {
                s.events = EventList(s.events.0 & !req.events.0);
                found = true;
            }
        }
        self.subscriptions.retain(|s| s.events.0 != 0);
        Body::EventUnsubscribeResponse(EventUnsubscribeResponse {
            status: if found {
                Status::SUCCESS
            } else {
                Status::REJECTED
            },
            link: req.link.clone(),
            events: Some(req.events),
        })
    }

    fn publish(&mut self, now: Instant, msg: Message) {
        let mid = msg.header.mid;
        let Some(bit) = event_bit(mid) else { return };
        let link = event_link(&msg.body);
        let targets: Vec<Subscriber> = self
            .subscriptions
            .iter()
            .filter(|s| s.events.contains(bit) && link_matches(&s.link, &link))
            .map(|s| s.subscriber.clone())
            .collect();
        let own = self.own_id().clone();
        for t in targets {
            match t {
                Subscriber::User(addr) => {
                    let Some(uid) = self.users.get(&addr).map(|u| u.id.clone()) else {
                        continue;
                    };
                    let mut ind = msg.clone();
                    ind.header = Header::new(mid, 0);
                    ind.source = own.clone();
                    ind.destination = uid;
                    self.send_to_user(addr, &ind);
                }
                Subscriber::Peer(id) => {
                    let Some(ep) = self.peers.get(&id).and_then(Peer::endpoint) else {
                        self.stats.no_route += 1;
                        continue;
                    };
                    let mut ind = msg.clone();
                    ind.header = Header::new(mid, 0);
                    ind.source = own.clone();
                    ind.destination = id;
                    let _ = self.engine.send_indication(now, ep, ind);
                }
            }
        }
    }

    // -------------------------------------------------------------- SAP input

    fn handle_sap(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: Bytes,
    ) -> Result<(), NodeError> {
        let m = match sap::decode(bytes) {
            Ok(m) => m,
            Err(e) => {
                self.stats.sap_errors += 1;
                return Err(e.into());
            }
        };
        match m {
            SapMessage::Register { reg, confirm_tid } => {
                self.count(Direction::FromUser, sap::USER_REGISTER_INDICATION, false);
                self.register_user(now, from, reg, confirm_tid)
            }
            SapMessage::Deregister { user_id } => {
                self.count(Direction::FromUser, sap::USER_DEREGISTER_INDICATION, false);
                if self.users.remove(&from).is_some() {
                    self.forget_user(from);
                    self.event(NodeEvent::UserDeregistered {
                        id: user_id,
                        addr: from,
                    });
                }
                Ok(())
            }
            SapMessage::Primitive(msg) => {
                self.count(Direction::FromUser, msg.header.mid, false);
                self.on_user_primitive(now, from, msg)
            }
        }
    }

    /// Register (or refresh) a user. The User_Register.confirm goes out only
    /// when the user asked for it (`confirm_tid`, from ACK-Req): ODTONE's
    /// MIHF sends nothing back, and ODTONE's users take an unasked confirm
    /// for a bad message.
    ///
    /// Registered users are never evicted by other users: a registration
    /// from a new address when `max_users` users are registered is refused
    /// (Rejected in the confirm), unless its user ID is registered from
    /// another address, which is then the same user restarted (ODTONE keys
    /// its users by ID): the least recently active entry of that ID moves
    /// to the new address. Below the cap, one ID may be registered from
    /// several addresses (e.g. two `mihctl` with the default ID).
    fn register_user(
        &mut self,
        now: Instant,
        from: SocketAddr,
        reg: Registration,
        confirm_tid: Option<u16>,
    ) -> Result<(), NodeError> {
        let own = self.own_id().clone();
        let id = reg.user_id.clone();
        let known = self.users.contains_key(&from);
        let mut previous = None;
        if !known && self.users.len() >= self.cfg.max_users {
            previous = self
                .users
                .values()
                .filter(|u| u.id == reg.user_id)
                .min_by_key(|u| u.last_active)
                .map(|u| u.addr);
            if let Some(old) = previous {
                self.users.remove(&old);
                self.forget_user(old);
                self.stats.users_replaced += 1;
            } else {
                self.stats.users_refused += 1;
                let before = self.summarize(now, |s| s.users_refused += 1);
                if before.users_refused == 0 {
                    self.event(NodeEvent::UserRefused {
                        id: id.clone(),
                        addr: from,
                        max: self.cfg.max_users,
                    });
                }
                if let Some(tid) = confirm_tid {
                    let c = sap::register_confirm(&own, &id, tid, Status::REJECTED);
                    self.send_to_user(from, &c);
                }
                return Err(NodeError::UserTableFull(self.cfg.max_users));
            }
        }
        self.users.insert(
            from,
            User {
                addr: from,
                id: reg.user_id,
                commands: reg.commands,
                events: reg.events,
                queries: reg.queries,
                last_active: now,
            },
        );
        if !known {
            self.event(NodeEvent::UserRegistered {
                id: id.clone(),
                addr: from,
                previous,
            });
        }
        if let Some(tid) = confirm_tid {
            let c = sap::register_confirm(&own, &id, tid, Status::SUCCESS);
            self.send_to_user(from, &c);
        }
        Ok(())
    }

    fn forget_user(&mut self, addr: SocketAddr) {
        self.subscriptions
            .retain(|s| s.subscriber != Subscriber::User(addr));
        self.remote_subs.retain(|s| s.user != addr);
        self.user_requests.retain(|_, r| r.user != addr);
    }

    fn is_local(&self, id: &MihfId) -> bool {
        id == self.own_id() || id.as_bytes() == sap::LOCAL_MIHF.as_bytes()
    }

    fn on_user_primitive(
        &mut self,
        now: Instant,
        from: SocketAddr,
        msg: Message,
    ) -> Result<(), NodeError> {
        // A sender that did not register is served without being
        // remembered: confirms go to the address it sent from.
        if let Some(u) = self.users.get_mut(&from) {
            u.last_active = now;
        }
        match msg.header.mid.opcode() {
            Opcode::Request => {
                self.on_user_request(now, from, msg);
                Ok(())
            }
            Opcode::Response => self.on_user_response(now, from, msg),
            Opcode::Indication => {
                // An event the user publishes.
                if self.is_local(&msg.destination) || msg.destination.is_broadcast() {
                    self.publish(now, msg);
                } else if let Some(ep) = self.peers.get(&msg.destination).and_then(Peer::endpoint) {
                    let mut ind = msg;
                    ind.source = self.own_id().clone();
                    let _ = self.engine.send_indication(now, ep, ind);
                } else {
                    self.stats.no_route += 1;
                }
                Ok(())
            }
            Opcode::Confirm => Ok(()),
        }
    }

    fn on_user_request(&mut self, now: Instant, from: SocketAddr, msg: Message) {
        let confirm = |node: &mut Node, status: Status| {
            let mut c = failure_message(&msg, status, Opcode::Confirm);
            c.source = node.own_id().clone();
            node.send_to_user(from, &c);
        };
        if matches!(msg.body, Body::EventSubscribeRequest(_)) && !self.users.contains_key(&from) {
            // Events go to registered users only; an unregistered sender
            // would never get them.
            self.stats.subscriptions_refused += 1;
            confirm(self, Status::REJECTED);
            return;
        }
        if self.is_local(&msg.destination) {
            let own = self.own_id().clone();
            let body = match &msg.body {
                Body::CapabilityDiscoverRequest(_) => {
                    Body::CapabilityDiscoverResponse(self.capability_response())
                }
                Body::EventSubscribeRequest(req) => self.subscribe(Subscriber::User(from), req),
                Body::EventUnsubscribeRequest(req) => {
                    self.unsubscribe(&Subscriber::User(from), req)
                }
                _ => {
                    // A command for a local user.
                    match self.handler_for(msg.header.mid, Some(from)) {
                        Some(h) => {
                            let origin = Origin::User {
                                user: from,
                                request: msg.clone(),
                            };
                            self.give_to_user(now, h, msg, origin);
                        }
                        None => {
                            self.stats.no_handler += 1;
                            confirm(self, Status::UNSPECIFIED_FAILURE);
                        }
                    }
                    return;
                }
            };
            let mut c = Message::new(
                msg.header.mid.with_opcode(Opcode::Confirm),
                msg.header.tid,
                own,
                msg.source.clone(),
                body,
            );
            c.extra = Vec::new();
            self.send_to_user(from, &c);
            return;
        }
        let Some(ep) = self.peers.get(&msg.destination).and_then(Peer::endpoint) else {
            self.stats.no_route += 1;
            confirm(self, Status::NETWORK_ERROR);
            return;
        };
        if self.user_requests.len() >= self.cfg.max_pending {
            self.stats.pending_full += 1;
            confirm(self, Status::UNSPECIFIED_FAILURE);
            return;
        }
        let mut out = msg.clone();
        out.source = self.own_id().clone();
        if let Body::CapabilityDiscoverRequest(_) = out.body {
            // The request advertises this MIHF's capabilities (IEEE
            // 802.21-2008 8.6.1.1: the sender's supported events, commands,
            // query types and transports), not what the user put in it.
            out.body = Body::CapabilityDiscoverRequest(self.capability_request());
            out.extra = Vec::new();
        }
        match self.engine.send_request(now, ep, out) {
            Ok((token, _tid)) => {
                let user_id = self
                    .users
                    .get(&from)
                    .map_or(msg.source.clone(), |u| u.id.clone());
                self.user_requests.insert(
                    token,
                    UserRequest {
                        user: from,
                        user_id,
                        peer: msg.destination.clone(),
                        request: msg,
                    },
                );
            }
            Err(SendError::TableFull(_)) => {
                self.stats.pending_full += 1;
                confirm(self, Status::UNSPECIFIED_FAILURE);
            }
            // Back-pressure: every TID towards the peer is out or in
            // quarantine (counted in `EngineStats::tid_exhausted`).
            Err(SendError::NoFreeTid { .. }) => confirm(self, Status::UNSPECIFIED_FAILURE),
            Err(_) => confirm(self, Status::UNSPECIFIED_FAILURE),
        }
    }

    fn on_user_response(
        &mut self,
        now: Instant,
        from: SocketAddr,
        msg: Message,
    ) -> Result<(), NodeError> {
        let tid = msg.header.tid;
        let Some(h) = self.handling.remove(&(from, tid)) else {
            return Err(NodeError::NoPending { user: from, tid });
        };
        self.handling_timers.remove(&(h.deadline, from, tid));
        match h.origin {
            Origin::Peer { inbound, request } => {
                let mut rsp = msg;
                rsp.header = Header::new(
                    request.header.mid.with_opcode(Opcode::Response),
                    inbound.tid,
                );
                rsp.source = self.own_id().clone();
                rsp.destination = request.source.clone();
                if self.engine.send_response(now, &inbound, rsp).is_err() {
                    // Too late: the destination transaction expired.
                    self.stats.user_timeouts += 1;
                }
            }
            Origin::User { user, request } => {
                let mut c = msg;
                c.header = Header::new(
                    request.header.mid.with_opcode(Opcode::Confirm),
                    request.header.tid,
                );
                c.source = self.own_id().clone();
                c.destination = request.source.clone();
                self.send_to_user(user, &c);
            }
        }
        Ok(())
    }
}

/// Sizes of the node's bounded tables.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableSizes {
    pub source_transactions: usize,
    pub destination_transactions: usize,
    pub reassembly_messages: usize,
    pub reassembly_bytes: usize,
    /// Registered users.
    pub users: usize,
    /// Configured and learned peers.
    pub peers: usize,
    /// Learned peers (at most `max_learned_peers`).
    pub learned_peers: usize,
    pub subscriptions: usize,
    pub pending: usize,
}

/// ACK-Rsp set and exactly the two ID TLVs (a cheap walk, no decode).
fn is_pure_ack(frame: &[u8]) -> bool {
    let Some(payload) = frame.get(crate::wire::HEADER_LEN..) else {
        return false;
    };
    let mut it = crate::wire::TlvIter::new(payload);
    matches!(
        (it.next(), it.next(), it.next()),
        (Some(a), Some(b), None) if a.ty == 1 && b.ty == 2
    )
}

fn dedup(mut v: Vec<SocketAddr>) -> Vec<SocketAddr> {
    v.sort();
    v.dedup();
    v
}

/// The MIH_CMD_LIST bit that declares the command of `mid`.
pub fn command_bit(mid: Mid) -> Option<CommandList> {
    if mid.sid() != ServiceId::COMMAND {
        return None;
    }
    Some(match mid.aid() {
        1 => CommandList::LINK_GET_PARAMETERS,
        2 => CommandList::LINK_CONFIGURE_THRESHOLDS,
        3 => CommandList::LINK_ACTIONS,
        4 | 6 | 8 | 9 | 11 => CommandList::NET_HO,
        5 | 7 | 10 => CommandList::MN_HO,
        _ => return None,
    })
}

/// The MIH_EVT_LIST bit of an event MID.
pub fn event_bit(mid: Mid) -> Option<EventList> {
    if mid.sid() != ServiceId::EVENT || mid.opcode() != Opcode::Indication {
        return None;
    }
    Some(match mid.aid() {
        1 => EventList::LINK_DETECTED,
        2 => EventList::LINK_UP,
        3 => EventList::LINK_DOWN,
        5 => EventList::LINK_PARAMETERS_REPORT,
        6 => EventList::LINK_GOING_DOWN,
        7 => EventList::LINK_HANDOVER_IMMINENT,
        8 => EventList::LINK_HANDOVER_COMPLETE,
        9 => EventList::LINK_PDU_TRANSMIT_STATUS,
        _ => return None,
    })
}

fn event_link(body: &Body) -> Option<LinkId> {
    match body {
        Body::LinkUp(b) => Some(b.link.link.clone()),
        Body::LinkDown(b) => Some(b.link.link.clone()),
        Body::LinkGoingDown(b) => Some(b.link.link.clone()),
        Body::LinkHandoverImminent(b) => Some(b.link.link.clone()),
        Body::LinkHandoverComplete(b) => Some(b.link.link.clone()),
        _ => None,
    }
}

fn link_matches(sub: &Option<LinkId>, ev: &Option<LinkId>) -> bool {
    match (sub, ev) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}
