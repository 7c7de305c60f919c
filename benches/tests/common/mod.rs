//! What the end-to-end matrix tests share.

use std::path::{Path, PathBuf};

/// The directory of the workspace binaries next to this test binary; fails the test (rather
/// than skipping it) when one the runner needs is not built.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf();
    for b in ["netvm-pktgen", "netvm-manager", "netvm-core", "l2fwd"] {
        assert!(
            dir.join(b).exists(),
            "{} is not built: run `cargo build --workspace` first (scripts/test.sh does)",
            dir.join(b).display()
        );
    }
    dir
}
