//! Test helpers: a self-removing temporary directory and a fake sysfs/procfs tree builder.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// A fresh directory under the system temp dir, removed with its contents on drop.
pub(crate) struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub(crate) fn new(tag: &str) -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        // Relaxed: the counter only has to hand out distinct numbers within this process.
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("hugepage-tools-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `content` to `rel` (creating parent directories) and returns the full path.
    pub(crate) fn file(&self, rel: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path.join(rel);
        fs::create_dir_all(p.parent().expect("parent")).expect("create parent");
        fs::write(&p, content).expect("write fake file");
        p
    }

    /// Creates directory `rel` and returns its full path.
    pub(crate) fn dir(&self, rel: &str) -> PathBuf {
        let p = self.path.join(rel);
        fs::create_dir_all(&p).expect("create dir");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// A fake hugepage pool in a fake tree: global counters and per-node counters.
pub(crate) fn fake_pool(
    tree: &TempDir,
    kib: u64,
    (total, free, resv, surplus): (u64, u64, u64, u64),
    nodes: &[(u32, u64, u64, u64)],
) {
    let g = format!("sys/kernel/mm/hugepages/hugepages-{kib}kB");
    tree.file(&format!("{g}/nr_hugepages"), format!("{total}\n"));
    tree.file(&format!("{g}/free_hugepages"), format!("{free}\n"));
    tree.file(&format!("{g}/resv_hugepages"), format!("{resv}\n"));
    tree.file(&format!("{g}/surplus_hugepages"), format!("{surplus}\n"));
    tree.file(&format!("{g}/nr_overcommit_hugepages"), "0\n");
    for &(node, t, f, s) in nodes {
        let n = format!("sys/devices/system/node/node{node}/hugepages/hugepages-{kib}kB");
        tree.file(&format!("{n}/nr_hugepages"), format!("{t}\n"));
        tree.file(&format!("{n}/free_hugepages"), format!("{f}\n"));
        tree.file(&format!("{n}/surplus_hugepages"), format!("{s}\n"));
    }
}

/// A fake `/proc/meminfo` with the given default hugepage size (KiB).
pub(crate) fn fake_meminfo(tree: &TempDir, default_kib: Option<u64>) {
    let mut text = String::from("MemTotal:       16384000 kB\nMemFree:         8192000 kB\n");
    if let Some(kib) = default_kib {
        text.push_str(&format!("Hugepagesize:       {kib} kB\n"));
    }
    tree.file("proc/meminfo", text);
}
