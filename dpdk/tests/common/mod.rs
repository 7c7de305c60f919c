//! Helpers shared by the EAL tests. Each test file is its own binary (one EAL per process)
//! and holds exactly one test.
#![allow(dead_code)]

use std::path::PathBuf;
use std::ptr::NonNull;

use dpdk::{Eal, EalBuilder};

/// Initialises the EAL on hugepages, or on `--no-huge` (saying so) where there are none.
pub fn eal(name: &str) -> Eal {
    let (b, fell_back) = EalBuilder::new(name).lcores("0").huge_or_fallback(256);
    if fell_back {
        println!("NOTE: no usable hugepages on this machine; running {name} with --no-huge");
    }
    b.init().expect("EAL init")
}

/// A shared file mapping: on hugetlbfs when mounted, else in /dev/shm (said in the output).
pub struct FileMap {
    pub path: PathBuf,
    pub ptr: NonNull<u8>,
    pub len: usize,
    pub on_hugetlbfs: bool,
}

// SAFETY: the mapping is plain shared memory; tests hand it to DPDK, which is thread-safe.
unsafe impl Send for FileMap {}
// SAFETY: as above.
unsafe impl Sync for FileMap {}

impl FileMap {
    pub fn create(tag: &str, len: usize) -> Self {
        let huge = std::path::Path::new("/dev/hugepages");
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        let on_hugetlbfs = mounts.lines().any(|l| {
            l.split_whitespace().nth(1) == Some("/dev/hugepages") && l.contains("hugetlbfs")
        });
        let dir = if on_hugetlbfs {
            huge.to_path_buf()
        } else {
            PathBuf::from("/dev/shm")
        };
        if !on_hugetlbfs {
            println!("NOTE: /dev/hugepages is not hugetlbfs; mapping {tag} from /dev/shm");
        }
        Self::create_in(&dir, tag, len, on_hugetlbfs)
    }

    /// A mapping of a new file in `dir` (`on_hugetlbfs` says what `dir` is).
    pub fn create_in(dir: &std::path::Path, tag: &str, len: usize, on_hugetlbfs: bool) -> Self {
        let path = dir.join(format!("netvm-test-{tag}.{}.region", std::process::id()));
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .expect("create mapping file");
        f.set_len(len as u64).expect("size mapping file");
        use std::os::fd::AsRawFd;
        // SAFETY: mapping a file we just created and sized; MAP_SHARED read/write.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED, "mmap {}", path.display());
        Self {
            path,
            ptr: NonNull::new(p.cast()).expect("mmap non-null"),
            len,
            on_hugetlbfs,
        }
    }

    pub fn contains(&self, addr: *const u8, len: usize) -> bool {
        let base = self.ptr.as_ptr() as usize;
        let a = addr as usize;
        a >= base && a.checked_add(len).is_some_and(|end| end <= base + self.len)
    }
}

impl Drop for FileMap {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what create() mapped; no references remain (the pool that
        // used it was dropped first by the tests' ordering).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
        let _ = std::fs::remove_file(&self.path);
    }
}
