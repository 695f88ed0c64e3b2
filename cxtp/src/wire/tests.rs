//! Codec unit and property tests.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::*;
use crate::token::AuthKey;

fn v4(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
}
fn v6(last: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last))
}

fn parse_hex(h: &str) -> Result<MessageView, DecodeError> {
    MessageView::parse(Bytes::from(hex::decode(h.replace(' ', "")).unwrap()))
}

#[test]
fn header_errors_are_typed() {
    assert_eq!(
        parse_hex("41800008c0000201"),
        Err(DecodeError::BadVersion { version: 2 })
    );
    assert_eq!(
        parse_hex("20800008c0000201"),
        Err(DecodeError::UnknownType { code: 0 })
    );
    assert_eq!(
        parse_hex("28800008c0000201"),
        Err(DecodeError::UnknownType { code: 8 })
    );
    assert!(matches!(
        parse_hex("2680"),
        Err(DecodeError::Truncated {
            field: "Length",
            ..
        })
    ));
    assert_eq!(
        parse_hex("26800009c0000201"),
        Err(DecodeError::LengthMismatch {
            message: "CTC",
            header: 9,
            actual: 8
        })
    );
}

#[test]
fn mixed_address_width_is_reported() {
    // CTC with V=1 (IPv4) but a 16-octet address.
    let e = parse_hex("26800014 20010db8000000000000000000000001").unwrap_err();
    assert!(
        matches!(
            e,
            DecodeError::MixedAddressWidth {
                flagged: AddressFamily::Ipv4,
                ..
            }
        ),
        "{e}"
    );
    // CTC with V=0 (IPv6) but a 4-octet address.
    let e = parse_hex("26000008 c0000201").unwrap_err();
    assert!(
        matches!(
            e,
            DecodeError::MixedAddressWidth {
                flagged: AddressFamily::Ipv6,
                ..
            }
        ),
        "{e}"
    );
    // Emitting a CTAR with an IPv4 MN and an IPv6 AR fails.
    let r = MessageRepr::Ctar(CtarRepr {
        ack: false,
        mn_addr: v4(1),
        ar_addr: v6(1),
        seq: 1,
        token: Token::ZERO,
        requests: vec![],
    });
    assert!(matches!(
        r.to_bytes(),
        Err(EmitError::MixedAddressFamilies {
            field: "AR address",
            ..
        })
    ));
}

#[test]
fn truncated_blocks_are_typed() {
    // CTD, IPv4, one CDB claiming 2 units (16 octets) with only 8 present.
    let e = parse_hex("23800014 00000000 c0000201 0001 02 00 00000000").unwrap_err();
    assert!(
        matches!(
            e,
            DecodeError::CdbOverrun {
                index: 0,
                fpt: 1,
                needed: 16,
                available: 8,
                ..
            }
        ),
        "{e}"
    );
    // CDB with Length 0 in a CTD.
    let e = parse_hex("23800010 00000000 c0000201 0001 00 00").unwrap_err();
    assert!(matches!(e, DecodeError::CdbLength { length: 0, .. }), "{e}");
    // CDB with P set and Length 1 (needs 8 for header + PV, which is fine) ...
    assert!(parse_hex("23800014 00000000 c0000201 0001 01 80 00000001").is_ok());
    // ... but truncated presence vector.
    let e = parse_hex("23800012 00000000 c0000201 0001 01 80 0000").unwrap_err();
    assert!(
        matches!(
            e,
            DecodeError::Truncated {
                field: "context data block presence vector",
                ..
            }
        ),
        "{e}"
    );
    // PCTD whose Key Length runs past the end.
    let e = parse_hex("24800014 00000000 c0000201 0001 0010 0b0b0b0b").unwrap_err();
    assert!(
        matches!(
            e,
            DecodeError::Truncated {
                message: "PCTD",
                field: "Key",
                needed: 16,
                available: 4
            }
        ),
        "{e}"
    );
    // CTDR with a partial entry.
    let e = parse_hex("2580000a c0000201 0001").unwrap_err();
    assert!(
        matches!(
            e,
            DecodeError::PartialEntry {
                message: "CTDR",
                remainder: 2,
                ..
            }
        ),
        "{e}"
    );
    // CT-Req request block with Length 2 but only 4 octets.
    let e = parse_hex("27800014 c0000201 12345678 00000000 0001 02 00").unwrap_err();
    assert!(
        matches!(
            e,
            DecodeError::Truncated {
                field: "request block padding",
                ..
            }
        ),
        "{e}"
    );
    // CTAR missing its token.
    let e = parse_hex("21800010 c0000201 c00002fe 12345678").unwrap_err();
    assert!(
        matches!(
            e,
            DecodeError::Truncated {
                message: "CTAR",
                field: "Authorization Token",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn request_blocks_decode_both_conventions() {
    let raw = "2780001c c0000201 12345678 00000000 0001 00 00 0002 01 00 00000000";
    let m = parse_hex(raw).unwrap();
    let MessageView::CtReq(r) = &m else { panic!() };
    let reqs: Vec<_> = r.requests().collect();
    assert_eq!(
        reqs,
        vec![
            RequestBlock::new(1),
            RequestBlock {
                fpt: 2,
                length: 1,
                presence_vector: None
            }
        ]
    );
    assert_eq!(
        m.to_repr().to_bytes().unwrap(),
        hex::decode(raw.replace(' ', "")).unwrap()
    );
    // A presence vector in a request block.
    let m = parse_hex("27800018 c0000201 12345678 00000000 0001 00 80 c0000000").unwrap();
    let MessageView::CtReq(r) = &m else { panic!() };
    assert_eq!(
        r.requests().next().unwrap().presence_vector,
        Some(0xc000_0000)
    );
}

#[test]
fn ctd_blocks_are_slices_of_the_input() {
    let data = Bytes::from(vec![0x5a; 2000]);
    let repr = MessageRepr::Ctd(CtdRepr {
        ack: true,
        elapsed_ms: 7,
        mn_addr: v6(1),
        key_block: None,
        blocks: vec![ContextDataBlockRepr::new(0xff00, data.clone()); 3],
    });
    let wire = repr.to_bytes().unwrap();
    let MessageView::Ctd(ctd) = MessageView::parse(wire.clone()).unwrap() else {
        panic!()
    };
    assert_eq!(ctd.block_count(), 3);
    let base = wire.as_ptr() as usize;
    for b in ctd.blocks() {
        let p = b.data.as_ptr() as usize;
        assert!(
            p >= base && p + b.data.len() <= base + wire.len(),
            "data must point into the input"
        );
        assert_eq!(&b.data[..2000], &data[..]);
        assert_eq!(b.length, 251);
    }
}

#[test]
fn limits_are_checked_on_emit() {
    let too_big = ContextDataBlockRepr::new(1, Bytes::from(vec![0; 2037]));
    assert!(matches!(
        too_big.emit(&mut BytesMut::new()),
        Err(EmitError::CdbTooLong { .. })
    ));
    let fits = ContextDataBlockRepr::new(1, Bytes::from(vec![0; 2036]));
    assert_eq!(fits.wire_len(), 2040);
    let many = MessageRepr::Ctd(CtdRepr {
        ack: false,
        elapsed_ms: 0,
        mn_addr: v4(1),
        key_block: None,
        blocks: vec![fits; 33],
    });
    assert!(matches!(
        many.to_bytes(),
        Err(EmitError::MessageTooLong { .. })
    ));
}

// ---------------------------------------------------------------------------
// Property tests.

fn addr_pair() -> impl Strategy<Value = (IpAddr, IpAddr)> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<[u8; 4]>())
            .prop_map(|(a, b)| (IpAddr::V4(a.into()), IpAddr::V4(b.into()))),
        (any::<[u8; 16]>(), any::<[u8; 16]>())
            .prop_map(|(a, b)| (IpAddr::V6(a.into()), IpAddr::V6(b.into()))),
    ]
}

fn request() -> impl Strategy<Value = RequestBlock> {
    (any::<u16>(), 0u8..4, proptest::option::of(any::<u32>())).prop_map(
        |(fpt, length, presence_vector)| RequestBlock {
            fpt,
            length,
            presence_vector,
        },
    )
}

fn entry() -> impl Strategy<Value = StatusEntry> {
    (any::<u16>(), any::<u8>()).prop_map(|(fpt, status)| StatusEntry { fpt, status })
}

fn cdb() -> impl Strategy<Value = ContextDataBlockRepr> {
    (
        any::<u16>(),
        proptest::option::of(any::<u32>()),
        proptest::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(fpt, presence_vector, mut data)| {
            // Padding is part of `data` once decoded: pre-pad so the
            // decoded block equals the original.
            let hdr = if presence_vector.is_some() { 8 } else { 4 };
            data.resize(pad8(hdr + data.len()) - hdr, 0);
            ContextDataBlockRepr {
                fpt,
                presence_vector,
                data: data.into(),
            }
        })
}

fn message() -> impl Strategy<Value = MessageRepr> {
    prop_oneof![
        (
            addr_pair(),
            any::<bool>(),
            any::<u32>(),
            any::<[u8; 4]>(),
            proptest::collection::vec(request(), 0..5)
        )
            .prop_map(
                |((mn, ar), ack, seq, t, requests)| MessageRepr::Ctar(CtarRepr {
                    ack,
                    mn_addr: mn,
                    ar_addr: ar,
                    seq,
                    token: Token(t),
                    requests
                })
            ),
        (addr_pair(), proptest::collection::vec(entry(), 0..5)).prop_map(|((mn, _), entries)| {
            MessageRepr::Ctaa(CtaaRepr {
                mn_addr: mn,
                entries,
            })
        }),
        (
            addr_pair(),
            any::<bool>(),
            any::<u32>(),
            proptest::option::of((any::<u16>(), proptest::collection::vec(any::<u8>(), 0..40))),
            proptest::collection::vec(cdb(), 0..5)
        )
            .prop_map(|((mn, _), ack, elapsed_ms, key, blocks)| MessageRepr::Ctd(
                CtdRepr {
                    ack,
                    elapsed_ms,
                    mn_addr: mn,
                    key_block: key.map(|(algorithm, k)| KeyBlockRepr {
                        algorithm,
                        key: AuthKey::new(&k)
                    }),
                    blocks
                }
            )),
        (
            addr_pair(),
            any::<bool>(),
            proptest::collection::vec(entry(), 0..5)
        )
            .prop_map(|((mn, _), success, entries)| MessageRepr::Ctdr(CtdrRepr {
                success,
                mn_addr: mn,
                entries
            })),
        addr_pair().prop_map(|(mn, _)| MessageRepr::Ctc(CtcRepr { mn_addr: mn })),
        (
            addr_pair(),
            any::<u32>(),
            any::<[u8; 4]>(),
            proptest::collection::vec(request(), 0..5)
        )
            .prop_map(|((mn, _), seq, t, requests)| MessageRepr::CtReq(CtReqRepr {
                mn_addr: mn,
                seq,
                token: Token(t),
                requests
            })),
    ]
}

proptest! {
    #[test]
    fn emit_then_parse_is_identity(repr in message()) {
        let bytes = repr.to_bytes().unwrap();
        prop_assert_eq!(bytes.len(), repr.buffer_len());
        let msg = MessageView::parse(bytes.clone()).unwrap();
        prop_assert_eq!(msg.message_type(), repr.message_type());
        prop_assert_eq!(&msg.to_repr(), &repr);
        prop_assert_eq!(msg.to_repr().to_bytes().unwrap(), bytes);
    }

    #[test]
    fn header_mn_addr_is_the_parsed_one(repr in message()) {
        let bytes = repr.to_bytes().unwrap();
        let msg = MessageView::parse(bytes.clone()).unwrap();
        let header = Header::parse(&bytes).unwrap();
        prop_assert_eq!(header.mn_addr(&bytes), Ok(msg.mn_addr()));
        prop_assert!(header.mn_addr(&bytes[..bytes.len().min(7)]).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = MessageView::parse(Bytes::from(data));
    }

    #[test]
    fn mutated_valid_messages_never_panic(repr in message(), idx in any::<usize>(), val in any::<u8>(), cut in any::<usize>()) {
        let mut v = repr.to_bytes().unwrap().to_vec();
        let i = idx % v.len();
        v[i] = val;
        // Keep the Length consistent half of the time so the body parsers are reached.
        let n = v.len() as u16;
        if cut % 2 == 0 { v[2..4].copy_from_slice(&n.to_be_bytes()); }
        if let Ok(m) = MessageView::parse(Bytes::from(v.clone())) {
            // Whatever decodes must re-emit to a decodable message.
            let again = m.to_repr().to_bytes().unwrap();
            prop_assert!(MessageView::parse(again).is_ok());
        }
        v.truncate(cut % (v.len() + 1));
        let _ = MessageView::parse(Bytes::from(v));
    }
}
