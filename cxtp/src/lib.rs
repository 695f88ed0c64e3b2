//! RFC 4067 Context Transfer Protocol (CXTP).
//!
//! * [`wire`]: zero-copy codec for the seven messages (CTAR, CTAA, CTD,
//!   PCTD, CTDR, CTC, CT-Req) and their Context Data Blocks.
//! * [`token`]: the MN Authorization Token (HMAC-SHA1, first 32 bits) and
//!   zeroize-on-drop keys.
//!
//! Everything except the optional `transport` module (cargo feature
//! `tokio`) is sans-IO: no sockets, no clocks, no async runtime.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod engine;
pub mod icmp;
pub mod profile;
pub mod segment;
pub mod token;
#[cfg(feature = "tokio")]
pub mod transport;
pub mod wire;
