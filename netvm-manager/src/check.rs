//! Loading and checking a config: everything `netvm-manager check` does, and the first step
//! of `up`.
//!
//! Three layers, each error naming the JSON path of the offending value:
//! 1. shape: JSON syntax, types, unknown fields, missing fields (serde, with the path tracked
//!    by `serde_path_to_error`, e.g. `nfs[2].cpu`);
//! 2. the core's rules: [`Config::validate`] (references, duplicates, CPU overlaps, ranges);
//! 3. the manager's rules, which depend on this machine and on files next to the config:
//!    CPUs that exist here, NF programs that can be found, rule and route files that parse
//!    (and routes to ports that exist), the NUMA placement of domains with a `numa_node`
//!    ([`check_numa`]: nodes that exist, workers and NFs on their domain's node), pcap files
//!    that exist and fit their domain's pool, and sizes that fit the machine's memory.
//!
//! Relative paths in a config (region_dir, run_dir, file names in device strings, NF
//! programs with a `/`, NF arguments) are relative to the config file's directory: the
//! manager resolves `region_dir`/`run_dir` itself and runs the core and every NF in that
//! directory.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use netvm_api::config::{Config, ConfigError, NfKind};
use netvm_api::numa::NumaTopology;

use crate::error::ManagerError;
use crate::hugepages;
use crate::programs;
use crate::sys;

/// RX descriptors the core gives each port's queue (each may hold a buffer of the domain).
pub const RX_DESCRIPTORS: u64 = 1024;

/// Command-line overrides of config fields (to run a second copy of one config).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Replaces `name` (and so the default run_dir).
    pub name: Option<String>,
    /// Replaces `run_dir`.
    pub run_dir: Option<PathBuf>,
}

/// A checked config and what the manager resolved from it.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The file as given.
    pub file: PathBuf,
    /// Its directory, absolute: the working directory of the core and of every NF.
    pub dir: PathBuf,
    /// The config, overrides applied, `run_dir` and `region_dir` made absolute.
    pub config: Config,
    /// Per NF (config order): the resolved program of a process NF.
    pub programs: Vec<Option<PathBuf>>,
}

impl Loaded {
    /// The run directory (absolute).
    pub fn run_dir(&self) -> PathBuf {
        self.config.run_dir()
    }
}

fn err(path: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        path: path.into(),
        reason: reason.into(),
    }
}

/// Parses config JSON; a shape error names the JSON path (`nfs[2].cpu`), a syntax error the
/// line and column.
pub fn parse(text: &str) -> Result<Config, ConfigError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let cfg: Config = match serde_path_to_error::deserialize(&mut de) {
        Ok(c) => c,
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            return Err(shape_error(&path, &inner));
        }
    };
    de.end().map_err(|e| shape_error(".", &e))?;
    Ok(cfg)
}

fn shape_error(path: &str, e: &serde_json::Error) -> ConfigError {
    use serde_json::error::Category;
    let full = e.to_string();
    // serde_json appends " at line L column C"; keep it apart.
    let msg = full
        .rfind(" at line ")
        .map_or(full.as_str(), |i| &full[..i])
        .to_string();
    let at = format!("line {} column {}", e.line(), e.column());
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => err(at, msg),
        Category::Data => {
            let mut p = if path == "." {
                String::new()
            } else {
                path.to_string()
            };
            // A missing field is reported at its parent: name the field itself.
            if let Some(field) = msg
                .strip_prefix("missing field `")
                .and_then(|r| r.strip_suffix('`'))
            {
                if !p.is_empty() {
                    p.push('.');
                }
                p.push_str(field);
            }
            if p.is_empty() {
                p = at.clone();
            }
            err(p, format!("{msg} ({at})"))
        }
    }
}

/// Resolves `p` against `dir` unless absolute.
pub fn resolve_path(dir: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    }
}

/// Reads and parses `file` (shape only) and applies the overrides; `run_dir` and
/// `region_dir` become absolute. Enough to find a running instance.
pub fn load_unchecked(file: &Path, ov: &Overrides) -> Result<Loaded, ManagerError> {
    let invalid = |source| ManagerError::Invalid {
        file: file.to_path_buf(),
        source,
    };
    let text = std::fs::read_to_string(file).map_err(|e| invalid(err("(file)", e.to_string())))?;
    let mut config = parse(&text).map_err(invalid)?;
    let abs = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    let dir = abs
        .parent()
        .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
    if let Some(n) = &ov.name {
        config.name = n.clone();
    }
    if let Some(r) = &ov.run_dir {
        config.run_dir = Some(std::path::absolute(r).unwrap_or_else(|_| r.clone()));
    }
    config.run_dir = Some(resolve_path(&dir, &config.run_dir()));
    config.region_dir = Some(resolve_path(&dir, &config.region_dir()));
    Ok(Loaded {
        file: file.to_path_buf(),
        dir,
        config,
        programs: Vec::new(),
    })
}

/// Everything `check` does: parse, the core's validation, the manager's checks.
pub fn load(file: &Path, ov: &Overrides) -> Result<Loaded, ManagerError> {
    let mut l = load_unchecked(file, ov)?;
    let invalid = |source| ManagerError::Invalid {
        file: file.to_path_buf(),
        source,
    };
    l.config.validate().map_err(invalid)?;
    l.programs = manager_checks(&l.config, &l.dir).map_err(invalid)?;
    Ok(l)
}

/// Checks that the instances `configs` (file, config) agree on every service path they
/// share (chains with the same `path_id`): the same number of hops with the same services
/// in the same order, and each hop run (named without `at`) by exactly one of them — so one
/// of them classifies (its first hop) and one has the egress (its last). A path with hops
/// on a peer that no other given config declares is an error when several configs are
/// given (with one config there is nothing to compare). Errors name the file and JSON path.
pub fn paths_agree(configs: &[(PathBuf, Config)]) -> Result<(), ManagerError> {
    use std::collections::BTreeMap;
    if configs.len() < 2 {
        return Ok(());
    }
    let invalid = |file: &PathBuf, path: String, reason: String| ManagerError::Invalid {
        file: file.clone(),
        source: err(path, reason),
    };
    // path id -> [(config index, chain index)]
    let mut by_path: BTreeMap<u32, Vec<(usize, usize)>> = BTreeMap::new();
    for (k, (_, c)) in configs.iter().enumerate() {
        for (i, ch) in c.chains.iter().enumerate() {
            if let Some(id) = ch.path_id {
                by_path.entry(id).or_default().push((k, i));
            }
        }
    }
    for (id, decl) in &by_path {
        let (k0, i0) = decl[0];
        let (f0, c0) = (&configs[k0].0, &configs[k0].1.chains[i0]);
        if decl.len() == 1 {
            if c0.services.iter().any(|h| h.at().is_some()) {
                return Err(invalid(
                    f0,
                    format!("chains[{i0}].path_id"),
                    format!("path {id} has hops on a peer instance, but no other given config declares it"),
                ));
            }
            continue;
        }
        for &(k, i) in &decl[1..] {
            let (f, c) = (&configs[k].0, &configs[k].1.chains[i]);
            if c.services.len() != c0.services.len() {
                return Err(invalid(
                    f,
                    format!("chains[{i}].services"),
                    format!(
                        "path {id} has {} hops here but {} in {}",
                        c.services.len(),
                        c0.services.len(),
                        f0.display()
                    ),
                ));
            }
            for (j, (h, h0)) in c.services.iter().zip(&c0.services).enumerate() {
                if h.service() != h0.service() {
                    return Err(invalid(
                        f,
                        format!("chains[{i}].services[{j}]"),
                        format!(
                            "path {id} hop {j} is service {:?} here but {:?} in {}",
                            h.service(),
                            h0.service(),
                            f0.display()
                        ),
                    ));
                }
            }
        }
        for j in 0..c0.services.len() {
            let runners: Vec<&(usize, usize)> = decl
                .iter()
                .filter(|&&(k, i)| configs[k].1.chains[i].services[j].at().is_none())
                .collect();
            match runners.as_slice() {
                [_] => {}
                [] => {
                    return Err(invalid(
                        f0,
                        format!("chains[{i0}].services[{j}]"),
                        format!(
                            "path {id} hop {j} ({:?}) is on a peer in every given config: none runs it",
                            c0.services[j].service()
                        ),
                    ))
                }
                [a, b, ..] => {
                    return Err(invalid(
                        &configs[b.0].0,
                        format!("chains[{}].services[{j}]", b.1),
                        format!(
                            "path {id} hop {j} ({:?}) runs here and in {} too: name one of them with \"at\"",
                            c0.services[j].service(),
                            configs[a.0].0.display()
                        ),
                    ))
                }
            }
        }
    }
    Ok(())
}

/// The manager's own checks (see the module docs); returns the resolved NF programs.
pub fn manager_checks(cfg: &Config, dir: &Path) -> Result<Vec<Option<PathBuf>>, ConfigError> {
    let cpus: BTreeSet<usize> = sys::usable_cpus().into_iter().collect();
    let cpu_names = sys::cpu_list(&cpus.iter().copied().collect::<Vec<_>>());
    let check_cpu = |path: String, c: usize| {
        if cpus.contains(&c) {
            Ok(())
        } else {
            Err(err(
                path,
                format!("CPU {c} is not available on this machine (usable CPUs: {cpu_names})"),
            ))
        }
    };
    for (i, w) in cfg.workers.iter().enumerate() {
        check_cpu(format!("workers[{i}].cpu"), w.cpu)?;
    }
    let mem = sys::mem_total();
    let mut programs = Vec::with_capacity(cfg.nfs.len());
    for (i, n) in cfg.nfs.iter().enumerate() {
        if let Some(c) = n.cpu {
            check_cpu(format!("nfs[{i}].cpu"), c)?;
        }
        match n.kind {
            NfKind::Process => {
                let Some(p) = &n.program else {
                    return Err(err(
                        format!("nfs[{i}].program"),
                        "a process NF needs a program",
                    ));
                };
                let resolved =
                    programs::resolve(p, dir).map_err(|r| err(format!("nfs[{i}].program"), r))?;
                programs.push(Some(resolved));
            }
            NfKind::Vm => {
                if let (Some(vm), Some(mem)) = (&n.vm, mem) {
                    if u64::from(vm.memory_mb) << 20 > mem {
                        return Err(err(
                            format!("nfs[{i}].vm.memory_mb"),
                            format!(
                                "{} MiB is more than the machine's {} MiB of memory",
                                vm.memory_mb,
                                mem >> 20
                            ),
                        ));
                    }
                }
                crate::vm::check_vm_nf(cfg, dir, i).map_err(|(p, r)| err(p, r))?;
                programs.push(None);
            }
            NfKind::Virtio => {
                // An unmodified guest: no program of ours; `program` is the image's mode
                // (checked by `Config::validate`).
                if let (Some(vm), Some(mem)) = (&n.vm, mem) {
                    if u64::from(vm.memory_mb) << 20 > mem {
                        return Err(err(
                            format!("nfs[{i}].vm.memory_mb"),
                            format!(
                                "{} MiB is more than the machine's {} MiB of memory",
                                vm.memory_mb,
                                mem >> 20
                            ),
                        ));
                    }
                }
                programs.push(None);
            }
        }
        check_nf_files(cfg, dir, i)?;
    }
    check_numa(cfg)?;
    // Buffers a domain's ports may hold at once: RX rings, and net_pcap's infinite_rx copy of
    // the whole capture.
    let mut held = vec![0u64; cfg.domains.len()];
    let mut held_why: Vec<Vec<String>> = vec![Vec::new(); cfg.domains.len()];
    for (i, p) in cfg.ports.iter().enumerate() {
        let d = cfg
            .domains
            .iter()
            .position(|d| d.name == p.domain)
            .unwrap_or(0);
        held[d] += RX_DESCRIPTORS;
        let pcap =
            check_device(dir, &p.device).map_err(|r| err(format!("ports[{i}].device"), r))?;
        if pcap > 0 {
            held[d] += pcap;
            held_why[d].push(format!(
                "{pcap} packets port {:?} keeps for infinite_rx",
                p.name
            ));
        }
    }
    for (i, d) in cfg.domains.iter().enumerate() {
        if held[i] > 0 && u64::from(d.buffers) < held[i] + RX_DESCRIPTORS {
            let mut why = vec![format!("{RX_DESCRIPTORS} RX descriptors per port")];
            why.extend(held_why[i].iter().cloned());
            return Err(err(
                format!("domains[{i}].buffers"),
                format!(
                    "{} buffers are too few: its ports may hold {} ({}), and at least {RX_DESCRIPTORS} more must stay free for traffic",
                    d.buffers,
                    held[i],
                    why.join(", ")
                ),
            ));
        }
        hugepages::region_size(cfg, i).map_err(|e| {
            err(
                format!("domains[{i}].buffers"),
                format!("no region can hold them: {e}"),
            )
        })?;
    }
    if let Some(mem) = mem {
        let need = hugepages::estimate(cfg, true)
            .map_err(|e| err("domains", format!("no region layout: {e}")))?;
        if need.bytes() > mem {
            return Err(err(
                "domains",
                format!(
                    "the regions and DPDK need {} MiB of memory, more than the machine's {} MiB",
                    need.bytes() >> 20,
                    mem >> 20
                ),
            ));
        }
    }
    Ok(programs)
}

/// The NUMA placement rule ([`Config::check_numa`], `netvm_api::numa`) against this machine's
/// topology as hwloc sees it (sysfs if hwloc fails). hwloc honours `HWLOC_SYNTHETIC` and
/// `HWLOC_XMLFILE`, which is how the rule is tested on a one-node machine. Nothing is read
/// unless a domain names a `numa_node`.
pub fn check_numa(cfg: &Config) -> Result<(), ConfigError> {
    let Some(first) = cfg.domains.iter().position(|d| d.numa_node.is_some()) else {
        return Ok(());
    };
    let topo = machine_topology().map_err(|e| {
        err(
            format!("domains[{first}].numa_node"),
            format!("cannot read this machine's NUMA topology: {e}"),
        )
    })?;
    cfg.check_numa(&topo)
}

/// The machine's NUMA nodes and their CPUs (hwloc, else sysfs), for the placement rule.
pub fn machine_topology() -> Result<NumaTopology, String> {
    let t = hugepage_tools::Topology::discover().map_err(|e| hugepage_tools::error_chain(&e))?;
    Ok(NumaTopology::new(t.nodes.iter().map(|n| {
        (n.id, n.cpus.iter().filter_map(|&c| usize::try_from(c).ok()))
    })))
}

/// The value of `--flag VALUE` or `--flag=VALUE` in `args`, with its index.
fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<(usize, &'a str)> {
    let eq = format!("{flag}=");
    for (j, a) in args.iter().enumerate() {
        if a == flag {
            return args.get(j + 1).map(|v| (j + 1, v.as_str()));
        }
        if let Some(v) = a.strip_prefix(&eq) {
            return Some((j, v));
        }
    }
    None
}

/// Rule files (`--rules`) and route files (`--routes`) of NF `i` must exist and parse, and
/// routes must name ports of this config.
fn check_nf_files(cfg: &Config, dir: &Path, i: usize) -> Result<(), ConfigError> {
    let args = &cfg.nfs[i].args;
    if let Some((j, f)) = flag_value(args, "--rules") {
        let path = format!("nfs[{i}].args[{j}]");
        let text = read_arg_file(dir, f).map_err(|r| err(&path, r))?;
        netvm_wire::Acl::parse(&text)
            .map_err(|e| err(&path, format!("rule file {f}: line {}: {}", e.line, e.kind)))?;
    }
    if let Some((j, f)) = flag_value(args, "--routes") {
        let path = format!("nfs[{i}].args[{j}]");
        let text = read_arg_file(dir, f).map_err(|r| err(&path, r))?;
        let routes = netvm_wire::parse_routes(&text).map_err(|e| {
            err(
                &path,
                format!("route file {f}: line {}: {}", e.line, e.kind),
            )
        })?;
        for r in routes {
            if usize::from(r.port) >= cfg.ports.len() {
                let ports: Vec<String> = cfg
                    .ports
                    .iter()
                    .enumerate()
                    .map(|(k, p)| format!("{k} = {}", p.name))
                    .collect();
                return Err(err(
                    &path,
                    format!(
                        "route file {f}: line {}: port {} does not exist (ports are numbered in config order: {})",
                        r.line,
                        r.port,
                        ports.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn read_arg_file(dir: &Path, f: &str) -> Result<String, String> {
    let p = resolve_path(dir, Path::new(f));
    std::fs::read_to_string(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))
}

/// Checks files named in a DPDK device string (`net_pcap`'s `rx_pcap=`); returns how many
/// packets the port keeps in buffers for `infinite_rx=1`.
fn check_device(dir: &Path, device: &str) -> Result<u64, String> {
    let mut parts = device.split(',');
    let driver = parts.next().unwrap_or("").trim();
    let kv: Vec<(&str, &str)> = parts
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect();
    if !driver.starts_with("net_pcap") {
        return Ok(0);
    }
    let mut held = 0;
    let infinite = kv.iter().any(|(k, v)| *k == "infinite_rx" && *v == "1");
    for (k, v) in &kv {
        if *k != "rx_pcap" {
            continue;
        }
        let p = resolve_path(dir, Path::new(v));
        if !p.is_file() {
            return Err(format!(
                "rx_pcap file {} does not exist (the demo's is made by `netvm-manager gen-pcap`)",
                p.display()
            ));
        }
        if infinite {
            held += count_packets(&p)?;
        }
    }
    Ok(held)
}

fn count_packets(p: &Path) -> Result<u64, String> {
    let bad = |e: netvm_wire::PcapError| format!("rx_pcap file {}: {e}", p.display());
    let mut r = netvm_wire::PcapReader::open(p).map_err(bad)?;
    let mut n = 0u64;
    while r.next_packet().map_err(bad)?.is_some() {
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_errors_name_json_paths() {
        let e = parse(r#"{"domains":[{"name":"d"}],"ports":[{"name":"p","device":"x","domain":"d","speed":1}]}"#)
            .unwrap_err();
        assert_eq!(e.path, "ports[0].speed", "{e}");
        assert!(e.reason.contains("unknown field"), "{e}");
        let e =
            parse(r#"{"domains":[{"name":"d"}],"ports":[{"name":"p","domain":"d"}]}"#).unwrap_err();
        assert_eq!(e.path, "ports[0].device", "{e}");
        let e = parse(r#"{"domains":[{"name":"d"}],"ports":[],"nfs":[{"name":"a","service":"s","domain":"d","cpu":"x"}]}"#)
            .unwrap_err();
        assert_eq!(e.path, "nfs[0].cpu", "{e}");
        let e = parse(r#"{"ports":[]}"#).unwrap_err();
        assert_eq!(e.path, "domains", "{e}");
        let e = parse("{\n  \"ports\": [,]\n}").unwrap_err();
        assert!(e.path.starts_with("line 2 column"), "{e}");
        let e = parse(r#"{"domains":[],"ports":[]} x"#).unwrap_err();
        assert!(e.path.starts_with("line 1"), "{e}");
    }

    #[test]
    fn flag_values() {
        let a: Vec<String> = ["--x", "--rules", "f", "--routes=g"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(flag_value(&a, "--rules"), Some((2, "f")));
        assert_eq!(flag_value(&a, "--routes"), Some((3, "g")));
        assert_eq!(flag_value(&a, "--dst-mac"), None);
    }
}
