//! Typed decode errors. Every error names what was wrong and where.

use thiserror::Error;

/// An error found while decoding one value (the inside of a TLV).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ValueError {
    /// The value ended before a field of `need` octets could be read.
    #[error("truncated: {field} needs {need} octets, {have} left")]
    Truncated {
        field: &'static str,
        need: usize,
        have: usize,
    },
    /// A length (TLV, LIST count or OCTET_STRING) uses more extension octets than we accept.
    #[error("length field of {field} has {octets} extension octets (at most 8)")]
    LengthTooLong { field: &'static str, octets: usize },
    /// The value had octets left over after its data type was fully read.
    #[error("{extra} unexpected trailing octets after {field}")]
    TrailingBytes { field: &'static str, extra: usize },
    /// A CHOICE selector that names no alternative.
    #[error("{field}: CHOICE selector {selector} names no alternative")]
    BadChoice { field: &'static str, selector: u8 },
    /// A BOOLEAN that is neither 0 nor 1.
    #[error("{field}: BOOLEAN octet {value:#04x} is neither 0 nor 1")]
    BadBoolean { field: &'static str, value: u8 },
    /// A LIST whose element count cannot fit in the remaining octets.
    #[error("{field}: LIST claims {count} elements but only {have} octets remain")]
    ListTooLong {
        field: &'static str,
        count: usize,
        have: usize,
    },
    /// Any other constraint of the data type.
    #[error("{field}: {reason}")]
    Invalid {
        field: &'static str,
        reason: &'static str,
    },
}

/// An error found while decoding a frame or a typed message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Error {
    /// Fewer than the 8 octets of the MIH fixed header.
    #[error("frame truncated: the MIH header needs 8 octets, got {have}")]
    HeaderTruncated { have: usize },
    /// The header's Payload Length disagrees with the octets that follow it.
    #[error("payload length {declared} disagrees with the {available} octets after the header")]
    PayloadLength { declared: u16, available: usize },
    /// The TLV walk of the payload failed (a TLV header or value runs past the end).
    #[error("TLV #{index} at payload offset {offset}: {error}")]
    Tlv {
        index: usize,
        offset: usize,
        error: ValueError,
    },
    /// The frame is an MIH fragment (More-Fragment set or Fragment Number non-zero):
    /// its payload is not a TLV sequence until it is reassembled.
    #[error("frame is fragment {frag_no} (more={more}); reassemble before decoding TLVs")]
    Fragment { frag_no: u8, more: bool },
    /// Every message starts with Source MIHF ID (1) and Destination MIHF ID (2).
    #[error("{message}: the payload must start with TLV {expected} ({name}), found {found:?}")]
    MissingIdTlv {
        message: &'static str,
        expected: u8,
        name: &'static str,
        found: Option<u8>,
    },
    /// A mandatory TLV of the message is absent.
    #[error("{message}: mandatory TLV {tlv} ({name}) is missing")]
    MissingTlv {
        message: &'static str,
        tlv: u8,
        name: &'static str,
    },
    /// A TLV of the message appears after a TLV that must follow it, or twice.
    #[error("{message}: TLV {tlv} ({name}) is out of order or repeated")]
    OutOfOrder {
        message: &'static str,
        tlv: u8,
        name: &'static str,
    },
    /// A TLV's value does not decode as its data type (wrong length, bad CHOICE, ...).
    #[error("{message}: TLV {tlv} ({name}): {error}")]
    BadValue {
        message: &'static str,
        tlv: u8,
        name: &'static str,
        error: ValueError,
    },
    /// The message does not fit in one frame (Payload Length is 16 bits);
    /// it must be fragmented.
    #[error("payload of {len} octets exceeds the 65,535 a frame can carry")]
    PayloadTooLarge { len: usize },
}
