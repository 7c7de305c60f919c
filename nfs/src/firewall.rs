//! firewall: an ordered first-match ACL over IPv4 and IPv6.
//!
//! Rules come from a file in netvm-wire's ACL format (`allow|deny key=value…`, one per line,
//! plus `default allow|deny` (default deny) and `fragments allow|deny`). Every IP packet,
//! IPv4 or IPv6 (its extension-header chain walked to the upper-layer protocol), goes through
//! the rules; the first matching rule decides; allow → NEXT, deny → DROP. A prefix matches
//! only its own family; protocol, ports and ICMP type apply to both. Fragments: a first
//! fragment is judged by the full rules, a non-first fragment cannot match a port or ICMP-type
//! rule and, if no other rule matches it, gets the `fragments` policy (else the default); a
//! non-first TCP fragment at offset 8 is always denied (RFC 1858). Non-IP frames get the
//! default policy; malformed IP frames (bad IHL, truncated, an extension-header chain longer
//! than netvm's bound) are denied. Every case has its counter; per-rule hit counters are
//! printed every `--stats-interval` seconds and on exit. See netvm-wire's `acl` module.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use netlib_guest::{parse_secs, NfOptions, NfStats, Packet, PacketHandler, Verdict};
use netvm_wire::{Acl, Action, PacketMeta};

use crate::NfsError;

/// Command line of `firewall`.
#[derive(Clone, Debug, clap::Parser)]
#[command(
    name = "firewall",
    version,
    about = "netvm NF: ordered first-match ACL"
)]
pub struct Args {
    /// Region and NF name.
    #[command(flatten)]
    pub nf: NfOptions,
    /// Rule file: `allow|deny [src=CIDR] [dst=CIDR] [proto=tcp|udp|icmp|icmpv6|N]
    /// [sport=N[-M]] [dport=N[-M]] [itype=N]` per line (CIDR: IPv4 or IPv6, matching only its
    /// family), `default allow|deny` (default deny), `fragments allow|deny` (what decides a
    /// non-first fragment no rule matches; default: the default policy), `#` comments.
    #[arg(long, value_name = "FILE")]
    pub rules: PathBuf,
    /// Print per-rule hit counters every SECS seconds (0: only on exit).
    #[arg(long, value_name = "SECS", default_value = "0", value_parser = parse_secs)]
    pub stats_interval: Duration,
}

/// The firewall: its ACL (with hit counters) and a count of malformed frames.
#[derive(Clone, Debug)]
pub struct Firewall {
    acl: Acl,
    /// IP frames whose headers do not parse (denied).
    pub malformed: u64,
    interval: Option<Duration>,
}

impl Firewall {
    /// A firewall over `acl`; prints its counters every `interval` (if any) while running.
    #[must_use]
    pub fn new(acl: Acl, interval: Option<Duration>) -> Self {
        Self {
            acl,
            malformed: 0,
            interval,
        }
    }

    /// The ACL and its counters.
    #[must_use]
    pub fn acl(&self) -> &Acl {
        &self.acl
    }

    /// Decides for `frame` and counts the hit. Never panics, never allocates.
    #[inline]
    pub fn check(&mut self, frame: &[u8]) -> Action {
        match PacketMeta::parse(frame) {
            Ok(meta) => self.acl.check(&meta),
            Err(_) => {
                self.malformed += 1;
                Action::Deny
            }
        }
    }

    /// Per-rule hit counters, one line each, then the default and malformed counts.
    #[must_use]
    pub fn report(&self) -> String {
        let mut s = String::from("firewall: rule hits\n");
        for (i, (rule, hits)) in self.acl.rules().iter().zip(self.acl.hits()).enumerate() {
            let _ = writeln!(s, "  rule {:>3}  {hits:>12}  {rule}", i + 1);
        }
        let o = self.acl.other_hits();
        let _ = writeln!(
            s,
            "  default    {:>12}  default {}",
            o.default,
            self.acl.default_action()
        );
        match self.acl.fragments_action() {
            Some(a) => {
                let _ = writeln!(s, "  fragments  {:>12}  fragments {a}", o.fragments);
            }
            None => {
                let _ = writeln!(s, "  fragments  {:>12}  (unset: default)", o.fragments);
            }
        }
        let _ = writeln!(s, "  tiny_frag  {:>12}  deny", o.tiny_fragment);
        let _ = writeln!(
            s,
            "  non_ip     {:>12}  default {}",
            o.non_ip,
            self.acl.default_action()
        );
        let _ = write!(s, "  malformed  {:>12}  deny", self.malformed);
        s
    }
}

impl PacketHandler for Firewall {
    fn process(&mut self, pkt: &mut Packet<'_>) -> Verdict {
        match self.check(pkt.data()) {
            Action::Allow => Verdict::Next,
            Action::Deny => Verdict::Drop,
        }
    }

    fn tick_interval(&self) -> Option<Duration> {
        self.interval
    }

    fn tick(&mut self, stats: &NfStats) {
        println!("{}", crate::summary_line("firewall", stats));
        println!("{}", self.report());
    }
}

/// Loads the rule file.
pub fn load(args: &Args) -> Result<Firewall, NfsError> {
    let text = crate::read_file(&args.rules)?;
    let acl = Acl::parse(&text).map_err(|source| NfsError::Acl {
        path: args.rules.clone(),
        source,
    })?;
    let interval = (!args.stats_interval.is_zero()).then_some(args.stats_interval);
    Ok(Firewall::new(acl, interval))
}

/// Runs the firewall until SIGINT/SIGTERM and prints its summary and rule hits.
pub fn main(args: Args) -> Result<(), NfsError> {
    let mut fw = load(&args)?;
    let stats = crate::run_nf("firewall", &args.nf, &mut fw)?;
    println!("{}", crate::summary_line("firewall", &stats));
    println!("{}", fw.report());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use netvm_wire::{ethertype, FrameSpec, Ipv4Addr, L4Spec};

    const RULES: &str = "\
# DNS from 10/8 is denied, other UDP from 10.1/16 allowed, then TCP high ports
deny  src=10.0.0.0/8 proto=udp dport=53
allow src=10.1.0.0/16 proto=udp
allow proto=tcp dport=1024-65535
default deny
";

    fn udp(src: [u8; 4], dport: u16) -> Vec<u8> {
        FrameSpec {
            src_ip: Ipv4Addr::from(src),
            l4: L4Spec::Udp {
                src_port: 4000,
                dst_port: dport,
            },
            ..FrameSpec::default()
        }
        .build(b"x")
    }

    fn fw() -> Firewall {
        Firewall::new(Acl::parse(RULES).unwrap(), None)
    }

    #[test]
    fn first_match_wins() {
        let mut f = fw();
        // Matches rules 1 and 2: rule 1 (deny) decides.
        assert_eq!(f.check(&udp([10, 1, 0, 5], 53)), Action::Deny);
        // Rule 2.
        assert_eq!(f.check(&udp([10, 1, 0, 5], 5000)), Action::Allow);
        // Nothing matches: default deny.
        assert_eq!(f.check(&udp([192, 168, 0, 1], 5000)), Action::Deny);
        let tcp = FrameSpec {
            l4: L4Spec::Tcp {
                src_port: 80,
                dst_port: 40000,
                seq: 1,
                ack: 0,
                flags: 0,
            },
            ..FrameSpec::default()
        }
        .build(b"");
        assert_eq!(f.check(&tcp), Action::Allow);
        assert_eq!(f.acl().hits(), &[1, 1, 1]);
        assert_eq!(f.acl().default_hits(), 1);
    }

    /// Ethernet + IPv6 (next header `nh`) + `rest`.
    fn v6(nh: u8, rest: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&ethertype::IPV6.to_be_bytes());
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&u16::try_from(rest.len()).unwrap().to_be_bytes());
        f.extend_from_slice(&[nh, 64]);
        f.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        f.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        f.extend_from_slice(rest);
        f
    }

    fn tcp_hdr(dport: u16) -> Vec<u8> {
        let mut t = vec![0u8; 20];
        t[0..2].copy_from_slice(&4000u16.to_be_bytes());
        t[2..4].copy_from_slice(&dport.to_be_bytes());
        t[12] = 0x50;
        t
    }

    #[test]
    fn ipv6_and_fragments_do_not_bypass_a_port_rule() {
        let mut f = Firewall::new(
            Acl::parse(
                "deny proto=tcp dport=23
fragments deny
default allow",
            )
            .unwrap(),
            None,
        );
        // Plain IPv6 telnet, and behind hop-by-hop + destination options headers.
        assert_eq!(f.check(&v6(6, &tcp_hdr(23))), Action::Deny);
        let mut ext = vec![60, 0, 1, 4, 0, 0, 0, 0, 6, 0, 1, 4, 0, 0, 0, 0];
        ext.extend_from_slice(&tcp_hdr(23));
        assert_eq!(f.check(&v6(0, &ext)), Action::Deny);
        // First fragment (fragment header, offset 0, M=1) carries the port: denied.
        let mut first = vec![6, 0, 0, 1, 0, 0, 0, 9];
        first.extend_from_slice(&tcp_hdr(23));
        assert_eq!(f.check(&v6(44, &first)), Action::Deny);
        // Non-first fragment: the fragments policy.
        let later = [6, 0, 0, 0x20, 0, 0, 0, 9, 1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(f.check(&v6(44, &later)), Action::Deny);
        // An IPv4 non-first fragment of telnet: the fragments policy too.
        let mut v4frag = FrameSpec {
            l4: L4Spec::Tcp {
                src_port: 1,
                dst_port: 23,
                seq: 0,
                ack: 0,
                flags: 0,
            },
            ..FrameSpec::default()
        }
        .build(b"");
        v4frag[14 + 6..14 + 8].copy_from_slice(&[0, 4]);
        assert_eq!(f.check(&v4frag), Action::Deny);
        // Too long an extension-header chain is malformed (denied), not a bypass.
        let mut long = Vec::new();
        for _ in 0..5 {
            long.extend_from_slice(&[60, 0, 1, 4, 0, 0, 0, 0]);
        }
        long[32] = 6;
        long.extend_from_slice(&tcp_hdr(23));
        assert_eq!(f.check(&v6(60, &long)), Action::Deny);
        assert_eq!(f.malformed, 1);
        // Other IPv6 traffic: the default.
        assert_eq!(f.check(&v6(6, &tcp_hdr(22))), Action::Allow);
        assert_eq!(f.acl().hits(), &[3]);
        assert_eq!(f.acl().other_hits().fragments, 2);
        assert_eq!(f.acl().default_hits(), 1);
        let rep = f.report();
        assert!(rep.contains("fragments deny"), "{rep}");
    }

    #[test]
    fn non_ipv4_gets_default_and_malformed_is_denied() {
        let mut f = Firewall::new(Acl::parse("allow proto=udp\ndefault allow").unwrap(), None);
        let mut arp = udp([10, 0, 0, 1], 1);
        arp[12..14].copy_from_slice(&ethertype::ARP.to_be_bytes());
        assert_eq!(f.check(&arp), Action::Allow);
        assert_eq!(f.acl().other_hits().non_ip, 1);
        let mut bad = udp([10, 0, 0, 1], 1);
        bad.truncate(20);
        assert_eq!(f.check(&bad), Action::Deny);
        assert_eq!(f.malformed, 1);
        let rep = f.report();
        assert!(
            rep.contains("rule   1") && rep.contains("allow proto=udp"),
            "{rep}"
        );
        assert!(rep.contains("malformed"), "{rep}");
    }
}
