//! MN–AR transport framing (RFC 4067 §3.2, RFC 4065 §3–4, §8): CTAR and CTAA
//! travel in ICMP "Experimental Mobility" messages — type 41 (ICMPv4) or 150
//! (ICMPv6), Code 0, Subtype 1 (CXTP), 3 reserved octets — sent with IP TTL
//! / Hop Limit 255, which receivers check (as Neighbor Discovery does).
//!
//! This module is sans-IO ([`encapsulate`], [`decapsulate`], checksums); the
//! raw-socket driver is the `socket` module (cargo feature `icmp`).
//!
//! ```
//! use cxtp::icmp::{decapsulate, encapsulate, IcmpVersion};
//! let ctc = [0x26, 0x80, 0x00, 0x08, 192, 0, 2, 1];
//! let pkt = encapsulate(IcmpVersion::V4, &ctc);
//! assert_eq!(&pkt[..2], &[41, 0]);
//! assert_eq!(pkt[4], 1); // subtype CXTP
//! assert_eq!(&decapsulate(IcmpVersion::V4, pkt).unwrap()[..], &ctc[..]);
//! ```

use std::net::Ipv6Addr;

use bytes::{BufMut, Bytes, BytesMut};

/// ICMPv4 type "Experimental Mobility Protocols".
pub const ICMPV4_TYPE: u8 = 41;
/// ICMPv6 type "Experimental Mobility Protocols".
pub const ICMPV6_TYPE: u8 = 150;
/// Code used by CXTP.
pub const CODE: u8 = 0;
/// Subtype of CARD (RFC 4066).
pub const SUBTYPE_CARD: u8 = 0;
/// Subtype of CXTP.
pub const SUBTYPE_CXTP: u8 = 1;
/// Required IP TTL / Hop Limit.
pub const HOP_LIMIT: u8 = 255;
/// ICMP header plus subtype word.
pub const PREFIX_LEN: usize = 8;

/// ICMP flavour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcmpVersion {
    /// ICMP for IPv4 (type 41).
    V4,
    /// ICMPv6 (type 150).
    V6,
}

impl IcmpVersion {
    /// The ICMP type.
    pub fn icmp_type(self) -> u8 {
        match self {
            IcmpVersion::V4 => ICMPV4_TYPE,
            IcmpVersion::V6 => ICMPV6_TYPE,
        }
    }
}

/// Errors of [`decapsulate`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IcmpError {
    /// Shorter than the 8-octet prefix.
    #[error("ICMP: {0} octets, shorter than the 8-octet Experimental Mobility prefix")]
    Truncated(usize),
    /// Another ICMP type or subtype.
    #[error("ICMP type {icmp_type} subtype {subtype} is not CXTP")]
    NotCxtp {
        /// ICMP type.
        icmp_type: u8,
        /// Experimental Mobility subtype.
        subtype: u8,
    },
    /// The checksum does not verify.
    #[error("ICMP checksum does not verify")]
    BadChecksum,
    /// Received with a TTL / Hop Limit other than 255.
    #[error("received with hop limit {0}, not 255")]
    HopLimit(u8),
}

fn sum(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    if let [last] = chunks.remainder() {
        acc += (*last as u32) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// The Internet checksum (RFC 1071) of an ICMPv4 message.
pub fn checksum_v4(icmp: &[u8]) -> u16 {
    fold(sum(0, icmp))
}

/// The ICMPv6 checksum, over the IPv6 pseudo-header and the message.
pub fn checksum_v6(src: &Ipv6Addr, dst: &Ipv6Addr, icmp: &[u8]) -> u16 {
    let mut acc = sum(0, &src.octets());
    acc = sum(acc, &dst.octets());
    acc = sum(acc, &(icmp.len() as u32).to_be_bytes());
    acc = sum(acc, &[0, 0, 0, 58]);
    fold(sum(acc, icmp))
}

/// Wrap one CXTP message (CTAR or CTAA, header included) into an ICMP
/// Experimental Mobility message. For ICMPv4 the checksum is filled in; for
/// ICMPv6 it is left 0 because raw ICMPv6 sockets compute it (use
/// [`set_checksum_v6`] when building packets by hand).
pub fn encapsulate(version: IcmpVersion, msg: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(PREFIX_LEN + msg.len());
    b.put_u8(version.icmp_type());
    b.put_u8(CODE);
    b.put_u16(0);
    b.put_u8(SUBTYPE_CXTP);
    b.put_bytes(0, 3);
    b.put_slice(msg);
    if version == IcmpVersion::V4 {
        let c = checksum_v4(&b);
        b[2..4].copy_from_slice(&c.to_be_bytes());
    }
    b.freeze()
}

/// Fill in the ICMPv6 checksum of a packet built by [`encapsulate`].
pub fn set_checksum_v6(pkt: &mut [u8], src: &Ipv6Addr, dst: &Ipv6Addr) {
    if pkt.len() >= 4 {
        pkt[2..4].copy_from_slice(&[0, 0]);
        let c = checksum_v6(src, dst, pkt);
        pkt[2..4].copy_from_slice(&c.to_be_bytes());
    }
}

/// Check type, subtype and (ICMPv4) checksum, and return the CXTP message as
/// a zero-copy slice of `pkt`. ICMPv6 checksums are verified by the kernel
/// for raw sockets (see [`checksum_v6`] to check one by hand). The Code is
/// not checked (RFC 4065 leaves it to the protocol; CXTP sends 0).
pub fn decapsulate(version: IcmpVersion, pkt: Bytes) -> Result<Bytes, IcmpError> {
    if pkt.len() < PREFIX_LEN {
        return Err(IcmpError::Truncated(pkt.len()));
    }
    if pkt[0] != version.icmp_type() || pkt[4] != SUBTYPE_CXTP {
        return Err(IcmpError::NotCxtp {
            icmp_type: pkt[0],
            subtype: pkt[4],
        });
    }
    if version == IcmpVersion::V4 && checksum_v4(&pkt) != 0 {
        return Err(IcmpError::BadChecksum);
    }
    Ok(pkt.slice(PREFIX_LEN..))
}

#[cfg(feature = "icmp")]
pub mod socket;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_checksum() {
        // ICMPv4 echo request example: 08 00 [f7 fd] 00 01 00 01
        assert_eq!(checksum_v4(&[8, 0, 0, 0, 0, 1, 0, 1]), 0xf7fd);
    }

    #[test]
    fn v6_checksum_verifies_over_the_pseudo_header() {
        let (s, d): (Ipv6Addr, Ipv6Addr) = ("fe80::1".parse().unwrap(), "fe80::2".parse().unwrap());
        let mut pkt = encapsulate(IcmpVersion::V6, &[0x22, 0, 0, 20]).to_vec();
        set_checksum_v6(&mut pkt, &s, &d);
        assert_eq!(checksum_v6(&s, &d, &pkt), 0);
        assert_ne!(checksum_v6(&d, &"fe80::3".parse().unwrap(), &pkt), 0);
    }

    #[test]
    fn foreign_and_broken_packets_are_refused() {
        let mut p = encapsulate(IcmpVersion::V4, &[1, 2, 3, 4]).to_vec();
        assert_eq!(
            decapsulate(IcmpVersion::V6, Bytes::from(p.clone())),
            Err(IcmpError::NotCxtp {
                icmp_type: 41,
                subtype: 1
            })
        );
        p[4] = SUBTYPE_CARD;
        assert!(matches!(
            decapsulate(IcmpVersion::V4, Bytes::from(p.clone())),
            Err(IcmpError::NotCxtp { subtype: 0, .. })
        ));
        p[4] = SUBTYPE_CXTP;
        p[9] ^= 0xff;
        assert_eq!(
            decapsulate(IcmpVersion::V4, Bytes::from(p)),
            Err(IcmpError::BadChecksum)
        );
        assert_eq!(
            decapsulate(IcmpVersion::V4, Bytes::from_static(&[41, 0, 0])),
            Err(IcmpError::Truncated(3))
        );
    }

    proptest! {
        #[test]
        fn round_trip(msg in proptest::collection::vec(any::<u8>(), 0..300), v6 in any::<bool>()) {
            let v = if v6 { IcmpVersion::V6 } else { IcmpVersion::V4 };
            let pkt = encapsulate(v, &msg);
            prop_assert_eq!(&decapsulate(v, pkt).unwrap()[..], &msg[..]);
        }

        #[test]
        fn arbitrary_packets_never_panic(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decapsulate(IcmpVersion::V4, Bytes::from(data.clone()));
            let _ = decapsulate(IcmpVersion::V6, Bytes::from(data));
        }
    }
}
