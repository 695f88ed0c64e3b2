//! Network namespace helpers of the route hooks (at run time), also used
//! by the handover demo, the benchmarks and the namespace tests: enter a
//! namespace on a helper thread, read the kernel's TCP counters of a
//! namespace. (Creating namespaces and running `ip` is test and demo
//! business: `testkit::netns`.)
//!
//! ```no_run
//! use mih_user::sessions::netns;
//!
//! let path = netns::path("demo-ue");
//! let resets = netns::tcp_counter(&path, "Tcp", "EstabResets").unwrap();
//! let listener = netns::run_in(&path, || std::net::TcpListener::bind("127.0.0.1:0")).unwrap();
//! # let _ = (resets, listener);
//! ```

use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// The path of a namespace given by name (under `/run/netns`, as `ip netns`
/// makes them) or already by path (anything with a `/`).
pub fn path(name_or_path: &str) -> PathBuf {
    if name_or_path.contains('/') {
        PathBuf::from(name_or_path)
    } else {
        Path::new("/run/netns").join(name_or_path)
    }
}

/// Move the calling thread into the network namespace at `path`.
pub fn enter(path: &Path) -> io::Result<()> {
    let ns = std::fs::File::open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    // SAFETY: setns on an open namespace descriptor; it changes the
    // namespace of the calling thread only.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("setns({}): {e}", path.display()),
        ));
    }
    Ok(())
}

/// Run `f` on a helper thread that entered the namespace at `path`, and
/// return its result. Sockets `f` creates stay in that namespace whatever
/// thread uses them later. A panic in `f` is resumed in the caller.
pub fn run_in<T: Send>(path: &Path, f: impl FnOnce() -> T + Send) -> io::Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            enter(path)?;
            Ok(f())
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// A TCP counter of the namespace at `path`: `section` is `Tcp` (from
/// `/proc/net/snmp`, e.g. `EstabResets`, `OutRsts`) or `TcpExt` (from
/// `/proc/net/netstat`).
pub fn tcp_counter(path: &Path, section: &str, key: &str) -> io::Result<u64> {
    let file = if section == "Tcp" { "snmp" } else { "netstat" };
    // /proc/net follows the process's first thread; /proc/thread-self/net
    // follows the helper thread that entered the namespace.
    let text = run_in(path, || {
        std::fs::read_to_string(format!("/proc/thread-self/net/{file}"))
    })??;
    let missing = || {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("no counter {section}:{key}"),
        )
    };
    let prefix = format!("{section}:");
    let mut lines = text.lines().filter(|l| l.starts_with(&prefix));
    let (names, values) = (
        lines.next().ok_or_else(missing)?,
        lines.next().ok_or_else(missing)?,
    );
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == key)
        .and_then(|(_, v)| v.parse().ok())
        .ok_or_else(missing)
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
    fn counters_of_the_own_namespace() {
        let own = Path::new("/proc/self/ns/net");
        let n = tcp_counter(own, "Tcp", "ActiveOpens").unwrap();
        let _c = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| std::net::TcpStream::connect(l.local_addr()?))
            .unwrap();
        assert!(tcp_counter(own, "Tcp", "ActiveOpens").unwrap() > n);
        assert!(tcp_counter(own, "Tcp", "NoSuchCounter").is_err());
        assert!(run_in(Path::new("/nonexistent/ns"), || ()).is_err());
    }
}
