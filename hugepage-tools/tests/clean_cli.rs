//! `netvm-hugepages clean --dir`: only stale region files go.

mod common;

use std::fs;

use common::{dead_pid, netvm_hugepages, stderr, stdout, TempDir};
use hugepage_tools::regions::{clean_stale_in, find_region_files_in, region_file_name, ProcRoot};
use hugepage_tools::{RegionState, REGION_MAGIC};
use serde_json::Value;

struct Fixture {
    dir: TempDir,
    stale: String,
    live: String,
    other: Vec<&'static str>,
}

fn fixture(tag: &str) -> Fixture {
    let dir = TempDir::new(tag);
    let stale = region_file_name("stale", dead_pid()).unwrap();
    let live = region_file_name("live", std::process::id()).unwrap();
    let mut header = REGION_MAGIC.to_vec();
    header.resize(4096, 0);
    fs::write(dir.path().join(&stale), &header).unwrap();
    fs::write(dir.path().join(&live), &header).unwrap();
    // Not netvm's: no prefix, no magic, even though the name has a dead-looking pid.
    fs::write(dir.path().join("notes.1.region"), b"keep me").unwrap();
    fs::write(dir.path().join("random.bin"), b"\0\0\0\0\0\0\0\0").unwrap();
    // netvm's but with no owner in the name: never removed.
    fs::write(dir.path().join("netvm-unnamed"), &header).unwrap();
    Fixture {
        dir,
        stale,
        live,
        other: vec!["notes.1.region", "random.bin", "netvm-unnamed"],
    }
}

#[test]
fn cli_removes_only_the_stale_region() {
    let f = fixture("clean-cli");
    let d = f.dir.path().to_str().unwrap();

    let dry = netvm_hugepages(&["clean", "--dry-run", "--dir", d]);
    assert!(dry.status.success(), "{}", stderr(&dry));
    assert!(
        stdout(&dry).contains(&format!("would remove {d}/{}", f.stale)),
        "{}",
        stdout(&dry)
    );
    assert!(
        f.dir.path().join(&f.stale).exists(),
        "dry run removed the file"
    );

    let out = netvm_hugepages(&["clean", "--dir", d, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let removed: Vec<&str> = report["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert_eq!(removed, vec![format!("{d}/{}", f.stale)]);
    assert!(report["failed"].as_array().unwrap().is_empty());

    assert!(
        !f.dir.path().join(&f.stale).exists(),
        "stale region still there"
    );
    assert!(f.dir.path().join(&f.live).exists(), "live region removed");
    for name in &f.other {
        assert!(f.dir.path().join(name).exists(), "{name} removed");
    }

    // A second run finds nothing more to remove.
    let again = netvm_hugepages(&["clean", "--dir", d]);
    assert!(again.status.success());
    assert!(
        stdout(&again).contains("removed 0 stale region file(s)"),
        "{}",
        stdout(&again)
    );
}

#[test]
fn status_lists_regions_with_their_state() {
    let f = fixture("clean-status");
    let d = f.dir.path().to_str().unwrap();
    let out = netvm_hugepages(&["status", "--json", "--dir", d]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let regions = json["regions"].as_array().unwrap();
    let state = |name: &str| {
        regions
            .iter()
            .find(|r| r["path"].as_str().unwrap().ends_with(name))
            .map(|r| r["state"].as_str().unwrap().to_owned())
    };
    assert_eq!(state(&f.stale).as_deref(), Some("stale"));
    assert_eq!(state(&f.live).as_deref(), Some("live"));
    assert_eq!(state("netvm-unnamed").as_deref(), Some("unknown_owner"));
    assert_eq!(state("notes.1.region"), None);
    assert_eq!(state("random.bin"), None);
    let live = regions
        .iter()
        .find(|r| r["path"].as_str().unwrap().ends_with(&f.live))
        .unwrap();
    assert_eq!(
        live["owner_pid"].as_u64(),
        Some(u64::from(std::process::id()))
    );
    assert_eq!(live["size"].as_u64(), Some(4096));
    assert_eq!(live["has_magic"].as_bool(), Some(true));
}

#[test]
fn library_keeps_a_dead_owners_region_while_it_is_open() {
    let f = fixture("clean-open");
    let dirs = [f.dir.path().to_owned()];
    // This process holds the stale file open: it is in use, so it stays.
    let held = fs::File::open(f.dir.path().join(&f.stale)).unwrap();
    let files = find_region_files_in(&dirs, &ProcRoot::system()).unwrap();
    let stale = files.iter().find(|r| r.path.ends_with(&f.stale)).unwrap();
    assert_eq!(stale.state, RegionState::InUse);
    assert!(stale.users.contains(&std::process::id()));
    let report = clean_stale_in(&dirs, &ProcRoot::system(), false).unwrap();
    assert!(report.removed.is_empty());
    assert!(f.dir.path().join(&f.stale).exists());
    drop(held);
    let report = clean_stale_in(&dirs, &ProcRoot::system(), false).unwrap();
    assert_eq!(report.removed.len(), 1);
    assert!(!f.dir.path().join(&f.stale).exists());
}

#[test]
fn missing_dir_fails_with_the_path() {
    let f = TempDir::new("clean-missing");
    let missing = f.path().join("nope");
    let out = netvm_hugepages(&["clean", "--dir", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("cannot scan region files") && err.contains("nope"),
        "{err}"
    );
    assert_eq!(
        err.lines().count(),
        1,
        "the error chain is printed once: {err}"
    );
}
