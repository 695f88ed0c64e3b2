//! The local MIH_SAP between the MIHF and its MIH-Users.
//!
//! Transport: UDP on loopback, one MIH frame (IEEE 802.21 header and TLVs)
//! per datagram, no fragmentation, as in ODTONE. The MIHF knows a user by
//! the UDP address it sends from. IEEE 802.21-2008 leaves the SAP to the
//! implementation; the registration messages are ODTONE's.
//!
//! | message | MID | direction | TLVs |
//! |---|---|---|---|
//! | User_Register.indication | 0x1C07 | user → MIHF | Src = user ID, Dst = MIHF ID or `local-mihf`; optional 6 MIH_CMD_LIST (commands the user handles), 7 IQ type list, 5 MIH_EVT_LIST (events the user publishes; an extension) in any order. ACK-Req set (an extension) asks for the confirm |
//! | User_Register.confirm | 0x1007 | MIHF → user | only to a registration with ACK-Req set: same TID, Src = MIHF ID, Dst = user ID, 3 STATUS (an extension) |
//! | User_Deregister.indication | 0x1C08 | user → MIHF | no TLVs (an extension) |
//! | any `.request` | opcode 1 | user → MIHF | Dst = a peer MIHF ID (sent on) or our own ID (served locally); answered by a `.confirm` (opcode 0) with the same TID |
//! | any `.indication` | opcode 3 | MIHF → user | a peer's request for a command the user declared; answer with a `.response` (opcode 2) with the same TID |
//! | event `.indication` | opcode 3, SID 2 | user → MIHF | an event the user publishes (Dst = our ID) goes to every subscriber |
//! | event `.indication` | opcode 3, SID 2 | MIHF → user | an event from a peer the user subscribed to |
//!
//! ODTONE's MIHF answers a User_Register.indication with nothing, and
//! ODTONE's user library hands a `.confirm` whose TID matches none of its
//! own requests (other than an MIH_Capability_Discover one) to the
//! application as a bad message. A registration without ACK-Req (every
//! ODTONE user's) therefore gets no answer here either; the users of this
//! crate set ACK-Req ([`register_indication`]) to learn that the MIHF is
//! there and its MIHF ID.

use bytes::Bytes;
use thiserror::Error;

use crate::wire::{
    self, Body, CommandList, EventList, Frame, IsQueryTypeList, Message, Mid, MihfId, Opcode,
    ServiceId, Status, Value,
};

/// MID of the User_Register.indication (ODTONE's value).
pub const USER_REGISTER_INDICATION: Mid = Mid(0x1c07);
/// MID of the User_Register.confirm (our extension, sent only to a
/// registration with ACK-Req set).
pub const USER_REGISTER_CONFIRM: Mid = Mid(0x1007);
/// MID of the User_Deregister.indication (our extension).
pub const USER_DEREGISTER_INDICATION: Mid = Mid(0x1c08);
/// The destination ID ODTONE users give their own MIHF.
pub const LOCAL_MIHF: &str = "local-mihf";

/// What a user declares when it registers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Registration {
    pub user_id: MihfId,
    /// Commands the user handles (bit 3 covers the network handover
    /// commands, N2N_HO_* and Net_HO_*).
    pub commands: CommandList,
    /// Events the user publishes.
    pub events: EventList,
    pub queries: IsQueryTypeList,
}

/// One frame received on the SAP.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SapMessage {
    Register {
        reg: Registration,
        /// `Some(tid)` when the indication had ACK-Req set: answer with a
        /// User_Register.confirm with this TID. `None` (ODTONE's users):
        /// answer nothing.
        confirm_tid: Option<u16>,
    },
    Deregister {
        user_id: MihfId,
    },
    /// Any MIH primitive.
    Primitive(Message),
}

/// A frame from a user that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SapError {
    #[error("decode: {0}")]
    Decode(#[from] wire::Error),
    #[error("fragmented frames are not used on the SAP")]
    Fragment,
    #[error("registration TLV {tlv}: {error}")]
    BadRegistration { tlv: u8, error: wire::ValueError },
    #[error("a {0} is not sent by a user")]
    BadOpcode(&'static str),
}

/// Decode one SAP datagram.
pub fn decode(bytes: Bytes) -> Result<SapMessage, SapError> {
    let frame = Frame::parse(bytes)?;
    if frame.is_fragment() {
        return Err(SapError::Fragment);
    }
    let mid = frame.mid();
    if mid == USER_REGISTER_INDICATION || mid == USER_DEREGISTER_INDICATION {
        let msg = Message::decode(&frame)?;
        if mid == USER_DEREGISTER_INDICATION {
            return Ok(SapMessage::Deregister {
                user_id: msg.source,
            });
        }
        let mut reg = Registration {
            user_id: msg.source,
            ..Registration::default()
        };
        for run in &msg.extra {
            let base = run.raw();
            for t in run.iter() {
                let res = match t.ty {
                    5 => EventList::decode_exact(base, t.value).map(|v| reg.events = v),
                    6 => CommandList::decode_exact(base, t.value).map(|v| reg.commands = v),
                    7 => IsQueryTypeList::decode_exact(base, t.value).map(|v| reg.queries = v),
                    _ => Ok(()),
                };
                res.map_err(|error| SapError::BadRegistration { tlv: t.ty, error })?;
            }
        }
        let confirm_tid = msg.header.ack_req.then_some(msg.header.tid);
        return Ok(SapMessage::Register { reg, confirm_tid });
    }
    let msg = Message::decode(&frame)?;
    match mid.opcode() {
        Opcode::Confirm => Err(SapError::BadOpcode("confirm")),
        Opcode::Indication if mid.sid() != ServiceId::EVENT => {
            Err(SapError::BadOpcode("non-event indication"))
        }
        _ => Ok(SapMessage::Primitive(msg)),
    }
}

/// Build a User_Register.indication (what a user sends to attach), with
/// ACK-Req set: the MIHF answers with a User_Register.confirm with `tid`.
pub fn register_indication(reg: &Registration, mihf: &MihfId, tid: u16) -> Message {
    let mut m = Message::new(
        USER_REGISTER_INDICATION,
        tid,
        reg.user_id.clone(),
        mihf.clone(),
        Body::Unknown,
    );
    m.header.ack_req = true;
    let mut b = bytes::BytesMut::new();
    wire::tlv::emit_tlv(6, &reg.commands, &mut b);
    wire::tlv::emit_tlv(7, &reg.queries, &mut b);
    wire::tlv::emit_tlv(5, &reg.events, &mut b);
    m.extra = wire::RawTlvs::new(2, b.freeze()).into_iter().collect();
    m
}

/// Build a User_Deregister.indication.
pub fn deregister_indication(user: &MihfId, mihf: &MihfId, tid: u16) -> Message {
    Message::new(
        USER_DEREGISTER_INDICATION,
        tid,
        user.clone(),
        mihf.clone(),
        Body::Unknown,
    )
}

/// Build the User_Register.confirm (`tid`: the indication's).
pub fn register_confirm(mihf: &MihfId, user: &MihfId, tid: u16, status: Status) -> Message {
    let mut m = Message::new(
        USER_REGISTER_CONFIRM,
        tid,
        mihf.clone(),
        user.clone(),
        Body::Unknown,
    );
    m.extra = super::status::status_tlv(status).into_iter().collect();
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_round_trip() {
        let reg = Registration {
            user_id: MihfId::from_static("user1"),
            commands: CommandList::NET_HO,
            events: EventList::LINK_UP | EventList::LINK_DOWN,
            queries: IsQueryTypeList::default(),
        };
        let m = register_indication(&reg, &MihfId::from_static(LOCAL_MIHF), 1);
        let b = m.to_bytes().unwrap();
        // Version 1 with ACK-Req: the confirm is asked for.
        assert_eq!(&b[..6], &[0x18, 0x00, 0x1c, 0x07, 0x00, 0x01]);
        assert_eq!(
            decode(b),
            Ok(SapMessage::Register {
                reg,
                confirm_tid: Some(1)
            })
        );
    }

    #[test]
    fn odtone_style_registration_with_only_a_command_list() {
        // User_Register.indication as ODTONE's mih_usr sends it: TLV 6 only.
        let b = Bytes::from_static(&[
            0x10, 0x00, 0x1c, 0x07, 0x00, 0x01, 0x00, 0x17, 0x01, 0x06, 0x05, b'u', b's', b'e',
            b'r', b'1', 0x02, 0x0b, 0x0a, b'l', b'o', b'c', b'a', b'l', b'-', b'm', b'i', b'h',
            b'f', 0x06, 0x04, 0x00, 0x00, 0x00, 0x08,
        ]);
        let b = {
            let mut v = b.to_vec();
            let plen = (v.len() - 8) as u16;
            v[6..8].copy_from_slice(&plen.to_be_bytes());
            Bytes::from(v)
        };
        let SapMessage::Register {
            reg: r,
            confirm_tid,
        } = decode(b).unwrap()
        else {
            panic!()
        };
        assert_eq!(confirm_tid, None, "no ACK-Req: no confirm");
        assert_eq!(r.user_id.as_str(), Some("user1"));
        assert!(r.commands.contains(CommandList::NET_HO));
        assert_eq!(r.events, EventList::default());
    }

    #[test]
    fn bad_inputs_are_typed_errors() {
        assert!(matches!(
            decode(Bytes::from_static(&[1, 2, 3])),
            Err(SapError::Decode(_))
        ));
        // A registration whose command list is 3 octets instead of 4.
        let mut m = register_indication(&Registration::default(), &MihfId::from_static("m"), 1);
        m.source = MihfId::from_static("u");
        m.extra = vec![wire::RawTlvs::new(2, Bytes::from_static(&[6, 3, 0, 0, 8])).unwrap()];
        assert!(matches!(
            decode(m.to_bytes().unwrap()),
            Err(SapError::BadRegistration { tlv: 6, .. })
        ));
        let c = register_confirm(
            &MihfId::from_static("m"),
            &MihfId::from_static("u"),
            1,
            Status::SUCCESS,
        );
        assert_eq!(
            decode(c.to_bytes().unwrap()),
            Err(SapError::BadOpcode("confirm"))
        );
    }
}
