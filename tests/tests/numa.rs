//! NUMA placement through the core: a domain with `numa_node: 0` gets its region and its NFs'
//! control regions bound to node 0 (`/proc/<core>/numa_maps` shows `bind:0` and every page
//! on `N0`), traffic flows as usual, and a node the machine lacks is refused — by the core's
//! own start check, and (when that check is fooled by a synthetic hwloc topology) by
//! `mbind` itself, as an error naming the domain and node, never a crash.
//!
//! Node 0 is the node every Linux machine has, so these tests run anywhere.

use std::path::Path;
use std::time::Duration;

use netvm_tests::traffic::write_pcap;
use netvm_tests::{bin, eal_section, worker_cpu, Core, Proc, Scratch};
use serde_json::{json, Value};

/// The numa_maps line of process `pid`'s mapping of `path`.
fn numa_maps_line(pid: u32, path: &Path) -> String {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/numa_maps")).expect("numa_maps");
    let needle = format!("file={}", path.display());
    maps.lines()
        .find(|l| l.split_whitespace().any(|w| w == needle))
        .unwrap_or_else(|| panic!("no mapping of {} in numa_maps:\n{maps}", path.display()))
        .to_owned()
}

/// `N<k>=<pages>` pairs of a numa_maps line.
fn pages_per_node(line: &str) -> Vec<(u32, u64)> {
    line.split_whitespace()
        .filter_map(|w| {
            let (n, c) = w.strip_prefix('N')?.split_once('=')?;
            Some((n.parse().ok()?, c.parse().ok()?))
        })
        .collect()
}

/// Pages of the file at `path` as numa_maps counts them.
fn file_pages(path: &Path, line: &str) -> u64 {
    let kib: u64 = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("kernelpagesize_kB="))
        .and_then(|v| v.parse().ok())
        .expect("kernelpagesize_kB");
    std::fs::metadata(path).expect("region file").len() / (kib * 1024)
}

fn config(input: &Path, node: u32) -> Value {
    json!({
        "name": "numa",
        "workers": [{"cpu": worker_cpu()}],
        "eal": eal_section(),
        "domains": [{"name": "d", "buffers": 2048, "numa_node": node}],
        "ports": [
            {"name": "in", "device": format!("net_pcap0,rx_pcap={}", input.display()), "domain": "d"},
            {"name": "out", "device": "net_null0,no-rx=1", "domain": "d"}
        ],
        "nfs": [{"name": "fwd1", "service": "fwd", "domain": "d"}],
        "chains": [{"name": "c", "match": {"in_port": "in"}, "services": ["fwd"], "egress": "out"}]
    })
}

#[test]
fn regions_of_a_domain_on_node_0_are_bound_there() {
    let dir = Scratch::new("numa0");
    let input = dir.path("in.pcap");
    write_pcap(&input, &netvm_tests::traffic::flow_frames(10, 10));
    let mut core = Core::start(config(&input, 0), dir, &[]);
    let pid = core.core.pid();
    let region = core.region("d");
    let ctl = netvm_shm::control_path(&region, "fwd1");
    for path in [&region, &ctl] {
        let line = numa_maps_line(pid, path);
        println!("core {pid}: {line}");
        assert_eq!(
            line.split_whitespace().nth(1),
            Some("bind:0"),
            "policy of {}: {line}",
            path.display()
        );
        // Prefaulted at creation: every page present, all on node 0.
        assert_eq!(
            pages_per_node(&line),
            vec![(0, file_pages(path, &line))],
            "{line}"
        );
    }
    core.spawn_nf(
        "l2fwd",
        "fwd1",
        "d",
        &["--dst-mac".into(), "02:00:00:00:00:01".into()],
    );
    core.wait_running();
    core.wait_stats(Duration::from_secs(30), |s| s["transmitted"] == 100);
    // The NF maps the same pages (default policy in its own mapping): node 0 as well.
    let nf_pid = core.nfs[0].pid();
    let line = numa_maps_line(nf_pid, &region);
    println!("nf {nf_pid}: {line}");
    assert!(pages_per_node(&line).iter().all(|&(n, _)| n == 0), "{line}");
    let report = core.shutdown();
    assert_eq!(report["accounting_ok"], true, "{report:#}");
    assert_eq!(report["pools_full"], true, "{report:#}");
}

/// Runs netvm-core on `cfg` (expected to fail at start); returns its exit code and log, and
/// asserts it left no region file behind.
fn core_fails(dir: &Scratch, cfg: &Value, env: &[(&str, String)]) -> (Option<i32>, String) {
    let file = dir.path("config.json");
    std::fs::write(&file, cfg.to_string()).expect("config");
    let mut p = Proc::spawn(
        "netvm-core",
        &bin("netvm-core"),
        &[file.display().to_string()],
        dir.path("core.log"),
        env,
    );
    let pid = p.pid();
    let code = p.wait_timeout(Duration::from_secs(30));
    let log = p.log_text();
    let mine = format!(".{pid}.");
    let left: Vec<_> = std::fs::read_dir(netvm_tests::region_dir())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().is_some_and(|n| {
                n.to_string_lossy().starts_with("netvm-") && n.to_string_lossy().contains(&mine)
            })
        })
        .collect();
    for f in &left {
        let _ = std::fs::remove_file(f);
    }
    assert!(left.is_empty(), "a failed start left {left:?}\n{log}");
    (code, log)
}

fn node_exists(n: usize) -> bool {
    Path::new(&format!("/sys/devices/system/node/node{n}")).exists()
}

#[test]
fn a_missing_node_is_refused_with_the_domain_and_node() {
    let dir = Scratch::new("numa-missing");
    let input = dir.path("in.pcap");
    write_pcap(&input, &netvm_tests::traffic::flow_frames(1, 1));
    let missing = (1..64)
        .find(|&n| !node_exists(n))
        .expect("a node this machine lacks");
    let mut cfg = config(&input, u32::try_from(missing).unwrap());
    cfg["region_dir"] = json!(netvm_tests::region_dir());
    cfg["run_dir"] = json!(dir.path("run"));

    // The core's start check (the real machine's topology).
    let (code, log) = core_fails(&dir, &cfg, &[]);
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("domains[0].numa_node") && log.contains("does not exist"),
        "{log}"
    );

    // A synthetic topology with one CPU per node puts the worker's CPU k on node k, which
    // this machine lacks: the check passes, and mbind refuses the node — a clean error
    // naming domain and node, no region file left.
    let cpu = worker_cpu();
    if cpu == 0 || node_exists(cpu) {
        println!("skipping the mbind half: the worker's CPU {cpu} is not on a missing node");
        return;
    }
    let synthetic = format!("numa:{} pu:1", cpu + 1);
    cfg["domains"][0]["numa_node"] = json!(cpu);
    let (code, log) = core_fails(&dir, &cfg, &[("HWLOC_SYNTHETIC", synthetic.clone())]);
    assert_eq!(code, Some(1), "HWLOC_SYNTHETIC={synthetic}\n{log}");
    assert!(
        log.contains(&format!("placing domain \"d\" on NUMA node {cpu}")) && log.contains("mbind"),
        "HWLOC_SYNTHETIC={synthetic}\n{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
}
