//! `capture`: frames at one point of a running instance into a pcapng file (or a pipe).
//!
//! One connection to the core's control socket: `capture_start` (the core checks the point,
//! the filter and the snapshot length and answers with one line naming what is wrong),
//! `capture_read` in a loop (base64 frames, written as Enhanced Packet Blocks and flushed per
//! batch so that `tshark -r -` sees them as they come), `capture_stop` on SIGINT/SIGTERM/
//! SIGHUP or when the reader of `-w -` goes away. The core stops the capture by itself if this
//! process dies (the connection closes). Counts go to stderr: stdout may be the capture.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use netvm_api::capture::{base64_decode, CapturePoint, MAX_READ_BATCH};
use netvm_api::config::MatchConfig;
use netvm_api::protocol::{CaptureReadAnswer, CaptureStartAnswer, CaptureStopAnswer, Request};
use netvm_wire::pcapng::{Direction, Interface, PcapngWriter, LINKTYPE_ETHERNET};

use crate::control::{Connection, ControlError};
use crate::error::ManagerError;
use crate::instance::Target;
use crate::signals;
use crate::state::State;
use crate::up::note;

/// What to capture and where to write it.
#[derive(Debug, Clone)]
pub struct CaptureOptions {
    /// Where.
    pub at: CapturePoint,
    /// Only frames matching this.
    pub filter: Option<MatchConfig>,
    /// Stop after this many frames.
    pub count: Option<u64>,
    /// Bytes per frame at most (default: whole frames).
    pub snaplen: Option<u32>,
    /// Output file; `-` is stdout.
    pub out: PathBuf,
}

/// How a capture ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureSummary {
    /// Frames written.
    pub written: u64,
    /// Frames the core copied.
    pub captured: u64,
    /// Matching frames the core could not copy (its capture rings were full).
    pub dropped: u64,
    /// Why it ended: `count`, `signal`, `reader gone`, `instance stopped`.
    pub ended_by: String,
}

/// How long to wait between reads that found nothing.
const IDLE: Duration = Duration::from_millis(10);
/// Control requests' timeout (a stop waits up to 1 s for the workers).
const TIMEOUT: Duration = Duration::from_secs(10);

/// The control socket of `target`: from its state file, else `RUN_DIR/control.sock`.
fn socket_of(target: &Target) -> Result<PathBuf, ManagerError> {
    let run_dir = target.run_dir()?;
    let socket =
        State::load(&run_dir)?.map_or_else(|| run_dir.join("control.sock"), |s| s.socket.clone());
    if !socket.exists() {
        return Err(ManagerError::NotRunning {
            why: format!("no control socket {} (is `up` running?)", socket.display()),
        });
    }
    Ok(socket)
}

fn capture_err(at: &CapturePoint, socket: &Path, e: ControlError) -> ManagerError {
    match e {
        ControlError::Refused { error, .. } => ManagerError::Capture {
            at: at.to_string(),
            why: error,
        },
        ControlError::Connect(source) => ManagerError::NotRunning {
            why: format!(
                "control socket {} does not answer ({source})",
                socket.display()
            ),
        },
        source => ManagerError::Control {
            socket: socket.to_path_buf(),
            source,
        },
    }
}

/// Runs a capture until its count, a signal, or the end of the instance.
pub fn capture(target: &Target, opts: &CaptureOptions) -> Result<CaptureSummary, ManagerError> {
    let socket = socket_of(target)?;
    let at = &opts.at;
    let mut conn = Connection::open(&socket, TIMEOUT).map_err(|e| capture_err(at, &socket, e))?;
    let start: CaptureStartAnswer = conn
        .request(&Request::CaptureStart {
            at: at.clone(),
            filter: opts.filter.clone(),
            snaplen: opts.snaplen,
            count: opts.count,
        })
        .map_err(|e| capture_err(at, &socket, e))?;
    let to_stdout = opts.out.as_os_str() == "-";
    let out_name = if to_stdout {
        "stdout".to_string()
    } else {
        opts.out.display().to_string()
    };
    let sink: Box<dyn Write> = if to_stdout {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(
            std::fs::File::create(&opts.out)
                .map_err(crate::error::io(format!("creating {}", opts.out.display())))?,
        )
    };
    let pcap_err = |source| ManagerError::Pcapng {
        path: PathBuf::from(&out_name),
        source,
    };
    let mut w = PcapngWriter::new(
        std::io::BufWriter::new(sink),
        concat!("netvm-manager ", env!("CARGO_PKG_VERSION"), " capture"),
    )
    .map_err(pcap_err)?;
    let iface = w
        .add_interface(&Interface {
            name: start.at.clone(),
            description: start.description.clone(),
            linktype: LINKTYPE_ETHERNET,
            snaplen: start.snaplen,
            nanos: true,
        })
        .map_err(pcap_err)?;
    w.flush().map_err(pcap_err)?;
    signals::install();
    note(format!(
        "capturing at {} (capture {}, snaplen {}{}) into {out_name}; Ctrl-C stops",
        start.at,
        start.id,
        start.snaplen,
        opts.count
            .map_or(String::new(), |c| format!(", {c} frames"))
    ));
    let dir = at.inbound().map(|i| {
        if i {
            Direction::Inbound
        } else {
            Direction::Outbound
        }
    });
    let mut sum = CaptureSummary::default();
    let mut stopping: Option<&str> = None;
    // False once the reader of `-w -` went away: frames are still read (to end the capture
    // cleanly) but no longer written.
    let mut sink_ok = true;
    loop {
        if stopping.is_none() && signals::received().is_some() {
            stopping = Some("signal");
        }
        if let Some(why) = stopping {
            if sum.ended_by.is_empty() {
                sum.ended_by = why.into();
                match conn.request::<CaptureStopAnswer>(&Request::CaptureStop) {
                    Ok(_) => {}
                    // Over by its count meanwhile: the reads below end it.
                    Err(ControlError::Refused { .. }) => break,
                    Err(e) => return Err(capture_err(at, &socket, e)),
                }
            }
        }
        let r: CaptureReadAnswer = match conn.request(&Request::CaptureRead {
            max: Some(MAX_READ_BATCH),
        }) {
            Ok(r) => r,
            Err(ControlError::Io { .. } | ControlError::Connect(_)) => {
                note("the instance stopped; the capture ends with it");
                sum.ended_by = "instance stopped".into();
                break;
            }
            Err(e) => return Err(capture_err(at, &socket, e)),
        };
        sum.captured = r.captured;
        sum.dropped = r.dropped;
        let n = r.packets.len();
        for p in r.packets {
            let data = base64_decode(&p.data).ok_or_else(|| ManagerError::Capture {
                at: at.to_string(),
                why: "the core sent a frame that is not base64".into(),
            })?;
            if !sink_ok {
                continue;
            }
            match w.write_packet(iface, p.ts_ns, p.len, &data, dir, None) {
                Ok(()) => sum.written += 1,
                Err(e) if is_broken_pipe(&e) => sink_ok = false,
                Err(e) => return Err(pcap_err(e)),
            }
        }
        if sink_ok {
            match w.flush() {
                Ok(()) => {}
                Err(e) if is_broken_pipe(&e) => sink_ok = false,
                Err(e) => return Err(pcap_err(e)),
            }
        }
        if !sink_ok && stopping.is_none() {
            stopping = Some("reader gone");
        }
        if r.done {
            if sum.ended_by.is_empty() {
                sum.ended_by = "count".into();
            }
            break;
        }
        if n == 0 {
            std::thread::sleep(IDLE);
        }
    }
    if sink_ok {
        w.flush().map_err(pcap_err)?;
    }
    note(format!(
        "{} frames captured at {}, {} written to {out_name}, {} dropped by the capture (its rings were full); ended by {}",
        sum.captured, start.at, sum.written, sum.dropped, sum.ended_by
    ));
    Ok(sum)
}

fn is_broken_pipe(e: &netvm_wire::pcapng::PcapngError) -> bool {
    matches!(e, netvm_wire::pcapng::PcapngError::Io(io) if io.kind() == std::io::ErrorKind::BrokenPipe)
}
