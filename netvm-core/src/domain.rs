//! A trust domain at run time: its shared region, the DPDK pool whose data buffers are the
//! region's buffer area, and the core-private per-buffer table (mbuf pointer and owner).

use std::path::PathBuf;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dpdk::sys::rte_mbuf;
use dpdk::{Eal, ExtMem, ExtMemError, ExtMemRegistration, Mempool};
use netvm_shm::{Region, RegionKind, RegionParams};

use crate::CoreError;

pub use netvm_api::buffer::BUF_SIZE;

/// Owner word value of a buffer no NF holds.
pub const OWNER_NONE: u64 = 0;

/// Packs an owner word: NF index + 1 (16 bits), chain id (16), chain position (8), in port (8).
#[inline]
pub const fn owner_word(nf: u16, chain: u16, pos: u8, in_port: u8) -> u64 {
    ((nf as u64 + 1) & 0xffff)
        | ((chain as u64) << 16)
        | ((pos as u64) << 32)
        | ((in_port as u64) << 40)
}

/// Unpacked owner word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// NF index.
    pub nf: u16,
    /// Chain id.
    pub chain: u16,
    /// Position in the chain of the service the NF provides.
    pub pos: u8,
    /// Input port.
    pub in_port: u8,
}

impl Owner {
    /// Decodes; None for [`OWNER_NONE`].
    #[inline]
    pub const fn decode(w: u64) -> Option<Owner> {
        let nf1 = (w & 0xffff) as u16;
        if nf1 == 0 {
            return None;
        }
        Some(Owner {
            nf: nf1 - 1,
            chain: ((w >> 16) & 0xffff) as u16,
            pos: ((w >> 32) & 0xff) as u8,
            in_port: ((w >> 40) & 0xff) as u8,
        })
    }
}

/// Core-private facts about one buffer.
#[derive(Debug)]
pub struct BufMeta {
    /// The mbuf permanently attached to this buffer (pinned external buffer).
    pub mbuf: *mut rte_mbuf,
    /// Who holds it: [`OWNER_NONE`] or an [`owner_word`]. Written by the worker that hands the
    /// buffer to an NF, read and cleared by the worker that drains that NF's TX ring.
    pub owner: AtomicU64,
}

/// One trust domain.
pub struct Domain {
    /// Index in the config.
    pub id: u16,
    /// Name.
    pub name: String,
    /// The shared region.
    pub region: Arc<Region>,
    /// Its region file.
    pub path: PathBuf,
    /// Pool over the region's buffer area.
    pub pool: Mempool,
    /// The buffer area's registration with DPDK (IOVAs; DMA mappings per port).
    pub dma: Arc<ExtMemRegistration>,
    /// Per-buffer facts, indexed by buffer index.
    pub bufs: Box<[BufMeta]>,
    /// Start of the buffer area in this process.
    pub area: usize,
    /// Buffer count.
    pub buf_count: u32,
    /// Bytes per buffer (headroom + the domain's data room, rounded to 64).
    pub buf_size: u32,
    /// NUMA node its region, its NFs' control regions and its pool are on (`numa_node`);
    /// `None`: wherever the kernel and DPDK put them.
    pub numa_node: Option<u32>,
}

// SAFETY: the raw mbuf pointers in `bufs` are immutable after construction and point at
// DPDK-private mbuf headers whose use is governed by the ownership protocol (one holder at a
// time); everything else is Sync.
unsafe impl Sync for Domain {}
// SAFETY: as above.
unsafe impl Send for Domain {}

impl std::fmt::Debug for Domain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Domain")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Domain {
    /// Creates the region file (header and packet buffers; NFs' slots and rings live in their
    /// own control regions), registers its buffer area with DPDK for DMA, lays the pool over
    /// it, and records each buffer's mbuf. With `numa_node`, the region is bound to that node
    /// before its pages are first touched (`mbind` MPOL_BIND, then prefaulted:
    /// [`netvm_shm::numa`]) and the pool's mbuf headers come from that DPDK socket.
    pub fn create(
        eal: &Eal,
        id: u16,
        name: &str,
        dir: &std::path::Path,
        buffers: u32,
        data_room: u32,
        numa_node: Option<u32>,
    ) -> Result<Self, CoreError> {
        let buf_size = netvm_api::buffer::buf_size(data_room);
        // A region left by a dead core for this domain is re-initialised in place (new
        // generation): NFs still attached to it see the change and re-attach to this core.
        let path = orphaned_region(dir, name)
            .unwrap_or_else(|| dir.join(format!("netvm-{name}.{}.region", std::process::id())));
        let params = RegionParams {
            kind: RegionKind::Domain,
            domain_id: u32::from(id),
            domain_name: name.to_owned(),
            slot_count: 0,
            rx_rings_per_slot: 0,
            ring_capacity: 0,
            buf_size,
            buf_count: buffers,
        };
        // With a node, a dead core's file is replaced rather than re-used (only fresh pages are
        // sure to come from the node); its NFs re-attach by path all the same.
        let region = Region::create_or_replace_on(&path, &params, numa_node)
            .map_err(|e| region_error(name, &path, e))?;
        let r = Self::with_region(eal, id, name, &path, buffers, buf_size, region, numa_node);
        if r.is_err() {
            let _ = std::fs::remove_file(&path);
        }
        r
    }

    #[allow(clippy::too_many_arguments)]
    fn with_region(
        eal: &Eal,
        id: u16,
        name: &str,
        path: &std::path::Path,
        buffers: u32,
        buf_size: u32,
        region: Region,
        numa_node: Option<u32>,
    ) -> Result<Self, CoreError> {
        let elt_size = u16::try_from(buf_size).map_err(|_| {
            CoreError::Internal(format!(
                "buffer size {buf_size} of domain {name} over 65535"
            ))
        })?;
        let region = Arc::new(region);
        let (area, len) = region.buf_area().ok_or_else(|| {
            CoreError::Internal(format!("region of domain {name} has no buffer area"))
        })?;
        let ext = ExtMem {
            ptr: area,
            len,
            elt_size,
        };
        let reg = register_dma(eal, &region, area, len).map_err(|e| CoreError::Dma {
            domain: name.to_owned(),
            source: e,
        })?;
        let pool_name = format!("dom{id}");
        // The mbuf headers on the domain's node (SOCKET_ID_ANY without one).
        let socket = match numa_node {
            Some(n) => i32::try_from(n).map_err(|_| {
                CoreError::Internal(format!("NUMA node {n} of domain {name} over i32"))
            })?,
            None => -1,
        };
        // SAFETY: `area..area+len` is the region's buffer area, mapped for as long as the
        // region lives; the pool owns an Arc of the region (dropped after the pool and after
        // the registration it holds), so the mapping outlives the pool and every mbuf of it.
        // Nothing in this process treats the area as Rust-owned memory.
        let pool = unsafe {
            Mempool::new_extbuf_registered(
                eal,
                &pool_name,
                buffers,
                pool_cache(buffers),
                ext,
                Arc::clone(&reg),
                socket,
                Some(Box::new(region.clone())),
            )
        }
        .map_err(|e| CoreError::Pool {
            domain: name.to_owned(),
            source: e,
        })?;
        let base = area.as_ptr() as usize;
        let mut table: Vec<BufMeta> = (0..buffers)
            .map(|_| BufMeta {
                mbuf: std::ptr::null_mut(),
                owner: AtomicU64::new(OWNER_NONE),
            })
            .collect();
        // Take every mbuf out once to learn which buffer each one is pinned to, then return them.
        let mut all = Vec::with_capacity(buffers as usize);
        while let Some(m) = pool.alloc() {
            all.push(m);
        }
        for m in &all {
            let off = (m.buf_addr() as usize).wrapping_sub(base);
            let idx = off / buf_size as usize;
            if off % buf_size as usize != 0 || idx >= table.len() {
                return Err(CoreError::Internal(format!(
                    "mbuf buffer at offset {off} is not a buffer of domain {name}"
                )));
            }
            table[idx].mbuf = m.as_ptr();
        }
        if all.len() != buffers as usize || table.iter().any(|b| b.mbuf.is_null()) {
            return Err(CoreError::Internal(format!(
                "pool of domain {name} gave {} of {buffers} mbufs",
                all.len()
            )));
        }
        drop(all);
        Ok(Self {
            id,
            name: name.to_owned(),
            region,
            path: path.to_path_buf(),
            pool,
            dma: reg,
            bufs: table.into_boxed_slice(),
            area: base,
            buf_count: buffers,
            buf_size,
            numa_node,
        })
    }

    /// Buffer index of an mbuf of this domain's pool.
    ///
    /// # Safety
    /// `m` must be a valid mbuf owned by the caller.
    #[inline]
    pub unsafe fn buf_index(&self, m: *mut rte_mbuf) -> Option<u32> {
        // SAFETY: m is a valid mbuf owned by the caller (the function's contract).
        let addr = unsafe { (*m).buf_addr } as usize;
        let off = addr.wrapping_sub(self.area);
        let idx = off / self.buf_size as usize;
        if idx < self.bufs.len() {
            u32::try_from(idx).ok()
        } else {
            None
        }
    }

    /// Counts buffers held by NFs.
    pub fn owned_by_nfs(&self) -> u64 {
        self.bufs
            .iter()
            .filter(|b| b.owner.load(Ordering::Relaxed) != OWNER_NONE)
            .count() as u64
    }

    /// Whether the pool has every buffer back.
    pub fn pool_full(&self) -> bool {
        self.pool.is_full()
    }

    /// Removes the region file.
    pub fn remove_file(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A region error of domain `name`: placing it on its NUMA node failing is
/// [`CoreError::Numa`] (names the domain and node), anything else [`CoreError::Region`].
fn region_error(name: &str, path: &std::path::Path, e: netvm_shm::RegionError) -> CoreError {
    match e {
        netvm_shm::RegionError::NumaBind { node, .. }
        | netvm_shm::RegionError::NumaPopulate { node, .. } => CoreError::Numa {
            domain: name.to_owned(),
            node,
            source: e,
        },
        e => CoreError::Region {
            path: path.to_path_buf(),
            source: e,
        },
    }
}

/// The NUMA placement rule (`netvm_api::numa`) against this machine's topology (hwloc, else
/// sysfs; via `hugepage-tools`), checked at start as `netvm-manager check` does. Nothing is
/// read unless a domain names a `numa_node`.
pub fn check_numa(cfg: &netvm_api::config::Config) -> Result<(), CoreError> {
    let Some(first) = cfg.domains.iter().position(|d| d.numa_node.is_some()) else {
        return Ok(());
    };
    let t = hugepage_tools::Topology::discover().map_err(|e| {
        CoreError::Config(netvm_api::config::ConfigError {
            path: format!("domains[{first}].numa_node"),
            reason: format!(
                "cannot read this machine's NUMA topology: {}",
                hugepage_tools::error_chain(&e)
            ),
        })
    })?;
    let topo = netvm_api::numa::NumaTopology::new(
        t.nodes
            .iter()
            .map(|n| (n.id, n.cpus.iter().filter_map(|&c| usize::try_from(c).ok()))),
    );
    Ok(cfg.check_numa(&topo)?)
}

/// Per-lcore mempool cache size for a pool of `n` buffers: DPDK requires it below n / 1.5
/// and at most 512; 256 keeps most alloc/free traffic off the shared ring.
fn pool_cache(n: u32) -> u32 {
    (n * 2 / 3).saturating_sub(1).min(256)
}

/// The newest `netvm-<domain>.<pid>.region` in `dir` whose core `pid` is dead (a crashed core's
/// region, possibly still mapped by its NFs), if any. A core that is a zombie is dead
/// ([`netvm_shm::proc::pid_alive`]).
fn orphaned_region(dir: &std::path::Path, domain: &str) -> Option<PathBuf> {
    let prefix = format!("netvm-{domain}.");
    let me = std::process::id();
    let mut best: Option<(std::time::SystemTime, PathBuf, u32)> = None;
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let file = e.file_name();
        let Some(pid) = file
            .to_str()
            .and_then(|f| f.strip_prefix(&prefix))
            .and_then(|r| r.strip_suffix(".region"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        // pid 0 and pids beyond pid_t were never a core's: not an orphan, just a stray name.
        if pid == 0 || libc::pid_t::try_from(pid).is_err() {
            continue;
        }
        let dead = pid != me && !netvm_shm::proc::pid_alive(pid);
        let Ok(md) = e.metadata() else { continue };
        if dead && md.is_file() {
            let t = md.modified().unwrap_or(std::time::UNIX_EPOCH);
            if best.as_ref().is_none_or(|(bt, _, _)| t > *bt) {
                best = Some((t, e.path(), pid));
            }
        }
    }
    best.map(|(_, path, pid)| {
        eprintln!("netvm-core: re-initialising {} (its core, pid {pid}, is gone) in place: NFs still attached re-attach", path.display());
        path
    })
}

/// Registers the buffer area `area .. area + len` of `region` with DPDK as external memory, in
/// whole pages of the file's page size (the domain layout starts the area on a 2 MiB boundary
/// and the region size is a power of two, so the rounded-up length stays inside the mapping).
fn register_dma(
    eal: &Eal,
    region: &Region,
    area: NonNull<u8>,
    len: usize,
) -> Result<Arc<ExtMemRegistration>, ExtMemError> {
    let page = region
        .path()
        .filter(|_| region.on_hugetlbfs() == Some(true))
        .and_then(hugepage_size)
        .unwrap_or(4096);
    let offset = region.geometry().buf_area_offset();
    let room = region.mapping_len().saturating_sub(offset);
    let rounded = len.div_ceil(page).saturating_mul(page).min(room);
    // SAFETY: `area .. area + rounded` lies inside the region's mapping (checked against the
    // mapping length just above), which the pool keeps alive (it owns an Arc of the region and
    // drops the registration before it); nothing treats it as Rust-owned memory.
    unsafe { ExtMemRegistration::register(eal, area, rounded, page) }.map(Arc::new)
}

/// Page size of the hugetlbfs file at `path` (`statfs` block size).
fn hugepage_size(path: &std::path::Path) -> Option<usize> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: an all-zero statfs is a valid value for the kernel to overwrite.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a writable statfs, both live for the call.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    usize::try_from(st.f_bsize)
        .ok()
        .filter(|b| b.is_power_of_two())
}
