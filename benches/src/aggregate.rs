//! Aggregating repetitions into per-point statistics (NDR/PDR searches included), and the goal
//! ratios of the benchmark issue computed from one run's aggregates.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::matrix::{DomainMode, Offered, Placement, Point, Setup, Sut};
use crate::{RawResult, Status};

/// Mean, sample standard deviation, median, min and max of a set of values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Values.
    pub n: usize,
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (n - 1); 0 for one value.
    pub stddev: f64,
    /// Median (mean of the middle two for an even count).
    #[serde(default)]
    pub median: f64,
    /// Minimum.
    pub min: f64,
    /// Maximum.
    pub max: f64,
}

impl Stats {
    /// Statistics of `v` (all zero when empty).
    pub fn of(v: &[f64]) -> Self {
        if v.is_empty() {
            return Self::default();
        }
        let n = v.len();
        let mean = v.iter().sum::<f64>() / n as f64;
        let var = if n > 1 {
            v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        let mut sorted = v.to_vec();
        sorted.sort_by(f64::total_cmp);
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        Self {
            n,
            mean,
            stddev: var.sqrt(),
            median,
            min: v.iter().copied().fold(f64::INFINITY, f64::min),
            max: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }
    }
}

/// One point's aggregate over its repetitions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AggPoint {
    /// The point.
    pub point: Point,
    /// Its file-name key.
    pub key: String,
    /// `ok` if at least one repetition was measured, else the status of the last one.
    pub status: Status,
    /// Why not ok (first reason seen).
    pub error: Option<String>,
    /// Repetitions measured.
    pub reps_ok: usize,
    /// Repetitions failed.
    pub reps_failed: usize,
    /// Received rate, Mpps.
    pub rx_mpps: Stats,
    /// Sent rate, Mpps.
    pub tx_mpps: Stats,
    /// Loss ratio.
    pub loss_ratio: Stats,
    /// Round-trip latency percentiles, µs.
    pub p50_us: Stats,
    /// 99th percentile, µs.
    pub p99_us: Stats,
    /// 99.9th percentile, µs.
    pub p999_us: Stats,
    /// Maximum, µs.
    pub max_us: Stats,
    /// Frames reordered (summed over repetitions).
    pub reordered: u64,
    /// Sanity: received ≤ sent in every repetition.
    pub received_le_sent: bool,
    /// The NDR/PDR search over its repetitions (points with rate `search`; the fields above
    /// then describe no single run and stay empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<AggSearch>,
}

/// A rate found by a search, over repetitions, in three units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RateStats {
    /// Mpps.
    pub mpps: Stats,
    /// Gbit/s on an Ethernet wire: pps × (size + 20) × 8, the 20 B being preamble, start
    /// delimiter and inter-frame gap (RFC 2544's convention). `size` is pktgen's frame size,
    /// which has no FCS (memif carries none); a physical port would add 4 B per frame.
    pub gbps_l1: Stats,
    /// Gbit/s of frame bytes: pps × size × 8 (no preamble, gap or FCS).
    pub gbps_frame: Stats,
}

impl RateStats {
    /// From rates in pps of frames of `size` bytes.
    pub fn of(pps: &[f64], size: u16) -> Self {
        let size = f64::from(size);
        let conv =
            |f: &dyn Fn(f64) -> f64| Stats::of(&pps.iter().map(|&p| f(p)).collect::<Vec<_>>());
        Self {
            mpps: conv(&|p| p / 1e6),
            gbps_l1: conv(&|p| p * (size + 20.0) * 8.0 / 1e9),
            gbps_frame: conv(&|p| p * size * 8.0 / 1e9),
        }
    }
}

/// Latency at one fraction of the PDR, over repetitions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AggLatency {
    /// Fraction of the PDR.
    pub fraction: f64,
    /// Offered rate, Mpps.
    pub rate_mpps: Stats,
    /// Median round-trip latency, µs.
    pub p50_us: Stats,
    /// 99th percentile, µs.
    pub p99_us: Stats,
    /// Loss ratio (search definition).
    pub loss_ratio: Stats,
}

/// One search point's aggregate over its measured repetitions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AggSearch {
    /// Repetitions with a search result.
    pub reps: usize,
    /// Unpaced received rate, Mpps.
    pub mrr_mpps: Stats,
    /// No drop rate.
    pub ndr: RateStats,
    /// Partial drop rate.
    pub pdr: RateStats,
    /// PDR loss ratio of the searches.
    pub pdr_loss: f64,
    /// Repetitions whose search converged.
    pub converged: usize,
    /// Repetitions whose PDR was limited by the generator.
    pub limited_by_generator: usize,
    /// Search trials per repetition.
    pub trials: Stats,
    /// Latency trials, by fraction of the PDR (in the order of the first repetition).
    pub latency: Vec<AggLatency>,
}

fn agg_search(rs: &[&crate::search::SearchResult], size: u16) -> Option<AggSearch> {
    let first = rs.first()?;
    let col = |f: &dyn Fn(&crate::search::SearchResult) -> f64| {
        rs.iter().map(|r| f(r)).collect::<Vec<_>>()
    };
    let latency = first
        .latency
        .iter()
        .map(|l0| {
            let at: Vec<&crate::search::LatencyTrial> = rs
                .iter()
                .filter_map(|r| {
                    r.latency
                        .iter()
                        .find(|l| (l.fraction - l0.fraction).abs() < 1e-9)
                })
                .collect();
            let col = |f: &dyn Fn(&crate::search::LatencyTrial) -> f64| {
                Stats::of(&at.iter().map(|l| f(l)).collect::<Vec<_>>())
            };
            AggLatency {
                fraction: l0.fraction,
                rate_mpps: col(&|l| l.rate_pps as f64 / 1e6),
                p50_us: col(&|l| l.latency.p50_ns as f64 / 1e3),
                p99_us: col(&|l| l.latency.p99_ns as f64 / 1e3),
                loss_ratio: col(&|l| l.loss_ratio),
            }
        })
        .collect();
    Some(AggSearch {
        reps: rs.len(),
        mrr_mpps: Stats::of(&col(&|r| r.mrr_pps / 1e6)),
        ndr: RateStats::of(&col(&|r| r.ndr_pps as f64), size),
        pdr: RateStats::of(&col(&|r| r.pdr_pps as f64), size),
        pdr_loss: first.config.pdr_loss,
        converged: rs.iter().filter(|r| r.converged).count(),
        limited_by_generator: rs.iter().filter(|r| r.limited_by_generator).count(),
        trials: Stats::of(&col(&|r| r.trials.len() as f64)),
        latency,
    })
}

/// Aggregates raw results by point (points sorted).
pub fn aggregate(raws: &[RawResult]) -> Vec<AggPoint> {
    let mut by: BTreeMap<Point, Vec<&RawResult>> = BTreeMap::new();
    for r in raws {
        by.entry(r.run.point).or_default().push(r);
    }
    by.into_iter()
        .map(|(point, rs)| {
            let measured: Vec<&&RawResult> = rs.iter().filter(|r| r.status == Status::Ok).collect();
            let ok: Vec<&netvm_pktgen::Report> =
                measured.iter().filter_map(|r| r.pktgen.as_ref()).collect();
            let searches: Vec<&crate::search::SearchResult> =
                measured.iter().filter_map(|r| r.search.as_ref()).collect();
            let col = |f: &dyn Fn(&netvm_pktgen::Report) -> f64| {
                Stats::of(&ok.iter().map(|r| f(r)).collect::<Vec<_>>())
            };
            let status = if measured.is_empty() {
                rs.last().map_or(Status::Failed, |r| r.status)
            } else {
                Status::Ok
            };
            AggPoint {
                point,
                key: point.key(),
                status,
                error: rs.iter().find_map(|r| r.error.clone()),
                reps_ok: measured.len(),
                reps_failed: rs.iter().filter(|r| r.status == Status::Failed).count(),
                rx_mpps: col(&|r| r.rx_pps / 1e6),
                tx_mpps: col(&|r| r.tx_pps / 1e6),
                loss_ratio: col(&|r| r.loss_ratio),
                p50_us: col(&|r| r.latency.p50_ns as f64 / 1e3),
                p99_us: col(&|r| r.latency.p99_ns as f64 / 1e3),
                p999_us: col(&|r| r.latency.p999_ns as f64 / 1e3),
                max_us: col(&|r| r.latency.max_ns as f64 / 1e3),
                reordered: ok.iter().map(|r| r.reordered).sum(),
                received_le_sent: ok.iter().all(|r| r.received <= r.sent),
                search: agg_search(&searches, point.size),
            }
        })
        .collect()
}

/// One goal of the benchmark issue, evaluated.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Goal {
    /// What is compared.
    pub name: String,
    /// The measured ratio or value (None: an input was not measured).
    pub value: Option<f64>,
    /// The goal, as text (`>= 0.85`).
    pub goal: String,
    /// Whether it is met (None: not measured).
    pub met: Option<bool>,
    /// The inputs, in words.
    pub detail: String,
}

fn setup(sut: Sut, chain: u8, domain: Option<DomainMode>) -> Setup {
    Setup {
        sut,
        chain,
        placement: Placement::Process,
        domain,
    }
}

/// Looks up the mean of `f` at a point, if measured.
fn at(
    agg: &[AggPoint],
    s: Setup,
    size: u16,
    rate: Offered,
    f: impl Fn(&AggPoint) -> f64,
) -> Option<f64> {
    agg.iter()
        .find(|a| {
            a.point.setup == s
                && a.point.size == size
                && a.point.rate == rate
                && a.status == Status::Ok
        })
        .map(f)
}

fn goal(name: &str, value: Option<f64>, want: f64, at_least: bool, detail: String) -> Goal {
    Goal {
        name: name.into(),
        value,
        goal: format!("{} {want}", if at_least { ">=" } else { "<=" }),
        met: value.map(|v| if at_least { v >= want } else { v <= want }),
        detail,
    }
}

fn fmt(v: Option<f64>) -> String {
    v.map_or_else(|| "not measured".into(), |v| format!("{v:.3}"))
}

/// The goals of the benchmark issue, from one run's aggregates (64 B, max rate unless said).
pub fn goals(agg: &[AggPoint]) -> Vec<Goal> {
    let zc = Some(DomainMode::ZeroCopy);
    let mpps = |s: Setup, size: u16| at(agg, s, size, Offered::Max, |a| a.rx_mpps.mean);
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    let p2p = mpps(setup(Sut::Netvm, 0, None), 64);
    let tp = mpps(setup(Sut::Testpmd, 0, None), 64);
    let nf1 = mpps(setup(Sut::Netvm, 1, zc), 64);
    let nf3 = mpps(setup(Sut::Netvm, 3, zc), 64);
    let mzc = mpps(setup(Sut::MemifZc, 1, None), 64);
    let vh = mpps(setup(Sut::Vhost, 1, None), 64);
    let mut out = vec![
        goal(
            "port->port / testpmd io-fwd (64 B)",
            ratio(p2p, tp),
            0.85,
            true,
            format!("netvm {} Mpps, testpmd {} Mpps", fmt(p2p), fmt(tp)),
        ),
        goal(
            "1 NF zero-copy / memif zero-copy chain (64 B)",
            ratio(nf1, mzc),
            1.5,
            true,
            format!("netvm {} Mpps, memif-zc {} Mpps", fmt(nf1), fmt(mzc)),
        ),
        goal(
            "1 NF zero-copy / vhost-user chain (64 B)",
            ratio(nf1, vh),
            3.0,
            true,
            format!("netvm {} Mpps, vhost {} Mpps", fmt(nf1), fmt(vh)),
        ),
        goal(
            "3 NFs / 1 NF, zero-copy (64 B)",
            ratio(nf3, nf1),
            0.5,
            true,
            format!("3 NFs {} Mpps, 1 NF {} Mpps", fmt(nf3), fmt(nf1)),
        ),
    ];
    for size in [64u16, 1518] {
        // Hop cost: ns per frame of the 1-NF chain minus ns per frame of port->port.
        let ns = |v: Option<f64>| v.filter(|&m| m > 0.0).map(|m| 1e3 / m);
        let base = ns(mpps(setup(Sut::Netvm, 0, None), size));
        let zc_ns = ns(mpps(setup(Sut::Netvm, 1, zc), size));
        let cross_ns = ns(mpps(setup(Sut::Netvm, 1, Some(DomainMode::Crossing)), size));
        let hop = |c: Option<f64>| match (c, base) {
            (Some(c), Some(b)) if c > b => Some(c - b),
            _ => None,
        };
        let (hz, hc) = (hop(zc_ns), hop(cross_ns));
        out.push(goal(
            &format!("crossing hop cost / zero-copy hop cost ({size} B)"),
            ratio(hc, hz),
            1.5,
            false,
            format!(
                "ns/frame: port->port {}, 1 NF zero-copy {}, 1 NF crossing {}",
                fmt(base),
                fmt(zc_ns),
                fmt(cross_ns)
            ),
        ));
    }
    for rate in [10_000u64, 100_000] {
        let p99 = at(agg, setup(Sut::Netvm, 1, zc), 64, Offered::Pps(rate), |a| {
            a.p99_us.mean
        });
        out.push(goal(
            &format!("p99 latency at {} kpps through 1 NF, µs", rate / 1000),
            p99,
            20.0,
            false,
            format!("64 B, zero-copy, p99 {} µs", fmt(p99)),
        ));
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::matrix::Run;

    fn report(sent: u64, received: u64, rx_pps: f64, p99: u64) -> netvm_pktgen::Report {
        let mut r: netvm_pktgen::Report = serde_json::from_value(serde_json::json!({
            "tx_dev": "a", "rx_dev": "b",
            "sizes": {"sizes": [64], "schedule": [0]}, "mean_size": 64.0, "flows": 1,
            "rate_pps": null, "duration_s": 1.0, "sent": sent, "received": received,
            "lost": sent - received, "loss_ratio": (sent - received) as f64 / sent as f64,
            "reordered": 1, "foreign": 0, "pacing_skipped": 0, "unsent": 0,
            "tx_pps": sent as f64, "rx_pps": rx_pps, "rx_mbps": 0.0,
            "latency": {"count": received, "min_ns": 1, "mean_ns": 1.0, "p50_ns": 1000,
                        "p90_ns": 1, "p99_ns": p99, "p999_ns": 1, "max_ns": 1},
            "tsc_hz": 1, "no_huge": false
        }))
        .unwrap();
        r.rx_pps = rx_pps;
        r
    }

    fn raw(
        point: Point,
        rep: u32,
        status: Status,
        rep_: Option<netvm_pktgen::Report>,
    ) -> RawResult {
        RawResult {
            run: Run { point, rep },
            status,
            error: (status != Status::Ok).then(|| "boom".into()),
            pktgen: rep_,
            search: None,
            load_avg: [0.0; 3],
            unix_time: 0,
        }
    }

    #[test]
    fn stats() {
        let s = Stats::of(&[1.0, 2.0, 3.0, 6.0]);
        assert_eq!(s.n, 4);
        assert!((s.mean - 3.0).abs() < 1e-12);
        assert_eq!(s.median, 2.5);
        assert_eq!(Stats::of(&[9.0, 1.0, 4.0]).median, 4.0);
        assert!((s.stddev - (14.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!((s.min, s.max), (1.0, 6.0));
        assert_eq!(Stats::of(&[5.0]).stddev, 0.0);
        assert_eq!(Stats::of(&[]), Stats::default());
    }

    #[test]
    fn aggregates_repetitions_per_point_ignoring_failures() {
        let p = Point {
            setup: setup(Sut::Netvm, 1, Some(DomainMode::ZeroCopy)),
            size: 64,
            rate: Offered::Max,
        };
        let q = Point { size: 1518, ..p };
        let raws = vec![
            raw(p, 0, Status::Ok, Some(report(100, 90, 2e6, 10_000))),
            raw(p, 1, Status::Ok, Some(report(100, 100, 4e6, 30_000))),
            raw(p, 2, Status::Failed, None),
            raw(q, 0, Status::Unavailable, None),
        ];
        let a = aggregate(&raws);
        assert_eq!(a.len(), 2);
        let ap = &a[0];
        assert_eq!(ap.point, p);
        assert_eq!((ap.reps_ok, ap.reps_failed), (2, 1));
        assert_eq!(ap.status, Status::Ok);
        assert!((ap.rx_mpps.mean - 3.0).abs() < 1e-12);
        assert_eq!((ap.rx_mpps.min, ap.rx_mpps.max), (2.0, 4.0));
        assert!((ap.loss_ratio.mean - 0.05).abs() < 1e-12);
        assert!((ap.p99_us.mean - 20.0).abs() < 1e-12);
        assert_eq!(ap.reordered, 2);
        assert!(ap.received_le_sent);
        assert_eq!(a[1].status, Status::Unavailable);
        assert_eq!(a[1].reps_ok, 0);
    }

    #[test]
    fn goals_from_aggregates() {
        let mk = |s: Setup, size: u16, rate: Option<u64>, mpps: f64, p99: u64| {
            raw(
                Point {
                    setup: s,
                    size,
                    rate: rate.map_or(Offered::Max, Offered::Pps),
                },
                0,
                Status::Ok,
                Some(report(10, 10, mpps * 1e6, p99)),
            )
        };
        let zc = Some(DomainMode::ZeroCopy);
        let raws = vec![
            mk(setup(Sut::Netvm, 0, None), 64, None, 10.0, 0),
            mk(setup(Sut::Testpmd, 0, None), 64, None, 10.0, 0),
            mk(setup(Sut::Netvm, 1, zc), 64, None, 5.0, 0),
            mk(
                setup(Sut::Netvm, 1, Some(DomainMode::Crossing)),
                64,
                None,
                4.0,
                0,
            ),
            mk(setup(Sut::MemifZc, 1, None), 64, None, 2.0, 0),
            mk(setup(Sut::Netvm, 1, zc), 64, Some(10_000), 0.01, 15_000),
        ];
        let g = goals(&aggregate(&raws));
        let by = |n: &str| g.iter().find(|x| x.name.starts_with(n)).unwrap();
        assert_eq!(by("port->port").value, Some(1.0));
        assert_eq!(by("port->port").met, Some(true));
        assert_eq!(by("1 NF zero-copy / memif").value, Some(2.5));
        assert_eq!(by("1 NF zero-copy / vhost").met, None);
        // hop: zc 200-100 = 100 ns, crossing 250-100 = 150 ns -> 1.5, met (<=).
        let c = by("crossing hop cost / zero-copy hop cost (64 B)");
        assert!((c.value.unwrap() - 1.5).abs() < 1e-9, "{c:?}");
        assert_eq!(by("p99 latency at 10 kpps").value, Some(15.0));
        assert_eq!(by("p99 latency at 10 kpps").met, Some(true));
        assert_eq!(by("p99 latency at 100 kpps").met, None);
    }

    /// A search against a SUT that forwards up to `knee` pps and loses the rest.
    #[allow(clippy::cast_possible_truncation)] // small positive test values
    pub(crate) fn searched(knee: f64) -> crate::search::SearchResult {
        let cfg = crate::search::SearchConfig::default();
        crate::search::search(&cfg, 2.0, |rate, secs| {
            let offered = rate.map_or(10e6, |r| r as f64) * secs;
            let received = offered.min(knee * secs).floor();
            Ok(crate::search::TrialOutcome {
                secs,
                offered: offered.floor() as u64,
                sent: offered.floor() as u64,
                received: received as u64,
                tx_pps: offered / secs,
                rx_pps: received / secs,
                latency: netvm_pktgen::Latency {
                    count: received as u64,
                    p50_ns: 2_000,
                    p99_ns: (knee / 1e3) as u64,
                    ..Default::default()
                },
                ..Default::default()
            })
        })
        .unwrap()
    }

    #[test]
    fn aggregates_searches_as_median_min_max() {
        let p = Point {
            setup: setup(Sut::Netvm, 0, None),
            size: 64,
            rate: Offered::Search,
        };
        let mut raws: Vec<RawResult> = [4e6, 5e6, 7e6]
            .iter()
            .enumerate()
            .map(|(i, &k)| {
                let mut r = raw(p, u32::try_from(i).unwrap(), Status::Ok, None);
                r.search = Some(searched(k));
                r
            })
            .collect();
        raws.push(raw(p, 3, Status::Failed, None));
        let a = aggregate(&raws);
        assert_eq!(a.len(), 1);
        let a = &a[0];
        assert_eq!((a.status, a.reps_ok, a.reps_failed), (Status::Ok, 3, 1));
        let x = a.search.as_ref().unwrap();
        assert_eq!((x.reps, x.converged, x.limited_by_generator), (3, 3, 0));
        let ndr: Vec<u64> = raws[..3]
            .iter()
            .map(|r| r.search.as_ref().unwrap().ndr_pps)
            .collect();
        assert!(ndr[0] < ndr[1] && ndr[1] < ndr[2], "{ndr:?}");
        assert_eq!(x.ndr.mpps.median, ndr[1] as f64 / 1e6);
        assert_eq!(
            (x.ndr.mpps.min, x.ndr.mpps.max),
            (ndr[0] as f64 / 1e6, ndr[2] as f64 / 1e6)
        );
        // 64 B: L1 counts 84 B per frame, frame bytes 64.
        let gbps = ndr[1] as f64 * 84.0 * 8.0 / 1e9;
        assert!((x.ndr.gbps_l1.median - gbps).abs() < 1e-9);
        assert!((x.ndr.gbps_frame.median - gbps * 64.0 / 84.0).abs() < 1e-9);
        assert!(x.pdr.mpps.median >= x.ndr.mpps.median);
        assert_eq!(x.latency.len(), 3);
        assert_eq!(x.latency[1].fraction, 0.5);
        assert_eq!(x.latency[1].p99_us.median, 5.0);
        assert_eq!(x.latency[1].p50_us.median, 2.0);
        assert_eq!(a.rx_mpps.n, 0, "a search has no single-run figures");
    }
}
