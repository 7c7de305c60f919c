//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use netvm_shm::RegionParams;

/// Small but realistic parameters.
pub fn params(slot_count: u32, rx: u32, cap: u32) -> RegionParams {
    RegionParams {
        kind: netvm_shm::RegionKind::Combined,
        domain_id: 3,
        domain_name: "test-domain".into(),
        slot_count,
        rx_rings_per_slot: rx,
        ring_capacity: cap,
        buf_size: 2176,
        buf_count: 256,
    }
}

/// Removes a file on drop (also when the test panics).
pub struct FileGuard(pub PathBuf);

impl Drop for FileGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A fresh path in `dir` unique to this process and call.
pub fn unique_path(dir: &Path, tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    dir.join(format!("netvm-shm-test-{tag}-{}-{n}", std::process::id()))
}

/// A temp dir that is not hugetlbfs (tests of the fallback path).
pub fn tmp_dir() -> PathBuf {
    std::env::temp_dir()
}

/// `/dev/hugepages` if it is a writable hugetlbfs mount with a free page, else `None`.
pub fn hugepage_dir() -> Option<PathBuf> {
    let dir = PathBuf::from("/dev/hugepages");
    let probe = unique_path(&dir, "probe");
    let ok = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .is_ok();
    let _ = std::fs::remove_file(&probe);
    ok.then_some(dir)
}
