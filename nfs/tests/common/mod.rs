//! Helpers for running NF binaries against a test core.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use netlib_guest::testkit::{wait_until, FakeCore};
use netvm_shm::SlotState;

pub const LONG: Duration = Duration::from_secs(30);

/// Kills (SIGKILL) and reaps the child when dropped, also when the test panics.
pub struct NfProcess(Option<Child>);

impl NfProcess {
    /// Starts `bin --region <core's region> --nf <name> args...` with piped output.
    pub fn spawn(bin: &str, core: &FakeCore, name: &str, args: &[&str]) -> Self {
        let child = Command::new(bin)
            .arg("--region")
            .arg(core.path())
            .args(["--nf", name])
            .args(args)
            .env_remove("NETVM_REGION")
            .env_remove("NETVM_NF")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        Self(Some(child))
    }

    pub fn pid(&self) -> u32 {
        self.0.as_ref().map_or(0, Child::id)
    }

    pub fn exited(&mut self) -> bool {
        self.0
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))))
    }

    /// Waits until the NF attached to `slot`; panics with its stderr if it exited instead.
    pub fn wait_attached(&mut self, core: &FakeCore, slot: u32) {
        let ok = wait_until(LONG, || {
            self.exited() || core.slot_state(slot) == Some(SlotState::Attached)
        });
        if self.exited() || !ok {
            let out = self.0.take().unwrap().wait_with_output().unwrap();
            panic!(
                "NF did not attach: {}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert_eq!(core.control(slot).slot(0).unwrap().nf_pid(), self.pid());
    }

    /// Sends `sig` and collects the exit status and output.
    pub fn signal_and_wait(mut self, sig: i32) -> Output {
        let child = self.0.take().unwrap();
        let pid = libc::pid_t::try_from(child.id()).unwrap();
        // SAFETY: plain kill(2) on our own, not yet reaped child.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
        child.wait_with_output().unwrap()
    }

    /// Waits for the child to exit by itself.
    pub fn wait(mut self) -> Output {
        self.0.take().unwrap().wait_with_output().unwrap()
    }
}

impl Drop for NfProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A temp file removed on drop.
pub struct TempFile(pub PathBuf);

impl TempFile {
    pub fn new(tag: &str, contents: &str) -> Self {
        let p = std::env::temp_dir().join(format!("netvm-nfs-test-{tag}-{}", std::process::id()));
        std::fs::write(&p, contents).unwrap();
        Self(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn arg(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
