//! Core restart. After a clean shutdown the core has removed its region files; a new core makes
//! new ones and (re)started NFs attach to them. After a crash (SIGKILL) the region files stay;
//! the next core for the same domain re-initialises the dead core's file in place with a new
//! generation, and the NFs that are still running see the generation change, drop every stale
//! descriptor and re-attach to the new core by themselves: traffic flows through the same NF
//! processes again.

use std::time::Duration;

use netvm_tests::traffic::write_pcap;
use netvm_tests::{eal_section, worker_cpu, Core, Scratch};
use serde_json::json;

#[test]
fn restarted_core_gets_a_fresh_region_and_restarted_nfs_attach() {
    let data = Scratch::new("restart-data");
    let frames: Vec<Vec<u8>> = netvm_tests::traffic::flow_frames(16, 4);
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

#[test]
fn crashed_core_restarts_in_place_and_running_nfs_reattach() {
    let data = Scratch::new("crash-data");
    let frames: Vec<Vec<u8>> = netvm_tests::traffic::flow_frames(16, 4);
    let input = data.path("in.pcap");
    write_pcap(&input, &frames);
    let n = frames.len() as u64;
    let cfg = json!({
        "name": "crash",
        "workers": [{"cpu": worker_cpu()}],
        "eal": eal_section(),
        "domains": [{"name": "crashdom", "buffers": 1024}],
        "ports": [
            {"name": "in", "device": format!("net_pcap0,rx_pcap={}", input.display()), "domain": "crashdom"},
            {"name": "out", "device": "net_null0,no-rx=1", "domain": "crashdom"}
        ],
        "nfs": [{"name": "f", "service": "fwd", "domain": "crashdom"}],
        "chains": [{"name": "c", "match": {"in_port": "in"}, "services": ["fwd"], "egress": "out"}]
    });
    let mac = ["--dst-mac".to_string(), "02:00:00:00:00:99".into()];
    let mut core1 = Core::start(cfg.clone(), Scratch::new("crash1"), &[]);
    core1.spawn_nf("l2fwd", "f", "crashdom", &mac);
    core1.wait_running();
    core1.wait_stats(Duration::from_secs(30), |s| {
        s["transmitted"].as_u64() == Some(n)
    });
    let region = core1.region("crashdom");
    // The core crashes; its NF keeps running and its region file stays.
    let nf = core1.nfs.pop().expect("nf");
    core1.core.signal(libc::SIGKILL);
    core1.core.wait_timeout(Duration::from_secs(10));
    core1.regions.clear();
    drop(core1);
    assert!(region.exists(), "a crashed core's region stays");

    let mut core2 = Core::start(cfg, Scratch::new("crash2"), &[]);
    core2.nfs.push(nf);
    assert_eq!(
        core2.region("crashdom"),
        region,
        "the new core re-initialises the dead core's region in place"
    );
    // The same NF process re-attaches by itself (the core waits for it before starting ports).
    core2.wait_running();
    let st = core2.wait_stats(Duration::from_secs(30), |s| {
        s["transmitted"].as_u64() == Some(n)
    });
    assert_eq!(
        st["nfs"][0]["pid"].as_u64(),
        Some(u64::from(core2.nfs[0].pid())),
        "{st:#}"
    );
    let r = core2.shutdown();
    assert_eq!(r["accounting_ok"], true, "{r:#}");
    assert_eq!(r["pools_full"], true, "{r:#}");
    assert!(!region.exists(), "region removed at the clean shutdown");
}
