//! The copy floor of a storm, measured in the same run over the same links.
//!
//! A migration's context crosses three sockets whatever the protocol does:
//! the source service hands it to its mih-user over a Unix stream (the
//! Service Mobility API), the mih-user sends it over TCP on the backhaul to
//! the destination's mih-user, and that one hands it to its service over a
//! Unix stream again. [`measure`] pushes `count` contexts of `octets` each
//! through exactly these three hops and nothing else: no MIH, no CXTP
//! framing, no TCP_REPAIR, no test traffic. Each hop is a thread that reads
//! into a 256 KiB buffer and writes what it read (the relays), so the
//! kernel copies every octet twice per hop, as it does for the daemons.
//! The wall time and the CPU of the four threads are the floor a storm of
//! those contexts cannot beat on this machine.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mih_user::sessions::netns;
use serde_json::{json, Value};

/// What one floor run measured.
pub struct Floor {
    pub count: u64,
    pub octets: u64,
    pub wall: Duration,
    /// User plus system time of the four threads.
    pub cpu: Duration,
}

impl Floor {
    pub fn per_s(&self) -> f64 {
        self.count as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    pub fn cpu_ms_each(&self) -> f64 {
        self.cpu.as_secs_f64() * 1000.0 / (self.count.max(1) as f64)
    }

    pub fn json(&self) -> Value {
        json!({
            "contexts": self.count,
            "octets_each": self.octets,
            "ms": self.wall.as_secs_f64() * 1000.0,
            "contexts_per_s": self.per_s(),
            "cpu_ms": self.cpu.as_secs_f64() * 1000.0,
            "cpu_ms_per_context": self.cpu_ms_each(),
            "hops": "unix stream -> TCP on the backhaul -> unix stream",
        })
    }
}

/// This thread's user plus system time.
fn thread_cpu() -> Duration {
    // SAFETY: getrusage fills the struct it is given; RUSAGE_THREAD is Linux's.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut r) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(r.ru_utime) + tv(r.ru_stime)
}

/// Read from `a` and write everything to `b` until `total` octets passed.
fn relay(a: &mut impl Read, b: &mut impl Write, total: u64) -> std::io::Result<()> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0u64;
    while got < total {
        let n = a.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        b.write_all(&buf[..n])?;
        got += n as u64;
    }
    Ok(())
}

type Job = std::thread::JoinHandle<std::io::Result<Duration>>;

fn spawn(name: &str, f: impl FnOnce() -> std::io::Result<()> + Send + 'static) -> Job {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            f()?;
            Ok(thread_cpu())
        })
        .expect("spawning a floor thread")
}

fn join(j: Job) -> Result<Duration, String> {
    j.join()
        .map_err(|_| "a floor thread panicked".to_string())?
        .map_err(|e| e.to_string())
}

/// Push `count` contexts of `octets` from a "service" in namespace `src_ns`
/// to one in `dst_ns`, whose backhaul address is `dst_ip`.
pub fn measure(
    src_ns: &str,
    dst_ns: &str,
    dst_ip: Ipv4Addr,
    count: u64,
    octets: u64,
) -> Result<Floor, String> {
    let total = count * octets;
    let (port_tx, port_rx) = mpsc::channel();
    let dst_path = netns::path(dst_ns);
    let src_path = netns::path(src_ns);
    // The destination: TCP in, Unix out, the service reading.
    let (in_a, mut in_b) = UnixStream::pair().map_err(|e| e.to_string())?;
    let reader = spawn("floor-dst-svc", move || {
        let mut buf = vec![0u8; 1 << 20];
        let mut got = 0u64;
        while got < total {
            let n = in_b.read(&mut buf)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            got += n as u64;
        }
        Ok(())
    });
    let dst = spawn("floor-dst-user", move || {
        netns::enter(&dst_path)?;
        let l = TcpListener::bind(SocketAddr::from((dst_ip, 0)))?;
        let _ = port_tx.send(l.local_addr()?.port());
        let (mut c, _) = l.accept()?;
        let mut out = in_a;
        relay(&mut c, &mut out, total)
    });
    let port = port_rx
        .recv_timeout(Duration::from_secs(5))
        .map_err(|_| "the floor's listener did not start".to_string())?;
    // The source: the service writing, Unix in, TCP out.
    let (mut out_a, out_b) = UnixStream::pair().map_err(|e| e.to_string())?;
    let start = Instant::now();
    let writer = spawn("floor-src-svc", move || {
        let ctx = vec![0x5au8; octets as usize];
        for _ in 0..count {
            out_a.write_all(&ctx)?;
        }
        Ok(())
    });
    let src = spawn("floor-src-user", move || {
        netns::enter(&src_path)?;
        let mut c = TcpStream::connect(SocketAddr::from((dst_ip, port)))?;
        let mut inp = out_b;
        relay(&mut inp, &mut c, total)
    });
    let mut cpu = Duration::ZERO;
    for j in [writer, src, dst, reader] {
        cpu += join(j)?;
    }
    Ok(Floor {
        count,
        octets,
        wall: start.elapsed(),
        cpu,
    })
}
