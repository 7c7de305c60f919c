//! net_ring loopback: what is sent on the port comes back on its RX side, byte for byte; the
#![allow(clippy::cast_possible_truncation)]
//! pool is full afterwards.
mod common;

use dpdk::{MbufArray, Mempool, Port, PortConfig};

#[test]
fn ring_round_trip() {
    let eal = common::eal("eal_ring_loopback");
    let pool = Mempool::new(&eal, "t_ring", 511, 0, 2176, -1).expect("pool");
    let mut port = Port::open(&eal, "net_ring0").expect("open net_ring");
    port.configure(&PortConfig::default(), &[&pool])
        .expect("configure");
    port.start().expect("start");

    let mut tx = MbufArray::<32>::new();
    assert!(pool.alloc_bulk(&mut tx, 32));
    for (i, &m) in tx.as_ptrs().iter().enumerate() {
        // SAFETY: owned mbuf in the array; we build a 60-byte packet in its data room.
        let mut mb = unsafe { dpdk::Mbuf::from_raw(std::ptr::NonNull::new(m).unwrap()) };
        assert!(mb.set_data(mb.data_off(), 60));
        for (j, b) in mb.data_mut().iter_mut().enumerate() {
            *b = ((i * 7 + j) % 256) as u8;
        }
        let _ = mb.into_raw(); // ownership stays with the array
    }
    let sent = port.tx_burst(0, &mut tx);
    assert_eq!(sent, 32);
    assert!(tx.is_empty());
    let mut rx = MbufArray::<64>::new();
    let got = port.rx_burst(0, &mut rx);
    assert_eq!(got, 32);
    let mut i = 0;
    while let Some(m) = rx.pop() {
        let idx = 31 - i;
        assert_eq!(m.data_len(), 60);
        for (j, &b) in m.data().iter().enumerate() {
            assert_eq!(b, ((idx * 7 + j) % 256) as u8, "packet {idx} byte {j}");
        }
        i += 1;
    }
    drop(rx);
    let st = port.stats().expect("stats");
    assert_eq!((st.opackets, st.ipackets), (32, 32));
    drop(port);
    assert!(pool.is_full(), "pool has {} of 511", pool.avail_count());
    println!("net_ring round trip: 32 packets out and back, pool full");
}
