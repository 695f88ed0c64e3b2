//! Elementary procedures of X2AP (TS 36.423 §8, Rel-17): procedure code,
//! procedure name and the message name of each message type; and which of
//! those messages carry the Old and New eNB UE X2AP IDs (TS 36.423 §9.1).

use super::MessageType;

/// (procedureCode, procedure, InitiatingMessage, SuccessfulOutcome, UnsuccessfulOutcome)
type Row = (
    u8,
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
);

const PROCEDURES: &[Row] = &[
    (
        0,
        "handoverPreparation",
        "HandoverRequest",
        Some("HandoverRequestAcknowledge"),
        Some("HandoverPreparationFailure"),
    ),
    (1, "handoverCancel", "HandoverCancel", None, None),
    (2, "loadIndication", "LoadInformation", None, None),
    (3, "errorIndication", "ErrorIndication", None, None),
    (4, "snStatusTransfer", "SNStatusTransfer", None, None),
    (5, "uEContextRelease", "UEContextRelease", None, None),
    (
        6,
        "x2Setup",
        "X2SetupRequest",
        Some("X2SetupResponse"),
        Some("X2SetupFailure"),
    ),
    (7, "reset", "ResetRequest", Some("ResetResponse"), None),
    (
        8,
        "eNBConfigurationUpdate",
        "ENBConfigurationUpdate",
        Some("ENBConfigurationUpdateAcknowledge"),
        Some("ENBConfigurationUpdateFailure"),
    ),
    (
        9,
        "resourceStatusReportingInitiation",
        "ResourceStatusRequest",
        Some("ResourceStatusResponse"),
        Some("ResourceStatusFailure"),
    ),
    (
        10,
        "resourceStatusReporting",
        "ResourceStatusUpdate",
        None,
        None,
    ),
    (11, "privateMessage", "PrivateMessage", None, None),
    (
        12,
        "mobilitySettingsChange",
        "MobilityChangeRequest",
        Some("MobilityChangeAcknowledge"),
        Some("MobilityChangeFailure"),
    ),
    (13, "rLFIndication", "RLFIndication", None, None),
    (14, "handoverReport", "HandoverReport", None, None),
    (
        15,
        "cellActivation",
        "CellActivationRequest",
        Some("CellActivationResponse"),
        Some("CellActivationFailure"),
    ),
    (16, "x2Release", "X2Release", None, None),
    (17, "x2APMessageTransfer", "X2APMessageTransfer", None, None),
    (
        18,
        "x2Removal",
        "X2RemovalRequest",
        Some("X2RemovalResponse"),
        Some("X2RemovalFailure"),
    ),
    (
        19,
        "seNBAdditionPreparation",
        "SeNBAdditionRequest",
        Some("SeNBAdditionRequestAcknowledge"),
        Some("SeNBAdditionRequestReject"),
    ),
    (
        20,
        "seNBReconfigurationCompletion",
        "SeNBReconfigurationComplete",
        None,
        None,
    ),
    (
        21,
        "meNBinitiatedSeNBModificationPreparation",
        "SeNBModificationRequest",
        Some("SeNBModificationRequestAcknowledge"),
        Some("SeNBModificationRequestReject"),
    ),
    (
        22,
        "seNBinitiatedSeNBModification",
        "SeNBModificationRequired",
        Some("SeNBModificationConfirm"),
        Some("SeNBModificationRefuse"),
    ),
    (
        23,
        "meNBinitiatedSeNBRelease",
        "SeNBReleaseRequest",
        None,
        None,
    ),
    (
        24,
        "seNBinitiatedSeNBRelease",
        "SeNBReleaseRequired",
        Some("SeNBReleaseConfirm"),
        None,
    ),
    (
        25,
        "seNBCounterCheck",
        "SeNBCounterCheckRequest",
        None,
        None,
    ),
    (
        26,
        "retrieveUEContext",
        "RetrieveUEContextRequest",
        Some("RetrieveUEContextResponse"),
        Some("RetrieveUEContextFailure"),
    ),
    (
        27,
        "sgNBAdditionPreparation",
        "SgNBAdditionRequest",
        Some("SgNBAdditionRequestAcknowledge"),
        Some("SgNBAdditionRequestReject"),
    ),
    (
        28,
        "sgNBReconfigurationCompletion",
        "SgNBReconfigurationComplete",
        None,
        None,
    ),
    (
        29,
        "meNBinitiatedSgNBModificationPreparation",
        "SgNBModificationRequest",
        Some("SgNBModificationRequestAcknowledge"),
        Some("SgNBModificationRequestReject"),
    ),
    (
        30,
        "sgNBinitiatedSgNBModification",
        "SgNBModificationRequired",
        Some("SgNBModificationConfirm"),
        Some("SgNBModificationRefuse"),
    ),
    (
        31,
        "meNBinitiatedSgNBRelease",
        "SgNBReleaseRequest",
        Some("SgNBReleaseRequestAcknowledge"),
        Some("SgNBReleaseRequestReject"),
    ),
    (
        32,
        "sgNBinitiatedSgNBRelease",
        "SgNBReleaseRequired",
        Some("SgNBReleaseConfirm"),
        None,
    ),
    (
        33,
        "sgNBCounterCheck",
        "SgNBCounterCheckRequest",
        None,
        None,
    ),
    (
        34,
        "sgNBChange",
        "SgNBChangeRequired",
        Some("SgNBChangeConfirm"),
        Some("SgNBChangeRefuse"),
    ),
    (35, "rRCTransfer", "RRCTransfer", None, None),
    (
        36,
        "endcX2Setup",
        "ENDCX2SetupRequest",
        Some("ENDCX2SetupResponse"),
        Some("ENDCX2SetupFailure"),
    ),
    (
        37,
        "endcConfigurationUpdate",
        "ENDCConfigurationUpdate",
        Some("ENDCConfigurationUpdateAcknowledge"),
        Some("ENDCConfigurationUpdateFailure"),
    ),
    (
        38,
        "secondaryRATDataUsageReport",
        "SecondaryRATDataUsageReport",
        None,
        None,
    ),
    (
        39,
        "endcCellActivation",
        "ENDCCellActivationRequest",
        Some("ENDCCellActivationResponse"),
        Some("ENDCCellActivationFailure"),
    ),
    (
        40,
        "endcPartialReset",
        "ENDCPartialResetRequired",
        Some("ENDCPartialResetConfirm"),
        None,
    ),
    (
        41,
        "eUTRANRCellResourceCoordination",
        "EUTRANRCellResourceCoordinationRequest",
        Some("EUTRANRCellResourceCoordinationResponse"),
        None,
    ),
    (
        42,
        "SgNBActivityNotification",
        "SgNBActivityNotification",
        None,
        None,
    ),
    (
        43,
        "endcX2Removal",
        "ENDCX2RemovalRequest",
        Some("ENDCX2RemovalResponse"),
        Some("ENDCX2RemovalFailure"),
    ),
    (
        44,
        "dataForwardingAddressIndication",
        "DataForwardingAddressIndication",
        None,
        None,
    ),
    (45, "gNBStatusIndication", "GNBStatusIndication", None, None),
    (46, "deactivateTrace", "DeactivateTrace", None, None),
    (47, "traceStart", "TraceStart", None, None),
    (
        48,
        "endcConfigurationTransfer",
        "ENDCConfigurationTransfer",
        None,
        None,
    ),
    (49, "handoverSuccess", "HandoverSuccess", None, None),
    (
        50,
        "conditionalHandoverCancel",
        "ConditionalHandoverCancel",
        None,
        None,
    ),
    (51, "earlyStatusTransfer", "EarlyStatusTransfer", None, None),
    (52, "cellTrafficTrace", "CellTrafficTrace", None, None),
    (
        53,
        "endcresourceStatusReporting",
        "ENDCResourceStatusUpdate",
        None,
        None,
    ),
    (
        54,
        "endcresourceStatusReportingInitiation",
        "ENDCResourceStatusRequest",
        Some("ENDCResourceStatusResponse"),
        Some("ENDCResourceStatusFailure"),
    ),
    (55, "f1CTrafficTransfer", "F1CTrafficTransfer", None, None),
    (
        56,
        "UERadioCapabilityIDMapping",
        "UERadioCapabilityIDMappingRequest",
        Some("UERadioCapabilityIDMappingResponse"),
        None,
    ),
    (
        57,
        "accessAndMobilityIndication",
        "AccessAndMobilityIndication",
        None,
        None,
    ),
    (59, "CPC-cancel", "CPC-cancel", None, None),
    (60, "rachIndication", "RachIndication", None, None),
];

fn row(code: u8) -> Option<&'static Row> {
    PROCEDURES.iter().find(|r| r.0 == code)
}

/// The procedure name of `code` (e.g. `handoverPreparation` for 0), as in
/// the `id-...` constants of TS 36.423; `None` for a code it does not define.
pub fn procedure_name(code: u8) -> Option<&'static str> {
    row(code).map(|r| r.1)
}

/// The message name (e.g. `HandoverRequestAcknowledge`) of `code` sent as
/// `message_type`; `None` when the procedure has no such message.
pub fn message_name(code: u8, message_type: MessageType) -> Option<&'static str> {
    let r = row(code)?;
    match message_type {
        MessageType::InitiatingMessage => Some(r.2),
        MessageType::SuccessfulOutcome => r.3,
        MessageType::UnsuccessfulOutcome => r.4,
    }
}

/// Whether a message has an IE, as its table in TS 36.423 §9.1 says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Presence {
    /// M: a message without it is malformed.
    Mandatory,
    /// O.
    Optional,
    /// The message has no such IE.
    NotDefined,
}

impl Presence {
    /// Whether the message has the IE at all.
    pub fn is_defined(self) -> bool {
        self != Presence::NotDefined
    }
}

/// The eNB UE X2AP IDs a UE-associated message carries (TS 36.423 §9.1).
///
/// The Old eNB UE X2AP ID (IE id 10) is allocated by the source eNB, the New
/// eNB UE X2AP ID (id 9) by the target eNB (TS 36.423 §9.2); wherever a
/// message has one of them it also has its Extension (ids 156 and 155),
/// always optional.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UeIdIes {
    /// Old eNB UE X2AP ID.
    pub old: Presence,
    /// New eNB UE X2AP ID.
    pub new: Presence,
    /// IE id of the New eNB UE X2AP ID Extension (155; 158 in
    /// RetrieveUEContextRequest, whose ASN.1 carries it as
    /// id-SeNB-UE-X2AP-ID-Extension).
    pub new_extension_ie: u16,
}

const fn ids(old: Presence, new: Presence) -> UeIdIes {
    UeIdIes {
        old,
        new,
        new_extension_ie: 155,
    }
}

/// (procedureCode, message type, IDs). Every message of TS 36.423 (Rel-17)
/// with an Old or New eNB UE X2AP ID IE. The dual connectivity messages
/// (SeNB/SgNB procedures, RRC Transfer, trace, ...) identify the UE by MeNB
/// and SeNB/SgNB UE X2AP IDs instead and are not in this table.
const UE_IDS: &[(u8, MessageType, UeIdIes)] = {
    use MessageType::*;
    use Presence::*;
    &[
        // §9.1.1.1 HANDOVER REQUEST
        (0, InitiatingMessage, ids(Mandatory, NotDefined)),
        // §9.1.1.2 HANDOVER REQUEST ACKNOWLEDGE
        (0, SuccessfulOutcome, ids(Mandatory, Mandatory)),
        // §9.1.1.3 HANDOVER PREPARATION FAILURE
        (0, UnsuccessfulOutcome, ids(Mandatory, NotDefined)),
        // §9.1.1.6 HANDOVER CANCEL: the target may not have allocated an ID yet
        (1, InitiatingMessage, ids(Mandatory, Optional)),
        // ERROR INDICATION: UE-associated only when it has the IDs
        (3, InitiatingMessage, ids(Optional, Optional)),
        // §9.1.1.4 SN STATUS TRANSFER
        (4, InitiatingMessage, ids(Mandatory, Mandatory)),
        // §9.1.1.5 UE CONTEXT RELEASE
        (5, InitiatingMessage, ids(Mandatory, Mandatory)),
        // RETRIEVE UE CONTEXT REQUEST: only the new eNB's ID
        (
            26,
            InitiatingMessage,
            UeIdIes {
                old: NotDefined,
                new: Mandatory,
                new_extension_ie: 158,
            },
        ),
        // RETRIEVE UE CONTEXT RESPONSE
        (26, SuccessfulOutcome, ids(Mandatory, Mandatory)),
        // RETRIEVE UE CONTEXT FAILURE
        (26, UnsuccessfulOutcome, ids(NotDefined, Mandatory)),
        // DATA FORWARDING ADDRESS INDICATION
        (44, InitiatingMessage, ids(Mandatory, Mandatory)),
        // HANDOVER SUCCESS (conditional handover)
        (49, InitiatingMessage, ids(Mandatory, Mandatory)),
        // CONDITIONAL HANDOVER CANCEL
        (50, InitiatingMessage, ids(Mandatory, Optional)),
        // EARLY STATUS TRANSFER
        (51, InitiatingMessage, ids(Mandatory, Mandatory)),
    ]
};

/// Which eNB UE X2AP IDs the message `code` sent as `message_type` carries;
/// `None` when it has neither the Old nor the New eNB UE X2AP ID.
pub fn ue_id_ies(code: u8, message_type: MessageType) -> Option<UeIdIes> {
    UE_IDS
        .iter()
        .find(|(c, t, _)| *c == code && *t == message_type)
        .map(|r| r.2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ue_id_table_names_only_defined_messages() {
        for (code, t, ies) in UE_IDS {
            assert!(message_name(*code, *t).is_some(), "{code} {t}");
            assert!(ies.old.is_defined() || ies.new.is_defined(), "{code} {t}");
        }
        let hc = ue_id_ies(1, MessageType::InitiatingMessage).unwrap();
        assert_eq!((hc.old, hc.new), (Presence::Mandatory, Presence::Optional));
        let hpf = ue_id_ies(0, MessageType::UnsuccessfulOutcome).unwrap();
        assert_eq!(hpf.new, Presence::NotDefined);
        assert_eq!(ue_id_ies(6, MessageType::InitiatingMessage), None);
        assert_eq!(ue_id_ies(1, MessageType::SuccessfulOutcome), None);
    }
}
