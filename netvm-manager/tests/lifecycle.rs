//! `up`, `status`, `stats`, `down` with real processes: the demo config end to end, and start
//! failures in the middle that must leave no process, region file, socket or hugepage
//! reservation behind. The tests share the machine's CPUs and hugepages, so they run one at a
//! time (a lock); each uses its own name and run directory, and a `ManagerProc` guard sends
//! the manager SIGTERM (it then tears everything down) if a test fails half-way.

mod common;

use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

use common::*;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

fn demo_config() -> String {
    root().join("examples/demo.json").display().to_string()
}

fn read_summary(path: &std::path::Path, out: &str, err: &str) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "no summary at {} ({e})\nstdout:\n{out}\nstderr:\n{err}",
            path.display()
        )
    });
    serde_json::from_str(&text).expect("summary JSON")
}

/// What the demo must show: traffic through both NFs, some denied by the firewall, one copy at
/// the domain crossing, and the accounting identity with every pool full again.
fn assert_demo_summary(s: &Value, ctx: &str) {
    let r = &s["report"];
    assert_eq!(s["accounting_ok"], true, "accounting: {ctx}");
    assert_eq!(r["accounting_ok"], true, "{ctx}");
    assert_eq!(s["pools_full"], true, "pools: {ctx}");
    assert_eq!(s["ok"], true, "{ctx}");
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    assert!(n(&r["received"]) > 0, "nothing received: {ctx}");
    assert!(n(&r["transmitted"]) > 0, "nothing transmitted: {ctx}");
    assert!(n(&r["domain_copies"]) > 0, "no domain crossing: {ctx}");
    assert_eq!(
        n(&r["received"]) as i128,
        n(&r["transmitted"]) as i128
            + n(&r["dropped"]) as i128
            + r["in_flight"].as_i64().unwrap() as i128,
        "{ctx}"
    );
    assert!(
        n(&r["drops"]["nf_verdict_drop"]) > 0,
        "the firewall denied nothing: {ctx}"
    );
    let fw = r["nfs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "fw1")
        .expect("fw1");
    assert!(n(&fw["verdicts"][3]) > 0, "fw1 dropped nothing: {ctx}");
    // Per-rule hits from the firewall's exit report: both deny rules fired.
    let rules = s["firewall"][0]["rules"]
        .as_array()
        .unwrap_or_else(|| panic!("no firewall rule hits: {ctx}"));
    assert_eq!(s["firewall"][0]["nf"], "fw1");
    for rule in ["rule 1", "rule 2"] {
        let h = rules
            .iter()
            .find(|h| h["rule"] == rule)
            .unwrap_or_else(|| panic!("no {rule}: {ctx}"));
        assert!(h["text"].as_str().unwrap().starts_with("deny"), "{ctx}");
        assert!(n(&h["hits"]) > 0, "{rule} never hit: {ctx}");
    }
    let denied: u64 = rules
        .iter()
        .filter(|h| h["text"].as_str().unwrap_or("").starts_with("deny"))
        .map(|h| n(&h["hits"]))
        .sum();
    assert_eq!(
        denied,
        n(&fw["verdicts"][3]),
        "rule hits vs verdicts: {ctx}"
    );
}

#[test]
fn demo_runs_and_accounts_for_every_packet() {
    let _l = lock();
    require_built(&["netvm-core", "firewall", "l3fwd"]);
    demo_pcap();
    let dir = Scratch::new("demo");
    let run_dir = dir.path("run");
    let summary = dir.path("summary.json");
    let hp_before = nr_hugepages();
    let mut m = ManagerProc::spawn(
        &[
            "up",
            &demo_config(),
            "--duration",
            "3",
            "--no-progress",
            "--name",
            &dir.name(),
            "--run-dir",
            run_dir.to_str().unwrap(),
            "--summary",
            summary.to_str().unwrap(),
        ],
        &dir,
    );
    let code = m.wait(Duration::from_secs(180));
    let (out, err) = m.output();
    let ctx = format!("exit {code:?}\nstdout:\n{out}\nstderr:\n{err}");
    assert_eq!(code, Some(0), "{ctx}");
    let s = read_summary(&summary, &out, &err);
    assert_demo_summary(&s, &ctx);
    // The text summary says the same.
    assert!(out.contains("accounting: ok"), "{ctx}");
    assert!(out.contains("pools full after shutdown: yes"), "{ctx}");
    assert!(out.contains("firewall fw1 hits by rule:"), "{ctx}");
    assert_eq!(started_pids(&err).len(), 3, "core + 2 NFs: {ctx}");
    assert_clean(&err, &run_dir);
    assert_eq!(nr_hugepages(), hp_before, "hugepage pool changed: {ctx}");
}

#[test]
fn status_stats_and_down_from_another_shell() {
    let _l = lock();
    require_built(&["netvm-core", "firewall", "l3fwd"]);
    demo_pcap();
    let dir = Scratch::new("down");
    let run_dir = dir.path("run");
    let rd = run_dir.to_str().unwrap().to_string();
    let summary = dir.path("summary.json");
    let mut m = ManagerProc::spawn(
        &[
            "up",
            &demo_config(),
            "--no-progress",
            "--name",
            &dir.name(),
            "--run-dir",
            &rd,
            "--summary",
            summary.to_str().unwrap(),
        ],
        &dir,
    );
    // `status` from another process: every part listed, traffic flowing.
    let status = poll("the instance to run", Duration::from_secs(90), || {
        assert!(m.running(), "up exited early: {:?}", m.output());
        let o = run(&["status", "--run-dir", &rd]);
        let (out, _) = texts(&o);
        (o.status.success() && out.contains("running (traffic flowing)")).then_some(out)
    });
    for part in [
        "netvm-core",
        "fw1",
        "rt1",
        "attached",
        "port in",
        "port out",
        "region edge",
        "region core",
    ] {
        assert!(status.contains(part), "status lacks {part}:\n{status}");
    }
    let o = run(&["status", "--run-dir", &rd, "--json"]);
    let v: Value = serde_json::from_slice(&o.stdout).expect("status --json");
    assert_eq!(v["core"]["running"], true);
    assert_eq!(v["state"]["nfs"].as_array().unwrap().len(), 2);
    // Each domain's process NFs run as that domain's own user, and each region file is open to
    // that group only: fw1 (domain edge, 0) and rt1 (domain core, 1).
    // Only where an unprivileged user can reach the binaries (a checkout under a 0700 home
    // cannot be): the manager then runs NFs as root and says so.
    let reachable = {
        use std::os::unix::fs::PermissionsExt as _;
        std::path::Path::new(env!("CARGO_BIN_EXE_netvm-manager"))
            .ancestors()
            .skip(1)
            .all(|d| {
                d.as_os_str().is_empty()
                    || std::fs::metadata(d).is_ok_and(|m| m.permissions().mode() & 0o001 != 0)
            })
    };
    let core_pid = v["state"]["core"]["pid"].as_u64().expect("core pid");
    let region_dir = v["state"]["region_dir"]
        .as_str()
        .expect("region dir")
        .to_string();
    if !reachable {
        println!("NOTE: the target directory is not reachable by unprivileged users here; NFs run as root");
    }
    for (k, (nf, domain)) in [("fw1", "edge"), ("rt1", "core")]
        .into_iter()
        .enumerate()
        .filter(|_| reachable)
    {
        let rec = v["state"]["nfs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == nf)
            .expect(nf)
            .clone();
        let pid = rec["proc"]["pid"].as_u64().expect("nf pid");
        let st = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("nf status");
        let uid_line = st
            .lines()
            .find(|l| l.starts_with("Uid:"))
            .expect("Uid line");
        // NF k of the demo is the k-th NF and in the k-th domain: its own uid, its domain's gid.
        let (uid, gid): (u32, u32) = (
            62_000 + u32::try_from(k).unwrap(),
            61_000 + u32::try_from(k).unwrap(),
        );
        assert!(
            uid_line
                .split_whitespace()
                .skip(1)
                .all(|u| u == uid.to_string()),
            "{nf}: {uid_line}"
        );
        let gid_line = st
            .lines()
            .find(|l| l.starts_with("Gid:"))
            .expect("Gid line");
        assert!(
            gid_line
                .split_whitespace()
                .skip(1)
                .all(|g| g == gid.to_string()),
            "{nf}: {gid_line}"
        );
        use std::os::unix::fs::MetadataExt as _;
        let md = std::fs::metadata(format!("{region_dir}/netvm-{domain}.{core_pid}.region"))
            .expect("region file");
        assert_eq!(
            (md.uid(), md.gid(), md.mode() & 0o777),
            (0, gid, 0o660),
            "region of {domain}"
        );
        // Its control region (slot and rings) is its own user's only.
        let md = std::fs::metadata(format!("{region_dir}/netvm-{domain}.{core_pid}.{nf}.ctl"))
            .expect("control region file");
        assert_eq!(
            (md.uid(), md.gid(), md.mode() & 0o777),
            (uid, gid, 0o600),
            "control region of {nf}"
        );
    }
    // A second `up` of the same instance is refused and disturbs nothing.
    let o = run(&[
        "up",
        &demo_config(),
        "--no-progress",
        "--name",
        &dir.name(),
        "--run-dir",
        &rd,
    ]);
    let (_, e2) = texts(&o);
    assert_eq!(o.status.code(), Some(1), "{e2}");
    assert!(e2.contains("is already running"), "{e2}");
    assert!(started_pids(&e2).is_empty(), "{e2}");
    // `stats --json`: a consistent live snapshot with traffic.
    poll("traffic in the stats", Duration::from_secs(30), || {
        let o = run(&["stats", "--run-dir", &rd, "--json"]);
        let v: Value = serde_json::from_slice(&o.stdout).ok()?;
        assert_eq!(v["accounting_ok"], true, "live snapshot: {v:#}");
        (v["received"].as_u64()? > 0 && v["transmitted"].as_u64()? > 0).then_some(())
    });
    // `stats --watch`: one table per refresh, with rates per port, NF, chain and drop reason.
    let o = run(&[
        "stats",
        "--run-dir",
        &rd,
        "--watch",
        "--count",
        "2",
        "--interval",
        "0.2",
    ]);
    let (out, err) = texts(&o);
    assert!(o.status.success(), "{err}");
    assert_eq!(out.matches("\nPORT ").count(), 2, "{out}");
    for part in [
        "in ", "out ", "fw1", "rt1", "CHAIN", "inbound", "DROPS", "held",
    ] {
        assert!(out.contains(part), "stats --watch lacks {part}:\n{out}");
    }
    // `down` stops it; the foreground manager prints the summary and exits 0.
    let o = run(&["down", "--run-dir", &rd]);
    let (_, derr) = texts(&o);
    assert!(o.status.success(), "down: {derr}");
    let code = m.wait(Duration::from_secs(120));
    let (out, err) = m.output();
    let ctx = format!("exit {code:?}\nstdout:\n{out}\nstderr:\n{err}\ndown:\n{derr}");
    assert_eq!(code, Some(0), "{ctx}");
    assert_demo_summary(&read_summary(&summary, &out, &err), &ctx);
    assert_clean(&err, &run_dir);
    // Nothing left to stop.
    let o = run(&["down", "--run-dir", &rd]);
    assert_eq!(o.status.code(), Some(1), "{:?}", texts(&o));
}

/// A small two-domain config in `dir` with ports and NFs as given.
fn config(dir: &Scratch, domains: Value, ports: Value, nfs: Value) -> String {
    let worker = std::thread::available_parallelism().map_or(1, usize::from) - 1;
    let services: Vec<Value> = nfs
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["service"].clone())
        .collect();
    let v = serde_json::json!({
        "name": dir.name(),
        "run_dir": dir.path("run"),
        "workers": [{"cpu": worker}],
        "domains": domains,
        "ports": ports,
        "nfs": nfs,
        "chains": [{"name": "c", "match": {"in_port": "in"}, "services": services, "egress": "out"}],
    });
    let f = dir.path("config.json");
    std::fs::write(&f, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    f.display().to_string()
}

fn fw_nf(name: &str, domain: &str) -> Value {
    let rules = root().join("examples/demo-fw.rules");
    serde_json::json!({"name": name, "service": "firewall", "domain": domain, "program": "firewall",
                       "args": ["--rules", rules], "cpu": 0})
}

/// Runs `up` to its (failing) end; returns (exit code, stdout, stderr).
fn up_failing(dir: &Scratch, cfg: &str) -> (Option<i32>, String, String) {
    let mut m = ManagerProc::spawn(&["up", cfg, "--no-progress", "--duration", "5"], dir);
    let code = m.wait(Duration::from_secs(180));
    let (out, err) = m.output();
    (code, out, err)
}

#[test]
fn port_dpdk_rejects_leaves_nothing_behind() {
    let _l = lock();
    require_built(&["netvm-core", "firewall"]);
    let dir = Scratch::new("badport");
    let hp_before = nr_hugepages();
    let cfg = config(
        &dir,
        serde_json::json!([{"name": "a", "buffers": 4096}, {"name": "b", "buffers": 4096}]),
        serde_json::json!([{"name": "in", "device": "net_null0", "domain": "a"},
                           {"name": "out", "device": "net_nosuchdriver0", "domain": "b"}]),
        serde_json::json!([fw_nf("fw1", "a")]),
    );
    let (code, out, err) = up_failing(&dir, &cfg);
    let ctx = format!("exit {code:?}\nstdout:\n{out}\nstderr:\n{err}");
    assert_eq!(code, Some(1), "{ctx}");
    let last = err.lines().last().unwrap_or("");
    assert!(last.starts_with("netvm-manager: netvm-core (pid "), "{ctx}");
    assert!(
        last.contains("exited with code 1 while starting")
            && last.contains("port \"out\"")
            && last.contains("net_nosuchdriver0"),
        "{ctx}"
    );
    assert!(out.is_empty(), "{ctx}");
    core_pid(&err);
    assert_clean(&err, &dir.path("run"));
    assert_eq!(nr_hugepages(), hp_before, "{ctx}");
}

#[test]
fn nf_that_dies_before_attaching_leaves_nothing_behind() {
    let _l = lock();
    require_built(&["netvm-core", "firewall"]);
    let dir = Scratch::new("nfdies");
    let hp_before = nr_hugepages();
    // fw1 is a real firewall and attaches; rt1's program exists but exits at once.
    let mut rt = fw_nf("rt1", "b");
    rt["service"] = Value::from("router");
    rt["program"] = Value::from("false");
    rt["args"] = serde_json::json!([]);
    let cfg = config(
        &dir,
        serde_json::json!([{"name": "a", "buffers": 4096}, {"name": "b", "buffers": 4096}]),
        serde_json::json!([{"name": "in", "device": "net_null0", "domain": "a"},
                           {"name": "out", "device": "net_null1,no-rx=1", "domain": "b"}]),
        serde_json::json!([fw_nf("fw1", "a"), rt]),
    );
    let (code, out, err) = up_failing(&dir, &cfg);
    let ctx = format!("exit {code:?}\nstdout:\n{out}\nstderr:\n{err}");
    assert_eq!(code, Some(1), "{ctx}");
    let last = err.lines().last().unwrap_or("");
    assert!(
        last.contains("NF \"rt1\"") && last.contains("exited with code 1 before attaching"),
        "{ctx}"
    );
    assert!(last.contains("nf-rt1.log"), "names the log: {ctx}");
    // The core and both NFs had been started: all gone now.
    let pids = started_pids(&err);
    assert_eq!(pids.len(), 3, "{ctx}");
    assert_clean(&err, &dir.path("run"));
    assert_eq!(nr_hugepages(), hp_before, "{ctx}");
}

#[test]
fn nf_that_never_attaches_times_out_and_is_stopped() {
    let _l = lock();
    require_built(&["netvm-core"]);
    let dir = Scratch::new("noattach");
    let hp_before = nr_hugepages();
    // A program that runs but never attaches (it ignores its arguments).
    let script = dir.path("never-attaches.sh");
    std::fs::write(&script, "#!/bin/sh\nexec sleep 120\n").unwrap();
    let mut perm = std::fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&script, perm).unwrap();
    let mut nf = fw_nf("slow1", "a");
    nf["program"] = Value::from("./never-attaches.sh");
    nf["args"] = serde_json::json!([]);
    let cfg = config(
        &dir,
        serde_json::json!([{"name": "a", "buffers": 4096}]),
        serde_json::json!([{"name": "in", "device": "net_null0", "domain": "a"},
                           {"name": "out", "device": "net_null1,no-rx=1", "domain": "a"}]),
        serde_json::json!([nf]),
    );
    let mut m = ManagerProc::spawn(
        &["up", &cfg, "--no-progress", "--attach-timeout", "1"],
        &dir,
    );
    let code = m.wait(Duration::from_secs(120));
    let (out, err) = m.output();
    let ctx = format!("exit {code:?}\nstdout:\n{out}\nstderr:\n{err}");
    assert_eq!(code, Some(1), "{ctx}");
    let log = dir.path("run").join("nf-slow1.log");
    assert_eq!(
        err.lines().last().unwrap_or(""),
        format!(
            "netvm-manager: NFs did not attach within 1 s: slow1 (log: {})",
            log.display()
        ),
        "{ctx}"
    );
    assert_eq!(started_pids(&err).len(), 2, "{ctx}");
    assert_clean(&err, &dir.path("run"));
    assert_eq!(nr_hugepages(), hp_before, "{ctx}");
}

#[test]
fn missing_nf_program_is_refused_before_anything_starts() {
    let _l = lock();
    let dir = Scratch::new("noprog");
    let hp_before = nr_hugepages();
    let mut nf = fw_nf("fw1", "a");
    nf["program"] = Value::from("no-such-nf-program");
    let cfg = config(
        &dir,
        serde_json::json!([{"name": "a", "buffers": 4096}]),
        serde_json::json!([{"name": "in", "device": "net_null0", "domain": "a"},
                           {"name": "out", "device": "net_null1,no-rx=1", "domain": "a"}]),
        serde_json::json!([nf]),
    );
    let (code, out, err) = up_failing(&dir, &cfg);
    let ctx = format!("exit {code:?}\nstdout:\n{out}\nstderr:\n{err}");
    assert_eq!(code, Some(2), "{ctx}");
    assert_eq!(err.lines().count(), 1, "{ctx}");
    assert!(
        err.starts_with(&format!(
            "{cfg}: nfs[0].program: program \"no-such-nf-program\" not found"
        )),
        "{ctx}"
    );
    assert!(started_pids(&err).is_empty(), "{ctx}");
    assert_clean(&err, &dir.path("run"));
    assert_eq!(nr_hugepages(), hp_before, "{ctx}");
}

#[test]
fn vm_nf_that_cannot_boot_is_an_error_naming_its_console_log() {
    let _l = lock();
    require_built(&["netvm-core"]);
    let dir = Scratch::new("vm");
    // A guest image whose kernel is not one: QEMU starts and exits at once.
    let img = dir.path("image");
    std::fs::create_dir_all(&img).unwrap();
    std::fs::write(img.join("vmlinuz"), b"not a kernel").unwrap();
    std::fs::write(img.join("initramfs.cpio.gz"), b"not an initramfs").unwrap();
    let mut nf = fw_nf("fw1", "a");
    nf["kind"] = Value::from("vm");
    nf["vm"] = serde_json::json!({"memory_mb": 128});
    nf.as_object_mut().unwrap().remove("cpu");
    let cfg = config(
        &dir,
        serde_json::json!([{"name": "a", "buffers": 4096}]),
        serde_json::json!([{"name": "in", "device": "net_null0", "domain": "a"},
                           {"name": "out", "device": "net_null1,no-rx=1", "domain": "a"}]),
        serde_json::json!([nf]),
    );
    let img_arg = img.display().to_string();
    let mut m = ManagerProc::spawn(
        &[
            "up",
            &cfg,
            "--no-progress",
            "--duration",
            "5",
            "--guest-image",
            &img_arg,
        ],
        &dir,
    );
    let code = m.wait(Duration::from_secs(180));
    let (_, err) = m.output();
    assert_eq!(code, Some(1), "{err}");
    let log = dir.path("run").join("nf-fw1.log");
    assert!(
        err.contains("fw1") && err.contains(&log.display().to_string()),
        "the error names the guest's console log: {err}"
    );
    assert_clean(&err, &dir.path("run"));
}

#[test]
fn hugepages_reserved_for_a_failed_start_are_given_back() {
    let _l = lock();
    require_built(&["netvm-core", "firewall"]);
    let Some(hp_before) = nr_hugepages() else {
        println!("NOTE: no 2 MiB hugepage pool on this machine; nothing to reserve");
        return;
    };
    // Domains of 524288 buffers (1 GiB regions) until the instance needs more pages than are
    // free, so that `up` must grow the pool; the output port then fails in DPDK.
    let free = free_hugepages();
    let per_domain = 512 + 524_288 * 256 / (2 << 20);
    let k = ((free.saturating_sub(128)) / per_domain + 1).max(1);
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap()
        >> 20;
    if k > 16 || k * 2 > mem_gib / 2 {
        println!("NOTE: {free} free hugepages; a config needing more would not fit this machine");
        return;
    }
    let dir = Scratch::new("hp");
    let domains: Vec<Value> = (0..k)
        .map(|i| serde_json::json!({"name": format!("h{i}"), "buffers": 524_288}))
        .collect();
    let cfg = config(
        &dir,
        Value::Array(domains),
        serde_json::json!([{"name": "in", "device": "net_null0", "domain": "h0"},
                           {"name": "out", "device": "net_nosuchdriver0", "domain": "h0"}]),
        serde_json::json!([fw_nf("fw1", "h0")]),
    );
    let (code, out, err) = up_failing(&dir, &cfg);
    let ctx = format!("exit {code:?}\nstdout:\n{out}\nstderr:\n{err}\nfree before: {free}");
    assert_eq!(code, Some(1), "{ctx}");
    assert!(
        err.contains(&format!("pool grown from {hp_before} to ")),
        "the pool was not grown: {ctx}"
    );
    assert!(
        err.contains("pool put back from ") && err.contains(&format!(" to {hp_before} pages")),
        "{ctx}"
    );
    assert!(
        err.lines()
            .last()
            .unwrap_or("")
            .contains("net_nosuchdriver0"),
        "{ctx}"
    );
    assert_clean(&err, &dir.path("run"));
    assert_eq!(nr_hugepages(), Some(hp_before), "{ctx}");
}
