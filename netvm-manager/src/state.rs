//! The state file `<run_dir>/manager.json`: what `up` started (pids with their start times,
//! logs, the hugepage change), so `down`, `status` and `stats` work from another shell, and
//! `down` can clean up after a manager that died. Written atomically (temp file + rename)
//! after every change; removed when teardown is complete.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{io, ManagerError};
use crate::hugepages::Reservation;
use crate::sys;

/// Name of the state file inside the run directory.
pub const STATE_FILE: &str = "manager.json";
/// Where run directories live by default (`/run/netvm/<name>`).
pub const DEFAULT_RUN_ROOT: &str = "/run/netvm";

/// A process the manager started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcRecord {
    /// Its pid.
    pub pid: u32,
    /// Its start time (`/proc/<pid>/stat` field 22): a recycled pid is never mistaken for it.
    pub start_time: u64,
    /// Its log file (stdout and stderr).
    pub log: PathBuf,
}

impl ProcRecord {
    /// Whether it still runs.
    pub fn alive(&self) -> bool {
        sys::same_process_alive(self.pid, self.start_time)
    }
}

/// An NF process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NfRecord {
    /// NF name.
    pub name: String,
    /// Service.
    pub service: String,
    /// Domain.
    pub domain: String,
    /// CPU it is pinned to.
    pub cpu: Option<usize>,
    /// Program.
    pub program: PathBuf,
    /// Full argument list.
    pub args: Vec<String>,
    /// The process.
    pub proc: ProcRecord,
}

/// Everything about one running instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Instance name.
    pub name: String,
    /// `starting`, `running` or `stopping`.
    pub phase: String,
    /// The config file `up` was given (absolute).
    pub config: PathBuf,
    /// The config the core runs (overrides applied, paths absolute).
    pub effective_config: PathBuf,
    /// Run directory.
    pub run_dir: PathBuf,
    /// Control socket.
    pub socket: PathBuf,
    /// Region directory.
    pub region_dir: PathBuf,
    /// The `up` process.
    pub manager: ProcRecord,
    /// netvm-core.
    pub core: Option<ProcRecord>,
    /// Where the core writes its final report.
    pub core_report: PathBuf,
    /// NF processes.
    pub nfs: Vec<NfRecord>,
    /// The hugepage pool change to undo.
    pub hugepages: Option<Reservation>,
}

/// The state file of a run directory.
pub fn path_in(run_dir: &Path) -> PathBuf {
    run_dir.join(STATE_FILE)
}

impl State {
    /// Writes the state file atomically.
    pub fn save(&self) -> Result<(), ManagerError> {
        let path = path_in(&self.run_dir);
        let tmp = self
            .run_dir
            .join(format!(".{STATE_FILE}.{}", std::process::id()));
        let text = serde_json::to_string_pretty(self).map_err(|source| ManagerError::Json {
            path: path.clone(),
            source,
        })?;
        std::fs::write(&tmp, text).map_err(io(format!("writing {}", tmp.display())))?;
        std::fs::rename(&tmp, &path).map_err(io(format!("writing {}", path.display())))
    }

    /// Reads the state file of `run_dir`; `Ok(None)` if there is none.
    pub fn load(run_dir: &Path) -> Result<Option<State>, ManagerError> {
        let path = path_in(run_dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(format!("reading {}", path.display()))(e)),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|source| ManagerError::Json { path, source })
    }

    /// Removes the state file.
    pub fn remove(&self) {
        let _ = std::fs::remove_file(path_in(&self.run_dir));
    }

    /// Whether any process it names still runs.
    pub fn anything_alive(&self) -> bool {
        self.manager.alive()
            || self.core.as_ref().is_some_and(ProcRecord::alive)
            || self.nfs.iter().any(|n| n.proc.alive())
    }
}

/// Run directories under [`DEFAULT_RUN_ROOT`] that hold a state file.
pub fn instances_under_default_root() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(DEFAULT_RUN_ROOT)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| path_in(p).is_file())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}
