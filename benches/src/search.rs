//! RFC 2544 NDR/PDR search in the manner of FD.io CSIT's MLRsearch: a binary search over the
//! generator's paced rate, shared between two criteria, with short trials first and longer
//! final trials to verify the bounds.
//!
//! **Loss** of a trial at offered rate R: `1 − received / offered`, clamped to [0, 1], where
//! `offered` is the number of frames the generator's TSC pacer scheduled during the trial
//! (`⌊R × T⌋`, T the measured sending time; pktgen's `offered`). Frames the generator could not
//! hand to the device — still due, or refused by a full memif ring (`unsent`: the link's
//! backpressure), when sending ended, or written off by the pacer (`pacing_skipped`) — are
//! therefore lost, as RFC 2544 counts every offered frame. The runner paces search trials with
//! pktgen's `--catch-up`, so a generator thread that was descheduled sends its backlog late
//! instead of writing it off: only frames never handed over, or never back, are lost. Frames
//! still in flight when sending stops count once they arrive within the drain period.
//!
//! * **NDR** (no drop rate) passes a trial when `received ≥ offered` (loss exactly 0).
//! * **PDR** (partial drop rate) passes when `loss ≤ pdr_loss`. Every NDR pass is a PDR pass.
//!
//! **Algorithm** ([`search`]); `max_trials` bounds every trial below except the latency ones:
//!
//! 1. *MRR*: one unpaced trial (`max`) of `trial_s`. Its `rx_pps` is the first candidate, its
//!    `tx_pps` the most the generator can offer (`gen_max`): no trial is paced above it.
//! 2. *Search* (`trial_s` trials): test at the candidate; while the highest rate tested passes
//!    PDR, multiply it by 1.25 (at most `gen_max`; passing at `gen_max` ends the search with
//!    `limited_by_generator`). Then bisect, for PDR and for NDR separately but with every trial
//!    counted for both, until `(hi − lo) / hi ≤ precision`. Below a failing rate with no passing
//!    one, the next rate is `hi × (1 − w)`, with `w` starting at `precision` and doubling (at most
//!    0.5) each step, or the rate the system forwarded in the trial at `hi` if that is lower
//!    (MLRsearch's use of the measured forwarding rate). The bounds are derived from all trials
//!    so far (MLRsearch's relevant bounds): `hi` = lowest rate that failed the criterion, `lo` =
//!    highest rate that passed it *below* `hi` (a pass above a failure is taken for noise). Two
//!    trials of the budget are kept for phase 3.
//! 3. *Final* (only when `duration_s > trial_s`): each lower bound is re-tested at
//!    `duration_s` (MLRsearch's longer final trials). Only passes at `duration_s` count as lower
//!    bounds now; failures of any duration stay upper bounds. A bound that fails is searched
//!    downward and bisected with `duration_s` trials as in phase 2, until one passes within
//!    `precision` or the budget is used up.
//! 4. *Latency*: one trial of `duration_s` at each `latency_at` fraction of the PDR.
//!
//! A criterion's reported rate is its lower bound verified at the longest duration available
//! ([`Bound::verified_s`]; 0 when no trial passed it). NDR is capped at PDR (which can only
//! matter when the two were verified at different durations). `converged` means both bounds
//! were verified at the final duration and are within `precision` of an upper bound (or passed
//! at `gen_max`).

use serde::{Deserialize, Serialize};

/// The `search` section of a benchmark config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchConfig {
    /// The loss ratio a PDR trial may have, in [0, 0.5).
    #[serde(default = "pdr_loss")]
    pub pdr_loss: f64,
    /// Relative width `(hi − lo) / hi` at which a bound is found, in (0, 0.5].
    #[serde(default = "precision")]
    pub precision: f64,
    /// Seconds of the MRR and search trials (the final ones last the config's `duration_s`).
    #[serde(default = "trial_s")]
    pub trial_s: f64,
    /// Most trials of one search (MRR, search and final; not the latency trials), at least 4.
    #[serde(default = "max_trials")]
    pub max_trials: u32,
    /// Latency trials, as fractions of the PDR, each in (0, 1].
    #[serde(default = "latency_at")]
    pub latency_at: Vec<f64>,
}

fn pdr_loss() -> f64 {
    0.005
}
fn precision() -> f64 {
    0.02
}
fn trial_s() -> f64 {
    1.0
}
fn max_trials() -> u32 {
    20
}
fn latency_at() -> Vec<f64> {
    vec![0.1, 0.5, 0.9]
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            pdr_loss: pdr_loss(),
            precision: precision(),
            trial_s: trial_s(),
            max_trials: max_trials(),
            latency_at: latency_at(),
        }
    }
}

impl SearchConfig {
    /// Checks the ranges; the error says which value is wrong and what is allowed.
    pub fn check(&self) -> Result<(), String> {
        if !(self.pdr_loss >= 0.0 && self.pdr_loss < 0.5) {
            return Err(format!(
                "pdr_loss {} is outside [0, 0.5) (a loss ratio: 0.005 is 0.5%)",
                self.pdr_loss
            ));
        }
        if !(self.precision > 0.0 && self.precision <= 0.5) {
            return Err(format!(
                "precision {} is outside (0, 0.5] (relative width of a bound: 0.02 is 2%)",
                self.precision
            ));
        }
        if !(self.trial_s > 0.0 && self.trial_s.is_finite()) {
            return Err(format!("trial_s {} must be > 0 seconds", self.trial_s));
        }
        if self.max_trials < 4 {
            return Err(format!(
                "max_trials {} is below 4 (the MRR trial, one search trial and two final ones)",
                self.max_trials
            ));
        }
        if let Some(f) = self.latency_at.iter().find(|f| !(**f > 0.0 && **f <= 1.0)) {
            return Err(format!(
                "latency_at {f} is outside (0, 1] (a fraction of the PDR)"
            ));
        }
        Ok(())
    }
}

/// What one trial measured (from pktgen's report; a mock in tests).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrialOutcome {
    /// Measured sending time, s.
    pub secs: f64,
    /// Frames offered (see the module docs).
    pub offered: u64,
    /// Frames the device accepted.
    pub sent: u64,
    /// Frames received.
    pub received: u64,
    /// Frames built but refused by the device.
    pub unsent: u64,
    /// Frames the pacer wrote off.
    pub pacing_skipped: u64,
    /// `sent / secs`.
    pub tx_pps: f64,
    /// `received / secs`.
    pub rx_pps: f64,
    /// Round-trip latency.
    pub latency: netvm_pktgen::Latency,
}

impl From<&netvm_pktgen::Report> for TrialOutcome {
    fn from(r: &netvm_pktgen::Report) -> Self {
        Self {
            secs: r.duration_s,
            offered: r.offered,
            sent: r.sent,
            received: r.received,
            unsent: r.unsent,
            pacing_skipped: r.pacing_skipped,
            tx_pps: r.tx_pps,
            rx_pps: r.rx_pps,
            latency: r.latency.clone(),
        }
    }
}

/// The phase a trial belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// The unpaced trial.
    Mrr,
    /// Short (`trial_s`) search trials.
    Search,
    /// Final (`duration_s`) trials.
    Final,
}

/// One search trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// Its phase.
    pub phase: Phase,
    /// Offered rate, pps (None: unpaced, the MRR trial).
    pub rate_pps: Option<u64>,
    /// Requested duration, s.
    pub secs: f64,
    /// Measured sending time, s.
    pub measured_s: f64,
    /// Frames offered.
    pub offered: u64,
    /// Frames the device accepted.
    pub sent: u64,
    /// Frames received.
    pub received: u64,
    /// Frames refused by the device (counted as lost).
    pub unsent: u64,
    /// Frames the pacer wrote off (counted as lost).
    pub pacing_skipped: u64,
    /// `1 − received / offered`, clamped to [0, 1].
    pub loss_ratio: f64,
    /// `received ≥ offered`.
    pub pass_ndr: bool,
    /// `loss_ratio ≤ pdr_loss`.
    pub pass_pdr: bool,
    /// Received rate, pps.
    pub rx_pps: f64,
}

/// One latency trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyTrial {
    /// Fraction of the PDR.
    pub fraction: f64,
    /// Offered rate, pps.
    pub rate_pps: u64,
    /// Requested duration, s.
    pub secs: f64,
    /// Frames offered.
    pub offered: u64,
    /// Frames sent.
    pub sent: u64,
    /// Frames received.
    pub received: u64,
    /// Loss as defined for the search.
    pub loss_ratio: f64,
    /// pktgen's round-trip latency summary.
    pub latency: netvm_pktgen::Latency,
}

/// The outcome for one criterion.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bound {
    /// The reported rate: the highest rate that passed, below every rate that failed, at the
    /// longest trial duration that has one; 0 when none passed.
    pub lower_pps: u64,
    /// The lowest rate that failed (any duration); None: none failed.
    pub upper_pps: Option<u64>,
    /// Duration of the trial behind `lower_pps`, s (0 when it is 0).
    pub verified_s: f64,
    /// Verified at the final duration and within `precision` of `upper_pps` (or passed at the
    /// generator's limit).
    pub converged: bool,
}

/// The result of a search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchResult {
    /// The parameters.
    pub config: SearchConfig,
    /// Duration of the final and latency trials, s.
    pub final_s: f64,
    /// Received rate of the unpaced trial, pps.
    pub mrr_pps: f64,
    /// Sent rate of the unpaced trial, pps: the generator's limit.
    pub mrr_tx_pps: f64,
    /// No drop rate, pps (`ndr.lower_pps`, capped at `pdr_pps`).
    pub ndr_pps: u64,
    /// Partial drop rate, pps (`pdr.lower_pps`).
    pub pdr_pps: u64,
    /// NDR details.
    pub ndr: Bound,
    /// PDR details.
    pub pdr: Bound,
    /// Both bounds converged.
    pub converged: bool,
    /// The PDR passed at the highest rate the generator offered unpaced: the system under
    /// test may take more. (Over memif that rate is itself limited by the link's
    /// backpressure, i.e. by the system under test.)
    pub limited_by_generator: bool,
    /// Every search trial, in order.
    pub trials: Vec<Trial>,
    /// The latency trials.
    pub latency: Vec<LatencyTrial>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Criterion {
    Ndr,
    Pdr,
}

/// `x` rounded to the nearest pps (0 for negative or NaN, saturating).
#[allow(clippy::cast_possible_truncation)] // float to int saturates; rates are far below 2^64
fn pps(x: f64) -> u64 {
    if x.is_finite() && x > 0.0 {
        x.round() as u64
    } else {
        0
    }
}

/// `x` rounded down to pps (0 for negative or NaN, saturating).
#[allow(clippy::cast_possible_truncation)] // float to int saturates; rates are far below 2^64
fn pps_floor(x: f64) -> u64 {
    if x.is_finite() && x > 0.0 {
        x.floor() as u64
    } else {
        0
    }
}

struct Searcher<'a, F> {
    cfg: &'a SearchConfig,
    trial: F,
    trials: Vec<Trial>,
    gen_max: u64,
}

impl<F> Searcher<'_, F>
where
    F: FnMut(Option<u64>, f64) -> Result<TrialOutcome, String>,
{
    /// Runs one trial; `label` names it in an error.
    fn call(&mut self, label: &str, rate: Option<u64>, secs: f64) -> Result<TrialOutcome, String> {
        let what = rate.map_or_else(|| "max".to_string(), |r| format!("{r} pps"));
        let o = (self.trial)(rate, secs).map_err(|e| format!("{label} ({what}, {secs} s): {e}"))?;
        if rate.is_some() && o.offered == 0 {
            return Err(format!(
                "{label} ({what}, {secs} s): the generator reports 0 frames offered"
            ));
        }
        Ok(o)
    }

    /// Runs and records one search trial.
    fn measure(
        &mut self,
        phase: Phase,
        rate: Option<u64>,
        secs: f64,
    ) -> Result<TrialOutcome, String> {
        let label = format!("search trial {}", self.trials.len() + 1);
        let o = self.call(&label, rate, secs)?;
        let loss = loss_ratio(&o);
        self.trials.push(Trial {
            phase,
            rate_pps: rate,
            secs,
            measured_s: o.secs,
            offered: o.offered,
            sent: o.sent,
            received: o.received,
            unsent: o.unsent,
            pacing_skipped: o.pacing_skipped,
            loss_ratio: loss,
            pass_ndr: o.received >= o.offered,
            pass_pdr: loss <= self.cfg.pdr_loss,
            rx_pps: o.rx_pps,
        });
        Ok(o)
    }

    fn pass(&self, c: Criterion, t: &Trial) -> bool {
        match c {
            Criterion::Ndr => t.pass_ndr,
            Criterion::Pdr => t.pass_pdr,
        }
    }

    /// (lo, hi) of a criterion: hi = lowest rate that failed it (any duration), lo = highest
    /// rate below hi that passed it in a trial of at least `min_secs`.
    fn bounds(&self, c: Criterion, min_secs: f64) -> (Option<u64>, Option<u64>) {
        let pass = |t: &Trial| self.pass(c, t);
        let paced = || {
            self.trials
                .iter()
                .filter_map(|t| t.rate_pps.map(|r| (r, t)))
        };
        let hi = paced().filter(|(_, t)| !pass(t)).map(|(r, _)| r).min();
        let lo = paced()
            .filter(|(r, t)| pass(t) && t.secs >= min_secs - 1e-9 && hi.is_none_or(|h| *r < h))
            .map(|(r, _)| r)
            .max();
        (lo, hi)
    }

    fn narrow(&self, lo: u64, hi: u64) -> bool {
        hi <= lo + 1 || (hi - lo) as f64 / hi as f64 <= self.cfg.precision + 1e-12
    }

    /// The next rate to test for criterion `c` with trials of `secs`, or None when its bound
    /// is found. `start`: where to begin when nothing passed yet; `down`: downward steps taken.
    fn next(&self, c: Criterion, secs: f64, start: Option<u64>, down: &mut u32) -> Option<u64> {
        match self.bounds(c, secs) {
            (Some(lo), Some(hi)) => {
                let mid = lo + (hi - lo) / 2;
                (!self.narrow(lo, hi) && mid > lo).then_some(mid)
            }
            (Some(lo), None) => (lo < self.gen_max)
                .then(|| pps((lo as f64 * 1.25).ceil()).min(self.gen_max).max(lo + 1)),
            (None, hi) => {
                if let Some(s) = start.filter(|&s| s > 0 && hi.is_none_or(|h| s < h)) {
                    return Some(s);
                }
                let hi = hi?;
                let w = (self.cfg.precision * f64::from(1u32 << (*down).min(20))).min(0.5);
                *down += 1;
                // What the system forwarded when offered `hi` is a better guess when lower.
                let fwd = self
                    .trials
                    .iter()
                    .filter(|t| t.rate_pps == Some(hi) && !self.pass(c, t))
                    .map(|t| t.rx_pps)
                    .fold(f64::INFINITY, f64::min);
                let r = pps_floor((hi as f64 * (1.0 - w)).min(fwd));
                (r >= 1 && r < hi).then_some(r)
            }
        }
    }
}

/// The loss of a trial as the search defines it (module docs).
pub fn loss_ratio(o: &TrialOutcome) -> f64 {
    if o.offered == 0 {
        return 0.0;
    }
    (1.0 - o.received as f64 / o.offered as f64).clamp(0.0, 1.0)
}

/// Runs an NDR/PDR search (algorithm in the module docs). `trial(rate, secs)` runs one trial:
/// `rate` None is unpaced. `final_s` is the duration of the final and latency trials. A trial
/// error ends the search with that error (which trial, at what rate, why).
pub fn search<F>(cfg: &SearchConfig, final_s: f64, trial: F) -> Result<SearchResult, String>
where
    F: FnMut(Option<u64>, f64) -> Result<TrialOutcome, String>,
{
    cfg.check()?;
    if !(final_s > 0.0 && final_s.is_finite()) {
        return Err(format!(
            "final trial duration {final_s} must be > 0 seconds"
        ));
    }
    let mut s = Searcher {
        cfg,
        trial,
        trials: Vec::new(),
        gen_max: 0,
    };
    let max = usize::try_from(cfg.max_trials).unwrap_or(usize::MAX);
    // 1. MRR.
    let mrr = s.measure(Phase::Mrr, None, cfg.trial_s)?;
    let (mrr_rx, mrr_tx) = (mrr.rx_pps, mrr.tx_pps);
    if mrr.received == 0 {
        return Err(format!(
            "the unpaced trial ({} s) received nothing of {} frames sent: the system under test \
             forwards nothing",
            cfg.trial_s, mrr.sent
        ));
    }
    s.gen_max = pps_floor(mrr_tx).max(1);
    let r0 = pps(mrr_rx).clamp(1, s.gen_max);
    let final_phase = final_s > cfg.trial_s;
    let crits = [Criterion::Pdr, Criterion::Ndr];
    // 2. Search with short trials, keeping two trials for the final phase.
    let reserve = if final_phase { 2 } else { 0 };
    let mut down = [0u32; 2];
    while s.trials.len() + reserve < max {
        let Some(rate) = crits
            .iter()
            .zip(down.iter_mut())
            .find_map(|(&c, d)| s.next(c, cfg.trial_s, Some(r0), d))
        else {
            break;
        };
        s.measure(Phase::Search, Some(rate), cfg.trial_s)?;
    }
    // 3. Final trials: verify the lower bounds at final_s.
    let verify_s = if final_phase { final_s } else { cfg.trial_s };
    if final_phase {
        let short = crits.map(|c| s.bounds(c, cfg.trial_s).0);
        let mut down = [0u32; 2];
        while s.trials.len() < max {
            let Some(rate) = crits
                .iter()
                .zip(short)
                .zip(down.iter_mut())
                // A criterion that never passed has nothing to verify.
                .filter(|((_, st), _)| st.is_some())
                .find_map(|((&c, st), d)| s.next(c, final_s, st, d))
            else {
                break;
            };
            s.measure(Phase::Final, Some(rate), final_s)?;
        }
    }
    let bound = |c: Criterion| {
        let (lo_v, hi) = s.bounds(c, verify_s);
        let (lo_s, _) = s.bounds(c, cfg.trial_s);
        let (lower_pps, verified_s) = match (lo_v, lo_s) {
            (Some(l), _) => (l, verify_s),
            (None, Some(l)) => (l, cfg.trial_s),
            (None, None) => (0, 0.0),
        };
        let converged = lo_v.is_some_and(|l| match hi {
            Some(h) => s.narrow(l, h),
            None => l >= s.gen_max,
        });
        Bound {
            lower_pps,
            upper_pps: hi,
            verified_s,
            converged,
        }
    };
    let pdr = bound(Criterion::Pdr);
    let mut ndr = bound(Criterion::Ndr);
    if ndr.lower_pps > pdr.lower_pps {
        ndr.lower_pps = pdr.lower_pps;
        ndr.verified_s = pdr.verified_s;
    }
    // 4. Latency at fractions of the PDR.
    let mut latency = Vec::new();
    for &f in &cfg.latency_at {
        let rate = pps(f * pdr.lower_pps as f64);
        if rate == 0 {
            continue;
        }
        let label = format!("latency trial at {}% of the PDR", f * 100.0);
        let o = s.call(&label, Some(rate), final_s)?;
        latency.push(LatencyTrial {
            fraction: f,
            rate_pps: rate,
            secs: final_s,
            offered: o.offered,
            sent: o.sent,
            received: o.received,
            loss_ratio: loss_ratio(&o),
            latency: o.latency,
        });
    }
    Ok(SearchResult {
        config: cfg.clone(),
        final_s,
        mrr_pps: mrr_rx,
        mrr_tx_pps: mrr_tx,
        ndr_pps: ndr.lower_pps,
        pdr_pps: pdr.lower_pps,
        converged: ndr.converged && pdr.converged,
        limited_by_generator: pdr.lower_pps >= s.gen_max,
        ndr,
        pdr,
        trials: s.trials,
        latency,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mock system under test. Capacity `knee` pps (`knee_long` for trials of `long_s` or
    /// more); above it the excess is lost. Every trial also loses `base_loss` of what it
    /// forwards. The generator offers at most `gen` pps (unpaced it sends exactly that). With
    /// a seed, the knee jitters by ±3% per trial and one trial in six loses 0.1–1% more.
    #[derive(Clone)]
    struct Mock {
        gen: f64,
        knee: f64,
        knee_long: f64,
        long_s: f64,
        base_loss: f64,
        seed: Option<u64>,
        calls: usize,
    }

    const KNEE: f64 = 7.3e6;

    impl Mock {
        fn knee(knee: f64) -> Self {
            Self {
                gen: 10e6,
                knee,
                knee_long: knee,
                long_s: f64::INFINITY,
                base_loss: 0.0,
                seed: None,
                calls: 0,
            }
        }

        fn rand(&mut self) -> f64 {
            let s = self.seed.get_or_insert(1);
            *s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (*s >> 11) as f64 / (1u64 << 53) as f64
        }

        fn trial(&mut self, rate: Option<u64>, secs: f64) -> Result<TrialOutcome, String> {
            self.calls += 1;
            let mut knee = if secs >= self.long_s {
                self.knee_long
            } else {
                self.knee
            };
            let mut extra = 0.0;
            if self.seed.is_some() {
                knee *= 0.97 + 0.06 * self.rand();
                if self.rand() < 1.0 / 6.0 {
                    extra = 0.001 + 0.009 * self.rand();
                }
            }
            let want = rate.map_or(self.gen, |r| r as f64);
            let offered = pps_floor(want * secs);
            let sent = pps_floor(want.min(self.gen) * secs);
            let skipped = offered - sent;
            let fwd = sent.min(pps_floor(knee * secs)) as f64;
            let received = pps_floor(fwd * (1.0 - self.base_loss) * (1.0 - extra));
            Ok(TrialOutcome {
                secs,
                offered,
                sent,
                received,
                unsent: 0,
                pacing_skipped: skipped,
                tx_pps: sent as f64 / secs,
                rx_pps: received as f64 / secs,
                latency: netvm_pktgen::Latency {
                    count: received,
                    p50_ns: 1_000,
                    p99_ns: 5_000,
                    ..Default::default()
                },
            })
        }

        fn search(&mut self, cfg: &SearchConfig, final_s: f64) -> Result<SearchResult, String> {
            search(cfg, final_s, |r, s| self.trial(r, s))
        }
    }

    fn within(got: u64, want: f64, precision: f64) -> bool {
        let g = got as f64;
        g <= want + 1.0 && (want - g) / want <= precision + 1e-9
    }

    /// Invariants every search result must satisfy.
    fn check_invariants(r: &SearchResult) {
        let cfg = &r.config;
        assert!(r.ndr_pps <= r.pdr_pps, "NDR above PDR: {r:#?}");
        assert!(
            r.trials.len() <= cfg.max_trials as usize,
            "{}",
            r.trials.len()
        );
        assert_eq!(r.trials[0].phase, Phase::Mrr);
        assert!(r.trials[1..].iter().all(|t| t.rate_pps.is_some()));
        for (b, pass, name) in [
            (
                &r.pdr,
                &(|t: &Trial| t.pass_pdr) as &dyn Fn(&Trial) -> bool,
                "PDR",
            ),
            (&r.ndr, &|t: &Trial| t.pass_ndr, "NDR"),
        ] {
            if let Some(u) = b.upper_pps {
                assert!(b.lower_pps < u, "{name} {b:?}");
                assert!(r.trials.iter().any(|t| t.rate_pps == Some(u) && !pass(t)));
            }
            if b.converged {
                let u = b.upper_pps.unwrap_or(b.lower_pps);
                assert!((u - b.lower_pps) as f64 / u as f64 <= cfg.precision + 1e-9);
                assert_eq!(b.verified_s, r.final_s.max(cfg.trial_s));
            }
        }
        // The PDR's lower bound passed a trial of the duration it claims.
        if r.pdr_pps > 0 {
            assert!(r.trials.iter().any(|t| {
                t.rate_pps == Some(r.pdr_pps) && t.pass_pdr && t.secs == r.pdr.verified_s
            }));
        }
        if r.ndr_pps > 0 && r.ndr_pps == r.ndr.lower_pps {
            assert!(r
                .trials
                .iter()
                .any(|t| t.rate_pps == Some(r.ndr_pps) && t.pass_ndr));
        }
        assert_eq!(r.converged, r.ndr.converged && r.pdr.converged);
    }

    #[test]
    fn converges_within_precision_to_the_knee() {
        let cfg = SearchConfig::default();
        let mut m = Mock::knee(KNEE);
        let r = m.search(&cfg, 3.0).unwrap();
        check_invariants(&r);
        assert!(r.converged && !r.limited_by_generator, "{r:#?}");
        // NDR: no loss up to the knee. PDR: loss 1 − knee/R ≤ 0.5% up to knee / 0.995.
        assert!(within(r.ndr_pps, KNEE, cfg.precision), "{}", r.ndr_pps);
        let pdr = KNEE / (1.0 - cfg.pdr_loss);
        assert!(
            within(r.pdr_pps, pdr, cfg.precision),
            "{} vs {pdr}",
            r.pdr_pps
        );
        assert_eq!(r.ndr.verified_s, 3.0);
        assert_eq!(r.pdr.verified_s, 3.0);
        assert!(r.trials.iter().any(|t| t.phase == Phase::Final));
        assert!(r
            .trials
            .iter()
            .all(|t| t.rate_pps.unwrap_or(0) <= 10_000_000));
        assert!((r.mrr_pps - KNEE).abs() < 1.0);
        // The expansion went above the MRR rate by 1.25.
        assert_eq!(r.trials[1].rate_pps, Some(7_300_000));
        assert_eq!(r.trials[2].rate_pps, Some(9_125_000));
        // Latency at 10/50/90% of the PDR, at the final duration.
        let rates: Vec<u64> = r.latency.iter().map(|l| l.rate_pps).collect();
        let want: Vec<u64> = [0.1, 0.5, 0.9]
            .iter()
            .map(|f| pps(f * r.pdr_pps as f64))
            .collect();
        assert_eq!(rates, want);
        assert!(r
            .latency
            .iter()
            .all(|l| l.secs == 3.0 && l.loss_ratio == 0.0));
        assert_eq!(m.calls, r.trials.len() + 3);
    }

    #[test]
    fn ndr_never_exceeds_pdr_under_noise() {
        let cfg = SearchConfig::default();
        let mut converged = 0;
        for seed in 0..300 {
            let mut m = Mock {
                seed: Some(seed),
                ..Mock::knee(KNEE)
            };
            let r = m.search(&cfg, 2.0).unwrap();
            check_invariants(&r);
            converged += usize::from(r.converged);
            // Jitter is ±3% and bursts add at most 1% loss: the bounds stay near the knee.
            assert!(r.pdr_pps as f64 > KNEE * 0.7, "seed {seed}: {r:#?}");
            assert!((r.pdr_pps as f64) < KNEE * 1.04 / 0.995, "seed {seed}");
        }
        // Noise costs trials; most searches still converge within 20.
        assert!(converged > 150, "{converged} of 300 converged");
    }

    #[test]
    fn generator_limit_is_the_rate() {
        let cfg = SearchConfig::default();
        let mut m = Mock {
            gen: 5e6,
            ..Mock::knee(KNEE)
        };
        let r = m.search(&cfg, 3.0).unwrap();
        check_invariants(&r);
        assert!(r.limited_by_generator && r.converged, "{r:#?}");
        assert_eq!((r.ndr_pps, r.pdr_pps), (5_000_000, 5_000_000));
        assert_eq!(r.pdr.upper_pps, None);
        assert!(r
            .trials
            .iter()
            .all(|t| t.rate_pps.unwrap_or(0) <= 5_000_000));
        // MRR, the limit at trial_s, the limit at the final duration: nothing else to do.
        assert_eq!(r.trials.len(), 3, "{:#?}", r.trials);
    }

    #[test]
    fn lossy_sut_has_ndr_zero_and_respects_the_budget() {
        let cfg = SearchConfig::default();
        let mut m = Mock {
            base_loss: 0.001,
            ..Mock::knee(KNEE)
        };
        let r = m.search(&cfg, 3.0).unwrap();
        check_invariants(&r);
        assert_eq!(r.ndr_pps, 0);
        assert!(!r.converged && !r.ndr.converged);
        assert!(r.trials.iter().all(|t| !t.pass_ndr));
        let lowest = r.trials.iter().filter_map(|t| t.rate_pps).min();
        assert_eq!(
            r.ndr.upper_pps, lowest,
            "NDR failed at the lowest rate tried"
        );
        // The short trials used their whole budget (all but the two kept for the final phase);
        // the final phase only had the PDR to verify.
        let short = r.trials.iter().filter(|t| t.phase != Phase::Final).count();
        assert_eq!(short, 18);
        assert!(r.trials.len() <= 20);
        // PDR: 0.1% + (1 − knee/R) ≤ 0.5% … up to knee × 0.999 / 0.995; verified at 3 s.
        let pdr = KNEE * 0.999 / 0.995;
        assert!(
            within(r.pdr_pps, pdr, cfg.precision),
            "{} vs {pdr}",
            r.pdr_pps
        );
        assert_eq!(r.pdr.verified_s, 3.0);
        assert!(r.pdr.converged);
    }

    #[test]
    fn final_trials_search_downward_when_a_bound_fails() {
        let cfg = SearchConfig::default();
        let mut m = Mock {
            knee_long: 6.9e6,
            long_s: 2.0,
            ..Mock::knee(KNEE)
        };
        let r = m.search(&cfg, 3.0).unwrap();
        check_invariants(&r);
        assert!(r.converged, "{r:#?}");
        assert!(within(r.ndr_pps, 6.9e6, cfg.precision), "{}", r.ndr_pps);
        assert!(
            within(r.pdr_pps, 6.9e6 / 0.995, cfg.precision),
            "{}",
            r.pdr_pps
        );
        let finals: Vec<&Trial> = r
            .trials
            .iter()
            .filter(|t| t.phase == Phase::Final)
            .collect();
        assert!(finals.len() > 2, "{finals:#?}");
        assert!(
            finals.iter().any(|t| !t.pass_pdr),
            "a short-trial bound failed at 3 s"
        );
        // Below the failure the search went to the rate the system forwarded there.
        assert!(
            finals.iter().any(|t| t.rate_pps == Some(6_900_000)),
            "{finals:#?}"
        );
        assert_eq!(r.pdr.verified_s, 3.0);
    }

    #[test]
    fn no_final_phase_when_duration_is_not_longer() {
        let cfg = SearchConfig::default();
        let r = Mock::knee(KNEE).search(&cfg, 1.0).unwrap();
        check_invariants(&r);
        assert!(r.converged);
        assert!(r.trials.iter().all(|t| t.phase != Phase::Final));
        assert_eq!(r.pdr.verified_s, 1.0);
    }

    #[test]
    fn max_trials_is_respected() {
        for max_trials in [4, 5, 7] {
            let cfg = SearchConfig {
                max_trials,
                ..SearchConfig::default()
            };
            let mut m = Mock::knee(KNEE);
            let r = m.search(&cfg, 3.0).unwrap();
            check_invariants(&r);
            assert_eq!(r.trials.len(), max_trials as usize);
            assert!(!r.converged);
            assert_eq!(m.calls, r.trials.len() + r.latency.len());
            // The reserved trials verified what the short ones found.
            assert!(r.trials.iter().any(|t| t.phase == Phase::Final));
        }
    }

    #[test]
    fn trial_errors_fail_the_search_clearly() {
        let cfg = SearchConfig::default();
        for (fail_at, says) in [
            (1, "search trial 1 (max, 1 s): pktgen exited"),
            (3, "search trial 3 ("),
            (20, "latency trial at 10% of the PDR ("),
        ] {
            let mut m = Mock::knee(KNEE);
            let mut n = 0;
            let e = search(&cfg, 3.0, |r, s| {
                n += 1;
                if n == fail_at || (fail_at == 20 && r.is_some_and(|r| r < 1_000_000)) {
                    return Err("pktgen exited with Some(1)".into());
                }
                m.trial(r, s)
            })
            .unwrap_err();
            assert!(
                e.starts_with(says) && e.ends_with("pktgen exited with Some(1)"),
                "{e}"
            );
        }
        let dead = |r: Option<u64>, s: f64| {
            let mut o = Mock::knee(KNEE).trial(r, s)?;
            o.received = 0;
            o.rx_pps = 0.0;
            Ok(o)
        };
        let e = search(&cfg, 3.0, dead).unwrap_err();
        assert!(e.contains("forwards nothing"), "{e}");
        let silent = |r: Option<u64>, s: f64| {
            let mut o = Mock::knee(KNEE).trial(r, s)?;
            if r.is_some() {
                o.offered = 0;
            }
            Ok(o)
        };
        let e = search(&cfg, 3.0, silent).unwrap_err();
        assert!(e.contains("0 frames offered"), "{e}");
        let bad = SearchConfig {
            precision: 0.0,
            ..SearchConfig::default()
        };
        assert!(search(&bad, 3.0, |r, s| Mock::knee(KNEE).trial(r, s)).is_err());
        assert!(search(&cfg, 0.0, |r, s| Mock::knee(KNEE).trial(r, s)).is_err());
    }

    #[test]
    fn loss_counts_frames_the_generator_could_not_send() {
        let o = TrialOutcome {
            offered: 1000,
            sent: 900,
            received: 900,
            pacing_skipped: 100,
            ..Default::default()
        };
        assert!((loss_ratio(&o) - 0.1).abs() < 1e-12);
        let more = TrialOutcome {
            offered: 10,
            received: 12,
            ..Default::default()
        };
        assert_eq!(loss_ratio(&more), 0.0);
    }
}
