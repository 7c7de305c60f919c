//! IOVA-as-PA mode: `ExtMemRegistration` takes each page's IOVA from /proc/self/pagemap, and
//! those agree with DPDK's own `rte_mem_virt2iova` (also pagemap) and with the memseg table
//! DPDK keeps for the registration; a pool over one hugepage gives its mbufs those IOVAs.
//! Where pagemap hides frame numbers, or the mapping is not on hugetlbfs, registration fails
//! with the typed error that says so. Where the EAL cannot run in PA mode at all (no
//! hugepages, no physical addresses), the test says so and stops.
mod common;

use std::sync::Arc;

use dpdk::{
    sys, EalBuilder, ExtMem, ExtMemError, ExtMemRegistration, IovaMode, Mempool, MempoolError,
};

fn memseg_iova(addr: *const u8) -> Option<u64> {
    // SAFETY: the EAL is initialised (the test holds an Eal); a NULL list means "search all".
    let ms = unsafe { sys::rte_mem_virt2memseg(addr.cast(), std::ptr::null()) };
    if ms.is_null() {
        return None;
    }
    // SAFETY: ms points at a live memseg; the struct is packed, so fields are read unaligned.
    let (iova, va) = unsafe {
        (
            std::ptr::addr_of!((*ms).iova).read_unaligned(),
            std::ptr::addr_of!((*ms).__bindgen_anon_1)
                .read_unaligned()
                .addr_64,
        )
    };
    Some(iova + (addr as u64 - va))
}

#[test]
fn pa_mode_iovas_come_from_pagemap() {
    let (b, fell_back) = EalBuilder::new("eal_extmem_pa")
        .lcores("0")
        .huge_or_fallback(256);
    // The later --iova-mode wins over the builder's default --iova-mode=va.
    let eal = match b.arg("--iova-mode=pa").init() {
        Ok(eal) => eal,
        Err(e) => {
            println!("NOTE: the EAL cannot run in IOVA-as-PA mode here (no_huge={fell_back}): {e}");
            return;
        }
    };
    if eal.iova_mode() != IovaMode::Pa {
        println!("NOTE: asked for PA, the EAL chose {:?}", eal.iova_mode());
        return;
    }
    let len = 4 << 20;
    let map = Arc::new(common::FileMap::create("extmem-pa", len));
    let base = map.ptr;
    if !map.on_hugetlbfs {
        // SAFETY: the area is the live mapping `map`, which outlives the call.
        let e = unsafe { ExtMemRegistration::register(&eal, base, len, 4096) };
        assert!(
            matches!(e, Err(ExtMemError::PaNeedsHugepages { .. })),
            "{e:?}"
        );
        println!(
            "NOTE: no hugetlbfs; PA mode over /dev/shm refused: {}",
            e.unwrap_err()
        );
        return;
    }
    let page = 2 << 20;
    // SAFETY: the area is the live mapping `map`, which outlives the registration (dropped
    // first, below) and the pool (which owns an Arc of the mapping).
    let reg = match unsafe { ExtMemRegistration::register(&eal, base, len, page) } {
        Ok(r) => Arc::new(r),
        Err(e @ (ExtMemError::PagemapNoFrame { .. } | ExtMemError::PagemapUnreadable { .. })) => {
            println!("NOTE: pagemap gives no physical addresses here; typed error: {e}");
            return;
        }
        Err(e) => panic!("register in PA mode: {e}"),
    };
    for at in [0, page - 1, page, len / 2 + 123, len - 1] {
        let p = base.as_ptr().wrapping_add(at).cast_const();
        let ours = reg.iova_of(p).expect("inside");
        // SAFETY: the EAL is initialised; in PA mode this reads /proc/self/pagemap.
        let dpdk = unsafe { sys::rte_mem_virt2iova(p.cast()) };
        assert_eq!(ours, dpdk, "rte_mem_virt2iova at +{at:#x}");
        assert_eq!(Some(ours), memseg_iova(p), "memseg at +{at:#x}");
    }
    println!(
        "PA mode: {} IOVA run(s) over {} hugepages: {:x?}",
        reg.iova_runs().len(),
        len / page,
        reg.iova_runs()
    );

    // One hugepage is always IOVA-contiguous: a pool over it works.
    let one = ExtMem {
        ptr: base,
        len: page,
        elt_size: 2176,
    };
    // SAFETY: the pool owns an Arc of the mapping, which outlives the pool and its mbufs.
    let pool = unsafe {
        Mempool::new_extbuf_registered(
            &eal,
            "t_pa",
            512,
            0,
            one,
            reg.clone(),
            -1,
            Some(Box::new(map.clone())),
        )
    }
    .expect("pool over one hugepage");
    let mut all = Vec::new();
    while let Some(m) = pool.alloc() {
        assert_eq!(Some(m.buf_iova()), reg.iova_of(m.buf_addr()));
        all.push(m);
    }
    assert_eq!(all.len(), 512);
    drop(all);

    // The whole area: fine when the hugepages happen to be physically adjacent, else refused.
    let whole = ExtMem { len, ..one };
    // SAFETY: as above.
    let r = unsafe {
        Mempool::new_extbuf_registered(&eal, "t_pa2", 1024, 0, whole, reg.clone(), -1, None)
    };
    match (reg.iova_runs().len(), r) {
        (1, Ok(p)) => assert!(p.is_full()),
        (runs, Err(e @ MempoolError::IovaNotContiguous { .. })) if runs > 1 => {
            println!("refused: {e}")
        }
        (runs, r) => panic!("{runs} runs gave {r:?}"),
    }
    drop(pool);
    drop(reg);
    drop(map);
}
