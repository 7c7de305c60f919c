//! Adaptive polling (`"poll": "adaptive"`): a worker whose rounds find nothing to do backs off
//! from busy polling to `pause` instructions to short sleeps; the first round that moves
//! anything puts it back to full busy polling.
//!
//! A round *moves* something when it receives a packet from a port or takes a descriptor off
//! an NF's TX ring (everything a round transmits came from one of the two). Time idle is
//! measured with the TSC, read only in rounds that moved nothing:
//!
//! | idle for            | each empty round is followed by                                    |
//! |---------------------|--------------------------------------------------------------------|
//! | < [`PAUSE_AFTER_NS`] | nothing (busy polling)                                            |
//! | < [`SLEEP_AFTER_NS`] | [`PAUSES`] `spin_loop` hints (`pause`: less power, a hyperthread sibling runs) |
//! | longer               | a sleep of [`MIN_SLEEP_NS`], doubling per consecutive sleep up to the maximum |
//!
//! So under load (anything moving at least every [`SLEEP_AFTER_NS`], i.e. any steady rate
//! above about 10 kpps) a worker never sleeps and makes no system call; the sleep is the
//! only syscall of the idle path. A packet or an NF's return that arrives while the worker
//! sleeps is picked up at the latest when the sleep ends: within the maximum sleep,
//! `poll_max_sleep_us` (default [`DEFAULT_MAX_SLEEP_NS`]), plus the thread's timer slack (set
//! to [`TIMER_SLACK_NS`]), the kernel's wake-up latency and one round. Since sleeps double
//! from [`MIN_SLEEP_NS`], a sleep is never much longer than the time already spent idle: the
//! delay added to the first packet after a pause in the traffic is at most about that
//! pause, and only a pause of over twice the maximum meets a full-length sleep.
//!
//! Why a 1 ms default: every wake-up costs CPU time — a few µs on bare metal, about 20 µs of
//! the thread's time in a VM (timer programming and the halt exit; a plain `nanosleep` loop in
//! C on our 2-vCPU test VM: 250 µs sleeps → 7% of a CPU, 500 µs → 4.4%, 1 ms → 1.8%) — and
//! the goal for an idle worker is at most 2% of a CPU. An NF's doorbell does not
//! wake the worker; its TX ring is polled after every sleep. Control commands and snapshot
//! requests are looked at after every sleep too (rather than every 16th round), so a stats
//! request waits at most one sleep.
//!
//! [`Backoff`] is the pure state machine (a clock is passed in, so it is tested without
//! one); [`IdleStats`] is what the worker publishes for the stats report.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Busy polling continues this long after the last work.
pub const PAUSE_AFTER_NS: u64 = 10_000;
/// Sleeping starts this long after the last work.
pub const SLEEP_AFTER_NS: u64 = 100_000;
/// `spin_loop` hints after each empty round of the pause phase.
pub const PAUSES: u32 = 32;
/// The first sleep of an idle period.
pub const MIN_SLEEP_NS: u64 = 10_000;
/// The default longest sleep (config `poll_max_sleep_us`): the bound on the delay before new
/// work is picked up.
pub const DEFAULT_MAX_SLEEP_NS: u64 = netvm_api::config::DEFAULT_POLL_MAX_SLEEP_US as u64 * 1000;
/// Timer slack of an adaptive worker thread (Linux's default, 50 µs, would stretch every
/// sleep by up to that much).
pub const TIMER_SLACK_NS: u64 = 1_000;

/// What the worker does after a round that moved nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Poll again at once.
    Poll,
    /// Run [`PAUSES`] `spin_loop` hints, then poll.
    Pause,
    /// Sleep this many nanoseconds, then poll (and look at control work).
    Sleep(u64),
}

/// The backoff state machine. Thresholds are in ticks of the clock passed to
/// [`idle`](Self::idle) (the TSC in the worker).
#[derive(Debug, Clone)]
pub struct Backoff {
    pause_after: u64,
    sleep_after: u64,
    /// Clock value of the first empty round of this idle period (`None`: working).
    idle_since: Option<u64>,
    /// Length of the next sleep, ns.
    next_sleep: u64,
    /// The longest sleep, ns.
    max_sleep: u64,
}

impl Backoff {
    /// A backoff for a clock of `hz` ticks per second, sleeping at most `max_sleep_ns`
    /// (at least [`MIN_SLEEP_NS`]).
    #[must_use]
    pub fn new(hz: u64, max_sleep_ns: u64) -> Self {
        let ticks = |ns: u64| {
            u64::try_from(u128::from(ns) * u128::from(hz.max(1)) / 1_000_000_000)
                .unwrap_or(u64::MAX)
        };
        Self {
            pause_after: ticks(PAUSE_AFTER_NS),
            sleep_after: ticks(SLEEP_AFTER_NS),
            idle_since: None,
            next_sleep: MIN_SLEEP_NS,
            max_sleep: max_sleep_ns.max(MIN_SLEEP_NS),
        }
    }

    /// A round moved something: back to busy polling.
    #[inline]
    pub fn work(&mut self) {
        if self.idle_since.is_some() {
            self.idle_since = None;
            self.next_sleep = MIN_SLEEP_NS;
        }
    }

    /// A round moved nothing at clock `now`: what to do before the next one.
    #[inline]
    pub fn idle(&mut self, now: u64) -> Step {
        let since = *self.idle_since.get_or_insert(now);
        let idle = now.saturating_sub(since);
        if idle < self.pause_after {
            Step::Poll
        } else if idle < self.sleep_after {
            Step::Pause
        } else {
            let s = self.next_sleep;
            self.next_sleep = (s * 2).min(self.max_sleep);
            Step::Sleep(s)
        }
    }

    /// Whether the worker is in an idle period past busy polling.
    #[must_use]
    pub fn idle_since(&self) -> Option<u64> {
        self.idle_since
    }
}

/// A worker's adaptive polling: the [`Backoff`] on the TSC, and the sleeping itself.
#[derive(Debug)]
pub struct Adaptive {
    backoff: Backoff,
    sleeps: u64,
    slept_ns: u64,
}

impl Adaptive {
    /// For a TSC of `tsc_hz`, sleeping at most `max_sleep_ns`.
    #[must_use]
    pub fn new(tsc_hz: u64, max_sleep_ns: u64) -> Self {
        Self {
            backoff: Backoff::new(tsc_hz, max_sleep_ns),
            sleeps: 0,
            slept_ns: 0,
        }
    }

    /// A round moved something.
    #[inline]
    pub fn work(&mut self) {
        self.backoff.work();
    }

    /// A round moved nothing: pause or sleep as the backoff says, publishing the figures
    /// to `stats` after a sleep. True when it slept (the caller then does its control work).
    #[inline(never)]
    pub fn idle(&mut self, stats: &IdleStats) -> bool {
        match self.backoff.idle(dpdk::rdtsc()) {
            Step::Poll => false,
            Step::Pause => {
                for _ in 0..PAUSES {
                    std::hint::spin_loop();
                }
                false
            }
            Step::Sleep(ns) => {
                // Only here, after SLEEP_AFTER_NS without work: a clock read (vDSO) and the
                // nanosleep syscall.
                let t = Instant::now();
                std::thread::sleep(Duration::from_nanos(ns));
                let slept = u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX);
                self.sleeps += 1;
                self.slept_ns = self.slept_ns.saturating_add(slept);
                stats.store(self.sleeps, self.slept_ns);
                true
            }
        }
    }
}

/// A worker's idle figures, published for the stats report (written only by its worker,
/// after a sleep: never on the busy path).
#[derive(Debug, Default)]
pub struct IdleStats {
    /// Sleeps taken.
    pub sleeps: AtomicU64,
    /// Time spent in those sleeps, ns (measured, not requested).
    pub slept_ns: AtomicU64,
}

impl IdleStats {
    /// Publishes the worker's totals (Relaxed: plain figures, no data is published with them).
    pub fn store(&self, sleeps: u64, slept_ns: u64) {
        self.sleeps.store(sleeps, Ordering::Relaxed);
        self.slept_ns.store(slept_ns, Ordering::Relaxed);
    }

    /// (sleeps, slept ns).
    #[must_use]
    pub fn load(&self) -> (u64, u64) {
        (
            self.sleeps.load(Ordering::Relaxed),
            self.slept_ns.load(Ordering::Relaxed),
        )
    }
}

/// Sets the calling thread's timer slack to [`TIMER_SLACK_NS`] (once, when an adaptive
/// worker starts); failure only makes sleeps a little longer.
pub fn set_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes an unsigned long by value and touches no memory of ours.
    let _ = unsafe {
        libc::prctl(
            libc::PR_SET_TIMERSLACK,
            libc::c_ulong::try_from(TIMER_SLACK_NS).unwrap_or(0),
            0,
            0,
            0,
        )
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 1 GHz clock: one tick per ns.
    const HZ: u64 = 1_000_000_000;

    #[test]
    fn busy_then_pause_then_growing_sleeps() {
        let mut b = Backoff::new(HZ, 250_000);
        let t0 = 5_000_000;
        assert_eq!(b.idle(t0), Step::Poll);
        assert_eq!(b.idle(t0 + PAUSE_AFTER_NS - 1), Step::Poll);
        assert_eq!(b.idle(t0 + PAUSE_AFTER_NS), Step::Pause);
        assert_eq!(b.idle(t0 + SLEEP_AFTER_NS - 1), Step::Pause);
        let mut t = t0 + SLEEP_AFTER_NS;
        let mut sleeps = Vec::new();
        for _ in 0..8 {
            let Step::Sleep(ns) = b.idle(t) else {
                panic!("expected a sleep")
            };
            sleeps.push(ns);
            t += ns;
        }
        assert_eq!(
            sleeps,
            [10_000, 20_000, 40_000, 80_000, 160_000, 250_000, 250_000, 250_000]
        );
    }

    #[test]
    fn sleeps_stay_within_the_bound_and_near_the_idle_time() {
        for max in [MIN_SLEEP_NS, 250_000, DEFAULT_MAX_SLEEP_NS, 10_000_000] {
            let mut b = Backoff::new(HZ, max);
            let t0 = 1_000;
            let mut t = t0;
            for _ in 0..100 {
                match b.idle(t) {
                    Step::Sleep(ns) => {
                        assert!((MIN_SLEEP_NS..=max).contains(&ns), "{ns} > {max}");
                        // Never much longer than the idle time so far.
                        assert!(ns <= (t - t0).max(MIN_SLEEP_NS), "{ns} after {}", t - t0);
                        t += ns;
                    }
                    _ => t += 1_000,
                }
            }
        }
        // A bound below the shortest sleep is raised to it.
        let mut b = Backoff::new(HZ, 1);
        assert_eq!(b.idle(0), Step::Poll);
        assert_eq!(b.idle(SLEEP_AFTER_NS), Step::Sleep(MIN_SLEEP_NS));
        assert_eq!(b.idle(SLEEP_AFTER_NS * 2), Step::Sleep(MIN_SLEEP_NS));
    }

    #[test]
    fn any_work_resets_to_busy_polling() {
        let mut b = Backoff::new(HZ, DEFAULT_MAX_SLEEP_NS);
        let mut t = 0;
        for _ in 0..1000 {
            b.idle(t);
            t += 1_000;
        }
        assert!(matches!(b.idle(t), Step::Sleep(DEFAULT_MAX_SLEEP_NS)));
        b.work();
        assert_eq!(b.idle_since(), None);
        // A fresh idle period starts over: busy, pause, then the shortest sleep first.
        assert_eq!(b.idle(t + 1), Step::Poll);
        assert_eq!(b.idle(t + 1 + PAUSE_AFTER_NS), Step::Pause);
        assert_eq!(b.idle(t + 1 + SLEEP_AFTER_NS), Step::Sleep(MIN_SLEEP_NS));
    }

    #[test]
    fn work_every_so_often_never_sleeps() {
        // Work just under every SLEEP_AFTER_NS (a steady ~10 kpps): pauses at most, no sleep.
        let mut b = Backoff::new(HZ, DEFAULT_MAX_SLEEP_NS);
        let mut t = 0u64;
        for _ in 0..10_000 {
            for k in 0..100 {
                let step = b.idle(t + k * (SLEEP_AFTER_NS - 1) / 100);
                assert!(!matches!(step, Step::Sleep(_)), "slept under load");
            }
            t += SLEEP_AFTER_NS - 1;
            b.work();
        }
    }

    #[test]
    fn thresholds_scale_with_the_clock() {
        // A 3 GHz TSC: 10 µs = 30,000 ticks.
        let mut b = Backoff::new(3_000_000_000, DEFAULT_MAX_SLEEP_NS);
        assert_eq!(b.idle(0), Step::Poll);
        assert_eq!(b.idle(29_999), Step::Poll);
        assert_eq!(b.idle(30_000), Step::Pause);
        assert_eq!(b.idle(300_000), Step::Sleep(MIN_SLEEP_NS));
        // A clock that goes backwards never underflows into a long idle time.
        let mut b = Backoff::new(3_000_000_000, DEFAULT_MAX_SLEEP_NS);
        assert_eq!(b.idle(1_000_000), Step::Poll);
        assert_eq!(b.idle(10), Step::Poll);
    }

    #[test]
    fn stats_round_trip() {
        let s = IdleStats::default();
        s.store(3, 750_000);
        assert_eq!(s.load(), (3, 750_000));
    }
}
