//! `hostile-nf --region PATH --nf NAME`: the adversarial NF of `netvm_tests::hostile`.

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
    let (Some(region), Some(name)) = (get("--region"), get("--nf")) else {
        eprintln!("usage: hostile-nf --region PATH --nf NAME");
        std::process::exit(2);
    };
    let h: extern "C" fn(libc::c_int) = on_signal;
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: installs an async-signal-safe handler (one atomic store).
        unsafe { libc::signal(sig, h as libc::sighandler_t) };
    }
    match netvm_tests::hostile::run(std::path::Path::new(&region), &name, &STOP) {
        Ok(n) => println!("hostile-nf: {n} packets received"),
        Err(e) => {
            eprintln!("hostile-nf: {e}");
            std::process::exit(1);
        }
    }
}
