//! `vm-bar-scan`: a test NF for the guest-isolation test (`tests/tests/vm_isolation.rs`).
//!
//! Runs like any NF (in a guest: no `--region`/`--nf`, the ivshmem BAR is found by
//! netlib-guest), passes every packet on (NEXT) and counts those carrying `--expect` in their
//! bytes. Whenever its packet count changes it scans **every byte of its region** (the whole
//! BAR, through a second, read-only mapping) for `--expect` and for `--forbid` and prints
//!
//! `vm-bar-scan: packets N expect-in-packets M; scanned L bytes: expect-hits X forbid-hits Y`
//!
//! on stdout (the guest's serial console, i.e. the VM's log on the host).
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use netlib_guest::{NfOptions, NfStats, Packet, PacketHandler, Verdict};

#[derive(Parser)]
#[command(about = "netvm test NF: scans its whole region for marker bytes")]
struct Args {
    #[command(flatten)]
    nf: NfOptions,
    /// Marker that packets delivered to this NF carry.
    #[arg(long)]
    expect: String,
    /// Marker of traffic this NF must never be able to see.
    #[arg(long)]
    forbid: String,
}

struct Scanner {
    map: memmap2::Mmap,
    expect: Vec<u8>,
    forbid: Vec<u8>,
    with_expect: u64,
    last_pkts: Option<u64>,
}

/// Occurrences of `pat` in the mapping, read with volatile loads (the core and other NFs write
/// the region concurrently; no Rust reference is formed into it).
fn count(map: &memmap2::Mmap, pat: &[u8]) -> u64 {
    let base = map.as_ptr();
    let len = map.len();
    let Some(&first) = pat.first() else { return 0 };
    let mut hits = 0;
    let mut i = 0;
    while i + pat.len() <= len {
        // SAFETY: i < len: inside the read-only mapping `map`, alive for this call.
        if unsafe { base.add(i).read_volatile() } == first
            // SAFETY: i + j < i + pat.len() <= len: inside the mapping.
            && (1..pat.len()).all(|j| unsafe { base.add(i + j).read_volatile() } == pat[j])
        {
            hits += 1;
        }
        i += 1;
    }
    hits
}

impl PacketHandler for Scanner {
    fn process(&mut self, pkt: &mut Packet<'_>) -> Verdict {
        if pkt
            .data()
            .windows(self.expect.len())
            .any(|w| w == self.expect.as_slice())
        {
            self.with_expect += 1;
        }
        Verdict::Next
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(Duration::from_millis(200))
    }

    fn tick(&mut self, stats: &NfStats) {
        if self.last_pkts == Some(stats.rx_pkts) {
            return;
        }
        self.last_pkts = Some(stats.rx_pkts);
        let e = count(&self.map, &self.expect);
        let f = count(&self.map, &self.forbid);
        println!(
            "vm-bar-scan: packets {} expect-in-packets {}; scanned {} bytes: expect-hits {e} forbid-hits {f}",
            stats.rx_pkts,
            self.with_expect,
            self.map.len()
        );
    }
}

fn run(args: &Args) -> Result<(), String> {
    let err = |e: &dyn std::error::Error| {
        let mut s = e.to_string();
        let mut src = e.source();
        while let Some(x) = src {
            s += &format!(": {x}");
            src = x.source();
        }
        s
    };
    netlib_guest::signal::install_handlers().map_err(|e| err(&e))?;
    let mut nf = args.nf.attach().map_err(|e| err(&e))?;
    let path = nf
        .region_path()
        .ok_or("the region has no path")?
        .to_path_buf();
    let file = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    // SAFETY: a read-only shared mapping of the region; only read with volatile loads.
    let map =
        unsafe { memmap2::Mmap::map(&file) }.map_err(|e| format!("{}: {e}", path.display()))?;
    println!(
        "vm-bar-scan: attached as {:?} to {} ({} bytes)",
        nf.name(),
        path.display(),
        map.len()
    );
    let mut s = Scanner {
        map,
        expect: args.expect.as_bytes().to_vec(),
        forbid: args.forbid.as_bytes().to_vec(),
        with_expect: 0,
        last_pkts: None,
    };
    let r = nf.run_handler(&mut s);
    let _ = nf.detach();
    r.map(|_| ()).map_err(|e| err(&e))
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vm-bar-scan: {e}");
            ExitCode::FAILURE
        }
    }
}
