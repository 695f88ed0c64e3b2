#![no_main]
//! Typed messages of the MIH event service (SID 2): the input is a frame whose
//! SID is forced to 2, so every input reaches that family's body decoders.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let frame = edge_mobility_fuzz::mih::with_sid(data, 2);
    edge_mobility_fuzz::mih::decode_and_round_trip(&frame);
});
