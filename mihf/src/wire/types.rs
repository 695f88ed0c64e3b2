//! Data types of IEEE 802.21-2008 Annex F carried by the messages.
//!
//! Conventions (Annex F): integers are big-endian; OCTET_STRING and LIST use
//! the length rule of [`super::tlv`]; a CHOICE is one selector octet (0 = the
//! first alternative) followed by the chosen value; SEQUENCE fields follow each
//! other untagged; BITMAP(n) is n/8 octets.
//!
//! Byte strings decode as [`Bytes`] slices of the frame; short addresses (MAC,
//! IPv4, IPv6) are copied inline into [`ShortBytes`], so the common messages
//! decode without touching the allocator.

use std::marker::PhantomData;

use bytes::{BufMut, Bytes, BytesMut};

use super::error::ValueError;
use super::info::OctetString;
use super::tlv::{encode_length, length_len, octet_string_len, put_octet_string, Reader, Value};

// ---------------------------------------------------------------------------
// Primitive values

impl Value for u8 {
    const NAME: &'static str = "UNSIGNED_INT(1)";
    fn decode(r: &mut Reader<'_>) -> Result<Self, ValueError> {
        r.u8(Self::NAME)
    }
    fn encoded_len(&self) -> usize {
        1
    }
    fn encode(&self, out: &mut BytesMut) {
        out.put_u8(*self)
    }
}

impl Value for u16 {
    const NAME: &'static str = "UNSIGNED_INT(2)";
    fn decode(r: &mut Reader<'_>) -> Result<Self, ValueError> {
        r.u16(Self::NAME)
    }
    fn encoded_len(&self) -> usize {
        2
    }
    fn encode(&self, out: &mut BytesMut) {
        out.put_u16(*self)
    }
}

impl Value for u32 {
    const NAME: &'static str = "UNSIGNED_INT(4)";
    fn decode(r: &mut Reader<'_>) -> Result<Self, ValueError> {
        r.u32(Self::NAME)
    }
    fn encoded_len(&self) -> usize {
        4
    }
    fn encode(&self, out: &mut BytesMut) {
        out.put_u32(*self)
    }
}

impl Value for bool {
    const NAME: &'static str = "BOOLEAN";
    fn decode(r: &mut Reader<'_>) -> Result<Self, ValueError> {
        r.boolean(Self::NAME)
    }
    fn encoded_len(&self) -> usize {
        1
    }
    fn encode(&self, out: &mut BytesMut) {
        out.put_u8(u8::from(*self))
    }
}

/// Serde helpers: byte strings as lowercase hex.
#[cfg(feature = "serde")]
pub mod hex_bytes {
    use bytes::Bytes;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::hex_string(b))
    }

    pub fn parse(text: &str) -> Result<Vec<u8>, String> {
        let clean: String = text.chars().filter(|c| *c != ':' && *c != ' ').collect();
        if clean.len() % 2 != 0 {
            return Err(format!("odd number of hex digits in {text:?}"));
        }
        (0..clean.len())
            .step_by(2)
            .map(|i| {
                u8::from_str_radix(&clean[i..i + 2], 16).map_err(|_| format!("bad hex {text:?}"))
            })
            .collect()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map(Bytes::from).map_err(D::Error::custom)
    }
}

// ---------------------------------------------------------------------------
// Enumerations kept as newtypes, so unknown values survive a round trip.

macro_rules! u8_enum {
    ($(#[$m:meta])* $name:ident, $std:literal { $($(#[$cm:meta])* $c:ident = $v:literal, $label:literal;)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
        #[cfg_attr(feature = "serde", serde(transparent))]
        pub struct $name(pub u8);

        impl $name {
            $($(#[$cm])* pub const $c: $name = $name($v);)*

            /// The standard's name for this value, if it has one.
            pub const fn label(self) -> Option<&'static str> {
                match self.0 {
                    $($v => Some($label),)*
                    _ => None,
                }
            }
        }

        impl Value for $name {
            const NAME: &'static str = $std;
            fn decode(r: &mut Reader<'_>) -> Result<Self, ValueError> {
                r.u8(Self::NAME).map($name)
            }
            fn encoded_len(&self) -> usize {
                1
            }
            fn encode(&self, out: &mut BytesMut) {
                out.put_u8(self.0)
            }
        }
    };
}

u8_enum!(
    /// STATUS (TLV 3).
    Status, "STATUS" {
        SUCCESS = 0, "Success";
        UNSPECIFIED_FAILURE = 1, "Unspecified Failure";
        REJECTED = 2, "Rejected";
        AUTHORIZATION_FAILURE = 3, "Authorization Failure";
        NETWORK_ERROR = 4, "Network Error";
    }
);

impl Status {
    pub const fn is_success(self) -> bool {
        self.0 == 0
    }
}

u8_enum!(
    /// LINK_TYPE (TLV 4), numbered after the IANA ifType values.
    LinkType, "LINK_TYPE" {
        GSM = 1, "GSM";
        GPRS = 2, "GPRS";
        EDGE = 3, "EDGE";
        ETHERNET = 15, "Ethernet";
        WIRELESS_OTHER = 18, "Wireless - Other";
        IEEE_802_11 = 19, "Wireless - IEEE 802.11";
        CDMA2000 = 22, "Wireless - CDMA2000";
        UMTS = 23, "Wireless - UMTS";
        CDMA2000_HRPD = 24, "Wireless - cdma2000-HRPD";
        IEEE_802_16 = 27, "Wireless - IEEE 802.16";
        IEEE_802_20 = 28, "Wireless - IEEE 802.20";
        IEEE_802_22 = 29, "Wireless - IEEE 802.22";
    }
);

u8_enum!(
    /// REG_REQUEST_CODE (TLV 11).
    RegRequestCode, "REG_REQUEST_CODE" {
        REGISTRATION = 0, "Registration";
        RE_REGISTRATION = 1, "Re-Registration";
    }
);

u8_enum!(
    /// LINK_DN_REASON (TLV 20).
    LinkDnReason, "LINK_DN_REASON" {
        EXPLICIT_DISCONNECT = 0, "Explicit Disconnect";
        PACKET_TIMEOUT = 1, "Packet Timeout";
        NO_RESOURCE = 2, "No Resource";
        NO_BROADCAST = 3, "No Broadcast";
        AUTHENTICATION_FAILURE = 4, "Authentication Failure";
        BILLING_FAILURE = 5, "Billing Failure";
    }
);

u8_enum!(
    /// LINK_GD_REASON (TLV 22).
    LinkGdReason, "LINK_GD_REASON" {
        EXPLICIT_DISCONNECT = 0, "Explicit Disconnect";
        LINK_PARAMETER_DEGRADING = 1, "Link Parameter Degrading";
        LOW_POWER = 2, "Low Power";
        NO_RESOURCE = 3, "No Resource";
    }
);

u8_enum!(
    /// HO_STATUS (TLV 34).
    HoStatus, "HO_STATUS" {
        HANDOVER_PERMITTED = 0, "HandoverPermitted";
        HANDOVER_DECLINED = 1, "HandoverDeclined";
    }
);

u8_enum!(
    /// HO_RESULT (TLV 40).
    HoResult, "HO_RESULT" {
        SUCCESS = 0, "Success";
        FAILURE = 1, "Failure";
        REJECTED = 2, "Rejected";
    }
);

impl HoResult {
    /// True for "Rejected": 2 in the standard, 3 in ODTONE's C++ MIHF.
    pub const fn is_rejected(self) -> bool {
        self.0 == 2 || self.0 == 3
    }
}

u8_enum!(
    /// HO_CAUSE, the last field of REQ_RES_SET.
    HoCause, "HO_CAUSE" {
        EXPLICIT_DISCONNECT = 0, "Explicit Disconnect";
        PACKET_TIMEOUT = 1, "Packet Timeout";
        NO_RESOURCE = 2, "No Resource";
        NO_BROADCAST = 3, "No Broadcast";
        AUTHENTICATION_FAILURE = 4, "Authentication Failure";
        BILLING_FAILURE = 5, "Billing Failure";
    }
);

// ---------------------------------------------------------------------------
// Bitmaps

macro_rules! bitmap {
    ($(#[$m:meta])* $name:ident($int:ty), $std:literal, $get:ident, $put:ident { $($(#[$cm:meta])* $c:ident = $bit:literal;)* }) => {
        $(#[$m])*
        ///
        /// Bit `i` is the value `2^i` of the big-endian integer on the wire (so
        /// bit 0 is the least significant bit of the last octet), the order of
        /// IEEE 802.21-2008 and ODTONE. Wireshark numbers the other way; see
        /// [`Self::reversed`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
        #[cfg_attr(feature = "serde", serde(transparent))]
        pub struct $name(pub $int);

        impl $name {
            $($(#[$cm])* pub const $c: $name = $name(1 << $bit);)*

            /// True when every bit of `other` is set here.
            pub const fn contains(self, other: $name) -> bool {
                self.0 & other.0 == other.0
            }
            /// The union of two bitmaps.
            pub const fn union(self, other: $name) -> $name {
                $name(self.0 | other.0)
            }
            /// The same set with bit `i` moved to bit `n-1-i`: converts between
            /// the LSB-first numbering used here and a peer that numbers bit 0
            /// as the most significant bit of the first octet.
            pub const fn reversed(self) -> $name {
                $name(self.0.reverse_bits())
            }
        }

        impl std::ops::BitOr for $name {
            type Output = $name;
            fn bitor(self, rhs: $name) -> $name {
                self.union(rhs)
            }
        }

        impl Value for $name {
            const NAME: &'static str = $std;
            fn decode(r: &mut Reader<'_>) -> Result<Self, ValueError> {
                r.$get(Self::NAME).map($name)
            }
            fn encoded_len(&self) -> usize {
                std::mem::size_of::<$int>()
            }
            fn encode(&self, out: &mut BytesMut) {
                out.$put(self.0)
            }
        }
    };
}

pub(crate) use bitmap;

bitmap!(
    /// MIH_EVT_LIST (TLV 5), BITMAP(32).
    EventList(u32), "MIH_EVT_LIST", u32, put_u32 {
        LINK_DETECTED = 0;
        LINK_UP = 1;
        LINK_DOWN = 2;
        LINK_PARAMETERS_REPORT = 3;
        LINK_GOING_DOWN = 4;
        LINK_HANDOVER_IMMINENT = 5;
        LINK_HANDOVER_COMPLETE = 6;
        LINK_PDU_TRANSMIT_STATUS = 7;
    }
);

bitmap!(
    /// MIH_CMD_LIST (TLV 6), BITMAP(32).
    CommandList(u32), "MIH_CMD_LIST", u32, put_u32 {
        LINK_GET_PARAMETERS = 0;
        LINK_CONFIGURE_THRESHOLDS = 1;
        LINK_ACTIONS = 2;
        /// MIH_Net_HO_Candidate_Query, MIH_Net_HO_Commit,
        /// MIH_N2N_HO_Query_Resources, MIH_N2N_HO_Commit, MIH_N2N_HO_Complete.
        NET_HO = 3;
        /// MIH_MN_HO_Candidate_Query, MIH_MN_HO_Commit, MIH_MN_HO_Complete.
        MN_HO = 4;
    }
);

bitmap!(
    /// MIH_IQ_TYPE_LST (TLV 7), BITMAP(64).
    IsQueryTypeList(u64), "MIH_IQ_TYPE_LST", u64, put_u64 {
        BINARY_DATA = 0;
        RDF_DATA = 1;
        RDF_SCHEMA_URL = 2;
        RDF_SCHEMA = 3;
    }
);

bitmap!(
    /// MIH_TRANS_LST (TLV 8), BITMAP(16).
    TransportList(u16), "MIH_TRANS_LST", u16, put_u16 {
        UDP = 0;
        TCP = 1;
    }
);

bitmap!(
    /// IP_MOB_MGMT (TLV 18), BITMAP(16): mobility management protocols supported.
    IpMobMgmt(u16), "IP_MOB_MGMT", u16, put_u16 {
        MOBILE_IPV4 = 0;
        MOBILE_IPV4_REG_REVOCATION = 1;
        MOBILE_IPV6 = 2;
        HIERARCHICAL_MOBILE_IPV6 = 3;
        LOW_LATENCY_HANDOFFS = 4;
        MOBILE_IPV6_FAST_HANDOVERS = 5;
        IKEV2_MOBILITY_MULTIHOMING = 6;
    }
);

bitmap!(
    /// IP_CFG_MTHDS (TLV 19), BITMAP(32): IP address configuration methods.
    IpCfgMethods(u32), "IP_CFG_MTHDS", u32, put_u32 {
        IPV4_STATIC = 0;
        IPV4_DHCP = 1;
        MOBILE_IPV4_FA_COA = 2;
        MOBILE_IPV4_COLOCATED_COA = 3;
        IPV6_STATELESS = 11;
        IPV6_DHCP = 12;
        IPV6_MANUAL = 13;
    }
);

// ---------------------------------------------------------------------------
// Strings and addresses

/// MIHF_ID (TLVs 1, 2, 52): an NAI of at most 253 octets. An empty ID is the
/// broadcast destination.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MihfId(pub Bytes);

impl MihfId {
    /// Longest MIHF ID the standard allows (an NAI).
    pub const MAX_LEN: usize = 253;

    pub fn new(id: impl Into<Bytes>) -> MihfId {
        MihfId(id.into())
    }
    pub const fn from_static(id: &'static str) -> MihfId {
        MihfId(Bytes::from_static(id.as_bytes()))
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    /// The ID as text, if it is UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }
    /// True for the empty (broadcast) ID.
    pub fn is_broadcast(&self) -> bool {
        self.0.is_empty()
    }
}

/// Text safe for a terminal or a log line: printable characters as they
/// are, a backslash as `\\`, control and other non-printable characters
/// as Rust's `escape_debug` writes them (`\n`, `\t`, `\u{1b}`, ...), and
/// octets that are not UTF-8 as `\xNN`. Distinct inputs render distinctly.
impl std::fmt::Display for MihfId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        Escaped(&self.0).fmt(f)
    }
}

/// Peer-supplied octets (an ID, a reason string, a name) for a log line or
/// a terminal: see the [`Display`](std::fmt::Display) of [`MihfId`].
/// `Escaped(text.as_bytes())` or `Escaped::new(&text)`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Escaped<'a>(pub &'a [u8]);

impl<'a> Escaped<'a> {
    pub fn new(text: &'a (impl AsRef<[u8]> + ?Sized)) -> Escaped<'a> {
        Escaped(text.as_ref())
    }
}

impl std::fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write_escaped(f, self.0, false)
    }
}

/// In double quotes, with the quotes inside escaped too.
impl std::fmt::Debug for Escaped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"")?;
        write_escaped(f, self.0, true)?;
        f.write_str("\"")
    }
}

fn write_escaped(f: &mut std::fmt::Formatter<'_>, text: &[u8], quotes: bool) -> std::fmt::Result {
    use std::fmt::Write as _;
    for chunk in text.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                '"' if quotes => f.write_str("\\\"")?,
                // Printable, although escape_debug would escape them.
                '"' | '\'' => f.write_char(c)?,
                c => write!(f, "{}", c.escape_debug())?,
            }
        }
        for b in chunk.invalid() {
            write!(f, "\\x{b:02x}")?;
        }
    }
    Ok(())
}

impl Value for MihfId {
    const NAME: &'static str = "MIHF_ID";
    fn decode(r: &mut Reader<'_>) -> Result<Self, ValueError> {
        r.octet_string(Self::NAME).map(MihfId)
    }
    fn encoded_len(&self) -> usize {
        octet_string_len(self.0.len())
    }
    fn encode(&self, out: &mut BytesMut) {
        put_octet_string(&self.0, out)
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for MihfId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.as_str() {
            Some(text) if !text.chars().any(char::is_control) => s.serialize_str(text),
            _ => {
                use serde::ser::SerializeMap;
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("hex", &hex_string(&self.0))?;
                m.end()
            }
        }
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for MihfId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Form {
            Text(String),
            Hex { hex: String },
        }
        match Form::deserialize(d)? {
            Form::Text(t) => Ok(MihfId(Bytes::from(t))),
            Form::Hex { hex } => hex_bytes::parse(&hex)
                .map(|v| MihfId(Bytes::from(v)))
                .map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(feature = "serde")]
pub(crate) fn hex_string(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Up to 16 octets held inline, or a shared slice for anything longer.
/// Addresses (MAC, IPv4, IPv6) take the inline form and cost no allocation.
#[derive(Clone)]
pub enum ShortBytes {
    Inline { len: u8, data: [u8; 16] },
    Shared(Bytes),
}

impl ShortBytes {
    pub fn new(b: &[u8]) -> ShortBytes {
        if b.len() <= 16 {
            let mut data = [0u8; 16];
            data[..b.len()].copy_from_slice(b);
            ShortBytes::Inline {
                len: b.len() as u8,
                data,
            }
        } else {
            ShortBytes::Shared(Bytes::copy_from_slice(b))
        }
    }
    pub fn as_slice(&self) -> &[u8] {
        match self {
            ShortBytes::Inline { len, data } => &data[..usize::from(*len)],
            ShortBytes::Shared(b) => b,
        }
    }
}

impl std::ops::Deref for ShortBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl PartialEq for ShortBytes {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}
impl Eq for ShortBytes {}

impl std::hash::Hash for ShortBytes {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state)
    }
}

impl std::fmt::Debug for ShortBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, b) in self.as_slice().iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// TRANSPORT_ADDR: an IANA address family and the address octets. MAC_ADDR
/// and IP_ADDR are both of this shape.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(into = "json::TransportAddrJson", try_from = "json::TransportAddrJson")
)]
pub struct TransportAddr {
    /// IANA address family number: 1 IPv4, 2 IPv6, 6 IEEE 802 (MAC).
    pub family: u16,
    pub addr: ShortBytes,
}

impl TransportAddr {
    pub const FAMILY_IPV4: u16 = 1;
    pub const FAMILY_IPV6: u16 = 2;
    pub const FAMILY_IEEE802: u16 = 6;

    /// An IEEE 802 MAC address.
    pub fn mac(mac: [u8; 6]) -> TransportAddr {
        TransportAddr {
            family: Self::FAMILY_IEEE802,
            addr: ShortBytes::new(&mac),
        }
    }
    /// An IP address with the matching family.
    pub fn ip(ip: std::net::IpAddr) -> TransportAddr {
        match ip {
            std::net::IpAddr::V4(a) => TransportAddr {
                family: Self::FAMILY_IPV4,
                addr: ShortBytes::new(&a.octets()),
            },
            std::net::IpAddr::V6(a) => TransportAddr {
                family: Self::FAMILY_IPV6,
                addr: ShortBytes::new(&a.octets()),
            },
        }
    }
    /// The MAC address, if this is a 6-octet IEEE 802 address.
    pub fn as_mac(&self) -> Option<[u8; 6]> {
        (self.family == Self::FAMILY_IEEE802)
            .then(|| <[u8; 6]>::try_from(self.addr.as_slice()).ok())
            .flatten()
    }
    /// The IP address, if this is a well-formed IPv4 or IPv6 address.
    pub fn as_ip(&self) -> Option<std::net::IpAddr> {
        match self.family {
            Self::FAMILY_IPV4 => <[u8; 4]>::try_from(self.addr.as_slice())
                .ok()
                .map(std::net::IpAddr::from),
            Self::FAMILY_IPV6 => <[u8; 16]>::try_from(self.addr.as_slice())
                .ok()
                .map(std::net::IpAddr::from),
            _ => None,
        }
    }
}

impl Value for TransportAddr {
    const NAME: &'static str = "TRANSPORT_ADDR";
    fn decode(r: &mut Reader<'_>) -> Result<Self, ValueError> {
        let family = r.u16("TRANSPORT_ADDR address family")?;
        let n = r.length("TRANSPORT_ADDR address")?;
        let addr = if n <= 16 {
            ShortBytes::new(r.slice(n, "TRANSPORT_ADDR address")?)
        } else {
            ShortBytes::Shared(r.bytes(n, "TRANSPORT_ADDR address")?)
        };
        Ok(TransportAddr { family, addr })
    }
    fn encoded_len(&self) -> usize {
        2 + octet_string_len(self.addr.len())
    }
    fn encode(&self, out: &mut BytesMut) {
        out.put_u16(self.family);
        put_octet_string(&self.addr, out);
    }
}

/// LINK_ADDR: the address of a link, a CHOICE of six forms.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(into = "json::LinkAddrJson", try_from = "json::LinkAddrJson")
)]
pub enum LinkAddr {
    /// 0: MAC_ADDR.
    Mac(TransportAddr),
    /// 1: 3GPP_3G_CELL_ID: PLMN_ID (3 octets) and CELL_ID (4 octets).
    Cell3g { plmn_id: [u8; 3], cell_id: u32 },
    /// 2: 3GPP_2G_CELL_ID: PLMN_ID, LAC (2 octets) and CI (2 octets).
    Cell2g { plmn_id: [u8; 3], lac: u16, ci: u16 },
    /// 3: 3GPP_ADDR (OCTET_STRING).
    ThreeGpp(Bytes),
    /// 4: 3GPP2_ADDR (OCTET_STRING).
    ThreeGpp2(Bytes),
    /// 5: OTHER_L2_ADDR (OCTET_STRING).
    OtherL2(Bytes),
}

impl LinkAddr {
    /// A MAC link address.
    pub fn mac(mac: [u8; 6]) -> LinkAddr {
        LinkAddr::Mac(TransportAddr::mac(mac))
    }
    fn selector(&self) -> u8 {
        match self {
            LinkAddr::Mac(_) => 0,
            LinkAddr::Cell3g { .. } => 1,
            LinkAddr::Cell2g { .. } => 2,
            LinkAddr::ThreeGpp(_) => 3,
            LinkAddr::ThreeGpp2(_) => 4,
            LinkAddr::OtherL2(_) => 5,
        }
    }
}

impl Value for LinkAddr {
    const NAME: &'static str = "LINK_ADDR";
    fn decode(r: &mut Reader<'_>) -> Result<Self, ValueError> {
        Ok(match r.selector(Self::NAME)? {
            0 => LinkAddr::Mac(TransportAddr::decode(r)?),
            1 => LinkAddr::Cell3g {
                plmn_id: r.array("PLMN_ID")?,
                cell_id: r.u32("CELL_ID")?,
            },
            2 => LinkAddr::Cell2g {
                plmn_id: r.array("PLMN_ID")?,
                lac: r.u16("LAC")?,
                ci: r.u16("CI")?,
            },
            3 => LinkAddr::ThreeGpp(r.octet_string("3GPP_ADDR")?),
            4 => LinkAddr::ThreeGpp2(r.octet_string("3GPP2_ADDR")?),
            5 => LinkAddr::OtherL2(r.octet_string("OTHER_L2_ADDR")?),
            selector => {
                return Err(ValueError::BadChoice {
                    field: Self::NAME,
                    selector,
                })
            }
        })
    }
    fn encoded_len(&self) -> usize {
        1 + match self {
            LinkAddr::Mac(a) => a.encoded_len(),
            LinkAddr::Cell3g { .. } => 7,
            LinkAddr::Cell2g { .. } => 7,
            LinkAddr::ThreeGpp(b) | LinkAddr::ThreeGpp2(b) | LinkAddr::OtherL2(b) => {
                octet_string_len(b.len())
            }
        }
    }
    fn encode(&self, out: &mut BytesMut) {
        out.put_u8(self.selector());
        match self {
            LinkAddr::Mac(a) => a.encode(out),
            LinkAddr::Cell3g { plmn_id, cell_id } => {
                out.put_slice(plmn_id);
                out.put_u32(*cell_id);
            }
            LinkAddr::Cell2g { plmn_id, lac, ci } => {
                out.put_slice(plmn_id);
                out.put_u16(*lac);
                out.put_u16(*ci);
            }
            LinkAddr::ThreeGpp(b) | LinkAddr::ThreeGpp2(b) | LinkAddr::OtherL2(b) => {
                put_octet_string(b, out)
            }
        }
    }
}

/// LINK_ID: a link type and a link address (TLV 59, and inside many others).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LinkId {
    pub link_type: LinkType,
    pub addr: LinkAddr,
}

impl Value for LinkId {
    const NAME: &'static str = "LINK_ID";
    fn decode(r: &mut Reader<'_>) -> Result<Self, ValueError> {
        Ok(LinkId {
            link_type: LinkType::decode(r)?,
            addr: LinkAddr::decode(r)?,
        })
    }
    fn encoded_len(&self) -> usize {
        1 + self.addr.encoded_len()
    }
    fn encode(&self, out: &mut BytesMut) {
        self.link_type.encode(out);
        self.addr.encode(out);
    }
}

/// LINK_TUPLE_ID: a LINK_ID and, optionally, the PoA's link address
/// (TLVs 13 and 14).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LinkTupleId {
    pub link: LinkId,
    pub poa: Option<LinkAddr>,
}

impl Value for LinkTupleId {
    const NAME: &'static str = "LINK_TUPLE_ID";
    fn decode(r: &mut Reader<'_>) -> Result<Self, ValueError> {
        Ok(LinkTupleId {
            link: LinkId::decode(r)?,
            poa: decode_option(r, "LINK_TUPLE_ID PoA")?,
        })
    }
    fn encoded_len(&self) -> usize {
        self.link.encoded_len() + option_len(&self.poa)
    }
    fn encode(&self, out: &mut BytesMut) {
        self.link.encode(out);
        encode_option(&self.poa, out);
    }
}

/// CHOICE(NULL, T): selector 0 is absent, 1 is present.
pub fn decode_option<T: Value>(
    r: &mut Reader<'_>,
    field: &'static str,
) -> Result<Option<T>, ValueError> {
    match r.selector(field)? {
        0 => Ok(None),
        1 => T::decode(r).map(Some),
        selector => Err(ValueError::BadChoice { field, selector }),
    }
}

/// Encoded size of CHOICE(NULL, T).
pub fn option_len<T: Value>(v: &Option<T>) -> usize {
    1 + v.as_ref().map_or(0, Value::encoded_len)
}

/// Append CHOICE(NULL, T).
pub fn encode_option<T: Value>(v: &Option<T>, out: &mut BytesMut) {
    match v {
        None => out.put_u8(0),
        Some(v) => {
            out.put_u8(1);
            v.encode(out);
        }
    }
}

// ---------------------------------------------------------------------------
// LIST(T)

/// LIST(T): an element count and the elements back to back. The list is
/// validated when decoded and keeps its encoded elements as one shared slice;
/// [`List::iter`] decodes elements on demand.
pub struct List<T> {
    count: usize,
    raw: Bytes,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for List<T> {
    fn clone(&self) -> Self {
        List {
            count: self.count,
            raw: self.raw.clone(),
            _t: PhantomData,
        }
    }
}

impl<T> PartialEq for List<T> {
    fn eq(&self, other: &Self) -> bool {
        self.count == other.count && self.raw == other.raw
    }
}
impl<T> Eq for List<T> {}

impl<T> std::hash::Hash for List<T> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.count.hash(state);
        self.raw.hash(state);
    }
}

impl<T: Value + std::fmt::Debug> std::fmt::Debug for List<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<T> Default for List<T> {
    fn default() -> Self {
        List {
            count: 0,
            raw: Bytes::new(),
            _t: PhantomData,
        }
    }
}

impl<T: Value> List<T> {
    /// An empty list.
    pub fn empty() -> List<T> {
        List::default()
    }
    /// Encode `items` into a list.
    pub fn from_items<'i>(items: impl IntoIterator<Item = &'i T>) -> List<T>
    where
        T: 'i,
    {
        let mut raw = BytesMut::new();
        let mut count = 0;
        for item in items {
            item.encode(&mut raw);
            count += 1;
        }
        List {
            count,
            raw: raw.freeze(),
            _t: PhantomData,
        }
    }
    pub fn len(&self) -> usize {
        self.count
    }
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
    /// The encoded elements (without the count).
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }
    /// Decode the elements one by one.
    pub fn iter(&self) -> ListIter<'_, T> {
        ListIter {
            raw: &self.raw,
            pos: 0,
            left: self.count,
            _t: PhantomData,
        }
    }
    /// Decode every element into a vector.
    pub fn to_vec(&self) -> Vec<T> {
        self.iter().collect()
    }
}

impl<T: Value> FromIterator<T> for List<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let items: Vec<T> = iter.into_iter().collect();
        List::from_items(&items)
    }
}

/// Iterator over a [`List`]'s elements.
pub struct ListIter<'a, T> {
    raw: &'a Bytes,
    pos: usize,
    left: usize,
    _t: PhantomData<fn() -> T>,
}

impl<T: Value> Iterator for ListIter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        if self.left == 0 {
            return None;
        }
        let mut r = Reader::within(self.raw, &self.raw[self.pos..]);
        // The list was validated when it was decoded or built.
        let item = T::decode(&mut r).ok()?;
        self.pos = r.position();
        self.left -= 1;
        Some(item)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left))
    }
}

impl<T: Value> Value for List<T> {
    const NAME: &'static str = "LIST";
    fn decode(r: &mut Reader<'_>) -> Result<Self, ValueError> {
        let count = r.length("LIST count")?;
        if count > r.remaining() {
            return Err(ValueError::ListTooLong {
                field: T::NAME,
                count,
                have: r.remaining(),
            });
        }
        let start = r.position();
        for _ in 0..count {
            T::decode(r)?;
        }
        Ok(List {
            count,
            raw: r.since(start),
            _t: PhantomData,
        })
    }
    fn encoded_len(&self) -> usize {
        length_len(self.count) + self.raw.len()
    }
    fn encode(&self, out: &mut BytesMut) {
        encode_length(self.count, out);
        out.put_slice(&self.raw);
    }
}

#[cfg(feature = "serde")]
impl<T: Value + serde::Serialize> serde::Serialize for List<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

#[cfg(feature = "serde")]
impl<'de, T: Value + serde::Deserialize<'de>> serde::Deserialize<'de> for List<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let items = Vec::<T>::deserialize(d)?;
        Ok(List::from_items(&items))
    }
}

// ---------------------------------------------------------------------------
// Resources (N2N handover commands)

/// A class-of-service value: COS_ID and a 16-bit figure (a delay in ms, a
/// jitter in ms, or a loss rate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct CosValue {
    pub cos_id: u8,
    pub value: u16,
}

impl Value for CosValue {
    const NAME: &'static str = "COS";
    fn decode(r: &mut Reader<'_>) -> Result<Self, ValueError> {
        Ok(CosValue {
            cos_id: r.u8("COS_ID")?,
            value: r.u16("COS value")?,
        })
    }
    fn encoded_len(&self) -> usize {
        3
    }
    fn encode(&self, out: &mut BytesMut) {
        out.put_u8(self.cos_id);
        out.put_u16(self.value);
    }
}

/// QOS_LIST (TLV 33, and inside REQ_RES_SET / ASGN_RES_SET): the number of
/// classes of service and five LIST(COS) figures.
///
/// Held compactly, as the encoded lists (one shared slice of the frame) and
/// where each ends; the accessors hand out [`List`] views.
#[derive(Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(into = "json_qos::QosListJson", from = "json_qos::QosListJson")
)]
pub struct QosList {
    /// NUM_COS_TYPES.
    pub num_cos_types: u8,
    raw: Bytes,
    ends: [u32; 5],
}

impl QosList {
    /// Build from the five figure lists, in the standard's order.
    pub fn new(
        num_cos_types: u8,
        min_pk_tx_delay: &[CosValue],
        avg_pk_tx_delay: &[CosValue],
        max_pk_tx_delay: &[CosValue],
        pk_delay_jitter: &[CosValue],
        pk_loss_rate: &[CosValue],
    ) -> QosList {
        let mut raw = BytesMut::new();
        let mut ends = [0u32; 5];
        let lists = [
            min_pk_tx_delay,
            avg_pk_tx_delay,
            max_pk_tx_delay,
            pk_delay_jitter,
            pk_loss_rate,
        ];
        for (i, items) in lists.iter().enumerate() {
            List::from_items(items.iter()).encode(&mut raw);
            ends[i] = raw.len() as u32;
        }
        QosList {
            num_cos_types,
            raw: raw.freeze(),
            ends,
        }
    }

    fn list(&self, i: usize) -> List<CosValue> {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        let part = self.raw.slice(start..self.ends[i] as usize);
        // Validated when decoded or built.
        List::from_bytes(&part).unwrap_or_default()
    }
    /// MIN_PK_TX_DELAY per class, ms.
    pub fn min_pk_tx_delay(&self) -> List<CosValue> {
        self.list(0)
    }
    /// AVG_PK_TX_DELAY per class, ms.
    pub fn avg_pk_tx_delay(&self) -> List<CosValue> {
        self.list(1)
    }
    /// MAX_PK_TX_DELAY per class, ms.
    pub fn max_pk_tx_delay(&self) -> List<CosValue> {
        self.list(2)
    }
    /// PK_DELAY_JITTER per class, ms.
    pub fn pk_delay_jitter(&self) -> List<CosValue> {
        self.list(3)
    }
    /// PK_LOSS_RATE per class.
    pub fn pk_loss_rate(&self) -> List<CosValue> {
        self.list(4)
    }
}

impl Default for QosList {
    /// No classes and five empty lists (six octets on the wire).
    fn default() -> Self {
        QosList::new(0, &[], &[], &[], &[], &[])
    }
}

impl std::fmt::Debug for QosList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QosList")
            .field("num_cos_types", &self.num_cos_types)
            .field("min_pk_tx_delay", &self.min_pk_tx_delay())
            .field("avg_pk_tx_delay", &self.avg_pk_tx_delay())
            .field("max_pk_tx_delay", &self.max_pk_tx_delay())
            .field("pk_delay_jitter", &self.pk_delay_jitter())
            .field("pk_loss_rate", &self.pk_loss_rate())
            .finish()
    }
}

impl Value for QosList {
    const NAME: &'static str = "QOS_LIST";
    fn decode(r: &mut Reader<'_>) -> Result<Self, ValueError> {
        let num_cos_types = r.u8("NUM_COS_TYPES")?;
        let start = r.position();
        let mut ends = [0u32; 5];
        for end in ends.iter_mut() {
            skip_list::<CosValue>(r)?;
            *end = (r.position() - start) as u32;
        }
        Ok(QosList {
            num_cos_types,
            raw: r.since(start),
            ends,
        })
    }
    fn encoded_len(&self) -> usize {
        1 + self.raw.len()
    }
    fn encode(&self, out: &mut BytesMut) {
        out.put_u8(self.num_cos_types);
        out.put_slice(&self.raw);
    }
}

/// Validate and step over one LIST(T) without keeping it.
fn skip_list<T: Value>(r: &mut Reader<'_>) -> Result<(), ValueError> {
    let count = r.length("LIST count")?;
    if count > r.remaining() {
        return Err(ValueError::ListTooLong {
            field: T::NAME,
            count,
            have: r.remaining(),
        });
    }
    for _ in 0..count {
        T::decode(r)?;
    }
    Ok(())
}

#[cfg(feature = "serde")]
mod json_qos {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize)]
    pub struct QosListJson {
        num_cos_types: u8,
        min_pk_tx_delay: Vec<CosValue>,
        avg_pk_tx_delay: Vec<CosValue>,
        max_pk_tx_delay: Vec<CosValue>,
        pk_delay_jitter: Vec<CosValue>,
        pk_loss_rate: Vec<CosValue>,
    }

    impl From<QosList> for QosListJson {
        fn from(q: QosList) -> Self {
            QosListJson {
                num_cos_types: q.num_cos_types,
                min_pk_tx_delay: q.min_pk_tx_delay().to_vec(),
                avg_pk_tx_delay: q.avg_pk_tx_delay().to_vec(),
                max_pk_tx_delay: q.max_pk_tx_delay().to_vec(),
                pk_delay_jitter: q.pk_delay_jitter().to_vec(),
                pk_loss_rate: q.pk_loss_rate().to_vec(),
            }
        }
    }

    impl From<QosListJson> for QosList {
        fn from(j: QosListJson) -> Self {
            QosList::new(
                j.num_cos_types,
                &j.min_pk_tx_delay,
                &j.avg_pk_tx_delay,
                &j.max_pk_tx_delay,
                &j.pk_delay_jitter,
                &j.pk_loss_rate,
            )
        }
    }
}

/// TSP_CONTAINER: transport service parameters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum TspContainer {
    /// 0: none.
    #[default]
    Null,
    /// 1: a pre-defined configuration identifier.
    PredefCfgId(u8),
    /// 2: a TSP carrier (OCTET_STRING).
    Carrier(OctetString),
}

impl Value for TspContainer {
    const NAME: &'static str = "TSP_CONTAINER";
    fn decode(r: &mut Reader<'_>) -> Result<Self, ValueError> {
        Ok(match r.selector(Self::NAME)? {
            0 => TspContainer::Null,
            1 => TspContainer::PredefCfgId(r.u8("PREDEF_CFG_ID")?),
            2 => TspContainer::Carrier(OctetString::decode(r)?),
            selector => {
                return Err(ValueError::BadChoice {
                    field: Self::NAME,
                    selector,
                })
            }
        })
    }
    fn encoded_len(&self) -> usize {
        1 + match self {
            TspContainer::Null => 0,
            TspContainer::PredefCfgId(_) => 1,
            TspContainer::Carrier(b) => b.encoded_len(),
        }
    }
    fn encode(&self, out: &mut BytesMut) {
        match self {
            TspContainer::Null => out.put_u8(0),
            TspContainer::PredefCfgId(id) => {
                out.put_u8(1);
                out.put_u8(*id);
            }
            TspContainer::Carrier(b) => {
                out.put_u8(2);
                b.encode(out);
            }
        }
    }
}

/// REQ_RES_SET (TLV 63): the resources the target network is asked to reserve.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ReqResSet {
    pub qos: QosList,
    pub tsp: TspContainer,
    pub ho_cause: HoCause,
}

impl Value for ReqResSet {
    const NAME: &'static str = "REQ_RES_SET";
    fn decode(r: &mut Reader<'_>) -> Result<Self, ValueError> {
        Ok(ReqResSet {
            qos: QosList::decode(r)?,
            tsp: TspContainer::decode(r)?,
            ho_cause: HoCause::decode(r)?,
        })
    }
    fn encoded_len(&self) -> usize {
        self.qos.encoded_len() + self.tsp.encoded_len() + 1
    }
    fn encode(&self, out: &mut BytesMut) {
        self.qos.encode(out);
        self.tsp.encode(out);
        self.ho_cause.encode(out);
    }
}

/// ASGN_RES_SET (TLV 57): the resources the target network reserved.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct AsgnResSet {
    pub qos: QosList,
    pub tsp: TspContainer,
}

impl Value for AsgnResSet {
    const NAME: &'static str = "ASGN_RES_SET";
    fn decode(r: &mut Reader<'_>) -> Result<Self, ValueError> {
        Ok(AsgnResSet {
            qos: QosList::decode(r)?,
            tsp: TspContainer::decode(r)?,
        })
    }
    fn encoded_len(&self) -> usize {
        self.qos.encoded_len() + self.tsp.encoded_len()
    }
    fn encode(&self, out: &mut BytesMut) {
        self.qos.encode(out);
        self.tsp.encode(out);
    }
}

/// JSON forms of the address types: `{"mac": "02:aa:bb:cc:dd:01"}`,
/// `{"ipv4": "192.0.2.1"}`, `{"cell_3g": {"plmn_id": "00f110", "cell_id": 1}}`...
#[cfg(feature = "serde")]
mod json {
    use super::*;
    use serde::{Deserialize, Serialize};

    fn colon_hex(b: &[u8]) -> String {
        let parts: Vec<String> = b.iter().map(|x| format!("{x:02x}")).collect();
        parts.join(":")
    }

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum TransportAddrJson {
        Mac(String),
        Ipv4(std::net::Ipv4Addr),
        Ipv6(std::net::Ipv6Addr),
        Other { family: u16, hex: String },
    }

    impl From<TransportAddr> for TransportAddrJson {
        fn from(a: TransportAddr) -> Self {
            if let Some(mac) = a.as_mac() {
                return TransportAddrJson::Mac(colon_hex(&mac));
            }
            match a.as_ip() {
                Some(std::net::IpAddr::V4(v4)) => TransportAddrJson::Ipv4(v4),
                Some(std::net::IpAddr::V6(v6)) => TransportAddrJson::Ipv6(v6),
                None => TransportAddrJson::Other {
                    family: a.family,
                    hex: hex_string(&a.addr),
                },
            }
        }
    }

    impl TryFrom<TransportAddrJson> for TransportAddr {
        type Error = String;
        fn try_from(j: TransportAddrJson) -> Result<Self, String> {
            Ok(match j {
                TransportAddrJson::Mac(text) => {
                    let b = hex_bytes::parse(&text)?;
                    let mac: [u8; 6] = b
                        .try_into()
                        .map_err(|_| format!("MAC address {text:?} is not 6 octets"))?;
                    TransportAddr::mac(mac)
                }
                TransportAddrJson::Ipv4(a) => TransportAddr::ip(a.into()),
                TransportAddrJson::Ipv6(a) => TransportAddr::ip(a.into()),
                TransportAddrJson::Other { family, hex } => TransportAddr {
                    family,
                    addr: ShortBytes::new(&hex_bytes::parse(&hex)?),
                },
            })
        }
    }

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum LinkAddrJson {
        #[serde(rename = "cell_3g")]
        Cell3g {
            plmn_id: String,
            cell_id: u32,
        },
        #[serde(rename = "cell_2g")]
        Cell2g {
            plmn_id: String,
            lac: u16,
            ci: u16,
        },
        #[serde(rename = "3gpp")]
        ThreeGpp(String),
        #[serde(rename = "3gpp2")]
        ThreeGpp2(String),
        OtherL2(String),
        /// A MAC_ADDR, shown as its transport address form.
        #[serde(untagged)]
        Mac(TransportAddrJson),
    }

    fn plmn(text: &str) -> Result<[u8; 3], String> {
        hex_bytes::parse(text)?
            .try_into()
            .map_err(|_| format!("PLMN_ID {text:?} is not 3 octets"))
    }

    impl From<LinkAddr> for LinkAddrJson {
        fn from(a: LinkAddr) -> Self {
            match a {
                LinkAddr::Mac(t) => LinkAddrJson::Mac(t.into()),
                LinkAddr::Cell3g { plmn_id, cell_id } => LinkAddrJson::Cell3g {
                    plmn_id: hex_string(&plmn_id),
                    cell_id,
                },
                LinkAddr::Cell2g { plmn_id, lac, ci } => LinkAddrJson::Cell2g {
                    plmn_id: hex_string(&plmn_id),
                    lac,
                    ci,
                },
                LinkAddr::ThreeGpp(b) => LinkAddrJson::ThreeGpp(hex_string(&b)),
                LinkAddr::ThreeGpp2(b) => LinkAddrJson::ThreeGpp2(hex_string(&b)),
                LinkAddr::OtherL2(b) => LinkAddrJson::OtherL2(hex_string(&b)),
            }
        }
    }

    impl TryFrom<LinkAddrJson> for LinkAddr {
        type Error = String;
        fn try_from(j: LinkAddrJson) -> Result<Self, String> {
            Ok(match j {
                LinkAddrJson::Mac(t) => LinkAddr::Mac(t.try_into()?),
                LinkAddrJson::Cell3g { plmn_id, cell_id } => LinkAddr::Cell3g {
                    plmn_id: plmn(&plmn_id)?,
                    cell_id,
                },
                LinkAddrJson::Cell2g { plmn_id, lac, ci } => LinkAddr::Cell2g {
                    plmn_id: plmn(&plmn_id)?,
                    lac,
                    ci,
                },
                LinkAddrJson::ThreeGpp(h) => LinkAddr::ThreeGpp(hex_bytes::parse(&h)?.into()),
                LinkAddrJson::ThreeGpp2(h) => LinkAddr::ThreeGpp2(hex_bytes::parse(&h)?.into()),
                LinkAddrJson::OtherL2(h) => LinkAddr::OtherL2(hex_bytes::parse(&h)?.into()),
            })
        }
    }
}
