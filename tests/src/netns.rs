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
