//! Wireshark (tshark) oracle: an independent second opinion on our frames.
//!
//! Nothing here uses our own decoders. Frames are wrapped into a classic pcap
//! (Ethernet II / IPv4 / UDP or TCP, with valid checksums built by `etherparse`,
//! written by `pcap-file`), handed to `tshark -T json`, and the dissection is read
//! back from Wireshark's protocol tree.
//!
//! * [`udp_pcap`] / [`tcp_pcap`] build captures.
//! * [`run_tshark_mih`] returns one [`MihDissection`] per captured packet.
//! * [`run_tshark_json`] / [`run_tshark_tree`] run tshark for any other protocol
//!   (e.g. with `-X lua_script:cxtp.lua`).
//!
//! tshark is found as `tshark` on `PATH`, or at the path in the `TSHARK`
//! environment variable. Every run uses an empty, private Wireshark
//! configuration directory (`WIRESHARK_CONFIG_DIR`), so personal preferences
//! and plugins cannot change the result, and turns on IPv4, UDP and TCP
//! checksum validation, so a broken capture shows up as an expert item.
//!
//! Quirks of tshark 4.0 that this module hides:
//! * `-T json` repeats a key when a tree node has several children with the same
//!   label (e.g. six `"MIH TLV : UNKNOWN"` subtrees, or two `"_ws.expert"`
//!   items). Ordinary JSON parsers keep only the last one, so the MIH oracle
//!   parses the output into [`TsharkNode`], which keeps every key in order.
//! * For a TLV value longer than 128 octets the MIH dissector shows
//!   `mih.tlv_length_ext` = real length − 128 instead of `mih.tlv_length`.
//!   [`MihDissection::tlv_lengths`] holds the real value lengths.
//! * `mih.version` appears twice (the item and its own child).
//! * Expert items appear as `"_ws.expert"` objects anywhere in the tree, with the
//!   severity and group as decimal numbers (error = 8388608 = 0x00800000). A
//!   dissector exception adds a top-level `"_ws.malformed"` layer holding one.

use std::ffi::OsString;
use std::fmt;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use etherparse::PacketBuilder;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::{DataLink, Endianness, TsResolution};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

/// IANA port of the MIH protocol (UDP and TCP).
pub const MIH_PORT: u16 = 4551;
/// IANA TCP port of CXTP (RFC 4065).
pub const CXTP_TCP_PORT: u16 = 5091;

/// MAC address of the sending host in built captures.
pub const SRC_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
/// MAC address of the receiving host in built captures.
pub const DST_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];
/// IPv4 address of the sending host in built captures.
pub const SRC_IP: [u8; 4] = [10, 0, 0, 1];
/// IPv4 address of the receiving host in built captures.
pub const DST_IP: [u8; 4] = [10, 0, 0, 2];
/// Client (source) port of the TCP stream built by [`tcp_pcap`].
pub const TCP_CLIENT_PORT: u16 = 40_000;

/// Timestamp of the first packet (2023-11-14T22:13:20Z); packet `i` is `i` × 10 ms later.
const BASE_TS_SECS: u64 = 1_700_000_000;
const TS_STEP_MICROS: u64 = 10_000;
const TTL: u8 = 64;
const SNAPLEN: u32 = 262_144;
const TCP_WINDOW: u16 = 65_535;
const CLIENT_ISN: u32 = 1_000;
const SERVER_ISN: u32 = 500_000;

/// Largest UDP payload that fits one IPv4 packet (65535 − 20 − 8).
pub const MAX_UDP_PAYLOAD: usize = 65_507;
/// Largest TCP payload that fits one IPv4 packet without options (65535 − 20 − 20).
pub const MAX_TCP_PAYLOAD: usize = 65_495;

// ---------------------------------------------------------------------------
// pcap building
// ---------------------------------------------------------------------------

/// Classic pcap (microsecond, little-endian, LINKTYPE_ETHERNET) with one packet
/// per element of `packets`, at distinct, increasing timestamps.
fn pcap_of(packets: &[Vec<u8>]) -> Vec<u8> {
    let header = PcapHeader {
        snaplen: SNAPLEN,
        datalink: DataLink::ETHERNET,
        ts_resolution: TsResolution::MicroSecond,
        endianness: Endianness::Little,
        ..PcapHeader::default()
    };
    let mut w = PcapWriter::with_header(Vec::new(), header).expect("pcap header into a Vec");
    for (i, p) in packets.iter().enumerate() {
        let ts =
            Duration::from_secs(BASE_TS_SECS) + Duration::from_micros(i as u64 * TS_STEP_MICROS);
        let len = u32::try_from(p.len()).expect("packet length fits u32");
        w.write_packet(&PcapPacket::new(ts, len, p))
            .expect("pcap packet into a Vec");
    }
    w.into_writer()
}

/// Build a pcap with one Ethernet/IPv4/UDP packet per frame, from
/// [`SRC_IP`]:`port` to [`DST_IP`]:`port`, with valid IPv4 and UDP checksums.
///
/// Panics if a frame is larger than [`MAX_UDP_PAYLOAD`] (it cannot be one IPv4 packet).
pub fn udp_pcap(frames: &[Vec<u8>], port: u16) -> Vec<u8> {
    let packets: Vec<Vec<u8>> = frames
        .iter()
        .enumerate()
        .map(|(i, f)| {
            assert!(
                f.len() <= MAX_UDP_PAYLOAD,
                "udp_pcap: frame {i} has {} octets, more than one IPv4/UDP packet carries ({MAX_UDP_PAYLOAD})",
                f.len()
            );
            let b = PacketBuilder::ethernet2(SRC_MAC, DST_MAC).ipv4(SRC_IP, DST_IP, TTL).udp(port, port);
            let mut out = Vec::with_capacity(b.size(f.len()));
            b.write(&mut out, f).expect("etherparse UDP packet");
            out
        })
        .collect();
    pcap_of(&packets)
}

/// Build a pcap holding one TCP connection from [`SRC_IP`]:[`TCP_CLIENT_PORT`]
/// to [`DST_IP`]:`port`, with valid checksums and consistent sequence numbers.
///
/// Packets 1..=3 are the handshake (SYN, SYN-ACK, ACK); packet `4 + i` carries
/// `segments[i]` as one PSH/ACK segment from the client (so segment `i` is at
/// index `3 + i` of [`run_tshark_mih`]'s result). The server sends nothing else
/// and the connection is not closed.
///
/// Panics if a segment is larger than [`MAX_TCP_PAYLOAD`].
pub fn tcp_pcap(segments: &[Vec<u8>], port: u16) -> Vec<u8> {
    let cp = TCP_CLIENT_PORT;
    let mut packets = Vec::with_capacity(segments.len() + 3);
    let mut push = |b: etherparse::PacketBuilderStep<etherparse::TcpHeader>, payload: &[u8]| {
        let mut out = Vec::with_capacity(b.size(payload.len()));
        b.write(&mut out, payload).expect("etherparse TCP packet");
        packets.push(out);
    };
    let c2s = || PacketBuilder::ethernet2(SRC_MAC, DST_MAC).ipv4(SRC_IP, DST_IP, TTL);
    let s2c = || PacketBuilder::ethernet2(DST_MAC, SRC_MAC).ipv4(DST_IP, SRC_IP, TTL);

    push(c2s().tcp(cp, port, CLIENT_ISN, TCP_WINDOW).syn(), &[]);
    push(
        s2c()
            .tcp(port, cp, SERVER_ISN, TCP_WINDOW)
            .syn()
            .ack(CLIENT_ISN.wrapping_add(1)),
        &[],
    );
    let mut seq = CLIENT_ISN.wrapping_add(1);
    let server_next = SERVER_ISN.wrapping_add(1);
    push(c2s().tcp(cp, port, seq, TCP_WINDOW).ack(server_next), &[]);
    for (i, s) in segments.iter().enumerate() {
        assert!(
            s.len() <= MAX_TCP_PAYLOAD,
            "tcp_pcap: segment {i} has {} octets, more than one IPv4/TCP packet carries ({MAX_TCP_PAYLOAD})",
            s.len()
        );
        push(
            c2s().tcp(cp, port, seq, TCP_WINDOW).ack(server_next).psh(),
            s,
        );
        seq = seq.wrapping_add(s.len() as u32);
    }
    pcap_of(&packets)
}

// ---------------------------------------------------------------------------
// running tshark
// ---------------------------------------------------------------------------

fn tshark_program() -> OsString {
    std::env::var_os("TSHARK").unwrap_or_else(|| OsString::from("tshark"))
}

/// True if `tshark --version` runs successfully.
pub fn tshark_available() -> bool {
    Command::new(tshark_program())
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// First line of `tshark --version`, e.g. `TShark (Wireshark) 4.0.17 (...)`.
pub fn tshark_version() -> Result<String, String> {
    let out = Command::new(tshark_program())
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run tshark: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .next()
        .map(str::to_owned)
        .ok_or_else(|| "tshark --version printed nothing".into())
}

/// Options given to every run: no name resolution, checksum validation on.
const BASE_ARGS: &[&str] = &[
    "-n",
    "-o",
    "ip.check_checksum:TRUE",
    "-o",
    "udp.check_checksum:TRUE",
    "-o",
    "tcp.check_checksum:TRUE",
];

/// Write `pcap` to a temporary file, run `tshark -r FILE <BASE_ARGS> <args>`, return stdout.
/// The temporary file and configuration directory are removed on return.
fn run_tshark_raw(pcap: &[u8], args: &[&str]) -> Result<Vec<u8>, String> {
    let mut file = tempfile::Builder::new()
        .prefix("oracle-")
        .suffix(".pcap")
        .tempfile()
        .map_err(|e| format!("cannot create temporary pcap: {e}"))?;
    file.write_all(pcap)
        .and_then(|_| file.flush())
        .map_err(|e| format!("cannot write temporary pcap: {e}"))?;
    let config = tempfile::Builder::new()
        .prefix("oracle-wsconf-")
        .tempdir()
        .map_err(|e| format!("cannot create temporary config dir: {e}"))?;
    let out = Command::new(tshark_program())
        .arg("-r")
        .arg(file.path())
        .args(BASE_ARGS)
        .args(args)
        .env("WIRESHARK_CONFIG_DIR", config.path())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run tshark (is it installed?): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "tshark {:?} failed ({}): {}",
            args,
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(out.stdout)
}

/// Run `tshark -T json --no-duplicate-keys <extra_args>` on `pcap` and return the
/// parsed output: an array with one object per packet
/// (`[i]["_source"]["layers"][<protocol>]...`).
///
/// With `--no-duplicate-keys`, tshark merges repeated keys of one object into a
/// single key whose value is an array, so nothing is lost, but the relative order
/// of differently named siblings is. Use [`run_tshark_tree`] when order matters.
/// `extra_args` must not change the output format (`-T`), and may add e.g.
/// `-X lua_script:FILE`, `-d tcp.port==5091,cxtp`, `-o pref:value`, `-Y filter`.
pub fn run_tshark_json(pcap: &[u8], extra_args: &[&str]) -> Result<serde_json::Value, String> {
    let mut args = vec!["-T", "json", "--no-duplicate-keys"];
    args.extend_from_slice(extra_args);
    let out = run_tshark_raw(pcap, &args)?;
    // tshark may emit invalid UTF-8 inside strings: replace it rather than fail.
    let text = String::from_utf8_lossy(&out);
    if text.trim().is_empty() {
        return Ok(serde_json::Value::Array(Vec::new()));
    }
    serde_json::from_str(&text).map_err(|e| format!("cannot parse tshark JSON: {e}"))
}

/// Run `tshark -T json <extra_args>` on `pcap` and return one [`TsharkNode`] per
/// packet, keeping every key (including repeated ones) in tshark's order.
pub fn run_tshark_tree(pcap: &[u8], extra_args: &[&str]) -> Result<Vec<TsharkNode>, String> {
    let mut args = vec!["-T", "json"];
    args.extend_from_slice(extra_args);
    let out = run_tshark_raw(pcap, &args)?;
    let text = String::from_utf8_lossy(&out);
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    match serde_json::from_str::<TsharkNode>(&text)
        .map_err(|e| format!("cannot parse tshark JSON: {e}"))?
    {
        TsharkNode::Array(packets) => Ok(packets),
        other => Err(format!("tshark JSON is not an array of packets: {other:?}")),
    }
}

// ---------------------------------------------------------------------------
// order- and duplicate-preserving JSON tree
// ---------------------------------------------------------------------------

/// A JSON value from tshark, with objects kept as ordered lists of
/// `(key, value)` pairs (keys may repeat). Scalars are kept as their text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TsharkNode {
    /// A string, number or boolean, as text.
    Scalar(String),
    /// `null`.
    Null,
    /// An array.
    Array(Vec<TsharkNode>),
    /// An object, in document order, repeated keys kept.
    Object(Vec<(String, TsharkNode)>),
}

impl TsharkNode {
    /// The text of a scalar.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            TsharkNode::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// The entries of an object (empty for anything else).
    pub fn entries(&self) -> &[(String, TsharkNode)] {
        match self {
            TsharkNode::Object(e) => e,
            _ => &[],
        }
    }

    /// The first value under `key` in an object.
    pub fn get(&self, key: &str) -> Option<&TsharkNode> {
        self.entries()
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// Every value under `key` in an object, in order.
    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a TsharkNode> + 'a {
        self.entries()
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// The `layers` object of one packet of `-T json` output
    /// (`{"_source": {"layers": {...}}}`).
    pub fn layers(&self) -> Option<&TsharkNode> {
        self.get("_source")?.get("layers")
    }

    /// First value of field `name` anywhere below this node (pre-order).
    pub fn find(&self, name: &str) -> Option<&TsharkNode> {
        match self {
            TsharkNode::Object(entries) => {
                entries
                    .iter()
                    .find_map(|(k, v)| if k == name { Some(v) } else { v.find(name) })
            }
            TsharkNode::Array(items) => items.iter().find_map(|v| v.find(name)),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for TsharkNode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TsharkNode;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<TsharkNode, E> {
                Ok(TsharkNode::Scalar(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<TsharkNode, E> {
                Ok(TsharkNode::Scalar(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<TsharkNode, E> {
                Ok(TsharkNode::Scalar(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<TsharkNode, E> {
                Ok(TsharkNode::Scalar(v.to_string()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TsharkNode, E> {
                Ok(TsharkNode::Scalar(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<TsharkNode, E> {
                Ok(TsharkNode::Scalar(v))
            }
            fn visit_unit<E: de::Error>(self) -> Result<TsharkNode, E> {
                Ok(TsharkNode::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<TsharkNode, E> {
                Ok(TsharkNode::Null)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TsharkNode, A::Error> {
                let mut items = Vec::new();
                while let Some(v) = seq.next_element()? {
                    items.push(v);
                }
                Ok(TsharkNode::Array(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TsharkNode, A::Error> {
                let mut entries = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, TsharkNode>()? {
                    entries.push((k, v));
                }
                Ok(TsharkNode::Object(entries))
            }
        }
        d.deserialize_any(V)
    }
}

// ---------------------------------------------------------------------------
// expert items
// ---------------------------------------------------------------------------

/// Severity of a Wireshark expert item (`epan/proto.h` `PI_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Severity {
    Comment,
    Chat,
    Note,
    Warning,
    Error,
    /// A value tshark printed that this module does not know.
    Other(u32),
}

impl Severity {
    fn from_code(code: u32) -> Severity {
        match code {
            0x0010_0000 => Severity::Comment,
            0x0020_0000 => Severity::Chat,
            0x0040_0000 => Severity::Note,
            0x0060_0000 => Severity::Warning,
            0x0080_0000 => Severity::Error,
            other => Severity::Other(other),
        }
    }

    /// Warning or error (unknown codes at or above the warning level count too).
    pub fn is_warning_or_error(self) -> bool {
        match self {
            Severity::Warning | Severity::Error => true,
            Severity::Other(c) => c >= 0x0060_0000,
            _ => false,
        }
    }
}

fn group_name(code: u32) -> String {
    let name = match code {
        0x0100_0000 => "Checksum",
        0x0200_0000 => "Sequence",
        0x0300_0000 => "Response code",
        0x0400_0000 => "Request code",
        0x0500_0000 => "Undecoded",
        0x0600_0000 => "Reassemble",
        0x0700_0000 => "Malformed",
        0x0800_0000 => "Debug",
        0x0900_0000 => "Protocol",
        0x0a00_0000 => "Security",
        0x0b00_0000 => "Comment",
        0x0c00_0000 => "Decryption",
        0x0d00_0000 => "Assumption",
        0x0e00_0000 => "Deprecated",
        0x0f00_0000 => "Receive",
        0x1000_0000 => "Interface",
        _ => return format!("0x{code:08x}"),
    };
    name.to_owned()
}

/// One expert-info item of a packet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExpertItem {
    /// Layer it was found in (`"udp"`, `"mih"`, ...). For the `_ws.malformed`
    /// pseudo-layer this is the layer before it, i.e. the dissector that threw.
    pub protocol: String,
    pub severity: Severity,
    /// Group name (`"Malformed"`, `"Checksum"`, ...).
    pub group: String,
    /// Display text, e.g. `Malformed Packet (Exception occurred)`.
    pub message: String,
}

impl fmt::Display for ExpertItem {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "[{:?}/{}] {}: {}",
            self.severity, self.group, self.protocol, self.message
        )
    }
}

fn collect_expert(node: &TsharkNode, protocol: &str, out: &mut Vec<ExpertItem>) {
    match node {
        TsharkNode::Object(entries) => {
            for (k, v) in entries {
                if k == "_ws.expert" {
                    // One expert object (or an array of them under --no-duplicate-keys).
                    let items: Vec<&TsharkNode> = match v {
                        TsharkNode::Array(a) => a.iter().collect(),
                        other => vec![other],
                    };
                    for e in items {
                        let num = |key: &str| {
                            e.get(key)
                                .and_then(TsharkNode::as_str)
                                .and_then(parse_u64)
                                .unwrap_or(0) as u32
                        };
                        out.push(ExpertItem {
                            protocol: protocol.to_owned(),
                            severity: Severity::from_code(num("_ws.expert.severity")),
                            group: group_name(num("_ws.expert.group")),
                            message: e
                                .get("_ws.expert.message")
                                .and_then(TsharkNode::as_str)
                                .unwrap_or("")
                                .to_owned(),
                        });
                    }
                } else {
                    collect_expert(v, protocol, out);
                }
            }
        }
        TsharkNode::Array(items) => items.iter().for_each(|v| collect_expert(v, protocol, out)),
        _ => {}
    }
}

/// Every expert item of one packet (`-T json` packet object), in tree order,
/// whatever the severity.
pub fn expert_items(packet: &TsharkNode) -> Vec<ExpertItem> {
    let mut out = Vec::new();
    let Some(layers) = packet.layers() else {
        return out;
    };
    let mut previous = String::new();
    for (name, layer) in layers.entries() {
        let proto = if name.starts_with("_ws.") && !previous.is_empty() {
            previous.clone()
        } else {
            name.clone()
        };
        let before = out.len();
        collect_expert(layer, &proto, &mut out);
        if name == "_ws.malformed" && out.len() == before {
            // Should not happen (tshark always attaches an expert item), but never lose it.
            out.push(ExpertItem {
                protocol: proto,
                severity: Severity::Error,
                group: "Malformed".into(),
                message: layer.as_str().unwrap_or("Malformed Packet").to_owned(),
            });
        }
        if !name.starts_with("_ws.") {
            previous = name.clone();
        }
    }
    out
}

// ---------------------------------------------------------------------------
// MIH
// ---------------------------------------------------------------------------

/// What Wireshark's MIH dissector (`packet-mih.c`) shows for one captured packet.
///
/// Header fields are `None` when there is no MIH layer or tshark did not show them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MihDissection {
    /// `frame.number` (1-based position in the capture).
    pub frame_number: u32,
    /// An `mih` layer is present.
    pub present: bool,
    /// Number of `mih` layers in the packet (normally 0 or 1).
    pub mih_layers: usize,
    pub version: Option<u8>,
    pub ack_req: Option<bool>,
    pub ack_rsp: Option<bool>,
    pub uir: Option<bool>,
    pub more_frag: Option<bool>,
    pub frag_no: Option<u8>,
    pub mid: Option<u16>,
    pub sid: Option<u8>,
    pub opcode: Option<u8>,
    pub aid: Option<u16>,
    pub tid: Option<u16>,
    /// `mih.pay_len`: the header's Payload Length.
    pub payload_len: Option<u16>,
    /// `mih.tlv_type` of each TLV, in order.
    pub tlv_types: Vec<u8>,
    /// Real value length of each TLV (aligned with `tlv_types`): `mih.tlv_length`,
    /// or `mih.tlv_length_ext` + 128. `None` if tshark showed neither.
    pub tlv_lengths: Vec<Option<usize>>,
    /// tshark showed `mih.fragmented_tlv` (M set, FN ≠ 0, or a TLV running past
    /// Payload Length); it then shows no TLVs after that point.
    pub fragmented_tlv: bool,
    /// Expert items of severity warning or error anywhere in the packet
    /// (any layer, including the `_ws.malformed` one).
    pub expert: Vec<ExpertItem>,
}

fn parse_u64(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()
    } else {
        match s {
            "True" | "true" => Some(1),
            "False" | "false" => Some(0),
            _ => s.parse().ok(),
        }
    }
}

fn is_tlv_node(node: &TsharkNode) -> bool {
    node.get("mih.tlv_type").is_some()
}

/// First value of header field `name` in the MIH layer, not looking inside TLVs
/// or expert items.
fn header_field(node: &TsharkNode, name: &str) -> Option<u64> {
    for (k, v) in node.entries() {
        if k == name {
            if let Some(n) = v.as_str().and_then(parse_u64) {
                return Some(n);
            }
        }
        if k != "_ws.expert" && !is_tlv_node(v) {
            if let Some(n) = header_field(v, name) {
                return Some(n);
            }
        }
    }
    None
}

fn collect_tlvs(node: &TsharkNode, d: &mut MihDissection) {
    for (k, v) in node.entries() {
        if k == "mih.fragmented_tlv" {
            d.fragmented_tlv = true;
        } else if is_tlv_node(v) {
            let t = v
                .get("mih.tlv_type")
                .and_then(TsharkNode::as_str)
                .and_then(parse_u64);
            d.tlv_types.push(t.unwrap_or(0) as u8);
            let len = match (v.get("mih.tlv_length"), v.get("mih.tlv_length_ext")) {
                (Some(l), _) => l.as_str().and_then(parse_u64).map(|n| n as usize),
                (None, Some(ext)) => ext.as_str().and_then(parse_u64).map(|n| n as usize + 128),
                (None, None) => None,
            };
            d.tlv_lengths.push(len);
        } else if k != "_ws.expert" {
            collect_tlvs(v, d);
        }
    }
}

/// Read the MIH dissection of one packet of `-T json` output.
pub fn mih_dissection(packet: &TsharkNode) -> MihDissection {
    let mut d = MihDissection {
        expert: expert_items(packet)
            .into_iter()
            .filter(|e| e.severity.is_warning_or_error())
            .collect(),
        ..Default::default()
    };
    let Some(layers) = packet.layers() else {
        return d;
    };
    d.frame_number = layers
        .get("frame")
        .and_then(|f| f.get("frame.number"))
        .and_then(TsharkNode::as_str)
        .and_then(parse_u64)
        .unwrap_or(0) as u32;
    d.mih_layers = layers.get_all("mih").count();
    let Some(mih) = layers.get("mih") else {
        return d;
    };
    d.present = true;
    let f = |name: &str| header_field(mih, name);
    d.version = f("mih.version").map(|v| v as u8);
    d.ack_req = f("mih.acq_req").map(|v| v != 0);
    d.ack_rsp = f("mih.acq_resp").map(|v| v != 0);
    d.uir = f("mih.uir").map(|v| v != 0);
    d.more_frag = f("mih.more_frag").map(|v| v != 0);
    d.frag_no = f("mih.frag_no").map(|v| v as u8);
    d.mid = f("mih.mid").map(|v| v as u16);
    d.sid = f("mih.service_id").map(|v| v as u8);
    d.opcode = f("mih.opcode").map(|v| v as u8);
    d.aid = f("mih.action_id").map(|v| v as u16);
    d.tid = f("mih.tid").map(|v| v as u16);
    d.payload_len = f("mih.pay_len").map(|v| v as u16);
    collect_tlvs(mih, &mut d);
    d
}

/// Run tshark on `pcap` and return the MIH dissection of every packet, in capture order.
///
/// MIH is dissected on UDP and TCP port 4551 by default; for other ports pass
/// `-d udp.port==N,mih` through [`run_tshark_mih_with`].
pub fn run_tshark_mih(pcap: &[u8]) -> Result<Vec<MihDissection>, String> {
    run_tshark_mih_with(pcap, &[])
}

/// [`run_tshark_mih`] with extra tshark arguments (e.g. `-d udp.port==1025,mih`).
pub fn run_tshark_mih_with(pcap: &[u8], extra_args: &[&str]) -> Result<Vec<MihDissection>, String> {
    Ok(run_tshark_tree(pcap, extra_args)?
        .iter()
        .map(mih_dissection)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_keeps_duplicate_keys_in_order() {
        let t: TsharkNode =
            serde_json::from_str(r#"{"a":"1","b":{"x":2},"a":"3","c":[true,null]}"#).unwrap();
        let keys: Vec<&str> = t.entries().iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["a", "b", "a", "c"]);
        let all: Vec<&str> = t.get_all("a").filter_map(TsharkNode::as_str).collect();
        assert_eq!(all, ["1", "3"]);
        assert_eq!(t.find("x").and_then(TsharkNode::as_str), Some("2"));
        assert_eq!(
            t.get("c"),
            Some(&TsharkNode::Array(vec![
                TsharkNode::Scalar("true".into()),
                TsharkNode::Null
            ]))
        );
    }

    #[test]
    fn udp_pcap_layout() {
        let pcap = udp_pcap(&[vec![1, 2, 3], vec![]], MIH_PORT);
        // 24-octet global header, then 16-octet record header + 14 + 20 + 8 + payload.
        assert_eq!(pcap.len(), 24 + (16 + 42 + 3) + (16 + 42));
        assert_eq!(&pcap[0..4], &0xa1b2_c3d4u32.to_le_bytes());
        let ip = &pcap[24 + 16 + 14..];
        assert_eq!(ip[9], 17, "IPv4 protocol UDP");
        let udp = &ip[20..];
        assert_eq!(u16::from_be_bytes([udp[0], udp[1]]), MIH_PORT);
        assert_eq!(u16::from_be_bytes([udp[2], udp[3]]), MIH_PORT);
        assert_eq!(u16::from_be_bytes([udp[4], udp[5]]), 11);
        assert_ne!(
            u16::from_be_bytes([udp[6], udp[7]]),
            0,
            "UDP checksum filled in"
        );
    }

    #[test]
    fn parse_numbers() {
        assert_eq!(parse_u64("0x0004"), Some(4));
        assert_eq!(parse_u64("291"), Some(291));
        assert_eq!(parse_u64("True"), Some(1));
        assert_eq!(parse_u64("abc"), None);
    }
}
