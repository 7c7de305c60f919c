//! An NDR/PDR search (`rate: search`) run end to end on real processes: netvm-core port→port,
//! driven by netvm-pktgen over memif, with short trials and a small trial budget. Checks the
//! raw search result (bounds ordered, trials recorded, a latency trial with samples), the
//! aggregate in results.json, the NDR table in results.md, and that a second invocation resumes.
//!
//! Needs the workspace binaries (`cargo build --workspace`, as scripts/test.sh does), hugepages
//! or the no-huge fallback, and root for the manager's hugepage handling.

mod common;

use common::bin_dir;
use netvm_benches::matrix::MatrixConfig;
use netvm_benches::runner::{run, RunOptions};
use netvm_benches::search::Phase;
use netvm_benches::{RawResult, Status};

#[test]
fn ndr_pdr_search_end_to_end() {
    let out = std::env::temp_dir().join(format!("netvm-bench-search-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let cfg: MatrixConfig = serde_json::from_value(serde_json::json!({
        "name": "search",
        "duration_s": 1.0,
        "drain_s": 0.2,
        "repetitions": 1,
        "netvm_buffers": 4096,
        // A plumbing test, not a measurement: PDR at 40% loss and 10 trials. On a shared 2-CPU
        // machine a process that busy-polls next to pktgen halves its rate for a whole trial,
        // or a descheduled receiver overflows a memif ring, at any rate; the search takes the
        // lowest failing rate as its upper bound, so a strict PDR within a small budget could
        // come out 0 and leave nothing to measure latency at.
        "search": {"pdr_loss": 0.4, "trial_s": 0.3, "precision": 0.25, "max_trials": 10,
                   "latency_at": [0.5]},
        "groups": [{"sut": ["netvm"], "chain": [0], "size": [64], "rate": ["search"]}]
    }))
    .unwrap();
    let opts = RunOptions {
        out: out.clone(),
        bin_dir: bin_dir(),
        progress: false,
        warmup_s: 0.3,
    };
    assert_eq!(run(&cfg, &opts).expect("run"), 1);

    let raw_path = out.join("raw/netvm-c0-process-s64-rsearch-rep0.json");
    let raw: RawResult = serde_json::from_str(
        &std::fs::read_to_string(&raw_path)
            .unwrap_or_else(|e| panic!("{}: {e}", raw_path.display())),
    )
    .unwrap();
    assert_eq!(raw.status, Status::Ok, "{:?}", raw.error);
    assert!(raw.pktgen.is_none());
    let s = raw.search.expect("search result");
    assert!(s.mrr_pps > 0.0, "{s:#?}");
    // NDR (no frame lost at all) depends on the machine's load for the reason above, so only
    // its consistency with the trials is asserted: 0 exactly when no trial passed NDR below
    // the lowest rate that failed it.
    assert!(s.pdr_pps > 0 && s.ndr_pps <= s.pdr_pps, "{s:#?}");
    let ndr_hi = s
        .trials
        .iter()
        .filter(|t| !t.pass_ndr)
        .filter_map(|t| t.rate_pps)
        .min()
        .unwrap_or(u64::MAX);
    let passed_below = s
        .trials
        .iter()
        .any(|t| t.pass_ndr && t.rate_pps.is_some_and(|r| r < ndr_hi));
    assert_eq!(s.ndr_pps == 0, !passed_below, "{s:#?}");
    // No trial is paced above what the generator sent unpaced; the expansion steps by 1.25.
    assert!(
        s.pdr_pps as f64 <= s.mrr_tx_pps.max(s.mrr_pps * 1.25) + 1.0,
        "{s:#?}"
    );
    assert!(s.trials.len() >= 3 && s.trials.len() <= 10, "{s:#?}");
    assert_eq!(s.trials[0].phase, Phase::Mrr);
    for t in &s.trials {
        assert!(
            t.offered > 0 && t.received <= t.offered.max(t.sent),
            "{t:#?}"
        );
        assert!((0.0..=1.0).contains(&t.loss_ratio), "{t:#?}");
        // Paced search trials catch up instead of writing frames off.
        assert!(t.rate_pps.is_none() || t.pacing_skipped == 0, "{t:#?}");
        assert!(!t.pass_ndr || t.pass_pdr, "{t:#?}");
        assert!(t.rate_pps.is_some() || t.phase == Phase::Mrr, "{t:#?}");
    }
    // Every bound the search reports passed a trial at that rate.
    for (rate, pass) in [(s.ndr_pps, true), (s.pdr_pps, false)] {
        if rate == 0 {
            continue;
        }
        assert!(
            s.trials
                .iter()
                .any(|t| t.rate_pps == Some(rate) && if pass { t.pass_ndr } else { t.pass_pdr }),
            "{rate}: {s:#?}"
        );
    }
    assert_eq!(s.latency.len(), 1, "{s:#?}");
    let l = &s.latency[0];
    assert_eq!(l.fraction, 0.5);
    assert!(
        l.latency.count > 0 && l.latency.p50_ns <= l.latency.p99_ns,
        "{l:#?}"
    );
    assert!(
        (l.rate_pps as f64 - s.pdr_pps as f64 * 0.5).abs() <= 0.5,
        "latency at half the PDR: {l:#?}"
    );

    let res: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let p = &res["points"][0];
    assert_eq!(p["status"], "ok", "{p:#}");
    assert_eq!(p["point"]["rate_pps"], "search");
    let agg = &p["search"];
    assert_eq!(agg["reps"], 1, "{p:#}");
    let ndr = agg["ndr"]["mpps"]["median"].as_f64().unwrap();
    assert!((ndr - s.ndr_pps as f64 / 1e6).abs() < 1e-9, "{p:#}");
    assert!(
        agg["pdr"]["gbps_l1"]["median"].as_f64().unwrap() > 0.0,
        "{p:#}"
    );
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(
        md.contains("| system | chain | placement | domain | size | reps | MRR Mpps | NDR Mpps |"),
        "{md}"
    );
    assert!(md.contains("| netvm | 0 | process | - | 64 | 1 |"), "{md}");
    assert!(md.contains("| 50% of PDR |"), "{md}");
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert!(csv.contains("-rsearch,"), "{csv}");

    // Resume: the search is done, nothing runs again.
    assert_eq!(run(&cfg, &opts).expect("second run"), 0);
    let _ = std::fs::remove_dir_all(&out);
}
