//! NUMA topology: nodes, the CPUs local to each, and each node's memory.
//!
//! [`Topology::discover`] asks hwloc (through the `hwloc2` crate) and falls back to sysfs
//! (`/sys/devices/system/node/node<K>/{cpulist,meminfo}`) if hwloc cannot load a topology;
//! [`Topology::source`] says which answered. hwloc reports the resources this process is
//! allowed to use (a cgroup cpuset hides the rest); sysfs reports every online CPU.
//!
//! `hwloc2` 2.2 cannot enumerate NUMA node objects directly (their virtual depth makes
//! `objects_at_depth` panic, and memory children are private), so the hwloc path derives the
//! nodes from the PU objects' nodesets, and a node's memory from the highest object whose
//! nodeset is exactly that node (its `total_memory` is the memory of the NUMA nodes below it).
//! A memory-only node (no CPUs, no such object) gets its memory from sysfs.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::sysfs;

/// Errors from discovering the topology.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// hwloc could not initialise or load a topology.
    #[error("hwloc could not load the machine topology")]
    HwlocLoad,
    /// hwloc has no PU objects.
    #[error("hwloc reports no processing units")]
    HwlocNoPus,
    /// A sysfs file or directory could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A `cpulist` file did not hold a cpu list.
    #[error("{path} holds {content:?}, not a cpu list")]
    BadCpuList {
        /// The file.
        path: PathBuf,
        /// What it held (trimmed).
        content: String,
    },
    /// Neither hwloc nor sysfs produced a topology.
    #[error("no topology from hwloc ({hwloc}) nor from sysfs")]
    Unavailable {
        /// Why hwloc failed.
        hwloc: Box<TopologyError>,
        /// Why sysfs failed.
        #[source]
        sysfs: Box<TopologyError>,
    },
}

/// Where a [`Topology`] came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum TopologySource {
    /// The hwloc library.
    Hwloc,
    /// sysfs, read under this root.
    Sysfs {
        /// The root the sysfs tree was read under.
        root: PathBuf,
        /// Why hwloc was not used, when it was tried and failed.
        hwloc_error: Option<String>,
    },
}

/// One NUMA node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NumaNode {
    /// The OS node id (`node<K>` in sysfs).
    pub id: u32,
    /// The OS ids of the CPUs local to this node, ascending; empty for a memory-only node.
    pub cpus: Vec<u32>,
    /// The same CPUs as a kernel cpu list (`0-3,8`).
    pub cpuset: String,
    /// Memory local to this node in bytes, where known.
    pub memory_bytes: Option<u64>,
}

/// The NUMA nodes of the machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Topology {
    /// Which source answered.
    pub source: TopologySource,
    /// The nodes, ascending by id. A machine without NUMA has one node, 0.
    pub nodes: Vec<NumaNode>,
}

impl Topology {
    /// The topology of the running machine: hwloc, or sysfs if hwloc fails.
    pub fn discover() -> Result<Topology, TopologyError> {
        match Topology::from_hwloc() {
            Ok(t) => Ok(t),
            Err(hwloc) => {
                let root = Path::new(sysfs::SYSTEM_ROOT);
                match Topology::from_sysfs(root) {
                    Ok(mut t) => {
                        t.source = TopologySource::Sysfs {
                            root: root.to_owned(),
                            hwloc_error: Some(crate::error_chain(&hwloc)),
                        };
                        Ok(t)
                    }
                    Err(sysfs) => Err(TopologyError::Unavailable {
                        hwloc: Box::new(hwloc),
                        sysfs: Box::new(sysfs),
                    }),
                }
            }
        }
    }

    /// The topology as hwloc sees it.
    pub fn from_hwloc() -> Result<Topology, TopologyError> {
        let topo = hwloc2::Topology::new().ok_or(TopologyError::HwlocLoad)?;
        let pus = topo
            .objects_with_type(&hwloc2::ObjectType::PU)
            .map_err(|_| TopologyError::HwlocNoPus)?;
        if pus.is_empty() {
            return Err(TopologyError::HwlocNoPus);
        }
        let mut cpus: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        // Every node in the machine's nodeset, CPUs or not.
        if let Some(all) = topo.object_at_root().nodeset() {
            for node in all {
                cpus.entry(node).or_default();
            }
        }
        for pu in &pus {
            if let Some(nodeset) = pu.nodeset() {
                for node in nodeset {
                    cpus.entry(node).or_default().push(pu.os_index());
                }
            }
        }
        // For each node, the highest normal object whose nodeset is exactly {node}: its
        // total_memory is that node's memory (memory children are attached at or below it).
        let mut memory: BTreeMap<u32, u64> = BTreeMap::new();
        for depth in 0..topo.depth() {
            for obj in topo.objects_at_depth(depth) {
                let Some(nodeset) = obj.nodeset() else {
                    continue;
                };
                let mut ids = nodeset.into_iter();
                if let (Some(only), None) = (ids.next(), ids.next()) {
                    if obj.total_memory() > 0 {
                        memory.entry(only).or_insert(obj.total_memory());
                    }
                }
            }
        }
        let nodes = cpus
            .into_iter()
            .map(|(id, mut cpus)| {
                cpus.sort_unstable();
                cpus.dedup();
                let memory_bytes = memory.get(&id).copied().or_else(|| {
                    sysfs_node_memory(Path::new(sysfs::SYSTEM_ROOT), id)
                        .ok()
                        .flatten()
                });
                NumaNode {
                    id,
                    cpuset: sysfs::format_cpulist(&cpus),
                    cpus,
                    memory_bytes,
                }
            })
            .collect();
        Ok(Topology {
            source: TopologySource::Hwloc,
            nodes,
        })
    }

    /// The topology from `<root>/sys/devices/system/node` (`/` for the running system).
    /// Without NUMA support in the kernel, one node 0 holding every online CPU
    /// (`<root>/sys/devices/system/cpu/online`) and no memory figure.
    pub fn from_sysfs(root: &Path) -> Result<Topology, TopologyError> {
        let source = TopologySource::Sysfs {
            root: root.to_owned(),
            hwloc_error: None,
        };
        let ids = sysfs::list_nodes(root).map_err(|source| TopologyError::Read {
            path: sysfs::nodes_dir(root),
            source,
        })?;
        if ids.is_empty() {
            let online = root.join("sys/devices/system/cpu/online");
            let cpus = read_cpulist(&online)?;
            return Ok(Topology {
                source,
                nodes: vec![NumaNode {
                    id: 0,
                    cpuset: sysfs::format_cpulist(&cpus),
                    cpus,
                    memory_bytes: None,
                }],
            });
        }
        let mut nodes = Vec::with_capacity(ids.len());
        for id in ids {
            let cpus = read_cpulist(&sysfs::node_dir(root, id).join("cpulist"))?;
            nodes.push(NumaNode {
                id,
                cpuset: sysfs::format_cpulist(&cpus),
                cpus,
                memory_bytes: sysfs_node_memory(root, id)?,
            });
        }
        Ok(Topology { source, nodes })
    }

    /// The node with this id.
    pub fn node(&self, id: u32) -> Option<&NumaNode> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// The node a CPU belongs to.
    pub fn node_of_cpu(&self, cpu: u32) -> Option<u32> {
        self.nodes
            .iter()
            .find(|n| n.cpus.binary_search(&cpu).is_ok())
            .map(|n| n.id)
    }
}

fn read_cpulist(path: &Path) -> Result<Vec<u32>, TopologyError> {
    let text = fs::read_to_string(path).map_err(|source| TopologyError::Read {
        path: path.to_owned(),
        source,
    })?;
    sysfs::parse_cpulist(&text).ok_or_else(|| TopologyError::BadCpuList {
        path: path.to_owned(),
        content: text.trim().to_owned(),
    })
}

/// `MemTotal` of `<root>/sys/devices/system/node/node<id>/meminfo` in bytes; `None` if the file
/// or the line is missing.
fn sysfs_node_memory(root: &Path, id: u32) -> Result<Option<u64>, TopologyError> {
    let path = sysfs::node_dir(root, id).join("meminfo");
    match fs::read_to_string(&path) {
        Ok(text) => {
            Ok(sysfs::meminfo_value(&text, "MemTotal").and_then(|kib| kib.checked_mul(1024)))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(TopologyError::Read { path, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    #[test]
    fn sysfs_two_nodes() {
        let tree = TempDir::new("topo");
        tree.file("sys/devices/system/node/node0/cpulist", "0-3,8-11\n");
        tree.file(
            "sys/devices/system/node/node0/meminfo",
            "Node 0 MemTotal:       1024 kB\nNode 0 MemFree: 12 kB\n",
        );
        tree.file("sys/devices/system/node/node1/cpulist", "4-7\n");
        tree.file("sys/devices/system/node/node2/cpulist", "\n"); // memory-only node
        tree.file(
            "sys/devices/system/node/node2/meminfo",
            "Node 2 MemTotal:  2048 kB\n",
        );
        tree.file("sys/devices/system/node/online", "0-2\n");
        let t = Topology::from_sysfs(tree.path()).unwrap();
        assert_eq!(t.nodes.len(), 3);
        assert_eq!(t.nodes[0].cpus, vec![0, 1, 2, 3, 8, 9, 10, 11]);
        assert_eq!(t.nodes[0].cpuset, "0-3,8-11");
        assert_eq!(t.nodes[0].memory_bytes, Some(1024 * 1024));
        assert_eq!(t.nodes[1].memory_bytes, None);
        assert!(t.nodes[2].cpus.is_empty());
        assert_eq!(t.nodes[2].memory_bytes, Some(2048 * 1024));
        assert_eq!(t.node_of_cpu(9), Some(0));
        assert_eq!(t.node_of_cpu(5), Some(1));
        assert_eq!(t.node_of_cpu(12), None);
        assert_eq!(t.node(2).map(|n| n.id), Some(2));
        assert!(matches!(
            t.source,
            TopologySource::Sysfs {
                hwloc_error: None,
                ..
            }
        ));
    }

    #[test]
    fn sysfs_without_numa() {
        let tree = TempDir::new("topo-flat");
        tree.file("sys/devices/system/cpu/online", "0-1\n");
        let t = Topology::from_sysfs(tree.path()).unwrap();
        assert_eq!(t.nodes.len(), 1);
        assert_eq!(t.nodes[0].id, 0);
        assert_eq!(t.nodes[0].cpus, vec![0, 1]);
    }

    #[test]
    fn sysfs_bad_cpulist() {
        let tree = TempDir::new("topo-bad");
        tree.file("sys/devices/system/node/node0/cpulist", "zero\n");
        assert!(matches!(
            Topology::from_sysfs(tree.path()),
            Err(TopologyError::BadCpuList { .. })
        ));
    }

    /// hwloc and sysfs agree on the real machine about which nodes exist, and every CPU
    /// hwloc reports is one the kernel lists for the same node.
    #[test]
    fn hwloc_agrees_with_sysfs() {
        let hw = Topology::from_hwloc().expect("hwloc topology");
        assert_eq!(hw.source, TopologySource::Hwloc);
        assert!(!hw.nodes.is_empty());
        assert!(hw.nodes.iter().any(|n| !n.cpus.is_empty()));
        let root = Path::new("/");
        if sysfs::list_nodes(root).unwrap().is_empty() {
            return; // no NUMA in this kernel: nothing to compare with
        }
        let fs = Topology::from_sysfs(root).unwrap();
        for node in &hw.nodes {
            let sys = fs.node(node.id).expect("hwloc node exists in sysfs");
            for cpu in &node.cpus {
                assert!(sys.cpus.contains(cpu), "cpu {cpu} of node {}", node.id);
            }
            if let (Some(a), Some(b)) = (node.memory_bytes, sys.memory_bytes) {
                assert_eq!(a, b, "memory of node {}", node.id);
            }
        }
        let d = Topology::discover().unwrap();
        assert_eq!(d.source, TopologySource::Hwloc);
    }
}
