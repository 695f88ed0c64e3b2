//! Shared helpers for the fuzz targets in `fuzz_targets/` (none yet).
//!
//! This library exists so that the package is valid before the first target
//! is added: without any target, `cargo metadata` (and so `cargo fuzz add`)
//! refuses the manifest.
