//! The MIH messages of a handover between two MIH-Users, as they go
//! through the local MIHF's SAP: MIH_N2N_HO_Commit (request / indication /
//! response / confirm) and MIH_N2N_HO_Complete.
//!
//! * **MN MIHF ID** (TLV 52) is the UE's IP address in text form
//!   (`10.45.0.7`, `2001:db8::7`).
//! * **MN link ID** (TLV 59): LINK_TYPE "Wireless - Other" (18; IEEE
//!   802.21-2008 has no E-UTRAN value) and the UE's address octets as an
//!   OTHER_L2_ADDR. **PoA** (TLV 60): the target cell as a
//!   3GPP_3G_CELL_ID (PLMN identity and the 28-bit E-UTRAN cell identity)
//!   when the X2 trigger knows it, otherwise an empty OTHER_L2_ADDR.
//!   **Requested resource set** (TLV 63): an empty QoS list, no TSP,
//!   HO_CAUSE 0.
//! * A **vendor-specific TLV** (type 100) after the standard TLVs carries
//!   what the standard has no field for. Layout (all big-endian):
//!   `"EM" | version u8 (1) | kind u8 | body`.
//!   - kind 1, in the request: `family u8 (4|6) | UE address (4|16) |
//!     count u8 | count × (length u8 | service ID, UTF-8)`: the UE and the
//!     services that have it at the source (the destination's admission
//!     checks they are registered there).
//!   - kind 2, in a response: `length u16 | text (UTF-8)`: why the
//!     destination refused.
//!   - kind 3, the **attempt**: `attempt id u32` (never 0). The source
//!     allocates one per handover attempt (a random start per process,
//!     then +1) and puts it in its MIH_N2N_HO_Commit.request and every
//!     MIH_N2N_HO_Complete.request of that attempt; the destination echoes
//!     it in both responses. The same number is the CXTP transfer id of
//!     the attempt's contexts (`cxtp` README, "Identified transfers"), so
//!     nothing of an earlier attempt of the same UE acts on a later one.
//!
//!   - kind 4, in a MIH_N2N_HO_Complete.response: `outcome u8`, what the
//!     destination did with the attempt the request names: 0 unknown (not
//!     in its table of recent incoming attempts: never seen, forgotten, or
//!     it restarted), 1 committed, 2 rolled back, 3 under way (a
//!     Complete(Success) that came before its CTDR). A Complete(Failure)
//!     of an attempt under way rolls it back first, so it is answered 2.
//!     A restarted source uses exactly that to ask what became of an
//!     attempt it had journalled (`crate::sessions::journal`).
//!
//!   Kind 1 and kind 3 are two TLVs of type 100. MIHFs relay unknown TLVs
//!   unchanged (mihfd does, and so does ODTONE). A request without kind 1
//!   is read from the MN MIHF ID alone, with an unknown service list; a
//!   commit request without kind 3 is refused (the destination could not
//!   tell its attempts apart).

use std::net::IpAddr;

use bytes::{BufMut, Bytes, BytesMut};
use mihf::wire::message::{
    N2nHoCommitRequest, N2nHoCommitResponse, N2nHoCompleteRequest, N2nHoCompleteResponse,
};
use mihf::wire::{
    Body, HoCause, HoResult, LinkAddr, LinkId, LinkTupleId, LinkType, Message, Mid, MihfId, Opcode,
    QosList, RawTlvs, ReqResSet, Status, TspContainer,
};

use crate::x2ap::Ecgi;

/// MID of MIH_N2N_HO_Commit.request.
pub const N2N_HO_COMMIT: Mid = Mid(0x3409);
/// MID of MIH_N2N_HO_Complete.request.
pub const N2N_HO_COMPLETE: Mid = Mid(0x340b);
/// The vendor-specific TLV type.
pub const VENDOR_TLV: u8 = 100;
/// Most services listed in one request.
pub const MAX_SERVICES: usize = 64;
/// Longest refusal text carried.
pub const MAX_REASON: usize = 512;

const MAGIC: &[u8; 2] = b"EM";
const VERSION: u8 = 1;
const KIND_INFO: u8 = 1;
const KIND_REASON: u8 = 2;
const KIND_ATTEMPT: u8 = 3;
const KIND_OUTCOME: u8 = 4;

/// What a destination did with an attempt (vendor TLV kind 4 of a
/// MIH_N2N_HO_Complete.response).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AttemptOutcome {
    /// Not among its recent incoming attempts.
    Unknown,
    /// Committed: it serves the UE.
    Committed,
    /// Rolled back (also: rolled back by this very Complete(Failure)).
    RolledBack,
    /// Still under way (a Complete(Success) before its CTDR; ignored).
    InProgress,
}

impl AttemptOutcome {
    fn to_u8(self) -> u8 {
        match self {
            AttemptOutcome::Unknown => 0,
            AttemptOutcome::Committed => 1,
            AttemptOutcome::RolledBack => 2,
            AttemptOutcome::InProgress => 3,
        }
    }

    fn from_u8(v: u8) -> Option<AttemptOutcome> {
        Some(match v {
            0 => AttemptOutcome::Unknown,
            1 => AttemptOutcome::Committed,
            2 => AttemptOutcome::RolledBack,
            3 => AttemptOutcome::InProgress,
            _ => return None,
        })
    }

    /// Name for logs.
    pub fn label(self) -> &'static str {
        match self {
            AttemptOutcome::Unknown => "unknown",
            AttemptOutcome::Committed => "committed",
            AttemptOutcome::RolledBack => "rolled_back",
            AttemptOutcome::InProgress => "in_progress",
        }
    }
}
/// Put our TLV after every standard TLV.
const AFTER_ALL: usize = 1 << 20;

/// What a commit request says about the UE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandoverInfo {
    /// The UE.
    pub ue: IpAddr,
    /// The services that have the UE at the source (`None`: the request
    /// did not say).
    pub services: Option<Vec<String>>,
    /// The source's attempt id (`None`: the request carries none).
    pub attempt: Option<u32>,
}

/// The MN MIHF ID naming a UE.
pub fn mn_id(ue: IpAddr) -> MihfId {
    MihfId::new(ue.to_string().into_bytes())
}

fn link_id(ue: IpAddr) -> LinkId {
    let octets: Vec<u8> = match ue {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    LinkId {
        link_type: LinkType::WIRELESS_OTHER,
        addr: LinkAddr::OtherL2(Bytes::from(octets)),
    }
}

fn put_vendor_tlv(raw: &mut BytesMut, value: &[u8]) {
    raw.put_u8(VENDOR_TLV);
    mihf::wire::encode_length(value.len(), raw);
    raw.put_slice(value);
}

/// Our vendor TLVs with these values, in order, as one run after every
/// standard TLV.
fn vendor_tlvs(values: &[&[u8]]) -> Vec<RawTlvs> {
    let mut raw = BytesMut::with_capacity(values.iter().map(|v| v.len() + 4).sum());
    for v in values {
        put_vendor_tlv(&mut raw, v);
    }
    if raw.is_empty() {
        return Vec::new();
    }
    RawTlvs::new(AFTER_ALL, raw.freeze()).into_iter().collect()
}

fn attempt_value(attempt: u32) -> [u8; 8] {
    let a = attempt.to_be_bytes();
    [
        MAGIC[0],
        MAGIC[1],
        VERSION,
        KIND_ATTEMPT,
        a[0],
        a[1],
        a[2],
        a[3],
    ]
}

fn info_value(ue: IpAddr, services: &[String]) -> Vec<u8> {
    let mut v = Vec::with_capacity(32);
    v.extend_from_slice(MAGIC);
    v.push(VERSION);
    v.push(KIND_INFO);
    match ue {
        IpAddr::V4(a) => {
            v.push(4);
            v.extend_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            v.push(6);
            v.extend_from_slice(&a.octets());
        }
    }
    let listed: Vec<&String> = services
        .iter()
        .filter(|s| !s.is_empty() && s.len() <= 255)
        .take(MAX_SERVICES)
        .collect();
    v.push(listed.len() as u8);
    for s in listed {
        v.push(s.len() as u8);
        v.extend_from_slice(s.as_bytes());
    }
    v
}

/// MIH_N2N_HO_Commit.request for `ue` to `target`, with `tid`, for the
/// source's attempt `attempt`.
pub fn commit_request(
    tid: u16,
    user: &MihfId,
    target: &str,
    ue: IpAddr,
    services: &[String],
    cell: Option<Ecgi>,
    attempt: u32,
) -> Message {
    let poa = match cell {
        Some(c) => LinkAddr::Cell3g {
            plmn_id: c.plmn.0,
            cell_id: c.cell_id,
        },
        None => LinkAddr::OtherL2(Bytes::new()),
    };
    let mut m = Message::new(
        N2N_HO_COMMIT,
        tid,
        user.clone(),
        MihfId::new(target.as_bytes().to_vec()),
        Body::N2nHoCommitRequest(N2nHoCommitRequest {
            mn_mihf_id: mn_id(ue),
            mn_link_id: link_id(ue),
            poa,
            requested_resources: Some(ReqResSet {
                qos: QosList::new(0, &[], &[], &[], &[], &[]),
                tsp: TspContainer::Null,
                ho_cause: HoCause(0),
            }),
        }),
    );
    m.extra = vendor_tlvs(&[&info_value(ue, services), &attempt_value(attempt)]);
    m
}

/// The answer to a MIH_N2N_HO_Commit.indication (it echoes the
/// indication's attempt id).
pub fn commit_response(
    indication: &Message,
    user: &MihfId,
    status: Status,
    reason: Option<&str>,
) -> Message {
    let mn_mihf_id = match &indication.body {
        Body::N2nHoCommitRequest(r) => r.mn_mihf_id.clone(),
        _ => MihfId::default(),
    };
    let mut m = Message::new(
        indication.header.mid.with_opcode(Opcode::Response),
        indication.header.tid,
        user.clone(),
        indication.source.clone(),
        Body::N2nHoCommitResponse(N2nHoCommitResponse {
            status,
            mn_mihf_id,
            link: None,
            assigned_resources: None,
        }),
    );
    let mut v = Vec::new();
    if let Some(r) = reason {
        let mut cut = r.len().min(MAX_REASON);
        while !r.is_char_boundary(cut) {
            cut -= 1;
        }
        v.reserve(6 + cut);
        v.extend_from_slice(MAGIC);
        v.push(VERSION);
        v.push(KIND_REASON);
        v.extend_from_slice(&(cut as u16).to_be_bytes());
        v.extend_from_slice(&r.as_bytes()[..cut]);
    }
    let echo = parse_attempt(indication).map(attempt_value);
    let values: Vec<&[u8]> = [
        (!v.is_empty()).then_some(&v[..]),
        echo.as_ref().map(|e| &e[..]),
    ]
    .into_iter()
    .flatten()
    .collect();
    m.extra = vendor_tlvs(&values);
    m
}

/// MIH_N2N_HO_Complete.request telling `target` how the attempt
/// `attempt` to move `ue` ended.
pub fn complete_request(
    tid: u16,
    user: &MihfId,
    target: &str,
    ue: IpAddr,
    result: HoResult,
    attempt: u32,
) -> Message {
    let tuple = LinkTupleId {
        link: link_id(ue),
        poa: None,
    };
    let mut m = Message::new(
        N2N_HO_COMPLETE,
        tid,
        user.clone(),
        MihfId::new(target.as_bytes().to_vec()),
        Body::N2nHoCompleteRequest(N2nHoCompleteRequest {
            mn_mihf_id: mn_id(ue),
            link: tuple.clone(),
            new_link: tuple,
            result,
        }),
    );
    m.extra = vendor_tlvs(&[&attempt_value(attempt)]);
    m
}

/// The answer to a MIH_N2N_HO_Complete.indication (it echoes the
/// indication's attempt id, so the source knows this attempt's Complete
/// arrived, and says what became of the attempt here: `outcome`, kind 4).
pub fn complete_response(
    indication: &Message,
    user: &MihfId,
    status: Status,
    outcome: Option<AttemptOutcome>,
) -> Option<Message> {
    let Body::N2nHoCompleteRequest(r) = &indication.body else {
        return None;
    };
    let mut m = Message::new(
        indication.header.mid.with_opcode(Opcode::Response),
        indication.header.tid,
        user.clone(),
        indication.source.clone(),
        Body::N2nHoCompleteResponse(N2nHoCompleteResponse {
            status,
            mn_mihf_id: r.mn_mihf_id.clone(),
            link: r.link.clone(),
            new_link: r.new_link.clone(),
            resource_retention: None,
        }),
    );
    let echo = parse_attempt(indication).map(attempt_value);
    let outcome = outcome.map(|o| [MAGIC[0], MAGIC[1], VERSION, KIND_OUTCOME, o.to_u8()]);
    let values: Vec<&[u8]> = [
        echo.as_ref().map(|e| &e[..]),
        outcome.as_ref().map(|o| &o[..]),
    ]
    .into_iter()
    .flatten()
    .collect();
    m.extra = vendor_tlvs(&values);
    Some(m)
}

/// What a MIH_N2N_HO_Complete.response/confirm says became of the attempt
/// (kind 4: exactly one known octet), if it says.
pub fn parse_outcome(msg: &Message) -> Option<AttemptOutcome> {
    match vendor_value(msg, KIND_OUTCOME)? {
        [v] => AttemptOutcome::from_u8(*v),
        _ => None,
    }
}

/// The value of our vendor TLV of `kind`, if the message has a
/// well-formed one.
fn vendor_value(msg: &Message, kind: u8) -> Option<&[u8]> {
    msg.extra.iter().flat_map(|run| run.iter()).find_map(|t| {
        (t.ty == VENDOR_TLV
            && t.value.len() >= 4
            && &t.value[..2] == MAGIC
            && t.value[2] == VERSION
            && t.value[3] == kind)
            .then_some(&t.value[4..])
    })
}

/// The attempt id our vendor TLV (kind 3) carries, if the message has a
/// well-formed one (exactly 4 octets, not 0).
pub fn parse_attempt(msg: &Message) -> Option<u32> {
    let v = vendor_value(msg, KIND_ATTEMPT)?;
    let a = u32::from_be_bytes(v.try_into().ok()?);
    (a != 0).then_some(a)
}

/// The UE named by a MN MIHF ID, if it is an IP address.
pub fn parse_mn_id(id: &MihfId) -> Option<IpAddr> {
    id.as_str()?.parse::<IpAddr>().ok().map(canonical)
}

/// IPv4-mapped IPv6 addresses as IPv4 (as the API does).
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// What a MIH_N2N_HO_Commit.request/indication says about the UE. `None`
/// if it names no UE (neither our TLV nor an address as MN MIHF ID), or
/// the two disagree.
pub fn parse_info(msg: &Message) -> Option<HandoverInfo> {
    let Body::N2nHoCommitRequest(req) = &msg.body else {
        return None;
    };
    let from_id = parse_mn_id(&req.mn_mihf_id);
    let attempt = parse_attempt(msg);
    let Some(v) = vendor_value(msg, KIND_INFO) else {
        return from_id.map(|ue| HandoverInfo {
            ue,
            services: None,
            attempt,
        });
    };
    let (ue, rest) = match v.first()? {
        4 => {
            let a: [u8; 4] = v.get(1..5)?.try_into().ok()?;
            (IpAddr::from(a), v.get(5..)?)
        }
        6 => {
            let a: [u8; 16] = v.get(1..17)?.try_into().ok()?;
            (IpAddr::from(a), v.get(17..)?)
        }
        _ => return None,
    };
    let ue = canonical(ue);
    if from_id.is_some_and(|f| f != ue) {
        return None;
    }
    let (&count, mut rest) = rest.split_first()?;
    if usize::from(count) > MAX_SERVICES {
        return None;
    }
    let mut services = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let (&n, r) = rest.split_first()?;
        let name = r.get(..usize::from(n))?;
        services.push(std::str::from_utf8(name).ok()?.to_string());
        rest = &r[usize::from(n)..];
    }
    if !rest.is_empty() {
        return None;
    }
    Some(HandoverInfo {
        ue,
        services: Some(services),
        attempt,
    })
}

/// The refusal text of a commit response/confirm, if it carries one.
pub fn parse_reason(msg: &Message) -> Option<String> {
    let v = vendor_value(msg, KIND_REASON)?;
    let n = usize::from(u16::from_be_bytes([*v.first()?, *v.get(1)?]));
    let text = v.get(2..2 + n)?;
    Some(String::from_utf8_lossy(text).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::x2ap::Plmn;

    fn round_trip(m: &Message) -> Message {
        Message::from_bytes(m.to_bytes().unwrap()).unwrap()
    }

    #[test]
    fn request_carries_ue_and_services() {
        let ue: IpAddr = "10.45.0.7".parse().unwrap();
        let services = vec!["http-download".to_string(), "video".to_string()];
        let cell = Ecgi {
            plmn: Plmn([0x00, 0xf1, 0x10]),
            cell_id: 0x1a2b301,
        };
        let m = commit_request(
            7,
            &MihfId::from_static("u"),
            "enbc-b",
            ue,
            &services,
            Some(cell),
            0x8000_0001,
        );
        let back = round_trip(&m);
        assert_eq!(back.header.tid, 7);
        let info = parse_info(&back).unwrap();
        assert_eq!(info.ue, ue);
        assert_eq!(info.services.as_deref(), Some(&services[..]));
        assert_eq!(info.attempt, Some(0x8000_0001));
        assert_eq!(parse_attempt(&back), Some(0x8000_0001));
        let Body::N2nHoCommitRequest(r) = &back.body else {
            panic!()
        };
        assert_eq!(r.mn_mihf_id.as_str(), Some("10.45.0.7"));
        assert!(matches!(
            r.poa,
            LinkAddr::Cell3g {
                cell_id: 0x1a2b301,
                ..
            }
        ));
        // Without our TLV the MN MIHF ID names the UE.
        let mut plain = back.clone();
        plain.extra.clear();
        assert_eq!(
            parse_info(&round_trip(&plain)),
            Some(HandoverInfo {
                ue,
                services: None,
                attempt: None
            })
        );
        // The attempt alone (no kind 1), a zero attempt, a cut attempt.
        let mut only = back.clone();
        only.extra = vendor_tlvs(&[&attempt_value(9)]);
        assert_eq!(parse_info(&round_trip(&only)).unwrap().attempt, Some(9));
        only.extra = vendor_tlvs(&[&attempt_value(0)]);
        assert_eq!(parse_attempt(&round_trip(&only)), None);
        only.extra = vendor_tlvs(&[&attempt_value(9)[..7]]);
        assert_eq!(parse_attempt(&round_trip(&only)), None);
        // A TLV that disagrees with the MN MIHF ID, or is cut, is refused.
        let other = commit_request(
            1,
            &MihfId::default(),
            "b",
            "10.0.0.1".parse().unwrap(),
            &[],
            None,
            1,
        );
        let mut mixed = back.clone();
        mixed.extra = other.extra.clone();
        assert_eq!(parse_info(&round_trip(&mixed)), None);
        let mut raw = info_value(ue, &services);
        raw.pop();
        let mut cut = back;
        cut.extra = vendor_tlvs(&[&raw]);
        assert_eq!(parse_info(&round_trip(&cut)), None);
    }

    #[test]
    fn response_reason_and_complete() {
        let ue: IpAddr = "2001:db8::7".parse().unwrap();
        let req = round_trip(&commit_request(
            3,
            &MihfId::from_static("a"),
            "b",
            ue,
            &[],
            None,
            77,
        ));
        let rsp = commit_response(
            &req,
            &MihfId::from_static("b"),
            Status::REJECTED,
            Some("no capacity"),
        );
        let back = round_trip(&rsp);
        assert_eq!(back.header.mid, N2N_HO_COMMIT.with_opcode(Opcode::Response));
        assert_eq!(parse_reason(&back).as_deref(), Some("no capacity"));
        assert_eq!(parse_attempt(&back), Some(77), "echoed");
        let plain = commit_response(&req, &MihfId::from_static("b"), Status::SUCCESS, None);
        assert_eq!(parse_attempt(&round_trip(&plain)), Some(77));
        assert_eq!(parse_reason(&round_trip(&plain)), None);
        let Body::N2nHoCommitResponse(r) = &back.body else {
            panic!()
        };
        assert_eq!(r.status, Status::REJECTED);
        assert_eq!(parse_mn_id(&r.mn_mihf_id), Some(ue));
        let c = round_trip(&complete_request(
            4,
            &MihfId::from_static("a"),
            "b",
            ue,
            HoResult::FAILURE,
            78,
        ));
        let Body::N2nHoCompleteRequest(r) = &c.body else {
            panic!()
        };
        assert_eq!(r.result, HoResult::FAILURE);
        assert_eq!(parse_attempt(&c), Some(78));
        let a = round_trip(
            &complete_response(&c, &MihfId::from_static("b"), Status::SUCCESS, None).unwrap(),
        );
        assert_eq!(a.header.tid, 4);
        assert_eq!(parse_attempt(&a), Some(78), "echoed");
        assert_eq!(parse_outcome(&a), None);
    }

    #[test]
    fn complete_response_says_what_became_of_the_attempt() {
        let ue: IpAddr = "10.77.0.2".parse().unwrap();
        let q = round_trip(&complete_request(
            9,
            &MihfId::from_static("a"),
            "b",
            ue,
            HoResult::FAILURE,
            0x8000_0005,
        ));
        for o in [
            AttemptOutcome::Unknown,
            AttemptOutcome::Committed,
            AttemptOutcome::RolledBack,
            AttemptOutcome::InProgress,
        ] {
            let a = round_trip(
                &complete_response(&q, &MihfId::from_static("b"), Status::SUCCESS, Some(o))
                    .unwrap(),
            );
            assert_eq!(parse_outcome(&a), Some(o));
            assert_eq!(parse_attempt(&a), Some(0x8000_0005));
            // The exact octets: "EM" | 1 | 4 | outcome, after the echo.
            let tlvs: Vec<_> = a.extra.iter().flat_map(|r| r.iter()).collect();
            assert_eq!(tlvs.len(), 2);
            assert_eq!(tlvs[1].value, &[b'E', b'M', 1, 4, o.to_u8()][..]);
        }
        // An unknown value, or a cut or long one, says nothing.
        let mut m = round_trip(
            &complete_response(&q, &MihfId::from_static("b"), Status::SUCCESS, None).unwrap(),
        );
        for bad in [
            &[b'E', b'M', 1, 4, 9][..],
            &[b'E', b'M', 1, 4],
            &[b'E', b'M', 1, 4, 1, 1],
        ] {
            m.extra = vendor_tlvs(&[bad]);
            assert_eq!(parse_outcome(&round_trip(&m)), None, "{bad:?}");
        }
        assert_eq!(
            parse_mn_id(&"::ffff:10.0.0.1".parse::<IpAddr>().map(mn_id).unwrap()),
            Some("10.0.0.1".parse().unwrap())
        );
    }
}
