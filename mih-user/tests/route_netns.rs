//! `sessions::route::RouteHandle` against the kernel, in a network
//! namespace made by the test (run as root; skipped with a message when
//! namespaces cannot be created and `CI` is unset, failing when it is set).
//! Every change is checked with `ip -n NS route show`.
#![cfg(target_os = "linux")]

use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use mih_user::sessions::route::{is_not_found, route_error, RouteHandle};
use testkit::netns::{ip, Netns};

/// One namespace with a veth pair `ra` (10.232.0.1/24, fd00:232::1/64) and
/// `rb` (no address: the gateways .2/.3 are neighbours on `ra`'s link).
/// `None`: namespaces are not available here (skip).
fn make_ns(tag: &str) -> Option<Netns> {
    let ns = Netns::new("rtn", &[tag])?;
    let n = ns.name(0);
    for args in [
        &[
            "-n", n, "link", "add", "ra", "type", "veth", "peer", "name", "rb",
        ][..],
        &["-n", n, "addr", "add", "10.232.0.1/24", "dev", "ra"],
        &[
            "-n",
            n,
            "addr",
            "add",
            "fd00:232::1/64",
            "dev",
            "ra",
            "nodad",
        ],
        &["-n", n, "link", "set", "ra", "up"],
        &["-n", n, "link", "set", "rb", "up"],
    ] {
        ip(args).unwrap();
    }
    Some(ns)
}

/// `ip -n NS [-6] route show SELECTOR` (e.g. `10.99.0.1/32`, an exact
/// match, or `root 10.77.0.0/16`), one route per line, trimmed.
fn show(ns: &Netns, selector: &str) -> String {
    let v6 = selector.contains(':');
    let mut args = vec!["-n", ns.name(0)];
    if v6 {
        args.push("-6");
    }
    args.extend(["route", "show"]);
    args.extend(selector.split_whitespace());
    ip(&args)
        .unwrap()
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("\n")
}

fn a(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Routes in the test process's own namespace must not be touched.
fn host_has_no_route(dst: &str) {
    let v6 = dst.contains(':');
    let out = if v6 {
        ip(&["-6", "route", "show", dst])
    } else {
        ip(&["route", "show", dst])
    }
    .unwrap();
    assert!(out.trim().is_empty(), "route leaked into the host: {out}");
}

#[test]
fn replace_via_blackhole_delete_ipv4() {
    let Some(ns) = make_ns("v4") else { return };
    let h = RouteHandle::in_netns(&ns.path(0)).unwrap();
    let (dst, d) = (a("10.99.0.1"), "10.99.0.1/32");

    h.replace_via(dst, 32, a("10.232.0.2"), Some(a("10.232.0.1")))
        .unwrap();
    assert_eq!(
        show(&ns, d),
        "10.99.0.1 via 10.232.0.2 dev ra src 10.232.0.1"
    );
    // Replace, not add: still one route.
    h.replace_via(dst, 32, a("10.232.0.3"), None).unwrap();
    assert_eq!(show(&ns, d), "10.99.0.1 via 10.232.0.3 dev ra");
    h.replace_blackhole(dst, 32).unwrap();
    assert_eq!(show(&ns, d), "blackhole 10.99.0.1");
    host_has_no_route(d);
    h.delete(dst, 32).unwrap();
    assert_eq!(show(&ns, d), "");
    let e = h.delete(dst, 32).unwrap_err();
    assert!(is_not_found(&e), "{e:?}");
    assert_eq!(route_error(&e).unwrap().errno, libc::ESRCH);
    assert!(e.to_string().contains("del 10.99.0.1/32"), "{e}");

    // A /24 and a more specific blackhole /32 beside it: deleting the /32
    // leaves the /24 (how the benchmark releases a flow hold).
    h.replace_via(a("10.77.0.0"), 24, a("10.232.0.2"), None)
        .unwrap();
    h.replace_blackhole(a("10.77.0.2"), 32).unwrap();
    assert_eq!(
        show(&ns, "root 10.77.0.0/16"),
        "10.77.0.0/24 via 10.232.0.2 dev ra\nblackhole 10.77.0.2"
    );
    h.delete(a("10.77.0.2"), 32).unwrap();
    assert_eq!(
        show(&ns, "root 10.77.0.0/16"),
        "10.77.0.0/24 via 10.232.0.2 dev ra"
    );
}

/// Per-UE tables (the storm demo's source-policy routing): the same
/// destination in two tables, one above 255 (carried in `RTA_TABLE`), each
/// changed without touching the other or the main table.
#[test]
fn routes_in_other_tables() {
    let Some(ns) = make_ns("tbl") else { return };
    let h = RouteHandle::in_netns(&ns.path(0)).unwrap();
    let dst = a("10.99.0.1");
    h.replace_via(dst, 32, a("10.232.0.2"), None).unwrap();
    h.replace_via_in(100, dst, 32, a("10.232.0.3"), None)
        .unwrap();
    h.replace_via_in(70_000, dst, 32, a("10.232.0.2"), Some(a("10.232.0.1")))
        .unwrap();
    assert_eq!(
        show(&ns, "10.99.0.1/32 table 100"),
        "10.99.0.1 via 10.232.0.3 dev ra"
    );
    assert_eq!(
        show(&ns, "10.99.0.1/32 table 70000"),
        "10.99.0.1 via 10.232.0.2 dev ra src 10.232.0.1"
    );
    h.replace_blackhole_in(70_000, dst, 32).unwrap();
    assert_eq!(show(&ns, "10.99.0.1/32 table 70000"), "blackhole 10.99.0.1");
    // Only a blackhole is deleted by delete_blackhole_in.
    let e = h.delete_blackhole_in(100, dst, 32).unwrap_err();
    assert!(is_not_found(&e), "{e:?}");
    assert!(e.to_string().contains("table 100"), "{e}");
    h.delete_blackhole_in(70_000, dst, 32).unwrap();
    assert_eq!(show(&ns, "10.99.0.1/32 table 70000"), "");
    h.delete_in(100, dst, 32).unwrap();
    assert_eq!(show(&ns, "10.99.0.1/32 table 100"), "");
    assert_eq!(show(&ns, "10.99.0.1/32"), "10.99.0.1 via 10.232.0.2 dev ra");
}

#[test]
fn replace_via_blackhole_delete_ipv6() {
    let Some(ns) = make_ns("v6") else { return };
    let h = RouteHandle::in_netns(&ns.path(0)).unwrap();
    let (dst, d) = (a("fd00:99::1"), "fd00:99::1/128");

    h.replace_via(dst, 128, a("fd00:232::2"), Some(a("fd00:232::1")))
        .unwrap();
    let shown = show(&ns, d);
    assert!(
        shown.starts_with("fd00:99::1 via fd00:232::2 dev ra src fd00:232::1"),
        "{shown}"
    );
    h.replace_via(dst, 128, a("fd00:232::3"), None).unwrap();
    let shown = show(&ns, d);
    assert!(
        shown.starts_with("fd00:99::1 via fd00:232::3 dev ra") && !shown.contains('\n'),
        "{shown}"
    );
    h.replace_blackhole(dst, 128).unwrap();
    let shown = show(&ns, d);
    assert!(shown.starts_with("blackhole fd00:99::1"), "{shown}");
    host_has_no_route(d);
    h.delete(dst, 128).unwrap();
    assert_eq!(show(&ns, d), "");
    let e = h.delete(dst, 128).unwrap_err();
    assert!(is_not_found(&e), "{e:?}");

    // Prefix routes too.
    h.replace_blackhole(a("fd00:98::"), 64).unwrap();
    assert!(show(&ns, "fd00:98::/64").starts_with("blackhole fd00:98::/64"));
    h.delete(a("fd00:98::"), 64).unwrap();
    assert_eq!(show(&ns, "fd00:98::/64"), "");
}

#[test]
fn refused_requests_are_typed_errors() {
    let Some(ns) = make_ns("err") else { return };
    let h = RouteHandle::in_netns(&ns.path(0)).unwrap();
    // Checked before anything is sent.
    for e in [
        h.replace_blackhole(a("10.99.0.1"), 24).unwrap_err(),
        h.replace_blackhole(a("10.99.0.1"), 33).unwrap_err(),
        h.replace_via(a("10.99.0.1"), 32, a("fd00::1"), None)
            .unwrap_err(),
        h.replace_via(a("10.99.0.1"), 32, a("10.232.0.2"), Some(a("fd00::1")))
            .unwrap_err(),
    ] {
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
    }
    // Refused by the kernel: a gateway on no link.
    let e = h
        .replace_via(a("10.99.0.1"), 32, a("192.0.2.1"), None)
        .unwrap_err();
    let re = route_error(&e).expect("kernel errno");
    assert_eq!(re.errno, libc::ENETUNREACH, "{e}");
    assert!(
        e.to_string()
            .starts_with("ip route replace 10.99.0.1/32 via 192.0.2.1:"),
        "{e}"
    );
    // The socket still works after a refusal.
    h.replace_blackhole(a("10.99.0.1"), 32).unwrap();
    assert_eq!(show(&ns, "10.99.0.1/32"), "blackhole 10.99.0.1");

    // Without CAP_NET_ADMIN: drop it from this thread's effective set
    // (capset affects the calling thread only) and ask.
    let h = Arc::new(h);
    let h2 = h.clone();
    let e = std::thread::spawn(move || {
        drop_cap_net_admin();
        h2.delete(a("10.99.0.1"), 32).unwrap_err()
    })
    .join()
    .unwrap();
    assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");
    assert!(e.to_string().contains("CAP_NET_ADMIN"), "{e}");
    assert_eq!(show(&ns, "10.99.0.1/32"), "blackhole 10.99.0.1");
    // A missing namespace file names the path.
    let e = RouteHandle::in_netns(std::path::Path::new("/run/netns/no-such-ns-rtn")).unwrap_err();
    assert!(e.to_string().contains("no-such-ns-rtn"), "{e}");
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn drop_cap_net_admin() {
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    const CAP_NET_ADMIN: u32 = 12;
    let mut hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget/capset with a version-3 header and two data structs,
    // as the kernel expects; they affect the calling thread only.
    unsafe {
        assert_eq!(
            libc::syscall(
                libc::SYS_capget,
                &mut hdr as *mut CapHeader,
                data.as_mut_ptr()
            ),
            0
        );
        data[0].effective &= !(1 << CAP_NET_ADMIN);
        assert_eq!(
            libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr()),
            0,
            "capset: {}",
            io::Error::last_os_error()
        );
    }
}

#[test]
fn concurrent_use_from_several_threads() {
    let Some(ns) = make_ns("mt") else { return };
    let h = Arc::new(RouteHandle::in_netns(&ns.path(0)).unwrap());
    let threads: Vec<_> = (0..4u8)
        .map(|t| {
            let h = h.clone();
            std::thread::spawn(move || {
                for i in 0..100u8 {
                    let dst = IpAddr::from([10, 100 + t, i, 0]);
                    h.replace_via(dst, 24, a("10.232.0.2"), None).unwrap();
                    h.replace_blackhole(dst, 24).unwrap();
                    if i % 2 == 0 {
                        h.delete(dst, 24).unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let shown = show(&ns, "root 10.96.0.0/11");
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 4 * 50, "{shown}");
    assert!(lines.iter().all(|l| l.starts_with("blackhole ")));
}

/// Per-call cost, printed (not asserted): 1000 calls of each operation,
/// next to spawning `ip` for the same change.
#[test]
fn timing_per_call() {
    let Some(ns) = make_ns("t") else { return };
    let h = RouteHandle::in_netns(&ns.path(0)).unwrap();
    const N: u32 = 1000;
    let dst = a("10.99.0.1");
    let per = |t: Instant, n: u32| t.elapsed().as_secs_f64() * 1e6 / f64::from(n);

    let t = Instant::now();
    for i in 0..N {
        let gw = if i % 2 == 0 {
            "10.232.0.2"
        } else {
            "10.232.0.3"
        };
        h.replace_via(dst, 32, a(gw), Some(a("10.232.0.1")))
            .unwrap();
    }
    let via = per(t, N);
    let t = Instant::now();
    for _ in 0..N {
        h.replace_blackhole(dst, 32).unwrap();
        h.delete(dst, 32).unwrap();
    }
    let hold_release = per(t, 2 * N);
    let t = Instant::now();
    for _ in 0..N {
        h.replace_blackhole(a("fd00:99::1"), 128).unwrap();
        h.delete(a("fd00:99::1"), 128).unwrap();
    }
    let v6 = per(t, 2 * N);
    const SPAWNS: u32 = 20;
    let t = Instant::now();
    for i in 0..SPAWNS {
        let gw = if i % 2 == 0 {
            "10.232.0.2"
        } else {
            "10.232.0.3"
        };
        ip(&[
            "-n",
            ns.name(0),
            "route",
            "replace",
            "10.99.0.1/32",
            "via",
            gw,
        ])
        .unwrap();
    }
    let spawned = per(t, SPAWNS);
    eprintln!(
        "route change per call: replace_via {via:.1} µs, blackhole/delete {hold_release:.1} µs, \
         IPv6 blackhole/delete {v6:.1} µs (over {N} calls each); spawning `ip`: {spawned:.0} µs"
    );
}
