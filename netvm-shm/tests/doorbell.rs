//! The doorbell: futex sleep/wake between threads and between processes, poll-sleep mode,
//! timeouts. Waits use long timeouts only as a safety net: a lost wake-up shows up as
//! `TimedOut`, which fails the test (no timing is measured or asserted).

use std::process::{Command, Stdio};
use std::time::Duration;

use netvm_shm::{Descriptor, HeapRing, Region, WaitMode, WaitOutcome};

mod common;

/// Long enough never to expire on a loaded CI machine unless a wake-up was lost.
const SAFETY_NET: Duration = Duration::from_secs(30);
const ROUNDS: u32 = 200;
const ENV_CHILD: &str = "NETVM_SHM_DOORBELL_CHILD";

#[test]
fn ready_and_timeout_without_a_producer() {
    let region = Region::create_anonymous(&common::params(1, 1, 16)).unwrap();
    let mut p = region.producer(0).unwrap();
    let mut c = region.consumer(0).unwrap();
    assert_eq!(c.wait_mode(), WaitMode::Futex);
    assert_eq!(
        c.wait_for_work(Duration::from_millis(1)).unwrap(),
        WaitOutcome::TimedOut
    );
    assert!(!p.consumer_sleeping(), "sleeping is cleared after a wait");
    assert!(!p.wake_if_sleeping());
    p.enqueue_burst(&[Descriptor::new(0, 0, 1)]).unwrap();
    assert_eq!(c.wait_for_work(SAFETY_NET).unwrap(), WaitOutcome::Ready);
    c.set_wait_mode(WaitMode::PollSleep {
        interval: Duration::from_micros(100),
    });
    assert_eq!(c.wait_for_work(SAFETY_NET).unwrap(), WaitOutcome::Ready);
    let mut out = [Descriptor::default(); 1];
    c.dequeue_burst(&mut out).unwrap();
    assert_eq!(
        c.wait_for_work(Duration::from_millis(1)).unwrap(),
        WaitOutcome::TimedOut
    );
    assert_eq!(
        c.wait_for_work(Duration::ZERO).unwrap(),
        WaitOutcome::TimedOut
    );
}

/// Consumer side of a ping-pong: sleeps whenever its ring is empty and echoes what it gets.
fn echo_consumer<M: netvm_shm::RingMem>(
    c: &mut netvm_shm::Consumer<M>,
    back: &mut netvm_shm::Producer<M>,
    rounds: u32,
) -> (u32, u32) {
    let (mut woken, mut ready) = (0, 0);
    let mut out = [Descriptor::default(); 1];
    for i in 0..rounds {
        loop {
            if c.dequeue_burst(&mut out).unwrap() == 1 {
                assert_eq!(out[0].buf_idx, i);
                break;
            }
            match c.wait_for_work(SAFETY_NET).unwrap() {
                WaitOutcome::Woken => woken += 1,
                WaitOutcome::Ready => ready += 1,
                WaitOutcome::TimedOut => panic!("lost wake-up in round {i}"),
            }
        }
        while back.enqueue_burst(&out).unwrap() == 0 {
            std::thread::yield_now();
        }
    }
    (woken, ready)
}

/// Producer side: waits until the consumer announces it sleeps (so the futex path is really
/// taken), sends one descriptor, rings, and waits for the echo.
fn ping_producer<M: netvm_shm::RingMem>(
    p: &mut netvm_shm::Producer<M>,
    back: &mut netvm_shm::Consumer<M>,
    rounds: u32,
    mut alive: impl FnMut() -> bool,
) -> u32 {
    let mut wakes = 0;
    let mut out = [Descriptor::default(); 1];
    for i in 0..rounds {
        let mut spins = 0u32;
        while !p.consumer_sleeping() {
            std::thread::yield_now();
            spins += 1;
            if spins % 4096 == 0 {
                assert!(alive(), "consumer gone");
            }
        }
        assert_eq!(p.enqueue_burst(&[Descriptor::new(i, 0, 1)]).unwrap(), 1);
        if p.wake_if_sleeping() {
            wakes += 1;
        }
        // A second ring before the consumer ran must not cost another syscall.
        let _ = p.wake_if_sleeping();
        while back.dequeue_burst(&mut out).unwrap() == 0 {
            std::thread::yield_now();
        }
        assert_eq!(out[0].buf_idx, i);
    }
    wakes
}

#[test]
fn futex_between_threads_shm() {
    let region = Region::create_anonymous(&common::params(1, 1, 16)).unwrap();
    let mut p = region.producer(0).unwrap();
    let mut back_c = region.consumer(1).unwrap();
    let mut c = region.consumer(0).unwrap();
    let mut back_p = region.producer(1).unwrap();
    let t = std::thread::spawn(move || echo_consumer(&mut c, &mut back_p, ROUNDS));
    let wakes = ping_producer(&mut p, &mut back_c, ROUNDS, || true);
    let (woken, ready) = t.join().unwrap();
    assert!(wakes <= ROUNDS);
    eprintln!("wakes {wakes}, consumer woken {woken}, ready {ready}");
}

#[test]
fn futex_between_threads_heap() {
    let (mut p, mut c) = HeapRing::new(4, u32::MAX - 3);
    let (mut back_p, mut back_c) = HeapRing::new(4, 0);
    let t = std::thread::spawn(move || echo_consumer(&mut c, &mut back_p, ROUNDS));
    ping_producer(&mut p, &mut back_c, ROUNDS, || true);
    t.join().unwrap();
}

#[test]
fn poll_sleep_needs_no_wake() {
    let (mut p, mut c) = HeapRing::new(4, 0);
    c.set_wait_mode(WaitMode::PollSleep {
        interval: Duration::from_micros(200),
    });
    let t = std::thread::spawn(move || {
        let mut out = [Descriptor::default(); 1];
        for i in 0..20 {
            while c.dequeue_burst(&mut out).unwrap() == 0 {
                let o = c.wait_for_work(SAFETY_NET).unwrap();
                assert_ne!(o, WaitOutcome::TimedOut);
            }
            assert_eq!(out[0].buf_idx, i);
        }
    });
    for i in 0..20 {
        while p.enqueue_burst(&[Descriptor::new(i, 0, 1)]).unwrap() == 0 {
            std::thread::yield_now();
        }
        // Never rung: a poll-sleeping consumer never announces sleep.
        assert!(!p.consumer_sleeping());
        std::thread::yield_now();
    }
    t.join().unwrap();
}

/// Child process: the echoing consumer, sleeping on the futex in the shared file.
#[test]
fn doorbell_child_role() {
    let Ok(path) = std::env::var(ENV_CHILD) else {
        return;
    };
    let region = Region::attach_file(std::path::Path::new(&path)).unwrap();
    let mut c = region.consumer(0).unwrap();
    let mut back = region.producer(1).unwrap();
    let (woken, _) = echo_consumer(&mut c, &mut back, ROUNDS);
    eprintln!("child woken {woken} times");
}

#[test]
fn futex_between_processes() {
    let create = |dir: std::path::PathBuf| {
        let path = common::unique_path(&dir, "doorbell");
        let guard = common::FileGuard(path.clone());
        Region::create(&path, &common::params(1, 1, 16))
            .ok()
            .map(|r| (r, guard))
    };
    let (region, guard) = common::hugepage_dir()
        .and_then(create)
        .or_else(|| create(common::tmp_dir()))
        .expect("cannot create a region file anywhere");
    let file = guard.0.clone();
    let mut p = region.producer(0).unwrap();
    let mut back = region.consumer(1).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "doorbell_child_role",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ENV_CHILD, &file)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        ping_producer(&mut p, &mut back, ROUNDS, || {
            matches!(child.try_wait(), Ok(None))
        })
    }));
    if result.is_err() {
        let _ = child.kill();
    }
    let status = child.wait().unwrap();
    let wakes = result.unwrap_or_else(|e| std::panic::resume_unwind(e));
    assert!(status.success(), "child failed: {status}");
    // The consumer announced sleep before every send, so wakes were really issued.
    assert!(wakes > 0);
    drop(guard);
}
