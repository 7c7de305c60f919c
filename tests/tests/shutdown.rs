//! SIGTERM stops the core cleanly: it waits (bounded) for NFs to give buffers back, reports
//! what an NF still held, takes those buffers back, ends with every pool full, and removes its
//! region files and control socket.

use std::time::{Duration, Instant};

use netvm_tests::traffic::write_pcap;
use netvm_tests::{eal_section, worker_cpu, Core, Scratch};
use serde_json::json;

#[test]
fn sigterm_with_an_nf_holding_buffers() {
    let dir = Scratch::new("term");
    let frames: Vec<Vec<u8>> = netvm_tests::traffic::flow_frames(10, 10);
    let input = dir.path("in.pcap");
    write_pcap(&input, &frames);
    let summary = dir.path("summary.json");
    let cfg = json!({
        "name": "term",
        "workers": [{"cpu": worker_cpu()}],
        "eal": eal_section(),
        "domains": [{"name": "d", "buffers": 1024}],
        "ports": [
            {"name": "in", "device": format!("net_pcap0,rx_pcap={}", input.display()), "domain": "d"},
            {"name": "out", "device": "net_null0,no-rx=1", "domain": "d"}
        ],
        "nfs": [
            {"name": "stuck", "service": "fwd", "domain": "d"},
            {"name": "gate", "service": "unused", "domain": "d"}
        ],
        "chains": [{"name": "c", "match": {"in_port": "in"}, "services": ["fwd"], "egress": "out"}]
    });
    let mut core = Core::start(cfg, dir, &["--drain", "0.3"]);
    core.spawn_nf(
        "l2fwd",
        "stuck",
        "d",
        &["--dst-mac".into(), "02:00:00:00:00:01".into()],
    );
    let end = Instant::now() + Duration::from_secs(30);
    while core.ctl(&json!({"cmd": "status"}))["nfs"][0]["state"] != "attached" {
        assert!(
            Instant::now() < end,
            "NF never attached\n{}",
            core.nf_logs()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // The NF stops before traffic starts (the ports start only once `gate` attaches too), so
    // the whole pcap sits in its ring: it holds 100 buffers when the core stops.
    core.nfs[0].signal(libc::SIGSTOP);
    core.spawn_nf(
        "l2fwd",
        "gate",
        "d",
        &["--dst-mac".into(), "02:00:00:00:00:01".into()],
    );
    core.wait_running();
    core.wait_stats(Duration::from_secs(30), |s| {
        s["received"] == 100 && s["in_flight"] == 100
    });
    let regions: Vec<_> = core.regions.iter().map(|(_, p)| p.clone()).collect();
    core.core.signal(libc::SIGTERM);
    let code = core.core.wait_timeout(Duration::from_secs(30));
    assert_eq!(code, Some(0), "core exit: {}", core.core.log_text());
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).expect("summary")).expect("json");
    assert_eq!(report["held_at_shutdown"]["stuck"], 100, "{report:#}");
    assert_eq!(report["drops"]["reclaimed"], 100, "{report:#}");
    assert_eq!(report["accounting_ok"], true, "{report:#}");
    assert_eq!(report["pools_full"], true, "{report:#}");
    assert!(
        core.core.log_text().contains("still held 100 buffers"),
        "{}",
        core.core.log_text()
    );
    for r in regions {
        assert!(!r.exists(), "region file {} left behind", r.display());
    }
    assert!(!core.socket.exists(), "control socket left behind");
    core.nfs[0].signal(libc::SIGCONT);
}
