//! Every TLV type of IEEE 802.21-2008 that the listed messages use, with its
//! name and data type: [`TlvValue`] decodes any single TLV on its own, which
//! is what generic tools (the conformance JSON view, loggers) need.

use bytes::{BufMut, Bytes, BytesMut};

use super::error::ValueError;
use super::info::*;
use super::tlv::{encode_length, Value};
use super::types::*;

macro_rules! tlv_values {
    ($($ty:literal $variant:ident $label:literal : $t:ty,)*) => {
        /// One decoded TLV value, keyed by TLV type.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum TlvValue {
            $($variant($t),)*
        }

        impl TlvValue {
            /// Decode the value of a TLV of type `ty`; `Ok(None)` for a type
            /// without a typed form (vendor-specific, experimental, MIIS, ...).
            pub fn decode(ty: u8, base: &Bytes, value: &[u8]) -> Result<Option<TlvValue>, ValueError> {
                Ok(Some(match ty {
                    $($ty => TlvValue::$variant(<$t>::decode_exact(base, value)?),)*
                    _ => return Ok(None),
                }))
            }

            /// The TLV type number.
            pub fn tlv_type(&self) -> u8 {
                match self {
                    $(TlvValue::$variant(_) => $ty,)*
                }
            }

            /// Append the whole TLV (type, length, value).
            pub fn emit(&self, out: &mut BytesMut) {
                match self {
                    $(TlvValue::$variant(v) => {
                        out.put_u8($ty);
                        encode_length(v.encoded_len(), out);
                        v.encode(out);
                    })*
                }
            }

            /// Build a value of type `ty` from any serde data format (e.g. a
            /// `serde_json::Value`); `Ok(None)` for a type without a typed form.
            #[cfg(feature = "serde")]
            pub fn deserialize<'de, D: serde::Deserializer<'de>>(ty: u8, d: D) -> Result<Option<TlvValue>, D::Error> {
                use serde::Deserialize;
                Ok(Some(match ty {
                    $($ty => TlvValue::$variant(<$t>::deserialize(d)?),)*
                    _ => return Ok(None),
                }))
            }
        }

        #[cfg(feature = "serde")]
        impl serde::Serialize for TlvValue {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                match self {
                    $(TlvValue::$variant(v) => v.serialize(s),)*
                }
            }
        }

        /// The standard's name of a TLV type.
        pub fn tlv_name(ty: u8) -> &'static str {
            match ty {
                $($ty => $label,)*
                23 => "Link parameter report list",
                24 => "Device states request",
                26 => "Device states response list",
                27 => "Get status request set",
                28 => "Get status response list",
                29 => "Configure request list",
                30 => "Configure response list",
                31 => "List of link PoA list",
                43 => "Info query binary data list",
                44 => "Info query RDF data list",
                45 => "Info query RDF schema URL",
                46 => "Info query RDF schema list",
                47 => "Max response size",
                48 => "Info response binary data list",
                49 => "Info response RDF data list",
                50 => "Info response RDF schema URL list",
                51 => "Info response RDF schema list",
                100 => "Vendor specific",
                64..=99 => "Reserved",
                _ => "Experimental",
            }
        }
    };
}

tlv_values! {
    1 SourceMihfId "Source MIHF ID": MihfId,
    2 DestinationMihfId "Destination MIHF ID": MihfId,
    3 Status "Status": Status,
    4 LinkType "Link type": LinkType,
    5 EventList "MIH event list": EventList,
    6 CommandList "MIH command list": CommandList,
    7 IsQueryTypeList "MIIS query type list": IsQueryTypeList,
    8 TransportList "Transport option list": TransportList,
    9 LinkAddressList "Link address list": List<NetTypeAddr>,
    10 MbbHoSupport "MBB handover support": List<MbbHoSupp>,
    11 RegisterRequestCode "Register request code": RegRequestCode,
    12 ValidTimeInterval "Valid time interval": u32,
    13 LinkIdentifier "Link identifier": LinkTupleId,
    14 NewLinkIdentifier "New link identifier": LinkTupleId,
    15 OldAccessRouter "Old access router": LinkAddr,
    16 NewAccessRouter "New access router": LinkAddr,
    17 IpRenewalFlag "IP renewal flag": bool,
    18 MobilityManagementSupport "Mobility management support": IpMobMgmt,
    19 IpConfigurationMethods "IP address configuration methods": IpCfgMethods,
    20 LinkDownReason "Link down reason code": LinkDnReason,
    21 TimeInterval "Time interval": u16,
    22 LinkGoingDownReason "Link going down reason": LinkGdReason,
    25 LinkIdentifierList "Link identifier list": List<LinkId>,
    32 PreferredLinkList "Preferred link list": List<RqResult>,
    33 HandoverResourceQueryList "Handover resource query list": QosList,
    34 HandoverStatus "Handover status": HoStatus,
    35 AccessRouterAddress "Access router address": TransportAddr,
    36 DhcpServerAddress "DHCP server address": TransportAddr,
    37 FaAddress "FA address": TransportAddr,
    38 LinkActionsList "Link actions list": List<LinkActionReq>,
    39 LinkActionsResultList "Link actions result list": List<LinkActionRsp>,
    40 HandoverResult "Handover result": HoResult,
    41 ResourceStatus "Resource status": bool,
    42 ResourceRetentionStatus "Resource retention status": bool,
    52 MnMihfId "MN MIHF ID": MihfId,
    53 QueryResourceReportFlag "Query resource report flag": bool,
    54 EventConfigurationInfoList "Event configuration info list": List<EvtCfgInfo>,
    55 TargetNetworkInfo "Target network info": TgtNetInfo,
    56 TargetNetworkInfoList "List of target network info": List<TgtNetInfo>,
    57 AssignedResourceSet "Assigned resource set": AsgnResSet,
    58 LinkDetectedInfoList "Link detected info list": List<LinkDetInfo>,
    59 MnLinkId "MN link ID": LinkId,
    60 Poa "PoA": LinkAddr,
    61 UnauthenticatedInformationRequest "Unauthenticated information request": bool,
    62 NetworkType "Network type": NetworkType,
    63 RequestedResourceSet "Requested resource set": ReqResSet,
}
