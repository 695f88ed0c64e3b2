//! The ASN.1 (TS 36.423 §9.3) subset the trigger decodes, as `rasn` types.
//!
//! Written by hand from the X2AP ASN.1 (Rel-17, as shipped by pycrate), with
//! every constraint that changes the aligned-PER encoding: value ranges of
//! INTEGERs, SIZE of strings and lists, extension markers (`#[non_exhaustive]`)
//! and the order of OPTIONAL components. Only the types on the path to the
//! information the trigger needs are here; every other IE value stays an open
//! type ([`Any`]) that is never decoded.
//!
//! The information-object-class machinery of X2AP (`X2AP-PROTOCOL-IES`,
//! `ProtocolIE-Container {{...}}`) is flattened: a container is a list of
//! [`ProtocolIeField`]s whose `value` is an open type, decoded by
//! [`super::decode`] according to the IE id.
#![allow(missing_docs)]

use rasn::prelude::*;

/// Criticality ::= ENUMERATED { reject, ignore, notify }
#[derive(AsnType, Decode, Encode, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[rasn(enumerated)]
pub enum Criticality {
    Reject,
    Ignore,
    Notify,
}

/// X2AP-PDU ::= CHOICE { initiatingMessage, successfulOutcome, unsuccessfulOutcome, ... }
#[derive(AsnType, Decode, Encode, Clone, Debug, PartialEq)]
#[rasn(choice, automatic_tags)]
#[non_exhaustive]
pub enum X2apPdu {
    InitiatingMessage(ProcedureMessage),
    SuccessfulOutcome(ProcedureMessage),
    UnsuccessfulOutcome(ProcedureMessage),
}

/// InitiatingMessage, SuccessfulOutcome and UnsuccessfulOutcome share one shape:
/// SEQUENCE { procedureCode ProcedureCode (0..255), criticality, value open type }
/// (not extensible).
#[derive(AsnType, Decode, Encode, Clone, Debug, PartialEq)]
#[rasn(automatic_tags)]
pub struct ProcedureMessage {
    pub procedure_code: u8,
    pub criticality: Criticality,
    pub value: Any,
}

/// Every X2AP message: SEQUENCE { protocolIEs ProtocolIE-Container {{...}}, ... }
#[derive(AsnType, Decode, Encode, Clone, Debug, PartialEq)]
#[rasn(automatic_tags)]
#[non_exhaustive]
pub struct ProtocolIeMessage {
    /// ProtocolIE-Container ::= SEQUENCE (SIZE (0..maxProtocolIEs)) OF ProtocolIE-Field
    #[rasn(size("0..=65535"))]
    pub protocol_ies: Vec<ProtocolIeField>,
}

/// ProtocolIE-Field (and ProtocolIE-Single-Container): SEQUENCE { id (0..65535), criticality, value }
#[derive(AsnType, Decode, Encode, Clone, Debug, PartialEq)]
#[rasn(automatic_tags)]
pub struct ProtocolIeField {
    pub id: u16,
    pub criticality: Criticality,
    pub value: Any,
}

/// ProtocolExtensionField: SEQUENCE { id (0..65535), criticality, extensionValue }
#[derive(AsnType, Decode, Encode, Clone, Debug, PartialEq)]
#[rasn(automatic_tags)]
pub struct ProtocolExtensionField {
    pub id: u16,
    pub criticality: Criticality,
    pub extension_value: Any,
}

/// ProtocolExtensionContainer ::= SEQUENCE (SIZE (1..maxProtocolExtensions)) OF ProtocolExtensionField
#[derive(AsnType, Decode, Encode, Clone, Debug, PartialEq)]
#[rasn(delegate, size("1..=65535"))]
pub struct ProtocolExtensionContainer(pub Vec<ProtocolExtensionField>);

/// UE-X2AP-ID ::= INTEGER (0..4095)
#[derive(AsnType, Decode, Encode, Clone, Copy, Debug, PartialEq, Eq)]
#[rasn(delegate, value("0..=4095"))]
pub struct UeX2apId(pub u16);

/// UE-X2AP-ID-Extension ::= INTEGER (0..4095, ...)
#[derive(AsnType, Decode, Encode, Clone, Debug, PartialEq, Eq)]
#[rasn(delegate, value("0..=4095", extensible))]
pub struct UeX2apIdExtension(pub Integer);

/// PLMN-Identity ::= OCTET STRING (SIZE(3))
pub type PlmnIdentity = FixedOctetString<3>;

/// ECGI ::= SEQUENCE { pLMN-Identity, eUTRANcellIdentifier BIT STRING (SIZE (28)), iE-Extensions OPTIONAL, ... }
#[derive(AsnType, Decode, Encode, Clone, Debug, PartialEq)]
#[rasn(automatic_tags)]
#[non_exhaustive]
pub struct Ecgi {
    pub plmn_identity: PlmnIdentity,
    #[rasn(size("28"))]
    pub eutran_cell_identifier: BitString,
    pub ie_extensions: Option<ProtocolExtensionContainer>,
}

/// GU-Group-ID ::= SEQUENCE { pLMN-Identity, mME-Group-ID OCTET STRING (SIZE (2)), iE-Extensions OPTIONAL, ... }
#[derive(AsnType, Decode, Encode, Clone, Debug, PartialEq)]
#[rasn(automatic_tags)]
#[non_exhaustive]
pub struct GuGroupId {
    pub plmn_identity: PlmnIdentity,
    pub mme_group_id: FixedOctetString<2>,
    pub ie_extensions: Option<ProtocolExtensionContainer>,
}

/// GUMMEI ::= SEQUENCE { gU-Group-ID, mME-Code OCTET STRING (SIZE (1)), iE-Extensions OPTIONAL, ... }
#[derive(AsnType, Decode, Encode, Clone, Debug, PartialEq)]
#[rasn(automatic_tags)]
#[non_exhaustive]
pub struct Gummei {
    pub gu_group_id: GuGroupId,
    pub mme_code: FixedOctetString<1>,
    pub ie_extensions: Option<ProtocolExtensionContainer>,
}

/// UE-ContextInformation (TS 36.423 §9.1.1.1)
#[derive(AsnType, Decode, Encode, Clone, Debug, PartialEq)]
#[rasn(automatic_tags)]
#[non_exhaustive]
pub struct UeContextInformation {
    /// UE-S1AP-ID ::= INTEGER (0..4294967295)
    pub mme_ue_s1ap_id: u32,
    pub ue_security_capabilities: UeSecurityCapabilities,
    pub as_security_information: AsSecurityInformation,
    pub ue_aggregate_maximum_bit_rate: UeAggregateMaximumBitRate,
    /// SubscriberProfileIDforRFP ::= INTEGER (1..256)
    #[rasn(value("1..=256"))]
    pub subscriber_profile_id_for_rfp: Option<u16>,
    /// E-RABs-ToBeSetup-List ::= SEQUENCE (SIZE(1..maxnoofBearers)) OF ProtocolIE-Single-Container
    #[rasn(size("1..=256"))]
    pub e_rabs_to_be_setup_list: Vec<ProtocolIeField>,
    /// RRC-Context ::= OCTET STRING
    pub rrc_context: OctetString,
    pub handover_restriction_list: Option<HandoverRestrictionList>,
    pub location_reporting_information: Option<LocationReportingInformation>,
    pub ie_extensions: Option<ProtocolExtensionContainer>,
}

/// UESecurityCapabilities ::= SEQUENCE { encryptionAlgorithms BIT STRING (SIZE (16, ...)), integrityProtectionAlgorithms (same), iE-Extensions OPTIONAL, ... }
#[derive(AsnType, Decode, Encode, Clone, Debug, PartialEq)]
#[rasn(automatic_tags)]
#[non_exhaustive]
pub struct UeSecurityCapabilities {
    #[rasn(size("16", extensible))]
    pub encryption_algorithms: BitString,
    #[rasn(size("16", extensible))]
    pub integrity_protection_algorithms: BitString,
    pub ie_extensions: Option<ProtocolExtensionContainer>,
}

/// AS-SecurityInformation ::= SEQUENCE { key-eNodeB-star BIT STRING (SIZE(256)), nextHopChainingCount INTEGER (0..7), iE-Extensions OPTIONAL, ... }
#[derive(AsnType, Decode, Encode, Clone, Debug, PartialEq)]
#[rasn(automatic_tags)]
#[non_exhaustive]
pub struct AsSecurityInformation {
    #[rasn(size("256"))]
    pub key_enodeb_star: BitString,
    #[rasn(value("0..=7"))]
    pub next_hop_chaining_count: u8,
    pub ie_extensions: Option<ProtocolExtensionContainer>,
}

/// UEAggregateMaximumBitRate ::= SEQUENCE { DL BitRate, UL BitRate, iE-Extensions OPTIONAL, ... }
#[derive(AsnType, Decode, Encode, Clone, Debug, PartialEq)]
#[rasn(automatic_tags)]
#[non_exhaustive]
pub struct UeAggregateMaximumBitRate {
    /// BitRate ::= INTEGER (0..10000000000)
    #[rasn(value("0..=10000000000"))]
    pub downlink: u64,
    #[rasn(value("0..=10000000000"))]
    pub uplink: u64,
    pub ie_extensions: Option<ProtocolExtensionContainer>,
}

/// HandoverRestrictionList (TS 36.423 §9.2.3)
#[derive(AsnType, Decode, Encode, Clone, Debug, PartialEq)]
#[rasn(automatic_tags)]
#[non_exhaustive]
pub struct HandoverRestrictionList {
    pub serving_plmn: PlmnIdentity,
    /// EPLMNs ::= SEQUENCE (SIZE(1..maxnoofEPLMNs)) OF PLMN-Identity
    #[rasn(size("1..=15"))]
    pub equivalent_plmns: Option<Vec<PlmnIdentity>>,
    /// ForbiddenTAs ::= SEQUENCE (SIZE(1.. maxnoofEPLMNsPlusOne)) OF ForbiddenTAs-Item
    #[rasn(size("1..=16"))]
    pub forbidden_tas: Option<Vec<ForbiddenTasItem>>,
    /// ForbiddenLAs ::= SEQUENCE (SIZE(1..maxnoofEPLMNsPlusOne)) OF ForbiddenLAs-Item
    #[rasn(size("1..=16"))]
    pub forbidden_las: Option<Vec<ForbiddenLasItem>>,
    pub forbidden_inter_rats: Option<ForbiddenInterRats>,
    pub ie_extensions: Option<ProtocolExtensionContainer>,
}

/// ForbiddenTAs-Item ::= SEQUENCE { pLMN-Identity, forbiddenTACs SEQUENCE (SIZE(1..4096)) OF TAC, iE-Extensions OPTIONAL, ... }
#[derive(AsnType, Decode, Encode, Clone, Debug, PartialEq)]
#[rasn(automatic_tags)]
#[non_exhaustive]
pub struct ForbiddenTasItem {
    pub plmn_identity: PlmnIdentity,
    #[rasn(size("1..=4096"))]
    pub forbidden_tacs: Vec<FixedOctetString<2>>,
    pub ie_extensions: Option<ProtocolExtensionContainer>,
}

/// ForbiddenLAs-Item ::= SEQUENCE { pLMN-Identity, forbiddenLACs SEQUENCE (SIZE(1..4096)) OF LAC, iE-Extensions OPTIONAL, ... }
#[derive(AsnType, Decode, Encode, Clone, Debug, PartialEq)]
#[rasn(automatic_tags)]
#[non_exhaustive]
pub struct ForbiddenLasItem {
    pub plmn_identity: PlmnIdentity,
    #[rasn(size("1..=4096"))]
    pub forbidden_lacs: Vec<FixedOctetString<2>>,
    pub ie_extensions: Option<ProtocolExtensionContainer>,
}

/// ForbiddenInterRATs ::= ENUMERATED { all, geran, utran, cdma2000, ..., geranandutran, cdma2000andutran }
#[derive(AsnType, Decode, Encode, Clone, Copy, Debug, PartialEq, Eq)]
#[rasn(enumerated)]
#[non_exhaustive]
pub enum ForbiddenInterRats {
    All,
    Geran,
    Utran,
    Cdma2000,
    #[rasn(extension_addition)]
    Geranandutran,
    #[rasn(extension_addition)]
    Cdma2000andutran,
}

/// LocationReportingInformation ::= SEQUENCE { eventType, reportArea, iE-Extensions OPTIONAL, ... }
#[derive(AsnType, Decode, Encode, Clone, Debug, PartialEq)]
#[rasn(automatic_tags)]
#[non_exhaustive]
pub struct LocationReportingInformation {
    pub event_type: EventType,
    pub report_area: ReportArea,
    pub ie_extensions: Option<ProtocolExtensionContainer>,
}

/// EventType ::= ENUMERATED { change-of-serving-cell, ... }
#[derive(AsnType, Decode, Encode, Clone, Copy, Debug, PartialEq, Eq)]
#[rasn(enumerated)]
#[non_exhaustive]
pub enum EventType {
    ChangeOfServingCell,
}

/// ReportArea ::= ENUMERATED { ecgi, ... }
#[derive(AsnType, Decode, Encode, Clone, Copy, Debug, PartialEq, Eq)]
#[rasn(enumerated)]
#[non_exhaustive]
pub enum ReportArea {
    Ecgi,
}

/// E-RAB-ID ::= INTEGER (0..15, ...)
#[derive(AsnType, Decode, Encode, Clone, Debug, PartialEq, Eq)]
#[rasn(delegate, value("0..=15", extensible))]
pub struct ERabId(pub Integer);

/// E-RABs-ToBeSetup-Item (TS 36.423 §9.1.1.1)
#[derive(AsnType, Decode, Encode, Clone, Debug, PartialEq)]
#[rasn(automatic_tags)]
#[non_exhaustive]
pub struct ERabsToBeSetupItem {
    pub e_rab_id: ERabId,
    pub e_rab_level_qos_parameters: ERabLevelQosParameters,
    pub dl_forwarding: Option<DlForwarding>,
    pub ul_gtp_tunnel_endpoint: GtpTunnelEndpoint,
    pub ie_extensions: Option<ProtocolExtensionContainer>,
}

/// E-RAB-Level-QoS-Parameters ::= SEQUENCE { qCI QCI (0..255), allocationAndRetentionPriority, gbrQosInformation OPTIONAL, iE-Extensions OPTIONAL, ... }
#[derive(AsnType, Decode, Encode, Clone, Debug, PartialEq)]
#[rasn(automatic_tags)]
#[non_exhaustive]
pub struct ERabLevelQosParameters {
    pub qci: u8,
    pub allocation_and_retention_priority: AllocationAndRetentionPriority,
    pub gbr_qos_information: Option<GbrQosInformation>,
    pub ie_extensions: Option<ProtocolExtensionContainer>,
}

/// AllocationAndRetentionPriority ::= SEQUENCE { priorityLevel (0..15), pre-emptionCapability, pre-emptionVulnerability, iE-Extensions OPTIONAL, ... }
#[derive(AsnType, Decode, Encode, Clone, Debug, PartialEq)]
#[rasn(automatic_tags)]
#[non_exhaustive]
pub struct AllocationAndRetentionPriority {
    #[rasn(value("0..=15"))]
    pub priority_level: u8,
    pub pre_emption_capability: PreEmptionCapability,
    pub pre_emption_vulnerability: PreEmptionVulnerability,
    pub ie_extensions: Option<ProtocolExtensionContainer>,
}

/// Pre-emptionCapability ::= ENUMERATED { shall-not-trigger-pre-emption, may-trigger-pre-emption }
#[derive(AsnType, Decode, Encode, Clone, Copy, Debug, PartialEq, Eq)]
#[rasn(enumerated)]
pub enum PreEmptionCapability {
    ShallNotTriggerPreEmption,
    MayTriggerPreEmption,
}

/// Pre-emptionVulnerability ::= ENUMERATED { not-pre-emptable, pre-emptable }
#[derive(AsnType, Decode, Encode, Clone, Copy, Debug, PartialEq, Eq)]
#[rasn(enumerated)]
pub enum PreEmptionVulnerability {
    NotPreEmptable,
    PreEmptable,
}

/// GBR-QosInformation ::= SEQUENCE { four BitRates, iE-Extensions OPTIONAL, ... }
#[derive(AsnType, Decode, Encode, Clone, Debug, PartialEq)]
#[rasn(automatic_tags)]
#[non_exhaustive]
pub struct GbrQosInformation {
    #[rasn(value("0..=10000000000"))]
    pub e_rab_maximum_bitrate_dl: u64,
    #[rasn(value("0..=10000000000"))]
    pub e_rab_maximum_bitrate_ul: u64,
    #[rasn(value("0..=10000000000"))]
    pub e_rab_guaranteed_bitrate_dl: u64,
    #[rasn(value("0..=10000000000"))]
    pub e_rab_guaranteed_bitrate_ul: u64,
    pub ie_extensions: Option<ProtocolExtensionContainer>,
}

/// DL-Forwarding ::= ENUMERATED { dL-forwardingProposed, ... }
#[derive(AsnType, Decode, Encode, Clone, Copy, Debug, PartialEq, Eq)]
#[rasn(enumerated)]
#[non_exhaustive]
pub enum DlForwarding {
    DlForwardingProposed,
}

/// GTPtunnelEndpoint ::= SEQUENCE { transportLayerAddress BIT STRING (SIZE(1..160, ...)), gTP-TEID OCTET STRING (SIZE (4)), iE-Extensions OPTIONAL, ... }
#[derive(AsnType, Decode, Encode, Clone, Debug, PartialEq)]
#[rasn(automatic_tags)]
#[non_exhaustive]
pub struct GtpTunnelEndpoint {
    #[rasn(size("1..=160", extensible))]
    pub transport_layer_address: BitString,
    pub gtp_teid: FixedOctetString<4>,
    pub ie_extensions: Option<ProtocolExtensionContainer>,
}

/// E-RABs-Admitted-Item ::= SEQUENCE { e-RAB-ID, uL-GTP-TunnelEndpoint OPTIONAL, dL-GTP-TunnelEndpoint OPTIONAL, iE-Extensions OPTIONAL, ... }
#[derive(AsnType, Decode, Encode, Clone, Debug, PartialEq)]
#[rasn(automatic_tags)]
#[non_exhaustive]
pub struct ERabsAdmittedItem {
    pub e_rab_id: ERabId,
    pub ul_gtp_tunnel_endpoint: Option<GtpTunnelEndpoint>,
    pub dl_gtp_tunnel_endpoint: Option<GtpTunnelEndpoint>,
    pub ie_extensions: Option<ProtocolExtensionContainer>,
}

/// E-RABs-Admitted-List / E-RABs-ToBeSetup-List: SEQUENCE (SIZE(1..maxnoofBearers)) OF ProtocolIE-Single-Container
#[derive(AsnType, Decode, Encode, Clone, Debug, PartialEq)]
#[rasn(delegate, size("1..=256"))]
pub struct ERabSingleContainerList(pub Vec<ProtocolIeField>);

/// Cause ::= CHOICE { radioNetwork, transport, protocol, misc, ... }
#[derive(AsnType, Decode, Encode, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[rasn(choice, automatic_tags)]
#[non_exhaustive]
pub enum Cause {
    RadioNetwork(CauseRadioNetwork),
    Transport(CauseTransport),
    Protocol(CauseProtocol),
    Misc(CauseMisc),
}

/// CauseRadioNetwork ::= ENUMERATED (TS 36.423 §9.2.6): root values, `...`, the additions up to Rel-17.
#[derive(AsnType, Decode, Encode, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[rasn(enumerated)]
#[non_exhaustive]
pub enum CauseRadioNetwork {
    HandoverDesirableForRadioReasons,
    TimeCriticalHandover,
    ResourceOptimisationHandover,
    ReduceLoadInServingCell,
    PartialHandover,
    UnknownNewENBUEX2APID,
    UnknownOldENBUEX2APID,
    UnknownPairOfUEX2APID,
    HoTargetNotAllowed,
    Tx2relocoverallExpiry,
    TrelocprepExpiry,
    CellNotAvailable,
    NoRadioResourcesAvailableInTargetCell,
    InvalidMMEGroupID,
    UnknownMMECode,
    EncryptionAndOrIntegrityProtectionAlgorithmsNotSupported,
    ReportCharacteristicsEmpty,
    NoReportPeriodicity,
    ExistingMeasurementID,
    UnknownENBMeasurementID,
    MeasurementTemporarilyNotAvailable,
    Unspecified,
    #[rasn(extension_addition)]
    LoadBalancing,
    #[rasn(extension_addition)]
    HandoverOptimisation,
    #[rasn(extension_addition)]
    ValueOutOfAllowedRange,
    #[rasn(extension_addition)]
    MultipleERABIDInstances,
    #[rasn(extension_addition)]
    SwitchOffOngoing,
    #[rasn(extension_addition)]
    NotSupportedQCIValue,
    #[rasn(extension_addition)]
    MeasurementNotSupportedForTheObject,
    #[rasn(extension_addition)]
    TDCoverallExpiry,
    #[rasn(extension_addition)]
    TDCprepExpiry,
    #[rasn(extension_addition)]
    ActionDesirableForRadioReasons,
    #[rasn(extension_addition)]
    ReduceLoad,
    #[rasn(extension_addition)]
    ResourceOptimisation,
    #[rasn(extension_addition)]
    TimeCriticalAction,
    #[rasn(extension_addition)]
    TargetNotAllowed,
    #[rasn(extension_addition)]
    NoRadioResourcesAvailable,
    #[rasn(extension_addition)]
    InvalidQoSCombination,
    #[rasn(extension_addition)]
    EncryptionAlgorithmsNotSupported,
    #[rasn(extension_addition)]
    ProcedureCancelled,
    #[rasn(extension_addition)]
    RRMPurpose,
    #[rasn(extension_addition)]
    ImproveUserBitRate,
    #[rasn(extension_addition)]
    UserInactivity,
    #[rasn(extension_addition)]
    RadioConnectionWithUELost,
    #[rasn(extension_addition)]
    FailureInTheRadioInterfaceProcedure,
    #[rasn(extension_addition)]
    BearerOptionNotSupported,
    #[rasn(extension_addition)]
    MCGMobility,
    #[rasn(extension_addition)]
    SCGMobility,
    #[rasn(extension_addition)]
    CountReachesMaxValue,
    #[rasn(extension_addition)]
    UnknownOldEnGNBUEX2APID,
    #[rasn(extension_addition)]
    PDCPOverload,
    #[rasn(extension_addition)]
    ChoCpcResourcesTobechanged,
    #[rasn(extension_addition)]
    UePowerSaving,
    #[rasn(extension_addition)]
    InsufficientUeCapabilities,
    #[rasn(extension_addition)]
    NormalRelease,
    #[rasn(extension_addition)]
    UnknownEUTRANNodeMeasurementID,
    #[rasn(extension_addition)]
    SCGActivationDeactivationFailure,
    #[rasn(extension_addition)]
    SCGDeactivationFailureDueToDataTransmission,
    #[rasn(extension_addition)]
    UpIntegrityProtectionNotPossible,
    #[rasn(extension_addition)]
    IABNotAuthorized,
}

impl CauseRadioNetwork {
    /// The ASN.1 identifier of the value, as in TS 36.423.
    pub fn name(self) -> &'static str {
        match self {
            Self::HandoverDesirableForRadioReasons => "handover-desirable-for-radio-reasons",
            Self::TimeCriticalHandover => "time-critical-handover",
            Self::ResourceOptimisationHandover => "resource-optimisation-handover",
            Self::ReduceLoadInServingCell => "reduce-load-in-serving-cell",
            Self::PartialHandover => "partial-handover",
            Self::UnknownNewENBUEX2APID => "unknown-new-eNB-UE-X2AP-ID",
            Self::UnknownOldENBUEX2APID => "unknown-old-eNB-UE-X2AP-ID",
            Self::UnknownPairOfUEX2APID => "unknown-pair-of-UE-X2AP-ID",
            Self::HoTargetNotAllowed => "ho-target-not-allowed",
            Self::Tx2relocoverallExpiry => "tx2relocoverall-expiry",
            Self::TrelocprepExpiry => "trelocprep-expiry",
            Self::CellNotAvailable => "cell-not-available",
            Self::NoRadioResourcesAvailableInTargetCell => {
                "no-radio-resources-available-in-target-cell"
            }
            Self::InvalidMMEGroupID => "invalid-MME-GroupID",
            Self::UnknownMMECode => "unknown-MME-Code",
            Self::EncryptionAndOrIntegrityProtectionAlgorithmsNotSupported => {
                "encryption-and-or-integrity-protection-algorithms-not-supported"
            }
            Self::ReportCharacteristicsEmpty => "reportCharacteristicsEmpty",
            Self::NoReportPeriodicity => "noReportPeriodicity",
            Self::ExistingMeasurementID => "existingMeasurementID",
            Self::UnknownENBMeasurementID => "unknown-eNB-Measurement-ID",
            Self::MeasurementTemporarilyNotAvailable => "measurement-temporarily-not-available",
            Self::Unspecified => "unspecified",
            Self::LoadBalancing => "load-balancing",
            Self::HandoverOptimisation => "handover-optimisation",
            Self::ValueOutOfAllowedRange => "value-out-of-allowed-range",
            Self::MultipleERABIDInstances => "multiple-E-RAB-ID-instances",
            Self::SwitchOffOngoing => "switch-off-ongoing",
            Self::NotSupportedQCIValue => "not-supported-QCI-value",
            Self::MeasurementNotSupportedForTheObject => "measurement-not-supported-for-the-object",
            Self::TDCoverallExpiry => "tDCoverall-expiry",
            Self::TDCprepExpiry => "tDCprep-expiry",
            Self::ActionDesirableForRadioReasons => "action-desirable-for-radio-reasons",
            Self::ReduceLoad => "reduce-load",
            Self::ResourceOptimisation => "resource-optimisation",
            Self::TimeCriticalAction => "time-critical-action",
            Self::TargetNotAllowed => "target-not-allowed",
            Self::NoRadioResourcesAvailable => "no-radio-resources-available",
            Self::InvalidQoSCombination => "invalid-QoS-combination",
            Self::EncryptionAlgorithmsNotSupported => "encryption-algorithms-not-supported",
            Self::ProcedureCancelled => "procedure-cancelled",
            Self::RRMPurpose => "rRM-purpose",
            Self::ImproveUserBitRate => "improve-user-bit-rate",
            Self::UserInactivity => "user-inactivity",
            Self::RadioConnectionWithUELost => "radio-connection-with-UE-lost",
            Self::FailureInTheRadioInterfaceProcedure => "failure-in-the-radio-interface-procedure",
            Self::BearerOptionNotSupported => "bearer-option-not-supported",
            Self::MCGMobility => "mCG-Mobility",
            Self::SCGMobility => "sCG-Mobility",
            Self::CountReachesMaxValue => "count-reaches-max-value",
            Self::UnknownOldEnGNBUEX2APID => "unknown-old-en-gNB-UE-X2AP-ID",
            Self::PDCPOverload => "pDCP-Overload",
            Self::ChoCpcResourcesTobechanged => "cho-cpc-resources-tobechanged",
            Self::UePowerSaving => "ue-power-saving",
            Self::InsufficientUeCapabilities => "insufficient-ue-capabilities",
            Self::NormalRelease => "normal-release",
            Self::UnknownEUTRANNodeMeasurementID => "unknown-E-UTRAN-Node-Measurement-ID",
            Self::SCGActivationDeactivationFailure => "sCG-activation-deactivation-failure",
            Self::SCGDeactivationFailureDueToDataTransmission => {
                "sCG-deactivation-failure-due-to-data-transmission"
            }
            Self::UpIntegrityProtectionNotPossible => "up-integrity-protection-not-possible",
            Self::IABNotAuthorized => "iAB-not-Authorized",
        }
    }
}

/// CauseTransport ::= ENUMERATED (TS 36.423 §9.2.6): root values, `...`, the additions up to Rel-17.
#[derive(AsnType, Decode, Encode, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[rasn(enumerated)]
#[non_exhaustive]
pub enum CauseTransport {
    TransportResourceUnavailable,
    Unspecified,
}

impl CauseTransport {
    /// The ASN.1 identifier of the value, as in TS 36.423.
    pub fn name(self) -> &'static str {
        match self {
            Self::TransportResourceUnavailable => "transport-resource-unavailable",
            Self::Unspecified => "unspecified",
        }
    }
}

/// CauseProtocol ::= ENUMERATED (TS 36.423 §9.2.6): root values, `...`, the additions up to Rel-17.
#[derive(AsnType, Decode, Encode, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[rasn(enumerated)]
#[non_exhaustive]
pub enum CauseProtocol {
    TransferSyntaxError,
    AbstractSyntaxErrorReject,
    AbstractSyntaxErrorIgnoreAndNotify,
    MessageNotCompatibleWithReceiverState,
    SemanticError,
    Unspecified,
    AbstractSyntaxErrorFalselyConstructedMessage,
}

impl CauseProtocol {
    /// The ASN.1 identifier of the value, as in TS 36.423.
    pub fn name(self) -> &'static str {
        match self {
            Self::TransferSyntaxError => "transfer-syntax-error",
            Self::AbstractSyntaxErrorReject => "abstract-syntax-error-reject",
            Self::AbstractSyntaxErrorIgnoreAndNotify => "abstract-syntax-error-ignore-and-notify",
            Self::MessageNotCompatibleWithReceiverState => {
                "message-not-compatible-with-receiver-state"
            }
            Self::SemanticError => "semantic-error",
            Self::Unspecified => "unspecified",
            Self::AbstractSyntaxErrorFalselyConstructedMessage => {
                "abstract-syntax-error-falsely-constructed-message"
            }
        }
    }
}

/// CauseMisc ::= ENUMERATED (TS 36.423 §9.2.6): root values, `...`, the additions up to Rel-17.
#[derive(AsnType, Decode, Encode, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[rasn(enumerated)]
#[non_exhaustive]
pub enum CauseMisc {
    ControlProcessingOverload,
    HardwareFailure,
    OmIntervention,
    NotEnoughUserPlaneProcessingResources,
    Unspecified,
}

impl CauseMisc {
    /// The ASN.1 identifier of the value, as in TS 36.423.
    pub fn name(self) -> &'static str {
        match self {
            Self::ControlProcessingOverload => "control-processing-overload",
            Self::HardwareFailure => "hardware-failure",
            Self::OmIntervention => "om-intervention",
            Self::NotEnoughUserPlaneProcessingResources => {
                "not-enough-user-plane-processing-resources"
            }
            Self::Unspecified => "unspecified",
        }
    }
}
