//! MN Authorization Token (RFC 4067 §2.5.1, §6.3) and key handling.
//!
//! `token = First32(HMAC-SHA1(K, MN_prev_addr || seq || requested CDBs))`
//! where the address is 4 or 16 octets as on the wire, `seq` is big-endian
//! and the CDBs are the exact request-block octets of the CTAR/CT-Req.
//! Verification is constant time (`hmac`'s `verify_truncated_left`). Keys
//! live in [`AuthKey`], which wipes its memory on drop.
//!
//! ```
//! use cxtp::token::{compute, AuthKey};
//! let key = AuthKey::new(&[0x0b; 20]);
//! let t = compute(&key, &"192.0.2.1".parse().unwrap(), 0x1234_5678, &[]);
//! assert_eq!(t.0, [0xfb, 0xab, 0x93, 0xdc]);
//! ```

use std::fmt;
use std::net::IpAddr;

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::wire::{CtReq, CtReqRepr, Ctar, CtarRepr, RequestBlock, Token, ALGORITHM_HMAC_SHA1};

type HmacSha1 = Hmac<Sha1>;

/// A shared MN–AR CXTP key. The memory is zeroed when the value is dropped;
/// `Debug` does not print it; equality is constant time.
#[derive(Clone)]
pub struct AuthKey(Zeroizing<Vec<u8>>);

impl AuthKey {
    /// Copy key octets.
    pub fn new(key: &[u8]) -> Self {
        AuthKey(Zeroizing::new(key.to_vec()))
    }
    /// The key octets.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    /// Length in octets.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether the key is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl PartialEq for AuthKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len() && bool::from(self.0.ct_eq(&other.0))
    }
}
impl Eq for AuthKey {}

impl fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuthKey({} octets, redacted)", self.0.len())
    }
}

fn mac(key: &AuthKey, mn_addr: &IpAddr, seq: u32, request_blocks: &[u8]) -> HmacSha1 {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut m = <HmacSha1 as KeyInit>::new_from_slice(key.as_bytes())
        .unwrap_or_else(|_| <HmacSha1 as KeyInit>::new_from_slice(&[]).expect("HMAC key"));
    match mn_addr {
        IpAddr::V4(a) => m.update(&a.octets()),
        IpAddr::V6(a) => m.update(&a.octets()),
    }
    m.update(&seq.to_be_bytes());
    m.update(request_blocks);
    m
}

/// Compute the token over the MN address, sequence number and the exact
/// request-block octets.
pub fn compute(key: &AuthKey, mn_addr: &IpAddr, seq: u32, request_blocks: &[u8]) -> Token {
    let out = mac(key, mn_addr, seq, request_blocks)
        .finalize()
        .into_bytes();
    Token([out[0], out[1], out[2], out[3]])
}

/// Constant-time check of a token. The all-zero token never verifies here:
/// in a CT-Req it means "no CTAR seen yet" and is handled by the engines.
pub fn verify(
    key: &AuthKey,
    mn_addr: &IpAddr,
    seq: u32,
    request_blocks: &[u8],
    token: &Token,
) -> bool {
    if token.is_zero() {
        return false;
    }
    mac(key, mn_addr, seq, request_blocks)
        .verify_truncated_left(&token.0)
        .is_ok()
}

/// Token algorithms (IANA "Context Transfer Protocol Authorization Token
/// Calculation Algorithms").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// 0x0001.
    HmacSha1,
}

impl Algorithm {
    /// Map the 16-bit code; unknown codes give `None`.
    pub fn from_code(code: u16) -> Option<Self> {
        (code == ALGORITHM_HMAC_SHA1).then_some(Algorithm::HmacSha1)
    }
}

impl CtarRepr {
    /// Compute the token for this CTAR (its request blocks as they will be
    /// emitted).
    pub fn compute_token(&self, key: &AuthKey) -> Token {
        compute(
            key,
            &self.mn_addr,
            self.seq,
            &RequestBlock::encode_all(&self.requests),
        )
    }
    /// Set `token` from `key`.
    pub fn sign(&mut self, key: &AuthKey) {
        self.token = self.compute_token(key);
    }
}

impl Ctar {
    /// Verify the token against the received octets.
    pub fn verify_token(&self, key: &AuthKey) -> bool {
        verify(
            key,
            &self.mn_addr,
            self.seq,
            self.request_bytes(),
            &self.token,
        )
    }
}

impl CtReq {
    /// Verify the token copied from the CTAR (false for the zero token).
    pub fn verify_token(&self, key: &AuthKey) -> bool {
        verify(
            key,
            &self.mn_addr,
            self.seq,
            self.request_bytes(),
            &self.token,
        )
    }
}

impl CtReqRepr {
    /// Compute the token this CT-Req would carry for `key`.
    pub fn compute_token(&self, key: &AuthKey) -> Token {
        compute(
            key,
            &self.mn_addr,
            self.seq,
            &RequestBlock::encode_all(&self.requests),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{MessageRepr, MessageView};
    use bytes::Bytes;

    fn k() -> AuthKey {
        AuthKey::new(&[0x0b; 20])
    }
    const SEQ: u32 = 0x1234_5678;

    #[test]
    fn worked_examples_of_spec_section_4() {
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(compute(&k(), &v4, SEQ, &[]).0, [0xfb, 0xab, 0x93, 0xdc]);
        assert_eq!(
            compute(&k(), &v4, SEQ, &[0, 1, 0, 0]).0,
            [0x6a, 0x3d, 0x49, 0x46]
        );
        assert_eq!(
            compute(&k(), &v4, SEQ, &[0, 1, 1, 0, 0, 0, 0, 0]).0,
            [0x14, 0xe9, 0xc0, 0xcc]
        );
        assert_eq!(compute(&k(), &v6, SEQ, &[]).0, [0xc8, 0xdf, 0x9d, 0xb4]);
    }

    #[test]
    fn request_block_conventions_give_the_spec_tokens() {
        let mut r = CtarRepr {
            ack: true,
            mn_addr: "192.0.2.1".parse().unwrap(),
            ar_addr: "192.0.2.254".parse().unwrap(),
            seq: SEQ,
            token: Token::ZERO,
            requests: vec![RequestBlock::new(1)],
        };
        assert_eq!(r.compute_token(&k()).0, [0x6a, 0x3d, 0x49, 0x46]);
        r.requests[0].length = 1;
        assert_eq!(r.compute_token(&k()).0, [0x14, 0xe9, 0xc0, 0xcc]);
    }

    #[test]
    fn full_ctar_example_and_verification() {
        let raw = hex::decode("21c00014c0000201c00002fe12345678fbab93dc").unwrap();
        let mut repr = CtarRepr {
            ack: true,
            mn_addr: "192.0.2.1".parse().unwrap(),
            ar_addr: "192.0.2.254".parse().unwrap(),
            seq: SEQ,
            token: Token::ZERO,
            requests: vec![],
        };
        repr.sign(&k());
        assert_eq!(&MessageRepr::Ctar(repr).to_bytes().unwrap()[..], &raw[..]);
        let MessageView::Ctar(ctar) = MessageView::parse(Bytes::from(raw)).unwrap() else {
            panic!("not a CTAR")
        };
        assert!(ctar.verify_token(&k()));
        assert!(!ctar.verify_token(&AuthKey::new(&[0x0c; 20])));
        let mut forged = ctar.clone();
        forged.token.0[3] ^= 1;
        assert!(!forged.verify_token(&k()));
        forged.token = Token::ZERO;
        assert!(!forged.verify_token(&k()));
    }

    #[test]
    fn key_debug_is_redacted_and_eq_works() {
        assert_eq!(format!("{:?}", k()), "AuthKey(20 octets, redacted)");
        assert_eq!(k(), k());
        assert_ne!(k(), AuthKey::new(&[0x0b; 19]));
        assert_eq!(Algorithm::from_code(1), Some(Algorithm::HmacSha1));
        assert_eq!(Algorithm::from_code(2), None);
    }
}
