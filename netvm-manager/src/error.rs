//! The manager's error type: one enum, sentence-style messages, sources chained.

use std::path::PathBuf;

use netvm_api::config::ConfigError;

/// Everything that can go wrong in a manager command.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    /// The configuration is invalid (exit code 2). Displays as `FILE` with the
    /// [`ConfigError`] (`PATH: REASON`) as its source.
    #[error("{}", file.display())]
    Invalid {
        /// The config file as given.
        file: PathBuf,
        /// The JSON path and the reason.
        #[source]
        source: ConfigError,
    },
    /// No guest image for VM NFs.
    #[error("no guest image in {} (vmlinuz, initramfs.cpio.gz): build it with scripts/build-guest.sh, or pass --guest-image / NETVM_GUEST_IMAGE", dir.display())]
    NoGuestImage {
        /// Where it was looked for.
        dir: PathBuf,
    },
    /// A VM NF cannot be started as configured.
    #[error("VM NF {nf:?}: {reason}")]
    Guest {
        /// The NF.
        nf: String,
        /// Why.
        reason: String,
    },
    /// File or directory I/O.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file of the manager (state file, core report) could not be read.
    #[error("{} is not valid", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// serde_json's error.
        #[source]
        source: serde_json::Error,
    },
    /// Reading the hugepage counters failed.
    #[error("reading the hugepage counters")]
    HugepageStatus(#[source] hugepage_tools::StatusError),
    /// Reserving (or restoring) hugepages failed.
    #[error("reserving hugepages")]
    Reserve(#[source] hugepage_tools::ReserveError),
    /// Starting a process failed.
    #[error("starting {what} ({})", program.display())]
    Spawn {
        /// Which part (e.g. `NF "fw1"`).
        what: String,
        /// The program.
        program: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The `netvm-core` binary was not found.
    #[error("netvm-core not found next to {} nor on PATH: build it (`cargo build --workspace`) or pass --core", manager.display())]
    NoCoreBinary {
        /// The manager executable.
        manager: PathBuf,
    },
    /// The core exited while the manager was starting the instance.
    #[error("netvm-core (pid {pid}) exited with {status} while starting: {message} (log: {})", log.display())]
    CoreExited {
        /// Its pid.
        pid: u32,
        /// Exit status, in words.
        status: String,
        /// Its last error line.
        message: String,
        /// Its log file.
        log: PathBuf,
    },
    /// The core did not open its control socket in time.
    #[error("netvm-core (pid {pid}) did not open {} within {secs} s (log: {})", socket.display(), log.display())]
    NoSocket {
        /// Its pid.
        pid: u32,
        /// The socket path.
        socket: PathBuf,
        /// Seconds waited.
        secs: u64,
        /// Its log file.
        log: PathBuf,
    },
    /// An NF process exited before every NF had attached.
    #[error("NF {nf:?} (pid {pid}) exited with {status} before attaching: {message} (log: {})", log.display())]
    NfExited {
        /// NF name.
        nf: String,
        /// Its pid.
        pid: u32,
        /// Exit status, in words.
        status: String,
        /// Its last log line.
        message: String,
        /// Its log file.
        log: PathBuf,
    },
    /// Some NFs did not attach in time.
    #[error("NFs did not attach within {secs} s: {}", missing.iter().map(|(n, l)| format!("{n} (log: {})", l.display())).collect::<Vec<_>>().join(", "))]
    AttachTimeout {
        /// Seconds waited.
        secs: u64,
        /// Missing NFs with their log files.
        missing: Vec<(String, PathBuf)>,
    },
    /// A signal arrived while the instance was starting.
    #[error("interrupted while starting; everything started was stopped")]
    Interrupted,
    /// A control-socket request failed.
    #[error("control socket {}", socket.display())]
    Control {
        /// The socket.
        socket: PathBuf,
        /// What failed.
        #[source]
        source: crate::control::ControlError,
    },
    /// An instance with this run directory is already running.
    #[error("instance {name:?} is already running (manager pid {pid}, state {})", state.display())]
    AlreadyRunning {
        /// Instance name.
        name: String,
        /// Its manager's pid.
        pid: u32,
        /// Its state file.
        state: PathBuf,
    },
    /// No running instance was found.
    #[error("no running instance: {why}")]
    NotRunning {
        /// What was looked for.
        why: String,
    },
    /// `down` could not stop every process.
    #[error("could not stop {what}")]
    Stuck {
        /// What is still there.
        what: String,
    },
    /// The core ended without writing its final report.
    #[error("netvm-core (pid {pid}) exited with {status} without a final report: {message} (log: {})", log.display())]
    NoReport {
        /// Its pid.
        pid: u32,
        /// Exit status, in words.
        status: String,
        /// Its last error line.
        message: String,
        /// Its log file.
        log: PathBuf,
    },
    /// Writing the pcap failed.
    #[error("writing {}", path.display())]
    Pcap {
        /// The pcap file.
        path: PathBuf,
        /// netvm-wire's error.
        #[source]
        source: netvm_wire::PcapError,
    },
    /// The metrics server could not bind its address.
    #[error("cannot listen on {addr}")]
    Listen {
        /// The address as given.
        addr: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Writing the pcapng capture failed.
    #[error("writing {}", path.display())]
    Pcapng {
        /// The file (`stdout` for `-w -`).
        path: PathBuf,
        /// netvm-wire's error.
        #[source]
        source: netvm_wire::pcapng::PcapngError,
    },
    /// The core refused a capture (unknown NF or port, bad filter, one already running…).
    #[error("capture at {at}: {why}")]
    Capture {
        /// The capture point as given.
        at: String,
        /// What the core said.
        why: String,
    },
    /// A change to a running instance (`nf add`, `nf remove`, `chain set`) was refused or
    /// failed; nothing of it was left behind.
    #[error("{what}: {why}")]
    Runtime {
        /// The command, e.g. `nf add fw2`.
        what: String,
        /// What is wrong (one line).
        why: String,
    },
    /// A command-line value is out of range.
    #[error("invalid --{arg}: {why}")]
    BadArg {
        /// The option.
        arg: &'static str,
        /// Why.
        why: String,
    },
}

impl ManagerError {
    /// The process exit code for this error: 2 for an invalid configuration, else 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            ManagerError::Invalid { .. } => 2,
            _ => 1,
        }
    }
}

/// `outer: inner: innermost` for an error and its sources.
pub fn chain(err: &dyn std::error::Error) -> String {
    hugepage_tools::error_chain(err)
}

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ManagerError {
    let what = what.into();
    move |source| ManagerError::Io { what, source }
}
