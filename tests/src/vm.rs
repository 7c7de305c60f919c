//! Harness for tests with NFs in real QEMU guests (`tests/tests/vm_*.rs`).
//!
//! Guests are started the way an operator starts them: `netvm-manager up` on a config with
//! `kind: "vm"` NFs (the manager launches QEMU, KVM or TCG as detected, and tears it down).
//! The guest image is built once per test binary by `scripts/build-guest.sh` (static NF
//! binaries, busybox initramfs, distro kernel) into `target/guest-image`, where the manager
//! looks by default.
//!
//! [`ManagedRun`] stops the manager on drop (SIGTERM: it shuts the core down and stops its
//! QEMU guests), so a failing test leaves nothing running; [`qemu_pids_mentioning`] lets a
//! test prove it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{bin, bin_dir, Proc, Scratch};

static IMAGE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The guest image directory, built on first use (panics with the script's output if the
/// build fails).
pub fn guest_image() -> PathBuf {
    IMAGE
        .get_or_init(|| {
            let root = Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .expect("workspace root")
                .to_path_buf();
            let out = bin_dir().parent().expect("target dir").join("guest-image");
            let o = std::process::Command::new("bash")
                .arg(root.join("scripts/build-guest.sh"))
                .arg(&out)
                .current_dir(&root)
                .output()
                .map_err(|e| format!("running scripts/build-guest.sh: {e}"))?;
            if !o.status.success() {
                return Err(format!(
                    "scripts/build-guest.sh failed ({}):\n{}\n{}",
                    o.status,
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                ));
            }
            Ok(out)
        })
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Pids of running QEMU processes whose command line mentions `needle` (e.g. a run directory).
pub fn qemu_pids_mentioning(needle: &str) -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd);
            // A zombie has an empty command line: it runs nothing.
            cmd.contains("qemu-system") && cmd.contains(needle)
        })
        .collect()
}

/// `netvm-manager up` running one config, with its scratch directory.
pub struct ManagedRun {
    /// The manager process (SIGTERM on drop: it tears everything down).
    pub manager: Proc,
    /// The run directory (control socket, logs, the core's report).
    pub run_dir: PathBuf,
    /// Scratch directory.
    pub dir: Scratch,
    /// When the manager was started.
    pub started: Instant,
    _serial: std::sync::MutexGuard<'static, ()>,
}

impl ManagedRun {
    /// Writes `config` (its `run_dir` set inside `dir`) and starts `netvm-manager up` on it.
    pub fn start(mut config: Value, dir: Scratch) -> Self {
        let image = guest_image();
        let serial = SERIAL
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let run_dir = dir.path("run");
        config["run_dir"] = Value::from(run_dir.display().to_string());
        if config.get("region_dir").is_none() {
            config["region_dir"] = Value::from(crate::region_dir().display().to_string());
        }
        let cfg = dir.path("config.json");
        std::fs::write(&cfg, serde_json::to_string_pretty(&config).expect("json"))
            .expect("write config");
        let args = vec![
            "up".to_string(),
            cfg.display().to_string(),
            "--no-progress".into(),
            "--attach-timeout".into(),
            "240".into(),
            "--summary".into(),
            dir.path("summary.json").display().to_string(),
            "--guest-image".into(),
            image.display().to_string(),
        ];
        let manager = Proc::spawn(
            "netvm-manager",
            &bin("netvm-manager"),
            &args,
            dir.path("manager.log"),
            &[],
        );
        Self {
            manager,
            run_dir,
            dir,
            started: Instant::now(),
            _serial: serial,
        }
    }

    /// The log of NF `name` (for a VM: its serial console).
    pub fn nf_log(&self, name: &str) -> String {
        std::fs::read_to_string(self.run_dir.join(format!("nf-{name}.log"))).unwrap_or_default()
    }

    /// Logs for failure messages.
    pub fn logs(&self) -> String {
        let mut s = format!("--- manager:\n{}", self.manager.log_text());
        if let Ok(rd) = std::fs::read_dir(&self.run_dir) {
            for e in rd.filter_map(Result::ok) {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.ends_with(".log") {
                    s += &format!(
                        "--- {n}:\n{}",
                        std::fs::read_to_string(e.path()).unwrap_or_default()
                    );
                }
            }
        }
        s
    }

    /// One control request to the core, `None` if the socket is not there (yet).
    pub fn ctl(&self, cmd: &str) -> Option<Value> {
        use std::io::{BufRead, BufReader, Write};
        let mut s =
            std::os::unix::net::UnixStream::connect(self.run_dir.join("control.sock")).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        writeln!(s, "{}", serde_json::json!({ "cmd": cmd })).ok()?;
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).ok()?;
        serde_json::from_str(&line).ok()
    }

    /// Waits until the core reports every NF attached and traffic running; returns how long
    /// that took from the manager's start.
    pub fn wait_running(&mut self, timeout: Duration) -> Duration {
        let end = Instant::now() + timeout;
        loop {
            assert!(
                self.manager.running(),
                "netvm-manager exited before traffic ran:\n{}",
                self.logs()
            );
            if let Some(v) = self.ctl("status") {
                if v["running"] == true {
                    return self.started.elapsed();
                }
            }
            assert!(
                Instant::now() < end,
                "not running after {timeout:?}:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until `pred(stats)` holds.
    pub fn wait_stats(&mut self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let end = Instant::now() + timeout;
        loop {
            assert!(
                self.manager.running(),
                "netvm-manager exited:\n{}",
                self.logs()
            );
            if let Some(v) = self.ctl("stats") {
                if v["ok"] == true {
                    let st = &v["stats"];
                    assert_eq!(st["accounting_ok"], true, "live snapshot: {st:#}");
                    if pred(st) {
                        return st.clone();
                    }
                }
            }
            assert!(
                Instant::now() < end,
                "condition not met in {timeout:?}:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the instance the way Ctrl-C does and returns the core's final report (the
    /// manager's `core-report.json`), asserting the manager exited cleanly.
    pub fn stop(&mut self) -> Value {
        self.manager.signal(libc::SIGTERM);
        let code = self.manager.wait_timeout(Duration::from_secs(90));
        let report = std::fs::read_to_string(self.run_dir.join("core-report.json"))
            .unwrap_or_else(|e| panic!("no core report ({e}):\n{}", self.logs()));
        assert_eq!(code, Some(0), "netvm-manager exit:\n{}", self.logs());
        serde_json::from_str(&report).expect("report json")
    }
}

/// Every packet of `output` equals the model's, counters add up, pools are full: the same
/// assertions as the process-mode chain test (`chain_pcap.rs`).
pub fn check_fw_l3_output(report: &Value, load: &crate::traffic::Load, output: &[Vec<u8>]) {
    use crate::traffic::{ipv4_header_checksum, Load};
    let expected = load.expected();
    let n_in = load.frames.len() as u64;
    assert_eq!(report["accounting_ok"], true, "{report:#}");
    assert_eq!(report["pools_full"], true, "{report:#}");
    assert_eq!(report["received"].as_u64(), Some(n_in), "{report:#}");
    assert_eq!(report["transmitted"].as_u64(), Some(expected.len() as u64));
    let denied = load.frames.iter().filter(|f| Load::denied(f)).count() as u64;
    let nfs = report["nfs"].as_array().expect("nfs");
    let fw = nfs.iter().find(|n| n["name"] == "fw1").expect("fw1");
    let l3 = nfs.iter().find(|n| n["name"] == "l3").expect("l3");
    assert_eq!(fw["delivered"].as_u64(), Some(n_in));
    assert_eq!(
        fw["verdicts"][3].as_u64(),
        Some(denied),
        "firewall drops {fw:#}"
    );
    assert_eq!(l3["delivered"].as_u64(), Some(n_in - denied));
    assert_eq!(l3["verdicts"][2].as_u64(), Some(expected.len() as u64));
    assert_eq!(
        report["drops"]["nf_verdict_drop"].as_u64(),
        Some(n_in - expected.len() as u64),
        "{report:#}"
    );
    assert_eq!(output.len(), expected.len(), "output packet count");
    for (i, (g, e)) in output.iter().zip(&expected).enumerate() {
        assert_eq!(g, e, "packet {i} differs");
        let ihl = usize::from(g[14] & 0x0f) * 4;
        assert_eq!(
            u16::from_be_bytes([g[24], g[25]]),
            ipv4_header_checksum(&g[14..14 + ihl]),
            "packet {i} checksum"
        );
    }
}

impl Drop for ManagedRun {
    /// Stops the manager the way Ctrl-C does and gives it time to stop its guests (the
    /// `Proc`'s own drop would SIGKILL it after 3 s; its QEMUs would then die of
    /// `PR_SET_PDEATHSIG`, but without an orderly teardown).
    fn drop(&mut self) {
        if self.manager.running() {
            self.manager.signal(libc::SIGTERM);
            let _ = self.manager.wait_timeout(Duration::from_secs(90));
        }
    }
}
