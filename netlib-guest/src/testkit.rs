//! A minimal stand-in for the core, for tests of NFs (this crate's, the NF binaries', C NFs').
//!
//! [`FakeCore`] creates a domain region file with netvm-shm and, per reserved NF, a control
//! region next to it (as the core does), writes packets into
//! buffers, enqueues their descriptors on an NF's RX rings (ringing the doorbell, as the core
//! does), and collects what comes back on the NF's TX ring. It plays the trusted side only as
//! far as tests need: no ownership table, no validation policy beyond netvm-shm's.
//! It is not used by NFs at run time.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use netvm_shm::{
    control_path, Buffers, CheckedBuf, Consumer, Descriptor, NfCounter, Producer, Region,
    RegionError, RegionKind, RegionLayout, RegionParams, RingError, SlotState,
};

/// Region parameters for tests: a domain region of 512 buffers of 2176 bytes (128 headroom +
/// 2048 data); the fake core gives each NF (up to 4) `rx_rings` RX rings of 256 entries.
#[must_use]
pub fn params(rx_rings: u32) -> RegionParams {
    RegionParams {
        kind: RegionKind::Domain,
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
    ctl: Region,
    ctl_path: PathBuf,
    rx: Vec<Producer>,
    tx: Consumer,
}

/// The core's side of a domain region and its NFs' control regions, for tests. Removes the
/// files when dropped.
pub struct FakeCore {
    slots: Vec<Option<FakeSlot>>,
    region: Region,
    bufs: Buffers,
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

fn no_buffers() -> RegionError {
    RegionError::BadValue {
        what: "kind (a domain region holds the buffers)",
        found: 0,
    }
}

impl FakeCore {
    /// Creates a domain region at `path` (which must not exist). `params.slot_count` is how
    /// many NFs it can reserve (each gets its own control region); `params.rx_rings_per_slot`
    /// and `params.ring_capacity` size their rings.
    pub fn create(path: &Path, params: RegionParams) -> Result<Self, RegionError> {
        let region = Region::create(path, &params)?;
        let bufs = region.buffers().ok_or_else(no_buffers)?;
        Ok(Self {
            slots: (0..params.slot_count).map(|_| None).collect(),
            region,
            bufs,
            path: path.to_path_buf(),
            params,
        })
    }

    /// Creates a region at [`temp_region_path`]`(tag)` with [`params`]`(rx_rings)`.
    pub fn temp(tag: &str, rx_rings: u32) -> Result<Self, RegionError> {
        Self::create(&temp_region_path(tag), params(rx_rings))
    }

    /// The domain region file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The core's mapping of the domain region.
    #[must_use]
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// The control region of the NF reserved as `slot`.
    ///
    /// # Panics
    /// If `slot` was never reserved (a test bug).
    #[must_use]
    pub fn control(&self, slot: u32) -> &Region {
        &self.slots[slot as usize]
            .as_ref()
            .expect("slot reserved by this FakeCore")
            .ctl
    }

    /// The control region file of the NF reserved as `slot`.
    ///
    /// # Panics
    /// If `slot` was never reserved (a test bug).
    #[must_use]
    pub fn control_path(&self, slot: u32) -> &Path {
        &self.slots[slot as usize]
            .as_ref()
            .expect("slot reserved by this FakeCore")
            .ctl_path
    }

    /// Reserves NF number `slot` as `name`: creates (or re-initialises) its control region,
    /// opens the core's ring handles, then publishes RESERVED.
    pub fn reserve(&mut self, slot: u32, name: &str, service_id: u32) -> Result<(), RegionError> {
        let old = self.slots[slot as usize].take();
        let ctl_path = control_path(&self.path, name);
        let params = RegionLayout::control_params(
            self.region.geometry(),
            self.params.rx_rings_per_slot,
            self.params.ring_capacity,
        );
        drop(old);
        let ctl = Region::create_or_replace(&ctl_path, &params)?;
        let rings = ctl
            .geometry()
            .slot_rings(0)
            .ok_or(RegionError::IndexOutOfRange {
                what: "slot",
                index: 0,
                count: 0,
            })?;
        let rx = rings
            .rx_range()
            .map(|r| ctl.producer(r))
            .collect::<Result<Vec<_>, _>>()?;
        let tx = ctl.consumer(rings.tx)?;
        ctl.slot(0)?.reserve(name, service_id, 0)?;
        self.slots[slot as usize] = Some(FakeSlot {
            name: name.to_owned(),
            service_id,
            ctl,
            ctl_path,
            rx,
            tx,
        });
        Ok(())
    }

    /// Re-initialises the regions in place, as a restarted core does (new generations), then
    /// reserves again every NF that was reserved.
    pub fn restart(&mut self) -> Result<(), RegionError> {
        let again: Vec<(u32, String, u32)> = self
            .slots
            .iter()
            .zip(0u32..)
            .filter_map(|(s, i)| s.as_ref().map(|s| (i, s.name.clone(), s.service_id)))
            .collect();
        self.slots.iter_mut().for_each(|s| *s = None);
        self.region = Region::create_or_replace(&self.path, &self.params)?;
        self.bufs = self.region.buffers().ok_or_else(no_buffers)?;
        for (slot, name, service) in again {
            self.reserve(slot, &name, service)?;
        }
        Ok(())
    }

    /// Generation of the control region of NF `slot` now (0 if not reserved).
    #[must_use]
    pub fn generation(&self, slot: u32) -> u64 {
        self.slots[slot as usize]
            .as_ref()
            .map_or(0, |s| s.ctl.header().generation())
    }

    fn with_slot<R>(&self, slot: u32, f: impl FnOnce(&netvm_shm::SlotRef<'_>) -> R) -> Option<R> {
        let s = self.slots.get(slot as usize)?.as_ref()?;
        s.ctl.slot(0).ok().map(|r| f(&r))
    }

    /// State of NF `slot`'s slot.
    #[must_use]
    pub fn slot_state(&self, slot: u32) -> Option<SlotState> {
        self.with_slot(slot, |s| s.state()).flatten()
    }

    /// An NF-written counter of NF `slot`.
    #[must_use]
    pub fn counter(&self, slot: u32, c: NfCounter) -> u64 {
        self.with_slot(slot, |s| s.counter(c)).unwrap_or(0)
    }

    /// Heartbeat of NF `slot`.
    #[must_use]
    pub fn heartbeat(&self, slot: u32) -> u64 {
        self.with_slot(slot, |s| s.heartbeat()).unwrap_or(0)
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
        let p = self.bufs.packet_ptr(&b).expect("checked");
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
        let p = self.bufs.packet_ptr(&b).ok()?;
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
        for s in self.slots.iter().flatten() {
            let _ = std::fs::remove_file(&s.ctl_path);
        }
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
