//! The IEEE 802.21 transaction engine between peer MIHFs (clause 8.2.4),
//! sans-IO.
//!
//! * **Source transactions** ([`Engine::send_request`],
//!   [`Engine::send_indication`]): a TID is allocated from the peer's own
//!   TID space ([`super::tid`]), the frame is sent (cut into fragments over
//!   UDP when it exceeds the MTU) with ACK-Req set over UDP, and re-sent by
//!   the ACK requestor every retransmission interval (doubling with the
//!   configured backoff) until an ACK, a piggy-backed ACK or the response
//!   arrives, or the retransmissions run out. A request whose response does
//!   not arrive within the transaction lifetime fails.
//! * **TID quarantine**: when a source transaction ends, its TID is not used
//!   towards that peer again until the peer has surely dropped its record of
//!   it and no frame of it is still on the way (`Engine::tid_hold`; over
//!   UDP after an answer [`EngineConfig::tid_quarantine`], over TCP at
//!   once). When no TID is free the send is refused with
//!   [`SendError::NoFreeTid`] (back-pressure, counted in
//!   [`EngineStats::tid_exhausted`]).
//! * **Destination transactions**: an incoming request or indication opens
//!   a record keyed by (peer MIHF ID, TID). If it asked for an ACK, the ACK
//!   responder waits up to `ack_delay` for the response so that it can
//!   piggy-back the ACK on it (ACK-Rsp set in the response); otherwise it sends
//!   a pure ACK (same MID and TID, ACK-Rsp set, only the two ID TLVs), and the
//!   later response then asks for an ACK of its own. A duplicate request (same
//!   peer, TID, MID and payload) is not delivered again: the stored ACK or
//!   response is re-sent. A request waits for its user up to the transaction
//!   lifetime; once answered (an indication at once), its record serves
//!   duplicate detection only while the requester may still retransmit
//!   ([`EngineConfig::duplicate_life`] from its first copy, one margin
//!   without ACK-Req over UDP, not at all over TCP without ACK-Req), and
//!   while its response is being retransmitted.
//! * Over TCP (reliable) nothing asks for an ACK and nothing is retransmitted
//!   or fragmented; an ACK-Req received over TCP is still honoured (the
//!   sender is an ACK requestor that may retransmit, so its records get the
//!   full duplicate life).
//!
//! Every table has a configured cap; a frame that would exceed one is dropped
//! and counted, and every drop returns a typed [`RxError`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use thiserror::Error;

use super::fragment::{fragment, FragmentError, Reassembler, ReassemblyLimits};
use super::tid::{TidAllocator, TidUsage, MAX_TID};
use super::{Endpoint, Token, Transmit};
use crate::wire::{self, Body, Frame, Message, Mid, MihfId, Opcode};

/// Timers and limits of an [`Engine`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// Our own MIHF ID (Source ID of every frame we send).
    pub own_id: MihfId,
    /// First retransmission interval of the ACK requestor.
    pub retransmission_timeout: Duration,
    /// Each further interval is multiplied by this (1 = fixed interval).
    pub retransmission_backoff: u32,
    /// Retransmissions after the first send before the ACK requestor gives up.
    pub max_retransmissions: u8,
    /// Time a source transaction waits for its response, and time a
    /// destination transaction waits for its user's response.
    pub transaction_lifetime: Duration,
    /// The longest a frame may spend in the network (delay, jitter,
    /// queues). A destination record of a message that asked for an ACK is
    /// kept for the requester's retransmission span plus this margin; a
    /// TID waits this much more before it is used again. `None` = one
    /// `retransmission_timeout`. See [`EngineConfig::duplicate_life`].
    pub duplicate_margin: Option<Duration>,
    /// How long the ACK responder holds an ACK hoping to piggy-back it on the
    /// response (0 = always send a pure ACK at once).
    pub ack_delay: Duration,
    /// Set ACK-Req on requests and indications sent over UDP.
    pub ack_requests: bool,
    /// Largest frame sent over UDP; longer frames are fragmented.
    pub mtu: usize,
    /// Open transactions per direction (source / destination).
    pub max_transactions: usize,
    /// Destination transactions (records of requests and indications
    /// received) of one peer MIHF ID, so that one peer cannot take the
    /// table from the others. It also bounds the TIDs we keep out or in
    /// quarantine towards one peer (at most 4095): assuming the peer has
    /// the same limit, it then never has to forget one of our records
    /// early.
    pub max_transactions_per_peer: usize,
    /// Reassembly limits.
    pub reassembly: ReassemblyLimits,
    /// Cap of the transmit and event queues (drained by the driver).
    pub max_queue: usize,
    /// Where each peer's TIDs start ([`TidAllocator::with_seed`]; 0: at
    /// TID 1). A daemon sets a new one at every start.
    pub tid_seed: u64,
}

impl EngineConfig {
    /// The documented defaults (see mihf/README.md, "Timers").
    pub fn new(own_id: MihfId) -> EngineConfig {
        EngineConfig {
            own_id,
            retransmission_timeout: Duration::from_secs(1),
            retransmission_backoff: 2,
            max_retransmissions: 3,
            transaction_lifetime: Duration::from_secs(15),
            duplicate_margin: None,
            ack_delay: Duration::from_millis(200),
            ack_requests: true,
            mtu: 1400,
            max_transactions: 16_384,
            max_transactions_per_peer: 4096,
            reassembly: ReassemblyLimits::default(),
            max_queue: 65_536,
            tid_seed: 0,
        }
    }

    /// Check the values against each other; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.own_id.is_broadcast() || self.own_id.0.len() > MihfId::MAX_LEN {
            return Err("own_id: must be 1 to 253 octets".into());
        }
        if self.retransmission_timeout.is_zero() {
            return Err("retransmission_timeout: must be > 0".into());
        }
        if self.retransmission_backoff == 0 {
            return Err("retransmission_backoff: must be >= 1".into());
        }
        if self.ack_delay >= self.retransmission_timeout {
            return Err("ack_delay: must be shorter than retransmission_timeout".into());
        }
        if self.transaction_lifetime < self.retransmission_timeout {
            return Err("transaction_lifetime: must be >= retransmission_timeout".into());
        }
        if let Some(m) = self.duplicate_margin {
            if m.is_zero() || m > self.transaction_lifetime {
                return Err(
                    "duplicate_margin: must be > 0 and at most transaction_lifetime".into(),
                );
            }
        }
        if !(64..=65_507).contains(&self.mtu) {
            return Err("mtu: must be between 64 and 65507".into());
        }
        if self.max_transactions == 0 {
            return Err("max_transactions: must be > 0".into());
        }
        if self.max_transactions_per_peer == 0 {
            return Err("max_transactions_per_peer: must be > 0".into());
        }
        if self.reassembly.max_messages == 0 || self.reassembly.max_bytes < self.mtu {
            return Err("reassembly: max_messages must be > 0 and max_bytes >= mtu".into());
        }
        if self.max_queue < 16 {
            return Err("max_queue: must be >= 16".into());
        }
        Ok(())
    }

    /// The ACK requestor's retransmission span: from the first send of a
    /// request or indication to its last retransmission (the sum of the
    /// intervals, with the backoff, over `max_retransmissions`; only
    /// retransmissions before the transaction lifetime ends happen).
    pub fn retransmission_span(&self) -> Duration {
        let mut at = Duration::ZERO;
        let mut last = Duration::ZERO;
        for k in 0..self.max_retransmissions {
            at = at.saturating_add(rto(self, k));
            if at >= self.transaction_lifetime {
                break;
            }
            last = at;
        }
        last
    }

    /// [`EngineConfig::duplicate_margin`], with its default.
    pub fn margin(&self) -> Duration {
        self.duplicate_margin.unwrap_or(self.retransmission_timeout)
    }

    /// How long a destination record of a request or indication that asked
    /// for an ACK serves duplicate detection, from its first copy: while the
    /// requester may still retransmit, plus the margin for delay
    /// ([`EngineConfig::retransmission_span`] + [`EngineConfig::margin`]).
    /// Both ends are assumed to use the same timers.
    pub fn duplicate_life(&self) -> Duration {
        self.retransmission_span().saturating_add(self.margin())
    }

    /// How long a TID towards a peer waits after an answered transaction
    /// over UDP before it is used again: the peer's duplicate life, and at
    /// least two margins (our last copy on its way to the peer, and the
    /// stored answer it re-sends on its way back).
    pub fn tid_quarantine(&self) -> Duration {
        self.duplicate_life().max(self.margin().saturating_mul(2))
    }

    /// The TIDs towards one peer: `max_transactions_per_peer`, at most 4095.
    pub fn tid_window(&self) -> u16 {
        self.max_transactions_per_peer
            .clamp(1, usize::from(MAX_TID)) as u16
    }

    /// Sustained answered transactions per second towards one peer over UDP
    /// (with the ACK procedure): [`EngineConfig::tid_window`] TIDs, each
    /// out of use for a round trip plus [`EngineConfig::tid_quarantine`];
    /// this ignores the round trip. Over TCP TIDs do not limit the rate.
    pub fn udp_rate_per_peer(&self) -> u64 {
        let q = self.tid_quarantine().as_secs_f64();
        if q <= 0.0 {
            return u64::MAX;
        }
        (f64::from(self.tid_window()) / q) as u64
    }
}

/// Identifies a destination transaction (an incoming request) for
/// [`Engine::send_response`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Inbound {
    pub peer: MihfId,
    pub tid: u16,
    /// Distinguishes records that reuse the same (peer, TID).
    pub serial: u64,
}

/// Why a source transaction failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailReason {
    /// Every (re)transmission went unacknowledged.
    NoAck,
    /// No response within the transaction lifetime.
    Timeout,
}

/// What the engine reports to its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A new request from a peer; answer with [`Engine::send_response`].
    Request {
        inbound: Inbound,
        from: Endpoint,
        msg: Message,
    },
    /// A new indication from a peer (nothing to answer).
    Indication { from: Endpoint, msg: Message },
    /// The response to one of our requests.
    Response {
        token: Token,
        from: Endpoint,
        msg: Message,
        /// From the first send of the request to the response.
        rtt: Duration,
    },
    /// One of our indications was acknowledged.
    Delivered { token: Token },
    /// One of our requests or indications failed.
    Failed {
        token: Token,
        mid: Mid,
        reason: FailReason,
    },
    /// A request we delivered was never answered within its lifetime.
    Expired { inbound: Inbound },
}

/// Why an incoming frame was dropped.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RxError {
    #[error("decode: {0}")]
    Decode(#[from] wire::Error),
    #[error("fragment: {0}")]
    Fragment(#[from] FragmentError),
    #[error("destination MIHF ID {0} is not ours")]
    WrongDestination(MihfId),
    #[error("{0} with opcode confirm is not valid between MIHFs")]
    BadOpcode(String),
    #[error("duplicate of {peer} TID {tid}")]
    Duplicate { peer: MihfId, tid: u16 },
    #[error("no transaction {tid} with {peer} for this {what}")]
    Unmatched {
        peer: MihfId,
        tid: u16,
        what: &'static str,
    },
    #[error("destination transaction table full ({0})")]
    TableFull(usize),
    #[error("{peer} already has {max} open destination transactions")]
    PeerTableFull { peer: MihfId, max: usize },
}

/// Why a send was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SendError {
    #[error("encode: {0}")]
    Encode(#[from] wire::Error),
    #[error("fragment: {0}")]
    Fragment(#[from] FragmentError),
    #[error("source transaction table full ({0})")]
    TableFull(usize),
    /// Every TID towards the peer is held by an open transaction or in
    /// quarantine (back-pressure: send later).
    #[error("no free transaction ID towards {peer}")]
    NoFreeTid {
        peer: MihfId,
        /// When a quarantined TID comes free; `None`: every TID is held by
        /// an open transaction (one frees when it ends).
        free_at: Option<Instant>,
    },
    #[error("the destination transaction is gone (expired or answered)")]
    NoSuchTransaction,
    #[error("a peer endpoint must be UDP or TCP")]
    NotAPeer,
}

/// Counters, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub frames_in: u64,
    pub frames_out: u64,
    pub decode_errors: u64,
    pub fragments_in: u64,
    pub fragments_out: u64,
    pub reassembled: u64,
    pub reassembly_errors: u64,
    pub reassembly_timeouts: u64,
    pub retransmissions: u64,
    pub duplicates: u64,
    pub acks_sent: u64,
    pub acks_received: u64,
    pub piggybacked_acks: u64,
    pub unmatched: u64,
    pub wrong_destination: u64,
    pub bad_opcode: u64,
    pub table_full: u64,
    /// Requests refused because their peer had `max_transactions_per_peer`
    /// open destination transactions.
    pub peer_table_full: u64,
    pub failed_no_ack: u64,
    pub failed_timeout: u64,
    pub expired_unanswered: u64,
    /// Sends refused because no TID towards the peer was free
    /// ([`SendError::NoFreeTid`]).
    pub tid_exhausted: u64,
    pub queue_overflow: u64,
}

/// How a source transaction ended, for its TID's quarantine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Refused before anything was sent.
    NotSent,
    /// The response arrived; `peer_retransmits`: it asked for our ACK.
    Answered { peer_retransmits: bool },
    /// The indication was acknowledged.
    Delivered,
    /// An indication sent once, without ACK-Req.
    SentOnce,
    /// No ACK, no response in the lifetime, or the transport failed.
    Failed { request: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Side {
    Out,
    In,
}

type Key = (MihfId, u16);
type TimerKey = (Instant, u64);

#[derive(Debug, Clone, Copy)]
struct Retx {
    /// Retransmissions done.
    count: u8,
    next: Instant,
}

#[derive(Debug)]
enum OutState {
    Waiting,
    /// Answered (the stored pure ACK of the response is re-sent to duplicates)
    /// or failed; kept until the deadline.
    Done {
        ack: Option<Bytes>,
    },
}

#[derive(Debug)]
struct Outgoing {
    token: Token,
    mid: Mid,
    to: Endpoint,
    /// Sent with ACK-Req (the peer keeps a duplicate record for
    /// [`EngineConfig::duplicate_life`]).
    ack_req: bool,
    frames: Vec<Bytes>,
    started: Instant,
    deadline: Instant,
    retx: Option<Retx>,
    state: OutState,
    wake: Option<TimerKey>,
}

#[derive(Debug)]
enum AckState {
    NotRequested,
    Pending { due: Instant },
    Sent(Bytes),
    Piggybacked,
}

#[derive(Debug)]
struct Incoming {
    serial: u64,
    mid: Mid,
    from: Endpoint,
    payload: Bytes,
    /// First copy + transaction lifetime: an unanswered request expires
    /// then, and a response is not retransmitted past it (the requester
    /// has given up).
    deadline: Instant,
    /// First copy + duplicate life: until then a copy is a duplicate.
    dup_until: Instant,
    ack: AckState,
    response: Option<Vec<Bytes>>,
    response_retx: Option<Retx>,
    wake: Option<TimerKey>,
}

/// The transaction engine. See the module documentation.
#[derive(Debug)]
pub struct Engine {
    cfg: EngineConfig,
    tids: TidAllocator,
    next_token: u64,
    next_serial: u64,
    outgoing: HashMap<Key, Outgoing>,
    incoming: HashMap<Key, Incoming>,
    /// Destination transactions per peer (the keys of `incoming`, counted).
    incoming_per_peer: HashMap<MihfId, usize>,
    timers: BTreeMap<TimerKey, (Side, Key)>,
    reasm: Reassembler,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: EngineStats,
}

impl Engine {
    pub fn new(cfg: EngineConfig) -> Engine {
        let reasm = Reassembler::new(cfg.reassembly);
        let tids = TidAllocator::with_seed(cfg.tid_window(), cfg.tid_seed);
        Engine {
            cfg,
            tids,
            next_token: 1,
            next_serial: 1,
            outgoing: HashMap::new(),
            incoming: HashMap::new(),
            incoming_per_peer: HashMap::new(),
            timers: BTreeMap::new(),
            reasm,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: EngineStats::default(),
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }
    pub fn own_id(&self) -> &MihfId {
        &self.cfg.own_id
    }
    pub fn stats(&self) -> EngineStats {
        let mut s = self.stats;
        s.reassembly_timeouts = self.reasm.timed_out;
        s
    }
    /// Open source and destination transactions.
    pub fn open_transactions(&self) -> (usize, usize) {
        (self.outgoing.len(), self.incoming.len())
    }
    /// The TIDs towards `peer` held by open transactions and in quarantine.
    pub fn tid_usage(&self, peer: &MihfId) -> TidUsage {
        self.tids.usage(peer)
    }
    /// True while we keep a destination record (duplicate detection, a
    /// request waiting for its user, a response being retransmitted) of
    /// `tid` from `peer`.
    pub fn has_destination_record(&self, peer: &MihfId, tid: u16) -> bool {
        self.incoming.contains_key(&(peer.clone(), tid))
    }
    /// True while a source transaction of ours holds `tid` towards `peer`
    /// (not counting the quarantine after it ended).
    pub fn tid_in_use(&self, peer: &MihfId, tid: u16) -> bool {
        self.tids.is_out(peer, tid)
    }
    /// Messages in reassembly and their buffered octets.
    pub fn reassembly_usage(&self) -> (usize, usize) {
        (self.reasm.in_progress(), self.reasm.buffered_bytes())
    }

    // ------------------------------------------------------------------ outputs

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
    /// The next instant at which [`Engine::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let t = self.timers.keys().next().map(|k| k.0);
        match (t, self.reasm.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn send(&mut self, to: Endpoint, payload: Bytes) {
        if self.transmits.len() >= self.cfg.max_queue {
            self.stats.queue_overflow += 1;
            return;
        }
        self.stats.frames_out += 1;
        self.transmits.push_back(Transmit { to, payload });
    }

    fn send_all(&mut self, to: Endpoint, frames: &[Bytes]) {
        if frames.len() > 1 {
            self.stats.fragments_out += frames.len() as u64;
        }
        for f in frames {
            self.send(to, f.clone());
        }
    }

    fn event(&mut self, e: Event) {
        if self.events.len() >= self.cfg.max_queue {
            self.stats.queue_overflow += 1;
            return;
        }
        self.events.push_back(e);
    }

    fn arm(&mut self, side: Side, key: &Key, when: Option<Instant>) {
        let serial = self.next_serial;
        self.next_serial += 1;
        let slot = match side {
            Side::Out => self.outgoing.get_mut(key).map(|r| &mut r.wake),
            Side::In => self.incoming.get_mut(key).map(|r| &mut r.wake),
        };
        let Some(slot) = slot else { return };
        if let Some(old) = slot.take() {
            self.timers.remove(&old);
        }
        if let Some(when) = when {
            *slot = Some((when, serial));
            self.timers.insert((when, serial), (side, key.clone()));
        }
    }

    fn remove_out(&mut self, key: &Key) -> Option<Outgoing> {
        let rec = self.outgoing.remove(key)?;
        if let Some(w) = rec.wake {
            self.timers.remove(&w);
        }
        Some(rec)
    }

    fn remove_in(&mut self, key: &Key) -> Option<Incoming> {
        let rec = self.incoming.remove(key)?;
        if let Some(n) = self.incoming_per_peer.get_mut(&key.0) {
            *n -= 1;
            if *n == 0 {
                self.incoming_per_peer.remove(&key.0);
            }
        }
        if let Some(w) = rec.wake {
            self.timers.remove(&w);
        }
        Some(rec)
    }

    fn encode(&self, msg: &Message, to: Endpoint) -> Result<Vec<Bytes>, SendError> {
        let bytes = msg.to_bytes()?;
        if to.is_reliable() {
            Ok(vec![bytes])
        } else {
            Ok(fragment(&bytes, self.cfg.mtu)?)
        }
    }

    fn pure_ack(&self, mid: Mid, tid: u16, peer: &MihfId) -> Bytes {
        let mut m = Message::new(mid, tid, self.cfg.own_id.clone(), peer.clone(), Body::Ack);
        m.header.ack_rsp = true;
        // Two IDs of at most 253 octets each always fit in a frame.
        m.to_bytes().unwrap_or_default()
    }

    fn rto(&self, count: u8) -> Duration {
        rto(&self.cfg, count)
    }

    /// How long a destination record serves duplicate detection from the
    /// first copy of its message: [`EngineConfig::duplicate_life`] if the
    /// message asked for an ACK (its sender retransmits, over TCP too), one
    /// margin over UDP without (the network may still duplicate it), none
    /// over TCP without.
    fn dup_life(&self, ack_req: bool, from: Endpoint) -> Duration {
        if ack_req {
            self.cfg.duplicate_life()
        } else if from.is_reliable() {
            Duration::ZERO
        } else {
            self.cfg.margin()
        }
    }

    // ------------------------------------------------------------- source side

    fn alloc_tid(&mut self, now: Instant, peer: &MihfId) -> Result<u16, SendError> {
        let tid = match self.tids.alloc(peer, now) {
            Ok(t) => t,
            Err(free_at) => {
                self.stats.tid_exhausted += 1;
                return Err(SendError::NoFreeTid {
                    peer: peer.clone(),
                    free_at,
                });
            }
        };
        // A finished record may outlive its TID's quarantine only if the
        // caller's clock went backwards; it is bookkeeping only.
        let key = (peer.clone(), tid);
        debug_assert!(
            !matches!(
                self.outgoing.get(&key).map(|r| &r.state),
                Some(OutState::Waiting)
            ),
            "a free TID with an open transaction"
        );
        self.remove_out(&key);
        Ok(tid)
    }

    /// How long the TID of a source transaction that ended at `now` stays
    /// out of use (see "TID quarantine" in mihf/README.md). The TID may be
    /// used again once (1) the peer has dropped its record of the old
    /// transaction, so that the new request is not taken for a duplicate,
    /// and (2) no frame of the old transaction is still on the way to
    /// either side. Frames take less than a margin `m`; `d` is the duplicate
    /// life the peer gives our message (the full one if it asked for an
    /// ACK, one margin over UDP without, none over TCP without).
    ///
    /// * Answered (the response did not ask for an ACK) or acknowledged
    ///   (an indication): the peer made its record before it answered, so
    ///   before `now`, and drops it by `now + d`; we sent our last copy
    ///   before `now`, it reaches the peer before `now + m`, and what the
    ///   peer re-sends for it reaches us before `now + 2m`: `max(d, 2m)`.
    /// * The response asked for an ACK (the peer retransmits it): the peer
    ///   keeps the record until it has our ACK, at most until its lifetime
    ///   ends; a retransmission sent then arrives a margin later:
    ///   `max(d, lifetime) + m`.
    /// * Nothing heard, or no response (failure): the peer may have made
    ///   its record up to a margin after `now` and may answer until its
    ///   lifetime ends: `m + max(d, lifetime) + m`.
    /// * An indication sent once without ACK-Req: the peer's record is
    ///   made before `now + m` and lasts `d`; it sends nothing: `m + d`.
    /// * Over TCP without ACK-Req, answered or sent once: the peer keeps no
    ///   record after its answer and nothing is duplicated: 0.
    fn tid_hold(&self, end: End, ack_req: bool, to: Endpoint) -> Duration {
        let m = self.cfg.margin();
        let reliable = to.is_reliable() && !ack_req;
        let d = if ack_req {
            self.cfg.duplicate_life()
        } else if reliable {
            Duration::ZERO
        } else {
            m
        };
        let life = self.cfg.transaction_lifetime.max(d);
        match end {
            End::NotSent => Duration::ZERO,
            // Over TCP without ACK-Req the peer keeps no record after its
            // answer (or of an indication) and nothing is duplicated.
            End::Answered { .. } | End::Delivered | End::SentOnce if reliable => Duration::ZERO,
            End::Answered {
                peer_retransmits: false,
            }
            | End::Delivered => d.max(m + m),
            End::Answered {
                peer_retransmits: true,
            } => life + m,
            End::SentOnce => m + d,
            End::Failed { request: true } => m + life + m,
            End::Failed { request: false } => m + d + m,
        }
    }

    /// The source transaction `key` ended at `now`: its TID goes into
    /// quarantine.
    fn release_tid(&mut self, now: Instant, key: &Key, end: End, ack_req: bool, to: Endpoint) {
        let hold = self.tid_hold(end, ack_req, to);
        let released = self.tids.release(&key.0, key.1, now, hold);
        debug_assert!(released, "TID {} towards {} was not out", key.1, key.0);
    }

    fn make_room_out(&mut self) -> Result<(), SendError> {
        if self.outgoing.len() < self.cfg.max_transactions {
            return Ok(());
        }
        // Evict the finished record closest to its end, if any.
        let victim = self
            .outgoing
            .iter()
            .filter(|(_, r)| matches!(r.state, OutState::Done { .. }))
            .min_by_key(|(_, r)| r.deadline)
            .map(|(k, _)| k.clone());
        match victim {
            Some(k) => {
                self.remove_out(&k);
                Ok(())
            }
            None => Err(SendError::TableFull(self.cfg.max_transactions)),
        }
    }

    /// Start a source transaction: send `msg` (a request) to `peer` at `to`.
    /// The engine sets the TID and the ACK-Req, ACK-Rsp, M and FN bits;
    /// `msg.source` and `msg.destination` are sent as they are.
    pub fn send_request(
        &mut self,
        now: Instant,
        to: Endpoint,
        msg: Message,
    ) -> Result<(Token, u16), SendError> {
        self.start(now, to, msg, true)
    }

    /// Send an indication (e.g. an event) to a peer. Over UDP it asks for an
    /// ACK and is retransmitted until acknowledged ([`Event::Delivered`]) or
    /// given up ([`Event::Failed`]); otherwise it is sent once.
    pub fn send_indication(
        &mut self,
        now: Instant,
        to: Endpoint,
        msg: Message,
    ) -> Result<(Token, u16), SendError> {
        self.start(now, to, msg, false)
    }

    fn start(
        &mut self,
        now: Instant,
        to: Endpoint,
        mut msg: Message,
        is_request: bool,
    ) -> Result<(Token, u16), SendError> {
        if to.is_sap() {
            return Err(SendError::NotAPeer);
        }
        self.make_room_out()?;
        let peer = msg.destination.clone();
        let tid = self.alloc_tid(now, &peer)?;
        let key = (peer, tid);
        let ack_req = self.cfg.ack_requests && !to.is_reliable() && !key.0.is_broadcast();
        let h = &mut msg.header;
        h.tid = tid;
        h.ack_req = ack_req;
        h.ack_rsp = false;
        h.more_frag = false;
        h.frag_no = 0;
        let frames = match self.encode(&msg, to) {
            Ok(f) => f,
            Err(e) => {
                self.release_tid(now, &key, End::NotSent, ack_req, to);
                return Err(e);
            }
        };
        let token = Token(self.next_token);
        self.next_token += 1;
        self.send_all(to, &frames);
        if !is_request && !ack_req {
            self.release_tid(now, &key, End::SentOnce, ack_req, to);
            return Ok((token, tid));
        }
        let retx = ack_req.then(|| Retx {
            count: 0,
            next: now + self.rto(0),
        });
        let deadline = now + self.cfg.transaction_lifetime;
        self.outgoing.insert(
            key.clone(),
            Outgoing {
                token,
                mid: msg.header.mid,
                to,
                ack_req,
                frames,
                started: now,
                deadline,
                retx,
                state: OutState::Waiting,
                wake: None,
            },
        );
        let when = retx.map_or(deadline, |r| r.next.min(deadline));
        self.arm(Side::Out, &key, Some(when));
        Ok((token, tid))
    }

    // -------------------------------------------------------- destination side

    /// Answer the request identified by `inbound` with `msg` (a response).
    /// The engine sets the TID, piggy-backs a pending ACK (ACK-Rsp) and asks
    /// for an ACK of the response when the request asked for one and was
    /// already acknowledged with a pure ACK.
    pub fn send_response(
        &mut self,
        now: Instant,
        inbound: &Inbound,
        mut msg: Message,
    ) -> Result<(), SendError> {
        let key = (inbound.peer.clone(), inbound.tid);
        let (to, ack_rsp, ack_req) = match self.incoming.get(&key) {
            Some(r) if r.serial == inbound.serial && r.response.is_none() => {
                let pending = matches!(r.ack, AckState::Pending { .. });
                // Ask for an ACK only when the requester uses the ACK
                // procedure and already has its pure ACK (so it no longer
                // retransmits the request, which would fetch the response).
                let ack_req = self.cfg.ack_requests
                    && !r.from.is_reliable()
                    && matches!(r.ack, AckState::Sent(_))
                    && !inbound.peer.is_broadcast();
                (r.from, pending, ack_req)
            }
            _ => return Err(SendError::NoSuchTransaction),
        };
        let h = &mut msg.header;
        h.tid = inbound.tid;
        h.ack_rsp = ack_rsp;
        h.ack_req = ack_req;
        h.more_frag = false;
        h.frag_no = 0;
        let frames = self.encode(&msg, to)?;
        self.send_all(to, &frames);
        if ack_rsp {
            self.stats.piggybacked_acks += 1;
        }
        let rto = self.rto(0);
        let Some(r) = self.incoming.get_mut(&key) else {
            return Ok(());
        };
        if ack_rsp {
            r.ack = AckState::Piggybacked;
        }
        r.response = Some(frames);
        r.response_retx = ack_req.then(|| Retx {
            count: 0,
            next: now + rto,
        });
        if r.response_retx.is_none() && r.dup_until <= now {
            // Nothing will be retransmitted to us (TCP without ACK-Req):
            // the record has served its purpose.
            self.remove_in(&key);
            return Ok(());
        }
        let when = next_in_wake(r);
        self.arm(Side::In, &key, Some(when));
        Ok(())
    }

    // ------------------------------------------------------------------- input

    /// Reassemble (if needed) and decode one received frame. `Ok(None)` means
    /// a fragment was stored and the message is not complete yet.
    pub fn decode(
        &mut self,
        now: Instant,
        from: Endpoint,
        bytes: Bytes,
    ) -> Result<Option<(Bytes, Message)>, RxError> {
        self.stats.frames_in += 1;
        let frame = match Frame::parse(bytes) {
            Ok(f) => f,
            Err(e) => {
                self.stats.decode_errors += 1;
                return Err(e.into());
            }
        };
        let frame = if frame.is_fragment() {
            self.stats.fragments_in += 1;
            match self.reasm.push(now, from, &frame) {
                Ok(None) => return Ok(None),
                Ok(Some(whole)) => {
                    self.stats.reassembled += 1;
                    match Frame::parse(whole) {
                        Ok(f) => f,
                        Err(e) => {
                            self.stats.decode_errors += 1;
                            return Err(e.into());
                        }
                    }
                }
                Err(e) => {
                    self.stats.reassembly_errors += 1;
                    return Err(e.into());
                }
            }
        } else {
            frame
        };
        match Message::decode(&frame) {
            Ok(m) => Ok(Some((frame.into_bytes(), m))),
            Err(e) => {
                self.stats.decode_errors += 1;
                Err(e.into())
            }
        }
    }

    /// [`Engine::decode`] then [`Engine::handle_message`].
    pub fn handle_frame(
        &mut self,
        now: Instant,
        from: Endpoint,
        bytes: Bytes,
    ) -> Result<(), RxError> {
        match self.decode(now, from, bytes)? {
            Some((raw, msg)) => self.handle_message(now, from, &raw, msg),
            None => Ok(()),
        }
    }

    /// Run a decoded message through the transaction state machines. `raw` is
    /// the whole (reassembled) frame, used to recognise duplicates.
    pub fn handle_message(
        &mut self,
        now: Instant,
        from: Endpoint,
        raw: &Bytes,
        msg: Message,
    ) -> Result<(), RxError> {
        let own = &self.cfg.own_id;
        if msg.destination != *own && !msg.destination.is_broadcast() {
            self.stats.wrong_destination += 1;
            return Err(RxError::WrongDestination(msg.destination));
        }
        let op = msg.header.mid.opcode();
        match op {
            Opcode::Confirm => {
                self.stats.bad_opcode += 1;
                Err(RxError::BadOpcode(msg.name()))
            }
            Opcode::Request | Opcode::Indication if msg.header.ack_rsp => self.on_ack(now, msg),
            Opcode::Response if matches!(msg.body, Body::Ack) => self.on_ack(now, msg),
            Opcode::Response => self.on_response(now, from, msg),
            Opcode::Request | Opcode::Indication => self.on_request(now, from, raw, msg),
        }
    }

    fn on_ack(&mut self, now: Instant, msg: Message) -> Result<(), RxError> {
        let key = (msg.source.clone(), msg.header.tid);
        let mid = msg.header.mid;
        if mid.opcode() == Opcode::Response {
            // The ACK of one of our responses.
            if let Some(r) = self.incoming.get_mut(&key) {
                if r.mid.with_opcode(Opcode::Response) == mid && r.response_retx.is_some() {
                    r.response_retx = None;
                    self.stats.acks_received += 1;
                    if r.dup_until <= now {
                        self.remove_in(&key);
                    } else {
                        let when = next_in_wake(r);
                        self.arm(Side::In, &key, Some(when));
                    }
                    return Ok(());
                }
            }
        } else if let Some(r) = self.outgoing.get_mut(&key) {
            if r.mid == mid && matches!(r.state, OutState::Waiting) {
                self.stats.acks_received += 1;
                if r.retx.take().is_none() {
                    // Already acknowledged: a duplicate ACK.
                    self.stats.duplicates += 1;
                    return Err(RxError::Duplicate {
                        peer: key.0,
                        tid: key.1,
                    });
                }
                if mid.opcode() == Opcode::Indication {
                    let (token, ack_req, to) = (r.token, r.ack_req, r.to);
                    self.remove_out(&key);
                    self.release_tid(now, &key, End::Delivered, ack_req, to);
                    self.event(Event::Delivered { token });
                } else {
                    let when = r.deadline;
                    self.arm(Side::Out, &key, Some(when));
                }
                return Ok(());
            }
        }
        self.stats.unmatched += 1;
        Err(RxError::Unmatched {
            peer: key.0,
            tid: key.1,
            what: "ACK",
        })
    }

    fn on_response(&mut self, now: Instant, from: Endpoint, msg: Message) -> Result<(), RxError> {
        let key = (msg.source.clone(), msg.header.tid);
        let mid = msg.header.mid;
        let Some(r) = self.outgoing.get_mut(&key) else {
            self.stats.unmatched += 1;
            return Err(RxError::Unmatched {
                peer: key.0,
                tid: key.1,
                what: "response",
            });
        };
        if r.mid.with_opcode(Opcode::Response) != mid {
            self.stats.unmatched += 1;
            return Err(RxError::Unmatched {
                peer: key.0,
                tid: key.1,
                what: "response",
            });
        }
        if let OutState::Done { ack } = &r.state {
            self.stats.duplicates += 1;
            if let (Some(a), true) = (ack.clone(), msg.header.ack_req) {
                let to = r.to;
                self.stats.acks_sent += 1;
                self.send(to, a);
            }
            return Err(RxError::Duplicate {
                peer: key.0,
                tid: key.1,
            });
        }
        let token = r.token;
        let rtt = now.saturating_duration_since(r.started);
        let (to, ack_req) = (r.to, r.ack_req);
        if r.retx.take().is_some() && msg.header.ack_rsp {
            self.stats.acks_received += 1;
        }
        let end = End::Answered {
            peer_retransmits: msg.header.ack_req,
        };
        self.release_tid(now, &key, end, ack_req, to);
        let ack = (msg.header.ack_req && !msg.destination.is_broadcast())
            .then(|| self.pure_ack(mid, key.1, &key.0));
        match ack {
            Some(a) => {
                self.stats.acks_sent += 1;
                self.send(to, a.clone());
                if let Some(r) = self.outgoing.get_mut(&key) {
                    r.state = OutState::Done { ack: Some(a) };
                    let when = r.deadline;
                    self.arm(Side::Out, &key, Some(when));
                }
            }
            None => {
                self.remove_out(&key);
            }
        }
        self.event(Event::Response {
            token,
            from,
            msg,
            rtt,
        });
        Ok(())
    }

    fn on_request(
        &mut self,
        now: Instant,
        from: Endpoint,
        raw: &Bytes,
        msg: Message,
    ) -> Result<(), RxError> {
        let key = (msg.source.clone(), msg.header.tid);
        let mid = msg.header.mid;
        let is_request = mid.opcode() == Opcode::Request;
        let wants_ack = msg.header.ack_req && !msg.destination.is_broadcast();
        let dup_life = self.dup_life(msg.header.ack_req, from);
        if !is_request && !wants_ack && dup_life.is_zero() {
            // An indication over TCP that asked for nothing: no record.
            self.event(Event::Indication { from, msg });
            return Ok(());
        }
        let payload = raw.slice(wire::HEADER_LEN.min(raw.len())..);
        if let Some(r) = self.incoming.get(&key) {
            if r.mid == mid && r.payload == payload {
                self.stats.duplicates += 1;
                let resend: Vec<Bytes> = match (&r.response, &r.ack) {
                    (Some(frames), _) => frames.clone(),
                    (None, AckState::Sent(a)) => {
                        self.stats.acks_sent += 1;
                        vec![a.clone()]
                    }
                    _ => Vec::new(),
                };
                let to = r.from;
                for f in resend {
                    self.send(to, f);
                }
                return Err(RxError::Duplicate {
                    peer: key.0,
                    tid: key.1,
                });
            }
            // The peer reused the TID: a new transaction replaces the old one.
            self.remove_in(&key);
        }
        if self.incoming_per_peer.get(&key.0).copied().unwrap_or(0)
            >= self.cfg.max_transactions_per_peer
        {
            // Make room among this peer's own records: the answered one
            // closest to its end.
            let victim = self
                .incoming
                .iter()
                .filter(|(k, r)| k.0 == key.0 && answered(r))
                .min_by_key(|(_, r)| r.dup_until)
                .map(|(k, _)| k.clone());
            match victim {
                Some(k) => {
                    self.remove_in(&k);
                }
                None => {
                    self.stats.peer_table_full += 1;
                    return Err(RxError::PeerTableFull {
                        peer: key.0,
                        max: self.cfg.max_transactions_per_peer,
                    });
                }
            }
        }
        if self.incoming.len() >= self.cfg.max_transactions {
            // Make room: forget the answered record (a request with its
            // response, or an acknowledged indication) closest to its end.
            // A request still waiting for its response is never forgotten.
            let victim = self
                .incoming
                .iter()
                .filter(|(_, r)| answered(r))
                .min_by_key(|(_, r)| r.dup_until)
                .map(|(k, _)| k.clone());
            match victim {
                Some(k) => {
                    self.remove_in(&k);
                }
                None => {
                    self.stats.table_full += 1;
                    return Err(RxError::TableFull(self.cfg.max_transactions));
                }
            }
        }
        let ack = if !wants_ack {
            AckState::NotRequested
        } else if is_request && !self.cfg.ack_delay.is_zero() {
            AckState::Pending {
                due: now + self.cfg.ack_delay,
            }
        } else {
            let a = self.pure_ack(mid, key.1, &key.0);
            self.stats.acks_sent += 1;
            self.send(from, a.clone());
            AckState::Sent(a)
        };
        let serial = self.next_serial;
        self.next_serial += 1;
        let rec = Incoming {
            serial,
            mid,
            from,
            payload,
            deadline: now + self.cfg.transaction_lifetime,
            dup_until: now + dup_life,
            ack,
            response: None,
            response_retx: None,
            wake: None,
        };
        let when = next_in_wake(&rec);
        self.incoming.insert(key.clone(), rec);
        *self.incoming_per_peer.entry(key.0.clone()).or_insert(0) += 1;
        self.arm(Side::In, &key, Some(when));
        if is_request {
            self.event(Event::Request {
                inbound: Inbound {
                    peer: key.0,
                    tid: key.1,
                    serial,
                },
                from,
                msg,
            });
        } else {
            self.event(Event::Indication { from, msg });
        }
        Ok(())
    }

    /// The transport to `to` failed (e.g. a TCP connection was refused or
    /// reset): every source transaction still waiting on it fails at once
    /// with [`FailReason::NoAck`].
    pub fn endpoint_failed(&mut self, now: Instant, to: Endpoint) {
        let keys: Vec<Key> = self
            .outgoing
            .iter()
            .filter(|(_, r)| r.to == to && matches!(r.state, OutState::Waiting))
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            if let Some(r) = self.remove_out(&k) {
                let request = r.mid.opcode() == Opcode::Request;
                self.release_tid(now, &k, End::Failed { request }, r.ack_req, r.to);
                self.stats.failed_no_ack += 1;
                self.event(Event::Failed {
                    token: r.token,
                    mid: r.mid,
                    reason: FailReason::NoAck,
                });
            }
        }
    }

    // ------------------------------------------------------------------ timers

    /// Run every timer that is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.reasm.expire(now);
        while let Some((&tk, _)) = self.timers.iter().next() {
            if tk.0 > now {
                break;
            }
            let Some((side, key)) = self.timers.remove(&tk) else {
                break;
            };
            match side {
                Side::Out => {
                    if let Some(r) = self.outgoing.get_mut(&key) {
                        r.wake = None;
                    }
                    self.out_timer(now, &key);
                }
                Side::In => {
                    if let Some(r) = self.incoming.get_mut(&key) {
                        r.wake = None;
                    }
                    self.in_timer(now, &key);
                }
            }
        }
    }

    fn out_timer(&mut self, now: Instant, key: &Key) {
        let Some(r) = self.outgoing.get_mut(key) else {
            return;
        };
        if matches!(r.state, OutState::Done { .. }) {
            if r.deadline <= now {
                self.remove_out(key);
            } else {
                let when = r.deadline;
                self.arm(Side::Out, key, Some(when));
            }
            return;
        }
        if r.deadline <= now {
            let (token, mid, ack_req, to) = (r.token, r.mid, r.ack_req, r.to);
            self.remove_out(key);
            let request = mid.opcode() == Opcode::Request;
            self.release_tid(now, key, End::Failed { request }, ack_req, to);
            self.stats.failed_timeout += 1;
            self.event(Event::Failed {
                token,
                mid,
                reason: FailReason::Timeout,
            });
            return;
        }
        if let Some(retx) = r.retx {
            if retx.next <= now {
                if retx.count >= self.cfg.max_retransmissions {
                    let (token, mid, ack_req, to) = (r.token, r.mid, r.ack_req, r.to);
                    r.retx = None;
                    r.state = OutState::Done { ack: None };
                    let when = r.deadline;
                    let request = mid.opcode() == Opcode::Request;
                    self.release_tid(now, key, End::Failed { request }, ack_req, to);
                    self.stats.failed_no_ack += 1;
                    self.event(Event::Failed {
                        token,
                        mid,
                        reason: FailReason::NoAck,
                    });
                    if mid.opcode() == Opcode::Indication {
                        self.remove_out(key);
                    } else {
                        self.arm(Side::Out, key, Some(when));
                    }
                    return;
                }
                let count = retx.count + 1;
                let next = now + rto(&self.cfg, count);
                let (to, frames) = (r.to, r.frames.clone());
                r.retx = Some(Retx { count, next });
                self.stats.retransmissions += 1;
                self.send_all(to, &frames);
            }
        }
        let Some(r) = self.outgoing.get(key) else {
            return;
        };
        let when = r.retx.map_or(r.deadline, |x| x.next.min(r.deadline));
        self.arm(Side::Out, key, Some(when));
    }

    fn in_timer(&mut self, now: Instant, key: &Key) {
        let Some(r) = self.incoming.get_mut(key) else {
            return;
        };
        if !answered(r) && r.deadline <= now {
            let inbound = Inbound {
                peer: key.0.clone(),
                tid: key.1,
                serial: r.serial,
            };
            self.remove_in(key);
            self.stats.expired_unanswered += 1;
            self.event(Event::Expired { inbound });
            return;
        }
        let mut out: Vec<Bytes> = Vec::new();
        if let AckState::Pending { due } = r.ack {
            if due <= now {
                let a = {
                    let mut m = Message::new(
                        r.mid,
                        key.1,
                        self.cfg.own_id.clone(),
                        key.0.clone(),
                        Body::Ack,
                    );
                    m.header.ack_rsp = true;
                    m.to_bytes().unwrap_or_default()
                };
                r.ack = AckState::Sent(a.clone());
                self.stats.acks_sent += 1;
                out.push(a);
            }
        }
        if r.response_retx.is_some() && r.deadline <= now {
            // The requester gave up on its response by now.
            r.response_retx = None;
        }
        if let Some(retx) = r.response_retx {
            if retx.next <= now {
                if retx.count >= self.cfg.max_retransmissions {
                    r.response_retx = None;
                    self.stats.failed_no_ack += 1;
                } else {
                    let count = retx.count + 1;
                    let next = now + rto(&self.cfg, count);
                    r.response_retx = Some(Retx { count, next });
                    self.stats.retransmissions += 1;
                    out.extend(r.response.iter().flatten().cloned());
                }
            }
        }
        let to = r.from;
        let done = answered(r) && r.response_retx.is_none() && r.dup_until <= now;
        let when = next_in_wake(r);
        for f in out {
            self.send(to, f);
        }
        if done {
            self.remove_in(key);
        } else {
            self.arm(Side::In, key, Some(when));
        }
    }
}

/// The retransmission interval after `count` retransmissions.
fn rto(cfg: &EngineConfig, count: u8) -> Duration {
    let factor = cfg.retransmission_backoff.saturating_pow(u32::from(count));
    cfg.retransmission_timeout.saturating_mul(factor)
}

/// A destination record that only serves duplicate detection now.
fn answered(r: &Incoming) -> bool {
    r.response.is_some() || r.mid.opcode() == Opcode::Indication
}

/// When the record has work: its ACK delay, its response retransmission
/// (not past the deadline), its expiry while unanswered, or the end of its
/// duplicate life once answered (and no longer retransmitting).
fn next_in_wake(r: &Incoming) -> Instant {
    let mut t = if !answered(r) {
        r.deadline
    } else if let Some(x) = r.response_retx {
        x.next.min(r.deadline)
    } else {
        r.dup_until
    };
    if let AckState::Pending { due } = r.ack {
        t = t.min(due);
    }
    t
}
