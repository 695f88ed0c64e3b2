//! The Service Mobility API: how services on an edge cloud node (eNBC)
//! hand the per-UE state of their users to the MIH-User when a UE is
//! handed over, and receive the state of arriving UEs.
//!
//! * [`wire`]: the sans-IO codec of the protocol spoken on the local
//!   (Unix domain) socket; `mih-user/API.md` is its normative description.
//! * [`registry`]: the sans-IO server core: services, users, pending
//!   events, export/import operations, migration outcomes.
//! * [`ServiceContext`]: one service's context for one UE and its CXTP form.
//! * `server` (feature `daemon`): [`server::ApiServer`], the socket server
//!   the handover orchestrator drives.
//! * `client` (feature `daemon`): [`client::ServiceClient`], the async Rust
//!   client services use.
//!
//! A service's life on the API:
//!
//! ```no_run
//! # #[cfg(feature = "daemon")]
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use bytes::Bytes;
//! use mih_user::api::client::{Event, ServiceClient};
//! use mih_user::api::wire::Connection;
//!
//! let (client, mut events) = ServiceClient::connect("/run/mih-user/api.sock").await?;
//! client.register_service("video", cxtp::profile::fpt::APP_SERVICE).await?;
//! let ue = "10.45.0.7".parse()?;
//! let conn = Connection { client: "10.45.0.7:40312".parse()?, server: "192.0.2.1:8080".parse()? };
//! client.register_user("video", ue, &[conn]).await?;
//! while let Some(event) = events.recv().await {
//!     match event {
//!         Event::ExportRequested(req) => {
//!             // freeze the UE's sessions, then hand over their state
//!             client.export_context(&req, Bytes::from_static(b"movie.mp4@1048576")).await?;
//!         }
//!         Event::ImportRequested(req) => {
//!             // install req.data, then confirm (connections not known yet)
//!             client.import_context(&req, &[]).await?;
//!         }
//!         Event::MigrationOutcome(o) => println!("{} {:?} {:?}", o.ue, o.role, o.outcome),
//!     }
//! }
//! # Ok(()) }
//! ```

mod context;
pub mod registry;
pub mod wire;

#[cfg(feature = "daemon")]
pub mod client;
#[cfg(feature = "daemon")]
pub mod server;

pub use context::{is_service_fpt, ServiceContext};
pub use registry::{ApiError, ExportFailure, ImportReport, ImportStatus};
pub use wire::{Connection, Outcome, ReplyStatus, Role};
