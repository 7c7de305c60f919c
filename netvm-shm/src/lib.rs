//! netvm's shared-memory ABI: everything that lives in memory shared between the core (trusted)
//! and network functions (untrusted host processes or QEMU guests).
//!
//! What is in it:
//! * [`layout`]: the byte layout of a region — [`RegionHeader`] with its [`RegionKind`]
//!   (a domain's packet buffers, or one NF's control memory), the NF slot table
//!   ([`NfSlot`]), ring control blocks ([`RingControl`]) — and [`RegionLayout::compute`];
//! * [`region`]: [`Region`] — create (core), attach and validate (NF, from a file, a memmap2
//!   mapping or any raw mapping such as an ivshmem BAR), and typed accessors that touch shared
//!   memory only through atomics and volatile copies;
//! * [`ring`]: the SPSC descriptor ring ([`Producer`], [`Consumer`]) with its futex doorbell;
//! * [`desc`]: the 16-byte [`Descriptor`], its validation into [`CheckedDesc`], and reject
//!   accounting ([`RejectReason`], [`RejectCounters`]).
//! * [`proc`]: [`proc::pid_alive`], the one liveness check for a pid a peer recorded.
//! * [`numa`]: binding a new region to a NUMA node ([`Region::create_on`],
//!   [`Region::create_or_replace_on`]): `mbind(MPOL_BIND)` before the first touch, then prefault.
//!
//! What it is not: no DPDK (the core lays its extbuf mempool over [`Region::buf_area`]), no
//! policy (what to do with a rejected descriptor or a corrupt ring is the core's call; this crate
//! reports it with a typed error), no control plane.
//!
//! Everything in a region is addressed by offsets and indices, never pointers: every party maps
//! it at a different address. The byte-level contract is written down in `docs/shm-abi.md`.
//!
//! Dependencies are libc, memmap2 and thiserror only, so the crate builds into static binaries
//! that run in a minimal guest.
//!
//! # Example
//! The core creates its domain region (packet buffers) and one control region per NF (slot and
//! rings); the NF (normally another process, attaching by path with [`Region::attach_file`] and
//! [`Buffers::attach_file`]) claims its slot and exchanges descriptors:
//! ```
//! use netvm_shm::{CheckedDesc, Descriptor, Region, RegionKind, RegionLayout, RegionParams, Verdict};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let params = RegionParams {
//!     kind: RegionKind::Domain,
//!     domain_id: 1,
//!     domain_name: "blue".into(),
//!     slot_count: 0,
//!     rx_rings_per_slot: 0,
//!     ring_capacity: 0,
//!     buf_size: 2176,
//!     buf_count: 4096,
//! };
//! // Core: create (here in anonymous memory; `Region::create(path, ..)` for a hugetlbfs file).
//! let domain = Region::create_anonymous(&params)?;
//! // Two core workers: two RX rings and one TX ring of 1024 descriptors.
//! let ctl = Region::create_anonymous(&RegionLayout::control_params(domain.geometry(), 2, 1024))?;
//! let rings = ctl.geometry().slot_rings(0).unwrap();
//! let mut to_nf = ctl.producer(rings.rx(0).unwrap())?; // worker 0's RX ring
//! let mut from_nf = ctl.consumer(rings.tx)?;
//! ctl.slot(0)?.reserve("fw1", 7, 0)?;
//!
//! // NF: claim its slot in its control region, open its rings.
//! let nf = ctl.clone(); // an NF process would use Region::attach_file(control path)
//! let slot = nf.slot(nf.find_slot("fw1").unwrap())?;
//! slot.attach(nf.generation(), std::process::id())?;
//! let mut rx = nf.consumer(slot.rx_ring(0).unwrap())?;
//! let mut tx = nf.producer(slot.tx_ring())?;
//!
//! // Core -> NF.
//! to_nf.enqueue_burst(&[Descriptor::new(42, 128, 64)])?;
//! to_nf.wake_if_sleeping();
//! let mut burst = [Descriptor::default(); 32];
//! let n = rx.dequeue_burst(&mut burst)?;
//! // NF -> core with a verdict.
//! burst[0].set_verdict(Verdict::Out(1));
//! tx.enqueue_burst(&burst[..n])?;
//! // Core: validate everything an NF wrote.
//! let got = from_nf.dequeue_burst(&mut burst)?;
//! let d = CheckedDesc::try_from_raw(burst[0], domain.geometry())?;
//! assert_eq!((got, d.buf_idx(), d.verdict()), (1, 42, Verdict::Out(1)));
//! // The packet bytes are in the domain region.
//! assert!(domain.buffers().unwrap().packet_ptr(&d.buf()).is_ok());
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

pub mod desc;
mod futex;
pub mod heap;
pub mod layout;
pub mod numa;
mod primitive;
pub mod proc;
pub mod region;
pub mod ring;

pub use desc::{
    verdict_code, CheckedBuf, CheckedDesc, DescError, Descriptor, RejectCounters, RejectReason,
    Verdict,
};
pub use heap::HeapRing;
pub use layout::{
    ring_owner, Geometry, LayoutError, NfCounter, NfSlot, RegionHeader, RegionKind, RegionLayout,
    RegionParams, RingControl, RingRole, SlotRings,
};
pub use region::{
    control_path, Buffers, Doorbell, HeaderRef, Region, RegionError, ShmRing, SlotRef, SlotState,
};
pub use ring::{Consumer, Producer, RingError, RingMem, WaitMode, WaitOutcome};
