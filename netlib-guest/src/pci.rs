//! Finding the region inside a QEMU guest: the ivshmem device's BAR2, through sysfs.
//!
//! QEMU exposes a domain's region file as an `ivshmem-plain` PCI device (vendor `0x1af4`,
//! device `0x1110`) whose BAR2 *is* the file: the same bytes the core and the host NFs map.
//! Linux lets user space map a memory BAR through `/sys/bus/pci/devices/<BDF>/resource2` once
//! the device is enabled (`echo 1 > enable`); no kernel driver is involved. The NF's identity
//! comes from the kernel command line (`netvm.nf=NAME`, written by the manager), so an NF
//! binary started with neither `--region` nor `--nf` in a guest finds both by itself.
//!
//! Nothing here runs on the hot path; everything is plain file I/O on sysfs and procfs.

use std::path::{Path, PathBuf};

use crate::error::NfError;

/// PCI vendor id of ivshmem (Red Hat, Inc.).
pub const IVSHMEM_VENDOR: u16 = 0x1af4;
/// PCI device id of ivshmem.
pub const IVSHMEM_DEVICE: u16 = 0x1110;
/// Where Linux lists PCI devices.
pub const SYSFS_PCI_DEVICES: &str = "/sys/bus/pci/devices";
/// The kernel command line.
pub const PROC_CMDLINE: &str = "/proc/cmdline";

/// The value of `key=value` on a kernel command line (`None` if absent). Double-quoted values
/// (`key="a b"`) are unquoted.
#[must_use]
pub fn cmdline_param(cmdline: &str, key: &str) -> Option<String> {
    let mut rest = cmdline.trim();
    while !rest.is_empty() {
        // One word, honouring double quotes as the kernel does.
        let mut in_q = false;
        let end = rest
            .char_indices()
            .find(|&(_, c)| {
                if c == '"' {
                    in_q = !in_q;
                }
                c.is_whitespace() && !in_q
            })
            .map_or(rest.len(), |(i, _)| i);
        let word = &rest[..end];
        rest = rest[end..].trim_start();
        if let Some((k, v)) = word.split_once('=') {
            if k == key {
                return Some(v.replace('"', ""));
            }
        }
    }
    None
}

/// `netvm.<key>` from this machine's kernel command line.
#[must_use]
pub fn kernel_param(key: &str) -> Option<String> {
    let text = std::fs::read_to_string(PROC_CMDLINE).ok()?;
    cmdline_param(&text, &format!("netvm.{key}"))
}

fn read_hex(p: &Path) -> Option<u16> {
    let t = std::fs::read_to_string(p).ok()?;
    u16::from_str_radix(t.trim().trim_start_matches("0x"), 16).ok()
}

/// The ivshmem devices under `devices` (a `/sys/bus/pci/devices`-like directory), sorted by
/// address.
pub fn ivshmem_devices(devices: &Path) -> Result<Vec<PathBuf>, NfError> {
    let rd = std::fs::read_dir(devices).map_err(|source| NfError::Discovery {
        what: format!("cannot list {}", devices.display()),
        source: Some(source),
    })?;
    let mut found: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|d| {
            read_hex(&d.join("vendor")) == Some(IVSHMEM_VENDOR)
                && read_hex(&d.join("device")) == Some(IVSHMEM_DEVICE)
        })
        .collect();
    found.sort();
    Ok(found)
}

/// Finds the region's BAR: the only ivshmem device under `devices`, or the one whose address
/// (file name, e.g. `0000:00:04.0`) is `want`. Enables the device (writes `1` to `enable`,
/// which lets the BAR be mapped) and returns its `resource2`.
pub fn find_region_bar(devices: &Path, want: Option<&str>) -> Result<PathBuf, NfError> {
    let all = ivshmem_devices(devices)?;
    let names = || {
        all.iter()
            .filter_map(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let dev = match want {
        Some(w) => all
            .iter()
            .find(|d| d.file_name().is_some_and(|n| n == w))
            .ok_or_else(|| NfError::Discovery {
                what: format!(
                    "no ivshmem device {w} under {} (found: {})",
                    devices.display(),
                    names()
                ),
                source: None,
            })?,
        None => match all.as_slice() {
            [one] => one,
            [] => {
                return Err(NfError::Discovery {
                    what: format!(
                        "no ivshmem device ({IVSHMEM_VENDOR:04x}:{IVSHMEM_DEVICE:04x}) under {}: \
                         is this a netvm guest?",
                        devices.display()
                    ),
                    source: None,
                })
            }
            _ => {
                return Err(NfError::Discovery {
                    what: format!(
                        "several ivshmem devices ({}): say which with netvm.bar=BDF",
                        names()
                    ),
                    source: None,
                })
            }
        },
    };
    let enable = dev.join("enable");
    std::fs::write(&enable, "1").map_err(|source| NfError::Discovery {
        what: format!("cannot enable {}", enable.display()),
        source: Some(source),
    })?;
    let bar = dev.join("resource2");
    if !bar.exists() {
        return Err(NfError::Discovery {
            what: format!("{} has no BAR2 ({} missing)", dev.display(), bar.display()),
            source: None,
        });
    }
    Ok(bar)
}

/// In a guest: the NF name (`netvm.nf`), the domain region's BAR (`netvm.bar`) and the NF's
/// control region's BAR (`netvm.ctl`), or `None` when the kernel command line names no NF (not
/// a netvm guest). The manager gives each netvm guest exactly these two ivshmem devices and
/// names both on the command line.
pub fn discover() -> Option<Result<(String, PathBuf, PathBuf), NfError>> {
    let nf = kernel_param("nf")?;
    let bar = kernel_param("bar");
    let ctl = kernel_param("ctl");
    Some(
        discover_in(Path::new(SYSFS_PCI_DEVICES), bar.as_deref(), ctl.as_deref())
            .map(|(b, c)| (nf, b, c)),
    )
}

/// The domain region's and the control region's BARs under `devices`.
pub fn discover_in(
    devices: &Path,
    bar: Option<&str>,
    ctl: Option<&str>,
) -> Result<(PathBuf, PathBuf), NfError> {
    let Some(ctl) = ctl else {
        return Err(NfError::Discovery {
            what: "no netvm.ctl=BDF on the kernel command line: which ivshmem device holds this \
                   NF's control region?"
                .into(),
            source: None,
        });
    };
    let bar = bar.ok_or_else(|| NfError::Discovery {
        what: "no netvm.bar=BDF on the kernel command line: which ivshmem device holds the \
               domain region?"
            .into(),
        source: None,
    })?;
    Ok((
        find_region_bar(devices, Some(bar))?,
        find_region_bar(devices, Some(ctl))?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline() {
        let c = "console=ttyS0 quiet netvm.nf=fw1 netvm.args=--rules,/netvm/a x=\"a b\" netvm.bar=0000:00:04.0\n";
        assert_eq!(cmdline_param(c, "netvm.nf").as_deref(), Some("fw1"));
        assert_eq!(
            cmdline_param(c, "netvm.args").as_deref(),
            Some("--rules,/netvm/a")
        );
        assert_eq!(cmdline_param(c, "x").as_deref(), Some("a b"));
        assert_eq!(
            cmdline_param(c, "netvm.bar").as_deref(),
            Some("0000:00:04.0")
        );
        assert_eq!(cmdline_param(c, "netvm"), None);
        assert_eq!(cmdline_param("", "netvm.nf"), None);
    }

    fn fake_dev(root: &Path, bdf: &str, vendor: &str, device: &str) {
        let d = root.join(bdf);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("vendor"), format!("{vendor}\n")).unwrap();
        std::fs::write(d.join("device"), format!("{device}\n")).unwrap();
        std::fs::write(d.join("enable"), "0\n").unwrap();
        std::fs::write(d.join("resource2"), "").unwrap();
    }

    #[test]
    fn finds_and_enables_the_ivshmem_device() {
        let root = std::env::temp_dir().join(format!("netlib-pci-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        fake_dev(&root, "0000:00:01.0", "0x8086", "0x7000");
        assert!(matches!(
            find_region_bar(&root, None),
            Err(NfError::Discovery { .. })
        ));
        fake_dev(&root, "0000:00:04.0", "0x1af4", "0x1110");
        let bar = find_region_bar(&root, None).unwrap();
        assert_eq!(bar, root.join("0000:00:04.0/resource2"));
        assert_eq!(
            std::fs::read_to_string(root.join("0000:00:04.0/enable")).unwrap(),
            "1"
        );
        fake_dev(&root, "0000:00:05.0", "0x1af4", "0x1110");
        let e = find_region_bar(&root, None).unwrap_err().to_string();
        assert!(e.contains("netvm.bar"), "{e}");
        assert_eq!(
            find_region_bar(&root, Some("0000:00:05.0")).unwrap(),
            root.join("0000:00:05.0/resource2")
        );
        assert!(find_region_bar(&root, Some("0000:00:09.0")).is_err());
        let _ = std::fs::remove_dir_all(&root);
    }
}
