//! Growing or shrinking a hugepage pool by writing `nr_hugepages`, globally or on one node.
//!
//! The kernel grants what it can: a write of N may leave fewer pages in the pool when memory
//! is fragmented or short. [`reserve`] reads the count back and fails with
//! [`ReserveError::Shortfall`] naming the number actually granted. Shrinking below the pages
//! in use is allowed by the kernel (the busy pages become surplus and are freed when
//! released); this module does not second-guess it.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::pagesize::{display_sizes, PageSize};
use crate::status::{read_counter, read_default_size, StatusError};
use crate::sysfs;

/// Errors from changing a hugepage pool.
#[derive(Debug, thiserror::Error)]
pub enum ReserveError {
    /// The page size has no `hugepages-<N>kB` directory (globally, or on the node asked for).
    #[error("page size {size} is not supported by this kernel{} (supported: {})", on_node(*.node), display_sizes(.supported))]
    UnsupportedPageSize {
        /// The requested size.
        size: PageSize,
        /// The node asked for, if any.
        node: Option<u32>,
        /// The sizes supported there.
        supported: Vec<PageSize>,
    },
    /// The NUMA node does not exist.
    #[error("NUMA node {node} does not exist (nodes: {})", display_nodes(.available))]
    NoSuchNode {
        /// The node asked for.
        node: u32,
        /// The nodes that exist.
        available: Vec<u32>,
    },
    /// No size was given and the kernel has no default hugepage size.
    #[error("the kernel reports no default hugepage size (no hugetlb support?)")]
    NoDefaultSize,
    /// Writing `nr_hugepages` was refused for lack of privilege.
    #[error("not permitted to write {path}: run as root")]
    NotPermitted {
        /// The `nr_hugepages` file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Writing `nr_hugepages` failed otherwise.
    #[error("cannot write {count} to {path}")]
    Write {
        /// The `nr_hugepages` file.
        path: PathBuf,
        /// The count written.
        count: u64,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Listing sizes or nodes, or reading a counter back, failed.
    #[error("cannot read the hugepage pool state")]
    Read(#[source] StatusError),
    /// The kernel granted fewer pages than asked for.
    #[error("asked for {requested} {size} hugepages{} but the kernel granted only {granted}", on_node(*.node))]
    Shortfall {
        /// The page size.
        size: PageSize,
        /// The node, if the request was per node.
        node: Option<u32>,
        /// The count asked for.
        requested: u64,
        /// The count the pool holds after the write.
        granted: u64,
    },
}

fn on_node(node: Option<u32>) -> String {
    node.map(|n| format!(" on NUMA node {n}"))
        .unwrap_or_default()
}

fn display_nodes(nodes: &[u32]) -> String {
    if nodes.is_empty() {
        return "none".to_owned();
    }
    nodes
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The result of a successful [`reserve`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Reserved {
    /// The page size.
    pub size: PageSize,
    /// The node, if the request was per node.
    pub node: Option<u32>,
    /// The pool's `nr_hugepages` before the write.
    pub previous: u64,
    /// The count asked for.
    pub requested: u64,
    /// The pool's `nr_hugepages` after the write (at least `requested`).
    pub granted: u64,
}

impl Reserved {
    /// Whether the write changed the pool size.
    pub fn changed(&self) -> bool {
        self.previous != self.granted
    }
}

/// Sets the pool of page size `size` (default: the kernel's default size) to `count` pages,
/// system-wide or on NUMA node `node`, on the running system.
pub fn reserve(
    count: u64,
    size: Option<PageSize>,
    node: Option<u32>,
) -> Result<Reserved, ReserveError> {
    reserve_at(Path::new(sysfs::SYSTEM_ROOT), count, size, node)
}

/// [`reserve`] against the sysfs/procfs tree under `root`.
pub fn reserve_at(
    root: &Path,
    count: u64,
    size: Option<PageSize>,
    node: Option<u32>,
) -> Result<Reserved, ReserveError> {
    let size = match size {
        Some(s) => s,
        None => read_default_size(root)
            .map_err(ReserveError::Read)?
            .ok_or(ReserveError::NoDefaultSize)?,
    };
    let dir = pool_dir(root, size, node)?;
    let file = dir.join("nr_hugepages");
    let previous = read_counter(&file).map_err(ReserveError::Read)?;
    write_count(&file, count)?;
    let granted = read_counter(&file).map_err(ReserveError::Read)?;
    check_granted(size, node, previous, count, granted)
}

/// The sysfs directory of the pool, or the typed error for a missing node or size.
fn pool_dir(root: &Path, size: PageSize, node: Option<u32>) -> Result<PathBuf, ReserveError> {
    let read_err =
        |path: PathBuf| move |source| ReserveError::Read(StatusError::Read { path, source });
    let base = match node {
        None => sysfs::hugepages_dir(root),
        Some(n) => {
            let ndir = sysfs::node_dir(root, n);
            if !ndir.is_dir() {
                let available =
                    sysfs::list_nodes(root).map_err(read_err(sysfs::nodes_dir(root)))?;
                return Err(ReserveError::NoSuchNode { node: n, available });
            }
            ndir.join("hugepages")
        }
    };
    let dir = base.join(size.sysfs_dir_name());
    if !dir.is_dir() {
        let supported = sysfs::list_page_sizes(&base).map_err(read_err(base.clone()))?;
        return Err(ReserveError::UnsupportedPageSize {
            size,
            node,
            supported,
        });
    }
    Ok(dir)
}

fn write_count(path: &Path, count: u64) -> Result<(), ReserveError> {
    // No `create`: the file must exist (sysfs attributes cannot be created).
    let result = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .and_then(|mut f| f.write_all(format!("{count}\n").as_bytes()));
    result.map_err(|source| write_error(path, count, source))
}

/// Classifies a failed write: lack of privilege gets its own variant.
fn write_error(path: &Path, count: u64, source: io::Error) -> ReserveError {
    match source.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EPERM) => ReserveError::NotPermitted {
            path: path.to_owned(),
            source,
        },
        _ if source.kind() == io::ErrorKind::PermissionDenied => ReserveError::NotPermitted {
            path: path.to_owned(),
            source,
        },
        _ => ReserveError::Write {
            path: path.to_owned(),
            count,
            source,
        },
    }
}

/// Succeeds if the pool holds at least `requested` pages after the write.
fn check_granted(
    size: PageSize,
    node: Option<u32>,
    previous: u64,
    requested: u64,
    granted: u64,
) -> Result<Reserved, ReserveError> {
    if granted < requested {
        return Err(ReserveError::Shortfall {
            size,
            node,
            requested,
            granted,
        });
    }
    Ok(Reserved {
        size,
        node,
        previous,
        requested,
        granted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{fake_meminfo, fake_pool, TempDir};
    use std::fs;

    fn tree() -> TempDir {
        let t = TempDir::new("reserve");
        fake_meminfo(&t, Some(2048));
        fake_pool(&t, 2048, (8, 8, 0, 0), &[(0, 4, 4, 0), (1, 4, 4, 0)]);
        fake_pool(&t, 1_048_576, (0, 0, 0, 0), &[(0, 0, 0, 0)]);
        t
    }

    #[test]
    fn writes_global_and_node_counts() {
        let t = tree();
        let r = reserve_at(t.path(), 16, None, None).unwrap();
        assert_eq!(
            (r.size, r.previous, r.requested, r.granted),
            (PageSize::SIZE_2M, 8, 16, 16)
        );
        assert!(r.changed());
        let global = t
            .path()
            .join("sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages");
        assert_eq!(fs::read_to_string(global).unwrap(), "16\n");

        let r = reserve_at(t.path(), 2, Some(PageSize::SIZE_1G), Some(0)).unwrap();
        assert_eq!((r.node, r.previous, r.granted), (Some(0), 0, 2));
        let node = t
            .path()
            .join("sys/devices/system/node/node0/hugepages/hugepages-1048576kB/nr_hugepages");
        assert_eq!(fs::read_to_string(node).unwrap(), "2\n");

        let same = reserve_at(t.path(), 4, None, Some(1)).unwrap();
        assert!(!same.changed());
    }

    #[test]
    fn unsupported_size() {
        let t = tree();
        let size: PageSize = "3M".parse().unwrap();
        match reserve_at(t.path(), 1, Some(size), None) {
            Err(e @ ReserveError::UnsupportedPageSize { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains("3M") && msg.contains("2M, 1G"), "{msg}");
            }
            other => panic!("expected UnsupportedPageSize, got {other:?}"),
        }
        // 1G exists globally but not on node 1.
        match reserve_at(t.path(), 1, Some(PageSize::SIZE_1G), Some(1)) {
            Err(ReserveError::UnsupportedPageSize {
                node: Some(1),
                supported,
                ..
            }) => assert_eq!(supported, vec![PageSize::SIZE_2M]),
            other => panic!("expected UnsupportedPageSize on node 1, got {other:?}"),
        }
    }

    #[test]
    fn missing_node() {
        let t = tree();
        match reserve_at(t.path(), 1, None, Some(7)) {
            Err(e @ ReserveError::NoSuchNode { node: 7, .. }) => {
                assert_eq!(e.to_string(), "NUMA node 7 does not exist (nodes: 0, 1)");
            }
            other => panic!("expected NoSuchNode, got {other:?}"),
        }
    }

    #[test]
    fn no_default_size() {
        let t = TempDir::new("reserve-nohuge");
        fake_meminfo(&t, None);
        assert!(matches!(
            reserve_at(t.path(), 1, None, None),
            Err(ReserveError::NoDefaultSize)
        ));
    }

    #[test]
    fn shortfall_names_the_granted_count() {
        let e = check_granted(PageSize::SIZE_1G, Some(1), 0, 8, 3).unwrap_err();
        assert_eq!(
            e.to_string(),
            "asked for 8 1G hugepages on NUMA node 1 but the kernel granted only 3"
        );
        let ok = check_granted(PageSize::SIZE_2M, None, 4, 2, 3).unwrap();
        assert_eq!(ok.granted, 3);
    }

    #[test]
    fn permission_errors_say_run_as_root() {
        let p = Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages");
        for errno in [libc::EACCES, libc::EPERM] {
            let e = write_error(p, 4, io::Error::from_raw_os_error(errno));
            assert!(matches!(e, ReserveError::NotPermitted { .. }));
            assert!(e.to_string().ends_with("run as root"), "{e}");
        }
        let e = write_error(p, 4, io::Error::from_raw_os_error(libc::EINVAL));
        assert!(matches!(e, ReserveError::Write { count: 4, .. }));
    }
}
