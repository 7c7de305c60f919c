//! One data-plane worker, run to completion:
//! RX burst → classify → deliver (copy only across domains) → drain NF TX rings → validate →
//! apply verdicts → batched TX burst.
//!
//! The hot path does not allocate, lock, or make system calls: staging arrays are sized at
//! start, counters are private integers, the flow cache is a fixed direct-mapped table, and the
//! only syscall is the doorbell wake when an NF actually sleeps (netvm-shm's cheap check).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dpdk::sys::{self, rte_mbuf};
use netvm_shm::{CheckedDesc, Consumer, Descriptor, Producer, RejectReason, Verdict};
use netvm_wire::{symmetric_hash, FlowKey, PacketMeta};

use crate::config::{Balance, MAX_PORTS};
use crate::domain::{owner_word, Owner, OWNER_NONE};
use crate::stats::{verdict_idx, Counters, DropReason};
use crate::tables::{FailurePolicy, Tables};
use crate::{nf_state, Shared};

/// Packets per burst.
pub const BURST: usize = 32;
const FLOW_SETS: usize = 2048;
const FLOW_WAYS: usize = 4;
const FLOW_WAYS_U8: u8 = 4;
const PINS: usize = 4;

/// Commands from the control side, applied between bursts.
pub enum Command {
    /// New tables (chains changed, NF added).
    Tables(Arc<Tables>),
    /// Open ring handles for a newly attached NF slot (index).
    AddNf(u16),
    /// Give back every buffer an NF holds and forget its rings (detach, crash, quarantine).
    ReclaimNf(u16),
}

#[derive(Clone, Copy)]
struct FlowEntry {
    valid: bool,
    in_port: u8,
    key: FlowKey,
    chain: u16,
    pins: [u8; PINS],
}

const EMPTY_FLOW: FlowEntry = FlowEntry {
    valid: false,
    in_port: 0,
    key: FlowKey {
        src_ip: std::net::Ipv4Addr::UNSPECIFIED,
        dst_ip: std::net::Ipv4Addr::UNSPECIFIED,
        proto: 0,
        src_port: 0,
        dst_port: 0,
    },
    chain: 0,
    pins: [u8::MAX; PINS],
};

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
}

/// Everything a worker owns privately.
struct State {
    id: usize,
    /// Port indices this worker polls (queue 0 of each).
    rx_ports: Vec<u16>,
    nfs: Vec<NfLink>,
    txq: Vec<TxQueue>,
    flows: Box<[FlowEntry]>,
    victim: Box<[u8]>,
    c: Box<Counters>,
    rx_buf: [*mut rte_mbuf; BURST],
    ret_buf: [Descriptor; 2 * BURST],
    published_epoch: u64,
    round: u32,
    /// Workers in this core (the quota is shared between them).
    nworkers: u32,
}

impl Worker {
    /// A worker polling `rx_ports`.
    pub fn new(id: usize, shared: Arc<Shared>, tables: Arc<Tables>, rx_ports: Vec<u16>) -> Self {
        let nfs = (0..shared.nfs.len())
            .map(|_| NfLink {
                rx: None,
                staged: [Descriptor::default(); BURST],
                nstaged: 0,
                tx: None,
                wake: false,
                budget: 0,
                budget_round: u32::MAX,
            })
            .collect();
        let txq = (0..shared.ports.len())
            .map(|_| TxQueue {
                pkts: [std::ptr::null_mut(); 2 * BURST],
                n: 0,
            })
            .collect();
        let st = State {
            id,
            rx_ports,
            nfs,
            txq,
            flows: vec![EMPTY_FLOW; FLOW_SETS * FLOW_WAYS].into_boxed_slice(),
            victim: vec![0; FLOW_SETS].into_boxed_slice(),
            c: Box::default(),
            rx_buf: [std::ptr::null_mut(); BURST],
            ret_buf: [Descriptor::default(); 2 * BURST],
            published_epoch: 0,
            round: 0,
            nworkers: crate::id32(shared.commands.len()).max(1),
        };
        Self { shared, tables, st }
    }

    /// Runs until `stop`; then drains NF returns until nothing is held or `drain` passes.
    pub fn run(mut self, stop: &AtomicBool, drain: Duration) -> Box<Counters> {
        let sh = Arc::clone(&self.shared);
        for i in 0..sh.nfs.len() {
            if sh.nfs[i].state.load(Ordering::Acquire) == nf_state::ATTACHED {
                self.st.open_nf(&sh, crate::id16(i));
            }
        }
        while !stop.load(Ordering::Relaxed) {
            self.iteration(&sh, true);
        }
        // Drain: no new packets; take back what NFs return.
        let end = Instant::now() + drain;
        loop {
            self.iteration(&sh, false);
            if self.st.c.in_flight() <= 0 || Instant::now() >= end {
                break;
            }
        }
        let t = Arc::clone(&self.tables);
        self.st.flush_all_tx(&sh, &t);
        self.st.publish(&sh, u64::MAX);
        self.st.c
    }

    #[inline]
    fn iteration(&mut self, sh: &Shared, rx: bool) {
        // Control work (commands, snapshots) is looked at every 16th round.
        self.st.round = self.st.round.wrapping_add(1);
        if self.st.round % 16 == 0 {
            self.control(sh);
        }
        let t: &Tables = &self.tables;
        let st = &mut self.st;
        // No worker-wide backpressure: one NF's full (or corrupt) ring must not pause RX for
        // the other chains of the port. A full ring drops that NF's packets (`ring_full`).
        if rx {
            for i in 0..st.rx_ports.len() {
                let p = st.rx_ports[i];
                st.poll_port(sh, t, p);
            }
        }
        st.flush_staged(sh);
        for nf in 0..st.nfs.len() {
            if st.nfs[nf].tx.is_some() {
                st.drain_nf(sh, t, crate::id16(nf));
            }
        }
        st.flush_staged(sh);
        st.flush_all_tx(sh, t);
    }

    /// Applies queued commands and publishes a requested snapshot (between bursts).
    #[cold]
    fn control(&mut self, sh: &Shared) {
        while let Some(cmd) = sh.commands[self.st.id].pop() {
            match cmd {
                Command::Tables(t) => {
                    if t.version != self.tables.version {
                        self.st.flows.fill(EMPTY_FLOW);
                    }
                    self.tables = t;
                }
                Command::AddNf(nf) => self.st.open_nf(sh, nf),
                Command::ReclaimNf(nf) => {
                    let t = Arc::clone(&self.tables);
                    self.st.reclaim_nf(sh, &t, nf);
                }
            }
        }
        self.st.check_rx_rings(sh);
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
        // Ring ids come from the core's private geometry of the NF's own control region, never
        // from the slot's ring-id words (the NF can rewrite those).
        let Some(rings) = n.ctl.geometry().slot_rings(0) else {
            return;
        };
        let link = &mut self.nfs[usize::from(nf)];
        if link.rx.is_none() {
            if let Some(r) = rings.rx_range().nth(self.id) {
                link.rx = n.ctl.producer(r).ok();
            }
        }
        if link.tx.is_none() && n.worker == self.id {
            link.tx = n.ctl.consumer(rings.tx).ok();
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
        let deadline = Instant::now() + Duration::from_millis(20);
        while sh.resume_epoch.load(Ordering::Acquire) < epoch && Instant::now() < deadline {
            std::hint::spin_loop();
        }
    }

    #[inline]
    fn poll_port(&mut self, sh: &Shared, t: &Tables, pidx: u16) {
        let port = &sh.ports[usize::from(pidx)];
        // SAFETY: this worker is the only poller of queue 0 of this port (ports are assigned to
        // one worker each); every mbuf returned is owned here until freed, sent or handed over.
        let n = unsafe { port.port.rx_burst_raw(0, &mut self.rx_buf) };
        if n == 0 {
            return;
        }
        if let Some(chain) = t.port_fast.get(usize::from(pidx)).copied().flatten() {
            self.rx_fast(sh, t, n, pidx, chain);
            return;
        }
        for i in 0..n {
            let m = self.rx_buf[i];
            self.rx_one(sh, t, m, pidx);
        }
    }

    /// Every packet of the burst enters `chain` (the port's first rule needs no parsing).
    #[inline]
    fn rx_fast(&mut self, sh: &Shared, t: &Tables, n: usize, pidx: u16, chain: u16) {
        let p = usize::from(pidx);
        let mut bytes = 0u64;
        for &m in &self.rx_buf[..n] {
            // SAFETY: received mbufs are valid and owned here.
            bytes += u64::from(unsafe { (*m).data_len });
        }
        self.c.port_rx[p] += n as u64;
        self.c.port_rx_bytes[p] += bytes;
        self.c.chain_pkts[usize::from(chain)] += n as u64;
        let Some(ch) = t.chains.get(usize::from(chain)) else {
            return;
        };
        let dom = sh.ports[p].domain;
        let in_port = u8::try_from(pidx).unwrap_or(u8::MAX);
        if ch.services.is_empty() {
            // Port to port: the whole burst goes straight to the egress queue, as io
            // forwarding does (staged packets for that port go first, keeping order).
            match ch.egress {
                Some(e) => {
                    self.flush_tx(sh, e);
                    let queue = sh.ports[usize::from(e)].txq_of_worker(self.id);
                    // SAFETY: rx_buf[..n] are owned valid mbufs; the driver takes the first
                    // `sent`; this worker is the only user of its TX queue on that port.
                    let sent = unsafe {
                        sh.ports[usize::from(e)]
                            .port
                            .tx_burst_raw(queue, &mut self.rx_buf[..n])
                    };
                    let e = usize::from(e);
                    self.c.port_tx[e] += sent as u64;
                    if sent == n {
                        self.c.port_tx_bytes[e] += bytes;
                    } else {
                        let unsent = self.rx_buf;
                        let mut lost = 0u64;
                        for &m in &unsent[sent..n] {
                            // SAFETY: unsent mbufs are still ours.
                            lost += u64::from(unsafe { (*m).data_len });
                            self.free(m, DropReason::TxFull);
                        }
                        self.c.port_tx_bytes[e] += bytes - lost;
                    }
                }
                None => {
                    for i in 0..n {
                        let m = self.rx_buf[i];
                        self.free(m, DropReason::ChainEgressDrop);
                    }
                }
            }
            return;
        }
        let hash_needed = t
            .needs_hash
            .get(usize::from(chain))
            .copied()
            .unwrap_or(true);
        for i in 0..n {
            let m = self.rx_buf[i];
            let hash = if hash_needed { packet_hash(m) } else { 0 };
            self.route(sh, t, m, dom, chain, 0, in_port, hash, None);
        }
    }

    #[inline]
    fn free(&mut self, m: *mut rte_mbuf, why: DropReason) {
        self.c.drops[why as usize] += 1;
        // SAFETY: m is owned by this worker (rx'd, or taken back from an NF) and freed once.
        unsafe { sys::netvm_rte_pktmbuf_free(m) };
    }

    #[inline]
    fn rx_one(&mut self, sh: &Shared, t: &Tables, m: *mut rte_mbuf, pidx: u16) {
        // SAFETY: m is a valid mbuf just received; header fields live in DPDK-private memory.
        let (nb_segs, data_len) = unsafe { ((*m).nb_segs, (*m).data_len) };
        self.c.port_rx[usize::from(pidx)] += 1;
        self.c.port_rx_bytes[usize::from(pidx)] += u64::from(data_len);
        if nb_segs != 1 {
            self.free(m, DropReason::MultiSegment);
            return;
        }
        // The packet bytes are in shared memory that NFs of the domain can write at any time:
        // parse a private copy of the headers, never a slice over the shared bytes.
        let mut hdr = [0u8; HDR_COPY];
        let k = copy_headers(m, &mut hdr);
        let meta = PacketMeta::parse_prefix(&hdr[..k], usize::from(data_len)).ok();
        let key = meta.as_ref().and_then(FlowKey::from_meta);
        let hash = key.as_ref().map_or(0, symmetric_hash);
        let in_port = u8::try_from(pidx).unwrap_or(u8::MAX);
        // Flow cache (exact match on key + in port, 4-way set associative) in front of the
        // ordered rules.
        let (chain, slot) = match key {
            Some(k) => {
                let set = ((hash as usize ^ usize::from(in_port)) & (FLOW_SETS - 1)) * FLOW_WAYS;
                let hit = (set..set + FLOW_WAYS).find(|&i| {
                    let e = &self.flows[i];
                    e.valid && e.key == k && e.in_port == in_port
                });
                match hit {
                    Some(i) => {
                        self.c.flow_cache_hits += 1;
                        (Some(self.flows[i].chain), Some(i))
                    }
                    None => {
                        self.c.flow_cache_misses += 1;
                        let ch = classify(t, meta.as_ref(), pidx);
                        match ch {
                            Some(ch) => {
                                // An empty way, else the set's next victim in turn.
                                let i = (set..set + FLOW_WAYS)
                                    .find(|&i| !self.flows[i].valid)
                                    .unwrap_or_else(|| {
                                        let v = &mut self.victim[set / FLOW_WAYS];
                                        *v = (*v + 1) % FLOW_WAYS_U8;
                                        set + usize::from(*v)
                                    });
                                self.flows[i] = FlowEntry {
                                    valid: true,
                                    in_port,
                                    key: k,
                                    chain: ch,
                                    pins: [u8::MAX; PINS],
                                };
                                (Some(ch), Some(i))
                            }
                            None => (None, None),
                        }
                    }
                }
            }
            None => (classify(t, meta.as_ref(), pidx), None),
        };
        let Some(chain) = chain else {
            self.free(m, DropReason::NoChain);
            return;
        };
        self.c.chain_pkts[usize::from(chain)] += 1;
        let dom = sh.ports[usize::from(pidx)].domain;
        self.route(sh, t, m, dom, chain, 0, in_port, hash, slot);
    }

    /// Sends the packet to chain position `pos` (or the chain's egress past the end).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn route(
        &mut self,
        sh: &Shared,
        t: &Tables,
        m: *mut rte_mbuf,
        dom: u16,
        chain: u16,
        pos: usize,
        in_port: u8,
        hash: u32,
        flow_slot: Option<usize>,
    ) {
        let Some(ch) = t.chains.get(usize::from(chain)) else {
            self.free(m, DropReason::ChainRemoved);
            return;
        };
        if pos >= ch.services.len() {
            match ch.egress {
                Some(p) => self.stage_tx(sh, m, p),
                None => self.free(m, DropReason::ChainEgressDrop),
            }
            return;
        }
        // Bypass skips services without an attached instance (at most the chain's length).
        let mut pos = pos;
        let nf = loop {
            let svc = &t.services[usize::from(ch.services[pos])];
            match self.pick_instance(sh, &svc.instances, ch.balance, hash, pos, flow_slot) {
                Some(nf) => break nf,
                None if ch.failure == FailurePolicy::Bypass => {
                    pos += 1;
                    if pos >= ch.services.len() {
                        match ch.egress {
                            Some(p) => self.stage_tx(sh, m, p),
                            None => self.free(m, DropReason::ChainEgressDrop),
                        }
                        return;
                    }
                }
                None => {
                    self.free(m, DropReason::NfUnavailable);
                    return;
                }
            }
        };
        self.deliver(sh, m, dom, nf, chain, pos, in_port, hash);
    }

    #[inline]
    fn pick_instance(
        &mut self,
        sh: &Shared,
        inst: &[u16],
        balance: Balance,
        hash: u32,
        pos: usize,
        flow_slot: Option<usize>,
    ) -> Option<u16> {
        let active = |nf: u16, s: &Self| {
            sh.nfs[usize::from(nf)].state.load(Ordering::Relaxed) == nf_state::ATTACHED
                && s.nfs[usize::from(nf)].rx.is_some()
        };
        if inst.len() == 1 {
            return active(inst[0], self).then_some(inst[0]);
        }
        if balance == Balance::LeastLoaded && pos < PINS {
            if let Some(fs) = flow_slot {
                let pin = self.flows[fs].pins[pos];
                if usize::from(pin) < inst.len() && active(inst[usize::from(pin)], self) {
                    return Some(inst[usize::from(pin)]);
                }
                // New flow (or its instance went away): the instance with the emptiest ring.
                let mut best: Option<(usize, u32)> = None;
                for (i, &nf) in inst.iter().enumerate() {
                    if !active(nf, self) {
                        continue;
                    }
                    let link = &self.nfs[usize::from(nf)];
                    let used = link
                        .rx
                        .as_ref()
                        .and_then(|p| p.len().ok())
                        .unwrap_or(u32::MAX)
                        .saturating_add(crate::id32(link.nstaged));
                    if best.is_none_or(|(_, b)| used < b) {
                        best = Some((i, used));
                    }
                }
                let (i, _) = best?;
                self.flows[fs].pins[pos] = u8::try_from(i).unwrap_or(u8::MAX);
                return Some(inst[i]);
            }
        }
        // Flow-hash affinity; skip to the next active instance if the chosen one is away.
        let n = inst.len();
        let start = hash as usize % n;
        (0..n)
            .map(|k| inst[(start + k) % n])
            .find(|&nf| active(nf, self))
    }

    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn deliver(
        &mut self,
        sh: &Shared,
        mut m: *mut rte_mbuf,
        dom: u16,
        nf: u16,
        chain: u16,
        pos: usize,
        in_port: u8,
        hash: u32,
    ) {
        let nfr = &sh.nfs[usize::from(nf)];
        let mut d = &sh.domains[usize::from(dom)];
        if nfr.domain != dom {
            // Crossing a trust domain: copy into a buffer of the destination domain.
            let dst = &sh.domains[usize::from(nfr.domain)];
            // SAFETY: the destination pool is valid for the run.
            let n = unsafe { sys::netvm_rte_pktmbuf_alloc(dst.pool.as_ptr()) };
            if n.is_null() {
                self.free(m, DropReason::NoBuffer);
                return;
            }
            // SAFETY: m and n are valid single-segment mbufs owned here; the copy stays within
            // m's data (data_len bytes) and n's buffer (offset chosen so that it fits).
            unsafe {
                let len = (*m).data_len;
                let buf_len = (*n).buf_len;
                let off = (*n).data_off.min(buf_len.saturating_sub(len));
                std::ptr::copy_nonoverlapping(
                    (*m).buf_addr.cast::<u8>().add(usize::from((*m).data_off)),
                    (*n).buf_addr.cast::<u8>().add(usize::from(off)),
                    usize::from(len),
                );
                (*n).data_off = off;
                (*n).data_len = len;
                (*n).pkt_len = u32::from(len);
                (*n).port = (*m).port;
                sys::netvm_rte_pktmbuf_free(m);
            }
            self.c.domain_copies += 1;
            m = n;
            d = dst;
        }
        // SAFETY: m is a valid mbuf owned here.
        let Some(idx) = (unsafe { d.buf_index(m) }) else {
            self.free(m, DropReason::Rejected);
            return;
        };
        // Quota: the NF may hold at most `quota` buffers; a delivery past it is this NF's
        // chain's drop, never a neighbour's.
        let link = &mut self.nfs[usize::from(nf)];
        if link.budget_round != self.round {
            link.budget_round = self.round;
            link.budget = quota_budget(nfr, link.nstaged, self.nworkers);
        }
        if link.budget == 0 {
            self.c.nf_quota_drops[usize::from(nf)] += 1;
            self.free(m, DropReason::NfQuota);
            return;
        }
        link.budget -= 1;
        if link.nstaged == BURST {
            self.flush_nf(sh, nf);
        }
        let link = &mut self.nfs[usize::from(nf)];
        // SAFETY: m is a valid mbuf owned here.
        let (off, len) = unsafe { ((*m).data_off, (*m).data_len) };
        let pos8 = u8::try_from(pos).unwrap_or(u8::MAX);
        // Relaxed: the ring's Release publication orders this store before the NF (and hence
        // the worker draining its TX ring, via the NF's Release) can see the descriptor.
        d.bufs[idx as usize]
            .owner
            .store(owner_word(nf, chain, pos8, in_port), Ordering::Relaxed);
        link.staged[link.nstaged] = Descriptor {
            buf_idx: idx,
            data_off: off,
            data_len: len,
            flow_hash: hash,
            verdict: 0,
            in_port,
            verdict_arg: 0,
        };
        link.nstaged += 1;
    }

    fn flush_staged(&mut self, sh: &Shared) {
        for nf in 0..self.nfs.len() {
            if self.nfs[nf].nstaged > 0 {
                self.flush_nf(sh, crate::id16(nf));
            }
            let link = &mut self.nfs[nf];
            if link.wake {
                link.wake = false;
                if let Some(p) = link.rx.as_mut() {
                    p.wake_if_sleeping();
                }
            }
        }
    }

    fn flush_nf(&mut self, sh: &Shared, nf: u16) {
        let nfr = &sh.nfs[usize::from(nf)];
        let link = &mut self.nfs[usize::from(nf)];
        let n = link.nstaged;
        link.nstaged = 0;
        let (sent, why) = match link.rx.as_mut() {
            Some(p) => match p.enqueue_burst(&link.staged[..n]) {
                Ok(k) => (k, DropReason::RingFull),
                Err(_) => {
                    // The NF wrote an impossible consumer index into its RX ring: count it,
                    // stop using the ring, and let the supervisor quarantine the NF.
                    link.rx = None;
                    nfr.fault
                        .store(crate::fault::RX_RING_CORRUPT, Ordering::Relaxed);
                    self.c.ring_corrupt += 1;
                    self.c.nf_rejects[usize::from(nf)][RejectReason::RingIndexCorrupt as usize] +=
                        1;
                    (0, DropReason::NfRingCorrupt)
                }
            },
            None => (0, DropReason::NfUnavailable),
        };
        if sent > 0 {
            link.wake = true;
            self.c.nf_delivered[usize::from(nf)] += sent as u64;
            // Published for the quota checks of other workers and for the supervisor.
            nfr.delivered[self.id].store(self.c.nf_delivered[usize::from(nf)], Ordering::Relaxed);
        }
        if sent < n {
            // Ring full (or corrupt): take the rest back and drop them, this NF's loss only.
            let staged = link.staged;
            let dom = &sh.domains[usize::from(nfr.domain)];
            for d in &staged[sent..n] {
                let meta = &dom.bufs[d.buf_idx as usize];
                meta.owner.store(OWNER_NONE, Ordering::Relaxed);
                self.free(meta.mbuf, why);
            }
        }
    }

    /// Drains NF `nf`'s TX ring and applies its verdicts. Every field is hostile input.
    #[inline]
    fn drain_nf(&mut self, sh: &Shared, t: &Tables, nf: u16) {
        let n = match self.nfs[usize::from(nf)]
            .tx
            .as_mut()
            .map(|c| c.dequeue_burst(&mut self.ret_buf))
        {
            Some(Ok(n)) => n,
            Some(Err(_)) => {
                // Corrupt producer index: count it once, stop reading the ring (its contents
                // mean nothing now), and let the supervisor quarantine the NF; its buffers
                // come back with the reclaim.
                let link = &mut self.nfs[usize::from(nf)];
                link.tx = None;
                link.rx = None;
                sh.nfs[usize::from(nf)]
                    .fault
                    .store(crate::fault::TX_RING_CORRUPT, Ordering::Relaxed);
                self.c.ring_corrupt += 1;
                self.c.nf_rejects[usize::from(nf)][RejectReason::RingIndexCorrupt as usize] += 1;
                return;
            }
            None => 0,
        };
        for i in 0..n {
            let raw = self.ret_buf[i];
            self.take_back(sh, t, nf, raw);
        }
        if n > 0 {
            sh.nfs[usize::from(nf)]
                .returned
                .store(self.c.nf_returned[usize::from(nf)], Ordering::Relaxed);
        }
    }

    /// Validates the consumer index of every RX ring this worker feeds (one load per ring,
    /// every 16th round): the producer re-reads it only when the ring looks full, which a
    /// ring kept below its capacity by the quota never does. A corrupt one gets the NF
    /// quarantined exactly as in `flush_nf`.
    #[cold]
    fn check_rx_rings(&mut self, sh: &Shared) {
        for (i, link) in self.nfs.iter_mut().enumerate() {
            let corrupt = link.rx.as_ref().is_some_and(|p| p.len().is_err());
            if corrupt {
                link.rx = None;
                sh.nfs[i]
                    .fault
                    .store(crate::fault::RX_RING_CORRUPT, Ordering::Relaxed);
                self.c.ring_corrupt += 1;
                self.c.nf_rejects[i][RejectReason::RingIndexCorrupt as usize] += 1;
            }
        }
    }

    fn reject(&mut self, sh: &Shared, nf: u16, why: RejectReason) {
        self.c.nf_rejects[usize::from(nf)][why as usize] += 1;
        sh.nfs[usize::from(nf)]
            .rejects
            .fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    fn take_back(&mut self, sh: &Shared, t: &Tables, nf: u16, raw: Descriptor) {
        let nfr = &sh.nfs[usize::from(nf)];
        let dom = &sh.domains[usize::from(nfr.domain)];
        let geom = dom.region.geometry();
        let checked = CheckedDesc::try_from_raw(raw, geom);
        // Ownership first: only a buffer this NF holds right now is acted on at all.
        if raw.buf_idx >= dom.buf_count {
            self.reject(sh, nf, RejectReason::BadIndex);
            return;
        }
        let meta = &dom.bufs[raw.buf_idx as usize];
        let w = meta.owner.load(Ordering::Acquire);
        let owner = match Owner::decode(w) {
            Some(o) if o.nf == nf => o,
            _ => {
                self.reject(sh, nf, RejectReason::NotOwner);
                return;
            }
        };
        meta.owner.store(OWNER_NONE, Ordering::Relaxed);
        self.c.nf_returned[usize::from(nf)] += 1;
        let m = meta.mbuf;
        let d = match checked {
            Ok(d) => d,
            Err(e) => {
                self.reject(sh, nf, e.reason());
                self.free(m, DropReason::Rejected);
                return;
            }
        };
        // SAFETY: m is the mbuf pinned to this buffer, owned by the core again; the new bounds
        // were validated against the buffer size, which is the mbuf's buffer length.
        unsafe {
            // Most NFs keep the packet where it was: skip the stores then.
            if (*m).data_off != d.data_off() || (*m).data_len != d.data_len() {
                (*m).data_off = d.data_off();
                (*m).data_len = d.data_len();
                (*m).pkt_len = u32::from(d.data_len());
            }
        }
        let Some(ch) = t.chains.get(usize::from(owner.chain)) else {
            self.free(m, DropReason::ChainRemoved);
            return;
        };
        let v = &mut self.c.nf_verdicts[usize::from(nf)];
        match d.verdict() {
            Verdict::Next => {
                v[verdict_idx::NEXT] += 1;
                self.route(
                    sh,
                    t,
                    m,
                    nfr.domain,
                    owner.chain,
                    usize::from(owner.pos) + 1,
                    owner.in_port,
                    raw.flow_hash,
                    None,
                );
            }
            Verdict::Service(id) => {
                v[verdict_idx::SERVICE] += 1;
                // Only a service later in this packet's chain: jump there.
                let from = usize::from(owner.pos) + 1;
                match ch.services.iter().skip(from).position(|&s| s == id) {
                    Some(k) => self.route(
                        sh,
                        t,
                        m,
                        nfr.domain,
                        owner.chain,
                        from + k,
                        owner.in_port,
                        raw.flow_hash,
                        None,
                    ),
                    None => {
                        self.reject(sh, nf, RejectReason::ServiceUnknown);
                        self.free(m, DropReason::Rejected);
                    }
                }
            }
            Verdict::Out(port) => {
                v[verdict_idx::OUT] += 1;
                if usize::from(port) < MAX_PORTS.min(sh.ports.len())
                    && ch.allowed_ports & (1u64 << port) != 0
                {
                    self.stage_tx(sh, m, port);
                } else {
                    self.reject(sh, nf, RejectReason::PortNotAllowed);
                    self.free(m, DropReason::Rejected);
                }
            }
            Verdict::Drop => {
                v[verdict_idx::DROP] += 1;
                self.free(m, DropReason::NfVerdict);
            }
        }
    }

    #[inline]
    fn stage_tx(&mut self, sh: &Shared, m: *mut rte_mbuf, port: u16) {
        if self.txq[usize::from(port)].n == 2 * BURST {
            self.flush_tx(sh, port);
        }
        let q = &mut self.txq[usize::from(port)];
        q.pkts[q.n] = m;
        q.n += 1;
    }

    fn flush_tx(&mut self, sh: &Shared, port: u16) {
        let q = &mut self.txq[usize::from(port)];
        let n = q.n;
        if n == 0 {
            return;
        }
        q.n = 0;
        let mut bytes = 0u64;
        for &m in &q.pkts[..n] {
            // SAFETY: staged mbufs are valid and owned here.
            bytes += u64::from(unsafe { (*m).data_len });
        }
        let queue = sh.ports[usize::from(port)].txq_of_worker(self.id);
        // SAFETY: pkts[..n] are owned valid mbufs; the driver takes the first `sent`; this
        // worker is the only user of its TX queue on this port.
        let sent = unsafe {
            sh.ports[usize::from(port)]
                .port
                .tx_burst_raw(queue, &mut q.pkts[..n])
        };
        let pkts = q.pkts;
        let mut sent_bytes = bytes;
        for &m in &pkts[sent..n] {
            // SAFETY: unsent mbufs are still ours.
            sent_bytes -= u64::from(unsafe { (*m).data_len });
            self.free(m, DropReason::TxFull);
        }
        self.c.port_tx[usize::from(port)] += sent as u64;
        self.c.port_tx_bytes[usize::from(port)] += sent_bytes;
    }

    fn flush_all_tx(&mut self, sh: &Shared, _t: &Tables) {
        for p in 0..self.txq.len() {
            self.flush_tx(sh, crate::id16(p));
        }
    }

    /// Takes back every buffer NF `nf` holds (it detached, died or was quarantined). Only the
    /// worker that drains the NF's TX ring does this, so no return can race with it.
    fn reclaim_nf(&mut self, sh: &Shared, t: &Tables, nf: u16) {
        let nfr = &sh.nfs[usize::from(nf)];
        if nfr.worker == self.id {
            // First whatever it returned properly.
            self.drain_nf(sh, t, nf);
            let dom = &sh.domains[usize::from(nfr.domain)];
            let mut n = 0u64;
            for b in dom.bufs.iter() {
                if Owner::decode(b.owner.load(Ordering::Acquire)).is_some_and(|o| o.nf == nf) {
                    b.owner.store(OWNER_NONE, Ordering::Relaxed);
                    self.c.nf_returned[usize::from(nf)] += 1;
                    self.free(b.mbuf, DropReason::Reclaimed);
                    n += 1;
                }
            }
            nfr.reclaimed.fetch_add(n, Ordering::Relaxed);
            nfr.returned
                .store(self.c.nf_returned[usize::from(nf)], Ordering::Relaxed);
        }
        let link = &mut self.nfs[usize::from(nf)];
        link.rx = None;
        link.tx = None;
        link.nstaged = 0;
        nfr.reclaim_done.fetch_add(1, Ordering::Release);
    }
}

/// How many more buffers this worker may hand NF `nfr` now: its quota minus what it holds
/// (published counters) and what this worker has staged, split evenly between the workers so
/// that together they never take it past the quota.
#[inline]
fn quota_budget(nfr: &crate::NfRt, staged: usize, nworkers: u32) -> u32 {
    quota_share(
        nfr.quota,
        nfr.held().saturating_add(staged as u64),
        nworkers,
    )
}

/// One worker's share of an NF's remaining room: `(quota − held) / workers`, so that workers
/// computing from the same (possibly stale) `held` never together exceed the quota.
#[inline]
fn quota_share(quota: u32, held: u64, nworkers: u32) -> u32 {
    let room = u64::from(quota).saturating_sub(held);
    u32::try_from(room / u64::from(nworkers.max(1))).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::quota_share;
    use proptest::prelude::*;

    proptest! {
        /// Rounds of W workers, each delivering up to its share computed from a snapshot of
        /// `held` taken before anyone delivered (the worst case of staleness), with returns in
        /// between: the NF never holds more than its quota, and a worker alone on an NF with
        /// room always gets a non-zero share.
        #[test]
        fn workers_never_exceed_the_quota(
            quota in 1u32..5000,
            nworkers in 1u32..9,
            rounds in proptest::collection::vec(
                (proptest::collection::vec(0u32..3000, 8), 0u64..3000), 1..40),
        ) {
            let mut held = 0u64;
            for (wants, returned) in rounds {
                let snapshot = held;
                for want in wants.iter().take(nworkers as usize) {
                    let share = quota_share(quota, snapshot, nworkers);
                    held += u64::from((*want).min(share));
                }
                prop_assert!(held <= u64::from(quota), "held {held} > quota {quota}");
                held -= returned.min(held);
            }
            if held < u64::from(quota) {
                prop_assert!(quota_share(quota, held, 1) > 0);
            }
        }
    }
}

/// Header bytes the core copies out of shared memory before parsing: every header netvm
/// parses (Ethernet with a VLAN tag, IPv4 with options, TCP with options) fits in 138 bytes.
const HDR_COPY: usize = 192;

/// Copies the first bytes of `m`'s packet (at most `out.len()`) into `out`; returns how many.
#[inline]
fn copy_headers(m: *mut rte_mbuf, out: &mut [u8; HDR_COPY]) -> usize {
    // SAFETY: m is a valid single-segment mbuf owned by the caller: `data_off + data_len` lie
    // inside its buffer (DPDK's invariant for received packets; the core's own bounds check
    // for packets an NF returned). A raw byte copy out of shared memory forms no reference to
    // it; bytes a peer writes meanwhile are just values.
    unsafe {
        let k = usize::from((*m).data_len).min(HDR_COPY);
        std::ptr::copy_nonoverlapping(
            (*m).buf_addr.cast::<u8>().add(usize::from((*m).data_off)),
            out.as_mut_ptr(),
            k,
        );
        k
    }
}

/// Symmetric flow hash of an mbuf's packet (0 for non-IPv4), from a private header copy.
#[inline]
fn packet_hash(m: *mut rte_mbuf) -> u32 {
    let mut hdr = [0u8; HDR_COPY];
    let k = copy_headers(m, &mut hdr);
    // SAFETY: m is a valid mbuf owned by the caller; its header lives in core-private memory.
    let len = usize::from(unsafe { (*m).data_len });
    PacketMeta::parse_prefix(&hdr[..k], len)
        .ok()
        .as_ref()
        .and_then(FlowKey::from_meta)
        .as_ref()
        .map_or(0, symmetric_hash)
}

/// First matching chain (rules in order).
#[inline]
fn classify(t: &Tables, meta: Option<&PacketMeta>, in_port: u16) -> Option<u16> {
    let meta = meta?;
    t.rules
        .iter()
        .find(|(r, _)| r.matches(meta, in_port))
        .map(|&(_, c)| c)
}

/// A snapshot slot: the counters a worker last published and the epoch they belong to.
#[derive(Debug, Default)]
pub struct SnapshotSlot {
    /// Epoch of `counters`.
    pub epoch: AtomicU64,
    /// The counters (locked only by the publishing worker between bursts and by the reader).
    pub counters: std::sync::Mutex<Box<Counters>>,
}
