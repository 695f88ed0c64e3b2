//! Helpers shared by the fuzz targets in `fuzz_targets/`.

/// MIH helpers shared by the `mih_*` targets.
pub mod mih {
    use bytes::{Bytes, BytesMut};
    use mihf::wire::{Frame, Message, TlvValue};

    /// Decode a whole frame; whatever decodes must re-emit to a frame that
    /// decodes to the same message (parse and emit stay symmetric).
    pub fn decode_and_round_trip(data: &[u8]) {
        let Ok(frame) = Frame::parse(Bytes::copy_from_slice(data)) else {
            return;
        };
        for tlv in frame.tlvs() {
            // Every TLV value on its own, as the JSON view decodes it.
            if let Ok(Some(v)) = TlvValue::decode(tlv.ty, frame.as_bytes(), tlv.value) {
                let mut out = BytesMut::new();
                v.emit(&mut out);
                std::hint::black_box(out);
            }
        }
        let Ok(msg) = Message::decode(&frame) else {
            return;
        };
        let bytes = msg.to_bytes().expect("a decoded message fits in a frame");
        let again = Message::from_bytes(bytes.clone()).expect("re-emitted frame decodes");
        let mut expected = msg.clone();
        expected.header.payload_len = again.header.payload_len;
        assert_eq!(again, expected, "decode(emit(m)) != m");
        assert_eq!(again.to_bytes().unwrap(), bytes, "emit is not stable");
    }

    /// Force the service identifier (and fix Payload Length) so that a
    /// target concentrates on one message family.
    pub fn with_sid(data: &[u8], sid: u8) -> Vec<u8> {
        let mut v = data.to_vec();
        if v.len() >= 8 {
            v[2] = (v[2] & 0x0f) | (sid << 4);
            let len = (v.len() - 8).min(usize::from(u16::MAX)) as u16;
            v[6..8].copy_from_slice(&len.to_be_bytes());
            v.truncate(8 + usize::from(len));
        }
        v
    }
}
