//! A mapped region: creation by the core, attach and validation by NFs, typed accessors.
//!
//! A [`Region`] owns (or borrows, for [`Region::attach_raw`]) one mapping of a domain's shared
//! memory plus a private, validated copy of its [`Geometry`]. It is a cheap, clonable handle
//! (`Arc` inside); ring handles and slot references keep the mapping alive.
//!
//! Access discipline (STYLE.md, "Memory shared with an untrusted party"): this module never forms
//! a `&` or `&mut` to non-atomic data in shared memory. Fields are reached with
//! `ptr::addr_of!` on raw pointers; atomic fields are then borrowed as `&AtomicU*` (any bit
//! pattern is a valid value, and concurrent access is what atomics are for), plain fields are
//! copied in or out with volatile accesses. The only exceptions are the `unsafe` buffer-slice
//! functions, whose callers take on the contract.

use core::marker::PhantomData;
use core::ptr::{self, addr_of, addr_of_mut, NonNull};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use memmap2::{MmapOptions, MmapRaw};

use crate::desc::{CheckedBuf, DescError, Descriptor};
use crate::layout::{
    name_to_field, name_to_string, region_kind, slot_state, Geometry, LayoutError, NfCounter,
    NfSlot, RegionHeader, RegionKind, RegionLayout, RegionParams, RingControl, SlotRings,
    ABI_VERSION, AREA_ALIGN, BUF_ALIGN, DESC_SIZE, HEADER_SIZE, HUGETLBFS_MAGIC, MAGIC,
    MAX_BUF_SIZE, MAX_REGION_SIZE, MAX_RING_CAPACITY, MAX_RX_RINGS_PER_SLOT, MIN_REGION_SIZE,
    MIN_RING_CAPACITY, NAME_LEN, RING_CONTROL_SIZE, SLOT_SIZE,
};
use crate::ring::{Consumer, FutexWait, Producer, RingError, RingMem};

/// Errors of creating, attaching and addressing a region. Validation failures each have their
/// own variant so an NF can report exactly what it found.
#[derive(Debug, thiserror::Error)]
pub enum RegionError {
    /// The parameters do not describe a possible region.
    #[error("invalid region parameters")]
    Layout(#[from] LayoutError),
    /// A file operation failed.
    #[error("cannot {op} {path}")]
    Io {
        /// What was being done ("create", "open", "map", ...).
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The mapping is too short to hold a header.
    #[error("mapping of {len} bytes is shorter than the {need}-byte region header")]
    Truncated {
        /// Bytes mapped.
        len: usize,
        /// Bytes needed.
        need: usize,
    },
    /// The mapping does not start on a page boundary.
    #[error("mapping base {addr:#x} is not aligned to {align} bytes")]
    MisalignedBase {
        /// Address of the mapping.
        addr: usize,
        /// Required alignment.
        align: usize,
    },
    /// Not a netvm region.
    #[error("bad magic {found:#018x}, not a netvm region")]
    BadMagic {
        /// Value found at offset 0.
        found: u64,
    },
    /// Written by an incompatible version.
    #[error("region ABI version is {found}, this build speaks {expected}")]
    VersionMismatch {
        /// Version in the header.
        found: u32,
        /// Version of this crate.
        expected: u32,
    },
    /// A fixed-size record has the wrong size.
    #[error("{what} is {found} bytes, expected {expected}")]
    BadRecordSize {
        /// "header_size" or "slot_size".
        what: &'static str,
        /// Size in the header.
        found: u64,
        /// Size this version uses.
        expected: u64,
    },
    /// `total_size` is not a power of two in the accepted range.
    #[error("total size {total_size} is not a power of two between {MIN_REGION_SIZE} and {MAX_REGION_SIZE}")]
    BadTotalSize {
        /// Value in the header.
        total_size: u64,
    },
    /// The region claims to be larger than what is mapped.
    #[error("region claims {total_size} bytes but only {mapping} are mapped")]
    MappingTooSmall {
        /// Value in the header.
        total_size: u64,
        /// Bytes mapped.
        mapping: usize,
    },
    /// The core has not finished (re)initialising the region (generation 0); retry.
    #[error("region is being initialised by the core (generation 0)")]
    NotInitialised,
    /// A count that must be positive is zero.
    #[error("{what} is zero")]
    ZeroCount {
        /// Which header field.
        what: &'static str,
    },
    /// A header value is out of its accepted range.
    #[error("{what} is {found}, outside the accepted range")]
    BadValue {
        /// Which header field.
        what: &'static str,
        /// Value found.
        found: u64,
    },
    /// `ring_count` does not match `slot_count * (rx_rings_per_slot + 1)`.
    #[error("ring count is {found}, expected {expected} for the slot count and rings per slot")]
    RingCountMismatch {
        /// Value in the header.
        found: u32,
        /// Value implied by the other fields.
        expected: u64,
    },
    /// `ring_stride` cannot hold the ring's control block and descriptors.
    #[error("ring stride {found} is below {min} or not a multiple of 64")]
    BadRingStride {
        /// Value in the header.
        found: u64,
        /// Smallest possible stride for the capacity.
        min: u64,
    },
    /// An area is not aligned as required.
    #[error("{what} at offset {offset:#x} is not aligned to {align} bytes")]
    Misaligned {
        /// Which area.
        what: &'static str,
        /// Offset in the header.
        offset: u64,
        /// Required alignment.
        align: u64,
    },
    /// An area does not lie inside the region.
    #[error("{what} at offset {offset:#x} with length {len:#x} lies outside the {mapping:#x}-byte region")]
    OutOfBounds {
        /// Which area.
        what: &'static str,
        /// Offset in the header.
        offset: u64,
        /// Length implied by the header.
        len: u64,
        /// Size of the region.
        mapping: u64,
    },
    /// Two areas overlap.
    #[error("{first} overlaps {second}")]
    Overlap {
        /// Lower area.
        first: &'static str,
        /// Higher area.
        second: &'static str,
    },
    /// A slot, ring or buffer index is out of range.
    #[error("{what} {index} is out of range (region has {count})")]
    IndexOutOfRange {
        /// "slot", "ring" or "buffer".
        what: &'static str,
        /// Index asked for.
        index: u64,
        /// Number available.
        count: u64,
    },
    /// A handle for this ring and role already exists in this process.
    #[error("ring {ring} already has a {role} handle in this process")]
    RingInUse {
        /// Ring id.
        ring: u32,
        /// "producer" or "consumer" (or "any" for reset).
        role: &'static str,
    },
    /// The ring's shared indices are corrupt.
    #[error("ring {ring} is unusable")]
    Ring {
        /// Ring id.
        ring: u32,
        /// What was found.
        #[source]
        source: RingError,
    },
    /// A slot state transition found an unexpected state.
    #[error("slot {slot} is in state {found}, expected {expected}")]
    SlotState {
        /// Slot index.
        slot: u32,
        /// Raw state expected.
        expected: u32,
        /// Raw state found.
        found: u32,
    },
    /// `mbind(MPOL_BIND)` of a new region's mapping to its NUMA node failed (e.g. `EINVAL`:
    /// no such node, or a node without memory this process may use).
    #[error("cannot bind {} to NUMA node {node} (mbind MPOL_BIND)", path.display())]
    NumaBind {
        /// The region file.
        path: PathBuf,
        /// The node.
        node: u32,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Prefaulting a region bound to a NUMA node failed: most likely that node has too few free
    /// (huge) pages for it.
    #[error("cannot allocate the {len} bytes of {} on NUMA node {node} (too few free pages on that node?)", path.display())]
    NumaPopulate {
        /// The region file.
        path: PathBuf,
        /// The node.
        node: u32,
        /// Bytes mapped.
        len: usize,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Lifecycle of an NF slot ([`crate::layout::slot_state`] as an enum).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SlotState {
    /// Unused.
    Free,
    /// Assigned to a configured NF name by the core; waiting for the NF.
    Reserved,
    /// The NF attached.
    Attached,
    /// The NF exited cleanly.
    Detached,
    /// The core cut the NF off.
    Quarantined,
}

impl SlotState {
    /// Decodes a raw state word; `None` for garbage.
    #[must_use]
    pub const fn from_raw(raw: u32) -> Option<Self> {
        match raw {
            slot_state::FREE => Some(Self::Free),
            slot_state::RESERVED => Some(Self::Reserved),
            slot_state::ATTACHED => Some(Self::Attached),
            slot_state::DETACHED => Some(Self::Detached),
            slot_state::QUARANTINED => Some(Self::Quarantined),
            _ => None,
        }
    }

    /// The raw state word.
    #[must_use]
    pub const fn as_raw(self) -> u32 {
        match self {
            Self::Free => slot_state::FREE,
            Self::Reserved => slot_state::RESERVED,
            Self::Attached => slot_state::ATTACHED,
            Self::Detached => slot_state::DETACHED,
            Self::Quarantined => slot_state::QUARANTINED,
        }
    }
}

/// What keeps the mapping alive.
enum Backing {
    /// We own the mapping (shared with other processes: only ever accessed through raw
    /// pointers, atomics and volatile copies, never as a Rust slice).
    Mmap(#[allow(dead_code)] MmapRaw),
    /// The caller of `attach_raw` guarantees the mapping.
    External,
}

/// Required alignment of a mapping's base (and the value of `AREA_ALIGN`).
const PAGE_SIZE: usize = 4096;
const _: () = assert!(PAGE_SIZE as u64 == AREA_ALIGN);

/// Claim bits in `Inner::claims`.
const CLAIM_PRODUCER: u8 = 1;
const CLAIM_CONSUMER: u8 = 2;

struct Inner {
    base: NonNull<u8>,
    len: usize,
    geom: Geometry,
    /// Generation stamped (core) or seen (NF) when this mapping was opened.
    generation: u64,
    /// Per ring: which handles exist in this process (private memory).
    claims: Box<[AtomicU8]>,
    path: Option<PathBuf>,
    on_hugetlbfs: Option<bool>,
    /// Dropped last (fields drop in declaration order).
    _backing: Backing,
}

// SAFETY: `Inner` is a base pointer + length of a process-wide mapping and private bookkeeping.
// Every access to the mapping goes through atomics or volatile raw-pointer copies (module docs),
// which are fine from any thread; single-producer/single-consumer use of each ring within this
// process is enforced by `claims` (atomic). The mapping outlives all users (Arc + `_backing`).
unsafe impl Send for Inner {}
// SAFETY: as for `Send`: shared `&Inner` only permits atomic/volatile access to the mapping.
unsafe impl Sync for Inner {}

/// One mapped region (see the module docs). Clone it freely; clones share the mapping.
#[derive(Clone)]
pub struct Region {
    inner: Arc<Inner>,
}

impl core::fmt::Debug for Region {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Region")
            .field("base", &self.inner.base)
            .field("len", &self.inner.len)
            .field("geometry", &self.inner.geom)
            .field("generation", &self.inner.generation)
            .field("path", &self.inner.path)
            .finish()
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> RegionError + 'a {
    move |source| RegionError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// `true` if `file` lives on hugetlbfs.
fn is_hugetlbfs(file: &File) -> bool {
    // SAFETY: `statfs` is plain old data; all-zero is a valid value.
    let mut st: libc::statfs = unsafe { core::mem::zeroed() };
    // SAFETY: the fd is open for the duration of the call (`file` is borrowed) and `st` is a
    // valid, writable `statfs`.
    let r = unsafe { libc::fstatfs(file.as_raw_fd(), &mut st) };
    #[allow(clippy::unnecessary_cast)] // f_type's width differs between libc targets
    let f_type = st.f_type as i64;
    r == 0 && f_type == HUGETLBFS_MAGIC
}

/// Block size of the file system holding `file` (the huge page size on hugetlbfs); 0 if
/// unknown.
fn fs_page_size(file: &File) -> usize {
    // SAFETY: `statfs` is plain old data; all-zero is a valid value.
    let mut st: libc::statfs = unsafe { core::mem::zeroed() };
    // SAFETY: the fd is open for the duration of the call (`file` is borrowed) and `st` is a
    // valid, writable `statfs`.
    if unsafe { libc::fstatfs(file.as_raw_fd(), &mut st) } != 0 {
        return 0;
    }
    usize::try_from(st.f_bsize)
        .ok()
        .filter(|b| b.is_power_of_two())
        .unwrap_or(0)
}

fn warn_if_not_hugetlbfs(path: &Path, on_hugetlbfs: bool) {
    if !on_hugetlbfs {
        eprintln!(
            "netvm-shm: WARNING: region file {} is not on hugetlbfs; packet buffers will use 4 KiB \
             pages (more TLB misses, pages may be swapped or moved). Mount hugetlbfs (e.g. \
             /dev/hugepages) for production use.",
            path.display()
        );
    }
}

/// The generation stamped by the core: larger than `previous` and than any earlier stamp from
/// this host's clock (nanoseconds since the Unix epoch), never 0.
fn next_generation(previous: u64) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_nanos();
    let now = u64::try_from(now).unwrap_or(u64::MAX);
    previous.wrapping_add(1).max(now).max(1)
}

/// Zeroes `len` bytes at `p` with volatile 8-byte stores.
///
/// # Safety
/// `p .. p + len` lies inside a live mapping, `p` is 8-aligned and `len` a multiple of 8.
unsafe fn zero_volatile(p: *mut u8, len: usize) {
    let words = p.cast::<u64>();
    for i in 0..len / 8 {
        // SAFETY: `i * 8 < len`, so the word is inside the range the caller vouched for; the
        // pointer is 8-aligned because `p` is.
        unsafe { ptr::write_volatile(words.add(i), 0) };
    }
}

impl Region {
    // ------------------------------------------------------------------------------------------
    // Creation (core)
    // ------------------------------------------------------------------------------------------

    /// Creates a new region file at `path` (`O_CREAT | O_EXCL`, mode 0600), sizes it, maps it
    /// shared and lays it out: header, all slots FREE, all ring indices 0. The generation is
    /// derived from the clock (see [`create_or_replace`](Self::create_or_replace)).
    ///
    /// Prints a warning on stderr if `path` is not on hugetlbfs, but works anyway (tests use
    /// tmpfs). On failure the file is removed again.
    pub fn create(path: &Path, params: &RegionParams) -> Result<Self, RegionError> {
        Self::create_on(path, params, None)
    }

    /// [`create`](Self::create), with the mapping bound to NUMA node `node` (when `Some`)
    /// before any page of it is touched: `mbind(2)` with `MPOL_BIND`, then every page faulted
    /// in (see [`crate::numa`]: why BIND, why prefault). Errors: [`RegionError::NumaBind`],
    /// [`RegionError::NumaPopulate`]. `None` is exactly `create`.
    pub fn create_on(
        path: &Path,
        params: &RegionParams,
        node: Option<u32>,
    ) -> Result<Self, RegionError> {
        let layout = RegionLayout::compute(params)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io_err("create", path))?;
        let r = Self::init_file(file, path, &layout, 0, node);
        if r.is_err() {
            let _ = std::fs::remove_file(path);
        }
        r
    }

    /// Creates the region at `path`, or re-initialises the one already there (core restart).
    ///
    /// Generation protocol: if a file of the right size exists, it is re-initialised in place:
    /// its generation is first set to 0 ("initialising": attaching NFs get
    /// [`RegionError::NotInitialised`], attached ones see a change), then the layout is written,
    /// then the generation is set to `max(old + 1, clock_ns)` with Release. If the existing file
    /// has another size it is marked the same way (generation 0, if it is a netvm region), then
    /// unlinked and a new file is created; NFs still mapping the old inode see generation 0 and
    /// re-attach by path.
    pub fn create_or_replace(path: &Path, params: &RegionParams) -> Result<Self, RegionError> {
        Self::create_or_replace_on(path, params, None)
    }

    /// [`create_or_replace`](Self::create_or_replace), with the region bound to NUMA node
    /// `node` (see [`create_on`](Self::create_on)). With a node, an existing file is always
    /// replaced (marked, unlinked, created anew) rather than re-initialised in place: its pages
    /// were allocated under whatever policy its creator had, and only fresh pages are
    /// guaranteed to come from `node`. NFs still mapping the old file re-attach by path, as
    /// after a size change. `None` is exactly `create_or_replace`.
    pub fn create_or_replace_on(
        path: &Path,
        params: &RegionParams,
        node: Option<u32>,
    ) -> Result<Self, RegionError> {
        let layout = RegionLayout::compute(params)?;
        let file = match OpenOptions::new().read(true).write(true).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Self::create_on(path, params, node)
            }
            Err(e) => return Err(io_err("open", path)(e)),
        };
        let len = file.metadata().map_err(io_err("stat", path))?.len();
        let old_gen = Self::retire_file(&file, len);
        if len == layout.total_size() as u64 && node.is_none() {
            Self::init_file(file, path, &layout, old_gen, None)
        } else {
            drop(file);
            std::fs::remove_file(path).map_err(io_err("remove", path))?;
            Self::create_on(path, params, node)
        }
    }

    /// If `file` holds a netvm region, sets its generation to 0 and returns the old value.
    fn retire_file(file: &File, len: u64) -> u64 {
        let Ok(len) = usize::try_from(len) else {
            return 0;
        };
        if len < HEADER_SIZE {
            return 0;
        }
        // SAFETY: MAP_SHARED mapping of a file we opened read-write; we only touch it through
        // raw pointers below (other processes may be using it too).
        let Ok(map) = MmapOptions::new().len(len).map_raw(file) else {
            return 0;
        };
        let hdr = map.as_mut_ptr().cast::<RegionHeader>();
        // SAFETY: the mapping is at least HEADER_SIZE bytes and page aligned, so the header's
        // fields are in bounds and aligned; `magic` is copied out with a volatile read.
        let magic = unsafe { ptr::read_volatile(addr_of!((*hdr).magic)) };
        if magic != MAGIC {
            return 0;
        }
        // SAFETY: in bounds and aligned as above; any bit pattern is a valid AtomicU64.
        let gen = unsafe { &*addr_of!((*hdr).generation) };
        gen.swap(0, Ordering::AcqRel)
    }

    /// Sizes, maps (binding the mapping to `node` first, if any) and initialises `file`.
    fn init_file(
        file: File,
        path: &Path,
        layout: &RegionLayout,
        old_gen: u64,
        node: Option<u32>,
    ) -> Result<Self, RegionError> {
        let total = layout.total_size();
        file.set_len(total as u64).map_err(io_err("resize", path))?;
        let on_hugetlbfs = is_hugetlbfs(&file);
        warn_if_not_hugetlbfs(path, on_hugetlbfs);
        // A raw MAP_SHARED mapping of the file we just sized: the region's protocol (atomics and
        // volatile copies only) governs every access, including other processes' writes.
        let map = MmapOptions::new()
            .len(total)
            .map_raw(&file)
            .map_err(io_err("map", path))?;
        if let Some(node) = node {
            // The whole mapping, in whole pages of the file system (a huge page cannot be
            // split); the kernel rounds the mapping up the same way.
            let page = fs_page_size(&file).max(PAGE_SIZE);
            let len = total.div_ceil(page).saturating_mul(page);
            // SAFETY: `map` is our fresh mapping of a file we just created (`create_on` opens
            // it with O_CREAT | O_EXCL; `create_or_replace_on` never re-uses a file when given
            // a node), `len` covers exactly its pages, and nothing has touched them yet.
            unsafe { crate::numa::bind(map.as_mut_ptr(), len, node) }.map_err(|source| {
                RegionError::NumaBind {
                    path: path.to_path_buf(),
                    node,
                    source,
                }
            })?;
            // SAFETY: as above; the file's contents are not initialised yet.
            unsafe { crate::numa::populate(map.as_mut_ptr(), len) }.map_err(|source| {
                RegionError::NumaPopulate {
                    path: path.to_path_buf(),
                    node,
                    len,
                    source,
                }
            })?;
        }
        let mut region = Self::init_mapping(map, layout, old_gen)?;
        let inner = Arc::get_mut(&mut region.inner).expect("fresh region has one owner");
        inner.path = Some(path.to_path_buf());
        inner.on_hugetlbfs = Some(on_hugetlbfs);
        Ok(region)
    }

    /// Creates a region in anonymous private memory: for in-process use (tests, benchmarks,
    /// an NF running as a thread of the core). No other process can see it.
    pub fn create_anonymous(params: &RegionParams) -> Result<Self, RegionError> {
        let layout = RegionLayout::compute(params)?;
        let map = MmapOptions::new()
            .len(layout.total_size())
            .map_anon()
            .map_err(io_err("map", Path::new("<anonymous>")))?
            .into();
        Self::init_mapping(map, &layout, 0)
    }

    fn init_mapping(
        map: MmapRaw,
        layout: &RegionLayout,
        old_gen: u64,
    ) -> Result<Self, RegionError> {
        let geom = *layout.geometry();
        let len = map.len();
        if len < geom.total_size {
            return Err(RegionError::MappingTooSmall {
                total_size: geom.total_size as u64,
                mapping: len,
            });
        }
        let base = NonNull::new(map.as_mut_ptr()).expect("mmap never returns null");
        // SAFETY: `base .. base + len` is the live mapping `map`, which `Inner` keeps; the layout
        // was computed by `RegionLayout::compute`, so every area lies inside `total_size <= len`.
        let generation = unsafe { init_layout(base, &geom, old_gen) };
        Ok(Self::from_parts(
            base,
            len,
            geom,
            generation,
            Backing::Mmap(map),
        ))
    }

    fn from_parts(
        base: NonNull<u8>,
        len: usize,
        geom: Geometry,
        generation: u64,
        backing: Backing,
    ) -> Self {
        let claims = (0..geom.ring_count).map(|_| AtomicU8::new(0)).collect();
        Self {
            inner: Arc::new(Inner {
                base,
                len,
                geom,
                generation,
                claims,
                path: None,
                on_hugetlbfs: None,
                _backing: backing,
            }),
        }
    }

    // ------------------------------------------------------------------------------------------
    // Attach (NF)
    // ------------------------------------------------------------------------------------------

    /// Maps the region file at `path` (read-write, shared) and validates it.
    pub fn attach_file(path: &Path) -> Result<Self, RegionError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io_err("open", path))?;
        let len = file.metadata().map_err(io_err("stat", path))?.len();
        let len = usize::try_from(len).map_err(|_| RegionError::BadValue {
            what: "file size",
            found: len,
        })?;
        if len < HEADER_SIZE {
            return Err(RegionError::Truncated {
                len,
                need: HEADER_SIZE,
            });
        }
        let on_hugetlbfs = is_hugetlbfs(&file);
        // Raw MAP_SHARED mapping of the whole file; accessed only per the region protocol.
        let map = MmapOptions::new()
            .len(len)
            .map_raw(&file)
            .map_err(io_err("map", path))?;
        let mut region = Self::attach_mmap(map)?;
        let inner = Arc::get_mut(&mut region.inner).expect("fresh region has one owner");
        inner.path = Some(path.to_path_buf());
        inner.on_hugetlbfs = Some(on_hugetlbfs);
        Ok(region)
    }

    /// Validates a region in a mapping the caller made (e.g. the ivshmem BAR file `resource2`
    /// mapped with memmap2) and takes ownership of the mapping.
    pub fn attach_mmap(map: MmapRaw) -> Result<Self, RegionError> {
        let len = map.len();
        let base = map.as_mut_ptr();
        // SAFETY: `base .. base + len` is `map`, which we move into the region below, so it
        // stays mapped as long as any handle; a MAP_SHARED mapping tolerates concurrent writers.
        let (geom, generation) = unsafe { validate(base, len) }?;
        let base = NonNull::new(base).expect("mmap never returns null");
        Ok(Self::from_parts(
            base,
            len,
            geom,
            generation,
            Backing::Mmap(map),
        ))
    }

    /// Validates a region at `base .. base + len`, any mapping the caller manages.
    ///
    /// # Safety
    /// `base .. base + len` must be readable and writable memory that stays mapped, and is not
    /// accessed through Rust references by anyone else in this process, for as long as the
    /// returned `Region`, any clone of it, or any handle made from it exists (e.g. a mapping
    /// that is never unmapped). Other processes may write it arbitrarily.
    pub unsafe fn attach_raw(base: *mut u8, len: usize) -> Result<Self, RegionError> {
        // SAFETY: forwarded from this function's contract.
        let (geom, generation) = unsafe { validate(base, len) }?;
        let base = NonNull::new(base).ok_or(RegionError::MisalignedBase {
            addr: 0,
            align: PAGE_SIZE,
        })?;
        Ok(Self::from_parts(
            base,
            len,
            geom,
            generation,
            Backing::External,
        ))
    }

    // ------------------------------------------------------------------------------------------
    // Whole-region accessors
    // ------------------------------------------------------------------------------------------

    /// The validated geometry (private copy).
    #[must_use]
    pub fn geometry(&self) -> &Geometry {
        &self.inner.geom
    }

    /// The generation stamped at creation (core) or seen at attach (NF). An NF stores it in its
    /// slot and compares it with [`HeaderRef::generation`] to detect a core restart.
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.inner.generation
    }

    /// The header's live words.
    #[must_use]
    pub fn header(&self) -> HeaderRef<'_> {
        HeaderRef {
            hdr: self.inner.base.cast::<RegionHeader>(),
            _region: PhantomData,
        }
    }

    /// Start of the mapping. Only with the `raw-access` feature, for tests and tools that play
    /// a hostile peer (scribbling over the mapping); netvm's own crates never use it.
    #[cfg(feature = "raw-access")]
    #[must_use]
    pub fn as_ptr(&self) -> NonNull<u8> {
        self.inner.base
    }

    /// Bytes mapped (at least `geometry().total_size()`).
    #[must_use]
    pub fn mapping_len(&self) -> usize {
        self.inner.len
    }

    /// The file backing the region, if it was created or attached by path.
    #[must_use]
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// Whether the backing file is on hugetlbfs (`None`: not file-backed or unknown).
    #[must_use]
    pub fn on_hugetlbfs(&self) -> Option<bool> {
        self.inner.on_hugetlbfs
    }

    /// Unlinks the backing file (dropping a region never does). Mappings stay valid.
    pub fn remove_file(&self) -> Result<(), RegionError> {
        match &self.inner.path {
            Some(p) => std::fs::remove_file(p).map_err(io_err("remove", p)),
            None => Ok(()),
        }
    }

    // ------------------------------------------------------------------------------------------
    // Slots
    // ------------------------------------------------------------------------------------------

    /// NF slot `index`.
    pub fn slot(&self, index: u32) -> Result<SlotRef<'_>, RegionError> {
        let g = &self.inner.geom;
        if index >= g.slot_count {
            return Err(RegionError::IndexOutOfRange {
                what: "slot",
                index: u64::from(index),
                count: u64::from(g.slot_count),
            });
        }
        let off = g.slot_table_offset + index as usize * g.slot_size;
        // SAFETY: validated geometry: the slot table lies inside the mapping and
        // `index < slot_count`, so `off + SLOT_SIZE <= total_size`; 64-aligned (validated).
        let p = unsafe { self.inner.base.as_ptr().add(off) }.cast::<NfSlot>();
        Ok(SlotRef {
            slot: NonNull::new(p).expect("inside a non-null mapping"),
            index,
            geom: &self.inner.geom,
        })
    }

    /// The first non-FREE slot whose name is `name` (how an NF finds its slot).
    #[must_use]
    pub fn find_slot(&self, name: &str) -> Option<u32> {
        (0..self.inner.geom.slot_count).find(|&i| {
            self.slot(i)
                .is_ok_and(|s| s.state_raw() != slot_state::FREE && s.name_matches(name))
        })
    }

    // ------------------------------------------------------------------------------------------
    // Rings
    // ------------------------------------------------------------------------------------------

    fn ring_ctl(&self, ring: u32) -> Result<NonNull<RingControl>, RegionError> {
        let g = &self.inner.geom;
        if ring >= g.ring_count {
            return Err(RegionError::IndexOutOfRange {
                what: "ring",
                index: u64::from(ring),
                count: u64::from(g.ring_count),
            });
        }
        let off = g.ring_area_offset + ring as usize * g.ring_stride;
        // SAFETY: validated geometry: `ring < ring_count` and the ring area lies inside the
        // mapping, so `off + ring_stride <= total_size`; 64-aligned (validated).
        let p = unsafe { self.inner.base.as_ptr().add(off) };
        Ok(NonNull::new(p.cast::<RingControl>()).expect("inside a non-null mapping"))
    }

    fn claim(&self, ring: u32, bit: u8, role: &'static str) -> Result<ShmRing, RegionError> {
        let ctl = self.ring_ctl(ring)?;
        let prev = self.inner.claims[ring as usize].fetch_or(bit, Ordering::AcqRel);
        if prev & bit != 0 {
            return Err(RegionError::RingInUse { ring, role });
        }
        // SAFETY: the descriptor array starts RING_CONTROL_SIZE bytes after the control block
        // and `ring_stride >= RING_CONTROL_SIZE + capacity * DESC_SIZE` (validated), so it is in
        // bounds; 16-aligned because the control block is 64-aligned and RING_CONTROL_SIZE is a
        // multiple of 16.
        let descs = unsafe { ctl.cast::<u8>().add(RING_CONTROL_SIZE) }.cast::<Descriptor>();
        Ok(ShmRing {
            ctl,
            descs,
            region: Arc::clone(&self.inner),
            ring,
            bit,
        })
    }

    /// The producer handle of ring `ring` (core: the RX rings; NF: its TX ring). At most one
    /// per ring in this process ([`RegionError::RingInUse`]); dropping it frees the claim.
    ///
    /// The handle starts from the ring's shared indices as they are now; the core creates its
    /// handles right after [`reset_ring`](Self::reset_ring), before the NF can touch the ring.
    pub fn producer(&self, ring: u32) -> Result<Producer, RegionError> {
        let mem = self.claim(ring, CLAIM_PRODUCER, "producer")?;
        // SAFETY: capacity is the validated power of two, and `ShmRing`'s descriptor array has
        // room for it (validated stride); the claim makes this the only producer in-process.
        unsafe { Producer::new_unchecked(mem, self.inner.geom.ring_capacity) }
            .map_err(|source| RegionError::Ring { ring, source })
    }

    /// The consumer handle of ring `ring` (core: the TX rings; NF: its RX rings). At most one
    /// per ring in this process.
    pub fn consumer(&self, ring: u32) -> Result<Consumer, RegionError> {
        let mem = self.claim(ring, CLAIM_CONSUMER, "consumer")?;
        // SAFETY: as in `producer`.
        unsafe { Consumer::new_unchecked(mem, self.inner.geom.ring_capacity) }
            .map_err(|source| RegionError::Ring { ring, source })
    }

    /// Resets ring `ring` to empty with both indices at `start` and the doorbell clear (core:
    /// when (re)assigning a slot, before the NF attaches). Fails with
    /// [`RegionError::RingInUse`] while a handle for the ring exists in this process. Any
    /// `start` is valid (tests use values near `u32::MAX` to exercise wraparound).
    pub fn reset_ring(&self, ring: u32, start: u32) -> Result<(), RegionError> {
        let ctl = self.ring_ctl(ring)?;
        let claim = &self.inner.claims[ring as usize];
        if claim
            .compare_exchange(
                0,
                CLAIM_PRODUCER | CLAIM_CONSUMER,
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return Err(RegionError::RingInUse { ring, role: "any" });
        }
        let c = ctl.as_ptr();
        // SAFETY: `ctl` is a control block inside the live mapping (ring_ctl); each field is
        // reached with addr_of! and borrowed only as an atomic.
        unsafe {
            (*addr_of!((*c).prod)).store(start, Ordering::Relaxed);
            (*addr_of!((*c).cons)).store(start, Ordering::Relaxed);
            (*addr_of!((*c).sleeping)).store(0, Ordering::Relaxed);
            (*addr_of!((*c).sleep_seq)).store(0, Ordering::Relaxed);
        }
        // Release: handles created after this (in any thread that Acquires the claim) see the
        // reset words.
        claim.store(0, Ordering::Release);
        Ok(())
    }

    // ------------------------------------------------------------------------------------------
    // Buffers
    // ------------------------------------------------------------------------------------------

    /// Start of the packet-buffer area and its length (`buf_count * buf_size`): what the core
    /// lays its DPDK extbuf mempool over (buffer `i` at `start + i * buf_size`). `None` for a
    /// control region (its buffers are in the domain region: see [`Buffers`]).
    #[must_use]
    pub fn buf_area(&self) -> Option<(NonNull<u8>, usize)> {
        let g = &self.inner.geom;
        if !g.kind.has_buffers() {
            return None;
        }
        // SAFETY: validated geometry: the buffer area lies inside the mapping.
        let p = unsafe { self.inner.base.as_ptr().add(g.buf_area_offset) };
        Some((
            NonNull::new(p).expect("inside a non-null mapping"),
            g.buf_area_len(),
        ))
    }

    /// The packet buffers of this region (a domain or combined region), as a [`Buffers`]
    /// handle that keeps the mapping alive. `None` for a control region.
    #[must_use]
    pub fn buffers(&self) -> Option<Buffers> {
        let (area, len) = self.buf_area()?;
        Some(Buffers {
            inner: Arc::new(BufInner {
                area,
                len,
                geom: self.inner.geom,
                _keep: BufKeep::Region(self.clone()),
            }),
        })
    }

    /// Descriptors now in ring `ring` (`prod - cons`), read from the shared words with
    /// atomic loads; an NF can write both, so the value is only a hint (`IndexCorrupt` if the
    /// pair is impossible).
    pub fn ring_occupancy(&self, ring: u32) -> Result<u32, RegionError> {
        let ctl = self.ring_ctl(ring)?.as_ptr();
        // SAFETY: `ctl` is a control block inside the live mapping (ring_ctl); the index words
        // are reached with addr_of! and borrowed only as atomics.
        let (prod, cons) = unsafe {
            (
                (*addr_of!((*ctl).prod)).load(Ordering::Relaxed),
                (*addr_of!((*ctl).cons)).load(Ordering::Relaxed),
            )
        };
        let used = prod.wrapping_sub(cons);
        let capacity = self.inner.geom.ring_capacity;
        if used > capacity {
            return Err(RegionError::Ring {
                ring,
                source: RingError::IndexCorrupt {
                    prod,
                    cons,
                    capacity,
                },
            });
        }
        Ok(used)
    }

    /// The doorbell words of ring `ring` (for a consumer that sleeps on several rings at once
    /// with `futex_waitv`). The handle keeps the mapping alive.
    pub fn doorbell(&self, ring: u32) -> Result<Doorbell, RegionError> {
        Ok(Doorbell {
            ctl: self.ring_ctl(ring)?,
            _region: self.clone(),
        })
    }

    /// Start of buffer `idx` (`geometry().buf_size()` bytes), or `None` if out of range.
    #[must_use]
    pub fn buffer(&self, idx: u32) -> Option<NonNull<u8>> {
        let g = &self.inner.geom;
        if idx >= g.buf_count || !g.kind.has_buffers() {
            return None;
        }
        // SAFETY: `idx < buf_count` and the buffer area (`buf_count * buf_size` bytes) lies
        // inside the mapping (validated), so the offset is in bounds.
        let p = unsafe {
            self.inner
                .base
                .as_ptr()
                .add(g.buf_area_offset + idx as usize * g.buf_size as usize)
        };
        NonNull::new(p)
    }

    /// First byte of the packet `b` refers to. Re-checks `b` against this region's geometry
    /// (two compares), so a `CheckedBuf` validated against another region cannot escape.
    pub fn packet_ptr(&self, b: &CheckedBuf) -> Result<NonNull<u8>, DescError> {
        let b = CheckedBuf::check(b.buf_idx(), b.data_off(), b.data_len(), &self.inner.geom)?;
        let start = self.buffer(b.buf_idx()).ok_or(DescError::BadIndex {
            buf_idx: b.buf_idx(),
            buf_count: self.inner.geom.buf_count,
        })?;
        // SAFETY: `data_off + data_len <= buf_size` (checked above), so in the buffer.
        Ok(unsafe { start.add(usize::from(b.data_off())) })
    }

    /// Buffer `idx` as a mutable byte slice.
    ///
    /// # Safety
    /// For the lifetime of the slice, no other reference to these bytes may exist in this
    /// process, and no party that follows the protocol may write them: the caller must hold the
    /// buffer (core: its ownership table says so; NF: it dequeued the descriptor and has not
    /// returned it). A hostile peer writing them anyway can change the bytes under the slice;
    /// treat the contents as untrusted input.
    #[allow(clippy::mut_from_ref)] // exclusivity is this unsafe fn's documented contract
    pub unsafe fn buffer_slice_mut(&self, idx: u32) -> Option<&mut [u8]> {
        let p = self.buffer(idx)?;
        // SAFETY: `p .. p + buf_size` is inside the mapping (`buffer`); exclusivity is the
        // caller's contract.
        Some(unsafe {
            core::slice::from_raw_parts_mut(p.as_ptr(), self.inner.geom.buf_size as usize)
        })
    }

    /// The packet bytes `b` refers to, as a mutable slice.
    ///
    /// # Safety
    /// As for [`buffer_slice_mut`](Self::buffer_slice_mut), for the buffer `b` names.
    #[allow(clippy::mut_from_ref)] // exclusivity is this unsafe fn's documented contract
    pub unsafe fn packet_slice_mut(&self, b: &CheckedBuf) -> Result<&mut [u8], DescError> {
        let p = self.packet_ptr(b)?;
        // SAFETY: `packet_ptr` checked `data_off + data_len <= buf_size` against this region;
        // exclusivity is the caller's contract.
        Ok(unsafe { core::slice::from_raw_parts_mut(p.as_ptr(), usize::from(b.data_len())) })
    }
}

/// Writes a fresh layout at `base`; returns the generation stamped.
///
/// # Safety
/// `base .. base + geom.total_size` is a live, writable, page-aligned mapping, and `geom` came
/// from `RegionLayout::compute`.
unsafe fn init_layout(base: NonNull<u8>, geom: &Geometry, old_gen: u64) -> u64 {
    let b = base.as_ptr();
    let hdr = b.cast::<RegionHeader>();
    // SAFETY: every pointer below is inside `base .. base + total_size`, which
    // the caller vouched for: the header at 0, the slot table and each ring control block at
    // offsets from the computed geometry. Alignments: page-aligned base, 64-aligned areas.
    unsafe {
        // Generation 0 first: NFs that look now see "initialising".
        (*addr_of!((*hdr).generation)).store(0, Ordering::Release);
        ptr::write_volatile(hdr, geom.to_header(std::process::id()));
        zero_volatile(
            b.add(geom.slot_table_offset),
            geom.slot_count as usize * geom.slot_size,
        );
        for r in 0..geom.ring_count as usize {
            zero_volatile(
                b.add(geom.ring_area_offset + r * geom.ring_stride),
                RING_CONTROL_SIZE,
            );
        }
        let gen = next_generation(old_gen);
        // Release pairs with the Acquire load of `generation` in `validate`: an NF that sees
        // the new generation sees the header and zeroed slots and rings written above.
        (*addr_of!((*hdr).generation)).store(gen, Ordering::Release);
        gen
    }
}

/// Reads, copies and validates the header at `base`; returns the geometry and generation.
///
/// # Safety
/// `base .. base + len` is readable memory that stays mapped for the duration of the call.
unsafe fn validate(base: *mut u8, len: usize) -> Result<(Geometry, u64), RegionError> {
    if len < HEADER_SIZE {
        return Err(RegionError::Truncated {
            len,
            need: HEADER_SIZE,
        });
    }
    let align = PAGE_SIZE;
    if base.is_null() || (base as usize) % align != 0 {
        return Err(RegionError::MisalignedBase {
            addr: base as usize,
            align,
        });
    }
    let hdr = base.cast::<RegionHeader>().cast_const();
    macro_rules! rd {
        ($f:ident) => {
            // SAFETY: `len >= HEADER_SIZE` and `base` is page aligned, so every header field is
            // in bounds and aligned; copied out once with a volatile read (no reference).
            unsafe { ptr::read_volatile(addr_of!((*hdr).$f)) }
        };
    }
    let magic = rd!(magic);
    if magic != MAGIC {
        return Err(RegionError::BadMagic { found: magic });
    }
    let version = rd!(abi_version);
    if version != ABI_VERSION {
        return Err(RegionError::VersionMismatch {
            found: version,
            expected: ABI_VERSION,
        });
    }
    // SAFETY: in bounds and aligned (as in `rd!`); any bit pattern is a valid AtomicU64.
    let gen_word = unsafe { &*addr_of!((*hdr).generation) };
    // Acquire pairs with the core's Release store at the end of `init_layout`.
    let generation = gen_word.load(Ordering::Acquire);
    if generation == 0 {
        return Err(RegionError::NotInitialised);
    }
    let header_size = rd!(header_size);
    if header_size as usize != HEADER_SIZE {
        return Err(RegionError::BadRecordSize {
            what: "header_size",
            found: u64::from(header_size),
            expected: HEADER_SIZE as u64,
        });
    }
    let total_size = rd!(total_size);
    if !total_size.is_power_of_two() || !(MIN_REGION_SIZE..=MAX_REGION_SIZE).contains(&total_size) {
        return Err(RegionError::BadTotalSize { total_size });
    }
    let total = match usize::try_from(total_size) {
        Ok(t) if t <= len => t,
        _ => {
            return Err(RegionError::MappingTooSmall {
                total_size,
                mapping: len,
            })
        }
    };

    let slot_count = rd!(slot_count);
    let slot_size = rd!(slot_size);
    let ring_count = rd!(ring_count);
    let buf_size = rd!(buf_size);
    let buf_count = rd!(buf_count);
    let slot_table_offset = rd!(slot_table_offset);
    let ring_area_offset = rd!(ring_area_offset);
    let buf_area_offset = rd!(buf_area_offset);
    let buf_region_size = rd!(buf_region_size);
    let kind = match rd!(kind) {
        region_kind::COMBINED => RegionKind::Combined,
        region_kind::DOMAIN => RegionKind::Domain,
        region_kind::CONTROL => RegionKind::Control {
            buf_area_offset,
            buf_region_size,
        },
        other => {
            return Err(RegionError::BadValue {
                what: "kind",
                found: u64::from(other),
            })
        }
    };
    // A domain region has no slots and no rings: its ring fields are ignored (and read as 0).
    let (ring_capacity, ring_stride, rx_rings_per_slot) = if kind.has_rings() {
        (rd!(ring_capacity), rd!(ring_stride), rd!(rx_rings_per_slot))
    } else {
        for (what, v) in [("slot_count", slot_count), ("ring_count", ring_count)] {
            if v != 0 {
                return Err(RegionError::BadValue {
                    what,
                    found: u64::from(v),
                });
            }
        }
        (0, 0, 0)
    };

    for (what, v) in [("buf_count", buf_count), ("buf_size", buf_size)] {
        if v == 0 {
            return Err(RegionError::ZeroCount { what });
        }
    }
    if kind.has_rings() {
        for (what, v) in [
            ("slot_count", slot_count),
            ("ring_count", ring_count),
            ("rx_rings_per_slot", rx_rings_per_slot),
            ("ring_capacity", ring_capacity),
        ] {
            if v == 0 {
                return Err(RegionError::ZeroCount { what });
            }
        }
    }
    if slot_size as usize != SLOT_SIZE {
        return Err(RegionError::BadRecordSize {
            what: "slot_size",
            found: u64::from(slot_size),
            expected: SLOT_SIZE as u64,
        });
    }
    if kind.has_rings()
        && (!ring_capacity.is_power_of_two()
            || !(MIN_RING_CAPACITY..=MAX_RING_CAPACITY).contains(&ring_capacity))
    {
        return Err(RegionError::BadValue {
            what: "ring_capacity",
            found: u64::from(ring_capacity),
        });
    }
    if rx_rings_per_slot > MAX_RX_RINGS_PER_SLOT {
        return Err(RegionError::BadValue {
            what: "rx_rings_per_slot",
            found: u64::from(rx_rings_per_slot),
        });
    }
    if buf_size % BUF_ALIGN != 0 || buf_size > MAX_BUF_SIZE {
        return Err(RegionError::BadValue {
            what: "buf_size",
            found: u64::from(buf_size),
        });
    }
    let expected_rings = u64::from(slot_count) * (u64::from(rx_rings_per_slot) + 1);
    if u64::from(ring_count) != expected_rings {
        return Err(RegionError::RingCountMismatch {
            found: ring_count,
            expected: expected_rings,
        });
    }
    let min_stride = RING_CONTROL_SIZE as u64 + u64::from(ring_capacity) * DESC_SIZE as u64;
    if kind.has_rings() && (ring_stride < min_stride || ring_stride % 64 != 0) {
        return Err(RegionError::BadRingStride {
            found: ring_stride,
            min: min_stride,
        });
    }
    let buf_area_len = u64::from(buf_count) * u64::from(buf_size);
    if kind.has_buffers() {
        if buf_region_size != total_size {
            return Err(RegionError::BadValue {
                what: "buf_region_size",
                found: buf_region_size,
            });
        }
    } else {
        // Control region: the buffers are in the domain region, `buf_region_size` bytes long.
        if !buf_region_size.is_power_of_two()
            || !(MIN_REGION_SIZE..=MAX_REGION_SIZE).contains(&buf_region_size)
            || usize::try_from(buf_region_size).is_err()
        {
            return Err(RegionError::BadValue {
                what: "buf_region_size",
                found: buf_region_size,
            });
        }
        if buf_area_offset % AREA_ALIGN != 0 {
            return Err(RegionError::Misaligned {
                what: "buffer area",
                offset: buf_area_offset,
                align: AREA_ALIGN,
            });
        }
        match buf_area_offset.checked_add(buf_area_len) {
            Some(end) if end <= buf_region_size && buf_area_offset >= HEADER_SIZE as u64 => {}
            _ => {
                return Err(RegionError::OutOfBounds {
                    what: "buffer area",
                    offset: buf_area_offset,
                    len: buf_area_len,
                    mapping: buf_region_size,
                })
            }
        }
    }

    // Areas: alignment, bounds (checked arithmetic), then pairwise disjointness.
    let all_areas = [
        ("region header", 0u64, HEADER_SIZE as u64, 64u64),
        (
            "slot table",
            slot_table_offset,
            u64::from(slot_count) * SLOT_SIZE as u64,
            64,
        ),
        (
            "ring area",
            ring_area_offset,
            u64::from(ring_count).saturating_mul(ring_stride),
            64,
        ),
        ("buffer area", buf_area_offset, buf_area_len, AREA_ALIGN),
    ];
    let mut areas = [("", 0, 0, 1); 4];
    let mut n_areas = 0;
    for a in all_areas {
        let keep = match a.0 {
            "slot table" | "ring area" => kind.has_rings(),
            "buffer area" => kind.has_buffers(),
            _ => true,
        };
        if keep {
            areas[n_areas] = a;
            n_areas += 1;
        }
    }
    let areas = &mut areas[..n_areas];
    for &(what, offset, alen, align) in areas.iter() {
        if offset % align != 0 {
            return Err(RegionError::Misaligned {
                what,
                offset,
                align,
            });
        }
        match offset.checked_add(alen) {
            Some(end) if end <= total_size => {}
            _ => {
                return Err(RegionError::OutOfBounds {
                    what,
                    offset,
                    len: alen,
                    mapping: total_size,
                })
            }
        }
    }
    areas.sort_by_key(|a| a.1);
    for w in areas.windows(2) {
        // In bounds, so `offset + len` cannot overflow.
        if w[0].1 + w[0].2 > w[1].1 {
            return Err(RegionError::Overlap {
                first: w[0].0,
                second: w[1].0,
            });
        }
    }

    // Everything is inside `total <= len`, which fits a usize, so these conversions succeed.
    let us = |v: u64| usize::try_from(v).expect("bounded by the mapping length");
    let mut domain_name = [0u8; NAME_LEN];
    // SAFETY: in bounds and aligned (as in `rd!`); copied out with a volatile read.
    domain_name.copy_from_slice(&unsafe { ptr::read_volatile(addr_of!((*hdr).domain_name)) });
    let geom = Geometry {
        kind,
        domain_id: rd!(domain_id),
        domain_name,
        total_size: total,
        slot_table_offset: us(slot_table_offset),
        slot_count,
        slot_size: SLOT_SIZE,
        ring_area_offset: us(ring_area_offset),
        ring_count,
        ring_capacity,
        ring_stride: us(ring_stride),
        rx_rings_per_slot,
        buf_area_offset: us(buf_area_offset),
        buf_size,
        buf_count,
    };
    Ok((geom, generation))
}

/// The header's live words (the static geometry is in [`Region::geometry`]).
#[derive(Clone, Copy, Debug)]
pub struct HeaderRef<'a> {
    hdr: NonNull<RegionHeader>,
    _region: PhantomData<&'a Region>,
}

impl HeaderRef<'_> {
    fn gen_word(&self) -> &AtomicU64 {
        // SAFETY: the header is at the (page-aligned) start of the live mapping; the field is
        // borrowed only as an atomic.
        unsafe { &*addr_of!((*self.hdr.as_ptr()).generation) }
    }

    fn heartbeat_word(&self) -> &AtomicU64 {
        // SAFETY: as in `gen_word`.
        unsafe { &*addr_of!((*self.hdr.as_ptr()).core_heartbeat) }
    }

    /// Current generation (Acquire). 0 while the core re-initialises; a value different from
    /// [`Region::generation`] means the core restarted: the NF must re-attach.
    #[must_use]
    pub fn generation(&self) -> u64 {
        // Acquire pairs with the core's Release store in `init_layout`.
        self.gen_word().load(Ordering::Acquire)
    }

    /// The core's heartbeat counter.
    #[must_use]
    pub fn core_heartbeat(&self) -> u64 {
        self.heartbeat_word().load(Ordering::Relaxed)
    }

    /// Core: increments the heartbeat (call periodically, e.g. every 10 ms, never per packet).
    pub fn bump_core_heartbeat(&self) {
        self.heartbeat_word().fetch_add(1, Ordering::Relaxed);
    }

    /// Process id of the core that initialised the region.
    #[must_use]
    pub fn core_pid(&self) -> u32 {
        // SAFETY: as in `gen_word`.
        unsafe { &*addr_of!((*self.hdr.as_ptr()).core_pid) }.load(Ordering::Relaxed)
    }
}

/// One NF slot. Every method is a single atomic or volatile access (or a documented sequence).
#[derive(Clone, Copy, Debug)]
pub struct SlotRef<'a> {
    slot: NonNull<NfSlot>,
    index: u32,
    geom: &'a Geometry,
}

macro_rules! slot_atomic {
    ($(#[$m:meta])* $name:ident, $field:ident, $ty:ty) => {
        $(#[$m])*
        fn $name(&self) -> &$ty {
            // SAFETY: `slot` points at a 64-aligned slot inside the live mapping (Region::slot,
            // which the `'a` borrow keeps alive); the field is borrowed only as an atomic.
            unsafe { &*addr_of!((*self.slot.as_ptr()).$field) }
        }
    };
}

impl SlotRef<'_> {
    slot_atomic!(state_w, state, AtomicU32);
    slot_atomic!(pid_w, nf_pid, AtomicU32);
    slot_atomic!(gen_w, attach_generation, AtomicU64);
    slot_atomic!(heartbeat_w, heartbeat, AtomicU64);
    slot_atomic!(service_w, service_id, AtomicU32);
    slot_atomic!(instance_w, instance, AtomicU32);
    slot_atomic!(tx_ring_w, tx_ring, AtomicU32);
    slot_atomic!(rx_count_w, rx_ring_count, AtomicU32);

    fn rx_ring_w(&self, i: usize) -> &AtomicU32 {
        // SAFETY: as in `slot_atomic!`; callers pass `i < MAX_RX_RINGS_PER_SLOT`, so the element
        // is inside the array (the index expression is bounds checked on the raw array place).
        unsafe { &*addr_of!((*self.slot.as_ptr()).rx_ring[i]) }
    }

    fn counter_w(&self, c: NfCounter) -> &AtomicU64 {
        // SAFETY: as in `rx_ring_w`; `as_index() < NF_COUNTER_COUNT`.
        unsafe { &*addr_of!((*self.slot.as_ptr()).counters[c.as_index()]) }
    }

    /// Slot index.
    #[must_use]
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Raw NUL-padded name (volatile copy).
    #[must_use]
    pub fn name_raw(&self) -> [u8; NAME_LEN] {
        // SAFETY: in the live mapping (as in `slot_atomic!`); copied out with a volatile read.
        unsafe { ptr::read_volatile(addr_of!((*self.slot.as_ptr()).name)) }
    }

    /// Name up to the first NUL (lossy UTF-8).
    #[must_use]
    pub fn name(&self) -> String {
        name_to_string(&self.name_raw())
    }

    /// Whether the slot's name is exactly `name`.
    #[must_use]
    pub fn name_matches(&self, name: &str) -> bool {
        name_to_field(name).is_ok_and(|f| f == self.name_raw())
    }

    /// Raw state word (Acquire: pairs with the Release of whoever set it).
    #[must_use]
    pub fn state_raw(&self) -> u32 {
        self.state_w().load(Ordering::Acquire)
    }

    /// State, or `None` for a garbage word.
    #[must_use]
    pub fn state(&self) -> Option<SlotState> {
        SlotState::from_raw(self.state_raw())
    }

    /// Sets the state (Release). The core uses it for FREE and QUARANTINED.
    pub fn set_state(&self, s: SlotState) {
        self.state_w().store(s.as_raw(), Ordering::Release);
    }

    /// Core: assigns the slot to NF `name`: writes name, ids, the ring ids of this slot (per
    /// [`SlotRings::for_slot`]), clears the NF-written words, then publishes RESERVED
    /// (Release; pairs with the NF's Acquire in [`attach`](Self::attach)). The caller resets the
    /// slot's rings ([`Region::reset_ring`]) before this.
    pub fn reserve(
        &self,
        name: &str,
        service_id: u32,
        instance: u32,
    ) -> Result<SlotRings, RegionError> {
        let field = name_to_field(name).map_err(RegionError::Layout)?;
        let rings = self
            .geom
            .slot_rings(self.index)
            .expect("slot index and ring ids validated with the geometry");
        // SAFETY: in the live mapping (as in `slot_atomic!`); written with a volatile store.
        unsafe { ptr::write_volatile(addr_of_mut!((*self.slot.as_ptr()).name), field) };
        self.service_w().store(service_id, Ordering::Relaxed);
        self.instance_w().store(instance, Ordering::Relaxed);
        self.tx_ring_w().store(rings.tx, Ordering::Relaxed);
        self.rx_count_w().store(rings.rx_count, Ordering::Relaxed);
        for w in 0..MAX_RX_RINGS_PER_SLOT {
            let id = rings.rx(w).unwrap_or(0);
            self.rx_ring_w(w as usize).store(id, Ordering::Relaxed);
        }
        self.pid_w().store(0, Ordering::Relaxed);
        self.gen_w().store(0, Ordering::Relaxed);
        self.heartbeat_w().store(0, Ordering::Relaxed);
        for c in NfCounter::ALL {
            self.counter_w(c).store(0, Ordering::Relaxed);
        }
        self.state_w()
            .store(slot_state::RESERVED, Ordering::Release);
        Ok(rings)
    }

    /// NF: claims the slot (RESERVED → ATTACHED, AcqRel), then records `generation`
    /// ([`Region::generation`]) and `pid`. Fails if the slot is not RESERVED.
    pub fn attach(&self, generation: u64, pid: u32) -> Result<(), RegionError> {
        self.transition(slot_state::RESERVED, slot_state::ATTACHED)?;
        self.pid_w().store(pid, Ordering::Relaxed);
        self.gen_w().store(generation, Ordering::Release);
        Ok(())
    }

    /// NF: marks a clean exit (ATTACHED → DETACHED).
    pub fn detach(&self) -> Result<(), RegionError> {
        self.transition(slot_state::ATTACHED, slot_state::DETACHED)
    }

    fn transition(&self, from: u32, to: u32) -> Result<(), RegionError> {
        // AcqRel: Acquire pairs with the core's Release in `reserve` (we then read its ring ids);
        // Release publishes our earlier writes to the core.
        self.state_w()
            .compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| ())
            .map_err(|found| RegionError::SlotState {
                slot: self.index,
                expected: from,
                found,
            })
    }

    /// NF process id (NF-written; untrusted).
    #[must_use]
    pub fn nf_pid(&self) -> u32 {
        self.pid_w().load(Ordering::Relaxed)
    }

    /// Generation the NF attached under (NF-written; untrusted).
    #[must_use]
    pub fn attach_generation(&self) -> u64 {
        self.gen_w().load(Ordering::Acquire)
    }

    /// NF heartbeat counter (NF-written; untrusted).
    #[must_use]
    pub fn heartbeat(&self) -> u64 {
        self.heartbeat_w().load(Ordering::Relaxed)
    }

    /// NF: increments the heartbeat.
    pub fn bump_heartbeat(&self) {
        // The NF is the only writer: a relaxed load and store, no locked read-modify-write.
        let w = self.heartbeat_w();
        w.store(w.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
    }

    /// NF: writes `pid` and `generation`, then moves the state from `from` (RESERVED, or
    /// DETACHED for a re-attach) to ATTACHED with AcqRel: the Release publishes pid and
    /// generation to the core's Acquire load of the state; the Acquire pairs with the core's
    /// Release in [`reserve`](Self::reserve). Returns the state found if it was not `from`.
    pub fn claim(&self, from: u32, pid: u32, generation: u64) -> Result<(), u32> {
        self.pid_w().store(pid, Ordering::Relaxed);
        self.gen_w().store(generation, Ordering::Relaxed);
        self.state_w()
            .compare_exchange(
                from,
                slot_state::ATTACHED,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .map(|_| ())
    }

    /// NF: takes over a slot left ATTACHED by dead process `dead_pid` (0: a guest): claims the
    /// pid word first (two NFs racing for the same dead slot cannot both win), writes the
    /// generation and re-publishes ATTACHED with Release.
    pub fn take_over(&self, dead_pid: u32, pid: u32, generation: u64) -> Result<(), u32> {
        if dead_pid != 0 {
            self.pid_w()
                .compare_exchange(dead_pid, pid, Ordering::AcqRel, Ordering::Acquire)
                .map_err(|_| slot_state::ATTACHED)?;
        } else {
            self.pid_w().store(pid, Ordering::Relaxed);
        }
        self.gen_w().store(generation, Ordering::Relaxed);
        self.state_w()
            .compare_exchange(
                slot_state::ATTACHED,
                slot_state::ATTACHED,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .map(|_| ())
    }

    /// NF: undoes a claim made under a stale generation (ATTACHED back to `prev`, only if
    /// still ATTACHED).
    pub fn unclaim(&self, prev: u32) {
        let _ = self.state_w().compare_exchange(
            slot_state::ATTACHED,
            prev,
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
    }

    /// Service id (core-written).
    #[must_use]
    pub fn service_id(&self) -> u32 {
        self.service_w().load(Ordering::Relaxed)
    }

    /// Instance number (core-written).
    #[must_use]
    pub fn instance(&self) -> u32 {
        self.instance_w().load(Ordering::Relaxed)
    }

    /// TX ring id as written by the core. The core itself never reads this back; an NF passes
    /// it to [`Region::producer`], which range-checks it.
    #[must_use]
    pub fn tx_ring(&self) -> u32 {
        self.tx_ring_w().load(Ordering::Relaxed)
    }

    /// Number of RX rings as written by the core.
    #[must_use]
    pub fn rx_ring_count(&self) -> u32 {
        self.rx_count_w().load(Ordering::Relaxed)
    }

    /// RX ring id of worker `worker` as written by the core, or `None` if `worker` is beyond
    /// the count written (or the array).
    #[must_use]
    pub fn rx_ring(&self, worker: u32) -> Option<u32> {
        if worker >= self.rx_ring_count().min(MAX_RX_RINGS_PER_SLOT) {
            return None;
        }
        Some(self.rx_ring_w(worker as usize).load(Ordering::Relaxed))
    }

    /// Reads an NF-written counter (untrusted).
    #[must_use]
    pub fn counter(&self, c: NfCounter) -> u64 {
        self.counter_w(c).load(Ordering::Relaxed)
    }

    /// NF: adds `n` to a counter (single writer, so a relaxed load + store, no locked RMW).
    #[inline]
    pub fn add_counter(&self, c: NfCounter, n: u64) {
        let w = self.counter_w(c);
        w.store(w.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }
}

/// Ring memory inside a mapped region: the [`RingMem`] behind [`Producer`] and [`Consumer`].
/// Holds the region alive and the in-process claim on the ring; dropping it releases the claim.
pub struct ShmRing {
    ctl: NonNull<RingControl>,
    descs: NonNull<Descriptor>,
    region: Arc<Inner>,
    ring: u32,
    bit: u8,
}

impl core::fmt::Debug for ShmRing {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ShmRing").field("ring", &self.ring).finish()
    }
}

// SAFETY: the pointers target the process-wide mapping that `region` keeps alive; all accesses
// are atomics or volatile copies, valid from any thread. The claim bit makes this the only
// handle of its role for the ring in this process, so moving it to another thread cannot create
// a second producer or consumer.
unsafe impl Send for ShmRing {}

impl Drop for ShmRing {
    fn drop(&mut self) {
        // Release pairs with the AcqRel of the next `claim`/`reset_ring`: our last index stores
        // are visible to whoever takes the ring next in this process.
        self.region.claims[self.ring as usize].fetch_and(!self.bit, Ordering::Release);
    }
}

macro_rules! ctl_word {
    ($name:ident, $field:ident) => {
        #[inline(always)]
        fn $name(&self) -> &AtomicU32 {
            // SAFETY: `ctl` is a 64-aligned control block inside the mapping that `region`
            // keeps alive (Region::ring_ctl); the field is borrowed only as an atomic.
            unsafe { &*addr_of!((*self.ctl.as_ptr()).$field) }
        }
    };
}

impl ShmRing {
    ctl_word!(prod_w, prod);
    ctl_word!(cons_w, cons);
    ctl_word!(sleeping_w, sleeping);
    ctl_word!(wake_seq_w, wake_seq);
    ctl_word!(sleep_seq_w, sleep_seq);
}

impl crate::ring::Sealed for ShmRing {}

impl RingMem for ShmRing {
    #[inline(always)]
    fn load_prod(&self, o: Ordering) -> u32 {
        self.prod_w().load(o)
    }
    #[inline(always)]
    fn store_prod(&self, v: u32, o: Ordering) {
        self.prod_w().store(v, o);
    }
    #[inline(always)]
    fn load_cons(&self, o: Ordering) -> u32 {
        self.cons_w().load(o)
    }
    #[inline(always)]
    fn store_cons(&self, v: u32, o: Ordering) {
        self.cons_w().store(v, o);
    }
    #[inline(always)]
    fn load_sleeping(&self, o: Ordering) -> u32 {
        self.sleeping_w().load(o)
    }
    #[inline(always)]
    fn store_sleeping(&self, v: u32, o: Ordering) {
        self.sleeping_w().store(v, o);
    }
    #[inline(always)]
    fn load_sleep_seq(&self, o: Ordering) -> u32 {
        self.sleep_seq_w().load(o)
    }
    #[inline(always)]
    fn store_sleep_seq(&self, v: u32, o: Ordering) {
        self.sleep_seq_w().store(v, o);
    }
    #[inline(always)]
    fn load_wake_seq(&self, o: Ordering) -> u32 {
        self.wake_seq_w().load(o)
    }
    #[inline(always)]
    fn store_wake_seq(&self, v: u32, o: Ordering) {
        self.wake_seq_w().store(v, o);
    }
    #[inline(always)]
    fn fence_seq_cst(&self) {
        std::sync::atomic::fence(Ordering::SeqCst);
    }
    #[inline(always)]
    unsafe fn read_desc(&self, idx: u32) -> Descriptor {
        // SAFETY: caller guarantees `idx < capacity`; the array has `capacity` 16-byte slots
        // inside the mapping (validated stride), 16-aligned.
        unsafe { crate::desc::load_volatile(self.descs.as_ptr().add(idx as usize)) }
    }
    #[inline(always)]
    unsafe fn write_desc(&self, idx: u32, d: Descriptor) {
        // SAFETY: as in `read_desc`; the slot is one only we write right now.
        unsafe { crate::desc::store_volatile(self.descs.as_ptr().add(idx as usize), d) }
    }
    fn futex_wait(&self, expected: u32, timeout: Duration) -> FutexWait {
        crate::futex::wait(self.wake_seq_w(), expected, timeout)
    }
    fn futex_wake(&self) {
        crate::futex::wake(self.wake_seq_w());
    }
}

/// The doorbell words of one ring ([`Region::doorbell`]): `sleeping`, `wake_seq` and
/// `sleep_seq`, reachable only as atomics. Anyone mapping the ring may write them.
pub struct Doorbell {
    ctl: NonNull<RingControl>,
    _region: Region,
}

// SAFETY: `ctl` points into the process-wide mapping that `_region` keeps alive; it is only
// used for atomic accesses, valid from any thread.
unsafe impl Send for Doorbell {}
// SAFETY: as for `Send`.
unsafe impl Sync for Doorbell {}

impl core::fmt::Debug for Doorbell {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Doorbell").field("ctl", &self.ctl).finish()
    }
}

impl Doorbell {
    /// Set by a consumer that is (about to be) asleep.
    #[must_use]
    pub fn sleeping(&self) -> &AtomicU32 {
        // SAFETY: `ctl` is a 64-aligned control block inside the live mapping; the field is
        // reached with addr_of! and borrowed only as an atomic.
        unsafe { &*addr_of!((*self.ctl.as_ptr()).sleeping) }
    }

    /// The futex word the producer bumps to wake the consumer.
    #[must_use]
    pub fn wake_seq(&self) -> &AtomicU32 {
        // SAFETY: as in `sleeping`.
        unsafe { &*addr_of!((*self.ctl.as_ptr()).wake_seq) }
    }

    /// The `wake_seq` value a sleeping consumer waits on.
    #[must_use]
    pub fn sleep_seq(&self) -> &AtomicU32 {
        // SAFETY: as in `sleeping`.
        unsafe { &*addr_of!((*self.ctl.as_ptr()).sleep_seq) }
    }
}

/// What keeps a [`Buffers`] mapping alive.
enum BufKeep {
    /// A region (domain or combined) that holds the buffers itself.
    Region(#[allow(dead_code)] Region),
    /// Our own mapping of the domain region file.
    Map(#[allow(dead_code)] MmapRaw),
    /// The caller of [`Buffers::attach_raw`] guarantees the mapping.
    External,
}

struct BufInner {
    /// Start of the buffer area in this process.
    area: NonNull<u8>,
    /// Its length (`buf_count * buf_size`).
    len: usize,
    /// Buffer geometry from a validated header (for an NF: its own control region's).
    geom: Geometry,
    _keep: BufKeep,
}

// SAFETY: `area` points into a process-wide mapping that `_keep` keeps alive; the bytes are
// only reached through raw pointers (or the unsafe slice functions, whose callers take on
// the contract).
unsafe impl Send for BufInner {}
// SAFETY: as for `Send`.
unsafe impl Sync for BufInner {}

/// A domain's packet buffers as an NF maps them.
///
/// The NF maps the domain region file, which every NF of the domain can write, header
/// included. So the buffer geometry (area offset, buffer size and count, file size) is taken
/// from the NF's own **control region** (which only that NF and the core map) and the domain
/// file is only checked to be long enough: a neighbour that scribbles over the domain header
/// cannot change where this NF reads or writes.
#[derive(Clone)]
pub struct Buffers {
    inner: Arc<BufInner>,
}

impl core::fmt::Debug for Buffers {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Buffers")
            .field("area", &self.inner.area)
            .field("len", &self.inner.len)
            .finish_non_exhaustive()
    }
}

impl Buffers {
    /// Checks `control` (a validated control region geometry) against a mapping of `len`
    /// bytes at `base`; returns the start of the buffer area.
    fn locate(base: *mut u8, len: usize, control: &Geometry) -> Result<NonNull<u8>, RegionError> {
        let RegionKind::Control {
            buf_region_size, ..
        } = control.kind
        else {
            return Err(RegionError::BadValue {
                what: "kind (expected a control region)",
                found: u64::from(control.kind.as_raw()),
            });
        };
        if base.is_null() || (base as usize) % PAGE_SIZE != 0 {
            return Err(RegionError::MisalignedBase {
                addr: base as usize,
                align: PAGE_SIZE,
            });
        }
        if (len as u64) < buf_region_size {
            return Err(RegionError::MappingTooSmall {
                total_size: buf_region_size,
                mapping: len,
            });
        }
        // SAFETY: the control region's validation put the buffer area inside
        // `buf_region_size <= len` bytes, so the offset is inside the mapping.
        let p = unsafe { base.add(control.buf_area_offset) };
        Ok(NonNull::new(p).expect("inside a non-null mapping"))
    }

    fn from_map(map: MmapRaw, control: &Geometry) -> Result<Self, RegionError> {
        let area = Self::locate(map.as_mut_ptr(), map.len(), control)?;
        Ok(Self {
            inner: Arc::new(BufInner {
                area,
                len: control.buf_area_len(),
                geom: *control,
                _keep: BufKeep::Map(map),
            }),
        })
    }

    /// Maps the domain region file at `path` (read-write, shared) for the NF whose validated
    /// control region geometry is `control`.
    pub fn attach_file(path: &Path, control: &Geometry) -> Result<Self, RegionError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io_err("open", path))?;
        let len = file.metadata().map_err(io_err("stat", path))?.len();
        let len = usize::try_from(len).map_err(|_| RegionError::BadValue {
            what: "file size",
            found: len,
        })?;
        if len == 0 {
            return Err(RegionError::Truncated {
                len,
                need: HEADER_SIZE,
            });
        }
        let map = MmapOptions::new()
            .len(len)
            .map_raw(&file)
            .map_err(io_err("map", path))?;
        Self::from_map(map, control)
    }

    /// The buffers in a mapping the caller made (e.g. an ivshmem BAR's `resource2`).
    pub fn attach_mmap(map: MmapRaw, control: &Geometry) -> Result<Self, RegionError> {
        Self::from_map(map, control)
    }

    /// The buffers at `base .. base + len`, any mapping the caller manages.
    ///
    /// # Safety
    /// As for [`Region::attach_raw`]: the memory stays mapped, readable and writable for as
    /// long as the returned handle or a clone exists.
    pub unsafe fn attach_raw(
        base: *mut u8,
        len: usize,
        control: &Geometry,
    ) -> Result<Self, RegionError> {
        let area = Self::locate(base, len, control)?;
        Ok(Self {
            inner: Arc::new(BufInner {
                area,
                len: control.buf_area_len(),
                geom: *control,
                _keep: BufKeep::External,
            }),
        })
    }

    /// The geometry the buffers were located with.
    #[must_use]
    pub fn geometry(&self) -> &Geometry {
        &self.inner.geom
    }

    /// Start and length of the buffer area.
    #[must_use]
    pub fn area(&self) -> (NonNull<u8>, usize) {
        (self.inner.area, self.inner.len)
    }

    /// Start of buffer `idx`, or `None` if out of range.
    #[must_use]
    pub fn buffer(&self, idx: u32) -> Option<NonNull<u8>> {
        let g = &self.inner.geom;
        if idx >= g.buf_count {
            return None;
        }
        // SAFETY: `idx < buf_count`, and the area holds `buf_count * buf_size` bytes inside
        // the mapping (`locate`, or the region's own validation).
        NonNull::new(unsafe {
            self.inner
                .area
                .as_ptr()
                .add(idx as usize * g.buf_size as usize)
        })
    }

    /// Buffer `idx` as a mutable byte slice.
    ///
    /// # Safety
    /// As for [`Region::buffer_slice_mut`]: the caller holds the buffer, no other reference to
    /// these bytes exists in this process for the slice's lifetime, and the contents are
    /// untrusted (a hostile peer may write them anyway).
    #[allow(clippy::mut_from_ref)] // exclusivity is this unsafe fn's documented contract
    pub unsafe fn buffer_slice_mut(&self, idx: u32) -> Option<&mut [u8]> {
        let p = self.buffer(idx)?;
        // SAFETY: `p .. p + buf_size` is inside the mapping (`buffer`); exclusivity is the
        // caller's contract.
        Some(unsafe {
            core::slice::from_raw_parts_mut(p.as_ptr(), self.inner.geom.buf_size as usize)
        })
    }

    /// First byte of the packet `b` refers to, re-checked against this geometry.
    pub fn packet_ptr(&self, b: &CheckedBuf) -> Result<NonNull<u8>, DescError> {
        let g = &self.inner.geom;
        let b = CheckedBuf::check(b.buf_idx(), b.data_off(), b.data_len(), g)?;
        let start = self.buffer(b.buf_idx()).ok_or(DescError::BadIndex {
            buf_idx: b.buf_idx(),
            buf_count: g.buf_count,
        })?;
        // SAFETY: `data_off + data_len <= buf_size` (checked above), so in the buffer.
        Ok(unsafe { start.add(usize::from(b.data_off())) })
    }
}

/// Where the core puts the control region of NF `nf` whose domain region is `region`:
/// `netvm-DOMAIN.PID.region` → `netvm-DOMAIN.PID.NF.ctl` in the same directory (any other
/// name: `NAME.NF.ctl`). The NF derives it the same way, so `--region` alone is enough.
#[must_use]
pub fn control_path(region: &Path, nf: &str) -> PathBuf {
    let name = region
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".region").unwrap_or(&name);
    region.with_file_name(format!("{stem}.{nf}.ctl"))
}
