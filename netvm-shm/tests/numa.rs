//! A region created with a NUMA node really is bound there: `/proc/self/numa_maps` shows the
//! mapping with the `bind:N` policy and every page of it on node N (`N0=` pages only).
//! Node 0 is the node every Linux machine has; region files go to /dev/hugepages when
//! hugetlbfs is mounted there (else /dev/shm) and are removed by the tests.

use std::path::{Path, PathBuf};

use netvm_shm::{Region, RegionError, RegionKind, RegionParams};

fn params(buf_count: u32) -> RegionParams {
    RegionParams {
        kind: RegionKind::Domain,
        domain_id: 0,
        domain_name: "numa".into(),
        slot_count: 0,
        rx_rings_per_slot: 0,
        ring_capacity: 0,
        buf_size: 2176,
        buf_count,
    }
}

fn hugetlbfs_mounted() -> bool {
    std::fs::read_to_string("/proc/mounts")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some("/dev/hugepages") && l.contains("hugetlbfs"))
}

/// A region file path removed on drop (also when the test fails).
struct TempRegion(PathBuf);

impl TempRegion {
    fn new(tag: &str) -> Self {
        let dir = if hugetlbfs_mounted() {
            "/dev/hugepages"
        } else {
            "/dev/shm"
        };
        let p = Path::new(dir).join(format!(
            "netvm-numatest-{tag}.{}.region",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&p);
        Self(p)
    }
}

impl Drop for TempRegion {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The `/proc/self/numa_maps` line of the mapping of `path`.
fn numa_maps_line(path: &Path) -> String {
    let maps = std::fs::read_to_string("/proc/self/numa_maps").expect("numa_maps");
    let needle = format!("file={}", path.display());
    maps.lines()
        .find(|l| l.split_whitespace().any(|w| w == needle))
        .unwrap_or_else(|| panic!("no mapping of {} in numa_maps:\n{maps}", path.display()))
        .to_owned()
}

/// Pages per node (`N<k>=<pages>`) of a numa_maps line.
fn pages_per_node(line: &str) -> Vec<(u32, u64)> {
    line.split_whitespace()
        .filter_map(|w| {
            let (n, c) = w.strip_prefix('N')?.split_once('=')?;
            Some((n.parse().ok()?, c.parse().ok()?))
        })
        .collect()
}

fn page_kib(line: &str) -> u64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("kernelpagesize_kB="))
        .and_then(|v| v.parse().ok())
        .expect("kernelpagesize_kB in numa_maps")
}

#[test]
fn region_on_node_0_is_bound_and_resident_there() {
    let f = TempRegion::new("bind");
    let r = Region::create_on(&f.0, &params(8192), Some(0)).expect("create on node 0");
    let line = numa_maps_line(&f.0);
    eprintln!("{line}");
    assert!(
        line.split_whitespace().nth(1) == Some("bind:0"),
        "policy is not bind:0: {line}"
    );
    // Prefaulted: every page of the mapping is present, and all on node 0.
    let pages = pages_per_node(&line);
    let want = r.mapping_len() as u64 / (page_kib(&line) * 1024);
    assert_eq!(pages, vec![(0, want)], "{line}");
    if hugetlbfs_mounted() {
        assert!(line.contains(" huge "), "not a hugetlbfs mapping: {line}");
    }
    drop(r);

    // create_or_replace_on replaces the existing file (fresh pages under the policy).
    let r = Region::create_or_replace_on(&f.0, &params(8192), Some(0)).expect("replace");
    let line = numa_maps_line(&f.0);
    assert_eq!(line.split_whitespace().nth(1), Some("bind:0"), "{line}");
    assert_eq!(pages_per_node(&line).len(), 1, "{line}");
    assert!(r.generation() > 0);
}

#[test]
fn region_without_node_keeps_the_default_policy() {
    let f = TempRegion::new("default");
    let _r = Region::create(&f.0, &params(64)).expect("create");
    let line = numa_maps_line(&f.0);
    assert_eq!(line.split_whitespace().nth(1), Some("default"), "{line}");
}

#[test]
fn missing_node_is_an_error_naming_it_and_leaves_no_file() {
    let node = (0..64)
        .find(|n| !Path::new(&format!("/sys/devices/system/node/node{n}")).exists())
        .expect("a node id this machine lacks");
    let f = TempRegion::new("nonode");
    let e = Region::create_on(&f.0, &params(64), Some(node)).expect_err("no such node");
    assert!(
        matches!(e, RegionError::NumaBind { node: n, .. } if n == node),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(msg.contains(&format!("NUMA node {node}")), "{msg}");
    assert!(!f.0.exists(), "region file left behind");
    let e = Region::create_on(&f.0, &params(64), Some(u32::MAX)).expect_err("absurd node");
    assert!(matches!(e, RegionError::NumaBind { .. }), "{e:?}");
}
