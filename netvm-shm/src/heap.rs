//! A ring in private heap memory, running the same protocol code as the shared-memory ring.
//!
//! [`HeapRing`] exists for the loom model (`tests/loom.rs`): under `cfg(loom)` its words are
//! loom atomics and its descriptor slots loom `UnsafeCell`s, so the model checker explores the
//! interleavings of the real [`Producer::enqueue_burst`] / [`Consumer::dequeue_burst`] /
//! doorbell code and reports a data race on a slot if an ordering were too weak. Without loom it
//! is an ordinary in-process SPSC ring (threads of one process).

use std::sync::Arc;
use std::time::Duration;

use crate::desc::Descriptor;
use crate::primitive::{fence, AtomicU32, Ordering, UnsafeCell};
use crate::ring::{Consumer, FutexWait, Producer, RingError, RingMem};

struct Words {
    prod: AtomicU32,
    cons: AtomicU32,
    sleeping: AtomicU32,
    wake_seq: AtomicU32,
    sleep_seq: AtomicU32,
    slots: Box<[UnsafeCell<Descriptor>]>,
}

// SAFETY: the atomics are Sync; the slots are accessed only by the SPSC protocol in
// `crate::ring` (producer writes slots in `prod .. cons + capacity`, consumer reads slots in
// `cons .. prod`, separated by Release/Acquire on the indices); one producer and one consumer
// handle exist per ring (`HeapRing::new` makes exactly one of each).
unsafe impl Sync for Words {}

/// Heap-backed ring memory (see the module docs).
pub struct HeapRing {
    words: Arc<Words>,
}

impl core::fmt::Debug for HeapRing {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HeapRing")
            .field("capacity", &self.words.slots.len())
            .finish()
    }
}

impl HeapRing {
    /// A ring of `capacity` descriptors (a power of two, at least 2) with both indices at
    /// `start`, and its only producer and consumer.
    ///
    /// # Panics
    /// If `capacity` is not a power of two in `2..=MAX_RING_CAPACITY`.
    #[must_use]
    pub fn new(capacity: u32, start: u32) -> (Producer<HeapRing>, Consumer<HeapRing>) {
        assert!(
            capacity.is_power_of_two()
                && (crate::layout::MIN_RING_CAPACITY..=crate::layout::MAX_RING_CAPACITY)
                    .contains(&capacity),
            "capacity must be a power of two in range"
        );
        let words = Arc::new(Words {
            prod: AtomicU32::new(start),
            cons: AtomicU32::new(start),
            sleeping: AtomicU32::new(0),
            wake_seq: AtomicU32::new(0),
            sleep_seq: AtomicU32::new(0),
            slots: (0..capacity)
                .map(|_| UnsafeCell::new(Descriptor::default()))
                .collect(),
        });
        let p = HeapRing {
            words: Arc::clone(&words),
        };
        let c = HeapRing { words };
        let ok = "indices start equal";
        // SAFETY: `slots` has exactly `capacity` entries (a power of two, asserted), so every
        // masked index is in bounds; exactly one producer and one consumer are made here.
        unsafe {
            (
                Producer::new_unchecked(p, capacity)
                    .map_err(|_: RingError| ())
                    .expect(ok),
                Consumer::new_unchecked(c, capacity)
                    .map_err(|_: RingError| ())
                    .expect(ok),
            )
        }
    }
}

impl crate::ring::Sealed for HeapRing {}

impl RingMem for HeapRing {
    fn load_prod(&self, o: Ordering) -> u32 {
        self.words.prod.load(o)
    }
    fn store_prod(&self, v: u32, o: Ordering) {
        self.words.prod.store(v, o);
    }
    fn load_cons(&self, o: Ordering) -> u32 {
        self.words.cons.load(o)
    }
    fn store_cons(&self, v: u32, o: Ordering) {
        self.words.cons.store(v, o);
    }
    fn load_sleeping(&self, o: Ordering) -> u32 {
        self.words.sleeping.load(o)
    }
    fn store_sleeping(&self, v: u32, o: Ordering) {
        self.words.sleeping.store(v, o);
    }
    fn load_sleep_seq(&self, o: Ordering) -> u32 {
        self.words.sleep_seq.load(o)
    }
    fn store_sleep_seq(&self, v: u32, o: Ordering) {
        self.words.sleep_seq.store(v, o);
    }
    fn load_wake_seq(&self, o: Ordering) -> u32 {
        self.words.wake_seq.load(o)
    }
    fn store_wake_seq(&self, v: u32, o: Ordering) {
        self.words.wake_seq.store(v, o);
    }
    fn fence_seq_cst(&self) {
        fence(Ordering::SeqCst);
    }
    unsafe fn read_desc(&self, idx: u32) -> Descriptor {
        // SAFETY: the caller guarantees `idx < capacity == slots.len()` and that the SPSC
        // protocol gives the consumer this slot (see the `Sync` impl).
        self.words.slots[idx as usize].with(|p| unsafe { *p })
    }
    unsafe fn write_desc(&self, idx: u32, d: Descriptor) {
        // SAFETY: as in `read_desc`, for the producer's slots.
        self.words.slots[idx as usize].with_mut(|p| unsafe { *p = d });
    }

    #[cfg(not(loom))]
    fn futex_wait(&self, expected: u32, timeout: Duration) -> FutexWait {
        crate::futex::wait(&self.words.wake_seq, expected, timeout)
    }
    #[cfg(not(loom))]
    fn futex_wake(&self) {
        crate::futex::wake(&self.words.wake_seq);
    }

    /// Loom model of FUTEX_WAIT: yield until the word changes. The timeout is ignored on
    /// purpose: a lost wake-up then shows as a consumer that never finishes, which loom reports.
    #[cfg(loom)]
    fn futex_wait(&self, expected: u32, _timeout: Duration) -> FutexWait {
        while self.words.wake_seq.load(Ordering::Acquire) == expected {
            loom::thread::yield_now();
        }
        FutexWait::Woken
    }
    #[cfg(loom)]
    fn futex_wake(&self) {}
}
