//! netlib-guest: the library a network function links to talk to the netvm core.
//!
//! An NF is a host process (it maps the domain's region file) or runs in a QEMU guest (the
//! region is the ivshmem BAR). Either way it sees the same region, laid out by
//! [`netvm_shm`]: a slot reserved for it by name, one RX ring per core worker (core → NF), one
//! TX ring (NF → core), and the domain's packet buffers. This crate implements the NF side of
//! the core ↔ NF contract on top of that ABI:
//!
//! * attach by name ([`Nf::attach_file`], [`Nf::attach_mapping`], [`Nf::attach_raw`] — any
//!   mapped byte range, so a PCI BAR mapping slots in), claiming a RESERVED or DETACHED slot or
//!   taking over one whose process died;
//! * a zero-copy [`Packet`] view over each buffer, with bounds-checked headroom operations and
//!   verdict setters (NEXT, SERVICE, OUT, DROP);
//! * a burst API ([`Nf::rx_burst`], [`Nf::packet`], [`Nf::tx_burst`], [`Nf::idle`]) and a
//!   closure API ([`Nf::run`]) on top of it;
//! * adaptive polling: spin, yield, then sleep on the RX doorbells (futex on the host, across
//!   all RX rings at once; poll-sleep in guests), with the heartbeat kept alive;
//! * core-restart handling (generation change → forget old descriptors, re-attach), clean
//!   exit on SIGINT/SIGTERM ([`signal`]), and command-line options for NF binaries
//!   ([`NfOptions`]);
//! * a C API (`include/netlib.h`, built into `libnetlib_guest.a`).
//!
//! * in a QEMU guest, [`pci`] discovery: the ivshmem device (1af4:1110) in sysfs, its BAR2
//!   (`resource2`) mapped exactly like a region file, the NF's name from `netvm.nf=` on the
//!   kernel command line — so one NF binary runs on the host or in a guest unchanged.
//!
//! What it is not: no packet parsing (use `netvm-wire`), no DPDK. [`testkit`] is a
//! minimal stand-in for the core, for tests only.
#![warn(missing_docs)]

mod error;
pub mod ffi;
mod nf;
mod options;
mod packet;
pub mod pci;
pub mod signal;
mod slot;
pub mod testkit;
mod wait;

pub use error::NfError;
pub use nf::{Nf, NfConfig, NfStats, PacketHandler, PollPolicy, BATCH};
pub use options::{parse_secs, NfOptions, WaitKind};
pub use packet::{Packet, PacketError};
pub use slot::MAX_NAME_LEN;

pub use netvm_shm::{Descriptor, Geometry, NfCounter, Verdict, WaitMode};
