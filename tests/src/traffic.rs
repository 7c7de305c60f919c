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

/// `frames` as an l2fwd NF forwarding to `mac` sends them: destination MAC rewritten,
/// nothing else.
pub fn with_dst_mac(frames: &[Vec<u8>], mac: [u8; 6]) -> Vec<Vec<u8>> {
    frames
        .iter()
        .map(|f| {
            let mut f = f.clone();
            f[..6].copy_from_slice(&mac);
            f
        })
        .collect()
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

// ---------------------------------------------------------------------------------------------
// The mixed IPv4/IPv6 load: frames built here byte by byte (independently of netvm-wire's
// builder and parser), each with the fate the documented policies give it.

/// What the firewall decides for a frame of the mixed load (its counters' names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FwBy {
    /// Rule `i` (0-based) of [`MixedLoad::rules`].
    Rule(usize),
    /// No rule matched: `default allow`.
    Default,
    /// A non-first fragment no rule matched: `fragments allow`.
    Fragments,
    /// Not IP: the default policy (allow).
    NonIp,
    /// Malformed IP: denied.
    Malformed,
}

/// What l3fwd does with a frame the firewall passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L3 {
    /// Routed out of port 1 (TTL / hop limit decremented, next-hop MAC written).
    Out,
    /// Dropped and counted under this reason name.
    Drop(&'static str),
}

/// One frame of the mixed load and its fate.
#[derive(Clone, Debug)]
pub struct MixedFrame {
    /// What it is, for messages.
    pub what: &'static str,
    /// The bytes.
    pub bytes: Vec<u8>,
    /// The firewall's decision.
    pub fw: FwBy,
    /// l3fwd's, for frames the firewall allows.
    pub l3: L3,
    /// An IP fragment (tshark may not verify its L4 checksum on its own).
    pub fragment: bool,
}

impl MixedFrame {
    /// Whether the firewall allows it (the rules' actions: 0-3 deny).
    pub fn allowed(&self) -> bool {
        !matches!(self.fw, FwBy::Rule(_) | FwBy::Malformed)
    }
}

/// One's-complement sum of 16-bit words (odd length padded with a zero byte).
fn ones_sum(data: &[u8], mut s: u64) -> u64 {
    for c in data.chunks(2) {
        s += (u64::from(c[0]) << 8) | u64::from(*c.get(1).unwrap_or(&0));
    }
    s
}

fn fold(mut s: u64) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !u16::try_from(s).unwrap_or(0)
}

const MAC_DST: [u8; 6] = [2, 0, 0, 0, 0, 2];
const MAC_SRC: [u8; 6] = [2, 0, 0, 0, 0, 1];

/// Ethernet header with `tags` (0, 1 = 802.1Q VID 100, 2 = 802.1ad VID 200 + 802.1Q VID 300).
fn eth(tags: usize, ethertype: u16) -> Vec<u8> {
    let mut f = MAC_DST.to_vec();
    f.extend_from_slice(&MAC_SRC);
    match tags {
        0 => {}
        1 => f.extend_from_slice(&[0x81, 0x00, 0x00, 100]),
        _ => f.extend_from_slice(&[0x88, 0xa8, 0x00, 200, 0x81, 0x00, 0x01, 0x2c]),
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// L4 segment (UDP, TCP, ICMP or ICMPv6) with a valid checksum for the given pseudo-header
/// sum (0 for ICMPv4, which has none).
fn l4(proto: u8, sport: u16, dport: u16, payload: &[u8], pseudo: u64) -> Vec<u8> {
    let (mut seg, csum_at) = match proto {
        17 => {
            let mut s = Vec::new();
            s.extend_from_slice(&sport.to_be_bytes());
            s.extend_from_slice(&dport.to_be_bytes());
            s.extend_from_slice(&u16::try_from(8 + payload.len()).unwrap().to_be_bytes());
            s.extend_from_slice(&[0, 0]);
            (s, 6)
        }
        6 => {
            let mut s = Vec::new();
            s.extend_from_slice(&sport.to_be_bytes());
            s.extend_from_slice(&dport.to_be_bytes());
            s.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
            (s, 16)
        }
        // ICMP echo request (8) / ICMPv6 echo request (128): id = sport, seq = dport.
        _ => {
            let mut s = vec![if proto == 58 { 128 } else { 8 }, 0, 0, 0];
            s.extend_from_slice(&sport.to_be_bytes());
            s.extend_from_slice(&dport.to_be_bytes());
            (s, 2)
        }
    };
    seg.extend_from_slice(payload);
    let c = fold(ones_sum(&seg, pseudo));
    // UDP sends a computed 0 as 0xffff.
    let c = if proto == 17 && c == 0 { 0xffff } else { c };
    seg[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());
    seg
}

fn v4_pseudo(src: [u8; 4], dst: [u8; 4], proto: u8, len: usize) -> u64 {
    if proto == 1 {
        return 0;
    }
    let mut p = src.to_vec();
    p.extend_from_slice(&dst);
    p.extend_from_slice(&[0, proto]);
    p.extend_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
    ones_sum(&p, 0)
}

fn v6_pseudo(src: &[u8; 16], dst: &[u8; 16], nh: u8, len: usize) -> u64 {
    let mut p = src.to_vec();
    p.extend_from_slice(dst);
    p.extend_from_slice(&u32::try_from(len).unwrap().to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, nh]);
    ones_sum(&p, 0)
}

/// IPv4 header (`options` padded by the caller to 4 bytes) + `body`, checksum valid.
fn ipv4(
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    ttl: u8,
    frag: u16,
    options: &[u8],
    body: &[u8],
) -> Vec<u8> {
    let hl = 20 + options.len();
    let mut h = vec![0x40 | u8::try_from(hl / 4).unwrap(), 0];
    h.extend_from_slice(&u16::try_from(hl + body.len()).unwrap().to_be_bytes());
    h.extend_from_slice(&[0x12, 0x34]);
    h.extend_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&[ttl, proto, 0, 0]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h.extend_from_slice(options);
    let c = ipv4_header_checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(body);
    h
}

fn ipv6(src: &[u8; 16], dst: &[u8; 16], nh: u8, hl: u8, body: &[u8]) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
    h.extend_from_slice(&[nh, hl]);
    h.extend_from_slice(src);
    h.extend_from_slice(dst);
    h.extend_from_slice(body);
    h
}

fn a6(s: &str) -> [u8; 16] {
    s.parse::<std::net::Ipv6Addr>().expect("ipv6").octets()
}

/// The mixed IPv4/IPv6 load (see the tests that use it).
pub struct MixedLoad {
    /// Frames in order, with their fates.
    pub frames: Vec<MixedFrame>,
}

impl MixedLoad {
    /// The firewall rules of the load: rules 0-3 deny.
    pub fn rules() -> &'static str {
        "deny proto=tcp dport=23\n\
         deny dst=10.1.0.0/29\n\
         deny dst=2001:db8:1::/64\n\
         deny proto=udp dport=53\n\
         fragments allow\n\
         default allow\n"
    }

    /// l3fwd routes: 10.1.0.0/16 and 2001:db8::/32 to port `out` with the next-hop MAC.
    pub fn routes(out_port: u16) -> String {
        let m = NEXT_HOP_MAC;
        let mac = format!(
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        );
        format!("10.1.0.0/16 {out_port} dst-mac {mac}\n2001:db8::/32 {out_port} dst-mac {mac}\n")
    }

    /// Builds the load.
    #[allow(clippy::too_many_lines)]
    pub fn new() -> Self {
        let mut frames = Vec::new();
        let mut add = |what, bytes: Vec<u8>, fw, l3, fragment| {
            frames.push(MixedFrame {
                what,
                bytes,
                fw,
                l3,
                fragment,
            });
        };
        let s4 = [10, 0, 0, 1];
        let d4 = [10, 1, 1, 1];
        let s6 = a6("2001:db8:ff::1");
        let d6 = a6("2001:db8:2::1");
        let pl = b"netvm ipv6 test payload.";
        let v4 = |tags, proto, sport, dport, dst: [u8; 4], ttl, options: &[u8], payload: &[u8]| {
            let seg = l4(proto, sport, dport, payload, 0);
            let seg = l4(
                proto,
                sport,
                dport,
                payload,
                v4_pseudo(s4, dst, proto, seg.len()),
            );
            let mut f = eth(tags, 0x0800);
            f.extend_from_slice(&ipv4(s4, dst, proto, ttl, 0, options, &seg));
            f
        };
        let v6 = |tags,
                  proto,
                  sport,
                  dport,
                  dst: &[u8; 16],
                  hl,
                  ext: &[u8],
                  first_nh: u8,
                  payload: &[u8]| {
            let seg = l4(proto, sport, dport, payload, 0);
            let seg = l4(
                proto,
                sport,
                dport,
                payload,
                v6_pseudo(&s6, dst, proto, seg.len()),
            );
            let mut body = ext.to_vec();
            body.extend_from_slice(&seg);
            let mut f = eth(tags, 0x86dd);
            f.extend_from_slice(&ipv6(
                &s6,
                dst,
                if ext.is_empty() { proto } else { first_nh },
                hl,
                &body,
            ));
            f
        };
        use FwBy::{Default as Dflt, Fragments, Malformed, NonIp, Rule};
        use L3::{Drop, Out};
        add(
            "v4 udp",
            v4(0, 17, 1000, 5000, d4, 64, &[], pl),
            Dflt,
            Out,
            false,
        );
        add(
            "v4 tcp 80",
            v4(0, 6, 40000, 80, d4, 64, &[], pl),
            Dflt,
            Out,
            false,
        );
        // Jumbo frames (the run's domains carry frames up to 9,216 bytes), routed whole.
        let big = |n: usize| -> Vec<u8> { (0..n).map(|i| i.to_le_bytes()[0]).collect() };
        add(
            "v4 udp 1518 B",
            v4(0, 17, 1002, 5000, d4, 64, &[], &big(1518 - 14 - 20 - 8)),
            Dflt,
            Out,
            false,
        );
        add(
            "v4 tcp 4000 B",
            v4(0, 6, 40002, 80, d4, 64, &[], &big(4000 - 14 - 20 - 20)),
            Dflt,
            Out,
            false,
        );
        add(
            "v4 telnet",
            v4(0, 6, 40001, 23, d4, 64, &[], pl),
            Rule(0),
            Out,
            false,
        );
        add(
            "v4 icmp echo",
            v4(0, 1, 7, 1, d4, 64, &[], pl),
            Dflt,
            Out,
            false,
        );
        add(
            "v4 dns",
            v4(0, 17, 1001, 53, d4, 64, &[], pl),
            Rule(3),
            Out,
            false,
        );
        add(
            "v4 denied prefix",
            v4(0, 17, 1000, 5000, [10, 1, 0, 3], 64, &[], pl),
            Rule(1),
            Out,
            false,
        );
        add(
            "v4 vlan udp",
            v4(1, 17, 1002, 5000, d4, 64, &[], pl),
            Dflt,
            Out,
            false,
        );
        add(
            "v4 qinq udp",
            v4(2, 17, 1003, 5000, d4, 64, &[], pl),
            Dflt,
            Out,
            false,
        );
        add(
            "v4 ip options",
            v4(0, 17, 1004, 5000, d4, 64, &[1, 1, 1, 0], pl),
            Dflt,
            Out,
            false,
        );
        add(
            "v4 ttl 0",
            v4(0, 17, 1005, 5000, d4, 0, &[], pl),
            Dflt,
            Drop("ttl_expired"),
            false,
        );
        add(
            "v4 ttl 1",
            v4(0, 17, 1006, 5000, d4, 1, &[], pl),
            Dflt,
            Drop("ttl_expired"),
            false,
        );
        add(
            "v4 ttl 2",
            v4(0, 17, 1007, 5000, d4, 2, &[], pl),
            Dflt,
            Out,
            false,
        );
        add(
            "v4 no route",
            v4(0, 17, 1008, 5000, [192, 168, 0, 1], 64, &[], pl),
            Dflt,
            Drop("no_route"),
            false,
        );
        add(
            "v4 runt udp",
            v4(0, 17, 1009, 5000, d4, 64, &[], b"ab"),
            Dflt,
            Out,
            false,
        );
        add(
            "v6 udp",
            v6(0, 17, 2000, 5000, &d6, 64, &[], 0, pl),
            Dflt,
            Out,
            false,
        );
        add(
            "v6 udp 9000 B, VLAN",
            v6(1, 17, 2001, 5000, &d6, 64, &[], 0, &big(9000 - 18 - 40 - 8)),
            Dflt,
            Out,
            false,
        );
        add(
            "v6 tcp 443",
            v6(0, 6, 40002, 443, &d6, 64, &[], 0, pl),
            Dflt,
            Out,
            false,
        );
        add(
            "v6 telnet",
            v6(0, 6, 40003, 23, &d6, 64, &[], 0, pl),
            Rule(0),
            Out,
            false,
        );
        add(
            "v6 icmpv6 echo",
            v6(0, 58, 9, 1, &d6, 64, &[], 0, pl),
            Dflt,
            Out,
            false,
        );
        add(
            "v6 dns",
            v6(0, 17, 2001, 53, &d6, 64, &[], 0, pl),
            Rule(3),
            Out,
            false,
        );
        add(
            "v6 denied prefix",
            v6(0, 17, 2000, 5000, &a6("2001:db8:1::5"), 64, &[], 0, pl),
            Rule(2),
            Out,
            false,
        );
        add(
            "v6 hop-by-hop udp",
            v6(
                0,
                17,
                2002,
                5000,
                &d6,
                64,
                &[17, 0, 1, 4, 0, 0, 0, 0],
                0,
                pl,
            ),
            Dflt,
            Out,
            false,
        );
        add(
            "v6 hop-by-hop telnet",
            v6(0, 6, 40004, 23, &d6, 64, &[6, 0, 1, 4, 0, 0, 0, 0], 0, pl),
            Rule(0),
            Out,
            false,
        );
        add(
            "v6 vlan tcp",
            v6(1, 6, 40005, 443, &d6, 64, &[], 0, pl),
            Dflt,
            Out,
            false,
        );
        add(
            "v6 qinq udp",
            v6(2, 17, 2003, 5000, &d6, 64, &[], 0, pl),
            Dflt,
            Out,
            false,
        );
        add(
            "v6 hop limit 0",
            v6(0, 17, 2004, 5000, &d6, 0, &[], 0, pl),
            Dflt,
            Drop("hop_limit_expired"),
            false,
        );
        add(
            "v6 hop limit 1",
            v6(0, 17, 2005, 5000, &d6, 1, &[], 0, pl),
            Dflt,
            Drop("hop_limit_expired"),
            false,
        );
        add(
            "v6 hop limit 2",
            v6(0, 17, 2006, 5000, &d6, 2, &[], 0, pl),
            Dflt,
            Out,
            false,
        );
        add(
            "v6 no route",
            v6(0, 17, 2007, 5000, &a6("2002::1"), 64, &[], 0, pl),
            Dflt,
            Drop("no_route"),
            false,
        );
        let mut long = Vec::new();
        for i in 0..5 {
            long.extend_from_slice(&[if i == 4 { 17 } else { 60 }, 0, 1, 4, 0, 0, 0, 0]);
        }
        add(
            "v6 ext chain past the bound",
            v6(0, 17, 2008, 5000, &d6, 64, &long, 60, pl),
            Malformed,
            Out,
            false,
        );

        // Fragments: one datagram (L4 checksum over the whole) split after 16 bytes of L4.
        for (what1, what2, proto, dport, first_fw) in [
            ("v4 udp frag 1", "v4 udp frag 2", 17u8, 5000u16, Dflt),
            ("v4 telnet frag 1", "v4 telnet frag 2", 6, 23, Rule(0)),
        ] {
            let seg = l4(proto, 3000, dport, pl, 0);
            let seg = l4(proto, 3000, dport, pl, v4_pseudo(s4, d4, proto, seg.len()));
            let split = if proto == 6 { 24 } else { 16 };
            let mut f1 = eth(0, 0x0800);
            f1.extend_from_slice(&ipv4(s4, d4, proto, 64, 0x2000, &[], &seg[..split]));
            let mut f2 = eth(0, 0x0800);
            let off = u16::try_from(split / 8).unwrap();
            f2.extend_from_slice(&ipv4(s4, d4, proto, 64, off, &[], &seg[split..]));
            add(what1, f1, first_fw, Out, true);
            add(what2, f2, Fragments, Out, true);
        }
        for (what1, what2, proto, dport, first_fw) in [
            ("v6 udp frag 1", "v6 udp frag 2", 17u8, 5000u16, Dflt),
            ("v6 telnet frag 1", "v6 telnet frag 2", 6, 23, Rule(0)),
        ] {
            let seg = l4(proto, 3001, dport, pl, 0);
            let seg = l4(
                proto,
                3001,
                dport,
                pl,
                v6_pseudo(&s6, &d6, proto, seg.len()),
            );
            let split = if proto == 6 { 24 } else { 16 };
            let off = u16::try_from(split).unwrap();
            let mut b1 = vec![proto, 0, 0, 1, 0, 0, 0x77, 0x77];
            b1.extend_from_slice(&seg[..split]);
            let mut b2 = vec![proto, 0];
            b2.extend_from_slice(&off.to_be_bytes());
            b2.extend_from_slice(&[0, 0, 0x77, 0x77]);
            b2.extend_from_slice(&seg[split..]);
            let mut f1 = eth(0, 0x86dd);
            f1.extend_from_slice(&ipv6(&s6, &d6, 44, 64, &b1));
            let mut f2 = eth(0, 0x86dd);
            f2.extend_from_slice(&ipv6(&s6, &d6, 44, 64, &b2));
            add(what1, f1, first_fw, Out, true);
            add(what2, f2, Fragments, Out, true);
        }

        // Non-IP and malformed runts.
        let mut arp = eth(0, 0x0806);
        arp.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        arp.extend_from_slice(&[0; 20]);
        add("arp runt", arp, NonIp, Drop("not_ip"), false);
        let mut trunc = eth(0, 0x0800);
        trunc.extend_from_slice(&[0x45, 0, 0, 40, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0]);
        add("truncated v4 runt", trunc, Malformed, Out, false);
        let mut bad_ihl = v4(0, 17, 1010, 5000, d4, 64, &[], pl);
        bad_ihl[14] = 0x44;
        let c = ipv4_header_checksum(&bad_ihl[14..34]);
        bad_ihl[24..26].copy_from_slice(&c.to_be_bytes());
        add("v4 bad ihl", bad_ihl, Malformed, Out, false);
        Self { frames }
    }

    /// The frames' bytes, in order.
    pub fn bytes(&self) -> Vec<Vec<u8>> {
        self.frames.iter().map(|f| f.bytes.clone()).collect()
    }

    /// What firewall → l3fwd must emit, in order: allowed frames l3fwd routes, with the
    /// next-hop MAC, TTL − 1 and a recomputed IPv4 header checksum, or hop limit − 1; VLAN
    /// tags kept.
    pub fn expected(&self) -> Vec<Vec<u8>> {
        self.frames
            .iter()
            .filter(|f| f.allowed() && f.l3 == L3::Out)
            .map(|f| {
                let mut o = f.bytes.clone();
                o[..6].copy_from_slice(&NEXT_HOP_MAC);
                let mut l2 = 12;
                while o[l2..l2 + 2] == [0x81, 0x00] || o[l2..l2 + 2] == [0x88, 0xa8] {
                    l2 += 4;
                }
                let ty = [o[l2], o[l2 + 1]];
                let ip = l2 + 2;
                if ty == [0x08, 0x00] {
                    o[ip + 8] -= 1;
                    let ihl = usize::from(o[ip] & 0x0f) * 4;
                    let c = ipv4_header_checksum(&o[ip..ip + ihl]);
                    o[ip + 10..ip + 12].copy_from_slice(&c.to_be_bytes());
                } else {
                    o[ip + 7] -= 1;
                }
                o
            })
            .collect()
    }
}

impl Default for MixedLoad {
    fn default() -> Self {
        Self::new()
    }
}
