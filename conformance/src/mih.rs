//! The stable JSON form of an MIH frame.
//!
//! ```json
//! {
//!   "protocol": "mih",
//!   "message": "MIH_N2N_HO_Commit.request",
//!   "header": {"version": 1, "ack_req": true, "ack_rsp": false, "uir": false,
//!              "more_frag": false, "frag_no": 0, "mid": "0x3409", "sid": 3,
//!              "opcode": "request", "aid": 9, "tid": 291, "payload_len": 86},
//!   "tlvs": [
//!     {"type": 1, "name": "Source MIHF ID", "length": 13, "value": "mihf-serving"},
//!     {"type": 100, "name": "Vendor specific", "length": 5, "raw": "4f44540102"}
//!   ]
//! }
//! ```
//!
//! A TLV with a typed form shows `value`; any other TLV (vendor-specific,
//! experimental, or a value that does not decode) shows its value octets as
//! `raw` hex. A fragment shows `payload` hex instead of `tlvs`. `encode`
//! reads the same form: `name`, `length`, `payload_len`, `sid`, `opcode` and
//! `aid` are informative and recomputed; the MID comes from `header.mid`, or
//! from `message` when `mid` is absent.

use bytes::{Bytes, BytesMut};
use mihf::wire::{message::message_forms, tlv_name, Frame, Header, Message, Mid, Opcode, TlvValue};
use serde_json::{json, Map, Value as Json};

/// Decode a frame into its JSON form; the frame must also decode as a typed
/// message (mandatory TLVs, order, value lengths).
pub fn decode_json(bytes: &[u8]) -> Result<Json, String> {
    let bytes = Bytes::copy_from_slice(bytes);
    let frame = Frame::parse(bytes.clone()).map_err(|e| e.to_string())?;
    let header = frame.header();
    let mut out = Map::new();
    out.insert("protocol".into(), json!("mih"));
    let message = if header.is_fragment() {
        None
    } else {
        Some(Message::decode(&frame).map_err(|e| e.to_string())?)
    };
    out.insert(
        "message".into(),
        json!(match &message {
            Some(m) => m.name(),
            None => format!("fragment of MID {:#06x}", header.mid.0),
        }),
    );
    out.insert("header".into(), header_json(&header));
    if message.is_none() {
        out.insert("payload".into(), json!(hex::encode(frame.payload())));
        return Ok(Json::Object(out));
    }
    let mut tlvs = Vec::new();
    for t in frame.tlvs() {
        let mut o = Map::new();
        o.insert("type".into(), json!(t.ty));
        o.insert("name".into(), json!(tlv_name(t.ty)));
        o.insert("length".into(), json!(t.value.len()));
        match TlvValue::decode(t.ty, &bytes, t.value) {
            Ok(Some(v)) => {
                o.insert(
                    "value".into(),
                    serde_json::to_value(&v).map_err(|e| e.to_string())?,
                );
            }
            Ok(None) => {
                o.insert("raw".into(), json!(hex::encode(t.value)));
            }
            Err(e) => {
                o.insert("raw".into(), json!(hex::encode(t.value)));
                o.insert("note".into(), json!(format!("value does not decode: {e}")));
            }
        }
        tlvs.push(Json::Object(o));
    }
    out.insert("tlvs".into(), Json::Array(tlvs));
    Ok(Json::Object(out))
}

fn header_json(h: &Header) -> Json {
    json!({
        "version": h.version,
        "ack_req": h.ack_req,
        "ack_rsp": h.ack_rsp,
        "uir": h.uir,
        "more_frag": h.more_frag,
        "frag_no": h.frag_no,
        "mid": format!("{:#06x}", h.mid.0),
        "sid": h.mid.sid().0,
        "opcode": h.mid.opcode().suffix(),
        "aid": h.mid.aid(),
        "tid": h.tid,
        "payload_len": h.payload_len,
    })
}

fn get_bool(o: &Map<String, Json>, k: &str) -> Result<bool, String> {
    match o.get(k) {
        None => Ok(false),
        Some(v) => v
            .as_bool()
            .ok_or(format!("header.{k} must be true or false")),
    }
}

fn get_uint(o: &Map<String, Json>, k: &str, default: u64, max: u64) -> Result<u64, String> {
    let v = match o.get(k) {
        None => default,
        Some(Json::String(s)) => parse_uint(s).ok_or(format!("header.{k}: bad number {s:?}"))?,
        Some(v) => v.as_u64().ok_or(format!("header.{k} must be a number"))?,
    };
    if v > max {
        return Err(format!("header.{k} = {v} exceeds {max}"));
    }
    Ok(v)
}

fn parse_uint(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

fn mid_from_name(name: &str) -> Option<Mid> {
    let base = name.trim_end_matches(" (ACK)");
    message_forms()
        .into_iter()
        .find(|(n, _)| n == base)
        .map(|(_, m)| m)
        .or_else(|| {
            // Event and unknown forms: "<primitive>.<opcode>" for any opcode.
            let (prim, op) = base.rsplit_once('.')?;
            let opcode = [
                Opcode::Confirm,
                Opcode::Request,
                Opcode::Response,
                Opcode::Indication,
            ]
            .into_iter()
            .find(|o| o.suffix() == op)?;
            message_forms()
                .into_iter()
                .find(|(n, _)| n.rsplit_once('.').map(|x| x.0) == Some(prim))
                .map(|(_, m)| m.with_opcode(opcode))
        })
}

/// Encode the JSON form back into a frame. The result must parse as a frame
/// and (unless it is a fragment) decode as a typed message.
pub fn encode_json(json: &Json) -> Result<Vec<u8>, String> {
    let o = json.as_object().ok_or("the frame must be a JSON object")?;
    let empty = Map::new();
    let h = match o.get("header") {
        Some(Json::Object(h)) => h,
        Some(_) => return Err("header must be an object".into()),
        None => &empty,
    };
    let mid = match h.get("mid") {
        Some(_) => Mid(get_uint(h, "mid", 0, 0xffff)? as u16),
        None => {
            let name = o
                .get("message")
                .and_then(Json::as_str)
                .ok_or("need header.mid or a known message name")?;
            mid_from_name(name).ok_or(format!("unknown message name {name:?}"))?
        }
    };
    let header = Header {
        version: get_uint(h, "version", 1, 15)? as u8,
        ack_req: get_bool(h, "ack_req")?,
        ack_rsp: get_bool(h, "ack_rsp")?,
        uir: get_bool(h, "uir")?,
        more_frag: get_bool(h, "more_frag")?,
        frag_no: get_uint(h, "frag_no", 0, 127)? as u8,
        mid,
        tid: get_uint(h, "tid", 0, 0xfff)? as u16,
        payload_len: 0,
    };
    let mut payload = BytesMut::new();
    if let Some(p) = o.get("payload") {
        let text = p.as_str().ok_or("payload must be a hex string")?;
        payload.extend_from_slice(&hex::decode(text).map_err(|e| format!("payload: {e}"))?);
    } else {
        let tlvs = o
            .get("tlvs")
            .and_then(Json::as_array)
            .ok_or("need a tlvs array (or a payload hex string)")?;
        for (i, t) in tlvs.iter().enumerate() {
            encode_tlv(i, t, &mut payload)?;
        }
    }
    let bytes =
        mihf::wire::header::build_frame(header, &payload).ok_or("payload exceeds 65,535 octets")?;
    let frame = Frame::parse(bytes.clone()).map_err(|e| e.to_string())?;
    if !header.is_fragment() {
        Message::decode(&frame).map_err(|e| e.to_string())?;
    }
    Ok(bytes.to_vec())
}

fn encode_tlv(i: usize, t: &Json, out: &mut BytesMut) -> Result<(), String> {
    let o = t
        .as_object()
        .ok_or(format!("tlvs[{i}] must be an object"))?;
    let ty = o
        .get("type")
        .and_then(Json::as_u64)
        .filter(|t| *t <= 255)
        .ok_or(format!("tlvs[{i}].type must be a number 0-255"))? as u8;
    if let Some(raw) = o.get("raw") {
        let text = raw
            .as_str()
            .ok_or(format!("tlvs[{i}].raw must be a hex string"))?;
        let value = hex::decode(text).map_err(|e| format!("tlvs[{i}].raw: {e}"))?;
        out.extend_from_slice(&[ty]);
        mihf::wire::encode_length(value.len(), out);
        out.extend_from_slice(&value);
        return Ok(());
    }
    let value = o
        .get("value")
        .ok_or(format!("tlvs[{i}] needs a value or a raw hex string"))?;
    let typed = TlvValue::deserialize(ty, value)
        .map_err(|e| format!("tlvs[{i}] (type {ty}, {}): {e}", tlv_name(ty)))?
        .ok_or(format!(
            "tlvs[{i}]: type {ty} ({}) has no typed form; give its value as raw hex",
            tlv_name(ty)
        ))?;
    typed.emit(out);
    Ok(())
}
