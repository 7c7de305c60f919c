//! A hostile NF, for tests: it attaches like any NF (through netvm-shm, not netlib-guest, so
//! that nothing on its side filters what it writes) and then answers the core with
//! adversarial descriptors.
//!
//! Mode `mixed`, per packet `i` it receives (in order), besides one descriptor with an
//! out-of-range buffer index for every packet:
//! * `i % 4 == 0`: returns it with a length past the buffer (bad bounds);
//! * `i % 4 == 1`: returns it with an unknown verdict code;
//! * `i % 4 == 2`: returns it with OUT to a port its chain does not allow (port 7);
//! * `i % 4 == 3`: returns it correctly (NEXT) — and then once more (a double return: the
//!   second is a buffer it no longer holds).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use netvm_shm::{verdict_code, Descriptor, Region, SlotState, Verdict};

/// Runs the hostile NF until `stop`. Returns the number of packets received.
pub fn run(region: &Path, name: &str, stop: &AtomicBool) -> Result<u64, String> {
    let r = Region::attach_file(region).map_err(|e| format!("attach {}: {e}", region.display()))?;
    let s = r
        .find_slot(name)
        .ok_or_else(|| format!("no slot named {name}"))?;
    let slot = r.slot(s).map_err(|e| e.to_string())?;
    let end = Instant::now() + Duration::from_secs(30);
    while slot.state() != Some(SlotState::Reserved) {
        if Instant::now() > end {
            return Err("slot never RESERVED".into());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let geom = *r.geometry();
    let rx_id = slot.rx_ring(0).ok_or("no rx ring")?;
    let mut rx = r.consumer(rx_id).map_err(|e| e.to_string())?;
    let mut tx = r.producer(slot.tx_ring()).map_err(|e| e.to_string())?;
    slot.attach(r.generation(), std::process::id())
        .map_err(|e| e.to_string())?;
    let mut buf = [Descriptor::default(); 32];
    let mut out = Vec::with_capacity(128);
    let mut i: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        slot.bump_heartbeat();
        let n = match rx.dequeue_burst(&mut buf) {
            Ok(n) => n,
            Err(e) => return Err(format!("rx ring: {e}")),
        };
        if n == 0 {
            let _ = rx.wait_for_work(Duration::from_millis(5));
            continue;
        }
        for d in &buf[..n] {
            out.push(Descriptor {
                buf_idx: geom.buf_count() + 7 + u32::try_from(i % 100).unwrap_or(0),
                verdict: verdict_code::NEXT,
                ..*d
            });
            let mut d = *d;
            match i % 4 {
                0 => {
                    d.set_verdict(Verdict::Next);
                    d.data_len = u16::try_from(geom.buf_size()).unwrap_or(u16::MAX);
                    d.data_off = 64;
                    out.push(d);
                }
                1 => {
                    d.verdict = 0x77;
                    out.push(d);
                }
                2 => {
                    d.set_verdict(Verdict::Out(7));
                    out.push(d);
                }
                _ => {
                    d.set_verdict(Verdict::Next);
                    out.push(d);
                    out.push(d);
                }
            }
            i += 1;
        }
        let mut sent = 0;
        while sent < out.len() {
            sent += tx
                .enqueue_burst(&out[sent..])
                .map_err(|e| format!("tx ring: {e}"))?;
            tx.wake_if_sleeping();
            if stop.load(Ordering::Relaxed) {
                break;
            }
        }
        out.clear();
    }
    let _ = slot.detach();
    Ok(i)
}
