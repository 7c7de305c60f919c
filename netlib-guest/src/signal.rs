//! SIGINT/SIGTERM → a process-wide stop flag that every [`Nf`](crate::Nf) loop checks.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::NfError;

/// Set by the signal handler; read by [`stop_requested`].
static SIGNALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_sig: libc::c_int) {
    // Async-signal-safe: a single atomic store.
    SIGNALLED.store(true, Ordering::Relaxed);
}

/// Installs a SIGINT and SIGTERM handler (sigaction, `SA_RESTART`) that sets the process-wide
/// stop flag. NF loops ([`Nf::run`](crate::Nf::run)) return at the next batch boundary after
/// the flag is set, having returned every descriptor they held.
pub fn install_handlers() -> Result<(), NfError> {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: all-zero is a valid `sigaction` (empty mask, no flags) before we fill it.
        let mut sa: libc::sigaction = unsafe { core::mem::zeroed() };
        sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        sa.sa_flags = libc::SA_RESTART;
        // SAFETY: `sa.sa_mask` is a valid sigset_t owned by us.
        unsafe { libc::sigemptyset(&mut sa.sa_mask) };
        // SAFETY: `sa` is fully initialised; the handler only performs an atomic store, which
        // is async-signal-safe; the old action is not requested (null).
        let r = unsafe { libc::sigaction(sig, &sa, core::ptr::null_mut()) };
        if r != 0 {
            return Err(NfError::Signal {
                signal: sig,
                source: std::io::Error::last_os_error(),
            });
        }
    }
    Ok(())
}

/// Whether SIGINT or SIGTERM arrived (after [`install_handlers`]) or [`request_stop`] was called.
#[inline]
#[must_use]
pub fn stop_requested() -> bool {
    SIGNALLED.load(Ordering::Relaxed)
}

/// Sets the process-wide stop flag, as a signal would.
pub fn request_stop() {
    SIGNALLED.store(true, Ordering::Relaxed);
}
