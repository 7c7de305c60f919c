//! An ordered, first-match-wins access control list for the firewall NF.
//!
//! Rules are checked in order; the first that matches decides; if none does,
//! the default policy decides. Each rule has a hit counter (plain `u64`s: the
//! firewall is single-threaded and owns its `Acl`). Evaluation is a linear scan
//! with no allocation, fine for the tens of rules a firewall NF is given.
//!
//! # Rule file
//! ```text
//! # one rule per line; '#' starts a comment
//! deny  src=10.0.0.0/8 dst=any proto=udp dport=53
//! allow proto=tcp dport=1024-65535
//! allow proto=icmp
//! default deny
//! ```
//! A rule is `allow` or `deny` followed by any of `src=`, `dst=` (CIDR, bare
//! address for a /32, or `any`), `proto=` (`any`, `tcp`, `udp`, `icmp` or a
//! number 0–255), `sport=`, `dport=` (`any`, `N` or `N-M`), each at most once;
//! omitted keys match anything. A port range only matches packets that have
//! ports (TCP or UDP, not a non-first fragment), so it is an error together
//! with a protocol that has none. `default allow|deny` may appear once,
//! anywhere; without it the default is **deny**.

use core::fmt;
use core::str::FromStr;

use thiserror::Error;

use crate::l4::ip_proto;
use crate::meta::{Ipv4Meta, Ipv4Prefix, PacketMeta, PrefixError};

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

/// One ACL rule. `None` and `Ipv4Prefix::ANY` match anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AclRule {
    /// What a match means.
    pub action: Action,
    /// Source prefix.
    pub src: Ipv4Prefix,
    /// Destination prefix.
    pub dst: Ipv4Prefix,
    /// IP protocol, or any.
    pub proto: Option<u8>,
    /// Source port range; `Some` matches only packets with ports.
    pub sport: Option<PortRange>,
    /// Destination port range; `Some` matches only packets with ports.
    pub dport: Option<PortRange>,
}

impl AclRule {
    /// A rule that matches every IPv4 packet.
    pub const fn any(action: Action) -> AclRule {
        AclRule {
            action,
            src: Ipv4Prefix::ANY,
            dst: Ipv4Prefix::ANY,
            proto: None,
            sport: None,
            dport: None,
        }
    }

    /// True if the rule matches the packet.
    #[inline]
    pub fn matches(&self, ip: &Ipv4Meta) -> bool {
        if !self.src.contains(ip.src) || !self.dst.contains(ip.dst) {
            return false;
        }
        if self.proto.is_some_and(|p| p != ip.proto) {
            return false;
        }
        if self.sport.is_none() && self.dport.is_none() {
            return true;
        }
        let Some(l4) = ip.l4 else {
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
        _ => None,
    }
}

impl fmt::Display for AclRule {
    /// The rule-file form, e.g. `deny src=10.0.0.0/8 proto=udp dport=53`
    /// (keys that match anything are left out).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.action)?;
        if self.src != Ipv4Prefix::ANY {
            write!(f, " src={}", self.src)?;
        }
        if self.dst != Ipv4Prefix::ANY {
            write!(f, " dst={}", self.dst)?;
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
    #[error("unknown key {0:?} (expected src, dst, proto, sport or dport)")]
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
    #[error("protocol {0:?} is not any, tcp, udp, icmp or a number from 0 to 255")]
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
    /// `default` without exactly one of `allow`/`deny` after it.
    #[error("`default` takes exactly one word, allow or deny")]
    BadDefault,
    /// A second `default` line.
    #[error("default policy already set on line {first_line}")]
    DuplicateDefault {
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

fn parse_prefix(key: &'static str, v: &str) -> Result<Ipv4Prefix, AclErrorKind> {
    if v == "any" {
        return Ok(Ipv4Prefix::ANY);
    }
    v.parse()
        .map_err(|err| AclErrorKind::BadPrefix { key, err })
}

fn parse_proto(v: &str) -> Result<Option<u8>, AclErrorKind> {
    match v {
        "any" => Ok(None),
        "tcp" => Ok(Some(ip_proto::TCP)),
        "udp" => Ok(Some(ip_proto::UDP)),
        "icmp" => Ok(Some(ip_proto::ICMP)),
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
        let mut seen = [false; 5];
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
                _ => rule.dport = parse_ports(key, v)?,
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

/// The decision for one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AclVerdict {
    /// What to do.
    pub action: Action,
    /// Index of the rule that matched, `None` for the default policy.
    pub rule: Option<usize>,
}

/// An ordered rule list, a default policy and hit counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acl {
    rules: Vec<AclRule>,
    default: Action,
    hits: Vec<u64>,
    default_hits: u64,
}

impl Acl {
    /// An ACL with counters at zero.
    pub fn new(rules: Vec<AclRule>, default: Action) -> Acl {
        let hits = vec![0; rules.len()];
        Acl {
            rules,
            default,
            hits,
            default_hits: 0,
        }
    }

    /// Parses a rule file (see the [module docs](self)).
    pub fn parse(text: &str) -> Result<Acl, AclFileError> {
        let mut rules = Vec::new();
        let mut default: Option<(Action, usize)> = None;
        for (idx, raw) in text.lines().enumerate() {
            let line = idx + 1;
            let err = |kind| AclFileError { line, kind };
            let content = raw.split('#').next().unwrap_or("").trim();
            if content.is_empty() {
                continue;
            }
            let mut words = content.split_whitespace();
            if words.next() == Some("default") {
                let action = match (words.next(), words.next()) {
                    (Some(w), None) => {
                        parse_action(w).map_err(|_| err(AclErrorKind::BadDefault))?
                    }
                    _ => return Err(err(AclErrorKind::BadDefault)),
                };
                if let Some((_, first_line)) = default {
                    return Err(err(AclErrorKind::DuplicateDefault { first_line }));
                }
                default = Some((action, line));
                continue;
            }
            rules.push(content.parse::<AclRule>().map_err(err)?);
        }
        Ok(Acl::new(rules, default.map_or(Action::Deny, |(a, _)| a)))
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[AclRule] {
        &self.rules
    }

    /// The default policy.
    pub fn default_action(&self) -> Action {
        self.default
    }

    /// First-match decision for an IPv4 packet, without counting.
    #[inline]
    pub fn evaluate(&self, ip: &Ipv4Meta) -> AclVerdict {
        match self.rules.iter().position(|r| r.matches(ip)) {
            Some(i) => AclVerdict {
                action: self.rules.get(i).map_or(self.default, |r| r.action),
                rule: Some(i),
            },
            None => AclVerdict {
                action: self.default,
                rule: None,
            },
        }
    }

    /// Decides for a parsed packet and counts the hit. Packets that are not IPv4
    /// get the default policy (and count as default hits). Never panics, never
    /// allocates.
    #[inline]
    pub fn check(&mut self, meta: &PacketMeta) -> Action {
        let v = match &meta.ipv4 {
            Some(ip) => self.evaluate(ip),
            None => AclVerdict {
                action: self.default,
                rule: None,
            },
        };
        match v.rule.and_then(|i| self.hits.get_mut(i)) {
            Some(h) => *h += 1,
            None => self.default_hits += 1,
        }
        v.action
    }

    /// Hits per rule, in rule order.
    pub fn hits(&self) -> &[u64] {
        &self.hits
    }

    /// Packets decided by the default policy.
    pub fn default_hits(&self) -> u64 {
        self.default_hits
    }

    /// Sets every counter to zero.
    pub fn reset_counters(&mut self) {
        self.hits.fill(0);
        self.default_hits = 0;
    }
}

impl fmt::Display for Acl {
    /// The rule-file form: one rule per line, then the default.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for r in &self.rules {
            writeln!(f, "{r}")?;
        }
        writeln!(f, "default {}", self.default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::L4Meta;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    fn meta(src: &str, dst: &str, proto: u8, ports: Option<(u16, u16)>) -> Ipv4Meta {
        Ipv4Meta {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            proto,
            ttl: 64,
            header_len: 20,
            total_len: 100,
            fragment: false,
            frag_offset: 0,
            l4: ports.map(|(s, d)| L4Meta {
                src_port: s,
                dst_port: d,
                header_len: 8,
                tcp_flags: 0,
            }),
        }
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
        let dns = meta("10.1.1.1", "8.8.8.8", 17, Some((5555, 53)));
        assert_eq!(
            acl.evaluate(&dns),
            AclVerdict {
                action: Action::Deny,
                rule: Some(0)
            }
        );
        let dns2 = meta("11.1.1.1", "8.8.8.8", 17, Some((5555, 53)));
        assert_eq!(acl.evaluate(&dns2).rule, None);
        let web = meta("1.1.1.1", "2.2.2.2", 6, Some((80, 40000)));
        assert_eq!(acl.evaluate(&web).rule, Some(1));
        let ping = meta("1.1.1.1", "2.2.2.2", 1, None);
        assert_eq!(acl.evaluate(&ping).rule, Some(2));
        let gre = meta("1.1.1.1", "2.2.2.2", 47, None);
        assert_eq!(acl.evaluate(&gre).action, Action::Deny);
        // A port rule never matches a packet without ports.
        let frag = meta("192.168.1.1", "2.2.2.2", 17, None);
        assert_eq!(acl.evaluate(&frag).rule, None);
        let p = meta("192.168.1.1", "2.2.2.2", 17, Some((150, 9)));
        assert_eq!(acl.evaluate(&p).rule, Some(4));

        // Counting through PacketMeta.
        let pm = |ip| PacketMeta {
            ethertype: 0x0800,
            vlan_tci: None,
            l2_len: 14,
            ipv4: Some(ip),
        };
        assert_eq!(acl.check(&pm(dns)), Action::Deny);
        assert_eq!(acl.check(&pm(dns)), Action::Deny);
        assert_eq!(acl.check(&pm(ping)), Action::Allow);
        assert_eq!(acl.check(&pm(dns2)), Action::Allow);
        assert_eq!(acl.check(&PacketMeta::default()), Action::Allow);
        assert_eq!(acl.hits(), &[2, 0, 1, 0, 0]);
        assert_eq!(acl.default_hits(), 2);
        acl.reset_counters();
        assert_eq!(acl.hits(), &[0; 5]);
        assert_eq!(acl.default_hits(), 0);

        // Display gives back an equivalent file.
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
            ("allow dst=ten", 1, "bad dst"),
            ("allow proto=sctp", 1, "protocol \"sctp\""),
            ("allow proto=256", 1, "protocol \"256\""),
            ("allow proto=-1", 1, "protocol \"-1\""),
            ("allow dport=10-5", 1, "bad dport \"10-5\""),
            ("allow sport=70000", 1, "bad sport"),
            ("allow dport=", 1, "bad dport"),
            ("allow dport=1-", 1, "bad dport"),
            ("allow proto=icmp dport=1", 1, "not protocol 1"),
            ("default", 1, "exactly one word"),
            ("default maybe", 1, "exactly one word"),
            ("default allow deny", 1, "exactly one word"),
            (
                "default allow\n\n# c\ndefault deny",
                4,
                "already set on line 1",
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

    fn prefix() -> impl Strategy<Value = Ipv4Prefix> {
        prop_oneof![
            Just(Ipv4Prefix::ANY),
            (0u32..4, 0u8..=32).prop_map(|(a, len)| {
                Ipv4Prefix::new(Ipv4Addr::from(0x0a00_0000 | (a << 22) | (a << 6)), len).unwrap()
            }),
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
            prop_oneof![Just(None), Just(Some(6u8)), Just(Some(17u8))],
            ports(),
            ports(),
        )
            .prop_map(|(action, src, dst, proto, sport, dport)| AclRule {
                action,
                src,
                dst,
                proto,
                sport,
                dport,
            })
    }

    fn packet() -> impl Strategy<Value = Ipv4Meta> {
        (
            0u32..4,
            any::<u8>(),
            0u32..4,
            any::<u8>(),
            prop_oneof![Just(1u8), Just(6u8), Just(17u8)],
            0u16..300,
            0u16..300,
            any::<bool>(),
        )
            .prop_map(|(a, x, b, y, proto, sp, dp, has_ports)| {
                let src = 0x0a00_0000 | (a << 22) | (a << 6) | u32::from(x);
                let dst = 0x0a00_0000 | (b << 22) | (b << 6) | u32::from(y);
                Ipv4Meta {
                    src: Ipv4Addr::from(src),
                    dst: Ipv4Addr::from(dst),
                    proto,
                    ttl: 1,
                    header_len: 20,
                    total_len: 40,
                    fragment: !has_ports,
                    frag_offset: 0,
                    l4: (has_ports && proto != 1).then_some(L4Meta {
                        src_port: sp,
                        dst_port: dp,
                        header_len: 8,
                        tcp_flags: 0,
                    }),
                }
            })
    }

    /// The model: a rule matches iff every constraint holds, written with plain
    /// integer arithmetic; the answer is the lowest matching index.
    fn model(rules: &[AclRule], default: Action, p: &Ipv4Meta) -> AclVerdict {
        let in_prefix = |pre: &Ipv4Prefix, ip: Ipv4Addr| {
            let shift = 32 - u32::from(pre.prefix_len());
            shift == 32 || u32::from(ip) >> shift == u32::from(pre.addr()) >> shift
        };
        let in_range = |r: &Option<PortRange>, port: Option<u16>| match (r, port) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(r), Some(x)) => (r.lo()..=r.hi()).contains(&x),
        };
        for (i, r) in rules.iter().enumerate() {
            if in_prefix(&r.src, p.src)
                && in_prefix(&r.dst, p.dst)
                && r.proto.is_none_or(|x| x == p.proto)
                && in_range(&r.sport, p.l4.map(|l| l.src_port))
                && in_range(&r.dport, p.l4.map(|l| l.dst_port))
            {
                return AclVerdict {
                    action: r.action,
                    rule: Some(i),
                };
            }
        }
        AclVerdict {
            action: default,
            rule: None,
        }
    }

    proptest! {
        #[test]
        fn matches_model(
            rules in proptest::collection::vec(rule(), 0..12),
            packets in proptest::collection::vec(packet(), 1..50),
            default_allow in any::<bool>(),
        ) {
            let default = if default_allow { Action::Allow } else { Action::Deny };
            let mut acl = Acl::new(rules.clone(), default);
            let mut counts = vec![0u64; rules.len()];
            let mut dflt = 0u64;
            for p in &packets {
                let want = model(&rules, default, p);
                prop_assert_eq!(acl.evaluate(p), want);
                let pm = PacketMeta { ethertype: 0x0800, vlan_tci: None, l2_len: 14, ipv4: Some(*p) };
                prop_assert_eq!(acl.check(&pm), want.action);
                match want.rule { Some(i) => counts[i] += 1, None => dflt += 1 }
            }
            prop_assert_eq!(acl.hits(), &counts[..]);
            prop_assert_eq!(acl.default_hits(), dflt);
            // The file form round-trips.
            let reparsed = Acl::parse(&acl.to_string()).unwrap();
            prop_assert_eq!(reparsed.rules(), acl.rules());
        }

        #[test]
        fn parse_never_panics(s in "[a-z=0-9./ #\n-]{0,80}") {
            let _ = Acl::parse(&s);
        }
    }
}
