//! Safe layer over `dpdk-sys` (the system DPDK 22.11).
//!
//! * [`Eal`]: initialises the Environment Abstraction Layer once per process from an
//!   [`EalBuilder`] (defaults: `--in-memory --file-prefix=<unique>`, no PCI scan unless a PCI
//!   device is allowed), and cleans it up when the last handle is dropped.
//! * [`Port`]: any DPDK device string (a vdev such as `net_null0` or `net_pcap0,rx_pcap=…`, or a
//!   PCI address), probed at runtime; configure, queues, start/stop, bursts, stats, link, MAC.
//! * [`Mempool`]: an mbuf pool, either ordinary or with **data buffers in caller-provided memory**
//!   (`rte_pktmbuf_pool_create_extbuf`): the mbuf headers stay in DPDK-private memory while the
//!   packet bytes live in, e.g., a trust domain's shared hugepage region.
//! * [`ExtMemRegistration`]: makes such caller-mapped memory DMA-ready: registered with DPDK
//!   with one IOVA per page (from the EAL's IOVA mode) and DMA-mapped for the ports that need
//!   it; [`Mempool::new_extbuf_registered`] then gives each mbuf the registered IOVA.
//! * [`Mbuf`]: an owning mbuf (freed on drop) and [`MbufArray`], a fixed-size burst of them.
//!
//! What it is not: the data plane. Hot-path users get raw-pointer access through
//! [`MbufArray`] and [`Mbuf::as_ptr`]; the per-packet policy lives in `netvm-core`.
//!
//! Threading: DPDK's fast-path calls (`rx_burst`/`tx_burst` on one queue) are not thread-safe
//! per queue; [`Port`] is `Sync` so that different threads can own different queues, and the
//! caller keeps each queue on one thread (`netvm-core` assigns queues to workers).
#![warn(missing_docs)]

mod eal;
mod extmem;
mod mbuf;
mod mempool;
mod port;

pub use eal::{register_thread, unregister_thread, Eal, EalBuilder, EalError, IovaMode};
pub use extmem::{DmaMapped, ExtMemError, ExtMemRegistration, IovaRun, BAD_IOVA};
pub use mbuf::{Mbuf, MbufArray};
pub use mempool::{ExtMem, Mempool, MempoolError};
pub use port::{LinkInfo, Port, PortConfig, PortError, PortInfo, PortStats};

pub use dpdk_sys as sys;

/// Reads DPDK's per-thread `rte_errno`.
pub fn rte_errno() -> i32 {
    // SAFETY: reads a thread-local integer through the shim; no preconditions.
    unsafe { sys::netvm_rte_errno() }
}

/// DPDK's message for an errno value (its own codes included).
pub fn strerror(errno: i32) -> String {
    // SAFETY: rte_strerror returns a pointer to a static or thread-local NUL-terminated string
    // for any input value; we copy it out immediately.
    unsafe {
        let p = sys::rte_strerror(errno);
        if p.is_null() {
            return format!("errno {errno}");
        }
        std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// Time-stamp counter (`rte_rdtsc`: a plain `rdtsc`, inlined here on x86-64 — read once per
/// worker round and per generated frame — and through the C shim elsewhere).
#[inline]
pub fn rdtsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `rdtsc` has no preconditions (as DPDK's `rte_rdtsc` on x86).
    unsafe {
        core::arch::x86_64::_rdtsc()
    }
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: reads the TSC through the shim; no preconditions.
    unsafe {
        sys::netvm_rte_rdtsc()
    }
}

/// The DPDK version string, e.g. `DPDK 22.11.11`.
pub fn version() -> String {
    // SAFETY: rte_version returns a pointer to a static NUL-terminated string.
    unsafe { std::ffi::CStr::from_ptr(sys::rte_version()) }
        .to_string_lossy()
        .into_owned()
}
