//! The netvm configuration: domains, ports, NFs, chains and workers.
//!
//! One JSON document describes an instance; `netvm-core` uses the data-plane parts and
//! `netvm-manager` the rest (NF programs, CPUs, VM resources). Unknown fields are errors
//! (`deny_unknown_fields`), and [`Config::validate`] rejects dangling references, duplicate
//! names, CPU overlaps and impossible sizes with the JSON path of the offending value.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A whole instance.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Instance name: names the control socket and region files.
    #[serde(default = "default_name")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9_-]{1,32}$"))]
    pub name: String,
    /// Directory of region files (default `/dev/hugepages`; any directory works, a
    /// non-hugetlbfs one with a warning).
    #[serde(default)]
    pub region_dir: Option<PathBuf>,
    /// Directory for the control socket and logs (default `/run/netvm/<name>`).
    #[serde(default)]
    pub run_dir: Option<PathBuf>,
    /// Data-plane workers, each pinned to its CPU.
    #[serde(default = "default_workers")]
    #[schemars(length(min = 1, max = 8))]
    pub workers: Vec<WorkerConfig>,
    /// Trust domains: each is one shared-memory region.
    #[schemars(length(min = 1, max = 16))]
    pub domains: Vec<DomainConfig>,
    /// DPDK ports.
    #[schemars(length(min = 1, max = 32))]
    pub ports: Vec<PortConfig>,
    /// Network functions.
    #[serde(default)]
    #[schemars(length(max = 254))]
    pub nfs: Vec<NfConfig>,
    /// Chains, matched in order; the first match wins; unmatched packets are dropped (counted).
    #[serde(default)]
    pub chains: Vec<ChainConfig>,
    /// EAL options.
    #[serde(default)]
    pub eal: EalOptions,
    /// Descriptors per NF ring (power of two).
    #[serde(default = "default_ring_capacity")]
    #[schemars(range(min = 64, max = 65536))]
    pub ring_capacity: u32,
    /// Quarantine an NF (deliver nothing more to it, take its buffers back) once it has
    /// returned more than this many rejected descriptors; unset: never. (A corrupt ring index
    /// and hoarding quarantine an NF whatever this says.)
    #[serde(default)]
    pub quarantine_after: Option<u64>,
    /// An NF that holds its whole buffer quota and returns nothing for this many milliseconds
    /// is quarantined (hoarding).
    #[serde(default = "default_hoard_timeout_ms")]
    #[schemars(range(min = 1))]
    pub hoard_timeout_ms: u64,
    /// After a quarantine has taken an NF's buffers back, reserve its slot again so that a
    /// (restarted) NF can attach by itself. Default false: only the control socket's `attach`
    /// (an operator) re-opens a quarantined NF.
    #[serde(default)]
    pub quarantine_reattach: bool,
    /// How the workers poll: `"busy"` (default) spins at 100% of their CPUs whatever the
    /// load, for the lowest latency; `"adaptive"` backs off when a worker finds nothing to
    /// do — `pause` instructions after 10 µs without traffic, then, after 100 µs, sleeps
    /// growing from 10 µs to at most `poll_max_sleep_us` — and goes back to busy polling on
    /// the first packet or NF return. Under steady load (work at least every 100 µs) it never
    /// sleeps; a packet or an NF's return arriving while it sleeps waits at most
    /// `poll_max_sleep_us`.
    #[serde(default)]
    pub poll: Poll,
    /// With `"poll": "adaptive"`: the longest sleep of an idle worker in µs, 10 ..= 10000
    /// (default 1000) — the bound on the delay before it notices new work. Shorter sleeps
    /// wake it more often: each wake-up costs CPU (a few µs on bare metal, about 20 µs in a
    /// VM), so an idle worker uses about that cost / this bound of its CPU (measured in a VM:
    /// 250 → 7%, 500 → 4%, 1000 → 2%; `benches/idle_bench.sh`).
    #[serde(default)]
    #[schemars(range(min = 10, max = 10000))]
    pub poll_max_sleep_us: Option<u32>,
    /// NF entries kept free for NFs added while the instance runs (`netvm-manager nf add`,
    /// the control socket's `nf_add`): each is an index in the core's tables, counters and
    /// rings of every worker, sized at start. Its control region is made (in the new NF's
    /// domain) only when an NF takes it, and removed when that NF is removed. `nfs` plus
    /// `spare_nfs` is at most 254.
    #[serde(default = "default_spare_nfs")]
    #[schemars(range(max = 254))]
    pub spare_nfs: u32,
}

/// Default [`Config::poll_max_sleep_us`].
pub const DEFAULT_POLL_MAX_SLEEP_US: u32 = 1000;

/// How the workers poll their ports and NF rings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Poll {
    /// Spin at 100% CPU all the time (lowest latency).
    #[default]
    Busy,
    /// Back off to pauses and short sleeps (at most `poll_max_sleep_us`) when idle; busy
    /// under load.
    Adaptive,
}

impl Poll {
    /// The config spelling.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Busy => "busy",
            Self::Adaptive => "adaptive",
        }
    }
}

// By hand so that a bad value names the field (serde's own message says only "unknown
// variant" with a line and column).
impl<'de> Deserialize<'de> for Poll {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "busy" => Ok(Self::Busy),
            "adaptive" => Ok(Self::Adaptive),
            _ => Err(serde::de::Error::custom(format!(
                "poll: {s:?} is not \"busy\" or \"adaptive\""
            ))),
        }
    }
}

fn default_spare_nfs() -> u32 {
    4
}

fn default_hoard_timeout_ms() -> u64 {
    2000
}

fn default_name() -> String {
    "netvm".into()
}
fn default_workers() -> Vec<WorkerConfig> {
    vec![WorkerConfig { cpu: 0 }]
}
fn default_ring_capacity() -> u32 {
    1024
}

impl Config {
    /// The worker that polls RX queue `q` of port `p` (see `PortConfig::rx_queue_workers`).
    #[must_use]
    pub fn rx_queue_worker(&self, p: usize, q: usize) -> usize {
        let n = self.workers.len().max(1);
        self.ports
            .get(p)
            .and_then(|c| c.rx_queue_workers.as_ref())
            .and_then(|m| m.get(q).copied())
            .filter(|&w| w < n)
            .unwrap_or((p + q) % n)
    }

    /// The longest sleep of an idle adaptive worker, µs.
    #[must_use]
    pub fn poll_max_sleep_us(&self) -> u32 {
        self.poll_max_sleep_us.unwrap_or(DEFAULT_POLL_MAX_SLEEP_US)
    }

    /// The buffer quota of NF `nf`: its configured `quota`, else `ring_capacity` × (workers +
    /// 1) — what its RX rings (one per worker) and its TX ring can hold.
    #[must_use]
    pub fn nf_quota(&self, nf: &NfConfig) -> u32 {
        nf.quota.unwrap_or_else(|| self.default_nf_quota())
    }

    /// The buffer quota of an NF without its own: `ring_capacity` × (workers + 1) (NFs added
    /// at run time get this one).
    #[must_use]
    pub fn default_nf_quota(&self) -> u32 {
        let rings = u32::try_from(self.workers.len())
            .unwrap_or(u32::MAX)
            .saturating_add(1);
        self.ring_capacity.saturating_mul(rings)
    }
}

/// One worker.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkerConfig {
    /// CPU the worker thread is pinned to.
    pub cpu: usize,
}

/// A trust domain.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainConfig {
    /// Name (also in the region header).
    pub name: String,
    /// Packet buffers in the domain's region.
    #[serde(default = "default_buffers")]
    #[schemars(range(min = 64, max = 1048576))]
    pub buffers: u32,
    /// NUMA node the domain lives on: its region, its NFs' control regions and its DPDK
    /// pool are allocated there (`mbind` MPOL_BIND; a node short of free hugepages is an error
    /// at start), and `check` requires the workers polling its ports and its NFs' `cpu` to be
    /// CPUs of that node. Unset: no placement, no check.
    #[serde(default)]
    pub numa_node: Option<u32>,
    /// Largest frame the domain carries, bytes (Ethernet header included, no FCS): its
    /// buffers' data room, and the largest frame its ports receive. Frames up to this size
    /// travel whole; a larger one is dropped at RX (`multi_segment`), never truncated.
    /// 1518 ..= 16384; jumbo frames: e.g. 9216.
    #[serde(default = "default_buffer_size")]
    #[schemars(range(min = 1518, max = 16384))]
    pub buffer_size: u32,
}

fn default_buffers() -> u32 {
    8192
}

fn default_buffer_size() -> u32 {
    crate::buffer::DEFAULT_DATA_ROOM
}

impl DomainConfig {
    /// Bytes per packet buffer in this domain's region (headroom + data room, rounded to 64).
    #[must_use]
    pub fn buf_size(&self) -> u32 {
        crate::buffer::buf_size(self.buffer_size)
    }
}

/// A DPDK port.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PortConfig {
    /// Name used by chains.
    pub name: String,
    /// DPDK device string: a vdev (`net_pcap0,rx_pcap=in.pcap`) or a PCI address.
    pub device: String,
    /// Domain whose region receives this port's packets.
    pub domain: String,
    /// Receive at most this many packets per second from the port (a token bucket in the
    /// worker that polls it). Meant for generator-like sources (`net_pcap` with
    /// `infinite_rx=1`, `net_null`), which then simply produce at that rate; on a real NIC the
    /// excess waits in, and is dropped by, the NIC (`dev_imissed`). Unset: as fast as it comes.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub rx_rate_pps: Option<u64>,
    /// RX queues to open (1 ..= 64). Unset: one per worker, fewer if the device offers fewer.
    /// With more than one queue the core enables RSS with a symmetric key where the device
    /// offers RSS on IP, so both directions of a flow land on one queue; where it does not
    /// (most virtual devices), the core's own symmetric flow hash picks the worker of each IP
    /// frame and the queue's poller hands it over (non-IP frames stay with the poller).
    /// With `rx_rate_pps`, each queue gets an equal share of the rate.
    #[serde(default)]
    #[schemars(range(min = 1, max = 64))]
    pub rx_queues: Option<u16>,
    /// The worker (index into `workers`) that polls each RX queue, one entry per queue.
    /// Unset: queue `q` of port `p` goes to worker `(p + q) % workers`.
    #[serde(default)]
    pub rx_queue_workers: Option<Vec<usize>>,
    /// For a port that links this instance to a peer instance (a chain hop names it in
    /// `at`): the MAC address of the peer's port, the outer destination of the NSH frames
    /// sent here (`02:00:00:00:00:02`). Unset: broadcast (fine on a point-to-point link).
    #[serde(default)]
    pub peer_mac: Option<String>,
}

/// Where an NF runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NfKind {
    /// A host process mapping the region file.
    #[default]
    Process,
    /// A QEMU guest seeing the region as an ivshmem BAR.
    Vm,
    /// An unmodified QEMU guest with two plain virtio-net NICs, served by the core through
    /// vhost-user (`net_vhost`): the core copies each frame into the guest's memory on the
    /// NF's to-guest NIC and takes what the guest sends on its other NIC back into the chain
    /// at the next service. Nothing of any domain's region is mapped into the guest. `program`
    /// names the guest image's mode: `bridge` (default: the kernel bridges the two NICs) or
    /// `deaf` (the NICs stay down: a guest that never reads its queue).
    Virtio,
}

/// Which vhost-user socket of a virtio NF ([`Config::vhost_socket`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VhostDir {
    /// The NIC the core transmits on (the guest receives).
    ToGuest,
    /// The NIC the core receives from (the guest transmits).
    FromGuest,
}

/// Guest modes of a virtio NF (`program` of a `kind: "virtio"` NF).
pub const VIRTIO_MODES: &[&str] = &["bridge", "deaf"];

/// Guest resources.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VmConfig {
    /// Guest memory in MiB.
    #[serde(default = "default_vm_mem")]
    #[schemars(range(min = 64, max = 65536))]
    pub memory_mb: u32,
    /// Virtual CPUs.
    #[serde(default = "default_vcpus")]
    #[schemars(range(min = 1, max = 64))]
    pub vcpus: u32,
}

fn default_vm_mem() -> u32 {
    256
}
fn default_vcpus() -> u32 {
    1
}

/// A network function instance.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NfConfig {
    /// Instance name (unique); the NF attaches with it.
    pub name: String,
    /// Service it provides; chains name services, instances of one service share the load.
    pub service: String,
    /// Process or VM.
    #[serde(default)]
    pub kind: NfKind,
    /// Domain whose region the NF maps.
    pub domain: String,
    /// Program to run (manager only).
    #[serde(default)]
    pub program: Option<String>,
    /// Its arguments (manager only).
    #[serde(default)]
    pub args: Vec<String>,
    /// CPU to pin the NF to (manager only).
    #[serde(default)]
    pub cpu: Option<usize>,
    /// Guest resources for `kind: vm`.
    #[serde(default)]
    pub vm: Option<VmConfig>,
    /// Most buffers of its domain this NF may hold at once (in its rings, being processed, or
    /// kept); deliveries beyond it are dropped as `nf_quota` for this NF's chains only.
    /// Default: what its rings can hold, `ring_capacity` × (workers + 1).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub quota: Option<u32>,
}

/// How a chain spreads packets over the instances of a service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// Symmetric 5-tuple hash: a flow (both directions) always meets the same instance.
    #[default]
    FlowHash,
    /// NetVM's state-based balancing, at every service of the chain that has several
    /// instances: a flow new to a service goes to the attached instance whose RX ring holds
    /// the fewest packets (ties: the first instance in the NF list), and stays on that
    /// instance while it is attached — across chain changes (`set_chains`) too; if the
    /// instance goes away the flow is placed anew. A flow is the core's own symmetric 5-tuple
    /// hash (both directions meet the same instance); flows with equal hashes share their
    /// placement (every non-IP frame included). Placements live in one table of 65536
    /// (flow, service) entries, 8 per set: a flow placed in a full set evicts one entry, whose
    /// flow is placed anew on its next packet (the only time a flow can move while its
    /// instance stays attached).
    LeastLoaded,
}

/// Packet match of a chain; absent fields match anything.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    /// Input port name.
    #[serde(default)]
    pub in_port: Option<String>,
    /// Ethertype after the VLAN tags (e.g. 2048 for IPv4, 34525 for IPv6).
    #[serde(default)]
    pub ethertype: Option<u16>,
    /// VLAN ID (0-4095) of the outer VLAN tag; untagged frames do not match.
    #[serde(default)]
    pub vlan: Option<u16>,
    /// VLAN ID (0-4095) of the inner tag of a QinQ frame; frames with fewer than two tags
    /// do not match.
    #[serde(default)]
    pub inner_vlan: Option<u16>,
    /// Source prefix, IPv4 (`10.0.0.0/8`) or IPv6 (`2001:db8::/32`); matches only packets
    /// of its family.
    #[serde(default)]
    pub src: Option<String>,
    /// Destination prefix, IPv4 or IPv6; matches only packets of its family.
    #[serde(default)]
    pub dst: Option<String>,
    /// IP protocol: `tcp`, `udp`, `icmp`, `icmpv6` or a number; for IPv6 the upper-layer
    /// protocol after the extension headers.
    #[serde(default)]
    pub proto: Option<String>,
    /// L4 source port or range, `80` or `8000-8080` (TCP/UDP; never matches a fragment).
    #[serde(default)]
    pub src_port: Option<String>,
    /// L4 destination port or range, `80` or `8000-8080` (TCP/UDP; never matches a
    /// fragment).
    #[serde(default)]
    pub dst_port: Option<String>,
}

/// A chain: match → services in order → egress.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChainConfig {
    /// Name.
    pub name: String,
    /// What enters the chain.
    #[serde(default, rename = "match")]
    pub matches: MatchConfig,
    /// Service path identifier (NSH SPI, 1 ..= 16777215): needed when a hop runs on a peer
    /// instance; the same number in every instance's declaration of the chain, unique among
    /// this instance's chains.
    #[serde(default)]
    #[schemars(range(min = 1, max = 16777215))]
    pub path_id: Option<u32>,
    /// Services in order (may be empty: port to port). A hop is a service name (an NF of this
    /// instance provides it) or `{"service": S, "at": PORT}`: a service a peer instance runs,
    /// reached through PORT with NSH (SPI = `path_id`, SI = 255 − the hop's position). Every
    /// instance on the path declares the whole chain, its own hops by name and the others'
    /// with `at`.
    #[serde(default)]
    pub services: Vec<Hop>,
    /// Port name the packet leaves by after the last service, or `drop`. Left out when the
    /// last service runs on a peer (the packet leaves this instance before).
    #[serde(default)]
    pub egress: Option<String>,
    /// Further ports an NF of this chain may send to with OUT(port).
    #[serde(default)]
    pub allow_ports: Vec<String>,
    /// How every service of the chain that has several instances picks one for a packet:
    /// `flow_hash` (default) or `least_loaded`.
    #[serde(default)]
    pub balance: Balance,
    /// What happens to a packet whose next service has no attached instance left (crashed,
    /// detached or quarantined NF): `drop` (counted as `nf_unavailable`) or `bypass` (skip
    /// the service). With several instances, packets first fail over to another one.
    #[serde(default)]
    pub failure: Failure,
    /// Backpressure at the chain's entry (default `true`): while a later NF of the chain is
    /// behind (its RX ring from a worker at least half full and, with what waits ahead of it,
    /// all but full — until that worker sees the chain's rings at most ¼ full), that worker
    /// drops new frames for the chain when they enter it (`backpressure`)
    /// instead of handing them to the first NF, which would spend its CPU on frames the
    /// congested NF then drops (`ring_full`). Matters most where NFs share a CPU. A position
    /// is behind only when every attached instance of it is; a chain's entry never waits on
    /// another chain's NF.
    #[serde(default = "yes")]
    pub backpressure: bool,
}

fn yes() -> bool {
    true
}

/// One hop of a chain: a local service, or one a peer instance runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Hop {
    /// A service an NF of this instance provides.
    Local(String),
    /// A service of a peer instance.
    Remote(RemoteHop),
}

/// A hop run by a peer instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoteHop {
    /// The service (as the peer's NFs name it).
    pub service: String,
    /// The port of this instance that leads to the peer.
    pub at: String,
}

impl Hop {
    /// The service name.
    #[must_use]
    pub fn service(&self) -> &str {
        match self {
            Self::Local(s) => s,
            Self::Remote(r) => &r.service,
        }
    }

    /// The port leading to the peer that runs it, for a remote hop.
    #[must_use]
    pub fn at(&self) -> Option<&str> {
        match self {
            Self::Local(_) => None,
            Self::Remote(r) => Some(&r.at),
        }
    }
}

impl From<&str> for Hop {
    fn from(s: &str) -> Self {
        Self::Local(s.to_owned())
    }
}

impl ChainConfig {
    /// Whether the first hop runs here: only then does this instance classify packets into
    /// the chain (the others resume it from NSH).
    #[must_use]
    pub fn classifies_here(&self) -> bool {
        self.services.first().is_none_or(|h| h.at().is_none())
    }

    /// Whether the last hop runs on a peer (the chain has no egress here).
    #[must_use]
    pub fn ends_remote(&self) -> bool {
        self.services.last().is_some_and(|h| h.at().is_some())
    }
}

/// The largest NSH service path identifier (24 bits).
pub const MAX_PATH_ID: u32 = 0x00ff_ffff;

/// Parses a MAC address `02:00:00:00:00:01`.
pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let bad = || format!("{s:?} is not a MAC address like 02:00:00:00:00:01");
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut out {
        let p = parts.next().ok_or_else(bad)?;
        if p.len() != 2 {
            return Err(bad());
        }
        *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok(out)
}

/// A chain's policy for a service with no attached instance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// Drop, counted as `nf_unavailable`.
    #[default]
    Drop,
    /// Skip the service.
    Bypass,
}

/// EAL options.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EalOptions {
    /// Run without hugepages (`--no-huge`) with this many MiB.
    #[serde(default)]
    pub no_huge_mb: Option<u32>,
    /// Extra EAL arguments.
    #[serde(default)]
    pub args: Vec<String>,
}

/// A configuration error: the JSON path of the offending value and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct ConfigError {
    /// JSON path, e.g. `chains[1].services[0]`.
    pub path: String,
    /// What is wrong.
    pub reason: String,
}

fn err(path: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        path: path.into(),
        reason: reason.into(),
    }
}

/// Most ports, domains, NFs, services and chains one instance supports (fits the core's
/// compact per-buffer ownership word and its port bitmaps).
pub const MAX_PORTS: usize = 32;
/// Most domains.
pub const MAX_DOMAINS: usize = 16;
/// Most NF instances.
pub const MAX_NFS: usize = 254;
/// Most services in one chain.
pub const MAX_CHAIN_LEN: usize = 16;
/// Most RX queues per port.
pub const MAX_RX_QUEUES: u16 = 64;

/// Most workers.
pub const MAX_WORKERS: usize = 8;

impl Config {
    /// Parses JSON (syntax and shape only; call [`Config::validate`] next).
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        serde_json::from_str(text).map_err(|e| {
            err(
                format!("line {} column {}", e.line(), e.column()),
                e.to_string(),
            )
        })
    }

    /// Reads and parses a file.
    pub fn from_file(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| err(path.display().to_string(), e.to_string()))?;
        Self::from_json(&text)
    }

    /// Region file directory.
    pub fn region_dir(&self) -> PathBuf {
        self.region_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("/dev/hugepages"))
    }

    /// Control socket and log directory.
    pub fn run_dir(&self) -> PathBuf {
        self.run_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("/run/netvm").join(&self.name))
    }

    /// Control socket path.
    pub fn control_socket(&self) -> PathBuf {
        self.run_dir().join("control.sock")
    }

    /// The vhost-user socket the core serves for virtio NF `nf` (QEMU connects to it).
    pub fn vhost_socket(&self, nf: &str, dir: VhostDir) -> PathBuf {
        let d = match dir {
            VhostDir::ToGuest => "to",
            VhostDir::FromGuest => "from",
        };
        self.run_dir().join(format!("vhost-{nf}-{d}.sock"))
    }

    /// Checks references, uniqueness, sizes and CPU use. Every error names its JSON path.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !valid_name(&self.name) {
            return Err(err(
                "name",
                "must be 1-32 characters of letters, digits, '-', '_'",
            ));
        }
        if self.workers.is_empty() || self.workers.len() > MAX_WORKERS {
            return Err(err("workers", format!("need 1 to {MAX_WORKERS} workers")));
        }
        if !self.ring_capacity.is_power_of_two() || !(64..=65536).contains(&self.ring_capacity) {
            return Err(err("ring_capacity", "must be a power of two in 64..=65536"));
        }
        let ncpu = std::thread::available_parallelism().map_or(1, usize::from);
        let mut cpus: HashMap<usize, String> = HashMap::new();
        for (i, w) in self.workers.iter().enumerate() {
            let p = format!("workers[{i}].cpu");
            if w.cpu >= ncpu.max(1024) {
                return Err(err(p, format!("CPU {} does not exist", w.cpu)));
            }
            if let Some(other) = cpus.insert(w.cpu, p.clone()) {
                return Err(err(p, format!("CPU {} is already used by {other}", w.cpu)));
            }
        }
        if self.domains.is_empty() || self.domains.len() > MAX_DOMAINS {
            return Err(err("domains", format!("need 1 to {MAX_DOMAINS} domains")));
        }
        let mut domains = HashSet::new();
        for (i, d) in self.domains.iter().enumerate() {
            if !valid_name(&d.name) {
                return Err(err(
                    format!("domains[{i}].name"),
                    "must be 1-32 characters of letters, digits, '-', '_'",
                ));
            }
            if !domains.insert(d.name.as_str()) {
                return Err(err(
                    format!("domains[{i}].name"),
                    format!("duplicate domain {:?}", d.name),
                ));
            }
            if !(64..=1 << 20).contains(&d.buffers) {
                return Err(err(
                    format!("domains[{i}].buffers"),
                    "must be between 64 and 1048576",
                ));
            }
            let (lo, hi) = (crate::buffer::MIN_DATA_ROOM, crate::buffer::MAX_DATA_ROOM);
            if !(lo..=hi).contains(&d.buffer_size) {
                return Err(err(
                    format!("domains[{i}].buffer_size"),
                    format!("must be between {lo} and {hi} bytes (the largest frame)"),
                ));
            }
        }
        if self.ports.is_empty() || self.ports.len() > MAX_PORTS {
            return Err(err("ports", format!("need 1 to {MAX_PORTS} ports")));
        }
        let virtio = self.nfs.iter().filter(|n| n.kind == NfKind::Virtio).count();
        if self.ports.len() + 2 * virtio > MAX_PORTS {
            return Err(err(
                "nfs",
                format!(
                    "{} ports and {virtio} virtio NFs (two vhost-user ports each) exceed the \
                     core's {MAX_PORTS} ports",
                    self.ports.len()
                ),
            ));
        }
        for (i, p) in self.ports.iter().enumerate() {
            if p.rx_rate_pps == Some(0) {
                return Err(err(
                    format!("ports[{i}].rx_rate_pps"),
                    "must be at least 1 (leave it out for no limit)",
                ));
            }
            if let Some(q) = p.rx_queues {
                if !(1..=MAX_RX_QUEUES).contains(&q) {
                    return Err(err(
                        format!("ports[{i}].rx_queues"),
                        format!("must be 1 to {MAX_RX_QUEUES}"),
                    ));
                }
            }
            if let Some(map) = &p.rx_queue_workers {
                let want = p.rx_queues.map_or(self.workers.len(), usize::from);
                if map.len() != want {
                    return Err(err(
                        format!("ports[{i}].rx_queue_workers"),
                        format!(
                            "has {} entries for {want} RX queues (one worker per queue)",
                            map.len()
                        ),
                    ));
                }
                for (q, &w) in map.iter().enumerate() {
                    if w >= self.workers.len() {
                        return Err(err(
                            format!("ports[{i}].rx_queue_workers[{q}]"),
                            format!("no worker {w} (there are {})", self.workers.len()),
                        ));
                    }
                }
            }
        }
        let mut ports = HashSet::new();
        for (i, p) in self.ports.iter().enumerate() {
            if !valid_name(&p.name) || p.name == "drop" {
                return Err(err(
                    format!("ports[{i}].name"),
                    "must be 1-32 characters of letters, digits, '-', '_' and not \"drop\"",
                ));
            }
            if !ports.insert(p.name.as_str()) {
                return Err(err(
                    format!("ports[{i}].name"),
                    format!("duplicate port {:?}", p.name),
                ));
            }
            if p.device.trim().is_empty() || p.device.contains('\0') {
                return Err(err(
                    format!("ports[{i}].device"),
                    "empty or invalid DPDK device string",
                ));
            }
            if !domains.contains(p.domain.as_str()) {
                return Err(err(
                    format!("ports[{i}].domain"),
                    format!("no domain named {:?}", p.domain),
                ));
            }
            if let Some(m) = &p.peer_mac {
                parse_mac(m).map_err(|r| err(format!("ports[{i}].peer_mac"), r))?;
            }
        }
        if self.nfs.len() > MAX_NFS {
            return Err(err("nfs", format!("at most {MAX_NFS} NFs")));
        }
        if self.nfs.len() + self.spare_nfs as usize > MAX_NFS {
            return Err(err(
                "spare_nfs",
                format!(
                    "{} NFs and {} spare entries: at most {MAX_NFS} together",
                    self.nfs.len(),
                    self.spare_nfs
                ),
            ));
        }
        let mut nfs = HashSet::new();
        let mut services: HashSet<&str> = HashSet::new();
        for (i, n) in self.nfs.iter().enumerate() {
            if !valid_name(&n.name) {
                return Err(err(
                    format!("nfs[{i}].name"),
                    "must be 1-32 characters of letters, digits, '-', '_'",
                ));
            }
            if !nfs.insert(n.name.as_str()) {
                return Err(err(
                    format!("nfs[{i}].name"),
                    format!("duplicate NF {:?}", n.name),
                ));
            }
            if !valid_name(&n.service) {
                return Err(err(
                    format!("nfs[{i}].service"),
                    "must be 1-32 characters of letters, digits, '-', '_'",
                ));
            }
            if !domains.contains(n.domain.as_str()) {
                return Err(err(
                    format!("nfs[{i}].domain"),
                    format!("no domain named {:?}", n.domain),
                ));
            }
            if let Some(c) = n.cpu {
                let p = format!("nfs[{i}].cpu");
                if c >= ncpu.max(1024) {
                    return Err(err(p, format!("CPU {c} does not exist")));
                }
                if let Some(other) = cpus.get(&c) {
                    if other.starts_with("workers") {
                        return Err(err(p, format!("CPU {c} is already used by {other}")));
                    }
                }
            }
            if n.vm.is_some() && n.kind == NfKind::Process {
                return Err(err(
                    format!("nfs[{i}].vm"),
                    "only NFs of kind \"vm\" or \"virtio\" take guest resources",
                ));
            }
            if n.kind == NfKind::Virtio {
                if let Some(p) = &n.program {
                    if !VIRTIO_MODES.contains(&p.as_str()) {
                        return Err(err(
                            format!("nfs[{i}].program"),
                            format!(
                                "a virtio NF's program is the guest mode, one of {VIRTIO_MODES:?}"
                            ),
                        ));
                    }
                }
                if !n.args.is_empty() {
                    return Err(err(
                        format!("nfs[{i}].args"),
                        "a virtio NF runs an unmodified guest: it takes no arguments",
                    ));
                }
                // sun_path holds 108 bytes with its terminating NUL.
                let sock = self.vhost_socket(&n.name, VhostDir::FromGuest);
                if sock.as_os_str().len() > 107 {
                    return Err(err(
                        "run_dir",
                        format!(
                            "the vhost-user socket {} of virtio NF {:?} is longer than a Unix \
                             socket path may be (107 bytes); use a shorter run_dir",
                            sock.display(),
                            n.name
                        ),
                    ));
                }
            }
            if let Some(vm) = &n.vm {
                if !(64..=65536).contains(&vm.memory_mb) {
                    return Err(err(
                        format!("nfs[{i}].vm.memory_mb"),
                        "must be between 64 and 65536",
                    ));
                }
                if !(1..=64).contains(&vm.vcpus) {
                    return Err(err(
                        format!("nfs[{i}].vm.vcpus"),
                        "must be between 1 and 64",
                    ));
                }
            }
            if let Some(q) = n.quota {
                let bufs = self
                    .domains
                    .iter()
                    .find(|d| d.name == n.domain)
                    .map_or(0, |d| d.buffers);
                if q == 0 || q > bufs {
                    return Err(err(
                        format!("nfs[{i}].quota"),
                        format!("must be between 1 and the domain's {bufs} buffers"),
                    ));
                }
            }
            services.insert(n.service.as_str());
        }
        if self.hoard_timeout_ms == 0 {
            return Err(err("hoard_timeout_ms", "must be at least 1"));
        }
        if let Some(us) = self.poll_max_sleep_us {
            if self.poll != Poll::Adaptive {
                return Err(err(
                    "poll_max_sleep_us",
                    "only adaptive polling sleeps (set \"poll\": \"adaptive\")",
                ));
            }
            if !(10..=10_000).contains(&us) {
                return Err(err(
                    "poll_max_sleep_us",
                    "must be between 10 and 10000 (µs)",
                ));
            }
        }
        let mut chains = HashSet::new();
        let mut path_ids: HashMap<u32, usize> = HashMap::new();
        for (i, c) in self.chains.iter().enumerate() {
            if !valid_name(&c.name) {
                return Err(err(
                    format!("chains[{i}].name"),
                    "must be 1-32 characters of letters, digits, '-', '_'",
                ));
            }
            if !chains.insert(c.name.as_str()) {
                return Err(err(
                    format!("chains[{i}].name"),
                    format!("duplicate chain {:?}", c.name),
                ));
            }
            if c.services.len() > MAX_CHAIN_LEN {
                return Err(err(
                    format!("chains[{i}].services"),
                    format!("at most {MAX_CHAIN_LEN} services"),
                ));
            }
            for (j, h) in c.services.iter().enumerate() {
                match h {
                    Hop::Local(s) => {
                        if !services.contains(s.as_str()) {
                            return Err(err(
                                format!("chains[{i}].services[{j}]"),
                                format!("no NF provides service {s:?}"),
                            ));
                        }
                    }
                    Hop::Remote(r) => {
                        if !valid_name(&r.service) {
                            return Err(err(
                                format!("chains[{i}].services[{j}].service"),
                                "must be 1-32 characters of letters, digits, '-', '_'",
                            ));
                        }
                        if !ports.contains(r.at.as_str()) {
                            return Err(err(
                                format!("chains[{i}].services[{j}].at"),
                                format!("no port named {:?}", r.at),
                            ));
                        }
                        if c.path_id.is_none() {
                            return Err(err(
                                format!("chains[{i}].path_id"),
                                "a chain with a hop on a peer instance needs a path_id (its NSH service path identifier)",
                            ));
                        }
                    }
                }
            }
            if let Some(id) = c.path_id {
                if !(1..=MAX_PATH_ID).contains(&id) {
                    return Err(err(
                        format!("chains[{i}].path_id"),
                        format!("must be 1 to {MAX_PATH_ID} (24 bits)"),
                    ));
                }
                if let Some(other) = path_ids.insert(id, i) {
                    return Err(err(
                        format!("chains[{i}].path_id"),
                        format!("path {id} is already chains[{other}]'s"),
                    ));
                }
            }
            match (&c.egress, c.ends_remote()) {
                (Some(e), false) => {
                    if e != "drop" && !ports.contains(e.as_str()) {
                        return Err(err(
                            format!("chains[{i}].egress"),
                            format!("no port named {e:?} (or \"drop\")"),
                        ));
                    }
                }
                (None, false) => {
                    return Err(err(
                        format!("chains[{i}].egress"),
                        "missing: a port name or \"drop\"",
                    ));
                }
                (Some(_), true) => {
                    return Err(err(
                        format!("chains[{i}].egress"),
                        "the last service runs on a peer instance, so packets leave by its `at` port: leave egress out (the peer's declaration has it)",
                    ));
                }
                (None, true) => {}
            }
            if !c.classifies_here() && !match_is_empty(&c.matches) {
                return Err(err(
                    format!("chains[{i}].match"),
                    "the first service runs on a peer instance, which classifies: this instance only resumes the chain from NSH, so leave match out",
                ));
            }
            for (j, p) in c.allow_ports.iter().enumerate() {
                if !ports.contains(p.as_str()) {
                    return Err(err(
                        format!("chains[{i}].allow_ports[{j}]"),
                        format!("no port named {p:?}"),
                    ));
                }
            }
            let m = &c.matches;
            let mp = |f: &str| format!("chains[{i}].match.{f}");
            if let Some(p) = &m.in_port {
                if !ports.contains(p.as_str()) {
                    return Err(err(mp("in_port"), format!("no port named {p:?}")));
                }
            }
            for (f, v) in [("src", &m.src), ("dst", &m.dst)] {
                if let Some(v) = v {
                    parse_prefix(v).map_err(|r| err(mp(f), r))?;
                }
            }
            if let Some(p) = &m.proto {
                parse_proto(p).map_err(|r| err(mp("proto"), r))?;
            }
            for (f, v) in [("vlan", m.vlan), ("inner_vlan", m.inner_vlan)] {
                if let Some(v) = v {
                    parse_vlan(v).map_err(|r| err(mp(f), r))?;
                }
            }
            for (f, v) in [("src_port", &m.src_port), ("dst_port", &m.dst_port)] {
                if let Some(r) = v {
                    parse_port_range(r).map_err(|e| err(mp(f), e))?;
                }
            }
        }
        Ok(())
    }
}

/// The workers that poll port `port` (index into `cfg.ports`): the owners of its RX queues
/// ([`Config::rx_queue_worker`]). With `rx_queues` unset the core opens one queue per worker
/// (fewer only if the device offers fewer, which the config cannot know), so every worker is
/// counted. This is the one place the config-level rules (the NUMA placement check,
/// [`crate::numa`]) learn the assignment.
#[must_use]
pub fn port_workers(cfg: &Config, port: usize) -> Vec<usize> {
    let n = cfg.workers.len();
    if n == 0 {
        return Vec::new();
    }
    let queues = cfg
        .ports
        .get(port)
        .and_then(|p| p.rx_queues)
        .map_or(n, usize::from);
    let mut w: Vec<usize> = (0..queues).map(|q| cfg.rx_queue_worker(port, q)).collect();
    w.sort_unstable();
    w.dedup();
    w
}

/// Whether a match names nothing (matches every packet).
fn match_is_empty(m: &MatchConfig) -> bool {
    m.in_port.is_none()
        && m.ethertype.is_none()
        && m.vlan.is_none()
        && m.inner_vlan.is_none()
        && m.src.is_none()
        && m.dst.is_none()
        && m.proto.is_none()
        && m.src_port.is_none()
        && m.dst_port.is_none()
}

/// Whether `s` is a valid name of an NF, service, domain, port or chain: 1-32 characters of
/// letters, digits, '-' and '_'.
pub fn valid_name(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Parses an IPv4 (`a.b.c.d/len`, len 0-32) or IPv6 (`2001:db8::/32`, len 0-128) prefix
/// into (address, prefix length); a bare address is a host prefix. Host bits must be zero.
pub fn parse_prefix(s: &str) -> Result<(std::net::IpAddr, u8), String> {
    let v6 = s.contains(':');
    let max: u8 = if v6 { 128 } else { 32 };
    let (a, l) = s
        .split_once('/')
        .unwrap_or((s, if v6 { "128" } else { "32" }));
    let addr: std::net::IpAddr = if v6 {
        a.trim()
            .parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("{s:?} is not an IPv6 prefix like 2001:db8::/32"))?
            .into()
    } else {
        a.trim()
            .parse::<std::net::Ipv4Addr>()
            .map_err(|_| {
                format!("{s:?} is not an IPv4 prefix like 10.0.0.0/8 (or an IPv6 prefix)")
            })?
            .into()
    };
    let len: u8 = l
        .trim()
        .parse()
        .ok()
        .filter(|l| *l <= max)
        .ok_or_else(|| format!("{s:?}: prefix length must be 0-{max}"))?;
    let host_bits = match addr {
        std::net::IpAddr::V4(a) => {
            u32::from(a) & !u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0) != 0
        }
        std::net::IpAddr::V6(a) => {
            u128::from(a) & !u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0) != 0
        }
    };
    if host_bits {
        return Err(format!("{s:?} has host bits set beyond /{len}"));
    }
    Ok((addr, len))
}

/// Checks a VLAN ID (0-4095).
pub fn parse_vlan(v: u16) -> Result<u16, String> {
    if v <= 4095 {
        Ok(v)
    } else {
        Err(format!("VLAN ID {v} is not in 0-4095"))
    }
}

/// Parses `tcp`, `udp`, `icmp`, `icmpv6` or a protocol number.
pub fn parse_proto(s: &str) -> Result<u8, String> {
    match s {
        "tcp" => Ok(6),
        "udp" => Ok(17),
        "icmp" => Ok(1),
        "icmpv6" => Ok(58),
        n => n
            .parse()
            .map_err(|_| format!("{s:?} is not tcp, udp, icmp, icmpv6 or a protocol number 0-255")),
    }
}

/// Parses `80` or `8000-8080`.
pub fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let bad = || format!("{s:?} is not a port or range like 80 or 8000-8080");
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let a: u16 = a.trim().parse().map_err(|_| bad())?;
    let b: u16 = b.trim().parse().map_err(|_| bad())?;
    if a > b {
        return Err(bad());
    }
    Ok((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> serde_json::Value {
        serde_json::json!({
            "domains": [{"name": "trusted", "buffers": 1024}],
            "ports": [{"name": "in", "device": "net_null0", "domain": "trusted"},
                      {"name": "out", "device": "net_null1", "domain": "trusted"}],
            "nfs": [{"name": "fw1", "service": "firewall", "domain": "trusted"}],
            "chains": [{"name": "c", "services": ["firewall"], "egress": "out",
                        "match": {"in_port": "in", "dst": "10.0.0.0/8", "proto": "udp", "dst_port": "53"}}]
        })
    }

    fn check(v: serde_json::Value) -> Result<(), ConfigError> {
        Config::from_json(&v.to_string())?.validate()
    }

    #[test]
    fn good_config_passes() {
        check(base()).unwrap();
    }

    #[test]
    fn virtio_nfs_are_checked() {
        let with = |nf: serde_json::Value| {
            let mut v = base();
            v["nfs"].as_array_mut().unwrap().push(nf);
            v
        };
        let vio = serde_json::json!({"name": "g", "service": "bridge", "kind": "virtio",
                                     "domain": "trusted", "vm": {"memory_mb": 128}});
        check(with(vio.clone())).unwrap();
        let mut bad = vio.clone();
        bad["program"] = serde_json::json!("firewall");
        assert_eq!(check(with(bad)).unwrap_err().path, "nfs[1].program");
        let mut bad = vio.clone();
        bad["args"] = serde_json::json!(["x"]);
        assert_eq!(check(with(bad)).unwrap_err().path, "nfs[1].args");
        let mut long = with(vio);
        long["run_dir"] = serde_json::json!(format!("/{}", "d".repeat(100)));
        assert_eq!(check(long).unwrap_err().path, "run_dir");
        // Guest resources stay refused for process NFs.
        let mut v = base();
        v["nfs"][0]["vm"] = serde_json::json!({"memory_mb": 128});
        assert_eq!(check(v).unwrap_err().path, "nfs[0].vm");
        let g = serde_json::json!({"name": "g", "service": "b", "kind": "virtio",
                                   "domain": "trusted"});
        let c = Config::from_json(&with(g).to_string()).unwrap();
        assert!(c
            .vhost_socket("g", VhostDir::ToGuest)
            .ends_with("vhost-g-to.sock"));
    }

    #[test]
    fn errors_name_paths() {
        let cases: Vec<(&str, serde_json::Value, &str)> = vec![
            (
                "/chains/0/services/0",
                serde_json::json!("nosuch"),
                "chains[0].services[0]",
            ),
            (
                "/chains/0/egress",
                serde_json::json!("nowhere"),
                "chains[0].egress",
            ),
            ("/nfs/0/domain", serde_json::json!("x"), "nfs[0].domain"),
            ("/ports/1/name", serde_json::json!("in"), "ports[1].name"),
            (
                "/domains/0/buffers",
                serde_json::json!(3),
                "domains[0].buffers",
            ),
            (
                "/chains/0/match/dst",
                serde_json::json!("10.0.0.1/8"),
                "chains[0].match.dst",
            ),
            (
                "/chains/0/match/dst_port",
                serde_json::json!("90-80"),
                "chains[0].match.dst_port",
            ),
            (
                "/chains/0/match/in_port",
                serde_json::json!("zz"),
                "chains[0].match.in_port",
            ),
        ];
        for (ptr, val, want) in cases {
            let mut v = base();
            *v.pointer_mut(ptr).unwrap() = val;
            let e = check(v).unwrap_err();
            assert_eq!(e.path, want, "{e}");
        }
    }

    #[test]
    fn poll_defaults_to_busy_and_names_itself_when_wrong() {
        let c = Config::from_json(&base().to_string()).unwrap();
        assert_eq!(c.poll, Poll::Busy);
        for (v, want) in [("busy", Poll::Busy), ("adaptive", Poll::Adaptive)] {
            let mut j = base();
            j["poll"] = serde_json::json!(v);
            let c = Config::from_json(&j.to_string()).unwrap();
            c.validate().unwrap();
            assert_eq!(c.poll, want);
            assert_eq!(c.poll.name(), v);
            // It serialises back to the same spelling.
            assert_eq!(serde_json::to_value(c.poll).unwrap(), serde_json::json!(v));
        }
        for bad in [serde_json::json!("sleepy"), serde_json::json!(1)] {
            let mut j = base();
            j["poll"] = bad;
            let e = check(j).unwrap_err();
            assert!(
                e.reason.contains("poll") || e.reason.contains("string"),
                "{e}"
            );
        }
        let mut j = base();
        j["poll"] = serde_json::json!("sleepy");
        let e = check(j).unwrap_err();
        assert!(
            e.reason
                .starts_with("poll: \"sleepy\" is not \"busy\" or \"adaptive\""),
            "{e}"
        );
    }

    #[test]
    fn poll_max_sleep_is_checked_with_its_path() {
        let c = Config::from_json(&base().to_string()).unwrap();
        assert_eq!(c.poll_max_sleep_us(), DEFAULT_POLL_MAX_SLEEP_US);
        let mut j = base();
        j["poll"] = serde_json::json!("adaptive");
        j["poll_max_sleep_us"] = serde_json::json!(250);
        check(j.clone()).unwrap();
        assert_eq!(
            Config::from_json(&j.to_string())
                .unwrap()
                .poll_max_sleep_us(),
            250
        );
        for (poll, us, why) in [
            ("adaptive", 9, "between"),
            ("adaptive", 10_001, "between"),
            ("busy", 250, "only adaptive"),
        ] {
            let mut j = base();
            j["poll"] = serde_json::json!(poll);
            j["poll_max_sleep_us"] = serde_json::json!(us);
            let e = check(j).unwrap_err();
            assert_eq!(e.path, "poll_max_sleep_us", "{e}");
            assert!(e.reason.contains(why), "{e}");
        }
    }

    #[test]
    fn unknown_field_rejected() {
        let mut v = base();
        v["ports"][0]["speed"] = serde_json::json!(10);
        let e = check(v).unwrap_err();
        assert!(e.reason.contains("unknown field"), "{e}");
    }

    #[test]
    fn parsers() {
        assert_eq!(
            parse_prefix("10.0.0.0/8").unwrap(),
            (std::net::Ipv4Addr::new(10, 0, 0, 0).into(), 8)
        );
        assert_eq!(
            parse_prefix("0.0.0.0/0").unwrap(),
            (std::net::Ipv4Addr::UNSPECIFIED.into(), 0)
        );
        assert!(parse_prefix("10.0.0.0/33").is_err());
        assert_eq!(
            parse_prefix("2001:db8::/32").unwrap(),
            (
                "2001:db8::".parse::<std::net::Ipv6Addr>().unwrap().into(),
                32
            )
        );
        assert_eq!(parse_prefix("::1").unwrap().1, 128);
        assert!(parse_prefix("2001:db8::/129").is_err());
        assert!(parse_prefix("2001:db8::1/32")
            .unwrap_err()
            .contains("host bits"));
        assert!(parse_prefix("2001:zz::/32").is_err());
        assert_eq!(parse_proto("icmpv6").unwrap(), 58);
        assert!(parse_vlan(4095).is_ok() && parse_vlan(4096).is_err());
        assert_eq!(parse_proto("udp").unwrap(), 17);
        assert!(parse_proto("xyz").is_err());
        assert_eq!(parse_port_range("80").unwrap(), (80, 80));
        assert_eq!(parse_port_range("1-2").unwrap(), (1, 2));
    }
}
