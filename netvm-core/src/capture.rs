//! Packet capture: copies of the frames that pass one point of the data path go into bounded
//! per-worker rings in core-private memory; the control thread drains them for the control
//! socket's `capture_read`.
//!
//! * [`CaptureRing`]: a single-producer single-consumer ring of fixed-size slots (a
//!   timestamp, the frame's length, up to `slot_bytes` of it). The producer — a worker — never
//!   waits: a full ring counts the frame as `dropped` and the data path goes on. Handles are
//!   split by role ([`RingProducer`], [`RingConsumer`]), neither `Clone`, so single-producer
//!   single-consumer holds by construction.
//! * [`Tap`]: what a worker holds while a capture is active: the point (kind + NF or port
//!   index), the compiled filter, the snapshot length, its ring's producer and the session's
//!   shared count. A worker with no tap pays one branch (`State::tap.is_some()`) per hook; see
//!   `docs/design.md`, *Capture*, for where the hooks are.
//! * [`Session`]: the control side of the one capture a core runs at a time: the rings'
//!   consumers, the counts, who owns it (a control connection) and whether it is stopping.
//!
//! Nothing here touches shared memory: the worker copies bytes out of a buffer (a raw copy,
//! as `copy_headers` does) into the ring's private slots.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use netvm_api::capture::{CapturePoint, CapturedPacket};
use netvm_wire::Rule;

/// Bytes of slot data a capture ring holds at most (per worker); the slot count follows from
/// the snapshot length.
pub const RING_BYTES: usize = 8 << 20;
/// Slots per ring: at least, at most.
pub const RING_SLOTS_MIN: usize = 256;
/// See [`RING_SLOTS_MIN`].
pub const RING_SLOTS_MAX: usize = 8192;

/// Slots for a ring of `slot_bytes`-byte slots: [`RING_BYTES`] worth, a power of two within
/// [`RING_SLOTS_MIN`]..=[`RING_SLOTS_MAX`].
pub fn ring_slots(slot_bytes: usize) -> usize {
    let n = (RING_BYTES / slot_bytes.max(1)).clamp(RING_SLOTS_MIN, RING_SLOTS_MAX);
    // Largest power of two not above n (n >= 256 > 0).
    1usize << (usize::BITS - 1 - n.leading_zeros())
}

#[derive(Clone, Copy, Default)]
struct Rec {
    ts_ns: u64,
    orig_len: u32,
    len: u32,
}

/// The ring (see the module docs). Indices are free-running `u64`s, masked on use.
pub struct CaptureRing {
    recs: Box<[UnsafeCell<Rec>]>,
    data: Box<[UnsafeCell<u8>]>,
    slot_bytes: usize,
    mask: u64,
    /// Next slot the producer writes (written by the producer only).
    tail: AtomicU64,
    /// Next slot the consumer reads (written by the consumer only).
    head: AtomicU64,
    /// Frames pushed (producer only).
    pushed: AtomicU64,
    /// Frames refused because the ring was full (producer only).
    dropped: AtomicU64,
}

// SAFETY: the slots (`UnsafeCell`s) are accessed by at most one producer and one consumer
// (the handles are not `Clone`), never the same slot at once: the producer writes slot `t`
// only while `t - head < capacity` (the consumer is done with it: its Release store of `head`
// pairs with the producer's Acquire load), the consumer reads slot `h` only while `h < tail`
// (the producer's Release store of `tail` after writing pairs with the consumer's Acquire
// load). Everything else is atomic.
unsafe impl Sync for CaptureRing {}
// SAFETY: as above; the ring owns plain bytes.
unsafe impl Send for CaptureRing {}

impl CaptureRing {
    /// A ring of `slots` (a power of two) slots of `slot_bytes` bytes each; returns its two
    /// ends.
    pub fn pair(slots: usize, slot_bytes: usize) -> (RingProducer, RingConsumer) {
        assert!(
            slots.is_power_of_two(),
            "capture ring slots must be a power of two"
        );
        let r = Arc::new(Self {
            recs: (0..slots)
                .map(|_| UnsafeCell::new(Rec::default()))
                .collect(),
            data: (0..slots * slot_bytes)
                .map(|_| UnsafeCell::new(0))
                .collect(),
            slot_bytes,
            mask: slots as u64 - 1,
            tail: AtomicU64::new(0),
            head: AtomicU64::new(0),
            pushed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        });
        (
            RingProducer {
                ring: Arc::clone(&r),
            },
            RingConsumer { ring: r },
        )
    }

    fn capacity(&self) -> u64 {
        self.mask + 1
    }

    /// Pointer to the first byte of slot `i`'s data.
    fn slot_ptr(&self, i: u64) -> *mut u8 {
        let k = usize::try_from(i & self.mask).unwrap_or(0) * self.slot_bytes;
        // `k` is within `data` (slot index < slots, data has slots * slot_bytes bytes).
        UnsafeCell::raw_get(self.data[k..].as_ptr())
    }

    /// Frames pushed so far.
    pub fn pushed(&self) -> u64 {
        self.pushed.load(Ordering::Acquire)
    }

    /// Frames refused so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The producing end (one worker).
pub struct RingProducer {
    ring: Arc<CaptureRing>,
}

impl RingProducer {
    /// Whether a push would find room now (it still will when it comes: only this end fills
    /// the ring).
    #[inline]
    pub fn has_room(&self) -> bool {
        let r = &*self.ring;
        // Acquire pairs with the consumer's Release store in `pop`: the slot is free.
        let head = r.head.load(Ordering::Acquire);
        r.tail.load(Ordering::Relaxed).wrapping_sub(head) < r.capacity()
    }

    /// Counts a frame that found the ring full.
    #[inline]
    pub fn count_drop(&self) {
        self.ring.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Pushes one frame: `fill` writes at most `slot_bytes` bytes into the slot and says how
    /// many. Returns false (counted as dropped) if the ring is full.
    #[inline]
    pub fn push(
        &mut self,
        ts_ns: u64,
        orig_len: u32,
        fill: impl FnOnce(&mut [u8]) -> usize,
    ) -> bool {
        if !self.has_room() {
            self.count_drop();
            return false;
        }
        let r = &*self.ring;
        let t = r.tail.load(Ordering::Relaxed);
        // SAFETY: slot `t` is free (`has_room`: the consumer has released it and reads it
        // only after our Release store of `tail` below) and only this producer writes slots;
        // `slot_ptr` points at `slot_bytes` bytes of this slot within `data`.
        let buf = unsafe { std::slice::from_raw_parts_mut(r.slot_ptr(t), r.slot_bytes) };
        let n = fill(buf).min(r.slot_bytes);
        let rec = Rec {
            ts_ns,
            orig_len,
            len: u32::try_from(n).unwrap_or(u32::MAX),
        };
        let i = usize::try_from(t & r.mask).unwrap_or(0);
        // SAFETY: as above, for the slot's record.
        unsafe { *r.recs[i].get() = rec };
        // Release pairs with the consumer's Acquire load of `tail` in `pop`.
        r.tail.store(t.wrapping_add(1), Ordering::Release);
        r.pushed.fetch_add(1, Ordering::Release);
        true
    }
}

/// The consuming end (the control thread).
pub struct RingConsumer {
    ring: Arc<CaptureRing>,
}

/// One frame taken out of a ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Nanoseconds since the epoch.
    pub ts_ns: u64,
    /// Length on the data path.
    pub orig_len: u32,
    /// What was copied.
    pub data: Vec<u8>,
}

impl RingConsumer {
    /// Takes the oldest frame, if any.
    pub fn pop(&mut self) -> Option<Frame> {
        let r = &*self.ring;
        let h = r.head.load(Ordering::Relaxed);
        // Acquire pairs with the producer's Release store of `tail` in `push`.
        if r.tail.load(Ordering::Acquire) == h {
            return None;
        }
        let i = usize::try_from(h & r.mask).unwrap_or(0);
        // SAFETY: slot `h` was published by the producer (h < tail) and is not written again
        // until our Release store of `head` below; only this consumer reads slots.
        let rec = unsafe { *r.recs[i].get() };
        let n = usize::try_from(rec.len).unwrap_or(0).min(r.slot_bytes);
        // SAFETY: as above; `slot_ptr` points at `slot_bytes >= n` bytes of this slot.
        let data = unsafe { std::slice::from_raw_parts(r.slot_ptr(h), n) }.to_vec();
        // Release pairs with the producer's Acquire load of `head` in `has_room`.
        r.head.store(h.wrapping_add(1), Ordering::Release);
        Some(Frame {
            ts_ns: rec.ts_ns,
            orig_len: rec.orig_len,
            data,
        })
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        let r = &*self.ring;
        r.tail.load(Ordering::Acquire) == r.head.load(Ordering::Relaxed)
    }

    /// The ring.
    pub fn ring(&self) -> &CaptureRing {
        &self.ring
    }
}

/// Which point a tap watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TapKind {
    /// Delivered to an NF.
    NfIn,
    /// Passed on by an NF.
    NfOut,
    /// Dropped by an NF (DROP verdict).
    NfDrop,
    /// Received on a port.
    PortRx,
    /// Sent on a port.
    PortTx,
}

/// What the workers and the control side of one capture share.
#[derive(Debug)]
pub struct SessionShared {
    /// Frames the capture may still copy (`u64::MAX`: no limit).
    pub remaining: AtomicU64,
    /// Workers that have let go of their tap.
    pub released: AtomicUsize,
}

/// A worker's tap (see the module docs).
pub struct Tap {
    /// The capture's id.
    pub id: u64,
    /// Kind of point.
    pub kind: TapKind,
    /// NF or port index of the point.
    pub idx: u16,
    /// Only frames matching this, if any.
    pub filter: Option<Rule>,
    /// Bytes per frame at most.
    pub snaplen: usize,
    /// Whether `shared.remaining` limits the capture.
    pub limited: bool,
    /// This worker's ring.
    pub ring: RingProducer,
    /// The session's counts.
    pub shared: Arc<SessionShared>,
    /// Config port index by DPDK port id (for the filter's `in_port` at `port:P:tx`).
    pub port_index: Arc<[u16]>,
}

impl Tap {
    /// Claims one frame of the session's count (always granted without a limit).
    #[inline]
    pub fn claim(&self) -> bool {
        !self.limited
            || self
                .shared
                .remaining
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| r.checked_sub(1))
                .is_ok()
    }

    /// Whether the count is used up.
    #[inline]
    pub fn exhausted(&self) -> bool {
        self.limited && self.shared.remaining.load(Ordering::Relaxed) == 0
    }
}

/// Nanoseconds since the Unix epoch (CLOCK_REALTIME, a vDSO call), read once per captured
/// frame.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The control side of the running capture.
pub struct Session {
    /// Its id.
    pub id: u64,
    /// Where.
    pub at: CapturePoint,
    /// The control connection that started it (it stops when that connection closes).
    pub owner: u64,
    /// One consumer per worker that got the tap.
    pub rings: Vec<RingConsumer>,
    /// Shared counts.
    pub shared: Arc<SessionShared>,
    /// The frame limit, if any.
    pub limit: Option<u64>,
    /// Stop requested; workers still to be told (their command queue was full).
    pub stopping: bool,
    /// Workers whose stop command could not be queued yet.
    pub stop_pending: Vec<usize>,
}

impl Session {
    /// Frames copied so far.
    pub fn captured(&self) -> u64 {
        self.rings.iter().map(|r| r.ring().pushed()).sum()
    }

    /// Matching frames not copied (rings full).
    pub fn dropped(&self) -> u64 {
        self.rings.iter().map(|r| r.ring().dropped()).sum()
    }

    /// Whether no worker copies any more frames: all let go after a stop, or the count is
    /// used up and every claimed frame was pushed. `workers_ran`: whether the workers ever
    /// started (if not, a stop needs no acknowledgement: nothing can have been copied).
    pub fn finished(&self, workers_ran: bool) -> bool {
        let released = self.stopping
            && self.stop_pending.is_empty()
            && (!workers_ran || self.shared.released.load(Ordering::Acquire) >= self.rings.len());
        let counted = self.limit.is_some_and(|l| self.captured() >= l);
        released || counted
    }

    /// Up to `max` frames, oldest first within each worker's ring, the batch ordered by
    /// timestamp.
    pub fn read(&mut self, max: usize) -> Vec<CapturedPacket> {
        let mut frames = Vec::new();
        let mut progress = true;
        while frames.len() < max && progress {
            progress = false;
            for r in &mut self.rings {
                if frames.len() >= max {
                    break;
                }
                if let Some(f) = r.pop() {
                    frames.push(f);
                    progress = true;
                }
            }
        }
        frames.sort_by_key(|f| f.ts_ns);
        frames
            .into_iter()
            .map(|f| CapturedPacket {
                ts_ns: f.ts_ns,
                len: f.orig_len,
                data: netvm_api::capture::base64_encode(&f.data),
            })
            .collect()
    }

    /// Whether every ring is empty.
    pub fn drained(&self) -> bool {
        self.rings.iter().all(RingConsumer::is_empty)
    }
}

#[cfg(test)]
// Test data is made by deliberately truncating wider integers.
#[allow(clippy::cast_possible_truncation)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    fn push_bytes(p: &mut RingProducer, ts: u64, bytes: &[u8]) -> bool {
        p.push(ts, 9000, |buf| {
            let n = bytes.len().min(buf.len());
            buf[..n].copy_from_slice(&bytes[..n]);
            n
        })
    }

    #[test]
    fn slot_counts() {
        assert_eq!(ring_slots(2048), 4096);
        assert_eq!(ring_slots(16384), 512);
        assert_eq!(ring_slots(64), 8192);
        assert_eq!(ring_slots(1 << 30), 256);
        assert_eq!(ring_slots(3000), 2048);
    }

    #[test]
    fn full_ring_counts_drops_and_never_overwrites() {
        let (mut p, mut c) = CaptureRing::pair(4, 8);
        for k in 0..6u8 {
            let ok = push_bytes(&mut p, u64::from(k), &[k; 12]);
            assert_eq!(ok, k < 4);
        }
        assert_eq!((c.ring().pushed(), c.ring().dropped()), (4, 2));
        for k in 0..4u8 {
            let f = c.pop().unwrap();
            // Truncated to the slot.
            assert_eq!(
                (f.ts_ns, f.orig_len, f.data),
                (u64::from(k), 9000, vec![k; 8])
            );
        }
        assert!(c.pop().is_none() && c.is_empty());
        assert!(push_bytes(&mut p, 99, &[1]));
        assert_eq!(c.pop().unwrap().data, vec![1]);
    }

    proptest! {
        /// Any interleaving of pushes and pops behaves as a bounded FIFO (a `VecDeque` of
        /// capacity 8 that refuses, and counts, pushes when full).
        #[test]
        fn behaves_like_a_bounded_queue(ops in proptest::collection::vec((any::<bool>(), 0usize..20), 1..300)) {
            let (mut p, mut c) = CaptureRing::pair(8, 16);
            let mut model: VecDeque<Vec<u8>> = VecDeque::new();
            let mut dropped = 0u64;
            for (k, (is_push, len)) in ops.into_iter().enumerate() {
                if is_push {
                    let bytes: Vec<u8> = (0..len).map(|i| (i + k) as u8).collect();
                    let ok = push_bytes(&mut p, k as u64, &bytes);
                    prop_assert_eq!(ok, model.len() < 8);
                    if ok {
                        model.push_back(bytes[..len.min(16)].to_vec());
                    } else {
                        dropped += 1;
                    }
                } else {
                    let got = c.pop().map(|f| f.data);
                    prop_assert_eq!(got, model.pop_front());
                }
                prop_assert_eq!(c.ring().dropped(), dropped);
                prop_assert_eq!(c.is_empty(), model.is_empty());
            }
        }
    }

    #[test]
    fn two_threads_keep_order_and_bytes() {
        let (mut p, mut c) = CaptureRing::pair(64, 32);
        const N: u64 = 200_000;
        let prod = std::thread::spawn(move || {
            let mut sent = Vec::new();
            for k in 0..N {
                let b = k.to_le_bytes();
                if push_bytes(&mut p, k, &[b.as_slice(), b.as_slice()].concat()) {
                    sent.push(k);
                }
            }
            sent
        });
        let mut got = Vec::new();
        loop {
            match c.pop() {
                Some(f) => {
                    assert_eq!(f.data[..8], f.ts_ns.to_le_bytes());
                    assert_eq!(f.data[8..], f.ts_ns.to_le_bytes());
                    got.push(f.ts_ns);
                }
                None if prod.is_finished() && c.is_empty() => break,
                None => std::hint::spin_loop(),
            }
        }
        let sent = prod.join().unwrap();
        assert_eq!(got, sent);
        assert_eq!(c.ring().pushed() + c.ring().dropped(), N);
    }
}
