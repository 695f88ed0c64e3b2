//! The Service Mobility API events of the session service
//! ([`MobileService`]); connecting, registering, reconnecting and taking
//! sockets back are `testbed::svc_kit`'s.

use std::net::IpAddr;
use std::sync::Arc;

use mih_user::api::client::{ExportRequest, ImportRequest, ServiceClient};
use mih_user::api::wire::{Connection, Outcome, Role};
use testbed::svc_kit::{self, MobileService, Mobility};
use tracing::info;

use crate::service::Service;

impl MobileService for Service {
    fn mobility(&self) -> &Mobility {
        &self.kit
    }

    fn ues(&self) -> Vec<IpAddr> {
        self.ue_list()
    }

    fn connections_of(&self, ue: IpAddr) -> Vec<Connection> {
        self.live_connections(ue)
    }

    fn has_pending(&self, ue: IpAddr) -> bool {
        self.pending(ue)
    }

    async fn on_export(self: &Arc<Self>, api: &ServiceClient, req: ExportRequest) {
        let ctx = self.export(req.ue.to_canonical()).await;
        if !svc_kit::answer_export(api, &req, ctx).await {
            self.resume(req.ue.to_canonical());
        }
    }

    async fn on_import(self: &Arc<Self>, api: &ServiceClient, req: ImportRequest) {
        let result = self.import(req.ue.to_canonical(), &req.data);
        svc_kit::answer_import(api, &req, result).await;
    }

    fn on_outcome(self: &Arc<Self>, role: Role, outcome: Outcome, ue: IpAddr) {
        info!(%ue, ?role, ?outcome, "migration outcome");
        let ue = ue.to_canonical();
        match (role, outcome) {
            (Role::Source, Outcome::Committed) => self.drop_ue(ue),
            (Role::Source, Outcome::RolledBack) => self.resume(ue),
            (Role::Destination, Outcome::RolledBack) => self.drop_import(ue),
            (Role::Destination, Outcome::Committed) => {}
        }
    }

    async fn adopt_socket(self: &Arc<Self>, stream: std::net::TcpStream) -> bool {
        // A rebuilt socket is a new one: options such as TCP_NODELAY do
        // not travel with TCP_REPAIR.
        let _ = stream.set_nodelay(true);
        self.adopt(stream)
    }
}
