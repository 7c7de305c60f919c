//! Process liveness: whether the process behind a pid that a peer recorded (an NF's pid in its
//! slot, a core's pid in a region file name) still runs.
//!
//! One definition for every party: the core's supervisor, an NF taking over a slot, the core
//! re-initialising a crashed core's region, the hugepage cleaner. It is a point-in-time answer
//! about a pid, not about a process: a pid can be reused, so callers that must not confuse two
//! processes also compare a start time (as the manager does).

/// Whether process `pid` is alive: it exists and is neither a zombie nor dead (state `Z` or `X`
/// in `/proc/<pid>/stat`). A process this one may not signal (`EPERM`) exists and counts as
/// alive; pid 0 and pids that are not a positive `pid_t` are never alive.
pub fn pid_alive(pid: u32) -> bool {
    let Ok(p) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if p <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 sends nothing and only checks that `p` exists; `p` is positive
    // (checked above), so it names one process, never a process group or every process.
    if unsafe { libc::kill(p, 0) } != 0 {
        return std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    }
    // A killed process that its parent has not reaped yet still answers kill(0): a zombie, or
    // a dead one, is gone. Without a readable /proc, kill's answer stands.
    match std::fs::read(format!("/proc/{p}/stat")) {
        Ok(stat) => !matches!(stat_state(&stat), Some(b'Z' | b'X')),
        Err(_) => true,
    }
}

/// The state letter of a `/proc/<pid>/stat` line, `pid (comm) S …`: the command name may hold
/// spaces and parentheses, so the state is the first non-blank byte after the last `)`.
fn stat_state(stat: &[u8]) -> Option<u8> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    stat.get(close + 1..)?
        .iter()
        .copied()
        .find(|b| !b.is_ascii_whitespace())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines() {
        assert_eq!(stat_state(b"42 (sleep) S 1 42"), Some(b'S'));
        assert_eq!(stat_state(b"42 (a) b) (c) Z 1"), Some(b'Z'));
        assert_eq!(stat_state(b"42 (x)"), None);
        assert_eq!(stat_state(b"garbage"), None);
    }

    #[test]
    fn liveness() {
        assert!(pid_alive(std::process::id()));
        assert!(!pid_alive(0));
        assert!(!pid_alive(u32::MAX));
        // pid 1 exists in every pid namespace; signalling it may be refused (EPERM): alive.
        assert!(pid_alive(1));
        // A child that exited and was reaped is dead.
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        assert!(!pid_alive(pid));
    }

    #[test]
    fn zombie_is_dead() {
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let pid = c.id();
        // Not reaped yet: once it has exited it is a zombie, which kill(0) still finds.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while pid_alive(pid) {
            assert!(
                std::time::Instant::now() < deadline,
                "child {pid} still alive"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let stat = std::fs::read(format!("/proc/{pid}/stat")).unwrap();
        assert_eq!(stat_state(&stat), Some(b'Z'));
        c.wait().unwrap();
    }
}
