//! The two futex operations of the doorbell, on a `u32` that may live in shared memory.
//!
//! Deliberately the shared (non-`FUTEX_PRIVATE_FLAG`) operations: the kernel keys the wait queue
//! by the backing page of a `MAP_SHARED` file mapping, so a waker in another process that maps
//! the same file at a different address finds the sleeper.

use std::sync::atomic::AtomicU32;
use std::time::Duration;

use crate::ring::FutexWait;

/// `FUTEX_WAIT` on `word` while it equals `expected`, for at most `timeout`.
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Duration) -> FutexWait {
    let ts = libc::timespec {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(timeout.subsec_nanos()),
    };
    // SAFETY: `word` is a live, 4-byte aligned u32 (an `AtomicU32` reference) for the whole
    // call; FUTEX_WAIT only reads it atomically in the kernel. `ts` outlives the call; the
    // remaining arguments are unused by FUTEX_WAIT.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
            core::ptr::null::<u32>(),
            0u32,
        )
    };
    if r == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ETIMEDOUT) {
        FutexWait::TimedOut
    } else {
        // 0 (woken), EAGAIN (value already changed), EINTR (signal): all mean "poll again".
        FutexWait::Woken
    }
}

/// `FUTEX_WAKE` for every sleeper on `word`.
pub(crate) fn wake(word: &AtomicU32) {
    // SAFETY: `word` is a live, aligned u32; FUTEX_WAKE does not access it, it only uses the
    // address as the wait-queue key. Unused arguments are ignored by FUTEX_WAKE.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            i32::MAX,
            core::ptr::null::<libc::timespec>(),
            core::ptr::null::<u32>(),
            0u32,
        );
    }
}
