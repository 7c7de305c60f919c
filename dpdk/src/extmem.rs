//! Caller-mapped memory made DMA-ready: registered with DPDK (`rte_extmem_register`) with one
//! IOVA per page, and mapped for the devices that will DMA into it (`rte_dev_dma_map`).
//!
//! An extbuf [`crate::Mempool`] over memory DPDK did not allocate (a trust domain's hugetlbfs
//! region file) works with virtual devices as is, but a PCI NIC writes packets to the *IO
//! virtual address* (IOVA) of each buffer. [`ExtMemRegistration`] computes those IOVAs from the
//! EAL's IOVA mode, tells DPDK about them, and maps the area into the IOMMU of each port that
//! needs it.
//!
//! Teardown order (what [`Drop`] does, and what a caller should do explicitly):
//! 1. stop the ports (no more DMA), 2. [`ExtMemRegistration::dma_unmap`] each port, 3. close
//!    the ports, 4. free the pools over the area, 5. drop the registration
//!    (`rte_extmem_unregister`), 6. unmap the memory.
//!
//! A registration dropped while ports it mapped are still open unmaps them itself. A port
//! closed *before* being unmapped cannot be reached any more: Drop skips it with a warning on
//! stderr (it never touches a freed device). For a vdev nothing was mapped, so nothing is lost;
//! for a PCI device under VFIO the mapping stays in DPDK's VFIO container (its pages stay
//! pinned) until the process exits. So: unmap before closing a PCI port.

use std::ffi::CStr;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::ptr::NonNull;
use std::sync::Mutex;

use crate::{sys, Eal, IovaMode, Port, PortError};

/// DPDK's `RTE_BAD_IOVA`: "no IO address" (a cast macro bindgen cannot translate).
pub const BAD_IOVA: u64 = u64::MAX;

/// Where physical addresses come from in IOVA-as-PA mode.
const PAGEMAP: &str = "/proc/self/pagemap";

/// Errors from registering, mapping and unmapping external memory.
#[derive(Debug, thiserror::Error)]
pub enum ExtMemError {
    /// The page size is not a power of two of at least 4096 bytes.
    #[error("page size {page_size} is not a power of two of at least 4096 bytes")]
    BadPageSize {
        /// The page size given.
        page_size: usize,
    },
    /// The base address is not aligned to the page size.
    #[error("base address {base:#x} is not aligned to the page size {page_size}")]
    Unaligned {
        /// The base address given.
        base: usize,
        /// The page size given.
        page_size: usize,
    },
    /// The length is zero.
    #[error("the area to register is empty (length 0)")]
    ZeroLength,
    /// The length is not a whole number of pages.
    #[error("length {len} is not a multiple of the page size {page_size}")]
    LengthNotPageMultiple {
        /// The length given.
        len: usize,
        /// The page size given.
        page_size: usize,
    },
    /// The area wraps around the address space or has more pages than DPDK can count.
    #[error(
        "area at {base:#x} of {len} bytes is out of range (address overflow or over 2^32 pages)"
    )]
    OutOfRange {
        /// The base address given.
        base: usize,
        /// The length given.
        len: usize,
    },
    /// The EAL reports an IOVA mode this crate does not handle.
    #[error("the EAL reports IOVA mode {mode:?}, neither VA nor PA")]
    UnknownIovaMode {
        /// The mode reported.
        mode: IovaMode,
    },
    /// IOVA-as-PA needs physical addresses that stay put: hugepages. Ordinary pages
    /// (/dev/shm) may be swapped or migrated under the device.
    #[error(
        "the EAL runs in IOVA-as-PA mode, which needs hugepage-backed memory with stable \
         physical addresses; page size {page_size} is the system page size (e.g. a /dev/shm \
         fallback): map the area from hugetlbfs, or run the EAL with --iova-mode=va"
    )]
    PaNeedsHugepages {
        /// The page size given.
        page_size: usize,
    },
    /// IOVA-as-PA mode: /proc/self/pagemap could not be read, so the physical address of a
    /// page is unknown. We refuse rather than register wrong IOVAs.
    #[error(
        "the EAL runs in IOVA-as-PA mode, so page IOVAs are physical addresses read from \
         {PAGEMAP}, which could not be read at page {addr:#x}; run with CAP_SYS_ADMIN, or run \
         the EAL with --iova-mode=va (the default; PCI NICs then need vfio-pci with an IOMMU)"
    )]
    PagemapUnreadable {
        /// The page whose entry was being read.
        addr: usize,
        /// The read error.
        #[source]
        source: std::io::Error,
    },
    /// IOVA-as-PA mode: the pagemap entry of a page has no frame number (the page is not
    /// present, or the kernel hides frame numbers from processes without CAP_SYS_ADMIN).
    #[error(
        "the EAL runs in IOVA-as-PA mode but {PAGEMAP} gives no physical frame for page \
         {addr:#x} (entry {entry:#018x}): frame numbers are hidden without CAP_SYS_ADMIN; run \
         as root, or run the EAL with --iova-mode=va"
    )]
    PagemapNoFrame {
        /// The page.
        addr: usize,
        /// The raw pagemap entry.
        entry: u64,
    },
    /// `rte_extmem_register` failed (EEXIST: the area, or part of it, is already registered).
    #[error(
        "rte_extmem_register of {len} bytes at {base:#x} failed: {message} (rte_errno {errno})"
    )]
    Register {
        /// The base address.
        base: usize,
        /// The length.
        len: usize,
        /// rte_errno.
        errno: i32,
        /// DPDK's message.
        message: String,
    },
    /// The port's device could not be looked up.
    #[error("cannot find the device of port {port}")]
    Device {
        /// Port name.
        port: String,
        /// The lookup failure.
        #[source]
        source: PortError,
    },
    /// `rte_dev_dma_map` failed for a reason other than "this bus needs no DMA mapping".
    #[error(
        "DMA-mapping {len} bytes at {addr:#x} (IOVA {iova:#x}) for port {port} ({port_id}) \
         failed: {message} (rte_errno {errno})"
    )]
    DmaMap {
        /// Port name.
        port: String,
        /// Port id.
        port_id: u16,
        /// Start of the run being mapped.
        addr: usize,
        /// Its IOVA.
        iova: u64,
        /// Its length.
        len: usize,
        /// rte_errno.
        errno: i32,
        /// DPDK's message.
        message: String,
    },
    /// `rte_dev_dma_unmap` failed.
    #[error(
        "DMA-unmapping {len} bytes at {addr:#x} (IOVA {iova:#x}) for port {port} failed: \
         {message} (rte_errno {errno})"
    )]
    DmaUnmap {
        /// Port name.
        port: String,
        /// Start of the run being unmapped.
        addr: usize,
        /// Its IOVA.
        iova: u64,
        /// Its length.
        len: usize,
        /// rte_errno.
        errno: i32,
        /// DPDK's message.
        message: String,
    },
}

/// A stretch of the registered area whose IOVAs are contiguous: bytes
/// `offset..offset + len` have IOVA `iova + (byte - offset)`. In IOVA-as-VA mode the whole area
/// is one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IovaRun {
    /// Offset of the run from the start of the area.
    pub offset: usize,
    /// Length in bytes.
    pub len: usize,
    /// IOVA of the run's first byte.
    pub iova: u64,
}

/// What [`ExtMemRegistration::dma_map`] did for a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmaMapped {
    /// The device's bus mapped the area for DMA (a PCI device bound to vfio-pci, or a vdev
    /// whose driver has a DMA hook, such as virtio_user over vhost-vdpa). Undone by
    /// [`ExtMemRegistration::dma_unmap`] or on drop.
    Mapped,
    /// The device does not DMA through an IOMMU, so there was nothing to map: its bus has no
    /// DMA map (DPDK answers ENOTSUP), or it is a vdev whose driver has no DMA hook (DPDK's
    /// vdev bus then reports success without doing anything; we still undo the call on drop,
    /// which is equally a no-op).
    NotNeeded,
}

/// vdev drivers that implement DPDK's vdev `dma_map` hook in 22.11: a successful map on them
/// is a real mapping. Every other vdev driver's "success" is the vdev bus doing nothing.
const VDEV_DRIVERS_WITH_DMA_HOOK: &[&str] = &["net_virtio_user"];

/// One port the area was mapped for: found again by name when unmapping, so that a port
/// closed in the meantime is skipped instead of its freed device being touched.
#[derive(Debug)]
struct MappedPort {
    name: String,
    id: u16,
    outcome: DmaMapped,
    /// Whether DPDK accepted the map calls (false after ENOTSUP): then they are undone.
    undo: bool,
}

/// Memory the caller mapped, registered with DPDK with one IOVA per page, and DMA-mapped for
/// the ports that asked. Unmaps every port still open and unregisters on drop (see the module
/// docs for the order).
#[derive(Debug)]
pub struct ExtMemRegistration {
    base: NonNull<u8>,
    len: usize,
    page_size: usize,
    mode: IovaMode,
    iovas: Box<[u64]>,
    runs: Box<[IovaRun]>,
    mapped: Mutex<Vec<MappedPort>>,
    _eal: Eal,
}

// SAFETY: the registration only holds the address of memory (never dereferenced after
// register) and DPDK handles; rte_extmem_*, rte_dev_dma_* are thread-safe (DPDK takes its
// memory-config lock), and the list of mapped ports is behind a Mutex.
unsafe impl Send for ExtMemRegistration {}
// SAFETY: as above; every &self method only reads immutable fields or locks `mapped`.
unsafe impl Sync for ExtMemRegistration {}

/// Checks the geometry of an area; returns its page count.
fn validate(base: usize, len: usize, page_size: usize) -> Result<u32, ExtMemError> {
    if page_size < 4096 || !page_size.is_power_of_two() {
        return Err(ExtMemError::BadPageSize { page_size });
    }
    if base % page_size != 0 {
        return Err(ExtMemError::Unaligned { base, page_size });
    }
    if len == 0 {
        return Err(ExtMemError::ZeroLength);
    }
    if len % page_size != 0 {
        return Err(ExtMemError::LengthNotPageMultiple { len, page_size });
    }
    if base.checked_add(len).is_none() {
        return Err(ExtMemError::OutOfRange { base, len });
    }
    u32::try_from(len / page_size).map_err(|_| ExtMemError::OutOfRange { base, len })
}

/// Groups per-page IOVAs into runs of contiguous IOVA.
fn contiguous_runs(iovas: &[u64], page_size: usize) -> Vec<IovaRun> {
    let mut runs: Vec<IovaRun> = Vec::new();
    for (i, &iova) in iovas.iter().enumerate() {
        if let Some(last) = runs.last_mut() {
            let next = u64::try_from(last.len)
                .ok()
                .and_then(|l| last.iova.checked_add(l));
            if next == Some(iova) {
                last.len += page_size;
                continue;
            }
        }
        runs.push(IovaRun {
            offset: i * page_size,
            len: page_size,
            iova,
        });
    }
    runs
}

/// The physical address of the 4 KiB-page-aligned `vaddr` from its pagemap entry: bit 63 is
/// "present", bits 0..=54 the frame number (zero when the kernel hides it).
fn pagemap_phys(entry: u64, vaddr: usize, sys_page: usize) -> Result<u64, ExtMemError> {
    const PRESENT: u64 = 1 << 63;
    const PFN_MASK: u64 = (1 << 55) - 1;
    let pfn = entry & PFN_MASK;
    if entry & PRESENT == 0 || pfn == 0 {
        return Err(ExtMemError::PagemapNoFrame { addr: vaddr, entry });
    }
    let in_page = u64::try_from(vaddr % sys_page).unwrap_or(0);
    pfn.checked_mul(u64::try_from(sys_page).unwrap_or(4096))
        .map(|pa| pa + in_page)
        .ok_or(ExtMemError::PagemapNoFrame { addr: vaddr, entry })
}

/// The system (base) page size.
fn sys_page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(p).ok().filter(|&p| p > 0).unwrap_or(4096)
}

/// Physical addresses of each page of the area, from /proc/self/pagemap.
///
/// # Safety
/// Every page of `base..base + pages * page_size` must be mapped and readable (each is read
/// once so that it is present).
unsafe fn physical_pages(
    base: usize,
    pages: u32,
    page_size: usize,
) -> Result<Vec<u64>, ExtMemError> {
    let sys_page = sys_page_size();
    let f = File::open(PAGEMAP)
        .map_err(|source| ExtMemError::PagemapUnreadable { addr: base, source })?;
    let mut out = Vec::with_capacity(pages as usize);
    for i in 0..pages as usize {
        let addr = base + i * page_size;
        // SAFETY: addr is inside the area, which the caller guarantees is mapped and
        // readable; a volatile read makes the kernel fault the page in so pagemap has a frame.
        unsafe { std::ptr::read_volatile(addr as *const u8) };
        let mut entry = [0u8; 8];
        let off = (addr / sys_page) as u64 * 8;
        f.read_exact_at(&mut entry, off)
            .map_err(|source| ExtMemError::PagemapUnreadable { addr, source })?;
        out.push(pagemap_phys(u64::from_ne_bytes(entry), addr, sys_page)?);
    }
    Ok(out)
}

/// The rte_device of the ethdev port called `name`, if such a port is still attached.
fn device_by_port_name(name: &str) -> Option<NonNull<sys::rte_device>> {
    let cname = std::ffi::CString::new(name).ok()?;
    let mut id = 0u16;
    // SAFETY: cname is a valid C string; id is a valid out pointer.
    if unsafe { sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) } != 0 {
        return None;
    }
    let mut info = std::mem::MaybeUninit::<sys::rte_eth_dev_info>::zeroed();
    // SAFETY: id names an attached port (just looked up); info is a zeroed out struct.
    if unsafe { sys::rte_eth_dev_info_get(id, info.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: initialised by the successful call above (zeroed before).
    NonNull::new(unsafe { info.assume_init() }.device)
}

/// The name of the bus a device sits on ("pci", "vdev", ...).
fn bus_name(dev: NonNull<sys::rte_device>) -> String {
    // SAFETY: dev is a live device (the caller just got it from an open port); rte_dev_bus
    // returns its bus or NULL.
    let bus = unsafe { sys::rte_dev_bus(dev.as_ptr()) };
    if bus.is_null() {
        return String::new();
    }
    // SAFETY: bus is a registered bus; its name is a static NUL-terminated string.
    let name = unsafe { sys::rte_bus_name(bus) };
    if name.is_null() {
        return String::new();
    }
    // SAFETY: as above.
    unsafe { CStr::from_ptr(name) }
        .to_string_lossy()
        .into_owned()
}

impl ExtMemRegistration {
    /// Registers `base..base + len`, made of pages of `page_size` bytes (2 MiB on hugetlbfs,
    /// 4096 for a /dev/shm fallback), with DPDK, with one IOVA per page: the virtual address in
    /// IOVA-as-VA mode (the [`crate::EalBuilder`] default), the physical address from
    /// /proc/self/pagemap in IOVA-as-PA mode (refused with a typed error when pagemap is
    /// unreadable or hides frame numbers, or when the pages are not hugepages).
    ///
    /// Nothing is DMA-mapped yet: call [`ExtMemRegistration::dma_map`] for each port.
    ///
    /// # Safety
    /// The area must be mapped readable and writable, every page backed (for hugetlbfs:
    /// reserved at mmap time, as a MAP_SHARED mapping of a hugetlbfs file is), and it must
    /// stay mapped until this registration and every pool created over it are dropped. Nothing
    /// may treat it as ordinary Rust-owned memory while devices may write into it.
    pub unsafe fn register(
        eal: &Eal,
        base: NonNull<u8>,
        len: usize,
        page_size: usize,
    ) -> Result<Self, ExtMemError> {
        let addr = base.as_ptr() as usize;
        let pages = validate(addr, len, page_size)?;
        let mode = eal.iova_mode();
        let iovas: Vec<u64> = match mode {
            IovaMode::Va => (0..pages as usize)
                .map(|i| (addr + i * page_size) as u64)
                .collect(),
            IovaMode::Pa => {
                if page_size <= sys_page_size() {
                    return Err(ExtMemError::PaNeedsHugepages { page_size });
                }
                // SAFETY: the area is mapped and readable (this function's contract).
                unsafe { physical_pages(addr, pages, page_size)? }
            }
            IovaMode::Unknown(_) => return Err(ExtMemError::UnknownIovaMode { mode }),
        };
        let mut table = iovas.clone();
        // SAFETY: the EAL is initialised (eal exists); base/len/page_size were validated
        // (aligned, whole pages, no overflow) and `table` holds exactly `pages` IOVAs, which
        // DPDK copies into its memseg list. The memory stays mapped for as long as the
        // registration (the caller's contract); DPDK does not touch it here.
        let ret = unsafe {
            sys::rte_extmem_register(
                base.as_ptr().cast(),
                len,
                table.as_mut_ptr(),
                pages,
                page_size,
            )
        };
        if ret != 0 {
            let errno = crate::rte_errno();
            return Err(ExtMemError::Register {
                base: addr,
                len,
                errno,
                message: crate::strerror(errno),
            });
        }
        let runs = contiguous_runs(&iovas, page_size).into_boxed_slice();
        Ok(Self {
            base,
            len,
            page_size,
            mode,
            iovas: iovas.into_boxed_slice(),
            runs,
            mapped: Mutex::new(Vec::new()),
            _eal: eal.clone(),
        })
    }

    /// Start of the area.
    pub fn base(&self) -> NonNull<u8> {
        self.base
    }

    /// Length of the area in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: an empty area cannot be registered.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Page size the area was registered with.
    pub fn page_size(&self) -> usize {
        self.page_size
    }

    /// The IOVA mode the IOVAs were taken from.
    pub fn iova_mode(&self) -> IovaMode {
        self.mode
    }

    /// The stretches of contiguous IOVA, in address order (one in IOVA-as-VA mode).
    pub fn iova_runs(&self) -> &[IovaRun] {
        &self.runs
    }

    /// Whether `ptr..ptr + len` lies inside the area.
    pub fn contains(&self, ptr: *const u8, len: usize) -> bool {
        let base = self.base.as_ptr() as usize;
        (ptr as usize)
            .checked_sub(base)
            .and_then(|off| off.checked_add(len))
            .is_some_and(|end| end <= self.len)
    }

    /// The IOVA of `addr`, or None when it lies outside the area. Agrees with DPDK's
    /// `rte_mem_virt2iova` and with the memseg DPDK keeps for the page (the tests check both).
    pub fn iova_of(&self, addr: *const u8) -> Option<u64> {
        let off = (addr as usize).checked_sub(self.base.as_ptr() as usize)?;
        if off >= self.len {
            return None;
        }
        let page = *self.iovas.get(off / self.page_size)?;
        page.checked_add(u64::try_from(off % self.page_size).ok()?)
    }

    /// The IOVA of `ptr..ptr + len` when those bytes are IOVA-contiguous (always in IOVA-as-VA
    /// mode), else None (also when outside the area). A device can DMA into such a range as one
    /// buffer.
    pub fn contiguous_iova(&self, ptr: *const u8, len: usize) -> Option<u64> {
        if !self.contains(ptr, len) || len == 0 {
            return None;
        }
        let off = (ptr as usize) - (self.base.as_ptr() as usize);
        let run = self
            .runs
            .iter()
            .find(|r| off >= r.offset && off < r.offset + r.len)?;
        (off + len <= run.offset + run.len)
            .then(|| run.iova + u64::try_from(off - run.offset).unwrap_or(u64::MAX))
    }

    /// Maps the area for DMA by `port`'s device (`rte_dev_dma_map`, one call per IOVA run).
    /// Mapping a port twice returns the first outcome. A bus without DMA mapping (ENOTSUP), or
    /// a vdev whose driver has no DMA hook, gives [`DmaMapped::NotNeeded`]; any other failure
    /// is an error naming the port, after undoing the runs already mapped.
    pub fn dma_map(&self, port: &Port) -> Result<DmaMapped, ExtMemError> {
        let mut mapped = self.mapped.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = mapped.iter().find(|m| m.name == port.name()) {
            return Ok(m.outcome);
        }
        let (dev, driver) = port.rte_device().map_err(|source| ExtMemError::Device {
            port: port.name().to_owned(),
            source,
        })?;
        for (i, run) in self.runs.iter().enumerate() {
            let addr = self.base.as_ptr() as usize + run.offset;
            // SAFETY: dev is the live device of an open port (the &Port borrow keeps it open);
            // addr..addr+len lies inside the area registered with rte_extmem_register (DPDK
            // checks that too) and run.iova is the IOVA we registered for it.
            let ret =
                unsafe { sys::rte_dev_dma_map(dev.as_ptr(), addr as *mut _, run.iova, run.len) };
            if ret < 0 {
                let errno = crate::rte_errno();
                if errno == libc::ENOTSUP && i == 0 {
                    mapped.push(MappedPort {
                        name: port.name().to_owned(),
                        id: port.id(),
                        outcome: DmaMapped::NotNeeded,
                        undo: false,
                    });
                    return Ok(DmaMapped::NotNeeded);
                }
                // Undo what was mapped; failures here are reported by the error below already.
                let _ = self.unmap_runs(dev, port.name(), &self.runs[..i]);
                return Err(ExtMemError::DmaMap {
                    port: port.name().to_owned(),
                    port_id: port.id(),
                    addr,
                    iova: run.iova,
                    len: run.len,
                    errno,
                    message: crate::strerror(errno),
                });
            }
        }
        let outcome =
            if bus_name(dev) == "vdev" && !VDEV_DRIVERS_WITH_DMA_HOOK.contains(&driver.as_str()) {
                DmaMapped::NotNeeded
            } else {
                DmaMapped::Mapped
            };
        mapped.push(MappedPort {
            name: port.name().to_owned(),
            id: port.id(),
            outcome,
            undo: true,
        });
        Ok(outcome)
    }

    /// Undoes [`ExtMemRegistration::dma_map`] for `port` (stop the port first). Returns false
    /// when the area was not mapped for it. Call this before closing a PCI port.
    pub fn dma_unmap(&self, port: &Port) -> Result<bool, ExtMemError> {
        let mut mapped = self.mapped.lock().unwrap_or_else(|p| p.into_inner());
        let Some(i) = mapped.iter().position(|m| m.name == port.name()) else {
            return Ok(false);
        };
        let m = mapped.remove(i);
        if !m.undo {
            return Ok(true);
        }
        let (dev, _) = port.rte_device().map_err(|source| ExtMemError::Device {
            port: port.name().to_owned(),
            source,
        })?;
        self.unmap_runs(dev, &m.name, &self.runs)?;
        Ok(true)
    }

    /// Names of the ports the area is currently recorded as mapped for, with the outcome.
    pub fn mapped_ports(&self) -> Vec<(String, u16, DmaMapped)> {
        let mapped = self.mapped.lock().unwrap_or_else(|p| p.into_inner());
        mapped
            .iter()
            .map(|m| (m.name.clone(), m.id, m.outcome))
            .collect()
    }

    /// `rte_dev_dma_unmap` for each run; ENOTSUP (bus without DMA map) counts as done.
    fn unmap_runs(
        &self,
        dev: NonNull<sys::rte_device>,
        port: &str,
        runs: &[IovaRun],
    ) -> Result<(), ExtMemError> {
        let mut first_err = None;
        for run in runs {
            let addr = self.base.as_ptr() as usize + run.offset;
            // SAFETY: dev is the live device of a port that is still attached (callers got it
            // from an open Port or by looking the port up by name just now); the run lies in
            // the registered area and was mapped with this IOVA.
            let ret =
                unsafe { sys::rte_dev_dma_unmap(dev.as_ptr(), addr as *mut _, run.iova, run.len) };
            if ret < 0 {
                let errno = crate::rte_errno();
                if errno != libc::ENOTSUP && first_err.is_none() {
                    first_err = Some(ExtMemError::DmaUnmap {
                        port: port.to_owned(),
                        addr,
                        iova: run.iova,
                        len: run.len,
                        errno,
                        message: crate::strerror(errno),
                    });
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

impl Drop for ExtMemRegistration {
    fn drop(&mut self) {
        let mapped = std::mem::take(self.mapped.get_mut().unwrap_or_else(|p| p.into_inner()));
        for m in mapped.into_iter().filter(|m| m.undo) {
            // Look the port up again by name: a port closed since dma_map has no device any
            // more, and its old rte_device pointer must not be used.
            let Some(dev) = device_by_port_name(&m.name) else {
                if m.outcome == DmaMapped::Mapped {
                    eprintln!(
                        "dpdk: port {} was closed before its DMA mapping of external memory at \
                         {:p} was undone; the mapping stays until the process exits",
                        m.name, self.base
                    );
                }
                continue;
            };
            if let Err(e) = self.unmap_runs(dev, &m.name, &self.runs) {
                eprintln!("dpdk: {e}");
            }
        }
        // SAFETY: the area was registered by `register` with exactly this base and length, and
        // is unregistered once, here; no device mapping made through this registration remains
        // except those of ports closed earlier (reported above).
        let ret = unsafe { sys::rte_extmem_unregister(self.base.as_ptr().cast(), self.len) };
        if ret != 0 {
            let errno = crate::rte_errno();
            eprintln!(
                "dpdk: rte_extmem_unregister of {} bytes at {:p} failed: {} (rte_errno {errno})",
                self.len,
                self.base,
                crate::strerror(errno)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB2: usize = 2 << 20;

    #[test]
    fn geometry_is_validated() {
        assert_eq!(validate(MB2, 2 * MB2, MB2).unwrap(), 2);
        assert_eq!(validate(4096, 4096, 4096).unwrap(), 1);
        assert!(matches!(
            validate(MB2 + 4096, MB2, MB2),
            Err(ExtMemError::Unaligned { .. })
        ));
        assert!(matches!(
            validate(MB2, 0, MB2),
            Err(ExtMemError::ZeroLength)
        ));
        assert!(matches!(
            validate(MB2, MB2 + 1, MB2),
            Err(ExtMemError::LengthNotPageMultiple { .. })
        ));
        assert!(matches!(
            validate(MB2, MB2, 3 << 20),
            Err(ExtMemError::BadPageSize { .. })
        ));
        assert!(matches!(
            validate(0, 1024, 1024),
            Err(ExtMemError::BadPageSize { .. })
        ));
        assert!(matches!(
            validate(usize::MAX - MB2 + 1, 2 * MB2, MB2),
            Err(ExtMemError::Unaligned { .. } | ExtMemError::OutOfRange { .. })
        ));
        let top = usize::MAX & !(MB2 - 1);
        assert!(matches!(
            validate(top, 2 * MB2, MB2),
            Err(ExtMemError::OutOfRange { .. })
        ));
    }

    #[test]
    fn runs_split_at_iova_gaps() {
        let p = 4096usize;
        assert_eq!(
            contiguous_runs(&[0x10000, 0x11000, 0x12000], p),
            vec![IovaRun {
                offset: 0,
                len: 3 * p,
                iova: 0x10000
            }]
        );
        assert_eq!(
            contiguous_runs(&[0x10000, 0x20000, 0x21000, 0x5000], p),
            vec![
                IovaRun {
                    offset: 0,
                    len: p,
                    iova: 0x10000
                },
                IovaRun {
                    offset: p,
                    len: 2 * p,
                    iova: 0x20000
                },
                IovaRun {
                    offset: 3 * p,
                    len: p,
                    iova: 0x5000
                },
            ]
        );
        assert!(contiguous_runs(&[], p).is_empty());
        // No overflow at the top of the IOVA space.
        assert_eq!(contiguous_runs(&[u64::MAX - 4095, 0], p).len(), 2);
    }

    #[test]
    fn pagemap_entries() {
        let present = 1u64 << 63;
        assert_eq!(
            pagemap_phys(present | 0x1234, 0x7000, 4096).unwrap(),
            0x1234 * 4096
        );
        assert_eq!(
            pagemap_phys(present | 0x1234, 0x7010, 4096).unwrap(),
            0x1234 * 4096 + 0x10
        );
        // Not present, or frame number hidden (unprivileged reader).
        assert!(matches!(
            pagemap_phys(0x1234, 0x7000, 4096),
            Err(ExtMemError::PagemapNoFrame { .. })
        ));
        assert!(matches!(
            pagemap_phys(present, 0x7000, 4096),
            Err(ExtMemError::PagemapNoFrame { .. })
        ));
        // Soft-dirty / exclusive bits (55, 56) are not part of the frame number.
        assert_eq!(
            pagemap_phys(present | (3 << 55) | 0x10, 0, 4096).unwrap(),
            0x10 * 4096
        );
    }
}
