//! What every example service needs to move with its UEs, whatever it
//! serves: the connection to the MIH-User's Service Mobility API (connect
//! with retries, register, serve the events, reconnect and register again
//! after a restart), the users' registrations, and the socket hand-off
//! (`--handoff-socket`: `GIVE` at the export, the `TAKE` receiver with its
//! `HELO` re-announcement). A service implements [`MobileService`] (what to
//! do on each event, which UEs and connections it has, how to adopt a
//! socket that comes back) and holds a [`Mobility`]; [`start`] runs the
//! rest.
//!
//! Also here: the command line's `u16` parser, the accept loop with its
//! connection limit, `main`'s runtime, and the socket address codec the
//! services' contexts share.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use mih_user::api::client::{
    ClientError, Event, EventStream, ExportRequest, ImportRequest, ServiceClient,
};
use mih_user::api::wire::{Connection, ErrorCode, Outcome, ReplyStatus, Role};
use mih_user::sessions::handoff::HandoffClient;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

/// `--fpt` and the like: decimal or `0x` hex.
pub fn parse_u16(s: &str) -> Result<u16, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u16::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|e| format!("{s:?}: {e}"))
}

/// A service's defaults for its [`ServiceArgs`].
pub trait Defaults: Clone + std::fmt::Debug + Send + Sync + 'static {
    /// `--listen`.
    const LISTEN: &'static str;
    /// `--service-id`.
    const SERVICE_ID: &'static str;
    /// `--fpt`.
    const FPT: &'static str;
}

/// Define `$name`, the [`Defaults`] of a service: its `--listen`,
/// `--service-id` and `--fpt`.
#[macro_export]
macro_rules! service_defaults {
    ($(#[$m:meta])* $name:ident, $listen:literal, $id:literal, $fpt:literal) => {
        $(#[$m])*
        #[derive(Clone, Debug)]
        pub(crate) struct $name;
        impl $crate::svc_kit::Defaults for $name {
            const LISTEN: &'static str = $listen;
            const SERVICE_ID: &'static str = $id;
            const FPT: &'static str = $fpt;
        }
    };
}

/// The command line options every example service has: where it listens
/// and how it meets the Service Mobility API (flattened into the service's
/// own `clap` options).
#[derive(clap::Args, Clone, Debug)]
pub struct ServiceArgs<D: Defaults> {
    /// Listen address (port 0 picks a free port; the address is printed on
    /// stdout, in the first line "listening on ...").
    #[arg(long, default_value = D::LISTEN)]
    pub listen: SocketAddr,
    /// Service Mobility API socket of the local MIH-User; without it the
    /// service runs stand-alone.
    #[arg(long)]
    pub api_socket: Option<PathBuf>,
    /// Service identifier registered with the API.
    #[arg(long, default_value = D::SERVICE_ID)]
    pub service_id: String,
    /// Feature Profile Type of the context in CXTP (decimal or 0x hex).
    #[arg(long, default_value = D::FPT, value_parser = parse_u16)]
    pub fpt: u16,
    /// The MIH-User's socket hand-off path (`sessions.handoff_socket`):
    /// move live TCP connections with TCP_REPAIR instead of letting the
    /// client reconnect. Needs --api-socket.
    #[arg(long, requires = "api_socket")]
    pub handoff_socket: Option<PathBuf>,
    #[arg(skip)]
    pub defaults: std::marker::PhantomData<D>,
}

impl<D: Defaults> ServiceArgs<D> {
    pub fn config(&self) -> MobilityConfig {
        MobilityConfig {
            api_socket: self.api_socket.clone(),
            handoff_socket: self.handoff_socket.clone(),
            service_id: self.service_id.clone(),
            fpt: self.fpt,
        }
    }
}

/// The service's side of the Service Mobility API, from its command line.
#[derive(Clone, Debug)]
pub struct MobilityConfig {
    /// `--api-socket`; `None`: stand-alone.
    pub api_socket: Option<PathBuf>,
    /// `--handoff-socket` (needs the API).
    pub handoff_socket: Option<PathBuf>,
    /// `--service-id`.
    pub service_id: String,
    /// `--fpt`.
    pub fpt: u16,
}

/// The API connection (replaced when the MIH-User restarts) and the socket
/// hand-off, held by the service.
pub struct Mobility {
    pub config: MobilityConfig,
    /// `None` while reconnecting, or stand-alone.
    api: Mutex<Option<ServiceClient>>,
    handoff: Option<HandoffClient>,
}

/// The first API connection's events, until [`start`] serves them.
pub struct Pending(Option<(ServiceClient, EventStream)>);

impl Mobility {
    /// Without the API and the hand-off (stand-alone, and the tests).
    pub fn detached(config: MobilityConfig) -> Mobility {
        Mobility {
            config,
            api: Mutex::new(None),
            handoff: None,
        }
    }

    /// Connect to the API (retrying while the MIH-User starts) and register
    /// the service; connect the hand-off announcing `listen`.
    pub async fn connect(
        config: MobilityConfig,
        listen: SocketAddr,
    ) -> Result<(Mobility, Pending), Box<dyn std::error::Error>> {
        let api = connect_api(&config).await?;
        let handoff = match &config.handoff_socket {
            Some(path) => {
                let h = HandoffClient::connect(path, listen)?;
                info!(path = %path.display(), "TCP sessions move with TCP_REPAIR (socket hand-off)");
                Some(h)
            }
            None => None,
        };
        let m = Mobility {
            api: Mutex::new(api.as_ref().map(|(c, _)| c.clone())),
            config,
            handoff,
        };
        Ok((m, Pending(api)))
    }

    /// The API connection, if there is one now.
    pub fn api(&self) -> Option<ServiceClient> {
        self.api.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_api(&self, c: Option<ServiceClient>) {
        *self.api.lock().unwrap_or_else(|e| e.into_inner()) = c;
    }

    /// Whether sockets move with TCP_REPAIR (`--handoff-socket`).
    pub fn hands_off(&self) -> bool {
        self.handoff.is_some()
    }

    /// Send the socket to the MIH-User (`GIVE`); on failure it is handed
    /// back (`None`: it could not be; the connection is lost).
    pub fn hand_off(&self, stream: TcpStream) -> Result<(), (std::io::Error, Option<TcpStream>)> {
        let Some(h) = &self.handoff else {
            return Err((std::io::Error::other("no hand-off socket"), Some(stream)));
        };
        let std = stream.into_std().map_err(|e| (e, None))?;
        match h.give(&[std.as_fd()]) {
            // Our descriptor closes here; the MIH-User holds the socket.
            Ok(()) => Ok(()),
            Err(e) => Err((e, TcpStream::from_std(std).ok())),
        }
    }
}

/// A service that moves with its UEs. Its events come from [`start`].
pub trait MobileService: Send + Sync + 'static {
    fn mobility(&self) -> &Mobility;
    /// The UEs served here (registered again after an API restart).
    fn ues(&self) -> Vec<IpAddr>;
    /// The live connections of `ue`.
    fn connections_of(&self, ue: IpAddr) -> Vec<Connection>;
    /// Whether an imported (or parked) context of `ue` waits here.
    fn has_pending(&self, ue: IpAddr) -> bool;
    /// `ExportRequested`: freeze the UE and answer with its context.
    fn on_export(
        self: &Arc<Self>,
        api: &ServiceClient,
        req: ExportRequest,
    ) -> impl Future<Output = ()> + Send;
    /// `ImportRequested`: check and keep the context, answer.
    fn on_import(
        self: &Arc<Self>,
        api: &ServiceClient,
        req: ImportRequest,
    ) -> impl Future<Output = ()> + Send;
    /// `MigrationOutcome`.
    fn on_outcome(self: &Arc<Self>, role: Role, outcome: Outcome, ue: IpAddr);
    /// A socket from the MIH-User (`TAKE`): resume what has its 4-tuple;
    /// false (the socket dropped) when nothing has.
    fn adopt_socket(
        self: &Arc<Self>,
        stream: std::net::TcpStream,
    ) -> impl Future<Output = bool> + Send;

    /// Tell the API which connections `ue` has now (none and nothing
    /// pending: deregister).
    fn sync_user(&self, ue: IpAddr) -> impl Future<Output = ()> + Send {
        async move {
            let m = self.mobility();
            let Some(api) = m.api() else { return };
            let conns = self.connections_of(ue);
            let r = if conns.is_empty() && !self.has_pending(ue) {
                api.deregister_user(&m.config.service_id, ue).await
            } else {
                api.update_user(&m.config.service_id, ue, &conns).await
            };
            match r {
                Ok(()) => {}
                Err(e) if e.code() == Some(ErrorCode::UnknownUser) => {}
                Err(e) => warn!(%ue, "API user update failed: {e}"),
            }
        }
    }
}

/// Answer an `ImportRequested` with what the service made of the context:
/// the connections it lists, or the refusal.
pub async fn answer_import(
    api: &ServiceClient,
    req: &ImportRequest,
    result: Result<Vec<Connection>, (ReplyStatus, String)>,
) {
    let answer = match result {
        Ok(conns) => api.import_context(req, &conns).await,
        Err((status, reason)) => {
            warn!(ue = %req.ue, "refusing import: {reason}");
            api.refuse_import(req, status, &reason).await
        }
    };
    if let Err(e) = answer {
        warn!(ue = %req.ue, "import answer failed: {e}");
    }
}

/// Answer an `ExportRequested` with the context; false (logged) when the
/// answer could not be given: the service resumes the UE.
pub async fn answer_export(api: &ServiceClient, req: &ExportRequest, ctx: Bytes) -> bool {
    match api.export_context(req, ctx).await {
        Ok(()) => true,
        Err(e) => {
            warn!(ue = %req.ue, "export answer failed: {e}; resuming");
            false
        }
    }
}

/// Serve the API's events (reconnecting after a restart) and, with the
/// hand-off, take the sockets that come back.
pub fn start<S: MobileService>(svc: &Arc<S>, pending: Pending) {
    if let Some((client, events)) = pending.0 {
        let svc = svc.clone();
        tokio::spawn(async move { serve_api(svc, client, events).await });
    }
    if svc.mobility().hands_off() {
        let svc = svc.clone();
        tokio::spawn(async move {
            if let Err(e) = receive_sockets(svc).await {
                warn!("socket hand-off receiver stopped: {e}");
            }
        });
    }
}

async fn connect_api(
    config: &MobilityConfig,
) -> Result<Option<(ServiceClient, EventStream)>, ClientError> {
    let Some(path) = &config.api_socket else {
        return Ok(None);
    };
    let mut tries = 0;
    let (client, events) = loop {
        match ServiceClient::connect(path).await {
            Ok(c) => break c,
            Err(ClientError::Io(e)) if tries < 50 => {
                debug!("API not reachable yet: {e}");
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e),
        }
    };
    client
        .register_service(&config.service_id, config.fpt)
        .await?;
    info!(service = %config.service_id, fpt = format_args!("{:#06x}", config.fpt), api = %path.display(), "registered with the Service Mobility API");
    Ok(Some((client, events)))
}

/// Serve the API's events; when the connection closes (the MIH-User
/// restarted), reconnect, register the service and its UEs again, and go
/// on.
async fn serve_api<S: MobileService>(
    svc: Arc<S>,
    mut client: ServiceClient,
    mut events: EventStream,
) {
    let m = svc.mobility();
    let Some(path) = m.config.api_socket.clone() else {
        return;
    };
    loop {
        while let Some(ev) = events.recv().await {
            match ev {
                // Each UE's export and import on its own task: a storm asks
                // for many at once, and one UE's freeze must not wait for
                // another's (the MIH-User sends a UE's outcome only after
                // its answer, so a UE's events stay in order).
                Event::ExportRequested(req) => {
                    let (s, c) = (svc.clone(), client.clone());
                    tokio::spawn(async move { s.on_export(&c, req).await });
                }
                Event::ImportRequested(req) => {
                    let (s, c) = (svc.clone(), client.clone());
                    tokio::spawn(async move { s.on_import(&c, req).await });
                }
                Event::MigrationOutcome(o) => svc.on_outcome(o.role, o.outcome, o.ue),
            }
        }
        warn!("Service Mobility API connection closed; reconnecting");
        m.set_api(None);
        let mut wait = Duration::from_millis(100);
        (client, events) = loop {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(2));
            let (c, ev) = match ServiceClient::connect(&path).await {
                Ok(v) => v,
                Err(e) => {
                    debug!("API not reachable yet: {e}");
                    continue;
                }
            };
            match c.register_service(&m.config.service_id, m.config.fpt).await {
                Ok(()) => break (c, ev),
                Err(e) => warn!("registering the service again failed: {e}"),
            }
        };
        m.set_api(Some(client.clone()));
        let ues = svc.ues();
        info!(service = %m.config.service_id, users = ues.len(), "registered with the Service Mobility API again");
        for ue in ues {
            svc.sync_user(ue).await;
        }
    }
}

/// Sockets from the MIH-User (`TAKE`): adopt each one. Re-announce the
/// listen address every few seconds (a restarted MIH-User learns it).
async fn receive_sockets<S: MobileService>(svc: Arc<S>) -> std::io::Result<()> {
    use tokio::io::unix::AsyncFd;
    let h = svc
        .mobility()
        .handoff
        .as_ref()
        .ok_or_else(|| std::io::Error::other("no hand-off socket"))?;
    let fd = h.as_fd().try_clone_to_owned()?;
    // SAFETY: `fd` is an owned duplicate, closed only when `afd` drops.
    let afd = unsafe { AsyncFd::register(fd) }.map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut hello = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = hello.tick() => {
                if let Err(e) = h.hello() {
                    debug!("hand-off HELO: {e}");
                }
            }
            g = afd.readable() => {
                let mut g = g?;
                loop {
                    match h.try_take() {
                        Ok(fd) => {
                            let stream = std::net::TcpStream::from(fd);
                            let what = format!("{:?} -> {:?}", stream.peer_addr(), stream.local_addr());
                            if svc.adopt_socket(stream).await {
                                info!(socket = %what, "socket taken over from the MIH-User");
                            } else {
                                warn!(socket = %what, "socket from the MIH-User matches nothing here; closed");
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            g.clear_ready();
                            break;
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        }
    }
}

/// The 4-tuple of a socket (addresses canonical: a v4-mapped peer is the v4
/// UE).
pub fn connection_of(peer: SocketAddr, local: SocketAddr) -> Connection {
    Connection {
        client: SocketAddr::new(peer.ip().to_canonical(), peer.port()),
        server: SocketAddr::new(local.ip().to_canonical(), local.port()),
    }
}

/// Run a service: listen (`args.listen`), connect to the API and the
/// hand-off, make the service with `make`, serve its API events and
/// sockets coming back ([`start`]), print the first stdout line
/// `listening on SCHEME://ADDR`, then serve each accepted connection with
/// `serve` until the process ends ([`accept_loop`]).
pub async fn run_service<D, S, F, Fut>(
    args: &ServiceArgs<D>,
    scheme: &str,
    max_connections: usize,
    make: impl FnOnce(Mobility) -> Arc<S>,
    serve: F,
) -> Result<(), Box<dyn std::error::Error>>
where
    D: Defaults,
    S: MobileService,
    F: Fn(Arc<S>, TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind(args.listen).await?;
    let (kit, pending) = Mobility::connect(args.config(), listener.local_addr()?).await?;
    let svc = make(kit);
    start(&svc, pending);
    println!("listening on {scheme}://{}", listener.local_addr()?);
    accept_loop(listener, max_connections, move |stream, peer| {
        serve(svc.clone(), stream, peer)
    })
    .await;
    Ok(())
}

/// Accept connections until the process ends, at most `max` at a time,
/// each served by `serve(stream, peer)` in a task of its own.
pub async fn accept_loop<F, Fut>(listener: TcpListener, max: usize, serve: F)
where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let limit = Arc::new(Semaphore::new(max.max(1)));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            warn!(%peer, "too many connections");
            continue;
        };
        let fut = serve(stream, peer);
        tokio::spawn(async move {
            fut.await;
            drop(permit);
        });
    }
}

/// `main`: the daemons' logging (RUST_LOG, default info; text lines on
/// stderr), a runtime, `run`; an error ends the process with status 1.
pub fn run_main<Fut>(name: &str, run: impl FnOnce() -> Fut)
where
    Fut: Future<Output = Result<(), Box<dyn std::error::Error>>>,
{
    daemon_kit::logging::init(false, "info");
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(run()) {
        eprintln!("{name}: {e}");
        std::process::exit(1);
    }
}

/// A socket address in a context: `family u8 (4|6) | 4 or 16 octets |
/// port u16`.
pub fn put_addr(b: &mut BytesMut, a: SocketAddr) {
    let (family, octets) = match a.ip() {
        IpAddr::V4(ip) => (4, ip.to_ipv6_mapped().octets()),
        IpAddr::V6(ip) => (6, ip.octets()),
    };
    b.put_u8(family);
    b.put_slice(if family == 4 { &octets[12..] } else { &octets });
    b.put_u16(a.port());
}

/// `Err("truncated context")` unless `n` octets remain.
pub fn need(b: &[u8], n: usize) -> Result<(), String> {
    if b.remaining() < n {
        Err("truncated context".into())
    } else {
        Ok(())
    }
}

/// A connection's 4-tuple in a context: client address, server address.
pub fn put_conn(b: &mut BytesMut, c: &Connection) {
    put_addr(b, c.client);
    put_addr(b, c.server);
}

/// The 4-tuple [`put_conn`] wrote.
pub fn get_conn(b: &mut &[u8]) -> Result<Connection, String> {
    let client = get_addr(b)?;
    let server = get_addr(b)?;
    Ok(Connection { client, server })
}

/// Skip a context's magic (its format and version), `Err` if it is not
/// there, then check that `n` more octets are.
pub fn take_magic(b: &mut &[u8], magic: &[u8; 4], n: usize) -> Result<(), String> {
    need(b, 4 + n)?;
    if &b[..4] != magic {
        return Err(format!("not a {} context", String::from_utf8_lossy(magic)));
    }
    b.advance(4);
    Ok(())
}

/// `Err` if octets follow the context's last `what`.
pub fn at_end(b: &[u8], what: &str) -> Result<(), String> {
    if b.has_remaining() {
        return Err(format!("octets after the last {what}"));
    }
    Ok(())
}

/// A count u16 of at most `max` `what`s.
pub fn get_count(b: &mut &[u8], max: usize, what: &str) -> Result<usize, String> {
    need(b, 2)?;
    let n = usize::from(b.get_u16());
    if n > max {
        return Err(format!("{n} {what} (at most {max})"));
    }
    Ok(n)
}

/// The address [`put_addr`] wrote.
pub fn get_addr(b: &mut &[u8]) -> Result<SocketAddr, String> {
    need(b, 1)?;
    let ip = match b.get_u8() {
        4 => {
            need(b, 4)?;
            let mut a = [0u8; 4];
            b.copy_to_slice(&mut a);
            IpAddr::from(a)
        }
        6 => {
            need(b, 16)?;
            let mut a = [0u8; 16];
            b.copy_to_slice(&mut a);
            IpAddr::from(a)
        }
        f => return Err(format!("address family {f}")),
    };
    need(b, 2)?;
    Ok(SocketAddr::new(ip, b.get_u16()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u16_decimal_and_hex() {
        assert_eq!(parse_u16("0xFF02"), Ok(0xFF02));
        assert_eq!(parse_u16("0Xff01"), Ok(0xFF01));
        assert_eq!(parse_u16("65281"), Ok(0xFF01));
        assert!(parse_u16("0x10000").is_err());
        assert!(parse_u16("x").is_err());
    }

    #[test]
    fn addresses_round_trip() {
        for a in ["10.0.0.7:40000", "[2001:db8::7]:80"] {
            let a: SocketAddr = a.parse().unwrap();
            let mut b = BytesMut::new();
            put_addr(&mut b, a);
            let mut s = &b[..];
            assert_eq!(get_addr(&mut s).unwrap(), a);
            assert!(s.is_empty());
            for cut in 0..b.len() {
                assert!(get_addr(&mut &b[..cut]).is_err());
            }
        }
        assert!(get_addr(&mut &[5u8, 0, 0][..]).is_err());
    }
}
