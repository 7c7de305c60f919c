//! The NF side of an NF slot: finding it by name, claiming it, and the words the NF writes.
//!
//! The slot lives in the NF's own control region (only this NF and the core map it). Every
//! access goes through netvm-shm's typed [`SlotRef`](netvm_shm::SlotRef) (atomics reached with
//! `addr_of!`, never a reference to the slot); this module adds the NF contract on top:
//! re-attaching DETACHED slots, taking over slots left ATTACHED by a dead process, and
//! publishing ATTACHED only after the pid and generation are written.

use std::time::{Duration, Instant};

use netvm_shm::layout::slot_state;
use netvm_shm::{NfCounter, Region, SlotRef};

use crate::error::NfError;

/// Longest NF name (the slot's name field is 32 bytes, NUL padded).
pub const MAX_NAME_LEN: usize = 31;

/// The NF-side handle to one slot: a region handle (which keeps the mapping alive) and a slot
/// index checked against the region's validated geometry.
pub(crate) struct SlotHandle {
    region: Region,
    index: u32,
}

impl SlotHandle {
    /// The handle of slot `index`, or `None` if it is out of range.
    pub(crate) fn new(region: &Region, index: u32) -> Option<Self> {
        region.slot(index).ok()?;
        Some(Self {
            region: region.clone(),
            index,
        })
    }

    #[inline(always)]
    fn with<R>(&self, f: impl FnOnce(&SlotRef<'_>) -> R) -> Option<R> {
        // `index` was checked against this region's geometry in `new`, so this is `Some`.
        self.region.slot(self.index).ok().map(|s| f(&s))
    }

    pub(crate) fn index(&self) -> u32 {
        self.index
    }

    /// State word (Acquire: pairs with the Release of whoever stored it).
    pub(crate) fn state(&self) -> u32 {
        self.with(|s| s.state_raw()).unwrap_or(u32::MAX)
    }

    pub(crate) fn pid(&self) -> u32 {
        self.with(|s| s.nf_pid()).unwrap_or(0)
    }

    pub(crate) fn heartbeat(&self) -> u64 {
        self.with(|s| s.heartbeat()).unwrap_or(0)
    }

    /// Adds one to the heartbeat (single writer: no locked read-modify-write).
    #[inline]
    pub(crate) fn bump_heartbeat(&self) {
        self.with(|s| s.bump_heartbeat());
    }

    /// Adds `n` to an NF-written counter.
    #[inline]
    pub(crate) fn add(&self, c: NfCounter, n: u64) {
        if n != 0 {
            self.with(|s| s.add_counter(c, n));
        }
    }

    fn publish_attached(&self, from: u32, pid: u32, generation: u64) -> Result<(), u32> {
        self.with(|s| s.claim(from, pid, generation))
            .unwrap_or(Err(u32::MAX))
    }

    fn take_over(&self, dead_pid: u32, pid: u32, generation: u64) -> Result<(), u32> {
        self.with(|s| s.take_over(dead_pid, pid, generation))
            .unwrap_or(Err(u32::MAX))
    }

    fn unclaim(&self, prev: u32) {
        self.with(|s| s.unclaim(prev));
    }

    /// ATTACHED → DETACHED (Release: our last counter stores are visible to the core).
    pub(crate) fn detach(&self) -> bool {
        self.with(|s| s.detach().is_ok()).unwrap_or(false)
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
