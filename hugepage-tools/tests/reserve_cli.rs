//! `reserve` on the real kernel: a no-op reservation, a small grow-and-restore, and the typed
//! errors, through the library and through the binary.

mod common;

use std::sync::Mutex;

use common::{euid, netvm_hugepages, stderr, stdout};
use hugepage_tools::{reserve, HugepageStatus, PageSize, ReserveError};

/// The tests of this binary touch the same pools; run them one at a time.
static POOLS: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    POOLS.lock().unwrap_or_else(|e| e.into_inner())
}

fn default_pool_total() -> Option<(PageSize, u64)> {
    let st = HugepageStatus::read().unwrap();
    st.default_pool().map(|p| (p.size, p.total))
}

#[test]
fn reserving_the_current_count_changes_nothing() {
    let _g = lock();
    let Some((size, total)) = default_pool_total() else {
        // No hugetlb in this kernel: asking for the default size is the typed error.
        assert!(matches!(
            reserve(0, None, None),
            Err(ReserveError::NoDefaultSize)
        ));
        return;
    };
    match reserve(total, None, None) {
        Ok(r) => {
            assert_eq!(
                (r.size, r.previous, r.requested, r.granted),
                (size, total, total, total)
            );
            assert!(!r.changed());
        }
        Err(ReserveError::NotPermitted { .. }) if euid() != 0 => return,
        Err(e) => panic!("reserve({total}) failed: {e}"),
    }
    // Per node: the node's own current count.
    let st = HugepageStatus::read().unwrap();
    if let Some(n) = st.default_pool().unwrap().nodes.first() {
        let r = reserve(n.total, Some(size), Some(n.node)).unwrap();
        assert_eq!((r.node, r.granted), (Some(n.node), n.total));
    }
    // The same through the binary.
    let out = netvm_hugepages(&[
        "reserve",
        "--count",
        &total.to_string(),
        "--size",
        &size.to_string(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("unchanged"), "{}", stdout(&out));
}

/// Restores the default pool to its original size (never below the pages in use) on drop.
struct RestorePool {
    size: PageSize,
    original: u64,
}

impl Drop for RestorePool {
    fn drop(&mut self) {
        let in_use = HugepageStatus::read()
            .ok()
            .and_then(|s| s.pool(self.size).map(|p| p.in_use()))
            .unwrap_or(0);
        let target = self.original.max(in_use);
        if let Err(e) = reserve(target, Some(self.size), None) {
            eprintln!("could not restore the {} pool to {target}: {e}", self.size);
        }
    }
}

#[test]
fn growing_by_one_page_is_granted_and_restored() {
    let _g = lock();
    let Some((size, original)) = default_pool_total() else {
        return; // no hugetlb: nothing to grow
    };
    if euid() != 0 {
        let e = reserve(original + 1, Some(size), None).unwrap_err();
        assert!(matches!(e, ReserveError::NotPermitted { .. }), "{e}");
        assert!(e.to_string().contains("run as root"));
        return;
    }
    let restore = RestorePool { size, original };
    let r = reserve(original + 1, Some(size), None).unwrap();
    assert_eq!((r.previous, r.granted), (original, original + 1));
    assert!(r.changed());
    drop(restore);
    assert_eq!(default_pool_total(), Some((size, original)));
}

#[test]
fn bogus_size_is_a_typed_error() {
    let _g = lock();
    let size: PageSize = "3M".parse().unwrap();
    match reserve(1, Some(size), None) {
        Err(ReserveError::UnsupportedPageSize {
            size: s,
            node: None,
            supported,
        }) => {
            assert_eq!(s, size);
            assert_eq!(supported, HugepageStatus::read().unwrap().sizes());
        }
        other => panic!("expected UnsupportedPageSize, got {other:?}"),
    }
    let out = netvm_hugepages(&["reserve", "--count", "1", "--size", "3M"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("page size 3M is not supported by this kernel"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");

    // A size that is not a size at all is a usage error (clap exits with 2).
    let out = netvm_hugepages(&["reserve", "--count", "1", "--size", "lots"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("invalid page size"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn missing_node_is_a_typed_error() {
    let _g = lock();
    match reserve(1, None, Some(4095)) {
        Err(ReserveError::NoSuchNode {
            node: 4095,
            available,
        }) => {
            let topo = hugepage_tools::Topology::from_sysfs(std::path::Path::new("/")).unwrap();
            if !available.is_empty() {
                assert_eq!(
                    available,
                    topo.nodes.iter().map(|n| n.id).collect::<Vec<_>>()
                );
            }
        }
        // Without hugetlb the default size is missing before the node is looked at.
        Err(ReserveError::NoDefaultSize) => {}
        other => panic!("expected NoSuchNode, got {other:?}"),
    }
    let out = netvm_hugepages(&["reserve", "--count", "1", "--node", "4095"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("NUMA node 4095 does not exist"),
        "{}",
        stderr(&out)
    );
}
