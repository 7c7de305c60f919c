//! A zero-copy view of one packet in its shared buffer, and its verdict.

use netvm_shm::{Descriptor, Verdict};

/// A packet operation that would leave the packet's buffer or make the packet empty. Nothing is
/// changed when one is returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Not enough headroom in front of the packet.
    #[error("cannot prepend {need} bytes: only {have} bytes of headroom")]
    NoHeadroom {
        /// Bytes asked for.
        need: usize,
        /// Headroom available.
        have: usize,
    },
    /// Not enough room after the packet.
    #[error("cannot append {need} bytes: only {have} bytes of tailroom")]
    NoTailroom {
        /// Bytes asked for.
        need: usize,
        /// Tailroom available.
        have: usize,
    },
    /// The packet would be empty or shorter than zero (descriptors never carry empty packets).
    #[error(
        "cannot remove {remove} bytes from a {len}-byte packet: at least one byte must remain"
    )]
    WouldEmpty {
        /// Bytes asked to remove.
        remove: usize,
        /// Current length.
        len: usize,
    },
    /// A length outside `1..=max`.
    #[error("length {len} is outside 1..={max} for this buffer")]
    BadLen {
        /// Length asked for.
        len: usize,
        /// Longest packet that fits after the current headroom.
        max: usize,
    },
}

/// One packet, in place in its shared-memory buffer (no copy), plus its descriptor.
///
/// Made by [`Nf::packet`](crate::Nf::packet) from a descriptor the NF holds. The descriptor was
/// validated against the region geometry, so the packet lies inside its buffer; every method
/// keeps it there and none panics. Length and headroom changes, and the verdict, are written to
/// the descriptor, which the NF then returns with [`Nf::tx_burst`](crate::Nf::tx_burst).
///
/// The bytes live in memory the core (and, in principle, other NFs of the domain) can also
/// reach: treat their contents as untrusted input and parse them with checked views.
#[derive(Debug)]
pub struct Packet<'a> {
    /// The whole buffer (`buf_size` bytes).
    buf: &'a mut [u8],
    /// `data_off + data_len <= buf.len()` and `data_len >= 1`, established by
    /// `Packet::new` and kept by every method.
    desc: &'a mut Descriptor,
}

impl<'a> Packet<'a> {
    /// A packet over `buf` (its whole buffer) described by `desc`; `None` unless
    /// `0 < data_len` and `data_off + data_len <= buf.len()`.
    pub(crate) fn new(buf: &'a mut [u8], desc: &'a mut Descriptor) -> Option<Self> {
        let end = usize::from(desc.data_off) + usize::from(desc.data_len);
        if desc.data_len == 0 || end > buf.len() {
            return None;
        }
        Some(Self { buf, desc })
    }

    #[inline(always)]
    fn off(&self) -> usize {
        usize::from(self.desc.data_off)
    }

    /// The packet bytes.
    #[inline]
    #[must_use]
    pub fn data(&self) -> &[u8] {
        let (o, l) = (self.off(), self.len());
        // The struct invariant keeps the range inside `buf`; `get` keeps this panic-free anyway.
        self.buf.get(o..o + l).unwrap_or_default()
    }

    /// The packet bytes, writable in place.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let (o, l) = (self.off(), self.len());
        self.buf.get_mut(o..o + l).unwrap_or_default()
    }

    /// Packet length in bytes (always at least 1).
    #[inline]
    #[must_use]
    pub fn len(&self) -> usize {
        usize::from(self.desc.data_len)
    }

    /// Always `false`: a packet has at least one byte.
    #[inline]
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.desc.data_len == 0
    }

    /// Bytes in front of the packet that [`prepend`](Self::prepend) can use.
    #[inline]
    #[must_use]
    pub fn headroom(&self) -> usize {
        self.off()
    }

    /// Bytes after the packet that [`append`](Self::append) can use.
    #[inline]
    #[must_use]
    pub fn tailroom(&self) -> usize {
        self.buf.len() - self.off() - self.len()
    }

    /// Size of the whole buffer.
    #[inline]
    #[must_use]
    pub fn buf_len(&self) -> usize {
        self.buf.len()
    }

    /// Grows the packet at the front by `n` bytes of headroom (e.g. to push an encapsulation
    /// header) and returns them; their contents are whatever the buffer held.
    pub fn prepend(&mut self, n: usize) -> Result<&mut [u8], PacketError> {
        let have = self.headroom();
        if n > have {
            return Err(PacketError::NoHeadroom { need: n, have });
        }
        // off - n >= 0 and the new length is the same end minus a smaller start, both <= the
        // buffer size, which is at most u16::MAX (netvm-shm's MAX_BUF_SIZE).
        let (Ok(off), Ok(len)) = (u16::try_from(have - n), u16::try_from(self.len() + n)) else {
            return Err(PacketError::NoHeadroom { need: n, have });
        };
        self.desc.data_off = off;
        self.desc.data_len = len;
        let o = self.off();
        Ok(self.buf.get_mut(o..o + n).unwrap_or_default())
    }

    /// Removes `n` bytes from the front of the packet (they become headroom), like DPDK's
    /// `rte_pktmbuf_adj`. At least one byte must remain.
    pub fn adj(&mut self, n: usize) -> Result<(), PacketError> {
        let len = self.len();
        if n >= len {
            return Err(PacketError::WouldEmpty { remove: n, len });
        }
        let (Ok(off), Ok(new_len)) = (u16::try_from(self.off() + n), u16::try_from(len - n)) else {
            return Err(PacketError::WouldEmpty { remove: n, len });
        };
        self.desc.data_off = off;
        self.desc.data_len = new_len;
        Ok(())
    }

    /// Removes `n` bytes from the end of the packet, like DPDK's `rte_pktmbuf_trim`. At least
    /// one byte must remain.
    pub fn trim(&mut self, n: usize) -> Result<(), PacketError> {
        let len = self.len();
        if n >= len {
            return Err(PacketError::WouldEmpty { remove: n, len });
        }
        self.desc.data_len = u16::try_from(len - n).unwrap_or(self.desc.data_len);
        Ok(())
    }

    /// Grows the packet at the end by `n` bytes of tailroom and returns them.
    pub fn append(&mut self, n: usize) -> Result<&mut [u8], PacketError> {
        let have = self.tailroom();
        if n > have {
            return Err(PacketError::NoTailroom { need: n, have });
        }
        let old = self.len();
        let Ok(len) = u16::try_from(old + n) else {
            return Err(PacketError::NoTailroom { need: n, have });
        };
        self.desc.data_len = len;
        let o = self.off() + old;
        Ok(self.buf.get_mut(o..o + n).unwrap_or_default())
    }

    /// Sets the length to `len` (`1..=len() + tailroom()`), keeping the start.
    pub fn set_len(&mut self, len: usize) -> Result<(), PacketError> {
        let max = self.buf.len() - self.off();
        match u16::try_from(len) {
            Ok(l) if l > 0 && len <= max => {
                self.desc.data_len = l;
                Ok(())
            }
            _ => Err(PacketError::BadLen { len, max }),
        }
    }

    /// Port the packet arrived on.
    #[inline]
    #[must_use]
    pub fn in_port(&self) -> u16 {
        u16::from(self.desc.in_port)
    }

    /// Flow hash computed by the core (RSS or software; 0 if it had none).
    #[inline]
    #[must_use]
    pub fn flow_hash(&self) -> u32 {
        self.desc.flow_hash
    }

    /// Index of the packet's buffer in the region.
    #[inline]
    #[must_use]
    pub fn buf_idx(&self) -> u32 {
        self.desc.buf_idx
    }

    /// The verdict set so far (`None` until one is set: the core → NF direction carries none).
    #[inline]
    #[must_use]
    pub fn verdict(&self) -> Option<Verdict> {
        Verdict::from_raw(self.desc.verdict, self.desc.verdict_arg)
    }

    /// Sets the verdict.
    #[inline]
    pub fn set_verdict(&mut self, v: Verdict) {
        self.desc.set_verdict(v);
    }

    /// Verdict NEXT: continue with the next service of the chain.
    #[inline]
    pub fn next(&mut self) {
        self.set_verdict(Verdict::Next);
    }

    /// Verdict SERVICE(id): hand the packet to service `id`.
    #[inline]
    pub fn to_service(&mut self, id: u16) {
        self.set_verdict(Verdict::Service(id));
    }

    /// Verdict OUT(port): transmit on `port`.
    #[inline]
    pub fn out(&mut self, port: u16) {
        self.set_verdict(Verdict::Out(port));
    }

    /// Verdict DROP.
    #[inline]
    pub fn drop_packet(&mut self) {
        self.set_verdict(Verdict::Drop);
    }

    /// The descriptor as it will be returned.
    #[inline]
    #[must_use]
    pub fn descriptor(&self) -> Descriptor {
        *self.desc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt<'a>(buf: &'a mut [u8], d: &'a mut Descriptor) -> Packet<'a> {
        Packet::new(buf, d).unwrap()
    }

    #[test]
    fn construction_checks_bounds() {
        let mut buf = [0u8; 128];
        assert!(Packet::new(&mut buf, &mut Descriptor::new(0, 64, 65)).is_none());
        assert!(Packet::new(&mut buf, &mut Descriptor::new(0, 64, 0)).is_none());
        assert!(Packet::new(&mut buf, &mut Descriptor::new(0, u16::MAX, 2)).is_none());
        assert!(Packet::new(&mut buf, &mut Descriptor::new(0, 64, 64)).is_some());
    }

    #[test]
    fn headroom_ops() {
        let mut buf: Vec<u8> = (0..128).collect();
        let mut d = Descriptor::new(7, 32, 16);
        {
            let mut p = pkt(&mut buf, &mut d);
            assert_eq!(p.data(), &(32..48).collect::<Vec<u8>>()[..]);
            assert_eq!((p.len(), p.headroom(), p.tailroom()), (16, 32, 80));
            p.prepend(4).unwrap().copy_from_slice(&[1, 2, 3, 4]);
            assert_eq!(&p.data()[..5], &[1, 2, 3, 4, 32]);
            assert_eq!((p.len(), p.headroom()), (20, 28));
            assert_eq!(
                p.prepend(29),
                Err(PacketError::NoHeadroom { need: 29, have: 28 })
            );
            p.adj(4).unwrap();
            assert_eq!((p.len(), p.headroom()), (16, 32));
            assert_eq!(
                p.adj(16),
                Err(PacketError::WouldEmpty {
                    remove: 16,
                    len: 16
                })
            );
            p.trim(15).unwrap();
            assert_eq!(p.data(), &[32]);
            assert!(p.trim(1).is_err());
            p.append(3).unwrap().fill(9);
            assert_eq!(p.data(), &[32, 9, 9, 9]);
            assert!(p.append(p.tailroom() + 1).is_err());
            p.set_len(96).unwrap();
            assert_eq!(p.tailroom(), 0);
            assert_eq!(p.set_len(97), Err(PacketError::BadLen { len: 97, max: 96 }));
            assert!(p.set_len(0).is_err());
            p.prepend(32).unwrap();
            assert_eq!((p.headroom(), p.len()), (0, 128));
            assert!(!p.is_empty());
        }
        assert_eq!((d.data_off, d.data_len), (0, 128));
    }

    #[test]
    fn verdicts_and_meta() {
        let mut buf = [0u8; 64];
        let mut d = Descriptor::new(3, 0, 10);
        d.in_port = 2;
        d.flow_hash = 0xdead_beef;
        let mut p = pkt(&mut buf, &mut d);
        assert_eq!(p.verdict(), None);
        assert_eq!(
            (p.in_port(), p.flow_hash(), p.buf_idx()),
            (2, 0xdead_beef, 3)
        );
        p.out(5);
        assert_eq!(p.verdict(), Some(Verdict::Out(5)));
        p.to_service(9);
        assert_eq!(p.verdict(), Some(Verdict::Service(9)));
        p.drop_packet();
        assert_eq!(p.verdict(), Some(Verdict::Drop));
        p.next();
        assert_eq!(p.descriptor().verdict, netvm_shm::verdict_code::NEXT);
    }
}
