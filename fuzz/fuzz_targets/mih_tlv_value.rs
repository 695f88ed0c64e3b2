#![no_main]
//! Every typed TLV value on its own: the first octet picks the TLV type, the
//! rest is the value. Whatever decodes must re-encode to a value that decodes
//! to the same thing.
use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use mihf::wire::TlvValue;

fuzz_target!(|data: &[u8]| {
    let Some((&ty, value)) = data.split_first() else {
        return;
    };
    let base = Bytes::copy_from_slice(value);
    if let Ok(Some(v)) = TlvValue::decode(ty, &base, &base) {
        let mut out = BytesMut::new();
        v.emit(&mut out);
        // out = type, length, value: decode the value part again.
        let frame = out.freeze();
        let mut it = mihf::wire::TlvIter::new(&frame);
        let tlv = it.next().expect("one TLV");
        let again = TlvValue::decode(ty, &frame, tlv.value).expect("re-encoded value decodes");
        assert_eq!(again, Some(v));
    }
});
