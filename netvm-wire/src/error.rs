//! The error type shared by the checked packet views.
//!
//! [`EthernetFrame`](crate::EthernetFrame), [`Ipv4Packet`](crate::Ipv4Packet),
//! [`UdpPacket`](crate::UdpPacket), [`TcpPacket`](crate::TcpPacket),
//! [`PacketMeta::parse`](crate::PacketMeta::parse) and
//! [`decrement_ttl_in_place`](crate::decrement_ttl_in_place) all validate the same
//! kind of thing (a header that must fit in a buffer and be self-consistent), so
//! they share one error enum. It is `Copy` and carries no strings: building one on
//! the per-packet path costs nothing, and the core can count drops by variant.

use thiserror::Error;

/// Why a buffer is not a valid header of the expected kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Error)]
pub enum WireError {
    /// The buffer is shorter than the header (or the length the header claims).
    #[error("buffer too short: need {need} bytes, have {have}")]
    Truncated {
        /// Bytes needed from the start of the view.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// The IP version nibble is not 4.
    #[error("IP version {version} is not 4")]
    BadVersion {
        /// The version nibble found.
        version: u8,
    },
    /// A header-length field (IPv4 IHL, TCP data offset) is below the minimum.
    #[error("header length {header_len} bytes is below the minimum {min}")]
    BadHeaderLen {
        /// The header length the field claims, in bytes.
        header_len: usize,
        /// The smallest legal header length, in bytes.
        min: usize,
    },
    /// The IPv4 total length is smaller than the IPv4 header length.
    #[error("IPv4 total length {total_len} is smaller than its header length {header_len}")]
    BadTotalLen {
        /// The total-length field.
        total_len: usize,
        /// The header length (IHL × 4).
        header_len: usize,
    },
    /// The IP version nibble of an IPv6 header is not 6.
    #[error("IP version {version} is not 6")]
    BadIpv6Version {
        /// The version nibble found.
        version: u8,
    },
    /// The IPv6 extension-header chain is longer than netvm walks
    /// ([`MAX_EXT_HEADERS`](crate::ipv6::MAX_EXT_HEADERS) headers,
    /// [`MAX_EXT_BYTES`](crate::ipv6::MAX_EXT_BYTES) bytes): a parse error, never a
    /// guess at the upper-layer protocol.
    #[error(
        "IPv6 extension-header chain too long: {headers} headers, {bytes} bytes so far (at most {} headers and {} bytes)",
        crate::ipv6::MAX_EXT_HEADERS,
        crate::ipv6::MAX_EXT_BYTES
    )]
    ExtChainTooLong {
        /// Extension headers walked, the one that broke the bound included.
        headers: usize,
        /// Their bytes.
        bytes: usize,
    },
    /// A hop-by-hop options header that is not the first extension header (RFC 8200 4.1).
    #[error("IPv6 hop-by-hop options header at position {position}, not first")]
    HopByHopNotFirst {
        /// 0-based position in the chain.
        position: usize,
    },
    /// The UDP length field is below 8.
    #[error("UDP length {len} is below the header size 8")]
    BadUdpLen {
        /// The length field.
        len: usize,
    },
}

/// Shorthand for results of the packet views.
pub type Result<T> = core::result::Result<T, WireError>;

/// Returns `Truncated` unless `have >= need`.
#[inline]
pub(crate) fn need(have: usize, need: usize) -> Result<()> {
    if have >= need {
        Ok(())
    } else {
        Err(WireError::Truncated { need, have })
    }
}
