//! `netvm-manager capture` against a running core: a pcap enters through net_pcap, runs through
//! firewall → l3fwd, and a capture taken from "another shell" (a separate manager process)
//! while the traffic runs holds exactly the frames the model says passed that point; tshark
//! reads the pcapng; the data path's counters are those of the same run without a capture.
//!
//! * `capture_at_fw_out_is_exactly_what_the_firewall_passed`: `--at fw1:out`, ended by
//!   SIGINT (Ctrl-C) once every packet is accounted for.
//! * `port_rx_capture_with_filter_count_and_snaplen_to_a_pipe`: `--at port:in:rx` with a
//!   filter, `-c`, `--snaplen` and `-w -` (the pcapng read from the manager's stdout and piped
//!   into `tshark -r -`); the one-line errors (unknown NF or port, bad filter, a second
//!   capture, no instance); a killed manager's capture ends with its connection.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use netvm_tests::traffic::{self, Load};
use netvm_tests::{bin, eal_section, run_fw_l3, worker_cpu, Core, Proc, Scratch};
use netvm_wire::pcapng;
use serde_json::{json, Value};

/// The core of `run_fw_l3` (one domain), started but without its NFs, so that a capture can
/// be running before the first packet.
fn start_chain(tag: &str, load: &Load) -> Core {
    let dir = Scratch::new(tag);
    let input = dir.path("in.pcap");
    let output = dir.path("out.pcap");
    traffic::write_pcap(&input, &load.frames);
    std::fs::write(dir.path("fw.rules"), Load::rules()).expect("rules");
    std::fs::write(dir.path("routes"), Load::routes(1)).expect("routes");
    let cfg = json!({
        "name": tag,
        "workers": [{"cpu": worker_cpu()}],
        "eal": eal_section(),
        "domains": [{"name": "edge", "buffers": 1024}],
        "ports": [
            {"name": "in", "device": format!("net_pcap0,rx_pcap={}", input.display()), "domain": "edge"},
            {"name": "out", "device": format!("net_pcap1,tx_pcap={}", output.display()), "domain": "edge"}
        ],
        "nfs": [
            {"name": "fw1", "service": "firewall", "domain": "edge"},
            {"name": "l3", "service": "l3fwd", "domain": "edge"}
        ],
        "chains": [{"name": "web", "match": {"in_port": "in"}, "services": ["firewall", "l3fwd"], "egress": "out"}]
    });
    Core::start(cfg, dir, &[])
}

fn start_nfs_and_finish(core: &mut Core, load: &Load) -> Value {
    let rules = core.dir.path("fw.rules").display().to_string();
    let routes = core.dir.path("routes").display().to_string();
    core.spawn_nf("firewall", "fw1", "edge", &["--rules".into(), rules]);
    core.spawn_nf("l3fwd", "l3", "edge", &["--routes".into(), routes]);
    core.wait_running();
    let n_in = load.frames.len() as u64;
    core.wait_stats(Duration::from_secs(60), |s| {
        s["received"].as_u64() == Some(n_in) && s["in_flight"] == 0
    })
}

/// What the data path did, without times, epochs or pids.
fn datapath(r: &Value) -> Value {
    let nfs: Vec<Value> = r["nfs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            json!([
                n["name"],
                n["delivered"],
                n["returned"],
                n["verdicts"],
                n["rejects"],
                n["quota_drops"]
            ])
        })
        .collect();
    let ports: Vec<Value> = r["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| json!([p["name"], p["rx"], p["rx_bytes"], p["tx"], p["tx_bytes"]]))
        .collect();
    json!({
        "received": r["received"], "transmitted": r["transmitted"], "dropped": r["dropped"],
        "drops": r["drops"], "chains": r["chains"], "domain_copies": r["domain_copies"],
        "flow_cache": [r["flow_cache_hits"], r["flow_cache_misses"]],
        "nfs": nfs, "ports": ports,
    })
}

fn wait_log(p: &mut Proc, what: &str, timeout: Duration) {
    let end = Instant::now() + timeout;
    while !p.log_text().contains(what) {
        assert!(
            p.running(),
            "{} exited before saying {what:?}:\n{}",
            p.name,
            p.log_text()
        );
        assert!(
            Instant::now() < end,
            "{} did not say {what:?}:\n{}",
            p.name,
            p.log_text()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// tshark's view of a pcapng: one line per frame, `interface name \t len \t cap_len`.
fn tshark_fields(input: Option<&Path>, bytes: &[u8]) -> Option<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r");
    match input {
        Some(p) => cmd.arg(p),
        None => cmd.arg("-"),
    };
    cmd.args([
        "-T",
        "fields",
        "-e",
        "frame.interface_name",
        "-e",
        "frame.len",
        "-e",
        "frame.cap_len",
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            println!("NOTE: tshark not runnable ({e}); only our own reader checked the pcapng");
            return None;
        }
    };
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        if input.is_none() {
            stdin.write_all(bytes).expect("pipe into tshark");
        }
    }
    let o = child.wait_with_output().expect("tshark");
    assert!(
        o.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    Some(
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::to_owned)
            .collect(),
    )
}

#[test]
fn capture_at_fw_out_is_exactly_what_the_firewall_passed() {
    let load = Load::new(24, 12);
    // The same run without a capture: the reference for the data path's counters.
    let reference = run_fw_l3("capture-ref", "edge", "edge").report;

    let mut core = start_chain("capture-fw", &load);
    let run_dir = core.dir.path("run");
    let file = core.dir.path("fw.pcapng");
    // "Another shell": a manager process of its own, started before the NFs attach so that
    // the capture runs before the first packet.
    let mut cap = Proc::spawn(
        "capture",
        &bin("netvm-manager"),
        &[
            "capture".into(),
            "--run-dir".into(),
            run_dir.display().to_string(),
            "--at".into(),
            "fw1:out".into(),
            "-w".into(),
            file.display().to_string(),
        ],
        core.dir.path("capture.log"),
        &[],
    );
    wait_log(&mut cap, "capturing at fw1:out", Duration::from_secs(10));
    start_nfs_and_finish(&mut core, &load);
    // Ctrl-C: the manager stops the capture in the core, reads what is left, and exits 0.
    cap.signal(libc::SIGINT);
    let code = cap.wait_timeout(Duration::from_secs(20));
    let log = cap.log_text();
    assert_eq!(code, Some(0), "capture exit:\n{log}");
    let report = core.shutdown();
    assert_eq!(report["accounting_ok"], true, "{report:#}");
    assert_eq!(report["pools_full"], true, "{report:#}");
    assert_eq!(
        datapath(&report),
        datapath(&reference),
        "the capture changed the data path's counters"
    );

    let passed: Vec<Vec<u8>> = load
        .frames
        .iter()
        .filter(|f| !Load::denied(f))
        .cloned()
        .collect();
    let denied = load.frames.len() - passed.len();
    assert!(denied > 0 && !passed.is_empty());
    assert!(
        log.contains(&format!(
            "{} frames captured at fw1:out, {} written",
            passed.len(),
            passed.len()
        )) && log.contains("0 dropped by the capture")
            && log.contains("ended by signal"),
        "{log}"
    );
    let bytes = std::fs::read(&file).expect("pcapng");
    let pc = pcapng::read(&bytes).expect("our reader");
    assert_eq!(pc.interfaces.len(), 1);
    let ifc = &pc.interfaces[0];
    assert_eq!(ifc.name.as_deref(), Some("fw1:out"));
    assert_eq!((ifc.linktype, ifc.tsresol), (pcapng::LINKTYPE_ETHERNET, 9));
    assert_eq!(
        ifc.snaplen, 2048,
        "default snaplen: the domain's buffer size"
    );
    assert!(
        ifc.description
            .as_deref()
            .is_some_and(|d| d.contains("NF fw1 (service firewall")),
        "{ifc:?}"
    );
    assert_eq!(pc.packets.len(), passed.len(), "frames in the capture");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let now = u64::try_from(now).unwrap();
    let mut last = 0;
    for (i, (p, want)) in pc.packets.iter().zip(&passed).enumerate() {
        assert_eq!(
            &p.data, want,
            "frame {i} differs from what the firewall passed"
        );
        assert_eq!(p.orig_len as usize, want.len());
        assert_eq!(p.flags, None, "no direction inside the chain");
        assert!(p.ts_ns >= last && p.ts_ns <= now && p.ts_ns > now - 600_000_000_000);
        last = p.ts_ns;
    }
    // An independent reader.
    if let Some(lines) = tshark_fields(Some(&file), &[]) {
        assert_eq!(lines.len(), passed.len());
        for (l, want) in lines.iter().zip(&passed) {
            assert_eq!(*l, format!("fw1:out\t{}\t{}", want.len(), want.len()));
        }
    }
}

/// The filter of the port capture, and the test's own model of it: IPv4 UDP to 10.1.0.8/29,
/// destination port 10008-10010 (flows 8 and 10 of the load).
const FILTER: &str = "proto=udp,dst=10.1.0.8/29,dst_port=10008-10010";
fn filter_model(f: &[u8]) -> bool {
    if f.len() < 34 || f[12..14] != [0x08, 0x00] || f[23] != 17 {
        return false;
    }
    if f[30..33] != [10, 1, 0] || f[33] & 0xf8 != 8 {
        return false;
    }
    let ihl = usize::from(f[14] & 0x0f) * 4;
    f.get(14 + ihl + 2..14 + ihl + 4)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .is_some_and(|p| (10_008..=10_010).contains(&p))
}

fn manager(args: &[&str]) -> (Option<i32>, String) {
    let o = Command::new(bin("netvm-manager"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("netvm-manager");
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn port_rx_capture_with_filter_count_and_snaplen_to_a_pipe() {
    let load = Load::new(24, 12);
    let matching: Vec<Vec<u8>> = load
        .frames
        .iter()
        .filter(|f| filter_model(f))
        .cloned()
        .collect();
    assert_eq!(matching.len(), 24, "flows 8 and 10, 12 frames each");
    let count = matching.len() - 2;
    let mut core = start_chain("capture-rx", &load);
    let run_dir = core.dir.path("run").display().to_string();

    // One-line errors, each naming what is wrong.
    let (code, err) = manager(&[
        "capture",
        "--run-dir",
        &run_dir,
        "--at",
        "fw9:out",
        "-w",
        "/dev/null",
    ]);
    assert_eq!(code, Some(1));
    assert_eq!(
        err.trim(),
        "netvm-manager: capture at fw9:out: no NF named \"fw9\" (NFs: fw1, l3)"
    );
    let (code, err) = manager(&[
        "capture",
        "--run-dir",
        &run_dir,
        "--at",
        "port:eth9:rx",
        "-w",
        "/dev/null",
    ]);
    assert_eq!(code, Some(1));
    assert_eq!(
        err.trim(),
        "netvm-manager: capture at port:eth9:rx: no port named \"eth9\" (ports: in, out)"
    );
    let (code, err) = manager(&[
        "capture",
        "--run-dir",
        &run_dir,
        "--at",
        "port:in:rx",
        "--filter",
        "proto=xyz",
        "-w",
        "/dev/null",
    ]);
    assert_eq!(code, Some(1));
    assert!(
        err.starts_with("netvm-manager: capture at port:in:rx: filter.proto: ")
            && err.lines().count() == 1,
        "{err}"
    );
    let (code, err) = manager(&[
        "capture",
        "--run-dir",
        &run_dir,
        "--at",
        "fw1",
        "-w",
        "/dev/null",
    ]);
    assert_eq!(code, Some(1));
    assert!(
        err.starts_with("netvm-manager: invalid --at: capture point \"fw1\""),
        "{err}"
    );
    let (code, err) = manager(&[
        "capture",
        "--run-dir",
        "/nonexistent/netvm",
        "--at",
        "fw1:out",
        "-w",
        "/dev/null",
    ]);
    assert_eq!(code, Some(1));
    assert!(
        err.starts_with("netvm-manager: no running instance: no control socket"),
        "{err}"
    );

    // A capture whose manager is killed (no chance to stop it) ends with its connection.
    let mut killed = Proc::spawn(
        "capture-killed",
        &bin("netvm-manager"),
        &[
            "capture".into(),
            "--run-dir".into(),
            run_dir.clone(),
            "--at".into(),
            "fw1:in".into(),
            "-w".into(),
            "/dev/null".into(),
        ],
        core.dir.path("killed.log"),
        &[],
    );
    wait_log(&mut killed, "capturing at fw1:in", Duration::from_secs(10));
    killed.signal(libc::SIGKILL);
    killed.wait_timeout(Duration::from_secs(5));
    let end = Instant::now() + Duration::from_secs(5);
    while !core.core.log_text().contains("ended with its connection") {
        assert!(Instant::now() < end, "{}", core.core.log_text());
        std::thread::sleep(Duration::from_millis(10));
    }

    // `-w -`: the pcapng comes on stdout.
    let stderr_log = core.dir.path("capture.log");
    let mut child = Command::new(bin("netvm-manager"))
        .args([
            "capture",
            "--run-dir",
            &run_dir,
            "--at",
            "port:in:rx",
            "--filter",
            FILTER,
            "-c",
            &count.to_string(),
            "--snaplen",
            "64",
            "-w",
            "-",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_log).expect("log"))
        .spawn()
        .expect("netvm-manager capture");
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        stdout.read_to_end(&mut b).expect("read the pipe");
        b
    });
    let end = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&stderr_log)
        .unwrap_or_default()
        .contains("capturing at port:in:rx")
    {
        assert!(
            Instant::now() < end,
            "no capture: {}",
            std::fs::read_to_string(&stderr_log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // One capture at a time.
    let (code, err) = manager(&[
        "capture",
        "--run-dir",
        &run_dir,
        "--at",
        "fw1:in",
        "-w",
        "/dev/null",
    ]);
    assert_eq!(code, Some(1));
    assert!(
        err.starts_with(
            "netvm-manager: capture at fw1:in: a capture is already running at port:in:rx"
        ),
        "{err}"
    );

    start_nfs_and_finish(&mut core, &load);
    // Ends by itself after `count` frames.
    let status = child.wait().expect("wait");
    let bytes = reader.join().expect("reader");
    let log = std::fs::read_to_string(&stderr_log).unwrap_or_default();
    assert!(status.success(), "{status:?}\n{log}");
    assert!(
        log.contains(&format!(
            "{count} frames captured at port:in:rx, {count} written to stdout"
        )) && log.contains("ended by count"),
        "{log}"
    );
    let report = core.shutdown();
    assert_eq!(report["accounting_ok"], true, "{report:#}");
    assert_eq!(report["received"].as_u64(), Some(load.frames.len() as u64));

    let pc = pcapng::read(&bytes).expect("our reader");
    assert_eq!(pc.interfaces[0].name.as_deref(), Some("port:in:rx"));
    assert_eq!(pc.interfaces[0].snaplen, 64);
    assert_eq!(pc.packets.len(), count);
    for (i, (p, want)) in pc.packets.iter().zip(&matching).enumerate() {
        assert_eq!(p.data, want[..want.len().min(64)], "frame {i}");
        assert_eq!(p.orig_len as usize, want.len(), "frame {i}");
        assert_eq!(p.flags, Some(1), "inbound");
    }
    // tshark reading from a pipe.
    if let Some(lines) = tshark_fields(None, &bytes) {
        assert_eq!(lines.len(), count);
        for (l, want) in lines.iter().zip(&matching) {
            assert_eq!(
                *l,
                format!("port:in:rx\t{}\t{}", want.len(), want.len().min(64))
            );
        }
    }
}
