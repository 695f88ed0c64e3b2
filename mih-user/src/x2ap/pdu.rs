//! Decoding an X2AP PDU into the messages the trigger acts on.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rasn::types::{BitString, Integer};

use super::asn;
use super::handling::{NotComprehended, ReceiverAction};
use super::procedures::{self, Presence, UeIdIes};

/// Largest X2AP PDU the decoder accepts, in octets (one UDP datagram, one
/// length-prefixed TCP record, one reassembled SCTP message).
pub const MAX_PDU_LEN: usize = 65_535;

/// Procedure code of Handover Preparation (HandoverRequest / -Acknowledge / PreparationFailure).
pub const PROC_HANDOVER_PREPARATION: u8 = 0;
/// Procedure code of Handover Cancel.
pub const PROC_HANDOVER_CANCEL: u8 = 1;
/// Procedure code of UE Context Release.
pub const PROC_UE_CONTEXT_RELEASE: u8 = 5;

/// IE ids (TS 36.423 §9.3.7) the decoder reads.
pub mod ie_id {
    /// id-E-RABs-Admitted-Item
    pub const E_RABS_ADMITTED_ITEM: u16 = 0;
    /// id-E-RABs-Admitted-List
    pub const E_RABS_ADMITTED_LIST: u16 = 1;
    /// id-E-RABs-NotAdmitted-List
    pub const E_RABS_NOT_ADMITTED_LIST: u16 = 3;
    /// id-E-RABs-ToBeSetup-Item
    pub const E_RABS_TO_BE_SETUP_ITEM: u16 = 4;
    /// id-Cause
    pub const CAUSE: u16 = 5;
    /// id-New-eNB-UE-X2AP-ID
    pub const NEW_ENB_UE_X2AP_ID: u16 = 9;
    /// id-Old-eNB-UE-X2AP-ID
    pub const OLD_ENB_UE_X2AP_ID: u16 = 10;
    /// id-TargetCell-ID
    pub const TARGET_CELL_ID: u16 = 11;
    /// id-UE-ContextInformation
    pub const UE_CONTEXT_INFORMATION: u16 = 14;
    /// id-GUMMEI-ID
    pub const GUMMEI_ID: u16 = 23;
    /// id-New-eNB-UE-X2AP-ID-Extension
    pub const NEW_ENB_UE_X2AP_ID_EXTENSION: u16 = 155;
    /// id-Old-eNB-UE-X2AP-ID-Extension
    pub const OLD_ENB_UE_X2AP_ID_EXTENSION: u16 = 156;
    /// id-SeNB-UE-X2AP-ID-Extension (the New eNB UE X2AP ID Extension of
    /// RetrieveUEContextRequest)
    pub const SENB_UE_X2AP_ID_EXTENSION: u16 = 158;
}

/// Name of an IE id, for error messages.
fn ie_name(id: u16) -> &'static str {
    match id {
        ie_id::E_RABS_ADMITTED_ITEM => "E-RABs-Admitted-Item",
        ie_id::E_RABS_ADMITTED_LIST => "E-RABs-Admitted-List",
        ie_id::E_RABS_NOT_ADMITTED_LIST => "E-RABs-NotAdmitted-List",
        ie_id::E_RABS_TO_BE_SETUP_ITEM => "E-RABs-ToBeSetup-Item",
        ie_id::CAUSE => "Cause",
        ie_id::NEW_ENB_UE_X2AP_ID => "New-eNB-UE-X2AP-ID",
        ie_id::OLD_ENB_UE_X2AP_ID => "Old-eNB-UE-X2AP-ID",
        ie_id::TARGET_CELL_ID => "TargetCell-ID",
        ie_id::UE_CONTEXT_INFORMATION => "UE-ContextInformation",
        ie_id::GUMMEI_ID => "GUMMEI-ID",
        ie_id::NEW_ENB_UE_X2AP_ID_EXTENSION => "New-eNB-UE-X2AP-ID-Extension",
        ie_id::OLD_ENB_UE_X2AP_ID_EXTENSION => "Old-eNB-UE-X2AP-ID-Extension",
        ie_id::SENB_UE_X2AP_ID_EXTENSION => "SeNB-UE-X2AP-ID-Extension",
        _ => "IE",
    }
}

/// What went wrong decoding a PDU. Every variant names the message and, where
/// there is one, the IE.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum X2apError {
    /// Zero octets.
    #[error("empty X2AP PDU")]
    Empty,
    /// More than [`MAX_PDU_LEN`] octets.
    #[error("X2AP PDU of {len} octets exceeds the {max}-octet limit")]
    TooLong {
        /// Octets offered.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The outer X2AP-PDU (CHOICE, procedure code, criticality, open type) is not valid APER.
    #[error("X2AP-PDU: {reason}")]
    Pdu {
        /// The APER decoder's diagnosis.
        reason: String,
    },
    /// Octets left over after a complete X2AP-PDU.
    #[error("{count} octet(s) after the end of the X2AP-PDU")]
    TrailingOctets {
        /// How many.
        count: usize,
    },
    /// The message's ProtocolIE-Container is not valid APER.
    #[error("{message}: protocolIEs: {reason}")]
    Container {
        /// Message name, e.g. `HandoverRequest`.
        message: &'static str,
        /// The APER decoder's diagnosis.
        reason: String,
    },
    /// A mandatory IE is absent.
    #[error("{message}: mandatory IE {ie} (id {id}) is missing")]
    MissingIe {
        /// Message name.
        message: &'static str,
        /// IE name.
        ie: &'static str,
        /// IE id.
        id: u16,
    },
    /// An IE the decoder reads appears twice.
    #[error("{message}: IE {ie} (id {id}) appears more than once")]
    DuplicateIe {
        /// Message name.
        message: &'static str,
        /// IE name.
        ie: &'static str,
        /// IE id.
        id: u16,
    },
    /// An IE value does not decode as its type.
    #[error("{message}: IE {ie} (id {id}): {reason}")]
    BadIe {
        /// Message name.
        message: &'static str,
        /// IE name.
        ie: &'static str,
        /// IE id.
        id: u16,
        /// What is wrong with it.
        reason: String,
    },
}

/// The three kinds of X2AP message (the alternatives of X2AP-PDU).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MessageType {
    /// initiatingMessage
    InitiatingMessage,
    /// successfulOutcome
    SuccessfulOutcome,
    /// unsuccessfulOutcome
    UnsuccessfulOutcome,
}

impl MessageType {
    /// All three, in CHOICE order.
    pub const ALL: [MessageType; 3] = [
        MessageType::InitiatingMessage,
        MessageType::SuccessfulOutcome,
        MessageType::UnsuccessfulOutcome,
    ];

    /// The ASN.1 identifier (`initiatingMessage`, ...).
    pub fn name(self) -> &'static str {
        match self {
            MessageType::InitiatingMessage => "initiatingMessage",
            MessageType::SuccessfulOutcome => "successfulOutcome",
            MessageType::UnsuccessfulOutcome => "unsuccessfulOutcome",
        }
    }

    /// Index in [`MessageType::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Criticality of a procedure or IE.
pub use asn::Criticality;

impl Criticality {
    /// The ASN.1 identifier.
    pub fn name(self) -> &'static str {
        match self {
            Criticality::Reject => "reject",
            Criticality::Ignore => "ignore",
            Criticality::Notify => "notify",
        }
    }
}

/// Cause IE (TS 36.423 §9.2.6): the group and the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cause {
    /// radioNetwork
    RadioNetwork(asn::CauseRadioNetwork),
    /// transport
    Transport(asn::CauseTransport),
    /// protocol
    Protocol(asn::CauseProtocol),
    /// misc
    Misc(asn::CauseMisc),
    /// A Cause this decoder cannot name: a CHOICE alternative or ENUMERATED
    /// value added after Rel-17, or an undecodable value. The Cause only
    /// explains a failure, so the message is still acted on.
    Unrecognised,
}

impl Cause {
    /// The CHOICE alternative (`radioNetwork`, ...), or `unrecognised`.
    pub fn group(&self) -> &'static str {
        match self {
            Cause::RadioNetwork(_) => "radioNetwork",
            Cause::Transport(_) => "transport",
            Cause::Protocol(_) => "protocol",
            Cause::Misc(_) => "misc",
            Cause::Unrecognised => "unrecognised",
        }
    }

    /// The ENUMERATED value (`handover-desirable-for-radio-reasons`, ...), or `unrecognised`.
    pub fn value(&self) -> &'static str {
        match self {
            Cause::RadioNetwork(c) => c.name(),
            Cause::Transport(c) => c.name(),
            Cause::Protocol(c) => c.name(),
            Cause::Misc(c) => c.name(),
            Cause::Unrecognised => "unrecognised",
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.group(), self.value())
    }
}

/// PLMN identity: the three TBCD-coded octets as sent (MCC/MNC digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Plmn(pub [u8; 3]);

impl Plmn {
    /// Build from MCC and MNC digit strings (`"001"`, `"01"` or `"001"`).
    /// `None` unless the MCC has 3 digits and the MNC 2 or 3.
    ///
    /// ```
    /// use mih_user::x2ap::Plmn;
    /// assert_eq!(Plmn::from_mcc_mnc("001", "01"), Some(Plmn([0x00, 0xf1, 0x10])));
    /// assert_eq!(Plmn::from_mcc_mnc("310", "410").unwrap().to_string(), "310-410");
    /// ```
    pub fn from_mcc_mnc(mcc: &str, mnc: &str) -> Option<Plmn> {
        let d = |s: &str| -> Option<Vec<u8>> {
            s.bytes()
                .map(|b| b.is_ascii_digit().then(|| b - b'0'))
                .collect()
        };
        let (m, n) = (d(mcc)?, d(mnc)?);
        if m.len() != 3 || !(2..=3).contains(&n.len()) {
            return None;
        }
        let n3 = if n.len() == 3 { n[2] } else { 0xf };
        Some(Plmn([
            (m[1] << 4) | m[0],
            (n3 << 4) | m[2],
            (n[1] << 4) | n[0],
        ]))
    }

    /// Parse `"MCC-MNC"` (e.g. `"001-01"`) or six hex digits of the octets (`"00f110"`).
    pub fn parse(text: &str) -> Option<Plmn> {
        if let Some((mcc, mnc)) = text.split_once('-') {
            return Plmn::from_mcc_mnc(mcc, mnc);
        }
        if text.len() == 6 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            let v = u32::from_str_radix(text, 16).ok()?;
            let b = v.to_be_bytes();
            return Some(Plmn([b[1], b[2], b[3]]));
        }
        None
    }

    /// MCC digits, MNC digits (2 or 3); `None` when the octets are not valid TBCD.
    pub fn mcc_mnc(&self) -> Option<(String, String)> {
        let o = self.0;
        let digits = [
            o[0] & 0xf,
            o[0] >> 4,
            o[1] & 0xf,
            o[2] & 0xf,
            o[2] >> 4,
            o[1] >> 4,
        ];
        let ok = |x: u8| x <= 9;
        if !digits[..5].iter().all(|&x| ok(x)) || !(ok(digits[5]) || digits[5] == 0xf) {
            return None;
        }
        let s = |v: &[u8]| v.iter().map(|x| char::from(b'0' + x)).collect::<String>();
        let mcc = s(&digits[..3]);
        let mnc = if digits[5] == 0xf {
            s(&digits[3..5])
        } else {
            s(&digits[3..6])
        };
        Some((mcc, mnc))
    }

    /// The octets as six hex digits.
    pub fn to_hex(&self) -> String {
        format!("{:02x}{:02x}{:02x}", self.0[0], self.0[1], self.0[2])
    }
}

impl fmt::Display for Plmn {
    /// `MCC-MNC`, or the hex octets when they are not valid TBCD.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.mcc_mnc() {
            Some((mcc, mnc)) => write!(f, "{mcc}-{mnc}"),
            None => f.write_str(&self.to_hex()),
        }
    }
}

/// E-UTRAN CGI (TS 36.423 §9.2.14): PLMN + 28-bit cell identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ecgi {
    /// PLMN identity.
    pub plmn: Plmn,
    /// E-UTRAN cell identifier, 28 bits (`0..=0x0fff_ffff`).
    pub cell_id: u32,
}

impl Ecgi {
    /// The macro eNB ID (the leftmost 20 bits of the cell identity, TS 36.423 §9.2.22).
    ///
    /// ```
    /// use mih_user::x2ap::{Ecgi, Plmn};
    /// let cell = Ecgi { plmn: Plmn([0x00, 0xf1, 0x10]), cell_id: 0x1a2b301 };
    /// assert_eq!(cell.macro_enb_id(), 0x1a2b3);
    /// ```
    pub fn macro_enb_id(&self) -> u32 {
        self.cell_id >> 8
    }

    /// The leftmost `bits` bits of the cell identity: the eNB ID of a macro
    /// (20), short macro (18), long macro (21) or home (28) eNB.
    /// `None` unless `bits` is 1..=28.
    pub fn enb_id(&self, bits: u8) -> Option<u32> {
        (1..=28)
            .contains(&bits)
            .then(|| self.cell_id >> (28 - u32::from(bits)))
    }
}

impl fmt::Display for Ecgi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{:07x}", self.plmn, self.cell_id)
    }
}

/// GUMMEI (TS 36.423 §9.2.16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Gummei {
    /// PLMN identity.
    pub plmn: Plmn,
    /// MME Group ID.
    pub mme_group_id: u16,
    /// MME Code.
    pub mme_code: u8,
}

/// Transport Layer Address (TS 36.414 §5.1): IPv4 (32 bits), IPv6 (128) or
/// both (160), or any other bit string the peer sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TransportLayerAddress {
    /// 32 bits.
    V4(Ipv4Addr),
    /// 128 bits.
    V6(Ipv6Addr),
    /// 160 bits: IPv4 then IPv6.
    Both(Ipv4Addr, Ipv6Addr),
    /// Any other length (1..=160 bits, or longer under the extension marker).
    Other {
        /// Number of bits.
        bits: usize,
        /// The bits, left-aligned, zero-padded to whole octets.
        octets: Vec<u8>,
    },
}

impl TransportLayerAddress {
    fn from_bits(b: &BitString) -> TransportLayerAddress {
        let raw = b.as_raw_slice();
        match (b.len(), raw.len()) {
            (32, 4) => TransportLayerAddress::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3])),
            (128, 16) => {
                let mut a = [0u8; 16];
                a.copy_from_slice(raw);
                TransportLayerAddress::V6(Ipv6Addr::from(a))
            }
            (160, 20) => {
                let mut a = [0u8; 16];
                a.copy_from_slice(&raw[4..]);
                TransportLayerAddress::Both(
                    Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]),
                    Ipv6Addr::from(a),
                )
            }
            (bits, _) => {
                let mut octets = raw.to_vec();
                octets.truncate(bits.div_ceil(8));
                if bits % 8 != 0 {
                    if let Some(last) = octets.last_mut() {
                        *last &= 0xffu8 << (8 - bits % 8);
                    }
                }
                TransportLayerAddress::Other { bits, octets }
            }
        }
    }

    /// The IP address, IPv4 first when both are present.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            TransportLayerAddress::V4(a) | TransportLayerAddress::Both(a, _) => {
                Some(IpAddr::V4(*a))
            }
            TransportLayerAddress::V6(a) => Some(IpAddr::V6(*a)),
            TransportLayerAddress::Other { .. } => None,
        }
    }
}

impl fmt::Display for TransportLayerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportLayerAddress::V4(a) => write!(f, "{a}"),
            TransportLayerAddress::V6(a) => write!(f, "{a}"),
            TransportLayerAddress::Both(a, b) => write!(f, "{a}+{b}"),
            TransportLayerAddress::Other { bits, octets } => {
                write!(f, "0x")?;
                for o in octets {
                    write!(f, "{o:02x}")?;
                }
                write!(f, "/{bits}")
            }
        }
    }
}

/// A GTP-U tunnel endpoint: transport address and TEID.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GtpTunnel {
    /// Transport Layer Address.
    pub address: TransportLayerAddress,
    /// GTP-TEID.
    pub teid: u32,
}

impl GtpTunnel {
    fn from_asn(t: &asn::GtpTunnelEndpoint) -> GtpTunnel {
        GtpTunnel {
            address: TransportLayerAddress::from_bits(&t.transport_layer_address),
            teid: u32::from_be_bytes(*t.gtp_teid),
        }
    }
}

/// One E-RAB of a HandoverRequest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ERabToBeSetup {
    /// E-RAB ID (0..=15; larger values only under the extension marker).
    pub e_rab_id: u8,
    /// QCI.
    pub qci: u8,
    /// Uplink GTP tunnel endpoint (the S-GW's address and TEID).
    pub ul_gtp_tunnel: GtpTunnel,
}

/// One admitted E-RAB of a HandoverRequestAcknowledge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ERabAdmitted {
    /// E-RAB ID.
    pub e_rab_id: u8,
    /// Uplink forwarding tunnel at the target, if offered.
    pub ul_gtp_tunnel: Option<GtpTunnel>,
    /// Downlink forwarding tunnel at the target, if offered.
    pub dl_gtp_tunnel: Option<GtpTunnel>,
}

/// HandoverRequest (source eNB → target eNB): the UE being prepared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandoverRequest {
    /// Old eNB UE X2AP ID (allocated by the source eNB).
    pub old_enb_ue_x2ap_id: u16,
    /// Old eNB UE X2AP ID Extension, if present.
    pub old_enb_ue_x2ap_id_ext: Option<u16>,
    /// Cause of the handover.
    pub cause: Cause,
    /// Target cell.
    pub target_cell: Ecgi,
    /// GUMMEI of the MME serving the UE.
    pub gummei: Gummei,
    /// MME UE S1AP ID.
    pub mme_ue_s1ap_id: u32,
    /// E-RABs to set up, with their uplink tunnels (1..=256 of them).
    pub e_rabs: Vec<ERabToBeSetup>,
}

/// HandoverRequestAcknowledge (target → source): the handover trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandoverRequestAcknowledge {
    /// Old eNB UE X2AP ID.
    pub old_enb_ue_x2ap_id: u16,
    /// New eNB UE X2AP ID (allocated by the target eNB).
    pub new_enb_ue_x2ap_id: u16,
    /// Old eNB UE X2AP ID Extension, if present.
    pub old_enb_ue_x2ap_id_ext: Option<u16>,
    /// New eNB UE X2AP ID Extension, if present.
    pub new_enb_ue_x2ap_id_ext: Option<u16>,
    /// Admitted E-RABs.
    pub admitted_e_rabs: Vec<ERabAdmitted>,
}

/// HandoverPreparationFailure (target → source): the target refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandoverPreparationFailure {
    /// Old eNB UE X2AP ID.
    pub old_enb_ue_x2ap_id: u16,
    /// Old eNB UE X2AP ID Extension, if present.
    pub old_enb_ue_x2ap_id_ext: Option<u16>,
    /// Why.
    pub cause: Cause,
}

/// HandoverCancel (source → target): the source gave up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandoverCancel {
    /// Old eNB UE X2AP ID.
    pub old_enb_ue_x2ap_id: u16,
    /// New eNB UE X2AP ID, if the target had allocated one.
    pub new_enb_ue_x2ap_id: Option<u16>,
    /// Old eNB UE X2AP ID Extension, if present.
    pub old_enb_ue_x2ap_id_ext: Option<u16>,
    /// New eNB UE X2AP ID Extension, if present.
    pub new_enb_ue_x2ap_id_ext: Option<u16>,
    /// Why.
    pub cause: Cause,
}

/// UEContextRelease (target → source): the handover is complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UeContextRelease {
    /// Old eNB UE X2AP ID.
    pub old_enb_ue_x2ap_id: u16,
    /// New eNB UE X2AP ID.
    pub new_enb_ue_x2ap_id: u16,
    /// Old eNB UE X2AP ID Extension, if present.
    pub old_enb_ue_x2ap_id_ext: Option<u16>,
    /// New eNB UE X2AP ID Extension, if present.
    pub new_enb_ue_x2ap_id_ext: Option<u16>,
}

/// The message carried by a PDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// HandoverRequest.
    HandoverRequest(HandoverRequest),
    /// HandoverRequestAcknowledge.
    HandoverRequestAcknowledge(HandoverRequestAcknowledge),
    /// HandoverPreparationFailure.
    HandoverPreparationFailure(HandoverPreparationFailure),
    /// HandoverCancel.
    HandoverCancel(HandoverCancel),
    /// UEContextRelease.
    UeContextRelease(UeContextRelease),
    /// Any other procedure or message type: recognised, not decoded (its
    /// eNB UE X2AP IDs, if it has any, are in [`Pdu::ue_x2ap_ids`]).
    Other,
}

/// The eNB UE X2AP IDs of a UE-associated message (TS 36.423 §9.1), by which
/// the messages of one UE's handover are correlated. A field is `None` when
/// the message does not have the IE or when an optional IE is absent;
/// [`Pdu::ue_id_ies`] tells the two apart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct UeX2apIds {
    /// Old eNB UE X2AP ID (allocated by the source eNB).
    pub old_enb_ue_x2ap_id: Option<u16>,
    /// New eNB UE X2AP ID (allocated by the target eNB).
    pub new_enb_ue_x2ap_id: Option<u16>,
    /// Old eNB UE X2AP ID Extension.
    pub old_enb_ue_x2ap_id_ext: Option<u16>,
    /// New eNB UE X2AP ID Extension.
    pub new_enb_ue_x2ap_id_ext: Option<u16>,
}

/// A decoded X2AP PDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pdu {
    /// procedureCode (0..=255).
    pub procedure_code: u8,
    /// initiatingMessage, successfulOutcome or unsuccessfulOutcome.
    pub message_type: MessageType,
    /// Criticality of the procedure, as the sender set it.
    pub criticality: Criticality,
    /// The message, for the five the trigger acts on; [`Message::Other`] otherwise.
    pub message: Message,
    /// The eNB UE X2AP IDs, for every message that has an Old or a New eNB UE
    /// X2AP ID IE ([`Pdu::ue_id_ies`] is `Some`), whether the trigger acts on
    /// it or not; `None` for every other message.
    pub ue_x2ap_ids: Option<UeX2apIds>,
}

impl Pdu {
    /// The procedure's name (`handoverPreparation`, ...), if TS 36.423 (Rel-17) defines the code.
    pub fn procedure_name(&self) -> Option<&'static str> {
        procedures::procedure_name(self.procedure_code)
    }

    /// The message's name (`HandoverRequestAcknowledge`, ...), if TS 36.423 defines it.
    pub fn message_name(&self) -> Option<&'static str> {
        procedures::message_name(self.procedure_code, self.message_type)
    }

    /// Which eNB UE X2AP IDs this message has, and which of them are mandatory
    /// (TS 36.423 §9.1); `None` for a message with neither the Old nor the New
    /// eNB UE X2AP ID.
    pub fn ue_id_ies(&self) -> Option<UeIdIes> {
        procedures::ue_id_ies(self.procedure_code, self.message_type)
    }

    /// What a receiver does not comprehend in this PDU: an unknown procedure
    /// code, or a type of message the procedure does not have (TS 36.423
    /// §10.3.4.1, §10.3.4.1A); `None` when TS 36.423 (Rel-17) defines the message.
    pub fn not_comprehended(&self) -> Option<NotComprehended> {
        if self.procedure_name().is_none() {
            Some(NotComprehended::ProcedureCode)
        } else if self.message_name().is_none() {
            Some(NotComprehended::TypeOfMessage)
        } else {
            None
        }
    }

    /// What an X2AP receiving node does with this PDU when it does not
    /// comprehend it ([`Pdu::not_comprehended`]): for an unknown procedure
    /// code the action its criticality asks for (TS 36.423 §10.3.4.1), for a
    /// type of message the procedure does not have ignore it and initiate
    /// Error Indication (§10.3.4.1A). `None` for a message TS 36.423 (Rel-17)
    /// defines.
    ///
    /// ```
    /// use mih_user::x2ap::{decode, ReceiverAction};
    /// // initiatingMessage, procedureCode 250 (undefined), criticality reject,
    /// // an empty ProtocolIE-Container
    /// let pdu = decode(&[0x00, 250, 0x00, 0x03, 0x00, 0x00, 0x00]).unwrap();
    /// assert_eq!(pdu.receiver_action(), Some(ReceiverAction::RejectWithErrorIndication));
    /// ```
    pub fn receiver_action(&self) -> Option<ReceiverAction> {
        self.not_comprehended()
            .map(|n| n.receiver_action(self.criticality))
    }
}

/// Decode one X2AP PDU (APER, TS 36.423 §9.3).
///
/// HandoverRequest, HandoverRequestAcknowledge, HandoverPreparationFailure,
/// HandoverCancel and UEContextRelease are decoded down to the IEs the trigger
/// needs; every other message is recognised by procedure code and message type
/// and reported as [`Message::Other`]. Of every message that has Old or New
/// eNB UE X2AP IDs (SNStatusTransfer, ErrorIndication, HandoverSuccess, ...;
/// see [`Pdu::ue_id_ies`]) the IDs and their Extensions are read into
/// [`Pdu::ue_x2ap_ids`]; a mandatory one that is missing is an
/// [`X2apError::MissingIe`]. IEs the decoder does not need are skipped unread
/// (they are open types).
///
/// ```
/// use mih_user::x2ap::{decode, Message, MessageType};
/// // UEContextRelease, Old eNB UE X2AP ID 17, New eNB UE X2AP ID 42 (encoded by pycrate)
/// let pdu = decode(&hex::decode("0005400f000002000a0002001100090002002a").unwrap()).unwrap();
/// assert_eq!(pdu.message_type, MessageType::InitiatingMessage);
/// assert_eq!(pdu.procedure_code, 5);
/// match pdu.message {
///     Message::UeContextRelease(r) => assert_eq!((r.old_enb_ue_x2ap_id, r.new_enb_ue_x2ap_id), (17, 42)),
///     other => panic!("{other:?}"),
/// }
/// ```
pub fn decode(bytes: &[u8]) -> Result<Pdu, X2apError> {
    if bytes.is_empty() {
        return Err(X2apError::Empty);
    }
    if bytes.len() > MAX_PDU_LEN {
        return Err(X2apError::TooLong {
            len: bytes.len(),
            max: MAX_PDU_LEN,
        });
    }
    let (outer, rest) = rasn::aper::decode_with_remainder::<asn::X2apPdu>(bytes)
        .map_err(|e| X2apError::Pdu { reason: short(&e) })?;
    if !rest.is_empty() {
        return Err(X2apError::TrailingOctets { count: rest.len() });
    }
    let (message_type, m) = match outer {
        asn::X2apPdu::InitiatingMessage(m) => (MessageType::InitiatingMessage, m),
        asn::X2apPdu::SuccessfulOutcome(m) => (MessageType::SuccessfulOutcome, m),
        asn::X2apPdu::UnsuccessfulOutcome(m) => (MessageType::UnsuccessfulOutcome, m),
    };
    let code = m.procedure_code;
    // Only messages with eNB UE X2AP IDs are opened; the five the trigger
    // acts on are among them.
    let (message, ue_x2ap_ids) = match (
        procedures::ue_id_ies(code, message_type),
        procedures::message_name(code, message_type),
    ) {
        (Some(layout), Some(name)) => {
            let ies = Ies::parse(name, m.value.as_bytes())?;
            let ids = ies.ue_ids(layout)?;
            let message = match (code, message_type) {
                (PROC_HANDOVER_PREPARATION, MessageType::InitiatingMessage) => {
                    Message::HandoverRequest(handover_request(&ies)?)
                }
                (PROC_HANDOVER_PREPARATION, MessageType::SuccessfulOutcome) => {
                    Message::HandoverRequestAcknowledge(handover_request_acknowledge(&ies)?)
                }
                (PROC_HANDOVER_PREPARATION, MessageType::UnsuccessfulOutcome) => {
                    Message::HandoverPreparationFailure(handover_preparation_failure(&ies)?)
                }
                (PROC_HANDOVER_CANCEL, MessageType::InitiatingMessage) => {
                    Message::HandoverCancel(handover_cancel(&ies)?)
                }
                (PROC_UE_CONTEXT_RELEASE, MessageType::InitiatingMessage) => {
                    Message::UeContextRelease(ue_context_release(&ies)?)
                }
                _ => Message::Other,
            };
            (message, Some(ids))
        }
        _ => (Message::Other, None),
    };
    Ok(Pdu {
        procedure_code: code,
        message_type,
        criticality: m.criticality,
        message,
        ue_x2ap_ids,
    })
}

/// One line of rasn's diagnosis (its Display may span lines).
fn short(e: &impl fmt::Display) -> String {
    let s = e.to_string();
    let line = s
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let mut out: String = line.chars().take(200).collect();
    if out.is_empty() {
        out.push_str("invalid APER");
    }
    out
}

/// The IEs of one message, checked for duplicates of the ids we read.
struct Ies<'a> {
    message: &'static str,
    fields: Vec<asn::ProtocolIeField>,
    _input: std::marker::PhantomData<&'a ()>,
}

impl<'a> Ies<'a> {
    fn parse(message: &'static str, value: &'a [u8]) -> Result<Self, X2apError> {
        let m: asn::ProtocolIeMessage =
            rasn::aper::decode(value).map_err(|e| X2apError::Container {
                message,
                reason: short(&e),
            })?;
        Ok(Ies {
            message,
            fields: m.protocol_ies,
            _input: std::marker::PhantomData,
        })
    }

    /// The value of IE `id`, decoded as `T`; `None` when absent.
    fn optional<T: rasn::Decode>(&self, id: u16) -> Result<Option<T>, X2apError> {
        let mut found = self.fields.iter().filter(|f| f.id == id);
        let Some(field) = found.next() else {
            return Ok(None);
        };
        if found.next().is_some() {
            return Err(X2apError::DuplicateIe {
                message: self.message,
                ie: ie_name(id),
                id,
            });
        }
        rasn::aper::decode::<T>(field.value.as_bytes())
            .map(Some)
            .map_err(|e| self.bad(id, short(&e)))
    }

    fn mandatory<T: rasn::Decode>(&self, id: u16) -> Result<T, X2apError> {
        self.optional(id)?.ok_or(X2apError::MissingIe {
            message: self.message,
            ie: ie_name(id),
            id,
        })
    }

    /// The Cause IE: mandatory, but an unrecognised value is reported as such.
    fn cause(&self) -> Result<Cause, X2apError> {
        let mut found = self.fields.iter().filter(|f| f.id == ie_id::CAUSE);
        let Some(field) = found.next() else {
            return Err(X2apError::MissingIe {
                message: self.message,
                ie: ie_name(ie_id::CAUSE),
                id: ie_id::CAUSE,
            });
        };
        if found.next().is_some() {
            return Err(X2apError::DuplicateIe {
                message: self.message,
                ie: ie_name(ie_id::CAUSE),
                id: ie_id::CAUSE,
            });
        }
        Ok(
            match rasn::aper::decode::<asn::Cause>(field.value.as_bytes()) {
                Ok(asn::Cause::RadioNetwork(c)) => Cause::RadioNetwork(c),
                Ok(asn::Cause::Transport(c)) => Cause::Transport(c),
                Ok(asn::Cause::Protocol(c)) => Cause::Protocol(c),
                Ok(asn::Cause::Misc(c)) => Cause::Misc(c),
                Err(_) => Cause::Unrecognised,
            },
        )
    }

    fn bad(&self, id: u16, reason: String) -> X2apError {
        X2apError::BadIe {
            message: self.message,
            ie: ie_name(id),
            id,
            reason,
        }
    }

    /// The eNB UE X2AP IDs `layout` says the message has; a mandatory one
    /// must be present.
    fn ue_ids(&self, layout: UeIdIes) -> Result<UeX2apIds, X2apError> {
        let read = |presence: Presence, id: u16, ext_id: u16| -> Result<_, X2apError> {
            let id_value = match presence {
                Presence::NotDefined => return Ok((None, None)),
                Presence::Mandatory => Some(self.mandatory::<asn::UeX2apId>(id)?),
                Presence::Optional => self.optional::<asn::UeX2apId>(id)?,
            };
            Ok((id_value.map(|v| v.0), self.id_extension(ext_id)?))
        };
        let (old, old_ext) = read(
            layout.old,
            ie_id::OLD_ENB_UE_X2AP_ID,
            ie_id::OLD_ENB_UE_X2AP_ID_EXTENSION,
        )?;
        let (new, new_ext) = read(
            layout.new,
            ie_id::NEW_ENB_UE_X2AP_ID,
            layout.new_extension_ie,
        )?;
        Ok(UeX2apIds {
            old_enb_ue_x2ap_id: old,
            new_enb_ue_x2ap_id: new,
            old_enb_ue_x2ap_id_ext: old_ext,
            new_enb_ue_x2ap_id_ext: new_ext,
        })
    }

    fn id_extension(&self, id: u16) -> Result<Option<u16>, X2apError> {
        match self.optional::<asn::UeX2apIdExtension>(id)? {
            None => Ok(None),
            Some(v) => small(&v.0)
                .map(Some)
                .ok_or_else(|| self.bad(id, format!("value {} out of range", v.0))),
        }
    }
}

fn small<T: TryFrom<i128>>(i: &Integer) -> Option<T> {
    i128::try_from(i.clone())
        .ok()
        .and_then(|v| T::try_from(v).ok())
}

fn plmn(p: &rasn::types::FixedOctetString<3>) -> Plmn {
    Plmn(**p)
}

fn ecgi(e: &asn::Ecgi) -> Option<Ecgi> {
    let bits = &e.eutran_cell_identifier;
    if bits.len() != 28 {
        return None;
    }
    let cell_id = bits.iter().fold(0u32, |acc, b| (acc << 1) | u32::from(*b));
    Some(Ecgi {
        plmn: plmn(&e.plmn_identity),
        cell_id,
    })
}

fn e_rab_id(ies: &Ies<'_>, id: u16, v: &asn::ERabId) -> Result<u8, X2apError> {
    small::<u8>(&v.0).ok_or_else(|| ies.bad(id, format!("e-RAB-ID {} out of range", v.0)))
}

/// The items of an E-RAB list of ProtocolIE-Single-Containers whose id must be `item_id`.
fn single_container_items<'f>(
    ies: &Ies<'_>,
    list_id: u16,
    item_id: u16,
    items: &'f [asn::ProtocolIeField],
) -> Result<impl Iterator<Item = &'f [u8]>, X2apError> {
    if let Some(bad) = items.iter().find(|f| f.id != item_id) {
        return Err(ies.bad(
            list_id,
            format!(
                "list item has IE id {} where {} ({}) is expected",
                bad.id,
                item_id,
                ie_name(item_id)
            ),
        ));
    }
    Ok(items.iter().map(|f| f.value.as_bytes()))
}

fn handover_request(ies: &Ies<'_>) -> Result<HandoverRequest, X2apError> {
    let old: asn::UeX2apId = ies.mandatory(ie_id::OLD_ENB_UE_X2AP_ID)?;
    let cause = ies.cause()?;
    let target: asn::Ecgi = ies.mandatory(ie_id::TARGET_CELL_ID)?;
    let target_cell = ecgi(&target)
        .ok_or_else(|| ies.bad(ie_id::TARGET_CELL_ID, "cell identity is not 28 bits".into()))?;
    let g: asn::Gummei = ies.mandatory(ie_id::GUMMEI_ID)?;
    let gummei = Gummei {
        plmn: plmn(&g.gu_group_id.plmn_identity),
        mme_group_id: u16::from_be_bytes(*g.gu_group_id.mme_group_id),
        mme_code: g.mme_code[0],
    };
    let ctx: asn::UeContextInformation = ies.mandatory(ie_id::UE_CONTEXT_INFORMATION)?;
    let mut e_rabs = Vec::with_capacity(ctx.e_rabs_to_be_setup_list.len());
    for raw in single_container_items(
        ies,
        ie_id::UE_CONTEXT_INFORMATION,
        ie_id::E_RABS_TO_BE_SETUP_ITEM,
        &ctx.e_rabs_to_be_setup_list,
    )? {
        let item: asn::ERabsToBeSetupItem = rasn::aper::decode(raw).map_err(|e| {
            ies.bad(
                ie_id::UE_CONTEXT_INFORMATION,
                format!("E-RABs-ToBeSetup-Item: {}", short(&e)),
            )
        })?;
        e_rabs.push(ERabToBeSetup {
            e_rab_id: e_rab_id(ies, ie_id::UE_CONTEXT_INFORMATION, &item.e_rab_id)?,
            qci: item.e_rab_level_qos_parameters.qci,
            ul_gtp_tunnel: GtpTunnel::from_asn(&item.ul_gtp_tunnel_endpoint),
        });
    }
    Ok(HandoverRequest {
        old_enb_ue_x2ap_id: old.0,
        old_enb_ue_x2ap_id_ext: ies.id_extension(ie_id::OLD_ENB_UE_X2AP_ID_EXTENSION)?,
        cause,
        target_cell,
        gummei,
        mme_ue_s1ap_id: ctx.mme_ue_s1ap_id,
        e_rabs,
    })
}

fn handover_request_acknowledge(ies: &Ies<'_>) -> Result<HandoverRequestAcknowledge, X2apError> {
    let old: asn::UeX2apId = ies.mandatory(ie_id::OLD_ENB_UE_X2AP_ID)?;
    let new: asn::UeX2apId = ies.mandatory(ie_id::NEW_ENB_UE_X2AP_ID)?;
    let list: asn::ERabSingleContainerList = ies.mandatory(ie_id::E_RABS_ADMITTED_LIST)?;
    let mut admitted_e_rabs = Vec::with_capacity(list.0.len());
    for raw in single_container_items(
        ies,
        ie_id::E_RABS_ADMITTED_LIST,
        ie_id::E_RABS_ADMITTED_ITEM,
        &list.0,
    )? {
        let item: asn::ERabsAdmittedItem = rasn::aper::decode(raw).map_err(|e| {
            ies.bad(
                ie_id::E_RABS_ADMITTED_LIST,
                format!("E-RABs-Admitted-Item: {}", short(&e)),
            )
        })?;
        admitted_e_rabs.push(ERabAdmitted {
            e_rab_id: e_rab_id(ies, ie_id::E_RABS_ADMITTED_LIST, &item.e_rab_id)?,
            ul_gtp_tunnel: item
                .ul_gtp_tunnel_endpoint
                .as_ref()
                .map(GtpTunnel::from_asn),
            dl_gtp_tunnel: item
                .dl_gtp_tunnel_endpoint
                .as_ref()
                .map(GtpTunnel::from_asn),
        });
    }
    Ok(HandoverRequestAcknowledge {
        old_enb_ue_x2ap_id: old.0,
        new_enb_ue_x2ap_id: new.0,
        old_enb_ue_x2ap_id_ext: ies.id_extension(ie_id::OLD_ENB_UE_X2AP_ID_EXTENSION)?,
        new_enb_ue_x2ap_id_ext: ies.id_extension(ie_id::NEW_ENB_UE_X2AP_ID_EXTENSION)?,
        admitted_e_rabs,
    })
}

fn handover_preparation_failure(ies: &Ies<'_>) -> Result<HandoverPreparationFailure, X2apError> {
    let old: asn::UeX2apId = ies.mandatory(ie_id::OLD_ENB_UE_X2AP_ID)?;
    Ok(HandoverPreparationFailure {
        old_enb_ue_x2ap_id: old.0,
        old_enb_ue_x2ap_id_ext: ies.id_extension(ie_id::OLD_ENB_UE_X2AP_ID_EXTENSION)?,
        cause: ies.cause()?,
    })
}

fn handover_cancel(ies: &Ies<'_>) -> Result<HandoverCancel, X2apError> {
    let old: asn::UeX2apId = ies.mandatory(ie_id::OLD_ENB_UE_X2AP_ID)?;
    let new: Option<asn::UeX2apId> = ies.optional(ie_id::NEW_ENB_UE_X2AP_ID)?;
    Ok(HandoverCancel {
        old_enb_ue_x2ap_id: old.0,
        new_enb_ue_x2ap_id: new.map(|n| n.0),
        old_enb_ue_x2ap_id_ext: ies.id_extension(ie_id::OLD_ENB_UE_X2AP_ID_EXTENSION)?,
        new_enb_ue_x2ap_id_ext: ies.id_extension(ie_id::NEW_ENB_UE_X2AP_ID_EXTENSION)?,
        cause: ies.cause()?,
    })
}

fn ue_context_release(ies: &Ies<'_>) -> Result<UeContextRelease, X2apError> {
    let old: asn::UeX2apId = ies.mandatory(ie_id::OLD_ENB_UE_X2AP_ID)?;
    let new: asn::UeX2apId = ies.mandatory(ie_id::NEW_ENB_UE_X2AP_ID)?;
    Ok(UeContextRelease {
        old_enb_ue_x2ap_id: old.0,
        new_enb_ue_x2ap_id: new.0,
        old_enb_ue_x2ap_id_ext: ies.id_extension(ie_id::OLD_ENB_UE_X2AP_ID_EXTENSION)?,
        new_enb_ue_x2ap_id_ext: ies.id_extension(ie_id::NEW_ENB_UE_X2AP_ID_EXTENSION)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plmn_round_trip() {
        let p = Plmn::from_mcc_mnc("001", "01").unwrap();
        assert_eq!(p, Plmn([0x00, 0xf1, 0x10]));
        assert_eq!(p.mcc_mnc(), Some(("001".into(), "01".into())));
        assert_eq!(Plmn::parse("001-01"), Some(p));
        assert_eq!(Plmn::parse("00f110"), Some(p));
        let p3 = Plmn::from_mcc_mnc("310", "410").unwrap();
        assert_eq!(p3.to_string(), "310-410");
        assert_eq!(Plmn::parse("31-410"), None);
        assert_eq!(Plmn::parse("zz"), None);
        assert_eq!(Plmn([0xff, 0xff, 0xff]).to_string(), "ffffff");
    }

    #[test]
    fn empty_and_too_long() {
        assert_eq!(decode(&[]), Err(X2apError::Empty));
        assert!(matches!(
            decode(&vec![0; MAX_PDU_LEN + 1]),
            Err(X2apError::TooLong { .. })
        ));
    }

    /// An X2AP-PDU of `code` / `mt` / `criticality` whose ProtocolIE-Container
    /// holds `ids` (IE id, value): UE-X2AP-ID for ids 9 and 10, UE-X2AP-ID-Extension otherwise.
    fn ue_pdu(code: u8, mt: MessageType, criticality: Criticality, ids: &[(u16, u16)]) -> Vec<u8> {
        let protocol_ies = ids
            .iter()
            .map(|&(id, v)| {
                let value = match id {
                    // Above 4095: the two octets APER would use, out of range.
                    ie_id::OLD_ENB_UE_X2AP_ID | ie_id::NEW_ENB_UE_X2AP_ID if v > 4095 => {
                        v.to_be_bytes().to_vec()
                    }
                    ie_id::OLD_ENB_UE_X2AP_ID | ie_id::NEW_ENB_UE_X2AP_ID => {
                        rasn::aper::encode(&asn::UeX2apId(v)).unwrap()
                    }
                    _ => rasn::aper::encode(&asn::UeX2apIdExtension(v.into())).unwrap(),
                };
                asn::ProtocolIeField {
                    id,
                    criticality: Criticality::Reject,
                    value: rasn::types::Any::new(value),
                }
            })
            .collect();
        let m = asn::ProcedureMessage {
            procedure_code: code,
            criticality,
            value: rasn::types::Any::new(
                rasn::aper::encode(&asn::ProtocolIeMessage { protocol_ies }).unwrap(),
            ),
        };
        rasn::aper::encode(&match mt {
            MessageType::InitiatingMessage => asn::X2apPdu::InitiatingMessage(m),
            MessageType::SuccessfulOutcome => asn::X2apPdu::SuccessfulOutcome(m),
            MessageType::UnsuccessfulOutcome => asn::X2apPdu::UnsuccessfulOutcome(m),
        })
        .unwrap()
    }

    const OLD: u16 = ie_id::OLD_ENB_UE_X2AP_ID;
    const NEW: u16 = ie_id::NEW_ENB_UE_X2AP_ID;
    const OLD_EXT: u16 = ie_id::OLD_ENB_UE_X2AP_ID_EXTENSION;
    const NEW_EXT: u16 = ie_id::NEW_ENB_UE_X2AP_ID_EXTENSION;
    const INIT: MessageType = MessageType::InitiatingMessage;

    fn ids(
        old: Option<u16>,
        new: Option<u16>,
        old_ext: Option<u16>,
        new_ext: Option<u16>,
    ) -> UeX2apIds {
        UeX2apIds {
            old_enb_ue_x2ap_id: old,
            new_enb_ue_x2ap_id: new,
            old_enb_ue_x2ap_id_ext: old_ext,
            new_enb_ue_x2ap_id_ext: new_ext,
        }
    }

    #[test]
    fn sn_status_transfer_reports_both_ids_and_extensions() {
        let b = ue_pdu(
            4,
            INIT,
            Criticality::Ignore,
            &[(OLD, 17), (NEW, 42), (OLD_EXT, 3), (NEW_EXT, 4000)],
        );
        let pdu = decode(&b).unwrap();
        assert_eq!(pdu.message, Message::Other);
        assert_eq!(
            pdu.ue_x2ap_ids,
            Some(ids(Some(17), Some(42), Some(3), Some(4000)))
        );
        assert_eq!(pdu.not_comprehended(), None);
        assert_eq!(pdu.receiver_action(), None);
    }

    #[test]
    fn missing_mandatory_ids_are_named() {
        // (procedure code of an initiatingMessage, the ID sent, message, the ID missing)
        let cases = [
            (4, (OLD, 17), "SNStatusTransfer", NEW),
            (4, (NEW, 42), "SNStatusTransfer", OLD),
            (5, (OLD, 17), "UEContextRelease", NEW),
            (1, (NEW, 42), "HandoverCancel", OLD),
            (49, (OLD, 17), "HandoverSuccess", NEW),
        ];
        for (code, sent, message, id) in cases {
            assert_eq!(
                decode(&ue_pdu(code, INIT, Criticality::Reject, &[sent])),
                Err(X2apError::MissingIe {
                    message,
                    ie: ie_name(id),
                    id
                }),
                "{message}"
            );
        }
    }

    #[test]
    fn optional_and_undefined_ids() {
        // ConditionalHandoverCancel: the New eNB UE X2AP ID is optional.
        let pdu = decode(&ue_pdu(50, INIT, Criticality::Ignore, &[(OLD, 4095)])).unwrap();
        assert_eq!(pdu.ue_x2ap_ids, Some(ids(Some(4095), None, None, None)));
        // ErrorIndication: every ID is optional, none present is no error.
        let pdu = decode(&ue_pdu(3, INIT, Criticality::Ignore, &[])).unwrap();
        assert_eq!(pdu.ue_x2ap_ids, Some(UeX2apIds::default()));
        let pdu = decode(&ue_pdu(3, INIT, Criticality::Ignore, &[(OLD, 5)])).unwrap();
        assert_eq!(pdu.ue_x2ap_ids, Some(ids(Some(5), None, None, None)));
        // RetrieveUEContextFailure has only the New eNB UE X2AP ID: an Old one is not read.
        let b = ue_pdu(
            26,
            MessageType::UnsuccessfulOutcome,
            Criticality::Reject,
            &[(OLD, 3), (NEW, 9), (NEW_EXT, 1)],
        );
        assert_eq!(
            decode(&b).unwrap().ue_x2ap_ids,
            Some(ids(None, Some(9), None, Some(1)))
        );
        // RetrieveUEContextRequest: the New eNB UE X2AP ID Extension is IE 158.
        let b = ue_pdu(
            26,
            INIT,
            Criticality::Reject,
            &[
                (NEW, 9),
                (NEW_EXT, 1),
                (ie_id::SENB_UE_X2AP_ID_EXTENSION, 2),
            ],
        );
        assert_eq!(
            decode(&b).unwrap().ue_x2ap_ids,
            Some(ids(None, Some(9), None, Some(2)))
        );
        // A UE-X2AP-ID out of range is named.
        let b = ue_pdu(51, INIT, Criticality::Reject, &[(OLD, 1), (NEW, 4096)]);
        assert!(matches!(
            decode(&b),
            Err(X2apError::BadIe {
                message: "EarlyStatusTransfer",
                id: NEW,
                ..
            })
        ));
    }

    #[test]
    fn messages_without_ue_ids_are_not_opened() {
        // X2SetupRequest (non-UE-associated) with UE-X2AP-ID IEs: not read.
        let pdu = decode(&ue_pdu(6, INIT, Criticality::Reject, &[(OLD, 1)])).unwrap();
        assert_eq!((pdu.message, pdu.ue_x2ap_ids), (Message::Other, None));
        // X2SetupRequest whose value is not a ProtocolIE-Container at all.
        let pdu = decode(&[0x00, 6, 0x00, 0x01, 0xff]).unwrap();
        assert_eq!(pdu.ue_x2ap_ids, None);
    }

    #[test]
    fn not_comprehended_procedure_codes_follow_their_criticality() {
        for code in [58u8, 61, 250, 255] {
            for (c, want) in [
                (
                    Criticality::Reject,
                    ReceiverAction::RejectWithErrorIndication,
                ),
                (Criticality::Ignore, ReceiverAction::Ignore),
                (
                    Criticality::Notify,
                    ReceiverAction::IgnoreWithErrorIndication,
                ),
            ] {
                for mt in MessageType::ALL {
                    let pdu = decode(&ue_pdu(code, mt, c, &[(OLD, 1), (NEW, 2)])).unwrap();
                    assert_eq!(pdu.message, Message::Other);
                    assert_eq!(pdu.ue_x2ap_ids, None, "{code}");
                    assert_eq!(pdu.not_comprehended(), Some(NotComprehended::ProcedureCode));
                    assert_eq!(pdu.receiver_action(), Some(want), "{code} {c:?}");
                }
            }
        }
    }

    #[test]
    fn not_comprehended_type_of_message() {
        // Handover Cancel and UE Context Release are class 2: no outcomes.
        // Reset has no unsuccessful outcome.
        for (code, mt) in [
            (1, MessageType::SuccessfulOutcome),
            (5, MessageType::UnsuccessfulOutcome),
            (7, MessageType::UnsuccessfulOutcome),
        ] {
            for c in [
                Criticality::Reject,
                Criticality::Ignore,
                Criticality::Notify,
            ] {
                let pdu = decode(&ue_pdu(code, mt, c, &[(OLD, 1), (NEW, 2)])).unwrap();
                assert_eq!((&pdu.message, pdu.ue_x2ap_ids), (&Message::Other, None));
                assert_eq!(pdu.not_comprehended(), Some(NotComprehended::TypeOfMessage));
                assert_eq!(
                    pdu.receiver_action(),
                    Some(ReceiverAction::IgnoreWithErrorIndication)
                );
            }
        }
    }

    #[test]
    fn transport_address_other_lengths() {
        let mut b = BitString::new();
        for i in 0..12 {
            b.push(i % 2 == 0);
        }
        match TransportLayerAddress::from_bits(&b) {
            TransportLayerAddress::Other { bits, octets } => {
                assert_eq!(bits, 12);
                assert_eq!(octets, vec![0xaa, 0xa0]);
            }
            other => panic!("{other:?}"),
        }
    }
}
