//! The library's error type.

use std::time::Duration;

use netvm_shm::{DescError, RegionError, RingError};

/// Errors of attaching to a region and of running an NF.
///
/// [`NfError::Reattached`] is not a failure: it tells a burst-API user that the core restarted,
/// the NF re-attached to the new generation, and every descriptor it still holds is void.
#[derive(Debug, thiserror::Error)]
pub enum NfError {
    /// The region could not be opened, mapped or validated.
    #[error("cannot attach to region {region}")]
    Region {
        /// Path of the region file, or `<mapping>` for a caller-made mapping.
        region: String,
        /// What netvm-shm found.
        #[source]
        source: RegionError,
    },
    /// The NF name cannot appear in a slot (empty, longer than 31 bytes, or contains NUL).
    #[error("NF name {name:?} is invalid: it must be 1 to 31 bytes without NUL")]
    InvalidName {
        /// The name given.
        name: String,
    },
    /// No slot of the region is reserved for this NF name.
    #[error("no NF named {name:?} in region {region} (the core has not reserved a slot for it)")]
    NoSuchNf {
        /// The NF name.
        name: String,
        /// The region.
        region: String,
    },
    /// The slot is attached by a process that is still alive.
    #[error("NF {name:?} (slot {slot}) is already attached by live process {pid}")]
    AlreadyAttached {
        /// The NF name.
        name: String,
        /// Slot index.
        slot: u32,
        /// Process id recorded in the slot (0: a guest, whose heartbeat is still moving).
        pid: u32,
    },
    /// The core quarantined this NF's slot.
    #[error("NF {name:?} (slot {slot}) is quarantined by the core")]
    Quarantined {
        /// The NF name.
        name: String,
        /// Slot index.
        slot: u32,
    },
    /// The slot's state word holds no known state.
    #[error("NF {name:?} (slot {slot}) has unknown state {state}")]
    BadSlotState {
        /// The NF name.
        name: String,
        /// Slot index.
        slot: u32,
        /// Raw state word.
        state: u32,
    },
    /// The slot's ring ids do not follow netvm-shm's slot → ring mapping.
    #[error("NF {name:?} (slot {slot}) has inconsistent ring ids: {what}")]
    SlotRings {
        /// The NF name.
        name: String,
        /// Slot index.
        slot: u32,
        /// What did not match.
        what: String,
    },
    /// The slot kept changing state while attaching (another party is racing for it).
    #[error("NF {name:?} (slot {slot}) changed state during every attach attempt")]
    AttachRace {
        /// The NF name.
        name: String,
        /// Slot index.
        slot: u32,
    },
    /// A ring shared with the core is corrupt (the core broke the ring protocol).
    #[error("ring {ring} is corrupt")]
    Ring {
        /// Ring id.
        ring: u32,
        /// What was found.
        #[source]
        source: RingError,
    },
    /// The core restarted and the NF re-attached to the new generation. Every descriptor the
    /// caller still holds belongs to the old generation: forget it (do not transmit it).
    #[error("the core restarted (generation {old} -> {new}); the NF re-attached and dropped its old descriptors")]
    Reattached {
        /// Generation attached under before.
        old: u64,
        /// Generation attached under now.
        new: u64,
    },
    /// After a core restart the NF's slot did not come back in time.
    #[error("NF {name:?} could not re-attach within {waited:?} after the core restarted")]
    ReattachTimeout {
        /// The NF name.
        name: String,
        /// How long it tried.
        waited: Duration,
        /// The last attach error.
        #[source]
        last: Box<NfError>,
    },
    /// A stop was requested while the NF was waiting to re-attach.
    #[error("stopped while waiting to re-attach")]
    Stopped,
    /// The TX ring stayed full and the core process is gone.
    #[error("the TX ring is full and core process {pid} no longer exists")]
    CoreGone {
        /// Core process id from the region header.
        pid: u32,
    },
    /// The core process exited and removed its region file (a clean shutdown): nothing will
    /// ever re-attach this NF. (After a crash the file stays, and the NF waits for the next core
    /// to re-initialise it.)
    #[error("core process {pid} exited and removed its region file")]
    CoreExited {
        /// Core process id from the region header.
        pid: u32,
    },
    /// A descriptor from the core does not name a packet inside the buffer area.
    #[error("descriptor from the core is invalid")]
    BadDescriptor(#[from] DescError),
    /// A signal handler could not be installed.
    #[error("cannot install a handler for signal {signal}")]
    Signal {
        /// Signal number.
        signal: i32,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// In a guest: the ivshmem device or the NF's identity could not be found.
    #[error("guest discovery failed: {what}")]
    Discovery {
        /// What was looked for and not found.
        what: String,
        /// The OS error, if one.
        #[source]
        source: Option<std::io::Error>,
    },
    /// Neither `--region`/`--nf` nor a netvm kernel command line (`netvm.nf=`) says where the
    /// region is.
    #[error("no region given: pass --region and --nf (host), or run in a netvm guest (netvm.nf= on the kernel command line)")]
    NoRegion,
}
