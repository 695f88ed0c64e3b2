//! Sans-IO MIH protocol engines.
//!
//! Nothing here opens a socket, spawns a task or reads a clock: every entry
//! point takes the current time as an argument, and every output is pulled
//! with a `poll_*` method. The tokio drivers live in `crate::daemon`.
//!
//! * [`fragment`]: MIH fragmentation (More-Fragment bit, Fragment Number) and
//!   bounded reassembly.
//! * [`transaction`]: the IEEE 802.21 transaction engine between peer MIHFs:
//!   source and destination transactions, the ACK-Req/ACK-Rsp procedure
//!   (pure and piggy-backed ACKs), retransmission, duplicate detection per
//!   (peer MIHF ID, TID) and transaction lifetime.
//! * [`node`]: the MIHF itself: MIH_SAP users, the peer table, routing of
//!   requests, responses and events, management services.
//! * [`peers`]: the peer table: configured peers, and learned peers in a
//!   bounded table of their own (least recently heard evicted first), with
//!   the rate limit and source ranges of learning.
//! * [`sap`]: the local MIH_SAP registration messages.
//! * [`status`]: failure responses (a `.response`/`.confirm` with a STATUS
//!   for any request).

pub mod fragment;
pub mod node;
pub mod peers;
pub mod sap;
pub mod status;
pub mod tid;
pub mod transaction;

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;

/// Where a frame comes from or goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    /// A peer MIHF over UDP (unreliable: ACKs, retransmission, fragmentation).
    Udp(SocketAddr),
    /// A peer MIHF over TCP (reliable: no ACK procedure, no fragmentation).
    Tcp(SocketAddr),
    /// A local MIH-User on the MIH_SAP (UDP on loopback, one frame a datagram).
    Sap(SocketAddr),
}

impl Endpoint {
    /// The socket address, whatever the transport.
    pub fn addr(&self) -> SocketAddr {
        match *self {
            Endpoint::Udp(a) | Endpoint::Tcp(a) | Endpoint::Sap(a) => a,
        }
    }
    /// True for transports that deliver in order without loss (TCP).
    pub fn is_reliable(&self) -> bool {
        matches!(self, Endpoint::Tcp(_))
    }
    /// True for the local SAP.
    pub fn is_sap(&self) -> bool {
        matches!(self, Endpoint::Sap(_))
    }
    /// Short transport name for logs and metrics.
    pub fn transport(&self) -> &'static str {
        match self {
            Endpoint::Udp(_) => "udp",
            Endpoint::Tcp(_) => "tcp",
            Endpoint::Sap(_) => "sap",
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.transport(), self.addr())
    }
}

/// One frame to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub to: Endpoint,
    /// One whole MIH frame (or fragment).
    pub payload: Bytes,
}

/// Identifies a source transaction started by [`transaction::Engine`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token(pub u64);

/// An IPv4-mapped IPv6 address as the IPv4 address it maps, so that a
/// dual-stack socket's view of an IPv4 sender compares equal to it.
pub fn canon(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}
