//! The MIH-User's testbed: what the handover demo, the example HTTP service
//! and the end-to-end tests share, kept out of the product crate `mih-user`.
//!
//! * [`content`]: the example service's synthetic file content (the demo's
//!   client checks every octet against it);
//! * [`report`]: the demo's summary (Table I, context sizes, histograms as
//!   SVG).
//!
//! The binaries are `handover-demo` and `example-http-service`; see
//! `README.md` next to this crate's `Cargo.toml`.

pub mod content;
pub mod report;
