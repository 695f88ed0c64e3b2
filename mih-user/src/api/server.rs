//! The API socket server (tokio, feature `daemon`): a thin driver around
//! the sans-IO [`Registry`].
//!
//! One task accepts on the Unix socket; each connection has a reader (it
//! decodes frames with [`wire::decode_frame`] and hands them to the
//! registry) and a writer (it drains a bounded queue of frames). The
//! registry lives behind a `std::sync::Mutex` that is never held across an
//! `.await`. The orchestrator drives the server through [`ApiServer`]:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use mih_user::api::server::{ApiConfig, ApiServer};
//! use mih_user::api::Outcome;
//!
//! let api = ApiServer::bind(ApiConfig::new("/run/mih-user/api.sock")).await?;
//! let ue = "10.45.0.7".parse()?;
//! // Source eNBC, after MIH_N2N_HO_Commit.confirm:
//! match api.request_export(ue).await {
//!     Ok(contexts) => {
//!         let cxtp_contexts: Vec<_> = contexts.iter().map(|c| c.to_cxtp()).collect();
//!         // ... CXTP transfer, then on CTDR success:
//!         api.notify_outcome(ue, Outcome::Committed, "CTDR success")?;
//!     }
//!     Err(e) => {
//!         api.notify_outcome(ue, Outcome::RolledBack, &e.to_string())?;
//!     }
//! }
//! api.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Robustness: a frame that does not decode (or is longer than
//! [`Limits::max_frame`]) closes that connection after an `Error` with
//! request ID 0 (`MALFORMED_FRAME`), is logged and counted
//! ([`ApiStats::malformed_frames`]); a client whose queue of outgoing
//! frames is full (it does not read) is closed with `SLOW_CONSUMER`; a
//! connection that sends no `Hello` within [`ApiConfig::handshake_timeout`]
//! is closed (`HANDSHAKE_REQUIRED`), and so is one that stays without a
//! registered service for [`ApiConfig::registration_timeout`] after its
//! `Hello` or its last deregistration (`LIMIT_REACHED`, request ID 0).
//! Connections are long-lived by design, so there is no idle timeout once
//! a service is registered; instead, when [`ApiConfig::max_clients`]
//! connections are open, a new one closes the oldest connection that has
//! no registered service (`LIMIT_REACHED`, request ID 0), and is itself
//! refused only when every connection has one. Idle or half-open
//! connections therefore never lock services out. Accept errors are
//! counted and retried after a backoff (`cxtp::transport::accept`).
//! Closing a connection removes its services and users and fails their
//! pending events.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::BytesMut;
use cxtp::transport::accept::{Acceptor, LogLimit, LOG_EVERY};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use super::registry::{
    close_frame, ApiError, ConnId, ImportReport, Limits, OpId, OpResult, Output, Registry,
    RegistryStats,
};
use super::wire::{self, Connection, ErrorCode, Frame, Outcome};
use super::ServiceContext;

/// Server configuration.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// Path of the Unix domain socket. A stale socket file (nobody
    /// listening) is replaced; a live one makes [`ApiServer::bind`] fail
    /// with `AddrInUse`. Access control is the directory's permissions.
    pub socket_path: PathBuf,
    /// Name sent in `HelloAck`.
    pub server_name: String,
    /// Registry limits (services, users, connections per user, frame size).
    pub limits: Limits,
    /// How long [`ApiServer::request_export`] waits for all services.
    pub export_timeout: Duration,
    /// How long [`ApiServer::deliver_import`] waits for all services.
    pub import_timeout: Duration,
    /// Most simultaneous client connections. When they are all open, a new
    /// one closes the oldest connection without a registered service; when
    /// every connection has one, the new one is closed at once. Both get
    /// `LIMIT_REACHED` with request ID 0.
    pub max_clients: usize,
    /// Frames queued for one client before it is closed as a slow consumer.
    pub queue_capacity: usize,
    /// Time a new connection has to send `Hello`.
    pub handshake_timeout: Duration,
    /// Time a connection may stay without a registered service after its
    /// `Hello` or its last deregistration.
    pub registration_timeout: Duration,
    /// Time one frame may take to be written to a client.
    pub write_timeout: Duration,
}

impl ApiConfig {
    /// Defaults: limits of [`Limits::default`], 2 s export/import
    /// timeouts, 64 clients, 256 queued frames, 5 s handshake and write
    /// timeouts, 30 s registration timeout.
    pub fn new(socket_path: impl Into<PathBuf>) -> Self {
        ApiConfig {
            socket_path: socket_path.into(),
            server_name: "mih-user".into(),
            limits: Limits::default(),
            export_timeout: Duration::from_secs(2),
            import_timeout: Duration::from_secs(2),
            max_clients: 64,
            queue_capacity: 256,
            handshake_timeout: Duration::from_secs(5),
            registration_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(5),
        }
    }
}

/// Counters of the server (driver and registry).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApiStats {
    /// Connections accepted.
    pub connections_accepted: u64,
    /// Connections refused (too many clients, each with a service).
    pub connections_refused: u64,
    /// Connections without a registered service closed to make room for
    /// a new one.
    pub connections_evicted: u64,
    /// Connections open now.
    pub connections_open: u64,
    /// Frames that did not decode (each closed its connection).
    pub malformed_frames: u64,
    /// Connections closed because their outgoing queue was full.
    pub slow_consumers: u64,
    /// Connections closed for sending no `Hello` in time.
    pub handshake_timeouts: u64,
    /// Connections closed for registering no service in time.
    pub registration_timeouts: u64,
    /// `accept()` errors (each retried after a backoff).
    pub accept_errors: u64,
    /// Registry counters.
    pub registry: RegistryStats,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    refused: AtomicU64,
    evicted: AtomicU64,
    malformed: AtomicU64,
    slow: AtomicU64,
    handshake: AtomicU64,
    registration: AtomicU64,
    accept_errors: Arc<AtomicU64>,
}

struct ConnHandle {
    tx: mpsc::Sender<Frame>,
    /// Close now with this frame, discarding the queue.
    kill: Option<oneshot::Sender<Frame>>,
}

struct State {
    registry: Registry,
    conns: HashMap<ConnId, ConnHandle>,
    waiters: HashMap<OpId, oneshot::Sender<OpResult>>,
    closed: bool,
}

struct Inner {
    config: ApiConfig,
    state: Mutex<State>,
    counters: Counters,
    shutdown: watch::Sender<bool>,
    accept_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// The Service Mobility API server. Cheap to clone; every clone drives the
/// same server. Stop it with [`ApiServer::shutdown`].
#[derive(Clone)]
pub struct ApiServer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServer")
            .field("socket_path", &self.inner.config.socket_path)
            .finish_non_exhaustive()
    }
}

fn remove_stale_socket(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(m) if !m.file_type().is_socket() => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        )),
        Ok(_) => match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("a server already listens on {}", path.display()),
            )),
            Err(_) => std::fs::remove_file(path),
        },
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Carry out the outputs the registry queued, until none is left (and
    /// what follows from them: a client that cannot take a frame is closed,
    /// which may finish operations; those outputs are queued behind the
    /// rest and carried out too). Called after each registry input, under
    /// the same lock.
    fn apply(&self, st: &mut State) {
        while let Some(o) = st.registry.poll_output() {
            match o {
                Output::Send { conn, frame } => {
                    if let wire::Message::Error(e) = &frame.message {
                        // Only answers to requests are errors (Registry::on_frame).
                        debug!(
                            conn = conn.0,
                            request_id = frame.request_id,
                            code = %e.code,
                            "API error: {}",
                            e.message
                        );
                    }
                    let Some(h) = st.conns.get(&conn) else {
                        continue;
                    };
                    if let Err(e) = h.tx.try_send(frame) {
                        let full = matches!(e, mpsc::error::TrySendError::Full(_));
                        if full {
                            self.counters.slow.fetch_add(1, Ordering::Relaxed);
                            warn!(
                                conn = conn.0,
                                "API client does not read its frames: closing it"
                            );
                        }
                        if let Some(mut h) = st.conns.remove(&conn) {
                            if let Some(k) = h.kill.take() {
                                let _ = k.send(close_frame(
                                    ErrorCode::SlowConsumer,
                                    "outgoing queue full",
                                ));
                            }
                        }
                        st.registry.disconnect(conn);
                    }
                }
                Output::Close { conn } => {
                    // Dropping the sender lets the writer drain the queue and stop.
                    st.conns.remove(&conn);
                }
                Output::Complete { op, result } => {
                    if let Some(w) = st.waiters.remove(&op) {
                        let _ = w.send(result);
                    }
                }
            }
        }
    }

    fn on_frame(&self, conn: ConnId, frame: Frame) {
        debug!(
            conn = conn.0,
            message = frame.message.name(),
            request_id = frame.request_id,
            "API request"
        );
        let mut st = self.lock();
        st.registry.on_frame(conn, frame);
        self.apply(&mut st);
    }

    fn is_connected(&self, conn: ConnId) -> bool {
        self.lock().conns.contains_key(&conn)
    }

    fn service_count(&self, conn: ConnId) -> usize {
        self.lock().registry.service_count(conn)
    }

    /// Close `conn` at once with `frame` (queued frames are discarded).
    fn kill(&self, conn: ConnId, frame: Frame) {
        let mut st = self.lock();
        self.kill_locked(&mut st, conn, frame);
    }

    fn kill_locked(&self, st: &mut State, conn: ConnId, frame: Frame) {
        if let Some(mut h) = st.conns.remove(&conn) {
            if let Some(k) = h.kill.take() {
                let _ = k.send(frame);
            }
        }
        st.registry.disconnect(conn);
        self.apply(st);
    }

    fn disconnected(&self, conn: ConnId) {
        let mut st = self.lock();
        st.conns.remove(&conn);
        st.registry.disconnect(conn);
        self.apply(&mut st);
    }

    fn cancel(&self, op: OpId) {
        let mut st = self.inner_cancel(op);
        st.waiters.remove(&op);
    }

    fn inner_cancel(&self, op: OpId) -> MutexGuard<'_, State> {
        let mut st = self.lock();
        st.registry.cancel(op);
        self.apply(&mut st);
        st
    }
}

/// Cancels the operation if the orchestrator's future is dropped early.
struct CancelOnDrop<'a> {
    inner: &'a Inner,
    op: OpId,
    armed: bool,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.inner.cancel(self.op);
        }
    }
}

async fn write_frame(
    wr: &mut OwnedWriteHalf,
    buf: &mut BytesMut,
    frame: &Frame,
    timeout: Duration,
) -> io::Result<()> {
    buf.clear();
    wire::encode(frame, buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    match tokio::time::timeout(timeout, wr.write_all(buf)).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "write timed out")),
    }
}

async fn run_writer(
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Frame>,
    mut kill: oneshot::Receiver<Frame>,
    timeout: Duration,
) {
    let mut buf = BytesMut::new();
    let mut kill_open = true;
    loop {
        tokio::select! {
            biased;
            k = &mut kill, if kill_open => match k {
                Ok(frame) => {
                    let _ = write_frame(&mut wr, &mut buf, &frame, timeout).await;
                    break;
                }
                Err(_) => kill_open = false,
            },
            f = rx.recv() => match f {
                Some(frame) => {
                    if let Err(e) = write_frame(&mut wr, &mut buf, &frame, timeout).await {
                        debug!("API write failed: {e}");
                        break;
                    }
                }
                None => break,
            },
        }
    }
    let _ = wr.shutdown().await;
}

async fn run_conn(
    inner: Arc<Inner>,
    conn: ConnId,
    stream: UnixStream,
    rx: mpsc::Receiver<Frame>,
    kill: oneshot::Receiver<Frame>,
) {
    let (rd, wr) = stream.into_split();
    let mut writer = tokio::spawn(run_writer(wr, rx, kill, inner.config.write_timeout));
    let why = read_loop(&inner, conn, rd, &mut writer).await;
    debug!(conn = conn.0, "API connection closed: {why}");
    inner.disconnected(conn);
    // The writer drains what is queued (each write bounded by write_timeout).
    // (Unless read_loop already saw it finish: a JoinHandle must not be
    // polled again after completion.)
    if !writer.is_finished() {
        let _ = writer.await;
    }
}

async fn read_loop(
    inner: &Inner,
    conn: ConnId,
    mut rd: OwnedReadHalf,
    writer: &mut tokio::task::JoinHandle<()>,
) -> String {
    let max = inner.config.limits.max_frame;
    let mut buf = BytesMut::with_capacity(8192);
    let deadline = tokio::time::Instant::now() + inner.config.handshake_timeout;
    let mut hello_done = false;
    // Since when the connection has had no service (after its Hello).
    let mut unregistered_since: Option<tokio::time::Instant> = None;
    loop {
        loop {
            match wire::decode_frame(&mut buf, max) {
                Ok(Some(frame)) => {
                    inner.on_frame(conn, frame);
                    if !inner.is_connected(conn) {
                        return "closed by the server".into();
                    }
                    hello_done = true;
                    if inner.service_count(conn) > 0 {
                        unregistered_since = None;
                    } else if unregistered_since.is_none() {
                        unregistered_since = Some(tokio::time::Instant::now());
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    inner.counters.malformed.fetch_add(1, Ordering::Relaxed);
                    warn!(
                        conn = conn.0,
                        "malformed API frame, closing the connection: {e}"
                    );
                    inner.kill(conn, close_frame(ErrorCode::MalformedFrame, e.to_string()));
                    return format!("malformed frame: {e}");
                }
            }
        }
        tokio::select! {
            r = rd.read_buf(&mut buf) => match r {
                Ok(0) => return "end of stream".into(),
                Ok(_) => {}
                Err(e) => return format!("read error: {e}"),
            },
            _ = &mut *writer => return "writer stopped".into(),
            _ = tokio::time::sleep_until(deadline), if !hello_done => {
                inner.counters.handshake.fetch_add(1, Ordering::Relaxed);
                warn!(conn = conn.0, "API client sent no Hello in time, closing");
                inner.kill(conn, close_frame(ErrorCode::HandshakeRequired, "no Hello in time"));
                return "handshake timeout".into();
            }
            _ = async {
                if let Some(t) = unregistered_since {
                    tokio::time::sleep_until(t + inner.config.registration_timeout).await
                }
            }, if unregistered_since.is_some() => {
                inner.counters.registration.fetch_add(1, Ordering::Relaxed);
                let limit = inner.config.registration_timeout;
                warn!(conn = conn.0, "API client registered no service within {limit:?}, closing");
                inner.kill(
                    conn,
                    close_frame(
                        ErrorCode::LimitReached,
                        format!("no service registered within {} ms", limit.as_millis()),
                    ),
                );
                return "registration timeout".into();
            }
        }
    }
}

async fn accept_loop(inner: Arc<Inner>, listener: UnixListener, mut stop: watch::Receiver<bool>) {
    let mut tasks = JoinSet::new();
    let mut acceptor = Acceptor::new("api", inner.counters.accept_errors.clone());
    let mut log = LogLimit::new(LOG_EVERY);
    loop {
        tokio::select! {
            (stream, _) = acceptor.accept(&listener) => accept_one(&inner, stream, &mut tasks, &mut log),
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    // Connections were told to close by Registry::shutdown; give them a
    // moment to flush, then stop them.
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(2), drain)
        .await
        .is_err()
    {
        tasks.abort_all();
    }
}

fn accept_one(inner: &Arc<Inner>, stream: UnixStream, tasks: &mut JoinSet<()>, log: &mut LogLimit) {
    let mut st = inner.lock();
    if st.closed {
        return;
    }
    if st.conns.len() >= inner.config.max_clients {
        // Make room by closing the oldest connection (IDs grow) that has
        // no registered service.
        let idle = st
            .conns
            .keys()
            .copied()
            .filter(|&c| st.registry.service_count(c) == 0)
            .min();
        if let Some(old) = idle {
            inner.counters.evicted.fetch_add(1, Ordering::Relaxed);
            if let Some(left_out) = log.check(tokio::time::Instant::now()) {
                warn!(
                    conn = old.0,
                    max = inner.config.max_clients,
                    not_logged = left_out,
                    "too many API clients: closing the oldest one without a service"
                );
            }
            inner.kill_locked(
                &mut st,
                old,
                close_frame(
                    ErrorCode::LimitReached,
                    "too many clients: closed to make room (no service registered)",
                ),
            );
        }
    }
    if st.conns.len() >= inner.config.max_clients {
        inner.counters.refused.fetch_add(1, Ordering::Relaxed);
        if let Some(left_out) = log.check(tokio::time::Instant::now()) {
            warn!(
                max = inner.config.max_clients,
                not_logged = left_out,
                "too many API clients, each with a service: refusing one"
            );
        }
        let timeout = inner.config.write_timeout;
        tasks.spawn(async move {
            let (_rd, mut wr) = stream.into_split();
            let frame = close_frame(ErrorCode::LimitReached, "too many clients");
            let _ = write_frame(&mut wr, &mut BytesMut::new(), &frame, timeout).await;
        });
        return;
    }
    inner.counters.accepted.fetch_add(1, Ordering::Relaxed);
    let conn = st.registry.connect();
    let (tx, rx) = mpsc::channel(inner.config.queue_capacity.max(1));
    let (ktx, krx) = oneshot::channel();
    st.conns.insert(
        conn,
        ConnHandle {
            tx,
            kill: Some(ktx),
        },
    );
    debug!(conn = conn.0, "API client connected");
    tasks.spawn(run_conn(inner.clone(), conn, stream, rx, krx));
}

impl ApiServer {
    /// Listen on `config.socket_path` and serve (must be called inside a
    /// tokio runtime).
    pub async fn bind(config: ApiConfig) -> io::Result<ApiServer> {
        remove_stale_socket(&config.socket_path)?;
        let listener = UnixListener::bind(&config.socket_path)?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let registry = Registry::new(config.limits.clone(), config.server_name.clone());
        let inner = Arc::new(Inner {
            config,
            state: Mutex::new(State {
                registry,
                conns: HashMap::new(),
                waiters: HashMap::new(),
                closed: false,
            }),
            counters: Counters::default(),
            shutdown: stop_tx,
            accept_task: Mutex::new(None),
        });
        info!(path = %inner.config.socket_path.display(), "Service Mobility API listening");
        let task = tokio::spawn(accept_loop(inner.clone(), listener, stop_rx));
        *inner.accept_task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        Ok(ApiServer { inner })
    }

    /// The socket path.
    pub fn socket_path(&self) -> &Path {
        &self.inner.config.socket_path
    }

    /// The configuration.
    pub fn config(&self) -> &ApiConfig {
        &self.inner.config
    }

    async fn run_op(
        &self,
        timeout: Duration,
        start: impl FnOnce(&mut Registry) -> Result<OpId, ApiError>,
    ) -> Result<OpResult, ApiError> {
        let (op, mut rx) = {
            let mut st = self.inner.lock();
            if st.closed {
                return Err(ApiError::Shutdown);
            }
            let op = match start(&mut st.registry) {
                Ok(op) => op,
                Err(e) => {
                    // A refused start queues nothing; drain all the same.
                    self.inner.apply(&mut st);
                    return Err(e);
                }
            };
            // The waiter first: an import with nothing to wait for has
            // completed already.
            let (tx, rx) = oneshot::channel();
            st.waiters.insert(op, tx);
            self.inner.apply(&mut st);
            (op, rx)
        };
        let mut guard = CancelOnDrop {
            inner: &self.inner,
            op,
            armed: true,
        };
        let r = match tokio::time::timeout(timeout, &mut rx).await {
            Ok(r) => r.ok(),
            Err(_) => {
                // The registry finishes the operation with its timeout
                // result, which apply() hands to the waiter.
                let mut st = self.inner.lock();
                st.registry.cancel(op);
                self.inner.apply(&mut st);
                drop(st);
                rx.try_recv().ok()
            }
        };
        guard.armed = false;
        r.ok_or(ApiError::Shutdown)
    }

    /// Ask every registered service that has `ue` as a user for its
    /// context, waiting at most [`ApiConfig::export_timeout`].
    ///
    /// Returns the contexts sorted by service ID. Fails with
    /// [`ApiError::UnknownUe`] when no service has the UE,
    /// [`ApiError::UeBusy`] while a previous migration of the UE has no
    /// outcome yet, [`ApiError::ExportFailed`] as soon as one service
    /// refuses or goes away, [`ApiError::Timeout`] naming the services that
    /// did not answer. Whatever the result, finish with
    /// [`ApiServer::notify_outcome`] (rolled back on an error).
    pub async fn request_export(&self, ue: IpAddr) -> Result<Vec<ServiceContext>, ApiError> {
        self.request_export_within(ue, self.inner.config.export_timeout)
            .await
    }

    /// [`ApiServer::request_export`] with an explicit timeout.
    pub async fn request_export_within(
        &self,
        ue: IpAddr,
        timeout: Duration,
    ) -> Result<Vec<ServiceContext>, ApiError> {
        let ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
        match self.run_op(timeout, |r| r.start_export(ue, ms)).await? {
            OpResult::Export(r) => r,
            OpResult::Import(_) => Err(ApiError::Shutdown),
        }
    }

    /// Deliver the contexts received for `ue` to their services, waiting at
    /// most [`ApiConfig::import_timeout`]. One [`ImportReport`] per context,
    /// in order (services not registered here, refusals and timeouts are
    /// reported, not errors). Fails only with [`ApiError::UeBusy`] or
    /// [`ApiError::Shutdown`]. Finish with [`ApiServer::notify_outcome`].
    pub async fn deliver_import(
        &self,
        ue: IpAddr,
        contexts: Vec<ServiceContext>,
    ) -> Result<Vec<ImportReport>, ApiError> {
        self.deliver_import_within(ue, contexts, self.inner.config.import_timeout)
            .await
    }

    /// [`ApiServer::deliver_import`] with an explicit timeout.
    pub async fn deliver_import_within(
        &self,
        ue: IpAddr,
        contexts: Vec<ServiceContext>,
        timeout: Duration,
    ) -> Result<Vec<ImportReport>, ApiError> {
        match self
            .run_op(timeout, |r| r.start_import(ue, contexts))
            .await?
        {
            OpResult::Import(r) => Ok(r),
            OpResult::Export(_) => Err(ApiError::Shutdown),
        }
    }

    /// Conclude the migration of `ue` and tell its services (see
    /// [`Registry::notify_outcome`]). Returns how many services were told.
    pub fn notify_outcome(
        &self,
        ue: IpAddr,
        outcome: Outcome,
        cause: &str,
    ) -> Result<usize, ApiError> {
        let mut st = self.inner.lock();
        let r = st.registry.notify_outcome(ue, outcome, cause);
        self.inner.apply(&mut st);
        if let Ok(n) = r {
            info!(%ue, ?outcome, cause, services = n, "migration outcome");
        }
        r
    }

    /// Tell one service how a migration of `ue` ended that this server
    /// never saw (see [`Registry::notify_service`]: the session journal's
    /// recovery after a restart). False if the service is not registered.
    pub fn notify_service(
        &self,
        service_id: &str,
        ue: IpAddr,
        role: super::wire::Role,
        outcome: Outcome,
        cause: &str,
    ) -> bool {
        let mut st = self.inner.lock();
        let told = st
            .registry
            .notify_service(service_id, ue, role, outcome, cause);
        self.inner.apply(&mut st);
        if told {
            info!(%ue, service = service_id, ?outcome, cause, "migration outcome (recovered)");
        }
        told
    }

    /// Admission: whether `service_id` is registered on this node.
    pub fn has_service(&self, service_id: &str) -> bool {
        self.inner.lock().registry.has_service(service_id)
    }

    /// Admission: distinct UEs registered with at least one service.
    pub fn user_count(&self) -> usize {
        self.inner.lock().registry.user_count()
    }

    /// Registered services and their FPTs.
    pub fn services(&self) -> Vec<(String, u16)> {
        self.inner.lock().registry.services()
    }

    /// The services that have `ue` and its connections with each (what the
    /// session exporter migrates).
    pub fn user_connections(&self, ue: IpAddr) -> Vec<(String, Vec<Connection>)> {
        self.inner.lock().registry.user_connections(ue)
    }

    /// Whether `ue` is in a migration without an outcome yet.
    pub fn is_migrating(&self, ue: IpAddr) -> bool {
        self.inner.lock().registry.is_migrating(ue)
    }

    /// Counters.
    pub fn stats(&self) -> ApiStats {
        let st = self.inner.lock();
        let c = &self.inner.counters;
        ApiStats {
            connections_accepted: c.accepted.load(Ordering::Relaxed),
            connections_refused: c.refused.load(Ordering::Relaxed),
            connections_evicted: c.evicted.load(Ordering::Relaxed),
            connections_open: st.conns.len() as u64,
            malformed_frames: c.malformed.load(Ordering::Relaxed),
            slow_consumers: c.slow.load(Ordering::Relaxed),
            handshake_timeouts: c.handshake.load(Ordering::Relaxed),
            registration_timeouts: c.registration.load(Ordering::Relaxed),
            accept_errors: c.accept_errors.load(Ordering::Relaxed),
            registry: st.registry.stats().clone(),
        }
    }

    /// Stop: close every client connection (pending operations fail with
    /// [`ApiError::Shutdown`]), stop accepting, remove the socket file.
    /// Idempotent.
    pub async fn shutdown(&self) {
        {
            let mut st = self.inner.lock();
            if !st.closed {
                st.closed = true;
                st.registry.shutdown();
                // Tell each client why before its connection closes.
                for h in st.conns.values_mut() {
                    if let Some(k) = h.kill.take() {
                        let _ =
                            k.send(close_frame(ErrorCode::ShuttingDown, "server shutting down"));
                    }
                }
                self.inner.apply(&mut st);
                st.waiters.clear();
            }
        }
        let _ = self.inner.shutdown.send(true);
        let task = self
            .inner
            .accept_task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(t) = task {
            let _ = t.await;
            let _ = std::fs::remove_file(&self.inner.config.socket_path);
        }
    }
}
