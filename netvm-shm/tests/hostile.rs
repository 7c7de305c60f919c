//! A hostile peer: garbage ring indices, a producer index far ahead, random bytes over the ring
//! area and the slot table. Everything must come back as typed errors and counted rejects —
//! never a panic, never an access outside the ring (indices are masked; Miri/ASan-free proof is
//! the masking in `ring.rs`, this test checks the observable behaviour).
// Test data and measurements deliberately truncate (sequence numbers into u32/u16 fields,
// counters into indices).
#![allow(clippy::cast_possible_truncation)]

use std::mem::offset_of;
use std::sync::atomic::{AtomicU32, Ordering};

use netvm_shm::{
    CheckedDesc, Descriptor, Region, RegionError, RejectCounters, RejectReason, RingControl,
    RingError, SlotState,
};
use proptest::prelude::*;

mod common;

/// The shared word at `offset` inside ring `ring`'s control block, as the peer sees it.
fn ring_word(region: &Region, ring: u32, offset: usize) -> &AtomicU32 {
    let g = region.geometry();
    assert!(ring < g.ring_count() && offset + 4 <= netvm_shm::layout::RING_CONTROL_SIZE);
    let off = g.ring_area_offset() + ring as usize * g.ring_stride() + offset;
    // SAFETY: inside the region's mapping (checked above), 4-aligned; accessed atomically.
    unsafe { &*region.as_ptr().as_ptr().add(off).cast::<AtomicU32>() }
}

fn prod_word(region: &Region, ring: u32) -> &AtomicU32 {
    ring_word(region, ring, offset_of!(RingControl, prod))
}

fn cons_word(region: &Region, ring: u32) -> &AtomicU32 {
    ring_word(region, ring, offset_of!(RingControl, cons))
}

#[test]
fn producer_index_far_ahead() {
    let region = Region::create_anonymous(&common::params(1, 1, 16)).unwrap();
    let mut c = region.consumer(1).unwrap();
    let mut out = [Descriptor::default(); 32];
    for bad in [17u32, 1000, u32::MAX / 2, u32::MAX] {
        prod_word(&region, 1).store(bad, Ordering::Release);
        for _ in 0..3 {
            let e = c.dequeue_burst(&mut out).unwrap_err();
            assert_eq!(
                e,
                RingError::IndexCorrupt {
                    prod: bad,
                    cons: 0,
                    capacity: 16
                }
            );
            assert_eq!(e.reason(), RejectReason::RingIndexCorrupt);
            assert_eq!(c.index(), 0, "nothing consumed");
        }
        assert!(c.len().is_err());
        assert!(c.wait_for_work(std::time::Duration::ZERO).is_err());
    }
    // Exactly full is legitimate: 16 garbage descriptors, validated and counted.
    prod_word(&region, 1).store(16, Ordering::Release);
    assert_eq!(c.dequeue_burst(&mut out).unwrap(), 16);
    // And then the ring is empty, not corrupt.
    assert_eq!(c.dequeue_burst(&mut out).unwrap(), 0);
}

#[test]
fn producer_index_moves_backwards() {
    let region = Region::create_anonymous(&common::params(1, 1, 16)).unwrap();
    region.reset_ring(1, 100).unwrap();
    let mut p = region.producer(1).unwrap();
    let mut c = region.consumer(1).unwrap();
    p.enqueue_burst(&[Descriptor::new(0, 0, 1); 4]).unwrap();
    let mut out = [Descriptor::default(); 4];
    assert_eq!(c.dequeue_burst(&mut out).unwrap(), 4);
    // A peer rewinds prod below our cons.
    prod_word(&region, 1).store(103, Ordering::Release);
    assert!(matches!(
        c.dequeue_burst(&mut out),
        Err(RingError::IndexCorrupt {
            prod: 103,
            cons: 104,
            ..
        })
    ));
}

#[test]
fn consumer_index_corrupt() {
    let region = Region::create_anonymous(&common::params(1, 1, 8)).unwrap();
    let mut p = region.producer(0).unwrap();
    // Fill the ring so the next enqueue must read the consumer's index.
    assert_eq!(p.enqueue_burst(&[Descriptor::new(0, 0, 1); 8]).unwrap(), 8);
    for bad in [9u32, 100, u32::MAX] {
        cons_word(&region, 0).store(bad, Ordering::Release);
        let e = p.enqueue_burst(&[Descriptor::new(0, 0, 1)]).unwrap_err();
        assert_eq!(
            e,
            RingError::IndexCorrupt {
                prod: 8,
                cons: bad,
                capacity: 8
            }
        );
        assert!(p.len().is_err());
        assert!(p.free_count().is_err());
    }
    // A consumer that jumps forward within range only hurts itself.
    cons_word(&region, 0).store(8, Ordering::Release);
    assert_eq!(p.enqueue_burst(&[Descriptor::new(0, 0, 1); 8]).unwrap(), 8);
}

#[test]
fn handle_creation_rejects_corrupt_ring() {
    let region = Region::create_anonymous(&common::params(1, 1, 8)).unwrap();
    prod_word(&region, 0).store(1000, Ordering::Relaxed);
    assert!(matches!(
        region.consumer(0),
        Err(RegionError::Ring {
            ring: 0,
            source: RingError::IndexCorrupt { .. }
        })
    ));
    assert!(region.producer(0).is_err());
    // The failed attempts released their claims; a reset recovers the ring.
    region.reset_ring(0, 7).unwrap();
    assert!(region.consumer(0).is_ok());
}

/// Fills `len` bytes at `p` from a xorshift stream.
fn scribble(p: *mut u8, len: usize, seed: u64) {
    let mut x = seed | 1;
    for i in 0..len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // SAFETY: callers pass a range inside a live region mapping.
        unsafe { p.add(i).write_volatile(x as u8) };
    }
}

/// Everything the core would do with what it finds: dequeue every TX ring, validate and count;
/// enqueue on every RX ring; read every slot.
fn core_pass(
    region: &Region,
    consumers: &mut [netvm_shm::Consumer],
    producers: &mut [netvm_shm::Producer],
    counters: &mut RejectCounters,
) -> (u64, u64) {
    let g = *region.geometry();
    let mut out = [Descriptor::default(); 64];
    let (mut ok, mut bad) = (0u64, 0u64);
    for c in consumers.iter_mut() {
        match c.dequeue_burst(&mut out) {
            Ok(n) => {
                assert!(n <= out.len());
                for d in &out[..n] {
                    match CheckedDesc::try_from_raw(*d, &g) {
                        Ok(cd) => {
                            ok += 1;
                            // A validated descriptor always resolves inside the buffer area.
                            let p = region.packet_ptr(&cd.buf()).unwrap().as_ptr() as usize;
                            let (area, len) = region.buf_area().unwrap();
                            let start = area.as_ptr() as usize;
                            assert!(p >= start && p + usize::from(cd.data_len()) <= start + len);
                        }
                        Err(e) => {
                            bad += 1;
                            counters.record(e.reason());
                        }
                    }
                }
            }
            Err(e) => {
                bad += 1;
                counters.record(e.reason());
            }
        }
    }
    for p in producers.iter_mut() {
        match p.enqueue_burst(&[Descriptor::new(1, 0, 60); 8]) {
            Ok(n) => assert!(n <= 8),
            Err(e) => counters.record(e.reason()),
        }
        let _ = p.wake_if_sleeping();
        let _ = p.len();
    }
    for s in 0..g.slot_count() {
        let slot = region.slot(s).unwrap();
        let _ = (slot.state(), slot.name(), slot.nf_pid(), slot.heartbeat());
        let _ = (
            slot.attach_generation(),
            slot.tx_ring(),
            slot.rx_ring_count(),
        );
        for w in 0..70 {
            if let Some(r) = slot.rx_ring(w) {
                let _ = r;
            }
        }
        for c in netvm_shm::NfCounter::ALL {
            let _ = slot.counter(c);
        }
        let _ = region.find_slot("nf0");
    }
    (ok, bad)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_bytes_over_rings_and_slots(seeds in prop::collection::vec(any::<u64>(), 1..8)) {
        let region = Region::create_anonymous(&common::params(3, 2, 16)).unwrap();
        let g = *region.geometry();
        // The core's side: consumers of the TX rings, producers of the RX rings; slot 0 is
        // reserved as an NF would find it.
        region.slot(0).unwrap().reserve("nf0", 1, 0).unwrap();
        let mut consumers = Vec::new();
        let mut producers = Vec::new();
        for s in 0..g.slot_count() {
            let rings = g.slot_rings(s).unwrap();
            consumers.push(region.consumer(rings.tx).unwrap());
            for r in rings.rx_range() {
                producers.push(region.producer(r).unwrap());
            }
        }
        let mut counters = RejectCounters::new();
        let base = region.as_ptr().as_ptr();
        let mut total_ok = 0;
        for (i, seed) in seeds.iter().enumerate() {
            // Alternate between the whole ring area and the slot table, and only the control
            // words (which makes plausible indices more likely).
            // SAFETY: both ranges lie inside the region (validated geometry).
            unsafe {
                if i % 2 == 0 {
                    scribble(base.add(g.ring_area_offset()), g.ring_count() as usize * g.ring_stride(), *seed);
                    scribble(base.add(g.slot_table_offset()), g.slot_count() as usize * g.slot_size(), !*seed);
                } else {
                    for r in 0..g.ring_count() as usize {
                        let ctl = base.add(g.ring_area_offset() + r * g.ring_stride());
                        let v = (*seed as u32).wrapping_add(r as u32) % 24;
                        ctl.cast::<u32>().write_volatile(v);
                    }
                }
            }
            for _ in 0..4 {
                let (ok, _bad) = core_pass(&region, &mut consumers, &mut producers, &mut counters);
                total_ok += ok;
            }
        }
        let _ = total_ok;
        // Every reject was counted under a reason this crate produces.
        for r in [RejectReason::NotOwner, RejectReason::PortNotAllowed, RejectReason::ServiceUnknown] {
            prop_assert_eq!(counters.get(r), 0);
        }
        // A reset brings a ring back.
        drop(consumers);
        let tx = g.slot_rings(0).unwrap().tx;
        region.reset_ring(tx, 0).unwrap();
        let mut c = region.consumer(tx).unwrap();
        prop_assert_eq!(c.dequeue_burst(&mut [Descriptor::default(); 4]).unwrap(), 0);
        // Garbage slot state is reported as such, not as a valid state.
        let s = region.slot(0).unwrap();
        if s.state().is_none() {
            prop_assert!(s.state_raw() > 4);
        } else {
            prop_assert!(matches!(s.state(), Some(SlotState::Free | SlotState::Reserved | SlotState::Attached | SlotState::Detached | SlotState::Quarantined)));
        }
    }
}

#[test]
fn garbage_descriptors_are_counted_by_reason() {
    let region = Region::create_anonymous(&common::params(1, 1, 64)).unwrap();
    let g = *region.geometry();
    let mut p = region.producer(1).unwrap(); // playing the NF
    let mut c = region.consumer(1).unwrap(); // the core
    let bad = [
        Descriptor {
            buf_idx: 256,
            ..Descriptor::new(0, 0, 1)
        },
        Descriptor {
            data_off: 2000,
            data_len: 200,
            ..Descriptor::new(0, 0, 1)
        },
        Descriptor::new(0, 0, 0),
        Descriptor {
            verdict: 9,
            ..Descriptor::new(0, 0, 1)
        },
        Descriptor {
            verdict: 1,
            ..Descriptor::new(0, 0, 1)
        },
    ];
    assert_eq!(p.enqueue_burst(&bad).unwrap(), 5);
    let mut out = [Descriptor::default(); 8];
    let n = c.dequeue_burst(&mut out).unwrap();
    let mut counters = RejectCounters::new();
    let mut accepted = 0;
    for d in &out[..n] {
        match CheckedDesc::try_from_raw(*d, &g) {
            Ok(_) => accepted += 1,
            Err(e) => counters.record(e.reason()),
        }
    }
    assert_eq!(accepted, 1);
    for r in [
        RejectReason::BadIndex,
        RejectReason::BadBounds,
        RejectReason::ZeroLength,
        RejectReason::UnknownVerdict,
    ] {
        assert_eq!(counters.get(r), 1, "{r}");
    }
    assert_eq!(counters.total(), 4);
}
