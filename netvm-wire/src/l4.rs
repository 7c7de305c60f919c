//! Minimal UDP and TCP views: ports, lengths, checksums.

use std::net::Ipv4Addr;

use crate::bytes::{rd16, rd32, rd8, sub, sub_mut, swap_fields, wr16};
use crate::checksum;
use crate::error::{need, Result, WireError};

/// IP protocol numbers used by netvm.
pub mod ip_proto {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
}

/// L4 checksum over pseudo header + segment, with the checksum field (at
/// `csum_off`) taken as zero.
fn l4_checksum(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, seg: &[u8], csum_off: usize) -> u16 {
    // Segments longer than 65535 bytes cannot come from an IPv4 packet; clamp so
    // that this stays total.
    let len = u16::try_from(seg.len()).unwrap_or(u16::MAX);
    let acc = checksum::pseudo_header_sum(src, dst, proto, len);
    checksum::finish(checksum::sum_skipping(seg, csum_off, acc))
}

/// A checked view of a UDP datagram (the IPv4 payload).
///
/// `new_checked` validates: at least 8 bytes, and a length field in
/// `8..=buf.len()`. [`payload`](Self::payload) ends at the length field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpPacket<T> {
    buf: T,
    len: usize,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// UDP header length.
    pub const HEADER_LEN: usize = 8;

    /// Validates `buf` as a UDP datagram.
    ///
    /// Errors: [`WireError::Truncated`] (buffer under 8 bytes or under the length
    /// field), [`WireError::BadUdpLen`] (length field under 8).
    #[inline]
    pub fn new_checked(buf: T) -> Result<Self> {
        let b = buf.as_ref();
        need(b.len(), Self::HEADER_LEN)?;
        let len = usize::from(rd16(b, 4));
        if len < Self::HEADER_LEN {
            return Err(WireError::BadUdpLen { len });
        }
        need(b.len(), len)?;
        Ok(UdpPacket { buf, len })
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

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        rd16(self.buf.as_ref(), 0)
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        rd16(self.buf.as_ref(), 2)
    }

    /// The length field (header + payload), as validated.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never true: a valid datagram has at least its 8-byte header.
    #[inline]
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Checksum field (0 = not computed).
    #[inline]
    pub fn checksum(&self) -> u16 {
        rd16(self.buf.as_ref(), 6)
    }

    /// Payload: bytes 8 to the length field.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        sub(self.buf.as_ref(), Self::HEADER_LEN..self.len)
    }

    /// The correct checksum for this datagram between `src` and `dst` (never 0:
    /// a computed 0 is sent as 0xffff, RFC 768).
    #[inline]
    pub fn compute_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> u16 {
        let seg = sub(self.buf.as_ref(), 0..self.len);
        match l4_checksum(src, dst, ip_proto::UDP, seg, 6) {
            0 => 0xffff,
            c => c,
        }
    }

    /// True if the checksum is absent (0) or correct.
    #[inline]
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let c = self.checksum();
        c == 0 || c == self.compute_checksum(src, dst)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    /// Sets the source port (checksum not updated; see [`fill_checksum`](Self::fill_checksum)).
    #[inline]
    pub fn set_src_port(&mut self, port: u16) {
        wr16(self.buf.as_mut(), 0, port);
    }

    /// Sets the destination port (checksum not updated).
    #[inline]
    pub fn set_dst_port(&mut self, port: u16) {
        wr16(self.buf.as_mut(), 2, port);
    }

    /// Swaps the ports; the checksum stays valid.
    #[inline]
    pub fn swap_ports(&mut self) {
        swap_fields(self.buf.as_mut(), 0, 2, 2);
    }

    /// Writes the correct checksum for `src` → `dst`.
    #[inline]
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        let c = self.compute_checksum(src, dst);
        wr16(self.buf.as_mut(), 6, c);
    }

    /// Payload, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = self.len;
        sub_mut(self.buf.as_mut(), Self::HEADER_LEN..len)
    }
}

/// TCP flag bits (the low byte of offset 13).
pub mod tcp_flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
}

/// A checked view of a TCP segment (the whole IPv4 payload).
///
/// `new_checked` validates: at least 20 bytes, data offset ≥ 5 and the header
/// inside the buffer. The segment is the whole buffer: pass exactly the IPv4
/// payload so that the checksum covers the right bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpPacket<T> {
    buf: T,
    header_len: usize,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Minimum TCP header length.
    pub const MIN_HEADER_LEN: usize = 20;

    /// Validates `buf` as a TCP segment.
    ///
    /// Errors: [`WireError::Truncated`], [`WireError::BadHeaderLen`].
    #[inline]
    pub fn new_checked(buf: T) -> Result<Self> {
        let b = buf.as_ref();
        need(b.len(), Self::MIN_HEADER_LEN)?;
        let header_len = usize::from(rd8(b, 12) >> 4) * 4;
        if header_len < Self::MIN_HEADER_LEN {
            return Err(WireError::BadHeaderLen {
                header_len,
                min: Self::MIN_HEADER_LEN,
            });
        }
        need(b.len(), header_len)?;
        Ok(TcpPacket { buf, header_len })
    }

    /// The whole segment.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.as_ref()
    }

    /// Gives the buffer back.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buf
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        rd16(self.buf.as_ref(), 0)
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        rd16(self.buf.as_ref(), 2)
    }

    /// Sequence number.
    #[inline]
    pub fn seq(&self) -> u32 {
        rd32(self.buf.as_ref(), 4)
    }

    /// Acknowledgement number.
    #[inline]
    pub fn ack(&self) -> u32 {
        rd32(self.buf.as_ref(), 8)
    }

    /// Header length in bytes (data offset × 4), as validated.
    #[inline]
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// Flag bits (see [`tcp_flags`]).
    #[inline]
    pub fn flags(&self) -> u8 {
        rd8(self.buf.as_ref(), 13)
    }

    /// Window.
    #[inline]
    pub fn window(&self) -> u16 {
        rd16(self.buf.as_ref(), 14)
    }

    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        rd16(self.buf.as_ref(), 16)
    }

    /// Payload: after the header to the end of the buffer.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let b = self.buf.as_ref();
        sub(b, self.header_len..b.len())
    }

    /// The correct checksum for this segment between `src` and `dst`.
    #[inline]
    pub fn compute_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> u16 {
        l4_checksum(src, dst, ip_proto::TCP, self.buf.as_ref(), 16)
    }

    /// True if the checksum is correct.
    #[inline]
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        self.checksum() == self.compute_checksum(src, dst)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    /// Sets the source port (checksum not updated).
    #[inline]
    pub fn set_src_port(&mut self, port: u16) {
        wr16(self.buf.as_mut(), 0, port);
    }

    /// Sets the destination port (checksum not updated).
    #[inline]
    pub fn set_dst_port(&mut self, port: u16) {
        wr16(self.buf.as_mut(), 2, port);
    }

    /// Swaps the ports; the checksum stays valid.
    #[inline]
    pub fn swap_ports(&mut self) {
        swap_fields(self.buf.as_mut(), 0, 2, 2);
    }

    /// Writes the correct checksum for `src` → `dst`.
    #[inline]
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        let c = self.compute_checksum(src, dst);
        wr16(self.buf.as_mut(), 16, c);
    }

    /// Payload, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let h = self.header_len;
        let b = self.buf.as_mut();
        let len = b.len();
        sub_mut(b, h..len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_view() {
        let src = Ipv4Addr::new(10, 0, 0, 1);
        let dst = Ipv4Addr::new(10, 0, 0, 2);
        let mut b = vec![
            0x04, 0xd2, 0x00, 0x35, 0x00, 0x0b, 0, 0, b'a', b'b', b'c', 0, 0,
        ];
        let mut u = UdpPacket::new_checked(&mut b[..]).unwrap();
        assert_eq!((u.src_port(), u.dst_port(), u.len()), (1234, 53, 11));
        assert_eq!(u.payload(), b"abc");
        assert!(u.verify_checksum(src, dst)); // 0 = absent
        u.fill_checksum(src, dst);
        assert!(u.verify_checksum(src, dst));
        u.swap_ports();
        assert!(u.verify_checksum(src, dst));
        assert_eq!((u.src_port(), u.dst_port()), (53, 1234));
        u.set_dst_port(1);
        assert!(!u.verify_checksum(src, dst));
        u.set_src_port(2);
        assert_eq!((u.src_port(), u.dst_port()), (2, 1));
        assert!(matches!(
            UdpPacket::new_checked(&b[..7]),
            Err(WireError::Truncated { need: 8, have: 7 })
        ));
        b[5] = 7;
        assert_eq!(
            UdpPacket::new_checked(&b[..]),
            Err(WireError::BadUdpLen { len: 7 })
        );
        b[5] = 14;
        assert_eq!(
            UdpPacket::new_checked(&b[..]),
            Err(WireError::Truncated { need: 14, have: 13 })
        );
    }

    #[test]
    fn tcp_view() {
        let src = Ipv4Addr::new(10, 0, 0, 1);
        let dst = Ipv4Addr::new(10, 0, 0, 2);
        let mut b = [0u8; 24 + 5];
        b[0..2].copy_from_slice(&80u16.to_be_bytes());
        b[2..4].copy_from_slice(&40000u16.to_be_bytes());
        b[4..8].copy_from_slice(&7u32.to_be_bytes());
        b[12] = 6 << 4;
        b[13] = tcp_flags::SYN | tcp_flags::ACK;
        b[24..].copy_from_slice(b"hello");
        let mut t = TcpPacket::new_checked(&mut b[..]).unwrap();
        assert_eq!((t.src_port(), t.dst_port(), t.seq()), (80, 40000, 7));
        assert_eq!(t.header_len(), 24);
        assert_eq!(t.flags(), 0x12);
        assert_eq!(t.payload(), b"hello");
        t.fill_checksum(src, dst);
        assert!(t.verify_checksum(src, dst));
        // Swapping addresses and ports together keeps the checksum valid.
        t.swap_ports();
        assert!(t.verify_checksum(dst, src));
        t.payload_mut()[0] = b'j';
        assert!(!t.verify_checksum(dst, src));
        b[12] = 4 << 4;
        assert_eq!(
            TcpPacket::new_checked(&b[..]),
            Err(WireError::BadHeaderLen {
                header_len: 16,
                min: 20
            })
        );
        b[12] = 15 << 4;
        assert_eq!(
            TcpPacket::new_checked(&b[..]),
            Err(WireError::Truncated { need: 60, have: 29 })
        );
    }
}
