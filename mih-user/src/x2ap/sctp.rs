//! X2AP over SCTP in captures: SCTP packets (RFC 9260), DATA chunks with
//! PPID 27, fragment reassembly, and pcap/pcapng replay.
//!
//! Everything here is sans-IO and bounds-checked: every length is checked
//! against the octets present before it is used, a reassembled message is at
//! most [`MAX_PDU_LEN`] octets, and at most [`MAX_REASSEMBLIES`] messages are
//! being reassembled at once.
//!
//! ```
//! use mih_user::x2ap::sctp::PcapReplay;
//! let file = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../conformance/vectors/x2ap/x2ap_sctp.pcap")).unwrap();
//! let mut replay = PcapReplay::new(&file).unwrap();
//! let pdus: Vec<_> = replay.by_ref().collect::<Result<_, _>>().unwrap();
//! assert_eq!(pdus.len(), 9);
//! assert_eq!(replay.stats().x2ap_messages, 9);
//! assert_eq!(pdus[0].dst.unwrap().port(), 36422);
//! ```

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use etherparse::{IpNumber, NetSlice, SlicedPacket};
use pcap_file::pcap::PcapParser;
use pcap_file::pcapng::{Block, PcapNgParser};
use pcap_file::DataLink;

use super::pdu::MAX_PDU_LEN;

/// SCTP Payload Protocol Identifier of X2AP (TS 36.422 §7).
pub const X2AP_PPID: u32 = 27;
/// SCTP port of X2-C (TS 36.422 §7).
pub const X2AP_SCTP_PORT: u16 = 36422;
/// Most messages being reassembled from fragments at once.
pub const MAX_REASSEMBLIES: usize = 1024;

/// SCTP chunk type DATA.
pub const CHUNK_DATA: u8 = 0;

/// A malformed SCTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SctpError {
    /// Fewer than 12 octets: no common header.
    #[error("SCTP packet of {0} octets is shorter than the 12-octet common header")]
    Short(usize),
    /// A chunk header is cut off.
    #[error("SCTP chunk at offset {offset}: {have} octet(s) left, a chunk header needs 4")]
    ShortChunk {
        /// Offset of the chunk in the packet.
        offset: usize,
        /// Octets left.
        have: usize,
    },
    /// A chunk length below 4 or beyond the packet.
    #[error(
        "SCTP chunk at offset {offset}: length {length} does not fit the {have} octet(s) left"
    )]
    BadChunkLength {
        /// Offset of the chunk in the packet.
        offset: usize,
        /// Chunk Length field.
        length: u16,
        /// Octets left.
        have: usize,
    },
    /// A DATA chunk shorter than its 16-octet header.
    #[error("SCTP DATA chunk at offset {offset}: length {length} is below the 16-octet header")]
    ShortData {
        /// Offset of the chunk in the packet.
        offset: usize,
        /// Chunk Length field.
        length: u16,
    },
}

/// The common header of an SCTP packet and its chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SctpPacket<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Verification tag.
    pub verification_tag: u32,
    /// Checksum field as sent (CRC32c, see [`SctpPacket::checksum_ok`]).
    pub checksum: u32,
    packet: &'a [u8],
}

/// One chunk of an SCTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk<'a> {
    /// DATA (type 0).
    Data(DataChunk<'a>),
    /// Any other chunk type.
    Other {
        /// Chunk type.
        chunk_type: u8,
        /// Chunk flags.
        flags: u8,
        /// Chunk value (after the 4-octet header, without padding).
        value: &'a [u8],
    },
}

/// A DATA chunk (RFC 9260 §3.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataChunk<'a> {
    /// Flags: I (0x08), U (0x04), B (0x02), E (0x01).
    pub flags: u8,
    /// Transmission sequence number.
    pub tsn: u32,
    /// Stream identifier.
    pub stream_id: u16,
    /// Stream sequence number.
    pub ssn: u16,
    /// Payload protocol identifier.
    pub ppid: u32,
    /// User data.
    pub user_data: &'a [u8],
}

impl DataChunk<'_> {
    /// First fragment of a user message (B bit).
    pub fn beginning(&self) -> bool {
        self.flags & 0x02 != 0
    }

    /// Last fragment of a user message (E bit).
    pub fn ending(&self) -> bool {
        self.flags & 0x01 != 0
    }
}

impl<'a> SctpPacket<'a> {
    /// Parse the common header; chunks are parsed by [`SctpPacket::chunks`].
    pub fn parse(packet: &'a [u8]) -> Result<SctpPacket<'a>, SctpError> {
        let h = packet.get(..12).ok_or(SctpError::Short(packet.len()))?;
        Ok(SctpPacket {
            src_port: u16::from_be_bytes([h[0], h[1]]),
            dst_port: u16::from_be_bytes([h[2], h[3]]),
            verification_tag: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
            checksum: u32::from_le_bytes([h[8], h[9], h[10], h[11]]),
            packet,
        })
    }

    /// Whether the checksum field holds the CRC32c of the packet (RFC 9260 appendix A).
    pub fn checksum_ok(&self) -> bool {
        let c = crc32c::crc32c(&self.packet[..8]);
        let c = crc32c::crc32c_append(c, &[0; 4]);
        crc32c::crc32c_append(c, &self.packet[12..]) == self.checksum
    }

    /// The chunks, in order; a malformed chunk ends the iteration with its error.
    pub fn chunks(&self) -> Chunks<'a> {
        Chunks {
            rest: &self.packet[12..],
            offset: 12,
            failed: false,
        }
    }
}

/// Iterator over the chunks of an [`SctpPacket`].
#[derive(Debug, Clone)]
pub struct Chunks<'a> {
    rest: &'a [u8],
    offset: usize,
    failed: bool,
}

impl<'a> Iterator for Chunks<'a> {
    type Item = Result<Chunk<'a>, SctpError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let r = self.parse_one();
        if r.is_err() {
            self.failed = true;
        }
        Some(r)
    }
}

impl<'a> Chunks<'a> {
    fn parse_one(&mut self) -> Result<Chunk<'a>, SctpError> {
        let offset = self.offset;
        let have = self.rest.len();
        let h = self
            .rest
            .get(..4)
            .ok_or(SctpError::ShortChunk { offset, have })?;
        let (chunk_type, flags) = (h[0], h[1]);
        let length = u16::from_be_bytes([h[2], h[3]]);
        let len = usize::from(length);
        if len < 4 || len > have {
            return Err(SctpError::BadChunkLength {
                offset,
                length,
                have,
            });
        }
        let chunk = &self.rest[..len];
        // Chunks are padded to a multiple of 4; the last one may omit its padding.
        let padded = len.div_ceil(4) * 4;
        let advance = padded.min(have);
        self.rest = &self.rest[advance..];
        self.offset += advance;
        if chunk_type == CHUNK_DATA {
            if len < 16 {
                return Err(SctpError::ShortData { offset, length });
            }
            return Ok(Chunk::Data(DataChunk {
                flags,
                tsn: u32::from_be_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]),
                stream_id: u16::from_be_bytes([chunk[8], chunk[9]]),
                ssn: u16::from_be_bytes([chunk[10], chunk[11]]),
                ppid: u32::from_be_bytes([chunk[12], chunk[13], chunk[14], chunk[15]]),
                user_data: &chunk[16..],
            }));
        }
        Ok(Chunk::Other {
            chunk_type,
            flags,
            value: &chunk[4..],
        })
    }
}

/// The SCTP association and stream a DATA chunk belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamKey {
    /// Source address and port.
    pub src: Option<SocketAddr>,
    /// Destination address and port.
    pub dst: Option<SocketAddr>,
    /// Stream identifier.
    pub stream_id: u16,
}

#[derive(Debug)]
struct Partial {
    next_tsn: u32,
    ppid: u32,
    data: Vec<u8>,
}

/// What the reassembler did with a DATA chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reassembled {
    /// A complete user message.
    Message {
        /// Payload protocol identifier.
        ppid: u32,
        /// The message.
        data: Vec<u8>,
    },
    /// A fragment was kept; the message is not complete yet.
    Pending,
    /// A fragment that cannot be placed (no beginning, a gap in TSNs, a
    /// message over [`MAX_PDU_LEN`], or too many messages in reassembly) was dropped.
    Dropped,
}

/// Reassembles fragmented user messages (B/E flags, consecutive TSNs) per
/// association and stream, assuming chunks arrive in TSN order as a capture
/// of one side of an association does.
#[derive(Debug, Default)]
pub struct Reassembler {
    partial: HashMap<StreamKey, Partial>,
}

impl Reassembler {
    /// An empty reassembler.
    pub fn new() -> Reassembler {
        Reassembler::default()
    }

    /// Feed one DATA chunk.
    pub fn push(&mut self, key: StreamKey, chunk: &DataChunk<'_>) -> Reassembled {
        match (chunk.beginning(), chunk.ending()) {
            (true, true) => {
                // Unfragmented; a half-built message on this stream is abandoned.
                self.partial.remove(&key);
                Reassembled::Message {
                    ppid: chunk.ppid,
                    data: chunk.user_data.to_vec(),
                }
            }
            (true, false) => {
                self.partial.remove(&key);
                if self.partial.len() >= MAX_REASSEMBLIES || chunk.user_data.len() > MAX_PDU_LEN {
                    return Reassembled::Dropped;
                }
                self.partial.insert(
                    key,
                    Partial {
                        next_tsn: chunk.tsn.wrapping_add(1),
                        ppid: chunk.ppid,
                        data: chunk.user_data.to_vec(),
                    },
                );
                Reassembled::Pending
            }
            (false, end) => {
                let Some(p) = self.partial.get_mut(&key) else {
                    return Reassembled::Dropped;
                };
                if p.next_tsn != chunk.tsn || p.data.len() + chunk.user_data.len() > MAX_PDU_LEN {
                    self.partial.remove(&key);
                    return Reassembled::Dropped;
                }
                p.data.extend_from_slice(chunk.user_data);
                p.next_tsn = p.next_tsn.wrapping_add(1);
                if !end {
                    return Reassembled::Pending;
                }
                match self.partial.remove(&key) {
                    Some(p) => Reassembled::Message {
                        ppid: p.ppid,
                        data: p.data,
                    },
                    None => Reassembled::Dropped,
                }
            }
        }
    }

    /// Messages being reassembled.
    pub fn in_progress(&self) -> usize {
        self.partial.len()
    }
}

/// An X2AP PDU found in a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedPdu {
    /// Index (from 0) of the captured packet holding its last chunk.
    pub packet_index: u64,
    /// Capture timestamp of that packet.
    pub timestamp: Duration,
    /// Source address and SCTP port.
    pub src: Option<SocketAddr>,
    /// Destination address and SCTP port.
    pub dst: Option<SocketAddr>,
    /// SCTP stream.
    pub stream_id: u16,
    /// The X2AP PDU.
    pub pdu: Vec<u8>,
}

/// Counts of what a replay went through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Captured packets.
    pub packets: u64,
    /// Packets that are not SCTP (or whose link type is not supported).
    pub not_sctp: u64,
    /// IP fragments (not reassembled; skipped).
    pub ip_fragments: u64,
    /// Packets whose link, IP or SCTP headers are malformed.
    pub malformed: u64,
    /// SCTP packets whose CRC32c does not match (kept: captures often hold offloaded checksums).
    pub bad_checksums: u64,
    /// DATA chunks seen.
    pub data_chunks: u64,
    /// Complete user messages with another PPID.
    pub other_ppid: u64,
    /// DATA chunks dropped by the reassembler.
    pub dropped_fragments: u64,
    /// X2AP messages (PPID 27) returned.
    pub x2ap_messages: u64,
}

/// A capture file that cannot be read on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaptureError {
    /// Neither a pcap nor a pcapng file.
    #[error("not a pcap or pcapng file (magic {0:02x?})")]
    NotACapture(Vec<u8>),
    /// The file header or a record is malformed or cut off.
    #[error("capture record {record}: {reason}")]
    Record {
        /// Index of the record (packet or block) that failed.
        record: u64,
        /// What pcap-file reported.
        reason: String,
    },
}

enum Format<'a> {
    Pcap(PcapParser, DataLink),
    PcapNg(Box<PcapNgParser>),
    #[allow(dead_code)]
    Done(std::marker::PhantomData<&'a ()>),
}

/// Replays a pcap or pcapng capture held in memory: yields the X2AP PDUs
/// (SCTP DATA chunks with PPID 27, reassembled) in capture order.
///
/// Supported link types: Ethernet (with VLAN tags), raw IPv4/IPv6, Linux
/// cooked (SLL and SLL2), BSD loopback. Packets of other link types and
/// non-SCTP packets are counted and skipped; so are malformed packets. A
/// malformed file record ends the replay with [`CaptureError::Record`].
pub struct PcapReplay<'a> {
    rest: &'a [u8],
    format: Format<'a>,
    reassembler: Reassembler,
    queue: std::collections::VecDeque<CapturedPdu>,
    stats: CaptureStats,
    record: u64,
    finished: bool,
}

impl std::fmt::Debug for PcapReplay<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcapReplay")
            .field("remaining", &self.rest.len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl<'a> PcapReplay<'a> {
    /// Start replaying `file` (the whole capture file).
    pub fn new(file: &'a [u8]) -> Result<PcapReplay<'a>, CaptureError> {
        let magic = file.get(..4).unwrap_or(file);
        let rec = |e: pcap_file::PcapError| CaptureError::Record {
            record: 0,
            reason: e.to_string(),
        };
        let (rest, format) = match magic {
            [0x0a, 0x0d, 0x0d, 0x0a] => {
                let (rest, p) = PcapNgParser::new(file).map_err(rec)?;
                (rest, Format::PcapNg(Box::new(p)))
            }
            [0xa1, 0xb2, 0xc3, 0xd4]
            | [0xd4, 0xc3, 0xb2, 0xa1]
            | [0xa1, 0xb2, 0x3c, 0x4d]
            | [0x4d, 0x3c, 0xb2, 0xa1] => {
                let (rest, p) = PcapParser::new(file).map_err(rec)?;
                let dl = p.header().datalink;
                (rest, Format::Pcap(p, dl))
            }
            _ => return Err(CaptureError::NotACapture(magic.to_vec())),
        };
        Ok(PcapReplay {
            rest,
            format,
            reassembler: Reassembler::new(),
            queue: Default::default(),
            stats: CaptureStats::default(),
            record: 0,
            finished: false,
        })
    }

    /// What the replay has gone through so far.
    pub fn stats(&self) -> &CaptureStats {
        &self.stats
    }

    fn fail(&mut self, reason: String) -> CaptureError {
        self.finished = true;
        CaptureError::Record {
            record: self.record,
            reason,
        }
    }

    /// Read the next record; `Ok(false)` at the end of the file.
    fn step(&mut self) -> Result<bool, CaptureError> {
        if self.rest.is_empty() {
            return Ok(false);
        }
        let rest = self.rest;
        match &mut self.format {
            Format::Pcap(parser, dl) => {
                let dl = *dl;
                match parser.next_packet(rest) {
                    Ok((rem, pkt)) => {
                        self.rest = rem;
                        self.record += 1;
                        let ts = pkt.timestamp;
                        let data = pkt.data;
                        self.packet(dl, ts, &data);
                        Ok(true)
                    }
                    Err(e) => Err(self.fail(e.to_string())),
                }
            }
            Format::PcapNg(parser) => match parser.next_block(rest) {
                Ok((rem, block)) => {
                    self.rest = rem;
                    self.record += 1;
                    match block {
                        Block::EnhancedPacket(epb) => {
                            let dl = parser.packet_interface(&epb).map(|i| i.linktype);
                            let ts = epb.timestamp;
                            let data = epb.data;
                            match dl {
                                Some(dl) => self.packet(dl, ts, &data),
                                None => {
                                    self.stats.packets += 1;
                                    self.stats.malformed += 1;
                                }
                            }
                        }
                        Block::SimplePacket(spb) => {
                            let dl = parser.interfaces().first().map(|i| i.linktype);
                            let data = spb.data;
                            match dl {
                                Some(dl) => self.packet(dl, Duration::ZERO, &data),
                                None => {
                                    self.stats.packets += 1;
                                    self.stats.malformed += 1;
                                }
                            }
                        }
                        Block::Packet(pb) => {
                            let dl = parser
                                .interfaces()
                                .get(usize::from(pb.interface_id))
                                .map(|i| i.linktype);
                            let ts = Duration::from_micros(pb.timestamp);
                            let data = pb.data;
                            match dl {
                                Some(dl) => self.packet(dl, ts, &data),
                                None => {
                                    self.stats.packets += 1;
                                    self.stats.malformed += 1;
                                }
                            }
                        }
                        _ => {}
                    }
                    Ok(true)
                }
                Err(e) => Err(self.fail(e.to_string())),
            },
            Format::Done(_) => Ok(false),
        }
    }

    /// One captured packet: find SCTP, feed its DATA chunks.
    fn packet(&mut self, dl: DataLink, timestamp: Duration, data: &[u8]) {
        let index = self.stats.packets;
        self.stats.packets += 1;
        let sliced = match dl {
            DataLink::ETHERNET => SlicedPacket::from_ethernet(data).ok(),
            DataLink::RAW | DataLink::IPV4 | DataLink::IPV6 => SlicedPacket::from_ip(data).ok(),
            DataLink::LINUX_SLL => SlicedPacket::from_linux_sll(data).ok(),
            DataLink::LINUX_SLL2 => data.get(20..).and_then(|d| SlicedPacket::from_ip(d).ok()),
            DataLink::NULL | DataLink::LOOP => {
                data.get(4..).and_then(|d| SlicedPacket::from_ip(d).ok())
            }
            _ => {
                self.stats.not_sctp += 1;
                return;
            }
        };
        let Some(sliced) = sliced else {
            self.stats.malformed += 1;
            return;
        };
        let (src_ip, dst_ip, payload) = match &sliced.net {
            Some(NetSlice::Ipv4(v4)) => (
                IpAddr::V4(v4.header().source_addr()),
                IpAddr::V4(v4.header().destination_addr()),
                v4.payload(),
            ),
            Some(NetSlice::Ipv6(v6)) => (
                IpAddr::V6(v6.header().source_addr()),
                IpAddr::V6(v6.header().destination_addr()),
                v6.payload(),
            ),
            _ => {
                self.stats.not_sctp += 1;
                return;
            }
        };
        if payload.ip_number != IpNumber::SCTP {
            self.stats.not_sctp += 1;
            return;
        }
        if payload.fragmented {
            self.stats.ip_fragments += 1;
            return;
        }
        let Ok(sctp) = SctpPacket::parse(payload.payload) else {
            self.stats.malformed += 1;
            return;
        };
        if !sctp.checksum_ok() {
            self.stats.bad_checksums += 1;
        }
        let src = Some(SocketAddr::new(src_ip, sctp.src_port));
        let dst = Some(SocketAddr::new(dst_ip, sctp.dst_port));
        for chunk in sctp.chunks() {
            match chunk {
                Err(_) => {
                    self.stats.malformed += 1;
                    break;
                }
                Ok(Chunk::Other { .. }) => {}
                Ok(Chunk::Data(d)) => {
                    self.stats.data_chunks += 1;
                    let key = StreamKey {
                        src,
                        dst,
                        stream_id: d.stream_id,
                    };
                    match self.reassembler.push(key, &d) {
                        Reassembled::Message { ppid, data } if ppid == X2AP_PPID => {
                            self.stats.x2ap_messages += 1;
                            self.queue.push_back(CapturedPdu {
                                packet_index: index,
                                timestamp,
                                src,
                                dst,
                                stream_id: d.stream_id,
                                pdu: data,
                            });
                        }
                        Reassembled::Message { .. } => self.stats.other_ppid += 1,
                        Reassembled::Pending => {}
                        Reassembled::Dropped => self.stats.dropped_fragments += 1,
                    }
                }
            }
        }
    }
}

impl Iterator for PcapReplay<'_> {
    type Item = Result<CapturedPdu, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(p) = self.queue.pop_front() {
                return Some(Ok(p));
            }
            if self.finished {
                return None;
            }
            match self.step() {
                Ok(true) => {}
                Ok(false) => {
                    self.finished = true;
                    return None;
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// Build one SCTP packet (common header + one DATA chunk, flags as given) with
/// a valid CRC32c, for tests and tap senders.
///
/// ```
/// use mih_user::x2ap::sctp::{build_data_packet, Chunk, DataChunk, SctpPacket, X2AP_PPID};
/// let chunk = DataChunk { flags: 0x03, tsn: 1, stream_id: 0, ssn: 0, ppid: X2AP_PPID, user_data: &[0, 5] };
/// let packet = build_data_packet(36422, 36422, 0x1234, &chunk);
/// let parsed = SctpPacket::parse(&packet).unwrap();
/// assert!(parsed.checksum_ok());
/// assert_eq!(parsed.chunks().next(), Some(Ok(Chunk::Data(chunk))));
/// ```
///
/// User data longer than a chunk can carry (65535 − 16 octets) is cut there.
pub fn build_data_packet(
    src_port: u16,
    dst_port: u16,
    verification_tag: u32,
    chunk: &DataChunk<'_>,
) -> Vec<u8> {
    let data = &chunk.user_data[..chunk.user_data.len().min(usize::from(u16::MAX) - 16)];
    let chunk_len = 16 + data.len();
    let mut p = Vec::with_capacity(12 + chunk_len + 3);
    p.extend_from_slice(&src_port.to_be_bytes());
    p.extend_from_slice(&dst_port.to_be_bytes());
    p.extend_from_slice(&verification_tag.to_be_bytes());
    p.extend_from_slice(&[0; 4]);
    p.push(CHUNK_DATA);
    p.push(chunk.flags);
    p.extend_from_slice(&(chunk_len as u16).to_be_bytes());
    p.extend_from_slice(&chunk.tsn.to_be_bytes());
    p.extend_from_slice(&chunk.stream_id.to_be_bytes());
    p.extend_from_slice(&chunk.ssn.to_be_bytes());
    p.extend_from_slice(&chunk.ppid.to_be_bytes());
    p.extend_from_slice(data);
    p.resize(p.len().div_ceil(4) * 4, 0);
    let crc = crc32c::crc32c(&p);
    p[8..12].copy_from_slice(&crc.to_le_bytes());
    p
}

/// An unfragmented X2AP DATA chunk (flags B|E, PPID 27) for [`build_data_packet`].
pub fn x2ap_chunk(tsn: u32, stream_id: u16, ssn: u16, pdu: &[u8]) -> DataChunk<'_> {
    DataChunk {
        flags: 0x03,
        tsn,
        stream_id,
        ssn,
        ppid: X2AP_PPID,
        user_data: pdu,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_known_value() {
        // RFC 3720 B.4: 32 octets of zeros -> 0x8a9136aa
        assert_eq!(crc32c::crc32c(&[0u8; 32]), 0x8a91_36aa);
    }

    #[test]
    fn data_packet_round_trip() {
        let p = build_data_packet(36422, 36422, 7, &x2ap_chunk(100, 1, 2, &[1, 2, 3, 4, 5]));
        let s = SctpPacket::parse(&p).unwrap();
        assert!(s.checksum_ok());
        let chunks: Vec<_> = s.chunks().collect::<Result<_, _>>().unwrap();
        match chunks.as_slice() {
            [Chunk::Data(d)] => {
                assert_eq!((d.tsn, d.stream_id, d.ssn, d.ppid), (100, 1, 2, 27));
                assert_eq!(d.user_data, &[1, 2, 3, 4, 5]);
                assert!(d.beginning() && d.ending());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_chunks() {
        assert_eq!(SctpPacket::parse(&[0; 11]), Err(SctpError::Short(11)));
        let mut p = vec![0u8; 12];
        p.extend_from_slice(&[0, 3, 0, 2]); // length 2 < 4
        let s = SctpPacket::parse(&p).unwrap();
        assert!(matches!(
            s.chunks().next(),
            Some(Err(SctpError::BadChunkLength { .. }))
        ));
        let mut p = vec![0u8; 12];
        p.extend_from_slice(&[0, 3, 0, 8, 0, 0, 0, 0]); // DATA of 8 < 16
        let s = SctpPacket::parse(&p).unwrap();
        assert_eq!(
            s.chunks().collect::<Vec<_>>(),
            vec![Err(SctpError::ShortData {
                offset: 12,
                length: 8
            })]
        );
        let mut p = vec![0u8; 12];
        p.extend_from_slice(&[14, 0, 0, 200]); // beyond the packet
        assert!(matches!(
            SctpPacket::parse(&p).unwrap().chunks().next(),
            Some(Err(SctpError::BadChunkLength { .. }))
        ));
        let mut p = vec![0u8; 12];
        p.extend_from_slice(&[14, 0, 0]);
        assert!(matches!(
            SctpPacket::parse(&p).unwrap().chunks().next(),
            Some(Err(SctpError::ShortChunk { .. }))
        ));
    }

    fn frag(flags: u8, tsn: u32, data: &'static [u8]) -> DataChunk<'static> {
        DataChunk {
            flags,
            tsn,
            stream_id: 0,
            ssn: 0,
            ppid: X2AP_PPID,
            user_data: data,
        }
    }

    #[test]
    fn reassembly() {
        let key = StreamKey {
            src: None,
            dst: None,
            stream_id: 0,
        };
        let mut r = Reassembler::new();
        assert_eq!(r.push(key, &frag(0x02, 10, b"ab")), Reassembled::Pending);
        assert_eq!(r.push(key, &frag(0x00, 11, b"cd")), Reassembled::Pending);
        assert_eq!(
            r.push(key, &frag(0x01, 12, b"e")),
            Reassembled::Message {
                ppid: 27,
                data: b"abcde".to_vec()
            }
        );
        // A gap drops the message.
        assert_eq!(r.push(key, &frag(0x02, 20, b"ab")), Reassembled::Pending);
        assert_eq!(r.push(key, &frag(0x01, 22, b"cd")), Reassembled::Dropped);
        assert_eq!(r.in_progress(), 0);
        // A middle fragment without a beginning.
        assert_eq!(r.push(key, &frag(0x00, 30, b"x")), Reassembled::Dropped);
    }

    #[test]
    fn not_a_capture() {
        assert!(matches!(
            PcapReplay::new(b"hello"),
            Err(CaptureError::NotACapture(_))
        ));
        assert!(matches!(
            PcapReplay::new(&[]),
            Err(CaptureError::NotACapture(_))
        ));
    }
}
