//! The transaction engine under structured input: a sequence of operations
//! (send a request or an indication, answer, deliver / drop / duplicate /
//! corrupt an in-flight frame, inject raw bytes, advance time) on two
//! engines. Checks: no panic; every source transaction ends at most once;
//! no request is delivered twice; tables stay within their caps; everything
//! drains once time moves past every lifetime.
#![no_main]

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use mihf::proto::transaction::{Engine, EngineConfig, Event, Inbound};
use mihf::proto::{Endpoint, Token};
use mihf::wire::message::*;
use mihf::wire::*;

const CAP: usize = 32;

fn cfg(id: &'static str, u: &mut Unstructured) -> Result<EngineConfig> {
    let mut c = EngineConfig::new(MihfId::from_static(id));
    c.retransmission_timeout = Duration::from_millis(u.int_in_range(1..=500)?);
    c.retransmission_backoff = u.int_in_range(1..=3)?;
    c.max_retransmissions = u.int_in_range(0..=4)?;
    c.transaction_lifetime = c.retransmission_timeout * u.int_in_range(1..=20)?;
    c.ack_delay = c.retransmission_timeout / u.int_in_range(2..=10)?;
    c.mtu = u.int_in_range(64..=1500)?;
    c.max_transactions = CAP;
    c.reassembly.max_messages = 4;
    c.reassembly.max_bytes = 8192;
    c.reassembly.timeout = Duration::from_millis(u.int_in_range(1..=2000)?);
    c.max_queue = 4096;
    Ok(c)
}

fn request(u: &mut Unstructured) -> Result<Message> {
    let mut m = Message::new(
        Mid(0x3409),
        0,
        MihfId::from_static("a"),
        MihfId::from_static("b"),
        Body::N2nHoCommitRequest(N2nHoCommitRequest {
            mn_mihf_id: MihfId::new({
                let n = u.int_in_range(0..=8)?;
                u.bytes(n)?.to_vec()
            }),
            mn_link_id: LinkId {
                link_type: LinkType(u.arbitrary()?),
                addr: LinkAddr::mac(u.arbitrary()?),
            },
            poa: LinkAddr::mac(u.arbitrary()?),
            requested_resources: None,
        }),
    );
    let pad: usize = u.int_in_range(0..=3000)?;
    if pad > 0 {
        let mut b = BytesMut::new();
        b.put_u8(100);
        encode_length(pad, &mut b);
        b.put_bytes(u.arbitrary()?, pad);
        m.extra = vec![RawTlvs::new(6, b.freeze()).expect("valid TLV")];
    }
    Ok(m)
}

fn run(u: &mut Unstructured) -> Result<()> {
    let mut a = Engine::new(cfg("a", u)?);
    let mut b = Engine::new(cfg("b", u)?);
    let ea = Endpoint::Udp("127.0.0.1:1".parse().unwrap());
    let eb = Endpoint::Udp("127.0.0.1:2".parse().unwrap());
    let tcp: bool = u.arbitrary()?;
    let (to_a, to_b) = if tcp {
        (Endpoint::Tcp(ea.addr()), Endpoint::Tcp(eb.addr()))
    } else {
        (ea, eb)
    };
    let mut now = Instant::now();
    // (to_b, bytes)
    let mut wire: Vec<(bool, Bytes)> = Vec::new();
    let mut pending: Vec<(Inbound, Message)> = Vec::new();
    let mut ended: HashSet<Token> = HashSet::new();
    let mut started: HashSet<Token> = HashSet::new();
    let mut requests: HashSet<Token> = HashSet::new();
    let mut seen: HashMap<(MihfId, u16, u64), ()> = HashMap::new();
    for _ in 0..u.int_in_range(0..=200)? {
        match u.int_in_range(0..=9)? {
            0 => {
                if let Ok((t, _)) = a.send_request(now, to_b, request(u)?) {
                    started.insert(t);
                    requests.insert(t);
                }
            }
            1 => {
                let ev = Message::new(
                    Mid(0x2c03),
                    0,
                    MihfId::from_static("a"),
                    MihfId::from_static("b"),
                    Body::Unknown,
                );
                if let Ok((t, _)) = a.send_indication(now, to_b, ev) {
                    started.insert(t);
                }
            }
            2 if !pending.is_empty() => {
                let i = u.choose_index(pending.len())?;
                let (inb, req) = pending.swap_remove(i);
                let Body::N2nHoCommitRequest(r) = &req.body else {
                    continue;
                };
                let rsp = Message::new(
                    Mid(0x3809),
                    0,
                    MihfId::from_static("b"),
                    MihfId::from_static("a"),
                    Body::N2nHoCommitResponse(N2nHoCommitResponse {
                        status: Status(u.arbitrary()?),
                        mn_mihf_id: r.mn_mihf_id.clone(),
                        link: None,
                        assigned_resources: None,
                    }),
                );
                let _ = b.send_response(now, &inb, rsp);
            }
            3 | 4 if !wire.is_empty() => {
                let i = u.choose_index(wire.len())?;
                let (to_b_side, mut bytes) = wire.swap_remove(i);
                if u.arbitrary()? {
                    wire.push((to_b_side, bytes.clone())); // duplicate
                }
                if u.ratio(1, 8)? && !bytes.is_empty() {
                    let mut v = bytes.to_vec();
                    let j = u.choose_index(v.len())?;
                    v[j] ^= u.int_in_range(1..=255)?;
                    bytes = Bytes::from(v);
                }
                let _ = if to_b_side {
                    b.handle_frame(now, to_a, bytes)
                } else {
                    a.handle_frame(now, to_b, bytes)
                };
            }
            5 if !wire.is_empty() => {
                let i = u.choose_index(wire.len())?;
                wire.swap_remove(i); // lost
            }
            6 => {
                now += Duration::from_millis(u.int_in_range(0..=3000)?);
                a.handle_timeout(now);
                b.handle_timeout(now);
            }
            7 => {
                let n = u.int_in_range(0..=300)?;
                let raw = Bytes::from(u.bytes(n)?.to_vec());
                let _ = if u.arbitrary()? {
                    a.handle_frame(now, to_b, raw)
                } else {
                    b.handle_frame(now, to_a, raw)
                };
            }
            8 => a.endpoint_failed(now, to_b),
            _ => {}
        }
        while let Some(t) = a.poll_transmit() {
            wire.push((true, t.payload));
        }
        while let Some(t) = b.poll_transmit() {
            wire.push((false, t.payload));
        }
        wire.truncate(256);
        while let Some(e) = a.poll_event() {
            if let Event::Response { token, .. }
            | Event::Failed { token, .. }
            | Event::Delivered { token } = e
            {
                assert!(ended.insert(token), "source transaction ended twice");
            }
        }
        while let Some(e) = b.poll_event() {
            if let Event::Request { inbound, msg, .. } = e {
                let k = (inbound.peer.clone(), inbound.tid, inbound.serial);
                assert!(seen.insert(k, ()).is_none(), "request delivered twice");
                pending.push((inbound, msg));
            }
        }
        for e in [&a, &b] {
            let (o, i) = e.open_transactions();
            assert!(o <= CAP && i <= CAP, "tables over cap: {o} {i}");
            let (rm, rb) = e.reassembly_usage();
            assert!(rm <= 4 && rb <= 8192, "reassembly over cap: {rm} {rb}");
        }
    }
    // Time moves on: every transaction ends, every table empties.
    now += Duration::from_secs(3600);
    a.handle_timeout(now);
    b.handle_timeout(now);
    while let Some(e) = a.poll_event() {
        if let Event::Response { token, .. }
        | Event::Failed { token, .. }
        | Event::Delivered { token } = e
        {
            assert!(ended.insert(token), "source transaction ended twice");
        }
    }
    assert_eq!(a.open_transactions(), (0, 0));
    assert_eq!(b.open_transactions(), (0, 0));
    assert_eq!(a.reassembly_usage(), (0, 0));
    assert!(a.poll_timeout().is_none() && b.poll_timeout().is_none());
    assert!(ended.is_subset(&started));
    assert!(requests.is_subset(&ended), "a request never ended");
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let _ = run(&mut u);
});
