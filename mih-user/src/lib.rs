//! MIH-User: X2AP trigger, Service Mobility API, handover orchestration. Filled by later issues.

pub mod api;
#[cfg(feature = "daemon")]
pub mod tap;
pub mod x2ap;
