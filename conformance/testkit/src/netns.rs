//! Network namespaces for tests and benches: the one guard that makes and
//! removes them, the `ip` wrapper, and a way to run code inside one.
//!
//! [`Netns::new`] makes one namespace per suffix, named uniquely per process
//! and per call (tests run on parallel threads of one process), with `lo`
//! up, and deletes them all when dropped (also when the test panics). It
//! returns `None` only where [`require_root`](crate::require_root) lets the
//! test skip (not root, `CI` unset); as root a namespace that cannot be made
//! fails the test. What goes into the namespaces (veth pairs, addresses,
//! routes) is each test's own, done with [`ip`]; code that must open its
//! sockets in a namespace runs through [`run_in`].
//!
//! ```no_run
//! use testkit::netns::{ip, run_in, Netns};
//!
//! let Some(ns) = Netns::new("demo", &["srv", "cli"]) else {
//!     return; // skipped (not root, CI unset)
//! };
//! let (srv, cli) = (ns.name(0), ns.name(1));
//! ip(&["-n", srv, "link", "add", "v0", "type", "veth", "peer", "name", "v1", "netns", cli])
//!     .unwrap();
//! ip(&["-n", srv, "addr", "add", "10.250.0.1/24", "dev", "v0"]).unwrap();
//! ip(&["-n", srv, "link", "set", "v0", "up"]).unwrap();
//! let listener = run_in(srv, || std::net::TcpListener::bind("10.250.0.1:0").unwrap());
//! # drop(listener);
//! // Both namespaces are deleted here, when `ns` goes.
//! ```
//!
//! The product's own namespace code (`mih_user::sessions::netns`, used by
//! the daemon at run time) is separate; tests keep using its
//! `tcp_counter` to read a namespace's kernel TCP counters.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Run `ip ARGS`: its standard output, or an error naming the arguments
/// with `ip`'s standard error.
pub fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e} (is iproute2 installed?)", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The path of a namespace given by name (`/run/netns/<name>`, as `ip netns
/// add` makes them) or already by path (anything with a `/`).
pub fn path(name: &str) -> PathBuf {
    if name.contains('/') {
        PathBuf::from(name)
    } else {
        Path::new("/run/netns").join(name)
    }
}

/// Run `f` on a scoped thread that entered network namespace `name` (a name
/// under `/run/netns`, or a path, see [`path`]) and return its result.
/// Sockets `f` creates stay in that namespace whatever thread uses them
/// later. Panics if the namespace cannot be entered; a panic in `f` is
/// resumed in the caller.
pub fn run_in<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> T {
    let p = path(name);
    std::thread::scope(|s| {
        s.spawn(|| {
            enter(&p).unwrap_or_else(|e| panic!("{e}"));
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

/// Move the calling thread into the network namespace at `path`.
fn enter(path: &Path) -> Result<(), String> {
    let ns = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    // SAFETY: setns on an open namespace descriptor; it changes the network
    // namespace of the calling thread only.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(format!(
            "setns({}): {}",
            path.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Network namespaces made by one test; all deleted on drop (also when the
/// test panics).
#[derive(Debug)]
pub struct Netns {
    names: Vec<String>,
}

impl Netns {
    /// Make one namespace per suffix, `<tag><serial>-<suffix>-<pid>` (the
    /// serial counts calls in this process), each with `lo` up; a leftover
    /// of the same name is deleted first.
    ///
    /// `None`: namespaces cannot be made here and the test may skip (not
    /// root and `CI` unset; [`require_root`](crate::require_root) printed
    /// the `SKIP:` line). Under CI without root it panics, as it does as
    /// root when a namespace cannot be made.
    #[track_caller]
    pub fn new(tag: &str, suffixes: &[&str]) -> Option<Netns> {
        // Tests run on parallel threads of one process: the serial keeps
        // their namespaces apart.
        static SERIAL: AtomicUsize = AtomicUsize::new(0);
        let serial = SERIAL.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let mut ns = Netns { names: Vec::new() };
        for s in suffixes {
            let name = format!("{tag}{serial}-{s}-{pid}");
            let _ = ip(&["netns", "del", &name]);
            if let Err(e) = ip(&["netns", "add", &name]) {
                if !crate::require_root(format_args!("network namespaces ({e})")) {
                    return None;
                }
                panic!("cannot create network namespaces as root: {e}");
            }
            ns.names.push(name);
            let name = ns.names.last().unwrap();
            ip(&["-n", name, "link", "set", "lo", "up"])
                .unwrap_or_else(|e| panic!("network namespace {name}: {e}"));
        }
        Some(ns)
    }

    /// The name of the namespace made for `suffixes[i]`.
    pub fn name(&self, i: usize) -> &str {
        &self.names[i]
    }

    /// Its path, `/run/netns/<name>`.
    pub fn path(&self, i: usize) -> PathBuf {
        path(self.name(i))
    }

    /// All names, in the order of the suffixes.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = ip(&["netns", "del", n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(path("ue"), PathBuf::from("/run/netns/ue"));
        assert_eq!(path("/proc/1/ns/net"), PathBuf::from("/proc/1/ns/net"));
    }

    #[test]
    fn ip_reports_failures_with_args_and_stderr() {
        let e = ip(&["nonsense-object", "x"]).unwrap_err();
        assert!(e.starts_with("ip nonsense-object x: "), "{e}");
        assert!(e.len() > "ip nonsense-object x: ".len(), "no stderr: {e}");
    }

    #[test]
    fn run_in_a_missing_namespace_panics_with_its_path() {
        let r = std::panic::catch_unwind(|| run_in("no-such-ns-testkit", || ()));
        let msg = *r.expect_err("must panic").downcast::<String>().unwrap();
        assert!(msg.contains("/run/netns/no-such-ns-testkit"), "{msg}");
    }

    fn listed() -> String {
        ip(&["netns", "list"]).unwrap_or_default()
    }

    fn inode(p: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(p).unwrap().ino()
    }

    /// As root (else skipped, or failing under CI): two calls get distinct
    /// namespaces, `lo` is up in them, `run_in` enters them and resumes a
    /// panic of its closure, and drop deletes them, also on a panic.
    #[test]
    fn namespaces_are_made_apart_entered_and_deleted() {
        // Not root, `Netns::new` reads `CI`, which another test sets.
        let _env = crate::tests::CI_ENV
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let Some(a) = Netns::new("tk", &["x", "y"]) else {
            return;
        };
        let b = Netns::new("tk", &["x"]).unwrap();
        assert_eq!(a.names().len(), 2);
        assert_ne!(a.name(0), b.name(0));
        assert!(a.name(1).ends_with(&format!("-y-{}", std::process::id())));
        for n in a.names().iter().chain(b.names()) {
            assert!(listed()
                .lines()
                .any(|l| l.split_whitespace().next() == Some(n.as_str())));
            let lo = ip(&["-n", n, "link", "show", "lo"]).unwrap();
            assert!(lo.contains("UP"), "{n}: {lo}");
        }
        let inside = run_in(a.name(0), || inode(Path::new("/proc/thread-self/ns/net")));
        assert_eq!(inside, inode(&a.path(0)));
        assert_ne!(inside, inode(Path::new("/proc/self/ns/net")));
        // (setns needs CAP_SYS_ADMIN even into a thread's own namespace.)
        let r = std::panic::catch_unwind(|| run_in(a.name(1), || panic!("inside")));
        assert_eq!(*r.unwrap_err().downcast::<&str>().unwrap(), "inside");

        let names: Vec<String> = a.names().iter().chain(b.names()).cloned().collect();
        let r = std::panic::catch_unwind(move || {
            let _keep = (a, b);
            panic!("a failing test");
        });
        assert!(r.is_err());
        for n in &names {
            assert!(!path(n).exists(), "{n} left behind");
        }
    }
}
