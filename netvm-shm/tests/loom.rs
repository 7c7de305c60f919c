//! Loom model of the SPSC ring and its doorbell, running the crate's real protocol code over
//! [`netvm_shm::HeapRing`] (loom atomics, loom-tracked descriptor slots).
//!
//! Run with (a separate target dir keeps the loom build from evicting everyone else's):
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p netvm-shm --release --test loom`
#![cfg(loom)]

use std::time::Duration;

use loom::thread;
use netvm_shm::{Descriptor, HeapRing};

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(f);
}

fn d(i: u32) -> Descriptor {
    let mut d = Descriptor::new(i, 0, 1);
    d.flow_hash = !i;
    d
}

/// Capacity 2, 3 items, indices wrapping through u32::MAX: nothing lost, duplicated or
/// reordered, and no data race on a descriptor slot (which loom would report if an ordering in
/// enqueue/dequeue were too weak).
#[test]
fn spsc_in_order_across_wrap() {
    model(|| {
        let (mut p, mut c) = HeapRing::new(2, u32::MAX - 1);
        let t = thread::spawn(move || {
            let mut next = 0;
            while next < 3 {
                if p.enqueue_burst(&[d(next)]).unwrap() == 1 {
                    next += 1;
                } else {
                    thread::yield_now();
                }
            }
        });
        let mut expect = 0;
        let mut out = [Descriptor::default(); 2];
        while expect < 3 {
            let n = c.dequeue_burst(&mut out).unwrap();
            for x in &out[..n] {
                assert_eq!(*x, d(expect));
                expect += 1;
            }
            if n == 0 {
                thread::yield_now();
            }
        }
        t.join().unwrap();
    });
}

/// Bursts: the producer offers two at a time.
#[test]
fn spsc_bursts() {
    model(|| {
        let (mut p, mut c) = HeapRing::new(2, 0);
        let t = thread::spawn(move || {
            let items = [d(0), d(1), d(2)];
            let mut next = 0;
            while next < 3 {
                let n = p.enqueue_burst(&items[next..(next + 2).min(3)]).unwrap();
                next += n;
                if n == 0 {
                    thread::yield_now();
                }
            }
        });
        let mut expect = 0;
        let mut out = [Descriptor::default(); 1];
        while expect < 3 {
            let n = c.dequeue_burst(&mut out).unwrap();
            if n == 1 {
                assert_eq!(out[0], d(expect));
                expect += 1;
            } else {
                thread::yield_now();
            }
        }
        t.join().unwrap();
    });
}

/// Doorbell: a consumer that goes to sleep is always woken. In the loom build the futex wait
/// spins until `wake_seq` changes and ignores the timeout, so a lost wake-up is a consumer that
/// never finishes, which loom reports.
#[test]
fn doorbell_never_loses_a_wakeup() {
    model(|| {
        let (mut p, mut c) = HeapRing::new(2, 0);
        let t = thread::spawn(move || {
            for i in 0..2 {
                while p.enqueue_burst(&[d(i)]).unwrap() == 0 {
                    thread::yield_now();
                }
                p.wake_if_sleeping();
            }
        });
        let mut expect = 0;
        let mut out = [Descriptor::default(); 2];
        while expect < 2 {
            let n = c.dequeue_burst(&mut out).unwrap();
            for x in &out[..n] {
                assert_eq!(*x, d(expect));
                expect += 1;
            }
            if n == 0 {
                c.wait_for_work(Duration::from_secs(3600)).unwrap();
            }
        }
        t.join().unwrap();
    });
}
