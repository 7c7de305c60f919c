//! Non-panicking big-endian field access.
//!
//! Every accessor of the packet views goes through these helpers. The views have
//! validated their lengths already, so the fallbacks (0 on read, no-op on write,
//! empty slice) are never taken for a well-behaved buffer; they exist so that no
//! accessor can panic even if a buffer type's `AsRef` were inconsistent. A
//! bounds-checked `get` costs the same branch as indexing.

use core::ops::Range;

#[inline(always)]
pub(crate) fn rd8(b: &[u8], off: usize) -> u8 {
    b.get(off).copied().unwrap_or(0)
}

#[inline(always)]
pub(crate) fn rd16(b: &[u8], off: usize) -> u16 {
    match b.get(off..off.wrapping_add(2)) {
        Some(&[x, y]) => u16::from_be_bytes([x, y]),
        _ => 0,
    }
}

#[inline(always)]
pub(crate) fn rd32(b: &[u8], off: usize) -> u32 {
    match b.get(off..off.wrapping_add(4)) {
        Some(&[w, x, y, z]) => u32::from_be_bytes([w, x, y, z]),
        _ => 0,
    }
}

#[inline(always)]
pub(crate) fn wr8(b: &mut [u8], off: usize, v: u8) {
    if let Some(x) = b.get_mut(off) {
        *x = v;
    }
}

#[inline(always)]
pub(crate) fn wr16(b: &mut [u8], off: usize, v: u16) {
    if let Some(x) = b.get_mut(off..off.wrapping_add(2)) {
        x.copy_from_slice(&v.to_be_bytes());
    }
}

#[inline(always)]
pub(crate) fn wr32(b: &mut [u8], off: usize, v: u32) {
    if let Some(x) = b.get_mut(off..off.wrapping_add(4)) {
        x.copy_from_slice(&v.to_be_bytes());
    }
}

#[inline(always)]
pub(crate) fn sub(b: &[u8], r: Range<usize>) -> &[u8] {
    b.get(r).unwrap_or(&[])
}

#[inline(always)]
pub(crate) fn sub_mut(b: &mut [u8], r: Range<usize>) -> &mut [u8] {
    match b.get_mut(r) {
        Some(s) => s,
        None => &mut [],
    }
}

/// Swaps the `n`-byte fields at `a` and `b` (non-overlapping) if both are in bounds.
#[inline(always)]
pub(crate) fn swap_fields(buf: &mut [u8], a: usize, b: usize, n: usize) {
    if a.checked_add(n).is_some_and(|e| e <= b) && b.checked_add(n).is_some_and(|e| e <= buf.len())
    {
        let (lo, hi) = buf.split_at_mut(b);
        if let (Some(x), Some(y)) = (lo.get_mut(a..a + n), hi.get_mut(..n)) {
            x.swap_with_slice(y);
        }
    }
}
