//! Fault injection on the backhaul: random loss with nftables in every
//! eNBC namespace (this module), delay, reordering, duplication and the
//! kill moments with the userspace relay ([`crate::relay`]).
//!
//! Loss is dropped on input, at the receiving eNBC's `bh` interface: every
//! MIH datagram (UDP 4551, and TCP 4551 if it were used) and every CXTP
//! segment (TCP 5091, either direction) crosses exactly one such hook
//! between two eNBCs (with the relay: the hook of the eNBC the relay
//! delivers to), so each one is lost with the given probability, both
//! ways. `numgen random mod 10000` gives a resolution of 0.01 %.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

/// nftables table the demo adds in each eNBC namespace.
const TABLE: &str = "hodfault";

/// Is `nft` there?
pub fn check_nft() -> Result<(), String> {
    match Command::new("nft").arg("--version").output() {
        Ok(o) if o.status.success() => Ok(()),
        _ => Err("--loss needs nftables' nft (apt-get install nftables)".into()),
    }
}

/// The ruleset for `pct` % loss.
pub fn loss_ruleset(pct: f64) -> String {
    let p = (pct * 100.0).round().clamp(0.0, 10_000.0) as u32;
    let drop = |class: &str| {
        format!(
            "counter name \"{class}_seen\" numgen random mod 10000 < {p} counter name \"{class}_dropped\" drop"
        )
    };
    format!(
        "table inet {TABLE} {{\n\
         \x20 counter mih_seen {{}}\n\
         \x20 counter mih_dropped {{}}\n\
         \x20 counter cxtp_seen {{}}\n\
         \x20 counter cxtp_dropped {{}}\n\
         \x20 chain in {{\n\
         \x20   type filter hook input priority 0; policy accept;\n\
         \x20   iifname \"bh\" meta l4proto {{ tcp, udp }} th dport 4551 {mih}\n\
         \x20   iifname \"bh\" meta l4proto {{ tcp, udp }} th sport 4551 th dport != 4551 {mih}\n\
         \x20   iifname \"bh\" tcp dport 5091 {cxtp}\n\
         \x20   iifname \"bh\" tcp sport 5091 tcp dport != 5091 {cxtp}\n\
         \x20 }}\n\
         }}\n",
        mih = drop("mih"),
        cxtp = drop("cxtp"),
    )
}

/// Install the loss rules in namespace `ns`.
pub fn install_loss(ns: &str, pct: f64) -> Result<(), String> {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("nft: {e}"))?;
    child
        .stdin
        .take()
        .ok_or("nft: no stdin")?
        .write_all(loss_ruleset(pct).as_bytes())
        .map_err(|e| format!("nft: {e}"))?;
    let out = child.wait_with_output().map_err(|e| format!("nft: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nft in {ns}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Packets seen and dropped by the loss rules.
#[derive(Clone, Copy, Debug, Default)]
pub struct LossCounters {
    pub mih_seen: u64,
    pub mih_dropped: u64,
    pub cxtp_seen: u64,
    pub cxtp_dropped: u64,
}

impl LossCounters {
    pub fn add(&mut self, o: &LossCounters) {
        self.mih_seen += o.mih_seen;
        self.mih_dropped += o.mih_dropped;
        self.cxtp_seen += o.cxtp_seen;
        self.cxtp_dropped += o.cxtp_dropped;
    }

    fn rate(dropped: u64, seen: u64) -> f64 {
        if seen == 0 {
            0.0
        } else {
            100.0 * dropped as f64 / seen as f64
        }
    }

    pub fn line(&self) -> String {
        format!(
            "MIH {} of {} packets dropped ({:.1} %), CXTP {} of {} segments dropped ({:.1} %)",
            self.mih_dropped,
            self.mih_seen,
            Self::rate(self.mih_dropped, self.mih_seen),
            self.cxtp_dropped,
            self.cxtp_seen,
            Self::rate(self.cxtp_dropped, self.cxtp_seen)
        )
    }

    pub fn to_json(self) -> Value {
        json!({
            "mih": { "seen": self.mih_seen, "dropped": self.mih_dropped,
                     "percent": Self::rate(self.mih_dropped, self.mih_seen) },
            "cxtp": { "seen": self.cxtp_seen, "dropped": self.cxtp_dropped,
                      "percent": Self::rate(self.cxtp_dropped, self.cxtp_seen) },
        })
    }
}

/// Read the loss counters of namespace `ns`.
pub fn read_loss(ns: &str) -> Result<LossCounters, String> {
    let out = Command::new("ip")
        .args([
            "netns", "exec", ns, "nft", "-j", "list", "counters", "table", "inet", TABLE,
        ])
        .output()
        .map_err(|e| format!("nft: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "nft list counters in {ns}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("nft -j: {e}"))?;
    let mut c = LossCounters::default();
    for item in v["nftables"].as_array().into_iter().flatten() {
        let ctr = &item["counter"];
        let n = ctr["packets"].as_u64().unwrap_or(0);
        match ctr["name"].as_str() {
            Some("mih_seen") => c.mih_seen = n,
            Some("mih_dropped") => c.mih_dropped = n,
            Some("cxtp_seen") => c.cxtp_seen = n,
            Some("cxtp_dropped") => c.cxtp_dropped = n,
            _ => {}
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ruleset_has_the_rate_in_hundredths() {
        let r = loss_ruleset(10.0);
        assert!(r.contains("mod 10000 < 1000 "), "{r}");
        assert_eq!(r.matches("drop\n").count(), 4, "{r}");
        assert!(loss_ruleset(0.25).contains("< 25 "));
        assert!(loss_ruleset(100.0).contains("< 10000 "));
    }
}
