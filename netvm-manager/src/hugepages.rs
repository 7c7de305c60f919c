//! How many hugepages an instance needs, reserving them when too few are free, and giving
//! them back.
//!
//! Need = every domain's region and every NF's control region (laid out exactly as the core
//! will, with netvm-shm's [`RegionLayout`]: powers of two) when the region directory is on
//! hugetlbfs, plus DPDK's own
//! memory (about 256 MiB, plus the core-private mbuf headers of every pool) unless the config
//! runs DPDK with `no_huge_mb`. If fewer pages are available, the default-size pool is grown by
//! the difference and the [`Reservation`] remembers the count before, so teardown can put it
//! back — but only if nobody changed it since.

use std::path::{Path, PathBuf};

use hugepage_tools::{HugepageStatus, PageSize};
use netvm_api::config::Config;
use netvm_shm::{LayoutError, RegionKind, RegionLayout, RegionParams};
use serde::{Deserialize, Serialize};

use crate::error::ManagerError;

/// DPDK's own hugepage use besides the mbuf headers (heap, rings, ethdev queues).
pub const DPDK_BASE_BYTES: u64 = 256 << 20;
/// Core-private bytes per packet buffer in DPDK memory (mbuf header, private area, mempool
/// object header, cache-line padding), rounded up.
pub const DPDK_BYTES_PER_BUFFER: u64 = 256;

/// The exact size of domain `i`'s region, as the core lays it out.
pub fn region_size(cfg: &Config, i: usize) -> Result<u64, LayoutError> {
    Ok(domain_layout(cfg, i)?.geometry().total_size() as u64)
}

fn domain_layout(cfg: &Config, i: usize) -> Result<RegionLayout, LayoutError> {
    let d = &cfg.domains[i];
    RegionLayout::compute(&RegionParams {
        kind: RegionKind::Domain,
        domain_id: u32::try_from(i).unwrap_or(u32::MAX),
        domain_name: d.name.clone(),
        slot_count: 0,
        rx_rings_per_slot: 0,
        ring_capacity: 0,
        buf_size: d.buf_size(),
        buf_count: d.buffers,
    })
}

/// The exact size of each NF's control region of domain `i` (slot and rings), times its NFs.
pub fn control_bytes(cfg: &Config, i: usize) -> Result<u64, LayoutError> {
    let d = &cfg.domains[i];
    let nfs = cfg.nfs.iter().filter(|n| n.domain == d.name).count() as u64;
    Ok(one_control_bytes(cfg, i)?.saturating_mul(nfs))
}

/// Bytes of one NF control region in domain `i`.
fn one_control_bytes(cfg: &Config, i: usize) -> Result<u64, LayoutError> {
    let dom = domain_layout(cfg, i)?;
    let ctl = RegionLayout::compute(&RegionLayout::control_params(
        dom.geometry(),
        u32::try_from(cfg.workers.len()).unwrap_or(u32::MAX),
        cfg.ring_capacity,
    ))?;
    Ok(ctl.geometry().total_size() as u64)
}

/// Bytes of the control regions NFs added at run time may make: `spare_nfs` of the largest.
pub fn spare_control_bytes(cfg: &Config) -> Result<u64, LayoutError> {
    let mut largest = 0u64;
    for i in 0..cfg.domains.len() {
        largest = largest.max(one_control_bytes(cfg, i)?);
    }
    Ok(largest.saturating_mul(u64::from(cfg.spare_nfs)))
}

/// Hugepage memory an instance needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Need {
    /// Bytes of region files (0 when they do not live on hugetlbfs).
    pub region_bytes: u64,
    /// DPDK's own bytes (0 with `no_huge_mb`).
    pub dpdk_bytes: u64,
}

impl Need {
    /// Total bytes.
    pub fn bytes(&self) -> u64 {
        self.region_bytes.saturating_add(self.dpdk_bytes)
    }

    /// Pages of `size`, rounded up.
    pub fn pages(&self, size: PageSize) -> u64 {
        self.bytes().div_ceil(size.bytes().max(1))
    }
}

/// Estimates the need of `cfg`; `regions_on_hugetlbfs` says whether region files take
/// hugepages.
pub fn estimate(cfg: &Config, regions_on_hugetlbfs: bool) -> Result<Need, LayoutError> {
    let mut region_bytes = 0u64;
    for i in 0..cfg.domains.len() {
        region_bytes = region_bytes
            .saturating_add(region_size(cfg, i)?)
            .saturating_add(control_bytes(cfg, i)?);
    }
    region_bytes = region_bytes.saturating_add(spare_control_bytes(cfg)?);
    let buffers: u64 = cfg.domains.iter().map(|d| u64::from(d.buffers)).sum();
    let dpdk_bytes =
        if cfg.eal.no_huge_mb.is_some() || cfg.eal.args.iter().any(|a| a == "--no-huge") {
            0
        } else {
            DPDK_BASE_BYTES.saturating_add(buffers.saturating_mul(DPDK_BYTES_PER_BUFFER))
        };
    Ok(Need {
        region_bytes: if regions_on_hugetlbfs {
            region_bytes
        } else {
            0
        },
        dpdk_bytes,
    })
}

/// Whether `dir` is (the top of) a hugetlbfs mount.
pub fn is_hugetlbfs(dir: &Path) -> bool {
    let Ok(canon) = std::fs::canonicalize(dir) else {
        return false;
    };
    hugepage_tools::hugetlbfs_mounts()
        .map(|ms| ms.iter().any(|m| m.path == canon))
        .unwrap_or(false)
}

/// A change the manager made to a hugepage pool, to be undone at teardown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// Page size in KiB.
    pub size_kib: u64,
    /// `nr_hugepages` before.
    pub previous: u64,
    /// `nr_hugepages` after the manager's write.
    pub granted: u64,
}

fn nr_path(size_kib: u64) -> PathBuf {
    PathBuf::from(format!(
        "/sys/kernel/mm/hugepages/hugepages-{size_kib}kB/nr_hugepages"
    ))
}

/// The pool's current `nr_hugepages`.
pub fn nr_hugepages(size_kib: u64) -> Option<u64> {
    std::fs::read_to_string(nr_path(size_kib))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// What [`ensure`] found and did.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The machine has no hugetlb support; nothing done.
    NoHugetlb,
    /// Enough pages were available.
    Enough {
        /// Pages needed.
        need: u64,
        /// Pages available.
        available: u64,
        /// The page size.
        size: PageSize,
    },
    /// The pool was grown.
    Reserved {
        /// Pages needed.
        need: u64,
        /// Pages available before.
        available: u64,
        /// The change, to undo later.
        reservation: Reservation,
    },
}

/// Grows the default-size pool if fewer than `need` bytes' worth of pages are available.
/// On a shortfall the pool is put back to its previous size before the error is returned.
pub fn ensure(need: &Need) -> Result<Outcome, ManagerError> {
    let status = HugepageStatus::read().map_err(ManagerError::HugepageStatus)?;
    let Some(size) = status.default_size else {
        return Ok(Outcome::NoHugetlb);
    };
    let Some(pool) = status.pools.iter().find(|p| p.size == size) else {
        return Ok(Outcome::NoHugetlb);
    };
    let need_pages = need.pages(size);
    let available = pool.available();
    if need_pages <= available {
        return Ok(Outcome::Enough {
            need: need_pages,
            available,
            size,
        });
    }
    let previous = nr_hugepages(size.kib()).unwrap_or_else(|| pool.persistent());
    let target = previous.saturating_add(need_pages - available);
    match hugepage_tools::reserve(target, Some(size), None) {
        Ok(r) => Ok(Outcome::Reserved {
            need: need_pages,
            available,
            reservation: Reservation {
                size_kib: size.kib(),
                previous: r.previous,
                granted: r.granted,
            },
        }),
        Err(e) => {
            // A shortfall leaves the pool at what the kernel granted: put it back.
            if nr_hugepages(size.kib()).is_some_and(|n| n != previous) {
                let _ = hugepage_tools::reserve(previous, Some(size), None);
            }
            Err(ManagerError::Reserve(e))
        }
    }
}

impl Reservation {
    /// Puts the pool back to `previous` if it still holds what the manager set. Returns a
    /// line saying what happened.
    pub fn restore(&self) -> Result<String, ManagerError> {
        let Some(size) = PageSize::from_kib(self.size_kib) else {
            return Ok(format!(
                "unknown page size {} KiB; left as is",
                self.size_kib
            ));
        };
        match nr_hugepages(self.size_kib) {
            Some(n) if n == self.granted => {
                hugepage_tools::reserve(self.previous, Some(size), None)
                    .map_err(ManagerError::Reserve)?;
                Ok(format!(
                    "hugepages: {size} pool put back from {} to {} pages",
                    self.granted, self.previous
                ))
            }
            Some(n) => Ok(format!(
                "hugepages: {size} pool is at {n} pages, changed by someone else since the manager set {}; left as is",
                self.granted
            )),
            None => Ok(format!("hugepages: cannot read the {size} pool; left as is")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(buffers: u32, nfs: usize) -> Config {
        let nfs: Vec<serde_json::Value> = (0..nfs)
            .map(|i| serde_json::json!({"name": format!("n{i}"), "service": "s", "domain": "d"}))
            .collect();
        serde_json::from_value(serde_json::json!({
            "domains": [{"name": "d", "buffers": buffers}],
            "ports": [{"name": "p", "device": "net_null0", "domain": "d"}],
            "nfs": nfs,
        }))
        .unwrap()
    }

    #[test]
    fn regions_are_powers_of_two_covering_the_buffers() {
        for (buffers, nfs) in [(64, 0), (8192, 2), (16384, 5), (524_288, 1)] {
            let c = cfg(buffers, nfs);
            let size = region_size(&c, 0).unwrap();
            assert!(size.is_power_of_two());
            assert!(size >= u64::from(buffers) * 2176);
            assert!(size >= 2 << 20);
        }
        assert_eq!(region_size(&cfg(524_288, 1), 0).unwrap(), 2 << 30);
    }

    #[test]
    fn need_counts_regions_and_dpdk() {
        let c = cfg(8192, 1);
        let n = estimate(&c, true).unwrap();
        // The domain region plus one 2 MiB control region for its one NF, and one for each
        // spare entry (default 4) that an NF added at run time may take.
        assert_eq!(control_bytes(&c, 0).unwrap(), 2 << 20);
        assert_eq!(spare_control_bytes(&c).unwrap(), 4 * (2 << 20));
        assert_eq!(n.region_bytes, region_size(&c, 0).unwrap() + 5 * (2 << 20));
        assert_eq!(n.dpdk_bytes, DPDK_BASE_BYTES + 8192 * DPDK_BYTES_PER_BUFFER);
        assert_eq!(estimate(&c, false).unwrap().region_bytes, 0);
        let mut c2 = c.clone();
        c2.eal.no_huge_mb = Some(512);
        assert_eq!(estimate(&c2, true).unwrap().dpdk_bytes, 0);
        assert_eq!(n.pages(PageSize::SIZE_2M), n.bytes().div_ceil(2 << 20));
    }
}
