//! Hybrid chains: an unmodified guest (plain virtio-net driver, the kernel bridge between its
//! two NICs, no netvm code) as a chain member beside zero-copy process NFs, served by the core
//! through vhost-user (`kind: "virtio"`, launched by `netvm-manager up` with real QEMU; TCG
//! here, KVM where it works).
//!
//! * `firewall_unmodified_guest_l3fwd_exact_output`: pcap in → firewall (process) → bridge
//!   guest → l3fwd (process) → pcap out equals the fw→l3fwd model byte for byte (a bridge
//!   forwards frames unchanged), counters exact (the guest's delivered = returned = what the
//!   firewall passed; received and transmitted include the vhost ports), pools full, no QEMU.
//! * `guest_killed_mid_traffic_follows_failure_policy`: SIGKILL of the guest's QEMU under
//!   endless traffic: the NF goes `dead`, the `bypass` chain goes on without it (l3fwd keeps
//!   receiving), the identity holds at every snapshot and the pools end full.
//! * `deaf_guest_hurts_no_other_chain`: a guest that never reads its queue (NICs left down) on
//!   the same worker as a process-NF chain: the guest's deliveries drop as `ring_full`
//!   (counted as its `queue_full`, its posted buffers 0), the other chain loses nothing.
//! * `virtio_vs_netlib_guest_rate` (measurement, prints FIGURE lines): the rate through the
//!   unmodified guest vs through a netlib NF (l2fwd) in a guest, same run.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use netvm_tests::traffic::{self, Load};
use netvm_tests::vm::{qemu_pids_mentioning, ManagedRun};
use netvm_tests::{eal_section, worker_cpu, Scratch};

fn nf<'a>(s: &'a Value, name: &str) -> &'a Value {
    s["nfs"]
        .as_array()
        .and_then(|a| a.iter().find(|n| n["name"] == name))
        .unwrap_or(&Value::Null)
}

fn port<'a>(s: &'a Value, name: &str) -> &'a Value {
    s["ports"]
        .as_array()
        .and_then(|a| a.iter().find(|n| n["name"] == name))
        .unwrap_or(&Value::Null)
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// The figures of a snapshot worth reading in a failure message.
fn brief(s: &Value) -> String {
    let ports: Vec<String> = s["ports"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| format!("{} rx {} tx {}", p["name"], p["rx"], p["tx"]))
                .collect()
        })
        .unwrap_or_default();
    let nfs: Vec<String> = s["nfs"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|n| {
                    format!(
                        "{} {} delivered {} returned {} verdicts {} virtio {}",
                        n["name"],
                        n["state"],
                        n["delivered"],
                        n["returned"],
                        n["verdicts"],
                        n["virtio"]
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    format!(
        "received {} transmitted {} dropped {} in_flight {} drops {}\n  ports: {}\n  nfs: {}",
        s["received"],
        s["transmitted"],
        s["dropped"],
        s["in_flight"],
        s["drops"],
        ports.join("; "),
        nfs.join("\n       ")
    )
}

/// `run.wait_stats`, printing the last snapshot if the condition is not met in time.
fn wait(run: &mut ManagedRun, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
    let end = Instant::now() + timeout;
    loop {
        let last = run.ctl("stats").map(|v| v["stats"].clone());
        // A snapshot the workers could not all join in time (a TCG guest competes for the
        // two CPUs) says `consistent: false` and proves nothing either way: skip it.
        if let Some(s) = last.as_ref().filter(|s| s["consistent"] == true) {
            assert_eq!(s["accounting_ok"], true, "live snapshot: {s:#}");
            if pred(s) {
                return s.clone();
            }
        }
        assert!(
            Instant::now() < end,
            "condition not met in {timeout:?}; last snapshot: {}\n{}",
            last.as_ref().map(brief).unwrap_or_default(),
            run.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn firewall_unmodified_guest_l3fwd_exact_output() {
    let dir = Scratch::new("vio-chain");
    let load = Load::new(24, 12);
    let input = dir.path("in.pcap");
    let output = dir.path("out.pcap");
    traffic::write_pcap(&input, &load.frames);
    let rules = dir.path("fw.rules");
    let routes = dir.path("routes");
    std::fs::write(&rules, Load::rules()).expect("rules");
    std::fs::write(&routes, Load::routes(1)).expect("routes");
    // Paced input: a TCG guest drains its 256-buffer receive queue slowly; the model has no
    // losses, so the input must not outrun it (saturation has its own test).
    let cfg = json!({
        "name": "viochain",
        "workers": [{"cpu": worker_cpu()}],
        "eal": eal_section(),
        "domains": [{"name": "edge", "buffers": 4096}],
        "ports": [
            {"name": "in", "device": format!("net_pcap0,rx_pcap={}", input.display()), "domain": "edge", "rx_rate_pps": 500},
            {"name": "out", "device": format!("net_pcap1,tx_pcap={}", output.display()), "domain": "edge"}
        ],
        "nfs": [
            {"name": "fw1", "service": "firewall", "domain": "edge",
             "program": "firewall", "args": ["--rules", rules.display().to_string()]},
            {"name": "br1", "service": "bridge", "kind": "virtio", "domain": "edge",
             "vm": {"memory_mb": 256, "vcpus": 1}},
            {"name": "l3", "service": "l3fwd", "domain": "edge",
             "program": "l3fwd", "args": ["--routes", routes.display().to_string()]}
        ],
        "chains": [{"name": "web", "match": {"in_port": "in"},
                    "services": ["firewall", "bridge", "l3fwd"], "egress": "out"}]
    });
    let mut run = ManagedRun::start(cfg, dir);
    let run_dir = run.run_dir.display().to_string();
    run.wait_running(Duration::from_secs(300));
    let n_in = load.frames.len() as u64;
    let expected = load.expected();
    let live = wait(&mut run, Duration::from_secs(120), |s| {
        u(&port(s, "in")["rx"]) == n_in
            && s["in_flight"] == 0
            && u(&port(s, "out")["tx"]) + u(&s["dropped"]) + u(&nf(s, "br1")["queue_full"]) >= n_in
    });
    let g = nf(&live, "br1");
    assert_eq!(g["virtio"]["link_up"], true, "{g:#}");
    let console = run.nf_log("br1");
    assert!(console.contains("netvm-guest: bridging"), "{console}");
    let report = run.stop();
    let out = traffic::read_pcap(&output);
    let denied = load.frames.iter().filter(|f| Load::denied(f)).count() as u64;
    let passed = n_in - denied;
    assert_eq!(report["accounting_ok"], true, "{report:#}");
    assert_eq!(report["pools_full"], true, "{report:#}");
    let g = nf(&report, "br1");
    assert_eq!(g["state"], "attached", "{g:#}");
    assert_eq!(u(&g["delivered"]), passed, "{g:#}");
    // Returned: what came back on br1.from — every passed frame and whatever the guest made
    // up and sent on that port; what it made up on br1.to (its `rx`) is counted as made up
    // but is no return.
    assert_eq!(
        u(&g["returned"]) + u(&port(&report, "br1.to")["rx"]),
        passed + g["virtio"]["unknown_flow"].as_u64().unwrap_or(0),
        "the bridge sends back all: {g:#}"
    );
    assert_eq!(u(&g["held"]), 0);
    assert_eq!(u(&g["verdicts"][0]), passed, "{g:#}");
    assert_eq!(u(&g["virtio"]["queue_full"]), 0, "{g:#}");
    // Frames the guest made up itself (none expected from a bare bridge, but a kernel may
    // send some) are the policy's `virtio_unknown_flow` drops, nothing else.
    let made_up = u(&g["virtio"]["unknown_flow"]);
    assert_eq!(
        u(&report["drops"]["virtio_unknown_flow"]),
        made_up,
        "{report:#}"
    );
    // The vhost ports are ports: what entered the guest is transmitted on br1.to, what came
    // back received on br1.from (and whatever the guest made up, on either of them).
    assert_eq!(u(&port(&report, "br1.to")["tx"]), passed);
    assert_eq!(
        u(&port(&report, "br1.from")["rx"]) + u(&port(&report, "br1.to")["rx"]),
        passed + made_up
    );
    assert_eq!(
        u(&report["received"]),
        n_in + passed + made_up,
        "{report:#}"
    );
    assert_eq!(
        u(&report["transmitted"]),
        expected.len() as u64 + passed,
        "{report:#}"
    );
    let fw = nf(&report, "fw1");
    let l3 = nf(&report, "l3");
    assert_eq!(u(&fw["delivered"]), n_in);
    assert_eq!(u(&fw["verdicts"][3]), denied);
    assert_eq!(u(&l3["delivered"]), passed);
    assert_eq!(u(&l3["verdicts"][2]), expected.len() as u64);
    assert_eq!(
        u(&report["drops"]["nf_verdict_drop"]),
        n_in - expected.len() as u64,
        "{report:#}"
    );
    assert_eq!(
        u(&report["dropped"]),
        n_in - expected.len() as u64 + made_up,
        "no other drop: {report:#}"
    );
    assert_eq!(out.len(), expected.len(), "output packet count");
    for (i, (g, e)) in out.iter().zip(&expected).enumerate() {
        assert_eq!(g, e, "packet {i} differs");
    }
    assert!(
        qemu_pids_mentioning(&run_dir).is_empty(),
        "a QEMU of this run survived teardown"
    );
}

#[test]
fn guest_killed_mid_traffic_follows_failure_policy() {
    let dir = Scratch::new("vio-kill");
    let load = Load::new(24, 12);
    let input = dir.path("in.pcap");
    traffic::write_pcap(&input, &load.frames);
    let rules = dir.path("fw.rules");
    let routes = dir.path("routes");
    std::fs::write(&rules, Load::rules()).expect("rules");
    std::fs::write(&routes, Load::routes(1)).expect("routes");
    let cfg = json!({
        "name": "viokill",
        "workers": [{"cpu": worker_cpu()}],
        "eal": eal_section(),
        "domains": [{"name": "edge", "buffers": 4096}],
        "ports": [
            {"name": "in", "device": format!("net_pcap0,rx_pcap={},infinite_rx=1", input.display()), "domain": "edge", "rx_rate_pps": 2000},
            {"name": "out", "device": "net_pcap1,tx_pcap=/dev/null", "domain": "edge"}
        ],
        "nfs": [
            {"name": "fw1", "service": "firewall", "domain": "edge",
             "program": "firewall", "args": ["--rules", rules.display().to_string()]},
            {"name": "br1", "service": "bridge", "kind": "virtio", "domain": "edge"},
            {"name": "l3", "service": "l3fwd", "domain": "edge",
             "program": "l3fwd", "args": ["--routes", routes.display().to_string()]}
        ],
        "chains": [{"name": "web", "match": {"in_port": "in"},
                    "services": ["firewall", "bridge", "l3fwd"], "egress": "out",
                    "failure": "bypass"}]
    });
    let mut run = ManagedRun::start(cfg, dir);
    let run_dir = run.run_dir.display().to_string();
    run.wait_running(Duration::from_secs(300));
    wait(&mut run, Duration::from_secs(60), |s| {
        u(&nf(s, "br1")["returned"]) > 500
    });
    let qemu = qemu_pids_mentioning(&run_dir);
    assert_eq!(qemu.len(), 1, "one QEMU for this run: {qemu:?}");
    let t0 = Instant::now();
    let pid = libc::pid_t::try_from(qemu[0]).expect("pid");
    // SAFETY: kill(2) on a pid of a process this test started (through its manager).
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let s = wait(&mut run, Duration::from_secs(30), |s| {
        nf(s, "br1")["state"] != "attached" && nf(s, "br1")["virtio"]["link_up"] == false
    });
    let dt = t0.elapsed();
    let (l3_before, g_before) = (
        u(&nf(&s, "l3")["delivered"]),
        u(&nf(&s, "br1")["delivered"]),
    );
    // Bypass: the chain goes on without the guest (l3fwd keeps getting the firewall's
    // frames), and nothing more is delivered to the guest.
    let s2 = wait(&mut run, Duration::from_secs(30), |s| {
        u(&nf(s, "l3")["delivered"]) > l3_before + 500
    });
    assert_eq!(u(&nf(&s2, "br1")["delivered"]), g_before, "{s2:#}");
    let report = run.stop();
    assert_eq!(report["accounting_ok"], true, "{report:#}");
    assert_eq!(report["pools_full"], true, "{report:#}");
    assert_eq!(report["in_flight"], 0, "{report:#}");
    let g = nf(&report, "br1");
    println!(
        "FIGURE guest killed: NF {} {:.0} ms after SIGKILL; {} frames were in the guest \
         (delivered {} − returned {}), lost there and invisible to the core",
        g["state"],
        dt.as_secs_f64() * 1e3,
        u(&g["delivered"]) - u(&g["returned"]),
        u(&g["delivered"]),
        u(&g["returned"])
    );
    assert!(qemu_pids_mentioning(&run_dir).is_empty(), "no QEMU left");
}

#[test]
fn deaf_guest_hurts_no_other_chain() {
    let dir = Scratch::new("vio-deaf");
    let load = Load::new(24, 12);
    let in_a = dir.path("a.pcap");
    let in_b = dir.path("b.pcap");
    let out_b = dir.path("out_b.pcap");
    traffic::write_pcap(&in_a, &load.frames);
    traffic::write_pcap(&in_b, &load.frames);
    let rules = dir.path("fw.rules");
    std::fs::write(&rules, Load::rules()).expect("rules");
    // One worker: the deaf guest's chain and the process chain share it. Chain B's input is
    // paced so that it starts after the guest's queue is known to refuse.
    let cfg = json!({
        "name": "viodeaf",
        "workers": [{"cpu": worker_cpu()}],
        "eal": eal_section(),
        "domains": [{"name": "edge", "buffers": 8192}],
        "ports": [
            {"name": "in_a", "device": format!("net_pcap0,rx_pcap={},infinite_rx=1", in_a.display()), "domain": "edge", "rx_rate_pps": 20000},
            {"name": "out_a", "device": "net_pcap1,tx_pcap=/dev/null", "domain": "edge"},
            {"name": "in_b", "device": format!("net_pcap2,rx_pcap={}", in_b.display()), "domain": "edge", "rx_rate_pps": 200},
            {"name": "out_b", "device": format!("net_pcap3,tx_pcap={}", out_b.display()), "domain": "edge"}
        ],
        "nfs": [
            {"name": "deaf", "service": "bridge", "kind": "virtio", "program": "deaf", "domain": "edge"},
            {"name": "fw1", "service": "firewall", "domain": "edge",
             "program": "firewall", "args": ["--rules", rules.display().to_string()]}
        ],
        "chains": [
            {"name": "a", "match": {"in_port": "in_a"}, "services": ["bridge"], "egress": "out_a"},
            {"name": "b", "match": {"in_port": "in_b"}, "services": ["firewall"], "egress": "out_b"}
        ]
    });
    let mut run = ManagedRun::start(cfg, dir);
    run.wait_running(Duration::from_secs(300));
    let n_in = load.frames.len() as u64;
    let live = wait(&mut run, Duration::from_secs(120), |s| {
        u(&port(s, "in_b")["rx"]) == n_in
            && s["in_flight"] == 0
            && u(&nf(s, "deaf")["virtio"]["queue_full"]) > 1000
    });
    let g = nf(&live, "deaf");
    assert_eq!(g["state"], "attached", "{g:#}");
    assert_eq!(u(&g["virtio"]["guest_rx_free"]), 0, "{g:#}");
    let report = run.stop();
    assert_eq!(report["accounting_ok"], true, "{report:#}");
    assert_eq!(report["pools_full"], true, "{report:#}");
    let g = nf(&report, "deaf");
    assert_eq!(u(&g["delivered"]), 0, "the guest took nothing: {g:#}");
    assert_eq!(
        u(&g["virtio"]["queue_full"]),
        u(&report["drops"]["ring_full"]),
        "{report:#}"
    );
    // Chain B lost nothing: every frame the firewall allowed left on out_b.
    let denied = load.frames.iter().filter(|f| Load::denied(f)).count() as u64;
    assert_eq!(u(&report["chains"]["b"]), n_in);
    assert_eq!(u(&nf(&report, "fw1")["verdicts"][3]), denied);
    assert_eq!(
        u(&port(&report, "out_b")["tx"]),
        n_in - denied,
        "{report:#}"
    );
    let out = traffic::read_pcap(&out_b);
    let want: Vec<&Vec<u8>> = load.frames.iter().filter(|f| !Load::denied(f)).collect();
    assert_eq!(out.len(), want.len());
    assert!(out.iter().zip(want).all(|(a, b)| a == b), "chain b's bytes");
    println!(
        "FIGURE deaf guest: {} deliveries refused by its queue (ring_full), chain b exact ({} frames out)",
        u(&g["virtio"]["queue_full"]),
        n_in - denied
    );
}

/// Measurement: frames per second through an unmodified guest (kernel bridge, vhost-user,
/// copies) vs through a netlib NF (l2fwd) in a guest (ivshmem, zero copy), same run, each on
/// its own endless input. Asserts only the accounting; prints the figures.
#[test]
fn virtio_vs_netlib_guest_rate() {
    let dir = Scratch::new("vio-rate");
    let frames = traffic::flow_frames(64, 4);
    let in_a = dir.path("a.pcap");
    let in_b = dir.path("b.pcap");
    traffic::write_pcap(&in_a, &frames);
    traffic::write_pcap(&in_b, &frames);
    let cfg = json!({
        "name": "viorate",
        "workers": [{"cpu": worker_cpu()}],
        "eal": eal_section(),
        "domains": [{"name": "edge", "buffers": 8192}],
        "ports": [
            {"name": "in_a", "device": format!("net_pcap0,rx_pcap={},infinite_rx=1", in_a.display()), "domain": "edge"},
            {"name": "out_a", "device": "net_pcap1,tx_pcap=/dev/null", "domain": "edge"},
            {"name": "in_b", "device": format!("net_pcap2,rx_pcap={},infinite_rx=1", in_b.display()), "domain": "edge"},
            {"name": "out_b", "device": "net_pcap3,tx_pcap=/dev/null", "domain": "edge"}
        ],
        "nfs": [
            {"name": "vio", "service": "bridge", "kind": "virtio", "domain": "edge"},
            {"name": "lib", "service": "fwd", "kind": "vm", "domain": "edge", "program": "l2fwd",
             "args": ["--dst-mac", "02:00:00:00:00:02"]}
        ],
        "chains": [
            {"name": "a", "match": {"in_port": "in_a"}, "services": ["bridge"], "egress": "out_a"},
            {"name": "b", "match": {"in_port": "in_b"}, "services": ["fwd"], "egress": "out_b"}
        ]
    });
    let mut run = ManagedRun::start(cfg, dir);
    run.wait_running(Duration::from_secs(300));
    let out = |s: &Value, p: &str| u(&port(s, p)["tx"]);
    let s1 = wait(&mut run, Duration::from_secs(60), |s| {
        out(s, "out_a") > 0 && out(s, "out_b") > 0
    });
    let t1 = Instant::now();
    let s2 = wait(&mut run, Duration::from_secs(60), |_| {
        t1.elapsed() >= Duration::from_secs(5)
    });
    let dt = t1.elapsed().as_secs_f64();
    let ra = (out(&s2, "out_a") - out(&s1, "out_a")) as f64 / dt;
    let rb = (out(&s2, "out_b") - out(&s1, "out_b")) as f64 / dt;
    let manager_log = run.manager.log_text();
    let report = run.stop();
    assert_eq!(report["accounting_ok"], true, "{report:#}");
    assert_eq!(report["pools_full"], true, "{report:#}");
    let accel = manager_log
        .lines()
        .find(|l| l.contains("QEMU with"))
        .unwrap_or("(accelerator not logged)");
    let g = nf(&report, "vio");
    println!(
        "FIGURE rate over {dt:.1} s: unmodified guest (virtio, kernel bridge) {ra:.0} pps \
         (its queue refused {}), netlib l2fwd guest (kind vm) {rb:.0} pps; ratio {:.2}; {accel}",
        u(&g["virtio"]["queue_full"]),
        ra / rb.max(1.0)
    );
}
