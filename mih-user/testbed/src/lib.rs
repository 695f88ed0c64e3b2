//! The MIH-User's testbed: what the handover demo, the example HTTP service
//! and the end-to-end tests share, kept out of the product crate `mih-user`.
//!
//! * [`content`]: the example service's synthetic file content (the demo's
//!   client checks every octet against it);
//! * [`report`]: the demo's summary (Table I, context sizes, histograms as
//!   SVG);
//! * [`session`]: the session service's wire protocol and the client-side
//!   checker (its tests and the demo's client);
//! * [`svc_kit`]: what the example services share to move with their UEs
//!   (the Service Mobility API, the socket hand-off).
//!
//! The binaries are `handover-demo`, `example-http-service` and
//! `example-session-service`; see
//! `README.md` next to this crate's `Cargo.toml`.

pub mod content;
pub mod report;
pub mod session;
pub mod svc_kit;
