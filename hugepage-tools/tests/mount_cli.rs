//! `mount`: idempotent on an existing mount, typed errors, and a real mount in a temp dir
//! that is unmounted again.

mod common;

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use common::{euid, netvm_hugepages, stderr, stdout, TempDir};
use hugepage_tools::{
    ensure_mounted, hugetlbfs_mounts, HugepageStatus, MountError, MountOutcome, PageSize,
};

/// The tests of this binary look at and change the same mount table; one at a time.
static MOUNTS: Mutex<()> = Mutex::new(());

fn lock() -> MutexGuard<'static, ()> {
    MOUNTS.lock().unwrap_or_else(|e| e.into_inner())
}

fn mounted_at(path: &Path) -> bool {
    hugetlbfs_mounts().unwrap().iter().any(|m| m.path == path)
}

#[test]
fn existing_mount_is_left_alone() {
    let _g = lock();
    let Some(existing) = hugetlbfs_mounts().unwrap().into_iter().next_back() else {
        return; // no hugetlbfs mounted here
    };
    let size = existing.page_size.expect("page size of a mount");
    let outcome = ensure_mounted(&existing.path, Some(size)).unwrap();
    assert!(
        matches!(outcome, MountOutcome::AlreadyMounted(_)),
        "{outcome:?}"
    );
    assert_eq!(outcome.mount().path, existing.path);

    let out = netvm_hugepages(&[
        "mount",
        "--path",
        existing.path.to_str().unwrap(),
        "--size",
        &size.to_string(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("already mounted"), "{}", stdout(&out));

    // Asking for another supported size there is a conflict, not a second mount.
    let sizes = HugepageStatus::read().unwrap().sizes();
    if let Some(&other) = sizes.iter().find(|&&s| s != size) {
        match ensure_mounted(&existing.path, Some(other)) {
            Err(MountError::PageSizeMismatch {
                mounted, wanted, ..
            }) => {
                assert_eq!((mounted, wanted), (size, other));
            }
            r => panic!("expected PageSizeMismatch, got {r:?}"),
        }
    }
}

#[test]
fn unsupported_size_and_other_filesystem_are_errors() {
    let _g = lock();
    let dir = TempDir::new("mount-errors");
    let size: PageSize = "3M".parse().unwrap();
    assert!(matches!(
        ensure_mounted(dir.path(), Some(size)),
        Err(MountError::UnsupportedPageSize { .. }) | Err(MountError::NoDefaultSize)
    ));
    let out = netvm_hugepages(&[
        "mount",
        "--path",
        dir.path().to_str().unwrap(),
        "--size",
        "3M",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("3M"), "{}", stderr(&out));

    // /proc is a mount point of procfs.
    if HugepageStatus::read().unwrap().default_size.is_some() {
        assert!(matches!(
            ensure_mounted(Path::new("/proc"), None),
            Err(MountError::OtherFilesystem { .. })
        ));
    }
    // A regular file cannot be a mount point.
    let file = dir.path().join("file");
    fs::write(&file, b"").unwrap();
    if HugepageStatus::read().unwrap().default_size.is_some() {
        assert!(matches!(
            ensure_mounted(&file, None),
            Err(MountError::NotADirectory { .. })
        ));
    }
}

/// Unmounts on drop, so a failing assertion does not leave a mount behind.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let c = CString::new(self.0.as_os_str().as_bytes()).unwrap();
        // SAFETY: `c` is a NUL-terminated path that outlives the call; umount2 only reads it.
        let rc = unsafe { libc::umount2(c.as_ptr(), 0) };
        if rc != 0 {
            eprintln!(
                "umount {} failed: {}",
                self.0.display(),
                std::io::Error::last_os_error()
            );
        }
    }
}

#[test]
fn mounts_in_a_fresh_directory_once() {
    let _g = lock();
    let st = HugepageStatus::read().unwrap();
    let Some(size) = st.sizes().last().copied() else {
        return; // no hugetlb
    };
    let dir = TempDir::new("mount-real");
    let target = dir.path().join("huge");
    if euid() != 0 {
        assert!(matches!(
            ensure_mounted(&target, Some(size)),
            Err(MountError::NotPermitted { .. })
        ));
        return;
    }
    let first = ensure_mounted(&target, Some(size)).unwrap();
    // The mount table shows the resolved path (the temp dir may sit behind a symlink).
    let target = fs::canonicalize(&target).unwrap();
    let guard = Unmount(target.clone());
    match &first {
        MountOutcome::Mounted(m) => {
            assert_eq!(m.path, target);
            assert_eq!(m.page_size, Some(size));
        }
        other => panic!("expected Mounted, got {other:?}"),
    }
    assert!(mounted_at(&target));
    // Idempotent, through the library and the binary.
    assert!(matches!(
        ensure_mounted(&target, Some(size)),
        Ok(MountOutcome::AlreadyMounted(_))
    ));
    let out = netvm_hugepages(&[
        "mount",
        "--path",
        target.to_str().unwrap(),
        "--size",
        &size.to_string(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["outcome"], "already_mounted");
    drop(guard);
    assert!(!mounted_at(&target), "test mount left behind");
}
