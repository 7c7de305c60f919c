//! The control side: a Unix socket speaking JSON lines, and the NF supervisor.
//!
//! Requests (one JSON object per line) and their answers:
//! * `{"cmd":"status"}` → NFs with their state and pid, ports, regions, whether traffic runs.
//! * `{"cmd":"stats"}` → a consistent [`Report`] (all workers at one instant).
//! * `{"cmd":"detach","nf":NAME}` → the NF gets no new packets; after a grace period what it
//!   still holds is taken back; its slot is reserved again so it can re-attach.
//! * `{"cmd":"attach","nf":NAME}` → re-opens an NF that was detached or quarantined: its slot
//!   is reserved again for a (new) process to attach.
//! * `{"cmd":"set_chains","chains":[…]}` → replaces the chains at run time (same schema as the
//!   config); packets of other chains are not dropped, packets in flight finish their route.
//! * `{"cmd":"gone","nf":NAME}` → the NF's process or guest has exited (the manager saw it):
//!   reclaim its buffers now and reserve its slot again.
//! * `{"cmd":"shutdown"}` → stops the core.
//!
//! Every answer has `"ok": true|false` and, when false, `"error"`. The requests and answers
//! are typed in `netvm_api::protocol`; [`handle`] parses a line into its `Request`.
//!
//! The supervisor (same thread, every 2 ms) follows the NF slots: RESERVED→ATTACHED starts
//! delivery; a clean DETACHED, a dead process, or a reject count past `quarantine_after`
//! stops delivery and reclaims the NF's buffers (on the worker that drains its ring).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use netvm_api::protocol::{
    Answer, NfStatus, PortStatus, RegionStatus, Request, SetChainsAnswer, StatsAnswer, StatusAnswer,
};
use netvm_shm::SlotState;
use serde_json::{json, Value};

use crate::stats::{Counters, DropReason, NfReport, PortReport, Report};
use crate::worker::Command;
use crate::{id32, nf_state, CoreError, Shared};

/// Lets a thread run on every CPU (threads inherit the EAL's pinning of the main thread).
pub fn unpin_current_thread() {
    let n = std::thread::available_parallelism().map_or(1, usize::from);
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET writes bits inside it; the syscall reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for c in 0..n {
            libc::CPU_SET(c, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Reserves (again) the slot of NF `i`: resets its rings, writes its identity.
pub fn reserve_slot(sh: &Shared, i: usize) -> Result<(), CoreError> {
    let nf = &sh.nfs[i];
    let dom = &sh.domains[usize::from(nf.domain)];
    let tables = sh.tables.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let svc = tables.service_id(&nf.info.service).unwrap_or(u16::MAX);
    let inst = tables
        .services
        .get(usize::from(svc))
        .and_then(|s| s.instances.iter().position(|&x| usize::from(x) == i))
        .unwrap_or(0);
    let region_err = |e| CoreError::Region {
        path: dom.path.clone(),
        source: e,
    };
    let slot = dom.region.slot(nf.slot).map_err(region_err)?;
    let rings = dom
        .region
        .geometry()
        .slot_rings(nf.slot)
        .ok_or_else(|| CoreError::Internal(format!("slot {} has no rings", nf.slot)))?;
    for r in rings.rx_range().chain(std::iter::once(rings.tx)) {
        dom.region.reset_ring(r, 0).map_err(region_err)?;
    }
    slot.reserve(&nf.info.name, u32::from(svc), id32(inst))
        .map_err(region_err)?;
    nf.state.store(nf_state::PENDING, Ordering::Release);
    Ok(())
}

/// The running control thread.
pub struct Control {
    handle: Option<JoinHandle<()>>,
}

impl Control {
    /// Waits for the control thread (it ends when the stop flag is set).
    pub fn join(mut self) {
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Binds the control socket and starts the control thread.
pub fn start(sh: Arc<Shared>) -> Result<Control, CoreError> {
    let path = sh.config.control_socket();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| CoreError::Io {
            what: format!("creating {}", dir.display()),
            source: e,
        })?;
    }
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).map_err(|e| CoreError::Io {
        what: format!("binding {}", path.display()),
        source: e,
    })?;
    listener.set_nonblocking(true).map_err(|e| CoreError::Io {
        what: "control socket".into(),
        source: e,
    })?;
    let handle = std::thread::Builder::new()
        .name("netvm-control".into())
        .spawn(move || {
            unpin_current_thread();
            let mut sup = Supervisor::default();
            let mut conns: Vec<JoinHandle<()>> = Vec::new();
            while !sh.stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let sh2 = Arc::clone(&sh);
                        conns.push(std::thread::spawn(move || serve(&sh2, stream)));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => eprintln!("netvm-core: control socket: {e}"),
                }
                sup.tick(&sh);
                conns.retain(|h| !h.is_finished());
                std::thread::sleep(Duration::from_millis(2));
            }
            for h in conns {
                let _ = h.join();
            }
            let _ = std::fs::remove_file(&path);
        })
        .map_err(|e| CoreError::Io {
            what: "spawning the control thread".into(),
            source: e,
        })?;
    Ok(Control {
        handle: Some(handle),
    })
}

/// A guest NF (pid 0 in its slot: a guest pid means nothing here) whose heartbeat has not
/// moved for this long is dead. Guests poll-sleep in 1 ms steps and bump the heartbeat every
/// step; the margin covers a TCG guest starved of CPU on a loaded host.
const GUEST_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Supervisor {
    /// Guest NFs (pid 0): NF index → (last heartbeat seen, when it last moved).
    heartbeats: std::collections::HashMap<usize, (u64, Instant)>,
    /// NFs being reclaimed: (index, reclaim_done target, re-reserve after).
    reclaiming: Vec<(usize, u64, bool)>,
    /// NFs detached by the operator: (index, when).
    detaching: Vec<(usize, Instant)>,
}

fn broadcast(sh: &Shared, mk: impl Fn() -> Command) {
    for q in &sh.commands {
        // A full queue means the worker is gone or wedged; the command is dropped and the
        // supervisor's state shows the NF still reclaiming.
        let _ = q.push(mk());
    }
}

impl Supervisor {
    /// Whether the NF in `slot` lives: by pid for processes, by heartbeat for guests.
    fn nf_alive(&mut self, i: usize, slot: &netvm_shm::SlotRef<'_>, now: Instant) -> bool {
        let pid = slot.nf_pid();
        if pid != 0 {
            return netvm_shm::proc::pid_alive(pid);
        }
        let beat = slot.heartbeat();
        let seen = self.heartbeats.entry(i).or_insert((beat, now));
        if seen.0 != beat {
            *seen = (beat, now);
        }
        now.duration_since(seen.1) < GUEST_HEARTBEAT_TIMEOUT
    }

    fn start_reclaim(&mut self, sh: &Shared, i: usize, state: u8, rereserve: bool) {
        let nf = &sh.nfs[i];
        self.heartbeats.remove(&i);
        nf.state.store(state, Ordering::Release);
        let target = nf.reclaim_done.load(Ordering::Acquire) + sh.commands.len() as u64;
        broadcast(sh, || Command::ReclaimNf(crate::id16(i)));
        self.reclaiming.push((i, target, rereserve));
    }

    fn tick(&mut self, sh: &Shared) {
        let gone = std::mem::take(&mut *sh.gone_requests.lock().unwrap_or_else(|p| p.into_inner()));
        for i in gone {
            if sh.nfs[i].state.load(Ordering::Acquire) == nf_state::ATTACHED
                && !self.reclaiming.iter().any(|r| r.0 == i)
            {
                eprintln!(
                    "netvm-core: NF {} reported gone; reclaiming its buffers",
                    sh.nfs[i].info.name
                );
                self.start_reclaim(sh, i, nf_state::DEAD, true);
            }
        }
        let requested =
            std::mem::take(&mut *sh.detach_requests.lock().unwrap_or_else(|p| p.into_inner()));
        let now = Instant::now();
        self.detaching
            .extend(requested.into_iter().map(|i| (i, now)));
        for (i, nf) in sh.nfs.iter().enumerate() {
            if self.reclaiming.iter().any(|r| r.0 == i) {
                continue;
            }
            let Ok(slot) = sh.domains[usize::from(nf.domain)].region.slot(nf.slot) else {
                continue;
            };
            let core_state = nf.state.load(Ordering::Acquire);
            let slot_state = slot.state();
            match core_state {
                nf_state::PENDING if slot_state == Some(SlotState::Attached) => {
                    nf.state.store(nf_state::ATTACHED, Ordering::Release);
                    broadcast(sh, || Command::AddNf(crate::id16(i)));
                }
                nf_state::ATTACHED => {
                    if let Some(limit) = sh.config.quarantine_after {
                        if nf.rejects.load(Ordering::Relaxed) > limit {
                            eprintln!(
                                "netvm-core: quarantining NF {} after {} rejected descriptors",
                                nf.info.name,
                                nf.rejects.load(Ordering::Relaxed)
                            );
                            slot.set_state(SlotState::Quarantined);
                            self.start_reclaim(sh, i, nf_state::QUARANTINED, false);
                            continue;
                        }
                    }
                    if slot_state == Some(SlotState::Detached) {
                        self.start_reclaim(sh, i, nf_state::DETACHED, true);
                    } else if slot_state != Some(SlotState::Attached)
                        || !self.nf_alive(i, &slot, now)
                    {
                        eprintln!("netvm-core: NF {} is gone (slot state {:?}, pid {}); reclaiming its buffers", nf.info.name, slot_state, slot.nf_pid());
                        self.start_reclaim(sh, i, nf_state::DEAD, true);
                    }
                }
                _ => {}
            }
        }
        // Operator detaches: after a grace period for returns, reclaim.
        let due: Vec<usize> = self
            .detaching
            .iter()
            .filter(|(_, t)| now.duration_since(*t) >= Duration::from_millis(200))
            .map(|&(i, _)| i)
            .collect();
        self.detaching
            .retain(|(_, t)| now.duration_since(*t) < Duration::from_millis(200));
        for i in due {
            self.start_reclaim(sh, i, nf_state::DETACHED, false);
        }
        // Finished reclaims: reserve the slot again so a restarted NF can attach.
        let mut still = Vec::new();
        for (i, target, rereserve) in self.reclaiming.drain(..) {
            if sh.nfs[i].reclaim_done.load(Ordering::Acquire) >= target {
                if rereserve {
                    if let Err(e) = reserve_slot(sh, i) {
                        eprintln!("netvm-core: re-reserving NF {}: {e}", sh.nfs[i].info.name);
                    }
                }
            } else {
                still.push((i, target, rereserve));
            }
        }
        self.reclaiming = still;
    }
}

fn serve(sh: &Shared, stream: UnixStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    let Ok(mut w) = stream.try_clone() else {
        return;
    };
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    loop {
        if sh.stop.load(Ordering::SeqCst) {
            return;
        }
        match r.read_line(&mut line) {
            Ok(0) => return,
            Ok(_) => {
                let answer = handle(sh, line.trim());
                line.clear();
                if writeln!(w, "{answer}").is_err() {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

fn fail(msg: impl Into<String>) -> Value {
    answer(&Answer::error(msg))
}

/// An answer as JSON; an error answer if it cannot be one (a region path that is not UTF-8).
fn answer(a: &impl serde::Serialize) -> Value {
    serde_json::to_value(a).unwrap_or_else(
        |e| json!({"ok": false, "error": format!("the answer cannot be written as JSON: {e}")}),
    )
}

/// Handles one request line.
pub fn handle(sh: &Shared, line: &str) -> Value {
    let req = match Request::parse(line) {
        Ok(r) => r,
        Err(e) => return fail(e.to_string()),
    };
    let nf_idx = |name: &str| -> Result<usize, Value> {
        sh.nfs
            .iter()
            .position(|n| n.info.name == name)
            .ok_or_else(|| fail(format!("no NF named {name:?}")))
    };
    match req {
        Request::Status => answer(&StatusAnswer {
            ok: true,
            running: sh.started.get().is_some() && !sh.stop.load(Ordering::SeqCst),
            pid: std::process::id(),
            nfs: sh
                .nfs
                .iter()
                .map(|n| {
                    let dom = &sh.domains[usize::from(n.domain)];
                    NfStatus {
                        name: n.info.name.clone(),
                        service: n.info.service.clone(),
                        domain: dom.name.clone(),
                        state: nf_state::name(n.state.load(Ordering::Acquire)).into(),
                        pid: dom.region.slot(n.slot).map(|s| s.nf_pid()).unwrap_or(0),
                    }
                })
                .collect(),
            ports: sh
                .ports
                .iter()
                .map(|p| PortStatus {
                    name: p.name.clone(),
                    device: p.port.devargs().to_owned(),
                })
                .collect(),
            regions: sh
                .domains
                .iter()
                .map(|d| RegionStatus {
                    domain: d.name.clone(),
                    path: d.path.clone(),
                })
                .collect(),
        }),
        Request::Stats => match snapshot(sh) {
            Some(stats) => answer(&StatsAnswer { ok: true, stats }),
            None => fail("workers are not running"),
        },
        Request::Shutdown => {
            sh.stop.store(true, Ordering::SeqCst);
            answer(&Answer::ok())
        }
        Request::Detach { nf } => match nf_idx(&nf) {
            Ok(i) => {
                // No new packets from now on; returns are still taken back. The supervisor
                // reclaims what is left after a grace period.
                sh.nfs[i].state.store(nf_state::DETACHED, Ordering::Release);
                sh.detach_requests
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(i);
                answer(&Answer::ok())
            }
            Err(e) => e,
        },
        Request::Gone { nf } => match nf_idx(&nf) {
            // The manager saw the NF's process (or its guest's QEMU) exit: reclaim now rather
            // than wait for the pid check or the guest heartbeat timeout.
            Ok(i) => {
                sh.gone_requests
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(i);
                answer(&Answer::ok())
            }
            Err(e) => e,
        },
        Request::Attach { nf } => match nf_idx(&nf) {
            Ok(i) => {
                let s = sh.nfs[i].state.load(Ordering::Acquire);
                if s == nf_state::ATTACHED || s == nf_state::PENDING {
                    return fail(format!(
                        "NF {:?} is {}",
                        sh.nfs[i].info.name,
                        nf_state::name(s)
                    ));
                }
                match reserve_slot(sh, i) {
                    Ok(()) => answer(&Answer::ok()),
                    Err(e) => fail(e.to_string()),
                }
            }
            Err(e) => e,
        },
        Request::SetChains { chains } => {
            let mut cfg = sh.config.clone();
            cfg.chains = chains.clone();
            if let Err(e) = cfg.validate() {
                return fail(e.to_string());
            }
            let port_ids = |name: &str| {
                sh.config
                    .ports
                    .iter()
                    .position(|p| p.name == name)
                    .and_then(|i| u16::try_from(i).ok())
            };
            let mut guard = sh.tables.lock().unwrap_or_else(|p| p.into_inner());
            let mut t = (**guard).clone();
            if let Err(e) = t.set_chains(&chains, &port_ids) {
                return fail(e.to_string());
            }
            let t = Arc::new(t);
            *guard = Arc::clone(&t);
            drop(guard);
            broadcast(sh, || Command::Tables(Arc::clone(&t)));
            answer(&SetChainsAnswer {
                ok: true,
                version: t.version,
            })
        }
    }
}

/// Takes a consistent snapshot: every worker publishes the same epoch and holds still while the
/// owners are counted. None if the workers are not running.
pub fn snapshot(sh: &Shared) -> Option<Report> {
    sh.started.get()?;
    let epoch = sh.snapshot_epoch.fetch_add(1, Ordering::AcqRel) + 1;
    let deadline = Instant::now() + Duration::from_millis(500);
    let mut consistent = true;
    while sh
        .snapshots
        .iter()
        .any(|s| s.epoch.load(Ordering::Acquire) < epoch)
    {
        if Instant::now() >= deadline {
            consistent = false;
            break;
        }
        std::thread::yield_now();
    }
    let owned: u64 = sh.domains.iter().map(|d| d.owned_by_nfs()).sum();
    sh.resume_epoch.store(epoch, Ordering::Release);
    let mut total = Counters::default();
    for s in &sh.snapshots {
        let c = s.counters.lock().unwrap_or_else(|p| p.into_inner());
        total.merge(&c);
    }
    // All published the same epoch only if none had already moved on to shutdown (u64::MAX).
    consistent &= sh
        .snapshots
        .iter()
        .all(|s| s.epoch.load(Ordering::Acquire) == epoch);
    Some(report_from(sh, &total, epoch, consistent, owned))
}

/// Descriptors waiting in an NF's RX rings (core → NF): the saturation signal. Read from the
/// ring words with every value treated as untrusted (a corrupt pair counts as 0).
fn rx_occupancy(dom: &crate::domain::Domain, slot: u32) -> u32 {
    let geom = dom.region.geometry();
    let Some(rings) = geom.slot_rings(slot) else {
        return 0;
    };
    let cap = geom.ring_capacity();
    rings
        .rx_range()
        .filter_map(|r| dom.region.ring_control(r).ok())
        .map(|ctl| {
            // SAFETY: ring_control returns a pointer to a control block inside the live
            // mapping; it is only read through its atomics.
            let ctl = unsafe { ctl.as_ref() };
            let used = ctl
                .prod
                .load(Ordering::Relaxed)
                .wrapping_sub(ctl.cons.load(Ordering::Relaxed));
            if used <= cap {
                used
            } else {
                0
            }
        })
        .sum()
}

/// Builds a report from merged counters.
pub fn report_from(sh: &Shared, c: &Counters, epoch: u64, consistent: bool, owned: u64) -> Report {
    let tables = sh.tables.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let ports = sh
        .ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let dev = p.port.stats().unwrap_or_default();
            PortReport {
                name: p.name.clone(),
                rx: c.port_rx[i],
                rx_bytes: c.port_rx_bytes[i],
                tx: c.port_tx[i],
                tx_bytes: c.port_tx_bytes[i],
                dev_imissed: dev.imissed,
                dev_rx_nombuf: dev.rx_nombuf,
            }
        })
        .collect();
    let nfs = sh
        .nfs
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let dom = &sh.domains[usize::from(n.domain)];
            let pid = dom.region.slot(n.slot).map(|s| s.nf_pid()).unwrap_or(0);
            let occ = rx_occupancy(dom, n.slot);
            let rejects: BTreeMap<String, u64> = netvm_shm::RejectReason::ALL
                .iter()
                .filter(|r| c.nf_rejects[i][**r as usize] > 0)
                .map(|r| (r.name().to_string(), c.nf_rejects[i][*r as usize]))
                .collect();
            NfReport {
                name: n.info.name.clone(),
                service: n.info.service.clone(),
                domain: dom.name.clone(),
                state: nf_state::name(n.state.load(Ordering::Acquire)).into(),
                pid,
                delivered: c.nf_delivered[i],
                returned: c.nf_returned[i],
                held: i128::from(c.nf_delivered[i]) - i128::from(c.nf_returned[i]),
                reclaimed: n.reclaimed.load(Ordering::Relaxed),
                verdicts: c.nf_verdicts[i],
                rejects,
                rx_ring_occupancy: occ,
            }
        })
        .collect();
    let drops = DropReason::ALL
        .iter()
        .map(|d| (d.name().to_string(), c.drops[*d as usize]))
        .filter(|(_, v)| *v > 0)
        .collect();
    let chains = tables
        .chains
        .iter()
        .enumerate()
        .filter(|(i, _)| c.chain_pkts[*i] > 0)
        .map(|(i, ch)| (ch.name.clone(), c.chain_pkts[i]))
        .collect();
    let (rx, tx, dr, inf) = (c.received(), c.transmitted(), c.dropped(), c.in_flight());
    let owned_ok = epoch == u64::MAX || i128::from(owned) == inf;
    Report {
        epoch,
        consistent,
        uptime_s: sh.started.get().map_or(0.0, |t| t.elapsed().as_secs_f64()),
        received: rx,
        transmitted: tx,
        dropped: dr,
        in_flight: inf,
        owned_by_nfs: owned,
        accounting_ok: consistent
            && i128::from(rx) == i128::from(tx) + i128::from(dr) + inf
            && owned_ok,
        drops,
        ports,
        nfs,
        chains,
        domain_copies: c.domain_copies,
        flow_cache_hits: c.flow_cache_hits,
        flow_cache_misses: c.flow_cache_misses,
        ring_corrupt: c.ring_corrupt,
        held_at_shutdown: BTreeMap::new(),
        pools_full: None,
    }
}
