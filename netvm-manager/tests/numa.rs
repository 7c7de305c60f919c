//! `netvm-manager check` (and `up`, which checks first) enforces the NUMA placement rule of
//! domains with a `numa_node` against the machine's topology as hwloc sees it. The tests give
//! hwloc a synthetic two-node machine through `HWLOC_SYNTHETIC` (hwloc 2.9 honours it on
//! topology load): `pack:2 [numa] pu:1` is two packages, each with its own NUMA node and one
//! CPU, so CPU 0 is on node 0 and CPU 1 on node 1 — both CPUs exist here too, so the
//! manager's "CPU available on this machine" check passes and only the NUMA rule speaks.

mod common;

use serde_json::{json, Value};

use common::{texts, Scratch};

/// Two NUMA nodes: CPU 0 on node 0, CPU 1 on node 1.
const TWO_NODES: &str = "pack:2 [numa] pu:1";

fn two_cpus() -> bool {
    let usable = std::thread::available_parallelism().map_or(1, usize::from) >= 2;
    if !usable {
        println!("skipped: needs CPUs 0 and 1");
    }
    usable
}

/// Runs `netvm-manager CMD CONFIG` with `HWLOC_SYNTHETIC` set to `topology` (unless None).
fn manager_on(cmd: &str, dir: &Scratch, cfg: &Value, topology: Option<&str>) -> (i32, String) {
    let f = dir.path("config.json");
    std::fs::write(&f, cfg.to_string()).unwrap();
    let mut c = std::process::Command::new(common::manager());
    c.arg(cmd).arg(&f).stdin(std::process::Stdio::null());
    match topology {
        Some(t) => c.env("HWLOC_SYNTHETIC", t),
        None => c.env_remove("HWLOC_SYNTHETIC"),
    };
    let o = c.output().expect("run netvm-manager");
    let (_, err) = texts(&o);
    (o.status.code().unwrap_or(-1), err)
}

fn check(dir: &Scratch, cfg: &Value, topology: Option<&str>) -> (i32, String) {
    manager_on("check", dir, cfg, topology)
}

/// One domain on node 0 with two single-queue ports; workers on CPUs 0 and 1 (port `b`'s
/// queue is polled by worker 1, `(1 + 0) % 2`).
fn one_domain_two_workers(dir: &Scratch) -> Value {
    json!({
        "name": dir.name(),
        "run_dir": dir.path("run"),
        "workers": [{"cpu": 0}, {"cpu": 1}],
        "domains": [{"name": "d", "buffers": 4096, "numa_node": 0}],
        "ports": [{"name": "a", "device": "net_null0", "domain": "d", "rx_queues": 1},
                  {"name": "b", "device": "net_null1", "domain": "d", "rx_queues": 1}]
    })
}

#[test]
fn check_refuses_a_worker_on_another_node() {
    if !two_cpus() {
        return;
    }
    let dir = Scratch::new("numa-worker");
    let cfg = one_domain_two_workers(&dir);
    let (code, err) = check(&dir, &cfg, Some(TWO_NODES));
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(": workers[1].cpu: "), "{err}");
    assert!(
        err.contains("CPU 1 is on NUMA node 1")
            && err.contains("port \"b\" (ports[1])")
            && err.contains("domains[0].numa_node")
            && err.contains("remote memory access for every packet"),
        "{err}"
    );
    // `up` checks first: refused the same way, nothing started.
    let (code, err) = manager_on("up", &dir, &cfg, Some(TWO_NODES));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(": workers[1].cpu: "), "{err}");
    assert!(!err.contains("started: pid"), "{err}");
}

#[test]
fn check_accepts_each_domain_on_its_workers_node() {
    if !two_cpus() {
        return;
    }
    let dir = Scratch::new("numa-ok");
    // Domain d0 (node 0) polled by worker 0 (CPU 0), d1 (node 1) by worker 1 (CPU 1).
    let cfg = json!({
        "name": dir.name(),
        "run_dir": dir.path("run"),
        "workers": [{"cpu": 0}, {"cpu": 1}],
        "domains": [{"name": "d0", "buffers": 4096, "numa_node": 0},
                    {"name": "d1", "buffers": 4096, "numa_node": 1}],
        "ports": [{"name": "a", "device": "net_null0", "domain": "d0", "rx_queues": 1},
                  {"name": "b", "device": "net_null1", "domain": "d1", "rx_queues": 1}]
    });
    let (code, err) = check(&dir, &cfg, Some(TWO_NODES));
    assert_eq!(code, 0, "{err}");
    // The same config on the real machine: node 1 exists only if the machine has it.
    if !std::path::Path::new("/sys/devices/system/node/node1").exists() {
        let (code, err) = check(&dir, &cfg, None);
        assert_eq!(code, 2, "{err}");
        assert!(
            err.contains(": domains[1].numa_node: NUMA node 1 does not exist"),
            "{err}"
        );
    }
}

#[test]
fn check_refuses_an_nf_on_another_node() {
    if !two_cpus() {
        return;
    }
    let dir = Scratch::new("numa-nf");
    let mut cfg = json!({
        "name": dir.name(),
        "run_dir": dir.path("run"),
        "workers": [{"cpu": 0}],
        "domains": [{"name": "d", "buffers": 4096, "numa_node": 0}],
        "ports": [{"name": "a", "device": "net_null0", "domain": "d"}],
        "nfs": [{"name": "fw1", "service": "fw", "domain": "d", "program": "/bin/sh", "cpu": 1}]
    });
    let (code, err) = check(&dir, &cfg, Some(TWO_NODES));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(": nfs[0].cpu: CPU 1 is on NUMA node 1, but NF \"fw1\""),
        "{err}"
    );
    // Without numa_node nothing is checked.
    cfg["domains"][0]
        .as_object_mut()
        .unwrap()
        .remove("numa_node");
    let (code, err) = check(&dir, &cfg, Some(TWO_NODES));
    assert_eq!(code, 0, "{err}");
}

#[test]
fn check_refuses_a_node_that_does_not_exist() {
    let dir = Scratch::new("numa-none");
    let mut cfg = one_domain_two_workers(&dir);
    cfg["workers"] = json!([{"cpu": 0}]);
    cfg["domains"][0]["numa_node"] = json!(2);
    let (code, err) = check(&dir, &cfg, Some(TWO_NODES));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(
            ": domains[0].numa_node: NUMA node 2 does not exist on this machine (nodes: 0 (CPUs 0), 1 (CPUs 1))"
        ),
        "{err}"
    );
    // Node 0 exists on every machine: the real topology accepts it.
    cfg["domains"][0]["numa_node"] = json!(0);
    let (code, err) = check(&dir, &cfg, None);
    assert_eq!(code, 0, "{err}");
}
