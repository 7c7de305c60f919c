//! The smallest real thing: EAL up, two ports, every packet received on one is transmitted on
//! the other, counts printed each second and at the end.
//!
//! `cargo run --release -p dpdk --example portfwd -- [SECONDS] [RX_DEVARGS] [TX_DEVARGS]`
//! (defaults: 3 s, `net_null0,size=64,copy=0`, `net_null1`). Used by the interim demo and as
//! the port→port reference in benchmarks.

use std::time::{Duration, Instant};

use dpdk::{EalBuilder, MbufArray, Mempool, Port, PortConfig};

fn main() {
    if let Err(e) = run() {
        eprintln!("portfwd: {e}");
        let mut src = std::error::Error::source(e.as_ref());
        while let Some(s) = src {
            eprintln!("  caused by: {s}");
            src = s.source();
        }
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let secs: f64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(3.0);
    let rx_dev = args
        .next()
        .unwrap_or_else(|| "net_null0,size=64,copy=0".into());
    let tx_dev = args.next().unwrap_or_else(|| "net_null1".into());

    let (b, fell_back) = EalBuilder::new("portfwd").lcores("0").huge_or_fallback(512);
    if fell_back {
        println!("no usable hugepages: running with --no-huge");
    }
    let eal = b.init()?;
    println!("{} up (file prefix {})", dpdk::version(), eal.file_prefix());
    let pool = Mempool::new(&eal, "portfwd", 8191, 256, 2176, -1)?;
    let cfg = PortConfig::default();
    let mut rx = Port::open(&eal, &rx_dev)?;
    rx.configure(&cfg, &[&pool])?;
    let mut tx = Port::open(&eal, &tx_dev)?;
    tx.configure(&cfg, &[&pool])?;
    rx.start()?;
    tx.start()?;
    println!(
        "forwarding {} ({}) -> {} ({}) for {secs} s",
        rx.name(),
        rx.id(),
        tx.name(),
        tx.id()
    );

    let mut burst = MbufArray::<32>::new();
    let (mut fwd, mut dropped) = (0u64, 0u64);
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let mut next_report = start + Duration::from_secs(1);
    let mut last = 0u64;
    loop {
        if rx.rx_burst(0, &mut burst) > 0 {
            let sent = tx.tx_burst(0, &mut burst);
            fwd += sent as u64;
            dropped += burst.len() as u64;
            burst.clear();
        }
        // One clock read per 64 bursts keeps the loop free of system calls in between.
        if fwd.wrapping_sub(last) >= 2048 * 64 || fwd == last {
            let now = Instant::now();
            if now >= next_report {
                println!("  {:>6.1} Mpps", (fwd - last) as f64 / 1e6);
                last = fwd;
                next_report += Duration::from_secs(1);
            }
            if now >= end {
                break;
            }
        }
    }
    let el = start.elapsed().as_secs_f64();
    let (rs, ts) = (rx.stats()?, tx.stats()?);
    println!(
        "port {} rx {} packets; port {} tx {} packets; dropped on tx {dropped}",
        rx.name(),
        rs.ipackets,
        tx.name(),
        ts.opackets
    );
    println!(
        "forwarded {fwd} packets in {el:.2} s = {:.2} Mpps",
        fwd as f64 / el / 1e6
    );
    rx.stop()?;
    tx.stop()?;
    drop((rx, tx));
    if !pool.is_full() {
        return Err(format!(
            "pool not full after stop: {} of {}",
            pool.avail_count(),
            pool.size()
        )
        .into());
    }
    println!("pool full again ({} mbufs)", pool.size());
    Ok(())
}
