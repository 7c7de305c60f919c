//! Attaching by name: the slot states of the NF contract and their errors.
// Test data is made by deliberately truncating wider integers.
#![allow(clippy::cast_possible_truncation)]

use netlib_guest::testkit::FakeCore;
use netlib_guest::{Nf, NfError};
use netvm_shm::SlotState;

mod common;
use common::ChildGuard;

#[test]
fn attach_detach_reattach() {
    let mut core = FakeCore::temp("attach", 2).unwrap();
    core.reserve(1, "fw1", 7).unwrap();

    let nf = Nf::attach_file(core.path(), "fw1").unwrap();
    // Each NF has its own control region: one slot (0), its own rings.
    assert_eq!(nf.slot(), 0);
    assert_eq!(nf.service_id(), 7);
    assert_eq!(nf.generation(), core.generation(1));
    let (rx, tx) = nf.ring_ids();
    assert_eq!(rx, &[0, 1]);
    assert_eq!(tx, 2);
    assert_eq!(core.slot_state(1), Some(SlotState::Attached));
    let slot = core.control(1).slot(0).unwrap();
    assert_eq!(slot.nf_pid(), std::process::id());
    assert_eq!(slot.attach_generation(), core.generation(1));

    // A live holder (this very process) keeps the slot.
    match Nf::attach_file(core.path(), "fw1") {
        Err(NfError::AlreadyAttached { slot: 0, pid, .. }) => assert_eq!(pid, std::process::id()),
        other => panic!("expected AlreadyAttached, got {other:?}"),
    }

    let stats = nf.detach();
    assert_eq!(stats.rx_pkts, 0);
    assert_eq!(core.slot_state(1), Some(SlotState::Detached));

    // DETACHED → ATTACHED again (an NF restart); dropping detaches too.
    let nf = Nf::attach_file(core.path(), "fw1").unwrap();
    assert_eq!(core.slot_state(1), Some(SlotState::Attached));
    drop(nf);
    assert_eq!(core.slot_state(1), Some(SlotState::Detached));
}

#[test]
fn errors_name_what_is_wrong() {
    let mut core = FakeCore::temp("attach-errors", 1).unwrap();
    core.reserve(0, "fw1", 1).unwrap();

    let e = Nf::attach_file(core.path(), "router").unwrap_err();
    assert!(matches!(e, NfError::NoSuchNf { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("\"router\"") && msg.contains(&core.path().display().to_string()),
        "{msg}"
    );

    let e = Nf::attach_file(core.path(), &"x".repeat(32)).unwrap_err();
    assert!(matches!(e, NfError::InvalidName { .. }), "{e:?}");

    let missing = core.path().with_extension("missing");
    let e = Nf::attach_file(&missing, "fw1").unwrap_err();
    assert!(matches!(e, NfError::Region { .. }), "{e:?}");

    core.control(0)
        .slot(0)
        .unwrap()
        .set_state(SlotState::Quarantined);
    let e = Nf::attach_file(core.path(), "fw1").unwrap_err();
    assert!(matches!(e, NfError::Quarantined { slot: 0, .. }), "{e:?}");
}

#[test]
fn takes_over_from_a_dead_process_not_from_a_live_one() {
    let mut core = FakeCore::temp("attach-takeover", 1).unwrap();

    // Attached by a process that is still alive: refused.
    let mut live = ChildGuard(Some(
        std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap(),
    ));
    core.reserve(0, "mon", 2).unwrap();
    let gen = core.generation(0);
    core.control(0)
        .slot(0)
        .unwrap()
        .attach(gen, live.pid())
        .unwrap();
    match Nf::attach_file(core.path(), "mon") {
        Err(NfError::AlreadyAttached { pid, .. }) => assert_eq!(pid, live.pid()),
        other => panic!("expected AlreadyAttached, got {other:?}"),
    }

    // The same process dies (and is reaped): the slot is taken over.
    let mut c = live.take();
    let dead = c.id();
    c.kill().unwrap();
    c.wait().unwrap();
    let nf = Nf::attach_file(core.path(), "mon").unwrap();
    let slot = core.control(0).slot(0).unwrap();
    assert_eq!(slot.nf_pid(), std::process::id());
    assert_ne!(slot.nf_pid(), dead);
    assert_eq!(core.slot_state(0), Some(SlotState::Attached));
    drop(nf);
}

#[test]
fn guest_slots_are_judged_by_their_heartbeat() {
    use netlib_guest::{NfConfig, Packet, Verdict};
    let mut core = FakeCore::temp("attach-guest", 2).unwrap();
    core.reserve(0, "g", 1).unwrap();

    // A live guest NF (pid 0, heartbeat moving while it idles) keeps its slot.
    let mut nf = Nf::attach_file_with(core.path(), "g", NfConfig::guest()).unwrap();
    assert_eq!(core.control(0).slot(0).unwrap().nf_pid(), 0);
    let stop = nf.stop_handle();
    let t = std::thread::spawn(move || {
        nf.run(|_: &mut Packet<'_>| Verdict::Next).unwrap();
        nf
    });
    match Nf::attach_file_with(core.path(), "g", NfConfig::guest()) {
        Err(NfError::AlreadyAttached { pid: 0, .. }) => {}
        other => panic!("expected AlreadyAttached, got {other:?}"),
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let nf = t.join().unwrap();

    // A guest that vanished without detaching (its heartbeat stopped) is taken over.
    std::mem::forget(nf);
    assert_eq!(core.slot_state(0), Some(SlotState::Attached));
    let nf = Nf::attach_file_with(core.path(), "g", NfConfig::guest()).unwrap();
    assert_eq!(nf.slot(), 0);
    drop(nf);
    assert_eq!(core.slot_state(0), Some(SlotState::Detached));
}
