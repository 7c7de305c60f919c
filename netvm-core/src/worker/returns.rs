//! What NFs return: draining TX rings, validating every descriptor (ownership first), applying
//! verdicts, counting rejects; corrupt ring indices; taking back what a gone NF held.

use std::sync::atomic::Ordering;

use netvm_shm::{CheckedDesc, Descriptor, RejectReason, Verdict};

use super::State;
use crate::capture::TapKind;
use crate::config::MAX_PORTS;
use crate::domain::{Owner, OWNER_NONE};
use crate::stats::{verdict_idx, DropReason};
use crate::tables::Tables;
use crate::Shared;

impl State {
    /// Drains NF `nf`'s TX ring and applies its verdicts; the number of descriptors taken.
    /// Every field is hostile input.
    #[inline]
    pub(super) fn drain_nf(&mut self, sh: &Shared, t: &Tables, nf: u16) -> usize {
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
                return 0;
            }
            None => 0,
        };
        // The NF's domain, read once per burst (an entry changes domain only after it is freed,
        // and a freed entry has no TX ring to drain).
        let dom_id = sh.nfs[usize::from(nf)].domain();
        let dom = &sh.domains[usize::from(dom_id)];
        for i in 0..n {
            let raw = self.ret_buf[i];
            self.take_back(sh, t, nf, dom_id, dom, raw);
        }
        if n > 0 {
            sh.nfs[usize::from(nf)]
                .returned
                .store(self.c.nf_returned[usize::from(nf)], Ordering::Relaxed);
        }
        n
    }

    /// Validates the consumer index of every RX ring this worker feeds (one load per ring,
    /// every 16th round): the producer re-reads it only when the ring looks full, which a
    /// ring kept below its capacity by the quota never does. A corrupt one gets the NF
    /// quarantined exactly as in `flush_nf`.
    #[cold]
    pub(super) fn check_rx_rings(&mut self, sh: &Shared) {
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

    pub(super) fn reject(&mut self, sh: &Shared, nf: u16, why: RejectReason) {
        self.c.nf_rejects[usize::from(nf)][why as usize] += 1;
        sh.nfs[usize::from(nf)]
            .rejects
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Takes back one descriptor NF `nf` (of domain `dom_id`, `dom`) returned.
    #[inline]
    pub(super) fn take_back(
        &mut self,
        sh: &Shared,
        t: &Tables,
        nf: u16,
        dom_id: u16,
        dom: &crate::domain::Domain,
        raw: Descriptor,
    ) {
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
        let hash = unsafe {
            // Most NFs keep the packet where it was: skip the stores then.
            if (*m).data_off != d.data_off() || (*m).data_len != d.data_len() {
                (*m).data_off = d.data_off();
                (*m).data_len = d.data_len();
                (*m).pkt_len = u32::from(d.data_len());
            }
            // The flow hash the core computed at RX, kept in the (core-private) mbuf header by
            // `deliver` — not the descriptor's `flow_hash`, which the NF may have rewritten.
            // Visible here through the same Release/Acquire chain (core → NF → core rings) as
            // the owner word.
            (*m).__bindgen_anon_2.hash.rss
        };
        // A chain newer than this worker's tables: another worker classified the packet with
        // tables this one has not applied yet (commands are looked at every 16th round). The
        // control side's tables are the newest, and chain ids are never reused: take those
        // for this packet (cold, only in the rounds right after a change).
        let newest;
        let t = if usize::from(owner.chain) < t.chains.len() {
            t
        } else {
            newest = newest_tables(sh);
            &*newest
        };
        let Some(ch) = t.chains.get(usize::from(owner.chain)) else {
            self.free(m, DropReason::ChainRemoved);
            return;
        };
        let in_port = u16::from(owner.in_port);
        match d.verdict() {
            Verdict::Next => {
                self.c.nf_verdicts[usize::from(nf)][verdict_idx::NEXT] += 1;
                if self.tap.is_some() {
                    self.tap_one(TapKind::NfOut, nf, m, in_port);
                }
                let next = usize::from(owner.pos) + 1;
                if next >= ch.services.len() {
                    // Past the last service: straight to the chain's egress.
                    match ch.egress {
                        Some(p) => self.stage_tx(sh, m, p),
                        None => self.free(m, DropReason::ChainEgressDrop),
                    }
                } else {
                    self.route(sh, t, m, dom_id, owner.chain, next, owner.in_port, hash);
                }
            }
            Verdict::Service(id) => {
                self.c.nf_verdicts[usize::from(nf)][verdict_idx::SERVICE] += 1;
                // Only a service later in this packet's chain: jump there.
                let from = usize::from(owner.pos) + 1;
                match ch.services.iter().skip(from).position(|&s| s == id) {
                    Some(k) => {
                        if self.tap.is_some() {
                            self.tap_one(TapKind::NfOut, nf, m, in_port);
                        }
                        self.route(sh, t, m, dom_id, owner.chain, from + k, owner.in_port, hash)
                    }
                    None => {
                        self.reject(sh, nf, RejectReason::ServiceUnknown);
                        self.free(m, DropReason::Rejected);
                    }
                }
            }
            Verdict::Out(port) => {
                self.c.nf_verdicts[usize::from(nf)][verdict_idx::OUT] += 1;
                if usize::from(port) < MAX_PORTS.min(sh.ports.len())
                    && ch.allowed_ports & (1u64 << port) != 0
                {
                    if self.tap.is_some() {
                        self.tap_one(TapKind::NfOut, nf, m, in_port);
                    }
                    self.stage_tx(sh, m, port);
                } else {
                    self.reject(sh, nf, RejectReason::PortNotAllowed);
                    self.free(m, DropReason::Rejected);
                }
            }
            Verdict::Drop => {
                self.c.nf_verdicts[usize::from(nf)][verdict_idx::DROP] += 1;
                if self.tap.is_some() {
                    self.tap_one(TapKind::NfDrop, nf, m, in_port);
                }
                self.free(m, DropReason::NfVerdict);
            }
        }
    }

    /// Stops feeding NF `nf` (it detached, died or was quarantined): this worker's ring to it
    /// is forgotten, descriptors staged for it are taken back here, and the worker counts
    /// itself in `feed_stopped`. The NF's draining worker queues the reclaim, which runs once
    /// every worker has stopped ([`Self::reclaim_ready`]).
    pub(super) fn stop_feeding(&mut self, sh: &Shared, nf: u16, stopped: u64) {
        let nfr = &sh.nfs[usize::from(nf)];
        let dom = &sh.domains[usize::from(nfr.domain())];
        let link = &mut self.nfs[usize::from(nf)];
        link.rx = None;
        link.wake = false;
        let n = link.nstaged;
        link.nstaged = 0;
        let staged = link.staged;
        for d in &staged[..n] {
            let meta = &dom.bufs[d.buf_idx as usize];
            meta.owner.store(OWNER_NONE, Ordering::Relaxed);
            self.free(meta.mbuf, DropReason::NfUnavailable);
        }
        // Release pairs with the Acquire in `reclaim_ready`: the ownership words of everything
        // this worker enqueued to the NF are visible to the scan that follows.
        nfr.feed_stopped.fetch_add(1, Ordering::Release);
        if nfr.worker == self.id {
            self.pending_reclaims.push((nf, stopped));
        }
    }

    /// Runs the queued reclaims whose NF no worker feeds any more.
    #[cold]
    pub(super) fn reclaim_ready(&mut self, sh: &Shared, t: &Tables) {
        let mut i = 0;
        while i < self.pending_reclaims.len() {
            let (nf, target) = self.pending_reclaims[i];
            if sh.nfs[usize::from(nf)].feed_stopped.load(Ordering::Acquire) >= target {
                self.pending_reclaims.swap_remove(i);
                self.reclaim_nf(sh, t, nf);
            } else {
                i += 1;
            }
        }
    }

    /// Takes back every buffer NF `nf` holds. Only the worker that drains the NF's TX ring
    /// does this, after every worker stopped feeding it, so no return and no delivery can
    /// race with the scan.
    fn reclaim_nf(&mut self, sh: &Shared, t: &Tables, nf: u16) {
        let nfr = &sh.nfs[usize::from(nf)];
        // First whatever it returned properly.
        self.drain_nf(sh, t, nf);
        let dom = &sh.domains[usize::from(nfr.domain())];
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
        let link = &mut self.nfs[usize::from(nf)];
        link.rx = None;
        link.tx = None;
        link.nstaged = 0;
        nfr.reclaim_done.fetch_add(1, Ordering::Release);
    }
}

/// The tables the control side has in force now, read without a lock (only for a packet of a
/// chain this worker's tables do not know yet).
#[cold]
fn newest_tables(sh: &Shared) -> std::sync::Arc<Tables> {
    sh.tables_now.load_full()
}
