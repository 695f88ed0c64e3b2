//! Conformance harness: JSON views of decoded frames (`decode`/`encode`), golden
//! vector loading and the Wireshark (tshark) oracle.
//!
//! One module per protocol; every module exposes
//! `decode_json(&[u8]) -> Result<serde_json::Value, String>` and
//! `encode_json(&serde_json::Value) -> Result<Vec<u8>, String>`.

pub mod cxtp;
pub mod mih;
pub mod mih_vectors;
pub mod oracle;
pub mod x2ap;

/// Protocols the tool understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Mih,
    Cxtp,
    X2ap,
}

/// Decode one frame of `proto` into its stable JSON form.
pub fn decode(proto: Proto, bytes: &[u8]) -> Result<serde_json::Value, String> {
    match proto {
        Proto::Mih => mih::decode_json(bytes),
        Proto::Cxtp => cxtp::decode_json(bytes),
        Proto::X2ap => x2ap::decode_json(bytes),
    }
}

/// Encode the stable JSON form of a frame of `proto` back into bytes.
pub fn encode(proto: Proto, json: &serde_json::Value) -> Result<Vec<u8>, String> {
    match proto {
        Proto::Mih => mih::encode_json(json),
        Proto::Cxtp => cxtp::encode_json(json),
        Proto::X2ap => x2ap::encode_json(json),
    }
}
