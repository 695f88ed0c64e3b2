//! Fuzz every CXTP decoder: the message codec (all seven messages), the
//! borrowing and owning block iterators, the segmentation block parser and
//! the built-in feature profiles. Whatever decodes must re-emit and decode
//! to the same owned form. Seeds: `fuzz/corpus/cxtp_decode/` (the golden
//! vectors of `conformance/vectors/cxtp/`).
#![no_main]

use bytes::Bytes;
use cxtp::profile::{Context, ProfileRegistry};
use cxtp::segment::{parse_block, parse_block_ref};
use cxtp::wire::{Header, MessageView};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Header::parse(data);
    let buf = Bytes::copy_from_slice(data);
    let Ok(msg) = MessageView::parse(buf) else {
        return;
    };
    let registry = ProfileRegistry::with_builtins();
    match &msg {
        MessageView::Ctar(c) => {
            let _ = c.requests().count();
        }
        MessageView::CtReq(c) => {
            let _ = c.requests().count();
        }
        MessageView::Ctaa(c) => {
            let _ = c.entries().count();
        }
        MessageView::Ctdr(c) => {
            let _ = c.entries().count();
        }
        MessageView::Ctd(c) => {
            assert_eq!(c.blocks().count(), c.block_count());
            assert_eq!(c.block_refs().count(), c.block_count());
            for (b, r) in c.blocks().zip(c.block_refs()) {
                assert_eq!(b.data, r.data_bytes());
                let _ = parse_block(&b);
                let _ = parse_block_ref(r.data);
                let _ = registry.decode(&Context {
                    fpt: b.fpt,
                    presence_vector: b.presence_vector,
                    data: b.data.clone(),
                });
                // Every built-in profile decoder on every block.
                for fpt in [1u16, 0xFF01, 0xFF02] {
                    let _ = registry.decode(&Context::new(fpt, b.data.clone()));
                }
            }
        }
        MessageView::Ctc(_) => {}
    }
    let repr = msg.to_repr();
    let bytes = repr.to_bytes().expect("a decoded message re-emits");
    assert_eq!(bytes.len(), repr.buffer_len());
    let again = MessageView::parse(bytes).expect("re-emitted message decodes");
    assert_eq!(again.to_repr(), repr);
});
