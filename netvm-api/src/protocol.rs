//! The control socket's protocol: one JSON object per line each way, a [`Request`] from the
//! client and one answer from the core.
//!
//! Requests, tagged by `"cmd"`:
//! * `{"cmd":"status"}` → [`StatusAnswer`]: NFs with their state and pid, ports, regions,
//!   whether traffic runs.
//! * `{"cmd":"stats"}` → [`StatsAnswer`]: a consistent [`Report`] (all workers at one instant).
//! * `{"cmd":"detach","nf":NAME}` → [`Answer`]: the NF gets no new packets; after a grace
//!   period what it still holds is taken back; its slot is reserved again so it can re-attach.
//! * `{"cmd":"attach","nf":NAME}` → [`Answer`]: re-opens an NF that was detached or
//!   quarantined: its slot is reserved again for a (new) process to attach.
//! * `{"cmd":"set_chains","chains":[…]}` → [`SetChainsAnswer`]: replaces the chains at run
//!   time (same schema as the config); packets of other chains are not dropped, packets in
//!   flight finish their route.
//! * `{"cmd":"gone","nf":NAME}` → [`Answer`]: the NF's process or guest has exited (the manager
//!   saw it): reclaim its buffers now and reserve its slot again.
//! * `{"cmd":"shutdown"}` → [`Answer`]: stops the core.
//! * `{"cmd":"nf_add","nf":NAME,"service":S,"domain":D}` → [`NfAddAnswer`]: a new NF takes a
//!   free (spare) entry: its control region is made in domain `D`, its slot reserved, and
//!   service `S` (new or not) gets it as an instance, so that chains may name `S` from now on.
//!   Refused, with nothing changed, when the name is taken, the domain unknown, a name
//!   invalid or no entry is free.
//! * `{"cmd":"nf_remove","nf":NAME}` → [`NfRemoveAnswer`]: the NF gets no new packets, has
//!   a grace period to return what it holds, what it still holds is taken back, its control
//!   region is removed and its entry is free again; answered when all that is done. Chains
//!   naming its service follow their failure policy when no instance is left.
//! * `{"cmd":"capture_start","at":"fw1:out","filter":{…},"snaplen":N,"count":C}` →
//!   [`CaptureStartAnswer`]: starts copying the frames that pass a [`CapturePoint`] and match
//!   `filter` (a chain `match`; optional) into the core's capture rings, at most `count`
//!   (optional) frames of at most `snaplen` bytes each (default and maximum
//!   [`MAX_SNAPLEN`](crate::capture::MAX_SNAPLEN)). One capture at a time per core; it
//!   belongs to the connection that started it and stops when that connection closes.
//! * `{"cmd":"capture_read","max":N}` → [`CaptureReadAnswer`]: up to `N` (default and
//!   maximum [`MAX_READ_BATCH`](crate::capture::MAX_READ_BATCH)) captured frames, base64,
//!   with the capture's counts and whether it is over.
//! * `{"cmd":"capture_stop"}` → [`CaptureStopAnswer`]: no more frames are copied (every worker
//!   has let go when it answers); frames not read yet can still be read until `done`.
//!
//! Every answer has `"ok": true|false` and, when false, `"error"` (an [`Answer`]); a refused
//! request of any kind is answered that way. Unknown fields are ignored on both sides.
//! [`Request::parse`] is what the core uses: it names what is wrong with a request (not JSON,
//! no `cmd`, an unknown command, a missing or malformed argument) in the error it sends back.
//! [`parse_answer`] is the client's side.

use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::capture::{
    CapturePoint, CaptureReadAnswer, CaptureStartAnswer, CaptureStopAnswer, CapturedPacket,
};
use crate::config::{ChainConfig, MatchConfig};
use crate::report::Report;

/// A request to the core.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// What runs: NFs, ports, regions.
    Status,
    /// A consistent stats snapshot.
    Stats,
    /// Stop delivering to an NF and take its buffers back after a grace period.
    Detach {
        /// NF instance name.
        nf: String,
    },
    /// Reserve the slot of a detached or quarantined NF again.
    Attach {
        /// NF instance name.
        nf: String,
    },
    /// Replace the chains at run time.
    SetChains {
        /// The new chains (validated against the running config).
        chains: Vec<ChainConfig>,
    },
    /// The NF's process or guest has exited: reclaim now.
    Gone {
        /// NF instance name.
        nf: String,
    },
    /// Stop the core.
    Shutdown,
    /// Add an NF at run time (it takes a free entry).
    NfAdd {
        /// NF instance name (new).
        nf: String,
        /// Service it provides (an existing one or a new one).
        service: String,
        /// Its domain (an existing one).
        domain: String,
    },
    /// Remove an NF at run time (its entry becomes free).
    NfRemove {
        /// NF instance name.
        nf: String,
    },
    /// Start capturing at a point.
    CaptureStart {
        /// Where.
        at: CapturePoint,
        /// Only frames matching this (chain match syntax); all when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        filter: Option<MatchConfig>,
        /// Bytes copied per frame at most (default: the whole frame).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        snaplen: Option<u32>,
        /// Stop copying after this many frames.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        count: Option<u64>,
    },
    /// Read captured frames.
    CaptureRead {
        /// At most this many.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<u32>,
    },
    /// Stop the capture.
    CaptureStop,
}

/// Every command, with the argument it requires (if any).
const COMMANDS: [(&str, Option<&str>); 12] = [
    ("status", None),
    ("stats", None),
    ("detach", Some("nf")),
    ("attach", Some("nf")),
    ("set_chains", Some("chains")),
    ("gone", Some("nf")),
    ("shutdown", None),
    ("capture_start", Some("at")),
    ("capture_read", None),
    ("capture_stop", None),
    ("nf_add", Some("nf")),
    ("nf_remove", Some("nf")),
];

/// What is wrong with a request line; its message is what the core sends back as `"error"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The line is not JSON.
    #[error("request is not JSON: {reason}")]
    NotJson {
        /// The parser's complaint.
        reason: String,
    },
    /// No string `"cmd"` in it.
    #[error("missing \"cmd\"")]
    MissingCmd,
    /// A command the core does not know.
    #[error("unknown command {cmd:?} (known: status, stats, detach, attach, set_chains, gone, shutdown, capture_start, capture_read, capture_stop, nf_add, nf_remove)")]
    UnknownCmd {
        /// The command as given.
        cmd: String,
    },
    /// The command's argument is absent.
    #[error("missing {field:?}")]
    MissingArgument {
        /// The command.
        cmd: String,
        /// The argument it needs.
        field: &'static str,
    },
    /// The command's argument is there but malformed.
    #[error("{field}: {reason}")]
    BadArgument {
        /// The command.
        cmd: String,
        /// The argument.
        field: &'static str,
        /// Why it does not parse.
        reason: String,
    },
}

impl Request {
    /// The command's name, the value of `"cmd"`.
    pub const fn cmd(&self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::Stats => "stats",
            Self::Detach { .. } => "detach",
            Self::Attach { .. } => "attach",
            Self::SetChains { .. } => "set_chains",
            Self::Gone { .. } => "gone",
            Self::Shutdown => "shutdown",
            Self::CaptureStart { .. } => "capture_start",
            Self::CaptureRead { .. } => "capture_read",
            Self::CaptureStop => "capture_stop",
            Self::NfAdd { .. } => "nf_add",
            Self::NfRemove { .. } => "nf_remove",
        }
    }

    /// Parses one request line, naming what is wrong if it does not parse.
    pub fn parse(line: &str) -> Result<Self, RequestError> {
        let v: Value = serde_json::from_str(line).map_err(|e| RequestError::NotJson {
            reason: e.to_string(),
        })?;
        let cmd = v
            .get("cmd")
            .and_then(Value::as_str)
            .ok_or(RequestError::MissingCmd)?;
        let Some(&(_, arg)) = COMMANDS.iter().find(|(c, _)| *c == cmd) else {
            return Err(RequestError::UnknownCmd {
                cmd: cmd.to_owned(),
            });
        };
        let cmd = cmd.to_owned();
        if let Some(field) = arg {
            if v.get(field).is_none() {
                return Err(RequestError::MissingArgument { cmd, field });
            }
        }
        serde_json::from_value(v).map_err(|e| RequestError::BadArgument {
            cmd,
            field: arg.unwrap_or("request"),
            reason: e.to_string(),
        })
    }

    /// The request as one line of JSON (without the newline).
    pub fn to_line(&self) -> String {
        // Serializing an enum of strings and config structs into a string cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The answer to `detach`, `attach`, `gone` and `shutdown`, and any refusal:
/// `{"ok":true}` or `{"ok":false,"error":…}`. Every answer starts with these fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// Whether the request was carried out.
    pub ok: bool,
    /// Why not, when `ok` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Answer {
    /// `{"ok":true}`.
    pub fn ok() -> Self {
        Self {
            ok: true,
            error: None,
        }
    }

    /// `{"ok":false,"error":msg}`.
    pub fn error(msg: impl Into<String>) -> Self {
        Self {
            ok: false,
            error: Some(msg.into()),
        }
    }
}

/// One NF in a [`StatusAnswer`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NfStatus {
    /// Instance name.
    pub name: String,
    /// Service it provides.
    pub service: String,
    /// Its domain.
    pub domain: String,
    /// Core's view: pending, attached, detached, quarantined, dead.
    pub state: String,
    /// Pid the NF wrote into its slot (0: none, or a guest).
    pub pid: u32,
    /// The NF's control region file (its slot and rings; only it and the core map it).
    pub control: std::path::PathBuf,
    /// Why the core last quarantined it (`rejects`, `tx_ring_corrupt`, `rx_ring_corrupt`,
    /// `hoarding`); absent if never.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantined_for: Option<String>,
}

/// One port in a [`StatusAnswer`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PortStatus {
    /// Port name.
    pub name: String,
    /// Its DPDK device string.
    pub device: String,
}

/// One domain's region in a [`StatusAnswer`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RegionStatus {
    /// Domain name.
    pub domain: String,
    /// Its region file.
    pub path: PathBuf,
}

/// The answer to `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StatusAnswer {
    /// Always true.
    pub ok: bool,
    /// Whether the workers run and no stop was requested.
    pub running: bool,
    /// The core's pid.
    pub pid: u32,
    /// NFs in config order.
    pub nfs: Vec<NfStatus>,
    /// Ports in config order.
    pub ports: Vec<PortStatus>,
    /// One region per domain.
    pub regions: Vec<RegionStatus>,
}

/// The answer to `stats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatsAnswer {
    /// Always true.
    pub ok: bool,
    /// The snapshot.
    pub stats: Report,
}

/// The answer to `set_chains`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetChainsAnswer {
    /// Always true.
    pub ok: bool,
    /// Version of the tables now in force.
    pub version: u64,
}

/// The answer to `nf_add`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NfAddAnswer {
    /// Always true.
    pub ok: bool,
    /// The NF's entry (index in the core's NF table; `status` lists NFs in this order). The
    /// manager runs a process NF as uid `62000 + index`.
    pub index: u32,
    /// Its control region file (its slot and rings).
    pub control: PathBuf,
    /// Its domain's region file.
    pub region: PathBuf,
    /// Whether the service is new (no NF provided it before).
    pub new_service: bool,
    /// Version of the tables now in force.
    pub version: u64,
}

/// The answer to `nf_remove`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NfRemoveAnswer {
    /// Always true.
    pub ok: bool,
    /// Buffers the core had to take back (what the NF still held after its grace period).
    pub reclaimed: u64,
    /// Version of the tables now in force.
    pub version: u64,
}

/// Why an answer line could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// The line is not JSON, or not the answer that was expected.
    #[error("malformed answer: {reason}")]
    Malformed {
        /// The parser's complaint.
        reason: String,
    },
    /// The core answered `"ok": false`.
    #[error("refused: {error}")]
    Refused {
        /// Its `"error"`.
        error: String,
    },
}

/// Parses one answer line into `A` (e.g. [`StatusAnswer`]), first checking `"ok"`.
pub fn parse_answer<A: DeserializeOwned>(line: &str) -> Result<A, AnswerError> {
    let malformed = |e: serde_json::Error| AnswerError::Malformed {
        reason: e.to_string(),
    };
    let head: Answer = serde_json::from_str(line).map_err(malformed)?;
    if !head.ok {
        return Err(AnswerError::Refused {
            error: head.error.unwrap_or_else(|| "no reason given".into()),
        });
    }
    serde_json::from_str(line).map_err(malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What clients sent before the typed protocol, built with `json!`, byte for byte.
    #[test]
    fn requests_serialize_as_before() {
        let cases = [
            (Request::Status, r#"{"cmd":"status"}"#),
            (Request::Stats, r#"{"cmd":"stats"}"#),
            (Request::Shutdown, r#"{"cmd":"shutdown"}"#),
            (
                Request::Gone { nf: "fw1".into() },
                r#"{"cmd":"gone","nf":"fw1"}"#,
            ),
            (
                Request::Detach { nf: "fw1".into() },
                r#"{"cmd":"detach","nf":"fw1"}"#,
            ),
            (
                Request::Attach { nf: "fw1".into() },
                r#"{"cmd":"attach","nf":"fw1"}"#,
            ),
            (
                Request::NfAdd {
                    nf: "m2".into(),
                    service: "mon".into(),
                    domain: "d".into(),
                },
                r#"{"cmd":"nf_add","nf":"m2","service":"mon","domain":"d"}"#,
            ),
            (
                Request::NfRemove { nf: "m2".into() },
                r#"{"cmd":"nf_remove","nf":"m2"}"#,
            ),
        ];
        for (req, want) in cases {
            assert_eq!(req.to_line(), want);
            assert_eq!(Request::parse(want).unwrap().to_line(), want);
        }
    }

    #[test]
    fn capture_requests() {
        let line = r#"{"cmd":"capture_start","at":"fw1:out","filter":{"proto":"udp"},"snaplen":96,"count":10}"#;
        let req = Request::parse(line).unwrap();
        let Request::CaptureStart {
            at,
            filter,
            snaplen,
            count,
        } = &req
        else {
            panic!("{req:?}");
        };
        assert_eq!(at, &CapturePoint::NfOut("fw1".into()));
        assert_eq!(filter.as_ref().unwrap().proto.as_deref(), Some("udp"));
        assert_eq!((*snaplen, *count), (Some(96), Some(10)));
        let again = Request::parse(&req.to_line()).unwrap();
        assert_eq!(again.to_line(), req.to_line());
        let min = r#"{"cmd":"capture_start","at":"port:in:rx"}"#;
        assert_eq!(Request::parse(min).unwrap().to_line(), min);
        for l in [
            r#"{"cmd":"capture_read"}"#,
            r#"{"cmd":"capture_read","max":5}"#,
            r#"{"cmd":"capture_stop"}"#,
        ] {
            assert_eq!(Request::parse(l).unwrap().to_line(), l);
        }
        let e = Request::parse(r#"{"cmd":"capture_start","at":"fw1"}"#).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("at: capture point \"fw1\": expected"),
            "{e}"
        );
        let e = Request::parse(r#"{"cmd":"capture_start"}"#).unwrap_err();
        assert_eq!(e.to_string(), "missing \"at\"");
        let e = Request::parse(r#"{"cmd":"capture_start","at":"x:in","filter":{"speed":1}}"#)
            .unwrap_err();
        assert!(e.to_string().contains("unknown field `speed`"), "{e}");
    }

    #[test]
    fn set_chains_round_trips() {
        let line = r#"{"cmd":"set_chains","chains":[{"name":"c","services":["fw"],"egress":"out","match":{"in_port":"in"}}]}"#;
        let req = Request::parse(line).unwrap();
        let Request::SetChains { chains } = &req else {
            panic!("{req:?}");
        };
        assert_eq!(chains[0].matches.in_port.as_deref(), Some("in"));
        let again = Request::parse(&req.to_line()).unwrap();
        assert_eq!(again.to_line(), req.to_line());
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        let cases = [
            ("nonsense", "request is not JSON: "),
            ("[1]", "missing \"cmd\""),
            (r#"{"nf":"x"}"#, "missing \"cmd\""),
            (r#"{"cmd":5}"#, "missing \"cmd\""),
            (
                r#"{"cmd":"frobnicate"}"#,
                "unknown command \"frobnicate\" (known: status,",
            ),
            (r#"{"cmd":"detach"}"#, "missing \"nf\""),
            (r#"{"cmd":"nf_add","service":"s"}"#, "missing \"nf\""),
            (
                r#"{"cmd":"nf_add","nf":"a"}"#,
                "nf: missing field `service`",
            ),
            (r#"{"cmd":"set_chains"}"#, "missing \"chains\""),
            (r#"{"cmd":"gone","nf":5}"#, "nf: invalid type"),
            (
                r#"{"cmd":"set_chains","chains":[{"name":"c","egress":"out","speed":1}]}"#,
                "chains: unknown field `speed`",
            ),
        ];
        for (line, want) in cases {
            let e = Request::parse(line).unwrap_err().to_string();
            assert!(e.starts_with(want), "{line}: {e}");
        }
    }

    #[test]
    fn extra_request_fields_are_ignored() {
        let r = Request::parse(r#"{"cmd":"status","verbose":true}"#).unwrap();
        assert_eq!(r.cmd(), "status");
        let r = Request::parse(r#"{"cmd":"detach","nf":"a","why":"test"}"#).unwrap();
        assert!(matches!(r, Request::Detach { nf } if nf == "a"));
    }

    #[test]
    fn answers() {
        assert_eq!(
            serde_json::to_string(&Answer::ok()).unwrap(),
            r#"{"ok":true}"#
        );
        assert_eq!(
            serde_json::to_string(&Answer::error("no")).unwrap(),
            r#"{"ok":false,"error":"no"}"#
        );
        let st: StatusAnswer = parse_answer(
            r#"{"nfs":[{"domain":"d","name":"a","pid":9,"service":"s","state":"attached"}],"ok":true,"pid":4,"ports":[{"device":"net_null0","name":"in"}],"regions":[{"domain":"d","path":"/dev/shm/r"}],"running":true}"#,
        )
        .unwrap();
        assert!(st.running);
        assert_eq!((st.pid, st.nfs[0].pid), (4, 9));
        assert_eq!(st.regions[0].path, PathBuf::from("/dev/shm/r"));
        let e = parse_answer::<StatusAnswer>(r#"{"error":"no NF named \"x\"","ok":false}"#);
        assert_eq!(
            e,
            Err(AnswerError::Refused {
                error: "no NF named \"x\"".into()
            })
        );
        assert!(matches!(
            parse_answer::<StatsAnswer>("{"),
            Err(AnswerError::Malformed { .. })
        ));
        let s: StatsAnswer =
            parse_answer(r#"{"ok":true,"stats":{"epoch":2,"in_flight":-1}}"#).unwrap();
        assert_eq!((s.stats.epoch, s.stats.in_flight), (2, -1));
    }
}
