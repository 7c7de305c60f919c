//! `netvm-bench`: runs a benchmark matrix (see the crate docs, [`netvm_benches`]).
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use netvm_benches::matrix::{self, MatrixConfig};
use netvm_benches::runner::{self, RunOptions};

/// netvm benchmark matrix runner.
///
/// A JSON config lists groups of systems under test, chain lengths, placements, domain modes,
/// frame sizes and offered rates (`max`, a paced rate such as `10k`, or `search`: an RFC 2544
/// NDR/PDR binary search over the paced rate, set up by the config's `search` section). Each
/// point runs netvm-pktgen against the system once per repetition (a search: many trials).
/// Method and outputs: docs/benchmarks.md.
#[derive(Parser, Debug)]
#[command(name = "netvm-bench", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run every pending point of CONFIG (resumes: runs with results in OUT are skipped).
    ///
    /// One pktgen run per (point, repetition); a `search` point runs an NDR/PDR search of up to
    /// `search.max_trials` trials plus its latency trials. Writes `raw/<point>-rep<k>.json`, then
    /// results.json, results.csv, results.md (with NDR/PDR tables for search points) and plots.
    Run {
        /// Benchmark config (JSON).
        config: PathBuf,
        /// Results directory.
        #[arg(long, default_value = "benches/results/latest")]
        out: PathBuf,
        /// Directory of the workspace binaries [default: next to netvm-bench].
        #[arg(long)]
        bin_dir: Option<PathBuf>,
        /// Seconds of unmeasured traffic after starting each setup.
        #[arg(long, default_value_t = 1.0)]
        warmup: f64,
        /// No progress bar.
        #[arg(long)]
        no_progress: bool,
    },
    /// Print the run plan (setup outermost) and what is already done, without running.
    Plan {
        /// Benchmark config (JSON).
        config: PathBuf,
        /// Results directory.
        #[arg(long, default_value = "benches/results/latest")]
        out: PathBuf,
    },
    /// Rewrite the reports (JSON, CSV, Markdown with NDR/PDR tables, plots) from the raw
    /// results in OUT.
    Report {
        /// Benchmark config (JSON).
        config: PathBuf,
        /// Results directory.
        #[arg(long, default_value = "benches/results/latest")]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut msg = format!("netvm-bench: {e}");
            let mut src = e.source();
            while let Some(s) = src {
                msg.push_str(&format!(": {s}"));
                src = s.source();
            }
            eprintln!("{msg}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    match cli.command {
        Cmd::Run {
            config,
            out,
            bin_dir,
            warmup,
            no_progress,
        } => {
            let cfg = MatrixConfig::from_file(&config)?;
            let bin_dir = match bin_dir {
                Some(d) => d,
                None => std::env::current_exe()?
                    .parent()
                    .map(PathBuf::from)
                    .unwrap_or_default(),
            };
            let opts = RunOptions {
                out: out.clone(),
                bin_dir,
                progress: !no_progress,
                warmup_s: warmup,
            };
            let made = runner::run(&cfg, &opts)?;
            println!("{made} runs made; reports in {}", out.display());
            print!(
                "{}",
                std::fs::read_to_string(out.join("results.md")).unwrap_or_default()
            );
        }
        Cmd::Plan { config, out } => {
            let cfg = MatrixConfig::from_file(&config)?;
            let plan = matrix::plan(&cfg.points()?, cfg.repetitions);
            let pending = matrix::pending(&plan, &out.join("raw"));
            let todo: usize = pending.iter().map(|(_, r)| r.len()).sum();
            // Written with errors ignored: `netvm-bench plan … | head` closes the pipe early.
            let mut o = std::io::stdout().lock();
            let _ = writeln!(o, "{} runs planned, {todo} pending", plan.len());
            for (setup, runs) in pending {
                let _ = writeln!(o, "{} ({} runs)", setup.key(), runs.len());
                for r in runs {
                    let _ = writeln!(o, "  {}", r.file_name());
                }
            }
        }
        Cmd::Report { config, out } => {
            let cfg = MatrixConfig::from_file(&config)?;
            let plan = matrix::plan(&cfg.points()?, cfg.repetitions);
            netvm_benches::report::write_all(&cfg, &out, &plan)?;
            print!(
                "{}",
                std::fs::read_to_string(out.join("results.md")).unwrap_or_default()
            );
        }
    }
    Ok(())
}
