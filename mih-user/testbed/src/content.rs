//! The synthetic file content of the example HTTP service
//! (`example-http-service`), shared with the handover demo that checks
//! every octet a client receives.
//!
//! Octet `i` of file `name` served with seed `seed` is octet `i % 8`
//! (little-endian) of `splitmix64(seed ^ fnv1a64(name) ^ (i / 8) *
//! 0x9E3779B97F4A7C15)`: any range can be produced directly, and two
//! instances with the same seed serve the same octets.
//!
//! ```
//! let mut a = [0u8; 16];
//! let mut b = [0u8; 8];
//! testbed::content::fill(1, "demo.bin", 0, &mut a);
//! testbed::content::fill(1, "demo.bin", 8, &mut b);
//! assert_eq!(&a[8..], &b);
//! ```

/// SplitMix64's output function.
pub fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a's 64-bit offset basis (the hash of nothing).
pub const FNV1A64_INIT: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a, 64 bits.
pub fn fnv1a64(s: &[u8]) -> u64 {
    fnv1a64_update(FNV1A64_INIT, s)
}

/// Continue an FNV-1a hash `h` over `s` (hash a stream piece by piece,
/// starting from [`FNV1A64_INIT`]).
pub fn fnv1a64_update(h: u64, s: &[u8]) -> u64 {
    s.iter().fold(h, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Fill `out` with the octets of `name` starting at `offset`.
pub fn fill(seed: u64, name: &str, offset: u64, out: &mut [u8]) {
    let key = seed ^ fnv1a64(name.as_bytes());
    let mut word = None;
    for (k, b) in out.iter_mut().enumerate() {
        let i = offset + k as u64;
        let w = match word {
            Some((idx, w)) if idx == i / 8 => w,
            _ => {
                let w = splitmix64(key ^ (i / 8).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                word = Some((i / 8, w));
                w
            }
        };
        *b = w.to_le_bytes()[(i % 8) as usize];
    }
}
