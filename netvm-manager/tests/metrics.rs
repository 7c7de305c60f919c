//! `metrics` with real processes: the exposition checked by `promtool check metrics`, and a real
//! Prometheus server (Debian package `prometheus`, started here on loopback with its own config
//! and data directory, stopped by pid) scraping `netvm-manager metrics` in front of a running
//! instance; its HTTP API must report the core's transmitted counter exactly. The instance reads
//! a finite pcap, so once every packet is accounted for its counters no longer move and the
//! comparison is exact.
//!
//! Missing `prometheus` or `promtool` binaries fail these tests with the fix; they never skip.

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use netvm_api::report::{NfReport, PortReport, Report, WorkerReport};
use serde_json::Value;

use common::*;

/// `name` on PATH, or a failure that says how to get it.
fn require_tool(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} not found on PATH: install the Debian package `prometheus` \
                 (scripts/setup.sh does)"
            )
        })
}

/// Runs `promtool check metrics` on `text`; panics with its complaints unless it passes
/// without any.
fn promtool_check(text: &str) {
    let mut c = Command::new(require_tool("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start promtool");
    c.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let o = c.wait_with_output().unwrap();
    let (out, err) = texts(&o);
    assert!(
        o.status.success() && out.trim().is_empty() && err.trim().is_empty(),
        "promtool check metrics: {:?}\n{out}{err}\non:\n{text}",
        o.status
    );
}

/// A plain HTTP/1.0 GET (no chunked answers); returns (status line, headers, body).
fn http_get(addr: &str, path: &str) -> std::io::Result<(String, String, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    Ok((status.to_string(), headers.to_string(), body.to_string()))
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A free loopback port (bound, read, released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A process started by a test: SIGTERM on drop, SIGKILL if it lingers.
struct Proc {
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    fn spawn(program: &Path, args: &[&str], log: PathBuf) -> Self {
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(log.with_extension("err")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
        Self {
            child: Some(child),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
            + &std::fs::read_to_string(self.log.with_extension("err")).unwrap_or_default()
    }

    fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGTERM, then its exit code.
    fn stop(&mut self, timeout: Duration) -> Option<i32> {
        let c = self.child.as_mut()?;
        let pid = libc::pid_t::try_from(c.id()).unwrap();
        // SAFETY: signalling our own unreaped child by pid.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let end = Instant::now() + timeout;
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                self.child = None;
                return st.code();
            }
            if Instant::now() >= end {
                let _ = c.kill();
                let _ = c.wait();
                self.child = None;
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(20));
    }
}

/// A report in which every family has samples (quarantine, shutdown leftovers, pools).
fn full_report() -> Report {
    Report {
        epoch: 4,
        consistent: true,
        uptime_s: 12.25,
        received: 1000,
        transmitted: 700,
        dropped: 290,
        in_flight: 10,
        in_handoff: 0,
        handoffs: 0,
        worker_busy_cycles: 0,
        worker_cycles_per_packet: None,
        owned_by_nfs: 10,
        accounting_ok: true,
        drops: [("nf_verdict_drop".to_string(), 250), ("tx_full".into(), 40)].into(),
        ports: vec![
            PortReport {
                name: "in".into(),
                rx: 1000,
                rx_bytes: 64000,
                ..PortReport::default()
            },
            PortReport {
                name: "out \"x\"".into(),
                tx: 700,
                tx_bytes: 44800,
                dev_imissed: 1,
                dev_rx_nombuf: 2,
                ..PortReport::default()
            },
        ],
        nfs: vec![
            NfReport {
                name: "fw1".into(),
                service: "firewall".into(),
                domain: "edge".into(),
                state: "attached".into(),
                pid: 7,
                delivered: 990,
                returned: 980,
                held: 10,
                verdicts: [730, 0, 0, 250],
                rejects: [("not_owner".to_string(), 3)].into(),
                rx_ring_occupancy: 9,
                quota: 1024,
                ..NfReport::default()
            },
            NfReport {
                name: "bad\\one".into(),
                service: "router".into(),
                domain: "core".into(),
                state: "quarantined".into(),
                reclaimed: 5,
                quota_drops: 6,
                quarantined_for: Some("rejects".into()),
                ..NfReport::default()
            },
        ],
        chains: [("inbound".to_string(), 990)].into(),
        domain_copies: 700,
        flow_cache_hits: 900,
        flow_cache_misses: 100,
        ring_corrupt: 1,
        held_at_shutdown: [("fw1".to_string(), 10)].into(),
        pools_full: Some(true),
        workers: vec![WorkerReport {
            cpu: 1,
            poll: "adaptive".into(),
            sleeps: 40,
            slept_ns: 9_000_000,
        }],
        paths: vec![netvm_api::report::PathReport {
            path_id: 42,
            chain: "inbound".into(),
            encapsulated: 700,
            decapsulated: 3,
            drops: [("ttl_expired".to_string(), 2)].into(),
        }],
        nsh_drops: [("ttl_expired".to_string(), 2), ("bad_version".into(), 1)].into(),
    }
}

#[test]
fn every_family_passes_promtool() {
    let text = netvm_manager::metrics::render("demo \"1\"\n", &full_report());
    promtool_check(&text);
    // And a report with nothing in it.
    promtool_check(&netvm_manager::metrics::render("x", &Report::default()));
}

/// The demo's NFs and rules on a finite pcap of `flows` x `per_flow` packets.
fn finite_config(dir: &Scratch, pcap: &Path) -> String {
    let worker = std::thread::available_parallelism().map_or(1, usize::from) - 1;
    let ex = root().join("examples");
    let v = serde_json::json!({
        "name": dir.name(),
        "run_dir": dir.path("run"),
        "workers": [{"cpu": worker}],
        "domains": [{"name": "edge", "buffers": 4096}, {"name": "core", "buffers": 4096}],
        "ports": [
            {"name": "in", "device": format!("net_pcap0,rx_pcap={}", pcap.display()), "domain": "edge"},
            {"name": "out", "device": "net_null0,no-rx=1", "domain": "core"}
        ],
        "nfs": [
            {"name": "fw1", "service": "firewall", "domain": "edge", "program": "firewall",
             "args": ["--rules", ex.join("demo-fw.rules")], "cpu": 0},
            {"name": "rt1", "service": "router", "domain": "core", "program": "l3fwd",
             "args": ["--routes", ex.join("demo.routes")], "cpu": 0}
        ],
        "chains": [{"name": "inbound", "match": {"in_port": "in", "ethertype": 2048},
                    "services": ["firewall", "router"], "egress": "out"}],
    });
    let f = dir.path("config.json");
    std::fs::write(&f, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    f.display().to_string()
}

fn stats_json(rd: &str) -> Option<Value> {
    let o = run(&["stats", "--run-dir", rd, "--json"]);
    serde_json::from_slice(&o.stdout).ok()
}

/// The value of the only series an instant query over Prometheus's HTTP API returns.
fn prom_query(prom: &str, q: &str) -> Option<String> {
    let (status, _, body) =
        http_get(prom, &format!("/api/v1/query?query={}", url_encode(q))).ok()?;
    if !status.contains(" 200 ") {
        return None;
    }
    let v: Value = serde_json::from_str(&body).ok()?;
    let res = v["data"]["result"].as_array()?;
    match res.len() {
        0 => None,
        1 => res[0]["value"][1].as_str().map(str::to_string),
        _ => panic!("{q}: several series: {body}"),
    }
}

#[test]
fn prometheus_scrapes_the_cores_transmitted_counter() {
    let prometheus = require_tool("prometheus");
    require_tool("promtool");
    require_built(&["netvm-core", "firewall", "l3fwd"]);
    let dir = Scratch::new("metrics");
    let pcap = dir.path("in.pcap");
    let (flows, per_flow) = (32u64, 16u64);
    let o = run(&[
        "gen-pcap",
        pcap.to_str().unwrap(),
        "--flows",
        &flows.to_string(),
        "--packets-per-flow",
        &per_flow.to_string(),
    ]);
    assert!(o.status.success(), "gen-pcap: {:?}", texts(&o));
    let cfg = finite_config(&dir, &pcap);
    let rd = dir.path("run").display().to_string();
    let name = dir.name();

    // Not running yet: one line, exit 1.
    let o = run(&["metrics", "--run-dir", &rd, "--listen", "127.0.0.1:0"]);
    let (_, err) = texts(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("netvm-manager: no running instance: "),
        "{err}"
    );

    let mut m = ManagerProc::spawn(&["up", &cfg, "--no-progress"], &dir);
    // Every packet of the pcap received and none left in flight: the counters are final.
    let total = flows * per_flow;
    let core = poll("the pcap to be consumed", Duration::from_secs(120), || {
        assert!(m.running(), "up exited early: {:?}", m.output());
        let v = stats_json(&rd)?;
        (v["received"].as_u64()? == total && v["in_flight"].as_i64()? == 0).then_some(v)
    });
    let tx = core["transmitted"].as_u64().unwrap();
    assert!(tx > 0, "nothing transmitted: {core:#}");
    assert!(
        core["dropped"].as_u64().unwrap() > 0,
        "the firewall denied nothing: {core:#}"
    );

    // A port that is taken: one line, exit 1.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    let o = run(&["metrics", "--run-dir", &rd, "--listen", &taken_addr]);
    let (_, err) = texts(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(
        err.trim_end(),
        format!(
            "netvm-manager: cannot listen on {taken_addr}: Address already in use (os error 98)"
        )
    );
    drop(taken);

    // The exporter on a free port; the address it took is on its stderr.
    let mut exporter = Proc::spawn(
        &manager(),
        &["metrics", "--run-dir", &rd, "--listen", "127.0.0.1:0"],
        dir.path("exporter.log"),
    );
    let addr = poll("the exporter to listen", Duration::from_secs(20), || {
        assert!(exporter.running(), "exporter exited: {}", exporter.log());
        let log = exporter.log();
        let line = log.lines().find(|l| l.contains("serving metrics of"))?;
        let url = line.split("http://").nth(1)?;
        Some(url.trim_end_matches("/metrics").to_string())
    });
    let (status, headers, body) = http_get(&addr, "/metrics").unwrap();
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    assert!(
        headers.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"),
        "{headers}"
    );
    assert!(
        body.contains(&format!(
            "\nnetvm_transmitted_packets_total{{instance=\"{name}\"}} {tx}\n"
        )),
        "{body}"
    );
    for family in [
        "netvm_port_transmitted_packets_total",
        "netvm_nf_verdicts_total",
        "netvm_nf_state",
        "netvm_chain_packets_total",
        "netvm_dropped_packets_by_reason_total",
        "netvm_domain_copies_total",
        "netvm_nf_rx_ring_occupancy",
        "netvm_worker_sleeps_total",
    ] {
        assert!(
            body.contains(&format!("# TYPE {family} ")),
            "{family}:\n{body}"
        );
    }
    promtool_check(&body);
    let (status, _, _) = http_get(&addr, "/").unwrap();
    assert!(status.starts_with("HTTP/1.1 404 "), "{status}");

    // A real Prometheus on loopback, its own config and data, scraping every second.
    let yml = dir.path("prometheus.yml");
    std::fs::write(
        &yml,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: netvm\n    honor_labels: true\n    \
             static_configs:\n      - targets: ['{addr}']\n"
        ),
    )
    .unwrap();
    let data = dir.path("prometheus-data");
    // The free port may be taken between our probe and its bind: then it exits, and we try
    // another.
    let (mut prom, prom_addr) = (0..3)
        .find_map(|attempt| {
            let addr = format!("127.0.0.1:{}", free_port());
            let mut p = Proc::spawn(
                &prometheus,
                &[
                    &format!("--config.file={}", yml.display()),
                    &format!("--storage.tsdb.path={}", data.display()),
                    &format!("--web.listen-address={addr}"),
                ],
                dir.path(&format!("prometheus-{attempt}.log")),
            );
            let ready = poll("Prometheus to be ready", Duration::from_secs(60), || {
                if !p.running() {
                    return Some(false);
                }
                let (status, _, _) = http_get(&addr, "/-/ready").ok()?;
                status.contains(" 200 ").then_some(true)
            });
            if !ready {
                println!("NOTE: prometheus on {addr} exited:\n{}", p.log());
            }
            ready.then_some((p, addr))
        })
        .expect("prometheus did not start in 3 attempts (see the NOTEs above)");
    let q = format!("netvm_transmitted_packets_total{{instance=\"{name}\",job=\"netvm\"}}");
    let scraped = poll(
        "Prometheus to scrape the exporter",
        Duration::from_secs(90),
        || {
            assert!(prom.running(), "prometheus exited:\n{}", prom.log());
            prom_query(&prom_addr, &q)
        },
    );
    assert_eq!(scraped, tx.to_string(), "Prometheus vs the core");
    // The same figure per port, and the scrape itself healthy.
    let out_tx = core["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "out")
        .unwrap()["tx"]
        .as_u64()
        .unwrap();
    assert_eq!(out_tx, tx);
    let port_q =
        format!("netvm_port_transmitted_packets_total{{instance=\"{name}\",port=\"out\"}}");
    assert_eq!(
        poll("the port series", Duration::from_secs(10), || prom_query(
            &prom_addr, &port_q
        )),
        tx.to_string()
    );
    assert_eq!(
        prom_query(&prom_addr, "up{job=\"netvm\"}").as_deref(),
        Some("1")
    );
    // Still the core's figure now: nothing moved while Prometheus scraped.
    assert_eq!(stats_json(&rd).unwrap()["transmitted"].as_u64(), Some(tx));

    assert_eq!(
        prom.stop(Duration::from_secs(30)),
        Some(0),
        "{}",
        prom.log()
    );
    // SIGTERM stops the exporter cleanly.
    assert_eq!(
        exporter.stop(Duration::from_secs(10)),
        Some(0),
        "{}",
        exporter.log()
    );
    assert!(
        exporter.log().contains("stopped serving metrics"),
        "{}",
        exporter.log()
    );

    let o = run(&["down", "--run-dir", &rd]);
    assert!(o.status.success(), "down: {:?}", texts(&o));
    let code = m.wait(Duration::from_secs(120));
    let (out, err) = m.output();
    assert_eq!(code, Some(0), "stdout:\n{out}\nstderr:\n{err}");
    assert_clean(&err, &dir.path("run"));
}
