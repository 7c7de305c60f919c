//! NFs of kind `vm`: one QEMU guest per NF, seeing its domain's region as an ivshmem BAR.
//!
//! * **Image**: `scripts/build-guest.sh` builds the distro kernel (`vmlinuz`) and a
//!   busybox-static initramfs (`initramfs.cpio.gz`) holding the static NF binaries and a
//!   generated `/init`. The manager finds it with `--guest-image`, `NETVM_GUEST_IMAGE`, or
//!   next to its executable (`target/<profile>/../guest-image`).
//! * **Identity and arguments** go on the kernel command line: `netvm.nf=NAME` (read by
//!   netlib-guest), `netvm.prog=PROGRAM` and `netvm.args=A,B,…` (read by `/init`). Argument
//!   files that exist on the host (`--rules fw.rules`) are copied into a small per-VM cpio
//!   archive, appended to the image's initramfs, and the argument is rewritten to the guest
//!   path (`/netvm/0-fw.rules`).
//! * **Memory**: exactly one `memory-backend-file` (`share=on`, the region file, its exact
//!   size) and one `ivshmem-plain` device per domain the VM belongs to (an NF is in one
//!   domain), and nothing else of the host's memory; guest RAM is QEMU's private memory.
//! * **Accelerator**: KVM when it actually runs a guest here, TCG otherwise. `/dev/kvm` may
//!   open and even run trivial code while a Linux guest hangs (nested setups), so the probe
//!   boots the image's kernel under KVM and waits up to [`KVM_PROBE_TIMEOUT`] for its first
//!   console line. Once per manager process; `NETVM_ACCEL=kvm|tcg` skips the probe.
//! * **Console**: the guest's serial port is QEMU's stdout, i.e. the NF's log file
//!   (`nf-NAME.log` in the run directory).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use netvm_api::config::{Config, NfConfig};

use crate::error::{io, ManagerError};

/// The QEMU binary (override with `NETVM_QEMU`).
pub const QEMU: &str = "qemu-system-x86_64";
/// How long the KVM probe waits for the guest kernel's first console line.
pub const KVM_PROBE_TIMEOUT: Duration = Duration::from_secs(4);
/// Where a guest sees the per-VM files.
pub const GUEST_FILES_DIR: &str = "/netvm";
/// Largest region netvm gives a guest as a BAR (64 GiB: well inside the guest's 64-bit PCI
/// window with QEMU's default physical address bits).
pub const MAX_BAR: u64 = 64 << 30;

/// How QEMU runs guests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualisation.
    Kvm,
    /// QEMU's binary translator (functional, slow).
    Tcg,
}

impl Accel {
    /// QEMU's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// The guest image: kernel and base initramfs.
#[derive(Debug, Clone)]
pub struct GuestImage {
    /// The kernel.
    pub kernel: PathBuf,
    /// The base initramfs (gzip cpio, padded to 512 bytes).
    pub initrd: PathBuf,
}

impl GuestImage {
    /// Finds the image: `dir`, else `NETVM_GUEST_IMAGE`, else `guest-image` next to the
    /// executable's directory.
    pub fn locate(dir: Option<&Path>) -> Result<Self, ManagerError> {
        let dir = dir
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("NETVM_GUEST_IMAGE").map(PathBuf::from))
            .or_else(|| {
                crate::programs::exe_dir().and_then(|d| d.parent().map(|p| p.join("guest-image")))
            })
            .unwrap_or_else(|| PathBuf::from("target/guest-image"));
        let img = Self {
            kernel: dir.join("vmlinuz"),
            initrd: dir.join("initramfs.cpio.gz"),
        };
        if !img.kernel.is_file() || !img.initrd.is_file() {
            return Err(ManagerError::NoGuestImage { dir });
        }
        Ok(img)
    }
}

/// The QEMU binary to run.
pub fn qemu_binary() -> PathBuf {
    std::env::var_os("NETVM_QEMU").map_or_else(|| PathBuf::from(QEMU), PathBuf::from)
}

static ACCEL: OnceLock<(Accel, String)> = OnceLock::new();

/// The accelerator to use and why (probed once per process; see the module docs).
pub fn accel(kernel: &Path) -> (Accel, String) {
    ACCEL
        .get_or_init(|| match std::env::var("NETVM_ACCEL").as_deref() {
            Ok("kvm") => (Accel::Kvm, "NETVM_ACCEL=kvm".into()),
            Ok("tcg") => (Accel::Tcg, "NETVM_ACCEL=tcg".into()),
            _ => probe_kvm(kernel),
        })
        .clone()
}

fn probe_kvm(kernel: &Path) -> (Accel, String) {
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        return (Accel::Tcg, "/dev/kvm cannot be opened".into());
    }
    let log = std::env::temp_dir().join(format!("netvm-kvm-probe-{}.log", std::process::id()));
    let Ok(out) = std::fs::File::create(&log) else {
        return (Accel::Tcg, "cannot create the KVM probe's log".into());
    };
    let Ok(err) = out.try_clone() else {
        return (Accel::Tcg, "cannot create the KVM probe's log".into());
    };
    let child = Command::new(qemu_binary())
        .args(["-accel", "kvm", "-cpu", "host", "-m", "128", "-nodefaults"])
        .args(["-no-user-config", "-display", "none", "-monitor", "none"])
        .args(["-serial", "stdio", "-no-reboot", "-kernel"])
        .arg(kernel)
        .args([
            "-append",
            "console=ttyS0 earlyprintk=ttyS0 panic=-1 rdinit=/netvm-probe",
        ])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn();
    let Ok(mut child) = child else {
        let _ = std::fs::remove_file(&log);
        return (
            Accel::Tcg,
            "QEMU could not be started for the KVM probe".into(),
        );
    };
    let t0 = Instant::now();
    let verdict = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("Linux version") {
            break (
                Accel::Kvm,
                format!("KVM booted a kernel in {:.1} s", t0.elapsed().as_secs_f64()),
            );
        }
        if let Ok(Some(st)) = child.try_wait() {
            let last = text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            break (
                Accel::Tcg,
                format!("QEMU with -accel kvm -cpu host failed ({st}): {last}"),
            );
        }
        if t0.elapsed() >= KVM_PROBE_TIMEOUT {
            break (
                Accel::Tcg,
                format!(
                    "/dev/kvm opens but a KVM guest printed nothing in {} s",
                    KVM_PROBE_TIMEOUT.as_secs()
                ),
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Our own child: kill and reap it.
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_file(&log);
    verdict
}

/// Why `size` cannot be a guest's BAR (`None`: it can).
pub fn bar_size_problem(size: u64) -> Option<String> {
    if !size.is_power_of_two() {
        Some(format!(
            "its region is {size} bytes, not a power of two: an ivshmem BAR must be"
        ))
    } else if size > MAX_BAR {
        Some(format!(
            "its region is {} MiB, more than the {} MiB a guest BAR may be",
            size >> 20,
            MAX_BAR >> 20
        ))
    } else {
        None
    }
}

/// Why an argument cannot travel on the kernel command line (`None`: it can).
pub fn arg_problem(a: &str) -> Option<&'static str> {
    if a.is_empty() {
        Some("is empty")
    } else if a.contains(',') {
        Some("contains ',' (the separator of netvm.args)")
    } else if a
        .chars()
        .any(|c| c.is_whitespace() || c == '"' || c.is_control())
    {
        Some("contains white space, a quote or a control character")
    } else {
        None
    }
}

/// Appends one file to a newc cpio archive.
fn cpio_entry(out: &mut Vec<u8>, ino: u32, name: &str, mode: u32, data: &[u8]) {
    let namesize = name.len() + 1;
    let fields = [
        ino,
        mode,
        0,
        0,
        1,
        0,
        u32::try_from(data.len()).unwrap_or(u32::MAX),
        0,
        0,
        0,
        0,
        u32::try_from(namesize).unwrap_or(u32::MAX),
        0,
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    while out.len() % 4 != 0 {
        out.push(0);
    }
    out.extend_from_slice(data);
    while out.len() % 4 != 0 {
        out.push(0);
    }
}

/// A newc cpio archive of `files` (guest path without the leading `/`, contents).
pub fn cpio(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, (name, data)) in files.iter().enumerate() {
        cpio_entry(
            &mut out,
            u32::try_from(k + 1).unwrap_or(u32::MAX),
            name,
            0o100_644,
            data,
        );
    }
    cpio_entry(&mut out, 0, "TRAILER!!!", 0, &[]);
    while out.len() % 512 != 0 {
        out.push(0);
    }
    out
}

/// Files for a guest: (path inside the guest without the leading `/`, contents).
pub type GuestFiles = Vec<(String, Vec<u8>)>;

/// The guest's arguments: every argument naming an existing file (relative to `dir`) becomes
/// a guest path under [`GUEST_FILES_DIR`], and the file goes into the returned list.
pub fn guest_args(args: &[String], dir: &Path) -> Result<(Vec<String>, GuestFiles), String> {
    let mut out = Vec::with_capacity(args.len());
    let mut files = Vec::new();
    for (j, a) in args.iter().enumerate() {
        let host = dir.join(a);
        let a = if !a.starts_with('-') && host.is_file() {
            let base = host
                .file_name()
                .map(|b| b.to_string_lossy().into_owned())
                .unwrap_or_default();
            let base: String = base
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            let name = format!("{}/{j}-{base}", &GUEST_FILES_DIR[1..]);
            let data = std::fs::read(&host)
                .map_err(|e| format!("args[{j}]: cannot read {}: {e}", host.display()))?;
            files.push((name.clone(), data));
            format!("/{name}")
        } else {
            a.clone()
        };
        if let Some(why) = arg_problem(&a) {
            return Err(format!("args[{j}] {a:?} {why}"));
        }
        out.push(a);
    }
    Ok((out, files))
}

/// What one guest is given.
#[derive(Debug, Clone)]
pub struct GuestSpec<'a> {
    /// The NF.
    pub nf: &'a NfConfig,
    /// Program in the image (`netvm.prog`).
    pub program: &'a str,
    /// Region file of the NF's domain.
    pub region: &'a Path,
    /// Its size in bytes.
    pub region_size: u64,
    /// The NF's own control region file (slot and rings).
    pub control: &'a Path,
    /// Its size in bytes.
    pub control_size: u64,
    /// The config file's directory (relative argument files).
    pub dir: &'a Path,
    /// Where to write the per-VM initramfs.
    pub run_dir: &'a Path,
}

/// Writes the per-VM initramfs (image + argument files) and returns QEMU's arguments.
pub fn qemu_args(
    img: &GuestImage,
    accel: Accel,
    g: &GuestSpec<'_>,
) -> Result<Vec<String>, ManagerError> {
    let (args, files) = guest_args(&g.nf.args, g.dir).map_err(|reason| ManagerError::Guest {
        nf: g.nf.name.clone(),
        reason,
    })?;
    for size in [g.region_size, g.control_size] {
        if let Some(why) = bar_size_problem(size) {
            return Err(ManagerError::Guest {
                nf: g.nf.name.clone(),
                reason: why,
            });
        }
    }
    let initrd = g.run_dir.join(format!("vm-{}.initrd", g.nf.name));
    let mut base =
        std::fs::read(&img.initrd).map_err(io(format!("reading {}", img.initrd.display())))?;
    if !files.is_empty() {
        base.extend_from_slice(&cpio(&files));
    }
    std::fs::File::create(&initrd)
        .and_then(|mut f| f.write_all(&base))
        .map_err(io(format!("writing {}", initrd.display())))?;
    let vm = g.nf.vm.clone().unwrap_or(netvm_api::config::VmConfig {
        memory_mb: 256,
        vcpus: 1,
    });
    // The two ivshmem devices sit at fixed PCI slots, named on the command line so that the
    // guest's netlib tells the domain region's BAR from its own control region's.
    let mut cmdline = format!(
        "console=ttyS0 quiet panic=-1 netvm.nf={} netvm.prog={} netvm.bar={BAR_BDF} netvm.ctl={CTL_BDF}",
        g.nf.name, g.program
    );
    if !args.is_empty() {
        cmdline.push_str(&format!(" netvm.args={}", args.join(",")));
    }
    let id = format!("netvm-{}", g.nf.domain);
    let ctl_id = format!("netvm-ctl-{}", g.nf.name);
    let mut a = qemu_base_args(
        accel,
        &g.nf.name,
        &vm.memory_mb.to_string(),
        vm.vcpus,
        &img.kernel,
        &initrd,
        cmdline,
    );
    a.extend([
        "-object".into(),
        format!(
            "memory-backend-file,id={id},mem-path={},size={},share=on",
            g.region.display(),
            g.region_size
        ),
        "-device".into(),
        format!("ivshmem-plain,memdev={id},addr={BAR_SLOT:#x}"),
        "-object".into(),
        format!(
            "memory-backend-file,id={ctl_id},mem-path={},size={},share=on",
            g.control.display(),
            g.control_size
        ),
        "-device".into(),
        format!("ivshmem-plain,memdev={ctl_id},addr={CTL_SLOT:#x}"),
    ]);
    Ok(a)
}

/// PCI slot of the ivshmem device that shows the domain region (packet buffers).
pub const BAR_SLOT: u8 = 4;
/// PCI slot of the ivshmem device that shows the NF's control region.
pub const CTL_SLOT: u8 = 5;
/// Their addresses in the guest, as `netvm.bar=` and `netvm.ctl=` name them.
const BAR_BDF: &str = "0000:00:04.0";
const CTL_BDF: &str = "0000:00:05.0";
const _: () = assert!(BAR_SLOT == 4 && CTL_SLOT == 5);

/// The size of a region file the core made (the file's length).
pub fn region_file_size(region: &Path) -> Result<u64, ManagerError> {
    std::fs::metadata(region)
        .map(|m| m.len())
        .map_err(io(format!("reading the size of {}", region.display())))
}

/// Config checks for VM NFs (used by `check`): BAR size, program name, arguments.
pub fn check_vm_nf(cfg: &Config, dir: &Path, i: usize) -> Result<(), (String, String)> {
    let n = &cfg.nfs[i];
    let Some(p) = &n.program else {
        return Err((
            format!("nfs[{i}].program"),
            "a VM NF needs a program (the name of an NF binary in the guest image)".into(),
        ));
    };
    if p.is_empty() || p.contains('/') || arg_problem(p).is_some() {
        return Err((
            format!("nfs[{i}].program"),
            format!("{p:?} must be a bare program name in the guest image (e.g. \"firewall\")"),
        ));
    }
    if let Some(why) = arg_problem(&n.name) {
        return Err((format!("nfs[{i}].name"), format!("a VM NF's name {why}")));
    }
    guest_args(&n.args, dir).map_err(|r| (format!("nfs[{i}].args"), r))?;
    if let Some(d) = cfg.domains.iter().position(|d| d.name == n.domain) {
        if let Ok(size) = crate::hugepages::region_size(cfg, d) {
            if let Some(why) = bar_size_problem(size) {
                return Err((
                    format!("domains[{d}]"),
                    format!("VM NF {:?}: {why}", n.name),
                ));
            }
        }
    }
    Ok(())
}

/// The QEMU arguments every netvm guest starts with: accelerator, name, memory (`mem`, as
/// `-m` takes it), vCPUs, no default devices, serial console on stdio, direct kernel boot of
/// `kernel` with `initrd` and command line `append`.
pub(crate) fn qemu_base_args(
    accel: Accel,
    nf_name: &str,
    mem: &str,
    vcpus: u32,
    kernel: &std::path::Path,
    initrd: &std::path::Path,
    append: String,
) -> Vec<String> {
    let mut a: Vec<String> = vec!["-accel".into(), accel.name().into()];
    if accel == Accel::Kvm {
        a.extend(["-cpu".into(), "host".into()]);
    }
    a.extend([
        "-name".into(),
        format!("netvm-{nf_name}"),
        "-m".into(),
        mem.to_owned(),
        "-smp".into(),
        vcpus.to_string(),
        "-nodefaults".into(),
        "-no-user-config".into(),
        "-display".into(),
        "none".into(),
        "-monitor".into(),
        "none".into(),
        "-serial".into(),
        "stdio".into(),
        "-no-reboot".into(),
        "-kernel".into(),
        kernel.display().to_string(),
        "-initrd".into(),
        initrd.display().to_string(),
        "-append".into(),
        append,
    ]);
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_sizes() {
        assert_eq!(bar_size_problem(2 << 20), None);
        assert_eq!(bar_size_problem(1 << 30), None);
        assert!(bar_size_problem(3 << 20).unwrap().contains("power of two"));
        assert!(bar_size_problem(0).is_some());
        assert!(bar_size_problem(128 << 30).unwrap().contains("more than"));
    }

    #[test]
    fn args_and_files() {
        let dir = std::env::temp_dir().join(format!("netvm-vm-args-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("fw rules"), "x").unwrap();
        let (a, f) = guest_args(
            &["--rules".into(), "fw rules".into(), "--verbose".into()],
            &dir,
        )
        .unwrap();
        assert_eq!(a, ["--rules", "/netvm/1-fw_rules", "--verbose"]);
        assert_eq!(f, [("netvm/1-fw_rules".to_string(), b"x".to_vec())]);
        assert!(guest_args(&["a,b".into()], &dir).is_err());
        assert!(guest_args(&["a b".into()], &dir).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn cpio_is_newc() {
        let c = cpio(&[("netvm/a".into(), b"hello".to_vec())]);
        assert_eq!(&c[..6], b"070701");
        assert_eq!(c.len() % 512, 0);
        // Header (110) + "netvm/a\0" (8) = 118 → padded to 120; data at 120.
        assert_eq!(&c[110..117], b"netvm/a");
        assert_eq!(&c[120..125], b"hello");
        let t = c.windows(10).position(|w| w == b"TRAILER!!!").unwrap();
        assert_eq!(&c[t - 110..t - 104], b"070701");
    }
}
