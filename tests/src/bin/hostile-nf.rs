//! `hostile-nf --region PATH --nf NAME [--mode mixed|flood|spy|open|hoard|corrupt-tx|corrupt-rx|
//! header|neighbour|rehash] …`: the adversarial NF of `netvm_tests::hostile`. `flood`: `--count N
//! --hold N --keep N --scribble --seed N`. `corrupt-*`: `--first N`. `neighbour`: `--victim NF
//! --as-uid UID`. `spy`: `--marker
//! HEX` (without `--nf`: map only, no slot). `open`: only tries to open the region file read-write
//! and exits 0 (opened), 13 (EACCES) or 1.

use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let get = |k: &str| {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let Some(region) = get("--region") else {
        eprintln!("usage: hostile-nf --region PATH --nf NAME [--mode mixed|flood|spy|open]");
        std::process::exit(2);
    };
    let h: extern "C" fn(libc::c_int) = on_signal;
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: installs an async-signal-safe handler (one atomic store).
        unsafe { libc::signal(sig, h as libc::sighandler_t) };
    }
    let path = std::path::Path::new(&region);
    let name = get("--nf");
    let num = |k: &str, d: u64| get(k).and_then(|v| v.parse().ok()).unwrap_or(d);
    let mode = get("--mode").unwrap_or_else(|| "mixed".into());
    let res = match (mode.as_str(), name.as_deref()) {
        ("open", _) => match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
        {
            Ok(_) => {
                println!("hostile-nf: opened {region}");
                std::process::exit(0)
            }
            Err(e) => {
                println!("hostile-nf: open {region}: {e}");
                std::process::exit(if e.raw_os_error() == Some(libc::EACCES) {
                    13
                } else {
                    1
                })
            }
        },
        ("spy", n) => {
            let hex = get("--marker").unwrap_or_default();
            let marker: Vec<u8> = (0..hex.len() / 2)
                .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
                .collect();
            netvm_tests::hostile::run_spy(path, n, &marker, &STOP)
        }
        ("flood", Some(n)) => {
            let o = netvm_tests::hostile::FloodOpts {
                hold: num("--hold", 0),
                keep: num("--keep", 0),
                count: num("--count", 10_000_000),
                scribble: args.iter().any(|a| a == "--scribble"),
                seed: num("--seed", 1),
            };
            netvm_tests::hostile::run_flood(path, n, o, &STOP)
        }
        ("mixed", Some(n)) => netvm_tests::hostile::run(path, n, &STOP),
        (
            m @ ("hoard" | "corrupt-tx" | "corrupt-rx" | "header" | "neighbour" | "rehash"),
            Some(n),
        ) => {
            use netvm_tests::hostile::{Attack, AttackOpts};
            let attack = match m {
                "hoard" => Attack::Hoard,
                "corrupt-tx" => Attack::CorruptTx,
                "corrupt-rx" => Attack::CorruptRx,
                "header" => Attack::Header,
                "rehash" => Attack::Rehash,
                _ => Attack::Neighbour,
            };
            let o = AttackOpts {
                attack,
                first: num("--first", 0),
                victim: get("--victim"),
                as_uid: get("--as-uid").and_then(|v| v.parse().ok()),
            };
            netvm_tests::hostile::run_attack(path, n, &o, &STOP)
        }
        _ => Err(format!("bad mode {mode:?} or missing --nf")),
    };
    match res {
        Ok(n) => println!("hostile-nf: {n} done"),
        Err(e) => {
            eprintln!("hostile-nf: {e}");
            std::process::exit(1);
        }
    }
}
