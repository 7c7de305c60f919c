//! Longest-prefix match over IPv4 (DIR-24-8, as DPDK's `rte_lpm`) and the
//! l3fwd route file (IPv4 and IPv6 prefixes; IPv6 routes go to an
//! [`Lpm6`](crate::lpm6::Lpm6)).
//!
//! # Layout
//! `tbl24` has one 32-bit entry per /24 (2^24 entries, 64 MiB of virtual memory
//! allocated zeroed, so only the pages that routes touch become resident).
//! Prefixes longer than /24 live in `tbl8` groups of 256 entries, one group per
//! /24 that holds such a prefix; the tbl24 entry then points at its group.
//! A lookup is one load, or two for addresses under a >/24 route: O(1), no
//! branches on prefix length, no allocation.
//!
//! Entry bits: 31 valid, 30 extended (points to a tbl8 group), 29..24 depth of
//! the prefix that wrote it (0..=32), 23..0 next hop (or group index).
//! Keeping the depth in every entry lets an insert overwrite exactly the entries
//! owned by shorter prefixes, and a remove find exactly the entries it owns; the
//! rule set itself is kept on the side (per-length hash maps) so a remove can
//! refill its range from the next-longest covering prefix and give back tbl8
//! groups that no longer hold anything longer than /24.
//!
//! Inserts and removes are config-time operations (a /0 touches all 2^24
//! entries); lookups are the per-packet path. The table is not internally
//! synchronised: an NF updates it between bursts, as l3fwd is single-threaded.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use thiserror::Error;

use crate::ipv6::IpPrefix;
use crate::lpm6::{Lpm6, Lpm6Config};
use crate::mac::MacAddr;
use crate::meta::{mask, Ipv4Prefix, PrefixError};

const TBL24_ENTRIES: usize = 1 << 24;
const GROUP: usize = 256;
const VALID: u32 = 1 << 31;
const EXT: u32 = 1 << 30;
const DEPTH_SHIFT: u32 = 24;
const DEPTH_MASK: u32 = 0x3f;
const VALUE_MASK: u32 = 0x00ff_ffff;

/// Largest number of tbl8 groups a table may have (64 MiB of tbl8).
pub const MAX_TBL8_GROUPS: u32 = 1 << 16;

#[inline(always)]
const fn entry(value: u32, depth: u8) -> u32 {
    VALID | ((depth as u32) << DEPTH_SHIFT) | (value & VALUE_MASK)
}

#[inline(always)]
const fn depth_of(e: u32) -> u32 {
    (e >> DEPTH_SHIFT) & DEPTH_MASK
}

#[inline(always)]
fn value_of(e: u32) -> usize {
    // A 24-bit value always fits in usize.
    usize::try_from(e & VALUE_MASK).unwrap_or(0)
}

/// May an insert of depth `d` overwrite entry `e`?
#[inline(always)]
fn overwritable(e: u32, d: u8) -> bool {
    e & VALID == 0 || depth_of(e) <= u32::from(d)
}

/// Does entry `e` belong to a prefix of depth `d`?
#[inline(always)]
fn owned_by(e: u32, d: u8) -> bool {
    e & VALID != 0 && e & EXT == 0 && depth_of(e) == u32::from(d)
}

/// Sizes of an [`Lpm`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LpmConfig {
    /// Most prefixes the table accepts.
    pub max_rules: u32,
    /// Number of tbl8 groups: how many distinct /24s may hold a prefix longer
    /// than /24. At most [`MAX_TBL8_GROUPS`]; each costs 1 KiB.
    pub tbl8_groups: u32,
}

impl Default for LpmConfig {
    /// 65536 rules, 256 tbl8 groups (DPDK l3fwd's defaults).
    fn default() -> Self {
        LpmConfig {
            max_rules: 1 << 16,
            tbl8_groups: 256,
        }
    }
}

/// Why an [`Lpm`] operation failed. A failed insert changes nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum LpmError {
    /// The table already holds `max_rules` prefixes.
    #[error("LPM table is full: it holds its maximum of {max} prefixes")]
    RulesFull {
        /// The configured maximum.
        max: u32,
    },
    /// Every tbl8 group is in use, so no new /24 can hold a prefix longer than /24.
    #[error(
        "LPM table has no free tbl8 group: all {groups} are in use by prefixes longer than /24"
    )]
    Tbl8Full {
        /// The configured number of groups.
        groups: u32,
    },
    /// The configuration asks for more tbl8 groups than allowed.
    #[error("{requested} tbl8 groups requested, at most {max} allowed")]
    TooManyTbl8Groups {
        /// Groups requested.
        requested: u32,
        /// [`MAX_TBL8_GROUPS`].
        max: u32,
    },
    /// A [`RouteTable`] has more distinct next hops than a `u16` can index.
    #[error("more than 65536 distinct next hops")]
    TooManyNextHops,
}

/// A DIR-24-8 longest-prefix-match table from IPv4 prefixes to `u16` next hops.
#[derive(Clone)]
pub struct Lpm {
    tbl24: Box<[u32]>,
    tbl8: Box<[u32]>,
    free_groups: Vec<u32>,
    tbl8_groups: u32,
    /// `rules[len]`: network address → next hop, for each prefix length 0..=32.
    rules: Vec<HashMap<u32, u16>>,
    rule_count: u32,
    max_rules: u32,
}

impl core::fmt::Debug for Lpm {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Lpm")
            .field("rules", &self.rule_count)
            .field("max_rules", &self.max_rules)
            .field("tbl8_groups", &self.tbl8_groups)
            .field("tbl8_groups_used", &self.tbl8_groups_used())
            .finish()
    }
}

impl Lpm {
    /// An empty table.
    ///
    /// Errors: [`LpmError::TooManyTbl8Groups`].
    pub fn new(config: LpmConfig) -> Result<Lpm, LpmError> {
        if config.tbl8_groups > MAX_TBL8_GROUPS {
            return Err(LpmError::TooManyTbl8Groups {
                requested: config.tbl8_groups,
                max: MAX_TBL8_GROUPS,
            });
        }
        let groups = usize::try_from(config.tbl8_groups).unwrap_or(0);
        Ok(Lpm {
            tbl24: vec![0u32; TBL24_ENTRIES].into_boxed_slice(),
            tbl8: vec![0u32; groups * GROUP].into_boxed_slice(),
            // Pop from the end: hand out group 0 first.
            free_groups: (0..config.tbl8_groups).rev().collect(),
            tbl8_groups: config.tbl8_groups,
            rules: vec![HashMap::new(); 33],
            rule_count: 0,
            max_rules: config.max_rules,
        })
    }

    /// The next hop of the longest prefix containing `ip`, if any.
    ///
    /// One table load, two for addresses under a prefix longer than /24.
    /// Never panics, never allocates.
    #[inline]
    pub fn lookup(&self, ip: Ipv4Addr) -> Option<u16> {
        let ip = u32::from(ip);
        let i24 = usize::try_from(ip >> 8).unwrap_or(0);
        let mut e = self.tbl24.get(i24).copied().unwrap_or(0);
        if e & EXT != 0 {
            let i8 = value_of(e) * GROUP + usize::from(ip.to_le_bytes()[0]);
            e = self.tbl8.get(i8).copied().unwrap_or(0);
        }
        if e & VALID != 0 {
            Some(u16::from_le_bytes([e.to_le_bytes()[0], e.to_le_bytes()[1]]))
        } else {
            None
        }
    }

    /// Looks up each address of `ips` into the same position of `out` (the
    /// shorter of the two slices bounds the work).
    #[inline]
    pub fn lookup_bulk(&self, ips: &[Ipv4Addr], out: &mut [Option<u16>]) {
        for (ip, o) in ips.iter().zip(out.iter_mut()) {
            *o = self.lookup(*ip);
        }
    }

    /// The next hop stored for exactly `prefix`, if that prefix is in the table.
    pub fn get(&self, prefix: Ipv4Prefix) -> Option<u16> {
        self.rules
            .get(usize::from(prefix.prefix_len()))?
            .get(&u32::from(prefix.addr()))
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

    /// tbl8 groups in use.
    pub fn tbl8_groups_used(&self) -> usize {
        usize::try_from(self.tbl8_groups).unwrap_or(0) - self.free_groups.len()
    }

    /// Adds `prefix → next_hop`, or replaces the next hop of a prefix already in
    /// the table. All of an address's routes compete by length only: the longest
    /// containing prefix wins, whatever the insertion order.
    ///
    /// Errors (the table is unchanged): [`LpmError::RulesFull`],
    /// [`LpmError::Tbl8Full`].
    pub fn insert(&mut self, prefix: Ipv4Prefix, next_hop: u16) -> Result<(), LpmError> {
        let depth = prefix.prefix_len();
        let addr = u32::from(prefix.addr());
        let exists = self.get(prefix).is_some();
        if !exists && self.rule_count >= self.max_rules {
            return Err(LpmError::RulesFull {
                max: self.max_rules,
            });
        }
        let value = u32::from(next_hop);
        if depth <= 24 {
            let (start, count) = tbl24_range(addr, depth);
            for i in start..start + count {
                let e = self.tbl24[i];
                if e & EXT != 0 {
                    let g = value_of(e);
                    for e8 in &mut self.tbl8[g * GROUP..(g + 1) * GROUP] {
                        if overwritable(*e8, depth) {
                            *e8 = entry(value, depth);
                        }
                    }
                } else if overwritable(e, depth) {
                    self.tbl24[i] = entry(value, depth);
                }
            }
        } else {
            let i24 = usize::try_from(addr >> 8).unwrap_or(0);
            let e = self.tbl24[i24];
            let g = if e & EXT != 0 {
                value_of(e)
            } else {
                let Some(g) = self.free_groups.pop() else {
                    return Err(LpmError::Tbl8Full {
                        groups: self.tbl8_groups,
                    });
                };
                let gi = usize::try_from(g).unwrap_or(0);
                // The new group starts as a copy of what the /24 resolved to.
                self.tbl8[gi * GROUP..(gi + 1) * GROUP].fill(e);
                self.tbl24[i24] = VALID | EXT | g;
                gi
            };
            let (start, count) = tbl8_range(addr, depth);
            for e8 in &mut self.tbl8[g * GROUP + start..g * GROUP + start + count] {
                if overwritable(*e8, depth) {
                    *e8 = entry(value, depth);
                }
            }
        }
        self.rules[usize::from(depth)].insert(addr, next_hop);
        if !exists {
            self.rule_count += 1;
        }
        Ok(())
    }

    /// Removes `prefix` and returns its next hop, or `None` if it was not in the
    /// table. Addresses it covered fall back to the next-longest covering prefix.
    pub fn remove(&mut self, prefix: Ipv4Prefix) -> Option<u16> {
        let depth = prefix.prefix_len();
        let addr = u32::from(prefix.addr());
        let old = self.rules[usize::from(depth)].remove(&addr)?;
        self.rule_count -= 1;
        // The entry that now takes over the removed prefix's range.
        let repl = (0..depth)
            .rev()
            .find_map(|d| {
                self.rules[usize::from(d)]
                    .get(&(addr & mask(d)))
                    .map(|&nh| entry(u32::from(nh), d))
            })
            .unwrap_or(0);
        if depth <= 24 {
            let (start, count) = tbl24_range(addr, depth);
            for i in start..start + count {
                let e = self.tbl24[i];
                if e & EXT != 0 {
                    let g = value_of(e);
                    for e8 in &mut self.tbl8[g * GROUP..(g + 1) * GROUP] {
                        if owned_by(*e8, depth) {
                            *e8 = repl;
                        }
                    }
                    self.try_collapse(i);
                } else if owned_by(e, depth) {
                    self.tbl24[i] = repl;
                }
            }
        } else {
            let i24 = usize::try_from(addr >> 8).unwrap_or(0);
            let e = self.tbl24[i24];
            if e & EXT != 0 {
                let g = value_of(e);
                let (start, count) = tbl8_range(addr, depth);
                for e8 in &mut self.tbl8[g * GROUP + start..g * GROUP + start + count] {
                    if owned_by(*e8, depth) {
                        *e8 = repl;
                    }
                }
                self.try_collapse(i24);
            }
        }
        Some(old)
    }

    /// Frees the tbl8 group of tbl24 entry `i24` if nothing in it is longer than
    /// /24 any more (all 256 entries equal and of depth ≤ 24, or all invalid).
    fn try_collapse(&mut self, i24: usize) {
        let e = self.tbl24[i24];
        if e & EXT == 0 {
            return;
        }
        let g = value_of(e);
        let group = &self.tbl8[g * GROUP..(g + 1) * GROUP];
        let first = group[0];
        if (first & VALID == 0 || depth_of(first) <= 24) && group.iter().all(|&x| x == first) {
            self.tbl24[i24] = first;
            self.free_groups.push(e & VALUE_MASK);
        }
    }
}

/// The tbl24 index range of a prefix of length ≤ 24.
fn tbl24_range(addr: u32, depth: u8) -> (usize, usize) {
    let start = usize::try_from(addr >> 8).unwrap_or(0);
    (start, 1usize << (24 - depth.min(24)))
}

/// The range within a tbl8 group of a prefix of length 25..=32.
fn tbl8_range(addr: u32, depth: u8) -> (usize, usize) {
    let start = usize::from(addr.to_le_bytes()[0]);
    (start, 1usize << (32 - depth.clamp(24, 32)))
}

/// One line of a route file: `10.1.0.0/16 <port> [dst-mac aa:bb:cc:dd:ee:ff]`, or the same
/// with an IPv6 prefix (`2001:db8::/32 <port> …`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Route {
    /// Destination prefix (IPv4 or IPv6).
    pub prefix: IpPrefix,
    /// Output port.
    pub port: u16,
    /// Ethernet destination to write, if given.
    pub dst_mac: Option<MacAddr>,
    /// 1-based line number in the file.
    pub line: usize,
}

/// A route file error, with its 1-based line number.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("route file line {line}: {kind}")]
pub struct RouteFileError {
    /// 1-based line number.
    pub line: usize,
    /// What was wrong.
    pub kind: RouteErrorKind,
}

/// What was wrong with a route file line.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RouteErrorKind {
    /// The prefix did not parse.
    #[error("bad prefix: {0}")]
    BadPrefix(PrefixError),
    /// The line has a prefix but no port.
    #[error("missing output port after the prefix")]
    MissingPort,
    /// The port is not a number from 0 to 65535.
    #[error("port {0:?} is not a number from 0 to 65535")]
    BadPort(String),
    /// `dst-mac` without a value.
    #[error("dst-mac needs a MAC address after it")]
    MissingMac,
    /// The MAC did not parse.
    #[error("{0:?} is not a MAC address (expected aa:bb:cc:dd:ee:ff)")]
    BadMac(String),
    /// An unexpected word.
    #[error("unexpected {0:?} (expected `dst-mac <mac>` or end of line)")]
    Unexpected(String),
    /// `dst-mac` given twice.
    #[error("dst-mac given twice")]
    DuplicateMac,
    /// The prefix already appeared.
    #[error("prefix {prefix} already routed on line {first_line}")]
    DuplicatePrefix {
        /// The prefix.
        prefix: IpPrefix,
        /// Where it first appeared.
        first_line: usize,
    },
}

/// Parses a route file: one `prefix port [dst-mac mac]` per line, the prefix IPv4
/// (`10.1.0.0/16`) or IPv6 (`2001:db8::/32`, up to /128); `#` starts a comment; blank
/// lines are ignored. A prefix must not have host bits set or appear twice. Errors name
/// the 1-based line.
pub fn parse_routes(text: &str) -> Result<Vec<Route>, RouteFileError> {
    let mut routes: Vec<Route> = Vec::new();
    let mut seen: HashMap<IpPrefix, usize> = HashMap::new();
    for (idx, raw) in text.lines().enumerate() {
        let line = idx + 1;
        let err = |kind| RouteFileError { line, kind };
        let content = raw.split('#').next().unwrap_or("");
        let mut words = content.split_whitespace();
        let Some(p) = words.next() else { continue };
        let prefix: IpPrefix = p.parse().map_err(|e| err(RouteErrorKind::BadPrefix(e)))?;
        let port_s = words
            .next()
            .ok_or_else(|| err(RouteErrorKind::MissingPort))?;
        let port = port_s
            .parse::<u16>()
            .ok()
            .filter(|_| port_s.bytes().all(|c| c.is_ascii_digit()))
            .ok_or_else(|| err(RouteErrorKind::BadPort(port_s.to_owned())))?;
        let mut dst_mac = None;
        while let Some(w) = words.next() {
            if w != "dst-mac" {
                return Err(err(RouteErrorKind::Unexpected(w.to_owned())));
            }
            if dst_mac.is_some() {
                return Err(err(RouteErrorKind::DuplicateMac));
            }
            let m = words
                .next()
                .ok_or_else(|| err(RouteErrorKind::MissingMac))?;
            dst_mac = Some(
                m.parse::<MacAddr>()
                    .map_err(|_| err(RouteErrorKind::BadMac(m.to_owned())))?,
            );
        }
        if let Some(&first_line) = seen.get(&prefix) {
            return Err(err(RouteErrorKind::DuplicatePrefix { prefix, first_line }));
        }
        seen.insert(prefix, line);
        routes.push(Route {
            prefix,
            port,
            dst_mac,
            line,
        });
    }
    Ok(routes)
}

/// Where a routed packet goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NextHop {
    /// Output port.
    pub port: u16,
    /// Ethernet destination to write, if the route gave one.
    pub dst_mac: Option<MacAddr>,
}

/// An [`Lpm`] (IPv4) and an [`Lpm6`] (IPv6) whose next-hop ids index one table of
/// [`NextHop`]s: what l3fwd builds from a route file.
#[derive(Clone, Debug)]
pub struct RouteTable {
    lpm: Lpm,
    lpm6: Lpm6,
    hops: Vec<NextHop>,
}

impl RouteTable {
    /// Builds the table from parsed routes (identical next hops share an id): IPv4 routes into
    /// an [`Lpm`] of `config` with room for at least all of them, IPv6 routes
    /// into an [`Lpm6`] sized for them (rules: the default 65,536 or their count; groups: the
    /// default 65,536 or what the routes
    /// can need at worst (a /128 takes at most 14 new groups; groups are only allocated as
    /// routes need them), at most [`MAX_GROUPS6`](crate::lpm6::MAX_GROUPS6).
    ///
    /// Errors: any [`LpmError`] from the inserts, or
    /// [`LpmError::TooManyNextHops`].
    pub fn new(routes: &[Route], config: LpmConfig) -> Result<RouteTable, LpmError> {
        let v6 = routes
            .iter()
            .filter(|r| matches!(r.prefix, IpPrefix::V6(_)))
            .count();
        // Room for every IPv4 route of the file, whatever the configured maximum.
        let v4 = u32::try_from(routes.len() - v6).unwrap_or(u32::MAX);
        let config = LpmConfig {
            max_rules: config.max_rules.max(v4),
            ..config
        };
        let worst = u32::try_from(v6.saturating_mul(14)).unwrap_or(u32::MAX);
        let d = Lpm6Config::default();
        let config6 = Lpm6Config {
            max_rules: d.max_rules.max(u32::try_from(v6).unwrap_or(u32::MAX)),
            max_groups: d.max_groups.max(worst).min(crate::lpm6::MAX_GROUPS6),
        };
        Self::with_v6(routes, config, config6)
    }

    /// As [`new`](Self::new), with the IPv6 table's sizes.
    pub fn with_v6(
        routes: &[Route],
        config: LpmConfig,
        config6: Lpm6Config,
    ) -> Result<RouteTable, LpmError> {
        let mut lpm = Lpm::new(config)?;
        let mut lpm6 = Lpm6::new(config6)?;
        let mut hops: Vec<NextHop> = Vec::new();
        let mut ids: HashMap<NextHop, u16> = HashMap::new();
        for r in routes {
            let hop = NextHop {
                port: r.port,
                dst_mac: r.dst_mac,
            };
            let id = match ids.get(&hop) {
                Some(&id) => id,
                None => {
                    let id = u16::try_from(hops.len()).map_err(|_| LpmError::TooManyNextHops)?;
                    hops.push(hop);
                    ids.insert(hop, id);
                    id
                }
            };
            match r.prefix {
                IpPrefix::V4(p) => lpm.insert(p, id)?,
                IpPrefix::V6(p) => lpm6.insert(p, id)?,
            }
        }
        Ok(RouteTable { lpm, lpm6, hops })
    }

    /// Where `ip` goes, if any route covers it. Never panics, never allocates.
    #[inline]
    pub fn lookup(&self, ip: Ipv4Addr) -> Option<NextHop> {
        let id = self.lpm.lookup(ip)?;
        self.hops.get(usize::from(id)).copied()
    }

    /// Where the IPv6 `ip` goes, if any route covers it. Never panics, never allocates.
    #[inline]
    pub fn lookup_v6(&self, ip: std::net::Ipv6Addr) -> Option<NextHop> {
        let id = self.lpm6.lookup(ip)?;
        self.hops.get(usize::from(id)).copied()
    }

    /// The underlying IPv6 LPM table.
    pub fn lpm6(&self) -> &Lpm6 {
        &self.lpm6
    }

    /// The underlying LPM table.
    pub fn lpm(&self) -> &Lpm {
        &self.lpm
    }

    /// The distinct next hops, indexed by the LPM's next-hop ids.
    pub fn next_hops(&self) -> &[NextHop] {
        &self.hops
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> Ipv4Prefix {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn small() -> Lpm {
        Lpm::new(LpmConfig {
            max_rules: 64,
            tbl8_groups: 4,
        })
        .unwrap()
    }

    #[test]
    fn basics() {
        let mut t = small();
        assert_eq!(t.lookup(ip("10.0.0.1")), None);
        t.insert(p("10.0.0.0/8"), 1).unwrap();
        t.insert(p("10.1.0.0/16"), 2).unwrap();
        t.insert(p("10.1.2.0/24"), 3).unwrap();
        t.insert(p("10.1.2.128/25"), 4).unwrap();
        t.insert(p("10.1.2.129/32"), 5).unwrap();
        assert_eq!(t.lookup(ip("10.9.9.9")), Some(1));
        assert_eq!(t.lookup(ip("10.1.9.9")), Some(2));
        assert_eq!(t.lookup(ip("10.1.2.1")), Some(3));
        assert_eq!(t.lookup(ip("10.1.2.130")), Some(4));
        assert_eq!(t.lookup(ip("10.1.2.129")), Some(5));
        assert_eq!(t.lookup(ip("11.0.0.0")), None);
        assert_eq!(t.len(), 5);
        assert_eq!(t.tbl8_groups_used(), 1);
        // A shorter prefix inserted later does not override longer ones.
        t.insert(p("0.0.0.0/0"), 9).unwrap();
        assert_eq!(t.lookup(ip("10.1.2.129")), Some(5));
        assert_eq!(t.lookup(ip("11.0.0.0")), Some(9));
        // Replace.
        t.insert(p("10.1.2.0/24"), 33).unwrap();
        assert_eq!(t.len(), 6);
        assert_eq!(t.lookup(ip("10.1.2.1")), Some(33));
        assert_eq!(t.get(p("10.1.2.0/24")), Some(33));
        // Remove falls back to the covering prefix and frees the group.
        assert_eq!(t.remove(p("10.1.2.129/32")), Some(5));
        assert_eq!(t.lookup(ip("10.1.2.129")), Some(4));
        assert_eq!(t.remove(p("10.1.2.128/25")), Some(4));
        assert_eq!(t.lookup(ip("10.1.2.129")), Some(33));
        assert_eq!(t.tbl8_groups_used(), 0);
        assert_eq!(t.remove(p("10.1.2.128/25")), None);
        assert_eq!(t.remove(p("0.0.0.0/0")), Some(9));
        assert_eq!(t.lookup(ip("11.0.0.0")), None);
        assert_eq!(t.lookup(ip("255.255.255.255")), None);
    }

    #[test]
    fn full_errors_leave_table_unchanged() {
        let mut t = Lpm::new(LpmConfig {
            max_rules: 3,
            tbl8_groups: 1,
        })
        .unwrap();
        t.insert(p("1.1.1.1/32"), 1).unwrap();
        assert_eq!(
            t.insert(p("2.2.2.2/32"), 2),
            Err(LpmError::Tbl8Full { groups: 1 })
        );
        assert_eq!(t.lookup(ip("2.2.2.2")), None);
        assert_eq!(t.len(), 1);
        t.insert(p("1.1.1.0/30"), 3).unwrap(); // same /24: same group
        t.insert(p("3.0.0.0/8"), 4).unwrap();
        assert_eq!(
            t.insert(p("4.0.0.0/8"), 5),
            Err(LpmError::RulesFull { max: 3 })
        );
        // Replacing an existing prefix needs no new slot.
        t.insert(p("3.0.0.0/8"), 6).unwrap();
        assert_eq!(t.lookup(ip("3.3.3.3")), Some(6));
        assert!(matches!(
            Lpm::new(LpmConfig {
                max_rules: 1,
                tbl8_groups: MAX_TBL8_GROUPS + 1
            }),
            Err(LpmError::TooManyTbl8Groups { .. })
        ));
    }

    /// The naive model: scan every prefix, keep the longest match.
    fn model(rules: &HashMap<Ipv4Prefix, u16>, ip: Ipv4Addr) -> Option<u16> {
        rules
            .iter()
            .filter(|(p, _)| p.contains(ip))
            .max_by_key(|(p, _)| p.prefix_len())
            .map(|(_, &nh)| nh)
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(Ipv4Prefix, u16),
        Remove(Ipv4Prefix),
    }

    /// Prefixes clustered in a few /8s and /24s so that they nest and collide,
    /// lengths biased away from the very short ones (which cost 2^24 writes).
    fn prefix_strategy() -> impl Strategy<Value = Ipv4Prefix> {
        (
            prop_oneof![Just(10u32), Just(192u32)],
            0u32..4,
            0u32..4,
            any::<u8>(),
            prop_oneof![1 => 0u8..=7, 6 => 8u8..=24, 6 => 25u8..=32],
        )
            .prop_map(|(a, b, c, d, len)| {
                let addr = (a << 24) | (b << 16) | (c << 8) | u32::from(d);
                Ipv4Prefix::new(Ipv4Addr::from(addr), len).unwrap()
            })
    }

    fn addr_strategy() -> impl Strategy<Value = Ipv4Addr> {
        prop_oneof![
            (
                prop_oneof![Just(10u32), Just(192u32)],
                0u32..5,
                0u32..5,
                any::<u8>()
            )
                .prop_map(|(a, b, c, d)| Ipv4Addr::from(
                    (a << 24) | (b << 16) | (c << 8) | u32::from(d)
                )),
            any::<u32>().prop_map(Ipv4Addr::from),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn matches_linear_scan(
            ops in proptest::collection::vec(
                prop_oneof![
                    3 => (prefix_strategy(), any::<u16>()).prop_map(|(p, n)| Op::Insert(p, n)),
                    1 => prefix_strategy().prop_map(Op::Remove),
                ],
                1..40,
            ),
            probes in proptest::collection::vec(addr_strategy(), 64),
        ) {
            let mut t = Lpm::new(LpmConfig { max_rules: 1000, tbl8_groups: 64 }).unwrap();
            let mut m: HashMap<Ipv4Prefix, u16> = HashMap::new();
            for op in &ops {
                match *op {
                    Op::Insert(p, nh) => {
                        t.insert(p, nh).unwrap();
                        m.insert(p, nh);
                    }
                    Op::Remove(p) => {
                        prop_assert_eq!(t.remove(p), m.remove(&p));
                    }
                }
                // Probe each rule's own network and broadcast addresses too.
                for p in m.keys() {
                    let last = Ipv4Addr::from(u32::from(p.addr()) | !p.mask());
                    for a in [p.addr(), last] {
                        prop_assert_eq!(t.lookup(a), model(&m, a), "{} after {:?}", a, op);
                    }
                }
            }
            for &a in &probes {
                prop_assert_eq!(t.lookup(a), model(&m, a), "{}", a);
            }
            prop_assert_eq!(t.len(), m.len());
            // Remove everything: every group must come back.
            for p in m.keys() {
                t.remove(*p);
            }
            prop_assert_eq!(t.tbl8_groups_used(), 0);
            for &a in &probes {
                prop_assert_eq!(t.lookup(a), None);
            }
        }
    }

    #[test]
    fn route_file() {
        let text = "\
# l3fwd routes
10.1.0.0/16 1 dst-mac 02:00:00:00:00:01
10.0.0.0/8  0   # catch-all for 10/8

192.168.1.0/24 1 dst-mac 02:00:00:00:00:01
0.0.0.0/0 3
";
        let routes = parse_routes(text).unwrap();
        assert_eq!(routes.len(), 4);
        assert_eq!(routes[0].line, 2);
        assert_eq!(routes[1].dst_mac, None);
        assert_eq!(routes[3].line, 6);
        let t = RouteTable::new(&routes, LpmConfig::default()).unwrap();
        let mac = Some(MacAddr([2, 0, 0, 0, 0, 1]));
        assert_eq!(
            t.lookup(ip("10.1.3.4")),
            Some(NextHop {
                port: 1,
                dst_mac: mac
            })
        );
        assert_eq!(
            t.lookup(ip("10.2.3.4")),
            Some(NextHop {
                port: 0,
                dst_mac: None
            })
        );
        assert_eq!(t.lookup(ip("8.8.8.8")).unwrap().port, 3);
        assert_eq!(t.next_hops().len(), 3, "identical next hops share an id");
        assert_eq!(t.lookup(ip("192.168.1.1")), t.lookup(ip("10.1.0.0")));
        let t2 = RouteTable::new(&routes[..3], LpmConfig::default()).unwrap();
        assert_eq!(t2.next_hops().len(), 2);
        assert_eq!(t2.lookup(ip("8.8.8.8")), None);
    }

    #[test]
    fn route_file_errors() {
        let cases: &[(&str, usize, &str)] = &[
            ("10.0.0.0/8", 1, "missing output port"),
            ("\n\n10.0.0.0/33 1", 3, "prefix length"),
            ("10.1.0.0/8 1", 1, "host bits"),
            ("10.0.0.0/8 x", 1, "port \"x\""),
            ("10.0.0.0/8 70000", 1, "port \"70000\""),
            ("10.0.0.0/8 +1", 1, "port \"+1\""),
            ("10.0.0.0/8 1 dst-mac", 1, "needs a MAC"),
            ("10.0.0.0/8 1 dst-mac zz", 1, "\"zz\" is not a MAC"),
            ("10.0.0.0/8 1 via 1.2.3.4", 1, "unexpected \"via\""),
            (
                "10.0.0.0/8 1 dst-mac 02:00:00:00:00:01 dst-mac 02:00:00:00:00:01",
                1,
                "twice",
            ),
            (
                "10.0.0.0/8 1\n# x\n10.0.0.0/8 2",
                3,
                "already routed on line 1",
            ),
        ];
        for (text, line, what) in cases {
            let e = parse_routes(text).unwrap_err();
            assert_eq!(e.line, *line, "{text:?}: {e}");
            let msg = e.to_string();
            assert!(msg.contains(what), "{text:?}: {msg}");
            assert!(
                msg.starts_with(&format!("route file line {line}: ")),
                "{msg}"
            );
        }
    }
}
