//! Test traffic: pcap files made from netvm-wire's generator, and an independent model of
//! what firewall → l3fwd must emit for them.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use netvm_wire::{generate_mixed_flows, MacAddr, MixedFlows, PcapReader, PcapWriter};

/// Writes frames to a pcap file.
pub fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut w = PcapWriter::create(path).expect("create pcap");
    for (i, f) in frames.iter().enumerate() {
        w.write_packet(Duration::from_micros(i as u64), f)
            .expect("write pcap record");
    }
    w.finish().expect("finish pcap");
}

/// Reads every frame of a pcap file.
pub fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let mut r = PcapReader::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut out = Vec::new();
    while let Some(p) = r
        .next_packet()
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    {
        out.push(p.data.to_vec());
    }
    out
}

/// One's-complement checksum of an IPv4 header (written here, independently of netvm-wire).
pub fn ipv4_header_checksum(h: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for (i, c) in h.chunks(2).enumerate() {
        if i == 5 {
            continue; // the checksum field itself
        }
        let w = (u32::from(c[0]) << 8) | u32::from(*c.get(1).unwrap_or(&0));
        s += w;
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !u16::try_from(s).unwrap_or(0)
}

/// A mixed test load: IPv4 UDP/TCP flows to 10.1.0.1+f (TTL 64), plus flows with TTL 1 and a
/// few ARP frames. `denied(frame)` and `expired(frame)` tell what the NFs must remove.
pub struct Load {
    /// Frames in order.
    pub frames: Vec<Vec<u8>>,
}

/// MAC the l3fwd route writes as destination.
pub const NEXT_HOP_MAC: [u8; 6] = [0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x01];

impl Load {
    /// `flows` × `per_flow` IPv4 frames, then 3 TTL-1 frames and 4 ARP frames mixed in.
    pub fn new(flows: u32, per_flow: u32) -> Self {
        let mut frames: Vec<Vec<u8>> = generate_mixed_flows(&MixedFlows {
            flows,
            packets_per_flow: per_flow,
            dst_base: Ipv4Addr::new(10, 1, 0, 1),
            ..Default::default()
        })
        .into_iter()
        .map(|p| p.frame)
        .collect();
        let expired = generate_mixed_flows(&MixedFlows {
            flows: 3,
            packets_per_flow: 1,
            dst_base: Ipv4Addr::new(10, 1, 1, 1),
            src_base: Ipv4Addr::new(10, 0, 9, 1),
            ttl: 1,
            ..Default::default()
        });
        for (k, p) in expired.into_iter().enumerate() {
            frames.insert((k * 17 + 5).min(frames.len()), p.frame);
        }
        for k in 0..4 {
            let mut arp = vec![0u8; 60];
            arp[..6].copy_from_slice(&[0xff; 6]);
            arp[6..12].copy_from_slice(&MacAddr([2, 0, 0, 0, 0, 9]).0);
            arp[12] = 0x08;
            arp[13] = 0x06;
            arp[14..20].copy_from_slice(&[0, 1, 8, 0, 6, 4]);
            arp[21] = 1;
            frames.insert((k * 23 + 11).min(frames.len()), arp);
        }
        Self { frames }
    }

    /// The firewall rule file the load is meant for: deny 10.1.0.0/29 (flows to .1-.7) and
    /// UDP to port 53; default allow.
    pub fn rules() -> &'static str {
        "# test rules\ndeny dst=10.1.0.0/29\ndeny proto=udp dport=53\ndefault allow\n"
    }

    /// l3fwd routes: 10.1.0.0/16 to port `out` with the next-hop MAC.
    pub fn routes(out_port: u16) -> String {
        let m = NEXT_HOP_MAC;
        format!(
            "10.1.0.0/16 {out_port} dst-mac {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}\n",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }

    /// Whether the test's model says the firewall denies this frame.
    pub fn denied(f: &[u8]) -> bool {
        if f.len() < 34 || f[12..14] != [0x08, 0x00] {
            return false;
        }
        let ihl = usize::from(f[14] & 0x0f) * 4;
        let dst = Ipv4Addr::new(f[30], f[31], f[32], f[33]);
        let proto = f[23];
        let dport = f
            .get(14 + ihl + 2..14 + ihl + 4)
            .map(|b| u16::from_be_bytes([b[0], b[1]]));
        (u32::from(dst) & 0xffff_fff8) == u32::from(Ipv4Addr::new(10, 1, 0, 0))
            || (proto == 17 && dport == Some(53))
    }

    /// What must come out of firewall → l3fwd for this input, in order: allowed IPv4 frames
    /// with TTL > 1, TTL decremented, header checksum recomputed, next-hop MAC as destination.
    pub fn expected(&self) -> Vec<Vec<u8>> {
        self.frames
            .iter()
            .filter(|f| f.len() >= 34 && f[12..14] == [0x08, 0x00] && !Self::denied(f) && f[22] > 1)
            .map(|f| {
                let mut o = f.clone();
                o[..6].copy_from_slice(&NEXT_HOP_MAC);
                o[22] -= 1;
                let ihl = usize::from(o[14] & 0x0f) * 4;
                let c = ipv4_header_checksum(&o[14..14 + ihl]);
                o[24..26].copy_from_slice(&c.to_be_bytes());
                o
            })
            .collect()
    }
}

/// `flows` × `per_flow` mixed UDP/TCP frames (netvm-wire's default generator settings).
pub fn flow_frames(flows: u32, per_flow: u32) -> Vec<Vec<u8>> {
    generate_mixed_flows(&MixedFlows {
        flows,
        packets_per_flow: per_flow,
        ..Default::default()
    })
    .into_iter()
    .map(|p| p.frame)
    .collect()
}
