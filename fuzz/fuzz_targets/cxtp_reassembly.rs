//! Fuzz segment reassembly with structured input: the fuzzer chooses the
//! contexts (sizes, FPTs), the message size limit, the reassembly caps, and
//! a schedule of deliveries (order, duplicates, drops, corrupted octets,
//! time steps). Checks: no panic; after every delivery, what the reassembler
//! holds is within `max_buffered` (and 0 when no transfer is in progress); a
//! clean schedule (every message delivered intact, nothing dropped, no
//! timeout) completes the transfer, delivers only input contexts, fails only
//! with REASSEMBLY_FAILED, delivers every context when it reports no
//! failure, and reports none when the transfer fits the caps.
#![no_main]

use std::time::{Duration, Instant};

use bytes::Bytes;
use cxtp::profile::{status, Context};
use cxtp::segment::{encode_transfer, CtdHeader, Reassembler, Received, SegmentConfig};
use cxtp::wire::MessageView;
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
    let mn = if inp.u8() & 1 == 0 {
        "192.0.2.1"
    } else {
        "2001:db8::1"
    };
    let header = CtdHeader {
        ack: true,
        elapsed_ms: 0,
        mn_addr: mn.parse().unwrap(),
        key_block: None,
    };
    let Ok(msgs) = encode_transfer(&cfg, &header, &contexts, inp.u16() as u32) else {
        return;
    };
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
        if !r.handle_timeout(now).is_empty() && completed.is_none() {
            clean = false;
        }
        if let Ok(MessageView::Ctd(ctd)) = MessageView::parse(Bytes::from(m)) {
            delivered[idx] = true;
            if let Received::Complete(t) = r.receive(now, &ctd) {
                completed.get_or_insert(t);
            }
        }
        assert!(
            r.buffered() <= cfg.max_buffered,
            "buffered {} over the cap {}",
            r.buffered(),
            cfg.max_buffered
        );
        assert!(
            r.in_progress() > 0 || r.buffered() == 0,
            "buffered {} with no transfer",
            r.buffered()
        );
    }
    // What a clean schedule delivers: contexts that fit one CDB (and do not
    // use the segmentation FPT) come back as their CDB carries them, padded.
    let expected: Vec<Context> = contexts
        .iter()
        .map(|c| {
            let cdb_len = (4 + c.data.len() + 7) & !7;
            if cdb_len <= 2040 && c.fpt != cfg.fpt {
                let mut d = c.data.to_vec();
                d.resize(cdb_len - 4, 0);
                Context::new(c.fpt, Bytes::from(d))
            } else {
                c.clone()
            }
        })
        .collect();
    let each_fits = expected.iter().all(|c| c.data.len() <= cfg.max_context_len);
    // A generous bound on what the transfer is charged: its data, plus
    // bookkeeping per context (entries, received ranges) and message indices.
    let charge_bound = expected.iter().map(|c| c.data.len()).sum::<usize>()
        + contexts.len() * (256 + 32 * msgs.len())
        + 8 * (msgs.len() / 64 + 1);
    if clean && delivered.iter().all(|d| *d) {
        let t = completed.expect("a clean schedule completes the transfer");
        assert!(
            t.failures.iter().all(|f| f.1 == status::REASSEMBLY_FAILED),
            "{:?}",
            t.failures
        );
        let mut left = expected.clone();
        for c in &t.contexts {
            assert!(
                c.data.len() <= cfg.max_context_len,
                "delivered a context over max_context_len"
            );
            let at = left
                .iter()
                .position(|e| e == c)
                .expect("delivered a context that was not sent");
            left.swap_remove(at);
        }
        if t.failures.is_empty() {
            assert!(
                left.is_empty(),
                "{} contexts missing and no failure reported",
                left.len()
            );
        }
        if each_fits && charge_bound <= cfg.max_buffered {
            assert!(
                t.failures.is_empty(),
                "fits the caps but failed: {:?}",
                t.failures
            );
        }
    }
});
