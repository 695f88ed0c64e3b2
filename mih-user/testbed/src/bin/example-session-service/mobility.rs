//! The Service Mobility API events of the session service
//! ([`MobileService`]); connecting, registering, reconnecting and taking
//! sockets back are `testbed::svc_kit`'s.

use std::net::IpAddr;
use std::sync::Arc;

use mih_user::api::client::{ExportRequest, ImportRequest, ServiceClient};
use mih_user::api::wire::{Connection, Outcome, Role};
use testbed::svc_kit::{MobileService, Mobility};
use tracing::{info, warn};

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
        let ctx = self.export(req.ue).await;
        if let Err(e) = api.export_context(&req, ctx).await {
            warn!(ue = %req.ue, "export answer failed: {e}; resuming");
            self.resume(req.ue);
        }
    }

    async fn on_import(self: &Arc<Self>, api: &ServiceClient, req: ImportRequest) {
        let answer = match self.import(req.ue, &req.data) {
            Ok(conns) => api.import_context(&req, &conns).await,
            Err((status, reason)) => {
                warn!(ue = %req.ue, "refusing import: {reason}");
                api.refuse_import(&req, status, &reason).await
            }
        };
        if let Err(e) = answer {
            warn!(ue = %req.ue, "import answer failed: {e}");
        }
    }

    fn on_outcome(self: &Arc<Self>, role: Role, outcome: Outcome, ue: IpAddr) {
        info!(%ue, ?role, ?outcome, "migration outcome");
        match (role, outcome) {
            (Role::Source, Outcome::Committed) => self.drop_ue(ue),
            (Role::Source, Outcome::RolledBack) => self.resume(ue),
            (Role::Destination, Outcome::RolledBack) => self.drop_import(ue),
            (Role::Destination, Outcome::Committed) => {}
        }
    }

    async fn adopt_socket(self: &Arc<Self>, stream: std::net::TcpStream) -> bool {
        self.adopt(stream)
    }
}
