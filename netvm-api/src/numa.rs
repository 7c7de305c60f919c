//! The NUMA placement rule that `netvm-manager check` (and `up`) and the core's start enforce.
//!
//! A domain with `numa_node: N` has its region (packet buffers), its NFs' control regions
//! (rings) and its DPDK pool (mbuf headers) on node N. Whoever touches them per packet should
//! run on N, so the rule is:
//!
//! 1. `domains[i].numa_node` must be a node of the machine;
//! 2. every worker that polls a port of such a domain ([`port_workers`]) must be pinned to a
//!    CPU of that node (error at `workers[w].cpu`): it receives into the region, writes the
//!    packets' descriptors into the NFs' rings and reads headers of every packet;
//! 3. every NF of such a domain that has a `cpu` must be pinned to a CPU of that node (error at
//!    `nfs[j].cpu`): it reads and writes the packets in the region;
//! 4. a CPU the rule looks at must exist in the topology (its node is unknown otherwise).
//!
//! Domains without `numa_node` are not looked at. The topology is an input ([`NumaTopology`],
//! node → CPUs): the manager reads it with hwloc (`hugepage-tools`, which honours hwloc's
//! `HWLOC_SYNTHETIC` / `HWLOC_XMLFILE` for tests), so this crate stays free of hwloc and DPDK.
//! The worker that drains an NF's TX ring is not part of the rule (yet): it touches the NF's
//! rings but not, on the fast path, the packet bytes.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::{port_workers, Config, ConfigError};

/// The machine's NUMA nodes and the CPUs of each, as the placement rule sees them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NumaTopology {
    nodes: BTreeMap<u32, BTreeSet<usize>>,
}

impl NumaTopology {
    /// From (node id, its CPUs) pairs; a node may have no CPUs (memory only).
    pub fn new<I, C>(nodes: I) -> Self
    where
        I: IntoIterator<Item = (u32, C)>,
        C: IntoIterator<Item = usize>,
    {
        let mut map: BTreeMap<u32, BTreeSet<usize>> = BTreeMap::new();
        for (n, cpus) in nodes {
            map.entry(n).or_default().extend(cpus);
        }
        Self { nodes: map }
    }

    /// Whether node `n` exists.
    #[must_use]
    pub fn has_node(&self, n: u32) -> bool {
        self.nodes.contains_key(&n)
    }

    /// The node CPU `cpu` belongs to.
    #[must_use]
    pub fn node_of_cpu(&self, cpu: usize) -> Option<u32> {
        self.nodes
            .iter()
            .find(|(_, cpus)| cpus.contains(&cpu))
            .map(|(n, _)| *n)
    }

    /// The CPUs of node `n` as a list (`0-3,8`; `none`).
    fn cpus_of(&self, n: u32) -> String {
        self.nodes
            .get(&n)
            .map_or_else(|| "none".into(), |c| cpu_list(c.iter().copied()))
    }

    /// `0 (CPUs 0-1), 1 (CPUs 2-3)`.
    fn describe(&self) -> String {
        self.nodes
            .keys()
            .map(|n| format!("{n} (CPUs {})", self.cpus_of(*n)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `0-3,8` style list; `none` when empty.
fn cpu_list(cpus: impl IntoIterator<Item = usize>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut run: Option<(usize, usize)> = None;
    for c in cpus {
        run = match run {
            Some((a, b)) if c == b + 1 => Some((a, c)),
            Some((a, b)) => {
                out.push(range(a, b));
                Some((c, c))
            }
            None => Some((c, c)),
        };
    }
    if let Some((a, b)) = run {
        out.push(range(a, b));
    }
    if out.is_empty() {
        "none".into()
    } else {
        out.join(",")
    }
}

fn range(a: usize, b: usize) -> String {
    if a == b {
        a.to_string()
    } else {
        format!("{a}-{b}")
    }
}

fn err(path: String, reason: String) -> ConfigError {
    ConfigError { path, reason }
}

impl Config {
    /// Whether any domain names a NUMA node (only then is there anything to place or check).
    #[must_use]
    pub fn uses_numa(&self) -> bool {
        self.domains.iter().any(|d| d.numa_node.is_some())
    }

    /// Checks the NUMA placement rule (module docs) against `topo`. Call after
    /// [`Config::validate`]. Every error names the JSON path of the value to change and what
    /// the misplacement would cost.
    pub fn check_numa(&self, topo: &NumaTopology) -> Result<(), ConfigError> {
        for (i, d) in self.domains.iter().enumerate() {
            if let Some(n) = d.numa_node {
                if !topo.has_node(n) {
                    return Err(err(
                        format!("domains[{i}].numa_node"),
                        format!(
                            "NUMA node {n} does not exist on this machine (nodes: {})",
                            topo.describe()
                        ),
                    ));
                }
            }
        }
        let node_of = |path: &str, cpu: usize| {
            topo.node_of_cpu(cpu).ok_or_else(|| {
                let all = cpu_list(
                    topo.nodes
                        .values()
                        .flatten()
                        .copied()
                        .collect::<BTreeSet<_>>(),
                );
                err(
                    path.to_owned(),
                    format!(
                        "CPU {cpu} is not in this machine's NUMA topology (CPUs: {all}), so its \
                         node is unknown"
                    ),
                )
            })
        };
        let domain_node = |name: &str| {
            self.domains
                .iter()
                .enumerate()
                .find(|(_, d)| d.name == name)
                .and_then(|(i, d)| d.numa_node.map(|n| (i, n)))
        };
        for (p, port) in self.ports.iter().enumerate() {
            let Some((di, want)) = domain_node(&port.domain) else {
                continue;
            };
            for w in port_workers(self, p) {
                let Some(worker) = self.workers.get(w) else {
                    continue;
                };
                let path = format!("workers[{w}].cpu");
                let got = node_of(&path, worker.cpu)?;
                if got != want {
                    return Err(err(
                        path,
                        format!(
                            "CPU {} is on NUMA node {got}, but this worker polls port {:?} \
                             (ports[{p}]) of domain {:?}, whose region is on node {want} \
                             (domains[{di}].numa_node): cross-node access to the region costs a \
                             remote memory access for every packet; pin the worker to a CPU of \
                             node {want} ({})",
                            worker.cpu,
                            port.name,
                            port.domain,
                            topo.cpus_of(want)
                        ),
                    ));
                }
            }
        }
        for (j, nf) in self.nfs.iter().enumerate() {
            let (Some(cpu), Some((di, want))) = (nf.cpu, domain_node(&nf.domain)) else {
                continue;
            };
            let path = format!("nfs[{j}].cpu");
            let got = node_of(&path, cpu)?;
            if got != want {
                return Err(err(
                    path,
                    format!(
                        "CPU {cpu} is on NUMA node {got}, but NF {:?} works on the packets of \
                         domain {:?}, whose region is on node {want} (domains[{di}].numa_node): \
                         cross-node access to the region costs a remote memory access for every \
                         packet; pin the NF to a CPU of node {want} ({})",
                        nf.name,
                        nf.domain,
                        topo.cpus_of(want)
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two nodes: CPUs 0-3 on node 0, 4-7 on node 1.
    fn topo() -> NumaTopology {
        NumaTopology::new([(0, vec![0, 1, 2, 3]), (1, vec![4, 5, 6, 7])])
    }

    fn cfg(v: serde_json::Value) -> Config {
        let c = Config::from_json(&v.to_string()).unwrap();
        c.validate().unwrap();
        c
    }

    /// Domain a (node 0) with ports pa0, pa1; domain b (node 1) with port pb; workers on 0, 4.
    fn base() -> serde_json::Value {
        serde_json::json!({
            "workers": [{"cpu": 0}, {"cpu": 4}],
            "domains": [{"name": "a", "numa_node": 0}, {"name": "b", "numa_node": 1}],
            "ports": [{"name": "pa0", "device": "net_null0", "domain": "a", "rx_queues": 1},
                      {"name": "pb", "device": "net_null1", "domain": "b", "rx_queues": 1},
                      {"name": "pa1", "device": "net_null2", "domain": "a", "rx_queues": 1}],
            "nfs": [{"name": "fa", "service": "s", "domain": "a", "cpu": 1},
                    {"name": "fb", "service": "t", "domain": "b", "cpu": 5}]
        })
    }

    #[test]
    fn placement_on_the_right_nodes_passes() {
        // pa0 -> worker 0 (CPU 0, node 0), pb -> worker 1 (CPU 4, node 1), pa1 -> worker 0.
        cfg(base()).check_numa(&topo()).unwrap();
        assert_eq!(port_workers(&cfg(base()), 2), vec![0]);
    }

    #[test]
    fn ports_with_a_queue_per_worker_are_polled_by_every_worker() {
        // rx_queues unset: one queue per worker, so both workers poll pa0 (domain a, node 0),
        // and worker 1 (CPU 4, node 1) is misplaced for it.
        let mut v = base();
        v["ports"][0].as_object_mut().unwrap().remove("rx_queues");
        let c = cfg(v);
        assert_eq!(port_workers(&c, 0), vec![0, 1]);
        let e = c.check_numa(&topo()).unwrap_err();
        assert_eq!(e.path, "workers[1].cpu", "{e}");
        // An explicit map puts both queues on worker 0: fine again.
        let mut v = base();
        v["ports"][0]["rx_queues"] = serde_json::json!(2);
        v["ports"][0]["rx_queue_workers"] = serde_json::json!([0, 0]);
        cfg(v).check_numa(&topo()).unwrap();
    }

    #[test]
    fn misplacements_name_their_path() {
        let cases: Vec<(&str, serde_json::Value, &str, &str)> = vec![
            (
                "/domains/1/numa_node",
                serde_json::json!(7),
                "domains[1].numa_node",
                "NUMA node 7 does not exist on this machine (nodes: 0 (CPUs 0-3), 1 (CPUs 4-7))",
            ),
            (
                "/workers/1/cpu",
                serde_json::json!(2),
                "workers[1].cpu",
                "CPU 2 is on NUMA node 0, but this worker polls port \"pb\" (ports[1])",
            ),
            (
                "/workers/0/cpu",
                serde_json::json!(6),
                "workers[0].cpu",
                "remote memory access",
            ),
            (
                "/nfs/1/cpu",
                serde_json::json!(3),
                "nfs[1].cpu",
                "NF \"fb\" works on the packets of domain \"b\", whose region is on node 1",
            ),
            (
                "/nfs/0/cpu",
                serde_json::json!(9),
                "nfs[0].cpu",
                "CPU 9 is not in this machine's NUMA topology (CPUs: 0-7)",
            ),
        ];
        for (ptr, val, path, reason) in cases {
            let mut v = base();
            *v.pointer_mut(ptr).unwrap() = val;
            let e = cfg(v).check_numa(&topo()).unwrap_err();
            assert_eq!(e.path, path, "{e}");
            assert!(e.reason.contains(reason), "{e}");
        }
    }

    #[test]
    fn domains_without_a_node_are_not_checked() {
        let mut v = base();
        v["domains"][1] = serde_json::json!({"name": "b"});
        v["workers"][1]["cpu"] = serde_json::json!(2); // polls pb (domain b): fine now
        let c = cfg(v);
        assert!(c.uses_numa());
        c.check_numa(&topo()).unwrap();
        let mut v = base();
        v["domains"] = serde_json::json!([{"name": "a"}, {"name": "b"}]);
        v["nfs"][0]["cpu"] = serde_json::json!(7);
        let c = cfg(v);
        assert!(!c.uses_numa());
        c.check_numa(&topo()).unwrap();
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(cpu_list([0, 1, 2, 5, 7, 8]), "0-2,5,7-8");
        assert_eq!(cpu_list([]), "none");
        assert_eq!(topo().node_of_cpu(5), Some(1));
        assert_eq!(topo().node_of_cpu(8), None);
        let memory_only = NumaTopology::new([(0, vec![0]), (1, vec![])]);
        assert!(memory_only.has_node(1));
        assert_eq!(memory_only.cpus_of(1), "none");
    }
}
