//! An ordered, first-match-wins access control list for the firewall NF.
//!
//! Rules are checked in order; the first that matches decides; if none does,
//! the default policy decides. Each rule has a hit counter (plain `u64`s: the
//! firewall is single-threaded and owns its `Acl`), and so has every way a packet
//! can be decided without a rule. Evaluation is a linear scan with no allocation,
//! fine for the tens of rules a firewall NF is given.
//!
//! # Rule file
//! ```text
//! # one rule per line; '#' starts a comment
//! deny  src=10.0.0.0/8 dst=any proto=udp dport=53
//! deny  src=2001:db8:bad::/48
//! allow proto=tcp dport=1024-65535
//! allow proto=icmp itype=8
//! allow proto=icmpv6
//! fragments deny
//! default deny
//! ```
//! A rule is `allow` or `deny` followed by any of `src=`, `dst=` (an IPv4 or IPv6
//! CIDR, a bare address for a /32 or /128, or `any`), `proto=` (`any`, `tcp`, `udp`,
//! `icmp` (1), `icmpv6` (58) or a number 0–255), `sport=`, `dport=` (`any`, `N` or
//! `N-M`), `itype=` (ICMP/ICMPv6 type 0–255), each at most once; omitted keys match
//! anything. `default allow|deny` and `fragments allow|deny` may each appear once,
//! anywhere; without `default` the default is **deny**.
//!
//! # Families
//! Every IP packet, IPv4 or IPv6, goes through the rules. A prefix belongs to one family:
//! a rule with an IPv4 prefix never matches an IPv6 packet and vice versa; `any` matches
//! both. `proto`, ports and `itype` are family-neutral: `proto` is the IPv4 protocol or
//! the IPv6 upper-layer protocol after the extension headers (hop-by-hop, routing,
//! fragment, destination options, AH; a chain longer than netvm's bound is malformed),
//! and `itype` matches ICMP (IPv4, protocol 1) or ICMPv6 (IPv6, protocol 58) types. Only
//! frames that are not IP at all (ARP, …) skip the rules: they get the default policy,
//! counted apart (`non_ip`).
//!
//! # Fragments
//! - An unfragmented packet and a **first fragment** (offset 0) are judged by the full
//!   rules: a first fragment carries the upper-layer header, so its ports and ICMP type are
//!   known (a first fragment too short to hold that header is malformed).
//! - A **non-first fragment** has no ports and no ICMP type: a rule with `sport`, `dport`
//!   or `itype` never matches it; rules without them (addresses, protocol) do, in order,
//!   as for any packet. If no rule matches, the `fragments allow|deny` setting decides
//!   (counted as `fragments`), and without it the default policy (counted as `default`).
//!   Like iptables' `-f`, this lets `fragments allow` pass the later fragments of datagrams
//!   whose first fragment a port rule allowed under `default deny`; a datagram whose first
//!   fragment was denied cannot be reassembled.
//! - A non-first TCP fragment at offset 8 could overwrite the TCP flags of the first
//!   fragment (RFC 1858 overlapping fragments): it is always denied (`tiny_fragment`).

use core::fmt;
use core::str::FromStr;

use thiserror::Error;

use crate::ipv6::IpPrefix;
use crate::l4::ip_proto;
use crate::meta::{PacketMeta, PrefixError};

/// What to do with a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Let it through.
    Allow,
    /// Drop it.
    Deny,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
        })
    }
}

/// An inclusive L4 port range, `lo <= hi`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortRange {
    lo: u16,
    hi: u16,
}

impl PortRange {
    /// `lo..=hi`, or `None` if `lo > hi`.
    pub const fn new(lo: u16, hi: u16) -> Option<PortRange> {
        if lo <= hi {
            Some(PortRange { lo, hi })
        } else {
            None
        }
    }

    /// One port.
    pub const fn single(port: u16) -> PortRange {
        PortRange { lo: port, hi: port }
    }

    /// Lowest port.
    pub const fn lo(&self) -> u16 {
        self.lo
    }

    /// Highest port.
    pub const fn hi(&self) -> u16 {
        self.hi
    }

    /// True if `port` is in the range.
    #[inline]
    pub fn contains(&self, port: u16) -> bool {
        self.lo <= port && port <= self.hi
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

/// One ACL rule. `None` matches anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AclRule {
    /// What a match means.
    pub action: Action,
    /// Source prefix (of one family), or any.
    pub src: Option<IpPrefix>,
    /// Destination prefix (of one family), or any.
    pub dst: Option<IpPrefix>,
    /// IP protocol (IPv6: after the extension headers), or any.
    pub proto: Option<u8>,
    /// Source port range; `Some` matches only packets with ports.
    pub sport: Option<PortRange>,
    /// Destination port range; `Some` matches only packets with ports.
    pub dport: Option<PortRange>,
    /// ICMP/ICMPv6 type; `Some` matches only packets with one.
    pub icmp_type: Option<u8>,
}

impl AclRule {
    /// A rule that matches every IP packet.
    pub const fn any(action: Action) -> AclRule {
        AclRule {
            action,
            src: None,
            dst: None,
            proto: None,
            sport: None,
            dport: None,
            icmp_type: None,
        }
    }

    /// True if the rule matches the packet; never for a non-IP packet.
    #[inline]
    pub fn matches(&self, meta: &PacketMeta) -> bool {
        let addrs = match (&meta.ipv4, &meta.ipv6) {
            (Some(ip), _) => {
                self.src.is_none_or(|p| p.contains_v4(ip.src))
                    && self.dst.is_none_or(|p| p.contains_v4(ip.dst))
            }
            (None, Some(ip)) => {
                self.src.is_none_or(|p| p.contains_v6(ip.src))
                    && self.dst.is_none_or(|p| p.contains_v6(ip.dst))
            }
            (None, None) => return false,
        };
        if !addrs || self.proto.is_some_and(|p| meta.proto() != Some(p)) {
            return false;
        }
        if self.icmp_type.is_some_and(|t| meta.icmp_type() != Some(t)) {
            return false;
        }
        if self.sport.is_none() && self.dport.is_none() {
            return true;
        }
        let Some(l4) = meta.l4() else {
            return false;
        };
        self.sport.is_none_or(|r| r.contains(l4.src_port))
            && self.dport.is_none_or(|r| r.contains(l4.dst_port))
    }
}

fn proto_name(p: u8) -> Option<&'static str> {
    match p {
        ip_proto::TCP => Some("tcp"),
        ip_proto::UDP => Some("udp"),
        ip_proto::ICMP => Some("icmp"),
        ip_proto::ICMPV6 => Some("icmpv6"),
        _ => None,
    }
}

impl fmt::Display for AclRule {
    /// The rule-file form, e.g. `deny src=10.0.0.0/8 proto=udp dport=53`
    /// (keys that match anything are left out).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.action)?;
        if let Some(p) = self.src {
            write!(f, " src={p}")?;
        }
        if let Some(p) = self.dst {
            write!(f, " dst={p}")?;
        }
        if let Some(p) = self.proto {
            match proto_name(p) {
                Some(n) => write!(f, " proto={n}")?,
                None => write!(f, " proto={p}")?,
            }
        }
        if let Some(r) = self.sport {
            write!(f, " sport={r}")?;
        }
        if let Some(r) = self.dport {
            write!(f, " dport={r}")?;
        }
        if let Some(t) = self.icmp_type {
            write!(f, " itype={t}")?;
        }
        Ok(())
    }
}

/// What was wrong with a rule (see [`AclFileError`] for the line number).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum AclErrorKind {
    /// The first word is not `allow`, `deny` or `default`.
    #[error("expected `allow`, `deny` or `default`, found {0:?}")]
    UnknownAction(String),
    /// A word after the action is not `key=value`.
    #[error("expected key=value, found {0:?}")]
    NotKeyValue(String),
    /// An unknown key.
    #[error("unknown key {0:?} (expected src, dst, proto, sport, dport or itype)")]
    UnknownKey(String),
    /// A key given twice in one rule.
    #[error("{0} given twice")]
    DuplicateKey(String),
    /// A `src=`/`dst=` value that is not a prefix or `any`.
    #[error("bad {key}: {err}")]
    BadPrefix {
        /// `src` or `dst`.
        key: &'static str,
        /// Why the prefix did not parse.
        err: PrefixError,
    },
    /// A `proto=` value that is not a name or a number 0–255.
    #[error("protocol {0:?} is not any, tcp, udp, icmp, icmpv6 or a number from 0 to 255")]
    BadProto(String),
    /// A port range that does not parse or has low > high.
    #[error("bad {key} {value:?}: expected any, N or N-M with N <= M <= 65535")]
    BadPortRange {
        /// `sport` or `dport`.
        key: &'static str,
        /// The value given.
        value: String,
    },
    /// A port range with a protocol that has no ports: the rule could never match.
    #[error("port ranges need proto=tcp, udp or any, not protocol {proto}")]
    PortsWithoutL4 {
        /// The protocol given.
        proto: u8,
    },
    /// An `itype=` value that is not `any` or a number 0–255.
    #[error("ICMP type {0:?} is not any or a number from 0 to 255")]
    BadIcmpType(String),
    /// An ICMP type with a protocol other than ICMP/ICMPv6: the rule could never match.
    #[error("itype needs proto=icmp, icmpv6 or any, not protocol {proto}")]
    IcmpTypeWithoutIcmp {
        /// The protocol given.
        proto: u8,
    },
    /// Both ports and an ICMP type: no packet has both.
    #[error("a rule cannot have both ports and itype")]
    PortsAndIcmpType,
    /// `default` without exactly one of `allow`/`deny` after it.
    #[error("`default` takes exactly one word, allow or deny")]
    BadDefault,
    /// A second `default` line.
    #[error("default policy already set on line {first_line}")]
    DuplicateDefault {
        /// Where it was first set.
        first_line: usize,
    },
    /// `fragments` without exactly one of `allow`/`deny` after it.
    #[error("`fragments` takes exactly one word, allow or deny")]
    BadFragments,
    /// A second `fragments` line.
    #[error("fragment policy already set on line {first_line}")]
    DuplicateFragments {
        /// Where it was first set.
        first_line: usize,
    },
}

/// A rule-file error, with its 1-based line number.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("ACL line {line}: {kind}")]
pub struct AclFileError {
    /// 1-based line number.
    pub line: usize,
    /// What was wrong.
    pub kind: AclErrorKind,
}

fn parse_action(w: &str) -> Result<Action, AclErrorKind> {
    match w {
        "allow" => Ok(Action::Allow),
        "deny" => Ok(Action::Deny),
        _ => Err(AclErrorKind::UnknownAction(w.to_owned())),
    }
}

fn parse_prefix(key: &'static str, v: &str) -> Result<Option<IpPrefix>, AclErrorKind> {
    if v == "any" {
        return Ok(None);
    }
    v.parse()
        .map(Some)
        .map_err(|err| AclErrorKind::BadPrefix { key, err })
}

fn parse_proto(v: &str) -> Result<Option<u8>, AclErrorKind> {
    match v {
        "any" => Ok(None),
        "tcp" => Ok(Some(ip_proto::TCP)),
        "udp" => Ok(Some(ip_proto::UDP)),
        "icmp" => Ok(Some(ip_proto::ICMP)),
        "icmpv6" => Ok(Some(ip_proto::ICMPV6)),
        _ if !v.is_empty() && v.bytes().all(|c| c.is_ascii_digit()) => v
            .parse::<u8>()
            .map(Some)
            .map_err(|_| AclErrorKind::BadProto(v.to_owned())),
        _ => Err(AclErrorKind::BadProto(v.to_owned())),
    }
}

fn parse_ports(key: &'static str, v: &str) -> Result<Option<PortRange>, AclErrorKind> {
    if v == "any" {
        return Ok(None);
    }
    let bad = || AclErrorKind::BadPortRange {
        key,
        value: v.to_owned(),
    };
    let num = |s: &str| -> Result<u16, AclErrorKind> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse().map_err(|_| bad())
    };
    let (lo, hi) = match v.split_once('-') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => {
            let n = num(v)?;
            (n, n)
        }
    };
    PortRange::new(lo, hi).map(Some).ok_or_else(bad)
}

impl FromStr for AclRule {
    type Err = AclErrorKind;

    /// Parses one rule in the file syntax (no comment, no `default`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut words = s.split_whitespace();
        let action = parse_action(words.next().unwrap_or(""))?;
        let mut rule = AclRule::any(action);
        let mut seen = [false; 6];
        for w in words {
            let (k, v) = w
                .split_once('=')
                .ok_or_else(|| AclErrorKind::NotKeyValue(w.to_owned()))?;
            let (slot, key) = match k {
                "src" => (0, "src"),
                "dst" => (1, "dst"),
                "proto" => (2, "proto"),
                "sport" => (3, "sport"),
                "dport" => (4, "dport"),
                "itype" => (5, "itype"),
                _ => return Err(AclErrorKind::UnknownKey(k.to_owned())),
            };
            if std::mem::replace(&mut seen[slot], true) {
                return Err(AclErrorKind::DuplicateKey(key.to_owned()));
            }
            match slot {
                0 => rule.src = parse_prefix(key, v)?,
                1 => rule.dst = parse_prefix(key, v)?,
                2 => rule.proto = parse_proto(v)?,
                3 => rule.sport = parse_ports(key, v)?,
                4 => rule.dport = parse_ports(key, v)?,
                _ => {
                    rule.icmp_type = match v {
                        "any" => None,
                        _ if !v.is_empty() && v.bytes().all(|c| c.is_ascii_digit()) => Some(
                            v.parse::<u8>()
                                .map_err(|_| AclErrorKind::BadIcmpType(v.to_owned()))?,
                        ),
                        _ => return Err(AclErrorKind::BadIcmpType(v.to_owned())),
                    }
                }
            }
        }
        let has_ports = rule.sport.is_some() || rule.dport.is_some();
        if has_ports && rule.icmp_type.is_some() {
            return Err(AclErrorKind::PortsAndIcmpType);
        }
        if let Some(p) = rule.proto {
            if rule.icmp_type.is_some() && p != ip_proto::ICMP && p != ip_proto::ICMPV6 {
                return Err(AclErrorKind::IcmpTypeWithoutIcmp { proto: p });
            }
        }
        if let Some(p) = rule.proto {
            if (rule.sport.is_some() || rule.dport.is_some())
                && p != ip_proto::TCP
                && p != ip_proto::UDP
            {
                return Err(AclErrorKind::PortsWithoutL4 { proto: p });
            }
        }
        Ok(rule)
    }
}

/// What decided a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DecidedBy {
    /// The rule at this index matched.
    Rule(usize),
    /// No rule matched: the default policy.
    Default,
    /// A non-first fragment no rule matched: the `fragments` policy.
    Fragments,
    /// A non-first TCP fragment at offset 8 (RFC 1858): always denied.
    TinyFragment,
    /// Not an IP packet: the default policy.
    NonIp,
}

/// The decision for one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AclVerdict {
    /// What to do.
    pub action: Action,
    /// What decided.
    pub by: DecidedBy,
}

impl AclVerdict {
    /// Index of the rule that matched, if a rule decided.
    pub fn rule(&self) -> Option<usize> {
        match self.by {
            DecidedBy::Rule(i) => Some(i),
            _ => None,
        }
    }
}

/// Hit counters of what decided packets other than a rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct OtherHits {
    /// [`DecidedBy::Default`].
    pub default: u64,
    /// [`DecidedBy::Fragments`].
    pub fragments: u64,
    /// [`DecidedBy::TinyFragment`].
    pub tiny_fragment: u64,
    /// [`DecidedBy::NonIp`].
    pub non_ip: u64,
}

/// An ordered rule list, a default policy, a fragment policy and hit counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acl {
    rules: Vec<AclRule>,
    default: Action,
    fragments: Option<Action>,
    hits: Vec<u64>,
    other: OtherHits,
}

fn parse_policy(
    words: &mut core::str::SplitWhitespace<'_>,
    bad: AclErrorKind,
) -> Result<Action, AclErrorKind> {
    match (words.next(), words.next()) {
        (Some(w), None) => parse_action(w).map_err(|_| bad),
        _ => Err(bad),
    }
}

impl Acl {
    /// An ACL with counters at zero and no fragment policy (non-first fragments no rule
    /// matches get the default).
    pub fn new(rules: Vec<AclRule>, default: Action) -> Acl {
        let hits = vec![0; rules.len()];
        Acl {
            rules,
            default,
            fragments: None,
            hits,
            other: OtherHits::default(),
        }
    }

    /// The same ACL with a `fragments` policy.
    #[must_use]
    pub fn with_fragments(mut self, fragments: Option<Action>) -> Acl {
        self.fragments = fragments;
        self
    }

    /// Parses a rule file (see the [module docs](self)).
    pub fn parse(text: &str) -> Result<Acl, AclFileError> {
        let mut rules = Vec::new();
        let mut default: Option<(Action, usize)> = None;
        let mut fragments: Option<(Action, usize)> = None;
        for (idx, raw) in text.lines().enumerate() {
            let line = idx + 1;
            let err = |kind| AclFileError { line, kind };
            let content = raw.split('#').next().unwrap_or("").trim();
            if content.is_empty() {
                continue;
            }
            let mut words = content.split_whitespace();
            match words.next() {
                Some("default") => {
                    let action = parse_policy(&mut words, AclErrorKind::BadDefault).map_err(err)?;
                    if let Some((_, first_line)) = default {
                        return Err(err(AclErrorKind::DuplicateDefault { first_line }));
                    }
                    default = Some((action, line));
                }
                Some("fragments") => {
                    let action =
                        parse_policy(&mut words, AclErrorKind::BadFragments).map_err(err)?;
                    if let Some((_, first_line)) = fragments {
                        return Err(err(AclErrorKind::DuplicateFragments { first_line }));
                    }
                    fragments = Some((action, line));
                }
                _ => rules.push(content.parse::<AclRule>().map_err(err)?),
            }
        }
        Ok(Acl::new(rules, default.map_or(Action::Deny, |(a, _)| a))
            .with_fragments(fragments.map(|(a, _)| a)))
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[AclRule] {
        &self.rules
    }

    /// The default policy.
    pub fn default_action(&self) -> Action {
        self.default
    }

    /// The `fragments` policy, if set.
    pub fn fragments_action(&self) -> Option<Action> {
        self.fragments
    }

    /// The decision for a parsed packet, without counting (see the [module docs](self)).
    #[inline]
    pub fn evaluate(&self, meta: &PacketMeta) -> AclVerdict {
        if meta.ipv4.is_none() && meta.ipv6.is_none() {
            return AclVerdict {
                action: self.default,
                by: DecidedBy::NonIp,
            };
        }
        let later_fragment = meta.frag_offset() != 0;
        if later_fragment && meta.frag_offset() == 8 && meta.proto() == Some(ip_proto::TCP) {
            return AclVerdict {
                action: Action::Deny,
                by: DecidedBy::TinyFragment,
            };
        }
        for (i, r) in self.rules.iter().enumerate() {
            if r.matches(meta) {
                return AclVerdict {
                    action: r.action,
                    by: DecidedBy::Rule(i),
                };
            }
        }
        match self.fragments {
            Some(action) if later_fragment => AclVerdict {
                action,
                by: DecidedBy::Fragments,
            },
            _ => AclVerdict {
                action: self.default,
                by: DecidedBy::Default,
            },
        }
    }

    /// Decides for a parsed packet and counts what decided. Never panics, never allocates.
    #[inline]
    pub fn check(&mut self, meta: &PacketMeta) -> Action {
        let v = self.evaluate(meta);
        match v.by {
            DecidedBy::Rule(i) => {
                if let Some(h) = self.hits.get_mut(i) {
                    *h += 1;
                }
            }
            DecidedBy::Default => self.other.default += 1,
            DecidedBy::Fragments => self.other.fragments += 1,
            DecidedBy::TinyFragment => self.other.tiny_fragment += 1,
            DecidedBy::NonIp => self.other.non_ip += 1,
        }
        v.action
    }

    /// Hits per rule, in rule order.
    pub fn hits(&self) -> &[u64] {
        &self.hits
    }

    /// Packets decided by the default policy (IP packets no rule matched).
    pub fn default_hits(&self) -> u64 {
        self.other.default
    }

    /// Counters of everything but the rules.
    pub fn other_hits(&self) -> OtherHits {
        self.other
    }

    /// Sets every counter to zero.
    pub fn reset_counters(&mut self) {
        self.hits.fill(0);
        self.other = OtherHits::default();
    }
}

impl fmt::Display for Acl {
    /// The rule-file form: one rule per line, then the default.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for r in &self.rules {
            writeln!(f, "{r}")?;
        }
        if let Some(a) = self.fragments {
            writeln!(f, "fragments {a}")?;
        }
        writeln!(f, "default {}", self.default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{Ipv4Meta, Ipv6Meta, L4Meta};
    use proptest::prelude::*;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    /// A parsed-packet description: family from the addresses; `ports` for TCP/UDP, `itype`
    /// for ICMP; `frag_offset` non-zero for a non-first fragment.
    #[derive(Clone, Copy, Debug)]
    struct Pkt {
        src: IpAddr,
        dst: IpAddr,
        proto: u8,
        ports: Option<(u16, u16)>,
        itype: Option<u8>,
        frag_offset: u16,
    }

    fn meta_of(p: &Pkt) -> PacketMeta {
        let l4 = p.ports.map(|(s, d)| L4Meta {
            src_port: s,
            dst_port: d,
            header_len: 8,
            tcp_flags: 0,
        });
        let (l4, icmp_type) = if p.frag_offset != 0 {
            (None, None)
        } else {
            (l4, p.itype)
        };
        let mut m = PacketMeta {
            l2_len: 14,
            ..PacketMeta::default()
        };
        match (p.src, p.dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                m.ethertype = 0x0800;
                m.ipv4 = Some(Ipv4Meta {
                    src,
                    dst,
                    proto: p.proto,
                    ttl: 64,
                    header_len: 20,
                    total_len: 100,
                    fragment: p.frag_offset != 0,
                    frag_offset: p.frag_offset,
                    l4,
                    icmp_type,
                });
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                m.ethertype = 0x86dd;
                m.ipv6 = Some(Ipv6Meta {
                    src,
                    dst,
                    proto: p.proto,
                    hop_limit: 64,
                    header_len: 40,
                    payload_len: 60,
                    ext_headers: 0,
                    fragment: p.frag_offset != 0,
                    frag_offset: p.frag_offset,
                    l4,
                    icmp_type,
                });
            }
            _ => unreachable!("test packets have one family"),
        }
        m
    }

    fn pkt(src: &str, dst: &str, proto: u8, ports: Option<(u16, u16)>) -> PacketMeta {
        meta_of(&Pkt {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            proto,
            ports,
            itype: None,
            frag_offset: 0,
        })
    }

    const FILE: &str = "\
# firewall rules
deny src=10.0.0.0/8 dst=any proto=udp dport=53-53
allow proto=tcp dport=1024-65535   # ephemeral
allow proto=icmp
deny proto=47
allow src=192.168.0.0/16 sport=100-200

default allow
";

    #[test]
    fn parse_and_first_match() {
        let mut acl = Acl::parse(FILE).unwrap();
        assert_eq!(acl.rules().len(), 5);
        assert_eq!(acl.default_action(), Action::Allow);
        assert_eq!(acl.fragments_action(), None);
        let dns = pkt("10.1.1.1", "8.8.8.8", 17, Some((5555, 53)));
        assert_eq!(
            acl.evaluate(&dns),
            AclVerdict {
                action: Action::Deny,
                by: DecidedBy::Rule(0)
            }
        );
        let dns2 = pkt("11.1.1.1", "8.8.8.8", 17, Some((5555, 53)));
        assert_eq!(acl.evaluate(&dns2).rule(), None);
        let web = pkt("1.1.1.1", "2.2.2.2", 6, Some((80, 40000)));
        assert_eq!(acl.evaluate(&web).rule(), Some(1));
        let ping = pkt("1.1.1.1", "2.2.2.2", 1, None);
        assert_eq!(acl.evaluate(&ping).rule(), Some(2));
        let gre = pkt("1.1.1.1", "2.2.2.2", 47, None);
        assert_eq!(acl.evaluate(&gre).action, Action::Deny);
        // A port rule never matches a packet without ports.
        let noports = pkt("192.168.1.1", "2.2.2.2", 17, None);
        assert_eq!(acl.evaluate(&noports).rule(), None);
        let p = pkt("192.168.1.1", "2.2.2.2", 17, Some((150, 9)));
        assert_eq!(acl.evaluate(&p).rule(), Some(4));

        assert_eq!(acl.check(&dns), Action::Deny);
        assert_eq!(acl.check(&dns), Action::Deny);
        assert_eq!(acl.check(&ping), Action::Allow);
        assert_eq!(acl.check(&dns2), Action::Allow);
        assert_eq!(acl.check(&PacketMeta::default()), Action::Allow);
        assert_eq!(acl.hits(), &[2, 0, 1, 0, 0]);
        assert_eq!(acl.default_hits(), 1);
        assert_eq!(acl.other_hits().non_ip, 1);
        acl.reset_counters();
        assert_eq!(acl.hits(), &[0; 5]);
        assert_eq!(acl.other_hits(), OtherHits::default());

        // Display gives back an equivalent file.
        assert_eq!(Acl::parse(&acl.to_string()).unwrap(), acl);
    }

    #[test]
    fn ipv6_goes_through_the_rules() {
        let mut acl = Acl::parse(
            "deny proto=tcp dport=23\n\
             deny src=10.0.0.0/8\n\
             deny dst=2001:db8:bad::/48\n\
             allow proto=icmpv6 itype=128\n\
             deny proto=icmpv6\n\
             default allow\n",
        )
        .unwrap();
        // Telnet over IPv6 is denied by the family-neutral port rule.
        let telnet6 = pkt("2001:db8::1", "2001:db8:1::1", 6, Some((4000, 23)));
        assert_eq!(acl.check(&telnet6), Action::Deny);
        let telnet4 = pkt("1.1.1.1", "2.2.2.2", 6, Some((4000, 23)));
        assert_eq!(acl.check(&telnet4), Action::Deny);
        // An IPv4 prefix never matches IPv6 (and vice versa).
        let v6 = pkt("2001:db8::1", "2001:db8:1::1", 17, Some((1, 2)));
        assert_eq!(acl.evaluate(&v6).by, DecidedBy::Default);
        let bad6 = pkt("2001:db8::1", "2001:db8:bad::7", 17, Some((1, 2)));
        assert_eq!(acl.evaluate(&bad6).by, DecidedBy::Rule(2));
        let v4 = pkt("10.1.1.1", "2.2.2.2", 17, Some((1, 2)));
        assert_eq!(acl.evaluate(&v4).by, DecidedBy::Rule(1));
        // ICMPv6 echo request allowed, other ICMPv6 denied.
        let mut echo = Pkt {
            src: "2001:db8::1".parse().unwrap(),
            dst: "2001:db8::2".parse().unwrap(),
            proto: 58,
            ports: None,
            itype: Some(128),
            frag_offset: 0,
        };
        assert_eq!(acl.evaluate(&meta_of(&echo)).by, DecidedBy::Rule(3));
        echo.itype = Some(135);
        assert_eq!(acl.evaluate(&meta_of(&echo)).by, DecidedBy::Rule(4));
        assert_eq!(acl.hits(), &[2, 0, 0, 0, 0]);
    }

    #[test]
    fn fragment_policy() {
        let text = "allow proto=udp dport=53\ndeny src=10.0.0.0/8\nfragments allow\ndefault deny\n";
        let mut acl = Acl::parse(text).unwrap();
        assert_eq!(acl.fragments_action(), Some(Action::Allow));
        let frag = |src: &str, proto: u8, off: u16, ports| Pkt {
            src: src.parse().unwrap(),
            dst: "2.2.2.2".parse().unwrap(),
            proto,
            ports,
            itype: None,
            frag_offset: off,
        };
        // First fragment: judged with its ports.
        let first = meta_of(&frag("1.1.1.1", 17, 0, Some((9, 53))));
        assert_eq!(acl.check(&first), Action::Allow);
        // Non-first fragment: the port rule cannot match; the fragments policy decides.
        let later = meta_of(&frag("1.1.1.1", 17, 1480, None));
        assert_eq!(acl.evaluate(&later).by, DecidedBy::Fragments);
        assert_eq!(acl.check(&later), Action::Allow);
        // ... but a rule without ports still catches it.
        let later10 = meta_of(&frag("10.1.1.1", 17, 1480, None));
        assert_eq!(acl.check(&later10), Action::Deny);
        // RFC 1858: TCP at offset 8 is always denied.
        let tiny = meta_of(&frag("1.1.1.1", 6, 8, None));
        assert_eq!(acl.check(&tiny), Action::Deny);
        // Unfragmented packets no rule matches get the default, not the fragment policy.
        let other = meta_of(&frag("1.1.1.1", 17, 0, Some((9, 54))));
        assert_eq!(acl.check(&other), Action::Deny);
        let h = acl.other_hits();
        assert_eq!((h.fragments, h.tiny_fragment, h.default), (1, 1, 1));
        assert_eq!(acl.hits(), &[1, 1]);
        // Without a fragments line, the default decides.
        let acl2 = Acl::parse("allow proto=udp dport=53\ndefault deny").unwrap();
        assert_eq!(acl2.evaluate(&later).by, DecidedBy::Default);
        acl.reset_counters();
        assert_eq!(Acl::parse(&acl.to_string()).unwrap(), acl);
    }

    #[test]
    fn default_is_deny() {
        let acl = Acl::parse("allow proto=tcp\n").unwrap();
        assert_eq!(acl.default_action(), Action::Deny);
        assert_eq!(Acl::parse("").unwrap().default_action(), Action::Deny);
    }

    #[test]
    fn errors_name_line_and_problem() {
        let cases: &[(&str, usize, &str)] = &[
            (
                "permit proto=tcp",
                1,
                "expected `allow`, `deny` or `default`, found \"permit\"",
            ),
            ("allow\nallow tcp", 2, "expected key=value, found \"tcp\""),
            ("allow port=80", 1, "unknown key \"port\""),
            ("allow src=any src=any", 1, "src given twice"),
            ("allow src=10.0.0.0/40", 1, "bad src"),
            ("allow dst=10.1.0.0/8", 1, "host bits"),
            ("allow dst=2001:db8::1/32", 1, "host bits"),
            ("allow dst=2001:db8::/129", 1, "0 to 128"),
            ("allow src=2001:zz::/32", 1, "not an IPv6 address"),
            ("allow dst=ten", 1, "bad dst"),
            ("allow proto=sctp", 1, "protocol \"sctp\""),
            ("allow proto=256", 1, "protocol \"256\""),
            ("allow proto=-1", 1, "protocol \"-1\""),
            ("allow dport=10-5", 1, "bad dport \"10-5\""),
            ("allow sport=70000", 1, "bad sport"),
            ("allow dport=", 1, "bad dport"),
            ("allow dport=1-", 1, "bad dport"),
            ("allow proto=icmp dport=1", 1, "not protocol 1"),
            ("allow itype=300", 1, "ICMP type \"300\""),
            ("allow proto=tcp itype=3", 1, "not protocol 6"),
            ("allow dport=80 itype=3", 1, "both ports and itype"),
            ("default", 1, "exactly one word"),
            ("default maybe", 1, "exactly one word"),
            ("default allow deny", 1, "exactly one word"),
            (
                "default allow\n\n# c\ndefault deny",
                4,
                "already set on line 1",
            ),
            ("fragments", 1, "`fragments` takes exactly one word"),
            (
                "fragments deny\nfragments deny",
                2,
                "fragment policy already set on line 1",
            ),
        ];
        for (text, line, what) in cases {
            let e = Acl::parse(text).unwrap_err();
            assert_eq!(e.line, *line, "{text:?}: {e}");
            let msg = e.to_string();
            assert!(msg.contains(what), "{text:?}: {msg}");
            assert!(msg.starts_with(&format!("ACL line {line}: ")), "{msg}");
        }
    }

    fn v4(a: u32, x: u8) -> u32 {
        0x0a00_0000 | (a << 22) | (a << 6) | u32::from(x)
    }

    fn v6(a: u32, x: u8) -> u128 {
        0x2001_0db8_0000_0000_0000_0000_0000_0000 | (u128::from(a) << 90) | u128::from(x)
    }

    fn prefix() -> impl Strategy<Value = Option<IpPrefix>> {
        prop_oneof![
            Just(None),
            Just(Some("0.0.0.0/0".parse().unwrap())),
            Just(Some("::/0".parse().unwrap())),
            (0u32..4, 0u8..=32).prop_map(|(a, len)| Some(IpPrefix::V4(
                crate::Ipv4Prefix::new(Ipv4Addr::from(v4(a, 0)), len).unwrap()
            ))),
            (0u32..4, 0u8..=128).prop_map(|(a, len)| Some(IpPrefix::V6(
                crate::Ipv6Prefix::new(Ipv6Addr::from(v6(a, 0)), len).unwrap()
            ))),
        ]
    }

    fn ports() -> impl Strategy<Value = Option<PortRange>> {
        prop_oneof![
            Just(None),
            (0u16..300, 0u16..300).prop_map(|(a, b)| PortRange::new(a.min(b), a.max(b))),
        ]
    }

    fn rule() -> impl Strategy<Value = AclRule> {
        (
            prop_oneof![Just(Action::Allow), Just(Action::Deny)],
            prefix(),
            prefix(),
            prop_oneof![
                Just(None),
                Just(Some(6u8)),
                Just(Some(17u8)),
                Just(Some(58u8))
            ],
            ports(),
            ports(),
            prop_oneof![Just(None), (0u8..4).prop_map(Some)],
        )
            .prop_map(|(action, src, dst, proto, sport, dport, itype)| {
                let l4 = matches!(proto, None | Some(6) | Some(17));
                AclRule {
                    action,
                    src,
                    dst,
                    proto,
                    sport: sport.filter(|_| l4),
                    dport: dport.filter(|_| l4),
                    icmp_type: itype.filter(|_| {
                        matches!(proto, None | Some(58)) && sport.is_none() && dport.is_none()
                    }),
                }
            })
    }

    fn packet() -> impl Strategy<Value = Pkt> {
        (
            any::<bool>(),
            (0u32..4, any::<u8>(), 0u32..4, any::<u8>()),
            prop_oneof![Just(1u8), Just(6u8), Just(17u8), Just(58u8)],
            (0u16..300, 0u16..300, 0u8..4),
            prop_oneof![Just(0u16), Just(8u16), Just(1480u16)],
        )
            .prop_map(|(is6, (a, x, b, y), proto, (sp, dp, it), frag_offset)| {
                let (src, dst): (IpAddr, IpAddr) = if is6 {
                    (
                        Ipv6Addr::from(v6(a, x)).into(),
                        Ipv6Addr::from(v6(b, y)).into(),
                    )
                } else {
                    (
                        Ipv4Addr::from(v4(a, x)).into(),
                        Ipv4Addr::from(v4(b, y)).into(),
                    )
                };
                Pkt {
                    src,
                    dst,
                    proto,
                    ports: matches!(proto, 6 | 17).then_some((sp, dp)),
                    itype: matches!(proto, 1 | 58).then_some(it),
                    frag_offset,
                }
            })
    }

    /// The model, written from the module docs with plain integer arithmetic.
    fn model(acl: &Acl, p: &Pkt) -> AclVerdict {
        let in_prefix = |pre: &Option<IpPrefix>, ip: IpAddr| match (pre, ip) {
            (None, _) => true,
            (Some(IpPrefix::V4(q)), IpAddr::V4(a)) => {
                let shift = 32 - u32::from(q.prefix_len());
                shift == 32 || u32::from(a) >> shift == u32::from(q.addr()) >> shift
            }
            (Some(IpPrefix::V6(q)), IpAddr::V6(a)) => {
                let shift = 128 - u32::from(q.prefix_len());
                shift == 128 || u128::from(a) >> shift == u128::from(q.addr()) >> shift
            }
            _ => false,
        };
        let later = p.frag_offset != 0;
        if later && p.frag_offset == 8 && p.proto == 6 {
            return AclVerdict {
                action: Action::Deny,
                by: DecidedBy::TinyFragment,
            };
        }
        let ports = if later { None } else { p.ports };
        let itype = if later { None } else { p.itype };
        let in_range = |r: &Option<PortRange>, port: Option<u16>| match (r, port) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(r), Some(x)) => (r.lo()..=r.hi()).contains(&x),
        };
        for (i, r) in acl.rules().iter().enumerate() {
            if in_prefix(&r.src, p.src)
                && in_prefix(&r.dst, p.dst)
                && r.proto.is_none_or(|x| x == p.proto)
                && r.icmp_type.is_none_or(|t| itype == Some(t))
                && in_range(&r.sport, ports.map(|l| l.0))
                && in_range(&r.dport, ports.map(|l| l.1))
            {
                return AclVerdict {
                    action: r.action,
                    by: DecidedBy::Rule(i),
                };
            }
        }
        match acl.fragments_action() {
            Some(a) if later => AclVerdict {
                action: a,
                by: DecidedBy::Fragments,
            },
            _ => AclVerdict {
                action: acl.default_action(),
                by: DecidedBy::Default,
            },
        }
    }

    proptest! {
        #[test]
        fn matches_model(
            rules in proptest::collection::vec(rule(), 0..12),
            packets in proptest::collection::vec(packet(), 1..50),
            default_allow in any::<bool>(),
            frags in prop_oneof![Just(None), Just(Some(Action::Allow)), Just(Some(Action::Deny))],
        ) {
            let default = if default_allow { Action::Allow } else { Action::Deny };
            let mut acl = Acl::new(rules.clone(), default).with_fragments(frags);
            let mut counts = vec![0u64; rules.len()];
            let mut other = OtherHits::default();
            for p in &packets {
                let want = model(&acl, p);
                let m = meta_of(p);
                prop_assert_eq!(acl.evaluate(&m), want);
                prop_assert_eq!(acl.check(&m), want.action);
                match want.by {
                    DecidedBy::Rule(i) => counts[i] += 1,
                    DecidedBy::Default => other.default += 1,
                    DecidedBy::Fragments => other.fragments += 1,
                    DecidedBy::TinyFragment => other.tiny_fragment += 1,
                    DecidedBy::NonIp => other.non_ip += 1,
                }
            }
            prop_assert_eq!(acl.hits(), &counts[..]);
            prop_assert_eq!(acl.other_hits(), other);
            // The file form round-trips.
            let reparsed = Acl::parse(&acl.to_string()).unwrap();
            prop_assert_eq!(reparsed.rules(), acl.rules());
            prop_assert_eq!(reparsed.fragments_action(), acl.fragments_action());
        }

        #[test]
        fn parse_never_panics(s in "[a-z=0-9./: #\n-]{0,80}") {
            let _ = Acl::parse(&s);
        }
    }
}
