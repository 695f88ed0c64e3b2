//! Raw ICMP sockets for the MN–AR path (cargo feature `icmp`; needs
//! CAP_NET_RAW). Blocking, with a read timeout: an MN or AR driver feeds
//! what it receives to the sans-IO engines.

use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use socket2::{Domain, MaybeUninitSlice, MsgHdrMut, Protocol, SockAddr, Socket, Type};

use super::{decapsulate, encapsulate, IcmpError, IcmpVersion, HOP_LIMIT};

/// A CXTP message received over ICMP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IcmpReceived {
    /// Source address of the packet.
    pub from: IpAddr,
    /// TTL / Hop Limit it arrived with (always 255 when returned by
    /// [`IcmpSocket::recv`]).
    pub hop_limit: u8,
    /// The CXTP message (header included).
    pub message: Bytes,
}

/// A raw ICMP or ICMPv6 socket sending and receiving CXTP messages.
pub struct IcmpSocket {
    sock: Socket,
    version: IcmpVersion,
    /// Packets dropped because of a hop limit other than 255.
    pub rejected_hop_limit: u64,
}

const IPPROTO_IPV6: i32 = 41;
const IPV6_HOPLIMIT: i32 = 52;

impl IcmpSocket {
    /// Open a raw socket, with TTL / Hop Limit 255 on everything it sends.
    pub fn open(version: IcmpVersion) -> io::Result<Self> {
        let sock = match version {
            IcmpVersion::V4 => {
                let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))?;
                s.set_ttl_v4(HOP_LIMIT as u32)?;
                s.set_multicast_ttl_v4(HOP_LIMIT as u32)?;
                s
            }
            IcmpVersion::V6 => {
                let s = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
                s.set_unicast_hops_v6(HOP_LIMIT as u32)?;
                s.set_multicast_hops_v6(HOP_LIMIT as u32)?;
                s.set_recv_hoplimit_v6(true)?;
                s
            }
        };
        Ok(IcmpSocket {
            sock,
            version,
            rejected_hop_limit: 0,
        })
    }

    /// Override the TTL / Hop Limit (tests only: receivers drop anything
    /// but 255).
    pub fn set_hop_limit(&self, hops: u8) -> io::Result<()> {
        match self.version {
            IcmpVersion::V4 => self.sock.set_ttl_v4(hops as u32),
            IcmpVersion::V6 => self.sock.set_unicast_hops_v6(hops as u32),
        }
    }

    /// Bind to a local address (optional).
    pub fn bind(&self, addr: IpAddr) -> io::Result<()> {
        self.sock.bind(&SockAddr::from(SocketAddr::new(addr, 0)))
    }

    /// Timeout for [`IcmpSocket::recv`].
    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.sock.set_read_timeout(t)
    }

    /// Send one CXTP message to `dst`.
    pub fn send_to(&self, dst: IpAddr, message: &[u8]) -> io::Result<()> {
        let pkt = encapsulate(self.version, message);
        self.sock
            .send_to(&pkt, &SockAddr::from(SocketAddr::new(dst, 0)))?;
        Ok(())
    }

    /// Receive the next CXTP message that arrived with hop limit 255. Other
    /// ICMP traffic is skipped; hop-limit violations are counted in
    /// `rejected_hop_limit`. Times out per [`IcmpSocket::set_read_timeout`].
    pub fn recv(&mut self) -> io::Result<IcmpReceived> {
        loop {
            let (from, hop_limit, pkt) = self.recv_raw()?;
            match decapsulate(self.version, pkt) {
                Ok(message) if hop_limit == HOP_LIMIT => {
                    return Ok(IcmpReceived {
                        from,
                        hop_limit,
                        message,
                    })
                }
                Ok(_) => self.rejected_hop_limit += 1,
                Err(IcmpError::NotCxtp { .. }) | Err(_) => {}
            }
        }
    }

    fn recv_raw(&self) -> io::Result<(IpAddr, u8, Bytes)> {
        let mut buf = vec![MaybeUninit::new(0u8); 65_536];
        let mut control = [MaybeUninit::new(0u8); 64];
        let mut addr = SockAddr::from(SocketAddr::new(IpAddr::from([0u8; 16]), 0));
        let (n, clen) = {
            let mut bufs = [MaybeUninitSlice::new(&mut buf)];
            let mut msg = MsgHdrMut::new()
                .with_addr(&mut addr)
                .with_buffers(&mut bufs)
                .with_control(&mut control);
            let n = self.sock.recvmsg(&mut msg, 0)?;
            (n, msg.control_len())
        };
        let data = init(&buf[..n]);
        let control = init(&control[..clen.min(64)]);
        match self.version {
            IcmpVersion::V4 => {
                // Raw IPv4 sockets deliver the IP header.
                let ihl = data.first().map_or(0, |b| (b & 0x0f) as usize * 4);
                if ihl < 20 || data.len() < ihl {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "short IPv4 packet",
                    ));
                }
                let ttl = data[8];
                let src = IpAddr::from([data[12], data[13], data[14], data[15]]);
                Ok((src, ttl, Bytes::from(data).slice(ihl..)))
            }
            IcmpVersion::V6 => {
                let from = addr.as_socket().map_or(IpAddr::from([0u8; 16]), |s| s.ip());
                Ok((
                    from,
                    hop_limit_from_cmsg(&control).unwrap_or(0),
                    Bytes::from(data),
                ))
            }
        }
    }
}

/// Copy bytes out of a buffer that was fully initialised before the call.
fn init(buf: &[MaybeUninit<u8>]) -> Vec<u8> {
    // SAFETY: every element was created with `MaybeUninit::new(0)` and the
    // kernel only ever writes initialised bytes into it.
    #[allow(unsafe_code)]
    buf.iter().map(|b| unsafe { b.assume_init() }).collect()
}

/// Find IPV6_HOPLIMIT in Linux `cmsghdr`s (len: usize, level: i32, type: i32,
/// then data aligned to the word size).
fn hop_limit_from_cmsg(control: &[u8]) -> Option<u8> {
    const W: usize = std::mem::size_of::<usize>();
    let hdr = (W + 8 + W - 1) & !(W - 1);
    let mut off = 0;
    while off + hdr <= control.len() {
        let len = usize::from_ne_bytes(control[off..off + W].try_into().ok()?);
        let level = i32::from_ne_bytes(control[off + W..off + W + 4].try_into().ok()?);
        let ty = i32::from_ne_bytes(control[off + W + 4..off + W + 8].try_into().ok()?);
        if len < hdr || off + len > control.len() {
            return None;
        }
        if level == IPPROTO_IPV6 && ty == IPV6_HOPLIMIT && len >= hdr + 4 {
            let v = i32::from_ne_bytes(control[off + hdr..off + hdr + 4].try_into().ok()?);
            return u8::try_from(v).ok();
        }
        off += (len + W - 1) & !(W - 1);
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn cmsg_parser_finds_the_hop_limit() {
        let w = std::mem::size_of::<usize>();
        let mut c = vec![];
        c.extend_from_slice(&(w + 8 + 4).to_ne_bytes());
        c.extend_from_slice(&41i32.to_ne_bytes());
        c.extend_from_slice(&52i32.to_ne_bytes());
        c.extend_from_slice(&255i32.to_ne_bytes());
        c.resize(c.len() + 4, 0);
        assert_eq!(super::hop_limit_from_cmsg(&c), Some(255));
        assert_eq!(super::hop_limit_from_cmsg(&c[..10]), None);
        c[w] = 0; // other level
        assert_eq!(super::hop_limit_from_cmsg(&c), None);
    }
}
