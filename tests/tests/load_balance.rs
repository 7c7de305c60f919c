//! A service with two instances. Under `flow_hash` both get flows and every flow stays on one
//! instance. Under `least_loaded`, with one instance stalled (SIGSTOP) so that its ring fills,
//! new flows shift to the other; each flow still stays where it was placed — at the first
//! service of a chain and at later ones, across a `set_chains`.

use std::collections::HashMap;
use std::time::Duration;

use netvm_tests::traffic::{read_pcap, write_pcap};
use netvm_tests::{eal_section, worker_cpu, Core, Scratch};
use netvm_wire::{generate_mixed_flows, MixedFlows};
use serde_json::json;

const MAC_A: [u8; 6] = [2, 0, 0, 0, 0xa, 0xa];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0xb, 0xb];

/// Runs `lead` packets of one flow, then 128 flows × 4 packets, through two l2fwd instances;
/// returns (per-flow instance MACs keyed by (src, dst) address, report). `stall_a`: instance A
/// is stopped before traffic starts and resumed afterwards.
fn run(
    balance: &str,
    stall_a: bool,
    lead: u32,
) -> (HashMap<[u8; 8], Vec<[u8; 6]>>, serde_json::Value) {
    let dir = Scratch::new("lb");
    let mut frames: Vec<Vec<u8>> = Vec::new();
    if lead > 0 {
        let big = generate_mixed_flows(&MixedFlows {
            flows: 1,
            packets_per_flow: lead,
            src_base: std::net::Ipv4Addr::new(10, 9, 9, 9),
            ..Default::default()
        });
        frames.extend(big.into_iter().map(|p| p.frame));
    }
    let pkts = generate_mixed_flows(&MixedFlows {
        flows: 128,
        packets_per_flow: 4,
        ..Default::default()
    });
    frames.extend(pkts.iter().map(|p| p.frame.clone()));
    let (input, output) = (dir.path("in.pcap"), dir.path("out.pcap"));
    write_pcap(&input, &frames);
    let cfg = json!({
        "name": "lb",
        "workers": [{"cpu": worker_cpu()}],
        "eal": eal_section(),
        "domains": [{"name": "d", "buffers": 2048}],
        "ring_capacity": 1024,
        "ports": [
            {"name": "in", "device": format!("net_pcap0,rx_pcap={}", input.display()), "domain": "d"},
            {"name": "out", "device": format!("net_pcap1,tx_pcap={}", output.display()), "domain": "d"}
        ],
        "nfs": [
            {"name": "a", "service": "fwd", "domain": "d"},
            {"name": "b", "service": "fwd", "domain": "d"}
        ],
        "chains": [{"name": "c", "match": {"in_port": "in"}, "services": ["fwd"], "egress": "out", "balance": balance}]
    });
    let mac = |m: [u8; 6]| {
        m.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    let mut core = Core::start(cfg, dir, &[]);
    core.spawn_nf(
        "l2fwd",
        "a",
        "d",
        &[
            "--dst-mac".into(),
            "02:00:00:00:00:99".into(),
            "--src-mac".into(),
            mac(MAC_A),
        ],
    );
    if stall_a {
        // A attaches, then stops: the ports start only once B attaches too.
        let end = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let st = core.ctl(&json!({"cmd": "status"}));
            if st["nfs"][0]["state"] == "attached" {
                break;
            }
            assert!(
                std::time::Instant::now() < end,
                "a never attached: {st:#}\n{}",
                core.nf_logs()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        core.nfs[0].signal(libc::SIGSTOP);
    }
    core.spawn_nf(
        "l2fwd",
        "b",
        "d",
        &[
            "--dst-mac".into(),
            "02:00:00:00:00:99".into(),
            "--src-mac".into(),
            mac(MAC_B),
        ],
    );
    core.wait_running();
    let n = frames.len() as u64;
    if stall_a {
        // Everything arrived; B has forwarded its share while A sat on its ring.
        core.wait_stats(Duration::from_secs(60), |s| {
            s["received"].as_u64() == Some(n) && s["nfs"][1]["held"] == 0
        });
        core.nfs[0].signal(libc::SIGCONT);
    }
    core.wait_stats(Duration::from_secs(60), |s| {
        s["received"].as_u64() == Some(n) && s["in_flight"] == 0
    });
    let report = core.shutdown();
    assert_eq!(report["accounting_ok"], true, "{report:#}");
    assert_eq!(report["pools_full"], true, "{report:#}");
    assert_eq!(report["transmitted"].as_u64(), Some(n), "{report:#}");
    // Which instance carried each flow, from the source MAC it wrote.
    let mut per_flow: HashMap<[u8; 8], Vec<[u8; 6]>> = HashMap::new();
    for f in read_pcap(&output) {
        per_flow
            .entry(f[26..34].try_into().unwrap())
            .or_default()
            .push(f[6..12].try_into().unwrap());
    }
    assert_eq!(per_flow.len(), 128 + usize::from(lead > 0));
    for (flow, macs) in &per_flow {
        assert!(
            macs.iter().all(|m| *m == macs[0]),
            "flow {flow:?} split across instances: {macs:?}"
        );
    }
    (per_flow, report)
}

fn count(per_flow: &HashMap<[u8; 8], Vec<[u8; 6]>>, m: [u8; 6]) -> usize {
    per_flow.values().filter(|v| v[0] == m).count()
}

#[test]
fn flow_hash_spreads_flows_and_keeps_affinity() {
    let (per_flow, _) = run("flow_hash", false, 0);
    let (a, b) = (count(&per_flow, MAC_A), count(&per_flow, MAC_B));
    println!("flow_hash: instance a {a} flows, b {b} flows");
    assert!(a >= 16 && b >= 16, "flows not spread by hash: a {a}, b {b}");
}

#[test]
fn least_loaded_shifts_new_flows_away_from_a_full_ring() {
    // The lead flow (600 packets) is placed first, on a (ties go to the first instance), and
    // fills a's ring while a is stopped; the 128 flows that follow find b's ring emptier.
    let (per_flow, report) = run("least_loaded", true, 600);
    let lead = per_flow
        .iter()
        .find(|(k, _)| k[..4] == [10, 9, 9, 9])
        .map(|(_, v)| v[0])
        .expect("lead flow");
    assert_eq!(lead, MAC_A, "the lead flow should sit on a");
    let (a, b) = (count(&per_flow, MAC_A) - 1, count(&per_flow, MAC_B));
    println!("least_loaded with a stalled: new flows on a {a}, on b {b}");
    assert_eq!(
        b, 128,
        "new flows did not all shift to b: a {a}, b {b}: {report:#}"
    );
}

/// Waits until NF `i` (config order) is attached, then stops it (SIGSTOP): its rings fill.
fn attach_then_stop(core: &mut Core, i: usize) {
    let name = core.ctl(&json!({"cmd": "status"}))["nfs"][i]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    core.wait_attached(&name);
    stop(core, i);
}

/// Stops NF `i` (SIGSTOP) and waits until the kernel shows it stopped (state `T`).
fn stop(core: &mut Core, i: usize) {
    core.nfs[i].signal(libc::SIGSTOP);
    let stat = format!("/proc/{}/stat", core.nfs[i].pid());
    let end = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let s = std::fs::read_to_string(&stat).unwrap_or_default();
        // `pid (comm) S ...`: the state follows the last ')'.
        if s.rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().next())
            == Some("T")
        {
            return;
        }
        assert!(std::time::Instant::now() < end, "nf {i} not stopped: {s}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// `least_loaded` past the first service of a chain, and across a table swap.
///
/// Chains `first → mid → last` (port `in1`) and `hold → mid → last` (port `in2`); `mid` has
/// two l2fwd instances, `a` and `b`, which write their own source MAC, so the output shows
/// which instance carried each packet. `first` is a hostile NF that forwards everything but
/// writes a new `flow_hash` into every descriptor it returns: placement at `mid` (chain
/// position 1, reached from an NF's TX ring) must use the core's own hash of the flow.
///
/// 1. `a` is stopped. On `in1`, a lead flow of 600 packets is placed on `a` first (empty
///    rings: ties go to the first instance) and fills its ring; the 128 flows after it find
///    `b`'s ring emptier: every one of them goes to `b`. Meanwhile `in2`'s packets (a lead of
///    100 packets and the same 128 flows again) wait in the ring of `hold`, which is stopped
///    too. `a` resumes and forwards its lead.
/// 2. `set_chains` replaces both chains (new chain ids; every worker's flow cache is
///    cleared), `b` is stopped and `hold` resumes: the packets reach `mid` again. Placements
///    that had been lost would now all go to `a` (its ring is empty, `b`'s fills); kept ones
///    go to where each flow was placed: 512 packets wait in `b`'s ring. `b` resumes.
///
/// Counts only: per-NF delivered counts and the instance each flow's packets came out of.
#[test]
fn least_loaded_places_every_position_and_keeps_flows_across_set_chains() {
    let dir = Scratch::new("lb3");
    let flows = |lead: u32| {
        let mut frames: Vec<Vec<u8>> = generate_mixed_flows(&MixedFlows {
            flows: 1,
            packets_per_flow: lead,
            src_base: std::net::Ipv4Addr::new(10, 9, 9, 9),
            ..Default::default()
        })
        .into_iter()
        .map(|p| p.frame)
        .collect();
        frames.extend(
            generate_mixed_flows(&MixedFlows {
                flows: 128,
                packets_per_flow: 4,
                ..Default::default()
            })
            .into_iter()
            .map(|p| p.frame),
        );
        frames
    };
    let (frames1, frames2) = (flows(600), flows(100));
    let (n1, n2) = (frames1.len() as u64, frames2.len() as u64);
    let (in1, in2, output) = (
        dir.path("in1.pcap"),
        dir.path("in2.pcap"),
        dir.path("out.pcap"),
    );
    write_pcap(&in1, &frames1);
    write_pcap(&in2, &frames2);
    let chains = json!([
        {"name": "c1", "match": {"in_port": "in1"}, "services": ["first", "mid", "last"],
         "egress": "out", "balance": "least_loaded"},
        {"name": "c2", "match": {"in_port": "in2"}, "services": ["hold", "mid", "last"],
         "egress": "out", "balance": "least_loaded"}
    ]);
    // Rings (2048) hold a whole input: no ring_full drop however the NFs are scheduled.
    let cfg = json!({
        "name": "lb3",
        "workers": [{"cpu": worker_cpu()}],
        "eal": eal_section(),
        "domains": [{"name": "d", "buffers": 8192}],
        "ring_capacity": 2048,
        "ports": [
            {"name": "in1", "device": format!("net_pcap0,rx_pcap={}", in1.display()), "domain": "d"},
            {"name": "in2", "device": format!("net_pcap1,rx_pcap={}", in2.display()), "domain": "d"},
            {"name": "out", "device": format!("net_pcap2,tx_pcap={}", output.display()), "domain": "d"}
        ],
        "nfs": [
            {"name": "first", "service": "first", "domain": "d"},
            {"name": "a", "service": "mid", "domain": "d"},
            {"name": "hold", "service": "hold", "domain": "d"},
            {"name": "b", "service": "mid", "domain": "d"},
            {"name": "last", "service": "last", "domain": "d"}
        ],
        "chains": chains.clone()
    });
    const FIRST: usize = 0;
    const A: usize = 1;
    const HOLD: usize = 2;
    const B: usize = 3;
    const LAST: usize = 4;
    let mac = |m: [u8; 6]| {
        m.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    let l2fwd = |src: Option<[u8; 6]>| {
        let mut a = vec!["--dst-mac".to_string(), "02:00:00:00:00:99".into()];
        if let Some(s) = src {
            a.extend(["--src-mac".to_string(), mac(s)]);
        }
        a
    };
    let mut core = Core::start(cfg, dir, &[]);
    // Spawned in config order, so that core.nfs[i] is NF i; a and hold stop before the last
    // NF attaches, which is when the ports start.
    core.spawn_nf(
        "hostile-nf",
        "first",
        "d",
        &["--mode".into(), "rehash".into()],
    );
    core.spawn_nf("l2fwd", "a", "d", &l2fwd(Some(MAC_A)));
    attach_then_stop(&mut core, A);
    core.spawn_nf("l2fwd", "hold", "d", &l2fwd(None));
    attach_then_stop(&mut core, HOLD);
    core.spawn_nf("l2fwd", "b", "d", &l2fwd(Some(MAC_B)));
    core.spawn_nf("l2fwd", "last", "d", &l2fwd(None));
    core.wait_running();

    // Phase 1: everything is in; what is in flight sits in a's and hold's rings.
    let held = |s: &serde_json::Value, i: usize| s["nfs"][i]["held"].as_u64().unwrap_or(u64::MAX);
    let st = core.wait_stats(Duration::from_secs(60), |s| {
        s["received"].as_u64() == Some(n1 + n2)
            && held(s, HOLD) == n2
            && [FIRST, B, LAST].iter().all(|&i| held(s, i) == 0)
            && s["in_flight"].as_u64() == Some(held(s, A) + n2)
    });
    let delivered = |s: &serde_json::Value, i: usize| s["nfs"][i]["delivered"].as_u64();
    assert_eq!(
        (delivered(&st, A), delivered(&st, B)),
        (Some(600), Some(512)),
        "mid: the lead flow on a, the 128 new flows all on b: {st:#}"
    );
    core.nfs[A].signal(libc::SIGCONT);
    core.wait_stats(Duration::from_secs(60), |s| {
        s["in_flight"].as_u64() == Some(n2)
    });

    // Phase 2: new tables, b stopped, hold's packets go on.
    let r = core.ctl(&json!({"cmd": "set_chains", "chains": chains}));
    assert_eq!(r["ok"], true, "{r}");
    stop(&mut core, B);
    core.nfs[HOLD].signal(libc::SIGCONT);
    let st = core.wait_stats(Duration::from_secs(60), |s| {
        held(s, HOLD) == 0 && s["in_flight"].as_u64() == Some(held(s, B))
    });
    assert_eq!(
        (delivered(&st, A), delivered(&st, B), held(&st, B)),
        (Some(700), Some(1024), 512),
        "after set_chains every flow went back to its instance: {st:#}"
    );
    core.nfs[B].signal(libc::SIGCONT);
    core.wait_stats(Duration::from_secs(60), |s| s["in_flight"] == 0);

    let report = core.shutdown();
    let n = n1 + n2;
    assert_eq!(report["accounting_ok"], true, "{report:#}");
    assert_eq!(report["pools_full"], true, "{report:#}");
    assert_eq!(report["received"].as_u64(), Some(n), "{report:#}");
    assert_eq!(report["transmitted"].as_u64(), Some(n), "{report:#}");
    assert_eq!(delivered(&report, A), Some(700), "{report:#}");
    assert_eq!(delivered(&report, B), Some(1024), "{report:#}");
    assert_eq!(delivered(&report, FIRST), Some(n1), "{report:#}");
    assert_eq!(delivered(&report, HOLD), Some(n2), "{report:#}");
    assert_eq!(delivered(&report, LAST), Some(n), "{report:#}");
    let mut per_flow: HashMap<[u8; 8], Vec<[u8; 6]>> = HashMap::new();
    for f in read_pcap(&output) {
        per_flow
            .entry(f[26..34].try_into().unwrap())
            .or_default()
            .push(f[6..12].try_into().unwrap());
    }
    assert_eq!(per_flow.len(), 129);
    for (flow, macs) in &per_flow {
        assert!(
            macs.iter().all(|m| *m == macs[0]),
            "flow {flow:?} split across instances: {macs:?}"
        );
    }
    let lead = per_flow
        .iter()
        .find(|(k, _)| k[..4] == [10, 9, 9, 9])
        .map(|(_, v)| (v[0], v.len()));
    assert_eq!(lead, Some((MAC_A, 700)), "the lead flow stays on a");
    assert_eq!(count(&per_flow, MAC_B), 128, "every other flow stays on b");
}
