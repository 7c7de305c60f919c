//! An NF returning buffers it does not own, out-of-range indices, bad lengths, unknown verdicts
//! and ports outside its chain: each is rejected and counted by reason, the core keeps running,
//! and the traffic of another chain (firewall → l3fwd) comes out exactly as the model says.

use std::time::Duration;

use netvm_tests::traffic::{write_pcap, Load};
use netvm_tests::{eal_section, worker_cpu, Core, Scratch};
use serde_json::json;

#[test]
fn hostile_nf_rejected_and_counted_others_unaffected() {
    let dir = Scratch::new("hostile");
    let load = Load::new(24, 12);
    let bad_load = Load::new(16, 25); // 400 IPv4 frames + 7 extra into the hostile chain
    let (input, input2, output, output2) = (
        dir.path("in.pcap"),
        dir.path("in2.pcap"),
        dir.path("out.pcap"),
        dir.path("out2.pcap"),
    );
    write_pcap(&input, &load.frames);
    write_pcap(&input2, &bad_load.frames);
    std::fs::write(dir.path("fw.rules"), Load::rules()).unwrap();
    std::fs::write(dir.path("routes"), Load::routes(1)).unwrap();
    let cfg = json!({
        "name": "hostile",
        "workers": [{"cpu": worker_cpu()}],
        "eal": eal_section(),
        "domains": [{"name": "trusted", "buffers": 2048}],
        "ports": [
            {"name": "in", "device": format!("net_pcap0,rx_pcap={}", input.display()), "domain": "trusted"},
            {"name": "out", "device": format!("net_pcap1,tx_pcap={}", output.display()), "domain": "trusted"},
            {"name": "in2", "device": format!("net_pcap2,rx_pcap={}", input2.display()), "domain": "trusted"},
            {"name": "out2", "device": format!("net_pcap3,tx_pcap={}", output2.display()), "domain": "trusted"}
        ],
        "nfs": [
            {"name": "fw1", "service": "firewall", "domain": "trusted"},
            {"name": "l3", "service": "l3fwd", "domain": "trusted"},
            {"name": "evil", "service": "evil", "domain": "trusted"}
        ],
        "chains": [
            {"name": "web", "match": {"in_port": "in"}, "services": ["firewall", "l3fwd"], "egress": "out"},
            {"name": "bad", "match": {"in_port": "in2"}, "services": ["evil"], "egress": "out2"}
        ]
    });
    let rules = dir.path("fw.rules").display().to_string();
    let routes = dir.path("routes").display().to_string();
    let mut core = Core::start(cfg, dir, &[]);
    core.spawn_nf("firewall", "fw1", "trusted", &["--rules".into(), rules]);
    core.spawn_nf("l3fwd", "l3", "trusted", &["--routes".into(), routes]);
    core.spawn_nf("hostile-nf", "evil", "trusted", &[]);
    core.wait_running();
    let n = (load.frames.len() + bad_load.frames.len()) as u64;
    core.wait_stats(Duration::from_secs(60), |s| {
        s["received"].as_u64() == Some(n) && s["in_flight"] == 0
    });
    let report = core.shutdown();
    assert_eq!(report["accounting_ok"], true, "{report:#}");
    assert_eq!(report["pools_full"], true, "{report:#}");

    // The hostile NF: exact rejects by reason.
    let m = bad_load.frames.len() as u64;
    let per = |k: u64| (0..m).filter(|i| i % 4 == k).count() as u64;
    let evil = report["nfs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "evil")
        .unwrap()
        .clone();
    assert_eq!(evil["delivered"].as_u64(), Some(m), "{evil:#}");
    assert_eq!(evil["returned"].as_u64(), Some(m), "{evil:#}");
    let rej = &evil["rejects"];
    assert_eq!(rej["bad_index"].as_u64(), Some(m), "{evil:#}");
    assert_eq!(rej["bad_bounds"].as_u64(), Some(per(0)), "{evil:#}");
    assert_eq!(rej["unknown_verdict"].as_u64(), Some(per(1)), "{evil:#}");
    assert_eq!(rej["port_not_allowed"].as_u64(), Some(per(2)), "{evil:#}");
    assert_eq!(rej["not_owner"].as_u64(), Some(per(3)), "{evil:#}");
    assert_eq!(
        report["drops"]["rejected"].as_u64(),
        Some(per(0) + per(1) + per(2)),
        "{report:#}"
    );
    let out2 = netvm_tests::traffic::read_pcap(&output2);
    assert_eq!(
        out2.len() as u64,
        per(3),
        "only correctly returned packets leave"
    );

    // The other chain: exactly the model's output.
    let got = netvm_tests::traffic::read_pcap(&output);
    assert_eq!(
        got,
        load.expected(),
        "the firewall -> l3fwd chain was disturbed"
    );
}
