//! The namespaces, the daemons' configurations and their processes.
//!
//! ```text
//!             UE namespace (client, 10.77.0.2)
//!          ue1 /        ue2 |        \ ueN          access veths 10.231.i.0/24
//!   eNBC 1 (acc)     eNBC 2 (acc)  ...  eNBC N      mihfd + mih-user + service,
//!        bh |            bh |            | bh       10.99.0.1 on lo in each
//!   ----------- core namespace: bridge br0 -----------  backhaul 10.200.0.i/24
//!               (+ the relay's addresses 10.200.0.1ij with a relay)
//! ```

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use testkit::netns::ip;

use crate::relay::Relay;
use crate::{status, wait_for, Rollback};

pub const SERVICE_IP: &str = "10.99.0.1";
pub const SERVICE_PORT: u16 = 8080;
pub const UE_IP: &str = "10.77.0.2";
pub const PLMN: &str = "001-01";
pub const ENB_BASE: u32 = 0x1A2B0;
pub const UL_TEID: u32 = 0x101;
pub const FILE: &str = "demo.bin";
pub const SEED: u64 = 7;

/// The backhaul address of eNBC `i` (mihfd's UDP 4551, CXTP's TCP 5091).
pub fn backhaul_ip(i: u32) -> String {
    format!("10.200.0.{i}")
}

/// The relay's address for eNBC `from`'s view of eNBC `to` (on the core
/// bridge): `from` sends to it what is meant for `to`, and `to` sees what
/// `from` sent coming from `relay_ip(to, from)`, the address it has for
/// `from`. Each eNBC thus knows each peer by one address, as without the
/// relay, and mihfd's `check_peer_address` and the CXTP peer table hold.
pub fn relay_ip(from: u32, to: u32) -> String {
    format!("10.200.0.{}", 100 + 10 * from + to)
}

/// The timers of both daemons, chosen for the faults (see the README,
/// "Timers under faults").
#[derive(Clone, Copy, Debug)]
pub struct Timers {
    /// mihfd: first retransmission of an unacknowledged frame.
    pub retransmission_timeout_ms: u64,
    /// mihfd: factor between retransmissions.
    pub retransmission_backoff: u64,
    /// mihfd: retransmissions before a transaction fails.
    pub max_retransmissions: u64,
    /// mihfd: how long a transaction (and its duplicate record) lives.
    pub transaction_lifetime_ms: u64,
    /// mihfd: how long an ACK waits to ride on the response.
    pub ack_delay_ms: u64,
    /// mihfd: how long a local user may take to answer an indication.
    pub user_response_timeout_ms: u64,
    /// mih-user: commit confirm.
    pub mih_timeout_ms: u64,
    /// mih-user: the services' export (local).
    pub export_timeout_ms: u64,
    /// mih-user: the services' import (local).
    pub import_timeout_ms: u64,
    /// mih-user: no CTDR progress for this long rolls the source back.
    pub transfer_timeout_ms: u64,
    /// mih-user (destination): commit accepted -> first CTD.
    pub context_timeout_ms: u64,
    /// mih-user (destination): successful CTDR -> Complete.
    pub complete_timeout_ms: u64,
    /// mih-user: re-registration with mihfd.
    pub register_interval_ms: u64,
}

impl Timers {
    /// The timers for a backhaul that adds up to `extra_ms` of one-way
    /// delay (delay plus the largest reordering delay).
    pub fn for_backhaul(extra_ms: u64) -> Timers {
        // One MIH round trip on these veths is well under 1 ms; 150 ms
        // leaves room for a loaded host and is below TCP's 200 ms minimum
        // RTO, so MIH recovers a loss before CXTP would.
        let rto = 150 + 2 * extra_ms;
        // mihfd sends at 0, R, 3R, 7R and 15R: the commit survives four
        // losses in a row, and when the mih-user gives up mihfd has no
        // retransmission of that commit left (a stale request reaching the
        // destination after the source gave up would start a handover
        // there that nobody continues).
        let mih_timeout = 20 * rto;
        let export = 1000;
        let import = 1000;
        // TCP retransmits a lost segment after 200, 400, 800, 1600 ms
        // (RTO doubling from its 200 ms minimum): 4 s covers a segment lost
        // four times in a row (3.0 s), or three times in each direction.
        let transfer = 4000 + 2 * extra_ms;
        Timers {
            retransmission_timeout_ms: rto,
            retransmission_backoff: 2,
            max_retransmissions: 4,
            // Sends at 0, R, 3R, 7R, 15R; the last waits 16R: 31R in all.
            transaction_lifetime_ms: 32 * rto,
            ack_delay_ms: (rto / 3).min(50),
            user_response_timeout_ms: 1000,
            mih_timeout_ms: mih_timeout,
            export_timeout_ms: export,
            import_timeout_ms: import,
            transfer_timeout_ms: transfer,
            // The confirm (at most mih_timeout), both exports, then the
            // first CTD (at most transfer_timeout, or the source gives up).
            context_timeout_ms: mih_timeout + 2 * export + transfer,
            // At least as long as mihfd keeps retransmitting one Complete
            // (31R), and longer than a source that repeats the Complete
            // keeps trying (the daemon's `timers.complete_retries` = 4 at
            // `complete_retry_interval_ms` = 1000 by default, after its
            // transfer timeout), which the daemon requires.
            complete_timeout_ms: (32 * rto).max(transfer + 6000),
            register_interval_ms: 500,
        }
    }

    /// The longest one handover may take to end at both ends.
    pub fn handover_budget(&self) -> Duration {
        Duration::from_millis(
            self.mih_timeout_ms
                + 2 * self.export_timeout_ms
                + self.context_timeout_ms
                + self.transfer_timeout_ms
                + self.complete_timeout_ms
                // The destination's question at its complete timeout
                // (OrchestratorConfig::query_horizon: the daemon's 4
                // repeats at 1000 ms, and one interval more).
                + 6000
                + 5000,
        )
    }

    pub fn to_json(self) -> Value {
        json!({
            "mihfd": {
                "retransmission_timeout_ms": self.retransmission_timeout_ms,
                "retransmission_backoff": self.retransmission_backoff,
                "max_retransmissions": self.max_retransmissions,
                "transaction_lifetime_ms": self.transaction_lifetime_ms,
                "ack_delay_ms": self.ack_delay_ms,
                "user_response_timeout_ms": self.user_response_timeout_ms,
            },
            "mih_user": {
                "mih_timeout_ms": self.mih_timeout_ms,
                "export_timeout_ms": self.export_timeout_ms,
                "import_timeout_ms": self.import_timeout_ms,
                "transfer_timeout_ms": self.transfer_timeout_ms,
                "context_timeout_ms": self.context_timeout_ms,
                "complete_timeout_ms": self.complete_timeout_ms,
                "register_interval_ms": self.register_interval_ms,
            },
        })
    }
}

/// A process of an eNBC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Daemon {
    Mihfd,
    User,
    Service,
}

impl Daemon {
    pub fn label(self) -> &'static str {
        match self {
            Daemon::Mihfd => "mihfd",
            Daemon::User => "mih-user",
            Daemon::Service => "service",
        }
    }
}

/// One eNBC: namespace, processes, sockets.
pub struct Enbc {
    pub idx: u32,
    pub ns: String,
    pub failing: Option<Rollback>,
    pub mihfd: Option<Child>,
    pub user: Option<Child>,
    pub service: Option<Child>,
    pub ctl: PathBuf,
    pub x2: Option<UdpSocket>,
    /// The X2 TCP tap (the fleet's triggers: a storm's PDUs must not be
    /// lost in a full UDP receive buffer).
    pub x2_tcp: Option<std::net::TcpStream>,
    /// The fleet's other services (interactive, large state).
    pub extra: Vec<Child>,
}

impl Enbc {
    pub fn id(&self) -> String {
        format!("enbc{}", self.idx)
    }

    pub fn child(&mut self, d: Daemon) -> &mut Option<Child> {
        match d {
            Daemon::Mihfd => &mut self.mihfd,
            Daemon::User => &mut self.user,
            Daemon::Service => &mut self.service,
        }
    }
}

/// Where the UE's packets to the service go (its route in the UE
/// namespace).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UePath {
    /// Towards the eNBC with this index in `Topology::enbcs`.
    Enbc(usize),
    /// Blackholed: a migration's hold that nobody ended.
    Held,
    /// Anything else (the route as `ip` shows it).
    Other(String),
}

/// Everything the demo made; removed on drop.
pub struct Topology {
    pub prefix: String,
    pub ue_ns: String,
    pub core_ns: String,
    pub enbcs: Vec<Enbc>,
    pub dir: PathBuf,
    pub bins: PathBuf,
    pub file_size: u64,
    pub rate: u64,
    pub timers: Timers,
    /// MIH and CXTP go through the relay in the core namespace.
    pub via_relay: bool,
    pub relay: Option<Relay>,
    /// Many UEs and services (`--ues`, `--services`, `--storm`).
    pub fleet: Option<crate::fleet::Plan>,
}

impl Drop for Topology {
    fn drop(&mut self) {
        // The relay first: it may hold a datagram for a daemon.
        self.relay = None;
        for e in &mut self.enbcs {
            for c in e.extra.iter_mut().chain(
                [&mut e.service, &mut e.user, &mut e.mihfd]
                    .into_iter()
                    .flatten(),
            ) {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        for e in &self.enbcs {
            let _ = ip(&["netns", "del", &e.ns]);
            if self.fleet.is_some() {
                let _ = std::fs::remove_dir_all(self.journal_dir(e));
            }
        }
        let _ = ip(&["netns", "del", &self.ue_ns]);
        let _ = ip(&["netns", "del", &self.core_ns]);
        for f in ["api", "ctl", "handoff"] {
            for e in &self.enbcs {
                let _ = std::fs::remove_file(self.dir.join(format!("e{}-{f}.sock", e.idx)));
            }
        }
    }
}

/// Remove namespaces (and fleet journals in /dev/shm) left by a demo that
/// died without cleaning up.
pub fn remove_stale() {
    for e in std::fs::read_dir("/dev/shm")
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().to_string();
        let pid = name
            .strip_prefix("hod")
            .and_then(|r| r.split_once('-'))
            .and_then(|(p, _)| p.parse::<u32>().ok());
        if let Some(pid) = pid {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let Ok(rd) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(rest) = name.strip_prefix("hod") else {
            continue;
        };
        let Some((pid, _)) = rest.split_once('-') else {
            continue;
        };
        if let Ok(pid) = pid.parse::<u32>() {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = ip(&["netns", "del", &name]);
            }
        }
    }
}

impl Topology {
    /// Where eNBC `e`'s mih-user keeps its session journal: next to its
    /// hand-off socket (the daemon's default place), or, for a fleet, in
    /// tmpfs (`/dev/shm`), as the daemon's default under `/run` is: with
    /// thousands of migrations a second the journal's fsyncs to a disk
    /// would cost more CPU than the rest of the mih-user.
    pub fn journal_dir(&self, e: &Enbc) -> PathBuf {
        match self.fleet {
            Some(_) => PathBuf::from(format!("/dev/shm/{}-e{}.journal", self.prefix, e.idx)),
            None => self.dir.join(format!("e{}-handoff.journal", e.idx)),
        }
    }

    /// The address eNBC `me` has for eNBC `other`.
    fn peer_ip(&self, me: u32, other: u32) -> String {
        if self.via_relay {
            relay_ip(me, other)
        } else {
            backhaul_ip(other)
        }
    }

    fn mihfd_toml(&self, e: &Enbc) -> String {
        let t = &self.timers;
        let mut s = format!(
            "mihf_id = \"{id}\"\n[listen]\nudp = [\"{addr}:4551\"]\ntcp = []\n[sap]\nlisten = \"127.0.0.1:1025\"\n\
             [timers]\nretransmission_timeout_ms = {}\nretransmission_backoff = {}\nmax_retransmissions = {}\n\
             transaction_lifetime_ms = {}\nack_delay_ms = {}\nuser_response_timeout_ms = {}\n",
            t.retransmission_timeout_ms,
            t.retransmission_backoff,
            t.max_retransmissions,
            t.transaction_lifetime_ms,
            t.ack_delay_ms,
            t.user_response_timeout_ms,
            id = e.id(),
            addr = backhaul_ip(e.idx),
        );
        for o in self.enbcs.iter().filter(|o| o.idx != e.idx) {
            s += &format!(
                "[[peers]]\nid = \"{}\"\nudp = \"{}:4551\"\n",
                o.id(),
                self.peer_ip(e.idx, o.idx)
            );
        }
        s
    }

    fn user_toml(&self, e: &Enbc) -> String {
        let d = self.dir.display();
        let i = e.idx;
        let t = &self.timers;
        let mut s = format!(
            r#"[mihf]
sap = "127.0.0.1:1025"
user_id = "mih-user"
register_interval_ms = {register}

[api]
socket = "{d}/e{i}-api.sock"
export_timeout_ms = {export}
import_timeout_ms = {import}

[cxtp]
listen = "{addr}:5091"
transfer_timeout_ms = {transfer}

[timers]
mih_timeout_ms = {mih}
context_timeout_ms = {context}
complete_timeout_ms = {complete}

[x2]
udp = "127.0.0.1:36422"
tcp = "127.0.0.1:36423"

[control]
socket = "{d}/e{i}-ctl.sock"

[sessions]
mode = "tcp_repair"
handoff_socket = "{d}/e{i}-handoff.sock"
journal_dir = "{journal}"

"#,
            register = t.register_interval_ms,
            export = t.export_timeout_ms,
            import = t.import_timeout_ms,
            transfer = t.transfer_timeout_ms,
            mih = t.mih_timeout_ms,
            context = t.context_timeout_ms,
            complete = t.complete_timeout_ms,
            addr = backhaul_ip(i),
            journal = self.journal_dir(e).display(),
        );
        // The hold: the UE's packets to the service stop at the UE (the
        // network's job in a real deployment), until a path switch (the
        // destination's on commit, ours on rollback) replaces the route.
        // With many UEs, each has its own table in the UE namespace
        // (`ip rule from UE lookup N`): the hook changes that UE's only.
        let (per_ue, src) = match &self.fleet {
            Some(_) => (crate::fleet::hook_tables(), String::new()),
            None => (String::new(), format!("src = \"{UE_IP}\"\n")),
        };
        s += &format!(
            "[sessions.hold]\nnetns = \"{ue}\"\nroute = \"{SERVICE_IP}/32\"\nvia = \"blackhole\"\n{per_ue}\n",
            ue = self.ue_ns
        );
        s += &format!(
            "[sessions.path_switch]\nnetns = \"{ue}\"\nroute = \"{SERVICE_IP}/32\"\nvia = \"10.231.{i}.1\"\n{src}{per_ue}\n",
            ue = self.ue_ns
        );
        if self.enbcs.iter().any(|o| o.failing.is_some()) {
            // One attempt per X2 trigger: the demo reads each trigger's own
            // record, and a retry towards the failing eNBC would add records
            // (and freezes of the stream) it does not expect.
            s += "[schedule]\nmax_attempts = 1\n\n";
        }
        match &self.fleet {
            Some(plan) => s += &plan.user_toml(),
            None => s += &format!("[[ues]]\nue_address = \"{UE_IP}\"\nul_gtp_teid = {UL_TEID}\n\n"),
        }
        for o in self.enbcs.iter().filter(|o| o.idx != e.idx) {
            s += &format!(
                "[[neighbours]]\nplmn = \"{PLMN}\"\nenb_id = {}\nmihf_id = \"{}\"\n\n[[peers]]\nmihf_id = \"{}\"\ncxtp = \"{}:5091\"\n\n",
                ENB_BASE + o.idx,
                o.id(),
                o.id(),
                self.peer_ip(i, o.idx)
            );
        }
        s
    }

    pub(crate) fn build(
        args: &crate::Args,
        file_size: u64,
        bins: PathBuf,
        dir: PathBuf,
        timers: Timers,
    ) -> Result<Topology, String> {
        let (enbcs, rollback, rate) = (args.enbcs, args.rollback, args.rate());
        let via_relay = args.needs_relay();
        let prefix = format!("hod{}", std::process::id());
        let extra = u32::from(rollback != Rollback::None);
        let mut t = Topology {
            ue_ns: format!("{prefix}-ue"),
            core_ns: format!("{prefix}-core"),
            enbcs: Vec::new(),
            prefix,
            dir,
            bins,
            file_size,
            rate,
            timers,
            via_relay,
            relay: None,
            fleet: crate::fleet::Plan::from_args(args),
        };
        for i in 1..=enbcs + extra {
            t.enbcs.push(Enbc {
                idx: i,
                ns: format!("{}-e{i}", t.prefix),
                failing: (i > enbcs).then_some(rollback),
                mihfd: None,
                user: None,
                service: None,
                ctl: t.dir.join(format!("e{i}-ctl.sock")),
                x2: None,
                x2_tcp: None,
                extra: Vec::new(),
            });
        }
        let (ue, core) = (t.ue_ns.clone(), t.core_ns.clone());
        for ns in [&ue, &core] {
            ip(&["netns", "add", ns])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        ip(&["-n", &core, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &core, "link", "set", "br0", "up"])?;
        if t.fleet.is_none() {
            let addr = format!("{UE_IP}/32");
            ip(&["-n", &ue, "addr", "add", &addr, "dev", "lo"])?;
        }
        for e in &t.enbcs {
            let (ns, i) = (&e.ns, e.idx);
            ip(&["netns", "add", ns])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            let (ue_if, bh_if) = (format!("ue{i}"), format!("bh{i}"));
            ip(&[
                "-n", ns, "link", "add", "acc", "type", "veth", "peer", "name", &ue_if, "netns",
                &ue,
            ])?;
            let acc = format!("10.231.{i}.1/24");
            ip(&["-n", ns, "addr", "add", &acc, "dev", "acc"])?;
            ip(&["-n", ns, "link", "set", "acc", "up"])?;
            let ue_addr = format!("10.231.{i}.2/24");
            ip(&["-n", &ue, "addr", "add", &ue_addr, "dev", &ue_if])?;
            ip(&["-n", &ue, "link", "set", &ue_if, "up"])?;
            ip(&[
                "-n", ns, "link", "add", "bh", "type", "veth", "peer", "name", &bh_if, "netns",
                &core,
            ])?;
            let bh = format!("{}/24", backhaul_ip(i));
            ip(&["-n", ns, "addr", "add", &bh, "dev", "bh"])?;
            ip(&["-n", ns, "link", "set", "bh", "up"])?;
            ip(&["-n", &core, "link", "set", &bh_if, "master", "br0", "up"])?;
            let svc = format!("{SERVICE_IP}/32");
            ip(&["-n", ns, "addr", "add", &svc, "dev", "lo"])?;
            if t.fleet.is_some() {
                // The hand-off socket's queue (10 datagrams by default, per
                // namespace): a storm's exports give many sockets at once.
                crate::in_ns(ns, || {
                    std::fs::write("/proc/sys/net/unix/max_dgram_qlen", "512")
                })?
                .map_err(|e| format!("{ns}: net.unix.max_dgram_qlen: {e}"))?;
            }
            let via = format!("10.231.{i}.2");
            let ues = match &t.fleet {
                Some(_) => crate::fleet::UE_PREFIX.to_string(),
                None => format!("{UE_IP}/32"),
            };
            ip(&["-n", ns, "route", "add", &ues, "via", &via])?;
        }
        if via_relay {
            for a in &t.enbcs {
                for b in t.enbcs.iter().filter(|b| b.idx != a.idx) {
                    let addr = format!("{}/24", relay_ip(a.idx, b.idx));
                    ip(&["-n", &core, "addr", "add", &addr, "dev", "br0"])?;
                }
            }
        }
        match &t.fleet {
            // Every UE its address on lo, a rule and a table of its own.
            Some(plan) => plan.ue_namespace(&t.dir, &ue)?,
            None => {
                let svc = format!("{SERVICE_IP}/32");
                ip(&[
                    "-n",
                    &ue,
                    "route",
                    "add",
                    &svc,
                    "via",
                    "10.231.1.1",
                    "src",
                    UE_IP,
                ])?;
            }
        }
        Ok(t)
    }

    /// Start `prog` in namespace `ns`; its standard error goes to
    /// `<log>.log` (appended to on a restart, so a killed instance's lines
    /// stay).
    fn spawn(
        &self,
        ns: &str,
        log: &str,
        prog: &str,
        args: &[String],
        append: bool,
    ) -> Result<Child, String> {
        let path = self.bins.join(prog);
        let log_path = self.dir.join(format!("{log}.log"));
        let log = OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(&log_path)
            .map_err(|e| format!("{}: {e}", log_path.display()))?;
        // `ip netns exec` execs the program: the child's pid is the daemon's.
        Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(&path)
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("HANDOVER_DEMO_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn start_mihfd(&mut self, k: usize, append: bool) -> Result<(), String> {
        let e = &self.enbcs[k];
        let cfg = self.dir.join(format!("e{}-mihfd.toml", e.idx));
        if !append {
            std::fs::write(&cfg, self.mihfd_toml(e)).map_err(|x| x.to_string())?;
        }
        let child = self.spawn(
            &e.ns,
            &format!("e{}-mihfd", e.idx),
            "mihfd",
            &["-c".into(), cfg.display().to_string()],
            append,
        )?;
        self.enbcs[k].mihfd = Some(child);
        Ok(())
    }

    pub fn start_user(&mut self, k: usize, append: bool) -> Result<(), String> {
        let e = &self.enbcs[k];
        let cfg = self.dir.join(format!("e{}-mih-user.toml", e.idx));
        if !append {
            std::fs::write(&cfg, self.user_toml(e)).map_err(|x| x.to_string())?;
            // A session journal left by an earlier run in this directory
            // (the daemon keeps it next to the hand-off socket) is not this
            // run's: a restart (append) must find its own, a first start
            // none.
            let _ = std::fs::remove_dir_all(self.journal_dir(e));
        }
        let _ = std::fs::remove_file(&e.ctl);
        let child = self.spawn(
            &e.ns,
            &format!("e{}-mih-user", e.idx),
            "mih-user",
            &["-c".into(), cfg.display().to_string(), "--log-json".into()],
            append,
        )?;
        self.enbcs[k].user = Some(child);
        let ctl = self.enbcs[k].ctl.clone();
        wait_for(
            &format!("{} mih-user control socket", self.enbcs[k].id()),
            10,
            || status(&ctl).map(|_| ()),
        )?;
        Ok(())
    }

    pub fn start_service(&mut self, k: usize, append: bool) -> Result<(), String> {
        let e = &self.enbcs[k];
        let seed = if e.failing == Some(Rollback::Refuse) {
            SEED + 1
        } else {
            SEED
        };
        let d = self.dir.display();
        let i = e.idx;
        let mut args = vec![
            "--listen".into(),
            format!("{SERVICE_IP}:{SERVICE_PORT}"),
            "--api-socket".into(),
            format!("{d}/e{i}-api.sock"),
            "--handoff-socket".into(),
            format!("{d}/e{i}-handoff.sock"),
            "--file-size".into(),
            self.file_size.to_string(),
            "--rate".into(),
            self.rate.to_string(),
            "--seed".into(),
            seed.to_string(),
        ];
        let mut others = Vec::new();
        if let Some(plan) = &self.fleet {
            args.extend(plan.http_args(self.rate));
            others = plan.other_services(&format!("{d}/e{i}"));
        }
        let child = self.spawn_service(k, "service", "example-http-service", &args, append)?;
        self.enbcs[k].service = Some(child);
        for (name, prog, args) in others {
            let child = self.spawn_service(k, &name, prog, &args, append)?;
            self.enbcs[k].extra.push(child);
        }
        let ctl = self.enbcs[k].ctl.clone();
        let want = 1 + self.enbcs[k].extra.len();
        wait_for(&format!("enbc{i} service registration"), 10, || {
            let s = status(&ctl)?;
            (s["registered"] == true && s["services"].as_array()?.len() >= want).then_some(())
        })
    }

    /// Start a service in eNBC `k` and wait for its "listening on" line.
    fn spawn_service(
        &self,
        k: usize,
        name: &str,
        prog: &str,
        args: &[String],
        append: bool,
    ) -> Result<Child, String> {
        let e = &self.enbcs[k];
        let i = e.idx;
        let mut child = self.spawn(&e.ns, &format!("e{i}-{name}"), prog, args, append)?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        if !line.starts_with("listening on") {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "enbc{i}: {prog} did not start (see {}/e{i}-{name}.log)",
                self.dir.display()
            ));
        }
        Ok(child)
    }

    pub fn start(&mut self) -> Result<(), String> {
        for k in 0..self.enbcs.len() {
            self.start_mihfd(k, false)?;
        }
        for k in 0..self.enbcs.len() {
            self.start_user(k, false)?;
            self.start_service(k, false)?;
            let ns = self.enbcs[k].ns.clone();
            let sock = crate::in_ns(&ns, || UdpSocket::bind("127.0.0.1:0"))?
                .map_err(|e| format!("X2 socket: {e}"))?;
            self.enbcs[k].x2 = Some(sock);
            if self.fleet.is_some() {
                let tcp = crate::in_ns(&ns, || std::net::TcpStream::connect("127.0.0.1:36423"))?
                    .map_err(|e| format!("X2 TCP tap: {e}"))?;
                let _ = tcp.set_nodelay(true);
                self.enbcs[k].x2_tcp = Some(tcp);
            }
        }
        Ok(())
    }

    /// Kill (SIGKILL) and reap one process.
    pub fn stop(&mut self, k: usize, d: Daemon) {
        if let Some(mut c) = self.enbcs[k].child(d).take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Reap a process something else killed.
    pub fn reap(&mut self, k: usize, d: Daemon) {
        if let Some(mut c) = self.enbcs[k].child(d).take() {
            let _ = c.wait();
        }
    }

    /// The pid of a running process.
    pub fn pid(&self, k: usize, d: Daemon) -> Option<i32> {
        let e = &self.enbcs[k];
        let c = match d {
            Daemon::Mihfd => &e.mihfd,
            Daemon::User => &e.user,
            Daemon::Service => &e.service,
        };
        c.as_ref().map(|c| c.id() as i32)
    }

    /// Kill and restart a failing eNBC's mih-user and service.
    pub fn restart(&mut self, k: usize) -> Result<(), String> {
        self.stop(k, Daemon::Service);
        self.stop(k, Daemon::User);
        self.start_user(k, true)?;
        self.start_service(k, true)
    }

    /// Where the UE's packets to the service go.
    pub fn ue_path(&self) -> Result<UePath, String> {
        let out = ip(&[
            "-n",
            &self.ue_ns,
            "route",
            "show",
            &format!("{SERVICE_IP}/32"),
        ])?;
        let line = out.lines().next().unwrap_or("").trim().to_string();
        if line.starts_with("blackhole") {
            return Ok(UePath::Held);
        }
        let via = line
            .split_whitespace()
            .skip_while(|w| *w != "via")
            .nth(1)
            .unwrap_or("");
        let k = self
            .enbcs
            .iter()
            .position(|e| via == format!("10.231.{}.1", e.idx));
        Ok(k.map_or(UePath::Other(line), UePath::Enbc))
    }

    /// The last lines of an eNBC process's log containing `needle`.
    pub fn log_lines(&self, k: usize, d: Daemon, needle: &str, max: usize) -> Vec<String> {
        let name = match d {
            Daemon::Mihfd => "mihfd",
            Daemon::User => "mih-user",
            Daemon::Service => "service",
        };
        let p = self.dir.join(format!("e{}-{name}.log", self.enbcs[k].idx));
        let text = std::fs::read_to_string(p).unwrap_or_default();
        let mut v: Vec<String> = text
            .lines()
            .filter(|l| l.contains(needle))
            .map(String::from)
            .collect();
        let skip = v.len().saturating_sub(max);
        v.drain(..skip);
        v
    }
}
