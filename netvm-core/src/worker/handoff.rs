//! Hand-offs between workers: a bounded single-producer single-consumer ring of frames.
//!
//! Two uses, one ring type, one ring per (from-worker, to-worker) and purpose, allocated at
//! start (no allocation, no lock, no system call on the hot path):
//! * **TX**: a port offers fewer TX queues than there are workers. Worker `w` transmits on
//!   queue `w` if it exists; otherwise it hands the frame to the owner of queue
//!   `w % tx_queues`, which transmits it with its own frames. Never refused, never locked; a
//!   full hand-off ring is that port's `tx_full`, as a full TX queue would be.
//! * **RX steering**: a port with several RX queues but no RSS in its device. The poller of a
//!   queue computes the core's symmetric flow hash of each IP frame and hands frames of flows
//!   that belong to another worker (`hash % workers`) to it, so a flow is handled by one worker
//!   from RX to TX whatever queue it arrived on.
//!
//! Frames in a ring are counted as in flight (`handed_off − taken_over`), so the accounting
//! identity holds at every snapshot.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicUsize, Ordering};

use dpdk::sys::rte_mbuf;

use super::{State, BURST};
use crate::stats::DropReason;
use crate::tables::Tables;
use crate::Shared;

/// One frame handed over: the mbuf and the port it came from (RX) or goes to (TX).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Handoff {
    /// The frame (owned by the ring while in it).
    pub m: *mut rte_mbuf,
    /// Port index.
    pub port: u16,
}

impl Default for Handoff {
    fn default() -> Self {
        Self {
            m: std::ptr::null_mut(),
            port: 0,
        }
    }
}

/// Keeps the producer's and the consumer's index on separate cache lines.
#[repr(align(64))]
#[derive(Default)]
struct Padded(AtomicUsize);

/// A bounded SPSC ring (capacity a power of two). One thread pushes, one pops.
pub(crate) struct Spsc<T> {
    slots: Box<[UnsafeCell<T>]>,
    mask: usize,
    /// Next slot to write (written by the producer only).
    head: Padded,
    /// Next slot to read (written by the consumer only).
    tail: Padded,
}

// SAFETY: a slot is written only by the producer while it is outside [tail, head) and read
// only by the consumer while inside; the Release/Acquire pairs on head and tail order those
// accesses. T is moved between threads (Send). The raw mbuf pointers in `Handoff` are owned
// by whoever holds the entry.
unsafe impl<T: Send> Sync for Spsc<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for Spsc<T> {}

// SAFETY: the mbuf pointer inside is handed from one worker to another together with its
// ownership; no two threads use it at once.
unsafe impl Send for Handoff {}

impl<T: Copy + Default> Spsc<T> {
    /// A ring holding up to `cap` entries (rounded up to a power of two, at least 2).
    pub(crate) fn new(cap: usize) -> Self {
        let cap = cap.max(2).next_power_of_two();
        Self {
            slots: (0..cap).map(|_| UnsafeCell::new(T::default())).collect(),
            mask: cap - 1,
            head: Padded::default(),
            tail: Padded::default(),
        }
    }

    /// Pushes as many of `items` as fit; returns how many. Producer side only.
    #[inline]
    pub(crate) fn push(&self, items: &[T]) -> usize {
        let head = self.head.0.load(Ordering::Relaxed);
        // Acquire pairs with the consumer's Release in `pop`: the slots it freed are reusable.
        let tail = self.tail.0.load(Ordering::Acquire);
        let room = self.slots.len() - head.wrapping_sub(tail);
        let n = items.len().min(room);
        for (k, it) in items[..n].iter().enumerate() {
            // SAFETY: slot head+k is outside [tail, head) (room checked), so the consumer does
            // not read it; only this producer writes slots.
            unsafe { *self.slots[head.wrapping_add(k) & self.mask].get() = *it };
        }
        // Release pairs with the consumer's Acquire in `pop`: the writes above are visible.
        self.head.0.store(head.wrapping_add(n), Ordering::Release);
        n
    }

    /// Pops up to `out.len()` entries into `out`; returns how many. Consumer side only.
    #[inline]
    pub(crate) fn pop(&self, out: &mut [T]) -> usize {
        let tail = self.tail.0.load(Ordering::Relaxed);
        // Acquire pairs with the producer's Release in `push`.
        let head = self.head.0.load(Ordering::Acquire);
        let n = head.wrapping_sub(tail).min(out.len());
        for (k, o) in out[..n].iter_mut().enumerate() {
            // SAFETY: slot tail+k is inside [tail, head): written and published by the
            // producer, which does not touch it until `tail` moves past it.
            *o = unsafe { *self.slots[tail.wrapping_add(k) & self.mask].get() };
        }
        // Release pairs with the producer's Acquire in `push`: the slots are free again.
        self.tail.0.store(tail.wrapping_add(n), Ordering::Release);
        n
    }

    /// Entries in the ring now (approximate while the other side runs).
    pub(crate) fn len(&self) -> usize {
        self.head
            .0
            .load(Ordering::Acquire)
            .wrapping_sub(self.tail.0.load(Ordering::Acquire))
    }
}

/// Entries per hand-off ring (per direction and pair of workers).
pub(crate) const HANDOFF_RING: usize = 1024;

/// The hand-off rings of a core with `n` workers: ring `from * n + to` carries frames from
/// worker `from` to worker `to`.
pub(crate) fn rings(n: usize) -> Vec<Spsc<Handoff>> {
    (0..n * n).map(|_| Spsc::new(HANDOFF_RING)).collect()
}

impl State {
    /// Stages frame `m` (of port `port`) for worker `to`; pushed at the end of the poll
    /// ([`Self::push_steered`]).
    #[inline]
    pub(super) fn steer_to(&mut self, sh: &Shared, to: usize, m: *mut rte_mbuf, port: u16) {
        if self.nsteer[to] == BURST {
            self.push_steered(sh, to);
        }
        let k = self.nsteer[to];
        self.steer[to][k] = Handoff { m, port };
        self.nsteer[to] = k + 1;
    }

    /// Pushes the frames staged for worker `to` into the RX hand-off ring; a full ring drops
    /// the rest (`ring_full`: the other worker is behind, as a full NF ring would be).
    pub(super) fn push_steered(&mut self, sh: &Shared, to: usize) {
        let n = self.nsteer[to];
        if n == 0 {
            return;
        }
        self.nsteer[to] = 0;
        let ring = &sh.handoff_rx[self.id * self.nworkers as usize + to];
        let k = ring.push(&self.steer[to][..n]);
        self.c.handed_off += k as u64;
        let staged = self.steer[to];
        for h in &staged[k..n] {
            self.free(h.m, DropReason::RingFull);
        }
    }

    /// Hands TX frames for `port` to the worker that owns the queue this worker lacks; a
    /// full ring is `tx_full`.
    pub(super) fn hand_tx(&mut self, sh: &Shared, port: u16, pkts: &[*mut rte_mbuf]) {
        let owner = sh.ports[usize::from(port)].tx_owner(self.id);
        let ring = &sh.handoff_tx[self.id * self.nworkers as usize + owner];
        let n = pkts.len().min(self.hand_buf.len());
        for (h, &m) in self.hand_buf.iter_mut().zip(&pkts[..n]) {
            *h = Handoff { m, port };
        }
        let k = ring.push(&self.hand_buf[..n]);
        self.c.handed_off += k as u64;
        for &m in &pkts[k..] {
            self.free(m, DropReason::TxFull);
        }
    }

    /// Takes over what the other workers handed to this one: steered RX frames enter their
    /// chain here; TX frames join this worker's queue of their port. Returns how many.
    pub(super) fn take_over(&mut self, sh: &Shared, t: &Tables) -> usize {
        let n = self.nworkers as usize;
        let mut got = 0;
        let me = self.id;
        for from in (0..n).filter(|&f| f != me) {
            let ring = &sh.handoff_rx[from * n + self.id];
            if ring.len() > 0 {
                let mut buf = [Handoff::default(); BURST];
                let k = ring.pop(&mut buf);
                self.c.taken_over += k as u64;
                got += k;
                for h in &buf[..k] {
                    self.rx_steered(sh, t, h.m, h.port);
                }
            }
            let ring = &sh.handoff_tx[from * n + self.id];
            if ring.len() > 0 {
                let mut buf = [Handoff::default(); BURST];
                let k = ring.pop(&mut buf);
                self.c.taken_over += k as u64;
                got += k;
                for h in &buf[..k] {
                    self.stage_tx(sh, h.m, h.port);
                }
            }
        }
        got
    }

    /// Whether nothing waits in the rings towards this worker.
    /// Whether an NF this worker drains has descriptors waiting in its TX ring (a corrupt
    /// ring counts as waiting: the iteration that reads it quarantines the NF).
    pub(super) fn returns_waiting(&mut self) -> bool {
        self.nfs
            .iter_mut()
            .filter_map(|l| l.tx.as_mut())
            .any(|c| c.len().map_or(true, |n| n > 0))
    }

    pub(super) fn inbound_empty(&self, sh: &Shared) -> bool {
        let n = self.nworkers as usize;
        (0..n).filter(|&f| f != self.id).all(|from| {
            sh.handoff_rx[from * n + self.id].len() == 0
                && sh.handoff_tx[from * n + self.id].len() == 0
        })
    }
}

/// Whether every hand-off ring of the core (all ordered pairs, both kinds) is empty.
pub(super) fn all_empty(sh: &Shared) -> bool {
    sh.handoff_rx
        .iter()
        .chain(sh.handoff_tx.iter())
        .all(|r| r.len() == 0)
}

#[cfg(test)]
mod tests {
    use super::Spsc;

    #[test]
    fn fills_and_drains_in_order() {
        let r: Spsc<u32> = Spsc::new(5);
        assert_eq!(r.push(&[1, 2, 3, 4, 5, 6, 7, 8, 9]), 8);
        assert_eq!(r.len(), 8);
        assert_eq!(r.push(&[10]), 0);
        let mut out = [0u32; 3];
        assert_eq!(r.pop(&mut out), 3);
        assert_eq!(out, [1, 2, 3]);
        assert_eq!(r.push(&[10, 11, 12, 13]), 3);
        let mut all = [0u32; 16];
        assert_eq!(r.pop(&mut all), 8);
        assert_eq!(&all[..8], &[4, 5, 6, 7, 8, 10, 11, 12]);
        assert_eq!(r.pop(&mut all), 0);
    }

    #[test]
    fn two_threads_pass_every_item_once_in_order() {
        let r = std::sync::Arc::new(Spsc::<u64>::new(64));
        let n = 200_000u64;
        let p = std::sync::Arc::clone(&r);
        let prod = std::thread::spawn(move || {
            let mut next = 0u64;
            while next < n {
                let batch: Vec<u64> = (next..(next + 7).min(n)).collect();
                next += p.push(&batch) as u64;
                std::hint::spin_loop();
            }
        });
        let mut want = 0u64;
        let mut buf = [0u64; 16];
        while want < n {
            let k = r.pop(&mut buf);
            for &v in &buf[..k] {
                assert_eq!(v, want);
                want += 1;
            }
        }
        prod.join().unwrap();
        assert_eq!(r.len(), 0);
    }
}
