//! # hugepage-tools
//!
//! Host-side hugepage housekeeping for netvm: the library behind the `netvm-hugepages` binary
//! and the hugepage steps of `netvm-manager`.
//!
//! - [`Topology::discover`]: NUMA nodes with their CPUs and memory (hwloc via the `hwloc2`
//!   crate, sysfs as a fallback), so regions and rings can be placed next to the CPUs that
//!   touch them.
//! - [`HugepageStatus::read`]: total, free, reserved and surplus pages per page size and per
//!   NUMA node.
//! - [`reserve()`]: set `nr_hugepages` of a pool (system-wide or per node), failing with the
//!   number actually granted when the kernel grants fewer.
//! - [`ensure_mounted`]: mount hugetlbfs with a given page size, idempotently.
//! - [`find_region_files`] and [`clean_stale`]: find netvm region files on the hugetlbfs
//!   mounts (and `/dev/shm`) and remove the stale ones. Region files are named
//!   `netvm-<domain>.<corepid>.region` and start with the magic `b"NETVMSHM"`; see
//!   [`regions`] for the naming convention and the exact rule for "stale".
//!
//! What it is not: it does not create or map regions (the core does, with the ABI of
//! `netvm-shm`), and it does not touch DPDK. Functions that read sysfs or procfs have a
//! `*_from`/`*_at`/`*_in` twin that takes a root directory, so tests can run them against a
//! fake tree; the plain versions read the running system (`/`).
//!
//! Privileges: reading works as any user; `reserve`, `mount` and removing files under a
//! root-owned mount need root (the errors say so).

#![warn(missing_docs)]

pub mod cli;
pub mod mounts;
pub mod pagesize;
pub mod regions;
pub mod reserve;
pub mod status;
mod sysfs;
pub mod topology;

#[cfg(test)]
mod testutil;

pub use mounts::{ensure_mounted, hugetlbfs_mounts, HugetlbfsMount, MountError, MountOutcome};
pub use pagesize::{PageSize, PageSizeError};
pub use regions::{
    clean_stale, find_region_files, CleanReport, RegionError, RegionFile, RegionState, REGION_MAGIC,
};
pub use reserve::{reserve, ReserveError, Reserved};
pub use status::{HugepageStatus, NodePool, PoolStatus, StatusError};
pub use sysfs::SYSTEM_ROOT;
pub use topology::{NumaNode, Topology, TopologyError, TopologySource};

/// Formats an error and its chain of sources as one line: `outer: inner: innermost`.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut s = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        s.push_str(": ");
        s.push_str(&e.to_string());
        source = e.source();
    }
    s
}
