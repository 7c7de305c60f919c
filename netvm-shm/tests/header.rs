//! Header validation at attach: every error case, a truncated mapping, offsets pointing
//! outside, and random corruption that must never panic or yield out-of-bounds geometry.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::mem::offset_of;

use netvm_shm::layout::{ABI_VERSION, HEADER_SIZE, RING_CONTROL_SIZE, SLOT_SIZE};
use netvm_shm::{Region, RegionError, RegionHeader};
use proptest::prelude::*;

mod common;

/// A page-aligned heap copy of a freshly created region.
struct Image {
    ptr: *mut u8,
    len: usize,
}

impl Image {
    fn new() -> Self {
        let src = Region::create_anonymous(&common::params(2, 2, 16)).unwrap();
        let len = src.geometry().total_size();
        let layout = Layout::from_size_align(len, 4096).unwrap();
        // SAFETY: non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        assert!(!ptr.is_null());
        // SAFETY: both ranges are `len` bytes, distinct allocations.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr().as_ptr(), ptr, len) };
        Self { ptr, len }
    }

    fn set32(&mut self, off: usize, v: u32) {
        assert!(off + 4 <= self.len);
        // SAFETY: in bounds (asserted); no Region is alive while we write.
        unsafe { self.ptr.add(off).cast::<u32>().write_unaligned(v) }
    }

    fn set64(&mut self, off: usize, v: u64) {
        assert!(off + 8 <= self.len);
        // SAFETY: as in `set32`.
        unsafe { self.ptr.add(off).cast::<u64>().write_unaligned(v) }
    }

    fn get64(&self, off: usize) -> u64 {
        // SAFETY: in bounds.
        unsafe { self.ptr.add(off).cast::<u64>().read_unaligned() }
    }

    /// Attaches to `[ptr + skip, ptr + skip + len)` and drops the region at once.
    fn attach_at(&self, skip: usize, len: usize) -> Result<netvm_shm::Geometry, RegionError> {
        assert!(skip + len <= self.len);
        // SAFETY: the range is inside our allocation, which outlives the region (dropped
        // before returning); nothing else accesses it meanwhile.
        let r = unsafe { Region::attach_raw(self.ptr.add(skip), len) }?;
        Ok(*r.geometry())
    }

    fn attach(&self) -> Result<netvm_shm::Geometry, RegionError> {
        self.attach_at(0, self.len)
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.ptr, Layout::from_size_align(self.len, 4096).unwrap()) }
    }
}

macro_rules! off {
    ($f:ident) => {
        offset_of!(RegionHeader, $f)
    };
}

#[test]
fn valid_image_attaches() {
    let img = Image::new();
    let g = img.attach().unwrap();
    assert_eq!(g.slot_count(), 2);
    assert_eq!(g.ring_count(), 6);
    assert_eq!(g.domain_name(), "test-domain");
    assert_eq!(g.domain_id(), 3);
}

#[test]
fn mapping_errors() {
    let img = Image::new();
    assert!(matches!(
        img.attach_at(0, 100),
        Err(RegionError::Truncated {
            len: 100,
            need: HEADER_SIZE
        })
    ));
    assert!(matches!(
        img.attach_at(64, img.len - 64),
        Err(RegionError::MisalignedBase { align: 4096, .. })
    ));
    // The header says 2 MiB; only half is mapped.
    assert!(matches!(
        img.attach_at(0, img.len / 2),
        Err(RegionError::MappingTooSmall { .. })
    ));
    // SAFETY: null is rejected before any access.
    let r = unsafe { Region::attach_raw(std::ptr::null_mut(), 1 << 21) };
    assert!(matches!(
        r,
        Err(RegionError::MisalignedBase { addr: 0, .. })
    ));
}

/// Applies `f` to a fresh image and returns the attach result.
fn corrupt(f: impl FnOnce(&mut Image)) -> RegionError {
    let mut img = Image::new();
    f(&mut img);
    img.attach().expect_err("corruption must be detected")
}

#[test]
fn field_errors() {
    use RegionError as E;
    let e = corrupt(|i| i.set64(off!(magic), 0x1122));
    assert!(matches!(e, E::BadMagic { found: 0x1122 }), "{e}");
    let e = corrupt(|i| i.set32(off!(abi_version), 1));
    assert!(matches!(e, E::VersionMismatch { found: 1, expected } if expected == ABI_VERSION));
    let e = corrupt(|i| i.set32(off!(kind), 7));
    assert!(
        matches!(
            e,
            E::BadValue {
                what: "kind",
                found: 7
            }
        ),
        "{e}"
    );
    // A combined region's buffers are its own: buf_region_size must be its size.
    let e = corrupt(|i| i.set64(off!(buf_region_size), 4 << 20));
    assert!(
        matches!(
            e,
            E::BadValue {
                what: "buf_region_size",
                ..
            }
        ),
        "{e}"
    );
    // A domain region has no slots or rings.
    let e = corrupt(|i| i.set32(off!(kind), netvm_shm::layout::region_kind::DOMAIN));
    assert!(
        matches!(
            e,
            E::BadValue {
                what: "slot_count",
                found: 2
            }
        ),
        "{e}"
    );
    // A control region's buffer area must lie inside the domain region it names.
    let e = corrupt(|i| {
        i.set32(off!(kind), netvm_shm::layout::region_kind::CONTROL);
        i.set64(off!(buf_region_size), 2 << 20);
        i.set64(off!(buf_area_offset), (2 << 20) - 4096);
    });
    assert!(
        matches!(
            e,
            E::OutOfBounds {
                what: "buffer area",
                ..
            }
        ),
        "{e}"
    );
    let e = corrupt(|i| {
        i.set32(off!(kind), netvm_shm::layout::region_kind::CONTROL);
        i.set64(off!(buf_region_size), 3 << 20);
    });
    assert!(
        matches!(
            e,
            E::BadValue {
                what: "buf_region_size",
                ..
            }
        ),
        "{e}"
    );
    let e = corrupt(|i| i.set64(off!(generation), 0));
    assert!(matches!(e, E::NotInitialised));
    let e = corrupt(|i| i.set32(off!(header_size), 4095));
    assert!(matches!(
        e,
        E::BadRecordSize {
            what: "header_size",
            found: 4095,
            ..
        }
    ));
    let e = corrupt(|i| i.set64(off!(total_size), (2 << 20) + 4096));
    assert!(matches!(e, E::BadTotalSize { .. }));
    let e = corrupt(|i| i.set64(off!(total_size), 1 << 20));
    assert!(matches!(e, E::BadTotalSize { .. }));
    let e = corrupt(|i| i.set64(off!(total_size), 1 << 30));
    assert!(matches!(e, E::MappingTooSmall { .. }));
    let e = corrupt(|i| i.set64(off!(total_size), 1 << 63));
    assert!(matches!(e, E::BadTotalSize { .. }));

    for (off, what) in [
        (off!(slot_count), "slot_count"),
        (off!(ring_count), "ring_count"),
        (off!(rx_rings_per_slot), "rx_rings_per_slot"),
        (off!(buf_count), "buf_count"),
        (off!(buf_size), "buf_size"),
        (off!(ring_capacity), "ring_capacity"),
    ] {
        let e = corrupt(|i| i.set32(off, 0));
        assert!(
            matches!(e, E::ZeroCount { what: w } if w == what),
            "{what}: {e}"
        );
    }
    let e = corrupt(|i| i.set32(off!(slot_size), 256));
    assert!(
        matches!(e, E::BadRecordSize { what: "slot_size", found: 256, expected } if expected == SLOT_SIZE as u64)
    );
    let e = corrupt(|i| i.set32(off!(ring_capacity), 12));
    assert!(matches!(
        e,
        E::BadValue {
            what: "ring_capacity",
            found: 12
        }
    ));
    let e = corrupt(|i| i.set32(off!(ring_capacity), 1 << 30));
    assert!(matches!(
        e,
        E::BadValue {
            what: "ring_capacity",
            ..
        }
    ));
    let e = corrupt(|i| i.set32(off!(rx_rings_per_slot), 65));
    assert!(matches!(
        e,
        E::BadValue {
            what: "rx_rings_per_slot",
            found: 65
        }
    ));
    let e = corrupt(|i| i.set32(off!(buf_size), 2100));
    assert!(matches!(
        e,
        E::BadValue {
            what: "buf_size",
            found: 2100
        }
    ));
    let e = corrupt(|i| i.set32(off!(ring_count), 7));
    assert!(matches!(
        e,
        E::RingCountMismatch {
            found: 7,
            expected: 6
        }
    ));
    // Capacity 32 needs a stride of control + 512; the image has control + 256.
    let e = corrupt(|i| i.set32(off!(ring_capacity), 32));
    let (have, need) = (
        RING_CONTROL_SIZE as u64 + 256,
        RING_CONTROL_SIZE as u64 + 512,
    );
    assert!(
        matches!(e, E::BadRingStride { found, min } if found == have && min == need),
        "{e}"
    );
    let e = corrupt(|i| i.set64(off!(ring_stride), have + 8));
    assert!(matches!(e, E::BadRingStride { .. }));
}

#[test]
fn area_errors() {
    use RegionError as E;
    let e = corrupt(|i| i.set64(off!(slot_table_offset), 4096 + 8));
    assert!(
        matches!(
            e,
            E::Misaligned {
                what: "slot table",
                ..
            }
        ),
        "{e}"
    );
    let e = corrupt(|i| {
        let b = i.get64(off!(buf_area_offset));
        i.set64(off!(buf_area_offset), b + 64);
    });
    assert!(
        matches!(
            e,
            E::Misaligned {
                what: "buffer area",
                align: 4096,
                ..
            }
        ),
        "{e}"
    );
    // Buffer area running off the end.
    let e = corrupt(|i| i.set64(off!(buf_area_offset), (2 << 20) - 4096));
    assert!(
        matches!(
            e,
            E::OutOfBounds {
                what: "buffer area",
                ..
            }
        ),
        "{e}"
    );
    // Offsets that overflow when the length is added.
    let e = corrupt(|i| i.set64(off!(buf_area_offset), u64::MAX - 4095));
    assert!(
        matches!(
            e,
            E::OutOfBounds {
                what: "buffer area",
                ..
            }
        ),
        "{e}"
    );
    let e = corrupt(|i| i.set64(off!(ring_area_offset), u64::MAX - 63));
    assert!(
        matches!(
            e,
            E::OutOfBounds {
                what: "ring area",
                ..
            }
        ),
        "{e}"
    );
    // Far too many buffers for the region.
    let e = corrupt(|i| i.set32(off!(buf_count), u32::MAX));
    assert!(
        matches!(
            e,
            E::OutOfBounds {
                what: "buffer area",
                ..
            }
        ),
        "{e}"
    );
    // Slot table inside the header.
    let e = corrupt(|i| i.set64(off!(slot_table_offset), 0));
    assert!(
        matches!(
            e,
            E::Overlap {
                first: "region header",
                second: "slot table"
            }
        ),
        "{e}"
    );
    // Rings on top of the slot table.
    let e = corrupt(|i| i.set64(off!(ring_area_offset), 4096));
    assert!(matches!(e, E::Overlap { .. }), "{e}");
    // Buffers on top of the rings.
    let e = corrupt(|i| {
        let r = i.get64(off!(ring_area_offset));
        i.set64(off!(buf_area_offset), r);
    });
    assert!(matches!(e, E::Overlap { .. }), "{e}");
}

#[test]
fn geometry_is_a_private_copy() {
    let mut img = Image::new();
    // SAFETY: the image outlives the region (dropped at the end of this test before `img`).
    let region = unsafe { Region::attach_raw(img.ptr, img.len) }.unwrap();
    let before = *region.geometry();
    // The peer rewrites the header after attach: nothing changes for us.
    img.set32(off!(slot_count), 9999);
    img.set64(off!(buf_area_offset), u64::MAX);
    assert_eq!(*region.geometry(), before);
    assert!(region.slot(1).is_ok());
    assert!(region.slot(2).is_err());
    assert!(region.buffer(255).is_some());
    drop(region);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Random values in random header words: attach either fails with a typed error or yields
    /// a geometry whose every area lies inside the mapping.
    #[test]
    fn random_header_words(writes in prop::collection::vec((0usize..(160 / 4), any::<u32>(), any::<bool>()), 1..6)) {
        let mut img = Image::new();
        for (word, v, small) in writes {
            // Small values hit the interesting range more often than random u32s.
            img.set32(word * 4, if small { v % 8192 } else { v });
        }
        if let Ok(g) = img.attach() {
            let total = g.total_size();
            prop_assert!(total <= img.len);
            prop_assert!(g.slot_table_offset() + g.slot_count() as usize * g.slot_size() <= total);
            prop_assert!(g.ring_area_offset() + g.ring_count() as usize * g.ring_stride() <= total);
            prop_assert!(g.buf_area_offset() + g.buf_area_len() <= total);
            prop_assert!(g.ring_capacity().is_power_of_two());
            prop_assert!(g.ring_stride() >= RING_CONTROL_SIZE + 16 * g.ring_capacity() as usize);
        }
    }

    /// Completely random header bytes never panic.
    #[test]
    fn random_header_bytes(bytes in prop::collection::vec(any::<u8>(), 160)) {
        let img = Image::new();
        // SAFETY: in bounds of the image; no region alive.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), img.ptr, bytes.len()) };
        let _ = img.attach();
    }
}
