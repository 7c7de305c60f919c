//! Ethernet II frames, with up to two 802.1Q / 802.1ad tags (QinQ).

use crate::bytes::{rd16, sub, sub_mut, swap_fields, wr16};
use crate::error::{need, Result};
use crate::mac::MacAddr;

/// EtherType values used by netvm.
pub mod ethertype {
    /// IPv4.
    pub const IPV4: u16 = 0x0800;
    /// ARP.
    pub const ARP: u16 = 0x0806;
    /// IPv6.
    pub const IPV6: u16 = 0x86dd;
    /// IEEE 802.1Q VLAN tag (C-tag).
    pub const VLAN: u16 = 0x8100;
    /// IEEE 802.1ad service tag (S-tag).
    pub const QINQ: u16 = 0x88a8;
}

/// A checked view of an Ethernet II frame (no FCS).
///
/// `new_checked` accepts a frame of at least 14 bytes; if the outer EtherType is
/// an 802.1Q/802.1ad tag it also needs the 4 tag bytes, and the view then looks
/// through that tag, and through a second (inner) tag right after it (QinQ:
/// 802.1ad S-tag + 802.1Q C-tag, or two 802.1Q tags): [`ethertype`](Self::ethertype)
/// is the type after the tags, [`payload`](Self::payload) starts after them. A
/// third tag is not unwrapped: `ethertype()` then returns 0x8100/0x88a8 and the
/// payload starts at that tag. The header length is computed once by
/// `new_checked`, so no accessor panics, even if the bytes change afterwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EthernetFrame<T> {
    buf: T,
    header_len: usize,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Length of an untagged Ethernet header.
    pub const HEADER_LEN: usize = 14;
    /// Length of a header with one VLAN tag.
    pub const TAGGED_HEADER_LEN: usize = 18;
    /// Length of a header with two VLAN tags (QinQ).
    pub const QINQ_HEADER_LEN: usize = 22;

    /// Validates `buf` as an Ethernet frame.
    ///
    /// Errors: [`WireError::Truncated`](crate::WireError::Truncated) when shorter
    /// than 14 bytes, than 18 bytes with a VLAN tag, or than 22 with two.
    #[inline]
    pub fn new_checked(buf: T) -> Result<Self> {
        let b = buf.as_ref();
        need(b.len(), Self::HEADER_LEN)?;
        let is_tag = |t: u16| t == ethertype::VLAN || t == ethertype::QINQ;
        let header_len = if is_tag(rd16(b, 12)) {
            need(b.len(), Self::TAGGED_HEADER_LEN)?;
            if is_tag(rd16(b, 16)) {
                need(b.len(), Self::QINQ_HEADER_LEN)?;
                Self::QINQ_HEADER_LEN
            } else {
                Self::TAGGED_HEADER_LEN
            }
        } else {
            Self::HEADER_LEN
        };
        Ok(EthernetFrame { buf, header_len })
    }

    /// The whole frame.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.as_ref()
    }

    /// Gives the buffer back.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buf
    }

    /// Header length: 14, 18 with a VLAN tag, 22 with two.
    #[inline]
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// Destination address.
    #[inline]
    pub fn dst(&self) -> MacAddr {
        MacAddr::from_slice(self.buf.as_ref()).unwrap_or_default()
    }

    /// Source address.
    #[inline]
    pub fn src(&self) -> MacAddr {
        MacAddr::from_slice(sub(self.buf.as_ref(), 6..12)).unwrap_or_default()
    }

    /// The EtherType at offset 12 (a tag type for tagged frames).
    #[inline]
    pub fn outer_ethertype(&self) -> u16 {
        rd16(self.buf.as_ref(), 12)
    }

    /// The EtherType of the payload, after at most two VLAN tags.
    #[inline]
    pub fn ethertype(&self) -> u16 {
        rd16(self.buf.as_ref(), self.header_len - 2)
    }

    /// The tag control information (PCP, DEI, VID) of the outer VLAN tag, if any.
    #[inline]
    pub fn vlan_tci(&self) -> Option<u16> {
        (self.header_len >= Self::TAGGED_HEADER_LEN).then(|| rd16(self.buf.as_ref(), 14))
    }

    /// The tag control information of the inner VLAN tag of a QinQ frame, if any.
    #[inline]
    pub fn inner_vlan_tci(&self) -> Option<u16> {
        (self.header_len == Self::QINQ_HEADER_LEN).then(|| rd16(self.buf.as_ref(), 18))
    }

    /// Everything after the header (including any Ethernet padding).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let b = self.buf.as_ref();
        sub(b, self.header_len..b.len())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// The whole frame, writable.
    #[inline]
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        self.buf.as_mut()
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst(&mut self, mac: MacAddr) {
        sub_mut(self.buf.as_mut(), 0..6).copy_from_slice(&mac.0);
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src(&mut self, mac: MacAddr) {
        sub_mut(self.buf.as_mut(), 6..12).copy_from_slice(&mac.0);
    }

    /// Swaps source and destination addresses (a reflector's rewrite).
    #[inline]
    pub fn swap_addrs(&mut self) {
        swap_fields(self.buf.as_mut(), 0, 6, 6);
    }

    /// Sets the payload EtherType (the inner one for a tagged frame).
    #[inline]
    pub fn set_ethertype(&mut self, ty: u16) {
        let off = self.header_len - 2;
        wr16(self.buf.as_mut(), off, ty);
    }

    /// Everything after the header, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let b = self.buf.as_mut();
        let len = b.len();
        sub_mut(b, self.header_len..len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WireError;

    fn frame(tagged: bool) -> Vec<u8> {
        let mut f = vec![1, 2, 3, 4, 5, 6, 0xa, 0xb, 0xc, 0xd, 0xe, 0xf];
        if tagged {
            f.extend_from_slice(&[0x81, 0x00, 0x20, 0x07]);
        }
        f.extend_from_slice(&[0x08, 0x00, 0x45, 0x00]);
        f
    }

    #[test]
    fn untagged() {
        let f = frame(false);
        let e = EthernetFrame::new_checked(&f[..]).unwrap();
        assert_eq!(e.dst(), MacAddr([1, 2, 3, 4, 5, 6]));
        assert_eq!(e.src(), MacAddr([0xa, 0xb, 0xc, 0xd, 0xe, 0xf]));
        assert_eq!(e.ethertype(), ethertype::IPV4);
        assert_eq!(e.vlan_tci(), None);
        assert_eq!(e.payload(), &[0x45, 0x00]);
    }

    #[test]
    fn tagged() {
        let f = frame(true);
        let e = EthernetFrame::new_checked(&f[..]).unwrap();
        assert_eq!(e.outer_ethertype(), ethertype::VLAN);
        assert_eq!(e.ethertype(), ethertype::IPV4);
        assert_eq!(e.vlan_tci(), Some(0x2007));
        assert_eq!(e.header_len(), 18);
        assert_eq!(e.payload(), &[0x45, 0x00]);
    }

    #[test]
    fn qinq() {
        let mut f = vec![1, 2, 3, 4, 5, 6, 0xa, 0xb, 0xc, 0xd, 0xe, 0xf];
        f.extend_from_slice(&[0x88, 0xa8, 0x00, 0x64, 0x81, 0x00, 0x20, 0xc8]);
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0x00]);
        let e = EthernetFrame::new_checked(&f[..]).unwrap();
        assert_eq!(e.header_len(), 22);
        assert_eq!(e.vlan_tci(), Some(100));
        assert_eq!(e.inner_vlan_tci(), Some(0x20c8));
        assert_eq!(e.ethertype(), ethertype::IPV6);
        assert_eq!(e.payload(), &[0x60, 0x00]);
        assert_eq!(
            EthernetFrame::new_checked(&f[..21]),
            Err(WireError::Truncated { need: 22, have: 21 })
        );
        // A third tag is not unwrapped.
        f[20..22].copy_from_slice(&[0x81, 0x00]);
        let e = EthernetFrame::new_checked(&f[..]).unwrap();
        assert_eq!(e.ethertype(), ethertype::VLAN);
        // One tag: no inner TCI.
        let t = frame(true);
        assert_eq!(
            EthernetFrame::new_checked(&t[..]).unwrap().inner_vlan_tci(),
            None
        );
    }

    #[test]
    fn truncated() {
        assert_eq!(
            EthernetFrame::new_checked(&[0u8; 13][..]),
            Err(WireError::Truncated { need: 14, have: 13 })
        );
        let f = frame(true);
        assert_eq!(
            EthernetFrame::new_checked(&f[..17]),
            Err(WireError::Truncated { need: 18, have: 17 })
        );
        // Exactly a header: empty payload.
        assert_eq!(
            EthernetFrame::new_checked(&f[..14]).map(|_| ()),
            Err(WireError::Truncated { need: 18, have: 14 })
        );
        let f = frame(false);
        assert!(EthernetFrame::new_checked(&f[..14])
            .unwrap()
            .payload()
            .is_empty());
    }

    #[test]
    fn setters() {
        let mut f = frame(true);
        let mut e = EthernetFrame::new_checked(&mut f[..]).unwrap();
        e.swap_addrs();
        assert_eq!(e.src(), MacAddr([1, 2, 3, 4, 5, 6]));
        assert_eq!(e.dst(), MacAddr([0xa, 0xb, 0xc, 0xd, 0xe, 0xf]));
        e.set_dst(MacAddr::BROADCAST);
        e.set_src(MacAddr::ZERO);
        e.set_ethertype(ethertype::ARP);
        e.payload_mut()[0] = 0x99;
        assert_eq!(e.dst(), MacAddr::BROADCAST);
        assert_eq!(e.src(), MacAddr::ZERO);
        assert_eq!(e.ethertype(), ethertype::ARP);
        assert_eq!(e.outer_ethertype(), ethertype::VLAN);
        assert_eq!(f[18], 0x99);
    }
}
