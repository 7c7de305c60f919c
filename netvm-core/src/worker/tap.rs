//! Capture hooks: a worker with an active [`Tap`](crate::capture::Tap) copies the frames that
//! pass its point (and match its filter) into its capture ring. Callers test
//! `self.tap.is_some()` first — the only cost of the hooks while no capture runs — and call
//! these (cold) functions only then. Nothing here changes what the data path does: the mbuf
//! is only read, the counters are the capture's own.

use dpdk::sys::rte_mbuf;
use netvm_wire::PacketMeta;

use super::rx::{copy_headers, HDR_COPY};
use super::State;
use crate::capture::{now_ns, TapKind};

impl State {
    /// One frame at point (`kind`, `idx`), received on config port `in_port`.
    #[cold]
    #[inline(never)]
    pub(super) fn tap_one(&mut self, kind: TapKind, idx: u16, m: *mut rte_mbuf, in_port: u16) {
        let Some(tap) = self.tap.as_mut() else {
            return;
        };
        if tap.kind != kind || tap.idx != idx || tap.exhausted() {
            return;
        }
        // SAFETY: m is a valid mbuf owned by this worker (the caller's invariant); its header
        // lives in core-private memory.
        let (data_len, pkt_len) = unsafe { ((*m).data_len, (*m).pkt_len) };
        if let Some(rule) = &tap.filter {
            // Parsed from a private copy, as the classifier does: the bytes are in memory
            // NFs of the domain may write.
            let mut hdr = [0u8; HDR_COPY];
            let k = copy_headers(m, &mut hdr);
            match PacketMeta::parse_prefix(&hdr[..k], usize::from(data_len)) {
                Ok(meta) if rule.matches(&meta, in_port) => {}
                _ => return,
            }
        }
        if !tap.ring.has_room() {
            tap.ring.count_drop();
            return;
        }
        if !tap.claim() {
            return;
        }
        let n = usize::from(data_len).min(tap.snaplen);
        let orig = pkt_len.max(u32::from(data_len));
        tap.ring.push(now_ns(), orig, |buf| {
            let n = n.min(buf.len());
            // SAFETY: m is a valid single- or multi-segment mbuf owned here: its first
            // segment holds `data_len >= n` bytes from `buf_addr + data_off`, inside its
            // buffer. A raw copy out of shared memory forms no reference to it; `buf` is the
            // ring's private slot of at least `n` bytes.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    (*m).buf_addr.cast::<u8>().add(usize::from((*m).data_off)),
                    buf.as_mut_ptr(),
                    n,
                );
            }
            n
        });
    }

    /// Every frame of `pkts` at point (`kind`, `idx`); `in_port` as in [`Self::tap_one`],
    /// `None`: look it up from the mbuf's DPDK port id.
    #[cold]
    #[inline(never)]
    pub(super) fn tap_burst(
        &mut self,
        kind: TapKind,
        idx: u16,
        pkts: &[*mut rte_mbuf],
        in_port: Option<u16>,
    ) {
        let Some(tap) = self.tap.as_ref() else {
            return;
        };
        if tap.kind != kind || tap.idx != idx {
            return;
        }
        let map = std::sync::Arc::clone(&tap.port_index);
        for &m in pkts {
            let p = in_port.unwrap_or_else(|| {
                // SAFETY: m is a valid mbuf owned here; `port` is a core-private header field
                // set by the driver at RX (and kept by the domain-crossing copy).
                let dev = unsafe { (*m).port };
                map.get(usize::from(dev)).copied().unwrap_or(u16::MAX)
            });
            self.tap_one(kind, idx, m, p);
        }
    }
}
