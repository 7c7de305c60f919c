//! The shipped files stay true: every example config passes `check`, and the shipped JSON
//! Schema is exactly what the config types generate.

mod common;

use common::{demo_pcap, require_built, root, run, texts};

#[test]
fn every_example_config_checks() {
    require_built(&["firewall", "l3fwd", "l2fwd", "monitor"]);
    demo_pcap();
    let mut files: Vec<_> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "examples: {files:?}");
    for want in [
        "demo.json",
        "l2-chain.json",
        "load-balanced.json",
        "untrusted-tenant.json",
    ] {
        assert!(
            files.iter().any(|f| f.ends_with(want)),
            "examples/{want} missing"
        );
    }
    for f in files {
        let o = run(&["check", f.to_str().unwrap()]);
        let (out, err) = texts(&o);
        assert!(
            o.status.success() && out == "ok\n",
            "{}: {out}{err}",
            f.display()
        );
    }
}

#[test]
fn shipped_schema_is_generated_from_the_types() {
    let shipped = std::fs::read_to_string(root().join(netvm_manager::schema::SHIPPED_PATH))
        .expect("schema/netvm-config.schema.json");
    let generated = netvm_manager::schema::generate();
    assert!(
        shipped == generated,
        "schema/netvm-config.schema.json is stale: regenerate it with\n  cargo run -p netvm-manager -- schema > schema/netvm-config.schema.json"
    );
    let o = run(&["schema"]);
    assert!(o.status.success());
    assert_eq!(
        texts(&o).0,
        generated,
        "`netvm-manager schema` prints the schema"
    );
    // It is a JSON Schema that knows the config's fields and forbids unknown ones.
    let v: serde_json::Value = serde_json::from_str(&shipped).unwrap();
    assert_eq!(v["$schema"], "https://json-schema.org/draft/2020-12/schema");
    for field in ["domains", "ports", "nfs", "chains", "workers"] {
        assert!(
            v["properties"].get(field).is_some(),
            "no {field} in the schema"
        );
    }
    assert_eq!(v["additionalProperties"], false);
    assert_eq!(v["$defs"]["NfConfig"]["additionalProperties"], false);
}

#[test]
fn gen_pcap_writes_the_demo_traffic() {
    let dir = common::Scratch::new("pcap");
    let out = dir.path("t.pcap");
    let o = run(&[
        "gen-pcap",
        out.to_str().unwrap(),
        "--flows",
        "4",
        "--packets-per-flow",
        "3",
    ]);
    assert!(o.status.success(), "{:?}", texts(&o));
    let mut r = netvm_wire::PcapReader::open(&out).unwrap();
    let mut n = 0;
    while let Some(p) = r.next_packet().unwrap() {
        netvm_wire::PacketMeta::parse(p.data).expect("a valid frame");
        n += 1;
    }
    assert_eq!(n, 12);
}
