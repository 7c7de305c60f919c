//! Sleeping on the doorbells of several RX rings at once.
//!
//! An NF has one RX ring per core worker, and each worker rings only the doorbell of its own
//! ring (`Producer::wake_if_sleeping`). netvm-shm's `Consumer::wait_for_work` sleeps on one
//! ring, so an NF with several rings runs the same consumer-side doorbell protocol (netvm-shm
//! `ring` module docs) on all of them at once and sleeps in one `futex_waitv(2)` call (Linux
//! 5.16+) on every ring's `wake_seq`:
//!
//! 1. for each ring: `seq = wake_seq.load(Acquire)`, `sleep_seq = seq`, `sleeping = 1`;
//! 2. `fence(SeqCst)` — pairs with the fence in each producer's `wake_if_sleeping` (Dekker);
//! 3. re-check every ring; if one has work, clear `sleeping` everywhere and return;
//! 4. `futex_waitv` on all `(wake_seq, seq)` pairs with the timeout; clear `sleeping`.
//!
//! A worker that enqueues on ring k after step 2 sees `sleeping == 1` with `sleep_seq` equal to
//! its `wake_seq`, bumps `wake_seq` and calls `FUTEX_WAKE` on it; `futex_waitv` waiters are woken
//! by `FUTEX_WAKE` on any of their words, and a word that changed before the wait makes it
//! return at once (EAGAIN). The core side is exactly what it is for a one-ring NF.
//!
//! The words touched here (`sleeping`, `sleep_seq`) belong to the consumer, and the NF holds the
//! consumer handle of every ring it touches. Where `futex_waitv` is missing (old kernel, seccomp
//! filter) the caller falls back to poll-sleeping.

use std::sync::atomic::{fence, AtomicU32, Ordering};
use std::time::Duration;

use netvm_shm::{Consumer, Doorbell, Region, RingError};

/// `FUTEX2_SIZE_U32` from `<linux/futex.h>`: the word is 32 bits. No `FUTEX2_PRIVATE`: the
/// doorbell is shared across processes.
const FUTEX2_SIZE_U32: u32 = 0x02;

/// `struct futex_waitv` from `<linux/futex.h>`.
#[repr(C)]
#[derive(Clone, Copy)]
struct FutexWaitv {
    val: u64,
    uaddr: u64,
    flags: u32,
    reserved: u32,
}

const _: () = assert!(core::mem::size_of::<FutexWaitv>() == 24);

/// Most words one `futex_waitv` call accepts (`FUTEX_WAITV_MAX`); netvm-shm allows at most 64
/// RX rings per slot.
const WAITV_MAX: usize = 128;
const _: () = assert!(netvm_shm::layout::MAX_RX_RINGS_PER_SLOT as usize <= WAITV_MAX);

/// What a multi-ring sleep ended with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    /// A ring had work before sleeping.
    Ready,
    /// A doorbell rang (or a signal, or a spurious wake-up).
    Woken,
    /// The timeout passed.
    TimedOut,
    /// `futex_waitv` is not available; poll instead.
    Unsupported,
}

/// The doorbell words of an NF's RX rings.
pub(crate) struct Doorbells {
    bells: Vec<Doorbell>,
    seqs: Vec<u32>,
}

impl Doorbells {
    /// The doorbells of rings `ids`, or `None` if an id is out of range.
    pub(crate) fn new(region: &Region, ids: &[u32]) -> Option<Self> {
        let bells = ids
            .iter()
            .map(|&id| region.doorbell(id).ok())
            .collect::<Option<Vec<_>>>()?;
        let seqs = vec![0; ids.len()];
        Some(Self { bells, seqs })
    }

    fn word(&self, i: usize, which: Word) -> &AtomicU32 {
        let b = &self.bells[i];
        match which {
            Word::Sleeping => b.sleeping(),
            Word::WakeSeq => b.wake_seq(),
            Word::SleepSeq => b.sleep_seq(),
        }
    }

    fn clear_sleeping(&self) {
        for i in 0..self.bells.len() {
            self.word(i, Word::Sleeping).store(0, Ordering::Relaxed);
        }
    }

    /// Sleeps until one of `rx` (the consumers of these rings, same order) has work, a doorbell
    /// rings, or `timeout` passes. A corrupt ring index is returned with the ring's position.
    pub(crate) fn wait(
        &mut self,
        rx: &mut [Consumer],
        timeout: Duration,
    ) -> Result<Wake, (usize, RingError)> {
        debug_assert_eq!(rx.len(), self.bells.len());
        for i in 0..self.bells.len() {
            // Acquire pairs with the producer's Release store of `wake_seq` in
            // `wake_if_sleeping`.
            let seq = self.word(i, Word::WakeSeq).load(Ordering::Acquire);
            self.seqs[i] = seq;
            self.word(i, Word::SleepSeq).store(seq, Ordering::Relaxed);
            self.word(i, Word::Sleeping).store(1, Ordering::Relaxed);
        }
        // SeqCst fence: pairs with the fence each producer issues in `wake_if_sleeping` before
        // it reads `sleeping`: either our re-check below sees its `prod`, or it sees `sleeping`.
        fence(Ordering::SeqCst);
        for (i, c) in rx.iter_mut().enumerate() {
            match c.is_empty() {
                Ok(true) => {}
                Ok(false) => {
                    self.clear_sleeping();
                    return Ok(Wake::Ready);
                }
                Err(e) => {
                    self.clear_sleeping();
                    return Err((i, e));
                }
            }
        }
        let r = self.futex_waitv(timeout);
        self.clear_sleeping();
        Ok(r)
    }

    fn futex_waitv(&self, timeout: Duration) -> Wake {
        let mut w = [FutexWaitv {
            val: 0,
            uaddr: 0,
            flags: 0,
            reserved: 0,
        }; WAITV_MAX];
        let n = self.bells.len().min(WAITV_MAX);
        for (i, slot) in w.iter_mut().enumerate().take(n) {
            *slot = FutexWaitv {
                val: u64::from(self.seqs[i]),
                uaddr: self.word(i, Word::WakeSeq).as_ptr() as u64,
                flags: FUTEX2_SIZE_U32,
                reserved: 0,
            };
        }
        let deadline = monotonic_after(timeout);
        // SAFETY: `w[..n]` are initialised futex_waitv records whose `uaddr`s are live, aligned
        // u32 words of the mapping that `self` keeps alive; the kernel only reads them (and the
        // words, atomically). `deadline` outlives the call. Flags must be 0.
        let r = unsafe {
            libc::syscall(
                libc::SYS_futex_waitv,
                w.as_ptr(),
                libc::c_uint::try_from(n).unwrap_or(0),
                0 as libc::c_uint,
                &deadline as *const libc::timespec,
                libc::CLOCK_MONOTONIC,
            )
        };
        if r >= 0 {
            return Wake::Woken;
        }
        match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::ETIMEDOUT) => Wake::TimedOut,
            // EAGAIN: a word changed before we slept (a wake); EINTR: a signal.
            Some(libc::EAGAIN) | Some(libc::EINTR) => Wake::Woken,
            _ => Wake::Unsupported,
        }
    }
}

#[derive(Clone, Copy)]
enum Word {
    Sleeping,
    WakeSeq,
    SleepSeq,
}

/// `CLOCK_MONOTONIC` now plus `d` (saturating).
fn monotonic_after(d: Duration) -> libc::timespec {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    let secs = libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX / 2);
    let mut sec = now.tv_sec.saturating_add(secs);
    let mut nsec = now.tv_nsec + libc::c_long::from(d.subsec_nanos());
    if nsec >= 1_000_000_000 {
        nsec -= 1_000_000_000;
        sec = sec.saturating_add(1);
    }
    libc::timespec {
        tv_sec: sec,
        tv_nsec: nsec,
    }
}
