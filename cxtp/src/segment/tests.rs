use super::*;
use crate::profile::ProfileRegistry;
use crate::token::AuthKey;
use crate::wire::{Message, ALGORITHM_HMAC_SHA1};
use proptest::prelude::*;

fn mn() -> IpAddr {
    "2001:db8::1".parse().unwrap()
}
fn hdr() -> CtdHeader {
    CtdHeader {
        ack: true,
        elapsed_ms: 0,
        mn_addr: mn(),
        key_block: None,
    }
}
fn ctx(fpt: u16, len: usize, seed: u8) -> Context {
    Context::new(
        fpt,
        Bytes::from(
            (0..len)
                .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
                .collect::<Vec<u8>>(),
        ),
    )
}
fn view(m: &Bytes) -> Ctd {
    match Message::parse(m.clone()).expect("valid RFC 4067 message") {
        Message::Ctd(c) => c,
        other => panic!("not a CTD: {other:?}"),
    }
}
fn sorted(mut v: Vec<Context>) -> Vec<Context> {
    v.sort_by(|a, b| (a.fpt, a.data.len(), &a.data[..]).cmp(&(b.fpt, b.data.len(), &b.data[..])));
    v
}
fn run(r: &mut Reassembler, now: Instant, msgs: &[Bytes]) -> Option<Transfer> {
    let mut done = None;
    for m in msgs {
        if let Received::Complete(t) = r.receive(now, &view(m)) {
            assert!(done.is_none(), "completed twice");
            done = Some(t);
        }
    }
    done
}
/// Contexts as a plain single CDB would deliver them (data padded).
fn padded(c: &Context) -> Context {
    let hdr = if c.presence_vector.is_some() { 8 } else { 4 };
    let mut d = c.data.to_vec();
    d.resize(pad8(hdr + d.len()) - hdr, 0);
    Context {
        data: d.into(),
        ..c.clone()
    }
}

#[test]
fn every_message_is_valid_rfc4067_and_within_limits() {
    let cfg = SegmentConfig::default();
    for size in [0, 1, 2036, 2037, 75 * 1024, 1 << 20] {
        let msgs = encode_transfer(&cfg, &hdr(), &[ctx(0xFF02, size, 1)], 9).unwrap();
        for m in &msgs {
            assert!(m.len() <= MAX_MESSAGE_LEN);
            let c = view(m);
            for b in c.blocks() {
                assert!(b.wire_len() <= MAX_CDB_LEN);
            }
        }
        if size == 1 << 20 {
            assert_eq!(msgs.len(), 17, "1 MiB in ~64 KB messages");
        }
    }
}

#[test]
fn single_message_transfer_is_plain_rfc4067() {
    let cfg = SegmentConfig::default();
    let small = ctx(1, 24, 0);
    let msgs = encode_transfer(&cfg, &hdr(), std::slice::from_ref(&small), 1).unwrap();
    assert_eq!(msgs.len(), 1);
    let c = view(&msgs[0]);
    assert_eq!(c.block_count(), 1);
    assert_eq!(c.blocks().next().unwrap().fpt, 1);
    let mut r = Reassembler::new(cfg);
    let t = run(&mut r, Instant::now(), &msgs).unwrap();
    assert_eq!(t.contexts, vec![padded(&small)]);
    assert_eq!(r.buffered(), 0);
}

#[test]
fn large_and_many_small_contexts_round_trip_in_any_order_with_duplicates() {
    let cfg = SegmentConfig::default();
    let mut contexts: Vec<Context> = (0..100).map(|i| ctx(0xFF01, 1000 + i, i as u8)).collect();
    contexts.push(ctx(0xFF02, 300_000, 7));
    contexts.push(Context {
        presence_vector: Some(0xf000_0000),
        ..ctx(0xFF03, 5000, 9)
    });
    let mut msgs = encode_transfer(&cfg, &hdr(), &contexts, 77).unwrap();
    assert!(msgs.len() > 5);
    msgs.reverse();
    let dup = msgs[2].clone();
    msgs.insert(4, dup);
    let mut r = Reassembler::new(cfg);
    let now = Instant::now();
    let mut done = None;
    let mut dups = 0;
    for m in &msgs {
        match r.receive(now, &view(m)) {
            Received::Complete(t) => done = Some(t),
            Received::Duplicate => dups += 1,
            Received::Partial { failures, .. } => assert!(failures.is_empty()),
        }
    }
    assert_eq!(dups, 1);
    // A late duplicate after completion is recognised too.
    assert_eq!(r.receive(now, &view(&msgs[0])), Received::Duplicate);
    let t = done.unwrap();
    assert!(t.failures.is_empty());
    assert_eq!(t.transfer_id, 77);
    let expect: Vec<Context> = contexts
        .iter()
        .map(|c| {
            if plain_len(c) <= MAX_CDB_LEN {
                padded(c)
            } else {
                c.clone()
            }
        })
        .collect();
    assert_eq!(sorted(t.contexts), sorted(expect));
    assert_eq!(r.buffered(), 0);
    assert_eq!(r.in_progress(), 0);
}

#[test]
fn pctd_transfer_carries_the_key_in_every_message() {
    let cfg = SegmentConfig::default();
    let h = CtdHeader {
        key_block: Some(KeyBlockRepr {
            algorithm: ALGORITHM_HMAC_SHA1,
            key: AuthKey::new(&[0x0b; 20]),
        }),
        ..hdr()
    };
    let msgs = encode_transfer(&cfg, &h, &[ctx(0xFF02, 150_000, 3)], 5).unwrap();
    assert_eq!(msgs.len(), 3);
    for m in &msgs {
        let c = view(m);
        assert_eq!(c.message_type(), MessageType::Pctd);
        assert_eq!(&c.key_block.as_ref().unwrap().key[..], &[0x0b; 20]);
    }
    let t = run(&mut Reassembler::new(cfg), Instant::now(), &msgs).unwrap();
    assert_eq!(t.contexts[0].data.len(), 150_000);
}

#[test]
fn a_peer_without_the_scheme_reports_the_segment_fpt_unsupported() {
    let cfg = SegmentConfig::default();
    let msgs = encode_transfer(&cfg, &hdr(), &[ctx(0xFF02, 10_000, 3)], 5).unwrap();
    assert_eq!(msgs.len(), 1);
    // An RFC-only receiver treats every CDB as a context of its FPT.
    let c = view(&msgs[0]);
    let contexts: Vec<Context> = c
        .blocks()
        .map(|b| Context {
            fpt: b.fpt,
            presence_vector: b.presence_vector,
            data: b.data,
        })
        .collect();
    let (_, s, entries) = ProfileRegistry::with_builtins().receive(&contexts);
    assert!(!s);
    assert_eq!(
        entries,
        vec![crate::wire::StatusEntry {
            fpt: fpt::SEGMENT,
            status: status::UNSUPPORTED_FPT
        }]
    );
}

#[test]
fn oversized_totals_are_refused_before_allocating() {
    let cfg = SegmentConfig {
        max_context_len: 50_000,
        ..SegmentConfig::default()
    };
    let msgs = encode_transfer(
        &SegmentConfig::default(),
        &hdr(),
        &[ctx(0xFF02, 60_000, 1), ctx(1, 24, 0)],
        1,
    )
    .unwrap();
    let mut r = Reassembler::new(cfg);
    let mut buffered_max = 0;
    let mut done = None;
    for m in &msgs {
        if let Received::Complete(t) = r.receive(Instant::now(), &view(m)) {
            done = Some(t);
        }
        buffered_max = buffered_max.max(r.buffered());
    }
    let t = done.unwrap();
    assert_eq!(t.failures, vec![(0xFF02, status::REASSEMBLY_FAILED)]);
    assert_eq!(t.contexts.len(), 1);
    assert!(
        buffered_max < 100,
        "nothing of the refused context was buffered"
    );
}

#[test]
fn global_buffer_cap_is_enforced() {
    let cfg = SegmentConfig {
        max_buffered: 100_000,
        ..SegmentConfig::default()
    };
    let a = encode_transfer(&cfg, &hdr(), &[ctx(0xFF02, 90_000, 1)], 1).unwrap();
    let other = CtdHeader {
        mn_addr: "2001:db8::2".parse().unwrap(),
        ..hdr()
    };
    let b = encode_transfer(&cfg, &other, &[ctx(0xFF02, 90_000, 2)], 2).unwrap();
    let mut r = Reassembler::new(cfg);
    let now = Instant::now();
    // First halves of both: the second cannot fit.
    assert!(matches!(
        r.receive(now, &view(&a[0])),
        Received::Partial { .. }
    ));
    r.receive(now, &view(&b[0]));
    assert!(r.buffered() <= 100_000);
    let tb = run(&mut r, now, &b[1..]).unwrap();
    assert_eq!(tb.failures, vec![(0xFF02, status::REASSEMBLY_FAILED)]);
    let ta = run(&mut r, now, &a[1..]).unwrap();
    assert!(ta.failures.is_empty());
    assert_eq!(ta.contexts[0].data.len(), 90_000);
    assert_eq!(r.buffered(), 0);
}

#[test]
fn stalled_transfers_time_out_and_free_memory() {
    let cfg = SegmentConfig {
        timeout: Duration::from_millis(500),
        ..SegmentConfig::default()
    };
    let msgs = encode_transfer(&cfg, &hdr(), &[ctx(0xFF02, 200_000, 1)], 1).unwrap();
    let mut r = Reassembler::new(cfg);
    let t0 = Instant::now();
    r.receive(t0, &view(&msgs[0]));
    r.receive(t0 + Duration::from_millis(400), &view(&msgs[1]));
    assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_millis(900)));
    assert!(r.handle_timeout(t0 + Duration::from_millis(899)).is_empty());
    assert!(r.buffered() > 0);
    assert_eq!(
        r.handle_timeout(t0 + Duration::from_millis(900)),
        vec![mn()]
    );
    assert_eq!(r.buffered(), 0);
    assert_eq!(r.poll_timeout(), None);
}

#[test]
fn bad_segment_blocks_are_reported_not_fatal() {
    // Hand-made CTD: a SEGMENT whose chunk runs past its total.
    let mut body = BytesMut::new();
    body.put_u16(fpt::SEGMENT);
    body.put_u8(4);
    body.put_u8(0);
    body.put_slice(&[
        KIND_SEGMENT,
        0,
        0xFF,
        0x02,
        0,
        0,
        0,
        1,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        2,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        4,
    ]);
    body.put_slice(&[1, 2, 3, 4]);
    let repr = crate::wire::MessageRepr::Ctd(crate::wire::CtdRepr {
        ack: true,
        elapsed_ms: 0,
        mn_addr: mn(),
        key_block: None,
        blocks: vec![crate::wire::ContextDataBlockRepr::new(
            fpt::SEGMENT,
            body.freeze().slice(4..),
        )],
    });
    let m = repr.to_bytes().unwrap();
    let c = view(&m);
    assert!(parse_block(&c.blocks().next().unwrap()).is_err());
    let t = run(
        &mut Reassembler::new(SegmentConfig::default()),
        Instant::now(),
        &[m],
    )
    .unwrap();
    assert_eq!(t.failures, vec![(fpt::SEGMENT, status::MALFORMED)]);
}

#[test]
fn sixteen_mib_context_fits() {
    let cfg = SegmentConfig::default();
    let big = Context::new(0xFF02, Bytes::from(vec![0xa5; 16 << 20]));
    let msgs = encode_transfer(&cfg, &hdr(), std::slice::from_ref(&big), 3).unwrap();
    assert!(msgs.len() > 256 && msgs.len() < 300);
    let t = run(&mut Reassembler::new(cfg), Instant::now(), &msgs).unwrap();
    assert_eq!(t.contexts, vec![big]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn any_contexts_any_order_reassemble(
        sizes in proptest::collection::vec(0usize..20_000, 1..12),
        max_message_len in 3000usize..=65535,
        perm_seed in any::<u64>(),
        dup in any::<prop::sample::Index>(),
    ) {
        let cfg = SegmentConfig { max_message_len, ..SegmentConfig::default() };
        let contexts: Vec<Context> = sizes.iter().enumerate().map(|(i, &s)| ctx(0xFF00 + 1 + (i as u16 % 3), s, i as u8)).collect();
        let mut msgs = encode_transfer(&cfg, &hdr(), &contexts, 11).unwrap();
        for m in &msgs {
            prop_assert!(m.len() <= max_message_len);
        }
        // Deterministic shuffle plus one duplicate.
        let mut s = perm_seed;
        for i in (1..msgs.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            msgs.swap(i, (s >> 33) as usize % (i + 1));
        }
        if msgs.len() > 1 {
            let d = msgs[dup.index(msgs.len())].clone();
            msgs.push(d);
        }
        let mut r = Reassembler::new(cfg);
        let mut done = None;
        for m in &msgs {
            if let Received::Complete(t) = r.receive(Instant::now(), &view(m)) {
                prop_assert!(done.is_none(), "completed twice");
                done = Some(t);
            }
        }
        let t = done.expect("complete");
        prop_assert!(t.failures.is_empty());
        let expect: Vec<Context> = contexts.iter().map(|c| if plain_len(c) <= MAX_CDB_LEN { padded(c) } else { c.clone() }).collect();
        prop_assert_eq!(sorted(t.contexts), sorted(expect));
    }
}

#[test]
fn message_and_block_counts_documented_in_the_readme() {
    let cfg = SegmentConfig::default();
    let count = |size: usize| {
        let msgs = encode_transfer(&cfg, &hdr(), &[ctx(0xFF02, size, 0)], 1).unwrap();
        let blocks: usize = msgs.iter().map(|m| view(m).block_count()).sum();
        (msgs.len(), blocks)
    };
    assert_eq!(count(75 * 1024), (2, 42));
    assert_eq!(count(1 << 20), (17, 553));
    assert_eq!(count(16 << 20).0, 260);
}

#[test]
fn a_context_using_the_segment_fpt_is_wrapped_not_confused() {
    // Found by the cxtp_reassembly fuzz target: a small plain context whose
    // FPT is the segmentation FPT was taken for a malformed segment block.
    let cfg = SegmentConfig::default();
    let odd = ctx(fpt::SEGMENT, 100, 1);
    let empty = ctx(fpt::SEGMENT, 0, 2);
    let msgs = encode_transfer(
        &cfg,
        &hdr(),
        &[odd.clone(), empty.clone(), ctx(1, 24, 0)],
        1,
    )
    .unwrap();
    let t = run(&mut Reassembler::new(cfg), Instant::now(), &msgs).unwrap();
    assert!(t.failures.is_empty(), "{:?}", t.failures);
    assert!(t.contexts.contains(&odd));
    assert!(t.contexts.contains(&empty));
}

#[test]
fn failures_of_intermediate_messages_reach_the_final_verdict() {
    let cfg = SegmentConfig {
        max_message_len: 3000,
        ..SegmentConfig::default()
    };
    let msgs = encode_transfer(&cfg, &hdr(), &[ctx(0xFF02, 9000, 1)], 1).unwrap();
    assert!(msgs.len() > 2);
    // Corrupt the kind octet of the segment block in message 1.
    let mut bad = msgs[1].to_vec();
    let seg_cdb = HEADER_LEN + 4 + 16 + 16; // header, elapsed, IPv6 MN, TRANSFER CDB
    bad[seg_cdb + 4] = 9;
    let mut all = msgs.clone();
    all[1] = Bytes::from(bad);
    let t = run(&mut Reassembler::new(cfg), Instant::now(), &all).unwrap();
    assert!(
        t.failures.contains(&(fpt::SEGMENT, status::MALFORMED)),
        "{:?}",
        t.failures
    );
    assert!(
        t.failures.contains(&(0xFF02, status::REASSEMBLY_FAILED)),
        "{:?}",
        t.failures
    );
}

#[test]
fn golden_segmentation_blocks() {
    // conformance/vectors/cxtp/ctd_ipv4_segment_blocks.json
    let raw = hex::decode(
        "23c0004400000000c0000201ff000200018000000000000700000000ff0005000200ff02000000000000\
         00000000000a0000000400000006616263646566000000000000",
    )
    .unwrap();
    let c = view(&Bytes::from(raw));
    let blocks: Vec<_> = c.blocks().map(|b| parse_block(&b).unwrap()).collect();
    assert_eq!(
        blocks[0],
        SegmentBlock::Transfer(TransferBlock {
            transfer_id: 7,
            index: 0,
            last: true
        })
    );
    match &blocks[1] {
        SegmentBlock::Segment(s) => {
            assert_eq!(
                (s.inner_fpt, s.context_id, s.total_len, s.offset),
                (0xFF02, 0, 10, 4)
            );
            assert_eq!(s.inner_presence_vector, None);
            assert_eq!(&s.chunk[..], b"abcdef");
        }
        other => panic!("{other:?}"),
    }
}
