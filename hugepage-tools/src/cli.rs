//! The `netvm-hugepages` command line: argument definitions and the command implementations.
//! `main.rs` only parses [`Cli`] and calls [`run`].

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::mounts::{self, HugetlbfsMount, MountError, MountOutcome};
use crate::pagesize::PageSize;
use crate::regions::{self, ProcRoot, RegionError, RegionFile, RegionState};
use crate::reserve::{self, ReserveError};
use crate::status::{HugepageStatus, StatusError};
use crate::sysfs::SYSTEM_ROOT;
use crate::topology::{Topology, TopologyError, TopologySource};

/// Errors of the `netvm-hugepages` commands.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Topology discovery failed.
    #[error("cannot discover the NUMA topology")]
    Topology(#[source] TopologyError),
    /// Reading hugepage counters failed.
    #[error("cannot read the hugepage counters")]
    Status(#[source] StatusError),
    /// Listing hugetlbfs mounts failed.
    #[error("cannot list hugetlbfs mounts")]
    Mounts(#[source] MountError),
    /// Scanning or cleaning region files failed.
    #[error("cannot scan region files")]
    Regions(#[source] RegionError),
    /// `reserve` failed.
    #[error(transparent)]
    Reserve(ReserveError),
    /// `mount` failed.
    #[error(transparent)]
    Mount(MountError),
    /// `clean` could not remove some stale files (they are listed in its output).
    #[error("could not remove {failed} stale region file(s)")]
    CleanIncomplete {
        /// How many removals failed.
        failed: usize,
    },
    /// Writing to standard output failed.
    #[error("cannot write the output")]
    Output(#[source] io::Error),
    /// Encoding JSON failed.
    #[error("cannot encode the output as JSON")]
    Json(#[source] serde_json::Error),
}

/// netvm hugepage tool: NUMA topology, hugepage pools, hugetlbfs mounts, region files.
#[derive(Debug, Parser)]
#[command(name = "netvm-hugepages", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show NUMA nodes, hugepage pools per size and node, hugetlbfs mounts and region files.
    Status(StatusArgs),
    /// Set a hugepage pool to COUNT pages (system-wide or on one NUMA node).
    Reserve(ReserveArgs),
    /// Mount hugetlbfs at a path unless it is already mounted there.
    Mount(MountArgs),
    /// Remove stale netvm region files (owner dead, not mapped or open by anyone).
    Clean(CleanArgs),
}

/// Arguments of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Read sysfs and procfs under this directory instead of / (for tests and offline trees;
    /// topology then comes from sysfs, not hwloc).
    #[arg(long, value_name = "DIR", default_value = SYSTEM_ROOT)]
    pub root: PathBuf,
    /// Scan these directories for region files instead of every hugetlbfs mount and /dev/shm.
    #[arg(long = "dir", value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
}

/// Arguments of `reserve`.
#[derive(Debug, Args)]
pub struct ReserveArgs {
    /// The number of pages the pool should hold.
    #[arg(long)]
    pub count: u64,
    /// Page size, e.g. 2M or 1G (default: the kernel's default hugepage size).
    #[arg(long)]
    pub size: Option<PageSize>,
    /// NUMA node whose pool to set (default: the system-wide pool).
    #[arg(long)]
    pub node: Option<u32>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `mount`.
#[derive(Debug, Args)]
pub struct MountArgs {
    /// Mount point (created if missing).
    #[arg(long, default_value = mounts::DEFAULT_MOUNT_PATH)]
    pub path: PathBuf,
    /// Page size, e.g. 2M or 1G (default: the kernel's default hugepage size).
    #[arg(long)]
    pub size: Option<PageSize>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `clean`.
#[derive(Debug, Args)]
pub struct CleanArgs {
    /// Only report what would be removed.
    #[arg(long)]
    pub dry_run: bool,
    /// Scan these directories instead of every hugetlbfs mount and /dev/shm.
    #[arg(long = "dir", value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Everything `status` shows, as its JSON is laid out.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    /// NUMA nodes.
    pub topology: Topology,
    /// Hugepage pools.
    pub hugepages: HugepageStatus,
    /// hugetlbfs mounts.
    pub mounts: Vec<HugetlbfsMount>,
    /// Region files found.
    pub regions: Vec<RegionFile>,
}

impl StatusReport {
    /// Gathers the report from the tree under `root` (`/`: the running system, topology from
    /// hwloc), scanning `dirs` for region files, or the default directories if `dirs` is empty.
    pub fn gather(root: &Path, dirs: &[PathBuf]) -> Result<StatusReport, CliError> {
        let system = root == Path::new(SYSTEM_ROOT);
        let topology = if system {
            Topology::discover()
        } else {
            Topology::from_sysfs(root)
        }
        .map_err(CliError::Topology)?;
        let hugepages = HugepageStatus::read_from(root).map_err(CliError::Status)?;
        let mounts = mounts::hugetlbfs_mounts_from(root).map_err(CliError::Mounts)?;
        let procs = if system {
            ProcRoot::system()
        } else {
            ProcRoot::at(root)
        };
        let dirs = if dirs.is_empty() {
            regions::default_region_dirs_at(root).map_err(CliError::Regions)?
        } else {
            dirs.to_vec()
        };
        let regions = regions::find_region_files_in(&dirs, &procs).map_err(CliError::Regions)?;
        Ok(StatusReport {
            topology,
            hugepages,
            mounts,
            regions,
        })
    }
}

/// Runs one command, writing its report to `out`.
pub fn run(cli: &Cli, out: &mut dyn Write) -> Result<(), CliError> {
    match &cli.command {
        Command::Status(a) => {
            let report = StatusReport::gather(&a.root, &a.dirs)?;
            if a.json {
                print_json(out, &report)
            } else {
                print_status(out, &report).map_err(CliError::Output)
            }
        }
        Command::Reserve(a) => {
            let r = reserve::reserve(a.count, a.size, a.node).map_err(CliError::Reserve)?;
            if a.json {
                return print_json(out, &r);
            }
            let node = r.node.map(|n| format!(" on node {n}")).unwrap_or_default();
            let what = if r.changed() { "set" } else { "unchanged" };
            writeln!(
                out,
                "{} pool{node}: {} -> {} pages ({what}, requested {})",
                r.size, r.previous, r.granted, r.requested
            )
            .map_err(CliError::Output)
        }
        Command::Mount(a) => {
            let outcome = mounts::ensure_mounted(&a.path, a.size).map_err(CliError::Mount)?;
            if a.json {
                return print_json(out, &outcome);
            }
            let m = outcome.mount();
            let size = m
                .page_size
                .map(|s| s.to_string())
                .unwrap_or_else(|| "?".into());
            let verb = match outcome {
                MountOutcome::AlreadyMounted(_) => "already mounted",
                MountOutcome::Mounted(_) => "mounted",
            };
            writeln!(
                out,
                "hugetlbfs (pagesize={size}) {verb} at {}",
                m.path.display()
            )
            .map_err(CliError::Output)
        }
        Command::Clean(a) => {
            let report = if a.dirs.is_empty() {
                regions::clean_stale(a.dry_run)
            } else {
                regions::clean_stale_in(&a.dirs, &ProcRoot::system(), a.dry_run)
            }
            .map_err(CliError::Regions)?;
            if a.json {
                print_json(out, &report)?;
            } else {
                print_clean(out, &report).map_err(CliError::Output)?;
            }
            if report.failed.is_empty() {
                Ok(())
            } else {
                Err(CliError::CleanIncomplete {
                    failed: report.failed.len(),
                })
            }
        }
    }
}

fn print_json<T: Serialize>(out: &mut dyn Write, value: &T) -> Result<(), CliError> {
    serde_json::to_writer_pretty(&mut *out, value).map_err(CliError::Json)?;
    writeln!(out).map_err(CliError::Output)
}

/// Writes rows as left-aligned columns separated by two spaces.
fn table(out: &mut dyn Write, header: &[&str], rows: &[Vec<String>]) -> io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        s
    };
    writeln!(out, "{}", line(header.to_vec()))?;
    for row in rows {
        writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut unit = 0;
    let mut whole = bytes;
    let mut rem = 0;
    while whole >= 1024 && unit + 1 < UNITS.len() {
        rem = whole % 1024;
        whole /= 1024;
        unit += 1;
    }
    if unit == 0 {
        format!("{whole} B")
    } else {
        format!("{whole}.{} {}", rem * 10 / 1024, UNITS[unit])
    }
}

fn print_status(out: &mut dyn Write, r: &StatusReport) -> io::Result<()> {
    let source = match &r.topology.source {
        TopologySource::Hwloc => "hwloc".to_owned(),
        TopologySource::Sysfs {
            root,
            hwloc_error: None,
        } => format!("sysfs under {}", root.display()),
        TopologySource::Sysfs {
            root,
            hwloc_error: Some(e),
        } => format!("sysfs under {}; hwloc failed: {e}", root.display()),
    };
    writeln!(out, "NUMA nodes (from {source})")?;
    let rows: Vec<Vec<String>> = r
        .topology
        .nodes
        .iter()
        .map(|n| {
            vec![
                n.id.to_string(),
                if n.cpuset.is_empty() {
                    "-".into()
                } else {
                    n.cpuset.clone()
                },
                n.memory_bytes
                    .map(human_bytes)
                    .unwrap_or_else(|| "?".into()),
            ]
        })
        .collect();
    table(out, &["NODE", "CPUS", "MEMORY"], &rows)?;

    writeln!(out)?;
    match r.hugepages.default_size {
        Some(s) => writeln!(out, "Hugepage pools (default size {s})")?,
        None => writeln!(
            out,
            "Hugepage pools (no default size: kernel without hugetlb?)"
        )?,
    }
    if r.hugepages.pools.is_empty() {
        writeln!(out, "(none)")?;
    } else {
        let mut rows = Vec::new();
        for p in &r.hugepages.pools {
            rows.push(vec![
                p.size.to_string(),
                "all".into(),
                p.total.to_string(),
                p.free.to_string(),
                p.reserved.to_string(),
                p.surplus.to_string(),
                p.in_use().to_string(),
            ]);
            for n in &p.nodes {
                rows.push(vec![
                    p.size.to_string(),
                    n.node.to_string(),
                    n.total.to_string(),
                    n.free.to_string(),
                    "-".into(),
                    n.surplus.to_string(),
                    n.total.saturating_sub(n.free).to_string(),
                ]);
            }
        }
        table(
            out,
            &[
                "SIZE", "NODE", "TOTAL", "FREE", "RESERVED", "SURPLUS", "IN-USE",
            ],
            &rows,
        )?;
    }

    writeln!(out)?;
    writeln!(out, "hugetlbfs mounts")?;
    if r.mounts.is_empty() {
        writeln!(out, "(none)")?;
    } else {
        let rows: Vec<Vec<String>> = r
            .mounts
            .iter()
            .map(|m| {
                vec![
                    m.path.display().to_string(),
                    m.page_size
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "?".into()),
                    m.options.clone(),
                ]
            })
            .collect();
        table(out, &["PATH", "PAGESIZE", "OPTIONS"], &rows)?;
    }

    writeln!(out)?;
    writeln!(out, "netvm region files")?;
    if r.regions.is_empty() {
        writeln!(out, "(none)")?;
    } else {
        let rows: Vec<Vec<String>> = r.regions.iter().map(region_row).collect();
        table(
            out,
            &["PATH", "SIZE", "DOMAIN", "OWNER", "MAGIC", "USERS", "STATE"],
            &rows,
        )?;
    }
    Ok(())
}

fn state_name(s: RegionState) -> &'static str {
    match s {
        RegionState::Live => "live",
        RegionState::Stale => "stale",
        RegionState::InUse => "in-use",
        RegionState::UnknownOwner => "unknown-owner",
    }
}

fn region_row(f: &RegionFile) -> Vec<String> {
    let owner = match (f.owner_pid, f.owner_alive) {
        (Some(pid), Some(true)) => format!("{pid} (alive)"),
        (Some(pid), _) => format!("{pid} (dead)"),
        (None, _) => "?".into(),
    };
    let users = if f.users.is_empty() {
        "-".into()
    } else {
        f.users
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    vec![
        f.path.display().to_string(),
        human_bytes(f.size),
        f.domain.clone().unwrap_or_else(|| "?".into()),
        owner,
        if f.has_magic { "yes" } else { "no" }.into(),
        users,
        state_name(f.state).into(),
    ]
}

fn print_clean(out: &mut dyn Write, r: &regions::CleanReport) -> io::Result<()> {
    let verb = if r.dry_run { "would remove" } else { "removed" };
    for f in &r.removed {
        let pid = f.owner_pid.map(|p| p.to_string()).unwrap_or_default();
        writeln!(out, "{verb} {} (owner pid {pid} is gone)", f.path.display())?;
    }
    for f in &r.kept {
        writeln!(out, "kept {} ({})", f.path.display(), state_name(f.state))?;
    }
    for f in &r.failed {
        writeln!(
            out,
            "FAILED to remove {}: {}",
            f.file.path.display(),
            f.error
        )?;
    }
    writeln!(
        out,
        "{verb} {} stale region file(s), kept {}, failed {}",
        r.removed.len(),
        r.kept.len(),
        r.failed.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{fake_meminfo, fake_pool, TempDir};

    #[test]
    fn arguments_parse() {
        let cli = Cli::try_parse_from([
            "netvm-hugepages",
            "reserve",
            "--count",
            "8",
            "--size",
            "1G",
            "--node",
            "0",
        ])
        .unwrap();
        match cli.command {
            Command::Reserve(a) => {
                assert_eq!(
                    (a.count, a.size, a.node),
                    (8, Some(PageSize::SIZE_1G), Some(0))
                );
            }
            other => panic!("{other:?}"),
        }
        let cli = Cli::try_parse_from(["netvm-hugepages", "mount"]).unwrap();
        match cli.command {
            Command::Mount(a) => assert_eq!(a.path, PathBuf::from("/dev/hugepages")),
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from([
            "netvm-hugepages",
            "reserve",
            "--count",
            "1",
            "--size",
            "2X"
        ])
        .is_err());
        assert!(Cli::try_parse_from(["netvm-hugepages", "reserve"]).is_err());
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(2 * 1024 * 1024), "2.0 MiB");
        assert_eq!(human_bytes(7_610_781_696), "7.0 GiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }

    #[test]
    fn status_of_a_fake_tree() {
        let t = TempDir::new("cli-status");
        fake_meminfo(&t, Some(2048));
        fake_pool(&t, 2048, (64, 60, 2, 0), &[(0, 64, 60, 0)]);
        t.file("sys/devices/system/node/node0/cpulist", "0-3\n");
        let huge = t.dir("mnt/huge");
        t.file(
            "proc/mounts",
            format!("nodev {} hugetlbfs rw,pagesize=2M 0 0\n", huge.display()),
        );
        t.file("mnt/huge/netvm-a.1234.region", REGIONS_MAGIC_FILE);
        t.dir("proc/1234");
        let cli = Cli::try_parse_from([
            "netvm-hugepages",
            "status",
            "--root",
            t.path().to_str().unwrap(),
        ])
        .unwrap();
        let mut out = Vec::new();
        run(&cli, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("2M    all   64     60    2         0        4"),
            "{text}"
        );
        assert!(text.contains("1234 (alive)"), "{text}");
        assert!(text.contains("0-3"), "{text}");

        let r = StatusReport::gather(t.path(), &[]).unwrap();
        assert_eq!(r.regions.len(), 1);
        assert_eq!(r.regions[0].state, RegionState::Live);
        assert_eq!(r.mounts[0].path, huge);
    }

    const REGIONS_MAGIC_FILE: &[u8] = b"NETVMSHM\0\0\0\0\0\0\0\0";
}
