#!/usr/bin/env python3
"""Golden X2AP vectors from an independent encoder (pycrate, 3GPP TS 36.423 ASN.1, APER).

Writes one JSON file per PDU into conformance/vectors/x2ap/ and a pcap of all of
them carried over SCTP (DATA chunks, PPID 27, port 36422) into
conformance/vectors/x2ap/x2ap_sctp.pcap.

    pip install pycrate==0.8.1
    python3 conformance/x2ap/gen_vectors.py

Each JSON file holds:
  name, description, procedure (the elementary procedure), message (the
  X2AP message name), message_type (initiating/successful/unsuccessful),
  procedure_code, hex (the APER PDU), expect (the values we set, in the
  shape `conformance decode --proto x2ap` reports them: the eNB UE X2AP IDs
  of every UE-associated message, the IEs of the five handover messages, and
  for a procedure code or message type TS 36.423 does not define the
  receiver's action; empty for the non-UE-associated procedures),
  ue_x2ap_ids (every UE-X2AP-ID value of the top-level IEs, in order),
  asn1_text (pycrate's ASN.1 value notation of the PDU) and generator.
  procedure and message are null where TS 36.423 defines none.

The pcap holds the PDUs of VECTORS, in order; EXTRA_VECTORS are JSON only
(mih-user's replay tests pin the capture's nine packets).

The pcap is built by hand (Ethernet II / IPv4 / SCTP with a CRC32c checksum)
so that nothing but the Python standard library and pycrate is needed.
"""

import json
import os
import struct
import sys

from importlib.metadata import version as _pkg_version

from pycrate_asn1dir import RRCLTE, X2AP

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.normpath(os.path.join(HERE, "..", "vectors", "x2ap"))

PDU = X2AP.X2AP_PDU_Descriptions.X2AP_PDU

# ---------------------------------------------------------------------------
# values
# ---------------------------------------------------------------------------

# PLMN 001/01 in TBCD: MCC 001, MNC 01 -> 00 f1 10
PLMN = bytes.fromhex("00f110")
# E-UTRAN cell identity (28 bits) = macro eNB ID (20 bits) << 8 | cell (8 bits)
TARGET_ENB_ID = 0x1A2B3
TARGET_CELL = 0x01
TARGET_CELL_ID = (TARGET_ENB_ID << 8) | TARGET_CELL
SOURCE_ENB_ID = 0x0B0B0
SOURCE_CELL_ID = (SOURCE_ENB_ID << 8) | 0x02
OLD_ID = 17
NEW_ID = 42
MME_GROUP = bytes.fromhex("8001")
MME_CODE = bytes.fromhex("1c")
MME_UE_S1AP_ID = 305419896


def rrc_container(name):
    """A minimal valid RRC inter-node message (UPER): criticalExtensionsFuture.

    Wireshark dissects the RRC containers of HandoverRequest (rRC-Context:
    HandoverPreparationInformation) and HandoverRequestAcknowledge
    (HandoverCommand), so they must be real RRC, not filler.
    """
    msg = getattr(RRCLTE.EUTRA_InterNodeDefinitions, name)
    msg.set_val({"criticalExtensions": ("criticalExtensionsFuture", {})})
    return msg.to_uper()


def ipv4_bits(a):
    """TransportLayerAddress BIT STRING value for an IPv4 address."""
    b = bytes(int(x) for x in a.split("."))
    return (int.from_bytes(b, "big"), 32)


def ipv6_bits(hexstr):
    b = bytes.fromhex(hexstr)
    return (int.from_bytes(b, "big"), 128)


ERABS = [
    # e-RAB 5: default bearer, QCI 9, IPv4 S-GW, no GBR
    {"e_rab_id": 5, "qci": 9, "ul_addr": "192.0.2.10", "ul_teid": 0x00000101, "gbr": None, "dl_forwarding": True},
    # e-RAB 6: GBR voice bearer, QCI 1, IPv6 S-GW
    {"e_rab_id": 6, "qci": 1, "ul_addr": "20010db8000000000000000000000010", "ul_teid": 0x0A0B0C0D,
     "gbr": (128000, 128000, 64000, 64000), "dl_forwarding": False},
]


def tla(addr):
    return ipv4_bits(addr) if "." in addr else ipv6_bits(addr)


def addr_text(addr):
    if "." in addr:
        return addr
    import ipaddress
    return str(ipaddress.IPv6Address(bytes.fromhex(addr)))


def ie(id_, crit, name, val):
    return {"id": id_, "criticality": crit, "value": (name, val)}


def ecgi(cell_id):
    return {"pLMN-Identity": PLMN, "eUTRANcellIdentifier": (cell_id, 28)}


def erab_item(e):
    qos = {
        "qCI": e["qci"],
        "allocationAndRetentionPriority": {
            "priorityLevel": 9 if e["qci"] == 9 else 2,
            "pre-emptionCapability": "shall-not-trigger-pre-emption",
            "pre-emptionVulnerability": "pre-emptable",
        },
    }
    if e["gbr"]:
        mdl, mul, gdl, gul = e["gbr"]
        qos["gbrQosInformation"] = {
            "e-RAB-MaximumBitrateDL": mdl,
            "e-RAB-MaximumBitrateUL": mul,
            "e-RAB-GuaranteedBitrateDL": gdl,
            "e-RAB-GuaranteedBitrateUL": gul,
        }
    item = {"e-RAB-ID": e["e_rab_id"], "e-RAB-Level-QoS-Parameters": qos}
    if e["dl_forwarding"]:
        item["dL-Forwarding"] = "dL-forwardingProposed"
    item["uL-GTPtunnelEndpoint"] = {
        "transportLayerAddress": tla(e["ul_addr"]),
        "gTP-TEID": struct.pack(">I", e["ul_teid"]),
    }
    return {"id": 4, "criticality": "ignore", "value": ("E-RABs-ToBeSetup-Item", item)}


def handover_request():
    ue_ctx = {
        "mME-UE-S1AP-ID": MME_UE_S1AP_ID,
        "uESecurityCapabilities": {
            "encryptionAlgorithms": (0xC000, 16),
            "integrityProtectionAlgorithms": (0xC000, 16),
        },
        "aS-SecurityInformation": {
            "key-eNodeB-star": (int.from_bytes(bytes(range(32)), "big"), 256),
            "nextHopChainingCount": 2,
        },
        "uEaggregateMaximumBitRate": {
            "uEaggregateMaximumBitRateDownlink": 100000000,
            "uEaggregateMaximumBitRateUplink": 50000000,
        },
        "subscriberProfileIDforRFP": 12,
        "e-RABs-ToBeSetup-List": [erab_item(e) for e in ERABS],
        "rRC-Context": rrc_container("HandoverPreparationInformation"),
        "handoverRestrictionList": {
            "servingPLMN": PLMN,
            "equivalentPLMNs": [bytes.fromhex("00f120")],
            "forbiddenTAs": [{"pLMN-Identity": PLMN, "forbiddenTACs": [b"\x00\x07", b"\x00\x08"]}],
            "forbiddenInterRATs": "geran",
        },
        "locationReportingInformation": {"eventType": "change-of-serving-cell", "reportArea": "ecgi"},
    }
    history = [("e-UTRAN-Cell", {
        "global-Cell-ID": ecgi(SOURCE_CELL_ID),
        "cellType": {"cell-Size": "medium"},
        "time-UE-StayedInCell": 120,
    })]
    ies = [
        ie(10, "reject", "UE-X2AP-ID", OLD_ID),
        ie(5, "ignore", "Cause", ("radioNetwork", "handover-desirable-for-radio-reasons")),
        ie(11, "reject", "ECGI", ecgi(TARGET_CELL_ID)),
        ie(23, "reject", "GUMMEI", {
            "gU-Group-ID": {"pLMN-Identity": PLMN, "mME-Group-ID": MME_GROUP},
            "mME-Code": MME_CODE,
        }),
        ie(14, "reject", "UE-ContextInformation", ue_ctx),
        ie(15, "ignore", "UE-HistoryInformation", history),
        ie(36, "ignore", "SRVCCOperationPossible", "possible"),
    ]
    pdu = ("initiatingMessage", {"procedureCode": 0, "criticality": "reject",
                                 "value": ("HandoverRequest", {"protocolIEs": ies})})
    expect = {
        "old_enb_ue_x2ap_id": OLD_ID,
        "cause": {"group": "radioNetwork", "value": "handover-desirable-for-radio-reasons"},
        "target_cell": {"plmn": PLMN.hex(), "cell_id": TARGET_CELL_ID, "enb_id": TARGET_ENB_ID},
        "gummei": {"plmn": PLMN.hex(), "mme_group_id": int.from_bytes(MME_GROUP, "big"),
                   "mme_code": MME_CODE[0]},
        "mme_ue_s1ap_id": MME_UE_S1AP_ID,
        "e_rabs": [{"e_rab_id": e["e_rab_id"], "qci": e["qci"], "ul_address": addr_text(e["ul_addr"]),
                    "ul_gtp_teid": e["ul_teid"]} for e in ERABS],
    }
    return pdu, expect


ADMITTED_DL = {5: ("198.51.100.7", 0x0000BEEF)}


def handover_request_acknowledge():
    admitted = []
    for e in ERABS:
        item = {"e-RAB-ID": e["e_rab_id"]}
        if e["e_rab_id"] in ADMITTED_DL:
            a, t = ADMITTED_DL[e["e_rab_id"]]
            item["dL-GTP-TunnelEndpoint"] = {"transportLayerAddress": tla(a), "gTP-TEID": struct.pack(">I", t)}
        admitted.append({"id": 0, "criticality": "ignore", "value": ("E-RABs-Admitted-Item", item)})
    ies = [
        ie(10, "ignore", "UE-X2AP-ID", OLD_ID),
        ie(9, "ignore", "UE-X2AP-ID", NEW_ID),
        ie(1, "ignore", "E-RABs-Admitted-List", admitted),
        ie(12, "ignore", "TargeteNBtoSource-eNBTransparentContainer", rrc_container("HandoverCommand")),
    ]
    pdu = ("successfulOutcome", {"procedureCode": 0, "criticality": "reject",
                                 "value": ("HandoverRequestAcknowledge", {"protocolIEs": ies})})
    expect = {
        "old_enb_ue_x2ap_id": OLD_ID,
        "new_enb_ue_x2ap_id": NEW_ID,
        "admitted_e_rabs": [
            {"e_rab_id": e["e_rab_id"],
             **({"dl_address": ADMITTED_DL[e["e_rab_id"]][0], "dl_gtp_teid": ADMITTED_DL[e["e_rab_id"]][1]}
                if e["e_rab_id"] in ADMITTED_DL else {})}
            for e in ERABS
        ],
    }
    return pdu, expect


def handover_preparation_failure():
    ies = [
        ie(10, "ignore", "UE-X2AP-ID", 18),
        ie(5, "ignore", "Cause", ("radioNetwork", "no-radio-resources-available-in-target-cell")),
    ]
    pdu = ("unsuccessfulOutcome", {"procedureCode": 0, "criticality": "reject",
                                   "value": ("HandoverPreparationFailure", {"protocolIEs": ies})})
    return pdu, {"old_enb_ue_x2ap_id": 18,
                 "cause": {"group": "radioNetwork", "value": "no-radio-resources-available-in-target-cell"}}


def handover_cancel():
    ies = [
        ie(10, "reject", "UE-X2AP-ID", OLD_ID),
        ie(9, "ignore", "UE-X2AP-ID", NEW_ID),
        ie(5, "ignore", "Cause", ("radioNetwork", "trelocprep-expiry")),
    ]
    pdu = ("initiatingMessage", {"procedureCode": 1, "criticality": "ignore",
                                 "value": ("HandoverCancel", {"protocolIEs": ies})})
    return pdu, {"old_enb_ue_x2ap_id": OLD_ID, "new_enb_ue_x2ap_id": NEW_ID,
                 "cause": {"group": "radioNetwork", "value": "trelocprep-expiry"}}


def handover_cancel_ext_cause():
    # No New eNB UE X2AP ID, and a cause from the extension of CauseRadioNetwork.
    ies = [
        ie(10, "reject", "UE-X2AP-ID", 4095),
        ie(5, "ignore", "Cause", ("radioNetwork", "procedure-cancelled")),
    ]
    pdu = ("initiatingMessage", {"procedureCode": 1, "criticality": "ignore",
                                 "value": ("HandoverCancel", {"protocolIEs": ies})})
    return pdu, {"old_enb_ue_x2ap_id": 4095, "new_enb_ue_x2ap_id": None,
                 "cause": {"group": "radioNetwork", "value": "procedure-cancelled"}}


def ue_context_release():
    ies = [
        ie(10, "reject", "UE-X2AP-ID", OLD_ID),
        ie(9, "reject", "UE-X2AP-ID", NEW_ID),
    ]
    pdu = ("initiatingMessage", {"procedureCode": 5, "criticality": "ignore",
                                 "value": ("UEContextRelease", {"protocolIEs": ies})})
    return pdu, {"old_enb_ue_x2ap_id": OLD_ID, "new_enb_ue_x2ap_id": NEW_ID}


def x2_setup_request():
    served = [{
        "servedCellInfo": {
            "pCI": 101,
            "cellId": ecgi(SOURCE_CELL_ID),
            "tAC": b"\x00\x07",
            "broadcastPLMNs": [PLMN],
            "eUTRA-Mode-Info": ("fDD", {"uL-EARFCN": 19850, "dL-EARFCN": 1850,
                                        "uL-Transmission-Bandwidth": "bw100",
                                        "dL-Transmission-Bandwidth": "bw100"}),
        },
    }]
    ies = [
        ie(21, "reject", "GlobalENB-ID", {"pLMN-Identity": PLMN, "eNB-ID": ("macro-eNB-ID", (SOURCE_ENB_ID, 20))}),
        ie(20, "reject", "ServedCells", served),
    ]
    pdu = ("initiatingMessage", {"procedureCode": 6, "criticality": "reject",
                                 "value": ("X2SetupRequest", {"protocolIEs": ies})})
    return pdu, {}


def resource_status_update():
    ies = [
        ie(39, "reject", "Measurement-ID", 7),
        ie(40, "reject", "Measurement-ID", 9),
        ie(32, "ignore", "CellMeasurementResult-List", [
            {"id": 33, "criticality": "ignore", "value": ("CellMeasurementResult-Item", {
                "cell-ID": ecgi(SOURCE_CELL_ID),
                "radioResourceStatus": {"dL-GBR-PRB-usage": 10, "uL-GBR-PRB-usage": 5,
                                        "dL-non-GBR-PRB-usage": 40, "uL-non-GBR-PRB-usage": 20,
                                        "dL-Total-PRB-usage": 50, "uL-Total-PRB-usage": 25},
            })}]),
    ]
    pdu = ("initiatingMessage", {"procedureCode": 10, "criticality": "ignore",
                                 "value": ("ResourceStatusUpdate", {"protocolIEs": ies})})
    return pdu, {}


SN_STATUS_LIST = [
    {"id": 19, "criticality": "ignore", "value": ("E-RABs-SubjectToStatusTransfer-Item", {
        "e-RAB-ID": 5,
        "uL-COUNTvalue": {"pDCP-SN": 100, "hFN": 3},
        "dL-COUNTvalue": {"pDCP-SN": 200, "hFN": 4},
    })}]


def sn_status_transfer():
    # Part of a handover, but not one of the messages the trigger acts on:
    # only its UE X2AP IDs are reported.
    ies = [
        ie(10, "reject", "UE-X2AP-ID", OLD_ID),
        ie(9, "reject", "UE-X2AP-ID", NEW_ID),
        ie(18, "ignore", "E-RABs-SubjectToStatusTransfer-List", SN_STATUS_LIST),
    ]
    pdu = ("initiatingMessage", {"procedureCode": 4, "criticality": "ignore",
                                 "value": ("SNStatusTransfer", {"protocolIEs": ies})})
    return pdu, {"old_enb_ue_x2ap_id": OLD_ID, "new_enb_ue_x2ap_id": NEW_ID}


# UE-X2AP-ID-Extension values (INTEGER (0..4095, ...)), in IE order of the ASN.1.
OLD_EXT = 5
NEW_EXT = 4001


def sn_status_transfer_ext_ids():
    ies = [
        ie(10, "reject", "UE-X2AP-ID", OLD_ID),
        ie(9, "reject", "UE-X2AP-ID", NEW_ID),
        ie(18, "ignore", "E-RABs-SubjectToStatusTransfer-List", SN_STATUS_LIST),
        ie(156, "reject", "UE-X2AP-ID-Extension", OLD_EXT),
        ie(155, "reject", "UE-X2AP-ID-Extension", NEW_EXT),
    ]
    pdu = ("initiatingMessage", {"procedureCode": 4, "criticality": "ignore",
                                 "value": ("SNStatusTransfer", {"protocolIEs": ies})})
    return pdu, {"old_enb_ue_x2ap_id": OLD_ID, "new_enb_ue_x2ap_id": NEW_ID,
                 "old_enb_ue_x2ap_id_ext": OLD_EXT, "new_enb_ue_x2ap_id_ext": NEW_EXT}


def ue_context_release_ext_ids():
    ies = [
        ie(10, "reject", "UE-X2AP-ID", OLD_ID),
        ie(9, "reject", "UE-X2AP-ID", NEW_ID),
        ie(156, "reject", "UE-X2AP-ID-Extension", OLD_EXT),
        ie(155, "reject", "UE-X2AP-ID-Extension", NEW_EXT),
    ]
    pdu = ("initiatingMessage", {"procedureCode": 5, "criticality": "ignore",
                                 "value": ("UEContextRelease", {"protocolIEs": ies})})
    return pdu, {"old_enb_ue_x2ap_id": OLD_ID, "new_enb_ue_x2ap_id": NEW_ID,
                 "old_enb_ue_x2ap_id_ext": OLD_EXT, "new_enb_ue_x2ap_id_ext": NEW_EXT}


def handover_success():
    ies = [
        ie(10, "reject", "UE-X2AP-ID", OLD_ID),
        ie(9, "reject", "UE-X2AP-ID", NEW_ID),
    ]
    pdu = ("initiatingMessage", {"procedureCode": 49, "criticality": "ignore",
                                 "value": ("HandoverSuccess", {"protocolIEs": ies})})
    return pdu, {"old_enb_ue_x2ap_id": OLD_ID, "new_enb_ue_x2ap_id": NEW_ID}


def conditional_handover_cancel():
    # The New eNB UE X2AP ID is optional, and absent here.
    ies = [
        ie(10, "reject", "UE-X2AP-ID", OLD_ID),
        ie(5, "ignore", "Cause", ("radioNetwork", "cell-not-available")),
    ]
    pdu = ("initiatingMessage", {"procedureCode": 50, "criticality": "ignore",
                                 "value": ("ConditionalHandoverCancel", {"protocolIEs": ies})})
    return pdu, {"old_enb_ue_x2ap_id": OLD_ID, "new_enb_ue_x2ap_id": None}


def error_indication():
    # UE-associated ErrorIndication: both IDs, both optional.
    ies = [
        ie(10, "ignore", "UE-X2AP-ID", OLD_ID),
        ie(9, "ignore", "UE-X2AP-ID", NEW_ID),
        ie(5, "ignore", "Cause", ("protocol", "abstract-syntax-error-reject")),
    ]
    pdu = ("initiatingMessage", {"procedureCode": 3, "criticality": "ignore",
                                 "value": ("ErrorIndication", {"protocolIEs": ies})})
    return pdu, {"old_enb_ue_x2ap_id": OLD_ID, "new_enb_ue_x2ap_id": NEW_ID}


def retrieve_ue_context_failure():
    # Only the New eNB UE X2AP ID (the eNB that asked for the context).
    ies = [
        ie(9, "ignore", "UE-X2AP-ID", NEW_ID),
        ie(155, "ignore", "UE-X2AP-ID-Extension", NEW_EXT),
        ie(5, "ignore", "Cause", ("misc", "unspecified")),
    ]
    pdu = ("unsuccessfulOutcome", {"procedureCode": 26, "criticality": "reject",
                                   "value": ("RetrieveUEContextFailure", {"protocolIEs": ies})})
    return pdu, {"new_enb_ue_x2ap_id": NEW_ID, "new_enb_ue_x2ap_id_ext": NEW_EXT}


def opaque_ue_ids():
    """The APER value of a ProtocolIE-Container with the Old and New eNB UE X2AP IDs,
    to send under a procedure code or message type TS 36.423 does not define."""
    m = X2AP.X2AP_PDU_Contents.UEContextRelease
    m.set_val({"protocolIEs": [ie(10, "reject", "UE-X2AP-ID", OLD_ID), ie(9, "reject", "UE-X2AP-ID", NEW_ID)]})
    return ("_unk_004", m.to_aper())


def unknown_procedure(code, criticality, action):
    def build():
        pdu = ("initiatingMessage", {"procedureCode": code, "criticality": criticality,
                                     "value": opaque_ue_ids()})
        return pdu, {"criticality": criticality, "not_comprehended": "procedure_code",
                     "receiver_action": action}
    return build


def unknown_message_type():
    # Handover Cancel is a class 2 procedure: it has no successful outcome.
    pdu = ("successfulOutcome", {"procedureCode": 1, "criticality": "reject",
                                 "value": opaque_ue_ids()})
    return pdu, {"criticality": "reject", "not_comprehended": "type_of_message",
                 "receiver_action": "ignore_with_error_indication"}


VECTORS = [
    ("handover_request", "HandoverRequest from the source eNB: UE 17 to cell 0x1a2b301, two E-RABs (IPv4 and IPv6 S-GW)",
     "handoverPreparation", "HandoverRequest", "initiating", 0, handover_request),
    ("handover_request_acknowledge", "HandoverRequestAcknowledge: UE 17 gets New eNB UE X2AP ID 42, both E-RABs admitted",
     "handoverPreparation", "HandoverRequestAcknowledge", "successful", 0, handover_request_acknowledge),
    ("handover_preparation_failure", "HandoverPreparationFailure for UE 18 (no radio resources in the target cell)",
     "handoverPreparation", "HandoverPreparationFailure", "unsuccessful", 0, handover_preparation_failure),
    ("handover_cancel", "HandoverCancel of UE 17/42 (TRELOCprep expiry)",
     "handoverCancel", "HandoverCancel", "initiating", 1, handover_cancel),
    ("handover_cancel_ext_cause", "HandoverCancel of UE 4095 without New ID, cause from the CauseRadioNetwork extension",
     "handoverCancel", "HandoverCancel", "initiating", 1, handover_cancel_ext_cause),
    ("ue_context_release", "UEContextRelease from the target eNB: handover of UE 17/42 done",
     "uEContextRelease", "UEContextRelease", "initiating", 5, ue_context_release),
    ("x2_setup_request", "X2SetupRequest (not acted on): one FDD served cell",
     "x2Setup", "X2SetupRequest", "initiating", 6, x2_setup_request),
    ("resource_status_update", "ResourceStatusUpdate (resourceStatusReporting, not acted on): PRB usage of one cell",
     "resourceStatusReporting", "ResourceStatusUpdate", "initiating", 10, resource_status_update),
    ("sn_status_transfer", "SNStatusTransfer (not acted on): PDCP COUNTs of e-RAB 5",
     "snStatusTransfer", "SNStatusTransfer", "initiating", 4, sn_status_transfer),
]

EXTRA_VECTORS = [
    ("sn_status_transfer_ext_ids", "SNStatusTransfer of UE 17/42 with both UE X2AP ID Extensions (5, 4001)",
     "snStatusTransfer", "SNStatusTransfer", "initiating", 4, sn_status_transfer_ext_ids),
    ("ue_context_release_ext_ids", "UEContextRelease of UE 17/42 with both UE X2AP ID Extensions (5, 4001)",
     "uEContextRelease", "UEContextRelease", "initiating", 5, ue_context_release_ext_ids),
    ("handover_success", "HandoverSuccess (conditional handover, not acted on) of UE 17/42",
     "handoverSuccess", "HandoverSuccess", "initiating", 49, handover_success),
    ("conditional_handover_cancel", "ConditionalHandoverCancel (not acted on) of UE 17, without the optional New ID",
     "conditionalHandoverCancel", "ConditionalHandoverCancel", "initiating", 50, conditional_handover_cancel),
    ("error_indication", "UE-associated ErrorIndication (not acted on) for UE 17/42",
     "errorIndication", "ErrorIndication", "initiating", 3, error_indication),
    ("retrieve_ue_context_failure", "RetrieveUEContextFailure (not acted on): only the New ID 42, extension 4001",
     "retrieveUEContext", "RetrieveUEContextFailure", "unsuccessful", 26, retrieve_ue_context_failure),
    ("unknown_procedure_reject", "Procedure code 58 (reserved, not to be used) with criticality reject",
     None, None, "initiating", 58, unknown_procedure(58, "reject", "reject_with_error_indication")),
    ("unknown_procedure_notify", "Undefined procedure code 200 with criticality notify (ignore and notify sender)",
     None, None, "initiating", 200, unknown_procedure(200, "notify", "ignore_with_error_indication")),
    ("unknown_procedure_ignore", "Undefined procedure code 255 with criticality ignore",
     None, None, "initiating", 255, unknown_procedure(255, "ignore", "ignore")),
    ("unknown_message_type", "successfulOutcome of handoverCancel, a class 2 procedure without one",
     "handoverCancel", None, "successful", 1, unknown_message_type),
]


# ---------------------------------------------------------------------------
# pcap: Ethernet II / IPv4 / SCTP DATA (PPID 27), built by hand
# ---------------------------------------------------------------------------

X2AP_PPID = 27
X2AP_PORT = 36422
SRC_MAC = bytes.fromhex("020000000001")
DST_MAC = bytes.fromhex("020000000002")
SRC_IP = bytes([10, 0, 0, 1])
DST_IP = bytes([10, 0, 0, 2])
VERIFICATION_TAG = 0x1234ABCD
BASE_TS = 1_700_000_000


def _crc32c_table():
    poly = 0x82F63B78
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = _CRC32C[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def ip_checksum(hdr):
    s = 0
    for i in range(0, len(hdr), 2):
        s += (hdr[i] << 8) | hdr[i + 1]
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def sctp_packet(payload, tsn, ssn):
    # DATA chunk: type 0, flags B|E (0x03), length, TSN, stream id 0 (non-UE-associated
    # signalling would use stream 0; one stream is enough here), SSN, PPID.
    chunk_len = 16 + len(payload)
    chunk = struct.pack(">BBHIHHI", 0, 0x03, chunk_len, tsn, 0, ssn, X2AP_PPID) + payload
    chunk += b"\x00" * ((4 - chunk_len % 4) % 4)
    common = struct.pack(">HHII", X2AP_PORT, X2AP_PORT, VERIFICATION_TAG, 0)
    pkt = bytearray(common + chunk)
    # RFC 4960 appendix B: CRC32c over the packet with a zero checksum field,
    # stored in network order of the reflected result (i.e. little-endian bytes).
    struct.pack_into("<I", pkt, 8, crc32c(bytes(pkt)))
    return bytes(pkt)


def ipv4_packet(sctp, ident):
    total = 20 + len(sctp)
    hdr = bytearray(struct.pack(">BBHHHBBH4s4s", 0x45, 0, total, ident, 0x4000, 64, 132, 0, SRC_IP, DST_IP))
    struct.pack_into(">H", hdr, 10, ip_checksum(hdr))
    return bytes(hdr) + sctp


def pcap_bytes(pdus):
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
    for i, pdu in enumerate(pdus):
        frame = DST_MAC + SRC_MAC + b"\x08\x00" + ipv4_packet(sctp_packet(pdu, 1000 + i, i), 0x100 + i)
        ts_us = i * 10_000
        out += struct.pack("<IIII", BASE_TS + ts_us // 1_000_000, ts_us % 1_000_000, len(frame), len(frame))
        out += frame
    return bytes(out)


def main():
    os.makedirs(OUT, exist_ok=True)
    pdus = []
    for name, desc, proc, msg, mtype, code, build in VECTORS + EXTRA_VECTORS:
        val, expect = build()
        PDU.set_val(val)
        data = PDU.to_aper()
        # Round trip through pycrate's own decoder as a sanity check.
        PDU.from_aper(data)
        assert PDU.to_aper() == data, name
        if (name, desc, proc, msg, mtype, code, build) in VECTORS:
            pdus.append(data)
        # Every UE-X2AP-ID value of the PDU's top-level IEs, in order (what
        # tshark shows as x2ap.UE_X2AP_ID), for the Wireshark oracle test;
        # none for a value pycrate cannot open (an undefined message).
        content = val[1]["value"][1]
        ies = content["protocolIEs"] if isinstance(content, dict) else []
        ids = [ie["value"][1] for ie in ies if ie["value"][0] == "UE-X2AP-ID"]
        doc = {
            "name": name,
            "description": desc,
            "procedure": proc,
            "message": msg,
            "message_type": mtype,
            "procedure_code": code,
            "hex": data.hex(),
            "expect": expect,
            "ue_x2ap_ids": ids,
            "asn1_text": PDU.to_asn1(),
            "generator": f"conformance/x2ap/gen_vectors.py, pycrate {_pkg_version('pycrate')} (X2AP ASN.1 of pycrate_asn1dir)",
        }
        with open(os.path.join(OUT, name + ".json"), "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
        print(f"{name}: {len(data)} octets")
    order = [v[0] for v in VECTORS]
    with open(os.path.join(OUT, "x2ap_sctp.pcap"), "wb") as f:
        f.write(pcap_bytes(pdus))
    with open(os.path.join(OUT, "x2ap_sctp.pcap.json"), "w") as f:
        json.dump({"packets": order, "ppid": X2AP_PPID, "port": X2AP_PORT,
                   "note": "one SCTP DATA chunk per packet, in this order; see gen_vectors.py"}, f, indent=2)
        f.write("\n")
    print(f"x2ap_sctp.pcap: {len(pdus)} packets")


if __name__ == "__main__":
    sys.exit(main())
