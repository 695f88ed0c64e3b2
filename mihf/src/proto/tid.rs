//! Transaction IDs towards each peer MIHF: allocation and quarantine.
//!
//! A transaction is identified by (peer MIHF ID, TID) on both sides
//! (IEEE 802.21-2008 8.2.4; ODTONE's `transaction_pool::find`), and the TID
//! has only 12 bits. So each peer has a TID space of its own, and a TID
//! ends its transaction in *quarantine*: it is not handed out again until
//! the peer has surely forgotten it (its duplicate-detection record is gone
//! and no frame of the old transaction is still on the way). The engine
//! decides how long ([`super::transaction::Engine`], "TID quarantine" in
//! mihf/README.md); this module only keeps the books, in O(1) amortized per
//! allocation:
//!
//! * TIDs never used yet are handed out first, in order, from a first TID
//!   that is 1 unless the allocator has a seed ([`TidAllocator::with_seed`]:
//!   a restarted MIHF then does not begin where its previous life began,
//!   with TIDs whose duplicate records the peer may still keep), wrapping
//!   after the window (s, s + 1, ..., window, 1, ..., s − 1);
//! * a released TID waits in a *lane*, a FIFO of (release time, TID) whose
//!   entries all had the same hold, so that each lane is in release order
//!   when time only moves forward; due entries move to the free FIFO, whose
//!   front (the TID released longest ago) is handed out next;
//! * an entry behind one that is not due yet waits for it. If the caller's
//!   clock went backwards this makes a TID wait longer, never less.
//!
//! A peer's space is dropped once it has no TID out and nothing in
//! quarantine (checked in sweeps whose cost is amortized over the
//! allocations that grew the map).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::wire::MihfId;

/// The largest TID (12 bits). TID 0 is never allocated.
pub const MAX_TID: u16 = 4095;

/// A released TID and when it may be used again.
type Held = (Instant, u16);

#[derive(Debug)]
struct Lane {
    hold: Duration,
    queue: VecDeque<Held>,
}

/// The TIDs of one peer.
#[derive(Debug)]
struct Space {
    /// Highest TID of this space.
    window: u16,
    /// The first TID handed out.
    first: u16,
    /// How many TIDs were handed out fresh (window when all were).
    fresh_used: u16,
    /// Released TIDs whose quarantine is over, oldest release first.
    free: VecDeque<u16>,
    lanes: Vec<Lane>,
    /// Bit per TID: allocated and not released.
    out: [u64; 64],
    outstanding: usize,
    quarantined: usize,
}

impl Space {
    fn new(window: u16, first: u16) -> Space {
        Space {
            window,
            first: first.clamp(1, window),
            fresh_used: 0,
            free: VecDeque::new(),
            lanes: Vec::new(),
            out: [0; 64],
            outstanding: 0,
            quarantined: 0,
        }
    }

    fn is_out(&self, tid: u16) -> bool {
        self.out[usize::from(tid / 64)] & (1 << (tid % 64)) != 0
    }

    fn set_out(&mut self, tid: u16, on: bool) {
        let w = &mut self.out[usize::from(tid / 64)];
        if on {
            *w |= 1 << (tid % 64);
        } else {
            *w &= !(1 << (tid % 64));
        }
    }

    /// Move every due quarantine entry to the free FIFO.
    fn drain_due(&mut self, now: Instant) {
        for lane in &mut self.lanes {
            while let Some(&(at, tid)) = lane.queue.front() {
                if at > now {
                    break;
                }
                lane.queue.pop_front();
                self.quarantined -= 1;
                self.free.push_back(tid);
            }
        }
    }

    fn alloc(&mut self, now: Instant) -> Result<u16, Option<Instant>> {
        let tid = if self.fresh_used < self.window {
            let t = (self.first - 1 + self.fresh_used) % self.window + 1;
            self.fresh_used += 1;
            t
        } else {
            if self.free.is_empty() {
                self.drain_due(now);
            }
            match self.free.pop_front() {
                Some(t) => t,
                None => return Err(self.next_release()),
            }
        };
        self.set_out(tid, true);
        self.outstanding += 1;
        Ok(tid)
    }

    /// The earliest time a quarantined TID comes free (None: every TID is
    /// held by an open transaction).
    fn next_release(&self) -> Option<Instant> {
        self.lanes
            .iter()
            .filter_map(|l| l.queue.front().map(|e| e.0))
            .min()
    }

    fn release(&mut self, tid: u16, now: Instant, hold: Duration) -> bool {
        if tid == 0 || tid > self.window || !self.is_out(tid) {
            return false;
        }
        self.set_out(tid, false);
        self.outstanding -= 1;
        if hold.is_zero() {
            self.free.push_back(tid);
            return true;
        }
        let at = now.checked_add(hold).unwrap_or(now);
        let lane = match self.lanes.iter_mut().position(|l| l.hold == hold) {
            Some(i) => &mut self.lanes[i],
            None => {
                self.lanes.push(Lane {
                    hold,
                    queue: VecDeque::new(),
                });
                self.lanes.last_mut().expect("just pushed")
            }
        };
        lane.queue.push_back((at, tid));
        self.quarantined += 1;
        true
    }

    /// Nothing out and nothing in quarantine at `now`: the space can go.
    fn idle(&self, now: Instant) -> bool {
        self.outstanding == 0
            && self
                .lanes
                .iter()
                .all(|l| l.queue.back().is_none_or(|e| e.0 <= now))
    }
}

/// What a peer's TID space holds (see [`TidAllocator::usage`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TidUsage {
    /// TIDs of open transactions.
    pub outstanding: usize,
    /// Released TIDs still in quarantine (or due and not yet moved).
    pub quarantined: usize,
}

/// TID spaces per peer MIHF ID.
#[derive(Debug)]
pub struct TidAllocator {
    window: u16,
    /// 0: every space starts at TID 1.
    seed: u64,
    spaces: HashMap<MihfId, Space>,
    /// Sweep idle spaces when the map grows past this.
    sweep_at: usize,
}

impl TidAllocator {
    /// TIDs 1 to `window` (at most [`MAX_TID`]) towards every peer.
    pub fn new(window: u16) -> TidAllocator {
        TidAllocator::with_seed(window, 0)
    }

    /// [`TidAllocator::new`] whose spaces start at a TID derived from
    /// `seed` and the peer (`seed` 0: at TID 1). A daemon seeds it anew at
    /// every start, so that after a restart its first requests do not reuse
    /// the TIDs it used just before, which the peer may still hold
    /// duplicate records of.
    pub fn with_seed(window: u16, seed: u64) -> TidAllocator {
        TidAllocator {
            window: window.clamp(1, MAX_TID),
            seed,
            spaces: HashMap::new(),
            sweep_at: 64,
        }
    }

    /// The first TID of `peer`'s space.
    fn first_tid(&self, peer: &MihfId) -> u16 {
        if self.seed == 0 {
            return 1;
        }
        // splitmix64 of the seed and an FNV-1a hash of the peer's ID.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in peer.0.iter() {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        let mut z = (self.seed ^ h).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z % u64::from(self.window)) as u16 + 1
    }

    /// Highest TID handed out.
    pub fn window(&self) -> u16 {
        self.window
    }

    /// A TID towards `peer` that is neither out nor in quarantine, or the
    /// earliest time one comes out of quarantine (`Err(None)`: every TID is
    /// held by an open transaction).
    pub fn alloc(&mut self, peer: &MihfId, now: Instant) -> Result<u16, Option<Instant>> {
        if !self.spaces.contains_key(peer) {
            if self.spaces.len() >= self.sweep_at {
                self.spaces.retain(|_, s| !s.idle(now));
                self.sweep_at = (self.spaces.len() * 2).max(64);
            }
            let first = self.first_tid(peer);
            self.spaces
                .insert(peer.clone(), Space::new(self.window, first));
        }
        let space = self.spaces.get_mut(peer).expect("inserted above");
        space.alloc(now)
    }

    /// End the use of `tid` towards `peer`: it may be allocated again from
    /// `now + hold`. Returns false (and changes nothing) if the TID was not
    /// out, so a TID can never be released twice.
    pub fn release(&mut self, peer: &MihfId, tid: u16, now: Instant, hold: Duration) -> bool {
        self.spaces
            .get_mut(peer)
            .is_some_and(|s| s.release(tid, now, hold))
    }

    /// True while `tid` towards `peer` belongs to an open transaction.
    pub fn is_out(&self, peer: &MihfId, tid: u16) -> bool {
        tid <= self.window && self.spaces.get(peer).is_some_and(|s| s.is_out(tid))
    }

    pub fn usage(&self, peer: &MihfId) -> TidUsage {
        self.spaces
            .get(peer)
            .map_or(TidUsage::default(), |s| TidUsage {
                outstanding: s.outstanding,
                quarantined: s.quarantined,
            })
    }

    /// Peers with a TID space.
    pub fn peers(&self) -> usize {
        self.spaces.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(s: &'static str) -> MihfId {
        MihfId::from_static(s)
    }

    /// A seeded allocator starts each peer elsewhere than TID 1 (the same
    /// place for the same seed and peer), wraps after the window, and
    /// still hands every TID out once before reusing any.
    #[test]
    fn a_seed_moves_the_first_tid_and_every_tid_is_used_once() {
        let now = Instant::now();
        let (a, b) = (peer("a"), peer("b"));
        let firsts: Vec<u16> = (1..=20u64)
            .map(|seed| {
                TidAllocator::with_seed(MAX_TID, seed)
                    .alloc(&a, now)
                    .unwrap()
            })
            .collect();
        assert!(firsts.iter().any(|t| *t != 1), "{firsts:?}");
        assert!(firsts.iter().all(|t| (1..=MAX_TID).contains(t)));
        let mut x = TidAllocator::with_seed(MAX_TID, 7);
        let mut y = TidAllocator::with_seed(MAX_TID, 7);
        assert_eq!(x.alloc(&a, now), y.alloc(&a, now));
        let mut z = TidAllocator::with_seed(16, 99);
        let mut seen: Vec<u16> = (0..16).map(|_| z.alloc(&b, now).unwrap()).collect();
        let first = seen[0];
        assert_eq!(seen[1], first % 16 + 1, "consecutive, wrapping");
        seen.sort_unstable();
        assert_eq!(seen, (1..=16).collect::<Vec<u16>>());
        assert_eq!(z.alloc(&b, now), Err(None), "all 16 out");
        assert_eq!(
            TidAllocator::new(16).alloc(&b, now),
            Ok(1),
            "no seed: TID 1"
        );
    }

    #[test]
    fn fresh_first_then_oldest_release_after_its_quarantine() {
        let mut a = TidAllocator::new(3);
        let p = peer("p");
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(a.alloc(&p, t0), Ok(1));
        assert_eq!(a.alloc(&p, t0), Ok(2));
        assert!(a.release(&p, 1, t0, ms(100)));
        assert!(!a.release(&p, 1, t0, ms(100)), "released twice");
        assert_eq!(a.alloc(&p, t0), Ok(3), "a fresh TID before a released one");
        assert_eq!(a.alloc(&p, t0 + ms(99)), Err(Some(t0 + ms(100))));
        assert!(a.release(&p, 3, t0 + ms(10), Duration::ZERO));
        assert_eq!(a.alloc(&p, t0 + ms(20)), Ok(3), "no hold: free at once");
        assert_eq!(a.alloc(&p, t0 + ms(100)), Ok(1));
        assert_eq!(a.alloc(&p, t0 + ms(100)), Err(None), "all three out");
        assert_eq!(
            a.usage(&p),
            TidUsage {
                outstanding: 3,
                quarantined: 0
            }
        );
        // Other peers have spaces of their own.
        assert_eq!(a.alloc(&peer("q"), t0), Ok(1));
    }

    #[test]
    fn lanes_keep_release_order_per_hold() {
        let mut a = TidAllocator::new(4);
        let p = peer("p");
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        for _ in 0..4 {
            a.alloc(&p, t0).unwrap();
        }
        // A long hold released first does not hold back a short one.
        a.release(&p, 1, t0, ms(1000));
        a.release(&p, 2, t0 + ms(1), ms(10));
        a.release(&p, 3, t0 + ms(2), ms(10));
        assert_eq!(a.alloc(&p, t0 + ms(10)), Err(Some(t0 + ms(11))));
        assert_eq!(a.alloc(&p, t0 + ms(12)), Ok(2));
        assert_eq!(a.alloc(&p, t0 + ms(12)), Ok(3));
        assert_eq!(a.alloc(&p, t0 + ms(12)), Err(Some(t0 + ms(1000))));
        assert_eq!(a.alloc(&p, t0 + ms(1000)), Ok(1));
    }

    #[test]
    fn idle_spaces_are_swept() {
        let mut a = TidAllocator::new(MAX_TID);
        let t0 = Instant::now();
        for i in 0..1024u32 {
            let p = MihfId::new(format!("p{i}").into_bytes());
            let tid = a.alloc(&p, t0).unwrap();
            a.release(&p, tid, t0, Duration::from_millis(5));
        }
        assert_eq!(a.peers(), 1024, "nothing is idle before the holds end");
        let later = t0 + Duration::from_millis(5);
        a.alloc(&peer("last"), later).unwrap();
        assert!(a.peers() <= 2, "{} spaces left", a.peers());
    }
}
