//! Compound data types of IEEE 802.21-2008 Annex F used by the capability,
//! event and handover messages: network types, link detection, event
//! configuration, target networks, resource query results and link actions.

use bytes::{BufMut, Bytes, BytesMut};

use super::error::ValueError;
use super::tlv::{octet_string_len, put_octet_string, Reader, Value};
use super::types::{
    bitmap, decode_option, encode_option, option_len, IpCfgMethods, LinkAddr, LinkId, LinkTupleId,
    LinkType, List, QosList, TransportAddr,
};

/// OCTET_STRING (NETWORK_ID, NET_AUX_ID, ...) as a shared slice of the frame.
/// Shown as hex in JSON.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct OctetString(pub Bytes);

impl OctetString {
    pub fn new(b: impl Into<Bytes>) -> OctetString {
        OctetString(b.into())
    }
}

impl std::ops::Deref for OctetString {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl Value for OctetString {
    const NAME: &'static str = "OCTET_STRING";
    fn decode(r: &mut Reader<'_>) -> Result<Self, ValueError> {
        r.octet_string(Self::NAME).map(OctetString)
    }
    fn encoded_len(&self) -> usize {
        octet_string_len(self.0.len())
    }
    fn encode(&self, out: &mut BytesMut) {
        put_octet_string(&self.0, out)
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for OctetString {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        super::types::hex_bytes::serialize(&self.0, s)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for OctetString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        super::types::hex_bytes::deserialize(d).map(OctetString)
    }
}

/// CHOICE(NULL, T), the standard's optional field: selector 0 is absent.
impl<T: Value> Value for Option<T> {
    const NAME: &'static str = "CHOICE(NULL, T)";
    fn decode(r: &mut Reader<'_>) -> Result<Self, ValueError> {
        decode_option(r, T::NAME)
    }
    fn encoded_len(&self) -> usize {
        option_len(self)
    }
    fn encode(&self, out: &mut BytesMut) {
        encode_option(self, out)
    }
}

/// Defines a SEQUENCE: fields follow each other untagged, in order.
macro_rules! sequence {
    ($(#[$m:meta])* $name:ident, $std:literal { $($(#[$fm:meta])* $f:ident : $t:ty,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
        pub struct $name {
            $($(#[$fm])* pub $f: $t,)*
        }

        impl Value for $name {
            const NAME: &'static str = $std;
            fn decode(r: &mut Reader<'_>) -> Result<Self, ValueError> {
                Ok($name { $($f: <$t>::decode(r)?,)* })
            }
            fn encoded_len(&self) -> usize {
                0 $(+ self.$f.encoded_len())*
            }
            fn encode(&self, out: &mut BytesMut) {
                $(self.$f.encode(out);)*
            }
        }
    };
}

bitmap!(
    /// LINK_SUBTYPE, BITMAP(64).
    LinkSubtype(u64), "LINK_SUBTYPE", u64, put_u64 {}
);
bitmap!(
    /// LINK_MIHCAP_FLAG, BITMAP(8).
    LinkMihcapFlag(u8), "LINK_MIHCAP_FLAG", u8, put_u8 {
        EVENT_SERVICE = 1;
        COMMAND_SERVICE = 2;
        INFORMATION_SERVICE = 3;
    }
);
bitmap!(
    /// NET_CAPS, BITMAP(32): bits 1-6 are QoS classes 0-5.
    NetCaps(u32), "NET_CAPS", u32, put_u32 {
        SECURITY = 0;
        INTERNET_ACCESS = 7;
        EMERGENCY_SERVICES = 8;
        MIH_CAPABILITY = 9;
    }
);
bitmap!(
    /// LINK_AC_ATTR, BITMAP(8).
    LinkAcAttr(u8), "LINK_AC_ATTR", u8, put_u8 {
        SCAN = 0;
        RESOURCE_RETENTION = 1;
        DATA_FORWARDING_REQUEST = 2;
    }
);

sequence!(
    /// NETWORK_TYPE (TLV 62): each part is optional.
    NetworkType, "NETWORK_TYPE" {
        link_type: Option<LinkType>,
        subtype: Option<LinkSubtype>,
        type_ext: Option<OctetString>,
    }
);

sequence!(
    /// NET_TYPE_ADDR, the element of the link address list (TLV 9).
    NetTypeAddr, "NET_TYPE_ADDR" {
        net_type: NetworkType,
        addr: LinkAddr,
    }
);

sequence!(
    /// MBB_HO_SUPP, the element of TLV 10: is make-before-break handover
    /// supported from one network type to another.
    MbbHoSupp, "MBB_HO_SUPP" {
        from: NetworkType,
        to: NetworkType,
        supported: bool,
    }
);

/// SIG_STRENGTH: a CHOICE of a power in dBm or a percentage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum SigStrength {
    /// 0: INTEGER(1), dBm.
    Dbm(i8),
    /// 1: PERCENTAGE (0-100).
    Percentage(u8),
}

impl Value for SigStrength {
    const NAME: &'static str = "SIG_STRENGTH";
    fn decode(r: &mut Reader<'_>) -> Result<Self, ValueError> {
        match r.selector(Self::NAME)? {
            0 => Ok(SigStrength::Dbm(r.u8("SIG_STRENGTH dBm")? as i8)),
            1 => Ok(SigStrength::Percentage(r.u8("SIG_STRENGTH percentage")?)),
            selector => Err(ValueError::BadChoice {
                field: Self::NAME,
                selector,
            }),
        }
    }
    fn encoded_len(&self) -> usize {
        2
    }
    fn encode(&self, out: &mut BytesMut) {
        match self {
            SigStrength::Dbm(v) => {
                out.put_u8(0);
                out.put_u8(*v as u8);
            }
            SigStrength::Percentage(v) => {
                out.put_u8(1);
                out.put_u8(*v);
            }
        }
    }
}

sequence!(
    /// LINK_DET_INFO, the element of TLV 58: one detected link.
    LinkDetInfo, "LINK_DET_INFO" {
        link: LinkTupleId,
        network_id: OctetString,
        net_aux_id: OctetString,
        sig_strength: SigStrength,
        sinr: u16,
        /// LINK_DATA_RATE, kb/s.
        data_rate: u32,
        mihcap: LinkMihcapFlag,
        net_caps: NetCaps,
    }
);

sequence!(
    /// LINK_DET_CFG: filters for Link_Detected events.
    LinkDetCfg, "LINK_DET_CFG" {
        network_id: Option<OctetString>,
        sig_strength: Option<SigStrength>,
        data_rate: Option<u32>,
    }
);

sequence!(
    /// LINK_PARAM_TYPE: a parameter family (the CHOICE selector: 0 generic,
    /// 1 QoS, 2 GG, 3 EDGE, 4 Ethernet, 5 802.11, 6 C2K, 7 FDD, 8 HRPD,
    /// 9 802.16, 10 802.20, 11 802.22) and the parameter code within it.
    LinkParamType, "LINK_PARAM_TYPE" {
        family: u8,
        code: u8,
    }
);

sequence!(
    /// THRESHOLD: a value and the direction of crossing (0 above, 1 below).
    Threshold, "THRESHOLD" {
        value: u16,
        x_dir: u8,
    }
);

sequence!(
    /// LINK_CFG_PARAM: a link parameter threshold configuration.
    LinkCfgParam, "LINK_CFG_PARAM" {
        param_type: LinkParamType,
        /// TIMER_INTERVAL in ms, for periodic reports.
        timer_interval: Option<u16>,
        /// TH_ACTION: 0 normal, 1 one-shot, 2 cancel.
        th_action: u8,
        thresholds: List<Threshold>,
    }
);

/// EVT_CFG_INFO, the element of TLV 54.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum EvtCfgInfo {
    /// 0: configuration for Link_Detected.
    LinkDetCfg(List<LinkDetCfg>),
    /// 1: configuration for the link parameter events.
    LinkCfgParam(List<LinkCfgParam>),
}

impl Value for EvtCfgInfo {
    const NAME: &'static str = "EVT_CFG_INFO";
    fn decode(r: &mut Reader<'_>) -> Result<Self, ValueError> {
        match r.selector(Self::NAME)? {
            0 => List::decode(r).map(EvtCfgInfo::LinkDetCfg),
            1 => List::decode(r).map(EvtCfgInfo::LinkCfgParam),
            selector => Err(ValueError::BadChoice {
                field: Self::NAME,
                selector,
            }),
        }
    }
    fn encoded_len(&self) -> usize {
        1 + match self {
            EvtCfgInfo::LinkDetCfg(l) => l.encoded_len(),
            EvtCfgInfo::LinkCfgParam(l) => l.encoded_len(),
        }
    }
    fn encode(&self, out: &mut BytesMut) {
        match self {
            EvtCfgInfo::LinkDetCfg(l) => {
                out.put_u8(0);
                l.encode(out);
            }
            EvtCfgInfo::LinkCfgParam(l) => {
                out.put_u8(1);
                l.encode(out);
            }
        }
    }
}

/// TGT_NET_INFO (TLV 55, and the element of TLV 56): the target network.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum TgtNetInfo {
    /// 0: a network identifier and an optional auxiliary identifier.
    Network {
        network_id: OctetString,
        net_aux_id: Option<OctetString>,
    },
    /// 1: the link address of the target PoA.
    Poa(LinkAddr),
}

impl Value for TgtNetInfo {
    const NAME: &'static str = "TGT_NET_INFO";
    fn decode(r: &mut Reader<'_>) -> Result<Self, ValueError> {
        match r.selector(Self::NAME)? {
            0 => Ok(TgtNetInfo::Network {
                network_id: OctetString::decode(r)?,
                net_aux_id: Option::decode(r)?,
            }),
            1 => LinkAddr::decode(r).map(TgtNetInfo::Poa),
            selector => Err(ValueError::BadChoice {
                field: Self::NAME,
                selector,
            }),
        }
    }
    fn encoded_len(&self) -> usize {
        1 + match self {
            TgtNetInfo::Network {
                network_id,
                net_aux_id,
            } => network_id.encoded_len() + net_aux_id.encoded_len(),
            TgtNetInfo::Poa(a) => a.encoded_len(),
        }
    }
    fn encode(&self, out: &mut BytesMut) {
        match self {
            TgtNetInfo::Network {
                network_id,
                net_aux_id,
            } => {
                out.put_u8(0);
                network_id.encode(out);
                net_aux_id.encode(out);
            }
            TgtNetInfo::Poa(a) => {
                out.put_u8(1);
                a.encode(out);
            }
        }
    }
}

/// CHOICE(NULL, BOOLEAN, T), used by RQ_RESULT for its optional fields.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum NullBoolOr<T> {
    #[default]
    Null,
    Bool(bool),
    Value(T),
}

impl<T: Value> Value for NullBoolOr<T> {
    const NAME: &'static str = "CHOICE(NULL, BOOLEAN, T)";
    fn decode(r: &mut Reader<'_>) -> Result<Self, ValueError> {
        match r.selector(T::NAME)? {
            0 => Ok(NullBoolOr::Null),
            1 => r.boolean(T::NAME).map(NullBoolOr::Bool),
            2 => T::decode(r).map(NullBoolOr::Value),
            selector => Err(ValueError::BadChoice {
                field: T::NAME,
                selector,
            }),
        }
    }
    fn encoded_len(&self) -> usize {
        1 + match self {
            NullBoolOr::Null => 0,
            NullBoolOr::Bool(_) => 1,
            NullBoolOr::Value(v) => v.encoded_len(),
        }
    }
    fn encode(&self, out: &mut BytesMut) {
        match self {
            NullBoolOr::Null => out.put_u8(0),
            NullBoolOr::Bool(b) => {
                out.put_u8(1);
                out.put_u8(u8::from(*b));
            }
            NullBoolOr::Value(v) => {
                out.put_u8(2);
                v.encode(out);
            }
        }
    }
}

sequence!(
    /// LINK_POA_LIST: a link and the PoAs reachable through it.
    LinkPoaList, "LINK_POA_LIST" {
        link: LinkId,
        poas: List<LinkAddr>,
    }
);

sequence!(
    /// RQ_RESULT, the element of the preferred link list (TLV 32).
    RqResult, "RQ_RESULT" {
        link_poa_list: LinkPoaList,
        qos: QosList,
        ip_cfg_methods: NullBoolOr<IpCfgMethods>,
        dhcp_server: NullBoolOr<TransportAddr>,
        fa_addr: NullBoolOr<TransportAddr>,
        access_router: NullBoolOr<TransportAddr>,
    }
);

sequence!(
    /// LINK_ACTION_REQ, the element of TLV 38.
    LinkActionReq, "LINK_ACTION_REQ" {
        link: LinkId,
        poa: Option<LinkAddr>,
        /// LINK_AC_TYPE: 0 none, 1 disconnect, 2 low power, 3 power down, 4 power up.
        action_type: u8,
        attr: LinkAcAttr,
        /// LINK_AC_EX_TIME, ms.
        ex_time: u16,
    }
);

sequence!(
    /// LINK_SCAN_RSP: one network found by a scan.
    LinkScanRsp, "LINK_SCAN_RSP" {
        addr: LinkAddr,
        network_id: OctetString,
        sig_strength: SigStrength,
    }
);

sequence!(
    /// LINK_ACTION_RSP, the element of TLV 39.
    LinkActionRsp, "LINK_ACTION_RSP" {
        link: LinkId,
        /// LINK_AC_RESULT: 0 success, 1 failure, 2 refused, 3 incapable.
        result: u8,
        scan: Option<List<LinkScanRsp>>,
    }
);
