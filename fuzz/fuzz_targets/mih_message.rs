#![no_main]
//! Whole MIH messages: typed decode of any frame, TLV values, and the
//! decode → emit → decode round trip.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    edge_mobility_fuzz::mih::decode_and_round_trip(data);
});
