//! Counters: per port, NF, chain, verdict, drop reason and reject reason.
//!
//! Each worker keeps plain `u64` counters in private memory (no atomics, no sharing on the hot
//! path) and copies them into its shared [`Snapshot`] slot when the control thread asks for a
//! snapshot (an epoch number). All workers publish the same epoch at a loop boundary and wait
//! for each other briefly, so the summed snapshot is taken at one consistent instant and the
//! accounting identity `received = transmitted + dropped + in flight` holds at every read.
//!
//! The [`Report`] built from them, the drop reasons and the verdict indices are defined in
//! `netvm_api::report` (re-exported here), so that clients read reports without DPDK.

use netvm_shm::RejectReason;

use crate::config::{MAX_NFS, MAX_PORTS};

pub use netvm_api::report::{
    verdict_idx, DropReason, NfReport, NshDrop, PathReport, PortReport, Report, WorkerReport,
};

/// Most chains (including retired versions) one run can number.
pub const MAX_CHAINS: usize = 256;

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
    /// Deliveries to each NF dropped because it held its whole quota.
    pub nf_quota_drops: [u64; MAX_NFS],
    /// Verdicts per NF (see [`verdict_idx`]).
    pub nf_verdicts: [[u64; verdict_idx::COUNT]; MAX_NFS],
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
    /// Frames this worker handed to another worker (TX queue owner, RX steering).
    pub handed_off: u64,
    /// Frames this worker took over from another worker.
    pub taken_over: u64,
    /// TSC cycles of rounds that moved anything (received, took back from an NF, took over).
    pub busy_cycles: u64,
    /// Per chain id: frames sent to a peer with NSH.
    pub path_encap: [u64; MAX_CHAINS],
    /// Per chain id: NSH arrivals accepted and resumed.
    pub path_decap: [u64; MAX_CHAINS],
    /// Per chain id: NSH drops attributed to the chain's path, by [`NshDrop`].
    pub path_drops: [[u64; NshDrop::COUNT]; MAX_CHAINS],
    /// Every NSH drop by reason (attributed to a path or not).
    pub nsh_drops: [u64; NshDrop::COUNT],
    /// Per virtio NF: frames its guest's receive queue refused (dropped as `ring_full`).
    pub vio_full: [u64; MAX_NFS],
    /// Per virtio NF: frames from its guest for flows never delivered to it.
    pub vio_unknown: [u64; MAX_NFS],
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
            nf_quota_drops: [0; MAX_NFS],
            nf_verdicts: [[0; verdict_idx::COUNT]; MAX_NFS],
            nf_rejects: [[0; REJECTS]; MAX_NFS],
            chain_pkts: [0; MAX_CHAINS],
            drops: [0; DropReason::COUNT],
            domain_copies: 0,
            flow_cache_hits: 0,
            flow_cache_misses: 0,
            ring_corrupt: 0,
            handed_off: 0,
            taken_over: 0,
            busy_cycles: 0,
            path_encap: [0; MAX_CHAINS],
            path_decap: [0; MAX_CHAINS],
            path_drops: [[0; NshDrop::COUNT]; MAX_CHAINS],
            nsh_drops: [0; NshDrop::COUNT],
            vio_full: [0; MAX_NFS],
            vio_unknown: [0; MAX_NFS],
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
        add_arr(&mut self.nf_quota_drops, &o.nf_quota_drops);
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
        self.handed_off += o.handed_off;
        self.taken_over += o.taken_over;
        self.busy_cycles += o.busy_cycles;
        add_arr(&mut self.path_encap, &o.path_encap);
        add_arr(&mut self.path_decap, &o.path_decap);
        for (a, b) in self.path_drops.iter_mut().zip(&o.path_drops) {
            add_arr(a, b);
        }
        add_arr(&mut self.nsh_drops, &o.nsh_drops);
        add_arr(&mut self.vio_full, &o.vio_full);
        add_arr(&mut self.vio_unknown, &o.vio_unknown);
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

    /// Packets held by NFs (delivered and not yet taken back) or on their way from one
    /// worker to another (handed off, not yet taken over). Summed over all workers.
    pub fn in_flight(&self) -> i128 {
        let d: u64 = self.nf_delivered.iter().sum();
        let r: u64 = self.nf_returned.iter().sum();
        i128::from(d) - i128::from(r) + i128::from(self.handed_off) - i128::from(self.taken_over)
    }
}
