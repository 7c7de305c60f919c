//! Packet buffer geometry of a domain's region: the core lays its DPDK pool over buffers of
//! this size, the manager sizes hugepages with it.

/// Bytes per packet buffer: 128 headroom + 2048 data room.
pub const BUF_SIZE: u32 = 2176;
