//! A tiny matrix (two points, two seconds each) run end to end on real processes: netvm-core
//! port→port and through one l2fwd NF, driven by netvm-pktgen over memif. Checks the reports'
//! fields and that the values are sane, and that a second invocation resumes (runs nothing).
//!
//! Needs the workspace binaries (`cargo build --workspace`, as scripts/test.sh does), hugepages
//! or the no-huge fallback, and root for the manager's hugepage handling.

mod common;

use common::bin_dir;
use netvm_benches::matrix::MatrixConfig;
use netvm_benches::runner::{run, RunOptions};
use serde_json::Value;

#[test]
fn tiny_matrix_end_to_end() {
    let out = std::env::temp_dir().join(format!("netvm-bench-tiny-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let cfg: MatrixConfig = serde_json::from_value(serde_json::json!({
        "name": "tiny",
        "duration_s": 2.0,
        "drain_s": 0.5,
        "repetitions": 1,
        "netvm_buffers": 4096,
        "groups": [{"sut": ["netvm"], "chain": [0, 1], "size": [64], "rate": ["20k"]}]
    }))
    .unwrap();
    let opts = RunOptions {
        out: out.clone(),
        bin_dir: bin_dir(),
        progress: false,
        warmup_s: 0.5,
    };
    assert_eq!(run(&cfg, &opts).expect("run"), 2);

    let res: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    for f in [
        "name",
        "machine",
        "load_avg_1m",
        "config",
        "points",
        "goals",
    ] {
        assert!(res.get(f).is_some(), "results.json lacks {f}");
    }
    let points = res["points"].as_array().unwrap();
    assert_eq!(points.len(), 2, "{points:#?}");
    for p in points {
        assert_eq!(p["status"], "ok", "{p:#}");
        assert_eq!(p["reps_ok"], 1);
        assert_eq!(p["received_le_sent"], true);
        let mpps = p["rx_mpps"]["mean"].as_f64().unwrap();
        assert!(
            mpps > 0.0 && mpps <= p["tx_mpps"]["mean"].as_f64().unwrap() + 1e-9,
            "{p:#}"
        );
        let loss = p["loss_ratio"]["mean"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&loss), "{p:#}");
        let (p50, p99, max) = (
            p["p50_us"]["mean"].as_f64().unwrap(),
            p["p99_us"]["mean"].as_f64().unwrap(),
            p["max_us"]["mean"].as_f64().unwrap(),
        );
        assert!(p50 > 0.0 && p50 <= p99 && p99 <= max, "{p:#}");
    }
    // The raw pktgen report of each run: counts consistent, histogram non-empty.
    let mut raws = 0;
    for e in std::fs::read_dir(out.join("raw")).unwrap() {
        let raw: Value =
            serde_json::from_str(&std::fs::read_to_string(e.unwrap().path()).unwrap()).unwrap();
        let r = &raw["pktgen"];
        let (sent, received, lost) = (
            r["sent"].as_u64().unwrap(),
            r["received"].as_u64().unwrap(),
            r["lost"].as_u64().unwrap(),
        );
        assert!(sent > 0 && received <= sent, "{r:#}");
        assert_eq!(lost, sent - received);
        let ratio = r["loss_ratio"].as_f64().unwrap();
        assert!((ratio - lost as f64 / sent as f64).abs() < 1e-12);
        assert!(r["latency"]["count"].as_u64().unwrap() > 0, "{r:#}");
        assert!(
            r["latency"]["p999_ns"].as_u64().unwrap() >= r["latency"]["p50_ns"].as_u64().unwrap()
        );
        raws += 1;
    }
    assert_eq!(raws, 2);
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv.lines().next().unwrap().starts_with("key,sut,chain"));
    for svg in [
        "mpps_vs_size.svg",
        "latency_vs_load.svg",
        "netvm_vs_peers.svg",
    ] {
        let t = std::fs::read_to_string(out.join(svg)).unwrap();
        assert!(t.contains("<svg"), "{svg}");
    }
    assert!(std::fs::read_to_string(out.join("results.md"))
        .unwrap()
        .contains("| netvm | 1 | process | zero-copy | 64 | 20000 |"));

    // Resume: everything exists, nothing runs again.
    assert_eq!(run(&cfg, &opts).expect("second run"), 0);
    let _ = std::fs::remove_dir_all(&out);
}
