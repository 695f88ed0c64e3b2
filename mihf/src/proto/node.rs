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

use super::sap::{self, Registration, SapError, SapMessage};
use super::status::{failure_message, status_of};
use super::transaction::{Engine, EngineConfig, EngineStats, Event, Inbound, RxError, SendError};
use super::{Endpoint, Token, Transmit};
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
    /// Accept frames from MIHF IDs that are not in the peer table.
    pub allow_unknown_peers: bool,
    /// Add the sender of an MIH_Capability_Discover.request to the peer table
    /// (as ODTONE does).
    pub learn_peers: bool,
    /// Drop frames whose source IP is not an address of the peer.
    pub check_peer_address: bool,
    pub max_peers: usize,
    pub max_users: usize,
    pub max_subscriptions: usize,
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
            learn_peers: true,
            check_peer_address: true,
            max_peers: 1024,
            max_users: 64,
            max_subscriptions: 4096,
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
            ("max_subscriptions", self.max_subscriptions),
            ("max_pending", self.max_pending),
        ] {
            if v == 0 {
                return Err(format!("{name}: must be > 0"));
            }
        }
        if self.user_response_timeout.is_zero() {
            return Err("user_response_timeout: must be > 0".into());
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

fn canon(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// A local MIH-User attached through the SAP.
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
    #[error("frame from {id} at {from}, which is not one of its addresses")]
    AddressMismatch { id: MihfId, from: SocketAddr },
    #[error("peer table full")]
    PeerTableFull,
    #[error("{0} from a peer is not served")]
    Unsupported(String),
    #[error("no pending request for user {user} TID {tid}")]
    NoPending { user: SocketAddr, tid: u16 },
    #[error("user table full")]
    UserTableFull,
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
    pub users: usize,
    pub peers: usize,
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
    PeerLearned {
        id: MihfId,
        from: Endpoint,
    },
    UserRegistered {
        id: MihfId,
        addr: SocketAddr,
    },
    UserDeregistered {
        id: MihfId,
        addr: SocketAddr,
    },
}

const MAX_COUNTER_KEYS: usize = 1024;

/// The MIHF. See the module documentation.
#[derive(Debug)]
pub struct Node {
    cfg: NodeConfig,
    engine: Engine,
    peers: HashMap<MihfId, Peer>,
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
        let peers = cfg
            .peers
            .iter()
            .map(|p| {
                (
                    p.id.clone(),
                    Peer {
                        id: p.id.clone(),
                        udp: p.udp,
                        tcp: p.tcp,
                        prefer_tcp: p.prefer_tcp,
                        configured: true,
                        last_from: None,
                        capabilities: None,
                        registered_until: None,
                    },
                )
            })
            .collect();
        let next_discovery = cfg.discovery_interval.map(|_| now);
        Node {
            cfg,
            engine,
            peers,
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
        if !self.peers.contains_key(&p.id) && self.peers.len() >= self.cfg.max_peers {
            return Err("peer table full".into());
        }
        let old = self.peers.remove(&p.id);
        self.peers.insert(
            p.id.clone(),
            Peer {
                id: p.id,
                udp: p.udp,
                tcp: p.tcp,
                prefer_tcp: p.prefer_tcp,
                configured: true,
                last_from: None,
                capabilities: old.and_then(|o| o.capabilities),
                registered_until: None,
            },
        );
        Ok(())
    }
    pub fn config(&self) -> &NodeConfig {
        &self.cfg
    }
    pub fn peers(&self) -> impl Iterator<Item = &Peer> {
        self.peers.values()
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
        }
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
        self.engine.endpoint_failed(to);
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
            .values()
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
        let Some((raw, msg)) = self.engine.decode(now, from, bytes)? else {
            return Ok(());
        };
        self.admit(now, from, &msg)?;
        let ack = matches!(msg.body, Body::Ack);
        self.count(Direction::FromPeer, msg.header.mid, ack);
        self.engine.handle_message(now, from, &raw, msg)?;
        Ok(())
    }

    /// The security check: known MIHF ID, from one of its addresses.
    fn admit(&mut self, _now: Instant, from: Endpoint, msg: &Message) -> Result<(), NodeError> {
        let is_discovery = msg.header.mid == Mid(0x1401) && !msg.header.ack_rsp;
        let id = &msg.source;
        match self.peers.get_mut(id) {
            Some(p) => {
                if self.cfg.check_peer_address
                    && !p.matches_ip(from.addr().ip())
                    && p.last_from
                        .is_none_or(|l| canon(l.addr().ip()) != canon(from.addr().ip()))
                    && !(is_discovery && !p.configured && self.cfg.learn_peers)
                {
                    self.stats.address_mismatch += 1;
                    return Err(NodeError::AddressMismatch {
                        id: id.clone(),
                        from: from.addr(),
                    });
                }
                p.last_from = Some(from);
                Ok(())
            }
            None if self.cfg.allow_unknown_peers || (is_discovery && self.cfg.learn_peers) => {
                if self.peers.len() >= self.cfg.max_peers {
                    // Forget the oldest learned peer nobody configured.
                    let victim = self
                        .peers
                        .values()
                        .find(|p| !p.configured && p.registered_until.is_none())
                        .map(|p| p.id.clone());
                    match victim {
                        Some(v) => {
                            self.peers.remove(&v);
                        }
                        None => {
                            self.stats.unknown_peer += 1;
                            return Err(NodeError::PeerTableFull);
                        }
                    }
                }
                let (udp, tcp) = match from {
                    Endpoint::Udp(a) => (Some(a), None),
                    _ => (None, None),
                };
                self.peers.insert(
                    id.clone(),
                    Peer {
                        id: id.clone(),
                        udp,
                        tcp,
                        prefer_tcp: false,
                        configured: false,
                        last_from: Some(from),
                        capabilities: None,
                        registered_until: None,
                    },
                );
                self.event(NodeEvent::PeerLearned {
                    id: id.clone(),
                    from,
                });
                Ok(())
            }
            None => {
                self.stats.unknown_peer += 1;
                Err(NodeError::UnknownPeer(id.clone()))
            }
        }
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
                if let Some(p) = self.peers.get_mut(&msg.source) {
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
                }
                Some((
                    Body::CapabilityDiscoverResponse(self.capability_response()),
                    vec![],
                ))
            }
            Body::RegisterRequest(_) => {
                let secs = self.cfg.registration_lifetime;
                if let Some(p) = self.peers.get_mut(&msg.source) {
                    p.registered_until = Some(now + Duration::from_secs(u64::from(secs)));
                }
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
                if let Some(p) = self.peers.get_mut(&msg.source) {
                    p.registered_until = None;
                }
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
            if let Some(p) = self.peers.get_mut(&msg.source) {
                p.capabilities = Some(Capabilities::lenient(
                    r.event_list,
                    r.command_list,
                    r.is_query_types,
                    r.transports,
                ));
            }
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
        let status = if granted.0 == 0 {
            Status::REJECTED
        } else if self.subscriptions.len() >= self.cfg.max_subscriptions {
            Status::UNSPECIFIED_FAILURE
        } else {
            let link = Some(req.link.link.clone());
            match self
                .subscriptions
                .iter_mut()
                .find(|s| s.subscriber == who && s.link == link)
            {
                Some(s) => s.events = s.events | granted,
                None => self.subscriptions.push(Subscription {
                    subscriber: who,
                    link,
                    events: granted,
                }),
            }
            Status::SUCCESS
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

    /// Attach (or refresh) a user. The User_Register.confirm goes out only
    /// when the user asked for it (`confirm_tid`, from ACK-Req): ODTONE's
    /// MIHF sends nothing back, and ODTONE's users take an unasked confirm
    /// for a bad message.
    fn register_user(
        &mut self,
        now: Instant,
        from: SocketAddr,
        reg: Registration,
        confirm_tid: Option<u16>,
    ) -> Result<(), NodeError> {
        if !self.users.contains_key(&from) && self.users.len() >= self.cfg.max_users {
            // Make room by dropping the user silent for the longest time.
            let victim = self
                .users
                .values()
                .min_by_key(|u| u.last_active)
                .map(|u| u.addr);
            if let Some(v) = victim {
                self.users.remove(&v);
                self.forget_user(v);
            }
        }
        if self.users.len() >= self.cfg.max_users && !self.users.contains_key(&from) {
            return Err(NodeError::UserTableFull);
        }
        let own = self.own_id().clone();
        let id = reg.user_id.clone();
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
        self.event(NodeEvent::UserRegistered {
            id: id.clone(),
            addr: from,
        });
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
        if !self.users.contains_key(&from) {
            // Attach implicitly, declaring nothing.
            self.register_user(
                now,
                from,
                Registration {
                    user_id: msg.source.clone(),
                    ..Registration::default()
                },
                None,
            )?;
        }
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
            Err(SendError::TableFull(_)) | Err(SendError::NoFreeTid(_)) => {
                self.stats.pending_full += 1;
                confirm(self, Status::UNSPECIFIED_FAILURE);
            }
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
    pub users: usize,
    pub peers: usize,
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
