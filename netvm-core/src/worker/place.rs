//! State-based balancing (`balance: "least_loaded"`): the placement table that remembers, per
//! (flow, service), which instance a flow was placed on, and the choice of a new instance.
//!
//! **What is placed.** A flow is identified by the symmetric hash the core computed at RX from
//! its private header copy. That hash travels with the packet in the mbuf header
//! (`hash.rss`, written by `deliver` for every delivery, after a domain-crossing copy too) —
//! core-private memory no NF can reach — and is read back there when the NF returns the
//! buffer, so the placement at a later chain position never depends on the descriptor's
//! `flow_hash`, which the NF can rewrite. A service is its index in
//! [`Tables::services`](crate::tables::Tables::services) (built once from the NF list;
//! `set_chains` replaces chains, never services), an instance its NF index (fixed for the
//! run), so a placement means the same before and after every table swap and outlives the
//! workers' flow caches (cleared on each swap, and with their own evictions).
//!
//! **The table** ([`Placements`], in [`Shared`](crate::Shared), used by every worker):
//! [`SETS`] sets of [`WAYS`] `AtomicU64` words, one 64-byte cache line per set, allocated and
//! zeroed once at start. A word is `valid(1) | service(8) | NF index(16) | flow hash(32)`; the
//! set is chosen by a multiplicative hash of (flow hash, service), and the lookup compares
//! (flow hash, service) exactly against the set's words: a hit is one cache-line read and no
//! write, so the line stays shared between workers. Nothing but the word itself is published
//! through it, so every access is `Relaxed`: agreement rests on each word's single
//! modification order, not on ordering with other memory.
//!
//! **Installing.** A miss installs with one `compare_exchange` into the set's first empty way
//! or, when the set is full, into the way the key itself selects (its *victim way*, from other
//! bits of the same hash). Ways are filled in order and never emptied again, so workers
//! installing the same key at the same time aim at the same word — the first empty way is the
//! same for every view of the set that has not seen a later install (and one that has will
//! fail its `compare_exchange` on the word that changed), and the victim way of a full set is
//! the key's own. One `compare_exchange` wins; the loser, seeing the word changed, looks again,
//! finds the winner's placement and adopts it: two workers placing one flow at once agree
//! (`tests::concurrent_placement_agrees`), and a key is never in a set twice. (If a third key
//! evicts the winner's placement before the loser looks again, that placement is lost as by
//! any eviction, and the loser's becomes the flow's.)
//! A placement whose instance is no longer attached (detached, dead, quarantined) is re-placed
//! in its own word by the same `compare_exchange`. If a set changes under a worker more than
//! [`TRIES`] times in a row, the packet goes to the worker's choice without recording it (the
//! next packet of the flow tries again).
//!
//! **Bound and eviction.** [`SETS`] × [`WAYS`] = 65536 placements (512 KiB). A placement
//! stays until its set is full and a new key's victim way is its way: each set keeps its first
//! [`WAYS`] keys untouched, after which every new key of the set replaces one way (effectively
//! at random: the victim way comes from the key's hash), the table's only ageing. Placements of
//! flows that ended are not removed; they are what the victim ways replace. An evicted flow is
//! placed anew on its next packet, like a new flow (least-loaded choice, so perhaps another
//! instance).
//!
//! **Collisions.** The key is the 32-bit flow hash, not the 5-tuple: two flows with the same
//! hash (and every non-IP frame, hash 0) share one placement per service. That costs balance —
//! they sit on one instance — never correctness: each packet still goes to an attached
//! instance of its service, and the owner word, not the placement, decides what may come back.

use std::sync::atomic::{AtomicU64, Ordering};

use super::State;
use crate::{nf_state, Shared};

/// Sets in the table (a power of two).
const SETS: usize = 8192;
/// Ways per set: 8 words, one cache line.
const WAYS: usize = 8;
/// Installation attempts before a packet goes unrecorded (see the module docs).
const TRIES: usize = 2 * WAYS;

const VALID: u64 = 1 << 63;
/// The key bits of a word: flow hash and service.
const KEY_MASK: u64 = 0x00ff_0000_ffff_ffff;
const SET_BITS: u32 = SETS.trailing_zeros();
const _: () = assert!(SETS.is_power_of_two() && WAYS.is_power_of_two());

#[repr(C, align(64))]
struct Set([AtomicU64; WAYS]);
const _: () = assert!(std::mem::size_of::<Set>() == 64);

/// The placement table (see the module docs).
pub struct Placements {
    sets: Box<[Set]>,
}

impl std::fmt::Debug for Placements {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Placements")
            .field("capacity", &(SETS * WAYS))
            .finish_non_exhaustive()
    }
}

impl Default for Placements {
    fn default() -> Self {
        Self::new()
    }
}

/// A placement as a lookup found it: its way and its word (to re-place it in place).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Placed {
    way: usize,
    word: u64,
}

impl Placed {
    /// The NF the flow is placed on.
    #[inline]
    pub(crate) fn nf(self) -> u16 {
        nf_of(self.word)
    }
}

#[inline]
fn nf_of(word: u64) -> u16 {
    u16::try_from((word >> 32) & 0xffff).unwrap_or(u16::MAX)
}

/// The key bits of (flow `hash`, `service`); services are NF-list derived, at most 254.
#[inline]
fn key(hash: u32, service: u16) -> u64 {
    u64::from(hash) | (u64::from(service & 0xff) << 48)
}

#[inline]
fn word(key: u64, nf: u16) -> u64 {
    VALID | key | (u64::from(nf) << 32)
}

#[inline]
fn is(word: u64, key: u64) -> bool {
    word & VALID != 0 && word & KEY_MASK == key
}

impl Placements {
    /// An empty table (allocated here, once).
    #[must_use]
    pub fn new() -> Self {
        Self {
            sets: (0..SETS)
                .map(|_| Set([const { AtomicU64::new(0) }; WAYS]))
                .collect(),
        }
    }

    /// Total capacity in placements.
    pub const CAPACITY: usize = SETS * WAYS;

    /// The set of `key` and its victim way.
    #[inline]
    fn locate(&self, key: u64) -> (&Set, usize) {
        // Fibonacci hashing: the top bits pick the set, the next ones the victim way.
        let mix = key.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let set = usize::try_from(mix >> (64 - SET_BITS)).unwrap_or(0) & (SETS - 1);
        let victim = usize::try_from(mix >> (64 - SET_BITS - WAYS.trailing_zeros())).unwrap_or(0)
            & (WAYS - 1);
        (&self.sets[set], victim)
    }

    /// The placement of (flow `hash`, `service`), if there is one.
    #[inline]
    pub(crate) fn get(&self, hash: u32, service: u16) -> Option<Placed> {
        let k = key(hash, service);
        let (set, _) = self.locate(k);
        set.0.iter().enumerate().find_map(|(way, w)| {
            let word = w.load(Ordering::Relaxed);
            is(word, k).then_some(Placed { way, word })
        })
    }

    /// Places (flow `hash`, `service`) on `nf` and returns the instance the flow is placed on
    /// now: `nf`, or the choice of a worker that placed the same flow at the same time.
    /// `stale` is the placement a lookup found and judged stale (its instance went away): it
    /// is replaced in its own word.
    pub(crate) fn place(&self, hash: u32, service: u16, nf: u16, stale: Option<Placed>) -> u16 {
        let k = key(hash, service);
        let new = word(k, nf);
        let (set, victim) = self.locate(k);
        let mut target = stale.map(|p| (p.way, p.word));
        for _ in 0..TRIES {
            let (way, old) = match target.take() {
                Some(t) => t,
                None => {
                    let mut empty = None;
                    let mut seen = [0u64; WAYS];
                    for (way, w) in set.0.iter().enumerate() {
                        let v = w.load(Ordering::Relaxed);
                        if is(v, k) {
                            // Someone placed it since the caller looked (or re-placed it).
                            return nf_of(v);
                        }
                        if v & VALID == 0 && empty.is_none() {
                            empty = Some(way);
                        }
                        seen[way] = v;
                    }
                    match empty {
                        Some(way) => (way, seen[way]),
                        None => (victim, seen[victim]),
                    }
                }
            };
            match set.0[way].compare_exchange(old, new, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return nf,
                // Lost to a worker placing this flow: adopt its choice.
                Err(cur) if is(cur, k) => return nf_of(cur),
                // The set changed under us (another key): look again.
                Err(_) => {}
            }
        }
        nf
    }
}

impl State {
    /// `least_loaded` choice of an instance of `service` (NF indices `inst`, at least two) for
    /// flow `hash`: where the flow is placed if that instance is attached, else the emptiest
    /// active instance, recorded as the flow's placement.
    #[inline]
    pub(super) fn least_loaded(
        &mut self,
        sh: &Shared,
        service: u16,
        inst: &[u16],
        hash: u32,
    ) -> Option<u16> {
        let found = sh.placements.get(hash, service);
        if let Some(p) = found {
            let nf = p.nf();
            if inst.contains(&nf)
                && sh.nfs[usize::from(nf)].state.load(Ordering::Relaxed) == nf_state::ATTACHED
            {
                if self.nfs[usize::from(nf)].rx.is_some() {
                    return Some(nf);
                }
                // Attached, but this worker cannot reach it (it has not opened the NF's ring
                // yet, or just found the ring corrupt and the NF is about to be quarantined):
                // this packet goes elsewhere, the placement stays.
                return self.emptiest(sh, inst);
            }
        }
        // A new flow, or its instance went away: the emptiest ring, recorded.
        let best = self.emptiest(sh, inst)?;
        let nf = sh.placements.place(hash, service, best, found);
        // The winner of a concurrent placement chose an instance attached a moment ago; if
        // this worker cannot use it, this one packet goes to our own choice.
        Some(if inst.contains(&nf) && self.active(sh, nf) {
            nf
        } else {
            best
        })
    }

    /// The active instance whose RX ring (plus what this worker has staged for it) holds the
    /// fewest descriptors; ties go to the first in `inst`.
    #[inline]
    fn emptiest(&self, sh: &Shared, inst: &[u16]) -> Option<u16> {
        let mut best: Option<(u16, u32)> = None;
        for &nf in inst {
            if !self.active(sh, nf) {
                continue;
            }
            let link = &self.nfs[usize::from(nf)];
            let used = link
                .rx
                .as_ref()
                .and_then(|p| p.len().ok())
                .unwrap_or(u32::MAX)
                .saturating_add(crate::id32(link.nstaged));
            if best.is_none_or(|(_, b)| used < b) {
                best = Some((nf, used));
            }
        }
        best.map(|(nf, _)| nf)
    }

    /// Whether NF `nf` is attached and this worker has its RX ring open.
    #[inline]
    pub(super) fn active(&self, sh: &Shared, nf: u16) -> bool {
        sh.nfs[usize::from(nf)].state.load(Ordering::Relaxed) == nf_state::ATTACHED
            && self.nfs[usize::from(nf)].rx.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;

    /// The set index of (hash, service), for building keys that land in one set.
    fn set_of(t: &Placements, hash: u32, service: u16) -> usize {
        let (set, _) = t.locate(key(hash, service));
        (set as *const Set as usize - t.sets.as_ptr() as usize) / std::mem::size_of::<Set>()
    }

    fn victim_of(t: &Placements, hash: u32, service: u16) -> usize {
        t.locate(key(hash, service)).1
    }

    /// `n` flow hashes that share the set of `hash` (service 0), `hash` excluded.
    fn same_set(t: &Placements, hash: u32, n: usize) -> Vec<u32> {
        let s = set_of(t, hash, 0);
        (0u32..)
            .filter(|&h| h != hash && set_of(t, h, 0) == s)
            .take(n)
            .collect()
    }

    #[test]
    fn place_get_and_services_are_separate() {
        let t = Placements::new();
        assert_eq!(t.get(7, 0), None);
        assert_eq!(t.place(7, 0, 3, None), 3);
        assert_eq!(t.get(7, 0).map(Placed::nf), Some(3));
        // Same flow, another service: its own placement.
        assert_eq!(t.get(7, 1), None);
        assert_eq!(t.place(7, 1, 5, None), 5);
        assert_eq!(t.get(7, 0).map(Placed::nf), Some(3));
        // A second placement of a placed flow adopts the existing one.
        assert_eq!(t.place(7, 0, 9, None), 3);
        // Hash 0 (non-IP) and NF 0 are ordinary values.
        assert_eq!(t.place(0, 0, 0, None), 0);
        assert_eq!(t.get(0, 0).map(Placed::nf), Some(0));
    }

    #[test]
    fn stale_placement_is_replaced_in_place() {
        let t = Placements::new();
        t.place(42, 2, 1, None);
        let stale = t.get(42, 2).unwrap();
        assert_eq!(t.place(42, 2, 4, Some(stale)), 4);
        let now = t.get(42, 2).unwrap();
        assert_eq!((now.nf(), now.way), (4, stale.way));
        // Re-placing with an outdated view adopts the current placement.
        assert_eq!(t.place(42, 2, 6, Some(stale)), 4);
        let (set, _) = t.locate(key(42, 2));
        let copies = set
            .0
            .iter()
            .filter(|w| is(w.load(Ordering::Relaxed), key(42, 2)))
            .count();
        assert_eq!(copies, 1);
    }

    #[test]
    fn a_set_keeps_its_first_ways_then_evicts_the_victim_way() {
        let t = Placements::new();
        let mine = 0x1234_5678;
        t.place(mine, 0, 1, None);
        // WAYS - 1 unrelated flows in the same set: all kept, mine too.
        let others = same_set(&t, mine, WAYS);
        for &h in &others[..WAYS - 1] {
            assert_eq!(t.place(h, 0, 2, None), 2);
        }
        assert_eq!(t.get(mine, 0).map(Placed::nf), Some(1));
        assert!(others[..WAYS - 1].iter().all(|&h| t.get(h, 0).is_some()));
        // One more: the set is full, the newcomer takes its victim way, and exactly the flow
        // that sat there is gone.
        let last = others[WAYS - 1];
        let v = victim_of(&t, last, 0);
        let (set, _) = t.locate(key(last, 0));
        let evicted = u32::try_from(set.0[v].load(Ordering::Relaxed) & 0xffff_ffff).unwrap();
        assert_eq!(t.place(last, 0, 3, None), 3);
        assert_eq!(t.get(last, 0).map(|p| (p.nf(), p.way)), Some((3, v)));
        assert_eq!(t.get(evicted, 0), None);
        let kept = std::iter::once(mine)
            .chain(others[..WAYS - 1].iter().copied())
            .filter(|&h| t.get(h, 0).is_some())
            .count();
        assert_eq!(kept, WAYS - 1);
    }

    fn nf_for(h: u32) -> u16 {
        u16::try_from(h % 250).unwrap()
    }

    #[test]
    fn holds_its_capacity_when_no_set_overflows() {
        let t = Placements::new();
        // Exactly WAYS flows per set, in hash order: the documented bound, every placement kept.
        let mut fill = vec![0usize; SETS];
        let mut placed = Vec::with_capacity(Placements::CAPACITY);
        for h in 0u32.. {
            let s = set_of(&t, h, 3);
            if fill[s] < WAYS {
                fill[s] += 1;
                let nf = nf_for(h);
                assert_eq!(t.place(h, 3, nf, None), nf);
                placed.push(h);
                if placed.len() == Placements::CAPACITY {
                    break;
                }
            }
        }
        for &h in &placed {
            assert_eq!(t.get(h, 3).map(Placed::nf), Some(nf_for(h)), "{h}");
        }
    }

    #[test]
    fn concurrent_placement_agrees() {
        // Two threads place the same flows at the same time, each proposing its own instance;
        // for every flow both end up with one answer, and that is the table's. Then both
        // re-place every flow as if its instance had gone away, with the same outcome.
        // 20000 flows, at most WAYS per set: no eviction can separate the two threads. Eight
        // rounds on fresh tables, so that the threads really meet on the same words.
        const FLOWS: usize = 20_000;
        let mut fill = vec![0usize; SETS];
        let flows: Vec<u32> = {
            let t = Placements::new();
            (0u32..)
                .filter(|&h| {
                    let s = set_of(&t, h, 1);
                    fill[s] += 1;
                    fill[s] <= WAYS
                })
                .take(FLOWS)
                .collect()
        };
        let go = Barrier::new(2);
        let both = |f: &(dyn Fn(u16) -> Vec<u16> + Sync), x: u16, y: u16| {
            std::thread::scope(|s| {
                let a = s.spawn(|| f(x));
                let b = s.spawn(|| f(y));
                (a.join().unwrap(), b.join().unwrap())
            })
        };
        let mut won = [0u32; 2];
        for _ in 0..8 {
            let t = Placements::new();
            let place = |nf: u16| {
                go.wait();
                flows
                    .iter()
                    .map(|&h| match t.get(h, 1) {
                        Some(p) => p.nf(),
                        None => t.place(h, 1, nf, None),
                    })
                    .collect::<Vec<u16>>()
            };
            let (a, b) = both(&place, 10, 20);
            for (i, &h) in flows.iter().enumerate() {
                assert_eq!(a[i], b[i], "flow {h}: threads disagree");
                assert_eq!(t.get(h, 1).map(Placed::nf), Some(a[i]));
                won[usize::from(a[i] == 20)] += 1;
            }
            let replace = |nf: u16| {
                go.wait();
                flows
                    .iter()
                    .map(|&h| match t.get(h, 1) {
                        Some(p) if p.nf() >= 30 => p.nf(),
                        found => t.place(h, 1, nf, found),
                    })
                    .collect::<Vec<u16>>()
            };
            let (a, b) = both(&replace, 30, 40);
            for (i, &h) in flows.iter().enumerate() {
                assert_eq!(a[i], b[i], "flow {h}: threads disagree on the re-placement");
                assert_eq!(t.get(h, 1).map(Placed::nf), Some(a[i]));
                assert!(a[i] >= 30);
            }
        }
        println!("placements won: thread a {}, thread b {}", won[0], won[1]);
    }
}
