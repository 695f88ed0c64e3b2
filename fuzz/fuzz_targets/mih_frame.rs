#![no_main]
//! The MIH header and TLV walk: Header::parse, Frame::parse, the borrowing
//! TLV iterator and the length rule, plus cutting frames from a TCP stream.
use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use mihf::wire::{decode_length, Frame, Header};

fuzz_target!(|data: &[u8]| {
    let _ = std::hint::black_box(Header::parse(data));
    let _ = std::hint::black_box(decode_length(data));
    if let Ok(frame) = Frame::parse(Bytes::copy_from_slice(data)) {
        let h = frame.header();
        assert_eq!(usize::from(h.payload_len), frame.payload().len());
        let mut seen = 0usize;
        for tlv in frame.tlvs() {
            assert_eq!(tlv.offset, seen);
            seen += tlv.raw.len();
        }
        if !h.is_fragment() {
            assert_eq!(
                seen,
                frame.payload().len(),
                "validated walk must cover the payload"
            );
        }
    }
    // The same bytes as a stream: cut frames until the buffer runs dry.
    let mut stream = BytesMut::from(data);
    while let Ok(Some(f)) = Frame::split_from(&mut stream) {
        std::hint::black_box(f);
    }
});
