//! Fuzz the Service Mobility API protocol (`mih_user::api::wire`) and the
//! sans-IO server core (`mih_user::api::registry`).
//!
//! 1. The input as one frame body: whatever decodes must re-encode to the
//!    same octets (the encoding is canonical).
//! 2. The input as a byte stream, fed in pieces whose sizes come from the
//!    input, with a frame limit from the first octet: every frame taken off
//!    the stream re-encodes to the octets it was taken from.
//! 3. The decoded frames drive a `Registry` from three client connections
//!    (chosen by request ID); server-to-client messages in the stream are
//!    turned into orchestrator calls (export, import, outcome, cancel,
//!    disconnect). Invariants: every frame the registry sends encodes and
//!    fits the receiver's limit, every operation finishes once, and after
//!    `shutdown` nothing is left.
//!
//! Seeds: none are shipped (`seed_corpus.sh` gives `mih_user_*` targets
//! none); the format is small and libFuzzer finds the frames by itself.
#![no_main]

use std::collections::{HashMap, HashSet};

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use mih_user::api::registry::{ConnId, Limits, OpId, Output, Registry};
use mih_user::api::wire::{self, Message, Outcome};
use mih_user::api::ServiceContext;

/// Take and check every output the registry queued.
fn check_outputs(
    reg: &mut Registry,
    max_frames: &HashMap<ConnId, u32>,
    open_ops: &mut HashSet<OpId>,
) {
    while let Some(o) = reg.poll_output() {
        match o {
            Output::Send { conn, frame } => {
                let mut b = BytesMut::new();
                wire::encode(&frame, &mut b).expect("the registry sends encodable frames");
                let len = (b.len() - wire::LENGTH_PREFIX_LEN) as u32;
                let limit = match &frame.message {
                    // Before Hello the client's limit is unknown; answers are small.
                    Message::HelloAck(_) | Message::Error(_) | Message::Ok => wire::MIN_MAX_FRAME,
                    _ => *max_frames.get(&conn).unwrap_or(&wire::MIN_MAX_FRAME),
                };
                assert!(len <= limit.max(wire::MIN_MAX_FRAME), "{len} > {limit}");
                let back = wire::decode_frame(&mut b, u32::MAX).unwrap().unwrap();
                assert_eq!(back, frame);
            }
            Output::Close { .. } => {}
            Output::Complete { op, .. } => {
                assert!(open_ops.remove(&op), "operation {op} finished twice");
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // 1. One frame body.
    if let Ok(f) = wire::decode_payload(Bytes::copy_from_slice(data)) {
        let mut b = BytesMut::new();
        wire::encode(&f, &mut b).expect("decoded frames encode");
        assert_eq!(&b[wire::LENGTH_PREFIX_LEN..], data);
    }

    // 2. A stream.
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let max_frame = if first & 1 == 0 { 64 } else { 1 << 20 };
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut pos = 0;
    let mut step = usize::from(first >> 1).max(1);
    'stream: while pos < rest.len() {
        let end = (pos + step).min(rest.len());
        buf.extend_from_slice(&rest[pos..end]);
        pos = end;
        step = step % 13 + 1;
        loop {
            let before = buf.clone();
            match wire::decode_frame(&mut buf, max_frame) {
                Ok(Some(f)) => {
                    let used = before.len() - buf.len();
                    let mut again = BytesMut::new();
                    wire::encode(&f, &mut again).unwrap();
                    assert_eq!(&again[..], &before[..used]);
                    assert!(used - wire::LENGTH_PREFIX_LEN <= max_frame as usize);
                    frames.push(f);
                }
                Ok(None) => {
                    assert_eq!(buf, before);
                    break;
                }
                Err(_) => break 'stream,
            }
        }
    }

    // 3. The registry.
    let mut reg = Registry::new(
        Limits {
            max_services: 4,
            max_users: 8,
            max_connections_per_user: 3,
            max_frame: 1 << 20,
        },
        "fuzz",
    );
    let conns: Vec<ConnId> = (0..3).map(|_| reg.connect()).collect();
    let mut max_frames: HashMap<ConnId, u32> = HashMap::new();
    let mut open_ops = HashSet::new();
    let mut last_op = None;
    for f in frames {
        let conn = conns[(f.request_id % 3) as usize];
        match &f.message {
            m if m.is_client_message() => {
                if let Message::Hello(h) = m {
                    if reg.is_connected(conn) && !max_frames.contains_key(&conn) {
                        max_frames.insert(conn, h.max_frame);
                    }
                }
                reg.on_frame(conn, f);
            }
            Message::ExportRequested(e) => {
                if let Ok(op) = reg.start_export(e.ue, e.timeout_ms) {
                    open_ops.insert(op);
                    last_op = Some(op);
                }
            }
            Message::ImportRequested(i) => {
                let ctx = ServiceContext::new(i.service_id.clone(), i.fpt, i.data.clone());
                if let Ok(op) = reg.start_import(i.ue, vec![ctx.clone(), ctx]) {
                    open_ops.insert(op);
                    last_op = Some(op);
                }
            }
            Message::MigrationOutcome(o) => {
                let _ = reg.notify_outcome(o.ue, o.outcome, &o.cause);
                let _ = Outcome::Committed;
            }
            Message::Error(_) => {
                if let Some(op) = last_op {
                    reg.cancel(op);
                }
            }
            Message::HelloAck(_) => reg.disconnect(conn),
            _ => {}
        }
        // Ops started before the operation's own outputs are checked.
        check_outputs(&mut reg, &max_frames, &mut open_ops);
        assert!(reg.registration_count() <= 8);
        assert!(reg.services().len() <= 4);
    }
    reg.shutdown();
    check_outputs(&mut reg, &max_frames, &mut open_ops);
    assert!(
        open_ops.is_empty(),
        "operations never finished: {open_ops:?}"
    );
    assert_eq!(reg.pending_ops(), 0);
    assert_eq!(reg.pending_events(), 0);
    assert_eq!(reg.connection_count(), 0);
    assert_eq!(reg.user_count(), 0);
});
