//! `netvm-hugepages status --json` against the kernel's own counters.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use common::{netvm_hugepages, stderr, stdout};
use serde_json::Value;

/// The `HugePages_*` and `Hugepagesize` lines of /proc/meminfo (absent lines are absent).
fn meminfo() -> BTreeMap<String, u64> {
    let text = fs::read_to_string("/proc/meminfo").expect("read /proc/meminfo");
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            if !(k.starts_with("HugePages_") || k == "Hugepagesize") {
                return None;
            }
            Some((k.to_owned(), v.split_whitespace().next()?.parse().ok()?))
        })
        .collect()
}

/// Per size in KiB: (nr, free, resv, surplus) from /sys/kernel/mm/hugepages.
fn sysfs_pools() -> BTreeMap<u64, [u64; 4]> {
    let dir = Path::new("/sys/kernel/mm/hugepages");
    let Ok(entries) = fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    let read = |p: &Path, f: &str| -> u64 {
        fs::read_to_string(p.join(f))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    entries
        .map(|e| e.unwrap().path())
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_owned();
            let kib: u64 = name
                .strip_prefix("hugepages-")?
                .strip_suffix("kB")?
                .parse()
                .ok()?;
            Some((
                kib,
                [
                    read(&p, "nr_hugepages"),
                    read(&p, "free_hugepages"),
                    read(&p, "resv_hugepages"),
                    read(&p, "surplus_hugepages"),
                ],
            ))
        })
        .collect()
}

fn u(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

/// Runs `status --json` until the kernel counters are the same before and after the run
/// (other processes may be allocating hugepages meanwhile), then returns the three views.
fn stable_snapshot() -> (BTreeMap<String, u64>, BTreeMap<u64, [u64; 4]>, Value) {
    for _ in 0..100 {
        let before = (meminfo(), sysfs_pools());
        let out = netvm_hugepages(&["status", "--json"]);
        assert!(out.status.success(), "status failed: {}", stderr(&out));
        let after = (meminfo(), sysfs_pools());
        if before == after {
            let json: Value = serde_json::from_slice(&out.stdout).expect("status prints JSON");
            return (before.0, before.1, json);
        }
    }
    panic!("hugepage counters never held still across a status run");
}

#[test]
fn status_json_matches_proc_meminfo_and_sysfs() {
    let (mem, sys, json) = stable_snapshot();
    let pools = json["hugepages"]["pools"].as_array().expect("pools array");

    // Every size in sysfs appears with the same four counters, and nothing else appears.
    assert_eq!(pools.len(), sys.len(), "{json}");
    for pool in pools {
        let kib = u(pool, "size_kib");
        let [nr, free, resv, surp] = sys[&kib];
        assert_eq!(
            [
                u(pool, "total"),
                u(pool, "free"),
                u(pool, "reserved"),
                u(pool, "surplus")
            ],
            [nr, free, resv, surp],
            "pool {kib} kB"
        );
        let nodes = pool["nodes"].as_array().unwrap();
        if !nodes.is_empty() {
            let sum: u64 = nodes.iter().map(|n| u(n, "total")).sum();
            assert_eq!(sum, nr, "per-node totals of {kib} kB add up");
        }
    }

    // The default size's pool agrees with /proc/meminfo; without hugepages, totals are 0.
    let default_kib = mem.get("Hugepagesize").copied();
    let default_pool = default_kib.and_then(|k| pools.iter().find(|p| u(p, "size_kib") == k));
    let got = default_pool.map_or([0; 4], |p| {
        [
            u(p, "total"),
            u(p, "free"),
            u(p, "reserved"),
            u(p, "surplus"),
        ]
    });
    let want = [
        "HugePages_Total",
        "HugePages_Free",
        "HugePages_Rsvd",
        "HugePages_Surp",
    ]
    .map(|k| mem.get(k).copied().unwrap_or(0));
    assert_eq!(got, want, "default pool vs /proc/meminfo");
    match default_kib {
        Some(k) => {
            let size = json["hugepages"]["default_size"].as_str().unwrap();
            let parsed: hugepage_tools::PageSize = size.parse().unwrap();
            assert_eq!(parsed.kib(), k);
        }
        None => assert!(json["hugepages"]["default_size"].is_null()),
    }

    // The rest of the report is there.
    assert!(!json["topology"]["nodes"].as_array().unwrap().is_empty());
    assert!(json["mounts"].is_array());
    assert!(json["regions"].is_array());
}

#[test]
fn status_table_runs() {
    let out = netvm_hugepages(&["status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for heading in [
        "NUMA nodes",
        "Hugepage pools",
        "hugetlbfs mounts",
        "netvm region files",
    ] {
        assert!(text.contains(heading), "{text}");
    }
}

#[test]
fn library_status_matches_meminfo() {
    for _ in 0..100 {
        let before = meminfo();
        let st = hugepage_tools::HugepageStatus::read().unwrap();
        if before != meminfo() {
            continue;
        }
        let total = st.default_pool().map_or(0, |p| p.total);
        assert_eq!(total, before.get("HugePages_Total").copied().unwrap_or(0));
        return;
    }
    panic!("hugepage counters never held still");
}
