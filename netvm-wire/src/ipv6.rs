//! IPv6 headers, the extension-header walk, and IPv6 prefixes.
//!
//! # The extension-header bound
//! [`walk_ext`] follows the chain from the fixed header to the upper-layer protocol through
//! hop-by-hop options (0), routing (43), fragment (44), destination options (60) and
//! authentication (51) headers, and stops at anything else (TCP, UDP, ICMPv6, ESP, no next
//! header, …). It walks at most [`MAX_EXT_HEADERS`] headers and [`MAX_EXT_BYTES`] bytes of
//! them; a longer chain is an error ([`WireError::ExtChainTooLong`]), never a guess. The bound
//! is chosen so that every header the classifier reads fits in the core's private 192-byte
//! header copy: 22 (Ethernet, QinQ) + 40 (IPv6) + 64 (extension headers) + 60 (TCP with
//! options) = 186 bytes.

use core::fmt;
use core::str::FromStr;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::bytes::{rd16, rd32, rd8, sub, sub_mut, swap_fields, wr8};
use crate::error::{need, Result, WireError};
use crate::meta::{Ipv4Prefix, PrefixError};

/// IPv6 header length.
pub const HEADER_LEN: usize = 40;
/// Most extension headers [`walk_ext`] follows.
pub const MAX_EXT_HEADERS: usize = 4;
/// Most bytes of extension headers [`walk_ext`] follows.
pub const MAX_EXT_BYTES: usize = 64;

/// IPv6 next-header values of the extension headers netvm walks (and ICMPv6).
pub mod next_header {
    /// Hop-by-hop options.
    pub const HOP_BY_HOP: u8 = 0;
    /// Routing header.
    pub const ROUTING: u8 = 43;
    /// Fragment header.
    pub const FRAGMENT: u8 = 44;
    /// Encapsulating security payload (opaque: the walk stops there).
    pub const ESP: u8 = 50;
    /// Authentication header.
    pub const AUTH: u8 = 51;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// No next header.
    pub const NONE: u8 = 59;
    /// Destination options.
    pub const DEST_OPTS: u8 = 60;
}

/// Validates an IPv6 header at the start of `b`, where the IP packet is `ip_len` bytes long
/// (`b` may be a private copy of its first bytes); returns the packet length (40 + payload
/// length).
#[inline]
pub(crate) fn check_within(b: &[u8], ip_len: usize) -> Result<usize> {
    need(b.len(), HEADER_LEN)?;
    let version = rd8(b, 0) >> 4;
    if version != 6 {
        return Err(WireError::BadIpv6Version { version });
    }
    let total = HEADER_LEN + usize::from(rd16(b, 4));
    need(ip_len.max(b.len()), total)?;
    Ok(total)
}

/// What [`walk_ext`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExtChain {
    /// The upper-layer protocol (the first next-header value that is not an extension header
    /// netvm walks), or, after the fragment header of a non-first fragment, that header's
    /// next-header value (the data behind it is not a header).
    pub proto: u8,
    /// Offset of the upper-layer header from the start of the IPv6 header (40 + extension
    /// header bytes).
    pub l4_offset: usize,
    /// Extension headers walked.
    pub headers: u8,
    /// A fragment header was present (first fragment included).
    pub fragment: bool,
    /// Fragment offset in bytes (0 if unfragmented or a first fragment).
    pub frag_offset: u16,
}

/// Walks the extension-header chain of the IPv6 packet whose bytes start `ip` (at least the
/// 40-byte header; `total` is its validated length, of which `ip` may hold only a prefix).
/// Every header read lies inside `ip` and inside `total`; see the [module docs](self) for the
/// bound. Never panics, never allocates.
///
/// Errors: [`WireError::Truncated`] (a header past the packet or the buffer),
/// [`WireError::ExtChainTooLong`], [`WireError::HopByHopNotFirst`].
#[inline]
pub fn walk_ext(ip: &[u8], total: usize) -> Result<ExtChain> {
    let avail = total.min(ip.len());
    let mut nh = rd8(ip, 6);
    let mut off = HEADER_LEN;
    let mut headers = 0usize;
    let mut fragment = false;
    let mut frag_offset = 0u16;
    loop {
        let len = match nh {
            next_header::HOP_BY_HOP | next_header::ROUTING | next_header::DEST_OPTS => {
                if nh == next_header::HOP_BY_HOP && headers != 0 {
                    return Err(WireError::HopByHopNotFirst { position: headers });
                }
                need(avail, off + 2)?;
                (usize::from(rd8(ip, off + 1)) + 1) * 8
            }
            next_header::FRAGMENT => 8,
            next_header::AUTH => {
                need(avail, off + 2)?;
                (usize::from(rd8(ip, off + 1)) + 2) * 4
            }
            _ => break,
        };
        headers += 1;
        let bytes = off + len - HEADER_LEN;
        if headers > MAX_EXT_HEADERS || bytes > MAX_EXT_BYTES {
            return Err(WireError::ExtChainTooLong { headers, bytes });
        }
        need(avail, off + len)?;
        let next = rd8(ip, off);
        if nh == next_header::FRAGMENT {
            fragment = true;
            frag_offset = rd16(ip, off + 2) & 0xfff8;
            if frag_offset != 0 {
                // A non-first fragment: what follows is data, not a header.
                return Ok(ExtChain {
                    proto: next,
                    l4_offset: off + len,
                    headers: u8::try_from(headers).unwrap_or(u8::MAX),
                    fragment,
                    frag_offset,
                });
            }
        }
        off += len;
        nh = next;
    }
    Ok(ExtChain {
        proto: nh,
        l4_offset: off,
        headers: u8::try_from(headers).unwrap_or(u8::MAX),
        fragment,
        frag_offset,
    })
}

/// A checked view of an IPv6 packet.
///
/// `new_checked` validates, once: at least 40 bytes, version 6, and the whole packet (40 +
/// payload length) inside the buffer. Bytes past it (Ethernet padding) are allowed and
/// ignored by [`payload`](Self::payload). Extension headers are not walked here (see
/// [`walk_ext`]); a router does not need them. No accessor panics, even if the buffer is
/// rewritten afterwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Packet<T> {
    buf: T,
    total_len: usize,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Validates `buf` as an IPv6 packet.
    ///
    /// Errors: [`WireError::Truncated`], [`WireError::BadIpv6Version`].
    #[inline]
    pub fn new_checked(buf: T) -> Result<Self> {
        let b = buf.as_ref();
        let total_len = check_within(b, b.len())?;
        Ok(Ipv6Packet { buf, total_len })
    }

    /// The whole buffer.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.as_ref()
    }

    /// Gives the buffer back.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buf
    }

    /// 40 + payload length, as validated.
    #[inline]
    pub fn total_len(&self) -> usize {
        self.total_len
    }

    /// Traffic class.
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        let b = self.buf.as_ref();
        (rd8(b, 0) << 4) | (rd8(b, 1) >> 4)
    }

    /// Flow label (20 bits).
    #[inline]
    pub fn flow_label(&self) -> u32 {
        rd32(self.buf.as_ref(), 0) & 0x000f_ffff
    }

    /// Payload length field.
    #[inline]
    pub fn payload_len(&self) -> u16 {
        rd16(self.buf.as_ref(), 4)
    }

    /// Next header (the first extension header or the upper-layer protocol).
    #[inline]
    pub fn next_header(&self) -> u8 {
        rd8(self.buf.as_ref(), 6)
    }

    /// Hop limit.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        rd8(self.buf.as_ref(), 7)
    }

    /// Source address.
    #[inline]
    pub fn src(&self) -> Ipv6Addr {
        addr_at(self.buf.as_ref(), 8)
    }

    /// Destination address.
    #[inline]
    pub fn dst(&self) -> Ipv6Addr {
        addr_at(self.buf.as_ref(), 24)
    }

    /// Everything after the fixed header, up to the payload length (extension headers
    /// included).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        sub(self.buf.as_ref(), HEADER_LEN..self.total_len)
    }

    /// The extension-header chain (see [`walk_ext`]).
    #[inline]
    pub fn ext_chain(&self) -> Result<ExtChain> {
        walk_ext(self.buf.as_ref(), self.total_len)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Sets the hop limit (IPv6 has no header checksum to update).
    #[inline]
    pub fn set_hop_limit(&mut self, hl: u8) {
        wr8(self.buf.as_mut(), 7, hl);
    }

    /// Swaps source and destination addresses.
    #[inline]
    pub fn swap_addrs(&mut self) {
        swap_fields(self.buf.as_mut(), 8, 24, 16);
    }

    /// The payload, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let t = self.total_len;
        sub_mut(self.buf.as_mut(), HEADER_LEN..t)
    }
}

#[inline]
pub(crate) fn addr_at(b: &[u8], off: usize) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(match b.get(off..off.wrapping_add(16)) {
        Some(s) => s,
        None => &[0u8; 16],
    });
    Ipv6Addr::from(a)
}

/// What [`decrement_hop_limit_in_place`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HopLimitOutcome {
    /// The hop limit was above 1 and is now `hop_limit`: forward.
    Forwarded {
        /// The new hop limit.
        hop_limit: u8,
    },
    /// The hop limit was 0 or 1: the packet must not be forwarded (unchanged).
    Expired {
        /// The hop limit found.
        hop_limit: u8,
    },
}

/// A router's hop-limit step on the IPv6 packet at the start of `ip`: a hop limit of 0 or 1
/// expires (packet untouched), else it is decremented. No checksum covers it.
///
/// Errors: as [`Ipv6Packet::new_checked`].
#[inline]
pub fn decrement_hop_limit_in_place(ip: &mut [u8]) -> Result<HopLimitOutcome> {
    let mut p = Ipv6Packet::new_checked(ip)?;
    let hl = p.hop_limit();
    if hl <= 1 {
        return Ok(HopLimitOutcome::Expired { hop_limit: hl });
    }
    p.set_hop_limit(hl - 1);
    Ok(HopLimitOutcome::Forwarded { hop_limit: hl - 1 })
}

/// An IPv6 prefix. Host bits are always zero and the length is at most 128.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv6Prefix {
    addr: Ipv6Addr,
    len: u8,
}

/// The netmask of an IPv6 prefix length (clamped to 128).
#[inline]
pub(crate) fn mask6(len: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(len.min(128)))
        .unwrap_or(0)
}

impl Ipv6Prefix {
    /// `::/0`, which contains every IPv6 address.
    pub const ANY: Ipv6Prefix = Ipv6Prefix {
        addr: Ipv6Addr::UNSPECIFIED,
        len: 0,
    };

    /// A prefix of `len` bits of `addr`; host bits are cleared.
    ///
    /// Errors: [`PrefixError::BadLength6`] if `len > 128`.
    pub fn new(addr: Ipv6Addr, len: u8) -> core::result::Result<Self, PrefixError> {
        if len > 128 {
            return Err(PrefixError::BadLength6 {
                input: len.to_string(),
            });
        }
        Ok(Self::masked(addr, len))
    }

    fn masked(addr: Ipv6Addr, len: u8) -> Self {
        let len = len.min(128);
        Ipv6Prefix {
            addr: Ipv6Addr::from(u128::from(addr) & mask6(len)),
            len,
        }
    }

    /// A /128 prefix holding just `addr`.
    #[inline]
    pub const fn host(addr: Ipv6Addr) -> Self {
        Ipv6Prefix { addr, len: 128 }
    }

    /// The network address.
    #[inline]
    pub const fn addr(&self) -> Ipv6Addr {
        self.addr
    }

    /// The prefix length, 0 to 128.
    #[inline]
    pub const fn prefix_len(&self) -> u8 {
        self.len
    }

    /// True if `ip` is inside this prefix.
    #[inline]
    pub fn contains(&self, ip: Ipv6Addr) -> bool {
        (u128::from(ip) ^ u128::from(self.addr)) & mask6(self.len) == 0
    }
}

impl fmt::Display for Ipv6Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Ipv6Prefix {
    type Err = PrefixError;

    /// Parses `2001:db8::/32`, or a bare address as a /128. Host bits must be zero.
    fn from_str(s: &str) -> core::result::Result<Self, Self::Err> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: Ipv6Addr = a.parse().map_err(|_| PrefixError::BadAddress6 {
            input: a.to_owned(),
        })?;
        let len = match l {
            None => 128,
            Some(l) => match l.parse::<u8>() {
                Ok(n) if n <= 128 && !l.starts_with('+') => n,
                _ => {
                    return Err(PrefixError::BadLength6 {
                        input: l.to_owned(),
                    })
                }
            },
        };
        let p = Self::masked(addr, len);
        if p.addr != addr {
            return Err(PrefixError::HostBitsSet6 { addr, len });
        }
        Ok(p)
    }
}

/// An IPv4 or an IPv6 prefix. A prefix of one family never contains an address of the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpPrefix {
    /// IPv4.
    V4(Ipv4Prefix),
    /// IPv6.
    V6(Ipv6Prefix),
}

impl IpPrefix {
    /// True if `ip` is an IPv4 address inside an IPv4 prefix.
    #[inline]
    pub fn contains_v4(&self, ip: Ipv4Addr) -> bool {
        matches!(self, IpPrefix::V4(p) if p.contains(ip))
    }

    /// True if `ip` is an IPv6 address inside an IPv6 prefix.
    #[inline]
    pub fn contains_v6(&self, ip: Ipv6Addr) -> bool {
        matches!(self, IpPrefix::V6(p) if p.contains(ip))
    }

    /// True for an IPv6 prefix.
    #[inline]
    pub fn is_v6(&self) -> bool {
        matches!(self, IpPrefix::V6(_))
    }

    /// The prefix length.
    #[inline]
    pub fn prefix_len(&self) -> u8 {
        match self {
            IpPrefix::V4(p) => p.prefix_len(),
            IpPrefix::V6(p) => p.prefix_len(),
        }
    }
}

impl From<Ipv4Prefix> for IpPrefix {
    fn from(p: Ipv4Prefix) -> Self {
        IpPrefix::V4(p)
    }
}

impl From<Ipv6Prefix> for IpPrefix {
    fn from(p: Ipv6Prefix) -> Self {
        IpPrefix::V6(p)
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpPrefix::V4(p) => p.fmt(f),
            IpPrefix::V6(p) => p.fmt(f),
        }
    }
}

impl FromStr for IpPrefix {
    type Err = PrefixError;

    /// An IPv6 prefix if the text has a `:`, else an IPv4 prefix.
    fn from_str(s: &str) -> core::result::Result<Self, Self::Err> {
        if s.contains(':') {
            s.parse().map(IpPrefix::V6)
        } else {
            s.parse().map(IpPrefix::V4)
        }
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use std::net::Ipv6Addr;

    /// A 40-byte IPv6 header (payload length from `rest`), next header `nh`, then `rest`.
    pub(crate) fn v6(nh: u8, rest: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 40];
        b[0] = 0x60;
        b[4..6].copy_from_slice(&u16::try_from(rest.len()).unwrap().to_be_bytes());
        b[6] = nh;
        b[7] = 64;
        b[8..24].copy_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        b[24..40].copy_from_slice(&"2001:db8:1::2".parse::<Ipv6Addr>().unwrap().octets());
        b.extend_from_slice(rest);
        b
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::v6;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn view_and_walk() {
        // hop-by-hop (8) → fragment (first) → UDP
        let mut rest = vec![next_header::FRAGMENT, 0, 1, 4, 0, 0, 0, 0];
        rest.extend_from_slice(&[17, 0, 0, 1, 0, 0, 0, 7]);
        rest.extend_from_slice(&[0, 7, 0, 9, 0, 8, 0, 0]);
        let b = v6(next_header::HOP_BY_HOP, &rest);
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src(), "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.dst(), "2001:db8:1::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.payload().len(), 24);
        let c = p.ext_chain().unwrap();
        assert_eq!(
            c,
            ExtChain {
                proto: 17,
                l4_offset: 56,
                headers: 2,
                fragment: true,
                frag_offset: 0
            }
        );
        // Non-first fragment: stop at the fragment header.
        let mut b2 = b.clone();
        b2[48 + 2..48 + 4].copy_from_slice(&[0, 0x10]);
        let c = walk_ext(&b2, b2.len()).unwrap();
        assert_eq!((c.proto, c.l4_offset, c.frag_offset), (17, 56, 16));
        // Hop-by-hop not first.
        let b3 = v6(
            next_header::DEST_OPTS,
            &[0, 0, 0, 0, 0, 0, 0, 0, 59, 0, 0, 0, 0, 0, 0, 0],
        );
        assert_eq!(
            walk_ext(&b3, b3.len()),
            Err(WireError::HopByHopNotFirst { position: 1 })
        );
        // Too long: five 8-byte destination-options headers.
        let mut r = Vec::new();
        for _ in 0..5 {
            r.extend_from_slice(&[60, 0, 0, 0, 0, 0, 0, 0]);
        }
        let b4 = v6(60, &r);
        assert_eq!(
            walk_ext(&b4, b4.len()),
            Err(WireError::ExtChainTooLong {
                headers: 5,
                bytes: 40
            })
        );
        // Too many bytes: one 72-byte header.
        let b5 = v6(60, &[&[59u8, 8][..], &[0; 70][..]].concat());
        assert_eq!(
            walk_ext(&b5, b5.len()),
            Err(WireError::ExtChainTooLong {
                headers: 1,
                bytes: 72
            })
        );
        // Truncated header and bad version.
        let b6 = v6(0, &[17, 1, 0, 0]);
        assert_eq!(
            walk_ext(&b6, b6.len()),
            Err(WireError::Truncated { need: 56, have: 44 })
        );
        let mut b7 = b.clone();
        b7[0] = 0x45;
        assert_eq!(
            Ipv6Packet::new_checked(&b7[..]),
            Err(WireError::BadIpv6Version { version: 4 })
        );
        assert_eq!(
            Ipv6Packet::new_checked(&b[..60]),
            Err(WireError::Truncated { need: 64, have: 60 })
        );
    }

    #[test]
    fn hop_limit() {
        let mut b = v6(59, &[]);
        assert_eq!(
            decrement_hop_limit_in_place(&mut b),
            Ok(HopLimitOutcome::Forwarded { hop_limit: 63 })
        );
        b[7] = 1;
        assert_eq!(
            decrement_hop_limit_in_place(&mut b),
            Ok(HopLimitOutcome::Expired { hop_limit: 1 })
        );
        assert_eq!(b[7], 1);
    }

    #[test]
    fn prefixes() {
        let p: Ipv6Prefix = "2001:db8::/32".parse().unwrap();
        assert!(p.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!p.contains("2001:db9::1".parse().unwrap()));
        assert_eq!(p.to_string(), "2001:db8::/32");
        assert_eq!(
            "2001:db8::1/32".parse::<Ipv6Prefix>(),
            Err(PrefixError::HostBitsSet6 {
                addr: "2001:db8::1".parse().unwrap(),
                len: 32
            })
        );
        for bad in ["", "2001:db8::/129", "2001:db8::/", "zz::/8", "1.2.3.4/8"] {
            assert!(bad.parse::<Ipv6Prefix>().is_err(), "{bad:?}");
        }
        assert_eq!(
            "::1".parse::<Ipv6Prefix>().unwrap(),
            Ipv6Prefix::host(Ipv6Addr::LOCALHOST)
        );
        let a: IpPrefix = "10.0.0.0/8".parse().unwrap();
        let b: IpPrefix = "::/0".parse().unwrap();
        assert!(a.contains_v4(Ipv4Addr::new(10, 1, 1, 1)));
        assert!(!a.contains_v6(Ipv6Addr::LOCALHOST));
        assert!(b.contains_v6(Ipv6Addr::LOCALHOST));
        assert!(!b.contains_v4(Ipv4Addr::LOCALHOST));
    }

    proptest! {
        #[test]
        fn walk_never_panics(nh in any::<u8>(), rest in proptest::collection::vec(any::<u8>(), 0..200), cut in 0usize..300) {
            let b = v6(nh, &rest);
            let k = cut.min(b.len()).max(40);
            if let Ok(c) = walk_ext(&b[..k], b.len()) {
                prop_assert!(c.l4_offset <= k && c.l4_offset <= 40 + MAX_EXT_BYTES);
                prop_assert!(usize::from(c.headers) <= MAX_EXT_HEADERS);
            }
        }

        #[test]
        fn prefix_contains_matches_model(addr in any::<u128>(), len in 0u8..=128, ip in any::<u128>()) {
            let p = Ipv6Prefix::new(Ipv6Addr::from(addr), len).unwrap();
            let model = len == 0 || (addr >> (128 - u32::from(len))) == (ip >> (128 - u32::from(len)));
            prop_assert_eq!(p.contains(Ipv6Addr::from(ip)), model);
            prop_assert_eq!(p.to_string().parse::<Ipv6Prefix>().unwrap(), p);
        }
    }
}
