//! Child processes: started in their own process group (a terminal's Ctrl-C reaches only the
//! manager, which then stops everything in order), with `PR_SET_PDEATHSIG` so they get
//! SIGTERM if the manager dies, optionally pinned to one CPU, stdout and stderr to a log file.
//! They are stopped by pid — only ever the processes this manager started.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::error::{io, ManagerError};
use crate::state::ProcRecord;
use crate::sys;

/// How often waits poll.
pub const POLL: Duration = Duration::from_millis(20);

/// What to start.
#[derive(Debug, Clone)]
pub struct Spec<'a> {
    /// Name for messages (`netvm-core`, `NF "fw1"`).
    pub what: String,
    /// Program.
    pub program: &'a Path,
    /// Arguments.
    pub args: &'a [String],
    /// Working directory.
    pub cwd: &'a Path,
    /// Log file (created or truncated).
    pub log: PathBuf,
    /// CPU to pin to.
    pub cpu: Option<usize>,
    /// Run as this (uid, gid) (the manager must be root), dropping supplementary groups.
    pub user: Option<(u32, u32)>,
}

/// A started child.
#[derive(Debug)]
pub struct Spawned {
    /// Name for messages.
    pub what: String,
    child: Child,
    /// Pid, start time and log.
    pub record: ProcRecord,
    status: Option<ExitStatus>,
}

/// `code N` or `signal N`.
pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("code {c}"),
        (None, Some(s)) => format!("signal {s}"),
        _ => "an unknown status".into(),
    }
}

/// The last non-empty line of a log (preferring one that starts with `prefix`), shortened.
pub fn last_line(log: &Path, prefix: Option<&str>) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let pick = prefix
        .and_then(|p| lines.iter().rev().find(|l| l.starts_with(p)))
        .or(lines.last())
        .copied()
        .unwrap_or("(empty log)");
    let mut s: String = pick.chars().take(400).collect();
    if s.len() < pick.len() {
        s.push('…');
    }
    s
}

impl Spawned {
    /// Starts the process described by `spec`.
    pub fn start(spec: &Spec<'_>) -> Result<Self, ManagerError> {
        let log = std::fs::File::create(&spec.log)
            .map_err(io(format!("creating {}", spec.log.display())))?;
        let log2 = log
            .try_clone()
            .map_err(io(format!("opening {}", spec.log.display())))?;
        let mut cmd = Command::new(spec.program);
        if let Some((uid, gid)) = spec.user {
            use std::os::unix::process::CommandExt as _;
            // std calls setgroups(0), setgid, setuid in the child before exec.
            cmd.gid(gid).uid(uid);
        }
        cmd.args(spec.args)
            .current_dir(spec.cwd)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .process_group(0);
        let parent = libc::pid_t::try_from(std::process::id()).unwrap_or(0);
        // Built before fork: the hook below must not allocate.
        // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes a bit inside it
        // (the CPU was checked against the usable set, far below the set's capacity).
        let cpu_set = spec.cpu.map(|c| unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(c, &mut set);
            set
        });
        // SAFETY: the hook runs in the child between fork and exec and calls only
        // async-signal-safe system calls (prctl, getppid, sched_setaffinity) on data that was
        // prepared before the fork (`cpu_set`, `parent`); it allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The manager died before prctl took effect: do not start an orphan.
                if libc::getppid() != parent {
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                if let Some(set) = &cpu_set {
                    if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) != 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|source| ManagerError::Spawn {
            what: spec.what.clone(),
            program: spec.program.to_path_buf(),
            source,
        })?;
        let pid = child.id();
        let start_time = sys::proc_stat(pid).map_or(0, |(t, _)| t);
        Ok(Self {
            what: spec.what.clone(),
            child,
            record: ProcRecord {
                pid,
                start_time,
                log: spec.log.clone(),
            },
            status: None,
        })
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.record.pid
    }

    /// Its exit status if it has exited (never blocks).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            if let Ok(Some(st)) = self.child.try_wait() {
                self.status = Some(st);
            }
        }
        self.status
    }

    /// Waits up to `timeout` for it to exit.
    pub fn wait_for(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(st) = self.exited() {
                return Some(st);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(POLL);
        }
    }

    /// Sends a signal if it has not exited (it is our child and not yet reaped, so the pid
    /// is still ours).
    pub fn signal(&mut self, sig: libc::c_int) {
        if self.exited().is_some() {
            return;
        }
        if let Ok(p) = libc::pid_t::try_from(self.pid()) {
            // SAFETY: kill(2) on our own unreaped child; no memory is passed.
            unsafe { libc::kill(p, sig) };
        }
    }

    /// SIGTERM, then SIGKILL after `grace`; waits for the exit.
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        if let Some(st) = self.exited() {
            return Some(st);
        }
        self.signal(libc::SIGTERM);
        if let Some(st) = self.wait_for(grace) {
            return Some(st);
        }
        let _ = self.child.kill();
        let st = self.child.wait().ok();
        self.status = st;
        st
    }
}

impl Drop for Spawned {
    /// A child is never left running: SIGKILL and reap if it still is.
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
