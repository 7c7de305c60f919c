//! Mbuf pools: ordinary, and with data buffers in caller-provided memory.

use std::any::Any;
use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::{sys, Eal, ExtMemRegistration, IovaMode, Mbuf, MbufArray, BAD_IOVA};

/// Errors creating or using a pool.
#[derive(Debug, thiserror::Error)]
pub enum MempoolError {
    /// The name is empty, too long for DPDK (at most 25 bytes) or contains NUL.
    #[error("mempool name {name:?} is invalid (1..=25 bytes, no NUL)")]
    BadName {
        /// The name given.
        name: String,
    },
    /// The external memory area cannot hold the requested buffers.
    #[error(
        "external memory of {len} bytes cannot hold {count} buffers of {elt_size} bytes \
         (element size must be at least {min} and a multiple of 64)"
    )]
    BadExtMem {
        /// Area length.
        len: usize,
        /// Buffers requested.
        count: u32,
        /// Bytes per buffer.
        elt_size: u16,
        /// Smallest usable element (headroom + 64 bytes of data).
        min: u16,
    },
    /// The external area is not (entirely) inside the registration given.
    #[error(
        "external memory at {ptr:#x} of {len} bytes is not inside the registered area at \
         {reg_base:#x} of {reg_len} bytes"
    )]
    NotRegistered {
        /// Area start.
        ptr: usize,
        /// Area length.
        len: usize,
        /// Registered area start.
        reg_base: usize,
        /// Registered area length.
        reg_len: usize,
    },
    /// The area's IOVAs are not contiguous (IOVA-as-PA mode over hugepages that are not
    /// physically adjacent). DPDK gives element `i` the IOVA `iova + i * elt_size`, and the
    /// fixed layout (element `i` at `ptr + i * elt_size`) puts elements across page borders, so
    /// a device would write part of a packet to the wrong physical page.
    #[error(
        "external memory at {ptr:#x} of {len} bytes is not IOVA-contiguous (first break at \
         offset {offset:#x}); its elements cross page borders, so a device could not DMA into \
         them: run the EAL with --iova-mode=va (needs vfio-pci with an IOMMU for PCI NICs)"
    )]
    IovaNotContiguous {
        /// Area start.
        ptr: usize,
        /// Area length.
        len: usize,
        /// Offset, from the area start, of the first byte whose IOVA does not follow on.
        offset: usize,
    },
    /// DPDK refused to create the pool.
    #[error("creating mempool {name:?} failed: {message} (rte_errno {errno})")]
    Create {
        /// Pool name.
        name: String,
        /// rte_errno.
        errno: i32,
        /// DPDK's message.
        message: String,
    },
}

/// A caller-provided memory area that becomes the data buffers of an extbuf pool: element `i`
/// is `ptr + i * elt_size`.
#[derive(Debug, Clone, Copy)]
pub struct ExtMem {
    /// Start of the area.
    pub ptr: NonNull<u8>,
    /// Length of the area in bytes.
    pub len: usize,
    /// Bytes per element (one packet buffer, headroom included).
    pub elt_size: u16,
}

/// An mbuf pool. Frees the pool on drop, unless mbufs are still out (then the pool is leaked,
/// with a message, rather than freed under them).
pub struct Mempool {
    ptr: NonNull<sys::rte_mempool>,
    name: String,
    size: u32,
    ext: Option<ExtMem>,
    ext_iova: Option<u64>,
    // Dropped after the pool is freed and before `owner` (the mapping): unregister, then unmap.
    reg: Option<Arc<ExtMemRegistration>>,
    owner: Option<Box<dyn Any + Send + Sync>>,
    _eal: Eal,
}

impl std::fmt::Debug for Mempool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mempool")
            .field("name", &self.name)
            .field("size", &self.size)
            .field("ext", &self.ext)
            .field("ext_iova", &self.ext_iova)
            .field("registered", &self.reg.is_some())
            .finish_non_exhaustive()
    }
}

// SAFETY: rte_mempool get/put are multi-thread safe (default ring ops are MP/MC); the pool
// itself is immutable after creation.
unsafe impl Send for Mempool {}
// SAFETY: as above.
unsafe impl Sync for Mempool {}

fn cname(name: &str) -> Result<CString, MempoolError> {
    if name.is_empty() || name.len() > 25 {
        return Err(MempoolError::BadName { name: name.into() });
    }
    CString::new(name).map_err(|_| MempoolError::BadName { name: name.into() })
}

fn create_failed(name: &str) -> MempoolError {
    let errno = crate::rte_errno();
    MempoolError::Create {
        name: name.into(),
        errno,
        message: crate::strerror(errno),
    }
}

impl Mempool {
    /// An ordinary pktmbuf pool of `n` mbufs with `data_room` bytes each (headroom included).
    pub fn new(
        eal: &Eal,
        name: &str,
        n: u32,
        cache: u32,
        data_room: u16,
        socket: i32,
    ) -> Result<Self, MempoolError> {
        let c = cname(name)?;
        // SAFETY: c is a valid C string; the EAL is initialised (eal exists).
        let p = unsafe { sys::rte_pktmbuf_pool_create(c.as_ptr(), n, cache, 0, data_room, socket) };
        let ptr = NonNull::new(p).ok_or_else(|| create_failed(name))?;
        Ok(Self {
            ptr,
            name: name.into(),
            size: n,
            ext: None,
            ext_iova: None,
            reg: None,
            owner: None,
            _eal: eal.clone(),
        })
    }

    /// A pool of `n` mbufs whose headers live in DPDK memory and whose **data buffers** are the
    /// elements of `ext` (`rte_pktmbuf_pool_create_extbuf`, pinned external buffers). Mbuf `k`
    /// of the pool keeps the same element for its whole life. `owner` is kept alive as long
    /// as the pool (e.g. the mapping `ext` points into).
    ///
    /// The memory is not registered with DPDK, so only devices that do not DMA (vdevs) can
    /// use the pool. Each buffer's IOVA is its virtual address in IOVA-as-VA mode (the
    /// [`crate::EalBuilder`] default) and [`BAD_IOVA`] in IOVA-as-PA mode (the physical address
    /// is unknown here). For a PCI NIC, register the area and use
    /// [`Mempool::new_extbuf_registered`].
    ///
    /// # Safety
    /// `ext.ptr..ext.ptr+ext.len` must be readable and writable memory that stays mapped for as
    /// long as this pool and any mbuf from it exist (`owner` holding the mapping satisfies that),
    /// and nothing may treat it as ordinary Rust-owned memory while DPDK uses it.
    pub unsafe fn new_extbuf(
        eal: &Eal,
        name: &str,
        n: u32,
        cache: u32,
        ext: ExtMem,
        socket: i32,
        owner: Option<Box<dyn Any + Send + Sync>>,
    ) -> Result<Self, MempoolError> {
        let iova = match eal.iova_mode() {
            IovaMode::Va => ext.ptr.as_ptr() as u64,
            IovaMode::Pa | IovaMode::Unknown(_) => BAD_IOVA,
        };
        // SAFETY: forwarded from this function's contract.
        unsafe { Self::create_extbuf(eal, name, n, cache, ext, iova, socket, owner, None) }
    }

    /// Like [`Mempool::new_extbuf`], over an area registered with DPDK: each mbuf's `buf_iova`
    /// is the registration's IOVA of its buffer ([`ExtMemRegistration::iova_of`]), so any port
    /// the registration was DMA-mapped for can receive into the pool. The pool keeps `reg`
    /// alive, so the area is unregistered only after the pool is freed (and before `owner` is
    /// dropped).
    ///
    /// Fails with [`MempoolError::NotRegistered`] when `ext` is not inside `reg`, and with
    /// [`MempoolError::IovaNotContiguous`] when the IOVAs of `ext` are not contiguous (possible
    /// only in IOVA-as-PA mode): DPDK takes one IOVA per area and elements cross page borders.
    ///
    /// # Safety
    /// As for [`Mempool::new_extbuf`]: the area stays mapped, readable and writable, while the
    /// pool or any mbuf of it exists, and is not treated as Rust-owned memory.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn new_extbuf_registered(
        eal: &Eal,
        name: &str,
        n: u32,
        cache: u32,
        ext: ExtMem,
        reg: Arc<ExtMemRegistration>,
        socket: i32,
        owner: Option<Box<dyn Any + Send + Sync>>,
    ) -> Result<Self, MempoolError> {
        let ptr = ext.ptr.as_ptr();
        if !reg.contains(ptr, ext.len) {
            return Err(MempoolError::NotRegistered {
                ptr: ptr as usize,
                len: ext.len,
                reg_base: reg.base().as_ptr() as usize,
                reg_len: reg.len(),
            });
        }
        let Some(iova) = reg.contiguous_iova(ptr, ext.len) else {
            let start = ptr as usize - reg.base().as_ptr() as usize;
            let offset = reg
                .iova_runs()
                .iter()
                .map(|r| r.offset + r.len)
                .find(|&end| end > start)
                .map_or(0, |end| end - start);
            return Err(MempoolError::IovaNotContiguous {
                ptr: ptr as usize,
                len: ext.len,
                offset,
            });
        };
        // SAFETY: forwarded from this function's contract.
        unsafe { Self::create_extbuf(eal, name, n, cache, ext, iova, socket, owner, Some(reg)) }
    }

    /// Creates an extbuf pool whose area starts at IOVA `iova` (element `i` at
    /// `iova + i * elt_size`).
    ///
    /// # Safety
    /// As for [`Mempool::new_extbuf`].
    #[allow(clippy::too_many_arguments)]
    unsafe fn create_extbuf(
        eal: &Eal,
        name: &str,
        n: u32,
        cache: u32,
        ext: ExtMem,
        iova: u64,
        socket: i32,
        owner: Option<Box<dyn Any + Send + Sync>>,
        reg: Option<Arc<ExtMemRegistration>>,
    ) -> Result<Self, MempoolError> {
        let c = cname(name)?;
        let min = 128 + 64;
        let fits = usize::from(ext.elt_size)
            .checked_mul(n as usize)
            .is_some_and(|need| need <= ext.len);
        if ext.elt_size < min || ext.elt_size % 64 != 0 || !fits || n == 0 {
            return Err(MempoolError::BadExtMem {
                len: ext.len,
                count: n,
                elt_size: ext.elt_size,
                min,
            });
        }
        let em = sys::rte_pktmbuf_extmem {
            buf_ptr: ext.ptr.as_ptr().cast(),
            buf_iova: iova,
            buf_len: ext.len,
            elt_size: ext.elt_size,
        };
        // SAFETY: c is a valid C string; em describes memory the caller guarantees (see the
        // function's contract); DPDK copies em during the call.
        let p = unsafe {
            sys::rte_pktmbuf_pool_create_extbuf(
                c.as_ptr(),
                n,
                cache,
                0,
                ext.elt_size,
                socket,
                &em,
                1,
            )
        };
        let ptr = NonNull::new(p).ok_or_else(|| create_failed(name))?;
        Ok(Self {
            ptr,
            name: name.into(),
            size: n,
            ext: Some(ext),
            ext_iova: Some(iova),
            reg,
            owner,
            _eal: eal.clone(),
        })
    }

    /// The raw pool pointer (for rx queue setup and hot-path allocation).
    pub fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.ptr.as_ptr()
    }

    /// Pool name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of mbufs the pool was created with.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The external area, for extbuf pools.
    pub fn ext_mem(&self) -> Option<ExtMem> {
        self.ext
    }

    /// IOVA of the external area's first byte, for extbuf pools ([`BAD_IOVA`] when unknown).
    pub fn ext_iova(&self) -> Option<u64> {
        self.ext_iova
    }

    /// The registration the pool's area belongs to, for pools made with
    /// [`Mempool::new_extbuf_registered`].
    pub fn registration(&self) -> Option<&Arc<ExtMemRegistration>> {
        self.reg.as_ref()
    }

    /// Mbufs available (per-lcore caches included).
    pub fn avail_count(&self) -> u32 {
        // SAFETY: the pool is valid while self lives.
        unsafe { sys::rte_mempool_avail_count(self.ptr.as_ptr()) }
    }

    /// Mbufs out of the pool.
    pub fn in_use_count(&self) -> u32 {
        // SAFETY: the pool is valid while self lives.
        unsafe { sys::rte_mempool_in_use_count(self.ptr.as_ptr()) }
    }

    /// Whether every mbuf is back in the pool.
    pub fn is_full(&self) -> bool {
        self.avail_count() == self.size
    }

    /// Data room of each mbuf (headroom included).
    pub fn data_room(&self) -> u16 {
        // SAFETY: the pool is valid and is a pktmbuf pool.
        unsafe { sys::netvm_rte_pktmbuf_data_room_size(self.ptr.as_ptr()) }
    }

    /// One mbuf, reset (default headroom, zero length), or None if the pool is empty.
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool is valid; a non-null result is an mbuf we now own.
        let p = unsafe { sys::netvm_rte_pktmbuf_alloc(self.ptr.as_ptr()) };
        // SAFETY: p is a freshly allocated mbuf owned by nobody else.
        NonNull::new(p).map(|p| unsafe { Mbuf::from_raw(p) })
    }

    /// Fills `count` more entries of `arr` (all or nothing). Returns false if the pool or the
    /// array has too little room.
    pub fn alloc_bulk<const N: usize>(&self, arr: &mut MbufArray<N>, count: usize) -> bool {
        if count > arr.free() {
            return false;
        }
        let Ok(c) = u32::try_from(count) else {
            return false;
        };
        let old = arr.len();
        let spare = arr.spare_mut();
        // SAFETY: spare has room for count pointers; on success DPDK wrote count owned mbufs.
        let ret =
            unsafe { sys::netvm_rte_pktmbuf_alloc_bulk(self.ptr.as_ptr(), spare.as_mut_ptr(), c) };
        if ret != 0 {
            return false;
        }
        // SAFETY: entries old..old+count were filled with owned mbufs just above.
        unsafe { arr.set_len(old + count) };
        true
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        let out = self.in_use_count();
        if out != 0 {
            eprintln!(
                "dpdk: mempool {} dropped with {out} mbufs still out; leaking it instead of \
                 freeing memory under them",
                self.name
            );
            // Devices may still write into the mbufs that are out: keep the area registered
            // (and DMA-mapped) and mapped.
            if let Some(r) = self.reg.take() {
                std::mem::forget(r);
            }
            if let Some(o) = self.owner.take() {
                std::mem::forget(o);
            }
            return;
        }
        // SAFETY: no mbuf is out, so nothing refers to the pool any more; freed once.
        unsafe { sys::rte_mempool_free(self.ptr.as_ptr()) };
    }
}
