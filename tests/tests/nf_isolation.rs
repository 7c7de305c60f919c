//! One hostile NF must not hurt anyone else in its own trust domain.
//!
//! Every test runs three chains in ONE domain: a victim chain (port → l2fwd → port), a
//! port→port chain without NFs, and the attacker's chain (an endless `net_pcap` source →
//! hostile NF → port). The attacker's port is polled first, so it is fed before the others.
//! Whatever the attacker does, the victim's and the port→port chain's output are exact (every
//! frame, byte for byte), the attacker is capped or quarantined with the reason counted, the
//! live accounting holds at every stats read, and every pool is full after shutdown.
//!
//! Attacks: hoarding every buffer (pool exhaustion), an impossible TX producer index, an
//! impossible RX consumer index, garbage over the domain region's header, and reaching for a
//! neighbour's control words (which must not be in the attacker's mappings at all, and whose
//! file it cannot open as an unprivileged user).

use std::time::{Duration, Instant};

use netvm_tests::traffic::{flow_frames, read_pcap, write_pcap};
use netvm_tests::{eal_section, worker_cpu, Core, Scratch};
use serde_json::{json, Value};

/// Victim and port→port frames (fit the victim's ring: no ring_full, whatever the CPU load).
const VICTIM_FRAMES: u32 = 6000;
/// The attacker's quota.
const EVIL_QUOTA: u32 = 1024;

struct Setup {
    core: Core,
    victim_in: Vec<Vec<u8>>,
    p2p_in: Vec<Vec<u8>>,
    victim_out: std::path::PathBuf,
    p2p_out: std::path::PathBuf,
}

fn start(tag: &str, evil_args: &[&str], extra_cfg: Value) -> Setup {
    let dir = Scratch::new(tag);
    let victim_in = flow_frames(60, VICTIM_FRAMES / 60);
    let p2p_in = flow_frames(30, VICTIM_FRAMES / 30);
    let evil_in = flow_frames(8, 64);
    let (vin, pin, ein) = (
        dir.path("victim.pcap"),
        dir.path("p2p.pcap"),
        dir.path("evil.pcap"),
    );
    write_pcap(&vin, &victim_in);
    write_pcap(&pin, &p2p_in);
    write_pcap(&ein, &evil_in);
    let (victim_out, p2p_out) = (dir.path("victim-out.pcap"), dir.path("p2p-out.pcap"));
    let mut cfg = json!({
        "name": tag,
        "workers": [{"cpu": worker_cpu()}],
        "eal": eal_section(),
        "domains": [{"name": "shared", "buffers": 32768}],
        "ring_capacity": 8192,
        "hoard_timeout_ms": 300,
        "ports": [
            // Polled first: the attacker's endless source.
            {"name": "ein", "device": format!("net_pcap0,rx_pcap={},infinite_rx=1", ein.display()), "domain": "shared"},
            {"name": "eout", "device": "net_null0,no-rx=1", "domain": "shared"},
            {"name": "vin", "device": format!("net_pcap1,rx_pcap={}", vin.display()), "domain": "shared"},
            {"name": "vout", "device": format!("net_pcap2,tx_pcap={}", victim_out.display()), "domain": "shared"},
            {"name": "pin", "device": format!("net_pcap3,rx_pcap={}", pin.display()), "domain": "shared"},
            {"name": "pout", "device": format!("net_pcap4,tx_pcap={}", p2p_out.display()), "domain": "shared"}
        ],
        "nfs": [
            {"name": "evil", "service": "evil", "domain": "shared", "quota": EVIL_QUOTA},
            {"name": "l2", "service": "l2fwd", "domain": "shared"}
        ],
        "chains": [
            {"name": "attacker", "match": {"in_port": "ein"}, "services": ["evil"], "egress": "eout"},
            {"name": "victim", "match": {"in_port": "vin"}, "services": ["l2fwd"], "egress": "vout"},
            {"name": "p2p", "match": {"in_port": "pin"}, "egress": "pout"}
        ]
    });
    if let (Some(c), Some(extra)) = (cfg.as_object_mut(), extra_cfg.as_object()) {
        for (k, v) in extra {
            c.insert(k.clone(), v.clone());
        }
    }
    let mut core = Core::start(cfg, dir, &[]);
    let a: Vec<String> = evil_args.iter().map(|s| (*s).to_string()).collect();
    core.spawn_nf("hostile-nf", "evil", "shared", &a);
    core.spawn_nf("l2fwd", "l2", "shared", &l2_args());
    core.wait_running();
    Setup {
        core,
        victim_in,
        p2p_in,
        victim_out,
        p2p_out,
    }
}

const VICTIM_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x99];

fn l2_args() -> Vec<String> {
    vec!["--dst-mac".into(), "02:00:00:00:00:99".into()]
}

fn port<'a>(st: &'a Value, name: &str) -> &'a Value {
    st["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap()
}

fn nf<'a>(st: &'a Value, name: &str) -> &'a Value {
    st["nfs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap()
}

/// Waits until the victim and port→port chains delivered everything and `pred` holds.
fn wait_done(s: &mut Setup, pred: impl Fn(&Value) -> bool) -> Value {
    let (nv, np) = (s.victim_in.len() as u64, s.p2p_in.len() as u64);
    s.core.wait_stats(Duration::from_secs(120), |st| {
        port(st, "vout")["tx"].as_u64() == Some(nv)
            && port(st, "pout")["tx"].as_u64() == Some(np)
            && pred(st)
    })
}

/// Shuts down and checks what every attack must leave intact.
fn finish(mut s: Setup) -> Value {
    let report = s.core.shutdown();
    assert_eq!(report["accounting_ok"], true, "{report:#}");
    assert_eq!(report["pools_full"], true, "{report:#}");
    // l2fwd rewrites the destination MAC, nothing else: output = input with that MAC, byte
    // for byte, in order.
    let want: Vec<Vec<u8>> = s
        .victim_in
        .iter()
        .map(|f| {
            let mut f = f.clone();
            f[..6].copy_from_slice(&VICTIM_MAC);
            f
        })
        .collect();
    let got = read_pcap(&s.victim_out);
    assert!(
        got == want,
        "victim chain disturbed: {} of {} frames, drops {}",
        got.len(),
        s.victim_in.len(),
        report["drops"]
    );
    let got = read_pcap(&s.p2p_out);
    assert!(
        got == s.p2p_in,
        "port->port chain disturbed: {} of {} frames, drops {}",
        got.len(),
        s.p2p_in.len(),
        report["drops"]
    );
    report
}

/// The attacker's `ATTACK-REPORT` line.
fn attack_report(core: &mut Core) -> Value {
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let log = core.nfs[0].log_text();
        if let Some(l) = log.lines().find_map(|l| l.strip_prefix("ATTACK-REPORT ")) {
            return serde_json::from_str(l).expect("report json");
        }
        assert!(Instant::now() < end, "no attack report:\n{log}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn hoarding_nf_is_capped_by_its_quota_then_quarantined() {
    let mut s = start("iso-hoard", &["--mode", "hoard"], json!({}));
    let st = wait_done(&mut s, |st| nf(st, "evil")["state"] == "quarantined");
    let evil = nf(&st, "evil");
    assert_eq!(evil["quarantined_for"], "hoarding", "{evil:#}");
    assert_eq!(evil["quota"], EVIL_QUOTA, "{evil:#}");
    // It reached its quota (deliveries beyond it were its own chain's drops), never more.
    assert!(evil["quota_drops"].as_u64().unwrap() > 0, "{evil:#}");
    assert_eq!(
        evil["delivered"].as_u64(),
        Some(u64::from(EVIL_QUOTA)),
        "{evil:#}"
    );
    assert_eq!(
        evil["reclaimed"].as_u64(),
        Some(u64::from(EVIL_QUOTA)),
        "{evil:#}"
    );
    assert_eq!(evil["held"], 0, "{evil:#}");
    assert!(st["drops"]["nf_quota"].as_u64().unwrap() > 0, "{st:#}");
    // The victim lost nothing.
    let l2 = nf(&st, "l2");
    assert_eq!(
        l2["delivered"].as_u64(),
        Some(s.victim_in.len() as u64),
        "{l2:#}"
    );
    println!(
        "hoard: attacker capped at {} buffers ({} deliveries dropped as nf_quota), quarantined \
         for hoarding, victim {} + port->port {} frames exact",
        EVIL_QUOTA,
        evil["quota_drops"],
        s.victim_in.len(),
        s.p2p_in.len()
    );
    finish(s);
}

fn corrupt_ring(mode: &str, reason: &str) {
    let mut s = start(
        &format!("iso-{mode}"),
        &["--mode", mode, "--first", "100"],
        json!({}),
    );
    let st = wait_done(&mut s, |st| nf(st, "evil")["state"] == "quarantined");
    let evil = nf(&st, "evil");
    assert_eq!(evil["quarantined_for"], reason, "{evil:#}");
    assert!(
        evil["rejects"]["ring_index_corrupt"].as_u64().unwrap_or(0) >= 1,
        "{evil:#}"
    );
    assert_eq!(evil["held"], 0, "{evil:#}");
    let rep = attack_report(&mut s.core);
    assert_eq!(rep["forwarded"], 100, "{rep}");
    // Quarantined NFs stay cut off (no quarantine_reattach): its chain's packets now find no
    // instance, counted as such.
    let st = s.core.wait_stats(Duration::from_secs(30), |st| {
        st["drops"]["nf_unavailable"].as_u64().unwrap_or(0) > 0
    });
    assert_eq!(nf(&st, "evil")["state"], "quarantined");
    println!(
        "{mode}: attacker quarantined ({reason}), rejects {}, victim and port->port exact",
        evil["rejects"]
    );
    finish(s);
}

#[test]
fn corrupt_tx_producer_index_quarantines_only_the_attacker() {
    corrupt_ring("corrupt-tx", "tx_ring_corrupt");
}

#[test]
fn corrupt_rx_consumer_index_quarantines_only_the_attacker() {
    corrupt_ring("corrupt-rx", "rx_ring_corrupt");
}

#[test]
fn garbage_in_the_domain_header_hurts_nobody() {
    let mut s = start("iso-header", &["--mode", "header"], json!({}));
    let rep = attack_report(&mut s.core);
    assert_eq!(rep["header_bytes"], 4096, "{rep}");
    let st = wait_done(&mut s, |_| true);
    assert_eq!(nf(&st, "l2")["state"], "attached");
    // The victim restarts after the garbage: it takes its buffer geometry from its own control
    // region, so it attaches again and carries traffic.
    let victim = s.core.nfs.remove(1);
    drop(victim); // SIGTERM: it detaches; the core takes its buffers back and reserves again
    s.core.wait_stats(Duration::from_secs(30), |st| {
        nf(st, "l2")["state"] == "pending" && nf(st, "l2")["held"] == 0
    });
    s.core.spawn_nf("l2fwd", "l2", "shared", &l2_args());
    s.core.wait_stats(Duration::from_secs(30), |st| {
        nf(st, "l2")["state"] == "attached"
    });
    println!("header: 4096 bytes of garbage over the domain header; victim exact, re-attached");
    finish(s);
}

#[test]
fn a_neighbours_control_words_are_out_of_reach() {
    let mut s = start(
        "iso-neighbour",
        &["--mode", "neighbour", "--victim", "l2", "--as-uid", "62999"],
        // Its scan of both mappings holds its quota for a while: not hoarding.
        json!({"hoard_timeout_ms": 600_000}),
    );
    let rep = attack_report(&mut s.core);
    // Positive control: its own slot (name field) is found in its control mapping.
    assert!(rep["own_slot_in_control"].as_u64().unwrap() >= 1, "{rep}");
    // The victim's slot is in neither of its mappings...
    assert_eq!(rep["victim_slot_in_control"], 0, "{rep}");
    assert_eq!(rep["victim_slot_in_domain"], 0, "{rep}");
    // ...and its control region file cannot be opened by another user.
    assert_eq!(rep["victim_control_opened"], false, "{rep}");
    assert_eq!(rep["errno"], libc::EACCES, "{rep}");
    let st = wait_done(&mut s, |_| true);
    assert_eq!(nf(&st, "evil")["state"], "attached");
    println!("neighbour: victim's control region not mapped, open as uid 62999: EACCES");
    finish(s);
}
