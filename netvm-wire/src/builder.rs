//! A traffic builder for tests, benchmarks and the demo.
//!
//! [`FrameSpec`] builds one Ethernet/IPv4/UDP|TCP frame with valid IPv4, UDP and
//! TCP checksums, either into a caller's buffer without allocating
//! ([`FrameSpec::write`], e.g. straight into an mbuf) or into a new `Vec`.
//! [`generate_mixed_flows`] makes N flows × M packets whose payloads encode
//! (flow id, sequence number) in a pattern that [`decode_payload`] checks byte
//! for byte, so a test can prove a packet came through a chain unaltered.

use core::ops::RangeInclusive;
use std::net::Ipv4Addr;

use thiserror::Error;

use crate::checksum;
use crate::ethernet::ethertype;
use crate::flow::FlowKey;
use crate::l4::{ip_proto, tcp_flags};
use crate::mac::MacAddr;

/// The L4 part of a [`FrameSpec`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum L4Spec {
    /// UDP with these ports; the payload follows the 8-byte header.
    Udp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
    },
    /// TCP with a 20-byte header (no options) and window 65535.
    Tcp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
        /// Sequence number.
        seq: u32,
        /// Acknowledgement number.
        ack: u32,
        /// Flag bits (see [`tcp_flags`]).
        flags: u8,
    },
    /// Any other protocol: the payload is the whole IPv4 payload (e.g. an ICMP
    /// message the caller built).
    Raw {
        /// IP protocol number.
        proto: u8,
    },
}

impl L4Spec {
    fn header_len(&self) -> usize {
        match self {
            L4Spec::Udp { .. } => 8,
            L4Spec::Tcp { .. } => 20,
            L4Spec::Raw { .. } => 0,
        }
    }

    fn proto(&self) -> u8 {
        match self {
            L4Spec::Udp { .. } => ip_proto::UDP,
            L4Spec::Tcp { .. } => ip_proto::TCP,
            L4Spec::Raw { proto } => *proto,
        }
    }

    fn ports(&self) -> (u16, u16) {
        match *self {
            L4Spec::Udp { src_port, dst_port }
            | L4Spec::Tcp {
                src_port, dst_port, ..
            } => (src_port, dst_port),
            L4Spec::Raw { .. } => (0, 0),
        }
    }
}

/// Everything about a frame except its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FrameSpec {
    /// Ethernet destination.
    pub dst_mac: MacAddr,
    /// Ethernet source.
    pub src_mac: MacAddr,
    /// One 802.1Q tag (TCI) if `Some`.
    pub vlan_tci: Option<u16>,
    /// IPv4 source.
    pub src_ip: Ipv4Addr,
    /// IPv4 destination.
    pub dst_ip: Ipv4Addr,
    /// IPv4 TTL.
    pub ttl: u8,
    /// IPv4 identification.
    pub ip_id: u16,
    /// L4 header.
    pub l4: L4Spec,
}

impl Default for FrameSpec {
    /// 02:00:00:00:00:01 → 02:00:00:00:00:02, 10.0.0.1:1024 → 10.0.0.2:5000 UDP, TTL 64.
    fn default() -> Self {
        FrameSpec {
            dst_mac: MacAddr([0x02, 0, 0, 0, 0, 0x02]),
            src_mac: MacAddr([0x02, 0, 0, 0, 0, 0x01]),
            vlan_tci: None,
            src_ip: Ipv4Addr::new(10, 0, 0, 1),
            dst_ip: Ipv4Addr::new(10, 0, 0, 2),
            ttl: 64,
            ip_id: 0,
            l4: L4Spec::Udp {
                src_port: 1024,
                dst_port: 5000,
            },
        }
    }
}

/// Why a frame could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum BuildError {
    /// The output buffer is too small for the frame.
    #[error("output buffer holds {have} bytes, the frame needs {need}")]
    BufferTooSmall {
        /// Frame length.
        need: usize,
        /// Buffer length.
        have: usize,
    },
    /// The payload does not fit in one IPv4 packet.
    #[error("payload of {len} bytes exceeds the IPv4 limit of {max} for this protocol")]
    PayloadTooLarge {
        /// Payload length.
        len: usize,
        /// Largest payload possible.
        max: usize,
    },
}

impl FrameSpec {
    fn l2_len(&self) -> usize {
        if self.vlan_tci.is_some() {
            18
        } else {
            14
        }
    }

    /// The largest payload this spec can carry (IPv4 total length ≤ 65535).
    pub fn max_payload(&self) -> usize {
        65_535 - 20 - self.l4.header_len()
    }

    /// Frame length for a payload of `payload_len` bytes.
    pub fn frame_len(&self, payload_len: usize) -> usize {
        self.l2_len() + 20 + self.l4.header_len() + payload_len
    }

    /// The 5-tuple of frames built from this spec.
    pub fn flow_key(&self) -> FlowKey {
        let (src_port, dst_port) = self.l4.ports();
        FlowKey {
            src_ip: self.src_ip.into(),
            dst_ip: self.dst_ip.into(),
            proto: self.l4.proto(),
            src_port,
            dst_port,
        }
    }

    /// The spec of the reply direction (MACs, addresses and ports swapped).
    pub fn reversed(&self) -> FrameSpec {
        let l4 = match self.l4 {
            L4Spec::Udp { src_port, dst_port } => L4Spec::Udp {
                src_port: dst_port,
                dst_port: src_port,
            },
            L4Spec::Tcp {
                src_port,
                dst_port,
                seq,
                ack,
                flags,
            } => L4Spec::Tcp {
                src_port: dst_port,
                dst_port: src_port,
                seq: ack,
                ack: seq,
                flags,
            },
            raw @ L4Spec::Raw { .. } => raw,
        };
        FrameSpec {
            dst_mac: self.src_mac,
            src_mac: self.dst_mac,
            src_ip: self.dst_ip,
            dst_ip: self.src_ip,
            l4,
            ..*self
        }
    }

    /// Writes the frame into the start of `out` and returns its length. Does not
    /// allocate; bytes of `out` past the frame are left alone.
    pub fn write(&self, payload: &[u8], out: &mut [u8]) -> Result<usize, BuildError> {
        let max = self.max_payload();
        if payload.len() > max {
            return Err(BuildError::PayloadTooLarge {
                len: payload.len(),
                max,
            });
        }
        let len = self.frame_len(payload.len());
        let Some(f) = out.get_mut(..len) else {
            return Err(BuildError::BufferTooSmall {
                need: len,
                have: out.len(),
            });
        };
        let l2 = self.l2_len();
        let l4_len = self.l4.header_len() + payload.len();
        // Both fit in u16: payload.len() <= max_payload().
        let total_len = u16::try_from(20 + l4_len).unwrap_or(u16::MAX);
        let l4_len16 = u16::try_from(l4_len).unwrap_or(u16::MAX);

        // Ethernet.
        f[0..6].copy_from_slice(&self.dst_mac.0);
        f[6..12].copy_from_slice(&self.src_mac.0);
        if let Some(tci) = self.vlan_tci {
            f[12..14].copy_from_slice(&ethertype::VLAN.to_be_bytes());
            f[14..16].copy_from_slice(&tci.to_be_bytes());
        }
        f[l2 - 2..l2].copy_from_slice(&ethertype::IPV4.to_be_bytes());

        // IPv4.
        let (ip, seg) = f[l2..].split_at_mut(20);
        ip[0] = 0x45;
        ip[1] = 0;
        ip[2..4].copy_from_slice(&total_len.to_be_bytes());
        ip[4..6].copy_from_slice(&self.ip_id.to_be_bytes());
        ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes()); // DF
        ip[8] = self.ttl;
        ip[9] = self.l4.proto();
        ip[10..12].fill(0);
        ip[12..16].copy_from_slice(&self.src_ip.octets());
        ip[16..20].copy_from_slice(&self.dst_ip.octets());
        let c = checksum::checksum(ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());

        // L4.
        let h = self.l4.header_len();
        seg[h..].copy_from_slice(payload);
        let pseudo =
            checksum::pseudo_header_sum(self.src_ip, self.dst_ip, self.l4.proto(), l4_len16);
        match self.l4 {
            L4Spec::Udp { src_port, dst_port } => {
                seg[0..2].copy_from_slice(&src_port.to_be_bytes());
                seg[2..4].copy_from_slice(&dst_port.to_be_bytes());
                seg[4..6].copy_from_slice(&l4_len16.to_be_bytes());
                seg[6..8].fill(0);
                let c = match checksum::finish(checksum::sum(seg, pseudo)) {
                    0 => 0xffff,
                    c => c,
                };
                seg[6..8].copy_from_slice(&c.to_be_bytes());
            }
            L4Spec::Tcp {
                src_port,
                dst_port,
                seq,
                ack,
                flags,
            } => {
                seg[0..2].copy_from_slice(&src_port.to_be_bytes());
                seg[2..4].copy_from_slice(&dst_port.to_be_bytes());
                seg[4..8].copy_from_slice(&seq.to_be_bytes());
                seg[8..12].copy_from_slice(&ack.to_be_bytes());
                seg[12] = 5 << 4;
                seg[13] = flags;
                seg[14..16].copy_from_slice(&0xffffu16.to_be_bytes());
                seg[16..20].fill(0);
                let c = checksum::finish(checksum::sum(seg, pseudo));
                seg[16..18].copy_from_slice(&c.to_be_bytes());
            }
            L4Spec::Raw { .. } => {}
        }
        Ok(len)
    }

    /// Builds the frame into a new `Vec`.
    ///
    /// # Panics
    /// If `payload` is longer than [`max_payload`](Self::max_payload) (a test
    /// helper's misuse; use [`write`](Self::write) for a `Result`).
    pub fn build(&self, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; self.frame_len(payload.len())];
        match self.write(payload, &mut v) {
            Ok(_) => v,
            Err(e) => panic!("FrameSpec::build: {e}"),
        }
    }
}

/// Length of the tag at the start of every generated payload: magic `"NV"`,
/// a 16-bit check of the other fields, flow id, sequence number and payload
/// length (u32s, big endian).
pub const PAYLOAD_TAG_LEN: usize = 16;

const MAGIC: &[u8; 2] = b"NV";

use crate::flow::fmix64 as mix;

fn seed(flow: u32, seq: u32) -> u64 {
    mix((u64::from(flow) << 32) | u64::from(seq))
}

fn tag_check(flow: u32, seq: u32, len: u32) -> [u8; 2] {
    let h = mix(seed(flow, seq) ^ u64::from(len)).to_le_bytes();
    [h[0], h[1]]
}

/// The filler byte at offset `i` of a payload with seed `s`: every byte depends
/// on the whole (flow, seq) pair, so any corruption of tag or body shows.
#[inline]
fn pattern_byte(s: u64, i: usize) -> u8 {
    let i = u64::try_from(i).unwrap_or(0);
    mix(s.wrapping_add(i.wrapping_mul(0x9e37_79b9_7f4a_7c15))).to_le_bytes()[0]
}

/// Fills `out` with the payload of packet `seq` of flow `flow`: a
/// [`PAYLOAD_TAG_LEN`]-byte tag then a deterministic pattern. Returns `false`
/// (and writes nothing) if `out` is shorter than the tag or longer than
/// `u32::MAX` bytes.
pub fn write_payload(flow: u32, seq: u32, out: &mut [u8]) -> bool {
    let Ok(len) = u32::try_from(out.len()) else {
        return false;
    };
    if out.len() < PAYLOAD_TAG_LEN {
        return false;
    }
    out[0..2].copy_from_slice(MAGIC);
    out[2..4].copy_from_slice(&tag_check(flow, seq, len));
    out[4..8].copy_from_slice(&flow.to_be_bytes());
    out[8..12].copy_from_slice(&seq.to_be_bytes());
    out[12..16].copy_from_slice(&len.to_be_bytes());
    let s = seed(flow, seq);
    for (i, b) in out.iter_mut().enumerate().skip(PAYLOAD_TAG_LEN) {
        *b = pattern_byte(s, i);
    }
    true
}

/// Checks a payload made by [`write_payload`] byte for byte and returns its
/// (flow id, sequence number); `None` if any byte differs or the length is wrong.
pub fn decode_payload(payload: &[u8]) -> Option<(u32, u32)> {
    let word = |o: usize| -> Option<u32> {
        let b: [u8; 4] = payload.get(o..o + 4)?.try_into().ok()?;
        Some(u32::from_be_bytes(b))
    };
    if payload.get(0..2)? != MAGIC {
        return None;
    }
    let (flow, seq, len) = (word(4)?, word(8)?, word(12)?);
    if usize::try_from(len).ok()? != payload.len()
        || payload.get(2..4)? != tag_check(flow, seq, len)
    {
        return None;
    }
    let s = seed(flow, seq);
    payload
        .iter()
        .enumerate()
        .skip(PAYLOAD_TAG_LEN)
        .all(|(i, &b)| b == pattern_byte(s, i))
        .then_some((flow, seq))
}

/// Which L4 protocols [`generate_mixed_flows`] uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Protocols {
    /// UDP for even flow ids, TCP for odd ones.
    #[default]
    Mixed,
    /// UDP only.
    Udp,
    /// TCP only.
    Tcp,
}

/// Parameters of [`generate_mixed_flows`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MixedFlows {
    /// Number of flows.
    pub flows: u32,
    /// Packets per flow.
    pub packets_per_flow: u32,
    /// Payload length range; each packet's length is picked deterministically from
    /// it. Lengths below [`PAYLOAD_TAG_LEN`] are raised to it.
    pub payload_len: RangeInclusive<usize>,
    /// Protocol choice.
    pub protocols: Protocols,
    /// Ethernet source of every frame.
    pub src_mac: MacAddr,
    /// Ethernet destination of every frame.
    pub dst_mac: MacAddr,
    /// Flow f has source address `src_base + f`.
    pub src_base: Ipv4Addr,
    /// Flow f has destination address `dst_base + f`.
    pub dst_base: Ipv4Addr,
    /// TTL of every frame.
    pub ttl: u8,
}

impl Default for MixedFlows {
    /// 16 flows × 8 packets, 16–200 byte payloads, mixed UDP/TCP,
    /// 10.0.0.1+f → 10.1.0.1+f, TTL 64.
    fn default() -> Self {
        MixedFlows {
            flows: 16,
            packets_per_flow: 8,
            payload_len: PAYLOAD_TAG_LEN..=200,
            protocols: Protocols::Mixed,
            src_mac: MacAddr([0x02, 0, 0, 0, 0, 0x01]),
            dst_mac: MacAddr([0x02, 0, 0, 0, 0, 0x02]),
            src_base: Ipv4Addr::new(10, 0, 0, 1),
            dst_base: Ipv4Addr::new(10, 1, 0, 1),
            ttl: 64,
        }
    }
}

impl MixedFlows {
    /// The frame spec of packet `seq` of flow `flow`.
    pub fn spec(&self, flow: u32, seq: u32) -> FrameSpec {
        let src_port = 1024 + u16::try_from(flow % 64_000).unwrap_or(0);
        let dst_port = 10_000 + u16::try_from(flow % 50_000).unwrap_or(0);
        let tcp = match self.protocols {
            Protocols::Mixed => flow % 2 == 1,
            Protocols::Udp => false,
            Protocols::Tcp => true,
        };
        let l4 = if tcp {
            L4Spec::Tcp {
                src_port,
                dst_port,
                seq: seq.wrapping_mul(1000),
                ack: 0,
                flags: tcp_flags::ACK | tcp_flags::PSH,
            }
        } else {
            L4Spec::Udp { src_port, dst_port }
        };
        FrameSpec {
            dst_mac: self.dst_mac,
            src_mac: self.src_mac,
            vlan_tci: None,
            src_ip: Ipv4Addr::from(u32::from(self.src_base).wrapping_add(flow)),
            dst_ip: Ipv4Addr::from(u32::from(self.dst_base).wrapping_add(flow)),
            ttl: self.ttl,
            ip_id: seq.to_le_bytes()[0].into(),
            l4,
        }
    }

    /// The payload length of packet `seq` of flow `flow`.
    pub fn payload_len_of(&self, flow: u32, seq: u32) -> usize {
        let lo = (*self.payload_len.start()).max(PAYLOAD_TAG_LEN);
        let hi = (*self.payload_len.end()).max(lo);
        let span = hi - lo + 1;
        let mix =
            usize::try_from(flow.wrapping_mul(7).wrapping_add(seq.wrapping_mul(13))).unwrap_or(0);
        lo + mix % span
    }
}

/// One frame made by [`generate_mixed_flows`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratedPacket {
    /// Flow id, 0-based.
    pub flow_id: u32,
    /// Sequence number within the flow, 0-based.
    pub seq: u32,
    /// The frame's 5-tuple.
    pub key: FlowKey,
    /// The frame.
    pub frame: Vec<u8>,
}

/// `cfg.flows` × `cfg.packets_per_flow` frames, interleaved round-robin
/// (seq 0 of every flow, then seq 1, …), each with a payload from
/// [`write_payload`]. Deterministic: the same `cfg` gives the same bytes.
///
/// # Panics
/// If `cfg.payload_len` goes past the largest IPv4 payload (about 65 KB).
pub fn generate_mixed_flows(cfg: &MixedFlows) -> Vec<GeneratedPacket> {
    let n = usize::try_from(u64::from(cfg.flows) * u64::from(cfg.packets_per_flow)).unwrap_or(0);
    let mut out = Vec::with_capacity(n);
    let mut payload = Vec::new();
    for seq in 0..cfg.packets_per_flow {
        for flow in 0..cfg.flows {
            let spec = cfg.spec(flow, seq);
            payload.resize(cfg.payload_len_of(flow, seq), 0);
            write_payload(flow, seq, &mut payload);
            out.push(GeneratedPacket {
                flow_id: flow,
                seq,
                key: spec.flow_key(),
                frame: spec.build(&payload),
            });
        }
    }
    out
}

#[cfg(test)]
// Test data is made by deliberately truncating wider integers.
#[allow(clippy::cast_possible_truncation)]
mod tests {
    use super::*;
    use crate::{EthernetFrame, Ipv4Packet, PacketMeta, TcpPacket, UdpPacket};

    #[test]
    fn built_frames_are_valid() {
        for l4 in [
            L4Spec::Udp {
                src_port: 1,
                dst_port: 2,
            },
            L4Spec::Tcp {
                src_port: 3,
                dst_port: 4,
                seq: 5,
                ack: 6,
                flags: tcp_flags::SYN,
            },
            L4Spec::Raw { proto: 1 },
        ] {
            for vlan in [None, Some(0x0123)] {
                for plen in [0usize, 1, 2, 3, 17, 1000] {
                    let spec = FrameSpec {
                        l4,
                        vlan_tci: vlan,
                        ..FrameSpec::default()
                    };
                    let payload: Vec<u8> = (0..plen).map(|i| (i * 3) as u8).collect();
                    let f = spec.build(&payload);
                    assert_eq!(f.len(), spec.frame_len(plen));
                    let e = EthernetFrame::new_checked(&f[..]).unwrap();
                    assert_eq!(e.vlan_tci(), vlan);
                    let ip = Ipv4Packet::new_checked(e.payload()).unwrap();
                    assert!(ip.verify_checksum());
                    let (s, d) = (ip.src(), ip.dst());
                    match l4 {
                        L4Spec::Udp { .. } => {
                            let u = UdpPacket::new_checked(ip.payload()).unwrap();
                            assert_ne!(u.checksum(), 0);
                            assert!(u.verify_checksum(s, d));
                            assert_eq!(u.payload(), &payload[..]);
                        }
                        L4Spec::Tcp { .. } => {
                            let t = TcpPacket::new_checked(ip.payload()).unwrap();
                            assert!(t.verify_checksum(s, d));
                            assert_eq!(t.payload(), &payload[..]);
                        }
                        L4Spec::Raw { .. } => assert_eq!(ip.payload(), &payload[..]),
                    }
                    let m = PacketMeta::parse(&f).unwrap();
                    assert_eq!(FlowKey::from_meta(&m), Some(spec.flow_key()));
                }
            }
        }
    }

    #[test]
    fn write_errors() {
        let spec = FrameSpec::default();
        let mut small = [0u8; 41];
        assert_eq!(
            spec.write(b"", &mut small),
            Err(BuildError::BufferTooSmall { need: 42, have: 41 })
        );
        let big = vec![0u8; spec.max_payload() + 1];
        assert!(matches!(
            spec.write(&big, &mut vec![0u8; 70_000]),
            Err(BuildError::PayloadTooLarge { .. })
        ));
        let max = vec![0u8; spec.max_payload()];
        let f = spec.build(&max);
        assert!(PacketMeta::parse(&f).is_ok());
    }

    #[test]
    fn payload_round_trip() {
        let mut p = vec![0u8; 100];
        assert!(write_payload(7, 9, &mut p));
        assert_eq!(decode_payload(&p), Some((7, 9)));
        for i in 0..p.len() {
            for bit in 0..8 {
                let mut q = p.clone();
                q[i] ^= 1 << bit;
                assert_eq!(decode_payload(&q), None, "flip {i}.{bit} not detected");
            }
        }
        let mut t = vec![0u8; PAYLOAD_TAG_LEN];
        assert!(write_payload(u32::MAX, 3, &mut t));
        assert_eq!(decode_payload(&t), Some((u32::MAX, 3)));
        assert_eq!(decode_payload(&p[..99]), None);
        assert!(!write_payload(0, 0, &mut [0u8; 15]));
        assert_eq!(decode_payload(&[]), None);
    }

    #[test]
    fn mixed_flows() {
        let cfg = MixedFlows {
            flows: 5,
            packets_per_flow: 3,
            ..MixedFlows::default()
        };
        let pkts = generate_mixed_flows(&cfg);
        assert_eq!(pkts.len(), 15);
        assert_eq!(pkts, generate_mixed_flows(&cfg));
        for (i, p) in pkts.iter().enumerate() {
            assert_eq!(p.flow_id, (i % 5) as u32);
            assert_eq!(p.seq, (i / 5) as u32);
            let m = PacketMeta::parse(&p.frame).unwrap();
            assert_eq!(FlowKey::from_meta(&m), Some(p.key));
            let l4 = usize::from(m.ipv4.unwrap().l4.unwrap().header_len);
            let payload = &p.frame[m.l4_offset().unwrap() + l4..];
            assert_eq!(decode_payload(payload), Some((p.flow_id, p.seq)));
            let want = if p.flow_id % 2 == 0 { 17 } else { 6 };
            assert_eq!(p.key.proto, want);
        }
        let keys: std::collections::HashSet<_> = pkts.iter().map(|p| p.key).collect();
        assert_eq!(keys.len(), 5);
    }
}
