//! The peer table of a [`Node`](super::node::Node), sans-IO.
//!
//! * **Configured peers** (from the configuration or
//!   [`Node::add_peer`](super::node::Node::add_peer)) are never evicted; at
//!   most `max_peers` of them.
//! * **Learned peers** (an unknown MIHF's MIH_Capability_Discover.request
//!   with `learn_peers`, or any frame of an unknown MIHF with
//!   `allow_unknown_peers`) live in a table of their own of at most
//!   `max_learned_peers` entries. When it is full, the peer heard from least
//!   recently (its last admitted frame) makes room. Learning never touches a
//!   configured peer.
//!
//! The table also answers "may a frame from this IP address belong to a
//! peer?" ([`PeerTable::knows_ip`]) without a scan, so that frames and TCP
//! connections from addresses no peer has are refused before they are read.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Instant;

use super::node::Peer;
use super::{canon, Endpoint};
use crate::wire::MihfId;

/// An IP address range (`10.0.0.0/8`, `2001:db8::/32`, or one address).
/// An IPv4 range also contains the IPv4-mapped IPv6 form of its addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    net: IpAddr,
    prefix: u8,
}

impl IpRange {
    /// `prefix` at most 32 (IPv4) or 128 (IPv6).
    pub fn new(net: IpAddr, prefix: u8) -> Option<IpRange> {
        let net = canon(net);
        let max = if net.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(IpRange { net, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, canon(ip)) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for IpRange {
    type Err = String;
    fn from_str(s: &str) -> Result<IpRange, String> {
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, p)) => (ip, Some(p)),
            None => (s, None),
        };
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| format!("`{s}`: not an IP address or range (e.g. 10.0.0.0/8)"))?;
        let max = if canon(ip).is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{s}`: the prefix length must be 0 to {max}"))?,
        };
        IpRange::new(ip, prefix).ok_or_else(|| format!("`{s}`: bad prefix length"))
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

/// At most `per_second` events per second on average, in bursts of at most
/// `per_second` (a token bucket, in nanoseconds of simulated time).
#[derive(Debug, Clone)]
pub struct RateLimit {
    cost_ns: u64,
    budget_ns: u64,
    last: Option<Instant>,
}

const SECOND_NS: u64 = 1_000_000_000;

impl RateLimit {
    /// `per_second` of 0 allows nothing.
    pub fn new(per_second: u32) -> RateLimit {
        RateLimit {
            cost_ns: SECOND_NS
                .checked_div(u64::from(per_second))
                .unwrap_or(u64::MAX),
            budget_ns: SECOND_NS,
            last: None,
        }
    }

    /// Take one token at `now`, if there is one.
    pub fn allow(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            let gained = now.saturating_duration_since(last).as_nanos();
            let gained = u64::try_from(gained).unwrap_or(u64::MAX);
            self.budget_ns = self.budget_ns.saturating_add(gained).min(SECOND_NS);
        }
        if self.last.is_none_or(|l| now > l) {
            self.last = Some(now);
        }
        if self.budget_ns >= self.cost_ns {
            self.budget_ns -= self.cost_ns;
            true
        } else {
            false
        }
    }
}

#[derive(Debug, Clone)]
struct Learned {
    peer: Peer,
    /// Position in `PeerTable::order` (larger = heard more recently).
    heard: u64,
}

/// Configured and learned peers. See the module documentation.
#[derive(Debug, Clone)]
pub struct PeerTable {
    configured: HashMap<MihfId, Peer>,
    learned: HashMap<MihfId, Learned>,
    /// Learned peers by the order in which they were last heard from.
    order: BTreeMap<u64, MihfId>,
    next_heard: u64,
    /// IP addresses of every peer (the `udp`, `tcp` and `last_from`
    /// addresses), with the number of peers that have each.
    ips: HashMap<IpAddr, usize>,
    max_configured: usize,
    max_learned: usize,
}

/// The addresses of a peer that [`PeerTable::knows_ip`] answers for.
fn ips_of(p: &Peer) -> impl Iterator<Item = IpAddr> {
    let mut v = [
        p.udp.map(|a| canon(a.ip())),
        p.tcp.map(|a| canon(a.ip())),
        p.last_from.map(|e| canon(e.addr().ip())),
    ];
    // Count each address once per peer.
    if v[1] == v[0] {
        v[1] = None;
    }
    if v[2] == v[0] || v[2] == v[1] {
        v[2] = None;
    }
    v.into_iter().flatten()
}

impl PeerTable {
    pub fn new(max_configured: usize, max_learned: usize) -> PeerTable {
        PeerTable {
            configured: HashMap::new(),
            learned: HashMap::new(),
            order: BTreeMap::new(),
            next_heard: 0,
            ips: HashMap::new(),
            max_configured,
            max_learned,
        }
    }

    fn add_ips(&mut self, p: &Peer) {
        for ip in ips_of(p) {
            *self.ips.entry(ip).or_insert(0) += 1;
        }
    }

    fn remove_ips(&mut self, p: &Peer) {
        for ip in ips_of(p) {
            if let Some(n) = self.ips.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    self.ips.remove(&ip);
                }
            }
        }
    }

    pub fn get(&self, id: &MihfId) -> Option<&Peer> {
        self.configured
            .get(id)
            .or_else(|| self.learned.get(id).map(|l| &l.peer))
    }

    /// Change a peer (configured or learned) in place. Its addresses may
    /// change; its place in the eviction order does not (see
    /// [`PeerTable::heard`]).
    pub fn modify<R>(&mut self, id: &MihfId, f: impl FnOnce(&mut Peer) -> R) -> Option<R> {
        let mut p = match self.configured.get(id) {
            Some(p) => p.clone(),
            None => self.learned.get(id)?.peer.clone(),
        };
        self.remove_ips(&p);
        let r = f(&mut p);
        // Identity and kind stay.
        p.id = id.clone();
        self.add_ips(&p);
        match self.configured.get_mut(id) {
            Some(slot) => {
                p.configured = true;
                *slot = p;
            }
            None => {
                if let Some(l) = self.learned.get_mut(id) {
                    p.configured = false;
                    l.peer = p;
                }
            }
        }
        Some(r)
    }

    /// A frame of `id` came from `from` and was admitted: remember where it
    /// came from and, for a learned peer, make it the most recently heard.
    pub fn heard(&mut self, id: &MihfId, from: Endpoint) {
        let changed = self.get(id).is_some_and(|p| p.last_from != Some(from));
        if changed {
            self.modify(id, |p| p.last_from = Some(from));
        }
        let stamp = self.next_heard;
        if let Some(l) = self.learned.get_mut(id) {
            self.order.remove(&l.heard);
            l.heard = stamp;
            self.order.insert(stamp, id.clone());
            self.next_heard += 1;
        }
    }

    /// Every peer, configured ones first.
    pub fn iter(&self) -> impl Iterator<Item = &Peer> {
        self.configured
            .values()
            .chain(self.learned.values().map(|l| &l.peer))
    }

    /// Learned peers, least recently heard first.
    pub fn learned_by_age(&self) -> impl Iterator<Item = &Peer> {
        self.order
            .values()
            .filter_map(|id| self.learned.get(id).map(|l| &l.peer))
    }

    pub fn len(&self) -> usize {
        self.configured.len() + self.learned.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn learned_len(&self) -> usize {
        self.learned.len()
    }

    /// True when some peer has `ip` as one of its addresses.
    pub fn knows_ip(&self, ip: IpAddr) -> bool {
        self.ips.contains_key(&canon(ip))
    }

    /// Add or replace a configured peer; a learned peer of the same ID
    /// becomes configured (its capabilities are kept).
    pub fn configure(&mut self, mut p: Peer) -> Result<(), &'static str> {
        p.configured = true;
        if !self.configured.contains_key(&p.id) && self.configured.len() >= self.max_configured {
            return Err("peer table full");
        }
        let old = match self.configured.remove(&p.id) {
            Some(old) => Some(old),
            None => self.remove_learned(&p.id),
        };
        if let Some(old) = old {
            self.remove_ips_if_configured(&old);
            if p.capabilities.is_none() {
                p.capabilities = old.capabilities;
            }
        }
        self.add_ips(&p);
        self.configured.insert(p.id.clone(), p);
        Ok(())
    }

    fn remove_ips_if_configured(&mut self, old: &Peer) {
        // A learned peer's addresses were already taken out by remove_learned.
        if old.configured {
            self.remove_ips(old);
        }
    }

    /// Add a learned peer as the most recently heard. When the learned
    /// table is full, the least recently heard learned peer is removed and
    /// returned. An ID that is already known is left as it is.
    pub fn learn(&mut self, mut p: Peer) -> Option<Peer> {
        if self.get(&p.id).is_some() || self.max_learned == 0 {
            return None;
        }
        p.configured = false;
        let evicted = if self.learned.len() >= self.max_learned {
            let oldest = self.order.first_key_value().map(|(_, id)| id.clone());
            oldest.and_then(|id| self.remove_learned(&id))
        } else {
            None
        };
        let heard = self.next_heard;
        self.next_heard += 1;
        self.add_ips(&p);
        self.order.insert(heard, p.id.clone());
        self.learned
            .insert(p.id.clone(), Learned { peer: p, heard });
        evicted
    }

    /// Forget a learned peer.
    pub fn remove_learned(&mut self, id: &MihfId) -> Option<Peer> {
        let l = self.learned.remove(id)?;
        self.order.remove(&l.heard);
        self.remove_ips(&l.peer);
        Some(l.peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn ranges() {
        let r: IpRange = "10.0.0.0/8".parse().unwrap();
        assert!(r.contains("10.200.1.2".parse().unwrap()));
        assert!(r.contains("::ffff:10.1.1.1".parse().unwrap()));
        assert!(!r.contains("11.0.0.1".parse().unwrap()));
        assert!(!r.contains("::1".parse().unwrap()));
        let one: IpRange = "192.0.2.7".parse().unwrap();
        assert!(one.contains("192.0.2.7".parse().unwrap()));
        assert!(!one.contains("192.0.2.8".parse().unwrap()));
        let all: IpRange = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("203.0.113.9".parse().unwrap()));
        let v6: IpRange = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:1::5".parse().unwrap()));
        assert!(!v6.contains("2001:db9::5".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<IpRange>().is_err());
        assert!("::/129".parse::<IpRange>().is_err());
        assert!("nonsense".parse::<IpRange>().is_err());
        assert_eq!(r.to_string(), "10.0.0.0/8");
    }

    #[test]
    fn rate_limit_is_a_token_bucket() {
        let t0 = Instant::now();
        let mut r = RateLimit::new(5);
        assert_eq!((0..10).filter(|_| r.allow(t0)).count(), 5);
        // 200 ms buy one more.
        assert!(r.allow(t0 + Duration::from_millis(200)));
        assert!(!r.allow(t0 + Duration::from_millis(200)));
        // A long pause refills to the burst, not beyond.
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..10).filter(|_| r.allow(later)).count(), 5);
        assert!(!RateLimit::new(0).allow(later));
    }
}
