//! `nf add`, `nf remove` and `chain set` from another shell while `up` runs (issue 16 item 3):
//! refusals are one line and change nothing (the manager's view and the core's), an added NF
//! runs as a child of `up` like a configured one and carries a new chain, a removed one is
//! drained and its process stopped, and `down` then tears everything down with the
//! accounting whole.

mod common;

use std::time::Duration;

use serde_json::{json, Value};

use common::*;

/// `status --json`: (the manager's NF names, the core's NF names and states).
fn views(rd: &str) -> (Vec<String>, Vec<(String, String)>) {
    let o = run(&["status", "--run-dir", rd, "--json"]);
    let v: Value = serde_json::from_slice(&o.stdout).expect("status --json");
    let mgr = v["state"]["nfs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap().to_string())
        .collect();
    let core = v["core"]["nfs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["name"].as_str().unwrap().to_string(),
                n["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (mgr, core)
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Runs the manager with `args`, expecting a refusal: exit 1 and one line naming `want`.
fn refused(args: &[&str], want: &str, rd: &str) {
    let before = views(rd);
    let o = run(args);
    let (out, err) = texts(&o);
    assert_eq!(o.status.code(), Some(1), "{args:?}: {out}{err}");
    assert_eq!(err.lines().count(), 1, "{args:?}: not one line: {err}");
    assert!(
        err.contains(want),
        "{args:?}: {err:?} does not say {want:?}"
    );
    assert_eq!(views(rd), before, "{args:?} changed the NFs");
}

#[test]
fn nf_add_chain_set_nf_remove_while_up_runs() {
    require_built(&["netvm-core", "l2fwd"]);
    let dir = Scratch::new("rtnf");
    let rd = dir.path("run").display().to_string();
    for (f, flows) in [("a.pcap", "8"), ("b.pcap", "6")] {
        let o = run(&[
            "gen-pcap",
            dir.path(f).to_str().unwrap(),
            "--flows",
            flows,
            "--packets-per-flow",
            "16",
        ]);
        assert!(o.status.success(), "{:?}", texts(&o));
    }
    let worker = std::thread::available_parallelism().map_or(1, usize::from) - 1;
    let p = |f: &str| dir.path(f).display().to_string();
    let cfg = json!({
        "name": dir.name(),
        "run_dir": rd,
        "workers": [{"cpu": worker}],
        "domains": [{"name": "d", "buffers": 8192}],
        "spare_nfs": 1,
        "ports": [
            {"name": "in", "domain": "d", "rx_rate_pps": 5000,
             "device": format!("net_pcap0,rx_pcap={},infinite_rx=1", p("a.pcap"))},
            {"name": "out", "domain": "d", "device": format!("net_pcap1,tx_pcap={}", p("out_a.pcap"))},
            {"name": "in2", "domain": "d", "rx_rate_pps": 5000,
             "device": format!("net_pcap2,rx_pcap={},infinite_rx=1", p("b.pcap"))},
            {"name": "out2", "domain": "d", "device": format!("net_pcap3,tx_pcap={}", p("out_b.pcap"))}
        ],
        "nfs": [{"name": "fa", "service": "fwd", "domain": "d", "program": "l2fwd",
                 "args": ["--dst-mac", "02:00:00:00:00:77"]}],
        "chains": [{"name": "a", "match": {"in_port": "in"}, "services": ["fwd"], "egress": "out"}]
    });
    let cfg_file = dir.path("config.json");
    std::fs::write(&cfg_file, serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
    let summary = dir.path("summary.json");
    let mut m = ManagerProc::spawn(
        &[
            "up",
            cfg_file.to_str().unwrap(),
            "--no-progress",
            "--summary",
            summary.to_str().unwrap(),
        ],
        &dir,
    );
    poll("the instance to run", Duration::from_secs(90), || {
        assert!(m.running(), "up exited early: {:?}", m.output());
        let o = run(&["status", "--run-dir", &rd]);
        texts(&o)
            .0
            .contains("running (traffic flowing)")
            .then_some(())
    });

    let add = |nf: &'static str, domain: &'static str| -> Vec<String> {
        [
            "nf",
            "add",
            nf,
            "--service",
            "fwd2",
            "--domain",
            domain,
            "--program",
            "l2fwd",
            "--run-dir",
            &rd,
            "--",
            "--dst-mac",
            "02:00:00:00:00:88",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    refused(&strs(&add("fa", "d")), "NF name \"fa\" is taken", &rd);
    refused(&strs(&add("fb", "nope")), "no domain named \"nope\"", &rd);
    // The chain cannot name fwd2 before an NF provides it.
    let chains = dir.path("chains.json");
    std::fs::write(
        &chains,
        json!({"chains": [
            {"name": "a", "match": {"in_port": "in"}, "services": ["fwd"], "egress": "out"},
            {"name": "new", "match": {"in_port": "in2"}, "services": ["fwd2"], "egress": "out2"}
        ]})
        .to_string(),
    )
    .unwrap();
    refused(
        &["chain", "set", chains.to_str().unwrap(), "--run-dir", &rd],
        "no NF provides service \"fwd2\"",
        &rd,
    );

    // Added: a child of `up`, attached, in both views.
    let o = run(&strs(&add("fb", "d")));
    let (out, err) = texts(&o);
    assert!(o.status.success(), "nf add: {out}{err}\n{:?}", m.output());
    assert!(
        out.contains("NF fb added: service fwd2 (new), domain d, entry 1"),
        "{out}"
    );
    let (mgr, core) = views(&rd);
    assert_eq!(mgr, ["fa", "fb"]);
    assert_eq!(core[1], ("fb".to_string(), "attached".to_string()));
    let o = run(&["status", "--run-dir", &rd, "--json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let fb_pid = v["state"]["nfs"][1]["proc"]["pid"].as_u64().unwrap();
    assert!(netvm_shm::proc::pid_alive(u32::try_from(fb_pid).unwrap()));
    let ppid = std::fs::read_to_string(format!("/proc/{fb_pid}/stat")).unwrap();
    let ppid: u32 = ppid
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        ppid,
        m.child.as_ref().unwrap().id(),
        "fb is not a child of up"
    );
    refused(&strs(&add("fc", "d")), "no free NF entry", &rd);

    // The new chain through fb.
    let o = run(&["chain", "set", chains.to_str().unwrap(), "--run-dir", &rd]);
    assert!(o.status.success(), "chain set: {:?}", texts(&o));
    poll("traffic through fb", Duration::from_secs(30), || {
        let o = run(&["stats", "--run-dir", &rd, "--json"]);
        let v: Value = serde_json::from_slice(&o.stdout).ok()?;
        assert_eq!(v["accounting_ok"], true, "{v:#}");
        (v["ports"][3]["tx"].as_u64()? > 500 && v["nfs"][1]["delivered"].as_u64()? > 500)
            .then_some(())
    });

    // Removed: drained, its process stopped, gone from both views.
    let o = run(&["nf", "remove", "fb", "--run-dir", &rd]);
    let (out, err) = texts(&o);
    assert!(o.status.success(), "nf remove: {out}{err}");
    assert!(
        out.contains("NF fb removed: 0 buffer(s) taken back"),
        "{out}"
    );
    assert!(!netvm_shm::proc::pid_alive(u32::try_from(fb_pid).unwrap()));
    assert_eq!(
        views(&rd),
        (
            vec!["fa".to_string()],
            vec![("fa".to_string(), "attached".to_string())]
        )
    );
    refused(
        &["nf", "remove", "fb", "--run-dir", &rd],
        "no NF named \"fb\"",
        &rd,
    );

    let o = run(&["down", "--run-dir", &rd]);
    assert!(o.status.success(), "down: {:?}", texts(&o));
    let code = m.wait(Duration::from_secs(120));
    let (out, err) = m.output();
    assert_eq!(code, Some(0), "stdout:\n{out}\nstderr:\n{err}");
    let s: Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    let r = &s["report"];
    assert_eq!(s["accounting_ok"], true, "{s:#}");
    assert_eq!(r["pools_full"], true, "{s:#}");
    // Chain a lost nothing: every frame of `in` went through fa and out.
    let (rx, tx) = (r["ports"][0]["rx"].as_u64(), r["ports"][1]["tx"].as_u64());
    assert_eq!(rx, tx, "{r:#}");
    assert_eq!(r["nfs"][0]["delivered"].as_u64(), rx, "{r:#}");
    assert!(tx > Some(0));
    assert_clean(&err, &dir.path("run"));
    assert!(!dir.path("run").join("manager.sock").exists());
}
