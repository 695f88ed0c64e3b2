//! `.ci/run` must fail when any of its checks fails: `.ci/selftest` runs
//! each stage of a copy of it with a `cargo` stand-in that fails on chosen
//! calls and expects a non-zero exit (and zero when nothing fails). Running
//! it here puts it in the README's test command.

use std::path::Path;
use std::process::Command;

#[test]
fn ci_script_fails_when_a_check_fails() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out = Command::new("bash")
        .arg(root.join(".ci/selftest"))
        .env_remove("FAKE_FAIL")
        .env_remove("FAKE_FUZZ_LIST")
        .output()
        .expect("bash runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(" passed, 0 failed"), "{text}");
}
