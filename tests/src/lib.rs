//! Harness for netvm's end-to-end tests: starts `netvm-core` and NF binaries as real
//! processes on real DPDK vdevs and hugepage regions, talks to the core's control socket, and
//! cleans up — killing only the processes it started, by PID, and removing the files it made —
//! also when a test fails (everything is undone in `Drop`).
//!
//! The binaries come from the workspace's target directory (`cargo build --workspace` first;
//! `scripts/test.sh` does).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod hostile;
pub mod netns;
pub mod traffic;
pub mod vm;

/// Port `name`'s entry in a report's `ports`; fails the test if there is none.
pub fn report_port<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["ports"]
        .as_array()
        .and_then(|a| a.iter().find(|n| n["name"] == name))
        .unwrap_or_else(|| panic!("no port {name} in {report:#}"))
}

/// Service path `id`'s entry in a report's `paths`; fails the test if there is none.
pub fn report_path(report: &Value, id: u32) -> &Value {
    report["paths"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["path_id"] == id))
        .unwrap_or_else(|| panic!("no path {id} in {report:#}"))
}

/// The directory holding the workspace's binaries (`target/<profile>`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test-binary>
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

/// Path of a workspace binary; panics with the fix if it is not built.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} is not built: run `cargo build --workspace` first (scripts/test.sh does)",
        p.display()
    );
    p
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A scratch directory removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// A new, empty directory under /tmp.
    pub fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!(
            "netvm-test-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("scratch dir");
        Self(p)
    }

    /// A path inside.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed (SIGTERM, then SIGKILL) on drop, by PID.
pub struct Proc {
    /// Name for messages.
    pub name: String,
    /// The child.
    pub child: Option<Child>,
    /// Its log file.
    pub log: PathBuf,
}

impl Proc {
    /// Spawns `bin args…`, stdout+stderr to `log`.
    pub fn spawn(
        name: &str,
        bin: &Path,
        args: &[String],
        log: PathBuf,
        env: &[(&str, String)],
    ) -> Self {
        let f = std::fs::File::create(&log).expect("log file");
        let f2 = f.try_clone().expect("log file");
        let mut cmd = Command::new(bin);
        cmd.args(args).stdin(Stdio::null()).stdout(f).stderr(f2);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", bin.display()));
        Self {
            name: name.into(),
            child: Some(child),
            log,
        }
    }

    /// PID.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Sends a signal.
    pub fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            if let Ok(pid) = libc::pid_t::try_from(c.id()) {
                // SAFETY: signalling our own child by PID.
                unsafe { libc::kill(pid, sig) };
            }
        }
    }

    /// Waits for exit up to `timeout`; returns the exit code (None on timeout or signal).
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<i32> {
        let end = Instant::now() + timeout;
        let c = self.child.as_mut()?;
        loop {
            match c.try_wait() {
                Ok(Some(st)) => {
                    self.child = None;
                    return st.code();
                }
                Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(5)),
                _ => return None,
            }
        }
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.signal(libc::SIGTERM);
            if self.wait_timeout(Duration::from_secs(3)).is_none() {
                if let Some(c) = self.child.as_mut() {
                    let _ = c.kill();
                    let _ = c.wait();
                }
            }
        }
    }
}

/// A running `netvm-core` with its scratch dir; NFs started through it are stopped first.
pub struct Core {
    /// NF processes (dropped before the core).
    pub nfs: Vec<Proc>,
    /// The core process.
    pub core: Proc,
    /// Control socket.
    pub socket: PathBuf,
    /// Region files reported by the core (removed on drop if left behind).
    pub regions: Vec<(String, PathBuf)>,
    /// Scratch directory (config, logs, pcaps).
    pub dir: Scratch,
    /// One instance at a time per test binary: instances share the machine's two CPUs (a
    /// second instance of the same test, started with [`Core::start_in`], holds none).
    _serial: Option<std::sync::MutexGuard<'static, ()>>,
}

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Core {
    /// Starts the core on `config` (its `run_dir` and `region_dir` are set here unless given),
    /// waits for the control socket and returns. `extra` are netvm-core arguments.
    pub fn start(config: Value, dir: Scratch, extra: &[&str]) -> Self {
        Self::start_in(config, dir, extra, None, true)
    }

    /// As [`Core::start`], with the core in network namespace `netns` (`ip netns exec`; the
    /// control socket and region files are paths, which every namespace sees). `serial`:
    /// take this test binary's one-instance lock (a test that runs two instances takes it
    /// with the first only).
    pub fn start_in(
        mut config: Value,
        dir: Scratch,
        extra: &[&str],
        netns: Option<&str>,
        serial: bool,
    ) -> Self {
        let serial = serial.then(|| {
            SERIAL
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        });
        if config.get("run_dir").is_none() {
            config["run_dir"] = Value::from(dir.path("run").display().to_string());
        }
        if config.get("region_dir").is_none() {
            config["region_dir"] = Value::from(region_dir().display().to_string());
        }
        let cfg = dir.path("config.json");
        std::fs::write(&cfg, serde_json::to_string_pretty(&config).expect("json"))
            .expect("write config");
        let mut args = vec![
            cfg.display().to_string(),
            "--summary".into(),
            dir.path("summary.json").display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let core = match netns {
            // `ip netns exec` execs the core: the PID is the core's.
            Some(ns) => {
                let mut a = vec![
                    "netns".to_string(),
                    "exec".into(),
                    ns.into(),
                    bin("netvm-core").display().to_string(),
                ];
                a.extend(args);
                Proc::spawn("netvm-core", Path::new("ip"), &a, dir.path("core.log"), &[])
            }
            None => Proc::spawn(
                "netvm-core",
                &bin("netvm-core"),
                &args,
                dir.path("core.log"),
                &[],
            ),
        };
        let socket = dir.path("run").join("control.sock");
        let mut c = Self {
            nfs: Vec::new(),
            core,
            socket,
            regions: Vec::new(),
            dir,
            _serial: serial,
        };
        let end = Instant::now() + Duration::from_secs(30);
        while !c.socket.exists() {
            assert!(
                c.core.running(),
                "netvm-core exited early:\n{}",
                c.core.log_text()
            );
            assert!(
                Instant::now() < end,
                "no control socket after 30 s:\n{}",
                c.core.log_text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let st = c.ctl(&serde_json::json!({"cmd": "status"}));
        for r in st["regions"].as_array().cloned().unwrap_or_default() {
            c.regions.push((
                r["domain"].as_str().unwrap_or("").into(),
                PathBuf::from(r["path"].as_str().unwrap_or("")),
            ));
        }
        c
    }

    /// Region file of a domain.
    pub fn region(&self, domain: &str) -> PathBuf {
        self.regions
            .iter()
            .find(|(d, _)| d == domain)
            .map(|(_, p)| p.clone())
            .unwrap_or_else(|| panic!("no region for domain {domain}"))
    }

    /// One control request.
    pub fn ctl(&self, req: &Value) -> Value {
        // The socket file appears at bind(2), a moment before listen(2): retry a refusal.
        let end = Instant::now() + Duration::from_secs(5);
        let mut s = loop {
            match UnixStream::connect(&self.socket) {
                Ok(s) => break s,
                Err(e)
                    if e.kind() == std::io::ErrorKind::ConnectionRefused
                        && Instant::now() < end =>
                {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(e) => panic!(
                    "connect {}: {e}\n{}\n{}",
                    self.socket.display(),
                    self.core.log_text(),
                    self.nf_logs()
                ),
            }
        };
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        writeln!(s, "{req}").expect("send");
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).expect("answer");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad answer {line:?}: {e}"))
    }

    /// Starts an NF binary attached as `nf` to `domain`'s region.
    pub fn spawn_nf(&mut self, bin_name: &str, nf: &str, domain: &str, args: &[String]) {
        let region = self.region(domain);
        let mut a = vec![
            "--region".to_string(),
            region.display().to_string(),
            "--nf".into(),
            nf.into(),
        ];
        a.extend(args.iter().cloned());
        let log = self.dir.path(&format!("{nf}.log"));
        self.nfs.push(Proc::spawn(nf, &bin(bin_name), &a, log, &[]));
    }

    /// Waits until `pred(stats)` holds (stats taken over the control socket), up to `timeout`.
    pub fn wait_stats(&mut self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let end = Instant::now() + timeout;
        loop {
            assert!(
                self.core.running(),
                "netvm-core exited:\n{}",
                self.core.log_text()
            );
            let v = self.ctl(&serde_json::json!({"cmd": "stats"}));
            if v["ok"] == true {
                let st = &v["stats"];
                assert_eq!(
                    st["accounting_ok"], true,
                    "accounting broken in a live snapshot: {st:#}"
                );
                if pred(st) {
                    return st.clone();
                }
            }
            assert!(
                Instant::now() < end,
                "condition not met in {timeout:?}; last stats: {v:#}\ncore log:\n{}\n{}",
                self.core.log_text(),
                self.nf_logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// All NF logs, for failure messages.
    pub fn nf_logs(&self) -> String {
        self.nfs
            .iter()
            .map(|p| format!("--- {}:\n{}", p.name, p.log_text()))
            .collect()
    }

    /// Waits until the core reports traffic running (all NFs attached, ports started).
    pub fn wait_running(&mut self) {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            assert!(
                self.core.running(),
                "netvm-core exited:\n{}\n{}",
                self.core.log_text(),
                self.nf_logs()
            );
            let v = self.ctl(&serde_json::json!({"cmd": "status"}));
            if v["running"] == true {
                return;
            }
            assert!(
                Instant::now() < end,
                "core not running after 30 s: {v:#}\n{}",
                self.nf_logs()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits (30 s at most) until the core's status shows NF `nf` attached.
    pub fn wait_attached(&self, nf: &str) {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let st = self.ctl(&serde_json::json!({"cmd": "status"}));
            let attached = st["nfs"]
                .as_array()
                .and_then(|a| a.iter().find(|n| n["name"] == nf))
                .is_some_and(|n| n["state"] == "attached");
            if attached {
                return;
            }
            assert!(
                Instant::now() < end,
                "{nf} never attached: {st:#}\n{}",
                self.nf_logs()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Shuts the core down and returns its final report (from `--summary`), asserting a clean
    /// exit. NFs are stopped afterwards (they see SIGTERM).
    pub fn shutdown(&mut self) -> Value {
        let _ = self.ctl(&serde_json::json!({"cmd": "shutdown"}));
        let code = self.core.wait_timeout(Duration::from_secs(30));
        let log = self.core.log_text();
        let summary = std::fs::read_to_string(self.dir.path("summary.json"))
            .unwrap_or_else(|e| panic!("no summary ({e}); core exit {code:?}:\n{log}"));
        let v: Value = serde_json::from_str(&summary).expect("summary json");
        assert_eq!(
            code,
            Some(0),
            "netvm-core exit code {code:?}:\n{log}\nsummary: {v:#}"
        );
        for mut n in self.nfs.drain(..) {
            n.signal(libc::SIGTERM);
            n.wait_timeout(Duration::from_secs(5));
        }
        v
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        self.nfs.clear();
        let core_pid = self.core.child.as_ref().map(std::process::Child::id);
        if self.core.child.is_some() {
            self.core.signal(libc::SIGTERM);
            if self.core.wait_timeout(Duration::from_secs(10)).is_none() {
                drop(Proc {
                    name: String::new(),
                    child: self.core.child.take(),
                    log: PathBuf::new(),
                });
            }
        }
        for (_, p) in &self.regions {
            // The NFs' control regions next to it (`netvm-D.PID.NF.ctl`), then the region.
            if let (Some(dir), Some(name)) = (p.parent(), p.file_name()) {
                let stem = name.to_string_lossy();
                let stem = stem.strip_suffix(".region").unwrap_or(&stem).to_owned() + ".";
                for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                    let n = e.file_name().to_string_lossy().into_owned();
                    if n.starts_with(&stem) && n.ends_with(".ctl") {
                        let _ = std::fs::remove_file(e.path());
                    }
                }
            }
            let _ = std::fs::remove_file(p);
        }
        // DPDK's runtime directory of a core that was killed (`netvm-PID-N`).
        if let Some(pid) = core_pid {
            let pre = format!("netvm-{pid}-");
            for e in std::fs::read_dir("/var/run/dpdk")
                .into_iter()
                .flatten()
                .flatten()
            {
                if e.file_name().to_string_lossy().starts_with(&pre) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }
}

/// Where tests put region files: hugetlbfs when mounted, else /dev/shm (said once).
pub fn region_dir() -> PathBuf {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    if mounts
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some("/dev/hugepages") && l.contains("hugetlbfs"))
    {
        PathBuf::from("/dev/hugepages")
    } else {
        println!("NOTE: /dev/hugepages is not hugetlbfs here; regions go to /dev/shm");
        PathBuf::from("/dev/shm")
    }
}

/// EAL section for test configs: hugepages when usable, else `--no-huge` (said in the output).
pub fn eal_section() -> Value {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let free = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("HugePages_Free:"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    if free >= 64 && region_dir() == Path::new("/dev/hugepages") {
        serde_json::json!({})
    } else {
        println!("NOTE: no usable hugepages; the core runs DPDK with --no-huge");
        serde_json::json!({"no_huge_mb": 512})
    }
}

/// CPU for the core's worker: the last CPU (NFs and the test share the others).
pub fn worker_cpu() -> usize {
    std::thread::available_parallelism()
        .map_or(1, usize::from)
        .saturating_sub(1)
}

/// What [`run_fw_l3`] returns.
pub struct ChainRun {
    /// The core's final report.
    pub report: Value,
    /// The input load.
    pub load: traffic::Load,
    /// Frames the output port wrote.
    pub output: Vec<Vec<u8>>,
}

/// Runs the reference chain `in → firewall → l3fwd → out` on a generated pcap, with the ports
/// in domain `edge` and each NF in the domain given, until every packet is dealt with; then
/// shuts down and returns the report and the output frames.
pub fn run_fw_l3(tag: &str, fw_domain: &str, l3_domain: &str) -> ChainRun {
    let load = traffic::Load::new(24, 12);
    let run = run_fw_l3_on(&FwL3 {
        tag,
        fw_domain,
        l3_domain,
        frames: &load.frames,
        rules: traffic::Load::rules(),
        routes: &traffic::Load::routes(1),
        buffer_size: None,
        chain: "web",
    });
    ChainRun {
        report: run.report,
        load,
        output: run.output,
    }
}

/// What [`run_fw_l3_on`] runs: `in → firewall → l3fwd → out` over `frames`.
struct FwL3<'a> {
    tag: &'a str,
    fw_domain: &'a str,
    l3_domain: &'a str,
    frames: &'a [Vec<u8>],
    rules: &'a str,
    routes: &'a str,
    /// Every domain's `buffer_size` (`None`: the default).
    buffer_size: Option<u32>,
    chain: &'a str,
}

/// The report, the output frames and the two NF logs of a [`run_fw_l3_on`].
struct FwL3Run {
    report: Value,
    output: Vec<Vec<u8>>,
    fw_log: String,
    l3_log: String,
}

/// Runs `in → firewall → l3fwd → out` with the ports in domain `edge` and each NF in its
/// domain until every packet is dealt with; then shuts down.
fn run_fw_l3_on(r: &FwL3<'_>) -> FwL3Run {
    let dir = Scratch::new(r.tag);
    let input = dir.path("in.pcap");
    let output = dir.path("out.pcap");
    traffic::write_pcap(&input, r.frames);
    let rules = dir.path("fw.rules");
    let routes = dir.path("routes");
    std::fs::write(&rules, r.rules).expect("rules");
    std::fs::write(&routes, r.routes).expect("routes");
    let dom = |d: &str| match r.buffer_size {
        Some(b) => serde_json::json!({"name": d, "buffers": 1024, "buffer_size": b}),
        None => serde_json::json!({"name": d, "buffers": 1024}),
    };
    let mut domains = vec![dom("edge")];
    for d in [r.fw_domain, r.l3_domain] {
        if domains.iter().all(|x| x["name"] != d) {
            domains.push(dom(d));
        }
    }
    let cfg = serde_json::json!({
        "name": r.tag,
        "workers": [{"cpu": worker_cpu()}],
        "eal": eal_section(),
        "domains": domains,
        "ports": [
            {"name": "in", "device": format!("net_pcap0,rx_pcap={}", input.display()), "domain": "edge"},
            {"name": "out", "device": format!("net_pcap1,tx_pcap={}", output.display()), "domain": "edge"}
        ],
        "nfs": [
            {"name": "fw1", "service": "firewall", "domain": r.fw_domain},
            {"name": "l3", "service": "l3fwd", "domain": r.l3_domain}
        ],
        "chains": [{"name": r.chain, "match": {"in_port": "in"}, "services": ["firewall", "l3fwd"], "egress": "out"}]
    });
    let mut core = Core::start(cfg, dir, &[]);
    core.spawn_nf(
        "firewall",
        "fw1",
        r.fw_domain,
        &["--rules".into(), rules.display().to_string()],
    );
    core.spawn_nf(
        "l3fwd",
        "l3",
        r.l3_domain,
        &["--routes".into(), routes.display().to_string()],
    );
    core.wait_running();
    let n_in = r.frames.len() as u64;
    core.wait_stats(Duration::from_secs(60), |s| {
        s["received"].as_u64() == Some(n_in) && s["in_flight"] == 0
    });
    let report = core.shutdown();
    FwL3Run {
        report,
        output: traffic::read_pcap(&output),
        fw_log: std::fs::read_to_string(core.dir.path("fw1.log")).unwrap_or_default(),
        l3_log: std::fs::read_to_string(core.dir.path("l3.log")).unwrap_or_default(),
    }
}

/// What [`run_mixed`] returns.
pub struct MixedRun {
    /// The core's final report.
    pub report: Value,
    /// The input load.
    pub load: traffic::MixedLoad,
    /// Frames the output port wrote.
    pub output: Vec<Vec<u8>>,
    /// The firewall's log (its final rule-hit report included).
    pub fw_log: String,
    /// l3fwd's log (its drop counters included).
    pub l3_log: String,
}

/// As [`run_fw_l3`], on the mixed IPv4/IPv6 load ([`traffic::MixedLoad`]).
pub fn run_mixed(tag: &str, fw_domain: &str, l3_domain: &str) -> MixedRun {
    let load = traffic::MixedLoad::new();
    let run = run_fw_l3_on(&FwL3 {
        tag,
        fw_domain,
        l3_domain,
        frames: &load.bytes(),
        rules: traffic::MixedLoad::rules(),
        routes: &traffic::MixedLoad::routes(1),
        // Jumbo domains: the load carries frames up to 9,000 bytes.
        buffer_size: Some(9216),
        chain: "mixed",
    });
    MixedRun {
        report: run.report,
        load,
        output: run.output,
        fw_log: run.fw_log,
        l3_log: run.l3_log,
    }
}
