//! netvm-core: the data plane.
//!
//! Owns the EAL, the ports (any DPDK device string), one shared-memory region per trust domain
//! with a DPDK pool whose **data buffers live in the region** while mbuf headers stay
//! core-private, and the workers that move packet references between ports and NF rings.
//!
//! * [`config`]: the JSON configuration and its validation (re-exported from `netvm-api`, which
//!   `netvm-manager` uses without DPDK).
//! * [`domain`]: a trust domain at run time — region, pool, per-buffer ownership table.
//! * [`tables`]: services, chains and classification rules, swapped whole at run time.
//! * [`worker`]: the run-to-completion hot loop and every check of NF input.
//! * [`stats`]: counters and the consistent snapshot behind the accounting identity.
//! * [`control`]: the Unix control socket (JSON lines) and the NF supervisor.
//! * [`capture`]: packet capture — the per-worker rings, the taps the workers check, the
//!   control side's session.
//!
//! Trust: NFs are untrusted. Everything an NF writes into shared memory (ring indices,
//! descriptors, slot fields, packet bytes) is validated before the core acts on it; a buffer
//! is acted on only if the ownership table says that NF holds it now. The core never reads
//! back ring ids or geometry from shared memory after creating a region.

pub use netvm_api::config;
pub mod capture;
pub mod control;
pub mod domain;
pub mod stats;
pub mod tables;
pub mod virtio;
pub mod worker;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use dpdk::{Eal, EalBuilder, Port, PortConfig as DevPortConfig};

use config::Config;
use domain::{Domain, Owner, OWNER_NONE};
use stats::{DropReason, Report};
use tables::Tables;
use worker::{Command, SnapshotSlot, Worker};

/// Errors starting or running the core.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The configuration is invalid.
    #[error("invalid configuration")]
    Config(#[from] config::ConfigError),
    /// EAL initialisation failed.
    #[error("starting DPDK")]
    Eal(#[from] dpdk::EalError),
    /// A port could not be opened or configured.
    #[error("port {name:?}")]
    Port {
        /// Port name.
        name: String,
        /// DPDK's error.
        #[source]
        source: dpdk::PortError,
    },
    /// A domain's pool could not be created.
    #[error("packet pool of domain {domain:?}")]
    Pool {
        /// Domain.
        domain: String,
        /// DPDK's error.
        #[source]
        source: dpdk::MempoolError,
    },
    /// A region could not be created.
    /// Registering a domain's buffers with DPDK (IOVAs, DMA mappings) failed.
    #[error("registering the buffers of domain {domain:?} for DMA")]
    Dma {
        /// The domain.
        domain: String,
        /// What DPDK said.
        #[source]
        source: dpdk::ExtMemError,
    },
    #[error("region {}", path.display())]
    Region {
        /// Region file.
        path: PathBuf,
        /// The error.
        #[source]
        source: netvm_shm::RegionError,
    },
    /// A domain's region could not be placed on its NUMA node.
    #[error("placing domain {domain:?} on NUMA node {node}")]
    Numa {
        /// The domain.
        domain: String,
        /// Its `numa_node`.
        node: u32,
        /// What failed (mbind, or too few free pages on the node).
        #[source]
        source: netvm_shm::RegionError,
    },
    /// NFs did not attach in time.
    #[error("NFs did not attach within {secs} s: {missing:?}")]
    AttachTimeout {
        /// Seconds waited.
        secs: u64,
        /// NFs still missing.
        missing: Vec<String>,
    },
    /// Control socket or other I/O.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A broken internal assumption (reported, never a panic).
    #[error("internal error: {0}")]
    Internal(String),
}

/// The core's view of an NF (`NfRt::state`).
pub mod nf_state {
    /// Slot reserved, NF not attached yet.
    pub const PENDING: u8 = 0;
    /// Attached: receives packets.
    pub const ATTACHED: u8 = 1;
    /// Detached cleanly (slot re-reserved for a restart).
    pub const DETACHED: u8 = 2;
    /// Quarantined for misbehaviour: receives nothing.
    pub const QUARANTINED: u8 = 3;
    /// Its process died (slot re-reserved for a restart).
    pub const DEAD: u8 = 4;
    /// A spare entry no NF has (see `NfRt`).
    pub const FREE: u8 = 5;
    /// Being removed (`nf_remove`): receives nothing; freed once its buffers are back.
    pub const REMOVING: u8 = 6;
    /// Name of a state.
    pub fn name(s: u8) -> &'static str {
        match s {
            PENDING => "pending",
            ATTACHED => "attached",
            DETACHED => "detached",
            QUARANTINED => "quarantined",
            DEAD => "dead",
            FREE => "free",
            REMOVING => "removing",
            _ => "unknown",
        }
    }
}

/// An NF's identity and control region: what an NF entry is while an NF has it. Fixed for
/// as long as that NF has the entry; a new NF in a freed entry gets a new one.
#[derive(Debug)]
pub struct NfIdent {
    /// Instance name.
    pub name: String,
    /// Service name.
    pub service: String,
    /// Domain index.
    pub domain: u16,
    /// The NF's control region (its slot and rings; only this NF and the core map it).
    pub ctl: netvm_shm::Region,
    /// Its file.
    pub ctl_path: PathBuf,
    /// Added at run time (`nf_add`), not from the config.
    pub runtime: bool,
}

/// Counters of an entry that belong to its earlier NFs (see [`NfRt::base`]).
#[derive(Debug, Clone, Default)]
pub struct NfBase {
    /// Delivered.
    pub delivered: u64,
    /// Returned.
    pub returned: u64,
    /// Quota drops.
    pub quota_drops: u64,
    /// Verdicts.
    pub verdicts: [u64; stats::verdict_idx::COUNT],
    /// Rejects by reason.
    pub rejects: [u64; stats::REJECTS],
    /// Buffers reclaimed.
    pub reclaimed: u64,
}

/// An NF entry as the core tracks it. The entries are made at start — one per configured NF
/// and `spare_nfs` free ones — and never move, so that workers size everything per NF once
/// and refer to NFs by index. An entry is *free* ([`nf_state::FREE`], no [`NfIdent`]) until
/// an NF takes it (at start, or `nf_add` on the control socket), and free again once that NF
/// was removed and every buffer it held was taken back.
///
/// What the workers see of an entry: its index in tables ([`tables::Service::instances`]),
/// `state`, the counters and [`NfRt::domain`], and — in `Command::AddNf`, off the hot path —
/// its control region through [`NfRt::ident`]. The control side sets the identity and
/// the domain before it publishes the index (tables, `AddNf`) through the workers' command
/// queues, and clears them only after every worker stopped using the entry (a finished
/// reclaim), so a worker never sees an entry half made.
#[derive(Debug)]
pub struct NfRt {
    /// Identity and control region while an NF has the entry (control side; workers read it
    /// only when opening the NF's rings).
    ident: RwLock<Option<Arc<NfIdent>>>,
    /// Domain index (copy of `ident.domain`, read on the hot path).
    domain: AtomicU16,
    /// Worker that drains its TX ring.
    pub worker: usize,
    /// [`nf_state`].
    pub state: AtomicU8,
    /// Rejected descriptors so far (for the quarantine policy).
    pub rejects: AtomicU64,
    /// Buffers taken back by reclaim.
    pub reclaimed: AtomicU64,
    /// Reclaims of this NF finished (by its draining worker).
    pub reclaim_done: AtomicU64,
    /// Workers that stopped feeding it for a reclaim (each adds one; see `Command::ReclaimNf`).
    pub feed_stopped: AtomicU64,
    /// Most buffers it may hold at once (set with the identity).
    quota: AtomicU32,
    /// Buffers delivered to it so far, per worker (each written by its worker only, once per
    /// flush; read by the other workers' quota checks and the supervisor).
    pub delivered: Box<[AtomicU64]>,
    /// Buffers taken back from it so far (returns and reclaims; written by its draining worker).
    pub returned: AtomicU64,
    /// A corrupt ring seen by a worker ([`fault`]); the supervisor quarantines the NF.
    pub fault: AtomicU8,
    /// Why it was last quarantined ([`fault`] codes; 0: never).
    pub quarantined_for: AtomicU8,
    /// The workers' counters of this index are cumulative over every NF that had the entry:
    /// what earlier NFs had, subtracted in reports (recorded when an NF takes a used entry).
    pub base: Mutex<NfBase>,
    /// NFs that had the entry so far.
    pub uses: AtomicU64,
    /// A virtio NF's vhost ports and flow records (`None`: an NF on rings).
    pub virtio: Option<Box<virtio::VirtioRt>>,
}

impl NfRt {
    /// A free entry drained by `worker`.
    fn free_entry(worker: usize, nworkers: usize, quota: u32) -> Self {
        Self {
            ident: RwLock::new(None),
            domain: AtomicU16::new(0),
            worker,
            state: AtomicU8::new(nf_state::FREE),
            rejects: AtomicU64::new(0),
            reclaimed: AtomicU64::new(0),
            reclaim_done: AtomicU64::new(0),
            feed_stopped: AtomicU64::new(0),
            quota: AtomicU32::new(quota),
            delivered: (0..nworkers).map(|_| AtomicU64::new(0)).collect(),
            returned: AtomicU64::new(0),
            fault: AtomicU8::new(fault::NONE),
            quarantined_for: AtomicU8::new(fault::NONE),
            base: Mutex::new(NfBase::default()),
            uses: AtomicU64::new(0),
            virtio: None,
        }
    }

    /// The NF that has the entry now (`None`: free).
    pub fn ident(&self) -> Option<Arc<NfIdent>> {
        self.ident.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Gives the entry to an NF (control side; the entry must be free and unpublished).
    pub(crate) fn set_ident(&self, id: NfIdent) {
        // Relaxed: workers learn of the entry only through their command queues (tables,
        // `AddNf`), whose push/pop orders this store before any worker reads it.
        self.domain.store(id.domain, Ordering::Relaxed);
        self.uses.fetch_add(1, Ordering::Relaxed);
        *self.ident.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(id));
    }

    /// Takes the entry's NF away (control side, once no worker uses the entry).
    pub(crate) fn take_ident(&self) -> Option<Arc<NfIdent>> {
        self.ident.write().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Most buffers it may hold at once.
    #[inline]
    pub fn quota(&self) -> u32 {
        self.quota.load(Ordering::Relaxed)
    }

    /// Sets the quota (control side, with the identity, before the entry is published).
    pub(crate) fn set_quota(&self, q: u32) {
        self.quota.store(q, Ordering::Relaxed);
    }

    /// Its domain index (hot path).
    #[inline]
    pub fn domain(&self) -> u16 {
        self.domain.load(Ordering::Relaxed)
    }

    /// Its name, or `""` for a free entry.
    pub fn name(&self) -> String {
        self.ident().map_or_else(String::new, |i| i.name.clone())
    }

    /// Buffers it holds now (delivered − returned, from the published counters).
    pub fn held(&self) -> u64 {
        let d: u64 = self
            .delivered
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .sum();
        d.saturating_sub(self.returned.load(Ordering::Relaxed))
    }
}

/// Why the core cut an NF off.
pub mod fault {
    /// Nothing.
    pub const NONE: u8 = 0;
    /// More rejected descriptors than `quarantine_after`.
    pub const REJECTS: u8 = 1;
    /// It corrupted the index of its TX ring (producer index).
    pub const TX_RING_CORRUPT: u8 = 2;
    /// It corrupted the index of an RX ring (consumer index).
    pub const RX_RING_CORRUPT: u8 = 3;
    /// It held its whole quota and returned nothing for `hoard_timeout_ms`.
    pub const HOARDING: u8 = 4;

    /// Stable name for status and stats.
    #[must_use]
    pub fn name(f: u8) -> &'static str {
        match f {
            NONE => "none",
            REJECTS => "rejects",
            TX_RING_CORRUPT => "tx_ring_corrupt",
            RX_RING_CORRUPT => "rx_ring_corrupt",
            HOARDING => "hoarding",
            _ => "unknown",
        }
    }
}

/// A port at run time.
#[derive(Debug)]
pub struct PortRt {
    /// Name from the config.
    pub name: String,
    /// Domain its packets land in.
    pub domain: u16,
    /// The DPDK port.
    pub port: Port,
    /// Packets per second received from it at most, all queues together (`None`: unlimited).
    pub rx_rate_pps: Option<u64>,
    /// Several RX queues and no RSS in the device: the core's flow hash steers frames to
    /// workers (see `worker::handoff`).
    pub steer: bool,
    /// Outer Ethernet destination and source of NSH frames sent here (`peer_mac` or
    /// broadcast; the port's MAC).
    pub nsh_macs: [u8; 12],
    /// A vhost-user port of a virtio NF (not in the config's port list).
    pub virtio: Option<virtio::VirtioPort>,
}

impl PortRt {
    /// The TX queue worker `w` uses, if the port has one for it (else it hands its frames to
    /// [`PortRt::tx_owner`]).
    #[inline]
    pub fn txq_of_worker(&self, w: usize) -> Option<u16> {
        u16::try_from(w).ok().filter(|&q| q < self.port.tx_queues())
    }

    /// The worker that transmits worker `w`'s frames for this port (itself if it has a queue).
    #[inline]
    pub fn tx_owner(&self, w: usize) -> usize {
        w % usize::from(self.port.tx_queues().max(1))
    }
}

/// Everything the workers and the control thread share.
pub struct Shared {
    /// The EAL handle.
    pub eal: Eal,
    /// The configuration in force.
    pub config: Config,
    /// Trust domains.
    pub domains: Vec<Domain>,
    /// Ports.
    pub ports: Vec<PortRt>,
    /// NF entries: the configured NFs in config order, then `spare_nfs` entries for NFs
    /// added at run time (see [`NfRt`]).
    pub nfs: Vec<NfRt>,
    /// Serialises NF additions and removals (control side).
    pub nf_changes: Mutex<()>,
    /// NFs to remove, for the supervisor (`nf_remove`): (entry, whether it was attached).
    pub remove_requests: Mutex<Vec<(usize, bool)>>,
    /// Tables in force (the control side's copy; its lock serialises the writers, who install
    /// new tables with [`Shared::install_tables`]).
    pub tables: Mutex<Arc<Tables>>,
    /// The same tables, for workers to read without a lock: a packet of a chain newer than the
    /// worker's own tables (`worker/returns.rs`).
    pub tables_now: arc_swap::ArcSwap<Tables>,
    /// Per-worker command queues.
    pub commands: Vec<ArrayQueue<Command>>,
    /// Per-worker snapshot slots.
    pub snapshots: Vec<SnapshotSlot>,
    /// Requested snapshot epoch.
    pub snapshot_epoch: AtomicU64,
    /// Workers resume after a snapshot once this reaches its epoch.
    pub resume_epoch: AtomicU64,
    /// Set to stop the workers.
    pub stop: AtomicBool,
    /// NFs the operator detached, for the supervisor.
    pub detach_requests: Mutex<Vec<usize>>,
    /// NFs whose process or guest is known to have exited, for the supervisor.
    pub gone_requests: Mutex<Vec<usize>>,
    /// When the ports started.
    pub started: OnceLock<Instant>,
    /// The running capture, if any (control side).
    pub capture: Mutex<Option<capture::Session>>,
    /// Last capture id given out.
    pub capture_ids: AtomicU64,
    /// Hand-off rings for TX frames (`from * workers + to`; see `worker::handoff`).
    pub(crate) handoff_tx: Vec<worker::handoff::Spsc<worker::handoff::Handoff>>,
    /// Hand-off rings for steered RX frames (same indexing).
    pub(crate) handoff_rx: Vec<worker::handoff::Spsc<worker::handoff::Handoff>>,
    /// Workers that left their RX loop (draining at shutdown).
    pub draining: std::sync::atomic::AtomicUsize,
    /// Shutdown drain: bumped by a worker each time it starts a drain iteration with work in
    /// sight (see `Worker::drain_quiet`).
    pub drain_gen: AtomicU64,
    /// Shutdown drain: workers inside such an iteration (holding frames privately).
    pub drain_busy: std::sync::atomic::AtomicUsize,
    /// Shutdown drain: a worker saw the whole core quiet; every worker stops draining.
    pub drain_done: AtomicBool,
    /// How long a worker holds still for a snapshot's reader, ms (see `control::snapshot`).
    pub snapshot_wait_ms: AtomicU64,
    /// Least-loaded placements per (flow, service), shared by the workers (`worker::place`).
    pub placements: worker::Placements,
}

impl Shared {
    /// Installs `t` as the tables in force: the control side's copy (`guard`, the caller holds
    /// the lock of [`Shared::tables`]) and the lock-free copy workers read.
    pub(crate) fn install_tables(&self, guard: &mut Arc<Tables>, t: Arc<Tables>) {
        self.tables_now.store(Arc::clone(&t));
        *guard = t;
    }

    /// Removes every region file this core made: the domains' and the NFs' control regions.
    pub fn remove_files(&self) {
        for n in &self.nfs {
            if let Some(id) = n.ident() {
                let _ = std::fs::remove_file(&id.ctl_path);
            }
        }
        self.domains.iter().for_each(Domain::remove_file);
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("domains", &self.domains)
            .field("ports", &self.ports)
            .field("nfs", &self.nfs)
            .finish_non_exhaustive()
    }
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Wait this long for every configured NF to attach before starting the ports (zero: start
    /// at once).
    pub wait_attach: Duration,
    /// Stop after this long (None: until signalled or told over the control socket).
    pub duration: Option<Duration>,
    /// Time to wait at shutdown for NFs to give buffers back.
    pub drain: Duration,
    /// Write the final report (JSON) here as well as to stdout.
    pub summary: Option<PathBuf>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            wait_attach: Duration::from_secs(30),
            duration: None,
            drain: Duration::from_secs(2),
            summary: None,
        }
    }
}

/// An index (NF, port, worker) as the 16-bit id the core stores. Indices are bounded by the
/// config limits (`MAX_NFS`, `MAX_PORTS`, …) long before 16 bits; saturates rather than wraps.
#[inline]
pub(crate) fn id16(i: usize) -> u16 {
    u16::try_from(i).unwrap_or(u16::MAX)
}

/// As [`id16`], 32 bits.
#[inline]
pub(crate) fn id32(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

static SIGNALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    SIGNALLED.store(true, Ordering::SeqCst);
}

fn install_signals() {
    let h: extern "C" fn(libc::c_int) = on_signal;
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: installs an async-signal-safe handler (one atomic store) for two signals.
        unsafe {
            libc::signal(sig, h as libc::sighandler_t);
        }
    }
}

/// Builds everything the config describes: EAL, regions and pools, ports, NF slots.
pub fn build(cfg: Config) -> Result<Arc<Shared>, CoreError> {
    cfg.validate()?;
    domain::check_numa(&cfg)?;
    let nworkers = cfg.workers.len();
    // Every worker is an EAL lcore pinned to its CPU: lcore i runs worker i on workers[i].cpu.
    check_worker_cpus(&cfg)?;
    let cpus: Vec<usize> = cfg.workers.iter().map(|w| w.cpu).collect();
    let mut eb = EalBuilder::new("netvm-core").lcore_cpus(&cpus);
    for a in &cfg.eal.args {
        eb = eb.arg(a);
    }
    for p in &cfg.ports {
        let dev = p.device.split(',').next().unwrap_or("");
        if dev.contains(':') {
            eb = eb.allow_pci(dev);
        }
    }
    let eb = match cfg.eal.no_huge_mb {
        Some(mb) => eb.no_huge(mb),
        None => {
            let (b, fell_back) = eb.huge_or_fallback(1024);
            if fell_back {
                eprintln!("netvm-core: WARNING: no usable hugepages; DPDK runs with --no-huge");
            }
            b
        }
    };
    let eal = eb.init()?;
    let dir = cfg.region_dir();
    std::fs::create_dir_all(&dir).map_err(|e| CoreError::Io {
        what: format!("creating {}", dir.display()),
        source: e,
    })?;
    let mut domains = Vec::new();
    for (i, d) in cfg.domains.iter().enumerate() {
        let id = u16::try_from(i).map_err(|_| CoreError::Internal("domain count".into()))?;
        let dom = Domain::create(
            &eal,
            id,
            &d.name,
            &dir,
            d.buffers,
            d.buffer_size,
            d.numa_node,
        );
        match dom {
            Ok(dom) => domains.push(dom),
            Err(e) => {
                domains.iter().for_each(Domain::remove_file);
                return Err(e);
            }
        }
    }
    let cleanup = |domains: &Vec<Domain>| domains.iter().for_each(Domain::remove_file);
    let dom_idx = |name: &str| {
        cfg.domains
            .iter()
            .position(|d| d.name == name)
            .and_then(|i| u16::try_from(i).ok())
            .unwrap_or(0)
    };
    let mut ports = Vec::new();
    for p in &cfg.ports {
        let d = dom_idx(&p.domain);
        let r = (|| {
            let mut port = Port::open(&eal, &p.device)?;
            let info = port.info()?;
            // RX: what the config says (the device refuses more than it has), else one queue
            // per worker as far as the device goes. TX: one per worker as far as it goes; the
            // workers without one hand their frames to a queue's owner.
            let rxq = p
                .rx_queues
                .unwrap_or_else(|| id16(nworkers).min(info.max_rx_queues).max(1));
            let txq = id16(nworkers).min(info.max_tx_queues).max(1);
            let pool = &domains[usize::from(d)].pool;
            let pools: Vec<&dpdk::Mempool> = (0..rxq).map(|_| pool).collect();
            // The port receives frames up to its domain's data room whole.
            let dcfg = DevPortConfig {
                rx_queues: rxq,
                tx_queues: txq,
                max_frame: Some(cfg.domains[usize::from(d)].buffer_size),
                rss: true,
                ..Default::default()
            };
            port.configure(&dcfg, &pools)?;
            Ok::<_, dpdk::PortError>(port)
        })();
        // Every domain's buffers may be received into (its own) or transmitted (any domain,
        // after a chain's egress) by this port: DMA-map them all for its device. Virtual
        // devices need no mapping (`NotNeeded`).
        let r = r.map_err(|e| CoreError::Port {
            name: p.name.clone(),
            source: e,
        });
        let r = r.and_then(|port| {
            for dom in &domains {
                dom.dma.dma_map(&port).map_err(|e| CoreError::Dma {
                    domain: dom.name.clone(),
                    source: e,
                })?;
            }
            Ok(port)
        });
        match r {
            Ok(port) => {
                let rxq = port.rx_queues();
                let steer = rxq > 1 && port.rss() == 0 && nworkers > 1;
                let mut nsh_macs = [0xffu8; 12];
                if let Some(peer) = p
                    .peer_mac
                    .as_deref()
                    .and_then(|m| config::parse_mac(m).ok())
                {
                    nsh_macs[..6].copy_from_slice(&peer);
                }
                nsh_macs[6..].copy_from_slice(&port.mac().unwrap_or_default());
                ports.push(PortRt {
                    name: p.name.clone(),
                    domain: d,
                    port,
                    rx_rate_pps: p.rx_rate_pps,
                    steer,
                    nsh_macs,
                    virtio: None,
                });
            }
            Err(e) => {
                drop(ports);
                cleanup(&domains);
                return Err(e);
            }
        }
    }
    // The vhost-user ports of virtio NFs, after the configured ports.
    let mut virtio = match virtio::open_ports(&eal, &cfg, &domains, ports.len()) {
        Ok((vports, rts)) => {
            ports.extend(vports);
            rts
        }
        Err(e) => {
            drop(ports);
            cleanup(&domains);
            return Err(e);
        }
    };
    // One control region per NF (its slot and rings), next to its domain's region: only that
    // NF and the core map it, so an NF can never reach another NF's control words.
    let mut nfs: Vec<NfRt> = Vec::new();
    let cleanup_nfs = |nfs: &Vec<NfRt>| {
        for n in nfs {
            if let Some(id) = n.ident() {
                let _ = std::fs::remove_file(&id.ctl_path);
            }
        }
    };
    for (i, n) in cfg.nfs.iter().enumerate() {
        let d = dom_idx(&n.domain);
        let dom = &domains[usize::from(d)];
        let ctl_path = netvm_shm::control_path(&dom.path, &n.name);
        let params = netvm_shm::RegionLayout::control_params(
            dom.region.geometry(),
            id32(nworkers),
            cfg.ring_capacity,
        );
        let ctl = match netvm_shm::Region::create_or_replace_on(&ctl_path, &params, dom.numa_node) {
            Ok(r) => r,
            Err(e) => {
                cleanup_nfs(&nfs);
                cleanup(&domains);
                return Err(CoreError::Region {
                    path: ctl_path,
                    source: e,
                });
            }
        };
        let mut nf = NfRt::free_entry(i % nworkers, nworkers, cfg.nf_quota(n));
        nf.virtio = virtio.get_mut(i).and_then(Option::take);
        nf.set_ident(NfIdent {
            name: n.name.clone(),
            service: n.service.clone(),
            domain: d,
            ctl,
            ctl_path,
            runtime: false,
        });
        nf.state.store(nf_state::PENDING, Ordering::Relaxed);
        nfs.push(nf);
    }
    // Spare entries for NFs added at run time: no control region until one is taken.
    let spare_quota = cfg.default_nf_quota();
    for i in cfg.nfs.len()..cfg.nfs.len() + cfg.spare_nfs as usize {
        nfs.push(NfRt::free_entry(i % nworkers, nworkers, spare_quota));
    }
    let port_ids = |name: &str| {
        cfg.ports
            .iter()
            .position(|p| p.name == name)
            .and_then(|i| u16::try_from(i).ok())
    };
    let tables = match Tables::build(&cfg, &port_ids) {
        Ok(t) => Arc::new(t),
        Err(e) => {
            cleanup_nfs(&nfs);
            cleanup(&domains);
            return Err(e.into());
        }
    };
    let shared = Shared {
        eal,
        domains,
        ports,
        nfs,
        nf_changes: Mutex::new(()),
        remove_requests: Mutex::new(Vec::new()),
        tables: Mutex::new(Arc::clone(&tables)),
        tables_now: arc_swap::ArcSwap::new(tables),
        commands: (0..nworkers).map(|_| ArrayQueue::new(1024)).collect(),
        snapshots: (0..nworkers).map(|_| SnapshotSlot::default()).collect(),
        snapshot_epoch: AtomicU64::new(0),
        resume_epoch: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        detach_requests: Mutex::new(Vec::new()),
        gone_requests: Mutex::new(Vec::new()),
        started: OnceLock::new(),
        capture: Mutex::new(None),
        capture_ids: AtomicU64::new(0),
        handoff_tx: worker::handoff::rings(nworkers),
        handoff_rx: worker::handoff::rings(nworkers),
        draining: std::sync::atomic::AtomicUsize::new(0),
        drain_gen: AtomicU64::new(0),
        drain_busy: std::sync::atomic::AtomicUsize::new(0),
        drain_done: AtomicBool::new(false),
        snapshot_wait_ms: AtomicU64::new(20),
        placements: worker::Placements::new(),
        config: cfg,
    };
    for i in 0..shared.config.nfs.len() {
        if let Err(e) = control::reserve_slot(&shared, i) {
            shared.remove_files();
            return Err(e);
        }
    }
    Ok(Arc::new(shared))
}

/// Refuses a worker CPU this process may not run on, naming the JSON path.
fn check_worker_cpus(cfg: &Config) -> Result<(), CoreError> {
    let allowed: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    for (i, w) in cfg.workers.iter().enumerate() {
        if !allowed.is_empty() && !allowed.contains(&w.cpu) {
            return Err(CoreError::Config(config::ConfigError {
                path: format!("workers[{i}].cpu"),
                reason: format!(
                    "CPU {} is not available to this process (allowed: {allowed:?}); a worker \
                     cannot be pinned there",
                    w.cpu
                ),
            }));
        }
    }
    Ok(())
}

/// Sends (or, where the port refuses, drops as `tx_full`) what is left in the hand-off rings
/// after every worker stopped; counts it into `total`.
fn finish_handoffs(sh: &Shared, total: &mut stats::Counters) {
    use worker::handoff::Handoff;
    let n = sh.commands.len();
    let mut buf = [Handoff::default(); 64];
    for to in 0..n {
        for from in 0..n {
            let ring = &sh.handoff_tx[from * n + to];
            loop {
                let k = ring.pop(&mut buf);
                if k == 0 {
                    break;
                }
                total.taken_over += k as u64;
                for h in &buf[..k] {
                    let p = usize::from(h.port);
                    let port = &sh.ports[p];
                    let q = port.txq_of_worker(port.tx_owner(to)).unwrap_or_default();
                    let mut one = [h.m];
                    // SAFETY: every worker has stopped, so no thread uses queue q; the mbuf is
                    // owned here (taken out of the ring) and sent or freed once.
                    let sent = unsafe { port.port.tx_burst_raw(q, &mut one) };
                    // SAFETY: as above; the header is core-private.
                    let len = u64::from(unsafe { (*h.m).data_len });
                    if sent == 1 {
                        total.port_tx[p] += 1;
                        total.port_tx_bytes[p] += len;
                    } else {
                        total.drops[DropReason::TxFull as usize] += 1;
                        // SAFETY: not sent: still ours, freed once.
                        unsafe { dpdk::sys::netvm_rte_pktmbuf_free(h.m) };
                    }
                }
            }
            // RX hand-offs stop before any worker leaves (all drain first); anything here is
            // an internal error, reported and dropped.
            let ring = &sh.handoff_rx[from * n + to];
            loop {
                let k = ring.pop(&mut buf);
                if k == 0 {
                    break;
                }
                eprintln!("netvm-core: {k} steered frames left at shutdown; dropped");
                total.taken_over += k as u64;
                for h in &buf[..k] {
                    total.drops[DropReason::NfUnavailable as usize] += 1;
                    // SAFETY: owned here (taken out of the ring), freed once.
                    unsafe { dpdk::sys::netvm_rte_pktmbuf_free(h.m) };
                }
            }
        }
    }
}

/// Runs the core until signalled, told to stop over the control socket, or `opts.duration`.
/// Returns the final report.
pub fn run(cfg: Config, opts: &RunOptions) -> Result<Report, CoreError> {
    install_signals();
    let shared = build(cfg)?;
    let res = run_built(&shared, opts);
    shared.remove_files();
    let _ = std::fs::remove_file(shared.config.control_socket());
    let mut report = res?;
    // Close the ports (their RX rings give mbufs back), then every pool must be full.
    // The report is written before the pools, regions and the EAL are torn down, so that it
    // exists whatever happens in DPDK's own cleanup.
    let mut rest = None;
    match Arc::try_unwrap(shared) {
        Ok(sh) => {
            let Shared {
                ports,
                domains,
                eal,
                ..
            } = sh;
            // Unmap DMA before the devices close (a PCI device's mapping must go first).
            for p in &ports {
                for d in &domains {
                    let _ = d.dma.dma_unmap(&p.port);
                }
            }
            drop(ports);
            report.pools_full = Some(domains.iter().all(Domain::pool_full));
            rest = Some((domains, eal));
        }
        Err(_) => report.pools_full = None,
    }
    if let Some(p) = &opts.summary {
        let text = serde_json::to_string_pretty(&report).unwrap_or_default();
        std::fs::write(p, text).map_err(|e| CoreError::Io {
            what: format!("writing {}", p.display()),
            source: e,
        })?;
    }
    drop(rest);
    Ok(report)
}

fn run_built(shared: &Arc<Shared>, opts: &RunOptions) -> Result<Report, CoreError> {
    let ctl = control::start(Arc::clone(shared))?;
    // Wait for the NFs before the ports start, so no packet meets an absent NF.
    let t0 = Instant::now();
    if !opts.wait_attach.is_zero() {
        loop {
            // The configured NFs (those added before the ports start need not be there).
            let missing: Vec<String> = shared.nfs[..shared.config.nfs.len()]
                .iter()
                .filter(|n| {
                    let s = n.state.load(Ordering::Acquire);
                    s != nf_state::ATTACHED && s != nf_state::FREE && s != nf_state::REMOVING
                })
                .map(NfRt::name)
                .collect();
            if missing.is_empty() {
                break;
            }
            if SIGNALLED.load(Ordering::SeqCst) || shared.stop.load(Ordering::SeqCst) {
                break;
            }
            if t0.elapsed() >= opts.wait_attach {
                shared.stop.store(true, Ordering::SeqCst);
                ctl.join();
                return Err(CoreError::AttachTimeout {
                    secs: opts.wait_attach.as_secs(),
                    missing,
                });
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    // Start the ports (a port that fails to start stops the run with its error).
    for p in &shared.ports {
        if let Err(e) = p.port.start() {
            shared.stop.store(true, Ordering::SeqCst);
            ctl.join();
            return Err(CoreError::Port {
                name: p.name.clone(),
                source: e,
            });
        }
    }
    let _ = shared.started.set(Instant::now());
    let nworkers = shared.config.workers.len();
    let tables = shared
        .tables
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    // Worker w polls the RX queues assigned to it and runs on EAL lcore w (pinned to its CPU).
    let queues_of = |w: usize| -> Vec<(u16, u16)> {
        let mut v = Vec::new();
        for (p, port) in shared.ports.iter().enumerate() {
            for q in 0..port.port.rx_queues() {
                if shared.config.rx_queue_worker(p, usize::from(q)) == w {
                    v.push((id16(p), q));
                }
            }
        }
        v
    };
    let mut handles = Vec::new();
    for w in 1..nworkers {
        let sh = Arc::clone(shared);
        let t = Arc::clone(&tables);
        let rx = queues_of(w);
        let drain = opts.drain;
        let lcore = id32(w);
        let launched = shared.eal.launch(lcore, move || {
            Worker::new(w, Arc::clone(&sh), t, rx).run(&sh.stop, drain)
        });
        match launched {
            Ok(h) => handles.push(h),
            Err(e) => {
                shared.stop.store(true, Ordering::SeqCst);
                for h in handles {
                    let _ = h.join();
                }
                ctl.join();
                return Err(CoreError::Internal(format!("starting worker {w}: {e}")));
            }
        }
    }
    // A watcher turns signals and the duration into the stop flag.
    let watcher = {
        let sh = Arc::clone(shared);
        let dur = opts.duration;
        std::thread::spawn(move || {
            control::unpin_current_thread();
            let start = Instant::now();
            while !sh.stop.load(Ordering::SeqCst) {
                if SIGNALLED.load(Ordering::SeqCst) || dur.is_some_and(|d| start.elapsed() >= d) {
                    sh.stop.store(true, Ordering::SeqCst);
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let rx0 = queues_of(0);
    let mut total = Worker::new(0, Arc::clone(shared), tables, rx0).run(&shared.stop, opts.drain);
    for h in handles {
        match h.join() {
            Some(c) => total.merge(&c),
            None => return Err(CoreError::Internal("a worker panicked".into())),
        }
    }
    // Frames a worker handed over after its peer had left: every worker has stopped, so the
    // queue owners' TX queues are free to use from here.
    finish_handoffs(shared, &mut total);
    let _ = watcher.join();
    ctl.join();
    // What NFs still hold is reported and taken back, so that the pools end full.
    let mut held_at_stop = Vec::new();
    for (i, n) in shared.nfs.iter().enumerate() {
        let held = i128::from(total.nf_delivered[i]) - i128::from(total.nf_returned[i]);
        if held > 0 {
            held_at_stop.push((n.name(), held));
        }
    }
    for d in &shared.domains {
        for b in d.bufs.iter() {
            if let Some(o) = Owner::decode(b.owner.load(Ordering::Acquire)) {
                b.owner.store(OWNER_NONE, Ordering::Relaxed);
                total.nf_returned[usize::from(o.nf)] += 1;
                total.drops[DropReason::Reclaimed as usize] += 1;
                // SAFETY: every worker has exited; the buffer was held by an NF and is now
                // taken back by the core, which frees its mbuf once.
                unsafe { dpdk::sys::netvm_rte_pktmbuf_free(b.mbuf) };
            }
        }
    }
    for (name, held) in &held_at_stop {
        eprintln!("netvm-core: NF {name} still held {held} buffers at shutdown; reclaimed");
    }
    let mut report = control::report_from(shared, &total, u64::MAX, true, 0);
    for p in &shared.ports {
        let _ = p.port.stop();
    }
    report.held_at_shutdown = held_at_stop.into_iter().collect();
    report.accounting_ok &= report.in_flight == 0;
    Ok(report)
}
