//! MIH fragmentation and reassembly (IEEE 802.21-2008 clause 8.3: the
//! More-Fragment bit M and the 7-bit Fragment Number FN of the fixed header).
//!
//! A frame longer than the path MTU is cut into fragments whose payloads are
//! consecutive slices of the original payload; every fragment repeats the
//! header (version, flags, MID, TID) with FN = 0, 1, 2, ... and M set on all
//! but the last. The receiver keys a partial message by (sender address, MID,
//! TID) and rebuilds the original frame once the last fragment (M = 0) and
//! every fragment before it are present.
//!
//! Memory is bounded: at most [`ReassemblyLimits::max_messages`] messages in
//! progress and [`ReassemblyLimits::max_bytes`] buffered octets in total; a
//! message that does not complete within [`ReassemblyLimits::timeout`] is
//! dropped. A fragment that would exceed a limit is refused with a typed error.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

use super::{canon, Endpoint};
use crate::wire::{Frame, Header, Mid, HEADER_LEN};

/// Highest fragment number (FN is 7 bits).
pub const MAX_FRAGMENTS: usize = 128;

/// Cut `frame` (one whole, valid MIH frame) into fragments of at most `mtu`
/// octets each (header included). A frame that fits is returned whole.
pub fn fragment(frame: &Bytes, mtu: usize) -> Result<Vec<Bytes>, FragmentError> {
    if frame.len() <= mtu {
        return Ok(vec![frame.clone()]);
    }
    if mtu <= HEADER_LEN {
        return Err(FragmentError::MtuTooSmall { mtu });
    }
    let header = Header::parse(frame).map_err(|_| FragmentError::Malformed)?;
    let payload = &frame[HEADER_LEN..];
    let chunk = mtu - HEADER_LEN;
    let count = payload.len().div_ceil(chunk);
    if count > MAX_FRAGMENTS {
        return Err(FragmentError::TooManyFragments {
            len: frame.len(),
            mtu,
        });
    }
    let mut out = Vec::with_capacity(count);
    for (i, part) in payload.chunks(chunk).enumerate() {
        let mut h = header;
        h.frag_no = i as u8;
        h.more_frag = i + 1 < count;
        h.payload_len = part.len() as u16;
        let mut b = BytesMut::with_capacity(HEADER_LEN + part.len());
        h.emit(&mut b);
        b.put_slice(part);
        out.push(b.freeze());
    }
    Ok(out)
}

/// Why a frame could not be fragmented or a fragment was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FragmentError {
    #[error("MTU of {mtu} octets leaves no room for a payload")]
    MtuTooSmall { mtu: usize },
    #[error("a frame of {len} octets needs more than 128 fragments of {mtu} octets")]
    TooManyFragments { len: usize, mtu: usize },
    #[error("not a valid MIH frame")]
    Malformed,
    #[error("fragment number {frag_no} repeated with different content")]
    Conflicting { frag_no: u8 },
    #[error("fragment {frag_no} lies beyond the last fragment {last}")]
    BeyondLast { frag_no: u8, last: u8 },
    #[error("reassembled message would exceed {max} octets")]
    TooLarge { max: usize },
    #[error("reassembly table full ({max} messages in progress)")]
    TableFull { max: usize },
    #[error("reassembly memory full ({max} octets buffered)")]
    MemoryFull { max: usize },
    #[error("reassembly share of {ip} used up ({max_messages} messages or {max_bytes} octets)")]
    SourceFull {
        ip: IpAddr,
        max_messages: usize,
        max_bytes: usize,
    },
}

/// Limits of a [`Reassembler`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReassemblyLimits {
    /// Messages being reassembled at once.
    pub max_messages: usize,
    /// Octets buffered across all messages.
    pub max_bytes: usize,
    /// Messages being reassembled at once from one source IP address (a
    /// sender's ports share it), so that one sender cannot take the table.
    pub max_messages_per_source: usize,
    /// Octets buffered for one source IP address.
    pub max_bytes_per_source: usize,
    /// Time allowed from the first fragment to the last.
    pub timeout: Duration,
}

impl Default for ReassemblyLimits {
    fn default() -> Self {
        ReassemblyLimits {
            max_messages: 64,
            max_bytes: 1 << 20,
            max_messages_per_source: 16,
            max_bytes_per_source: 1 << 18,
            timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    from: Endpoint,
    mid: Mid,
    tid: u16,
}

#[derive(Debug)]
struct Partial {
    parts: Vec<Option<Bytes>>,
    /// Fragment number of the last fragment (M = 0), once seen.
    last: Option<u8>,
    bytes: usize,
    header: Header,
    deadline: Instant,
}

/// Rebuilds fragmented frames, within fixed memory.
#[derive(Debug)]
pub struct Reassembler {
    limits: ReassemblyLimits,
    partials: HashMap<Key, Partial>,
    bytes: usize,
    /// Messages dropped because they did not complete in time.
    pub timed_out: u64,
}

impl Reassembler {
    pub fn new(limits: ReassemblyLimits) -> Reassembler {
        Reassembler {
            limits,
            partials: HashMap::new(),
            bytes: 0,
            timed_out: 0,
        }
    }

    /// Messages currently being reassembled.
    pub fn in_progress(&self) -> usize {
        self.partials.len()
    }
    /// Octets currently buffered.
    pub fn buffered_bytes(&self) -> usize {
        self.bytes
    }

    /// Add one fragment (a frame whose M bit is set or whose FN is not 0).
    /// Returns the whole frame once every fragment is in.
    pub fn push(
        &mut self,
        now: Instant,
        from: Endpoint,
        fragment: &Frame,
    ) -> Result<Option<Bytes>, FragmentError> {
        self.expire(now);
        let header = fragment.header();
        let key = Key {
            from,
            mid: header.mid,
            tid: header.tid,
        };
        let frag_no = header.frag_no;
        let data = fragment.payload_bytes();
        // The largest message a frame header can describe.
        let max_payload = usize::from(u16::MAX);
        let ip = canon(from.addr().ip());
        let (source_messages, source_bytes) = self
            .partials
            .iter()
            .filter(|(k, _)| canon(k.from.addr().ip()) == ip)
            .fold((0, 0), |(m, b), (_, p)| (m + 1, b + p.bytes));
        let source_full = || FragmentError::SourceFull {
            ip,
            max_messages: self.limits.max_messages_per_source,
            max_bytes: self.limits.max_bytes_per_source,
        };
        if !self.partials.contains_key(&key) {
            if self.partials.len() >= self.limits.max_messages {
                return Err(FragmentError::TableFull {
                    max: self.limits.max_messages,
                });
            }
            if source_messages >= self.limits.max_messages_per_source {
                return Err(source_full());
            }
            self.partials.insert(
                key,
                Partial {
                    parts: Vec::new(),
                    last: None,
                    bytes: 0,
                    header,
                    deadline: now + self.limits.timeout,
                },
            );
        }
        let Some(p) = self.partials.get_mut(&key) else {
            return Ok(None);
        };
        let idx = usize::from(frag_no);
        if let Some(Some(prev)) = p.parts.get(idx) {
            // A duplicate (e.g. a retransmission): harmless if identical.
            return if prev == &data {
                Ok(None)
            } else {
                let e = FragmentError::Conflicting { frag_no };
                self.remove(&key);
                Err(e)
            };
        }
        if let Some(last) = p.last {
            if frag_no > last {
                self.remove(&key);
                return Err(FragmentError::BeyondLast { frag_no, last });
            }
        }
        if !header.more_frag {
            if let Some(max_seen) = p.parts.len().checked_sub(1) {
                if max_seen > idx && p.parts[idx + 1..].iter().any(Option::is_some) {
                    self.remove(&key);
                    return Err(FragmentError::BeyondLast {
                        frag_no: max_seen as u8,
                        last: frag_no,
                    });
                }
            }
            p.last = Some(frag_no);
        }
        if p.bytes + data.len() > max_payload {
            self.remove(&key);
            return Err(FragmentError::TooLarge { max: max_payload });
        }
        if self.bytes + data.len() > self.limits.max_bytes {
            self.remove(&key);
            return Err(FragmentError::MemoryFull {
                max: self.limits.max_bytes,
            });
        }
        if source_bytes + data.len() > self.limits.max_bytes_per_source {
            let e = source_full();
            self.remove(&key);
            return Err(e);
        }
        if p.parts.len() <= idx {
            p.parts.resize(idx + 1, None);
        }
        p.bytes += data.len();
        self.bytes += data.len();
        if header.ack_req {
            p.header.ack_req = true;
        }
        p.parts[idx] = Some(data);
        let complete = p.last.is_some_and(|l| {
            p.parts.len() == usize::from(l) + 1 && p.parts.iter().all(Option::is_some)
        });
        if !complete {
            return Ok(None);
        }
        let Some(p) = self.partials.remove(&key) else {
            return Ok(None);
        };
        self.bytes -= p.bytes;
        let mut h = p.header;
        h.more_frag = false;
        h.frag_no = 0;
        h.payload_len = p.bytes as u16;
        let mut out = BytesMut::with_capacity(HEADER_LEN + p.bytes);
        h.emit(&mut out);
        for part in p.parts.into_iter().flatten() {
            out.put_slice(&part);
        }
        Ok(Some(out.freeze()))
    }

    fn remove(&mut self, key: &Key) {
        if let Some(p) = self.partials.remove(key) {
            self.bytes -= p.bytes;
        }
    }

    /// Drop messages whose time is up.
    pub fn expire(&mut self, now: Instant) {
        let before = self.partials.len();
        let mut freed = 0;
        self.partials.retain(|_, p| {
            let keep = p.deadline > now;
            if !keep {
                freed += p.bytes;
            }
            keep
        });
        self.bytes -= freed;
        self.timed_out += (before - self.partials.len()) as u64;
    }

    /// The earliest reassembly deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.partials.values().map(|p| p.deadline).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::header::build_frame;
    use crate::wire::{Opcode, ServiceId};
    use std::net::SocketAddr;

    fn big_frame(payload_len: usize) -> Bytes {
        // A vendor-specific TLV (type 100) filling the payload, after the IDs.
        let mut p = BytesMut::new();
        p.put_slice(&[1, 2, 1, b'a', 2, 2, 1, b'b']);
        let value_len = payload_len - p.len() - 4;
        p.put_u8(100);
        crate::wire::encode_length(value_len, &mut p);
        while p.len() < payload_len {
            p.put_u8((p.len() % 251) as u8);
        }
        let mut h = Header::new(Mid::new(ServiceId::COMMAND, Opcode::Request, 9), 7);
        h.ack_req = true;
        build_frame(h, &p).unwrap()
    }

    fn ep() -> Endpoint {
        Endpoint::Udp("127.0.0.1:4551".parse().unwrap())
    }

    #[test]
    fn small_frames_are_not_fragmented() {
        let f = big_frame(100);
        assert_eq!(fragment(&f, 1400).unwrap(), vec![f]);
    }

    #[test]
    fn fragments_carry_fn_and_m_and_reassemble_in_any_order() {
        let f = big_frame(5000);
        Frame::parse(f.clone()).unwrap();
        let frags = fragment(&f, 1000).unwrap();
        assert_eq!(frags.len(), 6);
        for (i, fr) in frags.iter().enumerate() {
            let fr = Frame::parse(fr.clone()).unwrap();
            assert_eq!(fr.frag_no() as usize, i);
            assert_eq!(fr.more_frag(), i < 5);
            assert_eq!(fr.tid(), 7);
            assert!(fr.as_bytes().len() <= 1000);
        }
        // Reverse order, with a duplicate in the middle.
        let now = Instant::now();
        let mut r = Reassembler::new(ReassemblyLimits::default());
        let mut order: Vec<usize> = (0..6).rev().collect();
        order.insert(3, 4);
        let mut out = None;
        for i in order {
            let got = r
                .push(now, ep(), &Frame::parse(frags[i].clone()).unwrap())
                .unwrap();
            if got.is_some() {
                out = got;
            }
        }
        assert_eq!(out.unwrap(), f);
        assert_eq!(r.in_progress(), 0);
        assert_eq!(r.buffered_bytes(), 0);
    }

    #[test]
    fn incomplete_messages_time_out_and_free_memory() {
        let f = big_frame(3000);
        let frags = fragment(&f, 1000).unwrap();
        let now = Instant::now();
        let mut r = Reassembler::new(ReassemblyLimits::default());
        r.push(now, ep(), &Frame::parse(frags[0].clone()).unwrap())
            .unwrap();
        assert_eq!(r.in_progress(), 1);
        assert!(r.buffered_bytes() > 0);
        assert_eq!(r.next_deadline(), Some(now + Duration::from_secs(5)));
        r.expire(now + Duration::from_secs(5));
        assert_eq!(r.in_progress(), 0);
        assert_eq!(r.buffered_bytes(), 0);
        assert_eq!(r.timed_out, 1);
        // The late rest of the message starts over and never completes alone.
        let later = now + Duration::from_secs(6);
        for fr in &frags[1..] {
            assert_eq!(
                r.push(later, ep(), &Frame::parse(fr.clone()).unwrap()),
                Ok(None)
            );
        }
    }

    #[test]
    fn limits_are_enforced() {
        let limits = ReassemblyLimits {
            max_messages: 2,
            max_bytes: 2500,
            max_messages_per_source: 2,
            max_bytes_per_source: 2500,
            timeout: Duration::from_secs(5),
        };
        let now = Instant::now();
        let mut r = Reassembler::new(limits);
        let first = |tid: u16| {
            let mut h = Header::new(Mid(0x3409), tid);
            h.more_frag = true;
            Frame::parse(build_frame(h, &[0u8; 1000]).unwrap()).unwrap()
        };
        r.push(now, ep(), &first(1)).unwrap();
        r.push(now, ep(), &first(2)).unwrap();
        assert_eq!(
            r.push(now, ep(), &first(3)),
            Err(FragmentError::TableFull { max: 2 })
        );
        let mut h = Header::new(Mid(0x3409), 1);
        h.more_frag = true;
        h.frag_no = 1;
        let second = Frame::parse(build_frame(h, &[0u8; 1000]).unwrap()).unwrap();
        assert_eq!(
            r.push(now, ep(), &second),
            Err(FragmentError::MemoryFull { max: 2500 })
        );
        // The offending message was dropped and its memory freed.
        assert_eq!(r.in_progress(), 1);
        assert_eq!(r.buffered_bytes(), 1000);
    }

    #[test]
    fn one_source_gets_only_its_share() {
        let limits = ReassemblyLimits {
            max_messages: 8,
            max_bytes: 8000,
            max_messages_per_source: 2,
            max_bytes_per_source: 2500,
            timeout: Duration::from_secs(5),
        };
        let now = Instant::now();
        let mut r = Reassembler::new(limits);
        let first = |tid: u16, len: usize| {
            let mut h = Header::new(Mid(0x3409), tid);
            h.more_frag = true;
            Frame::parse(build_frame(h, &vec![0u8; len]).unwrap()).unwrap()
        };
        let port = |p: u16| Endpoint::Udp(SocketAddr::from(([192, 0, 2, 1], p)));
        r.push(now, port(1), &first(1, 1000)).unwrap();
        // Another port of the same address shares the share.
        r.push(now, port(2), &first(2, 1000)).unwrap();
        assert!(matches!(
            r.push(now, port(3), &first(3, 10)),
            Err(FragmentError::SourceFull {
                max_messages: 2,
                ..
            })
        ));
        // Octets: a second fragment that would pass 2500 drops its message.
        let mut h = Header::new(Mid(0x3409), 1);
        h.more_frag = true;
        h.frag_no = 1;
        let more = Frame::parse(build_frame(h, &[0u8; 1000]).unwrap()).unwrap();
        assert!(matches!(
            r.push(now, port(1), &more),
            Err(FragmentError::SourceFull {
                max_bytes: 2500,
                ..
            })
        ));
        assert_eq!((r.in_progress(), r.buffered_bytes()), (1, 1000));
        // Other sources are not affected.
        let other = Endpoint::Udp("198.51.100.1:4551".parse().unwrap());
        r.push(now, other, &first(1, 1000)).unwrap();
        r.push(now, other, &first(2, 1000)).unwrap();
        assert_eq!(r.in_progress(), 3);
    }

    #[test]
    fn conflicting_and_out_of_range_fragments_are_refused() {
        let now = Instant::now();
        let mut r = Reassembler::new(ReassemblyLimits::default());
        let frag = |no: u8, more: bool, fill: u8| {
            let mut h = Header::new(Mid(0x3409), 9);
            h.more_frag = more;
            h.frag_no = no;
            Frame::parse(build_frame(h, &[fill; 10]).unwrap()).unwrap()
        };
        r.push(now, ep(), &frag(0, true, 1)).unwrap();
        assert_eq!(
            r.push(now, ep(), &frag(0, true, 2)),
            Err(FragmentError::Conflicting { frag_no: 0 })
        );
        r.push(now, ep(), &frag(1, false, 1)).unwrap();
        assert_eq!(
            r.push(now, ep(), &frag(2, true, 1)),
            Err(FragmentError::BeyondLast {
                frag_no: 2,
                last: 1
            })
        );
        assert_eq!(r.buffered_bytes(), 0);
    }

    #[test]
    fn too_many_fragments() {
        let f = big_frame(5000);
        assert_eq!(
            fragment(&f, 20),
            Err(FragmentError::TooManyFragments { len: 5008, mtu: 20 })
        );
        assert_eq!(fragment(&f, 8), Err(FragmentError::MtuTooSmall { mtu: 8 }));
    }
}
