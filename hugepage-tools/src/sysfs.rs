//! Small readers for the sysfs and procfs files this crate uses, relative to a root directory
//! (`/` on a real system, a fake tree in tests). They return `io::Result` and leave it to each
//! caller to name the path in its own error type.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::pagesize::PageSize;

/// The root of the real system's sysfs and procfs.
pub const SYSTEM_ROOT: &str = "/";

/// `<root>/sys/kernel/mm/hugepages`: one directory per page size the kernel supports.
pub(crate) fn hugepages_dir(root: &Path) -> PathBuf {
    root.join("sys/kernel/mm/hugepages")
}

/// `<root>/sys/devices/system/node`: one `nodeN` directory per NUMA node.
pub(crate) fn nodes_dir(root: &Path) -> PathBuf {
    root.join("sys/devices/system/node")
}

/// `<root>/sys/devices/system/node/node<N>`.
pub(crate) fn node_dir(root: &Path, node: u32) -> PathBuf {
    nodes_dir(root).join(format!("node{node}"))
}

/// `<root>/proc/meminfo`.
pub(crate) fn meminfo_path(root: &Path) -> PathBuf {
    root.join("proc/meminfo")
}

/// Parses a decimal counter as found in sysfs (`"1024\n"`).
pub(crate) fn parse_u64(text: &str) -> Option<u64> {
    let t = text.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

/// Finds `key:` in meminfo-style text and returns its first number (units are not converted).
/// Also accepts the per-node form `Node 0 MemTotal:  123 kB`.
pub(crate) fn meminfo_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (name, rest) = line.split_once(':')?;
        let name = name.split_whitespace().last()?;
        if name != key {
            return None;
        }
        parse_u64(rest.split_whitespace().next()?)
    })
}

/// Page sizes with a `hugepages-<N>kB` directory in `dir`, sorted ascending. A missing `dir`
/// (a kernel without hugetlb, a node without hugepages) gives an empty list.
pub(crate) fn list_page_sizes(dir: &Path) -> io::Result<Vec<PageSize>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut sizes = Vec::new();
    for entry in entries {
        let entry = entry?;
        if let Some(size) = entry
            .file_name()
            .to_str()
            .and_then(PageSize::from_sysfs_dir_name)
        {
            sizes.push(size);
        }
    }
    sizes.sort();
    Ok(sizes)
}

/// NUMA node ids with a `node<N>` directory under `<root>/sys/devices/system/node`, sorted.
/// A missing directory (no NUMA support compiled in) gives an empty list.
pub(crate) fn list_nodes(root: &Path) -> io::Result<Vec<u32>> {
    let entries = match fs::read_dir(nodes_dir(root)) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut nodes = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(id) = name.to_str().and_then(|n| n.strip_prefix("node")) else {
            continue;
        };
        if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(id) = id.parse() {
                nodes.push(id);
            }
        }
    }
    nodes.sort_unstable();
    Ok(nodes)
}

/// Parses a kernel cpu list (`0-3,8,10-11`; empty for none) into sorted, deduplicated ids.
pub(crate) fn parse_cpulist(text: &str) -> Option<Vec<u32>> {
    let mut cpus = Vec::new();
    let text = text.trim();
    if text.is_empty() {
        return Some(cpus);
    }
    for part in text.split(',') {
        let part = part.trim();
        match part.split_once('-') {
            Some((lo, hi)) => {
                let lo: u32 = parse_u64(lo).and_then(|v| u32::try_from(v).ok())?;
                let hi: u32 = parse_u64(hi).and_then(|v| u32::try_from(v).ok())?;
                if lo > hi {
                    return None;
                }
                cpus.extend(lo..=hi);
            }
            None => cpus.push(parse_u64(part).and_then(|v| u32::try_from(v).ok())?),
        }
    }
    cpus.sort_unstable();
    cpus.dedup();
    Some(cpus)
}

/// Formats sorted, deduplicated cpu ids as a kernel cpu list (`0-3,8`).
pub(crate) fn format_cpulist(cpus: &[u32]) -> String {
    let mut out = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let start = cpus[i];
        let mut end = start;
        while i + 1 < cpus.len() && end.checked_add(1) == Some(cpus[i + 1]) {
            i += 1;
            end = cpus[i];
        }
        if start == end {
            out.push(start.to_string());
        } else {
            out.push(format!("{start}-{end}"));
        }
        i += 1;
    }
    out.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_parsing() {
        let text = "MemTotal:       24684092 kB\nHugePages_Total:    1024\nHugePages_Free:     1000\nHugepagesize:       2048 kB\n";
        assert_eq!(meminfo_value(text, "HugePages_Total"), Some(1024));
        assert_eq!(meminfo_value(text, "HugePages_Free"), Some(1000));
        assert_eq!(meminfo_value(text, "Hugepagesize"), Some(2048));
        assert_eq!(meminfo_value(text, "HugePages_Rsvd"), None);
        let node = "Node 0 MemTotal:        7432404 kB\nNode 0 MemFree:  1 kB\n";
        assert_eq!(meminfo_value(node, "MemTotal"), Some(7_432_404));
    }

    #[test]
    fn counters() {
        assert_eq!(parse_u64("1024\n"), Some(1024));
        assert_eq!(parse_u64(" 0 "), Some(0));
        assert_eq!(parse_u64(""), None);
        assert_eq!(parse_u64("-1"), None);
        assert_eq!(parse_u64("12a"), None);
    }

    #[test]
    fn cpulists() {
        assert_eq!(
            parse_cpulist("0-3,8,10-11\n"),
            Some(vec![0, 1, 2, 3, 8, 10, 11])
        );
        assert_eq!(parse_cpulist(""), Some(vec![]));
        assert_eq!(parse_cpulist("3-1"), None);
        assert_eq!(parse_cpulist("x"), None);
        assert_eq!(format_cpulist(&[0, 1, 2, 3, 8, 10, 11]), "0-3,8,10-11");
        assert_eq!(format_cpulist(&[]), "");
        assert_eq!(format_cpulist(&[5]), "5");
        assert_eq!(
            format_cpulist(&[u32::MAX - 1, u32::MAX]),
            format!("{}-{}", u32::MAX - 1, u32::MAX)
        );
    }
}
