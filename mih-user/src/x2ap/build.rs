//! Build X2AP handover PDUs (HandoverRequest, HandoverRequestAcknowledge) for a given UE and target cell.
//!
//! The decoder ([`super::decode`]) reads what an eNodeB sends; this module
//! writes the same two messages of Handover Preparation, so that a demo or a
//! test can drive the [`super::X2Trigger`] with real X2AP (TS 36.423, APER)
//! for any UE, any pair of UE X2AP IDs and any target cell.
//!
//! Each PDU is made from typed values: every IE value is encoded with `rasn`
//! from the [`super::asn`] types (plus the few IEs the decoder never reads,
//! declared here), then the ProtocolIE-Container, then the outer X2AP-PDU.
//! Nothing is copied from template bytes.
//!
//! * [`HandoverRequestParams`] holds what a HandoverRequest says. Its
//!   constructor [`HandoverRequestParams::new`] takes the old eNB UE X2AP ID and
//!   the target cell and fills in the rest (GUMMEI, MME UE S1AP ID, security
//!   context, UE-AMBR, one E-RAB with its QoS and uplink GTP tunnel, RRC
//!   context, UE history) with values from the golden vectors
//!   (`conformance/vectors/x2ap/`); every field is public, so change any of them.
//! * [`HandoverRequestAcknowledgeParams`] does the same for the answer:
//!   [`HandoverRequestAcknowledgeParams::new`] admits one E-RAB,
//!   [`HandoverRequestAcknowledgeParams::admitting`] admits every E-RAB of a
//!   request.
//! * [`handover_request`] and [`handover_request_acknowledge`] encode them.
//!   A value outside its ASN.1 range (an X2AP ID above 4095, a 29-bit cell
//!   identity, an empty E-RAB list, ...) is a [`BuildError`]; no input panics,
//!   and every PDU returned is at most [`MAX_PDU_LEN`] octets, so it decodes.
//!
//! ```
//! use mih_user::x2ap::build::{self, HandoverRequestAcknowledgeParams, HandoverRequestParams};
//! use mih_user::x2ap::{decode, Message, Plmn};
//!
//! let plmn = Plmn::from_mcc_mnc("001", "01").unwrap();
//! let mut request = HandoverRequestParams::new(17, plmn, 0x1a2b301);
//! request.e_rabs[0].ul_gtp_tunnel.teid = 0x101; // how the UE table knows the UE
//! let request_pdu = build::handover_request(&request).unwrap();
//! let ack_pdu =
//!     build::handover_request_acknowledge(&HandoverRequestAcknowledgeParams::admitting(&request, 42))
//!         .unwrap();
//!
//! match decode(&request_pdu).unwrap().message {
//!     Message::HandoverRequest(r) => {
//!         assert_eq!(r.old_enb_ue_x2ap_id, 17);
//!         assert_eq!(r.target_cell.macro_enb_id(), 0x1a2b3);
//!         assert_eq!(r.e_rabs[0].ul_gtp_tunnel.teid, 0x101);
//!     }
//!     other => panic!("{other:?}"),
//! }
//! match decode(&ack_pdu).unwrap().message {
//!     Message::HandoverRequestAcknowledge(a) => {
//!         assert_eq!((a.old_enb_ue_x2ap_id, a.new_enb_ue_x2ap_id), (17, 42));
//!     }
//!     other => panic!("{other:?}"),
//! }
//!
//! // Out of range is an error, not a panic.
//! let bad = HandoverRequestParams::new(4096, plmn, 0x1a2b301);
//! assert!(build::handover_request(&bad).is_err());
//! ```

use std::net::Ipv4Addr;

use rasn::prelude::*;

use super::asn::{self, Criticality};
use super::pdu::{
    ie_id, Cause, ERabAdmitted, Ecgi, GtpTunnel, Gummei, Plmn, TransportLayerAddress, MAX_PDU_LEN,
    PROC_HANDOVER_PREPARATION,
};

/// IE ids this module writes that the decoder does not read (TS 36.423 §9.3.7).
mod extra_ie_id {
    /// id-TargeteNBtoSource-eNBTransparentContainer
    pub const TARGET_TO_SOURCE_CONTAINER: u16 = 12;
    /// id-UE-HistoryInformation
    pub const UE_HISTORY_INFORMATION: u16 = 15;
    /// id-SRVCCOperationPossible
    pub const SRVCC_OPERATION_POSSIBLE: u16 = 36;
}

/// Largest value of a UE-X2AP-ID (and of the root of UE-X2AP-ID-Extension).
pub const MAX_UE_X2AP_ID: u16 = 4095;
/// Largest E-UTRAN cell identity (28 bits).
pub const MAX_CELL_ID: u32 = 0x0fff_ffff;
/// Largest BitRate (TS 36.423 §9.2.11): 10 Gbit/s.
pub const MAX_BIT_RATE: u64 = 10_000_000_000;

/// Why a PDU could not be built. Every variant names the offending field
/// (`e_rabs[1].qci`, ...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// A number outside the range its ASN.1 type allows.
    #[error("{field} = {value} is outside {min}..={max}")]
    OutOfRange {
        /// The field.
        field: String,
        /// The value given.
        value: u64,
        /// Smallest value allowed.
        min: u64,
        /// Largest value allowed.
        max: u64,
    },
    /// A list with too few or too many items.
    #[error("{field} has {count} item(s); {min}..={max} allowed")]
    Count {
        /// The field.
        field: String,
        /// Items given.
        count: usize,
        /// Fewest allowed.
        min: usize,
        /// Most allowed.
        max: usize,
    },
    /// A value that cannot be put on the wire for another reason.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// The encoded PDU is longer than the decoder accepts.
    #[error("the PDU would be {len} octets, more than {max}")]
    TooLong {
        /// Octets of the encoded PDU.
        len: usize,
        /// [`MAX_PDU_LEN`].
        max: usize,
    },
    /// `rasn` refused to encode a value (not expected once the checks above pass).
    #[error("APER encoding of {what} failed: {reason}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// rasn's diagnosis.
        reason: String,
    },
}

// ---------------------------------------------------------------------------
// parameters
// ---------------------------------------------------------------------------

/// The AS security context handed to the target (TS 36.423 §9.2.29, §9.2.30).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityParams {
    /// EEA algorithms the UE supports: bit 15 (the first bit on the wire) is
    /// 128-EEA1, bit 14 is 128-EEA2, and so on.
    pub encryption_algorithms: u16,
    /// EIA algorithms the UE supports, numbered the same way.
    pub integrity_protection_algorithms: u16,
    /// KeNB* (256 bits).
    pub key_enb_star: [u8; 32],
    /// Next Hop Chaining Count, 0..=7.
    pub next_hop_chaining_count: u8,
}

impl Default for SecurityParams {
    /// EEA1+EEA2, EIA1+EIA2, KeNB* = 00 01 .. 1f, NCC 2 (the golden vector's values).
    fn default() -> Self {
        let mut key = [0u8; 32];
        for (i, k) in key.iter_mut().enumerate() {
            *k = i as u8;
        }
        SecurityParams {
            encryption_algorithms: 0xc000,
            integrity_protection_algorithms: 0xc000,
            key_enb_star: key,
            next_hop_chaining_count: 2,
        }
    }
}

/// A downlink/uplink pair of bit rates in bit/s, each 0..=[`MAX_BIT_RATE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BitRates {
    /// Downlink.
    pub downlink: u64,
    /// Uplink.
    pub uplink: u64,
}

/// GBR QoS information of an E-RAB (TS 36.423 §9.2.10), bit/s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GbrParams {
    /// E-RAB Maximum Bit Rate.
    pub maximum: BitRates,
    /// E-RAB Guaranteed Bit Rate.
    pub guaranteed: BitRates,
}

/// One E-RAB to set up at the target (an item of E-RABs-ToBeSetup-List).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ERabParams {
    /// E-RAB ID, 0..=15.
    pub e_rab_id: u8,
    /// QCI (any octet).
    pub qci: u8,
    /// ARP priority level, 0..=15.
    pub priority_level: u8,
    /// ARP pre-emption capability.
    pub pre_emption_capability: asn::PreEmptionCapability,
    /// ARP pre-emption vulnerability.
    pub pre_emption_vulnerability: asn::PreEmptionVulnerability,
    /// GBR QoS information (GBR bearers only).
    pub gbr: Option<GbrParams>,
    /// Propose DL data forwarding.
    pub dl_forwarding: bool,
    /// Uplink tunnel at the S-GW. A [`TransportLayerAddress::Other`] must hold
    /// 1..=160 bits in `bits.div_ceil(8)` octets.
    pub ul_gtp_tunnel: GtpTunnel,
}

impl ERabParams {
    /// A non-GBR bearer with ARP priority 9 (shall not trigger pre-emption,
    /// pre-emptable) and DL forwarding proposed.
    pub fn new(e_rab_id: u8, qci: u8, ul_gtp_tunnel: GtpTunnel) -> ERabParams {
        ERabParams {
            e_rab_id,
            qci,
            priority_level: 9,
            pre_emption_capability: asn::PreEmptionCapability::ShallNotTriggerPreEmption,
            pre_emption_vulnerability: asn::PreEmptionVulnerability::PreEmptable,
            gbr: None,
            dl_forwarding: true,
            ul_gtp_tunnel,
        }
    }
}

/// Forbidden tracking areas of one PLMN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForbiddenTas {
    /// The PLMN.
    pub plmn: Plmn,
    /// Its forbidden TACs, 1..=4096 of them.
    pub tacs: Vec<u16>,
}

/// Handover Restriction List (TS 36.423 §9.2.3), without forbidden LAs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandoverRestriction {
    /// Serving PLMN.
    pub serving_plmn: Plmn,
    /// Equivalent PLMNs, 0..=15 (none: the IE is left out).
    pub equivalent_plmns: Vec<Plmn>,
    /// Forbidden TAs, 0..=16 PLMNs (none: the IE is left out).
    pub forbidden_tas: Vec<ForbiddenTas>,
    /// Forbidden inter-RATs.
    pub forbidden_inter_rats: Option<asn::ForbiddenInterRats>,
}

/// Cell-Size of a visited cell.
#[derive(AsnType, Decode, Encode, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[rasn(enumerated)]
#[non_exhaustive]
pub enum CellSize {
    /// verysmall
    VerySmall,
    /// small
    Small,
    /// medium
    Medium,
    /// large
    Large,
}

/// An E-UTRAN cell the UE stayed in (an item of UE-HistoryInformation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VisitedCell {
    /// The cell (its identity must fit 28 bits).
    pub cell: Ecgi,
    /// Its size.
    pub cell_size: CellSize,
    /// Seconds the UE stayed there, 0..=4095.
    pub time_stayed_s: u16,
}

/// What a HandoverRequest says.
///
/// The decoder reads the IDs, Cause, target cell, GUMMEI, MME UE S1AP ID and,
/// per E-RAB, the ID, QCI and uplink tunnel; the other fields are there so that
/// the PDU is complete (every mandatory IE of TS 36.423 is written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandoverRequestParams {
    /// Old eNB UE X2AP ID, 0..=4095.
    pub old_enb_ue_x2ap_id: u16,
    /// Old eNB UE X2AP ID Extension (0..=4095), sent when set.
    pub old_enb_ue_x2ap_id_ext: Option<u16>,
    /// Cause (not [`Cause::Unrecognised`]).
    pub cause: Cause,
    /// Target cell (identity 0..=[`MAX_CELL_ID`]).
    pub target: Ecgi,
    /// GUMMEI of the serving MME.
    pub gummei: Gummei,
    /// MME UE S1AP ID.
    pub mme_ue_s1ap_id: u32,
    /// UE security capabilities and AS security information.
    pub security: SecurityParams,
    /// UE Aggregate Maximum Bit Rate.
    pub ue_ambr: BitRates,
    /// Subscriber Profile ID for RAT/Frequency priority, 1..=256.
    pub subscriber_profile_id_for_rfp: Option<u16>,
    /// E-RABs to set up, 1..=256 of them.
    pub e_rabs: Vec<ERabParams>,
    /// RRC Context: the HandoverPreparationInformation message (UPER).
    pub rrc_context: Vec<u8>,
    /// Handover Restriction List.
    pub handover_restriction: Option<HandoverRestriction>,
    /// Ask the target to report changes of serving cell (Location Reporting
    /// Information: change-of-serving-cell, report area ECGI).
    pub location_reporting: bool,
    /// UE History Information, most recent cell first, 1..=16 cells.
    pub ue_history: Vec<VisitedCell>,
    /// Send SRVCC Operation Possible.
    pub srvcc_operation_possible: bool,
}

/// A HandoverPreparationInformation whose criticalExtensions is
/// criticalExtensionsFuture (UPER: the CHOICE bit set): the smallest valid
/// RRC inter-node message, also used for the HandoverCommand.
pub const MINIMAL_RRC_CONTAINER: [u8; 1] = [0x80];

impl HandoverRequestParams {
    /// A request for UE `old_enb_ue_x2ap_id` to move to cell `target_cell_id`
    /// of `target_plmn`, with these defaults (those of the golden vector
    /// `handover_request`, trimmed to one E-RAB):
    ///
    /// * Cause radioNetwork handover-desirable-for-radio-reasons;
    /// * GUMMEI: the target's PLMN, MME group 0x8001, MME code 0x1c;
    ///   MME UE S1AP ID 0x12345678;
    /// * [`SecurityParams::default`]; UE-AMBR 100 Mbit/s down, 50 Mbit/s up;
    ///   Subscriber Profile ID 12;
    /// * one E-RAB: ID 5, QCI 9, [`ERabParams::new`], uplink tunnel
    ///   192.0.2.10 TEID 0x101;
    /// * RRC context [`MINIMAL_RRC_CONTAINER`]; no handover restriction list,
    ///   no location reporting;
    /// * UE history: medium cell 0x0b0b002 of the target's PLMN for 120 s;
    ///   SRVCC operation possible.
    ///
    /// Nothing is checked here: [`handover_request`] does.
    pub fn new(old_enb_ue_x2ap_id: u16, target_plmn: Plmn, target_cell_id: u32) -> Self {
        HandoverRequestParams {
            old_enb_ue_x2ap_id,
            old_enb_ue_x2ap_id_ext: None,
            cause: Cause::RadioNetwork(asn::CauseRadioNetwork::HandoverDesirableForRadioReasons),
            target: Ecgi {
                plmn: target_plmn,
                cell_id: target_cell_id,
            },
            gummei: Gummei {
                plmn: target_plmn,
                mme_group_id: 0x8001,
                mme_code: 0x1c,
            },
            mme_ue_s1ap_id: 0x1234_5678,
            security: SecurityParams::default(),
            ue_ambr: BitRates {
                downlink: 100_000_000,
                uplink: 50_000_000,
            },
            subscriber_profile_id_for_rfp: Some(12),
            e_rabs: vec![ERabParams::new(
                5,
                9,
                GtpTunnel {
                    address: TransportLayerAddress::V4(Ipv4Addr::new(192, 0, 2, 10)),
                    teid: 0x101,
                },
            )],
            rrc_context: MINIMAL_RRC_CONTAINER.to_vec(),
            handover_restriction: None,
            location_reporting: false,
            ue_history: vec![VisitedCell {
                cell: Ecgi {
                    plmn: target_plmn,
                    cell_id: 0x0b0_b002,
                },
                cell_size: CellSize::Medium,
                time_stayed_s: 120,
            }],
            srvcc_operation_possible: true,
        }
    }
}

/// What a HandoverRequestAcknowledge says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandoverRequestAcknowledgeParams {
    /// Old eNB UE X2AP ID (the source's), 0..=4095.
    pub old_enb_ue_x2ap_id: u16,
    /// New eNB UE X2AP ID (the target's), 0..=4095.
    pub new_enb_ue_x2ap_id: u16,
    /// Old eNB UE X2AP ID Extension (0..=4095), sent when set.
    pub old_enb_ue_x2ap_id_ext: Option<u16>,
    /// New eNB UE X2AP ID Extension (0..=4095), sent when set.
    pub new_enb_ue_x2ap_id_ext: Option<u16>,
    /// Admitted E-RABs, 1..=256 (IDs 0..=15; tunnels as in [`ERabParams::ul_gtp_tunnel`]).
    pub admitted_e_rabs: Vec<ERabAdmitted>,
    /// Target eNB To Source eNB Transparent Container: the RRC HandoverCommand (UPER).
    pub target_to_source_container: Vec<u8>,
}

impl HandoverRequestAcknowledgeParams {
    /// The target admits E-RAB 5 (the default of [`HandoverRequestParams::new`])
    /// and offers a DL forwarding tunnel 198.51.100.7 TEID 0xbeef; the container
    /// is [`MINIMAL_RRC_CONTAINER`] (as in the golden vector).
    pub fn new(old_enb_ue_x2ap_id: u16, new_enb_ue_x2ap_id: u16) -> Self {
        HandoverRequestAcknowledgeParams {
            old_enb_ue_x2ap_id,
            new_enb_ue_x2ap_id,
            old_enb_ue_x2ap_id_ext: None,
            new_enb_ue_x2ap_id_ext: None,
            admitted_e_rabs: vec![ERabAdmitted {
                e_rab_id: 5,
                ul_gtp_tunnel: None,
                dl_gtp_tunnel: Some(GtpTunnel {
                    address: TransportLayerAddress::V4(Ipv4Addr::new(198, 51, 100, 7)),
                    teid: 0xbeef,
                }),
            }],
            target_to_source_container: MINIMAL_RRC_CONTAINER.to_vec(),
        }
    }

    /// The answer to `request`: same Old eNB UE X2AP ID (and extension), every
    /// E-RAB of the request admitted, without forwarding tunnels.
    pub fn admitting(request: &HandoverRequestParams, new_enb_ue_x2ap_id: u16) -> Self {
        HandoverRequestAcknowledgeParams {
            old_enb_ue_x2ap_id: request.old_enb_ue_x2ap_id,
            new_enb_ue_x2ap_id,
            old_enb_ue_x2ap_id_ext: request.old_enb_ue_x2ap_id_ext,
            new_enb_ue_x2ap_id_ext: None,
            admitted_e_rabs: request
                .e_rabs
                .iter()
                .map(|e| ERabAdmitted {
                    e_rab_id: e.e_rab_id,
                    ul_gtp_tunnel: None,
                    dl_gtp_tunnel: None,
                })
                .collect(),
            target_to_source_container: MINIMAL_RRC_CONTAINER.to_vec(),
        }
    }
}

// ---------------------------------------------------------------------------
// IEs the decoder skips (TS 36.423 §9.2.38, §9.2.33)
// ---------------------------------------------------------------------------

/// UE-HistoryInformation ::= SEQUENCE (SIZE(1..maxnoofCells)) OF LastVisitedCell-Item
#[derive(AsnType, Encode, Clone, Debug, PartialEq)]
#[rasn(delegate, size("1..=16"))]
struct UeHistoryInformation(Vec<LastVisitedCellItem>);

/// LastVisitedCell-Item ::= CHOICE { e-UTRAN-Cell, uTRAN-Cell, gERAN-Cell, ..., nG-RAN-Cell }
#[derive(AsnType, Encode, Clone, Debug, PartialEq)]
#[rasn(choice, automatic_tags)]
#[non_exhaustive]
#[allow(dead_code)] // only e-UTRAN-Cell is written; the others fix the CHOICE index width
enum LastVisitedCellItem {
    EUtran(LastVisitedEutranCellInformation),
    Utran(OctetString),
    Geran(LastVisitedGeranCellInformation),
    #[rasn(extension_addition)]
    NgRan(OctetString),
}

/// LastVisitedGERANCellInformation ::= CHOICE { undefined NULL, ... }
#[derive(AsnType, Encode, Clone, Debug, PartialEq)]
#[rasn(choice, automatic_tags)]
#[non_exhaustive]
#[allow(dead_code)]
enum LastVisitedGeranCellInformation {
    Undefined(()),
}

/// LastVisitedEUTRANCellInformation ::= SEQUENCE { global-Cell-ID ECGI, cellType CellType,
/// time-UE-StayedInCell INTEGER (0..4095), iE-Extensions OPTIONAL, ... }
#[derive(AsnType, Encode, Clone, Debug, PartialEq)]
#[rasn(automatic_tags)]
#[non_exhaustive]
struct LastVisitedEutranCellInformation {
    global_cell_id: asn::Ecgi,
    cell_type: CellType,
    #[rasn(value("0..=4095"))]
    time_ue_stayed_in_cell: u16,
    ie_extensions: Option<asn::ProtocolExtensionContainer>,
}

/// CellType ::= SEQUENCE { cell-Size Cell-Size, iE-Extensions OPTIONAL, ... }
#[derive(AsnType, Encode, Clone, Debug, PartialEq)]
#[rasn(automatic_tags)]
#[non_exhaustive]
struct CellType {
    cell_size: CellSize,
    ie_extensions: Option<asn::ProtocolExtensionContainer>,
}

/// SRVCCOperationPossible ::= ENUMERATED { possible, ... }
#[derive(AsnType, Encode, Clone, Copy, Debug, PartialEq, Eq)]
#[rasn(enumerated)]
#[non_exhaustive]
enum SrvccOperationPossible {
    Possible,
}

// ---------------------------------------------------------------------------
// encoding
// ---------------------------------------------------------------------------

/// Encode a HandoverRequest (initiatingMessage of Handover Preparation, criticality reject).
///
/// The IEs, in the order of TS 36.423 §9.1.1.1: Old eNB UE X2AP ID, Cause,
/// Target Cell ID, GUMMEI, UE Context Information, UE History Information,
/// SRVCC Operation Possible (when set), Old eNB UE X2AP ID Extension (when set).
pub fn handover_request(p: &HandoverRequestParams) -> Result<Vec<u8>, BuildError> {
    let mut ies = vec![
        ie(
            ie_id::OLD_ENB_UE_X2AP_ID,
            Criticality::Reject,
            "Old-eNB-UE-X2AP-ID",
            &ue_x2ap_id("old_enb_ue_x2ap_id", p.old_enb_ue_x2ap_id)?,
        )?,
        ie(ie_id::CAUSE, Criticality::Ignore, "Cause", &cause(p.cause)?)?,
        ie(
            ie_id::TARGET_CELL_ID,
            Criticality::Reject,
            "TargetCell-ID",
            &ecgi("target", &p.target)?,
        )?,
        ie(
            ie_id::GUMMEI_ID,
            Criticality::Reject,
            "GUMMEI-ID",
            &gummei(&p.gummei),
        )?,
        ie(
            ie_id::UE_CONTEXT_INFORMATION,
            Criticality::Reject,
            "UE-ContextInformation",
            &ue_context_information(p)?,
        )?,
        ie(
            extra_ie_id::UE_HISTORY_INFORMATION,
            Criticality::Ignore,
            "UE-HistoryInformation",
            &ue_history(&p.ue_history)?,
        )?,
    ];
    if p.srvcc_operation_possible {
        ies.push(ie(
            extra_ie_id::SRVCC_OPERATION_POSSIBLE,
            Criticality::Ignore,
            "SRVCCOperationPossible",
            &SrvccOperationPossible::Possible,
        )?);
    }
    if let Some(ext) = p.old_enb_ue_x2ap_id_ext {
        ies.push(ie(
            ie_id::OLD_ENB_UE_X2AP_ID_EXTENSION,
            Criticality::Reject,
            "Old-eNB-UE-X2AP-ID-Extension",
            &ue_x2ap_id_ext("old_enb_ue_x2ap_id_ext", ext)?,
        )?);
    }
    pdu(Outcome::Initiating, ies)
}

/// Encode a HandoverRequestAcknowledge (successfulOutcome of Handover Preparation, criticality reject).
///
/// The IEs, in the order of TS 36.423 §9.1.1.2: Old and New eNB UE X2AP ID,
/// E-RABs Admitted List, Target eNB To Source eNB Transparent Container, then
/// the Old and New eNB UE X2AP ID Extensions when set.
pub fn handover_request_acknowledge(
    p: &HandoverRequestAcknowledgeParams,
) -> Result<Vec<u8>, BuildError> {
    let admitted = p
        .admitted_e_rabs
        .iter()
        .enumerate()
        .map(|(i, e)| admitted_item(i, e))
        .collect::<Result<Vec<_>, _>>()?;
    count("admitted_e_rabs", admitted.len(), 1, 256)?;
    let mut ies = vec![
        ie(
            ie_id::OLD_ENB_UE_X2AP_ID,
            Criticality::Ignore,
            "Old-eNB-UE-X2AP-ID",
            &ue_x2ap_id("old_enb_ue_x2ap_id", p.old_enb_ue_x2ap_id)?,
        )?,
        ie(
            ie_id::NEW_ENB_UE_X2AP_ID,
            Criticality::Ignore,
            "New-eNB-UE-X2AP-ID",
            &ue_x2ap_id("new_enb_ue_x2ap_id", p.new_enb_ue_x2ap_id)?,
        )?,
        ie(
            ie_id::E_RABS_ADMITTED_LIST,
            Criticality::Ignore,
            "E-RABs-Admitted-List",
            &asn::ERabSingleContainerList(admitted),
        )?,
        ie(
            extra_ie_id::TARGET_TO_SOURCE_CONTAINER,
            Criticality::Ignore,
            "TargeteNBtoSource-eNBTransparentContainer",
            &OctetString::from(p.target_to_source_container.clone()),
        )?,
    ];
    if let Some(ext) = p.old_enb_ue_x2ap_id_ext {
        ies.push(ie(
            ie_id::OLD_ENB_UE_X2AP_ID_EXTENSION,
            Criticality::Ignore,
            "Old-eNB-UE-X2AP-ID-Extension",
            &ue_x2ap_id_ext("old_enb_ue_x2ap_id_ext", ext)?,
        )?);
    }
    if let Some(ext) = p.new_enb_ue_x2ap_id_ext {
        ies.push(ie(
            ie_id::NEW_ENB_UE_X2AP_ID_EXTENSION,
            Criticality::Reject,
            "New-eNB-UE-X2AP-ID-Extension",
            &ue_x2ap_id_ext("new_enb_ue_x2ap_id_ext", ext)?,
        )?);
    }
    pdu(Outcome::Successful, ies)
}

enum Outcome {
    Initiating,
    Successful,
}

/// The ProtocolIE-Container, then the X2AP-PDU around it.
fn pdu(outcome: Outcome, ies: Vec<asn::ProtocolIeField>) -> Result<Vec<u8>, BuildError> {
    let message = asn::ProtocolIeMessage { protocol_ies: ies };
    let procedure = asn::ProcedureMessage {
        procedure_code: PROC_HANDOVER_PREPARATION,
        criticality: Criticality::Reject,
        value: Any::new(aper("protocolIEs", &message)?),
    };
    let outer = match outcome {
        Outcome::Initiating => asn::X2apPdu::InitiatingMessage(procedure),
        Outcome::Successful => asn::X2apPdu::SuccessfulOutcome(procedure),
    };
    let bytes = aper("X2AP-PDU", &outer)?;
    if bytes.len() > MAX_PDU_LEN {
        return Err(BuildError::TooLong {
            len: bytes.len(),
            max: MAX_PDU_LEN,
        });
    }
    Ok(bytes)
}

fn aper<T: Encode>(what: &'static str, value: &T) -> Result<Vec<u8>, BuildError> {
    rasn::aper::encode(value).map_err(|e| BuildError::Encode {
        what,
        reason: e.to_string().lines().next().unwrap_or("").to_owned(),
    })
}

/// A ProtocolIE-Field (or ProtocolIE-Single-Container) whose value is `value`, APER-encoded.
fn ie<T: Encode>(
    id: u16,
    criticality: Criticality,
    what: &'static str,
    value: &T,
) -> Result<asn::ProtocolIeField, BuildError> {
    Ok(asn::ProtocolIeField {
        id,
        criticality,
        value: Any::new(aper(what, value)?),
    })
}

fn range(field: impl Into<String>, value: u64, min: u64, max: u64) -> Result<(), BuildError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(BuildError::OutOfRange {
            field: field.into(),
            value,
            min,
            max,
        })
    }
}

fn count(field: impl Into<String>, n: usize, min: usize, max: usize) -> Result<(), BuildError> {
    if (min..=max).contains(&n) {
        Ok(())
    } else {
        Err(BuildError::Count {
            field: field.into(),
            count: n,
            min,
            max,
        })
    }
}

fn ue_x2ap_id(field: &str, id: u16) -> Result<asn::UeX2apId, BuildError> {
    range(field, id.into(), 0, MAX_UE_X2AP_ID.into())?;
    Ok(asn::UeX2apId(id))
}

fn ue_x2ap_id_ext(field: &str, id: u16) -> Result<asn::UeX2apIdExtension, BuildError> {
    range(field, id.into(), 0, MAX_UE_X2AP_ID.into())?;
    Ok(asn::UeX2apIdExtension(Integer::from(id)))
}

fn cause(c: Cause) -> Result<asn::Cause, BuildError> {
    Ok(match c {
        Cause::RadioNetwork(v) => asn::Cause::RadioNetwork(v),
        Cause::Transport(v) => asn::Cause::Transport(v),
        Cause::Protocol(v) => asn::Cause::Protocol(v),
        Cause::Misc(v) => asn::Cause::Misc(v),
        Cause::Unrecognised => {
            return Err(BuildError::Invalid {
                field: "cause".into(),
                reason: "an unrecognised Cause has no encoding".into(),
            })
        }
    })
}

/// The first `bits` bits of `octets` (which must hold at least that many).
fn bits(octets: &[u8], bits: usize) -> BitString {
    let mut b = BitString::from_slice(octets);
    b.truncate(bits);
    b
}

fn plmn(p: &Plmn) -> asn::PlmnIdentity {
    FixedOctetString::new(p.0)
}

fn ecgi(field: &str, e: &Ecgi) -> Result<asn::Ecgi, BuildError> {
    range(
        format!("{field}.cell_id"),
        e.cell_id.into(),
        0,
        MAX_CELL_ID.into(),
    )?;
    Ok(asn::Ecgi {
        plmn_identity: plmn(&e.plmn),
        eutran_cell_identifier: bits(&(e.cell_id << 4).to_be_bytes(), 28),
        ie_extensions: None,
    })
}

fn gummei(g: &Gummei) -> asn::Gummei {
    asn::Gummei {
        gu_group_id: asn::GuGroupId {
            plmn_identity: plmn(&g.plmn),
            mme_group_id: FixedOctetString::new(g.mme_group_id.to_be_bytes()),
            ie_extensions: None,
        },
        mme_code: FixedOctetString::new([g.mme_code]),
        ie_extensions: None,
    }
}

fn bit_rate(field: String, v: u64) -> Result<u64, BuildError> {
    range(field, v, 0, MAX_BIT_RATE)?;
    Ok(v)
}

fn e_rab_id(field: String, id: u8) -> Result<asn::ERabId, BuildError> {
    range(field, id.into(), 0, 15)?;
    Ok(asn::ERabId(Integer::from(id)))
}

fn transport_layer_address(
    field: String,
    a: &TransportLayerAddress,
) -> Result<BitString, BuildError> {
    Ok(match a {
        TransportLayerAddress::V4(v4) => bits(&v4.octets(), 32),
        TransportLayerAddress::V6(v6) => bits(&v6.octets(), 128),
        TransportLayerAddress::Both(v4, v6) => {
            let mut o = v4.octets().to_vec();
            o.extend_from_slice(&v6.octets());
            bits(&o, 160)
        }
        TransportLayerAddress::Other { bits: n, octets } => {
            range(format!("{field}.bits"), *n as u64, 1, 160)?;
            if octets.len() != n.div_ceil(8) {
                return Err(BuildError::Invalid {
                    field,
                    reason: format!(
                        "{n} bits need {} octets, not {}",
                        n.div_ceil(8),
                        octets.len()
                    ),
                });
            }
            bits(octets, *n)
        }
    })
}

fn gtp_tunnel(field: String, t: &GtpTunnel) -> Result<asn::GtpTunnelEndpoint, BuildError> {
    Ok(asn::GtpTunnelEndpoint {
        transport_layer_address: transport_layer_address(format!("{field}.address"), &t.address)?,
        gtp_teid: FixedOctetString::new(t.teid.to_be_bytes()),
        ie_extensions: None,
    })
}

fn to_be_setup_item(i: usize, e: &ERabParams) -> Result<asn::ProtocolIeField, BuildError> {
    let f = |name: &str| format!("e_rabs[{i}].{name}");
    range(f("priority_level"), e.priority_level.into(), 0, 15)?;
    let gbr = match &e.gbr {
        None => None,
        Some(g) => Some(asn::GbrQosInformation {
            e_rab_maximum_bitrate_dl: bit_rate(f("gbr.maximum.downlink"), g.maximum.downlink)?,
            e_rab_maximum_bitrate_ul: bit_rate(f("gbr.maximum.uplink"), g.maximum.uplink)?,
            e_rab_guaranteed_bitrate_dl: bit_rate(
                f("gbr.guaranteed.downlink"),
                g.guaranteed.downlink,
            )?,
            e_rab_guaranteed_bitrate_ul: bit_rate(f("gbr.guaranteed.uplink"), g.guaranteed.uplink)?,
            ie_extensions: None,
        }),
    };
    let item = asn::ERabsToBeSetupItem {
        e_rab_id: e_rab_id(f("e_rab_id"), e.e_rab_id)?,
        e_rab_level_qos_parameters: asn::ERabLevelQosParameters {
            qci: e.qci,
            allocation_and_retention_priority: asn::AllocationAndRetentionPriority {
                priority_level: e.priority_level,
                pre_emption_capability: e.pre_emption_capability,
                pre_emption_vulnerability: e.pre_emption_vulnerability,
                ie_extensions: None,
            },
            gbr_qos_information: gbr,
            ie_extensions: None,
        },
        dl_forwarding: e
            .dl_forwarding
            .then_some(asn::DlForwarding::DlForwardingProposed),
        ul_gtp_tunnel_endpoint: gtp_tunnel(f("ul_gtp_tunnel"), &e.ul_gtp_tunnel)?,
        ie_extensions: None,
    };
    ie(
        ie_id::E_RABS_TO_BE_SETUP_ITEM,
        Criticality::Ignore,
        "E-RABs-ToBeSetup-Item",
        &item,
    )
}

fn admitted_item(i: usize, e: &ERabAdmitted) -> Result<asn::ProtocolIeField, BuildError> {
    let f = |name: &str| format!("admitted_e_rabs[{i}].{name}");
    let item = asn::ERabsAdmittedItem {
        e_rab_id: e_rab_id(f("e_rab_id"), e.e_rab_id)?,
        ul_gtp_tunnel_endpoint: e
            .ul_gtp_tunnel
            .as_ref()
            .map(|t| gtp_tunnel(f("ul_gtp_tunnel"), t))
            .transpose()?,
        dl_gtp_tunnel_endpoint: e
            .dl_gtp_tunnel
            .as_ref()
            .map(|t| gtp_tunnel(f("dl_gtp_tunnel"), t))
            .transpose()?,
        ie_extensions: None,
    };
    ie(
        ie_id::E_RABS_ADMITTED_ITEM,
        Criticality::Ignore,
        "E-RABs-Admitted-Item",
        &item,
    )
}

fn handover_restriction_list(
    h: &HandoverRestriction,
) -> Result<asn::HandoverRestrictionList, BuildError> {
    count(
        "handover_restriction.equivalent_plmns",
        h.equivalent_plmns.len(),
        0,
        15,
    )?;
    count(
        "handover_restriction.forbidden_tas",
        h.forbidden_tas.len(),
        0,
        16,
    )?;
    let mut forbidden_tas = Vec::with_capacity(h.forbidden_tas.len());
    for (i, ta) in h.forbidden_tas.iter().enumerate() {
        count(
            format!("handover_restriction.forbidden_tas[{i}].tacs"),
            ta.tacs.len(),
            1,
            4096,
        )?;
        forbidden_tas.push(asn::ForbiddenTasItem {
            plmn_identity: plmn(&ta.plmn),
            forbidden_tacs: ta
                .tacs
                .iter()
                .map(|t| FixedOctetString::new(t.to_be_bytes()))
                .collect(),
            ie_extensions: None,
        });
    }
    Ok(asn::HandoverRestrictionList {
        serving_plmn: plmn(&h.serving_plmn),
        equivalent_plmns: (!h.equivalent_plmns.is_empty())
            .then(|| h.equivalent_plmns.iter().map(plmn).collect()),
        forbidden_tas: (!forbidden_tas.is_empty()).then_some(forbidden_tas),
        forbidden_las: None,
        forbidden_inter_rats: h.forbidden_inter_rats,
        ie_extensions: None,
    })
}

fn ue_context_information(
    p: &HandoverRequestParams,
) -> Result<asn::UeContextInformation, BuildError> {
    let s = &p.security;
    range(
        "security.next_hop_chaining_count",
        s.next_hop_chaining_count.into(),
        0,
        7,
    )?;
    if let Some(spid) = p.subscriber_profile_id_for_rfp {
        range("subscriber_profile_id_for_rfp", spid.into(), 1, 256)?;
    }
    count("e_rabs", p.e_rabs.len(), 1, 256)?;
    let e_rabs = p
        .e_rabs
        .iter()
        .enumerate()
        .map(|(i, e)| to_be_setup_item(i, e))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(asn::UeContextInformation {
        mme_ue_s1ap_id: p.mme_ue_s1ap_id,
        ue_security_capabilities: asn::UeSecurityCapabilities {
            encryption_algorithms: bits(&s.encryption_algorithms.to_be_bytes(), 16),
            integrity_protection_algorithms: bits(
                &s.integrity_protection_algorithms.to_be_bytes(),
                16,
            ),
            ie_extensions: None,
        },
        as_security_information: asn::AsSecurityInformation {
            key_enodeb_star: bits(&s.key_enb_star, 256),
            next_hop_chaining_count: s.next_hop_chaining_count,
            ie_extensions: None,
        },
        ue_aggregate_maximum_bit_rate: asn::UeAggregateMaximumBitRate {
            downlink: bit_rate("ue_ambr.downlink".into(), p.ue_ambr.downlink)?,
            uplink: bit_rate("ue_ambr.uplink".into(), p.ue_ambr.uplink)?,
            ie_extensions: None,
        },
        subscriber_profile_id_for_rfp: p.subscriber_profile_id_for_rfp,
        e_rabs_to_be_setup_list: e_rabs,
        rrc_context: OctetString::from(p.rrc_context.clone()),
        handover_restriction_list: p
            .handover_restriction
            .as_ref()
            .map(handover_restriction_list)
            .transpose()?,
        location_reporting_information: p.location_reporting.then_some(
            asn::LocationReportingInformation {
                event_type: asn::EventType::ChangeOfServingCell,
                report_area: asn::ReportArea::Ecgi,
                ie_extensions: None,
            },
        ),
        ie_extensions: None,
    })
}

fn ue_history(cells: &[VisitedCell]) -> Result<UeHistoryInformation, BuildError> {
    count("ue_history", cells.len(), 1, 16)?;
    let mut items = Vec::with_capacity(cells.len());
    for (i, c) in cells.iter().enumerate() {
        range(
            format!("ue_history[{i}].time_stayed_s"),
            c.time_stayed_s.into(),
            0,
            4095,
        )?;
        items.push(LastVisitedCellItem::EUtran(
            LastVisitedEutranCellInformation {
                global_cell_id: ecgi(&format!("ue_history[{i}].cell"), &c.cell)?,
                cell_type: CellType {
                    cell_size: c.cell_size,
                    ie_extensions: None,
                },
                time_ue_stayed_in_cell: c.time_stayed_s,
                ie_extensions: None,
            },
        ));
    }
    Ok(UeHistoryInformation(items))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::x2ap::{decode, Message};

    fn plmn() -> Plmn {
        Plmn([0x00, 0xf1, 0x10])
    }

    #[test]
    fn default_request_decodes_to_its_params() {
        let p = HandoverRequestParams::new(17, plmn(), 0x1a2b301);
        let pdu = decode(&handover_request(&p).unwrap()).unwrap();
        assert_eq!(pdu.procedure_code, PROC_HANDOVER_PREPARATION);
        assert_eq!(pdu.criticality, Criticality::Reject);
        let Message::HandoverRequest(r) = pdu.message else {
            panic!("{:?}", pdu.message)
        };
        assert_eq!(r.old_enb_ue_x2ap_id, 17);
        assert_eq!(r.old_enb_ue_x2ap_id_ext, None);
        assert_eq!(r.cause, p.cause);
        assert_eq!(r.target_cell, p.target);
        assert_eq!(r.gummei, p.gummei);
        assert_eq!(r.mme_ue_s1ap_id, 0x1234_5678);
        assert_eq!(r.e_rabs.len(), 1);
        assert_eq!(r.e_rabs[0].e_rab_id, 5);
        assert_eq!(r.e_rabs[0].qci, 9);
        assert_eq!(r.e_rabs[0].ul_gtp_tunnel, p.e_rabs[0].ul_gtp_tunnel);
    }

    #[test]
    fn default_acknowledge_decodes_to_its_params() {
        let p = HandoverRequestAcknowledgeParams::new(4095, 0);
        let pdu = decode(&handover_request_acknowledge(&p).unwrap()).unwrap();
        let Message::HandoverRequestAcknowledge(a) = pdu.message else {
            panic!("{:?}", pdu.message)
        };
        assert_eq!((a.old_enb_ue_x2ap_id, a.new_enb_ue_x2ap_id), (4095, 0));
        assert_eq!(
            (a.old_enb_ue_x2ap_id_ext, a.new_enb_ue_x2ap_id_ext),
            (None, None)
        );
        assert_eq!(a.admitted_e_rabs, p.admitted_e_rabs);
    }

    #[test]
    fn id_extensions_are_sent_when_set() {
        let mut p = HandoverRequestParams::new(1, plmn(), 0);
        p.old_enb_ue_x2ap_id_ext = Some(4095);
        let Message::HandoverRequest(r) = decode(&handover_request(&p).unwrap()).unwrap().message
        else {
            panic!()
        };
        assert_eq!(r.old_enb_ue_x2ap_id_ext, Some(4095));

        let mut a = HandoverRequestAcknowledgeParams::admitting(&p, 2);
        a.new_enb_ue_x2ap_id_ext = Some(0);
        let Message::HandoverRequestAcknowledge(d) =
            decode(&handover_request_acknowledge(&a).unwrap())
                .unwrap()
                .message
        else {
            panic!()
        };
        assert_eq!(d.old_enb_ue_x2ap_id_ext, Some(4095));
        assert_eq!(d.new_enb_ue_x2ap_id_ext, Some(0));
    }

    #[test]
    fn out_of_range_fields_are_errors() {
        let base = || HandoverRequestParams::new(1, plmn(), 1);
        let err = |p: HandoverRequestParams| handover_request(&p).unwrap_err();

        let mut p = base();
        p.old_enb_ue_x2ap_id = 4096;
        assert_eq!(
            err(p),
            BuildError::OutOfRange {
                field: "old_enb_ue_x2ap_id".into(),
                value: 4096,
                min: 0,
                max: 4095
            }
        );
        let mut p = base();
        p.target.cell_id = MAX_CELL_ID + 1;
        assert!(
            matches!(err(p), BuildError::OutOfRange { field, .. } if field == "target.cell_id")
        );
        let mut p = base();
        p.e_rabs.clear();
        assert!(matches!(err(p), BuildError::Count { field, count: 0, .. } if field == "e_rabs"));
        let mut p = base();
        p.e_rabs[0].e_rab_id = 16;
        assert!(
            matches!(err(p), BuildError::OutOfRange { field, .. } if field == "e_rabs[0].e_rab_id")
        );
        let mut p = base();
        p.e_rabs[0].priority_level = 16;
        assert!(matches!(err(p), BuildError::OutOfRange { .. }));
        let mut p = base();
        p.e_rabs[0].gbr = Some(GbrParams {
            maximum: BitRates {
                downlink: MAX_BIT_RATE + 1,
                uplink: 0,
            },
            guaranteed: BitRates {
                downlink: 0,
                uplink: 0,
            },
        });
        assert!(
            matches!(err(p), BuildError::OutOfRange { field, .. } if field == "e_rabs[0].gbr.maximum.downlink")
        );
        let mut p = base();
        p.e_rabs[0].ul_gtp_tunnel.address = TransportLayerAddress::Other {
            bits: 12,
            octets: vec![0xaa],
        };
        assert!(matches!(err(p), BuildError::Invalid { .. }));
        let mut p = base();
        p.e_rabs[0].ul_gtp_tunnel.address = TransportLayerAddress::Other {
            bits: 0,
            octets: vec![],
        };
        assert!(matches!(err(p), BuildError::OutOfRange { .. }));
        let mut p = base();
        p.security.next_hop_chaining_count = 8;
        assert!(matches!(err(p), BuildError::OutOfRange { .. }));
        let mut p = base();
        p.subscriber_profile_id_for_rfp = Some(0);
        assert!(matches!(err(p), BuildError::OutOfRange { .. }));
        let mut p = base();
        p.ue_history.clear();
        assert!(matches!(err(p), BuildError::Count { .. }));
        let mut p = base();
        p.ue_history[0].time_stayed_s = 4096;
        assert!(matches!(err(p), BuildError::OutOfRange { .. }));
        let mut p = base();
        p.cause = Cause::Unrecognised;
        assert!(matches!(err(p), BuildError::Invalid { field, .. } if field == "cause"));
        let mut p = base();
        p.handover_restriction = Some(HandoverRestriction {
            serving_plmn: plmn(),
            equivalent_plmns: vec![plmn(); 16],
            forbidden_tas: vec![],
            forbidden_inter_rats: None,
        });
        assert!(matches!(err(p), BuildError::Count { .. }));
        let mut p = base();
        p.rrc_context = vec![0; MAX_PDU_LEN];
        assert!(matches!(err(p), BuildError::TooLong { .. }));

        let mut a = HandoverRequestAcknowledgeParams::new(1, 4096);
        assert!(matches!(
            handover_request_acknowledge(&a),
            Err(BuildError::OutOfRange { .. })
        ));
        a.new_enb_ue_x2ap_id = 1;
        a.admitted_e_rabs.clear();
        assert!(matches!(
            handover_request_acknowledge(&a),
            Err(BuildError::Count { .. })
        ));
    }

    #[test]
    fn other_transport_address_keeps_its_bits() {
        let mut p = HandoverRequestParams::new(1, plmn(), 1);
        p.e_rabs[0].ul_gtp_tunnel.address = TransportLayerAddress::Other {
            bits: 12,
            octets: vec![0xab, 0xcf],
        };
        let Message::HandoverRequest(r) = decode(&handover_request(&p).unwrap()).unwrap().message
        else {
            panic!()
        };
        // The bits past the 12th are not sent.
        assert_eq!(
            r.e_rabs[0].ul_gtp_tunnel.address,
            TransportLayerAddress::Other {
                bits: 12,
                octets: vec![0xab, 0xc0]
            }
        );
    }
}
