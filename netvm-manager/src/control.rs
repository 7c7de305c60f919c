//! Client of the core's control socket: one JSON request per line, one JSON answer per line
//! (see `netvm_core::control` for the commands).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

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
        cmd: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The answer was not JSON.
    #[error("answer to {cmd:?} is not JSON: {line:?}")]
    BadAnswer {
        /// The command.
        cmd: String,
        /// What came back.
        line: String,
    },
    /// The core answered `ok: false`.
    #[error("the core refused {cmd:?}: {error}")]
    Refused {
        /// The command.
        cmd: String,
        /// Its error text.
        error: String,
    },
}

/// Sends `req` and returns the answer (whose `ok` was true).
pub fn request(socket: &Path, req: &Value, timeout: Duration) -> Result<Value, ControlError> {
    let cmd = req
        .get("cmd")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_string();
    let io = |source| ControlError::Io {
        cmd: cmd.clone(),
        source,
    };
    let mut s = UnixStream::connect(socket).map_err(ControlError::Connect)?;
    s.set_read_timeout(Some(timeout)).map_err(io)?;
    s.set_write_timeout(Some(timeout)).map_err(io)?;
    writeln!(s, "{req}").map_err(io)?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).map_err(io)?;
    let v: Value = serde_json::from_str(line.trim()).map_err(|_| ControlError::BadAnswer {
        cmd: cmd.clone(),
        line: line.trim().to_string(),
    })?;
    if v.get("ok") != Some(&Value::Bool(true)) {
        return Err(ControlError::Refused {
            cmd,
            error: v
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("no reason given")
                .to_string(),
        });
    }
    Ok(v)
}

/// `{"cmd": cmd}`.
pub fn cmd(cmd: &str) -> Value {
    serde_json::json!({ "cmd": cmd })
}
