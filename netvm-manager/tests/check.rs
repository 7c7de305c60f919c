//! `netvm-manager check` on a table of broken configs: each must be rejected with exit code 2
//! and one line `CONFIG: JSON-PATH: REASON` naming the exact path.

mod common;

use serde_json::{json, Value};

use common::{run, texts, Scratch};

fn ncpu() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// A valid config: worker on the last CPU, the NF on CPU 0 (when there are two).
fn base(dir: &Scratch) -> Value {
    std::fs::write(
        dir.path("fw.rules"),
        "deny proto=udp dport=53\nallow dst=10.0.0.0/8\ndefault deny\n",
    )
    .unwrap();
    std::fs::write(dir.path("r.routes"), "10.1.0.0/16 1\n").unwrap();
    let worker = ncpu() - 1;
    let mut fw = json!({"name": "fw1", "service": "firewall", "domain": "d1",
                        "program": "/bin/sh", "args": ["--rules", "fw.rules"]});
    let mut rt = json!({"name": "rt1", "service": "router", "domain": "d2",
                        "program": "sh", "args": ["--routes=r.routes"]});
    if ncpu() > 1 {
        fw["cpu"] = json!(0);
        rt["cpu"] = json!(0);
    }
    json!({
        "name": "t",
        "workers": [{"cpu": worker}],
        "domains": [{"name": "d1", "buffers": 4096}, {"name": "d2", "buffers": 4096}],
        "ports": [{"name": "in", "device": "net_null0", "domain": "d1"},
                  {"name": "out", "device": "net_null1,no-rx=1", "domain": "d2"}],
        "nfs": [fw, rt],
        "chains": [{"name": "c", "services": ["firewall", "router"], "egress": "out",
                    "match": {"in_port": "in", "dst": "10.1.0.0/16", "proto": "udp", "dst_port": "1-2000"}}]
    })
}

fn check_text(dir: &Scratch, text: &str) -> (i32, String, String) {
    let f = dir.path("config.json");
    std::fs::write(&f, text).unwrap();
    let o = run(&["check", f.to_str().unwrap()]);
    let (out, err) = texts(&o);
    (o.status.code().unwrap_or(-1), out, err)
}

#[test]
fn base_config_is_ok() {
    let dir = Scratch::new("check-ok");
    let (code, out, err) = check_text(&dir, &base(&dir).to_string());
    assert_eq!((code, out.as_str()), (0, "ok\n"), "{err}");
    // A VM NF names a program of the guest image, not a host path.
    let mut v = base(&dir);
    v["nfs"][0]["kind"] = json!("vm");
    v["nfs"][0]["vm"] = json!({"memory_mb": 256, "vcpus": 1});
    let (code, _, err) = check_text(&dir, &v.to_string());
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("nfs[0].program") && err.contains("bare program name"),
        "{err}"
    );
    v["nfs"][0]["program"] = json!("firewall");
    let (code, _, err) = check_text(&dir, &v.to_string());
    assert_eq!(code, 0, "{err}");
}

enum Edit {
    Set(&'static str, Value),
    Remove(&'static str),
    Push(&'static str, Value),
    Text(&'static str),
}

#[test]
fn broken_configs_name_their_json_path() {
    let dir = Scratch::new("check-broken");
    let worker = ncpu() - 1;
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap()
        >> 20;
    // Domains of 1M buffers (4 GiB regions each) until they exceed the machine's memory.
    let huge_domains: Vec<Value> = (0..(mem_gib / 4 + 1).clamp(2, 16))
        .map(|i| json!({"name": format!("d{}", i + 1), "buffers": 1_048_576}))
        .collect();
    std::fs::write(
        dir.path("bad.rules"),
        "allow proto=tcp\nfrobnicate everything\n",
    )
    .unwrap();
    std::fs::write(dir.path("bad.routes"), "10.1.0.0/16 7\n").unwrap();
    use Edit::*;
    let mut cases: Vec<(&str, Edit, &str, &str)> = vec![
        (
            "unknown top-level field",
            Set("/colour", json!("red")),
            "colour",
            "unknown field",
        ),
        (
            "unknown field in a port",
            Set("/ports/0/speed", json!(10)),
            "ports[0].speed",
            "unknown field",
        ),
        (
            "unknown field in a match",
            Set("/chains/0/match/vlan_pcp", json!(5)),
            "chains[0].match.vlan_pcp",
            "unknown field",
        ),
        (
            "wrong type",
            Set("/nfs/1/cpu", json!("zero")),
            "nfs[1].cpu",
            "invalid type",
        ),
        (
            "unknown NF kind",
            Set("/nfs/0/kind", json!("container")),
            "nfs[0].kind",
            "unknown variant",
        ),
        (
            "missing field",
            Remove("/ports/1/device"),
            "ports[1].device",
            "missing field",
        ),
        (
            "missing domains",
            Remove("/domains"),
            "domains",
            "missing field",
        ),
        (
            "JSON syntax",
            Text("{\n  \"domains\": [,]\n}"),
            "line 2 column 15",
            "expected value",
        ),
        (
            "dangling service",
            Set("/chains/0/services/1", json!("nat")),
            "chains[0].services[1]",
            "no NF provides service \"nat\"",
        ),
        (
            "NF in an undeclared domain",
            Set("/nfs/1/domain", json!("d9")),
            "nfs[1].domain",
            "no domain named \"d9\"",
        ),
        (
            "port in an undeclared domain",
            Set("/ports/0/domain", json!("d9")),
            "ports[0].domain",
            "no domain",
        ),
        (
            "egress to no port",
            Set("/chains/0/egress", json!("nowhere")),
            "chains[0].egress",
            "no port named",
        ),
        (
            "match on no port",
            Set("/chains/0/match/in_port", json!("eth9")),
            "chains[0].match.in_port",
            "no port named",
        ),
        (
            "duplicate NF name",
            Set("/nfs/1/name", json!("fw1")),
            "nfs[1].name",
            "duplicate NF",
        ),
        (
            "duplicate port name",
            Set("/ports/1/name", json!("in")),
            "ports[1].name",
            "duplicate port",
        ),
        (
            "duplicate domain name",
            Set("/domains/1/name", json!("d1")),
            "domains[1].name",
            "duplicate domain",
        ),
        (
            "duplicate chain name",
            Push("/chains", json!({"name": "c", "egress": "drop"})),
            "chains[1].name",
            "duplicate chain",
        ),
        (
            "bad instance name",
            Set("/name", json!("no spaces")),
            "name",
            "letters, digits",
        ),
        (
            "two workers on one CPU",
            Push("/workers", json!({"cpu": worker})),
            "workers[1].cpu",
            "already used by workers[0].cpu",
        ),
        (
            "NF on a worker's CPU",
            Set("/nfs/0/cpu", json!(worker)),
            "nfs[0].cpu",
            "already used by workers[0].cpu",
        ),
        (
            "NF on a CPU this machine lacks",
            Set("/nfs/1/cpu", json!(ncpu() + 100)),
            "nfs[1].cpu",
            "not available on this machine",
        ),
        (
            "worker on a CPU this machine lacks",
            Set("/workers/0/cpu", json!(ncpu() + 100)),
            "workers[0].cpu",
            "not available on this machine",
        ),
        (
            "too few buffers (range)",
            Set("/domains/0/buffers", json!(3)),
            "domains[0].buffers",
            "between 64 and 1048576",
        ),
        (
            "too many buffers (range)",
            Set("/domains/1/buffers", json!(2_000_000)),
            "domains[1].buffers",
            "between 64 and 1048576",
        ),
        (
            "buffer size below a standard frame",
            Set("/domains/0/buffer_size", json!(1000)),
            "domains[0].buffer_size",
            "between 1518 and 16384",
        ),
        (
            "buffer size above the largest jumbo frame",
            Set("/domains/1/buffer_size", json!(65000)),
            "domains[1].buffer_size",
            "between 1518 and 16384",
        ),
        (
            "NF quota of zero",
            Set("/nfs/0/quota", json!(0)),
            "nfs[0].quota",
            "between 1 and",
        ),
        (
            "hoard timeout of zero",
            Set("/hoard_timeout_ms", json!(0)),
            "hoard_timeout_ms",
            "at least 1",
        ),
        (
            "too few buffers for the port",
            Set("/domains/0/buffers", json!(1024)),
            "domains[0].buffers",
            "too few",
        ),
        (
            "regions larger than memory",
            Set("/domains", Value::Array(huge_domains)),
            "domains",
            "more than the machine's",
        ),
        (
            "ring capacity not a power of two",
            Set("/ring_capacity", json!(1000)),
            "ring_capacity",
            "power of two",
        ),
        (
            "VM memory out of range",
            Set("/nfs/0/vm", json!({"memory_mb": 1})),
            "nfs[0].vm",
            "only NFs of kind \"vm\"",
        ),
        (
            "bad prefix: host bits",
            Set("/chains/0/match/dst", json!("10.1.0.1/16")),
            "chains[0].match.dst",
            "host bits",
        ),
        (
            "bad prefix: length",
            Set("/chains/0/match/dst", json!("10.0.0.0/33")),
            "chains[0].match.dst",
            "prefix length",
        ),
        (
            "bad prefix: address",
            Set("/chains/0/match/src", json!("10.0.0/8")),
            "chains[0].match.src",
            "not an IPv4 prefix",
        ),
        (
            "bad IPv6 prefix: host bits",
            Set("/chains/0/match/dst", json!("2001:db8::1/32")),
            "chains[0].match.dst",
            "host bits",
        ),
        (
            "bad IPv6 prefix: length",
            Set("/chains/0/match/src", json!("2001:db8::/129")),
            "chains[0].match.src",
            "prefix length must be 0-128",
        ),
        (
            "bad IPv6 prefix: address",
            Set("/chains/0/match/src", json!("2001:db8::zz/64")),
            "chains[0].match.src",
            "not an IPv6 prefix",
        ),
        (
            "VLAN ID out of range",
            Set("/chains/0/match/vlan", json!(4096)),
            "chains[0].match.vlan",
            "not in 0-4095",
        ),
        (
            "inner VLAN ID out of range",
            Set("/chains/0/match/inner_vlan", json!(5000)),
            "chains[0].match.inner_vlan",
            "not in 0-4095",
        ),
        (
            "VLAN ID of the wrong type",
            Set("/chains/0/match/vlan", json!("ten")),
            "chains[0].match.vlan",
            "invalid type",
        ),
        (
            "bad source port range",
            Set("/chains/0/match/src_port", json!("1-x")),
            "chains[0].match.src_port",
            "not a port or range",
        ),
        (
            "bad protocol",
            Set("/chains/0/match/proto", json!("sctpx")),
            "chains[0].match.proto",
            "not tcp, udp",
        ),
        (
            "bad port range",
            Set("/chains/0/match/dst_port", json!("90-80")),
            "chains[0].match.dst_port",
            "not a port or range",
        ),
        (
            "allowed port that does not exist",
            Set("/chains/0/allow_ports", json!(["out", "eth7"])),
            "chains[0].allow_ports[1]",
            "no port named",
        ),
        (
            "NF program that does not exist",
            Set("/nfs/0/program", json!("no-such-nf-program")),
            "nfs[0].program",
            "not found",
        ),
        (
            "NF program path that does not exist",
            Set("/nfs/0/program", json!("./bin/nothing")),
            "nfs[0].program",
            "does not exist",
        ),
        (
            "process NF without a program",
            Remove("/nfs/1/program"),
            "nfs[1].program",
            "needs a program",
        ),
        (
            "rule file that does not exist",
            Set("/nfs/0/args/1", json!("missing.rules")),
            "nfs[0].args[1]",
            "cannot read",
        ),
        (
            "rule file that does not parse",
            Set("/nfs/0/args/1", json!("bad.rules")),
            "nfs[0].args[1]",
            "line 2",
        ),
        (
            "route to a port that does not exist",
            Set("/nfs/1/args/0", json!("--routes=bad.routes")),
            "nfs[1].args[0]",
            "port 7 does not exist",
        ),
        (
            "pcap file that does not exist",
            Set(
                "/ports/0/device",
                json!("net_pcap0,rx_pcap=nope.pcap,infinite_rx=1"),
            ),
            "ports[0].device",
            "does not exist",
        ),
        (
            "empty device string",
            Set("/ports/0/device", json!(" ")),
            "ports[0].device",
            "empty or invalid",
        ),
    ];
    if mem_gib >= 64 {
        // 16 domains of 4 GiB cannot exceed this machine's memory.
        cases.retain(|c| c.0 != "regions larger than memory");
    }
    if ncpu() == 1 {
        // No second CPU: the NF-on-worker case is the base config itself.
        cases.retain(|c| c.0 != "NF on a worker's CPU");
    }
    let mut failures = Vec::new();
    for (what, edit, want_path, want_reason) in cases {
        let text = match edit {
            Text(t) => t.to_string(),
            e => {
                let mut v = base(&dir);
                match e {
                    Set(ptr, val) => {
                        let (parent, key) = ptr.rsplit_once('/').unwrap();
                        let p = if parent.is_empty() {
                            &mut v
                        } else {
                            v.pointer_mut(parent).unwrap()
                        };
                        match p {
                            Value::Object(m) => {
                                m.insert(key.to_string(), val);
                            }
                            Value::Array(a) => a[key.parse::<usize>().unwrap()] = val,
                            _ => panic!("{what}: bad pointer {ptr}"),
                        }
                    }
                    Remove(ptr) => {
                        let (parent, key) = ptr.rsplit_once('/').unwrap();
                        let p = if parent.is_empty() {
                            &mut v
                        } else {
                            v.pointer_mut(parent).unwrap()
                        };
                        p.as_object_mut().unwrap().remove(key);
                    }
                    Push(ptr, val) => v
                        .pointer_mut(ptr)
                        .unwrap()
                        .as_array_mut()
                        .unwrap()
                        .push(val),
                    Text(_) => unreachable!(),
                }
                serde_json::to_string_pretty(&v).unwrap()
            }
        };
        let (code, out, err) = check_text(&dir, &text);
        let file = dir.path("config.json");
        let prefix = format!("{}: {want_path}: ", file.display());
        let ok = code == 2
            && out.is_empty()
            && err.lines().count() == 1
            && err.starts_with(&prefix)
            && err.contains(want_reason);
        if !ok {
            failures.push(format!(
                "{what}: want exit 2 and `{prefix}…{want_reason}…`, got exit {code}, stdout {out:?}, stderr {err:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn unreadable_config_is_an_invalid_config() {
    let o = run(&["check", "/nonexistent/netvm.json"]);
    let (_, err) = texts(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.starts_with("/nonexistent/netvm.json: (file): "),
        "{err}"
    );
}

/// Host A and host B of one service path 77: firewall on A, router on B.
fn nsh_pair(dir: &Scratch) -> (Value, Value) {
    let mut a = base(dir);
    let mut b = base(dir);
    a["name"] = json!("a");
    b["name"] = json!("b");
    a["ports"][1] = json!({"name": "wan", "device": "net_null1", "domain": "d1",
                           "peer_mac": "02:00:00:00:0b:01"});
    b["ports"][0] = json!({"name": "wan", "device": "net_null0", "domain": "d1"});
    a["chains"][0] = json!({"name": "c", "path_id": 77, "match": {"in_port": "in"},
                            "services": ["firewall", {"service": "router", "at": "wan"}]});
    b["chains"][0] = json!({"name": "c", "path_id": 77,
                            "services": [{"service": "firewall", "at": "wan"}, "router"],
                            "egress": "out"});
    (a, b)
}

fn check_two(dir: &Scratch, a: &Value, b: &Value) -> (i32, String, String) {
    let (fa, fb) = (dir.path("a.json"), dir.path("b.json"));
    std::fs::write(&fa, a.to_string()).unwrap();
    std::fs::write(&fb, b.to_string()).unwrap();
    let o = run(&["check", fa.to_str().unwrap(), fb.to_str().unwrap()]);
    let (out, err) = texts(&o);
    (o.status.code().unwrap_or(-1), out, err)
}

#[test]
fn service_paths_are_checked_alone_and_against_the_peer() {
    use Edit::{Push, Remove, Set, Text};
    let dir = Scratch::new("check-nsh");
    let (a, b) = nsh_pair(&dir);
    for v in [&a, &b] {
        let (code, out, err) = check_text(&dir, &v.to_string());
        assert_eq!((code, out.as_str()), (0, "ok\n"), "{err}");
    }
    let (code, out, err) = check_two(&dir, &a, &b);
    assert_eq!((code, out.as_str()), (0, "ok\n"), "{err}");

    // One config at a time: path ids, remote hops, egress and match rules.
    let one: Vec<(Edit, &str, &str)> = vec![
        (
            Set("/chains/0/path_id", json!(0)),
            "chains[0].path_id",
            "24 bits",
        ),
        (
            Set("/chains/0/path_id", json!(16_777_216)),
            "chains[0].path_id",
            "24 bits",
        ),
        (
            Remove("/chains/0/path_id"),
            "chains[0].path_id",
            "needs a path_id",
        ),
        (
            Set("/chains/0/services/1/at", json!("nowhere")),
            "chains[0].services[1].at",
            "no port named",
        ),
        (
            Set("/chains/0/egress", json!("in")),
            "chains[0].egress",
            "leave egress out",
        ),
        (
            Push(
                "/chains",
                json!({"name": "d", "path_id": 77, "services": [], "egress": "drop"}),
            ),
            "chains[1].path_id",
            "already chains[0]'s",
        ),
        (
            Set("/ports/1/peer_mac", json!("02:00:00:00:0b")),
            "ports[1].peer_mac",
            "not a MAC",
        ),
    ];
    for (edit, path, why) in one {
        let mut v = a.clone();
        match edit {
            Set(p, x) => {
                let (parent, key) = p.rsplit_once('/').unwrap();
                v.pointer_mut(parent)
                    .unwrap()
                    .as_object_mut()
                    .unwrap()
                    .insert(key.into(), x);
            }
            Remove(p) => {
                let (parent, key) = p.rsplit_once('/').unwrap();
                v.pointer_mut(parent)
                    .unwrap()
                    .as_object_mut()
                    .unwrap()
                    .remove(key);
            }
            Push(p, x) => v.pointer_mut(p).unwrap().as_array_mut().unwrap().push(x),
            Text(_) => unreachable!(),
        }
        let (code, _, err) = check_text(&dir, &v.to_string());
        assert_eq!(code, 2, "{path}: {err}");
        assert!(
            err.contains(&format!(": {path}: ")) && err.contains(why),
            "{path}: {err}"
        );
    }
    // B must not classify into a path whose first hop is A's.
    let mut v = b.clone();
    v["chains"][0]["match"] = json!({"in_port": "wan"});
    let (code, _, err) = check_text(&dir, &v.to_string());
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("chains[0].match") && err.contains("leave match out"),
        "{err}"
    );

    // Both ends: they must agree.
    let mut b2 = b.clone();
    b2["chains"][0]["services"][1] = json!("firewall");
    let (code, _, err) = check_two(&dir, &a, &b2);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("b.json: chains[0].services[1]")
            && err.contains("is service \"firewall\" here but \"router\""),
        "{err}"
    );
    let mut b3 = b.clone();
    b3["chains"][0]["services"][0] = json!("firewall");
    let (code, _, err) = check_two(&dir, &a, &b3);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("b.json: chains[0].services[0]") && err.contains("runs here and in"),
        "{err}"
    );
    let mut a2 = a.clone();
    a2["chains"][0]["path_id"] = json!(78);
    let (code, _, err) = check_two(&dir, &a2, &b);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no other given config declares it"), "{err}");
}
