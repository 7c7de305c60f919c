//! Helpers for netvm-manager's tests: run the binary, scratch directories, and the checks
//! that nothing was left behind (processes, region files, sockets, hugepages).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The netvm-manager binary under test.
pub fn manager() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_netvm-manager"))
}

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Panics with the fix unless the workspace binaries the manager starts are built next to it.
pub fn require_built(names: &[&str]) {
    let dir = manager().parent().expect("target dir").to_path_buf();
    for n in names {
        let p = dir.join(n);
        assert!(
            p.exists(),
            "{} is not built: run `cargo build --workspace` first (scripts/test.sh does)",
            p.display()
        );
    }
}

/// Runs `netvm-manager args…` to completion.
pub fn run(args: &[&str]) -> Output {
    Command::new(manager())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run netvm-manager")
}

/// stdout and stderr as text.
pub fn texts(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A scratch directory removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// A new empty directory under the temp dir.
    pub fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!(
            "netvm-manager-test-{tag}-{}-{}",
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

    /// A unique instance name for this scratch dir.
    pub fn name(&self) -> String {
        let n = self.0.file_name().unwrap().to_string_lossy().into_owned();
        n.trim_start_matches("netvm-manager-test-")
            .chars()
            .take(32)
            .collect()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A netvm-manager process started by a test; on drop (also when the test panics) it gets
/// SIGTERM — on which it tears down everything it started — then SIGKILL if it lingers.
pub struct ManagerProc {
    pub child: Option<Child>,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

impl ManagerProc {
    /// Starts `netvm-manager args…`, output to files in `dir`.
    pub fn spawn(args: &[&str], dir: &Scratch) -> Self {
        let stdout = dir.path("manager.out");
        let stderr = dir.path("manager.err");
        let child = Command::new(manager())
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("spawn netvm-manager");
        Self {
            child: Some(child),
            stdout,
            stderr,
        }
    }

    /// Waits up to `timeout` for its exit code.
    pub fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let end = Instant::now() + timeout;
        let c = self.child.as_mut()?;
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                self.child = None;
                return st.code();
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Output so far.
    pub fn output(&self) -> (String, String) {
        (
            std::fs::read_to_string(&self.stdout).unwrap_or_default(),
            std::fs::read_to_string(&self.stderr).unwrap_or_default(),
        )
    }
}

impl Drop for ManagerProc {
    fn drop(&mut self) {
        if let Some(c) = &self.child {
            if let Ok(pid) = libc::pid_t::try_from(c.id()) {
                // SAFETY: signalling our own unreaped child by pid.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            if self.wait(Duration::from_secs(60)).is_none() {
                if let Some(c) = self.child.as_mut() {
                    let _ = c.kill();
                    let _ = c.wait();
                }
            }
        }
    }
}

/// Pids the manager reported starting (`netvm-core started: pid N`, `NF x (…) started: pid N`),
/// with the process name to expect.
pub fn started_pids(stderr: &str) -> Vec<(String, u32)> {
    stderr
        .lines()
        .filter_map(|l| {
            let l = l.strip_prefix("netvm-manager: ")?;
            let (what, rest) = l.split_once(" started: pid ")?;
            let pid: u32 = rest
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()?;
            Some((what.to_string(), pid))
        })
        .collect()
}

/// The core's pid from the manager's output.
pub fn core_pid(stderr: &str) -> u32 {
    started_pids(stderr)
        .into_iter()
        .find(|(w, _)| w == "netvm-core")
        .map(|(_, p)| p)
        .unwrap_or_else(|| panic!("no core pid in:\n{stderr}"))
}

/// Asserts none of the processes the manager started still runs.
pub fn assert_no_processes(stderr: &str) {
    for (what, pid) in started_pids(stderr) {
        // A zombie of ours is gone; a recycled pid would name another program.
        let alive = netvm_shm::proc::pid_alive(pid)
            && std::fs::read_to_string(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                ["netvm", "firewall", "l3fwd", "sleep"]
                    .iter()
                    .any(|n| c.contains(n))
            });
        assert!(!alive, "{what} (pid {pid}) still runs:\n{stderr}");
    }
}

/// Region files of core `pid` in /dev/hugepages and /dev/shm.
pub fn region_files_of(pid: u32) -> Vec<PathBuf> {
    let suffix = format!(".{pid}.region");
    ["/dev/hugepages", "/dev/shm"]
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flat_map(|rd| rd.filter_map(Result::ok))
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("netvm-") && n.ends_with(&suffix))
        })
        .collect()
}

/// `nr_hugepages` of the default 2 MiB pool (None without hugetlb).
pub fn nr_hugepages() -> Option<u64> {
    std::fs::read_to_string("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// `HugePages_Free` from /proc/meminfo.
pub fn free_hugepages() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("HugePages_Free:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Makes examples/demo.pcap (atomically, so concurrent tests never see half a file).
pub fn demo_pcap() {
    let out = root().join("examples/demo.pcap");
    let o = run(&["gen-pcap", out.to_str().unwrap()]);
    assert!(o.status.success(), "gen-pcap failed: {:?}", texts(&o));
}

/// Asserts everything an instance left is gone: its processes, its core's region files, its
/// control socket and state file.
pub fn assert_clean(stderr: &str, run_dir: &Path) {
    assert_no_processes(stderr);
    if started_pids(stderr).iter().any(|(w, _)| w == "netvm-core") {
        let pid = core_pid(stderr);
        let left = region_files_of(pid);
        assert!(left.is_empty(), "region files left: {left:?}\n{stderr}");
    }
    assert!(
        !run_dir.join("control.sock").exists(),
        "control socket left in {}",
        run_dir.display()
    );
    assert!(
        !run_dir.join("manager.json").exists(),
        "state file left in {}",
        run_dir.display()
    );
}

/// Calls `f` every 50 ms until it returns something, up to `timeout` (then fails naming `what`).
pub fn poll<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
