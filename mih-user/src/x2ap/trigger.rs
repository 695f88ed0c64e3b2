//! The sans-IO handover trigger: X2AP PDUs in, handover events out.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::pdu::{
    decode, Cause, ERabAdmitted, ERabToBeSetup, Ecgi, Gummei, HandoverCancel,
    HandoverPreparationFailure, HandoverRequest, HandoverRequestAcknowledge, Message, MessageType,
    Pdu, UeContextRelease, X2apError,
};
use super::tables::{NeighbourConfig, NeighbourTable, TableError, UeConfig, UeKey, UeTable};

/// Configuration of an [`X2Trigger`] (serde, TOML-friendly; every field has a default).
///
/// ```
/// use mih_user::x2ap::X2TriggerConfig;
/// let c: X2TriggerConfig = toml::from_str(r#"
///     max_pending = 1024
///     preparation_timeout_ms = 5000
///     [[neighbours]]
///     plmn = "001-01"
///     cell_id = 0x1a2b301
///     mihf_id = "enbc-b"
/// "#).unwrap();
/// assert_eq!(c.max_pending, 1024);
/// assert_eq!(c.completion_timeout_ms, X2TriggerConfig::default().completion_timeout_ms);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct X2TriggerConfig {
    /// Most UEs with a handover in progress at once; when full, the one
    /// closest to its timeout is evicted ([`ForgetReason::Evicted`]).
    pub max_pending: usize,
    /// How long a UE stays pending after HandoverRequest without an answer
    /// (TS 36.423 TRELOCprep on the source eNB).
    pub preparation_timeout_ms: u64,
    /// How long a UE stays pending after HandoverRequestAcknowledge without
    /// UEContextRelease (TX2RELOCoverall).
    pub completion_timeout_ms: u64,
    /// Capacity of the neighbour table.
    pub max_neighbours: usize,
    /// Capacity of the UE table (in keys).
    pub max_ues: usize,
    /// Initial neighbour table.
    pub neighbours: Vec<NeighbourConfig>,
    /// Initial UE table.
    pub ues: Vec<UeConfig>,
}

impl Default for X2TriggerConfig {
    fn default() -> Self {
        X2TriggerConfig {
            max_pending: 4096,
            preparation_timeout_ms: 10_000,
            completion_timeout_ms: 30_000,
            max_neighbours: 4096,
            max_ues: 65_536,
            neighbours: Vec::new(),
            ues: Vec::new(),
        }
    }
}

/// Where a pending handover is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// HandoverRequest seen, waiting for the target's answer.
    Preparation,
    /// HandoverRequestAcknowledge seen, waiting for UEContextRelease.
    Execution,
}

/// Why a pending UE was forgotten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForgetReason {
    /// HandoverPreparationFailure from the target.
    PreparationFailure(Cause),
    /// HandoverCancel from the source.
    Cancelled(Cause),
    /// No next message within the phase's timeout.
    Timeout(Phase),
    /// The pending table was full and this UE was the closest to its timeout.
    Evicted(Phase),
    /// A new HandoverRequest for the same Old eNB UE X2AP ID replaced it.
    Superseded(Phase),
}

/// A UE learnt from a HandoverRequest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingUe {
    /// Old eNB UE X2AP ID.
    pub old_enb_ue_x2ap_id: u16,
    /// Target cell.
    pub target_cell: Ecgi,
    /// GUMMEI.
    pub gummei: Gummei,
    /// MME UE S1AP ID.
    pub mme_ue_s1ap_id: u32,
    /// Cause of the handover.
    pub cause: Cause,
    /// E-RABs with their uplink tunnels.
    pub e_rabs: Vec<ERabToBeSetup>,
    /// The UE's address if the UE table knows it now (it is looked up again at the trigger).
    pub ue_address: Option<IpAddr>,
    /// The destination eNBC if the neighbour table knows the target now.
    pub target_mihf_id: Option<String>,
}

/// The trigger: move this UE's services to that eNBC now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandoverTrigger {
    /// Old eNB UE X2AP ID.
    pub old_enb_ue_x2ap_id: u16,
    /// New eNB UE X2AP ID.
    pub new_enb_ue_x2ap_id: u16,
    /// The UE's IP address.
    pub ue_address: IpAddr,
    /// Which UE-table key gave the address.
    pub ue_key: UeKey,
    /// Target cell.
    pub target_cell: Ecgi,
    /// MIHF ID of the destination eNBC.
    pub target_mihf_id: String,
    /// MME UE S1AP ID.
    pub mme_ue_s1ap_id: u32,
    /// E-RABs of the HandoverRequest.
    pub e_rabs: Vec<ERabToBeSetup>,
    /// E-RABs the target admitted.
    pub admitted_e_rabs: Vec<ERabAdmitted>,
}

/// The handover of a UE ended (UEContextRelease).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Released {
    /// Old eNB UE X2AP ID.
    pub old_enb_ue_x2ap_id: u16,
    /// New eNB UE X2AP ID.
    pub new_enb_ue_x2ap_id: u16,
    /// The UE's address, if it was triggered.
    pub ue_address: Option<IpAddr>,
    /// Whether a [`X2Event::HandoverTriggered`] was emitted for this handover.
    pub triggered: bool,
}

/// Why a UE is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownUeReason {
    /// No HandoverRequest was seen for this Old eNB UE X2AP ID (or it timed out).
    NotPending,
    /// The UE table has neither its Old eNB UE X2AP ID nor any of its uplink GTP-TEIDs.
    NoAddress,
}

/// A message about a UE the trigger cannot act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownUe {
    /// Procedure code of the message.
    pub procedure_code: u8,
    /// Message type of the message.
    pub message_type: MessageType,
    /// Old eNB UE X2AP ID.
    pub old_enb_ue_x2ap_id: u16,
    /// New eNB UE X2AP ID, if the message carries one.
    pub new_enb_ue_x2ap_id: Option<u16>,
    /// Why.
    pub reason: UnknownUeReason,
}

/// A handover to a cell the neighbour table does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownTarget {
    /// Old eNB UE X2AP ID.
    pub old_enb_ue_x2ap_id: u16,
    /// New eNB UE X2AP ID.
    pub new_enb_ue_x2ap_id: u16,
    /// The target cell.
    pub target_cell: Ecgi,
}

/// What the trigger reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum X2Event {
    /// HandoverRequest: a UE is being prepared for handover.
    HandoverPrepared(PendingUe),
    /// HandoverRequestAcknowledge for a prepared UE whose address and
    /// destination are known: start moving its services.
    HandoverTriggered(HandoverTrigger),
    /// The handover of a pending UE will not happen (failure, cancel, timeout, eviction).
    Forget {
        /// Old eNB UE X2AP ID.
        old_enb_ue_x2ap_id: u16,
        /// New eNB UE X2AP ID, if known.
        new_enb_ue_x2ap_id: Option<u16>,
        /// Whether a [`X2Event::HandoverTriggered`] had been emitted (then the
        /// orchestrator must roll back).
        triggered: bool,
        /// Why.
        reason: ForgetReason,
    },
    /// UEContextRelease: the handover of a pending UE is complete.
    Released(Released),
    /// A handover message about a UE the trigger cannot act on (counted in `unknown_ue`).
    UnknownUe(UnknownUe),
    /// A HandoverRequestAcknowledge towards an unknown target (counted in `unknown_target`).
    UnknownTarget(UnknownTarget),
    /// A PDU of another procedure or message type: recognised and ignored.
    Ignored {
        /// Procedure code.
        procedure_code: u8,
        /// Message type.
        message_type: MessageType,
    },
    /// A PDU that does not decode (counted in `malformed`).
    Malformed(X2apError),
}

/// Counters of an [`X2Trigger`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct X2Counters {
    /// PDUs handed to the trigger.
    pub pdus: u64,
    /// PDUs that did not decode.
    pub malformed: u64,
    /// PDUs of procedures the trigger does not act on.
    pub ignored: u64,
    /// HandoverRequests.
    pub prepared: u64,
    /// Handovers triggered.
    pub triggered: u64,
    /// Pending UEs forgotten after a failure or cancel.
    pub forgotten: u64,
    /// Pending UEs whose handover completed.
    pub released: u64,
    /// Pending UEs forgotten after a timeout.
    pub timeouts: u64,
    /// Pending UEs evicted or superseded.
    pub evicted: u64,
    /// Messages about UEs the trigger could not act on.
    pub unknown_ue: u64,
    /// Triggers towards unknown targets.
    pub unknown_target: u64,
    per_procedure: Vec<[u64; 3]>,
}

impl Default for X2Counters {
    fn default() -> Self {
        X2Counters {
            pdus: 0,
            malformed: 0,
            ignored: 0,
            prepared: 0,
            triggered: 0,
            forgotten: 0,
            released: 0,
            timeouts: 0,
            evicted: 0,
            unknown_ue: 0,
            unknown_target: 0,
            per_procedure: vec![[0; 3]; 256],
        }
    }
}

impl X2Counters {
    /// Well-formed PDUs seen of procedure `code` and `message_type`.
    pub fn procedure(&self, code: u8, message_type: MessageType) -> u64 {
        self.per_procedure[usize::from(code)][message_type.index()]
    }

    /// Every (procedure code, message type, count) with a non-zero count.
    pub fn procedures(&self) -> impl Iterator<Item = (u8, MessageType, u64)> + '_ {
        self.per_procedure
            .iter()
            .enumerate()
            .flat_map(|(code, row)| {
                MessageType::ALL
                    .into_iter()
                    .map(move |mt| (code as u8, mt, row[mt.index()]))
            })
            .filter(|(_, _, n)| *n > 0)
    }
}

#[derive(Debug, Clone)]
struct Pending {
    ue: PendingUe,
    phase: Phase,
    deadline: Instant,
    new_enb_ue_x2ap_id: Option<u16>,
    triggered: Option<IpAddr>,
}

/// Pending UEs are keyed by Old eNB UE X2AP ID and its extension.
type PendingKey = (u16, Option<u16>);

/// The sans-IO X2AP handover trigger.
///
/// Feed it PDUs with [`X2Trigger::handle_pdu`] and the passing of time with
/// [`X2Trigger::handle_timeout`] (due at [`X2Trigger::poll_timeout`]); it
/// queues [`X2Event`]s, which the caller takes with [`X2Trigger::poll_event`]
/// after each input (as the other sans-IO cores of the stack do). It owns no
/// socket and reads no clock. The neighbour and UE tables can be changed at
/// any time through [`X2Trigger::neighbours_mut`] and [`X2Trigger::ues_mut`].
#[derive(Debug)]
pub struct X2Trigger {
    neighbours: NeighbourTable,
    ues: UeTable,
    pending: HashMap<PendingKey, Pending>,
    max_pending: usize,
    preparation_timeout: Duration,
    completion_timeout: Duration,
    counters: X2Counters,
    /// Events not yet taken by [`X2Trigger::poll_event`]. Not bounded here:
    /// one input queues at most a few events (plus one per pending UE whose
    /// timeout passed, at most `max_pending`), and callers drain after each.
    events: VecDeque<X2Event>,
}

impl X2Trigger {
    /// A trigger with the tables filled from `config`.
    pub fn new(config: X2TriggerConfig) -> Result<X2Trigger, TableError> {
        let mut neighbours = NeighbourTable::new(config.max_neighbours);
        for n in &config.neighbours {
            neighbours.insert_config(n)?;
        }
        let mut ues = UeTable::new(config.max_ues);
        for u in &config.ues {
            ues.insert_config(u)?;
        }
        Ok(X2Trigger {
            neighbours,
            ues,
            pending: HashMap::new(),
            max_pending: config.max_pending.max(1),
            preparation_timeout: Duration::from_millis(config.preparation_timeout_ms),
            completion_timeout: Duration::from_millis(config.completion_timeout_ms),
            counters: X2Counters::default(),
            events: VecDeque::new(),
        })
    }

    /// The neighbour table.
    pub fn neighbours(&self) -> &NeighbourTable {
        &self.neighbours
    }

    /// The neighbour table, to change.
    pub fn neighbours_mut(&mut self) -> &mut NeighbourTable {
        &mut self.neighbours
    }

    /// The UE table.
    pub fn ues(&self) -> &UeTable {
        &self.ues
    }

    /// The UE table, to change.
    pub fn ues_mut(&mut self) -> &mut UeTable {
        &mut self.ues
    }

    /// The counters.
    pub fn counters(&self) -> &X2Counters {
        &self.counters
    }

    /// UEs with a handover in progress.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// The phase of the pending handover of `old_enb_ue_x2ap_id` (without ID extension).
    pub fn pending_phase(&self, old_enb_ue_x2ap_id: u16) -> Option<Phase> {
        self.pending
            .get(&(old_enb_ue_x2ap_id, None))
            .map(|p| p.phase)
    }

    /// The next event the inputs queued, oldest first. Call it until it
    /// returns `None` after each [`X2Trigger::handle_pdu`],
    /// [`X2Trigger::handle_decoded`] or [`X2Trigger::handle_timeout`].
    #[must_use = "an event the trigger produced is lost if not handled"]
    pub fn poll_event(&mut self) -> Option<X2Event> {
        self.events.pop_front()
    }

    /// When [`X2Trigger::handle_timeout`] next has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.deadline).min()
    }

    /// Forget the pending UEs whose timeout has passed at `now` (one
    /// [`X2Event::Forget`] each, oldest deadline first, queued for
    /// [`X2Trigger::poll_event`]).
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut expired: Vec<(Instant, PendingKey)> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(k, p)| (p.deadline, *k))
            .collect();
        expired.sort();
        for (_, key) in expired {
            if let Some(p) = self.pending.remove(&key) {
                self.counters.timeouts += 1;
                self.events
                    .push_back(forget(&p, ForgetReason::Timeout(p.phase)));
            }
        }
    }

    /// Handle one X2AP PDU received at `now` (timeouts due by `now` are
    /// handled first). The events are queued for [`X2Trigger::poll_event`];
    /// a PDU that does not decode is one [`X2Event::Malformed`].
    pub fn handle_pdu(&mut self, now: Instant, bytes: &[u8]) {
        self.handle_timeout(now);
        self.counters.pdus += 1;
        match decode(bytes) {
            Ok(pdu) => self.handle(now, pdu),
            Err(e) => {
                self.counters.malformed += 1;
                self.events.push_back(X2Event::Malformed(e));
            }
        }
    }

    /// Handle a PDU decoded by the caller (as [`X2Trigger::handle_pdu`]).
    pub fn handle_decoded(&mut self, now: Instant, pdu: Pdu) {
        self.handle_timeout(now);
        self.counters.pdus += 1;
        self.handle(now, pdu);
    }

    fn handle(&mut self, now: Instant, pdu: Pdu) {
        self.counters.per_procedure[usize::from(pdu.procedure_code)][pdu.message_type.index()] += 1;
        match pdu.message {
            Message::HandoverRequest(m) => self.on_request(now, m),
            Message::HandoverRequestAcknowledge(m) => self.on_ack(now, m),
            Message::HandoverPreparationFailure(m) => self.on_failure(m),
            Message::HandoverCancel(m) => self.on_cancel(m),
            Message::UeContextRelease(m) => self.on_release(m),
            Message::Other => {
                self.counters.ignored += 1;
                self.events.push_back(X2Event::Ignored {
                    procedure_code: pdu.procedure_code,
                    message_type: pdu.message_type,
                });
            }
        }
    }

    fn on_request(&mut self, now: Instant, m: HandoverRequest) {
        self.counters.prepared += 1;
        let key = (m.old_enb_ue_x2ap_id, m.old_enb_ue_x2ap_id_ext);
        if let Some(old) = self.pending.remove(&key) {
            self.counters.evicted += 1;
            self.events
                .push_back(forget(&old, ForgetReason::Superseded(old.phase)));
        } else if self.pending.len() >= self.max_pending {
            if let Some(victim) = self
                .pending
                .iter()
                .min_by_key(|(k, p)| (p.deadline, **k))
                .map(|(k, _)| *k)
            {
                if let Some(old) = self.pending.remove(&victim) {
                    self.counters.evicted += 1;
                    self.events
                        .push_back(forget(&old, ForgetReason::Evicted(old.phase)));
                }
            }
        }
        let ue_address = self
            .ues
            .resolve(
                m.old_enb_ue_x2ap_id,
                m.e_rabs.iter().map(|e| e.ul_gtp_tunnel.teid),
            )
            .map(|(_, a)| a);
        let target_mihf_id = self.neighbours.resolve(&m.target_cell).map(str::to_owned);
        let ue = PendingUe {
            old_enb_ue_x2ap_id: m.old_enb_ue_x2ap_id,
            target_cell: m.target_cell,
            gummei: m.gummei,
            mme_ue_s1ap_id: m.mme_ue_s1ap_id,
            cause: m.cause,
            e_rabs: m.e_rabs,
            ue_address,
            target_mihf_id,
        };
        self.events.push_back(X2Event::HandoverPrepared(ue.clone()));
        self.pending.insert(
            key,
            Pending {
                ue,
                phase: Phase::Preparation,
                deadline: now + self.preparation_timeout,
                new_enb_ue_x2ap_id: None,
                triggered: None,
            },
        );
    }

    fn on_ack(&mut self, now: Instant, m: HandoverRequestAcknowledge) {
        let key = (m.old_enb_ue_x2ap_id, m.old_enb_ue_x2ap_id_ext);
        let Some(p) = self.pending.get_mut(&key) else {
            self.counters.unknown_ue += 1;
            self.events.push_back(X2Event::UnknownUe(UnknownUe {
                procedure_code: super::PROC_HANDOVER_PREPARATION,
                message_type: MessageType::SuccessfulOutcome,
                old_enb_ue_x2ap_id: m.old_enb_ue_x2ap_id,
                new_enb_ue_x2ap_id: Some(m.new_enb_ue_x2ap_id),
                reason: UnknownUeReason::NotPending,
            }));
            return;
        };
        if p.phase == Phase::Execution {
            // A repeated acknowledge: already handled.
            return;
        }
        p.phase = Phase::Execution;
        p.deadline = now + self.completion_timeout;
        p.new_enb_ue_x2ap_id = Some(m.new_enb_ue_x2ap_id);
        let ue = self.ues.resolve(
            m.old_enb_ue_x2ap_id,
            p.ue.e_rabs.iter().map(|e| e.ul_gtp_tunnel.teid),
        );
        let target = self.neighbours.resolve(&p.ue.target_cell);
        if ue.is_none() {
            self.counters.unknown_ue += 1;
            self.events.push_back(X2Event::UnknownUe(UnknownUe {
                procedure_code: super::PROC_HANDOVER_PREPARATION,
                message_type: MessageType::SuccessfulOutcome,
                old_enb_ue_x2ap_id: m.old_enb_ue_x2ap_id,
                new_enb_ue_x2ap_id: Some(m.new_enb_ue_x2ap_id),
                reason: UnknownUeReason::NoAddress,
            }));
        }
        if target.is_none() {
            self.counters.unknown_target += 1;
            self.events.push_back(X2Event::UnknownTarget(UnknownTarget {
                old_enb_ue_x2ap_id: m.old_enb_ue_x2ap_id,
                new_enb_ue_x2ap_id: m.new_enb_ue_x2ap_id,
                target_cell: p.ue.target_cell,
            }));
        }
        if let (Some((ue_key, ue_address)), Some(target)) = (ue, target) {
            self.counters.triggered += 1;
            p.triggered = Some(ue_address);
            self.events
                .push_back(X2Event::HandoverTriggered(HandoverTrigger {
                    old_enb_ue_x2ap_id: m.old_enb_ue_x2ap_id,
                    new_enb_ue_x2ap_id: m.new_enb_ue_x2ap_id,
                    ue_address,
                    ue_key,
                    target_cell: p.ue.target_cell,
                    target_mihf_id: target.to_owned(),
                    mme_ue_s1ap_id: p.ue.mme_ue_s1ap_id,
                    e_rabs: p.ue.e_rabs.clone(),
                    admitted_e_rabs: m.admitted_e_rabs,
                }));
        }
    }

    fn not_pending(&mut self, code: u8, message_type: MessageType, old: u16, new: Option<u16>) {
        self.counters.unknown_ue += 1;
        self.events.push_back(X2Event::UnknownUe(UnknownUe {
            procedure_code: code,
            message_type,
            old_enb_ue_x2ap_id: old,
            new_enb_ue_x2ap_id: new,
            reason: UnknownUeReason::NotPending,
        }));
    }

    fn on_failure(&mut self, m: HandoverPreparationFailure) {
        match self
            .pending
            .remove(&(m.old_enb_ue_x2ap_id, m.old_enb_ue_x2ap_id_ext))
        {
            Some(p) => {
                self.counters.forgotten += 1;
                self.events
                    .push_back(forget(&p, ForgetReason::PreparationFailure(m.cause)));
            }
            None => self.not_pending(
                super::PROC_HANDOVER_PREPARATION,
                MessageType::UnsuccessfulOutcome,
                m.old_enb_ue_x2ap_id,
                None,
            ),
        }
    }

    fn on_cancel(&mut self, m: HandoverCancel) {
        match self
            .pending
            .remove(&(m.old_enb_ue_x2ap_id, m.old_enb_ue_x2ap_id_ext))
        {
            Some(mut p) => {
                self.counters.forgotten += 1;
                p.new_enb_ue_x2ap_id = p.new_enb_ue_x2ap_id.or(m.new_enb_ue_x2ap_id);
                self.events
                    .push_back(forget(&p, ForgetReason::Cancelled(m.cause)));
            }
            None => self.not_pending(
                super::PROC_HANDOVER_CANCEL,
                MessageType::InitiatingMessage,
                m.old_enb_ue_x2ap_id,
                m.new_enb_ue_x2ap_id,
            ),
        }
    }

    fn on_release(&mut self, m: UeContextRelease) {
        match self
            .pending
            .remove(&(m.old_enb_ue_x2ap_id, m.old_enb_ue_x2ap_id_ext))
        {
            Some(p) => {
                self.counters.released += 1;
                self.events.push_back(X2Event::Released(Released {
                    old_enb_ue_x2ap_id: m.old_enb_ue_x2ap_id,
                    new_enb_ue_x2ap_id: m.new_enb_ue_x2ap_id,
                    ue_address: p.triggered,
                    triggered: p.triggered.is_some(),
                }));
            }
            None => self.not_pending(
                super::PROC_UE_CONTEXT_RELEASE,
                MessageType::InitiatingMessage,
                m.old_enb_ue_x2ap_id,
                Some(m.new_enb_ue_x2ap_id),
            ),
        }
    }
}

fn forget(p: &Pending, reason: ForgetReason) -> X2Event {
    X2Event::Forget {
        old_enb_ue_x2ap_id: p.ue.old_enb_ue_x2ap_id,
        new_enb_ue_x2ap_id: p.new_enb_ue_x2ap_id,
        triggered: p.triggered.is_some(),
        reason,
    }
}
