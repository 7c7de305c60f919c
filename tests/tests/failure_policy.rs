//! A chain's failure policy when a service has no attached instance left: `bypass` skips the
//! service (every packet still leaves), `drop` drops and counts `nf_unavailable`.

use std::time::Duration;

use netvm_tests::{eal_section, worker_cpu, Core, Scratch};
use serde_json::json;

#[test]
fn bypass_skips_and_drop_counts_when_the_service_is_gone() {
    let dir = Scratch::new("failure");
    let cfg = json!({
        "name": "failure",
        "workers": [{"cpu": worker_cpu()}],
        "eal": eal_section(),
        "domains": [{"name": "d", "buffers": 4096}],
        "ports": [
            {"name": "in_b", "device": "net_null0,size=64,copy=1", "domain": "d"},
            {"name": "out_b", "device": "net_null1,no-rx=1", "domain": "d"},
            {"name": "in_d", "device": "net_null2,size=64,copy=1", "domain": "d"},
            {"name": "out_d", "device": "net_null3,no-rx=1", "domain": "d"}
        ],
        "nfs": [
            {"name": "x", "service": "sx", "domain": "d"},
            {"name": "y", "service": "sy", "domain": "d"}
        ],
        "chains": [
            {"name": "byp", "match": {"in_port": "in_b"}, "services": ["sx"], "egress": "out_b", "failure": "bypass"},
            {"name": "drp", "match": {"in_port": "in_d"}, "services": ["sy"], "egress": "out_d"}
        ]
    });
    let mut core = Core::start(cfg, dir, &[]);
    for nf in ["x", "y"] {
        core.spawn_nf(
            "l2fwd",
            nf,
            "d",
            &["--dst-mac".into(), "02:00:00:00:00:05".into()],
        );
    }
    core.wait_running();
    for nf in ["x", "y"] {
        let r = core.ctl(&json!({"cmd": "detach", "nf": nf}));
        assert_eq!(r["ok"], true, "{r}");
    }
    let s1 = core.wait_stats(Duration::from_secs(30), |s| {
        s["nfs"][0]["held"] == 0 && s["nfs"][1]["held"] == 0 && s["nfs"][0]["state"] == "detached"
    });
    let s2 = core.wait_stats(Duration::from_secs(30), |s| {
        s["ports"][0]["rx"].as_u64() > s1["ports"][0]["rx"].as_u64().map(|v| v + 100_000)
    });
    let d = |s: &serde_json::Value, p: &str| {
        s.pointer(p)
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
    };
    let delta = |p: &str| d(&s2, p) - d(&s1, p);
    assert!(delta("/ports/0/rx") > 0);
    assert_eq!(
        delta("/ports/0/rx"),
        delta("/ports/1/tx"),
        "bypass: every packet leaves\n{s1:#}\n{s2:#}"
    );
    assert_eq!(
        delta("/nfs/0/delivered"),
        0,
        "bypass: nothing goes to the detached NF"
    );
    assert_eq!(
        delta("/ports/2/rx"),
        delta("/drops/nf_unavailable"),
        "drop: every packet counted\n{s1:#}\n{s2:#}"
    );
    assert_eq!(delta("/ports/3/tx"), 0);
    let report = core.shutdown();
    assert_eq!(report["accounting_ok"], true, "{report:#}");
    assert_eq!(report["pools_full"], true, "{report:#}");
}
