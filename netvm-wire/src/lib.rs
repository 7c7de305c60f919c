//! Packet formats and packet-processing building blocks for netvm.
//!
//! This crate is what both sides of the data path agree on about bytes on the wire:
//! the core uses it to classify packets and compute flow hashes, and the network
//! functions (l2fwd, l3fwd, firewall, monitor, reflector) use it to read and rewrite
//! headers. Tests, benchmarks and the demo use its pcap reader/writer and traffic
//! builder.
//!
//! # What it is
//! - Checked, zero-copy views over `&[u8]` / `&mut [u8]`: [`EthernetFrame`] (up to two
//!   VLAN tags), [`Ipv4Packet`], [`Ipv6Packet`], [`UdpPacket`], [`TcpPacket`] (smoltcp style: `new_checked`
//!   validates lengths once and stores what it validated, after which no accessor
//!   can panic, whatever the bytes say or later become).
//! - Internet checksums, RFC 1624 incremental updates and
//!   [`decrement_ttl_in_place`] ([`checksum`]).
//! - A 5-tuple [`FlowKey`] and a direction-independent [`symmetric_hash`] ([`flow`]).
//! - One-pass header parsing into [`PacketMeta`] and the classifier's match
//!   [`Rule`] and [`Ipv4Prefix`] ([`meta`]).
//! - A DIR-24-8 longest-prefix-match table [`Lpm`] and a route-file parser ([`lpm`]);
//!   an IPv6 multibit-trie LPM [`Lpm6`] (at most 15 memory accesses per lookup, [`lpm6`]).
//! - IPv6: [`Ipv6Packet`], the bounded extension-header walk [`walk_ext`], hop-limit
//!   decrement, [`Ipv6Prefix`] and the family-neutral [`IpPrefix`] ([`ipv6`]).
//! - An ordered first-match [`Acl`] with hit counters and a rule-file parser ([`acl`]).
//! - Classic libpcap reading and writing ([`pcap`]), a pcapng writer and reader
//!   ([`pcapng`], for `netvm-manager capture`) and a deterministic traffic builder
//!   ([`builder`]).
//! - The Network Service Header over Ethernet (RFC 8300): parse and validate hostile NSH,
//!   build the header netvm emits ([`nsh`]).
//! - [`MacAddr`].
//!
//! # What it is not
//! No DPDK, no shared memory, no I/O on the per-packet path, no `unsafe`. It does
//! not own packet buffers: it borrows whatever slice the caller hands it.
//!
//! # Rules for the per-packet path
//! Everything a worker or NF calls per packet (`new_checked` and the accessors,
//! checksum helpers, [`PacketMeta::parse`], [`FlowKey::from_ethernet`],
//! [`symmetric_hash`], [`Lpm::lookup`], [`Rule::matches`], [`Acl::check`]) does not
//! allocate and does not panic on any input: packets live in memory that untrusted
//! NFs can write, so every byte is hostile. Config-time code (parsers, table
//! construction, pcap, builder) may allocate and returns typed errors.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod acl;
pub mod builder;
mod bytes;
pub mod checksum;
pub mod error;
pub mod ethernet;
pub mod flow;
pub mod ipv4;
pub mod ipv6;
pub mod l4;
pub mod lpm;
pub mod lpm6;
pub mod mac;
pub mod meta;
pub mod nsh;
pub mod pcap;
pub mod pcapng;

pub use acl::{
    Acl, AclErrorKind, AclFileError, AclRule, AclVerdict, Action, DecidedBy, OtherHits, PortRange,
};
pub use builder::{
    decode_payload, generate_mixed_flows, write_payload, BuildError, FrameSpec, GeneratedPacket,
    L4Spec, MixedFlows, Protocols, PAYLOAD_TAG_LEN,
};
pub use checksum::{decrement_ttl_in_place, TtlOutcome};
pub use error::WireError;
pub use ethernet::{ethertype, EthernetFrame};
pub use flow::{symmetric_hash, FlowKey};
pub use ipv4::Ipv4Packet;
pub use ipv6::{
    decrement_hop_limit_in_place, walk_ext, ExtChain, HopLimitOutcome, IpPrefix, Ipv6Packet,
    Ipv6Prefix,
};
pub use l4::{ip_proto, tcp_flags, TcpPacket, UdpPacket};
pub use lpm::{
    parse_routes, Lpm, LpmConfig, LpmError, NextHop, Route, RouteErrorKind, RouteFileError,
    RouteTable,
};
pub use lpm6::{Lpm6, Lpm6Config};
pub use mac::{MacAddr, MacParseError};
pub use meta::{Ipv4Meta, Ipv4Prefix, Ipv6Meta, L4Meta, PacketMeta, PrefixError, Rule};
pub use nsh::{
    eth_nsh_header, is_eth_nsh, parse_eth_nsh, EthNsh, NshError, NshHeader, ETHERTYPE_NSH,
    ETH_NSH_LEN,
};
pub use pcap::{
    ByteOrder, PcapError, PcapHeader, PcapPacket, PcapReader, PcapRecord, PcapWriter,
    PcapWriterOptions, Precision, LINKTYPE_ETHERNET,
};

/// Re-exported so callers need not import `std::net` just to talk to this crate.
pub use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
