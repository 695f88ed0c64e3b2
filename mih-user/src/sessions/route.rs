//! Route changes through rtnetlink (path switch and flow hold), optionally
//! in another network namespace.
//!
//! A TCP migration needs two route operations, and both sit on the
//! critical path of the handover:
//!
//! * the **flow hold** at the source: a blackhole route towards the UE, so
//!   that the RST the source kernel would answer to the UE's segments,
//!   once the socket is gone, never leaves the host;
//! * the **path switch**: the route to the service address (in the UE's
//!   namespace in the tests and benchmarks, at the router in a real
//!   network) now goes via the new eNBC.
//!
//! Spawning `ip` costs 2–6 ms per change. [`RouteHandle`] keeps one
//! `NETLINK_ROUTE` socket open and sends the same `RTM_NEWROUTE` /
//! `RTM_DELROUTE` requests `ip route` would, waiting for the kernel's
//! acknowledgement, in a few tens of microseconds. The messages are built
//! with `netlink-packet-route` and framed by `netlink-packet-core`; the
//! socket is `netlink-sys`'s synchronous one.
//!
//! A netlink socket belongs to the network namespace it was created in,
//! whatever thread uses it later: [`RouteHandle::in_netns`] creates it on a
//! short-lived helper thread that entered the namespace, so an eNBC can
//! change routes in another namespace without leaving its own.
//!
//! ```no_run
//! use std::net::IpAddr;
//! use std::path::Path;
//! use mih_user::sessions::route::{is_not_found, RouteHandle};
//!
//! # fn main() -> std::io::Result<()> {
//! let ue: IpAddr = "10.77.0.2".parse().unwrap();
//! let service: IpAddr = "10.99.0.1".parse().unwrap();
//! let here = RouteHandle::new()?; // the caller's namespace
//! let ue_ns = RouteHandle::in_netns(Path::new("/run/netns/ue"))?;
//!
//! // Flow hold: `ip route replace blackhole 10.77.0.2/32`.
//! here.replace_blackhole(ue, 32)?;
//! // Path switch in the UE's namespace:
//! // `ip route replace 10.99.0.1/32 via 10.231.2.1 src 10.77.0.2`.
//! ue_ns.replace_via(service, 32, "10.231.2.1".parse().unwrap(), Some(ue))?;
//! // Hold released: `ip route del 10.77.0.2/32` (absent is not an error here).
//! if let Err(e) = here.delete(ue, 32) {
//!     if !is_not_found(&e) {
//!         return Err(e);
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Every request carries `NLM_F_ACK`; the call returns when the kernel's
//! answer arrives. A negative answer becomes an [`io::Error`] whose
//! [`kind`](io::Error::kind) follows the errno (`ESRCH` from a delete is
//! [`io::ErrorKind::NotFound`], `EPERM` is
//! [`io::ErrorKind::PermissionDenied`] with a message naming
//! `CAP_NET_ADMIN`) and whose inner error is a [`RouteError`] carrying the
//! request (as `ip route` would spell it) and the errno. Routes go to the
//! main table with protocol "boot", as `ip route` puts them; the `_in`
//! variants take a routing table ([`MAIN_TABLE`] is 254, `ip route ...
//! table N`), for source-policy routing with one table per UE
//! (`ip rule add from UE lookup N`: many UEs behind one router, each on
//! its own path to the same service address).

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_REPLACE,
    NLM_F_REQUEST,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// How long a request waits for the kernel's answer before failing with
/// [`io::ErrorKind::TimedOut`] (the kernel answers at once; this only
/// bounds a broken socket).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);
/// Receive buffer for answers: an acknowledgement is 36 octets (with
/// `NETLINK_CAP_ACK`); a few stale answers fit too.
const RECV_BUF: usize = 8192;

/// The main routing table (`RT_TABLE_MAIN`).
pub const MAIN_TABLE: u32 = 254;

/// A refused route request: what was asked and the kernel's errno. It is
/// the inner error of the [`io::Error`]s that [`RouteHandle`] returns
/// (`err.get_ref()` and `downcast_ref::<RouteError>()`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteError {
    /// The request, spelled as `ip route` would (e.g.
    /// `replace blackhole 10.77.0.2/32`).
    pub request: String,
    /// The kernel's errno (positive), e.g. `libc::ESRCH`.
    pub errno: i32,
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let os = io::Error::from_raw_os_error(self.errno);
        write!(f, "ip route {}: {os}", self.request)?;
        match self.errno {
            libc::EPERM => write!(
                f,
                " (changing routes needs CAP_NET_ADMIN in the route's network namespace; run as root)"
            ),
            libc::ESRCH => write!(f, " (no such route)"),
            _ => Ok(()),
        }
    }
}

impl std::error::Error for RouteError {}

impl RouteError {
    fn into_io(self) -> io::Error {
        let kind = match self.errno {
            libc::ESRCH | libc::ENOENT => io::ErrorKind::NotFound,
            libc::EPERM | libc::EACCES => io::ErrorKind::PermissionDenied,
            e => io::Error::from_raw_os_error(e).kind(),
        };
        io::Error::new(kind, self)
    }
}

/// Whether `e` says the route to delete does not exist (a [`RouteHandle`]
/// error of kind [`io::ErrorKind::NotFound`]).
pub fn is_not_found(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

/// The [`RouteError`] inside an error returned by [`RouteHandle`], if any.
pub fn route_error(e: &io::Error) -> Option<&RouteError> {
    e.get_ref().and_then(|i| i.downcast_ref::<RouteError>())
}

struct Inner {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

/// A `NETLINK_ROUTE` socket bound in one network namespace, for changing
/// routes there (`Send + Sync`: requests are serialised by a mutex).
pub struct RouteHandle {
    inner: Mutex<Inner>,
}

impl fmt::Debug for RouteHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteHandle").finish_non_exhaustive()
    }
}

impl RouteHandle {
    /// A socket in the calling thread's current network namespace.
    pub fn new() -> io::Result<RouteHandle> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        // Short acknowledgements (no copy of our request in them); harmless
        // if the kernel does not know the option.
        let _ = socket.set_cap_ack(true);
        let tv = libc::timeval {
            tv_sec: ANSWER_TIMEOUT.as_secs() as libc::time_t,
            tv_usec: ANSWER_TIMEOUT.subsec_micros() as libc::suseconds_t,
        };
        // SAFETY: SO_RCVTIMEO reads one `struct timeval` from the pointer.
        let r = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(RouteHandle {
            inner: Mutex::new(Inner {
                socket,
                seq: 0,
                buf: vec![0; RECV_BUF],
            }),
        })
    }

    /// A socket in the network namespace at `path` (e.g. `/run/netns/ue`,
    /// or `/proc/PID/ns/net`). It is created on a helper thread that
    /// entered the namespace; the caller's thread does not move, and the
    /// socket acts in that namespace from whatever thread uses it.
    pub fn in_netns(path: &Path) -> io::Result<RouteHandle> {
        super::netns::run_in(path, RouteHandle::new)?
    }

    /// `ip route replace DST/LEN via GW [src SRC]`: create the route or
    /// replace the one with the same destination and prefix length.
    pub fn replace_via(
        &self,
        dst: IpAddr,
        prefix_len: u8,
        via: IpAddr,
        src: Option<IpAddr>,
    ) -> io::Result<()> {
        self.replace_via_in(MAIN_TABLE, dst, prefix_len, via, src)
    }

    /// [`replace_via`](Self::replace_via) in routing table `table`.
    pub fn replace_via_in(
        &self,
        table: u32,
        dst: IpAddr,
        prefix_len: u8,
        via: IpAddr,
        src: Option<IpAddr>,
    ) -> io::Result<()> {
        let family = check_prefix(dst, prefix_len)?;
        if via.is_ipv4() != dst.is_ipv4() || src.is_some_and(|s| s.is_ipv4() != dst.is_ipv4()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("route {dst}/{prefix_len}: gateway and source must be of the same family"),
            ));
        }
        let mut msg = route_message(family, table, dst, prefix_len, RouteType::Unicast);
        msg.attributes.push(RouteAttribute::Gateway(via.into()));
        if let Some(s) = src {
            msg.attributes.push(RouteAttribute::PrefSource(s.into()));
        }
        self.request(
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_REPLACE,
            || match src {
                Some(s) => format!(
                    "replace {dst}/{prefix_len} via {via} src {s}{}",
                    in_table(table)
                ),
                None => format!("replace {dst}/{prefix_len} via {via}{}", in_table(table)),
            },
        )
    }

    /// `ip route replace blackhole DST/LEN`: packets towards DST/LEN are
    /// dropped silently (the flow hold).
    pub fn replace_blackhole(&self, dst: IpAddr, prefix_len: u8) -> io::Result<()> {
        self.replace_blackhole_in(MAIN_TABLE, dst, prefix_len)
    }

    /// [`replace_blackhole`](Self::replace_blackhole) in routing table
    /// `table`.
    pub fn replace_blackhole_in(&self, table: u32, dst: IpAddr, prefix_len: u8) -> io::Result<()> {
        let family = check_prefix(dst, prefix_len)?;
        let msg = route_message(family, table, dst, prefix_len, RouteType::BlackHole);
        self.request(
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_REPLACE,
            || format!("replace blackhole {dst}/{prefix_len}{}", in_table(table)),
        )
    }

    /// `ip route del DST/LEN` (whatever its type) in the main table. A
    /// missing route is an error of kind [`io::ErrorKind::NotFound`]
    /// (see [`is_not_found`]).
    pub fn delete(&self, dst: IpAddr, prefix_len: u8) -> io::Result<()> {
        self.delete_in(MAIN_TABLE, dst, prefix_len)
    }

    /// [`delete`](Self::delete) in routing table `table`.
    pub fn delete_in(&self, table: u32, dst: IpAddr, prefix_len: u8) -> io::Result<()> {
        let family = check_prefix(dst, prefix_len)?;
        let mut msg = route_message(family, table, dst, prefix_len, RouteType::Unspec);
        // As `ip route del`: any protocol and type, scope "nowhere" (which
        // the kernel reads as "any scope").
        msg.header.protocol = RouteProtocol::Unspec;
        msg.header.scope = RouteScope::NoWhere;
        self.request(RouteNetlinkMessage::DelRoute(msg), 0, || {
            format!("del {dst}/{prefix_len}{}", in_table(table))
        })
    }

    /// `ip route del blackhole DST/LEN`: delete the route only while it is
    /// a blackhole (the kernel matches the type), so a route that replaced
    /// it since (a path switch) is left alone: error of kind
    /// [`io::ErrorKind::NotFound`] then.
    pub fn delete_blackhole(&self, dst: IpAddr, prefix_len: u8) -> io::Result<()> {
        self.delete_blackhole_in(MAIN_TABLE, dst, prefix_len)
    }

    /// [`delete_blackhole`](Self::delete_blackhole) in routing table
    /// `table`.
    pub fn delete_blackhole_in(&self, table: u32, dst: IpAddr, prefix_len: u8) -> io::Result<()> {
        let family = check_prefix(dst, prefix_len)?;
        let mut msg = route_message(family, table, dst, prefix_len, RouteType::BlackHole);
        msg.header.protocol = RouteProtocol::Unspec;
        msg.header.scope = RouteScope::NoWhere;
        self.request(RouteNetlinkMessage::DelRoute(msg), 0, || {
            format!("del blackhole {dst}/{prefix_len}{}", in_table(table))
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Send one request with `NLM_F_REQUEST | NLM_F_ACK | flags` and wait
    /// for the answer carrying its sequence number.
    fn request(
        &self,
        payload: RouteNetlinkMessage,
        flags: u16,
        describe: impl FnOnce() -> String,
    ) -> io::Result<()> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        inner.seq = inner.seq.wrapping_add(1);
        let seq = inner.seq;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        header.sequence_number = seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(payload));
        packet.finalize();
        let mut out = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut out);
        let sent = inner.socket.send(&out, 0)?;
        if sent != out.len() {
            return Err(io::Error::other(format!(
                "netlink: sent {sent} of {} octets",
                out.len()
            )));
        }
        loop {
            let n = match inner.socket.recv(&mut &mut inner.buf[..], 0) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("ip route {}: no answer from the kernel", describe()),
                    ))
                }
                Err(e) => return Err(e),
            };
            let mut data = &inner.buf[..n.min(inner.buf.len())];
            while !data.is_empty() {
                let msg =
                    NetlinkMessage::<RouteNetlinkMessage>::deserialize(data).map_err(|e| {
                        io::Error::new(io::ErrorKind::InvalidData, format!("netlink answer: {e}"))
                    })?;
                let len = (msg.header.length as usize).min(data.len());
                if msg.header.sequence_number == seq {
                    if let NetlinkPayload::Error(err) = msg.payload {
                        return match err.code {
                            None => Ok(()),
                            Some(code) => Err(RouteError {
                                request: describe(),
                                errno: code.get().abs(),
                            }
                            .into_io()),
                        };
                    }
                }
                // Anything else (an answer to an earlier request that timed
                // out): skip it.
                if len == 0 {
                    break;
                }
                data = &data[nlmsg_align(len).min(data.len())..];
            }
        }
    }
}

fn nlmsg_align(len: usize) -> usize {
    (len + 3) & !3
}

fn check_prefix(dst: IpAddr, prefix_len: u8) -> io::Result<AddressFamily> {
    let (family, max) = match dst {
        IpAddr::V4(_) => (AddressFamily::Inet, 32),
        IpAddr::V6(_) => (AddressFamily::Inet6, 128),
    };
    if prefix_len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("route {dst}/{prefix_len}: prefix length above {max}"),
        ));
    }
    let host_bits_clear = match dst {
        IpAddr::V4(a) => {
            let m = u32::MAX
                .checked_shl(32 - u32::from(prefix_len))
                .unwrap_or(0);
            u32::from(a) & !m == 0
        }
        IpAddr::V6(a) => {
            let m = u128::MAX
                .checked_shl(128 - u32::from(prefix_len))
                .unwrap_or(0);
            u128::from(a) & !m == 0
        }
    };
    if !host_bits_clear {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("route {dst}/{prefix_len}: address has bits set beyond the prefix"),
        ));
    }
    Ok(family)
}

/// ` table N` for a table other than the main one (the request's text).
fn in_table(table: u32) -> String {
    if table == MAIN_TABLE {
        String::new()
    } else {
        format!(" table {table}")
    }
}

/// A route message for DST/LEN of type `kind` in `table`, protocol boot,
/// scope universe (what `ip route add|replace [table N]` sends: the
/// header's 8-bit table, and `RTA_TABLE` for any table but main, which
/// the kernel prefers and which holds ids above 255).
fn route_message(
    family: AddressFamily,
    table: u32,
    dst: IpAddr,
    prefix_len: u8,
    kind: RouteType,
) -> RouteMessage {
    let mut msg = RouteMessage::default();
    msg.header.address_family = family;
    msg.header.destination_prefix_length = prefix_len;
    // Above 255: RT_TABLE_COMPAT (252), "see RTA_TABLE".
    msg.header.table = u8::try_from(table).unwrap_or(252);
    if table != MAIN_TABLE {
        msg.attributes.push(RouteAttribute::Table(table));
    }
    msg.header.protocol = RouteProtocol::Boot;
    msg.header.scope = RouteScope::Universe;
    msg.header.kind = kind;
    if prefix_len > 0 {
        msg.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(dst)));
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_checks() {
        let v4: IpAddr = "10.0.0.0".parse().unwrap();
        assert!(check_prefix(v4, 8).is_ok());
        assert!(check_prefix(v4, 33).is_err());
        assert!(check_prefix("10.0.0.1".parse().unwrap(), 24).is_err());
        assert!(check_prefix("10.0.0.1".parse().unwrap(), 32).is_ok());
        assert!(check_prefix("0.0.0.0".parse().unwrap(), 0).is_ok());
        assert!(check_prefix("fd00::".parse().unwrap(), 64).is_ok());
        assert!(check_prefix("fd00::1".parse().unwrap(), 64).is_err());
        assert!(check_prefix("fd00::1".parse().unwrap(), 128).is_ok());
        assert!(check_prefix("fd00::1".parse().unwrap(), 129).is_err());
    }

    #[test]
    fn errno_mapping() {
        let e = RouteError {
            request: "del 10.0.0.1/32".into(),
            errno: libc::ESRCH,
        }
        .into_io();
        assert!(is_not_found(&e));
        assert_eq!(route_error(&e).unwrap().errno, libc::ESRCH);
        let e = RouteError {
            request: "replace blackhole 10.0.0.1/32".into(),
            errno: libc::EPERM,
        }
        .into_io();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        assert!(e.to_string().contains("CAP_NET_ADMIN"), "{e}");
        assert!(
            e.to_string().starts_with("ip route replace blackhole"),
            "{e}"
        );
    }

    #[test]
    fn handle_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<RouteHandle>();
    }
}
