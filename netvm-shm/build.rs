//! Declares the `loom` cfg so `#[cfg(loom)]` does not trip `unexpected_cfgs`
//! (the crate opts into the workspace lints, so it cannot add its own
//! `[lints.rust]` check-cfg table).
fn main() {
    println!("cargo::rustc-check-cfg=cfg(loom)");
    println!("cargo::rerun-if-changed=build.rs");
}
