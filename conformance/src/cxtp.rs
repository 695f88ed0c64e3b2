//! CXTP JSON view.
//!
//! Stable form of one RFC 4067 message, used by `conformance decode/encode
//! --proto cxtp` and the golden vectors under `vectors/cxtp/`:
//!
//! ```json
//! {
//!   "message": "CTAR" | "CTAA" | "CTD" | "PCTD" | "CTDR" | "CTC" | "CT-Req",
//!   "header": { "version": 1, "type": 1, "v": true, "a": true, "length": 20 },
//!   "mn_addr": "192.0.2.1",
//!   "ar_addr": "192.0.2.254",                       // CTAR
//!   "seq": 305419896, "token": "fbab93dc",          // CTAR, CT-Req
//!   "requests": [ { "fpt": 1, "length": 0, "p": false, "presence_vector": null } ],
//!   "elapsed_ms": 0,                                // CTD, PCTD
//!   "key_block": { "algorithm": 1, "key_length": 20, "key": "0b0b…" },   // PCTD
//!   "cdbs": [ { "fpt": 1, "length": 4, "p": false, "presence_vector": null, "data": "…" } ],
//!   "entries": [ { "fpt": 1, "status": 0 } ]        // CTAA, CTDR
//! }
//! ```
//!
//! `header.v` is the V flag (true = IPv4). Bit 9 appears as `a` (CTAR, CTD,
//! PCTD) or `s` (CTDR) and is absent for the others. CDB `data` is the hex
//! of the Data field including its zero padding. On encode, `header` may be
//! omitted; if present, its `v`, `type` and `length` must agree with what the
//! rest of the object produces.

use std::net::IpAddr;

use bytes::Bytes;
use cxtp::token::AuthKey;
use cxtp::wire::{
    ContextDataBlockRepr, CtReqRepr, CtaaRepr, CtarRepr, CtcRepr, CtdRepr, CtdrRepr, KeyBlockRepr,
    MessageRepr, MessageType, MessageView, RequestBlock, StatusEntry, Token,
};
use serde_json::{json, Map, Value};

/// Decode one CXTP message into its JSON form.
pub fn decode_json(bytes: &[u8]) -> Result<serde_json::Value, String> {
    let msg = MessageView::parse(Bytes::copy_from_slice(bytes)).map_err(|e| e.to_string())?;
    let t = msg.message_type();
    let mut header = Map::new();
    header.insert("version".into(), json!(1));
    header.insert("type".into(), json!(t.code()));
    header.insert("v".into(), json!(msg.mn_addr().is_ipv4()));
    let mut o = Map::new();
    o.insert("message".into(), json!(t.name()));
    let requests = |it: cxtp::wire::RequestBlocks<'_>| -> Value {
        it.map(|r| {
            json!({"fpt": r.fpt, "length": r.length, "p": r.presence_vector.is_some(),
                   "presence_vector": r.presence_vector})
        })
        .collect()
    };
    let entries = |it: cxtp::wire::StatusEntries<'_>| -> Value {
        it.map(|e| json!({"fpt": e.fpt, "status": e.status}))
            .collect()
    };
    o.insert("mn_addr".into(), json!(msg.mn_addr().to_string()));
    match &msg {
        MessageView::Ctar(m) => {
            header.insert("a".into(), json!(m.ack));
            o.insert("ar_addr".into(), json!(m.ar_addr.to_string()));
            o.insert("seq".into(), json!(m.seq));
            o.insert("token".into(), json!(hex::encode(m.token.0)));
            o.insert("requests".into(), requests(m.requests()));
        }
        MessageView::Ctaa(m) => {
            o.insert("entries".into(), entries(m.entries()));
        }
        MessageView::Ctd(m) => {
            header.insert("a".into(), json!(m.ack));
            o.insert("elapsed_ms".into(), json!(m.elapsed_ms));
            if let Some(k) = &m.key_block {
                o.insert(
                    "key_block".into(),
                    json!({"algorithm": k.algorithm, "key_length": k.key.len(),
                           "key": hex::encode(&k.key)}),
                );
            }
            let cdbs: Value = m
                .blocks()
                .map(|b| {
                    json!({"fpt": b.fpt, "length": b.length, "p": b.presence_vector.is_some(),
                           "presence_vector": b.presence_vector, "data": hex::encode(&b.data)})
                })
                .collect();
            o.insert("cdbs".into(), cdbs);
        }
        MessageView::Ctdr(m) => {
            header.insert("s".into(), json!(m.success));
            o.insert("entries".into(), entries(m.entries()));
        }
        MessageView::Ctc(_) => {}
        MessageView::CtReq(m) => {
            o.insert("seq".into(), json!(m.seq));
            o.insert("token".into(), json!(hex::encode(m.token.0)));
            o.insert("requests".into(), requests(m.requests()));
        }
    }
    header.insert("length".into(), json!(bytes.len()));
    o.insert("header".into(), Value::Object(header));
    Ok(Value::Object(o))
}

fn field<'a>(o: &'a Value, name: &str) -> Result<&'a Value, String> {
    o.get(name).ok_or_else(|| format!("missing field `{name}`"))
}
fn uint(o: &Value, name: &str, max: u64) -> Result<u64, String> {
    let v = field(o, name)?
        .as_u64()
        .ok_or_else(|| format!("`{name}` must be an unsigned integer"))?;
    if v > max {
        return Err(format!("`{name}` = {v} exceeds {max}"));
    }
    Ok(v)
}
fn opt_uint(o: &Value, name: &str, max: u64) -> Result<Option<u64>, String> {
    match o.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => uint(o, name, max).map(Some),
    }
}
fn boolean(o: &Value, name: &str) -> Result<bool, String> {
    match o.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(v) => v
            .as_bool()
            .ok_or_else(|| format!("`{name}` must be a boolean")),
    }
}
fn hexf(o: &Value, name: &str) -> Result<Vec<u8>, String> {
    let s = field(o, name)?
        .as_str()
        .ok_or_else(|| format!("`{name}` must be a hex string"))?;
    hex::decode(s.replace(' ', "")).map_err(|e| format!("`{name}`: {e}"))
}
fn addr(o: &Value, name: &str) -> Result<IpAddr, String> {
    field(o, name)?
        .as_str()
        .ok_or_else(|| format!("`{name}` must be an address string"))?
        .parse()
        .map_err(|e| format!("`{name}`: {e}"))
}
fn token(o: &Value) -> Result<Token, String> {
    let t = hexf(o, "token")?;
    let a: [u8; 4] = t
        .try_into()
        .map_err(|_| "`token` must be 4 octets".to_string())?;
    Ok(Token(a))
}
fn list<'a>(o: &'a Value, name: &str) -> Result<&'a [Value], String> {
    match o.get(name) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(format!("`{name}` must be an array")),
    }
}
fn presence(o: &Value) -> Result<Option<u32>, String> {
    let pv = opt_uint(o, "presence_vector", u32::MAX as u64)?.map(|v| v as u32);
    match (o.get("p").and_then(Value::as_bool), pv) {
        (Some(true), None) => Err("`p` is true but `presence_vector` is missing".into()),
        (Some(false), Some(_)) => Err("`p` is false but `presence_vector` is set".into()),
        _ => Ok(pv),
    }
}
fn requests(o: &Value) -> Result<Vec<RequestBlock>, String> {
    list(o, "requests")?
        .iter()
        .map(|r| {
            Ok(RequestBlock {
                fpt: uint(r, "fpt", 0xffff)? as u16,
                length: opt_uint(r, "length", 0xff)?.unwrap_or(0) as u8,
                presence_vector: presence(r)?,
            })
        })
        .collect()
}
fn entries(o: &Value) -> Result<Vec<StatusEntry>, String> {
    list(o, "entries")?
        .iter()
        .map(|e| {
            Ok(StatusEntry {
                fpt: uint(e, "fpt", 0xffff)? as u16,
                status: uint(e, "status", 0xff)? as u8,
            })
        })
        .collect()
}

/// Encode the JSON form back into message octets.
pub fn encode_json(json: &serde_json::Value) -> Result<Vec<u8>, String> {
    let name = field(json, "message")?
        .as_str()
        .ok_or("`message` must be a string")?;
    let t = MessageType::from_name(name).ok_or_else(|| format!("unknown message `{name}`"))?;
    let empty = json!({});
    let header = json.get("header").unwrap_or(&empty);
    let flag_a = boolean(header, "a")?;
    let mn_addr = addr(json, "mn_addr")?;
    let repr = match t {
        MessageType::Ctar => MessageRepr::Ctar(CtarRepr {
            ack: flag_a,
            mn_addr,
            ar_addr: addr(json, "ar_addr")?,
            seq: uint(json, "seq", u32::MAX as u64)? as u32,
            token: token(json)?,
            requests: requests(json)?,
        }),
        MessageType::Ctaa => MessageRepr::Ctaa(CtaaRepr {
            mn_addr,
            entries: entries(json)?,
        }),
        MessageType::Ctd | MessageType::Pctd => {
            let key_block = match (t, json.get("key_block")) {
                (MessageType::Pctd, Some(k)) => {
                    let key = hexf(k, "key")?;
                    if let Some(l) = opt_uint(k, "key_length", 0xffff)? {
                        if l as usize != key.len() {
                            return Err(format!(
                                "`key_length` {l} disagrees with the {}-octet key",
                                key.len()
                            ));
                        }
                    }
                    Some(KeyBlockRepr {
                        algorithm: uint(k, "algorithm", 0xffff)? as u16,
                        key: AuthKey::new(&key),
                    })
                }
                (MessageType::Pctd, None) => return Err("PCTD needs `key_block`".into()),
                (_, Some(_)) => return Err("CTD has no key block (use PCTD)".into()),
                (_, None) => None,
            };
            let mut blocks = Vec::new();
            for b in list(json, "cdbs")? {
                let cdb = ContextDataBlockRepr {
                    fpt: uint(b, "fpt", 0xffff)? as u16,
                    presence_vector: presence(b)?,
                    data: hexf(b, "data")?.into(),
                };
                if let Some(l) = opt_uint(b, "length", 0xff)? {
                    if l as usize * 8 != cdb.wire_len() {
                        return Err(format!(
                            "CDB FPT {}: `length` {l} disagrees with {} octets",
                            cdb.fpt,
                            cdb.wire_len()
                        ));
                    }
                }
                blocks.push(cdb);
            }
            MessageRepr::Ctd(CtdRepr {
                ack: flag_a,
                elapsed_ms: uint(json, "elapsed_ms", u32::MAX as u64)? as u32,
                mn_addr,
                key_block,
                blocks,
            })
        }
        MessageType::Ctdr => MessageRepr::Ctdr(CtdrRepr {
            success: boolean(header, "s")?,
            mn_addr,
            entries: entries(json)?,
        }),
        MessageType::Ctc => MessageRepr::Ctc(CtcRepr { mn_addr }),
        MessageType::CtReq => MessageRepr::CtReq(CtReqRepr {
            mn_addr,
            seq: uint(json, "seq", u32::MAX as u64)? as u32,
            token: token(json)?,
            requests: requests(json)?,
        }),
    };
    let bytes = repr.to_bytes().map_err(|e| e.to_string())?;
    if let Some(v) = header.get("v").and_then(Value::as_bool) {
        if v != mn_addr.is_ipv4() {
            return Err(format!(
                "header `v` = {v} disagrees with the address family"
            ));
        }
    }
    if let Some(ty) = opt_uint(header, "type", 31)? {
        if ty as u8 != t.code() {
            return Err(format!("header `type` {ty} disagrees with message {name}"));
        }
    }
    if let Some(l) = opt_uint(header, "length", 0xffff)? {
        if l as usize != bytes.len() {
            return Err(format!(
                "header `length` {l} disagrees with the {} octets encoded",
                bytes.len()
            ));
        }
    }
    Ok(bytes.to_vec())
}
