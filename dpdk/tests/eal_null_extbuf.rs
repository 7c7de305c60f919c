//! net_null receives a burst into an extbuf pool backed by a hugetlbfs file: every packet's
//! data lies inside the file's mapping, and the pool is full again afterwards.
mod common;

use dpdk::{ExtMem, MbufArray, Mempool, Port, PortConfig};

#[test]
fn null_rx_lands_in_file_mapping() {
    let eal = common::eal("eal_null_extbuf");
    let map = std::sync::Arc::new(common::FileMap::create("extbuf", 4 << 20));
    let elt = 2176u16;
    let n = 1024u32;
    let ext = ExtMem {
        ptr: map.ptr,
        len: map.len,
        elt_size: elt,
    };
    // SAFETY: the mapping stays alive as long as the pool: the pool owns an Arc of it.
    let pool =
        unsafe { Mempool::new_extbuf(&eal, "t_ext", n, 0, ext, -1, Some(Box::new(map.clone()))) }
            .expect("extbuf pool");
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
        port.start().expect("start");
        let mut burst = MbufArray::<32>::new();
        let mut got = 0;
        for _ in 0..8 {
            got += port.rx_burst(0, &mut burst);
            for &m in burst.as_ptrs() {
                // SAFETY: m is an owned valid mbuf in the burst.
                let (addr, off, len) =
                    unsafe { ((*m).buf_addr as *const u8, (*m).data_off, (*m).data_len) };
                // SAFETY: pointer arithmetic inside the mbuf's buffer.
                let data = unsafe { addr.add(usize::from(off)) };
                assert!(
                    map.contains(addr, usize::from(elt)),
                    "buffer {addr:p} outside the file mapping"
                );
                assert!(
                    map.contains(data, usize::from(len)),
                    "packet data {data:p} outside the file mapping"
                );
                assert_eq!(len, 64);
                // Unregistered pool in IOVA-as-VA mode (the default): IOVA = VA.
                // SAFETY: m is an owned valid mbuf in the burst.
                assert_eq!(unsafe { (*m).buf_iova }, addr as u64);
            }
            burst.clear();
        }
        assert!(got >= 32, "net_null delivered only {got} packets");
        println!(
            "received {got} packets, all inside {} ({} hugetlbfs)",
            map.path.display(),
            if map.on_hugetlbfs { "on" } else { "NOT on" }
        );
        let st = port.stats().expect("stats");
        assert_eq!(st.ipackets, got as u64);
        port.stop().expect("stop");
    }
    assert_eq!(pool.avail_count(), n, "pool not full after the port closed");
    assert!(pool.is_full());
}
