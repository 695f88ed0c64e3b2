//! Handover orchestration (Fig. 7 of "Service Mobility in Mobile Networks"): the per-UE state machines of the
//! source and destination eNBCs, sans-IO.
//!
//! ```text
//! source eNBC                                              destination eNBC
//! X2 HandoverRequestAcknowledge / operator
//!   │ start_handover
//!   ├─ Mih(MIH_N2N_HO_Commit.request) ──► mihfd ══► mihfd ──► handle_mih(indication)
//!   │                                                           admission: UE not moving,
//!   │                                                           peer known, services
//!   │                                                           registered, capacity
//!   │   handle_mih(confirm) ◄── mihfd ◄══ mihfd ◄── Mih(response: Success / Rejected)
//!   ├─ ExportApp ─► on_app_exported (API request_export)
//!   ├─ ExportSessions ─► on_sessions_exported (SessionExporter)
//!   ├─ Cxtp(CTD…, A set) ═══════════════════════════════════► handle_cxtp
//!   │                                      intermediate CTDRs ◄┤ ImportApp ─► on_app_imported
//!   │                                                          │ ImportSessions ─► on_sessions_imported
//!   │   handle_cxtp(final CTDR, per-FPT status) ◄══════════════┤ (deferred until imported)
//!   ├─ ReleaseSessions, NotifyOutcome(committed)
//!   └─ Mih(MIH_N2N_HO_Complete.request, Success) ══════════════► commit: NotifyOutcome(committed)
//! ```
//!
//! [`Orchestrator`] owns no socket, task or clock: every input carries
//! `now`; [`Orchestrator::poll_action`] says what to do (frames for the
//! MIHF's SAP, CXTP messages, calls on the Service Mobility API and the
//! session interfaces), [`Orchestrator::poll_event`] reports (one
//! [`MigrationRecord`] per finished migration, with the phases of the
//! the paper's Table I), [`Orchestrator::poll_timeout`] /
//! [`Orchestrator::handle_timeout`] drive the deadlines. The CXTP pAR and
//! nAR engines of the `cxtp` crate live inside it
//! (`PreviousRouter::start_push`, `NewRouter::expect_transfer` with the
//! final CTDR deferred until the services imported).
//!
//! **Failure and rollback.** Any failure before the final CTDR rolls the
//! source back: sessions restored (`RestoreSessions`), then the services
//! told to keep serving the UE (`NotifyOutcome(rolled back)`), then, if
//! the destination had accepted, `MIH_N2N_HO_Complete(Failure)` so that it
//! drops what it imported. The destination rolls back on its own
//! timeouts, on an import failure (its CTDR says which FPTs failed) and on
//! that Complete. After a successful CTDR it commits on
//! `MIH_N2N_HO_Complete(Success)`. At `complete_timeout` without a word
//! from the source it asks first (MIH_N2N_HO_Complete with the attempt id,
//! repeated like any Complete, for [`OrchestratorConfig::query_horizon`]):
//! the source's answer commits or rolls back, and only a source that stays
//! silent or cannot say leaves it committed at the end of that horizon
//! (the source commits as soon as it has the CTDR; a source that rolled
//! back while every Complete(Failure) was lost must not find the session
//! served at both ends, the destination's copy stale). The source repeats its Complete (a new transaction each time)
//! every `complete_retry_interval`, at most `complete_retries` more times,
//! until a response echoes the attempt; `complete_timeout` is longer than
//! that ([`OrchestratorConfig::source_horizon`]): the destination waits
//! longer than the source keeps trying, so a lost Complete(Failure) does
//! not leave the UE committed at the destination and restored at the
//! source. Every outcome is an [`Event::Finished`] naming its [`Cause`].
//!
//! **Attempts.** Each handover the source starts is an attempt with its
//! own id (a random start per process, then +1, never 0), on the wire in
//! every message of it: our vendor TLV in MIH_N2N_HO_Commit and
//! MIH_N2N_HO_Complete (echoed in their responses, [`mih`]), the transfer
//! id of the CXTP TRANSFER block in every CTD, and the echo of it in every
//! CTDR (`cxtp::profile::echo`). The destination acts only on messages of
//! the attempt it accepted; a message of an earlier attempt of the same
//! UE (late, repeated) is answered if it asks for an answer and otherwise
//! dropped, and counted. A CTC cannot name an attempt, so it is ignored;
//! the destination gives up with a failure CTDR instead. When an attempt
//! ends, in either role, the engines forget it: no timer of it fires into
//! the next. An X2 trigger's `Forget` aborts only the handovers that
//! trigger started, and only a HandoverCancel does
//! ([`Orchestrator::abort_x2`]).
//!
//! **One handover per UE.** A UE has at most one handover on a node, in
//! either role; a second `start_handover` for it is refused
//! ([`StartError::Busy`]), a second commit indication answered Rejected.
//! Handovers of different UEs run concurrently, up to
//! `max_outgoing` / `max_incoming`. [`Scheduler`] (in [`schedule`]) sits
//! in front: it queues triggers refused as `Busy` or `TooMany` and retries
//! X2-triggered migrations that rolled back for a cause that can change.

mod core;
pub mod mih;
mod record;
pub mod schedule;
pub mod sessions;

pub use self::core::{
    flatten_connections, Action, Event, HandoverId, HandoverInfo, HandoverRequest, NodeView,
    Orchestrator, OrchestratorConfig, OrchestratorStats, StartError,
};
pub use record::{role_label, ByRole, Cause, MigrationRecord, Phases, Sizes, TriggerKind};
pub use schedule::{
    retryable, Fate, Pending, PendingState, Refusal, Requested, ScheduleEvent, Scheduler,
    SchedulerConfig, SchedulerStats,
};
pub use sessions::{MemorySessions, SessionError, SessionExporter, SessionImporter};
