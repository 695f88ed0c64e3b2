//! Async Rust client of the Service Mobility API (tokio, feature `daemon`).
//!
//! [`ServiceClient::connect`] opens the socket, does the version handshake
//! and returns the client (cheap to clone; calls may run concurrently
//! from several tasks, each matched to its answer by request ID) and the
//! [`EventStream`] of events the server pushes. Read the event stream
//! promptly: it is bounded ([`ClientConfig::event_capacity`]), and while
//! it is full the client stops reading the socket, so answers to calls
//! wait too, and the server eventually closes a client that does not
//! keep up.
//!
//! Dropping every clone of the client (or calling
//! [`ServiceClient::close`]) closes the connection; the server then
//! removes the services registered over it and their users.
//!
//! ```no_run
//! # async fn run() -> Result<(), mih_user::api::client::ClientError> {
//! use mih_user::api::client::{ClientError, ServiceClient};
//! use mih_user::api::wire::ErrorCode;
//!
//! let (client, _events) = ServiceClient::connect("/run/mih-user/api.sock").await?;
//! client.register_service("video", 0xFF01).await?;
//! match client.register_service("video", 0xFF01).await {
//!     Err(e) if e.code() == Some(ErrorCode::DuplicateService) => {}
//!     other => panic!("{other:?}"),
//! }
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use super::wire::{
    self, Connection, DecodeError, DeregisterService, DeregisterUser, EncodeError, ErrorCode,
    ExportContext, Frame, Hello, HelloAck, ImportContext, Message, Outcome, RegisterService,
    RegisterUser, ReplyStatus, Role, DEFAULT_MAX_FRAME, PROTOCOL_VERSION,
};

/// Client settings.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Name sent in `Hello` (for the server's logs).
    pub client_name: String,
    /// Largest frame accepted from the server (announced in `Hello`).
    pub max_frame: u32,
    /// Events buffered for the application.
    pub event_capacity: usize,
    /// How long a call waits for its answer.
    pub call_timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            client_name: "mih-user-client".into(),
            max_frame: DEFAULT_MAX_FRAME,
            event_capacity: 256,
            call_timeout: Duration::from_secs(10),
        }
    }
}

/// Errors of the client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Socket error.
    #[error("I/O: {0}")]
    Io(#[from] io::Error),
    /// The server sent something that does not decode.
    #[error("protocol: {0}")]
    Decode(#[from] DecodeError),
    /// A field does not fit the protocol.
    #[error("encode: {0}")]
    Encode(#[from] EncodeError),
    /// The server answered with an `Error`.
    #[error("server refused: {code}: {message}")]
    Server {
        /// Error code.
        code: ErrorCode,
        /// Detail.
        message: String,
    },
    /// The connection is closed.
    #[error("connection closed")]
    Closed,
    /// No answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The server answered with a message that is not an answer.
    #[error("unexpected {0} from the server")]
    Unexpected(&'static str),
    /// The request is larger than the server accepts.
    #[error("request of {len} octets exceeds the server's limit of {max}")]
    TooLarge {
        /// Frame length.
        len: usize,
        /// Server's limit.
        max: u32,
    },
}

impl ClientError {
    /// The server's error code, for [`ClientError::Server`].
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Server { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// `ExportRequested`: hand over the context of `ue` with
/// [`ServiceClient::export_context`] (or refuse with
/// [`ServiceClient::refuse_export`]) within `timeout`. Stop changing the
/// UE's state (freeze its sessions) until the [`OutcomeNotice`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportRequest {
    /// Event ID (to quote in the answer).
    pub event_id: u32,
    /// Service asked.
    pub service_id: String,
    /// UE.
    pub ue: IpAddr,
    /// How long the server waits.
    pub timeout: Duration,
}

/// `ImportRequested`: install the context and confirm with
/// [`ServiceClient::import_context`] (or refuse with
/// [`ServiceClient::refuse_import`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportRequest {
    /// Event ID (to quote in the answer).
    pub event_id: u32,
    /// Service that should import.
    pub service_id: String,
    /// UE arriving.
    pub ue: IpAddr,
    /// FPT the context travelled under.
    pub fpt: u16,
    /// The context, as exported at the source.
    pub data: Bytes,
}

/// `MigrationOutcome`: at the source, `Committed` means the UE has left
/// (drop its state), `RolledBack` means keep serving it (unfreeze); at the
/// destination, `Committed` means serve it, `RolledBack` means drop the
/// imported state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutcomeNotice {
    /// Event ID (no answer expected).
    pub event_id: u32,
    /// Service told.
    pub service_id: String,
    /// UE.
    pub ue: IpAddr,
    /// This node's role.
    pub role: Role,
    /// What happened.
    pub outcome: Outcome,
    /// Cause (for logs).
    pub cause: String,
}

/// An event pushed by the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Export the context of a UE.
    ExportRequested(ExportRequest),
    /// Import a context for a UE.
    ImportRequested(ImportRequest),
    /// A migration ended.
    MigrationOutcome(OutcomeNotice),
}

/// The events of one connection. Ends when the connection closes.
#[derive(Debug)]
pub struct EventStream {
    rx: mpsc::Receiver<Event>,
}

impl EventStream {
    /// The next event, or `None` once the connection is closed.
    pub async fn recv(&mut self) -> Option<Event> {
        self.rx.recv().await
    }
}

enum Cmd {
    Frame(Frame),
    Close,
}

#[derive(Default)]
struct Pending {
    closed: bool,
    calls: HashMap<u32, oneshot::Sender<Message>>,
}

struct ClientInner {
    tx: mpsc::Sender<Cmd>,
    pending: Arc<Mutex<Pending>>,
    next_id: AtomicU32,
    server: HelloAck,
    call_timeout: Duration,
}

/// Client of the Service Mobility API. See the module documentation.
#[derive(Clone)]
pub struct ServiceClient {
    inner: Arc<ClientInner>,
}

impl std::fmt::Debug for ServiceClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceClient")
            .field("server", &self.inner.server)
            .finish_non_exhaustive()
    }
}

async fn read_frame(
    rd: &mut OwnedReadHalf,
    buf: &mut BytesMut,
    max: u32,
) -> Result<Option<Frame>, ClientError> {
    loop {
        if let Some(f) = wire::decode_frame(buf, max)? {
            return Ok(Some(f));
        }
        if rd.read_buf(buf).await? == 0 {
            return Ok(None);
        }
    }
}

async fn write_frame(wr: &mut OwnedWriteHalf, frame: &Frame) -> Result<(), ClientError> {
    let mut buf = BytesMut::with_capacity(wire::encoded_len(frame) + 4);
    wire::encode(frame, &mut buf)?;
    wr.write_all(&buf).await?;
    Ok(())
}

fn lock(p: &Mutex<Pending>) -> std::sync::MutexGuard<'_, Pending> {
    p.lock().unwrap_or_else(|e| e.into_inner())
}

impl ServiceClient {
    /// Connect to the server at `path` with [`ClientConfig::default`].
    pub async fn connect(
        path: impl AsRef<Path>,
    ) -> Result<(ServiceClient, EventStream), ClientError> {
        Self::connect_with(path, ClientConfig::default()).await
    }

    /// Connect with explicit settings.
    pub async fn connect_with(
        path: impl AsRef<Path>,
        config: ClientConfig,
    ) -> Result<(ServiceClient, EventStream), ClientError> {
        let stream = UnixStream::connect(path).await?;
        let (mut rd, mut wr) = stream.into_split();
        let hello = Frame::new(
            1,
            Message::Hello(Hello {
                min_version: PROTOCOL_VERSION,
                max_version: PROTOCOL_VERSION,
                max_frame: config.max_frame,
                client_name: config.client_name.clone(),
            }),
        );
        write_frame(&mut wr, &hello).await?;
        let mut buf = BytesMut::with_capacity(8192);
        let answer = tokio::time::timeout(
            config.call_timeout,
            read_frame(&mut rd, &mut buf, config.max_frame),
        )
        .await
        .map_err(|_| ClientError::Timeout(config.call_timeout))??;
        let server = match answer.map(|f| f.message) {
            Some(Message::HelloAck(ack)) => ack,
            Some(Message::Error(e)) => {
                return Err(ClientError::Server {
                    code: e.code,
                    message: e.message,
                })
            }
            Some(other) => return Err(ClientError::Unexpected(other.name())),
            None => return Err(ClientError::Closed),
        };
        let (tx, cmd_rx) = mpsc::channel(64);
        let (ev_tx, ev_rx) = mpsc::channel(config.event_capacity.max(1));
        let pending = Arc::new(Mutex::new(Pending::default()));
        tokio::spawn(run_writer(wr, cmd_rx));
        tokio::spawn(run_reader(
            rd,
            buf,
            config.max_frame,
            pending.clone(),
            ev_tx,
            tx.downgrade(),
        ));
        Ok((
            ServiceClient {
                inner: Arc::new(ClientInner {
                    tx,
                    pending,
                    next_id: AtomicU32::new(2),
                    server,
                    call_timeout: config.call_timeout,
                }),
            },
            EventStream { rx: ev_rx },
        ))
    }

    /// What the server said in `HelloAck`.
    pub fn server_info(&self) -> &HelloAck {
        &self.inner.server
    }

    /// Whether the connection is closed.
    pub fn is_closed(&self) -> bool {
        lock(&self.inner.pending).closed
    }

    /// Close the connection (every clone stops working).
    pub async fn close(&self) {
        let _ = self.inner.tx.send(Cmd::Close).await;
    }

    async fn call(&self, message: Message) -> Result<(), ClientError> {
        let id = loop {
            let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
            if id != 0 {
                break id;
            }
        };
        let frame = Frame::new(id, message);
        let len = wire::encoded_len(&frame);
        if len > self.inner.server.max_frame as usize {
            return Err(ClientError::TooLarge {
                len,
                max: self.inner.server.max_frame,
            });
        }
        let (tx, rx) = oneshot::channel();
        {
            let mut p = lock(&self.inner.pending);
            if p.closed {
                return Err(ClientError::Closed);
            }
            p.calls.insert(id, tx);
        }
        if self.inner.tx.send(Cmd::Frame(frame)).await.is_err() {
            lock(&self.inner.pending).calls.remove(&id);
            return Err(ClientError::Closed);
        }
        let t = self.inner.call_timeout;
        match tokio::time::timeout(t, rx).await {
            Err(_) => {
                lock(&self.inner.pending).calls.remove(&id);
                Err(ClientError::Timeout(t))
            }
            Ok(Err(_)) => Err(ClientError::Closed),
            Ok(Ok(Message::Ok)) => Ok(()),
            Ok(Ok(Message::Error(e))) => Err(ClientError::Server {
                code: e.code,
                message: e.message,
            }),
            Ok(Ok(other)) => Err(ClientError::Unexpected(other.name())),
        }
    }

    /// Register a service on this connection; its contexts travel in CXTP
    /// under `fpt` (use `cxtp::profile::fpt::APP_SERVICE` unless the
    /// service has its own). Events for it come on this connection's
    /// [`EventStream`].
    pub async fn register_service(&self, service_id: &str, fpt: u16) -> Result<(), ClientError> {
        self.call(Message::RegisterService(RegisterService {
            service_id: service_id.into(),
            fpt,
        }))
        .await
    }

    /// Deregister a service (its users are removed).
    pub async fn deregister_service(&self, service_id: &str) -> Result<(), ClientError> {
        self.call(Message::DeregisterService(DeregisterService {
            service_id: service_id.into(),
        }))
        .await
    }

    /// Register `ue` as a user of the service with its TCP connections
    /// (`DUPLICATE_USER` if it already is).
    pub async fn register_user(
        &self,
        service_id: &str,
        ue: IpAddr,
        connections: &[Connection],
    ) -> Result<(), ClientError> {
        self.register_user_inner(service_id, ue, connections, false)
            .await
    }

    /// Register `ue`, or replace its connections if it is already a user.
    pub async fn update_user(
        &self,
        service_id: &str,
        ue: IpAddr,
        connections: &[Connection],
    ) -> Result<(), ClientError> {
        self.register_user_inner(service_id, ue, connections, true)
            .await
    }

    async fn register_user_inner(
        &self,
        service_id: &str,
        ue: IpAddr,
        connections: &[Connection],
        replace: bool,
    ) -> Result<(), ClientError> {
        self.call(Message::RegisterUser(RegisterUser {
            service_id: service_id.into(),
            ue,
            replace,
            connections: connections.to_vec(),
        }))
        .await
    }

    /// Deregister `ue` from the service.
    pub async fn deregister_user(&self, service_id: &str, ue: IpAddr) -> Result<(), ClientError> {
        self.call(Message::DeregisterUser(DeregisterUser {
            service_id: service_id.into(),
            ue,
        }))
        .await
    }

    /// Answer an [`ExportRequest`] with the UE's context.
    pub async fn export_context(
        &self,
        req: &ExportRequest,
        data: Bytes,
    ) -> Result<(), ClientError> {
        self.call(Message::ExportContext(ExportContext {
            event_id: req.event_id,
            service_id: req.service_id.clone(),
            ue: req.ue,
            status: ReplyStatus::Ok,
            reason: String::new(),
            data,
        }))
        .await
    }

    /// Refuse an [`ExportRequest`] (`status` must not be `Ok`); the
    /// migration of the UE then fails and is rolled back.
    pub async fn refuse_export(
        &self,
        req: &ExportRequest,
        status: ReplyStatus,
        reason: &str,
    ) -> Result<(), ClientError> {
        self.call(Message::ExportContext(ExportContext {
            event_id: req.event_id,
            service_id: req.service_id.clone(),
            ue: req.ue,
            status: non_ok(status),
            reason: reason.into(),
            data: Bytes::new(),
        }))
        .await
    }

    /// Confirm an [`ImportRequest`]: the context is installed; the UE
    /// becomes a user of the service here with `connections` (may be
    /// empty until the UE's connections arrive; update them later with
    /// [`ServiceClient::update_user`]).
    pub async fn import_context(
        &self,
        req: &ImportRequest,
        connections: &[Connection],
    ) -> Result<(), ClientError> {
        self.call(Message::ImportContext(ImportContext {
            event_id: req.event_id,
            service_id: req.service_id.clone(),
            ue: req.ue,
            status: ReplyStatus::Ok,
            reason: String::new(),
            connections: connections.to_vec(),
        }))
        .await
    }

    /// Refuse an [`ImportRequest`] (`status` must not be `Ok`).
    pub async fn refuse_import(
        &self,
        req: &ImportRequest,
        status: ReplyStatus,
        reason: &str,
    ) -> Result<(), ClientError> {
        self.call(Message::ImportContext(ImportContext {
            event_id: req.event_id,
            service_id: req.service_id.clone(),
            ue: req.ue,
            status: non_ok(status),
            reason: reason.into(),
            connections: Vec::new(),
        }))
        .await
    }
}

fn non_ok(s: ReplyStatus) -> ReplyStatus {
    if s.is_ok() {
        ReplyStatus::Refused
    } else {
        s
    }
}

async fn run_writer(mut wr: OwnedWriteHalf, mut rx: mpsc::Receiver<Cmd>) {
    while let Some(cmd) = rx.recv().await {
        match cmd {
            Cmd::Frame(f) => {
                if let Err(e) = write_frame(&mut wr, &f).await {
                    debug!("API client write failed: {e}");
                    break;
                }
            }
            Cmd::Close => break,
        }
    }
    let _ = wr.shutdown().await;
}

async fn run_reader(
    mut rd: OwnedReadHalf,
    mut buf: BytesMut,
    max: u32,
    pending: Arc<Mutex<Pending>>,
    events: mpsc::Sender<Event>,
    writer: mpsc::WeakSender<Cmd>,
) {
    loop {
        let frame = match read_frame(&mut rd, &mut buf, max).await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                warn!("API client: closing the connection: {e}");
                break;
            }
        };
        let id = frame.request_id;
        let ev = match frame.message {
            m @ (Message::Ok | Message::Error(_) | Message::HelloAck(_)) => {
                if id == 0 {
                    if let Message::Error(e) = &m {
                        warn!(code = %e.code, "API server closes the connection: {}", e.message);
                    }
                    continue;
                }
                if let Some(w) = lock(&pending).calls.remove(&id) {
                    let _ = w.send(m);
                }
                continue;
            }
            Message::ExportRequested(m) => Event::ExportRequested(ExportRequest {
                event_id: id,
                service_id: m.service_id,
                ue: m.ue,
                timeout: Duration::from_millis(m.timeout_ms.into()),
            }),
            Message::ImportRequested(m) => Event::ImportRequested(ImportRequest {
                event_id: id,
                service_id: m.service_id,
                ue: m.ue,
                fpt: m.fpt,
                data: m.data,
            }),
            Message::MigrationOutcome(m) => Event::MigrationOutcome(OutcomeNotice {
                event_id: id,
                service_id: m.service_id,
                ue: m.ue,
                role: m.role,
                outcome: m.outcome,
                cause: m.cause,
            }),
            other => {
                warn!("API client: unexpected {} from the server", other.name());
                break;
            }
        };
        // A dropped EventStream just means nobody listens.
        let _ = events.send(ev).await;
    }
    {
        let mut p = lock(&pending);
        p.closed = true;
        p.calls.clear();
    }
    // Close our side too (through a weak handle, so that dropping every
    // client still closes the connection by itself).
    if let Some(tx) = writer.upgrade() {
        let _ = tx.try_send(Cmd::Close);
    }
}
