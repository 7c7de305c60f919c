//! Service paths across instances (NSH, RFC 8300, over Ethernet).
//!
//! **Leaving**: a packet whose next hop a peer instance runs ([`Tables`]' `Chain::remote`)
//! gets an outer Ethernet header (the port's `peer_mac` or broadcast, the port's own MAC,
//! ethertype 0x894F) and an NSH (MD type 2 without metadata, SPI = the chain's `path_id`,
//! SI = 255 − the hop's position, TTL 63, next protocol Ethernet) written **in place into the
//! buffer's headroom** — the 22 bytes in front of `data_off`, bounds-checked; never a copy —
//! and is sent on the hop's port like any TX.
//!
//! **Arriving**: on a port some chain's remote hop names, a frame with ethertype NSH is an NSH
//! arrival, never classified. Its headers are parsed from a private copy
//! ([`netvm_wire::parse_eth_nsh`]: version, O bit, MD type and length, next protocol, an inner
//! Ethernet header present); the SPI must name an active chain of this instance, the TTL must
//! survive this hop's decrement, and the SI must name a hop of the chain that runs here. Any
//! refusal is a counted drop (`nsh` with its [`NshDrop`] reason, per path where the path is
//! known), never a panic. An accepted frame is decapsulated by advancing `data_off` and
//! resumes the chain at that hop.
//!
//! What is left out: the TTL is not carried across this instance's own services, so a frame
//! this instance sends on starts at 63 again (a path cannot loop: each remote hop goes to a
//! later position, so the SI strictly decreases); MD type 2 metadata is neither sent nor
//! used; VXLAN-GPE and GENEVE are not spoken.

use dpdk::sys::rte_mbuf;
use netvm_wire::nsh::{NshError, DEFAULT_TTL, FIRST_SI, NSH_BASE_LEN};
use netvm_wire::{NshHeader, ETHERTYPE_NSH, ETH_NSH_LEN};

use super::rx::packet_hash;
use super::State;
use crate::stats::{DropReason, NshDrop};
use crate::tables::Tables;
use crate::Shared;

/// Bytes of an arrival copied privately before parsing: outer Ethernet, the longest NSH
/// (63 words) and an inner Ethernet header.
const NSH_COPY: usize = 14 + 63 * 4 + 14;

/// [`ETH_NSH_LEN`] for mbuf arithmetic.
const ENCAP: u16 = 22;
const _: () = assert!(ENCAP as usize == ETH_NSH_LEN);

impl State {
    /// Polls burst `rx_buf[..n]` of port `pidx`, a port that carries NSH: frames with
    /// ethertype NSH resume their path, the others are received as usual.
    pub(super) fn rx_nsh_port(&mut self, sh: &Shared, t: &Tables, n: usize, pidx: u16) {
        let steer = sh.ports[usize::from(pidx)].steer;
        for i in 0..n {
            let m = self.rx_buf[i];
            if is_nsh(m) {
                self.nsh_in(sh, t, m, pidx);
            } else {
                self.rx_one(sh, t, m, pidx, steer);
            }
        }
        if steer {
            for to in 0..self.nsteer.len() {
                self.push_steered(sh, to);
            }
        }
    }

    /// A frame with ethertype NSH from port `pidx`: validate, decapsulate, resume.
    fn nsh_in(&mut self, sh: &Shared, t: &Tables, m: *mut rte_mbuf, pidx: u16) {
        // SAFETY: m is a valid mbuf just received and owned here; its header is core-private.
        let (nb_segs, data_len, pkt_len) = unsafe { ((*m).nb_segs, (*m).data_len, (*m).pkt_len) };
        let p = usize::from(pidx);
        self.c.port_rx[p] += 1;
        self.c.port_rx_bytes[p] += u64::from(pkt_len.max(u32::from(data_len)));
        if nb_segs != 1 {
            self.free(m, DropReason::MultiSegment);
            return;
        }
        // The bytes came from the wire: parse a private copy.
        let mut hdr = [0u8; NSH_COPY];
        let k = copy_prefix(m, &mut hdr);
        let parsed = match netvm_wire::parse_eth_nsh(&hdr[..k], usize::from(data_len)) {
            Ok(p) => p,
            Err(e) => {
                self.nsh_drop(m, None, wire_reason(e));
                return;
            }
        };
        let Some(chain) = t.path_chain(parsed.nsh.spi) else {
            self.nsh_drop(m, None, NshDrop::UnknownPath);
            return;
        };
        if parsed.nsh.ttl_after_hop().is_err() {
            self.nsh_drop(m, Some(chain), NshDrop::TtlExpired);
            return;
        }
        let Some(ch) = t.chains.get(usize::from(chain)) else {
            self.nsh_drop(m, None, NshDrop::UnknownPath);
            return;
        };
        let pos = usize::from(FIRST_SI - parsed.nsh.si);
        match ch.remote.get(pos) {
            None => {
                self.nsh_drop(m, Some(chain), NshDrop::BadSi);
                return;
            }
            Some(Some(_)) => {
                self.nsh_drop(m, Some(chain), NshDrop::SiNotLocal);
                return;
            }
            Some(None) => {}
        }
        // Decapsulate: the inner frame starts `inner_off` bytes further on (within the
        // frame: `parse_eth_nsh` checked `inner_off + 14 <= data_len`).
        let off = u16::try_from(parsed.inner_off).unwrap_or(u16::MAX);
        // SAFETY: m is owned here; `off < data_len` (checked by the parser against the
        // frame's real length), so the new bounds stay inside the old ones.
        unsafe {
            (*m).data_off += off;
            (*m).data_len -= off;
            (*m).pkt_len -= u32::from(off);
        }
        self.c.path_decap[usize::from(chain)] += 1;
        self.c.chain_pkts[usize::from(chain)] += 1;
        let hash_needed = t
            .needs_hash
            .get(usize::from(chain))
            .copied()
            .unwrap_or(true);
        let hash = if hash_needed { packet_hash(m) } else { 0 };
        let dom = sh.ports[p].domain;
        let in_port = u8::try_from(pidx).unwrap_or(u8::MAX);
        self.route(sh, t, m, dom, chain, pos, in_port, hash);
    }

    /// Sends `m` to the peer that runs hop `pos` of `chain`, through `port`: NSH written into
    /// the headroom, then TX.
    pub(super) fn nsh_out(
        &mut self,
        sh: &Shared,
        t: &Tables,
        m: *mut rte_mbuf,
        chain: u16,
        pos: usize,
        port: u16,
    ) {
        let Some(spi) = t.chains.get(usize::from(chain)).and_then(|c| c.path_id) else {
            self.nsh_drop(m, None, NshDrop::UnknownPath);
            return;
        };
        // Positions are below MAX_CHAIN_LEN (16), so the SI is at least 240.
        let si = FIRST_SI.saturating_sub(u8::try_from(pos).unwrap_or(u8::MAX));
        let Some(prt) = sh.ports.get(usize::from(port)) else {
            self.nsh_drop(m, Some(chain), NshDrop::UnknownPath);
            return;
        };
        let h = encap_header(&prt.nsh_macs, spi, si, DEFAULT_TTL);
        // SAFETY: m is a valid single-segment mbuf owned here (received, or taken back from an
        // NF with validated bounds). The 22 bytes written lie in its own buffer, in front of
        // its data: `data_off >= ETH_NSH_LEN` is checked first, and `buf_addr` points at the
        // buffer's start. A raw copy forms no reference into the shared buffer.
        let ok = unsafe {
            let off = (*m).data_off;
            if off < ENCAP {
                false
            } else {
                let new_off = off - ENCAP;
                std::ptr::copy_nonoverlapping(
                    h.as_ptr(),
                    (*m).buf_addr.cast::<u8>().add(usize::from(new_off)),
                    ETH_NSH_LEN,
                );
                (*m).data_off = new_off;
                (*m).data_len += ENCAP;
                (*m).pkt_len += u32::from(ENCAP);
                true
            }
        };
        if !ok {
            self.nsh_drop(m, Some(chain), NshDrop::NoHeadroom);
            return;
        }
        self.c.path_encap[usize::from(chain)] += 1;
        self.stage_tx(sh, m, port);
    }

    fn nsh_drop(&mut self, m: *mut rte_mbuf, chain: Option<u16>, why: NshDrop) {
        self.c.nsh_drops[why as usize] += 1;
        if let Some(c) = chain.and_then(|c| self.c.path_drops.get_mut(usize::from(c))) {
            c[why as usize] += 1;
        }
        self.free(m, DropReason::Nsh);
    }
}

/// The 22 bytes in front of a frame leaving for a peer: `macs` is (outer destination,
/// outer source).
#[inline]
pub(crate) fn encap_header(macs: &[u8; 12], spi: u32, si: u8, ttl: u8) -> [u8; ETH_NSH_LEN] {
    let mut h = [0u8; ETH_NSH_LEN];
    h[..12].copy_from_slice(macs);
    h[12..14].copy_from_slice(&ETHERTYPE_NSH.to_be_bytes());
    let mut base = [0u8; NSH_BASE_LEN];
    NshHeader::new(spi, si, ttl).emit_base(&mut base);
    h[14..].copy_from_slice(&base);
    h
}

/// Whether `m`'s frame has ethertype NSH (two bytes read out of the buffer by value).
#[inline]
fn is_nsh(m: *mut rte_mbuf) -> bool {
    // SAFETY: m is a valid mbuf just received and owned here; bytes 12 and 13 are read only
    // when `data_len >= 14`, inside its data; a raw read forms no reference.
    unsafe {
        if (*m).data_len < 14 {
            return false;
        }
        let p = (*m)
            .buf_addr
            .cast::<u8>()
            .add(usize::from((*m).data_off) + 12);
        u16::from_be_bytes([p.read(), p.add(1).read()]) == ETHERTYPE_NSH
    }
}

/// Copies the first bytes of `m`'s frame (at most `out.len()`); returns how many.
#[inline]
fn copy_prefix(m: *mut rte_mbuf, out: &mut [u8; NSH_COPY]) -> usize {
    // SAFETY: m is a valid single-segment mbuf owned by the caller; `data_off + data_len` lie
    // inside its buffer. A raw copy forms no reference into the buffer.
    unsafe {
        let k = usize::from((*m).data_len).min(NSH_COPY);
        std::ptr::copy_nonoverlapping(
            (*m).buf_addr.cast::<u8>().add(usize::from((*m).data_off)),
            out.as_mut_ptr(),
            k,
        );
        k
    }
}

/// The counter of a header refusal.
fn wire_reason(e: NshError) -> NshDrop {
    match e {
        NshError::Truncated => NshDrop::Truncated,
        NshError::BadVersion(_) => NshDrop::BadVersion,
        NshError::Oam => NshDrop::Oam,
        NshError::BadMdType(_) => NshDrop::BadMdType,
        NshError::BadLength(_) => NshDrop::BadLength,
        NshError::BadNextProtocol(_) => NshDrop::BadNextProtocol,
        NshError::TtlExpired(_) => NshDrop::TtlExpired,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encap_header_parses_back() {
        let macs = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
        let h = encap_header(&macs, 0x12_3456, 254, DEFAULT_TTL);
        assert_eq!(&h[..12], &macs);
        let mut f = h.to_vec();
        f.extend_from_slice(&[0u8; 60]);
        let p = netvm_wire::parse_eth_nsh(&f, f.len()).unwrap();
        assert_eq!((p.nsh.spi, p.nsh.si, p.nsh.ttl), (0x12_3456, 254, 63));
        assert_eq!(p.inner_off, ETH_NSH_LEN);
        // The core's names agree with the wire's.
        for e in [
            NshError::Truncated,
            NshError::BadVersion(1),
            NshError::Oam,
            NshError::BadMdType(0),
            NshError::BadLength(0),
            NshError::BadNextProtocol(0),
            NshError::TtlExpired(0),
        ] {
            assert_eq!(wire_reason(e).name(), e.name());
        }
    }
}
