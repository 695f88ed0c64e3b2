//! The connections and the per-UE states: one task per connection that
//! reads requests, applies them to its UE's state and writes the responses
//! ([`testbed::session`]); the export stops the UE's tasks at once and
//! parks their buffers (and sockets), a rollback resumes them, an adopted
//! socket resumes a parked or imported connection.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use mih_user::api::wire::{Connection, ReplyStatus};
use testbed::session::{
    parse_request, Response, MAX_REQUEST_LEN, MAX_RESPONSE_LEN, STATUS_OK, STATUS_SEQ_MISMATCH,
};
use testbed::svc_kit::{connection_of, MobileService, Mobility};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use crate::context::{decode_context, encode_context, ConnContext};

/// Octets read from a socket at a time.
const READ_CHUNK: usize = 16 * 1024;
/// Responses waiting to be written beyond which no request is processed
/// (and nothing read) until the client reads.
const OUTPUT_HIGH: usize = 256 * 1024;
/// Most octets a connection's input can hold (a request not complete, and
/// one read).
pub(crate) const INPUT_CAP: usize = MAX_REQUEST_LEN + READ_CHUNK;
/// Most octets a connection's output can hold.
pub(crate) const OUTPUT_CAP: usize = OUTPUT_HIGH + MAX_RESPONSE_LEN;
/// Most UEs with a state here.
const MAX_UES: usize = 4096;
/// Most octets of all the UEs' states together (fewer UEs with large
/// states).
const MAX_STATE_TOTAL: u64 = 1 << 30;

/// A stopped connection, as its task hands it over.
pub(crate) struct Stopped {
    ctx: ConnContext,
    stream: TcpStream,
}

/// A running connection: its task stops when asked through `freeze`.
struct Live {
    conn: Connection,
    freeze: oneshot::Sender<oneshot::Sender<Stopped>>,
}

/// A connection that does not run: exported (its socket kept here while
/// frozen without the hand-off, or given to the MIH-User) or imported
/// (waiting for its socket).
pub(crate) struct Parked {
    pub(crate) ctx: ConnContext,
    pub(crate) stream: Option<TcpStream>,
}

pub(crate) struct Ue {
    pub(crate) state: Arc<Mutex<Vec<u8>>>,
    live: HashMap<u64, Live>,
    pub(crate) parked: Vec<Parked>,
    /// Being exported: no new connection.
    frozen: bool,
    /// Imported, and no connection of it here yet.
    awaited: bool,
}

impl Ue {
    fn new(state: Vec<u8>) -> Ue {
        Ue {
            state: Arc::new(Mutex::new(state)),
            live: HashMap::new(),
            parked: Vec::new(),
            frozen: false,
            awaited: false,
        }
    }

    fn unused(&self) -> bool {
        self.live.is_empty() && self.parked.is_empty() && !self.awaited && !self.frozen
    }
}

#[derive(Default)]
pub(crate) struct Tables {
    pub(crate) ues: HashMap<IpAddr, Ue>,
}

pub(crate) struct Service {
    pub(crate) kit: Mobility,
    pub(crate) state_bytes: u32,
    tables: Mutex<Tables>,
    next_id: AtomicU64,
    refused: AtomicU64,
}

pub(crate) type Shared = Arc<Service>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a connection task does next, once nothing is left to do on the socket.
enum End {
    /// Closed (by the client, an error, a malformed request).
    Closed,
    /// Stopped for an export; the socket and buffers go to the freezer.
    Frozen(oneshot::Sender<Stopped>),
    /// The UE was dropped (migration committed).
    Dropped,
}

impl Service {
    pub(crate) fn new(kit: Mobility, state_bytes: u32) -> Service {
        Service {
            kit,
            state_bytes,
            tables: Mutex::new(Tables::default()),
            next_id: AtomicU64::new(1),
            refused: AtomicU64::new(0),
        }
    }

    pub(crate) fn tables(&self) -> MutexGuard<'_, Tables> {
        lock(&self.tables)
    }

    /// How many UEs may have a state here.
    fn ue_cap(&self) -> usize {
        let per = u64::from(self.state_bytes.max(1));
        (MAX_STATE_TOTAL / per).clamp(1, MAX_UES as u64) as usize
    }

    /// Room for one more UE in `t`? Counts and logs a refusal if not.
    fn room_for_ue(&self, t: &Tables, ue: IpAddr) -> bool {
        if t.ues.contains_key(&ue) || t.ues.len() < self.ue_cap() {
            return true;
        }
        let n = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        warn!(%ue, cap = self.ue_cap(), refused = n, "too many UEs with a state; refused");
        false
    }

    /// Register a running connection of `ue` (which must be in `t`) and
    /// start its task.
    fn launch(self: &Shared, t: &mut Tables, ue: IpAddr, stream: TcpStream, ctx: ConnContext) {
        let Some(u) = t.ues.get_mut(&ue) else { return };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (freeze, freeze_rx) = oneshot::channel();
        u.live.insert(
            id,
            Live {
                conn: ctx.conn,
                freeze,
            },
        );
        u.awaited = false;
        let state = u.state.clone();
        let svc = self.clone();
        tokio::spawn(async move {
            svc.sync_user(ue).await;
            let end = svc.run_conn(stream, ctx, &state, freeze_rx).await;
            svc.ended(ue, id, end).await;
        });
    }

    /// One connection: process complete requests, write the output, read
    /// more; stop at once when frozen (whatever is in the buffers stays
    /// there).
    async fn run_conn(
        &self,
        mut stream: TcpStream,
        mut c: ConnContext,
        state: &Mutex<Vec<u8>>,
        mut freeze: oneshot::Receiver<oneshot::Sender<Stopped>>,
    ) -> End {
        let mut buf = vec![0u8; READ_CHUNK];
        let mut eof = false;
        let end = loop {
            if let Err(e) = self.process(state, &mut c) {
                warn!(client = %c.conn.client, "malformed request, closing: {e}");
                break End::Closed;
            }
            if eof && c.output.is_empty() {
                let _ = stream.shutdown().await;
                break End::Closed;
            }
            let can_read = !eof && c.output.len() < OUTPUT_HIGH;
            let (mut rd, mut wr) = stream.split();
            tokio::select! {
                biased;
                r = &mut freeze => break match r {
                    Ok(reply) => End::Frozen(reply),
                    Err(_) => End::Dropped,
                },
                r = wr.write(&c.output), if !c.output.is_empty() => match r {
                    Ok(0) | Err(_) => break End::Closed,
                    Ok(n) => {
                        c.output.drain(..n);
                    }
                },
                r = rd.read(&mut buf), if can_read => match r {
                    Ok(0) => eof = true,
                    Ok(n) => c.input.extend_from_slice(&buf[..n]),
                    Err(_) => break End::Closed,
                },
            }
        };
        match end {
            End::Frozen(reply) => {
                if let Err(s) = reply.send(Stopped { ctx: c, stream }) {
                    warn!(client = %s.ctx.conn.client, "frozen connection not collected; lost");
                }
                End::Dropped
            }
            other => other,
        }
    }

    /// Answer the complete requests at the start of the input (until the
    /// output is full).
    fn process(&self, state: &Mutex<Vec<u8>>, c: &mut ConnContext) -> Result<(), String> {
        let mut at = 0;
        let mut st: Option<MutexGuard<'_, Vec<u8>>> = None;
        let r = loop {
            if c.output.len() >= OUTPUT_HIGH {
                break Ok(());
            }
            let (rq, n) = match parse_request(&c.input[at..], self.state_bytes) {
                Ok(Some(x)) => x,
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            };
            at += n;
            let status = if rq.seq == c.next_seq {
                STATUS_OK
            } else {
                STATUS_SEQ_MISMATCH
            };
            c.next_seq = rq.seq.wrapping_add(1);
            let s = st.get_or_insert_with(|| lock(state));
            let w = rq.write_off as usize;
            s[w..w + rq.write.len()].copy_from_slice(&rq.write);
            let r = rq.read_off as usize;
            let mut pad = rq.pad;
            pad.reverse();
            Response {
                seq: rq.seq,
                status,
                read: s[r..r + usize::from(rq.read_len)].to_vec(),
                pad,
            }
            .encode(&mut c.output);
        };
        c.input.drain(..at);
        r
    }

    /// A connection task ended.
    async fn ended(&self, ue: IpAddr, id: u64, end: End) {
        if !matches!(end, End::Closed) {
            return;
        }
        {
            let mut t = self.tables();
            if let Some(u) = t.ues.get_mut(&ue) {
                u.live.remove(&id);
                if u.unused() {
                    t.ues.remove(&ue);
                }
            }
        }
        debug!(%ue, "connection closed");
        self.sync_user(ue).await;
    }

    /// A new connection from a client.
    pub(crate) fn accept(self: &Shared, stream: TcpStream, conn: Connection) {
        let ue = conn.client.ip();
        let mut t = self.tables();
        if !self.room_for_ue(&t, ue) {
            return;
        }
        let u = t
            .ues
            .entry(ue)
            .or_insert_with(|| Ue::new(vec![0; self.state_bytes as usize]));
        if u.frozen {
            warn!(%ue, "a connection while the UE is exported; closed");
            return;
        }
        self.launch(&mut t, ue, stream, ConnContext::fresh(conn));
    }

    /// Stop the UE's connections (at once, wherever they are in a request),
    /// give their sockets to the MIH-User with the hand-off, and return the
    /// UE's context. The connections stay parked here until an outcome (or
    /// a socket coming back) says what becomes of them.
    pub(crate) async fn export(&self, ue: IpAddr) -> Bytes {
        let waits: Vec<_> = {
            let mut t = self.tables();
            let Some(u) = t.ues.get_mut(&ue) else {
                // Never seen here: the state it would have on connecting.
                return encode_context(&vec![0; self.state_bytes as usize], &[]);
            };
            u.frozen = true;
            u.live
                .drain()
                .filter_map(|(_, l)| {
                    let (tx, rx) = oneshot::channel();
                    l.freeze.send(tx).ok().map(|()| (l.conn, rx))
                })
                .collect()
        };
        let mut parked = Vec::new();
        for (conn, rx) in waits {
            let Ok(Ok(s)) = tokio::time::timeout(Duration::from_secs(1), rx).await else {
                debug!(client = %conn.client, "connection ended before the export");
                continue;
            };
            let stream = if self.kit.hands_off() {
                match self.kit.hand_off(s.stream) {
                    Ok(()) => None,
                    Err((e, Some(back))) => {
                        warn!(client = %conn.client, "socket hand-off failed: {e}");
                        Some(back)
                    }
                    Err((e, None)) => {
                        warn!(client = %conn.client, "socket hand-off failed, connection lost: {e}");
                        continue;
                    }
                }
            } else {
                Some(s.stream)
            };
            parked.push(Parked { ctx: s.ctx, stream });
        }
        let mut t = self.tables();
        let Some(u) = t.ues.get_mut(&ue) else {
            return encode_context(&[], &[]);
        };
        u.parked.extend(parked);
        let conns: Vec<ConnContext> = u.parked.iter().map(|p| p.ctx.clone()).collect();
        let state = lock(&u.state);
        info!(%ue, connections = conns.len(), state = state.len(), pending_in = conns.iter().map(|c| c.input.len()).sum::<usize>(), pending_out = conns.iter().map(|c| c.output.len()).sum::<usize>(), "export");
        encode_context(&state, &conns)
    }

    /// Check and keep an imported context; returns the connections it
    /// lists (those of `ue`).
    pub(crate) fn import(
        &self,
        ue: IpAddr,
        data: &[u8],
    ) -> Result<Vec<Connection>, (ReplyStatus, String)> {
        let ctx = decode_context(data).map_err(|e| (ReplyStatus::MalformedContext, e))?;
        if ctx.state.len() != self.state_bytes as usize {
            return Err((
                ReplyStatus::Refused,
                format!(
                    "context has a state of {} octets, {} here",
                    ctx.state.len(),
                    self.state_bytes
                ),
            ));
        }
        let mut t = self.tables();
        if !self.room_for_ue(&t, ue) {
            return Err((ReplyStatus::Refused, "no capacity for another UE".into()));
        }
        let parked: Vec<Parked> = ctx
            .conns
            .into_iter()
            .filter(|c| c.conn.client.ip().to_canonical() == ue.to_canonical())
            .map(|ctx| Parked { ctx, stream: None })
            .collect();
        let conns = parked.iter().map(|p| p.ctx.conn).collect();
        info!(%ue, connections = parked.len(), "import");
        let u = t.ues.entry(ue).or_insert_with(|| Ue::new(Vec::new()));
        *lock(&u.state) = ctx.state;
        u.parked = parked;
        u.frozen = false;
        u.awaited = true;
        Ok(conns)
    }

    /// Source, rolled back (or the export answer failed): the connections
    /// whose sockets are here run again; the ones handed off wait for
    /// their socket.
    pub(crate) fn resume(self: &Shared, ue: IpAddr) {
        let mut t = self.tables();
        let Some(u) = t.ues.get_mut(&ue) else { return };
        u.frozen = false;
        let (here, away): (Vec<_>, Vec<_>) = u.parked.drain(..).partition(|p| p.stream.is_some());
        u.parked = away;
        for p in here {
            if let Some(s) = p.stream {
                self.launch(&mut t, ue, s, p.ctx);
            }
        }
    }

    /// Source, committed: the UE left; its state and parked connections go.
    pub(crate) fn drop_ue(&self, ue: IpAddr) {
        self.tables().ues.remove(&ue);
    }

    /// Destination, rolled back: the imported context goes.
    pub(crate) fn drop_import(&self, ue: IpAddr) {
        let mut t = self.tables();
        let Some(u) = t.ues.get_mut(&ue) else { return };
        u.parked.clear();
        u.awaited = false;
        if u.unused() {
            t.ues.remove(&ue);
        }
    }

    /// A socket from the MIH-User: if a parked (or imported) connection has
    /// its 4-tuple, it resumes on it (pending output first, then the
    /// pending input). False (the socket dropped) otherwise.
    pub(crate) fn adopt(self: &Shared, stream: std::net::TcpStream) -> bool {
        let (Ok(peer), Ok(local)) = (stream.peer_addr(), stream.local_addr()) else {
            return false;
        };
        let conn = connection_of(peer, local);
        let ue = conn.client.ip();
        let mut t = self.tables();
        let Some(u) = t.ues.get_mut(&ue) else {
            return false;
        };
        let Some(i) = u
            .parked
            .iter()
            .position(|p| p.ctx.conn == conn && p.stream.is_none())
        else {
            return false;
        };
        if stream.set_nonblocking(true).is_err() {
            return false;
        }
        let Ok(stream) = TcpStream::from_std(stream) else {
            return false;
        };
        let p = u.parked.remove(i);
        self.launch(&mut t, ue, stream, p.ctx);
        true
    }

    /// The UEs here.
    pub(crate) fn ue_list(&self) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = self.tables().ues.keys().copied().collect();
        v.sort();
        v
    }

    pub(crate) fn live_connections(&self, ue: IpAddr) -> Vec<Connection> {
        let t = self.tables();
        t.ues
            .get(&ue)
            .map(|u| u.live.values().map(|l| l.conn).collect())
            .unwrap_or_default()
    }

    pub(crate) fn pending(&self, ue: IpAddr) -> bool {
        let t = self.tables();
        t.ues
            .get(&ue)
            .is_some_and(|u| !u.parked.is_empty() || u.awaited)
    }
}

/// Serve a connection the listener accepted.
pub(crate) async fn serve(svc: Shared, stream: TcpStream, peer: SocketAddr) {
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let _ = stream.set_nodelay(true);
    svc.accept(stream, connection_of(peer, local));
}

#[cfg(test)]
mod tests {
    use super::*;
    use mih_user::api::wire::{Outcome, Role};
    use testbed::session::SessionChecker;
    use testbed::svc_kit::MobilityConfig;
    use tokio::net::TcpListener;

    fn test_service(state_bytes: u32) -> Shared {
        let config = MobilityConfig {
            api_socket: None,
            handoff_socket: None,
            service_id: "session".into(),
            fpt: 0xFF11,
        };
        Arc::new(Service::new(Mobility::detached(config), state_bytes))
    }

    /// A client connected to `svc` (through a listener of the test's).
    async fn connect(svc: &Shared) -> (TcpStream, Connection) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, peer) = listener.accept().await.unwrap();
        let conn = connection_of(peer, server.local_addr().unwrap());
        svc.accept(server, conn);
        (client, conn)
    }

    /// `n` requests of the checker, all at once.
    fn requests(c: &mut SessionChecker, n: usize) -> Vec<u8> {
        let mut wire = Vec::new();
        for _ in 0..n {
            c.next_request(&mut wire);
        }
        wire
    }

    /// Read and check until the checker has `total` answers.
    async fn read_checked(
        rd: &mut (impl AsyncReadExt + Unpin),
        c: &mut SessionChecker,
        total: u64,
    ) {
        let mut buf = vec![0u8; 64 * 1024];
        let work = async {
            while c.answered() < total {
                let n = rd.read(&mut buf).await.unwrap();
                assert!(n > 0, "closed after {} answers", c.answered());
                c.on_bytes(&buf[..n]).unwrap();
            }
        };
        tokio::time::timeout(Duration::from_secs(60), work)
            .await
            .expect("answers in time");
        assert_eq!(c.outstanding(), 0);
    }

    #[tokio::test]
    async fn pipelined_requests_are_answered_and_checked() {
        let svc = test_service(100_000);
        let (client, conn) = connect(&svc).await;
        let (mut rd, mut wr) = client.into_split();
        // two regions of one UE: a second connection shares the state
        let (client2, _) = connect(&svc).await;
        let (mut rd2, mut wr2) = client2.into_split();
        let mut c = SessionChecker::new(1, 100_000, 0..50_000, 3000);
        let mut c2 = SessionChecker::new(2, 100_000, 50_000..100_000, 100);
        let wire = requests(&mut c, 500);
        let wire2 = requests(&mut c2, 500);
        let writer = tokio::spawn(async move {
            wr.write_all(&wire).await.unwrap();
            wr2.write_all(&wire2).await.unwrap();
            (wr, wr2)
        });
        read_checked(&mut rd, &mut c, 500).await;
        read_checked(&mut rd2, &mut c2, 500).await;
        let (wr, _wr2) = writer.await.unwrap();
        assert_eq!(svc.live_connections(conn.client.ip()).len(), 2);
        // a closed connection leaves the UE (the other one keeps it)
        drop((rd, wr));
        for _ in 0..100 {
            if svc.live_connections(conn.client.ip()).len() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(svc.live_connections(conn.client.ip()).len(), 1);
    }

    #[tokio::test]
    async fn pure_echo_without_state_and_malformed_closes() {
        let svc = test_service(0);
        let (mut client, _) = connect(&svc).await;
        let mut c = SessionChecker::new(9, 0, 0..0, 2000);
        let wire = requests(&mut c, 50);
        client.write_all(&wire).await.unwrap();
        read_checked(&mut client, &mut c, 50).await;
        client.write_all(b"RX").await.unwrap();
        let mut b = [0u8; 8];
        let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut b))
            .await
            .unwrap();
        assert!(matches!(n, Ok(0) | Err(_)), "closed after a bad magic");
    }

    /// The export stops a connection in the middle of a stream (partial
    /// input and pending output in the context); the context imported into
    /// another instance and the socket adopted there, the stream goes on
    /// with every response checked and no seq mismatch.
    #[tokio::test]
    async fn exported_mid_stream_continues_on_another_instance() {
        const STATE: u32 = 1 << 20;
        const N: usize = 400;
        let a = test_service(STATE);
        let b = test_service(STATE);
        let (client, conn) = connect(&a).await;
        let ue = conn.client.ip();
        let (mut rd, mut wr) = client.into_split();
        let mut c = SessionChecker::new(42, STATE, 0..STATE, 60_000);
        let wire = requests(&mut c, N);
        let total = wire.len();
        // The client keeps sending (never waits for a request to complete)
        // and does not read yet: the server's output fills up.
        let writer = tokio::spawn(async move {
            wr.write_all(&wire).await.unwrap();
            wr
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        let ctx = a.export(ue).await;
        let parsed = decode_context(&ctx).unwrap();
        assert_eq!(parsed.state.len(), STATE as usize);
        assert_eq!(parsed.conns.len(), 1);
        let cc = &parsed.conns[0];
        assert_eq!(cc.conn, conn);
        assert!(!cc.output.is_empty(), "pending output in the context");
        assert!(cc.output.len() <= OUTPUT_CAP && cc.input.len() <= INPUT_CAP);
        assert!(
            (1..N as u32).contains(&cc.next_seq),
            "stopped mid-stream at {}",
            cc.next_seq
        );
        eprintln!(
            "exported at seq {} with {} octets of input, {} of output ({} sent in all)",
            cc.next_seq,
            cc.input.len(),
            cc.output.len(),
            total
        );
        // Frozen: the source writes nothing more.
        assert!(a.live_connections(ue).is_empty());
        // The socket as the MIH-User would move it, to the other instance.
        let stream = {
            let mut t = a.tables();
            let u = t.ues.get_mut(&ue).unwrap();
            u.parked[0].stream.take().unwrap().into_std().unwrap()
        };
        a.drop_ue(ue);
        assert!(a.ue_list().is_empty());
        assert_eq!(b.import(ue, &ctx).unwrap(), vec![conn]);
        assert!(b.pending(ue));
        assert!(b.adopt(stream));
        read_checked(&mut rd, &mut c, N as u64).await;
        let wr = writer.await.unwrap();
        assert_eq!(b.live_connections(ue), vec![conn]);
        drop((rd, wr));
    }

    /// A rollback at the source (no hand-off: the socket stayed here)
    /// resumes the frozen connection where it stopped.
    #[tokio::test]
    async fn rollback_resumes_at_the_source() {
        let svc = test_service(10_000);
        let (client, conn) = connect(&svc).await;
        let (mut rd, mut wr) = client.into_split();
        let mut c = SessionChecker::new(5, 10_000, 0..10_000, 20_000);
        let wire = requests(&mut c, 300);
        let writer = tokio::spawn(async move {
            wr.write_all(&wire).await.unwrap();
            wr
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let ctx = svc.export(conn.client.ip()).await;
        assert_eq!(decode_context(&ctx).unwrap().conns.len(), 1);
        svc.on_outcome(Role::Source, Outcome::RolledBack, conn.client.ip());
        read_checked(&mut rd, &mut c, 300).await;
        drop(writer.await.unwrap());
    }

    #[tokio::test]
    async fn imports_checked_and_dropped_on_rollback() {
        let a = test_service(1000);
        let ue: IpAddr = "10.0.0.9".parse().unwrap();
        let ctx = a.export(ue).await;
        // another state size: refused
        let (status, why) = test_service(999).import(ue, &ctx).unwrap_err();
        assert_eq!(status, ReplyStatus::Refused);
        assert!(why.contains("1000"), "{why}");
        assert_eq!(
            a.import(ue, b"HTD1junk").unwrap_err().0,
            ReplyStatus::MalformedContext
        );
        let b = test_service(1000);
        assert_eq!(b.import(ue, &ctx).unwrap(), vec![]);
        assert_eq!(b.ue_list(), vec![ue]);
        b.on_outcome(Role::Destination, Outcome::RolledBack, ue);
        assert!(b.ue_list().is_empty());
        // nothing to adopt an unknown socket into
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        assert!(!b.adopt(l.accept().unwrap().0));
    }

    /// The imported state serves a new connection of the UE (without the
    /// hand-off the client reconnects; its state moved all the same).
    #[tokio::test]
    async fn imported_state_serves_a_new_connection() {
        let a = test_service(4096);
        let (mut client, conn) = connect(&a).await;
        let rq = testbed::session::Request {
            seq: 0,
            write_off: 100,
            write: b"hello".to_vec(),
            read_off: 0,
            read_len: 0,
            pad: vec![],
        };
        let mut w = Vec::new();
        rq.encode(&mut w);
        client.write_all(&w).await.unwrap();
        let mut r = vec![0u8; 9];
        client.read_exact(&mut r).await.unwrap();
        let ctx = a.export(conn.client.ip()).await;
        let b = test_service(4096);
        b.import(conn.client.ip(), &ctx).unwrap();
        let (mut c2, _) = connect(&b).await;
        let rq = testbed::session::Request {
            read_off: 100,
            read_len: 5,
            write: vec![],
            ..rq
        };
        w.clear();
        rq.encode(&mut w);
        c2.write_all(&w).await.unwrap();
        let mut r = vec![0u8; 9 + 5];
        c2.read_exact(&mut r).await.unwrap();
        assert_eq!(&r[7..12], b"hello");
        // the exported connection still waits for its socket
        assert!(b.pending(conn.client.ip()));
        assert_eq!(b.live_connections(conn.client.ip()).len(), 1);
    }
}
