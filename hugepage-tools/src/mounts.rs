//! hugetlbfs mounts: listing them from `/proc/mounts` and mounting one if it is missing.

use std::ffi::{CString, OsStr};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::pagesize::{display_sizes, PageSize};
use crate::status::read_default_size;
use crate::sysfs;

/// The usual hugetlbfs mount point, and the default of [`ensure_mounted`]'s callers.
pub const DEFAULT_MOUNT_PATH: &str = "/dev/hugepages";

/// Errors from listing or creating hugetlbfs mounts.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// The mount table could not be read.
    #[error("cannot read the mount table {path}")]
    ReadMounts {
        /// The mount table file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The page size has no `hugepages-<N>kB` directory in sysfs.
    #[error("page size {size} is not supported by this kernel (supported: {})", display_sizes(.supported))]
    UnsupportedPageSize {
        /// The requested size.
        size: PageSize,
        /// The sizes the kernel supports.
        supported: Vec<PageSize>,
    },
    /// No size was given and the kernel has no default hugepage size.
    #[error("the kernel reports no default hugepage size (no hugetlb support?)")]
    NoDefaultSize,
    /// The default page size could not be read.
    #[error("cannot determine the default hugepage size")]
    DefaultSize(#[source] crate::status::StatusError),
    /// hugetlbfs is mounted at the path with a different page size.
    #[error("{path} is already a hugetlbfs mount with page size {mounted}, not {wanted}")]
    PageSizeMismatch {
        /// The mount point.
        path: PathBuf,
        /// The page size of the existing mount.
        mounted: PageSize,
        /// The page size asked for.
        wanted: PageSize,
    },
    /// Another file system is mounted at the path.
    #[error("{path} is already a mount point of a {fstype} file system, not hugetlbfs")]
    OtherFilesystem {
        /// The mount point.
        path: PathBuf,
        /// The file system type mounted there.
        fstype: String,
    },
    /// The mount point exists and is not a directory.
    #[error("{path} exists and is not a directory")]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// The mount point directory could not be created or resolved.
    #[error("cannot create mount point {path}")]
    CreateDir {
        /// The path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The path contains a NUL byte.
    #[error("mount point {path:?} contains a NUL byte")]
    NulInPath {
        /// The path.
        path: PathBuf,
    },
    /// mount(2) was refused for lack of privilege.
    #[error("not permitted to mount hugetlbfs on {path}: run as root")]
    NotPermitted {
        /// The mount point.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// mount(2) failed otherwise.
    #[error("mounting hugetlbfs (pagesize={size}) on {path} failed")]
    Mount {
        /// The mount point.
        path: PathBuf,
        /// The page size.
        size: PageSize,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// mount(2) succeeded but the mount table does not show the new mount.
    #[error("mounted hugetlbfs on {path} but the mount table does not show it")]
    NotVisible {
        /// The mount point.
        path: PathBuf,
    },
}

/// One line of the mount table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MountEntry {
    /// The mount source (`nodev`, `hugetlbfs`, a device).
    pub source: String,
    /// The mount point, with the table's octal escapes decoded.
    pub path: PathBuf,
    /// The file system type.
    pub fstype: String,
    /// The mount options, comma-separated.
    pub options: String,
}

/// A hugetlbfs mount.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HugetlbfsMount {
    /// The mount point.
    pub path: PathBuf,
    /// The mount source as the table shows it.
    pub source: String,
    /// The page size of the mount (its `pagesize=` option, else the default size).
    pub page_size: Option<PageSize>,
    /// The mount options, comma-separated.
    pub options: String,
}

/// What [`ensure_mounted`] did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "mount")]
pub enum MountOutcome {
    /// hugetlbfs with the right page size was already mounted there; nothing changed.
    AlreadyMounted(HugetlbfsMount),
    /// hugetlbfs was mounted there now.
    Mounted(HugetlbfsMount),
}

impl MountOutcome {
    /// The mount, whichever way it came about.
    pub fn mount(&self) -> &HugetlbfsMount {
        match self {
            MountOutcome::AlreadyMounted(m) | MountOutcome::Mounted(m) => m,
        }
    }
}

/// Decodes the octal escapes (`\040` for a space, `\011`, `\012`, `\134`) of a mount table field.
fn unescape_mount_field(field: &str) -> Vec<u8> {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = u32::from(oct[0] - b'0') * 64
                    + u32::from(oct[1] - b'0') * 8
                    + u32::from(oct[2] - b'0');
                if let Ok(byte) = u8::try_from(v) {
                    out.push(byte);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// Parses mount table text (`/proc/mounts` format); malformed lines are skipped.
pub fn parse_mount_table(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let source = f.next()?;
            let path = f.next()?;
            let fstype = f.next()?;
            let options = f.next()?;
            Some(MountEntry {
                source: String::from_utf8_lossy(&unescape_mount_field(source)).into_owned(),
                path: PathBuf::from(OsStr::from_bytes(&unescape_mount_field(path))),
                fstype: fstype.to_owned(),
                options: options.to_owned(),
            })
        })
        .collect()
}

fn to_hugetlbfs(entry: MountEntry, default: Option<PageSize>) -> HugetlbfsMount {
    let page_size = entry
        .options
        .split(',')
        .find_map(|o| o.strip_prefix("pagesize="))
        .and_then(|v| v.parse().ok())
        .or(default);
    HugetlbfsMount {
        path: entry.path,
        source: entry.source,
        page_size,
        options: entry.options,
    }
}

/// The hugetlbfs mounts of the running system.
pub fn hugetlbfs_mounts() -> Result<Vec<HugetlbfsMount>, MountError> {
    hugetlbfs_mounts_from(Path::new(sysfs::SYSTEM_ROOT))
}

/// The hugetlbfs mounts listed in `<root>/proc/mounts`, in table order. Mount points are
/// taken as written in the table, not re-rooted.
pub fn hugetlbfs_mounts_from(root: &Path) -> Result<Vec<HugetlbfsMount>, MountError> {
    let path = root.join("proc/mounts");
    let text = fs::read_to_string(&path).map_err(|source| MountError::ReadMounts {
        path: path.clone(),
        source,
    })?;
    let default = read_default_size(root).ok().flatten();
    Ok(parse_mount_table(&text)
        .into_iter()
        .filter(|e| e.fstype == "hugetlbfs")
        .map(|e| to_hugetlbfs(e, default))
        .collect())
}

/// The entry that is visible at `path` (the last one mounted there), if any.
fn top_mount_at(root: &Path, path: &Path) -> Result<Option<MountEntry>, MountError> {
    let table = root.join("proc/mounts");
    let text = fs::read_to_string(&table).map_err(|source| MountError::ReadMounts {
        path: table.clone(),
        source,
    })?;
    Ok(parse_mount_table(&text)
        .into_iter()
        .rev()
        .find(|e| e.path == path))
}

/// Makes sure hugetlbfs with page size `size` (default: the kernel's default size) is mounted
/// at `path`, creating the directory and mounting if needed. Idempotent: if it is already
/// mounted there with that size, nothing changes and [`MountOutcome::AlreadyMounted`] says so.
pub fn ensure_mounted(path: &Path, size: Option<PageSize>) -> Result<MountOutcome, MountError> {
    let root = Path::new(sysfs::SYSTEM_ROOT);
    let supported = sysfs::list_page_sizes(&sysfs::hugepages_dir(root)).map_err(|source| {
        MountError::ReadMounts {
            path: sysfs::hugepages_dir(root),
            source,
        }
    })?;
    let default = read_default_size(root).map_err(MountError::DefaultSize)?;
    let size = match size.or(default) {
        Some(s) => s,
        None => return Err(MountError::NoDefaultSize),
    };
    if !supported.contains(&size) {
        return Err(MountError::UnsupportedPageSize { size, supported });
    }

    match fs::metadata(path) {
        Ok(m) if !m.is_dir() => {
            return Err(MountError::NotADirectory {
                path: path.to_owned(),
            })
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(path).map_err(|source| MountError::CreateDir {
                path: path.to_owned(),
                source,
            })?;
        }
        Err(source) => {
            return Err(MountError::CreateDir {
                path: path.to_owned(),
                source,
            })
        }
    }
    let canonical = fs::canonicalize(path).map_err(|source| MountError::CreateDir {
        path: path.to_owned(),
        source,
    })?;

    if let Some(entry) = top_mount_at(root, &canonical)? {
        if entry.fstype != "hugetlbfs" {
            return Err(MountError::OtherFilesystem {
                path: canonical,
                fstype: entry.fstype,
            });
        }
        let mount = to_hugetlbfs(entry, default);
        return match mount.page_size {
            Some(mounted) if mounted != size => Err(MountError::PageSizeMismatch {
                path: canonical,
                mounted,
                wanted: size,
            }),
            _ => Ok(MountOutcome::AlreadyMounted(mount)),
        };
    }

    let target =
        CString::new(canonical.as_os_str().as_bytes()).map_err(|_| MountError::NulInPath {
            path: canonical.clone(),
        })?;
    let options = CString::new(format!("pagesize={size}")).expect("no NUL in a formatted size");
    // SAFETY: every pointer is a NUL-terminated C string that outlives the call (`target` and
    // `options` are owned CStrings, the others are literals); hugetlbfs takes its data argument
    // as a NUL-terminated option string, which `options` is.
    let rc = unsafe {
        libc::mount(
            c"nodev".as_ptr(),
            target.as_ptr(),
            c"hugetlbfs".as_ptr(),
            0,
            options.as_ptr().cast(),
        )
    };
    if rc != 0 {
        let source = io::Error::last_os_error();
        return Err(match source.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => MountError::NotPermitted {
                path: canonical,
                source,
            },
            _ => MountError::Mount {
                path: canonical,
                size,
                source,
            },
        });
    }
    match top_mount_at(root, &canonical)? {
        Some(entry) if entry.fstype == "hugetlbfs" => {
            Ok(MountOutcome::Mounted(to_hugetlbfs(entry, Some(size))))
        }
        _ => Err(MountError::NotVisible { path: canonical }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{fake_meminfo, TempDir};

    const TABLE: &str = "\
sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
nodev /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0
hugetlbfs /mnt/huge\\0401G hugetlbfs rw,relatime,pagesize=1024M 0 0
none /mnt/plain hugetlbfs rw,relatime 0 0
broken-line
tmpfs /dev/shm tmpfs rw 0 0
";

    #[test]
    fn parses_table_and_escapes() {
        let e = parse_mount_table(TABLE);
        assert_eq!(e.len(), 5);
        assert_eq!(e[2].path, PathBuf::from("/mnt/huge 1G"));
        assert_eq!(unescape_mount_field("a\\134b\\011c"), b"a\\b\tc");
        assert_eq!(unescape_mount_field("trail\\04"), b"trail\\04");
        assert_eq!(unescape_mount_field("\\777"), b"\\777");
    }

    #[test]
    fn lists_hugetlbfs_mounts_with_page_sizes() {
        let tree = TempDir::new("mounts");
        tree.file("proc/mounts", TABLE);
        fake_meminfo(&tree, Some(2048));
        let m = hugetlbfs_mounts_from(tree.path()).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].path, PathBuf::from("/dev/hugepages"));
        assert_eq!(m[0].page_size, Some(PageSize::SIZE_2M));
        assert_eq!(m[1].page_size, Some(PageSize::SIZE_1G));
        // No pagesize option: the default size applies.
        assert_eq!(m[2].page_size, Some(PageSize::SIZE_2M));
        assert_eq!(m[2].source, "none");
    }

    #[test]
    fn missing_table_is_an_error() {
        let tree = TempDir::new("mounts-none");
        assert!(matches!(
            hugetlbfs_mounts_from(tree.path()),
            Err(MountError::ReadMounts { .. })
        ));
    }
}
