//! Measures `Lpm::lookup` and compares it with a simple peer in the same run:
//! per-prefix-length hash maps probed from /32 down (what you would write
//! without DIR-24-8). Prints numbers; asserts nothing about time.
//!
//! `cargo run --release -p netvm-wire --example lpm_lookup [routes] [lookups]`

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Instant;

use netvm_wire::lpm::{Lpm, LpmConfig};
use netvm_wire::{Ipv4Addr, Ipv4Prefix};

fn splitmix(s: &mut u64) -> u64 {
    *s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *s;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n_routes: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(50_000);
    let n_lookups: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1 << 22);

    // A BGP-like mix: mostly /24, some /16–/23, a few /25–/32.
    let mut s = 1u64;
    let mut lpm = Lpm::new(LpmConfig {
        max_rules: u32::try_from(n_routes).unwrap_or(u32::MAX),
        tbl8_groups: 1 << 14,
    })
    .expect("config");
    let mut by_len: Vec<HashMap<u32, u16>> = vec![HashMap::new(); 33];
    let mut routes = Vec::new();
    while routes.len() < n_routes {
        let r = splitmix(&mut s);
        let len = match r % 100 {
            0..=69 => 24,
            70..=94 => 16 + u8::try_from(r % 8).unwrap_or(0),
            _ => 25 + u8::try_from(r % 8).unwrap_or(0),
        };
        let addr = Ipv4Addr::from(u32::try_from(r >> 32).unwrap_or(0));
        let p = Ipv4Prefix::new(addr, len).expect("len <= 32");
        let nh = u16::try_from(routes.len() % 1024).unwrap_or(0);
        match lpm.insert(p, nh) {
            Ok(()) => {
                by_len[usize::from(len)].insert(u32::from(p.addr()), nh);
                routes.push(p);
            }
            Err(_) => break, // out of tbl8 groups: measure with what we have
        }
    }
    // Half the lookups inside a route, half uniformly random.
    let ips: Vec<Ipv4Addr> = (0..n_lookups)
        .map(|i| {
            let r = splitmix(&mut s);
            if i % 2 == 0 {
                let p = routes[usize::try_from(r % routes.len() as u64).unwrap_or(0)];
                Ipv4Addr::from(
                    u32::from(p.addr()) | (u32::try_from(r >> 32).unwrap_or(0) & !p.mask()),
                )
            } else {
                Ipv4Addr::from(u32::try_from(r >> 32).unwrap_or(0))
            }
        })
        .collect();

    let naive = |ip: Ipv4Addr| -> Option<u16> {
        let ip = u32::from(ip);
        (0..=32u32).rev().find_map(|len| {
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            by_len[len as usize].get(&(ip & mask)).copied()
        })
    };

    // Agreement first.
    for ip in ips.iter().take(100_000) {
        assert_eq!(lpm.lookup(*ip), naive(*ip), "{ip}");
    }

    let time = |f: &dyn Fn(Ipv4Addr) -> Option<u16>| {
        let mut best = f64::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            let mut hits = 0u64;
            for ip in &ips {
                hits += u64::from(black_box(f(*ip)).is_some());
            }
            black_box(hits);
            best = best.min(t.elapsed().as_nanos() as f64 / ips.len() as f64);
        }
        best
    };
    let lpm_ns = time(&|ip| lpm.lookup(ip));
    let naive_ns = time(&naive);
    println!(
        "routes {} (tbl8 groups used {}), lookups {}",
        lpm.len(),
        lpm.tbl8_groups_used(),
        ips.len()
    );
    println!("Lpm::lookup (DIR-24-8):       {lpm_ns:6.2} ns/lookup");
    println!("per-length HashMap probing:   {naive_ns:6.2} ns/lookup");
    println!("ratio: {:.1}x", naive_ns / lpm_ns);
}
