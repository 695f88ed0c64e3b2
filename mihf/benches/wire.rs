//! MIH codec benchmarks: decode and encode of MIH_N2N_HO_Commit.request,
//! .response and MIH_Capability_Discover.request, each next to a floor
//! measured in the same run: reading every byte of the same frame once.
//!
//! `cargo bench -p mihf --bench wire` prints criterion's figures and, at the
//! end, a table of each median divided by its frame's floor.

use std::hint::black_box;
use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput};
use mihf::wire::{Frame, Message};

fn vector(name: &str) -> Bytes {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../conformance/vectors/mih")
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(path).unwrap();
    let hex_text = text
        .split("\"hex\": \"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let b = Bytes::from(hex::decode(hex_text).unwrap());
    let _shared = b.clone(); // promote once, as a receive buffer already is
    b
}

const FRAMES: &[&str] = &[
    "n2n_ho_commit.request",
    "n2n_ho_commit.response",
    "capability_discover.request",
];

/// The floor: every byte of the frame read once (the compiler vectorizes it).
fn read_every_byte(b: &[u8]) -> u8 {
    b.iter().fold(0u8, |acc, &x| acc ^ x)
}

/// The same, one byte at a time (each load is opaque to the optimizer).
fn read_every_byte_scalar(b: &[u8]) -> u8 {
    b.iter().fold(0u8, |acc, x| acc ^ black_box(*x))
}

fn benches(c: &mut Criterion) {
    for name in FRAMES {
        let bytes = vector(name);
        let msg = Message::from_bytes(bytes.clone()).unwrap();
        let mut g = c.benchmark_group(*name);
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function("floor_read_bytes", |b| {
            b.iter(|| read_every_byte(black_box(&bytes[..])))
        });
        g.bench_function("floor_read_bytes_scalar", |b| {
            b.iter(|| read_every_byte_scalar(black_box(&bytes[..])))
        });
        g.bench_function("decode", |b| {
            b.iter(|| {
                let frame = Frame::parse(black_box(&bytes).clone()).unwrap();
                Message::decode(&frame).unwrap()
            })
        });
        let mut out = BytesMut::with_capacity(256);
        g.bench_function("encode", |b| {
            b.iter(|| {
                out.clear();
                black_box(&msg).emit(&mut out).unwrap();
                black_box(out.len())
            })
        });
        g.finish();
    }
}

/// Median point estimate from criterion's `estimates.json` of this run.
fn median_ns(group: &str, function: &str) -> Option<f64> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/criterion")
        .join(group)
        .join(function)
        .join("new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let after = text.split("\"median\"").nth(1)?;
    let pe = after.split("\"point_estimate\":").nth(1)?;
    let num: String = pe
        .chars()
        .skip_while(|c| c.is_whitespace())
        .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | '-' | '+'))
        .collect();
    num.parse().ok()
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c);
    c.final_summary();
    if !std::env::args().any(|a| a == "--bench") {
        return; // `cargo test` runs each benchmark once: no figures to report
    }
    println!("\nmedian ns; ratios to the floor (every byte read once, vectorized) and, in brackets, to the scalar floor");
    println!(
        "| {:<28} | {:>6} | {:>7} | {:>7} | {:>22} | {:>22} |",
        "frame", "octets", "floor", "scalar", "decode", "encode"
    );
    for name in FRAMES {
        let len = vector(name).len();
        let (Some(f), Some(fs), Some(d), Some(e)) = (
            median_ns(name, "floor_read_bytes"),
            median_ns(name, "floor_read_bytes_scalar"),
            median_ns(name, "decode"),
            median_ns(name, "encode"),
        ) else {
            continue;
        };
        println!(
            "| {:<28} | {:>6} | {:>7.1} | {:>7.1} | {:>6.0} ({:>5.1}x [{:>4.1}x]) | {:>6.0} ({:>5.1}x [{:>4.1}x]) |",
            name,
            len,
            f,
            fs,
            d,
            d / f,
            d / fs,
            e,
            e / f,
            e / fs
        );
    }
}
