//! A hostile NF, for tests: it attaches like any NF (through netvm-shm, not netlib-guest, so
//! that nothing on its side filters what it writes) — its own control region (slot and rings)
//! and its domain's region (packet buffers) — and then attacks the core and its neighbours.
//!
//! Mode `mixed`, per packet `i` it receives (in order), besides one descriptor with an
//! out-of-range buffer index for every packet:
//! * `i % 4 == 0`: returns it with a length past the buffer (bad bounds);
//! * `i % 4 == 1`: returns it with an unknown verdict code;
//! * `i % 4 == 2`: returns it with OUT to a port its chain does not allow (port 7);
//! * `i % 4 == 3`: returns it correctly (NEXT) — and then once more (a double return: the
//!   second is a buffer it no longer holds).
//!
//! Mode `flood` ([`run_flood`]): the scale attack. It first holds `hold` packets of its chain
//! and returns each with exactly one bad field (bounds, zero length, unknown verdict, a port
//! outside its chain, an unknown service), then each again (a double return); then it writes
//! `count` random descriptors (random indices, in and out of range, random lengths, verdicts and
//! arguments) into its TX ring; with `scribble`, it also writes random bytes over its slot
//! (every word but `state` and `nf_pid`, which would only make the core call it dead) and its
//! rings' doorbell words (`sleeping`, `sleep_seq`, `wake_seq`) — but never a ring index, which
//! gets an NF quarantined (modes `corrupt-tx`, `corrupt-rx`). It knows what each descriptor
//! must be rejected for — it holds no buffer during the
//! random phase, so an in-range index is `not_owner` and an out-of-range one `bad_index` — and
//! prints the expected count per reason as one `HOSTILE-REPORT {json}` line.
//!
//! Mode `spy` ([`run_spy`]): maps a region and scans every byte of the mapping for a marker:
//! attached to a slot, until stopped; without one, once. Prints `SPY-REPORT {json}`.
//!
//! Modes of [`run_attack`], each against the core's isolation of NFs within one domain:
//! * `hoard`: takes every packet it is given and never returns one (pool exhaustion);
//! * `corrupt-tx`: returns its first packets properly, then writes an impossible producer
//!   index into its TX ring and leaves it there;
//! * `corrupt-rx`: the same with the consumer index of its RX ring;
//! * `header`: writes garbage over its domain region's header (which every NF of the domain
//!   maps), then forwards like l2fwd;
//! * `neighbour`: tries to reach another NF's control words: scans both of its mappings for
//!   the victim's slot (its name), then, after dropping to an unprivileged uid, tries to open
//!   the victim's control region file. Prints `ATTACK-REPORT {json}` and forwards like l2fwd.
//! * `rehash`: forwards every packet with NEXT, but writes a different `flow_hash` into each
//!   descriptor it returns (a counter): a core that placed flows at later chain positions by
//!   that word would scatter every flow over the instances of the next service.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use memmap2::{MmapOptions, MmapRaw};
use netvm_shm::{control_path, verdict_code, Descriptor, Region, SlotState, Verdict};
use serde_json::json;

/// Maps NF `name`'s control region (next to `region`) and validates it.
fn open_control(region: &Path, name: &str) -> Result<Region, String> {
    let c = control_path(region, name);
    Region::attach_file(&c).map_err(|e| format!("attach {}: {e}", c.display()))
}

/// Maps the domain region file raw (read-write, shared), as any NF of the domain can.
fn map_domain(region: &Path) -> Result<MmapRaw, String> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(region)
        .map_err(|e| format!("open {}: {e}", region.display()))?;
    MmapOptions::new()
        .map_raw(&f)
        .map_err(|e| format!("map {}: {e}", region.display()))
}

/// Runs the hostile NF until `stop`. Returns the number of packets received.
pub fn run(region: &Path, name: &str, stop: &AtomicBool) -> Result<u64, String> {
    let r = open_control(region, name)?;
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

/// Attaches to slot `name` of `r` once the core reserved it.
fn attach_slot<'a>(r: &'a Region, name: &str) -> Result<netvm_shm::SlotRef<'a>, String> {
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
    slot.attach(r.generation(), std::process::id())
        .map_err(|e| e.to_string())?;
    Ok(slot)
}

/// xorshift64*: a small deterministic generator (no dependency).
pub struct Rng(u64);

impl Rng {
    /// Seeded (0 is replaced by a constant).
    pub fn new(seed: u64) -> Self {
        Self(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        u32::try_from(self.next_u64() >> 32).unwrap_or(0)
    }

    /// Next 16 random bits.
    pub fn next_u16(&mut self) -> u16 {
        let [a, b, ..] = self.next_u64().to_le_bytes();
        u16::from_le_bytes([a, b])
    }

    /// Next 8 random bits.
    pub fn next_u8(&mut self) -> u8 {
        self.next_u64().to_le_bytes()[7]
    }
}

/// What `flood` is told to do.
#[derive(Debug, Clone, Copy)]
pub struct FloodOpts {
    /// Packets of its chain to receive and hold before the bad returns (0: none).
    pub hold: u64,
    /// Of the held packets, how many it keeps and never returns (for reclaim tests; a kept
    /// buffer can match a random index, so the expected counts are then approximate).
    pub keep: u64,
    /// Random descriptors to write.
    pub count: u64,
    /// Also scribble over its slot and ring control words.
    pub scribble: bool,
    /// Random seed.
    pub seed: u64,
}

/// Expected rejects by reason name (the core's `RejectReason::name`).
#[derive(Debug, Default)]
struct Expect {
    bad_index: u64,
    bad_bounds: u64,
    zero_length: u64,
    unknown_verdict: u64,
    not_owner: u64,
    port_not_allowed: u64,
    service_unknown: u64,
}

/// Writes everything in `out` into the TX ring; false if stopped or cut off (quarantined).
fn push_all(
    tx: &mut netvm_shm::Producer,
    slot: &netvm_shm::SlotRef<'_>,
    out: &[Descriptor],
    stop: &AtomicBool,
) -> Result<bool, String> {
    let mut sent = 0;
    let mut idle = 0u32;
    while sent < out.len() {
        let n = tx
            .enqueue_burst(&out[sent..])
            .map_err(|e| format!("tx ring: {e}"))?;
        sent += n;
        if n == 0 {
            idle = idle.wrapping_add(1);
            if idle % 256 == 0 {
                slot.bump_heartbeat();
                if stop.load(Ordering::Relaxed) || slot.state() != Some(SlotState::Attached) {
                    return Ok(false);
                }
            }
            std::thread::yield_now();
        }
    }
    Ok(true)
}

/// Runs the `flood` mode until done, then idles until `stop`. Prints the report line.
pub fn run_flood(
    region: &Path,
    name: &str,
    o: FloodOpts,
    stop: &AtomicBool,
) -> Result<u64, String> {
    let r = open_control(region, name)?;
    let slot_idx = r
        .find_slot(name)
        .ok_or_else(|| format!("no slot named {name}"))?;
    let geom = *r.geometry();
    let rings = geom.slot_rings(slot_idx).ok_or("no rings")?;
    let mut rx = r.consumer(rings.first_rx).map_err(|e| e.to_string())?;
    let mut tx = r.producer(rings.tx).map_err(|e| e.to_string())?;
    let slot = attach_slot(&r, name)?;
    let mut exp = Expect::default();
    let mut rng = Rng::new(o.seed);
    let mut alive = true;

    // Phase 1: hold `hold` packets, return each with one bad field, then each again.
    let mut held = Vec::new();
    let mut buf = [Descriptor::default(); 32];
    let end = Instant::now() + Duration::from_secs(30);
    while (held.len() as u64) < o.hold && !stop.load(Ordering::Relaxed) {
        slot.bump_heartbeat();
        let n = rx
            .dequeue_burst(&mut buf)
            .map_err(|e| format!("rx ring: {e}"))?;
        held.extend_from_slice(&buf[..n]);
        if n == 0 {
            if Instant::now() > end {
                return Err(format!("only {} of {} packets arrived", held.len(), o.hold));
            }
            let _ = rx.wait_for_work(Duration::from_millis(5));
        }
    }
    let buf_size = u16::try_from(geom.buf_size()).unwrap_or(u16::MAX);
    held.truncate(
        held.len()
            .saturating_sub(usize::try_from(o.keep).unwrap_or(usize::MAX)),
    );
    let mut bad = Vec::with_capacity(2 * held.len());
    for (i, d) in held.iter().enumerate() {
        let mut d = *d;
        d.set_verdict(Verdict::Next);
        match i % 5 {
            0 => {
                d.data_off = 64;
                d.data_len = buf_size;
                exp.bad_bounds += 1;
            }
            1 => {
                d.data_len = 0;
                exp.zero_length += 1;
            }
            2 => {
                d.verdict = 0x77;
                exp.unknown_verdict += 1;
            }
            3 => {
                d.set_verdict(Verdict::Out(40));
                exp.port_not_allowed += 1;
            }
            _ => {
                d.set_verdict(Verdict::Service(999));
                exp.service_unknown += 1;
            }
        }
        bad.push(d);
    }
    for d in &held {
        let mut d = *d;
        d.set_verdict(Verdict::Next);
        bad.push(d);
        exp.not_owner += 1;
    }
    alive &= push_all(&mut tx, &slot, &bad, stop)?;

    // Phase 2: random descriptors from a pre-drawn pool (so that the NF is not the bottleneck).
    let count = geom.buf_count();
    let pool: Vec<Descriptor> = (0..4096)
        .map(|_| {
            let idx = match rng.next_u32() % 8 {
                0 => u32::MAX - rng.next_u32() % 16,
                1..=3 => count + rng.next_u32() % count.max(1),
                _ => rng.next_u32() % count.max(1),
            };
            Descriptor {
                buf_idx: idx,
                data_off: rng.next_u16(),
                data_len: rng.next_u16(),
                flow_hash: rng.next_u32(),
                verdict: rng.next_u8(),
                in_port: rng.next_u8(),
                verdict_arg: rng.next_u16(),
            }
        })
        .collect();
    let scribble_every = (o.count / 20).max(1);
    let mut next_scribble = scribble_every;
    let mut written: u64 = 0;
    let mut episodes = 0u64;
    let mut k = 0usize;
    while alive && written < o.count {
        let n = usize::try_from((o.count - written).min(256)).unwrap_or(256);
        let start = k % (pool.len() - 256);
        let chunk = &pool[start..start + n];
        k = k.wrapping_add(n + 7);
        for d in chunk {
            if d.buf_idx >= count {
                exp.bad_index += 1;
            } else {
                exp.not_owner += 1;
            }
        }
        alive &= push_all(&mut tx, &slot, chunk, stop)?;
        if !alive {
            // Cut off mid-chunk: the core counted an unknown part of it.
            break;
        }
        written += n as u64;
        if o.scribble && written >= next_scribble {
            next_scribble += scribble_every;
            episodes += 1;
            scribble(&r, slot_idx, rings, &mut rng);
        }
    }
    let quarantined = slot.state() == Some(SlotState::Quarantined);
    let report = json!({
        "written": written + bad.len() as u64,
        "cut_off": !alive,
        "quarantined": quarantined,
        "scribble_episodes": episodes,
        "expect": {
            "bad_index": exp.bad_index, "bad_bounds": exp.bad_bounds,
            "zero_length": exp.zero_length, "unknown_verdict": exp.unknown_verdict,
            "not_owner": exp.not_owner, "port_not_allowed": exp.port_not_allowed,
            "service_unknown": exp.service_unknown,
        }
    });
    println!("HOSTILE-REPORT {report}");
    while !stop.load(Ordering::Relaxed) {
        slot.bump_heartbeat();
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(written)
}

/// Random bytes over the slot (all but `state` and `nf_pid`) and over the doorbell words of
/// the NF's rings (never an index: that is `corrupt-tx` / `corrupt-rx`).
fn scribble(r: &Region, slot_idx: u32, rings: netvm_shm::SlotRings, rng: &mut Rng) {
    let geom = r.geometry();
    let base = r.as_ptr().as_ptr();
    let slot_off = geom.slot_table_offset() + slot_idx as usize * 512;
    for off in (0..32).chain(40..512) {
        // SAFETY: slot_off + off < slot_table_offset + slot_count * 512, inside the validated
        // mapping; a byte write races only with other processes' atomic accesses to the same
        // shared memory, which is what this adversary is for.
        unsafe { base.add(slot_off + off).write_volatile(rng.next_u8()) };
    }
    for ring in [rings.tx, rings.first_rx] {
        if let Ok(bell) = r.doorbell(ring) {
            bell.sleeping().store(rng.next_u32(), Ordering::Relaxed);
            bell.sleep_seq().store(rng.next_u32(), Ordering::Relaxed);
            bell.wake_seq().store(rng.next_u32(), Ordering::Relaxed);
            bell.sleeping().store(0, Ordering::Relaxed);
        }
    }
}

/// Runs the `spy` mode: scans the whole mapping of `region` for `marker` until `stop`, then
/// once more; prints `SPY-REPORT {"scans":…,"found":…,"bytes":…}`.
pub fn run_spy(
    region: &Path,
    name: Option<&str>,
    marker: &[u8],
    stop: &AtomicBool,
) -> Result<u64, String> {
    let ctl = match name {
        Some(n) => Some(open_control(region, n)?),
        None => None,
    };
    let slot = match (&ctl, name) {
        (Some(c), Some(n)) => Some(attach_slot(c, n)?),
        _ => None,
    };
    let map = map_domain(region)?;
    let len = map.len();
    let base = map.as_ptr();
    let mut copy = vec![0u8; len];
    let (mut scans, mut found) = (0u64, 0u64);
    loop {
        // Without a slot it is a one-shot scanner (the tests' positive control).
        let last = stop.load(Ordering::Relaxed) || slot.is_none();
        if let Some(s) = &slot {
            s.bump_heartbeat();
        }
        // SAFETY: base..base+len is the live mapping; bytes other processes change meanwhile
        // are read as whatever values they hold (u8 has no invalid values); copy is private.
        unsafe { std::ptr::copy_nonoverlapping(base, copy.as_mut_ptr(), len) };
        found += copy.windows(marker.len()).filter(|w| *w == marker).count() as u64;
        scans += 1;
        if last {
            break;
        }
    }
    println!(
        "SPY-REPORT {}",
        json!({"scans": scans, "found": found, "bytes": len})
    );
    Ok(found)
}

/// What [`run_attack`] does (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attack {
    /// Keep every packet.
    Hoard,
    /// Return `n` packets properly, then corrupt the TX producer index.
    CorruptTx,
    /// Return `n` packets properly, then corrupt the RX consumer index.
    CorruptRx,
    /// Garbage over the domain region's header, then forward.
    Header,
    /// Try to reach `victim`'s control words, then forward.
    Neighbour,
    /// Forward, rewriting every returned descriptor's `flow_hash`.
    Rehash,
}

/// Options of [`run_attack`].
#[derive(Debug, Clone)]
pub struct AttackOpts {
    /// Which attack.
    pub attack: Attack,
    /// Packets to forward properly first (`corrupt-*`).
    pub first: u64,
    /// The victim NF (`neighbour`).
    pub victim: Option<String>,
    /// Unprivileged uid to drop to before touching the victim's file (`neighbour`).
    pub as_uid: Option<u32>,
}

/// Forwards every packet with NEXT (as l2fwd does), up to `limit`; with `rehash`, each with a
/// new `flow_hash`. Returns how many.
fn forward(
    rx: &mut netvm_shm::Consumer,
    tx: &mut netvm_shm::Producer,
    slot: &netvm_shm::SlotRef<'_>,
    stop: &AtomicBool,
    limit: u64,
    rehash: bool,
) -> Result<u64, String> {
    let mut buf = [Descriptor::default(); 32];
    let mut n_fwd = 0u64;
    while n_fwd < limit && !stop.load(Ordering::Relaxed) {
        slot.bump_heartbeat();
        if slot.state() != Some(SlotState::Attached) {
            break;
        }
        let want = usize::try_from((limit - n_fwd).min(32)).unwrap_or(32);
        let n = match rx.dequeue_burst(&mut buf[..want]) {
            Ok(n) => n,
            // Our own rings may be reset under us by the core after a quarantine.
            Err(_) => break,
        };
        if n == 0 {
            let _ = rx.wait_for_work(Duration::from_millis(5));
            continue;
        }
        for (i, d) in buf[..n].iter_mut().enumerate() {
            d.set_verdict(Verdict::Next);
            if rehash {
                d.flow_hash = u32::try_from((n_fwd + i as u64) & 0xffff_ffff)
                    .unwrap_or(0)
                    .wrapping_mul(0x9e37_79b9);
            }
        }
        if !push_all(tx, slot, &buf[..n], stop)? {
            break;
        }
        n_fwd += n as u64;
    }
    Ok(n_fwd)
}

/// Runs one attack of [`Attack`] as NF `name`, until `stop`. Returns packets received.
pub fn run_attack(
    region: &Path,
    name: &str,
    o: &AttackOpts,
    stop: &AtomicBool,
) -> Result<u64, String> {
    let r = open_control(region, name)?;
    let dom = map_domain(region)?;
    let geom = *r.geometry();
    let rings = geom.slot_rings(0).ok_or("no rings")?;
    let mut rx = r.consumer(rings.first_rx).map_err(|e| e.to_string())?;
    let mut tx = r.producer(rings.tx).map_err(|e| e.to_string())?;
    let slot = attach_slot(&r, name)?;
    let mut got = 0u64;
    let idle = |slot: &netvm_shm::SlotRef<'_>| {
        while !stop.load(Ordering::Relaxed) {
            slot.bump_heartbeat();
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    match o.attack {
        Attack::Rehash => got = forward(&mut rx, &mut tx, &slot, stop, u64::MAX, true)?,
        Attack::Hoard => {
            let mut buf = [Descriptor::default(); 32];
            while !stop.load(Ordering::Relaxed) {
                slot.bump_heartbeat();
                match rx.dequeue_burst(&mut buf) {
                    Ok(0) | Err(_) => {
                        let _ = rx.wait_for_work(Duration::from_millis(5));
                    }
                    Ok(n) => got += n as u64,
                }
            }
            println!("ATTACK-REPORT {}", json!({"hoarded": got}));
        }
        Attack::CorruptTx | Attack::CorruptRx => {
            got = forward(&mut rx, &mut tx, &slot, stop, o.first, false)?;
            let ctl = r.as_ptr().as_ptr();
            let ring = if o.attack == Attack::CorruptTx {
                rings.tx
            } else {
                rings.first_rx
            };
            // The index words: `prod` at offset 0 of a ring's control block, `cons` at 128.
            let off = geom.ring_area_offset()
                + ring as usize * geom.ring_stride()
                + if o.attack == Attack::CorruptTx {
                    0
                } else {
                    128
                };
            // SAFETY: the ring's control block lies inside the validated control mapping; the
            // word is 4-aligned; writing it is the attack.
            let word = unsafe { &*ctl.add(off).cast::<std::sync::atomic::AtomicU32>() };
            let v = word.load(Ordering::Relaxed).wrapping_add(0x8000_0000);
            word.store(v, Ordering::Release);
            println!(
                "ATTACK-REPORT {}",
                json!({"forwarded": got, "ring": ring, "index": v})
            );
            idle(&slot);
        }
        Attack::Header => {
            // SAFETY: the first 4096 bytes of the domain mapping are its header; a raw write
            // races only with other processes' reads of it, which is the attack.
            unsafe { std::ptr::write_bytes(dom.as_mut_ptr(), 0xa5, 4096) };
            println!("ATTACK-REPORT {}", json!({"header_bytes": 4096}));
            got = forward(&mut rx, &mut tx, &slot, stop, u64::MAX, false)?;
        }
        Attack::Neighbour => {
            let victim = o.victim.as_deref().ok_or("--victim missing")?;
            // 1. The victim's slot (its name in a slot's name field) is in neither mapping.
            let mut needle = [0u8; 32];
            needle[..victim.len().min(31)]
                .copy_from_slice(&victim.as_bytes()[..victim.len().min(31)]);
            let scan = |base: *const u8, len: usize| {
                let mut copy = vec![0u8; len];
                // SAFETY: base..base+len is a live mapping of ours; a raw copy into private
                // memory.
                unsafe { std::ptr::copy_nonoverlapping(base, copy.as_mut_ptr(), len) };
                copy.windows(needle.len()).filter(|w| *w == needle).count()
            };
            let in_ctl = scan(r.as_ptr().as_ptr(), r.mapping_len());
            let in_dom = scan(dom.as_ptr(), dom.len());
            let own = {
                let mut n = [0u8; 32];
                n[..name.len().min(31)].copy_from_slice(&name.as_bytes()[..name.len().min(31)]);
                n
            };
            let mut own_copy = vec![0u8; r.mapping_len()];
            // SAFETY: as above.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    r.as_ptr().as_ptr(),
                    own_copy.as_mut_ptr(),
                    own_copy.len(),
                )
            };
            let own_found = own_copy.windows(32).filter(|w| *w == own).count();
            // 2. Its control file, as an unprivileged user.
            if let Some(uid) = o.as_uid {
                // SAFETY: plain syscalls changing this process's credentials.
                let ok = unsafe { libc::setgid(uid) == 0 && libc::setuid(uid) == 0 };
                if !ok {
                    return Err(format!("setuid {uid}: {}", std::io::Error::last_os_error()));
                }
            }
            let vpath = control_path(region, victim);
            let open = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&vpath);
            let errno = open.as_ref().err().and_then(std::io::Error::raw_os_error);
            println!(
                "ATTACK-REPORT {}",
                json!({
                    "victim_slot_in_control": in_ctl, "victim_slot_in_domain": in_dom,
                    "own_slot_in_control": own_found,
                    "victim_control_opened": open.is_ok(), "errno": errno,
                    "victim_control": vpath.display().to_string(),
                })
            );
            got = forward(&mut rx, &mut tx, &slot, stop, u64::MAX, false)?;
        }
    }
    let _ = slot.detach();
    Ok(got)
}
