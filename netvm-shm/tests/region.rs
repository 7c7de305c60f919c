//! Region lifecycle: create, attach, create_or_replace and the generation protocol, slots,
//! buffers, files.
// Test data and measurements deliberately truncate (sequence numbers into u32/u16 fields,
// counters into indices).
#![allow(clippy::cast_possible_truncation)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use netvm_shm::{CheckedBuf, Descriptor, NfCounter, Region, RegionError, SlotRings, SlotState};

mod common;
use common::{params, unique_path, FileGuard};

#[test]
fn create_attach_file_in_tmp() {
    let path = unique_path(&common::tmp_dir(), "create");
    let _g = FileGuard(path.clone());
    let core = Region::create(&path, &params(4, 2, 64)).unwrap();
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.len() as usize, core.geometry().total_size());
    assert!(core.geometry().total_size().is_power_of_two());
    assert_eq!(core.path(), Some(path.as_path()));
    assert_ne!(core.generation(), 0);
    assert_eq!(core.header().generation(), core.generation());
    assert_eq!(core.header().core_pid(), std::process::id());

    let nf = Region::attach_file(&path).unwrap();
    assert_eq!(nf.geometry(), core.geometry());
    assert_eq!(nf.generation(), core.generation());
    // Different mappings of the same file.
    assert_ne!(nf.as_ptr(), core.as_ptr());
    core.header().bump_core_heartbeat();
    core.header().bump_core_heartbeat();
    assert_eq!(nf.header().core_heartbeat(), 2);

    // O_EXCL: a second create fails and leaves the file alone.
    let e = Region::create(&path, &params(4, 2, 64)).unwrap_err();
    assert!(
        matches!(&e, RegionError::Io { op: "create", source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists),
        "{e}"
    );
    assert!(Region::attach_file(&path).is_ok());

    core.remove_file().unwrap();
    assert!(!path.exists());
    // Mappings stay valid after unlink.
    assert_eq!(nf.header().core_heartbeat(), 2);
}

#[test]
fn hugetlbfs_detection() {
    let path = unique_path(&common::tmp_dir(), "tmpfs");
    let _g = FileGuard(path.clone());
    let r = Region::create(&path, &params(1, 1, 16)).unwrap();
    if !Path::new("/tmp").starts_with("/dev/hugepages") {
        assert_eq!(r.on_hugetlbfs(), Some(false));
    }
    assert_eq!(
        Region::create_anonymous(&params(1, 1, 16))
            .unwrap()
            .on_hugetlbfs(),
        None
    );
    if let Some(dir) = common::hugepage_dir() {
        let path = unique_path(&dir, "huge");
        let _g = FileGuard(path.clone());
        let r = Region::create(&path, &params(1, 1, 16)).unwrap();
        assert_eq!(r.on_hugetlbfs(), Some(true));
        let nf = Region::attach_file(&path).unwrap();
        assert_eq!(nf.on_hugetlbfs(), Some(true));
    }
}

#[test]
fn replace_bumps_generation() {
    let path = unique_path(&common::tmp_dir(), "replace");
    let _g = FileGuard(path.clone());
    // Missing file: behaves like create.
    let core1 = Region::create_or_replace(&path, &params(2, 2, 64)).unwrap();
    let nf = Region::attach_file(&path).unwrap();
    let gen1 = nf.generation();
    nf.slot(0).unwrap().attach(gen1, 1).unwrap_err(); // FREE, not RESERVED
    core1.slot(0).unwrap().reserve("fw", 1, 0).unwrap();
    drop(core1);

    // Core restarts with the same size: in place, generation strictly grows, slots are FREE.
    let core2 = Region::create_or_replace(&path, &params(2, 2, 64)).unwrap();
    assert!(core2.generation() > gen1);
    assert_eq!(nf.header().generation(), core2.generation());
    assert_ne!(
        nf.header().generation(),
        nf.generation(),
        "NF sees the restart"
    );
    assert_eq!(nf.slot(0).unwrap().state(), Some(SlotState::Free));
    let nf2 = Region::attach_file(&path).unwrap();
    assert_eq!(nf2.generation(), core2.generation());

    // Different size: the old file is retired (generation 0) and replaced.
    let core3 = Region::create_or_replace(&path, &params(64, 8, 4096)).unwrap();
    assert_eq!(nf2.header().generation(), 0, "old mapping marked retired");
    assert!(core3.generation() > core2.generation());
    let nf3 = Region::attach_file(&path).unwrap();
    assert_eq!(nf3.geometry().slot_count(), 64);
    assert_eq!(nf3.generation(), core3.generation());

    // A file that is not a region is replaced too.
    drop((core2, core3, nf, nf2, nf3));
    std::fs::write(&path, b"not a region").unwrap();
    let core4 = Region::create_or_replace(&path, &params(1, 1, 16)).unwrap();
    assert!(Region::attach_file(&path).is_ok());
    drop(core4);
}

#[test]
fn attach_file_errors() {
    let path = unique_path(&common::tmp_dir(), "bad");
    let _g = FileGuard(path.clone());
    assert!(matches!(
        Region::attach_file(&path),
        Err(RegionError::Io { op: "open", .. })
    ));
    std::fs::write(&path, [0u8; 100]).unwrap();
    assert!(matches!(
        Region::attach_file(&path),
        Err(RegionError::Truncated { len: 100, .. })
    ));
    std::fs::write(&path, vec![0u8; 8192]).unwrap();
    assert!(matches!(
        Region::attach_file(&path),
        Err(RegionError::BadMagic { found: 0 })
    ));
    std::fs::remove_file(&path).unwrap();
    // A region file cut short: the header claims more than is mapped.
    let r = Region::create(&path, &params(1, 1, 16)).unwrap();
    drop(r);
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(1 << 20).unwrap();
    assert!(matches!(
        Region::attach_file(&path),
        Err(RegionError::MappingTooSmall { .. })
    ));
}

#[test]
fn slot_lifecycle() {
    let core = Region::create_anonymous(&params(4, 3, 64)).unwrap();
    // The NF side would attach to a file; the protocol is the same on one mapping.
    let nf = core.clone();
    let g = *core.geometry();
    assert_eq!(nf.find_slot("router"), None);
    let rings = core.slot(2).unwrap().reserve("router", 7, 1).unwrap();
    assert_eq!(rings, SlotRings::for_slot(2, 3).unwrap());
    assert_eq!(rings, g.slot_rings(2).unwrap());
    assert_eq!((rings.first_rx, rings.tx), (8, 11));

    let i = nf.find_slot("router").unwrap();
    assert_eq!(i, 2);
    assert_eq!(nf.find_slot("route"), None);
    let s = nf.slot(i).unwrap();
    assert_eq!(s.index(), 2);
    assert_eq!(s.name(), "router");
    assert_eq!(s.state(), Some(SlotState::Reserved));
    assert_eq!((s.service_id(), s.instance()), (7, 1));
    assert_eq!(s.tx_ring(), 11);
    assert_eq!(s.rx_ring_count(), 3);
    assert_eq!(
        (0..4).map(|w| s.rx_ring(w)).collect::<Vec<_>>(),
        vec![Some(8), Some(9), Some(10), None]
    );
    s.attach(nf.generation(), 4242).unwrap();
    assert_eq!(s.state(), Some(SlotState::Attached));
    assert!(matches!(
        s.attach(nf.generation(), 1),
        Err(RegionError::SlotState {
            slot: 2,
            expected: 1,
            found: 2
        })
    ));
    let c = core.slot(2).unwrap();
    assert_eq!(c.nf_pid(), 4242);
    assert_eq!(c.attach_generation(), core.generation());
    s.bump_heartbeat();
    s.add_counter(NfCounter::RxPkts, 10);
    s.add_counter(NfCounter::RxPkts, 5);
    s.add_counter(NfCounter::Dropped, 1);
    assert_eq!(c.heartbeat(), 1);
    assert_eq!(c.counter(NfCounter::RxPkts), 15);
    assert_eq!(c.counter(NfCounter::Dropped), 1);
    assert_eq!(c.counter(NfCounter::TxPkts), 0);
    s.detach().unwrap();
    assert_eq!(c.state(), Some(SlotState::Detached));
    c.set_state(SlotState::Quarantined);
    assert_eq!(s.state(), Some(SlotState::Quarantined));
    assert!(s.detach().is_err());
    // Reserving again clears the NF-written words.
    c.reserve("router", 7, 2).unwrap();
    assert_eq!(
        (c.heartbeat(), c.nf_pid(), c.counter(NfCounter::RxPkts)),
        (0, 0, 0)
    );
    assert!(matches!(
        c.reserve(&"x".repeat(40), 1, 1),
        Err(RegionError::Layout(_))
    ));
    assert!(matches!(
        core.slot(4),
        Err(RegionError::IndexOutOfRange {
            what: "slot",
            index: 4,
            count: 4
        })
    ));
    for st in [
        SlotState::Free,
        SlotState::Reserved,
        SlotState::Attached,
        SlotState::Detached,
        SlotState::Quarantined,
    ] {
        assert_eq!(SlotState::from_raw(st.as_raw()), Some(st));
    }
    assert_eq!(SlotState::from_raw(5), None);
}

#[test]
fn buffers_are_shared_between_mappings() {
    let path = unique_path(&common::tmp_dir(), "bufs");
    let _g = FileGuard(path.clone());
    let core = Region::create(&path, &params(1, 1, 16)).unwrap();
    let nf = Region::attach_file(&path).unwrap();
    let g = *core.geometry();
    let (area, len) = core.buf_area().unwrap();
    assert_eq!(len, 256 * 2176);
    assert_eq!(
        area.as_ptr() as usize - core.as_ptr().as_ptr() as usize,
        g.buf_area_offset()
    );
    assert_eq!(g.buf_area_offset() % 4096, 0);
    for i in [0u32, 1, 255] {
        let p = core.buffer(i).unwrap().as_ptr() as usize;
        assert_eq!(p, area.as_ptr() as usize + i as usize * 2176);
    }
    assert!(core.buffer(256).is_none());

    // The core writes a packet; the NF reads it through a descriptor in a ring.
    let b = CheckedBuf::check(5, 128, 4, &g).unwrap();
    // SAFETY: this test is the only user of buffer 5 in this process.
    unsafe { core.packet_slice_mut(&b).unwrap() }.copy_from_slice(b"\xde\xad\xbe\xef");
    let mut p = core.producer(0).unwrap();
    let mut c = nf.consumer(0).unwrap();
    p.enqueue_burst(&[Descriptor::new(5, 128, 4)]).unwrap();
    let mut out = [Descriptor::default(); 1];
    assert_eq!(c.dequeue_burst(&mut out).unwrap(), 1);
    let got = CheckedBuf::try_from_raw(&out[0], nf.geometry()).unwrap();
    // SAFETY: as above, for the NF's mapping.
    let bytes = unsafe { nf.packet_slice_mut(&got).unwrap() };
    assert_eq!(bytes, b"\xde\xad\xbe\xef");
    // SAFETY: as above.
    let whole = unsafe { nf.buffer_slice_mut(5).unwrap() };
    assert_eq!(whole.len(), 2176);
    assert_eq!(&whole[128..132], b"\xde\xad\xbe\xef");

    // A CheckedBuf from a region with more buffers does not escape a smaller one.
    let big = Region::create_anonymous(&netvm_shm::RegionParams {
        buf_count: 10_000,
        ..params(1, 1, 16)
    })
    .unwrap();
    let far = CheckedBuf::check(9000, 0, 64, big.geometry()).unwrap();
    assert!(core.packet_ptr(&far).is_err());
    // SAFETY: rejected before any slice is made.
    assert!(unsafe { core.packet_slice_mut(&far) }.is_err());
}

#[test]
fn layout_errors_surface() {
    let path = unique_path(&common::tmp_dir(), "layout");
    let _g = FileGuard(path.clone());
    let mut p = params(1, 1, 16);
    p.ring_capacity = 3;
    assert!(matches!(
        Region::create(&path, &p),
        Err(RegionError::Layout(_))
    ));
    assert!(!path.exists(), "no file is left behind");
}

/// The production layout: a domain region (buffers only) and one control region per NF. The NF
/// takes the buffer geometry from its control region, so a neighbour rewriting the domain
/// region's header changes nothing for it.
#[test]
fn domain_and_control_regions() {
    use netvm_shm::{Buffers, RegionKind, RegionLayout, RegionParams};
    let dir = common::tmp_dir();
    let dpath = unique_path(&dir, "domain");
    let cpath = unique_path(&dir, "control");
    let _g1 = FileGuard(dpath.clone());
    let _g2 = FileGuard(cpath.clone());
    let dom = Region::create(
        &dpath,
        &RegionParams {
            kind: RegionKind::Domain,
            slot_count: 0,
            rx_rings_per_slot: 0,
            ring_capacity: 0,
            ..params(1, 1, 16)
        },
    )
    .unwrap();
    assert_eq!(dom.geometry().slot_count(), 0);
    assert_eq!(dom.geometry().ring_count(), 0);
    assert!(dom.slot(0).is_err());
    assert!(dom.producer(0).is_err());
    let ctl = Region::create(&cpath, &RegionLayout::control_params(dom.geometry(), 2, 64)).unwrap();
    assert!(ctl.buf_area().is_none());
    assert!(ctl.buffer(0).is_none());
    ctl.slot(0).unwrap().reserve("nf", 1, 0).unwrap();

    // NF side.
    let nf_ctl = Region::attach_file(&cpath).unwrap();
    assert!(matches!(
        nf_ctl.geometry().kind(),
        RegionKind::Control { .. }
    ));
    assert_eq!(nf_ctl.geometry().buf_count(), dom.geometry().buf_count());
    let bufs = Buffers::attach_file(&dpath, nf_ctl.geometry()).unwrap();
    // A domain region is not a control region: Buffers refuses its geometry.
    assert!(Buffers::attach_file(&dpath, dom.geometry()).is_err());
    let b = CheckedBuf::check(3, 128, 64, nf_ctl.geometry()).unwrap();
    let p = bufs.packet_ptr(&b).unwrap();
    // SAFETY: the test holds buffer 3; a volatile write through the NF's mapping.
    unsafe { std::ptr::write_volatile(p.as_ptr(), 0xab) };
    let core_view = dom.buffers().unwrap().packet_ptr(&b).unwrap();
    // SAFETY: same buffer through the core's mapping of the same file.
    assert_eq!(unsafe { std::ptr::read_volatile(core_view.as_ptr()) }, 0xab);

    // A neighbour scribbles over the domain header: the domain file no longer validates as a
    // region, but the NF's view of its buffers (from its control region) is unaffected, also
    // when it maps the file again.
    // SAFETY: the test writes the header words of its own mapping (playing a hostile NF).
    unsafe { std::ptr::write_bytes(dom.as_ptr().as_ptr(), 0x5a, 4096) };
    assert!(Region::attach_file(&dpath).is_err());
    let again = Buffers::attach_file(&dpath, nf_ctl.geometry()).unwrap();
    assert_eq!(again.packet_ptr(&b).map(|_| ()), Ok(()));
    let p2 = again.packet_ptr(&b).unwrap();
    // SAFETY: as above.
    assert_eq!(unsafe { std::ptr::read_volatile(p2.as_ptr()) }, 0xab);

    // A file too short for the domain the control region names is refused.
    let short = unique_path(&dir, "short");
    let _g3 = FileGuard(short.clone());
    std::fs::write(&short, vec![0u8; 4096]).unwrap();
    assert!(matches!(
        Buffers::attach_file(&short, nf_ctl.geometry()),
        Err(RegionError::MappingTooSmall { .. })
    ));
}
