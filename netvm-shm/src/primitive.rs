//! Atomics indirection for the model checker.
//!
//! Normally these are `std`'s types; built with `RUSTFLAGS="--cfg loom"` they are `loom`'s, so a
//! loom model can run the ring's real enqueue/dequeue code and check its orderings (pattern taken
//! from crossbeam-utils' `primitive` module).
//!
//! Only the heap-backed ring ([`crate::heap::HeapRing`]) is built on these. The ABI structs that
//! live in shared memory ([`crate::layout`]) always use `std::sync::atomic` directly: their byte
//! layout is the cross-process contract and must not change under `cfg(loom)` (loom's atomics are
//! ordinary Rust objects with bookkeeping, not a plain 4-byte word). Both ring back ends share
//! every line of protocol code in [`crate::ring`]; they differ only in where the words live.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU32, Ordering};

#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;

/// `std::cell::UnsafeCell` with loom's closure-based access API, so the heap ring is written once.
#[cfg(not(loom))]
#[derive(Debug, Default)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    /// Wraps `value`.
    pub(crate) fn new(value: T) -> Self {
        Self(std::cell::UnsafeCell::new(value))
    }

    /// Runs `f` with a shared raw pointer to the contents.
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    /// Runs `f` with a mutable raw pointer to the contents.
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}
