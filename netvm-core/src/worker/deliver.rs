//! Delivery to NFs: routing along a chain, picking an instance (flow-hash affinity, or
//! least-loaded through the placement table of [`super::place`]), the domain-crossing copy,
//! ownership, the per-NF quota and the staged burst enqueue.

use std::sync::atomic::Ordering;

use dpdk::sys::{self, rte_mbuf};
use netvm_shm::{Descriptor, Producer, RejectReason};

use super::{State, BURST};
use crate::capture::TapKind;
use crate::config::Balance;
use crate::domain::{owner_word, OWNER_NONE};
use crate::stats::DropReason;
use crate::tables::{FailurePolicy, Tables};
use crate::Shared;

impl State {
    /// Sends the packet to chain position `pos` (or the chain's egress past the end). `hash`
    /// is the flow's symmetric hash as the core computed it at RX (never an NF's word).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(super) fn route(
        &mut self,
        sh: &Shared,
        t: &Tables,
        m: *mut rte_mbuf,
        dom: u16,
        chain: u16,
        pos: usize,
        in_port: u8,
        hash: u32,
    ) {
        let Some(ch) = t.chains.get(usize::from(chain)) else {
            self.free(m, DropReason::ChainRemoved);
            return;
        };
        if pos == 0 && ch.backpressure && ch.services.len() > 1 && self.backed_up(sh, t, chain, ch)
        {
            // Entering a chain a later NF of which is behind: dropped here, before the first
            // NF spends work on a frame the congested one would drop.
            self.free(m, DropReason::Backpressure);
            return;
        }
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
            if let Some(&Some(port)) = ch.remote.get(pos) {
                // A peer instance runs this hop: NSH onto the wire (`nsh.rs`).
                self.nsh_out(sh, t, m, chain, pos, port);
                return;
            }
            let sid = ch.services[pos];
            let svc = &t.services[usize::from(sid)];
            match self.pick_instance(sh, sid, &svc.instances, ch.balance, hash) {
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

    /// A received burst (`rx_buf[..n]`, frames of domain `dom` from port `in_port`) entering
    /// `chain` at position 0: the per-chain decisions — entry backpressure, and the first
    /// hop's NF where its service has one instance, attached, a process or guest NF of the
    /// same domain — are made once for the burst. Anything else goes frame by frame through
    /// [`Self::route`].
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(super) fn enter_burst(
        &mut self,
        sh: &Shared,
        t: &Tables,
        n: usize,
        dom: u16,
        chain: u16,
        in_port: u8,
        hash_needed: bool,
    ) {
        let first = t.chains.get(usize::from(chain)).and_then(|ch| {
            if ch.services.len() > 1 && ch.backpressure && self.backed_up(sh, t, chain, ch) {
                return Some(None);
            }
            if ch.remote.first().copied().flatten().is_some() || self.tap.is_some() {
                return None;
            }
            let svc = t.services.get(usize::from(*ch.services.first()?))?;
            let &[nf] = svc.instances.as_slice() else {
                return None;
            };
            let nfr = &sh.nfs[usize::from(nf)];
            (self.active(sh, nf) && nfr.virtio.is_none() && nfr.domain() == dom).then_some(Some(nf))
        });
        match first {
            Some(None) => {
                for i in 0..n {
                    let m = self.rx_buf[i];
                    self.free(m, DropReason::Backpressure);
                }
            }
            // Two loops on purpose: folding them into one with the choice inside measured
            // 3 switch cycles per frame more (the compiler does not unswitch it).
            Some(Some(nf)) => {
                let d = &sh.domains[usize::from(dom)];
                for i in 0..n {
                    let m = self.rx_buf[i];
                    let hash = if hash_needed {
                        super::rx::packet_hash(m)
                    } else {
                        0
                    };
                    self.stage_nf(sh, d, m, nf, chain, 0, in_port, hash);
                }
            }
            None => {
                for i in 0..n {
                    let m = self.rx_buf[i];
                    let hash = if hash_needed {
                        super::rx::packet_hash(m)
                    } else {
                        0
                    };
                    self.route(sh, t, m, dom, chain, 0, in_port, hash);
                }
            }
        }
    }

    /// Entry backpressure for chain `chain`: whether it is backed up, i.e. some later
    /// position k is behind — its own ring (this worker's, its least-filled attached
    /// instance) at least half full — and `S_k ≥ 15/16` of a ring, where `S_k` counts what
    /// waits in this worker's rings at positions 0..=k: frames let in now would overflow k's
    /// ring. Once backed up it stays so until every `S_k ≤ ¼`
    /// (hysteresis: the first NF then gets a long run of work, not a burst at a time, which
    /// matters where NFs share a CPU). Looked at once per round; a hop run by a peer instance
    /// ends the sum (its queue is not visible here).
    #[inline]
    fn backed_up(
        &mut self,
        sh: &Shared,
        t: &Tables,
        chain: u16,
        ch: &crate::tables::Chain,
    ) -> bool {
        let round = self.round;
        let Some(&(r, was)) = self.chain_bp.get(usize::from(chain)) else {
            return false;
        };
        if r == round {
            return was;
        }
        let mut sum = 0u32;
        let mut worst = 0u32;
        let mut trip = false;
        let mut cap = u32::MAX;
        for (pos, &sid) in ch.services.iter().enumerate() {
            if ch.remote.get(pos).copied().flatten().is_some() {
                break;
            }
            let Some(svc) = t.services.get(usize::from(sid)) else {
                break;
            };
            let mut least: Option<u32> = None;
            for &nf in &svc.instances {
                if !self.active(sh, nf) {
                    continue;
                }
                let (used, c) = self.nf_used(nf);
                cap = cap.min(c);
                least = Some(least.map_or(used, |l| l.min(used)));
            }
            let here = least.unwrap_or(0);
            sum = sum.saturating_add(here);
            if pos >= 1 {
                worst = worst.max(sum);
                // Behind: its own ring at least half full, and what waits up to it would
                // (all but) fill that ring.
                trip |= here >= cap / 2 && sum >= cap - cap / 16;
            }
        }
        let now = if cap == u32::MAX {
            false
        } else if was {
            worst > cap / 4
        } else {
            trip
        };
        self.chain_bp[usize::from(chain)] = (round, now);
        now
    }

    /// Descriptors in this worker's RX ring to NF `nf` plus those staged for it, and the
    /// ring's capacity. One load of the NF's consumer index per round; a corrupt index
    /// counts as empty here (`check_rx_rings` and `flush_nf` get the NF quarantined).
    #[inline]
    fn nf_used(&mut self, nf: u16) -> (u32, u32) {
        let round = self.round;
        let link = &mut self.nfs[usize::from(nf)];
        let cap = link.rx.as_ref().map_or(u32::MAX, Producer::capacity);
        if link.used_round != round {
            link.used_round = round;
            let used = link.rx.as_ref().map_or(Ok(0), Producer::len).unwrap_or(0);
            link.used = used.saturating_add(u32::try_from(link.nstaged).unwrap_or(0));
        }
        (link.used, cap)
    }

    /// An attached instance of service `sid` (NF indices `inst`) for flow `hash`.
    #[inline]
    pub(super) fn pick_instance(
        &mut self,
        sh: &Shared,
        sid: u16,
        inst: &[u16],
        balance: Balance,
        hash: u32,
    ) -> Option<u16> {
        if inst.len() == 1 {
            return self.active(sh, inst[0]).then_some(inst[0]);
        }
        if balance == Balance::LeastLoaded {
            return self.least_loaded(sh, sid, inst, hash);
        }
        // Flow-hash affinity; skip to the next active instance if the chosen one is away.
        // (A service whose last NF was removed has none.)
        let n = inst.len();
        if n == 0 {
            return None;
        }
        let start = hash as usize % n;
        (0..n)
            .map(|k| inst[(start + k) % n])
            .find(|&nf| self.active(sh, nf))
    }

    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(super) fn deliver(
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
        if let Some(v) = nfr.virtio.as_deref() {
            // An unmodified guest behind vhost-user ports (`worker/vhost.rs`).
            self.deliver_virtio(sh, m, nf, v, chain, pos, in_port, hash);
            return;
        }
        let mut d = &sh.domains[usize::from(dom)];
        if nfr.domain() != dom {
            // Crossing a trust domain: copy into a buffer of the destination domain.
            let dst = &sh.domains[usize::from(nfr.domain())];
            // SAFETY: the destination pool is valid for the run.
            let n = unsafe { sys::netvm_rte_pktmbuf_alloc(dst.pool.as_ptr()) };
            if n.is_null() {
                self.free(m, DropReason::NoBuffer);
                return;
            }
            // SAFETY: m and n are valid single-segment mbufs owned here (headers core-private).
            let (len, buf_len, head) = unsafe { ((*m).data_len, (*n).buf_len, (*n).data_off) };
            // A fresh mbuf's data room (buffer minus headroom) is the domain's `buffer_size`.
            if len > buf_len.saturating_sub(head) {
                // The destination domain's buffers are smaller than this frame: never truncate.
                // SAFETY: n was just allocated here and is freed once; m is ours.
                unsafe { sys::netvm_rte_pktmbuf_free(n) };
                self.free(m, DropReason::FrameTooBig);
                return;
            }
            // SAFETY: as above; the copy stays within m's data (data_len bytes) and n's buffer
            // (`head + len <= buf_len`, checked just above).
            unsafe {
                let off = head;
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
        self.stage_nf(sh, d, m, nf, chain, pos, in_port, hash);
    }

    /// Hands `m` (a buffer of domain `d`, NF `nf`'s domain) to NF `nf` at chain position
    /// `pos`: quota, ownership, staged descriptor.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn stage_nf(
        &mut self,
        sh: &Shared,
        d: &crate::domain::Domain,
        m: *mut rte_mbuf,
        nf: u16,
        chain: u16,
        pos: usize,
        in_port: u8,
        hash: u32,
    ) {
        let nfr = &sh.nfs[usize::from(nf)];
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
        if self.tap.is_some() {
            self.tap_one(TapKind::NfIn, nf, m, u16::from(in_port));
        }
        let link = &mut self.nfs[usize::from(nf)];
        if link.nstaged == BURST {
            self.flush_nf(sh, nf);
        }
        let link = &mut self.nfs[usize::from(nf)];
        // SAFETY: m is a valid mbuf owned here; its header is core-private memory.
        let (off, len) = unsafe {
            // The flow's identity for the next positions travels here, out of the NF's reach
            // (`take_back` reads it back; after a domain copy `m` is the new mbuf, so the hash
            // moves with the packet). The descriptor's `flow_hash` is only information for
            // the NF: the core never reads it back.
            (*m).__bindgen_anon_2.hash.rss = hash;
            ((*m).data_off, (*m).data_len)
        };
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

    pub(super) fn flush_staged(&mut self, sh: &Shared) {
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

    pub(super) fn flush_nf(&mut self, sh: &Shared, nf: u16) {
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
            let dom = &sh.domains[usize::from(nfr.domain())];
            for d in &staged[sent..n] {
                let meta = &dom.bufs[d.buf_idx as usize];
                meta.owner.store(OWNER_NONE, Ordering::Relaxed);
                self.free(meta.mbuf, why);
            }
        }
    }
}

/// How many more buffers this worker may hand NF `nfr` now: its quota minus what it holds
/// (published counters) and what this worker has staged, split evenly between the workers so
/// that together they never take it past the quota.
#[inline]
pub(super) fn quota_budget(nfr: &crate::NfRt, staged: usize, nworkers: u32) -> u32 {
    quota_share(
        nfr.quota(),
        nfr.held().saturating_add(staged as u64),
        nworkers,
    )
}

/// One worker's share of an NF's remaining room: `(quota − held) / workers`, so that workers
/// computing from the same (possibly stale) `held` never together exceed the quota.
#[inline]
pub(super) fn quota_share(quota: u32, held: u64, nworkers: u32) -> u32 {
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
