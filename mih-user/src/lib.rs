//! MIH-User: X2AP trigger, Service Mobility API, handover orchestration
//! (sans-IO core in [`orchestrator`], tokio daemon in `daemon`).

/// A handle: a `u64` newtype (serialized as the bare number, printed as it).
macro_rules! handle {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default, serde::Serialize, serde::Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

pub mod api;
#[cfg(feature = "daemon")]
pub mod daemon;
pub mod orchestrator;
pub mod sessions;
#[cfg(feature = "daemon")]
pub mod tap;
pub mod x2ap;
