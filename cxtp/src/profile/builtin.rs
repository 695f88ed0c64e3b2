//! Built-in feature profiles.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use bytes::{BufMut, Bytes, BytesMut};

use super::{fpt, FeatureProfile, ProfileError};
use crate::wire::{AddressFamily, Cursor, DecodeError};

fn map(profile: &'static str) -> impl Fn(DecodeError) -> ProfileError {
    move |e| match e {
        DecodeError::Truncated { field, .. } => ProfileError::Truncated { profile, field },
        _ => ProfileError::Invalid {
            profile,
            field: "data",
        },
    }
}

/// FPT 0x0001, the IANA IPv6 Multicast Listener Context (RFC 4067
/// Appendix B): the 64-bit subnet prefix of the nAR interface and one
/// subscribed IPv6 multicast group. One context per group; 24 data octets,
/// a 32-octet CDB (Length 4).
///
/// ```
/// use cxtp::profile::{FeatureProfile, MulticastListenerContext};
/// let c = MulticastListenerContext {
///     prefix: [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0],
///     group: "ff05::1:3".parse().unwrap(),
/// };
/// let (pv, data) = c.encode();
/// assert_eq!((pv, data.len()), (None, 24));
/// assert_eq!(MulticastListenerContext::decode(None, &data).unwrap(), c);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MulticastListenerContext {
    /// Subnet prefix (first 64 bits).
    pub prefix: [u8; 8],
    /// Subscribed multicast address.
    pub group: Ipv6Addr,
}

impl FeatureProfile for MulticastListenerContext {
    const NAME: &'static str = "IPv6 Multicast Listener Context";
    const DEFAULT_FPT: u16 = fpt::IPV6_MULTICAST_LISTENER;
    fn encode(&self) -> (Option<u32>, Bytes) {
        let mut b = BytesMut::with_capacity(24);
        b.put_slice(&self.prefix);
        b.put_slice(&self.group.octets());
        (None, b.freeze())
    }
    fn decode(_pv: Option<u32>, data: &Bytes) -> Result<Self, ProfileError> {
        let mut c = Cursor::new(data, Self::NAME);
        let m = map(Self::NAME);
        let prefix = c.array::<8>("subnet prefix").map_err(&m)?;
        let group = Ipv6Addr::from(c.array::<16>("multicast address").map_err(&m)?);
        if !group.is_multicast() {
            return Err(ProfileError::Invalid {
                profile: Self::NAME,
                field: "multicast address",
            });
        }
        Ok(Self { prefix, group })
    }
}

/// Application service context (our FPT [`fpt::APP_SERVICE`]): a service
/// identifier and the service's opaque per-UE state (the Service Mobility
/// API export). Layout: `id_len u16 | reserved u16 | state_len u32 | id
/// (UTF-8) | state`. The state is a zero-copy slice of the received data.
///
/// ```
/// use bytes::Bytes;
/// use cxtp::profile::{AppServiceContext, FeatureProfile};
/// let c = AppServiceContext { service_id: "video-cache".into(), state: Bytes::from_static(b"{}") };
/// let (_, data) = c.encode();
/// assert_eq!(AppServiceContext::decode(None, &data).unwrap(), c);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppServiceContext {
    /// Service identifier.
    pub service_id: String,
    /// Opaque state.
    pub state: Bytes,
}

impl FeatureProfile for AppServiceContext {
    const NAME: &'static str = "application service context";
    const DEFAULT_FPT: u16 = fpt::APP_SERVICE;
    fn encode(&self) -> (Option<u32>, Bytes) {
        let id = self.service_id.as_bytes();
        let id = &id[..id.len().min(u16::MAX as usize)];
        let mut b = BytesMut::with_capacity(8 + id.len() + self.state.len());
        b.put_u16(id.len() as u16);
        b.put_u16(0);
        b.put_u32(self.state.len() as u32);
        b.put_slice(id);
        b.put_slice(&self.state);
        (None, b.freeze())
    }
    fn decode(_pv: Option<u32>, data: &Bytes) -> Result<Self, ProfileError> {
        let m = map(Self::NAME);
        let mut c = Cursor::new(data, Self::NAME);
        let id_len = c.u16("service id length").map_err(&m)? as usize;
        c.u16("reserved").map_err(&m)?;
        let state_len = c.u32("state length").map_err(&m)? as usize;
        let id = c.take(id_len, "service id").map_err(&m)?;
        let state = c.take(state_len, "state").map_err(&m)?;
        let service_id = std::str::from_utf8(id)
            .map_err(|_| ProfileError::Invalid {
                profile: Self::NAME,
                field: "service id",
            })?
            .to_string();
        Ok(Self {
            service_id,
            state: data.slice_ref(state),
        })
    }
}

/// Everything needed to rebuild one TCP connection with Linux `TCP_REPAIR`
/// (our FPT [`fpt::TCP_SESSION`]).
///
/// Sequence numbers follow the kernel's repair interface (as CRIU uses it):
/// `send_seq` is `TCP_QUEUE_SEQ` read on `TCP_SEND_QUEUE` (the sequence
/// number after the last byte written, `write_seq`), `recv_seq` the one
/// read on `TCP_RECV_QUEUE` (`rcv_nxt`). The send queue holds
/// `unacked` followed by `unsent` octets ending at `send_seq`; on restore
/// set `TCP_QUEUE_SEQ` to `send_seq - unacked.len() - unsent.len()`.
/// `timestamp` is the `TCP_TIMESTAMP` value (clock plus offset), and the
/// five window values are `struct tcp_repair_window`.
///
/// Layout (big-endian): `version u8 (1) | family u8 (4/6) | options u8
/// (0x80 SACK, 0x40 timestamps, 0x20 window scaling) | reserved u8 | local
/// addr | remote addr | local port u16 | remote port u16 | send_seq u32 |
/// recv_seq u32 | mss u16 | snd_wscale u8 | rcv_wscale u8 | timestamp u32 |
/// snd_wl1 u32 | snd_wnd u32 | max_window u32 | rcv_wnd u32 | rcv_wup u32 |
/// unacked_len u32 | unsent_len u32 | recv_len u32 | the three queues`.
/// The queues are zero-copy slices on decode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpSessionContext {
    /// Local address and port (the UE-facing server side).
    pub local: SocketAddr,
    /// Remote address and port.
    pub remote: SocketAddr,
    /// `write_seq` (TCP_QUEUE_SEQ of the send queue).
    pub send_seq: u32,
    /// `rcv_nxt` (TCP_QUEUE_SEQ of the receive queue).
    pub recv_seq: u32,
    /// TCPOPT_MAXSEG.
    pub mss: u16,
    /// Send window scale (TCPOPT_WINDOW `snd_wscale`).
    pub snd_wscale: u8,
    /// Receive window scale (TCPOPT_WINDOW `rcv_wscale`).
    pub rcv_wscale: u8,
    /// SACK permitted.
    pub sack: bool,
    /// Timestamps enabled.
    pub timestamps: bool,
    /// Window scaling negotiated.
    pub window_scaling: bool,
    /// TCP_TIMESTAMP value.
    pub timestamp: u32,
    /// tcp_repair_window.snd_wl1.
    pub snd_wl1: u32,
    /// tcp_repair_window.snd_wnd.
    pub snd_wnd: u32,
    /// tcp_repair_window.max_window.
    pub max_window: u32,
    /// tcp_repair_window.rcv_wnd.
    pub rcv_wnd: u32,
    /// tcp_repair_window.rcv_wup.
    pub rcv_wup: u32,
    /// Sent but unacknowledged octets.
    pub unacked: Bytes,
    /// Queued but not yet sent octets.
    pub unsent: Bytes,
    /// Received octets the application has not read.
    pub recv_queue: Bytes,
}

impl FeatureProfile for TcpSessionContext {
    const NAME: &'static str = "TCP session context";
    const DEFAULT_FPT: u16 = fpt::TCP_SESSION;
    fn encode(&self) -> (Option<u32>, Bytes) {
        let alen = if self.local.is_ipv4() { 4 } else { 16 };
        let mut b = BytesMut::with_capacity(
            4 + 2 * alen + 56 + self.unacked.len() + self.unsent.len() + self.recv_queue.len(),
        );
        b.put_u8(1);
        b.put_u8(if self.local.is_ipv4() { 4 } else { 6 });
        b.put_u8(
            if self.sack { 0x80 } else { 0 }
                | if self.timestamps { 0x40 } else { 0 }
                | if self.window_scaling { 0x20 } else { 0 },
        );
        b.put_u8(0);
        let put = |b: &mut BytesMut, a: IpAddr| match a {
            IpAddr::V4(a) => b.put_slice(&a.octets()),
            IpAddr::V6(a) => b.put_slice(&a.octets()),
        };
        put(&mut b, self.local.ip());
        // A remote of the other family is mapped into the local family.
        put(
            &mut b,
            match (self.local.ip(), self.remote.ip()) {
                (IpAddr::V4(_), IpAddr::V6(r)) => IpAddr::V4(
                    r.to_ipv4_mapped()
                        .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
                ),
                (IpAddr::V6(_), IpAddr::V4(r)) => IpAddr::V6(r.to_ipv6_mapped()),
                (_, r) => r,
            },
        );
        b.put_u16(self.local.port());
        b.put_u16(self.remote.port());
        b.put_u32(self.send_seq);
        b.put_u32(self.recv_seq);
        b.put_u16(self.mss);
        b.put_u8(self.snd_wscale);
        b.put_u8(self.rcv_wscale);
        for v in [
            self.timestamp,
            self.snd_wl1,
            self.snd_wnd,
            self.max_window,
            self.rcv_wnd,
            self.rcv_wup,
            self.unacked.len() as u32,
            self.unsent.len() as u32,
            self.recv_queue.len() as u32,
        ] {
            b.put_u32(v);
        }
        b.put_slice(&self.unacked);
        b.put_slice(&self.unsent);
        b.put_slice(&self.recv_queue);
        (None, b.freeze())
    }
    fn decode(_pv: Option<u32>, data: &Bytes) -> Result<Self, ProfileError> {
        let m = map(Self::NAME);
        let inv = |field| ProfileError::Invalid {
            profile: Self::NAME,
            field,
        };
        let mut c = Cursor::new(data, Self::NAME);
        if c.u8("version").map_err(&m)? != 1 {
            return Err(inv("version"));
        }
        let fam = match c.u8("family").map_err(&m)? {
            4 => AddressFamily::Ipv4,
            6 => AddressFamily::Ipv6,
            _ => return Err(inv("family")),
        };
        let opts = c.u8("options").map_err(&m)?;
        c.u8("reserved").map_err(&m)?;
        let lip = c.addr(fam, "local address").map_err(&m)?;
        let rip = c.addr(fam, "remote address").map_err(&m)?;
        let lport = c.u16("local port").map_err(&m)?;
        let rport = c.u16("remote port").map_err(&m)?;
        let send_seq = c.u32("send sequence").map_err(&m)?;
        let recv_seq = c.u32("receive sequence").map_err(&m)?;
        let mss = c.u16("MSS").map_err(&m)?;
        let snd_wscale = c.u8("snd_wscale").map_err(&m)?;
        let rcv_wscale = c.u8("rcv_wscale").map_err(&m)?;
        let mut w = [0u32; 9];
        const NAMES: [&str; 9] = [
            "timestamp",
            "snd_wl1",
            "snd_wnd",
            "max_window",
            "rcv_wnd",
            "rcv_wup",
            "unacked length",
            "unsent length",
            "receive queue length",
        ];
        for (v, n) in w.iter_mut().zip(NAMES) {
            *v = c.u32(n).map_err(&m)?;
        }
        let unacked = c.take(w[6] as usize, "unacked data").map_err(&m)?;
        let unsent = c.take(w[7] as usize, "unsent data").map_err(&m)?;
        let recv = c.take(w[8] as usize, "receive queue").map_err(&m)?;
        Ok(Self {
            local: SocketAddr::new(lip, lport),
            remote: SocketAddr::new(rip, rport),
            send_seq,
            recv_seq,
            mss,
            snd_wscale,
            rcv_wscale,
            sack: opts & 0x80 != 0,
            timestamps: opts & 0x40 != 0,
            window_scaling: opts & 0x20 != 0,
            timestamp: w[0],
            snd_wl1: w[1],
            snd_wnd: w[2],
            max_window: w[3],
            rcv_wnd: w[4],
            rcv_wup: w[5],
            unacked: data.slice_ref(unacked),
            unsent: data.slice_ref(unsent),
            recv_queue: data.slice_ref(recv),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Context, Decoded, ProfileRegistry};
    use super::*;
    use proptest::prelude::*;

    fn tcp_strategy() -> impl Strategy<Value = TcpSessionContext> {
        (
            prop_oneof![
                (any::<[u8; 4]>(), any::<[u8; 4]>())
                    .prop_map(|(a, b)| (IpAddr::from(a), IpAddr::from(b))),
                (any::<[u8; 16]>(), any::<[u8; 16]>())
                    .prop_map(|(a, b)| (IpAddr::from(a), IpAddr::from(b))),
            ],
            any::<(u16, u16, u32, u32, u16, u8, u8)>(),
            any::<(bool, bool, bool)>(),
            any::<[u32; 6]>(),
            proptest::collection::vec(any::<u8>(), 0..50),
            proptest::collection::vec(any::<u8>(), 0..50),
            proptest::collection::vec(any::<u8>(), 0..50),
        )
            .prop_map(
                |((l, r), (lp, rp, ss, rs, mss, sw, rw), (sack, ts, ws), w, a, b, c)| {
                    TcpSessionContext {
                        local: SocketAddr::new(l, lp),
                        remote: SocketAddr::new(r, rp),
                        send_seq: ss,
                        recv_seq: rs,
                        mss,
                        snd_wscale: sw,
                        rcv_wscale: rw,
                        sack,
                        timestamps: ts,
                        window_scaling: ws,
                        timestamp: w[0],
                        snd_wl1: w[1],
                        snd_wnd: w[2],
                        max_window: w[3],
                        rcv_wnd: w[4],
                        rcv_wup: w[5],
                        unacked: a.into(),
                        unsent: b.into(),
                        recv_queue: c.into(),
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn tcp_round_trip(t in tcp_strategy(), pad in 0usize..8) {
            let (pv, data) = t.encode();
            let mut padded = data.to_vec();
            padded.resize(data.len() + pad, 0);
            prop_assert_eq!(TcpSessionContext::decode(pv, &Bytes::from(padded)).unwrap(), t);
        }

        #[test]
        fn app_round_trip(id in "[a-z0-9.-]{0,40}", state in proptest::collection::vec(any::<u8>(), 0..300)) {
            let a = AppServiceContext { service_id: id, state: state.into() };
            let (pv, data) = a.encode();
            prop_assert_eq!(AppServiceContext::decode(pv, &data).unwrap(), a);
        }

        #[test]
        fn profile_decoders_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let reg = ProfileRegistry::with_builtins();
            for f in [fpt::IPV6_MULTICAST_LISTENER, fpt::APP_SERVICE, fpt::TCP_SESSION] {
                let _ = reg.decode(&Context::new(f, Bytes::from(data.clone())));
            }
        }
    }

    #[test]
    fn mld_golden_block_from_vector() {
        // Data of the CDB in conformance/vectors/cxtp/ctd_ipv4.json (with padding).
        let data = Bytes::from(
            hex::decode("20010db800010000ff05000000000000000000000001000300000000").unwrap(),
        );
        let m = MulticastListenerContext::decode(None, &data).unwrap();
        assert_eq!(m.group, "ff05::1:3".parse::<Ipv6Addr>().unwrap());
        assert_eq!(m.prefix, [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0]);
        let bad =
            Bytes::from(hex::decode("20010db80001000020010db8000000000000000000000001").unwrap());
        assert!(matches!(
            MulticastListenerContext::decode(None, &bad),
            Err(ProfileError::Invalid {
                field: "multicast address",
                ..
            })
        ));
    }

    #[test]
    fn tcp_queues_are_slices_and_truncation_is_typed() {
        let t = TcpSessionContext {
            local: "10.0.0.1:443".parse().unwrap(),
            remote: "10.0.0.2:50000".parse().unwrap(),
            send_seq: 1000,
            recv_seq: 2000,
            mss: 1460,
            snd_wscale: 7,
            rcv_wscale: 7,
            sack: true,
            timestamps: true,
            window_scaling: true,
            timestamp: 123,
            snd_wl1: 1,
            snd_wnd: 2,
            max_window: 3,
            rcv_wnd: 4,
            rcv_wup: 5,
            unacked: Bytes::from_static(b"hello"),
            unsent: Bytes::from_static(b"world"),
            recv_queue: Bytes::from_static(b"!"),
        };
        let (_, data) = t.encode();
        let d = TcpSessionContext::decode(None, &data).unwrap();
        let base = data.as_ptr() as usize;
        let p = d.unsent.as_ptr() as usize;
        assert!(p > base && p < base + data.len());
        let cut = data.slice(..data.len() - 1);
        assert_eq!(
            TcpSessionContext::decode(None, &cut),
            Err(ProfileError::Truncated {
                profile: TcpSessionContext::NAME,
                field: "receive queue"
            })
        );
    }

    #[test]
    fn registry_reports_unknown_and_malformed_per_fpt() {
        let mut reg = ProfileRegistry::with_builtins();
        let mld = reg
            .encode(&MulticastListenerContext {
                prefix: [0; 8],
                group: "ff02::16".parse().unwrap(),
            })
            .unwrap();
        let (_, s, entries) = reg.receive(std::slice::from_ref(&mld));
        assert!(s && entries.is_empty());
        let contexts = [
            mld.clone(),
            Context::new(0x1234, Bytes::from_static(b"opaque")),
            Context::new(fpt::TCP_SESSION, Bytes::from_static(b"\x01")),
            mld,
        ];
        let (decoded, s, entries) = reg.receive(&contexts);
        assert!(!s);
        assert!(matches!(&decoded[1], Decoded::Unknown(c) if &c.data[..] == b"opaque"));
        let e: Vec<_> = entries.iter().map(|e| (e.fpt, e.status)).collect();
        assert_eq!(e, vec![(1, 0), (0x1234, 0x80), (fpt::TCP_SESSION, 0x81)]);
        // FPTs are configurable: move the TCP profile.
        reg.register::<TcpSessionContext>(0xFF10);
        assert!(!reg.is_known(fpt::TCP_SESSION));
        assert_eq!(reg.fpt_of::<TcpSessionContext>(), Some(0xFF10));
    }
}
