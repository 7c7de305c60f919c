//! Trust domains with a real QEMU guest: a guest NF in domain `untrusted` is given only that
//! domain's region and its own control region (two ivshmem BARs, nothing else of the host's
//! memory). Traffic of domain
//! `trusted` carries one marker, traffic routed to the guest another. Inside the guest,
//! `vm-bar-scan` scans every byte of its BAR: the trusted marker is never there, while the
//! packets routed to it arrive (as copies: the core counts the domain crossings). On the host
//! the trusted marker is present in the trusted region, so its absence in the guest means
//! something.
//!
//! Also: teardown stops only what the manager started and leaves no QEMU behind, even when
//! the test body fails.

use std::time::Duration;

use netvm_tests::traffic::{self, ipv4_header_checksum};
use netvm_tests::vm::{qemu_pids_mentioning, ManagedRun};
use netvm_tests::{eal_section, worker_cpu, Proc, Scratch};

const TRUSTED_MARK: &str = "TRUSTED-ONLY-7f3a9c1e5b";
const GUEST_MARK: &str = "GUEST-OK-2d8e4f6a0c";

/// An Ethernet/IPv4/UDP frame to `dst` whose payload repeats `mark`.
fn frame(dst: [u8; 4], sport: u16, mark: &str) -> Vec<u8> {
    let payload: Vec<u8> = mark.bytes().chain(*b"|").cycle().take(96).collect();
    let ip_len = 20 + 8 + payload.len();
    let mut f = vec![0u8; 14 + ip_len];
    f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&u16::try_from(ip_len).unwrap().to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
    ip[16..20].copy_from_slice(&dst);
    let c = ipv4_header_checksum(ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f[34..36].copy_from_slice(&sport.to_be_bytes());
    f[36..38].copy_from_slice(&9u16.to_be_bytes());
    f[38..40].copy_from_slice(&u16::try_from(8 + payload.len()).unwrap().to_be_bytes());
    f[42..].copy_from_slice(&payload);
    f
}

fn count(hay: &[u8], needle: &str) -> usize {
    hay.windows(needle.len())
        .filter(|w| *w == needle.as_bytes())
        .count()
}

/// The numbers of the last `vm-bar-scan:` scan line in `log`:
/// (packets, expect-in-packets, scanned bytes, expect-hits, forbid-hits).
fn last_scan(log: &str) -> Option<(u64, u64, u64, u64, u64)> {
    let l = log
        .lines()
        .rev()
        .find(|l| l.contains("vm-bar-scan: packets"))?;
    let nums: Vec<u64> = l
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect();
    match nums.as_slice() {
        [p, e, b, eh, fh] => Some((*p, *e, *b, *eh, *fh)),
        _ => None,
    }
}

#[test]
fn untrusted_guest_sees_only_its_domain() {
    let dir = Scratch::new("vm-iso");
    let mut frames = Vec::new();
    for k in 0..40u16 {
        frames.push(frame([10, 9, 0, 1], 1000 + k, TRUSTED_MARK));
        if k % 2 == 0 {
            frames.push(frame([10, 8, 0, 1], 2000 + k, GUEST_MARK));
        }
    }
    let n_trusted = 40u64;
    let n_guest = 20u64;
    let input = dir.path("in.pcap");
    let output = dir.path("out.pcap");
    traffic::write_pcap(&input, &frames);
    let cfg = serde_json::json!({
        "name": "vmiso",
        "workers": [{"cpu": worker_cpu()}],
        "eal": eal_section(),
        "domains": [{"name": "trusted", "buffers": 4096}, {"name": "untrusted", "buffers": 1024}],
        "ports": [
            {"name": "in", "device": format!("net_pcap0,rx_pcap={}", input.display()), "domain": "trusted"},
            {"name": "out", "device": format!("net_pcap1,tx_pcap={}", output.display()), "domain": "trusted"}
        ],
        "nfs": [
            {"name": "scan", "service": "scan", "kind": "vm", "domain": "untrusted",
             "program": "vm-bar-scan", "args": ["--expect", GUEST_MARK, "--forbid", TRUSTED_MARK]}
        ],
        "chains": [
            {"name": "to-guest", "match": {"dst": "10.8.0.0/16"}, "services": ["scan"], "egress": "out"},
            {"name": "trusted", "match": {"dst": "10.9.0.0/16"}, "services": [], "egress": "out"}
        ]
    });
    let mut run = ManagedRun::start(cfg, dir);
    run.wait_running(Duration::from_secs(300));
    let status = run.ctl("status").expect("status");
    let region = |d: &str| {
        status["regions"]
            .as_array()
            .and_then(|a| a.iter().find(|r| r["domain"] == d))
            .and_then(|r| r["path"].as_str())
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| panic!("no region for {d}: {status:#}"))
    };
    let (trusted, untrusted) = (region("trusted"), region("untrusted"));
    // QEMU was given exactly two shared memory backends: the untrusted domain's region and the
    // NF's own control region (next to it).
    let run_dir = run.run_dir.display().to_string();
    let pids = qemu_pids_mentioning(&run_dir);
    assert_eq!(pids.len(), 1, "one QEMU for the one VM NF");
    let cmd = std::fs::read(format!("/proc/{}/cmdline", pids[0])).expect("cmdline");
    let args: Vec<String> = cmd
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let backends: Vec<&String> = args
        .iter()
        .filter(|a| a.starts_with("memory-backend"))
        .collect();
    assert_eq!(backends.len(), 2, "{args:?}");
    assert!(
        backends[0].contains(&format!("mem-path={},", untrusted.display()))
            && backends[0].contains("share=on"),
        "{args:?}"
    );
    let ctl = netvm_shm::control_path(&untrusted, "scan");
    assert!(
        backends[1].contains(&format!("mem-path={},", ctl.display()))
            && backends[1].contains("share=on"),
        "{args:?}"
    );
    assert!(!args
        .iter()
        .any(|a| a.contains(&trusted.display().to_string())));

    let total = n_trusted + n_guest;
    let st = run.wait_stats(Duration::from_secs(120), |s| {
        s["received"].as_u64() == Some(total) && s["in_flight"] == 0
    });
    // Every packet for the guest was copied into its domain, exactly once (it leaves
    // through the egress port from the guest domain's buffer); trusted traffic never was.
    assert_eq!(st["domain_copies"].as_u64(), Some(n_guest), "{st:#}");
    // The trusted marker is in the trusted region: there was something to leak.
    let t = std::fs::read(&trusted).expect("read trusted region");
    assert!(
        count(&t, TRUSTED_MARK) >= 1,
        "trusted traffic not in its region"
    );
    let u = std::fs::read(&untrusted).expect("read untrusted region");
    assert_eq!(
        count(&u, TRUSTED_MARK),
        0,
        "trusted bytes in the untrusted region"
    );
    // The guest's own view: wait for its scan after the last packet.
    let end = std::time::Instant::now() + Duration::from_secs(120);
    let scan = loop {
        let log = run.nf_log("scan");
        if let Some(s) = last_scan(&log).filter(|s| s.0 == n_guest) {
            break s;
        }
        assert!(
            std::time::Instant::now() < end,
            "no scan after {n_guest} packets in the guest's console:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let (pkts, with_mark, bytes, expect_hits, forbid_hits) = scan;
    println!("guest scan: packets {pkts}, with marker {with_mark}, BAR {bytes} bytes, guest-marker hits {expect_hits}, trusted-marker hits {forbid_hits}");
    assert_eq!(
        with_mark, n_guest,
        "every packet routed to the guest arrived"
    );
    assert_eq!(
        bytes,
        u.len() as u64,
        "the guest's BAR is exactly the untrusted region"
    );
    assert!(expect_hits >= 1, "the scan sees packet bytes");
    assert_eq!(forbid_hits, 0, "the guest found trusted traffic in its BAR");
    let report = run.stop();
    assert_eq!(report["accounting_ok"], true, "{report:#}");
    assert_eq!(report["pools_full"], true, "{report:#}");
    assert_eq!(traffic::read_pcap(&output).len() as u64, total);
    assert!(qemu_pids_mentioning(&run_dir).is_empty());
}

#[test]
fn teardown_after_a_failed_test_spares_foreign_processes() {
    let dir = Scratch::new("vm-teardown");
    // Bystanders this test starts itself: a QEMU (paused, nothing to do with netvm) and a
    // sleep. The manager's teardown must leave both alone.
    let foreign_qemu = Proc::spawn(
        "foreign-qemu",
        std::path::Path::new("qemu-system-x86_64"),
        &[
            "-accel",
            "tcg",
            "-S",
            "-nodefaults",
            "-display",
            "none",
            "-monitor",
            "none",
            "-serial",
            "none",
            "-m",
            "16",
            "-name",
            "netvm-test-bystander",
        ]
        .map(String::from),
        dir.path("foreign-qemu.log"),
        &[],
    );
    let sleeper = Proc::spawn(
        "sleep",
        std::path::Path::new("sleep"),
        &["600".to_string()],
        dir.path("sleep.log"),
        &[],
    );
    let rules = dir.path("fw.rules");
    std::fs::write(&rules, traffic::Load::rules()).expect("rules");
    let cfg = serde_json::json!({
        "name": "vmdown",
        "workers": [{"cpu": worker_cpu()}],
        "eal": eal_section(),
        "domains": [{"name": "edge", "buffers": 4096}],
        "ports": [
            {"name": "in", "device": "net_null0", "domain": "edge"}
        ],
        "nfs": [
            {"name": "fw1", "service": "firewall", "kind": "vm", "domain": "edge",
             "program": "firewall", "args": ["--rules", rules.display().to_string()]}
        ],
        "chains": [{"name": "c", "match": {"in_port": "in"}, "services": ["firewall"], "egress": "in"}]
    });
    let scratch = Scratch::new("vm-teardown-run");
    let run_dir = scratch.path("run").display().to_string();
    // A test body that fails while the guest runs: the harness's drop must clean up.
    let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut run = ManagedRun::start(cfg, scratch);
        run.wait_running(Duration::from_secs(300));
        assert_eq!(qemu_pids_mentioning(&run_dir).len(), 1, "{}", run.logs());
        panic!("simulated test failure with the guest running");
    }));
    assert!(failed.is_err());
    assert!(
        qemu_pids_mentioning(&run_dir).is_empty(),
        "a QEMU of the failed test survived"
    );
    let mut foreign_qemu = foreign_qemu;
    let mut sleeper = sleeper;
    assert!(
        foreign_qemu.running(),
        "teardown killed a QEMU it did not start"
    );
    assert!(
        sleeper.running(),
        "teardown killed a process it did not start"
    );
}
