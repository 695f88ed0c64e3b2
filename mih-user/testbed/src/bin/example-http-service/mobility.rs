//! The Service Mobility API side: what the download service does on each
//! event ([`MobileService`]): answer export and import requests with the
//! UE's context ([`crate::context`]) and act on migration outcomes. The
//! registrations, the users' updates and the reconnection after a restart
//! of the MIH-User are `testbed::svc_kit`'s.

use std::net::IpAddr;
use std::sync::Arc;

use mih_user::api::client::{ExportRequest, ImportRequest, ServiceClient};
use mih_user::api::wire::{Connection, Outcome, ReplyStatus, Role};
use testbed::svc_kit::{self, MobileService, Mobility};
use tracing::info;

use crate::context::{decode_context, encode_context};
use crate::service::{Control, Service};

impl MobileService for Service {
    fn mobility(&self) -> &Mobility {
        &self.kit
    }

    /// The UEs with a download running here.
    fn ues(&self) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = self.tables().downloads.values().map(|d| d.ue).collect();
        v.sort();
        v.dedup();
        v
    }

    fn connections_of(&self, ue: IpAddr) -> Vec<Connection> {
        self.tables()
            .downloads
            .values()
            .filter(|d| d.ue == ue)
            .map(|d| d.conn)
            .collect()
    }

    fn has_pending(&self, ue: IpAddr) -> bool {
        self.tables().imported.contains_key(&ue)
    }

    async fn on_export(self: &Arc<Self>, api: &ServiceClient, req: ExportRequest) {
        let downloads = self.freeze(req.ue).await;
        info!(ue = %req.ue, downloads = downloads.len(), "export: {:?}", downloads.iter().map(|d| (&d.name, d.offset)).collect::<Vec<_>>());
        let ctx = encode_context(self.args.file_size, self.args.seed, &downloads);
        if !svc_kit::answer_export(api, &req, ctx).await {
            self.set_control(req.ue, Control::Run);
        }
    }

    async fn on_import(self: &Arc<Self>, api: &ServiceClient, req: ImportRequest) {
        let r = match decode_context(&req.data) {
            Err(e) => Err((ReplyStatus::MalformedContext, e)),
            Ok((size, seed, _)) if size != self.args.file_size || seed != self.args.seed => Err((
                ReplyStatus::Refused,
                format!("context is for file size {size} seed {seed}"),
            )),
            Ok((_, _, d)) => Ok(d),
        };
        let result = r.map(|downloads| {
                info!(ue = %req.ue, "import: {:?}", downloads.iter().map(|d| (&d.name, d.offset)).collect::<Vec<_>>());
                let conns: Vec<Connection> = downloads
                    .iter()
                    .map(|d| d.conn)
                    .filter(|c| c.client.ip().to_canonical() == req.ue.to_canonical())
                    .collect();
                self.tables().imported.insert(req.ue, downloads);
                conns
        });
        svc_kit::answer_import(api, &req, result).await;
    }

    fn on_outcome(self: &Arc<Self>, role: Role, outcome: Outcome, ue: IpAddr) {
        info!(%ue, ?role, ?outcome, "migration outcome");
        match (role, outcome) {
            (Role::Source, Outcome::Committed) => {
                self.set_control(ue, Control::Stop);
                self.tables().imported.remove(&ue);
            }
            (Role::Source, Outcome::RolledBack) => self.set_control(ue, Control::Run),
            (Role::Destination, Outcome::RolledBack) => {
                self.tables().imported.remove(&ue);
            }
            (Role::Destination, Outcome::Committed) => {}
        }
    }

    async fn adopt_socket(self: &Arc<Self>, stream: std::net::TcpStream) -> bool {
        Service::adopt_socket(self, stream).await
    }
}
