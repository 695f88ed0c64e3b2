//! The MIH fixed header (IEEE 802.21-2008 clause 8.2) and the [`Frame`] view.
//!
//! ```text
//! octet 0   Version(4) | ACK-Req | ACK-Rsp | UIR | M (more fragments)
//! octet 1   FN (fragment number, 7 bits) | reserved
//! octet 2-3 MID = SID(4) | Opcode(2) | AID(10)
//! octet 4-5 reserved(4) | TID(12)
//! octet 6-7 Payload Length (octets after this header)
//! ```

use bytes::{BufMut, Bytes, BytesMut};
use nom::number::complete::{be_u16, be_u8};
use nom::IResult;

use super::error::Error;
use super::tlv::TlvIter;

/// Length of the fixed header in octets.
pub const HEADER_LEN: usize = 8;

/// Protocol version sent by this implementation (IEEE 802.21-2008).
pub const VERSION: u8 = 1;

/// The MIH service identifier (SID), the top 4 bits of the MID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ServiceId(pub u8);

impl ServiceId {
    pub const MANAGEMENT: ServiceId = ServiceId(1);
    pub const EVENT: ServiceId = ServiceId(2);
    pub const COMMAND: ServiceId = ServiceId(3);
    pub const INFORMATION: ServiceId = ServiceId(4);
}

/// The operation code, the middle 2 bits of the MID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Opcode {
    Confirm = 0,
    Request = 1,
    Response = 2,
    Indication = 3,
}

impl Opcode {
    /// From the 2-bit field value (only the low 2 bits are used).
    pub const fn from_bits(bits: u8) -> Opcode {
        match bits & 3 {
            0 => Opcode::Confirm,
            1 => Opcode::Request,
            2 => Opcode::Response,
            _ => Opcode::Indication,
        }
    }

    /// The primitive suffix used in message names (`request`, `response`, ...).
    pub const fn suffix(self) -> &'static str {
        match self {
            Opcode::Confirm => "confirm",
            Opcode::Request => "request",
            Opcode::Response => "response",
            Opcode::Indication => "indication",
        }
    }
}

/// Message identifier: `SID << 12 | Opcode << 10 | AID`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Mid(pub u16);

impl Mid {
    /// Build a MID; `sid` is truncated to 4 bits and `aid` to 10 bits.
    pub const fn new(sid: ServiceId, opcode: Opcode, aid: u16) -> Mid {
        Mid(((sid.0 as u16 & 0xf) << 12) | ((opcode as u16) << 10) | (aid & 0x3ff))
    }
    pub const fn sid(self) -> ServiceId {
        ServiceId((self.0 >> 12) as u8)
    }
    pub const fn opcode(self) -> Opcode {
        Opcode::from_bits((self.0 >> 10) as u8)
    }
    pub const fn aid(self) -> u16 {
        self.0 & 0x3ff
    }
    /// The same SID and AID with another opcode (e.g. the response to a request).
    pub const fn with_opcode(self, opcode: Opcode) -> Mid {
        Mid((self.0 & !0x0c00) | ((opcode as u16) << 10))
    }
}

/// The owned form of the fixed header: build one, then [`Header::emit`] it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Header {
    /// 4-bit protocol version (1 for 802.21-2008).
    pub version: u8,
    pub ack_req: bool,
    pub ack_rsp: bool,
    /// Unauthenticated Information Request.
    pub uir: bool,
    /// More fragments follow.
    pub more_frag: bool,
    /// 7-bit fragment number.
    pub frag_no: u8,
    pub mid: Mid,
    /// 12-bit transaction identifier.
    pub tid: u16,
    /// Octets of payload after the header.
    pub payload_len: u16,
}

impl Header {
    /// A version-1 header with every flag clear.
    pub const fn new(mid: Mid, tid: u16) -> Header {
        Header {
            version: VERSION,
            ack_req: false,
            ack_rsp: false,
            uir: false,
            more_frag: false,
            frag_no: 0,
            mid,
            tid: tid & 0x0fff,
            payload_len: 0,
        }
    }

    /// Parse the first 8 octets of `buf`. Reserved bits are ignored.
    pub fn parse(buf: &[u8]) -> Result<Header, Error> {
        match parse_header(buf) {
            Ok((_, h)) => Ok(h),
            Err(_) => Err(Error::HeaderTruncated { have: buf.len() }),
        }
    }

    /// Append the 8 header octets (reserved bits zero) to `out`.
    pub fn emit(&self, out: &mut BytesMut) {
        out.put_slice(&self.to_bytes());
    }

    /// The 8 header octets.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let b0 = (self.version << 4)
            | (u8::from(self.ack_req) << 3)
            | (u8::from(self.ack_rsp) << 2)
            | (u8::from(self.uir) << 1)
            | u8::from(self.more_frag);
        let mid = self.mid.0.to_be_bytes();
        let tid = (self.tid & 0x0fff).to_be_bytes();
        let len = self.payload_len.to_be_bytes();
        [
            b0,
            (self.frag_no & 0x7f) << 1,
            mid[0],
            mid[1],
            tid[0],
            tid[1],
            len[0],
            len[1],
        ]
    }

    /// True when this header belongs to a fragment of a larger message.
    pub const fn is_fragment(&self) -> bool {
        self.more_frag || self.frag_no != 0
    }
}

fn parse_header(i: &[u8]) -> IResult<&[u8], Header> {
    let (i, b0) = be_u8(i)?;
    let (i, b1) = be_u8(i)?;
    let (i, mid) = be_u16(i)?;
    let (i, tid) = be_u16(i)?;
    let (i, payload_len) = be_u16(i)?;
    Ok((
        i,
        Header {
            version: b0 >> 4,
            ack_req: b0 & 0x08 != 0,
            ack_rsp: b0 & 0x04 != 0,
            uir: b0 & 0x02 != 0,
            more_frag: b0 & 0x01 != 0,
            frag_no: b1 >> 1,
            mid: Mid(mid),
            tid: tid & 0x0fff,
            payload_len,
        },
    ))
}

/// A validated view over one whole MIH frame held in a [`Bytes`] buffer.
///
/// [`Frame::parse`] checks, once, that the header is complete, that Payload
/// Length matches the octets present, and (for non-fragments) that the payload
/// is a well-formed TLV sequence. Field getters then read straight from the
/// buffer. Nothing is copied and nothing is allocated.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    buf: Bytes,
    header: Header,
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frame")
            .field("header", &self.header())
            .field("payload_len", &self.payload().len())
            .finish()
    }
}

impl Frame {
    /// Validate `buf` as exactly one frame (a UDP datagram, or a frame cut
    /// from a stream by [`Frame::split_from`]).
    pub fn parse(buf: Bytes) -> Result<Frame, Error> {
        let header = Header::parse(&buf)?;
        let available = buf.len() - HEADER_LEN;
        if available != usize::from(header.payload_len) {
            return Err(Error::PayloadLength {
                declared: header.payload_len,
                available,
            });
        }
        let frame = Frame { buf, header };
        if !header.is_fragment() {
            frame.validate_tlvs()?;
        }
        Ok(frame)
    }

    /// Cut one frame from the front of a stream buffer (e.g. TCP): returns
    /// `Ok(None)` until `8 + Payload Length` octets are buffered.
    pub fn split_from(stream: &mut BytesMut) -> Result<Option<Frame>, Error> {
        if stream.len() < HEADER_LEN {
            return Ok(None);
        }
        let payload_len = usize::from(u16::from_be_bytes([stream[6], stream[7]]));
        if stream.len() < HEADER_LEN + payload_len {
            return Ok(None);
        }
        let bytes = stream.split_to(HEADER_LEN + payload_len).freeze();
        Frame::parse(bytes).map(Some)
    }

    fn validate_tlvs(&self) -> Result<(), Error> {
        let mut it = self.tlvs();
        for _ in it.by_ref() {}
        match it.error() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The whole frame.
    pub fn as_bytes(&self) -> &Bytes {
        &self.buf
    }
    /// Consume the view, returning the buffer.
    pub fn into_bytes(self) -> Bytes {
        self.buf
    }
    /// The owned header (parsed once, by [`Frame::parse`]).
    pub fn header(&self) -> Header {
        self.header
    }
    pub fn version(&self) -> u8 {
        self.buf[0] >> 4
    }
    pub fn ack_req(&self) -> bool {
        self.buf[0] & 0x08 != 0
    }
    pub fn ack_rsp(&self) -> bool {
        self.buf[0] & 0x04 != 0
    }
    pub fn uir(&self) -> bool {
        self.buf[0] & 0x02 != 0
    }
    pub fn more_frag(&self) -> bool {
        self.buf[0] & 0x01 != 0
    }
    pub fn frag_no(&self) -> u8 {
        self.buf[1] >> 1
    }
    pub fn mid(&self) -> Mid {
        Mid(u16::from_be_bytes([self.buf[2], self.buf[3]]))
    }
    pub fn tid(&self) -> u16 {
        u16::from_be_bytes([self.buf[4], self.buf[5]]) & 0x0fff
    }
    pub fn payload_len(&self) -> u16 {
        u16::from_be_bytes([self.buf[6], self.buf[7]])
    }
    /// True when this frame is a fragment of a larger message.
    pub fn is_fragment(&self) -> bool {
        self.more_frag() || self.frag_no() != 0
    }
    /// The payload octets (a slice of the frame buffer).
    pub fn payload(&self) -> &[u8] {
        &self.buf[HEADER_LEN..]
    }
    /// The payload as a [`Bytes`] handle sharing the frame's buffer.
    pub fn payload_bytes(&self) -> Bytes {
        self.buf.slice(HEADER_LEN..)
    }
    /// Iterate over the payload's TLVs, borrowing from the frame.
    pub fn tlvs(&self) -> TlvIter<'_> {
        TlvIter::new(self.payload())
    }
}

/// Build a whole frame from a header and a payload, fixing Payload Length.
///
/// Returns `None` if the payload exceeds 65,535 octets (such a message must be
/// fragmented).
pub fn build_frame(mut header: Header, payload: &[u8]) -> Option<Bytes> {
    header.payload_len = u16::try_from(payload.len()).ok()?;
    let mut out = BytesMut::with_capacity(HEADER_LEN + payload.len());
    header.emit(&mut out);
    out.put_slice(payload);
    Some(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_all_fields() {
        let h = Header {
            version: 1,
            ack_req: true,
            ack_rsp: false,
            uir: true,
            more_frag: true,
            frag_no: 0x55,
            mid: Mid::new(ServiceId::COMMAND, Opcode::Request, 9),
            tid: 0xabc,
            payload_len: 0x1234,
        };
        let b = h.to_bytes();
        assert_eq!(b, [0x1b, 0xaa, 0x34, 0x09, 0x0a, 0xbc, 0x12, 0x34]);
        assert_eq!(Header::parse(&b).unwrap(), h);
    }

    #[test]
    fn mid_fields() {
        let m = Mid(0x3809);
        assert_eq!(m.sid(), ServiceId::COMMAND);
        assert_eq!(m.opcode(), Opcode::Response);
        assert_eq!(m.aid(), 9);
        assert_eq!(m.with_opcode(Opcode::Request), Mid(0x3409));
        assert_eq!(
            Mid::new(ServiceId::MANAGEMENT, Opcode::Indication, 7),
            Mid(0x1c07)
        );
    }

    #[test]
    fn reserved_bits_ignored() {
        let h = Header::parse(&[0x10, 0x01, 0x14, 0x01, 0xf0, 0x01, 0, 0]).unwrap();
        assert_eq!(h.frag_no, 0);
        assert_eq!(h.tid, 1);
    }

    #[test]
    fn short_and_mismatched_frames() {
        assert_eq!(
            Frame::parse(Bytes::from_static(&[0x10, 0, 0x14])),
            Err(Error::HeaderTruncated { have: 3 })
        );
        assert_eq!(
            Frame::parse(Bytes::from_static(&[0x10, 0, 0x14, 1, 0, 1, 0, 2, 1])),
            Err(Error::PayloadLength {
                declared: 2,
                available: 1
            })
        );
    }

    #[test]
    fn split_from_stream() {
        let mut s = BytesMut::from(&[0x10, 0, 0x14, 1, 0, 1, 0, 3, 0x07, 0x01][..]);
        assert!(Frame::split_from(&mut s).unwrap().is_none());
        s.extend_from_slice(&[0x00, 0x10]);
        let f = Frame::split_from(&mut s).unwrap().unwrap();
        assert_eq!(f.payload(), &[7, 1, 0]);
        assert_eq!(&s[..], &[0x10]);
    }
}
