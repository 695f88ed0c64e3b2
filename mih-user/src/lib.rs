//! MIH-User: X2AP trigger, Service Mobility API, handover orchestration. Filled by later issues.

pub mod api;
