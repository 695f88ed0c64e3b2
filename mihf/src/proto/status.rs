//! Failure answers: the `.response` (or `.confirm`) of any request, carrying
//! only a STATUS and the TLVs the message makes mandatory, copied from the
//! request. Used when a request cannot be served (unknown destination, no
//! handling user, timeout, unsupported message), so that a requester always
//! gets an answer.

use bytes::{BufMut, BytesMut};

use crate::wire::message::*;
use crate::wire::{Body, Message, Opcode, RawTlvs, Status};

/// TLV type of STATUS.
pub const TLV_STATUS: u8 = 3;

/// The response body answering `request` with `status`.
pub fn failure_body(request: &Body, status: Status) -> (Body, Vec<RawTlvs>) {
    let body = match request {
        Body::CapabilityDiscoverRequest(_) => {
            Body::CapabilityDiscoverResponse(CapabilityDiscoverResponse {
                status,
                link_addr_list: None,
                event_list: None,
                command_list: None,
                is_query_types: None,
                transports: None,
                mbb_ho_support: None,
            })
        }
        Body::RegisterRequest(_) => Body::RegisterResponse(RegisterResponse {
            status,
            valid_time_interval: None,
            odtone_time_interval: None,
        }),
        Body::DeRegisterRequest(_) => Body::DeRegisterResponse(DeRegisterResponse { status }),
        Body::EventSubscribeRequest(r) => Body::EventSubscribeResponse(EventSubscribeResponse {
            status,
            link: r.link.clone(),
            events: None,
        }),
        Body::EventUnsubscribeRequest(r) => {
            Body::EventUnsubscribeResponse(EventUnsubscribeResponse {
                status,
                link: r.link.clone(),
                events: None,
            })
        }
        Body::N2nHoQueryResourcesRequest(_) => {
            Body::N2nHoQueryResourcesResponse(N2nHoQueryResourcesResponse {
                status,
                resource_status: None,
                preferred_links: None,
            })
        }
        Body::NetHoCommitRequest(_) => Body::NetHoCommitResponse(NetHoCommitResponse {
            status,
            link_type: None,
            target: None,
            link_action_results: None,
        }),
        Body::N2nHoCommitRequest(r) => Body::N2nHoCommitResponse(N2nHoCommitResponse {
            status,
            mn_mihf_id: r.mn_mihf_id.clone(),
            link: None,
            assigned_resources: None,
        }),
        Body::N2nHoCompleteRequest(r) => Body::N2nHoCompleteResponse(N2nHoCompleteResponse {
            status,
            mn_mihf_id: r.mn_mihf_id.clone(),
            link: r.link.clone(),
            new_link: r.new_link.clone(),
            resource_retention: None,
        }),
        // Untyped (or undecodable) requests: the IDs and a STATUS TLV.
        _ => return (Body::Unknown, status_tlv(status).into_iter().collect()),
    };
    (body, Vec::new())
}

/// A raw STATUS TLV placed right after the two ID TLVs.
pub fn status_tlv(status: Status) -> Option<RawTlvs> {
    let mut b = BytesMut::with_capacity(3);
    b.put_u8(TLV_STATUS);
    b.put_u8(1);
    b.put_u8(status.0);
    RawTlvs::new(2, b.freeze()).ok()
}

/// The answer to `request` with `status`, with the given opcode (Response
/// towards a peer, Confirm towards a local user), source and destination
/// swapped, same TID, flags clear.
pub fn failure_message(request: &Message, status: Status, opcode: Opcode) -> Message {
    let (body, extra) = failure_body(&request.body, status);
    let mut m = Message::new(
        request.header.mid.with_opcode(opcode),
        request.header.tid,
        request.destination.clone(),
        request.source.clone(),
        body,
    );
    m.extra = extra;
    m
}

/// The STATUS of a response or confirm, wherever the body keeps it (typed
/// field or raw TLV 3).
pub fn status_of(msg: &Message) -> Option<Status> {
    let s = match &msg.body {
        Body::CapabilityDiscoverResponse(b) => b.status,
        Body::RegisterResponse(b) => b.status,
        Body::DeRegisterResponse(b) => b.status,
        Body::EventSubscribeResponse(b) => b.status,
        Body::EventUnsubscribeResponse(b) => b.status,
        Body::N2nHoQueryResourcesResponse(b) => b.status,
        Body::NetHoCommitResponse(b) => b.status,
        Body::N2nHoCommitResponse(b) => b.status,
        Body::N2nHoCompleteResponse(b) => b.status,
        Body::LinkHandoverComplete(b) => b.status,
        _ => {
            let t = msg
                .extra
                .iter()
                .flat_map(|run| run.iter())
                .find(|t| t.ty == TLV_STATUS)?;
            return (t.value.len() == 1).then(|| Status(t.value[0]));
        }
    };
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Mid, MihfId};

    #[test]
    fn every_typed_request_gets_a_decodable_failure() {
        let src = MihfId::from_static("a");
        let dst = MihfId::from_static("b");
        // An untyped request (MIH_Link_Get_Parameters).
        let req = Message::new(Mid(0x3401), 5, src, dst, Body::Unknown);
        let rsp = failure_message(&req, Status::NETWORK_ERROR, Opcode::Response);
        let bytes = rsp.to_bytes().unwrap();
        let back = Message::from_bytes(bytes).unwrap();
        assert_eq!(back.header.mid, Mid(0x3801));
        assert_eq!(back.header.tid, 5);
        assert_eq!(back.source.as_str(), Some("b"));
        assert_eq!(status_of(&back), Some(Status::NETWORK_ERROR));
    }
}

#[cfg(test)]
mod typed_tests {
    use super::*;
    use crate::wire::*;

    #[test]
    fn n2n_ho_commit_failure_keeps_the_mn_id() {
        let req = Message::new(
            Mid(0x3409),
            0x328,
            MihfId::from_static("mihf1"),
            MihfId::from_static("mihf2"),
            Body::N2nHoCommitRequest(N2nHoCommitRequest {
                mn_mihf_id: MihfId::from_static("mn-01"),
                mn_link_id: LinkId {
                    link_type: LinkType::IEEE_802_11,
                    addr: LinkAddr::mac([2, 0, 0, 0, 0, 1]),
                },
                poa: LinkAddr::mac([2, 0, 0, 0, 0, 2]),
                requested_resources: None,
            }),
        );
        for op in [Opcode::Response, Opcode::Confirm] {
            let m = failure_message(&req, Status::REJECTED, op);
            let back = Message::from_bytes(m.to_bytes().unwrap()).unwrap();
            assert_eq!(back.header.mid, Mid(0x3409).with_opcode(op));
            assert_eq!(status_of(&back), Some(Status::REJECTED));
            let Body::N2nHoCommitResponse(b) = back.body else {
                panic!()
            };
            assert_eq!(b.mn_mihf_id.as_str(), Some("mn-01"));
        }
    }
}
