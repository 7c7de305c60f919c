//! Packet buffer geometry of a domain's region: the core lays its DPDK pool over buffers of
//! this size, the manager sizes hugepages with it.
//!
//! A domain declares the largest frame it carries (`buffer_size`, its buffers' data room,
//! default [`DEFAULT_DATA_ROOM`]); each buffer is [`HEADROOM`] bytes of headroom plus that,
//! rounded up to a cache line ([`buf_size`]). Frames up to the data room travel whole from port
//! through every NF to port; a larger one arrives from the driver in several segments and is
//! dropped at RX (`multi_segment`), never truncated.

/// Headroom in front of every packet (room for encapsulation headers an NF prepends).
pub const HEADROOM: u32 = 128;
/// Data room of a domain that declares none: a standard Ethernet frame with room to spare.
pub const DEFAULT_DATA_ROOM: u32 = 2048;
/// Smallest data room a domain may declare (a whole 1518-byte frame).
pub const MIN_DATA_ROOM: u32 = 1518;
/// Largest data room a domain may declare (jumbo frames of 9,216 bytes and more).
pub const MAX_DATA_ROOM: u32 = 16384;

/// Bytes per packet buffer for a data room of `data_room` bytes: headroom + data room,
/// rounded up to 64.
#[must_use]
pub const fn buf_size(data_room: u32) -> u32 {
    (HEADROOM + data_room).div_ceil(64) * 64
}

/// Bytes per packet buffer of a domain that declares no buffer size: 2176.
pub const BUF_SIZE: u32 = buf_size(DEFAULT_DATA_ROOM);
const _: () = assert!(BUF_SIZE == 2176);
const _: () = assert!(buf_size(MAX_DATA_ROOM) <= 65472);
