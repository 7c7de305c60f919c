//! The C API: the burst functions called in-process, and the example C NF
//! (`examples/c/nf_mark.c`) compiled with `cc` against `libnetlib_guest.a` and run as a process.
// Test data is made by deliberately truncating wider integers.
#![allow(clippy::cast_possible_truncation)]

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use netlib_guest::ffi::{
    netlib_attach, netlib_detach, netlib_get_stats, netlib_last_error, netlib_rx_burst,
    netlib_set_verdict, netlib_tx_burst, NetlibPkt, NetlibStats, NETLIB_OK, NETLIB_RESTARTED,
};
use netlib_guest::testkit::{wait_until, FakeCore, HEADROOM};
use netlib_guest::{Descriptor, Verdict};
use netvm_shm::SlotState;

mod common;
use common::{frame, ChildGuard};

const LONG: Duration = Duration::from_secs(30);

fn last_error() -> String {
    // SAFETY: netlib_last_error returns a valid NUL-terminated string.
    unsafe { std::ffi::CStr::from_ptr(netlib_last_error()) }
        .to_string_lossy()
        .into_owned()
}

fn empty_pkt() -> NetlibPkt {
    NetlibPkt {
        data: std::ptr::null_mut(),
        buf: std::ptr::null_mut(),
        token: 0,
        len: 0,
        buf_len: 0,
        flow_hash: 0,
        in_port: 0,
        verdict: 0,
        verdict_arg: 0,
        reserved: 0,
    }
}

#[test]
fn burst_functions_in_process() {
    let mut core = FakeCore::temp("ffi", 2).unwrap();
    core.reserve(0, "cnf", 1).unwrap();
    let path = CString::new(core.path().as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: valid C strings.
    let nf = unsafe { netlib_attach(path.as_ptr(), c"cnf".as_ptr()) };
    assert!(!nf.is_null(), "{}", last_error());
    assert_eq!(core.slot_state(0), Some(SlotState::Attached));

    let frames: Vec<Vec<u8>> = (0..5).map(frame).collect();
    let descs: Vec<Descriptor> = frames
        .iter()
        .enumerate()
        .map(|(i, f)| core.load(i as u32, f, 2))
        .collect();
    core.send(0, 1, &descs).unwrap();

    let mut pkts = [empty_pkt(); 8];
    // SAFETY: `pkts` has 8 writable entries.
    let n = unsafe { netlib_rx_burst(nf, pkts.as_mut_ptr(), 8) };
    assert_eq!(n, 5, "{}", last_error());
    let mut by_idx = [0usize; 5];
    for (k, p) in pkts[..5].iter().enumerate() {
        // SAFETY: the library gave `len` readable bytes at `data`.
        let bytes = unsafe { std::slice::from_raw_parts(p.data, p.len as usize) };
        let i = frames
            .iter()
            .position(|f| f[..] == *bytes)
            .expect("a frame we sent");
        by_idx[i] = k;
        assert_eq!(p.in_port, 2);
        assert_eq!(p.verdict, 0);
        assert_eq!(p.data as usize - p.buf as usize, usize::from(HEADROOM));
        assert_eq!(p.buf_len, 2176);
    }
    // SAFETY: every pointer below comes from netlib_rx_burst and stays inside its buffer.
    unsafe {
        // 0: OUT 4, first byte rewritten.
        let p = &mut pkts[by_idx[0]];
        *p.data = 0xee;
        assert_eq!(netlib_set_verdict(p, 3, 4), NETLIB_OK);
        // 1: prepend 2 bytes.
        let p = &mut pkts[by_idx[1]];
        p.data = p.data.sub(2);
        p.len += 2;
        *p.data = 0xab;
        *p.data.add(1) = 0xcd;
        p.verdict = 1;
        // 2: moved outside its buffer: returned with its original bounds and DROP.
        let p = &mut pkts[by_idx[2]];
        p.data = p.buf.add(2170);
        p.len = 100;
        p.verdict = 1;
        // 3: unknown verdict code: DROP.
        pkts[by_idx[3]].verdict = 77;
        // 4: no verdict: DROP.
    }
    // A stale copy of a token returned twice is ignored.
    let dup = pkts[by_idx[0]];
    let mut ret: Vec<NetlibPkt> = pkts[..5].to_vec();
    ret.push(dup);
    // SAFETY: `ret` has 6 readable entries.
    let r = unsafe { netlib_tx_burst(nf, ret.as_ptr(), 6) };
    assert_eq!(r, NETLIB_OK, "{}", last_error());

    let back = core.recv_n(0, 5, LONG);
    assert_eq!(back.len(), 5);
    for d in &back {
        let i = d.buf_idx as usize;
        let bytes = core.bytes(d).unwrap();
        let v = Verdict::from_raw(d.verdict, d.verdict_arg);
        match i {
            0 => {
                assert_eq!(v, Some(Verdict::Out(4)));
                assert_eq!(bytes[0], 0xee);
                assert_eq!(&bytes[1..], &frames[0][1..]);
            }
            1 => {
                assert_eq!(v, Some(Verdict::Next));
                assert_eq!(d.data_off, HEADROOM - 2);
                assert_eq!(&bytes[..2], &[0xab, 0xcd]);
                assert_eq!(&bytes[2..], &frames[1][..]);
            }
            2 => {
                assert_eq!(v, Some(Verdict::Drop));
                assert_eq!(
                    (d.data_off, usize::from(d.data_len)),
                    (HEADROOM, frames[2].len())
                );
            }
            _ => assert_eq!(v, Some(Verdict::Drop)),
        }
    }
    let mut st = NetlibStats::default();
    // SAFETY: live handle, writable stats.
    assert_eq!(unsafe { netlib_get_stats(nf, &mut st) }, NETLIB_OK);
    assert_eq!((st.rx_pkts, st.tx_pkts, st.held), (5, 5, 0));
    assert_eq!((st.bad_adjust, st.bad_token, st.dropped), (1, 1, 3));

    // Two more received and held across a core restart: rx reports RESTARTED, the old tokens
    // are refused.
    let descs: Vec<Descriptor> = (10..12).map(|i| core.load(i, &frame(i), 0)).collect();
    core.send(0, 0, &descs).unwrap();
    // SAFETY: `pkts` has 8 writable entries.
    assert_eq!(unsafe { netlib_rx_burst(nf, pkts.as_mut_ptr(), 8) }, 2);
    core.restart().unwrap();
    // SAFETY: as above.
    let r = unsafe { netlib_rx_burst(nf, pkts.as_mut_ptr(), 8) };
    assert_eq!(r, NETLIB_RESTARTED);
    // SAFETY: 2 readable entries.
    assert_eq!(unsafe { netlib_tx_burst(nf, pkts.as_ptr(), 2) }, NETLIB_OK);
    let mut none = [Descriptor::default(); 4];
    assert_eq!(core.recv(0, &mut none).unwrap(), 0);

    // Held at detach: returned with DROP.
    let d = core.load(20, &frame(20), 0);
    core.send(0, 0, &[d]).unwrap();
    // SAFETY: as above.
    assert_eq!(unsafe { netlib_rx_burst(nf, pkts.as_mut_ptr(), 8) }, 1);
    // SAFETY: a live handle, not used afterwards.
    assert_eq!(unsafe { netlib_detach(nf) }, NETLIB_OK);
    let back = core.recv_n(0, 1, LONG);
    assert_eq!(back.len(), 1);
    assert_eq!(Verdict::from_raw(back[0].verdict, 0), Some(Verdict::Drop));
    assert_eq!(core.slot_state(0), Some(SlotState::Detached));
}

/// `target/<profile>/`: next to `deps/`, where this test binary lives.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary in target/<profile>/deps")
        .to_path_buf()
}

fn build_nf_mark(out: &Path) {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = profile_dir().join("libnetlib_guest.a");
    assert!(lib.exists(), "{} not built", lib.display());
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(cc)
        .args(["-O1", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(crate_dir.join("include"))
        .arg(crate_dir.join("examples/c/nf_mark.c"))
        .arg(&lib)
        .args([
            "-lgcc_s",
            "-lutil",
            "-lrt",
            "-lpthread",
            "-lm",
            "-ldl",
            "-lc",
            "-o",
        ])
        .arg(out)
        .status()
        .expect("run cc");
    assert!(status.success(), "cc failed: {status}");
}

#[test]
fn c_example_nf_marks_packets() {
    let mut core = FakeCore::temp("nf-mark", 2).unwrap();
    core.reserve(1, "mark", 3).unwrap();
    let exe = core.path().with_extension("nf_mark");
    struct Rm(PathBuf);
    impl Drop for Rm {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _rm = Rm(exe.clone());
    build_nf_mark(&exe);

    const N: u32 = 40;
    let mut child = ChildGuard(Some(
        Command::new(&exe)
            .args(["-c", &N.to_string()])
            .env("NETVM_REGION", core.path())
            .env("NETVM_NF", "mark")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    assert!(
        wait_until(LONG, || child.exited()
            || core.slot_state(1) == Some(SlotState::Attached)),
        "nf_mark did not attach"
    );
    if child.exited() {
        let out = child.take().wait_with_output().unwrap();
        panic!(
            "nf_mark exited early: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(core.control(1).slot(0).unwrap().nf_pid(), child.pid());

    let frames: Vec<Vec<u8>> = (0..N).map(frame).collect();
    let descs: Vec<Descriptor> = frames
        .iter()
        .enumerate()
        .map(|(i, f)| core.load(i as u32, f, 0))
        .collect();
    core.send(1, 0, &descs[..25]).unwrap();
    core.send(1, 1, &descs[25..]).unwrap();
    let back = core.recv_n(1, N as usize, LONG);
    assert_eq!(back.len(), N as usize);
    for d in &back {
        let f = &frames[d.buf_idx as usize];
        let mut want = f.clone();
        want[..6].copy_from_slice(&f[6..12]);
        want[6..12].copy_from_slice(&f[..6]);
        assert_eq!(
            Verdict::from_raw(d.verdict, d.verdict_arg),
            Some(Verdict::Next)
        );
        assert_eq!(core.bytes(d).unwrap(), want);
    }

    let out = child.take().wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "nf_mark failed: {}\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&format!("{N} packets marked")), "{stdout}");
    assert_eq!(core.slot_state(1), Some(SlotState::Detached));
}
