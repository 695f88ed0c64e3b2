//! The socket hand-off (`--handoff-socket`, the MIH-User in
//! `sessions.mode = "tcp_repair"`): at the export a download gives its TCP
//! socket to the MIH-User (`GIVE`), which freezes it with TCP_REPAIR and
//! moves it; a socket that comes back (`TAKE`: rebuilt at the destination,
//! or restored at the source after a rollback or a restart) continues its
//! download's body where it stopped.

use tokio::net::TcpStream;

use crate::service::{Service, Shared};

impl Service {
    /// Hand a migrated TCP socket to the service (the TCP_REPAIR path): if
    /// an imported (or, at the source, parked) download has the socket's
    /// 4-tuple, its body continues on the socket from that offset, without
    /// a new HTTP header. Returns false (and drops the socket) otherwise.
    pub(crate) async fn adopt_socket(self: &Shared, stream: std::net::TcpStream) -> bool {
        let (Ok(peer), Ok(local)) = (stream.peer_addr(), stream.local_addr()) else {
            return false;
        };
        let ue = peer.ip().to_canonical();
        let found = {
            let mut t = self.tables();
            let Some(list) = t.imported.get_mut(&ue) else {
                return false;
            };
            let Some(i) = list
                .iter()
                .position(|d| d.conn.client == peer && d.conn.server == local)
            else {
                return false;
            };
            let d = list.remove(i);
            if list.is_empty() {
                t.imported.remove(&ue);
            }
            d
        };
        if stream.set_nonblocking(true).is_err() {
            return false;
        }
        let Ok(stream) = TcpStream::from_std(stream) else {
            return false;
        };
        let svc = self.clone();
        tokio::spawn(async move {
            svc.run_download(stream, ue, found.conn, found.name, found.offset, found.end)
                .await
        });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::DownloadState;
    use crate::service::tests::test_service;
    use mih_user::api::wire::Connection;
    use std::time::Duration;
    use testbed::content::fill as content;
    use tokio::io::AsyncReadExt;

    /// The TCP_REPAIR hand-over hook: an adopted socket continues the body
    /// from the imported offset.
    #[tokio::test]
    async fn adopted_socket_continues_from_the_offset() {
        let svc = test_service(0);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, peer) = listener.accept().unwrap();
        let conn = Connection {
            client: peer,
            server: server.local_addr().unwrap(),
        };
        svc.tables().imported.insert(
            peer.ip(),
            vec![DownloadState {
                conn,
                name: "f.bin".into(),
                offset: 90_000,
                end: 100_000,
            }],
        );
        assert!(svc.adopt_socket(server).await);
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut got))
            .await
            .unwrap()
            .unwrap();
        let mut want = vec![0u8; 10_000];
        content(1, "f.bin", 90_000, &mut want);
        assert_eq!(got, want);
        // nothing imported for an unknown 4-tuple
        let (s2, _) = {
            let _c = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            listener.accept().unwrap()
        };
        assert!(!svc.adopt_socket(s2).await);
    }
}
