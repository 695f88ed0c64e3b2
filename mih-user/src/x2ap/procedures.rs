//! Elementary procedures of X2AP (TS 36.423 §8, Rel-17): procedure code,
//! procedure name and the message name of each message type.

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
