//! The C API: `include/netlib.h` documents every function here; keep the two in step.
//!
//! Rules at the boundary:
//! * no panic crosses it: every entry point runs its body under `catch_unwind` and turns a
//!   panic into an error return;
//! * errors are return codes; the message is kept per thread ([`netlib_last_error`]);
//! * a handle is used by one thread at a time. A second call on a handle while one is running
//!   (from another thread, or from inside a `netlib_run` callback) returns `NETLIB_EBUSY`
//!   instead of aliasing it; only `netlib_stop` and `netlib_stop_requested` may be called
//!   concurrently (they touch nothing but atomic flags);
//! * C sees packet bytes through raw pointers into the shared buffers; the descriptors stay in
//!   Rust, in a table indexed by an opaque token, so a C NF cannot return a buffer it does not
//!   hold, return one twice, or move a packet outside its buffer.

use core::cell::{RefCell, UnsafeCell};
use core::ffi::{c_char, c_int, c_void, CStr};
use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use netvm_shm::{CheckedBuf, Descriptor, Verdict};

use crate::error::NfError;
use crate::nf::{Nf, NfConfig, NfStats};
use crate::packet::Packet;

/// Success.
pub const NETLIB_OK: c_int = 0;
/// Failure; see `netlib_last_error`.
pub const NETLIB_ERR: c_int = -1;
/// The core restarted; the NF re-attached and every packet it held is void.
pub const NETLIB_RESTARTED: c_int = -2;
/// Another call on the same handle is in progress.
pub const NETLIB_EBUSY: c_int = -3;

/// `netlib_pkt` (see the header).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NetlibPkt {
    /// First packet byte (NULL for an invalid descriptor).
    pub data: *mut u8,
    /// Start of the packet's buffer.
    pub buf: *mut u8,
    /// Opaque; identifies the descriptor in the handle's table.
    pub token: u64,
    /// Packet length.
    pub len: u32,
    /// Buffer size.
    pub buf_len: u32,
    /// Flow hash from the core.
    pub flow_hash: u32,
    /// Input port.
    pub in_port: u16,
    /// Verdict code.
    pub verdict: u16,
    /// Verdict argument.
    pub verdict_arg: u16,
    /// Zero.
    pub reserved: u16,
}

const _: () = assert!(core::mem::size_of::<NetlibPkt>() == 48);
const _: () = assert!(core::mem::offset_of!(NetlibPkt, token) == 16);
const _: () = assert!(core::mem::offset_of!(NetlibPkt, len) == 24);
const _: () = assert!(core::mem::offset_of!(NetlibPkt, in_port) == 36);
const _: () = assert!(core::mem::offset_of!(NetlibPkt, verdict_arg) == 40);

/// `netlib_stats` (see the header): [`NfStats`] plus C-side counters.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct NetlibStats {
    /// Packets received.
    pub rx_pkts: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets returned.
    pub tx_pkts: u64,
    /// Bytes returned.
    pub tx_bytes: u64,
    /// Returned with NEXT.
    pub next: u64,
    /// Returned with SERVICE.
    pub service: u64,
    /// Returned with OUT.
    pub out: u64,
    /// Returned with DROP.
    pub dropped: u64,
    /// Returned without a valid verdict (made DROP).
    pub no_verdict: u64,
    /// Invalid descriptors from the core (made DROP).
    pub bad_desc: u64,
    /// Packets whose data/len the NF moved outside the buffer (made DROP, original bounds).
    pub bad_adjust: u64,
    /// `netlib_tx_burst` entries with a stale, unknown or already returned token (ignored).
    pub bad_token: u64,
    /// Bursts that waited for room on the TX ring.
    pub tx_ring_full: u64,
    /// Sleeps on the doorbells.
    pub sleeps: u64,
    /// Re-attaches after core restarts.
    pub reattaches: u64,
    /// Descriptors held at a core restart (void).
    pub discarded: u64,
    /// Descriptors held now.
    pub held: u64,
}

/// Packet callback of `netlib_run`.
pub type NetlibCallback = unsafe extern "C" fn(
    ctx: *mut c_void,
    data: *mut u8,
    len: u32,
    in_port: u16,
    verdict_arg: *mut u16,
) -> c_int;

struct CState {
    nf: Nf,
    /// Descriptors handed to C, by token slot.
    held: Vec<Option<Descriptor>>,
    free: Vec<u32>,
    /// Bumped at every core restart; part of each token.
    epoch: u32,
    rx: Vec<Descriptor>,
    tx: Vec<Descriptor>,
    bad_adjust: u64,
    bad_token: u64,
    /// Unknown verdict codes returned by `netlib_run` callbacks (made DROP).
    bad_verdict: u64,
}

/// `netlib_nf`: the opaque handle.
pub struct NetlibNf {
    stop: Arc<AtomicBool>,
    busy: AtomicBool,
    state: UnsafeCell<CState>,
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_error(msg: &str) {
    let c = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

/// The error and its sources on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

fn guard<R>(err: R, f: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => {
            set_error("internal error (panic) in netlib");
            err
        }
    }
}

/// Runs `f` on the handle's state, refusing re-entrant or concurrent use.
///
/// # Safety
/// `nf` is NULL or a handle from `netlib_attach` not yet passed to `netlib_detach`.
unsafe fn with_state(nf: *const NetlibNf, f: impl FnOnce(&mut CState) -> c_int) -> c_int {
    if nf.is_null() {
        set_error("netlib handle is NULL");
        return NETLIB_ERR;
    }
    // SAFETY: the caller passes a live handle; only shared access to the handle itself.
    let h = unsafe { &*nf };
    if h.busy.swap(true, Ordering::Acquire) {
        set_error("another netlib call on this handle is in progress");
        return NETLIB_EBUSY;
    }
    // SAFETY: `busy` was false and is now ours (the Acquire swap pairs with the Release store
    // below), so no other `&mut CState` exists until we clear it.
    let st = unsafe { &mut *h.state.get() };
    let r = guard(NETLIB_ERR, || f(st));
    h.busy.store(false, Ordering::Release);
    r
}

fn env_or(arg: *const c_char, var: &str) -> Result<Vec<u8>, String> {
    if arg.is_null() {
        std::env::var_os(var)
            .map(|v| v.as_bytes().to_vec())
            .ok_or_else(|| format!("argument is NULL and {var} is not set"))
    } else {
        // SAFETY: the caller passes a NUL-terminated string (header contract).
        Ok(unsafe { CStr::from_ptr(arg) }.to_bytes().to_vec())
    }
}

fn restarted(st: &mut CState) -> c_int {
    st.epoch = st.epoch.wrapping_add(1);
    st.held.iter_mut().for_each(|h| *h = None);
    st.free.clear();
    let cap = u32::try_from(st.held.len()).unwrap_or(u32::MAX);
    st.free.extend((0..cap).rev());
    NETLIB_RESTARTED
}

fn fail(e: &NfError) -> c_int {
    set_error(&chain(e));
    NETLIB_ERR
}

/// Attaches to a region as an NF. See `netlib.h`.
///
/// # Safety
/// `region_path` and `nf_name` are NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn netlib_attach(
    region_path: *const c_char,
    nf_name: *const c_char,
) -> *mut NetlibNf {
    guard(core::ptr::null_mut(), || {
        let path = match env_or(region_path, "NETVM_REGION") {
            Ok(p) => PathBuf::from(OsStr::from_bytes(&p)),
            Err(e) => {
                set_error(&format!("region path: {e}"));
                return core::ptr::null_mut();
            }
        };
        let name = match env_or(nf_name, "NETVM_NF").map(String::from_utf8) {
            Ok(Ok(n)) => n,
            Ok(Err(_)) => {
                set_error("NF name is not UTF-8");
                return core::ptr::null_mut();
            }
            Err(e) => {
                set_error(&format!("NF name: {e}"));
                return core::ptr::null_mut();
            }
        };
        let truthy = |v: std::ffi::OsString| !matches!(v.to_str(), Some("" | "0" | "false" | "no"));
        let mut cfg = if std::env::var_os("NETVM_GUEST").is_some_and(truthy) {
            NfConfig::guest()
        } else {
            NfConfig::host()
        };
        match std::env::var_os("NETVM_WAIT")
            .as_deref()
            .and_then(OsStr::to_str)
        {
            Some("poll") => cfg.wait_mode = NfConfig::guest().wait_mode,
            Some("futex") => cfg.wait_mode = netvm_shm::WaitMode::Futex,
            _ => {}
        }
        let nf = match Nf::attach_file_with(&path, &name, cfg) {
            Ok(nf) => nf,
            Err(e) => {
                set_error(&chain(&e));
                return core::ptr::null_mut();
            }
        };
        // At most 64 rings of at most 2^20 entries (netvm-shm limits): fits a u32.
        let cap = u32::try_from(nf.ring_ids().0.len())
            .unwrap_or(u32::MAX)
            .saturating_mul(nf.geometry().ring_capacity());
        let stop = nf.stop_handle();
        let st = CState {
            nf,
            held: vec![None; cap as usize],
            free: (0..cap).rev().collect(),
            epoch: 0,
            rx: vec![Descriptor::default(); 256],
            tx: Vec::with_capacity(256),
            bad_adjust: 0,
            bad_token: 0,
            bad_verdict: 0,
        };
        Box::into_raw(Box::new(NetlibNf {
            stop,
            busy: AtomicBool::new(false),
            state: UnsafeCell::new(st),
        }))
    })
}

/// The last error message of this thread. See `netlib.h`.
#[no_mangle]
pub extern "C" fn netlib_last_error() -> *const c_char {
    guard(c"internal error".as_ptr(), || {
        LAST_ERROR.with(|e| e.borrow().as_ptr())
    })
}

/// Installs SIGINT/SIGTERM handlers that stop every NF loop of the process. See `netlib.h`.
#[no_mangle]
pub extern "C" fn netlib_install_signal_handlers() -> c_int {
    guard(NETLIB_ERR, || match crate::signal::install_handlers() {
        Ok(()) => NETLIB_OK,
        Err(e) => fail(&e),
    })
}

/// Receives up to `max` packets. See `netlib.h`.
///
/// # Safety
/// `nf` is a live handle; `pkts` points to `max` writable `netlib_pkt`s (or `max` is 0).
#[no_mangle]
pub unsafe extern "C" fn netlib_rx_burst(
    nf: *mut NetlibNf,
    pkts: *mut NetlibPkt,
    max: u32,
) -> c_int {
    let body = |st: &mut CState| {
        if max == 0 {
            return 0;
        }
        if pkts.is_null() {
            set_error("pkts is NULL");
            return NETLIB_ERR;
        }
        let want = (max as usize).min(st.rx.len()).min(st.free.len());
        if want == 0 {
            set_error("every descriptor of this NF is held; return some with netlib_tx_burst");
            return NETLIB_ERR;
        }
        let n = match st.nf.rx_burst(&mut st.rx[..want]) {
            Ok(n) => n,
            Err(NfError::Reattached { .. }) => return restarted(st),
            Err(e) => return fail(&e),
        };
        for i in 0..n {
            let d = st.rx[i];
            let slot = st.free.pop().unwrap_or(0);
            st.held[slot as usize] = Some(d);
            let token = (u64::from(st.epoch) << 32) | u64::from(slot);
            let mut p = NetlibPkt {
                data: core::ptr::null_mut(),
                buf: core::ptr::null_mut(),
                token,
                len: 0,
                buf_len: 0,
                flow_hash: d.flow_hash,
                in_port: u16::from(d.in_port),
                verdict: u16::from(netvm_shm::verdict_code::NONE),
                verdict_arg: 0,
                reserved: 0,
            };
            let checked = CheckedBuf::try_from_raw(&d, st.nf.geometry()).is_ok();
            match st.nf.buffer_ptr(d.buf_idx) {
                Some((base, size)) if checked => {
                    p.buf = base.as_ptr();
                    // SAFETY: the descriptor was checked: `data_off + data_len <= size`.
                    p.data = unsafe { base.as_ptr().add(usize::from(d.data_off)) };
                    p.len = u32::from(d.data_len);
                    p.buf_len = u32::try_from(size).unwrap_or(0);
                }
                _ => p.verdict = u16::from(netvm_shm::verdict_code::DROP),
            }
            // SAFETY: `i < n <= max`, and the caller provides `max` writable entries.
            unsafe { pkts.add(i).write(p) };
        }
        c_int::try_from(n).unwrap_or(c_int::MAX)
    };
    // SAFETY: forwarded from this function's contract.
    unsafe { with_state(nf, body) }
}

/// Validates a verdict code and argument. See `netlib.h`.
///
/// # Safety
/// `pkt` is NULL or points to a writable `netlib_pkt`.
#[no_mangle]
pub unsafe extern "C" fn netlib_set_verdict(pkt: *mut NetlibPkt, verdict: u16, arg: u16) -> c_int {
    guard(NETLIB_ERR, || {
        if pkt.is_null() {
            set_error("pkt is NULL");
            return NETLIB_ERR;
        }
        let known = u8::try_from(verdict)
            .ok()
            .and_then(|c| Verdict::from_raw(c, arg))
            .is_some();
        if !known {
            set_error(&format!(
                "verdict code {verdict} is not NEXT, SERVICE, OUT or DROP"
            ));
            return NETLIB_ERR;
        }
        // SAFETY: non-null, and the caller provides a writable netlib_pkt.
        unsafe {
            (*pkt).verdict = verdict;
            (*pkt).verdict_arg = arg;
        }
        NETLIB_OK
    })
}

/// Applies the C side's changes to the held descriptor `d`.
fn apply(st: &mut CState, mut d: Descriptor, p: &NetlibPkt) -> Descriptor {
    let valid = CheckedBuf::try_from_raw(&d, st.nf.geometry()).is_ok();
    match st.nf.buffer_ptr(d.buf_idx) {
        Some((base, size)) if valid => {
            let off = (p.data as usize).wrapping_sub(base.as_ptr() as usize);
            let len = p.len as usize;
            let fits = !p.data.is_null() && len > 0 && off <= size && len <= size - off;
            match (u16::try_from(off), u16::try_from(len)) {
                (Ok(o), Ok(l)) if fits => {
                    d.data_off = o;
                    d.data_len = l;
                    match u8::try_from(p.verdict)
                        .ok()
                        .and_then(|c| Verdict::from_raw(c, p.verdict_arg))
                    {
                        Some(v) => d.set_verdict(v),
                        None => {
                            // NONE (or unknown): tx_burst makes it DROP and counts it.
                            d.verdict = netvm_shm::verdict_code::NONE;
                        }
                    }
                }
                _ => {
                    st.bad_adjust += 1;
                    d.set_verdict(Verdict::Drop);
                }
            }
        }
        _ => d.set_verdict(Verdict::Drop),
    }
    d
}

/// Returns packets to the core. See `netlib.h`.
///
/// # Safety
/// `nf` is a live handle; `pkts` points to `n` readable `netlib_pkt`s (or `n` is 0).
#[no_mangle]
pub unsafe extern "C" fn netlib_tx_burst(
    nf: *mut NetlibNf,
    pkts: *const NetlibPkt,
    n: u32,
) -> c_int {
    let body = |st: &mut CState| {
        if n == 0 {
            return NETLIB_OK;
        }
        if pkts.is_null() {
            set_error("pkts is NULL");
            return NETLIB_ERR;
        }
        st.tx.clear();
        for i in 0..n as usize {
            // SAFETY: `i < n`, and the caller provides `n` readable entries.
            let p = unsafe { pkts.add(i).read() };
            let epoch = (p.token >> 32) as u32;
            let slot = (p.token & 0xffff_ffff) as u32;
            let held = if epoch == st.epoch {
                st.held.get_mut(slot as usize).and_then(Option::take)
            } else {
                None
            };
            let Some(d) = held else {
                st.bad_token += 1;
                continue;
            };
            st.free.push(slot);
            let d = apply(st, d, &p);
            st.tx.push(d);
        }
        let descs = core::mem::take(&mut st.tx);
        let r = st.nf.tx_burst(&descs);
        st.tx = descs;
        match r {
            Ok(()) => NETLIB_OK,
            Err(NfError::Reattached { .. }) => restarted(st),
            Err(e) => fail(&e),
        }
    };
    // SAFETY: forwarded from this function's contract.
    unsafe { with_state(nf, body) }
}

/// One adaptive-polling step. See `netlib.h`.
///
/// # Safety
/// `nf` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn netlib_idle(nf: *mut NetlibNf) -> c_int {
    let body = |st: &mut CState| match st.nf.idle() {
        Ok(()) => NETLIB_OK,
        Err(NfError::Reattached { .. }) => restarted(st),
        Err(e) => fail(&e),
    };
    // SAFETY: forwarded from this function's contract.
    unsafe { with_state(nf, body) }
}

/// Runs the per-packet callback until stopped. See `netlib.h`.
///
/// # Safety
/// `nf` is a live handle; `cb` is a valid function that follows the header's contract (it
/// touches at most `len` bytes at `data`, writes `*verdict_arg` only, does not unwind or
/// longjmp out); `ctx` is whatever `cb` expects.
#[no_mangle]
pub unsafe extern "C" fn netlib_run(
    nf: *mut NetlibNf,
    cb: Option<NetlibCallback>,
    ctx: *mut c_void,
) -> c_int {
    let body = |st: &mut CState| {
        let Some(cb) = cb else {
            set_error("callback is NULL");
            return NETLIB_ERR;
        };
        if st.held.iter().any(Option::is_some) {
            set_error("return the packets held from netlib_rx_burst before netlib_run");
            return NETLIB_ERR;
        }
        let mut bad = 0u64;
        let r = st.nf.run(|p: &mut Packet<'_>| {
            let mut arg = 0u16;
            let len = u32::try_from(p.len()).unwrap_or(0);
            let in_port = p.in_port();
            let data = p.data_mut().as_mut_ptr();
            // SAFETY: `data .. data + len` is this packet, in place, exclusively ours for
            // the call (the `Packet` borrow); `arg` is a valid u16. The callback's
            // obligations are this function's contract.
            let code = unsafe { cb(ctx, data, len, in_port, &mut arg) };
            match u8::try_from(code)
                .ok()
                .and_then(|c| Verdict::from_raw(c, arg))
            {
                Some(v) => v,
                None => {
                    bad += 1;
                    Verdict::Drop
                }
            }
        });
        st.bad_verdict += bad;
        match r {
            Ok(_) => NETLIB_OK,
            Err(e) => fail(&e),
        }
    };
    // SAFETY: forwarded from this function's contract.
    unsafe { with_state(nf, body) }
}

/// Asks `netlib_run` to return (thread-safe). See `netlib.h`.
///
/// # Safety
/// `nf` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn netlib_stop(nf: *mut NetlibNf) {
    guard((), || {
        if !nf.is_null() {
            // SAFETY: a live handle; only its `stop` field (an Arc'd atomic) is touched, which
            // is sound while another thread works on `state` (behind UnsafeCell).
            unsafe { (*nf).stop.store(true, Ordering::Relaxed) };
        }
    });
}

/// Whether a stop was requested (by `netlib_stop` or a signal). See `netlib.h`.
///
/// # Safety
/// `nf` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn netlib_stop_requested(nf: *const NetlibNf) -> c_int {
    guard(1, || {
        // SAFETY: as in `netlib_stop`: only the atomic flag is read.
        let own = !nf.is_null() && unsafe { (*nf).stop.load(Ordering::Relaxed) };
        c_int::from(own || crate::signal::stop_requested())
    })
}

fn to_c(s: &NfStats, st: &CState) -> NetlibStats {
    NetlibStats {
        rx_pkts: s.rx_pkts,
        rx_bytes: s.rx_bytes,
        tx_pkts: s.tx_pkts,
        tx_bytes: s.tx_bytes,
        next: s.next,
        service: s.service,
        out: s.out,
        dropped: s.dropped,
        no_verdict: s.no_verdict + st.bad_verdict,
        bad_desc: s.bad_desc,
        bad_adjust: st.bad_adjust,
        bad_token: st.bad_token,
        tx_ring_full: s.tx_ring_full,
        sleeps: s.sleeps,
        reattaches: s.reattaches,
        discarded: s.discarded,
        held: st.nf.held(),
    }
}

/// Copies the counters. See `netlib.h`.
///
/// # Safety
/// `nf` is a live handle; `out` points to a writable `netlib_stats`.
#[no_mangle]
pub unsafe extern "C" fn netlib_get_stats(nf: *mut NetlibNf, out: *mut NetlibStats) -> c_int {
    let body = |st: &mut CState| {
        if out.is_null() {
            set_error("out is NULL");
            return NETLIB_ERR;
        }
        // SAFETY: non-null, and the caller provides a writable netlib_stats.
        unsafe { out.write(to_c(st.nf.stats(), st)) };
        NETLIB_OK
    };
    // SAFETY: forwarded from this function's contract.
    unsafe { with_state(nf, body) }
}

/// Returns held packets (DROP), marks the slot DETACHED and frees the handle. See `netlib.h`.
///
/// # Safety
/// `nf` is NULL or a live handle, not used again afterwards (unless this returns
/// `NETLIB_EBUSY`, in which case nothing was freed).
#[no_mangle]
pub unsafe extern "C" fn netlib_detach(nf: *mut NetlibNf) -> c_int {
    if nf.is_null() {
        return NETLIB_OK;
    }
    // SAFETY: forwarded from this function's contract.
    let r = unsafe {
        with_state(nf, |st| {
            let held: Vec<Descriptor> = st
                .held
                .iter_mut()
                .filter_map(Option::take)
                .map(|mut d| {
                    d.set_verdict(Verdict::Drop);
                    d
                })
                .collect();
            match st.nf.tx_burst(&held) {
                Ok(()) | Err(NfError::Reattached { .. }) => NETLIB_OK,
                Err(e) => fail(&e),
            }
        })
    };
    if r == NETLIB_EBUSY {
        return r;
    }
    guard(NETLIB_ERR, || {
        // SAFETY: the handle came from Box::into_raw in netlib_attach, no call on it is in
        // progress (with_state did not report EBUSY), and the caller gives it up.
        let h = unsafe { Box::from_raw(nf) };
        let st = h.state.into_inner();
        let _ = st.nf.detach();
        r
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_fits_rx_scratch() {
        const { assert!(crate::nf::BATCH <= 256) };
    }

    #[test]
    fn errors_without_handle() {
        // SAFETY: NULL handles and pointers are part of the contract.
        unsafe {
            assert_eq!(
                netlib_rx_burst(core::ptr::null_mut(), core::ptr::null_mut(), 1),
                NETLIB_ERR
            );
            let msg = CStr::from_ptr(netlib_last_error()).to_str().unwrap();
            assert!(msg.contains("NULL"), "{msg}");
            assert_eq!(netlib_set_verdict(core::ptr::null_mut(), 1, 0), NETLIB_ERR);
            assert_eq!(netlib_detach(core::ptr::null_mut()), NETLIB_OK);
            netlib_stop(core::ptr::null_mut());
            let p = netlib_attach(c"/nonexistent/netvm.region".as_ptr(), c"x".as_ptr());
            assert!(p.is_null());
            let msg = CStr::from_ptr(netlib_last_error()).to_str().unwrap();
            assert!(msg.contains("/nonexistent/netvm.region"), "{msg}");
        }
    }

    #[test]
    fn set_verdict_checks_codes() {
        let mut p = NetlibPkt {
            data: core::ptr::null_mut(),
            buf: core::ptr::null_mut(),
            token: 0,
            len: 0,
            buf_len: 0,
            flow_hash: 0,
            in_port: 0,
            verdict: 0,
            verdict_arg: 0,
            reserved: 0,
        };
        // SAFETY: `p` is a valid, writable netlib_pkt.
        unsafe {
            assert_eq!(netlib_set_verdict(&mut p, 3, 7), NETLIB_OK);
            assert_eq!((p.verdict, p.verdict_arg), (3, 7));
            assert_eq!(netlib_set_verdict(&mut p, 0, 0), NETLIB_ERR);
            assert_eq!(netlib_set_verdict(&mut p, 9, 0), NETLIB_ERR);
            assert_eq!(netlib_set_verdict(&mut p, 260, 0), NETLIB_ERR);
        }
        assert_eq!(p.verdict, 3);
    }
}
