//! Test support shared by every crate's tests.
//!
//! One rule decides whether a test may skip for want of something the
//! machine lacks (root, network namespaces, tshark, pycrate, an IPv6
//! loopback): locally it prints a `SKIP:` line and the test returns; under
//! CI it fails, because a CI run must either check the behaviour or say
//! that it could not. Every skip in the workspace goes through [`skip`].
//!
//! ```no_run
//! fn oracle_available() -> bool { false }
//!
//! if !testkit::require(oracle_available(), "the oracle is not installed") {
//!     return; // locally: skipped with a SKIP line; under CI: the call panicked
//! }
//! ```
//!
//! [`netns`] holds the network namespace helpers of the namespace tests and
//! benches: the [`netns::Netns`] guard (namespaces made per test, deleted
//! on drop, skipped by the same rule), the [`netns::ip`] wrapper and
//! [`netns::run_in`].

use std::fmt::Display;

pub mod netns;

/// True when the `CI` environment variable says this is a CI run: set to
/// anything but empty, `0`, `false`, `no` or `off` (any case).
pub fn under_ci() -> bool {
    match std::env::var("CI") {
        Ok(v) => ci_value_means_ci(&v),
        // Set but not UTF-8: somebody set it on purpose.
        Err(std::env::VarError::NotUnicode(_)) => true,
        Err(std::env::VarError::NotPresent) => false,
    }
}

/// The rule of [`under_ci`] for one value of `CI`.
pub fn ci_value_means_ci(value: &str) -> bool {
    let v = value.trim();
    !(v.is_empty()
        || ["0", "false", "no", "off"]
            .iter()
            .any(|f| v.eq_ignore_ascii_case(f)))
}

/// A test cannot run here because of `reason` (say what is missing and how
/// to get it). Under CI this panics; otherwise it prints `SKIP: reason` on
/// stderr and the caller returns.
#[track_caller]
pub fn skip(reason: impl Display) {
    if under_ci() {
        panic!("{reason}: required under CI (CI is set), so this test fails instead of skipping");
    }
    eprintln!("SKIP: {reason}");
}

/// `available`, after calling [`skip`] with `reason` when it is false.
#[track_caller]
pub fn require(available: bool, reason: impl Display) -> bool {
    if !available {
        skip(reason);
    }
    available
}

/// True when the process runs as root (effective UID 0).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// [`require`] for root: network namespaces, veth pairs, raw sockets and
/// TCP_REPAIR need it. `what` names what the test does with it.
#[track_caller]
pub fn require_root(what: impl Display) -> bool {
    require(is_root(), format_args!("{what} needs root"))
}

/// True if `program args...` can be started and exits with status 0.
pub fn runs(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> bool {
    std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// [`require`] for the Wireshark oracle: `tshark --version` (or `$TSHARK`)
/// must run.
#[track_caller]
pub fn require_tshark() -> bool {
    let tshark = std::env::var_os("TSHARK").unwrap_or_else(|| "tshark".into());
    require(
        runs(&tshark, &["--version"]),
        format_args!(
            "{} does not run (apt-get install tshark)",
            tshark.to_string_lossy()
        ),
    )
}

/// [`require`] for a Python oracle: `python3 -c "import <module>"` must
/// work; `install` says how to get it.
#[track_caller]
pub fn require_python_module(module: &str, install: &str) -> bool {
    require(
        runs("python3", &["-c", &format!("import {module}")]),
        format_args!("python3 cannot import {module} ({install})"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ci_values() {
        for v in ["true", "1", "yes", "TRUE", "github", " true "] {
            assert!(ci_value_means_ci(v), "{v:?}");
        }
        for v in ["", " ", "0", "false", "False", "FALSE", "no", "off", "Off"] {
            assert!(!ci_value_means_ci(v), "{v:?}");
        }
    }

    /// Held by the tests that set `CI` or may read it (through
    /// [`require_root`] when not root): the environment is process-wide.
    pub(crate) static CI_ENV: std::sync::Mutex<()> = std::sync::Mutex::new(());

    // The environment is process-wide: one test sets it, in order.
    #[test]
    fn skip_panics_only_under_ci() {
        let _env = CI_ENV.lock().unwrap_or_else(|e| e.into_inner());
        let old = std::env::var_os("CI");
        // No other test of this crate reads or writes CI while `CI_ENV` is held.
        std::env::set_var("CI", "false");
        assert!(!require(false, "nothing"));
        assert!(require(true, "nothing"));
        std::env::set_var("CI", "true");
        let r = std::panic::catch_unwind(|| require(false, "tshark is not installed"));
        let msg = *r
            .expect_err("must panic under CI")
            .downcast::<String>()
            .unwrap();
        assert!(msg.contains("tshark is not installed"), "{msg}");
        assert!(require(true, "nothing"));
        std::env::remove_var("CI");
        assert!(!under_ci());
        match old {
            Some(v) => std::env::set_var("CI", v),
            None => std::env::remove_var("CI"),
        }
    }
}
