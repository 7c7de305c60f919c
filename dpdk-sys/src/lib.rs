//! Mechanical bindings to the system DPDK 22.11, generated at build time by bindgen over the
//! headers found with `pkg-config libdpdk`, plus `netvm_*` wrappers (see `shim.h`) for the
//! static-inline fast-path functions that have no symbol in DPDK's shared libraries.
//!
//! Nothing here is safe to call directly; the `dpdk` crate is the safe layer (`Eal`, `Port`,
//! `Mempool`, `Mbuf`). The allowlists in `build.rs` are deliberately narrow: widen them when a
//! new function is needed, and keep bindgen's layout tests.
#![allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    missing_docs
)]
#![allow(
    clippy::all,
    clippy::pedantic,
    clippy::undocumented_unsafe_blocks,
    clippy::missing_safety_doc
)]
#![allow(unsafe_op_in_unsafe_fn)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
