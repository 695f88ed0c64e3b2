//! IEEE 802.21-2008 Media Independent Handover (MIH) protocol.
//!
//! * [`wire`]: the zero-copy MIH frame codec (header, TLVs, data types, typed
//!   messages). It depends only on `bytes`, `nom` and `thiserror` and never
//!   touches a socket or a clock, so other stacks can embed it.
//!
//! ```
//! use bytes::Bytes;
//! use mihf::wire::{Frame, Message, Body};
//!
//! // MIH_N2N_HO_Commit.response, Status = Success (an ODTONE frame).
//! let bytes = Bytes::from_static(&[
//!     0x1c, 0x00, 0x38, 0x09, 0x03, 0x28, 0x00, 0x1b,
//!     0x01, 0x06, 0x05, b'm', b'i', b'h', b'f', b'2',
//!     0x02, 0x06, 0x05, b'm', b'i', b'h', b'f', b'1',
//!     0x03, 0x01, 0x00,
//!     0x34, 0x06, 0x05, b'm', b'n', b'-', b'0', b'1',
//! ]);
//! let frame = Frame::parse(bytes).unwrap();
//! assert_eq!(frame.tid(), 0x328);
//! let msg = Message::decode(&frame).unwrap();
//! assert_eq!(msg.name(), "MIH_N2N_HO_Commit.response");
//! match &msg.body {
//!     Body::N2nHoCommitResponse(rsp) => assert!(rsp.status.is_success()),
//!     other => panic!("unexpected {other:?}"),
//! }
//! ```

#[cfg(feature = "daemon")]
pub mod daemon;
pub mod proto;
pub mod wire;
