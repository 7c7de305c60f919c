//! The closure API in an NF thread against a test core: every descriptor comes back exactly
//! once even when the TX ring fills up, doorbells wake a sleeping NF on any of its RX rings,
//! an idle NF uses almost no CPU, and a core restart is survived.
// Test data is made by deliberately truncating wider integers.
#![allow(clippy::cast_possible_truncation)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use netlib_guest::testkit::{wait_until, FakeCore};
use netlib_guest::{
    Descriptor, Nf, NfConfig, NfCounter, NfStats, Packet, PacketHandler, PollPolicy, Verdict,
};
use netvm_shm::SlotState;

mod common;
use common::{frame, thread_cpu_time};

const LONG: Duration = Duration::from_secs(30);

#[test]
fn every_descriptor_returns_once_even_when_tx_ring_is_full() {
    let mut core = FakeCore::temp("run-full", 3).unwrap();
    core.reserve(0, "nf", 1).unwrap();
    let mut nf = Nf::attach_file(core.path(), "nf").unwrap();
    let stop = nf.stop_handle();
    let t = std::thread::spawn(move || {
        let stats = nf
            .run(|p: &mut Packet<'_>| {
                p.data_mut()[0] = 0xaa;
                match p.in_port() {
                    1 => Verdict::Drop,
                    port => Verdict::Out(port + 10),
                }
            })
            .unwrap();
        (stats, nf.detach())
    });

    // 3 rings x 150 = 450 descriptors; the TX ring holds 256 and the core does not drain it
    // until the NF reports that it found the ring full.
    const PER_RING: u32 = 150;
    for w in 0..3u32 {
        let descs: Vec<Descriptor> = (0..PER_RING)
            .map(|k| {
                let i = w * PER_RING + k;
                core.load(i, &frame(i), w as u8)
            })
            .collect();
        assert_eq!(core.send(0, w, &descs).unwrap(), PER_RING as usize);
    }
    assert!(wait_until(LONG, || core.counter(0, NfCounter::TxRingFull) > 0));
    let back = core.recv_n(0, 450, LONG);
    assert_eq!(back.len(), 450);
    let mut seen = HashSet::new();
    for d in &back {
        assert!(
            seen.insert(d.buf_idx),
            "buffer {} returned twice",
            d.buf_idx
        );
        let port = d.buf_idx / PER_RING;
        let want = if port == 1 {
            Verdict::Drop
        } else {
            Verdict::Out(port as u16 + 10)
        };
        assert_eq!(Verdict::from_raw(d.verdict, d.verdict_arg), Some(want));
        assert_eq!(core.bytes(d).unwrap()[0], 0xaa);
    }

    stop.store(true, Ordering::Relaxed);
    let (stats, final_stats) = t.join().unwrap();
    assert_eq!(stats.rx_pkts, 450);
    assert_eq!(stats.tx_pkts, 450);
    assert_eq!(stats.dropped, 150);
    assert_eq!(stats.out, 300);
    assert!(stats.tx_ring_full > 0);
    assert_eq!(final_stats, stats);
    assert_eq!(core.slot_state(0), Some(SlotState::Detached));
}

/// Stops the NF after it has been idle for `idle_for`; checked from `tick`, so the test does
/// not sleep.
struct IdleFor {
    start: Instant,
    idle_for: Duration,
    stop: Arc<AtomicBool>,
}

impl PacketHandler for IdleFor {
    fn process(&mut self, _pkt: &mut Packet<'_>) -> Verdict {
        Verdict::Next
    }
    fn tick_interval(&self) -> Option<Duration> {
        Some(Duration::from_millis(50))
    }
    fn tick(&mut self, _stats: &NfStats) {
        if self.start.elapsed() >= self.idle_for {
            self.stop.store(true, Ordering::Relaxed);
        }
    }
}

#[test]
fn idle_nf_uses_almost_no_cpu() {
    for (rings, cfg) in [
        (1, NfConfig::host()),
        (3, NfConfig::host()),
        (3, NfConfig::guest()),
    ] {
        let mut core = FakeCore::temp("run-idle", rings).unwrap();
        core.reserve(1, "idle", 1).unwrap();
        let mut nf = Nf::attach_file_with(core.path(), "idle", cfg).unwrap();
        let stop = nf.stop_handle();
        let t = std::thread::spawn(move || {
            let mut h = IdleFor {
                start: Instant::now(),
                idle_for: Duration::from_millis(1200),
                stop,
            };
            let cpu0 = thread_cpu_time();
            let wall0 = Instant::now();
            let stats = nf.run_handler(&mut h).unwrap();
            (thread_cpu_time() - cpu0, wall0.elapsed(), stats)
        });
        let (cpu, wall, stats) = t.join().unwrap();
        assert!(wall >= Duration::from_secs(1), "{wall:?}");
        // Functional check, loose on purpose: a spinning NF would be near 100%.
        assert!(
            cpu < wall / 5,
            "{rings} ring(s), {:?}: idle NF used {cpu:?} of CPU in {wall:?}",
            cfg.wait_mode
        );
        assert!(stats.sleeps > 0);
        assert!(stats.sleep_timeouts > 0);
        assert!(
            core.heartbeat(1) > stats.sleeps,
            "heartbeat moves while asleep"
        );
        assert_eq!(stats.rx_pkts, 0);
    }
}

#[test]
fn doorbell_of_any_rx_ring_wakes_a_sleeping_nf() {
    for (rings, worker) in [(1u32, 0u32), (3, 2), (3, 1)] {
        let mut core = FakeCore::temp("run-wake", rings).unwrap();
        core.reserve(0, "w", 1).unwrap();
        // Straight to sleep, and sleeps far longer than the test waits: only a doorbell can
        // bring the packet back in time, and a lost wake-up shows as a timeout.
        let cfg = NfConfig {
            poll: PollPolicy {
                spin_polls: 0,
                yield_polls: 0,
                sleep_timeout: Duration::from_secs(120),
            },
            ..NfConfig::host()
        };
        let mut nf = Nf::attach_file_with(core.path(), "w", cfg).unwrap();
        let stop = nf.stop_handle();
        let t = std::thread::spawn(move || nf.run(|_: &mut Packet<'_>| Verdict::Next).unwrap());

        for round in 0..3u32 {
            assert!(
                wait_until(LONG, || core.nf_sleeping(0, worker)),
                "NF never went to sleep"
            );
            let d = core.load(round, &frame(round), 0);
            let (n, woke) = core.send_and_wake(0, worker, &[d]).unwrap();
            assert_eq!(n, 1);
            assert!(woke, "the NF announced it sleeps, so a wake-up is due");
            let back = core.recv_n(0, 1, LONG);
            assert_eq!(
                back.len(),
                1,
                "{rings} rings, worker {worker}, round {round}"
            );
            assert_eq!(back[0].buf_idx, round);
        }
        // Ring the doorbell once more, with nothing enqueued, so that it sees the stop flag.
        stop.store(true, Ordering::Relaxed);
        assert!(wait_until(LONG, || core.nf_sleeping(0, worker)));
        assert!(core.wake(0, worker));
        let stats = t.join().unwrap();
        assert_eq!(stats.sleep_timeouts, 0, "a wake-up was lost");
        assert!(stats.sleeps >= 3);
        assert_eq!((stats.rx_pkts, stats.tx_pkts), (3, 3));
    }
}

#[test]
fn run_survives_a_core_restart() {
    let mut core = FakeCore::temp("run-restart", 2).unwrap();
    core.reserve(3, "r", 5).unwrap();
    let mut nf = Nf::attach_file(core.path(), "r").unwrap();
    let stop = nf.stop_handle();
    let t = std::thread::spawn(move || {
        nf.run(|p: &mut Packet<'_>| {
            p.data_mut()[1] = 0x55;
            Verdict::Next
        })
        .unwrap()
    });

    let send_and_check = |core: &mut FakeCore, base: u32| {
        let descs: Vec<Descriptor> = (base..base + 10)
            .map(|i| core.load(i, &frame(i), 0))
            .collect();
        core.send(3, 1, &descs).unwrap();
        let back = core.recv_n(3, 10, LONG);
        assert_eq!(back.len(), 10);
        for d in &back {
            assert_eq!(core.bytes(d).unwrap()[1], 0x55);
        }
    };
    send_and_check(&mut core, 0);
    let gen = core.generation(3);
    core.restart().unwrap();
    assert_ne!(core.generation(3), gen);
    assert!(
        wait_until(LONG, || core.slot_state(3) == Some(SlotState::Attached)),
        "NF did not re-attach"
    );
    assert_eq!(
        core.control(3).slot(0).unwrap().attach_generation(),
        core.generation(3)
    );
    send_and_check(&mut core, 100);

    stop.store(true, Ordering::Relaxed);
    let stats = t.join().unwrap();
    assert_eq!(stats.reattaches, 1);
    assert_eq!(stats.rx_pkts, 20);
    assert_eq!(stats.tx_pkts, 20);
    assert_eq!(core.slot_state(3), Some(SlotState::Detached));
}
