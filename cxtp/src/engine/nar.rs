//! New access router.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Instant;

use bytes::Bytes;

use super::{Config, Dedup, EngineError, FailReason, RateLimiter, Transmit};
use crate::profile::echo::Echo;
use crate::profile::{status, verdict, Context, ProfileRegistry};
use crate::segment::{parse_block_ref, Reassembler, Received, SegmentBlockRef, TransferBlock};
use crate::token::{self, Algorithm, AuthKey};
use crate::wire::{
    CtReqRepr, CtaaRepr, Ctar, Ctc, CtdrRepr, MessageRepr, MessageView, RequestBlock, StatusEntry,
    Token,
};

/// Events from the nAR engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NarEvent {
    /// Authorized contexts for `mn`: install them (decode each with the
    /// [`ProfileRegistry`]).
    ContextsReceived {
        /// MN (previous address).
        mn: IpAddr,
        /// pAR they came from.
        par: IpAddr,
        /// The contexts.
        contexts: Vec<Context>,
        /// Per-FPT result sent in the CTDR (empty when all succeeded).
        entries: Vec<StatusEntry>,
    },
    /// The operation for `mn` ended without contexts.
    TransferFailed {
        /// MN.
        mn: IpAddr,
        /// pAR, if known.
        par: Option<IpAddr>,
        /// Why.
        reason: FailReason,
    },
    /// A token did not verify (contexts and key discarded).
    AuthFailed {
        /// MN.
        mn: IpAddr,
        /// Who sent the CTAR or CTD.
        from: IpAddr,
    },
    /// A message was not valid CXTP.
    Malformed {
        /// Sender.
        from: IpAddr,
        /// Decoder message.
        error: String,
    },
}

/// Counters of the nAR engine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NarStats {
    /// CTD/PCTDs for an MN that expects an identified transfer, carrying
    /// another transfer id or none, or from another router: dropped before
    /// reassembly.
    pub ctd_stale: u64,
    /// Repeated messages of an identified transfer: dropped without a
    /// CTDR (the first copy was answered).
    pub ctd_duplicate: u64,
}

#[derive(Clone)]
struct CtarInfo {
    seq: u32,
    token: Token,
    requests: Bytes,
    ack: bool,
    reply_to: IpAddr,
}

impl CtarInfo {
    fn from_ctar(c: &Ctar, from: IpAddr) -> Self {
        CtarInfo {
            seq: c.seq,
            token: c.token,
            requests: c.request_bytes().clone(),
            ack: c.ack,
            reply_to: from,
        }
    }
}

struct MnState {
    par: Option<IpAddr>,
    ctar: Option<CtarInfo>,
    /// We sent a CT-Req carrying the MN's real token, so pAR verifies.
    token_forwarded: bool,
    /// [`NewRouter::expect_transfer`] with `defer_ack`: the final CTDR
    /// waits for [`NewRouter::acknowledge`].
    defer_ack: bool,
    /// [`NewRouter::expect_transfer`] with a transfer id: only messages
    /// carrying it are taken, and every CTDR echoes it.
    transfer_id: Option<NonZeroU32>,
    held: Option<(Vec<Context>, Vec<StatusEntry>, AuthKey)>,
    deadline: Instant,
}

/// The nAR state machine. See the [module docs](super).
pub struct NewRouter {
    cfg: Config,
    registry: ProfileRegistry,
    states: HashMap<IpAddr, MnState>,
    reasm: Reassembler,
    dedup: Dedup,
    rate: RateLimiter,
    answered: VecDeque<(u32, IpAddr, IpAddr, Bytes, Instant)>,
    /// Complete transfers whose final CTDR the application sends
    /// ([`NewRouter::acknowledge`]).
    deferred: HashMap<IpAddr, Deferred>,
    transmit: VecDeque<(IpAddr, Bytes)>,
    events: VecDeque<NarEvent>,
    stats: NarStats,
}

struct Deferred {
    par: IpAddr,
    /// Identified transfer: the echo of its verdict.
    echo: Option<Echo>,
}

const ANSWERED_CAP: usize = 1024;

enum Auth {
    Install,
    Hold(AuthKey),
    Reject,
}

impl NewRouter {
    /// New engine; `registry` decides which FPTs are supported.
    pub fn new(cfg: Config, registry: ProfileRegistry) -> Self {
        NewRouter {
            reasm: Reassembler::new(cfg.segment.clone()),
            dedup: Dedup::new(cfg.dedup_window),
            rate: RateLimiter::new(cfg.request_rate),
            cfg,
            registry,
            states: HashMap::new(),
            answered: VecDeque::new(),
            deferred: HashMap::new(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            stats: NarStats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> NarStats {
        self.stats
    }

    /// Whether an operation for `mn` is in progress.
    pub fn is_busy(&self, mn: &IpAddr) -> bool {
        self.states.contains_key(mn) || self.reasm.is_in_progress(mn)
    }

    /// Network-triggered reactive transfer (RFC 4067 §5.2): ask `par` for
    /// `mn`'s contexts with an all-zero token, before any CTAR.
    pub fn start_reactive(
        &mut self,
        now: Instant,
        mn: IpAddr,
        par: IpAddr,
        requests: Vec<RequestBlock>,
    ) -> Result<(), EngineError> {
        if self.is_busy(&mn) {
            return Err(EngineError::Busy(mn));
        }
        self.send(
            par,
            MessageRepr::CtReq(CtReqRepr {
                mn_addr: mn,
                seq: 0,
                token: Token::ZERO,
                requests,
            }),
        );
        self.states.insert(
            mn,
            MnState {
                par: Some(par),
                ctar: None,
                token_forwarded: false,
                defer_ack: false,
                transfer_id: None,
                held: None,
                deadline: now + self.cfg.max_transfer_time,
            },
        );
        Ok(())
    }

    /// Expect a keyless CTD push for `mn` from `par`
    /// ([`super::PreviousRouter::start_push`]) until `deadline` (and
    /// `max_transfer_time` after each later message). The transfer is
    /// authorised as if a CT-Req carrying the MN's real token had been
    /// sent: for routers that trust each other through another channel
    /// (the MIH-User's MIH_N2N_HO_Commit). With `defer_ack`, the CTDR of
    /// the message that completes the transfer is not sent at once: the
    /// application installs the contexts and then sends it with
    /// [`NewRouter::acknowledge`] (intermediate CTDRs go out as usual).
    ///
    /// With `transfer_id` the transfer is identified (see the
    /// [module docs](super)): a CTD/PCTD for `mn` counts only if it comes
    /// from `par` and its TRANSFER block carries `transfer_id`; any other
    /// is dropped (counted in [`NarStats::ctd_stale`]) before reassembly,
    /// repeated messages get no CTDR, every CTDR carries the echo, and
    /// giving up sends a failure CTDR with the echo instead of a CTC.
    pub fn expect_transfer(
        &mut self,
        mn: IpAddr,
        par: IpAddr,
        deadline: Instant,
        defer_ack: bool,
        transfer_id: Option<NonZeroU32>,
    ) -> Result<(), EngineError> {
        if self.is_busy(&mn) || self.deferred.contains_key(&mn) {
            return Err(EngineError::Busy(mn));
        }
        self.states.insert(
            mn,
            MnState {
                par: Some(par),
                ctar: None,
                token_forwarded: true,
                defer_ack,
                transfer_id,
                held: None,
                deadline,
            },
        );
        Ok(())
    }

    /// Forget everything about `mn` without a message or an event (the
    /// application's attempt ended): its expectation, a reassembly in
    /// progress, a deferred CTDR. Nothing of it fires any more. Returns
    /// whether there was anything.
    pub fn abort(&mut self, mn: IpAddr) -> bool {
        let reasm = self.reasm.cancel(&mn);
        let deferred = self.deferred.remove(&mn).is_some();
        let state = self.states.remove(&mn).is_some();
        reasm || deferred || state
    }

    /// Send the deferred final CTDR of `mn`'s transfer (see
    /// [`NewRouter::expect_transfer`]): `success` is its `S` flag, `entries`
    /// the per-FPT statuses.
    pub fn acknowledge(
        &mut self,
        mn: IpAddr,
        success: bool,
        entries: Vec<StatusEntry>,
    ) -> Result<(), EngineError> {
        let d = self
            .deferred
            .remove(&mn)
            .ok_or(EngineError::NotPending(mn))?;
        self.ctdr(d.par, mn, success, entries, d.echo);
        Ok(())
    }

    /// Cancel the operation for `mn`, telling its pAR: a CTC, or for an
    /// identified transfer a failure CTDR with the echo (a give-up, or the
    /// failed verdict when the transfer was complete and its CTDR
    /// deferred).
    pub fn cancel(&mut self, _now: Instant, mn: IpAddr) -> bool {
        self.reasm.cancel(&mn);
        if let Some(d) = self.deferred.remove(&mn) {
            if d.echo.is_some() {
                self.ctdr(d.par, mn, false, vec![timeout_entry()], d.echo);
            }
        }
        match self.states.remove(&mn) {
            Some(st) => {
                if let Some(par) = st.par {
                    self.give_up(par, mn, st.transfer_id);
                }
                self.events.push_back(NarEvent::TransferFailed {
                    mn,
                    par: st.par,
                    reason: FailReason::Cancelled,
                });
                true
            }
            None => false,
        }
    }

    /// Tell `par` we give up on `mn`'s transfer: CTC, or the failure CTDR
    /// with the echo of identified transfer `id`.
    fn give_up(&mut self, par: IpAddr, mn: IpAddr, id: Option<NonZeroU32>) {
        match id {
            Some(id) => {
                let echo = Some(Echo::give_up(id.get()));
                self.ctdr(par, mn, false, vec![timeout_entry()], echo);
            }
            None => self.send(par, MessageRepr::Ctc(Ctc { mn_addr: mn })),
        }
    }

    fn send(&mut self, to: IpAddr, m: MessageRepr) {
        if let Ok(b) = m.to_bytes() {
            self.transmit.push_back((to, b));
        }
    }

    fn ctaa(&mut self, now: Instant, mn: IpAddr, ctar: &CtarInfo, entries: Vec<StatusEntry>) {
        if !ctar.ack {
            return;
        }
        if let Ok(b) = MessageRepr::Ctaa(CtaaRepr {
            mn_addr: mn,
            entries,
        })
        .to_bytes()
        {
            if self.answered.len() >= ANSWERED_CAP {
                self.answered.pop_front();
            }
            self.answered.push_back((
                ctar.seq,
                mn,
                ctar.reply_to,
                b.clone(),
                now + self.cfg.dedup_window,
            ));
            self.transmit.push_back((ctar.reply_to, b));
        }
    }

    fn install(
        &mut self,
        now: Instant,
        mn: IpAddr,
        par: IpAddr,
        contexts: Vec<Context>,
        entries: Vec<StatusEntry>,
        ctar: Option<CtarInfo>,
    ) {
        if let Some(c) = &ctar {
            let failed = entries
                .iter()
                .filter(|e| e.status != status::SUCCESS)
                .copied()
                .collect();
            self.ctaa(now, mn, c, failed);
        }
        self.events.push_back(NarEvent::ContextsReceived {
            mn,
            par,
            contexts,
            entries,
        });
    }

    fn reject(
        &mut self,
        now: Instant,
        mn: IpAddr,
        from: IpAddr,
        ctar: Option<CtarInfo>,
        fpts: Vec<u16>,
    ) {
        if let Some(c) = &ctar {
            let entries = fpts
                .into_iter()
                .map(|fpt| StatusEntry {
                    fpt,
                    status: status::UNAUTHORIZED,
                })
                .collect();
            self.ctaa(now, mn, c, entries);
        }
        self.events.push_back(NarEvent::AuthFailed { mn, from });
    }

    /// Process one received message (CTAR from an MN; CTD/PCTD from a pAR).
    pub fn handle_message(&mut self, now: Instant, from: IpAddr, bytes: Bytes) {
        let (bytes, key) = scrub_key(bytes);
        let msg = match MessageView::parse(bytes) {
            Ok(m) => m,
            Err(e) => {
                self.events.push_back(NarEvent::Malformed {
                    from,
                    error: e.to_string(),
                });
                return;
            }
        };
        match msg {
            MessageView::Ctar(c) => self.on_ctar(now, from, c),
            MessageView::Ctd(d) => self.on_ctd(now, from, d, key),
            _ => {}
        }
    }

    fn on_ctar(&mut self, now: Instant, from: IpAddr, c: Ctar) {
        let mn = c.mn_addr;
        if !self.rate.allow(now) {
            return;
        }
        if self.dedup.contains(now, c.seq, mn) {
            // Retransmitted CTAR: answer again if we answered before.
            while self.answered.front().is_some_and(|a| a.4 <= now) {
                self.answered.pop_front();
            }
            if c.ack {
                if let Some(a) = self.answered.iter().find(|a| a.0 == c.seq && a.1 == mn) {
                    self.transmit.push_back((from, a.3.clone()));
                }
            }
            return;
        }
        self.dedup.insert(now, c.seq, mn);
        let info = CtarInfo::from_ctar(&c, from);
        match self.states.remove(&mn) {
            Some(mut st) => {
                if let Some((contexts, entries, key)) = st.held.take() {
                    let par = st.par.unwrap_or(c.ar_addr);
                    if c.verify_token(&key) {
                        self.install(now, mn, par, contexts, entries, Some(info));
                    } else {
                        let fpts = fpts_of(&contexts);
                        self.reject(now, mn, from, Some(info), fpts);
                    }
                    // `key` drops here and is wiped.
                } else if st.ctar.is_none() {
                    st.ctar = Some(info);
                    self.states.insert(mn, st);
                } else {
                    // One operation per MN at a time.
                    self.states.insert(mn, st);
                }
            }
            None => {
                // Mobile-controlled reactive: ask pAR, forwarding the token.
                let par = c.ar_addr;
                self.send(par, MessageRepr::CtReq(CtReqRepr::from(&c)));
                self.states.insert(
                    mn,
                    MnState {
                        par: Some(par),
                        token_forwarded: !c.token.is_zero(),
                        defer_ack: false,
                        transfer_id: None,
                        ctar: Some(info),
                        held: None,
                        deadline: now + self.cfg.max_transfer_time,
                    },
                );
            }
        }
    }

    fn on_ctd(
        &mut self,
        now: Instant,
        from: IpAddr,
        d: crate::wire::Ctd,
        key: Option<(u16, AuthKey)>,
    ) {
        let mn = d.mn_addr;
        let ack = d.ack;
        let tb = transfer_block(&d, self.cfg.segment.fpt);
        // An identified transfer takes only its own messages, before any
        // reassembly memory is used.
        let id = match (self.states.get(&mn), self.deferred.get(&mn)) {
            (Some(st), _) => st.transfer_id.map(|id| (id, st.par)),
            (None, Some(dfr)) => dfr
                .echo
                .and_then(|e| NonZeroU32::new(e.transfer_id))
                .map(|id| (id, Some(dfr.par))),
            (None, None) => None,
        };
        if let Some((id, par)) = id {
            let ours = tb.is_some_and(|t| t.transfer_id == id.get());
            if !ours || par.is_some_and(|p| p != from) {
                self.stats.ctd_stale += 1;
                return;
            }
            if !self.states.contains_key(&mn) {
                // Complete already; its verdict is deferred.
                self.stats.ctd_duplicate += 1;
                return;
            }
        }
        let id = id.map(|(id, _)| id.get());
        let index = tb.map_or(0, |t| t.index);
        // The key itself comes from `scrub_key`; the view's copy is zeroed.
        let key_block = d.key_block.as_ref().and(key);
        let received = self.reasm.receive(now, &d);
        drop(d);
        let t = match received {
            Received::Duplicate => {
                if id.is_some() {
                    self.stats.ctd_duplicate += 1;
                } else if ack {
                    self.ctdr(from, mn, true, vec![], None);
                }
                return;
            }
            Received::Partial { failures, .. } => {
                let st = self.states.entry(mn).or_insert_with(|| MnState {
                    par: Some(from),
                    ctar: None,
                    token_forwarded: false,
                    defer_ack: false,
                    transfer_id: None,
                    held: None,
                    deadline: now,
                });
                st.par = Some(from);
                st.deadline = now + self.cfg.max_transfer_time;
                if ack {
                    let entries: Vec<StatusEntry> = failures
                        .iter()
                        .map(|&(fpt, status)| StatusEntry { fpt, status })
                        .collect();
                    let echo = id.map(|id| Echo::message(id, index));
                    self.ctdr(from, mn, entries.is_empty(), entries, echo);
                }
                return;
            }
            Received::Complete(t) => t,
        };
        let echo = id.map(|id| Echo::verdict(id, index));
        let mut st = self.states.remove(&mn);
        let ctar = st.as_mut().and_then(|s| s.ctar.take());
        let forwarded = st.as_ref().is_some_and(|s| s.token_forwarded);
        let defer = st.as_ref().is_some_and(|s| s.defer_ack);
        let auth = match key_block {
            Some((algorithm, key)) => match Algorithm::from_code(algorithm) {
                Some(Algorithm::HmacSha1) => match &ctar {
                    Some(c) => {
                        if token::verify(&key, &mn, c.seq, &c.requests, &c.token) {
                            Auth::Install
                        } else {
                            Auth::Reject
                        }
                    }
                    None => Auth::Hold(key),
                },
                None => Auth::Reject,
            },
            None if forwarded => Auth::Install,
            None => Auth::Reject,
        };
        let (mut decoded_ok, mut entries) = {
            let (_, s, e) = self.registry.receive(&t.contexts);
            (s, e)
        };
        if !t.failures.is_empty() {
            let all = entries
                .iter()
                .map(|e| (e.fpt, e.status))
                .chain(t.contexts.iter().map(|c| (c.fpt, status::SUCCESS)))
                .chain(t.failures.iter().copied());
            let (s, e) = verdict(all);
            decoded_ok = s;
            entries = e;
        }
        match auth {
            Auth::Reject => {
                let fpts = fpts_of(&t.contexts);
                if ack {
                    let e = fpts
                        .iter()
                        .map(|&fpt| StatusEntry {
                            fpt,
                            status: status::UNAUTHORIZED,
                        })
                        .collect();
                    self.ctdr(from, mn, false, e, echo);
                }
                self.reject(now, mn, from, ctar, fpts);
            }
            Auth::Install => {
                if ack && defer {
                    self.deferred.insert(mn, Deferred { par: from, echo });
                } else if ack {
                    self.ctdr(from, mn, decoded_ok, entries.clone(), echo);
                }
                self.install(now, mn, from, t.contexts, entries, ctar);
            }
            Auth::Hold(key) => {
                if ack {
                    self.ctdr(from, mn, decoded_ok, entries.clone(), echo);
                }
                self.states.insert(
                    mn,
                    MnState {
                        par: Some(from),
                        ctar: None,
                        token_forwarded: false,
                        defer_ack: false,
                        transfer_id: None,
                        held: Some((t.contexts, entries, key)),
                        deadline: now + self.cfg.hold_time,
                    },
                );
            }
        }
    }

    /// A CTDR; for an identified transfer the echo leads its entries.
    fn ctdr(
        &mut self,
        to: IpAddr,
        mn: IpAddr,
        success: bool,
        entries: Vec<StatusEntry>,
        echo: Option<Echo>,
    ) {
        let entries = match echo {
            Some(e) => {
                let mut v = e.entries(self.cfg.transfer_id_fpt).to_vec();
                v.extend(entries);
                v
            }
            None => entries,
        };
        self.send(
            to,
            MessageRepr::Ctdr(CtdrRepr {
                success,
                mn_addr: mn,
                entries,
            }),
        );
    }

    /// Next message to send.
    #[must_use = "a message the engine produced is lost if not sent"]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmit
            .pop_front()
            .map(|(to, payload)| Transmit { to, payload })
    }

    /// Next event for the application.
    pub fn poll_event(&mut self) -> Option<NarEvent> {
        self.events.pop_front()
    }

    /// Earliest timer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.states
            .values()
            .map(|s| s.deadline)
            .chain(self.reasm.poll_timeout())
            .min()
    }

    /// Fire timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        for mn in self.reasm.handle_timeout(now) {
            if !self.states.contains_key(&mn) {
                self.events.push_back(NarEvent::TransferFailed {
                    mn,
                    par: None,
                    reason: FailReason::Reassembly,
                });
            }
        }
        let due: Vec<IpAddr> = self
            .states
            .iter()
            .filter(|(_, s)| s.deadline <= now)
            .map(|(k, _)| *k)
            .collect();
        for mn in due {
            let st = self.states.remove(&mn).expect("present");
            self.reasm.cancel(&mn);
            if st.held.is_none() {
                // The transfer cannot finish in time: cancel it at pAR.
                if let Some(par) = st.par {
                    self.give_up(par, mn, st.transfer_id);
                }
                if let Some(c) = &st.ctar {
                    self.ctaa(
                        now,
                        mn,
                        c,
                        vec![StatusEntry {
                            fpt: 0,
                            status: status::TIMEOUT,
                        }],
                    );
                }
            }
            self.events.push_back(NarEvent::TransferFailed {
                mn,
                par: st.par,
                reason: FailReason::Timeout,
            });
        }
    }
}

/// For a PCTD: copy the key into a zeroize-on-drop [`AuthKey`] and zero it
/// in the message buffer, so that contexts handed to the application (which
/// are slices of that buffer) do not keep the key alive. Zero-copy when the
/// buffer is not shared; otherwise the PCTD is copied once.
pub(crate) fn scrub_key(bytes: Bytes) -> (Bytes, Option<(u16, AuthKey)>) {
    if bytes.first().map(|b| b & 0x1f) != Some(crate::wire::MessageType::Pctd.code()) {
        return (bytes, None);
    }
    let (algorithm, key, range) = match MessageView::parse(bytes.clone()) {
        Ok(MessageView::Ctd(d)) => match &d.key_block {
            Some(k) => {
                let start = k.key.as_ptr() as usize - bytes.as_ptr() as usize;
                (
                    k.algorithm,
                    AuthKey::new(&k.key),
                    start..start + k.key.len(),
                )
            }
            None => return (bytes, None),
        },
        _ => return (bytes, None),
    };
    let mut m = bytes
        .try_into_mut()
        .unwrap_or_else(|b| bytes::BytesMut::from(&b[..]));
    zeroize::Zeroize::zeroize(&mut m[range]);
    (m.freeze(), Some((algorithm, key)))
}

/// The TRANSFER block of a CTD/PCTD (its first CDB, when that is one).
fn transfer_block(d: &crate::wire::Ctd, seg_fpt: u16) -> Option<TransferBlock> {
    let b = d.block_refs().next()?;
    if b.fpt != seg_fpt {
        return None;
    }
    match parse_block_ref(b.data) {
        Ok(SegmentBlockRef::Transfer(t)) => Some(t),
        _ => None,
    }
}

fn timeout_entry() -> StatusEntry {
    StatusEntry {
        fpt: 0,
        status: status::TIMEOUT,
    }
}

fn fpts_of(contexts: &[Context]) -> Vec<u16> {
    let mut v: Vec<u16> = Vec::new();
    for c in contexts {
        if !v.contains(&c.fpt) {
            v.push(c.fpt);
        }
    }
    v
}
