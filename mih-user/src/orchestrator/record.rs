//! What one finished migration looks like: outcome, cause, the phases of
//! Table I of "Service Mobility in Mobile Networks" and the context sizes.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use cxtp::wire::StatusEntry;

use super::core::HandoverId;
use crate::api::{Outcome, Role};

/// Why a migration rolled back (or, for [`Cause::CompleteTimeout`], why a
/// destination committed without the source's word).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cause {
    /// The destination refused the MIH_N2N_HO_Commit (status and its
    /// reason, if it gave one).
    Refused {
        /// MIH status (2 = Rejected).
        status: u8,
        /// The destination's reason.
        reason: String,
    },
    /// A failure confirm from the MIHF (Network Error: the destination
    /// MIHF is unreachable; Unspecified Failure: no MIH-User there).
    MihFailure {
        /// MIH status.
        status: u8,
    },
    /// No MIH_N2N_HO_Commit.confirm within the MIH timeout.
    MihTimeout,
    /// A service could not export its context (or did not in time).
    AppExport(String),
    /// The session exporter failed.
    SessionExport(String),
    /// The contexts could not be put in CXTP messages.
    Encode(String),
    /// No CTDR within the CXTP transfer timeout (the destination is down
    /// or too slow).
    CxtpTimeout,
    /// The destination cancelled the transfer (CTC).
    CxtpCancelled,
    /// The destination's CTDR reported failures.
    CtdrFailure(Vec<StatusEntry>),
    /// Aborted by the operator, an X2 HandoverCancel or a shutdown.
    Aborted(String),
    /// Destination: no context arrived in time after the commit.
    NoContext,
    /// Destination: importing failed for these FPTs (the CTDR sent).
    ImportFailed(Vec<StatusEntry>),
    /// Destination: the source said the migration failed
    /// (MIH_N2N_HO_Complete with a failure result).
    SourceRolledBack,
    /// Destination: no MIH_N2N_HO_Complete after the successful CTDR; the
    /// migration was committed at the timeout.
    CompleteTimeout,
    /// Destination: restarted with the attempt in its session journal, it
    /// asked the source, which answered that it had committed.
    SourceConfirmed,
    /// Source: the mih-user restarted in the middle of the migration and
    /// restored the UE's sessions from its session journal.
    SourceRestarted,
}

impl Cause {
    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Cause::Refused { .. } => "refused",
            Cause::MihFailure { .. } => "mih_failure",
            Cause::MihTimeout => "mih_timeout",
            Cause::AppExport(_) => "app_export",
            Cause::SessionExport(_) => "session_export",
            Cause::Encode(_) => "encode",
            Cause::CxtpTimeout => "cxtp_timeout",
            Cause::CxtpCancelled => "cxtp_cancelled",
            Cause::CtdrFailure(_) => "ctdr_failure",
            Cause::Aborted(_) => "aborted",
            Cause::NoContext => "no_context",
            Cause::ImportFailed(_) => "import_failed",
            Cause::SourceRolledBack => "source_rolled_back",
            Cause::CompleteTimeout => "complete_timeout",
            Cause::SourceRestarted => "source_restarted",
            Cause::SourceConfirmed => "source_confirmed",
        }
    }
}

fn entries(f: &mut fmt::Formatter<'_>, e: &[StatusEntry]) -> fmt::Result {
    for (i, s) in e.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        write!(f, "{sep}FPT {:#06x}: {:#04x}", s.fpt, s.status)?;
    }
    Ok(())
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Refused { status, reason } if reason.is_empty() => {
                write!(f, "destination refused the commit (status {status})")
            }
            Cause::Refused { status, reason } => {
                write!(
                    f,
                    "destination refused the commit (status {status}): {reason}"
                )
            }
            Cause::MihFailure { status } => {
                let what = match *status {
                    4 => " (Network Error: destination MIHF unreachable)",
                    1 => " (Unspecified Failure)",
                    _ => "",
                };
                write!(f, "MIH_N2N_HO_Commit failed with status {status}{what}")
            }
            Cause::MihTimeout => write!(f, "no MIH_N2N_HO_Commit.confirm in time"),
            Cause::AppExport(e) => write!(f, "application export failed: {e}"),
            Cause::SessionExport(e) => write!(f, "session export failed: {e}"),
            Cause::Encode(e) => write!(f, "contexts do not fit CXTP: {e}"),
            Cause::CxtpTimeout => write!(f, "no CTDR in time (CXTP timeout)"),
            Cause::CxtpCancelled => write!(f, "destination cancelled the transfer (CTC)"),
            Cause::CtdrFailure(e) => {
                write!(f, "CTDR failure: ")?;
                entries(f, e)
            }
            Cause::Aborted(why) => write!(f, "aborted: {why}"),
            Cause::NoContext => write!(f, "no context arrived in time"),
            Cause::ImportFailed(e) => {
                write!(f, "import failed: ")?;
                entries(f, e)
            }
            Cause::SourceRolledBack => write!(f, "the source rolled back"),
            Cause::CompleteTimeout => {
                write!(
                    f,
                    "no MIH_N2N_HO_Complete from the source; committed at the timeout"
                )
            }
            Cause::SourceConfirmed => write!(
                f,
                "recovered after a restart: the source answered that it committed"
            ),
            Cause::SourceRestarted => write!(
                f,
                "the source restarted mid-migration and restored the sessions from its journal"
            ),
        }
    }
}

/// How the migration was started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TriggerKind {
    /// An X2 HandoverRequestAcknowledge.
    X2,
    /// An operator command.
    Operator,
    /// A peer's MIH_N2N_HO_Commit (destination).
    Peer,
}

impl TriggerKind {
    /// Label.
    pub fn label(self) -> &'static str {
        match self {
            TriggerKind::X2 => "x2",
            TriggerKind::Operator => "operator",
            TriggerKind::Peer => "peer",
        }
    }
}

/// Durations of the phases of Table I of "Service Mobility in Mobile Networks".
///
/// At the **source**: `mih_commit` = MIH_N2N_HO_Commit.request sent to
/// .confirm received; `app_data` = retrieving the application data
/// (export through the API); `socket_data` = retrieving the socket data
/// (session exporter); `cxtp` = the CXTP transaction, first CTD sent to
/// the final CTDR; `total` = trigger to outcome.
///
/// At the **destination**: `wait_context` = commit answered to first CTD;
/// `cxtp` = first CTD to complete transfer; `app_data` / `socket_data` =
/// importing; `total` = commit indication to outcome (including the wait
/// for MIH_N2N_HO_Complete). A phase not reached is `None`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Phases {
    /// MIH HO commit transaction time (source).
    pub mih_commit: Option<Duration>,
    /// Waiting for the first CTD (destination).
    pub wait_context: Option<Duration>,
    /// Retrieving (source) or importing (destination) application data.
    pub app_data: Option<Duration>,
    /// Retrieving (source) or importing (destination) socket data.
    pub socket_data: Option<Duration>,
    /// CXTP transaction time.
    pub cxtp: Option<Duration>,
    /// Start to outcome.
    pub total: Duration,
}

/// Context sizes of one migration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sizes {
    /// Services whose contexts moved.
    pub services: usize,
    /// Application state octets (sum of the services' data).
    pub app_octets: usize,
    /// TCP sessions.
    pub sessions: usize,
    /// Encoded session context octets.
    pub session_octets: usize,
    /// CXTP messages (CTD) sent or received.
    pub cxtp_messages: usize,
    /// CXTP octets (CTD messages) sent or received.
    pub cxtp_octets: usize,
}

/// One finished migration, at one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigrationRecord {
    /// Handover ID (this node's).
    pub id: HandoverId,
    /// The source's attempt id, on the wire in MIH and CXTP (the same at
    /// both ends).
    pub attempt: u32,
    /// The UE.
    pub ue: IpAddr,
    /// This node's role.
    pub role: Role,
    /// The other eNBC's MIHF ID.
    pub peer: String,
    /// What started it.
    pub trigger: TriggerKind,
    /// Committed or rolled back.
    pub outcome: Outcome,
    /// Why it rolled back (or why a destination committed at a timeout).
    pub cause: Option<Cause>,
    /// Phase durations.
    pub phases: Phases,
    /// Sizes.
    pub sizes: Sizes,
}

impl MigrationRecord {
    /// "committed" or "rolled_back".
    pub fn outcome_label(&self) -> &'static str {
        match self.outcome {
            Outcome::Committed => "committed",
            Outcome::RolledBack => "rolled_back",
        }
    }
    /// "source" or "destination".
    pub fn role_label(&self) -> &'static str {
        role_label(self.role)
    }
}

/// One value per role.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ByRole<T> {
    /// The value for the source role.
    pub source: T,
    /// The value for the destination role.
    pub destination: T,
}

impl<T> ByRole<T> {
    /// The value for `role`.
    pub fn get(&self, role: Role) -> &T {
        match role {
            Role::Source => &self.source,
            Role::Destination => &self.destination,
        }
    }

    /// The value for `role`, mutably.
    pub fn get_mut(&mut self, role: Role) -> &mut T {
        match role {
            Role::Source => &mut self.source,
            Role::Destination => &mut self.destination,
        }
    }
}

impl<T: Copy> ByRole<T> {
    /// `[("source", source), ("destination", destination)]` (labels of [`role_label`]).
    pub fn labeled(&self) -> [(&'static str, T); 2] {
        [
            (role_label(Role::Source), self.source),
            (role_label(Role::Destination), self.destination),
        ]
    }
}

/// "source" or "destination".
pub fn role_label(r: Role) -> &'static str {
    match r {
        Role::Source => "source",
        Role::Destination => "destination",
    }
}
