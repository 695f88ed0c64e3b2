//! Property tests for the MIH wire codec.
//!
//! * Every Annex F data type: `from_bytes(to_bytes(v)) == v`,
//!   `encoded_len() == to_bytes().len()`, a strict prefix or an extra octet
//!   is rejected, and decoding from a sub-slice of a larger buffer works.
//! * Every typed [`Body`] (plus `Ack` and `Unknown`) inside a [`Message`]
//!   with arbitrary flags, IDs and unknown TLVs interleaved at consistent
//!   positions: emit, parse, decode gives the original back and re-emits the
//!   same octets.
//! * Arbitrary, structured-random and mutated inputs never panic any decoder
//!   (frame, message, TLV walk, length rule, `TlvValue`, every data type), and
//!   whatever does decode re-emits to something that decodes to itself.

use std::fmt::Debug;

use bytes::{BufMut, Bytes, BytesMut};
use mihf::wire::message::*;
use mihf::wire::*;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::{Union, ValueTree};
use proptest::test_runner::{Config as ProptestConfig, TestRunner};

type S<T> = BoxedStrategy<T>;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------
// Strategies: octets and primitives

/// Octet strings: mostly short, sometimes up to `max`, and (when `max`
/// allows) sometimes around 128 so the two-octet length form is exercised.
fn octets(max: usize) -> S<Bytes> {
    let short = max.min(8);
    if max >= 140 {
        prop_oneof![
            12 => vec(any::<u8>(), 0..=short),
            3 => vec(any::<u8>(), 0..=max.min(40)),
            1 => vec(any::<u8>(), 120..=140),
            1 => vec(any::<u8>(), 0..=max),
        ]
        .prop_map(Bytes::from)
        .boxed()
    } else {
        prop_oneof![
            4 => vec(any::<u8>(), 0..=short),
            1 => vec(any::<u8>(), 0..=max),
        ]
        .prop_map(Bytes::from)
        .boxed()
    }
}

fn mihf_id() -> S<MihfId> {
    prop_oneof![
        8 => vec(any::<u8>(), 0..=16),
        1 => vec(any::<u8>(), 0..=MihfId::MAX_LEN),
        1 => vec(any::<u8>(), 126..=MihfId::MAX_LEN),
    ]
    .prop_map(|v| MihfId(Bytes::from(v)))
    .boxed()
}

fn octet_string() -> S<OctetString> {
    octets(160).prop_map(OctetString).boxed()
}

fn small_octet_string() -> S<OctetString> {
    octets(12).prop_map(OctetString).boxed()
}

/// List of 0..4 elements; built either with `from_items` or `collect`.
fn list<T: Value + Debug + Clone + 'static>(s: S<T>) -> S<List<T>> {
    (vec(s, 0..4), any::<bool>())
        .prop_map(|(v, collect)| {
            if collect {
                v.into_iter().collect()
            } else {
                List::from_items(&v)
            }
        })
        .boxed()
}

fn opt<T: Debug + Clone + 'static>(s: S<T>) -> S<Option<T>> {
    prop::option::of(s).boxed()
}

// u8 newtypes (any value, known or not).
fn status() -> S<Status> {
    any::<u8>().prop_map(Status).boxed()
}
fn link_type() -> S<LinkType> {
    any::<u8>().prop_map(LinkType).boxed()
}
fn reg_request_code() -> S<RegRequestCode> {
    any::<u8>().prop_map(RegRequestCode).boxed()
}
fn link_dn_reason() -> S<LinkDnReason> {
    any::<u8>().prop_map(LinkDnReason).boxed()
}
fn link_gd_reason() -> S<LinkGdReason> {
    any::<u8>().prop_map(LinkGdReason).boxed()
}
fn ho_status() -> S<HoStatus> {
    any::<u8>().prop_map(HoStatus).boxed()
}
fn ho_result() -> S<HoResult> {
    any::<u8>().prop_map(HoResult).boxed()
}
fn ho_cause() -> S<HoCause> {
    any::<u8>().prop_map(HoCause).boxed()
}

// Bitmaps (any integer).
fn event_list() -> S<EventList> {
    any::<u32>().prop_map(EventList).boxed()
}
fn command_list() -> S<CommandList> {
    any::<u32>().prop_map(CommandList).boxed()
}
fn is_query_type_list() -> S<IsQueryTypeList> {
    any::<u64>().prop_map(IsQueryTypeList).boxed()
}
fn transport_list() -> S<TransportList> {
    any::<u16>().prop_map(TransportList).boxed()
}
fn ip_mob_mgmt() -> S<IpMobMgmt> {
    any::<u16>().prop_map(IpMobMgmt).boxed()
}
fn ip_cfg_methods() -> S<IpCfgMethods> {
    any::<u32>().prop_map(IpCfgMethods).boxed()
}
fn link_subtype() -> S<LinkSubtype> {
    any::<u64>().prop_map(LinkSubtype).boxed()
}
fn link_mihcap_flag() -> S<LinkMihcapFlag> {
    any::<u8>().prop_map(LinkMihcapFlag).boxed()
}
fn net_caps() -> S<NetCaps> {
    any::<u32>().prop_map(NetCaps).boxed()
}
fn link_ac_attr() -> S<LinkAcAttr> {
    any::<u8>().prop_map(LinkAcAttr).boxed()
}

// ---------------------------------------------------------------------------
// Strategies: addresses and identifiers

/// 0..=20 octets, either inline (`ShortBytes::new`: inline up to 16, shared
/// beyond) or forced into the shared form whatever the length.
fn short_bytes() -> S<ShortBytes> {
    (vec(any::<u8>(), 0..=20), any::<bool>())
        .prop_map(|(v, shared)| {
            if shared {
                ShortBytes::Shared(Bytes::from(v))
            } else {
                ShortBytes::new(&v)
            }
        })
        .boxed()
}

fn transport_addr() -> S<TransportAddr> {
    prop_oneof![
        4 => (any::<u16>(), short_bytes()).prop_map(|(family, addr)| TransportAddr { family, addr }),
        1 => any::<[u8; 6]>().prop_map(TransportAddr::mac),
        1 => any::<[u8; 4]>().prop_map(|a| TransportAddr::ip(a.into())),
        1 => any::<[u8; 16]>().prop_map(|a| TransportAddr::ip(a.into())),
    ]
    .boxed()
}

fn link_addr() -> S<LinkAddr> {
    prop_oneof![
        transport_addr().prop_map(LinkAddr::Mac),
        (any::<[u8; 3]>(), any::<u32>())
            .prop_map(|(plmn_id, cell_id)| LinkAddr::Cell3g { plmn_id, cell_id }),
        (any::<[u8; 3]>(), any::<u16>(), any::<u16>())
            .prop_map(|(plmn_id, lac, ci)| LinkAddr::Cell2g { plmn_id, lac, ci }),
        octets(20).prop_map(LinkAddr::ThreeGpp),
        octets(20).prop_map(LinkAddr::ThreeGpp2),
        octets(140).prop_map(LinkAddr::OtherL2),
    ]
    .boxed()
}

fn link_id() -> S<LinkId> {
    (link_type(), link_addr())
        .prop_map(|(link_type, addr)| LinkId { link_type, addr })
        .boxed()
}

fn link_tuple_id() -> S<LinkTupleId> {
    (link_id(), opt(link_addr()))
        .prop_map(|(link, poa)| LinkTupleId { link, poa })
        .boxed()
}

// ---------------------------------------------------------------------------
// Strategies: resources

fn cos_value() -> S<CosValue> {
    (any::<u8>(), any::<u16>())
        .prop_map(|(cos_id, value)| CosValue { cos_id, value })
        .boxed()
}

/// QOS_LIST built through its own decoder from five encoded LIST(COS), so
/// the strategy does not depend on how the type stores them.
fn qos_list() -> S<QosList> {
    let cos = || vec(cos_value(), 0..4);
    (any::<u8>(), (cos(), cos(), cos(), cos(), cos()))
        .prop_map(|(num_cos_types, (a, b, c, d, e))| {
            let mut raw = BytesMut::new();
            raw.put_u8(num_cos_types);
            for items in [a, b, c, d, e] {
                List::<CosValue>::from_items(&items).encode(&mut raw);
            }
            QosList::from_bytes(&raw.freeze()).expect("a well-formed QOS_LIST")
        })
        .boxed()
}

fn tsp_container() -> S<TspContainer> {
    prop_oneof![
        Just(TspContainer::Null),
        any::<u8>().prop_map(TspContainer::PredefCfgId),
        octets(140).prop_map(|b| TspContainer::Carrier(OctetString(b))),
    ]
    .boxed()
}

fn req_res_set() -> S<ReqResSet> {
    (qos_list(), tsp_container(), ho_cause())
        .prop_map(|(qos, tsp, ho_cause)| ReqResSet { qos, tsp, ho_cause })
        .boxed()
}

fn asgn_res_set() -> S<AsgnResSet> {
    (qos_list(), tsp_container())
        .prop_map(|(qos, tsp)| AsgnResSet { qos, tsp })
        .boxed()
}

// ---------------------------------------------------------------------------
// Strategies: info.rs compound types

fn network_type() -> S<NetworkType> {
    (
        opt(link_type()),
        opt(link_subtype()),
        opt(small_octet_string()),
    )
        .prop_map(|(link_type, subtype, type_ext)| NetworkType {
            link_type,
            subtype,
            type_ext,
        })
        .boxed()
}

fn net_type_addr() -> S<NetTypeAddr> {
    (network_type(), link_addr())
        .prop_map(|(net_type, addr)| NetTypeAddr { net_type, addr })
        .boxed()
}

fn mbb_ho_supp() -> S<MbbHoSupp> {
    (network_type(), network_type(), any::<bool>())
        .prop_map(|(from, to, supported)| MbbHoSupp {
            from,
            to,
            supported,
        })
        .boxed()
}

fn sig_strength() -> S<SigStrength> {
    prop_oneof![
        any::<i8>().prop_map(SigStrength::Dbm),
        any::<u8>().prop_map(SigStrength::Percentage),
    ]
    .boxed()
}

fn link_det_info() -> S<LinkDetInfo> {
    (
        link_tuple_id(),
        small_octet_string(),
        small_octet_string(),
        sig_strength(),
        any::<u16>(),
        any::<u32>(),
        link_mihcap_flag(),
        net_caps(),
    )
        .prop_map(
            |(link, network_id, net_aux_id, sig_strength, sinr, data_rate, mihcap, net_caps)| {
                LinkDetInfo {
                    link,
                    network_id,
                    net_aux_id,
                    sig_strength,
                    sinr,
                    data_rate,
                    mihcap,
                    net_caps,
                }
            },
        )
        .boxed()
}

fn link_det_cfg() -> S<LinkDetCfg> {
    (
        opt(small_octet_string()),
        opt(sig_strength()),
        opt(any::<u32>().boxed()),
    )
        .prop_map(|(network_id, sig_strength, data_rate)| LinkDetCfg {
            network_id,
            sig_strength,
            data_rate,
        })
        .boxed()
}

fn link_param_type() -> S<LinkParamType> {
    (any::<u8>(), any::<u8>())
        .prop_map(|(family, code)| LinkParamType { family, code })
        .boxed()
}

fn threshold() -> S<Threshold> {
    (any::<u16>(), any::<u8>())
        .prop_map(|(value, x_dir)| Threshold { value, x_dir })
        .boxed()
}

fn link_cfg_param() -> S<LinkCfgParam> {
    (
        link_param_type(),
        opt(any::<u16>().boxed()),
        any::<u8>(),
        list(threshold()),
    )
        .prop_map(
            |(param_type, timer_interval, th_action, thresholds)| LinkCfgParam {
                param_type,
                timer_interval,
                th_action,
                thresholds,
            },
        )
        .boxed()
}

fn evt_cfg_info() -> S<EvtCfgInfo> {
    prop_oneof![
        list(link_det_cfg()).prop_map(EvtCfgInfo::LinkDetCfg),
        list(link_cfg_param()).prop_map(EvtCfgInfo::LinkCfgParam),
    ]
    .boxed()
}

fn tgt_net_info() -> S<TgtNetInfo> {
    prop_oneof![
        (small_octet_string(), opt(small_octet_string())).prop_map(|(network_id, net_aux_id)| {
            TgtNetInfo::Network {
                network_id,
                net_aux_id,
            }
        }),
        link_addr().prop_map(TgtNetInfo::Poa),
    ]
    .boxed()
}

fn null_bool_or<T: Debug + Clone + 'static>(s: S<T>) -> S<NullBoolOr<T>> {
    prop_oneof![
        Just(NullBoolOr::Null),
        any::<bool>().prop_map(NullBoolOr::Bool),
        s.prop_map(NullBoolOr::Value),
    ]
    .boxed()
}

fn link_poa_list() -> S<LinkPoaList> {
    (link_id(), list(link_addr()))
        .prop_map(|(link, poas)| LinkPoaList { link, poas })
        .boxed()
}

fn rq_result() -> S<RqResult> {
    (
        link_poa_list(),
        qos_list(),
        null_bool_or(ip_cfg_methods()),
        null_bool_or(transport_addr()),
        null_bool_or(transport_addr()),
        null_bool_or(transport_addr()),
    )
        .prop_map(
            |(link_poa_list, qos, ip_cfg_methods, dhcp_server, fa_addr, access_router)| RqResult {
                link_poa_list,
                qos,
                ip_cfg_methods,
                dhcp_server,
                fa_addr,
                access_router,
            },
        )
        .boxed()
}

fn link_action_req() -> S<LinkActionReq> {
    (
        link_id(),
        opt(link_addr()),
        any::<u8>(),
        link_ac_attr(),
        any::<u16>(),
    )
        .prop_map(|(link, poa, action_type, attr, ex_time)| LinkActionReq {
            link,
            poa,
            action_type,
            attr,
            ex_time,
        })
        .boxed()
}

fn link_scan_rsp() -> S<LinkScanRsp> {
    (link_addr(), small_octet_string(), sig_strength())
        .prop_map(|(addr, network_id, sig_strength)| LinkScanRsp {
            addr,
            network_id,
            sig_strength,
        })
        .boxed()
}

fn link_action_rsp() -> S<LinkActionRsp> {
    (link_id(), any::<u8>(), opt(list(link_scan_rsp())))
        .prop_map(|(link, result, scan)| LinkActionRsp { link, result, scan })
        .boxed()
}

// ---------------------------------------------------------------------------
// Data type properties

fn fail(what: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(what.to_string())
}

/// The value properties: round trip, length, strict prefix and extra octet
/// rejected, decoding from inside a larger buffer.
fn check_value<T: Value + PartialEq + Debug>(v: &T) -> Result<(), TestCaseError> {
    let b = v.to_bytes();
    prop_assert_eq!(v.encoded_len(), b.len(), "encoded_len of {:?}", v);
    let back = T::from_bytes(&b).map_err(|e| fail(format!("{e} decoding {b:02x?} ({v:?})")))?;
    prop_assert_eq!(&back, v);
    prop_assert_eq!(back.to_bytes(), b.clone());

    // The same octets in the middle of a larger buffer.
    let mut padded = BytesMut::new();
    padded.put_slice(&[0xa5, 0x5a]);
    padded.put_slice(&b);
    padded.put_u8(0xff);
    let padded = padded.freeze();
    let inner = T::decode_exact(&padded, &padded[2..2 + b.len()])
        .map_err(|e| fail(format!("{e} decoding inside a buffer ({v:?})")))?;
    prop_assert_eq!(&inner, v);

    // Every encoding is self-delimiting: a strict prefix cannot decode and
    // an extra octet is trailing garbage.
    if !b.is_empty() {
        let cut = b.len() - 1;
        prop_assert!(
            T::from_bytes(&b.slice(..cut)).is_err(),
            "prefix of {:02x?} decoded",
            b
        );
    }
    let mut longer = BytesMut::from(&b[..]);
    longer.put_u8(0);
    prop_assert!(T::from_bytes(&longer.freeze()).is_err());
    Ok(())
}

macro_rules! value_round_trips {
    ($($name:ident : $t:ty = $s:expr;)*) => {
        proptest! {
            #![proptest_config(config(256))]
            $(
                #[test]
                fn $name(v in $s) {
                    check_value::<$t>(&v)?;
                }
            )*
        }
    };
}

value_round_trips! {
    value_u8: u8 = any::<u8>();
    value_u16: u16 = any::<u16>();
    value_u32: u32 = any::<u32>();
    value_bool: bool = any::<bool>();
    value_octet_string_long: OctetString = octets(300).prop_map(OctetString);
    value_status: Status = status();
    value_link_type: LinkType = link_type();
    value_reg_request_code: RegRequestCode = reg_request_code();
    value_link_dn_reason: LinkDnReason = link_dn_reason();
    value_link_gd_reason: LinkGdReason = link_gd_reason();
    value_ho_status: HoStatus = ho_status();
    value_ho_result: HoResult = ho_result();
    value_ho_cause: HoCause = ho_cause();
    value_event_list: EventList = event_list();
    value_command_list: CommandList = command_list();
    value_is_query_type_list: IsQueryTypeList = is_query_type_list();
    value_transport_list: TransportList = transport_list();
    value_ip_mob_mgmt: IpMobMgmt = ip_mob_mgmt();
    value_ip_cfg_methods: IpCfgMethods = ip_cfg_methods();
    value_link_subtype: LinkSubtype = link_subtype();
    value_link_mihcap_flag: LinkMihcapFlag = link_mihcap_flag();
    value_net_caps: NetCaps = net_caps();
    value_link_ac_attr: LinkAcAttr = link_ac_attr();
    value_mihf_id: MihfId = mihf_id();
    value_octet_string: OctetString = octet_string();
    value_transport_addr: TransportAddr = transport_addr();
    value_link_addr: LinkAddr = link_addr();
    value_link_id: LinkId = link_id();
    value_link_tuple_id: LinkTupleId = link_tuple_id();
    value_cos_value: CosValue = cos_value();
    value_qos_list: QosList = qos_list();
    value_tsp_container: TspContainer = tsp_container();
    value_req_res_set: ReqResSet = req_res_set();
    value_asgn_res_set: AsgnResSet = asgn_res_set();
    value_network_type: NetworkType = network_type();
    value_net_type_addr: NetTypeAddr = net_type_addr();
    value_mbb_ho_supp: MbbHoSupp = mbb_ho_supp();
    value_sig_strength: SigStrength = sig_strength();
    value_link_det_info: LinkDetInfo = link_det_info();
    value_link_det_cfg: LinkDetCfg = link_det_cfg();
    value_link_param_type: LinkParamType = link_param_type();
    value_threshold: Threshold = threshold();
    value_link_cfg_param: LinkCfgParam = link_cfg_param();
    value_evt_cfg_info: EvtCfgInfo = evt_cfg_info();
    value_tgt_net_info: TgtNetInfo = tgt_net_info();
    value_null_bool_or_ip_cfg: NullBoolOr<IpCfgMethods> = null_bool_or(ip_cfg_methods());
    value_null_bool_or_transport: NullBoolOr<TransportAddr> = null_bool_or(transport_addr());
    value_link_poa_list: LinkPoaList = link_poa_list();
    value_rq_result: RqResult = rq_result();
    value_link_action_req: LinkActionReq = link_action_req();
    value_link_scan_rsp: LinkScanRsp = link_scan_rsp();
    value_link_action_rsp: LinkActionRsp = link_action_rsp();
    value_option_link_addr: Option<LinkAddr> = opt(link_addr());
    value_option_octet_string: Option<OctetString> = opt(small_octet_string());
    value_list_cos_value: List<CosValue> = list(cos_value());
    value_list_link_addr: List<LinkAddr> = list(link_addr());
    value_list_link_id: List<LinkId> = list(link_id());
    value_list_threshold: List<Threshold> = list(threshold());
    value_list_net_type_addr: List<NetTypeAddr> = list(net_type_addr());
    value_list_mbb_ho_supp: List<MbbHoSupp> = list(mbb_ho_supp());
    value_list_link_det_info: List<LinkDetInfo> = list(link_det_info());
    value_list_link_det_cfg: List<LinkDetCfg> = list(link_det_cfg());
    value_list_link_cfg_param: List<LinkCfgParam> = list(link_cfg_param());
    value_list_evt_cfg_info: List<EvtCfgInfo> = list(evt_cfg_info());
    value_list_tgt_net_info: List<TgtNetInfo> = list(tgt_net_info());
    value_list_rq_result: List<RqResult> = list(rq_result());
    value_list_link_action_req: List<LinkActionReq> = list(link_action_req());
    value_list_link_scan_rsp: List<LinkScanRsp> = list(link_scan_rsp());
    value_list_link_action_rsp: List<LinkActionRsp> = list(link_action_rsp());
    value_list_of_lists: List<List<CosValue>> = list(list(cos_value()));
}

/// `T::default()` is a value like any other: it must encode to something
/// that decodes back to it.
fn check_default<T: Value + Default + PartialEq + Debug>() {
    let v = T::default();
    let b = v.to_bytes();
    assert_eq!(
        v.encoded_len(),
        b.len(),
        "{}::default() encoded_len",
        T::NAME
    );
    match T::from_bytes(&b) {
        Ok(w) => assert_eq!(w, v, "{}::default() round trip", T::NAME),
        Err(e) => panic!(
            "{}::default() = {v:?} encodes to {b:02x?}, which does not decode: {e}",
            T::NAME
        ),
    }
}

#[test]
fn default_values_round_trip() {
    check_default::<Status>();
    check_default::<LinkType>();
    check_default::<HoCause>();
    check_default::<EventList>();
    check_default::<IsQueryTypeList>();
    check_default::<LinkSubtype>();
    check_default::<NetCaps>();
    check_default::<MihfId>();
    check_default::<OctetString>();
    check_default::<List<CosValue>>();
    check_default::<List<RqResult>>();
    check_default::<TspContainer>();
    check_default::<NullBoolOr<TransportAddr>>();
    check_default::<QosList>();
    check_default::<ReqResSet>();
    check_default::<AsgnResSet>();
}

// ---------------------------------------------------------------------------
// TlvValue: one strategy arm per typed TLV type

fn tlv_value_arms() -> Vec<S<TlvValue>> {
    use TlvValue as V;
    vec![
        mihf_id().prop_map(V::SourceMihfId).boxed(),
        mihf_id().prop_map(V::DestinationMihfId).boxed(),
        status().prop_map(V::Status).boxed(),
        link_type().prop_map(V::LinkType).boxed(),
        event_list().prop_map(V::EventList).boxed(),
        command_list().prop_map(V::CommandList).boxed(),
        is_query_type_list().prop_map(V::IsQueryTypeList).boxed(),
        transport_list().prop_map(V::TransportList).boxed(),
        list(net_type_addr()).prop_map(V::LinkAddressList).boxed(),
        list(mbb_ho_supp()).prop_map(V::MbbHoSupport).boxed(),
        reg_request_code().prop_map(V::RegisterRequestCode).boxed(),
        any::<u32>().prop_map(V::ValidTimeInterval).boxed(),
        link_tuple_id().prop_map(V::LinkIdentifier).boxed(),
        link_tuple_id().prop_map(V::NewLinkIdentifier).boxed(),
        link_addr().prop_map(V::OldAccessRouter).boxed(),
        link_addr().prop_map(V::NewAccessRouter).boxed(),
        any::<bool>().prop_map(V::IpRenewalFlag).boxed(),
        ip_mob_mgmt().prop_map(V::MobilityManagementSupport).boxed(),
        ip_cfg_methods().prop_map(V::IpConfigurationMethods).boxed(),
        link_dn_reason().prop_map(V::LinkDownReason).boxed(),
        any::<u16>().prop_map(V::TimeInterval).boxed(),
        link_gd_reason().prop_map(V::LinkGoingDownReason).boxed(),
        list(link_id()).prop_map(V::LinkIdentifierList).boxed(),
        list(rq_result()).prop_map(V::PreferredLinkList).boxed(),
        qos_list().prop_map(V::HandoverResourceQueryList).boxed(),
        ho_status().prop_map(V::HandoverStatus).boxed(),
        transport_addr().prop_map(V::AccessRouterAddress).boxed(),
        transport_addr().prop_map(V::DhcpServerAddress).boxed(),
        transport_addr().prop_map(V::FaAddress).boxed(),
        list(link_action_req()).prop_map(V::LinkActionsList).boxed(),
        list(link_action_rsp())
            .prop_map(V::LinkActionsResultList)
            .boxed(),
        ho_result().prop_map(V::HandoverResult).boxed(),
        any::<bool>().prop_map(V::ResourceStatus).boxed(),
        any::<bool>().prop_map(V::ResourceRetentionStatus).boxed(),
        mihf_id().prop_map(V::MnMihfId).boxed(),
        any::<bool>().prop_map(V::QueryResourceReportFlag).boxed(),
        list(evt_cfg_info())
            .prop_map(V::EventConfigurationInfoList)
            .boxed(),
        tgt_net_info().prop_map(V::TargetNetworkInfo).boxed(),
        list(tgt_net_info())
            .prop_map(V::TargetNetworkInfoList)
            .boxed(),
        asgn_res_set().prop_map(V::AssignedResourceSet).boxed(),
        list(link_det_info())
            .prop_map(V::LinkDetectedInfoList)
            .boxed(),
        link_id().prop_map(V::MnLinkId).boxed(),
        link_addr().prop_map(V::Poa).boxed(),
        any::<bool>()
            .prop_map(V::UnauthenticatedInformationRequest)
            .boxed(),
        network_type().prop_map(V::NetworkType).boxed(),
        req_res_set().prop_map(V::RequestedResourceSet).boxed(),
    ]
}

fn tlv_value() -> S<TlvValue> {
    Union::new(tlv_value_arms()).boxed()
}

fn emit_tlv_value(v: &TlvValue) -> Bytes {
    let mut out = BytesMut::new();
    v.emit(&mut out);
    out.freeze()
}

/// Every TLV type that `TlvValue::decode` types has an arm above (a type is
/// typed when decoding an empty value does not give `Ok(None)`: every typed
/// value needs at least one octet).
#[test]
fn tlv_value_strategy_covers_every_typed_tlv() {
    let empty = Bytes::new();
    let typed: Vec<u8> = (0..=255u8)
        .filter(|&ty| TlvValue::decode(ty, &empty, &empty[..]) != Ok(None))
        .collect();
    let mut runner = TestRunner::deterministic();
    let mut covered: Vec<u8> = tlv_value_arms()
        .iter()
        .map(|s| s.new_tree(&mut runner).unwrap().current().tlv_type())
        .collect();
    covered.sort_unstable();
    covered.dedup();
    assert_eq!(covered, typed);
}

proptest! {
    #![proptest_config(config(512))]

    /// Emit a typed TLV, walk it, decode it by type: the same value, and the
    /// same octets again.
    #[test]
    fn tlv_value_round_trip(v in tlv_value()) {
        let raw = emit_tlv_value(&v);
        let mut it = TlvIter::new(&raw);
        let tlv = it.next().ok_or_else(|| fail("no TLV"))?;
        prop_assert!(it.next().is_none());
        prop_assert!(it.error().is_none());
        prop_assert_eq!(tlv.ty, v.tlv_type());
        prop_assert_eq!(tlv.raw.len(), raw.len());
        let back = TlvValue::decode(tlv.ty, &raw, tlv.value)
            .map_err(|e| fail(format!("{e}: {v:?}")))?;
        prop_assert_eq!(back.as_ref(), Some(&v));
        prop_assert_eq!(emit_tlv_value(back.as_ref().unwrap()), raw);
    }
}

// ---------------------------------------------------------------------------
// Strategies: bodies and messages

fn capability_discover_request() -> S<CapabilityDiscoverRequest> {
    (
        opt(list(net_type_addr())),
        opt(event_list()),
        opt(command_list()),
        opt(is_query_type_list()),
        opt(transport_list()),
        opt(list(mbb_ho_supp())),
    )
        .prop_map(|(a, b, c, d, e, f)| CapabilityDiscoverRequest {
            link_addr_list: a,
            event_list: b,
            command_list: c,
            is_query_types: d,
            transports: e,
            mbb_ho_support: f,
        })
        .boxed()
}

fn capability_discover_response() -> S<CapabilityDiscoverResponse> {
    (status(), capability_discover_request())
        .prop_map(|(status, r)| CapabilityDiscoverResponse {
            status,
            link_addr_list: r.link_addr_list,
            event_list: r.event_list,
            command_list: r.command_list,
            is_query_types: r.is_query_types,
            transports: r.transports,
            mbb_ho_support: r.mbb_ho_support,
        })
        .boxed()
}

fn bodies() -> Vec<S<Body>> {
    vec![
        capability_discover_request()
            .prop_map(Body::CapabilityDiscoverRequest)
            .boxed(),
        capability_discover_response()
            .prop_map(Body::CapabilityDiscoverResponse)
            .boxed(),
        (list(link_id()), reg_request_code())
            .prop_map(|(link_ids, request_code)| {
                Body::RegisterRequest(RegisterRequest {
                    link_ids,
                    request_code,
                })
            })
            .boxed(),
        (
            status(),
            opt(any::<u32>().boxed()),
            opt(any::<u16>().boxed()),
        )
            .prop_map(|(status, valid_time_interval, odtone_time_interval)| {
                Body::RegisterResponse(RegisterResponse {
                    status,
                    valid_time_interval,
                    odtone_time_interval,
                })
            })
            .boxed(),
        Just(Body::DeRegisterRequest(DeRegisterRequest {})).boxed(),
        status()
            .prop_map(|status| Body::DeRegisterResponse(DeRegisterResponse { status }))
            .boxed(),
        (link_tuple_id(), event_list(), opt(list(evt_cfg_info())))
            .prop_map(|(link, events, config)| {
                Body::EventSubscribeRequest(EventSubscribeRequest {
                    link,
                    events,
                    config,
                })
            })
            .boxed(),
        (status(), link_tuple_id(), opt(event_list()))
            .prop_map(|(status, link, events)| {
                Body::EventSubscribeResponse(EventSubscribeResponse {
                    status,
                    link,
                    events,
                })
            })
            .boxed(),
        (link_tuple_id(), event_list())
            .prop_map(|(link, events)| {
                Body::EventUnsubscribeRequest(EventUnsubscribeRequest { link, events })
            })
            .boxed(),
        (status(), link_tuple_id(), opt(event_list()))
            .prop_map(|(status, link, events)| {
                Body::EventUnsubscribeResponse(EventUnsubscribeResponse {
                    status,
                    link,
                    events,
                })
            })
            .boxed(),
        list(link_det_info())
            .prop_map(|detected| Body::LinkDetected(LinkDetectedIndication { detected }))
            .boxed(),
        (
            link_tuple_id(),
            opt(link_addr()),
            opt(link_addr()),
            opt(any::<bool>().boxed()),
            opt(ip_mob_mgmt()),
        )
            .prop_map(|(link, old, new, ip_renewal, mm)| {
                Body::LinkUp(LinkUpIndication {
                    link,
                    old_access_router: old,
                    new_access_router: new,
                    ip_renewal,
                    mobility_management: mm,
                })
            })
            .boxed(),
        (link_tuple_id(), opt(link_addr()), link_dn_reason())
            .prop_map(|(link, old_access_router, reason)| {
                Body::LinkDown(LinkDownIndication {
                    link,
                    old_access_router,
                    reason,
                })
            })
            .boxed(),
        (link_tuple_id(), any::<u16>(), link_gd_reason())
            .prop_map(|(link, time_interval, reason)| {
                Body::LinkGoingDown(LinkGoingDownIndication {
                    link,
                    time_interval,
                    reason,
                })
            })
            .boxed(),
        (
            link_tuple_id(),
            link_tuple_id(),
            opt(link_addr()),
            opt(link_addr()),
        )
            .prop_map(|(link, new_link, old, new)| {
                Body::LinkHandoverImminent(LinkHandoverImminentIndication {
                    link,
                    new_link,
                    old_access_router: old,
                    new_access_router: new,
                })
            })
            .boxed(),
        (
            link_tuple_id(),
            link_tuple_id(),
            opt(link_addr()),
            opt(link_addr()),
            status(),
        )
            .prop_map(|(link, new_link, old, new, status)| {
                Body::LinkHandoverComplete(LinkHandoverCompleteIndication {
                    link,
                    new_link,
                    old_access_router: old,
                    new_access_router: new,
                    status,
                })
            })
            .boxed(),
        (
            opt(mihf_id()),
            qos_list(),
            opt(ip_cfg_methods()),
            opt(transport_addr()),
            opt(transport_addr()),
            opt(transport_addr()),
            opt(list(link_id())),
        )
            .prop_map(|(mn, query, ipcfg, dhcp, fa, ar, link_ids)| {
                Body::N2nHoQueryResourcesRequest(N2nHoQueryResourcesRequest {
                    mn_mihf_id: mn,
                    query,
                    ip_cfg_methods: ipcfg,
                    dhcp_server: dhcp,
                    fa_addr: fa,
                    access_router: ar,
                    link_ids,
                })
            })
            .boxed(),
        (status(), opt(any::<bool>().boxed()), opt(list(rq_result())))
            .prop_map(|(status, resource_status, preferred_links)| {
                Body::N2nHoQueryResourcesResponse(N2nHoQueryResourcesResponse {
                    status,
                    resource_status,
                    preferred_links,
                })
            })
            .boxed(),
        (
            link_type(),
            list(tgt_net_info()),
            asgn_res_set(),
            any::<u16>(),
            opt(list(link_action_req())),
        )
            .prop_map(|(link_type, targets, res, time_interval, actions)| {
                Body::NetHoCommitRequest(NetHoCommitRequest {
                    link_type,
                    targets,
                    assigned_resources: res,
                    time_interval,
                    link_actions: actions,
                })
            })
            .boxed(),
        (
            status(),
            opt(link_type()),
            opt(tgt_net_info()),
            opt(list(link_action_rsp())),
        )
            .prop_map(|(status, link_type, target, results)| {
                Body::NetHoCommitResponse(NetHoCommitResponse {
                    status,
                    link_type,
                    target,
                    link_action_results: results,
                })
            })
            .boxed(),
        (mihf_id(), link_id(), link_addr(), opt(req_res_set()))
            .prop_map(|(mn_mihf_id, mn_link_id, poa, requested_resources)| {
                Body::N2nHoCommitRequest(N2nHoCommitRequest {
                    mn_mihf_id,
                    mn_link_id,
                    poa,
                    requested_resources,
                })
            })
            .boxed(),
        (
            status(),
            mihf_id(),
            opt(link_tuple_id()),
            opt(asgn_res_set()),
        )
            .prop_map(|(status, mn_mihf_id, link, assigned_resources)| {
                Body::N2nHoCommitResponse(N2nHoCommitResponse {
                    status,
                    mn_mihf_id,
                    link,
                    assigned_resources,
                })
            })
            .boxed(),
        (mihf_id(), link_tuple_id(), link_tuple_id(), ho_result())
            .prop_map(|(mn_mihf_id, link, new_link, result)| {
                Body::N2nHoCompleteRequest(N2nHoCompleteRequest {
                    mn_mihf_id,
                    link,
                    new_link,
                    result,
                })
            })
            .boxed(),
        (
            status(),
            mihf_id(),
            link_tuple_id(),
            link_tuple_id(),
            opt(any::<bool>().boxed()),
        )
            .prop_map(|(status, mn_mihf_id, link, new_link, resource_retention)| {
                Body::N2nHoCompleteResponse(N2nHoCompleteResponse {
                    status,
                    mn_mihf_id,
                    link,
                    new_link,
                    resource_retention,
                })
            })
            .boxed(),
    ]
}

use Opcode::{Confirm, Indication, Request, Response};
const REQ: &[Opcode] = &[Request, Indication];
const RSP: &[Opcode] = &[Response, Confirm];
const IND: &[Opcode] = &[Indication];

/// The MIDs a typed body may travel under (the `primitives!` table).
fn mids_for(body: &Body) -> Vec<Mid> {
    let (sid, aid, ops) = match body {
        Body::CapabilityDiscoverRequest(_) => (ServiceId::MANAGEMENT, 1, REQ),
        Body::CapabilityDiscoverResponse(_) => (ServiceId::MANAGEMENT, 1, RSP),
        Body::RegisterRequest(_) => (ServiceId::MANAGEMENT, 2, REQ),
        Body::RegisterResponse(_) => (ServiceId::MANAGEMENT, 2, RSP),
        Body::DeRegisterRequest(_) => (ServiceId::MANAGEMENT, 3, REQ),
        Body::DeRegisterResponse(_) => (ServiceId::MANAGEMENT, 3, RSP),
        Body::EventSubscribeRequest(_) => (ServiceId::MANAGEMENT, 4, REQ),
        Body::EventSubscribeResponse(_) => (ServiceId::MANAGEMENT, 4, RSP),
        Body::EventUnsubscribeRequest(_) => (ServiceId::MANAGEMENT, 5, REQ),
        Body::EventUnsubscribeResponse(_) => (ServiceId::MANAGEMENT, 5, RSP),
        Body::LinkDetected(_) => (ServiceId::EVENT, 1, IND),
        Body::LinkUp(_) => (ServiceId::EVENT, 2, IND),
        Body::LinkDown(_) => (ServiceId::EVENT, 3, IND),
        Body::LinkGoingDown(_) => (ServiceId::EVENT, 6, IND),
        Body::LinkHandoverImminent(_) => (ServiceId::EVENT, 7, IND),
        Body::LinkHandoverComplete(_) => (ServiceId::EVENT, 8, IND),
        Body::N2nHoQueryResourcesRequest(_) => (ServiceId::COMMAND, 6, REQ),
        Body::N2nHoQueryResourcesResponse(_) => (ServiceId::COMMAND, 6, RSP),
        Body::NetHoCommitRequest(_) => (ServiceId::COMMAND, 8, REQ),
        Body::NetHoCommitResponse(_) => (ServiceId::COMMAND, 8, RSP),
        Body::N2nHoCommitRequest(_) => (ServiceId::COMMAND, 9, REQ),
        Body::N2nHoCommitResponse(_) => (ServiceId::COMMAND, 9, RSP),
        Body::N2nHoCompleteRequest(_) => (ServiceId::COMMAND, 11, REQ),
        Body::N2nHoCompleteResponse(_) => (ServiceId::COMMAND, 11, RSP),
        Body::Ack | Body::Unknown => return Vec::new(),
    };
    ops.iter().map(|&op| Mid::new(sid, op, aid)).collect()
}

fn is_typed_mid(mid: Mid) -> bool {
    message_forms().iter().any(|(_, m)| *m == mid)
}

/// The table above is exactly the codec's list of message forms.
#[test]
fn mid_table_matches_message_forms() {
    let mut runner = TestRunner::deterministic();
    let mut ours: Vec<u16> = bodies()
        .iter()
        .flat_map(|s| mids_for(&s.new_tree(&mut runner).unwrap().current()))
        .map(|m| m.0)
        .collect();
    let mut theirs: Vec<u16> = message_forms().iter().map(|(_, m)| m.0).collect();
    ours.sort_unstable();
    theirs.sort_unstable();
    assert_eq!(ours, theirs);
}

/// A MID the codec does not type: SID 4 (information service), or any other
/// MID outside the table (e.g. an event SID/AID with a request opcode).
fn untyped_mid() -> S<Mid> {
    prop_oneof![
        (0u16..4).prop_map(|op| Mid::new(ServiceId::INFORMATION, Opcode::from_bits(op as u8), 1)),
        any::<u16>().prop_map(Mid),
    ]
    .prop_filter("typed MID", |m| !is_typed_mid(*m))
    .boxed()
}

/// A body and a MID consistent with it.
fn body_with_mid() -> S<(Body, Mid)> {
    let typed = (Union::new(bodies()), any::<Index>()).prop_map(|(b, i)| {
        let mids = mids_for(&b);
        let mid = mids[i.index(mids.len())];
        (b, mid)
    });
    prop_oneof![
        24 => typed,
        1 => any::<u16>().prop_map(|m| (Body::Ack, Mid(m))),
        2 => untyped_mid().prop_map(|m| (Body::Unknown, m)),
    ]
    .boxed()
}

fn raw_tlv(ty: u8, value: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    out.put_u8(ty);
    encode_length(value.len(), &mut out);
    out.put_slice(value);
    out.freeze()
}

/// An unknown TLV (its whole encoding) for a body whose own TLV types are
/// `known`: mostly the vendor-specific / experimental range, sometimes any
/// other type the body does not define.
fn extra_tlv(known: Vec<u8>) -> S<Bytes> {
    let ty = prop_oneof![
        1 => Just(100u8),
        3 => 101u8..=255,
        1 => any::<u8>(),
    ]
    .prop_filter("type defined by the body", move |t| !known.contains(t));
    (ty, octets(150))
        .prop_map(|(ty, v)| raw_tlv(ty, &v))
        .boxed()
}

/// Canonical runs from unknown TLVs tagged with insertion points (how many
/// known body TLVs come before each): sorted, TLVs sharing an insertion
/// point form one run, as the decoder groups them.
fn runs(mut ex: Vec<(usize, Bytes)>) -> Vec<RawTlvs> {
    ex.sort_by_key(|e| e.0);
    let mut out: Vec<RawTlvs> = Vec::new();
    let mut i = 0;
    let mut before = 0; // unknown TLVs placed so far
    while i < ex.len() {
        let ins = ex[i].0;
        let mut raw = BytesMut::new();
        let start = before;
        while i < ex.len() && ex[i].0 == ins {
            raw.put_slice(&ex[i].1);
            i += 1;
            before += 1;
        }
        let run = RawTlvs::new(2 + ins + start, raw.freeze()).expect("well-formed run");
        assert_eq!(run.count(), before - start);
        out.push(run);
    }
    out
}

/// How many TLVs follow the two IDs when `m` (without extras) is emitted.
fn body_tlv_count(m: &Message) -> usize {
    let b = m.to_bytes().expect("small message");
    TlvIter::new(&b[HEADER_LEN..]).count() - 2
}

fn message() -> S<Message> {
    (
        body_with_mid(),
        any::<(bool, bool, bool)>(),
        0u16..=0x0fff,
        mihf_id(),
        mihf_id(),
    )
        .prop_flat_map(
            |((body, mid), (ack_req, ack_rsp, uir), tid, source, destination)| {
                let is_ack = body == Body::Ack;
                let header = Header {
                    version: 1,
                    ack_req,
                    ack_rsp: ack_rsp || is_ack,
                    uir,
                    more_frag: false,
                    frag_no: 0,
                    mid,
                    tid,
                    payload_len: 0,
                };
                let msg = Message {
                    header,
                    source,
                    destination,
                    body,
                    extra: Vec::new(),
                };
                if is_ack {
                    return Just(msg).boxed();
                }
                let k = body_tlv_count(&msg);
                // Zero TLVs after the IDs with ACK-Rsp set is a pure ACK on the
                // wire: give such messages at least one unknown TLV.
                let min = usize::from(msg.header.ack_rsp && k == 0);
                let known: Vec<u8> = msg.body.tlv_order().iter().map(|e| e.0).collect();
                // Each extra gets an insertion point: how many known body TLVs
                // come before it.
                vec((0..=k, extra_tlv(known)), min..=3)
                    .prop_map(move |ex| {
                        let mut m = msg.clone();
                        m.extra = runs(ex);
                        m
                    })
                    .boxed()
            },
        )
        .boxed()
}

// ---------------------------------------------------------------------------
// Message properties

/// `m` emits, and the emitted frame decodes to `m` (with the emitted payload
/// length) and re-emits the same octets. Returns the octets.
fn check_message(m: &Message) -> Result<Bytes, TestCaseError> {
    let bytes = m
        .to_bytes()
        .map_err(|e| fail(format!("emit failed: {e} ({m:?})")))?;
    let mut expected = m.clone();
    expected.header.payload_len = u16::try_from(bytes.len() - HEADER_LEN).unwrap();
    let frame =
        Frame::parse(bytes.clone()).map_err(|e| fail(format!("{e}: {bytes:02x?} ({m:?})")))?;
    prop_assert_eq!(frame.header(), expected.header);
    let decoded =
        Message::decode(&frame).map_err(|e| fail(format!("{e}: {bytes:02x?} ({m:?})")))?;
    prop_assert_eq!(&decoded, &expected, "bytes {:02x?}", bytes);
    let again = decoded.to_bytes().map_err(fail)?;
    prop_assert_eq!(&again, &bytes);
    let _ = decoded.name();
    Ok(bytes)
}

/// Whatever decodes re-emits into a frame that decodes to the same message
/// (non-minimal lengths are normalised, so the octets may differ the first
/// time, but not the second).
fn check_decoded_is_stable(m: &Message) -> Result<(), TestCaseError> {
    let _ = m.name();
    let bytes = m
        .to_bytes()
        .map_err(|e| fail(format!("re-emit of a decoded message failed: {e} ({m:?})")))?;
    prop_assert!(bytes.len() >= HEADER_LEN);
    let m2 = Message::from_bytes(bytes.clone()).map_err(|e| {
        fail(format!(
            "re-emitted frame does not decode: {e}: {bytes:02x?} ({m:?})"
        ))
    })?;
    let mut expected = m.clone();
    expected.header.payload_len = u16::try_from(bytes.len() - HEADER_LEN).unwrap();
    prop_assert_eq!(&m2, &expected, "re-emitted bytes {:02x?}", bytes);
    prop_assert_eq!(m2.to_bytes().map_err(fail)?, bytes);
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    /// Typed message → octets → frame → message → the same octets.
    #[test]
    fn message_round_trip(m in message()) {
        let bytes = check_message(&m)?;

        // The known TLVs of a typed body decode on their own through the
        // generic TlvValue table (the conformance view relies on it), and the
        // extras sit exactly where their positions say.
        let order: Vec<u8> = m.body.tlv_order().iter().map(|e| e.0).collect();
        let tlvs: Vec<_> = TlvIter::new(&bytes[HEADER_LEN..]).collect();
        let n_extra: usize = m.extra.iter().map(RawTlvs::count).sum();
        prop_assert_eq!(tlvs.len(), 2 + body_tlv_count(&Message { extra: Vec::new(), ..m.clone() }) + n_extra);
        let mut is_extra = vec![false; tlvs.len()];
        for run in &m.extra {
            prop_assert!(run.count() > 0);
            for (j, x) in run.iter().enumerate() {
                let t = tlvs[run.position + j];
                prop_assert_eq!(t.raw, x.raw);
                is_extra[run.position + j] = true;
            }
        }
        for (i, t) in tlvs.iter().enumerate() {
            if is_extra[i] {
                continue;
            }
            if i < 2 || order.contains(&t.ty) {
                let v = TlvValue::decode(t.ty, &bytes, t.value)
                    .map_err(|e| fail(format!("TLV {} via TlvValue: {e}", t.ty)))?;
                prop_assert!(v.is_some(), "TLV {} has no TlvValue form", t.ty);
            } else {
                prop_assert!(false, "TLV #{} (type {}) is neither known nor extra", i, t.ty);
            }
        }

        // Two frames back to back on a stream.
        let mut stream = BytesMut::new();
        stream.put_slice(&bytes);
        stream.put_slice(&bytes);
        stream.put_slice(&bytes[..bytes.len() - 1]);
        for _ in 0..2 {
            let f = Frame::split_from(&mut stream).map_err(fail)?.ok_or_else(|| fail("no frame"))?;
            prop_assert_eq!(f.as_bytes(), &bytes);
        }
        prop_assert!(Frame::split_from(&mut stream).map_err(fail)?.is_none());
    }

    /// A strict prefix of a frame never parses (Payload Length disagrees),
    /// and chopping the payload while fixing Payload Length never panics.
    #[test]
    fn message_truncations(m in message(), cut in any::<Index>()) {
        let bytes = m.to_bytes().map_err(fail)?;
        let n = cut.index(bytes.len());
        prop_assert!(Frame::parse(bytes.slice(..n)).is_err());
        if n >= HEADER_LEN {
            let mut v = bytes[..n].to_vec();
            let len = (n - HEADER_LEN) as u16;
            v[6..8].copy_from_slice(&len.to_be_bytes());
            if let Ok(f) = Frame::parse(Bytes::from(v)) {
                if let Ok(d) = Message::decode(&f) {
                    check_decoded_is_stable(&d)?;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Arbitrary input never panics

/// Try every data type's `from_bytes` on `b`; anything that decodes must
/// re-encode to a value that decodes to itself.
fn fuzz_value<T: Value + PartialEq + Debug>(b: &Bytes) -> Result<(), TestCaseError> {
    if let Ok(v) = T::from_bytes(b) {
        let again = v.to_bytes();
        prop_assert_eq!(v.encoded_len(), again.len());
        prop_assert!(again.len() <= b.len(), "{} grew on re-encode", T::NAME);
        let w = T::from_bytes(&again).map_err(|e| fail(format!("{}: {e}", T::NAME)))?;
        prop_assert_eq!(&w, &v);
        prop_assert_eq!(w.to_bytes(), again);
    }
    // A decode from a sub-slice must not panic either.
    if b.len() > 2 {
        let _ = T::decode_exact(b, &b[1..b.len() - 1]);
    }
    let mut r = Reader::new(b);
    let _ = T::decode(&mut r);
    prop_assert!(r.position() <= b.len());
    Ok(())
}

macro_rules! fuzz_all {
    ($b:expr; $($t:ty),* $(,)?) => {{
        $(fuzz_value::<$t>($b)?;)*
    }};
}

fn fuzz_every_type(b: &Bytes) -> Result<(), TestCaseError> {
    fuzz_all!(b;
        u8, u16, u32, bool,
        Status, LinkType, RegRequestCode, LinkDnReason, LinkGdReason, HoStatus, HoResult, HoCause,
        EventList, CommandList, IsQueryTypeList, TransportList, IpMobMgmt, IpCfgMethods,
        LinkSubtype, LinkMihcapFlag, NetCaps, LinkAcAttr,
        MihfId, OctetString, TransportAddr, LinkAddr, LinkId, LinkTupleId,
        CosValue, QosList, TspContainer, ReqResSet, AsgnResSet,
        NetworkType, NetTypeAddr, MbbHoSupp, SigStrength, LinkDetInfo, LinkDetCfg,
        LinkParamType, Threshold, LinkCfgParam, EvtCfgInfo, TgtNetInfo,
        NullBoolOr<IpCfgMethods>, NullBoolOr<TransportAddr>,
        LinkPoaList, RqResult, LinkActionReq, LinkScanRsp, LinkActionRsp,
        Option<LinkAddr>, Option<OctetString>,
        List<CosValue>, List<LinkAddr>, List<LinkId>, List<Threshold>, List<NetTypeAddr>,
        List<MbbHoSupp>, List<LinkDetInfo>, List<LinkDetCfg>, List<LinkCfgParam>,
        List<EvtCfgInfo>, List<TgtNetInfo>, List<RqResult>, List<LinkActionReq>,
        List<LinkScanRsp>, List<LinkActionRsp>, List<List<CosValue>>,
    );
    Ok(())
}

/// `TlvValue::decode` for every type on `b`; what decodes re-emits stably.
fn fuzz_tlv_values(b: &Bytes) -> Result<(), TestCaseError> {
    for ty in 0..=255u8 {
        if let Ok(Some(v)) = TlvValue::decode(ty, b, &b[..]) {
            prop_assert_eq!(v.tlv_type(), ty);
            let raw = emit_tlv_value(&v);
            let t = TlvIter::new(&raw).next().ok_or_else(|| fail("no TLV"))?;
            let w = TlvValue::decode(ty, &raw, t.value).map_err(fail)?;
            prop_assert_eq!(w.as_ref(), Some(&v));
        }
    }
    Ok(())
}

/// Walk `b` as a TLV sequence and check the walk's bookkeeping.
fn fuzz_tlv_walk(b: &[u8]) -> Result<(), TestCaseError> {
    let mut it = TlvIter::new(b);
    let mut offset = 0;
    for t in it.by_ref() {
        prop_assert_eq!(t.offset, offset);
        prop_assert_eq!(t.raw[0], t.ty);
        prop_assert!(t.raw.ends_with(t.value));
        prop_assert_eq!(&b[offset..offset + t.raw.len()], t.raw);
        offset += t.raw.len();
    }
    match it.error() {
        None => prop_assert_eq!(offset, b.len()),
        Some(_) => prop_assert!(offset < b.len()),
    }
    prop_assert!(it.next().is_none());
    Ok(())
}

/// Parse `b` as a frame and decode it; what decodes must be stable.
fn fuzz_frame(b: Bytes) -> Result<(), TestCaseError> {
    fuzz_tlv_walk(b.get(HEADER_LEN..).unwrap_or(&[]))?;
    let mut stream = BytesMut::from(&b[..]);
    let _ = Frame::split_from(&mut stream);
    if let Ok(f) = Frame::parse(b) {
        let _ = (f.header(), f.tid(), f.mid(), f.payload(), f.is_fragment());
        for t in f.tlvs() {
            let _ = TlvValue::decode(t.ty, f.as_bytes(), t.value);
        }
        if let Ok(m) = Message::decode(&f) {
            check_decoded_is_stable(&m)?;
        }
    }
    Ok(())
}

/// Header octets with Payload Length matching `payload`.
fn frame_with(b0: u8, b1: u8, mid: u16, tid: u16, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    out.put_u8(b0);
    out.put_u8(b1);
    out.put_u16(mid);
    out.put_u16(tid);
    out.put_u16(payload.len() as u16);
    out.put_slice(payload);
    out.freeze()
}

/// Source and Destination MIHF ID TLVs.
fn id_tlvs(source: &'static [u8], destination: &'static [u8]) -> Vec<u8> {
    let mut v = raw_tlv(1, &MihfId(Bytes::from_static(source)).to_bytes()).to_vec();
    v.extend_from_slice(&raw_tlv(
        2,
        &MihfId(Bytes::from_static(destination)).to_bytes(),
    ));
    v
}

/// A MID that is usually one the codec types.
fn interesting_mid() -> S<u16> {
    let forms: Vec<u16> = message_forms().iter().map(|(_, m)| m.0).collect();
    prop_oneof![
        4 => proptest::sample::select(forms),
        1 => any::<u16>(),
    ]
    .boxed()
}

/// A TLV for structured fuzzing: a valid typed TLV, a typed TLV with
/// arbitrary value octets, or anything at all.
fn fuzz_tlv() -> S<Vec<u8>> {
    prop_oneof![
        8 => tlv_value().prop_map(|v| emit_tlv_value(&v).to_vec()),
        3 => (1u8..=63, vec(any::<u8>(), 0..24)).prop_map(|(ty, v)| raw_tlv(ty, &v).to_vec()),
        2 => (any::<u8>(), vec(any::<u8>(), 0..24)).prop_map(|(ty, v)| raw_tlv(ty, &v).to_vec()),
        1 => vec(any::<u8>(), 0..8),
    ]
    .boxed()
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(Index, u8),
    Set(Index, u8),
    Insert(Index, u8),
    Delete(Index),
    Truncate(Index),
    Duplicate(Index, Index),
}

fn mutation() -> S<Mutation> {
    prop_oneof![
        4 => (any::<Index>(), 0u8..8).prop_map(|(i, bit)| Mutation::Flip(i, bit)),
        3 => (any::<Index>(), any::<u8>()).prop_map(|(i, v)| Mutation::Set(i, v)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, v)| Mutation::Insert(i, v)),
        2 => any::<Index>().prop_map(Mutation::Delete),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::Duplicate(a, b)),
    ]
    .boxed()
}

/// Apply `muts`, aiming at the payload (octet 8 on) when `payload_only`.
fn mutate(mut v: Vec<u8>, muts: &[Mutation], payload_only: bool) -> Vec<u8> {
    let lo = if payload_only {
        HEADER_LEN.min(v.len())
    } else {
        0
    };
    for m in muts {
        let span = v.len() - lo;
        match m {
            Mutation::Flip(i, bit) if span > 0 => v[lo + i.index(span)] ^= 1 << bit,
            Mutation::Set(i, x) if span > 0 => v[lo + i.index(span)] = *x,
            Mutation::Insert(i, x) => {
                let at = lo + i.index(span + 1);
                v.insert(at, *x)
            }
            Mutation::Delete(i) if span > 0 => {
                v.remove(lo + i.index(span));
            }
            Mutation::Truncate(i) => v.truncate(lo + i.index(span + 1)),
            Mutation::Duplicate(a, b) if span > 0 => {
                let s = lo + a.index(span);
                let e = s + b.index(span - (s - lo) + 1).min(16);
                let chunk = v[s..e].to_vec();
                let at = e;
                v.splice(at..at, chunk);
            }
            _ => {}
        }
    }
    v
}

/// A TLV-level edit of a payload: the decoder's order, repetition and
/// mandatory-TLV checks see well-formed TLVs in the wrong places.
#[derive(Debug, Clone)]
enum TlvEdit {
    Swap(Index, Index),
    Remove(Index),
    Duplicate(Index),
    Move(Index, Index),
    /// Replace a TLV's value with a typed value of another TLV type.
    Retype(Index, TlvValue),
    /// Keep the type, put arbitrary octets in the value.
    Garble(Index, Vec<u8>),
}

fn tlv_edit() -> S<TlvEdit> {
    prop_oneof![
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| TlvEdit::Swap(a, b)),
        any::<Index>().prop_map(TlvEdit::Remove),
        any::<Index>().prop_map(TlvEdit::Duplicate),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| TlvEdit::Move(a, b)),
        (any::<Index>(), tlv_value()).prop_map(|(a, v)| TlvEdit::Retype(a, v)),
        (any::<Index>(), vec(any::<u8>(), 0..12)).prop_map(|(a, v)| TlvEdit::Garble(a, v)),
    ]
    .boxed()
}

/// Apply TLV-level edits to the payload of `frame` and rebuild the frame.
fn edit_tlvs(frame: &Bytes, edits: &[TlvEdit]) -> Bytes {
    let mut tlvs: Vec<(u8, Vec<u8>)> = TlvIter::new(&frame[HEADER_LEN..])
        .map(|t| (t.ty, t.raw.to_vec()))
        .collect();
    for e in edits {
        let n = tlvs.len();
        if n == 0 {
            break;
        }
        match e {
            TlvEdit::Swap(a, b) => tlvs.swap(a.index(n), b.index(n)),
            TlvEdit::Remove(a) => {
                tlvs.remove(a.index(n));
            }
            TlvEdit::Duplicate(a) => {
                let t = tlvs[a.index(n)].clone();
                tlvs.insert(a.index(n), t);
            }
            TlvEdit::Move(a, b) => {
                let t = tlvs.remove(a.index(n));
                tlvs.insert(b.index(n), t);
            }
            TlvEdit::Retype(a, v) => {
                let i = a.index(n);
                let ty = tlvs[i].0;
                let mut raw = emit_tlv_value(v).to_vec();
                raw[0] = ty;
                tlvs[i].1 = raw;
            }
            TlvEdit::Garble(a, v) => {
                let i = a.index(n);
                tlvs[i].1 = raw_tlv(tlvs[i].0, v).to_vec();
            }
        }
    }
    let payload: Vec<u8> = tlvs.into_iter().flat_map(|t| t.1).collect();
    frame_with(
        frame[0],
        frame[1],
        u16::from_be_bytes([frame[2], frame[3]]),
        u16::from_be_bytes([frame[4], frame[5]]),
        &payload,
    )
}

fn fix_payload_len(v: &mut [u8]) {
    if v.len() >= HEADER_LEN {
        if let Ok(len) = u16::try_from(v.len() - HEADER_LEN) {
            v[6..8].copy_from_slice(&len.to_be_bytes());
        }
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// Arbitrary octets: as a frame, as a TLV walk, as a length, as every
    /// TLV type, as every data type.
    #[test]
    fn arbitrary_bytes_never_panic(v in vec(any::<u8>(), 0..512)) {
        let _ = decode_length(&v);
        if let Ok((n, used)) = decode_length(&v) {
            prop_assert!(used >= 1 && used <= v.len() && used <= 9);
            if n < 128 { prop_assert_eq!(used, 1); }
        }
        let b = Bytes::from(v);
        fuzz_tlv_walk(&b)?;
        fuzz_frame(b.clone())?;
        fuzz_tlv_values(&b)?;
        fuzz_every_type(&b)?;
    }

    /// Arbitrary payloads behind a well-formed header (so Payload Length
    /// agrees and the decoder gets past the frame checks).
    #[test]
    fn arbitrary_payloads_never_panic(
        b0 in any::<u8>(),
        b1 in any::<u8>(),
        mid in interesting_mid(),
        tid in any::<u16>(),
        payload in vec(any::<u8>(), 0..512),
    ) {
        fuzz_frame(frame_with(b0, b1, mid, tid, &payload))?;
        let mut with_ids = id_tlvs(b"src", b"dst");
        with_ids.extend_from_slice(&payload);
        fuzz_frame(frame_with(b0 & 0xf6, b1 & 1, mid, tid, &with_ids))?;
    }

    /// Frames made of real TLVs (typed values, typed numbers with arbitrary
    /// values, random junk) in random order, under typed MIDs.
    #[test]
    fn structured_frames_never_panic(
        flags in 0u8..16,
        mid in interesting_mid(),
        tid in any::<u16>(),
        ids in prop::bool::weighted(0.9),
        tlvs in vec(fuzz_tlv(), 0..7),
    ) {
        let mut payload = if ids { id_tlvs(b"a", b"") } else { Vec::new() };
        for t in &tlvs {
            payload.extend_from_slice(t);
        }
        // Version 1, arbitrary ACK/UIR flags, never a fragment.
        fuzz_frame(frame_with(0x10 | (flags & 0x0e), 0, mid, tid, &payload))?;
    }

    /// Valid typed TLVs with a few octets mutated: every TLV type and every
    /// data type on the result.
    #[test]
    fn mutated_values_never_panic(
        v in tlv_value(),
        muts in vec(mutation(), 1..4),
    ) {
        let raw = emit_tlv_value(&v);
        let t = TlvIter::new(&raw).next().ok_or_else(|| fail("no TLV"))?;
        let value = mutate(t.value.to_vec(), &muts, false);
        let b = Bytes::from(value);
        fuzz_tlv_values(&b)?;
        fuzz_every_type(&b)?;
        let mutated_tlv = Bytes::from(mutate(raw.to_vec(), &muts, false));
        fuzz_tlv_walk(&mutated_tlv)?;
    }

    /// Valid messages with whole TLVs swapped, moved, dropped, repeated,
    /// retyped or garbled.
    #[test]
    fn reordered_tlvs_never_panic(
        m in message(),
        edits in vec(tlv_edit(), 1..4),
    ) {
        let bytes = m.to_bytes().map_err(fail)?;
        fuzz_frame(edit_tlvs(&bytes, &edits))?;
    }

    /// Valid frames with a few octets flipped, set, inserted, deleted or
    /// duplicated, with Payload Length optionally fixed up afterwards.
    #[test]
    fn mutated_frames_never_panic(
        m in message(),
        muts in vec(mutation(), 1..5),
        payload_only in any::<bool>(),
        fix_len in any::<bool>(),
    ) {
        let bytes = m.to_bytes().map_err(fail)?;
        let mut v = mutate(bytes.to_vec(), &muts, payload_only);
        if fix_len {
            fix_payload_len(&mut v);
        }
        fuzz_frame(Bytes::from(v))?;
    }
}
