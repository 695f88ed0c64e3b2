//! TLV framing: the IEEE 802.21 length rule, a borrowing TLV iterator, and the
//! [`Value`] trait with its [`Reader`].
//!
//! Length rule (clause 8.3.1 / Annex F): a length `n <= 128` is one octet
//! holding `n`; a larger length is one octet `0x80 | k` followed by `k`
//! big-endian octets holding `n - 128`. The same rule codes TLV lengths, LIST
//! element counts and OCTET_STRING lengths.

use bytes::{BufMut, Bytes, BytesMut};
use nom::bytes::complete::take;
use nom::Parser;

use super::error::{Error, ValueError};

/// Most extension octets a length may use (lengths up to 2^64 + 127).
pub const MAX_LENGTH_OCTETS: usize = 8;

/// Decode a length at the start of `input`: returns `(length, octets used)`.
///
/// Accepts non-minimal encodings (any `k` from 1 to 8), as Wireshark does.
///
/// ```
/// use mihf::wire::decode_length;
/// assert_eq!(decode_length(&[0x80]), Ok((128, 1)));
/// assert_eq!(decode_length(&[0x81, 0x01]), Ok((129, 2)));
/// assert_eq!(decode_length(&[0x82, 0x03, 0x68]), Ok((1000, 3)));
/// ```
pub fn decode_length(input: &[u8]) -> Result<(usize, usize), ValueError> {
    decode_length_of(input, "length")
}

pub(crate) fn decode_length_of(
    input: &[u8],
    field: &'static str,
) -> Result<(usize, usize), ValueError> {
    let Some(&first) = input.first() else {
        return Err(ValueError::Truncated {
            field,
            need: 1,
            have: 0,
        });
    };
    if first <= 0x80 {
        return Ok((usize::from(first), 1));
    }
    let k = usize::from(first & 0x7f);
    if k > MAX_LENGTH_OCTETS {
        return Err(ValueError::LengthTooLong { field, octets: k });
    }
    let Some(ext) = input.get(1..1 + k) else {
        return Err(ValueError::Truncated {
            field,
            need: 1 + k,
            have: input.len(),
        });
    };
    let value = ext.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    let total = value
        .checked_add(128)
        .and_then(|v| usize::try_from(v).ok())
        .ok_or(ValueError::Invalid {
            field,
            reason: "length does not fit in memory",
        })?;
    Ok((total, 1 + k))
}

/// Octets needed to encode length `n` with the minimal form.
pub const fn length_len(n: usize) -> usize {
    if n <= 128 {
        1
    } else {
        let v = (n - 128) as u64;
        let bits = 64 - v.leading_zeros() as usize;
        1 + if bits == 0 { 1 } else { bits.div_ceil(8) }
    }
}

/// Append length `n` in its minimal form.
///
/// ```
/// use bytes::BytesMut;
/// use mihf::wire::encode_length;
/// let mut out = BytesMut::new();
/// encode_length(384, &mut out);
/// assert_eq!(&out[..], &[0x82, 0x01, 0x00]);
/// ```
pub fn encode_length(n: usize, out: &mut BytesMut) {
    if n <= 128 {
        out.put_u8(n as u8);
    } else {
        let k = length_len(n) - 1;
        let v = ((n - 128) as u64).to_be_bytes();
        out.put_u8(0x80 | k as u8);
        out.put_slice(&v[8 - k..]);
    }
}

/// One TLV borrowed from a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// The 8-bit TLV type.
    pub ty: u8,
    /// The value octets.
    pub value: &'a [u8],
    /// The whole TLV (type, length and value) as it was on the wire.
    pub raw: &'a [u8],
    /// Offset of the type octet within the payload.
    pub offset: usize,
}

/// Iterator over the TLVs of a payload. It stops at the first malformed TLV;
/// [`TlvIter::error`] then says what was wrong.
#[derive(Debug, Clone)]
pub struct TlvIter<'a> {
    rest: &'a [u8],
    offset: usize,
    index: usize,
    error: Option<Error>,
}

impl<'a> TlvIter<'a> {
    pub fn new(payload: &'a [u8]) -> TlvIter<'a> {
        TlvIter {
            rest: payload,
            offset: 0,
            index: 0,
            error: None,
        }
    }

    /// The error that ended the walk, if any.
    pub fn error(&self) -> Option<Error> {
        self.error.clone()
    }

    fn fail(&mut self, error: ValueError) -> Option<Tlv<'a>> {
        self.error = Some(Error::Tlv {
            index: self.index,
            offset: self.offset,
            error,
        });
        self.rest = &[];
        None
    }
}

impl<'a> Iterator for TlvIter<'a> {
    type Item = Tlv<'a>;

    fn next(&mut self) -> Option<Tlv<'a>> {
        let input = self.rest;
        let &ty = input.first()?;
        let (len, len_octets) = match decode_length_of(&input[1..], "TLV length") {
            Ok(v) => v,
            Err(e) => return self.fail(e),
        };
        let header = 1 + len_octets;
        let avail = input.len() - header;
        if len > avail {
            return self.fail(ValueError::Truncated {
                field: "TLV value",
                need: len,
                have: avail,
            });
        }
        let raw = &input[..header + len];
        let tlv = Tlv {
            ty,
            value: &raw[header..],
            raw,
            offset: self.offset,
        };
        self.rest = &input[header + len..];
        self.offset += raw.len();
        self.index += 1;
        Some(tlv)
    }
}

/// Append one TLV holding `value`.
pub fn emit_tlv<V: Value>(ty: u8, value: &V, out: &mut BytesMut) {
    out.put_u8(ty);
    encode_length(value.encoded_len(), out);
    value.encode(out);
}

/// A data type of IEEE 802.21 Annex F: decodes from a [`Reader`] and emits
/// into a [`BytesMut`]. Byte strings decode as slices of the reader's buffer.
pub trait Value: Sized {
    /// The standard's name for the data type, used in errors.
    const NAME: &'static str;
    /// Read one value from `r`, advancing it.
    fn decode(r: &mut Reader<'_>) -> Result<Self, ValueError>;
    /// Octets that [`Value::encode`] appends.
    fn encoded_len(&self) -> usize;
    /// Append the value.
    fn encode(&self, out: &mut BytesMut);

    /// Decode a whole TLV value: `value` must be a slice of `base`, and every
    /// octet of it must be used.
    fn decode_exact(base: &Bytes, value: &[u8]) -> Result<Self, ValueError> {
        let mut r = Reader::within(base, value);
        let v = Self::decode(&mut r)?;
        r.finish(Self::NAME)?;
        Ok(v)
    }

    /// Decode from a standalone buffer, using every octet.
    fn from_bytes(bytes: &Bytes) -> Result<Self, ValueError> {
        Self::decode_exact(bytes, bytes)
    }

    /// Encode into a fresh buffer.
    fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.encoded_len());
        self.encode(&mut out);
        out.freeze()
    }
}

/// A cursor over a range of a [`Bytes`] buffer. Reads are bounds-checked
/// (through nom) and byte strings come out as [`Bytes`] slices of the buffer.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    base: &'a Bytes,
    pos: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    /// A reader over all of `base`.
    pub fn new(base: &'a Bytes) -> Reader<'a> {
        Reader {
            base,
            pos: 0,
            end: base.len(),
        }
    }

    /// A reader over `sub`, which should be a slice of `base`; if it is not,
    /// the reader is empty.
    pub fn within(base: &'a Bytes, sub: &[u8]) -> Reader<'a> {
        let start = (sub.as_ptr() as usize).wrapping_sub(base.as_ptr() as usize);
        match start.checked_add(sub.len()) {
            Some(end) if start <= base.len() && end <= base.len() => Reader {
                base,
                pos: start,
                end,
            },
            _ => Reader {
                base,
                pos: 0,
                end: 0,
            },
        }
    }

    /// Octets not yet read.
    pub fn remaining(&self) -> usize {
        self.end - self.pos
    }
    pub fn is_empty(&self) -> bool {
        self.pos == self.end
    }
    /// The unread octets.
    pub fn rest(&self) -> &'a [u8] {
        &self.base[self.pos..self.end]
    }

    /// Error unless every octet was read.
    pub fn finish(&self, field: &'static str) -> Result<(), ValueError> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(ValueError::TrailingBytes { field, extra }),
        }
    }

    /// Take `N` octets as an array (bounds-checked; no copy beyond the array).
    #[inline]
    fn take_array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], ValueError> {
        let input = self.rest();
        match input.split_first_chunk::<N>() {
            Some((a, _)) => {
                self.pos += N;
                Ok(*a)
            }
            None => Err(ValueError::Truncated {
                field,
                need: N,
                have: input.len(),
            }),
        }
    }

    #[inline]
    pub fn u8(&mut self, field: &'static str) -> Result<u8, ValueError> {
        self.take_array::<1>(field).map(|a| a[0])
    }
    #[inline]
    pub fn u16(&mut self, field: &'static str) -> Result<u16, ValueError> {
        self.take_array(field).map(u16::from_be_bytes)
    }
    #[inline]
    pub fn u32(&mut self, field: &'static str) -> Result<u32, ValueError> {
        self.take_array(field).map(u32::from_be_bytes)
    }
    #[inline]
    pub fn u64(&mut self, field: &'static str) -> Result<u64, ValueError> {
        self.take_array(field).map(u64::from_be_bytes)
    }
    /// A BOOLEAN octet (0 or 1).
    pub fn boolean(&mut self, field: &'static str) -> Result<bool, ValueError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(ValueError::BadBoolean { field, value }),
        }
    }
    /// `N` octets copied into an array (for small fixed fields such as a MAC).
    pub fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], ValueError> {
        self.take_array(field)
    }
    /// `n` octets, borrowed.
    pub fn slice(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], ValueError> {
        let input = self.rest();
        match take::<usize, &[u8], nom::error::Error<&[u8]>>(n).parse_complete(input) {
            Ok((_, s)) => {
                self.pos += n;
                Ok(s)
            }
            Err(_) => Err(ValueError::Truncated {
                field,
                need: n,
                have: input.len(),
            }),
        }
    }
    /// `n` octets as a [`Bytes`] slice of the buffer (no copy).
    pub fn bytes(&mut self, n: usize, field: &'static str) -> Result<Bytes, ValueError> {
        let start = self.pos;
        self.slice(n, field)?;
        Ok(self.base.slice(start..start + n))
    }
    /// A length coded with the 802.21 length rule.
    pub fn length(&mut self, field: &'static str) -> Result<usize, ValueError> {
        let (n, used) = decode_length_of(self.rest(), field)?;
        self.pos += used;
        Ok(n)
    }
    /// An OCTET_STRING: length then octets.
    pub fn octet_string(&mut self, field: &'static str) -> Result<Bytes, ValueError> {
        let n = self.length(field)?;
        self.bytes(n, field)
    }
    /// A CHOICE selector octet.
    pub fn selector(&mut self, field: &'static str) -> Result<u8, ValueError> {
        self.u8(field)
    }
    /// The position in the underlying buffer (for slicing what was read).
    pub fn position(&self) -> usize {
        self.pos
    }
    /// A [`Bytes`] slice of the buffer from `start` to the current position.
    pub fn since(&self, start: usize) -> Bytes {
        self.base.slice(start..self.pos)
    }
}

/// Octets of an OCTET_STRING of `n` octets.
pub const fn octet_string_len(n: usize) -> usize {
    length_len(n) + n
}

/// Append an OCTET_STRING.
pub fn put_octet_string(s: &[u8], out: &mut BytesMut) {
    encode_length(s.len(), out);
    out.put_slice(s);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_table_from_spec() {
        // (length, encoding) pairs of IEEE 802.21-2008, each checked with tshark.
        let table: &[(usize, &[u8])] = &[
            (0, &[0x00]),
            (127, &[0x7f]),
            (128, &[0x80]),
            (129, &[0x81, 0x01]),
            (255, &[0x81, 0x7f]),
            (256, &[0x81, 0x80]),
            (303, &[0x81, 0xaf]),
            (383, &[0x81, 0xff]),
            (384, &[0x82, 0x01, 0x00]),
            (1000, &[0x82, 0x03, 0x68]),
            (65_535 + 128, &[0x82, 0xff, 0xff]),
            (65_536 + 128, &[0x83, 0x01, 0x00, 0x00]),
            (100_000, &[0x83, 0x01, 0x86, 0x20]),
        ];
        for &(n, enc) in table {
            let mut out = BytesMut::new();
            encode_length(n, &mut out);
            assert_eq!(&out[..], enc, "encode {n}");
            assert_eq!(length_len(n), enc.len(), "length_len {n}");
            assert_eq!(decode_length(enc), Ok((n, enc.len())), "decode {n}");
        }
    }

    #[test]
    fn non_minimal_and_bad_lengths() {
        assert_eq!(decode_length(&[0x82, 0x00, 0x01]), Ok((129, 3)));
        assert_eq!(
            decode_length(&[0x89]),
            Err(ValueError::LengthTooLong {
                field: "length",
                octets: 9
            })
        );
        assert!(matches!(
            decode_length(&[0x82, 0x01]),
            Err(ValueError::Truncated { .. })
        ));
        assert!(matches!(
            decode_length(&[]),
            Err(ValueError::Truncated { .. })
        ));
        assert!(decode_length(&[0x88, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn tlv_walk_and_truncation() {
        let payload = [0x01, 0x02, 0xaa, 0xbb, 0x64, 0x00, 0x03, 0x05, 0x01];
        let mut it = TlvIter::new(&payload);
        let a = it.next().unwrap();
        assert_eq!((a.ty, a.value, a.offset), (1, &[0xaa, 0xbb][..], 0));
        let b = it.next().unwrap();
        assert_eq!((b.ty, b.value.len(), b.offset), (100, 0, 4));
        assert!(it.next().is_none());
        assert_eq!(
            it.error(),
            Some(Error::Tlv {
                index: 2,
                offset: 6,
                error: ValueError::Truncated {
                    field: "TLV value",
                    need: 5,
                    have: 1
                }
            })
        );
    }

    #[test]
    fn reader_slices_share_the_buffer() {
        let base = Bytes::from_static(&[3, b'a', b'b', b'c', 9]);
        let mut r = Reader::new(&base);
        let s = r.octet_string("s").unwrap();
        assert_eq!(&s[..], b"abc");
        assert_eq!(s.as_ptr(), base[1..].as_ptr());
        assert_eq!(r.u8("x").unwrap(), 9);
        assert!(r.u8("y").is_err());
        r.finish("z").unwrap();
    }
}
