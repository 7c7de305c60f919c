//! Issue 17's rate measurement (run by `benches/nsh_bench.sh`, release build; not a test):
//! firewall → l3fwd on one instance vs split over two instances (NSH over a veth between two
//! network namespaces), rounds interleaved. Prints figures; asserts nothing about time.
//! NSH_BENCH_SECS (default 5), NSH_BENCH_ROUNDS (2). Needs root (network namespaces).

use std::time::Duration;

use netvm_tests::netns::{start_split, Split, VethPair};
use netvm_tests::traffic::{self, Load};
use netvm_tests::{eal_section, worker_cpu, Core, Scratch};
use netvm_tests::{report_path as path, report_port as port};
use serde_json::{json, Value};

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn main() {
    nsh_split_rate();
}

/// Packets per second out of `port` of `core` over `secs`, after a 1 s warm-up.
fn out_rate(core: &Core, port_name: &str, secs: f64) -> (f64, Value) {
    std::thread::sleep(Duration::from_secs(1));
    let s0 = core.ctl(&json!({"cmd": "stats"}))["stats"].clone();
    std::thread::sleep(Duration::from_secs_f64(secs));
    let s1 = core.ctl(&json!({"cmd": "stats"}))["stats"].clone();
    let dt = s1["uptime_s"].as_f64().unwrap_or(0.0) - s0["uptime_s"].as_f64().unwrap_or(0.0);
    let dp = u(&port(&s1, port_name)["tx"]) - u(&port(&s0, port_name)["tx"]);
    (dp as f64 / dt.max(1e-9), s1)
}

/// Rate of fw → l3fwd on one instance vs split over two instances (NSH over a veth), in
/// the same run, rounds interleaved. Prints figures; asserts nothing about time. Run by
/// `benches/nsh_bench.sh` (release build): NSH_BENCH_SECS (default 5), NSH_BENCH_ROUNDS (2).
fn nsh_split_rate() {
    let secs: f64 = std::env::var("NSH_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let rounds: u32 = std::env::var("NSH_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let frames = traffic::flow_frames(64, 1);
    let avg = frames.iter().map(Vec::len).sum::<usize>() / frames.len();
    println!(
        "nsh_split_rate: {} flows, {avg} B average frame, pcap infinite_rx in; {secs} s per point; {} CPUs shared by every core worker and NF",
        frames.len(),
        std::thread::available_parallelism().map_or(1, usize::from)
    );
    let mut single = Vec::new();
    let mut split = Vec::new();
    for round in 0..rounds {
        // One instance: in (pcap) → firewall → l3fwd → out (af_packet on a veth to a sink).
        {
            let link = VethPair::new().expect("namespaces");
            let dir = Scratch::new("nsh-rate1");
            let input = dir.path("in.pcap");
            traffic::write_pcap(&input, &frames);
            std::fs::write(dir.path("fw.rules"), "default allow\n").unwrap();
            std::fs::write(dir.path("routes"), Load::routes(1)).unwrap();
            let (rules, routes) = (dir.path("fw.rules"), dir.path("routes"));
            let cfg = json!({
                "name": "nsh-r1", "workers": [{"cpu": worker_cpu()}], "eal": eal_section(),
                "domains": [{"name": "edge", "buffers": 8192}],
                "ports": [
                    {"name": "in", "device": format!("net_pcap0,rx_pcap={},infinite_rx=1", input.display()), "domain": "edge"},
                    {"name": "out", "device": format!("net_af_packet0,iface={}", link.veth_a), "domain": "edge"}
                ],
                "nfs": [{"name": "fw1", "service": "firewall", "domain": "edge"},
                        {"name": "l3", "service": "l3fwd", "domain": "edge"}],
                "chains": [{"name": "web", "match": {"in_port": "in"},
                            "services": ["firewall", "l3fwd"], "egress": "out"}]
            });
            let mut c = Core::start_in(cfg, dir, &[], Some(&link.a), true);
            c.spawn_nf(
                "firewall",
                "fw1",
                "edge",
                &["--rules".into(), rules.display().to_string()],
            );
            c.spawn_nf(
                "l3fwd",
                "l3",
                "edge",
                &["--routes".into(), routes.display().to_string()],
            );
            c.wait_running();
            let (r, s) = out_rate(&c, "out", secs);
            println!(
                "  round {round} one instance : {:7.3} Mpps out (drops so far: {})",
                r / 1e6,
                s["drops"]
            );
            single.push(r);
            c.shutdown();
        }
        // Split: A: in → firewall → NSH → veth; B: veth → l3fwd → out (net_null sink).
        {
            let link = VethPair::new().expect("namespaces");
            let dir_a = Scratch::new("nsh-rate-a");
            let dir_b = Scratch::new("nsh-rate-b");
            let input = dir_a.path("in.pcap");
            traffic::write_pcap(&input, &frames);
            let rules = dir_a.path("fw.rules");
            std::fs::write(&rules, "default allow\n").unwrap();
            let routes = dir_b.path("routes");
            std::fs::write(&routes, Load::routes(1)).unwrap();
            let (mut a, mut b) = start_split(
                &Split {
                    link: &link,
                    name: "nsh-r",
                    path_id: 9,
                    in_dev: format!("net_pcap0,rx_pcap={},infinite_rx=1", input.display()),
                    out_dev: "net_null1,no-rx=1".into(),
                    buffers: 8192,
                    rules: &rules,
                    routes: &routes,
                },
                dir_a,
                dir_b,
            );
            let (r, s) = out_rate(&b, "out", secs);
            let sa = a.ctl(&json!({"cmd": "stats"}))["stats"].clone();
            println!(
                "  round {round} split over 2: {:7.3} Mpps out of B (A: {} encapsulated, drops {}; B: {} decapsulated, nsh drops {})",
                r / 1e6,
                u(&path(&sa, 9)["encapsulated"]),
                sa["drops"],
                u(&path(&s, 9)["decapsulated"]),
                s["nsh_drops"]
            );
            split.push(r);
            a.shutdown();
            b.shutdown();
        }
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (s1, s2) = (med(&mut single), med(&mut split));
    println!(
        "nsh_split_rate: one instance {:.3} Mpps, split over two {:.3} Mpps (median of {rounds}); split/one = {:.2}",
        s1 / 1e6,
        s2 / 1e6,
        s2 / s1.max(1e-9)
    );
}
