//! Bad input at the edges: a port device string DPDK rejects is a clear error naming the port
//! (exit 1, nothing left running); a pcap whose last record is truncated delivers its whole
//! records and nothing else, with the accounting intact. (Truncated, oversized and non-IPv4
//! frames through firewall and l3fwd are counted drops: nfs unit tests, and the ARP and TTL-1
//! frames of every `Load` in the e2e chain tests.)

use std::time::Duration;

use netvm_tests::traffic::{read_pcap, write_pcap, Load};
use netvm_tests::{bin, eal_section, worker_cpu, Core, Proc, Scratch};
use serde_json::json;

#[test]
fn port_dpdk_rejects_is_a_clear_error_naming_the_port() {
    let dir = Scratch::new("badport");
    let cfg = json!({
        "name": "badport",
        "workers": [{"cpu": worker_cpu()}],
        "eal": eal_section(),
        "run_dir": dir.path("run").display().to_string(),
        "region_dir": netvm_tests::region_dir().display().to_string(),
        "domains": [{"name": "d", "buffers": 512}],
        "ports": [
            {"name": "good", "device": "net_null0,no-rx=1", "domain": "d"},
            {"name": "weird", "device": "net_nosuchdriver0,foo=1", "domain": "d"}
        ],
        "nfs": [],
        "chains": [{"name": "c", "match": {"in_port": "good"}, "egress": "drop"}]
    });
    let path = dir.path("config.json");
    std::fs::write(&path, cfg.to_string()).unwrap();
    let mut p = Proc::spawn(
        "netvm-core",
        &bin("netvm-core"),
        &[
            path.display().to_string(),
            "--wait-attach".into(),
            "0".into(),
        ],
        dir.path("core.log"),
        &[],
    );
    let code = p.wait_timeout(Duration::from_secs(60));
    let log = p.log_text();
    println!("{}", log.lines().last().unwrap_or(""));
    assert_eq!(code, Some(1), "{log}");
    let last = log.lines().last().unwrap_or("");
    assert!(
        last.contains("weird") && last.contains("net_nosuchdriver0"),
        "error does not name the port: {log}"
    );
}

#[test]
fn truncated_pcap_record_gives_the_whole_records_only() {
    let dir = Scratch::new("trunc");
    let load = Load::new(8, 4);
    let (input, output) = (dir.path("in.pcap"), dir.path("out.pcap"));
    write_pcap(&input, &load.frames);
    // Cut the last record in the middle of its packet bytes.
    let len = std::fs::metadata(&input).unwrap().len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&input)
        .unwrap();
    f.set_len(len - 10).unwrap();
    let cfg = json!({
        "name": "trunc",
        "workers": [{"cpu": worker_cpu()}],
        "eal": eal_section(),
        "domains": [{"name": "d", "buffers": 512}],
        "ports": [
            {"name": "in", "device": format!("net_pcap0,rx_pcap={}", input.display()), "domain": "d"},
            {"name": "out", "device": format!("net_pcap1,tx_pcap={}", output.display()), "domain": "d"}
        ],
        "nfs": [],
        "chains": [{"name": "c", "match": {"in_port": "in"}, "egress": "out"}]
    });
    let mut core = Core::start(cfg, dir, &[]);
    core.wait_running();
    let whole = load.frames.len() as u64 - 1;
    core.wait_stats(Duration::from_secs(30), |s| {
        s["received"].as_u64() >= Some(whole) && s["in_flight"] == 0
    });
    let report = core.shutdown();
    assert_eq!(report["accounting_ok"], true, "{report:#}");
    assert_eq!(report["pools_full"], true, "{report:#}");
    assert_eq!(report["received"].as_u64(), Some(whole), "{report:#}");
    assert_eq!(
        read_pcap(&output),
        load.frames[..load.frames.len() - 1].to_vec()
    );
}
