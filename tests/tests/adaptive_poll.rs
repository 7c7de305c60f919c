//! Adaptive polling (`"poll": "adaptive"`): a worker that has been idle long enough to sleep
//! still picks up everything that arrives afterwards, exactly.
//!
//! * New traffic after the idle period: the core's ports are memif servers and
//!   `netvm-pktgen` (a real DPDK process, memif client) starts sending only once the stats
//!   say the worker has slept; every frame must come back through the l2fwd NF.
//! * NF returns after the idle period: the NF is stopped (SIGSTOP) while its packets sit in
//!   its RX ring, the worker goes to sleep, then the NF continues and returns them all.
//!
//! Synchronisation is by the stats (polled over the control socket, which must answer while
//! the worker sleeps), never by sleeping; nothing is timed.

use std::time::Duration;

use netvm_tests::traffic::{read_pcap, write_pcap};
use netvm_tests::{bin, eal_section, worker_cpu, Core, Proc, Scratch};
use serde_json::{json, Value};

/// Sleeps of worker 0 in a stats snapshot.
fn sleeps(s: &Value) -> u64 {
    s["workers"][0]["sleeps"].as_u64().unwrap_or(0)
}

fn memif(idx: usize, sock: &std::path::Path) -> String {
    format!(
        "net_memif{idx},role=server,socket={},socket-abstract=no",
        sock.display()
    )
}

fn memif_client(idx: usize, sock: &std::path::Path) -> String {
    format!(
        "net_memif{idx},role=client,socket={},socket-abstract=no",
        sock.display()
    )
}

#[test]
fn traffic_after_an_idle_sleep_is_forwarded_exactly() {
    let dir = Scratch::new("idle");
    let (in_sock, out_sock) = (dir.path("in.sock"), dir.path("out.sock"));
    let cfg = json!({
        "name": "idle",
        "poll": "adaptive",
        "workers": [{"cpu": worker_cpu()}],
        "eal": eal_section(),
        "domains": [{"name": "d", "buffers": 4096}],
        "ports": [
            {"name": "in", "device": memif(0, &in_sock), "domain": "d"},
            {"name": "out", "device": memif(1, &out_sock), "domain": "d"}
        ],
        "nfs": [{"name": "fwd1", "service": "fwd", "domain": "d"}],
        "chains": [{"name": "c", "match": {"in_port": "in"}, "services": ["fwd"], "egress": "out"}]
    });
    let no_huge = cfg["eal"].get("no_huge_mb").is_some();
    let mut core = Core::start(cfg, dir, &[]);
    core.spawn_nf(
        "l2fwd",
        "fwd1",
        "d",
        &["--dst-mac".into(), "02:00:00:00:00:02".into()],
    );
    core.wait_running();
    // Idle: no client is connected yet. The worker reports that it sleeps, and the stats
    // keep answering (with a consistent snapshot) while it does.
    let idle = core.wait_stats(Duration::from_secs(30), |s| sleeps(s) >= 10);
    assert_eq!(idle["workers"][0]["poll"], "adaptive", "{idle:#}");
    assert_eq!(idle["received"], 0, "{idle:#}");
    assert!(
        idle["workers"][0]["slept_ns"].as_u64() > Some(0),
        "{idle:#}"
    );

    // Now the traffic: a paced generator on the other CPU, 20 kpps for half a second.
    let json_out = core.dir.path("pktgen.json");
    let mut args = vec![
        "--dev".to_string(),
        memif_client(0, &in_sock),
        "--rx-dev".into(),
        memif_client(1, &out_sock),
        "--rate".into(),
        "20k".into(),
        "--duration".into(),
        "0.5".into(),
        "--drain".into(),
        "5".into(),
        "--flows".into(),
        "16".into(),
        "--cpu".into(),
        "0".into(),
        "--link-timeout".into(),
        "30".into(),
        "--json".into(),
        json_out.display().to_string(),
    ];
    if no_huge {
        args.push("--no-huge".into());
    }
    let mut gen = Proc::spawn(
        "netvm-pktgen",
        &bin("netvm-pktgen"),
        &args,
        core.dir.path("pktgen.log"),
        &[],
    );
    let code = gen.wait_timeout(Duration::from_secs(60));
    assert_eq!(code, Some(0), "netvm-pktgen failed:\n{}", gen.log_text());
    let rep: Value =
        serde_json::from_str(&std::fs::read_to_string(&json_out).expect("pktgen report"))
            .expect("pktgen json");
    let sent = rep["sent"].as_u64().expect("sent");
    assert!(sent > 1000, "{rep:#}");
    assert_eq!(rep["received"].as_u64(), Some(sent), "{rep:#}");
    assert_eq!(rep["lost"], 0, "{rep:#}");
    assert_eq!(rep["foreign"], 0, "{rep:#}");

    // Idle again afterwards: it goes back to sleeping (stats still answer).
    let after = core.wait_stats(Duration::from_secs(30), |s| {
        s["ports"][1]["tx"].as_u64() == Some(sent)
    });
    let before_idle = sleeps(&after);
    core.wait_stats(Duration::from_secs(30), |s| sleeps(s) > before_idle);

    let report = core.shutdown();
    assert_eq!(report["accounting_ok"], true, "{report:#}");
    assert_eq!(report["pools_full"], true, "{report:#}");
    assert_eq!(report["ports"][0]["rx"].as_u64(), Some(sent), "{report:#}");
    assert_eq!(report["ports"][1]["tx"].as_u64(), Some(sent), "{report:#}");
    assert_eq!(report["dropped"], 0, "{report:#}");
    assert_eq!(
        report["nfs"][0]["delivered"].as_u64(),
        Some(sent),
        "{report:#}"
    );
    assert_eq!(
        report["nfs"][0]["returned"].as_u64(),
        Some(sent),
        "{report:#}"
    );
    assert!(sleeps(&report) > before_idle, "{report:#}");
    println!(
        "worker slept {} times before the traffic, {before_idle} by its end, {} in all; \
         {sent} frames sent, all back",
        sleeps(&idle),
        sleeps(&report)
    );
}

#[test]
fn nf_returns_after_an_idle_sleep_are_all_taken_back() {
    let dir = Scratch::new("idle-nf");
    let frames: Vec<Vec<u8>> = netvm_tests::traffic::flow_frames(40, 10);
    let (input, output) = (dir.path("in.pcap"), dir.path("out.pcap"));
    write_pcap(&input, &frames);
    let cfg = json!({
        "name": "idle-nf",
        "poll": "adaptive",
        "poll_max_sleep_us": 250,
        "workers": [{"cpu": worker_cpu()}],
        "eal": eal_section(),
        "domains": [{"name": "d", "buffers": 4096}],
        "ports": [
            {"name": "in", "device": format!("net_pcap0,rx_pcap={}", input.display()), "domain": "d"},
            {"name": "out", "device": format!("net_pcap1,tx_pcap={}", output.display()), "domain": "d"}
        ],
        // `gate` carries nothing: the core starts its ports once every NF attached, so
        // starting it after fa is stopped keeps fa from seeing a packet before that.
        "nfs": [
            {"name": "fa", "service": "fwd", "domain": "d"},
            {"name": "gate", "service": "gate", "domain": "d"}
        ],
        "chains": [{"name": "a", "match": {"in_port": "in"}, "services": ["fwd"], "egress": "out"}]
    });
    let mut core = Core::start(cfg, dir, &[]);
    core.spawn_nf(
        "l2fwd",
        "fa",
        "d",
        &["--dst-mac".into(), "02:00:00:00:00:77".into()],
    );
    core.wait_attached("fa");
    // The NF stops: every packet waits in its RX ring and nothing moves in the core.
    core.nfs[0].signal(libc::SIGSTOP);
    core.spawn_nf("monitor", "gate", "d", &[]);
    core.wait_running();
    let n = frames.len() as u64;
    let all_in = core.wait_stats(Duration::from_secs(30), |s| {
        s["ports"][0]["rx"].as_u64() == Some(n) && s["nfs"][0]["delivered"].as_u64() == Some(n)
    });
    // The worker sleeps after the last packet came in.
    let base = sleeps(&all_in);
    let idle = core.wait_stats(Duration::from_secs(30), |s| sleeps(s) > base + 10);
    assert_eq!(idle["nfs"][0]["held"].as_i64(), Some(n as i64), "{idle:#}");
    assert_eq!(idle["transmitted"], 0, "{idle:#}");

    // The NF goes on: its returns end the worker's sleep and all come out.
    core.nfs[0].signal(libc::SIGCONT);
    core.wait_stats(Duration::from_secs(30), |s| {
        s["ports"][1]["tx"].as_u64() == Some(n)
    });
    let report = core.shutdown();
    assert_eq!(report["accounting_ok"], true, "{report:#}");
    assert_eq!(report["pools_full"], true, "{report:#}");
    assert_eq!(report["dropped"], 0, "{report:#}");
    assert_eq!(report["ports"][1]["tx"].as_u64(), Some(n), "{report:#}");
    let got = read_pcap(&output);
    let want = netvm_tests::traffic::with_dst_mac(&frames, [2, 0, 0, 0, 0, 0x77]);
    assert_eq!(got, want, "packets changed or lost after the idle period");
}
