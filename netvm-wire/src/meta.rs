//! One-pass header parsing for classification, IPv4 prefixes and match rules.

use core::fmt;
use core::ops::RangeInclusive;
use core::str::FromStr;
use std::net::Ipv4Addr;

use thiserror::Error;

use crate::bytes::{rd16, rd32, rd8, sub};
use crate::error::{need, Result, WireError};
use crate::ethernet::{ethertype, EthernetFrame};
use crate::ipv4;
use crate::l4::ip_proto;

/// What the classifier needs from a frame, filled in by one parse pass.
///
/// Offsets are from the start of the frame: the IPv4 header starts at
/// `l2_len`, the L4 header at `l2_len + ipv4.header_len`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PacketMeta {
    /// EtherType of the payload, after at most one VLAN tag.
    pub ethertype: u16,
    /// Tag control information of the one VLAN tag looked through, if any.
    pub vlan_tci: Option<u16>,
    /// Ethernet header length: 14, or 18 with a VLAN tag.
    pub l2_len: u16,
    /// Present iff `ethertype` is IPv4 (a malformed IPv4 header is an error, not `None`).
    pub ipv4: Option<Ipv4Meta>,
}

/// IPv4 fields of a [`PacketMeta`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ipv4Meta {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Protocol number.
    pub proto: u8,
    /// Time to live.
    pub ttl: u8,
    /// Header length in bytes (IHL × 4).
    pub header_len: u16,
    /// Total length in bytes.
    pub total_len: u16,
    /// True for any fragment, the first included (MF set or offset ≠ 0).
    pub fragment: bool,
    /// Fragment offset in bytes (0 for unfragmented packets and first fragments).
    pub frag_offset: u16,
    /// TCP/UDP ports; `None` for other protocols and for non-first fragments.
    pub l4: Option<L4Meta>,
}

/// TCP/UDP fields of an [`Ipv4Meta`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct L4Meta {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// L4 header length: 8 for UDP, data offset × 4 for TCP.
    pub header_len: u16,
    /// TCP flag bits (0 for UDP).
    pub tcp_flags: u8,
}

impl PacketMeta {
    /// Parses the Ethernet, IPv4 and TCP/UDP headers of `frame` in one pass.
    ///
    /// - Non-IPv4 EtherTypes (ARP, IPv6, a second VLAN tag, …) give `ipv4: None`.
    /// - IPv4 is validated as by [`Ipv4Packet::new_checked`](crate::Ipv4Packet::new_checked)
    ///   (checksum not verified); L4 is read from within the IPv4 total length.
    /// - TCP and UDP in an unfragmented packet or a first fragment must have their
    ///   header present (8 bytes for UDP; a valid data offset and the whole header
    ///   for TCP), else the frame is malformed: this also rejects RFC 1858
    ///   tiny-fragment tricks. The UDP length field is not checked here.
    /// - Non-first fragments carry no L4 header: `l4: None`.
    ///
    /// Errors: any [`WireError`] from the Ethernet, IPv4, or L4 header. Never
    /// panics, never allocates.
    #[inline]
    pub fn parse(frame: &[u8]) -> Result<PacketMeta> {
        Self::parse_prefix(frame, frame.len())
    }

    /// As [`parse`](Self::parse), from a private copy of the first bytes of a frame that is
    /// `frame_len` bytes long: lengths (the IPv4 total length) are checked against
    /// `frame_len`, while every header read must lie inside `prefix`. The core parses packets
    /// in memory that NFs can write this way, from a copy, so that no length can change
    /// between its check and its use. Headers beyond `prefix` are an error (`Truncated`).
    #[inline]
    pub fn parse_prefix(prefix: &[u8], frame_len: usize) -> Result<PacketMeta> {
        let frame_len = frame_len.max(prefix.len());
        let eth = EthernetFrame::new_checked(prefix)?;
        let l2_len = eth.header_len();
        let mut meta = PacketMeta {
            ethertype: eth.ethertype(),
            vlan_tci: eth.vlan_tci(),
            // 14 or 18.
            l2_len: u16::try_from(l2_len).unwrap_or(0),
            ipv4: None,
        };
        if meta.ethertype != ethertype::IPV4 {
            return Ok(meta);
        }
        let ip = eth.payload();
        let ip_len = frame_len - l2_len;
        let (header_len, total_len) = ipv4::check_within(ip, ip_len)?;
        let frag = rd16(ip, 6);
        let frag_offset = (frag & 0x1fff) << 3;
        let proto = rd8(ip, 9);
        let l4 = if frag_offset != 0 {
            None
        } else {
            parse_l4(proto, sub(ip, header_len..total_len.min(ip.len())))?
        };
        meta.ipv4 = Some(Ipv4Meta {
            src: Ipv4Addr::from(rd32(ip, 12)),
            dst: Ipv4Addr::from(rd32(ip, 16)),
            proto,
            ttl: rd8(ip, 8),
            // Both are at most 65535: they come from a 4-bit and a 16-bit field.
            header_len: u16::try_from(header_len).unwrap_or(u16::MAX),
            total_len: u16::try_from(total_len).unwrap_or(u16::MAX),
            fragment: frag & 0x3fff != 0,
            frag_offset,
            l4,
        });
        Ok(meta)
    }

    /// Offset of the L4 header in the frame, if the packet is IPv4.
    #[inline]
    pub fn l4_offset(&self) -> Option<usize> {
        self.ipv4
            .map(|ip| usize::from(self.l2_len) + usize::from(ip.header_len))
    }

    /// Source and destination ports, if present.
    #[inline]
    pub fn ports(&self) -> Option<(u16, u16)> {
        self.ipv4
            .and_then(|ip| ip.l4)
            .map(|l4| (l4.src_port, l4.dst_port))
    }
}

#[inline]
fn parse_l4(proto: u8, seg: &[u8]) -> Result<Option<L4Meta>> {
    match proto {
        ip_proto::UDP => {
            need(seg.len(), 8)?;
            Ok(Some(L4Meta {
                src_port: rd16(seg, 0),
                dst_port: rd16(seg, 2),
                header_len: 8,
                tcp_flags: 0,
            }))
        }
        ip_proto::TCP => {
            need(seg.len(), 20)?;
            let header_len = u16::from(rd8(seg, 12) >> 4) * 4;
            if header_len < 20 {
                return Err(WireError::BadHeaderLen {
                    header_len: usize::from(header_len),
                    min: 20,
                });
            }
            need(seg.len(), usize::from(header_len))?;
            Ok(Some(L4Meta {
                src_port: rd16(seg, 0),
                dst_port: rd16(seg, 2),
                header_len,
                tcp_flags: rd8(seg, 13),
            }))
        }
        _ => Ok(None),
    }
}

/// An IPv4 prefix (CIDR block). Host bits are always zero and the length is at
/// most 32 (both enforced by the constructors).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Prefix {
    addr: Ipv4Addr,
    len: u8,
}

/// Why a string or pair is not an IPv4 prefix.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum PrefixError {
    /// The address part is not a dotted-quad IPv4 address.
    #[error("{input:?} is not an IPv4 address")]
    BadAddress {
        /// The address text.
        input: String,
    },
    /// The length part is not a number from 0 to 32.
    #[error("prefix length {input:?} is not a number from 0 to 32")]
    BadLength {
        /// The length text.
        input: String,
    },
    /// The address has bits set beyond the prefix length (e.g. `10.1.0.0/8`).
    #[error("{addr}/{len} has host bits set; did you mean {}/{len}?", Ipv4Prefix::masked(*addr, *len))]
    HostBitsSet {
        /// The address given.
        addr: Ipv4Addr,
        /// The length given.
        len: u8,
    },
}

impl Ipv4Prefix {
    /// `0.0.0.0/0`, which contains every address.
    pub const ANY: Ipv4Prefix = Ipv4Prefix {
        addr: Ipv4Addr::UNSPECIFIED,
        len: 0,
    };

    /// A prefix of `len` bits of `addr`; host bits are cleared.
    ///
    /// Errors: [`PrefixError::BadLength`] if `len > 32`.
    pub fn new(addr: Ipv4Addr, len: u8) -> core::result::Result<Self, PrefixError> {
        if len > 32 {
            return Err(PrefixError::BadLength {
                input: len.to_string(),
            });
        }
        Ok(Self::masked(addr, len))
    }

    /// `addr/len` with host bits cleared; `len` must be ≤ 32 (larger is clamped).
    fn masked(addr: Ipv4Addr, len: u8) -> Self {
        let len = len.min(32);
        Ipv4Prefix {
            addr: Ipv4Addr::from(u32::from(addr) & mask(len)),
            len,
        }
    }

    /// A /32 prefix holding just `addr`.
    #[inline]
    pub const fn host(addr: Ipv4Addr) -> Self {
        Ipv4Prefix { addr, len: 32 }
    }

    /// The network address.
    #[inline]
    pub const fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// The prefix length, 0 to 32.
    #[inline]
    pub const fn prefix_len(&self) -> u8 {
        self.len
    }

    /// The netmask as an integer (`0xff000000` for a /8).
    #[inline]
    pub fn mask(&self) -> u32 {
        mask(self.len)
    }

    /// True if `ip` is inside this prefix.
    #[inline]
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        (u32::from(ip) ^ u32::from(self.addr)) & mask(self.len) == 0
    }

    /// True if `other` is inside (or equal to) this prefix.
    #[inline]
    pub fn covers(&self, other: &Ipv4Prefix) -> bool {
        other.len >= self.len && self.contains(other.addr)
    }
}

/// The netmask of a prefix length (clamped to 32).
#[inline]
pub(crate) fn mask(len: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(len.min(32)))
        .unwrap_or(0)
}

impl fmt::Display for Ipv4Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Ipv4Prefix {
    type Err = PrefixError;

    /// Parses `a.b.c.d/len`, or a bare `a.b.c.d` as a /32. Host bits must be
    /// zero: `10.1.0.0/8` is an error (usually a typo), not `10.0.0.0/8`.
    fn from_str(s: &str) -> core::result::Result<Self, Self::Err> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: Ipv4Addr = a.parse().map_err(|_| PrefixError::BadAddress {
            input: a.to_owned(),
        })?;
        let len = match l {
            None => 32,
            Some(l) => match l.parse::<u8>() {
                Ok(n) if n <= 32 && !l.starts_with('+') => n,
                _ => {
                    return Err(PrefixError::BadLength {
                        input: l.to_owned(),
                    })
                }
            },
        };
        let p = Self::masked(addr, len);
        if p.addr != addr {
            return Err(PrefixError::HostBitsSet { addr, len });
        }
        Ok(p)
    }
}

/// A classifier match rule: every field that is `Some` must match.
///
/// Fields on IPv4 (`src`, `dst`, `proto`) never match a non-IPv4 packet, and
/// `dst_port` never matches a packet without ports (not TCP/UDP, or a non-first
/// fragment). The default rule matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Rule {
    /// Input port (DPDK port id).
    pub in_port: Option<u16>,
    /// EtherType after at most one VLAN tag.
    pub ethertype: Option<u16>,
    /// IPv4 source prefix.
    pub src: Option<Ipv4Prefix>,
    /// IPv4 destination prefix.
    pub dst: Option<Ipv4Prefix>,
    /// IPv4 protocol number.
    pub proto: Option<u8>,
    /// L4 destination port range (TCP/UDP).
    pub dst_port: Option<RangeInclusive<u16>>,
}

impl Rule {
    /// True if the packet described by `meta`, received on `in_port`, matches.
    /// Never panics, never allocates.
    #[inline]
    pub fn matches(&self, meta: &PacketMeta, in_port: u16) -> bool {
        if self.in_port.is_some_and(|p| p != in_port) {
            return false;
        }
        if self.ethertype.is_some_and(|t| t != meta.ethertype) {
            return false;
        }
        if self.src.is_none()
            && self.dst.is_none()
            && self.proto.is_none()
            && self.dst_port.is_none()
        {
            return true;
        }
        let Some(ip) = meta.ipv4 else {
            return false;
        };
        if self.src.is_some_and(|p| !p.contains(ip.src))
            || self.dst.is_some_and(|p| !p.contains(ip.dst))
            || self.proto.is_some_and(|p| p != ip.proto)
        {
            return false;
        }
        match &self.dst_port {
            None => true,
            Some(r) => ip.l4.is_some_and(|l4| r.contains(&l4.dst_port)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::{FrameSpec, L4Spec};
    use proptest::prelude::*;

    fn udp_frame() -> Vec<u8> {
        FrameSpec {
            src_ip: Ipv4Addr::new(10, 1, 2, 3),
            dst_ip: Ipv4Addr::new(192, 168, 0, 9),
            l4: L4Spec::Udp {
                src_port: 1111,
                dst_port: 53,
            },
            ..FrameSpec::default()
        }
        .build(b"query")
    }

    #[test]
    fn parse_udp() {
        let f = udp_frame();
        let m = PacketMeta::parse(&f).unwrap();
        assert_eq!(m.ethertype, ethertype::IPV4);
        assert_eq!(m.l2_len, 14);
        let ip = m.ipv4.unwrap();
        assert_eq!(ip.src, Ipv4Addr::new(10, 1, 2, 3));
        assert_eq!(ip.proto, ip_proto::UDP);
        assert_eq!(ip.header_len, 20);
        assert_eq!(ip.total_len, 20 + 8 + 5);
        assert!(!ip.fragment);
        assert_eq!(m.ports(), Some((1111, 53)));
        assert_eq!(m.l4_offset(), Some(34));
    }

    #[test]
    fn parse_non_ip_and_fragments() {
        let mut arp = vec![0u8; 42];
        arp[12..14].copy_from_slice(&ethertype::ARP.to_be_bytes());
        let m = PacketMeta::parse(&arp).unwrap();
        assert_eq!(m.ethertype, ethertype::ARP);
        assert_eq!(m.ipv4, None);

        let mut f = udp_frame();
        f[14 + 6] = 0x20; // MF, offset 0: first fragment keeps ports
        let m = PacketMeta::parse(&f).unwrap();
        assert!(m.ipv4.unwrap().fragment);
        assert_eq!(m.ports(), Some((1111, 53)));
        f[14 + 7] = 1; // offset 8: no L4 header
        let m = PacketMeta::parse(&f).unwrap();
        assert_eq!(m.ipv4.unwrap().frag_offset, 8);
        assert_eq!(m.ports(), None);
    }

    #[test]
    fn parse_errors() {
        let f = udp_frame();
        assert_eq!(
            PacketMeta::parse(&f[..10]),
            Err(WireError::Truncated { need: 14, have: 10 })
        );
        // IPv4 total length says 33; cut the frame short.
        assert_eq!(
            PacketMeta::parse(&f[..14 + 30]),
            Err(WireError::Truncated { need: 33, have: 30 })
        );
        // A TCP packet too short for its header.
        let mut t = f.clone();
        t[14 + 9] = ip_proto::TCP;
        assert_eq!(
            PacketMeta::parse(&t),
            Err(WireError::Truncated { need: 20, have: 13 })
        );
    }

    #[test]
    fn prefix_parse_and_contains() {
        let p: Ipv4Prefix = "10.0.0.0/8".parse().unwrap();
        assert_eq!(p.prefix_len(), 8);
        assert!(p.contains(Ipv4Addr::new(10, 255, 1, 1)));
        assert!(!p.contains(Ipv4Addr::new(11, 0, 0, 0)));
        assert_eq!(p.to_string(), "10.0.0.0/8");
        assert!(Ipv4Prefix::ANY.contains(Ipv4Addr::BROADCAST));
        let h: Ipv4Prefix = "1.2.3.4".parse().unwrap();
        assert_eq!(h, Ipv4Prefix::host(Ipv4Addr::new(1, 2, 3, 4)));
        assert!(h.contains(Ipv4Addr::new(1, 2, 3, 4)));
        assert!(!h.contains(Ipv4Addr::new(1, 2, 3, 5)));
        assert!(p.covers(&"10.1.0.0/16".parse().unwrap()));
        assert!(!"10.1.0.0/16".parse::<Ipv4Prefix>().unwrap().covers(&p));
        assert_eq!(
            "10.1.0.0/8".parse::<Ipv4Prefix>(),
            Err(PrefixError::HostBitsSet {
                addr: Ipv4Addr::new(10, 1, 0, 0),
                len: 8
            })
        );
        assert!("10.1.0.0/8"
            .parse::<Ipv4Prefix>()
            .unwrap_err()
            .to_string()
            .contains("10.0.0.0/8"));
        for bad in [
            "",
            "10.0.0/8",
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "x/1",
            "10.0.0.0/8/1",
        ] {
            assert!(bad.parse::<Ipv4Prefix>().is_err(), "{bad:?}");
        }
        assert_eq!(
            Ipv4Prefix::new(Ipv4Addr::new(10, 1, 2, 3), 16).unwrap(),
            "10.1.0.0/16".parse().unwrap()
        );
        assert!(Ipv4Prefix::new(Ipv4Addr::LOCALHOST, 33).is_err());
    }

    #[test]
    fn rule_matching() {
        let m = PacketMeta::parse(&udp_frame()).unwrap();
        assert!(Rule::default().matches(&m, 3));
        let r = Rule {
            in_port: Some(0),
            ethertype: Some(ethertype::IPV4),
            src: Some("10.0.0.0/8".parse().unwrap()),
            dst: Some("192.168.0.0/16".parse().unwrap()),
            proto: Some(ip_proto::UDP),
            dst_port: Some(53..=53),
        };
        assert!(r.matches(&m, 0));
        assert!(!r.matches(&m, 1));
        for r2 in [
            Rule {
                src: Some("11.0.0.0/8".parse().unwrap()),
                ..r.clone()
            },
            Rule {
                dst: Some("192.169.0.0/16".parse().unwrap()),
                ..r.clone()
            },
            Rule {
                proto: Some(ip_proto::TCP),
                ..r.clone()
            },
            Rule {
                dst_port: Some(54..=100),
                ..r.clone()
            },
            Rule {
                ethertype: Some(ethertype::ARP),
                ..r.clone()
            },
        ] {
            assert!(!r2.matches(&m, 0), "{r2:?}");
        }
        let mut arp = vec![0u8; 42];
        arp[12..14].copy_from_slice(&ethertype::ARP.to_be_bytes());
        let a = PacketMeta::parse(&arp).unwrap();
        assert!(Rule {
            ethertype: Some(ethertype::ARP),
            ..Rule::default()
        }
        .matches(&a, 0));
        assert!(!Rule {
            proto: Some(0),
            ..Rule::default()
        }
        .matches(&a, 0));
    }

    proptest! {
        #[test]
        fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = PacketMeta::parse(&data);
        }

        /// Parsing a private copy of the first 192 bytes (what the core does) gives what
        /// parsing the whole frame gives: every header of a parsable frame lies within 138
        /// bytes (18 Ethernet + 60 IPv4 + 60 TCP).
        #[test]
        fn prefix_parse_equals_full_parse(
            ihl in 5u8..16, extra in 0u16..1600, proto in prop_oneof![Just(6u8), Just(17u8), any::<u8>()],
            frag in any::<u16>(), doff in 0u8..16, rest in proptest::collection::vec(any::<u8>(), 0..1600),
        ) {
            let mut f = vec![0u8; 14 + usize::from(ihl) * 4];
            f[12..14].copy_from_slice(&ethertype::IPV4.to_be_bytes());
            f[14] = 0x40 | ihl;
            f[20..22].copy_from_slice(&frag.to_be_bytes());
            f[23] = proto;
            f.extend_from_slice(&rest);
            let doff_at = 14 + usize::from(ihl) * 4 + 12;
            if f.len() > doff_at {
                f[doff_at] = doff << 4;
            }
            let tl = (u16::from(ihl) * 4).saturating_add(extra);
            f[16..18].copy_from_slice(&tl.to_be_bytes());
            let full = PacketMeta::parse(&f);
            let k = f.len().min(192);
            prop_assert_eq!(PacketMeta::parse_prefix(&f[..k], f.len()), full);
        }

        /// Random bytes behind a valid-looking Ethernet/IPv4 prefix, to reach L4.
        #[test]
        fn parse_ipv4_never_panics(
            ihl in 0u8..16, tl in any::<u16>(), proto in prop_oneof![Just(6u8), Just(17u8), any::<u8>()],
            frag in any::<u16>(), rest in proptest::collection::vec(any::<u8>(), 0..100),
        ) {
            let mut f = vec![0u8; 34];
            f[12..14].copy_from_slice(&ethertype::IPV4.to_be_bytes());
            f[14] = 0x40 | ihl;
            f[16..18].copy_from_slice(&tl.to_be_bytes());
            f[20..22].copy_from_slice(&frag.to_be_bytes());
            f[23] = proto;
            f.extend_from_slice(&rest);
            if let Ok(m) = PacketMeta::parse(&f) {
                let ip = m.ipv4.unwrap();
                prop_assert!(usize::from(ip.total_len) <= f.len() - 14);
                if let Some(l4) = ip.l4 {
                    prop_assert!(usize::from(ip.header_len) + usize::from(l4.header_len) <= usize::from(ip.total_len));
                }
            }
        }

        #[test]
        fn prefix_contains_matches_model(addr in any::<u32>(), len in 0u8..=32, ip in any::<u32>()) {
            let p = Ipv4Prefix::new(Ipv4Addr::from(addr), len).unwrap();
            let model = len == 0 || (addr >> (32 - u32::from(len))) == (ip >> (32 - u32::from(len)));
            prop_assert_eq!(p.contains(Ipv4Addr::from(ip)), model);
            prop_assert_eq!(p.to_string().parse::<Ipv4Prefix>().unwrap(), p);
        }
    }
}
