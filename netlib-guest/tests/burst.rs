//! The burst API, single-threaded against a test core: bytes, verdicts, headroom changes,
//! counters, bad descriptors, and a core restart while descriptors are held.
// Test data is made by deliberately truncating wider integers.
#![allow(clippy::cast_possible_truncation)]

use netlib_guest::testkit::{FakeCore, HEADROOM};
use netlib_guest::{Descriptor, Nf, NfCounter, NfError, Verdict};
use netvm_shm::SlotState;

mod common;
use common::frame;

#[test]
fn round_trip_with_verdicts_and_adjustments() {
    let mut core = FakeCore::temp("burst", 2).unwrap();
    core.reserve(1, "l2", 3).unwrap();
    let mut nf = Nf::attach_file(core.path(), "l2").unwrap();

    let frames: Vec<Vec<u8>> = (0..8).map(frame).collect();
    let descs: Vec<Descriptor> = frames
        .iter()
        .enumerate()
        .map(|(i, f)| core.load(i as u32, f, (i % 2) as u8))
        .collect();
    assert_eq!(core.send(1, 0, &descs[..4]).unwrap(), 4);
    assert_eq!(core.send(1, 1, &descs[4..]).unwrap(), 4);

    let mut got = [Descriptor::default(); 16];
    let n = nf.rx_burst(&mut got).unwrap();
    assert_eq!(n, 8);
    assert_eq!(nf.held(), 8);
    for d in &mut got[..n] {
        let i = d.buf_idx as usize;
        let mut p = nf.packet(d).unwrap();
        assert_eq!(p.data(), &frames[i][..]);
        assert_eq!(p.in_port(), (i % 2) as u16);
        assert_eq!(p.headroom(), usize::from(HEADROOM));
        p.data_mut()[0] ^= 0xff;
        match i {
            0 => p.next(),
            1 => p.out(3),
            2 => p.to_service(9),
            3 => p.drop_packet(),
            4 => {
                p.prepend(4).unwrap().copy_from_slice(b"TAG!");
                p.next();
            }
            5 => {
                p.adj(14).unwrap();
                p.next();
            }
            6 => {
                p.trim(10).unwrap();
                p.set_verdict(Verdict::Out(1));
            }
            _ => {} // no verdict: the library returns it as DROP
        }
    }
    nf.tx_burst(&got[..n]).unwrap();
    assert_eq!(nf.held(), 0);

    let back = core.recv_n(1, 8, std::time::Duration::from_secs(10));
    assert_eq!(back.len(), 8);
    for d in &back {
        let i = d.buf_idx as usize;
        let mut want = frames[i].clone();
        want[0] ^= 0xff;
        let (verdict, bytes) = (
            Verdict::from_raw(d.verdict, d.verdict_arg),
            core.bytes(d).unwrap(),
        );
        match i {
            0 => assert_eq!((verdict, bytes), (Some(Verdict::Next), want)),
            1 => assert_eq!((verdict, bytes), (Some(Verdict::Out(3)), want)),
            2 => assert_eq!((verdict, bytes), (Some(Verdict::Service(9)), want)),
            3 => assert_eq!((verdict, bytes), (Some(Verdict::Drop), want)),
            4 => {
                assert_eq!(d.data_off, HEADROOM - 4);
                assert_eq!(&bytes[..4], b"TAG!");
                assert_eq!(&bytes[4..], &want[..]);
                assert_eq!(verdict, Some(Verdict::Next));
            }
            5 => assert_eq!((verdict, bytes), (Some(Verdict::Next), want[14..].to_vec())),
            6 => {
                let l = want.len() - 10;
                assert_eq!(
                    (verdict, bytes),
                    (Some(Verdict::Out(1)), want[..l].to_vec())
                );
            }
            _ => assert_eq!(verdict, Some(Verdict::Drop)),
        }
    }

    let s = *nf.stats();
    assert_eq!((s.rx_pkts, s.tx_pkts), (8, 8));
    assert_eq!(
        (s.next, s.out, s.service, s.dropped, s.no_verdict),
        (3, 2, 1, 2, 1)
    );
    let rx_bytes: u64 = frames.iter().map(|f| f.len() as u64).sum();
    assert_eq!(s.rx_bytes, rx_bytes);
    assert_eq!(core.counter(1, NfCounter::RxPkts), 8);
    assert_eq!(core.counter(1, NfCounter::RxBytes), rx_bytes);
    assert_eq!(core.counter(1, NfCounter::TxPkts), 8);
    assert_eq!(core.counter(1, NfCounter::Dropped), 2);
    assert!(core.heartbeat(1) > 0);

    // Nothing more: rx returns 0 and never blocks.
    assert_eq!(nf.rx_burst(&mut got).unwrap(), 0);
}

#[test]
fn bad_descriptor_from_the_core_is_an_error_not_a_panic() {
    let mut core = FakeCore::temp("burst-bad", 1).unwrap();
    core.reserve(0, "nf", 1).unwrap();
    let mut nf = Nf::attach_file(core.path(), "nf").unwrap();
    let bad = [
        Descriptor::new(100_000, 0, 64), // buffer index out of range
        Descriptor::new(0, 2100, 200),   // runs past the buffer
        Descriptor::new(1, 0, 0),        // empty
    ];
    core.send(0, 0, &bad).unwrap();
    let mut got = [Descriptor::default(); 4];
    assert_eq!(nf.rx_burst(&mut got).unwrap(), 3);
    for d in &mut got[..3] {
        assert!(matches!(nf.packet(d), Err(NfError::BadDescriptor(_))));
        d.set_verdict(Verdict::Drop);
    }
    // Returned anyway: the core decides what a bad descriptor means.
    nf.tx_burst(&got[..3]).unwrap();
    assert_eq!(
        core.recv_n(0, 3, std::time::Duration::from_secs(10)).len(),
        3
    );
}

#[test]
fn core_restart_voids_held_descriptors_and_reattaches() {
    let mut core = FakeCore::temp("burst-restart", 1).unwrap();
    core.reserve(2, "r", 4).unwrap();
    let mut nf = Nf::attach_file(core.path(), "r").unwrap();
    let old_gen = nf.generation();
    let descs: Vec<Descriptor> = (0..5).map(|i| core.load(i, &frame(i), 0)).collect();
    core.send(2, 0, &descs).unwrap();
    let mut got = [Descriptor::default(); 8];
    assert_eq!(nf.rx_burst(&mut got).unwrap(), 5);

    core.restart().unwrap();
    assert_eq!(core.slot_state(2), Some(SlotState::Reserved));

    // Returning the old descriptors: refused, and the NF is attached to the new generation.
    match nf.tx_burst(&got[..5]) {
        Err(NfError::Reattached { old, new }) => {
            assert_eq!(old, old_gen);
            assert_eq!(new, core.generation(2));
        }
        other => panic!("expected Reattached, got {other:?}"),
    }
    assert_eq!(nf.held(), 0);
    assert_eq!(nf.stats().discarded, 5);
    assert_eq!(nf.stats().reattaches, 1);
    assert_eq!(core.slot_state(2), Some(SlotState::Attached));
    let mut none = [Descriptor::default(); 8];
    assert_eq!(
        core.recv(2, &mut none).unwrap(),
        0,
        "old descriptors must not be enqueued"
    );

    // The new generation works.
    let d = core.load(7, &frame(7), 1);
    core.send(2, 0, &[d]).unwrap();
    assert_eq!(nf.rx_burst(&mut got).unwrap(), 1);
    got[0].set_verdict(Verdict::Next);
    nf.tx_burst(&got[..1]).unwrap();
    let back = core.recv_n(2, 1, std::time::Duration::from_secs(10));
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].buf_idx, 7);
}
