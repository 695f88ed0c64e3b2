//! The wire protocol of `example-session-service` (an interactive
//! request/response service over TCP with a per-UE state) and a client-side
//! checker, shared by the service's tests and the handover demo's client.
//!
//! One connection carries requests (client → server) and responses
//! (server → client) in order; the client may pipeline. All integers are
//! big-endian.
//!
//! * Request: `"RQ" | seq u32 | write_off u32 | write_len u16 | write data
//!   (write_len) | read_off u32 | read_len u16 | pad_len u16 | pad
//!   (pad_len)`, with `write_len + pad_len <= 65536` ([`MAX_PAYLOAD`]) and
//!   both ranges `[write_off, write_off + write_len)` and `[read_off,
//!   read_off + read_len)` within the UE's state. Anything else is
//!   malformed (the server closes the connection).
//! * The server writes the data into the UE's state, then reads `read_len`
//!   octets at `read_off` (after the write).
//! * Response: `"RS" | seq u32 | status u8 | read data (read_len) |
//!   pad_len u16 | pad`, the pad being the request's pad reversed. Status
//!   [`STATUS_OK`], or [`STATUS_SEQ_MISMATCH`] when `seq` is not the one the
//!   connection expects next (the request is processed all the same and
//!   the next expected seq becomes `seq + 1`): a client sees it when a
//!   connection's context did not move with it.
//!
//! ```
//! use testbed::session::SessionChecker;
//! // The server's side, for the example: state of 64 octets, all zero.
//! let mut state = vec![0u8; 64];
//! let mut c = SessionChecker::new(7, 64, 0..64, 16);
//! let mut wire = Vec::new();
//! c.next_request(&mut wire);
//! c.next_request(&mut wire);
//! let mut answers = Vec::new();
//! let mut at = 0;
//! while let Some((rq, n)) = testbed::session::parse_request(&wire[at..], 64).unwrap() {
//!     at += n;
//!     let w = rq.write_off as usize;
//!     state[w..w + rq.write.len()].copy_from_slice(&rq.write);
//!     let r = rq.read_off as usize;
//!     let rs = testbed::session::Response {
//!         seq: rq.seq,
//!         status: 0,
//!         read: state[r..r + rq.read_len as usize].to_vec(),
//!         pad: rq.pad.iter().rev().copied().collect(),
//!     };
//!     rs.encode(&mut answers);
//! }
//! assert_eq!(c.on_bytes(&answers), Ok(2));
//! assert_eq!((c.outstanding(), c.answered()), (0, 2));
//! ```

use std::collections::VecDeque;
use std::ops::Range;

use crate::content::splitmix64;

pub const REQUEST_MAGIC: [u8; 2] = *b"RQ";
pub const RESPONSE_MAGIC: [u8; 2] = *b"RS";

/// Most octets of write data and pad together in one request.
pub const MAX_PAYLOAD: usize = 64 * 1024;
/// A request without its write data and pad.
pub const REQUEST_HEAD_LEN: usize = 2 + 4 + 4 + 2 + 4 + 2 + 2;
/// The longest valid request.
pub const MAX_REQUEST_LEN: usize = REQUEST_HEAD_LEN + MAX_PAYLOAD;
/// A response without its read data and pad.
pub const RESPONSE_HEAD_LEN: usize = 2 + 4 + 1 + 2;
/// The longest response (read data and pad of 65535 octets each).
pub const MAX_RESPONSE_LEN: usize = RESPONSE_HEAD_LEN + 2 * u16::MAX as usize;
/// Largest per-UE state the service keeps.
pub const MAX_STATE_BYTES: u32 = 16 * 1024 * 1024;

/// The request was answered in order.
pub const STATUS_OK: u8 = 0;
/// The request's seq was not the one expected next.
pub const STATUS_SEQ_MISMATCH: u8 = 1;

/// Longest write and read the checker asks for.
const CHECKER_MAX_IO: u32 = 4096;

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Request {
    pub seq: u32,
    pub write_off: u32,
    /// At most 65535 octets (more are not encoded).
    pub write: Vec<u8>,
    pub read_off: u32,
    pub read_len: u16,
    /// At most 65535 octets (more are not encoded).
    pub pad: Vec<u8>,
}

fn clip(v: &[u8]) -> &[u8] {
    &v[..v.len().min(u16::MAX as usize)]
}

impl Request {
    /// Append the request's octets to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let (write, pad) = (clip(&self.write), clip(&self.pad));
        out.extend_from_slice(&REQUEST_MAGIC);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.write_off.to_be_bytes());
        out.extend_from_slice(&(write.len() as u16).to_be_bytes());
        out.extend_from_slice(write);
        out.extend_from_slice(&self.read_off.to_be_bytes());
        out.extend_from_slice(&self.read_len.to_be_bytes());
        out.extend_from_slice(&(pad.len() as u16).to_be_bytes());
        out.extend_from_slice(pad);
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn check_magic(buf: &[u8], magic: [u8; 2], what: &str) -> Result<(), String> {
    let n = buf.len().min(2);
    if buf[..n] != magic[..n] {
        return Err(format!("bad {what} magic {:02x?}", &buf[..n]));
    }
    Ok(())
}

fn check_range(what: &str, off: u32, len: usize, state_bytes: u32) -> Result<(), String> {
    if u64::from(off) + len as u64 > u64::from(state_bytes) {
        return Err(format!(
            "{what} {off}+{len} beyond the state of {state_bytes} octets"
        ));
    }
    Ok(())
}

/// Incremental request parser for the server: Ok(Some((req, consumed))) /
/// Ok(None) need more / Err(String) malformed. `buf` starts at a request;
/// everything is checked (magic, lengths, ranges within `state_bytes`) as
/// soon as the octets that decide it are there, before anything is
/// allocated.
pub fn parse_request(buf: &[u8], state_bytes: u32) -> Result<Option<(Request, usize)>, String> {
    check_magic(buf, REQUEST_MAGIC, "request")?;
    if buf.len() < 12 {
        return Ok(None);
    }
    let write_off = be32(buf, 6);
    let write_len = be16(buf, 10) as usize;
    check_range("write", write_off, write_len, state_bytes)?;
    let tail = 12 + write_len;
    if buf.len() < tail + 8 {
        return Ok(None);
    }
    let read_off = be32(buf, tail);
    let read_len = be16(buf, tail + 4);
    let pad_len = be16(buf, tail + 6) as usize;
    check_range("read", read_off, read_len as usize, state_bytes)?;
    if write_len + pad_len > MAX_PAYLOAD {
        return Err(format!(
            "write {write_len} and pad {pad_len} octets: more than {MAX_PAYLOAD}"
        ));
    }
    let total = tail + 8 + pad_len;
    if buf.len() < total {
        return Ok(None);
    }
    let req = Request {
        seq: be32(buf, 2),
        write_off,
        write: buf[12..tail].to_vec(),
        read_off,
        read_len,
        pad: buf[tail + 8..total].to_vec(),
    };
    Ok(Some((req, total)))
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Response {
    pub seq: u32,
    /// [`STATUS_OK`] or [`STATUS_SEQ_MISMATCH`].
    pub status: u8,
    /// At most 65535 octets (more are not encoded).
    pub read: Vec<u8>,
    /// The octets on the wire: the request's pad reversed. At most 65535
    /// octets (more are not encoded).
    pub pad: Vec<u8>,
}

impl Response {
    /// Append the response's octets to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let (read, pad) = (clip(&self.read), clip(&self.pad));
        out.extend_from_slice(&RESPONSE_MAGIC);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.push(self.status);
        out.extend_from_slice(read);
        out.extend_from_slice(&(pad.len() as u16).to_be_bytes());
        out.extend_from_slice(pad);
    }
}

/// Incremental response parser for the client; `read_len`/`pad_len` of the
/// matching request are needed (a response whose pad length differs is
/// malformed).
pub fn parse_response(
    buf: &[u8],
    read_len: u16,
    pad_len: u16,
) -> Result<Option<(Response, usize)>, String> {
    check_magic(buf, RESPONSE_MAGIC, "response")?;
    let tail = 7 + read_len as usize;
    if buf.len() < tail + 2 {
        return Ok(None);
    }
    let got = be16(buf, tail);
    if got != pad_len {
        return Err(format!("response pad of {got} octets, {pad_len} expected"));
    }
    let total = tail + 2 + pad_len as usize;
    if buf.len() < total {
        return Ok(None);
    }
    let rs = Response {
        seq: be32(buf, 2),
        status: buf[6],
        read: buf[7..tail].to_vec(),
        pad: buf[tail + 2..total].to_vec(),
    };
    Ok(Some((rs, total)))
}

/// A request sent and not answered yet: what its response must hold.
#[derive(Debug)]
struct Expected {
    seq: u32,
    read: Vec<u8>,
    /// The pad as it must come back (reversed).
    pad: Vec<u8>,
}

/// Client-side checker for one connection: generates deterministic requests
/// (from a seed) touching only the byte range [region.start, region.end) of
/// the UE's state (so several connections of one UE can share the state
/// without races), mirrors that range of the state, and checks each
/// response (seq, status, read data against the mirror, reversed pad).
///
/// The mirror starts all zero, as a UE's state does when it first connects.
/// The region is clipped to `state_bytes`; with an empty region (or
/// `state_bytes` 0) the requests carry only pads (pure echo).
#[derive(Debug)]
pub struct SessionChecker {
    rng: u64,
    region: Range<u32>,
    max_pad: u16,
    mirror: Vec<u8>,
    next_seq: u32,
    outstanding: VecDeque<Expected>,
    rx: Vec<u8>,
    answered: u64,
    failed: Option<String>,
}

impl SessionChecker {
    pub fn new(seed: u64, state_bytes: u32, region: Range<u32>, max_pad: u16) -> SessionChecker {
        let start = region.start.min(state_bytes);
        let end = region.end.clamp(start, state_bytes);
        SessionChecker {
            rng: splitmix64(seed),
            region: start..end,
            max_pad,
            mirror: vec![0; (end - start) as usize],
            next_seq: 0,
            outstanding: VecDeque::new(),
            rx: Vec::new(),
            answered: 0,
            failed: None,
        }
    }

    fn random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        splitmix64(self.rng)
    }

    /// Uniform in `0..=max`.
    fn upto(&mut self, max: u32) -> u32 {
        (self.random() % (u64::from(max) + 1)) as u32
    }

    /// A range of at most [`CHECKER_MAX_IO`] octets inside the region, as
    /// (offset in the state, length).
    fn pick(&mut self) -> (u32, usize) {
        let size = self.region.end - self.region.start;
        let len = self.upto(size.min(CHECKER_MAX_IO));
        let off = self.region.start + self.upto(size - len);
        (off, len as usize)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            let r = self.random();
            v.extend_from_slice(&r.to_le_bytes());
        }
        v.truncate(n);
        v
    }

    /// Append the next request's octets to `out` (remembers it as
    /// outstanding).
    pub fn next_request(&mut self, out: &mut Vec<u8>) {
        let (write_off, write_len) = self.pick();
        let write = self.bytes(write_len);
        let at = (write_off - self.region.start) as usize;
        self.mirror[at..at + write_len].copy_from_slice(&write);
        let (read_off, read_len) = self.pick();
        let at = (read_off - self.region.start) as usize;
        let read = self.mirror[at..at + read_len].to_vec();
        let pad_max = u32::from(self.max_pad).min((MAX_PAYLOAD - write_len) as u32);
        let pad_len = self.upto(pad_max) as usize;
        let pad = self.bytes(pad_len);
        let req = Request {
            seq: self.next_seq,
            write_off,
            write,
            read_off,
            read_len: read_len as u16,
            pad,
        };
        req.encode(out);
        self.outstanding.push_back(Expected {
            seq: req.seq,
            read,
            pad: req.pad.iter().rev().copied().collect(),
        });
        self.next_seq = self.next_seq.wrapping_add(1);
    }

    /// Feed received octets; returns the number of responses completed and
    /// checked, or Err(description) on the first mismatch (and on every
    /// call after it).
    pub fn on_bytes(&mut self, data: &[u8]) -> Result<usize, String> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        self.rx.extend_from_slice(data);
        let r = self.check_received();
        if let Err(e) = &r {
            self.failed = Some(e.clone());
        }
        r
    }

    fn check_received(&mut self) -> Result<usize, String> {
        let mut at = 0;
        let mut done = 0;
        while at < self.rx.len() {
            let Some(want) = self.outstanding.front() else {
                return Err(format!(
                    "{} octets received with no request outstanding (after {} answers)",
                    self.rx.len() - at,
                    self.answered
                ));
            };
            let parsed = parse_response(
                &self.rx[at..],
                want.read.len() as u16,
                want.pad.len() as u16,
            )
            .map_err(|e| format!("response to seq {}: {e}", want.seq))?;
            let Some((rs, n)) = parsed else { break };
            if rs.seq != want.seq {
                return Err(format!("response seq {}, {} expected", rs.seq, want.seq));
            }
            if rs.status != STATUS_OK {
                return Err(format!("response to seq {}: status {}", rs.seq, rs.status));
            }
            if rs.read != want.read {
                let i = rs
                    .read
                    .iter()
                    .zip(&want.read)
                    .take_while(|(a, b)| a == b)
                    .count();
                return Err(format!(
                    "response to seq {}: read data differs from the state at octet {i} of {}",
                    rs.seq,
                    want.read.len()
                ));
            }
            if rs.pad != want.pad {
                return Err(format!(
                    "response to seq {}: pad not the request's reversed",
                    rs.seq
                ));
            }
            self.outstanding.pop_front();
            self.answered += 1;
            done += 1;
            at += n;
        }
        self.rx.drain(..at);
        Ok(done)
    }

    /// Requests sent and not yet answered.
    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    /// Responses checked so far.
    pub fn answered(&self) -> u64 {
        self.answered
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The server's processing of one request, for the tests.
    fn serve(state: &mut [u8], rq: &Request, status: u8) -> Response {
        let w = rq.write_off as usize;
        state[w..w + rq.write.len()].copy_from_slice(&rq.write);
        let r = rq.read_off as usize;
        Response {
            seq: rq.seq,
            status,
            read: state[r..r + rq.read_len as usize].to_vec(),
            pad: rq.pad.iter().rev().copied().collect(),
        }
    }

    fn request() -> impl Strategy<Value = (Request, u32)> {
        (
            any::<u32>(),
            0u32..5000,
            proptest::collection::vec(any::<u8>(), 0..300),
            0u32..5000,
            0u16..300,
            proptest::collection::vec(any::<u8>(), 0..300),
        )
            .prop_map(|(seq, write_off, write, read_off, read_len, pad)| {
                let state = (write_off + write.len() as u32).max(read_off + u32::from(read_len));
                let rq = Request {
                    seq,
                    write_off,
                    write,
                    read_off,
                    read_len,
                    pad,
                };
                (rq, state)
            })
    }

    proptest! {
        #[test]
        fn requests_round_trip_at_every_split((rq, state) in request()) {
            let mut b = Vec::new();
            rq.encode(&mut b);
            b.extend_from_slice(b"RQ"); // the start of the next one
            let n = b.len() - 2;
            prop_assert_eq!(parse_request(&b, state), Ok(Some((rq.clone(), n))));
            for cut in 0..n {
                prop_assert_eq!(parse_request(&b[..cut], state), Ok(None));
            }
            // one octet of state less: one of the ranges is beyond it
            if state > 0 && (!rq.write.is_empty() || rq.read_len > 0) {
                prop_assert!(parse_request(&b, state - 1).is_err());
            }
        }

        #[test]
        fn responses_round_trip_at_every_split(
            seq in any::<u32>(),
            status in any::<u8>(),
            read in proptest::collection::vec(any::<u8>(), 0..300),
            pad in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let rs = Response { seq, status, read, pad };
            let (rl, pl) = (rs.read.len() as u16, rs.pad.len() as u16);
            let mut b = Vec::new();
            rs.encode(&mut b);
            let n = b.len();
            b.extend_from_slice(b"RS");
            prop_assert_eq!(parse_response(&b, rl, pl), Ok(Some((rs.clone(), n))));
            for cut in 0..n {
                prop_assert_eq!(parse_response(&b[..cut], rl, pl), Ok(None));
            }
            prop_assert!(parse_response(&b, rl, pl.wrapping_add(1)).is_err());
        }

        #[test]
        fn parsers_never_panic(
            b in proptest::collection::vec(any::<u8>(), 0..200),
            state in any::<u32>(),
            rl in any::<u16>(),
            pl in any::<u16>(),
        ) {
            let _ = parse_request(&b, state);
            let _ = parse_response(&b, rl, pl);
            let mut rq = b"RQ".to_vec();
            rq.extend_from_slice(&b);
            if let Ok(Some((r, n))) = parse_request(&rq, state) {
                prop_assert!(n <= rq.len() && n <= MAX_REQUEST_LEN);
                prop_assert!(r.write.len() + r.pad.len() <= MAX_PAYLOAD);
            }
            let mut rs = b"RS".to_vec();
            rs.extend_from_slice(&b);
            let _ = parse_response(&rs, rl, pl);
        }

        /// Responses cut anywhere and fed in pieces are all checked.
        #[test]
        fn checker_accepts_the_server_in_any_pieces(
            seed in any::<u64>(),
            cuts in proptest::collection::vec(1usize..5000, 1..20),
        ) {
            let mut state = vec![0u8; 10_000];
            let mut c = SessionChecker::new(seed, 10_000, 2000..9000, 500);
            let mut wire = Vec::new();
            for _ in 0..20 {
                c.next_request(&mut wire);
            }
            prop_assert_eq!(c.outstanding(), 20);
            let mut answers = Vec::new();
            let mut at = 0;
            while let Some((rq, n)) = parse_request(&wire[at..], 10_000).unwrap() {
                prop_assert!(rq.write_off >= 2000 && rq.write_off as usize + rq.write.len() <= 9000);
                prop_assert!(rq.read_off >= 2000 && rq.read_off + u32::from(rq.read_len) <= 9000);
                serve(&mut state, &rq, STATUS_OK).encode(&mut answers);
                at += n;
            }
            prop_assert_eq!(at, wire.len());
            prop_assert!(state[..2000].iter().chain(&state[9000..]).all(|b| *b == 0));
            let mut total = 0;
            let mut rest = &answers[..];
            for cut in cuts {
                let (a, b) = rest.split_at(cut.min(rest.len()));
                total += c.on_bytes(a).unwrap();
                rest = b;
            }
            total += c.on_bytes(rest).unwrap();
            prop_assert_eq!(total, 20);
            prop_assert_eq!((c.outstanding(), c.answered()), (0, 20));
        }
    }

    #[test]
    fn malformed_requests() {
        let good = Request {
            seq: 1,
            write_off: 10,
            write: vec![1; 10],
            read_off: 0,
            read_len: 20,
            pad: vec![9; 3],
        };
        let mut b = Vec::new();
        good.encode(&mut b);
        assert!(parse_request(&b, 20).unwrap().is_some());
        // bad magic, at once
        assert!(parse_request(b"X", 20).is_err());
        assert!(parse_request(b"RX", 20).is_err());
        let mut bad = b.clone();
        bad[1] = b'S';
        assert!(parse_request(&bad, 20).is_err());
        // the write beyond the state: known after 12 octets
        assert!(parse_request(&b[..12], 19).is_err());
        // the read beyond the state
        let mut r = good.clone();
        r.read_off = 1;
        let mut b2 = Vec::new();
        r.encode(&mut b2);
        assert!(parse_request(&b2, 20).is_err());
        // offsets near u32::MAX do not wrap
        let mut r = good.clone();
        r.write_off = u32::MAX;
        let mut b3 = Vec::new();
        r.encode(&mut b3);
        assert!(parse_request(&b3, u32::MAX).is_err());
        // write and pad beyond the payload cap
        let big = Request {
            write: vec![0; 40_000],
            pad: vec![0; 30_000],
            write_off: 0,
            ..Request::default()
        };
        let mut b4 = Vec::new();
        big.encode(&mut b4);
        assert!(parse_request(&b4, 40_000).is_err());
        // state 0: pads only
        let echo = Request {
            pad: vec![5; 100],
            ..Request::default()
        };
        let mut b5 = Vec::new();
        echo.encode(&mut b5);
        assert_eq!(parse_request(&b5, 0).unwrap().unwrap().0, echo);
        assert!(parse_request(&b, 0).is_err());
    }

    #[test]
    fn checker_catches_every_kind_of_mismatch() {
        let run = |damage: &dyn Fn(&mut Response)| {
            let mut state = vec![0u8; 5000];
            let mut c = SessionChecker::new(3, 5000, 0..5000, 100);
            let mut wire = Vec::new();
            c.next_request(&mut wire);
            c.next_request(&mut wire);
            let (rq, n) = parse_request(&wire, 5000).unwrap().unwrap();
            let mut answers = Vec::new();
            serve(&mut state, &rq, STATUS_OK).encode(&mut answers);
            let (rq, _) = parse_request(&wire[n..], 5000).unwrap().unwrap();
            let mut rs = serve(&mut state, &rq, STATUS_OK);
            damage(&mut rs);
            rs.encode(&mut answers);
            c.on_bytes(&answers)
        };
        assert_eq!(run(&|_| {}), Ok(2));
        assert!(run(&|r| r.seq += 1).is_err());
        assert!(run(&|r| r.status = STATUS_SEQ_MISMATCH).is_err());
        assert!(run(&|r| {
            if let Some(b) = r.read.first_mut() {
                *b ^= 1
            } else {
                r.status = 2
            }
        })
        .is_err());
        assert!(run(&|r| r.pad.reverse()).is_err() || run(&|r| r.pad.push(0)).is_err());
        // octets nobody asked for
        let mut c = SessionChecker::new(1, 0, 0..0, 0);
        assert!(c.on_bytes(b"RS").is_err());
        assert!(c.on_bytes(b"").is_err(), "stays failed");
    }

    #[test]
    fn echo_only_without_state_and_a_large_state_exercised() {
        let mut c = SessionChecker::new(5, 0, 0..100, 300);
        let mut wire = Vec::new();
        for _ in 0..50 {
            c.next_request(&mut wire);
        }
        let mut at = 0;
        while let Some((rq, n)) = parse_request(&wire[at..], 0).unwrap() {
            assert!(rq.write.is_empty() && rq.read_len == 0);
            at += n;
        }
        assert_eq!(at, wire.len());
        // 1 MiB: writes spread over the whole region in a few thousand requests
        let mib = 1 << 20;
        let mut c = SessionChecker::new(6, mib, 0..mib, 0);
        let mut touched = vec![false; (mib / 4096) as usize];
        let mut wire = Vec::new();
        for _ in 0..3000 {
            wire.clear();
            c.next_request(&mut wire);
            let (rq, _) = parse_request(&wire, mib).unwrap().unwrap();
            for i in rq.write_off..rq.write_off + rq.write.len() as u32 {
                touched[(i / 4096) as usize] = true;
            }
        }
        assert!(touched.iter().filter(|t| **t).count() > touched.len() * 9 / 10);
    }
}
