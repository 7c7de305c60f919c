//! [`Nf`]: one attached network function — its slot, rings, adaptive polling and run loops.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use memmap2::MmapRaw;
use netvm_shm::{
    Buffers, CheckedBuf, Consumer, Descriptor, Geometry, NfCounter, Producer, Region, RegionError,
    RegionKind, RingError, Verdict, WaitMode, WaitOutcome,
};

use crate::error::NfError;
use crate::packet::Packet;
use crate::slot::{self, Claimant, SlotHandle};
use crate::wait::{Doorbells, Wake};

/// Descriptors per batch in [`Nf::run`].
pub const BATCH: usize = 32;

/// Descriptors copied (and verdict-checked) per enqueue in [`Nf::tx_burst`].
const TX_CHUNK: usize = 64;

/// Adaptive polling: how an idle NF backs off ([`Nf::idle`]).
///
/// After `spin_polls` consecutive empty polls it yields the CPU between polls, after
/// `yield_polls` more it sleeps on its RX doorbells for up to `sleep_timeout` at a time
/// (bounded so the heartbeat, a core restart and a stop request are noticed). Any packet
/// resets the count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PollPolicy {
    /// Empty polls spent spinning (`spin_loop` hint between polls).
    pub spin_polls: u32,
    /// Further empty polls with `yield_now` between them.
    pub yield_polls: u32,
    /// Longest single sleep on the doorbells.
    pub sleep_timeout: Duration,
}

impl Default for PollPolicy {
    /// 256 spins (a few µs), no yields, then sleeps of at most 10 ms.
    ///
    /// Short spins: where NFs share a CPU, an NF spinning on an empty ring keeps the CPU from
    /// the NF that has work until it sleeps. Three l2fwd NFs on one CPU (benches/hop_bench.sh
    /// layout, chain entry backpressure on) forwarded about 3.1 Mpps with 2048 spins, 5.3 with
    /// 1024, 8.2–8.5 with 256 and 6.6–7.0 with 32; one NF on its own CPU was the same with 256
    /// or 2048 (about 26 Mpps). See docs/shm-abi.md (doorbell).
    ///
    /// No yield phase by default: when an NF shares its CPU with a busy task (a traffic
    /// generator, another polling NF), each `sched_yield` hands that task a whole time slice
    /// (milliseconds), which put p99 latency through one NF at 3.5 ms on the 2-CPU bench
    /// machine; a doorbell sleep instead is ended by the core's wake-up, which the scheduler
    /// lets preempt the busy task.
    fn default() -> Self {
        Self {
            spin_polls: 256,
            yield_polls: 0,
            sleep_timeout: Duration::from_millis(10),
        }
    }
}

/// How an NF attaches and waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NfConfig {
    /// How to sleep when idle: [`WaitMode::Futex`] for host processes (the core wakes the NF
    /// when it enqueues), [`WaitMode::PollSleep`] in guests (a futex does not cross the VM).
    pub wait_mode: WaitMode,
    /// Spin / yield / sleep thresholds.
    pub poll: PollPolicy,
    /// Write this process's pid into the slot (host processes). Guests write 0: their pids mean
    /// nothing to the host.
    pub write_pid: bool,
    /// Keep retrying the first attach for this long if the slot or region is not ready yet
    /// (zero: fail at once).
    pub attach_wait: Duration,
    /// After a core restart, how long to wait for the slot to be reserved again.
    pub reattach_timeout: Duration,
}

impl NfConfig {
    /// For a host process: futex doorbells, pid written.
    #[must_use]
    pub fn host() -> Self {
        Self {
            wait_mode: WaitMode::Futex,
            poll: PollPolicy::default(),
            write_pid: true,
            attach_wait: Duration::ZERO,
            reattach_timeout: Duration::from_secs(60),
        }
    }

    /// For a QEMU guest: poll-sleep in 1 ms steps, pid 0.
    #[must_use]
    pub fn guest() -> Self {
        Self {
            wait_mode: WaitMode::PollSleep {
                interval: Duration::from_millis(1),
            },
            write_pid: false,
            ..Self::host()
        }
    }
}

impl Default for NfConfig {
    fn default() -> Self {
        Self::host()
    }
}

/// Counters of one NF, in private memory (the slot's shared counters are a subset).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NfStats {
    /// Descriptors received from the RX rings.
    pub rx_pkts: u64,
    /// Bytes of those packets (as received).
    pub rx_bytes: u64,
    /// Descriptors returned on the TX ring.
    pub tx_pkts: u64,
    /// Bytes of those packets (as returned).
    pub tx_bytes: u64,
    /// Returned with NEXT.
    pub next: u64,
    /// Returned with SERVICE(id).
    pub service: u64,
    /// Returned with OUT(port).
    pub out: u64,
    /// Returned with DROP (including `no_verdict` and `bad_desc`).
    pub dropped: u64,
    /// Returned without a known verdict, turned into DROP by the library.
    pub no_verdict: u64,
    /// Descriptors from the core that did not name a valid packet (returned with DROP).
    pub bad_desc: u64,
    /// Bursts that found the TX ring full and had to wait.
    pub tx_ring_full: u64,
    /// Times the NF went to sleep on its doorbells.
    pub sleeps: u64,
    /// Sleeps ended by a doorbell (or a signal).
    pub wakeups: u64,
    /// Sleeps ended by the timeout.
    pub sleep_timeouts: u64,
    /// Re-attaches after core restarts.
    pub reattaches: u64,
    /// TSC cycles spent on bursts that brought packets (from a non-empty `rx_burst` to the
    /// next `rx_burst` call): busy cycles ÷ `rx_pkts` is the NF's cost per packet.
    pub busy_cycles: u64,
    /// Descriptors forgotten because the core restarted while the NF held them.
    pub discarded: u64,
}

/// Per-packet processing for [`Nf::run_handler`], with an optional periodic hook.
///
/// Closures `FnMut(&mut Packet<'_>) -> Verdict` implement it; use [`Nf::run`] for those.
pub trait PacketHandler {
    /// Processes one packet in place and returns its verdict.
    fn process(&mut self, pkt: &mut Packet<'_>) -> Verdict;

    /// How often to call [`tick`](Self::tick) (`None`: never).
    fn tick_interval(&self) -> Option<Duration> {
        None
    }

    /// Called between batches about every [`tick_interval`](Self::tick_interval), e.g. to
    /// print statistics. Never called per packet.
    fn tick(&mut self, _stats: &NfStats) {}
}

impl<F: FnMut(&mut Packet<'_>) -> Verdict> PacketHandler for F {
    fn process(&mut self, pkt: &mut Packet<'_>) -> Verdict {
        self(pkt)
    }
}

/// A mapping the caller made, kept (or promised) alive for the NF's lifetime.
struct RawMap {
    base: *mut u8,
    len: usize,
    /// Owned mapping (`attach_mapping`); `None` for `attach_raw`, whose caller keeps it.
    _own: Option<MmapRaw>,
}

impl RawMap {
    fn owned(map: MmapRaw) -> Self {
        Self {
            base: map.as_mut_ptr(),
            len: map.len(),
            _own: Some(map),
        }
    }
}

/// Where the NF's two mappings come from, so the NF can map them again after a core restart:
/// its **control region** (slot and rings; only this NF and the core map it) and its domain's
/// region (packet buffers, shared by the domain's NFs).
enum Source {
    /// Files (host: hugetlbfs; guest: the ivshmem BARs' sysfs `resource2`). Re-opened by
    /// path, since a restarted core may have replaced them.
    Files { region: PathBuf, control: PathBuf },
    /// Mappings made by the caller; re-validated in place.
    Mappings { control: RawMap, buffers: RawMap },
}

// SAFETY: the raw pointers of `Mappings` name process-wide mappings (owned here, or kept alive
// by the caller of `Nf::attach_raw`) that are only accessed through netvm-shm's handles.
unsafe impl Send for Source {}

impl Source {
    fn label(&self) -> String {
        match self {
            Source::Files { region, .. } => region.display().to_string(),
            Source::Mappings { .. } => "<mapping>".to_owned(),
        }
    }

    fn map(&self) -> Result<(Region, Buffers), RegionError> {
        // A missing domain region is named as such (not as its missing control region).
        if let Source::Files { region, .. } = self {
            if let Err(source) = std::fs::metadata(region) {
                return Err(RegionError::Io {
                    op: "open",
                    path: region.clone(),
                    source,
                });
            }
        }
        let ctl = match self {
            Source::Files { control, .. } => Region::attach_file(control)?,
            Source::Mappings { control, .. } => {
                // SAFETY: `control` is kept alive by this `Source` (owned) or by the caller of
                // `Nf::attach_raw`, and the `Nf` drops every handle made here before the
                // source (field order). Nothing holds Rust references into it.
                unsafe { Region::attach_raw(control.base, control.len) }?
            }
        };
        // Only a control region: a combined or domain region would let this NF find another
        // NF's slot (or none at all).
        if !matches!(ctl.geometry().kind(), RegionKind::Control { .. }) {
            return Err(RegionError::BadValue {
                what: "kind (expected an NF control region)",
                found: u64::from(ctl.geometry().kind().as_raw()),
            });
        }
        let bufs = match self {
            Source::Files { region, .. } => Buffers::attach_file(region, ctl.geometry())?,
            Source::Mappings { buffers, .. } => {
                // SAFETY: as for the control mapping above.
                unsafe { Buffers::attach_raw(buffers.base, buffers.len, ctl.geometry()) }?
            }
        };
        Ok((ctl, bufs))
    }
}

/// Everything tied to one generation of the control region. Fields drop in order: rings, then
/// the slot, then the mappings.
struct Attachment {
    rx: Vec<Consumer>,
    rx_ids: Vec<u32>,
    tx: Producer,
    tx_id: u32,
    doorbells: Option<Doorbells>,
    slot: SlotHandle,
    ctl: Region,
    bufs: Buffers,
    generation: u64,
}

/// One network function attached to its slot: the NF side of the core ↔ NF contract.
///
/// Attach with [`attach_file`](Self::attach_file) (host), [`attach_mapping`](Self::attach_mapping)
/// or [`attach_raw`](Self::attach_raw) (any mapping, e.g. an ivshmem BAR). Then either the
/// closure API ([`run`](Self::run)) or the burst API ([`rx_burst`](Self::rx_burst),
/// [`packet`](Self::packet), [`tx_burst`](Self::tx_burst), [`idle`](Self::idle)).
///
/// Rules the library keeps for you: every received descriptor is returned (the TX path blocks
/// rather than drop), the heartbeat and slot counters are updated, a core restart (generation
/// change) makes the NF forget its old descriptors and re-attach, and
/// [`detach`](Self::detach) (or drop) marks the slot DETACHED.
pub struct Nf {
    att: Attachment,
    /// After `att`: a `Source::Mapping` keeper must outlive regions made from it.
    source: Source,
    name: String,
    cfg: NfConfig,
    stop: Arc<AtomicBool>,
    stats: NfStats,
    held: u64,
    empty_polls: u32,
    next_rx: usize,
    /// TSC of the last `rx_burst` that brought packets, until the next call (0: none).
    busy_since: u64,
    /// A ring error met after some descriptors of the same burst were dequeued; reported by
    /// the next `rx_burst`.
    pending: Option<NfError>,
    /// `futex_waitv` is unavailable: poll-sleep over several rings instead.
    waitv_unsupported: bool,
    detached: bool,
}

impl core::fmt::Debug for Nf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Nf")
            .field("name", &self.name)
            .field("region", &self.source.label())
            .field("slot", &self.att.slot.index())
            .field("generation", &self.att.generation)
            .field("rx_rings", &self.att.rx_ids)
            .field("tx_ring", &self.att.tx_id)
            .field("held", &self.held)
            .finish_non_exhaustive()
    }
}

fn transient(e: &NfError) -> bool {
    matches!(
        e,
        NfError::NoSuchNf { .. } | NfError::Region { .. } | NfError::AttachRace { .. }
    )
}

/// Maps the region, claims the slot and opens the rings (one attempt).
fn attach_once(source: &Source, name: &str, cfg: &NfConfig) -> Result<Attachment, NfError> {
    let label = source.label();
    let region_err = |source| NfError::Region {
        region: label.clone(),
        source,
    };
    let (region, bufs) = source.map().map_err(|e| match (&e, source) {
        // No control region for this name: the core reserved no NF called so (yet).
        (
            RegionError::Io {
                op: "open",
                source: io,
                path,
            },
            Source::Files { control, region },
        ) if io.kind() == std::io::ErrorKind::NotFound && path == control && region.exists() => {
            NfError::NoSuchNf {
                name: name.to_owned(),
                region: label.clone(),
            }
        }
        _ => region_err(e),
    })?;
    let who = Claimant {
        pid: if cfg.write_pid { std::process::id() } else { 0 },
        // A live NF bumps its heartbeat at least every sleep timeout; allow for scheduling
        // delays on a loaded host.
        heartbeat_window: cfg
            .poll
            .sleep_timeout
            .saturating_mul(50)
            .clamp(Duration::from_millis(200), Duration::from_secs(5)),
    };
    let slot = slot::claim(&region, &label, name, who)?;
    match open_rings(&region, &slot, name, cfg) {
        Ok((rx, rx_ids, tx, tx_id, doorbells)) => Ok(Attachment {
            rx,
            rx_ids,
            tx,
            tx_id,
            doorbells,
            generation: region.generation(),
            slot,
            ctl: region,
            bufs,
        }),
        Err(e) => {
            // Give the slot back so that a corrected retry can attach.
            slot.detach();
            Err(e)
        }
    }
}

type Rings = (Vec<Consumer>, Vec<u32>, Producer, u32, Option<Doorbells>);

fn open_rings(
    region: &Region,
    slot: &SlotHandle,
    name: &str,
    cfg: &NfConfig,
) -> Result<Rings, NfError> {
    let index = slot.index();
    let bad = |what: String| NfError::SlotRings {
        name: name.to_owned(),
        slot: index,
        what,
    };
    let g = region.geometry();
    let expected = g
        .slot_rings(index)
        .ok_or_else(|| bad("slot has no ring ids".into()))?;
    let s = region.slot(index).map_err(|e| bad(e.to_string()))?;
    let count = s.rx_ring_count();
    if count == 0 || count > expected.rx_count {
        return Err(bad(format!(
            "{count} RX rings, expected 1..={}",
            expected.rx_count
        )));
    }
    let mut rx_ids = Vec::with_capacity(count as usize);
    for w in 0..count {
        let id = s.rx_ring(w);
        if id.is_none() || id != expected.rx(w) {
            return Err(bad(format!(
                "RX ring of worker {w} is {id:?}, expected {:?}",
                expected.rx(w)
            )));
        }
        rx_ids.extend(id);
    }
    let tx_id = s.tx_ring();
    if tx_id != expected.tx {
        return Err(bad(format!("TX ring is {tx_id}, expected {}", expected.tx)));
    }
    let ring_err = |ring: u32| {
        move |e: RegionError| match e {
            RegionError::Ring { ring, source } => NfError::Ring { ring, source },
            other => NfError::SlotRings {
                name: name.to_owned(),
                slot: index,
                what: format!("ring {ring}: {other}"),
            },
        }
    };
    let mut rx = Vec::with_capacity(rx_ids.len());
    for &id in &rx_ids {
        let mut c = region.consumer(id).map_err(ring_err(id))?;
        c.set_wait_mode(cfg.wait_mode);
        rx.push(c);
    }
    let tx = region.producer(tx_id).map_err(ring_err(tx_id))?;
    let doorbells = if rx_ids.len() > 1 && cfg.wait_mode == WaitMode::Futex {
        Some(Doorbells::new(region, &rx_ids).ok_or_else(|| bad("ring id out of range".into()))?)
    } else {
        None
    };
    Ok((rx, rx_ids, tx, tx_id, doorbells))
}

/// Attaches, retrying transient failures until `deadline` with a backoff of 1 ms doubling to
/// 100 ms; gives up early if `stop` is set.
fn attach_until(
    source: &Source,
    name: &str,
    cfg: &NfConfig,
    deadline: Instant,
    stop: &AtomicBool,
) -> Result<Attachment, NfError> {
    let start = Instant::now();
    let mut backoff = Duration::from_millis(1);
    loop {
        match attach_once(source, name, cfg) {
            Ok(a) => return Ok(a),
            Err(e) if transient(&e) => {
                let now = Instant::now();
                if now >= deadline {
                    return Err(NfError::ReattachTimeout {
                        name: name.to_owned(),
                        waited: now - start,
                        last: Box::new(e),
                    });
                }
                if stop.load(Ordering::Relaxed) || crate::signal::stop_requested() {
                    return Err(NfError::Stopped);
                }
                std::thread::sleep(backoff.min(deadline - now));
                backoff = (backoff * 2).min(Duration::from_millis(100));
            }
            Err(e) => return Err(e),
        }
    }
}

impl Nf {
    /// Attaches as NF `name` to the domain region file at `path` and the NF's control region
    /// next to it ([`netvm_shm::control_path`]), with [`NfConfig::host`].
    pub fn attach_file(path: &Path, name: &str) -> Result<Nf, NfError> {
        Self::attach_file_with(path, name, NfConfig::host())
    }

    /// Attaches as NF `name` to the domain region file at `path` and the NF's control region
    /// next to it ([`netvm_shm::control_path`]).
    pub fn attach_file_with(path: &Path, name: &str, cfg: NfConfig) -> Result<Nf, NfError> {
        Self::attach_files(path, &netvm_shm::control_path(path, name), name, cfg)
    }

    /// Attaches as NF `name` to the domain region file `region` and the control region file
    /// `control`. Either may be a guest's ivshmem BAR (`/sys/bus/pci/devices/…/resource2`,
    /// after writing `1` to `enable`), with [`NfConfig::guest`].
    pub fn attach_files(
        region: &Path,
        control: &Path,
        name: &str,
        cfg: NfConfig,
    ) -> Result<Nf, NfError> {
        Self::attach_source(
            Source::Files {
                region: region.to_path_buf(),
                control: control.to_path_buf(),
            },
            name,
            cfg,
        )
    }

    /// Attaches to a control region and a domain region in mappings the caller made (e.g.
    /// memmap2 mappings of two BARs) and takes ownership of both.
    pub fn attach_mapping(
        control: MmapRaw,
        buffers: MmapRaw,
        name: &str,
        cfg: NfConfig,
    ) -> Result<Nf, NfError> {
        Self::attach_source(
            Source::Mappings {
                control: RawMap::owned(control),
                buffers: RawMap::owned(buffers),
            },
            name,
            cfg,
        )
    }

    /// Attaches to a control region at `ctl_base .. ctl_base + ctl_len` and a domain region at
    /// `buf_base .. buf_base + buf_len`, mappings the caller manages.
    ///
    /// # Safety
    /// Both ranges must be readable and writable memory that stays mapped, and that nothing
    /// else in this process accesses through Rust references, for as long as the returned `Nf`
    /// exists (as for netvm-shm's `Region::attach_raw`).
    pub unsafe fn attach_raw(
        ctl_base: *mut u8,
        ctl_len: usize,
        buf_base: *mut u8,
        buf_len: usize,
        name: &str,
        cfg: NfConfig,
    ) -> Result<Nf, NfError> {
        Self::attach_source(
            Source::Mappings {
                control: RawMap {
                    base: ctl_base,
                    len: ctl_len,
                    _own: None,
                },
                buffers: RawMap {
                    base: buf_base,
                    len: buf_len,
                    _own: None,
                },
            },
            name,
            cfg,
        )
    }

    fn attach_source(source: Source, name: &str, cfg: NfConfig) -> Result<Nf, NfError> {
        slot::check_name(name)?;
        let stop = Arc::new(AtomicBool::new(false));
        let deadline = Instant::now() + cfg.attach_wait;
        let att = attach_until(&source, name, &cfg, deadline, &stop).map_err(|e| match e {
            // The first attach reports the underlying error, not a "re-attach" timeout.
            NfError::ReattachTimeout { last, .. } => *last,
            e => e,
        })?;
        Ok(Nf {
            att,
            source,
            name: name.to_owned(),
            cfg,
            stop,
            stats: NfStats::default(),
            held: 0,
            empty_polls: 0,
            next_rx: 0,
            busy_since: 0,
            pending: None,
            waitv_unsupported: false,
            detached: false,
        })
    }

    // ------------------------------------------------------------------------------------------
    // Identity and state
    // ------------------------------------------------------------------------------------------

    /// The NF name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Index of the slot the NF attached to.
    #[must_use]
    pub fn slot(&self) -> u32 {
        self.att.slot.index()
    }

    /// Service id the core gave this NF.
    #[must_use]
    pub fn service_id(&self) -> u32 {
        self.att.ctl.slot(self.slot()).map_or(0, |s| s.service_id())
    }

    /// Instance number within the service.
    #[must_use]
    pub fn instance(&self) -> u32 {
        self.att.ctl.slot(self.slot()).map_or(0, |s| s.instance())
    }

    /// Generation of the region this NF is attached under.
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.att.generation
    }

    /// Validated geometry of the NF's control region (its `buf_*` values describe the
    /// domain's packet buffers).
    #[must_use]
    pub fn geometry(&self) -> &Geometry {
        self.att.ctl.geometry()
    }

    /// The NF's control region (for tools).
    #[must_use]
    pub fn control(&self) -> &Region {
        &self.att.ctl
    }

    /// The domain region file this NF attached by (`None` for a mapping made by the caller).
    #[must_use]
    pub fn region_path(&self) -> Option<&Path> {
        match &self.source {
            Source::Files { region, .. } => Some(region),
            Source::Mappings { .. } => None,
        }
    }

    /// The domain's packet buffers (for tools; packet access goes through
    /// [`packet`](Self::packet)).
    #[must_use]
    pub fn buffers(&self) -> &Buffers {
        &self.att.bufs
    }

    /// Ring ids of the RX rings (one per core worker) and of the TX ring.
    #[must_use]
    pub fn ring_ids(&self) -> (&[u32], u32) {
        (&self.att.rx_ids, self.att.tx_id)
    }

    /// The configuration attached with.
    #[must_use]
    pub fn config(&self) -> &NfConfig {
        &self.cfg
    }

    /// Counters so far.
    #[must_use]
    pub fn stats(&self) -> &NfStats {
        &self.stats
    }

    /// Descriptors received and not yet returned.
    #[must_use]
    pub fn held(&self) -> u64 {
        self.held
    }

    /// A flag that stops [`run`](Self::run) when set (from any thread).
    #[must_use]
    pub fn stop_handle(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// Sets this NF's stop flag.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Whether this NF's stop flag or the process-wide signal flag is set.
    #[inline]
    #[must_use]
    pub fn should_stop(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || crate::signal::stop_requested()
    }

    /// Adds `n` to the slot's NF-specific counter ([`NfCounter::User`]).
    pub fn add_user_counter(&self, n: u64) {
        self.att.slot.add(NfCounter::User, n);
    }

    #[inline]
    fn restarted(&self) -> bool {
        self.att.ctl.header().generation() != self.att.generation
    }

    /// Forgets everything tied to the old generation and re-attaches. Returns the error to
    /// hand to the caller: `Reattached` on success.
    #[cold]
    fn handle_restart(&mut self) -> NfError {
        let old = self.att.generation;
        self.stats.discarded += self.held;
        self.held = 0;
        self.pending = None;
        let deadline = Instant::now() + self.cfg.reattach_timeout;
        match attach_until(&self.source, &self.name, &self.cfg, deadline, &self.stop) {
            Ok(att) => {
                // Dropping the old attachment touches nothing shared: its ring handles and
                // slot handle only release in-process claims.
                self.att = att;
                self.stats.reattaches += 1;
                self.empty_polls = 0;
                self.next_rx = 0;
                NfError::Reattached {
                    old,
                    new: self.att.generation,
                }
            }
            Err(e) => e,
        }
    }

    /// The error for a ring failure: a restart if the generation changed, else corruption.
    #[cold]
    fn ring_failure(&mut self, ring: u32, source: RingError) -> NfError {
        if self.restarted() {
            self.handle_restart()
        } else {
            NfError::Ring { ring, source }
        }
    }

    // ------------------------------------------------------------------------------------------
    // Burst API
    // ------------------------------------------------------------------------------------------

    /// Receives up to `out.len()` descriptors from the RX rings (all of them, starting from a
    /// different ring each call for fairness). Never blocks; returns 0 when there is nothing.
    ///
    /// Every descriptor received must be returned with [`tx_burst`](Self::tx_burst) (with a
    /// verdict; see [`packet`](Self::packet)). [`NfError::Reattached`] means the core
    /// restarted: drop every descriptor still held, they are void.
    #[inline]
    pub fn rx_burst(&mut self, out: &mut [Descriptor]) -> Result<usize, NfError> {
        // The previous burst brought packets: it has been worked on until now.
        let now = tsc();
        if self.busy_since != 0 {
            let busy = now.saturating_sub(self.busy_since);
            self.busy_since = 0;
            self.stats.busy_cycles += busy;
            self.att.slot.add(NfCounter::BusyCycles, busy);
        }
        if let Some(e) = self.pending.take() {
            return Err(e);
        }
        if self.restarted() {
            return Err(self.handle_restart());
        }
        self.att.slot.bump_heartbeat();
        let k = self.att.rx.len();
        let mut filled = 0;
        let mut failure = None;
        for j in 0..k {
            if filled == out.len() {
                break;
            }
            let i = (self.next_rx + j) % k;
            match self.att.rx[i].dequeue_burst(&mut out[filled..]) {
                Ok(n) => filled += n,
                Err(e) => {
                    failure = Some((self.att.rx_ids[i], e));
                    break;
                }
            }
        }
        self.next_rx = (self.next_rx + 1) % k;
        if filled > 0 {
            let bytes: u64 = out[..filled].iter().map(|d| u64::from(d.data_len)).sum();
            let n = filled as u64;
            self.held += n;
            self.stats.rx_pkts += n;
            self.stats.rx_bytes += bytes;
            self.att.slot.add(NfCounter::RxPkts, n);
            self.att.slot.add(NfCounter::RxBytes, bytes);
            self.empty_polls = 0;
            self.busy_since = now.max(1);
        }
        if let Some((ring, e)) = failure {
            let err = self.ring_failure(ring, e);
            if filled > 0 && !matches!(err, NfError::Reattached { .. }) {
                // Hand out what was received; report the failure next time.
                self.pending = Some(err);
                return Ok(filled);
            }
            return Err(err);
        }
        Ok(filled)
    }

    /// The packet `desc` (a descriptor received with [`rx_burst`](Self::rx_burst) and not yet
    /// returned) refers to, in place. Length, headroom and verdict changes are written to
    /// `desc`.
    ///
    /// The descriptor is validated against the geometry validated at attach: a bad one from
    /// the core is [`NfError::BadDescriptor`] (return it with DROP), never an access outside
    /// the buffer area. Borrowing the `Nf` mutably makes this the only packet view alive.
    pub fn packet<'a>(&'a mut self, desc: &'a mut Descriptor) -> Result<Packet<'a>, NfError> {
        let b = CheckedBuf::try_from_raw(desc, self.att.bufs.geometry())?;
        // SAFETY: `b.buf_idx() < buf_count` (checked). Exclusivity: this NF holds the buffer
        // (the core hands a buffer to one NF at a time and does not touch it until it comes
        // back; the caller passes a descriptor it received and has not returned), and the
        // `&'a mut self` borrow means no other `Packet`, hence no other reference to packet
        // bytes made by this `Nf`, exists for `'a`. Bytes written by a misbehaving peer are
        // untrusted input, which `Packet` documents.
        let buf = unsafe { self.att.bufs.buffer_slice_mut(b.buf_idx()) }.ok_or(
            netvm_shm::DescError::BadIndex {
                buf_idx: b.buf_idx(),
                buf_count: self.att.bufs.geometry().buf_count(),
            },
        )?;
        Packet::new(buf, desc).ok_or(NfError::BadDescriptor(netvm_shm::DescError::BadBounds {
            data_off: b.data_off(),
            data_len: b.data_len(),
            buf_size: self.att.bufs.geometry().buf_size(),
        }))
    }

    /// Start of buffer `idx` and its size (for the C API, which hands out raw pointers).
    pub(crate) fn buffer_ptr(&self, idx: u32) -> Option<(core::ptr::NonNull<u8>, usize)> {
        let g = self.att.bufs.geometry();
        self.att
            .bufs
            .buffer(idx)
            .map(|p| (p, g.buf_size() as usize))
    }

    /// Returns `descs` to the core on the TX ring, in order, blocking (spin, then yield) while
    /// the ring is full: a descriptor is never dropped locally.
    ///
    /// A descriptor without a known verdict is returned with DROP (counted in
    /// [`NfStats::no_verdict`]). [`NfError::Reattached`]: the core restarted; the descriptors
    /// (and every other one held) were void and are forgotten. [`NfError::CoreGone`]: the ring
    /// stayed full and the core process no longer exists (host NFs only).
    pub fn tx_burst(&mut self, descs: &[Descriptor]) -> Result<(), NfError> {
        if descs.is_empty() {
            return Ok(());
        }
        if self.restarted() {
            return Err(self.handle_restart());
        }
        let mut chunk = [Descriptor::default(); TX_CHUNK];
        for part in descs.chunks(TX_CHUNK) {
            let mut bytes = 0u64;
            let mut dropped = 0u64;
            for (dst, src) in chunk.iter_mut().zip(part) {
                *dst = *src;
                bytes += u64::from(src.data_len);
                match Verdict::from_raw(src.verdict, src.verdict_arg) {
                    Some(Verdict::Next) => self.stats.next += 1,
                    Some(Verdict::Service(_)) => self.stats.service += 1,
                    Some(Verdict::Out(_)) => self.stats.out += 1,
                    Some(Verdict::Drop) => dropped += 1,
                    None => {
                        dst.set_verdict(Verdict::Drop);
                        self.stats.no_verdict += 1;
                        dropped += 1;
                    }
                }
            }
            self.enqueue_all(&chunk[..part.len()])?;
            let n = part.len() as u64;
            self.held = self.held.saturating_sub(n);
            self.stats.tx_pkts += n;
            self.stats.tx_bytes += bytes;
            self.stats.dropped += dropped;
            let s = &self.att.slot;
            s.add(NfCounter::TxPkts, n);
            s.add(NfCounter::TxBytes, bytes);
            s.add(NfCounter::Dropped, dropped);
        }
        // In case the core sleeps on our TX ring: a fence and a load when it does not.
        self.att.tx.wake_if_sleeping();
        Ok(())
    }

    /// Enqueues all of `rest`, waiting while the ring is full.
    fn enqueue_all(&mut self, mut rest: &[Descriptor]) -> Result<(), NfError> {
        let mut waits = 0u32;
        loop {
            match self.att.tx.enqueue_burst(rest) {
                Ok(n) => {
                    rest = &rest[n..];
                    if rest.is_empty() {
                        return Ok(());
                    }
                }
                Err(e) => return Err(self.ring_failure(self.att.tx_id, e)),
            }
            if waits == 0 {
                self.stats.tx_ring_full += 1;
                self.att.slot.add(NfCounter::TxRingFull, 1);
            }
            waits = waits.wrapping_add(1);
            if waits < 64 {
                core::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
            if waits % 1024 == 0 {
                self.att.slot.bump_heartbeat();
                if self.restarted() {
                    return Err(self.handle_restart());
                }
                if self.cfg.write_pid {
                    let pid = self.att.ctl.header().core_pid();
                    if !netvm_shm::proc::pid_alive(pid) {
                        return Err(NfError::CoreGone { pid });
                    }
                }
            }
        }
    }

    /// One step of adaptive polling, for when [`rx_burst`](Self::rx_burst) returned 0: spins,
    /// then yields, then sleeps on the RX doorbells (at most
    /// [`PollPolicy::sleep_timeout`]); any received packet resets the backoff.
    pub fn idle(&mut self) -> Result<(), NfError> {
        self.empty_polls = self.empty_polls.saturating_add(1);
        let p = self.cfg.poll;
        if self.empty_polls <= p.spin_polls {
            core::hint::spin_loop();
            return Ok(());
        }
        if self.empty_polls <= p.spin_polls.saturating_add(p.yield_polls) {
            std::thread::yield_now();
            return Ok(());
        }
        if self.should_stop() {
            return Ok(());
        }
        self.sleep(p.sleep_timeout)
    }

    fn sleep(&mut self, timeout: Duration) -> Result<(), NfError> {
        self.stats.sleeps += 1;
        self.att.slot.add(NfCounter::Sleeps, 1);
        self.att.slot.bump_heartbeat();
        let outcome = self.wait_rings(timeout);
        self.att.slot.bump_heartbeat();
        // Idle on the host: every 16th sleep (~160 ms), see whether the core is gone for good
        // (dead and its region file removed). A crashed core leaves the file for the next core,
        // which re-initialises it: then the NF keeps waiting and re-attaches.
        if self.cfg.write_pid && self.stats.sleeps % 16 == 0 {
            if let Source::Files { control, .. } = &self.source {
                let pid = self.att.ctl.header().core_pid();
                if pid != 0 && !netvm_shm::proc::pid_alive(pid) && !control.exists() {
                    return Err(NfError::CoreExited { pid });
                }
            }
        }
        match outcome {
            Ok(Wake::Woken) => self.stats.wakeups += 1,
            Ok(Wake::TimedOut) => self.stats.sleep_timeouts += 1,
            Ok(Wake::Ready | Wake::Unsupported) => {}
            Err((i, e)) => {
                let ring = self.att.rx_ids[i];
                return Err(self.ring_failure(ring, e));
            }
        }
        Ok(())
    }

    fn wait_rings(&mut self, timeout: Duration) -> Result<Wake, (usize, RingError)> {
        let att = &mut self.att;
        if att.rx.len() == 1 {
            return att.rx[0]
                .wait_for_work(timeout)
                .map(|o| match o {
                    WaitOutcome::Ready => Wake::Ready,
                    WaitOutcome::Woken => Wake::Woken,
                    WaitOutcome::TimedOut => Wake::TimedOut,
                })
                .map_err(|e| (0, e));
        }
        if let (Some(db), false) = (att.doorbells.as_mut(), self.waitv_unsupported) {
            match db.wait(&mut att.rx, timeout)? {
                Wake::Unsupported => self.waitv_unsupported = true,
                w => return Ok(w),
            }
        }
        let interval = match self.cfg.wait_mode {
            WaitMode::PollSleep { interval } => interval,
            WaitMode::Futex => Duration::from_millis(1),
        };
        poll_sleep(&mut self.att.rx, timeout, interval)
    }

    // ------------------------------------------------------------------------------------------
    // Closure API
    // ------------------------------------------------------------------------------------------

    /// Runs `f` on every packet, in batches of [`BATCH`], until a stop is requested
    /// ([`stop_handle`](Self::stop_handle), [`request_stop`](Self::request_stop), or SIGINT /
    /// SIGTERM after [`crate::signal::install_handlers`]); then returns the statistics. Every
    /// descriptor received has been returned by then. Core restarts are handled inside.
    pub fn run<F>(&mut self, f: F) -> Result<NfStats, NfError>
    where
        F: FnMut(&mut Packet<'_>) -> Verdict,
    {
        let mut f = f;
        self.run_handler(&mut f)
    }

    /// [`run`](Self::run) with a [`PacketHandler`], which may also have a periodic `tick`.
    pub fn run_handler<H: PacketHandler + ?Sized>(
        &mut self,
        h: &mut H,
    ) -> Result<NfStats, NfError> {
        let mut descs = [Descriptor::default(); BATCH];
        let interval = h.tick_interval();
        let mut next_tick = interval.map(|i| Instant::now() + i);
        loop {
            if self.should_stop() {
                break;
            }
            if let (Some(i), Some(t)) = (interval, next_tick) {
                let now = Instant::now();
                if now >= t {
                    h.tick(&self.stats);
                    next_tick = Some(now + i);
                }
            }
            let n = match self.rx_burst(&mut descs) {
                Ok(n) => n,
                Err(NfError::Reattached { .. }) => continue,
                Err(NfError::Stopped) => break,
                Err(e) => return Err(e),
            };
            if n == 0 {
                match self.idle() {
                    Ok(()) | Err(NfError::Reattached { .. }) => continue,
                    Err(NfError::Stopped) => break,
                    Err(NfError::CoreExited { pid }) => {
                        eprintln!(
                            "{}: netvm-core (pid {pid}) exited and removed its region; stopping",
                            self.name
                        );
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            for d in &mut descs[..n] {
                match self.packet(d) {
                    Ok(mut p) => {
                        let v = h.process(&mut p);
                        p.set_verdict(v);
                    }
                    Err(_) => {
                        d.set_verdict(Verdict::Drop);
                        self.stats.bad_desc += 1;
                    }
                }
            }
            match self.tx_burst(&descs[..n]) {
                Ok(()) | Err(NfError::Reattached { .. }) => {}
                Err(NfError::Stopped) => break,
                Err(e) => return Err(e),
            }
        }
        Ok(self.stats)
    }

    // ------------------------------------------------------------------------------------------
    // Detach
    // ------------------------------------------------------------------------------------------

    fn detach_inner(&mut self) {
        if self.detached {
            return;
        }
        self.detached = true;
        // After a core restart the slot may belong to someone else now: leave it alone.
        if !self.restarted() {
            self.att.slot.detach();
        }
    }

    /// Marks the slot DETACHED (a clean exit; the NF may attach again later) and returns the
    /// final statistics. Return every held descriptor first: the core must reclaim any that
    /// are still out ([`held`](Self::held)). Dropping an `Nf` detaches too.
    pub fn detach(mut self) -> NfStats {
        self.detach_inner();
        self.stats
    }
}

impl Drop for Nf {
    fn drop(&mut self) {
        self.detach_inner();
    }
}

/// Poll-sleeps on several rings: sleeps `interval` at a time, up to `timeout`, until one of
/// `rx` has work.
fn poll_sleep(
    rx: &mut [Consumer],
    timeout: Duration,
    interval: Duration,
) -> Result<Wake, (usize, RingError)> {
    let start = Instant::now();
    loop {
        for (i, c) in rx.iter_mut().enumerate() {
            if !c.is_empty().map_err(|e| (i, e))? {
                return Ok(Wake::Ready);
            }
        }
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Ok(Wake::TimedOut);
        }
        std::thread::sleep(left.min(interval));
    }
}

/// The CPU's time-stamp counter (0 where there is none: busy cycles then stay 0).
#[inline]
fn tsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: RDTSC has no preconditions on x86_64.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        0
    }
}
