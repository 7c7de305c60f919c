//! Fuzz targets for netvm, written as plain `fn(&[u8])` so that they run on stable Rust
//! without libFuzzer: each binary in `fuzz_targets/` feeds its target the files of a corpus
//! directory and then `N` random inputs (xorshift, seeded), mutated from corpus entries half of
//! the time. The same functions drop into `libfuzzer_sys::fuzz_target!` unchanged when
//! cargo-fuzz and the `libfuzzer-sys` crate are available (they are not in this environment).

use std::path::Path;
use std::time::{Duration, Instant};

/// xorshift64*.
pub struct Rng(pub u64);

impl Rng {
    /// Next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Runs `target` over every file in `corpus` (if it exists), then random inputs until
/// `iters` or `time` is reached. Returns the number of inputs run.
pub fn drive(
    target: impl Fn(&[u8]),
    corpus: Option<&Path>,
    iters: u64,
    time: Duration,
    seed: u64,
) -> u64 {
    let mut seeds: Vec<Vec<u8>> = Vec::new();
    if let Some(dir) = corpus {
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                if let Ok(b) = std::fs::read(e.path()) {
                    target(&b);
                    seeds.push(b);
                }
            }
        }
    }
    let mut rng = Rng(seed | 1);
    let end = Instant::now() + time;
    let mut n = 0;
    let mut buf = Vec::new();
    while n < iters && Instant::now() < end {
        buf.clear();
        if !seeds.is_empty() && rng.next_u64() & 1 == 0 {
            let s = &seeds[(rng.next_u64() % seeds.len() as u64) as usize];
            buf.extend_from_slice(s);
            for _ in 0..=(rng.next_u64() % 8) {
                if buf.is_empty() {
                    break;
                }
                let i = (rng.next_u64() % buf.len() as u64) as usize;
                match rng.next_u64() % 3 {
                    0 => buf[i] = rng.next_u64() as u8,
                    1 => {
                        buf.remove(i);
                    }
                    _ => buf.insert(i, rng.next_u64() as u8),
                }
            }
        } else {
            let len = (rng.next_u64() % 4096) as usize;
            buf.extend((0..len).map(|_| rng.next_u64() as u8));
        }
        target(&buf);
        n += 1;
    }
    n
}

/// Parses `--iters N --secs S --corpus DIR --seed N` from the command line.
pub fn args() -> (u64, Duration, Option<std::path::PathBuf>, u64) {
    let a: Vec<String> = std::env::args().collect();
    let get = |k: &str| {
        a.iter()
            .position(|x| x == k)
            .and_then(|i| a.get(i + 1))
            .cloned()
    };
    (
        get("--iters")
            .and_then(|v| v.parse().ok())
            .unwrap_or(u64::MAX),
        Duration::from_secs_f64(get("--secs").and_then(|v| v.parse().ok()).unwrap_or(60.0)),
        get("--corpus").map(Into::into),
        get("--seed").and_then(|v| v.parse().ok()).unwrap_or(1),
    )
}
