//! Two network namespaces joined by a veth pair, made and removed by a test: the stand-in for
//! two hosts and the wire between them (`tests/tests/nsh_path.rs`).
//!
//! Each end has a fixed MAC, IPv6 off and no address, so the kernel sends nothing on the
//! link by itself (no router solicitations, no ARP): every frame on it is the test's. The
//! namespaces (and with them the veth pair) are deleted on drop, also when a test fails.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Two namespaces `a` and `b` with veth ends `veth_a` (in `a`) and `veth_b` (in `b`).
pub struct VethPair {
    /// Namespace of the first end.
    pub a: String,
    /// Namespace of the second end.
    pub b: String,
    /// Interface in `a`.
    pub veth_a: String,
    /// Interface in `b`.
    pub veth_b: String,
    /// MAC of `veth_a`.
    pub mac_a: [u8; 6],
    /// MAC of `veth_b`.
    pub mac_b: [u8; 6],
}

fn ip(args: &[&str]) -> Result<(), String> {
    let o = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {args:?}: {e}"))?;
    if o.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        ))
    }
}

/// `aa:bb:…` text of a MAC.
pub fn mac_text(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl VethPair {
    /// Creates the namespaces and the link, or says why not (not root, no `ip`).
    pub fn new() -> Result<Self, String> {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let id = std::process::id() % 100_000;
        let p = Self {
            a: format!("netvm-{id}-{n}-a"),
            b: format!("netvm-{id}-{n}-b"),
            // Interface names: at most 15 characters.
            veth_a: format!("nva{id}x{n}"),
            veth_b: format!("nvb{id}x{n}"),
            mac_a: [0x02, 0, 0, 0, 0x0a, 0x01],
            mac_b: [0x02, 0, 0, 0, 0x0b, 0x01],
        };
        // From here on, Drop removes whatever exists.
        ip(&["netns", "add", &p.a])?;
        ip(&["netns", "add", &p.b])?;
        ip(&[
            "link",
            "add",
            &p.veth_a,
            "address",
            &mac_text(&p.mac_a),
            "type",
            "veth",
            "peer",
            "name",
            &p.veth_b,
            "address",
            &mac_text(&p.mac_b),
        ])?;
        ip(&["link", "set", &p.veth_a, "netns", &p.a])?;
        ip(&["link", "set", &p.veth_b, "netns", &p.b])?;
        for (ns, dev) in [(&p.a, &p.veth_a), (&p.b, &p.veth_b)] {
            // No IPv6 (no link-local address, no solicitations): a silent link.
            let _ = Command::new("ip")
                .args(["netns", "exec", ns, "sysctl", "-qw"])
                .arg(format!("net.ipv6.conf.{dev}.disable_ipv6=1"))
                .status();
            ip(&["-n", ns, "link", "set", dev, "up"])?;
        }
        Ok(p)
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth end in it, and with it the pair.
        let _ = ip(&["netns", "del", &self.a]);
        let _ = ip(&["netns", "del", &self.b]);
        let _ = ip(&["link", "del", &self.veth_a]);
    }
}

/// What [`start_split`] runs: the fw → l3fwd chain split over two instances on a veth pair.
pub struct Split<'a> {
    /// The link between the instances.
    pub link: &'a VethPair,
    /// Instance names are `{name}-a` and `{name}-b`.
    pub name: &'a str,
    /// NSH service path id of the chain.
    pub path_id: u32,
    /// Device string of A's input port `in`.
    pub in_dev: String,
    /// Device string of B's output port `out`.
    pub out_dev: String,
    /// Buffers per domain.
    pub buffers: u32,
    /// The firewall's rules file (A) and l3fwd's routes file (B).
    pub rules: &'a std::path::Path,
    /// l3fwd's routes file.
    pub routes: &'a std::path::Path,
}

/// Starts B (namespace `link.b`: `wan` ← NSH → l3fwd → `out`) and then A (namespace `link.a`:
/// `in` → firewall → NSH onto `wan`), one chain declared top to bottom in both configs;
/// returns (A, B) with their NFs attached and traffic running.
pub fn start_split(
    s: &Split<'_>,
    dir_a: crate::Scratch,
    dir_b: crate::Scratch,
) -> (crate::Core, crate::Core) {
    use serde_json::json;
    let (link, path_id) = (s.link, s.path_id);
    let cfg_b = json!({
        "name": format!("{}-b", s.name),
        "workers": [{"cpu": crate::worker_cpu()}],
        "eal": crate::eal_section(),
        "domains": [{"name": "edge", "buffers": s.buffers}],
        "ports": [
            {"name": "wan", "device": format!("net_af_packet0,iface={}", link.veth_b), "domain": "edge",
             "peer_mac": mac_text(&link.mac_a)},
            {"name": "out", "device": s.out_dev, "domain": "edge"}
        ],
        "nfs": [{"name": "l3", "service": "l3fwd", "domain": "edge"}],
        "chains": [{"name": "web", "path_id": path_id,
                    "services": [{"service": "firewall", "at": "wan"}, "l3fwd"],
                    "egress": "out"}]
    });
    let cfg_a = json!({
        "name": format!("{}-a", s.name),
        "workers": [{"cpu": crate::worker_cpu()}],
        "eal": crate::eal_section(),
        "domains": [{"name": "edge", "buffers": s.buffers}],
        "ports": [
            {"name": "in", "device": s.in_dev, "domain": "edge"},
            {"name": "wan", "device": format!("net_af_packet0,iface={}", link.veth_a), "domain": "edge",
             "peer_mac": mac_text(&link.mac_b)}
        ],
        "nfs": [{"name": "fw1", "service": "firewall", "domain": "edge"}],
        "chains": [{"name": "web", "path_id": path_id, "match": {"in_port": "in"},
                    "services": ["firewall", {"service": "l3fwd", "at": "wan"}]}]
    });
    let mut b = crate::Core::start_in(cfg_b, dir_b, &[], Some(&link.b), true);
    b.spawn_nf(
        "l3fwd",
        "l3",
        "edge",
        &["--routes".into(), s.routes.display().to_string()],
    );
    b.wait_running();
    let mut a = crate::Core::start_in(cfg_a, dir_a, &[], Some(&link.a), false);
    a.spawn_nf(
        "firewall",
        "fw1",
        "edge",
        &["--rules".into(), s.rules.display().to_string()],
    );
    a.wait_running();
    (a, b)
}
