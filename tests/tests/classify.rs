//! The core's classifier end to end on real traffic: chains that match on IPv6 prefixes, the
//! outer VLAN, QinQ (outer + inner VLAN), protocol + L4 port and ethertype, each ending on its
//! own port, so that every frame's chain is visible in the output pcaps. Fragments never match
//! a port rule (they carry no ports beyond the first); frames that match nothing are counted
//! `no_chain`.

use std::time::Duration;

use netvm_tests::traffic::{read_pcap, write_pcap};
use netvm_tests::{eal_section, worker_cpu, Core, Scratch};
use serde_json::json;

const MACS: [u8; 12] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];

/// Ethernet header with VLAN tags (outer first; 802.1ad for the outer of two).
fn eth(tags: &[u16], ethertype: u16) -> Vec<u8> {
    let mut f = MACS.to_vec();
    for (i, t) in tags.iter().enumerate() {
        let tpid: u16 = if tags.len() == 2 && i == 0 {
            0x88a8
        } else {
            0x8100
        };
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&t.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// IPv4 UDP (`frag`: the flags/offset word) to `dst`, port `dport`; checksums are not checked
/// by the classifier.
fn v4(tags: &[u16], dst: [u8; 4], dport: u16, frag: u16, tag: u8) -> Vec<u8> {
    let mut f = eth(tags, 0x0800);
    let udp = [
        &1000u16.to_be_bytes()[..],
        &dport.to_be_bytes(),
        &[0, 12, 0, 0],
        &[tag; 4],
    ]
    .concat();
    let len = u16::try_from(20 + udp.len()).unwrap();
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&len.to_be_bytes());
    f.extend_from_slice(&[0, 1]);
    f.extend_from_slice(&frag.to_be_bytes());
    f.extend_from_slice(&[64, 17, 0, 0, 10, 0, 0, 1]);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&udp);
    f
}

/// IPv6 UDP to `dst` (16 bytes), port `dport`, behind an optional hop-by-hop header.
fn v6(tags: &[u16], dst: [u8; 16], dport: u16, hbh: bool, tag: u8) -> Vec<u8> {
    let mut f = eth(tags, 0x86dd);
    let udp = [
        &2000u16.to_be_bytes()[..],
        &dport.to_be_bytes(),
        &[0, 12, 0, 0],
        &[tag; 4],
    ]
    .concat();
    let ext: Vec<u8> = if hbh {
        vec![17, 0, 1, 4, 0, 0, 0, 0]
    } else {
        vec![]
    };
    let plen = u16::try_from(ext.len() + udp.len()).unwrap();
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&plen.to_be_bytes());
    f.push(if hbh { 0 } else { 17 });
    f.push(64);
    let mut src = [0u8; 16];
    src[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    src[15] = 1;
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&ext);
    f.extend_from_slice(&udp);
    f
}

#[test]
fn chains_match_ipv6_prefixes_vlans_qinq_ports_and_never_ports_of_fragments() {
    let dir = Scratch::new("classify");
    let in6 = {
        let mut a = [0u8; 16];
        a[..6].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 7]);
        a[15] = 9;
        a
    };
    let other6 = {
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb9]);
        a[15] = 9;
        a
    };
    // (frame, expected chain) in input order.
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (v6(&[], in6, 80, false, 1), "v6"),
        (v6(&[], in6, 80, true, 2), "v6"), // behind a hop-by-hop header
        (v6(&[], other6, 53, false, 3), "dns"), // not in the prefix; UDP 53 (v6 too)
        (v6(&[], other6, 80, false, 4), "none"), // matches nothing
        (v4(&[100], [10, 1, 0, 1], 80, 0, 5), "vlan"),
        (v4(&[200, 300], [10, 1, 0, 1], 80, 0, 6), "qinq"),
        (v4(&[200, 301], [10, 1, 0, 1], 80, 0, 7), "v4"), // inner VLAN differs
        (v4(&[], [10, 1, 0, 2], 53, 0, 8), "dns"),
        (v4(&[], [10, 1, 0, 2], 53, 0x2000, 9), "v4"), // first fragment: no port match
        (v4(&[], [10, 1, 0, 2], 53, 0x0010, 10), "v4"), // later fragment
        (v4(&[], [10, 1, 0, 3], 80, 0, 11), "v4"),
        ([&eth(&[], 0x0806)[..], &[0u8; 46]].concat(), "none"), // ARP
    ];
    let names = ["v6", "vlan", "qinq", "dns", "v4"];
    let input: Vec<Vec<u8>> = cases.iter().map(|c| c.0.clone()).collect();
    let inp = dir.path("in.pcap");
    write_pcap(&inp, &input);
    let mut ports = vec![
        json!({"name": "in", "device": format!("net_pcap0,rx_pcap={}", inp.display()), "domain": "d"}),
    ];
    for (i, n) in names.iter().enumerate() {
        ports.push(json!({"name": format!("out-{n}"), "device": format!("net_pcap{},tx_pcap={}", i + 1, dir.path(&format!("{n}.pcap")).display()), "domain": "d"}));
    }
    let cfg = json!({
        "name": "classify",
        "workers": [{"cpu": worker_cpu()}],
        "eal": eal_section(),
        "domains": [{"name": "d", "buffers": 1024}],
        "ports": ports,
        "chains": [
            {"name": "v6", "match": {"in_port": "in", "dst": "2001:db8::/32"}, "egress": "out-v6"},
            {"name": "vlan", "match": {"in_port": "in", "vlan": 100}, "egress": "out-vlan"},
            {"name": "qinq", "match": {"in_port": "in", "vlan": 200, "inner_vlan": 300}, "egress": "out-qinq"},
            {"name": "dns", "match": {"in_port": "in", "proto": "udp", "dst_port": "53"}, "egress": "out-dns"},
            {"name": "v4", "match": {"in_port": "in", "ethertype": 2048}, "egress": "out-v4"}
        ]
    });
    let mut core = Core::start(cfg, dir, &[]);
    core.wait_running();
    let n = input.len() as u64;
    core.wait_stats(Duration::from_secs(30), |st| {
        st["received"].as_u64() == Some(n) && st["in_flight"] == 0
    });
    let report = core.shutdown();
    assert_eq!(report["accounting_ok"], true, "{report:#}");
    assert_eq!(report["pools_full"], true, "{report:#}");
    let none = cases.iter().filter(|c| c.1 == "none").count() as u64;
    assert_eq!(
        report["drops"]["no_chain"].as_u64(),
        Some(none),
        "{report:#}"
    );
    for name in names {
        let got = read_pcap(&core.dir.path(&format!("{name}.pcap")));
        let want: Vec<Vec<u8>> = cases
            .iter()
            .filter(|c| c.1 == name)
            .map(|c| c.0.clone())
            .collect();
        assert!(
            got == want,
            "chain {name}: got {} frames, want {}",
            got.len(),
            want.len()
        );
    }
}
