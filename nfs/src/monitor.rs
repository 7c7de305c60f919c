//! monitor: per-flow packet and byte counters; every packet continues (NEXT).
//!
//! Flows are IPv4 or IPv6 5-tuples ([`FlowKey`], directional) in a fixed-capacity open-addressing table
//! sized at start-up (`--capacity` flows; twice as many slots, linear probing of at most
//! [`MAX_PROBE`] slots): the per-packet path never allocates. Packets of flows that find no
//! room are counted as "untracked"; non-IP (counted as `non_ipv4`, the name kept for its
//! readers) and malformed frames have their own counters.
//! The busiest flows are printed every `--interval` seconds and on exit.

use std::fmt::Write as _;
use std::time::Duration;

use netlib_guest::{parse_secs, NfOptions, NfStats, Packet, PacketHandler, Verdict};
use netvm_wire::{symmetric_hash, FlowKey, PacketMeta};

use crate::NfsError;

/// Command line of `monitor`.
#[derive(Clone, Debug, clap::Parser)]
#[command(
    name = "monitor",
    version,
    about = "netvm NF: per-flow packet/byte counters"
)]
pub struct Args {
    /// Region and NF name.
    #[command(flatten)]
    pub nf: NfOptions,
    /// Flows tracked (the table is sized for this many at start-up).
    #[arg(long, value_name = "FLOWS", default_value_t = 65536)]
    pub capacity: usize,
    /// Print the busiest flows every SECS seconds (0: only on exit).
    #[arg(long, value_name = "SECS", default_value = "0", value_parser = parse_secs)]
    pub interval: Duration,
    /// How many flows to print.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub top: usize,
}

/// Most slots a lookup probes before the flow counts as untracked.
pub const MAX_PROBE: usize = 32;

/// Largest `--capacity` accepted.
pub const MAX_CAPACITY: usize = 1 << 24;

/// One flow's counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowStats {
    /// The flow.
    pub key: FlowKey,
    /// Packets.
    pub pkts: u64,
    /// Bytes (frame lengths).
    pub bytes: u64,
}

/// A fixed-capacity flow table (see the module docs).
#[derive(Clone, Debug)]
pub struct FlowTable {
    slots: Box<[Option<FlowStats>]>,
    mask: usize,
    len: usize,
    capacity: usize,
    /// Packets of flows that found no room.
    pub untracked_pkts: u64,
    /// Bytes of those packets.
    pub untracked_bytes: u64,
}

impl FlowTable {
    /// A table for `capacity` flows (`1..=MAX_CAPACITY`); allocates all of it now.
    pub fn new(capacity: usize) -> Result<Self, NfsError> {
        if capacity == 0 || capacity > MAX_CAPACITY {
            return Err(NfsError::BadArg {
                arg: "capacity",
                why: format!("{capacity} is not between 1 and {MAX_CAPACITY}"),
            });
        }
        let n = (capacity * 2).next_power_of_two();
        Ok(Self {
            slots: vec![None; n].into_boxed_slice(),
            mask: n - 1,
            len: 0,
            capacity,
            untracked_pkts: 0,
            untracked_bytes: 0,
        })
    }

    /// Flows tracked.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// No flow tracked yet.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Counts one packet of `bytes` bytes for `key`. Never allocates.
    #[inline]
    pub fn record(&mut self, key: &FlowKey, bytes: u64) {
        let start = symmetric_hash(key) as usize;
        for i in 0..MAX_PROBE.min(self.slots.len()) {
            let idx = (start.wrapping_add(i)) & self.mask;
            match &mut self.slots[idx] {
                Some(f) if f.key == *key => {
                    f.pkts += 1;
                    f.bytes += bytes;
                    return;
                }
                Some(_) => {}
                empty @ None => {
                    if self.len < self.capacity {
                        *empty = Some(FlowStats {
                            key: *key,
                            pkts: 1,
                            bytes,
                        });
                        self.len += 1;
                        return;
                    }
                    break;
                }
            }
        }
        self.untracked_pkts += 1;
        self.untracked_bytes += bytes;
    }

    /// The counters of `key`, if tracked.
    #[must_use]
    pub fn get(&self, key: &FlowKey) -> Option<FlowStats> {
        let start = symmetric_hash(key) as usize;
        (0..MAX_PROBE.min(self.slots.len()))
            .map_while(|i| self.slots[(start.wrapping_add(i)) & self.mask])
            .find(|f| f.key == *key)
    }

    /// The `n` flows with the most bytes, busiest first (allocates: reporting only).
    #[must_use]
    pub fn top(&self, n: usize) -> Vec<FlowStats> {
        let mut v: Vec<FlowStats> = self.slots.iter().flatten().copied().collect();
        v.sort_unstable_by(|a, b| b.bytes.cmp(&a.bytes).then(b.pkts.cmp(&a.pkts)));
        v.truncate(n);
        v
    }
}

/// The monitor: flow table plus counters for what has no 5-tuple.
#[derive(Clone, Debug)]
pub struct Monitor {
    /// Per-flow counters.
    pub flows: FlowTable,
    /// Non-IPv4 packets.
    pub non_ipv4_pkts: u64,
    /// Their bytes.
    pub non_ipv4_bytes: u64,
    /// Frames whose headers do not parse.
    pub malformed_pkts: u64,
    interval: Option<Duration>,
    top: usize,
}

impl Monitor {
    /// A monitor tracking up to `capacity` flows, printing the `top` busiest every `interval`.
    pub fn new(capacity: usize, interval: Option<Duration>, top: usize) -> Result<Self, NfsError> {
        Ok(Self {
            flows: FlowTable::new(capacity)?,
            non_ipv4_pkts: 0,
            non_ipv4_bytes: 0,
            malformed_pkts: 0,
            interval,
            top,
        })
    }

    /// Counts `frame`. Never allocates, never panics.
    #[inline]
    pub fn observe(&mut self, frame: &[u8]) {
        let bytes = frame.len() as u64;
        match PacketMeta::parse(frame) {
            Ok(meta) => match FlowKey::from_meta(&meta) {
                Some(key) => self.flows.record(&key, bytes),
                None => {
                    self.non_ipv4_pkts += 1;
                    self.non_ipv4_bytes += bytes;
                }
            },
            Err(_) => self.malformed_pkts += 1,
        }
    }

    /// The busiest flows and the other counters.
    #[must_use]
    pub fn report(&self) -> String {
        let mut s = format!(
            "monitor: {} flows tracked (capacity {}), untracked {} pkts / {} bytes, \
             non-IPv4 {} pkts / {} bytes, malformed {}\n",
            self.flows.len(),
            self.flows.capacity,
            self.flows.untracked_pkts,
            self.flows.untracked_bytes,
            self.non_ipv4_pkts,
            self.non_ipv4_bytes,
            self.malformed_pkts
        );
        for f in self.flows.top(self.top) {
            let k = f.key;
            let _ = writeln!(
                s,
                "  {}:{} -> {}:{} proto {}  {} pkts  {} bytes",
                k.src_ip, k.src_port, k.dst_ip, k.dst_port, k.proto, f.pkts, f.bytes
            );
        }
        s.pop();
        s
    }
}

impl PacketHandler for Monitor {
    fn process(&mut self, pkt: &mut Packet<'_>) -> Verdict {
        self.observe(pkt.data());
        Verdict::Next
    }

    fn tick_interval(&self) -> Option<Duration> {
        self.interval
    }

    fn tick(&mut self, stats: &NfStats) {
        println!("{}", crate::summary_line("monitor", stats));
        println!("{}", self.report());
    }
}

/// Runs the monitor until SIGINT/SIGTERM and prints its summary and flows.
pub fn main(args: Args) -> Result<(), NfsError> {
    let interval = (!args.interval.is_zero()).then_some(args.interval);
    let mut m = Monitor::new(args.capacity, interval, args.top)?;
    let stats = crate::run_nf("monitor", &args.nf, &mut m)?;
    println!("{}", crate::summary_line("monitor", &stats));
    println!("{}", m.report());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use netvm_wire::{ethertype, FrameSpec, Ipv4Addr, L4Spec};

    fn flow(i: u16) -> FrameSpec {
        FrameSpec {
            src_ip: Ipv4Addr::new(10, 0, 0, 1),
            l4: L4Spec::Udp {
                src_port: 1000 + i,
                dst_port: 53,
            },
            ..FrameSpec::default()
        }
    }

    #[test]
    fn counts_per_flow() {
        let mut m = Monitor::new(16, None, 3).unwrap();
        for i in 0..3u16 {
            for _ in 0..=i {
                m.observe(&flow(i).build(&[0; 10]));
            }
        }
        let len = flow(0).frame_len(10) as u64;
        assert_eq!(m.flows.len(), 3);
        for i in 0..3u16 {
            let f = m.flows.get(&flow(i).flow_key()).unwrap();
            assert_eq!(
                (f.pkts, f.bytes),
                (u64::from(i) + 1, (u64::from(i) + 1) * len)
            );
        }
        // The reverse direction is another flow.
        assert!(m.flows.get(&flow(0).flow_key().reversed()).is_none());
        let top = m.flows.top(2);
        assert_eq!(top[0].key, flow(2).flow_key());
        assert_eq!(top[1].key, flow(1).flow_key());
        assert!(m.report().contains("3 flows tracked"));
    }

    #[test]
    fn beyond_capacity_is_untracked() {
        let mut m = Monitor::new(4, None, 10).unwrap();
        let len = flow(0).frame_len(0) as u64;
        for i in 0..10u16 {
            m.observe(&flow(i).build(&[]));
        }
        assert_eq!(m.flows.len(), 4);
        assert_eq!(m.flows.untracked_pkts, 6);
        assert_eq!(m.flows.untracked_bytes, 6 * len);
        // Tracked flows keep counting.
        let tracked = m.flows.top(10);
        let k = tracked[0].key;
        let spec = (0..10u16).map(flow).find(|f| f.flow_key() == k).unwrap();
        m.observe(&spec.build(&[]));
        assert_eq!(m.flows.get(&k).unwrap().pkts, 2);
        assert_eq!(m.flows.untracked_pkts, 6);
    }

    #[test]
    fn non_ipv4_and_malformed() {
        let mut m = Monitor::new(4, None, 10).unwrap();
        let mut arp = flow(0).build(&[]);
        arp[12..14].copy_from_slice(&ethertype::ARP.to_be_bytes());
        m.observe(&arp);
        m.observe(&[0u8; 5]);
        assert_eq!(
            (m.non_ipv4_pkts, m.malformed_pkts, m.flows.len()),
            (1, 1, 0)
        );
        assert!(Monitor::new(0, None, 1).is_err());
    }
}
