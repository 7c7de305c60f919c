//! Helpers shared by the integration tests.
#![allow(dead_code)]
// Test data is made by deliberately truncating wider integers.
#![allow(clippy::cast_possible_truncation)]

use std::net::Ipv4Addr;

use netvm_wire::{FrameSpec, L4Spec, MacAddr};

/// A UDP frame whose addresses and payload depend on `i`.
pub fn frame(i: u32) -> Vec<u8> {
    let spec = FrameSpec {
        dst_mac: MacAddr([0x02, 0, 0, 0, 0, 0x02]),
        src_mac: MacAddr([0x02, 0, 0, 0, 0, 0x01]),
        src_ip: Ipv4Addr::from(0x0a00_0000 | (i & 0xffff)),
        dst_ip: Ipv4Addr::new(10, 1, 0, 1),
        l4: L4Spec::Udp {
            src_port: 1000 + (i % 5000) as u16,
            dst_port: 5000,
        },
        ..FrameSpec::default()
    };
    let payload: Vec<u8> = (0..32u32)
        .map(|k| (i.wrapping_add(k) & 0xff) as u8)
        .collect();
    spec.build(&payload)
}

/// CPU time of the calling thread.
pub fn thread_cpu_time() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(r, 0);
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Kills and reaps a child process when dropped (also when the test panics).
pub struct ChildGuard(pub Option<std::process::Child>);

impl ChildGuard {
    pub fn pid(&self) -> u32 {
        self.0.as_ref().map_or(0, |c| c.id())
    }

    /// Takes the child out (so that the test can wait for it itself).
    pub fn take(&mut self) -> std::process::Child {
        self.0.take().expect("child present")
    }

    pub fn exited(&mut self) -> bool {
        self.0
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))))
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
