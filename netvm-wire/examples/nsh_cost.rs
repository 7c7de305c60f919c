//! Per-frame cost of what the core does to a frame that crosses to a peer instance, measured
//! on a buffer laid out like a netvm packet buffer (128 bytes of headroom, then the frame):
//!
//! * **encap**: build the 22-byte outer Ethernet + NSH header (`NshHeader::emit_base`), copy
//!   it in front of the frame (into the headroom), move the data offset and length — the
//!   core's `worker/nsh.rs` `nsh_out` minus the TX;
//! * **decap**: copy the frame's first bytes (at most 280) into a private array, validate
//!   them (`parse_eth_nsh`, TTL, a path lookup by binary search over 16 paths, the SI), move
//!   the data offset and length — `nsh_in` minus the RX and the hand-on to the chain;
//! * beside them, as the peer in the same run, a plain 64-byte copy of a frame (what the
//!   domain-crossing copy costs at least).
//!
//! Prints ns/frame for 64- and 1500-byte frames; asserts nothing about time.
//!
//! `cargo run --release -p netvm-wire --example nsh_cost [frames]`

use std::hint::black_box;
use std::time::Instant;

use netvm_wire::nsh::{NshHeader, FIRST_SI, NSH_BASE_LEN};
use netvm_wire::{parse_eth_nsh, ETHERTYPE_NSH, ETH_NSH_LEN};

const HEADROOM: usize = 128;
const COPY: usize = 14 + 63 * 4 + 14;

struct Buf {
    bytes: Vec<u8>,
    off: usize,
    len: usize,
}

fn encap(b: &mut Buf, macs: &[u8; 12], spi: u32, si: u8) -> bool {
    if b.off < ETH_NSH_LEN {
        return false;
    }
    let mut h = [0u8; ETH_NSH_LEN];
    h[..12].copy_from_slice(macs);
    h[12..14].copy_from_slice(&ETHERTYPE_NSH.to_be_bytes());
    let mut base = [0u8; NSH_BASE_LEN];
    NshHeader::new(spi, si, 63).emit_base(&mut base);
    h[14..].copy_from_slice(&base);
    b.off -= ETH_NSH_LEN;
    b.bytes[b.off..b.off + ETH_NSH_LEN].copy_from_slice(&h);
    b.len += ETH_NSH_LEN;
    true
}

fn decap(b: &mut Buf, paths: &[(u32, u16)]) -> Option<(u16, usize)> {
    let mut hdr = [0u8; COPY];
    let k = b.len.min(COPY);
    hdr[..k].copy_from_slice(&b.bytes[b.off..b.off + k]);
    let p = parse_eth_nsh(&hdr[..k], b.len).ok()?;
    let i = paths.binary_search_by_key(&p.nsh.spi, |&(s, _)| s).ok()?;
    p.nsh.ttl_after_hop().ok()?;
    let pos = usize::from(FIRST_SI - p.nsh.si);
    b.off += p.inner_off;
    b.len -= p.inner_off;
    Some((paths[i].1, pos))
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000_000);
    let macs = [2, 0, 0, 0, 0x0b, 1, 2, 0, 0, 0, 0x0a, 1];
    let paths: Vec<(u32, u16)> = (0..16u16).map(|i| (1000 + u32::from(i) * 7, i)).collect();
    let spi = paths[9].0;
    println!("nsh_cost: {n} frames per figure, 16 paths");
    // Warm-up (CPU frequency, caches, branch predictors): one untimed round of both.
    let mut w = Buf {
        bytes: vec![0x5a; HEADROOM + 128],
        off: HEADROOM,
        len: 64,
    };
    for _ in 0..n / 4 {
        black_box(encap(black_box(&mut w), &macs, spi, 254));
        black_box(decap(black_box(&mut w), &paths));
    }
    for size in [64usize, 1500] {
        let mut b = Buf {
            bytes: vec![0x5a; HEADROOM + size + 64],
            off: HEADROOM,
            len: size,
        };
        // Encap alone (undo by moving the offset back: the undo is two adds).
        let t = Instant::now();
        for _ in 0..n {
            black_box(encap(black_box(&mut b), &macs, spi, 254));
            b.off += ETH_NSH_LEN;
            b.len -= ETH_NSH_LEN;
        }
        let enc = t.elapsed().as_nanos() as f64 / n as f64;
        // Decap alone, on an encapsulated frame (redo by moving the offset back).
        encap(&mut b, &macs, spi, 254);
        let t = Instant::now();
        for _ in 0..n {
            let r = decap(black_box(&mut b), &paths);
            assert!(r == Some((9, 1)), "decap failed");
            b.off -= ETH_NSH_LEN;
            b.len += ETH_NSH_LEN;
        }
        let dec = t.elapsed().as_nanos() as f64 / n as f64;
        // Peer: copying the first 64 bytes of the frame elsewhere.
        let mut dst = vec![0u8; HEADROOM + size];
        let t = Instant::now();
        for _ in 0..n {
            let src = black_box(&b.bytes[b.off..b.off + 64]);
            dst[HEADROOM..HEADROOM + 64].copy_from_slice(src);
            black_box(&mut dst);
        }
        let cp = t.elapsed().as_nanos() as f64 / n as f64;
        println!(
            "  {size:>5} B frame: encap {enc:6.2} ns/frame   decap+validate {dec:6.2} ns/frame   (peer: 64 B copy {cp:5.2} ns)"
        );
    }
}
