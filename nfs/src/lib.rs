//! netvm's network functions: l2fwd, l3fwd, firewall, monitor and reflector.
//!
//! Each NF is a thin binary (`src/bin/<nf>.rs`) over one module here. A module holds the NF's
//! command line ([`clap`] derive, with netlib-guest's [`NfOptions`] flattened in: `--region`,
//! `--nf`, or `NETVM_REGION` / `NETVM_NF`), its per-packet logic as plain functions and structs
//! over `&mut [u8]` (unit-tested without a region), and a `main` that attaches, runs the
//! netlib-guest loop until SIGINT/SIGTERM and prints a summary.
//!
//! Per-packet code parses with `netvm-wire`'s checked views and never allocates or panics;
//! tables are sized at start-up.
#![warn(missing_docs)]

pub mod firewall;
pub mod l2fwd;
pub mod l3fwd;
pub mod monitor;
pub mod reflector;

use std::path::PathBuf;
use std::process::ExitCode;

use netlib_guest::{NfError, NfOptions, NfStats, PacketHandler};

/// Why an NF binary failed.
#[derive(Debug, thiserror::Error)]
pub enum NfsError {
    /// Signal handlers could not be installed.
    #[error("cannot set up signal handling")]
    Signals(#[source] NfError),
    /// Attaching to the region failed.
    #[error("cannot attach the NF")]
    Attach(#[source] NfError),
    /// The packet loop failed.
    #[error("the packet loop failed")]
    Run(#[source] NfError),
    /// A configuration file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The route file is invalid.
    #[error("invalid route file {path}")]
    Routes {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line number.
        #[source]
        source: netvm_wire::RouteFileError,
    },
    /// The routes do not fit the LPM table.
    #[error("cannot build the route table from {path}")]
    Lpm {
        /// The route file.
        path: PathBuf,
        /// Why.
        #[source]
        source: netvm_wire::LpmError,
    },
    /// The ACL file is invalid.
    #[error("invalid rule file {path}")]
    Acl {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line number.
        #[source]
        source: netvm_wire::AclFileError,
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

/// Reads a configuration file.
pub(crate) fn read_file(path: &std::path::Path) -> Result<String, NfsError> {
    std::fs::read_to_string(path).map_err(|source| NfsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Attaches as `opts` says, runs `handler` until SIGINT/SIGTERM, detaches, and returns the
/// statistics. Every NF binary's main loop.
pub fn run_nf<H: PacketHandler>(
    prog: &str,
    opts: &NfOptions,
    handler: &mut H,
) -> Result<NfStats, NfsError> {
    netlib_guest::signal::install_handlers().map_err(NfsError::Signals)?;
    let mut nf = opts.attach().map_err(NfsError::Attach)?;
    eprintln!(
        "{prog}: attached as {:?} (slot {}, service {}, {} RX ring(s)) to {}",
        nf.name(),
        nf.slot(),
        nf.service_id(),
        nf.ring_ids().0.len(),
        nf.region_path()
            .map_or_else(|| "<mapping>".into(), |p| p.display().to_string())
    );
    let r = nf.run_handler(handler);
    let stats = nf.detach();
    r.map_err(NfsError::Run)?;
    Ok(stats)
}

/// The summary line every NF prints on exit.
#[must_use]
pub fn summary_line(prog: &str, s: &NfStats) -> String {
    format!(
        "{prog}: packets in {} ({} bytes), out {} ({} bytes), dropped {}; verdicts next {} \
         service {} out {} drop {}; sleeps {}, re-attaches {}",
        s.rx_pkts,
        s.rx_bytes,
        s.tx_pkts.saturating_sub(s.dropped),
        s.tx_bytes,
        s.dropped,
        s.next,
        s.service,
        s.out,
        s.dropped,
        s.sleeps,
        s.reattaches
    )
}

/// A binary's exit: on error, prints the error and its causes once to stderr and fails.
pub fn exit(prog: &str, r: Result<(), NfsError>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut msg = format!("{prog}: error: {e}");
            let mut src = std::error::Error::source(&e);
            while let Some(c) = src {
                msg.push_str(&format!("\n  caused by: {c}"));
                src = c.source();
            }
            eprintln!("{msg}");
            ExitCode::FAILURE
        }
    }
}
