//! # netvm-manager
//!
//! The control plane of netvm: reads one JSON config (the types and the core's validation live
//! in `netvm_api::config`), checks it fully before anything starts, and runs an instance —
//! hugepages, `netvm-core`, one pinned process per NF — until it is told to stop, then tears it
//! down in order and prints a summary whose accounting says whether every packet is accounted
//! for.
//!
//! * [`check`]: parsing with JSON paths in errors, the core's validation, the manager's own
//!   checks (CPUs, programs, rule/route/pcap files, sizes).
//! * [`schema`]: the config's JSON Schema, generated from the types.
//! * [`up`]: the lifecycle of one instance; [`instance`]: `down`, `status`, `stats` from another
//!   shell; [`state`]: the state file that makes that possible.
//! * [`hugepages`]: what an instance needs and the reservation that is undone at teardown.
//! * [`proc`]: child processes (own process group, parent-death signal, CPU pinning, logs).
//! * [`control`]: the client side of the core's control socket (typed requests and answers
//!   from `netvm_api::protocol`).
//! * [`capture`]: `capture` — frames at one point of a running instance into pcapng.
//! * [`report`]: the core's report, rates, live displays and the final summary.
//! * [`metrics`]: the report in the Prometheus text format; [`exporter`]: `metrics`, the small
//!   HTTP server that serves it on `/metrics`.
//! * [`runtime`]: `nf add`, `nf remove` (through the running `up`, which owns every NF
//!   process) and `chain set` (straight to the core).
//! * [`pcapgen`]: the demo's traffic.
//!
//! * [`vm`]: `kind: "vm"` NFs — the guest image, KVM/TCG detection, the QEMU command line
//!   (one ivshmem-plain BAR per domain, nothing else of the host's memory), per-VM files.
//!
//! What it is not: it does not forward packets (the core does), and it does not link DPDK
//! (what it shares with the core is in the DPDK-free `netvm-api`: config, report, control
//! protocol; and `netvm-shm`: region layout). It only ever signals processes it started (core,
//! NF processes, QEMU), by pid, checked against their start time.

#![warn(missing_docs)]

pub mod capture;
pub mod check;
pub mod cli;
pub mod control;
pub mod error;
pub mod exporter;
pub mod hugepages;
pub mod instance;
pub mod metrics;
pub mod pcapgen;
pub mod proc;
pub mod programs;
pub mod report;
pub mod runtime;
pub mod schema;
pub mod signals;
pub mod state;
pub mod sys;
pub mod up;
pub mod virtio;
pub mod vm;

pub use error::ManagerError;
