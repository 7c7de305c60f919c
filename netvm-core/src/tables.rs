//! Compiled, immutable lookup tables the workers read: services, chains, classification rules.
//!
//! Built by the control side from the [`Config`](crate::config::Config) (and on runtime chain
//! changes), handed to workers as a whole through their command queues and swapped between
//! bursts. Chain ids are never reused within a run: packets in flight keep the id of the chain
//! they entered, and retired chains stay in [`Tables::chains`] (marked `retired`) so that those
//! packets still finish their route.

use netvm_wire::{IpPrefix, Ipv4Prefix, Ipv6Prefix, Rule};

use crate::config::{
    parse_port_range, parse_prefix, parse_proto, parse_vlan, Balance, ChainConfig, Config,
    ConfigError, MatchConfig, MAX_CHAIN_LEN,
};
use crate::stats::MAX_CHAINS;

/// Most services one run can number (services of removed NFs included: ids are never reused).
pub const MAX_SERVICES: usize = 1024;

/// A service and its instances (NF indices).
#[derive(Debug, Clone)]
pub struct Service {
    /// Name.
    pub name: String,
    /// NF indices providing it.
    pub instances: Vec<u16>,
}

/// A compiled chain.
#[derive(Debug, Clone)]
pub struct Chain {
    /// Name.
    pub name: String,
    /// Service ids in order ([`REMOTE_HOP`] for a hop a peer instance runs).
    pub services: Vec<u16>,
    /// Per position: the port leading to the peer that runs this hop, or None (local).
    pub remote: Vec<Option<u16>>,
    /// NSH service path identifier, if the chain has one.
    pub path_id: Option<u32>,
    /// Egress port id, or None for drop.
    pub egress: Option<u16>,
    /// Ports an NF of this chain may name in OUT(port): bit i = port i.
    pub allowed_ports: u64,
    /// Instance selection.
    pub balance: Balance,
    /// Replaced by a later chain table: matches no new packets.
    pub retired: bool,
    /// What happens to a packet when no instance of a service is attached.
    pub failure: FailurePolicy,
    /// Entry backpressure (`backpressure` in the config; see `worker::deliver`).
    pub backpressure: bool,
}

/// A chain's policy for a service with no attached instance (crashed, detached, quarantined).
/// With several instances, a packet first fails over to another attached instance; the policy
/// applies only when none is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailurePolicy {
    /// Drop the packet, counted as `nf_unavailable`.
    #[default]
    Drop,
    /// Skip the service: the packet continues with the next service (or the egress).
    Bypass,
}

/// The service id a chain holds for a hop run by a peer instance (no local service has it:
/// at most 254 NFs).
pub const REMOTE_HOP: u16 = u16::MAX;

/// Tables shared (read-only) by all workers.
#[derive(Debug, Clone)]
pub struct Tables {
    /// Services by id.
    pub services: Vec<Service>,
    /// Chains by id (retired ones included).
    pub chains: Vec<Chain>,
    /// Classification rules in order: (rule, chain id).
    pub rules: Vec<(Rule, u16)>,
    /// Version; workers clear their flow caches when it changes.
    pub version: u64,
    /// Per port index: the chain every packet of that port enters when the first rule that
    /// can match the port looks at nothing but the input port (no parsing needed), or None.
    pub port_fast: Vec<Option<u16>>,
    /// Per chain id: whether any of its services has several instances (flow hash needed).
    pub needs_hash: Vec<bool>,
    /// Active chains with a path id, sorted by it: (path id, chain id). NSH arrivals resume
    /// the chain found here.
    pub paths: Vec<(u32, u16)>,
    /// Ports some active chain's remote hop names (bit i = port i): frames with ethertype NSH
    /// arriving there are NSH arrivals, not classified.
    pub nsh_ports: u64,
}

/// Compiles a chain `match` (or a capture filter) into a classifier [`Rule`]; `path` names a
/// field in errors (`chains[0].match.proto`).
pub fn compile_match(
    m: &MatchConfig,
    port_ids: &dyn Fn(&str) -> Option<u16>,
    path: &dyn Fn(&str) -> String,
) -> Result<Rule, ConfigError> {
    let mp = |f: &str| path(f);
    let mut rule = Rule::default();
    if let Some(ip) = &m.in_port {
        rule.in_port =
            Some(port_ids(ip).ok_or_else(|| cerr(mp("in_port"), format!("no port named {ip:?}")))?);
    }
    rule.ethertype = m.ethertype;
    if let Some(v) = m.vlan {
        rule.vlan = Some(parse_vlan(v).map_err(|r| cerr(mp("vlan"), r))?);
    }
    if let Some(v) = m.inner_vlan {
        rule.inner_vlan = Some(parse_vlan(v).map_err(|r| cerr(mp("inner_vlan"), r))?);
    }
    let prefix = |f: &str, s: &str| -> Result<IpPrefix, ConfigError> {
        let (a, l) = parse_prefix(s).map_err(|r| cerr(mp(f), r))?;
        match a {
            std::net::IpAddr::V4(a) => Ipv4Prefix::new(a, l).map(IpPrefix::V4),
            std::net::IpAddr::V6(a) => Ipv6Prefix::new(a, l).map(IpPrefix::V6),
        }
        .map_err(|e| cerr(mp(f), e.to_string()))
    };
    if let Some(s) = &m.src {
        rule.src = Some(prefix("src", s)?);
    }
    if let Some(s) = &m.dst {
        rule.dst = Some(prefix("dst", s)?);
    }
    if let Some(s) = &m.proto {
        rule.proto = Some(parse_proto(s).map_err(|r| cerr(mp("proto"), r))?);
    }
    if let Some(s) = &m.src_port {
        let (a, b) = parse_port_range(s).map_err(|r| cerr(mp("src_port"), r))?;
        rule.src_port = Some(a..=b);
    }
    if let Some(s) = &m.dst_port {
        let (a, b) = parse_port_range(s).map_err(|r| cerr(mp("dst_port"), r))?;
        rule.dst_port = Some(a..=b);
    }
    Ok(rule)
}

fn cerr(path: String, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        path,
        reason: reason.into(),
    }
}

impl Tables {
    /// Services from the NF list (NF index order), chains from the config.
    pub fn build(
        cfg: &Config,
        port_ids: &dyn Fn(&str) -> Option<u16>,
    ) -> Result<Self, ConfigError> {
        let mut services: Vec<Service> = Vec::new();
        for (i, nf) in cfg.nfs.iter().enumerate() {
            let idx = u16::try_from(i).map_err(|_| cerr("nfs".into(), "too many NFs"))?;
            match services.iter_mut().find(|s| s.name == nf.service) {
                Some(s) => s.instances.push(idx),
                None => services.push(Service {
                    name: nf.service.clone(),
                    instances: vec![idx],
                }),
            }
        }
        let mut t = Tables {
            services,
            chains: Vec::new(),
            rules: Vec::new(),
            version: 1,
            port_fast: vec![None; cfg.ports.len()],
            needs_hash: Vec::new(),
            paths: Vec::new(),
            nsh_ports: 0,
        };
        t.set_chains(&cfg.chains, port_ids)?;
        Ok(t)
    }

    /// The chain an NSH arrival with path id `spi` resumes.
    #[inline]
    pub fn path_chain(&self, spi: u32) -> Option<u16> {
        self.paths
            .binary_search_by_key(&spi, |&(p, _)| p)
            .ok()
            .map(|i| self.paths[i].1)
    }

    /// Service id by name.
    pub fn service_id(&self, name: &str) -> Option<u16> {
        self.services
            .iter()
            .position(|s| s.name == name)
            .and_then(|i| u16::try_from(i).ok())
    }

    /// Replaces the active chains: old ones are retired (kept for packets in flight), the new
    /// ones get fresh ids, rules are rebuilt, the version bumps.
    pub fn set_chains(
        &mut self,
        chains: &[ChainConfig],
        port_ids: &dyn Fn(&str) -> Option<u16>,
    ) -> Result<(), ConfigError> {
        let mut new_chains = Vec::new();
        let mut rules = Vec::new();
        for (i, c) in chains.iter().enumerate() {
            let p = |f: &str| format!("chains[{i}].{f}");
            if c.services.len() > MAX_CHAIN_LEN {
                return Err(cerr(
                    p("services"),
                    format!("at most {MAX_CHAIN_LEN} services"),
                ));
            }
            let mut services = Vec::new();
            let mut remote = Vec::new();
            for (j, h) in c.services.iter().enumerate() {
                match h.at() {
                    Some(at) => {
                        let port = port_ids(at).ok_or_else(|| {
                            cerr(
                                format!("chains[{i}].services[{j}].at"),
                                format!("no port named {at:?}"),
                            )
                        })?;
                        if c.path_id.is_none() {
                            return Err(cerr(
                                p("path_id"),
                                "a chain with a hop on a peer instance needs a path_id",
                            ));
                        }
                        services.push(REMOTE_HOP);
                        remote.push(Some(port));
                    }
                    None => {
                        let s = h.service();
                        let id = self.service_id(s).ok_or_else(|| {
                            cerr(
                                format!("chains[{i}].services[{j}]"),
                                format!("no NF provides service {s:?}"),
                            )
                        })?;
                        services.push(id);
                        remote.push(None);
                    }
                }
            }
            let egress = match c.egress.as_deref() {
                None | Some("drop") => None,
                Some(e) => Some(
                    port_ids(e).ok_or_else(|| cerr(p("egress"), format!("no port named {e:?}")))?,
                ),
            };
            let mut allowed = egress.map_or(0u64, |e| 1u64 << e);
            for (j, a) in c.allow_ports.iter().enumerate() {
                let id = port_ids(a).ok_or_else(|| {
                    cerr(
                        format!("chains[{i}].allow_ports[{j}]"),
                        format!("no port named {a:?}"),
                    )
                })?;
                allowed |= 1u64 << id;
            }
            let rule = compile_match(&c.matches, port_ids, &|f| format!("chains[{i}].match.{f}"))?;
            new_chains.push(Chain {
                name: c.name.clone(),
                services,
                remote,
                path_id: c.path_id,
                egress,
                allowed_ports: allowed,
                balance: c.balance,
                retired: false,
                failure: match c.failure {
                    crate::config::Failure::Drop => FailurePolicy::Drop,
                    crate::config::Failure::Bypass => FailurePolicy::Bypass,
                },
                backpressure: c.backpressure,
            });
            // Only the instance that runs the first hop classifies into the chain.
            rules.push(c.classifies_here().then_some(rule));
        }
        for (i, c) in new_chains.iter().enumerate() {
            if let Some(id) = c.path_id {
                if new_chains[..i].iter().any(|o| o.path_id == Some(id)) {
                    return Err(cerr(
                        format!("chains[{i}].path_id"),
                        format!("path {id} is already another chain's"),
                    ));
                }
            }
        }
        if self.chains.len() + new_chains.len() > MAX_CHAINS {
            return Err(cerr("chains".into(), format!("chain ids exhausted: at most {MAX_CHAINS} chains per run, replaced ones included")));
        }
        for c in &mut self.chains {
            c.retired = true;
        }
        let base = self.chains.len();
        self.rules = rules
            .into_iter()
            .enumerate()
            .filter_map(|(i, r)| Some((r?, u16::try_from(base + i).unwrap_or(u16::MAX))))
            .collect();
        self.chains.extend(new_chains);
        let mut paths = Vec::new();
        let mut nsh_ports = 0u64;
        for (id, c) in self.chains.iter().enumerate().skip(base) {
            if let Some(p) = c.path_id {
                paths.push((p, u16::try_from(id).unwrap_or(u16::MAX)));
            }
            for port in c.remote.iter().flatten() {
                nsh_ports |= 1u64 << port;
            }
        }
        paths.sort_unstable();
        self.paths = paths;
        self.nsh_ports = nsh_ports;
        self.refresh();
        Ok(())
    }

    /// Adds NF `nf` as an instance of service `name`, a new service (with the next id) if no
    /// NF provided it before; bumps the version. Returns the service id and whether it is new.
    pub fn add_instance(&mut self, name: &str, nf: u16) -> Result<(u16, bool), String> {
        let (id, new) = match self.service_id(name) {
            Some(id) => (id, false),
            None => {
                if self.services.len() >= MAX_SERVICES {
                    return Err(format!(
                        "service ids exhausted: at most {MAX_SERVICES} services per run"
                    ));
                }
                self.services.push(Service {
                    name: name.to_owned(),
                    instances: Vec::new(),
                });
                (
                    u16::try_from(self.services.len() - 1).unwrap_or(u16::MAX),
                    true,
                )
            }
        };
        self.services[usize::from(id)].instances.push(nf);
        self.refresh();
        Ok((id, new))
    }

    /// Takes NF `nf` out of every service's instances (its service keeps its id, possibly
    /// with no instance left: chains naming it then follow their failure policy); bumps the
    /// version.
    pub fn remove_instance(&mut self, nf: u16) {
        for s in &mut self.services {
            s.instances.retain(|&x| x != nf);
        }
        self.refresh();
    }

    /// Recomputes what derives from services and chains, and bumps the version (workers
    /// clear their flow caches: pinned instances are positions in the instance lists).
    fn refresh(&mut self) {
        self.version += 1;
        self.needs_hash = self
            .chains
            .iter()
            .map(|c| {
                c.services.iter().any(|&s| {
                    self.services
                        .get(usize::from(s))
                        .is_some_and(|s| s.instances.len() > 1)
                })
            })
            .collect();
        for (p, fast) in self.port_fast.iter_mut().enumerate() {
            let first = self
                .rules
                .iter()
                .find(|(r, _)| r.in_port.is_none_or(|ip| usize::from(ip) == p));
            // Least-loaded placement needs no flow cache (the placement table is keyed by the
            // flow hash, which the fast path computes when a service has several instances).
            *fast = first.and_then(|(r, c)| r.only_in_port().then_some(*c));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ports(n: &str) -> Option<u16> {
        match n {
            "in" => Some(0),
            "out" => Some(1),
            _ => None,
        }
    }

    fn tables() -> Tables {
        let cfg = Config::from_json(
            r#"{"domains": [{"name": "d"}],
                "ports": [{"name": "in", "device": "net_null0", "domain": "d"},
                          {"name": "out", "device": "net_null1", "domain": "d"}],
                "nfs": [{"name": "a", "service": "fwd", "domain": "d"}],
                "chains": [{"name": "c", "match": {"in_port": "in"}, "services": ["fwd"],
                            "egress": "out"}]}"#,
        )
        .unwrap();
        Tables::build(&cfg, &ports).unwrap()
    }

    /// Instances come and go without moving service ids; chains may name a service once it
    /// has an instance, and a service keeps its id (empty) when its last one leaves.
    #[test]
    fn instances_added_and_removed_keep_service_ids() {
        let mut t = tables();
        let v = t.version;
        assert_eq!(t.add_instance("fwd", 2).unwrap(), (0, false));
        assert_eq!(t.services[0].instances, [0, 2]);
        assert!(t.needs_hash[0], "two instances need the flow hash");
        assert_eq!(t.add_instance("mon", 3).unwrap(), (1, true));
        assert!(t.version > v);
        let chains: Vec<ChainConfig> = serde_json::from_str(
            r#"[{"name": "m", "match": {"in_port": "in"}, "services": ["mon", "fwd"], "egress": "out"}]"#,
        )
        .unwrap();
        t.set_chains(&chains, &ports).unwrap();
        let m = t.chains.last().unwrap();
        assert_eq!(m.services, [1, 0]);
        t.remove_instance(3);
        t.remove_instance(2);
        assert_eq!(t.service_id("mon"), Some(1));
        assert!(t.services[1].instances.is_empty());
        assert_eq!(t.services[0].instances, [0]);
        assert!(!t.needs_hash.iter().any(|&h| h));
        // The freed index joins another service later.
        assert_eq!(t.add_instance("new", 3).unwrap(), (2, true));
    }
}
