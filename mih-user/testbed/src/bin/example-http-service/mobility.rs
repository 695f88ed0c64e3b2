//! The Service Mobility API side: register the service and each
//! downloading UE with the local MIH-User, answer its export and import
//! requests with the UE's context ([`crate::context`]), act on migration
//! outcomes, and reconnect (registering everything again) when the
//! MIH-User restarts.

use std::net::IpAddr;
use std::time::Duration;

use mih_user::api::client::{
    ClientError, Event, EventStream, ExportRequest, ImportRequest, ServiceClient,
};
use mih_user::api::wire::{Connection, ErrorCode, Outcome, ReplyStatus, Role};
use tracing::{debug, info, warn};

use crate::context::{decode_context, encode_context};
use crate::service::{Control, Service, Shared};
use crate::Args;

impl Service {
    /// The UEs with a download running here.
    pub(crate) fn ues(&self) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = self.tables().downloads.values().map(|d| d.ue).collect();
        v.sort();
        v.dedup();
        v
    }

    pub(crate) fn connections_of(&self, ue: IpAddr) -> Vec<Connection> {
        self.tables()
            .downloads
            .values()
            .filter(|d| d.ue == ue)
            .map(|d| d.conn)
            .collect()
    }

    /// Tell the API which connections `ue` has now.
    pub(crate) async fn sync_user(&self, ue: IpAddr) {
        let Some(api) = self.api() else { return };
        let conns = self.connections_of(ue);
        let pending_import = self.tables().imported.contains_key(&ue);
        let r = if conns.is_empty() && !pending_import {
            api.deregister_user(&self.args.service_id, ue).await
        } else {
            api.update_user(&self.args.service_id, ue, &conns).await
        };
        match r {
            Ok(()) => {}
            Err(e) if e.code() == Some(ErrorCode::UnknownUser) => {}
            Err(e) => warn!(%ue, "API user update failed: {e}"),
        }
    }

    pub(crate) async fn on_export(&self, api: &ServiceClient, req: ExportRequest) {
        let downloads = self.freeze(req.ue).await;
        info!(ue = %req.ue, downloads = downloads.len(), "export: {:?}", downloads.iter().map(|d| (&d.name, d.offset)).collect::<Vec<_>>());
        let ctx = encode_context(self.args.file_size, self.args.seed, &downloads);
        if let Err(e) = api.export_context(&req, ctx).await {
            warn!(ue = %req.ue, "export answer failed: {e}; resuming");
            self.set_control(req.ue, Control::Run);
        }
    }

    pub(crate) async fn on_import(&self, api: &ServiceClient, req: ImportRequest) {
        let r = match decode_context(&req.data) {
            Err(e) => Err((ReplyStatus::MalformedContext, e)),
            Ok((size, seed, _)) if size != self.args.file_size || seed != self.args.seed => Err((
                ReplyStatus::Refused,
                format!("context is for file size {size} seed {seed}"),
            )),
            Ok((_, _, d)) => Ok(d),
        };
        let answer = match r {
            Ok(downloads) => {
                info!(ue = %req.ue, "import: {:?}", downloads.iter().map(|d| (&d.name, d.offset)).collect::<Vec<_>>());
                let conns: Vec<Connection> = downloads
                    .iter()
                    .map(|d| d.conn)
                    .filter(|c| c.client.ip().to_canonical() == req.ue.to_canonical())
                    .collect();
                self.tables().imported.insert(req.ue, downloads);
                api.import_context(&req, &conns).await
            }
            Err((status, reason)) => {
                warn!(ue = %req.ue, "refusing import: {reason}");
                api.refuse_import(&req, status, &reason).await
            }
        };
        if let Err(e) = answer {
            warn!(ue = %req.ue, "import answer failed: {e}");
        }
    }

    pub(crate) fn on_outcome(&self, role: Role, outcome: Outcome, ue: IpAddr) {
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
}

pub(crate) async fn connect_api(
    args: &Args,
) -> Result<Option<(ServiceClient, EventStream)>, ClientError> {
    let Some(path) = &args.api_socket else {
        return Ok(None);
    };
    let mut tries = 0;
    let (client, events) = loop {
        match ServiceClient::connect(path).await {
            Ok(c) => break c,
            Err(ClientError::Io(e)) if tries < 50 => {
                debug!("API not reachable yet: {e}");
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e),
        }
    };
    client.register_service(&args.service_id, args.fpt).await?;
    info!(service = %args.service_id, fpt = format_args!("{:#06x}", args.fpt), api = %path.display(), "registered with the Service Mobility API");
    Ok(Some((client, events)))
}

/// Serve the API's events; when the connection closes (the MIH-User
/// restarted), reconnect, register the service and its UEs again, and go
/// on.
pub(crate) async fn serve_api(svc: Shared, mut client: ServiceClient, mut events: EventStream) {
    let Some(path) = svc.args.api_socket.clone() else {
        return;
    };
    loop {
        while let Some(ev) = events.recv().await {
            match ev {
                Event::ExportRequested(req) => svc.on_export(&client, req).await,
                Event::ImportRequested(req) => svc.on_import(&client, req).await,
                Event::MigrationOutcome(o) => svc.on_outcome(o.role, o.outcome, o.ue),
            }
        }
        warn!("Service Mobility API connection closed; reconnecting");
        *svc.api.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let mut wait = Duration::from_millis(100);
        (client, events) = loop {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(2));
            let (c, ev) = match ServiceClient::connect(&path).await {
                Ok(v) => v,
                Err(e) => {
                    debug!("API not reachable yet: {e}");
                    continue;
                }
            };
            match c.register_service(&svc.args.service_id, svc.args.fpt).await {
                Ok(()) => break (c, ev),
                Err(e) => warn!("registering the service again failed: {e}"),
            }
        };
        *svc.api.lock().unwrap_or_else(|e| e.into_inner()) = Some(client.clone());
        let ues = svc.ues();
        info!(service = %svc.args.service_id, users = ues.len(), "registered with the Service Mobility API again");
        for ue in ues {
            svc.sync_user(ue).await;
        }
    }
}
