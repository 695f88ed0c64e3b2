//! CTD encode/decode cost for large contexts, next to a memcpy floor of the
//! same number of octets measured in the same run.
//!
//! `cargo bench -p cxtp --bench ctd`

use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use cxtp::profile::Context;
use cxtp::segment::{
    encode_transfer, parse_block_ref, CtdHeader, Reassembler, Received, SegmentBlockRef,
    SegmentConfig,
};
use cxtp::wire::MessageView;

const SIZES: [(&str, usize); 2] = [("75KB", 75 * 1024), ("1MB", 1 << 20)];

fn header() -> CtdHeader {
    CtdHeader {
        ack: true,
        elapsed_ms: 0,
        mn_addr: "2001:db8::1".parse().unwrap(),
        key_block: None,
    }
}

fn context(size: usize) -> Context {
    Context::new(
        0xFF02,
        Bytes::from((0..size).map(|i| i as u8).collect::<Vec<u8>>()),
    )
}

/// Decode every message of the transfer (all lengths validated) and walk
/// every block and segment view: what a receiver does before reassembly.
fn decode_all(msgs: &[Bytes]) -> usize {
    let mut n = 0;
    for m in msgs {
        let Ok(MessageView::Ctd(ctd)) = MessageView::parse(m.clone()) else {
            panic!("not a CTD")
        };
        for b in ctd.block_refs() {
            match parse_block_ref(b.data) {
                Ok(SegmentBlockRef::Segment(s)) => n += s.chunk.len(),
                Ok(SegmentBlockRef::Transfer(_)) => {}
                Err(_) => n += b.data.len(),
            }
        }
    }
    n
}

/// Only `MessageView::parse` of every message (validation, views).
fn parse_all(msgs: &[Bytes]) -> usize {
    msgs.iter()
        .map(|m| match MessageView::parse(m.clone()) {
            Ok(MessageView::Ctd(ctd)) => ctd.block_count(),
            _ => panic!("not a CTD"),
        })
        .sum()
}

fn benches(c: &mut Criterion) {
    let cfg = SegmentConfig::default();
    let mut g = c.benchmark_group("ctd");
    for (name, size) in SIZES {
        let ctx = context(size);
        let msgs = encode_transfer(&cfg, &header(), std::slice::from_ref(&ctx), 1).unwrap();
        assert_eq!(decode_all(&msgs), size);
        g.throughput(Throughput::Bytes(size as u64));
        let src = ctx.data.to_vec();
        let mut dst = vec![0u8; size];
        g.bench_function(BenchmarkId::new("memcpy", name), |b| {
            b.iter(|| {
                dst.copy_from_slice(black_box(&src));
                black_box(&dst);
            })
        });
        g.bench_function(BenchmarkId::new("encode", name), |b| {
            b.iter(|| {
                black_box(
                    encode_transfer(&cfg, &header(), black_box(std::slice::from_ref(&ctx)), 1)
                        .unwrap(),
                )
            })
        });
        g.bench_function(BenchmarkId::new("parse", name), |b| {
            b.iter(|| black_box(parse_all(black_box(&msgs))))
        });
        g.bench_function(BenchmarkId::new("decode", name), |b| {
            b.iter(|| black_box(decode_all(black_box(&msgs))))
        });
        g.bench_function(BenchmarkId::new("reassemble", name), |b| {
            let now = Instant::now();
            b.iter(|| {
                let mut r = Reassembler::new(cfg.clone());
                let mut out = None;
                for m in &msgs {
                    let Ok(MessageView::Ctd(ctd)) = MessageView::parse(m.clone()) else {
                        unreachable!()
                    };
                    if let Received::Complete(t) = r.receive(now, &ctd) {
                        out = Some(t);
                    }
                }
                black_box(out.unwrap())
            })
        });
    }
    g.finish();
}

criterion_group!(ctd, benches);
criterion_main!(ctd);
