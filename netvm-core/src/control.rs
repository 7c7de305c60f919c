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
//! * `{"cmd":"capture_start",…}`, `{"cmd":"capture_read"}`, `{"cmd":"capture_stop"}` → packet
//!   capture ([`crate::capture`]): one at a time, owned by the connection that started it
//!   (closing that connection stops it).
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

use netvm_api::capture::{MAX_READ_BATCH, MAX_SNAPLEN};
use netvm_api::config::MatchConfig;
use netvm_api::protocol::{
    Answer, CapturePoint, CaptureReadAnswer, CaptureStartAnswer, CaptureStopAnswer, NfAddAnswer,
    NfRemoveAnswer, NfStatus, PortStatus, RegionStatus, Request, SetChainsAnswer, StatsAnswer,
    StatusAnswer,
};
use netvm_shm::SlotState;
use serde_json::{json, Value};

use crate::capture::{CaptureRing, Session, SessionShared, Tap, TapKind};
use crate::stats::{
    Counters, DropReason, NfReport, NshDrop, PathReport, PortReport, Report, WorkerReport,
};
use crate::worker::Command;
use crate::{fault, id32, nf_state, CoreError, NfBase, NfIdent, NfRt, Shared};

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

/// Reserves (again) the slot of NF `i` in its control region: resets its rings, writes its
/// identity, clears a recorded fault.
pub fn reserve_slot(sh: &Shared, i: usize) -> Result<(), CoreError> {
    let nf = &sh.nfs[i];
    let Some(id) = nf.ident() else {
        return Err(CoreError::Internal(format!("NF entry {i} is free")));
    };
    let tables = sh.tables.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let svc = tables.service_id(&id.service).unwrap_or(u16::MAX);
    let inst = tables
        .services
        .get(usize::from(svc))
        .and_then(|s| s.instances.iter().position(|&x| usize::from(x) == i))
        .unwrap_or(0);
    let region_err = |e| CoreError::Region {
        path: id.ctl_path.clone(),
        source: e,
    };
    let slot = id.ctl.slot(0).map_err(region_err)?;
    let rings = id
        .ctl
        .geometry()
        .slot_rings(0)
        .ok_or_else(|| CoreError::Internal(format!("NF {} has no rings", id.name)))?;
    for r in rings.rx_range().chain(std::iter::once(rings.tx)) {
        id.ctl.reset_ring(r, 0).map_err(region_err)?;
    }
    slot.reserve(&id.name, u32::from(svc), id32(inst))
        .map_err(region_err)?;
    nf.fault.store(fault::NONE, Ordering::Relaxed);
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

/// What the supervisor does with an NF entry once its buffers are back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    /// Nothing (detached or quarantined: the operator re-opens it).
    Stay,
    /// Reserve the slot again so that a restarted NF can attach.
    Rereserve,
    /// Free the entry (`nf_remove`): its control region goes, a later `nf_add` may take it.
    Free,
}

/// How long an NF being detached or removed may go on returning buffers before the core
/// takes back what it still holds.
const DETACH_GRACE: Duration = Duration::from_millis(200);

#[derive(Default)]
struct Supervisor {
    /// Guest NFs (pid 0): NF index → (last heartbeat seen, when it last moved).
    heartbeats: std::collections::HashMap<usize, (u64, Instant)>,
    /// NFs being reclaimed: (index, reclaim_done target, what then).
    reclaiming: Vec<(usize, u64, After)>,
    /// NFs detached or being removed by the operator: (index, when, what after the reclaim).
    detaching: Vec<(usize, Instant, After)>,
    /// NFs at their quota: NF index → (returned count seen, since when it has not moved).
    hoarding: std::collections::HashMap<usize, (u64, Instant)>,
}

fn broadcast(sh: &Shared, mk: impl Fn() -> Command) {
    for q in &sh.commands {
        // A full queue means the worker is gone or wedged; the command is dropped and the
        // supervisor's state shows the NF still reclaiming.
        let _ = q.push(mk());
    }
}

impl Supervisor {
    /// Whether NF `i` has held its whole quota without returning anything for
    /// `hoard_timeout_ms`.
    fn hoards(&mut self, sh: &Shared, i: usize, now: Instant) -> bool {
        let nf = &sh.nfs[i];
        if nf.held() < u64::from(nf.quota()) {
            self.hoarding.remove(&i);
            return false;
        }
        let returned = nf.returned.load(Ordering::Relaxed);
        let seen = self.hoarding.entry(i).or_insert((returned, now));
        if seen.0 != returned {
            *seen = (returned, now);
        }
        now.duration_since(seen.1) >= Duration::from_millis(sh.config.hoard_timeout_ms)
    }

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

    /// Cuts NF `i` off for `why` ([`fault`]): slot QUARANTINED, no more deliveries, its
    /// buffers taken back; its slot is reserved again (rings reset) only with
    /// `quarantine_reattach`, else by the control socket's `attach`.
    fn quarantine(&mut self, sh: &Shared, i: usize, why: u8) {
        let nf = &sh.nfs[i];
        eprintln!(
            "netvm-core: quarantining NF {} ({}); reclaiming its {} buffers",
            nf.name(),
            fault::name(why),
            nf.held()
        );
        nf.quarantined_for.store(why, Ordering::Relaxed);
        if let Some(id) = nf.ident() {
            if let Ok(slot) = id.ctl.slot(0) {
                slot.set_state(SlotState::Quarantined);
            }
        }
        let after = if sh.config.quarantine_reattach {
            After::Rereserve
        } else {
            After::Stay
        };
        self.start_reclaim(sh, i, nf_state::QUARANTINED, after);
    }

    fn start_reclaim(&mut self, sh: &Shared, i: usize, state: u8, after: After) {
        let nf = &sh.nfs[i];
        self.heartbeats.remove(&i);
        self.hoarding.remove(&i);
        nf.state.store(state, Ordering::Release);
        // Every worker stops feeding it; then its draining worker alone scans and finishes.
        let target = nf.reclaim_done.load(Ordering::Acquire) + 1;
        let stopped = nf.feed_stopped.load(Ordering::Acquire) + sh.commands.len() as u64;
        broadcast(sh, || Command::ReclaimNf {
            nf: crate::id16(i),
            stopped,
        });
        self.reclaiming.push((i, target, after));
    }

    /// `nf_remove` of entry `i` (already REMOVING, out of the tables): a grace period for an
    /// attached NF to return what it holds, then the reclaim, then the entry is freed.
    fn start_remove(&mut self, sh: &Shared, i: usize, was_attached: bool, now: Instant) {
        self.detaching.retain(|d| d.0 != i);
        if let Some(r) = self.reclaiming.iter_mut().find(|r| r.0 == i) {
            // A reclaim (crash, detach, quarantine) is under way: free the entry after it.
            r.2 = After::Free;
            return;
        }
        if sh.started.get().is_none() {
            // No worker runs yet, so none has its rings or buffers: free at once.
            free_entry(sh, i);
            return;
        }
        if was_attached {
            self.detaching.push((i, now, After::Free));
        } else {
            self.start_reclaim(sh, i, nf_state::REMOVING, After::Free);
        }
    }

    fn tick(&mut self, sh: &Shared) {
        let gone = std::mem::take(&mut *sh.gone_requests.lock().unwrap_or_else(|p| p.into_inner()));
        for i in gone {
            if sh.nfs[i].state.load(Ordering::Acquire) == nf_state::ATTACHED
                && !self.reclaiming.iter().any(|r| r.0 == i)
            {
                eprintln!(
                    "netvm-core: NF {} reported gone; reclaiming its buffers",
                    sh.nfs[i].name()
                );
                self.start_reclaim(sh, i, nf_state::DEAD, After::Rereserve);
            }
        }
        let requested =
            std::mem::take(&mut *sh.detach_requests.lock().unwrap_or_else(|p| p.into_inner()));
        let now = Instant::now();
        self.detaching
            .extend(requested.into_iter().map(|i| (i, now, After::Stay)));
        let removals =
            std::mem::take(&mut *sh.remove_requests.lock().unwrap_or_else(|p| p.into_inner()));
        for (i, was_attached) in removals {
            self.start_remove(sh, i, was_attached, now);
        }
        // Virtio NFs follow their vhost links, not a slot (`virtio.rs`).
        for i in crate::virtio::tick(sh) {
            broadcast(sh, || Command::AddNf(crate::id16(i)));
        }
        for (i, nf) in sh.nfs.iter().enumerate() {
            if self.reclaiming.iter().any(|r| r.0 == i) || nf.virtio.is_some() {
                continue;
            }
            let Some(id) = nf.ident() else {
                continue;
            };
            let Ok(slot) = id.ctl.slot(0) else {
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
                    // Misbehaviour first: a corrupt ring, too many rejects, hoarding.
                    let f = nf.fault.load(Ordering::Relaxed);
                    if f != fault::NONE {
                        self.quarantine(sh, i, f);
                        continue;
                    }
                    if let Some(limit) = sh.config.quarantine_after {
                        if nf.rejects.load(Ordering::Relaxed) > limit {
                            self.quarantine(sh, i, fault::REJECTS);
                            continue;
                        }
                    }
                    if self.hoards(sh, i, now) {
                        self.quarantine(sh, i, fault::HOARDING);
                        continue;
                    }
                    if slot_state == Some(SlotState::Detached) {
                        self.start_reclaim(sh, i, nf_state::DETACHED, After::Rereserve);
                    } else if slot_state != Some(SlotState::Attached)
                        || !self.nf_alive(i, &slot, now)
                    {
                        eprintln!("netvm-core: NF {} is gone (slot state {:?}, pid {}); reclaiming its buffers", id.name, slot_state, slot.nf_pid());
                        self.start_reclaim(sh, i, nf_state::DEAD, After::Rereserve);
                    }
                }
                _ => {}
            }
        }
        // Operator detaches and removals: after a grace period for returns, reclaim.
        let due: Vec<(usize, After)> = self
            .detaching
            .iter()
            .filter(|(_, t, _)| now.duration_since(*t) >= DETACH_GRACE)
            .map(|&(i, _, a)| (i, a))
            .collect();
        self.detaching
            .retain(|(_, t, _)| now.duration_since(*t) < DETACH_GRACE);
        for (i, after) in due {
            let state = if after == After::Free {
                nf_state::REMOVING
            } else {
                nf_state::DETACHED
            };
            self.start_reclaim(sh, i, state, after);
        }
        // Finished reclaims: reserve the slot again so a restarted NF can attach, or free the
        // entry of a removed NF.
        let mut still = Vec::new();
        for (i, target, after) in self.reclaiming.drain(..) {
            if sh.nfs[i].reclaim_done.load(Ordering::Acquire) >= target {
                match after {
                    After::Rereserve => {
                        if let Err(e) = reserve_slot(sh, i) {
                            eprintln!("netvm-core: re-reserving NF {}: {e}", sh.nfs[i].name());
                        }
                    }
                    After::Free => free_entry(sh, i),
                    After::Stay => {}
                }
            } else {
                still.push((i, target, after));
            }
        }
        self.reclaiming = still;
    }
}

/// Control connections so far (each gets an id: a capture belongs to the one that started it).
static CONNECTIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn serve(sh: &Shared, stream: UnixStream) {
    let conn = CONNECTIONS.fetch_add(1, Ordering::Relaxed) + 1;
    serve_conn(sh, stream, conn);
    // A capture whose client went away (exited, killed, lost) stops now: nobody reads it.
    crate::control::capture_release(sh, conn);
}

fn serve_conn(sh: &Shared, stream: UnixStream, conn: u64) {
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
                let answer = handle_on(sh, line.trim(), conn);
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

/// Handles one request line (from no particular connection: a capture it starts stops only
/// when asked).
pub fn handle(sh: &Shared, line: &str) -> Value {
    handle_on(sh, line, 0)
}

/// Handles one request line that came on connection `conn`.
pub fn handle_on(sh: &Shared, line: &str, conn: u64) -> Value {
    let req = match Request::parse(line) {
        Ok(r) => r,
        Err(e) => return fail(e.to_string()),
    };
    let nf_idx = |name: &str| -> Result<usize, Value> {
        let i = nf_index(sh, name).ok_or_else(|| fail(format!("no NF named {name:?}")))?;
        match sh.nfs[i].state.load(Ordering::Acquire) {
            nf_state::REMOVING => Err(fail(format!("NF {name:?} is being removed"))),
            _ => Ok(i),
        }
    };
    match req {
        Request::Status => answer(&StatusAnswer {
            ok: true,
            running: sh.started.get().is_some() && !sh.stop.load(Ordering::SeqCst),
            pid: std::process::id(),
            nfs: sh
                .nfs
                .iter()
                .filter_map(|n| n.ident().map(|id| (n, id)))
                .map(|(n, id)| {
                    let dom = &sh.domains[usize::from(id.domain)];
                    NfStatus {
                        name: id.name.clone(),
                        service: id.service.clone(),
                        domain: dom.name.clone(),
                        state: nf_state::name(n.state.load(Ordering::Acquire)).into(),
                        pid: id.ctl.slot(0).map(|s| s.nf_pid()).unwrap_or(0),
                        control: id.ctl_path.clone(),
                        quarantined_for: match n.quarantined_for.load(Ordering::Relaxed) {
                            fault::NONE => None,
                            f => Some(fault::name(f).to_owned()),
                        },
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
                    return fail(format!("NF {nf:?} is {}", nf_state::name(s)));
                }
                match reserve_slot(sh, i) {
                    Ok(()) => answer(&Answer::ok()),
                    Err(e) => fail(e.to_string()),
                }
            }
            Err(e) => e,
        },
        Request::CaptureStart {
            at,
            filter,
            snaplen,
            count,
        } => match capture_start(sh, conn, at, filter.as_ref(), snaplen, count) {
            Ok(a) => answer(&a),
            Err(e) => fail(e),
        },
        Request::CaptureRead { max } => match capture_read(sh, max) {
            Ok(a) => answer(&a),
            Err(e) => fail(e),
        },
        Request::CaptureStop => match capture_stop(sh) {
            Ok(a) => answer(&a),
            Err(e) => fail(e),
        },
        Request::SetChains { chains } => {
            let _changes = sh.nf_changes.lock().unwrap_or_else(|p| p.into_inner());
            // Validated against the NFs there are now (added ones in, removed ones out).
            let mut cfg = sh.config.clone();
            cfg.nfs = current_nfs(sh);
            cfg.spare_nfs = 0;
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
            sh.install_tables(&mut guard, Arc::clone(&t));
            drop(guard);
            broadcast(sh, || Command::Tables(Arc::clone(&t)));
            answer(&SetChainsAnswer {
                ok: true,
                version: t.version,
            })
        }
        Request::NfAdd {
            nf,
            service,
            domain,
        } => match nf_add(sh, &nf, &service, &domain) {
            Ok(a) => answer(&a),
            Err(e) => fail(e),
        },
        Request::NfRemove { nf } => match nf_remove(sh, &nf) {
            Ok(a) => answer(&a),
            Err(e) => fail(e),
        },
    }
}

/// The entry of the NF named `name`, if one has it.
fn nf_index(sh: &Shared, name: &str) -> Option<usize> {
    sh.nfs
        .iter()
        .position(|n| n.ident().is_some_and(|id| id.name == name))
}

/// The NFs there are now, as config entries (name, service, domain): what chains may name.
/// NFs being removed are left out.
fn current_nfs(sh: &Shared) -> Vec<netvm_api::config::NfConfig> {
    sh.nfs
        .iter()
        .filter(|n| n.state.load(Ordering::Acquire) != nf_state::REMOVING)
        .filter_map(NfRt::ident)
        .map(|id| netvm_api::config::NfConfig {
            name: id.name.clone(),
            service: id.service.clone(),
            kind: netvm_api::config::NfKind::Process,
            domain: sh.domains[usize::from(id.domain)].name.clone(),
            program: None,
            args: Vec::new(),
            cpu: None,
            vm: None,
            quota: None,
        })
        .collect()
}

/// How long `nf_remove` waits for the NF's entry to be freed (grace period and reclaim).
const REMOVE_WAIT: Duration = Duration::from_secs(10);

/// `nf_add`: checks everything, then makes the NF's control region, gives it a free entry,
/// makes it an instance of its service (new tables to every worker) and reserves its slot.
/// Any refusal leaves everything as it was.
fn nf_add(sh: &Shared, name: &str, service: &str, domain: &str) -> Result<NfAddAnswer, String> {
    let _changes = sh.nf_changes.lock().unwrap_or_else(|p| p.into_inner());
    if !netvm_api::config::valid_name(name) {
        return Err(format!(
            "NF name {name:?}: must be 1-32 characters of letters, digits, '-', '_'"
        ));
    }
    if !netvm_api::config::valid_name(service) {
        return Err(format!(
            "service name {service:?}: must be 1-32 characters of letters, digits, '-', '_'"
        ));
    }
    if nf_index(sh, name).is_some() {
        return Err(format!("NF name {name:?} is taken"));
    }
    let Some(d) = sh.domains.iter().position(|d| d.name == domain) else {
        let names: Vec<&str> = sh.domains.iter().map(|d| d.name.as_str()).collect();
        return Err(format!(
            "no domain named {domain:?} (domains: {})",
            names.join(", ")
        ));
    };
    let Some(i) = sh
        .nfs
        .iter()
        .position(|n| n.state.load(Ordering::Acquire) == nf_state::FREE && n.ident().is_none())
    else {
        return Err(format!(
            "no free NF entry for {name:?}: all {} are in use ({} configured NFs, spare_nfs {}); remove an NF first",
            sh.nfs.len(),
            sh.config.nfs.len(),
            sh.config.spare_nfs
        ));
    };
    let dom = &sh.domains[d];
    let ctl_path = netvm_shm::control_path(&dom.path, name);
    let params = netvm_shm::RegionLayout::control_params(
        dom.region.geometry(),
        id32(sh.commands.len()),
        sh.config.ring_capacity,
    );
    let ctl = netvm_shm::Region::create_or_replace(&ctl_path, &params)
        .map_err(|e| format!("creating the control region {}: {e}", ctl_path.display()))?;
    let nf = &sh.nfs[i];
    // Counters of earlier NFs of this entry are not this NF's (no worker touches the entry
    // while it is free, so one snapshot reads them exactly).
    if nf.uses.load(Ordering::Relaxed) > 0 {
        let base = base_of(sh, i);
        *nf.base.lock().unwrap_or_else(|p| p.into_inner()) = base;
    }
    nf.rejects.store(0, Ordering::Relaxed);
    nf.fault.store(fault::NONE, Ordering::Relaxed);
    nf.quarantined_for.store(fault::NONE, Ordering::Relaxed);
    nf.set_quota(sh.config.default_nf_quota());
    nf.set_ident(NfIdent {
        name: name.to_owned(),
        service: service.to_owned(),
        domain: crate::id16(d),
        ctl,
        ctl_path: ctl_path.clone(),
        runtime: true,
    });
    let undo = |sh: &Shared| {
        if let Some(id) = sh.nfs[i].take_ident() {
            let _ = std::fs::remove_file(&id.ctl_path);
        }
        sh.nfs[i].state.store(nf_state::FREE, Ordering::Release);
    };
    let mut guard = sh.tables.lock().unwrap_or_else(|p| p.into_inner());
    let old = Arc::clone(&guard);
    let mut t = (**guard).clone();
    let (_, new_service) = match t.add_instance(service, crate::id16(i)) {
        Ok(x) => x,
        Err(e) => {
            drop(guard);
            undo(sh);
            return Err(e);
        }
    };
    let t = Arc::new(t);
    sh.install_tables(&mut guard, Arc::clone(&t));
    drop(guard);
    // The slot names its service id and instance position from the tables just set.
    if let Err(e) = reserve_slot(sh, i) {
        let mut guard = sh.tables.lock().unwrap_or_else(|p| p.into_inner());
        sh.install_tables(&mut guard, old);
        drop(guard);
        undo(sh);
        return Err(format!("reserving the slot of NF {name:?}: {e}"));
    }
    broadcast(sh, || Command::Tables(Arc::clone(&t)));
    eprintln!(
        "netvm-core: NF {name} added (service {service}{}, domain {domain}, entry {i}); waiting for it to attach",
        if new_service { ", new" } else { "" }
    );
    Ok(NfAddAnswer {
        ok: true,
        index: id32(i),
        control: ctl_path,
        region: dom.path.clone(),
        new_service,
        version: t.version,
    })
}

/// What the workers have counted for entry `i` so far (a snapshot; zero before they run).
fn base_of(sh: &Shared, i: usize) -> NfBase {
    let Some(r) = snapshot_counters(sh) else {
        return NfBase::default();
    };
    NfBase {
        delivered: r.nf_delivered[i],
        returned: r.nf_returned[i],
        quota_drops: r.nf_quota_drops[i],
        verdicts: r.nf_verdicts[i],
        rejects: r.nf_rejects[i],
        reclaimed: sh.nfs[i].reclaimed.load(Ordering::Relaxed),
    }
}

/// `nf_remove`: no new packets for the NF (out of the tables, state REMOVING), then — in
/// the supervisor — a grace period to return what it holds, the reclaim of the rest, and the
/// entry freed with its control region. Answers once the entry is free.
fn nf_remove(sh: &Shared, name: &str) -> Result<NfRemoveAnswer, String> {
    let changes = sh.nf_changes.lock().unwrap_or_else(|p| p.into_inner());
    let i = nf_index(sh, name).ok_or_else(|| format!("no NF named {name:?}"))?;
    let nf = &sh.nfs[i];
    if nf.virtio.is_some() {
        return Err(format!(
            "NF {name:?} is a virtio NF (an unmodified guest on vhost-user ports): it cannot be removed at run time"
        ));
    }
    let was = nf.state.swap(nf_state::REMOVING, Ordering::AcqRel);
    if was == nf_state::REMOVING {
        return Err(format!("NF {name:?} is already being removed"));
    }
    let reclaimed_before = nf.reclaimed.load(Ordering::Relaxed);
    let mut guard = sh.tables.lock().unwrap_or_else(|p| p.into_inner());
    let mut t = (**guard).clone();
    t.remove_instance(crate::id16(i));
    let t = Arc::new(t);
    sh.install_tables(&mut guard, Arc::clone(&t));
    drop(guard);
    broadcast(sh, || Command::Tables(Arc::clone(&t)));
    sh.remove_requests
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((i, was == nf_state::ATTACHED));
    drop(changes);
    let end = Instant::now() + REMOVE_WAIT;
    while nf.state.load(Ordering::Acquire) != nf_state::FREE {
        if Instant::now() >= end || sh.stop.load(Ordering::SeqCst) {
            return Err(format!(
                "NF {name:?} is out of every chain but its buffers were not all back within {} s; it is freed when they are",
                REMOVE_WAIT.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    eprintln!("netvm-core: NF {name} removed; entry {i} is free");
    Ok(NfRemoveAnswer {
        ok: true,
        reclaimed: nf.reclaimed.load(Ordering::Relaxed) - reclaimed_before,
        version: t.version,
    })
}

/// Frees entry `i` of a removed NF once no worker uses it: its control region file goes, its
/// identity is forgotten, a later `nf_add` may take it.
fn free_entry(sh: &Shared, i: usize) {
    let nf = &sh.nfs[i];
    if let Some(id) = nf.take_ident() {
        let _ = std::fs::remove_file(&id.ctl_path);
    }
    nf.state.store(nf_state::FREE, Ordering::Release);
}

/// Takes a consistent snapshot: every worker publishes the same epoch and holds still while the
/// owners are counted. None if the workers are not running.
pub fn snapshot(sh: &Shared) -> Option<Report> {
    sh.started.get()?;
    // A worker waits for the reader only so long (the data plane must not stall on a slow
    // reader); if one moved on before the reader had counted the owned buffers, the count may
    // include its later deliveries: take the snapshot again (a few times at most).
    // Each retry lets the workers wait twice as long (20 ms, 40 ms, … 320 ms): a reader
    // starved of CPU (workers busy-polling every CPU) still gets a clean count.
    let mut report = None;
    for attempt in 0..SNAPSHOT_TRIES {
        sh.snapshot_wait_ms
            .store(20 << attempt.min(4), Ordering::Relaxed);
        let (r, clean) = snapshot_once(sh);
        report = Some(r);
        if clean {
            break;
        }
    }
    report
}

/// The workers' counters, merged, right after a fresh snapshot (None if they do not run).
fn snapshot_counters(sh: &Shared) -> Option<Box<Counters>> {
    snapshot(sh)?;
    let mut total = Box::<Counters>::default();
    for s in &sh.snapshots {
        let c = s.counters.lock().unwrap_or_else(|p| p.into_inner());
        total.merge(&c);
    }
    Some(total)
}

/// Attempts of [`snapshot`] before it reports what it has.
const SNAPSHOT_TRIES: usize = 8;

fn snapshot_once(sh: &Shared) -> (Report, bool) {
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
    let clean = sh
        .snapshots
        .iter()
        .all(|s| s.left_early.load(Ordering::Acquire) != epoch);
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
    // Taken again when a worker did not publish in time (starved of CPU) or moved on too
    // early — not when one has stopped for good (shutdown), which no retry changes.
    let stopped = sh
        .snapshots
        .iter()
        .any(|s| s.epoch.load(Ordering::Acquire) == u64::MAX);
    (
        report_from(sh, &total, epoch, consistent, owned),
        stopped || (clean && consistent),
    )
}

/// Descriptors waiting in an NF's RX rings (core → NF): the saturation signal. Read from the
/// ring words with atomic loads, every value untrusted (a corrupt pair counts as 0).
fn rx_occupancy(id: &NfIdent) -> u32 {
    let Some(rings) = id.ctl.geometry().slot_rings(0) else {
        return 0;
    };
    rings
        .rx_range()
        .map(|r| id.ctl.ring_occupancy(r).unwrap_or(0))
        .fold(0u32, u32::saturating_add)
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
    // Entries an NF has now; each with only its own counts (not those of the entry's
    // earlier NFs).
    let nfs = sh
        .nfs
        .iter()
        .enumerate()
        .filter_map(|(i, n)| n.ident().map(|id| (i, n, id)))
        .map(|(i, n, id)| {
            let dom = &sh.domains[usize::from(id.domain)];
            let b = n.base.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let pid = id.ctl.slot(0).map(|s| s.nf_pid()).unwrap_or(0);
            let occ = rx_occupancy(&id);
            let rejects: BTreeMap<String, u64> = netvm_shm::RejectReason::ALL
                .iter()
                .map(|r| {
                    (
                        r,
                        c.nf_rejects[i][*r as usize].saturating_sub(b.rejects[*r as usize]),
                    )
                })
                .filter(|(_, v)| *v > 0)
                .map(|(r, v)| (r.name().to_string(), v))
                .collect();
            let mut verdicts = c.nf_verdicts[i];
            for (v, base) in verdicts.iter_mut().zip(b.verdicts) {
                *v = v.saturating_sub(base);
            }
            let delivered = c.nf_delivered[i].saturating_sub(b.delivered);
            let returned = c.nf_returned[i].saturating_sub(b.returned);
            let r = NfReport {
                name: id.name.clone(),
                service: id.service.clone(),
                domain: dom.name.clone(),
                state: nf_state::name(n.state.load(Ordering::Acquire)).into(),
                pid,
                delivered,
                returned,
                held: i128::from(delivered) - i128::from(returned),
                reclaimed: n
                    .reclaimed
                    .load(Ordering::Relaxed)
                    .saturating_sub(b.reclaimed),
                verdicts,
                rejects,
                rx_ring_occupancy: occ,
                quota: n.quota(),
                quota_drops: c.nf_quota_drops[i].saturating_sub(b.quota_drops),
                quarantined_for: match n.quarantined_for.load(Ordering::Relaxed) {
                    fault::NONE => None,
                    f => Some(fault::name(f).to_owned()),
                },
                delivered_by_worker: n
                    .delivered
                    .iter()
                    .map(|d| d.load(Ordering::Relaxed))
                    .collect(),
                cycles_per_packet: id.ctl.slot(0).ok().and_then(|s| {
                    // NF-written, hostile: only ever displayed.
                    let pkts = s.counter(netvm_shm::NfCounter::RxPkts);
                    let busy = s.counter(netvm_shm::NfCounter::BusyCycles);
                    (pkts > 0 && busy > 0).then(|| busy / pkts)
                }),
                virtio: None,
            };
            match n.virtio.as_deref() {
                Some(v) => crate::virtio::fill_report(sh, c, i, v, r),
                None => r,
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
    let paths = path_reports(&tables, c);
    let nsh_drops = NshDrop::ALL
        .iter()
        .filter(|r| c.nsh_drops[**r as usize] > 0)
        .map(|r| (r.name().to_string(), c.nsh_drops[*r as usize]))
        .collect();
    let (rx, tx, dr, inf) = (c.received(), c.transmitted(), c.dropped(), c.in_flight());
    let in_handoff = i128::from(c.handed_off) - i128::from(c.taken_over);
    let owned_ok = epoch == u64::MAX || i128::from(owned) + in_handoff == inf;
    Report {
        epoch,
        consistent,
        uptime_s: sh.started.get().map_or(0.0, |t| t.elapsed().as_secs_f64()),
        received: rx,
        transmitted: tx,
        dropped: dr,
        in_flight: inf,
        in_handoff,
        handoffs: c.handed_off,
        worker_busy_cycles: c.busy_cycles,
        worker_cycles_per_packet: (rx > 0 && c.busy_cycles > 0).then(|| c.busy_cycles / rx),
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
        workers: sh
            .config
            .workers
            .iter()
            .zip(&sh.snapshots)
            .map(|(w, s)| {
                let (sleeps, slept_ns) = s.idle.load();
                WorkerReport {
                    cpu: w.cpu,
                    poll: sh.config.poll.name().into(),
                    sleeps,
                    slept_ns,
                }
            })
            .collect(),
        paths,
        nsh_drops,
    }
}

/// Per service path: every active chain with a path id, and retired ones that counted
/// something.
fn path_reports(tables: &crate::tables::Tables, c: &Counters) -> Vec<PathReport> {
    tables
        .chains
        .iter()
        .enumerate()
        .filter_map(|(i, ch)| {
            let id = ch.path_id?;
            let (enc, dec) = (c.path_encap.get(i)?, c.path_decap.get(i)?);
            let drops: BTreeMap<String, u64> = NshDrop::ALL
                .iter()
                .filter(|r| c.path_drops[i][**r as usize] > 0)
                .map(|r| (r.name().to_string(), c.path_drops[i][*r as usize]))
                .collect();
            let counted = *enc > 0 || *dec > 0 || !drops.is_empty();
            (!ch.retired || counted).then(|| PathReport {
                path_id: id,
                chain: ch.name.clone(),
                encapsulated: *enc,
                decapsulated: *dec,
                drops,
            })
        })
        .collect()
}

/// How long `capture_stop` waits for every worker to let go of its tap.
const CAPTURE_STOP_WAIT: Duration = Duration::from_secs(1);

fn lock_capture(sh: &Shared) -> std::sync::MutexGuard<'_, Option<Session>> {
    sh.capture.lock().unwrap_or_else(|p| p.into_inner())
}

/// Resolves a capture point to (kind, NF or port index) and describes it.
fn resolve_point(sh: &Shared, at: &CapturePoint) -> Result<(TapKind, u16, String), String> {
    let inst = &sh.config.name;
    let nf = |name: &str| {
        nf_index(sh, name)
            .and_then(|i| sh.nfs[i].ident().map(|id| (crate::id16(i), id)))
            .ok_or_else(|| {
                let names: Vec<String> = sh
                    .nfs
                    .iter()
                    .filter_map(|n| n.ident().map(|id| id.name.clone()))
                    .collect();
                format!("no NF named {name:?} (NFs: {})", names.join(", "))
            })
    };
    let port = |name: &str| {
        sh.ports
            .iter()
            .position(|p| p.name == name)
            .map(|i| (crate::id16(i), &sh.ports[i]))
            .ok_or_else(|| {
                let names: Vec<&str> = sh.ports.iter().map(|p| p.name.as_str()).collect();
                format!("no port named {name:?} (ports: {})", names.join(", "))
            })
    };
    let nf_desc = |n: &NfIdent| {
        format!(
            "NF {} (service {}, domain {})",
            n.name,
            n.service,
            sh.domains[usize::from(n.domain)].name
        )
    };
    Ok(match at {
        CapturePoint::NfIn(name) => {
            let (i, n) = nf(name)?;
            let d = format!("netvm {inst}: frames delivered to {}", nf_desc(&n));
            (TapKind::NfIn, i, d)
        }
        CapturePoint::NfOut(name) => {
            let (i, n) = nf(name)?;
            let d = format!(
                "netvm {inst}: frames {} passes on (verdict next, service or out), as returned",
                nf_desc(&n)
            );
            (TapKind::NfOut, i, d)
        }
        CapturePoint::NfDrop(name) => {
            let (i, n) = nf(name)?;
            let d = format!("netvm {inst}: frames {} drops (verdict drop)", nf_desc(&n));
            (TapKind::NfDrop, i, d)
        }
        CapturePoint::PortRx(name) => {
            let (i, p) = port(name)?;
            let d = format!(
                "netvm {inst}: frames received on port {} ({})",
                p.name,
                p.port.devargs()
            );
            (TapKind::PortRx, i, d)
        }
        CapturePoint::PortTx(name) => {
            let (i, p) = port(name)?;
            let d = format!(
                "netvm {inst}: frames handed to port {} ({}) for sending",
                p.name,
                p.port.devargs()
            );
            (TapKind::PortTx, i, d)
        }
    })
}

/// `capture_start`: resolves and checks everything, then hands every worker a tap.
fn capture_start(
    sh: &Shared,
    conn: u64,
    at: CapturePoint,
    filter: Option<&MatchConfig>,
    snaplen: Option<u32>,
    count: Option<u64>,
) -> Result<CaptureStartAnswer, String> {
    let (kind, idx, description) = resolve_point(sh, &at)?;
    let port_ids = |name: &str| {
        sh.config
            .ports
            .iter()
            .position(|p| p.name == name)
            .and_then(|i| u16::try_from(i).ok())
    };
    let filter = filter
        .map(|m| crate::tables::compile_match(m, &port_ids, &|f| format!("filter.{f}")))
        .transpose()
        .map_err(|e| e.to_string())?;
    let largest = sh
        .config
        .domains
        .iter()
        .map(|d| d.buffer_size)
        .max()
        .unwrap_or(MAX_SNAPLEN);
    let snaplen = match snaplen {
        None => largest.min(MAX_SNAPLEN),
        Some(n) if (1..=MAX_SNAPLEN).contains(&n) => n,
        Some(n) => return Err(format!("snaplen {n}: must be 1..={MAX_SNAPLEN}")),
    };
    if count == Some(0) {
        return Err("count 0: must be at least 1".into());
    }
    let mut guard = lock_capture(sh);
    if let Some(s) = guard.as_ref() {
        return Err(format!(
            "a capture is already running at {} (id {}); one at a time: stop it first",
            s.at, s.id
        ));
    }
    let id = sh.capture_ids.fetch_add(1, Ordering::Relaxed) + 1;
    let shared = Arc::new(SessionShared {
        remaining: std::sync::atomic::AtomicU64::new(count.unwrap_or(u64::MAX)),
        released: std::sync::atomic::AtomicUsize::new(0),
    });
    let max_dev = sh.ports.iter().map(|p| p.port.id()).max().unwrap_or(0);
    let mut port_index = vec![u16::MAX; usize::from(max_dev) + 1];
    for (i, p) in sh.ports.iter().enumerate() {
        port_index[usize::from(p.port.id())] = crate::id16(i);
    }
    let port_index: Arc<[u16]> = port_index.into();
    let slot_bytes = snaplen as usize;
    let slots = crate::capture::ring_slots(slot_bytes);
    let mut rings = Vec::new();
    for (w, q) in sh.commands.iter().enumerate() {
        let (prod, cons) = CaptureRing::pair(slots, slot_bytes);
        let tap = Tap {
            id,
            kind,
            idx,
            filter: filter.clone(),
            snaplen: slot_bytes,
            limited: count.is_some(),
            ring: prod,
            shared: Arc::clone(&shared),
            port_index: Arc::clone(&port_index),
        };
        if q.push(Command::CaptureStart(Box::new(tap))).is_err() {
            // Undo on the workers that got it (their queues had room a moment ago).
            for q in &sh.commands[..w] {
                let _ = q.push(Command::CaptureStop(id));
            }
            return Err(format!("worker {w}'s command queue is full; try again"));
        }
        rings.push(cons);
    }
    *guard = Some(Session {
        id,
        at: at.clone(),
        owner: conn,
        rings,
        shared,
        limit: count,
        stopping: false,
        stop_pending: Vec::new(),
    });
    drop(guard);
    eprintln!(
        "netvm-core: capture {id} started at {at} (snaplen {snaplen}{})",
        count.map_or(String::new(), |c| format!(", at most {c} frames"))
    );
    Ok(CaptureStartAnswer {
        ok: true,
        id,
        at: at.to_string(),
        snaplen,
        description,
    })
}

/// Asks every worker (still to be told) to drop the session's tap.
fn send_stops(sh: &Shared, s: &mut Session) {
    if !s.stopping {
        s.stopping = true;
        s.stop_pending = (0..sh.commands.len()).collect();
    }
    s.stop_pending
        .retain(|&w| sh.commands[w].push(Command::CaptureStop(s.id)).is_err());
}

/// `capture_read`: a batch of frames; the session ends when it is over and drained.
fn capture_read(sh: &Shared, max: Option<u32>) -> Result<CaptureReadAnswer, String> {
    let mut guard = lock_capture(sh);
    let s = guard.as_mut().ok_or("no capture is running")?;
    if s.stopping && !s.stop_pending.is_empty() {
        send_stops(sh, s);
    }
    let max = max.unwrap_or(MAX_READ_BATCH).clamp(1, MAX_READ_BATCH);
    // Over before the read: every frame it will ever have is in the rings now.
    let over = s.finished(sh.started.get().is_some());
    let packets = s.read(max as usize);
    let done = over && s.drained();
    let a = CaptureReadAnswer {
        ok: true,
        packets,
        captured: s.captured(),
        dropped: s.dropped(),
        done,
    };
    if done {
        // Over by its count: the workers still hold exhausted taps; let them go.
        send_stops(sh, s);
        eprintln!(
            "netvm-core: capture {} at {} over: {} frames, {} dropped",
            s.id, s.at, a.captured, a.dropped
        );
        *guard = None;
    }
    Ok(a)
}

/// `capture_stop`: no more frames are copied once every worker has let go (waited for, up to
/// [`CAPTURE_STOP_WAIT`]); what was copied stays readable.
fn capture_stop(sh: &Shared) -> Result<CaptureStopAnswer, String> {
    let end = Instant::now() + CAPTURE_STOP_WAIT;
    loop {
        let mut guard = lock_capture(sh);
        let s = guard.as_mut().ok_or("no capture is running")?;
        send_stops(sh, s);
        if s.finished(sh.started.get().is_some()) || Instant::now() >= end {
            return Ok(CaptureStopAnswer {
                ok: true,
                captured: s.captured(),
                dropped: s.dropped(),
            });
        }
        drop(guard);
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Connection `conn` closed: a capture it started stops and is forgotten.
pub fn capture_release(sh: &Shared, conn: u64) {
    let mut guard = lock_capture(sh);
    if let Some(s) = guard.as_mut().filter(|s| s.owner == conn) {
        send_stops(sh, s);
        eprintln!(
            "netvm-core: capture {} at {} ended with its connection: {} frames, {} dropped",
            s.id,
            s.at,
            s.captured(),
            s.dropped()
        );
        *guard = None;
    }
}
