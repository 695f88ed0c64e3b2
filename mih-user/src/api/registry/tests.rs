//! Unit tests of the sans-IO registry (no sockets, no clock).

use super::*;
use crate::api::wire::{ErrorCode, Hello, ImportContext};

const FPT: u16 = cxtp::profile::fpt::APP_SERVICE;

fn ue(n: u8) -> IpAddr {
    IpAddr::from([10, 45, 0, n])
}

fn conn_of(ue: IpAddr, port: u16) -> Connection {
    Connection {
        client: SocketAddr::new(ue, port),
        server: "192.0.2.1:8080".parse().unwrap(),
    }
}

/// The registry and the outputs taken from it so far (each test takes what
/// it checks out of `out`).
struct T {
    reg: Registry,
    out: Vec<Output>,
    rid: u32,
}

impl T {
    fn new() -> Self {
        T {
            reg: Registry::new(Limits::default(), "test"),
            out: Vec::new(),
            rid: 100,
        }
    }
    /// Take every output the last input queued (call after each input).
    fn pull(&mut self) {
        while let Some(o) = self.reg.poll_output() {
            self.out.push(o);
        }
    }
    fn client(&mut self) -> ConnId {
        let c = self.reg.connect();
        self.reg.on_frame(
            c,
            Frame::new(
                1,
                Message::Hello(Hello {
                    min_version: 1,
                    max_version: 1,
                    max_frame: 1 << 20,
                    client_name: "t".into(),
                }),
            ),
        );
        self.pull();
        assert!(matches!(
            self.out.pop(),
            Some(Output::Send {
                frame: Frame {
                    message: Message::HelloAck(_),
                    ..
                },
                ..
            })
        ));
        c
    }
    /// Send a request and return its answer (Ok or the error code).
    fn req(&mut self, c: ConnId, m: Message) -> Result<(), ErrorCode> {
        self.rid += 1;
        let rid = self.rid;
        self.reg.on_frame(c, Frame::new(rid, m));
        self.pull();
        let i = self
            .out
            .iter()
            .position(|o| matches!(o, Output::Send { conn, frame } if *conn == c && frame.request_id == rid))
            .expect("an answer");
        match self.out.remove(i) {
            Output::Send { frame, .. } => match frame.message {
                Message::Ok => Ok(()),
                Message::Error(e) => Err(e.code),
                m => panic!("unexpected {m:?}"),
            },
            _ => unreachable!(),
        }
    }
    fn service(&mut self, c: ConnId, id: &str) {
        self.req(
            c,
            Message::RegisterService(RegisterService {
                service_id: id.into(),
                fpt: FPT,
            }),
        )
        .unwrap();
    }
    fn user(&mut self, c: ConnId, id: &str, u: IpAddr) -> Result<(), ErrorCode> {
        self.req(
            c,
            Message::RegisterUser(RegisterUser {
                service_id: id.into(),
                ue: u,
                replace: false,
                connections: vec![conn_of(u, 40000)],
            }),
        )
    }
    /// Events sent so far to `c` (drained).
    fn events(&mut self, c: ConnId) -> Vec<Frame> {
        let mut ev = Vec::new();
        self.out.retain(|o| match o {
            Output::Send { conn, frame } if *conn == c => {
                ev.push(frame.clone());
                false
            }
            _ => true,
        });
        ev
    }
    fn completed(&mut self) -> Vec<(OpId, OpResult)> {
        let mut v = Vec::new();
        self.out.retain(|o| match o {
            Output::Complete { op, result } => {
                v.push((*op, result.clone()));
                false
            }
            _ => true,
        });
        v
    }
}

#[test]
fn handshake_is_required_and_versions_checked() {
    let mut t = T::new();
    let c = t.reg.connect();
    t.reg.on_frame(
        c,
        Frame::new(
            5,
            Message::DeregisterService(DeregisterService {
                service_id: "x".into(),
            }),
        ),
    );
    t.pull();
    assert!(
        matches!(&t.out[0], Output::Send { frame: Frame { request_id: 5, message: Message::Error(e) }, .. } if e.code == ErrorCode::HandshakeRequired)
    );
    assert_eq!(t.out[1], Output::Close { conn: c });
    assert!(!t.reg.is_connected(c));

    let c = t.reg.connect();
    t.out.clear();
    t.reg.on_frame(
        c,
        Frame::new(
            1,
            Message::Hello(Hello {
                min_version: 2,
                max_version: 3,
                max_frame: 1 << 20,
                client_name: String::new(),
            }),
        ),
    );
    t.pull();
    assert!(
        matches!(&t.out[0], Output::Send { frame: Frame { message: Message::Error(e), .. }, .. } if e.code == ErrorCode::UnsupportedVersion)
    );
    assert_eq!(t.out[1], Output::Close { conn: c });
}

#[test]
fn registration_errors() {
    let mut t = T::new();
    let a = t.client();
    let b = t.client();
    t.service(a, "video");
    let reg = |id: &str, fpt| {
        Message::RegisterService(RegisterService {
            service_id: id.into(),
            fpt,
        })
    };
    assert_eq!(
        t.req(b, reg("video", FPT)),
        Err(ErrorCode::DuplicateService)
    );
    assert_eq!(
        t.req(a, reg("video", FPT)),
        Err(ErrorCode::DuplicateService)
    );
    assert_eq!(t.req(b, reg("", FPT)), Err(ErrorCode::InvalidArgument));
    assert_eq!(
        t.req(b, reg(&"x".repeat(256), FPT)),
        Err(ErrorCode::InvalidArgument)
    );
    assert_eq!(t.req(b, reg("tcp", 0xFF02)), Err(ErrorCode::InvalidFpt));
    assert_eq!(t.user(b, "video", ue(1)), Err(ErrorCode::NotOwner));
    assert_eq!(t.user(b, "nothing", ue(1)), Err(ErrorCode::UnknownService));
    assert_eq!(t.user(a, "video", ue(1)), Ok(()));
    assert_eq!(t.user(a, "video", ue(1)), Err(ErrorCode::DuplicateUser));
    // replace flag updates instead
    assert_eq!(
        t.req(
            a,
            Message::RegisterUser(RegisterUser {
                service_id: "video".into(),
                ue: ue(1),
                replace: true,
                connections: vec![conn_of(ue(1), 1), conn_of(ue(1), 2)],
            })
        ),
        Ok(())
    );
    assert_eq!(t.reg.user_connections(ue(1))[0].1.len(), 2);
    // connection not from the UE
    assert_eq!(
        t.req(
            a,
            Message::RegisterUser(RegisterUser {
                service_id: "video".into(),
                ue: ue(2),
                replace: false,
                connections: vec![conn_of(ue(3), 1)],
            })
        ),
        Err(ErrorCode::InvalidArgument)
    );
    assert_eq!(
        t.req(
            a,
            Message::DeregisterUser(DeregisterUser {
                service_id: "video".into(),
                ue: ue(9)
            })
        ),
        Err(ErrorCode::UnknownUser)
    );
    assert_eq!(t.reg.user_count(), 1);
    // a server message from a client
    assert_eq!(t.req(a, Message::Ok), Err(ErrorCode::UnexpectedMessage));
    assert_eq!(
        t.req(
            a,
            Message::Hello(Hello {
                min_version: 1,
                max_version: 1,
                max_frame: 1 << 20,
                client_name: String::new()
            })
        ),
        Err(ErrorCode::UnexpectedMessage)
    );
}

#[test]
fn ipv4_mapped_addresses_are_one_ue() {
    let mut t = T::new();
    let a = t.client();
    t.service(a, "s");
    let mapped: IpAddr = "::ffff:10.45.0.1".parse().unwrap();
    assert_eq!(
        t.req(
            a,
            Message::RegisterUser(RegisterUser {
                service_id: "s".into(),
                ue: mapped,
                replace: false,
                connections: vec![conn_of(mapped, 5)],
            })
        ),
        Ok(())
    );
    assert_eq!(t.user(a, "s", ue(1)), Err(ErrorCode::DuplicateUser));
    assert_eq!(t.reg.user_connections(ue(1)).len(), 1);
}

#[test]
fn limits() {
    let mut t = T::new();
    t.reg.limits.max_services = 1;
    t.reg.limits.max_users = 1;
    let a = t.client();
    t.service(a, "s");
    assert_eq!(
        t.req(
            a,
            Message::RegisterService(RegisterService {
                service_id: "t".into(),
                fpt: FPT
            })
        ),
        Err(ErrorCode::LimitReached)
    );
    t.user(a, "s", ue(1)).unwrap();
    assert_eq!(t.user(a, "s", ue(2)), Err(ErrorCode::LimitReached));
    let many: Vec<_> = (0..65).map(|p| conn_of(ue(1), p)).collect();
    assert_eq!(
        t.req(
            a,
            Message::RegisterUser(RegisterUser {
                service_id: "s".into(),
                ue: ue(1),
                replace: true,
                connections: many
            })
        ),
        Err(ErrorCode::LimitReached)
    );
}

fn export_of(f: &Frame) -> (u32, String) {
    match &f.message {
        Message::ExportRequested(e) => (f.request_id, e.service_id.clone()),
        m => panic!("{m:?}"),
    }
}

#[test]
fn export_collects_every_service_then_outcome_drops_the_user() {
    let mut t = T::new();
    let a = t.client();
    let b = t.client();
    t.service(a, "video");
    t.service(b, "chat");
    t.user(a, "video", ue(1)).unwrap();
    t.user(b, "chat", ue(1)).unwrap();
    t.user(b, "chat", ue(2)).unwrap();
    assert_eq!(t.reg.user_count(), 2);

    let op = t.reg.start_export(ue(1), 500).unwrap();
    t.pull();
    assert_eq!(t.reg.start_export(ue(1), 500), Err(ApiError::UeBusy(ue(1))));
    assert_eq!(
        t.reg.start_export(ue(7), 500),
        Err(ApiError::UnknownUe(ue(7)))
    );
    // A refused start queues nothing.
    assert_eq!(t.reg.poll_output(), None);
    let (ea, _) = export_of(&t.events(a)[0]);
    let (eb, _) = export_of(&t.events(b)[0]);
    // wrong service / kind / UE
    assert_eq!(
        t.req(b, export_answer(ea, "chat", ue(1), Bytes::new())),
        Err(ErrorCode::EventMismatch)
    );
    assert_eq!(
        t.req(b, export_answer(eb, "chat", ue(2), Bytes::new())),
        Err(ErrorCode::EventMismatch)
    );
    assert_eq!(
        t.req(a, export_answer(eb, "chat", ue(1), Bytes::new())),
        Err(ErrorCode::NotOwner)
    );
    assert_eq!(
        t.req(a, export_answer(999, "video", ue(1), Bytes::new())),
        Err(ErrorCode::UnknownEvent)
    );
    t.req(
        a,
        export_answer(ea, "video", ue(1), Bytes::from_static(b"V")),
    )
    .unwrap();
    assert!(t.completed().is_empty());
    t.req(
        b,
        export_answer(eb, "chat", ue(1), Bytes::from_static(b"C")),
    )
    .unwrap();
    assert_eq!(
        t.completed(),
        vec![(
            op,
            OpResult::Export(Ok(vec![
                ServiceContext::new("chat", FPT, Bytes::from_static(b"C")),
                ServiceContext::new("video", FPT, Bytes::from_static(b"V")),
            ]))
        )]
    );
    // answered twice
    assert_eq!(
        t.req(a, export_answer(ea, "video", ue(1), Bytes::new())),
        Err(ErrorCode::UnknownEvent)
    );
    assert!(t.reg.is_migrating(ue(1)));
    assert_eq!(
        t.reg.notify_outcome(ue(1), Outcome::Committed, "CTDR ok"),
        Ok(2)
    );
    t.pull();
    for c in [a, b] {
        let ev = t.events(c);
        assert!(
            matches!(&ev[0].message, Message::MigrationOutcome(m) if m.role == Role::Source && m.outcome == Outcome::Committed && m.cause == "CTDR ok")
        );
    }
    assert_eq!(t.reg.user_count(), 1);
    assert!(t.reg.user_connections(ue(1)).is_empty());
    assert_eq!(
        t.reg.notify_outcome(ue(1), Outcome::Committed, ""),
        Err(ApiError::NoMigration(ue(1)))
    );
    t.pull();
}

#[test]
fn refusal_fails_fast_and_rollback_keeps_users() {
    let mut t = T::new();
    let a = t.client();
    let b = t.client();
    t.service(a, "video");
    t.service(b, "chat");
    t.user(a, "video", ue(1)).unwrap();
    t.user(b, "chat", ue(1)).unwrap();
    let op = t.reg.start_export(ue(1), 500).unwrap();
    t.pull();
    let (ea, _) = export_of(&t.events(a)[0]);
    let (eb, _) = export_of(&t.events(b)[0]);
    t.req(
        a,
        Message::ExportContext(ExportContext {
            event_id: ea,
            service_id: "video".into(),
            ue: ue(1),
            status: ReplyStatus::NoCapacity,
            reason: "busy".into(),
            data: Bytes::new(),
        }),
    )
    .unwrap();
    let done = t.completed();
    assert!(
        matches!(&done[..], [(o, OpResult::Export(Err(ApiError::ExportFailed { service_id, cause: ExportFailure::Refused { status: ReplyStatus::NoCapacity, .. }, .. })))] if *o == op && service_id == "video")
    );
    // the other service's event is gone
    assert_eq!(
        t.req(b, export_answer(eb, "chat", ue(1), Bytes::new())),
        Err(ErrorCode::UnknownEvent)
    );
    assert_eq!(t.reg.pending_events(), 0);
    t.reg
        .notify_outcome(ue(1), Outcome::RolledBack, "refused")
        .unwrap();
    t.pull();
    assert_eq!(t.reg.user_connections(ue(1)).len(), 2);
    assert!(!t.reg.is_migrating(ue(1)));
}

#[test]
fn timeout_names_the_silent_services() {
    let mut t = T::new();
    let a = t.client();
    let b = t.client();
    t.service(a, "video");
    t.service(b, "chat");
    t.user(a, "video", ue(1)).unwrap();
    t.user(b, "chat", ue(1)).unwrap();
    let op = t.reg.start_export(ue(1), 500).unwrap();
    t.pull();
    let (ea, _) = export_of(&t.events(a)[0]);
    t.req(a, export_answer(ea, "video", ue(1), Bytes::new()))
        .unwrap();
    assert!(t.reg.cancel(op));
    t.pull();
    assert!(!t.reg.cancel(op));
    t.pull();
    assert_eq!(
        t.completed(),
        vec![(
            op,
            OpResult::Export(Err(ApiError::Timeout {
                ue: ue(1),
                pending: vec!["chat".into()]
            }))
        )]
    );
    assert_eq!(t.reg.pending_events(), 0);
    assert_eq!(t.reg.pending_ops(), 0);
}

#[test]
fn disconnect_cleans_up_and_fails_pending_export() {
    let mut t = T::new();
    let a = t.client();
    let b = t.client();
    t.service(a, "video");
    t.service(a, "audio");
    t.service(b, "chat");
    t.user(a, "video", ue(1)).unwrap();
    t.user(a, "audio", ue(2)).unwrap();
    t.user(b, "chat", ue(1)).unwrap();
    let op = t.reg.start_export(ue(1), 500).unwrap();
    t.pull();
    t.events(a);
    t.reg.disconnect(a);
    t.pull();
    t.reg.disconnect(a); // idempotent
    t.pull();
    assert!(!t.reg.has_service("video") && !t.reg.has_service("audio"));
    assert_eq!(t.reg.user_count(), 1);
    assert_eq!(t.reg.registration_count(), 1);
    let done = t.completed();
    assert!(
        matches!(&done[..], [(o, OpResult::Export(Err(ApiError::ExportFailed { cause: ExportFailure::ServiceGone, .. })))] if *o == op)
    );
    assert_eq!(t.reg.pending_events(), 0);
}

fn import_of(f: &Frame) -> u32 {
    match &f.message {
        Message::ImportRequested(_) => f.request_id,
        m => panic!("{m:?}"),
    }
}

#[test]
fn import_reports_per_service() {
    let mut t = T::new();
    let a = t.client();
    let b = t.client();
    t.service(a, "video");
    t.service(b, "chat");
    let ctxs = vec![
        ServiceContext::new("video", FPT, Bytes::from_static(b"v")),
        ServiceContext::new("chat", 0xFF42, Bytes::from_static(b"c")),
        ServiceContext::new("absent", FPT, Bytes::new()),
        ServiceContext::new("video", FPT, Bytes::new()),
    ];
    let op = t.reg.start_import(ue(1), ctxs).unwrap();
    t.pull();
    let ea = import_of(&t.events(a)[0]);
    let fb = t.events(b);
    let eb = import_of(&fb[0]);
    assert!(
        matches!(&fb[0].message, Message::ImportRequested(m) if m.fpt == 0xFF42 && &m.data[..] == b"c")
    );
    t.req(
        a,
        Message::ImportContext(ImportContext {
            event_id: ea,
            service_id: "video".into(),
            ue: ue(1),
            status: ReplyStatus::Ok,
            reason: String::new(),
            connections: vec![],
        }),
    )
    .unwrap();
    // export answer to an import event
    assert_eq!(
        t.req(b, export_answer(eb, "chat", ue(1), Bytes::new())),
        Err(ErrorCode::EventMismatch)
    );
    t.req(
        b,
        Message::ImportContext(ImportContext {
            event_id: eb,
            service_id: "chat".into(),
            ue: ue(1),
            status: ReplyStatus::MalformedContext,
            reason: "bad".into(),
            connections: vec![],
        }),
    )
    .unwrap();
    let done = t.completed();
    let OpResult::Import(r) = &done[0].1 else {
        panic!()
    };
    assert_eq!(done[0].0, op);
    let st: Vec<_> = r.iter().map(|r| r.status.clone()).collect();
    assert_eq!(
        st,
        vec![
            ImportStatus::Accepted,
            ImportStatus::Refused {
                status: ReplyStatus::MalformedContext,
                reason: "bad".into()
            },
            ImportStatus::NotRegistered,
            ImportStatus::Duplicate,
        ]
    );
    let codes: Vec<u8> = r.iter().map(|r| r.cxtp_status()).collect();
    assert_eq!(
        codes,
        vec![
            0,
            cxtp::profile::status::MALFORMED,
            cxtp::profile::status::UNSUPPORTED_FPT,
            cxtp::profile::status::SERVICE_UNAVAILABLE
        ]
    );
    // the importing service has the UE now
    assert_eq!(t.reg.user_connections(ue(1)).len(), 1);
    // rollback at the destination removes it and tells both services asked
    assert_eq!(
        t.reg
            .notify_outcome(ue(1), Outcome::RolledBack, "CTDR lost"),
        Ok(2)
    );
    t.pull();
    assert_eq!(t.reg.user_count(), 0);
}

#[test]
fn import_timeout_and_too_large() {
    let mut t = T::new();
    let a = t.client();
    t.service(a, "video");
    let op = t
        .reg
        .start_import(ue(1), vec![ServiceContext::new("video", FPT, Bytes::new())])
        .unwrap();
    t.pull();
    assert!(t.reg.cancel(op));
    t.pull();
    let done = t.completed();
    assert!(matches!(&done[0].1, OpResult::Import(r) if r[0].status == ImportStatus::TimedOut));
    t.reg
        .notify_outcome(ue(1), Outcome::RolledBack, "")
        .unwrap();
    t.pull();
    // the client accepts 1 MiB frames
    let op = t
        .reg
        .start_import(
            ue(1),
            vec![ServiceContext::new(
                "video",
                FPT,
                Bytes::from(vec![0u8; 1 << 20]),
            )],
        )
        .unwrap();
    t.pull();
    let done = t.completed();
    assert_eq!(done[0].0, op);
    assert!(matches!(&done[0].1, OpResult::Import(r) if r[0].status == ImportStatus::TooLarge));
}

#[test]
fn shutdown_fails_everything() {
    let mut t = T::new();
    let a = t.client();
    t.service(a, "video");
    t.user(a, "video", ue(1)).unwrap();
    let op = t.reg.start_export(ue(1), 500).unwrap();
    t.pull();
    t.events(a);
    t.reg.shutdown();
    t.pull();
    assert_eq!(
        t.completed(),
        vec![(op, OpResult::Export(Err(ApiError::Shutdown)))]
    );
    assert!(t.out.contains(&Output::Close { conn: a }));
    assert_eq!(t.reg.connection_count(), 0);
    assert_eq!(t.reg.user_count(), 0);
}

#[test]
fn error_messages_quoting_client_input_stay_encodable() {
    let mut t = T::new();
    let a = t.client();
    let huge = "\u{1F600}".repeat(16_000); // 64000 octets, Debug-escaped longer
    t.rid += 1;
    t.reg.on_frame(
        a,
        Frame::new(
            t.rid,
            Message::DeregisterService(DeregisterService { service_id: huge }),
        ),
    );
    t.pull();
    let Some(Output::Send { frame, .. }) = t.out.pop() else {
        panic!()
    };
    assert!(
        matches!(&frame.message, Message::Error(e) if e.code == ErrorCode::UnknownService && e.message.len() <= MAX_TEXT_LEN)
    );
    let mut b = bytes::BytesMut::new();
    crate::api::wire::encode(&frame, &mut b).unwrap();
}
