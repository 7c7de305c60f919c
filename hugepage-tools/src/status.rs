//! Hugepage pool counters, per page size and per NUMA node, read from sysfs.
//!
//! Global counters come from `/sys/kernel/mm/hugepages/hugepages-<N>kB/{nr,free,resv,surplus}_hugepages`
//! and per-node ones from `/sys/devices/system/node/node<K>/hugepages/hugepages-<N>kB/{nr,free,surplus}_hugepages`
//! (the kernel keeps no per-node reservation count). The default size comes from
//! `Hugepagesize:` in `/proc/meminfo`, whose `HugePages_*` lines describe that size only.
//!
//! The counters are read one file at a time while the kernel keeps changing them, so a
//! snapshot taken under load need not be self-consistent; the derived numbers saturate
//! instead of underflowing.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::pagesize::PageSize;
use crate::sysfs;

/// Errors from reading hugepage counters.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// A sysfs or procfs file or directory could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A counter file did not hold a decimal number.
    #[error("{path} holds {content:?}, not a page count")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What it held (trimmed).
        content: String,
    },
}

/// Counters of one NUMA node's pool of one page size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodePool {
    /// NUMA node id.
    pub node: u32,
    /// Pages in the node's pool (`nr_hugepages`, persistent plus surplus).
    pub total: u64,
    /// Pages not allocated to any mapping (`free_hugepages`; reserved pages count as free).
    pub free: u64,
    /// Surplus (overcommitted) pages (`surplus_hugepages`).
    pub surplus: u64,
}

/// Counters of the system-wide pool of one page size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PoolStatus {
    /// The page size.
    pub size: PageSize,
    /// The page size in KiB (the same value as `size`, as a number).
    pub size_kib: u64,
    /// Pages in the pool (`nr_hugepages`; `HugePages_Total` for the default size).
    pub total: u64,
    /// Pages not allocated to any mapping (`free_hugepages`; `HugePages_Free`).
    pub free: u64,
    /// Pages promised to mappings but not yet faulted in (`resv_hugepages`; `HugePages_Rsvd`).
    pub reserved: u64,
    /// Surplus pages above the persistent pool (`surplus_hugepages`; `HugePages_Surp`).
    pub surplus: u64,
    /// Per-node counters, sorted by node; empty where the kernel exposes none.
    pub nodes: Vec<NodePool>,
}

impl PoolStatus {
    /// Pages backing some mapping right now: `total - free`.
    pub fn in_use(&self) -> u64 {
        self.total.saturating_sub(self.free)
    }

    /// Pages a new mapping can still get without growing the pool: `free - reserved`.
    pub fn available(&self) -> u64 {
        self.free.saturating_sub(self.reserved)
    }

    /// Persistent pages (those `nr_hugepages` keeps): `total - surplus`.
    pub fn persistent(&self) -> u64 {
        self.total.saturating_sub(self.surplus)
    }

    /// Bytes in the pool: `total * size`, saturating.
    pub fn total_bytes(&self) -> u64 {
        self.total.saturating_mul(self.size.bytes())
    }

    /// The counters of one node, if the kernel reports it.
    pub fn node(&self, node: u32) -> Option<&NodePool> {
        self.nodes.iter().find(|n| n.node == node)
    }
}

/// Hugepage counters of every page size the kernel supports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HugepageStatus {
    /// The default hugepage size (`Hugepagesize:` in `/proc/meminfo`); `None` without hugetlb.
    pub default_size: Option<PageSize>,
    /// One entry per supported page size, ascending; empty without hugetlb.
    pub pools: Vec<PoolStatus>,
}

impl HugepageStatus {
    /// Reads the counters of the running system.
    pub fn read() -> Result<HugepageStatus, StatusError> {
        HugepageStatus::read_from(Path::new(sysfs::SYSTEM_ROOT))
    }

    /// Reads the counters from `<root>/sys` and `<root>/proc` (`/` for the running system,
    /// a fake tree in tests).
    pub fn read_from(root: &Path) -> Result<HugepageStatus, StatusError> {
        let default_size = read_default_size(root)?;
        let global = sysfs::hugepages_dir(root);
        let sizes = sysfs::list_page_sizes(&global).map_err(|source| StatusError::Read {
            path: global.clone(),
            source,
        })?;
        let nodes = sysfs::list_nodes(root).map_err(|source| StatusError::Read {
            path: sysfs::nodes_dir(root),
            source,
        })?;
        let mut pools = Vec::with_capacity(sizes.len());
        for size in sizes {
            let dir = global.join(size.sysfs_dir_name());
            let mut node_pools = Vec::new();
            for &node in &nodes {
                let ndir = sysfs::node_dir(root, node)
                    .join("hugepages")
                    .join(size.sysfs_dir_name());
                if !ndir.is_dir() {
                    continue;
                }
                node_pools.push(NodePool {
                    node,
                    total: read_counter(&ndir.join("nr_hugepages"))?,
                    free: read_counter(&ndir.join("free_hugepages"))?,
                    surplus: read_counter(&ndir.join("surplus_hugepages"))?,
                });
            }
            pools.push(PoolStatus {
                size,
                size_kib: size.kib(),
                total: read_counter(&dir.join("nr_hugepages"))?,
                free: read_counter(&dir.join("free_hugepages"))?,
                reserved: read_counter(&dir.join("resv_hugepages"))?,
                surplus: read_counter(&dir.join("surplus_hugepages"))?,
                nodes: node_pools,
            });
        }
        Ok(HugepageStatus {
            default_size,
            pools,
        })
    }

    /// The pool of one page size, if the kernel supports it.
    pub fn pool(&self, size: PageSize) -> Option<&PoolStatus> {
        self.pools.iter().find(|p| p.size == size)
    }

    /// The pool of the default page size, if there is one.
    pub fn default_pool(&self) -> Option<&PoolStatus> {
        self.pool(self.default_size?)
    }

    /// The supported page sizes, ascending.
    pub fn sizes(&self) -> Vec<PageSize> {
        self.pools.iter().map(|p| p.size).collect()
    }
}

/// Reads one decimal counter file.
pub(crate) fn read_counter(path: &Path) -> Result<u64, StatusError> {
    let text = fs::read_to_string(path).map_err(|source| StatusError::Read {
        path: path.to_owned(),
        source,
    })?;
    sysfs::parse_u64(&text).ok_or_else(|| StatusError::Parse {
        path: path.to_owned(),
        content: text.trim().to_owned(),
    })
}

/// The default hugepage size from `<root>/proc/meminfo`; `None` if the file or line is absent.
pub(crate) fn read_default_size(root: &Path) -> Result<Option<PageSize>, StatusError> {
    let path = sysfs::meminfo_path(root);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(StatusError::Read { path, source }),
    };
    Ok(sysfs::meminfo_value(&text, "Hugepagesize").and_then(PageSize::from_kib))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{fake_meminfo, fake_pool, TempDir};

    #[test]
    fn reads_pools_and_nodes() {
        let tree = TempDir::new("status");
        fake_meminfo(&tree, Some(2048));
        fake_pool(
            &tree,
            2048,
            (1024, 1000, 10, 4),
            &[(0, 512, 500, 4), (1, 512, 500, 0)],
        );
        fake_pool(
            &tree,
            1_048_576,
            (2, 2, 0, 0),
            &[(0, 2, 2, 0), (1, 0, 0, 0)],
        );
        // A stray entry that is not a page-size directory is ignored.
        tree.dir("sys/kernel/mm/hugepages/not-a-size");
        tree.dir("sys/devices/system/node/power");

        let st = HugepageStatus::read_from(tree.path()).unwrap();
        assert_eq!(st.default_size, Some(PageSize::SIZE_2M));
        assert_eq!(st.sizes(), vec![PageSize::SIZE_2M, PageSize::SIZE_1G]);
        let p = st.default_pool().unwrap();
        assert_eq!(
            (p.total, p.free, p.reserved, p.surplus),
            (1024, 1000, 10, 4)
        );
        assert_eq!(p.size_kib, 2048);
        assert_eq!(p.in_use(), 24);
        assert_eq!(p.available(), 990);
        assert_eq!(p.persistent(), 1020);
        assert_eq!(p.total_bytes(), 1024 * 2 * 1024 * 1024);
        assert_eq!(p.nodes.len(), 2);
        assert_eq!(
            p.node(1),
            Some(&NodePool {
                node: 1,
                total: 512,
                free: 500,
                surplus: 0
            })
        );
        let node_total: u64 = p.nodes.iter().map(|n| n.total).sum();
        assert_eq!(node_total, p.total);
        let g = st.pool(PageSize::SIZE_1G).unwrap();
        assert_eq!((g.total, g.in_use(), g.available()), (2, 0, 2));
    }

    #[test]
    fn inconsistent_snapshot_saturates() {
        let tree = TempDir::new("status-sat");
        fake_meminfo(&tree, Some(2048));
        fake_pool(&tree, 2048, (4, 6, 8, 9), &[]);
        let st = HugepageStatus::read_from(tree.path()).unwrap();
        let p = st.default_pool().unwrap();
        assert_eq!((p.in_use(), p.available(), p.persistent()), (0, 0, 0));
        assert!(p.nodes.is_empty());
    }

    #[test]
    fn no_hugetlb_gives_empty_status() {
        let tree = TempDir::new("status-none");
        fake_meminfo(&tree, None);
        let st = HugepageStatus::read_from(tree.path()).unwrap();
        assert_eq!(st.default_size, None);
        assert!(st.pools.is_empty());
        assert!(st.default_pool().is_none());
    }

    #[test]
    fn garbage_counter_is_a_parse_error() {
        let tree = TempDir::new("status-bad");
        fake_meminfo(&tree, Some(2048));
        fake_pool(&tree, 2048, (1, 1, 0, 0), &[]);
        tree.file(
            "sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages",
            "lots\n",
        );
        match HugepageStatus::read_from(tree.path()) {
            Err(StatusError::Parse { path, content }) => {
                assert!(path.ends_with("free_hugepages"));
                assert_eq!(content, "lots");
            }
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn missing_counter_is_a_read_error() {
        let tree = TempDir::new("status-missing");
        fake_meminfo(&tree, Some(2048));
        tree.dir("sys/kernel/mm/hugepages/hugepages-2048kB");
        assert!(matches!(
            HugepageStatus::read_from(tree.path()),
            Err(StatusError::Read { .. })
        ));
    }
}
