//! Property and malformed-input tests of the Service Mobility API codec
//! (`mih_user::api::wire`): every message round-trips, the encoding is
//! canonical, streams split anywhere reassemble, and no input panics.

use std::net::{IpAddr, SocketAddr};

use bytes::{Bytes, BytesMut};
use mih_user::api::wire::*;
use proptest::prelude::*;

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(IpAddr::from),
        any::<[u8; 16]>().prop_map(IpAddr::from),
    ]
}

fn sockaddr() -> impl Strategy<Value = SocketAddr> {
    (ip(), any::<u16>()).prop_map(|(i, p)| SocketAddr::new(i, p))
}

fn connections() -> impl Strategy<Value = Vec<Connection>> {
    proptest::collection::vec(
        (sockaddr(), sockaddr()).prop_map(|(client, server)| Connection { client, server }),
        0..6,
    )
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z0-9.-]{0,20}", "\\PC{0,12}"]
}

fn data() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..300).prop_map(Bytes::from)
}

fn status() -> impl Strategy<Value = ReplyStatus> {
    any::<u8>().prop_map(ReplyStatus::from_u8)
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (any::<u16>(), any::<u16>(), any::<u32>(), text()).prop_map(|(a, b, m, n)| {
            Message::Hello(Hello {
                min_version: a,
                max_version: b,
                max_frame: m,
                client_name: n,
            })
        }),
        (text(), any::<u16>()).prop_map(|(s, f)| Message::RegisterService(RegisterService {
            service_id: s,
            fpt: f
        })),
        text().prop_map(|s| Message::DeregisterService(DeregisterService { service_id: s })),
        (text(), ip(), any::<bool>(), connections()).prop_map(|(s, u, r, c)| {
            Message::RegisterUser(RegisterUser {
                service_id: s,
                ue: u,
                replace: r,
                connections: c,
            })
        }),
        (text(), ip()).prop_map(|(s, u)| Message::DeregisterUser(DeregisterUser {
            service_id: s,
            ue: u
        })),
        (any::<u32>(), text(), ip(), status(), text(), data()).prop_map(|(e, s, u, st, r, d)| {
            Message::ExportContext(ExportContext {
                event_id: e,
                service_id: s,
                ue: u,
                status: st,
                reason: r,
                data: d,
            })
        }),
        (any::<u32>(), text(), ip(), status(), text(), connections()).prop_map(
            |(e, s, u, st, r, c)| Message::ImportContext(ImportContext {
                event_id: e,
                service_id: s,
                ue: u,
                status: st,
                reason: r,
                connections: c,
            })
        ),
        (any::<u16>(), any::<u32>(), text()).prop_map(|(v, m, n)| Message::HelloAck(HelloAck {
            version: v,
            max_frame: m,
            server_name: n
        })),
        Just(Message::Ok),
        (any::<u16>(), text()).prop_map(|(c, m)| Message::Error(ErrorMessage {
            code: ErrorCode::from_u16(c),
            message: m
        })),
        (text(), ip(), any::<u32>()).prop_map(|(s, u, t)| Message::ExportRequested(
            ExportRequested {
                service_id: s,
                ue: u,
                timeout_ms: t
            }
        )),
        (text(), ip(), any::<u16>(), data()).prop_map(|(s, u, f, d)| Message::ImportRequested(
            ImportRequested {
                service_id: s,
                ue: u,
                fpt: f,
                data: d
            }
        )),
        (text(), ip(), any::<bool>(), any::<bool>(), text()).prop_map(|(s, u, r, o, c)| {
            Message::MigrationOutcome(MigrationOutcome {
                service_id: s,
                ue: u,
                role: if r { Role::Source } else { Role::Destination },
                outcome: if o {
                    Outcome::Committed
                } else {
                    Outcome::RolledBack
                },
                cause: c,
            })
        }),
    ]
}

fn frame() -> impl Strategy<Value = Frame> {
    (any::<u32>(), message()).prop_map(|(id, m)| Frame::new(id, m))
}

const MAX: u32 = 1 << 20;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn round_trip(f in frame()) {
        let mut b = BytesMut::new();
        encode(&f, &mut b).unwrap();
        prop_assert_eq!(b.len(), LENGTH_PREFIX_LEN + encoded_len(&f));
        let wire_bytes = b.clone().freeze();
        let back = decode_frame(&mut b, MAX).unwrap().unwrap();
        prop_assert!(b.is_empty());
        prop_assert_eq!(&back, &f);
        // decode_payload on the body alone gives the same frame
        prop_assert_eq!(decode_payload(wire_bytes.slice(4..)).unwrap(), f);
    }

    #[test]
    fn stream_split_anywhere(frames in proptest::collection::vec(frame(), 1..6), cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8)) {
        let mut all = BytesMut::new();
        for f in &frames {
            encode(f, &mut all).unwrap();
        }
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(all.len() + 1)).collect();
        points.push(all.len());
        points.sort();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut last = 0;
        for p in points {
            buf.extend_from_slice(&all[last..p]);
            last = p;
            while let Some(f) = decode_frame(&mut buf, MAX).unwrap() {
                got.push(f);
            }
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(got, frames);
    }

    /// Truncating a frame anywhere: the stream decoder waits for more, the
    /// body decoder reports an error; neither panics.
    #[test]
    fn truncation(f in frame(), cut in any::<prop::sample::Index>()) {
        let mut b = BytesMut::new();
        encode(&f, &mut b).unwrap();
        let n = cut.index(b.len());
        let mut part = BytesMut::from(&b[..n]);
        prop_assert_eq!(decode_frame(&mut part, MAX), Ok(None));
        if n > LENGTH_PREFIX_LEN {
            prop_assert!(decode_payload(Bytes::copy_from_slice(&b[LENGTH_PREFIX_LEN..n])).is_err());
        }
    }

    /// Any change to a valid body either fails to decode or decodes to a
    /// frame that re-encodes to exactly the changed octets (the encoding is
    /// canonical).
    #[test]
    fn mutation_is_error_or_canonical(f in frame(), at in any::<prop::sample::Index>(), x in 1u8..=255) {
        let mut b = BytesMut::new();
        encode(&f, &mut b).unwrap();
        let mut body = b[LENGTH_PREFIX_LEN..].to_vec();
        let i = at.index(body.len());
        body[i] ^= x;
        if let Ok(g) = decode_payload(Bytes::from(body.clone())) {
            let mut again = BytesMut::new();
            encode(&g, &mut again).unwrap();
            prop_assert_eq!(&again[LENGTH_PREFIX_LEN..], &body[..]);
        }
    }

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..400), max in 0u32..2048) {
        let mut b = BytesMut::from(&data[..]);
        let _ = decode_frame(&mut b, max);
        let _ = decode_payload(Bytes::from(data));
    }

    /// A body that starts like a real message but carries random octets.
    #[test]
    fn typed_garbage_never_panics(t in prop::sample::select(vec![1u8, 2, 3, 4, 5, 6, 7, 0x41, 0x42, 0x43, 0x81, 0x82, 0x83]), rest in proptest::collection::vec(any::<u8>(), 0..120)) {
        let mut body = vec![t, 0, 0, 0, 1];
        if t == 1 || t == 0x41 {
            body.extend_from_slice(&MAGIC);
        }
        body.extend_from_slice(&rest);
        if let Ok(g) = decode_payload(Bytes::from(body.clone())) {
            let mut again = BytesMut::new();
            encode(&g, &mut again).unwrap();
            prop_assert_eq!(&again[LENGTH_PREFIX_LEN..], &body[..]);
        }
    }
}

fn body(hex_body: &str) -> Result<Frame, DecodeError> {
    let v: Vec<u8> = (0..hex_body.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex_body[i..i + 2], 16).unwrap())
        .collect();
    decode_payload(Bytes::from(v))
}

#[test]
fn malformed_inputs_give_named_errors() {
    use DecodeError::*;
    assert_eq!(body("7f00000001"), Err(UnknownMessageType(0x7f)));
    assert_eq!(body("00000000"), Err(FrameTooShort { len: 4 }));
    assert_eq!(
        body("0100000001584d415000010001"),
        Err(BadMagic { message: "Hello" })
    );
    assert_eq!(
        body("030000000100"),
        Err(Truncated {
            message: "DeregisterService",
            field: "service id"
        })
    );
    assert_eq!(
        body("03000000010002ff"),
        Err(Truncated {
            message: "DeregisterService",
            field: "service id"
        })
    );
    assert_eq!(
        body("03000000010001ff"),
        Err(InvalidUtf8 {
            message: "DeregisterService",
            field: "service id"
        })
    );
    assert_eq!(
        body("0300000001000161ee"),
        Err(TrailingBytes {
            message: "DeregisterService",
            len: 1
        })
    );
    // UE address family 5
    assert_eq!(
        body("0500000001000161050a000001"),
        Err(InvalidValue {
            message: "DeregisterUser",
            field: "ue",
            value: 5
        })
    );
    // RegisterUser flags with a reserved bit
    assert_eq!(
        body(
            "040000000100016104 0a000001 02 0000"
                .replace(' ', "")
                .as_str()
        ),
        Err(InvalidValue {
            message: "RegisterUser",
            field: "flags",
            value: 2
        })
    );
    // MigrationOutcome role 2
    assert_eq!(
        body(
            "8300000001000161040a000001020000 00"
                .replace(' ', "")
                .as_str()
        ),
        Err(InvalidValue {
            message: "MigrationOutcome",
            field: "role",
            value: 2
        })
    );
    // ImportRequested whose data length runs past the frame
    assert_eq!(
        body(
            "8200000001000161040a000001ff01ffffffff00"
                .replace(' ', "")
                .as_str()
        ),
        Err(Truncated {
            message: "ImportRequested",
            field: "data"
        })
    );
    // Ok with a body
    assert_eq!(
        body("420000000100"),
        Err(TrailingBytes {
            message: "Ok",
            len: 1
        })
    );
}

#[test]
fn frame_limits() {
    let mut b = BytesMut::from(&[0x00, 0x10, 0x00, 0x01][..]);
    assert_eq!(
        decode_frame(&mut b, 0x10_0000),
        Err(DecodeError::FrameTooLarge {
            len: 0x10_0001,
            max: 0x10_0000
        })
    );
    // Exactly at the limit is accepted (waits for the octets).
    let mut b = BytesMut::from(&[0x00, 0x10, 0x00, 0x00][..]);
    assert_eq!(decode_frame(&mut b, 0x10_0000), Ok(None));
    // The buffer grew to hold the frame, no more.
    assert!(b.capacity() >= 0x10_0004 && b.capacity() < 0x20_0000);
}

#[test]
fn error_codes_and_statuses_are_stable() {
    for v in 0..=u16::MAX {
        assert_eq!(ErrorCode::from_u16(v).to_u16(), v);
    }
    for v in 0..=u8::MAX {
        assert_eq!(ReplyStatus::from_u8(v).to_u8(), v);
    }
    assert_eq!(ErrorCode::from_u16(9), ErrorCode::UnknownUser);
    assert_eq!(ErrorCode::UnknownUser.name(), "UNKNOWN_USER");
    assert_eq!(ErrorCode::from_u16(16), ErrorCode::SlowConsumer);
}
