//! A hugetlbfs-file mapping registered with DPDK (`ExtMemRegistration`): bad geometry gives
//! typed errors; `iova_of` agrees with `rte_mem_virt2iova` and with the memseg DPDK keeps, and
//! equals the virtual address in IOVA-as-VA mode; an extbuf pool over the registration gives
//! every mbuf the registered IOVA of its buffer; DMA-mapping a net_null port is `NotNeeded`;
//! everything comes apart cleanly (pool full, area unregistered, file removed).
mod common;

use std::ptr::NonNull;
use std::sync::Arc;

use dpdk::{
    sys, DmaMapped, ExtMem, ExtMemError, ExtMemRegistration, IovaMode, MbufArray, Mempool,
    MempoolError, Port, PortConfig,
};

/// The IOVA DPDK's memseg table holds for `addr`, or None when no memseg covers it.
fn memseg_iova(addr: *const u8) -> Option<u64> {
    // SAFETY: the EAL is initialised (the test holds an Eal); a NULL list means "search all".
    let ms = unsafe { sys::rte_mem_virt2memseg(addr.cast(), std::ptr::null()) };
    if ms.is_null() {
        return None;
    }
    // SAFETY: ms points at a live memseg (the memory config outlives the call); the struct is
    // packed, so its fields are read unaligned through raw pointers.
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

fn dpdk_virt2iova(addr: *const u8) -> u64 {
    // SAFETY: the EAL is initialised; rte_mem_virt2iova only computes (VA mode) or reads
    // /proc/self/pagemap (PA mode).
    unsafe { sys::rte_mem_virt2iova(addr.cast()) }
}

#[test]
fn registered_hugepage_file_gives_mbufs_their_iova() {
    let eal = common::eal("eal_extmem_dma");
    assert_eq!(
        eal.iova_mode(),
        IovaMode::Va,
        "EalBuilder defaults to IOVA-as-VA"
    );
    let len = 4 << 20;
    let map = Arc::new(common::FileMap::create("extmem", len));
    let page = if map.on_hugetlbfs { 2 << 20 } else { 4096 };
    let path = map.path.clone();
    let base = map.ptr;
    let addr = base.as_ptr() as usize;
    assert_eq!(addr % page, 0, "mmap gives page-aligned addresses");

    // Bad geometry: typed errors, nothing registered.
    let off = |n: usize| NonNull::new(base.as_ptr().wrapping_add(n)).expect("non-null");
    let register = |p: NonNull<u8>, l: usize, ps: usize| {
        // SAFETY: every call below passes an area inside the live mapping `map` (or one that
        // fails validation before anything is touched); `map` is dropped last, after every
        // registration and the pool; no device writes to it while it is registered.
        unsafe { ExtMemRegistration::register(&eal, p, l, ps) }
    };
    let e = register(off(page / 2), page, page);
    assert!(
        matches!(e, Err(ExtMemError::Unaligned { page_size, .. }) if page_size == page),
        "{e:?}"
    );
    let e = register(base, 0, page);
    assert!(matches!(e, Err(ExtMemError::ZeroLength)), "{e:?}");
    let e = register(base, page + 1, page);
    assert!(
        matches!(e, Err(ExtMemError::LengthNotPageMultiple { .. })),
        "{e:?}"
    );
    let e = register(base, len, 3000);
    assert!(matches!(e, Err(ExtMemError::BadPageSize { .. })), "{e:?}");
    println!("bad geometry rejected: {}", e.expect_err("bad page size"));
    assert!(
        memseg_iova(base.as_ptr()).is_none(),
        "nothing registered yet"
    );

    let reg = Arc::new(register(base, len, page).expect("register"));
    // The same area twice: DPDK says EEXIST, as a typed error.
    let e = register(base, len, page);
    assert!(
        matches!(e, Err(ExtMemError::Register { errno, .. }) if errno == libc::EEXIST),
        "{e:?}"
    );

    // IOVAs: ours, DPDK's virt2iova and DPDK's memseg table agree, and equal the VA.
    assert_eq!(reg.iova_mode(), IovaMode::Va);
    assert_eq!(reg.iova_runs().len(), 1, "{:?}", reg.iova_runs());
    for at in [0, len / 2, len - 1, page - 1, page] {
        let p = base.as_ptr().wrapping_add(at).cast_const();
        let ours = reg.iova_of(p).expect("inside");
        assert_eq!(ours, dpdk_virt2iova(p), "rte_mem_virt2iova at +{at:#x}");
        assert_eq!(Some(ours), memseg_iova(p), "memseg at +{at:#x}");
        assert_eq!(ours, p as u64, "IOVA = VA at +{at:#x}");
    }
    assert_eq!(reg.iova_of(base.as_ptr().wrapping_sub(1)), None);
    assert_eq!(reg.iova_of(base.as_ptr().wrapping_add(len)), None);

    // A pool over part of the registration; an area outside it is refused.
    let elt = 2176u16;
    let n = 1024u32;
    let ext = ExtMem {
        ptr: base,
        len,
        elt_size: elt,
    };
    let too_long = ExtMem {
        len: len + 4096,
        ..ext
    };
    // SAFETY: the pool owns an Arc of the mapping, which thus outlives it and its mbufs.
    let e = unsafe {
        Mempool::new_extbuf_registered(&eal, "t_bad", n, 0, too_long, reg.clone(), -1, None)
    };
    assert!(
        matches!(e, Err(MempoolError::NotRegistered { .. })),
        "{e:?}"
    );
    // SAFETY: as above.
    let pool = unsafe {
        Mempool::new_extbuf_registered(
            &eal,
            "t_dma",
            n,
            0,
            ext,
            reg.clone(),
            -1,
            Some(Box::new(map.clone())),
        )
    }
    .expect("registered extbuf pool");
    assert_eq!(pool.ext_iova(), reg.iova_of(base.as_ptr()));
    assert_eq!(pool.avail_count(), n);

    {
        let mut port = Port::open(&eal, "net_null0,size=64,copy=1").expect("open net_null");
        port.configure(
            &PortConfig {
                rx_desc: 256,
                tx_desc: 256,
                ..Default::default()
            },
            &[&pool],
        )
        .expect("configure");
        let outcome = reg.dma_map(&port).expect("dma_map net_null");
        assert_eq!(outcome, DmaMapped::NotNeeded);
        assert_eq!(reg.dma_map(&port).expect("again"), DmaMapped::NotNeeded);
        assert_eq!(reg.mapped_ports().len(), 1);
        port.start().expect("start");

        let mut burst = MbufArray::<32>::new();
        let mut got = 0;
        for _ in 0..8 {
            got += port.rx_burst(0, &mut burst);
            for &m in burst.as_ptrs() {
                // SAFETY: m is an owned valid mbuf in the burst.
                let (buf, iova) = unsafe { ((*m).buf_addr as *const u8, (*m).buf_iova) };
                assert!(map.contains(buf, usize::from(elt)), "{buf:p} outside");
                assert_eq!(
                    Some(iova),
                    reg.iova_of(buf),
                    "buf_iova of the mbuf at {buf:p} is not the registered IOVA"
                );
                assert_eq!(Some(iova), memseg_iova(buf));
            }
            burst.clear();
        }
        assert!(got >= 32, "net_null delivered only {got} packets");
        // Every buffer of the pool, not only those net_null filled.
        let mut all = Vec::new();
        while let Some(m) = pool.alloc() {
            assert_eq!(Some(m.buf_iova()), reg.iova_of(m.buf_addr()));
            all.push(m);
        }
        println!(
            "{got} packets and {} free buffers: buf_iova = registered IOVA ({} hugetlbfs, {} \
             byte pages)",
            all.len(),
            if map.on_hugetlbfs { "on" } else { "NOT on" },
            page
        );
        drop(all);
        port.stop().expect("stop");

        // Explicit unmap before closing, then a second mapping left for Drop to find closed.
        assert!(reg.dma_unmap(&port).expect("dma_unmap"));
        assert!(!reg.dma_unmap(&port).expect("dma_unmap again"));
        assert_eq!(reg.dma_map(&port).expect("map again"), DmaMapped::NotNeeded);
    } // port closed and detached here, while still recorded as mapped

    assert!(pool.is_full(), "pool not full after the port closed");
    drop(pool);
    let reg = Arc::try_unwrap(reg).expect("the pool released its registration");
    drop(reg); // skips the closed port, unregisters
    assert!(
        memseg_iova(base.as_ptr()).is_none(),
        "area still registered"
    );
    // Unregistered for real: registering again works.
    let again = register(base, len, page).expect("re-register");
    drop(again);

    drop(map);
    assert!(!path.exists(), "{} left behind", path.display());

    // The /dev/shm fallback: 4 KiB pages, same IOVA rules.
    let shm = common::FileMap::create_in(
        std::path::Path::new("/dev/shm"),
        "extmem4k",
        64 << 10,
        false,
    );
    // SAFETY: the area is the live mapping `shm`, dropped after the registration.
    let small = unsafe { ExtMemRegistration::register(&eal, shm.ptr, shm.len, 4096) }
        .expect("register 4 KiB pages");
    for at in [0, 4095, 4096, shm.len - 1] {
        let p = shm.ptr.as_ptr().wrapping_add(at).cast_const();
        assert_eq!(small.iova_of(p), Some(p as u64));
        assert_eq!(small.iova_of(p), memseg_iova(p));
    }
    drop(small);
    let shm_path = shm.path.clone();
    drop(shm);
    assert!(!shm_path.exists());
}
