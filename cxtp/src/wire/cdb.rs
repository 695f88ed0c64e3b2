//! Context Data Blocks (RFC 4067 §2.4), request blocks (§2.5.1) and the
//! 4-octet `FPT | Status | Reserved` entries of CTAA/CTDR.

use std::ops::Range;

use bytes::{BufMut, Bytes};

use super::{pad8, Cursor, DecodeError, EmitError, MAX_CDB_LEN};

/// P flag in the fourth octet of a block header.
const P_FLAG: u8 = 0x80;

/// Bit of field `index` in a presence vector, with RFC bit numbering (field
/// 0 is the most significant bit).
///
/// ```
/// assert_eq!(cxtp::wire::presence_bit(0), 0x8000_0000);
/// assert_eq!(cxtp::wire::presence_bit(31), 1);
/// ```
pub const fn presence_bit(index: u32) -> u32 {
    0x8000_0000u32 >> (index & 31)
}

/// One Context Data Block, viewed in place. `data` is a [`Bytes`] slice of the
/// received message (no copy) and includes the zero padding up to the
/// 8-octet boundary, because only the feature profile knows where its data
/// ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContextDataBlock {
    /// Feature Profile Type.
    pub fpt: u16,
    /// Length field: 8-octet units including the 4-octet block header.
    pub length: u8,
    /// Presence vector, present when the P flag is set.
    pub presence_vector: Option<u32>,
    /// Data and padding.
    pub data: Bytes,
}

impl ContextDataBlock {
    /// Octets this block occupies on the wire.
    pub fn wire_len(&self) -> usize {
        self.length as usize * 8
    }
    /// Owned form that emits the same octets.
    pub fn to_repr(&self) -> ContextDataBlockRepr {
        ContextDataBlockRepr {
            fpt: self.fpt,
            presence_vector: self.presence_vector,
            data: self.data.clone(),
        }
    }
}

/// Owned Context Data Block for emitting. The Length field and the zero
/// padding are computed.
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use cxtp::wire::ContextDataBlockRepr;
/// let cdb = ContextDataBlockRepr::new(0x0001, Bytes::from_static(&[0xaa; 24]));
/// assert_eq!(cdb.wire_len(), 32);
/// let mut buf = BytesMut::new();
/// cdb.emit(&mut buf).unwrap();
/// assert_eq!(&buf[..4], &[0x00, 0x01, 0x04, 0x00]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContextDataBlockRepr {
    /// Feature Profile Type.
    pub fpt: u16,
    /// Optional presence vector (sets P).
    pub presence_vector: Option<u32>,
    /// Data; zero padding to 8 octets is added on emit.
    pub data: Bytes,
}

impl ContextDataBlockRepr {
    /// Block without a presence vector.
    pub fn new(fpt: u16, data: Bytes) -> Self {
        Self {
            fpt,
            presence_vector: None,
            data,
        }
    }
    /// Header and presence vector size.
    pub fn header_len(&self) -> usize {
        4 + if self.presence_vector.is_some() { 4 } else { 0 }
    }
    /// Octets on the wire (header, presence vector, data, padding).
    pub fn wire_len(&self) -> usize {
        pad8(self.header_len() + self.data.len())
    }
    /// Emit the block.
    pub fn emit(&self, buf: &mut impl BufMut) -> Result<(), EmitError> {
        let len = self.wire_len();
        if len > MAX_CDB_LEN {
            return Err(EmitError::CdbTooLong {
                fpt: self.fpt,
                length: len,
            });
        }
        buf.put_u16(self.fpt);
        buf.put_u8((len / 8) as u8);
        buf.put_u8(if self.presence_vector.is_some() {
            P_FLAG
        } else {
            0
        });
        if let Some(pv) = self.presence_vector {
            buf.put_u32(pv);
        }
        buf.put_slice(&self.data);
        buf.put_bytes(0, len - self.header_len() - self.data.len());
        Ok(())
    }
}

/// Parse one data CDB at the start of `rest`; returns the FPT, Length,
/// presence vector, the data range relative to `rest`, and the total size.
fn parse_cdb(
    rest: &[u8],
    index: usize,
    message: &'static str,
) -> Result<(u16, u8, Option<u32>, Range<usize>), DecodeError> {
    let mut c = Cursor::new(rest, message);
    let fpt = c.u16("context data block FPT")?;
    let length = c.u8("context data block Length")?;
    let flags = c.u8("context data block flags")?;
    let pv = if flags & P_FLAG != 0 {
        Some(c.u32("context data block presence vector")?)
    } else {
        None
    };
    let header = if pv.is_some() { 8 } else { 4 };
    let total = length as usize * 8;
    if total < header {
        return Err(DecodeError::CdbLength {
            message,
            index,
            fpt,
            length,
        });
    }
    if total > rest.len() {
        return Err(DecodeError::CdbOverrun {
            message,
            index,
            fpt,
            needed: total,
            available: rest.len(),
        });
    }
    Ok((fpt, length, pv, header..total))
}

/// Check every CDB boundary of a message body; returns the number of blocks.
/// A tight loop over the block headers (one dependent load per block): every
/// index is checked against the remaining length before it is read.
pub(crate) fn validate_cdbs(rest: &[u8], message: &'static str) -> Result<usize, DecodeError> {
    let len = rest.len();
    let mut pos = 0;
    let mut n = 0;
    while pos < len {
        let avail = len - pos;
        if avail < 4 {
            return Err(DecodeError::Truncated {
                message,
                field: "context data block header",
                needed: 4,
                available: avail,
            });
        }
        let h = &rest[pos..pos + 4];
        let fpt = u16::from_be_bytes([h[0], h[1]]);
        let length = h[2];
        let header = if h[3] & P_FLAG != 0 { 8 } else { 4 };
        if avail < header {
            return Err(DecodeError::Truncated {
                message,
                field: "context data block presence vector",
                needed: header,
                available: avail,
            });
        }
        let total = length as usize * 8;
        if total < header {
            return Err(DecodeError::CdbLength {
                message,
                index: n,
                fpt,
                length,
            });
        }
        if total > avail {
            return Err(DecodeError::CdbOverrun {
                message,
                index: n,
                fpt,
                needed: total,
                available: avail,
            });
        }
        pos += total;
        n += 1;
    }
    Ok(n)
}

/// One CDB borrowed from a validated message body: no reference counting,
/// no copy. [`ContextDataBlockRef::data_bytes`] gives the owned zero-copy
/// [`Bytes`] slice when one is needed.
#[derive(Clone, Copy, Debug)]
pub struct ContextDataBlockRef<'a> {
    /// Feature Profile Type.
    pub fpt: u16,
    /// Length field (8-octet units).
    pub length: u8,
    /// Presence vector, if P is set.
    pub presence_vector: Option<u32>,
    /// Data and padding.
    pub data: &'a [u8],
    body: &'a Bytes,
}

impl ContextDataBlockRef<'_> {
    /// The data as a [`Bytes`] slice of the received message.
    pub fn data_bytes(&self) -> Bytes {
        self.body.slice_ref(self.data)
    }
    /// Owned view.
    pub fn to_owned(&self) -> ContextDataBlock {
        ContextDataBlock {
            fpt: self.fpt,
            length: self.length,
            presence_vector: self.presence_vector,
            data: self.data_bytes(),
        }
    }
}

/// Lazy borrowing iterator over the validated CDBs of a CTD/PCTD.
#[derive(Clone, Debug)]
pub struct ContextDataBlockRefs<'a> {
    body: &'a Bytes,
    pos: usize,
}

impl<'a> ContextDataBlockRefs<'a> {
    pub(crate) fn new(body: &'a Bytes) -> Self {
        Self { body, pos: 0 }
    }
}

impl<'a> Iterator for ContextDataBlockRefs<'a> {
    type Item = ContextDataBlockRef<'a>;
    fn next(&mut self) -> Option<ContextDataBlockRef<'a>> {
        let body: &'a [u8] = self.body;
        let rest = body.get(self.pos..)?;
        let h = rest.get(..4)?;
        let total = h[2] as usize * 8;
        let (presence_vector, start) = if h[3] & P_FLAG != 0 {
            let pv = rest.get(4..8)?;
            (Some(u32::from_be_bytes([pv[0], pv[1], pv[2], pv[3]])), 8)
        } else {
            (None, 4)
        };
        let data = rest.get(start..total)?;
        self.pos += total;
        Some(ContextDataBlockRef {
            fpt: u16::from_be_bytes([h[0], h[1]]),
            length: h[2],
            presence_vector,
            data,
            body: self.body,
        })
    }
}

/// Lazy iterator over the (already validated) CDBs of a CTD/PCTD. Each item
/// holds a [`Bytes`] slice of the received buffer.
#[derive(Clone, Debug)]
pub struct ContextDataBlocks {
    body: Bytes,
    pos: usize,
}

impl ContextDataBlocks {
    pub(crate) fn new(body: Bytes) -> Self {
        Self { body, pos: 0 }
    }
}

impl Iterator for ContextDataBlocks {
    type Item = ContextDataBlock;
    fn next(&mut self) -> Option<ContextDataBlock> {
        let rest = self.body.get(self.pos..)?;
        if rest.is_empty() {
            return None;
        }
        // Validated at parse time; an error here just ends the iteration.
        let (fpt, length, presence_vector, data) = parse_cdb(rest, 0, "CTD").ok()?;
        let start = self.pos;
        self.pos += data.end;
        Some(ContextDataBlock {
            fpt,
            length,
            presence_vector,
            data: self.body.slice(start + data.start..start + data.end),
        })
    }
}

/// A requested context in a CTAR or CT-Req: only the block header (and an
/// optional presence vector asking for a subset of fields).
///
/// The RFC draws request blocks as 4 octets, which 8-octet Length units
/// cannot express. [`RequestBlock::new`] uses `Length = 0` and 4 octets on
/// the wire; a decoded block keeps the Length it arrived with, and when
/// `Length * 8` exceeds the header the block is padded with zeros up to it
/// (so a `Length = 1` peer is reproduced exactly).
///
/// ```
/// use bytes::BytesMut;
/// use cxtp::wire::RequestBlock;
/// let mut buf = BytesMut::new();
/// RequestBlock::new(1).emit(&mut buf);
/// assert_eq!(&buf[..], &[0, 1, 0, 0]);
/// buf.clear();
/// RequestBlock { fpt: 1, length: 1, presence_vector: None }.emit(&mut buf);
/// assert_eq!(&buf[..], &[0, 1, 1, 0, 0, 0, 0, 0]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RequestBlock {
    /// Requested Feature Profile Type.
    pub fpt: u16,
    /// Length field as sent (0 = header only).
    pub length: u8,
    /// Optional presence vector selecting fields.
    pub presence_vector: Option<u32>,
}

impl RequestBlock {
    /// Header-only request (4 octets, Length 0).
    pub fn new(fpt: u16) -> Self {
        Self {
            fpt,
            length: 0,
            presence_vector: None,
        }
    }
    /// Octets on the wire.
    pub fn wire_len(&self) -> usize {
        let header = if self.presence_vector.is_some() { 8 } else { 4 };
        header.max(self.length as usize * 8)
    }
    /// Emit the block.
    pub fn emit(&self, buf: &mut impl BufMut) {
        buf.put_u16(self.fpt);
        buf.put_u8(self.length);
        buf.put_u8(if self.presence_vector.is_some() {
            P_FLAG
        } else {
            0
        });
        let mut header = 4;
        if let Some(pv) = self.presence_vector {
            buf.put_u32(pv);
            header = 8;
        }
        buf.put_bytes(0, self.wire_len() - header);
    }
    /// Emit a list of request blocks into one buffer (the token input).
    pub fn encode_all(blocks: &[RequestBlock]) -> Bytes {
        let mut buf = bytes::BytesMut::with_capacity(blocks.iter().map(|b| b.wire_len()).sum());
        for b in blocks {
            b.emit(&mut buf);
        }
        buf.freeze()
    }
}

fn parse_request(rest: &[u8], message: &'static str) -> Result<(RequestBlock, usize), DecodeError> {
    let mut c = Cursor::new(rest, message);
    let fpt = c.u16("request block FPT")?;
    let length = c.u8("request block Length")?;
    let flags = c.u8("request block flags")?;
    let presence_vector = if flags & P_FLAG != 0 {
        Some(c.u32("request block presence vector")?)
    } else {
        None
    };
    let block = RequestBlock {
        fpt,
        length,
        presence_vector,
    };
    let size = block.wire_len();
    if size > rest.len() {
        return Err(DecodeError::Truncated {
            message,
            field: "request block padding",
            needed: size,
            available: rest.len(),
        });
    }
    Ok((block, size))
}

pub(crate) fn validate_requests(
    mut rest: &[u8],
    message: &'static str,
) -> Result<usize, DecodeError> {
    let mut n = 0;
    while !rest.is_empty() {
        let (_, size) = parse_request(rest, message)?;
        rest = &rest[size..];
        n += 1;
    }
    Ok(n)
}

/// Lazy iterator over the validated request blocks of a CTAR/CT-Req.
#[derive(Clone, Debug)]
pub struct RequestBlocks<'a> {
    rest: &'a [u8],
}

impl<'a> RequestBlocks<'a> {
    pub(crate) fn new(rest: &'a [u8]) -> Self {
        Self { rest }
    }
}

impl Iterator for RequestBlocks<'_> {
    type Item = RequestBlock;
    fn next(&mut self) -> Option<RequestBlock> {
        if self.rest.is_empty() {
            return None;
        }
        let (b, size) = parse_request(self.rest, "request").ok()?;
        self.rest = &self.rest[size..];
        Some(b)
    }
}

/// A CTAA/CTDR entry: a Feature Profile Type and a status octet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StatusEntry {
    /// Feature Profile Type the status is about.
    pub fpt: u16,
    /// 0 = success; other values are failure reasons.
    pub status: u8,
}

impl StatusEntry {
    /// Emit (reserved octet 0).
    pub fn emit(&self, buf: &mut impl BufMut) {
        buf.put_u16(self.fpt);
        buf.put_u8(self.status);
        buf.put_u8(0);
    }
}

pub(crate) fn validate_entries(rest: &[u8], message: &'static str) -> Result<usize, DecodeError> {
    if rest.len() % 4 != 0 {
        return Err(DecodeError::PartialEntry {
            message,
            field: "FPT/status",
            remainder: rest.len() % 4,
        });
    }
    Ok(rest.len() / 4)
}

/// Lazy iterator over CTAA/CTDR entries.
#[derive(Clone, Debug)]
pub struct StatusEntries<'a> {
    chunks: std::slice::ChunksExact<'a, u8>,
}

impl<'a> StatusEntries<'a> {
    pub(crate) fn new(rest: &'a [u8]) -> Self {
        Self {
            chunks: rest.chunks_exact(4),
        }
    }
}

impl Iterator for StatusEntries<'_> {
    type Item = StatusEntry;
    fn next(&mut self) -> Option<StatusEntry> {
        let c = self.chunks.next()?;
        Some(StatusEntry {
            fpt: u16::from_be_bytes([c[0], c[1]]),
            status: c[2],
        })
    }
}
