//! netvm's benchmark matrix runner (`netvm-bench`).
//!
//! A JSON config ([`matrix::MatrixConfig`]) lists parameter values — system under test
//! (netvm or a peer built from DPDK's own tools), chain length, NF placement, domain mode,
//! frame size, offered rate — in groups whose Cartesian products are the points to measure,
//! and a number of repetitions. The runner:
//!
//! 1. plans the runs with the expensive setup (starting the switch and its NFs) outermost
//!    ([`matrix::plan`]), so every setup starts once;
//! 2. skips runs whose raw result already exists ([`matrix::pending`]): re-running after an
//!    interruption resumes;
//! 3. for each setup starts the system under test ([`sut`]), then runs `netvm-pktgen` once per
//!    (repetition, size, rate) — or, for rate `search`, an RFC 2544 NDR/PDR search of many
//!    pktgen trials ([`search`]) — writing one raw JSON file per run;
//! 4. aggregates repetitions ([`aggregate`]: mean, standard deviation, median, min, max),
//!    computes the goal ratios of the benchmark issue from the same run ([`aggregate::goals`]),
//!    and writes `results.json`, `results.csv`, `results.md` and SVG plots ([`report`]).
//!
//! What it is not: a statistics package. Figures from this shared 2-core machine are noisy;
//! the ratios between systems measured in the same run are what the results are for.

#![warn(missing_docs)]

pub mod aggregate;
pub mod matrix;
pub mod report;
pub mod runner;
pub mod search;
pub mod sut;

use serde::{Deserialize, Serialize};

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Measured.
    Ok,
    /// Could not be measured on this machine (reason in `error`); not retried.
    Unavailable,
    /// Something broke (reason in `error`); retried on the next invocation.
    Failed,
}

/// One run's raw result (`raw/<point>-rep<k>.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RawResult {
    /// Which run.
    pub run: matrix::Run,
    /// How it ended.
    pub status: Status,
    /// Why it is not ok.
    pub error: Option<String>,
    /// pktgen's report (single runs; None for a search).
    pub pktgen: Option<netvm_pktgen::Report>,
    /// The NDR/PDR search (points with rate `search`; absent in older files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<search::SearchResult>,
    /// /proc/loadavg (1, 5, 15 min) when the run ended.
    pub load_avg: [f64; 3],
    /// When the run ended (seconds since the epoch).
    pub unix_time: u64,
}

/// The 1, 5 and 15 minute load averages.
pub fn load_avg() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = text.split_whitespace().map(|v| v.parse().unwrap_or(0.0));
    [
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
    ]
}
