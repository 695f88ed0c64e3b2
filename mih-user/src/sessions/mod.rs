//! Session exporters/importers backed by the kernel (the traits are in
//! [`crate::orchestrator::sessions`]).

#[cfg(target_os = "linux")]
pub mod tcp_repair;
#[cfg(target_os = "linux")]
pub mod handoff;
#[cfg(target_os = "linux")]
pub mod route;
