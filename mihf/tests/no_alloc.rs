//! Decoding the header and the N2N handover messages performs no heap
//! allocation: a counting global allocator proves it.
//!
//! The frame buffers are shared `Bytes` (static here; in the daemon they come
//! from `BytesMut::split().freeze()`, which is shared too), so slicing them
//! only bumps a reference count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::{Bytes, BytesMut};
use mihf::wire::*;

struct Counting;

thread_local! {
    // Per thread, so the harness's other threads do not count.
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

fn bump() {
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump();
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by `f` on this thread.
fn allocations<R>(f: impl FnOnce() -> R) -> (usize, R) {
    let before = ALLOCS.with(Cell::get);
    let r = std::hint::black_box(f());
    let n = ALLOCS.with(Cell::get) - before;
    (n, r)
}

const F1: &[u8] = &[
    0x18, 0x00, 0x34, 0x09, 0x01, 0x23, 0x00, 0x56, 0x01, 0x0d, 0x0c, b'm', b'i', b'h', b'f', b'-',
    b's', b'e', b'r', b'v', b'i', b'n', b'g', 0x02, 0x0c, 0x0b, b'm', b'i', b'h', b'f', b'-', b't',
    b'a', b'r', b'g', b'e', b't', 0x34, 0x08, 0x07, b'm', b'n', b'-', b'm', b'i', b'h', b'f', 0x3b,
    0x0b, 0x13, 0x00, 0x00, 0x06, 0x06, 0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x01, 0x3c, 0x0a, 0x00, 0x00,
    0x06, 0x06, 0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x02, 0x3f, 0x14, 0x01, 0x01, 0x00, 0x00, 0x14, 0x01,
    0x00, 0x00, 0x0a, 0x01, 0x00, 0x00, 0x32, 0x01, 0x00, 0x00, 0x05, 0x00, 0x00, 0x02,
];

fn frames() -> Vec<(&'static str, Bytes)> {
    let vectors = [
        ("n2n_ho_commit.request", F1.to_vec()),
        (
            "n2n_ho_commit.response",
            hex::decode("100038090123004e010c0b6d6968662d746172676574020d0c6d6968662d73657276696e670301003408076d6e2d6d696866 0d0c130000060602aabbccdd0100 391401010000140100000a01000032010000050001 05".replace(' ', "")).unwrap(),
        ),
        (
            "n2n_ho_commit.ack",
            hex::decode("140034090123001d010c0b6d6968662d746172676574020d0c6d6968662d73657276696e67").unwrap(),
        ),
        (
            "n2n_ho_query_resources.request",
            hex::decode(include_str!("../../conformance/vectors/mih/n2n_ho_query_resources.request.json").split("\"hex\": \"").nth(1).unwrap().split('"').next().unwrap()).unwrap(),
        ),
        (
            "n2n_ho_query_resources.response",
            hex::decode(include_str!("../../conformance/vectors/mih/n2n_ho_query_resources.response.json").split("\"hex\": \"").nth(1).unwrap().split('"').next().unwrap()).unwrap(),
        ),
        (
            "n2n_ho_complete.request",
            hex::decode(include_str!("../../conformance/vectors/mih/n2n_ho_complete.request.json").split("\"hex\": \"").nth(1).unwrap().split('"').next().unwrap()).unwrap(),
        ),
        (
            "n2n_ho_complete.response",
            hex::decode(include_str!("../../conformance/vectors/mih/n2n_ho_complete.response.json").split("\"hex\": \"").nth(1).unwrap().split('"').next().unwrap()).unwrap(),
        ),
    ];
    vectors
        .into_iter()
        .map(|(n, v)| {
            // Shared buffer: the first clone promotes it, outside the measurement.
            let b = Bytes::from(v);
            let _ = b.clone();
            (n, b)
        })
        .collect()
}

#[test]
fn the_counter_counts() {
    let (n, v) = allocations(|| Vec::<u8>::with_capacity(16));
    assert_eq!(n, 1);
    drop(v);
    let (n, _) = allocations(|| Bytes::from(vec![1u8, 2, 3]).slice(1..));
    assert!(n >= 2, "promoting a Vec-backed Bytes allocates");
}

#[test]
fn header_and_frame_views_do_not_allocate() {
    let b = Bytes::from_static(F1);
    let (n, h) = allocations(|| Header::parse(&b).unwrap());
    assert_eq!(n, 0);
    assert_eq!(h.tid, 0x123);
    let (n, frame) = allocations(|| Frame::parse(b.clone()).unwrap());
    assert_eq!(n, 0, "Frame::parse allocated");
    let (n, count) = allocations(|| frame.tlvs().count());
    assert_eq!(n, 0);
    assert_eq!(count, 6);
}

#[test]
fn n2n_messages_decode_without_allocating() {
    for (name, bytes) in frames() {
        let (n, msg) = allocations(|| {
            let frame = Frame::parse(bytes.clone()).unwrap();
            Message::decode(&frame).unwrap()
        });
        assert_eq!(n, 0, "{name}: decode allocated {n} times");
        assert!(msg.extra.is_empty(), "{name}");
        assert!(msg.name().starts_with("MIH_N2N_HO_"), "{name}");
        // Dropping the message frees nothing it did not allocate.
        let (n, ()) = allocations(|| drop(msg));
        assert_eq!(n, 0);
    }
}

#[test]
fn receive_buffers_from_bytesmut_are_shared() {
    // What a UDP receive loop does: read into a BytesMut, split the datagram off.
    let mut rx = BytesMut::with_capacity(4096);
    rx.extend_from_slice(F1);
    let datagram = rx.split().freeze();
    let (n, msg) = allocations(|| Message::decode(&Frame::parse(datagram.clone()).unwrap()));
    assert_eq!(n, 0, "decode of a split receive buffer allocated");
    assert!(msg.is_ok());
}

#[test]
fn unknown_tlvs_cost_a_bounded_number_of_allocations() {
    // 2,000 empty vendor TLVs after the IDs of an N2N_HO_Commit.response.
    let mut payload = hex::decode(
        "010c0b6d6968662d746172676574020d0c6d6968662d73657276696e670301003408076d6e2d6d696866",
    )
    .unwrap();
    payload.extend(std::iter::repeat_n([100u8, 0], 2000).flatten());
    let mut frame = Header::new(Mid(0x3809), 1).to_bytes().to_vec();
    frame[6..8].copy_from_slice(&(payload.len() as u16).to_be_bytes());
    frame.extend_from_slice(&payload);
    let b = Bytes::from(frame);
    let _ = b.clone();
    let (n, msg) = allocations(|| Message::decode(&Frame::parse(b.clone()).unwrap()).unwrap());
    assert_eq!(msg.extra.len(), 1, "one run of unknown TLVs");
    assert_eq!(msg.extra[0].count(), 2000);
    assert!(n <= 1, "{n} allocations for 2,000 unknown TLVs");
    assert_eq!(msg.to_bytes().unwrap(), b);
}
