//! pcapng (draft-ietf-opsawg-pcapng): a small streaming writer, and a reader of what it and
//! similar writers produce.
//!
//! The writer emits one little-endian section: a Section Header Block (`shb_userappl`), one
//! Interface Description Block per [`Interface`] (link type, snaplen, `if_name`,
//! `if_description`, `if_tsresol`) and Enhanced Packet Blocks (timestamp in the interface's
//! resolution, captured and original length, optional `epb_flags` direction). It flushes
//! nothing by itself: wrap a file in a `BufWriter` and flush per batch when a reader follows
//! the stream (`tshark -r -`).
//!
//! The reader ([`read`]) takes a whole file in memory, either byte order, and reports a
//! malformed block as a typed [`PcapngError`] naming its offset; unknown block types are
//! skipped. It exists for tests and tools, not for untrusted multi-gigabyte input.

use std::io::{self, Write};

use thiserror::Error;

/// `LINKTYPE_ETHERNET`.
pub const LINKTYPE_ETHERNET: u16 = 1;

const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 0x0000_0001;
const EPB: u32 = 0x0000_0006;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;

const OPT_END: u16 = 0;
const OPT_COMMENT: u16 = 1;
const SHB_USERAPPL: u16 = 4;
const IF_NAME: u16 = 2;
const IF_DESCRIPTION: u16 = 3;
const IF_TSRESOL: u16 = 9;
const EPB_FLAGS: u16 = 2;

/// Errors writing or reading pcapng.
#[derive(Debug, Error)]
pub enum PcapngError {
    /// The underlying writer failed.
    #[error("pcapng I/O failed")]
    Io(#[from] io::Error),
    /// A packet names an interface that was not described.
    #[error("interface {iface} was not described (have {have})")]
    NoInterface {
        /// The id given.
        iface: u32,
        /// Interfaces described so far.
        have: usize,
    },
    /// A frame, option or block is larger than pcapng can say in 32 (options: 16) bits.
    #[error("{what} of {len} bytes is too long for pcapng")]
    TooLong {
        /// What.
        what: &'static str,
        /// Its length.
        len: usize,
    },
    /// The input is not pcapng or a block is malformed.
    #[error("malformed pcapng at byte {offset}: {reason}")]
    Malformed {
        /// Offset of the block.
        offset: usize,
        /// What is wrong.
        reason: &'static str,
    },
}

/// An interface (capture point) of a section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// `if_name`.
    pub name: String,
    /// `if_description` (omitted when empty).
    pub description: String,
    /// Link type ([`LINKTYPE_ETHERNET`]).
    pub linktype: u16,
    /// Snapshot length (0: unlimited).
    pub snaplen: u32,
    /// Timestamps in nanoseconds (`if_tsresol` 9) rather than microseconds (the default 6).
    pub nanos: bool,
}

/// Direction of a packet on its interface (`epb_flags` bits 0–1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Received.
    Inbound,
    /// Sent.
    Outbound,
}

/// A streaming pcapng writer (one section, little endian).
#[derive(Debug)]
pub struct PcapngWriter<W: Write> {
    w: W,
    nanos: Vec<bool>,
}

fn pad4(n: usize) -> usize {
    (4 - n % 4) % 4
}

fn len16(what: &'static str, n: usize) -> Result<u16, PcapngError> {
    u16::try_from(n).map_err(|_| PcapngError::TooLong { what, len: n })
}

fn len32(what: &'static str, n: usize) -> Result<u32, PcapngError> {
    u32::try_from(n).map_err(|_| PcapngError::TooLong { what, len: n })
}

/// Appends one option (code, length, value, padding).
fn opt(b: &mut Vec<u8>, code: u16, val: &[u8]) -> Result<(), PcapngError> {
    b.extend_from_slice(&code.to_le_bytes());
    b.extend_from_slice(&len16("option", val.len())?.to_le_bytes());
    b.extend_from_slice(val);
    b.resize(b.len() + pad4(val.len()), 0);
    Ok(())
}

impl<W: Write> PcapngWriter<W> {
    /// Writes the Section Header Block; `application` goes into `shb_userappl`.
    pub fn new(mut w: W, application: &str) -> Result<Self, PcapngError> {
        let mut body = Vec::new();
        body.extend_from_slice(&BYTE_ORDER_MAGIC.to_le_bytes());
        body.extend_from_slice(&1u16.to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&(-1i64).to_le_bytes()); // section length: unknown (streamed)
        if !application.is_empty() {
            opt(&mut body, SHB_USERAPPL, application.as_bytes())?;
            opt(&mut body, OPT_END, &[])?;
        }
        write_block(&mut w, SHB, &body, &[])?;
        Ok(Self {
            w,
            nanos: Vec::new(),
        })
    }

    /// Writes an Interface Description Block; returns the interface's id for
    /// [`write_packet`](Self::write_packet).
    pub fn add_interface(&mut self, i: &Interface) -> Result<u32, PcapngError> {
        let mut body = Vec::new();
        body.extend_from_slice(&i.linktype.to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&i.snaplen.to_le_bytes());
        opt(&mut body, IF_NAME, i.name.as_bytes())?;
        if !i.description.is_empty() {
            opt(&mut body, IF_DESCRIPTION, i.description.as_bytes())?;
        }
        opt(&mut body, IF_TSRESOL, &[if i.nanos { 9 } else { 6 }])?;
        opt(&mut body, OPT_END, &[])?;
        write_block(&mut self.w, IDB, &body, &[])?;
        self.nanos.push(i.nanos);
        len32("interface list", self.nanos.len() - 1)
    }

    /// Writes an Enhanced Packet Block: `data` (what was captured) of a frame of `orig_len`
    /// bytes, seen at `ts_ns` nanoseconds since the Unix epoch (written in the interface's
    /// resolution), with an optional direction and comment.
    pub fn write_packet(
        &mut self,
        iface: u32,
        ts_ns: u64,
        orig_len: u32,
        data: &[u8],
        dir: Option<Direction>,
        comment: Option<&str>,
    ) -> Result<(), PcapngError> {
        let nanos = *self
            .nanos
            .get(iface as usize)
            .ok_or(PcapngError::NoInterface {
                iface,
                have: self.nanos.len(),
            })?;
        let ts = if nanos { ts_ns } else { ts_ns / 1000 };
        let mut head = Vec::with_capacity(20);
        head.extend_from_slice(&iface.to_le_bytes());
        let (hi, lo) = (ts >> 32, ts & 0xffff_ffff);
        head.extend_from_slice(&u32::try_from(hi).unwrap_or(u32::MAX).to_le_bytes());
        head.extend_from_slice(&u32::try_from(lo).unwrap_or(0).to_le_bytes());
        head.extend_from_slice(&len32("frame", data.len())?.to_le_bytes());
        head.extend_from_slice(&orig_len.max(len32("frame", data.len())?).to_le_bytes());
        let mut opts = Vec::new();
        if let Some(d) = dir {
            let flags: u32 = match d {
                Direction::Inbound => 1,
                Direction::Outbound => 2,
            };
            opt(&mut opts, EPB_FLAGS, &flags.to_le_bytes())?;
        }
        if let Some(c) = comment {
            opt(&mut opts, OPT_COMMENT, c.as_bytes())?;
        }
        if !opts.is_empty() {
            opt(&mut opts, OPT_END, &[])?;
        }
        let total = 12 + head.len() + data.len() + pad4(data.len()) + opts.len();
        let total = len32("block", total)?;
        self.w.write_all(&EPB.to_le_bytes())?;
        self.w.write_all(&total.to_le_bytes())?;
        self.w.write_all(&head)?;
        self.w.write_all(data)?;
        self.w.write_all(&[0u8; 3][..pad4(data.len())])?;
        self.w.write_all(&opts)?;
        self.w.write_all(&total.to_le_bytes())?;
        Ok(())
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> Result<(), PcapngError> {
        self.w.flush()?;
        Ok(())
    }

    /// The underlying writer.
    pub fn into_inner(self) -> W {
        self.w
    }
}

fn write_block<W: Write>(w: &mut W, ty: u32, body: &[u8], tail: &[u8]) -> Result<(), PcapngError> {
    let total = len32("block", 12 + body.len() + tail.len())?;
    w.write_all(&ty.to_le_bytes())?;
    w.write_all(&total.to_le_bytes())?;
    w.write_all(body)?;
    w.write_all(tail)?;
    w.write_all(&total.to_le_bytes())?;
    Ok(())
}

/// An interface as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadInterface {
    /// Link type.
    pub linktype: u16,
    /// Snapshot length.
    pub snaplen: u32,
    /// `if_name`, if present.
    pub name: Option<String>,
    /// `if_description`, if present.
    pub description: Option<String>,
    /// `if_tsresol` (6 when absent); only powers of ten are understood.
    pub tsresol: u8,
}

/// A packet as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadPacket {
    /// Interface id.
    pub iface: u32,
    /// Timestamp in nanoseconds since the epoch (converted from the interface's resolution).
    pub ts_ns: u64,
    /// Original length.
    pub orig_len: u32,
    /// Captured bytes.
    pub data: Vec<u8>,
    /// `epb_flags`, if present.
    pub flags: Option<u32>,
    /// `opt_comment`, if present.
    pub comment: Option<String>,
}

/// What [`read`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pcapng {
    /// `shb_userappl` of the (last) section.
    pub application: Option<String>,
    /// Interfaces in order.
    pub interfaces: Vec<ReadInterface>,
    /// Enhanced packets in order.
    pub packets: Vec<ReadPacket>,
}

/// Options of a block: (code, value) pairs until `opt_endofopt` or the end.
fn options(b: &[u8], be: bool, offset: usize) -> Result<Vec<(u16, &[u8])>, PcapngError> {
    let bad = |reason| PcapngError::Malformed { offset, reason };
    let mut out = Vec::new();
    let mut i = 0;
    while i + 4 <= b.len() {
        let code = rd16(&b[i..], be);
        let len = usize::from(rd16(&b[i + 2..], be));
        if code == OPT_END {
            break;
        }
        let v = b
            .get(i + 4..i + 4 + len)
            .ok_or(bad("option runs past its block"))?;
        out.push((code, v));
        i += 4 + len + pad4(len);
    }
    Ok(out)
}

fn rd16(b: &[u8], be: bool) -> u16 {
    let a = [b[0], b[1]];
    if be {
        u16::from_be_bytes(a)
    } else {
        u16::from_le_bytes(a)
    }
}

fn rd32(b: &[u8], be: bool) -> u32 {
    let a = [b[0], b[1], b[2], b[3]];
    if be {
        u32::from_be_bytes(a)
    } else {
        u32::from_le_bytes(a)
    }
}

/// Reads a whole pcapng file (every section; interface ids are per section, as the format
/// says, and are reported as such).
pub fn read(bytes: &[u8]) -> Result<Pcapng, PcapngError> {
    let mut out = Pcapng::default();
    let mut be = false;
    let mut off = 0usize;
    let mut section_ifaces = 0usize;
    while off < bytes.len() {
        let bad = |reason| PcapngError::Malformed {
            offset: off,
            reason,
        };
        let head = bytes
            .get(off..off + 12)
            .ok_or(bad("truncated block header"))?;
        let ty_raw = [head[0], head[1], head[2], head[3]];
        if u32::from_le_bytes(ty_raw) == SHB {
            be = match &head[8..12] {
                [0x1A, 0x2B, 0x3C, 0x4D] => true,
                [0x4D, 0x3C, 0x2B, 0x1A] => false,
                _ => return Err(bad("bad byte-order magic")),
            };
            section_ifaces = out.interfaces.len();
        } else if off == 0 {
            return Err(bad("does not start with a Section Header Block"));
        }
        let ty = rd32(head, be);
        let total = rd32(&head[4..], be) as usize;
        if total < 12 || total % 4 != 0 {
            return Err(bad("bad block length"));
        }
        let block = bytes.get(off..off + total).ok_or(bad("truncated block"))?;
        if rd32(&block[total - 4..], be) as usize != total {
            return Err(bad("trailing block length differs"));
        }
        let body = &block[8..total - 4];
        match ty {
            SHB => {
                let o = options(body.get(16..).ok_or(bad("short SHB"))?, be, off)?;
                if let Some((_, v)) = o.iter().find(|(c, _)| *c == SHB_USERAPPL) {
                    out.application = Some(String::from_utf8_lossy(v).into_owned());
                }
            }
            IDB => {
                if body.len() < 8 {
                    return Err(bad("short IDB"));
                }
                let o = options(&body[8..], be, off)?;
                let s = |code| {
                    o.iter()
                        .find(|(c, _)| *c == code)
                        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                };
                out.interfaces.push(ReadInterface {
                    linktype: rd16(body, be),
                    snaplen: rd32(&body[4..], be),
                    name: s(IF_NAME),
                    description: s(IF_DESCRIPTION),
                    tsresol: o
                        .iter()
                        .find(|(c, _)| *c == IF_TSRESOL)
                        .and_then(|(_, v)| v.first().copied())
                        .unwrap_or(6),
                });
            }
            EPB => {
                if body.len() < 20 {
                    return Err(bad("short EPB"));
                }
                let iface = rd32(body, be);
                let ts = (u64::from(rd32(&body[4..], be)) << 32) | u64::from(rd32(&body[8..], be));
                let cap = rd32(&body[12..], be) as usize;
                let orig_len = rd32(&body[16..], be);
                let data = body
                    .get(20..20 + cap)
                    .ok_or(bad("EPB data runs past its block"))?;
                let o = options(&body[20 + cap + pad4(cap)..], be, off)?;
                let idx = section_ifaces + iface as usize;
                let res = out
                    .interfaces
                    .get(idx)
                    .ok_or(bad("EPB names an undescribed interface"))?
                    .tsresol;
                let ts_ns = match res {
                    r if r & 0x80 == 0 && r <= 9 => ts.saturating_mul(10u64.pow(9 - u32::from(r))),
                    _ => return Err(bad("unsupported if_tsresol")),
                };
                out.packets.push(ReadPacket {
                    iface,
                    ts_ns,
                    orig_len,
                    data: data.to_vec(),
                    flags: o
                        .iter()
                        .find(|(c, v)| *c == EPB_FLAGS && v.len() == 4)
                        .map(|(_, v)| rd32(v, be)),
                    comment: o
                        .iter()
                        .find(|(c, _)| *c == OPT_COMMENT)
                        .map(|(_, v)| String::from_utf8_lossy(v).into_owned()),
                });
            }
            _ => {}
        }
        off += total;
    }
    Ok(out)
}

#[cfg(test)]
// Test data is made by deliberately truncating wider integers.
#[allow(clippy::cast_possible_truncation)]
mod tests {
    use super::*;

    fn iface(name: &str, nanos: bool) -> Interface {
        Interface {
            name: name.into(),
            description: format!("{name} of netvm"),
            linktype: LINKTYPE_ETHERNET,
            snaplen: 128,
            nanos,
        }
    }

    #[test]
    fn writes_what_it_reads() {
        let mut w = PcapngWriter::new(Vec::new(), "netvm test").unwrap();
        assert_eq!(w.add_interface(&iface("fw1:out", true)).unwrap(), 0);
        assert_eq!(w.add_interface(&iface("port:in:rx", false)).unwrap(), 1);
        let frames: Vec<Vec<u8>> = (0..7).map(|n| vec![n as u8; 60 + n]).collect();
        for (k, f) in frames.iter().enumerate() {
            let iface = (k % 2) as u32;
            let dir = (k % 3 == 0).then_some(Direction::Inbound);
            let comment = (k == 4).then_some("hello");
            w.write_packet(
                iface,
                1_700_000_000_123_456_789 + k as u64,
                1500,
                f,
                dir,
                comment,
            )
            .unwrap();
        }
        assert!(matches!(
            w.write_packet(2, 0, 1, &[1], None, None),
            Err(PcapngError::NoInterface { iface: 2, have: 2 })
        ));
        let bytes = w.into_inner();
        assert_eq!(bytes.len() % 4, 0);
        let r = read(&bytes).unwrap();
        assert_eq!(r.application.as_deref(), Some("netvm test"));
        assert_eq!(r.interfaces.len(), 2);
        assert_eq!(r.interfaces[0].name.as_deref(), Some("fw1:out"));
        assert_eq!(
            r.interfaces[1].description.as_deref(),
            Some("port:in:rx of netvm")
        );
        assert_eq!((r.interfaces[0].tsresol, r.interfaces[1].tsresol), (9, 6));
        assert_eq!(r.interfaces[0].snaplen, 128);
        assert_eq!(r.packets.len(), frames.len());
        for (k, (p, f)) in r.packets.iter().zip(&frames).enumerate() {
            assert_eq!(&p.data, f);
            assert_eq!(p.orig_len, 1500);
            assert_eq!(p.iface, (k % 2) as u32);
            let ts = 1_700_000_000_123_456_789 + k as u64;
            // Microsecond interfaces keep microseconds.
            let want = if k % 2 == 0 { ts } else { ts / 1000 * 1000 };
            assert_eq!(p.ts_ns, want, "packet {k}");
            assert_eq!(p.flags, (k % 3 == 0).then_some(1));
            assert_eq!(p.comment.as_deref(), (k == 4).then_some("hello"));
        }
    }

    #[test]
    fn block_layout_is_exact() {
        let mut w = PcapngWriter::new(Vec::new(), "").unwrap();
        w.add_interface(&Interface {
            name: "a".into(),
            description: String::new(),
            linktype: 1,
            snaplen: 0,
            nanos: true,
        })
        .unwrap();
        w.write_packet(0, (5u64 << 32) | 7, 3, &[0xaa, 0xbb, 0xcc], None, None)
            .unwrap();
        let b = w.into_inner();
        // SHB without options: 28 bytes.
        assert_eq!(&b[..8], &[0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0]);
        assert_eq!(&b[8..12], &[0x4d, 0x3c, 0x2b, 0x1a]);
        assert_eq!(&b[16..24], &[0xff; 8]);
        assert_eq!(&b[24..28], &[28, 0, 0, 0]);
        // IDB: 8 + 8 fixed, if_name "a" (8), if_tsresol (8), end (4), 4 trailer = 40.
        let idb = &b[28..68];
        assert_eq!(&idb[..8], &[1, 0, 0, 0, 40, 0, 0, 0]);
        assert_eq!(&idb[16..24], &[2, 0, 1, 0, b'a', 0, 0, 0]);
        assert_eq!(&idb[24..32], &[9, 0, 1, 0, 9, 0, 0, 0]);
        // EPB: 28 + 3 data + 1 pad + 4 trailer = 36.
        let epb = &b[68..];
        assert_eq!(epb.len(), 36);
        assert_eq!(&epb[..8], &[6, 0, 0, 0, 36, 0, 0, 0]);
        assert_eq!(&epb[12..20], &[5, 0, 0, 0, 7, 0, 0, 0]);
        assert_eq!(&epb[20..28], &[3, 0, 0, 0, 3, 0, 0, 0]);
        assert_eq!(&epb[28..32], &[0xaa, 0xbb, 0xcc, 0]);
    }

    #[test]
    fn rejects_garbage() {
        assert!(matches!(
            read(&[0u8; 12]),
            Err(PcapngError::Malformed { offset: 0, .. })
        ));
        let mut w = PcapngWriter::new(Vec::new(), "x").unwrap();
        w.add_interface(&iface("a", true)).unwrap();
        w.write_packet(0, 1, 4, &[1, 2, 3, 4], None, None).unwrap();
        let b = w.into_inner();
        for cut in 1..b.len() {
            // Every truncation is an error or a clean prefix, never a panic.
            let _ = read(&b[..cut]);
        }
        let mut bad = b.clone();
        let n = bad.len();
        bad[n - 1] ^= 0xff;
        assert!(read(&bad).is_err());
    }

    #[test]
    fn tshark_reads_it() {
        let mut w = PcapngWriter::new(Vec::new(), "netvm test").unwrap();
        w.add_interface(&iface("fw1:out", true)).unwrap();
        let mut f = crate::builder::FrameSpec::default().build(&[7u8; 300]);
        f.truncate(f.len().min(128));
        w.write_packet(
            0,
            1_700_000_000_000_000_001,
            200,
            &f,
            Some(Direction::Outbound),
            None,
        )
        .unwrap();
        let dir = std::env::temp_dir().join(format!("netvm-pcapng-{}", std::process::id()));
        std::fs::write(&dir, w.into_inner()).unwrap();
        let out = std::process::Command::new("tshark")
            .args(["-r"])
            .arg(&dir)
            .args([
                "-T",
                "fields",
                "-e",
                "frame.interface_name",
                "-e",
                "frame.len",
                "-e",
                "frame.cap_len",
                "-e",
                "frame.time_epoch",
            ])
            .output();
        let _ = std::fs::remove_file(&dir);
        match out {
            Ok(o) if o.status.success() => {
                let t = String::from_utf8_lossy(&o.stdout);
                assert_eq!(
                    t.trim(),
                    format!("fw1:out\t200\t{}\t1700000000.000000001", f.len()),
                    "{}",
                    String::from_utf8_lossy(&o.stderr)
                );
            }
            Ok(o) => panic!("tshark failed: {}", String::from_utf8_lossy(&o.stderr)),
            Err(e) => println!("NOTE: tshark not runnable ({e}); pcapng not checked by it"),
        }
    }
}
