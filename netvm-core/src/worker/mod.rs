//! One data-plane worker, run to completion:
//! RX burst → classify → deliver (copy only across domains) → drain NF TX rings → validate →
//! apply verdicts → batched TX burst.
//!
//! The hot path does not allocate, lock, or make system calls: staging arrays are sized at
//! start, counters are private integers, the flow cache is a fixed set-associative table, and
//! the only syscall is the doorbell wake when an NF actually sleeps (netvm-shm's cheap check).
//!
//! The worker's state and loop live here; its seams are modules: [`rx`] (ports, parsing a
//! private header copy, rules), [`flow`] (the exact-match flow cache), [`deliver`] (chains, instance choice, the
//! domain-crossing copy, quotas, staged enqueue), [`place`] (least-loaded placement per
//! flow and service), [`returns`] (everything NFs hand back, its
//! validation and verdicts, corrupt rings, reclaim), [`tx`] (per-port TX batching),
//! [`handoff`] (frames between workers), [`tap`] (the capture hooks: one branch each while no
//! capture runs), [`idle`] (adaptive polling: backing off when rounds find nothing to do) and
//! [`nsh`] (service paths that continue on a peer instance).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dpdk::sys::{self, rte_mbuf};
use netvm_shm::{Consumer, Descriptor, Producer};

use crate::capture::Tap;
use crate::stats::{Counters, DropReason};
use crate::tables::Tables;
use crate::{nf_state, Shared};
use flow::FlowCache;
use handoff::Handoff;

mod deliver;
mod flow;
pub(crate) mod handoff;
pub mod idle;
mod nsh;
mod place;
mod returns;
mod rx;
mod tap;
mod tx;
mod vhost;

/// Packets per burst.
pub const BURST: usize = 32;

pub use place::Placements;

/// Commands from the control side, applied between bursts.
pub enum Command {
    /// New tables (chains changed, NF added).
    Tables(Arc<Tables>),
    /// Open ring handles for a newly attached NF slot (index).
    AddNf(u16),
    /// Give back every buffer an NF holds and forget its rings (detach, crash, quarantine).
    /// Every worker stops feeding the NF and counts itself in `NfRt::feed_stopped`; the worker
    /// that drains the NF's TX ring takes its buffers back once that count reaches `stopped`,
    /// so that no buffer can be enqueued to it after the scan.
    ReclaimNf {
        /// The NF.
        nf: u16,
        /// `feed_stopped` once every worker has stopped feeding it.
        stopped: u64,
    },
    /// Start capturing with this tap (replacing any other).
    CaptureStart(Box<Tap>),
    /// Stop the capture with this id: drop the tap and say so (`SessionShared::released`).
    CaptureStop(u64),
}

struct NfLink {
    /// Producer of this worker's RX ring to the NF.
    rx: Option<Producer>,
    staged: [Descriptor; BURST],
    nstaged: usize,
    /// Consumer of the NF's TX ring, if this worker drains it.
    tx: Option<Consumer>,
    wake: bool,
    /// Deliveries this worker may still make to the NF in round `budget_round` without
    /// taking it past its quota (recomputed once per round from the published counters).
    budget: u32,
    budget_round: u32,
    /// Entry backpressure: descriptors in this worker's ring to the NF (and staged for it)
    /// as looked at in round `used_round`.
    used: u32,
    used_round: u32,
}

struct TxQueue {
    pkts: [*mut rte_mbuf; 2 * BURST],
    n: usize,
}

/// A worker: the shared parts it reads and its private state.
pub struct Worker {
    shared: Arc<Shared>,
    tables: Arc<Tables>,
    st: State,
    /// `"poll": "adaptive"`: backs off when idle (`None`: busy polling).
    adaptive: Option<idle::Adaptive>,
}

/// Everything a worker owns privately.
struct State {
    id: usize,
    /// The (port, RX queue) pairs this worker polls.
    rx_queues: Vec<(u16, u16)>,
    nfs: Vec<NfLink>,
    txq: Vec<TxQueue>,
    flows: FlowCache,
    /// Per entry of `rx_queues`: its RX pacer if the port is rate-limited (`None`: unlimited).
    pacers: Vec<Option<rx::Pacer>>,
    /// Frames staged for hand-off to each worker (RX steering), pushed after each poll.
    steer: Vec<[Handoff; BURST]>,
    nsteer: Vec<usize>,
    hand_buf: [Handoff; 2 * BURST],
    /// NFs whose reclaim waits until every worker has stopped feeding them: (NF, target).
    pending_reclaims: Vec<(u16, u64)>,
    c: Box<Counters>,
    rx_buf: [*mut rte_mbuf; BURST],
    ret_buf: [Descriptor; 2 * BURST],
    published_epoch: u64,
    round: u32,
    /// Workers in this core (the quota is shared between them).
    nworkers: u32,
    /// The active capture, if any (see [`tap`]).
    tap: Option<Box<Tap>>,
    /// Per chain id: (round looked at, backed up) for entry backpressure (`deliver`);
    /// resized when tables arrive.
    chain_bp: Vec<(u32, bool)>,
}

impl Worker {
    /// Worker `id`, polling the (port, queue) pairs `rx_queues`.
    pub fn new(
        id: usize,
        shared: Arc<Shared>,
        tables: Arc<Tables>,
        rx_queues: Vec<(u16, u16)>,
    ) -> Self {
        let nfs = (0..shared.nfs.len())
            .map(|_| NfLink {
                rx: None,
                staged: [Descriptor::default(); BURST],
                nstaged: 0,
                tx: None,
                wake: false,
                budget: 0,
                budget_round: u32::MAX,
                used: 0,
                used_round: u32::MAX,
            })
            .collect();
        let txq = (0..shared.ports.len())
            .map(|_| TxQueue {
                pkts: [std::ptr::null_mut(); 2 * BURST],
                n: 0,
            })
            .collect();
        let nworkers = shared.commands.len().max(1);
        let pacers = rx_queues
            .iter()
            .map(|&(p, _)| {
                let port = &shared.ports[usize::from(p)];
                // Each queue of a rate-limited port gets an equal share of its rate.
                port.rx_rate_pps.map(|r| {
                    let share = (r / u64::from(port.port.rx_queues().max(1))).max(1);
                    rx::Pacer::new(share, shared.eal.tsc_hz(), dpdk::rdtsc())
                })
            })
            .collect();
        let st = State {
            id,
            rx_queues,
            nfs,
            txq,
            flows: FlowCache::new(),
            pacers,
            steer: vec![[Handoff::default(); BURST]; nworkers],
            nsteer: vec![0; nworkers],
            hand_buf: [Handoff::default(); 2 * BURST],
            pending_reclaims: Vec::with_capacity(crate::config::MAX_NFS),
            c: Box::default(),
            rx_buf: [std::ptr::null_mut(); BURST],
            ret_buf: [Descriptor::default(); 2 * BURST],
            published_epoch: 0,
            round: 0,
            nworkers: crate::id32(shared.commands.len()).max(1),
            tap: None,
            chain_bp: vec![(u32::MAX, false); tables.chains.len()],
        };
        let adaptive = (shared.config.poll == crate::config::Poll::Adaptive).then(|| {
            let max_us = u64::from(shared.config.poll_max_sleep_us());
            idle::Adaptive::new(shared.eal.tsc_hz(), max_us * 1000)
        });
        Self {
            shared,
            tables,
            st,
            adaptive,
        }
    }

    /// Runs until `stop`; then drains NF returns until nothing is held or `drain` passes.
    pub fn run(mut self, stop: &AtomicBool, drain: Duration) -> Box<Counters> {
        let sh = Arc::clone(&self.shared);
        for i in 0..sh.nfs.len() {
            if sh.nfs[i].state.load(Ordering::Acquire) == nf_state::ATTACHED {
                self.st.open_nf(&sh, crate::id16(i));
            }
        }
        // Commands queued before the ports started (a capture started before the traffic)
        // apply before the first packet.
        self.control(&sh);
        if self.adaptive.is_some() {
            idle::set_timer_slack();
        }
        // Busy cycles: the TSC time of rounds that moved something (one TSC read per round:
        // a round that moved anything is charged up to the start of the next).
        let mut last = dpdk::rdtsc();
        let mut was_busy = false;
        while !stop.load(Ordering::Relaxed) {
            let now = dpdk::rdtsc();
            if was_busy {
                self.st.c.busy_cycles += now.wrapping_sub(last);
            }
            last = now;
            let moved = self.iteration(&sh, true);
            was_busy = moved;
            if let Some(a) = self.adaptive.as_mut() {
                if moved {
                    a.work();
                } else if a.idle(&sh.snapshots[self.st.id].idle) {
                    // After a sleep: commands and snapshot requests at once, not every 16th
                    // round, so a stats request waits at most one sleep.
                    self.control(&sh);
                }
            }
        }
        // Drain: no new packets; take back what NFs return and what other workers hand over,
        // until every worker drains (no more RX hand-offs can come), no NF holds anything and
        // nothing waits for this worker — or `drain` passes. Whatever a worker hands over
        // after its peer left is sent by `run_built` once all have stopped.
        //
        // Workers leave together, once one of them has seen the whole core quiet: a worker
        // that left on its own view could leave frames behind — a frame another worker took
        // off a hand-off ring and delivers to an NF this worker drains, or one passed from an
        // NF to the next — whose return then nobody takes. An iteration with work in sight is
        // bracketed (`drain_gen`, `drain_busy`) so that `drain_quiet` never concludes while a
        // worker holds frames of which the shared counters do not know yet.
        let end = Instant::now() + drain;
        sh.draining.fetch_add(1, Ordering::SeqCst);
        loop {
            if !self.st.inbound_empty(&sh) || self.st.returns_waiting() {
                sh.drain_gen.fetch_add(1, Ordering::SeqCst);
                sh.drain_busy.fetch_add(1, Ordering::SeqCst);
                self.iteration(&sh, false);
                sh.drain_busy.fetch_sub(1, Ordering::SeqCst);
            }
            if !self.st.pending_reclaims.is_empty() {
                self.control(&sh);
            }
            if sh.drain_done.load(Ordering::SeqCst) || Instant::now() >= end {
                break;
            }
            let all_draining = sh.draining.load(Ordering::SeqCst) >= sh.commands.len();
            if all_draining && drain_quiet(&sh) {
                sh.drain_done.store(true, Ordering::SeqCst);
                break;
            }
        }
        let t = Arc::clone(&self.tables);
        self.st.take_over(&sh, &t);
        self.st.flush_all_tx(&sh, &t);
        if let Some(tap) = self.st.tap.take() {
            tap.shared.released.fetch_add(1, Ordering::Release);
        }
        self.st.publish(&sh, u64::MAX);
        self.st.c
    }

    /// One round; whether it moved anything (received a packet, or took a descriptor off an
    /// NF's TX ring; everything it transmits came from one of those).
    #[inline]
    fn iteration(&mut self, sh: &Shared, rx: bool) -> bool {
        // Control work (commands, snapshots) is looked at every 16th round.
        self.st.round = self.st.round.wrapping_add(1);
        if self.st.round % 16 == 0 {
            self.control(sh);
        }
        let t: &Tables = &self.tables;
        let st = &mut self.st;
        // No worker-wide backpressure: one NF's full (or corrupt) ring must not pause RX for
        // the other chains of the port. A full ring drops that NF's packets (`ring_full`).
        let mut moved = 0usize;
        if rx {
            for i in 0..st.rx_queues.len() {
                moved += st.poll_port(sh, t, i);
            }
        }
        if st.nworkers > 1 {
            moved += st.take_over(sh, t);
        }
        st.flush_staged(sh);
        for nf in 0..st.nfs.len() {
            if st.nfs[nf].tx.is_some() {
                moved += st.drain_nf(sh, t, crate::id16(nf));
            }
        }
        st.flush_staged(sh);
        st.flush_all_tx(sh, t);
        moved != 0
    }

    /// Applies queued commands and publishes a requested snapshot (between bursts).
    #[cold]
    fn control(&mut self, sh: &Shared) {
        while let Some(cmd) = sh.commands[self.st.id].pop() {
            match cmd {
                Command::Tables(t) => {
                    if t.version != self.tables.version {
                        self.st.flows.clear();
                    }
                    if self.st.chain_bp.len() < t.chains.len() {
                        self.st.chain_bp.resize(t.chains.len(), (u32::MAX, false));
                    }
                    self.tables = t;
                }
                Command::AddNf(nf) => self.st.open_nf(sh, nf),
                Command::ReclaimNf { nf, stopped } => self.st.stop_feeding(sh, nf, stopped),
                Command::CaptureStart(tap) => {
                    if let Some(old) = self.st.tap.replace(tap) {
                        old.shared.released.fetch_add(1, Ordering::Release);
                    }
                }
                Command::CaptureStop(id) => {
                    if self.st.tap.as_ref().is_some_and(|t| t.id == id) {
                        if let Some(tap) = self.st.tap.take() {
                            // Release: every frame this worker pushed is visible to the
                            // control thread once it sees the count (its Acquire load in
                            // `Session::finished`).
                            tap.shared.released.fetch_add(1, Ordering::Release);
                        }
                    }
                }
            }
        }
        self.st.check_rx_rings(sh);
        if !self.st.pending_reclaims.is_empty() {
            let t = Arc::clone(&self.tables);
            self.st.reclaim_ready(sh, &t);
        }
        let want = sh.snapshot_epoch.load(Ordering::Acquire);
        if want != self.st.published_epoch {
            let t = Arc::clone(&self.tables);
            self.st.flush_staged(sh);
            self.st.flush_all_tx(sh, &t);
            self.st.publish(sh, want);
        }
    }
}

impl State {
    fn open_nf(&mut self, sh: &Shared, nf: u16) {
        let n = &sh.nfs[usize::from(nf)];
        // The entry's control region (a read lock, here off the hot path: this runs on an
        // `AddNf` command; a freed entry has none and gets no rings).
        let Some(id) = n.ident() else {
            return;
        };
        let ctl = &id.ctl;
        // Ring ids come from the core's private geometry of the NF's own control region, never
        // from the slot's ring-id words (the NF can rewrite those).
        let Some(rings) = ctl.geometry().slot_rings(0) else {
            return;
        };
        let link = &mut self.nfs[usize::from(nf)];
        if link.rx.is_none() {
            if let Some(r) = rings.rx_range().nth(self.id) {
                link.rx = ctl.producer(r).ok();
            }
        }
        if link.tx.is_none() && n.worker == self.id {
            link.tx = ctl.consumer(rings.tx).ok();
        }
    }

    /// Copies counters to the shared snapshot slot and, for a consistent instant, waits
    /// (bounded) until every worker has published the same epoch.
    fn publish(&mut self, sh: &Shared, epoch: u64) {
        let slot = &sh.snapshots[self.id];
        {
            let mut s = slot.counters.lock().unwrap_or_else(|p| p.into_inner());
            s.clone_from(&self.c);
        }
        slot.epoch.store(epoch, Ordering::Release);
        self.published_epoch = epoch;
        if epoch == u64::MAX {
            return;
        }
        // Hold still until the reader has what it needs (all workers published, owners
        // counted), bounded so that a slow reader cannot stall the data plane.
        let wait = sh.snapshot_wait_ms.load(Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_millis(wait);
        while sh.resume_epoch.load(Ordering::Acquire) < epoch {
            if Instant::now() >= deadline {
                // Say so: the reader's count of owned buffers may include what this worker
                // does from now on, so it takes the snapshot again.
                slot.left_early.store(epoch, Ordering::Release);
                break;
            }
            std::hint::spin_loop();
        }
    }

    #[inline]
    fn free(&mut self, m: *mut rte_mbuf, why: DropReason) {
        self.c.drops[why as usize] += 1;
        // SAFETY: m is owned by this worker (rx'd, or taken back from an NF) and freed once.
        unsafe { sys::netvm_rte_pktmbuf_free(m) };
    }
}

/// Whether the whole core is quiet at shutdown, seen from a worker between its iterations:
/// no worker inside a drain iteration with work, before and after looking (and none started
/// one meanwhile: `drain_gen` unchanged), every hand-off ring empty and no NF holding a buffer.
/// A worker's iteration publishes what it did (delivered and returned counts, hand-offs)
/// before it leaves `drain_busy`, so a check that finds it outside sees its effects; one that
/// starts after the first look changes `drain_gen`.
fn drain_quiet(sh: &Shared) -> bool {
    let gen = sh.drain_gen.load(Ordering::SeqCst);
    if sh.drain_busy.load(Ordering::SeqCst) != 0 {
        return false;
    }
    let quiet = handoff::all_empty(sh) && sh.nfs.iter().all(|n| n.held() == 0);
    quiet && sh.drain_busy.load(Ordering::SeqCst) == 0 && sh.drain_gen.load(Ordering::SeqCst) == gen
}

/// A snapshot slot: the counters a worker last published and the epoch they belong to.
#[derive(Debug, Default)]
pub struct SnapshotSlot {
    /// Epoch of `counters`.
    pub epoch: AtomicU64,
    /// The last epoch at which this worker stopped waiting for the reader (bounded wait).
    pub left_early: AtomicU64,
    /// The counters (locked only by the publishing worker between bursts and by the reader).
    pub counters: std::sync::Mutex<Box<Counters>>,
    /// The worker's idle figures (adaptive polling), published after each sleep.
    pub idle: idle::IdleStats,
}
