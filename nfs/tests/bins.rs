//! The NF binaries as processes against a test core (netlib-guest's `FakeCore` plays the
//! core): attach, packets in and out with the expected verdicts and bytes, clean exit on
//! SIGTERM/SIGINT with a summary, DETACHED slot, and errors printed as one chain.
// Test data is made by deliberately truncating wider integers.
#![allow(clippy::cast_possible_truncation)]

use std::net::Ipv4Addr;
use std::process::Command;

use netlib_guest::testkit::FakeCore;
use netlib_guest::{Descriptor, Verdict};
use netvm_shm::SlotState;
use netvm_wire::{ethertype, FrameSpec, Ipv4Packet, L4Spec, MacAddr, PacketMeta};

mod common;
use common::{NfProcess, TempFile, LONG};

const BINS: [&str; 5] = [
    env!("CARGO_BIN_EXE_l2fwd"),
    env!("CARGO_BIN_EXE_l3fwd"),
    env!("CARGO_BIN_EXE_firewall"),
    env!("CARGO_BIN_EXE_monitor"),
    env!("CARGO_BIN_EXE_reflector"),
];

#[test]
fn every_binary_has_help_with_region_and_nf() {
    for bin in BINS {
        let out = Command::new(bin).arg("--help").output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{bin} --help: {}", out.status);
        for want in ["--region", "--nf", "NETVM_REGION", "NETVM_NF", "--wait"] {
            assert!(text.contains(want), "{bin} --help lacks {want}:\n{text}");
        }
    }
}

fn udp_to(dst: Ipv4Addr, ttl: u8) -> Vec<u8> {
    FrameSpec {
        dst_ip: dst,
        ttl,
        l4: L4Spec::Udp {
            src_port: 4000,
            dst_port: 53,
        },
        ..FrameSpec::default()
    }
    .build(b"0123456789")
}

#[test]
fn l3fwd_routes_drops_and_exits_cleanly_on_sigterm() {
    let routes = TempFile::new(
        "routes",
        "# test routes\n10.0.0.0/8 1\n10.2.0.0/16 2 dst-mac 02:00:00:00:00:22\n",
    );
    let mut core = FakeCore::temp("l3fwd", 2).unwrap();
    core.reserve(1, "router", 10).unwrap();
    let mut nf = NfProcess::spawn(
        env!("CARGO_BIN_EXE_l3fwd"),
        &core,
        "router",
        &["--routes", routes.arg()],
    );
    nf.wait_attached(&core, 1);

    let mut arp = udp_to(Ipv4Addr::new(10, 0, 0, 1), 64);
    arp[12..14].copy_from_slice(&ethertype::ARP.to_be_bytes());
    let frames = [
        udp_to(Ipv4Addr::new(10, 9, 0, 1), 64),  // 0: port 1
        udp_to(Ipv4Addr::new(10, 2, 3, 4), 64),  // 1: port 2, MAC rewritten
        udp_to(Ipv4Addr::new(10, 2, 3, 4), 1),   // 2: TTL expired
        udp_to(Ipv4Addr::new(192, 0, 2, 1), 64), // 3: no route
        arp,                                     // 4: not IPv4
    ];
    let descs: Vec<Descriptor> = frames
        .iter()
        .zip(0u32..)
        .map(|(f, i)| core.load(i, f, 0))
        .collect();
    core.send(1, 0, &descs[..3]).unwrap();
    core.send(1, 1, &descs[3..]).unwrap();
    let back = core.recv_n(1, 5, LONG);
    assert_eq!(back.len(), 5);
    for d in &back {
        let v = Verdict::from_raw(d.verdict, d.verdict_arg);
        let bytes = core.bytes(d).unwrap();
        let orig = &frames[d.buf_idx as usize];
        match d.buf_idx {
            0 | 1 => {
                assert_eq!(v, Some(Verdict::Out(d.buf_idx as u16 + 1)));
                let ip = Ipv4Packet::new_checked(&bytes[14..]).unwrap();
                assert_eq!(ip.ttl(), 63);
                assert!(ip.verify_checksum(), "checksum after TTL decrement");
                let mac = if d.buf_idx == 1 {
                    MacAddr([2, 0, 0, 0, 0, 0x22]).0
                } else {
                    orig[..6].try_into().unwrap()
                };
                assert_eq!(bytes[..6], mac);
                // Only the TTL (byte 22) and the header checksum (24..26) change.
                assert_eq!(bytes[6..22], orig[6..22]);
                assert_eq!(bytes[23], orig[23]);
                assert_eq!(bytes[26..], orig[26..]);
            }
            _ => {
                assert_eq!(v, Some(Verdict::Drop));
                assert_eq!(&bytes, orig, "dropped packets are untouched");
            }
        }
    }

    let out = nf.signal_and_wait(libc::SIGTERM);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("packets in 5"), "{stdout}");
    assert!(stdout.contains("dropped 3"), "{stdout}");
    for want in ["forwarded 2", "ttl_expired 1", "no_route 1", "not_ip 1"] {
        assert!(stdout.contains(want), "summary lacks {want}: {stdout}");
    }
    assert_eq!(core.slot_state(1), Some(SlotState::Detached));
}

#[test]
fn firewall_prints_rule_hits_and_exits_on_sigint() {
    let rules = TempFile::new(
        "rules",
        "deny proto=udp dport=53\nallow src=10.0.0.0/8\ndefault deny\n",
    );
    let mut core = FakeCore::temp("firewall", 1).unwrap();
    core.reserve(0, "fw", 1).unwrap();
    let mut nf = NfProcess::spawn(
        env!("CARGO_BIN_EXE_firewall"),
        &core,
        "fw",
        &["--rules", rules.arg(), "--stats-interval", "0.05"],
    );
    nf.wait_attached(&core, 0);
    let spec = |src: [u8; 4], dport: u16| FrameSpec {
        src_ip: Ipv4Addr::from(src),
        l4: L4Spec::Udp {
            src_port: 1,
            dst_port: dport,
        },
        ..FrameSpec::default()
    };
    let frames = [
        spec([10, 0, 0, 1], 53).build(b""),  // rule 1: deny
        spec([10, 0, 0, 1], 80).build(b""),  // rule 2: allow
        spec([10, 0, 0, 2], 80).build(b""),  // rule 2: allow
        spec([192, 0, 2, 1], 80).build(b""), // default: deny
    ];
    let descs: Vec<Descriptor> = frames
        .iter()
        .zip(0u32..)
        .map(|(f, i)| core.load(i, f, 0))
        .collect();
    core.send(0, 0, &descs).unwrap();
    let back = core.recv_n(0, 4, LONG);
    assert_eq!(back.len(), 4);
    for d in &back {
        let want = if matches!(d.buf_idx, 1 | 2) {
            Verdict::Next
        } else {
            Verdict::Drop
        };
        assert_eq!(Verdict::from_raw(d.verdict, d.verdict_arg), Some(want));
    }
    let out = nf.signal_and_wait(libc::SIGINT);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", out.status);
    let last = stdout.rsplit("firewall: rule hits").next().unwrap();
    let hits = |prefix: &str| -> u64 {
        let line = last
            .lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in {stdout}"));
        line.split_whitespace()
            .nth(if prefix.starts_with("rule") { 2 } else { 1 })
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(hits("rule   1"), 1, "{stdout}");
    assert_eq!(hits("rule   2"), 2, "{stdout}");
    assert_eq!(hits("default"), 1, "{stdout}");
    assert_eq!(core.slot_state(0), Some(SlotState::Detached));
}

#[test]
fn reflector_sends_packets_back_to_their_port() {
    let mut core = FakeCore::temp("reflector", 1).unwrap();
    core.reserve(2, "refl", 1).unwrap();
    let mut nf = NfProcess::spawn(env!("CARGO_BIN_EXE_reflector"), &core, "refl", &[]);
    nf.wait_attached(&core, 2);
    let spec = FrameSpec::default();
    let descs: Vec<Descriptor> = (0..8u32)
        .map(|i| core.load(i, &spec.build(&[i as u8; 20]), (i % 3) as u8))
        .collect();
    core.send(2, 0, &descs).unwrap();
    let back = core.recv_n(2, 8, LONG);
    assert_eq!(back.len(), 8);
    let reply = spec.reversed().flow_key();
    for d in &back {
        assert_eq!(
            Verdict::from_raw(d.verdict, d.verdict_arg),
            Some(Verdict::Out((d.buf_idx % 3) as u16))
        );
        let bytes = core.bytes(d).unwrap();
        let meta = PacketMeta::parse(&bytes).unwrap();
        assert_eq!(netvm_wire::FlowKey::from_meta(&meta), Some(reply));
    }
    let out = nf.signal_and_wait(libc::SIGTERM);
    assert!(out.status.success(), "{}", out.status);
    assert!(String::from_utf8_lossy(&out.stdout).contains("L4 8"));
}

#[test]
fn errors_are_printed_as_one_chain() {
    let mut core = FakeCore::temp("nfs-errors", 1).unwrap();
    core.reserve(0, "present", 1).unwrap();
    // Unknown NF name.
    let out = NfProcess::spawn(env!("CARGO_BIN_EXE_monitor"), &core, "absent", &[]).wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("monitor: error: cannot attach the NF"),
        "{stderr}"
    );
    assert!(
        stderr.contains("caused by: no NF named \"absent\""),
        "{stderr}"
    );
    // Bad route file: line number in the chain; nothing attached.
    let routes = TempFile::new("bad-routes", "10.0.0.0/8 1\n10.1.0.0/33 2\n");
    let out = NfProcess::spawn(
        env!("CARGO_BIN_EXE_l3fwd"),
        &core,
        "present",
        &["--routes", routes.arg()],
    )
    .wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("invalid route file"), "{stderr}");
    assert!(stderr.contains("line 2"), "{stderr}");
    assert_eq!(core.slot_state(0), Some(SlotState::Reserved));
}
