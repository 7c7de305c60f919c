//! The Network Service Header (NSH, RFC 8300) over Ethernet: what a netvm instance puts in
//! front of a frame whose service path continues on another instance, and what it checks
//! before it resumes a path for a frame that arrives with one.
//!
//! ```text
//!  outer Ethernet (14 B, ethertype 0x894F)
//!  NSH base header (4 B):
//!   0                   1                   2                   3
//!   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//!  |Ver|O|U|    TTL    |   Length  |U|U|U|U|MD Type| Next Protocol |
//!  service path header (4 B):
//!  |          Service Path Identifier (SPI)        | Service Index |
//!  context headers: MD type 1: 16 B fixed; MD type 2: 0 or more TLVs
//!  inner frame (next protocol 0x3: Ethernet)
//! ```
//!
//! netvm emits MD type 2 without context headers (Length 2 words, 8 bytes), TTL 63 (the RFC's
//! default) and next protocol Ethernet: 22 bytes of overhead ([`ETH_NSH_LEN`]). It accepts MD
//! type 1 (Length 6) and MD type 2 (Length ≥ 2, every TLV inside the stated length), ignores
//! the metadata, and accepts only next protocol Ethernet.
//!
//! Everything that arrives from the wire is hostile: [`NshHeader::parse`] validates every
//! field and never panics; each refusal is an [`NshError`] the core counts by name.

/// Ethertype of NSH.
pub const ETHERTYPE_NSH: u16 = 0x894f;
/// Next protocol: IPv4.
pub const NP_IPV4: u8 = 0x1;
/// Next protocol: IPv6.
pub const NP_IPV6: u8 = 0x2;
/// Next protocol: Ethernet (the only one netvm carries).
pub const NP_ETHERNET: u8 = 0x3;
/// MD type 1: four fixed 4-byte context headers.
pub const MD_TYPE_1: u8 = 0x1;
/// MD type 2: variable-length context headers (TLVs).
pub const MD_TYPE_2: u8 = 0x2;
/// Bytes of the base and service path headers.
pub const NSH_BASE_LEN: usize = 8;
/// Bytes netvm puts in front of a frame: outer Ethernet + NSH MD type 2 without metadata.
pub const ETH_NSH_LEN: usize = 14 + NSH_BASE_LEN;
/// The TTL a path starts with (RFC 8300 section 2.2: default 63).
pub const DEFAULT_TTL: u8 = 63;
/// Largest Service Path Identifier (24 bits).
pub const MAX_SPI: u32 = 0x00ff_ffff;
/// The Service Index of the first service of a path; each service decrements it by one.
pub const FIRST_SI: u8 = 255;

/// Why a frame's NSH is refused. `Copy`, no strings: the core counts by [`NshError::name`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum NshError {
    /// Shorter than an outer Ethernet header plus the 8-byte base and path headers, or than
    /// the header length the NSH states plus an inner Ethernet header.
    #[error("frame too short for its NSH and an inner Ethernet header")]
    Truncated,
    /// Version not 0.
    #[error("NSH version {0} is not 0")]
    BadVersion(u8),
    /// The O bit is set: an OAM packet, which netvm does not process.
    #[error("NSH OAM packet (O bit set)")]
    Oam,
    /// MD type other than 1 or 2.
    #[error("NSH MD type {0} is not 1 or 2")]
    BadMdType(u8),
    /// Length field inconsistent with the MD type (MD 1: 6 words; MD 2: at least 2), or
    /// context TLVs that do not fill the stated length exactly.
    #[error("NSH length {0} words is invalid for its MD type")]
    BadLength(u8),
    /// Next protocol other than Ethernet.
    #[error("NSH next protocol {0:#x} is not Ethernet (0x3)")]
    BadNextProtocol(u8),
    /// TTL 0 or 1: nothing left after this hop's decrement.
    #[error("NSH TTL {0} expires at this hop")]
    TtlExpired(u8),
}

impl NshError {
    /// Stable counter name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Truncated => "truncated",
            Self::BadVersion(_) => "bad_version",
            Self::Oam => "oam",
            Self::BadMdType(_) => "bad_md_type",
            Self::BadLength(_) => "bad_length",
            Self::BadNextProtocol(_) => "bad_next_protocol",
            Self::TtlExpired(_) => "ttl_expired",
        }
    }
}

/// A validated NSH (fields only; the metadata is skipped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NshHeader {
    /// TTL as received (6 bits).
    pub ttl: u8,
    /// Header length in 4-byte words (6 bits), base header included.
    pub length: u8,
    /// MD type (1 or 2).
    pub md_type: u8,
    /// Next protocol.
    pub next_proto: u8,
    /// Service Path Identifier (24 bits).
    pub spi: u32,
    /// Service Index.
    pub si: u8,
}

impl NshHeader {
    /// The header netvm emits: MD type 2 without metadata, next protocol Ethernet.
    #[must_use]
    pub fn new(spi: u32, si: u8, ttl: u8) -> Self {
        Self {
            ttl: ttl & 0x3f,
            length: 2,
            md_type: MD_TYPE_2,
            next_proto: NP_ETHERNET,
            spi: spi & MAX_SPI,
            si,
        }
    }

    /// Bytes of the whole NSH (base, path and context headers).
    #[must_use]
    pub fn header_len(&self) -> usize {
        usize::from(self.length) * 4
    }

    /// Parses and validates the NSH at the start of `nsh` (the bytes after the outer
    /// Ethernet header). `frame_rest` is how many bytes the frame really has from there on
    /// (`nsh` may be a shorter private copy). Checks version, O bit, MD type and length
    /// (MD 2: every TLV within it), next protocol Ethernet, and that an inner Ethernet header
    /// follows. The TTL is not judged here: see [`NshHeader::ttl_after_hop`].
    pub fn parse(nsh: &[u8], frame_rest: usize) -> Result<Self, NshError> {
        let b = nsh.get(..NSH_BASE_LEN).ok_or(NshError::Truncated)?;
        if frame_rest < NSH_BASE_LEN {
            return Err(NshError::Truncated);
        }
        let version = b[0] >> 6;
        if version != 0 {
            return Err(NshError::BadVersion(version));
        }
        if b[0] & 0x20 != 0 {
            return Err(NshError::Oam);
        }
        let ttl = ((b[0] & 0x0f) << 2) | (b[1] >> 6);
        let length = b[1] & 0x3f;
        let md_type = b[2] & 0x0f;
        let next_proto = b[3];
        let spi = u32::from_be_bytes([0, b[4], b[5], b[6]]);
        let si = b[7];
        let hlen = usize::from(length) * 4;
        if hlen > frame_rest {
            // The stated length runs past the end of the frame.
            return Err(NshError::BadLength(length));
        }
        match md_type {
            MD_TYPE_1 if length != 6 => return Err(NshError::BadLength(length)),
            MD_TYPE_1 => {}
            MD_TYPE_2 if length < 2 => return Err(NshError::BadLength(length)),
            MD_TYPE_2 => {
                // Context headers: class (2 B), type (1 B), U + length (7 bits, bytes), value
                // padded to 4 bytes. They must fill the stated length exactly.
                let ctx = nsh.get(NSH_BASE_LEN..hlen).ok_or(NshError::Truncated)?;
                let mut off = 0usize;
                while off < ctx.len() {
                    let tlv = ctx.get(off..off + 4).ok_or(NshError::BadLength(length))?;
                    let vlen = usize::from(tlv[3] & 0x7f);
                    off += 4 + vlen.div_ceil(4) * 4;
                }
                if off != ctx.len() {
                    return Err(NshError::BadLength(length));
                }
            }
            m => return Err(NshError::BadMdType(m)),
        }
        if next_proto != NP_ETHERNET {
            return Err(NshError::BadNextProtocol(next_proto));
        }
        // The whole header and an inner Ethernet header must be in the frame.
        if frame_rest < hlen + 14 || nsh.len() < hlen {
            return Err(NshError::Truncated);
        }
        Ok(Self {
            ttl,
            length,
            md_type,
            next_proto,
            spi,
            si,
        })
    }

    /// The TTL after this hop's decrement (RFC 8300 section 2.2: decrement; a packet whose
    /// TTL is then 0 is not forwarded).
    pub fn ttl_after_hop(&self) -> Result<u8, NshError> {
        match self.ttl {
            0 | 1 => Err(NshError::TtlExpired(self.ttl)),
            t => Ok(t - 1),
        }
    }

    /// Writes the base and path headers (8 bytes; MD type 2 without context headers, so
    /// only for a header of `length` 2) into `out`.
    pub fn emit_base(&self, out: &mut [u8; NSH_BASE_LEN]) {
        let ttl = self.ttl & 0x3f;
        out[0] = ttl >> 2; // version 0, O 0, U 0
        out[1] = ((ttl & 0x3) << 6) | (self.length & 0x3f);
        out[2] = self.md_type & 0x0f;
        out[3] = self.next_proto;
        let spi = (self.spi & MAX_SPI).to_be_bytes();
        out[4..7].copy_from_slice(&spi[1..]);
        out[7] = self.si;
    }
}

/// Builds the 22 bytes netvm puts in front of a frame leaving for a peer: outer Ethernet
/// (`dst`, `src`, ethertype NSH) and NSH MD type 2 (`spi`, `si`, `ttl`, next protocol
/// Ethernet, no metadata).
#[must_use]
pub fn eth_nsh_header(dst: [u8; 6], src: [u8; 6], spi: u32, si: u8, ttl: u8) -> [u8; ETH_NSH_LEN] {
    let mut h = [0u8; ETH_NSH_LEN];
    h[..6].copy_from_slice(&dst);
    h[6..12].copy_from_slice(&src);
    h[12..14].copy_from_slice(&ETHERTYPE_NSH.to_be_bytes());
    let mut base = [0u8; NSH_BASE_LEN];
    NshHeader::new(spi, si, ttl).emit_base(&mut base);
    h[14..].copy_from_slice(&base);
    h
}

/// Whether an Ethernet frame (its first 14 bytes at least) carries NSH directly (no VLAN tag
/// on the outer header).
#[must_use]
pub fn is_eth_nsh(frame: &[u8]) -> bool {
    frame.get(12..14) == Some(&ETHERTYPE_NSH.to_be_bytes()[..])
}

/// A frame that arrived with Ethernet + NSH: the validated header and where the inner frame
/// starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EthNsh {
    /// The NSH.
    pub nsh: NshHeader,
    /// Offset of the inner Ethernet frame from the start of the outer frame.
    pub inner_off: usize,
}

/// Parses an Ethernet + NSH frame: `hdr` is (a private copy of) its first bytes, `frame_len`
/// the frame's real length. The outer ethertype is not looked at: callers check
/// [`is_eth_nsh`] first.
pub fn parse_eth_nsh(hdr: &[u8], frame_len: usize) -> Result<EthNsh, NshError> {
    if hdr.len() < 14 || frame_len < 14 {
        return Err(NshError::Truncated);
    }
    let nsh = NshHeader::parse(&hdr[14..], frame_len - 14)?;
    Ok(EthNsh {
        inner_off: 14 + nsh.header_len(),
        nsh,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame(spi: u32, si: u8, ttl: u8, inner: &[u8]) -> Vec<u8> {
        let mut f = eth_nsh_header([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1], spi, si, ttl).to_vec();
        f.extend_from_slice(inner);
        f
    }

    #[test]
    fn emitted_header_has_rfc_bytes() {
        let h = eth_nsh_header([0xff; 6], [2, 0, 0, 0, 0, 1], 0x00ab_cdef, 254, 63);
        assert_eq!(&h[12..14], &[0x89, 0x4f]);
        // Ver 0, O 0, TTL 63 (0b111111), length 2, MD type 2, NP Ethernet.
        assert_eq!(&h[14..18], &[0x0f, 0xc2, 0x02, 0x03]);
        assert_eq!(&h[18..22], &[0xab, 0xcd, 0xef, 254]);
    }

    #[test]
    fn round_trip() {
        let inner = [0x11u8; 60];
        let f = frame(42, 254, 63, &inner);
        assert!(is_eth_nsh(&f));
        let p = parse_eth_nsh(&f, f.len()).unwrap();
        assert_eq!(p.inner_off, ETH_NSH_LEN);
        assert_eq!(
            p.nsh,
            NshHeader {
                ttl: 63,
                length: 2,
                md_type: 2,
                next_proto: 3,
                spi: 42,
                si: 254
            }
        );
        assert_eq!(p.nsh.ttl_after_hop(), Ok(62));
    }

    #[test]
    fn refusals_by_reason() {
        let inner = [0u8; 60];
        let good = frame(7, 255, 63, &inner);
        let with = |i: usize, v: u8| {
            let mut f = good.clone();
            f[i] = v;
            parse_eth_nsh(&f, f.len()).map(|p| p.nsh)
        };
        assert_eq!(with(14, 0x4f), Err(NshError::BadVersion(1)));
        assert_eq!(with(14, 0x2f), Err(NshError::Oam));
        assert_eq!(with(16, 0x00), Err(NshError::BadMdType(0)));
        assert_eq!(with(16, 0x0f), Err(NshError::BadMdType(15)));
        assert_eq!(with(16, 0x01), Err(NshError::BadLength(2))); // MD 1 needs 6
        assert_eq!(with(15, 0xc1), Err(NshError::BadLength(1)));
        assert_eq!(with(17, 0x01), Err(NshError::BadNextProtocol(1)));
        // Length 63 words: beyond the frame.
        assert_eq!(with(15, 0xff), Err(NshError::BadLength(63)));
        assert_eq!(parse_eth_nsh(&good[..20], 20), Err(NshError::Truncated));
        // No inner Ethernet header after the NSH.
        assert_eq!(parse_eth_nsh(&good[..30], 30), Err(NshError::Truncated));
        for ttl in [0u8, 1] {
            let f = frame(7, 255, ttl, &inner);
            let p = parse_eth_nsh(&f, f.len()).unwrap();
            assert_eq!(p.nsh.ttl_after_hop(), Err(NshError::TtlExpired(ttl)));
        }
    }

    #[test]
    fn md_type_1_and_md2_tlvs() {
        let inner = [0u8; 60];
        // MD type 1: length 6, 16 bytes of context.
        let mut f = frame(9, 200, 10, &[]);
        f[15] = (f[15] & 0xc0) | 6;
        f[16] = 1;
        f.extend_from_slice(&[0xaa; 16]);
        f.extend_from_slice(&inner);
        let p = parse_eth_nsh(&f, f.len()).unwrap();
        assert_eq!((p.nsh.md_type, p.inner_off), (1, 14 + 24));
        // MD type 2 with one TLV of 5 bytes (padded to 8): length 2 + 3 words.
        let mut f = frame(9, 200, 10, &[]);
        f[15] = (f[15] & 0xc0) | 5;
        f.extend_from_slice(&[0x01, 0x02, 0x03, 5, 1, 2, 3, 4, 5, 0, 0, 0]);
        f.extend_from_slice(&inner);
        let p = parse_eth_nsh(&f, f.len()).unwrap();
        assert_eq!(p.inner_off, 14 + 20);
        // A TLV claiming more than the stated length.
        let mut g = f.clone();
        g[14 + 8 + 3] = 9;
        assert_eq!(
            parse_eth_nsh(&g, g.len()).map(|p| p.nsh),
            Err(NshError::BadLength(5))
        );
    }

    proptest! {
        /// Any bytes: never a panic, and whatever is accepted is self-consistent (the inner
        /// frame lies within the frame, fields in range).
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200),
                                    extra in 0usize..64) {
            let mut f = bytes;
            if f.len() >= 14 {
                f[12] = 0x89;
                f[13] = 0x4f;
            }
            let len = f.len() + extra;
            // A shorter private copy than the frame is allowed: parse what is there.
            if let Ok(p) = parse_eth_nsh(&f, len) {
                prop_assert!(p.inner_off + 14 <= len);
                prop_assert!(p.inner_off <= f.len());
                prop_assert!(p.nsh.spi <= MAX_SPI && p.nsh.ttl < 64);
                prop_assert!(p.nsh.md_type == 1 || p.nsh.md_type == 2);
                prop_assert_eq!(p.nsh.next_proto, NP_ETHERNET);
                let _ = p.nsh.ttl_after_hop();
            }
        }

        /// What netvm emits parses back to the same fields, for every SPI, SI and TTL.
        #[test]
        fn emit_parse_round_trip(spi in 0u32..=MAX_SPI, si: u8, ttl in 0u8..64,
                                 inner in proptest::collection::vec(any::<u8>(), 14..100)) {
            let f = frame(spi, si, ttl, &inner);
            let p = parse_eth_nsh(&f, f.len()).unwrap();
            prop_assert_eq!(p.nsh, NshHeader::new(spi, si, ttl));
            prop_assert_eq!(&f[p.inner_off..], &inner[..]);
        }

        /// Flipping any one byte of a good header is either refused or still gives a header
        /// whose inner frame lies inside the frame.
        #[test]
        fn one_byte_mutations_stay_bounded(i in 14usize..22, v: u8) {
            let mut f = frame(5, 254, 63, &[0u8; 40]);
            f[i] = v;
            if let Ok(p) = parse_eth_nsh(&f, f.len()) {
                prop_assert!(p.inner_off + 14 <= f.len());
            }
        }
    }
}
