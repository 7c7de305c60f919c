//! A crashed NF: two l2fwd instances of one service share the traffic (flow hash) of an endless
//! pcap. SIGKILL one mid-traffic: the core notices the dead process, reclaims every buffer it
//! held, and its flows fail over to the other instance. SIGKILL the other too: the chain's
//! failure policy (drop) counts `nf_unavailable`. Restart both: they re-attach and traffic
//! flows through them again. Accounting holds throughout; the pool is full at the end.
//!
//! The time from SIGKILL to "every buffer reclaimed" is measured and printed; it is asserted
//! only against a generous bound (2 s), since this runs on a loaded 2-CPU machine where the
//! target (100 ms) is a performance figure, not a correctness property.

use std::time::{Duration, Instant};

use netvm_tests::traffic::write_pcap;
use netvm_tests::{eal_section, worker_cpu, Core, Scratch};
use serde_json::{json, Value};

fn nf<'a>(st: &'a Value, name: &str) -> &'a Value {
    st["nfs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap()
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// Kills NF process `idx` (named `name`) and returns how long until the core shows it
/// reclaimed (nothing held, its entry reserved again), polling stats back to back.
fn kill_and_time_reclaim(core: &mut Core, idx: usize, name: &str) -> (Duration, u64) {
    let before = u(&nf(&core.wait_stats(Duration::from_secs(5), |_| true), name)["reclaimed"]);
    core.nfs[idx].signal(libc::SIGKILL);
    let t0 = Instant::now();
    // Back-to-back stats requests (each one is a consistent snapshot of the workers), so the
    // resolution is one request, about a millisecond.
    let (took, st) = loop {
        let v = core.ctl(&json!({"cmd": "stats"}));
        let st = &v["stats"];
        let n = nf(st, name);
        // `pending`: the killed NF's entry is reserved again, which the supervisor does only
        // once the reclaim is done (attached → dead → pending). Its `reclaimed` count grows
        // by what it held — possibly nothing, if the kill found its ring empty and every
        // buffer returned.
        if n["held"] == 0 && n["state"] == "pending" {
            assert_eq!(st["accounting_ok"], true, "{st:#}");
            break (t0.elapsed(), st.clone());
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "not reclaimed: {v:#}\n{}",
            core.core.log_text()
        );
    };
    let _ = core.nfs[idx].wait_timeout(Duration::from_secs(5));
    (took, u(&nf(&st, name)["reclaimed"]) - before)
}

#[test]
fn sigkill_mid_traffic_reclaims_fails_over_and_restarts() {
    let dir = Scratch::new("crash");
    let frames: Vec<Vec<u8>> = netvm_tests::traffic::flow_frames(64, 4);
    let input = dir.path("in.pcap");
    write_pcap(&input, &frames);
    let cfg = json!({
        "name": "crash",
        "workers": [{"cpu": worker_cpu()}],
        "eal": eal_section(),
        "domains": [{"name": "d", "buffers": 4096}],
        "ring_capacity": 512,
        "ports": [
            {"name": "in", "device": format!("net_pcap0,rx_pcap={},infinite_rx=1", input.display()), "domain": "d"},
            {"name": "out", "device": "net_null0,no-rx=1", "domain": "d"}
        ],
        "nfs": [
            {"name": "a", "service": "fwd", "domain": "d"},
            {"name": "b", "service": "fwd", "domain": "d"}
        ],
        "chains": [{"name": "c", "match": {"in_port": "in"}, "services": ["fwd"], "egress": "out"}]
    });
    let mac = ["--dst-mac".to_string(), "02:00:00:00:00:99".into()];
    let mut core = Core::start(cfg, dir, &[]);
    core.spawn_nf("l2fwd", "a", "d", &mac);
    core.spawn_nf("l2fwd", "b", "d", &mac);
    core.wait_running();
    core.wait_stats(Duration::from_secs(30), |s| {
        u(&nf(s, "a")["delivered"]) > 2000 && u(&nf(s, "b")["delivered"]) > 2000
    });

    // Kill a: reclaimed, and its flows fail over to b (no nf_unavailable drops once noticed).
    let (took, reclaimed) = kill_and_time_reclaim(&mut core, 0, "a");
    println!(
        "SIGKILL a: {reclaimed} buffers reclaimed {:.1} ms after the kill",
        took.as_secs_f64() * 1e3
    );
    assert!(took < Duration::from_secs(2), "reclaim took {took:?}");
    let s1 = core.wait_stats(Duration::from_secs(5), |_| true);
    let s2 = core.wait_stats(Duration::from_secs(30), |s| {
        u(&nf(s, "b")["delivered"]) > u(&nf(&s1, "b")["delivered"]) + 2000
    });
    assert_eq!(
        u(&s2["drops"]["nf_unavailable"]),
        u(&s1["drops"]["nf_unavailable"]),
        "flows of the dead instance were not failed over: {s2:#}"
    );
    assert_eq!(nf(&s2, "a")["delivered"], nf(&s1, "a")["delivered"]);

    // Kill b too: no instance left, the drop policy counts the packets.
    let (took_b, reclaimed_b) = kill_and_time_reclaim(&mut core, 1, "b");
    println!(
        "SIGKILL b: {reclaimed_b} buffers reclaimed {:.1} ms after the kill",
        took_b.as_secs_f64() * 1e3
    );
    assert!(took_b < Duration::from_secs(2), "reclaim took {took_b:?}");
    let s3 = core.wait_stats(Duration::from_secs(5), |_| true);
    core.wait_stats(Duration::from_secs(30), |s| {
        u(&s["drops"]["nf_unavailable"]) > u(&s3["drops"]["nf_unavailable"]) + 1000
    });

    // Restart both under the same names: they re-attach and carry traffic again.
    core.nfs.clear();
    core.spawn_nf("l2fwd", "a", "d", &mac);
    core.spawn_nf("l2fwd", "b", "d", &mac);
    let s4 = core.wait_stats(Duration::from_secs(5), |_| true);
    core.wait_stats(Duration::from_secs(30), |s| {
        nf(s, "a")["state"] == "attached"
            && nf(s, "b")["state"] == "attached"
            && u(&nf(s, "a")["delivered"]) > u(&nf(&s4, "a")["delivered"]) + 1000
            && u(&nf(s, "b")["delivered"]) > u(&nf(&s4, "b")["delivered"]) + 1000
    });
    let report = core.shutdown();
    assert_eq!(report["accounting_ok"], true, "{report:#}");
    assert_eq!(report["pools_full"], true, "{report:#}");
    assert!(u(&report["drops"]["reclaimed"]) >= reclaimed + reclaimed_b);
}
