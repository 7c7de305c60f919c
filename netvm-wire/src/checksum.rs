//! The Internet checksum (RFC 1071) and incremental updates (RFC 1624).
//!
//! Sums are carried in a `u64` accumulator of big-endian words and folded with
//! end-around carry only at the end, so callers can chain
//! [`sum`] → [`sum`] → [`finish`] over discontiguous pieces (pseudo header,
//! L4 header, payload) as long as every piece but the last has even length.

use std::net::Ipv4Addr;

use crate::bytes::{rd16, rd8, wr16, wr8};
use crate::error::{need, Result, WireError};

/// Adds the bytes of `data`, taken as big-endian 16-bit words (a trailing odd byte
/// is padded with a zero byte), to the accumulator `acc`.
///
/// Words are summed 32 bits at a time; this is the same sum modulo 0xffff because
/// 2^16 ≡ 1 (mod 0xffff). The accumulator cannot overflow for any buffer shorter
/// than 16 GiB.
#[inline]
pub fn sum(data: &[u8], mut acc: u64) -> u64 {
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        if let &[a, b, c, d] = c {
            acc += u64::from(u32::from_be_bytes([a, b, c, d]));
        }
    }
    match *chunks.remainder() {
        [a] => acc += u64::from(u16::from_be_bytes([a, 0])),
        [a, b] => acc += u64::from(u16::from_be_bytes([a, b])),
        [a, b, c] => {
            acc += u64::from(u16::from_be_bytes([a, b]));
            acc += u64::from(u16::from_be_bytes([c, 0]));
        }
        _ => {}
    }
    acc
}

/// As [`sum`], but with the 16-bit field at the even offset `field` taken as
/// zero (for computing a checksum without first clearing its field).
#[inline]
pub fn sum_skipping(data: &[u8], field: usize, acc: u64) -> u64 {
    let before = data.get(..field).unwrap_or(data);
    let after = data.get(field.saturating_add(2)..).unwrap_or(&[]);
    // `field` is even, so `after` starts on a word boundary.
    sum(after, sum(before, acc))
}

/// Folds an accumulator to a 16-bit one's-complement sum with end-around carry.
///
/// The result is 0 only when `acc` is 0; otherwise it lies in `1..=0xffff`
/// (0xffff being "negative zero").
#[inline]
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    // The loop leaves acc <= 0xffff.
    u16::try_from(acc).unwrap_or(0xffff)
}

/// The checksum field value for an accumulated sum: `!fold(acc)`.
#[inline]
pub fn finish(acc: u64) -> u16 {
    !fold(acc)
}

/// The Internet checksum of `data`: the one's complement of the one's-complement
/// sum of its 16-bit words. Writing it into a zeroed checksum field makes the
/// checksum of the whole header come out as 0.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    finish(sum(data, 0))
}

/// The accumulated sum of the IPv4 pseudo header used by TCP and UDP checksums:
/// source, destination, zero byte + protocol, and L4 length.
#[inline]
pub fn pseudo_header_sum(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, l4_len: u16) -> u64 {
    u64::from(u32::from(src)) + u64::from(u32::from(dst)) + u64::from(proto) + u64::from(l4_len)
}

/// RFC 1624 eqn. 3: the new checksum after one 16-bit word of the covered data
/// changes from `old` to `new`: `HC' = ~(~HC + ~m + m')`.
///
/// For a header whose checksum `hc` was correct, the result equals a full
/// recompute bit for bit (both are the unique non-zero representative of the
/// sum; see the property test). A wrong `hc` stays wrong: errors are carried,
/// not hidden.
#[inline]
pub fn update16(hc: u16, old: u16, new: u16) -> u16 {
    finish(u64::from(!hc) + u64::from(!old) + u64::from(new))
}

/// As [`update16`] for a 32-bit field (an IPv4 address).
#[inline]
pub fn update32(hc: u16, old: u32, new: u32) -> u16 {
    let [a, b, c, d] = old.to_be_bytes();
    let [e, f, g, h] = new.to_be_bytes();
    finish(
        u64::from(!hc)
            + u64::from(!u16::from_be_bytes([a, b]))
            + u64::from(!u16::from_be_bytes([c, d]))
            + u64::from(u16::from_be_bytes([e, f]))
            + u64::from(u16::from_be_bytes([g, h])),
    )
}

/// What [`decrement_ttl_in_place`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TtlOutcome {
    /// TTL was ≥ 2: it is now `ttl` (≥ 1) and the header checksum was updated.
    Forwarded {
        /// The new TTL.
        ttl: u8,
    },
    /// TTL was 0 or 1: the packet must not be forwarded (RFC 1812 §5.3.1; a
    /// router drops it and may send ICMP Time Exceeded). The buffer is untouched.
    Expired {
        /// The TTL found (0 or 1).
        ttl: u8,
    },
}

/// Decrements the TTL of the IPv4 header at the start of `ip` and updates its
/// header checksum incrementally (RFC 1624), without reading the rest of the
/// header.
///
/// - TTL 0 or 1 → [`TtlOutcome::Expired`], nothing written.
/// - TTL n ≥ 2 → TTL becomes n − 1, checksum updated, [`TtlOutcome::Forwarded`].
///
/// Checks only what it needs to edit safely: at least 20 bytes, version 4, and
/// IHL ≥ 5 with the whole header inside `ip`. It does **not** verify the old
/// checksum (that would cost a full header pass); a wrong checksum stays wrong.
///
/// Errors: [`WireError::Truncated`], [`WireError::BadVersion`],
/// [`WireError::BadHeaderLen`]. Never panics, never allocates.
#[inline]
pub fn decrement_ttl_in_place(ip: &mut [u8]) -> Result<TtlOutcome> {
    need(ip.len(), 20)?;
    let vihl = rd8(ip, 0);
    if vihl >> 4 != 4 {
        return Err(WireError::BadVersion { version: vihl >> 4 });
    }
    let header_len = usize::from(vihl & 0x0f) * 4;
    if header_len < 20 {
        return Err(WireError::BadHeaderLen {
            header_len,
            min: 20,
        });
    }
    need(ip.len(), header_len)?;
    let ttl = rd8(ip, 8);
    if ttl <= 1 {
        return Ok(TtlOutcome::Expired { ttl });
    }
    let old = rd16(ip, 8);
    let new = old - 0x0100; // ttl >= 2, so the high byte does not underflow
    let hc = update16(rd16(ip, 10), old, new);
    wr8(ip, 8, ttl - 1);
    wr16(ip, 10, hc);
    Ok(TtlOutcome::Forwarded { ttl: ttl - 1 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RFC 1071 §3 example words.
    #[test]
    fn rfc1071_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data, 0)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    /// A known IPv4 header (from Wikipedia's "IPv4 header checksum" article).
    #[test]
    fn known_header() {
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&h), 0xb861);
        h[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert_eq!(checksum(&h), 0);
    }

    #[test]
    fn odd_lengths_and_chaining() {
        assert_eq!(checksum(&[]), 0xffff);
        assert_eq!(checksum(&[0xab]), !0xab00);
        assert_eq!(checksum(&[0x12, 0x34, 0x56]), !(0x1234 + 0x5600));
        let data: Vec<u8> = (0..=255u8).cycle().take(1001).collect();
        let whole = checksum(&data);
        let split = finish(sum(&data[400..], sum(&data[..400], 0)));
        assert_eq!(whole, split);
    }

    #[test]
    fn ttl_outcomes() {
        let mut h = [
            0x45, 0x00, 0x00, 0x14, 0x00, 0x00, 0x40, 0x00, 0x02, 0x11, 0x00, 0x00, 10, 0, 0, 1,
            10, 0, 0, 2,
        ];
        let c = checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(
            decrement_ttl_in_place(&mut h),
            Ok(TtlOutcome::Forwarded { ttl: 1 })
        );
        assert_eq!(checksum(&h), 0);
        let before = h;
        assert_eq!(
            decrement_ttl_in_place(&mut h),
            Ok(TtlOutcome::Expired { ttl: 1 })
        );
        assert_eq!(h, before);
        h[8] = 0;
        assert_eq!(
            decrement_ttl_in_place(&mut h),
            Ok(TtlOutcome::Expired { ttl: 0 })
        );
        assert_eq!(
            decrement_ttl_in_place(&mut h[..19]),
            Err(WireError::Truncated { need: 20, have: 19 })
        );
        h[0] = 0x65;
        assert_eq!(
            decrement_ttl_in_place(&mut h),
            Err(WireError::BadVersion { version: 6 })
        );
        h[0] = 0x44;
        assert_eq!(
            decrement_ttl_in_place(&mut h),
            Err(WireError::BadHeaderLen {
                header_len: 16,
                min: 20
            })
        );
        h[0] = 0x46;
        assert_eq!(
            decrement_ttl_in_place(&mut h),
            Err(WireError::Truncated { need: 24, have: 20 })
        );
    }

    fn header_strategy() -> impl Strategy<Value = Vec<u8>> {
        (0usize..=10, proptest::collection::vec(any::<u8>(), 60)).prop_map(|(opt_words, mut b)| {
            let ihl = 5 + opt_words;
            b.truncate(ihl * 4);
            b[0] = 0x40 | u8::try_from(ihl).unwrap();
            b[10] = 0;
            b[11] = 0;
            let c = checksum(&b);
            b[10..12].copy_from_slice(&c.to_be_bytes());
            b
        })
    }

    proptest! {
        /// Incremental TTL decrement == full recompute, for random valid headers.
        #[test]
        fn incremental_ttl_matches_full(mut h in header_strategy()) {
            let ttl = h[8];
            let out = decrement_ttl_in_place(&mut h).unwrap();
            if ttl <= 1 {
                prop_assert_eq!(out, TtlOutcome::Expired { ttl });
            } else {
                prop_assert_eq!(out, TtlOutcome::Forwarded { ttl: ttl - 1 });
                prop_assert_eq!(h[8], ttl - 1);
                let incremental = u16::from_be_bytes([h[10], h[11]]);
                h[10] = 0;
                h[11] = 0;
                prop_assert_eq!(incremental, checksum(&h));
            }
        }

        /// Incremental update of any 16- or 32-bit field == full recompute.
        #[test]
        fn incremental_field_matches_full(
            mut h in header_strategy(),
            word in 0usize..5,
            new16 in any::<u16>(),
            new32 in any::<u32>(),
        ) {
            // Any aligned word except the checksum itself (offset 10).
            let off = [0usize, 2, 4, 6, 8][word];
            let hc = u16::from_be_bytes([h[10], h[11]]);
            let old = u16::from_be_bytes([h[off], h[off + 1]]);
            h[off..off + 2].copy_from_slice(&new16.to_be_bytes());
            let inc = update16(hc, old, new16);
            h[10] = 0;
            h[11] = 0;
            prop_assert_eq!(inc, checksum(&h));
            h[10..12].copy_from_slice(&inc.to_be_bytes());

            let old32 = u32::from_be_bytes([h[12], h[13], h[14], h[15]]);
            h[12..16].copy_from_slice(&new32.to_be_bytes());
            let inc = update32(inc, old32, new32);
            h[10] = 0;
            h[11] = 0;
            prop_assert_eq!(inc, checksum(&h));
        }

        /// Word-at-a-time sum == the textbook 16-bit loop.
        #[test]
        fn sum_matches_reference(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut r: u64 = 0;
            for c in data.chunks(2) {
                let hi = u64::from(c[0]) << 8;
                let lo = c.get(1).copied().map_or(0, u64::from);
                r += hi | lo;
            }
            prop_assert_eq!(fold(sum(&data, 0)), fold(r));
        }

        #[test]
        fn decrement_never_panics(mut data in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = decrement_ttl_in_place(&mut data);
        }
    }
}
