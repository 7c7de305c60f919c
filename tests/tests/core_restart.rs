//! Core restart, as it works today: the region file name carries the core's pid, so a restarted
//! core creates a new file and the old one is unlinked. An NF still mapping the old file can no
//! longer reach the new core (nothing it writes there matters to anyone); a (re)started NF
//! attaches to the new region and traffic flows. The in-place re-attach on a generation change
//! (same path, `Region::create_or_replace`) is covered by netlib-guest's tests; see
//! docs/threat-model.md for what a stable region path would add.

use std::time::Duration;

use netvm_tests::traffic::write_pcap;
use netvm_tests::{eal_section, worker_cpu, Core, Scratch};
use netvm_wire::{generate_mixed_flows, MixedFlows};
use serde_json::json;

#[test]
fn restarted_core_gets_a_fresh_region_and_restarted_nfs_attach() {
    let data = Scratch::new("restart-data");
    let frames: Vec<Vec<u8>> = generate_mixed_flows(&MixedFlows {
        flows: 16,
        packets_per_flow: 4,
        ..Default::default()
    })
    .into_iter()
    .map(|p| p.frame)
    .collect();
    let input = data.path("in.pcap");
    write_pcap(&input, &frames);
    let cfg = json!({
        "name": "restart",
        "workers": [{"cpu": worker_cpu()}],
        "eal": eal_section(),
        "domains": [{"name": "d", "buffers": 1024}],
        "ports": [
            {"name": "in", "device": format!("net_pcap0,rx_pcap={}", input.display()), "domain": "d"},
            {"name": "out", "device": "net_null0,no-rx=1", "domain": "d"}
        ],
        "nfs": [{"name": "f", "service": "fwd", "domain": "d"}],
        "chains": [{"name": "c", "match": {"in_port": "in"}, "services": ["fwd"], "egress": "out"}]
    });
    let mac = ["--dst-mac".to_string(), "02:00:00:00:00:99".into()];
    let n = frames.len() as u64;
    let cfg1 = cfg;

    let mut core1 = Core::start(cfg1.clone(), Scratch::new("restart1"), &[]);
    core1.spawn_nf("l2fwd", "f", "d", &mac);
    core1.wait_running();
    core1.wait_stats(Duration::from_secs(30), |s| {
        s["transmitted"].as_u64() == Some(n)
    });
    let old_region = core1.region("d");
    // The NF outlives the core: take it out of the harness before shutting the core down.
    let old_nf = core1.nfs.pop().expect("nf");
    let r1 = core1.shutdown();
    assert_eq!(r1["pools_full"], true, "{r1:#}");
    drop(core1);
    assert!(!old_region.exists(), "old region file left behind");

    let mut core2 = Core::start(cfg1, Scratch::new("restart2"), &[]);
    let new_region = core2.region("d");
    assert_ne!(
        old_region, new_region,
        "a restarted core reuses the region path"
    );
    core2.spawn_nf("l2fwd", "f", "d", &mac);
    core2.wait_running();
    let st = core2.wait_stats(Duration::from_secs(30), |s| {
        s["transmitted"].as_u64() == Some(n)
    });
    assert_eq!(
        st["nfs"][0]["pid"].as_u64(),
        Some(u64::from(core2.nfs[0].pid()))
    );
    let r2 = core2.shutdown();
    assert_eq!(r2["accounting_ok"], true, "{r2:#}");
    assert_eq!(r2["pools_full"], true, "{r2:#}");
    drop(old_nf);
}
