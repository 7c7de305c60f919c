//! The hostile NF at scale. `flood`: while the firewall → l3fwd chain carries its traffic, an NF
//! in the same domain returns every packet it got with one bad field and then again, writes
//! 10^7 random descriptors and scribbles over its slot and its rings' doorbell words. The core
//! survives, counts every reject by reason exactly as the NF predicted,
//! the other chain's output is exact, and the pool is full after shutdown. `quarantine`: with
//! `quarantine_after` set, the same NF is cut off, reported `quarantined`, and the buffers it
//! kept are reclaimed.

use std::time::{Duration, Instant};

use netvm_tests::traffic::{read_pcap, write_pcap, Load};
use netvm_tests::{eal_section, worker_cpu, Core, Scratch};
use serde_json::{json, Value};

const REASONS: [&str; 7] = [
    "bad_index",
    "bad_bounds",
    "zero_length",
    "unknown_verdict",
    "not_owner",
    "port_not_allowed",
    "service_unknown",
];

struct Setup {
    core: Core,
    load: Load,
    n_in: u64,
    bad_frames: u64,
    output: std::path::PathBuf,
}

fn start(tag: &str, quarantine_after: Option<u64>, evil_args: &[String]) -> Setup {
    let dir = Scratch::new(tag);
    let load = Load::new(64, 40);
    let bad_load = Load::new(16, 25);
    let (input, input2, output, output2) = (
        dir.path("in.pcap"),
        dir.path("in2.pcap"),
        dir.path("out.pcap"),
        dir.path("out2.pcap"),
    );
    write_pcap(&input, &load.frames);
    write_pcap(&input2, &bad_load.frames);
    std::fs::write(dir.path("fw.rules"), Load::rules()).unwrap();
    std::fs::write(dir.path("routes"), Load::routes(1)).unwrap();
    let mut cfg = json!({
        "name": tag,
        "workers": [{"cpu": worker_cpu()}],
        "eal": eal_section(),
        // Rings hold the whole load: the NFs share two CPUs with the flood, and the test is
        // about correctness, not about ring-full drops under CPU contention.
        "domains": [{"name": "trusted", "buffers": 8192}],
        "ring_capacity": 4096,
        "ports": [
            {"name": "in", "device": format!("net_pcap0,rx_pcap={}", input.display()), "domain": "trusted"},
            {"name": "out", "device": format!("net_pcap1,tx_pcap={}", output.display()), "domain": "trusted"},
            {"name": "in2", "device": format!("net_pcap2,rx_pcap={}", input2.display()), "domain": "trusted"},
            {"name": "out2", "device": format!("net_pcap3,tx_pcap={}", output2.display()), "domain": "trusted"}
        ],
        "nfs": [
            {"name": "fw1", "service": "firewall", "domain": "trusted"},
            {"name": "l3", "service": "l3fwd", "domain": "trusted"},
            {"name": "evil", "service": "evil", "domain": "trusted"}
        ],
        "chains": [
            {"name": "web", "match": {"in_port": "in"}, "services": ["firewall", "l3fwd"], "egress": "out"},
            {"name": "bad", "match": {"in_port": "in2"}, "services": ["evil"], "egress": "out2"}
        ]
    });
    if let Some(q) = quarantine_after {
        cfg["quarantine_after"] = json!(q);
    }
    let rules = dir.path("fw.rules").display().to_string();
    let routes = dir.path("routes").display().to_string();
    let mut core = Core::start(cfg, dir, &[]);
    core.spawn_nf("firewall", "fw1", "trusted", &["--rules".into(), rules]);
    core.spawn_nf("l3fwd", "l3", "trusted", &["--routes".into(), routes]);
    let mut a = vec!["--mode".to_string(), "flood".into()];
    a.extend(evil_args.iter().cloned());
    core.spawn_nf("hostile-nf", "evil", "trusted", &a);
    core.wait_running();
    let n_in = (load.frames.len() + bad_load.frames.len()) as u64;
    Setup {
        core,
        bad_frames: bad_load.frames.len() as u64,
        load,
        n_in,
        output,
    }
}

/// Waits for the hostile NF's `HOSTILE-REPORT` line.
fn hostile_report(core: &mut Core, timeout: Duration) -> Value {
    let end = Instant::now() + timeout;
    loop {
        let log = core.nfs[2].log_text();
        if let Some(l) = log.lines().find_map(|l| l.strip_prefix("HOSTILE-REPORT ")) {
            return serde_json::from_str(l).expect("report json");
        }
        assert!(core.nfs[2].running(), "hostile-nf exited:\n{log}");
        assert!(
            Instant::now() < end,
            "no report in {timeout:?}:\n{log}\n{}",
            core.core.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The other chain's output is exactly the model's (compact message on failure).
fn same_output(got: &[Vec<u8>], want: &[Vec<u8>], report: &Value) {
    let first_diff = got.iter().zip(want).position(|(a, b)| a != b);
    assert!(
        got.len() == want.len() && first_diff.is_none(),
        "the firewall -> l3fwd chain was disturbed: {} frames out, {} expected, first \
         difference at {first_diff:?}; drops {}",
        got.len(),
        want.len(),
        report["drops"]
    );
}

fn nf<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["nfs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap()
}

#[test]
fn ten_million_bad_descriptors_rejected_by_reason_others_exact() {
    let count: u64 = 10_000_000;
    let t0 = Instant::now();
    let mut s = start(
        "flood",
        None,
        &[
            "--count".into(),
            count.to_string(),
            "--hold".into(),
            "407".into(),
            "--scribble".into(),
        ],
    );
    let rep = hostile_report(&mut s.core, Duration::from_secs(120));
    let expect = rep["expect"].clone();
    let total: u64 = REASONS.iter().map(|r| expect[r].as_u64().unwrap()).sum();
    assert_eq!(rep["cut_off"], false, "{rep}");
    assert_eq!(total, count + 2 * s.bad_frames, "{rep}");
    let n_in = s.n_in;
    s.core.wait_stats(Duration::from_secs(120), |st| {
        let e = nf(st, "evil");
        let got: u64 = REASONS
            .iter()
            .map(|r| e["rejects"][r].as_u64().unwrap_or(0))
            .sum();
        st["received"].as_u64() == Some(n_in) && st["in_flight"] == 0 && got >= total
    });
    let report = s.core.shutdown();
    let elapsed = t0.elapsed();
    assert_eq!(report["accounting_ok"], true, "{report:#}");
    assert_eq!(report["pools_full"], true, "{report:#}");
    let evil = nf(&report, "evil");
    for r in REASONS {
        assert_eq!(
            evil["rejects"][r].as_u64().unwrap_or(0),
            expect[r].as_u64().unwrap(),
            "reason {r}: core {evil:#} vs NF {expect}"
        );
    }
    println!(
        "flood: {} descriptors written by the NF, rejects by reason {}, {} scribble episodes \
         over its slot and doorbells, {:.1} s in all",
        rep["written"],
        evil["rejects"],
        rep["scribble_episodes"],
        elapsed.as_secs_f64()
    );
    // Scribbling over its own slot and doorbells hurts nobody and is no ring corruption.
    assert!(rep["scribble_episodes"].as_u64().unwrap() >= 1, "{rep}");
    assert_eq!(evil["state"], "attached", "{evil:#}");
    assert_eq!(
        evil["rejects"]["ring_index_corrupt"],
        Value::Null,
        "{evil:#}"
    );
    assert_eq!(evil["delivered"].as_u64(), Some(s.bad_frames), "{evil:#}");
    assert_eq!(evil["returned"].as_u64(), Some(s.bad_frames), "{evil:#}");
    assert_eq!(report["drops"]["rejected"].as_u64(), Some(s.bad_frames));
    same_output(&read_pcap(&s.output), &s.load.expected(), &report);
}

#[test]
fn misbehaving_nf_is_quarantined_and_its_buffers_reclaimed() {
    let keep = 100u64;
    let mut s = start(
        "quarantine",
        Some(10_000),
        &[
            "--count".into(),
            "10000000".into(),
            "--hold".into(),
            "407".into(),
            "--keep".into(),
            keep.to_string(),
        ],
    );
    let n_in = s.n_in;
    let st = s.core.wait_stats(Duration::from_secs(60), |st| {
        nf(st, "evil")["state"] == "quarantined"
            && st["received"].as_u64() == Some(n_in)
            && st["in_flight"] == 0
    });
    let evil = nf(&st, "evil");
    // It kept `keep` buffers; random in-range indices may have returned some of them before
    // the cut: the rest were reclaimed, and nothing is held any more.
    let reclaimed = evil["reclaimed"].as_u64().unwrap();
    assert!((1..=keep).contains(&reclaimed), "{evil:#}");
    assert_eq!(evil["held"], 0, "{evil:#}");
    assert_eq!(evil["delivered"], evil["returned"], "{evil:#}");
    let rejects: u64 = evil["rejects"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert!(rejects > 10_000, "{evil:#}");
    let rep = hostile_report(&mut s.core, Duration::from_secs(60));
    assert_eq!(rep["quarantined"], true, "{rep}");
    let status = s.core.ctl(&json!({"cmd": "status"}));
    let evil_status = status["nfs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "evil")
        .unwrap()
        .clone();
    assert_eq!(evil_status["state"], "quarantined", "{status:#}");
    assert_eq!(evil_status["quarantined_for"], "rejects", "{status:#}");
    println!(
        "quarantine: cut off after {rejects} rejects (threshold 10000), {reclaimed} of {keep} \
         kept buffers reclaimed"
    );
    let report = s.core.shutdown();
    assert_eq!(report["accounting_ok"], true, "{report:#}");
    assert_eq!(report["pools_full"], true, "{report:#}");
    assert!(s.core.core.log_text().contains("quarantining NF evil"));
    same_output(&read_pcap(&s.output), &s.load.expected(), &report);
}
