//! What the two daemons of the workspace, `mihfd` (crate `mihf`) and
//! `mih-user`, share around their protocol code: the HTTP endpoint
//! ([`http`]: axum on hyper 1), the Prometheus metrics ([`metrics`]:
//! prometheus-client), the bounded local listeners ([`listener`]), the
//! logs ([`logging`]: tracing-subscriber) and the process ([`runtime`]:
//! tokio runtime, shutdown signals).
//!
//! Only the daemons use it (their `daemon` features): the codecs and
//! sans-IO engines, and the fuzz targets built on them, do not.

pub mod http;
pub mod listener;
pub mod logging;
pub mod metrics;
pub mod runtime;
