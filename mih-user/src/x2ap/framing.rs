//! The TCP tap framing: each X2AP PDU preceded by its length as a u32, big-endian.
//!
//! ```text
//! +--------+--------+--------+--------+------------------------+
//! |   length (u32, network order)     |  X2AP PDU (length octets) ...
//! +--------+--------+--------+--------+------------------------+
//! ```
//!
//! A length of 0 or above [`MAX_PDU_LEN`] is a framing
//! error: the stream cannot be resynchronised and must be closed.

use super::pdu::MAX_PDU_LEN;

/// A broken length-prefixed stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// A record announced a length of zero.
    #[error("length prefix 0: an X2AP PDU is at least one octet")]
    Empty,
    /// A record announced more than the limit.
    #[error("length prefix {len} exceeds the {max}-octet limit")]
    TooLong {
        /// Announced length.
        len: u32,
        /// The limit.
        max: usize,
    },
}

/// Incremental decoder of the length-prefixed stream (sans-IO).
///
/// It buffers at most one record (4 + [`MAX_PDU_LEN`] octets)
/// beyond what [`LengthPrefixed::next_pdu`] has returned.
///
/// ```
/// use mih_user::x2ap::framing::LengthPrefixed;
/// let mut d = LengthPrefixed::new();
/// d.push(&[0, 0, 0, 2, 0xaa]);
/// assert_eq!(d.next_pdu(), Ok(None));          // incomplete
/// d.push(&[0xbb, 0, 0, 0, 1, 0xcc]);
/// assert_eq!(d.next_pdu(), Ok(Some(vec![0xaa, 0xbb])));
/// assert_eq!(d.next_pdu(), Ok(Some(vec![0xcc])));
/// assert_eq!(d.next_pdu(), Ok(None));
/// ```
#[derive(Debug, Default)]
pub struct LengthPrefixed {
    buf: Vec<u8>,
    start: usize,
    failed: Option<FramingError>,
}

impl LengthPrefixed {
    /// An empty decoder.
    pub fn new() -> LengthPrefixed {
        LengthPrefixed::default()
    }

    /// Append received octets. Call [`LengthPrefixed::next_pdu`] until it returns `Ok(None)`
    /// before pushing more, so that the buffer stays bounded.
    pub fn push(&mut self, data: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// How many octets a caller should read next at most, to keep the buffer
    /// within one record: the rest of the current record, or a length prefix.
    pub fn wanted(&self) -> usize {
        let avail = &self.buf[self.start..];
        if avail.len() < 4 {
            return 4 - avail.len();
        }
        let len = u32::from_be_bytes([avail[0], avail[1], avail[2], avail[3]]) as usize;
        (4 + len.min(MAX_PDU_LEN))
            .saturating_sub(avail.len())
            .max(1)
    }

    /// The next complete PDU, `Ok(None)` if more octets are needed, or the
    /// framing error (then and forever after).
    pub fn next_pdu(&mut self) -> Result<Option<Vec<u8>>, FramingError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let avail = &self.buf[self.start..];
        let Some(prefix) = avail.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
        let err = if len == 0 {
            Some(FramingError::Empty)
        } else if len as usize > MAX_PDU_LEN {
            Some(FramingError::TooLong {
                len,
                max: MAX_PDU_LEN,
            })
        } else {
            None
        };
        if let Some(e) = err {
            self.failed = Some(e);
            self.buf = Vec::new();
            self.start = 0;
            return Err(e);
        }
        let Some(pdu) = avail.get(4..4 + len as usize) else {
            return Ok(None);
        };
        let pdu = pdu.to_vec();
        self.start += 4 + len as usize;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        Ok(Some(pdu))
    }

    /// Octets buffered and not yet returned.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }
}

/// Prefix `pdu` with its length (for a tap sender, and tests).
pub fn encode(pdu: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + pdu.len());
    out.extend_from_slice(&(pdu.len() as u32).to_be_bytes());
    out.extend_from_slice(pdu);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_lengths_poison_the_stream() {
        let mut d = LengthPrefixed::new();
        d.push(&[0, 0, 0, 0]);
        assert_eq!(d.next_pdu(), Err(FramingError::Empty));
        d.push(&[0, 0, 0, 1, 1]);
        assert_eq!(d.next_pdu(), Err(FramingError::Empty));
        let mut d = LengthPrefixed::new();
        d.push(&[0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(d.next_pdu(), Err(FramingError::TooLong { .. })));
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn byte_at_a_time() {
        let stream: Vec<u8> = [encode(&[1, 2, 3]), encode(&[4])].concat();
        let mut d = LengthPrefixed::new();
        let mut out = Vec::new();
        for b in stream {
            assert!(d.wanted() >= 1);
            d.push(&[b]);
            while let Some(p) = d.next_pdu().unwrap() {
                out.push(p);
            }
        }
        assert_eq!(out, vec![vec![1, 2, 3], vec![4]]);
        assert_eq!(d.buffered(), 0);
    }
}
