//! NFs and services added and removed while traffic flows (issue 16 item 3), over the core's
//! control socket: a new NF takes a spare entry, a chain naming its new service is set, it
//! carries exact output; the NF is removed (drained, nothing reclaimed, its entry free and
//! reused); the chain that was never touched loses nothing. Refusals (name taken, unknown
//! domain, no free entry) are one line and change nothing.

use std::time::Duration;

use netvm_tests::traffic::{flow_frames, read_pcap, write_pcap};
use netvm_tests::{eal_section, worker_cpu, Core, Scratch};
use serde_json::{json, Value};

const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 0x77];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 0x88];

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// `frames` with l2fwd's rewrite (destination MAC).
fn rewritten(frames: &[Vec<u8>], mac: [u8; 6]) -> Vec<Vec<u8>> {
    frames
        .iter()
        .map(|f| {
            let mut f = f.clone();
            f[..6].copy_from_slice(&mac);
            f
        })
        .collect()
}

/// Asserts that `got` is a run of the endless replay of `want` (frame k is `want[(o + k) %
/// len]` for one `o`; `o = 0` when `from_start`): nothing lost, duplicated, reordered or
/// changed in between.
fn assert_cyclic_run(got: &[Vec<u8>], want: &[Vec<u8>], from_start: bool, what: &str) {
    assert!(!got.is_empty(), "{what}: no frames");
    let o = if from_start {
        0
    } else {
        want.iter()
            .position(|w| *w == got[0])
            .unwrap_or_else(|| panic!("{what}: the first frame is none of the input's"))
    };
    for (k, f) in got.iter().enumerate() {
        assert!(
            *f == want[(o + k) % want.len()],
            "{what}: frame {k} (of {}) is not input frame {}",
            got.len(),
            (o + k) % want.len()
        );
    }
}

/// The status an operator sees of the NFs (state and pid included).
fn nf_status(core: &Core) -> Value {
    core.ctl(&json!({"cmd": "status"}))["nfs"].clone()
}

/// A refused request: one line naming what is wrong, and the NF list as it was.
fn refused(core: &Core, req: Value, want: &str) {
    let before = nf_status(core);
    let r = core.ctl(&req);
    assert_eq!(r["ok"], false, "{req} was not refused: {r}");
    let e = r["error"].as_str().unwrap_or_default();
    assert!(e.contains(want), "{req}: error {e:?} does not say {want:?}");
    assert!(!e.contains('\n'), "{req}: error is not one line: {e:?}");
    assert_eq!(nf_status(core), before, "{req} changed the NFs");
}

#[test]
fn nf_added_and_removed_while_another_chain_flows() {
    run(json!([{"cpu": worker_cpu()}]), "rtnf");
}

/// Two workers: the added NF (entry 1) is drained by worker 1 while worker 0 polls both
/// input ports and feeds it, so its removal is the two-phase reclaim across workers, and its
/// frames reach `out2` through worker 0's TX queue (a hand-off).
#[test]
fn nf_added_and_removed_with_two_workers() {
    if std::thread::available_parallelism().map_or(1, usize::from) < 2 {
        println!("NOTE: one CPU here; the two-worker case needs two");
        return;
    }
    run(json!([{"cpu": 0}, {"cpu": 1}]), "rtnf2");
}

fn run(workers: Value, name: &str) {
    let dir = Scratch::new(name);
    let frames_a = flow_frames(40, 10);
    let frames_b = flow_frames(30, 10);
    let (in_a, out_a) = (dir.path("in_a.pcap"), dir.path("out_a.pcap"));
    let (in_b, out_b) = (dir.path("in_b.pcap"), dir.path("out_b.pcap"));
    write_pcap(&in_a, &frames_a);
    write_pcap(&in_b, &frames_b);
    let chain_a =
        json!({"name": "a", "match": {"in_port": "in"}, "services": ["fwd"], "egress": "out"});
    let cfg = json!({
        "name": name,
        "workers": workers,
        "eal": eal_section(),
        "domains": [{"name": "d", "buffers": 4096}],
        "spare_nfs": 1,
        "ports": [
            {"name": "in", "domain": "d", "rx_rate_pps": 10000,
             "device": format!("net_pcap0,rx_pcap={},infinite_rx=1", in_a.display())},
            {"name": "out", "domain": "d", "device": format!("net_pcap1,tx_pcap={}", out_a.display())},
            {"name": "in2", "domain": "d", "rx_rate_pps": 10000,
             "device": format!("net_pcap2,rx_pcap={},infinite_rx=1", in_b.display())},
            {"name": "out2", "domain": "d", "device": format!("net_pcap3,tx_pcap={}", out_b.display())}
        ],
        "nfs": [{"name": "fa", "service": "fwd", "domain": "d"}],
        "chains": [chain_a]
    });
    let mut core = Core::start(cfg, dir, &[]);
    core.spawn_nf(
        "l2fwd",
        "fa",
        "d",
        &["--dst-mac".into(), "02:00:00:00:00:77".into()],
    );
    core.wait_running();
    core.wait_stats(Duration::from_secs(30), |s| u(&s["ports"][1]["tx"]) > 1000);

    // Refusals change nothing.
    let add = |nf: &str, service: &str, domain: &str| json!({"cmd": "nf_add", "nf": nf, "service": service, "domain": domain});
    refused(&core, add("fa", "fwd2", "d"), "NF name \"fa\" is taken");
    refused(&core, add("fb", "fwd2", "nope"), "no domain named \"nope\"");
    refused(&core, add("f b", "fwd2", "d"), "NF name \"f b\"");
    // A chain naming a service no NF provides yet is refused.
    let chains = json!([chain_a,
        {"name": "new", "match": {"in_port": "in2"}, "services": ["fwd2"], "egress": "out2"}]);
    let r = core.ctl(&json!({"cmd": "set_chains", "chains": chains}));
    assert_eq!(r["ok"], false, "{r}");

    // Add fb (service fwd2, new) in the spare entry; start it; set a chain through it.
    let r = core.ctl(&add("fb", "fwd2", "d"));
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["index"], 1, "{r}");
    assert_eq!(r["new_service"], true, "{r}");
    let ctl_file = std::path::PathBuf::from(r["control"].as_str().unwrap());
    assert!(ctl_file.exists(), "{r}");
    let st = nf_status(&core);
    assert_eq!(st[1]["name"], "fb", "{st:#}");
    assert_eq!(st[1]["state"], "pending", "{st:#}");
    refused(&core, add("fc", "fwd2", "d"), "no free NF entry");
    core.spawn_nf(
        "l2fwd",
        "fb",
        "d",
        &["--dst-mac".into(), "02:00:00:00:00:88".into()],
    );
    core.wait_attached("fb");
    let r = core.ctl(&json!({"cmd": "set_chains", "chains": chains}));
    assert_eq!(r["ok"], true, "{r}");
    let st = core.wait_stats(Duration::from_secs(30), |s| {
        u(&s["nfs"][1]["delivered"]) > 2000 && u(&s["ports"][3]["tx"]) > 2000
    });
    assert_eq!(st["nfs"][1]["name"], "fb", "{st:#}");

    // Remove fb while both chains flow: drained, nothing left to reclaim, entry free.
    let r = core.ctl(&json!({"cmd": "nf_remove", "nf": "fb"}));
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(
        r["reclaimed"], 0,
        "fb returned everything in its grace period: {r}"
    );
    assert!(!ctl_file.exists(), "fb's control region is still there");
    let st = nf_status(&core);
    assert_eq!(st.as_array().map(Vec::len), Some(1), "{st:#}");
    core.nfs[1].signal(libc::SIGTERM);
    assert_eq!(core.nfs[1].wait_timeout(Duration::from_secs(5)), Some(0));
    refused(
        &core,
        json!({"cmd": "nf_remove", "nf": "fb"}),
        "no NF named \"fb\"",
    );
    // Chain `new` follows its failure policy (drop) now.
    let unavailable = |s: &Value| u(&s["drops"]["nf_unavailable"]);
    let st = core.wait_stats(Duration::from_secs(30), |s| unavailable(s) > 500);
    let tx_b = u(&st["ports"][3]["tx"]);

    // The freed entry is taken again, by a new NF of the same service, whose counters
    // start at zero; removed before it ever attached.
    let r = core.ctl(&add("fc", "fwd2", "d"));
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(
        (r["index"].clone(), r["new_service"].clone()),
        (json!(1), json!(false))
    );
    let st = core.wait_stats(Duration::from_secs(5), |_| true);
    let fc = &st["nfs"][1];
    assert_eq!(
        (fc["name"].clone(), fc["state"].clone()),
        (json!("fc"), json!("pending"))
    );
    assert_eq!((u(&fc["delivered"]), u(&fc["returned"])), (0, 0), "{fc:#}");
    let r = core.ctl(&json!({"cmd": "nf_remove", "nf": "fc"}));
    assert_eq!(r["ok"], true, "{r}");

    let report = core.shutdown();
    assert_eq!(report["accounting_ok"], true, "{report:#}");
    assert_eq!(report["pools_full"], true, "{report:#}");
    // Only the intended drops: chain `new`'s frames before it existed and after fb went.
    let drops: Vec<&String> = report["drops"].as_object().unwrap().keys().collect();
    assert!(
        drops
            .iter()
            .all(|d| *d == "no_chain" || *d == "nf_unavailable"),
        "{report:#}"
    );
    let ports = &report["ports"];
    // Chain a, never touched: fa got every frame of `in`, and all of them went out, in order.
    let fa = &report["nfs"][0];
    assert_eq!(fa["name"], "fa");
    assert_eq!(u(&fa["delivered"]), u(&ports[0]["rx"]), "{report:#}");
    assert_eq!(u(&ports[1]["tx"]), u(&ports[0]["rx"]), "{report:#}");
    let got_a = read_pcap(&out_a);
    assert_eq!(got_a.len() as u64, u(&ports[1]["tx"]));
    assert_cyclic_run(&got_a, &rewritten(&frames_a, MAC_A), true, "chain a");
    // Chain new: what fb passed on is exact; every frame of in2 is accounted for.
    let got_b = read_pcap(&out_b);
    assert_eq!(
        u(&ports[3]["tx"]),
        tx_b,
        "frames left by out2 after fb was removed"
    );
    assert_eq!(got_b.len() as u64, tx_b);
    assert_cyclic_run(&got_b, &rewritten(&frames_b, MAC_B), false, "chain new");
    assert_eq!(
        u(&ports[2]["rx"]),
        tx_b + u(&report["drops"]["no_chain"]) + u(&report["drops"]["nf_unavailable"]),
        "{report:#}"
    );
    assert_eq!(
        report["nfs"].as_array().map(Vec::len),
        Some(1),
        "{report:#}"
    );
}
