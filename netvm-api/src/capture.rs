//! Packet capture on a running instance: where a capture can be taken ([`CapturePoint`]), the
//! command-line filter syntax ([`parse_filter`]), the packet records the core hands out
//! ([`CapturedPacket`], base64 in JSON) and the answers of the `capture_*` requests.
//!
//! The requests themselves are [`Request::CaptureStart`](crate::protocol::Request),
//! `CaptureRead` and `CaptureStop`; the design (hooks, rings, who stops what) is in
//! `docs/design.md`, *Capture*.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::config::MatchConfig;

/// Where packets are captured. Written `NF:in`, `NF:out`, `NF:drop`, `port:PORT:rx`,
/// `port:PORT:tx` (NF and port names as in the config).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum CapturePoint {
    /// Packets the core hands to the NF (staged on its RX ring, after any domain copy).
    NfIn(String),
    /// Packets the NF returns and passes on (verdict NEXT, SERVICE or OUT, accepted by the
    /// core's validation), as returned, before the core acts on them.
    NfOut(String),
    /// Packets the NF returns with a DROP verdict.
    NfDrop(String),
    /// Packets received on a port (after `rte_eth_rx_burst`, before classification).
    PortRx(String),
    /// Packets handed to a port's driver for sending (before `rte_eth_tx_burst`).
    PortTx(String),
}

/// Why a capture point does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("capture point {input:?}: expected NF:in, NF:out, NF:drop, port:PORT:rx or port:PORT:tx")]
pub struct BadCapturePoint {
    /// What was given.
    pub input: String,
}

impl CapturePoint {
    /// The NF or port name.
    pub fn name(&self) -> &str {
        match self {
            Self::NfIn(n)
            | Self::NfOut(n)
            | Self::NfDrop(n)
            | Self::PortRx(n)
            | Self::PortTx(n) => n,
        }
    }

    /// Whether packets at this point enter (true) or leave (false) netvm, for a pcapng
    /// direction flag; None for points inside the chain.
    pub fn inbound(&self) -> Option<bool> {
        match self {
            Self::PortRx(_) => Some(true),
            Self::PortTx(_) => Some(false),
            _ => None,
        }
    }
}

impl FromStr for CapturePoint {
    type Err = BadCapturePoint;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadCapturePoint { input: s.into() };
        let (head, tail) = s.rsplit_once(':').ok_or_else(bad)?;
        if let Some(port) = head.strip_prefix("port:") {
            if port.is_empty() {
                return Err(bad());
            }
            return match tail {
                "rx" => Ok(Self::PortRx(port.into())),
                "tx" => Ok(Self::PortTx(port.into())),
                _ => Err(bad()),
            };
        }
        if head.is_empty() {
            return Err(bad());
        }
        match tail {
            "in" => Ok(Self::NfIn(head.into())),
            "out" => Ok(Self::NfOut(head.into())),
            "drop" => Ok(Self::NfDrop(head.into())),
            _ => Err(bad()),
        }
    }
}

impl TryFrom<String> for CapturePoint {
    type Error = BadCapturePoint;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<CapturePoint> for String {
    fn from(p: CapturePoint) -> Self {
        p.to_string()
    }
}

impl fmt::Display for CapturePoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NfIn(n) => write!(f, "{n}:in"),
            Self::NfOut(n) => write!(f, "{n}:out"),
            Self::NfDrop(n) => write!(f, "{n}:drop"),
            Self::PortRx(n) => write!(f, "port:{n}:rx"),
            Self::PortTx(n) => write!(f, "port:{n}:tx"),
        }
    }
}

/// The largest snapshot length a capture accepts (the largest `buffer_size`); longer frames
/// cannot exist in netvm.
pub const MAX_SNAPLEN: u32 = 16_384;

/// Packets one `capture_read` answer carries at most (the client may ask for fewer).
pub const MAX_READ_BATCH: u32 = 1024;

/// Parses the command line's filter: either a chain `match` object as JSON
/// (`{"proto":"udp","dst_port":"53"}`) or the same fields as `key=value` pairs separated by
/// commas or spaces (`proto=udp,dst_port=53`; numbers for `ethertype`, `vlan`, `inner_vlan`).
/// The fields are then checked by the core exactly as a chain's are.
pub fn parse_filter(s: &str) -> Result<MatchConfig, String> {
    let t = s.trim();
    if t.starts_with('{') {
        return serde_json::from_str(t).map_err(|e| e.to_string());
    }
    let mut obj = serde_json::Map::new();
    for item in t.split([',', ' ']).filter(|x| !x.is_empty()) {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| format!("{item:?}: expected key=value"))?;
        let val = match k {
            "ethertype" | "vlan" | "inner_vlan" => {
                let n = if let Some(h) = v.strip_prefix("0x") {
                    u16::from_str_radix(h, 16)
                } else {
                    v.parse::<u16>()
                };
                serde_json::Value::from(n.map_err(|e| format!("{k}: {v:?}: {e}"))?)
            }
            _ => serde_json::Value::from(v),
        };
        if obj.insert(k.to_owned(), val).is_some() {
            return Err(format!("{k} given twice"));
        }
    }
    serde_json::from_value(serde_json::Value::Object(obj)).map_err(|e| e.to_string())
}

/// One captured frame in a `capture_read` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapturedPacket {
    /// When the core copied it: nanoseconds since the Unix epoch (CLOCK_REALTIME).
    pub ts_ns: u64,
    /// The frame's length on the data path (`data` may be shorter: the snapshot length).
    pub len: u32,
    /// The first min(snaplen, len) bytes, base64 (RFC 4648, with padding).
    pub data: String,
}

/// The answer to `capture_start`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CaptureStartAnswer {
    /// Always true.
    pub ok: bool,
    /// The capture's id (one capture at a time per core; ids are never reused in a run).
    pub id: u64,
    /// Where, as given (`fw1:out`).
    pub at: String,
    /// Snapshot length in force.
    pub snaplen: u32,
    /// Longer description of the point, for the pcapng interface (`if_description`).
    pub description: String,
}

/// The answer to `capture_read`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CaptureReadAnswer {
    /// Always true.
    pub ok: bool,
    /// Frames in timestamp order (at most the batch asked for).
    pub packets: Vec<CapturedPacket>,
    /// Frames copied into the capture rings so far (read or not).
    pub captured: u64,
    /// Matching frames the capture could not copy (its rings were full); the data path
    /// handled them as always.
    pub dropped: u64,
    /// The capture is over — stopped, or its count reached — and every frame was read.
    pub done: bool,
}

/// The answer to `capture_stop`: the capture's final numbers. Frames not read yet can still
/// be read until `capture_read` says `done`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CaptureStopAnswer {
    /// Always true.
    pub ok: bool,
    /// Frames copied.
    pub captured: u64,
    /// Matching frames not copied (rings full).
    pub dropped: u64,
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Base64 (RFC 4648, standard alphabet, `=` padding).
pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= c.len() {
                out.push(char::from(B64[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes [`base64_encode`]'s output; None if it is not canonical base64 with padding.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if s.len() % 4 != 0 {
        return None;
    }
    let val = |c: u8| -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    };
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let nchunks = s.len() / 4;
    for (k, c) in s.chunks(4).enumerate() {
        let pad = c.iter().rev().take_while(|&&x| x == b'=').count();
        if pad > 2 || (pad > 0 && k + 1 != nchunks) {
            return None;
        }
        let mut n = 0u32;
        for &x in &c[..4 - pad] {
            n = (n << 6) | val(x)?;
        }
        n <<= 6 * pad;
        let bytes = n.to_be_bytes();
        // Canonical: the bits under the padding are zero.
        let keep = 3 - pad;
        if bytes[1 + keep..].iter().any(|&b| b != 0) {
            return None;
        }
        out.extend_from_slice(&bytes[1..=keep]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_parse_and_print() {
        let cases = [
            ("fw1:in", CapturePoint::NfIn("fw1".into())),
            ("fw1:out", CapturePoint::NfOut("fw1".into())),
            ("fw1:drop", CapturePoint::NfDrop("fw1".into())),
            ("port:in:rx", CapturePoint::PortRx("in".into())),
            ("port:out:tx", CapturePoint::PortTx("out".into())),
            ("port:a:b:rx", CapturePoint::PortRx("a:b".into())),
        ];
        for (s, want) in &cases {
            assert_eq!(s.parse::<CapturePoint>().as_ref(), Ok(want), "{s}");
            assert_eq!(want.to_string(), *s);
        }
        for bad in [
            "fw1",
            "fw1:sideways",
            ":in",
            "port::rx",
            "port:x:in",
            "",
            "port:rx",
        ] {
            assert!(bad.parse::<CapturePoint>().is_err(), "{bad}");
        }
    }

    #[test]
    fn filters() {
        let m = parse_filter("proto=udp,dst_port=53 in_port=in vlan=0x10").unwrap();
        assert_eq!(m.proto.as_deref(), Some("udp"));
        assert_eq!(m.dst_port.as_deref(), Some("53"));
        assert_eq!(m.in_port.as_deref(), Some("in"));
        assert_eq!(m.vlan, Some(16));
        let m = parse_filter(r#"{"dst":"10.1.0.0/16","ethertype":2048}"#).unwrap();
        assert_eq!(
            (m.dst.as_deref(), m.ethertype),
            (Some("10.1.0.0/16"), Some(2048))
        );
        assert!(parse_filter("").unwrap().proto.is_none());
        assert!(parse_filter("speed=1")
            .unwrap_err()
            .contains("unknown field"));
        assert!(parse_filter("proto").unwrap_err().contains("key=value"));
        assert!(parse_filter("vlan=x").unwrap_err().starts_with("vlan"));
        assert!(parse_filter("proto=udp,proto=tcp")
            .unwrap_err()
            .contains("twice"));
    }

    #[test]
    fn base64_round_trips_and_matches_rfc4648() {
        for (raw, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(raw.as_bytes()), enc);
            assert_eq!(base64_decode(enc).as_deref(), Some(raw.as_bytes()));
        }
        let all: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        for n in 0..40 {
            assert_eq!(
                base64_decode(&base64_encode(&all[..n * 7])).unwrap(),
                &all[..n * 7]
            );
        }
        for bad in ["Zg=", "Z===", "Zg==Zg==", "Zh==", "Zm9*", "===="] {
            assert_eq!(base64_decode(bad), None, "{bad}");
        }
    }
}
