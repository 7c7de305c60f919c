//! reflector: sends every packet back where it came from (for latency tests).
//!
//! Swaps the Ethernet addresses, and for IPv4 the IP addresses and, for TCP and UDP (not in
//! non-first fragments), the ports. Swaps keep the IPv4 header checksum and the TCP/UDP
//! checksums valid: one's-complement sums do not depend on the order of their terms. Verdict
//! OUT(in_port). Frames shorter than an Ethernet header are dropped.

use netlib_guest::{NfOptions, Packet, PacketHandler, Verdict};
use netvm_wire::{ip_proto, EthernetFrame, Ipv4Packet, PacketMeta, TcpPacket, UdpPacket};

use crate::NfsError;

/// Command line of `reflector`.
#[derive(Clone, Debug, clap::Parser)]
#[command(
    name = "reflector",
    version,
    about = "netvm NF: swap addresses and ports, send back out of the input port"
)]
pub struct Args {
    /// Region and NF name.
    #[command(flatten)]
    pub nf: NfOptions,
}

/// What [`reflect`] could swap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reflected {
    /// Too short for Ethernet: nothing done.
    Short,
    /// MACs only (not IPv4, or an IPv4 header that does not parse).
    L2,
    /// MACs and IPv4 addresses.
    L3,
    /// MACs, IPv4 addresses and TCP/UDP ports.
    L4,
}

/// Swaps addresses (and ports) of `frame` in place. Never panics, never allocates.
#[inline]
pub fn reflect(frame: &mut [u8]) -> Reflected {
    match EthernetFrame::new_checked(&mut *frame) {
        Ok(mut eth) => eth.swap_addrs(),
        Err(_) => return Reflected::Short,
    }
    let Ok(meta) = PacketMeta::parse(frame) else {
        return Reflected::L2;
    };
    let Some(ip) = meta.ipv4 else {
        return Reflected::L2;
    };
    let l2 = usize::from(meta.l2_len);
    let ip_end = l2 + usize::from(ip.total_len);
    let Some(ip_bytes) = frame.get_mut(l2..ip_end) else {
        return Reflected::L2;
    };
    match Ipv4Packet::new_checked(&mut *ip_bytes) {
        Ok(mut p) => p.swap_addrs(),
        Err(_) => return Reflected::L2,
    }
    let (Some(_), Some(off)) = (ip.l4, meta.l4_offset()) else {
        return Reflected::L3;
    };
    let Some(seg) = frame.get_mut(off..ip_end) else {
        return Reflected::L3;
    };
    let swapped = match ip.proto {
        ip_proto::UDP => UdpPacket::new_checked(seg)
            .map(|mut u| u.swap_ports())
            .is_ok(),
        ip_proto::TCP => TcpPacket::new_checked(seg)
            .map(|mut t| t.swap_ports())
            .is_ok(),
        _ => false,
    };
    if swapped {
        Reflected::L4
    } else {
        Reflected::L3
    }
}

/// The reflector's counters.
#[derive(Clone, Debug, Default)]
pub struct Reflector {
    /// Frames reflected, by what could be swapped: L2 only, up to L3, up to L4.
    pub reflected: [u64; 3],
    /// Frames too short for Ethernet (dropped).
    pub short: u64,
}

impl Reflector {
    /// Reflects `frame` and returns its verdict: OUT(`in_port`), or DROP if too short.
    #[inline]
    pub fn process(&mut self, frame: &mut [u8], in_port: u16) -> Verdict {
        match reflect(frame) {
            Reflected::Short => {
                self.short += 1;
                return Verdict::Drop;
            }
            Reflected::L2 => self.reflected[0] += 1,
            Reflected::L3 => self.reflected[1] += 1,
            Reflected::L4 => self.reflected[2] += 1,
        }
        Verdict::Out(in_port)
    }
}

impl PacketHandler for Reflector {
    fn process(&mut self, pkt: &mut Packet<'_>) -> Verdict {
        let port = pkt.in_port();
        Reflector::process(self, pkt.data_mut(), port)
    }
}

/// Runs the reflector until SIGINT/SIGTERM and prints its summary.
pub fn main(args: Args) -> Result<(), NfsError> {
    let mut r = Reflector::default();
    let stats = crate::run_nf("reflector", &args.nf, &mut r)?;
    println!("{}", crate::summary_line("reflector", &stats));
    println!(
        "reflector: reflected L2-only {}, L3 {}, L4 {}; short frames dropped {}",
        r.reflected[0], r.reflected[1], r.reflected[2], r.short
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use netvm_wire::{ethertype, FrameSpec, L4Spec};

    fn checksums_valid(f: &[u8]) -> bool {
        let meta = PacketMeta::parse(f).unwrap();
        let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
        let seg = &f[meta.l4_offset().unwrap()..14 + usize::from(meta.ipv4.unwrap().total_len)];
        let l4_ok = match meta.ipv4.unwrap().proto {
            ip_proto::UDP => UdpPacket::new_checked(seg)
                .unwrap()
                .verify_checksum(ip.src(), ip.dst()),
            ip_proto::TCP => TcpPacket::new_checked(seg)
                .unwrap()
                .verify_checksum(ip.src(), ip.dst()),
            _ => true,
        };
        ip.verify_checksum() && l4_ok
    }

    #[test]
    fn udp_and_tcp_become_their_reply_with_valid_checksums() {
        let tcp = L4Spec::Tcp {
            src_port: 1234,
            dst_port: 80,
            seq: 7,
            ack: 7,
            flags: 0x10,
        };
        for l4 in [FrameSpec::default().l4, tcp] {
            let spec = FrameSpec {
                l4,
                ..FrameSpec::default()
            };
            let mut f = spec.build(b"payload!");
            let mut r = Reflector::default();
            assert_eq!(r.process(&mut f, 3), Verdict::Out(3));
            assert_eq!(r.reflected, [0, 0, 1]);
            assert!(checksums_valid(&f));
            // The reply's spec builds the same bytes, except TCP seq/ack which are not swapped.
            let want = spec.reversed();
            let meta = PacketMeta::parse(&f).unwrap();
            assert_eq!(FlowKey::from_meta(&meta), Some(want.flow_key()));
            assert_eq!(&f[..6], &want.dst_mac.0);
            assert_eq!(&f[6..12], &want.src_mac.0);
            // Reflecting twice restores the original.
            reflect(&mut f);
            assert_eq!(f, spec.build(b"payload!"));
        }
    }

    use netvm_wire::FlowKey;

    #[test]
    fn other_frames() {
        let mut r = Reflector::default();
        let mut arp = FrameSpec::default().build(b"");
        arp[12..14].copy_from_slice(&ethertype::ARP.to_be_bytes());
        let orig = arp.clone();
        assert_eq!(r.process(&mut arp, 1), Verdict::Out(1));
        assert_eq!(&arp[..6], &orig[6..12]);
        assert_eq!(&arp[12..], &orig[12..]);
        let mut icmp = FrameSpec {
            l4: L4Spec::Raw {
                proto: ip_proto::ICMP,
            },
            ..FrameSpec::default()
        }
        .build(&[8, 0, 0, 0]);
        assert_eq!(reflect(&mut icmp), Reflected::L3);
        assert!(checksums_valid(&icmp));
        assert_eq!(r.process(&mut [0u8; 10], 1), Verdict::Drop);
        assert_eq!(r.short, 1);
        assert_eq!(r.reflected, [1, 0, 0]);
    }
}
