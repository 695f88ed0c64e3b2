//! Previous access router.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Instant;

use bytes::Bytes;

use super::{Config, Dedup, EngineError, FailReason, RateLimiter, Transmit};
use crate::profile::echo::{self, Echo};
use crate::profile::{status, Context};
use crate::segment::{encode_identified_transfer, encode_transfer, with_elapsed, CtdHeader};
use crate::token::AuthKey;
use crate::wire::{
    CtaaRepr, MessageRepr, MessageView, RequestBlock, StatusEntry, ALGORITHM_HMAC_SHA1,
};

/// Events from the pAR engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParEvent {
    /// Contexts are needed for `mn`: answer with
    /// [`PreviousRouter::provide_contexts`] (empty `requests` = all).
    ContextsRequested {
        /// The MN (previous address).
        mn: IpAddr,
        /// The nAR they go to.
        nar: IpAddr,
        /// Requested FPTs.
        requests: Vec<RequestBlock>,
        /// A PCTD with key material will be sent.
        with_key: bool,
    },
    /// The nAR acknowledged the whole transfer.
    TransferComplete {
        /// MN.
        mn: IpAddr,
        /// nAR.
        nar: IpAddr,
        /// `S` of the final CTDR.
        success: bool,
        /// Entries of the final CTDR.
        entries: Vec<StatusEntry>,
    },
    /// The transfer was abandoned.
    TransferFailed {
        /// MN.
        mn: IpAddr,
        /// nAR.
        nar: IpAddr,
        /// Why.
        reason: FailReason,
    },
    /// A token in a CTAR/CT-Req did not verify, or no key was known.
    AuthFailed {
        /// MN.
        mn: IpAddr,
        /// Who sent the request.
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

/// Counters of the pAR engine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ParStats {
    /// CTDRs for an identified push whose echo is missing or names another
    /// transfer (of an earlier attempt): dropped.
    pub ctdr_stale: u64,
    /// CTDRs for an identified push answering a message already answered
    /// (or never sent): dropped.
    pub ctdr_duplicate: u64,
    /// CTCs for an identified push (a CTC cannot say which transfer it
    /// cancels): ignored.
    pub ctc_ignored: u64,
}

struct Outgoing {
    nar: IpAddr,
    seq: Option<u32>,
    /// Identified push: the id every message carries and every CTDR
    /// must echo.
    id: Option<NonZeroU32>,
    /// Identified push: the messages a CTDR answered.
    answered: Vec<bool>,
    messages: Vec<Bytes>,
    next: usize,
    acked: usize,
    started: Instant,
    deadline: Instant,
    cache_until: Instant,
    ack: bool,
    ctaa_to: Option<IpAddr>,
    entries: Vec<StatusEntry>,
    success: bool,
}

struct Pending {
    nar: IpAddr,
    seq: Option<u32>,
    id: Option<NonZeroU32>,
    key: Option<AuthKey>,
    ctaa_to: Option<IpAddr>,
    deadline: Instant,
}

/// The pAR state machine. See the [module docs](super).
///
/// ```
/// use std::time::Instant;
/// use bytes::Bytes;
/// use cxtp::engine::{Config, PreviousRouter, ParEvent, Transmit};
/// use cxtp::profile::Context;
/// use cxtp::token::AuthKey;
///
/// let mut par = PreviousRouter::new(Config::default());
/// let (mn, nar) = ("192.0.2.1".parse().unwrap(), "192.0.2.254".parse().unwrap());
/// par.set_key(mn, AuthKey::new(&[0x0b; 20]));
/// let now = Instant::now();
/// par.start_predictive(now, mn, nar, None, vec![Context::new(0xFF01, Bytes::from_static(b"state"))]).unwrap();
/// let Transmit { to, payload: pctd } = par.poll_transmit().unwrap();
/// assert_eq!(to, nar);
/// assert_eq!(pctd[0], 0x24); // PCTD
/// // No CTDR within CT_MAX_TRANSFER_TIME: the transfer fails.
/// par.handle_timeout(par.poll_timeout().unwrap());
/// assert!(matches!(par.poll_event(), Some(ParEvent::TransferFailed { .. })));
/// ```
pub struct PreviousRouter {
    cfg: Config,
    keys: HashMap<IpAddr, AuthKey>,
    out: HashMap<IpAddr, Outgoing>,
    pending: HashMap<IpAddr, Pending>,
    dedup: Dedup,
    rate: RateLimiter,
    transmit: VecDeque<(IpAddr, Bytes)>,
    events: VecDeque<ParEvent>,
    next_transfer_id: u32,
    stats: ParStats,
}

impl PreviousRouter {
    /// New engine.
    pub fn new(cfg: Config) -> Self {
        PreviousRouter {
            dedup: Dedup::new(cfg.dedup_window),
            rate: RateLimiter::new(cfg.request_rate),
            cfg,
            keys: HashMap::new(),
            out: HashMap::new(),
            pending: HashMap::new(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            next_transfer_id: 1,
            stats: ParStats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> ParStats {
        self.stats
    }

    /// Install the MN–AR CXTP key for `mn` (one use: it is discarded once a
    /// transfer that used it ends).
    pub fn set_key(&mut self, mn: IpAddr, key: AuthKey) {
        self.keys.insert(mn, key);
    }

    /// Whether a key is held for `mn`.
    pub fn has_key(&self, mn: &IpAddr) -> bool {
        self.keys.contains_key(mn)
    }

    /// Whether an operation for `mn` is in progress (or cached).
    pub fn is_busy(&self, mn: &IpAddr) -> bool {
        self.out.contains_key(mn) || self.pending.contains_key(mn)
    }

    /// Network-controlled predictive transfer (RFC 4067 §5.1): push a PCTD
    /// with the MN's key to `nar`. `seq` is the MN's CTAR sequence number if
    /// known (for CT-Req resends).
    pub fn start_predictive(
        &mut self,
        now: Instant,
        mn: IpAddr,
        nar: IpAddr,
        seq: Option<u32>,
        contexts: Vec<Context>,
    ) -> Result<(), EngineError> {
        if self.is_busy(&mn) {
            return Err(EngineError::Busy(mn));
        }
        let key = self.keys.get(&mn).cloned().ok_or(EngineError::NoKey(mn))?;
        self.pending.insert(
            mn,
            Pending {
                nar,
                seq,
                id: None,
                key: Some(key),
                ctaa_to: None,
                deadline: now + self.cfg.max_transfer_time,
            },
        );
        self.provide_contexts(now, mn, contexts)
    }

    /// Network-controlled push between routers that trust each other
    /// through another channel (the MIH-User's MIH_N2N_HO_Commit): send
    /// `contexts` for `mn` to `nar` in CTD messages without a key block
    /// (`A` set when [`Config::ack`]). The nAR must expect it
    /// ([`super::NewRouter::expect_transfer`]). Ends with
    /// [`ParEvent::TransferComplete`] or [`ParEvent::TransferFailed`].
    pub fn start_push(
        &mut self,
        now: Instant,
        mn: IpAddr,
        nar: IpAddr,
        contexts: Vec<Context>,
    ) -> Result<(), EngineError> {
        self.push(now, mn, nar, None, contexts)
    }

    /// [`PreviousRouter::start_push`] as an identified transfer (see the
    /// [module docs](super)): every CTD starts with a TRANSFER block
    /// carrying `transfer_id`, also when the contexts fit one message; a
    /// CTDR counts only if its echo names `transfer_id` and a message of
    /// this push, the push ends on the verdict CTDR, a failure verdict
    /// that gives up is [`FailReason::Cancelled`], and CTCs are ignored.
    /// The nAR must expect `transfer_id`
    /// ([`super::NewRouter::expect_transfer`]).
    pub fn start_identified_push(
        &mut self,
        now: Instant,
        mn: IpAddr,
        nar: IpAddr,
        transfer_id: NonZeroU32,
        contexts: Vec<Context>,
    ) -> Result<(), EngineError> {
        self.push(now, mn, nar, Some(transfer_id), contexts)
    }

    fn push(
        &mut self,
        now: Instant,
        mn: IpAddr,
        nar: IpAddr,
        id: Option<NonZeroU32>,
        contexts: Vec<Context>,
    ) -> Result<(), EngineError> {
        if self.is_busy(&mn) {
            return Err(EngineError::Busy(mn));
        }
        self.pending.insert(
            mn,
            Pending {
                nar,
                seq: None,
                id,
                key: None,
                ctaa_to: None,
                deadline: now + self.cfg.max_transfer_time,
            },
        );
        let r = self.provide_contexts(now, mn, contexts);
        if r.is_err() {
            self.pending.remove(&mn);
        }
        r
    }

    /// Forget any operation for `mn` without an event (the application
    /// gave up on it): nothing of it is sent or fires any more. Returns
    /// whether there was one.
    pub fn abort(&mut self, mn: IpAddr) -> bool {
        let out = self.out.remove(&mn).is_some();
        let pending = self.pending.remove(&mn).is_some();
        out || pending
    }

    /// Answer a [`ParEvent::ContextsRequested`].
    pub fn provide_contexts(
        &mut self,
        now: Instant,
        mn: IpAddr,
        contexts: Vec<Context>,
    ) -> Result<(), EngineError> {
        let p = self
            .pending
            .remove(&mn)
            .ok_or(EngineError::NotPending(mn))?;
        let header = CtdHeader {
            ack: self.cfg.ack,
            elapsed_ms: 0,
            mn_addr: mn,
            key_block: p.key.map(|key| crate::wire::KeyBlockRepr {
                algorithm: ALGORITHM_HMAC_SHA1,
                key,
            }),
        };
        let messages = match p.id {
            Some(id) => {
                let m =
                    encode_identified_transfer(&self.cfg.segment, &header, &contexts, id.get())?;
                if m.len() > echo::MAX_MESSAGES {
                    return Err(EngineError::TooManyMessages(m.len()));
                }
                m
            }
            None => {
                let id = self.next_transfer_id;
                self.next_transfer_id = self.next_transfer_id.wrapping_add(1);
                encode_transfer(&self.cfg.segment, &header, &contexts, id)?
            }
        };
        // The key now lives only in the encoded messages; the AR must not
        // reuse it for another transfer.
        self.keys.remove(&mn);
        let mut o = Outgoing {
            nar: p.nar,
            seq: p.seq,
            id: p.id,
            answered: if p.id.is_some() {
                vec![false; messages.len()]
            } else {
                Vec::new()
            },
            messages,
            next: 0,
            acked: 0,
            started: now,
            deadline: now + self.cfg.max_transfer_time,
            cache_until: now + self.cfg.cache_time.max(self.cfg.max_transfer_time),
            ack: self.cfg.ack,
            ctaa_to: p.ctaa_to,
            entries: Vec::new(),
            success: true,
        };
        self.pump(&mut o, now);
        self.out.insert(mn, o);
        Ok(())
    }

    fn pump(&mut self, o: &mut Outgoing, now: Instant) {
        let limit = if o.ack {
            (o.acked + self.cfg.window.max(1)).min(o.messages.len())
        } else {
            o.messages.len()
        };
        while o.next < limit {
            let m = &o.messages[o.next];
            let elapsed = now.saturating_duration_since(o.started).as_millis() as u32;
            let m = if elapsed == 0 {
                m.clone()
            } else {
                with_elapsed(m, elapsed)
            };
            self.transmit.push_back((o.nar, m));
            o.next += 1;
        }
    }

    /// Process one received message.
    pub fn handle_message(&mut self, now: Instant, from: IpAddr, bytes: Bytes) {
        let msg = match MessageView::parse(bytes) {
            Ok(m) => m,
            Err(e) => {
                self.events.push_back(ParEvent::Malformed {
                    from,
                    error: e.to_string(),
                });
                return;
            }
        };
        match msg {
            MessageView::Ctar(c) => {
                // MN-assisted predictive: CTAR to pAR names the nAR.
                if !self.rate.allow(now) || !self.dedup.insert(now, c.seq, c.mn_addr) {
                    return;
                }
                if self.is_busy(&c.mn_addr) {
                    return;
                }
                let ok = self.keys.get(&c.mn_addr).is_some_and(|k| c.verify_token(k));
                if !ok {
                    self.events.push_back(ParEvent::AuthFailed {
                        mn: c.mn_addr,
                        from,
                    });
                    return;
                }
                let key = self.keys.get(&c.mn_addr).cloned();
                self.request(
                    now,
                    c.mn_addr,
                    c.ar_addr,
                    Some(c.seq),
                    key,
                    c.ack.then_some(from),
                    c.requests().collect(),
                );
            }
            MessageView::CtReq(r) => {
                let mn = r.mn_addr;
                // Predictive retry: same sequence number as a cached transfer.
                if let Some(mut o) = self.out.remove(&mn) {
                    if o.seq == Some(r.seq) && o.nar == from {
                        o.next = o.acked;
                        o.deadline = now + self.cfg.max_transfer_time;
                        o.cache_until = o.cache_until.max(o.deadline);
                        self.pump(&mut o, now);
                    }
                    self.out.insert(mn, o);
                    return;
                }
                if self.pending.contains_key(&mn) || !self.dedup.insert(now, r.seq, mn) {
                    return;
                }
                let key = if r.token.is_zero() {
                    // nAR has no CTAR yet: send the key material (PCTD).
                    match self.keys.get(&mn) {
                        Some(k) => Some(k.clone()),
                        None => {
                            self.events.push_back(ParEvent::AuthFailed { mn, from });
                            return;
                        }
                    }
                } else {
                    if !self.keys.get(&mn).is_some_and(|k| r.verify_token(k)) {
                        self.events.push_back(ParEvent::AuthFailed { mn, from });
                        return;
                    }
                    None
                };
                self.request(
                    now,
                    mn,
                    from,
                    Some(r.seq),
                    key,
                    None,
                    r.requests().collect(),
                );
            }
            MessageView::Ctdr(d) => {
                let mn = d.mn_addr;
                let Some(mut o) = self.out.remove(&mn) else {
                    return;
                };
                if o.nar != from {
                    self.out.insert(mn, o);
                    return;
                }
                if let Some(id) = o.id {
                    let entries = d.entries().collect();
                    return self.identified_ctdr(now, mn, o, id, d.success, entries);
                }
                if o.acked >= o.next {
                    self.out.insert(mn, o);
                    return;
                }
                o.acked += 1;
                o.deadline = now + self.cfg.max_transfer_time;
                if !d.success {
                    o.success = false;
                }
                o.entries = d.entries().collect();
                if o.acked == o.messages.len() {
                    self.finish(mn, o, d.success);
                } else {
                    self.pump(&mut o, now);
                    self.out.insert(mn, o);
                }
            }
            MessageView::Ctc(c) => {
                let mn = c.mn_addr;
                if self.out.get(&mn).is_some_and(|o| o.id.is_some()) {
                    self.stats.ctc_ignored += 1;
                    return;
                }
                let had = self
                    .out
                    .remove(&mn)
                    .map(|o| o.nar)
                    .or(self.pending.remove(&mn).map(|p| p.nar));
                if let Some(nar) = had {
                    self.keys.remove(&mn);
                    self.events.push_back(ParEvent::TransferFailed {
                        mn,
                        nar,
                        reason: FailReason::Cancelled,
                    });
                }
            }
            MessageView::Ctaa(_) | MessageView::Ctd(_) => {}
        }
    }

    /// A CTDR from the nAR of identified push `o` (removed from `out`).
    fn identified_ctdr(
        &mut self,
        now: Instant,
        mn: IpAddr,
        mut o: Outgoing,
        id: NonZeroU32,
        success: bool,
        entries: Vec<crate::wire::StatusEntry>,
    ) {
        let (echo, entries) = Echo::split(self.cfg.transfer_id_fpt, entries);
        let Some(e) = echo.filter(|e| e.transfer_id == id.get()) else {
            self.stats.ctdr_stale += 1;
            self.out.insert(mn, o);
            return;
        };
        if e.is_give_up() && !success {
            self.keys.remove(&mn);
            self.events.push_back(ParEvent::TransferFailed {
                mn,
                nar: o.nar,
                reason: FailReason::Cancelled,
            });
            return;
        }
        let i = usize::from(e.index);
        if i >= o.next || (o.answered[i] && !e.verdict) {
            self.stats.ctdr_duplicate += 1;
            self.out.insert(mn, o);
            return;
        }
        if !o.answered[i] {
            o.answered[i] = true;
            o.acked += 1;
        }
        o.deadline = now + self.cfg.max_transfer_time;
        if e.verdict {
            // The nAR has the whole transfer: its verdict covers every
            // message, whatever intermediate CTDRs are still on the way.
            o.success = success;
            o.entries = entries;
            return self.finish(mn, o, success);
        }
        if !success {
            o.success = false;
        }
        self.pump(&mut o, now);
        self.out.insert(mn, o);
    }

    #[allow(clippy::too_many_arguments)]
    fn request(
        &mut self,
        now: Instant,
        mn: IpAddr,
        nar: IpAddr,
        seq: Option<u32>,
        key: Option<AuthKey>,
        ctaa_to: Option<IpAddr>,
        requests: Vec<RequestBlock>,
    ) {
        let with_key = key.is_some();
        self.pending.insert(
            mn,
            Pending {
                nar,
                seq,
                id: None,
                key,
                ctaa_to,
                deadline: now + self.cfg.max_transfer_time,
            },
        );
        self.events.push_back(ParEvent::ContextsRequested {
            mn,
            nar,
            requests,
            with_key,
        });
    }

    fn finish(&mut self, mn: IpAddr, o: Outgoing, last_success: bool) {
        self.keys.remove(&mn);
        let success = o.success && last_success;
        if let Some(to) = o.ctaa_to {
            let entries = o
                .entries
                .iter()
                .filter(|e| e.status != status::SUCCESS)
                .copied()
                .collect();
            self.ctaa(to, mn, entries);
        }
        self.events.push_back(ParEvent::TransferComplete {
            mn,
            nar: o.nar,
            success,
            entries: o.entries,
        });
    }

    fn ctaa(&mut self, to: IpAddr, mn: IpAddr, entries: Vec<StatusEntry>) {
        if let Ok(b) = MessageRepr::Ctaa(CtaaRepr {
            mn_addr: mn,
            entries,
        })
        .to_bytes()
        {
            self.transmit.push_back((to, b));
        }
    }

    /// Next message to send.
    #[must_use = "a message the engine produced is lost if not sent"]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmit
            .pop_front()
            .map(|(to, payload)| Transmit { to, payload })
    }

    /// Next event for the application.
    pub fn poll_event(&mut self) -> Option<ParEvent> {
        self.events.pop_front()
    }

    /// Earliest timer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let out = self.out.values().map(|o| {
            if o.ack && o.acked < o.messages.len() {
                o.deadline
            } else {
                o.cache_until
            }
        });
        let pend = self.pending.values().map(|p| p.deadline);
        out.chain(pend).min()
    }

    /// Fire timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<IpAddr> = self
            .out
            .iter()
            .filter(|(_, o)| {
                if o.ack && o.acked < o.messages.len() {
                    o.deadline <= now
                } else {
                    o.cache_until <= now
                }
            })
            .map(|(k, _)| *k)
            .collect();
        for mn in due {
            let o = self.out.remove(&mn).expect("present");
            self.keys.remove(&mn);
            if o.ack {
                if let Some(to) = o.ctaa_to {
                    self.ctaa(
                        to,
                        mn,
                        vec![StatusEntry {
                            fpt: 0,
                            status: status::TIMEOUT,
                        }],
                    );
                }
                self.events.push_back(ParEvent::TransferFailed {
                    mn,
                    nar: o.nar,
                    reason: FailReason::Timeout,
                });
            }
        }
        let due: Vec<IpAddr> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(k, _)| *k)
            .collect();
        for mn in due {
            let p = self.pending.remove(&mn).expect("present");
            self.events.push_back(ParEvent::TransferFailed {
                mn,
                nar: p.nar,
                reason: FailReason::Timeout,
            });
        }
    }
}
