//! Single-producer single-consumer descriptor rings with a futex doorbell.
//!
//! # Index protocol
//! Each ring has a producer index `prod` (written only by the producer) and a consumer index
//! `cons` (written only by the consumer), free-running `u32`s compared with wrapping arithmetic.
//! Slot `i` of the descriptor array holds the entry with index `i & (capacity - 1)`. The ring holds
//! `prod - cons` entries (wrapping), which is always `<= capacity` for honest peers.
//!
//! Each handle keeps **its own index in private memory** and a cached copy of the peer's index.
//! It reads the peer's word from shared memory at most once per burst, only when the cache
//! cannot satisfy the burst, and validates it at once: `prod - cons > capacity` (wrapping) is
//! [`RingError::IndexCorrupt`]. That covers a peer index that runs ahead, runs backwards past our
//! own, or is garbage; it is never treated as "empty" or "full", and since every slot access
//! uses a masked index, nothing a peer writes can make a handle access memory outside its ring.
//!
//! Orderings, in pairs:
//! * producer: writes descriptors, then `prod.store(Release)`; pairs with the consumer's
//!   `prod.load(Acquire)` in [`Consumer::dequeue_burst`], so the descriptors are visible before
//!   the consumer reads them;
//! * consumer: reads descriptors, then `cons.store(Release)`; pairs with the producer's
//!   `cons.load(Acquire)` in [`Producer::enqueue_burst`], so the consumer's reads of a slot are
//!   finished before the producer overwrites it.
//!
//! Descriptors are copied in and out with volatile accesses on raw pointers (never references
//! into shared memory), so each descriptor is read exactly once into private memory and validated
//! there: no double fetch.
//!
//! # Doorbell
//! A consumer with nothing to do may sleep ([`Consumer::wait_for_work`]): it reads `wake_seq`
//! (Acquire), stores that value in `sleep_seq` and `1` in `sleeping`, issues `fence(SeqCst)`,
//! re-checks the ring, and only if it is still empty calls `futex(FUTEX_WAIT, wake_seq, seq,
//! timeout)`; on return it clears `sleeping`. The producer, after enqueuing, calls
//! [`Producer::wake_if_sleeping`]: `fence(SeqCst)`, then if `sleeping != 0` and `sleep_seq` equals
//! the current `wake_seq`, it stores `wake_seq + 1` (Release) and calls `FUTEX_WAKE`. The two
//! SeqCst fences make this a Dekker handshake: either the consumer's re-check sees the new `prod`
//! or the producer sees `sleeping`, so a wake-up is never lost. The `sleep_seq == wake_seq` test
//! means a consumer that was woken but has not run yet costs the producer no further syscalls.
//! The futex is the shared (non-`PRIVATE`) kind, so it works across processes mapping the same
//! file. It does not cross a VM boundary: guests use [`WaitMode::PollSleep`], which never sets
//! `sleeping`, so the core never pays a syscall for them.

use core::fmt;
use std::time::{Duration, Instant};

use crate::desc::{Descriptor, RejectReason};
use crate::primitive::Ordering::{Acquire, Relaxed, Release};

/// A peer broke the ring protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    /// The peer's index is impossible: `prod - cons > capacity` (wrapping). The ring is unusable
    /// until the core resets it; the policy is to quarantine the NF.
    #[error("ring indices are corrupt: prod {prod}, cons {cons}, capacity {capacity}")]
    IndexCorrupt {
        /// Producer index seen.
        prod: u32,
        /// Consumer index seen.
        cons: u32,
        /// Ring capacity.
        capacity: u32,
    },
}

impl RingError {
    /// The counter this error is accounted under.
    #[must_use]
    pub const fn reason(&self) -> RejectReason {
        match self {
            Self::IndexCorrupt { .. } => RejectReason::RingIndexCorrupt,
        }
    }
}

/// How a consumer waits in [`Consumer::wait_for_work`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitMode {
    /// Sleep on the ring's futex; the producer wakes us. Host processes only.
    Futex,
    /// Sleep in steps of `interval` and re-check; the producer is never involved. For QEMU
    /// guests, where a futex does not cross the VM boundary.
    PollSleep {
        /// Longest single sleep.
        interval: Duration,
    },
}

/// Result of [`Consumer::wait_for_work`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitOutcome {
    /// Work was found without sleeping (or after a poll-sleep step).
    Ready,
    /// Woken by the producer (or spuriously); poll the ring.
    Woken,
    /// The timeout expired; the ring may still be empty.
    TimedOut,
}

/// Result of the low-level futex wait of a [`RingMem`].
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FutexWait {
    /// Woken, interrupted, or the word had already changed.
    Woken,
    /// Timed out.
    TimedOut,
}

mod sealed {
    pub trait Sealed {}
}

/// Where a ring's control words and descriptor slots live: in a mapped region
/// ([`crate::region::ShmRing`]) or on the heap ([`crate::heap::HeapRing`], used by the loom model
/// and in-process tests). Sealed: the protocol code in this module is the only user.
///
/// # Safety contract for implementors (crate-internal)
/// `read_desc`/`write_desc` must be sound for every `idx < capacity` given to
/// `Producer::new_unchecked` / `Consumer::new_unchecked`.
pub trait RingMem: sealed::Sealed + Send {
    #[doc(hidden)]
    fn load_prod(&self, o: crate::primitive::Ordering) -> u32;
    #[doc(hidden)]
    fn store_prod(&self, v: u32, o: crate::primitive::Ordering);
    #[doc(hidden)]
    fn load_cons(&self, o: crate::primitive::Ordering) -> u32;
    #[doc(hidden)]
    fn store_cons(&self, v: u32, o: crate::primitive::Ordering);
    #[doc(hidden)]
    fn load_sleeping(&self, o: crate::primitive::Ordering) -> u32;
    #[doc(hidden)]
    fn store_sleeping(&self, v: u32, o: crate::primitive::Ordering);
    #[doc(hidden)]
    fn load_sleep_seq(&self, o: crate::primitive::Ordering) -> u32;
    #[doc(hidden)]
    fn store_sleep_seq(&self, v: u32, o: crate::primitive::Ordering);
    #[doc(hidden)]
    fn load_wake_seq(&self, o: crate::primitive::Ordering) -> u32;
    #[doc(hidden)]
    fn store_wake_seq(&self, v: u32, o: crate::primitive::Ordering);
    #[doc(hidden)]
    fn fence_seq_cst(&self);
    /// Copies descriptor slot `idx` out.
    ///
    /// # Safety
    /// `idx < capacity` of the ring this memory was created for.
    #[doc(hidden)]
    unsafe fn read_desc(&self, idx: u32) -> Descriptor;
    /// Copies `d` into descriptor slot `idx`.
    ///
    /// # Safety
    /// `idx < capacity` of the ring this memory was created for.
    #[doc(hidden)]
    unsafe fn write_desc(&self, idx: u32, d: Descriptor);
    /// Sleeps while `wake_seq == expected`, at most `timeout`.
    #[doc(hidden)]
    fn futex_wait(&self, expected: u32, timeout: Duration) -> FutexWait;
    /// Wakes sleepers on `wake_seq`.
    #[doc(hidden)]
    fn futex_wake(&self);
}

pub(crate) use sealed::Sealed;

/// Wrapping distance `prod - cons`, validated against `capacity`.
#[inline(always)]
fn used(prod: u32, cons: u32, capacity: u32) -> Result<u32, RingError> {
    let n = prod.wrapping_sub(cons);
    if n > capacity {
        Err(RingError::IndexCorrupt {
            prod,
            cons,
            capacity,
        })
    } else {
        Ok(n)
    }
}

/// The producer end of a ring. Not `Clone`: there is one producer per ring (the region
/// enforces one handle per ring and role within a process).
pub struct Producer<M: RingMem = crate::region::ShmRing> {
    mem: M,
    capacity: u32,
    mask: u32,
    /// Our own index (authoritative; the shared word is only ever written from it).
    prod: u32,
    /// Last validated consumer index.
    cons_cache: u32,
    /// Our own `wake_seq` (only the producer writes it).
    wake_seq: u32,
}

/// The consumer end of a ring.
pub struct Consumer<M: RingMem = crate::region::ShmRing> {
    mem: M,
    capacity: u32,
    mask: u32,
    /// Our own index.
    cons: u32,
    /// Last validated producer index.
    prod_cache: u32,
    mode: WaitMode,
}

impl<M: RingMem> fmt::Debug for Producer<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("capacity", &self.capacity)
            .field("prod", &self.prod)
            .field("cons_cache", &self.cons_cache)
            .finish_non_exhaustive()
    }
}

impl<M: RingMem> fmt::Debug for Consumer<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("capacity", &self.capacity)
            .field("cons", &self.cons)
            .field("prod_cache", &self.prod_cache)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl<M: RingMem> Producer<M> {
    /// Builds a producer over `mem`, taking the starting indices from it.
    ///
    /// # Safety
    /// `capacity` is a power of two and `mem.read_desc`/`write_desc` are sound for every index
    /// below it; no other producer handle for the same ring exists.
    pub(crate) unsafe fn new_unchecked(mem: M, capacity: u32) -> Result<Self, RingError> {
        debug_assert!(capacity.is_power_of_two());
        // Relaxed is enough for our own word: only this side writes it (the core initialised it
        // before any handle existed). Acquire on the peer's word pairs with its Release store.
        let prod = mem.load_prod(Relaxed);
        let cons = mem.load_cons(Acquire);
        used(prod, cons, capacity)?;
        let wake_seq = mem.load_wake_seq(Relaxed);
        Ok(Self {
            mem,
            capacity,
            mask: capacity - 1,
            prod,
            cons_cache: cons,
            wake_seq,
        })
    }

    /// Enqueues as many of `descs` as fit, in order; returns how many.
    ///
    /// Reads the consumer's index at most once (only when the cached value shows too little
    /// room). Never blocks, allocates or makes a system call. Call
    /// [`wake_if_sleeping`](Self::wake_if_sleeping) after a batch of enqueues.
    #[inline]
    pub fn enqueue_burst(&mut self, descs: &[Descriptor]) -> Result<usize, RingError> {
        self.enqueue(descs, false)
    }

    /// Enqueues all of `descs` or none; returns whether they were enqueued. Same protocol as
    /// [`enqueue_burst`](Self::enqueue_burst) (DPDK's `*_bulk` semantics).
    #[inline]
    pub fn enqueue_bulk(&mut self, descs: &[Descriptor]) -> Result<bool, RingError> {
        Ok(self.enqueue(descs, true)? == descs.len())
    }

    #[inline(always)]
    fn enqueue(&mut self, descs: &[Descriptor], all_or_nothing: bool) -> Result<usize, RingError> {
        // The cached value was validated when read, and our own index only grew by what fit.
        let mut free = self.capacity - self.prod.wrapping_sub(self.cons_cache);
        if (free as usize) < descs.len() {
            // Acquire pairs with the consumer's Release store of `cons` in `dequeue_burst`: its
            // reads of the slots we are about to reuse happen-before our writes.
            let cons = self.mem.load_cons(Acquire);
            free = self.capacity - used(self.prod, cons, self.capacity)?;
            self.cons_cache = cons;
        }
        let n = descs.len().min(free as usize);
        if n == 0 || (all_or_nothing && n < descs.len()) {
            return Ok(0);
        }
        let mut idx = self.prod;
        for d in &descs[..n] {
            // SAFETY: `idx & mask < capacity`, the bound `mem` is sound for (new_unchecked's
            // contract). The slot is free: it lies in `prod .. cons + capacity`, which the
            // consumer does not read until we publish `prod` below.
            unsafe { self.mem.write_desc(idx & self.mask, *d) };
            idx = idx.wrapping_add(1);
        }
        self.prod = idx;
        // Release pairs with the consumer's Acquire load of `prod` in `dequeue_burst`: the
        // descriptor writes above happen-before its reads.
        self.mem.store_prod(idx, Release);
        Ok(n)
    }

    /// Wakes the consumer if it sleeps on the doorbell; returns whether a wake was issued.
    ///
    /// Costs one `fence(SeqCst)` and a load of the doorbell line when the consumer is awake; a
    /// `FUTEX_WAKE` system call only when it actually sleeps (once per sleep, see module docs).
    /// A peer that keeps `sleeping` set can make each call cost a syscall: the core counts
    /// `true` returns per NF.
    #[inline]
    pub fn wake_if_sleeping(&mut self) -> bool {
        // SeqCst fence: pairs with the consumer's fence in `wait_for_work` (Dekker): either the
        // consumer's re-check sees our `prod` store, or we see its `sleeping` store.
        self.mem.fence_seq_cst();
        if self.mem.load_sleeping(Relaxed) == 0 {
            return false;
        }
        if self.mem.load_sleep_seq(Relaxed) != self.wake_seq {
            // It sleeps on an older sequence: it was woken already and has not run yet.
            return false;
        }
        self.wake_seq = self.wake_seq.wrapping_add(1);
        // Release pairs with the consumer's Acquire load of `wake_seq` before it sleeps, which
        // keeps it from sleeping on a value newer than the wake it would then miss.
        self.mem.store_wake_seq(self.wake_seq, Release);
        self.mem.futex_wake();
        true
    }

    /// Cheap check (one relaxed load, no fence) whether the consumer has announced it sleeps.
    #[inline]
    #[must_use]
    pub fn consumer_sleeping(&self) -> bool {
        self.mem.load_sleeping(Relaxed) != 0
    }

    /// Entries in the ring (an estimate: reads the consumer's index now).
    pub fn len(&self) -> Result<u32, RingError> {
        used(self.prod, self.mem.load_cons(Relaxed), self.capacity)
    }

    /// `true` if the ring looks empty (see [`len`](Self::len)).
    pub fn is_empty(&self) -> Result<bool, RingError> {
        Ok(self.len()? == 0)
    }

    /// Free slots (an estimate: reads the consumer's index now).
    pub fn free_count(&self) -> Result<u32, RingError> {
        Ok(self.capacity - self.len()?)
    }

    /// Descriptors the ring holds.
    #[must_use]
    pub const fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Our private producer index (what the next enqueue writes at).
    #[must_use]
    pub const fn index(&self) -> u32 {
        self.prod
    }
}

impl<M: RingMem> Consumer<M> {
    /// Builds a consumer over `mem`, taking the starting indices from it.
    ///
    /// # Safety
    /// As for [`Producer::new_unchecked`], for consumers.
    pub(crate) unsafe fn new_unchecked(mem: M, capacity: u32) -> Result<Self, RingError> {
        debug_assert!(capacity.is_power_of_two());
        // Relaxed for our own word; Acquire on the peer's pairs with its Release store.
        let cons = mem.load_cons(Relaxed);
        let prod = mem.load_prod(Acquire);
        used(prod, cons, capacity)?;
        Ok(Self {
            mem,
            capacity,
            mask: capacity - 1,
            cons,
            prod_cache: prod,
            mode: WaitMode::Futex,
        })
    }

    /// Reads the producer's index (once) and validates it; returns the entries available.
    #[inline(always)]
    fn refresh(&mut self) -> Result<u32, RingError> {
        // Acquire pairs with the producer's Release store of `prod` in `enqueue_burst`.
        let prod = self.mem.load_prod(Acquire);
        let n = used(prod, self.cons, self.capacity)?;
        self.prod_cache = prod;
        Ok(n)
    }

    /// Dequeues up to `out.len()` descriptors into `out`, in order; returns how many.
    ///
    /// Reads the producer's index at most once; an impossible index is
    /// [`RingError::IndexCorrupt`] (nothing is dequeued). The descriptors are raw copies in
    /// private memory: validate them ([`crate::CheckedDesc::try_from_raw`]) before use.
    #[inline]
    pub fn dequeue_burst(&mut self, out: &mut [Descriptor]) -> Result<usize, RingError> {
        self.dequeue(out, false)
    }

    /// Dequeues exactly `out.len()` descriptors or none; returns whether it did. Same protocol
    /// as [`dequeue_burst`](Self::dequeue_burst) (DPDK's `*_bulk` semantics).
    #[inline]
    pub fn dequeue_bulk(&mut self, out: &mut [Descriptor]) -> Result<bool, RingError> {
        Ok(self.dequeue(out, true)? == out.len())
    }

    #[inline(always)]
    fn dequeue(
        &mut self,
        out: &mut [Descriptor],
        all_or_nothing: bool,
    ) -> Result<usize, RingError> {
        // The cached value was validated when read; our index only grew up to it.
        let mut avail = self.prod_cache.wrapping_sub(self.cons);
        if (avail as usize) < out.len() {
            avail = self.refresh()?;
        }
        let n = out.len().min(avail as usize);
        if n == 0 || (all_or_nothing && n < out.len()) {
            return Ok(0);
        }
        let mut idx = self.cons;
        for d in &mut out[..n] {
            // SAFETY: `idx & mask < capacity` (new_unchecked's contract). The entry lies in
            // `cons .. prod`, published by the producer's Release store we Acquired.
            *d = unsafe { self.mem.read_desc(idx & self.mask) };
            idx = idx.wrapping_add(1);
        }
        self.cons = idx;
        // Release pairs with the producer's Acquire load of `cons` in `enqueue_burst`: our slot
        // reads above happen-before it overwrites them.
        self.mem.store_cons(idx, Release);
        Ok(n)
    }

    /// Entries available (reads the producer's index now and validates it).
    pub fn len(&mut self) -> Result<u32, RingError> {
        self.refresh()
    }

    /// `true` if no entry is available (see [`len`](Self::len)).
    pub fn is_empty(&mut self) -> Result<bool, RingError> {
        Ok(self.refresh()? == 0)
    }

    /// Descriptors the ring holds.
    #[must_use]
    pub const fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Our private consumer index.
    #[must_use]
    pub const fn index(&self) -> u32 {
        self.cons
    }

    /// How [`wait_for_work`](Self::wait_for_work) waits ([`WaitMode::Futex`] by default).
    pub fn set_wait_mode(&mut self, mode: WaitMode) {
        self.mode = mode;
    }

    /// The current wait mode.
    #[must_use]
    pub const fn wait_mode(&self) -> WaitMode {
        self.mode
    }

    /// Waits until the ring is non-empty, the producer rings the doorbell, or `timeout` passes.
    ///
    /// Returns at once with [`WaitOutcome::Ready`] if work is available. In
    /// [`WaitMode::Futex`] this is the sleeping side of the doorbell protocol (module docs);
    /// in [`WaitMode::PollSleep`] it sleeps in `interval` steps and re-checks. Either way the
    /// caller then polls with [`dequeue_burst`](Self::dequeue_burst); a spurious
    /// [`WaitOutcome::Woken`] is possible.
    pub fn wait_for_work(&mut self, timeout: Duration) -> Result<WaitOutcome, RingError> {
        if self.refresh()? > 0 {
            return Ok(WaitOutcome::Ready);
        }
        match self.mode {
            WaitMode::Futex => self.futex_sleep(timeout),
            WaitMode::PollSleep { interval } => self.poll_sleep(timeout, interval),
        }
    }

    fn futex_sleep(&mut self, timeout: Duration) -> Result<WaitOutcome, RingError> {
        // Acquire pairs with the producer's Release store of `wake_seq` in `wake_if_sleeping`.
        let seq = self.mem.load_wake_seq(Acquire);
        self.mem.store_sleep_seq(seq, Relaxed);
        self.mem.store_sleeping(1, Relaxed);
        // SeqCst fence: pairs with the producer's fence in `wake_if_sleeping` (see there).
        self.mem.fence_seq_cst();
        let avail = match self.refresh() {
            Ok(n) => n,
            Err(e) => {
                self.mem.store_sleeping(0, Relaxed);
                return Err(e);
            }
        };
        if avail > 0 {
            self.mem.store_sleeping(0, Relaxed);
            return Ok(WaitOutcome::Ready);
        }
        let r = self.mem.futex_wait(seq, timeout);
        self.mem.store_sleeping(0, Relaxed);
        Ok(match r {
            FutexWait::Woken => WaitOutcome::Woken,
            FutexWait::TimedOut => WaitOutcome::TimedOut,
        })
    }

    fn poll_sleep(
        &mut self,
        timeout: Duration,
        interval: Duration,
    ) -> Result<WaitOutcome, RingError> {
        let start = Instant::now();
        loop {
            let left = timeout.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Ok(WaitOutcome::TimedOut);
            }
            std::thread::sleep(left.min(interval));
            if self.refresh()? > 0 {
                return Ok(WaitOutcome::Ready);
            }
        }
    }
}
