//! Helpers shared by the testbed's integration tests.

#![allow(dead_code)] // each test file uses some of them

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::SystemTime;

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

/// The binaries of other packages the tests start: (binary, package).
const OTHER_BINS: [(&str, &str); 2] = [("mih-user", "mih-user"), ("mihfd", "mihf")];

/// The sources a binary of [`OTHER_BINS`] is built from (relative to the
/// workspace root).
const SOURCES: [&str; 7] = [
    "Cargo.lock",
    "mih-user/Cargo.toml",
    "mih-user/src",
    "mihf/Cargo.toml",
    "mihf/src",
    "cxtp/Cargo.toml",
    "cxtp/src",
];

fn newest(path: &Path) -> Option<SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    std::fs::read_dir(path)
        .ok()?
        .flatten()
        .filter_map(|e| newest(&e.path()))
        .max()
}

/// The target directory's binaries (this package's, and `mih-user` and
/// `mihfd` next to them). Cargo builds only this package's binaries for its
/// tests (`CARGO_BIN_EXE_*`); the other two are built here with `cargo
/// build` when they are missing or older than their sources (after
/// `cargo test --workspace` they are neither, and nothing is built).
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_BIN_EXE_example-http-service"))
            .parent()
            .unwrap()
            .to_path_buf();
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let sources = SOURCES.iter().filter_map(|s| newest(&root.join(s))).max();
        for (bin, package) in OTHER_BINS {
            let built = std::fs::metadata(dir.join(bin))
                .and_then(|m| m.modified())
                .ok();
            if built.is_some() && built >= sources {
                continue;
            }
            let mut cargo = Command::new(env!("CARGO"));
            cargo.args(["build", "-p", package, "--bin", bin]);
            if dir.ends_with("release") {
                cargo.arg("--release");
            }
            let st = cargo.current_dir(&root).status().unwrap();
            assert!(st.success(), "cargo build -p {package} --bin {bin}");
        }
        dir
    })
}

/// The path of binary `name` (one of this package's or of [`OTHER_BINS`]).
pub fn bin(name: &str) -> PathBuf {
    bin_dir().join(name)
}
