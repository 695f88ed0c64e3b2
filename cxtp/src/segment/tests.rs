use super::*;
use crate::profile::ProfileRegistry;
use crate::token::AuthKey;
use crate::wire::{MessageView, ALGORITHM_HMAC_SHA1};
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
    match MessageView::parse(m.clone()).expect("valid RFC 4067 message") {
        MessageView::Ctd(c) => c,
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

// ---------------------------------------------------------------------------
// The memory cap on every path.

/// A hand-made CTD from `mn()` with these blocks.
fn hand_made(blocks: Vec<crate::wire::ContextDataBlockRepr>) -> Bytes {
    crate::wire::MessageRepr::Ctd(crate::wire::CtdRepr {
        ack: true,
        elapsed_ms: 0,
        mn_addr: mn(),
        key_block: None,
        blocks,
    })
    .to_bytes()
    .unwrap()
}
fn transfer_block(index: u16, last: bool, id: u32) -> crate::wire::ContextDataBlockRepr {
    let mut d = vec![KIND_TRANSFER, if last { FLAG } else { 0 }];
    d.extend_from_slice(&index.to_be_bytes());
    d.extend_from_slice(&id.to_be_bytes());
    crate::wire::ContextDataBlockRepr::new(fpt::SEGMENT, Bytes::from(d))
}
fn plain_block(fpt: u16, len: usize) -> crate::wire::ContextDataBlockRepr {
    crate::wire::ContextDataBlockRepr::new(fpt, Bytes::from(vec![0x5a; len]))
}
/// `buffered()` after each message, delivered in order; the last outcome.
fn buffered_trace(cfg: &SegmentConfig, msgs: &[Bytes]) -> (Vec<usize>, Vec<Received>) {
    let mut r = Reassembler::new(cfg.clone());
    let now = Instant::now();
    let mut trace = Vec::new();
    let mut outcomes = Vec::new();
    for m in msgs {
        outcomes.push(r.receive(now, &view(m)));
        assert!(r.buffered() <= cfg.max_buffered);
        trace.push(r.buffered());
    }
    (trace, outcomes)
}
/// 120 plain contexts of 1,000 octets over many small messages.
fn many_plain_messages() -> (Vec<Context>, Vec<Bytes>) {
    let contexts: Vec<Context> = (0..120).map(|i| ctx(0xFF01, 1000, i as u8)).collect();
    let cfg = SegmentConfig {
        max_message_len: 3000,
        ..SegmentConfig::default()
    };
    let msgs = encode_transfer(&cfg, &hdr(), &contexts, 21).unwrap();
    assert_eq!(msgs.len(), 60, "two plain contexts a message");
    (contexts, msgs)
}

#[test]
fn plain_blocks_of_earlier_messages_are_charged_exactly() {
    let (contexts, msgs) = many_plain_messages();
    let (trace, outcomes) = buffered_trace(&SegmentConfig::default(), &msgs);
    // Each earlier message holds its two plain blocks (data as received,
    // padded to 1,004 octets) and their entries, plus one word of indices.
    let per_message = 2 * (1004 + CONTEXT_COST);
    for (i, b) in trace[..msgs.len() - 1].iter().enumerate() {
        assert_eq!(*b, WORD_COST + (i + 1) * per_message, "after message {i}");
    }
    // The last message completes the transfer and releases everything.
    assert_eq!(trace[msgs.len() - 1], 0);
    let Some(Received::Complete(t)) = outcomes.last() else {
        panic!("{:?}", outcomes.last())
    };
    assert!(t.failures.is_empty());
    let expect: Vec<Context> = contexts.iter().map(padded).collect();
    assert_eq!(sorted(t.contexts.clone()), sorted(expect));
}

#[test]
fn plain_blocks_over_the_cap_fail_the_transfer_when_they_arrive() {
    let (_, msgs) = many_plain_messages();
    let (free, _) = buffered_trace(&SegmentConfig::default(), &msgs);
    // Room for the blocks of the first 40 messages, one octet short of the 41st's.
    let cap = free[40] - 1;
    let cfg = SegmentConfig {
        max_buffered: cap,
        ..SegmentConfig::default()
    };
    let mut r = Reassembler::new(cfg);
    let now = Instant::now();
    let failed = vec![(0xFF01, status::REASSEMBLY_FAILED)];
    for (i, m) in msgs.iter().enumerate() {
        let got = r.receive(now, &view(m));
        assert!(r.buffered() <= cap, "message {i}: {} > {cap}", r.buffered());
        match i {
            0..=39 => {
                assert_eq!(
                    got,
                    Received::Partial {
                        index: i as u16,
                        failures: vec![]
                    }
                );
                assert_eq!(r.buffered(), free[i], "message {i}");
            }
            // The message whose blocks would go over the cap fails the
            // transfer: everything is released, and so are the later ones.
            40..=58 => {
                assert_eq!(
                    got,
                    Received::Partial {
                        index: i as u16,
                        failures: failed.clone()
                    },
                    "message {i}"
                );
                assert_eq!(r.buffered(), 0, "message {i}");
                assert_eq!(r.in_progress(), 1);
            }
            _ => {
                let Received::Complete(t) = got else {
                    panic!("{got:?}")
                };
                assert!(t.contexts.is_empty());
                assert_eq!(t.failures, failed);
                assert_eq!(t.transfer_id, 21);
            }
        }
    }
    assert_eq!(r.buffered(), 0);
    assert_eq!(r.in_progress(), 0);
    assert_eq!(r.receive(now, &view(&msgs[3])), Received::Duplicate);
}

#[test]
fn the_cap_exactly_reached_is_accepted() {
    let (contexts, msgs) = many_plain_messages();
    let (free, _) = buffered_trace(&SegmentConfig::default(), &msgs);
    let peak = *free.iter().max().unwrap();
    assert_eq!(peak, free[msgs.len() - 2]);
    let at = |cap| SegmentConfig {
        max_buffered: cap,
        ..SegmentConfig::default()
    };
    let (trace, outcomes) = buffered_trace(&at(peak), &msgs);
    assert_eq!(trace, free);
    let Some(Received::Complete(t)) = outcomes.last() else {
        panic!("{:?}", outcomes.last())
    };
    assert!(t.failures.is_empty());
    assert_eq!(t.contexts.len(), contexts.len());
    // One octet less and the message that would reach the peak fails it.
    let (trace, outcomes) = buffered_trace(&at(peak - 1), &msgs);
    assert_eq!(trace[..msgs.len() - 2], free[..msgs.len() - 2]);
    assert_eq!(trace[msgs.len() - 2], 0);
    assert_eq!(
        outcomes[msgs.len() - 2],
        Received::Partial {
            index: msgs.len() as u16 - 2,
            failures: vec![(0xFF01, status::REASSEMBLY_FAILED)]
        }
    );
    let Some(Received::Complete(t)) = outcomes.last() else {
        panic!("{:?}", outcomes.last())
    };
    assert!(t.contexts.is_empty());
}

#[test]
fn a_mixed_plain_and_segmented_transfer_stays_under_the_cap() {
    let cfg = SegmentConfig {
        max_message_len: 3000,
        ..SegmentConfig::default()
    };
    let mut contexts: Vec<Context> = (0..20).map(|i| ctx(0xFF01, 700, i as u8)).collect();
    contexts.insert(10, ctx(0xFF02, 40_000, 99));
    let msgs = encode_transfer(&cfg, &hdr(), &contexts, 8).unwrap();
    assert!(msgs.len() > 15);
    // Without pressure: all delivered, the charge grows and is released.
    let (free, outcomes) = buffered_trace(&cfg, &msgs);
    let Some(Received::Complete(t)) = outcomes.last() else {
        panic!("{:?}", outcomes.last())
    };
    assert!(t.failures.is_empty());
    assert_eq!(t.contexts.len(), contexts.len());
    assert!(free.windows(2).take(msgs.len() - 2).all(|w| w[0] <= w[1]));
    assert_eq!(free[msgs.len() - 1], 0);
    let peak = *free.iter().max().unwrap();
    let data: usize = 20 * 700 + 40_000;
    // Everything but the last message (at most 3,000 octets), plus
    // bookkeeping.
    assert!(peak >= data - 3000 && peak < data + 4096, "peak {peak}");
    // Half of it: the transfer fails on the message that would go over,
    // with both FPTs reported, and releases everything at once.
    let cap = peak / 2;
    let tight = SegmentConfig {
        max_buffered: cap,
        ..cfg.clone()
    };
    let (trace, outcomes) = buffered_trace(&tight, &msgs);
    let first = outcomes
        .iter()
        .position(|o| matches!(o, Received::Partial { failures, .. } if !failures.is_empty()))
        .expect("the transfer failed");
    assert!(trace[..first].iter().all(|b| *b > 0 && *b <= cap));
    assert!(trace[first..].iter().all(|b| *b == 0));
    // Until it failed, it held at most what it holds without the cap (the
    // segmented buffer grows exactly rather than doubling near the cap), and
    // it failed no earlier than the message that takes the uncapped charge
    // over the cap (within one message the charge only grows, but for the
    // entry and ranges of a context that completes).
    assert!(first > 0);
    assert!(trace[..first].iter().zip(&free).all(|(t, f)| t <= f));
    assert!(
        free[first] + PARTIAL_COST + RANGE_COST > cap,
        "failed at message {first}: {} of {cap} without the cap",
        free[first]
    );
    let Received::Partial { failures, .. } = &outcomes[first] else {
        unreachable!()
    };
    let mut f = failures.clone();
    f.sort_unstable();
    assert_eq!(
        f,
        vec![
            (0xFF01, status::REASSEMBLY_FAILED),
            (0xFF02, status::REASSEMBLY_FAILED)
        ]
    );
    let Some(Received::Complete(t)) = outcomes.last() else {
        panic!("{:?}", outcomes.last())
    };
    assert!(t.contexts.is_empty());
    assert_eq!(&t.failures, failures);
}

#[test]
fn a_segmented_buffer_is_charged_at_its_capacity_before_it_grows() {
    let cfg = SegmentConfig::default();
    let msgs = encode_transfer(&cfg, &hdr(), &[ctx(0xFF02, 100_000, 4)], 3).unwrap();
    assert_eq!(msgs.len(), 2);
    let mut r = Reassembler::new(cfg);
    r.receive(Instant::now(), &view(&msgs[0]));
    let st = &r.states[&mn()];
    let p = st.partials.values().next().unwrap();
    assert_eq!(p.buf.capacity(), p.held);
    assert!(p.held >= p.buf.len() && p.held <= 100_000);
    assert_eq!(p.ranges.len(), 1);
    assert_eq!(
        r.buffered(),
        WORD_COST + PARTIAL_COST + RANGE_COST + p.held,
        "indices, the partial context's entry, one range and the buffer"
    );
    // Growth never goes past the announced total.
    let t = run(&mut r, Instant::now(), &msgs[1..]).unwrap();
    assert_eq!(t.contexts[0].data.len(), 100_000);
    assert_eq!(r.buffered(), 0);
}

#[test]
fn a_u16_message_index_is_charged_before_its_bookkeeping_is_allocated() {
    let far = hand_made(vec![transfer_block(u16::MAX - 1, false, 5)]);
    // The indices of a transfer up to 65,534 take 1,024 words: charged.
    let mut r = Reassembler::new(SegmentConfig::default());
    assert_eq!(
        r.receive(Instant::now(), &view(&far)),
        Received::Partial {
            index: u16::MAX - 1,
            failures: vec![]
        }
    );
    assert_eq!(r.buffered(), 1024 * WORD_COST);
    assert_eq!(r.states[&mn()].have.capacity(), 1024);
    // Under a smaller cap, the transfer fails before anything is allocated.
    let mut r = Reassembler::new(SegmentConfig {
        max_buffered: 1000,
        ..SegmentConfig::default()
    });
    assert_eq!(
        r.receive(Instant::now(), &view(&far)),
        Received::Partial {
            index: u16::MAX - 1,
            failures: vec![(fpt::SEGMENT, status::REASSEMBLY_FAILED)]
        }
    );
    assert_eq!(r.buffered(), 0);
    assert_eq!(r.states[&mn()].have.capacity(), 0);
    // Its LAST message completes it, failed.
    let last = hand_made(vec![transfer_block(u16::MAX, true, 5), plain_block(1, 20)]);
    let Received::Complete(t) = r.receive(Instant::now(), &view(&last)) else {
        panic!()
    };
    assert!(t.contexts.is_empty());
    assert_eq!(t.failures, vec![(fpt::SEGMENT, status::REASSEMBLY_FAILED)]);
    assert_eq!((r.buffered(), r.in_progress()), (0, 0));
}

#[test]
fn tiny_blocks_and_failures_are_charged_for_their_entries() {
    // 1,000 minimal plain CDBs (4 octets of padding each) and 1,000
    // malformed segmentation blocks in each intermediate message.
    let msg = |index: u16| {
        let mut blocks = vec![transfer_block(index, false, 9)];
        blocks.extend((0..1000).map(|_| plain_block(7, 0)));
        blocks.extend(
            (0..1000).map(|_| crate::wire::ContextDataBlockRepr::new(fpt::SEGMENT, Bytes::new())),
        );
        hand_made(blocks)
    };
    let per_message = 1000 * (4 + CONTEXT_COST) + 1000 * FAILURE_COST;
    let cap = WORD_COST + 3 * per_message;
    let mut r = Reassembler::new(SegmentConfig {
        max_buffered: cap,
        ..SegmentConfig::default()
    });
    let now = Instant::now();
    for i in 0..3u16 {
        let Received::Partial { failures, .. } = r.receive(now, &view(&msg(i))) else {
            panic!()
        };
        assert_eq!(failures.len(), 1000);
        assert!(failures
            .iter()
            .all(|f| *f == (fpt::SEGMENT, status::MALFORMED)));
        assert_eq!(r.buffered(), WORD_COST + (i as usize + 1) * per_message);
    }
    assert_eq!(r.buffered(), cap);
    let Received::Partial { failures, .. } = r.receive(now, &view(&msg(3))) else {
        panic!()
    };
    assert_eq!(
        failures,
        vec![
            (fpt::SEGMENT, status::MALFORMED),
            (7, status::REASSEMBLY_FAILED)
        ]
    );
    assert_eq!(r.buffered(), 0);
}

#[test]
fn max_context_len_applies_to_plain_blocks_too() {
    let cfg = SegmentConfig {
        max_context_len: 500,
        ..SegmentConfig::default()
    };
    // Single message: the 1,000-octet plain context is refused.
    let one = encode_transfer(&cfg, &hdr(), &[ctx(1, 1000, 0), ctx(2, 100, 0)], 1).unwrap();
    assert_eq!(one.len(), 1);
    let t = run(&mut Reassembler::new(cfg.clone()), Instant::now(), &one).unwrap();
    assert_eq!(t.failures, vec![(1, status::REASSEMBLY_FAILED)]);
    assert_eq!(t.contexts, vec![padded(&ctx(2, 100, 0))]);
    // Several messages: refused in the message that carries it (and not
    // charged), reported there and in the final verdict.
    let small = SegmentConfig {
        max_message_len: 2200,
        ..cfg.clone()
    };
    let mut contexts = vec![ctx(1, 1000, 0)];
    contexts.extend((0..6).map(|i| ctx(2, 400, i)));
    let many = encode_transfer(&small, &hdr(), &contexts, 2).unwrap();
    assert_eq!(many.len(), 2);
    let kept = view(&many[0]).block_count() - 2; // not the TRANSFER block nor the refused one
    let mut r = Reassembler::new(cfg);
    assert_eq!(
        r.receive(Instant::now(), &view(&many[0])),
        Received::Partial {
            index: 0,
            failures: vec![(1, status::REASSEMBLY_FAILED)]
        }
    );
    assert_eq!(
        r.buffered(),
        WORD_COST + kept * (404 + CONTEXT_COST) + FAILURE_COST
    );
    let t = run(&mut r, Instant::now(), &many[1..]).unwrap();
    assert_eq!(t.failures, vec![(1, status::REASSEMBLY_FAILED)]);
    assert_eq!(
        sorted(t.contexts),
        sorted(contexts[1..].iter().map(padded).collect())
    );
    assert_eq!(r.buffered(), 0);
}

#[test]
fn max_transfers_bounds_failed_transfers_too() {
    let cfg = SegmentConfig {
        max_transfers: 1,
        max_buffered: 100,
        ..SegmentConfig::default()
    };
    let mut r = Reassembler::new(cfg);
    let now = Instant::now();
    // A transfer that failed still occupies its place until it completes
    // or times out, holding nothing.
    let first = hand_made(vec![transfer_block(0, false, 1), plain_block(1, 500)]);
    let Received::Partial { failures, .. } = r.receive(now, &view(&first)) else {
        panic!()
    };
    assert_eq!(failures, vec![(1, status::REASSEMBLY_FAILED)]);
    assert_eq!((r.in_progress(), r.buffered()), (1, 0));
    let other = CtdHeader {
        mn_addr: "2001:db8::2".parse().unwrap(),
        ..hdr()
    };
    let m = encode_transfer(&SegmentConfig::default(), &other, &[ctx(3, 10, 0)], 1).unwrap();
    let Received::Complete(t) = r.receive(now, &view(&m[0])) else {
        panic!()
    };
    assert!(t.contexts.is_empty());
    assert_eq!(t.failures, vec![(3, status::REASSEMBLY_FAILED)]);
    assert_eq!(r.handle_timeout(now + Duration::from_secs(5)), vec![mn()]);
    assert_eq!((r.in_progress(), r.buffered()), (0, 0));
}

#[test]
fn received_ranges_merge_in_any_order() {
    let mut p = Partial {
        inner_fpt: 1,
        pv: None,
        total: 100,
        buf: vec![0; 100],
        held: 100,
        ranges: BTreeMap::new(),
    };
    let chunk = [1u8; 100];
    p.insert(50, &chunk[..10]);
    p.insert(10, &chunk[..10]);
    assert!(!p.touches(25, 30));
    assert!(p.touches(20, 30), "touching counts");
    p.insert(20, &chunk[..0]);
    assert_eq!(p.ranges.len(), 2, "an empty chunk adds nothing");
    p.insert(70, &chunk[..5]);
    p.insert(15, &chunk[..40]); // joins [10, 20) and [50, 60)
    assert_eq!(
        p.ranges.iter().map(|(s, e)| (*s, *e)).collect::<Vec<_>>(),
        vec![(10, 60), (70, 75)]
    );
    assert!(!p.complete());
    p.insert(0, &chunk[..100]);
    assert!(p.complete());
}

#[test]
fn identified_transfers_carry_the_transfer_block_in_every_message() {
    let cfg = SegmentConfig::default();
    let now = Instant::now();
    // One message: TRANSFER block index 0, LAST, with the id, then the
    // context; it reassembles as a one-message transfer of that id.
    let small = vec![ctx(0xFF01, 100, 1)];
    let one = encode_identified_transfer(&cfg, &hdr(), &small, 0x8000_0007).unwrap();
    assert_eq!(one.len(), 1);
    let v = view(&one[0]);
    let first = v.block_refs().next().unwrap();
    assert_eq!(first.fpt, cfg.fpt);
    assert_eq!(
        parse_block_ref(first.data).unwrap(),
        SegmentBlockRef::Transfer(TransferBlock {
            transfer_id: 0x8000_0007,
            index: 0,
            last: true,
        })
    );
    assert_eq!(
        one[0].len(),
        encode_transfer(&cfg, &hdr(), &small, 1).unwrap()[0].len() + 16
    );
    let t = run(&mut Reassembler::new(cfg.clone()), now, &one).unwrap();
    assert_eq!(t.transfer_id, 0x8000_0007);
    assert_eq!(t.contexts, small.iter().map(padded).collect::<Vec<_>>());
    // A transfer that fills a message exactly without the block takes two
    // with it, each within the limit.
    // (IPv6: 24 octets before the blocks; 32 blocks of 2,040 and one of
    // 224 make 65,528 of 65,535.)
    let mut fill: Vec<Context> = (0..32).map(|k| ctx(0xFF01, 2032, k)).collect();
    fill.push(ctx(0xFF01, 220, 99));
    assert_eq!(
        HEADER_LEN + 4 + 16 + fill.iter().map(plain_len).sum::<usize>(),
        65_528
    );
    let plain = encode_transfer(&cfg, &hdr(), &fill, 1).unwrap();
    let ident = encode_identified_transfer(&cfg, &hdr(), &fill, 9).unwrap();
    assert_eq!(plain.len(), 1);
    assert_eq!(ident.len(), 2);
    assert!(ident.iter().all(|m| m.len() <= MAX_MESSAGE_LEN));
    let t = run(&mut Reassembler::new(cfg.clone()), now, &ident).unwrap();
    assert_eq!(
        sorted(t.contexts),
        sorted(fill.iter().map(padded).collect())
    );
    // Several messages: the same octets as a plain transfer of that id.
    let big = vec![ctx(0xFF02, 200_000, 3)];
    assert_eq!(
        encode_identified_transfer(&cfg, &hdr(), &big, 5).unwrap(),
        encode_transfer(&cfg, &hdr(), &big, 5).unwrap()
    );
}
