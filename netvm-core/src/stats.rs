//! Counters: per port, NF, chain, verdict, drop reason and reject reason.
//!
//! Each worker keeps plain `u64` counters in private memory (no atomics, no sharing on the hot
//! path) and copies them into its shared [`Snapshot`] slot when the control thread asks for a
//! snapshot (an epoch number). All workers publish the same epoch at a loop boundary and wait
//! for each other briefly, so the summed snapshot is taken at one consistent instant and the
//! accounting identity `received = transmitted + dropped + in flight` holds at every read.

use netvm_shm::RejectReason;
use serde::Serialize;

use crate::config::{MAX_NFS, MAX_PORTS};

/// Most chains (including retired versions) one run can number.
pub const MAX_CHAINS: usize = 256;

/// Why the core dropped a packet.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// No chain matched.
    NoChain = 0,
    /// The chain ends in `drop`.
    ChainEgressDrop,
    /// An NF said DROP.
    NfVerdict,
    /// The NF's RX ring was full (backpressure).
    RingFull,
    /// No attached instance of the service.
    NfUnavailable,
    /// The port's TX queue was full.
    TxFull,
    /// Crossing a domain needed a buffer and the destination pool was empty.
    NoBuffer,
    /// The NF returned it with an invalid descriptor (bounds, verdict, port, service).
    Rejected,
    /// Taken back from an NF that detached, crashed or was quarantined.
    Reclaimed,
    /// A multi-segment mbuf (netvm uses single-segment buffers).
    MultiSegment,
    /// The chain it belonged to was removed while it was in flight.
    ChainRemoved,
}

impl DropReason {
    /// Number of reasons.
    pub const COUNT: usize = 11;
    /// All reasons in index order.
    pub const ALL: [DropReason; Self::COUNT] = [
        Self::NoChain,
        Self::ChainEgressDrop,
        Self::NfVerdict,
        Self::RingFull,
        Self::NfUnavailable,
        Self::TxFull,
        Self::NoBuffer,
        Self::Rejected,
        Self::Reclaimed,
        Self::MultiSegment,
        Self::ChainRemoved,
    ];

    /// Stable name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::NoChain => "no_chain",
            Self::ChainEgressDrop => "chain_egress_drop",
            Self::NfVerdict => "nf_verdict_drop",
            Self::RingFull => "ring_full",
            Self::NfUnavailable => "nf_unavailable",
            Self::TxFull => "tx_full",
            Self::NoBuffer => "no_buffer",
            Self::Rejected => "rejected",
            Self::Reclaimed => "reclaimed",
            Self::MultiSegment => "multi_segment",
            Self::ChainRemoved => "chain_removed",
        }
    }
}

/// Verdict counter indices.
pub mod verdict_idx {
    /// NEXT.
    pub const NEXT: usize = 0;
    /// SERVICE(id).
    pub const SERVICE: usize = 1;
    /// OUT(port).
    pub const OUT: usize = 2;
    /// DROP.
    pub const DROP: usize = 3;
}

/// Number of reject reasons.
pub const REJECTS: usize = RejectReason::COUNT;

/// One worker's counters (plain integers; the worker is the only writer).
#[derive(Debug, Clone)]
pub struct Counters {
    /// Packets received per port.
    pub port_rx: [u64; MAX_PORTS],
    /// Bytes received per port.
    pub port_rx_bytes: [u64; MAX_PORTS],
    /// Packets transmitted per port.
    pub port_tx: [u64; MAX_PORTS],
    /// Bytes transmitted per port.
    pub port_tx_bytes: [u64; MAX_PORTS],
    /// Descriptors delivered to each NF.
    pub nf_delivered: [u64; MAX_NFS],
    /// Buffers each NF returned and the core took back (valid or not).
    pub nf_returned: [u64; MAX_NFS],
    /// Verdicts per NF (see [`verdict_idx`]).
    pub nf_verdicts: [[u64; 4]; MAX_NFS],
    /// Rejected descriptors per NF and reason.
    pub nf_rejects: [[u64; REJECTS]; MAX_NFS],
    /// Packets that entered each chain.
    pub chain_pkts: [u64; MAX_CHAINS],
    /// Drops by reason.
    pub drops: [u64; DropReason::COUNT],
    /// Packets copied across trust domains.
    pub domain_copies: u64,
    /// Flow-cache hits and misses.
    pub flow_cache_hits: u64,
    /// Flow-cache misses.
    pub flow_cache_misses: u64,
    /// Times an NF's TX ring control words were found corrupt.
    pub ring_corrupt: u64,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            port_rx: [0; MAX_PORTS],
            port_rx_bytes: [0; MAX_PORTS],
            port_tx: [0; MAX_PORTS],
            port_tx_bytes: [0; MAX_PORTS],
            nf_delivered: [0; MAX_NFS],
            nf_returned: [0; MAX_NFS],
            nf_verdicts: [[0; 4]; MAX_NFS],
            nf_rejects: [[0; REJECTS]; MAX_NFS],
            chain_pkts: [0; MAX_CHAINS],
            drops: [0; DropReason::COUNT],
            domain_copies: 0,
            flow_cache_hits: 0,
            flow_cache_misses: 0,
            ring_corrupt: 0,
        }
    }
}

fn add_arr<const N: usize>(a: &mut [u64; N], b: &[u64; N]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}

impl Counters {
    /// Adds `other` into `self`.
    pub fn merge(&mut self, o: &Counters) {
        add_arr(&mut self.port_rx, &o.port_rx);
        add_arr(&mut self.port_rx_bytes, &o.port_rx_bytes);
        add_arr(&mut self.port_tx, &o.port_tx);
        add_arr(&mut self.port_tx_bytes, &o.port_tx_bytes);
        add_arr(&mut self.nf_delivered, &o.nf_delivered);
        add_arr(&mut self.nf_returned, &o.nf_returned);
        for (a, b) in self.nf_verdicts.iter_mut().zip(&o.nf_verdicts) {
            add_arr(a, b);
        }
        for (a, b) in self.nf_rejects.iter_mut().zip(&o.nf_rejects) {
            add_arr(a, b);
        }
        add_arr(&mut self.chain_pkts, &o.chain_pkts);
        add_arr(&mut self.drops, &o.drops);
        self.domain_copies += o.domain_copies;
        self.flow_cache_hits += o.flow_cache_hits;
        self.flow_cache_misses += o.flow_cache_misses;
        self.ring_corrupt += o.ring_corrupt;
    }

    /// Total received.
    pub fn received(&self) -> u64 {
        self.port_rx.iter().sum()
    }

    /// Total transmitted.
    pub fn transmitted(&self) -> u64 {
        self.port_tx.iter().sum()
    }

    /// Total dropped.
    pub fn dropped(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Packets held by NFs (delivered and not yet taken back).
    pub fn in_flight(&self) -> i128 {
        let d: u64 = self.nf_delivered.iter().sum();
        let r: u64 = self.nf_returned.iter().sum();
        i128::from(d) - i128::from(r)
    }
}

/// Per-port figures in a report.
#[derive(Debug, Clone, Serialize)]
pub struct PortReport {
    /// Port name.
    pub name: String,
    /// Packets received.
    pub rx: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets transmitted.
    pub tx: u64,
    /// Bytes transmitted.
    pub tx_bytes: u64,
    /// DPDK's own counters: packets the device dropped (queue full).
    pub dev_imissed: u64,
    /// DPDK: RX mbuf allocation failures.
    pub dev_rx_nombuf: u64,
}

/// Per-NF figures.
#[derive(Debug, Clone, Serialize)]
pub struct NfReport {
    /// Instance name.
    pub name: String,
    /// Service.
    pub service: String,
    /// Domain.
    pub domain: String,
    /// Core's view: pending, attached, detached, quarantined, dead.
    pub state: String,
    /// NF process id as the NF wrote it.
    pub pid: u32,
    /// Delivered to it.
    pub delivered: u64,
    /// Taken back from it.
    pub returned: u64,
    /// Held by it now.
    pub held: i128,
    /// Buffers the core took back from it because it detached, died or was quarantined
    /// (cumulative over the run, restarts included).
    pub reclaimed: u64,
    /// Verdicts: next, service, out, drop.
    pub verdicts: [u64; 4],
    /// Rejected descriptors by reason (only nonzero ones).
    pub rejects: std::collections::BTreeMap<String, u64>,
    /// Occupancy of its RX rings (delivered, not yet consumed): the saturation signal.
    pub rx_ring_occupancy: u32,
}

/// A stats snapshot as served on the control socket and printed at exit.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Snapshot epoch.
    pub epoch: u64,
    /// Whether all workers published the same epoch (a consistent instant).
    pub consistent: bool,
    /// Seconds since the ports started.
    pub uptime_s: f64,
    /// Total received.
    pub received: u64,
    /// Total transmitted.
    pub transmitted: u64,
    /// Total dropped.
    pub dropped: u64,
    /// Held by NFs.
    pub in_flight: i128,
    /// Buffers whose ownership entry names an NF (independent count of `in_flight`).
    pub owned_by_nfs: u64,
    /// `received == transmitted + dropped + in_flight` and `in_flight == owned_by_nfs`.
    pub accounting_ok: bool,
    /// Drops by reason.
    pub drops: std::collections::BTreeMap<String, u64>,
    /// Per port.
    pub ports: Vec<PortReport>,
    /// Per NF.
    pub nfs: Vec<NfReport>,
    /// Packets per chain.
    pub chains: std::collections::BTreeMap<String, u64>,
    /// Packets copied across trust domains.
    pub domain_copies: u64,
    /// Flow cache hits.
    pub flow_cache_hits: u64,
    /// Flow cache misses.
    pub flow_cache_misses: u64,
    /// NF TX rings found with corrupt indices.
    pub ring_corrupt: u64,
    /// Buffers each NF still held when the core stopped (then reclaimed).
    pub held_at_shutdown: std::collections::BTreeMap<String, i128>,
    /// Every domain pool full again after shutdown (final report only).
    pub pools_full: Option<bool>,
}
