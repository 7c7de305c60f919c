//! The exact-match flow cache in front of the ordered rules: 4-way set associative on (5-tuple,
//! input port, VLAN IDs — everything a rule can look at), a round-robin victim per set, fixed
//! size (allocated once at start). It caches classification only: where a least-loaded chain
//! placed a flow lives in the placement table ([`super::place`]), which outlives this cache's
//! evictions and its clearing on every table change.

use netvm_wire::FlowKey;

const FLOW_SETS: usize = 2048;
const FLOW_WAYS: usize = 4;
const FLOW_WAYS_U8: u8 = 4;

#[derive(Clone, Copy)]
struct FlowEntry {
    valid: bool,
    in_port: u8,
    vlans: u32,
    key: FlowKey,
    chain: u16,
}

const EMPTY_FLOW: FlowEntry = FlowEntry {
    valid: false,
    in_port: 0,
    vlans: 0,
    key: FlowKey {
        src_ip: std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        dst_ip: std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        proto: 0,
        src_port: 0,
        dst_port: 0,
    },
    chain: 0,
};

/// The cache (see the module docs). Entry handles are plain indices, valid until the next
/// [`insert`](Self::insert) into the same set or [`clear`](Self::clear).
pub(super) struct FlowCache {
    entries: Box<[FlowEntry]>,
    victim: Box<[u8]>,
}

impl FlowCache {
    pub(super) fn new() -> Self {
        Self {
            entries: vec![EMPTY_FLOW; FLOW_SETS * FLOW_WAYS].into_boxed_slice(),
            victim: vec![0; FLOW_SETS].into_boxed_slice(),
        }
    }

    /// Forgets every flow (the chain tables changed).
    pub(super) fn clear(&mut self) {
        self.entries.fill(EMPTY_FLOW);
    }

    #[inline]
    fn set_of(hash: u32, in_port: u8) -> usize {
        ((hash as usize ^ usize::from(in_port)) & (FLOW_SETS - 1)) * FLOW_WAYS
    }

    /// The entry of (`key`, `in_port`, `vlans`), whose symmetric hash is `hash`, if cached.
    /// `vlans` encodes the VLAN IDs a rule can match (see [`vlan_key`]).
    #[inline]
    pub(super) fn lookup(
        &self,
        key: &FlowKey,
        in_port: u8,
        vlans: u32,
        hash: u32,
    ) -> Option<usize> {
        let set = Self::set_of(hash, in_port);
        (set..set + FLOW_WAYS).find(|&i| {
            let e = &self.entries[i];
            e.valid && e.key == *key && e.in_port == in_port && e.vlans == vlans
        })
    }

    /// Caches (`key`, `in_port`) → `chain` in an empty way of its set, else in the set's next
    /// victim in turn; returns the entry.
    #[inline]
    pub(super) fn insert(
        &mut self,
        key: FlowKey,
        in_port: u8,
        vlans: u32,
        hash: u32,
        chain: u16,
    ) -> usize {
        let set = Self::set_of(hash, in_port);
        let i = (set..set + FLOW_WAYS)
            .find(|&i| !self.entries[i].valid)
            .unwrap_or_else(|| {
                let v = &mut self.victim[set / FLOW_WAYS];
                *v = (*v + 1) % FLOW_WAYS_U8;
                set + usize::from(*v)
            });
        self.entries[i] = FlowEntry {
            valid: true,
            in_port,
            vlans,
            key,
            chain,
        };
        i
    }

    /// The chain of entry `i`.
    #[inline]
    pub(super) fn chain(&self, i: usize) -> u16 {
        self.entries[i].chain
    }
}

/// The VLAN IDs of a packet as one word for the cache: outer in the high half, inner in the
/// low half, each `0x1000 | VID` when the tag is present and 0 when it is not.
#[inline]
pub(super) fn vlan_key(meta: &netvm_wire::PacketMeta) -> u32 {
    let one = |t: Option<u16>| t.map_or(0u32, |t| 0x1000 | u32::from(t & 0x0fff));
    (one(meta.vlan_tci) << 16) | one(meta.inner_vlan_tci)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u16) -> FlowKey {
        FlowKey {
            src_ip: std::net::Ipv4Addr::new(10, 0, 0, 1).into(),
            dst_ip: std::net::Ipv4Addr::new(10, 0, 0, 2).into(),
            proto: 17,
            src_port: n,
            dst_port: 53,
        }
    }

    #[test]
    fn hit_miss_evict_clear() {
        let mut c = FlowCache::new();
        assert_eq!(c.lookup(&key(1), 0, 0, 7), None);
        let i = c.insert(key(1), 0, 0, 7, 3);
        assert_eq!(c.lookup(&key(1), 0, 0, 7), Some(i));
        assert_eq!(c.chain(i), 3);
        // Same key on another port, or in another VLAN, is another flow.
        assert_eq!(c.lookup(&key(1), 1, 0, 7), None);
        assert_eq!(c.lookup(&key(1), 0, 0x1064_0000, 7), None);
        // Five flows in one set: one of the first four was evicted, the newest is cached.
        for n in 2..=5 {
            c.insert(key(n), 0, 0, 7, n);
        }
        assert_eq!(c.lookup(&key(5), 0, 0, 7).map(|i| c.chain(i)), Some(5));
        let cached = (1..=5)
            .filter(|&n| c.lookup(&key(n), 0, 0, 7).is_some())
            .count();
        assert_eq!(cached, FLOW_WAYS);
        c.clear();
        assert_eq!(c.lookup(&key(5), 0, 0, 7), None);
    }
}
