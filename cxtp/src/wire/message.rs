//! The seven CXTP messages: views (`Ctar`, `Ctd`, ...) and owned builders
//! (`CtarRepr`, `CtdRepr`, ...).

use std::net::IpAddr;

use bytes::{BufMut, Bytes, BytesMut};

use super::cdb::{validate_cdbs, validate_entries, validate_requests};
use super::{
    put_addr, AddressFamily, ContextDataBlockRepr, ContextDataBlocks, Cursor, DecodeError,
    EmitError, Header, MessageType, RequestBlock, RequestBlocks, StatusEntries, StatusEntry, Token,
    HEADER_LEN, MAX_MESSAGE_LEN,
};
use crate::token::AuthKey;

/// A decoded CXTP message. Every variant is a view whose variable part is a
/// [`Bytes`] slice of the buffer given to [`MessageView::parse`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageView {
    /// Context Transfer Activate Request.
    Ctar(Ctar),
    /// Context Transfer Activate Acknowledge.
    Ctaa(Ctaa),
    /// Context Transfer Data, or Predictive CTD when it has a key block.
    Ctd(Ctd),
    /// Context Transfer Data Reply.
    Ctdr(Ctdr),
    /// Context Transfer Cancel.
    Ctc(Ctc),
    /// Context Transfer Request.
    CtReq(CtReq),
}

/// CTAR (type 1): MN → AR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ctar {
    /// `A`: the MN wants a CTAA.
    pub ack: bool,
    /// MN's previous IP address.
    pub mn_addr: IpAddr,
    /// pAR's address (CTAR to nAR) or nAR's address (CTAR to pAR).
    pub ar_addr: IpAddr,
    /// Sequence number.
    pub seq: u32,
    /// MN authorization token.
    pub token: Token,
    requests: Bytes,
}

impl Ctar {
    /// The requested blocks (none = all contexts).
    pub fn requests(&self) -> RequestBlocks<'_> {
        RequestBlocks::new(&self.requests)
    }
    /// The exact request-block octets (token input).
    pub fn request_bytes(&self) -> &Bytes {
        &self.requests
    }
    /// Owned form.
    pub fn to_repr(&self) -> CtarRepr {
        CtarRepr {
            ack: self.ack,
            mn_addr: self.mn_addr,
            ar_addr: self.ar_addr,
            seq: self.seq,
            token: self.token,
            requests: self.requests().collect(),
        }
    }
}

/// Builder for a CTAR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CtarRepr {
    /// `A` flag.
    pub ack: bool,
    /// MN's previous IP address.
    pub mn_addr: IpAddr,
    /// pAR (or nAR) address.
    pub ar_addr: IpAddr,
    /// Sequence number.
    pub seq: u32,
    /// Authorization token (see [`crate::token`]).
    pub token: Token,
    /// Requested contexts (empty = all).
    pub requests: Vec<RequestBlock>,
}

/// CTAA (type 2): AR → MN. Lists the FPTs that were not transferred.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ctaa {
    /// MN's previous IP address.
    pub mn_addr: IpAddr,
    entries: Bytes,
}

impl Ctaa {
    /// FPT/status entries.
    pub fn entries(&self) -> StatusEntries<'_> {
        StatusEntries::new(&self.entries)
    }
    /// Owned form.
    pub fn to_repr(&self) -> CtaaRepr {
        CtaaRepr {
            mn_addr: self.mn_addr,
            entries: self.entries().collect(),
        }
    }
}

/// Builder for a CTAA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CtaaRepr {
    /// MN's previous IP address.
    pub mn_addr: IpAddr,
    /// Failed FPTs and reasons.
    pub entries: Vec<StatusEntry>,
}

/// Algorithm / Key Length / Key block of a PCTD, viewed in place.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyBlock {
    /// Token algorithm (1 = HMAC_SHA1).
    pub algorithm: u16,
    /// The MN–AR key (a slice of the received buffer).
    pub key: Bytes,
}

impl std::fmt::Debug for KeyBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyBlock")
            .field("algorithm", &self.algorithm)
            .field("key_len", &self.key.len())
            .finish()
    }
}

impl KeyBlock {
    /// Copy the key into a zeroize-on-drop [`AuthKey`].
    pub fn to_repr(&self) -> KeyBlockRepr {
        KeyBlockRepr {
            algorithm: self.algorithm,
            key: AuthKey::new(&self.key),
        }
    }
}

/// Owned key block; the key is wiped on drop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyBlockRepr {
    /// Token algorithm (1 = HMAC_SHA1).
    pub algorithm: u16,
    /// The key.
    pub key: AuthKey,
}

/// CTD (type 3) or PCTD (type 4, with [`KeyBlock`]): pAR → nAR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ctd {
    /// `A`: pAR wants a CTDR.
    pub ack: bool,
    /// Milliseconds since the first CTD for this MN was sent.
    pub elapsed_ms: u32,
    /// MN's previous IP address.
    pub mn_addr: IpAddr,
    /// Key block; present exactly when the type is PCTD.
    pub key_block: Option<KeyBlock>,
    blocks: Bytes,
    block_count: usize,
}

impl Ctd {
    /// CTD or PCTD.
    pub fn message_type(&self) -> MessageType {
        if self.key_block.is_some() {
            MessageType::Pctd
        } else {
            MessageType::Ctd
        }
    }
    /// Lazy iterator over the Context Data Blocks (zero-copy).
    pub fn blocks(&self) -> ContextDataBlocks {
        ContextDataBlocks::new(self.blocks.clone())
    }
    /// Lazy borrowing iterator over the blocks: no reference counting per
    /// block (the fastest way to walk a large CTD).
    pub fn block_refs(&self) -> super::ContextDataBlockRefs<'_> {
        super::ContextDataBlockRefs::new(&self.blocks)
    }
    /// Number of blocks (counted during validation).
    pub fn block_count(&self) -> usize {
        self.block_count
    }
    /// Owned form.
    pub fn to_repr(&self) -> CtdRepr {
        CtdRepr {
            ack: self.ack,
            elapsed_ms: self.elapsed_ms,
            mn_addr: self.mn_addr,
            key_block: self.key_block.as_ref().map(KeyBlock::to_repr),
            blocks: self.blocks().map(|b| b.to_repr()).collect(),
        }
    }
}

/// Builder for a CTD, or a PCTD when `key_block` is set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CtdRepr {
    /// `A` flag.
    pub ack: bool,
    /// Elapsed time in ms (0 on the first transmission).
    pub elapsed_ms: u32,
    /// MN's previous IP address.
    pub mn_addr: IpAddr,
    /// Key block: `Some` makes this a PCTD (type 4).
    pub key_block: Option<KeyBlockRepr>,
    /// Context Data Blocks.
    pub blocks: Vec<ContextDataBlockRepr>,
}

impl CtdRepr {
    /// CTD or PCTD.
    pub fn message_type(&self) -> MessageType {
        if self.key_block.is_some() {
            MessageType::Pctd
        } else {
            MessageType::Ctd
        }
    }
}

/// CTDR (type 5): nAR → pAR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ctdr {
    /// `S`: every context was received successfully.
    pub success: bool,
    /// MN's previous IP address.
    pub mn_addr: IpAddr,
    entries: Bytes,
}

impl Ctdr {
    /// FPT/status entries.
    pub fn entries(&self) -> StatusEntries<'_> {
        StatusEntries::new(&self.entries)
    }
    /// Owned form.
    pub fn to_repr(&self) -> CtdrRepr {
        CtdrRepr {
            success: self.success,
            mn_addr: self.mn_addr,
            entries: self.entries().collect(),
        }
    }
}

/// Builder for a CTDR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CtdrRepr {
    /// `S` flag.
    pub success: bool,
    /// MN's previous IP address.
    pub mn_addr: IpAddr,
    /// Per-FPT status.
    pub entries: Vec<StatusEntry>,
}

/// CTC (type 6): nAR → pAR cancels a transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ctc {
    /// MN's previous IP address.
    pub mn_addr: IpAddr,
}

/// Builder for a CTC (same fields as the view).
pub type CtcRepr = Ctc;

/// CT-Req (type 7): nAR → pAR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CtReq {
    /// MN's previous IP address.
    pub mn_addr: IpAddr,
    /// Sequence number copied from the CTAR.
    pub seq: u32,
    /// Token copied from the CTAR, or all zero.
    pub token: Token,
    requests: Bytes,
}

impl CtReq {
    /// Requested blocks.
    pub fn requests(&self) -> RequestBlocks<'_> {
        RequestBlocks::new(&self.requests)
    }
    /// The exact request-block octets (token input).
    pub fn request_bytes(&self) -> &Bytes {
        &self.requests
    }
    /// Owned form.
    pub fn to_repr(&self) -> CtReqRepr {
        CtReqRepr {
            mn_addr: self.mn_addr,
            seq: self.seq,
            token: self.token,
            requests: self.requests().collect(),
        }
    }
}

/// Builder for a CT-Req.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CtReqRepr {
    /// MN's previous IP address.
    pub mn_addr: IpAddr,
    /// Sequence number from the CTAR.
    pub seq: u32,
    /// Token from the CTAR ([`Token::ZERO`] if none seen).
    pub token: Token,
    /// Request blocks from the CTAR.
    pub requests: Vec<RequestBlock>,
}

impl From<&Ctar> for CtReqRepr {
    /// Copy sequence number, token and request blocks from a CTAR
    /// (RFC 4067 §2.5.6).
    fn from(c: &Ctar) -> Self {
        CtReqRepr {
            mn_addr: c.mn_addr,
            seq: c.seq,
            token: c.token,
            requests: c.requests().collect(),
        }
    }
}

// ---------------------------------------------------------------------------

impl MessageView {
    /// Decode one complete message. `buf.len()` must equal the header Length.
    pub fn parse(buf: Bytes) -> Result<MessageView, DecodeError> {
        let header = Header::parse(&buf)?;
        let name = header.msg_type.name();
        if header.length as usize != buf.len() {
            return Err(DecodeError::LengthMismatch {
                message: name,
                header: header.length,
                actual: buf.len(),
            });
        }
        let fam = header.family;
        let mut c = Cursor::new(&buf[HEADER_LEN..], name);
        let msg = match header.msg_type {
            MessageType::Ctar => {
                let mn_addr = c.addr(fam, "MN previous address")?;
                let ar_addr = c.addr(fam, "AR address")?;
                let seq = c.u32("Sequence Number")?;
                let token = Token(c.array("Authorization Token")?);
                validate_requests(c.rest, name)?;
                MessageView::Ctar(Ctar {
                    ack: header.flag,
                    mn_addr,
                    ar_addr,
                    seq,
                    token,
                    requests: buf.slice_ref(c.rest),
                })
            }
            MessageType::Ctaa => {
                let mn_addr = c.addr(fam, "MN previous address")?;
                validate_entries(c.rest, name)?;
                MessageView::Ctaa(Ctaa {
                    mn_addr,
                    entries: buf.slice_ref(c.rest),
                })
            }
            MessageType::Ctd | MessageType::Pctd => {
                let elapsed_ms = c.u32("Elapsed Time")?;
                let mn_addr = c.addr(fam, "MN previous address")?;
                let key_block = if header.msg_type == MessageType::Pctd {
                    let algorithm = c.u16("Algorithm")?;
                    let key_len = c.u16("Key Length")? as usize;
                    let key = c.take(key_len, "Key")?;
                    Some(KeyBlock {
                        algorithm,
                        key: buf.slice_ref(key),
                    })
                } else {
                    None
                };
                let block_count = validate_cdbs(c.rest, name)?;
                MessageView::Ctd(Ctd {
                    ack: header.flag,
                    elapsed_ms,
                    mn_addr,
                    key_block,
                    blocks: buf.slice_ref(c.rest),
                    block_count,
                })
            }
            MessageType::Ctdr => {
                let mn_addr = c.addr(fam, "MN previous address")?;
                validate_entries(c.rest, name)?;
                MessageView::Ctdr(Ctdr {
                    success: header.flag,
                    mn_addr,
                    entries: buf.slice_ref(c.rest),
                })
            }
            MessageType::Ctc => {
                let body = c.rest.len();
                let other = match fam {
                    AddressFamily::Ipv4 => AddressFamily::Ipv6,
                    AddressFamily::Ipv6 => AddressFamily::Ipv4,
                };
                if body != fam.addr_len() && body == other.addr_len() {
                    return Err(DecodeError::MixedAddressWidth {
                        message: name,
                        flagged: fam,
                        found: other,
                        length: buf.len(),
                    });
                }
                let mn_addr = c.addr(fam, "MN previous address")?;
                if !c.rest.is_empty() {
                    return Err(DecodeError::Invalid {
                        message: name,
                        field: "Length",
                        reason: "octets after the MN address",
                    });
                }
                MessageView::Ctc(Ctc { mn_addr })
            }
            MessageType::CtReq => {
                let mn_addr = c.addr(fam, "MN previous address")?;
                let seq = c.u32("Sequence Number")?;
                let token = Token(c.array("Authorization Token")?);
                validate_requests(c.rest, name)?;
                MessageView::CtReq(CtReq {
                    mn_addr,
                    seq,
                    token,
                    requests: buf.slice_ref(c.rest),
                })
            }
        };
        Ok(msg)
    }

    /// The message type (CTD vs PCTD decided by the key block).
    pub fn message_type(&self) -> MessageType {
        match self {
            MessageView::Ctar(_) => MessageType::Ctar,
            MessageView::Ctaa(_) => MessageType::Ctaa,
            MessageView::Ctd(c) => c.message_type(),
            MessageView::Ctdr(_) => MessageType::Ctdr,
            MessageView::Ctc(_) => MessageType::Ctc,
            MessageView::CtReq(_) => MessageType::CtReq,
        }
    }

    /// The MN's previous address, present in every message.
    pub fn mn_addr(&self) -> IpAddr {
        match self {
            MessageView::Ctar(m) => m.mn_addr,
            MessageView::Ctaa(m) => m.mn_addr,
            MessageView::Ctd(m) => m.mn_addr,
            MessageView::Ctdr(m) => m.mn_addr,
            MessageView::Ctc(m) => m.mn_addr,
            MessageView::CtReq(m) => m.mn_addr,
        }
    }

    /// Owned form that emits the same octets (up to reserved bits and
    /// non-zero padding, which are normalised to zero).
    pub fn to_repr(&self) -> MessageRepr {
        match self {
            MessageView::Ctar(m) => MessageRepr::Ctar(m.to_repr()),
            MessageView::Ctaa(m) => MessageRepr::Ctaa(m.to_repr()),
            MessageView::Ctd(m) => MessageRepr::Ctd(m.to_repr()),
            MessageView::Ctdr(m) => MessageRepr::Ctdr(m.to_repr()),
            MessageView::Ctc(m) => MessageRepr::Ctc(*m),
            MessageView::CtReq(m) => MessageRepr::CtReq(m.to_repr()),
        }
    }
}

/// Owned message for emitting.
///
/// ```
/// use cxtp::wire::{CtcRepr, MessageView, MessageRepr};
/// let ctc = MessageRepr::Ctc(CtcRepr { mn_addr: "192.0.2.1".parse().unwrap() });
/// let bytes = ctc.to_bytes().unwrap();
/// assert_eq!(&bytes[..], &[0x26, 0x80, 0x00, 0x08, 192, 0, 2, 1]);
/// assert_eq!(MessageView::parse(bytes).unwrap().to_repr(), ctc);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageRepr {
    /// CTAR.
    Ctar(CtarRepr),
    /// CTAA.
    Ctaa(CtaaRepr),
    /// CTD or PCTD.
    Ctd(CtdRepr),
    /// CTDR.
    Ctdr(CtdrRepr),
    /// CTC.
    Ctc(CtcRepr),
    /// CT-Req.
    CtReq(CtReqRepr),
}

fn check_family(
    message: &'static str,
    expected: AddressFamily,
    field: &'static str,
    addr: &IpAddr,
) -> Result<(), EmitError> {
    let found = AddressFamily::of(addr);
    if found != expected {
        return Err(EmitError::MixedAddressFamilies {
            message,
            field,
            expected,
            found,
        });
    }
    Ok(())
}

impl MessageRepr {
    /// The message type.
    pub fn message_type(&self) -> MessageType {
        match self {
            MessageRepr::Ctar(_) => MessageType::Ctar,
            MessageRepr::Ctaa(_) => MessageType::Ctaa,
            MessageRepr::Ctd(c) => c.message_type(),
            MessageRepr::Ctdr(_) => MessageType::Ctdr,
            MessageRepr::Ctc(_) => MessageType::Ctc,
            MessageRepr::CtReq(_) => MessageType::CtReq,
        }
    }

    /// The MN's previous address.
    pub fn mn_addr(&self) -> IpAddr {
        match self {
            MessageRepr::Ctar(m) => m.mn_addr,
            MessageRepr::Ctaa(m) => m.mn_addr,
            MessageRepr::Ctd(m) => m.mn_addr,
            MessageRepr::Ctdr(m) => m.mn_addr,
            MessageRepr::Ctc(m) => m.mn_addr,
            MessageRepr::CtReq(m) => m.mn_addr,
        }
    }

    fn family(&self) -> AddressFamily {
        AddressFamily::of(&self.mn_addr())
    }

    /// Octets the message will occupy (without checking limits).
    pub fn buffer_len(&self) -> usize {
        let a = self.family().addr_len();
        HEADER_LEN
            + match self {
                MessageRepr::Ctar(m) => {
                    2 * a + 8 + m.requests.iter().map(|r| r.wire_len()).sum::<usize>()
                }
                MessageRepr::Ctaa(m) => a + 4 * m.entries.len(),
                MessageRepr::Ctd(m) => {
                    4 + a
                        + m.key_block.as_ref().map_or(0, |k| 4 + k.key.len())
                        + m.blocks.iter().map(|b| b.wire_len()).sum::<usize>()
                }
                MessageRepr::Ctdr(m) => a + 4 * m.entries.len(),
                MessageRepr::Ctc(_) => a,
                MessageRepr::CtReq(m) => {
                    a + 8 + m.requests.iter().map(|r| r.wire_len()).sum::<usize>()
                }
            }
    }

    /// Check limits and address families, then append the message to `buf`.
    pub fn emit(&self, buf: &mut BytesMut) -> Result<(), EmitError> {
        let msg_type = self.message_type();
        let name = msg_type.name();
        let family = self.family();
        let length = self.buffer_len();
        if length > MAX_MESSAGE_LEN {
            return Err(EmitError::MessageTooLong {
                message: name,
                length,
            });
        }
        let flag = match self {
            MessageRepr::Ctar(m) => {
                check_family(name, family, "AR address", &m.ar_addr)?;
                m.ack
            }
            MessageRepr::Ctd(m) => {
                if let Some(k) = &m.key_block {
                    if k.key.len() > u16::MAX as usize {
                        return Err(EmitError::KeyTooLong {
                            length: k.key.len(),
                        });
                    }
                }
                for b in &m.blocks {
                    if b.wire_len() > super::MAX_CDB_LEN {
                        return Err(EmitError::CdbTooLong {
                            fpt: b.fpt,
                            length: b.wire_len(),
                        });
                    }
                }
                m.ack
            }
            MessageRepr::Ctdr(m) => m.success,
            _ => false,
        };
        buf.reserve(length);
        Header {
            msg_type,
            family,
            flag,
            length: length as u16,
        }
        .emit(buf);
        if !matches!(self, MessageRepr::Ctd(_)) {
            put_addr(buf, &self.mn_addr());
        }
        match self {
            MessageRepr::Ctar(m) => {
                put_addr(buf, &m.ar_addr);
                buf.put_u32(m.seq);
                buf.put_slice(&m.token.0);
                for r in &m.requests {
                    r.emit(buf);
                }
            }
            MessageRepr::Ctaa(CtaaRepr { entries, .. })
            | MessageRepr::Ctdr(CtdrRepr { entries, .. }) => {
                for e in entries {
                    e.emit(buf);
                }
            }
            MessageRepr::Ctd(m) => {
                // Elapsed Time precedes the MN address in CTD/PCTD.
                buf.put_u32(m.elapsed_ms);
                put_addr(buf, &m.mn_addr);
                if let Some(k) = &m.key_block {
                    buf.put_u16(k.algorithm);
                    buf.put_u16(k.key.len() as u16);
                    buf.put_slice(k.key.as_bytes());
                }
                for b in &m.blocks {
                    b.emit(buf)?;
                }
            }
            MessageRepr::Ctc(_) => {}
            MessageRepr::CtReq(m) => {
                buf.put_u32(m.seq);
                buf.put_slice(&m.token.0);
                for r in &m.requests {
                    r.emit(buf);
                }
            }
        }
        Ok(())
    }

    /// Emit into a fresh buffer.
    pub fn to_bytes(&self) -> Result<Bytes, EmitError> {
        let mut buf = BytesMut::with_capacity(self.buffer_len());
        self.emit(&mut buf)?;
        Ok(buf.freeze())
    }
}

macro_rules! into_repr {
    ($($t:ident => $v:ident),*) => {$(
        impl From<$t> for MessageRepr {
            fn from(m: $t) -> Self { MessageRepr::$v(m) }
        }
    )*};
}
into_repr!(CtarRepr => Ctar, CtaaRepr => Ctaa, CtdRepr => Ctd, CtdrRepr => Ctdr, Ctc => Ctc, CtReqRepr => CtReq);
