//! Cross-checks our pcap writer and checksums against Wireshark's dissectors.
//!
//! If `tshark` is not installed the test prints a note and checks only what it
//! can without it.

use std::process::Command;
use std::time::Duration;

use netvm_wire::builder::{generate_mixed_flows, FrameSpec, L4Spec, MixedFlows};
use netvm_wire::{
    decrement_ttl_in_place, EthernetFrame, Ipv4Packet, PcapReader, PcapWriter, TcpPacket,
    TtlOutcome, UdpPacket,
};

/// Our own verdict on (IPv4 checksum ok, L4 checksum ok).
fn our_checksums(frame: &[u8]) -> (bool, bool) {
    let eth = EthernetFrame::new_checked(frame).unwrap();
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    let (s, d) = (ip.src(), ip.dst());
    let l4 = match ip.protocol() {
        6 => TcpPacket::new_checked(ip.payload())
            .unwrap()
            .verify_checksum(s, d),
        17 => UdpPacket::new_checked(ip.payload())
            .unwrap()
            .verify_checksum(s, d),
        _ => true,
    };
    (ip.verify_checksum(), l4)
}

/// What we expect tshark to say about one frame.
struct Expect {
    src: String,
    dst: String,
    ttl: u8,
    proto: u8,
    ports: (u16, u16),
    ip_ok: bool,
    l4_ok: bool,
}

fn tshark_available() -> bool {
    Command::new("tshark")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[test]
fn tshark_reads_our_pcap_and_agrees_on_checksums() {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("netvm-wire-tshark-{}.pcap", std::process::id()));

    let mut frames: Vec<Vec<u8>> = Vec::new();
    let mut expect: Vec<Expect> = Vec::new();

    let cfg = MixedFlows {
        flows: 6,
        packets_per_flow: 3,
        ..MixedFlows::default()
    };
    for p in generate_mixed_flows(&cfg) {
        expect.push(Expect {
            src: p.key.src_ip.to_string(),
            dst: p.key.dst_ip.to_string(),
            ttl: 64,
            proto: p.key.proto,
            ports: (p.key.src_port, p.key.dst_port),
            ip_ok: true,
            l4_ok: true,
        });
        frames.push(p.frame);
    }

    // TTL decremented with the incremental (RFC 1624) update.
    let spec = FrameSpec {
        ttl: 200,
        ..FrameSpec::default()
    };
    let mut f = spec.build(b"incremental");
    assert_eq!(
        decrement_ttl_in_place(&mut f[14..]),
        Ok(TtlOutcome::Forwarded { ttl: 199 })
    );
    expect.push(Expect {
        src: "10.0.0.1".into(),
        dst: "10.0.0.2".into(),
        ttl: 199,
        proto: 17,
        ports: (1024, 5000),
        ip_ok: true,
        l4_ok: true,
    });
    frames.push(f);

    // A broken IPv4 header checksum.
    let mut f = spec.build(b"bad ip");
    f[14 + 10] ^= 0x01;
    expect.push(Expect {
        src: "10.0.0.1".into(),
        dst: "10.0.0.2".into(),
        ttl: 200,
        proto: 17,
        ports: (1024, 5000),
        ip_ok: false,
        l4_ok: true,
    });
    frames.push(f);

    // A broken TCP checksum.
    let tcp = FrameSpec {
        l4: L4Spec::Tcp {
            src_port: 443,
            dst_port: 50000,
            seq: 1,
            ack: 2,
            flags: 0x18,
        },
        ..FrameSpec::default()
    };
    let mut f = tcp.build(b"bad tcp");
    let last = f.len() - 1;
    f[last] ^= 0xff;
    expect.push(Expect {
        src: "10.0.0.1".into(),
        dst: "10.0.0.2".into(),
        ttl: 64,
        proto: 6,
        ports: (443, 50000),
        ip_ok: true,
        l4_ok: false,
    });
    frames.push(f);

    let mut w = PcapWriter::create(&path).unwrap();
    for (i, f) in frames.iter().enumerate() {
        w.write_packet(
            Duration::new(1_700_000_000, u32::try_from(i).unwrap() * 1000),
            f,
        )
        .unwrap();
    }
    w.finish().unwrap();

    // Our own checksum verdicts.
    for (i, (f, e)) in frames.iter().zip(&expect).enumerate() {
        assert_eq!(our_checksums(f), (e.ip_ok, e.l4_ok), "frame {i}");
    }

    // Our own reader.
    let back: Vec<_> = PcapReader::open(&path)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(back.len(), frames.len());
    for (r, f) in back.iter().zip(&frames) {
        assert_eq!(&r.data, f);
    }

    if !tshark_available() {
        eprintln!("NOTE: tshark not found; skipping the Wireshark cross-check");
        let _ = std::fs::remove_file(&path);
        return;
    }

    let out = Command::new("tshark")
        .arg("-n")
        .arg("-r")
        .arg(&path)
        .args([
            "-o",
            "ip.check_checksum:TRUE",
            "-o",
            "udp.check_checksum:TRUE",
            "-o",
            "tcp.check_checksum:TRUE",
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-e",
            "ip.src",
            "-e",
            "ip.dst",
            "-e",
            "ip.ttl",
            "-e",
            "ip.proto",
            "-e",
            "udp.srcport",
            "-e",
            "udp.dstport",
            "-e",
            "tcp.srcport",
            "-e",
            "tcp.dstport",
            "-e",
            "ip.checksum.status",
            "-e",
            "udp.checksum.status",
            "-e",
            "tcp.checksum.status",
        ])
        .output()
        .expect("run tshark");
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), expect.len(), "tshark output:\n{text}");

    // Wireshark's checksum status: 0 = bad, 1 = good, 2 = unverified.
    let status = |ok: bool| if ok { "1" } else { "0" };
    for (i, (line, e)) in lines.iter().zip(&expect).enumerate() {
        let f: Vec<&str> = line.split('|').collect();
        assert_eq!(f.len(), 11, "frame {i}: {line}");
        let (sp, dp, l4_status) = if e.proto == 6 {
            (f[6], f[7], f[10])
        } else {
            (f[4], f[5], f[9])
        };
        assert_eq!(f[0], e.src, "frame {i}: {line}");
        assert_eq!(f[1], e.dst, "frame {i}: {line}");
        assert_eq!(f[2], e.ttl.to_string(), "frame {i}: {line}");
        assert_eq!(f[3], e.proto.to_string(), "frame {i}: {line}");
        assert_eq!(sp, e.ports.0.to_string(), "frame {i}: {line}");
        assert_eq!(dp, e.ports.1.to_string(), "frame {i}: {line}");
        assert_eq!(f[8], status(e.ip_ok), "frame {i} IP checksum: {line}");
        assert_eq!(l4_status, status(e.l4_ok), "frame {i} L4 checksum: {line}");
    }
}
