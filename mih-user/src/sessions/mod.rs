//! Session exporters/importers backed by the kernel (the traits are in
//! [`crate::orchestrator::sessions`]).

#[cfg(all(target_os = "linux", feature = "daemon"))]
pub mod handoff;
#[cfg(target_os = "linux")]
pub mod journal;
#[cfg(target_os = "linux")]
pub mod netns;
#[cfg(target_os = "linux")]
pub mod route;
#[cfg(target_os = "linux")]
pub mod tcp_repair;
