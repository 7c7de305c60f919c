//! A service with two instances. Under `flow_hash` both get flows and every flow stays on one
//! instance. Under `least_loaded`, with one instance stalled (SIGSTOP) so that its ring fills,
//! new flows shift to the other; each flow still stays where it was placed.

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
