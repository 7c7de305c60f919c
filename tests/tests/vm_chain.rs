//! The reference chain with its first NF in a real QEMU guest: pcap in → firewall (VM, kind
//! `vm`, launched by `netvm-manager up`; KVM if it works here, else TCG) → l3fwd (host
//! process) → pcap out. Same assertions as the process-mode test: byte-exact output, counters
//! add up, every pool full after teardown; and the manager leaves no QEMU behind.
//!
//! Prints the boot-to-attach time and (second test) the forwarding rate through the guest.

use std::time::{Duration, Instant};

use netvm_tests::traffic::{self, Load};
use netvm_tests::vm::{check_fw_l3_output, qemu_pids_mentioning, ManagedRun};
use netvm_tests::{eal_section, worker_cpu, Scratch};

#[test]
fn firewall_in_vm_then_l3fwd_exact_output() {
    let dir = Scratch::new("vm-chain");
    let load = Load::new(24, 12);
    let input = dir.path("in.pcap");
    let output = dir.path("out.pcap");
    traffic::write_pcap(&input, &load.frames);
    let rules = dir.path("fw.rules");
    let routes = dir.path("routes");
    std::fs::write(&rules, Load::rules()).expect("rules");
    std::fs::write(&routes, Load::routes(1)).expect("routes");
    let cfg = serde_json::json!({
        "name": "vmchain",
        "workers": [{"cpu": worker_cpu()}],
        "eal": eal_section(),
        "domains": [{"name": "edge", "buffers": 4096}],
        "ports": [
            {"name": "in", "device": format!("net_pcap0,rx_pcap={}", input.display()), "domain": "edge"},
            {"name": "out", "device": format!("net_pcap1,tx_pcap={}", output.display()), "domain": "edge"}
        ],
        "nfs": [
            {"name": "fw1", "service": "firewall", "kind": "vm", "domain": "edge",
             "program": "firewall", "args": ["--rules", rules.display().to_string()],
             "vm": {"memory_mb": 256, "vcpus": 1}},
            {"name": "l3", "service": "l3fwd", "domain": "edge",
             "program": "l3fwd", "args": ["--routes", routes.display().to_string()]}
        ],
        "chains": [{"name": "web", "match": {"in_port": "in"}, "services": ["firewall", "l3fwd"], "egress": "out"}]
    });
    let mut run = ManagedRun::start(cfg, dir);
    let run_dir = run.run_dir.display().to_string();
    let attach = run.wait_running(Duration::from_secs(300));
    let n_in = load.frames.len() as u64;
    run.wait_stats(Duration::from_secs(120), |s| {
        s["received"].as_u64() == Some(n_in) && s["in_flight"] == 0
    });
    let console = run.nf_log("fw1");
    assert!(
        console.contains("firewall: attached as \"fw1\"") && console.contains("resource2"),
        "the guest firewall attached through the ivshmem BAR:\n{console}"
    );
    let manager_log = run.manager.log_text();
    let report = run.stop();
    let out = traffic::read_pcap(&output);
    check_fw_l3_output(&report, &load, &out);
    assert!(
        qemu_pids_mentioning(&run_dir).is_empty(),
        "a QEMU of this run survived teardown"
    );
    let boot = manager_log
        .lines()
        .find(|l| l.contains("QEMU start to attached"))
        .unwrap_or("(boot-to-attach not logged)");
    println!(
        "FIGURE {boot}; manager start to traffic running {:.1} s",
        attach.as_secs_f64()
    );
}

/// The functional forwarding rate through a VM NF (TCG here; KVM where it works): an endless
/// pcap → firewall (VM) → out, measured over a few seconds from the core's counters. Only
/// correctness is asserted (accounting, pools); the rate is printed.
#[test]
fn vm_forwarding_rate() {
    let dir = Scratch::new("vm-rate");
    let load = Load::new(24, 12);
    let input = dir.path("in.pcap");
    traffic::write_pcap(&input, &load.frames);
    let rules = dir.path("fw.rules");
    std::fs::write(&rules, Load::rules()).expect("rules");
    let cfg = serde_json::json!({
        "name": "vmrate",
        "workers": [{"cpu": worker_cpu()}],
        "eal": eal_section(),
        "domains": [{"name": "edge", "buffers": 4096}],
        "ports": [
            {"name": "in", "device": format!("net_pcap0,rx_pcap={},infinite_rx=1", input.display()), "domain": "edge"},
            {"name": "out", "device": "net_pcap1,tx_pcap=/dev/null", "domain": "edge"}
        ],
        "nfs": [
            {"name": "fw1", "service": "firewall", "kind": "vm", "domain": "edge",
             "program": "firewall", "args": ["--rules", rules.display().to_string()]}
        ],
        "chains": [{"name": "web", "match": {"in_port": "in"}, "services": ["firewall"], "egress": "out"}]
    });
    let mut run = ManagedRun::start(cfg, dir);
    run.wait_running(Duration::from_secs(300));
    let returned = |s: &serde_json::Value| {
        s["nfs"]
            .as_array()
            .and_then(|a| a.iter().find(|n| n["name"] == "fw1"))
            .and_then(|n| n["returned"].as_u64())
            .unwrap_or(0)
    };
    let s1 = run.wait_stats(Duration::from_secs(60), |s| returned(s) > 0);
    let t1 = Instant::now();
    let r1 = returned(&s1);
    // Measure over at least 3 s and 1000 packets (a deadline-bounded wait on a condition).
    let s2 = run.wait_stats(Duration::from_secs(120), |s| {
        t1.elapsed() >= Duration::from_secs(3) && returned(s) >= r1 + 1000
    });
    let dt = t1.elapsed().as_secs_f64();
    let r2 = returned(&s2);
    let manager_log = run.manager.log_text();
    let report = run.stop();
    assert_eq!(report["accounting_ok"], true, "{report:#}");
    assert_eq!(report["pools_full"], true, "{report:#}");
    let accel = manager_log
        .lines()
        .find(|l| l.contains("QEMU with"))
        .unwrap_or("(accelerator not logged)");
    let boot = manager_log
        .lines()
        .find(|l| l.contains("QEMU start to attached"))
        .unwrap_or("(boot-to-attach not logged)");
    println!("FIGURE {boot}");
    println!(
        "FIGURE vm forwarding rate: {} packets through the guest firewall in {dt:.2} s = {:.0} pps; {accel}",
        r2 - r1,
        (r2 - r1) as f64 / dt
    );
}

/// A guest powered off mid-traffic (its QEMU killed): the manager tells the core, which takes
/// back every buffer the guest held and keeps the pools whole; the chain then drops (counted)
/// for lack of an instance. Prints the time from the kill to the reclaim.
#[test]
fn guest_powered_off_mid_traffic_is_reclaimed() {
    let dir = Scratch::new("vm-off");
    let load = Load::new(24, 12);
    let input = dir.path("in.pcap");
    traffic::write_pcap(&input, &load.frames);
    let rules = dir.path("fw.rules");
    std::fs::write(&rules, Load::rules()).expect("rules");
    let cfg = serde_json::json!({
        "name": "vmoff",
        "workers": [{"cpu": worker_cpu()}],
        "eal": eal_section(),
        "domains": [{"name": "edge", "buffers": 4096}],
        "ports": [
            {"name": "in", "device": format!("net_pcap0,rx_pcap={},infinite_rx=1", input.display()), "domain": "edge"},
            {"name": "out", "device": "net_pcap1,tx_pcap=/dev/null", "domain": "edge"}
        ],
        "nfs": [
            {"name": "fw1", "service": "firewall", "kind": "vm", "domain": "edge",
             "program": "firewall", "args": ["--rules", rules.display().to_string()]}
        ],
        "chains": [{"name": "web", "match": {"in_port": "in"}, "services": ["firewall"], "egress": "out"}]
    });
    let mut run = ManagedRun::start(cfg, dir);
    let run_dir = run.run_dir.display().to_string();
    run.wait_running(Duration::from_secs(300));
    let fw = |s: &serde_json::Value| s["nfs"][0].clone();
    run.wait_stats(Duration::from_secs(60), |s| {
        fw(s)["returned"].as_u64() > Some(1000)
    });
    let qemu = qemu_pids_mentioning(&run_dir);
    assert_eq!(qemu.len(), 1, "one QEMU for this run: {qemu:?}");
    let t0 = Instant::now();
    let pid = libc::pid_t::try_from(qemu[0]).expect("pid");
    // SAFETY: kill(2) on a pid of a process this test started (through its manager).
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let s = run.wait_stats(Duration::from_secs(30), |s| {
        let f = fw(s);
        f["state"] != "attached" && f["held"] == 0 && f["reclaimed"].as_u64() > Some(0)
    });
    let dt = t0.elapsed();
    println!(
        "FIGURE guest powered off: {} buffers reclaimed {:.0} ms after the kill (state {})",
        fw(&s)["reclaimed"],
        dt.as_secs_f64() * 1e3,
        fw(&s)["state"]
    );
    run.wait_stats(Duration::from_secs(30), |s| {
        s["drops"]["nf_unavailable"].as_u64() > Some(0)
    });
    let report = run.stop();
    assert_eq!(report["accounting_ok"], true, "{report:#}");
    assert_eq!(report["pools_full"], true, "{report:#}");
    assert!(qemu_pids_mentioning(&run_dir).is_empty(), "no QEMU left");
}
