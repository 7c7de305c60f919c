//! The benchmark config, its expansion into points, and the run plan: ordering (expensive
//! setup outermost) and skipping (results that already exist).

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The system under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sut {
    /// netvm-core (+ l2fwd NF processes), via netvm-manager.
    Netvm,
    /// dpdk-testpmd io forwarding between the two pktgen ports: the ceiling (chain 0 only).
    Testpmd,
    /// A testpmd "switch" and one testpmd NF (mac forwarding) per chain position, joined by
    /// memif in copy mode (VPP's approach).
    MemifCopy,
    /// As `memif-copy`, NF side of each memif in zero-copy mode.
    MemifZc,
    /// As `memif-copy`, joined by vhost-user (switch) / virtio-user (NF): the OVS-DPDK path.
    Vhost,
    /// Open vSwitch with DPDK (only where installed).
    Ovs,
}

impl Sut {
    /// Name as in the config.
    pub fn name(self) -> &'static str {
        match self {
            Sut::Netvm => "netvm",
            Sut::Testpmd => "testpmd",
            Sut::MemifCopy => "memif-copy",
            Sut::MemifZc => "memif-zc",
            Sut::Vhost => "vhost",
            Sut::Ovs => "ovs",
        }
    }
}

/// Where NFs run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    /// Host processes.
    Process,
    /// QEMU guests.
    Vm,
}

/// How NFs share memory (netvm only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DomainMode {
    /// One trust domain: the same buffer goes through the whole chain.
    ZeroCopy,
    /// Every NF in its own domain: each hop copies into the next domain.
    Crossing,
}

/// One group of the config: the Cartesian product of its lists.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// Systems under test.
    pub sut: Vec<Sut>,
    /// Chain lengths (NFs in the chain), 0..=4.
    #[serde(default = "zero")]
    pub chain: Vec<u8>,
    /// NF placements.
    #[serde(default = "process")]
    pub placement: Vec<Placement>,
    /// Domain modes (netvm with NFs only; ignored otherwise).
    #[serde(default = "zero_copy")]
    pub domain: Vec<DomainMode>,
    /// Frame sizes, bytes without FCS, 62..=1518.
    pub size: Vec<u16>,
    /// Offered rates: `max`, pps (`10k`, `100000`), or `search` (an NDR/PDR search, see
    /// [`crate::search`], parameters in the config's `search` section).
    #[serde(default = "max")]
    pub rate: Vec<String>,
}

fn zero() -> Vec<u8> {
    vec![0]
}
fn process() -> Vec<Placement> {
    vec![Placement::Process]
}
fn zero_copy() -> Vec<DomainMode> {
    vec![DomainMode::ZeroCopy]
}
fn max() -> Vec<String> {
    vec!["max".into()]
}

/// CPU assignment, the same for every system under test.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cpus {
    /// pktgen's lcore.
    pub pktgen: u32,
    /// The switch's forwarding thread (netvm worker, testpmd forwarding lcore).
    pub switch: u32,
    /// NF i runs on `nfs[i % len]`.
    pub nfs: Vec<u32>,
}

impl Default for Cpus {
    fn default() -> Self {
        Self {
            pktgen: 0,
            switch: 1,
            nfs: vec![0],
        }
    }
}

/// A benchmark config (JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatrixConfig {
    /// Name, written into the results.
    pub name: String,
    /// Seconds of traffic per run.
    pub duration_s: f64,
    /// Seconds pktgen keeps receiving after sending.
    #[serde(default = "half")]
    pub drain_s: f64,
    /// Runs per point.
    #[serde(default = "one")]
    pub repetitions: u32,
    /// Flows pktgen sends.
    #[serde(default = "one")]
    pub flows: u32,
    /// CPUs.
    #[serde(default)]
    pub cpus: Cpus,
    /// Niceness of the pktgen process (`nice -n`): with a positive value an NF that shares
    /// pktgen's CPU preempts it when woken, instead of waiting for pktgen's time slice to end.
    #[serde(default)]
    pub pktgen_nice: i32,
    /// Packet buffers per netvm domain.
    #[serde(default = "buffers")]
    pub netvm_buffers: u32,
    /// The parameter groups.
    pub groups: Vec<Group>,
    /// Parameters of the NDR/PDR search (points with rate `search`); its final and latency
    /// trials last `duration_s`.
    #[serde(default)]
    pub search: crate::search::SearchConfig,
}

fn half() -> f64 {
    0.5
}
fn one() -> u32 {
    1
}
fn buffers() -> u32 {
    16384
}

/// Errors in a config.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Reading the file.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// JSON syntax or schema.
    #[error("{path}: invalid benchmark config")]
    Json {
        /// The file.
        path: String,
        /// Cause.
        #[source]
        source: serde_json::Error,
    },
    /// A value out of range.
    #[error("groups[{group}]: {why}")]
    Value {
        /// Group index.
        group: usize,
        /// What is wrong.
        why: String,
    },
    /// A value of the `search` section out of range.
    #[error("search: {0}")]
    Search(String),
}

/// The setup part of a point: what must be started (and torn down) to measure it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Setup {
    /// System under test.
    pub sut: Sut,
    /// Chain length.
    pub chain: u8,
    /// NF placement.
    pub placement: Placement,
    /// Domain mode (None where it does not apply).
    pub domain: Option<DomainMode>,
}

impl Setup {
    /// Relative cost of starting it: guests boot in seconds, NF processes attach in
    /// milliseconds. Used to put expensive setups first within the plan (they are outermost
    /// in every case; among setups, the most expensive ones run while the operator watches).
    pub fn cost(&self) -> u32 {
        let per_nf = match self.placement {
            Placement::Vm => 100,
            Placement::Process => 1,
        };
        10 + per_nf * u32::from(self.chain)
    }

    /// A stable name for files: `netvm-c1-process-zero-copy`.
    pub fn key(&self) -> String {
        let p = match self.placement {
            Placement::Process => "process",
            Placement::Vm => "vm",
        };
        let d = match self.domain {
            Some(DomainMode::ZeroCopy) => "-zero-copy",
            Some(DomainMode::Crossing) => "-crossing",
            None => "",
        };
        format!("{}-c{}-{p}{d}", self.sut.name(), self.chain)
    }

    /// Why this setup cannot be measured here, if it cannot.
    pub fn unavailable(&self) -> Option<String> {
        if self.placement == Placement::Vm && !crate::sut::guest_image_available() {
            return Some("VM placement needs the guest image: run scripts/build-guest.sh".into());
        }
        if self.sut == Sut::Ovs && !crate::sut::ovs_available() {
            return Some(
                "OVS-DPDK is not installed or its DPDK vswitchd is not selected: \
                 run benches/setup-ovs.sh"
                    .into(),
            );
        }
        None
    }
}

/// The offered load of a point. Ordered paced (by rate) < max < search. In JSON (raw results,
/// `results.json`): a number of pps, `null` for max, `"search"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Offered {
    /// Paced at this many frames per second.
    Pps(u64),
    /// Unpaced: as fast as the device takes frames.
    Max,
    /// An NDR/PDR search ([`crate::search`]): many paced trials, one result.
    Search,
}

impl Offered {
    /// The paced rate (None for max and search).
    pub fn pps(self) -> Option<u64> {
        match self {
            Offered::Pps(r) => Some(r),
            Offered::Max | Offered::Search => None,
        }
    }

    /// As in the config and in file names: `10000`, `max`, `search`.
    pub fn name(self) -> String {
        match self {
            Offered::Pps(r) => r.to_string(),
            Offered::Max => "max".into(),
            Offered::Search => "search".into(),
        }
    }
}

impl Serialize for Offered {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Offered::Pps(r) => s.serialize_u64(*r),
            Offered::Max => s.serialize_none(),
            Offered::Search => s.serialize_str("search"),
        }
    }
}

impl<'de> Deserialize<'de> for Offered {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Offered;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a rate in pps, null (max) or \"search\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Offered, E> {
                Ok(Offered::Pps(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Offered, E> {
                u64::try_from(v)
                    .map(Offered::Pps)
                    .map_err(|_| E::custom(format!("negative rate {v}")))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Offered, E> {
                Ok(Offered::Max)
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<Offered, E> {
                Ok(Offered::Max)
            }
            fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Offered, D::Error> {
                d.deserialize_any(V)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Offered, E> {
                match v {
                    "search" => Ok(Offered::Search),
                    "max" => Ok(Offered::Max),
                    _ => Err(E::custom(format!(
                        "rate {v:?}: expected a number, null, \"max\" or \"search\""
                    ))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// One measured point: a setup and the traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Point {
    /// What runs.
    pub setup: Setup,
    /// Frame size.
    pub size: u16,
    /// Offered load (`rate_pps` in JSON, as before `search` existed).
    #[serde(rename = "rate_pps")]
    pub rate: Offered,
}

impl Point {
    /// A stable name for files: `<setup>-s64-rmax`, `…-r10000`, `…-rsearch`.
    pub fn key(&self) -> String {
        format!("{}-s{}-r{}", self.setup.key(), self.size, self.rate.name())
    }
}

/// One run: a point and a repetition number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Run {
    /// The point.
    pub point: Point,
    /// Repetition, 0-based.
    pub rep: u32,
}

impl Run {
    /// File name of its raw result.
    pub fn file_name(&self) -> String {
        format!("{}-rep{}.json", self.point.key(), self.rep)
    }
}

impl MatrixConfig {
    /// Reads and checks a config file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: p.clone(),
            source,
        })?;
        let cfg: Self =
            serde_json::from_str(&text).map_err(|source| ConfigError::Json { path: p, source })?;
        cfg.points()?;
        Ok(cfg)
    }

    /// Every distinct point of every group, after checking the config's values (groups and the
    /// `search` section). Combinations that mean nothing are dropped: testpmd has no chain
    /// (chain 0 only), a peer chain of length 0 is testpmd itself, peers have no domain modes
    /// and run NFs as processes; netvm's domain mode only applies with NFs.
    pub fn points(&self) -> Result<Vec<Point>, ConfigError> {
        self.search.check().map_err(ConfigError::Search)?;
        let mut out = BTreeSet::new();
        for (gi, g) in self.groups.iter().enumerate() {
            let bad = |why: String| ConfigError::Value { group: gi, why };
            let mut rates = Vec::new();
            for r in &g.rate {
                if r.trim().eq_ignore_ascii_case("search") {
                    rates.push(Offered::Search);
                    continue;
                }
                rates.push(
                    match r
                        .parse::<netvm_pktgen::Rate>()
                        .map_err(|e| bad(format!("{e}, or `search` (an NDR/PDR search)")))?
                    {
                        netvm_pktgen::Rate::Max => Offered::Max,
                        netvm_pktgen::Rate::Pps(p) => Offered::Pps(p),
                    },
                );
            }
            for &s in &g.size {
                if !(netvm_pktgen::SizeMix::MIN..=netvm_pktgen::SizeMix::MAX).contains(&s) {
                    return Err(bad(format!("size {s} is outside 62..=1518")));
                }
            }
            if let Some(c) = g.chain.iter().find(|&&c| c > 4) {
                return Err(bad(format!("chain length {c} is outside 0..=4")));
            }
            for &sut in &g.sut {
                for &chain in &g.chain {
                    for &placement in &g.placement {
                        for &dm in &g.domain {
                            let setup = match (sut, chain) {
                                (Sut::Testpmd, 0) => Setup {
                                    sut,
                                    chain,
                                    placement: Placement::Process,
                                    domain: None,
                                },
                                (Sut::Testpmd, _) => continue,
                                (Sut::Netvm, 0) => Setup {
                                    sut,
                                    chain,
                                    placement: Placement::Process,
                                    domain: None,
                                },
                                (Sut::Netvm, _) => Setup {
                                    sut,
                                    chain,
                                    placement,
                                    domain: Some(dm),
                                },
                                (_, 0) => continue,
                                _ if placement == Placement::Vm => continue,
                                _ => Setup {
                                    sut,
                                    chain,
                                    placement,
                                    domain: None,
                                },
                            };
                            for &size in &g.size {
                                for &rate in &rates {
                                    out.insert(Point { setup, size, rate });
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(out.into_iter().collect())
    }
}

/// The run plan: every run of every point, setups outermost (most expensive first, so that
/// each setup is started exactly once); within a setup the single runs (paced, max) before the
/// NDR/PDR searches (which take many trials each), then repetition (so drift spreads over all
/// points of a setup), then size, then rate (paced by rate, then max).
pub fn plan(points: &[Point], repetitions: u32) -> Vec<Run> {
    let mut runs: Vec<Run> = points
        .iter()
        .flat_map(|&point| (0..repetitions.max(1)).map(move |rep| Run { point, rep }))
        .collect();
    runs.sort_by(|a, b| {
        let (sa, sb) = (a.point.setup, b.point.setup);
        sb.cost()
            .cmp(&sa.cost())
            .then(sa.cmp(&sb))
            .then((a.point.rate == Offered::Search).cmp(&(b.point.rate == Offered::Search)))
            .then(a.rep.cmp(&b.rep))
            .then(a.point.size.cmp(&b.point.size))
            .then(a.point.rate.cmp(&b.point.rate))
    });
    runs
}

/// The runs of `plan` whose raw result is not in `raw_dir` yet (a run recorded as failed is
/// tried again), grouped by setup in plan order: a setup whose runs all exist is not started.
pub fn pending(plan: &[Run], raw_dir: &Path) -> Vec<(Setup, Vec<Run>)> {
    let mut out: Vec<(Setup, Vec<Run>)> = Vec::new();
    for r in plan {
        if done(&raw_dir.join(r.file_name())) {
            continue;
        }
        match out.last_mut() {
            Some((s, v)) if *s == r.point.setup => v.push(*r),
            _ => out.push((r.point.setup, vec![*r])),
        }
    }
    out
}

/// Whether a raw result file exists and records a finished run (ok or unavailable).
fn done(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    serde_json::from_str::<crate::RawResult>(&text).is_ok_and(|r| r.status != crate::Status::Failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(groups: &str) -> MatrixConfig {
        serde_json::from_str(&format!(
            r#"{{"name":"t","duration_s":1,"repetitions":2,"groups":{groups}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn expansion_drops_meaningless_combinations() {
        let c = cfg(r#"[{"sut":["netvm","testpmd","memif-zc"],"chain":[0,1],
                "domain":["zero-copy","crossing"],"placement":["process","vm"],
                "size":[64],"rate":["max","10k"]}]"#);
        let pts = c.points().unwrap();
        let setups: BTreeSet<String> = pts.iter().map(|p| p.setup.key()).collect();
        let want: BTreeSet<String> = [
            "netvm-c0-process",
            "netvm-c1-process-zero-copy",
            "netvm-c1-process-crossing",
            "netvm-c1-vm-zero-copy",
            "netvm-c1-vm-crossing",
            "testpmd-c0-process",
            "memif-zc-c1-process",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        assert_eq!(setups, want);
        assert_eq!(pts.len(), want.len() * 2);
        assert!(pts.iter().any(|p| p.rate == Offered::Pps(10_000)));
        assert!(c.points().is_ok());
        let bad = cfg(r#"[{"sut":["netvm"],"chain":[5],"size":[64]}]"#);
        assert!(bad.points().is_err());
        let bad = cfg(r#"[{"sut":["netvm"],"size":[20]}]"#);
        assert!(bad.points().is_err());
        let bad = cfg(r#"[{"sut":["netvm"],"size":[64],"rate":["fast"]}]"#);
        assert!(bad.points().is_err());
    }

    #[test]
    fn plan_puts_setup_outermost_and_expensive_first() {
        let c = cfg(r#"[{"sut":["netvm","testpmd","vhost"],"chain":[0,1,3],
                "placement":["process","vm"],"size":[1518,64],"rate":["max","10k","search"]}]"#);
        let pts = c.points().unwrap();
        let runs = plan(&pts, 2);
        assert_eq!(runs.len(), pts.len() * 2);
        // Each setup appears as one contiguous block: it is started once.
        let mut seen = Vec::new();
        for r in &runs {
            if seen.last() != Some(&r.point.setup) {
                assert!(
                    !seen.contains(&r.point.setup),
                    "setup {:?} split",
                    r.point.setup
                );
                seen.push(r.point.setup);
            }
        }
        // Most expensive (VM chains) first, costs non-increasing.
        assert_eq!(runs[0].point.setup.placement, Placement::Vm);
        assert_eq!(runs[0].point.setup.chain, 3);
        assert!(seen.windows(2).all(|w| w[0].cost() >= w[1].cost()));
        // Inside a setup: single runs before searches, then repetition, then size, then rate
        // (paced before max).
        let first: Vec<(u32, u16, Offered)> = runs
            .iter()
            .take_while(|r| r.point.setup == seen[0])
            .map(|r| (r.rep, r.point.size, r.point.rate))
            .collect();
        let (p, m, s) = (Offered::Pps(10_000), Offered::Max, Offered::Search);
        assert_eq!(
            first,
            vec![
                (0, 64, p),
                (0, 64, m),
                (0, 1518, p),
                (0, 1518, m),
                (1, 64, p),
                (1, 64, m),
                (1, 1518, p),
                (1, 1518, m),
                (0, 64, s),
                (0, 1518, s),
                (1, 64, s),
                (1, 1518, s),
            ]
        );
    }

    #[test]
    fn pending_skips_finished_runs_and_retries_failed_ones() {
        let dir = std::env::temp_dir().join(format!("netvm-bench-ut-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let c = cfg(r#"[{"sut":["netvm","testpmd"],"size":[64]}]"#);
        let runs = plan(&c.points().unwrap(), 2);
        assert_eq!(runs.len(), 4);
        let p = pending(&runs, &dir);
        assert_eq!(p.len(), 2);
        // Finish both runs of the first setup, fail one of the second.
        let write = |r: &Run, status: crate::Status| {
            let raw = crate::RawResult {
                run: *r,
                status,
                error: None,
                pktgen: None,
                search: None,
                load_avg: [0.0; 3],
                unix_time: 0,
            };
            std::fs::write(
                dir.join(r.file_name()),
                serde_json::to_string(&raw).unwrap(),
            )
            .unwrap();
        };
        write(&runs[0], crate::Status::Ok);
        write(&runs[1], crate::Status::Unavailable);
        write(&runs[2], crate::Status::Failed);
        std::fs::write(dir.join(runs[3].file_name()), "{truncated").unwrap();
        let p = pending(&runs, &dir);
        assert_eq!(p.len(), 1, "the finished setup is not started again");
        assert_eq!(p[0].0, runs[2].point.setup);
        assert_eq!(p[0].1, vec![runs[2], runs[3]]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn search_rate_and_section() {
        let c = cfg(r#"[{"sut":["netvm"],"size":[64],"rate":["search","max"," Search "]}]"#);
        assert_eq!(c.search, crate::search::SearchConfig::default());
        let pts = c.points().unwrap();
        assert_eq!(pts.len(), 2);
        assert_eq!(pts[1].rate, Offered::Search);
        assert_eq!(pts[1].key(), "netvm-c0-process-s64-rsearch");
        assert_eq!(pts[0].key(), "netvm-c0-process-s64-rmax");
        let with = |search: &str| -> Result<MatrixConfig, serde_json::Error> {
            serde_json::from_str(&format!(
                r#"{{"name":"t","duration_s":1,"search":{search},
                    "groups":[{{"sut":["netvm"],"size":[64],"rate":["search"]}}]}}"#
            ))
        };
        // Partial sections take the defaults for the rest.
        let c = with(r#"{"trial_s":0.3,"latency_at":[0.5]}"#).unwrap();
        assert_eq!(c.search.trial_s, 0.3);
        assert_eq!(c.search.pdr_loss, 0.005);
        assert_eq!(c.search.precision, 0.02);
        assert_eq!(c.search.max_trials, 20);
        assert!(c.points().is_ok());
        assert!(with(r#"{"trials":3}"#).is_err(), "unknown field");
        for (bad, says) in [
            (r#"{"pdr_loss":0.5}"#, "pdr_loss 0.5 is outside [0, 0.5)"),
            (r#"{"pdr_loss":-0.1}"#, "pdr_loss"),
            (r#"{"precision":0}"#, "precision 0 is outside (0, 0.5]"),
            (r#"{"precision":0.6}"#, "precision"),
            (r#"{"trial_s":0}"#, "trial_s 0 must be > 0"),
            (r#"{"max_trials":3}"#, "max_trials 3 is below 4"),
            (
                r#"{"latency_at":[0.5,1.5]}"#,
                "latency_at 1.5 is outside (0, 1]",
            ),
            (r#"{"latency_at":[0]}"#, "latency_at 0 "),
        ] {
            let e = with(bad).unwrap().points().unwrap_err().to_string();
            assert!(e.starts_with("search: ") && e.contains(says), "{bad}: {e}");
        }
        let e = cfg(r#"[{"sut":["netvm"],"size":[64],"rate":["serch"]}]"#)
            .points()
            .unwrap_err()
            .to_string();
        assert!(e.contains("or `search`"), "{e}");
    }

    #[test]
    fn offered_json_is_compatible_with_old_raw_results() {
        let p = |rate: serde_json::Value| -> Point {
            serde_json::from_value(serde_json::json!({
                "setup": {"sut": "netvm", "chain": 0, "placement": "process", "domain": null},
                "size": 64, "rate_pps": rate
            }))
            .unwrap()
        };
        assert_eq!(p(serde_json::json!(null)).rate, Offered::Max);
        assert_eq!(p(serde_json::json!(10000)).rate, Offered::Pps(10_000));
        assert_eq!(p(serde_json::json!("search")).rate, Offered::Search);
        for o in [Offered::Max, Offered::Pps(7), Offered::Search] {
            let pt = Point {
                rate: o,
                ..p(serde_json::json!(null))
            };
            let v = serde_json::to_value(pt).unwrap();
            assert!(v.get("rate_pps").is_some(), "{v}");
            assert_eq!(serde_json::from_value::<Point>(v).unwrap(), pt);
        }
        let bad: Result<Point, _> = serde_json::from_value(serde_json::json!({
            "setup": {"sut": "netvm", "chain": 0, "placement": "process", "domain": null},
            "size": 64, "rate_pps": "fast"
        }));
        assert!(bad.is_err());
    }
}
