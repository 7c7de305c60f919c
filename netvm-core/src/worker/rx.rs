//! RX: polling a port, the port fast path, parsing a private header copy, the flow cache in
//! front of the ordered rules.

use dpdk::sys::rte_mbuf;
use netvm_wire::{symmetric_hash, FlowKey, PacketMeta};

use super::{State, BURST};
use crate::capture::TapKind;
use crate::stats::DropReason;
use crate::tables::Tables;
use crate::Shared;

impl State {
    /// Polls entry `i` of this worker's (port, queue) list; the number of packets received.
    #[inline]
    pub(super) fn poll_port(&mut self, sh: &Shared, t: &Tables, i: usize) -> usize {
        let (pidx, queue) = self.rx_queues[i];
        let port = &sh.ports[usize::from(pidx)];
        // A rate-limited port: receive at most what its token bucket allows now.
        let want = match self.pacers.get_mut(i).and_then(Option::as_mut) {
            Some(p) => p.allow(dpdk::rdtsc(), BURST),
            None => BURST,
        };
        if want == 0 {
            return 0;
        }
        // SAFETY: this worker is the only poller of this queue (each queue is assigned to one
        // worker); every mbuf returned is owned here until freed, sent or handed over.
        let n = unsafe { port.port.rx_burst_raw(queue, &mut self.rx_buf[..want]) };
        if let Some(p) = self.pacers.get_mut(i).and_then(Option::as_mut) {
            p.take(n);
        }
        if n == 0 {
            return 0;
        }
        if self.tap.is_some() {
            let pkts = self.rx_buf;
            self.tap_burst(TapKind::PortRx, pidx, &pkts[..n], Some(pidx));
        }
        if t.nsh_ports & (1u64 << pidx) != 0 {
            // A link to a peer instance: NSH arrivals resume their path (`nsh`).
            self.rx_nsh_port(sh, t, n, pidx);
            return n;
        }
        match port.virtio {
            Some(crate::virtio::VirtioPort::FromGuest(nf)) => {
                // A virtio NF's guest sent these back (`worker/vhost.rs`).
                self.rx_virtio(sh, t, n, pidx, nf);
                return n;
            }
            Some(crate::virtio::VirtioPort::ToGuest(nf)) => {
                // The guest sent these on the port the core transmits into: made up.
                self.rx_virtio_stray(n, pidx, nf);
                return n;
            }
            None => {}
        }
        if port.steer {
            // Several queues, no RSS: the core's flow hash decides each frame's worker.
            for i in 0..n {
                let m = self.rx_buf[i];
                self.rx_one(sh, t, m, pidx, true);
            }
            for to in 0..self.nsteer.len() {
                self.push_steered(sh, to);
            }
            return n;
        }
        if let Some(chain) = t.port_fast.get(usize::from(pidx)).copied().flatten() {
            self.rx_fast(sh, t, n, pidx, chain);
            return n;
        }
        for i in 0..n {
            let m = self.rx_buf[i];
            self.rx_one(sh, t, m, pidx, false);
        }
        n
    }

    /// Every packet of the burst enters `chain` (the port's first rule needs no parsing).
    #[inline]
    pub(super) fn rx_fast(&mut self, sh: &Shared, t: &Tables, n: usize, pidx: u16, chain: u16) {
        let p = usize::from(pidx);
        let mut bytes = 0u64;
        let mut segs_ok = true;
        for &m in &self.rx_buf[..n] {
            // SAFETY: received mbufs are valid and owned here; the header is core-private.
            let (len, pkt_len, segs) = unsafe { ((*m).data_len, (*m).pkt_len, (*m).nb_segs) };
            bytes += u64::from(pkt_len.max(u32::from(len)));
            segs_ok &= segs == 1;
        }
        self.c.port_rx[p] += n as u64;
        self.c.port_rx_bytes[p] += bytes;
        // A frame larger than the domain's buffers arrives in several segments: drop it whole
        // (`multi_segment`), never pass on its first segment alone. Rare: compact the burst.
        let n = if segs_ok {
            n
        } else {
            self.drop_multi_segment(n)
        };
        let bytes = if segs_ok {
            bytes
        } else {
            self.rx_buf[..n]
                .iter()
                // SAFETY: as above.
                .map(|&m| u64::from(unsafe { (*m).data_len }))
                .sum()
        };
        if n == 0 {
            return;
        }
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
                Some(e) if sh.ports[usize::from(e)].txq_of_worker(self.id).is_none() => {
                    // No TX queue of this worker on the egress port: through the queue's owner.
                    for i in 0..n {
                        let m = self.rx_buf[i];
                        self.stage_tx(sh, m, e);
                    }
                }
                Some(e) => {
                    self.flush_tx(sh, e);
                    if self.tap.is_some() {
                        let pkts = self.rx_buf;
                        self.tap_burst(TapKind::PortTx, e, &pkts[..n], Some(pidx));
                    }
                    let queue = sh.ports[usize::from(e)]
                        .txq_of_worker(self.id)
                        .unwrap_or_default();
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
        self.enter_burst(sh, t, n, dom, chain, in_port, hash_needed);
    }

    /// Frees every multi-segment mbuf of `rx_buf[..n]` (`multi_segment`) and moves the rest to
    /// the front, in order; returns how many are left.
    #[cold]
    fn drop_multi_segment(&mut self, n: usize) -> usize {
        let mut k = 0;
        for i in 0..n {
            let m = self.rx_buf[i];
            // SAFETY: received mbufs are valid and owned here.
            if unsafe { (*m).nb_segs } == 1 {
                self.rx_buf[k] = m;
                k += 1;
            } else {
                self.free(m, DropReason::MultiSegment);
            }
        }
        k
    }

    /// A frame just received from port `pidx`: counted, then (`steer`: unless its flow
    /// belongs to another worker, which gets it handed over) classified and routed.
    #[inline]
    pub(super) fn rx_one(
        &mut self,
        sh: &Shared,
        t: &Tables,
        m: *mut rte_mbuf,
        pidx: u16,
        steer: bool,
    ) {
        // SAFETY: m is a valid mbuf just received; header fields live in DPDK-private memory.
        let (nb_segs, data_len, pkt_len) = unsafe { ((*m).nb_segs, (*m).data_len, (*m).pkt_len) };
        self.c.port_rx[usize::from(pidx)] += 1;
        self.c.port_rx_bytes[usize::from(pidx)] += u64::from(pkt_len.max(u32::from(data_len)));
        if nb_segs != 1 {
            self.free(m, DropReason::MultiSegment);
            return;
        }
        self.rx_parsed(sh, t, m, pidx, steer);
    }

    /// A frame another worker received and handed over because its flow belongs here.
    pub(super) fn rx_steered(&mut self, sh: &Shared, t: &Tables, m: *mut rte_mbuf, pidx: u16) {
        self.rx_parsed(sh, t, m, pidx, false);
    }

    #[inline]
    fn rx_parsed(&mut self, sh: &Shared, t: &Tables, m: *mut rte_mbuf, pidx: u16, steer: bool) {
        // SAFETY: m is a valid single-segment mbuf owned here; its header is core-private.
        let data_len = unsafe { (*m).data_len };
        // The packet bytes are in shared memory that NFs of the domain can write at any time:
        // parse a private copy of the headers, never a slice over the shared bytes.
        let mut hdr = [0u8; HDR_COPY];
        let k = copy_headers(m, &mut hdr);
        let meta = PacketMeta::parse_prefix(&hdr[..k], usize::from(data_len)).ok();
        let key = meta.as_ref().and_then(FlowKey::from_meta);
        let hash = key.as_ref().map_or(0, symmetric_hash);
        if steer && key.is_some() {
            // Remixed: instance choice uses `hash % instances`, which must not correlate
            // with the worker (else each worker would feed only some instances).
            let mixed = (u64::from(hash).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize;
            let to = mixed % self.nsteer.len().max(1);
            if to != self.id {
                self.steer_to(sh, to, m, pidx);
                return;
            }
        }
        let in_port = u8::try_from(pidx).unwrap_or(u8::MAX);
        let vlans = meta.as_ref().map_or(0, super::flow::vlan_key);
        // Flow cache (exact match on key + in port + VLAN IDs) in front of the ordered rules.
        let chain = match key {
            Some(k) => match self.flows.lookup(&k, in_port, vlans, hash) {
                Some(i) => {
                    self.c.flow_cache_hits += 1;
                    Some(self.flows.chain(i))
                }
                None => {
                    self.c.flow_cache_misses += 1;
                    let ch = classify(t, meta.as_ref(), pidx);
                    if let Some(ch) = ch {
                        self.flows.insert(k, in_port, vlans, hash, ch);
                    }
                    ch
                }
            },
            None => classify(t, meta.as_ref(), pidx),
        };
        let Some(chain) = chain else {
            self.free(m, DropReason::NoChain);
            return;
        };
        self.c.chain_pkts[usize::from(chain)] += 1;
        let dom = sh.ports[usize::from(pidx)].domain;
        self.route(sh, t, m, dom, chain, 0, in_port, hash);
    }
}

/// Copies the first bytes of `m`'s packet (at most `out.len()`) into `out`; returns how many.
#[inline]
pub(super) fn copy_headers(m: *mut rte_mbuf, out: &mut [u8; HDR_COPY]) -> usize {
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

/// Symmetric flow hash of an mbuf's packet (0 for non-IP), from a private header copy.
#[inline]
pub(super) fn packet_hash(m: *mut rte_mbuf) -> u32 {
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
pub(super) fn classify(t: &Tables, meta: Option<&PacketMeta>, in_port: u16) -> Option<u16> {
    let meta = meta?;
    t.rules
        .iter()
        .find(|(r, _)| r.matches(meta, in_port))
        .map(|&(_, c)| c)
}

/// Header bytes the core copies out of shared memory before parsing: every header netvm
/// parses fits in 186 bytes (Ethernet with two VLAN tags 22, IPv6 40 + at most 64 bytes of
/// extension headers — `netvm_wire::ipv6::MAX_EXT_BYTES`, a longer chain is a parse error and
/// a `no_chain` drop — then TCP with options 60; IPv4: 22 + 60 + 60).
pub(super) const HDR_COPY: usize = 192;
const _: () =
    assert!(22 + netvm_wire::ipv6::HEADER_LEN + netvm_wire::ipv6::MAX_EXT_BYTES + 60 <= HDR_COPY);

/// A token bucket over the TSC: `rate` packets per second, bursts up to `cap`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pacer {
    /// Tokens now, in millionths of a packet (integer arithmetic, no drift).
    micro: u64,
    /// Most tokens (µ-packets) the bucket holds.
    cap: u64,
    /// Last refill, TSC.
    last: u64,
    /// µ-packets per TSC cycle × 2^20 (fixed point).
    per_cycle: u64,
}

impl Pacer {
    /// `rate` packets per second at a TSC of `hz`, starting full at TSC `now`.
    pub(super) fn new(rate: u64, hz: u64, now: u64) -> Self {
        let per_cycle = (u128::from(rate) * 1_000_000 * (1 << 20) / u128::from(hz.max(1)))
            .min(u128::from(u64::MAX));
        // At most one burst, or 1 ms of traffic for fast rates.
        let cap = (rate / 1000).max(BURST as u64) * 1_000_000;
        Self {
            micro: cap,
            cap,
            last: now,
            per_cycle: u64::try_from(per_cycle).unwrap_or(u64::MAX),
        }
    }

    /// Refills for the time since the last call; how many packets (≤ `max`) may come now.
    #[inline]
    pub(super) fn allow(&mut self, now: u64, max: usize) -> usize {
        let dt = now.saturating_sub(self.last);
        self.last = now;
        let add = (u128::from(dt) * u128::from(self.per_cycle)) >> 20;
        self.micro = u64::try_from(u128::from(self.micro) + add)
            .unwrap_or(u64::MAX)
            .min(self.cap);
        usize::try_from(self.micro / 1_000_000)
            .unwrap_or(usize::MAX)
            .min(max)
    }

    /// Takes `n` packets' tokens.
    #[inline]
    pub(super) fn take(&mut self, n: usize) {
        self.micro = self.micro.saturating_sub(n as u64 * 1_000_000);
    }
}

#[cfg(test)]
mod tests {
    use super::Pacer;

    #[test]
    fn pacer_allows_its_rate() {
        // 1 GHz TSC, 100 kpps: one packet per 10,000 cycles.
        let hz = 1_000_000_000;
        let mut p = Pacer::new(100_000, hz, 0);
        // Starts with a burst's worth (100 = 1 ms at 100 kpps).
        let first = p.allow(0, 1000);
        assert_eq!(first, 100);
        p.take(first);
        assert_eq!(p.allow(0, 1000), 0);
        // Over one simulated second in 1 ms steps, exactly 100,000 more.
        let mut got = 0;
        for ms in 1..=1000u64 {
            let n = p.allow(ms * 1_000_000, usize::MAX);
            p.take(n);
            got += n;
        }
        assert!((99_900..=100_000).contains(&got), "{got}");
        // Idle for a long time: the bucket is capped, no flood afterwards.
        assert_eq!(p.allow(10 * hz, usize::MAX), 100);
    }
}
