//! One-pass header parsing for classification, IPv4 prefixes and match rules.

use core::fmt;
use core::ops::RangeInclusive;
use core::str::FromStr;
use std::net::{Ipv4Addr, Ipv6Addr};

use thiserror::Error;

use crate::bytes::{rd16, rd32, rd8, sub};
use crate::error::{need, Result, WireError};
use crate::ethernet::{ethertype, EthernetFrame};
use crate::ipv4;
use crate::ipv6::{self, IpPrefix};
use crate::l4::ip_proto;

/// What the classifier needs from a frame, filled in by one parse pass.
///
/// Offsets are from the start of the frame: the IP header starts at `l2_len`, the L4 header
/// at [`l4_offset`](Self::l4_offset).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PacketMeta {
    /// EtherType of the payload, after at most two VLAN tags.
    pub ethertype: u16,
    /// Tag control information of the outer VLAN tag, if any.
    pub vlan_tci: Option<u16>,
    /// Tag control information of the inner VLAN tag of a QinQ frame, if any.
    pub inner_vlan_tci: Option<u16>,
    /// Ethernet header length: 14, 18 with a VLAN tag, 22 with two.
    pub l2_len: u16,
    /// Present iff `ethertype` is IPv4 (a malformed IPv4 header is an error, not `None`).
    pub ipv4: Option<Ipv4Meta>,
    /// Present iff `ethertype` is IPv6 (a malformed IPv6 header or extension-header chain is
    /// an error, not `None`).
    pub ipv6: Option<Ipv6Meta>,
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
    /// ICMP type, for ICMP in an unfragmented packet or a first fragment.
    pub icmp_type: Option<u8>,
}

/// IPv6 fields of a [`PacketMeta`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ipv6Meta {
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// The upper-layer protocol after the extension headers (see
    /// [`ExtChain::proto`](crate::ipv6::ExtChain::proto)).
    pub proto: u8,
    /// Hop limit.
    pub hop_limit: u8,
    /// 40 + extension-header bytes: the offset of the upper-layer header from the IPv6
    /// header.
    pub header_len: u16,
    /// Payload length field (extension headers included).
    pub payload_len: u16,
    /// Extension headers walked.
    pub ext_headers: u8,
    /// True if a fragment header is present (first fragment included).
    pub fragment: bool,
    /// Fragment offset in bytes (0 for unfragmented packets and first fragments).
    pub frag_offset: u16,
    /// TCP/UDP ports; `None` for other protocols and for non-first fragments.
    pub l4: Option<L4Meta>,
    /// ICMPv6 type, for ICMPv6 in an unfragmented packet or a first fragment.
    pub icmp_type: Option<u8>,
}

/// TCP/UDP fields of an [`Ipv4Meta`] or [`Ipv6Meta`].
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
    /// Parses the Ethernet, IP (v4 or v6) and TCP/UDP/ICMP headers of `frame` in one pass.
    ///
    /// - Up to two VLAN tags are looked through; other EtherTypes (ARP, a third tag, …) give
    ///   `ipv4: None, ipv6: None`.
    /// - IPv4 is validated as by [`Ipv4Packet::new_checked`](crate::Ipv4Packet::new_checked)
    ///   (checksum not verified); IPv6 as by
    ///   [`Ipv6Packet::new_checked`](crate::ipv6::Ipv6Packet::new_checked), and its
    ///   extension-header chain is walked with [`walk_ext`](crate::ipv6::walk_ext) (bounded:
    ///   a longer chain is an error). L4 is read from within the IP packet length.
    /// - TCP and UDP in an unfragmented packet or a first fragment must have their header
    ///   present (8 bytes for UDP; a valid data offset and the whole header for TCP), and
    ///   ICMP/ICMPv6 in a first fragment its 4-byte header, else the frame is malformed: this
    ///   also rejects RFC 1858 tiny-fragment tricks. The UDP length field is not checked
    ///   here. `icmp_type` is the first byte of an ICMP (1) or ICMPv6 (58) segment.
    /// - Non-first fragments carry no L4 header: `l4: None`, `icmp_type: None`.
    ///
    /// Errors: any [`WireError`] from the Ethernet, IP, extension or L4 headers. Never
    /// panics, never allocates.
    #[inline]
    pub fn parse(frame: &[u8]) -> Result<PacketMeta> {
        Self::parse_prefix(frame, frame.len())
    }

    /// As [`parse`](Self::parse), from a private copy of the first bytes of a frame that is
    /// `frame_len` bytes long: lengths (the IPv4 total length, the IPv6 payload length) are
    /// checked against `frame_len`, while every header read must lie inside `prefix`. The
    /// core parses packets in memory that NFs can write this way, from a copy, so that no
    /// length can change between its check and its use. Headers beyond `prefix` are an error
    /// (`Truncated`); every header a parsable frame has lies within 186 bytes (22 Ethernet +
    /// 40 IPv6 + 64 extension headers + 60 TCP; IPv4: 22 + 60 + 60).
    #[inline]
    pub fn parse_prefix(prefix: &[u8], frame_len: usize) -> Result<PacketMeta> {
        let frame_len = frame_len.max(prefix.len());
        let eth = EthernetFrame::new_checked(prefix)?;
        let l2_len = eth.header_len();
        let mut meta = PacketMeta {
            ethertype: eth.ethertype(),
            vlan_tci: eth.vlan_tci(),
            inner_vlan_tci: eth.inner_vlan_tci(),
            // 14, 18 or 22.
            l2_len: u16::try_from(l2_len).unwrap_or(0),
            ipv4: None,
            ipv6: None,
        };
        let ip = eth.payload();
        let ip_len = frame_len - l2_len;
        match meta.ethertype {
            ethertype::IPV4 => meta.ipv4 = Some(parse_ipv4(ip, ip_len)?),
            ethertype::IPV6 => meta.ipv6 = Some(parse_ipv6(ip, ip_len)?),
            _ => {}
        }
        Ok(meta)
    }

    /// Offset of the L4 header in the frame, if the packet is IP (for a non-first fragment:
    /// of its data).
    #[inline]
    pub fn l4_offset(&self) -> Option<usize> {
        let l3 = match (&self.ipv4, &self.ipv6) {
            (Some(ip), _) => ip.header_len,
            (None, Some(ip)) => ip.header_len,
            (None, None) => return None,
        };
        Some(usize::from(self.l2_len) + usize::from(l3))
    }

    /// The IP protocol (IPv4) or upper-layer protocol after the extension headers (IPv6).
    #[inline]
    pub fn proto(&self) -> Option<u8> {
        match (&self.ipv4, &self.ipv6) {
            (Some(ip), _) => Some(ip.proto),
            (None, Some(ip)) => Some(ip.proto),
            (None, None) => None,
        }
    }

    /// TCP/UDP fields, if present (not for non-first fragments).
    #[inline]
    pub fn l4(&self) -> Option<L4Meta> {
        match (&self.ipv4, &self.ipv6) {
            (Some(ip), _) => ip.l4,
            (None, Some(ip)) => ip.l4,
            (None, None) => None,
        }
    }

    /// ICMP (IPv4) or ICMPv6 (IPv6) type, if present (not for non-first fragments).
    #[inline]
    pub fn icmp_type(&self) -> Option<u8> {
        match (&self.ipv4, &self.ipv6) {
            (Some(ip), _) => ip.icmp_type,
            (None, Some(ip)) => ip.icmp_type,
            (None, None) => None,
        }
    }

    /// True for any IP fragment, the first included.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        match (&self.ipv4, &self.ipv6) {
            (Some(ip), _) => ip.fragment,
            (None, Some(ip)) => ip.fragment,
            (None, None) => false,
        }
    }

    /// Fragment offset in bytes (non-zero only for non-first fragments).
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        match (&self.ipv4, &self.ipv6) {
            (Some(ip), _) => ip.frag_offset,
            (None, Some(ip)) => ip.frag_offset,
            (None, None) => 0,
        }
    }

    /// Source and destination ports, if present.
    #[inline]
    pub fn ports(&self) -> Option<(u16, u16)> {
        self.l4().map(|l4| (l4.src_port, l4.dst_port))
    }
}

#[inline]
fn parse_ipv4(ip: &[u8], ip_len: usize) -> Result<Ipv4Meta> {
    let (header_len, total_len) = ipv4::check_within(ip, ip_len)?;
    let frag = rd16(ip, 6);
    let frag_offset = (frag & 0x1fff) << 3;
    let proto = rd8(ip, 9);
    let (l4, icmp_type) = if frag_offset != 0 {
        (None, None)
    } else {
        parse_l4(
            proto,
            sub(ip, header_len..total_len.min(ip.len())),
            frag & 0x2000 != 0,
        )?
    };
    Ok(Ipv4Meta {
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
        icmp_type,
    })
}

#[inline]
fn parse_ipv6(ip: &[u8], ip_len: usize) -> Result<Ipv6Meta> {
    let total = ipv6::check_within(ip, ip_len)?;
    let chain = ipv6::walk_ext(ip, total)?;
    let (l4, icmp_type) = if chain.frag_offset != 0 {
        (None, None)
    } else {
        parse_l4(
            chain.proto,
            sub(ip, chain.l4_offset..total.min(ip.len())),
            chain.fragment,
        )?
    };
    Ok(Ipv6Meta {
        src: ipv6::addr_at(ip, 8),
        dst: ipv6::addr_at(ip, 24),
        proto: chain.proto,
        hop_limit: rd8(ip, 7),
        // At most 40 + 64 by the walk's bound.
        header_len: u16::try_from(chain.l4_offset).unwrap_or(u16::MAX),
        payload_len: rd16(ip, 4),
        ext_headers: chain.headers,
        fragment: chain.fragment,
        frag_offset: chain.frag_offset,
        l4,
        icmp_type,
    })
}

/// TCP/UDP fields or the ICMP type of the upper-layer segment `seg` (of an unfragmented
/// packet, or of a first fragment if `fragment`).
#[inline]
fn parse_l4(proto: u8, seg: &[u8], fragment: bool) -> Result<(Option<L4Meta>, Option<u8>)> {
    match proto {
        ip_proto::ICMP | ip_proto::ICMPV6 => {
            if fragment {
                // A first fragment must hold the ICMP header (type, code, checksum).
                need(seg.len(), 4)?;
            }
            Ok((None, seg.first().copied()))
        }
        ip_proto::UDP => {
            need(seg.len(), 8)?;
            Ok((
                Some(L4Meta {
                    src_port: rd16(seg, 0),
                    dst_port: rd16(seg, 2),
                    header_len: 8,
                    tcp_flags: 0,
                }),
                None,
            ))
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
            Ok((
                Some(L4Meta {
                    src_port: rd16(seg, 0),
                    dst_port: rd16(seg, 2),
                    header_len,
                    tcp_flags: rd8(seg, 13),
                }),
                None,
            ))
        }
        _ => Ok((None, None)),
    }
}

/// An IPv4 prefix (CIDR block). Host bits are always zero and the length is at
/// most 32 (both enforced by the constructors).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Prefix {
    addr: Ipv4Addr,
    len: u8,
}

/// Why a string or pair is not an IPv4 or IPv6 prefix.
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
    /// The address part is not an IPv6 address.
    #[error("{input:?} is not an IPv6 address")]
    BadAddress6 {
        /// The address text.
        input: String,
    },
    /// The length part of an IPv6 prefix is not a number from 0 to 128.
    #[error("prefix length {input:?} is not a number from 0 to 128")]
    BadLength6 {
        /// The length text.
        input: String,
    },
    /// The IPv6 address has bits set beyond the prefix length.
    #[error("{addr}/{len} has host bits set; did you mean {}/{len}?", Ipv6Addr::from(u128::from(*addr) & ipv6::mask6(*len)))]
    HostBitsSet6 {
        /// The address given.
        addr: Ipv6Addr,
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
/// - `src`/`dst` of one family never match a packet of the other (nor a non-IP packet).
/// - `proto` is family-neutral: the IPv4 protocol or the IPv6 upper-layer protocol after the
///   extension headers.
/// - Port ranges never match a packet without ports (not TCP/UDP) and never match **any
///   fragment, the first included**: the core's flow cache keys every fragment of a
///   datagram without ports (so that all of them hash and classify alike), and a rule that
///   looked at the first fragment's ports would let its cached decision leak to other
///   datagrams of the same address pair. Fragments are classified by addresses and protocol.
/// - `vlan` is the VLAN ID (low 12 bits of the TCI) of the outer tag; `inner_vlan` that of
///   the inner tag of a QinQ frame. A frame without that tag does not match.
///
/// The default rule matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Rule {
    /// Input port (DPDK port id).
    pub in_port: Option<u16>,
    /// EtherType after at most two VLAN tags.
    pub ethertype: Option<u16>,
    /// Outer VLAN ID.
    pub vlan: Option<u16>,
    /// Inner VLAN ID (QinQ).
    pub inner_vlan: Option<u16>,
    /// Source prefix (IPv4 or IPv6).
    pub src: Option<IpPrefix>,
    /// Destination prefix (IPv4 or IPv6).
    pub dst: Option<IpPrefix>,
    /// IP protocol number (IPv6: after the extension headers).
    pub proto: Option<u8>,
    /// L4 source port range (TCP/UDP, unfragmented).
    pub src_port: Option<RangeInclusive<u16>>,
    /// L4 destination port range (TCP/UDP, unfragmented).
    pub dst_port: Option<RangeInclusive<u16>>,
}

impl Rule {
    /// True if the rule looks at nothing but the input port.
    #[inline]
    pub fn only_in_port(&self) -> bool {
        self.ethertype.is_none()
            && self.vlan.is_none()
            && self.inner_vlan.is_none()
            && self.src.is_none()
            && self.dst.is_none()
            && self.proto.is_none()
            && self.src_port.is_none()
            && self.dst_port.is_none()
    }

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
        if let Some(v) = self.vlan {
            if meta.vlan_tci.is_none_or(|t| t & 0x0fff != v) {
                return false;
            }
        }
        if let Some(v) = self.inner_vlan {
            if meta.inner_vlan_tci.is_none_or(|t| t & 0x0fff != v) {
                return false;
            }
        }
        if self.src.is_none()
            && self.dst.is_none()
            && self.proto.is_none()
            && self.src_port.is_none()
            && self.dst_port.is_none()
        {
            return true;
        }
        let addrs_ok = match (&meta.ipv4, &meta.ipv6) {
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
        if !addrs_ok || self.proto.is_some_and(|p| meta.proto() != Some(p)) {
            return false;
        }
        if self.src_port.is_none() && self.dst_port.is_none() {
            return true;
        }
        if meta.is_fragment() {
            return false;
        }
        let Some(l4) = meta.l4() else {
            return false;
        };
        self.src_port
            .as_ref()
            .is_none_or(|r| r.contains(&l4.src_port))
            && self
                .dst_port
                .as_ref()
                .is_none_or(|r| r.contains(&l4.dst_port))
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
            ..Rule::default()
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

    /// Ethernet (untagged, one tag or QinQ) + an IPv6 header with next header `nh` + `rest`.
    fn v6_frame(tags: usize, nh: u8, rest: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        for t in 0..tags {
            f.extend_from_slice(&[0x81, 0x00, 0, u8::try_from(10 + t).unwrap()]);
        }
        f.extend_from_slice(&ethertype::IPV6.to_be_bytes());
        f.extend_from_slice(&crate::ipv6::tests_support::v6(nh, rest));
        f
    }

    #[test]
    fn parse_ipv6_with_extension_headers() {
        // Hop-by-hop → fragment (first) → TCP port 23.
        let mut rest = vec![44, 0, 1, 4, 0, 0, 0, 0];
        rest.extend_from_slice(&[6, 0, 0, 1, 0, 0, 0, 7]);
        let mut tcp = vec![0u8; 20];
        tcp[..4].copy_from_slice(&[0x30, 0x39, 0, 23]);
        tcp[12] = 0x50;
        tcp[13] = 0x02;
        rest.extend_from_slice(&tcp);
        let f = v6_frame(2, 0, &rest);
        let m = PacketMeta::parse(&f).unwrap();
        assert_eq!(m.l2_len, 22);
        assert_eq!((m.vlan_tci, m.inner_vlan_tci), (Some(10), Some(11)));
        let ip = m.ipv6.unwrap();
        assert_eq!(ip.proto, 6);
        assert_eq!(ip.ext_headers, 2);
        assert!(ip.fragment);
        assert_eq!(m.ports(), Some((12345, 23)));
        assert_eq!(m.l4_offset(), Some(22 + 56));
        let tcp23 = Rule {
            proto: Some(6),
            dst_port: Some(23..=23),
            ..Rule::default()
        };
        // A fragment never matches a port rule (the flow key has no ports for fragments).
        assert!(!tcp23.matches(&m, 0));
        let v6net = Rule {
            dst: Some("2001:db8:1::/48".parse().unwrap()),
            vlan: Some(10),
            inner_vlan: Some(11),
            proto: Some(6),
            ..Rule::default()
        };
        assert!(v6net.matches(&m, 0));
        assert!(!Rule {
            vlan: Some(11),
            ..v6net.clone()
        }
        .matches(&m, 0));
        assert!(!Rule {
            dst: Some("10.0.0.0/8".parse().unwrap()),
            ..Rule::default()
        }
        .matches(&m, 0));
        assert!(!Rule {
            dst: Some("::/0".parse().unwrap()),
            ..Rule::default()
        }
        .matches(&PacketMeta::parse(&udp_frame()).unwrap(), 0));
        // Unfragmented: the port rule matches.
        let mut rest = vec![6, 0, 1, 4, 0, 0, 0, 0];
        rest.extend_from_slice(&tcp);
        let m = PacketMeta::parse(&v6_frame(1, 0, &rest)).unwrap();
        assert!(tcp23.matches(&m, 0));
        assert_eq!(m.vlan_tci, Some(10));
        assert_eq!(m.inner_vlan_tci, None);
        // Non-first fragment: no ports, protocol from the fragment header.
        let mut rest = vec![6, 0, 0, 8, 0, 0, 0, 7];
        rest.extend_from_slice(&[1, 2, 3]);
        let m = PacketMeta::parse(&v6_frame(0, 44, &rest)).unwrap();
        let ip = m.ipv6.unwrap();
        assert_eq!((ip.proto, ip.frag_offset, ip.l4), (6, 8, None));
        // ICMPv6 type; a first fragment too short for the ICMPv6 header is malformed.
        let m = PacketMeta::parse(&v6_frame(0, 58, &[128, 0, 0, 0, 1, 2])).unwrap();
        assert_eq!(m.icmp_type(), Some(128));
        assert_eq!(
            PacketMeta::parse(&v6_frame(0, 44, &[58, 0, 0, 1, 0, 0, 0, 1, 128, 0])),
            Err(WireError::Truncated { need: 4, have: 2 })
        );
        // A payload length past the frame.
        let mut f = v6_frame(0, 59, &[0; 8]);
        f.truncate(f.len() - 1);
        assert!(PacketMeta::parse(&f).is_err());
    }

    proptest! {
        #[test]
        fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = PacketMeta::parse(&data);
        }

        /// As `prefix_parse_equals_full_parse`, for IPv6 with up to two VLAN tags and random
        /// extension headers (types drawn from the walked ones, random lengths).
        #[test]
        fn prefix_parse_equals_full_parse_v6(
            tags in 0usize..3, chain in proptest::collection::vec((prop_oneof![Just(0u8), Just(43u8), Just(44u8), Just(60u8), Just(51u8)], 0u8..12, any::<u16>()), 0..6),
            last in prop_oneof![Just(6u8), Just(17u8), Just(58u8), any::<u8>()], doff in 0u8..16,
            extra in 0u16..1600, rest in proptest::collection::vec(any::<u8>(), 0..1600),
        ) {
            let mut body = Vec::new();
            for (i, &(_, len, frag)) in chain.iter().enumerate() {
                let next = chain.get(i + 1).map_or(last, |c| c.0);
                let ty = chain[i].0;
                let n = match ty { 44 => 8, 51 => (usize::from(len) + 2) * 4, _ => (usize::from(len) + 1) * 8 };
                let mut h = vec![0u8; n];
                h[0] = next;
                if ty == 44 { h[2..4].copy_from_slice(&frag.to_be_bytes()); } else { h[1] = len; }
                body.extend_from_slice(&h);
            }
            let l4_at = body.len();
            body.extend_from_slice(&rest);
            if body.len() > l4_at + 12 { body[l4_at + 12] = doff << 4; }
            let first = chain.first().map_or(last, |c| c.0);
            let mut f = v6_frame(tags, first, &body);
            let plen = u16::try_from(l4_at).unwrap_or(u16::MAX).saturating_add(extra);
            let at = 12 + 4 * tags + 2 + 4;
            f[at..at + 2].copy_from_slice(&plen.to_be_bytes());
            let full = PacketMeta::parse(&f);
            let k = f.len().min(192);
            prop_assert_eq!(PacketMeta::parse_prefix(&f[..k], f.len()), full);
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
