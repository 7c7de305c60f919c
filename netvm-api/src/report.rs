//! The stats report: what `{"cmd":"stats"}` answers and what the core prints when it exits.
//!
//! The core fills a [`Report`] from its workers' counters at one consistent instant; the
//! manager reads it back. Every field has a default and unknown fields are ignored, so a
//! manager and a core of neighbouring versions still understand each other.
//!
//! The maps are keyed by stable names: [`DropReason::name`] for `drops`, the NF's name for
//! `held_at_shutdown`, the chain's name for `chains`, and `netvm_shm::RejectReason::name` for an
//! NF's `rejects`. [`NfReport::verdicts`] is indexed by [`verdict_idx`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Why the core dropped a packet; the index of its counter and its name in [`Report::drops`].
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
    /// A frame larger than its domain's buffers (it arrived in several segments): dropped
    /// whole at RX, never truncated.
    MultiSegment,
    /// The chain it belonged to was removed while it was in flight.
    ChainRemoved,
    /// The NF already held its whole buffer quota.
    NfQuota,
    /// The NF had corrupted its RX ring's consumer index (it is being quarantined).
    NfRingCorrupt,
    /// Crossing into a domain whose buffers are smaller than the frame (never truncated).
    FrameTooBig,
    /// NSH: a frame from a peer with an invalid or unknown service path header, or one that
    /// could not be encapsulated for a peer (reasons in [`Report::nsh_drops`]).
    Nsh,
    /// A frame a virtio NF's guest sent for a flow the core never delivered to that NF (a
    /// frame the guest made up): it enters no chain.
    VirtioUnknownFlow,
    /// Dropped on entering its chain because a later NF of the chain was behind (chain
    /// `backpressure`): the first NF does not spend work on a frame the congested NF would drop.
    Backpressure,
}

impl DropReason {
    /// Number of reasons.
    pub const COUNT: usize = 17;
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
        Self::NfQuota,
        Self::NfRingCorrupt,
        Self::FrameTooBig,
        Self::Nsh,
        Self::VirtioUnknownFlow,
        Self::Backpressure,
    ];

    /// Stable name, the key in [`Report::drops`].
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
            Self::NfQuota => "nf_quota",
            Self::NfRingCorrupt => "nf_ring_corrupt",
            Self::FrameTooBig => "frame_too_big",
            Self::Nsh => "nsh",
            Self::VirtioUnknownFlow => "virtio_unknown_flow",
            Self::Backpressure => "backpressure",
        }
    }

    /// The reason named `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }
}

/// Why an NSH frame was dropped (each also counts as [`DropReason::Nsh`]); the index of its
/// counter and its name in [`Report::nsh_drops`] and [`PathReport::drops`].
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NshDrop {
    /// Too short for the NSH it states and an inner Ethernet header.
    Truncated = 0,
    /// NSH version not 0.
    BadVersion,
    /// OAM packet (O bit), not processed.
    Oam,
    /// MD type not 1 or 2.
    BadMdType,
    /// Length field inconsistent with the MD type, its TLVs or the frame.
    BadLength,
    /// Next protocol not Ethernet.
    BadNextProtocol,
    /// TTL 0 or 1 on arrival (nothing left after this hop's decrement).
    TtlExpired,
    /// No chain here has this service path identifier.
    UnknownPath,
    /// Service index beyond the chain's last hop (or before its first).
    BadSi,
    /// The service index names a hop another instance runs.
    SiNotLocal,
    /// Leaving: the frame's headroom is too small for the outer Ethernet and NSH headers.
    NoHeadroom,
}

impl NshDrop {
    /// Number of reasons.
    pub const COUNT: usize = 11;
    /// All reasons in index order.
    pub const ALL: [NshDrop; Self::COUNT] = [
        Self::Truncated,
        Self::BadVersion,
        Self::Oam,
        Self::BadMdType,
        Self::BadLength,
        Self::BadNextProtocol,
        Self::TtlExpired,
        Self::UnknownPath,
        Self::BadSi,
        Self::SiNotLocal,
        Self::NoHeadroom,
    ];

    /// Stable name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Truncated => "truncated",
            Self::BadVersion => "bad_version",
            Self::Oam => "oam",
            Self::BadMdType => "bad_md_type",
            Self::BadLength => "bad_length",
            Self::BadNextProtocol => "bad_next_protocol",
            Self::TtlExpired => "ttl_expired",
            Self::UnknownPath => "unknown_path",
            Self::BadSi => "bad_si",
            Self::SiNotLocal => "si_not_local",
            Self::NoHeadroom => "no_headroom",
        }
    }
}

/// Per service path figures (chains with a `path_id`), in a report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PathReport {
    /// The NSH service path identifier.
    pub path_id: u32,
    /// The chain's name.
    pub chain: String,
    /// Frames sent to a peer with NSH (this instance's hops done, the next one remote).
    pub encapsulated: u64,
    /// Frames that arrived with this path's NSH, were accepted and resumed the chain here.
    pub decapsulated: u64,
    /// NSH drops attributed to this path, by [`NshDrop::name`] (only nonzero ones).
    pub drops: BTreeMap<String, u64>,
}

/// Indices of [`NfReport::verdicts`] (and of the core's verdict counters).
pub mod verdict_idx {
    /// NEXT.
    pub const NEXT: usize = 0;
    /// SERVICE(id).
    pub const SERVICE: usize = 1;
    /// OUT(port).
    pub const OUT: usize = 2;
    /// DROP.
    pub const DROP: usize = 3;
    /// Number of verdict counters.
    pub const COUNT: usize = 4;
}

/// Per-port figures in a report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
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
    /// Verdicts: next, service, out, drop (see [`verdict_idx`]).
    pub verdicts: [u64; verdict_idx::COUNT],
    /// Rejected descriptors by reason (only nonzero ones).
    pub rejects: BTreeMap<String, u64>,
    /// Occupancy of its RX rings (delivered, not yet consumed): the saturation signal.
    pub rx_ring_occupancy: u32,
    /// Most buffers it may hold at once.
    pub quota: u32,
    /// Deliveries dropped because it held its whole quota (`nf_quota`).
    pub quota_drops: u64,
    /// Why the core last quarantined it (`rejects`, `tx_ring_corrupt`, `rx_ring_corrupt`,
    /// `hoarding`); absent if never.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantined_for: Option<String>,
    /// Delivered to it by each worker (index = worker), as last published by the workers.
    #[serde(default)]
    pub delivered_by_worker: Vec<u64>,
    /// The NF's own figure of TSC cycles spent on bursts with packets, per packet it received
    /// (its slot counters `busy_cycles` ÷ `rx_pkts`; NF-written, informational; absent before
    /// its first packet or from an NF that does not measure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cycles_per_packet: Option<u64>,
    /// For a virtio NF (an unmodified guest behind two vhost-user ports): its queues and
    /// counters. Its `delivered` is what the core transmitted into the guest, `returned` what
    /// the guest sent back (both counted on its ports too), `held` is 0: a frame in the guest
    /// has left the core's accounting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub virtio: Option<VirtioReport>,
}

/// Per-worker figures: how it polls and how much it slept (adaptive polling).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkerReport {
    /// CPU the worker is pinned to.
    pub cpu: usize,
    /// `busy` or `adaptive` (the config's `poll`).
    pub poll: String,
    /// Sleeps the worker took because it found nothing to do (always 0 when busy).
    pub sleeps: u64,
    /// Time it spent in those sleeps, ns (measured).
    pub slept_ns: u64,
}

/// The vhost side of a virtio NF.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VirtioReport {
    /// The port the core transmits into the guest on.
    pub to_guest_port: String,
    /// The port the core receives the guest's frames from.
    pub from_guest_port: String,
    /// Both vhost-user links are up (the guest's driver is running).
    pub link_up: bool,
    /// Frames the guest's receive queue refused (it had no free buffer: the guest is too
    /// slow or does not read), dropped as `ring_full` for this NF.
    pub queue_full: u64,
    /// Frames from the guest for a flow the core never delivered to it, dropped as
    /// `virtio_unknown_flow`.
    pub unknown_flow: u64,
    /// Free buffers the guest has posted on its receive queue right now (0 with the link
    /// up: saturated, or a guest that does not read); absent when not obtainable.
    pub guest_rx_free: Option<u32>,
    /// Frames the guest has queued for the core and the core has not yet taken.
    pub guest_tx_pending: Option<u32>,
}

/// A stats snapshot as served on the control socket and printed at exit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
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
    /// Held by NFs, plus frames on their way between workers (`in_handoff`).
    pub in_flight: i128,
    /// Frames handed from one worker to another and not yet taken over (part of `in_flight`).
    pub in_handoff: i128,
    /// Frames handed from one worker to another so far (TX queue owners, RX steering).
    pub handoffs: u64,
    /// TSC cycles the workers spent in rounds that moved anything (all workers together).
    pub worker_busy_cycles: u64,
    /// `worker_busy_cycles` ÷ `received`: the switch's cost per packet received, over every
    /// hop of its chain (None before the first packet).
    pub worker_cycles_per_packet: Option<u64>,
    /// Buffers whose ownership entry names an NF (independent count of `in_flight`).
    pub owned_by_nfs: u64,
    /// `received == transmitted + dropped + in_flight` and
    /// `in_flight == owned_by_nfs + in_handoff`.
    pub accounting_ok: bool,
    /// Drops by reason ([`DropReason::name`]).
    pub drops: BTreeMap<String, u64>,
    /// Per port.
    pub ports: Vec<PortReport>,
    /// Per NF.
    pub nfs: Vec<NfReport>,
    /// Packets per chain.
    pub chains: BTreeMap<String, u64>,
    /// Packets copied across trust domains.
    pub domain_copies: u64,
    /// Flow cache hits.
    pub flow_cache_hits: u64,
    /// Flow cache misses.
    pub flow_cache_misses: u64,
    /// NF TX rings found with corrupt indices.
    pub ring_corrupt: u64,
    /// Buffers each NF still held when the core stopped (then reclaimed).
    pub held_at_shutdown: BTreeMap<String, i128>,
    /// Every domain pool full again after shutdown (final report only).
    pub pools_full: Option<bool>,
    /// Per worker, in config order (not part of the accounting identity).
    pub workers: Vec<WorkerReport>,
    /// Per service path (chains with a `path_id`).
    pub paths: Vec<PathReport>,
    /// Every NSH drop by reason ([`NshDrop::name`]; only nonzero ones), those no path can be
    /// named for (bad header, unknown path) included. Their sum is `drops["nsh"]`.
    pub nsh_drops: BTreeMap<String, u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        Report {
            epoch: 3,
            consistent: true,
            uptime_s: 2.5,
            received: 10,
            transmitted: 6,
            dropped: 4,
            in_flight: 0,
            accounting_ok: true,
            drops: [(DropReason::NfVerdict.name().to_string(), 4)].into(),
            ports: vec![PortReport {
                name: "in".into(),
                rx: 10,
                rx_bytes: 640,
                ..PortReport::default()
            }],
            nfs: vec![NfReport {
                name: "fw".into(),
                held: -1,
                verdicts: [6, 0, 0, 4],
                ..NfReport::default()
            }],
            held_at_shutdown: [("fw".to_string(), -2)].into(),
            pools_full: Some(true),
            workers: vec![WorkerReport {
                cpu: 1,
                poll: "adaptive".into(),
                sleeps: 5,
                slept_ns: 1_250_000,
            }],
            ..Report::default()
        }
    }

    #[test]
    fn report_round_trips_through_text_and_value() {
        let r = sample();
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<Report>(&text).unwrap(), r);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(serde_json::from_value::<Report>(v).unwrap(), r);
    }

    #[test]
    fn unknown_fields_are_ignored_and_missing_ones_defaulted() {
        let r: Report = serde_json::from_str(
            r#"{"epoch": 7, "something_new": {"x": 1}, "nfs": [{"name": "a", "new": 2}]}"#,
        )
        .unwrap();
        assert_eq!(r.epoch, 7);
        assert_eq!(r.nfs[0].name, "a");
        assert_eq!(r.pools_full, None);
    }

    #[test]
    fn drop_names_are_unique_and_in_index_order() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
            assert_eq!(DropReason::from_name(r.name()), Some(*r));
        }
        assert_eq!(DropReason::from_name("nosuch"), None);
        for (i, r) in NshDrop::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
            assert_eq!(
                NshDrop::ALL.iter().filter(|o| o.name() == r.name()).count(),
                1
            );
        }
    }
}
