//! l3fwd: an IPv4 and IPv6 router over longest-prefix-match tables.
//!
//! For every frame (untagged, one VLAN tag or QinQ; tags are kept): Ethernet →
//! - IPv4 (checked view, header checksum verified) → LPM lookup of the destination in
//!   netvm-wire's DIR-24-8 table → TTL decrement with an RFC 1624 incremental checksum update;
//! - IPv6 (checked view: version, payload length inside the frame) → LPM lookup of the
//!   destination in netvm-wire's IPv6 multibit trie ([`Lpm6`](netvm_wire::Lpm6), at most 15
//!   memory accesses, prefixes up to /128) → hop-limit decrement (no checksum covers it);
//!
//! then rewrite the destination MAC if the route gives one (and the source MAC if `--src-mac`
//! is set) → verdict OUT(port). Routes come from one file in netvm-wire's format,
//! `10.1.0.0/16 <port> [dst-mac <mac>]` or `2001:db8::/32 <port> [dst-mac <mac>]`.
//! Everything else is dropped and counted by reason: not IP, malformed, bad IPv4 header
//! checksum, no route (unless `--default-port`), TTL expired (IPv4, TTL ≤ 1), hop limit
//! expired (IPv6, hop limit ≤ 1). IPv4 options and fragments of either family are routed as
//! they are; IPv6 extension headers are not looked at (a router forwards them).
//!
//! **No ICMP errors**: l3fwd sends no ICMP/ICMPv6 Time Exceeded or Destination Unreachable
//! (it has no address of its own to send them from); expired and unroutable packets are
//! dropped silently and only counted.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use netlib_guest::{NfOptions, Packet, PacketHandler, Verdict};
use netvm_wire::{
    decrement_hop_limit_in_place, decrement_ttl_in_place, ethertype, parse_routes, EthernetFrame,
    HopLimitOutcome, Ipv4Packet, Ipv6Addr, Ipv6Packet, LpmConfig, LpmError, MacAddr, NextHop,
    Route, RouteTable, TtlOutcome,
};

use crate::NfsError;

/// Command line of `l3fwd`.
#[derive(Clone, Debug, clap::Parser)]
#[command(
    name = "l3fwd",
    version,
    about = "netvm NF: IPv4/IPv6 LPM router",
    long_about = "netvm NF: IPv4/IPv6 LPM router. Routes IPv4 (DIR-24-8) and IPv6 (multibit \
trie, up to /128) by longest prefix, decrements TTL / hop limit (drops at <= 1), rewrites \
the next-hop MAC, keeps VLAN tags. It sends no ICMP errors (no Time Exceeded, no \
Destination Unreachable): expired and unroutable packets are dropped and counted by reason."
)]
pub struct Args {
    /// Region and NF name.
    #[command(flatten)]
    pub nf: NfOptions,
    /// Route file: one `PREFIX PORT [dst-mac MAC]` per line (PREFIX IPv4 like 10.1.0.0/16
    /// or IPv6 like 2001:db8::/32), `#` comments.
    #[arg(long, value_name = "FILE")]
    pub routes: PathBuf,
    /// Send packets without a route out of this port instead of dropping them.
    #[arg(long, value_name = "PORT")]
    pub default_port: Option<u16>,
    /// Source MAC to write into forwarded frames (default: leave it).
    #[arg(long, value_name = "MAC")]
    pub src_mac: Option<MacAddr>,
}

/// Why l3fwd dropped a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The EtherType (after at most two VLAN tags) is neither IPv4 nor IPv6.
    NotIp,
    /// The Ethernet or IP header is truncated or inconsistent.
    Malformed,
    /// The IPv4 header checksum is wrong.
    BadChecksum,
    /// No route covers the destination and there is no default port.
    NoRoute,
    /// IPv4 TTL was 0 or 1.
    TtlExpired,
    /// IPv6 hop limit was 0 or 1.
    HopLimitExpired,
}

impl DropReason {
    /// Every reason, in counter order.
    pub const ALL: [Self; 6] = [
        Self::NotIp,
        Self::Malformed,
        Self::BadChecksum,
        Self::NoRoute,
        Self::TtlExpired,
        Self::HopLimitExpired,
    ];

    /// Stable snake_case name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::NotIp => "not_ip",
            Self::Malformed => "malformed",
            Self::BadChecksum => "bad_checksum",
            Self::NoRoute => "no_route",
            Self::TtlExpired => "ttl_expired",
            Self::HopLimitExpired => "hop_limit_expired",
        }
    }
}

/// What l3fwd decided for a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Forward out of `port` (the frame has been rewritten).
    Forward {
        /// Output port.
        port: u16,
    },
    /// Drop (the frame is untouched).
    Drop(DropReason),
}

/// The router: route table and counters.
#[derive(Clone, Debug)]
pub struct L3fwd {
    table: RouteTable,
    default_port: Option<u16>,
    src_mac: Option<MacAddr>,
    /// Packets forwarded.
    pub forwarded: u64,
    /// IPv6 packets among them.
    pub forwarded_v6: u64,
    /// Packets dropped, indexed like [`DropReason::ALL`].
    pub drops: [u64; 6],
}

impl L3fwd {
    /// A router over `routes`.
    pub fn new(
        routes: &[Route],
        default_port: Option<u16>,
        src_mac: Option<MacAddr>,
    ) -> Result<Self, LpmError> {
        Ok(Self {
            table: RouteTable::new(routes, LpmConfig::default())?,
            default_port,
            src_mac,
            forwarded: 0,
            forwarded_v6: 0,
            drops: [0; 6],
        })
    }

    /// Drops for `reason` so far.
    #[must_use]
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize]
    }

    /// Where `dst` goes: the longest matching route, else the default port.
    #[inline]
    #[must_use]
    pub fn lookup(&self, dst: Ipv4Addr) -> Option<NextHop> {
        self.table.lookup(dst).or_else(|| {
            self.default_port.map(|port| NextHop {
                port,
                dst_mac: None,
            })
        })
    }

    /// Where the IPv6 `dst` goes: the longest matching route, else the default port.
    #[inline]
    #[must_use]
    pub fn lookup_v6(&self, dst: Ipv6Addr) -> Option<NextHop> {
        self.table.lookup_v6(dst).or_else(|| {
            self.default_port.map(|port| NextHop {
                port,
                dst_mac: None,
            })
        })
    }

    /// Routes `frame` in place: see the module docs. Never panics, never allocates.
    #[inline]
    pub fn route(&mut self, frame: &mut [u8]) -> Decision {
        let (d, v6) = self.decide(frame);
        match d {
            Decision::Forward { .. } => {
                self.forwarded += 1;
                self.forwarded_v6 += u64::from(v6);
            }
            Decision::Drop(r) => self.drops[r as usize] += 1,
        }
        d
    }

    fn decide(&self, frame: &mut [u8]) -> (Decision, bool) {
        let (l2, ethertype) = match EthernetFrame::new_checked(&*frame) {
            Ok(eth) => (eth.header_len(), eth.ethertype()),
            Err(_) => return (Decision::Drop(DropReason::Malformed), false),
        };
        let hop = match ethertype {
            ethertype::IPV4 => self.decide_v4(frame, l2),
            ethertype::IPV6 => self.decide_v6(frame, l2),
            _ => return (Decision::Drop(DropReason::NotIp), false),
        };
        let hop = match hop {
            Ok(h) => h,
            Err(r) => return (Decision::Drop(r), false),
        };
        if let Some(mac) = hop.dst_mac {
            frame[..6].copy_from_slice(&mac.0);
        }
        if let Some(mac) = self.src_mac {
            frame[6..12].copy_from_slice(&mac.0);
        }
        (
            Decision::Forward { port: hop.port },
            ethertype == ethertype::IPV6,
        )
    }

    /// IPv6: checked view, lookup, hop-limit step (the frame is untouched on a drop).
    fn decide_v6(&self, frame: &mut [u8], l2: usize) -> Result<NextHop, DropReason> {
        let Some(ip_bytes) = frame.get_mut(l2..) else {
            return Err(DropReason::Malformed);
        };
        let dst = match Ipv6Packet::new_checked(&*ip_bytes) {
            Ok(ip) => ip.dst(),
            Err(_) => return Err(DropReason::Malformed),
        };
        let hop = self.lookup_v6(dst).ok_or(DropReason::NoRoute)?;
        match decrement_hop_limit_in_place(ip_bytes) {
            Ok(HopLimitOutcome::Forwarded { .. }) => Ok(hop),
            Ok(HopLimitOutcome::Expired { .. }) => Err(DropReason::HopLimitExpired),
            Err(_) => Err(DropReason::Malformed),
        }
    }

    /// IPv4: checked view, checksum, lookup, TTL step (the frame is untouched on a drop).
    fn decide_v4(&self, frame: &mut [u8], l2: usize) -> Result<NextHop, DropReason> {
        let Some(ip_bytes) = frame.get_mut(l2..) else {
            return Err(DropReason::Malformed);
        };
        let dst = match Ipv4Packet::new_checked(&*ip_bytes) {
            Ok(ip) if !ip.verify_checksum() => return Err(DropReason::BadChecksum),
            Ok(ip) => ip.dst(),
            Err(_) => return Err(DropReason::Malformed),
        };
        let hop = self.lookup(dst).ok_or(DropReason::NoRoute)?;
        match decrement_ttl_in_place(ip_bytes) {
            Ok(TtlOutcome::Forwarded { .. }) => Ok(hop),
            Ok(TtlOutcome::Expired { .. }) => Err(DropReason::TtlExpired),
            Err(_) => Err(DropReason::Malformed),
        }
    }

    /// The drop counters, one `reason count` pair per reason.
    #[must_use]
    pub fn report(&self) -> String {
        let drops: Vec<String> = DropReason::ALL
            .iter()
            .map(|r| format!("{} {}", r.name(), self.dropped(*r)))
            .collect();
        format!(
            "l3fwd: forwarded {} (ipv6 {}); dropped by reason: {}",
            self.forwarded,
            self.forwarded_v6,
            drops.join(", ")
        )
    }
}

impl PacketHandler for L3fwd {
    fn process(&mut self, pkt: &mut Packet<'_>) -> Verdict {
        match self.route(pkt.data_mut()) {
            Decision::Forward { port } => Verdict::Out(port),
            Decision::Drop(_) => Verdict::Drop,
        }
    }
}

/// Loads the route file and builds the router.
pub fn load(args: &Args) -> Result<L3fwd, NfsError> {
    let text = crate::read_file(&args.routes)?;
    let routes = parse_routes(&text).map_err(|source| NfsError::Routes {
        path: args.routes.clone(),
        source,
    })?;
    L3fwd::new(&routes, args.default_port, args.src_mac).map_err(|source| NfsError::Lpm {
        path: args.routes.clone(),
        source,
    })
}

/// Runs l3fwd until SIGINT/SIGTERM and prints its summary.
pub fn main(args: Args) -> Result<(), NfsError> {
    let mut r = load(&args)?;
    let stats = crate::run_nf("l3fwd", &args.nf, &mut r)?;
    println!("{}", crate::summary_line("l3fwd", &stats));
    println!("{}", r.report());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use netvm_wire::{FrameSpec, L4Spec};

    const ROUTES: &str = "\
10.0.0.0/8     1
10.1.0.0/16    2 dst-mac 02:00:00:00:10:02
10.1.2.0/24    3
10.1.2.128/25  4 dst-mac 02:00:00:00:10:04
2001:db8::/32          5
2001:db8:1::/48        6 dst-mac 02:00:00:00:10:06
2001:db8:1:2::7/128    7
";

    /// Ethernet (`tags` VLAN tags) + IPv6 to `dst` with hop limit `hl` + 8 bytes of UDP-ish.
    fn pkt6(tags: usize, dst: &str, hl: u8) -> Vec<u8> {
        let mut f = vec![0xaa; 6];
        f.extend_from_slice(&[2, 0, 0, 0, 0, 1]);
        for t in 0..tags {
            let ty: [u8; 2] = if t == 0 && tags == 2 {
                [0x88, 0xa8]
            } else {
                [0x81, 0x00]
            };
            f.extend_from_slice(&ty);
            f.extend_from_slice(&[0, 10 + u8::try_from(t).unwrap()]);
        }
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, 0, 8, 17, hl]);
        f.extend_from_slice(&"2001:db8:ff::1".parse::<Ipv6Addr>().unwrap().octets());
        f.extend_from_slice(&dst.parse::<Ipv6Addr>().unwrap().octets());
        f.extend_from_slice(&[0, 7, 0, 9, 0, 8, 0, 0]);
        f
    }

    #[test]
    fn ipv6_longest_prefix_hop_limit_and_mac() {
        let mut r = router(None);
        for (tags, dst, port) in [
            (0, "2001:db8:9::1", 5),
            (1, "2001:db8:1:9::1", 6),
            (2, "2001:db8:1:2::7", 7),
        ] {
            let orig = pkt6(tags, dst, 64);
            let mut f = orig.clone();
            assert_eq!(r.route(&mut f), Decision::Forward { port }, "{dst}");
            let l2 = 14 + 4 * tags;
            assert_eq!(f[l2 + 7], 63);
            // Only the hop limit (and the MAC for port 6) changed; tags kept.
            assert_eq!(f[6..l2 + 7], orig[6..l2 + 7]);
            assert_eq!(f[l2 + 8..], orig[l2 + 8..]);
            if port == 6 {
                assert_eq!(&f[..6], &[2, 0, 0, 0, 0x10, 6]);
            } else {
                assert_eq!(&f[..6], &orig[..6]);
            }
        }
        for hl in [0, 1] {
            let orig = pkt6(0, "2001:db8::1", hl);
            let mut f = orig.clone();
            assert_eq!(r.route(&mut f), Decision::Drop(DropReason::HopLimitExpired));
            assert_eq!(f, orig);
        }
        let mut f = pkt6(0, "2001:db8::1", 2);
        assert_eq!(r.route(&mut f), Decision::Forward { port: 5 });
        assert_eq!(f[14 + 7], 1);
        let mut f = pkt6(0, "2002::1", 64);
        assert_eq!(r.route(&mut f), Decision::Drop(DropReason::NoRoute));
        let mut f = pkt6(0, "2001:db8::1", 64);
        f.truncate(f.len() - 1);
        assert_eq!(r.route(&mut f), Decision::Drop(DropReason::Malformed));
        assert_eq!(r.forwarded_v6, 4);
        assert_eq!(r.dropped(DropReason::HopLimitExpired), 2);
        assert!(r.report().contains("hop_limit_expired 2"), "{}", r.report());
    }

    fn router(default: Option<u16>) -> L3fwd {
        L3fwd::new(&parse_routes(ROUTES).unwrap(), default, None).unwrap()
    }

    fn pkt(dst: [u8; 4], ttl: u8) -> Vec<u8> {
        FrameSpec {
            dst_ip: Ipv4Addr::from(dst),
            ttl,
            l4: L4Spec::Udp {
                src_port: 7,
                dst_port: 9,
            },
            ..FrameSpec::default()
        }
        .build(&[1, 2, 3, 4])
    }

    fn ip_checksum_ok(frame: &[u8]) -> bool {
        Ipv4Packet::new_checked(&frame[14..])
            .unwrap()
            .verify_checksum()
    }

    #[test]
    fn longest_prefix_wins() {
        let mut r = router(None);
        for (dst, port) in [
            ([10, 9, 9, 9], 1),
            ([10, 1, 9, 9], 2),
            ([10, 1, 2, 7], 3),
            ([10, 1, 2, 200], 4),
        ] {
            let mut f = pkt(dst, 64);
            assert_eq!(r.route(&mut f), Decision::Forward { port }, "{dst:?}");
        }
        assert_eq!(r.forwarded, 4);
    }

    #[test]
    fn ttl_decremented_with_valid_checksum_and_mac_rewritten() {
        let mut r = router(None);
        let orig = pkt([10, 1, 2, 200], 64);
        let mut f = orig.clone();
        assert_eq!(r.route(&mut f), Decision::Forward { port: 4 });
        assert_eq!(f[14 + 8], 63);
        assert!(ip_checksum_ok(&f));
        assert_eq!(&f[..6], &[0x02, 0, 0, 0, 0x10, 0x04]);
        assert_eq!(&f[6..12], &orig[6..12], "source MAC untouched");
        // A route without a MAC leaves the destination MAC alone.
        let mut f = orig.clone();
        f[14 + 16..14 + 20].copy_from_slice(&[10, 1, 2, 7]);
        Ipv4Packet::new_checked(&mut f[14..])
            .unwrap()
            .fill_checksum();
        assert_eq!(r.route(&mut f), Decision::Forward { port: 3 });
        assert_eq!(&f[..6], &orig[..6]);
        assert!(ip_checksum_ok(&f));
        // TTL 2 → 1 is still forwarded.
        let mut f = pkt([10, 0, 0, 1], 2);
        assert_eq!(r.route(&mut f), Decision::Forward { port: 1 });
        assert_eq!(f[14 + 8], 1);
        assert!(ip_checksum_ok(&f));
    }

    #[test]
    fn drops_are_counted_by_reason() {
        let mut r = router(None);
        let orig = pkt([10, 1, 1, 1], 1);
        let mut f = orig.clone();
        assert_eq!(r.route(&mut f), Decision::Drop(DropReason::TtlExpired));
        assert_eq!(f, orig, "a dropped packet is untouched");
        let mut f = pkt([10, 1, 1, 1], 0);
        assert_eq!(r.route(&mut f), Decision::Drop(DropReason::TtlExpired));

        let mut f = pkt([192, 168, 0, 1], 64);
        assert_eq!(r.route(&mut f), Decision::Drop(DropReason::NoRoute));

        let mut arp = pkt([10, 1, 1, 1], 64);
        arp[12..14].copy_from_slice(&ethertype::ARP.to_be_bytes());
        assert_eq!(r.route(&mut arp), Decision::Drop(DropReason::NotIp));

        let mut bad = pkt([10, 1, 1, 1], 64);
        bad[14 + 10] ^= 0xff;
        assert_eq!(r.route(&mut bad), Decision::Drop(DropReason::BadChecksum));

        let mut short = pkt([10, 1, 1, 1], 64);
        short.truncate(30);
        assert_eq!(r.route(&mut short), Decision::Drop(DropReason::Malformed));
        assert_eq!(
            r.route(&mut [0u8; 5]),
            Decision::Drop(DropReason::Malformed)
        );

        assert_eq!(r.dropped(DropReason::TtlExpired), 2);
        assert_eq!(r.dropped(DropReason::NoRoute), 1);
        assert_eq!(r.dropped(DropReason::NotIp), 1);
        assert_eq!(r.dropped(DropReason::BadChecksum), 1);
        assert_eq!(r.dropped(DropReason::Malformed), 2);
        assert_eq!(r.forwarded, 0);
        let rep = r.report();
        assert!(
            rep.contains("ttl_expired 2") && rep.contains("no_route 1"),
            "{rep}"
        );
    }

    #[test]
    fn default_port_replaces_no_route() {
        let mut r = router(Some(9));
        let mut f = pkt([192, 168, 0, 1], 64);
        assert_eq!(r.route(&mut f), Decision::Forward { port: 9 });
        assert_eq!(f[14 + 8], 63);
    }

    #[test]
    fn vlan_tagged_frames_are_routed() {
        let mut r = router(None);
        let mut f = FrameSpec {
            vlan_tci: Some(100),
            dst_ip: Ipv4Addr::new(10, 1, 2, 3),
            ..FrameSpec::default()
        }
        .build(&[0; 8]);
        assert_eq!(r.route(&mut f), Decision::Forward { port: 3 });
        assert_eq!(f[18 + 8], 63);
        assert!(Ipv4Packet::new_checked(&f[18..]).unwrap().verify_checksum());
    }
}
