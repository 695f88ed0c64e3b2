//! The MIH golden vector set: one message per primitive form, built with the
//! typed API. `conformance/vectors/mih/*.json` holds their bytes and decoded
//! JSON; the tests check both directions and Wireshark checks the bytes.

use bytes::Bytes;
use mihf::wire::message::*;
use mihf::wire::*;

fn id(s: &'static str) -> MihfId {
    MihfId::from_static(s)
}

const MN_MAC: [u8; 6] = [0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x01];
const POA_MAC: [u8; 6] = [0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x02];
const NEW_POA_MAC: [u8; 6] = [0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x03];

fn link_id() -> LinkId {
    LinkId {
        link_type: LinkType::IEEE_802_11,
        addr: LinkAddr::mac(MN_MAC),
    }
}

fn lte_link() -> LinkId {
    LinkId {
        link_type: LinkType::UMTS,
        addr: LinkAddr::Cell3g {
            plmn_id: [0x00, 0xf1, 0x10],
            cell_id: 0x0000_1234,
        },
    }
}

fn tuple(poa: Option<[u8; 6]>) -> LinkTupleId {
    LinkTupleId {
        link: link_id(),
        poa: poa.map(LinkAddr::mac),
    }
}

fn cos(cos_id: u8, value: u16) -> [CosValue; 1] {
    [CosValue { cos_id, value }]
}

fn qos() -> QosList {
    QosList::new(1, &cos(0, 20), &cos(0, 10), &cos(0, 50), &cos(0, 5), &[])
}

fn wifi() -> NetworkType {
    NetworkType {
        link_type: Some(LinkType::IEEE_802_11),
        subtype: None,
        type_ext: None,
    }
}

fn ipv4(a: [u8; 4]) -> TransportAddr {
    TransportAddr::ip(std::net::IpAddr::from(a))
}

/// One golden vector: file stem, description and message.
pub struct Vector {
    pub name: &'static str,
    pub description: &'static str,
    pub message: Message,
}

fn msg(mid: u16, tid: u16, body: Body) -> Message {
    Message::new(Mid(mid), tid, id("mihf-serving"), id("mihf-target"), body)
}

fn reply(mid: u16, tid: u16, body: Body) -> Message {
    Message::new(Mid(mid), tid, id("mihf-target"), id("mihf-serving"), body)
}

/// Every vector, in a stable order.
pub fn all() -> Vec<Vector> {
    let mut v = Vec::new();
    let mut add = |name, description, message| {
        v.push(Vector {
            name,
            description,
            message,
        })
    };

    add(
        "capability_discover.request",
        "MIH_Capability_Discover.request advertising events, commands, transports, a link address and MBB support",
        msg(
            0x1401,
            0x001,
            Body::CapabilityDiscoverRequest(CapabilityDiscoverRequest {
                link_addr_list: Some(List::from_items(&[NetTypeAddr {
                    net_type: wifi(),
                    addr: LinkAddr::mac(POA_MAC),
                }])),
                event_list: Some(EventList::LINK_UP | EventList::LINK_DOWN | EventList::LINK_GOING_DOWN),
                command_list: Some(CommandList::NET_HO | CommandList::LINK_GET_PARAMETERS),
                is_query_types: Some(IsQueryTypeList::BINARY_DATA),
                transports: Some(TransportList::UDP | TransportList::TCP),
                mbb_ho_support: Some(List::from_items(&[MbbHoSupp {
                    from: wifi(),
                    to: NetworkType {
                        link_type: Some(LinkType::UMTS),
                        subtype: None,
                        type_ext: None,
                    },
                    supported: true,
                }])),
            }),
        ),
    );
    add(
        "capability_discover.response",
        "MIH_Capability_Discover.response, Success, with events, commands and transports",
        reply(
            0x1801,
            0x001,
            Body::CapabilityDiscoverResponse(CapabilityDiscoverResponse {
                status: Status::SUCCESS,
                link_addr_list: None,
                event_list: Some(EventList::LINK_UP | EventList::LINK_DOWN),
                command_list: Some(CommandList::NET_HO),
                is_query_types: None,
                transports: Some(TransportList::UDP),
                mbb_ho_support: None,
            }),
        ),
    );
    add(
        "register.request",
        "MIH_Register.request for one 802.11 link",
        msg(
            0x1402,
            0x002,
            Body::RegisterRequest(RegisterRequest {
                link_ids: List::from_items(&[link_id()]),
                request_code: RegRequestCode::REGISTRATION,
            }),
        ),
    );
    add(
        "register.response",
        "MIH_Register.response, Success, valid for 3600 s",
        reply(
            0x1802,
            0x002,
            Body::RegisterResponse(RegisterResponse {
                status: Status::SUCCESS,
                valid_time_interval: Some(3600),
                odtone_time_interval: None,
            }),
        ),
    );
    add(
        "deregister.request",
        "MIH_DeRegister.request (no TLVs beyond the IDs)",
        msg(0x1403, 0x003, Body::DeRegisterRequest(DeRegisterRequest {})),
    );
    add(
        "deregister.response",
        "MIH_DeRegister.response, Success",
        reply(
            0x1803,
            0x003,
            Body::DeRegisterResponse(DeRegisterResponse {
                status: Status::SUCCESS,
            }),
        ),
    );
    add(
        "event_subscribe.request",
        "MIH_Event_Subscribe.request for Link_Up/Link_Down with a Link_Detected filter",
        msg(
            0x1404,
            0x004,
            Body::EventSubscribeRequest(EventSubscribeRequest {
                link: tuple(Some(POA_MAC)),
                events: EventList::LINK_UP | EventList::LINK_DOWN,
                config: Some(List::from_items(&[EvtCfgInfo::LinkDetCfg(
                    List::from_items(&[LinkDetCfg {
                        network_id: Some(OctetString::new(&b"edge"[..])),
                        sig_strength: Some(SigStrength::Dbm(-70)),
                        data_rate: None,
                    }]),
                )])),
            }),
        ),
    );
    add(
        "event_subscribe.response",
        "MIH_Event_Subscribe.response, Success",
        reply(
            0x1804,
            0x004,
            Body::EventSubscribeResponse(EventSubscribeResponse {
                status: Status::SUCCESS,
                link: tuple(Some(POA_MAC)),
                events: Some(EventList::LINK_UP | EventList::LINK_DOWN),
            }),
        ),
    );
    add(
        "event_unsubscribe.request",
        "MIH_Event_Unsubscribe.request for Link_Down",
        msg(
            0x1405,
            0x005,
            Body::EventUnsubscribeRequest(EventUnsubscribeRequest {
                link: tuple(None),
                events: EventList::LINK_DOWN,
            }),
        ),
    );
    add(
        "event_unsubscribe.response",
        "MIH_Event_Unsubscribe.response, Success",
        reply(
            0x1805,
            0x005,
            Body::EventUnsubscribeResponse(EventUnsubscribeResponse {
                status: Status::SUCCESS,
                link: tuple(None),
                events: Some(EventList::LINK_DOWN),
            }),
        ),
    );
    add(
        "link_detected.indication",
        "MIH_Link_Detected.indication for one 802.11 network",
        msg(
            0x2c01,
            0x006,
            Body::LinkDetected(LinkDetectedIndication {
                detected: List::from_items(&[LinkDetInfo {
                    link: tuple(Some(NEW_POA_MAC)),
                    network_id: OctetString::new(&b"edge-cell-2"[..]),
                    net_aux_id: OctetString::default(),
                    sig_strength: SigStrength::Percentage(80),
                    sinr: 25,
                    data_rate: 54_000,
                    mihcap: LinkMihcapFlag(0x0e),
                    net_caps: NetCaps(0x0000_0281),
                }]),
            }),
        ),
    );
    add(
        "link_up.indication",
        "MIH_Link_Up.indication with old/new access routers, IP renewal and mobility support",
        msg(
            0x2c02,
            0x007,
            Body::LinkUp(LinkUpIndication {
                link: tuple(Some(POA_MAC)),
                old_access_router: Some(LinkAddr::mac(POA_MAC)),
                new_access_router: Some(LinkAddr::mac(NEW_POA_MAC)),
                ip_renewal: Some(true),
                mobility_management: Some(IpMobMgmt::MOBILE_IPV6),
            }),
        ),
    );
    add(
        "link_down.indication",
        "MIH_Link_Down.indication, reason Packet Timeout",
        msg(
            0x2c03,
            0x008,
            Body::LinkDown(LinkDownIndication {
                link: tuple(Some(POA_MAC)),
                old_access_router: None,
                reason: LinkDnReason::PACKET_TIMEOUT,
            }),
        ),
    );
    add(
        "link_going_down.indication",
        "MIH_Link_Going_Down.indication in 500 ms, link parameter degrading",
        msg(
            0x2c06,
            0x009,
            Body::LinkGoingDown(LinkGoingDownIndication {
                link: tuple(Some(POA_MAC)),
                time_interval: 500,
                reason: LinkGdReason::LINK_PARAMETER_DEGRADING,
            }),
        ),
    );
    add(
        "link_handover_imminent.indication",
        "MIH_Link_Handover_Imminent.indication from one PoA to another",
        msg(
            0x2c07,
            0x00a,
            Body::LinkHandoverImminent(LinkHandoverImminentIndication {
                link: tuple(Some(POA_MAC)),
                new_link: tuple(Some(NEW_POA_MAC)),
                old_access_router: Some(LinkAddr::mac(POA_MAC)),
                new_access_router: Some(LinkAddr::mac(NEW_POA_MAC)),
            }),
        ),
    );
    add(
        "link_handover_complete.indication",
        "MIH_Link_Handover_Complete.indication, Success",
        msg(
            0x2c08,
            0x00b,
            Body::LinkHandoverComplete(LinkHandoverCompleteIndication {
                link: tuple(Some(POA_MAC)),
                new_link: tuple(Some(NEW_POA_MAC)),
                old_access_router: None,
                new_access_router: None,
                status: Status::SUCCESS,
            }),
        ),
    );
    add(
        "net_ho_commit.request",
        "MIH_Net_HO_Commit.request to a target PoA with assigned resources and a link action",
        msg(
            0x3408,
            0x00c,
            Body::NetHoCommitRequest(NetHoCommitRequest {
                link_type: LinkType::IEEE_802_11,
                targets: List::from_items(&[TgtNetInfo::Poa(LinkAddr::mac(NEW_POA_MAC))]),
                assigned_resources: AsgnResSet {
                    qos: qos(),
                    tsp: TspContainer::PredefCfgId(5),
                },
                time_interval: 100,
                link_actions: Some(List::from_items(&[LinkActionReq {
                    link: link_id(),
                    poa: Some(LinkAddr::mac(NEW_POA_MAC)),
                    action_type: 4,
                    attr: LinkAcAttr(0x02),
                    ex_time: 10,
                }])),
            }),
        ),
    );
    add(
        "net_ho_commit.response",
        "MIH_Net_HO_Commit.response, Success, with the link action result",
        reply(
            0x3808,
            0x00c,
            Body::NetHoCommitResponse(NetHoCommitResponse {
                status: Status::SUCCESS,
                link_type: Some(LinkType::IEEE_802_11),
                target: Some(TgtNetInfo::Poa(LinkAddr::mac(NEW_POA_MAC))),
                link_action_results: Some(List::from_items(&[LinkActionRsp {
                    link: link_id(),
                    result: 0,
                    scan: None,
                }])),
            }),
        ),
    );
    add(
        "n2n_ho_query_resources.request",
        "MIH_N2N_HO_Query_Resources.request with QoS query, config methods, access router and candidate links",
        msg(
            0x3406,
            0x00d,
            Body::N2nHoQueryResourcesRequest(N2nHoQueryResourcesRequest {
                mn_mihf_id: None,
                query: qos(),
                ip_cfg_methods: Some(IpCfgMethods::IPV4_DHCP),
                dhcp_server: Some(ipv4([192, 0, 2, 53])),
                fa_addr: None,
                access_router: Some(ipv4([192, 0, 2, 1])),
                link_ids: Some(List::from_items(&[lte_link()])),
            }),
        ),
    );
    add(
        "n2n_ho_query_resources.request_minimal",
        "MIH_N2N_HO_Query_Resources.request with only the QoS query and the candidate links",
        msg(
            0x3406,
            0x010,
            Body::N2nHoQueryResourcesRequest(N2nHoQueryResourcesRequest {
                mn_mihf_id: None,
                query: qos(),
                ip_cfg_methods: None,
                dhcp_server: None,
                fa_addr: None,
                access_router: None,
                link_ids: Some(List::from_items(&[lte_link(), link_id()])),
            }),
        ),
    );
    add(
        "n2n_ho_query_resources.response",
        "MIH_N2N_HO_Query_Resources.response, Success, resources available",
        reply(
            0x3806,
            0x00d,
            Body::N2nHoQueryResourcesResponse(N2nHoQueryResourcesResponse {
                status: Status::SUCCESS,
                resource_status: Some(true),
                preferred_links: None,
            }),
        ),
    );
    add(
        "n2n_ho_commit.request",
        "MIH_N2N_HO_Commit.request with ACK-Req (frame F1 of the oracle smoke test)",
        {
            let mut m = msg(
                0x3409,
                0x123,
                Body::N2nHoCommitRequest(N2nHoCommitRequest {
                    mn_mihf_id: id("mn-mihf"),
                    mn_link_id: link_id(),
                    poa: LinkAddr::mac(POA_MAC),
                    requested_resources: Some(ReqResSet {
                        qos: qos(),
                        tsp: TspContainer::Null,
                        ho_cause: HoCause::NO_RESOURCE,
                    }),
                }),
            );
            m.header.ack_req = true;
            m
        },
    );
    add(
        "n2n_ho_commit.ack",
        "Pure acknowledgement of MIH_N2N_HO_Commit.request (frame F2 of the oracle smoke test)",
        {
            let mut m = reply(0x3409, 0x123, Body::Ack);
            m.header.ack_rsp = true;
            m
        },
    );
    add(
        "n2n_ho_commit.response",
        "MIH_N2N_HO_Commit.response, Success (frame F3 of the oracle smoke test)",
        reply(
            0x3809,
            0x123,
            Body::N2nHoCommitResponse(N2nHoCommitResponse {
                status: Status::SUCCESS,
                mn_mihf_id: id("mn-mihf"),
                link: Some(tuple(None)),
                assigned_resources: Some(AsgnResSet {
                    qos: qos(),
                    tsp: TspContainer::PredefCfgId(5),
                }),
            }),
        ),
    );
    add(
        "n2n_ho_commit.response_rejected",
        "MIH_N2N_HO_Commit.response, Rejected (no capacity at the destination)",
        reply(
            0x3809,
            0x124,
            Body::N2nHoCommitResponse(N2nHoCommitResponse {
                status: Status::REJECTED,
                mn_mihf_id: id("mn-mihf"),
                link: None,
                assigned_resources: None,
            }),
        ),
    );
    add(
        "n2n_ho_commit.indication",
        "MIH_N2N_HO_Commit.indication (the local SAP form of the request)",
        msg(
            0x3c09,
            0x125,
            Body::N2nHoCommitRequest(N2nHoCommitRequest {
                mn_mihf_id: id("mn-mihf"),
                mn_link_id: link_id(),
                poa: LinkAddr::mac(POA_MAC),
                requested_resources: Some(ReqResSet {
                    qos: qos(),
                    tsp: TspContainer::Null,
                    ho_cause: HoCause::EXPLICIT_DISCONNECT,
                }),
            }),
        ),
    );
    add(
        "n2n_ho_commit.confirm",
        "MIH_N2N_HO_Commit.confirm (the local SAP form of the response)",
        reply(
            0x3009,
            0x125,
            Body::N2nHoCommitResponse(N2nHoCommitResponse {
                status: Status::SUCCESS,
                mn_mihf_id: id("mn-mihf"),
                link: None,
                assigned_resources: None,
            }),
        ),
    );
    add(
        "n2n_ho_complete.request",
        "MIH_N2N_HO_Complete.request, handover result Success",
        msg(
            0x340b,
            0x00e,
            Body::N2nHoCompleteRequest(N2nHoCompleteRequest {
                mn_mihf_id: id("mn-mihf"),
                link: tuple(Some(POA_MAC)),
                new_link: tuple(Some(NEW_POA_MAC)),
                result: HoResult::SUCCESS,
            }),
        ),
    );
    add(
        "n2n_ho_complete.response",
        "MIH_N2N_HO_Complete.response, Success, resources released",
        reply(
            0x380b,
            0x00e,
            Body::N2nHoCompleteResponse(N2nHoCompleteResponse {
                status: Status::SUCCESS,
                mn_mihf_id: id("mn-mihf"),
                link: tuple(Some(POA_MAC)),
                new_link: tuple(Some(NEW_POA_MAC)),
                resource_retention: Some(false),
            }),
        ),
    );
    add(
        "vendor_tlvs.n2n_ho_commit.request",
        "MIH_N2N_HO_Commit.request carrying vendor-specific TLVs (type 100) of 0, 127, 128, 129, 255 and 256 octets around its own TLVs; they are kept and re-emitted in place",
        {
            let mut m = msg(
                0x3409,
                0x126,
                Body::N2nHoCommitRequest(N2nHoCommitRequest {
                    mn_mihf_id: id("mn-mihf"),
                    mn_link_id: link_id(),
                    poa: LinkAddr::mac(POA_MAC),
                    requested_resources: None,
                }),
            );
            // Vendor TLVs at payload positions 2, 4 and 6 (between the known
            // TLVs) and a run of three after them.
            let mut tlvs = Vec::new();
            for len in [0usize, 127, 128, 129, 255, 256] {
                let mut raw = bytes::BytesMut::new();
                raw.extend_from_slice(&[100u8]);
                encode_length(len, &mut raw);
                let mut value = b"ODT".to_vec();
                value.resize(len, 0x5a);
                value.truncate(len);
                raw.extend_from_slice(&value);
                tlvs.push(raw.freeze());
            }
            for (position, range) in [(2, 0..1), (4, 1..2), (6, 2..3), (8, 3..6)] {
                let raw: Vec<u8> = tlvs[range].concat();
                m.extra.push(RawTlvs::new(position, Bytes::from(raw)).unwrap());
            }
            m
        },
    );
    add(
        "unknown.get_information.response",
        "An MIH_Get_Information.response (MIIS, not typed by this codec) with a 303-octet TLV: kept and re-emitted byte for byte",
        {
            let mut m = reply(0x4801, 0x00f, Body::Unknown);
            // A LIST of one 300-octet OCTET_STRING (frame F5 of the oracle smoke test).
            let mut value = vec![0x01, 0x81, 0xac];
            value.extend(std::iter::repeat_n(0x55u8, 300));
            let mut raw = vec![48u8, 0x81, 0xaf];
            raw.extend_from_slice(&value);
            // Status then the 303-octet TLV 48: one run of unknown TLVs.
            let mut run = vec![3u8, 1, 0];
            run.extend_from_slice(&raw);
            m.extra.push(RawTlvs::new(2, Bytes::from(run)).unwrap());
            m
        },
    );
    v
}

/// The vector files under `conformance/vectors/mih/`, sorted by name:
/// `(file stem, parsed JSON)`.
pub fn load_files() -> Vec<(String, serde_json::Value)> {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("vectors/mih");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("conformance/vectors/mih exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("vector file is readable");
            let stem = p
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            (
                stem,
                serde_json::from_str(&text).expect("vector file is JSON"),
            )
        })
        .collect()
}
