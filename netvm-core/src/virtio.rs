//! Virtio NFs: unmodified guests with a plain virtio-net driver as chain members.
//!
//! A `kind: "virtio"` NF is an NF like any other for the tables, the counters and `stats`
//! (it has an NF index, a service, a state), but it has no rings: the core serves it two
//! vhost-user ports through DPDK's `net_vhost` PMD (the core is the vhost-user server, QEMU
//! connects as client), appended to the port list after the configured ports:
//!
//! * **to guest** (`NF.to`): delivering to the NF is `rte_eth_tx_burst` on this port; the
//!   vhost library copies the frame into a buffer the guest posted on its receive queue and
//!   frees the mbuf. What the queue refuses (the guest posted no free buffer: too slow, or
//!   not reading) is dropped as `ring_full` and counted per NF (`queue_full`), as for a full
//!   NF ring.
//! * **from guest** (`NF.from`): what the guest transmits lands, copied by the vhost library,
//!   in a fresh buffer of the NF's domain; the core parses a private header copy, computes
//!   the flow hash and looks the flow up in the NF's [`FlowRecords`] — written at each
//!   delivery: flow hash → (chain, position, input port). A hit re-enters the chain at the
//!   next position (the guest's "verdict" is NEXT); a miss is a frame the guest made up, or
//!   one of a flow the core never sent it: dropped as `virtio_unknown_flow` and counted.
//!
//! **Accounting.** A frame transmitted into the guest leaves the core: it is counted as
//! transmitted on the NF's to-guest port (and as the NF's `delivered`). A frame the guest
//! sends back is received anew on its from-guest port (the NF's `returned`). So
//! `received = transmitted + dropped + in flight` holds over all ports, the vhost ports
//! included, at every snapshot; what the guest drops or keeps is invisible to the core and
//! shows only as `delivered − returned` of the NF. Its `held` is 0: the guest holds no
//! buffer of any domain.
//!
//! **State and failure policy.** The supervisor ([`tick`]) makes the NF `attached` once
//! both vhost links are up (the guest's driver runs) and the guest has had receive buffers
//! posted for [`READY_SETTLE`] — or [`READY_GRACE`] after the links came up, for a guest
//! that never reads — and
//! `dead` when a link goes down (QEMU gone, socket closed). A dead or pending virtio NF is
//! skipped by `bypass` chains and drops `nf_unavailable` in `drop` chains, as any NF.
//!
//! Nothing of any domain's region is mapped into the guest: the guest memory is QEMU's own
//! (shared with the core's vhost library, as vhost-user requires), and the core copies.

use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::{nf_state, Shared};

/// How long after its vhost links came up a guest that has posted no receive buffer is
/// attached anyway (a guest that never reads its queue is still a chain member; its
/// deliveries drop as `ring_full`).
pub const READY_GRACE: Duration = Duration::from_secs(5);

/// How long the guest must have had receive buffers posted before it is attached: a Linux
/// guest posts them when its NIC comes up, but its bridge port forwards only once the
/// kernel's link watcher has run (up to a second later); frames sent before are dropped by
/// the guest. Measured here: ≈ 0.9 s of traffic lost without this settle time.
pub const READY_SETTLE: Duration = Duration::from_secs(2);

/// Which side of a virtio NF a port is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VirtioPort {
    /// The core transmits into the guest on it (NF index).
    ToGuest(u16),
    /// The core receives the guest's frames from it (NF index).
    FromGuest(u16),
}

/// A virtio NF at run time.
#[derive(Debug)]
pub struct VirtioRt {
    /// Port index of its to-guest vhost port.
    pub to_port: u16,
    /// Port index of its from-guest vhost port.
    pub from_port: u16,
    /// The vhost-user socket of the to-guest port.
    pub to_sock: PathBuf,
    /// The vhost-user socket of the from-guest port.
    pub from_sock: PathBuf,
    /// Flow → chain position, written at delivery, read when the guest sends back.
    pub flows: FlowRecords,
    /// vhost device ids of the two sockets (-1: not known), for the queue figures.
    vid_to: AtomicI32,
    vid_from: AtomicI32,
    /// When both links were first seen up, while not attached.
    up_since: Mutex<Option<Instant>>,
    /// Since when the guest has had receive buffers posted, while not attached.
    posted_since: Mutex<Option<Instant>>,
}

impl VirtioRt {
    /// A virtio NF on ports `to_port`/`from_port` served at these sockets.
    pub fn new(to_port: u16, from_port: u16, to_sock: PathBuf, from_sock: PathBuf) -> Self {
        Self {
            to_port,
            from_port,
            to_sock,
            from_sock,
            flows: FlowRecords::new(),
            vid_to: AtomicI32::new(-1),
            vid_from: AtomicI32::new(-1),
            up_since: Mutex::new(None),
            posted_since: Mutex::new(None),
        }
    }
}

/// The `net_vhost` device string for a socket (server mode: the core listens, QEMU connects).
pub fn vhost_devargs(name: &str, sock: &std::path::Path) -> String {
    format!(
        "net_vhost_{name},iface={},queues=1,client=0",
        sock.display()
    )
}

/// Per NF index: its virtio side, if it is a virtio NF.
pub(crate) type VirtioNfs = Vec<Option<Box<VirtioRt>>>;

/// Opens the two vhost-user ports of every virtio NF of `cfg` (port indices from `first`
/// on, to-guest then from-guest per NF, in NF order) and returns them with, per NF index,
/// its [`VirtioRt`]. One queue each: a guest with one vCPU uses one queue pair; workers
/// without the TX queue hand their frames to its owner as for any port.
pub(crate) fn open_ports(
    eal: &dpdk::Eal,
    cfg: &crate::config::Config,
    domains: &[crate::domain::Domain],
    first: usize,
) -> Result<(Vec<crate::PortRt>, VirtioNfs), crate::CoreError> {
    use crate::config::{NfKind, VhostDir};
    let mut ports = Vec::new();
    let mut rts = Vec::new();
    for (i, n) in cfg.nfs.iter().enumerate() {
        if n.kind != NfKind::Virtio {
            rts.push(None);
            continue;
        }
        let d = cfg
            .domains
            .iter()
            .position(|x| x.name == n.domain)
            .unwrap_or(0);
        let nf = crate::id16(i);
        let to_sock = cfg.vhost_socket(&n.name, VhostDir::ToGuest);
        let from_sock = cfg.vhost_socket(&n.name, VhostDir::FromGuest);
        let to_port = crate::id16(first + ports.len());
        for (dir, sock, role) in [
            ("to", &to_sock, VirtioPort::ToGuest(nf)),
            ("from", &from_sock, VirtioPort::FromGuest(nf)),
        ] {
            let name = format!("{}.{dir}", n.name);
            // A socket left by a dead core would make the vhost library refuse to listen.
            let _ = std::fs::remove_file(sock);
            let dev = vhost_devargs(&format!("{i}{dir}"), sock);
            let r = (|| {
                let mut port = dpdk::Port::open(eal, &dev)?;
                let pool = &domains[d].pool;
                let dcfg = dpdk::PortConfig {
                    rx_queues: 1,
                    tx_queues: 1,
                    max_frame: Some(cfg.domains[d].buffer_size),
                    ..Default::default()
                };
                port.configure(&dcfg, &[pool])?;
                Ok::<_, dpdk::PortError>(port)
            })();
            let port = r.map_err(|e| crate::CoreError::Port {
                name: name.clone(),
                source: e,
            })?;
            ports.push(crate::PortRt {
                name,
                domain: crate::id16(d),
                port,
                rx_rate_pps: None,
                steer: false,
                nsh_macs: [0; 12],
                virtio: Some(role),
            });
        }
        rts.push(Some(Box::new(VirtioRt::new(
            to_port,
            to_port + 1,
            to_sock,
            from_sock,
        ))));
    }
    Ok((ports, rts))
}

/// Sets of the flow table.
const SETS: usize = 4096;
/// Ways per set.
const WAYS: usize = 4;

/// Per virtio NF: flow hash → (chain, position, input port) of the last frame of that flow
/// the core delivered to the NF. Core-private (the guest never sees it), bounded
/// (`SETS × WAYS` = 16384 flows, 128 KiB), allocated once, shared by the workers (one
/// `AtomicU64` per entry: valid bit, input port, position, chain, hash). A full set evicts
/// the way the hash selects: an evicted flow's frames still in the guest come back as
/// `virtio_unknown_flow`. Flows with equal 32-bit hashes share an entry (a frame returns to
/// the last recorded position of its hash — a cost only when one guest serves several
/// chains).
#[derive(Debug)]
pub struct FlowRecords {
    words: Box<[AtomicU64]>,
}

/// Where a returned frame re-enters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowPos {
    /// Chain id.
    pub chain: u16,
    /// Position of the virtio NF's service in the chain.
    pub pos: u8,
    /// The frame's original input port.
    pub in_port: u8,
}

impl Default for FlowRecords {
    fn default() -> Self {
        Self::new()
    }
}

impl FlowRecords {
    /// An empty table.
    pub fn new() -> Self {
        Self {
            words: (0..SETS * WAYS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn pack(hash: u32, p: FlowPos) -> Option<u64> {
        let chain = u8::try_from(p.chain).ok()?;
        Some(
            (u64::from(hash) << 32)
                | (u64::from(chain) << 24)
                | (u64::from(p.pos) << 16)
                | (u64::from(p.in_port) << 8)
                | 1,
        )
    }

    /// (valid, hash, position) of an entry.
    fn unpack(v: u64) -> (bool, u32, FlowPos) {
        let b = v.to_le_bytes();
        (
            b[0] == 1,
            u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            FlowPos {
                chain: u16::from(b[3]),
                pos: b[2],
                in_port: b[1],
            },
        )
    }

    fn set(hash: u32) -> usize {
        // Remixed so that the set does not follow the low bits `hash % instances` uses.
        let mixed = u64::from(hash).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
        usize::try_from(mixed % SETS as u64).unwrap_or(0) * WAYS
    }

    /// Records that flow `hash` was delivered at `p` (one load per way; a store only when the
    /// entry changes).
    #[inline]
    pub fn record(&self, hash: u32, p: FlowPos) {
        let Some(new) = Self::pack(hash, p) else {
            return;
        };
        let base = Self::set(hash);
        let ways = &self.words[base..base + WAYS];
        for w in ways {
            let v = w.load(Ordering::Relaxed);
            if v == new {
                return;
            }
            let (valid, h, _) = Self::unpack(v);
            if valid && h == hash {
                // Release pairs with the Acquire in `lookup` (the frame reaches the reading
                // worker through the guest, after the vhost library's own barriers).
                w.store(new, Ordering::Release);
                return;
            }
        }
        for w in ways {
            if w.load(Ordering::Relaxed) == 0
                && w.compare_exchange(0, new, Ordering::Release, Ordering::Relaxed)
                    .is_ok()
            {
                return;
            }
        }
        let victim = usize::try_from(hash >> 7).unwrap_or(0) % WAYS;
        ways[victim].store(new, Ordering::Release);
    }

    /// Where flow `hash` re-enters, if the core delivered it to this NF.
    #[inline]
    pub fn lookup(&self, hash: u32) -> Option<FlowPos> {
        let base = Self::set(hash);
        self.words[base..base + WAYS].iter().find_map(|w| {
            let (valid, h, p) = Self::unpack(w.load(Ordering::Acquire));
            (valid && h == hash).then_some(p)
        })
    }
}

/// The vhost device id serving `sock`, if a guest is connected to it (cached in `cache`).
fn vid_of(sock: &std::path::Path, cache: &AtomicI32) -> Option<i32> {
    let want = std::os::unix::ffi::OsStrExt::as_bytes(sock.as_os_str());
    let matches = |vid: i32| {
        let mut buf = [0 as std::ffi::c_char; 256];
        // SAFETY: buf is writable for its length; the vhost library checks the id and writes
        // a NUL-terminated name of at most len bytes.
        let r = unsafe { dpdk::sys::rte_vhost_get_ifname(vid, buf.as_mut_ptr(), buf.len()) };
        // SAFETY: on success buf holds a NUL-terminated string (it was zeroed first).
        r == 0 && unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }.to_bytes() == want
    };
    let c = cache.load(Ordering::Relaxed);
    if c >= 0 && matches(c) {
        return Some(c);
    }
    // vhost device ids are small (one per connection, reused); RTE_MAX_VHOST_DEVICE is 1024.
    let found = (0..1024).find(|&v| matches(v))?;
    cache.store(found, Ordering::Relaxed);
    Some(found)
}

/// Queue figures of a virtio NF: (free receive buffers the guest posted, frames the guest
/// queued for the core), when a guest is connected.
pub fn queue_figures(v: &VirtioRt) -> (Option<u32>, Option<u32>) {
    // Virtqueue 0 of a device is the guest's receive queue, 1 its transmit queue.
    let free = vid_of(&v.to_sock, &v.vid_to).map(|vid| {
        // SAFETY: a device id just seen connected; the vhost library checks it again and
        // takes the queue's access lock.
        u32::from(unsafe { dpdk::sys::rte_vhost_avail_entries(vid, 0) })
    });
    let pending = vid_of(&v.from_sock, &v.vid_from).map(|vid| {
        // SAFETY: as above.
        unsafe { dpdk::sys::rte_vhost_rx_queue_count(vid, 1) }
    });
    (free, pending)
}

/// A virtio NF's row of a report: delivered and returned are what crossed its vhost ports,
/// it holds nothing, and its queue figures are read now.
pub(crate) fn fill_report(
    sh: &Shared,
    c: &crate::stats::Counters,
    i: usize,
    v: &VirtioRt,
    mut r: netvm_api::report::NfReport,
) -> netvm_api::report::NfReport {
    let (to, from) = (usize::from(v.to_port), usize::from(v.from_port));
    let up = links_up(sh, v);
    let (free, pending) = if up { queue_figures(v) } else { (None, None) };
    r.delivered = c.port_tx[to];
    r.returned = c.port_rx[from];
    r.held = 0;
    r.rx_ring_occupancy = 0;
    r.quota = 0;
    r.delivered_by_worker = Vec::new();
    r.virtio = Some(netvm_api::report::VirtioReport {
        to_guest_port: sh.ports[to].name.clone(),
        from_guest_port: sh.ports[from].name.clone(),
        link_up: up,
        queue_full: c.vio_full[i],
        unknown_flow: c.vio_unknown[i],
        guest_rx_free: free,
        guest_tx_pending: pending,
    });
    r
}

/// Whether both vhost links of a virtio NF are up.
pub fn links_up(sh: &Shared, v: &VirtioRt) -> bool {
    let up = |p: u16| sh.ports[usize::from(p)].port.link().is_ok_and(|l| l.up);
    up(v.to_port) && up(v.from_port)
}

/// Supervisor step for virtio NFs (see the module docs): returns the NFs that just became
/// attached (the workers open their handles for them).
pub fn tick(sh: &Shared) -> Vec<usize> {
    let mut attached = Vec::new();
    for (i, nf) in sh.nfs.iter().enumerate() {
        let Some(v) = nf.virtio.as_deref() else {
            continue;
        };
        let state = nf.state.load(Ordering::Acquire);
        let mut since = v.up_since.lock().unwrap_or_else(|p| p.into_inner());
        if links_up(sh, v) {
            if state == nf_state::ATTACHED {
                continue;
            }
            let t0 = *since.get_or_insert_with(Instant::now);
            let (free, _) = queue_figures(v);
            let mut posted_at = v.posted_since.lock().unwrap_or_else(|p| p.into_inner());
            let posted = free.unwrap_or(0) > 0;
            if !posted {
                *posted_at = None;
            }
            let settled =
                posted && posted_at.get_or_insert_with(Instant::now).elapsed() >= READY_SETTLE;
            if settled || t0.elapsed() >= READY_GRACE {
                *since = None;
                *posted_at = None;
                nf.state.store(nf_state::ATTACHED, Ordering::Release);
                eprintln!(
                    "netvm-core: virtio NF {} attached ({})",
                    nf.ident().map(|id| id.name.clone()).unwrap_or_default(),
                    if posted {
                        "the guest posted receive buffers"
                    } else {
                        "links up, but the guest posts no receive buffers"
                    }
                );
                attached.push(i);
            }
        } else {
            *since = None;
            if state == nf_state::ATTACHED {
                nf.state.store(nf_state::DEAD, Ordering::Release);
                eprintln!(
                    "netvm-core: virtio NF {}: vhost link down (guest gone); its chains follow \
                     their failure policy",
                    nf.ident().map(|id| id.name.clone()).unwrap_or_default()
                );
            }
        }
    }
    attached
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_update() {
        let t = FlowRecords::new();
        assert_eq!(t.lookup(7), None);
        let p = FlowPos {
            chain: 3,
            pos: 1,
            in_port: 2,
        };
        t.record(7, p);
        assert_eq!(t.lookup(7), Some(p));
        let q = FlowPos { chain: 4, ..p };
        t.record(7, q);
        assert_eq!(t.lookup(7), Some(q));
        assert_eq!(t.lookup(8), None);
        // Hash 0 (non-IP frames) is a flow like any other.
        t.record(0, p);
        assert_eq!(t.lookup(0), Some(p));
    }

    #[test]
    fn a_full_set_evicts_but_stays_bounded() {
        let t = FlowRecords::new();
        let p = FlowPos {
            chain: 1,
            pos: 0,
            in_port: 0,
        };
        // Many flows: every lookup of a recorded flow is either its own position or a miss.
        for h in 0..100_000u32 {
            t.record(h, p);
        }
        let hits = (0..100_000u32).filter(|&h| t.lookup(h) == Some(p)).count();
        assert!(hits <= SETS * WAYS && hits > SETS, "{hits}");
        assert_eq!(t.words.len(), SETS * WAYS);
    }
}
