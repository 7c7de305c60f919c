//! A chain that spans two netvm instances (issue 17): two `netvm-core` processes in two
//! network namespaces joined by a veth pair (`net_af_packet` on each end) — pcap in on
//! instance A → firewall on A → NSH over the veth → l3fwd on B → pcap out on B. The output
//! equals the fw→l3fwd model byte for byte, the frames on the veth equal the model's NSH
//! encapsulation byte for byte and tshark decodes their SPI/SI/TTL, counters are exact on
//! both sides and every pool is full after shutdown.
//!
//! And hostile NSH from the wire: a pcap of bad NSH frames (random bytes, wrong SPI, SI
//! beyond the chain or at a hop another instance runs, TTL 0 and 1, bad lengths, version,
//! MD type, next protocol, OAM) into a core with a path configured: every frame is a counted
//! drop by its reason, the good ones pass exactly, nothing crashes.
//!
//! NSH bytes here are written by hand from RFC 8300, independently of netvm-wire.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use netvm_tests::netns::{start_split, Split, VethPair};
use netvm_tests::traffic::{self, Load};
use netvm_tests::{eal_section, worker_cpu, Core, Proc, Scratch};
use netvm_tests::{report_path as path, report_port as port};
use serde_json::{json, Value};

const PATH: u32 = 4242;

/// Outer Ethernet + NSH (MD type 2, no metadata, next protocol Ethernet) as RFC 8300 lays it
/// out, in front of `inner`.
fn nsh_frame(dst: [u8; 6], src: [u8; 6], spi: u32, si: u8, ttl: u8, inner: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(22 + inner.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x89, 0x4f]);
    // Ver 0 | O 0 | U 0 | TTL (6 bits) | Length 2 (6 bits) | U | MD type 2 | NP 3.
    f.push(ttl >> 2);
    f.push(((ttl & 3) << 6) | 2);
    f.push(0x02);
    f.push(0x03);
    f.extend_from_slice(&spi.to_be_bytes()[1..]);
    f.push(si);
    f.extend_from_slice(inner);
    f
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn nf<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["nfs"]
        .as_array()
        .and_then(|a| a.iter().find(|n| n["name"] == name))
        .unwrap_or_else(|| panic!("no NF {name} in {report:#}"))
}

/// Complete records in a classic pcap file that may still be being written.
fn pcap_records(file: &std::path::Path) -> u64 {
    let Ok(b) = std::fs::read(file) else {
        return 0;
    };
    let (mut off, mut n) = (24usize, 0u64);
    while off + 16 <= b.len() {
        let caplen =
            u32::from_le_bytes([b[off + 8], b[off + 9], b[off + 10], b[off + 11]]) as usize;
        if off + 16 + caplen > b.len() {
            break;
        }
        off += 16 + caplen;
        n += 1;
    }
    n
}

/// dumpcap on an interface of a namespace, writing classic pcap; waits until it captures.
fn start_capture(ns: &str, dev: &str, file: &std::path::Path, log: std::path::PathBuf) -> Proc {
    let args: Vec<String> = ["netns", "exec", ns, "dumpcap", "-q", "-P", "-i", dev, "-w"]
        .iter()
        .map(|s| s.to_string())
        .chain([file.display().to_string()])
        .collect();
    let mut p = Proc::spawn("dumpcap", std::path::Path::new("ip"), &args, log, &[]);
    let end = Instant::now() + Duration::from_secs(20);
    while !p.log_text().contains("Capturing on") {
        assert!(p.running(), "dumpcap exited: {}", p.log_text());
        assert!(
            Instant::now() < end,
            "dumpcap not capturing: {}",
            p.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    p
}

#[test]
fn chain_split_over_two_instances_in_two_namespaces() {
    let link = match VethPair::new() {
        Ok(l) => l,
        Err(e) => panic!("cannot make network namespaces (root and iproute2 needed): {e}"),
    };
    let load = Load::new(24, 12);
    let n_in = load.frames.len() as u64;
    let denied = load.frames.iter().filter(|f| Load::denied(f)).count() as u64;
    let passed: Vec<&Vec<u8>> = load.frames.iter().filter(|f| !Load::denied(f)).collect();
    let n_wire = passed.len() as u64;
    let expected = load.expected();

    let dir_a = Scratch::new("nsh-a");
    let dir_b = Scratch::new("nsh-b");
    let input = dir_a.path("in.pcap");
    traffic::write_pcap(&input, &load.frames);
    let output = dir_b.path("out.pcap");
    let rules = dir_a.path("fw.rules");
    std::fs::write(&rules, Load::rules()).unwrap();
    let routes = dir_b.path("routes");
    std::fs::write(&routes, Load::routes(1)).unwrap();
    let wire = dir_b.path("wire.pcap");
    let capture = start_capture(&link.b, &link.veth_b, &wire, dir_b.path("dumpcap.log"));

    // One declaration of the chain, read top to bottom in both configs: firewall on A, l3fwd
    // on B; each instance names its own hop and the peer's with `at`.
    let (mut a, mut b) = start_split(
        &Split {
            link: &link,
            name: "nsh",
            path_id: PATH,
            in_dev: format!("net_pcap0,rx_pcap={}", input.display()),
            out_dev: format!("net_pcap1,tx_pcap={}", output.display()),
            buffers: 1024,
            rules: &rules,
            routes: &routes,
        },
        dir_a,
        dir_b,
    );

    a.wait_stats(Duration::from_secs(60), |s| {
        u(&s["received"]) == n_in && s["in_flight"] == 0 && u(&s["transmitted"]) == n_wire
    });
    b.wait_stats(Duration::from_secs(60), |s| {
        u(&s["received"]) == n_wire && s["in_flight"] == 0
    });
    let ra = a.shutdown();
    let rb = b.shutdown();
    // Stop dumpcap once it has written every frame B received from the wire (it writes as it
    // reads; a frame still in its socket buffer would be lost by stopping it earlier).
    let end = Instant::now() + Duration::from_secs(10);
    while pcap_records(&wire) < n_wire && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(capture);

    // Instance A: firewall, then every passed frame encapsulated onto the wire.
    for r in [&ra, &rb] {
        assert_eq!(r["accounting_ok"], true, "{r:#}");
        assert_eq!(r["pools_full"], true, "{r:#}");
        assert!(
            r["nsh_drops"].as_object().is_none_or(|m| m.is_empty()),
            "{r:#}"
        );
    }
    assert_eq!(u(&ra["received"]), n_in);
    assert_eq!(u(&nf(&ra, "fw1")["delivered"]), n_in);
    assert_eq!(u(&nf(&ra, "fw1")["verdicts"][3]), denied);
    assert_eq!(u(&ra["drops"]["nf_verdict_drop"]), denied, "{ra:#}");
    assert_eq!(u(&ra["dropped"]), denied, "{ra:#}");
    assert_eq!(u(&port(&ra, "wan")["tx"]), n_wire);
    assert_eq!(u(&port(&ra, "wan")["rx"]), 0, "nothing comes back to A");
    let pa = path(&ra, PATH);
    assert_eq!(pa["chain"], "web");
    assert_eq!(u(&pa["encapsulated"]), n_wire, "{pa:#}");
    assert_eq!(u(&pa["decapsulated"]), 0, "{pa:#}");
    let wire_bytes: u64 = passed.iter().map(|f| f.len() as u64 + 22).sum();
    assert_eq!(u(&port(&ra, "wan")["tx_bytes"]), wire_bytes);

    // Instance B: every frame from the wire decapsulated, l3fwd, out.
    let pb = path(&rb, PATH);
    assert_eq!(u(&pb["decapsulated"]), n_wire, "{pb:#}");
    assert_eq!(u(&pb["encapsulated"]), 0, "{pb:#}");
    assert_eq!(u(&port(&rb, "wan")["rx"]), n_wire);
    assert_eq!(u(&port(&rb, "wan")["rx_bytes"]), wire_bytes);
    assert_eq!(u(&rb["received"]), n_wire);
    assert_eq!(u(&nf(&rb, "l3")["delivered"]), n_wire);
    assert_eq!(u(&nf(&rb, "l3")["verdicts"][2]), expected.len() as u64);
    assert_eq!(u(&rb["transmitted"]), expected.len() as u64);
    assert_eq!(
        u(&rb["drops"]["nf_verdict_drop"]),
        n_wire - expected.len() as u64,
        "{rb:#}"
    );
    assert_eq!(u(&rb["chains"]["web"]), n_wire, "{rb:#}");

    // The output: the fw→l3fwd model, byte for byte.
    let got = traffic::read_pcap(&output);
    assert_eq!(got.len(), expected.len());
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(g, e, "output frame {i}");
    }

    // The wire: exactly the model's encapsulation of what the firewall passed, in order.
    let on_wire: Vec<Vec<u8>> = traffic::read_pcap(&wire);
    let nsh: Vec<&Vec<u8>> = on_wire
        .iter()
        .filter(|f| f.get(12..14) == Some(&[0x89, 0x4f][..]))
        .collect();
    assert_eq!(
        nsh.len(),
        passed.len(),
        "NSH frames on the veth ({} frames captured)",
        on_wire.len()
    );
    assert_eq!(on_wire.len(), nsh.len(), "only NSH on the link");
    for (i, (g, f)) in nsh.iter().zip(&passed).enumerate() {
        let want = nsh_frame(link.mac_b, link.mac_a, PATH, 254, 63, f);
        assert_eq!(**g, want, "wire frame {i}");
    }

    // An independent decoder: tshark sees NSH with SPI 4242, SI 254, TTL 63, MD type 2,
    // length 2, next protocol Ethernet, and the inner frame behind it.
    let o = std::process::Command::new("tshark")
        .arg("-r")
        .arg(&wire)
        .args(["-T", "fields", "-E", "separator=,"])
        .args([
            "-e",
            "nsh.spi",
            "-e",
            "nsh.si",
            "-e",
            "nsh.ttl",
            "-e",
            "nsh.mdtype",
        ])
        .args(["-e", "nsh.length", "-e", "nsh.nextproto", "-e", "eth.type"])
        .output()
        .expect("tshark runs");
    let text = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        passed.len(),
        "tshark: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    for (l, f) in lines.iter().zip(&passed) {
        let v: Vec<&str> = l.split(',').collect();
        // tshark prints the TTL in hex.
        assert_eq!(
            &v[..6],
            &["4242", "254", "0x003f", "2", "2", "3"],
            "tshark line {l:?}"
        );
        // eth.type lists the outer and the inner ethertype.
        let inner = format!("0x{:04x}", u16::from_be_bytes([f[12], f[13]]));
        assert_eq!(v[6..], ["0x894f", inner.as_str()], "tshark line {l:?}");
    }
    drop(link);
}

/// The bad-NSH load: the frames, per frame the reason it is dropped for (None: it passes),
/// and the inner frames of those that pass.
type Hostile = (Vec<Vec<u8>>, Vec<Option<&'static str>>, Vec<Vec<u8>>);

fn hostile_frames(mac_in: [u8; 6]) -> Hostile {
    let src = [0x02, 0, 0, 0, 0x0c, 0x01];
    let inner = traffic::flow_frames(4, 2);
    let mut frames = Vec::new();
    let mut why = Vec::new();
    let mut passes = Vec::new();
    let mut add = |f: Vec<u8>, w: Option<&'static str>| {
        frames.push(f);
        why.push(w);
    };
    let good =
        |si: u8, ttl: u8, k: usize| nsh_frame(mac_in, src, 7, si, ttl, &inner[k % inner.len()]);
    // Good: SI 254 is hop 1 (the firewall, local here); TTL 2 is the least that survives.
    for (k, ttl) in [63u8, 2, 40].into_iter().enumerate() {
        add(good(254, ttl, k), None);
        passes.push(inner[k % inner.len()].clone());
    }
    add(
        nsh_frame(mac_in, src, 8, 254, 63, &inner[0]),
        Some("unknown_path"),
    );
    add(
        nsh_frame(mac_in, src, 0xff_ffff, 254, 63, &inner[0]),
        Some("unknown_path"),
    );
    add(good(253, 63, 1), Some("bad_si")); // hop 2: past the chain's end
    add(good(0, 63, 1), Some("bad_si"));
    add(good(255, 63, 1), Some("si_not_local")); // hop 0 runs on the peer
    add(good(254, 0, 2), Some("ttl_expired"));
    add(good(254, 1, 2), Some("ttl_expired"));
    let edit = |i: usize, v: u8| {
        let mut f = good(254, 63, 3);
        f.truncate(22 + 60); // short: a stated length of 252 bytes runs past its end
        f[i] = v;
        f
    };
    add(edit(14, 0x40 | 0x0f), Some("bad_version"));
    add(edit(14, 0x20 | 0x0f), Some("oam"));
    add(edit(16, 0x00), Some("bad_md_type"));
    add(edit(16, 0x01), Some("bad_length")); // MD type 1 needs length 6
    add(edit(15, 0xc0 | 63), Some("bad_length")); // 252 bytes: past the frame
    add(edit(15, 0xc0 | 1), Some("bad_length"));
    add(edit(17, 0x01), Some("bad_next_protocol"));
    let mut t = good(254, 63, 0);
    t.truncate(26); // NSH and 4 bytes: no inner Ethernet header
    add(t, Some("truncated"));
    let mut t = good(254, 63, 0);
    t.truncate(18);
    add(t, Some("truncated"));
    (frames, why, passes)
}

#[test]
fn hostile_nsh_from_the_wire_is_counted_by_reason() {
    let mac_in = [0x02, 0, 0, 0, 0x0d, 0x01];
    let (mut frames, mut why, passes) = hostile_frames(mac_in);
    // Random bytes behind an NSH ethertype: whatever they are, a counted drop or a pass.
    // Their reasons are those of netvm-wire's parser (the oracle for random bytes only; the
    // frames above have hand-written reasons).
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut random_reasons: BTreeMap<&'static str, u64> = BTreeMap::new();
    for _ in 0..300 {
        let len = 14 + (rnd() % 120) as usize;
        let mut f: Vec<u8> = (0..len).map(|_| rnd().to_le_bytes()[0]).collect();
        f[12] = 0x89;
        f[13] = 0x4f;
        let r = match netvm_wire::parse_eth_nsh(&f, f.len()) {
            Err(e) => e.name(),
            Ok(p) if p.nsh.spi != 7 => "unknown_path",
            Ok(p) if p.nsh.ttl_after_hop().is_err() => "ttl_expired",
            Ok(p) if p.nsh.si == 255 => "si_not_local",
            Ok(p) if p.nsh.si != 254 => "bad_si",
            Ok(_) => panic!("a random frame that passes: change the seed"),
        };
        *random_reasons.entry(r).or_default() += 1;
        frames.push(f);
        why.push(Some(r));
    }
    // Two plain frames on the same port: classified as usual (this instance does not
    // classify into the path, whose first hop is the peer's): `no_chain`.
    let plain = traffic::flow_frames(1, 2);
    for f in &plain {
        frames.push(f.clone());
        why.push(None);
    }

    let dir = Scratch::new("nsh-bad");
    let input = dir.path("in.pcap");
    let output = dir.path("out.pcap");
    traffic::write_pcap(&input, &frames);
    let rules = dir.path("fw.rules");
    std::fs::write(&rules, "default allow\n").unwrap();
    let cfg = json!({
        "name": "nsh-bad",
        "workers": [{"cpu": worker_cpu()}],
        "eal": eal_section(),
        "domains": [{"name": "edge", "buffers": 1024}],
        "ports": [
            {"name": "in", "device": format!("net_pcap0,rx_pcap={}", input.display()), "domain": "edge"},
            {"name": "out", "device": format!("net_pcap1,tx_pcap={}", output.display()), "domain": "edge"}
        ],
        "nfs": [{"name": "fw1", "service": "firewall", "domain": "edge"}],
        "chains": [{"name": "p", "path_id": 7,
                    "services": [{"service": "classifier", "at": "in"}, "firewall"],
                    "egress": "out"}]
    });
    let mut core = Core::start(cfg, dir, &[]);
    core.spawn_nf(
        "firewall",
        "fw1",
        "edge",
        &["--rules".into(), rules.display().to_string()],
    );
    core.wait_running();
    let n = frames.len() as u64;
    core.wait_stats(Duration::from_secs(60), |s| {
        u(&s["received"]) == n && s["in_flight"] == 0
    });
    assert!(core.core.running(), "the core survived");
    let r = core.shutdown();
    assert_eq!(r["accounting_ok"], true, "{r:#}");
    assert_eq!(r["pools_full"], true, "{r:#}");

    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    for w in why.iter().flatten() {
        *want.entry((*w).to_string()).or_default() += 1;
    }
    let got: BTreeMap<String, u64> = r["nsh_drops"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), u(v))).collect())
        .unwrap_or_default();
    assert_eq!(
        got, want,
        "NSH drops by reason (random part: {random_reasons:?})"
    );
    let nsh_total: u64 = want.values().sum();
    assert_eq!(u(&r["drops"]["nsh"]), nsh_total, "{r:#}");
    assert_eq!(u(&r["drops"]["no_chain"]), plain.len() as u64, "{r:#}");
    // Per path: only what could be attributed to path 7 (after the SPI lookup).
    let p = path(&r, 7);
    assert_eq!(u(&p["decapsulated"]), passes.len() as u64, "{p:#}");
    let path_reasons = ["ttl_expired", "bad_si", "si_not_local"];
    let want_path: BTreeMap<String, u64> = want
        .iter()
        .filter(|(k, _)| path_reasons.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    let got_path: BTreeMap<String, u64> = p["drops"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), u(v))).collect())
        .unwrap_or_default();
    assert_eq!(got_path, want_path, "{p:#}");
    // The good ones: decapsulated, through the firewall, out — the inner frames exactly.
    assert_eq!(u(&nf(&r, "fw1")["delivered"]), passes.len() as u64);
    let out = traffic::read_pcap(&output);
    assert_eq!(out, passes);
    assert_eq!(u(&r["transmitted"]), passes.len() as u64);
    assert_eq!(u(&r["received"]), n);
}
