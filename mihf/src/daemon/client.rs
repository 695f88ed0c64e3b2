//! A MIH-User's end of the MIH_SAP (used by mihctl, the tests and the
//! benchmark): UDP on loopback, one frame per datagram.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::UdpSocket;

use crate::proto::sap::{self, Registration};
use crate::wire::{Message, MihfId, Opcode};

/// A user attached to a running mihfd.
pub struct SapClient {
    sock: UdpSocket,
    mihf: SocketAddr,
    user_id: MihfId,
    next_tid: u16,
    /// Frames received while waiting for something else.
    backlog: VecDeque<Message>,
}

fn timeout_err(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("no {what} from mihfd"))
}

impl SapClient {
    /// Bind an ephemeral loopback port, register, and wait for the
    /// User_Register.confirm (an error if it refuses: the MIHF's user table
    /// is full).
    pub async fn connect(mihf: SocketAddr, reg: Registration) -> io::Result<SapClient> {
        let bind: SocketAddr = if mihf.is_ipv4() {
            "127.0.0.1:0".parse().unwrap_or(mihf)
        } else {
            "[::1]:0".parse().unwrap_or(mihf)
        };
        let sock = UdpSocket::bind(bind).await?;
        let mut c = SapClient {
            sock,
            mihf,
            user_id: reg.user_id.clone(),
            next_tid: 1,
            backlog: VecDeque::new(),
        };
        let m = sap::register_indication(&reg, &MihfId::from_static(sap::LOCAL_MIHF), 0);
        c.send(&m).await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        loop {
            let m = tokio::time::timeout_at(deadline, c.recv_raw())
                .await
                .map_err(|_| timeout_err("User_Register.confirm"))??;
            if m.header.mid == sap::USER_REGISTER_CONFIRM {
                return match crate::proto::status::status_of(&m) {
                    Some(s) if !s.is_success() => Err(io::Error::new(
                        io::ErrorKind::ConnectionRefused,
                        format!("mihfd refused the registration (status {})", s.0),
                    )),
                    _ => Ok(c),
                };
            }
            c.backlog.push_back(m);
        }
    }

    pub fn user_id(&self) -> &MihfId {
        &self.user_id
    }
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()
    }

    /// Send one frame to mihfd.
    pub async fn send(&self, msg: &Message) -> io::Result<()> {
        let b = msg
            .to_bytes()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        self.sock.send_to(&b, self.mihf).await.map(|_| ())
    }

    async fn recv_raw(&self) -> io::Result<Message> {
        let mut buf = vec![0u8; 65_536];
        loop {
            let (n, from) = self.sock.recv_from(&mut buf).await?;
            if from != self.mihf {
                continue;
            }
            if let Ok(m) = Message::from_bytes(Bytes::copy_from_slice(&buf[..n])) {
                return Ok(m);
            }
        }
    }

    /// The next frame from mihfd (an indication or a confirm).
    pub async fn recv(&mut self) -> io::Result<Message> {
        if let Some(m) = self.backlog.pop_front() {
            return Ok(m);
        }
        self.recv_raw().await
    }

    /// Send a request (its TID is set here) and wait for the matching confirm.
    pub async fn request(&mut self, mut msg: Message, timeout: Duration) -> io::Result<Message> {
        let tid = self.next_tid;
        self.next_tid = if tid >= 4095 { 1 } else { tid + 1 };
        msg.header.tid = tid;
        msg.source = self.user_id.clone();
        let want = msg.header.mid.with_opcode(Opcode::Confirm);
        self.send(&msg).await?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let m = tokio::time::timeout_at(deadline, self.recv_raw())
                .await
                .map_err(|_| timeout_err("confirm"))??;
            if m.header.mid == want && m.header.tid == tid {
                return Ok(m);
            }
            self.backlog.push_back(m);
        }
    }

    /// Answer an indication received from mihfd with `response` (its MID,
    /// TID and IDs are set from the indication).
    pub async fn respond(&self, indication: &Message, mut response: Message) -> io::Result<()> {
        response.header.mid = indication.header.mid.with_opcode(Opcode::Response);
        response.header.tid = indication.header.tid;
        response.source = self.user_id.clone();
        response.destination = indication.source.clone();
        self.send(&response).await
    }

    /// Leave the SAP.
    pub async fn deregister(&self) -> io::Result<()> {
        self.send(&sap::deregister_indication(
            &self.user_id,
            &MihfId::from_static(sap::LOCAL_MIHF),
            0,
        ))
        .await
    }
}
