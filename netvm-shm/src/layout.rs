//! Byte layout of a region: the ABI structs, their constants, and the layout computation.
//!
//! Every struct here is `#[repr(C)]` with fixed-width fields and explicit padding, and its size
//! and field offsets are asserted at compile time; `docs/shm-abi.md` has the same tables in prose.
//! The atomics are `std::sync::atomic` types on purpose, even under `cfg(loom)` (see the
//! private `primitive` module): they are the same size and alignment as the plain integers and
//! are the only way this crate touches mutable words in shared memory.
//!
//! Nothing in this module hands out references into shared memory; [`crate::region`] does the
//! mapping and accesses fields through raw pointers, atomics and volatile copies.

use core::mem::{align_of, offset_of, size_of};
use core::ops::Range;
use std::sync::atomic::{AtomicU32, AtomicU64};

use crate::desc::Descriptor;

/// `b"NETVMSHM"` read as a little-endian `u64`.
pub const MAGIC: u64 = u64::from_le_bytes(*b"NETVMSHM");
/// ABI version this crate reads and writes.
pub const ABI_VERSION: u32 = 2;
/// Bytes reserved for [`RegionHeader`] at offset 0.
pub const HEADER_SIZE: usize = 4096;
/// Bytes per NF slot ([`NfSlot`]).
pub const SLOT_SIZE: usize = 512;
/// Bytes of ring control ([`RingControl`]) before each ring's descriptor array.
pub const RING_CONTROL_SIZE: usize = 384;
/// Bytes per descriptor.
pub const DESC_SIZE: usize = 16;
/// Length of the NUL-padded domain and NF name fields.
pub const NAME_LEN: usize = 32;
/// Most RX rings (workers) one NF slot can have.
pub const MAX_RX_RINGS_PER_SLOT: u32 = 64;
/// Most NF slots in one region.
pub const MAX_SLOT_COUNT: u32 = 4096;
/// Smallest ring capacity.
pub const MIN_RING_CAPACITY: u32 = 2;
/// Largest ring capacity (keeps `prod - cons <= capacity` meaningful with u32 indices).
pub const MAX_RING_CAPACITY: u32 = 1 << 20;
/// Packet buffers are a multiple of this size (a cache line).
pub const BUF_ALIGN: u32 = 64;
/// Largest packet buffer (DPDK's `buf_len` is a `u16`).
pub const MAX_BUF_SIZE: u32 = 65472;
/// Areas (slot table, ring area, buffer area) start on a page boundary.
pub const AREA_ALIGN: u64 = 4096;
/// Offset of a domain region's buffer area (one 2 MiB hugepage), so that the buffer area is
/// whole hugepages that can be registered for DMA on their own.
pub const DOMAIN_BUF_ALIGN: u64 = 2 << 20;
/// Smallest region: one 2 MiB hugepage.
pub const MIN_REGION_SIZE: u64 = 2 << 20;
/// Largest region accepted.
pub const MAX_REGION_SIZE: u64 = 64 << 30;
/// `statfs.f_type` of hugetlbfs.
pub const HUGETLBFS_MAGIC: i64 = 0x9584_58f6;

/// Region header at offset 0 (padded to [`HEADER_SIZE`]). Written by the core at
/// (re)initialisation; read once by each NF at attach, which copies and validates it.
#[repr(C)]
#[derive(Debug)]
pub struct RegionHeader {
    /// [`MAGIC`].
    pub magic: u64,
    /// [`ABI_VERSION`].
    pub abi_version: u32,
    /// [`HEADER_SIZE`].
    pub header_size: u32,
    /// Bytes in the region; a power of two (an ivshmem BAR must be).
    pub total_size: u64,
    /// Trust-domain id (from the config).
    pub domain_id: u32,
    /// What the region holds: one of [`region_kind`].
    pub kind: u32,
    /// Bumped by the core on every (re)initialisation; 0 while initialising. NFs compare it
    /// with the value they attached under to detect a core restart.
    pub generation: AtomicU64,
    /// Domain name, NUL padded.
    pub domain_name: [u8; NAME_LEN],
    /// Offset of the NF slot table.
    pub slot_table_offset: u64,
    /// Slots in the table.
    pub slot_count: u32,
    /// Bytes per slot ([`SLOT_SIZE`]).
    pub slot_size: u32,
    /// Offset of the ring area.
    pub ring_area_offset: u64,
    /// Rings in the area (`slot_count * (rx_rings_per_slot + 1)`).
    pub ring_count: u32,
    /// Descriptors per ring; a power of two.
    pub ring_capacity: u32,
    /// Bytes per ring: control plus descriptors, a multiple of 64.
    pub ring_stride: u64,
    /// RX rings per slot (= the core's maximum worker count).
    pub rx_rings_per_slot: u32,
    /// Bytes per packet buffer, a multiple of 64.
    pub buf_size: u32,
    /// Offset of the packet-buffer area (page aligned).
    pub buf_area_offset: u64,
    /// Packet buffers in the area.
    pub buf_count: u32,
    /// Process id of the core (informational).
    pub core_pid: AtomicU32,
    /// Incremented by the core while it is alive.
    pub core_heartbeat: AtomicU64,
    /// Bytes of the file that holds the buffer area: `total_size` for a domain or combined
    /// region; for a control region, the size of its domain's region file.
    pub buf_region_size: u64,
    /// Zero.
    pub reserved: [u8; HEADER_SIZE - 152],
}

const _: () = assert!(size_of::<RegionHeader>() == HEADER_SIZE);
const _: () = assert!(align_of::<RegionHeader>() == 8);
const _: () = assert!(offset_of!(RegionHeader, magic) == 0);
const _: () = assert!(offset_of!(RegionHeader, abi_version) == 8);
const _: () = assert!(offset_of!(RegionHeader, header_size) == 12);
const _: () = assert!(offset_of!(RegionHeader, total_size) == 16);
const _: () = assert!(offset_of!(RegionHeader, domain_id) == 24);
const _: () = assert!(offset_of!(RegionHeader, kind) == 28);
const _: () = assert!(offset_of!(RegionHeader, generation) == 32);
const _: () = assert!(offset_of!(RegionHeader, domain_name) == 40);
const _: () = assert!(offset_of!(RegionHeader, slot_table_offset) == 72);
const _: () = assert!(offset_of!(RegionHeader, slot_count) == 80);
const _: () = assert!(offset_of!(RegionHeader, slot_size) == 84);
const _: () = assert!(offset_of!(RegionHeader, ring_area_offset) == 88);
const _: () = assert!(offset_of!(RegionHeader, ring_count) == 96);
const _: () = assert!(offset_of!(RegionHeader, ring_capacity) == 100);
const _: () = assert!(offset_of!(RegionHeader, ring_stride) == 104);
const _: () = assert!(offset_of!(RegionHeader, rx_rings_per_slot) == 112);
const _: () = assert!(offset_of!(RegionHeader, buf_size) == 116);
const _: () = assert!(offset_of!(RegionHeader, buf_area_offset) == 120);
const _: () = assert!(offset_of!(RegionHeader, buf_count) == 128);
const _: () = assert!(offset_of!(RegionHeader, core_pid) == 132);
const _: () = assert!(offset_of!(RegionHeader, core_heartbeat) == 136);
const _: () = assert!(offset_of!(RegionHeader, buf_region_size) == 144);
const _: () = assert!(offset_of!(RegionHeader, reserved) == 152);

/// Raw values of [`RegionHeader::kind`].
pub mod region_kind {
    /// Header, slots, rings and buffers in one mapping: for in-process use and tests. The core
    /// never creates one, and netlib-guest refuses to attach to one.
    pub const COMBINED: u32 = 0;
    /// A trust domain's region: header and packet buffers only (no slots, no rings). Mapped by
    /// the core and every NF of the domain.
    pub const DOMAIN: u32 = 1;
    /// One NF's control region: header, one slot and that NF's rings; no buffers. Its
    /// `buf_*` fields describe the buffer area of the domain region (another file). Mapped by
    /// the core and that NF only.
    pub const CONTROL: u32 = 2;
}

/// What a region holds (the header's `kind` with what goes with it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RegionKind {
    /// Everything in one mapping ([`region_kind::COMBINED`]).
    Combined,
    /// Header and packet buffers ([`region_kind::DOMAIN`]).
    Domain,
    /// One NF's slot and rings; the buffers live in the domain region
    /// ([`region_kind::CONTROL`]).
    Control {
        /// Offset of the buffer area in the domain region file.
        buf_area_offset: u64,
        /// Size of the domain region file.
        buf_region_size: u64,
    },
}

impl RegionKind {
    /// The header's raw `kind` value.
    #[must_use]
    pub const fn as_raw(self) -> u32 {
        match self {
            Self::Combined => region_kind::COMBINED,
            Self::Domain => region_kind::DOMAIN,
            Self::Control { .. } => region_kind::CONTROL,
        }
    }

    /// Whether this region has a slot table and rings.
    #[must_use]
    pub const fn has_rings(self) -> bool {
        !matches!(self, Self::Domain)
    }

    /// Whether the buffer area lies in this region's own mapping.
    #[must_use]
    pub const fn has_buffers(self) -> bool {
        !matches!(self, Self::Control { .. })
    }
}

/// Raw values of [`NfSlot::state`].
pub mod slot_state {
    /// Unused.
    pub const FREE: u32 = 0;
    /// Assigned by the core to a configured NF name; waiting for the NF.
    pub const RESERVED: u32 = 1;
    /// The NF attached (set by the NF).
    pub const ATTACHED: u32 = 2;
    /// The NF exited cleanly (set by the NF).
    pub const DETACHED: u32 = 3;
    /// The core cut the NF off (set by the core).
    pub const QUARANTINED: u32 = 4;
}

/// Number of NF-written counters in a slot.
pub const NF_COUNTER_COUNT: usize = 9;

/// One NF slot of the slot table ([`SLOT_SIZE`] bytes, 64-byte aligned).
///
/// Writers: the core writes `name`, `service_id`, `instance`, `tx_ring`, `rx_ring_count`,
/// `rx_ring` and the FREE/RESERVED/QUARANTINED states; the NF writes `nf_pid`,
/// `attach_generation`, `heartbeat`, `counters` and the ATTACHED/DETACHED states. The core never
/// reads back what it wrote (it keeps a private copy); it reads the NF-written words as hostile.
#[repr(C, align(64))]
#[derive(Debug)]
pub struct NfSlot {
    /// NF name, NUL padded (core).
    pub name: [u8; NAME_LEN],
    /// One of [`slot_state`].
    pub state: AtomicU32,
    /// NF process id (NF; informational, 0 in a guest).
    pub nf_pid: AtomicU32,
    /// `RegionHeader::generation` at the time the NF attached (NF).
    pub attach_generation: AtomicU64,
    /// Incremented by the NF while alive (NF).
    pub heartbeat: AtomicU64,
    /// Service id of the NF (core).
    pub service_id: AtomicU32,
    /// Instance number within the service (core).
    pub instance: AtomicU32,
    /// Ring id of the NF's TX ring, NF → core (core).
    pub tx_ring: AtomicU32,
    /// Number of valid entries in `rx_ring` (core).
    pub rx_ring_count: AtomicU32,
    /// Zero.
    pub reserved0: [u8; 56],
    /// Ring ids of the NF's RX rings, one per worker, core → NF (core).
    pub rx_ring: [AtomicU32; MAX_RX_RINGS_PER_SLOT as usize],
    /// NF-written statistics (the first eight on their own cache line, `busy_cycles` in the
    /// next); indexed by [`NfCounter`].
    pub counters: [AtomicU64; NF_COUNTER_COUNT],
    /// Zero.
    pub reserved1: [u8; 56],
}

const _: () = assert!(size_of::<NfSlot>() == SLOT_SIZE);
const _: () = assert!(align_of::<NfSlot>() == 64);
const _: () = assert!(offset_of!(NfSlot, name) == 0);
const _: () = assert!(offset_of!(NfSlot, state) == 32);
const _: () = assert!(offset_of!(NfSlot, nf_pid) == 36);
const _: () = assert!(offset_of!(NfSlot, attach_generation) == 40);
const _: () = assert!(offset_of!(NfSlot, heartbeat) == 48);
const _: () = assert!(offset_of!(NfSlot, service_id) == 56);
const _: () = assert!(offset_of!(NfSlot, instance) == 60);
const _: () = assert!(offset_of!(NfSlot, tx_ring) == 64);
const _: () = assert!(offset_of!(NfSlot, rx_ring_count) == 68);
const _: () = assert!(offset_of!(NfSlot, reserved0) == 72);
const _: () = assert!(offset_of!(NfSlot, rx_ring) == 128);
const _: () = assert!(offset_of!(NfSlot, counters) == 384);
const _: () = assert!(offset_of!(NfSlot, reserved1) == 456);

/// The NF-written counters of a slot ([`NfSlot::counters`]).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NfCounter {
    /// Descriptors dequeued from the RX rings.
    RxPkts = 0,
    /// Bytes of those packets.
    RxBytes = 1,
    /// Descriptors enqueued on the TX ring.
    TxPkts = 2,
    /// Bytes of those packets.
    TxBytes = 3,
    /// Packets the NF gave the DROP verdict.
    Dropped = 4,
    /// Enqueue attempts that found the TX ring full.
    TxRingFull = 5,
    /// Times the NF went to sleep on a doorbell.
    Sleeps = 6,
    /// Reserved for NF-specific use.
    User = 7,
    /// TSC cycles the NF spent on bursts that brought packets (from a non-empty receive to
    /// the next receive call): busy cycles ÷ `rx_pkts` is its cost per packet.
    BusyCycles = 8,
}

impl NfCounter {
    /// Every counter, in index order.
    pub const ALL: [Self; NF_COUNTER_COUNT] = [
        Self::RxPkts,
        Self::RxBytes,
        Self::TxPkts,
        Self::TxBytes,
        Self::Dropped,
        Self::TxRingFull,
        Self::Sleeps,
        Self::User,
        Self::BusyCycles,
    ];

    /// Index into [`NfSlot::counters`].
    #[must_use]
    pub const fn as_index(self) -> usize {
        self as usize
    }

    /// Stable snake_case name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::RxPkts => "rx_pkts",
            Self::RxBytes => "rx_bytes",
            Self::TxPkts => "tx_pkts",
            Self::TxBytes => "tx_bytes",
            Self::Dropped => "dropped",
            Self::TxRingFull => "tx_ring_full",
            Self::Sleeps => "sleeps",
            Self::User => "user",
            Self::BusyCycles => "busy_cycles",
        }
    }
}

/// Control block in front of every ring's descriptor array: three cache lines, one per writer.
#[repr(C, align(64))]
#[derive(Debug)]
pub struct RingControl {
    /// Producer index, free running; written only by the producer.
    pub prod: AtomicU32,
    /// Zero.
    pub pad0: [u8; 124],
    /// Consumer index, free running; written only by the consumer.
    pub cons: AtomicU32,
    /// Zero.
    pub pad1: [u8; 124],
    /// Non-zero while the consumer is (about to be) asleep on `wake_seq`; written by the consumer.
    pub sleeping: AtomicU32,
    /// Futex word, bumped by the producer to wake the consumer.
    pub wake_seq: AtomicU32,
    /// The `wake_seq` value the sleeping consumer waits on; written by the consumer.
    pub sleep_seq: AtomicU32,
    /// Zero.
    pub pad2: [u8; 116],
}

const _: () = assert!(size_of::<RingControl>() == RING_CONTROL_SIZE);
const _: () = assert!(align_of::<RingControl>() == 64);
const _: () = assert!(offset_of!(RingControl, prod) == 0);
const _: () = assert!(offset_of!(RingControl, cons) == 128);
const _: () = assert!(offset_of!(RingControl, sleeping) == 256);
const _: () = assert!(offset_of!(RingControl, wake_seq) == 260);
const _: () = assert!(offset_of!(RingControl, sleep_seq) == 264);
const _: () = assert!(RING_CONTROL_SIZE % align_of::<Descriptor>() == 0);
const _: () = assert!(size_of::<Descriptor>() == DESC_SIZE);

/// The ring ids owned by one NF slot. Slot `s` owns the `rx_rings_per_slot + 1` consecutive
/// rings starting at `s * (rx_rings_per_slot + 1)`: first one RX ring per worker (core → NF),
/// then its TX ring (NF → core).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SlotRings {
    /// Ring id of the RX ring of worker 0.
    pub first_rx: u32,
    /// Number of RX rings (= `rx_rings_per_slot`).
    pub rx_count: u32,
    /// Ring id of the TX ring.
    pub tx: u32,
}

impl SlotRings {
    /// Ring ids for `slot`, or `None` if they do not fit in a `u32`.
    #[must_use]
    pub const fn for_slot(slot: u32, rx_rings_per_slot: u32) -> Option<Self> {
        let Some(per_slot) = rx_rings_per_slot.checked_add(1) else {
            return None;
        };
        let Some(first_rx) = slot.checked_mul(per_slot) else {
            return None;
        };
        let Some(tx) = first_rx.checked_add(rx_rings_per_slot) else {
            return None;
        };
        Some(Self {
            first_rx,
            rx_count: rx_rings_per_slot,
            tx,
        })
    }

    /// Ring id of worker `worker`'s RX ring.
    #[must_use]
    pub const fn rx(&self, worker: u32) -> Option<u32> {
        if worker < self.rx_count {
            Some(self.first_rx + worker)
        } else {
            None
        }
    }

    /// All RX ring ids.
    #[must_use]
    pub const fn rx_range(&self) -> Range<u32> {
        self.first_rx..self.tx
    }
}

/// What a ring is for, from its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RingRole {
    /// RX ring of `worker` (core → NF).
    Rx {
        /// Worker index.
        worker: u32,
    },
    /// TX ring (NF → core).
    Tx,
}

/// Slot and role of ring `ring` (inverse of [`SlotRings::for_slot`]).
#[must_use]
pub const fn ring_owner(ring: u32, rx_rings_per_slot: u32) -> Option<(u32, RingRole)> {
    let Some(per_slot) = rx_rings_per_slot.checked_add(1) else {
        return None;
    };
    let slot = ring / per_slot;
    let pos = ring % per_slot;
    if pos == rx_rings_per_slot {
        Some((slot, RingRole::Tx))
    } else {
        Some((slot, RingRole::Rx { worker: pos }))
    }
}

/// What the core asks for when it creates a domain's region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionParams {
    /// What the region holds. For [`RegionKind::Domain`], `slot_count`, `rx_rings_per_slot`
    /// and `ring_capacity` are ignored (no slots, no rings); for [`RegionKind::Control`],
    /// `buf_size` and `buf_count` describe the domain region's buffers, which this region does
    /// not contain.
    pub kind: RegionKind,
    /// Trust-domain id.
    pub domain_id: u32,
    /// Trust-domain name (at most 31 bytes, no NUL).
    pub domain_name: String,
    /// NF slots.
    pub slot_count: u32,
    /// RX rings per slot (the core's maximum worker count), `1..=MAX_RX_RINGS_PER_SLOT`.
    pub rx_rings_per_slot: u32,
    /// Descriptors per ring, a power of two in `MIN_RING_CAPACITY..=MAX_RING_CAPACITY`.
    pub ring_capacity: u32,
    /// Bytes per packet buffer, a multiple of 64, at most [`MAX_BUF_SIZE`] (e.g. 2176 = 128
    /// headroom + 2048 data room).
    pub buf_size: u32,
    /// Packet buffers.
    pub buf_count: u32,
}

/// Impossible region parameters.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// A count that must be positive is zero.
    #[error("{what} must not be zero")]
    ZeroCount {
        /// Which parameter.
        what: &'static str,
    },
    /// A count is above its maximum.
    #[error("{what} is {value}, more than the maximum {max}")]
    TooMany {
        /// Which parameter.
        what: &'static str,
        /// Value given.
        value: u64,
        /// Largest accepted value.
        max: u64,
    },
    /// Ring capacity is not a power of two in range.
    #[error(
        "ring capacity {capacity} is not a power of two between {MIN_RING_CAPACITY} and {MAX_RING_CAPACITY}"
    )]
    BadRingCapacity {
        /// Value given.
        capacity: u32,
    },
    /// Buffer size is not a positive multiple of 64 up to the maximum.
    #[error("buffer size {buf_size} is not a multiple of {BUF_ALIGN} between {BUF_ALIGN} and {MAX_BUF_SIZE}")]
    BadBufSize {
        /// Value given.
        buf_size: u32,
    },
    /// Domain name too long for the header field.
    #[error("domain name is {len} bytes, more than {max}")]
    NameTooLong {
        /// Bytes in the name.
        len: usize,
        /// Longest accepted name.
        max: usize,
    },
    /// Domain name contains a NUL byte.
    #[error("domain name contains a NUL byte")]
    NameHasNul,
    /// An intermediate size overflowed.
    #[error("computing the {what} overflowed")]
    Overflow {
        /// Which quantity.
        what: &'static str,
    },
    /// A control region's buffer area does not fit its domain region.
    #[error("buffer area at {offset:#x} ({len:#x} bytes) does not fit a {region_size:#x}-byte domain region (or that size is not a power of two from 2 MiB to 64 GiB)")]
    BadLinkedBuffers {
        /// Offset of the buffer area in the domain region.
        offset: u64,
        /// Its length.
        len: u64,
        /// The domain region's size.
        region_size: u64,
    },
    /// The region would be larger than [`MAX_REGION_SIZE`].
    #[error("region would be {total} bytes, more than the maximum {max}")]
    TooLarge {
        /// Size needed (before rounding to a power of two, if that overflowed).
        total: u64,
        /// Largest accepted region.
        max: u64,
    },
}

/// Validated region geometry in private memory: computed by [`RegionLayout::compute`] (core) or
/// copied out of a validated header at attach (NF). Nothing reads geometry from shared memory
/// after that.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Geometry {
    pub(crate) kind: RegionKind,
    pub(crate) domain_id: u32,
    pub(crate) domain_name: [u8; NAME_LEN],
    pub(crate) total_size: usize,
    pub(crate) slot_table_offset: usize,
    pub(crate) slot_count: u32,
    pub(crate) slot_size: usize,
    pub(crate) ring_area_offset: usize,
    pub(crate) ring_count: u32,
    pub(crate) ring_capacity: u32,
    pub(crate) ring_stride: usize,
    pub(crate) rx_rings_per_slot: u32,
    pub(crate) buf_area_offset: usize,
    pub(crate) buf_size: u32,
    pub(crate) buf_count: u32,
}

impl Geometry {
    /// What the region holds.
    #[must_use]
    pub const fn kind(&self) -> RegionKind {
        self.kind
    }
    /// Size of the file that holds the buffer area (this region's own size unless it is a
    /// control region).
    #[must_use]
    pub const fn buf_region_size(&self) -> usize {
        match self.kind {
            // Validated at attach / computed to fit a usize.
            #[allow(clippy::cast_possible_truncation)]
            RegionKind::Control {
                buf_region_size, ..
            } => buf_region_size as usize,
            _ => self.total_size,
        }
    }
    /// Trust-domain id.
    #[must_use]
    pub const fn domain_id(&self) -> u32 {
        self.domain_id
    }
    /// Raw NUL-padded domain name.
    #[must_use]
    pub const fn domain_name_raw(&self) -> &[u8; NAME_LEN] {
        &self.domain_name
    }
    /// Domain name up to the first NUL (lossy UTF-8).
    #[must_use]
    pub fn domain_name(&self) -> String {
        name_to_string(&self.domain_name)
    }
    /// Bytes in the region (a power of two).
    #[must_use]
    pub const fn total_size(&self) -> usize {
        self.total_size
    }
    /// Offset of the slot table.
    #[must_use]
    pub const fn slot_table_offset(&self) -> usize {
        self.slot_table_offset
    }
    /// Number of NF slots.
    #[must_use]
    pub const fn slot_count(&self) -> u32 {
        self.slot_count
    }
    /// Bytes per slot.
    #[must_use]
    pub const fn slot_size(&self) -> usize {
        self.slot_size
    }
    /// Offset of the ring area.
    #[must_use]
    pub const fn ring_area_offset(&self) -> usize {
        self.ring_area_offset
    }
    /// Number of rings.
    #[must_use]
    pub const fn ring_count(&self) -> u32 {
        self.ring_count
    }
    /// Descriptors per ring (a power of two).
    #[must_use]
    pub const fn ring_capacity(&self) -> u32 {
        self.ring_capacity
    }
    /// Bytes per ring (control + descriptors).
    #[must_use]
    pub const fn ring_stride(&self) -> usize {
        self.ring_stride
    }
    /// RX rings per slot (= maximum workers).
    #[must_use]
    pub const fn rx_rings_per_slot(&self) -> u32 {
        self.rx_rings_per_slot
    }
    /// Offset of the packet-buffer area; buffer `i` starts at
    /// `buf_area_offset + i * buf_size`.
    #[must_use]
    pub const fn buf_area_offset(&self) -> usize {
        self.buf_area_offset
    }
    /// Bytes per packet buffer.
    #[must_use]
    pub const fn buf_size(&self) -> u32 {
        self.buf_size
    }
    /// Number of packet buffers.
    #[must_use]
    pub const fn buf_count(&self) -> u32 {
        self.buf_count
    }
    /// Bytes in the packet-buffer area (`buf_count * buf_size`; fits, validated).
    #[must_use]
    pub const fn buf_area_len(&self) -> usize {
        self.buf_count as usize * self.buf_size as usize
    }
    /// Ring ids owned by slot `slot`, or `None` if `slot >= slot_count`.
    #[must_use]
    pub const fn slot_rings(&self, slot: u32) -> Option<SlotRings> {
        if slot >= self.slot_count {
            return None;
        }
        SlotRings::for_slot(slot, self.rx_rings_per_slot)
    }
    /// Slot and role of ring `ring`, or `None` if `ring >= ring_count`.
    #[must_use]
    pub const fn ring_owner(&self, ring: u32) -> Option<(u32, RingRole)> {
        if ring >= self.ring_count {
            return None;
        }
        ring_owner(ring, self.rx_rings_per_slot)
    }

    /// Builds the header the core writes for this geometry (generation 0: "initialising").
    // HEADER_SIZE (4096) and SLOT_SIZE (512) are compile-time constants that fit a u32.
    #[allow(clippy::cast_possible_truncation)]
    pub(crate) fn to_header(self, core_pid: u32) -> RegionHeader {
        // Every value below came from `RegionLayout::compute`, which bounded the region at
        // MAX_REGION_SIZE, so the usize -> u64 widenings are lossless.
        RegionHeader {
            magic: MAGIC,
            abi_version: ABI_VERSION,
            header_size: HEADER_SIZE as u32,
            total_size: self.total_size as u64,
            domain_id: self.domain_id,
            kind: self.kind.as_raw(),
            generation: AtomicU64::new(0),
            domain_name: self.domain_name,
            slot_table_offset: self.slot_table_offset as u64,
            slot_count: self.slot_count,
            slot_size: SLOT_SIZE as u32,
            ring_area_offset: self.ring_area_offset as u64,
            ring_count: self.ring_count,
            ring_capacity: self.ring_capacity,
            ring_stride: self.ring_stride as u64,
            rx_rings_per_slot: self.rx_rings_per_slot,
            buf_size: self.buf_size,
            buf_area_offset: self.buf_area_offset as u64,
            buf_count: self.buf_count,
            core_pid: AtomicU32::new(core_pid),
            core_heartbeat: AtomicU64::new(0),
            buf_region_size: self.buf_region_size() as u64,
            reserved: [0; HEADER_SIZE - 152],
        }
    }
}

/// Name bytes up to the first NUL, lossy UTF-8.
pub(crate) fn name_to_string(raw: &[u8; NAME_LEN]) -> String {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(NAME_LEN);
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

/// A NUL-padded name field from `name` (at most `NAME_LEN - 1` bytes, no NUL).
pub(crate) fn name_to_field(name: &str) -> Result<[u8; NAME_LEN], LayoutError> {
    let bytes = name.as_bytes();
    if bytes.len() >= NAME_LEN {
        return Err(LayoutError::NameTooLong {
            len: bytes.len(),
            max: NAME_LEN - 1,
        });
    }
    if bytes.contains(&0) {
        return Err(LayoutError::NameHasNul);
    }
    let mut field = [0u8; NAME_LEN];
    field[..bytes.len()].copy_from_slice(bytes);
    Ok(field)
}

/// `value` rounded up to a multiple of `align` (a power of two), checked.
pub(crate) const fn align_up(value: u64, align: u64) -> Option<u64> {
    match value.checked_add(align - 1) {
        Some(v) => Some(v & !(align - 1)),
        None => None,
    }
}

/// The layout the core computes for a new region.
///
/// Areas, in order: header (`0..4096`), slot table (at 4096), ring area and buffer area (each
/// page aligned); the total is rounded up to the next power of two, at least 2 MiB.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RegionLayout {
    geometry: Geometry,
    used: usize,
}

impl RegionLayout {
    /// Computes the layout for `params` with checked arithmetic.
    pub fn compute(params: &RegionParams) -> Result<Self, LayoutError> {
        let domain_name = name_to_field(&params.domain_name)?;
        let kind = params.kind;
        let ovf = |what| LayoutError::Overflow { what };
        nonzero("buf_count", params.buf_count)?;
        let bs = params.buf_size;
        if bs == 0 || bs % BUF_ALIGN != 0 || bs > MAX_BUF_SIZE {
            return Err(LayoutError::BadBufSize { buf_size: bs });
        }
        // Slots and rings: none in a domain region.
        let (slot_count, rx_rings, cap) = if kind.has_rings() {
            nonzero("slot_count", params.slot_count)?;
            nonzero("rx_rings_per_slot", params.rx_rings_per_slot)?;
            at_most("slot_count", params.slot_count, MAX_SLOT_COUNT)?;
            at_most(
                "rx_rings_per_slot",
                params.rx_rings_per_slot,
                MAX_RX_RINGS_PER_SLOT,
            )?;
            let cap = params.ring_capacity;
            if !cap.is_power_of_two() || !(MIN_RING_CAPACITY..=MAX_RING_CAPACITY).contains(&cap) {
                return Err(LayoutError::BadRingCapacity { capacity: cap });
            }
            (params.slot_count, params.rx_rings_per_slot, cap)
        } else {
            (0, 0, 0)
        };
        let ring_count = slot_count
            .checked_mul(rx_rings + 1)
            .ok_or(ovf("ring count"))?;
        let slot_table_offset = HEADER_SIZE as u64;
        let slot_table_len = u64::from(slot_count) * SLOT_SIZE as u64;
        let ring_area_offset = align_up(slot_table_offset + slot_table_len, AREA_ALIGN)
            .ok_or(ovf("ring area offset"))?;
        let ring_stride = if kind.has_rings() {
            align_up(
                RING_CONTROL_SIZE as u64 + u64::from(cap) * DESC_SIZE as u64,
                64,
            )
            .ok_or(ovf("ring stride"))?
        } else {
            0
        };
        let ring_area_len = u64::from(ring_count)
            .checked_mul(ring_stride)
            .ok_or(ovf("ring area size"))?;
        let rings_end = ring_area_offset
            .checked_add(ring_area_len)
            .and_then(|v| align_up(v, AREA_ALIGN))
            .ok_or(ovf("buffer area offset"))?;
        let buf_area_len = u64::from(params.buf_count) * u64::from(bs);
        let (buf_area_offset, used) = match kind {
            RegionKind::Control {
                buf_area_offset,
                buf_region_size,
            } => {
                // The buffers live in the domain region: check they fit there.
                let end = buf_area_offset
                    .checked_add(buf_area_len)
                    .ok_or(ovf("buffer area end"))?;
                if buf_area_offset % AREA_ALIGN != 0
                    || buf_area_offset < HEADER_SIZE as u64
                    || end > buf_region_size
                    || !buf_region_size.is_power_of_two()
                    || !(MIN_REGION_SIZE..=MAX_REGION_SIZE).contains(&buf_region_size)
                {
                    return Err(LayoutError::BadLinkedBuffers {
                        offset: buf_area_offset,
                        len: buf_area_len,
                        region_size: buf_region_size,
                    });
                }
                (buf_area_offset, rings_end)
            }
            // A domain region starts its buffers on a 2 MiB boundary: the core registers
            // exactly the buffer area with DPDK for DMA, in whole hugepages.
            RegionKind::Domain => (
                DOMAIN_BUF_ALIGN,
                DOMAIN_BUF_ALIGN
                    .checked_add(buf_area_len)
                    .ok_or(ovf("region size"))?,
            ),
            RegionKind::Combined => (
                rings_end,
                rings_end
                    .checked_add(buf_area_len)
                    .ok_or(ovf("region size"))?,
            ),
        };
        let too_large = LayoutError::TooLarge {
            total: used,
            max: MAX_REGION_SIZE,
        };
        if used > MAX_REGION_SIZE {
            return Err(too_large);
        }
        let total = used.max(MIN_REGION_SIZE).next_power_of_two();
        if total > MAX_REGION_SIZE {
            return Err(LayoutError::TooLarge {
                total,
                max: MAX_REGION_SIZE,
            });
        }
        let us = |v: u64, what| usize::try_from(v).map_err(|_| ovf(what));
        if let RegionKind::Control {
            buf_region_size, ..
        } = kind
        {
            us(buf_region_size, "domain region size")?;
        }
        let geometry = Geometry {
            kind,
            domain_id: params.domain_id,
            domain_name,
            total_size: us(total, "region size")?,
            slot_table_offset: us(slot_table_offset, "slot table offset")?,
            slot_count,
            slot_size: SLOT_SIZE,
            ring_area_offset: us(ring_area_offset, "ring area offset")?,
            ring_count,
            ring_capacity: cap,
            ring_stride: us(ring_stride, "ring stride")?,
            rx_rings_per_slot: rx_rings,
            buf_area_offset: us(buf_area_offset, "buffer area offset")?,
            buf_size: bs,
            buf_count: params.buf_count,
        };
        Ok(Self {
            geometry,
            used: us(used, "region size")?,
        })
    }

    /// Parameters of the control region of one NF whose buffers are those of the domain
    /// region `domain` (kind [`RegionKind::Domain`]): one slot, `rx_rings_per_slot` RX rings and
    /// a TX ring of `ring_capacity` descriptors.
    #[must_use]
    pub fn control_params(
        domain: &Geometry,
        rx_rings_per_slot: u32,
        ring_capacity: u32,
    ) -> RegionParams {
        RegionParams {
            kind: RegionKind::Control {
                buf_area_offset: domain.buf_area_offset as u64,
                buf_region_size: domain.total_size as u64,
            },
            domain_id: domain.domain_id,
            domain_name: domain.domain_name(),
            slot_count: 1,
            rx_rings_per_slot,
            ring_capacity,
            buf_size: domain.buf_size,
            buf_count: domain.buf_count,
        }
    }

    /// The geometry of the region.
    #[must_use]
    pub const fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// Bytes in the region (power of two, at least 2 MiB).
    #[must_use]
    pub const fn total_size(&self) -> usize {
        self.geometry.total_size
    }

    /// Bytes actually used by the areas (the rest up to `total_size` is slack).
    #[must_use]
    pub const fn used_size(&self) -> usize {
        self.used
    }
}

fn nonzero(what: &'static str, v: u32) -> Result<(), LayoutError> {
    if v == 0 {
        Err(LayoutError::ZeroCount { what })
    } else {
        Ok(())
    }
}

fn at_most(what: &'static str, v: u32, max: u32) -> Result<(), LayoutError> {
    if v > max {
        Err(LayoutError::TooMany {
            what,
            value: u64::from(v),
            max: u64::from(max),
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> RegionParams {
        RegionParams {
            kind: RegionKind::Combined,
            domain_id: 7,
            domain_name: "blue".into(),
            slot_count: 8,
            rx_rings_per_slot: 4,
            ring_capacity: 1024,
            buf_size: 2176,
            buf_count: 4096,
        }
    }

    #[test]
    fn compute_typical() {
        let l = RegionLayout::compute(&params()).unwrap();
        let g = l.geometry();
        assert_eq!(g.slot_table_offset(), 4096);
        assert_eq!(g.ring_area_offset(), 8192);
        assert_eq!(g.ring_count(), 40);
        assert_eq!(g.ring_stride(), RING_CONTROL_SIZE + 1024 * 16);
        assert_eq!(g.buf_area_offset() % 4096, 0);
        assert!(g.buf_area_offset() >= g.ring_area_offset() + 40 * g.ring_stride());
        assert!(l.total_size().is_power_of_two());
        assert!(l.total_size() >= l.used_size());
        assert_eq!(l.used_size(), g.buf_area_offset() + 4096 * 2176);
        assert_eq!(g.domain_name(), "blue");
    }

    #[test]
    fn minimum_is_a_hugepage() {
        let mut p = params();
        p.slot_count = 1;
        p.rx_rings_per_slot = 1;
        p.ring_capacity = 2;
        p.buf_count = 1;
        let l = RegionLayout::compute(&p).unwrap();
        assert_eq!(l.total_size(), 2 << 20);
    }

    #[test]
    fn errors() {
        type Mutate = Box<dyn Fn(&mut RegionParams)>;
        let cases: Vec<(Mutate, LayoutError)> = vec![
            (
                Box::new(|p| p.slot_count = 0),
                LayoutError::ZeroCount { what: "slot_count" },
            ),
            (
                Box::new(|p| p.rx_rings_per_slot = 0),
                LayoutError::ZeroCount {
                    what: "rx_rings_per_slot",
                },
            ),
            (
                Box::new(|p| p.buf_count = 0),
                LayoutError::ZeroCount { what: "buf_count" },
            ),
            (
                Box::new(|p| p.rx_rings_per_slot = 65),
                LayoutError::TooMany {
                    what: "rx_rings_per_slot",
                    value: 65,
                    max: 64,
                },
            ),
            (
                Box::new(|p| p.ring_capacity = 1000),
                LayoutError::BadRingCapacity { capacity: 1000 },
            ),
            (
                Box::new(|p| p.ring_capacity = 1),
                LayoutError::BadRingCapacity { capacity: 1 },
            ),
            (
                Box::new(|p| p.ring_capacity = 0),
                LayoutError::BadRingCapacity { capacity: 0 },
            ),
            (
                Box::new(|p| p.buf_size = 2100),
                LayoutError::BadBufSize { buf_size: 2100 },
            ),
            (
                Box::new(|p| p.buf_size = 0),
                LayoutError::BadBufSize { buf_size: 0 },
            ),
            (
                Box::new(|p| p.buf_size = 65536),
                LayoutError::BadBufSize { buf_size: 65536 },
            ),
            (
                Box::new(|p| p.domain_name = "x".repeat(32)),
                LayoutError::NameTooLong { len: 32, max: 31 },
            ),
            (
                Box::new(|p| p.domain_name = "a\0b".into()),
                LayoutError::NameHasNul,
            ),
        ];
        for (f, want) in cases {
            let mut p = params();
            f(&mut p);
            assert_eq!(RegionLayout::compute(&p), Err(want));
        }
        let mut p = params();
        p.buf_count = u32::MAX;
        p.buf_size = MAX_BUF_SIZE;
        assert!(matches!(
            RegionLayout::compute(&p),
            Err(LayoutError::TooLarge { .. })
        ));
        // Just under 64 GiB of buffers rounds up to exactly 64 GiB: accepted.
        let mut p = params();
        p.buf_size = 65472;
        p.buf_count = 1 << 20;
        assert_eq!(RegionLayout::compute(&p).unwrap().total_size(), 64 << 30);
        // Twice that is too large.
        p.buf_count = 1 << 21;
        assert!(matches!(
            RegionLayout::compute(&p),
            Err(LayoutError::TooLarge { .. })
        ));
    }

    #[test]
    fn ring_ids() {
        let r = SlotRings::for_slot(3, 4).unwrap();
        assert_eq!(r.first_rx, 15);
        assert_eq!(r.tx, 19);
        assert_eq!(r.rx_range(), 15..19);
        assert_eq!(r.rx(3), Some(18));
        assert_eq!(r.rx(4), None);
        for ring in 0..50 {
            let (slot, role) = ring_owner(ring, 4).unwrap();
            let r = SlotRings::for_slot(slot, 4).unwrap();
            match role {
                RingRole::Tx => assert_eq!(r.tx, ring),
                RingRole::Rx { worker } => assert_eq!(r.rx(worker), Some(ring)),
            }
        }
        assert_eq!(SlotRings::for_slot(u32::MAX, 4), None);
        assert_eq!(SlotRings::for_slot(0, u32::MAX), None);
    }
}
