//! Sans-IO core of the API server: services, users, pending events and
//! the orchestrator's export/import operations.
//!
//! [`Registry`] owns no socket, task or clock. The driver
//! ([`crate::api::server`]) hands it decoded frames per connection and
//! carries out the [`Output`]s it queues (frames to send, connections to
//! close, finished operations), taking them with [`Registry::poll_output`]
//! after each input, as the other sans-IO cores of the stack do. Timeouts
//! belong to the driver: when its timer fires it calls
//! [`Registry::cancel`], which finishes the operation with a timeout
//! result.
//!
//! ```
//! use mih_user::api::registry::{Limits, Output, Registry};
//! use mih_user::api::wire::{Frame, Hello, Message, RegisterService, PROTOCOL_VERSION};
//!
//! let mut reg = Registry::new(Limits::default(), "node-a");
//! let conn = reg.connect();
//! reg.on_frame(conn, Frame::new(1, Message::Hello(Hello {
//!     min_version: PROTOCOL_VERSION, max_version: PROTOCOL_VERSION,
//!     max_frame: 1 << 20, client_name: "svc".into(),
//! })));
//! assert!(matches!(reg.poll_output(), Some(Output::Send { frame: Frame { request_id: 1, .. }, .. })));
//! reg.on_frame(conn, Frame::new(2, Message::RegisterService(RegisterService {
//!     service_id: "video".into(), fpt: 0xFF01,
//! })));
//! assert!(reg.has_service("video"));
//! assert!(matches!(reg.poll_output(), Some(Output::Send { frame: Frame { request_id: 2, message: Message::Ok }, .. })));
//! assert_eq!(reg.poll_output(), None);
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;

use super::context::{is_service_fpt, ServiceContext};
use super::wire::{
    self, Connection, DeregisterService, DeregisterUser, ErrorCode, ErrorMessage, ExportContext,
    ExportRequested, Frame, HelloAck, ImportContext, ImportRequested, Message, MigrationOutcome,
    Outcome, RegisterService, RegisterUser, ReplyStatus, Role, MAX_CONNECTIONS_PER_USER,
    MAX_SERVICE_ID_LEN, MIN_MAX_FRAME, PROTOCOL_VERSION,
};

handle!(
    /// Identifies one client connection inside the registry.
    ConnId
);
handle!(
    /// Identifies one export or import operation.
    OpId
);

/// Longest reason/cause string kept or sent (longer ones are cut at a
/// character boundary).
pub const MAX_TEXT_LEN: usize = 1024;

/// Configured limits.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Registered services on the node.
    pub max_services: usize,
    /// User registrations (one UE with one service) on the node.
    pub max_users: usize,
    /// Connections listed for one user (at most [`MAX_CONNECTIONS_PER_USER`]).
    pub max_connections_per_user: usize,
    /// Largest frame the server accepts, announced in `HelloAck`.
    pub max_frame: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_services: 256,
            max_users: 65_536,
            max_connections_per_user: 64,
            max_frame: wire::DEFAULT_MAX_FRAME,
        }
    }
}

/// What the driver must do, taken with [`Registry::poll_output`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send `frame` on `conn`.
    Send {
        /// Connection.
        conn: ConnId,
        /// Frame.
        frame: Frame,
    },
    /// Flush what is queued for `conn`, then close it. The registry has
    /// already forgotten the connection.
    Close {
        /// Connection.
        conn: ConnId,
    },
    /// An operation finished.
    Complete {
        /// Operation.
        op: OpId,
        /// Its result.
        result: OpResult,
    },
}

/// Result of a finished operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpResult {
    /// From [`Registry::start_export`].
    Export(Result<Vec<ServiceContext>, ApiError>),
    /// From [`Registry::start_import`].
    Import(Vec<ImportReport>),
}

/// Why one service failed an export.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExportFailure {
    /// The service answered with a non-zero status.
    #[error("refused ({status:?}): {reason}")]
    Refused {
        /// Its status.
        status: ReplyStatus,
        /// Its reason.
        reason: String,
    },
    /// The service disconnected or deregistered.
    #[error("service went away")]
    ServiceGone,
    /// The service deregistered the UE while the export was pending.
    #[error("UE deregistered during the export")]
    UserDeregistered,
}

/// Errors of the orchestrator-facing operations.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// No registered service has this UE.
    #[error("UE {0} is not a user of any registered service")]
    UnknownUe(IpAddr),
    /// The UE is already in a migration (until its outcome is notified).
    #[error("UE {0} is already migrating")]
    UeBusy(IpAddr),
    /// `notify_outcome` for a UE with no export/import under way.
    #[error("no migration of UE {0} to conclude")]
    NoMigration(IpAddr),
    /// Some services did not answer in time.
    #[error("export of UE {ue} timed out waiting for {pending:?}")]
    Timeout {
        /// UE.
        ue: IpAddr,
        /// Services that had not answered.
        pending: Vec<String>,
    },
    /// One service could not export (the whole export fails, so that the
    /// orchestrator rolls back rather than moving the UE without it).
    #[error("export of UE {ue} failed at service {service_id}: {cause}")]
    ExportFailed {
        /// UE.
        ue: IpAddr,
        /// Service.
        service_id: String,
        /// Why.
        cause: ExportFailure,
    },
    /// The server was shut down.
    #[error("the API server is shut down")]
    Shutdown,
}

/// Per-service result of an import.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportReport {
    /// Service the context was for.
    pub service_id: String,
    /// Its FPT.
    pub fpt: u16,
    /// What happened.
    pub status: ImportStatus,
}

/// Status of one context of an import.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImportStatus {
    /// The service imported the context; the UE is now its user here.
    Accepted,
    /// The service refused.
    Refused {
        /// Its status.
        status: ReplyStatus,
        /// Its reason.
        reason: String,
    },
    /// No such service on this node.
    NotRegistered,
    /// The service disconnected or deregistered before answering.
    ServiceGone,
    /// The service did not answer in time.
    TimedOut,
    /// The context does not fit the frame size the service accepts.
    TooLarge,
    /// A second context for the same service in one import.
    Duplicate,
}

impl ImportReport {
    /// Whether the service accepted.
    pub fn is_accepted(&self) -> bool {
        self.status == ImportStatus::Accepted
    }
    /// The status for this context's CTDR entry (`cxtp::profile::verdict`
    /// folds them per FPT).
    pub fn cxtp_status(&self) -> u8 {
        use cxtp::profile::status as s;
        match &self.status {
            ImportStatus::Accepted => s::SUCCESS,
            ImportStatus::NotRegistered => s::UNSUPPORTED_FPT,
            ImportStatus::TimedOut => s::TIMEOUT,
            ImportStatus::Refused {
                status: ReplyStatus::MalformedContext,
                ..
            } => s::MALFORMED,
            ImportStatus::Refused {
                status: ReplyStatus::NoCapacity,
                ..
            } => s::SERVICE_NO_CAPACITY,
            ImportStatus::Refused { .. } => s::SERVICE_REFUSED,
            ImportStatus::ServiceGone | ImportStatus::TooLarge | ImportStatus::Duplicate => {
                s::SERVICE_UNAVAILABLE
            }
        }
    }
}

/// Counters (monotonic).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegistryStats {
    /// Requests handled.
    pub requests: u64,
    /// `Error` answers sent.
    pub errors: u64,
    /// Events sent.
    pub events: u64,
    /// Exports started / succeeded / failed (any cause) / timed out.
    pub exports: [u64; 4],
    /// Imports started / finished / contexts accepted / contexts not accepted.
    pub imports: [u64; 4],
    /// Outcomes notified (one per migration).
    pub outcomes: u64,
}

#[derive(Debug)]
struct ConnState {
    version: Option<u16>,
    max_frame: u32,
    services: BTreeSet<String>,
}

#[derive(Debug)]
struct Service {
    conn: ConnId,
    fpt: u16,
    users: HashMap<IpAddr, Vec<Connection>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventKind {
    Export,
    Import { index: usize },
}

#[derive(Debug)]
struct PendingEvent {
    op: OpId,
    service_id: String,
    ue: IpAddr,
    kind: EventKind,
}

#[derive(Debug)]
enum Op {
    Export {
        ue: IpAddr,
        waiting: BTreeMap<u32, String>,
        done: Vec<ServiceContext>,
    },
    Import {
        waiting: BTreeSet<u32>,
        reports: Vec<(String, u16, Option<ImportStatus>)>,
    },
}

#[derive(Debug)]
struct Migration {
    role: Role,
    asked: Vec<String>,
    accepted: Vec<String>,
    op: OpId,
}

/// The registry. See the module documentation.
#[derive(Debug)]
pub struct Registry {
    limits: Limits,
    server_name: String,
    next_conn: ConnId,
    next_op: OpId,
    next_event: u32,
    conns: HashMap<ConnId, ConnState>,
    services: BTreeMap<String, Service>,
    by_ue: HashMap<IpAddr, BTreeSet<String>>,
    registrations: usize,
    events: HashMap<u32, PendingEvent>,
    ops: HashMap<OpId, Op>,
    migrations: HashMap<IpAddr, Migration>,
    stats: RegistryStats,
    /// Outputs not yet taken by [`Registry::poll_output`]. Not bounded
    /// here: one input queues what it must (at most a few per service or
    /// connection it touches), and the driver drains after each.
    outputs: VecDeque<Output>,
}

type Refusal = (ErrorCode, String);

fn truncate(mut s: String) -> String {
    if s.len() > MAX_TEXT_LEN {
        let mut end = MAX_TEXT_LEN;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

fn canonical_sa(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

impl Registry {
    /// Empty registry; `server_name` goes into `HelloAck`.
    pub fn new(limits: Limits, server_name: impl Into<String>) -> Self {
        let mut server_name = server_name.into();
        server_name.truncate(MAX_SERVICE_ID_LEN);
        Registry {
            limits,
            server_name,
            next_conn: ConnId(1),
            next_op: OpId(1),
            next_event: 1,
            conns: HashMap::new(),
            services: BTreeMap::new(),
            by_ue: HashMap::new(),
            registrations: 0,
            events: HashMap::new(),
            ops: HashMap::new(),
            migrations: HashMap::new(),
            stats: RegistryStats::default(),
            outputs: VecDeque::new(),
        }
    }

    /// The next thing the driver must do, in the order the inputs queued
    /// them. Call it until it returns `None` after each input
    /// ([`Registry::on_frame`], [`Registry::disconnect`],
    /// [`Registry::start_export`], [`Registry::start_import`],
    /// [`Registry::cancel`], [`Registry::notify_outcome`],
    /// [`Registry::notify_service`], [`Registry::shutdown`]).
    #[must_use = "an output the registry produced is lost if not carried out"]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The configured limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// A new client connection (before its `Hello`).
    pub fn connect(&mut self) -> ConnId {
        let id = self.next_conn;
        self.next_conn.0 += 1;
        self.conns.insert(
            id,
            ConnState {
                version: None,
                max_frame: MIN_MAX_FRAME,
                services: BTreeSet::new(),
            },
        );
        id
    }

    /// Whether `conn` is known.
    pub fn is_connected(&self, conn: ConnId) -> bool {
        self.conns.contains_key(&conn)
    }

    /// Number of connections.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Services registered over `conn` (0 for an unknown connection).
    pub fn service_count(&self, conn: ConnId) -> usize {
        self.conns.get(&conn).map_or(0, |c| c.services.len())
    }

    /// The client connection is gone: its services, their users and their
    /// pending events are removed (pending exports fail, pending import
    /// contexts report `ServiceGone`). Idempotent.
    pub fn disconnect(&mut self, conn: ConnId) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        for s in c.services {
            self.remove_service(&s);
        }
    }

    /// Whether a service is registered.
    pub fn has_service(&self, service_id: &str) -> bool {
        self.services.contains_key(service_id)
    }

    /// Registered services and their FPTs.
    pub fn services(&self) -> Vec<(String, u16)> {
        self.services
            .iter()
            .map(|(k, v)| (k.clone(), v.fpt))
            .collect()
    }

    /// Distinct UEs that are users of at least one service.
    pub fn user_count(&self) -> usize {
        self.by_ue.len()
    }

    /// User registrations (UE, service) in total.
    pub fn registration_count(&self) -> usize {
        self.registrations
    }

    /// The services that have `ue` as a user, with its connections to each.
    pub fn user_connections(&self, ue: IpAddr) -> Vec<(String, Vec<Connection>)> {
        let ue = canonical(ue);
        self.by_ue
            .get(&ue)
            .into_iter()
            .flatten()
            .filter_map(|s| {
                let c = self.services.get(s)?.users.get(&ue)?;
                Some((s.clone(), c.clone()))
            })
            .collect()
    }

    /// Whether `ue` is in a migration whose outcome is not notified yet.
    pub fn is_migrating(&self, ue: IpAddr) -> bool {
        self.migrations.contains_key(&canonical(ue))
    }

    /// Pending events (sent, not answered).
    pub fn pending_events(&self) -> usize {
        self.events.len()
    }

    /// Operations not finished.
    pub fn pending_ops(&self) -> usize {
        self.ops.len()
    }

    /// Counters.
    pub fn stats(&self) -> &RegistryStats {
        &self.stats
    }

    fn alloc_event(&mut self) -> u32 {
        loop {
            let id = self.next_event;
            self.next_event = self.next_event.wrapping_add(1).max(1);
            if !self.events.contains_key(&id) {
                return id;
            }
        }
    }

    fn reply(&mut self, conn: ConnId, request_id: u32, r: Result<(), Refusal>) {
        let message = match r {
            Ok(()) => Message::Ok,
            Err((code, message)) => {
                self.stats.errors += 1;
                // Messages quote client input (service IDs up to 64 KiB):
                // keep them short enough to always encode.
                Message::Error(ErrorMessage {
                    code,
                    message: truncate(message),
                })
            }
        };
        self.outputs.push_back(Output::Send {
            conn,
            frame: Frame::new(request_id, message),
        });
    }

    fn error_and_close(&mut self, conn: ConnId, request_id: u32, code: ErrorCode, message: String) {
        self.reply(conn, request_id, Err((code, message)));
        self.disconnect(conn);
        self.outputs.push_back(Output::Close { conn });
    }

    /// Handle one decoded frame from `conn`.
    pub fn on_frame(&mut self, conn: ConnId, frame: Frame) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        self.stats.requests += 1;
        let rid = frame.request_id;
        if c.version.is_none() {
            let Message::Hello(h) = frame.message else {
                let msg = format!("{} before Hello", frame.message.name());
                return self.error_and_close(conn, rid, ErrorCode::HandshakeRequired, msg);
            };
            if h.min_version > PROTOCOL_VERSION
                || h.max_version < PROTOCOL_VERSION
                || h.min_version > h.max_version
            {
                let msg = format!(
                    "client speaks {}..={}, server speaks {PROTOCOL_VERSION}",
                    h.min_version, h.max_version
                );
                return self.error_and_close(conn, rid, ErrorCode::UnsupportedVersion, msg);
            }
            if h.max_frame < MIN_MAX_FRAME {
                let msg = format!("max frame {} below {MIN_MAX_FRAME}", h.max_frame);
                return self.error_and_close(conn, rid, ErrorCode::InvalidArgument, msg);
            }
            c.version = Some(PROTOCOL_VERSION);
            c.max_frame = h.max_frame;
            let ack = HelloAck {
                version: PROTOCOL_VERSION,
                max_frame: self.limits.max_frame,
                server_name: self.server_name.clone(),
            };
            self.outputs.push_back(Output::Send {
                conn,
                frame: Frame::new(rid, Message::HelloAck(ack)),
            });
            return;
        }
        let r = match frame.message {
            Message::RegisterService(m) => self.register_service(conn, m),
            Message::DeregisterService(m) => self.deregister_service(conn, m),
            Message::RegisterUser(m) => self.register_user(conn, m),
            Message::DeregisterUser(m) => self.deregister_user(conn, m),
            Message::ExportContext(m) => self.export_context(conn, m),
            Message::ImportContext(m) => self.import_context(conn, m),
            other => Err((
                ErrorCode::UnexpectedMessage,
                format!("{} is not a client request here", other.name()),
            )),
        };
        self.reply(conn, rid, r);
    }

    fn owned_service(&self, conn: ConnId, id: &str) -> Result<&Service, Refusal> {
        let s = self.services.get(id).ok_or_else(|| {
            (
                ErrorCode::UnknownService,
                format!("service {id:?} is not registered"),
            )
        })?;
        if s.conn != conn {
            return Err((
                ErrorCode::NotOwner,
                format!("service {id:?} is registered by another connection"),
            ));
        }
        Ok(s)
    }

    fn register_service(&mut self, conn: ConnId, m: RegisterService) -> Result<(), Refusal> {
        if m.service_id.is_empty() || m.service_id.len() > MAX_SERVICE_ID_LEN {
            return Err((
                ErrorCode::InvalidArgument,
                format!("service id must be 1..={MAX_SERVICE_ID_LEN} octets"),
            ));
        }
        if !is_service_fpt(m.fpt) {
            return Err((
                ErrorCode::InvalidFpt,
                format!("FPT {:#06x} is reserved by CXTP", m.fpt),
            ));
        }
        if self.services.contains_key(&m.service_id) {
            return Err((
                ErrorCode::DuplicateService,
                format!("service {:?} is already registered", m.service_id),
            ));
        }
        if self.services.len() >= self.limits.max_services {
            return Err((
                ErrorCode::LimitReached,
                format!("{} services registered", self.services.len()),
            ));
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.services.insert(m.service_id.clone());
        }
        self.services.insert(
            m.service_id,
            Service {
                conn,
                fpt: m.fpt,
                users: HashMap::new(),
            },
        );
        Ok(())
    }

    fn deregister_service(&mut self, conn: ConnId, m: DeregisterService) -> Result<(), Refusal> {
        self.owned_service(conn, &m.service_id)?;
        self.remove_service(&m.service_id);
        Ok(())
    }

    fn remove_service(&mut self, id: &str) {
        let Some(s) = self.services.remove(id) else {
            return;
        };
        if let Some(c) = self.conns.get_mut(&s.conn) {
            c.services.remove(id);
        }
        for ue in s.users.keys() {
            self.unindex(*ue, id);
        }
        let events: Vec<u32> = self
            .events
            .iter()
            .filter(|(_, e)| e.service_id == id)
            .map(|(k, _)| *k)
            .collect();
        for e in events {
            self.fail_event(e, ExportFailure::ServiceGone);
        }
    }

    fn unindex(&mut self, ue: IpAddr, service: &str) {
        self.registrations = self.registrations.saturating_sub(1);
        if let Some(set) = self.by_ue.get_mut(&ue) {
            set.remove(service);
            if set.is_empty() {
                self.by_ue.remove(&ue);
            }
        }
    }

    fn check_connections(&self, ue: IpAddr, cs: &[Connection]) -> Result<Vec<Connection>, Refusal> {
        let max = self
            .limits
            .max_connections_per_user
            .min(MAX_CONNECTIONS_PER_USER);
        if cs.len() > max {
            return Err((
                ErrorCode::LimitReached,
                format!("{} connections listed, at most {max}", cs.len()),
            ));
        }
        cs.iter()
            .map(|c| {
                let c = Connection {
                    client: canonical_sa(c.client),
                    server: canonical_sa(c.server),
                };
                if c.client.ip() != ue {
                    Err((
                        ErrorCode::InvalidArgument,
                        format!("connection client address {} is not the UE {ue}", c.client),
                    ))
                } else {
                    Ok(c)
                }
            })
            .collect()
    }

    fn check_ue(ue: IpAddr) -> Result<IpAddr, Refusal> {
        let ue = canonical(ue);
        if ue.is_unspecified() || ue.is_multicast() {
            return Err((
                ErrorCode::InvalidArgument,
                format!("{ue} is not a UE unicast address"),
            ));
        }
        Ok(ue)
    }

    /// Insert or replace a user registration; fails on the limit.
    fn put_user(
        &mut self,
        service_id: &str,
        ue: IpAddr,
        connections: Vec<Connection>,
        replace: bool,
    ) -> Result<(), Refusal> {
        let at_limit = self.registrations >= self.limits.max_users;
        let Some(s) = self.services.get_mut(service_id) else {
            return Err((ErrorCode::UnknownService, service_id.to_string()));
        };
        if let Some(existing) = s.users.get_mut(&ue) {
            if !replace {
                return Err((
                    ErrorCode::DuplicateUser,
                    format!("UE {ue} is already a user of {service_id:?}"),
                ));
            }
            *existing = connections;
            return Ok(());
        }
        if at_limit {
            return Err((
                ErrorCode::LimitReached,
                format!("{} user registrations", self.registrations),
            ));
        }
        s.users.insert(ue, connections);
        self.registrations += 1;
        self.by_ue
            .entry(ue)
            .or_default()
            .insert(service_id.to_string());
        Ok(())
    }

    fn register_user(&mut self, conn: ConnId, m: RegisterUser) -> Result<(), Refusal> {
        self.owned_service(conn, &m.service_id)?;
        let ue = Self::check_ue(m.ue)?;
        let cs = self.check_connections(ue, &m.connections)?;
        self.put_user(&m.service_id, ue, cs, m.replace)
    }

    fn deregister_user(&mut self, conn: ConnId, m: DeregisterUser) -> Result<(), Refusal> {
        self.owned_service(conn, &m.service_id)?;
        let ue = canonical(m.ue);
        self.remove_user(&m.service_id, ue).ok_or_else(|| {
            (
                ErrorCode::UnknownUser,
                format!("UE {ue} is not a user of {:?}", m.service_id),
            )
        })?;
        let events: Vec<u32> = self
            .events
            .iter()
            .filter(|(_, e)| {
                e.service_id == m.service_id && e.ue == ue && e.kind == EventKind::Export
            })
            .map(|(k, _)| *k)
            .collect();
        for e in events {
            self.fail_event(e, ExportFailure::UserDeregistered);
        }
        Ok(())
    }

    fn remove_user(&mut self, service_id: &str, ue: IpAddr) -> Option<()> {
        self.services.get_mut(service_id)?.users.remove(&ue)?;
        self.unindex(ue, service_id);
        Some(())
    }

    /// Look up the event a service answers and check that it matches.
    fn take_event(
        &mut self,
        conn: ConnId,
        event_id: u32,
        service_id: &str,
        ue: IpAddr,
        export: bool,
    ) -> Result<PendingEvent, Refusal> {
        self.owned_service(conn, service_id)?;
        let e = self.events.get(&event_id).ok_or_else(|| {
            (
                ErrorCode::UnknownEvent,
                format!("no pending event {event_id} (answered, timed out or never sent)"),
            )
        })?;
        let kind_ok = matches!(
            (e.kind, export),
            (EventKind::Export, true) | (EventKind::Import { .. }, false)
        );
        if !kind_ok || e.service_id != service_id || e.ue != canonical(ue) {
            return Err((
                ErrorCode::EventMismatch,
                format!(
                    "event {event_id} is {} for service {:?} and UE {}",
                    if matches!(e.kind, EventKind::Export) {
                        "ExportRequested"
                    } else {
                        "ImportRequested"
                    },
                    e.service_id,
                    e.ue
                ),
            ));
        }
        Ok(self.events.remove(&event_id).expect("checked above"))
    }

    fn export_context(&mut self, conn: ConnId, m: ExportContext) -> Result<(), Refusal> {
        let ev = self.take_event(conn, m.event_id, &m.service_id, m.ue, true)?;
        let fpt = self.services.get(&m.service_id).map_or(0, |s| s.fpt);
        if !m.status.is_ok() {
            self.fail_op_export(
                ev.op,
                m.service_id,
                ExportFailure::Refused {
                    status: m.status,
                    reason: truncate(m.reason),
                },
            );
            return Ok(());
        }
        let Some(Op::Export { waiting, done, .. }) = self.ops.get_mut(&ev.op) else {
            return Ok(());
        };
        waiting.remove(&m.event_id);
        done.push(ServiceContext {
            service_id: m.service_id,
            fpt,
            data: m.data,
        });
        if waiting.is_empty() {
            if let Some(Op::Export { mut done, .. }) = self.ops.remove(&ev.op) {
                done.sort_by(|a, b| a.service_id.cmp(&b.service_id));
                self.stats.exports[1] += 1;
                self.outputs.push_back(Output::Complete {
                    op: ev.op,
                    result: OpResult::Export(Ok(done)),
                });
            }
        }
        Ok(())
    }

    fn import_context(&mut self, conn: ConnId, m: ImportContext) -> Result<(), Refusal> {
        // Validate before consuming the event so that the service can retry.
        self.owned_service(conn, &m.service_id)?;
        let ue = canonical(m.ue);
        let cs = if m.status.is_ok() {
            self.check_connections(ue, &m.connections)?
        } else {
            Vec::new()
        };
        let ev = self.take_event(conn, m.event_id, &m.service_id, ue, false)?;
        let EventKind::Import { index } = ev.kind else {
            return Ok(());
        };
        let (status, reply) = if m.status.is_ok() {
            match self.put_user(&m.service_id, ue, cs, true) {
                Ok(()) => {
                    if let Some(mig) = self.migrations.get_mut(&ue) {
                        if mig.op == ev.op {
                            mig.accepted.push(m.service_id.clone());
                        }
                    }
                    (ImportStatus::Accepted, Ok(()))
                }
                Err(e) => (
                    ImportStatus::Refused {
                        status: ReplyStatus::NoCapacity,
                        reason: e.1.clone(),
                    },
                    Err(e),
                ),
            }
        } else {
            (
                ImportStatus::Refused {
                    status: m.status,
                    reason: truncate(m.reason),
                },
                Ok(()),
            )
        };
        self.settle_import(ev.op, m.event_id, index, status);
        reply
    }

    fn settle_import(&mut self, op: OpId, event_id: u32, index: usize, status: ImportStatus) {
        let Some(Op::Import { waiting, reports }) = self.ops.get_mut(&op) else {
            return;
        };
        waiting.remove(&event_id);
        if let Some(r) = reports.get_mut(index) {
            r.2 = Some(status);
        }
        if waiting.is_empty() {
            self.finish_import(op);
        }
    }

    fn finish_import(&mut self, op: OpId) {
        let Some(Op::Import { waiting, reports }) = self.ops.remove(&op) else {
            return;
        };
        for e in waiting {
            self.events.remove(&e);
        }
        let reports: Vec<ImportReport> = reports
            .into_iter()
            .map(|(service_id, fpt, st)| ImportReport {
                service_id,
                fpt,
                status: st.unwrap_or(ImportStatus::TimedOut),
            })
            .collect();
        let ok = reports.iter().filter(|r| r.is_accepted()).count() as u64;
        self.stats.imports[1] += 1;
        self.stats.imports[2] += ok;
        self.stats.imports[3] += reports.len() as u64 - ok;
        self.outputs.push_back(Output::Complete {
            op,
            result: OpResult::Import(reports),
        });
    }

    fn fail_event(&mut self, event_id: u32, cause: ExportFailure) {
        let Some(ev) = self.events.remove(&event_id) else {
            return;
        };
        match ev.kind {
            EventKind::Export => self.fail_op_export(ev.op, ev.service_id, cause),
            EventKind::Import { index } => {
                self.settle_import(ev.op, event_id, index, ImportStatus::ServiceGone)
            }
        }
    }

    fn fail_op_export(&mut self, op: OpId, service_id: String, cause: ExportFailure) {
        let Some(Op::Export { ue, waiting, .. }) = self.ops.remove(&op) else {
            return;
        };
        for e in waiting.keys() {
            self.events.remove(e);
        }
        self.stats.exports[2] += 1;
        self.outputs.push_back(Output::Complete {
            op,
            result: OpResult::Export(Err(ApiError::ExportFailed {
                ue,
                service_id,
                cause,
            })),
        });
    }

    fn send_event(&mut self, conn: ConnId, frame: Frame) {
        self.stats.events += 1;
        self.outputs.push_back(Output::Send { conn, frame });
    }

    /// Ask every service that has `ue` for its context (`ExportRequested`
    /// with `timeout_ms`). The operation completes with the contexts
    /// (sorted by service ID) when all have answered, with an error as soon
    /// as one refuses or goes away, or with [`ApiError::Timeout`] when the
    /// driver calls [`Registry::cancel`]. The UE stays "migrating" until
    /// [`Registry::notify_outcome`].
    pub fn start_export(&mut self, ue: IpAddr, timeout_ms: u32) -> Result<OpId, ApiError> {
        let ue = canonical(ue);
        if self.migrations.contains_key(&ue) {
            return Err(ApiError::UeBusy(ue));
        }
        let services: Vec<String> = match self.by_ue.get(&ue) {
            Some(s) if !s.is_empty() => s.iter().cloned().collect(),
            _ => return Err(ApiError::UnknownUe(ue)),
        };
        let op = self.next_op;
        self.next_op.0 += 1;
        let mut waiting = BTreeMap::new();
        for s in &services {
            let Some(conn) = self.services.get(s).map(|s| s.conn) else {
                continue;
            };
            let id = self.alloc_event();
            self.events.insert(
                id,
                PendingEvent {
                    op,
                    service_id: s.clone(),
                    ue,
                    kind: EventKind::Export,
                },
            );
            waiting.insert(id, s.clone());
            let frame = Frame::new(
                id,
                Message::ExportRequested(ExportRequested {
                    service_id: s.clone(),
                    ue,
                    timeout_ms,
                }),
            );
            self.send_event(conn, frame);
        }
        self.ops.insert(
            op,
            Op::Export {
                ue,
                waiting,
                done: Vec::new(),
            },
        );
        self.migrations.insert(
            ue,
            Migration {
                role: Role::Source,
                asked: services,
                accepted: Vec::new(),
                op,
            },
        );
        self.stats.exports[0] += 1;
        Ok(op)
    }

    /// Deliver received contexts to the services named in them
    /// (`ImportRequested`). Completes with one [`ImportReport`] per context,
    /// in the order given, when every service has answered or when the
    /// driver calls [`Registry::cancel`] (the rest are `TimedOut`). A
    /// service that accepts has the UE as a user from then on. The UE stays
    /// "migrating" until [`Registry::notify_outcome`].
    pub fn start_import(
        &mut self,
        ue: IpAddr,
        contexts: Vec<ServiceContext>,
    ) -> Result<OpId, ApiError> {
        let ue = canonical(ue);
        if self.migrations.contains_key(&ue) {
            return Err(ApiError::UeBusy(ue));
        }
        let op = self.next_op;
        self.next_op.0 += 1;
        let mut waiting = BTreeSet::new();
        let mut reports = Vec::with_capacity(contexts.len());
        let mut asked = Vec::new();
        for (index, ctx) in contexts.into_iter().enumerate() {
            let dup = reports
                .iter()
                .any(|(s, _, _): &(String, u16, Option<ImportStatus>)| *s == ctx.service_id);
            let target = self
                .services
                .get(&ctx.service_id)
                .and_then(|s| Some((s.conn, self.conns.get(&s.conn)?.max_frame)));
            let status = match target {
                _ if dup => Some(ImportStatus::Duplicate),
                None => Some(ImportStatus::NotRegistered),
                Some((conn, max_frame)) => {
                    let id = self.alloc_event();
                    let frame = Frame::new(
                        id,
                        Message::ImportRequested(ImportRequested {
                            service_id: ctx.service_id.clone(),
                            ue,
                            fpt: ctx.fpt,
                            data: ctx.data,
                        }),
                    );
                    if wire::encoded_len(&frame) > max_frame as usize {
                        Some(ImportStatus::TooLarge)
                    } else {
                        self.events.insert(
                            id,
                            PendingEvent {
                                op,
                                service_id: ctx.service_id.clone(),
                                ue,
                                kind: EventKind::Import { index },
                            },
                        );
                        waiting.insert(id);
                        asked.push(ctx.service_id.clone());
                        self.send_event(conn, frame);
                        None
                    }
                }
            };
            reports.push((ctx.service_id, ctx.fpt, status));
        }
        let empty = waiting.is_empty();
        self.ops.insert(op, Op::Import { waiting, reports });
        self.migrations.insert(
            ue,
            Migration {
                role: Role::Destination,
                asked,
                accepted: Vec::new(),
                op,
            },
        );
        self.stats.imports[0] += 1;
        if empty {
            self.finish_import(op);
        }
        Ok(op)
    }

    /// The driver's timer fired: finish `op` now (export: `Timeout` naming
    /// the services that did not answer; import: their contexts
    /// `TimedOut`). Late answers then get `UNKNOWN_EVENT`. Returns whether
    /// the operation was still pending.
    pub fn cancel(&mut self, op: OpId) -> bool {
        match self.ops.get(&op) {
            None => false,
            Some(Op::Import { .. }) => {
                self.finish_import(op);
                true
            }
            Some(Op::Export { .. }) => {
                let Some(Op::Export { ue, waiting, .. }) = self.ops.remove(&op) else {
                    return false;
                };
                for e in waiting.keys() {
                    self.events.remove(e);
                }
                self.stats.exports[3] += 1;
                self.outputs.push_back(Output::Complete {
                    op,
                    result: OpResult::Export(Err(ApiError::Timeout {
                        ue,
                        pending: waiting.into_values().collect(),
                    })),
                });
                true
            }
        }
    }

    /// Conclude the migration of `ue` and tell the services
    /// (`MigrationOutcome`). At the source every service asked to export
    /// is told; on `Committed` the UE stops being their user here. At the
    /// destination, on `Committed` the services that imported are told; on
    /// `RolledBack` every service asked is told and the registrations made
    /// by the import are removed. A still-pending operation is cancelled
    /// first. Returns how many services were told.
    pub fn notify_outcome(
        &mut self,
        ue: IpAddr,
        outcome: Outcome,
        cause: &str,
    ) -> Result<usize, ApiError> {
        let ue = canonical(ue);
        let Some(mig) = self.migrations.remove(&ue) else {
            return Err(ApiError::NoMigration(ue));
        };
        self.cancel(mig.op);
        self.stats.outcomes += 1;
        let cause = truncate(cause.to_string());
        let targets = match (mig.role, outcome) {
            (Role::Destination, Outcome::Committed) => &mig.accepted,
            _ => &mig.asked,
        };
        let mut told = 0;
        for s in targets {
            let Some(conn) = self.services.get(s).map(|s| s.conn) else {
                continue;
            };
            let id = self.alloc_event();
            let frame = Frame::new(
                id,
                Message::MigrationOutcome(MigrationOutcome {
                    service_id: s.clone(),
                    ue,
                    role: mig.role,
                    outcome,
                    cause: cause.clone(),
                }),
            );
            self.send_event(conn, frame);
            told += 1;
        }
        let drop_users = match (mig.role, outcome) {
            (Role::Source, Outcome::Committed) => &mig.asked,
            (Role::Destination, Outcome::RolledBack) => &mig.accepted,
            _ => &Vec::new(),
        };
        for s in drop_users.clone() {
            self.remove_user(&s, ue);
        }
        Ok(told)
    }

    /// Tell one service how a migration of `ue` ended, outside any
    /// migration this registry knows (a restarted MIH-User finishing what
    /// its previous process had started: the session journal's recovery).
    /// As [`Registry::notify_outcome`] at the source, `Committed` also
    /// ends the UE's registration with the service. Returns false if
    /// `service_id` is not registered (it may be reconnecting: ask again).
    pub fn notify_service(
        &mut self,
        service_id: &str,
        ue: IpAddr,
        role: Role,
        outcome: Outcome,
        cause: &str,
    ) -> bool {
        let ue = canonical(ue);
        let Some(conn) = self.services.get(service_id).map(|s| s.conn) else {
            return false;
        };
        let id = self.alloc_event();
        let frame = Frame::new(
            id,
            Message::MigrationOutcome(MigrationOutcome {
                service_id: service_id.to_string(),
                ue,
                role,
                outcome,
                cause: truncate(cause.to_string()),
            }),
        );
        self.send_event(conn, frame);
        if (role, outcome) == (Role::Source, Outcome::Committed) {
            self.remove_user(service_id, ue);
        }
        true
    }

    /// Drop everything (server shutdown): every connection is closed and
    /// every pending operation fails with [`ApiError::Shutdown`] /
    /// `ServiceGone`.
    pub fn shutdown(&mut self) {
        let ops: Vec<OpId> = self.ops.keys().copied().collect();
        for op in ops {
            match self.ops.remove(&op) {
                Some(Op::Export { .. }) => self.outputs.push_back(Output::Complete {
                    op,
                    result: OpResult::Export(Err(ApiError::Shutdown)),
                }),
                Some(Op::Import { waiting, reports }) => {
                    self.ops.insert(op, Op::Import { waiting, reports });
                    self.finish_import(op);
                }
                None => {}
            }
        }
        self.events.clear();
        let conns: Vec<ConnId> = self.conns.keys().copied().collect();
        for c in conns {
            self.disconnect(c);
            self.outputs.push_back(Output::Close { conn: c });
        }
        self.migrations.clear();
    }
}

/// Helper for drivers: the frame telling a client its connection is being
/// closed (`Error` with request ID 0).
pub fn close_frame(code: ErrorCode, message: impl Into<String>) -> Frame {
    Frame::new(
        0,
        Message::Error(ErrorMessage {
            code,
            message: truncate(message.into()),
        }),
    )
}

/// A client's `ExportContext` answer (for tests and clients).
pub fn export_answer(event_id: u32, service_id: &str, ue: IpAddr, data: Bytes) -> Message {
    Message::ExportContext(ExportContext {
        event_id,
        service_id: service_id.into(),
        ue,
        status: ReplyStatus::Ok,
        reason: String::new(),
        data,
    })
}

#[cfg(test)]
mod tests;
