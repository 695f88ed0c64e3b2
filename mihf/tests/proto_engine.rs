//! The transaction engine under simulated time, loss, duplication and
//! reordering. Every test is deterministic: time is advanced by hand and
//! "random" choices come from a fixed-seed generator.

use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use mihf::proto::transaction::{Engine, EngineConfig, Event, FailReason, RxError};
use mihf::proto::{Endpoint, Transmit};
use mihf::wire::message::*;
use mihf::wire::*;

mod frames;
use frames::Rng;

const A_ADDR: &str = "127.0.0.1:4551";
const B_ADDR: &str = "127.0.0.2:4551";

fn udp(a: &str) -> Endpoint {
    Endpoint::Udp(a.parse().unwrap())
}

fn cfg(id: &'static str) -> EngineConfig {
    let mut c = EngineConfig::new(MihfId::from_static(id));
    c.retransmission_timeout = Duration::from_millis(100);
    c.retransmission_backoff = 1;
    c.max_retransmissions = 2;
    c.transaction_lifetime = Duration::from_secs(2);
    c.ack_delay = Duration::from_millis(20);
    c
}

fn hex(s: &str) -> Bytes {
    Bytes::from(::hex::decode(s.split_whitespace().collect::<String>()).unwrap())
}

fn n2n_response(req: &Message, status: Status) -> Message {
    let Body::N2nHoCommitRequest(r) = &req.body else {
        panic!()
    };
    Message::new(
        Mid(0x3809),
        req.header.tid,
        req.destination.clone(),
        req.source.clone(),
        Body::N2nHoCommitResponse(N2nHoCommitResponse {
            status,
            mn_mihf_id: r.mn_mihf_id.clone(),
            link: None,
            assigned_resources: None,
        }),
    )
}

/// A request whose payload is padded with a vendor TLV to `extra` octets.
fn big_request(extra: usize) -> Message {
    let mut m = frames::n2n_request("mihf1", "mihf2");
    let mut b = BytesMut::new();
    b.put_u8(100);
    encode_length(extra, &mut b);
    for i in 0..extra {
        b.put_u8(i as u8);
    }
    m.extra = vec![RawTlvs::new(6, b.freeze()).unwrap()];
    m
}

fn drain(e: &mut Engine) -> Vec<Transmit> {
    std::iter::from_fn(|| e.poll_transmit()).collect()
}
fn events(e: &mut Engine) -> Vec<Event> {
    std::iter::from_fn(|| e.poll_event()).collect()
}
fn deliver(
    e: &mut Engine,
    now: Instant,
    from: &str,
    frames: &[Transmit],
) -> Vec<Result<(), RxError>> {
    frames
        .iter()
        .map(|t| e.handle_frame(now, udp(from), t.payload.clone()))
        .collect()
}
fn header(t: &Transmit) -> Header {
    Header::parse(&t.payload).unwrap()
}

struct Pair {
    a: Engine,
    b: Engine,
    now: Instant,
}

impl Pair {
    fn new() -> Pair {
        Pair::with(cfg("mihf1"), cfg("mihf2"))
    }
    fn with(a: EngineConfig, b: EngineConfig) -> Pair {
        Pair {
            a: Engine::new(a),
            b: Engine::new(b),
            now: Instant::now(),
        }
    }
    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.a.handle_timeout(self.now);
        self.b.handle_timeout(self.now);
    }
}

fn only_request(ev: Vec<Event>) -> (mihf::proto::transaction::Inbound, Message) {
    match <[Event; 1]>::try_from(ev) {
        Ok([Event::Request { inbound, msg, .. }]) => (inbound, msg),
        Ok([other]) => panic!("expected one request, got {other:?}"),
        Err(v) => panic!("expected one request, got {v:?}"),
    }
}

#[test]
fn piggybacked_ack_gives_two_frames_per_transaction() {
    let mut p = Pair::new();
    let (token, tid) =
        p.a.send_request(p.now, udp(B_ADDR), frames::n2n_request("mihf1", "mihf2"))
            .unwrap();
    let req = drain(&mut p.a);
    assert_eq!(req.len(), 1);
    let h = header(&req[0]);
    assert!(h.ack_req && !h.ack_rsp);
    assert_eq!(h.tid, tid);
    deliver(&mut p.b, p.now, A_ADDR, &req);
    let (inbound, msg) = only_request(events(&mut p.b));
    assert_eq!(msg.header.tid, tid);
    // Nothing is sent before the response: the ACK waits to be piggy-backed.
    assert!(drain(&mut p.b).is_empty());
    p.advance(Duration::from_millis(5));
    p.b.send_response(p.now, &inbound, n2n_response(&msg, Status::SUCCESS))
        .unwrap();
    let rsp = drain(&mut p.b);
    assert_eq!(rsp.len(), 1);
    let h = header(&rsp[0]);
    assert!(h.ack_rsp, "ACK piggy-backed on the response");
    assert!(
        !h.ack_req,
        "a piggy-backed response is covered by the requester's retransmission"
    );
    assert_eq!(h.mid, Mid(0x3809));
    deliver(&mut p.a, p.now, B_ADDR, &rsp);
    match &events(&mut p.a)[..] {
        [Event::Response {
            token: t, msg, rtt, ..
        }] => {
            assert_eq!(*t, token);
            assert_eq!(*rtt, Duration::from_millis(5));
            let Body::N2nHoCommitResponse(r) = &msg.body else {
                panic!()
            };
            assert!(r.status.is_success());
        }
        other => panic!("{other:?}"),
    }
    assert!(
        drain(&mut p.a).is_empty(),
        "no ACK for a response that did not ask"
    );
    // Nothing more ever happens, and both tables empty out.
    for _ in 0..30 {
        p.advance(Duration::from_millis(100));
        assert!(drain(&mut p.a).is_empty() && drain(&mut p.b).is_empty());
    }
    assert_eq!(p.a.open_transactions(), (0, 0));
    assert_eq!(p.b.open_transactions(), (0, 0));
    assert_eq!(p.a.poll_timeout(), None);
    assert_eq!(p.b.stats().piggybacked_acks, 1);
}

#[test]
fn odtone_request_gets_the_odtone_pure_ack_bytes() {
    // A request and its pure ACK as two real ODTONE 0.6 MIHFs exchange them, TID 0x328.
    let mut c = cfg("mihf2");
    c.ack_delay = Duration::ZERO;
    let mut b = Engine::new(c);
    let now = Instant::now();
    let req = hex("18003409032800310106056d696866310206056d696866323406056d6e2d30313b0b13000006060200000000013c0a00000606020000000002");
    b.handle_frame(now, udp(A_ADDR), req).unwrap();
    let out = drain(&mut b);
    assert_eq!(out.len(), 1);
    assert_eq!(
        out[0].payload,
        hex("14003409032800100106056d696866320206056d69686631")
    );
    let (inbound, msg) = only_request(events(&mut b));
    // The later response asks for an ACK of its own (the request was already
    // acknowledged), as ODTONE's does.
    b.send_response(now, &inbound, n2n_response(&msg, Status::SUCCESS))
        .unwrap();
    let rsp = drain(&mut b);
    let h = header(&rsp[0]);
    assert!(h.ack_req && !h.ack_rsp);
    // It is retransmitted until acknowledged.
    b.handle_timeout(now + Duration::from_millis(100));
    assert_eq!(drain(&mut b), rsp);
    let ack = hex("14003809032800100106056d696866310206056d69686632");
    b.handle_frame(now + Duration::from_millis(110), udp(A_ADDR), ack)
        .unwrap();
    b.handle_timeout(now + Duration::from_secs(1));
    assert!(drain(&mut b).is_empty());
    assert_eq!(b.stats().acks_received, 1);
}

#[test]
fn odtone_style_response_with_ack_req_and_ack_rsp_is_acknowledged() {
    let mut p = Pair::new();
    let (token, tid) =
        p.a.send_request(p.now, udp(B_ADDR), frames::n2n_request("mihf1", "mihf2"))
            .unwrap();
    drain(&mut p.a);
    // ODTONE's response frame, with our TID patched in.
    let mut rsp =
        hex("1c0038090328001b0106056d696866320206056d696866310301003406056d6e2d3031").to_vec();
    rsp[4..6].copy_from_slice(&tid.to_be_bytes());
    p.a.handle_frame(p.now, udp(B_ADDR), Bytes::from(rsp.clone()))
        .unwrap();
    let ack = drain(&mut p.a);
    let mut want = hex("14003809032800100106056d696866310206056d69686632").to_vec();
    want[4..6].copy_from_slice(&tid.to_be_bytes());
    assert_eq!(ack.len(), 1);
    assert_eq!(ack[0].payload, Bytes::from(want));
    assert!(matches!(&events(&mut p.a)[..], [Event::Response { token: t, .. }] if *t == token));
    // ODTONE retransmits its response (our ACK was lost): the stored ACK is
    // re-sent and the response is not delivered twice.
    let r = p.a.handle_frame(
        p.now + Duration::from_secs(5),
        udp(B_ADDR),
        Bytes::from(rsp),
    );
    assert!(matches!(r, Err(RxError::Duplicate { .. })));
    assert_eq!(drain(&mut p.a), ack);
    assert!(events(&mut p.a).is_empty());
}

#[test]
fn slow_user_gets_pure_ack_then_acknowledged_response() {
    let mut p = Pair::new();
    let (token, _) =
        p.a.send_request(p.now, udp(B_ADDR), frames::n2n_request("mihf1", "mihf2"))
            .unwrap();
    let req = drain(&mut p.a);
    deliver(&mut p.b, p.now, A_ADDR, &req);
    let (inbound, msg) = only_request(events(&mut p.b));
    p.advance(Duration::from_millis(20));
    let ack = drain(&mut p.b);
    assert_eq!(ack.len(), 1);
    let m = Message::from_bytes(ack[0].payload.clone()).unwrap();
    assert!(matches!(m.body, Body::Ack));
    assert_eq!(m.header.mid, Mid(0x3409));
    assert!(m.header.ack_rsp && !m.header.ack_req);
    deliver(&mut p.a, p.now, B_ADDR, &ack);
    // Acknowledged: A stops retransmitting but keeps waiting for the response.
    p.advance(Duration::from_millis(500));
    assert!(drain(&mut p.a).is_empty());
    p.b.send_response(p.now, &inbound, n2n_response(&msg, Status::REJECTED))
        .unwrap();
    let rsp = drain(&mut p.b);
    assert!(header(&rsp[0]).ack_req);
    deliver(&mut p.a, p.now, B_ADDR, &rsp);
    assert!(matches!(&events(&mut p.a)[..], [Event::Response { token: t, .. }] if *t == token));
    let ack2 = drain(&mut p.a);
    assert_eq!(ack2.len(), 1);
    assert_eq!(header(&ack2[0]).mid, Mid(0x3809));
    deliver(&mut p.b, p.now, A_ADDR, &ack2);
    p.advance(Duration::from_secs(1));
    assert!(
        drain(&mut p.b).is_empty(),
        "acknowledged response is not retransmitted"
    );
    assert_eq!(p.a.stats().retransmissions + p.b.stats().retransmissions, 0);
}

#[test]
fn lost_request_is_retransmitted() {
    let mut p = Pair::new();
    p.a.send_request(p.now, udp(B_ADDR), frames::n2n_request("mihf1", "mihf2"))
        .unwrap();
    let first = drain(&mut p.a); // lost
    p.advance(Duration::from_millis(99));
    assert!(drain(&mut p.a).is_empty());
    p.advance(Duration::from_millis(1));
    let again = drain(&mut p.a);
    assert_eq!(again, first, "the same bytes are retransmitted");
    deliver(&mut p.b, p.now, A_ADDR, &again);
    let (inbound, msg) = only_request(events(&mut p.b));
    p.b.send_response(p.now, &inbound, n2n_response(&msg, Status::SUCCESS))
        .unwrap();
    deliver(&mut p.a, p.now, B_ADDR, &drain(&mut p.b));
    assert!(matches!(&events(&mut p.a)[..], [Event::Response { .. }]));
    assert_eq!(p.a.stats().retransmissions, 1);
}

#[test]
fn lost_response_is_recovered_from_the_stored_copy() {
    let mut p = Pair::new();
    p.a.send_request(p.now, udp(B_ADDR), frames::n2n_request("mihf1", "mihf2"))
        .unwrap();
    deliver(&mut p.b, p.now, A_ADDR, &drain(&mut p.a));
    let (inbound, msg) = only_request(events(&mut p.b));
    p.b.send_response(p.now, &inbound, n2n_response(&msg, Status::SUCCESS))
        .unwrap();
    let lost = drain(&mut p.b);
    p.advance(Duration::from_millis(100));
    let again = drain(&mut p.a);
    assert_eq!(again.len(), 1);
    let r = deliver(&mut p.b, p.now, A_ADDR, &again);
    assert!(matches!(r[0], Err(RxError::Duplicate { .. })));
    assert!(
        events(&mut p.b).is_empty(),
        "a duplicate is not processed again"
    );
    let resent = drain(&mut p.b);
    assert_eq!(resent, lost);
    deliver(&mut p.a, p.now, B_ADDR, &resent);
    assert!(matches!(&events(&mut p.a)[..], [Event::Response { .. }]));
    assert_eq!(p.b.stats().duplicates, 1);
}

#[test]
fn duplicate_before_the_response_returns_the_stored_ack() {
    let mut c = cfg("mihf2");
    c.ack_delay = Duration::ZERO;
    let mut p = Pair::with(cfg("mihf1"), c);
    p.a.send_request(p.now, udp(B_ADDR), frames::n2n_request("mihf1", "mihf2"))
        .unwrap();
    let req = drain(&mut p.a);
    deliver(&mut p.b, p.now, A_ADDR, &req);
    let ack = drain(&mut p.b);
    assert_eq!(ack.len(), 1);
    // The network duplicates the request: the stored ACK is re-sent.
    deliver(&mut p.b, p.now, A_ADDR, &req);
    assert_eq!(drain(&mut p.b), ack);
    assert_eq!(events(&mut p.b).len(), 1);
    // Duplicate ACKs at A are harmless.
    deliver(&mut p.a, p.now, B_ADDR, &ack);
    let r = deliver(&mut p.a, p.now, B_ADDR, &ack);
    assert!(matches!(r[0], Err(RxError::Duplicate { .. })));
}

#[test]
fn no_ack_fails_after_max_retransmissions_on_schedule() {
    let mut p = Pair::new();
    let (token, _) =
        p.a.send_request(p.now, udp(B_ADDR), frames::n2n_request("mihf1", "mihf2"))
            .unwrap();
    let start = p.now;
    let mut sends = vec![Duration::ZERO];
    drain(&mut p.a);
    let mut failed_at = None;
    while failed_at.is_none() {
        let next = p.a.poll_timeout().unwrap();
        p.now = next;
        p.a.handle_timeout(next);
        if !drain(&mut p.a).is_empty() {
            sends.push(next - start);
        }
        for e in events(&mut p.a) {
            if let Event::Failed {
                token: t,
                reason,
                mid,
            } = e
            {
                assert_eq!((t, reason, mid), (token, FailReason::NoAck, Mid(0x3409)));
                failed_at = Some(next - start);
            }
        }
    }
    let ms = Duration::from_millis;
    assert_eq!(sends, vec![ms(0), ms(100), ms(200)]);
    assert_eq!(failed_at, Some(ms(300)));
    assert_eq!(p.a.stats().failed_no_ack, 1);
}

#[test]
fn exponential_backoff_with_the_defaults() {
    let mut a = Engine::new(EngineConfig::new(MihfId::from_static("mihf1")));
    let start = Instant::now();
    a.send_request(start, udp(B_ADDR), frames::n2n_request("mihf1", "mihf2"))
        .unwrap();
    drain(&mut a);
    let mut sends = Vec::new();
    let mut failure = None;
    while let Some(t) = a.poll_timeout() {
        a.handle_timeout(t);
        if !drain(&mut a).is_empty() {
            sends.push((t - start).as_secs());
        }
        if let Some(Event::Failed { reason, .. }) = a.poll_event() {
            failure = Some(((t - start).as_secs(), reason));
        }
    }
    assert_eq!(sends, vec![1, 3, 7]);
    assert_eq!(failure, Some((15, FailReason::Timeout)));
}

#[test]
fn acknowledged_request_without_response_times_out() {
    let mut c = cfg("mihf2");
    c.ack_delay = Duration::ZERO;
    let mut p = Pair::with(cfg("mihf1"), c);
    let (token, _) =
        p.a.send_request(p.now, udp(B_ADDR), frames::n2n_request("mihf1", "mihf2"))
            .unwrap();
    deliver(&mut p.b, p.now, A_ADDR, &drain(&mut p.a));
    deliver(&mut p.a, p.now, B_ADDR, &drain(&mut p.b));
    p.advance(Duration::from_millis(1999));
    assert!(events(&mut p.a).is_empty());
    assert!(drain(&mut p.a).is_empty());
    p.advance(Duration::from_millis(1));
    assert!(matches!(
        &events(&mut p.a)[..],
        [Event::Failed { token: t, reason: FailReason::Timeout, .. }] if *t == token
    ));
    // B forgets the unanswered request at the end of its lifetime too.
    assert!(matches!(
        &events(&mut p.b)[..],
        [Event::Request { .. }, Event::Expired { .. }]
    ));
    assert_eq!(p.b.open_transactions(), (0, 0));
}

#[test]
fn response_overtaking_the_pure_ack() {
    let mut c = cfg("mihf2");
    c.ack_delay = Duration::ZERO;
    let mut p = Pair::with(cfg("mihf1"), c);
    p.a.send_request(p.now, udp(B_ADDR), frames::n2n_request("mihf1", "mihf2"))
        .unwrap();
    deliver(&mut p.b, p.now, A_ADDR, &drain(&mut p.a));
    let ack = drain(&mut p.b);
    let (inbound, msg) = only_request(events(&mut p.b));
    p.b.send_response(p.now, &inbound, n2n_response(&msg, Status::SUCCESS))
        .unwrap();
    let rsp = drain(&mut p.b);
    // Reordered: the response first, then the ACK.
    deliver(&mut p.a, p.now, B_ADDR, &rsp);
    assert!(matches!(&events(&mut p.a)[..], [Event::Response { .. }]));
    let ack_of_rsp = drain(&mut p.a);
    let r = deliver(&mut p.a, p.now, B_ADDR, &ack);
    assert!(r[0].is_err(), "late ACK is dropped: {r:?}");
    deliver(&mut p.b, p.now, A_ADDR, &ack_of_rsp);
    p.advance(Duration::from_secs(3));
    assert!(drain(&mut p.a).is_empty() && drain(&mut p.b).is_empty());
    assert!(events(&mut p.a).is_empty());
}

#[test]
fn large_message_is_fragmented_and_reassembled_out_of_order() {
    let mut ca = cfg("mihf1");
    ca.mtu = 1000;
    let mut p = Pair::with(ca, cfg("mihf2"));
    let req = big_request(5000);
    p.a.send_request(p.now, udp(B_ADDR), req.clone()).unwrap();
    let frags = drain(&mut p.a);
    assert_eq!(frags.len(), 6);
    for (i, f) in frags.iter().enumerate() {
        let h = header(f);
        assert_eq!(usize::from(h.frag_no), i);
        assert_eq!(h.more_frag, i < 5);
        assert!(f.payload.len() <= 1000);
    }
    // Lose fragment 2, deliver the others backwards, with a duplicate.
    let mut first: Vec<Transmit> = frags
        .iter()
        .rev()
        .filter(|f| header(f).frag_no != 2)
        .cloned()
        .collect();
    first.push(frags[4].clone());
    deliver(&mut p.b, p.now, A_ADDR, &first);
    assert!(events(&mut p.b).is_empty());
    // The retransmission completes the message.
    p.advance(Duration::from_millis(100));
    let again = drain(&mut p.a);
    assert_eq!(again.len(), 6);
    deliver(&mut p.b, p.now, A_ADDR, &again[2..3]);
    let (_, msg) = only_request(events(&mut p.b));
    assert_eq!(msg.extra, req.extra);
    assert_eq!(p.b.reassembly_usage(), (0, 0));
    // The rest of the retransmission starts a partial message that expires.
    deliver(&mut p.b, p.now, A_ADDR, &again[..2]);
    assert_eq!(p.b.reassembly_usage().0, 1);
    p.advance(Duration::from_secs(5));
    assert_eq!(p.b.reassembly_usage(), (0, 0));
}

#[test]
fn tcp_has_no_acks_retransmissions_or_fragments() {
    let mut ca = cfg("mihf1");
    ca.mtu = 1000;
    let mut a = Engine::new(ca);
    let now = Instant::now();
    let to = Endpoint::Tcp(B_ADDR.parse().unwrap());
    a.send_request(now, to, big_request(5000)).unwrap();
    let out = drain(&mut a);
    assert_eq!(out.len(), 1);
    assert!(!header(&out[0]).ack_req);
    a.handle_timeout(now + Duration::from_secs(1));
    assert!(drain(&mut a).is_empty());
    assert!(events(&mut a).is_empty());
    a.handle_timeout(now + Duration::from_secs(2));
    assert!(matches!(
        &events(&mut a)[..],
        [Event::Failed {
            reason: FailReason::Timeout,
            ..
        }]
    ));
}

#[test]
fn indications_are_acknowledged_and_delivered_once() {
    let mut p = Pair::new();
    let ev = frames::link_up("mihf1", "mihf2");
    let (token, _) = p.a.send_indication(p.now, udp(B_ADDR), ev).unwrap();
    let f = drain(&mut p.a);
    assert!(header(&f[0]).ack_req);
    deliver(&mut p.b, p.now, A_ADDR, &f);
    deliver(&mut p.b, p.now, A_ADDR, &f);
    assert!(matches!(&events(&mut p.b)[..], [Event::Indication { .. }]));
    let acks = drain(&mut p.b);
    assert_eq!(
        acks.len(),
        2,
        "an ACK for the first copy and the stored ACK for the duplicate"
    );
    assert_eq!(acks[0], acks[1]);
    deliver(&mut p.a, p.now, B_ADDR, &acks[..1]);
    assert!(matches!(&events(&mut p.a)[..], [Event::Delivered { token: t }] if *t == token));
    assert_eq!(p.a.open_transactions(), (0, 0));
}

#[test]
fn tid_reuse_with_new_content_is_a_new_transaction() {
    let mut b = Engine::new(cfg("mihf2"));
    let now = Instant::now();
    let mut m1 = frames::n2n_request("mihf1", "mihf2");
    m1.header.tid = 7;
    let mut m2 = m1.clone();
    if let Body::N2nHoCommitRequest(r) = &mut m2.body {
        r.mn_mihf_id = MihfId::from_static("mn-02");
    }
    b.handle_frame(now, udp(A_ADDR), m1.to_bytes().unwrap())
        .unwrap();
    b.handle_frame(now, udp(A_ADDR), m2.to_bytes().unwrap())
        .unwrap();
    let ev = events(&mut b);
    assert_eq!(ev.len(), 2);
    assert_eq!(b.stats().duplicates, 0);
}

#[test]
fn bad_frames_are_typed_errors_and_counted() {
    let mut b = Engine::new(cfg("mihf2"));
    let now = Instant::now();
    let from = udp(A_ADDR);
    assert!(matches!(
        b.handle_frame(now, from, Bytes::from_static(&[1, 2])),
        Err(RxError::Decode(_))
    ));
    // Not for us.
    let m = frames::n2n_request("mihf1", "mihf3");
    assert!(matches!(
        b.handle_frame(now, from, m.to_bytes().unwrap()),
        Err(RxError::WrongDestination(_))
    ));
    // A confirm is never sent between MIHFs.
    let mut c = n2n_response(&frames::n2n_request("mihf1", "mihf2"), Status::SUCCESS);
    c.header.mid = Mid(0x3009);
    c.source = MihfId::from_static("mihf1");
    c.destination = MihfId::from_static("mihf2");
    assert!(matches!(
        b.handle_frame(now, from, c.to_bytes().unwrap()),
        Err(RxError::BadOpcode(_))
    ));
    // A response nobody asked for.
    let mut r = n2n_response(&frames::n2n_request("mihf2", "mihf1"), Status::SUCCESS);
    r.header.tid = 99;
    assert!(matches!(
        b.handle_frame(now, from, r.to_bytes().unwrap()),
        Err(RxError::Unmatched { .. })
    ));
    let s = b.stats();
    assert_eq!(
        (
            s.decode_errors,
            s.wrong_destination,
            s.bad_opcode,
            s.unmatched
        ),
        (1, 1, 1, 1)
    );
    assert!(drain(&mut b).is_empty());
    assert!(events(&mut b).is_empty());
}

#[test]
fn request_flood_is_capped() {
    let mut c = cfg("mihf2");
    c.max_transactions = 50;
    let mut b = Engine::new(c);
    let now = Instant::now();
    let mut full = 0;
    for tid in 1..=200u16 {
        let mut m = frames::n2n_request("mihf1", "mihf2");
        m.header.tid = tid;
        if let Err(RxError::TableFull(50)) = b.handle_frame(now, udp(A_ADDR), m.to_bytes().unwrap())
        {
            full += 1;
        }
    }
    assert_eq!(full, 150);
    assert_eq!(b.open_transactions().1, 50);
    // Source side: the 51st concurrent request is refused.
    let mut ca = cfg("mihf1");
    ca.max_transactions = 50;
    let mut a = Engine::new(ca);
    for _ in 0..50 {
        a.send_request(now, udp(B_ADDR), frames::n2n_request("mihf1", "mihf2"))
            .unwrap();
    }
    assert!(a
        .send_request(now, udp(B_ADDR), frames::n2n_request("mihf1", "mihf2"))
        .is_err());
}

#[test]
fn a_full_destination_table_forgets_answered_records_not_waiting_ones() {
    let mut c = cfg("mihf2");
    c.max_transactions = 3;
    let mut b = Engine::new(c);
    let t0 = Instant::now();
    let request = |tid: u16| {
        let mut m = frames::n2n_request("mihf1", "mihf2");
        m.header.tid = tid;
        m.to_bytes().unwrap()
    };
    // TID 1 waits for its user (the oldest record); 2 and 3 are answered.
    b.handle_frame(t0, udp(A_ADDR), request(1)).unwrap();
    let (waiting, _) = only_request(events(&mut b));
    for tid in [2, 3] {
        let later = t0 + Duration::from_millis(u64::from(tid));
        b.handle_frame(later, udp(A_ADDR), request(tid)).unwrap();
        let (inbound, msg) = only_request(events(&mut b));
        b.send_response(later, &inbound, n2n_response(&msg, Status::SUCCESS))
            .unwrap();
    }
    drain(&mut b);
    // A fourth request makes room by forgetting TID 2, not TID 1.
    let t4 = t0 + Duration::from_millis(10);
    b.handle_frame(t4, udp(A_ADDR), request(4)).unwrap();
    let (_, msg) = only_request(events(&mut b));
    assert_eq!(msg.header.tid, 4);
    assert_eq!(b.open_transactions().1, 3);
    let first = frames::n2n_request("mihf1", "mihf2");
    b.send_response(t4, &waiting, n2n_response(&first, Status::SUCCESS))
        .unwrap();
    // With every record waiting, a new request is refused.
    let mut full = Engine::new({
        let mut c = cfg("mihf2");
        c.max_transactions = 2;
        c
    });
    full.handle_frame(t0, udp(A_ADDR), request(1)).unwrap();
    full.handle_frame(t0, udp(A_ADDR), request(2)).unwrap();
    assert_eq!(
        full.handle_frame(t0, udp(A_ADDR), request(3)),
        Err(RxError::TableFull(2))
    );
}

#[test]
fn lossy_duplicating_reordering_network() {
    // 200 requests through a network that loses 20 %, duplicates 10 % and
    // delays frames by 0-30 ms (so they overtake each other). Each request
    // must get exactly one outcome, each is delivered to B at most once, and
    // every success carries the matching answer.
    let mut ca = cfg("mihf1");
    ca.mtu = 600;
    let mut p = Pair::with(ca, cfg("mihf2"));
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut wire: Vec<(Instant, bool, Bytes)> = Vec::new(); // (due, to_b, bytes)
    let mut outcomes = std::collections::HashMap::new();
    let mut seen_at_b = std::collections::HashSet::new();
    let mut sent = Vec::new();
    let end = p.now + Duration::from_secs(20);
    let mut i = 0u32;
    while p.now < end {
        if i < 200 && rng.chance(30) {
            let mut m = if i % 10 == 0 {
                big_request(1500)
            } else {
                frames::n2n_request("mihf1", "mihf2")
            };
            if let Body::N2nHoCommitRequest(r) = &mut m.body {
                r.mn_mihf_id = MihfId::new(format!("mn-{i}"));
            }
            let (token, _) = p.a.send_request(p.now, udp(B_ADDR), m).unwrap();
            sent.push((token, format!("mn-{i}")));
            i += 1;
        }
        for (to_b, e) in [(true, &mut p.a), (false, &mut p.b)] {
            while let Some(t) = e.poll_transmit() {
                if rng.chance(20) {
                    continue;
                }
                let copies = if rng.chance(10) { 2 } else { 1 };
                for _ in 0..copies {
                    let due = p.now + Duration::from_millis(rng.next() % 30);
                    wire.push((due, to_b, t.payload.clone()));
                }
            }
        }
        let now = p.now;
        let (due, later): (Vec<_>, Vec<_>) = wire.drain(..).partition(|w| w.0 <= now);
        wire = later;
        for (_, to_b, bytes) in due {
            if to_b {
                let _ = p.b.handle_frame(now, udp(A_ADDR), bytes);
            } else {
                let _ = p.a.handle_frame(now, udp(B_ADDR), bytes);
            }
        }
        while let Some(e) = p.b.poll_event() {
            if let Event::Request { inbound, msg, .. } = e {
                let Body::N2nHoCommitRequest(r) = &msg.body else {
                    panic!()
                };
                assert!(
                    seen_at_b.insert(r.mn_mihf_id.clone()),
                    "delivered twice: {}",
                    r.mn_mihf_id
                );
                // Half the answers come at once, half after the ACK delay.
                let rsp = n2n_response(&msg, Status::SUCCESS);
                if rng.chance(50) {
                    p.b.send_response(now, &inbound, rsp).unwrap();
                } else {
                    p.b.handle_timeout(now + Duration::from_millis(25));
                    p.b.send_response(now + Duration::from_millis(25), &inbound, rsp)
                        .unwrap();
                }
            }
        }
        while let Some(e) = p.a.poll_event() {
            match e {
                Event::Response { token, msg, .. } => {
                    let Body::N2nHoCommitResponse(r) = &msg.body else {
                        panic!()
                    };
                    assert!(outcomes
                        .insert(token, Some(r.mn_mihf_id.to_string()))
                        .is_none());
                }
                Event::Failed { token, .. } => {
                    assert!(outcomes.insert(token, None).is_none());
                }
                other => panic!("{other:?}"),
            }
        }
        p.advance(Duration::from_millis(5));
    }
    assert_eq!(sent.len(), 200);
    assert_eq!(outcomes.len(), 200, "every request has exactly one outcome");
    let mut ok = 0;
    for (token, mn) in &sent {
        if let Some(Some(got)) = outcomes.get(token) {
            assert_eq!(got, mn);
            ok += 1;
        }
    }
    // With 20 % loss each way and 3 sends, nearly all succeed.
    assert!(ok >= 180, "only {ok} of 200 succeeded");
    let sa = p.a.stats();
    let sb = p.b.stats();
    assert!(sa.retransmissions > 0 && sb.duplicates > 0 && sb.reassembled > 0);
    assert_eq!(p.a.open_transactions().0, 0);
}

#[test]
fn a_failed_endpoint_fails_its_waiting_requests_at_once() {
    let mut a = Engine::new(cfg("mihf1"));
    let now = Instant::now();
    let tcp = Endpoint::Tcp(B_ADDR.parse().unwrap());
    let (t1, _) = a
        .send_request(now, tcp, frames::n2n_request("mihf1", "mihf2"))
        .unwrap();
    let (_t2, _) = a
        .send_request(now, udp(B_ADDR), frames::n2n_request("mihf1", "mihf2"))
        .unwrap();
    a.endpoint_failed(now, tcp);
    match &events(&mut a)[..] {
        [Event::Failed {
            token,
            reason: FailReason::NoAck,
            ..
        }] => assert_eq!(*token, t1),
        other => panic!("{other:?}"),
    }
    assert_eq!(a.open_transactions().0, 1, "the UDP request still waits");
}
