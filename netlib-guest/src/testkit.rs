//! A minimal stand-in for the core, for tests of NFs (this crate's, the NF binaries', C NFs').
//!
//! [`FakeCore`] creates a region file with netvm-shm, reserves slots, writes packets into
//! buffers, enqueues their descriptors on an NF's RX rings (ringing the doorbell, as the core
//! does), and collects what comes back on the NF's TX ring. It plays the trusted side only as
//! far as tests need: no ownership table, no validation policy beyond netvm-shm's.
//! It is not used by NFs at run time.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use netvm_shm::{
    CheckedBuf, Consumer, Descriptor, NfCounter, Producer, Region, RegionError, RegionParams,
    RingError, SlotState,
};

/// Region parameters for tests: 4 slots, `rx_rings` RX rings per slot, 256-entry rings, 512
/// buffers of 2176 bytes (128 headroom + 2048 data).
#[must_use]
pub fn params(rx_rings: u32) -> RegionParams {
    RegionParams {
        domain_id: 1,
        domain_name: "test".into(),
        slot_count: 4,
        rx_rings_per_slot: rx_rings,
        ring_capacity: 256,
        buf_size: 2176,
        buf_count: 512,
    }
}

/// Headroom the fake core leaves in front of packets it writes with [`FakeCore::load`].
pub const HEADROOM: u16 = 128;

/// A fresh region path: `/dev/shm` if it exists, else the temp dir.
#[must_use]
pub fn temp_region_path(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = Path::new("/dev/shm");
    let dir = if dir.is_dir() {
        dir.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    dir.join(format!(
        "netvm-{tag}.{}-{n}.test.region",
        std::process::id()
    ))
}

struct FakeSlot {
    name: String,
    service_id: u32,
    rx: Vec<Producer>,
    tx: Consumer,
}

/// The core's side of a region, for tests. Removes the region file when dropped.
pub struct FakeCore {
    slots: Vec<Option<FakeSlot>>,
    region: Region,
    path: PathBuf,
    params: RegionParams,
}

impl core::fmt::Debug for FakeCore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FakeCore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl FakeCore {
    /// Creates a region at `path` (which must not exist).
    pub fn create(path: &Path, params: RegionParams) -> Result<Self, RegionError> {
        let region = Region::create(path, &params)?;
        Ok(Self {
            slots: (0..params.slot_count).map(|_| None).collect(),
            region,
            path: path.to_path_buf(),
            params,
        })
    }

    /// Creates a region at [`temp_region_path`]`(tag)` with [`params`]`(rx_rings)`.
    pub fn temp(tag: &str, rx_rings: u32) -> Result<Self, RegionError> {
        Self::create(&temp_region_path(tag), params(rx_rings))
    }

    /// The region file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The core's mapping.
    #[must_use]
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// Reserves slot `slot` for NF `name`: resets its rings, opens the core's ring handles,
    /// then publishes RESERVED.
    pub fn reserve(&mut self, slot: u32, name: &str, service_id: u32) -> Result<(), RegionError> {
        self.slots[slot as usize] = None;
        let g = *self.region.geometry();
        let rings = g.slot_rings(slot).ok_or(RegionError::IndexOutOfRange {
            what: "slot",
            index: u64::from(slot),
            count: u64::from(g.slot_count()),
        })?;
        for r in rings.rx_range() {
            self.region.reset_ring(r, 0)?;
        }
        self.region.reset_ring(rings.tx, 0)?;
        let rx = rings
            .rx_range()
            .map(|r| self.region.producer(r))
            .collect::<Result<Vec<_>, _>>()?;
        let tx = self.region.consumer(rings.tx)?;
        self.region.slot(slot)?.reserve(name, service_id, 0)?;
        self.slots[slot as usize] = Some(FakeSlot {
            name: name.to_owned(),
            service_id,
            rx,
            tx,
        });
        Ok(())
    }

    /// Re-initialises the region in place, as a restarted core does (new generation, every
    /// slot FREE), then reserves again every slot that was reserved.
    pub fn restart(&mut self) -> Result<(), RegionError> {
        let again: Vec<(u32, String, u32)> = self
            .slots
            .iter()
            .zip(0u32..)
            .filter_map(|(s, i)| s.as_ref().map(|s| (i, s.name.clone(), s.service_id)))
            .collect();
        self.slots.iter_mut().for_each(|s| *s = None);
        self.region = Region::create_or_replace(&self.path, &self.params)?;
        for (slot, name, service) in again {
            self.reserve(slot, &name, service)?;
        }
        Ok(())
    }

    /// Generation of the region now.
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.region.header().generation()
    }

    /// State of slot `slot`.
    #[must_use]
    pub fn slot_state(&self, slot: u32) -> Option<SlotState> {
        self.region.slot(slot).ok().and_then(|s| s.state())
    }

    /// An NF-written counter of slot `slot`.
    #[must_use]
    pub fn counter(&self, slot: u32, c: NfCounter) -> u64 {
        self.region.slot(slot).map_or(0, |s| s.counter(c))
    }

    /// Heartbeat of slot `slot`.
    #[must_use]
    pub fn heartbeat(&self, slot: u32) -> u64 {
        self.region.slot(slot).map_or(0, |s| s.heartbeat())
    }

    /// Writes `frame` into buffer `buf_idx` at offset [`HEADROOM`] and returns its descriptor
    /// (verdict NONE, `in_port` as given, flow hash 0).
    ///
    /// # Panics
    /// If the buffer index is out of range or the frame does not fit (a test bug).
    #[must_use]
    pub fn load(&self, buf_idx: u32, frame: &[u8], in_port: u8) -> Descriptor {
        let len = u16::try_from(frame.len()).expect("frame fits a descriptor");
        let b = CheckedBuf::check(buf_idx, HEADROOM, len, self.region.geometry())
            .expect("frame fits the buffer");
        let p = self.region.packet_ptr(&b).expect("checked");
        // SAFETY: `packet_ptr` checked that `len` bytes from `p` are inside buffer `buf_idx`.
        // The test holds this buffer (it has not enqueued it yet); a raw copy creates no
        // reference into shared memory.
        unsafe { core::ptr::copy_nonoverlapping(frame.as_ptr(), p.as_ptr(), frame.len()) };
        let mut d = Descriptor::new(buf_idx, HEADROOM, len);
        d.in_port = in_port;
        d
    }

    /// A copy of the packet bytes `d` names, or `None` if `d` is out of bounds.
    #[must_use]
    pub fn bytes(&self, d: &Descriptor) -> Option<Vec<u8>> {
        let b = CheckedBuf::try_from_raw(d, self.region.geometry()).ok()?;
        let p = self.region.packet_ptr(&b).ok()?;
        let mut v = vec![0u8; usize::from(b.data_len())];
        // SAFETY: `packet_ptr` checked the range is inside the buffer; a raw copy into private
        // memory creates no reference into shared memory.
        unsafe { core::ptr::copy_nonoverlapping(p.as_ptr(), v.as_mut_ptr(), v.len()) };
        Some(v)
    }

    fn slot_mut(&mut self, slot: u32) -> &mut FakeSlot {
        self.slots[slot as usize]
            .as_mut()
            .expect("slot reserved by this FakeCore")
    }

    /// Enqueues `descs` on RX ring `worker` of slot `slot` and rings its doorbell; returns how
    /// many fit.
    pub fn send(
        &mut self,
        slot: u32,
        worker: u32,
        descs: &[Descriptor],
    ) -> Result<usize, RingError> {
        let p = &mut self.slot_mut(slot).rx[worker as usize];
        let n = p.enqueue_burst(descs)?;
        p.wake_if_sleeping();
        Ok(n)
    }

    /// Like [`send`](Self::send), and returns whether a wake-up was actually issued (the NF
    /// was asleep on this ring's doorbell).
    pub fn send_and_wake(
        &mut self,
        slot: u32,
        worker: u32,
        descs: &[Descriptor],
    ) -> Result<(usize, bool), RingError> {
        let p = &mut self.slot_mut(slot).rx[worker as usize];
        let n = p.enqueue_burst(descs)?;
        let woke = p.wake_if_sleeping();
        Ok((n, woke))
    }

    /// Whether the NF of slot `slot` announced on RX ring `worker`'s doorbell that it sleeps.
    #[must_use]
    pub fn nf_sleeping(&self, slot: u32, worker: u32) -> bool {
        self.slots[slot as usize]
            .as_ref()
            .is_some_and(|s| s.rx[worker as usize].consumer_sleeping())
    }

    /// Rings RX ring `worker`'s doorbell of slot `slot` without enqueuing anything; returns
    /// whether a wake-up was issued.
    pub fn wake(&mut self, slot: u32, worker: u32) -> bool {
        self.slot_mut(slot).rx[worker as usize].wake_if_sleeping()
    }

    /// Dequeues what slot `slot` returned on its TX ring.
    pub fn recv(&mut self, slot: u32, out: &mut [Descriptor]) -> Result<usize, RingError> {
        self.slot_mut(slot).tx.dequeue_burst(out)
    }

    /// Collects exactly `n` returned descriptors from slot `slot`, polling until `deadline`
    /// passes (then returns what it has).
    pub fn recv_n(&mut self, slot: u32, n: usize, within: Duration) -> Vec<Descriptor> {
        let end = Instant::now() + within;
        let mut got = Vec::with_capacity(n);
        let mut buf = [Descriptor::default(); 32];
        while got.len() < n && Instant::now() < end {
            match self.recv(slot, &mut buf) {
                Ok(0) => std::thread::yield_now(),
                Ok(k) => got.extend_from_slice(&buf[..k]),
                Err(e) => panic!("TX ring of slot {slot} corrupt: {e}"),
            }
        }
        got
    }
}

impl Drop for FakeCore {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Polls `cond` (yielding between polls) until it holds or `within` passes; returns whether it
/// held. A condition wait with a deadline as a hang guard, not a timed sleep.
pub fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::yield_now();
    }
}
