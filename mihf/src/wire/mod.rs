//! The MIH frame codec: zero-copy views over [`bytes::Bytes`] and owned values
//! that emit into [`bytes::BytesMut`].
//!
//! Layers, from the bottom:
//! * [`header`]: the 8-octet fixed header ([`Header`], [`Mid`]) and [`Frame`],
//!   a validated view over one whole frame.
//! * [`tlv`]: the IEEE 802.21 length rule, the borrowing [`TlvIter`], and the
//!   [`Value`] trait that every data type implements.
//! * [`types`]: the data types carried by the messages (MIHF_ID, STATUS, LINK_ID, ...).
//! * [`message`]: typed messages ([`Message`], [`Body`]) for every primitive.
//!
//! Decoding checks every length against the remaining input before it reads or
//! slices, so no input can panic the decoder, loop, or make it allocate more
//! than the input's size.

pub mod error;
pub mod header;
pub mod info;
pub mod message;
pub mod tlv;
pub mod tlv_value;
pub mod types;

pub use error::{Error, ValueError};
pub use header::{Frame, Header, Mid, Opcode, ServiceId, HEADER_LEN};
pub use info::*;
pub use message::{Body, Message, RawTlvs};
pub use tlv::{decode_length, encode_length, length_len, Reader, Tlv, TlvIter, Value};
pub use tlv_value::{tlv_name, TlvValue};
pub use types::*;
