//! Two processes on one file-backed region pass descriptors both ways at once, with sequence
//! checks: nothing lost, duplicated, reordered or torn.
//!
//! The test re-executes its own binary as the child (`child_role`, selected by an environment
//! variable; without it that test does nothing). Ring A carries parent → child, ring B
//! child → parent, each an independent stream of `NETVM_SHM_TWO_PROCESS_COUNT` descriptors
//! (default 10,000,000), starting just below the u32 wrap. The region file lives in
//! /dev/hugepages when that is a writable hugetlbfs mount, else in the temp dir, and is removed
//! even if the test fails.
// Test data and measurements deliberately truncate (sequence numbers into u32/u16 fields,
// counters into indices).
#![allow(clippy::cast_possible_truncation)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use netvm_shm::{Consumer, Descriptor, Producer, Region};

mod common;

const ENV_CHILD: &str = "NETVM_SHM_TWO_PROCESS_CHILD";
const ENV_COUNT: &str = "NETVM_SHM_TWO_PROCESS_COUNT";
const DEFAULT_COUNT: u64 = 10_000_000;
const BURST: usize = 32;
/// Parent → child: RX ring of worker 0 of slot 0.
const RING_A: u32 = 0;
/// Child → parent: TX ring of slot 0 (one RX ring per slot in these params).
const RING_B: u32 = 1;

fn count() -> u64 {
    std::env::var(ENV_COUNT)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_COUNT)
}

/// The descriptor carrying sequence number `seq` of stream `stream`; every field depends on
/// `seq`, so a torn or stale copy is caught.
fn mk(stream: u32, seq: u64) -> Descriptor {
    let lo = seq as u32;
    Descriptor {
        buf_idx: lo,
        data_off: (seq % 128) as u16,
        data_len: (seq % 1500) as u16 + 1,
        flow_hash: lo.wrapping_mul(0x9e37_79b9) ^ stream,
        verdict: (seq % 5) as u8,
        in_port: (seq >> 32) as u8,
        verdict_arg: (lo >> 16) as u16 ^ stream as u16,
    }
}

/// Sends `count` of stream `out_stream` on `p` while receiving and checking `count` of
/// `in_stream` on `c`; spins (never sleeps) when neither side can progress, and asks `alive`
/// now and then whether the peer still exists.
fn pump(
    p: &mut Producer,
    c: &mut Consumer,
    out_stream: u32,
    in_stream: u32,
    count: u64,
    mut alive: impl FnMut() -> bool,
) {
    let mut next_send = 0u64;
    let mut next_recv = 0u64;
    let mut batch = [Descriptor::default(); BURST];
    let mut out = [Descriptor::default(); BURST];
    let mut idle = 0u64;
    while next_send < count || next_recv < count {
        let mut progressed = false;
        if next_send < count {
            let k = (count - next_send).min(BURST as u64) as usize;
            for (i, d) in batch[..k].iter_mut().enumerate() {
                *d = mk(out_stream, next_send + i as u64);
            }
            let n = p
                .enqueue_burst(&batch[..k])
                .expect("consumer index corrupt");
            next_send += n as u64;
            progressed |= n > 0;
        }
        let n = c.dequeue_burst(&mut out).expect("producer index corrupt");
        for d in &out[..n] {
            assert!(next_recv < count, "received more than {count} descriptors");
            let want = mk(in_stream, next_recv);
            assert_eq!(*d, want, "descriptor {next_recv} of stream {in_stream}");
            next_recv += 1;
        }
        progressed |= n > 0;
        if progressed {
            idle = 0;
        } else {
            idle += 1;
            if idle % 64 == 0 {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
            if idle % (1 << 16) == 0 {
                assert!(
                    alive(),
                    "peer gone with {next_send} sent and {next_recv} received of {count}"
                );
            }
        }
    }
}

/// The child side; a no-op unless the parent started us.
#[test]
fn child_role() {
    let Ok(path) = std::env::var(ENV_CHILD) else {
        return;
    };
    let parent = std::os::unix::process::parent_id();
    let region = Region::attach_file(Path::new(&path)).expect("attach");
    assert_ne!(region.generation(), 0);
    let mut c = region.consumer(RING_A).expect("consumer A");
    let mut p = region.producer(RING_B).expect("producer B");
    pump(&mut p, &mut c, 2, 1, count(), || {
        std::os::unix::process::parent_id() == parent
    });
}

fn create_region(dir: &Path) -> Option<(Region, common::FileGuard)> {
    let path: PathBuf = common::unique_path(dir, "2proc");
    let guard = common::FileGuard(path.clone());
    match Region::create(&path, &common::params(1, 1, 1024)) {
        Ok(r) => Some((r, guard)),
        Err(e) => {
            eprintln!("cannot create region in {}: {e}", dir.display());
            None
        }
    }
}

#[test]
fn two_processes_both_directions() {
    let count = count();
    let (region, guard) = common::hugepage_dir()
        .and_then(|d| create_region(&d))
        .or_else(|| create_region(&common::tmp_dir()))
        .expect("cannot create a region file anywhere");
    eprintln!(
        "region file {} (hugetlbfs: {:?}), {count} descriptors each way",
        guard.0.display(),
        region.on_hugetlbfs()
    );
    region.reset_ring(RING_A, u32::MAX - 5000).unwrap();
    region.reset_ring(RING_B, u32::MAX - 7777).unwrap();
    let mut p = region.producer(RING_A).unwrap();
    let mut c = region.consumer(RING_B).unwrap();

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_role", "--nocapture", "--test-threads=1"])
        .env(ENV_CHILD, &guard.0)
        .env(ENV_COUNT, count.to_string())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn child");

    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pump(&mut p, &mut c, 1, 2, count, || {
            matches!(child.try_wait(), Ok(None))
        });
    }));
    if result.is_err() {
        let _ = child.kill();
    }
    let status = child.wait().expect("wait for child");
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
    assert!(status.success(), "child failed: {status}");
    assert_eq!(p.index(), (u32::MAX - 5000).wrapping_add(count as u32));
    assert_eq!(c.index(), (u32::MAX - 7777).wrapping_add(count as u32));
    drop(guard);
}
