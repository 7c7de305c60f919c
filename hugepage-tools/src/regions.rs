//! netvm region files: finding them, telling live from stale, removing the stale ones.
//!
//! # Naming convention
//!
//! The core creates one region file per trust domain, at the top level of a hugetlbfs mount
//! (fallback: `/dev/shm`), named
//!
//! ```text
//! netvm-<domain>.<corepid>.region
//! ```
//!
//! where `<domain>` is the trust domain's name (letters, digits, `_`, `-`, `.`) and `<corepid>`
//! the decimal pid of the netvm-core process that created it, written without leading zeros.
//! [`region_file_name`] builds such a name and [`parse_region_file_name`] takes one apart
//! (splitting at the last `.` before `.region`, so domains may contain dots). Every region also
//! starts with the 8-byte magic [`REGION_MAGIC`] (`b"NETVMSHM"`), so a file is recognised as a
//! netvm region if its name starts with `netvm-` or its first 8 bytes are the magic.
//!
//! # What counts as stale
//!
//! [`clean_stale`] removes a file only if all of these hold:
//! - it is a regular file (not a link, not a directory) at the top level of a scanned directory;
//! - its name follows the convention exactly, so the owning core's pid is known;
//! - that pid is not alive (`netvm_shm::proc::pid_alive`: `kill(pid, 0)` fails with `ESRCH`, or
//!   the process is a zombie, which maps nothing any more; `EPERM` counts as alive);
//! - no process maps it or holds it open (`/proc/<pid>/maps` by device and inode or path,
//!   `/proc/<pid>/fd/*`): an NF or a QEMU guest may outlive its core and still use the region.
//!
//! A file that carries the magic or the `netvm-` prefix but whose name does not parse has no
//! known owner and is reported, never removed. Files that are neither are ignored entirely.
//! Pids are those of the pid namespace `clean` runs in; run it in the core's namespace.
//! A process that starts using a file between the check and the removal is not detected;
//! callers that need more should hold the manager's lock while cleaning.

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::mounts::{hugetlbfs_mounts_from, MountError};
use crate::sysfs;

/// The first 8 bytes of every netvm region.
pub const REGION_MAGIC: [u8; 8] = *b"NETVMSHM";
/// The prefix of every region file name.
pub const REGION_FILE_PREFIX: &str = "netvm-";
/// The suffix of every domain region file name.
pub const REGION_FILE_SUFFIX: &str = ".region";
/// The suffix of every NF control region file name.
pub const CONTROL_FILE_SUFFIX: &str = ".ctl";
/// Where regions live when no hugetlbfs is available; scanned by default next to the mounts.
pub const SHM_FALLBACK_DIR: &str = "/dev/shm";

/// Errors from finding or cleaning region files.
#[derive(Debug, thiserror::Error)]
pub enum RegionError {
    /// The hugetlbfs mounts to scan could not be listed.
    #[error("cannot list the hugetlbfs mounts to scan")]
    Mounts(#[source] MountError),
    /// A directory could not be listed.
    #[error("cannot list {path}")]
    ReadDir {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A file could not be examined.
    #[error("cannot examine {path}")]
    Stat {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A domain name cannot be part of a region file name.
    #[error("invalid trust-domain name {domain:?}: use letters, digits, '_', '-' and '.'")]
    BadDomain {
        /// The rejected name.
        domain: String,
    },
    /// A pid cannot be part of a region file name.
    #[error("invalid core pid {pid}: must be between 1 and {}", i32::MAX)]
    BadPid {
        /// The rejected pid.
        pid: u32,
    },
}

/// The parts of a region file name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RegionName {
    /// The trust domain.
    pub domain: String,
    /// The pid of the core process that created the region.
    pub core_pid: u32,
    /// For an NF's control region (`netvm-DOMAIN.PID.NF.ctl`), the NF's name.
    pub nf: Option<String>,
}

fn valid_domain(domain: &str) -> bool {
    !domain.is_empty()
        && domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

fn valid_pid(pid: u32) -> bool {
    pid >= 1 && i32::try_from(pid).is_ok()
}

/// The file name of the region of `domain` created by core process `core_pid`:
/// `netvm-<domain>.<corepid>.region`.
pub fn region_file_name(domain: &str, core_pid: u32) -> Result<String, RegionError> {
    if !valid_domain(domain) {
        return Err(RegionError::BadDomain {
            domain: domain.to_owned(),
        });
    }
    if !valid_pid(core_pid) {
        return Err(RegionError::BadPid { pid: core_pid });
    }
    Ok(format!(
        "{REGION_FILE_PREFIX}{domain}.{core_pid}{REGION_FILE_SUFFIX}"
    ))
}

/// Takes a region file name apart; `None` unless it follows the convention exactly (the
/// inverse of [`region_file_name`]).
pub fn parse_region_file_name(name: &str) -> Option<RegionName> {
    let rest = name.strip_prefix(REGION_FILE_PREFIX)?;
    // A domain region `netvm-DOMAIN.PID.region`, or an NF's control region next to it,
    // `netvm-DOMAIN.PID.NF.ctl` (NF names have no dots).
    let (middle, nf) = match rest.strip_suffix(REGION_FILE_SUFFIX) {
        Some(m) => (m, None),
        None => {
            let m = rest.strip_suffix(CONTROL_FILE_SUFFIX)?;
            let (m, nf) = m.rsplit_once('.')?;
            if !valid_domain(nf) || nf.contains('.') {
                return None;
            }
            (m, Some(nf.to_owned()))
        }
    };
    let (domain, pid) = middle.rsplit_once('.')?;
    if !valid_domain(domain)
        || pid.is_empty()
        || pid.starts_with('0')
        || !pid.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let core_pid: u32 = pid.parse().ok()?;
    valid_pid(core_pid).then(|| RegionName {
        domain: domain.to_owned(),
        core_pid,
        nf,
    })
}

/// Where and how processes are looked up: the running system, or a fake `/proc` in tests.
#[derive(Clone, Debug)]
pub struct ProcRoot {
    root: PathBuf,
    signals: bool,
}

impl ProcRoot {
    /// The running system: liveness by `netvm_shm::proc::pid_alive`, users from `/proc`.
    pub fn system() -> ProcRoot {
        ProcRoot {
            root: PathBuf::from(sysfs::SYSTEM_ROOT),
            signals: true,
        }
    }

    /// A tree under `root`: a pid is alive iff `<root>/proc/<pid>` is a directory, users come
    /// from `<root>/proc/<pid>/{maps,fd}`.
    pub fn at(root: &Path) -> ProcRoot {
        ProcRoot {
            root: root.to_owned(),
            signals: false,
        }
    }

    /// `<root>/proc`.
    fn proc_dir(&self) -> PathBuf {
        self.root.join("proc")
    }

    /// Whether process `pid` is alive (a zombie is not; `EPERM` is).
    pub fn is_alive(&self, pid: u32) -> bool {
        if !self.signals {
            return libc::pid_t::try_from(pid).is_ok_and(|p| p > 0)
                && self.proc_dir().join(pid.to_string()).is_dir();
        }
        netvm_shm::proc::pid_alive(pid)
    }

    /// For each target (device, inode, path), the pids that map it or hold it open.
    fn users(&self, targets: &[(u64, u64, PathBuf)]) -> Vec<Vec<u32>> {
        let mut users: Vec<HashSet<u32>> = vec![HashSet::new(); targets.len()];
        if targets.is_empty() {
            return Vec::new();
        }
        let Ok(entries) = fs::read_dir(self.proc_dir()) else {
            return vec![Vec::new(); targets.len()];
        };
        let by_id: HashSet<(u64, u64)> = targets.iter().map(|(d, i, _)| (*d, *i)).collect();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let pdir = entry.path();
            // Processes vanish and deny access while we look: skip what cannot be read.
            if let Ok(maps) = fs::read_to_string(pdir.join("maps")) {
                for line in maps.lines() {
                    let Some((dev, ino, path)) = parse_maps_line(line) else {
                        continue;
                    };
                    if !by_id.contains(&(dev, ino)) && path.is_none() {
                        continue;
                    }
                    for (k, (d, i, p)) in targets.iter().enumerate() {
                        if (dev, ino) == (*d, *i) || path.is_some_and(|q| Path::new(q) == p) {
                            users[k].insert(pid);
                        }
                    }
                }
            }
            if let Ok(fds) = fs::read_dir(pdir.join("fd")) {
                for fd in fds.flatten() {
                    // metadata() follows the fd link to the open file itself, whatever its
                    // path looks like from this mount namespace.
                    let Ok(m) = fs::metadata(fd.path()) else {
                        continue;
                    };
                    for (k, (d, i, _)) in targets.iter().enumerate() {
                        if (m.dev(), m.ino()) == (*d, *i) {
                            users[k].insert(pid);
                        }
                    }
                }
            }
        }
        users
            .into_iter()
            .map(|s| {
                let mut v: Vec<u32> = s.into_iter().collect();
                v.sort_unstable();
                v
            })
            .collect()
    }
}

/// The device number the way `stat` reports it, from the `maj:min` hex pair of a maps line
/// (glibc's `makedev` encoding).
fn makedev(major: u64, minor: u64) -> u64 {
    ((major & 0xfff) << 8) | ((major & !0xfff) << 32) | (minor & 0xff) | ((minor & !0xff) << 12)
}

/// Parses `addr perms offset maj:min inode [path]` into (device, inode, path without a
/// ` (deleted)` suffix).
fn parse_maps_line(line: &str) -> Option<(u64, u64, Option<&str>)> {
    let mut f = line.split_whitespace();
    let _addr = f.next()?;
    let _perms = f.next()?;
    let _offset = f.next()?;
    let (maj, min) = f.next()?.split_once(':')?;
    let ino: u64 = f.next()?.parse().ok()?;
    let dev = makedev(
        u64::from_str_radix(maj, 16).ok()?,
        u64::from_str_radix(min, 16).ok()?,
    );
    let path = line
        .find('/')
        .map(|i| line[i..].trim_end())
        .map(|p| p.strip_suffix(" (deleted)").unwrap_or(p));
    Some((dev, ino, path))
}

/// What a region file's state allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RegionState {
    /// The owning core is alive.
    Live,
    /// The owning core is gone and nothing maps or holds the file: safe to remove.
    Stale,
    /// The owning core is gone but other processes still map or hold the file.
    InUse,
    /// The name does not follow the convention, so the owner is unknown; never removed.
    UnknownOwner,
}

/// A netvm region file found on disk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RegionFile {
    /// Full path.
    pub path: PathBuf,
    /// Size in bytes.
    pub size: u64,
    /// The trust domain, from the name.
    pub domain: Option<String>,
    /// The owning core's pid, from the name.
    pub owner_pid: Option<u32>,
    /// Whether the owning core is alive; `None` when the owner is unknown.
    pub owner_alive: Option<bool>,
    /// Whether the file starts with [`REGION_MAGIC`].
    pub has_magic: bool,
    /// Pids that map the file or hold it open.
    pub users: Vec<u32>,
    /// What this means for cleaning.
    pub state: RegionState,
}

/// The directories scanned by default on the running system: every hugetlbfs mount, then
/// `/dev/shm` (the fallback location).
pub fn default_region_dirs() -> Result<Vec<PathBuf>, RegionError> {
    default_region_dirs_at(Path::new(sysfs::SYSTEM_ROOT))
}

/// [`default_region_dirs`] from `<root>/proc/mounts`, with `<root>/dev/shm` as the fallback.
pub fn default_region_dirs_at(root: &Path) -> Result<Vec<PathBuf>, RegionError> {
    let mut dirs: Vec<PathBuf> = hugetlbfs_mounts_from(root)
        .map_err(RegionError::Mounts)?
        .into_iter()
        .map(|m| m.path)
        .collect();
    let shm = root.join(SHM_FALLBACK_DIR.trim_start_matches('/'));
    if shm.is_dir() {
        dirs.push(shm);
    }
    Ok(dirs)
}

/// Region files in the default directories of the running system.
pub fn find_region_files() -> Result<Vec<RegionFile>, RegionError> {
    find_region_files_in(&default_region_dirs()?, &ProcRoot::system())
}

/// Reads the first 8 bytes of a regular file; `false` if it cannot be read or is shorter.
fn has_magic(path: &Path) -> bool {
    let Ok(mut f) = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    else {
        return false;
    };
    let mut buf = [0u8; 8];
    f.read_exact(&mut buf).is_ok() && buf == REGION_MAGIC
}

/// Region files at the top level of `dirs` (duplicates and unreadable names skipped), with
/// owners and users looked up through `procs`, sorted by path.
pub fn find_region_files_in(
    dirs: &[PathBuf],
    procs: &ProcRoot,
) -> Result<Vec<RegionFile>, RegionError> {
    let mut seen_dirs = HashSet::new();
    let mut found = Vec::new();
    let mut ids = Vec::new();
    for dir in dirs {
        let canonical = fs::canonicalize(dir).map_err(|source| RegionError::ReadDir {
            path: dir.clone(),
            source,
        })?;
        if !seen_dirs.insert(canonical.clone()) {
            continue;
        }
        let entries = fs::read_dir(&canonical).map_err(|source| RegionError::ReadDir {
            path: canonical.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| RegionError::ReadDir {
                path: canonical.clone(),
                source,
            })?;
            let path = entry.path();
            let meta = match fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue, // removed meanwhile
                Err(source) => return Err(RegionError::Stat { path, source }),
            };
            if !meta.file_type().is_file() {
                continue;
            }
            let name = entry.file_name();
            let name = name.to_str();
            let parsed = name.and_then(parse_region_file_name);
            let magic = has_magic(&path);
            let prefixed = name.is_some_and(|n| n.starts_with(REGION_FILE_PREFIX));
            if !(prefixed || magic) {
                continue;
            }
            let owner_alive = parsed.as_ref().map(|p| procs.is_alive(p.core_pid));
            ids.push((meta.dev(), meta.ino(), path.clone()));
            found.push(RegionFile {
                path,
                size: meta.len(),
                domain: parsed.as_ref().map(|p| p.domain.clone()),
                owner_pid: parsed.as_ref().map(|p| p.core_pid),
                owner_alive,
                has_magic: magic,
                users: Vec::new(),
                state: RegionState::UnknownOwner,
            });
        }
    }
    let users = procs.users(&ids);
    for (file, users) in found.iter_mut().zip(users) {
        file.users = users;
        file.state = match file.owner_alive {
            None => RegionState::UnknownOwner,
            Some(true) => RegionState::Live,
            Some(false) if file.users.is_empty() => RegionState::Stale,
            Some(false) => RegionState::InUse,
        };
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(found)
}

/// A stale file that could not be removed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CleanFailure {
    /// The file.
    pub file: RegionFile,
    /// Why removing it failed.
    pub error: String,
}

/// What [`clean_stale`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CleanReport {
    /// Whether this was a dry run (nothing removed; `removed` lists what would have been).
    pub dry_run: bool,
    /// Stale files removed (or, in a dry run, that would be).
    pub removed: Vec<RegionFile>,
    /// Region files kept, each with the state that protected it.
    pub kept: Vec<RegionFile>,
    /// Stale files whose removal failed.
    pub failed: Vec<CleanFailure>,
}

/// Removes the stale region files in the default directories of the running system (see the
/// module docs for the rule); with `dry_run`, only reports what it would remove.
pub fn clean_stale(dry_run: bool) -> Result<CleanReport, RegionError> {
    clean_stale_in(&default_region_dirs()?, &ProcRoot::system(), dry_run)
}

/// [`clean_stale`] over `dirs`, with processes looked up through `procs`.
pub fn clean_stale_in(
    dirs: &[PathBuf],
    procs: &ProcRoot,
    dry_run: bool,
) -> Result<CleanReport, RegionError> {
    let mut report = CleanReport {
        dry_run,
        ..CleanReport::default()
    };
    for file in find_region_files_in(dirs, procs)? {
        let still_dead = file.owner_pid.is_some_and(|pid| !procs.is_alive(pid));
        if file.state != RegionState::Stale || !still_dead {
            report.kept.push(file);
            continue;
        }
        if dry_run {
            report.removed.push(file);
            continue;
        }
        match fs::remove_file(&file.path) {
            Ok(()) => report.removed.push(file),
            Err(e) if e.kind() == io::ErrorKind::NotFound => report.removed.push(file),
            Err(e) => report.failed.push(CleanFailure {
                error: e.to_string(),
                file,
            }),
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    #[test]
    fn names_round_trip() {
        let n = region_file_name("blue.team-1", 4242).unwrap();
        assert_eq!(n, "netvm-blue.team-1.4242.region");
        assert_eq!(
            parse_region_file_name(&n),
            Some(RegionName {
                domain: "blue.team-1".into(),
                core_pid: 4242,
                nf: None,
            })
        );
        assert_eq!(
            parse_region_file_name("netvm-blue.team-1.4242.fw_1.ctl"),
            Some(RegionName {
                domain: "blue.team-1".into(),
                core_pid: 4242,
                nf: Some("fw_1".into()),
            })
        );
        assert_eq!(parse_region_file_name("netvm-blue.4242.ctl"), None);
        assert_eq!(parse_region_file_name("netvm-blue.4242..ctl"), None);
        for bad in [
            "netvm-.12.region",
            "netvm-a.region",
            "netvm-a.012.region",
            "netvm-a.0.region",
            "netvm-a.x1.region",
            "netvm-a.12.regio",
            "netvm-a b.12.region",
            "xnetvm-a.12.region",
            "netvm-a.4294967295.region",
            "netvm-a.99999999999999999999.region",
        ] {
            assert_eq!(parse_region_file_name(bad), None, "{bad}");
        }
        assert!(matches!(
            region_file_name("", 1),
            Err(RegionError::BadDomain { .. })
        ));
        assert!(matches!(
            region_file_name("a/b", 1),
            Err(RegionError::BadDomain { .. })
        ));
        assert!(matches!(
            region_file_name("a", 0),
            Err(RegionError::BadPid { pid: 0 })
        ));
    }

    #[test]
    fn maps_lines() {
        let l = "7f0000000000-7f0000200000 rw-s 00000000 00:2f 12345                      /dev/hugepages/netvm-a.1.region (deleted)";
        let (dev, ino, path) = parse_maps_line(l).unwrap();
        assert_eq!(dev, 0x2f);
        assert_eq!(ino, 12345);
        assert_eq!(path, Some("/dev/hugepages/netvm-a.1.region"));
        let anon = "7ffd0000-7ffd1000 rw-p 00000000 00:00 0 ";
        assert_eq!(parse_maps_line(anon).unwrap().2, None);
        let (dev, _, _) = parse_maps_line("0-1 r--p 0 103:1f 9 /x").unwrap();
        assert_eq!(dev, makedev(0x103, 0x1f));
        assert_eq!(dev, (0x103 << 8) | 0x1f);
        assert_eq!(parse_maps_line("garbage"), None);
    }

    /// A fake tree: regions in `<tree>/huge`, processes in `<tree>/proc`.
    fn fixture() -> (TempDir, PathBuf) {
        let t = TempDir::new("regions");
        let huge = t.dir("huge");
        let mut header = REGION_MAGIC.to_vec();
        header.extend_from_slice(&[0u8; 56]);
        t.file("huge/netvm-red.100.region", &header); // owner 100 alive
        t.file("huge/netvm-blue.200.region", &header); // owner 200 dead: stale
        t.file("huge/netvm-green.300.region", b""); // owner dead, no magic, name enough: stale
        t.file("huge/netvm-gray.400.region", &header); // owner dead, mapped by 500
        t.file("huge/netvm-pink.600.region", &header); // owner dead, held open by 700
        t.file("huge/netvm-odd", b"x"); // prefix only: unknown owner
        t.file("huge/qemu-ram", &header); // magic only: unknown owner
        t.file("huge/unrelated.100.region", b"not ours"); // ignored
        t.dir("huge/netvm-subdir.1.region"); // a directory: ignored
        std::os::unix::fs::symlink(
            huge.join("netvm-blue.200.region"),
            huge.join("netvm-link.200.region"),
        )
        .unwrap(); // a symlink: ignored
        t.dir("proc/100");
        t.file(
            "proc/500/maps",
            format!(
                "7f0000000000-7f0000200000 rw-s 00000000 00:2f 1 {}\n",
                huge.join("netvm-gray.400.region").display()
            ),
        );
        t.dir("proc/700/fd");
        std::os::unix::fs::symlink(
            huge.join("netvm-pink.600.region"),
            t.path().join("proc/700/fd/3"),
        )
        .unwrap();
        t.file("proc/self", b""); // not a pid
        (t, huge)
    }

    fn state_of(files: &[RegionFile], name: &str) -> Option<RegionState> {
        files
            .iter()
            .find(|f| f.path.file_name().is_some_and(|n| n == name))
            .map(|f| f.state)
    }

    #[test]
    fn classifies_region_files() {
        let (t, huge) = fixture();
        let procs = ProcRoot::at(t.path());
        let files = find_region_files_in(&[huge.clone(), huge.clone()], &procs).unwrap();
        assert_eq!(files.len(), 7, "{files:#?}");
        assert_eq!(
            state_of(&files, "netvm-red.100.region"),
            Some(RegionState::Live)
        );
        assert_eq!(
            state_of(&files, "netvm-blue.200.region"),
            Some(RegionState::Stale)
        );
        assert_eq!(
            state_of(&files, "netvm-green.300.region"),
            Some(RegionState::Stale)
        );
        assert_eq!(
            state_of(&files, "netvm-gray.400.region"),
            Some(RegionState::InUse)
        );
        assert_eq!(
            state_of(&files, "netvm-pink.600.region"),
            Some(RegionState::InUse)
        );
        assert_eq!(
            state_of(&files, "netvm-odd"),
            Some(RegionState::UnknownOwner)
        );
        assert_eq!(
            state_of(&files, "qemu-ram"),
            Some(RegionState::UnknownOwner)
        );
        let red = files
            .iter()
            .find(|f| f.domain.as_deref() == Some("red"))
            .unwrap();
        assert_eq!(
            (red.owner_pid, red.owner_alive, red.has_magic, red.size),
            (Some(100), Some(true), true, 64)
        );
        let gray = files
            .iter()
            .find(|f| f.domain.as_deref() == Some("gray"))
            .unwrap();
        assert_eq!(gray.users, vec![500]);
        let pink = files
            .iter()
            .find(|f| f.domain.as_deref() == Some("pink"))
            .unwrap();
        assert_eq!(pink.users, vec![700]);
    }

    #[test]
    fn cleans_only_stale_files() {
        let (t, huge) = fixture();
        let procs = ProcRoot::at(t.path());
        let dry = clean_stale_in(std::slice::from_ref(&huge), &procs, true).unwrap();
        assert!(dry.dry_run);
        assert_eq!(dry.removed.len(), 2);
        assert!(
            huge.join("netvm-blue.200.region").exists(),
            "dry run removed a file"
        );

        let report = clean_stale_in(std::slice::from_ref(&huge), &procs, false).unwrap();
        let mut removed: Vec<_> = report
            .removed
            .iter()
            .map(|f| f.path.file_name().unwrap().to_str().unwrap().to_owned())
            .collect();
        removed.sort();
        assert_eq!(
            removed,
            vec!["netvm-blue.200.region", "netvm-green.300.region"]
        );
        assert_eq!(report.kept.len(), 5);
        assert!(report.failed.is_empty());
        for kept in [
            "netvm-red.100.region",
            "netvm-gray.400.region",
            "netvm-pink.600.region",
            "netvm-odd",
            "qemu-ram",
            "unrelated.100.region",
            "netvm-subdir.1.region",
        ] {
            assert!(huge.join(kept).exists(), "{kept} was removed");
        }
        // The dangling symlink is left alone too.
        assert!(fs::symlink_metadata(huge.join("netvm-link.200.region")).is_ok());
        // Idempotent.
        let again = clean_stale_in(&[huge], &procs, false).unwrap();
        assert!(again.removed.is_empty());
    }

    #[test]
    fn system_liveness() {
        let procs = ProcRoot::system();
        assert!(procs.is_alive(std::process::id()));
        assert!(procs.is_alive(1));
        assert!(!procs.is_alive(0));
        assert!(!procs.is_alive(u32::MAX));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!procs.is_alive(pid));
    }

    #[test]
    fn missing_dir_is_an_error() {
        let t = TempDir::new("regions-missing");
        let err =
            find_region_files_in(&[t.path().join("nope")], &ProcRoot::at(t.path())).unwrap_err();
        assert!(matches!(err, RegionError::ReadDir { .. }));
    }
}
