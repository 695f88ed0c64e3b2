//! Helpers shared by the mih-user integration tests.

/// The example service's documented content rule (see its `--help`),
/// written independently of the service so the tests check it: octet `i` of
/// file `name` served with `--seed seed`.
pub fn expected(seed: u64, name: &str, offset: u64, len: usize) -> Vec<u8> {
    fn splitmix64(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    let key = seed
        ^ name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    (0..len as u64)
        .map(|k| {
            let i = offset + k;
            splitmix64(key ^ (i / 8).wrapping_mul(0x9E37_79B9_7F4A_7C15)).to_le_bytes()
                [(i % 8) as usize]
        })
        .collect()
}
