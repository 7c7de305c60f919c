//! EAL initialisation: once per process, from an argument builder.

use std::ffi::{c_char, c_int, CString};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use crate::sys;

/// Errors from [`EalBuilder::init`].
#[derive(Debug, thiserror::Error)]
pub enum EalError {
    /// DPDK allows one EAL per process.
    #[error("the EAL is already initialised in this process (DPDK allows one EAL per process)")]
    AlreadyInitialized,
    /// Hugepage memory was asked for but none is usable.
    #[error(
        "no usable hugepages: {detail}; reserve and mount them (as root: scripts/setup.sh, or \
         `netvm-hugepages reserve --count 1024 && netvm-hugepages mount`), or run with no_huge"
    )]
    NoHugepages {
        /// What was found missing.
        detail: String,
    },
    /// An argument contained a NUL byte.
    #[error("EAL argument {arg:?} contains a NUL byte")]
    NulInArgument {
        /// The offending argument.
        arg: String,
    },
    /// `rte_eal_init` rejected the arguments or failed.
    #[error("rte_eal_init failed with {args:?}: {message} (rte_errno {errno})")]
    InitFailed {
        /// The argument vector passed.
        args: Vec<String>,
        /// rte_errno after the call.
        errno: i32,
        /// DPDK's message for `errno`.
        message: String,
    },
}

/// Builds the EAL argument vector.
///
/// Defaults: `--in-memory`, a unique `--file-prefix`, `--no-pci` (unless a PCI device is
/// allowed with [`EalBuilder::allow_pci`]), log level `warning` (override with the
/// `NETVM_DPDK_LOG` environment variable, e.g. `NETVM_DPDK_LOG=debug`).
#[derive(Debug, Clone)]
pub struct EalBuilder {
    program: String,
    lcores: Option<String>,
    lcore_map: Option<String>,
    main_lcore: Option<u32>,
    no_huge_mb: Option<u32>,
    file_prefix: Option<String>,
    pci_allow: Vec<String>,
    vdevs: Vec<String>,
    extra: Vec<String>,
    iova_va: bool,
    huge_dir: Option<String>,
}

static INITIALIZED: AtomicBool = AtomicBool::new(false);
static PREFIX_SEQ: AtomicU32 = AtomicU32::new(0);

impl Default for EalBuilder {
    fn default() -> Self {
        Self::new("netvm")
    }
}

impl EalBuilder {
    /// A builder with the defaults; `program` becomes argv\[0\].
    pub fn new(program: &str) -> Self {
        Self {
            program: program.to_owned(),
            lcores: None,
            lcore_map: None,
            main_lcore: None,
            no_huge_mb: None,
            file_prefix: None,
            pci_allow: Vec::new(),
            vdevs: Vec::new(),
            extra: Vec::new(),
            iova_va: true,
            huge_dir: None,
        }
    }

    /// `-l <list>`: the CPUs the EAL may use; the calling thread is pinned to the first (the
    /// main lcore). Example: `"0"` or `"0-1"`.
    pub fn lcores(mut self, list: &str) -> Self {
        self.lcores = Some(list.to_owned());
        self
    }

    /// `--lcores 0@C0,1@C1,…`: lcore *i* runs pinned to CPU `cpus[i]`; lcore 0 (the calling
    /// thread) is the main lcore. Launch code on the others with [`Eal::launch`].
    pub fn lcore_cpus(mut self, cpus: &[usize]) -> Self {
        let map: Vec<String> = cpus
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{i}@{c}"))
            .collect();
        self.lcore_map = Some(map.join(","));
        self.main_lcore = Some(0);
        self
    }

    /// `--main-lcore`.
    pub fn main_lcore(mut self, lcore: u32) -> Self {
        self.main_lcore = Some(lcore);
        self
    }

    /// Run without hugepages (`--no-huge -m <mb>`), for machines that have none.
    pub fn no_huge(mut self, mb: u32) -> Self {
        self.no_huge_mb = Some(mb);
        self
    }

    /// Use hugepages if the machine has usable ones, else fall back to `--no-huge -m <mb>`.
    /// Returns the builder and whether it fell back (callers say so in their output).
    pub fn huge_or_fallback(self, mb: u32) -> (Self, bool) {
        match hugepages_usable() {
            Ok(()) => (self, false),
            Err(_) => (self.no_huge(mb), true),
        }
    }

    /// `--huge-dir`: the hugetlbfs mount to take hugepages from. It must be a hugetlbfs mount
    /// ([`EalBuilder::init`] checks, and fails with [`EalError::NoHugepages`] otherwise).
    pub fn huge_dir(mut self, dir: &str) -> Self {
        self.huge_dir = Some(dir.to_owned());
        self
    }

    /// `--file-prefix` (default: `netvm-<pid>-<n>`).
    pub fn file_prefix(mut self, prefix: &str) -> Self {
        self.file_prefix = Some(prefix.to_owned());
        self
    }

    /// Allow (and probe) a PCI device at init (`-a <addr>`); without any, `--no-pci`.
    pub fn allow_pci(mut self, addr: &str) -> Self {
        self.pci_allow.push(addr.to_owned());
        self
    }

    /// `--vdev <devargs>` at init (ports can also be probed later with [`crate::Port::open`]).
    pub fn vdev(mut self, devargs: &str) -> Self {
        self.vdevs.push(devargs.to_owned());
        self
    }

    /// Any other EAL argument, passed as is.
    pub fn arg(mut self, arg: &str) -> Self {
        self.extra.push(arg.to_owned());
        self
    }

    /// The argument vector this builder produces (argv\[0\] included).
    pub fn args(&self) -> Vec<String> {
        let mut a = vec![self.program.clone()];
        if let Some(l) = &self.lcores {
            a.push("-l".into());
            a.push(l.clone());
        }
        if let Some(l) = &self.lcore_map {
            a.push("--lcores".into());
            a.push(l.clone());
        }
        if let Some(m) = self.main_lcore {
            a.push(format!("--main-lcore={m}"));
        }
        // DPDK 22.11 treats --no-huge as legacy memory, which it refuses together with
        // --in-memory; without hugepages there are no hugepage files to keep off the
        // filesystem anyway, and --no-shconf keeps the shared config off it.
        let no_huge = self.no_huge_mb.is_some() || self.extra.iter().any(|x| x == "--no-huge");
        a.push(
            if no_huge {
                "--no-shconf"
            } else {
                "--in-memory"
            }
            .into(),
        );
        a.push("--no-telemetry".into());
        let prefix = self.file_prefix.clone().unwrap_or_else(|| {
            format!(
                "netvm-{}-{}",
                std::process::id(),
                PREFIX_SEQ.fetch_add(1, Ordering::Relaxed)
            )
        });
        a.push(format!("--file-prefix={prefix}"));
        if let Some(mb) = self.no_huge_mb {
            a.push("--no-huge".into());
            a.push("-m".into());
            a.push(mb.to_string());
        }
        if self.pci_allow.is_empty() {
            a.push("--no-pci".into());
        } else {
            for p in &self.pci_allow {
                a.push("-a".into());
                a.push(p.clone());
            }
        }
        for v in &self.vdevs {
            a.push("--vdev".into());
            a.push(v.clone());
        }
        if let Some(d) = &self.huge_dir {
            a.push(format!("--huge-dir={d}"));
        }
        if self.iova_va {
            a.push("--iova-mode=va".into());
        }
        let level = std::env::var("NETVM_DPDK_LOG").unwrap_or_else(|_| "warning".into());
        a.push(format!("--log-level={level}"));
        a.extend(self.extra.iter().cloned());
        a
    }

    /// Initialises the EAL. Fails with a typed error (never aborts) on bad arguments, a
    /// second initialisation, or missing hugepages.
    pub fn init(self) -> Result<Eal, EalError> {
        if self.no_huge_mb.is_none() && !self.extra.iter().any(|a| a == "--no-huge") {
            hugepages_usable_at(
                Path::new("/proc/meminfo"),
                Path::new("/proc/mounts"),
                self.huge_dir.as_deref().map(Path::new),
            )
            .map_err(|detail| EalError::NoHugepages { detail })?;
        }
        let args = self.args();
        if INITIALIZED.swap(true, Ordering::SeqCst) {
            return Err(EalError::AlreadyInitialized);
        }
        let cargs: Vec<CString> = match args
            .iter()
            .map(|a| CString::new(a.as_str()).map_err(|_| a.clone()))
            .collect::<Result<_, _>>()
        {
            Ok(c) => c,
            Err(arg) => {
                INITIALIZED.store(false, Ordering::SeqCst);
                return Err(EalError::NulInArgument { arg });
            }
        };
        // rte_eal_init may permute argv; give it a private array of pointers.
        let mut argv: Vec<*mut c_char> = cargs.iter().map(|c| c.as_ptr().cast_mut()).collect();
        let argc = c_int::try_from(argv.len()).unwrap_or(c_int::MAX);
        // SAFETY: argv holds argc valid NUL-terminated strings that outlive the call (cargs
        // lives until the end of this function; DPDK copies what it keeps). INITIALIZED
        // guarantees this is the only call in the process.
        let ret = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if ret < 0 {
            let errno = crate::rte_errno();
            // DPDK clears its run-once flag on most failures; allow a corrected retry.
            INITIALIZED.store(false, Ordering::SeqCst);
            // It may have created its runtime directory before failing.
            if let Some(p) = args.iter().find_map(|a| a.strip_prefix("--file-prefix=")) {
                if !p.is_empty() && !p.contains('/') {
                    let _ = std::fs::remove_dir_all(Path::new("/var/run/dpdk").join(p));
                }
            }
            return Err(EalError::InitFailed {
                args,
                errno,
                message: crate::strerror(errno),
            });
        }
        let prefix = args
            .iter()
            .find_map(|a| a.strip_prefix("--file-prefix="))
            .unwrap_or_default()
            .to_owned();
        Ok(Eal {
            inner: Arc::new(EalInner {
                prefix,
                no_huge: self.no_huge_mb.is_some(),
            }),
        })
    }
}

/// Checks that hugepages can back DPDK memory: a hugetlbfs mount and free pages.
fn hugepages_usable() -> Result<(), String> {
    hugepages_usable_at(Path::new("/proc/meminfo"), Path::new("/proc/mounts"), None)
}

/// [`hugepages_usable`] over given meminfo/mounts files; with `dir`, that directory must be a
/// hugetlbfs mount point.
fn hugepages_usable_at(meminfo: &Path, mounts: &Path, dir: Option<&Path>) -> Result<(), String> {
    let mounts_path = mounts;
    let meminfo =
        std::fs::read_to_string(meminfo).map_err(|e| format!("{}: {e}", meminfo.display()))?;
    let free = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("HugePages_Free:"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    if free == 0 {
        return Err("HugePages_Free is 0 in /proc/meminfo".into());
    }
    let mounts = std::fs::read_to_string(mounts_path)
        .map_err(|e| format!("{}: {e}", mounts_path.display()))?;
    let mut huge = mounts.lines().filter_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(2) == Some(&"hugetlbfs")).then(|| f.get(1).copied().unwrap_or_default())
    });
    match dir {
        None if huge.next().is_none() => {
            Err(format!("no hugetlbfs mount in {}", mounts_path.display()))
        }
        Some(d) if !huge.any(|m| Path::new(m) == d) => {
            Err(format!("{} is not a hugetlbfs mount point", d.display()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(
        meminfo: &str,
        mounts: &str,
    ) -> (tempdir::Dir, std::path::PathBuf, std::path::PathBuf) {
        let d = tempdir::Dir::new();
        let (m, p) = (d.0.join("meminfo"), d.0.join("mounts"));
        std::fs::write(&m, meminfo).unwrap();
        std::fs::write(&p, mounts).unwrap();
        (d, m, p)
    }

    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Self {
                static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
                let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let p =
                    std::env::temp_dir().join(format!("netvm-eal-ut-{}-{n}", std::process::id()));
                std::fs::create_dir_all(&p).unwrap();
                Self(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    const MOUNTED: &str =
        "nodev /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0\n/dev/vda / ext4 rw 0 0\n";

    #[test]
    fn hugepage_check() {
        let (_d, m, p) = files("HugePages_Total: 16\nHugePages_Free: 16\n", MOUNTED);
        assert!(hugepages_usable_at(&m, &p, None).is_ok());
        assert!(hugepages_usable_at(&m, &p, Some(Path::new("/dev/hugepages"))).is_ok());
        let e = hugepages_usable_at(&m, &p, Some(Path::new("/mnt/huge"))).unwrap_err();
        assert!(e.contains("not a hugetlbfs mount"), "{e}");

        let (_d, m, p) = files("HugePages_Free: 0\n", MOUNTED);
        assert!(hugepages_usable_at(&m, &p, None)
            .unwrap_err()
            .contains("HugePages_Free is 0"));

        let (_d, m, p) = files("HugePages_Free: 8\n", "/dev/vda / ext4 rw 0 0\n");
        assert!(hugepages_usable_at(&m, &p, None)
            .unwrap_err()
            .contains("no hugetlbfs mount"));
    }

    #[test]
    fn default_args() {
        let a = EalBuilder::new("x").lcores("0").no_huge(64).args();
        for want in ["--no-shconf", "--no-pci", "--no-huge", "--iova-mode=va"] {
            assert!(a.iter().any(|x| x == want), "{want} missing from {a:?}");
        }
        // DPDK refuses --no-huge (legacy memory) with --in-memory.
        assert!(!a.iter().any(|x| x == "--in-memory"), "{a:?}");
        let a = EalBuilder::new("x").lcores("0").args();
        assert!(a.iter().any(|x| x == "--in-memory"), "{a:?}");
        assert!(a.iter().any(|x| x.starts_with("--file-prefix=netvm-")));
        let a = EalBuilder::new("x").allow_pci("0000:01:00.0").args();
        assert!(!a.iter().any(|x| x == "--no-pci"));
    }
}

#[derive(Debug)]
struct EalInner {
    prefix: String,
    no_huge: bool,
}

impl Drop for EalInner {
    fn drop(&mut self) {
        // SAFETY: the last handle is going away; every Port and Mempool holds an Eal clone, so
        // none is alive. rte_eal_cleanup is called at most once per process (INITIALIZED is
        // left set: DPDK does not support a second init after cleanup).
        unsafe {
            sys::rte_eal_cleanup();
        }
        // The runtime directory DPDK creates even with --in-memory.
        let dir = Path::new("/var/run/dpdk").join(&self.prefix);
        if !self.prefix.is_empty() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// How DPDK addresses memory for devices (`rte_eal_iova_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IovaMode {
    /// IOVA = virtual address (`--iova-mode=va`, the [`EalBuilder`] default). A PCI device then
    /// needs an IOMMU (vfio-pci) mapping of every region it DMAs into.
    Va,
    /// IOVA = physical address (`--iova-mode=pa`).
    Pa,
    /// A value this crate does not know (DPDK's `RTE_IOVA_DC` is never the mode after init).
    Unknown(u32),
}

/// A handle on the process's initialised EAL. Cheap to clone; the EAL is cleaned up (and its
/// runtime directory removed) when the last handle — including those inside ports and pools —
/// is dropped.
#[derive(Debug, Clone)]
pub struct Eal {
    inner: Arc<EalInner>,
}

impl Eal {
    /// The `--file-prefix` in use.
    pub fn file_prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// Whether the EAL runs without hugepages.
    pub fn no_huge(&self) -> bool {
        self.inner.no_huge
    }

    /// The IOVA mode the EAL settled on: what DPDK gives devices as the bus address of memory
    /// ([`IovaMode::Va`] unless `--iova-mode=pa` was passed, see [`EalBuilder::args`]).
    pub fn iova_mode(&self) -> IovaMode {
        // SAFETY: the EAL is initialised (self exists); reads a value fixed at init.
        let m = unsafe { sys::rte_eal_iova_mode() };
        if m == sys::rte_iova_mode_RTE_IOVA_PA {
            IovaMode::Pa
        } else if m == sys::rte_iova_mode_RTE_IOVA_VA {
            IovaMode::Va
        } else {
            // RTE_IOVA_DC ("don't care") only exists before init completes.
            IovaMode::Unknown(m)
        }
    }

    /// TSC frequency in Hz as DPDK measured it.
    pub fn tsc_hz(&self) -> u64 {
        // SAFETY: the EAL is initialised (self exists).
        unsafe { sys::rte_get_tsc_hz() }
    }

    /// NUMA socket of the calling thread.
    pub fn socket_id(&self) -> u32 {
        // SAFETY: the EAL is initialised; reads thread-local state.
        unsafe { sys::rte_socket_id() }
    }

    /// Number of lcores the EAL was given.
    pub fn lcore_count(&self) -> u32 {
        // SAFETY: the EAL is initialised.
        unsafe { sys::rte_lcore_count() }
    }
}

/// Code running on an EAL worker lcore ([`Eal::launch`]); [`Launched::join`] waits for it.
#[derive(Debug)]
pub struct Launched<T> {
    lcore: u32,
    result: std::sync::Arc<std::sync::Mutex<Option<T>>>,
}

impl<T> Launched<T> {
    /// The lcore it runs on.
    pub fn lcore(&self) -> u32 {
        self.lcore
    }

    /// Waits until the function returns; `None` if it panicked.
    pub fn join(self) -> Option<T> {
        // SAFETY: waits for the lcore this handle launched on (a valid worker lcore id).
        unsafe { sys::rte_eal_wait_lcore(self.lcore) };
        self.result
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

type Job = Box<dyn FnOnce() + Send>;

extern "C" fn run_job(arg: *mut std::ffi::c_void) -> std::ffi::c_int {
    // SAFETY: `arg` is the `Box<Job>` that `Eal::launch` leaked for exactly this call.
    let job: Box<Job> = unsafe { Box::from_raw(arg.cast::<Job>()) };
    // A panic must not unwind into DPDK's C frames.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)) {
        Ok(()) => 0,
        Err(_) => -1,
    }
}

impl Eal {
    /// Runs `f` on worker lcore `lcore` (pinned by the EAL to its CPU, see
    /// [`EalBuilder::lcore_cpus`]).
    pub fn launch<T, F>(&self, lcore: u32, f: F) -> Result<Launched<T>, EalError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let result = std::sync::Arc::new(std::sync::Mutex::new(None));
        let slot = std::sync::Arc::clone(&result);
        let job: Job = Box::new(move || {
            let v = f();
            *slot
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(v);
        });
        let arg = Box::into_raw(Box::new(job));
        // SAFETY: run_job takes back the box exactly once if the launch succeeds.
        let ret = unsafe { sys::rte_eal_remote_launch(Some(run_job), arg.cast(), lcore) };
        if ret != 0 {
            // SAFETY: not launched: the box is still ours.
            drop(unsafe { Box::from_raw(arg) });
            return Err(EalError::InitFailed {
                args: vec![format!("rte_eal_remote_launch(lcore {lcore})")],
                errno: -ret,
                message: crate::strerror(-ret),
            });
        }
        Ok(Launched { lcore, result })
    }

    /// The CPU lcore `lcore` is pinned to (`None`: not an EAL lcore).
    pub fn lcore_cpu(&self, lcore: u32) -> Option<u32> {
        // SAFETY: plain query; returns RTE_MAX_LCORE-ish garbage for an unknown id, which is
        // bounded by the lcore count check first.
        (lcore < self.lcore_count())
            .then(|| unsafe { sys::rte_lcore_to_cpu_id(lcore as i32) })
            .and_then(|c| u32::try_from(c).ok())
    }
}

/// Registers the calling (non-EAL) thread with DPDK so it gets an lcore id and per-lcore
/// mempool caches. Returns the lcore id. Call [`unregister_thread`] before the thread exits.
pub fn register_thread(_eal: &Eal) -> Result<u32, EalError> {
    // SAFETY: the EAL is initialised (an Eal exists); registers the current thread only.
    let ret = unsafe { sys::rte_thread_register() };
    if ret != 0 {
        let errno = crate::rte_errno();
        return Err(EalError::InitFailed {
            args: vec!["rte_thread_register".into()],
            errno,
            message: crate::strerror(errno),
        });
    }
    // SAFETY: reads the calling thread's lcore id.
    Ok(unsafe { sys::netvm_rte_lcore_id() })
}

/// Undoes [`register_thread`] for the calling thread.
pub fn unregister_thread() {
    // SAFETY: only releases the calling thread's lcore id (a no-op for unregistered threads).
    unsafe { sys::rte_thread_unregister() }
}
