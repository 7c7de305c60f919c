//! The core's [`Report`] in the Prometheus text exposition format (version 0.0.4), as
//! `netvm-manager metrics` serves it on `/metrics` ([`crate::exporter`]).
//!
//! A pure function of one report: every counter that `stats` shows, per port, NF, chain,
//! verdict and drop/reject reason, plus the gauges (buffers held, ring occupancy, quota, uptime,
//! accounting). Names follow Prometheus conventions: prefix `netvm_`, base units (`_seconds`,
//! `_bytes`, `_packets`), counters end in `_total`, gauges never do. Every sample carries
//! `instance="NAME"` (the netvm instance, which Prometheus keeps as `exported_instance` beside
//! its own `instance` target label unless the scrape config says `honor_labels: true`).
//!
//! Reasons the core knows ([`DropReason::ALL`], [`RejectReason::ALL`]) and the NF states are
//! always exported, zero when the report has no entry, so that a rate over a reason that first
//! fires mid-run starts from a sample of 0; names a newer core adds are exported as they come.
//! A family without samples (an instance without NFs has no NF families) is left out whole.

use std::fmt::Write as _;

use netvm_api::report::{verdict_idx, DropReason, Report};
use netvm_shm::RejectReason;

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The NF states the core reports (`NfReport::state`), exported as a state set.
/// (`removing`: between `nf remove` and its entry being freed.)
pub const NF_STATES: [&str; 6] = [
    "pending",
    "attached",
    "detached",
    "quarantined",
    "dead",
    "removing",
];

/// Why the core quarantines an NF (`NfReport::quarantined_for`).
pub const QUARANTINE_REASONS: [&str; 4] =
    ["rejects", "tx_ring_corrupt", "rx_ring_corrupt", "hoarding"];

/// The verdict label values, in [`verdict_idx`] order.
pub const VERDICTS: [&str; verdict_idx::COUNT] = ["next", "service", "out", "drop"];

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
}

/// One sample value.
#[derive(Debug, Clone, Copy)]
enum Val {
    U(u64),
    I(i128),
    F(f64),
}

impl From<u64> for Val {
    fn from(v: u64) -> Self {
        Val::U(v)
    }
}

impl From<u32> for Val {
    fn from(v: u32) -> Self {
        Val::U(u64::from(v))
    }
}

impl From<i128> for Val {
    fn from(v: i128) -> Self {
        Val::I(v)
    }
}

impl From<f64> for Val {
    fn from(v: f64) -> Self {
        Val::F(v)
    }
}

impl From<bool> for Val {
    fn from(v: bool) -> Self {
        Val::U(u64::from(v))
    }
}

impl std::fmt::Display for Val {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Val::U(v) => write!(f, "{v}"),
            Val::I(v) => write!(f, "{v}"),
            Val::F(v) if v.is_nan() => f.write_str("NaN"),
            Val::F(v) if v == f64::INFINITY => f.write_str("+Inf"),
            Val::F(v) if v == f64::NEG_INFINITY => f.write_str("-Inf"),
            Val::F(v) => write!(f, "{v}"),
        }
    }
}

/// Escapes a label value: backslash, double quote and line feed (the exposition format's
/// three escapes).
pub fn escape_label_value(v: &str) -> String {
    let mut o = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '"' => o.push_str("\\\""),
            '\n' => o.push_str("\\n"),
            c => o.push(c),
        }
    }
    o
}

/// Escapes HELP text: backslash and line feed.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Labels of one sample: `(name, value)`; the names are ours and valid, the values escaped on
/// output.
type Labels<'a> = Vec<(&'static str, &'a str)>;

/// One family being written: its samples are collected first so that a family without any is
/// left out, HELP and TYPE included.
struct Family<'o> {
    out: &'o mut String,
    name: &'static str,
    kind: Kind,
    help: &'static str,
    samples: String,
}

impl Family<'_> {
    fn sample(&mut self, labels: &Labels<'_>, v: impl Into<Val>) {
        let s = &mut self.samples;
        s.push_str(self.name);
        if !labels.is_empty() {
            s.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                let _ = write!(s, "{k}=\"{}\"", escape_label_value(v));
            }
            s.push('}');
        }
        let _ = writeln!(s, " {}", v.into());
    }
}

impl Drop for Family<'_> {
    fn drop(&mut self) {
        if self.samples.is_empty() {
            return;
        }
        let kind = match self.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let _ = writeln!(self.out, "# HELP {} {}", self.name, escape_help(self.help));
        let _ = writeln!(self.out, "# TYPE {} {kind}", self.name);
        self.out.push_str(&self.samples);
    }
}

fn family<'o>(
    out: &'o mut String,
    name: &'static str,
    kind: Kind,
    help: &'static str,
) -> Family<'o> {
    debug_assert!(name.starts_with("netvm_"));
    debug_assert_eq!(kind == Kind::Counter, name.ends_with("_total"), "{name}");
    Family {
        out,
        name,
        kind,
        help,
        samples: String::new(),
    }
}

/// Owned label values (per NF), borrowed into [`Labels`] for output.
fn as_labels<'a>(l: &'a [(&'static str, String)]) -> Labels<'a> {
    l.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// `names` in order, then the keys of `map` that are not among them.
fn with_extra<'a, V>(
    names: impl IntoIterator<Item = &'a str>,
    map: &'a std::collections::BTreeMap<String, V>,
) -> Vec<&'a str> {
    let mut v: Vec<&str> = names.into_iter().collect();
    for k in map.keys() {
        if !v.contains(&k.as_str()) {
            v.push(k);
        }
    }
    v
}

/// Renders `r`, the report of the netvm instance `instance`, in the Prometheus text format.
pub fn render(instance: &str, r: &Report) -> String {
    use Kind::{Counter, Gauge};
    let mut o = String::new();
    let base: Labels<'_> = vec![("instance", instance)];
    let one = |o: &mut String, name, kind, help, v: Val| {
        family(o, name, kind, help).sample(&base, v);
    };

    // The instance as a whole.
    one(
        &mut o,
        "netvm_uptime_seconds",
        Gauge,
        "Seconds since the core started its ports.",
        r.uptime_s.into(),
    );
    one(
        &mut o,
        "netvm_stats_epoch",
        Gauge,
        "Epoch of the core's stats snapshot.",
        r.epoch.into(),
    );
    one(
        &mut o,
        "netvm_stats_consistent",
        Gauge,
        "1 if every worker published the same epoch (the snapshot is one consistent instant).",
        r.consistent.into(),
    );
    one(
        &mut o,
        "netvm_received_packets_total",
        Counter,
        "Packets received on all ports.",
        r.received.into(),
    );
    one(
        &mut o,
        "netvm_transmitted_packets_total",
        Counter,
        "Packets transmitted on all ports.",
        r.transmitted.into(),
    );
    one(
        &mut o,
        "netvm_dropped_packets_total",
        Counter,
        "Packets the core dropped, all reasons (by reason: netvm_dropped_packets_by_reason_total).",
        r.dropped.into(),
    );
    one(
        &mut o,
        "netvm_in_flight_buffers",
        Gauge,
        "Buffers held by NFs now (received - transmitted - dropped).",
        r.in_flight.into(),
    );
    one(
        &mut o,
        "netvm_owned_by_nfs_buffers",
        Gauge,
        "Buffers whose ownership entry names an NF (an independent count of in-flight buffers).",
        r.owned_by_nfs.into(),
    );
    one(
        &mut o,
        "netvm_accounting_ok",
        Gauge,
        "1 if received = transmitted + dropped + in flight and in flight = owned by NFs.",
        r.accounting_ok.into(),
    );
    one(
        &mut o,
        "netvm_domain_copies_total",
        Counter,
        "Packets copied across trust domains.",
        r.domain_copies.into(),
    );
    one(
        &mut o,
        "netvm_flow_cache_hits_total",
        Counter,
        "Flow cache hits of the classifier.",
        r.flow_cache_hits.into(),
    );
    one(
        &mut o,
        "netvm_flow_cache_misses_total",
        Counter,
        "Flow cache misses of the classifier.",
        r.flow_cache_misses.into(),
    );
    one(
        &mut o,
        "netvm_handoffs_total",
        Counter,
        "Frames handed from one worker to another (TX queue owner, RX flow steering).",
        r.handoffs.into(),
    );
    one(
        &mut o,
        "netvm_worker_busy_cycles_total",
        Counter,
        "TSC cycles the workers spent in rounds that moved packets.",
        r.worker_busy_cycles.into(),
    );
    one(
        &mut o,
        "netvm_in_handoff_frames",
        Gauge,
        "Frames on their way between workers now (part of in flight).",
        r.in_handoff.into(),
    );
    one(
        &mut o,
        "netvm_ring_corrupt_total",
        Counter,
        "NF TX rings found with corrupt indices.",
        r.ring_corrupt.into(),
    );
    if let Some(full) = r.pools_full {
        one(
            &mut o,
            "netvm_pools_full",
            Gauge,
            "1 if every domain's buffer pool was full again after shutdown (final report only).",
            full.into(),
        );
    }
    {
        let mut f = family(
            &mut o,
            "netvm_dropped_packets_by_reason_total",
            Counter,
            "Packets the core dropped, by reason.",
        );
        for reason in with_extra(DropReason::ALL.map(DropReason::name), &r.drops) {
            let n = r.drops.get(reason).copied().unwrap_or(0);
            f.sample(&vec![("instance", instance), ("reason", reason)], n);
        }
    }
    {
        let mut f = family(
            &mut o,
            "netvm_chain_packets_total",
            Counter,
            "Packets classified into each chain.",
        );
        for (chain, n) in &r.chains {
            f.sample(&vec![("instance", instance), ("chain", chain)], *n);
        }
    }
    {
        let mut f = family(
            &mut o,
            "netvm_held_at_shutdown_buffers",
            Gauge,
            "Buffers each NF still held when the core stopped, then reclaimed (final report only).",
        );
        for (nf, n) in &r.held_at_shutdown {
            f.sample(&vec![("instance", instance), ("nf", nf)], *n);
        }
    }

    // Per port.
    type PortField = fn(&netvm_api::report::PortReport) -> u64;
    let port_families: [(&'static str, &'static str, PortField); 6] = [
        (
            "netvm_port_received_packets_total",
            "Packets received on the port.",
            |p| p.rx,
        ),
        (
            "netvm_port_received_bytes_total",
            "Bytes received on the port.",
            |p| p.rx_bytes,
        ),
        (
            "netvm_port_transmitted_packets_total",
            "Packets transmitted on the port.",
            |p| p.tx,
        ),
        (
            "netvm_port_transmitted_bytes_total",
            "Bytes transmitted on the port.",
            |p| p.tx_bytes,
        ),
        (
            "netvm_port_device_missed_packets_total",
            "Packets the device dropped because its RX queue was full (DPDK imissed).",
            |p| p.dev_imissed,
        ),
        (
            "netvm_port_device_rx_nombuf_total",
            "RX buffer allocation failures of the device (DPDK rx_nombuf).",
            |p| p.dev_rx_nombuf,
        ),
    ];
    for (name, help, get) in port_families {
        let mut f = family(&mut o, name, Counter, help);
        for p in &r.ports {
            f.sample(&vec![("instance", instance), ("port", &p.name)], get(p));
        }
    }

    // Per NF: every sample carries nf, service and domain.
    let nf_labels = |n: &netvm_api::report::NfReport| -> Vec<(&'static str, String)> {
        vec![
            ("instance", instance.to_string()),
            ("nf", n.name.clone()),
            ("service", n.service.clone()),
            ("domain", n.domain.clone()),
        ]
    };
    let with = |base: &[(&'static str, String)], extra: &[(&'static str, String)]| {
        base.iter().chain(extra).cloned().collect::<Vec<_>>()
    };

    {
        let mut f = family(
            &mut o,
            "netvm_nf_state",
            Gauge,
            "The core's view of the NF: 1 for its current state, 0 for the others.",
        );
        for n in &r.nfs {
            let mut states: Vec<&str> = NF_STATES.to_vec();
            if !states.contains(&n.state.as_str()) {
                states.push(&n.state);
            }
            for s in states {
                let l = with(&nf_labels(n), &[("state", s.to_string())]);
                f.sample(&as_labels(&l), n.state == s);
            }
        }
    }
    {
        let mut f = family(
            &mut o,
            "netvm_nf_quarantine_reason",
            Gauge,
            "Why the core last quarantined the NF: 1 for that reason, 0 for the others (absent if never).",
        );
        for n in &r.nfs {
            let Some(why) = &n.quarantined_for else {
                continue;
            };
            let mut reasons: Vec<&str> = QUARANTINE_REASONS.to_vec();
            if !reasons.contains(&why.as_str()) {
                reasons.push(why);
            }
            for reason in reasons {
                let l = with(&nf_labels(n), &[("reason", reason.to_string())]);
                f.sample(&as_labels(&l), why == reason);
            }
        }
    }
    {
        let mut f = family(
            &mut o,
            "netvm_nf_verdicts_total",
            Counter,
            "Packets the NF returned, by verdict (next, service, out, drop).",
        );
        for n in &r.nfs {
            for (i, v) in VERDICTS.iter().enumerate() {
                let l = with(&nf_labels(n), &[("verdict", v.to_string())]);
                f.sample(&as_labels(&l), n.verdicts[i]);
            }
        }
    }
    {
        let mut f = family(
            &mut o,
            "netvm_nf_rejected_descriptors_total",
            Counter,
            "Descriptors the NF returned that the core rejected, by reason.",
        );
        for n in &r.nfs {
            for reason in with_extra(RejectReason::ALL.map(RejectReason::name), &n.rejects) {
                let l = with(&nf_labels(n), &[("reason", reason.to_string())]);
                f.sample(&as_labels(&l), n.rejects.get(reason).copied().unwrap_or(0));
            }
        }
    }
    type NfField = fn(&netvm_api::report::NfReport) -> Val;
    let nf_families: [(&'static str, Kind, &'static str, NfField); 8] = [
        (
            "netvm_nf_pid",
            Gauge,
            "Process id the NF wrote into its slot.",
            |n| n.pid.into(),
        ),
        (
            "netvm_nf_delivered_packets_total",
            Counter,
            "Packets delivered to the NF.",
            |n| n.delivered.into(),
        ),
        (
            "netvm_nf_returned_packets_total",
            Counter,
            "Packets taken back from the NF.",
            |n| n.returned.into(),
        ),
        (
            "netvm_nf_held_buffers",
            Gauge,
            "Buffers the NF holds now.",
            |n| n.held.into(),
        ),
        (
            "netvm_nf_reclaimed_buffers_total",
            Counter,
            "Buffers the core took back from the NF because it detached, died or was quarantined.",
            |n| n.reclaimed.into(),
        ),
        (
            "netvm_nf_rx_ring_occupancy",
            Gauge,
            "Packets delivered to the NF's RX rings and not yet consumed (the saturation signal).",
            |n| n.rx_ring_occupancy.into(),
        ),
        (
            "netvm_nf_buffer_quota",
            Gauge,
            "Most buffers the NF may hold at once.",
            |n| n.quota.into(),
        ),
        (
            "netvm_nf_quota_drops_total",
            Counter,
            "Deliveries dropped because the NF held its whole buffer quota.",
            |n| n.quota_drops.into(),
        ),
    ];
    for (name, kind, help, get) in nf_families {
        let mut f = family(&mut o, name, kind, help);
        for n in &r.nfs {
            f.sample(&as_labels(&nf_labels(n)), get(n));
        }
    }

    // Per worker: index, CPU and polling mode.
    type WorkerField = fn(&netvm_api::report::WorkerReport) -> Val;
    let worker_families: [(&'static str, &'static str, WorkerField); 2] = [
        (
            "netvm_worker_sleeps_total",
            "Sleeps the worker took because it found nothing to do (adaptive polling).",
            |w| w.sleeps.into(),
        ),
        (
            "netvm_worker_slept_seconds_total",
            "Seconds the worker spent in those sleeps.",
            |w| (w.slept_ns as f64 / 1e9).into(),
        ),
    ];
    for (name, help, get) in worker_families {
        let mut f = family(&mut o, name, Counter, help);
        for (i, w) in r.workers.iter().enumerate() {
            let (idx, cpu) = (i.to_string(), w.cpu.to_string());
            let l: Labels<'_> = vec![
                ("instance", instance),
                ("worker", &idx),
                ("cpu", &cpu),
                ("poll", &w.poll),
            ];
            f.sample(&l, get(w));
        }
    }
    let path_labels = |p: &netvm_api::report::PathReport| {
        vec![
            ("instance", instance.to_string()),
            ("path_id", p.path_id.to_string()),
            ("chain", p.chain.clone()),
        ]
    };
    {
        let mut f = family(
            &mut o,
            "netvm_path_encapsulated_packets_total",
            Counter,
            "Packets sent to a peer instance with this service path's NSH.",
        );
        for p in &r.paths {
            f.sample(&as_labels(&path_labels(p)), p.encapsulated);
        }
    }
    {
        let mut f = family(
            &mut o,
            "netvm_path_decapsulated_packets_total",
            Counter,
            "Packets that arrived with this service path's NSH and resumed the chain here.",
        );
        for p in &r.paths {
            f.sample(&as_labels(&path_labels(p)), p.decapsulated);
        }
    }
    {
        let mut f = family(
            &mut o,
            "netvm_nsh_dropped_packets_total",
            Counter,
            "NSH frames dropped, by reason (bad header, unknown path, TTL, service index, headroom).",
        );
        for reason in with_extra(
            netvm_api::report::NshDrop::ALL.map(netvm_api::report::NshDrop::name),
            &r.nsh_drops,
        ) {
            let l = [
                ("instance", instance.to_string()),
                ("reason", reason.to_string()),
            ];
            f.sample(
                &as_labels(&l),
                r.nsh_drops.get(reason).copied().unwrap_or(0),
            );
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use netvm_api::report::{NfReport, PortReport};

    use super::*;

    fn sample() -> Report {
        Report {
            epoch: 9,
            consistent: true,
            uptime_s: 2.5,
            received: 100,
            transmitted: 60,
            dropped: 38,
            in_flight: 2,
            in_handoff: 0,
            handoffs: 5,
            worker_busy_cycles: 0,
            worker_cycles_per_packet: None,
            owned_by_nfs: 2,
            accounting_ok: true,
            drops: [
                ("nf_verdict_drop".to_string(), 30),
                ("ring_full".to_string(), 8),
                ("from_the_future".to_string(), 0),
            ]
            .into(),
            ports: vec![
                PortReport {
                    name: "in".into(),
                    rx: 100,
                    rx_bytes: 6400,
                    dev_imissed: 3,
                    dev_rx_nombuf: 4,
                    ..PortReport::default()
                },
                PortReport {
                    name: "out".into(),
                    tx: 60,
                    tx_bytes: 3840,
                    ..PortReport::default()
                },
            ],
            nfs: vec![
                NfReport {
                    name: "fw\"1\\\n".into(),
                    service: "firewall".into(),
                    domain: "edge".into(),
                    state: "attached".into(),
                    pid: 42,
                    delivered: 92,
                    returned: 90,
                    held: 2,
                    verdicts: [60, 0, 0, 30],
                    rejects: [("bad_index".to_string(), 5)].into(),
                    rx_ring_occupancy: 7,
                    quota: 512,
                    quota_drops: 1,
                    ..NfReport::default()
                },
                NfReport {
                    name: "rt1".into(),
                    service: "router".into(),
                    domain: "core".into(),
                    state: "quarantined".into(),
                    held: -1,
                    reclaimed: 11,
                    quarantined_for: Some("hoarding".into()),
                    ..NfReport::default()
                },
            ],
            chains: [("inbound".to_string(), 92)].into(),
            domain_copies: 60,
            flow_cache_hits: 80,
            flow_cache_misses: 20,
            ring_corrupt: 1,
            held_at_shutdown: [("rt1".to_string(), 3)].into(),
            pools_full: Some(false),
            workers: vec![netvm_api::report::WorkerReport {
                cpu: 1,
                poll: "adaptive".into(),
                sleeps: 7,
                slept_ns: 1_500_000_000,
            }],
            paths: vec![netvm_api::report::PathReport {
                path_id: 7,
                chain: "inbound".into(),
                encapsulated: 50,
                decapsulated: 4,
                drops: [("bad_si".to_string(), 1)].into(),
            }],
            nsh_drops: [("bad_si".to_string(), 1), ("unknown_path".into(), 2)].into(),
        }
    }

    /// `(series, value)` pairs.
    type Samples = Vec<(String, String)>;

    /// Families in order, their types, and the samples; checks that each family is declared
    /// once, HELP before TYPE before its samples, and every sample belongs to the family
    /// declared last.
    fn parse(text: &str) -> (Vec<String>, BTreeMap<String, String>, Samples) {
        let mut order = Vec::new();
        let mut types = BTreeMap::new();
        let mut samples = Vec::new();
        let mut current: Option<String> = None;
        let mut helped = BTreeSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').unwrap();
                assert!(!help.is_empty(), "{line}");
                assert!(helped.insert(name.to_string()), "HELP twice: {name}");
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, t) = rest.split_once(' ').unwrap();
                assert!(helped.contains(name), "TYPE before HELP: {name}");
                assert!(
                    types.insert(name.to_string(), t.to_string()).is_none(),
                    "TYPE twice: {name}"
                );
                order.push(name.to_string());
                current = Some(name.to_string());
            } else {
                assert!(!line.starts_with('#'), "{line}");
                let name_end = line.find(['{', ' ']).unwrap();
                let name = &line[..name_end];
                assert_eq!(Some(name), current.as_deref(), "sample out of its family");
                let value = line.rsplit_once(' ').unwrap().1;
                samples.push((
                    line[..line.len() - value.len() - 1].to_string(),
                    value.into(),
                ));
            }
        }
        (order, types, samples)
    }

    fn value(samples: &[(String, String)], series: &str) -> String {
        samples
            .iter()
            .find(|(s, _)| s == series)
            .unwrap_or_else(|| panic!("no series {series}"))
            .1
            .clone()
    }

    #[test]
    fn every_family_once_with_conventional_names() {
        let text = render("demo", &sample());
        assert!(text.ends_with('\n'));
        let (order, types, samples) = parse(&text);
        let expected = [
            ("netvm_uptime_seconds", "gauge"),
            ("netvm_stats_epoch", "gauge"),
            ("netvm_stats_consistent", "gauge"),
            ("netvm_received_packets_total", "counter"),
            ("netvm_transmitted_packets_total", "counter"),
            ("netvm_dropped_packets_total", "counter"),
            ("netvm_in_flight_buffers", "gauge"),
            ("netvm_owned_by_nfs_buffers", "gauge"),
            ("netvm_accounting_ok", "gauge"),
            ("netvm_domain_copies_total", "counter"),
            ("netvm_flow_cache_hits_total", "counter"),
            ("netvm_flow_cache_misses_total", "counter"),
            ("netvm_handoffs_total", "counter"),
            ("netvm_worker_busy_cycles_total", "counter"),
            ("netvm_in_handoff_frames", "gauge"),
            ("netvm_ring_corrupt_total", "counter"),
            ("netvm_pools_full", "gauge"),
            ("netvm_dropped_packets_by_reason_total", "counter"),
            ("netvm_chain_packets_total", "counter"),
            ("netvm_held_at_shutdown_buffers", "gauge"),
            ("netvm_port_received_packets_total", "counter"),
            ("netvm_port_received_bytes_total", "counter"),
            ("netvm_port_transmitted_packets_total", "counter"),
            ("netvm_port_transmitted_bytes_total", "counter"),
            ("netvm_port_device_missed_packets_total", "counter"),
            ("netvm_port_device_rx_nombuf_total", "counter"),
            ("netvm_nf_state", "gauge"),
            ("netvm_nf_quarantine_reason", "gauge"),
            ("netvm_nf_verdicts_total", "counter"),
            ("netvm_nf_rejected_descriptors_total", "counter"),
            ("netvm_nf_pid", "gauge"),
            ("netvm_nf_delivered_packets_total", "counter"),
            ("netvm_nf_returned_packets_total", "counter"),
            ("netvm_nf_held_buffers", "gauge"),
            ("netvm_nf_reclaimed_buffers_total", "counter"),
            ("netvm_nf_rx_ring_occupancy", "gauge"),
            ("netvm_nf_buffer_quota", "gauge"),
            ("netvm_nf_quota_drops_total", "counter"),
            ("netvm_worker_sleeps_total", "counter"),
            ("netvm_worker_slept_seconds_total", "counter"),
            ("netvm_path_encapsulated_packets_total", "counter"),
            ("netvm_path_decapsulated_packets_total", "counter"),
            ("netvm_nsh_dropped_packets_total", "counter"),
        ];
        assert_eq!(
            order,
            expected
                .iter()
                .map(|(n, _)| n.to_string())
                .collect::<Vec<_>>()
        );
        for (name, t) in expected {
            assert_eq!(types[name], t, "{name}");
            assert_eq!(t == "counter", name.ends_with("_total"), "{name}");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{name}"
            );
        }
        // Every sample names the instance first.
        for (series, _) in &samples {
            assert!(series.contains("{instance=\"demo\""), "{series}");
        }
        assert_eq!(
            value(
                &samples,
                "netvm_transmitted_packets_total{instance=\"demo\"}"
            ),
            "60"
        );
        assert_eq!(
            value(&samples, "netvm_uptime_seconds{instance=\"demo\"}"),
            "2.5"
        );
        assert_eq!(value(&samples, "netvm_pools_full{instance=\"demo\"}"), "0");
        assert_eq!(
            value(
                &samples,
                "netvm_port_device_rx_nombuf_total{instance=\"demo\",port=\"in\"}"
            ),
            "4"
        );
        assert_eq!(
            value(
                &samples,
                "netvm_chain_packets_total{instance=\"demo\",chain=\"inbound\"}"
            ),
            "92"
        );
        assert_eq!(
            value(
                &samples,
                "netvm_held_at_shutdown_buffers{instance=\"demo\",nf=\"rt1\"}"
            ),
            "3"
        );
        let w = "instance=\"demo\",worker=\"0\",cpu=\"1\",poll=\"adaptive\"";
        assert_eq!(
            value(&samples, &format!("netvm_worker_sleeps_total{{{w}}}")),
            "7"
        );
        assert_eq!(
            value(
                &samples,
                &format!("netvm_worker_slept_seconds_total{{{w}}}")
            ),
            "1.5"
        );
    }

    #[test]
    fn reasons_states_and_verdicts_are_labelled() {
        let (_, _, samples) = parse(&render("demo", &sample()));
        let rt = "instance=\"demo\",nf=\"rt1\",service=\"router\",domain=\"core\"";
        // Every known drop reason, zero when absent; an unknown one as it came.
        for r in DropReason::ALL {
            let v = value(
                &samples,
                &format!(
                    "netvm_dropped_packets_by_reason_total{{instance=\"demo\",reason=\"{}\"}}",
                    r.name()
                ),
            );
            let want = match r {
                DropReason::NfVerdict => "30",
                DropReason::RingFull => "8",
                _ => "0",
            };
            assert_eq!(v, want, "{}", r.name());
        }
        value(
            &samples,
            "netvm_dropped_packets_by_reason_total{instance=\"demo\",reason=\"from_the_future\"}",
        );
        // The state set: exactly one 1 per NF.
        for s in NF_STATES {
            let v = value(&samples, &format!("netvm_nf_state{{{rt},state=\"{s}\"}}"));
            assert_eq!(v, if s == "quarantined" { "1" } else { "0" }, "{s}");
        }
        assert_eq!(
            value(
                &samples,
                &format!("netvm_nf_quarantine_reason{{{rt},reason=\"hoarding\"}}")
            ),
            "1"
        );
        assert_eq!(
            value(
                &samples,
                &format!("netvm_nf_quarantine_reason{{{rt},reason=\"rejects\"}}")
            ),
            "0"
        );
        assert_eq!(
            samples
                .iter()
                .filter(|(s, _)| s.starts_with("netvm_nf_quarantine_reason{"))
                .count(),
            QUARANTINE_REASONS.len(),
            "only the NF that was quarantined"
        );
        assert_eq!(
            value(&samples, &format!("netvm_nf_held_buffers{{{rt}}}")),
            "-1"
        );
        assert_eq!(
            value(
                &samples,
                &format!("netvm_nf_reclaimed_buffers_total{{{rt}}}")
            ),
            "11"
        );
        // Verdicts and rejects of the NF with the awkward name.
        let fw = "instance=\"demo\",nf=\"fw\\\"1\\\\\\n\",service=\"firewall\",domain=\"edge\"";
        for (v, n) in VERDICTS.iter().zip(["60", "0", "0", "30"]) {
            assert_eq!(
                value(
                    &samples,
                    &format!("netvm_nf_verdicts_total{{{fw},verdict=\"{v}\"}}")
                ),
                n
            );
        }
        for r in RejectReason::ALL {
            let v = value(
                &samples,
                &format!(
                    "netvm_nf_rejected_descriptors_total{{{fw},reason=\"{}\"}}",
                    r.name()
                ),
            );
            assert_eq!(
                v,
                if r == RejectReason::BadIndex {
                    "5"
                } else {
                    "0"
                }
            );
        }
        for (f, v) in [
            ("netvm_nf_rx_ring_occupancy", "7"),
            ("netvm_nf_buffer_quota", "512"),
            ("netvm_nf_quota_drops_total", "1"),
            ("netvm_nf_pid", "42"),
            ("netvm_nf_delivered_packets_total", "92"),
            ("netvm_nf_returned_packets_total", "90"),
        ] {
            assert_eq!(value(&samples, &format!("{f}{{{fw}}}")), v, "{f}");
        }
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        assert_eq!(escape_label_value(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_label_value("x\ny"), "x\\ny");
        assert_eq!(escape_label_value("plain-é"), "plain-é");
        assert_eq!(escape_help("a\\b\nc"), "a\\\\b\\nc");
        // The instance name too; no raw line feed ever reaches the output.
        let text = render("we\"ird\n", &sample());
        assert!(text.contains("{instance=\"we\\\"ird\\n\"}"), "{text}");
        assert_eq!(text.lines().filter(|l| l.is_empty()).count(), 0);
    }

    #[test]
    fn empty_families_are_left_out() {
        let r = Report::default();
        let text = render("x", &r);
        let (order, _, _) = parse(&text);
        assert!(order.contains(&"netvm_transmitted_packets_total".to_string()));
        // All drop reasons are known even without drops.
        assert!(order.contains(&"netvm_dropped_packets_by_reason_total".to_string()));
        for absent in [
            "netvm_pools_full",
            "netvm_chain_packets_total",
            "netvm_held_at_shutdown_buffers",
            "netvm_port_received_packets_total",
            "netvm_nf_state",
            "netvm_nf_quarantine_reason",
            "netvm_worker_sleeps_total",
        ] {
            assert!(!order.contains(&absent.to_string()), "{absent}");
        }
    }

    #[test]
    fn special_floats() {
        assert_eq!(Val::F(f64::NAN).to_string(), "NaN");
        assert_eq!(Val::F(f64::INFINITY).to_string(), "+Inf");
        assert_eq!(Val::F(f64::NEG_INFINITY).to_string(), "-Inf");
        assert_eq!(Val::F(0.25).to_string(), "0.25");
        assert_eq!(Val::I(-3).to_string(), "-3");
    }
}
