//! Large contexts: segmentation across CDBs and across CTD/PCTD messages.
//!
//! RFC 4067 limits one Context Data Block to 2,040 octets (8-bit Length in
//! 8-octet units) and one message to 65,535 octets (16-bit Length), while a
//! UE's context averages 75 KB and can reach 16 MiB. This module carries
//! such contexts in ordinary, valid RFC 4067 messages by means of one extra
//! Feature Profile Type, [`crate::profile::fpt::SEGMENT`]
//! (`0xFF00`, configurable in [`SegmentConfig::fpt`]). A peer that does not
//! know the scheme sees well-formed CTD/PCTD messages with blocks of an
//! unknown FPT, which it reports in its CTDR as unsupported (status 0x80):
//! the sender then knows the large contexts did not arrive.
//!
//! # Blocks
//!
//! Every segmentation CDB has FPT `0xFF00`, P = 0, and data that starts
//! with a kind octet:
//!
//! ```text
//! kind 1, TRANSFER (8 octets, CDB of 16):
//!   kind=1 u8 | flags u8 (0x80 = LAST message) | index u16 | transfer id u32
//! kind 2, SEGMENT (24-octet header + chunk, CDB of at most 2,040):
//!   kind=2 u8 | flags u8 (0x80 = inner P) | inner FPT u16 | context id u32 |
//!   inner presence vector u32 | total length u32 | offset u32 | chunk length u32 |
//!   chunk (then zero padding of the CDB)
//! ```
//!
//! * A context whose CDB would exceed 2,040 octets is cut into chunks of at
//!   most 2,012 octets, each in a SEGMENT block carrying the inner FPT, the
//!   sender-chosen context id (unique per MN within a transfer), the total
//!   data length and the chunk's offset. Small contexts stay ordinary CDBs
//!   under their own FPT.
//! * When the blocks of one transfer do not fit one message, they are
//!   spread over several CTD (or PCTD, each with the key block) messages.
//!   Each then starts with a TRANSFER block giving its index (0, 1, …) and
//!   marking the last one; a single-message transfer has no TRANSFER block
//!   and is plain RFC 4067. An *identified* transfer
//!   ([`encode_identified_transfer`]) has the TRANSFER block in every
//!   message, also when it is the only one (index 0, LAST), so that its
//!   transfer id names it: the engines use that id for one attempt of a
//!   migration (`crate::engine`, "Identified transfers").
//! * Every message has the sender's `A` flag; the receiver answers each with
//!   a CTDR. Intermediate messages get `S = 1` (segments accepted) unless a
//!   block was bad; the CTDR to the last message carries the per-FPT result
//!   of the whole transfer ([`crate::profile::ProfileRegistry::receive`]).
//!   Since one operation per MN is in progress at a time and CTDRs come back
//!   in order on the connection, the sender matches them first-in first-out
//!   (the CTDRs of an identified transfer say which message they answer:
//!   [`crate::profile::echo`]).
//!
//! # Reassembly
//!
//! [`Reassembler`] (sans-IO, time passed in) accepts the messages of a
//! transfer in any order, ignores duplicated messages and overlapping
//! chunks, and returns the complete context list once the LAST message and
//! all indices before it are in and every segmented context is whole.
//! Memory is bounded:
//!
//! * a context whose announced total (or a plain block whose length)
//!   exceeds [`SegmentConfig::max_context_len`] is refused before anything
//!   is allocated;
//! * everything a transfer in progress holds is charged against
//!   [`SegmentConfig::max_buffered`], shared by all transfers, before it is
//!   held: reassembly buffers at their capacity (a buffer reaches the end of
//!   the furthest chunk received, never past the total), the plain blocks
//!   of its messages but the one that completes it, and its bookkeeping
//!   (message indices, received ranges, context and failure entries, each
//!   at the size of its entry). [`Reassembler::buffered`] never exceeds the
//!   cap;
//! * a transfer that would go over the cap fails as a whole on the message
//!   that would do it: everything it held is released at once, and that
//!   message, every later one and finally its LAST message are answered
//!   with what it lost (status [`status::REASSEMBLY_FAILED`]); until then
//!   it keeps only that verdict (at most 16 entries);
//! * at most [`SegmentConfig::max_transfers`] transfers, failed ones
//!   included, are in progress at once, and one without progress for
//!   [`SegmentConfig::timeout`] is dropped.
//!
//! Reassembly copies each chunk once into one buffer per large context, and
//! the plain blocks of a message that does not complete its transfer once
//! into one buffer per message (a slice would keep the whole message
//! alive). Decoding and [`parse_block`] do not copy, and the plain contexts
//! of the message that completes a transfer (all of a single-message
//! transfer) stay slices of it.
//!
//! ```
//! use std::time::Instant;
//! use bytes::Bytes;
//! use cxtp::profile::Context;
//! use cxtp::segment::{encode_transfer, CtdHeader, Reassembler, SegmentConfig, Received};
//! use cxtp::wire::MessageView;
//!
//! let cfg = SegmentConfig::default();
//! let big = Context::new(0xFF02, Bytes::from(vec![7u8; 100_000]));
//! let header = CtdHeader { ack: true, elapsed_ms: 0, mn_addr: "192.0.2.1".parse().unwrap(), key_block: None };
//! let msgs = encode_transfer(&cfg, &header, std::slice::from_ref(&big), 42).unwrap();
//! assert_eq!(msgs.len(), 2);
//!
//! let mut r = Reassembler::new(cfg);
//! let now = Instant::now();
//! let mut done = None;
//! for m in msgs.iter().rev() {            // reordered on purpose
//!     let MessageView::Ctd(ctd) = MessageView::parse(m.clone()).unwrap() else { unreachable!() };
//!     if let Received::Complete(t) = r.receive(now, &ctd) { done = Some(t) }
//! }
//! let t = done.unwrap();
//! assert_eq!(t.contexts, vec![big]);
//! assert!(t.failures.is_empty());
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};

use crate::profile::{fpt, status, Context};
use crate::wire::{
    pad8, put_addr, AddressFamily, ContextDataBlock, Ctd, DecodeError, EmitError, Header,
    KeyBlockRepr, MessageType, HEADER_LEN, MAX_CDB_LEN, MAX_MESSAGE_LEN,
};

/// Size of the SEGMENT header inside the CDB data.
pub const SEGMENT_HEADER_LEN: usize = 24;
/// Size of the TRANSFER block data.
pub const TRANSFER_BLOCK_LEN: usize = 8;
/// Largest chunk in one SEGMENT CDB (2,040 − 4 − 24).
pub const MAX_CHUNK: usize = MAX_CDB_LEN - 4 - SEGMENT_HEADER_LEN;

const KIND_TRANSFER: u8 = 1;
const KIND_SEGMENT: u8 = 2;
const FLAG: u8 = 0x80;

/// Segmentation settings (sender and receiver).
#[derive(Clone, Debug)]
pub struct SegmentConfig {
    /// FPT of segmentation blocks.
    pub fpt: u16,
    /// Largest message to emit (at most 65,535).
    pub max_message_len: usize,
    /// Largest context accepted, reassembled or plain (default 16 MiB).
    pub max_context_len: usize,
    /// Cap on what all transfers in progress hold together, buffers and
    /// bookkeeping (default 64 MiB; see [`Reassembler::buffered`]).
    pub max_buffered: usize,
    /// Cap on transfers in progress (MNs) at once, failed ones included.
    pub max_transfers: usize,
    /// Drop a transfer after this long without progress.
    pub timeout: Duration,
}

impl Default for SegmentConfig {
    fn default() -> Self {
        SegmentConfig {
            fpt: fpt::SEGMENT,
            max_message_len: MAX_MESSAGE_LEN,
            max_context_len: 16 << 20,
            max_buffered: 64 << 20,
            max_transfers: 1024,
            timeout: Duration::from_secs(5),
        }
    }
}

/// The header fields of every CTD/PCTD of a transfer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CtdHeader {
    /// `A` flag on every message.
    pub ack: bool,
    /// Elapsed Time.
    pub elapsed_ms: u32,
    /// MN's previous address.
    pub mn_addr: IpAddr,
    /// Key block: makes every message a PCTD.
    pub key_block: Option<KeyBlockRepr>,
}

/// A TRANSFER block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransferBlock {
    /// Transfer id.
    pub transfer_id: u32,
    /// Index of this message in the transfer.
    pub index: u16,
    /// Last message of the transfer.
    pub last: bool,
}

/// A SEGMENT block, viewed in place (`chunk` is a slice of the message).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// FPT of the context being carried.
    pub inner_fpt: u16,
    /// Its presence vector.
    pub inner_presence_vector: Option<u32>,
    /// Context id (unique per MN within a transfer).
    pub context_id: u32,
    /// Total data length of the context.
    pub total_len: u32,
    /// Offset of this chunk.
    pub offset: u32,
    /// The chunk.
    pub chunk: Bytes,
}

/// A parsed segmentation block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SegmentBlock {
    /// Message index / last marker.
    Transfer(TransferBlock),
    /// Part of a large context.
    Segment(Segment),
}

/// A SEGMENT block borrowed from the message (no reference counting).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentRef<'a> {
    /// FPT of the context being carried.
    pub inner_fpt: u16,
    /// Its presence vector.
    pub inner_presence_vector: Option<u32>,
    /// Context id.
    pub context_id: u32,
    /// Total data length of the context.
    pub total_len: u32,
    /// Offset of this chunk.
    pub offset: u32,
    /// The chunk.
    pub chunk: &'a [u8],
}

/// A borrowed segmentation block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentBlockRef<'a> {
    /// Message index / last marker.
    Transfer(TransferBlock),
    /// Part of a large context.
    Segment(SegmentRef<'a>),
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn seg_err(field: &'static str, needed: usize, available: usize) -> DecodeError {
    DecodeError::Truncated {
        message: "segment block",
        field,
        needed,
        available,
    }
}

/// Parse the data of a segmentation CDB without copying or reference
/// counting. Every length is checked before it is used.
pub fn parse_block_ref(data: &[u8]) -> Result<SegmentBlockRef<'_>, DecodeError> {
    if data.len() < 2 {
        return Err(seg_err("kind/flags", 2, data.len()));
    }
    let (kind, flags) = (data[0], data[1]);
    match kind {
        KIND_TRANSFER => {
            if data.len() < TRANSFER_BLOCK_LEN {
                return Err(seg_err("transfer block", TRANSFER_BLOCK_LEN, data.len()));
            }
            Ok(SegmentBlockRef::Transfer(TransferBlock {
                transfer_id: be32(data, 4),
                index: u16::from_be_bytes([data[2], data[3]]),
                last: flags & FLAG != 0,
            }))
        }
        KIND_SEGMENT => {
            if data.len() < SEGMENT_HEADER_LEN {
                return Err(seg_err("segment header", SEGMENT_HEADER_LEN, data.len()));
            }
            let len = be32(data, 20) as usize;
            let rest = data.len() - SEGMENT_HEADER_LEN;
            if len > rest {
                return Err(seg_err("chunk", len, rest));
            }
            let total_len = be32(data, 12);
            let offset = be32(data, 16);
            if offset as u64 + len as u64 > total_len as u64 {
                return Err(DecodeError::Invalid {
                    message: "segment block",
                    field: "offset",
                    reason: "chunk ends past the total length",
                });
            }
            Ok(SegmentBlockRef::Segment(SegmentRef {
                inner_fpt: u16::from_be_bytes([data[2], data[3]]),
                inner_presence_vector: (flags & FLAG != 0).then(|| be32(data, 8)),
                context_id: be32(data, 4),
                total_len,
                offset,
                chunk: &data[SEGMENT_HEADER_LEN..SEGMENT_HEADER_LEN + len],
            }))
        }
        _ => Err(DecodeError::Invalid {
            message: "segment block",
            field: "kind",
            reason: "unknown kind",
        }),
    }
}

/// Parse the data of a segmentation CDB; the chunk is a [`Bytes`] slice of
/// the message (zero-copy).
pub fn parse_block(cdb: &ContextDataBlock) -> Result<SegmentBlock, DecodeError> {
    Ok(match parse_block_ref(&cdb.data)? {
        SegmentBlockRef::Transfer(t) => SegmentBlock::Transfer(t),
        SegmentBlockRef::Segment(s) => SegmentBlock::Segment(Segment {
            inner_fpt: s.inner_fpt,
            inner_presence_vector: s.inner_presence_vector,
            context_id: s.context_id,
            total_len: s.total_len,
            offset: s.offset,
            chunk: cdb.data.slice_ref(s.chunk),
        }),
    })
}

// ---------------------------------------------------------------------------
// Sender.

enum Item<'a> {
    Plain(&'a Context),
    Chunk {
        ctx: &'a Context,
        id: u32,
        offset: usize,
        len: usize,
    },
}

impl Item<'_> {
    fn wire_len(&self) -> usize {
        match self {
            Item::Plain(c) => plain_len(c),
            Item::Chunk { len, .. } => pad8(4 + SEGMENT_HEADER_LEN + len),
        }
    }
}

fn plain_len(c: &Context) -> usize {
    pad8(4 + if c.presence_vector.is_some() { 4 } else { 0 } + c.data.len())
}

fn pack<'a>(contexts: &'a [Context], cap: usize, seg_fpt: u16) -> Vec<Vec<Item<'a>>> {
    let mut msgs: Vec<Vec<Item<'a>>> = vec![Vec::new()];
    let mut room = cap;
    let mut next_id = 0u32;
    for ctx in contexts {
        let pl = plain_len(ctx);
        // A context that uses the segmentation FPT itself is always wrapped,
        // so the receiver never mistakes it for a segmentation block.
        if pl <= MAX_CDB_LEN && ctx.fpt != seg_fpt {
            if pl > room {
                msgs.push(Vec::new());
                room = cap;
            }
            room -= pl;
            msgs.last_mut().expect("non-empty").push(Item::Plain(ctx));
            continue;
        }
        let id = next_id;
        next_id += 1;
        let mut offset = 0;
        loop {
            if room < 4 + SEGMENT_HEADER_LEN + 8 {
                msgs.push(Vec::new());
                room = cap;
            }
            let len = (ctx.data.len() - offset)
                .min(MAX_CHUNK)
                .min((room & !7) - 4 - SEGMENT_HEADER_LEN);
            let item = Item::Chunk {
                ctx,
                id,
                offset,
                len,
            };
            room -= item.wire_len();
            msgs.last_mut().expect("non-empty").push(item);
            offset += len;
            if offset >= ctx.data.len() {
                break;
            }
        }
    }
    msgs
}

/// Encode a transfer of `contexts` into one or more complete CTD (or PCTD,
/// when `header.key_block` is set) messages, segmenting as needed. Each
/// message is emitted straight into its own buffer: context data are copied
/// exactly once.
pub fn encode_transfer(
    cfg: &SegmentConfig,
    header: &CtdHeader,
    contexts: &[Context],
    transfer_id: u32,
) -> Result<Vec<Bytes>, EmitError> {
    encode(cfg, header, contexts, transfer_id, false)
}

/// [`encode_transfer`] for an identified transfer: every message starts
/// with a TRANSFER block carrying `transfer_id`, also when the contexts fit
/// one message (it is then index 0 and LAST).
pub fn encode_identified_transfer(
    cfg: &SegmentConfig,
    header: &CtdHeader,
    contexts: &[Context],
    transfer_id: u32,
) -> Result<Vec<Bytes>, EmitError> {
    encode(cfg, header, contexts, transfer_id, true)
}

fn encode(
    cfg: &SegmentConfig,
    header: &CtdHeader,
    contexts: &[Context],
    transfer_id: u32,
    identified: bool,
) -> Result<Vec<Bytes>, EmitError> {
    let family = AddressFamily::of(&header.mn_addr);
    let msg_type = if header.key_block.is_some() {
        MessageType::Pctd
    } else {
        MessageType::Ctd
    };
    if let Some(k) = &header.key_block {
        if k.key.len() > u16::MAX as usize {
            return Err(EmitError::KeyTooLong {
                length: k.key.len(),
            });
        }
    }
    let fixed = HEADER_LEN
        + 4
        + family.addr_len()
        + header.key_block.as_ref().map_or(0, |k| 4 + k.key.len());
    let max = cfg.max_message_len.min(MAX_MESSAGE_LEN);
    let too_long = || EmitError::MessageTooLong {
        message: msg_type.name(),
        length: fixed + 4 + SEGMENT_HEADER_LEN + 8 + 16,
    };
    let cap = max.checked_sub(fixed).ok_or_else(too_long)?;
    let mut msgs = pack(contexts, cap, cfg.fpt);
    let multi = identified || msgs.len() > 1;
    if multi {
        let cap = cap
            .checked_sub(16)
            .filter(|c| *c >= MAX_CDB_LEN)
            .ok_or_else(too_long)?;
        msgs = pack(contexts, cap, cfg.fpt);
        if msgs.len() > u16::MAX as usize + 1 {
            return Err(too_long());
        }
    }
    let n = msgs.len();
    let mut out = Vec::with_capacity(n);
    for (index, items) in msgs.into_iter().enumerate() {
        let body: usize =
            items.iter().map(Item::wire_len).sum::<usize>() + if multi { 16 } else { 0 };
        let length = fixed + body;
        let mut buf = BytesMut::with_capacity(length);
        Header {
            msg_type,
            family,
            flag: header.ack,
            length: length as u16,
        }
        .emit(&mut buf);
        buf.put_u32(header.elapsed_ms);
        put_addr(&mut buf, &header.mn_addr);
        if let Some(k) = &header.key_block {
            buf.put_u16(k.algorithm);
            buf.put_u16(k.key.len() as u16);
            buf.put_slice(k.key.as_bytes());
        }
        if multi {
            buf.put_u16(cfg.fpt);
            buf.put_u8(2);
            buf.put_u8(0);
            buf.put_u8(KIND_TRANSFER);
            buf.put_u8(if index + 1 == n { FLAG } else { 0 });
            buf.put_u16(index as u16);
            buf.put_u32(transfer_id);
            buf.put_u32(0);
        }
        for item in &items {
            let wl = item.wire_len();
            match item {
                Item::Plain(c) => {
                    buf.put_u16(c.fpt);
                    buf.put_u8((wl / 8) as u8);
                    buf.put_u8(if c.presence_vector.is_some() { FLAG } else { 0 });
                    let mut used = 4 + c.data.len();
                    if let Some(pv) = c.presence_vector {
                        buf.put_u32(pv);
                        used += 4;
                    }
                    buf.put_slice(&c.data);
                    buf.put_bytes(0, wl - used);
                }
                Item::Chunk {
                    ctx,
                    id,
                    offset,
                    len,
                } => {
                    buf.put_u16(cfg.fpt);
                    buf.put_u8((wl / 8) as u8);
                    buf.put_u8(0);
                    buf.put_u8(KIND_SEGMENT);
                    buf.put_u8(if ctx.presence_vector.is_some() {
                        FLAG
                    } else {
                        0
                    });
                    buf.put_u16(ctx.fpt);
                    buf.put_u32(*id);
                    buf.put_u32(ctx.presence_vector.unwrap_or(0));
                    buf.put_u32(ctx.data.len() as u32);
                    buf.put_u32(*offset as u32);
                    buf.put_u32(*len as u32);
                    buf.put_slice(&ctx.data[*offset..*offset + *len]);
                    buf.put_bytes(0, wl - 4 - SEGMENT_HEADER_LEN - len);
                }
            }
        }
        debug_assert_eq!(buf.len(), length);
        out.push(buf.freeze());
    }
    Ok(out)
}

/// Rewrite the Elapsed Time of an encoded CTD/PCTD (for a resend).
pub fn with_elapsed(msg: &Bytes, elapsed_ms: u32) -> Bytes {
    if msg.len() < 8 {
        return msg.clone();
    }
    let mut b = BytesMut::from(&msg[..]);
    b[4..8].copy_from_slice(&elapsed_ms.to_be_bytes());
    b.freeze()
}

// ---------------------------------------------------------------------------
// Receiver.

/// A finished transfer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// The MN.
    pub mn_addr: IpAddr,
    /// Transfer id (0 for a single-message transfer).
    pub transfer_id: u32,
    /// Every context, in arrival order of completion. Plain contexts of the
    /// message that completed the transfer are slices of it; those of the
    /// earlier messages share one copy per message; reassembled contexts own
    /// their buffer.
    pub contexts: Vec<Context>,
    /// Contexts that could not be delivered: `(FPT, status)`.
    pub failures: Vec<(u16, u8)>,
}

/// Outcome of [`Reassembler::receive`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Received {
    /// The transfer is complete (possibly with failures, possibly failed as
    /// a whole: then `contexts` is empty and `failures` says what was lost).
    Complete(Transfer),
    /// A message of a multi-message transfer was taken in; more are expected.
    /// `failures` lists the blocks of this message that were refused or,
    /// once the transfer has failed, what the transfer lost.
    Partial {
        /// Index of the message.
        index: u16,
        /// Refused blocks `(FPT, status)`.
        failures: Vec<(u16, u8)>,
    },
    /// A message already received (same transfer and index): ignored.
    Duplicate,
}

// What each bookkeeping entry of a transfer is charged against
// `max_buffered`: the size of the entry (vector and table slack is not
// counted). Data buffers are charged at their capacity.
const CONTEXT_COST: usize = std::mem::size_of::<Context>();
const PARTIAL_COST: usize = std::mem::size_of::<(u32, Partial)>();
const RANGE_COST: usize = std::mem::size_of::<(usize, usize)>();
const ID_COST: usize = std::mem::size_of::<u32>();
const FAILURE_COST: usize = std::mem::size_of::<(u16, u8)>();
const WORD_COST: usize = std::mem::size_of::<u64>();
/// Entries a failed transfer keeps for its verdict (a fixed bound, so a
/// failed transfer holds nothing that grows with what its peer sends).
const MAX_LOST: usize = 16;

/// The cap would be exceeded: the transfer fails.
struct OverCap;

/// The reassembler's total charge and its cap, for one `receive` call.
struct Pool<'a> {
    buffered: &'a mut usize,
    cap: usize,
}

impl Pool<'_> {
    fn fits(&self, n: usize) -> bool {
        n <= self.cap.saturating_sub(*self.buffered)
    }
    /// Charge `n` octets to a transfer (`charged`) before they are held.
    fn charge(&mut self, charged: &mut usize, n: usize) -> Result<(), OverCap> {
        if !self.fits(n) {
            return Err(OverCap);
        }
        *self.buffered += n;
        *charged += n;
        Ok(())
    }
    fn release(&mut self, charged: &mut usize, n: usize) {
        *self.buffered -= n;
        *charged -= n;
    }
}

struct Partial {
    inner_fpt: u16,
    pv: Option<u32>,
    total: usize,
    /// Zero-filled up to the end of the furthest chunk received.
    buf: Vec<u8>,
    /// Octets of `buf`'s capacity charged (the capacity reserved for it).
    held: usize,
    /// Received ranges `start → end`: disjoint, non-empty, not touching.
    ranges: BTreeMap<usize, usize>,
}

impl Partial {
    /// Whether `[s, e)` overlaps or touches a range received.
    fn touches(&self, s: usize, e: usize) -> bool {
        self.ranges
            .range(..=e)
            .next_back()
            .is_some_and(|(_, &end)| end >= s)
    }
    /// Copy a chunk in and record its range (`buf` already reaches its end).
    fn insert(&mut self, offset: usize, chunk: &[u8]) {
        if chunk.is_empty() {
            return;
        }
        let (mut s, e) = (offset, offset + chunk.len());
        self.buf[s..e].copy_from_slice(chunk);
        let mut end = e;
        while let Some((&rs, &re)) = self.ranges.range(..=e).next_back() {
            if re < s {
                break;
            }
            self.ranges.remove(&rs);
            s = s.min(rs);
            end = end.max(re);
        }
        self.ranges.insert(s, end);
    }
    fn complete(&self) -> bool {
        self.total == 0
            || (self.ranges.len() == 1 && self.ranges.first_key_value() == Some((&0, &self.total)))
    }
    /// What this partial context is charged.
    fn cost(&self) -> usize {
        PARTIAL_COST + self.held + self.ranges.len() * RANGE_COST
    }
}

struct State {
    transfer_id: Option<u32>,
    /// Message indices received: bit `i % 64` of word `i / 64`.
    have: Vec<u64>,
    last: Option<u16>,
    partials: HashMap<u32, Partial>,
    failed_ids: HashSet<u32>,
    contexts: Vec<Context>,
    failures: Vec<(u16, u8)>,
    deadline: Instant,
    /// Octets of [`Reassembler::buffered`] charged to this transfer.
    charged: usize,
    /// Set when the transfer has failed: its verdict. A failed transfer
    /// keeps nothing else and completes when its LAST message is in.
    lost: Option<Vec<(u16, u8)>>,
}

impl State {
    fn new(transfer_id: Option<u32>, deadline: Instant) -> Self {
        State {
            transfer_id,
            have: Vec::new(),
            last: None,
            partials: HashMap::new(),
            failed_ids: HashSet::new(),
            contexts: Vec::new(),
            failures: Vec::new(),
            deadline,
            charged: 0,
            lost: None,
        }
    }
    fn has(&self, index: u16) -> bool {
        self.have
            .get(index as usize / 64)
            .is_some_and(|w| w & (1 << (index % 64)) != 0)
    }
    /// Whether every index `0..=last` is in.
    fn has_all(&self, last: u16) -> bool {
        let n = last as usize + 1;
        let (full, rest) = (n / 64, n % 64);
        let mask = (1u64 << rest) - 1;
        self.have.len() >= full + usize::from(rest > 0)
            && self.have[..full].iter().all(|w| *w == u64::MAX)
            && (rest == 0 || self.have[full] & mask == mask)
    }
}

/// Take the blocks of one message into `st`, charging everything it will
/// hold before holding it. Returns whether the transfer is complete.
fn intake(
    cfg: &SegmentConfig,
    pool: &mut Pool,
    st: &mut State,
    ctd: &Ctd,
    tb: Option<TransferBlock>,
    msg_failures: &mut Vec<(u16, u8)>,
) -> Result<bool, OverCap> {
    let rf = status::REASSEMBLY_FAILED;
    if let Some(t) = tb {
        let w = t.index as usize / 64;
        if w >= st.have.len() {
            let grow = w + 1 - st.have.len();
            pool.charge(&mut st.charged, grow * WORD_COST)?;
            st.have.reserve_exact(grow);
            st.have.resize(w + 1, 0);
        }
        st.have[w] |= 1 << (t.index % 64);
    }
    let done = match tb {
        None => true,
        Some(_) => st.last.is_some_and(|l| st.has_all(l)),
    };
    let is_plain = |b: &crate::wire::ContextDataBlockRef| b.fpt != cfg.fpt;
    // Plain blocks of the message that completes the transfer go to the
    // caller as slices of it and are not held. Those of an earlier message
    // are copied into one buffer for the message, charged before the copy
    // (a slice would pin the whole message, of unknown size).
    let mut kept = None;
    if !done {
        let plain = || {
            ctd.block_refs()
                .filter(|b| is_plain(b) && b.data.len() <= cfg.max_context_len)
        };
        let (octets, count) = plain().fold((0, 0), |(o, c), b| (o + b.data.len(), c + 1));
        if count > 0 {
            pool.charge(&mut st.charged, octets + count * CONTEXT_COST)?;
            let mut buf = BytesMut::with_capacity(octets);
            for b in plain() {
                buf.extend_from_slice(b.data);
            }
            kept = Some(buf.freeze());
        }
    }
    let mut at = 0;
    for (i, b) in ctd.block_refs().enumerate() {
        if is_plain(&b) {
            if b.data.len() > cfg.max_context_len {
                msg_failures.push((b.fpt, rf));
                continue;
            }
            let data = match &kept {
                Some(k) => {
                    at += b.data.len();
                    k.slice(at - b.data.len()..at)
                }
                None => b.data_bytes(),
            };
            st.contexts.push(Context {
                fpt: b.fpt,
                presence_vector: b.presence_vector,
                data,
            });
            continue;
        }
        let seg = match parse_block_ref(b.data) {
            Ok(SegmentBlockRef::Segment(s)) => s,
            Ok(SegmentBlockRef::Transfer(_)) if i == 0 => continue,
            _ => {
                msg_failures.push((cfg.fpt, status::MALFORMED));
                continue;
            }
        };
        let id = seg.context_id;
        if st.failed_ids.contains(&id) {
            continue;
        }
        let total = seg.total_len as usize;
        if total > cfg.max_context_len {
            fail_context(pool, st, &seg)?;
            continue;
        }
        if !st.partials.contains_key(&id) {
            pool.charge(&mut st.charged, PARTIAL_COST)?;
            st.partials.insert(
                id,
                Partial {
                    inner_fpt: seg.inner_fpt,
                    pv: seg.inner_presence_vector,
                    total,
                    buf: Vec::new(),
                    held: 0,
                    ranges: BTreeMap::new(),
                },
            );
        }
        let p = &st.partials[&id];
        if p.inner_fpt != seg.inner_fpt || p.total != total || p.pv != seg.inner_presence_vector {
            fail_context(pool, st, &seg)?;
            continue;
        }
        let p = st.partials.get_mut(&id).expect("present");
        let (s, e) = (seg.offset as usize, seg.offset as usize + seg.chunk.len());
        if e > p.held {
            // Grow geometrically (never past the total) while the cap
            // allows it, otherwise to the chunk's end exactly.
            let want = e.max(p.held.saturating_mul(2)).min(p.total);
            let extra = if pool.fits(want - p.held) {
                want - p.held
            } else {
                e - p.held
            };
            pool.charge(&mut st.charged, extra)?;
            p.buf.reserve_exact(p.held + extra - p.buf.len());
            p.held += extra;
        }
        if e > p.buf.len() {
            p.buf.resize(e, 0);
        }
        // A chunk adds a range, or extends one and may join others to it.
        let adds = !seg.chunk.is_empty() && !p.touches(s, e);
        if adds {
            pool.charge(&mut st.charged, RANGE_COST)?;
        }
        let before = p.ranges.len() + usize::from(adds);
        p.insert(s, seg.chunk);
        pool.release(&mut st.charged, (before - p.ranges.len()) * RANGE_COST);
        if p.complete() {
            // The buffer becomes the context's data and stays charged.
            let p = st.partials.remove(&id).expect("present");
            pool.release(&mut st.charged, p.cost() - p.held);
            pool.charge(&mut st.charged, CONTEXT_COST)?;
            st.contexts.push(Context {
                fpt: p.inner_fpt,
                presence_vector: p.pv,
                data: Bytes::from(p.buf),
            });
        }
    }
    if !done && !msg_failures.is_empty() {
        pool.charge(&mut st.charged, msg_failures.len() * FAILURE_COST)?;
        st.failures.extend(msg_failures.iter().copied());
    }
    Ok(done)
}

/// Give up on one segmented context: its buffer is released, its later
/// segments are ignored, and it is reported as not reassembled.
fn fail_context(pool: &mut Pool, st: &mut State, seg: &SegmentRef) -> Result<(), OverCap> {
    if let Some(p) = st.partials.remove(&seg.context_id) {
        pool.release(&mut st.charged, p.cost());
    }
    pool.charge(&mut st.charged, ID_COST + FAILURE_COST)?;
    st.failed_ids.insert(seg.context_id);
    st.failures.push((seg.inner_fpt, status::REASSEMBLY_FAILED));
    Ok(())
}

/// The verdict of a transfer that failed while taking in `ctd`: everything
/// it held or was receiving, as not reassembled (earlier failures keep
/// their status), distinct, at most [`MAX_LOST`] entries (the last one the
/// segmentation FPT when there were more).
fn lost(cfg: &SegmentConfig, st: &State, ctd: &Ctd, msg_failures: &[(u16, u8)]) -> Vec<(u16, u8)> {
    let rf = status::REASSEMBLY_FAILED;
    let this_message = ctd.block_refs().filter_map(|b| {
        if b.fpt != cfg.fpt {
            return Some(b.fpt);
        }
        match parse_block_ref(b.data) {
            Ok(SegmentBlockRef::Segment(s)) => Some(s.inner_fpt),
            _ => None,
        }
    });
    let candidates = st
        .failures
        .iter()
        .copied()
        .chain(msg_failures.iter().copied())
        .chain(st.contexts.iter().map(|c| (c.fpt, rf)))
        .chain(st.partials.values().map(|p| (p.inner_fpt, rf)))
        .chain(this_message.map(|f| (f, rf)));
    let mut lost = Vec::new();
    for f in candidates {
        if lost.contains(&f) {
            continue;
        }
        if lost.len() == MAX_LOST - 1 {
            if !lost.contains(&(cfg.fpt, rf)) {
                lost.push((cfg.fpt, rf));
            }
            break;
        }
        lost.push(f);
    }
    if lost.is_empty() {
        lost.push((cfg.fpt, rf));
    }
    lost
}

/// Sans-IO reassembly of transfers, one per MN at a time.
pub struct Reassembler {
    cfg: SegmentConfig,
    states: HashMap<IpAddr, State>,
    buffered: usize,
    /// Recently completed multi-message transfers, so that a late duplicate
    /// does not start a new one: `(MN, transfer id, forget after)`.
    completed: std::collections::VecDeque<(IpAddr, u32, Instant)>,
}

impl std::fmt::Debug for Reassembler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reassembler")
            .field("transfers", &self.states.len())
            .field("buffered", &self.buffered)
            .finish()
    }
}

impl Reassembler {
    /// New reassembler.
    pub fn new(cfg: SegmentConfig) -> Self {
        Reassembler {
            cfg,
            states: HashMap::new(),
            buffered: 0,
            completed: std::collections::VecDeque::new(),
        }
    }

    /// Octets currently held for the transfers in progress: reassembly
    /// buffers (at their capacity), the plain blocks of their earlier
    /// messages, and their bookkeeping (received ranges, message indices,
    /// contexts and failures so far). Never above
    /// [`SegmentConfig::max_buffered`]; 0 when no transfer is in progress.
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// Transfers in progress.
    pub fn in_progress(&self) -> usize {
        self.states.len()
    }

    /// Whether a transfer for `mn` is in progress.
    pub fn is_in_progress(&self, mn: &IpAddr) -> bool {
        self.states.contains_key(mn)
    }

    /// Process one CTD/PCTD.
    ///
    /// A transfer that would take [`Reassembler::buffered`] above
    /// [`SegmentConfig::max_buffered`] fails as a whole, on the message that
    /// would have done it: everything it held is released, the answer to
    /// that message and to every later one of the transfer lists what it
    /// lost (status [`status::REASSEMBLY_FAILED`]), and its LAST message
    /// completes it with no contexts.
    pub fn receive(&mut self, now: Instant, ctd: &Ctd) -> Received {
        let mn = ctd.mn_addr;
        // Find the TRANSFER block, if any (it is first when present).
        let mut tb = None;
        if let Some(b) = ctd.block_refs().next() {
            if b.fpt == self.cfg.fpt {
                if let Ok(SegmentBlockRef::Transfer(t)) = parse_block_ref(b.data) {
                    tb = Some(t);
                }
            }
        }
        while self.completed.front().is_some_and(|c| c.2 <= now) {
            self.completed.pop_front();
        }
        if let Some(t) = tb {
            if self
                .completed
                .iter()
                .any(|c| c.0 == mn && c.1 == t.transfer_id)
            {
                return Received::Duplicate;
            }
            if let Some(s) = self.states.get(&mn) {
                if s.transfer_id == Some(t.transfer_id) && s.has(t.index) {
                    return Received::Duplicate;
                }
                if s.transfer_id != Some(t.transfer_id) {
                    // A new transfer replaces a stale one for the same MN.
                    self.drop_state(&mn);
                }
            }
        } else {
            // A single-message transfer replaces any partial state.
            self.drop_state(&mn);
        }
        if !self.states.contains_key(&mn) && self.states.len() >= self.cfg.max_transfers {
            let failures = ctd
                .blocks()
                .map(|b| (b.fpt, status::REASSEMBLY_FAILED))
                .collect();
            return match tb {
                Some(t) => Received::Partial {
                    index: t.index,
                    failures,
                },
                None => Received::Complete(Transfer {
                    mn_addr: mn,
                    transfer_id: 0,
                    contexts: vec![],
                    failures,
                }),
            };
        }
        let deadline = now + self.cfg.timeout;
        let mut st = self
            .states
            .remove(&mn)
            .unwrap_or_else(|| State::new(tb.map(|t| t.transfer_id), deadline));
        st.deadline = deadline;
        if let Some(t) = tb.filter(|t| t.last) {
            st.last = Some(t.index);
        }
        if st.lost.is_some() {
            return self.failed(now, mn, st, tb);
        }
        let mut msg_failures = Vec::new();
        let mut pool = Pool {
            buffered: &mut self.buffered,
            cap: self.cfg.max_buffered,
        };
        let done = match intake(&self.cfg, &mut pool, &mut st, ctd, tb, &mut msg_failures) {
            Ok(done) => done,
            Err(OverCap) => {
                let mut gone = State::new(st.transfer_id, deadline);
                gone.last = st.last;
                gone.lost = Some(lost(&self.cfg, &st, ctd, &msg_failures));
                self.buffered -= st.charged;
                drop(st);
                return self.failed(now, mn, gone, tb);
            }
        };
        if !done {
            self.states.insert(mn, st);
            return Received::Partial {
                index: tb.map_or(0, |t| t.index),
                failures: msg_failures,
            };
        }
        self.buffered -= st.charged;
        for p in st.partials.values() {
            st.failures.push((p.inner_fpt, status::REASSEMBLY_FAILED));
        }
        st.failures.extend(msg_failures);
        self.remember(now, mn, st.transfer_id);
        Received::Complete(Transfer {
            mn_addr: mn,
            transfer_id: st.transfer_id.unwrap_or(0),
            contexts: st.contexts,
            failures: st.failures,
        })
    }

    /// Answer a message of a failed transfer (`st` holds only its verdict):
    /// it completes once its LAST message is in.
    fn failed(
        &mut self,
        now: Instant,
        mn: IpAddr,
        st: State,
        tb: Option<TransferBlock>,
    ) -> Received {
        let failures = st.lost.clone().expect("a failed transfer");
        match tb {
            Some(t) if st.last.is_none() => {
                self.states.insert(mn, st);
                Received::Partial {
                    index: t.index,
                    failures,
                }
            }
            _ => {
                self.remember(now, mn, st.transfer_id);
                Received::Complete(Transfer {
                    mn_addr: mn,
                    transfer_id: st.transfer_id.unwrap_or(0),
                    contexts: vec![],
                    failures,
                })
            }
        }
    }

    /// Remember a finished multi-message transfer, for late duplicates.
    fn remember(&mut self, now: Instant, mn: IpAddr, transfer_id: Option<u32>) {
        if let Some(id) = transfer_id {
            if self.completed.len() >= self.cfg.max_transfers {
                self.completed.pop_front();
            }
            self.completed.push_back((mn, id, now + self.cfg.timeout));
        }
    }

    fn drop_state(&mut self, mn: &IpAddr) -> Option<State> {
        let st = self.states.remove(mn)?;
        self.buffered -= st.charged;
        Some(st)
    }

    /// Forget the transfer for `mn` (CTC, or a new operation).
    pub fn cancel(&mut self, mn: &IpAddr) -> bool {
        self.drop_state(mn).is_some()
    }

    /// Earliest deadline of the transfers in progress.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.states.values().map(|s| s.deadline).min()
    }

    /// Drop transfers whose deadline has passed; returns their MNs.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<IpAddr> {
        let expired: Vec<IpAddr> = self
            .states
            .iter()
            .filter(|(_, s)| s.deadline <= now)
            .map(|(k, _)| *k)
            .collect();
        for mn in &expired {
            self.drop_state(mn);
        }
        expired
    }
}

#[cfg(test)]
mod tests;
