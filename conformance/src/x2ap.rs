//! X2AP (3GPP TS 36.423) as the MIH-User's handover trigger understands it.
//!
//! [`decode_json`] shows one APER-encoded X2AP PDU the way
//! `mih_user::x2ap::decode` reads it: procedure code and name, message type,
//! criticality, message name, what the trigger does with it (`action`); the
//! Old/New eNB UE X2AP IDs (and their Extensions, when present) of every
//! UE-associated message that has them; for the five handover messages the
//! other IEs the trigger uses (cause, target cell, GUMMEI, E-RABs with their
//! GTP tunnels). A procedure code or message type TS 36.423 does not define is
//! reported with `not_comprehended` and the `receiver_action` of TS 36.423
//! §10.3.4.1. The keys match the `expect` objects of `vectors/x2ap/*.json`.
//!
//! Encoding X2AP is not the trigger's job (the eNodeB does it), so
//! [`encode_json`] explains that and points to the pycrate generator.

use mih_user::x2ap::{
    decode, Cause, ERabAdmitted, ERabToBeSetup, Ecgi, GtpTunnel, Message, MessageType, Pdu,
};
use serde_json::{json, Map, Value};

/// Short form of the message type, as in the vector files.
fn message_type(t: MessageType) -> &'static str {
    match t {
        MessageType::InitiatingMessage => "initiating",
        MessageType::SuccessfulOutcome => "successful",
        MessageType::UnsuccessfulOutcome => "unsuccessful",
    }
}

fn cause(c: &Cause) -> Value {
    json!({"group": c.group(), "value": c.value()})
}

fn cell(e: &Ecgi) -> Value {
    json!({
        "plmn": e.plmn.to_hex(),
        "plmn_text": e.plmn.to_string(),
        "cell_id": e.cell_id,
        "enb_id": e.macro_enb_id(),
    })
}

fn tunnel(prefix: &str, t: &GtpTunnel, out: &mut Map<String, Value>) {
    out.insert(format!("{prefix}_address"), json!(t.address.to_string()));
    out.insert(format!("{prefix}_gtp_teid"), json!(t.teid));
}

fn to_be_setup(e: &ERabToBeSetup) -> Value {
    let mut m = Map::new();
    m.insert("e_rab_id".into(), json!(e.e_rab_id));
    m.insert("qci".into(), json!(e.qci));
    tunnel("ul", &e.ul_gtp_tunnel, &mut m);
    Value::Object(m)
}

fn admitted(e: &ERabAdmitted) -> Value {
    let mut m = Map::new();
    m.insert("e_rab_id".into(), json!(e.e_rab_id));
    if let Some(t) = &e.ul_gtp_tunnel {
        tunnel("ul", t, &mut m);
    }
    if let Some(t) = &e.dl_gtp_tunnel {
        tunnel("dl", t, &mut m);
    }
    Value::Object(m)
}

fn ext(m: &mut Map<String, Value>, key: &str, v: Option<u16>) {
    if let Some(v) = v {
        m.insert(key.into(), json!(v));
    }
}

/// The eNB UE X2AP IDs the message has (TS 36.423 §9.1): each ID it defines,
/// `null` when an optional one is absent, and each Extension that is present.
fn ue_ids(pdu: &Pdu, m: &mut Map<String, Value>) {
    let (Some(ies), Some(ids)) = (pdu.ue_id_ies(), &pdu.ue_x2ap_ids) else {
        return;
    };
    if ies.old.is_defined() {
        m.insert("old_enb_ue_x2ap_id".into(), json!(ids.old_enb_ue_x2ap_id));
    }
    if ies.new.is_defined() {
        m.insert("new_enb_ue_x2ap_id".into(), json!(ids.new_enb_ue_x2ap_id));
    }
    ext(m, "old_enb_ue_x2ap_id_ext", ids.old_enb_ue_x2ap_id_ext);
    ext(m, "new_enb_ue_x2ap_id_ext", ids.new_enb_ue_x2ap_id_ext);
}

/// The JSON view of a decoded PDU.
pub fn pdu_json(pdu: &Pdu) -> Value {
    let mut m = Map::new();
    m.insert("procedure_code".into(), json!(pdu.procedure_code));
    m.insert("procedure".into(), json!(pdu.procedure_name()));
    m.insert("message_type".into(), json!(message_type(pdu.message_type)));
    m.insert("criticality".into(), json!(pdu.criticality.name()));
    m.insert("message".into(), json!(pdu.message_name()));
    if let (Some(what), Some(action)) = (pdu.not_comprehended(), pdu.receiver_action()) {
        m.insert("not_comprehended".into(), json!(what.name()));
        m.insert("receiver_action".into(), json!(action.name()));
    }
    ue_ids(pdu, &mut m);
    let action = match &pdu.message {
        Message::HandoverRequest(r) => {
            m.insert("cause".into(), cause(&r.cause));
            m.insert("target_cell".into(), cell(&r.target_cell));
            m.insert(
                "gummei".into(),
                json!({
                    "plmn": r.gummei.plmn.to_hex(),
                    "mme_group_id": r.gummei.mme_group_id,
                    "mme_code": r.gummei.mme_code,
                }),
            );
            m.insert("mme_ue_s1ap_id".into(), json!(r.mme_ue_s1ap_id));
            m.insert(
                "e_rabs".into(),
                Value::Array(r.e_rabs.iter().map(to_be_setup).collect()),
            );
            "prepare: learn the UE and its target"
        }
        Message::HandoverRequestAcknowledge(a) => {
            m.insert(
                "admitted_e_rabs".into(),
                Value::Array(a.admitted_e_rabs.iter().map(admitted).collect()),
            );
            "trigger: move the UE's services to the target eNBC"
        }
        Message::HandoverPreparationFailure(f) => {
            m.insert("cause".into(), cause(&f.cause));
            "forget the pending UE"
        }
        Message::HandoverCancel(c) => {
            m.insert("cause".into(), cause(&c.cause));
            "forget the pending UE"
        }
        Message::UeContextRelease(_) => "release: the handover is complete",
        Message::Other => "ignore",
    };
    m.insert("action".into(), json!(action));
    Value::Object(m)
}

/// Decode one X2AP PDU (APER) into its JSON view; the error names the message and IE.
pub fn decode_json(bytes: &[u8]) -> Result<Value, String> {
    decode(bytes)
        .map(|p| pdu_json(&p))
        .map_err(|e| format!("X2AP: {e}"))
}

/// Not supported: the trigger only decodes X2AP.
pub fn encode_json(_json: &Value) -> Result<Vec<u8>, String> {
    Err(
        "X2AP encoding is not supported: the MIH-User only decodes X2AP (the eNodeB encodes it); \
         build test PDUs with conformance/x2ap/gen_vectors.py (pycrate)"
            .into(),
    )
}
