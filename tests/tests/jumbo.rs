//! Jumbo frames: a domain declares the largest frame it carries (`buffer_size`); frames up to
//! that size travel whole from port through every NF to port — zero-copy inside a domain, one
//! copy across domains — and a frame that does not fit is a counted drop, never truncated:
//! `multi_segment` at RX (the driver split it over several buffers), `frame_too_big` when it
//! would cross into a domain with smaller buffers.

use std::time::Duration;

use netvm_tests::traffic::{read_pcap, write_pcap};
use netvm_tests::{eal_section, worker_cpu, Core, Scratch};
use netvm_wire::builder::FrameSpec;
use serde_json::{json, Value};

/// A UDP frame of exactly `len` bytes whose payload bytes depend on `seed`.
fn frame(len: usize, seed: u8) -> Vec<u8> {
    let spec = FrameSpec::default();
    let payload: Vec<u8> = (0..len - spec.frame_len(0))
        .map(|i| (i.to_le_bytes()[0]).wrapping_mul(31).wrapping_add(seed))
        .collect();
    let f = spec.build(&payload);
    assert_eq!(f.len(), len);
    f
}

/// Three frames of each size, interleaved.
fn frames(sizes: &[usize]) -> Vec<Vec<u8>> {
    (0..3u8)
        .flat_map(|k| sizes.iter().map(move |&s| frame(s, k)))
        .collect()
}

fn with_mac(frames: &[Vec<u8>], mac: [u8; 6]) -> Vec<Vec<u8>> {
    frames
        .iter()
        .map(|f| {
            let mut f = f.clone();
            f[..6].copy_from_slice(&mac);
            f
        })
        .collect()
}

fn l2(mac: &str) -> Vec<String> {
    vec!["--dst-mac".into(), mac.into()]
}

fn port<'a>(st: &'a Value, name: &str) -> &'a Value {
    st["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap()
}

#[test]
fn jumbo_frames_travel_whole_zero_copy_and_across_domains() {
    let dir = Scratch::new("jumbo");
    let input = frames(&[64, 1518, 4000, 9000, 9216]);
    let (inp, out) = (dir.path("in.pcap"), dir.path("out.pcap"));
    write_pcap(&inp, &input);
    let cfg = json!({
        "name": "jumbo",
        "workers": [{"cpu": worker_cpu()}],
        "eal": eal_section(),
        "domains": [
            {"name": "big", "buffers": 2048, "buffer_size": 9216},
            {"name": "big2", "buffers": 2048, "buffer_size": 9216}
        ],
        "ports": [
            {"name": "in", "device": format!("net_pcap0,rx_pcap={}", inp.display()), "domain": "big"},
            {"name": "out", "device": format!("net_pcap1,tx_pcap={}", out.display()), "domain": "big"}
        ],
        "nfs": [
            {"name": "a", "service": "first", "domain": "big"},
            {"name": "b", "service": "second", "domain": "big2"}
        ],
        "chains": [{"name": "c", "match": {"in_port": "in"}, "services": ["first", "second"], "egress": "out"}]
    });
    let mut core = Core::start(cfg, dir, &[]);
    core.spawn_nf("l2fwd", "a", "big", &l2("02:00:00:00:00:aa"));
    core.spawn_nf("l2fwd", "b", "big2", &l2("02:00:00:00:00:bb"));
    core.wait_running();
    let n = input.len() as u64;
    core.wait_stats(Duration::from_secs(60), |st| {
        port(st, "out")["tx"].as_u64() == Some(n) && st["in_flight"] == 0
    });
    let report = core.shutdown();
    assert_eq!(report["accounting_ok"], true, "{report:#}");
    assert_eq!(report["pools_full"], true, "{report:#}");
    // One copy per frame: from domain big into big2 at the second NF.
    assert_eq!(report["domain_copies"].as_u64(), Some(n), "{report:#}");
    let bytes: u64 = input.iter().map(|f| f.len() as u64).sum();
    assert_eq!(port(&report, "in")["rx_bytes"].as_u64(), Some(bytes));
    assert_eq!(port(&report, "out")["tx_bytes"].as_u64(), Some(bytes));
    let got = read_pcap(&core.dir.path("out.pcap"));
    let want = with_mac(&input, [0x02, 0, 0, 0, 0, 0xbb]);
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            g == w,
            "frame {i} ({} bytes) changed: got {} bytes",
            w.len(),
            g.len()
        );
    }
    println!(
        "jumbo: {} frames of 64..9216 bytes through 2 NFs across 2 domains, whole; {} copies",
        n, report["domain_copies"]
    );
}

#[test]
fn frames_larger_than_a_domain_are_dropped_whole_never_truncated() {
    let dir = Scratch::new("jumbo-drop");
    let input = frames(&[64, 1518, 2048, 2049, 4000, 9000]);
    let fits = |f: &&Vec<u8>| f.len() <= 2048;
    let small: Vec<Vec<u8>> = input.iter().filter(fits).cloned().collect();
    let n_big = (input.len() - small.len()) as u64;
    let paths: Vec<_> = ["in1", "out1", "in2", "out2", "in3", "out3"]
        .iter()
        .map(|p| dir.path(&format!("{p}.pcap")))
        .collect();
    for i in [0, 2, 4] {
        write_pcap(&paths[i], &input);
    }
    let dev = |k: usize, rx: bool| {
        format!(
            "net_pcap{k},{}_pcap={}",
            if rx { "rx" } else { "tx" },
            paths[k].display()
        )
    };
    let cfg = json!({
        "name": "jumbo-drop",
        "workers": [{"cpu": worker_cpu()}],
        "eal": eal_section(),
        "domains": [
            {"name": "small", "buffers": 2048},
            {"name": "big", "buffers": 2048, "buffer_size": 9216}
        ],
        "ports": [
            // A default (2048-byte) domain: an NF chain and a port->port chain.
            {"name": "in1", "device": dev(0, true), "domain": "small"},
            {"name": "out1", "device": dev(1, false), "domain": "small"},
            {"name": "in2", "device": dev(2, true), "domain": "small"},
            {"name": "out2", "device": dev(3, false), "domain": "small"},
            // A jumbo domain whose chain crosses into the small domain.
            {"name": "in3", "device": dev(4, true), "domain": "big"},
            {"name": "out3", "device": dev(5, false), "domain": "big"}
        ],
        "nfs": [
            {"name": "s1", "service": "s1", "domain": "small"},
            {"name": "s3", "service": "s3", "domain": "small"}
        ],
        "chains": [
            {"name": "nf", "match": {"in_port": "in1"}, "services": ["s1"], "egress": "out1"},
            {"name": "p2p", "match": {"in_port": "in2"}, "egress": "out2"},
            {"name": "cross", "match": {"in_port": "in3"}, "services": ["s3"], "egress": "out3"}
        ]
    });
    let mut core = Core::start(cfg, dir, &[]);
    core.spawn_nf("l2fwd", "s1", "small", &l2("02:00:00:00:00:01"));
    core.spawn_nf("l2fwd", "s3", "small", &l2("02:00:00:00:00:03"));
    core.wait_running();
    let n_in = 3 * input.len() as u64;
    core.wait_stats(Duration::from_secs(60), |st| {
        st["received"].as_u64() == Some(n_in) && st["in_flight"] == 0
    });
    let report = core.shutdown();
    assert_eq!(report["accounting_ok"], true, "{report:#}");
    assert_eq!(report["pools_full"], true, "{report:#}");
    // Too big for the small domain's buffers: split by the driver, dropped whole at RX on both
    // of its ports; too big to cross from the jumbo domain into the small one.
    assert_eq!(
        report["drops"]["multi_segment"].as_u64(),
        Some(2 * n_big),
        "{report:#}"
    );
    assert_eq!(
        report["drops"]["frame_too_big"].as_u64(),
        Some(n_big),
        "{report:#}"
    );
    let d = &core.dir;
    assert_eq!(
        read_pcap(&d.path("out1.pcap")),
        with_mac(&small, [0x02, 0, 0, 0, 0, 0x01])
    );
    assert_eq!(read_pcap(&d.path("out2.pcap")), small);
    assert_eq!(
        read_pcap(&d.path("out3.pcap")),
        with_mac(&small, [0x02, 0, 0, 0, 0, 0x03])
    );
    println!(
        "jumbo-drop: {n_big} oversize frames per port dropped whole (multi_segment {}, \
         frame_too_big {}), the rest exact",
        report["drops"]["multi_segment"], report["drops"]["frame_too_big"]
    );
}
