//! Starting and stopping the systems under test.
//!
//! Every system has the same two edges: an `in` and an `out` memif **server** that
//! `netvm-pktgen` connects to as a client (`net_memif0` sends, `net_memif1` receives). Between
//! them:
//!
//! * `netvm`: `netvm-manager up` with one worker on the switch CPU, the two ports, and a chain
//!   `in → s1 … sN → out` of `l2fwd` NF processes (one domain for zero-copy; each NF in its
//!   own domain for crossing). Chain 0 is port→port.
//! * `testpmd`: `dpdk-testpmd` io forwarding `in ↔ out` (paired): the ceiling.
//! * `memif-copy`, `memif-zc`, `vhost`: a testpmd **switch** (io forwarding, chained topology
//!   over ports `in, s1 … sN, out`, so a frame goes in → NF1 → … → NFN → out) and one testpmd
//!   **NF** per chain position (`mac` forwarding, the l2fwd equivalent, loop topology), joined
//!   by memif (the NF side in zero-copy mode for `memif-zc`) or by vhost-user (switch) /
//!   virtio-user (NF), which is how OVS-DPDK talks to NFs.
//! * `ovs`: OVS-DPDK itself (chain 1): a private `ovsdb-server` + `ovs-vswitchd`, a netdev
//!   bridge with the two memif servers as `dpdk` ports and the `vhost` peer's testpmd NF over
//!   vhost-user, OpenFlow `in → nf1 → out`; pktgen opens 2 RX queues on `out` because the
//!   OVS PMD thread transmits on queue 1 and a memif server can only use rings its client opened.
//!
//! Processes are killed by PID only (SIGINT, then SIGKILL after a grace period), also when the
//! runner fails ([`Proc`]'s `Drop`).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::matrix::{Cpus, DomainMode, Placement, Setup, Sut};

/// What the systems need to know about the machine.
#[derive(Debug, Clone)]
pub struct Env {
    /// Where netvm-manager, netvm-core, l2fwd and netvm-pktgen are.
    pub bin_dir: PathBuf,
    /// Scratch directory for sockets and configs (short path: socket names are limited).
    pub work: PathBuf,
    /// Where process logs go.
    pub log_dir: PathBuf,
    /// CPU assignment.
    pub cpus: Cpus,
    /// Buffers per netvm domain.
    pub netvm_buffers: u32,
}

/// A child process, stopped by PID on drop.
#[derive(Debug)]
pub struct Proc {
    /// Name for messages.
    pub name: String,
    child: Option<Child>,
    /// Its log (stdout and stderr).
    pub log: PathBuf,
}

impl Proc {
    /// Spawns `cmd` with stdout and stderr to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: PathBuf) -> Result<Self, String> {
        let f = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let f2 = f
            .try_clone()
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(f)
            .stderr(f2)
            .spawn()
            .map_err(|e| format!("starting {name} ({cmd:?}): {e}"))?;
        Ok(Self {
            name: name.into(),
            child: Some(child),
            log,
        })
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The last `n` bytes of its log.
    pub fn log_tail(&self, n: usize) -> String {
        let t = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = t.len().saturating_sub(n);
        let start = (start..t.len())
            .find(|&i| t.is_char_boundary(i))
            .unwrap_or(t.len());
        t[start..].to_string()
    }

    fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            if let Ok(pid) = libc::pid_t::try_from(c.id()) {
                // SAFETY: kill(2) on the PID of a child we spawned and have not reaped (the
                // Child is still held), so the PID cannot have been reused.
                unsafe { libc::kill(pid, sig) };
            }
        }
    }

    /// Waits up to `timeout` for it to exit; returns its exit code (None: signal/timeout).
    pub fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let end = Instant::now() + timeout;
        let c = self.child.as_mut()?;
        loop {
            match c.try_wait() {
                Ok(Some(st)) => {
                    self.child = None;
                    return st.code();
                }
                // Polling a child's exit with a bound (no other way without a reaper thread).
                Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(20)),
                _ => return None,
            }
        }
    }

    /// SIGINT, wait up to `grace`, then SIGKILL. Returns the exit code if it exited.
    pub fn stop(&mut self, grace: Duration) -> Option<i32> {
        self.child.as_ref()?;
        self.signal(libc::SIGINT);
        if let Some(code) = self.wait(grace) {
            return Some(code);
        }
        if self.child.is_some() {
            self.signal(libc::SIGKILL);
            self.wait(Duration::from_secs(5));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(10));
    }
}

/// A started system under test.
#[derive(Debug)]
pub struct Running {
    /// The setup.
    pub setup: Setup,
    /// Processes, in start order (stopped in reverse).
    pub procs: Vec<Proc>,
    /// pktgen's TX device.
    pub pktgen_dev: String,
    /// pktgen's RX device.
    pub pktgen_rx_dev: String,
    /// netvm's summary file.
    summary: Option<PathBuf>,
    dir: PathBuf,
    log_dir: PathBuf,
    /// RX queues pktgen must open on its RX device (OVS transmits on queue 1).
    pub pktgen_rx_queues: u16,
}

impl Running {
    /// An error naming the first process that exited, with its log tail.
    pub fn check_alive(&mut self) -> Result<(), String> {
        for p in &mut self.procs {
            if !p.running() {
                return Err(format!(
                    "{} exited; log tail:\n{}",
                    p.name,
                    p.log_tail(1500)
                ));
            }
        }
        Ok(())
    }

    /// Stops everything (reverse order) and returns netvm's final summary, if any.
    pub fn stop(mut self) -> Option<serde_json::Value> {
        while let Some(mut p) = self.procs.pop() {
            p.stop(Duration::from_secs(30));
        }
        let s = self
            .summary
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|t| serde_json::from_str(&t).ok());
        // Keep netvm-core's own log (it lives in the run directory that is removed).
        let core_log = self.dir.join("run").join("core.log");
        if core_log.exists() {
            let _ = std::fs::copy(
                &core_log,
                self.log_dir.join(format!("{}-core.log", self.setup.key())),
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        s
    }
}

/// Whether the netvm guest image (scripts/build-guest.sh) sits where netvm-manager looks for
/// it by default: `target/guest-image`, beside the binaries' directory.
pub fn guest_image_available() -> bool {
    std::env::current_exe()
        .ok()
        .and_then(|e| {
            e.parent()
                .and_then(Path::parent)
                .map(|t| t.join("guest-image").join("vmlinuz"))
        })
        .is_some_and(|k| k.exists())
}

/// The DPDK-enabled vswitchd of Debian's `openvswitch-switch-dpdk`.
const OVS_VSWITCHD_DPDK: &str = "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk";
/// The Open_vSwitch database schema.
const OVS_SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";

/// Whether OVS-DPDK is installed **and** selected: `ovs-vswitchd` on PATH resolves to the
/// DPDK-enabled build (`benches/setup-ovs.sh` does both), and the tools the runner calls exist.
pub fn ovs_available() -> bool {
    let dpdk = Path::new(OVS_VSWITCHD_DPDK);
    let selected = which("ovs-vswitchd")
        .and_then(|p| std::fs::canonicalize(p).ok())
        .zip(std::fs::canonicalize(dpdk).ok())
        .is_some_and(|(a, b)| a == b);
    selected
        && Path::new(OVS_SCHEMA).is_file()
        && ["ovsdb-tool", "ovsdb-server", "ovs-vsctl", "ovs-ofctl"]
            .iter()
            .all(|t| which(t).is_some())
}

/// `name` on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn memif(idx: usize, role: &str, sock: &Path, extra: &str) -> String {
    format!(
        "net_memif{idx},role={role},socket={},socket-abstract=no{extra}",
        sock.display()
    )
}

/// pktgen's devices for a setup directory: TX into `in`, RX from `out`.
fn pktgen_devs(dir: &Path) -> (String, String) {
    (
        memif(0, "client", &dir.join("in.sock"), ""),
        memif(1, "client", &dir.join("out.sock"), ""),
    )
}

fn testpmd_cmd(
    cpu: u32,
    prefix: &str,
    vdevs: &[String],
    eal_extra: &[&str],
    fwd: &str,
    topo: &str,
) -> Command {
    let mut c = Command::new("dpdk-testpmd");
    c.args(eal_extra);
    c.arg(format!("--lcores=0@{cpu},1@{cpu}"))
        .arg("--main-lcore=0")
        .args(["--no-pci", "--in-memory", "--no-telemetry"])
        .arg(format!("--file-prefix={prefix}"));
    for v in vdevs {
        c.arg("--vdev").arg(v);
    }
    c.args([
        "--",
        &format!("--forward-mode={fwd}"),
        &format!("--port-topology={topo}"),
        "--nb-cores=1",
        "--stats-period=3600",
        "--no-lsc-interrupt",
        "--txd=1024",
        "--rxd=1024",
        // 16k mbufs (testpmd's default is sized for many ports and cores: ~340 MB each).
        "--total-num-mbufs=16384",
    ]);
    c
}

/// Waits until the log file `path` contains `needle`, up to `timeout`.
fn wait_log(path: &Path, needle: &str, timeout: Duration, who: &mut Proc) -> Result<(), String> {
    let end = Instant::now() + timeout;
    while !std::fs::read_to_string(path).is_ok_and(|t| t.contains(needle)) {
        if !who.running() {
            return Err(format!("{} exited:\n{}", who.name, who.log_tail(1500)));
        }
        if Instant::now() >= end {
            return Err(format!(
                "{needle:?} not in {} after {timeout:?}",
                path.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Waits until `path` exists (a server socket appearing), up to `timeout`.
fn wait_file(path: &Path, timeout: Duration, who: &mut Proc) -> Result<(), String> {
    let end = Instant::now() + timeout;
    while !path.exists() {
        if !who.running() {
            return Err(format!("{} exited:\n{}", who.name, who.log_tail(1500)));
        }
        if Instant::now() >= end {
            return Err(format!("{} did not appear in {timeout:?}", path.display()));
        }
        // Readiness poll on another process's socket file (no notification exists).
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Starts the system under test of `setup`.
pub fn start(setup: &Setup, env: &Env, seq: u32) -> Result<Running, String> {
    let dir = env.work.join(format!("s{seq}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let (pdev, prx) = pktgen_devs(&dir);
    let log = |n: &str| env.log_dir.join(format!("{}-{n}.log", setup.key()));
    let prefix = format!("nvb{}-{seq}", std::process::id());
    let n = usize::from(setup.chain);
    let nf_cpu = |i: usize| {
        env.cpus
            .nfs
            .get(i % env.cpus.nfs.len().max(1))
            .copied()
            .unwrap_or(0)
    };
    let mut procs = Vec::new();
    let mut summary = None;
    let in_srv = memif(0, "server", &dir.join("in.sock"), "");
    match setup.sut {
        Sut::Netvm => {
            let cfg = netvm_config(setup, env, &dir, seq);
            let cfg_path = dir.join("netvm.json");
            std::fs::write(
                &cfg_path,
                serde_json::to_string_pretty(&cfg).unwrap_or_default(),
            )
            .map_err(|e| format!("{}: {e}", cfg_path.display()))?;
            let sum = dir.join("summary.json");
            let mut c = Command::new(env.bin_dir.join("netvm-manager"));
            c.arg("up")
                .arg(&cfg_path)
                .arg("--no-progress")
                .arg("--summary")
                .arg(&sum);
            procs.push(Proc::spawn("netvm-manager", c, log("netvm"))?);
            summary = Some(sum);
            if setup.placement == Placement::Vm {
                // The core starts its ports only once every NF attached, and a guest boots for
                // seconds: a memif client that connects before then is turned away. Wait for
                // the manager to say traffic runs.
                if let Some(m) = procs.last_mut() {
                    wait_log(&log("netvm"), "\" running: ", Duration::from_secs(180), m)?;
                }
            }
        }
        Sut::Testpmd => {
            let out = memif(1, "server", &dir.join("out.sock"), "");
            let c = testpmd_cmd(
                env.cpus.switch,
                &prefix,
                &[in_srv, out],
                &[],
                "io",
                "paired",
            );
            procs.push(Proc::spawn("testpmd", c, log("testpmd"))?);
        }
        Sut::MemifCopy | Sut::MemifZc | Sut::Vhost => {
            let mut vdevs = vec![in_srv];
            for i in 1..=n {
                let sock = dir.join(format!("s{i}.sock"));
                vdevs.push(match setup.sut {
                    Sut::Vhost => format!("net_vhost{i},iface={}", sock.display()),
                    _ => memif(i, "server", &sock, ""),
                });
            }
            vdevs.push(memif(n + 1, "server", &dir.join("out.sock"), ""));
            let c = testpmd_cmd(env.cpus.switch, &prefix, &vdevs, &[], "io", "chained");
            let mut sw = Proc::spawn("switch testpmd", c, log("switch"))?;
            if setup.sut == Sut::Vhost {
                for i in 1..=n {
                    wait_file(
                        &dir.join(format!("s{i}.sock")),
                        Duration::from_secs(20),
                        &mut sw,
                    )?;
                }
            }
            procs.push(sw);
            for i in 1..=n {
                let sock = dir.join(format!("s{i}.sock"));
                let dev = match setup.sut {
                    Sut::Vhost => format!("net_virtio_user0,path={}", sock.display()),
                    Sut::MemifZc => memif(0, "client", &sock, ",zero-copy=yes"),
                    _ => memif(0, "client", &sock, ""),
                };
                // virtio-user and memif zero-copy share the NF's memory with the switch by file
                // descriptor: one file per memory segment list.
                let extra: &[&str] = if matches!(setup.sut, Sut::Vhost | Sut::MemifZc) {
                    &["--single-file-segments"]
                } else {
                    &[]
                };
                let c = testpmd_cmd(
                    nf_cpu(i - 1),
                    &format!("{prefix}-nf{i}"),
                    &[dev],
                    extra,
                    "mac",
                    "loop",
                );
                procs.push(Proc::spawn(
                    &format!("NF {i} testpmd"),
                    c,
                    log(&format!("nf{i}")),
                )?);
            }
        }
        Sut::Ovs => {
            if n != 1 {
                return Err(format!("ovs: only chain 1 is implemented (asked for {n})"));
            }
            start_ovs(&dir, env, &prefix, seq, nf_cpu(0), &log, &mut procs)?;
        }
    }
    // pktgen's memif clients need the servers' sockets to exist when their ports start.
    for sock in ["in.sock", "out.sock"] {
        if let Some(first) = procs.first_mut() {
            wait_file(&dir.join(sock), Duration::from_secs(60), first)?;
        }
    }
    Ok(Running {
        log_dir: env.log_dir.clone(),
        setup: *setup,
        procs,
        pktgen_dev: pdev,
        pktgen_rx_dev: prx,
        pktgen_rx_queues: if setup.sut == Sut::Ovs { 2 } else { 1 },
        summary,
        dir,
    })
}

/// The netvm-manager config of a setup.
fn netvm_config(setup: &Setup, env: &Env, dir: &Path, seq: u32) -> serde_json::Value {
    use serde_json::json;
    let n = usize::from(setup.chain);
    let crossing = setup.domain == Some(DomainMode::Crossing);
    let mut domains = vec![json!({"name": "d0", "buffers": env.netvm_buffers})];
    let mut nfs = Vec::new();
    let mut services = Vec::new();
    for i in 1..=n {
        let domain = if crossing {
            domains.push(json!({"name": format!("d{i}"), "buffers": env.netvm_buffers}));
            format!("d{i}")
        } else {
            "d0".into()
        };
        let cpu = env
            .cpus
            .nfs
            .get((i - 1) % env.cpus.nfs.len().max(1))
            .copied()
            .unwrap_or(0);
        nfs.push(if setup.placement == Placement::Vm {
            // A guest NF: the same l2fwd, from the guest image, over the domain's ivshmem BAR.
            json!({
                "name": format!("nf{i}"), "service": format!("s{i}"), "domain": domain,
                "kind": "vm", "program": "l2fwd",
                "args": ["--dst-mac", "02:00:00:00:00:02"], "cpu": cpu,
                "vm": {"memory_mb": 256, "vcpus": 1}
            })
        } else {
            json!({
                "name": format!("nf{i}"), "service": format!("s{i}"), "domain": domain,
                "program": env.bin_dir.join("l2fwd").display().to_string(),
                "args": ["--dst-mac", "02:00:00:00:00:02"], "cpu": cpu
            })
        });
        services.push(format!("s{i}"));
    }
    json!({
        "name": format!("nvb{}-{seq}", std::process::id()),
        "run_dir": dir.join("run").display().to_string(),
        "workers": [{"cpu": env.cpus.switch}],
        "domains": domains,
        "ports": [
            {"name": "in", "device": memif(0, "server", &dir.join("in.sock"), ""), "domain": "d0"},
            {"name": "out", "device": memif(1, "server", &dir.join("out.sock"), ""), "domain": "d0"}
        ],
        "nfs": nfs,
        "chains": [{"name": "bench", "match": {"in_port": "in"}, "services": services, "egress": "out"}]
    })
}

/// An OVS command line (`ovs-vsctl`, `ovs-ofctl`, …) that finds the private instance of `dir`:
/// every OVS directory variable points there, so nothing touches a system instance.
fn ovs_cmd(prog: &str, dir: &Path) -> Command {
    let mut c = Command::new(prog);
    for v in ["OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR", "OVS_SYSCONFDIR"] {
        c.env(v, dir);
    }
    c
}

/// Runs a short OVS tool to completion; its output, or an error with its stderr.
fn ovs_run(mut c: Command) -> Result<String, String> {
    let out = c
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("starting {c:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{c:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// OVS-DPDK with one NF: a private `ovsdb-server` and `ovs-vswitchd` (children of the runner,
/// stopped by PID; database, sockets and the bridge's management socket in `dir`), a netdev
/// bridge with the `in`/`out` memif servers as `dpdk` ports and the NF joined by vhost-user
/// (`dpdkvhostuserclient`; the NF is the same testpmd `mac` forwarder over virtio-user as the
/// `vhost` peer's, here as the vhost-user server), and two OpenFlow rules `in → nf1 → out`.
/// The PMD thread runs on the switch CPU.
#[allow(clippy::too_many_arguments)]
fn start_ovs(
    dir: &Path,
    env: &Env,
    prefix: &str,
    seq: u32,
    nf_cpu: u32,
    log: &dyn Fn(&str) -> PathBuf,
    procs: &mut Vec<Proc>,
) -> Result<(), String> {
    let db = dir.join("conf.db");
    let db_sock = dir.join("db.sock");
    let db_remote = format!("unix:{}", db_sock.display());
    let bridge = format!("nvbr{}", seq % 100_000);
    let mut c = ovs_cmd("ovsdb-tool", dir);
    c.arg("create").arg(&db).arg(OVS_SCHEMA);
    ovs_run(c)?;

    // ovsdb-server in the foreground (no --detach): a child we stop by PID.
    let mut c = ovs_cmd("ovsdb-server", dir);
    c.arg(&db)
        .arg(format!("--remote=punix:{}", db_sock.display()))
        .arg(format!(
            "--pidfile={}",
            dir.join("ovsdb-server.pid").display()
        ))
        .arg(format!(
            "--unixctl={}",
            dir.join("ovsdb-server.ctl").display()
        ));
    let mut ovsdb = Proc::spawn("ovsdb-server", c, log("ovsdb"))?;
    wait_file(&db_sock, Duration::from_secs(20), &mut ovsdb)?;
    procs.push(ovsdb);

    let vsctl = |wait: bool| {
        let mut c = ovs_cmd("ovs-vsctl", dir);
        c.arg(format!("--db={db_remote}")).arg("--timeout=120");
        if !wait {
            c.arg("--no-wait");
        }
        c
    };
    let mask = format!("0x{:x}", 1u64 << env.cpus.switch);
    let mut c = vsctl(false);
    c.args(["init", "--", "set", "Open_vSwitch", "."])
        .arg("other_config:dpdk-init=true")
        .arg(format!("other_config:dpdk-lcore-mask={mask}"))
        .arg(format!("other_config:pmd-cpu-mask={mask}"))
        // A mempool per port, sized for it (the shared default asks for far more hugepages).
        .arg("other_config:per-port-memory=true")
        .arg(format!(
            "other_config:dpdk-extra=\"--in-memory --file-prefix={prefix} --no-pci --no-telemetry\""
        ));
    ovs_run(c)?;

    // The NF first: it is the vhost-user server that ovs-vswitchd connects to.
    let nf_sock = dir.join("nf1.sock");
    let c = testpmd_cmd(
        nf_cpu,
        &format!("{prefix}-nf1"),
        &[format!(
            "net_virtio_user0,path={},server=1",
            nf_sock.display()
        )],
        &["--single-file-segments"],
        "mac",
        "loop",
    );
    let mut nf = Proc::spawn("NF 1 testpmd", c, log("nf1"))?;
    wait_file(&nf_sock, Duration::from_secs(20), &mut nf)?;
    procs.push(nf);

    let mut c = ovs_cmd("ovs-vswitchd", dir);
    c.arg(&db_remote)
        .arg(format!(
            "--pidfile={}",
            dir.join("ovs-vswitchd.pid").display()
        ))
        .arg(format!(
            "--unixctl={}",
            dir.join("ovs-vswitchd.ctl").display()
        ));
    procs.push(Proc::spawn("ovs-vswitchd", c, log("ovs-vswitchd"))?);

    // Waits (up to --timeout) until ovs-vswitchd applied it: DPDK initialised, ports attached.
    let mut c = vsctl(true);
    c.args(["add-br", &bridge, "--", "set", "bridge", &bridge])
        .arg("datapath_type=netdev");
    for (name, ofport, sock) in [("in", 1, "in.sock"), ("out", 2, "out.sock")] {
        c.args([
            "--",
            "add-port",
            &bridge,
            name,
            "--",
            "set",
            "Interface",
            name,
        ])
        .arg("type=dpdk")
        .arg(format!(
            "options:dpdk-devargs={}",
            memif(ofport - 1, "server", &dir.join(sock), "")
        ))
        .arg(format!("ofport_request={ofport}"));
    }
    c.args([
        "--",
        "add-port",
        &bridge,
        "nf1",
        "--",
        "set",
        "Interface",
        "nf1",
    ])
    .arg("type=dpdkvhostuserclient")
    .arg(format!("options:vhost-server-path={}", nf_sock.display()))
    .arg("ofport_request=3");
    ovs_run(c).map_err(|e| {
        let tail = procs.last().map(|p| p.log_tail(1500)).unwrap_or_default();
        format!("{e}\novs-vswitchd log tail:\n{tail}")
    })?;

    let mgmt = format!("unix:{}", dir.join(format!("{bridge}.mgmt")).display());
    for args in [
        vec!["del-flows", &mgmt],
        vec!["add-flow", &mgmt, "in_port=1,actions=output:3"],
        vec!["add-flow", &mgmt, "in_port=3,actions=output:2"],
    ] {
        let mut c = ovs_cmd("ovs-ofctl", dir);
        c.arg("--timeout=30").args(args);
        ovs_run(c)?;
    }
    Ok(())
}
