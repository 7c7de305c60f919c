//! Chains change and NFs detach at run time without losing packets of other chains: chain A's
//! packets sit in its (stopped) NF's ring while chain B is replaced over the control socket and
//! B's NF is detached; afterwards A's packets all come out, exactly.

use std::time::{Duration, Instant};

use netvm_tests::traffic::{read_pcap, write_pcap};
use netvm_tests::{eal_section, worker_cpu, Core, Scratch};
use serde_json::json;

#[test]
fn chain_change_and_detach_keep_other_chains_whole() {
    let dir = Scratch::new("rt");
    let frames: Vec<Vec<u8>> = netvm_tests::traffic::flow_frames(50, 10);
    let (input, output) = (dir.path("in.pcap"), dir.path("out.pcap"));
    write_pcap(&input, &frames);
    let chain_a =
        json!({"name": "a", "match": {"in_port": "in"}, "services": ["fwd"], "egress": "out"});
    let cfg = json!({
        "name": "rt",
        "workers": [{"cpu": worker_cpu()}],
        "eal": eal_section(),
        "domains": [{"name": "d", "buffers": 4096}],
        "ports": [
            {"name": "in", "device": format!("net_pcap0,rx_pcap={}", input.display()), "domain": "d"},
            {"name": "out", "device": format!("net_pcap1,tx_pcap={}", output.display()), "domain": "d"},
            {"name": "in2", "device": "net_null0,size=64,copy=1", "domain": "d"},
            {"name": "out2", "device": "net_null1,no-rx=1", "domain": "d"}
        ],
        "nfs": [
            {"name": "fa", "service": "fwd", "domain": "d"},
            {"name": "mb", "service": "mon", "domain": "d"}
        ],
        "chains": [chain_a, {"name": "b", "match": {"in_port": "in2"}, "services": ["mon"], "egress": "out2"}]
    });
    let mut core = Core::start(cfg, dir, &[]);
    core.spawn_nf(
        "l2fwd",
        "fa",
        "d",
        &["--dst-mac".into(), "02:00:00:00:00:77".into()],
    );
    let end = Instant::now() + Duration::from_secs(30);
    while core.ctl(&json!({"cmd": "status"}))["nfs"][0]["state"] != "attached" {
        assert!(
            Instant::now() < end,
            "fa never attached\n{}",
            core.nf_logs()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    core.nfs[0].signal(libc::SIGSTOP);
    core.spawn_nf("monitor", "mb", "d", &[]);
    core.wait_running();
    // All of A's packets are in fa's ring; B flows through mb.
    let n = frames.len() as u64;
    core.wait_stats(Duration::from_secs(30), |s| {
        s["ports"][0]["rx"].as_u64() == Some(n) && s["nfs"][1]["delivered"].as_u64() > Some(1000)
    });

    // Replace chain B: now port to drop, no NF.
    let r = core.ctl(&json!({"cmd": "set_chains", "chains": [
        {"name": "a", "match": {"in_port": "in"}, "services": ["fwd"], "egress": "out"},
        {"name": "b2", "match": {"in_port": "in2"}, "egress": "drop"}
    ]}));
    assert_eq!(r["ok"], true, "{r}");
    // A bad change is refused with a reason and changes nothing.
    let r = core.ctl(&json!({"cmd": "set_chains", "chains": [{"name": "x", "services": ["nosuch"], "egress": "out"}]}));
    assert_eq!(r["ok"], false, "{r}");
    assert!(
        r["error"]
            .as_str()
            .unwrap_or("")
            .contains("chains[0].services[0]"),
        "{r}"
    );
    // Detach mb at run time.
    let r = core.ctl(&json!({"cmd": "detach", "nf": "mb"}));
    assert_eq!(r["ok"], true, "{r}");
    let st = core.wait_stats(Duration::from_secs(30), |s| {
        s["drops"]["chain_egress_drop"].as_u64() > Some(1000) && s["nfs"][1]["held"] == 0
    });
    assert_eq!(st["nfs"][1]["state"], "detached", "{st:#}");

    // Let fa run: every packet of A comes out, in order, nothing of A lost.
    core.nfs[0].signal(libc::SIGCONT);
    core.wait_stats(Duration::from_secs(30), |s| {
        s["ports"][1]["tx"].as_u64() == Some(n)
    });
    let report = core.shutdown();
    assert_eq!(report["accounting_ok"], true, "{report:#}");
    assert_eq!(report["pools_full"], true, "{report:#}");
    assert_eq!(report["ports"][1]["tx"].as_u64(), Some(n));
    let fa = &report["nfs"][0];
    assert_eq!(fa["delivered"].as_u64(), Some(n), "{fa:#}");
    let got = read_pcap(&output);
    let want = netvm_tests::traffic::with_dst_mac(&frames, [2, 0, 0, 0, 0, 0x77]);
    assert_eq!(got, want, "chain A's packets changed or lost");
}
