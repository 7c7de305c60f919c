//! Client of the core's control socket: one [`Request`] per line, one typed answer per line
//! (the protocol is `netvm_api::protocol`).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use netvm_api::protocol::{parse_answer, AnswerError, Request};
use serde::de::DeserializeOwned;

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Connecting failed (no core there, or not yet).
    #[error("cannot connect")]
    Connect(#[source] std::io::Error),
    /// Sending or receiving failed.
    #[error("request {cmd:?} failed")]
    Io {
        /// The command.
        cmd: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The answer was not JSON, or not the answer to this request.
    #[error("answer to {cmd:?} is malformed ({reason}): {line:?}")]
    BadAnswer {
        /// The command.
        cmd: &'static str,
        /// What is wrong with it.
        reason: String,
        /// What came back.
        line: String,
    },
    /// The core answered `ok: false`.
    #[error("the core refused {cmd:?}: {error}")]
    Refused {
        /// The command.
        cmd: &'static str,
        /// Its error text.
        error: String,
    },
}

/// Sends `req` and returns the answer, parsed as `A` (e.g. `StatusAnswer`, or `Answer` where
/// only success matters), once its `ok` was true.
pub fn request<A: DeserializeOwned>(
    socket: &Path,
    req: &Request,
    timeout: Duration,
) -> Result<A, ControlError> {
    let cmd = req.cmd();
    let io = |source| ControlError::Io { cmd, source };
    let mut s = UnixStream::connect(socket).map_err(ControlError::Connect)?;
    s.set_read_timeout(Some(timeout)).map_err(io)?;
    s.set_write_timeout(Some(timeout)).map_err(io)?;
    writeln!(s, "{}", req.to_line()).map_err(io)?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).map_err(io)?;
    let line = line.trim();
    parse_answer(line).map_err(|e| match e {
        AnswerError::Refused { error } => ControlError::Refused { cmd, error },
        AnswerError::Malformed { reason } => ControlError::BadAnswer {
            cmd,
            reason,
            line: line.to_string(),
        },
    })
}

/// A connection kept open for several requests (a capture belongs to the connection that
/// started it: the core stops it when the connection closes).
pub struct Connection {
    r: BufReader<UnixStream>,
    w: UnixStream,
}

impl Connection {
    /// Connects to the core's socket.
    pub fn open(socket: &Path, timeout: Duration) -> Result<Self, ControlError> {
        let s = UnixStream::connect(socket).map_err(ControlError::Connect)?;
        let io = |source| ControlError::Io {
            cmd: "connect",
            source,
        };
        s.set_read_timeout(Some(timeout)).map_err(io)?;
        s.set_write_timeout(Some(timeout)).map_err(io)?;
        let w = s.try_clone().map_err(io)?;
        Ok(Self {
            r: BufReader::new(s),
            w,
        })
    }

    /// Sends `req`, returns its answer parsed as `A` once its `ok` was true.
    pub fn request<A: DeserializeOwned>(&mut self, req: &Request) -> Result<A, ControlError> {
        let cmd = req.cmd();
        let io = |source| ControlError::Io { cmd, source };
        writeln!(self.w, "{}", req.to_line()).map_err(io)?;
        let mut line = String::new();
        if self.r.read_line(&mut line).map_err(io)? == 0 {
            return Err(io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the core closed the connection",
            )));
        }
        let line = line.trim();
        parse_answer(line).map_err(|e| match e {
            AnswerError::Refused { error } => ControlError::Refused { cmd, error },
            AnswerError::Malformed { reason } => ControlError::BadAnswer {
                cmd,
                reason,
                line: line.to_string(),
            },
        })
    }
}
