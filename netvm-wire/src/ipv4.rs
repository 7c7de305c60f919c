//! IPv4 headers.

use std::net::Ipv4Addr;

use crate::bytes::{rd16, rd32, rd8, sub, sub_mut, swap_fields, wr16, wr32, wr8};
use crate::checksum::{self, TtlOutcome};
use crate::error::{need, Result, WireError};

/// A checked view of an IPv4 packet.
///
/// `new_checked` validates, once: at least 20 bytes, version 4, IHL ≥ 5 and the
/// header inside the buffer, total length ≥ header length and the whole packet
/// (total length) inside the buffer. Bytes past the total length (Ethernet
/// padding) are allowed and ignored by [`payload`](Self::payload). The header
/// and total lengths are stored in the view, so no accessor panics even if the
/// buffer is rewritten afterwards.
///
/// The header checksum is **not** checked by `new_checked`; call
/// [`verify_checksum`](Self::verify_checksum) where it matters (a router does,
/// a classifier need not).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Packet<T> {
    buf: T,
    header_len: usize,
    total_len: usize,
}

/// Minimum IPv4 header length.
pub const MIN_HEADER_LEN: usize = 20;

/// Validates an IPv4 header at the start of `b`; returns (header_len, total_len).
#[inline]
pub(crate) fn check(b: &[u8]) -> Result<(usize, usize)> {
    check_within(b, b.len())
}

/// As [`check`], where `b` holds at least the header but the IP packet is `ip_len` bytes long
/// (`b` may be a private copy of its first bytes): the total length is checked against
/// `ip_len`.
#[inline]
pub(crate) fn check_within(b: &[u8], ip_len: usize) -> Result<(usize, usize)> {
    need(b.len(), MIN_HEADER_LEN)?;
    let vihl = rd8(b, 0);
    if vihl >> 4 != 4 {
        return Err(WireError::BadVersion { version: vihl >> 4 });
    }
    let header_len = usize::from(vihl & 0x0f) * 4;
    if header_len < MIN_HEADER_LEN {
        return Err(WireError::BadHeaderLen {
            header_len,
            min: MIN_HEADER_LEN,
        });
    }
    need(b.len(), header_len)?;
    let total_len = usize::from(rd16(b, 2));
    if total_len < header_len {
        return Err(WireError::BadTotalLen {
            total_len,
            header_len,
        });
    }
    need(ip_len.max(b.len()), total_len)?;
    Ok((header_len, total_len))
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Validates `buf` as an IPv4 packet (see the type docs for what is checked).
    ///
    /// Errors: [`WireError::Truncated`], [`WireError::BadVersion`],
    /// [`WireError::BadHeaderLen`], [`WireError::BadTotalLen`].
    #[inline]
    pub fn new_checked(buf: T) -> Result<Self> {
        let (header_len, total_len) = check(buf.as_ref())?;
        Ok(Ipv4Packet {
            buf,
            header_len,
            total_len,
        })
    }

    /// The whole buffer (including any bytes past the total length).
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.as_ref()
    }

    /// Gives the buffer back.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buf
    }

    /// Header length in bytes (IHL × 4), as validated.
    #[inline]
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// Total length in bytes, as validated.
    #[inline]
    pub fn total_len(&self) -> usize {
        self.total_len
    }

    /// The header bytes, options included.
    #[inline]
    pub fn header(&self) -> &[u8] {
        sub(self.buf.as_ref(), 0..self.header_len)
    }

    /// DSCP (upper 6 bits) and ECN (lower 2 bits).
    #[inline]
    pub fn dscp_ecn(&self) -> u8 {
        rd8(self.buf.as_ref(), 1)
    }

    /// Identification field.
    #[inline]
    pub fn ident(&self) -> u16 {
        rd16(self.buf.as_ref(), 4)
    }

    /// Don't Fragment flag.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        rd16(self.buf.as_ref(), 6) & 0x4000 != 0
    }

    /// More Fragments flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        rd16(self.buf.as_ref(), 6) & 0x2000 != 0
    }

    /// Fragment offset in bytes.
    #[inline]
    pub fn frag_offset(&self) -> usize {
        usize::from(rd16(self.buf.as_ref(), 6) & 0x1fff) * 8
    }

    /// True for any fragment (MF set or offset non-zero), first fragment included.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        rd16(self.buf.as_ref(), 6) & 0x3fff != 0
    }

    /// Time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        rd8(self.buf.as_ref(), 8)
    }

    /// Protocol number (see [`ip_proto`](crate::l4::ip_proto)).
    #[inline]
    pub fn protocol(&self) -> u8 {
        rd8(self.buf.as_ref(), 9)
    }

    /// Header checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        rd16(self.buf.as_ref(), 10)
    }

    /// Source address.
    #[inline]
    pub fn src(&self) -> Ipv4Addr {
        Ipv4Addr::from(rd32(self.buf.as_ref(), 12))
    }

    /// Destination address.
    #[inline]
    pub fn dst(&self) -> Ipv4Addr {
        Ipv4Addr::from(rd32(self.buf.as_ref(), 16))
    }

    /// Option bytes (between the fixed header and the payload).
    #[inline]
    pub fn options(&self) -> &[u8] {
        sub(self.buf.as_ref(), MIN_HEADER_LEN..self.header_len)
    }

    /// The payload: from the header length to the total length.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        sub(self.buf.as_ref(), self.header_len..self.total_len)
    }

    /// True if the header checksum is correct.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(self.header()) == 0
    }

    /// The correct header checksum, computed over the header with the checksum
    /// field taken as zero.
    #[inline]
    pub fn compute_checksum(&self) -> u16 {
        checksum::finish(checksum::sum_skipping(self.header(), 10, 0))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// The whole buffer, writable. Changing the length fields through it does not
    /// change the lengths the view validated.
    #[inline]
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        self.buf.as_mut()
    }

    /// Sets the TTL without touching the checksum (see
    /// [`decrement_ttl`](Self::decrement_ttl) and [`fill_checksum`](Self::fill_checksum)).
    #[inline]
    pub fn set_ttl(&mut self, ttl: u8) {
        wr8(self.buf.as_mut(), 8, ttl);
    }

    /// Decrements the TTL with an incremental checksum update; see
    /// [`decrement_ttl_in_place`](crate::decrement_ttl_in_place) for the exact rules.
    #[inline]
    pub fn decrement_ttl(&mut self) -> TtlOutcome {
        // The view is validated, so the free function cannot fail; the fallback
        // only keeps this panic-free.
        checksum::decrement_ttl_in_place(self.buf.as_mut())
            .unwrap_or(TtlOutcome::Expired { ttl: 0 })
    }

    /// Sets the source address and updates the header checksum incrementally.
    #[inline]
    pub fn set_src(&mut self, ip: Ipv4Addr) {
        self.set_addr(12, ip);
    }

    /// Sets the destination address and updates the header checksum incrementally.
    #[inline]
    pub fn set_dst(&mut self, ip: Ipv4Addr) {
        self.set_addr(16, ip);
    }

    #[inline]
    fn set_addr(&mut self, off: usize, ip: Ipv4Addr) {
        let b = self.buf.as_mut();
        let old = rd32(b, off);
        let new = u32::from(ip);
        let hc = checksum::update32(rd16(b, 10), old, new);
        wr32(b, off, new);
        wr16(b, 10, hc);
    }

    /// Swaps source and destination. The header checksum (and any TCP/UDP
    /// pseudo-header checksum) stays valid: one's-complement addition commutes.
    #[inline]
    pub fn swap_addrs(&mut self) {
        swap_fields(self.buf.as_mut(), 12, 16, 4);
    }

    /// Writes the correct header checksum.
    #[inline]
    pub fn fill_checksum(&mut self) {
        let c = self.compute_checksum();
        wr16(self.buf.as_mut(), 10, c);
    }

    /// The payload (header length to total length), writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (h, t) = (self.header_len, self.total_len);
        sub_mut(self.buf.as_mut(), h..t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Vec<u8> {
        let mut h = vec![
            0x45, 0x00, 0x00, 0x1c, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 10, 0, 0, 1,
            192, 168, 1, 2,
        ];
        h.extend_from_slice(&[0xaa; 8]); // payload
        h.extend_from_slice(&[0; 4]); // padding
        let c = checksum::checksum(&h[..20]);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h
    }

    #[test]
    fn accessors() {
        let h = header();
        let p = Ipv4Packet::new_checked(&h[..]).unwrap();
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 28);
        assert_eq!(p.ident(), 0x1234);
        assert!(p.dont_frag() && !p.more_frags() && !p.is_fragment());
        assert_eq!(p.frag_offset(), 0);
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), 17);
        assert_eq!(p.src(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(p.dst(), Ipv4Addr::new(192, 168, 1, 2));
        assert_eq!(p.payload(), &[0xaa; 8]);
        assert!(p.options().is_empty());
        assert!(p.verify_checksum());
        assert_eq!(p.compute_checksum(), p.checksum());
    }

    #[test]
    fn errors() {
        let h = header();
        assert_eq!(
            Ipv4Packet::new_checked(&h[..19]),
            Err(WireError::Truncated { need: 20, have: 19 })
        );
        assert_eq!(
            Ipv4Packet::new_checked(&h[..27]),
            Err(WireError::Truncated { need: 28, have: 27 })
        );
        let mut b = h.clone();
        b[0] = 0x65;
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]),
            Err(WireError::BadVersion { version: 6 })
        );
        b[0] = 0x43;
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]),
            Err(WireError::BadHeaderLen {
                header_len: 12,
                min: 20
            })
        );
        b[0] = 0x4f;
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]),
            Err(WireError::Truncated { need: 60, have: 32 })
        );
        let mut b = h.clone();
        b[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]),
            Err(WireError::BadTotalLen {
                total_len: 19,
                header_len: 20
            })
        );
    }

    #[test]
    fn setters_keep_checksum_valid() {
        let mut h = header();
        let mut p = Ipv4Packet::new_checked(&mut h[..]).unwrap();
        p.swap_addrs();
        assert!(p.verify_checksum());
        assert_eq!(p.src(), Ipv4Addr::new(192, 168, 1, 2));
        p.set_src(Ipv4Addr::new(1, 2, 3, 4));
        p.set_dst(Ipv4Addr::new(255, 0, 255, 7));
        assert!(p.verify_checksum());
        assert_eq!(p.decrement_ttl(), TtlOutcome::Forwarded { ttl: 63 });
        assert!(p.verify_checksum());
        p.set_ttl(9);
        assert!(!p.verify_checksum());
        p.fill_checksum();
        assert!(p.verify_checksum());
        p.payload_mut().fill(0x55);
        assert_eq!(p.payload(), &[0x55; 8]);
        // Lengths were validated once: lying about them later cannot make an
        // accessor panic.
        p.as_bytes_mut()[0] = 0x4f;
        p.as_bytes_mut()[2] = 0xff;
        assert_eq!(p.payload().len(), 8);
        assert_eq!(p.header().len(), 20);
    }
}
