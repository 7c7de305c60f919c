//! Descriptor validation and ring dequeue over hostile bytes: the input is written over a
//! region's TX ring (control words and descriptor slots) after which the core-side consumer
//! dequeues and validates everything with `CheckedDesc::try_from_raw`. Nothing may panic, and
//! every accepted descriptor must lie inside its buffer.

use netvm_shm::{CheckedDesc, Descriptor, Region, RegionKind, RegionParams};

fn main() {
    let params = RegionParams {
        kind: RegionKind::Combined,
        domain_id: 0,
        domain_name: "fuzz".into(),
        slot_count: 1,
        rx_rings_per_slot: 1,
        ring_capacity: 64,
        buf_size: 2176,
        buf_count: 256,
    };
    let region = Region::create_anonymous(&params).expect("region");
    let geom = *region.geometry();
    let rings = geom.slot_rings(0).expect("rings");
    let ring_off = geom.ring_area_offset() + rings.tx as usize * geom.ring_stride();
    let stride = geom.ring_stride();
    let target = |data: &[u8]| {
        region.reset_ring(rings.tx, 0).expect("reset");
        let mut cons = region.consumer(rings.tx).expect("consumer");
        // SAFETY: the ring's control block lies inside the validated mapping.
        let base = unsafe { region.as_ptr().as_ptr().add(ring_off) };
        let n = data.len().min(stride);
        // SAFETY: the ring occupies `stride` bytes from its control block inside the region
        // mapping; n <= stride; nothing else touches this private anonymous region.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), base, n) };
        let mut out = [Descriptor::default(); 32];
        for _ in 0..4 {
            match cons.dequeue_burst(&mut out) {
                Ok(k) => {
                    for d in &out[..k] {
                        if let Ok(c) = CheckedDesc::try_from_raw(*d, &geom) {
                            assert!(c.buf_idx() < geom.buf_count());
                            assert!(c.data_len() > 0);
                            assert!(
                                u32::from(c.data_off()) + u32::from(c.data_len())
                                    <= geom.buf_size()
                            );
                        }
                    }
                }
                Err(_) => break,
            }
        }
        // Raw descriptors straight from the input, too.
        for chunk in data.chunks_exact(16) {
            let mut b = [0u8; 16];
            b.copy_from_slice(chunk);
            let d = Descriptor {
                buf_idx: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
                data_off: u16::from_le_bytes([b[4], b[5]]),
                data_len: u16::from_le_bytes([b[6], b[7]]),
                flow_hash: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
                verdict: b[12],
                in_port: b[13],
                verdict_arg: u16::from_le_bytes([b[14], b[15]]),
            };
            let _ = CheckedDesc::try_from_raw(d, &geom);
        }
    };
    let (iters, secs, corpus, seed) = netvm_fuzz::args();
    let n = netvm_fuzz::drive(target, corpus.as_deref(), iters, secs, seed);
    println!("desc_validation: {n} inputs, no failure");
}
