//! RFC 4067 Context Transfer Protocol (CXTP).
//!
//! * [`wire`]: zero-copy codec for the seven messages (CTAR, CTAA, CTD,
//!   PCTD, CTDR, CTC, CT-Req) and their Context Data Blocks.
//! * [`token`]: the MN Authorization Token (HMAC-SHA1, first 32 bits) and
//!   zeroize-on-drop keys.
//! * [`profile`]: typed feature profiles, the FPT registry, built-in
//!   contexts (MLD, application service, TCP_REPAIR session).
//! * [`segment`]: contexts larger than one CDB / one message.
//! * [`engine`]: pAR, nAR and MN state machines.
//! * [`icmp`]: MN–AR ICMP framing (raw-socket driver with feature `icmp`).
//! * `transport` (feature `tokio`): TCP inter-router transport, port 5091.
//!
//! Everything except `transport` and `icmp::socket` is sans-IO: no sockets,
//! no clocks, no async runtime. See `README.md` for the design notes,
//! interpretations of the RFC and benchmark numbers.
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
