//! The NF side of an NF slot: finding it by name, claiming it, and the words the NF writes.
//!
//! netvm-shm's `SlotRef::attach` only claims a RESERVED slot and writes the pid and generation
//! after publishing ATTACHED. The NF contract also re-attaches DETACHED slots, takes over slots
//! left ATTACHED by a dead process, and publishes ATTACHED only after the pid and generation
//! are written. Until netvm-shm grows that API, [`SlotHandle`] reaches the NF-written words
//! itself, with the same discipline as netvm-shm: the slot is located through the validated
//! geometry, and every field is accessed only as an atomic through `addr_of!`, never through a
//! reference to the slot.

use core::ptr::{addr_of, NonNull};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use netvm_shm::layout::slot_state;
use netvm_shm::{NfCounter, NfSlot, Region};

use crate::error::NfError;

/// Longest NF name (the slot's name field is 32 bytes, NUL padded).
pub const MAX_NAME_LEN: usize = 31;

/// The NF-side handle to one slot: valid for as long as the region it holds is mapped.
pub(crate) struct SlotHandle {
    slot: NonNull<NfSlot>,
    index: u32,
    /// Keeps the mapping alive.
    _region: Region,
}

// SAFETY: `slot` points into the process-wide mapping that `_region` keeps alive, and every
// access below is an atomic operation on a field reached with `addr_of!`, valid from any thread.
unsafe impl Send for SlotHandle {}

macro_rules! word {
    ($name:ident, $field:ident, $ty:ty) => {
        #[inline(always)]
        fn $name(&self) -> &$ty {
            // SAFETY: `slot` is a 64-aligned NfSlot inside the live mapping (constructed in
            // `new` from the validated geometry); the field is borrowed only as an atomic, and
            // any bit pattern is a valid atomic integer.
            unsafe { &*addr_of!((*self.slot.as_ptr()).$field) }
        }
    };
}

impl SlotHandle {
    /// The handle of slot `index`, or `None` if it is out of range.
    pub(crate) fn new(region: &Region, index: u32) -> Option<Self> {
        let g = region.geometry();
        if index >= g.slot_count() {
            return None;
        }
        let off = g.slot_table_offset() + index as usize * g.slot_size();
        // SAFETY: netvm-shm validated at attach that the slot table (`slot_count * slot_size`
        // bytes at `slot_table_offset`, 64-aligned) lies inside the mapping; `index <
        // slot_count`, so the slot is inside it too.
        let p = unsafe { region.as_ptr().as_ptr().add(off) }.cast::<NfSlot>();
        Some(Self {
            slot: NonNull::new(p)?,
            index,
            _region: region.clone(),
        })
    }

    word!(state_w, state, AtomicU32);
    word!(pid_w, nf_pid, AtomicU32);
    word!(gen_w, attach_generation, AtomicU64);
    word!(heartbeat_w, heartbeat, AtomicU64);

    #[inline(always)]
    fn counter_w(&self, c: NfCounter) -> &AtomicU64 {
        // SAFETY: as in `word!`; `as_index() < NF_COUNTER_COUNT`, the array length.
        unsafe { &*addr_of!((*self.slot.as_ptr()).counters[c.as_index()]) }
    }

    pub(crate) fn index(&self) -> u32 {
        self.index
    }

    /// State word (Acquire: pairs with the Release of whoever stored it).
    pub(crate) fn state(&self) -> u32 {
        self.state_w().load(Ordering::Acquire)
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid_w().load(Ordering::Relaxed)
    }

    pub(crate) fn heartbeat(&self) -> u64 {
        self.heartbeat_w().load(Ordering::Relaxed)
    }

    /// Adds one to the heartbeat. The NF is the only writer, so a relaxed load and store (no
    /// locked read-modify-write) suffice.
    #[inline]
    pub(crate) fn bump_heartbeat(&self) {
        let w = self.heartbeat_w();
        w.store(w.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
    }

    /// Adds `n` to an NF-written counter (single writer: relaxed load and store).
    #[inline]
    pub(crate) fn add(&self, c: NfCounter, n: u64) {
        if n != 0 {
            let w = self.counter_w(c);
            w.store(w.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
        }
    }

    /// Writes pid and generation, then moves the state from `from` to ATTACHED (AcqRel: the
    /// Release publishes pid and generation to the core's Acquire load of the state, as the NF
    /// contract requires; the Acquire pairs with the core's Release in `reserve`). Returns the
    /// state found if it was not `from`.
    fn publish_attached(&self, from: u32, pid: u32, generation: u64) -> Result<(), u32> {
        self.pid_w().store(pid, Ordering::Relaxed);
        self.gen_w().store(generation, Ordering::Relaxed);
        self.state_w()
            .compare_exchange(
                from,
                slot_state::ATTACHED,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .map(|_| ())
    }

    /// Takes over a slot left ATTACHED by dead process `dead_pid`: claims the pid word first
    /// (so two NFs racing for the same dead slot cannot both win), then writes the generation
    /// and re-publishes ATTACHED with Release.
    fn take_over(&self, dead_pid: u32, pid: u32, generation: u64) -> Result<(), u32> {
        if dead_pid != 0 {
            self.pid_w()
                .compare_exchange(dead_pid, pid, Ordering::AcqRel, Ordering::Acquire)
                .map_err(|_| slot_state::ATTACHED)?;
        } else {
            self.pid_w().store(pid, Ordering::Relaxed);
        }
        self.gen_w().store(generation, Ordering::Relaxed);
        self.state_w()
            .compare_exchange(
                slot_state::ATTACHED,
                slot_state::ATTACHED,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .map(|_| ())
    }

    /// Undoes a claim made under a generation that turned out to be stale: ATTACHED back to
    /// `prev` (only if still ATTACHED).
    fn unclaim(&self, prev: u32) {
        let _ = self.state_w().compare_exchange(
            slot_state::ATTACHED,
            prev,
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
    }

    /// ATTACHED → DETACHED (Release: our last counter stores are visible to the core).
    pub(crate) fn detach(&self) -> bool {
        self.state_w()
            .compare_exchange(
                slot_state::ATTACHED,
                slot_state::DETACHED,
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok()
    }
}

/// Whether `name` can be stored in a slot.
pub(crate) fn check_name(name: &str) -> Result<(), NfError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN || name.as_bytes().contains(&0) {
        return Err(NfError::InvalidName {
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// How the attaching NF identifies itself.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Claimant {
    /// Pid written to the slot (0 in a guest).
    pub pid: u32,
    /// How long to watch the heartbeat of a slot ATTACHED with pid 0 before declaring it dead.
    pub heartbeat_window: Duration,
}

/// Finds the slot named `name` in `region` and claims it (the NF contract, rule 2).
pub(crate) fn claim(
    region: &Region,
    region_name: &str,
    name: &str,
    who: Claimant,
) -> Result<SlotHandle, NfError> {
    check_name(name)?;
    let generation = region.generation();
    const ATTEMPTS: u32 = 8;
    let mut last_slot = 0;
    for _ in 0..ATTEMPTS {
        let Some(index) = region.find_slot(name) else {
            return Err(NfError::NoSuchNf {
                name: name.to_owned(),
                region: region_name.to_owned(),
            });
        };
        last_slot = index;
        let slot = SlotHandle::new(region, index).ok_or_else(|| NfError::NoSuchNf {
            name: name.to_owned(),
            region: region_name.to_owned(),
        })?;
        let state = slot.state();
        let claimed = match state {
            slot_state::RESERVED | slot_state::DETACHED => {
                slot.publish_attached(state, who.pid, generation)
            }
            slot_state::ATTACHED => {
                let pid = slot.pid();
                let dead = if pid != 0 {
                    pid != std::process::id() && !netvm_shm::proc::pid_alive(pid)
                } else {
                    heartbeat_stopped(&slot, who.heartbeat_window)
                };
                if !dead {
                    return Err(NfError::AlreadyAttached {
                        name: name.to_owned(),
                        slot: index,
                        pid,
                    });
                }
                slot.take_over(pid, who.pid, generation)
            }
            slot_state::QUARANTINED => {
                return Err(NfError::Quarantined {
                    name: name.to_owned(),
                    slot: index,
                })
            }
            slot_state::FREE => continue,
            other => {
                return Err(NfError::BadSlotState {
                    name: name.to_owned(),
                    slot: index,
                    state: other,
                })
            }
        };
        if claimed.is_err() {
            // The state changed under us (the core re-reserved, or another NF won): look again.
            continue;
        }
        // The core may have re-initialised the region between our mapping it and claiming the
        // slot; then the generation we wrote is stale. Undo and let the caller re-map.
        if region.header().generation() != generation {
            if state != slot_state::ATTACHED {
                slot.unclaim(state);
            }
            return Err(NfError::Region {
                region: region_name.to_owned(),
                source: netvm_shm::RegionError::NotInitialised,
            });
        }
        return Ok(slot);
    }
    Err(NfError::AttachRace {
        name: name.to_owned(),
        slot: last_slot,
    })
}

/// For a slot ATTACHED by a guest (pid 0, no way to ask the kernel): true if its heartbeat does
/// not move within `window`. A live NF bumps it at least every sleep timeout.
fn heartbeat_stopped(slot: &SlotHandle, window: Duration) -> bool {
    let before = slot.heartbeat();
    let end = Instant::now() + window;
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(5).min(window));
        if slot.heartbeat() != before {
            return false;
        }
    }
    slot.heartbeat() == before
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("fw1").is_ok());
        assert!(check_name(&"x".repeat(31)).is_ok());
        assert!(check_name("").is_err());
        assert!(check_name(&"x".repeat(32)).is_err());
        assert!(check_name("a\0b").is_err());
    }
}
