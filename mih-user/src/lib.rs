//! MIH-User: X2AP trigger, Service Mobility API, handover orchestration
//! (sans-IO core in [`orchestrator`], tokio daemon in `daemon`).

pub mod api;
#[cfg(feature = "daemon")]
pub mod daemon;
pub mod orchestrator;
pub mod sessions;
#[cfg(feature = "daemon")]
pub mod tap;
pub mod x2ap;
