//! Ring descriptors, their validation, and reject accounting.
//!
//! A [`Descriptor`] is the 16-byte record that travels through a ring. It names a packet buffer
//! by **index** into the region's buffer area (never by pointer) plus the packet's offset and
//! length inside that buffer, and carries the NF's verdict on the way back to the core.
//!
//! Descriptors written by an NF are hostile input. [`CheckedDesc::try_from_raw`] turns a raw copy
//! (already in private memory, see [`crate::ring::Consumer::dequeue_burst`]) into a validated
//! value; the core's hot path takes only `CheckedDesc`. Every rejection has a [`RejectReason`]
//! that the caller counts in a [`RejectCounters`]; the policy (drop the descriptor, count it,
//! quarantine the NF after too many) belongs to the core, but a bad descriptor is never treated as
//! "end of input" and never panics.

use crate::layout::Geometry;
use core::fmt;
use core::mem::{align_of, offset_of, size_of};

/// Raw verdict codes as stored in [`Descriptor::verdict`].
pub mod verdict_code {
    /// No verdict: used in the core → NF direction.
    pub const NONE: u8 = 0;
    /// Continue with the next service of the packet's chain.
    pub const NEXT: u8 = 1;
    /// Send to the service whose id is in `verdict_arg`.
    pub const SERVICE: u8 = 2;
    /// Transmit on the port whose id is in `verdict_arg`.
    pub const OUT: u8 = 3;
    /// Drop the packet.
    pub const DROP: u8 = 4;
}

/// One ring entry (16 bytes, `#[repr(C)]`; byte layout in `docs/shm-abi.md`).
///
/// All fields are plain integers so that any bit pattern is a valid value: a hostile peer can
/// write anything here, and a copy of it in private memory is then validated by
/// [`CheckedDesc::try_from_raw`].
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Descriptor {
    /// Index of the packet buffer in the region's buffer area (`< buf_count`).
    pub buf_idx: u32,
    /// Offset of the first packet byte from the start of the buffer.
    pub data_off: u16,
    /// Packet length in bytes; `data_off + data_len <= buf_size`, and never 0.
    pub data_len: u16,
    /// Flow hash (RSS or software), so NFs and the core need not rehash.
    pub flow_hash: u32,
    /// One of [`verdict_code`]; `NONE` in the core → NF direction.
    pub verdict: u8,
    /// Port the packet arrived on (informational for NFs).
    pub in_port: u8,
    /// Service id for `SERVICE`, port id for `OUT`, otherwise 0.
    pub verdict_arg: u16,
}

const _: () = assert!(size_of::<Descriptor>() == 16);
const _: () = assert!(align_of::<Descriptor>() == 16);
const _: () = assert!(offset_of!(Descriptor, buf_idx) == 0);
const _: () = assert!(offset_of!(Descriptor, data_off) == 4);
const _: () = assert!(offset_of!(Descriptor, data_len) == 6);
const _: () = assert!(offset_of!(Descriptor, flow_hash) == 8);
const _: () = assert!(offset_of!(Descriptor, verdict) == 12);
const _: () = assert!(offset_of!(Descriptor, in_port) == 13);
const _: () = assert!(offset_of!(Descriptor, verdict_arg) == 14);

/// The descriptor as one 16-byte vector: what crosses shared memory in a single access.
#[cfg(target_arch = "x86_64")]
type Raw16 = core::arch::x86_64::__m128i;
#[cfg(not(target_arch = "x86_64"))]
type Raw16 = [u64; 2];

const _: () = assert!(size_of::<Raw16>() == size_of::<Descriptor>());

/// Copies the descriptor at `p` out with one volatile 16-byte load.
///
/// Volatile so the compiler reads shared memory exactly once (no double fetch after
/// validation); done as one vector load because a volatile read of the struct itself is lowered
/// field by field (7 loads) — see `examples/ring_bench.rs` for the difference.
///
/// # Safety
/// `p` is valid for a 16-byte read and 16-aligned.
#[inline(always)]
pub(crate) unsafe fn load_volatile(p: *const Descriptor) -> Descriptor {
    // SAFETY: the caller guarantees `p` is readable and aligned for 16 bytes.
    let raw = unsafe { core::ptr::read_volatile(p.cast::<Raw16>()) };
    // SAFETY: same size (asserted above); every bit pattern is a valid `Descriptor` (all fields
    // are plain integers).
    unsafe { core::mem::transmute::<Raw16, Descriptor>(raw) }
}

/// Copies `d` to `p` with one volatile 16-byte store (see [`load_volatile`]).
///
/// # Safety
/// `p` is valid for a 16-byte write and 16-aligned.
#[inline(always)]
pub(crate) unsafe fn store_volatile(p: *mut Descriptor, d: Descriptor) {
    // SAFETY: same size (asserted above); every bit pattern is a valid `Raw16`.
    let raw = unsafe { core::mem::transmute::<Descriptor, Raw16>(d) };
    // SAFETY: the caller guarantees `p` is writable and aligned for 16 bytes.
    unsafe { core::ptr::write_volatile(p.cast::<Raw16>(), raw) }
}

impl Descriptor {
    /// A core → NF descriptor (verdict `NONE`) for `data_len` bytes at `data_off` in buffer
    /// `buf_idx`.
    #[must_use]
    pub const fn new(buf_idx: u32, data_off: u16, data_len: u16) -> Self {
        Self {
            buf_idx,
            data_off,
            data_len,
            flow_hash: 0,
            verdict: verdict_code::NONE,
            in_port: 0,
            verdict_arg: 0,
        }
    }

    /// Stores `v` in the `verdict` and `verdict_arg` fields.
    pub fn set_verdict(&mut self, v: Verdict) {
        let (code, arg) = v.to_raw();
        self.verdict = code;
        self.verdict_arg = arg;
    }
}

/// A decoded, known verdict (NF → core direction).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Continue with the next service of the chain.
    Next,
    /// Send to service `id` (NF → NF hand-off; the core picks the instance).
    Service(u16),
    /// Transmit on port `id`.
    Out(u16),
    /// Drop the packet.
    Drop,
}

impl Verdict {
    /// Decodes a raw `(verdict, verdict_arg)` pair; `None` for `NONE` and unknown codes.
    #[must_use]
    pub const fn from_raw(code: u8, arg: u16) -> Option<Self> {
        match code {
            verdict_code::NEXT => Some(Self::Next),
            verdict_code::SERVICE => Some(Self::Service(arg)),
            verdict_code::OUT => Some(Self::Out(arg)),
            verdict_code::DROP => Some(Self::Drop),
            _ => None,
        }
    }

    /// The raw `(verdict, verdict_arg)` pair.
    #[must_use]
    pub const fn to_raw(self) -> (u8, u16) {
        match self {
            Self::Next => (verdict_code::NEXT, 0),
            Self::Service(id) => (verdict_code::SERVICE, id),
            Self::Out(port) => (verdict_code::OUT, port),
            Self::Drop => (verdict_code::DROP, 0),
        }
    }
}

/// Why an input from a peer was rejected. Small and `#[repr(u8)]` so it indexes a counter array.
///
/// The first five reasons are produced by this crate; `NotOwner`, `PortNotAllowed` and
/// `ServiceUnknown` are reserved for checks only the core can make (buffer ownership table, chain
/// port permissions, service table), so every reject in the system is counted in one place.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// `buf_idx >= buf_count`.
    BadIndex = 0,
    /// `data_off + data_len > buf_size`.
    BadBounds = 1,
    /// `data_len == 0`.
    ZeroLength = 2,
    /// Verdict code not one of NEXT, SERVICE, OUT, DROP.
    UnknownVerdict = 3,
    /// The peer's ring index is impossible (`prod - cons > capacity`).
    RingIndexCorrupt = 4,
    /// The NF returned a buffer it does not hold (core ownership table).
    NotOwner = 5,
    /// OUT to a port the packet's chain does not allow.
    PortNotAllowed = 6,
    /// SERVICE to a service id the core does not know.
    ServiceUnknown = 7,
}

impl RejectReason {
    /// Number of reasons (length of a counter array).
    pub const COUNT: usize = 8;

    /// Every reason, in index order.
    pub const ALL: [Self; Self::COUNT] = [
        Self::BadIndex,
        Self::BadBounds,
        Self::ZeroLength,
        Self::UnknownVerdict,
        Self::RingIndexCorrupt,
        Self::NotOwner,
        Self::PortNotAllowed,
        Self::ServiceUnknown,
    ];

    /// Index into a `[_; COUNT]` array.
    #[must_use]
    pub const fn as_index(self) -> usize {
        self as usize
    }

    /// Stable snake_case name for stats output.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::BadIndex => "bad_index",
            Self::BadBounds => "bad_bounds",
            Self::ZeroLength => "zero_length",
            Self::UnknownVerdict => "unknown_verdict",
            Self::RingIndexCorrupt => "ring_index_corrupt",
            Self::NotOwner => "not_owner",
            Self::PortNotAllowed => "port_not_allowed",
            Self::ServiceUnknown => "service_unknown",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Reject counts by reason, in private memory (one per NF or per worker; not shared, not atomic).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RejectCounters {
    counts: [u64; RejectReason::COUNT],
}

impl RejectCounters {
    /// All zero.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            counts: [0; RejectReason::COUNT],
        }
    }

    /// Counts one reject.
    #[inline]
    pub fn record(&mut self, reason: RejectReason) {
        self.add(reason, 1);
    }

    /// Counts `n` rejects.
    #[inline]
    pub fn add(&mut self, reason: RejectReason, n: u64) {
        let c = &mut self.counts[reason.as_index()];
        *c = c.wrapping_add(n);
    }

    /// The count for `reason`.
    #[must_use]
    pub fn get(&self, reason: RejectReason) -> u64 {
        self.counts[reason.as_index()]
    }

    /// Sum over all reasons.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.counts.iter().fold(0u64, |a, &c| a.wrapping_add(c))
    }

    /// `(reason, name, count)` for every reason, in index order (zeros included).
    pub fn iter(&self) -> impl Iterator<Item = (RejectReason, &'static str, u64)> + '_ {
        RejectReason::ALL
            .iter()
            .map(move |&r| (r, r.name(), self.get(r)))
    }

    /// Adds every count of `other` into `self` (e.g. to sum per-worker counters).
    pub fn merge(&mut self, other: &Self) {
        for r in RejectReason::ALL {
            self.add(r, other.get(r));
        }
    }
}

/// A descriptor (or buffer reference) failed validation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DescError {
    /// The buffer index is outside the buffer area.
    #[error("buffer index {buf_idx} is out of range (region has {buf_count} buffers)")]
    BadIndex {
        /// Index found in the descriptor.
        buf_idx: u32,
        /// Buffers in the region.
        buf_count: u32,
    },
    /// The packet does not fit in its buffer.
    #[error(
        "packet at offset {data_off} with length {data_len} overruns the {buf_size}-byte buffer"
    )]
    BadBounds {
        /// Offset found in the descriptor.
        data_off: u16,
        /// Length found in the descriptor.
        data_len: u16,
        /// Bytes per buffer.
        buf_size: u32,
    },
    /// The packet is empty.
    #[error("packet length is zero")]
    ZeroLength,
    /// The verdict code is `NONE` or unknown.
    #[error("verdict code {code} is not a known NF verdict")]
    UnknownVerdict {
        /// Code found in the descriptor.
        code: u8,
    },
}

impl DescError {
    /// The counter this error is accounted under.
    #[must_use]
    pub const fn reason(&self) -> RejectReason {
        match self {
            Self::BadIndex { .. } => RejectReason::BadIndex,
            Self::BadBounds { .. } => RejectReason::BadBounds,
            Self::ZeroLength => RejectReason::ZeroLength,
            Self::UnknownVerdict { .. } => RejectReason::UnknownVerdict,
        }
    }
}

/// A validated packet reference: buffer index in range, `0 < data_len`,
/// `data_off + data_len <= buf_size`, all against one region's [`Geometry`].
///
/// Used on its own by NFs for descriptors coming from the core (whose verdict is `NONE`), and
/// inside [`CheckedDesc`] by the core.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CheckedBuf {
    buf_idx: u32,
    data_off: u16,
    data_len: u16,
}

impl CheckedBuf {
    /// Validates the buffer fields of `raw` against `geom`; the verdict fields are ignored.
    ///
    /// Zero-length packets are rejected ([`DescError::ZeroLength`]): no NF produces one
    /// legitimately, and the core's TX path and the NIC would not accept one.
    #[inline]
    pub fn try_from_raw(raw: &Descriptor, geom: &Geometry) -> Result<Self, DescError> {
        Self::check(raw.buf_idx, raw.data_off, raw.data_len, geom)
    }

    /// Validates an explicit `(buf_idx, data_off, data_len)` triple against `geom`.
    #[inline]
    pub fn check(
        buf_idx: u32,
        data_off: u16,
        data_len: u16,
        geom: &Geometry,
    ) -> Result<Self, DescError> {
        if buf_idx >= geom.buf_count() {
            return Err(DescError::BadIndex {
                buf_idx,
                buf_count: geom.buf_count(),
            });
        }
        if data_len == 0 {
            return Err(DescError::ZeroLength);
        }
        // Both are u16, so the sum cannot overflow u32.
        if u32::from(data_off) + u32::from(data_len) > geom.buf_size() {
            return Err(DescError::BadBounds {
                data_off,
                data_len,
                buf_size: geom.buf_size(),
            });
        }
        Ok(Self {
            buf_idx,
            data_off,
            data_len,
        })
    }

    /// Buffer index (`< buf_count`).
    #[must_use]
    pub const fn buf_idx(&self) -> u32 {
        self.buf_idx
    }

    /// Offset of the packet in its buffer.
    #[must_use]
    pub const fn data_off(&self) -> u16 {
        self.data_off
    }

    /// Packet length (`> 0`).
    #[must_use]
    pub const fn data_len(&self) -> u16 {
        self.data_len
    }
}

/// A validated NF → core descriptor: a [`CheckedBuf`] plus a known [`Verdict`].
///
/// The core still checks what only it can know (ownership of the buffer, port permissions,
/// service ids) and counts those rejects under the reserved [`RejectReason`]s.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CheckedDesc {
    buf: CheckedBuf,
    verdict: Verdict,
    flow_hash: u32,
    in_port: u8,
}

impl CheckedDesc {
    /// Validates `raw` (a private copy; see the module docs) against `geom`.
    ///
    /// Checks, in order: buffer index, zero length, bounds, verdict (`NONE` is rejected:
    /// an NF must say what happens to every packet it returns).
    #[inline]
    pub fn try_from_raw(raw: Descriptor, geom: &Geometry) -> Result<Self, DescError> {
        let buf = CheckedBuf::try_from_raw(&raw, geom)?;
        let Some(verdict) = Verdict::from_raw(raw.verdict, raw.verdict_arg) else {
            return Err(DescError::UnknownVerdict { code: raw.verdict });
        };
        Ok(Self {
            buf,
            verdict,
            flow_hash: raw.flow_hash,
            in_port: raw.in_port,
        })
    }

    /// The validated buffer reference.
    #[must_use]
    pub const fn buf(&self) -> CheckedBuf {
        self.buf
    }

    /// Buffer index (`< buf_count`).
    #[must_use]
    pub const fn buf_idx(&self) -> u32 {
        self.buf.buf_idx
    }

    /// Offset of the packet in its buffer.
    #[must_use]
    pub const fn data_off(&self) -> u16 {
        self.buf.data_off
    }

    /// Packet length (`> 0`).
    #[must_use]
    pub const fn data_len(&self) -> u16 {
        self.buf.data_len
    }

    /// The NF's verdict.
    #[must_use]
    pub const fn verdict(&self) -> Verdict {
        self.verdict
    }

    /// Flow hash as returned by the NF (untrusted: use only as a hint).
    #[must_use]
    pub const fn flow_hash(&self) -> u32 {
        self.flow_hash
    }

    /// Input port as returned by the NF (untrusted: the core keeps its own copy).
    #[must_use]
    pub const fn in_port(&self) -> u8 {
        self.in_port
    }
}
