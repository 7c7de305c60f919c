//! Classic libpcap files: a streaming reader and writer.
//!
//! The reader takes microsecond (`0xa1b2c3d4`) and nanosecond (`0xa1b23c4d`)
//! files in either byte order, any link type (see [`PcapHeader::linktype`]),
//! and reports a malformed or truncated file as a typed [`PcapError`] that says
//! which record and byte offset, never a panic. Record lengths are capped at
//! [`MAX_RECORD_LEN`] (libpcap's own limit) so a hostile length cannot make it
//! allocate gigabytes. pcapng is recognised and refused with a clear error.
//!
//! The writer writes little-endian microsecond files with
//! `LINKTYPE_ETHERNET` by default ([`PcapWriterOptions`] for the rest).

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::time::Duration;

use thiserror::Error;

/// `LINKTYPE_ETHERNET`: frames start with an Ethernet header.
pub const LINKTYPE_ETHERNET: u32 = 1;

/// The largest record the reader accepts (libpcap's `MAXIMUM_SNAPLEN`).
pub const MAX_RECORD_LEN: u32 = 262_144;

const MAGIC_MICRO: u32 = 0xa1b2_c3d4;
const MAGIC_NANO: u32 = 0xa1b2_3c4d;
const MAGIC_PCAPNG: u32 = 0x0a0d_0d0a;
const GLOBAL_HEADER_LEN: usize = 24;
const RECORD_HEADER_LEN: usize = 16;

/// Timestamp resolution of a file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    /// Microseconds (the classic format).
    #[default]
    Micro,
    /// Nanoseconds.
    Nano,
}

/// Byte order of a file's header fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ByteOrder {
    /// Little endian.
    #[default]
    Little,
    /// Big endian.
    Big,
}

impl ByteOrder {
    fn u16(self, b: [u8; 2]) -> u16 {
        match self {
            ByteOrder::Little => u16::from_le_bytes(b),
            ByteOrder::Big => u16::from_be_bytes(b),
        }
    }

    fn u32(self, b: [u8; 4]) -> u32 {
        match self {
            ByteOrder::Little => u32::from_le_bytes(b),
            ByteOrder::Big => u32::from_be_bytes(b),
        }
    }

    fn put16(self, v: u16) -> [u8; 2] {
        match self {
            ByteOrder::Little => v.to_le_bytes(),
            ByteOrder::Big => v.to_be_bytes(),
        }
    }

    fn put32(self, v: u32) -> [u8; 4] {
        match self {
            ByteOrder::Little => v.to_le_bytes(),
            ByteOrder::Big => v.to_be_bytes(),
        }
    }
}

/// The global header of a pcap file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PcapHeader {
    /// Format version (major, minor); major is always 2.
    pub version: (u16, u16),
    /// GMT offset field (in practice always 0).
    pub thiszone: i32,
    /// Timestamp accuracy field (in practice always 0).
    pub sigfigs: u32,
    /// Snapshot length.
    pub snaplen: u32,
    /// Link type ([`LINKTYPE_ETHERNET`] = 1).
    pub linktype: u32,
    /// Timestamp resolution.
    pub precision: Precision,
    /// Byte order of the file.
    pub byte_order: ByteOrder,
}

/// Why a pcap file could not be read or written.
#[derive(Debug, Error)]
pub enum PcapError {
    /// The underlying reader or writer failed.
    #[error("pcap I/O failed")]
    Io(#[from] io::Error),
    /// The file ends inside the 24-byte global header.
    #[error("not a pcap file: it ends after {have} bytes, inside the 24-byte global header")]
    TruncatedHeader {
        /// Bytes present.
        have: usize,
    },
    /// The file is pcapng, which this reader does not handle.
    #[error("file is pcapng, not classic pcap (convert it with `editcap -F pcap`)")]
    Pcapng,
    /// The magic number is not a classic pcap one.
    #[error("not a pcap file: magic number {magic:#010x}")]
    BadMagic {
        /// The first four bytes, read big endian.
        magic: u32,
    },
    /// The version is not 2.x.
    #[error("unsupported pcap version {major}.{minor} (expected 2.x)")]
    UnsupportedVersion {
        /// Major version.
        major: u16,
        /// Minor version.
        minor: u16,
    },
    /// The file ends inside a record header or its data.
    #[error(
        "record {index} at byte {offset} is truncated: need {need} more bytes, the file has {have}"
    )]
    TruncatedRecord {
        /// 0-based record number.
        index: u64,
        /// Byte offset of the record header in the file.
        offset: u64,
        /// Bytes the record header or data needs.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// A record's captured length is over [`MAX_RECORD_LEN`].
    #[error(
        "record {index} at byte {offset} claims {len} captured bytes, more than the maximum {max}"
    )]
    RecordTooLarge {
        /// 0-based record number.
        index: u64,
        /// Byte offset of the record header in the file.
        offset: u64,
        /// The captured length it claims.
        len: u32,
        /// [`MAX_RECORD_LEN`].
        max: u32,
    },
    /// A timestamp does not fit in the format's 32-bit seconds.
    #[error("timestamp {secs}s does not fit in pcap's 32-bit seconds")]
    TimestampOutOfRange {
        /// Seconds since the epoch.
        secs: u64,
    },
    /// A packet is too large to write.
    #[error("packet of {len} bytes is larger than a pcap record can be ({max})")]
    PacketTooLarge {
        /// Packet length.
        len: usize,
        /// [`MAX_RECORD_LEN`].
        max: u32,
    },
}

/// A record borrowed from the reader's buffer (valid until the next read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PcapPacket<'a> {
    /// Time since the Unix epoch.
    pub ts: Duration,
    /// Length of the packet on the wire (≥ `data.len()` in a sane file).
    pub orig_len: u32,
    /// The captured bytes.
    pub data: &'a [u8],
}

/// An owned record, as the reader's iterator yields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcapRecord {
    /// Time since the Unix epoch.
    pub ts: Duration,
    /// Length of the packet on the wire.
    pub orig_len: u32,
    /// The captured bytes.
    pub data: Vec<u8>,
}

impl PcapPacket<'_> {
    /// An owned copy.
    pub fn to_record(&self) -> PcapRecord {
        PcapRecord {
            ts: self.ts,
            orig_len: self.orig_len,
            data: self.data.to_vec(),
        }
    }
}

/// Reads into `buf` until it is full or the reader reaches end of file; returns
/// the number of bytes read.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A streaming pcap reader.
#[derive(Debug)]
pub struct PcapReader<R> {
    r: R,
    header: PcapHeader,
    buf: Vec<u8>,
    index: u64,
    offset: u64,
    done: bool,
}

impl PcapReader<BufReader<File>> {
    /// Opens a file and reads its global header.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, PcapError> {
        PcapReader::new(BufReader::new(File::open(path)?))
    }
}

impl<R: Read> PcapReader<R> {
    /// Reads and checks the global header.
    ///
    /// Errors: [`PcapError::TruncatedHeader`], [`PcapError::Pcapng`],
    /// [`PcapError::BadMagic`], [`PcapError::UnsupportedVersion`],
    /// [`PcapError::Io`].
    pub fn new(mut r: R) -> Result<Self, PcapError> {
        let mut h = [0u8; GLOBAL_HEADER_LEN];
        let have = read_full(&mut r, &mut h)?;
        if have < GLOBAL_HEADER_LEN {
            return Err(PcapError::TruncatedHeader { have });
        }
        let [m0, m1, m2, m3, v0, v1, v2, v3, z0, z1, z2, z3, s0, s1, s2, s3, n0, n1, n2, n3, l0, l1, l2, l3] =
            h;
        let magic_be = u32::from_be_bytes([m0, m1, m2, m3]);
        let magic_le = u32::from_le_bytes([m0, m1, m2, m3]);
        let (precision, byte_order) = match (magic_be, magic_le) {
            (MAGIC_MICRO, _) => (Precision::Micro, ByteOrder::Big),
            (MAGIC_NANO, _) => (Precision::Nano, ByteOrder::Big),
            (_, MAGIC_MICRO) => (Precision::Micro, ByteOrder::Little),
            (_, MAGIC_NANO) => (Precision::Nano, ByteOrder::Little),
            (MAGIC_PCAPNG, _) => return Err(PcapError::Pcapng),
            _ => return Err(PcapError::BadMagic { magic: magic_be }),
        };
        let bo = byte_order;
        let major = bo.u16([v0, v1]);
        let minor = bo.u16([v2, v3]);
        if major != 2 {
            return Err(PcapError::UnsupportedVersion { major, minor });
        }
        let header = PcapHeader {
            version: (major, minor),
            thiszone: i32::from_ne_bytes(bo.u32([z0, z1, z2, z3]).to_ne_bytes()),
            sigfigs: bo.u32([s0, s1, s2, s3]),
            snaplen: bo.u32([n0, n1, n2, n3]),
            linktype: bo.u32([l0, l1, l2, l3]),
            precision,
            byte_order,
        };
        Ok(PcapReader {
            r,
            header,
            buf: Vec::new(),
            index: 0,
            offset: GLOBAL_HEADER_LEN as u64,
            done: false,
        })
    }

    /// The global header.
    pub fn header(&self) -> &PcapHeader {
        &self.header
    }

    /// Gives the underlying reader back.
    pub fn into_inner(self) -> R {
        self.r
    }

    /// The next record, `Ok(None)` at a clean end of file (exactly between
    /// records). The returned data borrows the reader's buffer, which is reused.
    ///
    /// Errors: [`PcapError::TruncatedRecord`], [`PcapError::RecordTooLarge`],
    /// [`PcapError::Io`]. After an error the reader stays at the error.
    pub fn next_packet(&mut self) -> Result<Option<PcapPacket<'_>>, PcapError> {
        let index = self.index;
        let offset = self.offset;
        let mut h = [0u8; RECORD_HEADER_LEN];
        let have = read_full(&mut self.r, &mut h)?;
        if have == 0 {
            return Ok(None);
        }
        if have < RECORD_HEADER_LEN {
            return Err(PcapError::TruncatedRecord {
                index,
                offset,
                need: RECORD_HEADER_LEN,
                have,
            });
        }
        let [t0, t1, t2, t3, u0, u1, u2, u3, i0, i1, i2, i3, o0, o1, o2, o3] = h;
        let bo = self.header.byte_order;
        let secs = bo.u32([t0, t1, t2, t3]);
        let sub = bo.u32([u0, u1, u2, u3]);
        let incl = bo.u32([i0, i1, i2, i3]);
        let orig_len = bo.u32([o0, o1, o2, o3]);
        if incl > MAX_RECORD_LEN {
            return Err(PcapError::RecordTooLarge {
                index,
                offset,
                len: incl,
                max: MAX_RECORD_LEN,
            });
        }
        let incl = usize::try_from(incl).unwrap_or(0); // <= MAX_RECORD_LEN
        self.buf.resize(incl, 0);
        let got = read_full(&mut self.r, &mut self.buf)?;
        if got < incl {
            return Err(PcapError::TruncatedRecord {
                index,
                offset,
                need: RECORD_HEADER_LEN + incl,
                have: RECORD_HEADER_LEN + got,
            });
        }
        // A sub-second field out of range (some tools write them) just carries
        // into the seconds; Duration arithmetic here cannot overflow.
        let nanos = match self.header.precision {
            Precision::Micro => u64::from(sub) * 1_000,
            Precision::Nano => u64::from(sub),
        };
        let ts = Duration::from_secs(u64::from(secs)) + Duration::from_nanos(nanos);
        self.index += 1;
        self.offset += (RECORD_HEADER_LEN + incl) as u64;
        Ok(Some(PcapPacket {
            ts,
            orig_len,
            data: &self.buf,
        }))
    }
}

impl<R: Read> Iterator for PcapReader<R> {
    type Item = Result<PcapRecord, PcapError>;

    /// Owned records; stops after the first error.
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_packet() {
            Ok(Some(p)) => Some(Ok(p.to_record())),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// How a [`PcapWriter`] writes its file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PcapWriterOptions {
    /// Timestamp resolution.
    pub precision: Precision,
    /// Byte order.
    pub byte_order: ByteOrder,
    /// Snapshot length; longer packets are truncated to it (`orig_len` keeps the
    /// real length).
    pub snaplen: u32,
    /// Link type.
    pub linktype: u32,
}

impl Default for PcapWriterOptions {
    /// Microseconds, little endian, snaplen 65535, Ethernet.
    fn default() -> Self {
        PcapWriterOptions {
            precision: Precision::Micro,
            byte_order: ByteOrder::Little,
            snaplen: 65_535,
            linktype: LINKTYPE_ETHERNET,
        }
    }
}

/// A streaming pcap writer.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    w: W,
    opts: PcapWriterOptions,
}

impl PcapWriter<BufWriter<File>> {
    /// Creates (or truncates) a file and writes the default header.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, PcapError> {
        PcapWriter::new(BufWriter::new(File::create(path)?))
    }
}

impl<W: Write> PcapWriter<W> {
    /// Writes the global header with the default options.
    pub fn new(w: W) -> Result<Self, PcapError> {
        Self::with_options(w, PcapWriterOptions::default())
    }

    /// Writes the global header with `opts`.
    pub fn with_options(mut w: W, opts: PcapWriterOptions) -> Result<Self, PcapError> {
        let bo = opts.byte_order;
        let magic = match opts.precision {
            Precision::Micro => MAGIC_MICRO,
            Precision::Nano => MAGIC_NANO,
        };
        let mut h = [0u8; GLOBAL_HEADER_LEN];
        h[0..4].copy_from_slice(&bo.put32(magic));
        h[4..6].copy_from_slice(&bo.put16(2));
        h[6..8].copy_from_slice(&bo.put16(4));
        // thiszone and sigfigs stay 0.
        h[16..20].copy_from_slice(&bo.put32(opts.snaplen));
        h[20..24].copy_from_slice(&bo.put32(opts.linktype));
        w.write_all(&h)?;
        Ok(PcapWriter { w, opts })
    }

    /// Writes one packet captured whole (`orig_len = data.len()`), truncated to
    /// the snaplen. `ts` is the time since the Unix epoch.
    pub fn write_packet(&mut self, ts: Duration, data: &[u8]) -> Result<(), PcapError> {
        let orig = u32::try_from(data.len()).map_err(|_| PcapError::PacketTooLarge {
            len: data.len(),
            max: MAX_RECORD_LEN,
        })?;
        self.write_record(ts, orig, data)
    }

    /// Writes one record with an explicit wire length.
    ///
    /// Errors: [`PcapError::TimestampOutOfRange`], [`PcapError::PacketTooLarge`]
    /// (more than [`MAX_RECORD_LEN`] bytes after snaplen truncation),
    /// [`PcapError::Io`].
    pub fn write_record(
        &mut self,
        ts: Duration,
        orig_len: u32,
        data: &[u8],
    ) -> Result<(), PcapError> {
        let secs = u32::try_from(ts.as_secs())
            .map_err(|_| PcapError::TimestampOutOfRange { secs: ts.as_secs() })?;
        let sub = match self.opts.precision {
            Precision::Micro => ts.subsec_micros(),
            Precision::Nano => ts.subsec_nanos(),
        };
        let snap = usize::try_from(self.opts.snaplen).unwrap_or(usize::MAX);
        let data = data.get(..snap).unwrap_or(data);
        let incl = u32::try_from(data.len())
            .ok()
            .filter(|&n| n <= MAX_RECORD_LEN)
            .ok_or(PcapError::PacketTooLarge {
                len: data.len(),
                max: MAX_RECORD_LEN,
            })?;
        let bo = self.opts.byte_order;
        let mut h = [0u8; RECORD_HEADER_LEN];
        h[0..4].copy_from_slice(&bo.put32(secs));
        h[4..8].copy_from_slice(&bo.put32(sub));
        h[8..12].copy_from_slice(&bo.put32(incl));
        h[12..16].copy_from_slice(&bo.put32(orig_len.max(incl)));
        self.w.write_all(&h)?;
        self.w.write_all(data)?;
        Ok(())
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> Result<(), PcapError> {
        self.w.flush()?;
        Ok(())
    }

    /// Flushes and gives the underlying writer back.
    pub fn finish(mut self) -> Result<W, PcapError> {
        self.w.flush()?;
        Ok(self.w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Vec<(Duration, Vec<u8>)> {
        vec![
            (Duration::new(1_700_000_000, 123_456_789), vec![1, 2, 3]),
            (Duration::new(1_700_000_001, 0), vec![]),
            (Duration::new(0, 999_999_999), (0..=255).collect()),
        ]
    }

    fn write(opts: PcapWriterOptions) -> Vec<u8> {
        let mut w = PcapWriter::with_options(Vec::new(), opts).unwrap();
        for (ts, d) in sample() {
            w.write_packet(ts, &d).unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn round_trip_all_formats() {
        for precision in [Precision::Micro, Precision::Nano] {
            for byte_order in [ByteOrder::Little, ByteOrder::Big] {
                let opts = PcapWriterOptions {
                    precision,
                    byte_order,
                    ..PcapWriterOptions::default()
                };
                let bytes = write(opts);
                let r = PcapReader::new(&bytes[..]).unwrap();
                assert_eq!(r.header().precision, precision);
                assert_eq!(r.header().byte_order, byte_order);
                assert_eq!(r.header().linktype, LINKTYPE_ETHERNET);
                assert_eq!(r.header().version, (2, 4));
                assert_eq!(r.header().snaplen, 65_535);
                let recs: Vec<_> = r.map(Result::unwrap).collect();
                assert_eq!(recs.len(), 3);
                for (rec, (ts, d)) in recs.iter().zip(sample()) {
                    let want = match precision {
                        Precision::Micro => Duration::new(ts.as_secs(), ts.subsec_micros() * 1000),
                        Precision::Nano => ts,
                    };
                    assert_eq!(rec.ts, want);
                    assert_eq!(rec.data, d);
                    assert_eq!(rec.orig_len as usize, d.len());
                }
            }
        }
    }

    #[test]
    fn known_bytes() {
        let bytes = write(PcapWriterOptions::default());
        assert_eq!(&bytes[..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        let be = write(PcapWriterOptions {
            byte_order: ByteOrder::Big,
            precision: Precision::Nano,
            ..PcapWriterOptions::default()
        });
        assert_eq!(&be[..4], &[0xa1, 0xb2, 0x3c, 0x4d]);
        assert_eq!(bytes.len(), 24 + 3 * 16 + 3 + 256);
    }

    #[test]
    fn snaplen_truncates() {
        let mut w = PcapWriter::with_options(
            Vec::new(),
            PcapWriterOptions {
                snaplen: 2,
                ..PcapWriterOptions::default()
            },
        )
        .unwrap();
        w.write_packet(Duration::ZERO, &[9, 8, 7, 6]).unwrap();
        let bytes = w.finish().unwrap();
        let mut r = PcapReader::new(&bytes[..]).unwrap();
        let p = r.next_packet().unwrap().unwrap();
        assert_eq!(p.data, &[9, 8]);
        assert_eq!(p.orig_len, 4);
        assert!(r.next_packet().unwrap().is_none());
    }

    #[test]
    fn malformed_files() {
        let good = write(PcapWriterOptions::default());
        assert!(matches!(
            PcapReader::new(&good[..10]),
            Err(PcapError::TruncatedHeader { have: 10 })
        ));
        assert!(matches!(
            PcapReader::new(&[0u8; 24][..]),
            Err(PcapError::BadMagic { magic: 0 })
        ));
        let mut ng = good.clone();
        ng[..4].copy_from_slice(&[0x0a, 0x0d, 0x0d, 0x0a]);
        assert!(matches!(PcapReader::new(&ng[..]), Err(PcapError::Pcapng)));
        let mut v = good.clone();
        v[4] = 3;
        assert!(matches!(
            PcapReader::new(&v[..]),
            Err(PcapError::UnsupportedVersion { major: 3, minor: 4 })
        ));

        // Truncated inside the second record's header.
        let cut = 24 + 16 + 3 + 5;
        let mut r = PcapReader::new(&good[..cut]).unwrap();
        assert!(r.next_packet().unwrap().is_some());
        let e = r.next_packet().unwrap_err();
        assert!(matches!(
            e,
            PcapError::TruncatedRecord {
                index: 1,
                offset: 43,
                need: 16,
                have: 5
            }
        ));
        assert!(e.to_string().contains("record 1 at byte 43"));

        // Truncated inside the third record's data.
        let cut = good.len() - 1;
        let mut r = PcapReader::new(&good[..cut]).unwrap();
        let e = r.by_ref().find_map(Result::err).unwrap();
        assert!(matches!(
            e,
            PcapError::TruncatedRecord {
                index: 2,
                need: 272,
                have: 271,
                ..
            }
        ));
        assert!(r.next().is_none(), "iterator stops after an error");

        // An absurd record length is refused before allocating.
        let mut big = good[..24].to_vec();
        big.extend_from_slice(&[0; 8]);
        big.extend_from_slice(&u32::MAX.to_le_bytes());
        big.extend_from_slice(&u32::MAX.to_le_bytes());
        let mut r = PcapReader::new(&big[..]).unwrap();
        assert!(matches!(
            r.next_packet(),
            Err(PcapError::RecordTooLarge { len: u32::MAX, .. })
        ));
    }

    #[test]
    fn writer_errors() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        assert!(matches!(
            w.write_packet(Duration::from_secs(1 << 33), &[]),
            Err(PcapError::TimestampOutOfRange { .. })
        ));
        let mut w = PcapWriter::with_options(
            Vec::new(),
            PcapWriterOptions {
                snaplen: u32::MAX,
                ..PcapWriterOptions::default()
            },
        )
        .unwrap();
        assert!(matches!(
            w.write_packet(Duration::ZERO, &vec![0; MAX_RECORD_LEN as usize + 1]),
            Err(PcapError::PacketTooLarge { .. })
        ));
    }

    proptest! {
        #[test]
        fn reader_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(r) = PcapReader::new(&data[..]) {
                for rec in r.take(20) {
                    let _ = rec;
                }
            }
        }

        /// Random records with a valid header in front: still never a panic.
        #[test]
        fn records_never_panic(
            nano in any::<bool>(),
            be in any::<bool>(),
            body in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let opts = PcapWriterOptions {
                precision: if nano { Precision::Nano } else { Precision::Micro },
                byte_order: if be { ByteOrder::Big } else { ByteOrder::Little },
                ..PcapWriterOptions::default()
            };
            let mut f = PcapWriter::with_options(Vec::new(), opts).unwrap().finish().unwrap();
            f.extend_from_slice(&body);
            let r = PcapReader::new(&f[..]).unwrap();
            for rec in r.take(50) {
                let _ = rec;
            }
        }

        #[test]
        fn round_trip_random(
            pkts in proptest::collection::vec(
                (any::<u32>(), 0u32..1_000_000, proptest::collection::vec(any::<u8>(), 0..100)),
                0..10,
            ),
        ) {
            let mut w = PcapWriter::new(Vec::new()).unwrap();
            for (s, us, d) in &pkts {
                w.write_packet(Duration::new(u64::from(*s), us * 1000), d).unwrap();
            }
            let bytes = w.finish().unwrap();
            let got: Vec<_> = PcapReader::new(&bytes[..]).unwrap().map(Result::unwrap).collect();
            prop_assert_eq!(got.len(), pkts.len());
            for (g, (s, us, d)) in got.iter().zip(&pkts) {
                prop_assert_eq!(g.ts, Duration::new(u64::from(*s), us * 1000));
                prop_assert_eq!(&g.data, d);
            }
        }
    }
}
