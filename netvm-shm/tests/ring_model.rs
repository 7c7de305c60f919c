//! Property test of the SPSC ring against a `VecDeque` model, on both back ends (shared-memory
//! region and heap), with start indices anywhere in `u32` (including just below the wrap).
// Test data and measurements deliberately truncate (sequence numbers into u32/u16 fields,
// counters into indices).
#![allow(clippy::cast_possible_truncation)]

use std::collections::VecDeque;

use netvm_shm::{Consumer, Descriptor, HeapRing, Producer, Region, RingMem};
use proptest::prelude::*;

mod common;

const MAX_CAP: usize = 64;

#[derive(Clone, Debug)]
enum Op {
    Enq(usize),
    Deq(usize),
    EnqBulk(usize),
    DeqBulk(usize),
}

fn op(cap: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..=2 * cap).prop_map(Op::Enq),
        (0..=2 * cap).prop_map(Op::Deq),
        (0..=cap + 1).prop_map(Op::EnqBulk),
        (0..=cap + 1).prop_map(Op::DeqBulk),
    ]
}

fn start_index() -> impl Strategy<Value = u32> {
    prop_oneof![(u32::MAX - 300..=u32::MAX), Just(0u32), any::<u32>(),]
}

fn desc(seq: u64) -> Descriptor {
    let mut d = Descriptor::new(seq as u32, (seq % 128) as u16, (seq % 1500 + 1) as u16);
    d.flow_hash = (seq >> 32) as u32 ^ 0xdead_beef;
    d.verdict = (seq % 5) as u8;
    d
}

fn run<M: RingMem>(mut p: Producer<M>, mut c: Consumer<M>, ops: &[Op]) {
    let cap = p.capacity() as usize;
    let mut model: VecDeque<Descriptor> = VecDeque::new();
    let mut next = 0u64;
    let mut out = vec![Descriptor::default(); 2 * MAX_CAP + 1];
    for o in ops {
        match *o {
            Op::Enq(n) => {
                let batch: Vec<_> = (0..n as u64).map(|i| desc(next + i)).collect();
                let got = p.enqueue_burst(&batch).unwrap();
                assert_eq!(got, n.min(cap - model.len()));
                model.extend(batch[..got].iter().copied());
                next += got as u64;
            }
            Op::Deq(n) => {
                let got = c.dequeue_burst(&mut out[..n]).unwrap();
                assert_eq!(got, n.min(model.len()));
                for d in &out[..got] {
                    assert_eq!(Some(*d), model.pop_front());
                }
            }
            Op::EnqBulk(n) => {
                let batch: Vec<_> = (0..n as u64).map(|i| desc(next + i)).collect();
                let fits = n <= cap - model.len();
                assert_eq!(p.enqueue_bulk(&batch).unwrap(), fits);
                if fits {
                    model.extend(batch.iter().copied());
                    next += n as u64;
                }
            }
            Op::DeqBulk(n) => {
                let sentinel = Descriptor::new(u32::MAX, 7, 7);
                out[..n].fill(sentinel);
                let enough = n <= model.len();
                assert_eq!(c.dequeue_bulk(&mut out[..n]).unwrap(), enough);
                if enough {
                    for d in &out[..n] {
                        assert_eq!(Some(*d), model.pop_front());
                    }
                } else {
                    assert!(out[..n].iter().all(|d| *d == sentinel), "nothing written");
                }
            }
        }
        assert_eq!(p.len().unwrap() as usize, model.len());
        assert_eq!(p.free_count().unwrap() as usize, cap - model.len());
        assert_eq!(c.len().unwrap() as usize, model.len());
        assert_eq!(c.is_empty().unwrap(), model.is_empty());
        assert_eq!(p.index().wrapping_sub(c.index()) as usize, model.len());
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn shm_ring_matches_model(
        cap_log in 1u32..=6,
        start in start_index(),
        ops in prop::collection::vec(op(MAX_CAP), 1..200),
    ) {
        let cap = 1u32 << cap_log;
        let region = Region::create_anonymous(&common::params(2, 2, cap)).unwrap();
        let ring = region.geometry().slot_rings(1).unwrap().tx;
        region.reset_ring(ring, start).unwrap();
        let p = region.producer(ring).unwrap();
        let c = region.consumer(ring).unwrap();
        prop_assert_eq!(p.index(), start);
        run(p, c, &ops);
    }

    #[test]
    fn heap_ring_matches_model(
        cap_log in 1u32..=6,
        start in start_index(),
        ops in prop::collection::vec(op(MAX_CAP), 1..200),
    ) {
        let (p, c) = HeapRing::new(1 << cap_log, start);
        run(p, c, &ops);
    }
}

#[test]
fn fill_drain_across_wrap() {
    let region = Region::create_anonymous(&common::params(1, 1, 8)).unwrap();
    region.reset_ring(0, u32::MAX - 3).unwrap();
    let mut p = region.producer(0).unwrap();
    let mut c = region.consumer(0).unwrap();
    let mut out = [Descriptor::default(); 16];
    for round in 0..10u32 {
        let batch: Vec<_> = (0..16)
            .map(|i| Descriptor::new(round * 100 + i, 0, 1))
            .collect();
        assert_eq!(p.enqueue_burst(&batch).unwrap(), 8);
        assert_eq!(p.enqueue_burst(&batch[8..]).unwrap(), 0);
        assert_eq!(c.dequeue_burst(&mut out).unwrap(), 8);
        for (i, d) in out[..8].iter().enumerate() {
            assert_eq!(d.buf_idx, round * 100 + i as u32);
        }
        assert_eq!(c.dequeue_burst(&mut out).unwrap(), 0);
    }
    // Empty bursts are fine.
    assert_eq!(p.enqueue_burst(&[]).unwrap(), 0);
    assert_eq!(c.dequeue_burst(&mut []).unwrap(), 0);
}

#[test]
fn one_handle_per_role() {
    let region = Region::create_anonymous(&common::params(1, 1, 8)).unwrap();
    let p = region.producer(1).unwrap();
    assert!(matches!(
        region.producer(1),
        Err(netvm_shm::RegionError::RingInUse { ring: 1, .. })
    ));
    assert!(region.reset_ring(1, 0).is_err());
    let c = region.consumer(1).unwrap();
    assert!(region.consumer(1).is_err());
    // A clone of the region shares the claims.
    assert!(region.clone().producer(1).is_err());
    drop(p);
    drop(c);
    region.reset_ring(1, 5).unwrap();
    assert_eq!(region.producer(1).unwrap().index(), 5);
    assert!(matches!(
        region.producer(2),
        Err(netvm_shm::RegionError::IndexOutOfRange { what: "ring", .. })
    ));
}

#[test]
fn handles_outlive_region_and_cross_threads() {
    let region = Region::create_anonymous(&common::params(1, 1, 64)).unwrap();
    let mut p = region.producer(0).unwrap();
    let mut c = region.consumer(0).unwrap();
    drop(region);
    const N: u32 = 100_000;
    let t = std::thread::spawn(move || {
        let mut next = 0;
        while next < N {
            let batch: Vec<_> = (next..(next + 32).min(N))
                .map(|i| Descriptor::new(i, 0, 1))
                .collect();
            let n = p.enqueue_burst(&batch).unwrap();
            next += n as u32;
            p.wake_if_sleeping();
            if n == 0 {
                std::thread::yield_now();
            }
        }
    });
    let mut expect = 0;
    let mut out = [Descriptor::default(); 32];
    while expect < N {
        let n = c.dequeue_burst(&mut out).unwrap();
        for d in &out[..n] {
            assert_eq!(d.buf_idx, expect);
            expect += 1;
        }
        if n == 0 {
            std::thread::yield_now();
        }
    }
    t.join().unwrap();
}
