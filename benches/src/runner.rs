//! The run loop: pending runs setup by setup, one pktgen process per run (one per trial for an
//! NDR/PDR search), raw results on disk.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use indicatif::{ProgressBar, ProgressStyle};

use crate::matrix::{self, MatrixConfig, Offered, Run, Setup};
use crate::search::{self, SearchResult, TrialOutcome};
use crate::sut::{self, Env, Proc, Running};
use crate::{load_avg, RawResult, Status};

/// How to run a matrix.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Results directory (raw/, logs/, setups/ and the reports go here).
    pub out: PathBuf,
    /// Where the workspace binaries are.
    pub bin_dir: PathBuf,
    /// Show a progress bar.
    pub progress: bool,
    /// Seconds of unmeasured traffic after starting each setup (NFs attach, links settle).
    pub warmup_s: f64,
}

/// Errors that stop the whole run (a failing point is recorded, not an error).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The config.
    #[error("benchmark config")]
    Config(#[from] matrix::ConfigError),
    /// Files in the results directory.
    #[error("{path}")]
    Io {
        /// The path.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A binary is missing.
    #[error("{0} is not built (cargo build --release --workspace) or not on PATH")]
    Missing(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |source| RunError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn write_raw(dir: &Path, raw: &RawResult) -> Result<(), RunError> {
    let p = dir.join(raw.run.file_name());
    let tmp = p.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(raw).unwrap_or_default())
        .map_err(io(&tmp))?;
    std::fs::rename(&tmp, &p).map_err(io(&p))
}

/// The pktgen arguments of one run. `catch_up`: a paced run sends every scheduled frame, late
/// if the generator fell behind (search trials), instead of writing a backlog off.
#[allow(clippy::too_many_arguments)]
fn pktgen_args(
    cfg: &MatrixConfig,
    dev: &str,
    rx: &str,
    rx_queues: u16,
    size: u16,
    rate: Option<u64>,
    catch_up: bool,
    duration: f64,
    json: &Path,
) -> Vec<String> {
    let mut args = vec![
        "--dev".into(),
        dev.into(),
        "--rx-dev".into(),
        rx.into(),
        "--rx-queues".into(),
        rx_queues.to_string(),
        "--size".into(),
        size.to_string(),
        "--rate".into(),
        rate.map_or_else(|| "max".into(), |r| r.to_string()),
        "--flows".into(),
        cfg.flows.to_string(),
        "--duration".into(),
        duration.to_string(),
        "--drain".into(),
        cfg.drain_s.to_string(),
        "--cpu".into(),
        cfg.cpus.pktgen.to_string(),
        "--link-timeout".into(),
        "30".into(),
        "--json".into(),
        json.display().to_string(),
    ];
    if catch_up && rate.is_some() {
        args.push("--catch-up".into());
    }
    args
}

/// Runs pktgen once against a running system; returns its report or why it failed.
fn pktgen(
    opts: &RunOptions,
    nice: i32,
    args: Vec<String>,
    json: &Path,
    log: PathBuf,
    budget: Duration,
) -> Result<netvm_pktgen::Report, String> {
    let _ = std::fs::remove_file(json);
    let bin = opts.bin_dir.join("netvm-pktgen");
    let mut c = if nice == 0 {
        Command::new(bin)
    } else {
        let mut c = Command::new("nice");
        c.arg("-n").arg(nice.to_string()).arg(bin);
        c
    };
    c.args(&args);
    let mut p = Proc::spawn("netvm-pktgen", c, log)?;
    let code = p.wait(budget);
    if code.is_none() {
        p.stop(Duration::from_secs(5));
        return Err(format!(
            "pktgen did not finish in {budget:?}:\n{}",
            p.log_tail(1500)
        ));
    }
    if code != Some(0) {
        return Err(format!(
            "pktgen exited with {code:?}:\n{}",
            p.log_tail(1500)
        ));
    }
    let text = std::fs::read_to_string(json).map_err(|e| format!("{}: {e}", json.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("pktgen report: {e}"))
}

/// Runs every pending run of `cfg` and writes the reports. Returns the number of runs made.
pub fn run(cfg: &MatrixConfig, opts: &RunOptions) -> Result<usize, RunError> {
    let points = cfg.points()?;
    let plan = matrix::plan(&points, cfg.repetitions);
    let raw_dir = opts.out.join("raw");
    let log_dir = opts.out.join("logs");
    let setup_dir = opts.out.join("setups");
    for d in [&raw_dir, &log_dir, &setup_dir] {
        std::fs::create_dir_all(d).map_err(io(d))?;
    }
    std::fs::write(
        opts.out.join("config.json"),
        serde_json::to_string_pretty(cfg).unwrap_or_default(),
    )
    .map_err(io(&opts.out))?;
    let pending = matrix::pending(&plan, &raw_dir);
    let total: usize = pending.iter().map(|(_, r)| r.len()).sum();
    for b in ["netvm-pktgen", "netvm-manager", "netvm-core", "l2fwd"] {
        if !opts.bin_dir.join(b).is_file() {
            return Err(RunError::Missing(
                opts.bin_dir.join(b).display().to_string(),
            ));
        }
    }
    if pending.iter().any(|(s, _)| s.sut != matrix::Sut::Netvm)
        && sut::which("dpdk-testpmd").is_none()
    {
        return Err(RunError::Missing("dpdk-testpmd".into()));
    }
    let work = std::env::temp_dir().join(format!("nvb-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(io(&work))?;
    let env = Env {
        bin_dir: opts.bin_dir.clone(),
        work: work.clone(),
        log_dir: log_dir.clone(),
        cpus: cfg.cpus.clone(),
        netvm_buffers: cfg.netvm_buffers,
    };
    let bar = if opts.progress {
        let b = ProgressBar::new(total as u64);
        b.set_style(
            ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} (eta {eta}) {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    let skipped = plan.len() - total;
    if skipped > 0 {
        bar.println(format!(
            "{skipped} runs already have results; {total} to go"
        ));
    }
    let mut made = 0;
    for (seq, (setup, runs)) in pending.iter().enumerate() {
        let seq = u32::try_from(seq).unwrap_or(u32::MAX);
        made += run_setup(
            cfg, opts, &env, seq, setup, runs, &raw_dir, &setup_dir, &bar,
        )?;
    }
    bar.finish_and_clear();
    let _ = std::fs::remove_dir_all(&work);
    crate::report::write_all(cfg, &opts.out, &plan)?;
    Ok(made)
}

#[allow(clippy::too_many_arguments)]
fn run_setup(
    cfg: &MatrixConfig,
    opts: &RunOptions,
    env: &Env,
    seq: u32,
    setup: &Setup,
    runs: &[Run],
    raw_dir: &Path,
    setup_dir: &Path,
    bar: &ProgressBar,
) -> Result<usize, RunError> {
    let record_with = |run: &Run,
                       status: Status,
                       error: Option<String>,
                       rep: Option<netvm_pktgen::Report>,
                       search: Option<SearchResult>| {
        write_raw(
            raw_dir,
            &RawResult {
                run: *run,
                status,
                error,
                pktgen: rep,
                search,
                load_avg: load_avg(),
                unix_time: now_unix(),
            },
        )
    };
    let record = |run: &Run, status: Status, error: Option<String>| {
        record_with(run, status, error, None, None)
    };
    if let Some(why) = setup.unavailable() {
        for r in runs {
            record(r, Status::Unavailable, Some(why.clone()))?;
            bar.inc(1);
        }
        return Ok(0);
    }
    bar.set_message(format!("starting {}", setup.key()));
    let mut sut = match sut::start(setup, env, seq) {
        Ok(s) => s,
        Err(e) => {
            for r in runs {
                record(r, Status::Failed, Some(format!("starting: {e}")))?;
                bar.inc(1);
            }
            return Ok(0);
        }
    };
    let json = env.work.join(format!("pktgen-{seq}.json"));
    let plog = env.log_dir.join(format!("{}-pktgen.log", setup.key()));
    let budget = |d: f64| Duration::from_secs_f64(d + cfg.drain_s + 60.0);
    // Warm-up: links up, NFs attached, caches warm; not recorded.
    let mut broken: Option<String> = None;
    if opts.warmup_s > 0.0 {
        bar.set_message(format!("{} warm-up", setup.key()));
        let size = runs.first().map_or(64, |r| r.point.size);
        let args = pktgen_args(
            cfg,
            &sut.pktgen_dev,
            &sut.pktgen_rx_dev,
            sut.pktgen_rx_queues,
            size,
            None,
            false,
            opts.warmup_s,
            &json,
        );
        if let Err(e) = pktgen(
            opts,
            cfg.pktgen_nice,
            args,
            &json,
            plog.clone(),
            budget(opts.warmup_s),
        ) {
            broken = Some(format!("warm-up: {e}"));
        }
    }
    let mut made = 0;
    for r in runs {
        bar.set_message(r.point.key());
        if broken.is_none() {
            if let Err(e) = sut.check_alive() {
                broken = Some(e);
            }
        }
        if let Some(e) = &broken {
            record(r, Status::Failed, Some(e.clone()))?;
            bar.inc(1);
            continue;
        }
        if r.point.rate == Offered::Search {
            let trial = Trial {
                cfg,
                opts,
                json: &json,
                log: &plog,
                run: r,
                bar,
            };
            match run_search(&trial, &mut sut) {
                Ok(res) => record_with(r, Status::Ok, None, None, Some(res))?,
                Err(e) => record(r, Status::Failed, Some(e))?,
            }
            made += 1;
            bar.inc(1);
            continue;
        }
        let args = pktgen_args(
            cfg,
            &sut.pktgen_dev,
            &sut.pktgen_rx_dev,
            sut.pktgen_rx_queues,
            r.point.size,
            r.point.rate.pps(),
            false,
            cfg.duration_s,
            &json,
        );
        match pktgen(
            opts,
            cfg.pktgen_nice,
            args,
            &json,
            plog.clone(),
            budget(cfg.duration_s),
        ) {
            Ok(rep) => record_with(r, Status::Ok, None, Some(rep), None)?,
            Err(e) => record(r, Status::Failed, Some(e))?,
        }
        made += 1;
        bar.inc(1);
    }
    bar.set_message(format!("stopping {}", setup.key()));
    let summary = sut.stop();
    let rec = serde_json::json!({"setup": setup, "netvm_summary": summary, "load_avg": load_avg()});
    let p = setup_dir.join(format!("{}.json", setup.key()));
    std::fs::write(&p, serde_json::to_string_pretty(&rec).unwrap_or_default()).map_err(io(&p))?;
    Ok(made)
}

/// What a search trial needs besides the running system.
struct Trial<'a> {
    cfg: &'a MatrixConfig,
    opts: &'a RunOptions,
    json: &'a Path,
    log: &'a Path,
    run: &'a Run,
    bar: &'a ProgressBar,
}

/// An NDR/PDR search on a running system: one pktgen process per trial, paced trials with
/// `--catch-up` (every scheduled frame is offered; see [`crate::search`]).
fn run_search(t: &Trial, sut: &mut Running) -> Result<SearchResult, String> {
    let mut n = 0;
    let key = t.run.point.key();
    search::search(&t.cfg.search, t.cfg.duration_s, |rate, secs| {
        sut.check_alive()?;
        n += 1;
        t.bar.set_message(format!(
            "{key} trial {n} at {}",
            rate.map_or_else(|| "max".into(), |r| format!("{:.3} Mpps", r as f64 / 1e6))
        ));
        let args = pktgen_args(
            t.cfg,
            &sut.pktgen_dev,
            &sut.pktgen_rx_dev,
            sut.pktgen_rx_queues,
            t.run.point.size,
            rate,
            true,
            secs,
            t.json,
        );
        let budget = Duration::from_secs_f64(secs + t.cfg.drain_s + 60.0);
        let rep = pktgen(
            t.opts,
            t.cfg.pktgen_nice,
            args,
            t.json,
            t.log.to_path_buf(),
            budget,
        )?;
        Ok(TrialOutcome::from(&rep))
    })
}
