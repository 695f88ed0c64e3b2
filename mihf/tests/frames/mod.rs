//! Example MIH frames and a deterministic generator shared by the
//! transaction engine tests (`proto_engine.rs`, `proto_tid.rs`).

// Each test file uses a part of this module.
#![allow(dead_code)]

use mihf::wire::message::*;
use mihf::wire::*;

/// An MIH_N2N_HO_Commit.request from `src` to `dst` (TID 0: the engine
/// sets it), with the golden vector's MN, link, PoA and resources.
pub fn n2n_request(src: &'static str, dst: &'static str) -> Message {
    Message::new(
        Mid(0x3409),
        0,
        MihfId::from_static(src),
        MihfId::from_static(dst),
        Body::N2nHoCommitRequest(N2nHoCommitRequest {
            mn_mihf_id: MihfId::from_static("mn-01"),
            mn_link_id: LinkId {
                link_type: LinkType::IEEE_802_11,
                addr: LinkAddr::mac([2, 0xaa, 0xbb, 0xcc, 0xdd, 1]),
            },
            poa: LinkAddr::mac([2, 0xaa, 0xbb, 0xcc, 0xdd, 2]),
            requested_resources: Some(req_res_set()),
        }),
    )
}

/// The resource set of the N2N_HO_Commit.request golden vector (frame F1 of
/// the oracle smoke test; QosList::default() would emit no
/// lists at all, so it is built explicitly).
pub fn req_res_set() -> ReqResSet {
    let c = |v| CosValue {
        cos_id: 1,
        value: v,
    };
    ReqResSet {
        qos: QosList::new(1, &[c(20)], &[c(10)], &[c(50)], &[c(5)], &[]),
        tsp: TspContainer::Null,
        ho_cause: HoCause::NO_RESOURCE,
    }
}

/// A Link_Up.indication from `src` to `dst` (TID 0).
pub fn link_up(src: &'static str, dst: &'static str) -> Message {
    Message::new(
        Mid(0x2c02),
        0,
        MihfId::from_static(src),
        MihfId::from_static(dst),
        Body::LinkUp(LinkUpIndication {
            link: LinkTupleId {
                link: LinkId {
                    link_type: LinkType::IEEE_802_11,
                    addr: LinkAddr::mac([2, 0, 0, 0, 0, 1]),
                },
                poa: None,
            },
            old_access_router: None,
            new_access_router: None,
            ip_renewal: None,
            mobility_management: None,
        }),
    )
}

/// xorshift64*: deterministic "randomness" for the lossy-network runs.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn per_mille(&mut self, p: u64) -> bool {
        self.next() % 1000 < p
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}
