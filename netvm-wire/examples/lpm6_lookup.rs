//! Measures `Lpm6::lookup` (IPv6 multibit trie) beside `Lpm::lookup` (IPv4 DIR-24-8) in the
//! same run, at 1k and 100k routes each. Prints ns/lookup; asserts nothing about time (it
//! does check a sample of IPv6 lookups against a naive longest-prefix scan first).
//!
//! `cargo run --release -p netvm-wire --example lpm6_lookup [lookups]`
//!
//! IPv6 routes: a BGP-like mix under 2000::/3 — 10 % /32 (allocations), 70 % /48 inside
//! those /32s, 20 % /33–/64. Lookups: half inside a route, half random under 2000::/3, in a
//! random order (no locality help beyond what the table has).

use std::hint::black_box;
use std::time::Instant;

use netvm_wire::lpm::{Lpm, LpmConfig};
use netvm_wire::{Ipv4Addr, Ipv4Prefix, Ipv6Addr, Ipv6Prefix, Lpm6, Lpm6Config};

fn splitmix(s: &mut u64) -> u64 {
    *s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *s;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn r128(s: &mut u64) -> u128 {
    (u128::from(splitmix(s)) << 64) | u128::from(splitmix(s))
}

fn v6_table(n: usize, s: &mut u64) -> (Lpm6, Vec<Ipv6Prefix>) {
    let mut t = Lpm6::new(Lpm6Config {
        max_rules: u32::try_from(n).unwrap_or(u32::MAX),
        max_groups: 1 << 22,
    })
    .expect("config");
    let base = 0x2000u128 << 112;
    let mut allocs: Vec<u128> = Vec::new();
    let mut routes = Vec::new();
    while routes.len() < n {
        let r = splitmix(s) % 100;
        let (addr, len) = if r < 10 || allocs.is_empty() {
            let a = base | ((r128(s) >> 3) & !(u128::MAX >> 32));
            allocs.push(a);
            (a, 32)
        } else if r < 80 {
            let a = allocs[usize::try_from(splitmix(s) % allocs.len() as u64).unwrap_or(0)];
            (a | (r128(s) >> 32), 48)
        } else {
            let a = allocs[usize::try_from(splitmix(s) % allocs.len() as u64).unwrap_or(0)];
            (
                a | (r128(s) >> 32),
                33 + u8::try_from(splitmix(s) % 32).unwrap_or(0),
            )
        };
        let p = Ipv6Prefix::new(Ipv6Addr::from(addr), len).expect("len");
        if t.get(p).is_none() {
            t.insert(p, u16::try_from(routes.len() % 1024).unwrap_or(0))
                .expect("insert");
            routes.push(p);
        }
    }
    (t, routes)
}

fn v4_table(n: usize, s: &mut u64) -> (Lpm, Vec<Ipv4Prefix>) {
    let mut t = Lpm::new(LpmConfig {
        max_rules: u32::try_from(n).unwrap_or(u32::MAX),
        tbl8_groups: 1 << 14,
    })
    .expect("config");
    let mut routes = Vec::new();
    while routes.len() < n {
        let r = splitmix(s);
        let len = match r % 100 {
            0..=69 => 24,
            70..=94 => 16 + u8::try_from(r % 8).unwrap_or(0),
            _ => 25 + u8::try_from(r % 8).unwrap_or(0),
        };
        let p =
            Ipv4Prefix::new(Ipv4Addr::from(u32::try_from(r >> 32).unwrap_or(0)), len).expect("len");
        if t.get(p).is_none() && t.insert(p, 1).is_ok() {
            routes.push(p);
        }
    }
    (t, routes)
}

fn time<T: Copy>(keys: &[T], f: impl Fn(T) -> Option<u16>) -> f64 {
    // One warm-up pass, then the timed one.
    let mut hits = 0u64;
    for &k in keys {
        hits += u64::from(f(k).is_some());
    }
    let t0 = Instant::now();
    for &k in keys {
        hits += u64::from(black_box(f(black_box(k))).is_some());
    }
    let ns = t0.elapsed().as_nanos() as f64 / keys.len() as f64;
    black_box(hits);
    ns
}

fn main() {
    let n_lookups: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1 << 21);
    let mut s = 7u64;
    println!("routes   ipv6 trie ns/lookup   ipv4 dir-24-8 ns/lookup   ratio   ipv6 groups");
    for n in [1_000usize, 100_000] {
        let (t6, r6) = v6_table(n, &mut s);
        let (t4, r4) = v4_table(n, &mut s);
        let keys6: Vec<Ipv6Addr> = (0..n_lookups)
            .map(|i| {
                let r = r128(&mut s);
                if i % 2 == 0 {
                    let p = r6[usize::try_from(splitmix(&mut s) % r6.len() as u64).unwrap_or(0)];
                    let host = r.checked_shr(u32::from(p.prefix_len())).unwrap_or(0);
                    Ipv6Addr::from(u128::from(p.addr()) | host)
                } else {
                    Ipv6Addr::from((0x2000u128 << 112) | (r >> 3))
                }
            })
            .collect();
        let keys4: Vec<Ipv4Addr> = (0..n_lookups)
            .map(|i| {
                let r = splitmix(&mut s);
                let x = u32::try_from(r >> 32).unwrap_or(0);
                if i % 2 == 0 {
                    let p = r4[usize::try_from(r % r4.len() as u64).unwrap_or(0)];
                    Ipv4Addr::from(u32::from(p.addr()) | (x & !p.mask()))
                } else {
                    Ipv4Addr::from(x)
                }
            })
            .collect();
        // Agreement with a naive scan on a sample.
        for k in keys6.iter().take(2000) {
            let naive = r6
                .iter()
                .filter(|p| p.contains(*k))
                .max_by_key(|p| p.prefix_len())
                .and_then(|p| t6.get(*p));
            assert_eq!(t6.lookup(*k), naive, "{k}");
        }
        let ns6 = time(&keys6, |k| t6.lookup(k));
        let ns4 = time(&keys4, |k| t4.lookup(k));
        println!(
            "{n:>7}   {ns6:>19.1}   {ns4:>23.1}   {:>5.2}   {:>11}",
            ns6 / ns4,
            t6.groups_used()
        );
    }
}
