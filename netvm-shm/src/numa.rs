//! Placing a region's memory on one NUMA node: `mbind(2)` with `MPOL_BIND`, then prefaulting.
//!
//! The core creates a domain's region (and each NF's control region) on the node named by the
//! domain's `numa_node`, so that the workers and NFs pinned to that node's CPUs touch local
//! memory. The policy is set on the fresh mapping **before any page of it is touched**: for a
//! shared hugetlbfs (or tmpfs) mapping the kernel allocates a page when it is first faulted, on
//! a node the mapping's policy allows, and the page stays there for the file's life.
//!
//! Why `MPOL_BIND` and not `MPOL_PREFERRED`: a preferred node silently falls back to another
//! node when it has no free (huge) pages, which is exactly the failure `numa_node` exists to
//! rule out (every packet then costs a remote memory access, and nothing says so). With
//! `MPOL_BIND` a page can only come from that node; a shortage becomes an error at start.
//! Because a hugetlbfs fault that finds no page on the allowed node raises `SIGBUS` rather
//! than returning an error, the whole mapping is prefaulted right away with
//! `madvise(MADV_POPULATE_WRITE)` (Linux 5.14), which reports the shortage as an error instead.
//! On an older kernel (`EINVAL` from that `madvise`) pages are faulted on first use as before.

use std::io;

/// `madvise` advice: fault in every page of the range writable (Linux 5.14; not in `libc`).
const MADV_POPULATE_WRITE: libc::c_int = 23;

/// Highest node id accepted before asking the kernel (which supports at most
/// `CONFIG_NODES_SHIFT` = 10 bits, 1024 nodes, on x86-64).
pub const MAX_NODE: u32 = 4095;

/// Binds `addr .. addr + len` to node `node` with `MPOL_BIND`.
///
/// # Safety
/// `addr .. addr + len` must be a mapping of this process that nobody relies on being
/// placed elsewhere; `addr` page aligned and `len` a multiple of the mapping's page size
/// (a hugetlbfs mapping cannot be split inside a huge page).
pub(crate) unsafe fn bind(addr: *mut u8, len: usize, node: u32) -> io::Result<()> {
    if node > MAX_NODE {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let bits = libc::c_ulong::BITS as usize;
    let idx = node as usize;
    let mut mask: Vec<libc::c_ulong> = vec![0; idx / bits + 1];
    mask[idx / bits] |= 1 << (idx % bits);
    // The kernel reads `maxnode - 1` bits (libnuma passes the mask's bit count plus one).
    let maxnode = (mask.len() * bits + 1) as libc::c_ulong;
    // SAFETY: `mbind` changes the memory policy of the caller's mapping (the contract above)
    // and reads `mask.len()` words from `mask`, which lives across the call; it writes nothing
    // of ours.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mbind,
            addr,
            len as libc::c_ulong,
            libc::MPOL_BIND,
            mask.as_ptr(),
            maxnode,
            0 as libc::c_uint,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Faults in every page of `addr .. addr + len` for writing, so that a page its policy cannot
/// supply is an error now rather than a `SIGBUS` later. `Ok(false)`: the kernel does not know
/// `MADV_POPULATE_WRITE` (before 5.14); nothing was done.
///
/// # Safety
/// `addr .. addr + len` must be a writable shared mapping of this process whose contents
/// do not matter yet (populating a fresh file mapping allocates zeroed pages; existing pages
/// are left as they are).
pub(crate) unsafe fn populate(addr: *mut u8, len: usize) -> io::Result<bool> {
    // SAFETY: advice on the caller's own mapping (the contract above); MADV_POPULATE_WRITE
    // only faults pages in, it never changes their contents.
    let r = unsafe { libc::madvise(addr.cast(), len, MADV_POPULATE_WRITE) };
    if r == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EINVAL) {
        return Ok(false);
    }
    Err(e)
}
