//! `CheckedDesc` / `CheckedBuf` validation and reject accounting.

use netvm_shm::{
    verdict_code, CheckedBuf, CheckedDesc, DescError, Descriptor, Geometry, RegionLayout,
    RejectCounters, RejectReason, RingError, Verdict,
};

mod common;

fn geom() -> Geometry {
    // buf_size 2176, buf_count 256.
    *RegionLayout::compute(&common::params(1, 1, 16))
        .unwrap()
        .geometry()
}

fn raw(buf_idx: u32, off: u16, len: u16, verdict: u8, arg: u16) -> Descriptor {
    Descriptor {
        buf_idx,
        data_off: off,
        data_len: len,
        flow_hash: 0x1234_5678,
        verdict,
        in_port: 3,
        verdict_arg: arg,
    }
}

#[test]
fn valid_verdicts() {
    let g = geom();
    for (code, arg, want) in [
        (verdict_code::NEXT, 9, Verdict::Next),
        (verdict_code::SERVICE, 5, Verdict::Service(5)),
        (verdict_code::OUT, 2, Verdict::Out(2)),
        (verdict_code::DROP, 0, Verdict::Drop),
    ] {
        let c = CheckedDesc::try_from_raw(raw(7, 128, 64, code, arg), &g).unwrap();
        assert_eq!(c.verdict(), want);
        assert_eq!(c.buf_idx(), 7);
        assert_eq!(c.data_off(), 128);
        assert_eq!(c.data_len(), 64);
        assert_eq!(c.flow_hash(), 0x1234_5678);
        assert_eq!(c.in_port(), 3);
        assert_eq!(c.buf(), CheckedBuf::check(7, 128, 64, &g).unwrap());
    }
}

#[test]
fn verdict_round_trip() {
    for v in [
        Verdict::Next,
        Verdict::Service(0),
        Verdict::Service(u16::MAX),
        Verdict::Out(7),
        Verdict::Drop,
    ] {
        let (code, arg) = v.to_raw();
        assert_eq!(Verdict::from_raw(code, arg), Some(v));
        let mut d = Descriptor::new(1, 0, 1);
        d.set_verdict(v);
        assert_eq!((d.verdict, d.verdict_arg), (code, arg));
    }
    assert_eq!(Verdict::from_raw(verdict_code::NONE, 0), None);
}

#[test]
fn rejects() {
    let g = geom();
    let cases = [
        // Buffer index.
        (
            raw(256, 0, 1, 1, 0),
            DescError::BadIndex {
                buf_idx: 256,
                buf_count: 256,
            },
        ),
        (
            raw(u32::MAX, 0, 1, 1, 0),
            DescError::BadIndex {
                buf_idx: u32::MAX,
                buf_count: 256,
            },
        ),
        // Zero length (checked before bounds and verdict).
        (raw(0, 0, 0, 1, 0), DescError::ZeroLength),
        (raw(0, 5000, 0, 9, 0), DescError::ZeroLength),
        // Bounds, including the sum that would overflow a u16.
        (
            raw(0, 2176, 1, 1, 0),
            DescError::BadBounds {
                data_off: 2176,
                data_len: 1,
                buf_size: 2176,
            },
        ),
        (
            raw(0, 1, 2176, 1, 0),
            DescError::BadBounds {
                data_off: 1,
                data_len: 2176,
                buf_size: 2176,
            },
        ),
        (
            raw(0, u16::MAX, u16::MAX, 1, 0),
            DescError::BadBounds {
                data_off: u16::MAX,
                data_len: u16::MAX,
                buf_size: 2176,
            },
        ),
        // Verdicts: NONE is not an NF verdict; unknown codes.
        (
            raw(0, 0, 1, verdict_code::NONE, 0),
            DescError::UnknownVerdict { code: 0 },
        ),
        (raw(0, 0, 1, 5, 0), DescError::UnknownVerdict { code: 5 }),
        (
            raw(0, 0, 1, 255, 0),
            DescError::UnknownVerdict { code: 255 },
        ),
        // Index is checked first.
        (
            raw(1000, 0, 0, 77, 0),
            DescError::BadIndex {
                buf_idx: 1000,
                buf_count: 256,
            },
        ),
    ];
    for (d, want) in cases {
        assert_eq!(CheckedDesc::try_from_raw(d, &g), Err(want), "{d:?}");
    }
    // Exactly filling the buffer is fine.
    assert!(CheckedDesc::try_from_raw(raw(255, 0, 2176, 4, 0), &g).is_ok());
    assert!(CheckedDesc::try_from_raw(raw(255, 2175, 1, 4, 0), &g).is_ok());
}

#[test]
fn checked_buf_ignores_verdict() {
    let g = geom();
    let b = CheckedBuf::try_from_raw(&raw(3, 10, 20, verdict_code::NONE, 0), &g).unwrap();
    assert_eq!((b.buf_idx(), b.data_off(), b.data_len()), (3, 10, 20));
    assert_eq!(
        CheckedBuf::try_from_raw(&raw(3, 10, 0, 1, 0), &g),
        Err(DescError::ZeroLength)
    );
}

#[test]
fn reasons_and_counters() {
    assert_eq!(RejectReason::ALL.len(), RejectReason::COUNT);
    for (i, r) in RejectReason::ALL.iter().enumerate() {
        assert_eq!(r.as_index(), i);
    }
    let mut names: Vec<_> = RejectReason::ALL.iter().map(|r| r.name()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), RejectReason::COUNT);

    assert_eq!(DescError::ZeroLength.reason(), RejectReason::ZeroLength);
    assert_eq!(
        DescError::BadIndex {
            buf_idx: 0,
            buf_count: 0
        }
        .reason(),
        RejectReason::BadIndex
    );
    assert_eq!(
        DescError::BadBounds {
            data_off: 0,
            data_len: 0,
            buf_size: 0
        }
        .reason(),
        RejectReason::BadBounds
    );
    assert_eq!(
        DescError::UnknownVerdict { code: 0 }.reason(),
        RejectReason::UnknownVerdict
    );
    assert_eq!(
        RingError::IndexCorrupt {
            prod: 0,
            cons: 0,
            capacity: 0
        }
        .reason(),
        RejectReason::RingIndexCorrupt
    );

    let mut c = RejectCounters::new();
    c.record(RejectReason::BadIndex);
    c.record(RejectReason::BadIndex);
    c.add(RejectReason::NotOwner, 5);
    assert_eq!(c.get(RejectReason::BadIndex), 2);
    assert_eq!(c.get(RejectReason::NotOwner), 5);
    assert_eq!(c.get(RejectReason::ZeroLength), 0);
    assert_eq!(c.total(), 7);
    let listed: Vec<_> = c.iter().filter(|e| e.2 > 0).collect();
    assert_eq!(
        listed,
        vec![
            (RejectReason::BadIndex, "bad_index", 2),
            (RejectReason::NotOwner, "not_owner", 5)
        ]
    );
    let mut sum = RejectCounters::default();
    sum.merge(&c);
    sum.merge(&c);
    assert_eq!(sum.total(), 14);
    assert_eq!(RejectReason::PortNotAllowed.to_string(), "port_not_allowed");
}
