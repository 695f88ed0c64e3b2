//! Wire format of RFC 4067: zero-copy views over [`Bytes`](bytes::Bytes) and owned `Repr`
//! types that emit into [`BytesMut`](bytes::BytesMut).
//!
//! * [`MessageView::parse`] validates a whole message up front (header, every
//!   length, every Context Data Block boundary) and then hands out views whose
//!   variable parts are [`Bytes`](bytes::Bytes) slices of the input: nothing proportional to
//!   the context size is copied or allocated. CDBs, request blocks and status
//!   entries are iterated lazily over the validated body.
//! * [`MessageRepr`] and the per-message `*Repr` types are the owned builders;
//!   `MessageView::to_repr` and `MessageRepr::emit` are symmetric.
//! * Naming: [`MessageView`] is the parsed (view) message and
//!   [`MessageRepr`] the owned one. The parsed message is not called
//!   `Message` because in `mihf::wire` that name is the owned message.
//!
//! Layouts follow the figures of RFC 4067 §2.5.
//! Interpretations where the RFC is unclear:
//!
//! * the header `Length` counts the whole message including the 4-octet
//!   header and must equal the number of octets handed to [`MessageView::parse`];
//! * the key block (Algorithm, Key Length, Key) is present exactly when the
//!   type is PCTD (0x4);
//! * header-only request blocks in CTAR/CT-Req are emitted as 4 octets with
//!   `Length = 0`, and decoded leniently (`Length = 1` with 4 padding octets
//!   is accepted and reproduced exactly, see [`RequestBlock`]).
//!
//! ```
//! use bytes::Bytes;
//! use cxtp::wire::{MessageView, MessageType};
//!
//! // The IPv4 CTAR golden vector (conformance/vectors/cxtp/ctar_ipv4.json):
//! // A=1, no request blocks.
//! let raw = Bytes::from_static(&[
//!     0x21, 0xc0, 0x00, 0x14, 192, 0, 2, 1, 192, 0, 2, 254,
//!     0x12, 0x34, 0x56, 0x78, 0xfb, 0xab, 0x93, 0xdc,
//! ]);
//! let msg = MessageView::parse(raw.clone()).unwrap();
//! assert_eq!(msg.message_type(), MessageType::Ctar);
//! let MessageView::Ctar(ctar) = &msg else { unreachable!() };
//! assert!(ctar.ack);
//! assert_eq!(ctar.seq, 0x1234_5678);
//! assert_eq!(ctar.requests().count(), 0);
//! // emit(to_repr(parse(x))) == x
//! assert_eq!(msg.to_repr().to_bytes().unwrap(), raw);
//! ```

mod cdb;
mod message;
#[cfg(test)]
mod tests;

pub use cdb::{
    presence_bit, ContextDataBlock, ContextDataBlockRef, ContextDataBlockRefs,
    ContextDataBlockRepr, ContextDataBlocks, RequestBlock, RequestBlocks, StatusEntries,
    StatusEntry,
};
pub use message::{
    CtReq, CtReqRepr, Ctaa, CtaaRepr, Ctar, CtarRepr, Ctc, CtcRepr, Ctd, CtdRepr, Ctdr, CtdrRepr,
    KeyBlock, KeyBlockRepr, MessageRepr, MessageView,
};

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::BufMut;
use nom::number::complete::{be_u16, be_u32, be_u8};
use nom::Parser;

/// Protocol version carried in bits 0–2 of every message.
pub const VERSION: u8 = 1;
/// Size of the common header.
pub const HEADER_LEN: usize = 4;
/// Largest message the 16-bit Length field can describe.
pub const MAX_MESSAGE_LEN: usize = u16::MAX as usize;
/// Largest Context Data Block: 255 units of 8 octets.
pub const MAX_CDB_LEN: usize = 255 * 8;
/// Token algorithm code for HMAC-SHA1 (IANA, RFC 4065 §7).
pub const ALGORITHM_HMAC_SHA1: u16 = 1;

/// CXTP message type codes (RFC 4067 §2.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    /// Context Transfer Activate Request (MN → AR).
    Ctar = 1,
    /// Context Transfer Activate Acknowledge (AR → MN).
    Ctaa = 2,
    /// Context Transfer Data (pAR → nAR).
    Ctd = 3,
    /// Predictive Context Transfer Data (pAR → nAR), carries the key block.
    Pctd = 4,
    /// Context Transfer Data Reply (nAR → pAR).
    Ctdr = 5,
    /// Context Transfer Cancel (nAR → pAR).
    Ctc = 6,
    /// Context Transfer Request (nAR → pAR).
    CtReq = 7,
}

impl MessageType {
    /// Map a 5-bit type code.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => Self::Ctar,
            2 => Self::Ctaa,
            3 => Self::Ctd,
            4 => Self::Pctd,
            5 => Self::Ctdr,
            6 => Self::Ctc,
            7 => Self::CtReq,
            _ => return None,
        })
    }

    /// The numeric code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The RFC's name for the message ("CTAR", "CT-Req", ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Ctar => "CTAR",
            Self::Ctaa => "CTAA",
            Self::Ctd => "CTD",
            Self::Pctd => "PCTD",
            Self::Ctdr => "CTDR",
            Self::Ctc => "CTC",
            Self::CtReq => "CT-Req",
        }
    }

    /// Parse a name as printed by [`MessageType::name`] (case-insensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::Ctar,
            Self::Ctaa,
            Self::Ctd,
            Self::Pctd,
            Self::Ctdr,
            Self::Ctc,
            Self::CtReq,
        ]
        .into_iter()
        .find(|t| {
            t.name().eq_ignore_ascii_case(name)
                || (name.eq_ignore_ascii_case("CTREQ") && *t == Self::CtReq)
        })
    }

    /// Whether header bit 9 is meaningful (A for CTAR/CTD/PCTD, S for CTDR).
    pub fn has_flag(self) -> bool {
        matches!(self, Self::Ctar | Self::Ctd | Self::Pctd | Self::Ctdr)
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Address family of a message, chosen by the header `V` flag (1 = IPv4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddressFamily {
    /// `V = 1`: every address is 4 octets.
    Ipv4,
    /// `V = 0`: every address is 16 octets.
    Ipv6,
}

impl AddressFamily {
    /// Family of an address.
    pub fn of(addr: &IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => Self::Ipv4,
            IpAddr::V6(_) => Self::Ipv6,
        }
    }
    /// Octets per address.
    pub fn addr_len(self) -> usize {
        match self {
            Self::Ipv4 => 4,
            Self::Ipv6 => 16,
        }
    }
    /// Value of the header `V` flag.
    pub fn v_flag(self) -> bool {
        self == Self::Ipv4
    }
    fn from_v_flag(v: bool) -> Self {
        if v {
            Self::Ipv4
        } else {
            Self::Ipv6
        }
    }
}

/// The 32-bit MN Authorization Token (RFC 4067 §2.5.1). All zero in a CT-Req
/// means "nAR has not seen the CTAR yet".
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Token(pub [u8; 4]);

impl Token {
    /// The all-zero token.
    pub const ZERO: Token = Token([0; 4]);
    /// Whether this is the all-zero token.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 4]
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Token({:02x}{:02x}{:02x}{:02x})",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

/// The common 4-octet header, as read from the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Message type.
    pub msg_type: MessageType,
    /// Address family given by the `V` flag.
    pub family: AddressFamily,
    /// Bit 9: `A` (CTAR, CTD, PCTD) or `S` (CTDR); always false for the others.
    pub flag: bool,
    /// Total message length in octets, header included.
    pub length: u16,
}

impl Header {
    /// Parse the first 4 octets. Checks version and type but not the length
    /// against anything (the framing layer uses this to find message ends).
    pub fn parse(input: &[u8]) -> Result<Header, DecodeError> {
        let mut c = Cursor::new(input, "CXTP header");
        let b0 = c.u8("version/type")?;
        let b1 = c.u8("flags")?;
        let length = c.u16("Length")?;
        let version = b0 >> 5;
        if version != VERSION {
            return Err(DecodeError::BadVersion { version });
        }
        let msg_type = MessageType::from_code(b0 & 0x1f)
            .ok_or(DecodeError::UnknownType { code: b0 & 0x1f })?;
        Ok(Header {
            msg_type,
            family: AddressFamily::from_v_flag(b1 & 0x80 != 0),
            flag: msg_type.has_flag() && b1 & 0x40 != 0,
            length,
        })
    }

    /// The MN address of the message `input` holds (`self` being its
    /// parsed header), read without validating the rest of the message:
    /// enough to route a message to its handover before parsing it. Every
    /// message starts its body with the MN address, except CTD and PCTD
    /// where the 4-octet Elapsed Time comes first.
    pub fn mn_addr(&self, input: &[u8]) -> Result<IpAddr, DecodeError> {
        let name = self.msg_type.name();
        let mut c = Cursor::new(input.get(HEADER_LEN..).unwrap_or_default(), name);
        if matches!(self.msg_type, MessageType::Ctd | MessageType::Pctd) {
            c.u32("Elapsed Time")?;
        }
        c.addr(self.family, "MN previous address")
    }

    /// Emit the header.
    pub fn emit(&self, buf: &mut impl BufMut) {
        buf.put_u8((VERSION << 5) | self.msg_type.code());
        buf.put_u8(if self.family.v_flag() { 0x80 } else { 0 } | if self.flag { 0x40 } else { 0 });
        buf.put_u16(self.length);
    }
}

/// Decoding errors. Each names the message and field at fault; bad input
/// never panics.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
#[allow(missing_docs)]
pub enum DecodeError {
    /// Fewer octets than a field needs.
    #[error("{message}: truncated {field}: need {needed} octets, {available} available")]
    Truncated {
        message: &'static str,
        field: &'static str,
        needed: usize,
        available: usize,
    },
    /// Version is not 1.
    #[error("unsupported CXTP version {version} (expected 1)")]
    BadVersion { version: u8 },
    /// Type code 0 or 8–31.
    #[error("unknown CXTP message type {code}")]
    UnknownType { code: u8 },
    /// The header Length differs from the number of octets received.
    #[error("{message}: header Length {header} disagrees with the {actual} octets received")]
    LengthMismatch {
        message: &'static str,
        header: u16,
        actual: usize,
    },
    /// The message size fits the other address width than the `V` flag says.
    #[error("{message}: {length} octets fit {found:?} addresses but the V flag says {flagged:?}")]
    MixedAddressWidth {
        message: &'static str,
        flagged: AddressFamily,
        found: AddressFamily,
        length: usize,
    },
    /// A data CDB whose Length (8-octet units) is shorter than its own header
    /// (and presence vector).
    #[error("{message}: context data block {index} (FPT {fpt:#06x}) Length {length} is shorter than its header")]
    CdbLength {
        message: &'static str,
        index: usize,
        fpt: u16,
        length: u8,
    },
    /// A CDB runs past the end of the message.
    #[error("{message}: context data block {index} (FPT {fpt:#06x}) needs {needed} octets, {available} left")]
    CdbOverrun {
        message: &'static str,
        index: usize,
        fpt: u16,
        needed: usize,
        available: usize,
    },
    /// Status entries (4 octets each) leave a remainder.
    #[error("{message}: {remainder} stray octets after the last {field} entry")]
    PartialEntry {
        message: &'static str,
        field: &'static str,
        remainder: usize,
    },
    /// A field holds a value this implementation refuses.
    #[error("{message}: invalid {field}: {reason}")]
    Invalid {
        message: &'static str,
        field: &'static str,
        reason: &'static str,
    },
}

/// Errors while emitting a `Repr`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
#[allow(missing_docs)]
pub enum EmitError {
    /// IPv4 and IPv6 addresses in one message (the `V` flag covers all).
    #[error("{message}: {field} is {found:?} but the message's MN address is {expected:?}")]
    MixedAddressFamilies {
        message: &'static str,
        field: &'static str,
        expected: AddressFamily,
        found: AddressFamily,
    },
    /// More than 65,535 octets.
    #[error("{message}: {length} octets exceed the 65535-octet Length field")]
    MessageTooLong {
        message: &'static str,
        length: usize,
    },
    /// A CDB larger than 2,040 octets.
    #[error("context data block FPT {fpt:#06x}: {length} octets exceed 2040")]
    CdbTooLong { fpt: u16, length: usize },
    /// A key longer than 65,535 octets.
    #[error("PCTD key block: key of {length} octets exceeds the 16-bit Key Length")]
    KeyTooLong { length: usize },
}

// ---------------------------------------------------------------------------
// Internal cursor: every read checks the remaining length first, then lets a
// nom parser (which can no longer fail) read the field.

pub(crate) struct Cursor<'a> {
    pub(crate) rest: &'a [u8],
    pub(crate) message: &'static str,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(rest: &'a [u8], message: &'static str) -> Self {
        Self { rest, message }
    }

    fn need(&self, n: usize, field: &'static str) -> Result<(), DecodeError> {
        if self.rest.len() < n {
            return Err(DecodeError::Truncated {
                message: self.message,
                field,
                needed: n,
                available: self.rest.len(),
            });
        }
        Ok(())
    }

    fn run<O>(
        &mut self,
        n: usize,
        field: &'static str,
        mut p: impl Parser<&'a [u8], Output = O, Error = nom::error::Error<&'a [u8]>>,
    ) -> Result<O, DecodeError> {
        self.need(n, field)?;
        match p.parse(self.rest) {
            Ok((rest, o)) => {
                self.rest = rest;
                Ok(o)
            }
            // Unreachable after `need`, but never panic on input.
            Err(_) => Err(DecodeError::Truncated {
                message: self.message,
                field,
                needed: n,
                available: self.rest.len(),
            }),
        }
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        self.run(1, field, be_u8)
    }
    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        self.run(2, field, be_u16)
    }
    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        self.run(4, field, be_u32)
    }
    pub(crate) fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        self.run(n, field, nom::bytes::complete::take(n))
    }
    pub(crate) fn array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], DecodeError> {
        let s = self.take(N, field)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    pub(crate) fn addr(
        &mut self,
        family: AddressFamily,
        field: &'static str,
    ) -> Result<IpAddr, DecodeError> {
        Ok(match family {
            AddressFamily::Ipv4 => IpAddr::V4(Ipv4Addr::from(self.array::<4>(field)?)),
            AddressFamily::Ipv6 => IpAddr::V6(Ipv6Addr::from(self.array::<16>(field)?)),
        })
    }
}

pub(crate) fn put_addr(buf: &mut impl BufMut, addr: &IpAddr) {
    match addr {
        IpAddr::V4(a) => buf.put_slice(&a.octets()),
        IpAddr::V6(a) => buf.put_slice(&a.octets()),
    }
}

/// Round `n` up to a multiple of 8.
pub(crate) const fn pad8(n: usize) -> usize {
    (n + 7) & !7
}
