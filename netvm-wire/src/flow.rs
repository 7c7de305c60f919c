//! The IP 5-tuple (IPv4 or IPv6) and a direction-independent flow hash.

use std::net::IpAddr;
#[cfg(test)]
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::meta::PacketMeta;

/// An IP 5-tuple: both addresses of one family.
///
/// Ports are 0 when the packet has none: protocols other than TCP and UDP, and
/// **every fragment** (first included, IPv4 and IPv6), so that all fragments of a
/// datagram get the same key and the same hash, as NIC RSS does for fragments. (The
/// classifier's port rules therefore never match a fragment: see [`Rule`](crate::Rule).)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    /// Source address.
    pub src_ip: IpAddr,
    /// Destination address.
    pub dst_ip: IpAddr,
    /// IP protocol number (IPv6: the upper-layer protocol after the extension headers).
    pub proto: u8,
    /// Source port (0 if none).
    pub src_port: u16,
    /// Destination port (0 if none).
    pub dst_port: u16,
}

impl FlowKey {
    /// The key of an Ethernet frame, or `None` if it is not a well-formed IP
    /// packet (non-IP EtherType, or any error [`PacketMeta::parse`] reports).
    /// Non-IP traffic has no 5-tuple; the core hashes it some other way (or not
    /// at all) rather than pretend it is a flow with zero addresses.
    #[inline]
    pub fn from_ethernet(frame: &[u8]) -> Option<FlowKey> {
        PacketMeta::parse(frame)
            .ok()
            .and_then(|m| FlowKey::from_meta(&m))
    }

    /// The key of an already parsed packet; `None` if it is not IP.
    #[inline]
    pub fn from_meta(meta: &PacketMeta) -> Option<FlowKey> {
        let (src_ip, dst_ip, proto) = match (&meta.ipv4, &meta.ipv6) {
            (Some(ip), _) => (IpAddr::V4(ip.src), IpAddr::V4(ip.dst), ip.proto),
            (None, Some(ip)) => (IpAddr::V6(ip.src), IpAddr::V6(ip.dst), ip.proto),
            (None, None) => return None,
        };
        let (src_port, dst_port) = match meta.l4() {
            Some(l4) if !meta.is_fragment() => (l4.src_port, l4.dst_port),
            _ => (0, 0),
        };
        Some(FlowKey {
            src_ip,
            dst_ip,
            proto,
            src_port,
            dst_port,
        })
    }

    /// The key of the reply direction.
    #[inline]
    pub fn reversed(&self) -> FlowKey {
        FlowKey {
            src_ip: self.dst_ip,
            dst_ip: self.src_ip,
            proto: self.proto,
            src_port: self.dst_port,
            dst_port: self.src_port,
        }
    }
}

/// MurmurHash3's 64-bit finaliser: a bijection with full avalanche.
#[inline(always)]
pub(crate) fn fmix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^= x >> 33;
    x
}

/// A 32-bit flow hash with `symmetric_hash(k) == symmetric_hash(&k.reversed())`.
///
/// The two endpoints (address, port) are put in a canonical order (smaller
/// first), packed into 64-bit words with the protocol, and mixed with
/// MurmurHash3's finaliser (two multiply-xorshift rounds per word). IPv4: about a
/// dozen ALU instructions; IPv6 folds each 128-bit address in with two more
/// rounds per half. No table, no allocation. Use it for flow affinity
/// (same NF instance both ways) and flow-cache buckets; it is not keyed, so it
/// is not a defence against an adversary choosing colliding flows.
#[inline]
pub fn symmetric_hash(key: &FlowKey) -> u32 {
    let h = match (key.src_ip, key.dst_ip) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let a = (u32::from(s), key.src_port);
            let b = (u32::from(d), key.dst_port);
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            let ips = (u64::from(lo.0) << 32) | u64::from(hi.0);
            let rest = (u64::from(lo.1) << 32) | (u64::from(hi.1) << 16) | u64::from(key.proto);
            fmix64(ips ^ fmix64(rest ^ 0x9e37_79b9_7f4a_7c15))
        }
        (s, d) => {
            let wide = |ip: IpAddr| match ip {
                IpAddr::V4(a) => u128::from(u32::from(a)),
                IpAddr::V6(a) => u128::from(a),
            };
            let a = (wide(s), key.src_port);
            let b = (wide(d), key.dst_port);
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            let halves = |x: u128| {
                let [b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, b15] =
                    x.to_le_bytes();
                (
                    u64::from_le_bytes([b0, b1, b2, b3, b4, b5, b6, b7]),
                    u64::from_le_bytes([b8, b9, b10, b11, b12, b13, b14, b15]),
                )
            };
            let (l0, l1) = halves(lo.0);
            let (h0, h1) = halves(hi.0);
            let rest = (u64::from(lo.1) << 32) | (u64::from(hi.1) << 16) | u64::from(key.proto);
            let mut h = fmix64(rest ^ 0x6a09_e667_f3bc_c909);
            for w in [l0, l1, h0, h1] {
                h = fmix64(h ^ w);
            }
            h
        }
    };
    let [b0, b1, b2, b3, b4, b5, b6, b7] = h.to_le_bytes();
    u32::from_le_bytes([b0, b1, b2, b3]) ^ u32::from_le_bytes([b4, b5, b6, b7])
}

#[cfg(test)]
// Test data is made by deliberately truncating wider integers.
#[allow(clippy::cast_possible_truncation)]
mod tests {
    use super::*;
    use crate::builder::{FrameSpec, L4Spec};
    use proptest::prelude::*;

    fn key_strategy() -> impl Strategy<Value = FlowKey> {
        (
            any::<u32>(),
            any::<u32>(),
            any::<u8>(),
            any::<u16>(),
            any::<u16>(),
        )
            .prop_map(|(s, d, proto, sp, dp)| FlowKey {
                src_ip: Ipv4Addr::from(s).into(),
                dst_ip: Ipv4Addr::from(d).into(),
                proto,
                src_port: sp,
                dst_port: dp,
            })
    }

    fn key6_strategy() -> impl Strategy<Value = FlowKey> {
        (
            any::<u128>(),
            any::<u128>(),
            any::<u8>(),
            any::<u16>(),
            any::<u16>(),
        )
            .prop_map(|(s, d, proto, sp, dp)| FlowKey {
                src_ip: Ipv6Addr::from(s).into(),
                dst_ip: Ipv6Addr::from(d).into(),
                proto,
                src_port: sp,
                dst_port: dp,
            })
    }

    proptest! {
        #[test]
        fn symmetric6(k in key6_strategy()) {
            prop_assert_eq!(symmetric_hash(&k), symmetric_hash(&k.reversed()));
        }

        #[test]
        fn symmetric(k in key_strategy()) {
            prop_assert_eq!(symmetric_hash(&k), symmetric_hash(&k.reversed()));
            prop_assert_eq!(k.reversed().reversed(), k);
        }

        #[test]
        fn from_ethernet_never_panics(data in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = FlowKey::from_ethernet(&data);
        }
    }

    /// A small deterministic PRNG (SplitMix64), so the distribution check does not
    /// depend on proptest's seed.
    fn splitmix(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        fmix64(*state)
    }

    fn assert_even(keys: impl Iterator<Item = FlowKey>, what: &str) {
        let mut buckets = [0u32; 16];
        let mut n = 0u32;
        for k in keys {
            buckets[(symmetric_hash(&k) % 16) as usize] += 1;
            n += 1;
        }
        let mean = n / 16;
        for (i, &c) in buckets.iter().enumerate() {
            assert!(
                c <= 2 * mean && c >= mean / 2,
                "{what}: bucket {i} has {c}, mean {mean}: {buckets:?}"
            );
        }
    }

    #[test]
    fn distribution_random_keys() {
        let mut s = 42u64;
        let keys = (0..100_000).map(|_| {
            let r = splitmix(&mut s);
            let q = splitmix(&mut s);
            FlowKey {
                src_ip: Ipv4Addr::from((r >> 32) as u32).into(),
                dst_ip: Ipv4Addr::from(r as u32).into(),
                proto: if q & 1 == 0 { 6 } else { 17 },
                src_port: (q >> 16) as u16,
                dst_port: (q >> 32) as u16,
            }
        });
        assert_even(keys, "random");
    }

    #[test]
    fn distribution_structured_keys() {
        // Low-entropy keys as a traffic generator makes them: consecutive source
        // addresses and ports, one server.
        let keys = (0..100_000u32).map(|i| FlowKey {
            src_ip: Ipv4Addr::from(0x0a00_0000 + i).into(),
            dst_ip: Ipv4Addr::new(192, 168, 0, 1).into(),
            proto: 17,
            src_port: 1024 + (i % 4096) as u16,
            dst_port: 80,
        });
        assert_even(keys, "structured");
        let ports = (0..65_536u32).map(|i| FlowKey {
            src_ip: Ipv4Addr::new(10, 0, 0, 1).into(),
            dst_ip: Ipv4Addr::new(10, 0, 0, 2).into(),
            proto: 6,
            src_port: i as u16,
            dst_port: 443,
        });
        assert_even(ports, "ports only");
        // IPv6: consecutive hosts of one /64 to one server.
        let v6 = (0..100_000u32).map(|i| FlowKey {
            src_ip: Ipv6Addr::from(0x2001_0db8_0000_0001_0000_0000_0000_0000u128 + u128::from(i))
                .into(),
            dst_ip: Ipv6Addr::from(0x2001_0db8_0000_0002_0000_0000_0000_0001u128).into(),
            proto: 6,
            src_port: 1024 + (i % 4096) as u16,
            dst_port: 443,
        });
        assert_even(v6, "ipv6 structured");
    }

    #[test]
    fn keys_from_frames() {
        let spec = FrameSpec {
            src_ip: Ipv4Addr::new(1, 1, 1, 1),
            dst_ip: Ipv4Addr::new(2, 2, 2, 2),
            l4: L4Spec::Tcp {
                src_port: 5,
                dst_port: 6,
                seq: 0,
                ack: 0,
                flags: 0x10,
            },
            ..FrameSpec::default()
        };
        let f = spec.build(b"x");
        let k = FlowKey::from_ethernet(&f).unwrap();
        assert_eq!(
            k,
            FlowKey {
                src_ip: Ipv4Addr::new(1, 1, 1, 1).into(),
                dst_ip: Ipv4Addr::new(2, 2, 2, 2).into(),
                proto: 6,
                src_port: 5,
                dst_port: 6
            }
        );
        let rev = FlowKey::from_ethernet(&spec.reversed().build(b"y")).unwrap();
        assert_eq!(rev, k.reversed());
        assert_eq!(symmetric_hash(&rev), symmetric_hash(&k));

        // Fragments: ports zeroed, first fragment included.
        let mut frag = f.clone();
        frag[14 + 6] = 0x20;
        assert_eq!(FlowKey::from_ethernet(&frag).unwrap().src_port, 0);
        // Non-IPv4 and truncated frames have no key.
        let mut arp = f.clone();
        arp[12] = 0x08;
        arp[13] = 0x06;
        assert_eq!(FlowKey::from_ethernet(&arp), None);
        assert_eq!(FlowKey::from_ethernet(&f[..30]), None);
    }
}
