//! Changing a running instance: `nf add`, `nf remove` and `chain set`.
//!
//! * `nf add` / `nf remove` go to the running `up` through its own socket
//!   (`<run_dir>/manager.sock`, root only): `up` owns every NF process — it starts the new one
//!   as its child (own user and domain group, CPU pinning, log, parent-death signal), watches
//!   it like the configured ones, records it in the state file (so `status` and `down` know it)
//!   and stops it at teardown. `up` asks the core first (`nf_add`: a free entry, the control
//!   region, the service), then starts the process and waits until it attached; if anything
//!   fails after the core said yes, the process is stopped and the core's `nf_remove` undoes
//!   the rest. `nf remove` asks the core to remove the NF (no new packets, a grace period to
//!   return what it holds, the rest reclaimed, the entry freed) and then stops the process.
//! * `chain set FILE` sends the chains in FILE (a JSON array of chains, or an object with a
//!   `chains` array: the config's schema) to the core's `set_chains`.
//!
//! Requests and answers on `manager.sock` are one JSON line each ([`MgrRequest`],
//! [`MgrAnswer`]).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use netvm_api::config::ChainConfig;
use netvm_api::protocol::{Request, SetChainsAnswer};
use serde::{Deserialize, Serialize};

use crate::control;
use crate::error::{io, ManagerError};
use crate::instance::Target;
use crate::state::State;
use crate::up::REQUEST_TIMEOUT;

/// The `up` manager's socket in its run directory.
pub const MANAGER_SOCKET: &str = "manager.sock";

/// How long a client waits for `up` to answer (an added NF may take its attach timeout).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(180);

/// An NF to add.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NfSpec {
    /// Instance name (new).
    pub name: String,
    /// Service it provides (existing or new).
    pub service: String,
    /// Its domain.
    pub domain: String,
    /// Program: a path (absolute) or a bare name (next to netvm-manager, else on PATH).
    pub program: String,
    /// CPU to pin it to.
    pub cpu: Option<usize>,
    /// Its arguments (after the `--region`, `--control`, `--nf` the manager gives it).
    pub args: Vec<String>,
}

/// A request to the running `up`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum MgrRequest {
    /// Add and start an NF.
    NfAdd(NfSpec),
    /// Remove an NF and stop its process.
    NfRemove {
        /// NF name.
        name: String,
    },
}

/// `up`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MgrAnswer {
    /// Whether it was done.
    pub ok: bool,
    /// What was done (one line), when `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Why not (one line), when not `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl MgrAnswer {
    /// The answer for `r`.
    pub fn from_result(r: Result<String, String>) -> Self {
        match r {
            Ok(m) => Self {
                ok: true,
                message: Some(m),
                error: None,
            },
            Err(e) => Self {
                ok: false,
                message: None,
                error: Some(one_line(&e)),
            },
        }
    }
}

/// `s` on one line (an error that quotes a log keeps its first line).
fn one_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_owned()
}

/// The manager socket of `run_dir`.
pub fn socket_path(run_dir: &Path) -> PathBuf {
    run_dir.join(MANAGER_SOCKET)
}

/// `up`'s end: a non-blocking listener polled from its main loop.
pub struct Listener {
    listener: UnixListener,
    path: PathBuf,
}

impl Listener {
    /// Binds `<run_dir>/manager.sock` (mode 0600).
    pub fn bind(run_dir: &Path) -> Result<Self, ManagerError> {
        use std::os::unix::fs::PermissionsExt;
        let path = socket_path(run_dir);
        let _ = std::fs::remove_file(&path);
        let listener =
            UnixListener::bind(&path).map_err(io(format!("binding {}", path.display())))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(io(format!("chmod {}", path.display())))?;
        listener
            .set_nonblocking(true)
            .map_err(io(format!("listening on {}", path.display())))?;
        Ok(Self { listener, path })
    }

    /// A waiting request, if any, with the connection to answer on. A connection that
    /// sends no valid request in time is answered with the error and dropped.
    pub fn next(&self) -> Option<(MgrRequest, UnixStream)> {
        loop {
            let (stream, _) = self.listener.accept().ok()?;
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
            let mut line = String::new();
            let read = stream
                .try_clone()
                .and_then(|s| BufReader::new(s).read_line(&mut line));
            match read.map_err(|e| e.to_string()).and_then(|_| {
                serde_json::from_str::<MgrRequest>(line.trim()).map_err(|e| e.to_string())
            }) {
                Ok(req) => return Some((req, stream)),
                Err(e) => reply(
                    stream,
                    &MgrAnswer::from_result(Err(format!("bad request: {e}"))),
                ),
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Writes `a` on `stream` (a client that went away misses it).
pub fn reply(mut stream: UnixStream, a: &MgrAnswer) {
    let _ = writeln!(stream, "{}", serde_json::to_string(a).unwrap_or_default());
}

/// Sends `req` to the `up` of `target`; returns its message line.
fn ask_up(target: &Target, req: &MgrRequest, what: String) -> Result<String, ManagerError> {
    let run_dir = target.run_dir()?;
    let path = socket_path(&run_dir);
    let up_alive = State::load(&run_dir)
        .ok()
        .flatten()
        .is_some_and(|s| s.manager.alive());
    let mut s = match UnixStream::connect(&path) {
        Ok(s) => s,
        Err(e) => {
            return Err(ManagerError::NotRunning {
                why: if up_alive {
                    format!("its manager does not answer on {} ({e})", path.display())
                } else {
                    format!(
                        "no `netvm-manager up` runs in {} (NFs are added to an instance its manager runs)",
                        run_dir.display()
                    )
                },
            })
        }
    };
    let comm = |e: std::io::Error| ManagerError::Io {
        what: format!("talking to the manager on {}", path.display()),
        source: e,
    };
    s.set_read_timeout(Some(ANSWER_TIMEOUT)).map_err(comm)?;
    writeln!(s, "{}", serde_json::to_string(req).unwrap_or_default()).map_err(comm)?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).map_err(comm)?;
    let a: MgrAnswer = match serde_json::from_str(line.trim()) {
        Ok(a) => a,
        Err(e) => {
            return Err(ManagerError::Runtime {
                what,
                why: format!("malformed answer from the manager ({e}): {line:?}"),
            })
        }
    };
    if a.ok {
        Ok(a.message.unwrap_or_default())
    } else {
        Err(ManagerError::Runtime {
            what,
            why: a.error.unwrap_or_else(|| "refused without a reason".into()),
        })
    }
}

/// `nf add`: asks the running `up` to add and start the NF; returns what it did.
pub fn nf_add(target: &Target, mut spec: NfSpec) -> Result<String, ManagerError> {
    // A program path is the caller's, relative to where it runs; a bare name is resolved by
    // `up` (next to netvm-manager, then PATH).
    if spec.program.contains('/') {
        spec.program = std::path::absolute(&spec.program)
            .map_or(spec.program.clone(), |p| p.display().to_string());
    }
    let what = format!("nf add {}", spec.name);
    ask_up(target, &MgrRequest::NfAdd(spec), what)
}

/// `nf remove`: asks the running `up` to remove the NF and stop its process.
pub fn nf_remove(target: &Target, name: &str) -> Result<String, ManagerError> {
    let what = format!("nf remove {name}");
    ask_up(
        target,
        &MgrRequest::NfRemove {
            name: name.to_owned(),
        },
        what,
    )
}

/// The chains in a `chain set` file: an array of chains, or an object with `chains`.
pub fn read_chains(file: &Path) -> Result<Vec<ChainConfig>, ManagerError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        chains: Vec<ChainConfig>,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum File {
        List(Vec<ChainConfig>),
        Doc(Doc),
    }
    let text = std::fs::read_to_string(file).map_err(io(format!("reading {}", file.display())))?;
    match serde_json::from_str::<File>(&text) {
        Ok(File::List(c)) => Ok(c),
        Ok(File::Doc(d)) => Ok(d.chains),
        Err(_) => {
            // Say what is wrong with it as chains (the untagged error says nothing useful).
            let e = serde_json::from_str::<Vec<ChainConfig>>(&text)
                .err()
                .or_else(|| serde_json::from_str::<Doc>(&text).err())
                .map_or_else(String::new, |e| e.to_string());
            Err(ManagerError::Runtime {
                what: format!("chain set {}", file.display()),
                why: format!("not a JSON array of chains nor {{\"chains\": [...]}}: {e}"),
            })
        }
    }
}

/// `chain set FILE`: replaces the running instance's chains; returns the tables version.
pub fn chain_set(target: &Target, file: &Path) -> Result<u64, ManagerError> {
    let chains = read_chains(file)?;
    let (socket, _) = crate::instance::locate(target)?;
    match control::request::<SetChainsAnswer>(
        &socket,
        &Request::SetChains { chains },
        REQUEST_TIMEOUT,
    ) {
        Ok(a) => Ok(a.version),
        Err(control::ControlError::Refused { error, .. }) => Err(ManagerError::Runtime {
            what: format!("chain set {}", file.display()),
            why: error,
        }),
        Err(source) => Err(ManagerError::Control { socket, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        let r = MgrRequest::NfAdd(NfSpec {
            name: "m".into(),
            service: "mon".into(),
            domain: "d".into(),
            program: "monitor".into(),
            cpu: Some(1),
            args: vec!["-v".into()],
        });
        let line = serde_json::to_string(&r).unwrap();
        assert!(line.starts_with(r#"{"cmd":"nf_add","name":"m""#), "{line}");
        assert_eq!(serde_json::from_str::<MgrRequest>(&line).unwrap(), r);
        let r = MgrRequest::NfRemove { name: "m".into() };
        let line = serde_json::to_string(&r).unwrap();
        assert_eq!(line, r#"{"cmd":"nf_remove","name":"m"}"#);
    }

    #[test]
    fn chain_files() {
        let dir = std::env::temp_dir().join(format!("netvm-chainset-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.json");
        std::fs::write(&f, r#"[{"name":"a","services":["x"],"egress":"out"}]"#).unwrap();
        assert_eq!(read_chains(&f).unwrap()[0].name, "a");
        std::fs::write(&f, r#"{"chains":[{"name":"b","egress":"drop"}]}"#).unwrap();
        assert_eq!(read_chains(&f).unwrap()[0].egress.as_deref(), Some("drop"));
        std::fs::write(&f, r#"[{"name":"a","egress":"out","speed":1}]"#).unwrap();
        let e = crate::error::chain(&read_chains(&f).unwrap_err());
        assert!(e.contains("unknown field `speed`"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
