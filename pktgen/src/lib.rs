//! `netvm-pktgen`: a DPDK traffic generator for benchmarking netvm and its peers.
//!
//! One process, one lcore: it opens a TX device and (optionally a different) RX device — any
//! DPDK device string, a `net_memif` client by default — sends UDP frames of a given size or
//! size mix at a paced rate (or as fast as the device takes them) over a number of flows, and
//! receives whatever comes back on the same thread. Every frame carries, right after its UDP
//! header, a magic word, a sequence number and the TSC at which it was built ([`stamp`]), so
//! the receiver measures loss, per-flow reordering and round-trip latency (HDR histogram) with
//! the same clock that stamped the frame. The result is one JSON object ([`Report`]).
//!
//! What it is not: a line-rate hardware generator. At the rates of a 2-core software path
//! building frames on the fly is cheap: only the 42 header bytes and the 20-byte stamp are
//! written per frame (from per-flow templates); the rest of the payload is whatever the buffer
//! held, and the UDP checksum is 0 ("none", valid for IPv4).
//!
//! The pure parts — [`stamp`], [`Pacer`], [`SizeMix`], [`RxTracker`] — are unit-tested
//! without DPDK; [`run`] is the DPDK loop.

#![warn(missing_docs)]

mod generator;
pub mod stamp;

pub use generator::{run, Options, PktgenError};

use std::str::FromStr;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Frames sent per TX burst and received per RX burst.
pub const BURST: usize = 32;

/// The offered rate: a number of frames per second, or as fast as the device takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rate {
    /// Frames per second.
    Pps(u64),
    /// Unpaced: fill every TX burst.
    Max,
}

impl FromStr for Rate {
    type Err = String;
    /// `max`, or a number with an optional `k`/`m` suffix (`10k`, `2.5m`, `100000`).
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim().to_ascii_lowercase();
        if t == "max" {
            return Ok(Rate::Max);
        }
        let (num, mul) = match t.strip_suffix('k') {
            Some(n) => (n, 1e3),
            None => match t.strip_suffix('m') {
                Some(n) => (n, 1e6),
                None => (t.as_str(), 1.0),
            },
        };
        let v: f64 = num
            .parse()
            .map_err(|_| format!("rate {s:?}: expected `max` or a number like 10k, 2.5m"))?;
        let pps = v * mul;
        if !(1.0..=1e10).contains(&pps) {
            return Err(format!("rate {s:?} is out of range (1 pps .. 10 Gpps)"));
        }
        // In range 1..=1e10 checked above: the conversion cannot truncate meaningfully.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Ok(Rate::Pps(pps.round() as u64))
    }
}

/// Frame sizes (bytes in the mbuf, Ethernet FCS not included) sent in a fixed repeating
/// schedule: `64`, `64,1518` (alternating), `64x7,576x4,1518x1` (a weighted mix, IMIX-like).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SizeMix {
    /// The distinct sizes, in the order given.
    pub sizes: Vec<u16>,
    /// The schedule: indices into `sizes`, repeated.
    pub schedule: Vec<u8>,
}

impl SizeMix {
    /// Smallest frame: Ethernet + IPv4 + UDP headers and the stamp.
    pub const MIN: u16 = stamp::MIN_FRAME;
    /// Largest frame (one mbuf of the generator's pool, without jumbo support).
    pub const MAX: u16 = 1518;

    /// One size.
    pub fn single(size: u16) -> Self {
        Self {
            sizes: vec![size],
            schedule: vec![0],
        }
    }

    /// The size index of frame number `n` of a flow-interleaved sequence: frames `n` of the
    /// same `n / flows` share a size, so every flow sees the whole mix.
    #[inline]
    pub fn index_of(&self, n: u64, flows: u32) -> usize {
        let round = n / u64::from(flows.max(1));
        let len = self.schedule.len() as u64;
        // round % len < len <= 255 fits usize.
        let i = usize::try_from(round % len).unwrap_or(0);
        usize::from(self.schedule[i])
    }

    /// Mean frame size of the schedule.
    pub fn mean(&self) -> f64 {
        let sum: u64 = self
            .schedule
            .iter()
            .map(|&i| u64::from(self.sizes[usize::from(i)]))
            .sum();
        sum as f64 / self.schedule.len() as f64
    }
}

impl FromStr for SizeMix {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut sizes: Vec<u16> = Vec::new();
        let mut schedule = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (size, weight) = match part.split_once('x') {
                Some((a, b)) => (a, b),
                None => (part, "1"),
            };
            let size: u16 = size
                .parse()
                .map_err(|_| format!("size {part:?}: expected SIZE or SIZExWEIGHT"))?;
            let weight: u16 = weight
                .parse()
                .map_err(|_| format!("size {part:?}: bad weight"))?;
            if !(Self::MIN..=Self::MAX).contains(&size) {
                return Err(format!(
                    "size {size} is outside {}..={} bytes",
                    Self::MIN,
                    Self::MAX
                ));
            }
            if weight == 0 {
                return Err(format!("size {part:?}: weight 0"));
            }
            let idx = match sizes.iter().position(|&x| x == size) {
                Some(i) => i,
                None => {
                    sizes.push(size);
                    sizes.len() - 1
                }
            };
            let idx = u8::try_from(idx).map_err(|_| "more than 255 distinct sizes".to_string())?;
            for _ in 0..weight {
                schedule.push(idx);
            }
            if schedule.len() > 4096 {
                return Err("size schedule longer than 4096 frames".into());
            }
        }
        if schedule.is_empty() {
            return Err("no frame size given".into());
        }
        Ok(Self { sizes, schedule })
    }
}

/// Spreads frames evenly over time with the TSC: at time `now` the generator may have issued
/// `(now - start) * rate / hz` frames. By default a backlog (the thread was descheduled, or the
/// device refused frames) is caught up by at most one burst; older debt is written off and
/// counted, so a stall does not turn into a burst that distorts the latency of what follows.
/// [`Pacer::catching_up`] keeps the whole backlog instead: every scheduled frame is handed out,
/// late if need be (RFC 2544 trials, where a frame not offered would count as lost).
#[derive(Debug, Clone)]
pub struct Pacer {
    start: u64,
    rate: u64,
    hz: u64,
    issued: u64,
    scheduled: u64,
    max_debt: u64,
    /// Frames written off because the generator fell behind by more than a burst.
    pub skipped: u64,
}

impl Pacer {
    /// A pacer starting at TSC `start`, `rate` frames per second, TSC at `hz`.
    pub fn new(start: u64, rate: u64, hz: u64) -> Self {
        Self {
            start,
            rate,
            hz: hz.max(1),
            issued: 0,
            scheduled: 0,
            max_debt: BURST as u64,
            skipped: 0,
        }
    }

    /// The same pacer, but it never writes a backlog off: frames fall due on schedule and are
    /// handed out as soon as there is room, however late.
    pub fn catching_up(mut self) -> Self {
        self.max_debt = u64::MAX;
        self
    }

    /// How many frames are due at `now`, at most `max`; the caller must issue them (they are
    /// counted as issued).
    #[inline]
    pub fn due(&mut self, now: u64, max: usize) -> usize {
        let elapsed = u128::from(now.saturating_sub(self.start));
        let target = elapsed * u128::from(self.rate) / u128::from(self.hz);
        let target = u64::try_from(target).unwrap_or(u64::MAX);
        self.scheduled = self.scheduled.max(target);
        let mut debt = target.saturating_sub(self.issued);
        let cap = self.max_debt;
        if debt > cap {
            self.skipped += debt - cap;
            self.issued += debt - cap;
            debt = cap;
        }
        let n = debt.min(max as u64);
        self.issued += n;
        // n <= max.
        usize::try_from(n).unwrap_or(max)
    }

    /// Frames scheduled so far, `⌊(now − start) × rate / hz⌋` as of the last call of
    /// [`Pacer::due`]: the ones handed out, the ones written off ([`Pacer::skipped`]) and the
    /// backlog not handed out yet.
    pub fn scheduled(&self) -> u64 {
        self.scheduled
    }
}

/// What the receiver learns from the frames that come back.
#[derive(Debug)]
pub struct RxTracker {
    /// Per flow: one past the highest sequence number seen (0: none yet).
    next: Vec<u64>,
    flows: u32,
    /// Frames received (stamped or not).
    pub received: u64,
    /// Bytes received.
    pub bytes: u64,
    /// Stamped frames whose sequence number is below one already seen on their flow
    /// (reordered, or duplicated).
    pub reordered: u64,
    /// Frames without a valid stamp (not ours, or mangled).
    pub foreign: u64,
    /// Round-trip latency in nanoseconds of stamped frames.
    pub latency: Histogram<u64>,
    tsc_hz: u64,
}

impl RxTracker {
    /// A tracker for `flows` flows, TSC at `tsc_hz`.
    pub fn new(flows: u32, tsc_hz: u64) -> Self {
        let latency = Histogram::new_with_bounds(1, 3_600_000_000_000, 3)
            .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable_hist()));
        Self {
            next: vec![0; usize::try_from(flows.max(1)).unwrap_or(1)],
            flows: flows.max(1),
            received: 0,
            bytes: 0,
            reordered: 0,
            foreign: 0,
            latency,
            tsc_hz: tsc_hz.max(1),
        }
    }

    /// Accounts one received frame, seen at TSC `now`.
    #[inline]
    pub fn on_frame(&mut self, frame: &[u8], now: u64) {
        self.received += 1;
        self.bytes += frame.len() as u64;
        let Some(s) = stamp::read(frame) else {
            self.foreign += 1;
            return;
        };
        let flow = usize::try_from(s.seq % u64::from(self.flows)).unwrap_or(0);
        let next = &mut self.next[flow];
        if s.seq < *next {
            self.reordered += 1;
        } else {
            *next = s.seq + 1;
        }
        if let Some(cycles) = now.checked_sub(s.tsc) {
            let ns = u128::from(cycles) * 1_000_000_000 / u128::from(self.tsc_hz);
            self.latency
                .saturating_record(u64::try_from(ns).unwrap_or(u64::MAX));
        }
    }

    /// The latency summary.
    pub fn latency_summary(&self) -> Latency {
        let h = &self.latency;
        let empty = h.is_empty();
        let q = |x: f64| if empty { 0 } else { h.value_at_quantile(x) };
        Latency {
            count: h.len(),
            min_ns: if empty { 0 } else { h.min() },
            mean_ns: if empty { 0.0 } else { h.mean() },
            p50_ns: q(0.5),
            p90_ns: q(0.9),
            p99_ns: q(0.99),
            p999_ns: q(0.999),
            max_ns: if empty { 0 } else { h.max() },
        }
    }
}

fn unreachable_hist() -> Histogram<u64> {
    // Histogram::new(3) only fails for sigfig > 5; kept total rather than panicking.
    Histogram::new_with_max(1 << 40, 2).unwrap_or_else(|_| std::process::abort())
}

/// Round-trip latency percentiles in nanoseconds (HDR histogram, 3 significant digits).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Frames measured.
    pub count: u64,
    /// Minimum.
    pub min_ns: u64,
    /// Mean.
    pub mean_ns: f64,
    /// Median.
    pub p50_ns: u64,
    /// 90th percentile.
    pub p90_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p999_ns: u64,
    /// Maximum.
    pub max_ns: u64,
}

/// The result of one run, printed as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// TX device string.
    pub tx_dev: String,
    /// RX device string.
    pub rx_dev: String,
    /// Frame sizes and schedule.
    pub sizes: SizeMix,
    /// Mean frame size of the schedule.
    pub mean_size: f64,
    /// Flows.
    pub flows: u32,
    /// Offered rate (`null`: max).
    pub rate_pps: Option<u64>,
    /// Seconds of sending (measured with the TSC).
    pub duration_s: f64,
    /// Frames offered. Paced: the frames the pacer scheduled during sending,
    /// `⌊rate × t⌋` with `t` the sending time up to its last scheduling decision (at most one
    /// loop iteration, about a microsecond, short of `duration_s`); this includes frames written
    /// off (`pacing_skipped`), built but not taken (`unsent`), still due when sending ended, and
    /// not built for want of a free buffer. Max: the frames built (`sent + unsent`). 0 in
    /// reports of older versions.
    #[serde(default)]
    pub offered: u64,
    /// Whether the pacer caught up with its backlog instead of writing it off (`--catch-up`).
    #[serde(default)]
    pub catch_up: bool,
    /// Frames the TX device accepted.
    pub sent: u64,
    /// Frames received (during sending and the drain).
    pub received: u64,
    /// `sent - received` (0 if more came back than went out).
    pub lost: u64,
    /// `lost / sent`.
    pub loss_ratio: f64,
    /// Stamped frames that arrived after a later frame of their flow.
    pub reordered: u64,
    /// Frames received without a valid stamp.
    pub foreign: u64,
    /// Frames the pacer wrote off because the generator fell behind.
    pub pacing_skipped: u64,
    /// Frames built but not taken by the device before the end (freed, not counted as sent).
    pub unsent: u64,
    /// `sent / duration_s`.
    pub tx_pps: f64,
    /// `received / duration_s`: the forwarding rate of the system under test at this load.
    pub rx_pps: f64,
    /// Received Mbit/s (frame bytes, no preamble, FCS or gap).
    pub rx_mbps: f64,
    /// Round-trip latency.
    pub latency: Latency,
    /// TSC frequency in Hz.
    pub tsc_hz: u64,
    /// Whether the EAL ran without hugepages.
    pub no_huge: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_parses() {
        assert_eq!("max".parse::<Rate>(), Ok(Rate::Max));
        assert_eq!("10k".parse::<Rate>(), Ok(Rate::Pps(10_000)));
        assert_eq!("2.5M".parse::<Rate>(), Ok(Rate::Pps(2_500_000)));
        assert_eq!("100000".parse::<Rate>(), Ok(Rate::Pps(100_000)));
        assert!("0".parse::<Rate>().is_err());
        assert!("fast".parse::<Rate>().is_err());
    }

    #[test]
    fn size_mix_parses_and_interleaves_flows() {
        let m: SizeMix = "64x2,1518".parse().unwrap();
        assert_eq!(m.sizes, vec![64, 1518]);
        assert_eq!(m.schedule, vec![0, 0, 1]);
        assert!((m.mean() - (64.0 * 2.0 + 1518.0) / 3.0).abs() < 1e-9);
        // Two flows: frames 0,1 (round 0) size 64, 2,3 size 64, 4,5 size 1518.
        let idx: Vec<usize> = (0..8).map(|n| m.index_of(n, 2)).collect();
        assert_eq!(idx, vec![0, 0, 0, 0, 1, 1, 0, 0]);
        assert_eq!("64".parse::<SizeMix>().unwrap(), SizeMix::single(64));
        assert!("20".parse::<SizeMix>().is_err());
        assert!("9000".parse::<SizeMix>().is_err());
        assert!("64x0".parse::<SizeMix>().is_err());
        assert!("".parse::<SizeMix>().is_err());
    }

    #[test]
    fn pacer_spreads_and_writes_off_stalls() {
        let hz = 1_000_000_000; // 1 tick = 1 ns
        let mut p = Pacer::new(0, 1_000_000, hz); // one frame per µs
        assert_eq!(p.due(0, 32), 0);
        assert_eq!(p.due(5_000, 32), 5);
        assert_eq!(p.due(5_500, 32), 0);
        assert_eq!(p.due(10_000, 2), 2); // limited by room
        assert_eq!(p.due(10_000, 32), 3);
        // A 1 ms stall: 1000 due, one burst sent, the rest written off.
        assert_eq!(p.due(1_010_000, 32), 32);
        assert_eq!(p.skipped, 1000 - 32);
        assert_eq!(p.due(1_011_000, 32), 1);
        // Everything due so far, handed out or written off.
        assert_eq!(p.scheduled(), 1011);
        assert_eq!(p.scheduled(), 5 + 2 + 3 + 32 + p.skipped + 1);
        // No room (the device refuses frames): the backlog up to a burst waits, is scheduled.
        assert_eq!(p.due(1_020_000, 0), 0);
        assert_eq!(p.scheduled(), 1020);
    }

    #[test]
    fn catching_up_pacer_keeps_the_backlog() {
        let hz = 1_000_000_000;
        let mut p = Pacer::new(0, 1_000_000, hz).catching_up();
        assert_eq!(p.due(5_000, 32), 5);
        // A 1 ms stall: 1000 frames due, handed out a burst at a time, none written off.
        assert_eq!(p.due(1_005_000, 32), 32);
        assert_eq!(p.due(1_005_000, 32), 32);
        assert_eq!(p.skipped, 0);
        assert_eq!(p.scheduled(), 1005);
        let mut handed = 5 + 64;
        for _ in 0..40 {
            handed += p.due(1_005_000, 32) as u64;
        }
        assert_eq!(handed, 1005);
        assert_eq!(p.due(1_005_000, 32), 0);
        assert_eq!(p.due(1_006_000, 32), 1);
    }

    #[test]
    fn tracker_counts_reorder_foreign_and_latency() {
        let mut t = RxTracker::new(2, 1_000_000_000);
        let mut f = [0u8; 64];
        for (seq, tsc) in [(0u64, 100u64), (1, 100), (2, 200), (4, 300), (3, 300)] {
            stamp::write(&mut f, seq, tsc);
            t.on_frame(&f, tsc + 1_000);
        }
        // flow 0: 0, 2, 4 in order; flow 1: 1, 3 in order. Now seq 2 again (flow 0, late).
        stamp::write(&mut f, 2, 0);
        t.on_frame(&f, 5_000);
        t.on_frame(&[0u8; 60], 0);
        assert_eq!(t.received, 7);
        assert_eq!(t.reordered, 1);
        assert_eq!(t.foreign, 1);
        let l = t.latency_summary();
        assert_eq!(l.count, 6);
        assert_eq!(l.min_ns, 1_000);
        assert!(l.max_ns >= 4_990 && l.max_ns <= 5_010, "{l:?}");
        assert!(l.p50_ns >= 999 && l.p50_ns <= 1_001, "{l:?}");
    }
}
