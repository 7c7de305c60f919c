//! `down`, `status` and `stats`: acting on a running instance from another shell, through its
//! state file and its control socket.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use netvm_api::protocol::{Answer, NfStatus, Request, StatsAnswer, StatusAnswer};

use crate::check::{self, Overrides};
use crate::control;
use crate::error::ManagerError;
use crate::proc::POLL;
use crate::report::{self, Report};
use crate::signals;
use crate::state::{self, State};
use crate::sys;
use crate::up::{
    note, region_dirs, remove_core_regions, CORE_EXIT_TIMEOUT, GRACE, REQUEST_TIMEOUT,
};

/// Which instance: by config file, by name (`/run/netvm/<name>`) or by run directory; with
/// none, the only instance under `/run/netvm`.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// Its config file.
    pub config: Option<PathBuf>,
    /// Its name.
    pub name: Option<String>,
    /// Its run directory.
    pub run_dir: Option<PathBuf>,
}

impl Target {
    /// The run directory this target names.
    pub fn run_dir(&self) -> Result<PathBuf, ManagerError> {
        if let Some(r) = &self.run_dir {
            return Ok(std::path::absolute(r).unwrap_or_else(|_| r.clone()));
        }
        if let Some(c) = &self.config {
            let ov = Overrides {
                name: self.name.clone(),
                run_dir: None,
            };
            return Ok(check::load_unchecked(c, &ov)?.run_dir());
        }
        if let Some(n) = &self.name {
            return Ok(Path::new(state::DEFAULT_RUN_ROOT).join(n));
        }
        let found = state::instances_under_default_root();
        match found.len() {
            1 => Ok(found[0].clone()),
            0 => Err(ManagerError::NotRunning {
                why: format!(
                    "no state file under {}; name one with CONFIG, --name or --run-dir",
                    state::DEFAULT_RUN_ROOT
                ),
            }),
            _ => Err(ManagerError::NotRunning {
                why: format!(
                    "several instances under {} ({}); name one with CONFIG, --name or --run-dir",
                    state::DEFAULT_RUN_ROOT,
                    found
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }),
        }
    }
}

fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// Stops a recorded process (not our child): SIGTERM, SIGKILL after `grace`. Only if its pid
/// still names the process that was started (start time checked). Returns whether it is gone.
fn stop_recorded(what: &str, rec: &state::ProcRecord, grace: Duration) -> bool {
    if !rec.alive() {
        return true;
    }
    sys::signal_if_same(rec.pid, rec.start_time, libc::SIGTERM);
    if wait_until(grace, || !rec.alive()) {
        return true;
    }
    note(format!(
        "{what} (pid {}) ignored SIGTERM; killing it",
        rec.pid
    ));
    sys::signal_if_same(rec.pid, rec.start_time, libc::SIGKILL);
    wait_until(Duration::from_secs(5), || !rec.alive())
}

/// Cleans up after an instance whose manager is gone: stops what still runs of it, removes
/// region files of its core, its socket, gives its hugepages back, removes its state file.
/// Returns what could not be stopped.
pub fn clean_dead(st: &State) -> Vec<String> {
    let mut stuck = Vec::new();
    if let Some(core) = &st.core {
        if core.alive() {
            let _ = control::request::<Answer>(&st.socket, &Request::Shutdown, REQUEST_TIMEOUT);
            if !wait_until(CORE_EXIT_TIMEOUT, || !core.alive())
                && !stop_recorded("netvm-core", core, Duration::from_secs(10))
            {
                stuck.push(format!("netvm-core (pid {})", core.pid));
            }
        }
    }
    for nf in &st.nfs {
        if nf.proc.alive() {
            sys::signal_if_same(nf.proc.pid, nf.proc.start_time, libc::SIGTERM);
        }
    }
    for nf in &st.nfs {
        if !stop_recorded(&format!("NF {}", nf.name), &nf.proc, GRACE) {
            stuck.push(format!("NF {} (pid {})", nf.name, nf.proc.pid));
        }
    }
    if let Some(core) = &st.core {
        if !core.alive() {
            for p in remove_core_regions(&region_dirs(&st.region_dir), core.pid) {
                note(format!("removed region file {}", p.display()));
            }
            if st.socket.exists() {
                let _ = std::fs::remove_file(&st.socket);
            }
        }
    }
    if stuck.is_empty() {
        if let Some(r) = &st.hugepages {
            match r.restore() {
                Ok(line) => note(line),
                Err(e) => note(format!("WARNING: {}", crate::error::chain(&e))),
            }
        }
        st.remove();
    }
    stuck
}

/// `down`: stops the instance. With its manager alive, asks the core to shut down (or, if the
/// socket does not answer, signals the manager) and waits for the manager's own teardown;
/// otherwise does the teardown itself from the state file.
pub fn down(target: &Target, timeout: Duration) -> Result<(), ManagerError> {
    let run_dir = target.run_dir()?;
    let socket = run_dir.join("control.sock");
    let Some(st) = State::load(&run_dir)? else {
        // A core started without the manager: it can still be asked to stop.
        if control::request::<Answer>(&socket, &Request::Shutdown, REQUEST_TIMEOUT).is_ok() {
            note(format!(
                "no state file in {}; asked the core on {} to shut down",
                run_dir.display(),
                socket.display()
            ));
            return Ok(());
        }
        return Err(ManagerError::NotRunning {
            why: format!("no state file in {}", run_dir.display()),
        });
    };
    let manager_alive = st.manager.alive() && st.manager.pid != std::process::id();
    match control::request::<Answer>(&st.socket, &Request::Shutdown, REQUEST_TIMEOUT) {
        Ok(_) => note(format!("asked netvm-core of {:?} to shut down", st.name)),
        Err(e) => {
            note(format!(
                "control socket {} does not answer ({})",
                st.socket.display(),
                crate::error::chain(&e)
            ));
            if manager_alive {
                sys::signal_if_same(st.manager.pid, st.manager.start_time, libc::SIGTERM);
                note(format!(
                    "sent SIGTERM to its manager (pid {})",
                    st.manager.pid
                ));
            }
        }
    }
    if manager_alive {
        let path = state::path_in(&run_dir);
        if wait_until(timeout, || !st.manager.alive()) && !path.exists() {
            note(format!(
                "{:?} stopped; its manager (pid {}) printed the summary",
                st.name, st.manager.pid
            ));
            return Ok(());
        }
        note(format!(
            "its manager (pid {}) did not finish its teardown within {} s; cleaning up from the state file",
            st.manager.pid,
            timeout.as_secs()
        ));
        if !stop_recorded("netvm-manager", &st.manager, GRACE) {
            return Err(ManagerError::Stuck {
                what: format!("netvm-manager (pid {})", st.manager.pid),
            });
        }
        // It may have finished its teardown while dying.
        if !path.exists() {
            return Ok(());
        }
    }
    let st = State::load(&run_dir)?.unwrap_or(st);
    let stuck = clean_dead(&st);
    if stuck.is_empty() {
        note(format!("{:?} stopped", st.name));
        Ok(())
    } else {
        Err(ManagerError::Stuck {
            what: stuck.join(", "),
        })
    }
}

fn alive_word(alive: bool) -> &'static str {
    if alive {
        "running"
    } else {
        "gone"
    }
}

/// `status`: the instance's parts and their state.
pub fn status(target: &Target, json: bool) -> Result<String, ManagerError> {
    let run_dir = target.run_dir()?;
    let st = State::load(&run_dir)?;
    let socket = st
        .as_ref()
        .map_or_else(|| run_dir.join("control.sock"), |s| s.socket.clone());
    let core = control::request::<StatusAnswer>(&socket, &Request::Status, REQUEST_TIMEOUT);
    if st.is_none() && core.is_err() {
        return Err(ManagerError::NotRunning {
            why: format!(
                "no state file and no answering core in {}",
                run_dir.display()
            ),
        });
    }
    if json {
        let v = serde_json::json!({
            "state": st,
            "core": core.as_ref().ok(),
            "core_error": core.as_ref().err().map(|e| crate::error::chain(e)),
        });
        return Ok(serde_json::to_string_pretty(&v).unwrap_or_default() + "\n");
    }
    let mut o = String::new();
    let core_v = core.as_ref().ok();
    let running = core_v.map(|v| v.running);
    let name = st.as_ref().map_or("?", |s| s.name.as_str());
    o.push_str(&format!(
        "instance {name:?}: {}\n",
        match (st.as_ref().map(|s| s.phase.as_str()), running) {
            (_, Some(true)) => "running (traffic flowing)".to_string(),
            (Some(_), _) if st.as_ref().is_some_and(|s| !s.anything_alive()) => {
                "stopped, but its manager died before cleaning up (`down` cleans up)".to_string()
            }
            (Some(p), _) => p.to_string(),
            (None, _) => "core running without a manager".to_string(),
        }
    ));
    o.push_str(&format!("  run dir      {}\n", run_dir.display()));
    if let Some(s) = &st {
        o.push_str(&format!("  config       {}\n", s.config.display()));
        o.push_str(&format!(
            "  manager      pid {:<8} {}\n",
            s.manager.pid,
            alive_word(s.manager.alive())
        ));
        if let Some(c) = &s.core {
            o.push_str(&format!(
                "  netvm-core   pid {:<8} {:<8} log {}\n",
                c.pid,
                alive_word(c.alive()),
                c.log.display()
            ));
        }
    }
    match &core {
        Ok(_) => o.push_str(&format!(
            "  socket       {} (answering)\n",
            socket.display()
        )),
        Err(e) => o.push_str(&format!(
            "  socket       {} ({})\n",
            socket.display(),
            crate::error::chain(e)
        )),
    }
    let core_nfs: &[NfStatus] = core_v.map_or(&[], |v| &v.nfs);
    let rec_nfs = st.as_ref().map(|s| s.nfs.clone()).unwrap_or_default();
    let mut names: Vec<String> = core_nfs.iter().map(|n| n.name.clone()).collect();
    for r in &rec_nfs {
        if !names.contains(&r.name) {
            names.push(r.name.clone());
        }
    }
    if !names.is_empty() {
        o.push_str(&format!(
            "  {:<14} {:<12} {:<10} {:<12} {:>8} {:<9} {:>5}  log\n",
            "NF", "service", "domain", "core says", "pid", "process", "CPU"
        ));
    }
    for n in names {
        let c = core_nfs.iter().find(|v| v.name == n);
        let r = rec_nfs.iter().find(|r| r.name == n);
        o.push_str(&format!(
            "  {:<14} {:<12} {:<10} {:<12} {:>8} {:<9} {:>5}  {}\n",
            n,
            c.map(|c| c.service.as_str())
                .or_else(|| r.map(|r| r.service.as_str()))
                .unwrap_or_default(),
            c.map(|c| c.domain.as_str())
                .or_else(|| r.map(|r| r.domain.as_str()))
                .unwrap_or_default(),
            c.map_or("-", |c| c.state.as_str()),
            r.map(|r| r.proc.pid.to_string())
                .unwrap_or_else(|| "-".into()),
            r.map_or("-", |r| alive_word(r.proc.alive())),
            r.and_then(|r| r.cpu)
                .map_or("-".to_string(), |c| c.to_string()),
            r.map(|r| r.proc.log.display().to_string())
                .unwrap_or_default()
        ));
    }
    for p in core_v.map_or(&[][..], |v| &v.ports) {
        o.push_str(&format!("  port {:<9} {}\n", p.name, p.device));
    }
    for r in core_v.map_or(&[][..], |v| &v.regions) {
        o.push_str(&format!("  region {:<7} {}\n", r.domain, r.path.display()));
    }
    if let Some(h) = st.as_ref().and_then(|s| s.hugepages) {
        o.push_str(&format!(
            "  hugepages    pool grown from {} to {} pages by this instance (given back at teardown)\n",
            h.previous, h.granted
        ));
    }
    Ok(o)
}

/// Options of `stats`.
#[derive(Debug, Clone)]
pub struct StatsOptions {
    /// Refresh forever (or `count` times).
    pub watch: bool,
    /// Seconds between refreshes.
    pub interval: Duration,
    /// Stop after this many refreshes.
    pub count: Option<u64>,
    /// Print the raw JSON report instead of the table.
    pub json: bool,
}

/// One stats snapshot from the core listening on `socket`.
pub fn fetch(socket: &Path) -> Result<Report, ManagerError> {
    control::request::<StatsAnswer>(socket, &Request::Stats, REQUEST_TIMEOUT)
        .map(|a| a.stats)
        .map_err(|source| ManagerError::Control {
            socket: socket.to_path_buf(),
            source,
        })
}

/// The control socket and the name of the instance `target` names: from its state file, else
/// the run directory's `control.sock` and the directory's name (a core started by hand).
pub fn locate(target: &Target) -> Result<(PathBuf, String), ManagerError> {
    let run_dir = target.run_dir()?;
    let st = State::load(&run_dir)?;
    let socket = st
        .as_ref()
        .map_or_else(|| run_dir.join("control.sock"), |s| s.socket.clone());
    let name = st.as_ref().map_or_else(
        || {
            run_dir
                .file_name()
                .map_or("?".into(), |n| n.to_string_lossy().into_owned())
        },
        |s| s.name.clone(),
    );
    Ok((socket, name))
}

/// `stats [--watch]`: counters, rates since start; with `--watch` a table per interval with
/// rates over the last interval. Output goes to `out`.
pub fn stats(
    target: &Target,
    opts: &StatsOptions,
    out: &mut dyn std::io::Write,
) -> Result<(), ManagerError> {
    let (socket, name) = locate(target)?;
    let w = |out: &mut dyn std::io::Write, s: &str| {
        let _ = out.write_all(s.as_bytes());
        let _ = out.flush();
    };
    if !opts.watch {
        let r = fetch(&socket)?;
        if opts.json {
            w(
                out,
                &(serde_json::to_string_pretty(&r).unwrap_or_default() + "\n"),
            );
        } else {
            w(
                out,
                &report::render_table(
                    &name,
                    &report::Delta {
                        prev: None,
                        cur: &r,
                    },
                ),
            );
        }
        return Ok(());
    }
    signals::install();
    let clear = std::io::stdout().is_terminal();
    let mut prev: Option<Report> = None;
    let mut n = 0u64;
    loop {
        let cur = match fetch(&socket) {
            Ok(r) => r,
            Err(e) if n > 0 => {
                note(format!("instance stopped ({})", crate::error::chain(&e)));
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        if opts.json {
            w(
                out,
                &(serde_json::to_string(&cur).unwrap_or_default() + "\n"),
            );
        } else {
            let table = report::render_table(
                &name,
                &report::Delta {
                    prev: prev.as_ref(),
                    cur: &cur,
                },
            );
            if clear {
                w(out, &format!("\x1b[H\x1b[2J{table}"));
            } else {
                w(out, &format!("{table}\n"));
            }
        }
        prev = Some(cur);
        n += 1;
        if opts.count.is_some_and(|c| n >= c) {
            return Ok(());
        }
        let next = Instant::now() + opts.interval;
        while Instant::now() < next {
            if signals::received().is_some() {
                return Ok(());
            }
            std::thread::sleep(POLL);
        }
    }
}
