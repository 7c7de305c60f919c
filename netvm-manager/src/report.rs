//! The core's stats report as the manager reads it, rates between two reports, the live
//! displays (`up`'s progress line, `stats --watch`'s table) and the final summary.
//!
//! [`Report`] is the core's own type (`netvm_api::report`): every field defaulted and unknown
//! fields ignored, so a newer core with more fields still parses.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use netvm_api::report::verdict_idx;
pub use netvm_api::report::{NfReport, PortReport, Report, WorkerReport};
use serde::{Deserialize, Serialize};

/// One firewall rule and its hits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleHits {
    /// The rule as the firewall printed it (`rule 1`, `default`, `malformed`).
    pub rule: String,
    /// What it says (`deny proto=udp dport=53`).
    pub text: String,
    /// Packets it decided.
    pub hits: u64,
}

/// A firewall NF's per-rule hit counters, from the table it prints on exit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirewallHits {
    /// NF name.
    pub nf: String,
    /// Rules in order, then `default` and `malformed`.
    pub rules: Vec<RuleHits>,
}

/// Parses the last `firewall: rule hits` table in an NF's log.
pub fn parse_firewall_hits(log: &str) -> Option<Vec<RuleHits>> {
    let start = log.rfind("firewall: rule hits")?;
    let mut out = Vec::new();
    for line in log[start..].lines().skip(1) {
        let t = line.trim();
        let (rule, rest) = if let Some(r) = t.strip_prefix("rule ") {
            let r = r.trim_start();
            let (n, rest) = r.split_once(char::is_whitespace)?;
            (format!("rule {n}"), rest)
        } else if let Some(r) = t.strip_prefix("default ") {
            ("default".to_string(), r)
        } else if let Some(r) = t.strip_prefix("malformed ") {
            ("malformed".to_string(), r)
        } else {
            break;
        };
        let rest = rest.trim_start();
        let (hits, text) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        out.push(RuleHits {
            rule,
            text: text.trim().to_string(),
            hits: hits.parse().ok()?,
        });
    }
    Some(out)
}

/// What `up` prints (and writes with `--summary`) at the end.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// Instance name.
    pub name: String,
    /// The core's exit status, in words.
    pub core_exit: String,
    /// Seconds the ports ran.
    pub seconds: f64,
    /// Received packets per second, averaged.
    pub rx_pps: f64,
    /// Transmitted packets per second, averaged.
    pub tx_pps: f64,
    /// The accounting identity held at the end.
    pub accounting_ok: bool,
    /// Every pool was full again after shutdown.
    pub pools_full: Option<bool>,
    /// Both of the above (the exit code is 0 only then).
    pub ok: bool,
    /// Per-rule hits of every firewall NF.
    pub firewall: Vec<FirewallHits>,
    /// NF exit statuses.
    pub nf_exits: BTreeMap<String, String>,
    /// What happened to the hugepage pool.
    pub hugepages: Option<String>,
    /// The core's final report.
    pub report: Report,
}

impl Summary {
    /// Builds the summary from the core's final report.
    pub fn new(name: &str, core_exit: String, report: Report) -> Self {
        let secs = report.uptime_s;
        let per_s = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
        let pools_full = report.pools_full;
        Self {
            name: name.to_string(),
            core_exit,
            seconds: secs,
            rx_pps: per_s(report.received),
            tx_pps: per_s(report.transmitted),
            accounting_ok: report.accounting_ok,
            pools_full,
            ok: report.accounting_ok && pools_full == Some(true),
            firewall: Vec::new(),
            nf_exits: BTreeMap::new(),
            hugepages: None,
            report,
        }
    }
}

/// `12,345,678`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `1.234 Mpps` style (packets per second).
pub fn mpps(pps: f64) -> String {
    format!("{:.3} Mpps", pps / 1e6)
}

fn signed(n: i128) -> String {
    let abs = n.unsigned_abs();
    let digits = u64::try_from(abs).map_or_else(|_| abs.to_string(), thousands);
    if n < 0 {
        format!("-{digits}")
    } else {
        digits
    }
}

/// Service paths (NSH): per path encapsulated / decapsulated and drops by reason, then every
/// NSH drop by reason. Empty when the instance has no path.
fn paths_block(r: &Report) -> String {
    let mut o = String::new();
    if r.paths.is_empty() && r.nsh_drops.is_empty() {
        return o;
    }
    let _ = writeln!(o, "service paths (NSH):");
    for p in &r.paths {
        let drops: Vec<String> = p.drops.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(
            o,
            "  {:<10} {:<16} encapsulated {:>13}  decapsulated {:>13}  {}",
            p.path_id,
            p.chain,
            thousands(p.encapsulated),
            thousands(p.decapsulated),
            drops.join(" ")
        );
    }
    if !r.nsh_drops.is_empty() {
        let all: Vec<String> = r
            .nsh_drops
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(o, "  nsh drops: {}", all.join(" "));
    }
    o
}

/// The final summary as text.
pub fn render_summary(s: &Summary) -> String {
    let r = &s.report;
    let mut o = String::new();
    let _ = writeln!(o, "== netvm {:?}: final summary ==", s.name);
    let _ = writeln!(
        o,
        "ran {:.1} s; netvm-core exited with {}",
        s.seconds, s.core_exit
    );
    let port_list = |f: &dyn Fn(&PortReport) -> u64| {
        r.ports
            .iter()
            .map(|p| format!("{} {}", p.name, thousands(f(p))))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let per_s = |n: u64| {
        if s.seconds > 0.0 {
            n as f64 / s.seconds
        } else {
            0.0
        }
    };
    let _ = writeln!(
        o,
        "  received     {:>15}  {:>14}  ({})",
        thousands(r.received),
        mpps(s.rx_pps),
        port_list(&|p| p.rx)
    );
    let _ = writeln!(
        o,
        "  transmitted  {:>15}  {:>14}  ({})",
        thousands(r.transmitted),
        mpps(s.tx_pps),
        port_list(&|p| p.tx)
    );
    let _ = writeln!(
        o,
        "  dropped      {:>15}  {:>14}",
        thousands(r.dropped),
        mpps(per_s(r.dropped))
    );
    for (reason, n) in &r.drops {
        let _ = writeln!(o, "    {reason:<22} {:>15}", thousands(*n));
    }
    let _ = writeln!(o, "  in flight    {:>15}", signed(r.in_flight));
    let _ = writeln!(o, "  domain copies {:>14}", thousands(r.domain_copies));
    if !r.chains.is_empty() {
        let _ = writeln!(o, "chains:");
        for (c, n) in &r.chains {
            let _ = writeln!(o, "  {c:<24} {:>15}", thousands(*n));
        }
    }
    let _ = write!(o, "{}", paths_block(r));
    if !r.nfs.is_empty() {
        let _ = writeln!(
            o,
            "NFs:\n  {:<12} {:<16} {:<10} {:>13} {:>13} {:>13} {:>11} {:>11} {:>13}  rejects",
            "name", "service", "domain", "delivered", "returned", "next", "service", "out", "drop"
        );
        for n in &r.nfs {
            let rejects = if n.rejects.is_empty() {
                "0".to_string()
            } else {
                n.rejects
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(
                o,
                "  {:<12} {:<16} {:<10} {:>13} {:>13} {:>13} {:>11} {:>11} {:>13}  {rejects}",
                n.name,
                n.service,
                n.domain,
                thousands(n.delivered),
                thousands(n.returned),
                thousands(n.verdicts[verdict_idx::NEXT]),
                thousands(n.verdicts[verdict_idx::SERVICE]),
                thousands(n.verdicts[verdict_idx::OUT]),
                thousands(n.verdicts[verdict_idx::DROP]),
            );
        }
    }
    for fw in &s.firewall {
        let _ = writeln!(o, "firewall {} hits by rule:", fw.nf);
        for h in &fw.rules {
            let _ = writeln!(o, "  {:<10} {:>15}  {}", h.rule, thousands(h.hits), h.text);
        }
    }
    for (reason, held) in &r.held_at_shutdown {
        let _ = writeln!(
            o,
            "  NF {reason} still held {held} buffers at shutdown (reclaimed)"
        );
    }
    if let Some(h) = &s.hugepages {
        let _ = writeln!(o, "{h}");
    }
    let _ = writeln!(
        o,
        "accounting: {} (received {} = transmitted {} + dropped {} + in flight {})",
        if r.accounting_ok { "ok" } else { "FAILED" },
        thousands(r.received),
        thousands(r.transmitted),
        thousands(r.dropped),
        signed(r.in_flight)
    );
    let _ = writeln!(
        o,
        "pools full after shutdown: {}",
        match r.pools_full {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "unknown",
        }
    );
    o
}

/// Rates between two reports of one run.
#[derive(Debug, Clone, Copy)]
pub struct Delta<'a> {
    /// Earlier report (None: rates since start).
    pub prev: Option<&'a Report>,
    /// Later report.
    pub cur: &'a Report,
}

impl Delta<'_> {
    fn dt(&self) -> f64 {
        let dt = self.cur.uptime_s - self.prev.map_or(0.0, |p| p.uptime_s);
        if dt > 1e-6 {
            dt
        } else {
            f64::INFINITY
        }
    }

    /// Per-second rate of a counter.
    pub fn rate(&self, f: impl Fn(&Report) -> u64) -> f64 {
        let a = self.prev.map_or(0, &f);
        f(self.cur).saturating_sub(a) as f64 / self.dt()
    }

    fn port_rate(&self, i: usize, f: impl Fn(&PortReport) -> u64) -> f64 {
        let a = self.prev.and_then(|p| p.ports.get(i)).map_or(0, &f);
        f(&self.cur.ports[i]).saturating_sub(a) as f64 / self.dt()
    }

    fn nf_rate(&self, i: usize, f: impl Fn(&NfReport) -> u64) -> f64 {
        let a = self.prev.and_then(|p| p.nfs.get(i)).map_or(0, &f);
        f(&self.cur.nfs[i]).saturating_sub(a) as f64 / self.dt()
    }

    fn worker_rate(&self, i: usize, f: impl Fn(&WorkerReport) -> u64) -> f64 {
        let a = self.prev.and_then(|p| p.workers.get(i)).map_or(0, &f);
        f(&self.cur.workers[i]).saturating_sub(a) as f64 / self.dt()
    }

    fn map_rate(&self, m: impl Fn(&Report) -> &BTreeMap<String, u64>, k: &str) -> f64 {
        let a = self.prev.and_then(|p| m(p).get(k).copied()).unwrap_or(0);
        let b = m(self.cur).get(k).copied().unwrap_or(0);
        b.saturating_sub(a) as f64 / self.dt()
    }
}

/// `up`'s one-line progress display.
pub fn progress_line(d: &Delta<'_>) -> String {
    let r = d.cur;
    let mut drops: Vec<(f64, &String)> = r
        .drops
        .keys()
        .map(|k| (d.map_rate(|r| &r.drops, k), k))
        .filter(|(v, _)| *v > 0.0)
        .collect();
    drops.sort_by(|a, b| b.0.total_cmp(&a.0));
    let why = if drops.is_empty() {
        String::new()
    } else {
        format!(
            " ({})",
            drops
                .iter()
                .take(3)
                .map(|(v, k)| format!("{k} {:.3}", v / 1e6))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    format!(
        "[{:>6.1} s] rx {}  tx {}  drop {}{}  copies {:.3} M/s  in flight {}  accounting {}",
        r.uptime_s,
        mpps(d.rate(|r| r.received)),
        mpps(d.rate(|r| r.transmitted)),
        mpps(d.rate(|r| r.dropped)),
        why,
        d.rate(|r| r.domain_copies) / 1e6,
        r.in_flight,
        if r.accounting_ok { "ok" } else { "BROKEN" }
    )
}

/// `stats --watch`'s table (also `stats` without --watch, with rates since start).
pub fn render_table(name: &str, d: &Delta<'_>) -> String {
    let r = d.cur;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "netvm {name:?}  up {:.1} s  rx {}  tx {}  drop {}  in flight {}  copies {:.3} M/s  accounting {}",
        r.uptime_s,
        mpps(d.rate(|r| r.received)),
        mpps(d.rate(|r| r.transmitted)),
        mpps(d.rate(|r| r.dropped)),
        r.in_flight,
        d.rate(|r| r.domain_copies) / 1e6,
        if r.accounting_ok { "ok" } else { "BROKEN" }
    );
    let _ = writeln!(
        o,
        "\n{:<14} {:>12} {:>12} {:>10} {:>10} {:>15} {:>15} {:>10} {:>10}",
        "PORT",
        "rx Mpps",
        "tx Mpps",
        "rx Gb/s",
        "tx Gb/s",
        "rx total",
        "tx total",
        "imissed",
        "nombuf"
    );
    for (i, p) in r.ports.iter().enumerate() {
        let _ = writeln!(
            o,
            "{:<14} {:>12.3} {:>12.3} {:>10.3} {:>10.3} {:>15} {:>15} {:>10} {:>10}",
            p.name,
            d.port_rate(i, |p| p.rx) / 1e6,
            d.port_rate(i, |p| p.tx) / 1e6,
            d.port_rate(i, |p| p.rx_bytes) * 8.0 / 1e9,
            d.port_rate(i, |p| p.tx_bytes) * 8.0 / 1e9,
            thousands(p.rx),
            thousands(p.tx),
            p.dev_imissed,
            p.dev_rx_nombuf
        );
    }
    if !r.nfs.is_empty() {
        let _ = writeln!(
            o,
            "\n{:<14} {:<12} {:<10} {:<11} {:>8} {:>10} {:>10} {:>10} {:>8} {:>8} {:>8}",
            "NF",
            "service",
            "domain",
            "state",
            "pid",
            "in Mpps",
            "out Mpps",
            "drop Mpps",
            "held",
            "ring",
            "rejects"
        );
        for (i, n) in r.nfs.iter().enumerate() {
            let rejects: u64 = n.rejects.values().sum();
            let _ = writeln!(
                o,
                "{:<14} {:<12} {:<10} {:<11} {:>8} {:>10.3} {:>10.3} {:>10.3} {:>8} {:>8} {:>8}",
                n.name,
                n.service,
                n.domain,
                n.state,
                n.pid,
                d.nf_rate(i, |n| n.delivered) / 1e6,
                d.nf_rate(i, |n| n.returned) / 1e6,
                d.nf_rate(i, |n| n.verdicts[verdict_idx::DROP]) / 1e6,
                n.held,
                n.rx_ring_occupancy,
                rejects
            );
        }
    }
    if !r.paths.is_empty() {
        let _ = write!(o, "\n{}", paths_block(r));
    }
    if !r.chains.is_empty() {
        let _ = writeln!(o, "\n{:<24} {:>12} {:>15}", "CHAIN", "Mpps", "total");
        for (c, n) in &r.chains {
            let _ = writeln!(
                o,
                "{c:<24} {:>12.3} {:>15}",
                d.map_rate(|r| &r.chains, c) / 1e6,
                thousands(*n)
            );
        }
    }
    if !r.workers.is_empty() {
        let _ = writeln!(
            o,
            "\n{:<8} {:>5} {:<9} {:>10} {:>8} {:>15} {:>12}",
            "WORKER", "cpu", "poll", "sleeps/s", "asleep", "sleeps", "slept s"
        );
        for (i, w) in r.workers.iter().enumerate() {
            // Share of the interval the worker spent asleep (slept ns per second of it).
            let asleep = d.worker_rate(i, |w| w.slept_ns) / 1e9 * 100.0;
            let _ = writeln!(
                o,
                "{i:<8} {:>5} {:<9} {:>10.0} {:>7.1}% {:>15} {:>12.3}",
                w.cpu,
                w.poll,
                d.worker_rate(i, |w| w.sleeps),
                asleep,
                thousands(w.sleeps),
                w.slept_ns as f64 / 1e9
            );
        }
    }
    if !r.drops.is_empty() {
        let _ = writeln!(o, "\n{:<24} {:>12} {:>15}", "DROPS", "Mpps", "total");
        for (k, n) in &r.drops {
            let _ = writeln!(
                o,
                "{k:<24} {:>12.3} {:>15}",
                d.map_rate(|r| &r.drops, k) / 1e6,
                thousands(*n)
            );
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firewall_table_parses() {
        let log = "firewall: 10 packets\nfirewall: rule hits\n  rule   1            5  deny proto=udp dport=53\n  rule   2            3  allow dst=10.1.0.0/16\n  default               2  default deny\n  malformed             0  deny\nbye\n";
        let h = parse_firewall_hits(log).unwrap();
        assert_eq!(h.len(), 4);
        assert_eq!(h[0].rule, "rule 1");
        assert_eq!(h[0].hits, 5);
        assert_eq!(h[0].text, "deny proto=udp dport=53");
        assert_eq!(h[2].rule, "default");
        assert_eq!(h[2].hits, 2);
        assert_eq!(h[3].rule, "malformed");
        assert!(parse_firewall_hits("nothing").is_none());
    }

    #[test]
    fn numbers() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(12_345_678), "12,345,678");
        assert_eq!(signed(-1234), "-1,234");
    }

    #[test]
    fn core_report_json_parses() {
        let v = serde_json::json!({
            "epoch": 3, "consistent": true, "uptime_s": 2.0, "received": 10, "transmitted": 6,
            "dropped": 4, "in_flight": 0, "owned_by_nfs": 0, "accounting_ok": true,
            "drops": {"nf_verdict_drop": 4}, "ports": [{"name": "in", "rx": 10, "tx": 0,
            "rx_bytes": 640, "tx_bytes": 0, "dev_imissed": 0, "dev_rx_nombuf": 0}],
            "nfs": [{"name": "fw", "service": "firewall", "domain": "d", "state": "attached",
            "pid": 1, "delivered": 10, "returned": 10, "held": 0, "verdicts": [6, 0, 0, 4],
            "rejects": {}, "rx_ring_occupancy": 0}], "chains": {"c": 10}, "domain_copies": 6,
            "flow_cache_hits": 1, "flow_cache_misses": 1, "ring_corrupt": 0,
            "held_at_shutdown": {}, "pools_full": true, "something_new": 1
        });
        // A field of a newer core is ignored.
        let r: Report = serde_json::from_value(v).unwrap();
        assert_eq!(r.nfs[0].verdicts[verdict_idx::DROP], 4);
        let s = Summary::new("x", "code 0".into(), r.clone());
        assert!(s.ok);
        assert_eq!(s.rx_pps, 5.0);
        let text = render_summary(&s);
        assert!(text.contains("accounting: ok"), "{text}");
        let d = Delta {
            prev: None,
            cur: &r,
        };
        assert!(progress_line(&d).contains("rx 0.000 Mpps"));
        assert!(render_table("x", &d).contains("nf_verdict_drop"));
    }

    #[test]
    fn worker_idle_figures_are_shown() {
        let w = |sleeps, slept_ns| WorkerReport {
            cpu: 1,
            poll: "adaptive".into(),
            sleeps,
            slept_ns,
        };
        let prev = Report {
            uptime_s: 1.0,
            workers: vec![w(100, 100_000_000)],
            ..Report::default()
        };
        let cur = Report {
            uptime_s: 2.0,
            workers: vec![w(4100, 1_090_000_000)],
            ..Report::default()
        };
        let t = render_table(
            "x",
            &Delta {
                prev: Some(&prev),
                cur: &cur,
            },
        );
        // 4000 sleeps and 0.99 s asleep in that second.
        let line = t.lines().find(|l| l.starts_with("0 ")).expect(&t);
        assert!(line.contains("adaptive"), "{t}");
        assert!(line.contains(" 4000 "), "{t}");
        assert!(line.contains("99.0%"), "{t}");
        assert!(line.contains("4,100"), "{t}");
    }
}
