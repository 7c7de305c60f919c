//! Reports: `results.json`, `results.csv`, `results.md` and SVG plots from the raw results of
//! the runs in a plan.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;
use serde::Serialize;

use crate::aggregate::{aggregate, goals, AggPoint, Goal, Stats};
use crate::matrix::{MatrixConfig, Offered, Placement, Run, Setup};
use crate::runner::RunError;
use crate::{RawResult, Status};

/// The machine, as far as the report needs it.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// CPU model.
    pub cpu: String,
    /// Online CPUs.
    pub cpus: usize,
    /// Kernel release.
    pub kernel: String,
    /// Total memory, kB.
    pub mem_kb: u64,
}

impl Machine {
    /// Reads /proc.
    pub fn here() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|l| l.trim_start_matches([' ', '\t', ':']).trim().to_string())
            .unwrap_or_default();
        let mem_kb = std::fs::read_to_string("/proc/meminfo")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        Self {
            cpu,
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .into(),
            mem_kb,
        }
    }
}

/// `results.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    /// Config name.
    pub name: String,
    /// The machine.
    pub machine: Machine,
    /// 1-minute load average over the runs (sampled at the end of each).
    pub load_avg_1m: Stats,
    /// The config.
    pub config: MatrixConfig,
    /// Aggregated points.
    pub points: Vec<AggPoint>,
    /// The goals, from this run.
    pub goals: Vec<Goal>,
}

/// Reads the raw results of the runs in `plan` that exist.
pub fn read_raws(raw_dir: &Path, plan: &[Run]) -> Vec<RawResult> {
    plan.iter()
        .filter_map(|r| std::fs::read_to_string(raw_dir.join(r.file_name())).ok())
        .filter_map(|t| serde_json::from_str(&t).ok())
        .collect()
}

/// Writes every report into `out`.
pub fn write_all(cfg: &MatrixConfig, out: &Path, plan: &[Run]) -> Result<Results, RunError> {
    let raws = read_raws(&out.join("raw"), plan);
    let points = aggregate(&raws);
    let loads: Vec<f64> = raws
        .iter()
        .filter(|r| r.status == Status::Ok)
        .map(|r| r.load_avg[0])
        .collect();
    let res = Results {
        name: cfg.name.clone(),
        machine: Machine::here(),
        load_avg_1m: Stats::of(&loads),
        config: cfg.clone(),
        goals: goals(&points),
        points,
    };
    let w = |name: &str, text: String| {
        let p = out.join(name);
        std::fs::write(&p, text).map_err(|source| RunError::Io {
            path: p.display().to_string(),
            source,
        })
    };
    w(
        "results.json",
        serde_json::to_string_pretty(&res).unwrap_or_default(),
    )?;
    w("results.csv", csv(&res.points))?;
    w("results.md", markdown(&res))?;
    plots(&res.points, out);
    Ok(res)
}

fn domain_name(s: &Setup) -> &'static str {
    match s.domain {
        Some(crate::matrix::DomainMode::ZeroCopy) => "zero-copy",
        Some(crate::matrix::DomainMode::Crossing) => "crossing",
        None => "-",
    }
}

fn placement_name(s: &Setup) -> &'static str {
    match s.placement {
        Placement::Process => "process",
        Placement::Vm => "vm",
    }
}

fn status_name(s: Status) -> &'static str {
    match s {
        Status::Ok => "ok",
        Status::Unavailable => "unavailable",
        Status::Failed => "failed",
    }
}

/// The search columns of a CSV row (empty for other points).
fn csv_search(a: &AggPoint) -> String {
    let Some(x) = &a.search else {
        return ",".repeat(13);
    };
    format!(
        "{:.4},{:.4},{:.4},{:.4},{:.4},{:.4},{:.4},{:.4},{:.4},{:.4},{:.4},{},{},{}",
        x.mrr_mpps.median,
        x.ndr.mpps.median,
        x.ndr.mpps.min,
        x.ndr.mpps.max,
        x.ndr.gbps_l1.median,
        x.ndr.gbps_frame.median,
        x.pdr.mpps.median,
        x.pdr.mpps.min,
        x.pdr.mpps.max,
        x.pdr.gbps_l1.median,
        x.pdr.gbps_frame.median,
        x.pdr_loss,
        x.converged,
        x.limited_by_generator,
    )
}

/// The CSV table, one row per point. The `ndr_*`/`pdr_*` columns are filled for search points
/// (rate `search`), medians over repetitions unless named `_min`/`_max`; `gbps_l1` includes
/// 20 B of preamble and gap per frame, `gbps_frame` does not (no FCS in either).
pub fn csv(points: &[AggPoint]) -> String {
    let mut s = String::from(
        "key,sut,chain,placement,domain,size,rate_pps,status,reps_ok,reps_failed,\
         rx_mpps_mean,rx_mpps_stddev,rx_mpps_min,rx_mpps_max,tx_mpps_mean,loss_ratio_mean,\
         p50_us_mean,p99_us_mean,p999_us_mean,max_us_mean,reordered,\
         mrr_mpps_median,ndr_mpps_median,ndr_mpps_min,ndr_mpps_max,ndr_gbps_l1_median,\
         ndr_gbps_frame_median,pdr_mpps_median,pdr_mpps_min,pdr_mpps_max,pdr_gbps_l1_median,\
         pdr_gbps_frame_median,pdr_loss,search_reps_converged,search_reps_generator_limited,\
         error\n",
    );
    for a in points {
        let st = &a.point.setup;
        let status = status_name(a.status);
        let err = a
            .error
            .as_deref()
            .unwrap_or("")
            .lines()
            .next()
            .unwrap_or("")
            .replace(['"', ','], " ");
        // A search has no single-run figures: those columns stay empty.
        let single = if a.search.is_some() {
            ",".repeat(10)
        } else {
            format!(
                "{:.4},{:.4},{:.4},{:.4},{:.4},{:.6},{:.2},{:.2},{:.2},{:.2},{}",
                a.rx_mpps.mean,
                a.rx_mpps.stddev,
                a.rx_mpps.min,
                a.rx_mpps.max,
                a.tx_mpps.mean,
                a.loss_ratio.mean,
                a.p50_us.mean,
                a.p99_us.mean,
                a.p999_us.mean,
                a.max_us.mean,
                a.reordered,
            )
        };
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{status},{},{},{single},{},\"{err}\"",
            a.key,
            st.sut.name(),
            st.chain,
            placement_name(st),
            domain_name(st),
            a.point.size,
            a.point.rate.name(),
            a.reps_ok,
            a.reps_failed,
            csv_search(a),
        );
    }
    s
}

/// The Markdown tables (points, goals) for benches/README.md.
pub fn markdown(res: &Results) -> String {
    let mut s = String::new();
    let m = &res.machine;
    let _ = writeln!(
        s,
        "Machine: {} × {}, {} MiB, Linux {}. Load average (1 min) during the runs: mean {:.2}, \
         min {:.2}, max {:.2}. {} s per run, {} repetition(s), {} flow(s).\n",
        m.cpus,
        m.cpu,
        m.mem_kb / 1024,
        m.kernel,
        res.load_avg_1m.mean,
        res.load_avg_1m.min,
        res.load_avg_1m.max,
        res.config.duration_s,
        res.config.repetitions,
        res.config.flows,
    );
    let single: Vec<&AggPoint> = res
        .points
        .iter()
        .filter(|a| a.point.rate != Offered::Search)
        .collect();
    if !single.is_empty() {
        s.push_str(
            "| system | chain | placement | domain | size | offered | Mpps (mean ± sd) | loss | p50 µs | p99 µs | p99.9 µs |\n\
             |---|---|---|---|---|---|---|---|---|---|---|\n",
        );
    }
    for a in single {
        let st = &a.point.setup;
        let mpps = match a.status {
            Status::Ok => format!("{:.3} ± {:.3}", a.rx_mpps.mean, a.rx_mpps.stddev),
            Status::Unavailable => "unavailable".into(),
            Status::Failed => "failed".into(),
        };
        let ok = a.status == Status::Ok;
        let f = |v: f64, p: usize| if ok { format!("{v:.p$}") } else { "-".into() };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {mpps} | {} | {} | {} | {} |",
            st.sut.name(),
            st.chain,
            placement_name(st),
            domain_name(st),
            a.point.size,
            a.point.rate.name(),
            if ok {
                format!("{:.2}%", a.loss_ratio.mean * 100.0)
            } else {
                "-".into()
            },
            f(a.p50_us.mean, 1),
            f(a.p99_us.mean, 1),
            f(a.p999_us.mean, 1),
        );
    }
    search_tables(&mut s, res);
    s.push_str("\n| goal | measured | target | met | inputs |\n|---|---|---|---|---|\n");
    for g in &res.goals {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            g.name,
            g.value.map_or_else(|| "-".into(), |v| format!("{v:.2}")),
            g.goal,
            match g.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "not measured",
            },
            g.detail
        );
    }
    s
}

/// The NDR/PDR and latency tables of the search points, if any.
fn search_tables(s: &mut String, res: &Results) {
    let pts: Vec<&AggPoint> = res
        .points
        .iter()
        .filter(|a| a.point.rate == Offered::Search)
        .collect();
    if pts.is_empty() {
        return;
    }
    let c = &res.config.search;
    let final_s = res.config.duration_s;
    let _ =
        writeln!(
        s,
        "\nNDR/PDR (RFC 2544 binary search, docs/benchmarks.md): NDR = no frame lost, PDR = loss \
         ≤ {}%; loss counts every frame offered at the paced rate, including those the generator \
         could not hand to the link. Precision {}%, {} s search trials, bounds verified with {} s \
         trials, at most {} trials. Median (min–max) over repetitions. Gbit/s: L1 = pps × (size \
         + 20 B preamble and gap) × 8 / frame bytes only = pps × size × 8; size without FCS. \
         MRR: received rate at unpaced load.\n",
        c.pdr_loss * 100.0,
        c.precision * 100.0,
        c.trial_s,
        if final_s > c.trial_s { final_s } else { c.trial_s },
        c.max_trials,
    );
    s.push_str(
        "| system | chain | placement | domain | size | reps | MRR Mpps | NDR Mpps | NDR Gbit/s L1 / frame | PDR Mpps | PDR Gbit/s L1 / frame | converged | generator-limited |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let range = |x: &Stats| format!("{:.3} ({:.3}–{:.3})", x.median, x.min, x.max);
    for a in &pts {
        let st = &a.point.setup;
        let head = format!(
            "| {} | {} | {} | {} | {} |",
            st.sut.name(),
            st.chain,
            placement_name(st),
            domain_name(st),
            a.point.size
        );
        match &a.search {
            Some(x) => {
                let _ = writeln!(
                    s,
                    "{head} {} | {:.3} | {} | {:.2} / {:.2} | {} | {:.2} / {:.2} | {}/{} | {}/{} |",
                    x.reps,
                    x.mrr_mpps.median,
                    range(&x.ndr.mpps),
                    x.ndr.gbps_l1.median,
                    x.ndr.gbps_frame.median,
                    range(&x.pdr.mpps),
                    x.pdr.gbps_l1.median,
                    x.pdr.gbps_frame.median,
                    x.converged,
                    x.reps,
                    x.limited_by_generator,
                    x.reps,
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "{head} 0 | {} | - | - | - | - | - | - |",
                    status_name(a.status)
                );
            }
        }
    }
    let lat: Vec<(&AggPoint, &crate::aggregate::AggLatency)> = pts
        .iter()
        .filter_map(|a| a.search.as_ref().map(|x| (*a, x)))
        .flat_map(|(a, x)| x.latency.iter().map(move |l| (a, l)))
        .collect();
    if lat.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "\nRound-trip latency at fractions of each repetition's PDR ({final_s} s trials; median \
         over repetitions of each trial's p50 and p99):\n"
    );
    s.push_str(
        "| system | chain | placement | domain | size | load | offered Mpps | p50 µs | p99 µs | loss |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for (a, l) in lat {
        let st = &a.point.setup;
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {}% of PDR | {:.3} | {:.1} | {:.1} | {:.3}% |",
            st.sut.name(),
            st.chain,
            placement_name(st),
            domain_name(st),
            a.point.size,
            l.fraction * 100.0,
            l.rate_mpps.median,
            l.p50_us.median,
            l.p99_us.median,
            l.loss_ratio.median * 100.0,
        );
    }
}

type Series = (String, Vec<(f64, f64)>);

fn series_name(s: &Setup) -> String {
    match s.domain {
        Some(_) => format!("{} c{} {}", s.sut.name(), s.chain, domain_name(s)),
        None => format!("{} c{}", s.sut.name(), s.chain),
    }
}

/// Writes the plots (errors are reported on stderr: a plot is not worth failing a run for).
fn plots(points: &[AggPoint], out: &Path) {
    let ok: Vec<&AggPoint> = points
        .iter()
        .filter(|a| a.status == Status::Ok && a.point.setup.placement == Placement::Process)
        .collect();
    // Mpps vs size per chain (max rate).
    let mut by: std::collections::BTreeMap<String, Vec<(f64, f64)>> = Default::default();
    for a in ok.iter().filter(|a| a.point.rate == Offered::Max) {
        by.entry(series_name(&a.point.setup))
            .or_default()
            .push((f64::from(a.point.size), a.rx_mpps.mean));
    }
    let s1: Vec<Series> = by.into_iter().collect();
    // Latency vs offered load (paced points, 64 B or whatever size was paced).
    let mut by: std::collections::BTreeMap<String, Vec<(f64, f64)>> = Default::default();
    for a in ok.iter().filter(|a| a.point.rate.pps().is_some()) {
        let r = a.point.rate.pps().unwrap_or(0) as f64;
        by.entry(format!(
            "{} {} B p99",
            series_name(&a.point.setup),
            a.point.size
        ))
        .or_default()
        .push((r / 1e3, a.p99_us.mean));
        by.entry(format!(
            "{} {} B p50",
            series_name(&a.point.setup),
            a.point.size
        ))
        .or_default()
        .push((r / 1e3, a.p50_us.mean));
    }
    let s2: Vec<Series> = by.into_iter().collect();
    // netvm vs peers: Mpps at the smallest size vs chain length, per system.
    let min_size = ok
        .iter()
        .filter(|a| a.point.rate == Offered::Max)
        .map(|a| a.point.size)
        .min()
        .unwrap_or(64);
    let mut by: std::collections::BTreeMap<String, Vec<(f64, f64)>> = Default::default();
    for a in ok
        .iter()
        .filter(|a| a.point.rate == Offered::Max && a.point.size == min_size)
    {
        let st = &a.point.setup;
        let name = match st.domain {
            Some(_) => format!("{} {}", st.sut.name(), domain_name(st)),
            None if st.sut == crate::matrix::Sut::Netvm => "netvm zero-copy".into(),
            None => st.sut.name().into(),
        };
        by.entry(name)
            .or_default()
            .push((f64::from(st.chain), a.rx_mpps.mean));
        if st.sut == crate::matrix::Sut::Netvm && st.chain == 0 {
            by.entry("netvm crossing".into())
                .or_default()
                .push((0.0, a.rx_mpps.mean));
        }
    }
    let s3: Vec<Series> = by.into_iter().collect();
    for (file, title, xl, yl, s) in [
        (
            "mpps_vs_size.svg",
            "Forwarding rate vs frame size (max offered load)",
            "frame size (B)",
            "Mpps received",
            s1,
        ),
        (
            "latency_vs_load.svg",
            "Round-trip latency vs offered load",
            "offered load (kpps)",
            "latency (µs)",
            s2,
        ),
        (
            "netvm_vs_peers.svg",
            &*format!("Forwarding rate vs chain length, {min_size} B"),
            "NFs in the chain",
            "Mpps received",
            s3,
        ),
    ] {
        if let Err(e) = line_chart(&out.join(file), title, xl, yl, &s) {
            eprintln!("netvm-bench: plot {file}: {e}");
        }
    }
}

fn line_chart(
    path: &Path,
    title: &str,
    xl: &str,
    yl: &str,
    series: &[Series],
) -> Result<(), Box<dyn std::error::Error>> {
    let mut all: Vec<(f64, f64)> = series.iter().flat_map(|(_, v)| v.iter().copied()).collect();
    if all.is_empty() {
        all.push((0.0, 0.0));
    }
    let xmax = all.iter().map(|p| p.0).fold(0.0, f64::max);
    let xmin = all
        .iter()
        .map(|p| p.0)
        .fold(f64::INFINITY, f64::min)
        .min(0.0);
    let ymax = all.iter().map(|p| p.1).fold(0.0, f64::max);
    let root = SVGBackend::new(path, (960, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(xmin..(xmax * 1.05).max(1.0), 0.0..(ymax * 1.15).max(1e-3))?;
    chart.configure_mesh().x_desc(xl).y_desc(yl).draw()?;
    for (i, (name, pts)) in series.iter().enumerate() {
        let mut pts = pts.clone();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
    }
    if !series.is_empty() {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::{Offered, Point, Sut};

    #[test]
    fn search_points_get_ndr_pdr_and_latency_tables() {
        let cfg: MatrixConfig = serde_json::from_value(serde_json::json!({
            "name": "t", "duration_s": 2.0,
            "groups": [{"sut": ["netvm"], "size": [64], "rate": ["search", "max"]}]
        }))
        .unwrap();
        let pts = cfg.points().unwrap();
        let search = pts.iter().find(|p| p.rate == Offered::Search).unwrap();
        let max = Point {
            rate: Offered::Max,
            ..*search
        };
        assert_eq!(search.setup.sut, Sut::Netvm);
        let mk = |point: Point, status: Status| RawResult {
            run: Run { point, rep: 0 },
            status,
            error: (status != Status::Ok).then(|| "boom, \"badly\"".into()),
            pktgen: None,
            search: (status == Status::Ok).then(|| crate::aggregate::tests::searched(5e6)),
            load_avg: [0.0; 3],
            unix_time: 0,
        };
        let points = aggregate(&[mk(*search, Status::Ok), mk(max, Status::Failed)]);
        let res = Results {
            name: "t".into(),
            machine: Machine::here(),
            load_avg_1m: Stats::default(),
            config: cfg,
            goals: goals(&points),
            points,
        };
        let md = markdown(&res);
        assert!(
            md.contains(
                "| system | chain | placement | domain | size | reps | MRR Mpps | NDR Mpps |"
            ),
            "{md}"
        );
        assert!(
            md.contains(
                "| netvm | 0 | process | - | 64 | 1 | 5.000 | 5.000 (5.000–5.000) | 3.36 / 2.56 |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| netvm | 0 | process | - | 64 | 50% of PDR |"),
            "{md}"
        );
        // The search point is not a row of the single-run table; the failed max point is.
        assert!(
            md.contains("| netvm | 0 | process | - | 64 | max | failed |"),
            "{md}"
        );
        assert!(!md.contains("| search |"), "{md}");
        // With searches only, no empty single-run table.
        let only = Results {
            points: res
                .points
                .iter()
                .filter(|a| a.point.rate == Offered::Search)
                .cloned()
                .collect(),
            ..res.clone()
        };
        let md_only = markdown(&only);
        assert!(!md_only.contains("| offered |"), "{md_only}");
        assert!(md_only.contains("| NDR Mpps |"), "{md_only}");
        let csv = csv(&res.points);
        let cols = |l: &str| l.split(',').count();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines.iter().all(|l| cols(l) == cols(lines[0])), "{csv}");
        let head: Vec<&str> = lines[0].split(',').collect();
        let row = lines
            .iter()
            .find(|l| l.contains("-rsearch"))
            .unwrap()
            .split(',')
            .collect::<Vec<_>>();
        let at = |name: &str| row[head.iter().position(|h| *h == name).unwrap()];
        assert_eq!(at("ndr_mpps_median"), "5.0000");
        assert!(at("pdr_gbps_frame_median").parse::<f64>().unwrap() >= 2.56);
        assert_eq!(at("rx_mpps_mean"), "", "no single-run figures for a search");
        assert_eq!(at("rate_pps"), "search");
    }
}
