//! The session interfaces: how the UE's live TCP connections with the
//! services leave the source eNBC and are rebuilt at the destination.
//!
//! The Linux `TCP_REPAIR` implementation (`crate::sessions::tcp_repair`,
//! the daemon's `sessions.mode = "tcp_repair"`) plugs in here.
//! [`MemorySessions`] is the in-memory implementation used by the tests and
//! by the daemon's `sessions.mode = "memory"`.
//!
//! The orchestrator calls these through its driver: the sans-IO core asks
//! for an export or import with an [`super::Action`], the driver calls the
//! trait and hands the result back. The calls are synchronous and must be
//! short (freezing a socket and reading its queues).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use cxtp::profile::TcpSessionContext;

use crate::api::Connection;

/// Why a session operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// A connection could not be found or frozen.
    #[error("session {local} <-> {remote}: {reason}")]
    Session {
        /// Local (service) end.
        local: std::net::SocketAddr,
        /// Remote (UE) end.
        remote: std::net::SocketAddr,
        /// Why.
        reason: String,
    },
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// The handover attempt whose sessions are exported (or, at a destination,
/// imported): what an exporter or importer that journals its state
/// (`crate::sessions::journal`) records with it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportAttempt {
    /// The handover (this process's id).
    pub handover_id: super::HandoverId,
    /// The on-wire attempt id (MIH vendor TLV kind 3).
    pub attempt: Option<std::num::NonZeroU32>,
    /// The other eNBC's MIHF ID (the destination's; at an import, the
    /// source's).
    pub peer: String,
    /// The services that exported the UE.
    pub services: Vec<String>,
    /// The RAN (X2) triggered the handover: a restarted source that
    /// restores the sessions retries it.
    pub x2_trigger: bool,
}

/// Source side: capture the UE's TCP sessions, and put them back or let
/// them go when the migration ends.
///
/// `export` must be all-or-nothing: on an error, the sessions it froze are
/// live again when it returns.
pub trait SessionExporter: Send + Sync {
    /// Freeze the UE's sessions (`connections`: what its services
    /// registered through the API) and return their state. Called after
    /// the services exported their application state.
    fn export(
        &self,
        ue: IpAddr,
        connections: &[Connection],
    ) -> Result<Vec<TcpSessionContext>, SessionError>;
    /// [`SessionExporter::export`] for the attempt `attempt` (the daemon
    /// calls this one). A journaling exporter records the attempt with
    /// the sessions before it closes them.
    fn export_attempt(
        &self,
        ue: IpAddr,
        connections: &[Connection],
        attempt: &ExportAttempt,
    ) -> Result<Vec<TcpSessionContext>, SessionError> {
        let _ = attempt;
        self.export(ue, connections)
    }
    /// The exported sessions of `ue` are about to leave for the
    /// destination (before the first CTD). An error stops the handover:
    /// the caller restores the sessions.
    fn sending(&self, ue: IpAddr) -> Result<(), SessionError> {
        let _ = ue;
        Ok(())
    }
    /// The migration of `ue` rolls back (called before
    /// [`SessionExporter::restore`]); `peer_refused`: the destination
    /// refused the contexts, so it cannot commit.
    fn rolling_back(&self, ue: IpAddr, peer_refused: bool) {
        let _ = (ue, peer_refused);
    }
    /// The migration rolled back: rebuild `sessions` (what `export`
    /// returned) here, so the services keep serving the UE.
    fn restore(&self, ue: IpAddr, sessions: &[TcpSessionContext]) -> Result<(), SessionError>;
    /// The migration committed: the sessions live at the destination now;
    /// drop what is left of them here (without resetting the peer).
    fn release(&self, ue: IpAddr);
}

/// Destination side: rebuild received sessions.
pub trait SessionImporter: Send + Sync {
    /// Rebuild `sessions` for `ue`; one result per session, in order.
    fn import(&self, ue: IpAddr, sessions: &[TcpSessionContext]) -> Vec<Result<(), SessionError>>;
    /// [`SessionImporter::import`] for a known attempt (its id and the
    /// source's MIHF ID in `attempt`), so that an importer with a journal
    /// can make the rebuilt sessions durable before the CTDR leaves.
    fn import_attempt(
        &self,
        ue: IpAddr,
        sessions: &[TcpSessionContext],
        attempt: &ExportAttempt,
    ) -> Vec<Result<(), SessionError>> {
        let _ = attempt;
        self.import(ue, sessions)
    }
    /// The migration rolled back: remove what `import` built for `ue`.
    fn discard(&self, ue: IpAddr);
    /// The migration committed: keep what `import` built for `ue`.
    fn commit(&self, ue: IpAddr) {
        let _ = ue;
    }
}

/// Counters of a [`MemorySessions`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Sessions exported.
    pub exported: u64,
    /// Sessions restored after a rollback.
    pub restored: u64,
    /// Sessions released after a commit.
    pub released: u64,
    /// Sessions imported.
    pub imported: u64,
    /// Sessions discarded after a rollback.
    pub discarded: u64,
}

#[derive(Default)]
struct MemoryState {
    live: HashMap<IpAddr, Vec<TcpSessionContext>>,
    frozen: HashMap<IpAddr, Vec<TcpSessionContext>>,
    imported: HashMap<IpAddr, usize>,
    stats: MemoryStats,
}

/// In-memory sessions: the "live" sessions of each UE are values in a
/// table. Exporting moves them to a frozen table; restoring moves them
/// back; importing adds them to the live table. With `synthesize`, a UE
/// with no recorded sessions exports one session per connection its
/// services registered (the 4-tuple, sequence numbers 0, empty queues),
/// which is what the daemon does before `TCP_REPAIR` exists.
pub struct MemorySessions {
    synthesize: bool,
    max_sessions: usize,
    state: Mutex<MemoryState>,
}

impl std::fmt::Debug for MemorySessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemorySessions")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl MemorySessions {
    /// New table. `synthesize`: see the type's documentation.
    pub fn new(synthesize: bool) -> Self {
        MemorySessions {
            synthesize,
            max_sessions: 65_536,
            state: Mutex::new(MemoryState::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, MemoryState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The live sessions of `ue`.
    pub fn live(&self, ue: IpAddr) -> Vec<TcpSessionContext> {
        self.lock().live.get(&ue).cloned().unwrap_or_default()
    }

    /// Counters.
    pub fn stats(&self) -> MemoryStats {
        self.lock().stats
    }
}

/// A session for one registered connection (what `synthesize` exports).
pub fn synthetic_session(c: &Connection) -> TcpSessionContext {
    TcpSessionContext {
        local: c.server,
        remote: c.client,
        send_seq: 0,
        recv_seq: 0,
        mss: 1460,
        snd_wscale: 7,
        rcv_wscale: 7,
        sack: true,
        timestamps: true,
        window_scaling: true,
        timestamp: 0,
        snd_wl1: 0,
        snd_wnd: 65_535,
        max_window: 65_535,
        rcv_wnd: 65_535,
        rcv_wup: 0,
        unacked: Bytes::new(),
        unsent: Bytes::new(),
        recv_queue: Bytes::new(),
    }
}

impl SessionExporter for MemorySessions {
    fn export(
        &self,
        ue: IpAddr,
        connections: &[Connection],
    ) -> Result<Vec<TcpSessionContext>, SessionError> {
        let mut st = self.lock();
        let sessions = match st.live.remove(&ue) {
            Some(s) => s,
            None if self.synthesize => connections.iter().map(synthetic_session).collect(),
            None => Vec::new(),
        };
        st.stats.exported += sessions.len() as u64;
        st.frozen.insert(ue, sessions.clone());
        Ok(sessions)
    }

    fn restore(&self, ue: IpAddr, sessions: &[TcpSessionContext]) -> Result<(), SessionError> {
        let mut st = self.lock();
        st.frozen.remove(&ue);
        st.stats.restored += sessions.len() as u64;
        if !sessions.is_empty() {
            st.live.insert(ue, sessions.to_vec());
        }
        Ok(())
    }

    fn release(&self, ue: IpAddr) {
        let mut st = self.lock();
        if let Some(s) = st.frozen.remove(&ue) {
            st.stats.released += s.len() as u64;
        }
    }
}

impl SessionImporter for MemorySessions {
    fn import(&self, ue: IpAddr, sessions: &[TcpSessionContext]) -> Vec<Result<(), SessionError>> {
        let mut st = self.lock();
        let total: usize = st.live.values().map(Vec::len).sum();
        if total + sessions.len() > self.max_sessions {
            return sessions
                .iter()
                .map(|_| Err(SessionError::Other("session table full".into())))
                .collect();
        }
        st.stats.imported += sessions.len() as u64;
        st.imported.insert(ue, sessions.len());
        st.live.entry(ue).or_default().extend_from_slice(sessions);
        sessions.iter().map(|_| Ok(())).collect()
    }

    fn discard(&self, ue: IpAddr) {
        let mut st = self.lock();
        if let Some(n) = st.imported.remove(&ue) {
            st.stats.discarded += n as u64;
            if let Some(live) = st.live.get_mut(&ue) {
                let keep = live.len().saturating_sub(n);
                live.truncate(keep);
                if live.is_empty() {
                    st.live.remove(&ue);
                }
            }
        }
    }

    fn commit(&self, ue: IpAddr) {
        self.lock().imported.remove(&ue);
    }
}
