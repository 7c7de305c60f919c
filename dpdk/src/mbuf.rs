//! Owning mbufs and fixed-size bursts of them.

use std::ptr::NonNull;

use crate::sys;

/// An owning reference to one `rte_mbuf` (single segment as netvm uses them); freed back to
/// its pool on drop.
#[derive(Debug)]
pub struct Mbuf(NonNull<sys::rte_mbuf>);

// SAFETY: an mbuf is a plain memory object owned by whoever holds the pointer; freeing it from
// another thread is allowed by DPDK (mempool put is multi-producer safe).
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Takes ownership of a raw mbuf.
    ///
    /// # Safety
    /// `ptr` must be a valid mbuf allocated from a live DPDK mempool, owned by the caller and
    /// not owned anywhere else afterwards.
    pub unsafe fn from_raw(ptr: NonNull<sys::rte_mbuf>) -> Self {
        Self(ptr)
    }

    /// Gives up ownership without freeing.
    pub fn into_raw(self) -> NonNull<sys::rte_mbuf> {
        let p = self.0;
        std::mem::forget(self);
        p
    }

    /// The raw pointer (ownership stays here).
    pub fn as_ptr(&self) -> *mut sys::rte_mbuf {
        self.0.as_ptr()
    }

    fn raw(&self) -> &sys::rte_mbuf {
        // SAFETY: we own a valid mbuf (from_raw's contract); mbuf headers live in DPDK-private
        // memory that nothing else mutates while we own it.
        unsafe { self.0.as_ref() }
    }

    fn raw_mut(&mut self) -> &mut sys::rte_mbuf {
        // SAFETY: as in raw(); &mut self gives exclusive access.
        unsafe { self.0.as_mut() }
    }

    /// Offset of the packet's first byte from the buffer start.
    pub fn data_off(&self) -> u16 {
        self.raw().data_off
    }

    /// Length of this segment's data.
    pub fn data_len(&self) -> u16 {
        self.raw().data_len
    }

    /// Length of the whole packet.
    pub fn pkt_len(&self) -> u32 {
        self.raw().pkt_len
    }

    /// Size of the buffer the mbuf points at.
    pub fn buf_len(&self) -> u16 {
        self.raw().buf_len
    }

    /// Input port.
    pub fn port(&self) -> u16 {
        self.raw().port
    }

    /// Start of the data buffer (for external-buffer pools: inside the caller's memory area).
    pub fn buf_addr(&self) -> *mut u8 {
        self.raw().buf_addr.cast()
    }

    /// IO address of the data buffer, what a device DMAs to (`buf_iova`).
    pub fn buf_iova(&self) -> u64 {
        self.raw().buf_iova
    }

    /// Sets offset and length of a single-segment packet, bounded by the buffer size.
    /// Returns false (and changes nothing) if they do not fit.
    pub fn set_data(&mut self, off: u16, len: u16) -> bool {
        let buf_len = self.buf_len();
        if u32::from(off) + u32::from(len) > u32::from(buf_len) {
            return false;
        }
        let m = self.raw_mut();
        m.data_off = off;
        m.data_len = len;
        m.pkt_len = u32::from(len);
        true
    }

    /// The packet bytes.
    pub fn data(&self) -> &[u8] {
        let m = self.raw();
        // SAFETY: buf_addr points at buf_len bytes owned by this mbuf; DPDK keeps
        // data_off + data_len <= buf_len, and set_data enforces it.
        unsafe {
            std::slice::from_raw_parts(
                m.buf_addr.cast::<u8>().add(usize::from(m.data_off)),
                usize::from(m.data_len),
            )
        }
    }

    /// The packet bytes, writable.
    pub fn data_mut(&mut self) -> &mut [u8] {
        let m = self.raw_mut();
        // SAFETY: as in data(); &mut self gives exclusive access to the buffer we own.
        unsafe {
            std::slice::from_raw_parts_mut(
                m.buf_addr.cast::<u8>().add(usize::from(m.data_off)),
                usize::from(m.data_len),
            )
        }
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own a valid mbuf (from_raw's contract) and free it exactly once.
        unsafe { sys::netvm_rte_pktmbuf_free(self.0.as_ptr()) }
    }
}

/// A burst of up to `N` owned mbufs in a fixed array (no allocation). Mbufs still in the array
/// are freed on drop.
#[derive(Debug)]
pub struct MbufArray<const N: usize> {
    ptrs: [*mut sys::rte_mbuf; N],
    len: usize,
}

// SAFETY: the array owns its mbufs exclusively (see Mbuf's Send).
unsafe impl<const N: usize> Send for MbufArray<N> {}

impl<const N: usize> Default for MbufArray<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> MbufArray<N> {
    /// An empty burst.
    pub const fn new() -> Self {
        Self {
            ptrs: [std::ptr::null_mut(); N],
            len: 0,
        }
    }

    /// Number of mbufs held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Room left.
    pub fn free(&self) -> usize {
        N - self.len
    }

    /// Appends an mbuf; gives it back if full.
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        if self.len == N {
            return Err(m);
        }
        self.ptrs[self.len] = m.into_raw().as_ptr();
        self.len += 1;
        Ok(())
    }

    /// Removes and returns the last mbuf.
    pub fn pop(&mut self) -> Option<Mbuf> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        let p = self.ptrs[self.len];
        // SAFETY: entries below len are owned, non-null mbufs (push/set_len contracts).
        NonNull::new(p).map(|p| unsafe { Mbuf::from_raw(p) })
    }

    /// The raw pointers held (owned by the array).
    pub fn as_ptrs(&self) -> &[*mut sys::rte_mbuf] {
        &self.ptrs[..self.len]
    }

    /// Spare room for an FFI call to fill (e.g. rx_burst); follow with [`MbufArray::set_len`].
    pub fn spare_mut(&mut self) -> &mut [*mut sys::rte_mbuf] {
        &mut self.ptrs[self.len..]
    }

    /// Declares how many entries are owned after filling the spare room.
    ///
    /// # Safety
    /// Entries `len()..new_len` must have been filled with valid owned mbufs; `new_len <= N`.
    pub unsafe fn set_len(&mut self, new_len: usize) {
        debug_assert!(new_len <= N);
        self.len = new_len;
    }

    /// Drops ownership of the first `n` entries (they were handed to DPDK, e.g. by tx_burst)
    /// and moves the rest to the front.
    pub(crate) fn consume_front(&mut self, n: usize) {
        let n = n.min(self.len);
        self.ptrs.copy_within(n..self.len, 0);
        self.len -= n;
    }

    /// Takes every held pointer out as raw, ownership passing to the caller.
    pub fn drain_raw(&mut self, mut f: impl FnMut(NonNull<sys::rte_mbuf>)) {
        for &p in &self.ptrs[..self.len] {
            if let Some(p) = NonNull::new(p) {
                f(p);
            }
        }
        self.len = 0;
    }

    /// Frees every held mbuf.
    pub fn clear(&mut self) {
        if self.len > 0 {
            let n = u32::try_from(self.len).unwrap_or(u32::MAX);
            // SAFETY: entries below len are owned valid mbufs; freed once, then forgotten.
            unsafe { sys::netvm_rte_pktmbuf_free_bulk(self.ptrs.as_mut_ptr(), n) };
            self.len = 0;
        }
    }
}

impl<const N: usize> Drop for MbufArray<N> {
    fn drop(&mut self) {
        self.clear();
    }
}
