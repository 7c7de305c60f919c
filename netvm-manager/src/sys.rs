//! Small facts about the machine and its processes: usable CPUs, memory, process identity.

use std::path::Path;

/// CPUs this process may run on (its affinity mask, which cgroup cpusets narrow too); NFs and
/// workers can be pinned only to these.
pub fn usable_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_getaffinity writes at most
    // `size_of::<cpu_set_t>()` bytes into it; CPU_ISSET reads bits inside it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
            let max = 8 * std::mem::size_of::<libc::cpu_set_t>();
            return (0..max).filter(|&c| libc::CPU_ISSET(c, &set)).collect();
        }
    }
    let n = std::thread::available_parallelism().map_or(1, usize::from);
    (0..n).collect()
}

/// `0-3,6` style list of CPUs.
pub fn cpu_list(cpus: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let start = cpus[i];
        let mut end = start;
        while i + 1 < cpus.len() && cpus[i + 1] == end + 1 {
            i += 1;
            end = cpus[i];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    out.join(",")
}

/// `MemTotal` in bytes, if /proc/meminfo says.
pub fn mem_total() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

/// Start time of a process (clock ticks after boot, field 22 of `/proc/<pid>/stat`) and
/// whether it is a zombie. `None` if there is no such process.
pub fn proc_stat(pid: u32) -> Option<(u64, bool)> {
    let text =
        std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat")).ok()?;
    // The command name is in parentheses and may contain anything; fields follow the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let mut f = rest.split_whitespace();
    let state = f.next()?;
    // After the state come fields 4.. ; start time is field 22, i.e. the 19th after the state.
    let start: u64 = f.nth(18)?.parse().ok()?;
    Some((start, state == "Z" || state == "X"))
}

/// Whether `pid` is a live (not zombie) process that started at `start_time`, so that a pid
/// recorded earlier still names the same process.
pub fn same_process_alive(pid: u32, start_time: u64) -> bool {
    matches!(proc_stat(pid), Some((t, false)) if t == start_time)
}

/// Sends `sig` to `pid` if it still is the process that started at `start_time`.
/// Returns whether the signal was sent.
pub fn signal_if_same(pid: u32, start_time: u64, sig: libc::c_int) -> bool {
    if !same_process_alive(pid, start_time) {
        return false;
    }
    let Ok(p) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) with a positive pid that was just checked to be the recorded process;
    // no memory is passed.
    unsafe { libc::kill(p, sig) == 0 }
}

/// Whether the manager runs as root (it can then give each domain's NFs their own user).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Whether an unprivileged user (no owner or group match) can run `program` in `cwd` with
/// `args`: every directory on the way must be searchable by others, the program executable by
/// others, and every argument naming an existing file readable by others.
pub fn usable_by_others(program: &std::path::Path, cwd: &std::path::Path, args: &[String]) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.permissions().mode()).ok();
    let dirs_ok = |p: &std::path::Path| {
        p.ancestors()
            .skip(1)
            .all(|d| d.as_os_str().is_empty() || mode(d).is_some_and(|m| m & 0o001 != 0))
    };
    let abs = |p: &std::path::Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            cwd.join(p)
        }
    };
    let prog = abs(program);
    if !dirs_ok(&prog) || mode(&prog).is_none_or(|m| m & 0o001 == 0) {
        return false;
    }
    if !dirs_ok(&cwd.join("x")) {
        return false;
    }
    args.iter()
        .map(|a| abs(std::path::Path::new(a)))
        .filter(|p| p.is_file())
        .all(|p| dirs_ok(&p) && mode(&p).is_some_and(|m| m & 0o004 != 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(cpu_list(&[0, 1, 2, 3, 6, 8, 9]), "0-3,6,8-9");
        assert_eq!(cpu_list(&[1]), "1");
        assert!(!usable_cpus().is_empty());
    }

    #[test]
    fn own_process_identity() {
        let me = std::process::id();
        let (start, zombie) = proc_stat(me).unwrap();
        assert!(!zombie);
        assert!(same_process_alive(me, start));
        assert!(!same_process_alive(me, start + 1));
        assert!(mem_total().unwrap() > 0);
    }
}
