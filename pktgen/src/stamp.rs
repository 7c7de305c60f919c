//! The stamp pktgen writes into every frame, right after the UDP header (offset 42 of an
//! untagged Ethernet/IPv4/UDP frame):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 42 | 4 | magic `NVPG` (0x4750564e, little-endian) |
//! | 46 | 8 | sequence number (little-endian), global across flows; flow = seq mod flows |
//! | 54 | 8 | TSC when the frame was built (little-endian) |
//!
//! Forwarders that rewrite MAC addresses (l2fwd, testpmd macswap) or swap addresses and ports
//! (reflector) leave it intact.

/// Offset of the stamp: Ethernet (14) + IPv4 (20) + UDP (8).
pub const OFFSET: usize = 42;
/// Stamp length.
pub const LEN: usize = 20;
/// Smallest frame that carries a stamp.
pub const MIN_FRAME: u16 = 62;
/// The magic word.
pub const MAGIC: u32 = u32::from_le_bytes(*b"NVPG");

/// A decoded stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Sequence number.
    pub seq: u64,
    /// TSC at build time.
    pub tsc: u64,
}

/// Writes a stamp into `frame`; returns false (writing nothing) if the frame is too short.
#[inline]
pub fn write(frame: &mut [u8], seq: u64, tsc: u64) -> bool {
    let Some(s) = frame.get_mut(OFFSET..OFFSET + LEN) else {
        return false;
    };
    s[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    s[4..12].copy_from_slice(&seq.to_le_bytes());
    s[12..20].copy_from_slice(&tsc.to_le_bytes());
    true
}

/// Reads the stamp of `frame`, if it has one.
#[inline]
pub fn read(frame: &[u8]) -> Option<Stamp> {
    let s = frame.get(OFFSET..OFFSET + LEN)?;
    let word = |r: std::ops::Range<usize>| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&s[r]);
        u64::from_le_bytes(b)
    };
    let mut m = [0u8; 4];
    m.copy_from_slice(&s[0..4]);
    if u32::from_le_bytes(m) != MAGIC {
        return None;
    }
    Some(Stamp {
        seq: word(4..12),
        tsc: word(12..20),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects() {
        let mut f = [0u8; 64];
        assert!(write(&mut f, 7, 0xdead_beef_0000_0001));
        assert_eq!(
            read(&f),
            Some(Stamp {
                seq: 7,
                tsc: 0xdead_beef_0000_0001
            })
        );
        assert_eq!(read(&f[..61]), None);
        assert!(!write(&mut [0u8; 61], 1, 1));
        f[42] ^= 1;
        assert_eq!(read(&f), None);
        assert_eq!(usize::from(MIN_FRAME), OFFSET + LEN);
    }
}
