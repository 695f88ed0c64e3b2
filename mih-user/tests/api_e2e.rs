//! End-to-end tests of the Service Mobility API over a temporary Unix
//! socket: real `ApiServer`, real `ServiceClient`s and raw sockets.
//! Every test runs under a deadline and removes its socket directory.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use mih_user::api::client::{Event, EventStream, ServiceClient};
use mih_user::api::server::{ApiConfig, ApiServer};
use mih_user::api::wire::{self, Connection, ErrorCode, Frame, Hello, Message};
use mih_user::api::{
    ApiError, ExportFailure, ImportStatus, Outcome, ReplyStatus, Role, ServiceContext,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

const FPT: u16 = cxtp::profile::fpt::APP_SERVICE;

fn ue(n: u8) -> IpAddr {
    IpAddr::from([10, 45, 0, n])
}

fn conn(ue: IpAddr, port: u16) -> Connection {
    Connection {
        client: SocketAddr::new(ue, port),
        server: "192.0.2.1:8080".parse().unwrap(),
    }
}

/// Run `f` on a fresh runtime with a deadline.
fn run<F: Future<Output = ()>>(f: F) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            tokio::time::timeout(Duration::from_secs(30), f)
                .await
                .expect("test deadline")
        });
}

async fn server(
    dir: &tempfile::TempDir,
    name: &str,
    tune: impl FnOnce(&mut ApiConfig),
) -> ApiServer {
    let mut cfg = ApiConfig::new(dir.path().join(name));
    cfg.export_timeout = Duration::from_secs(5);
    cfg.import_timeout = Duration::from_secs(5);
    tune(&mut cfg);
    ApiServer::bind(cfg).await.unwrap()
}

/// A service that answers every event by itself: exports
/// `"<service>/<ue>"`, accepts every import, and records what it saw.
fn auto_service(
    client: ServiceClient,
    mut events: EventStream,
) -> tokio::task::JoinHandle<(Vec<Event>, ServiceClient, EventStream)> {
    tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(ev) = events.recv().await {
            match &ev {
                Event::ExportRequested(r) => {
                    let data = Bytes::from(format!("{}/{}", r.service_id, r.ue));
                    client.export_context(r, data).await.unwrap();
                }
                Event::ImportRequested(r) => {
                    client.import_context(r, &[conn(r.ue, 5000)]).await.unwrap();
                }
                Event::MigrationOutcome(_) => {}
            }
            let done = matches!(ev, Event::MigrationOutcome(_));
            seen.push(ev);
            if done {
                break;
            }
        }
        (seen, client, events)
    })
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}

#[test]
fn two_services_export_import_and_outcomes() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let src = server(&dir, "src.sock", |_| {}).await;
        let dst = server(&dir, "dst.sock", |_| {}).await;

        // Two services at the source, the same two at the destination.
        let mut src_tasks = Vec::new();
        let mut dst_tasks = Vec::new();
        for (name, fpt) in [("video", FPT), ("chat", 0xFF42)] {
            let (c, ev) = ServiceClient::connect(src.socket_path()).await.unwrap();
            assert_eq!(c.server_info().version, wire::PROTOCOL_VERSION);
            c.register_service(name, fpt).await.unwrap();
            c.register_user(name, ue(1), &[conn(ue(1), 40000)])
                .await
                .unwrap();
            src_tasks.push((name, auto_service(c, ev)));
            let (c, ev) = ServiceClient::connect(dst.socket_path()).await.unwrap();
            c.register_service(name, fpt).await.unwrap();
            dst_tasks.push((name, auto_service(c, ev)));
        }
        assert!(src.has_service("video") && src.has_service("chat"));
        assert!(!src.has_service("mail"));
        assert_eq!(src.user_count(), 1);
        assert_eq!(src.user_connections(ue(1)).len(), 2);

        let contexts = src.request_export(ue(1)).await.unwrap();
        assert_eq!(
            contexts,
            vec![
                ServiceContext::new("chat", 0xFF42, Bytes::from("chat/10.45.0.1")),
                ServiceContext::new("video", FPT, Bytes::from("video/10.45.0.1")),
            ]
        );
        assert!(src.is_migrating(ue(1)));
        assert_eq!(
            src.request_export(ue(1)).await,
            Err(ApiError::UeBusy(ue(1)))
        );

        // Through CXTP form and back, as the orchestrator will carry them.
        let carried: Vec<ServiceContext> = contexts
            .iter()
            .map(|c| ServiceContext::from_cxtp(&c.to_cxtp()).unwrap())
            .collect();
        let reports = dst.deliver_import(ue(1), carried).await.unwrap();
        assert_eq!(reports.len(), 2);
        assert!(reports.iter().all(|r| r.is_accepted()), "{reports:?}");
        assert_eq!(dst.user_count(), 1);
        assert_eq!(dst.user_connections(ue(1))[0].1, vec![conn(ue(1), 5000)]);

        assert_eq!(
            src.notify_outcome(ue(1), Outcome::Committed, "CTDR success"),
            Ok(2)
        );
        assert_eq!(
            dst.notify_outcome(ue(1), Outcome::Committed, "CTDR success"),
            Ok(2)
        );
        assert_eq!(src.user_count(), 0, "the UE has left the source");
        assert_eq!(dst.user_count(), 1);

        for (name, t) in src_tasks {
            let (seen, _, _) = t.await.unwrap();
            assert!(
                matches!(&seen[0], Event::ExportRequested(r) if r.service_id == name && r.ue == ue(1) && r.timeout == Duration::from_secs(5))
            );
            assert!(
                matches!(&seen[1], Event::MigrationOutcome(o) if o.role == Role::Source && o.outcome == Outcome::Committed && o.cause == "CTDR success")
            );
        }
        for (name, t) in dst_tasks {
            let (seen, _, _) = t.await.unwrap();
            assert!(
                matches!(&seen[0], Event::ImportRequested(r) if r.service_id == name && r.data == format!("{name}/10.45.0.1"))
            );
            assert!(
                matches!(&seen[1], Event::MigrationOutcome(o) if o.role == Role::Destination && o.outcome == Outcome::Committed)
            );
        }
        let st = src.stats();
        assert_eq!(st.registry.exports, [1, 1, 0, 0]);
        assert_eq!(st.malformed_frames, 0);
        src.shutdown().await;
        dst.shutdown().await;
        assert!(!dir.path().join("src.sock").exists());
    });
}

#[test]
fn nonsense_calls_get_typed_errors() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let api = server(&dir, "api.sock", |_| {}).await;
        let (a, _ea) = ServiceClient::connect(api.socket_path()).await.unwrap();
        let (b, _eb) = ServiceClient::connect(api.socket_path()).await.unwrap();
        let code = |r: Result<(), mih_user::api::client::ClientError>| r.unwrap_err().code();

        a.register_service("video", FPT).await.unwrap();
        assert_eq!(
            code(a.register_service("video", FPT).await),
            Some(ErrorCode::DuplicateService)
        );
        assert_eq!(
            code(b.register_service("video", FPT).await),
            Some(ErrorCode::DuplicateService)
        );
        assert_eq!(
            code(b.register_service("tcp", 0xFF02).await),
            Some(ErrorCode::InvalidFpt)
        );
        assert_eq!(
            code(b.register_service("", FPT).await),
            Some(ErrorCode::InvalidArgument)
        );
        assert_eq!(
            code(b.deregister_service("nope").await),
            Some(ErrorCode::UnknownService)
        );
        assert_eq!(
            code(b.deregister_service("video").await),
            Some(ErrorCode::NotOwner)
        );
        assert_eq!(
            code(b.register_user("video", ue(1), &[]).await),
            Some(ErrorCode::NotOwner)
        );

        a.register_user("video", ue(1), &[conn(ue(1), 1)])
            .await
            .unwrap();
        assert_eq!(
            code(a.register_user("video", ue(1), &[]).await),
            Some(ErrorCode::DuplicateUser)
        );
        a.update_user("video", ue(1), &[conn(ue(1), 1), conn(ue(1), 2)])
            .await
            .unwrap();
        assert_eq!(
            code(a.register_user("video", ue(2), &[conn(ue(3), 1)]).await),
            Some(ErrorCode::InvalidArgument)
        );
        assert_eq!(
            code(a.deregister_user("video", ue(9)).await),
            Some(ErrorCode::UnknownUser)
        );

        // The orchestrator asks for a UE nobody has.
        assert_eq!(
            api.request_export(ue(9)).await,
            Err(ApiError::UnknownUe(ue(9)))
        );
        assert_eq!(
            api.notify_outcome(ue(9), Outcome::RolledBack, ""),
            Err(ApiError::NoMigration(ue(9)))
        );
        // A service exports for a UE it was not asked about / does not have.
        let fake = mih_user::api::client::ExportRequest {
            event_id: 4242,
            service_id: "video".into(),
            ue: ue(7),
            timeout: Duration::ZERO,
        };
        assert_eq!(
            code(a.export_context(&fake, Bytes::new()).await),
            Some(ErrorCode::UnknownEvent)
        );

        a.deregister_user("video", ue(1)).await.unwrap();
        assert_eq!(api.user_count(), 0);
        a.deregister_service("video").await.unwrap();
        assert!(!api.has_service("video"));
        api.shutdown().await;
    });
}

#[test]
fn silent_service_times_out_and_rolls_back() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let api = server(&dir, "api.sock", |_| {}).await;
        let (quick, qev) = ServiceClient::connect(api.socket_path()).await.unwrap();
        quick.register_service("quick", FPT).await.unwrap();
        quick.register_user("quick", ue(1), &[]).await.unwrap();
        let quick_task = auto_service(quick, qev);
        let (silent, mut sev) = ServiceClient::connect(api.socket_path()).await.unwrap();
        silent.register_service("silent", FPT).await.unwrap();
        silent.register_user("silent", ue(1), &[]).await.unwrap();

        let t0 = tokio::time::Instant::now();
        let r = api
            .request_export_within(ue(1), Duration::from_millis(300))
            .await;
        let took = t0.elapsed();
        assert_eq!(
            r,
            Err(ApiError::Timeout {
                ue: ue(1),
                pending: vec!["silent".into()]
            })
        );
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(5),
            "{took:?}"
        );
        assert_eq!(api.stats().registry.exports[3], 1);

        // The silent service answers late: the event is gone.
        let Some(Event::ExportRequested(req)) = sev.recv().await else {
            panic!()
        };
        assert_eq!(req.timeout, Duration::from_millis(300));
        let late = silent
            .export_context(&req, Bytes::from_static(b"late"))
            .await;
        assert_eq!(late.unwrap_err().code(), Some(ErrorCode::UnknownEvent));

        // Roll back: both services are told to keep the UE.
        assert_eq!(
            api.notify_outcome(ue(1), Outcome::RolledBack, "export timeout"),
            Ok(2)
        );
        let Some(Event::MigrationOutcome(o)) = sev.recv().await else {
            panic!()
        };
        assert_eq!(
            (o.role, o.outcome, o.cause.as_str()),
            (Role::Source, Outcome::RolledBack, "export timeout")
        );
        let (seen, _quick, _qev) = quick_task.await.unwrap();
        assert!(matches!(&seen[1], Event::MigrationOutcome(o) if o.outcome == Outcome::RolledBack));
        assert_eq!(api.user_connections(ue(1)).len(), 2, "nothing lost");

        // A refusal fails the export at once.
        let a2 = api.clone();
        let export = tokio::spawn(async move { a2.request_export(ue(1)).await });
        let Some(Event::ExportRequested(req)) = sev.recv().await else {
            panic!()
        };
        silent
            .refuse_export(&req, ReplyStatus::NoCapacity, "full")
            .await
            .unwrap();
        let r = export.await.unwrap();
        assert!(
            matches!(&r, Err(ApiError::ExportFailed { service_id, cause: ExportFailure::Refused { status: ReplyStatus::NoCapacity, reason }, .. }) if service_id == "silent" && reason == "full"),
            "{r:?}"
        );
        api.notify_outcome(ue(1), Outcome::RolledBack, "refused")
            .unwrap();
        api.shutdown().await;
    });
}

#[test]
fn import_timeout_refusal_and_unknown_service() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let api = server(&dir, "api.sock", |_| {}).await;
        let (silent, _sev) = ServiceClient::connect(api.socket_path()).await.unwrap();
        silent.register_service("silent", FPT).await.unwrap();
        let (picky, mut pev) = ServiceClient::connect(api.socket_path()).await.unwrap();
        picky.register_service("picky", FPT).await.unwrap();
        let picky_task = tokio::spawn(async move {
            let Some(Event::ImportRequested(r)) = pev.recv().await else {
                panic!()
            };
            picky
                .refuse_import(&r, ReplyStatus::MalformedContext, "garbage")
                .await
                .unwrap();
        });
        let reports = api
            .deliver_import_within(
                ue(1),
                vec![
                    ServiceContext::new("silent", FPT, Bytes::new()),
                    ServiceContext::new("picky", FPT, Bytes::from_static(b"?")),
                    ServiceContext::new("absent", FPT, Bytes::new()),
                ],
                Duration::from_millis(300),
            )
            .await
            .unwrap();
        picky_task.await.unwrap();
        let st: Vec<_> = reports.iter().map(|r| r.status.clone()).collect();
        assert_eq!(
            st,
            vec![
                ImportStatus::TimedOut,
                ImportStatus::Refused {
                    status: ReplyStatus::MalformedContext,
                    reason: "garbage".into()
                },
                ImportStatus::NotRegistered
            ]
        );
        assert_eq!(api.user_count(), 0);
        api.notify_outcome(ue(1), Outcome::RolledBack, "").unwrap();
        api.shutdown().await;
    });
}

#[test]
fn disconnect_cleans_up_services_users_and_pending_requests() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let api = server(&dir, "api.sock", |_| {}).await;
        let (c, ev) = ServiceClient::connect(api.socket_path()).await.unwrap();
        c.register_service("video", FPT).await.unwrap();
        c.register_service("audio", FPT).await.unwrap();
        c.register_user("video", ue(1), &[conn(ue(1), 1)])
            .await
            .unwrap();
        c.register_user("audio", ue(2), &[]).await.unwrap();
        assert_eq!(api.user_count(), 2);

        // An export is pending when the service goes away.
        let a2 = api.clone();
        let export = tokio::spawn(async move { a2.request_export(ue(1)).await });
        eventually("export requested", || api.stats().registry.events == 1).await;
        drop(c);
        drop(ev);
        let r = export.await.unwrap();
        assert!(
            matches!(
                &r,
                Err(ApiError::ExportFailed {
                    cause: ExportFailure::ServiceGone,
                    ..
                })
            ),
            "{r:?}"
        );
        eventually("cleanup", || {
            !api.has_service("video") && !api.has_service("audio")
        })
        .await;
        assert_eq!(api.user_count(), 0);
        eventually("connection closed", || api.stats().connections_open == 0).await;
        api.notify_outcome(ue(1), Outcome::RolledBack, "service gone")
            .unwrap();

        // The service ID is free again.
        let (c, _ev) = ServiceClient::connect(api.socket_path()).await.unwrap();
        c.register_service("video", FPT).await.unwrap();
        c.close().await;
        eventually("closed", || !api.has_service("video")).await;
        api.shutdown().await;
    });
}

async fn raw_connect(api: &ApiServer) -> UnixStream {
    UnixStream::connect(api.socket_path()).await.unwrap()
}

fn hello(min: u16, max: u16) -> Vec<u8> {
    let mut b = BytesMut::new();
    wire::encode(
        &Frame::new(
            1,
            Message::Hello(Hello {
                min_version: min,
                max_version: max,
                max_frame: 1 << 16,
                client_name: "raw".into(),
            }),
        ),
        &mut b,
    )
    .unwrap();
    b.to_vec()
}

/// Read frames until the server closes; returns them.
async fn read_until_close(s: &mut UnixStream) -> Vec<Frame> {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    loop {
        while let Some(f) = wire::decode_frame(&mut buf, 1 << 20).unwrap() {
            frames.push(f);
        }
        match s.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return frames,
            Ok(_) => {}
        }
    }
}

fn error_code(f: &Frame) -> Option<ErrorCode> {
    match &f.message {
        Message::Error(e) => Some(e.code),
        _ => None,
    }
}

#[test]
fn malformed_frames_close_only_that_connection() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let api = server(&dir, "api.sock", |c| c.limits.max_frame = 64 * 1024).await;
        let (good, _ev) = ServiceClient::connect(api.socket_path()).await.unwrap();
        good.register_service("good", FPT).await.unwrap();

        let cases: Vec<(&str, Vec<u8>)> = vec![
            (
                "unknown type",
                [hello(1, 1), vec![0, 0, 0, 5, 0x3f, 0, 0, 0, 2]].concat(),
            ),
            (
                "length below header",
                [hello(1, 1), vec![0, 0, 0, 2, 1, 1]].concat(),
            ),
            (
                "length above limit",
                [hello(1, 1), vec![0xff, 0xff, 0xff, 0xff, 1]].concat(),
            ),
            (
                "trailing octets",
                [hello(1, 1), vec![0, 0, 0, 8, 0x03, 0, 0, 0, 2, 0, 0, 0xaa]].concat(),
            ),
            (
                "bad magic",
                vec![
                    0, 0, 0, 0x13, 1, 0, 0, 0, 1, b'X', b'M', b'A', b'P', 0, 1, 0, 1, 0, 1, 0, 0,
                    0, 0,
                ],
            ),
            (
                "bad UTF-8",
                [
                    hello(1, 1),
                    vec![0, 0, 0, 10, 0x03, 0, 0, 0, 2, 0, 3, 0xff, 0xfe, 0xfd],
                ]
                .concat(),
            ),
        ];
        for (i, (what, bytes)) in cases.iter().enumerate() {
            let mut s = raw_connect(&api).await;
            s.write_all(bytes).await.unwrap();
            let frames = read_until_close(&mut s).await;
            let last = frames.last().unwrap_or_else(|| panic!("{what}: no answer"));
            assert_eq!(last.request_id, 0, "{what}");
            assert_eq!(error_code(last), Some(ErrorCode::MalformedFrame), "{what}");
            assert_eq!(api.stats().malformed_frames, i as u64 + 1, "{what}");
        }
        // Requests before Hello, and an unsupported version.
        let mut s = raw_connect(&api).await;
        s.write_all(&[0, 0, 0, 8, 0x03, 0, 0, 0, 9, 0, 1, b'x'])
            .await
            .unwrap();
        let f = read_until_close(&mut s).await;
        assert_eq!(
            (f[0].request_id, error_code(&f[0])),
            (9, Some(ErrorCode::HandshakeRequired))
        );
        let mut s = raw_connect(&api).await;
        s.write_all(&hello(2, 5)).await.unwrap();
        let f = read_until_close(&mut s).await;
        assert_eq!(error_code(&f[0]), Some(ErrorCode::UnsupportedVersion));

        // The well-behaved client never noticed.
        good.register_user("good", ue(1), &[]).await.unwrap();
        assert!(api.has_service("good"));
        api.shutdown().await;
    });
}

#[test]
fn handshake_timeout_client_limit_and_slow_consumer() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let api = server(&dir, "api.sock", |c| {
            c.handshake_timeout = Duration::from_millis(200);
            c.max_clients = 2;
            c.queue_capacity = 4;
            c.write_timeout = Duration::from_millis(200);
        })
        .await;
        // Says nothing: closed after the handshake timeout.
        let mut mute = raw_connect(&api).await;
        let f = read_until_close(&mut mute).await;
        assert_eq!(error_code(&f[0]), Some(ErrorCode::HandshakeRequired));
        assert_eq!(api.stats().handshake_timeouts, 1);

        // Third client over the limit of two, both with a service.
        let (_a, _ea) = ServiceClient::connect(api.socket_path()).await.unwrap();
        _a.register_service("a", FPT).await.unwrap();
        let (_b, _eb) = ServiceClient::connect(api.socket_path()).await.unwrap();
        _b.register_service("b", FPT).await.unwrap();
        let mut third = raw_connect(&api).await;
        let f = read_until_close(&mut third).await;
        assert_eq!(error_code(&f[0]), Some(ErrorCode::LimitReached));
        assert_eq!(api.stats().connections_refused, 1);
        drop((_a, _ea, _b, _eb));
        eventually("clients gone", || api.stats().connections_open == 0).await;

        // Pipelines requests and never reads the answers.
        let mut greedy = raw_connect(&api).await;
        greedy.write_all(&hello(1, 1)).await.unwrap();
        let mut req = BytesMut::new();
        wire::encode(
            &Frame::new(
                2,
                Message::DeregisterService(wire::DeregisterService {
                    service_id: "x".repeat(200),
                }),
            ),
            &mut req,
        )
        .unwrap();
        let chunk = req.repeat(1000);
        let writer = tokio::spawn(async move {
            for _ in 0..200 {
                if greedy.write_all(&chunk).await.is_err() {
                    break;
                }
            }
        });
        eventually("slow consumer closed", || api.stats().slow_consumers == 1).await;
        let _ = writer.await;
        eventually("no connections", || api.stats().connections_open == 0).await;
        // The server still serves.
        let (c, _e) = ServiceClient::connect(api.socket_path()).await.unwrap();
        c.register_service("ok", FPT).await.unwrap();
        api.shutdown().await;
    });
}

#[test]
fn clients_without_a_service_make_room_and_time_out() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let api = server(&dir, "api.sock", |c| {
            c.max_clients = 4;
            c.handshake_timeout = Duration::from_secs(20);
            c.registration_timeout = Duration::from_millis(300);
        })
        .await;
        let (svc, _ev) = ServiceClient::connect(api.socket_path()).await.unwrap();
        svc.register_service("svc", FPT).await.unwrap();
        // Three silent connections take the other slots.
        let mut idle = vec![];
        for _ in 0..3 {
            idle.push(raw_connect(&api).await);
        }
        eventually("all open", || api.stats().connections_open == 4).await;
        // New services still get in, each closing the oldest connection
        // without a service.
        let mut late = vec![];
        for (i, s) in idle.iter_mut().enumerate() {
            let (c, e) = ServiceClient::connect(api.socket_path()).await.unwrap();
            c.register_service(&format!("late{i}"), FPT).await.unwrap();
            late.push((c, e));
            let f = read_until_close(s).await;
            assert_eq!(f.len(), 1, "{f:?}");
            assert_eq!(
                (f[0].request_id, error_code(&f[0])),
                (0, Some(ErrorCode::LimitReached))
            );
            assert_eq!(api.stats().connections_evicted, i as u64 + 1);
        }
        // Every connection has a service now: a fifth is refused.
        let mut fifth = raw_connect(&api).await;
        let f = read_until_close(&mut fifth).await;
        assert_eq!(error_code(&f[0]), Some(ErrorCode::LimitReached));
        let st = api.stats();
        assert_eq!(
            (
                st.connections_refused,
                st.connections_evicted,
                st.connections_open
            ),
            (1, 3, 4)
        );
        // Room again; a client that says Hello and registers nothing is
        // closed after the registration timeout.
        drop((svc, _ev));
        eventually("svc gone", || api.stats().connections_open == 3).await;
        let mut lazy = raw_connect(&api).await;
        lazy.write_all(&hello(1, 1)).await.unwrap();
        let f = read_until_close(&mut lazy).await;
        assert!(matches!(f[0].message, Message::HelloAck(_)), "{f:?}");
        assert_eq!(
            (f[1].request_id, error_code(&f[1])),
            (0, Some(ErrorCode::LimitReached))
        );
        assert_eq!(api.stats().registration_timeouts, 1);
        // A service that deregisters its only service starts the clock again.
        let (c, _e) = &late[0];
        c.deregister_service("late0").await.unwrap();
        eventually("closed without a service", || {
            api.stats().registration_timeouts == 2
        })
        .await;
        // The others, quiet all along but registered, are still served.
        assert!(api.has_service("late1") && api.has_service("late2"));
        late[1].0.register_user("late1", ue(1), &[]).await.unwrap();
        assert_eq!(api.stats().connections_open, 2);
        api.shutdown().await;
    });
}

#[test]
fn shutdown_fails_pending_export_and_ends_event_streams() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let api = server(&dir, "api.sock", |_| {}).await;
        let (c, mut ev) = ServiceClient::connect(api.socket_path()).await.unwrap();
        c.register_service("video", FPT).await.unwrap();
        c.register_user("video", ue(1), &[]).await.unwrap();
        let a2 = api.clone();
        let export = tokio::spawn(async move { a2.request_export(ue(1)).await });
        assert!(matches!(ev.recv().await, Some(Event::ExportRequested(_))));
        api.shutdown().await;
        assert_eq!(export.await.unwrap(), Err(ApiError::Shutdown));
        assert_eq!(ev.recv().await, None);
        assert!(c.register_service("late", FPT).await.is_err());
        assert_eq!(api.request_export(ue(1)).await, Err(ApiError::Shutdown));
        assert!(!api.socket_path().exists());
        api.shutdown().await; // idempotent
    });
}

#[test]
fn stale_socket_is_replaced_live_one_is_not() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let api = ApiServer::bind(ApiConfig::new(&path)).await.unwrap();
        let second = ApiServer::bind(ApiConfig::new(&path)).await;
        assert_eq!(second.unwrap_err().kind(), std::io::ErrorKind::AddrInUse);
        api.shutdown().await;
        std::fs::write(&path, b"not a socket").unwrap();
        assert!(ApiServer::bind(ApiConfig::new(&path)).await.is_err());
    });
}
