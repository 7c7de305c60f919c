//! firewall: an ordered first-match ACL.
//!
//! Rules come from a file in netvm-wire's ACL format (`allow|deny key=value…`, one per line,
//! plus `default allow|deny`; default deny). The first matching rule decides; allow → NEXT,
//! deny → DROP. Non-IPv4 frames get the default policy; malformed IPv4 frames are denied and
//! counted apart. Per-rule hit counters are printed every `--stats-interval` seconds and on
//! exit.

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
    /// Rule file: `allow|deny [src=CIDR] [dst=CIDR] [proto=tcp|udp|icmp|N] [sport=N[-M]]
    /// [dport=N[-M]]` per line, `default allow|deny`, `#` comments.
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
    /// IPv4 frames whose headers do not parse (denied).
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
        let _ = writeln!(
            s,
            "  default    {:>12}  default {}",
            self.acl.default_hits(),
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

    #[test]
    fn non_ipv4_gets_default_and_malformed_is_denied() {
        let mut f = Firewall::new(Acl::parse("allow proto=udp\ndefault allow").unwrap(), None);
        let mut arp = udp([10, 0, 0, 1], 1);
        arp[12..14].copy_from_slice(&ethertype::ARP.to_be_bytes());
        assert_eq!(f.check(&arp), Action::Allow);
        assert_eq!(f.acl().default_hits(), 1);
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
