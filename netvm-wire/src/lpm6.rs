//! Longest-prefix match over IPv6: a multibit trie with a 16-bit first stride and 8-bit
//! strides below (the shape of DPDK's `rte_lpm6`, with a smaller first level).
//!
//! # Layout
//! `tbl16` has one 32-bit entry per /16 (65536 entries, 256 KiB). Prefixes longer than
//! /16 live in groups of 256 entries, one group per 8 address bits below a shorter entry
//! that needs them; an entry then points at its group. A lookup reads the `tbl16` entry
//! and follows at most 14 group entries (bits 16–127): **at most 15 memory accesses**, one
//! per stride, whatever the table holds; 3 for a route of /17–/32, 5 for /41–/48.
//!
//! Entry bits: 31 valid, 30 extended (points to a group), 29..22 depth of the prefix that
//! wrote it (0..=128), 21..0 next hop (or group index). As in [`Lpm`](crate::Lpm), the depth
//! lets an insert overwrite exactly the entries owned by shorter prefixes and a remove
//! find exactly the entries it owns, refilled from the next-longest covering prefix (the
//! rule set is kept on the side, per length).
//!
//! Groups are allocated at insert time (config time) up to `max_groups`; a remove leaves
//! its groups in place (lookups stay correct; a table rebuilt from its routes is compact).
//! Lookups are the per-packet path: no allocation, no panic.

use std::collections::HashMap;
use std::net::Ipv6Addr;

use crate::ipv6::{mask6, Ipv6Prefix};
use crate::lpm::LpmError;

const TOP_BITS: u32 = 16;
const TOP: usize = 1 << TOP_BITS;
const GROUP: usize = 256;
const VALID: u32 = 1 << 31;
const EXT: u32 = 1 << 30;
const DEPTH_SHIFT: u32 = 22;
const DEPTH_MASK: u32 = 0xff;
const VALUE_MASK: u32 = 0x003f_ffff;

/// Most groups a table may have (4 Mi, the 22-bit index; 4 GiB of groups).
pub const MAX_GROUPS6: u32 = 1 << 22;

#[inline(always)]
const fn leaf(value: u32, depth: u8) -> u32 {
    VALID | ((depth as u32) << DEPTH_SHIFT) | (value & VALUE_MASK)
}

#[inline(always)]
const fn depth_of(e: u32) -> u32 {
    (e >> DEPTH_SHIFT) & DEPTH_MASK
}

#[inline(always)]
fn value_of(e: u32) -> usize {
    // A 22-bit value always fits in usize.
    usize::try_from(e & VALUE_MASK).unwrap_or(0)
}

/// Sizes of an [`Lpm6`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Lpm6Config {
    /// Most prefixes the table accepts.
    pub max_rules: u32,
    /// Most 256-entry groups (1 KiB each) the table may allocate, at most [`MAX_GROUPS6`].
    pub max_groups: u32,
}

impl Default for Lpm6Config {
    /// 65536 rules, 65536 groups (at most 64 MiB, allocated as routes need them).
    fn default() -> Self {
        Lpm6Config {
            max_rules: 1 << 16,
            max_groups: 1 << 16,
        }
    }
}

/// A longest-prefix-match table from IPv6 prefixes to `u16` next hops.
#[derive(Clone)]
pub struct Lpm6 {
    tbl16: Box<[u32]>,
    groups: Vec<u32>,
    max_groups: u32,
    /// `rules[len]`: network address → next hop, for each prefix length 0..=128.
    rules: Vec<HashMap<u128, u16>>,
    rule_count: u32,
    max_rules: u32,
}

impl core::fmt::Debug for Lpm6 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Lpm6")
            .field("rules", &self.rule_count)
            .field("max_rules", &self.max_rules)
            .field("groups_used", &self.groups_used())
            .field("max_groups", &self.max_groups)
            .finish()
    }
}

/// Where an entry lives: `tbl16[i]` or `groups[i]`.
#[derive(Clone, Copy)]
enum Slot {
    Top(usize),
    Group(usize),
}

/// The 8-bit stride of `addr` that a group at trie level `level` (1..=14) indexes: bits
/// `16 + 8 (level - 1)` to `16 + 8 level`.
#[inline(always)]
fn stride(addr: u128, level: u32) -> usize {
    let shift = 128 - TOP_BITS - 8 * level;
    usize::from(addr.checked_shr(shift).unwrap_or(0).to_le_bytes()[0])
}

impl Lpm6 {
    /// An empty table.
    ///
    /// Errors: [`LpmError::TooManyTbl8Groups`] if `max_groups` exceeds [`MAX_GROUPS6`].
    pub fn new(config: Lpm6Config) -> Result<Lpm6, LpmError> {
        if config.max_groups > MAX_GROUPS6 {
            return Err(LpmError::TooManyTbl8Groups {
                requested: config.max_groups,
                max: MAX_GROUPS6,
            });
        }
        Ok(Lpm6 {
            tbl16: vec![0u32; TOP].into_boxed_slice(),
            groups: Vec::new(),
            max_groups: config.max_groups,
            rules: vec![HashMap::new(); 129],
            rule_count: 0,
            max_rules: config.max_rules,
        })
    }

    /// The next hop of the longest prefix containing `ip`, if any.
    ///
    /// At most 15 table loads (see the module docs). Never panics, never allocates.
    #[inline]
    pub fn lookup(&self, ip: Ipv6Addr) -> Option<u16> {
        let b = ip.octets();
        let mut e = self
            .tbl16
            .get(usize::from(u16::from_be_bytes([b[0], b[1]])))
            .copied()
            .unwrap_or(0);
        for &byte in &b[2..] {
            if e & EXT == 0 {
                break;
            }
            e = self
                .groups
                .get(value_of(e) * GROUP + usize::from(byte))
                .copied()
                .unwrap_or(0);
        }
        if e & VALID != 0 && e & EXT == 0 {
            let [lo, hi, _, _] = e.to_le_bytes();
            Some(u16::from_le_bytes([lo, hi]))
        } else {
            None
        }
    }

    /// The next hop stored for exactly `prefix`, if that prefix is in the table.
    pub fn get(&self, prefix: Ipv6Prefix) -> Option<u16> {
        self.rules
            .get(usize::from(prefix.prefix_len()))?
            .get(&u128::from(prefix.addr()))
            .copied()
    }

    /// Number of prefixes in the table.
    pub fn len(&self) -> usize {
        usize::try_from(self.rule_count).unwrap_or(usize::MAX)
    }

    /// True if the table holds no prefix.
    pub fn is_empty(&self) -> bool {
        self.rule_count == 0
    }

    /// Groups allocated.
    pub fn groups_used(&self) -> usize {
        self.groups.len() / GROUP
    }

    fn read(&self, s: Slot) -> u32 {
        match s {
            Slot::Top(i) => self.tbl16.get(i).copied().unwrap_or(0),
            Slot::Group(i) => self.groups.get(i).copied().unwrap_or(0),
        }
    }

    fn write(&mut self, s: Slot, e: u32) {
        let p = match s {
            Slot::Top(i) => self.tbl16.get_mut(i),
            Slot::Group(i) => self.groups.get_mut(i),
        };
        if let Some(p) = p {
            *p = e;
        }
    }

    /// The group `s` points at, creating it (filled with `s`'s current entry) if needed.
    fn child(&mut self, s: Slot) -> Result<usize, LpmError> {
        let e = self.read(s);
        if e & EXT != 0 {
            return Ok(value_of(e));
        }
        let g = self.groups_used();
        if g >= usize::try_from(self.max_groups).unwrap_or(usize::MAX) {
            return Err(LpmError::Tbl8Full {
                groups: self.max_groups,
            });
        }
        self.groups.extend(std::iter::repeat_n(e, GROUP));
        // g < max_groups <= 2^22: fits the value field.
        self.write(s, VALID | EXT | u32::try_from(g).unwrap_or(0));
        Ok(g)
    }

    /// Applies `f` to every leaf under slot `s` (recursing through groups).
    fn for_leaves(&mut self, s: Slot, f: &dyn Fn(u32) -> Option<u32>) {
        let e = self.read(s);
        if e & EXT != 0 {
            let g = value_of(e);
            for i in 0..GROUP {
                self.for_leaves(Slot::Group(g * GROUP + i), f);
            }
        } else if let Some(n) = f(e) {
            self.write(s, n);
        }
    }

    /// Applies `f` to every leaf covered by `addr/len`, creating groups down to the level
    /// where the prefix ends.
    fn apply(
        &mut self,
        addr: u128,
        len: u8,
        f: &dyn Fn(u32) -> Option<u32>,
    ) -> Result<(), LpmError> {
        let top = usize::from(u16::try_from(addr >> 112).unwrap_or(0));
        if u32::from(len) <= TOP_BITS {
            let count = 1usize << (TOP_BITS - u32::from(len));
            for i in top..top + count {
                self.for_leaves(Slot::Top(i), f);
            }
            return Ok(());
        }
        let mut g = self.child(Slot::Top(top))?;
        let mut level = 1u32;
        loop {
            let end = TOP_BITS + 8 * level;
            let idx = stride(addr, level);
            if u32::from(len) <= end {
                let count = 1usize << (end - u32::from(len));
                for i in idx..idx + count {
                    self.for_leaves(Slot::Group(g * GROUP + i), f);
                }
                return Ok(());
            }
            g = self.child(Slot::Group(g * GROUP + idx))?;
            level += 1;
        }
    }

    /// Adds `prefix → next_hop`, or replaces the next hop of a prefix already in the table.
    /// The longest containing prefix wins, whatever the insertion order.
    ///
    /// Errors: [`LpmError::RulesFull`], [`LpmError::Tbl8Full`] (out of groups). A failed
    /// insert changes no lookup result (groups it created hold copies of their parents).
    pub fn insert(&mut self, prefix: Ipv6Prefix, next_hop: u16) -> Result<(), LpmError> {
        let depth = prefix.prefix_len();
        let addr = u128::from(prefix.addr());
        let exists = self.get(prefix).is_some();
        if !exists && self.rule_count >= self.max_rules {
            return Err(LpmError::RulesFull {
                max: self.max_rules,
            });
        }
        let new = leaf(u32::from(next_hop), depth);
        self.apply(addr, depth, &|e| {
            (e & VALID == 0 || depth_of(e) <= u32::from(depth)).then_some(new)
        })?;
        if let Some(m) = self.rules.get_mut(usize::from(depth)) {
            m.insert(addr, next_hop);
        }
        if !exists {
            self.rule_count += 1;
        }
        Ok(())
    }

    /// Removes `prefix`; returns its next hop if it was in the table. Addresses it covered
    /// fall back to the next-longest covering prefix.
    pub fn remove(&mut self, prefix: Ipv6Prefix) -> Option<u16> {
        let depth = prefix.prefix_len();
        let addr = u128::from(prefix.addr());
        let nh = self.rules.get_mut(usize::from(depth))?.remove(&addr)?;
        self.rule_count -= 1;
        let cover = (0..depth).rev().find_map(|d| {
            let a = addr & mask6(d);
            self.rules
                .get(usize::from(d))
                .and_then(|m| m.get(&a))
                .map(|&h| leaf(u32::from(h), d))
        });
        let replacement = cover.unwrap_or(0);
        // The walk only follows groups that exist (the prefix's own inserts made them).
        let _ = self.apply(addr, depth, &|e| {
            (e & VALID != 0 && depth_of(e) == u32::from(depth)).then_some(replacement)
        });
        Some(nh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> Ipv6Prefix {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn basics() {
        let mut t = Lpm6::new(Lpm6Config::default()).unwrap();
        assert_eq!(t.lookup(ip("2001:db8::1")), None);
        t.insert(p("2001:db8::/32"), 1).unwrap();
        t.insert(p("2001:db8:1::/48"), 2).unwrap();
        t.insert(p("2001:db8:1:2::/64"), 3).unwrap();
        t.insert(p("2001:db8:1:2::7/128"), 4).unwrap();
        t.insert(p("2000::/3"), 5).unwrap();
        assert_eq!(t.lookup(ip("2001:db8:9::1")), Some(1));
        assert_eq!(t.lookup(ip("2001:db8:1:9::1")), Some(2));
        assert_eq!(t.lookup(ip("2001:db8:1:2::1")), Some(3));
        assert_eq!(t.lookup(ip("2001:db8:1:2::7")), Some(4));
        assert_eq!(t.lookup(ip("2400::1")), Some(5));
        assert_eq!(t.lookup(ip("fe80::1")), None);
        assert_eq!(t.len(), 5);
        // A shorter prefix inserted later does not override longer ones.
        t.insert(p("2001::/16"), 6).unwrap();
        assert_eq!(t.lookup(ip("2001:db8:1:2::7")), Some(4));
        assert_eq!(t.lookup(ip("2001:1::1")), Some(6));
        assert_eq!(t.remove(p("2001:db8:1::/48")), Some(2));
        assert_eq!(t.lookup(ip("2001:db8:1:9::1")), Some(1));
        assert_eq!(t.lookup(ip("2001:db8:1:2::1")), Some(3));
        assert_eq!(t.remove(p("2001:db8:1::/48")), None);
        t.insert(p("::/0"), 7).unwrap();
        assert_eq!(t.lookup(ip("fe80::1")), Some(7));
        assert_eq!(t.remove(p("::/0")), Some(7));
        assert_eq!(t.lookup(ip("fe80::1")), None);
    }

    #[test]
    fn limits() {
        let mut t = Lpm6::new(Lpm6Config {
            max_rules: 2,
            max_groups: 3,
        })
        .unwrap();
        t.insert(p("2001:db8::/32"), 1).unwrap();
        // /128 needs 14 groups.
        assert_eq!(
            t.insert(p("2001:db8::1/128"), 2),
            Err(LpmError::Tbl8Full { groups: 3 })
        );
        assert_eq!(t.lookup(ip("2001:db8::1")), Some(1));
        t.insert(p("2001:db9::/32"), 2).unwrap();
        assert_eq!(
            t.insert(p("2001:dba::/32"), 3),
            Err(LpmError::RulesFull { max: 2 })
        );
        assert!(Lpm6::new(Lpm6Config {
            max_rules: 1,
            max_groups: MAX_GROUPS6 + 1
        })
        .is_err());
    }

    /// Addresses drawn near a few bases, so that prefixes nest and overlap.
    fn addr() -> impl Strategy<Value = u128> {
        (0usize..4, any::<u128>(), 0u32..128).prop_map(|(b, r, keep)| {
            let bases = [
                0x2001_0db8_0000_0000_0000_0000_0000_0000u128,
                0x2001_0db8_0001_0002_0000_0000_0000_0000,
                0xfe80_0000_0000_0000_0000_0000_0000_0000,
                0,
            ];
            bases[b] ^ (r >> keep)
        })
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u128, u8, u16),
        Remove(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (addr(), 0u8..=128, any::<u16>()).prop_map(|(a, l, h)| Op::Insert(a, l, h)),
            1 => any::<usize>().prop_map(Op::Remove),
        ]
    }

    proptest! {
        /// Lookups agree with a naive scan for the longest matching prefix, through any
        /// sequence of inserts and removes.
        #[test]
        fn matches_naive_scan(ops in proptest::collection::vec(op(), 1..60), probes in proptest::collection::vec(addr(), 1..64)) {
            let mut t = Lpm6::new(Lpm6Config { max_rules: 1000, max_groups: 4096 }).unwrap();
            let mut model: Vec<(Ipv6Prefix, u16)> = Vec::new();
            for o in ops {
                match o {
                    Op::Insert(a, l, h) => {
                        let pre = Ipv6Prefix::new(Ipv6Addr::from(a), l).unwrap();
                        t.insert(pre, h).unwrap();
                        model.retain(|(q, _)| *q != pre);
                        model.push((pre, h));
                    }
                    Op::Remove(i) if !model.is_empty() => {
                        let (pre, h) = model.remove(i % model.len());
                        prop_assert_eq!(t.remove(pre), Some(h));
                    }
                    Op::Remove(_) => {}
                }
            }
            prop_assert_eq!(t.len(), model.len());
            let naive = |x: Ipv6Addr| {
                model
                    .iter()
                    .filter(|(q, _)| q.contains(x))
                    .max_by_key(|(q, _)| q.prefix_len())
                    .map(|&(_, h)| h)
            };
            for a in probes.iter().copied().chain(model.iter().map(|(q, _)| u128::from(q.addr()))) {
                let x = Ipv6Addr::from(a);
                prop_assert_eq!(t.lookup(x), naive(x), "{}", x);
            }
        }
    }
}
