//! `up`: one instance's whole life in the foreground.
//!
//! 1. Check the config (everything `check` does); refuse a second copy of a running instance;
//!    locate the guest image if there are VM NFs.
//! 2. Hugepages: make sure hugetlbfs is mounted at the default region directory, and grow the
//!    pool if fewer pages are free than the instance needs (remembered, undone at teardown).
//! 3. Start `netvm-core` on the effective config (`<run_dir>/config.json`: overrides applied,
//!    paths absolute) and wait for its control socket.
//! 4. Start every NF process pinned to its CPU on its domain's region (paths from the core's
//!    `status`) — for a VM NF, QEMU with that region as its ivshmem BAR ([`crate::vm`]), its
//!    serial console as the NF's log — then wait until the core reports every NF attached
//!    and traffic running.
//! 5. Run until SIGINT/SIGTERM, `--duration`, `down` from another shell, or the core exits,
//!    with a progress line per second.
//! 6. Teardown: `shutdown` over the socket, wait for the core and read its final report, stop
//!    the NFs (SIGTERM, SIGKILL after a grace period), remove whatever region file of that
//!    core pid is left, give the hugepages back, remove the state file, print the summary.
//!
//! A failure at any step of 2–4 runs the same teardown on what was started so far, then
//! returns the error; the [`Instance`]'s `Drop` runs it too if anything panics.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use netvm_api::config::NfKind;
use netvm_api::protocol::{
    Answer, NfAddAnswer, NfRemoveAnswer, Request, StatsAnswer, StatusAnswer,
};

use crate::check::{self, Loaded, Overrides};
use crate::control::{self, ControlError};
use crate::error::{io, ManagerError};
use crate::hugepages::{self, Reservation};
use crate::proc::{self, Spawned, Spec, POLL};
use crate::report::{self, FirewallHits, Report, Summary};
use crate::runtime::{self, MgrAnswer, MgrRequest, NfSpec};
use crate::signals;
use crate::state::{self, NfRecord, ProcRecord, State};
use crate::sys;
use crate::vm;

/// Process NFs of domain *k* (config order) run with gid `NF_ID_BASE + k`, the group that may
/// open the domain's region file.
pub const NF_ID_BASE: u32 = 61_000;
/// Process NF *i* (config order) runs as uid `NF_UID_BASE + i`, the only user (besides root)
/// that may open its control region: NFs of one domain share packet buffers, never control
/// words, and cannot signal or trace each other.
pub const NF_UID_BASE: u32 = 62_000;

/// How `up` runs.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// Stop after this long (from when traffic runs).
    pub duration: Option<Duration>,
    /// Print a progress line per second.
    pub progress: bool,
    /// How long NFs may take to attach.
    pub attach_timeout: Duration,
    /// Also write the summary as JSON here.
    pub summary: Option<PathBuf>,
    /// The netvm-core binary (default: next to netvm-manager, else PATH).
    pub core: Option<PathBuf>,
    /// The guest image for VM NFs (default: see [`crate::vm::GuestImage::locate`]).
    pub guest_image: Option<PathBuf>,
    /// Name / run_dir overrides.
    pub overrides: Overrides,
}

/// How long the core may take to open its control socket.
pub const SOCKET_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the core may take to exit after `shutdown` (it drains NFs first).
pub const CORE_EXIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Grace period between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(5);
/// Timeout of one control request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Timeout of the core's `nf_remove` (it answers once the NF's buffers are all back).
pub const REMOVE_TIMEOUT: Duration = Duration::from_secs(15);

/// chown + chmod of `path`.
fn give_file(path: &Path, uid: u32, gid: u32, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::os::unix::fs::chown(path, Some(uid), Some(gid))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

pub(crate) fn note(msg: impl AsRef<str>) {
    eprintln!("netvm-manager: {}", msg.as_ref());
}

/// Removes region files of core `pid` left in `dirs` (the core removes its own when it exits
/// cleanly). Returns what was removed.
pub fn remove_core_regions(dirs: &[PathBuf], pid: u32) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    for dir in dirs {
        let Ok(rd) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in rd.filter_map(Result::ok) {
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(parsed) = hugepage_tools::regions::parse_region_file_name(name) else {
                continue;
            };
            if parsed.core_pid == pid && std::fs::remove_file(e.path()).is_ok() {
                removed.push(e.path());
            }
        }
    }
    removed
}

/// The log file of NF `name` in `run_dir` (`nf-NAME.log`: never the core's `core.log`).
pub fn nf_log(run_dir: &Path, name: &str) -> PathBuf {
    run_dir.join(format!("nf-{name}.log"))
}

/// Directories where a core may have put its regions: the configured one and /dev/shm.
pub fn region_dirs(region_dir: &Path) -> Vec<PathBuf> {
    let mut v = vec![region_dir.to_path_buf()];
    let shm = PathBuf::from(hugepage_tools::regions::SHM_FALLBACK_DIR);
    if region_dir != shm {
        v.push(shm);
    }
    v
}

/// Takes the run directory's lock file (`.lock`, an exclusive `flock`), so that two `up`s of
/// one instance cannot both start; released when the returned file is dropped.
fn lock_run_dir(run_dir: &Path) -> Result<std::fs::File, ManagerError> {
    use std::os::fd::AsRawFd;
    let path = run_dir.join(".lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io(format!("opening {}", path.display())))?;
    // SAFETY: flock(2) on a file descriptor this function owns (through `f`) for as long as
    // the call runs; no memory is passed.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            let pid = State::load(run_dir)
                .ok()
                .flatten()
                .map_or(0, |s| s.manager.pid);
            return Err(ManagerError::AlreadyRunning {
                name: run_dir
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
                pid,
                state: state::path_in(run_dir),
            });
        }
        return Err(io(format!("locking {}", path.display()))(e));
    }
    Ok(f)
}

/// A process NF's files and identity, for [`Instance::nf_user`].
struct NfFiles<'a> {
    name: &'a str,
    domain: &'a str,
    /// Its entry in the core (config order, then added ones).
    entry: usize,
    program: &'a Path,
    args: &'a [String],
    region: &'a Path,
    control: &'a Path,
}

/// A starting or running instance: everything it started, for teardown.
struct Instance {
    /// `nf add` / `nf remove` requests (`manager.sock`) while it runs.
    requests: Option<runtime::Listener>,
    /// How long an NF may take to attach.
    attach_timeout: Duration,
    loaded: Loaded,
    guest_image: Option<vm::GuestImage>,
    /// VM NFs and when their QEMU started (for the boot-to-attach line).
    vm_started: Vec<(String, Instant)>,
    state: State,
    core: Option<Spawned>,
    nfs: Vec<Spawned>,
    reservation: Option<Reservation>,
    nf_exit_noted: Vec<bool>,
    done: bool,
}

/// What teardown found.
struct Ended {
    core_exit: String,
    report: Option<Report>,
    nf_exits: BTreeMap<String, String>,
    hugepages: Option<String>,
}

/// Runs `config` (see the module docs) and returns the final summary.
pub fn up(config: &Path, opts: &UpOptions) -> Result<Summary, ManagerError> {
    let loaded = check::load(config, &opts.overrides)?;
    let guest_image = if loaded.config.nfs.iter().any(|n| n.kind != NfKind::Process) {
        Some(vm::GuestImage::locate(opts.guest_image.as_deref())?)
    } else {
        None
    };
    let core_bin = match &opts.core {
        Some(p) => p.clone(),
        None => crate::programs::resolve("netvm-core", &loaded.dir).map_err(|_| {
            ManagerError::NoCoreBinary {
                manager: std::env::current_exe().unwrap_or_default(),
            }
        })?,
    };
    signals::install();
    let run_dir = loaded.run_dir();
    std::fs::create_dir_all(&run_dir).map_err(io(format!("creating {}", run_dir.display())))?;
    let lock = lock_run_dir(&run_dir)?;
    let socket = loaded.config.control_socket();
    if let Some(old) = State::load(&run_dir)? {
        if old.anything_alive() {
            return Err(ManagerError::AlreadyRunning {
                name: old.name,
                pid: old.manager.pid,
                state: state::path_in(&run_dir),
            });
        }
        note(format!(
            "a previous instance {:?} left {} behind; cleaning up after it",
            old.name,
            state::path_in(&run_dir).display()
        ));
        crate::instance::clean_dead(&old);
    }
    // Anything that answers on the socket is a running core, even an answer this manager
    // does not understand (its pid is then unknown: 0).
    let answering =
        match control::request::<StatusAnswer>(&socket, &Request::Status, REQUEST_TIMEOUT) {
            Ok(st) => Some(st.pid),
            Err(ControlError::Connect(_) | ControlError::Io { .. }) => None,
            Err(ControlError::BadAnswer { .. } | ControlError::Refused { .. }) => Some(0),
        };
    if let Some(pid) = answering {
        return Err(ManagerError::AlreadyRunning {
            name: loaded.config.name.clone(),
            pid,
            state: socket,
        });
    }
    let me = std::process::id();
    let effective = run_dir.join("config.json");
    let state = State {
        name: loaded.config.name.clone(),
        phase: "starting".into(),
        config: std::path::absolute(config).unwrap_or_else(|_| config.to_path_buf()),
        effective_config: effective,
        run_dir: run_dir.clone(),
        socket,
        region_dir: loaded.config.region_dir(),
        manager: ProcRecord {
            pid: me,
            start_time: sys::proc_stat(me).map_or(0, |(t, _)| t),
            log: PathBuf::new(),
        },
        core: None,
        core_report: run_dir.join("core-report.json"),
        nfs: Vec::new(),
        hugepages: None,
    };
    let mut inst = Instance {
        requests: None,
        attach_timeout: opts.attach_timeout,
        guest_image,
        vm_started: Vec::new(),
        nf_exit_noted: vec![false; loaded.config.nfs.len()],
        loaded,
        state,
        core: None,
        nfs: Vec::new(),
        reservation: None,
        done: false,
    };
    // Held until `up` returns: a second `up` on this run directory fails at once.
    let _lock = lock;
    // Bound before the core starts, so that `nf add` works as soon as `status` says the
    // instance runs (requests wait in the backlog until the main loop takes them).
    let requests = runtime::Listener::bind(&run_dir);
    if let Err(e) = inst.start(opts, &core_bin) {
        note("start failed; stopping what was started");
        let ended = inst.teardown();
        if let Some(h) = ended.hugepages {
            note(h);
        }
        return Err(e);
    }
    match requests {
        Ok(l) => inst.requests = Some(l),
        Err(e) => note(format!(
            "WARNING: NFs cannot be added or removed while it runs: {}",
            crate::error::chain(&e)
        )),
    }
    inst.run(opts);
    inst.finish(opts)
}

impl Instance {
    fn save(&self) {
        if let Err(e) = self.state.save() {
            note(format!("WARNING: {}", crate::error::chain(&e)));
        }
    }

    fn start(&mut self, opts: &UpOptions, core_bin: &Path) -> Result<(), ManagerError> {
        self.state.save()?;
        self.hugepages()?;
        let cfg = &self.loaded.config;
        let text = serde_json::to_string_pretty(cfg).map_err(|source| ManagerError::Json {
            path: self.state.effective_config.clone(),
            source,
        })?;
        std::fs::write(&self.state.effective_config, text).map_err(io(format!(
            "writing {}",
            self.state.effective_config.display()
        )))?;
        let _ = std::fs::remove_file(&self.state.core_report);
        let wait_attach = opts.attach_timeout + Duration::from_secs(10);
        let args = vec![
            self.state.effective_config.display().to_string(),
            "--wait-attach".into(),
            wait_attach.as_secs().to_string(),
            "--summary".into(),
            self.state.core_report.display().to_string(),
        ];
        let core = Spawned::start(&Spec {
            what: "netvm-core".into(),
            program: core_bin,
            args: &args,
            cwd: &self.loaded.dir,
            log: self.state.run_dir.join("core.log"),
            cpu: None,
            user: None,
        })?;
        note(format!(
            "netvm-core started: pid {}, log {}",
            core.pid(),
            core.record.log.display()
        ));
        self.state.core = Some(core.record.clone());
        self.core = Some(core);
        self.save();
        let status = self.wait_socket()?;
        let regions: BTreeMap<String, String> = status
            .regions
            .into_iter()
            .map(|r| (r.domain, r.path.display().to_string()))
            .collect();
        let controls: BTreeMap<String, PathBuf> = status
            .nfs
            .into_iter()
            .map(|n| (n.name, n.control))
            .collect();
        for (i, n) in self.loaded.config.nfs.iter().enumerate() {
            if signals::received().is_some() {
                return Err(ManagerError::Interrupted);
            }
            let region = regions
                .get(&n.domain)
                .cloned()
                .ok_or_else(|| ManagerError::Io {
                    what: format!("the core reported no region for domain {:?}", n.domain),
                    source: std::io::Error::from(std::io::ErrorKind::NotFound),
                })?;
            let control = controls
                .get(&n.name)
                .cloned()
                .ok_or_else(|| ManagerError::Io {
                    what: format!("the core reported no control region for NF {:?}", n.name),
                    source: std::io::Error::from(std::io::ErrorKind::NotFound),
                })?;
            let (program, args) = if n.kind == NfKind::Vm {
                self.vm_command(n, Path::new(&region), &control)?
            } else if n.kind == NfKind::Virtio {
                self.virtio_command(n)?
            } else {
                let Some(program) = self.loaded.programs.get(i).cloned().flatten() else {
                    continue;
                };
                let mut args = vec![
                    "--region".to_string(),
                    region,
                    "--control".to_string(),
                    control.display().to_string(),
                    "--nf".to_string(),
                    n.name.clone(),
                ];
                args.extend(n.args.iter().cloned());
                (program, args)
            };
            if n.kind != NfKind::Process {
                self.vm_started.push((n.name.clone(), Instant::now()));
            }
            // Each process NF runs as its own unprivileged user in its domain's group: the
            // domain's region file is opened to that group only (root:domain-gid, 0660), so a
            // process NF cannot open another domain's region; its control region is its user's
            // only (uid:domain-gid, 0600), so it cannot open a neighbour's. Guests get their
            // domain's region and their own control region from QEMU (root) and nothing else.
            let region_path = PathBuf::from(regions.get(&n.domain).cloned().unwrap_or_default());
            let user = if n.kind == NfKind::Process {
                self.nf_user(&NfFiles {
                    name: &n.name,
                    domain: &n.domain,
                    entry: i,
                    program: &program,
                    args: &args,
                    region: &region_path,
                    control: &control,
                })?
            } else {
                None
            };
            let nf = Spawned::start(&Spec {
                what: format!("NF {:?}", n.name),
                program: &program,
                args: &args,
                cwd: &self.loaded.dir,
                log: nf_log(&self.state.run_dir, &n.name),
                cpu: n.cpu,
                user,
            })?;
            note(format!(
                "NF {} ({} in domain {}) started: pid {}, {}, log {}",
                n.name,
                n.service,
                n.domain,
                nf.pid(),
                n.cpu
                    .map_or("not pinned".to_string(), |c| format!("CPU {c}")),
                nf.record.log.display()
            ));
            self.state.nfs.push(NfRecord {
                name: n.name.clone(),
                service: n.service.clone(),
                domain: n.domain.clone(),
                cpu: n.cpu,
                program: program.clone(),
                args,
                proc: nf.record.clone(),
            });
            self.nfs.push(nf);
            self.save();
        }
        self.wait_attached(opts.attach_timeout)?;
        for (name, t) in &self.vm_started {
            note(format!(
                "VM NF {name}: QEMU start to attached in {:.1} s",
                t.elapsed().as_secs_f64()
            ));
        }
        self.state.phase = "running".into();
        self.save();
        let which =
            if self.state.run_dir == Path::new(state::DEFAULT_RUN_ROOT).join(&self.state.name) {
                format!("--name {}", self.state.name)
            } else {
                format!("--run-dir {}", self.state.run_dir.display())
            };
        note(format!(
            "{:?} running: {} NF(s) attached, {} port(s); stop it with Ctrl-C or `netvm-manager down {which}`",
            self.state.name,
            self.nfs.len(),
            self.loaded.config.ports.len(),
        ));
        Ok(())
    }

    /// The user a process NF runs as, once its domain's region and its control region are
    /// given to it: uid `NF_UID_BASE + entry`, gid `NF_ID_BASE + domain index`. `None` (it
    /// runs as the manager's user) when the manager is not root or the NF's files are not
    /// reachable by an unprivileged user.
    fn nf_user(&self, f: &NfFiles<'_>) -> Result<Option<(u32, u32)>, ManagerError> {
        // Each process NF runs as its own unprivileged user in its domain's group: the
        // domain's region file is opened to that group only (root:domain-gid, 0660), so a
        // process NF cannot open another domain's region; its control region is its user's
        // only (uid:domain-gid, 0600), so it cannot open a neighbour's. Guests get their
        // domain's region and their own control region from QEMU (root) and nothing else.
        let region_arg = f.region.display().to_string();
        let control_arg = f.control.display().to_string();
        let usable = sys::is_root()
            && sys::usable_by_others(
                f.program,
                &self.loaded.dir,
                // The region and control files are given to the NF's user just below.
                &f.args
                    .iter()
                    .filter(|a| **a != region_arg && **a != control_arg)
                    .cloned()
                    .collect::<Vec<_>>(),
            );
        if !usable {
            if sys::is_root() {
                note(format!(
                    "WARNING: NF {} runs as root: its program, working directory or argument \
                     files are not reachable by an unprivileged user, so it cannot get its \
                     domain's own user",
                    f.name
                ));
            }
            return Ok(None);
        }
        let d = self
            .loaded
            .config
            .domains
            .iter()
            .position(|d| d.name == f.domain)
            .unwrap_or(0);
        let gid = NF_ID_BASE + u32::try_from(d).unwrap_or(0);
        let uid = NF_UID_BASE + u32::try_from(f.entry).unwrap_or(0);
        give_file(f.region, 0, gid, 0o660).map_err(|source| ManagerError::Io {
            what: format!("giving domain {:?}'s region to gid {gid}", f.domain),
            source,
        })?;
        give_file(f.control, uid, gid, 0o600).map_err(|source| ManagerError::Io {
            what: format!("giving NF {:?}'s control region to uid {uid}", f.name),
            source,
        })?;
        Ok(Some((uid, gid)))
    }

    /// `nf add` / `nf remove` from another shell (see [`crate::runtime`]): what was done, or
    /// why not, in one line.
    fn runtime_request(&mut self, req: MgrRequest) -> Result<String, String> {
        match req {
            MgrRequest::NfAdd(spec) => self.runtime_add(&spec),
            MgrRequest::NfRemove { name } => self.runtime_remove(&name),
        }
    }

    /// Adds NF `spec`: the manager's own checks, the core's `nf_add`, the process; a failure
    /// after the core's yes stops the process and removes the NF from the core again.
    fn runtime_add(&mut self, spec: &NfSpec) -> Result<String, String> {
        if self.state.nfs.iter().any(|n| n.name == spec.name) {
            return Err(format!("NF name {:?} is taken", spec.name));
        }
        let program = crate::programs::resolve(&spec.program, &self.loaded.dir)?;
        if let Some(c) = spec.cpu {
            let usable = sys::usable_cpus();
            if !usable.contains(&c) {
                return Err(format!(
                    "CPU {c} is not available on this machine (usable CPUs: {})",
                    sys::cpu_list(&usable)
                ));
            }
            if let Some(w) = self.loaded.config.workers.iter().position(|w| w.cpu == c) {
                return Err(format!("CPU {c} is already used by workers[{w}]"));
            }
        }
        let req = Request::NfAdd {
            nf: spec.name.clone(),
            service: spec.service.clone(),
            domain: spec.domain.clone(),
        };
        let a: NfAddAnswer =
            control::request(&self.state.socket, &req, REQUEST_TIMEOUT).map_err(|e| match e {
                ControlError::Refused { error, .. } => error,
                e => format!("control socket: {}", crate::error::chain(&e)),
            })?;
        self.start_runtime_nf(spec, &program, &a).inspect_err(|_| {
            let undo = Request::NfRemove {
                nf: spec.name.clone(),
            };
            if let Err(e) =
                control::request::<NfRemoveAnswer>(&self.state.socket, &undo, REMOVE_TIMEOUT)
            {
                note(format!(
                    "WARNING: removing NF {} from the core again: {}",
                    spec.name,
                    crate::error::chain(&e)
                ));
            }
        })
    }

    /// Starts the process of NF `spec`, which the core has just added (`a`), waits until it
    /// attached, and records it.
    fn start_runtime_nf(
        &mut self,
        spec: &NfSpec,
        program: &Path,
        a: &NfAddAnswer,
    ) -> Result<String, String> {
        let chain = |e: ManagerError| crate::error::chain(&e);
        let mut args = vec![
            "--region".to_string(),
            a.region.display().to_string(),
            "--control".to_string(),
            a.control.display().to_string(),
            "--nf".to_string(),
            spec.name.clone(),
        ];
        args.extend(spec.args.iter().cloned());
        let user = self
            .nf_user(&NfFiles {
                name: &spec.name,
                domain: &spec.domain,
                entry: a.index as usize,
                program,
                args: &args,
                region: &a.region,
                control: &a.control,
            })
            .map_err(chain)?;
        let mut nf = Spawned::start(&Spec {
            what: format!("NF {:?}", spec.name),
            program,
            args: &args,
            cwd: &self.loaded.dir,
            log: nf_log(&self.state.run_dir, &spec.name),
            cpu: spec.cpu,
            user,
        })
        .map_err(chain)?;
        let t0 = Instant::now();
        loop {
            if let Some(st) = nf.exited() {
                return Err(format!(
                    "NF {:?} (pid {}) exited with {} before attaching: {} (log: {})",
                    spec.name,
                    nf.pid(),
                    proc::describe(st),
                    proc::last_line(&nf.record.log, None),
                    nf.record.log.display()
                ));
            }
            if let Ok(st) = control::request::<StatusAnswer>(
                &self.state.socket,
                &Request::Status,
                REQUEST_TIMEOUT,
            ) {
                if st
                    .nfs
                    .iter()
                    .any(|n| n.name == spec.name && n.state == "attached")
                {
                    break;
                }
            }
            if t0.elapsed() >= self.attach_timeout || signals::received().is_some() {
                nf.stop(GRACE);
                return Err(format!(
                    "NF {:?} did not attach within {} s (log: {})",
                    spec.name,
                    self.attach_timeout.as_secs(),
                    nf.record.log.display()
                ));
            }
            std::thread::sleep(POLL);
        }
        let msg = format!(
            "NF {} added: service {}{}, domain {}, entry {}, pid {}, {}, log {}",
            spec.name,
            spec.service,
            if a.new_service { " (new)" } else { "" },
            spec.domain,
            a.index,
            nf.pid(),
            spec.cpu
                .map_or("not pinned".to_string(), |c| format!("CPU {c}")),
            nf.record.log.display()
        );
        note(&msg);
        self.state.nfs.push(NfRecord {
            name: spec.name.clone(),
            service: spec.service.clone(),
            domain: spec.domain.clone(),
            cpu: spec.cpu,
            program: program.to_path_buf(),
            args,
            proc: nf.record.clone(),
        });
        self.nf_exit_noted.insert(self.nfs.len(), false);
        self.nfs.push(nf);
        self.save();
        Ok(msg)
    }

    /// Removes NF `name` in the core (drained, reclaimed, entry freed), then stops its
    /// process and forgets it.
    fn runtime_remove(&mut self, name: &str) -> Result<String, String> {
        let req = Request::NfRemove {
            nf: name.to_owned(),
        };
        let a: NfRemoveAnswer = control::request(&self.state.socket, &req, REMOVE_TIMEOUT)
            .map_err(|e| match e {
                ControlError::Refused { error, .. } => error,
                e => format!("control socket: {}", crate::error::chain(&e)),
            })?;
        let mut msg = format!(
            "NF {name} removed: {} buffer(s) taken back after its grace period",
            a.reclaimed
        );
        match self.state.nfs.iter().position(|n| n.name == name) {
            Some(j) => {
                let mut p = self.nfs.remove(j);
                self.nf_exit_noted.remove(j);
                let rec = self.state.nfs.remove(j);
                let st = p.stop(GRACE);
                self.save();
                msg.push_str(&format!(
                    "; its process (pid {}) ended with {}",
                    rec.proc.pid,
                    st.map_or("an unknown status".into(), proc::describe)
                ));
            }
            None => msg.push_str("; this manager had started no process for it"),
        }
        note(&msg);
        Ok(msg)
    }

    /// QEMU and its arguments for VM NF `n` on `region` (see [`crate::vm`]).
    fn vm_command(
        &self,
        n: &netvm_api::config::NfConfig,
        region: &Path,
        control: &Path,
    ) -> Result<(PathBuf, Vec<String>), ManagerError> {
        let img = self
            .guest_image
            .as_ref()
            .ok_or_else(|| ManagerError::NoGuestImage {
                dir: PathBuf::from("(none located)"),
            })?;
        let (accel, why) = vm::accel(&img.kernel);
        note(format!(
            "VM NF {}: QEMU with {} ({why})",
            n.name,
            accel.name()
        ));
        let args = vm::qemu_args(
            img,
            accel,
            &vm::GuestSpec {
                nf: n,
                program: n.program.as_deref().unwrap_or_default(),
                region,
                region_size: vm::region_file_size(region)?,
                control,
                control_size: vm::region_file_size(control)?,
                dir: &self.loaded.dir,
                run_dir: &self.state.run_dir,
            },
        )?;
        Ok((vm::qemu_binary(), args))
    }

    /// QEMU for a `kind: "virtio"` NF (see [`crate::virtio`]).
    fn virtio_command(
        &self,
        n: &netvm_api::config::NfConfig,
    ) -> Result<(PathBuf, Vec<String>), ManagerError> {
        let img = self
            .guest_image
            .as_ref()
            .ok_or_else(|| ManagerError::NoGuestImage {
                dir: PathBuf::from("(none located)"),
            })?;
        let (accel, why) = vm::accel(&img.kernel);
        note(format!(
            "virtio NF {}: unmodified guest, QEMU with {} ({why}), vhost-user sockets {} and {}",
            n.name,
            accel.name(),
            self.loaded
                .config
                .vhost_socket(&n.name, netvm_api::config::VhostDir::ToGuest)
                .display(),
            self.loaded
                .config
                .vhost_socket(&n.name, netvm_api::config::VhostDir::FromGuest)
                .display()
        ));
        let args = crate::virtio::qemu_args(&self.loaded.config, img, accel, n)?;
        Ok((vm::qemu_binary(), args))
    }

    fn hugepages(&mut self) -> Result<(), ManagerError> {
        let region_dir = self.loaded.config.region_dir();
        let on_huge = if region_dir == Path::new("/dev/hugepages") {
            match hugepage_tools::ensure_mounted(&region_dir, None) {
                Ok(hugepage_tools::MountOutcome::Mounted(_)) => {
                    note(format!("mounted hugetlbfs at {}", region_dir.display()));
                    true
                }
                Ok(_) => true,
                Err(e) => {
                    note(format!(
                        "WARNING: no hugetlbfs at {}: {}",
                        region_dir.display(),
                        crate::error::chain(&e)
                    ));
                    false
                }
            }
        } else {
            hugepages::is_hugetlbfs(&region_dir)
        };
        if !on_huge {
            note(format!(
                "WARNING: region_dir {} is not on hugetlbfs: regions are ordinary shared memory",
                region_dir.display()
            ));
        }
        let need = hugepages::estimate(&self.loaded.config, on_huge).map_err(|e| {
            ManagerError::Invalid {
                file: self.loaded.file.clone(),
                source: netvm_api::config::ConfigError {
                    path: "domains".into(),
                    reason: e.to_string(),
                },
            }
        })?;
        match hugepages::ensure(&need)? {
            hugepages::Outcome::NoHugetlb => {
                note("WARNING: this kernel has no hugepages; DPDK runs without them")
            }
            hugepages::Outcome::Enough { .. } => {}
            hugepages::Outcome::Reserved {
                need,
                available,
                reservation,
            } => {
                note(format!(
                    "hugepages: need {need}, {available} available: pool grown from {} to {} pages (given back at teardown)",
                    reservation.previous, reservation.granted
                ));
                self.reservation = Some(reservation);
                self.state.hugepages = Some(reservation);
                self.save();
            }
        }
        Ok(())
    }

    fn core_exited_error(&mut self) -> Option<ManagerError> {
        let core = self.core.as_mut()?;
        let st = core.exited()?;
        Some(ManagerError::CoreExited {
            pid: core.pid(),
            status: proc::describe(st),
            message: proc::last_line(&core.record.log, Some("netvm-core:")),
            log: core.record.log.clone(),
        })
    }

    fn wait_socket(&mut self) -> Result<StatusAnswer, ManagerError> {
        let t0 = Instant::now();
        loop {
            if let Some(e) = self.core_exited_error() {
                return Err(e);
            }
            if signals::received().is_some() {
                return Err(ManagerError::Interrupted);
            }
            if self.state.socket.exists() {
                if let Ok(st) =
                    control::request(&self.state.socket, &Request::Status, REQUEST_TIMEOUT)
                {
                    return Ok(st);
                }
            }
            if t0.elapsed() >= SOCKET_TIMEOUT {
                let core = self.core.as_ref();
                return Err(ManagerError::NoSocket {
                    pid: core.map_or(0, Spawned::pid),
                    socket: self.state.socket.clone(),
                    secs: SOCKET_TIMEOUT.as_secs(),
                    log: core.map(|c| c.record.log.clone()).unwrap_or_default(),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    fn wait_attached(&mut self, timeout: Duration) -> Result<(), ManagerError> {
        let t0 = Instant::now();
        let mut missing: Vec<String> = self.state.nfs.iter().map(|n| n.name.clone()).collect();
        loop {
            if signals::received().is_some() {
                return Err(ManagerError::Interrupted);
            }
            if let Some(e) = self.core_exited_error() {
                return Err(e);
            }
            for nf in &mut self.nfs {
                if let Some(st) = nf.exited() {
                    let name = nf
                        .what
                        .trim_start_matches("NF ")
                        .trim_matches('"')
                        .to_string();
                    return Err(ManagerError::NfExited {
                        nf: name,
                        pid: nf.pid(),
                        status: proc::describe(st),
                        message: proc::last_line(&nf.record.log, None),
                        log: nf.record.log.clone(),
                    });
                }
            }
            if let Ok(st) = control::request::<StatusAnswer>(
                &self.state.socket,
                &Request::Status,
                REQUEST_TIMEOUT,
            ) {
                missing = st
                    .nfs
                    .into_iter()
                    .filter(|n| n.state != "attached")
                    .map(|n| n.name)
                    .collect();
                if missing.is_empty() && st.running {
                    return Ok(());
                }
            }
            if t0.elapsed() >= timeout {
                let logs = missing
                    .into_iter()
                    .map(|n| {
                        let log = nf_log(&self.state.run_dir, &n);
                        (n, log)
                    })
                    .collect();
                return Err(ManagerError::AttachTimeout {
                    secs: timeout.as_secs(),
                    missing: logs,
                });
            }
            std::thread::sleep(POLL);
        }
    }

    fn run(&mut self, opts: &UpOptions) {
        let t0 = Instant::now();
        let tty = std::io::stderr().is_terminal();
        let mut last = t0;
        let mut prev: Option<Report> = None;
        let mut printed = false;
        loop {
            if let Some(sig) = signals::received() {
                if printed && tty {
                    eprintln!();
                    printed = false;
                }
                note(format!("signal {sig} received: stopping"));
                break;
            }
            if opts.duration.is_some_and(|d| t0.elapsed() >= d) {
                break;
            }
            if let Some(core) = self.core.as_mut() {
                if let Some(st) = core.exited() {
                    if printed && tty {
                        eprintln!();
                        printed = false;
                    }
                    note(format!(
                        "netvm-core exited with {}: stopping",
                        proc::describe(st)
                    ));
                    break;
                }
            }
            for (i, nf) in self.nfs.iter_mut().enumerate() {
                if let Some(st) = nf.exited() {
                    if !self.nf_exit_noted[i] {
                        self.nf_exit_noted[i] = true;
                        if printed && tty {
                            eprintln!();
                            printed = false;
                        }
                        note(format!(
                            "WARNING: {} exited with {} while running ({}); the core takes its buffers back",
                            nf.what,
                            proc::describe(st),
                            proc::last_line(&nf.record.log, None)
                        ));
                        // Tell the core at once: a guest's death is otherwise only seen when
                        // its heartbeat stops (seconds); a process's within milliseconds.
                        if let Some(rec) = self.state.nfs.get(i) {
                            let req = Request::Gone {
                                nf: rec.name.clone(),
                            };
                            let _ = control::request::<Answer>(
                                &self.state.socket,
                                &req,
                                REQUEST_TIMEOUT,
                            );
                        }
                    }
                }
            }
            if let Some(l) = self.requests.take() {
                while let Some((req, conn)) = l.next() {
                    let r = self.runtime_request(req);
                    runtime::reply(conn, &MgrAnswer::from_result(r));
                }
                self.requests = Some(l);
            }
            if opts.progress && last.elapsed() >= Duration::from_secs(1) {
                last = Instant::now();
                if let Ok(StatsAnswer { stats: cur, .. }) =
                    control::request(&self.state.socket, &Request::Stats, REQUEST_TIMEOUT)
                {
                    let line = report::progress_line(&report::Delta {
                        prev: prev.as_ref(),
                        cur: &cur,
                    });
                    let mut err = std::io::stderr().lock();
                    if tty {
                        let _ = write!(err, "\r{line}\x1b[K");
                    } else {
                        let _ = writeln!(err, "{line}");
                    }
                    let _ = err.flush();
                    printed = true;
                    prev = Some(cur);
                }
            }
            std::thread::sleep(POLL);
        }
        if printed && tty {
            eprintln!();
        }
    }

    /// Stops everything that was started, in order; idempotent.
    fn teardown(&mut self) -> Ended {
        let mut ended = Ended {
            core_exit: "no core started".into(),
            report: None,
            nf_exits: BTreeMap::new(),
            hugepages: None,
        };
        if self.done {
            return ended;
        }
        self.state.phase = "stopping".into();
        self.save();
        // No more changes from other shells.
        self.requests = None;
        if let Some(core) = self.core.as_mut() {
            if core.exited().is_none() {
                let _ = control::request::<Answer>(
                    &self.state.socket,
                    &Request::Shutdown,
                    REQUEST_TIMEOUT,
                );
                if core.wait_for(CORE_EXIT_TIMEOUT).is_none() {
                    note(format!(
                        "netvm-core (pid {}) did not exit {} s after shutdown; terminating it",
                        core.pid(),
                        CORE_EXIT_TIMEOUT.as_secs()
                    ));
                    core.stop(Duration::from_secs(10));
                }
            }
            ended.core_exit = core
                .exited()
                .map_or("an unknown status".into(), proc::describe);
            ended.report = std::fs::read_to_string(&self.state.core_report)
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok());
        }
        for nf in &mut self.nfs {
            nf.signal(libc::SIGTERM);
        }
        let deadline = Instant::now() + GRACE;
        for nf in &mut self.nfs {
            let left = deadline.saturating_duration_since(Instant::now());
            if nf.wait_for(left).is_none() {
                note(format!(
                    "{} (pid {}) ignored SIGTERM for {} s; killing it",
                    nf.what,
                    nf.pid(),
                    GRACE.as_secs()
                ));
            }
            let st = nf.stop(Duration::ZERO);
            let name = nf
                .what
                .trim_start_matches("NF ")
                .trim_matches('"')
                .to_string();
            ended
                .nf_exits
                .insert(name, st.map_or("an unknown status".into(), proc::describe));
        }
        if let Some(core) = &self.core {
            for p in remove_core_regions(&region_dirs(&self.state.region_dir), core.pid()) {
                note(format!(
                    "removed region file {} left by the core",
                    p.display()
                ));
            }
        }
        if self.state.socket.exists() {
            let _ = std::fs::remove_file(&self.state.socket);
        }
        for (name, _) in &self.vm_started {
            let _ = std::fs::remove_file(self.state.run_dir.join(format!("vm-{name}.initrd")));
        }
        if let Some(r) = self.reservation.take() {
            ended.hugepages = Some(match r.restore() {
                Ok(line) => line,
                Err(e) => format!(
                    "WARNING: could not give hugepages back: {}",
                    crate::error::chain(&e)
                ),
            });
            self.state.hugepages = None;
        }
        self.state.remove();
        self.done = true;
        ended
    }

    fn finish(mut self, opts: &UpOptions) -> Result<Summary, ManagerError> {
        let ended = self.teardown();
        let Some(report) = ended.report else {
            if let Some(h) = &ended.hugepages {
                note(h);
            }
            let core = self.core.as_ref();
            return Err(ManagerError::NoReport {
                pid: core.map_or(0, Spawned::pid),
                status: ended.core_exit,
                message: core.map_or(String::new(), |c| {
                    proc::last_line(&c.record.log, Some("netvm-core:"))
                }),
                log: core.map(|c| c.record.log.clone()).unwrap_or_default(),
            });
        };
        let mut s = Summary::new(&self.state.name, ended.core_exit, report);
        for nf in &self.state.nfs {
            let log = std::fs::read_to_string(&nf.proc.log).unwrap_or_default();
            if let Some(rules) = report::parse_firewall_hits(&log) {
                s.firewall.push(FirewallHits {
                    nf: nf.name.clone(),
                    rules,
                });
            }
        }
        s.nf_exits = ended.nf_exits;
        s.hugepages = ended.hugepages;
        if let Some(p) = &opts.summary {
            let text = serde_json::to_string_pretty(&s).map_err(|source| ManagerError::Json {
                path: p.clone(),
                source,
            })?;
            std::fs::write(p, text).map_err(io(format!("writing {}", p.display())))?;
        }
        Ok(s)
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.teardown();
        }
    }
}
