//! Finding the programs the manager starts: NF programs and `netvm-core`.
//!
//! Rule: a program with a `/` is a path (relative ones relative to the config file's
//! directory); a bare name is looked up next to the `netvm-manager` executable (so a cargo
//! build's `target/<profile>/` works as is), then on `PATH`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Whether `p` is a regular file with an execute bit.
pub fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The directory of the running executable.
pub fn exe_dir() -> Option<PathBuf> {
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
}

/// Resolves `program` (see the module docs); the error says where it looked.
pub fn resolve(program: &str, base_dir: &Path) -> Result<PathBuf, String> {
    if program.is_empty() {
        return Err("program is empty".into());
    }
    if program.contains('/') {
        let p = base_dir.join(program);
        if !p.exists() {
            return Err(format!("program {} does not exist", p.display()));
        }
        if !is_executable(&p) {
            return Err(format!("program {} is not an executable file", p.display()));
        }
        return Ok(p);
    }
    let mut looked = Vec::new();
    if let Some(d) = exe_dir() {
        let p = d.join(program);
        if is_executable(&p) {
            return Ok(p);
        }
        looked.push(d.display().to_string());
    }
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            let p = d.join(program);
            if is_executable(&p) {
                return Ok(p);
            }
        }
    }
    looked.push("PATH".into());
    Err(format!(
        "program {program:?} not found (looked next to netvm-manager in {})",
        looked.join(" and on ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_path_search() {
        let here = Path::new("/");
        assert_eq!(resolve("/bin/sh", here).unwrap(), PathBuf::from("/bin/sh"));
        assert_eq!(resolve("bin/sh", here).unwrap(), PathBuf::from("/bin/sh"));
        assert!(resolve("sh", here).unwrap().ends_with("sh"));
        let e = resolve("no-such-program-xyz", here).unwrap_err();
        assert!(e.contains("not found"), "{e}");
        let e = resolve("/etc/passwd", here).unwrap_err();
        assert!(e.contains("not an executable"), "{e}");
    }
}
