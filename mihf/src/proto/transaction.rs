//! The IEEE 802.21 transaction engine between peer MIHFs (clause 8.2.4),
//! sans-IO.
//!
//! * **Source transactions** ([`Engine::send_request`],
//!   [`Engine::send_indication`]): a TID is allocated, the frame is sent (cut
//!   into fragments over UDP when it exceeds the MTU) with ACK-Req set over
//!   UDP, and re-sent by the ACK requestor every retransmission interval
//!   (doubling with the configured backoff) until an ACK, a piggy-backed ACK or
//!   the response arrives, or the retransmissions run out. A request whose
//!   response does not arrive within the transaction lifetime fails.
//! * **Destination transactions**: an incoming request or indication opens
//!   a record keyed by (peer MIHF ID, TID). If it asked for an ACK, the ACK
//!   responder waits up to `ack_delay` for the response so that it can
//!   piggy-back the ACK on it (ACK-Rsp set in the response); otherwise it sends
//!   a pure ACK (same MID and TID, ACK-Rsp set, only the two ID TLVs), and the
//!   later response then asks for an ACK of its own. A duplicate request (same
//!   peer, TID, MID and payload) is not delivered again: the stored ACK or
//!   response is re-sent. Records live for the transaction lifetime.
//! * Over TCP (reliable) nothing asks for an ACK and nothing is retransmitted
//!   or fragmented; an ACK-Req received over TCP is still honoured.
//!
//! Every table has a configured cap; a frame that would exceed one is dropped
//! and counted, and every drop returns a typed [`RxError`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use thiserror::Error;

use super::fragment::{fragment, FragmentError, Reassembler, ReassemblyLimits};
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
    /// destination transaction is remembered for duplicate detection.
    pub transaction_lifetime: Duration,
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
    /// table from the others.
    pub max_transactions_per_peer: usize,
    /// Reassembly limits.
    pub reassembly: ReassemblyLimits,
    /// Cap of the transmit and event queues (drained by the driver).
    pub max_queue: usize,
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
            ack_delay: Duration::from_millis(200),
            ack_requests: true,
            mtu: 1400,
            max_transactions: 16_384,
            max_transactions_per_peer: 1024,
            reassembly: ReassemblyLimits::default(),
            max_queue: 65_536,
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
    #[error("no free transaction ID towards {0}")]
    NoFreeTid(MihfId),
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
    pub queue_overflow: u64,
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
    expires: Instant,
    ack: AckState,
    response: Option<Vec<Bytes>>,
    response_retx: Option<Retx>,
    wake: Option<TimerKey>,
}

/// The transaction engine. See the module documentation.
#[derive(Debug)]
pub struct Engine {
    cfg: EngineConfig,
    next_tid: u16,
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
        Engine {
            cfg,
            next_tid: 1,
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

    // ------------------------------------------------------------- source side

    fn alloc_tid(&mut self, peer: &MihfId) -> Result<u16, SendError> {
        for _ in 0..4095 {
            let tid = self.next_tid;
            self.next_tid = if tid >= 4095 { 1 } else { tid + 1 };
            let key = (peer.clone(), tid);
            match self.outgoing.get(&key) {
                None => return Ok(tid),
                Some(r) if matches!(r.state, OutState::Done { .. }) => {
                    self.remove_out(&key);
                    return Ok(tid);
                }
                Some(_) => {}
            }
        }
        Err(SendError::NoFreeTid(peer.clone()))
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
        let tid = self.alloc_tid(&peer)?;
        let ack_req = self.cfg.ack_requests && !to.is_reliable() && !peer.is_broadcast();
        let h = &mut msg.header;
        h.tid = tid;
        h.ack_req = ack_req;
        h.ack_rsp = false;
        h.more_frag = false;
        h.frag_no = 0;
        let frames = self.encode(&msg, to)?;
        let token = Token(self.next_token);
        self.next_token += 1;
        self.send_all(to, &frames);
        if !is_request && !ack_req {
            return Ok((token, tid));
        }
        let retx = ack_req.then(|| Retx {
            count: 0,
            next: now + self.rto(0),
        });
        let deadline = now + self.cfg.transaction_lifetime;
        let key = (peer, tid);
        self.outgoing.insert(
            key.clone(),
            Outgoing {
                token,
                mid: msg.header.mid,
                to,
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
                    let when = next_in_wake(r);
                    self.arm(Side::In, &key, Some(when));
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
                    let token = r.token;
                    self.remove_out(&key);
                    self.event(Event::Delivered { token });
                } else {
                    let when = r.deadline;
                    self.arm(Side::Out, &key, Some(when));
                }
                let _ = now;
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
        let to = r.to;
        if r.retx.take().is_some() && msg.header.ack_rsp {
            self.stats.acks_received += 1;
        }
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
                .min_by_key(|(_, r)| r.expires)
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
                .min_by_key(|(_, r)| r.expires)
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
        let wants_ack = msg.header.ack_req && !msg.destination.is_broadcast();
        let is_request = mid.opcode() == Opcode::Request;
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
            expires: now + self.cfg.transaction_lifetime,
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
    pub fn endpoint_failed(&mut self, to: Endpoint) {
        let keys: Vec<Key> = self
            .outgoing
            .iter()
            .filter(|(_, r)| r.to == to && matches!(r.state, OutState::Waiting))
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            if let Some(r) = self.remove_out(&k) {
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
            let (token, mid) = (r.token, r.mid);
            self.remove_out(key);
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
                    let (token, mid) = (r.token, r.mid);
                    r.retx = None;
                    r.state = OutState::Done { ack: None };
                    let when = r.deadline;
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
        if r.expires <= now {
            let unanswered = r.response.is_none() && r.mid.opcode() == Opcode::Request;
            let inbound = Inbound {
                peer: key.0.clone(),
                tid: key.1,
                serial: r.serial,
            };
            self.remove_in(key);
            if unanswered {
                self.stats.expired_unanswered += 1;
                self.event(Event::Expired { inbound });
            }
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
        let when = next_in_wake(r);
        for f in out {
            self.send(to, f);
        }
        self.arm(Side::In, key, Some(when));
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

fn next_in_wake(r: &Incoming) -> Instant {
    let mut t = r.expires;
    if let AckState::Pending { due } = r.ack {
        t = t.min(due);
    }
    if let Some(x) = r.response_retx {
        t = t.min(x.next);
    }
    t
}
