//! Two workers on this machine's two CPUs.
//!
//! * Exact: an input port with two RX queues (two pcap files) and no RSS, so the core's
//!   symmetric flow hash steers each flow to one worker; two chains, each with its own NF, fed
//!   by both workers; an output port with ONE TX queue, which the worker without a queue
//!   reaches through the queue owner's hand-off ring. Every frame comes out once, in order
//!   within its flow (sequence numbers in the payload), accounting exact, pools full.
//! * An NF fed by two workers SIGKILLed under endless traffic: every buffer it held comes
//!   back (held 0, accounting exact at every read), the chain goes on through the other
//!   instance, pools full at the end.

use std::collections::BTreeMap;
use std::time::Duration;

use netvm_tests::traffic::{ipv4_header_checksum, read_pcap, write_pcap};
use netvm_tests::{eal_section, Core, Scratch};
use serde_json::{json, Value};

const DST_MAC: &str = "02:00:00:00:00:99";

/// A UDP frame of flow `flow` (source port 1000 + flow, destination port `dport`) carrying
/// (flow, seq) as its first payload bytes.
fn frame(flow: u32, seq: u32, dport: u16) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + 8 + 22];
    f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip_len = u16::try_from(f.len() - 14).unwrap();
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    let [_, _, hi, lo] = flow.to_be_bytes();
    ip[12..16].copy_from_slice(&[10, 0, hi, lo]);
    ip[16..20].copy_from_slice(&[10, 1, 0, 1]);
    let c = ipv4_header_checksum(ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let sport = u16::try_from(1000 + flow).unwrap();
    f[34..36].copy_from_slice(&sport.to_be_bytes());
    f[36..38].copy_from_slice(&dport.to_be_bytes());
    f[38..40].copy_from_slice(&(ip_len - 20).to_be_bytes());
    f[42..46].copy_from_slice(&flow.to_be_bytes());
    f[46..50].copy_from_slice(&seq.to_be_bytes());
    f
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn nf<'a>(st: &'a Value, name: &str) -> &'a Value {
    st["nfs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap()
}

fn by_worker(st: &Value, name: &str) -> Vec<u64> {
    nf(st, name)["delivered_by_worker"]
        .as_array()
        .map(|a| a.iter().map(u).collect())
        .unwrap_or_default()
}

#[test]
fn two_workers_steer_flows_share_a_tx_queue_and_keep_order() {
    let dir = Scratch::new("mw");
    // Queue 0 carries flows 0..16, queue 1 flows 16..32; even flows go to chain "a", odd to
    // chain "b". Frames of a flow are interleaved with the other flows' in its file.
    const FLOWS: u32 = 32;
    const PER_FLOW: u32 = 150;
    let mut files = Vec::new();
    for q in 0..2u32 {
        let mut frames = Vec::new();
        for seq in 0..PER_FLOW {
            for flow in q * FLOWS / 2..(q + 1) * FLOWS / 2 {
                frames.push(frame(flow, seq, 5000 + u16::try_from(flow % 2).unwrap()));
            }
        }
        let p = dir.path(&format!("in{q}.pcap"));
        write_pcap(&p, &frames);
        files.push(p);
    }
    let out = dir.path("out.pcap");
    let total = u64::from(FLOWS * PER_FLOW);
    let cfg = json!({
        "name": "mw",
        "workers": [{"cpu": 0}, {"cpu": 1}],
        "eal": eal_section(),
        "domains": [{"name": "d", "buffers": 8192}],
        "ring_capacity": 1024,
        "ports": [
            {"name": "in", "domain": "d", "rx_rate_pps": 40000,
             "device": format!("net_pcap0,rx_pcap={},rx_pcap={}", files[0].display(), files[1].display())},
            {"name": "out", "domain": "d", "device": format!("net_pcap1,tx_pcap={}", out.display())}
        ],
        "nfs": [
            {"name": "a", "service": "fa", "domain": "d"},
            {"name": "b", "service": "fb", "domain": "d"}
        ],
        "chains": [
            {"name": "ca", "match": {"in_port": "in", "proto": "udp", "dst_port": "5000"}, "services": ["fa"], "egress": "out"},
            {"name": "cb", "match": {"in_port": "in", "proto": "udp", "dst_port": "5001"}, "services": ["fb"], "egress": "out"}
        ]
    });
    let mac = ["--dst-mac".to_string(), DST_MAC.into()];
    let mut core = Core::start(cfg, dir, &[]);
    core.spawn_nf("l2fwd", "a", "d", &mac);
    core.spawn_nf("l2fwd", "b", "d", &mac);
    core.wait_running();
    let st = core.wait_stats(Duration::from_secs(60), |s| {
        u(&s["transmitted"]) + u(&s["dropped"]) >= total && s["in_flight"] == 0
    });
    assert_eq!(st["accounting_ok"], true, "{st:#}");
    assert_eq!(u(&st["received"]), total, "{st:#}");
    assert_eq!(u(&st["transmitted"]), total, "drops: {:#}", st["drops"]);
    // Both workers fed both NFs, and frames crossed between workers (steering from the
    // second queue's poller and TX through the only queue's owner).
    for name in ["a", "b"] {
        let w = by_worker(&st, name);
        assert!(
            w.len() == 2 && w[0] > 0 && w[1] > 0,
            "{name}: {w:?}\n{st:#}"
        );
    }
    assert!(u(&st["handoffs"]) > 0, "{st:#}");
    // Each NF measures its own busy cycles; the core shows them per packet.
    for name in ["a", "b"] {
        assert!(u(&nf(&st, name)["cycles_per_packet"]) > 0, "{name}: {st:#}");
    }
    let report = core.shutdown();
    assert_eq!(report["accounting_ok"], true, "{report:#}");
    assert_eq!(report["pools_full"], true, "{report:#}");
    assert_eq!(u(&report["transmitted"]), total);

    // Every frame once; within each flow, in order.
    let frames = read_pcap(&out);
    assert_eq!(frames.len() as u64, total);
    let mut next: BTreeMap<u32, u32> = BTreeMap::new();
    for f in &frames {
        assert_eq!(&f[0..6], &[0x02, 0, 0, 0, 0, 0x99], "l2fwd rewrote the MAC");
        let flow = u32::from_be_bytes(f[42..46].try_into().unwrap());
        let seq = u32::from_be_bytes(f[46..50].try_into().unwrap());
        let want = next.entry(flow).or_insert(0);
        assert_eq!(seq, *want, "flow {flow} reordered");
        *want += 1;
    }
    assert_eq!(next.len(), FLOWS as usize);
    assert!(next.values().all(|&n| n == PER_FLOW));
}

#[test]
fn nf_fed_by_two_workers_killed_under_load_gives_every_buffer_back() {
    let dir = Scratch::new("mwkill");
    let mut files = Vec::new();
    for q in 0..2u32 {
        let frames: Vec<Vec<u8>> = (0..64)
            .flat_map(|seq| (q * 32..q * 32 + 32).map(move |flow| frame(flow, seq, 5000)))
            .collect();
        let p = dir.path(&format!("in{q}.pcap"));
        write_pcap(&p, &frames);
        files.push(p);
    }
    let cfg = json!({
        "name": "mwkill",
        "workers": [{"cpu": 0}, {"cpu": 1}],
        "eal": eal_section(),
        "domains": [{"name": "d", "buffers": 8192}],
        "ring_capacity": 512,
        "ports": [
            {"name": "in", "domain": "d", "rx_rate_pps": 200000,
             "device": format!("net_pcap0,rx_pcap={},rx_pcap={},infinite_rx=1", files[0].display(), files[1].display())},
            {"name": "out", "domain": "d", "device": "net_null0,no-rx=1"}
        ],
        "nfs": [
            {"name": "a", "service": "fwd", "domain": "d"},
            {"name": "b", "service": "fwd", "domain": "d"}
        ],
        "chains": [{"name": "c", "match": {"in_port": "in"}, "services": ["fwd"], "egress": "out"}]
    });
    let mac = ["--dst-mac".to_string(), DST_MAC.into()];
    let mut core = Core::start(cfg, dir, &[]);
    core.spawn_nf("l2fwd", "a", "d", &mac);
    core.spawn_nf("l2fwd", "b", "d", &mac);
    core.wait_running();
    // Under load, both workers feeding a (and b).
    let st = core.wait_stats(Duration::from_secs(60), |s| {
        let w = by_worker(s, "a");
        w.len() == 2 && w[0] > 2000 && w[1] > 2000 && u(&nf(s, "a")["held"]) > 0
    });
    assert_eq!(st["accounting_ok"], true, "{st:#}");
    let before = u(&nf(&st, "a")["reclaimed"]);
    core.nfs[0].signal(libc::SIGKILL);
    let st = core.wait_stats(Duration::from_secs(30), |s| {
        let a = nf(s, "a");
        a["state"] != "attached" && a["held"] == 0 && u(&a["reclaimed"]) > before
    });
    assert_eq!(st["accounting_ok"], true, "{st:#}");
    let _ = core.nfs[0].wait_timeout(Duration::from_secs(5));
    // The chain goes on through b, and a stays at zero: nothing was enqueued to it after the
    // reclaim's scan.
    let b0 = u(&nf(&st, "b")["delivered"]);
    let st2 = core.wait_stats(Duration::from_secs(30), |s| {
        u(&nf(s, "b")["delivered"]) > b0 + 5000
    });
    assert_eq!(st2["accounting_ok"], true, "{st2:#}");
    assert_eq!(nf(&st2, "a")["held"], 0, "{st2:#}");
    assert_eq!(nf(&st2, "a")["delivered"], nf(&st, "a")["delivered"]);
    let report = core.shutdown();
    assert_eq!(report["accounting_ok"], true, "{report:#}");
    assert_eq!(report["pools_full"], true, "{report:#}");
    assert_eq!(
        report["held_at_shutdown"]
            .as_object()
            .map_or(0, |m| m.len()),
        0,
        "{report:#}"
    );
}
