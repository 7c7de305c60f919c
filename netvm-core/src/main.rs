//! `netvm-core`: runs the data plane described by a JSON config until SIGINT/SIGTERM, a
//! `shutdown` on the control socket, or `--duration`; prints the final report as JSON.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use netvm_core::{config::Config, RunOptions};

/// netvm data plane.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Configuration file (JSON).
    config: PathBuf,
    /// Only validate the configuration (and the NUMA placement of domains with a `numa_node`).
    #[arg(long)]
    check: bool,
    /// Seconds to wait for every configured NF to attach before starting the ports (0: start
    /// at once).
    #[arg(long, default_value_t = 30.0)]
    wait_attach: f64,
    /// Stop after this many seconds.
    #[arg(long)]
    duration: Option<f64>,
    /// Seconds to wait at shutdown for NFs to return buffers.
    #[arg(long, default_value_t = 2.0)]
    drain: f64,
    /// Also write the final report to this file.
    #[arg(long)]
    summary: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(ok) => {
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(3)
            }
        }
        Err(e) => {
            let mut msg = format!("netvm-core: {e}");
            let mut src = std::error::Error::source(&*e);
            while let Some(s) = src {
                msg.push_str(&format!(": {s}"));
                src = s.source();
            }
            eprintln!("{msg}");
            ExitCode::FAILURE
        }
    }
}

fn secs(s: f64) -> Result<Duration, Box<dyn std::error::Error>> {
    Duration::try_from_secs_f64(s).map_err(|e| format!("bad duration {s}: {e}").into())
}

fn run(args: &Args) -> Result<bool, Box<dyn std::error::Error>> {
    let cfg = Config::from_file(&args.config)?;
    if args.check {
        cfg.validate()?;
        netvm_core::domain::check_numa(&cfg)?;
        println!("{}: ok", args.config.display());
        return Ok(true);
    }
    let opts = RunOptions {
        wait_attach: secs(args.wait_attach)?,
        duration: args.duration.map(secs).transpose()?,
        drain: secs(args.drain)?,
        summary: args.summary.clone(),
    };
    let report = netvm_core::run(cfg, &opts)?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    let ok = report.accounting_ok && report.pools_full != Some(false);
    if !ok {
        eprintln!("netvm-core: accounting check failed or pool not full after shutdown");
    }
    Ok(ok)
}
