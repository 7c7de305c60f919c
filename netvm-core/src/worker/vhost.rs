//! The hot path of virtio NFs (unmodified guests behind vhost-user ports; see
//! [`crate::virtio`]): delivering is staging the frame for the NF's to-guest port after
//! recording where its flow is in the chain; frames the guest sends back re-enter the chain
//! at the next position, or are dropped as `virtio_unknown_flow` if the core never delivered
//! their flow to this NF.

use dpdk::sys::rte_mbuf;

use super::rx::packet_hash;
use super::State;
use crate::capture::TapKind;
use crate::stats::{verdict_idx, DropReason};
use crate::tables::Tables;
use crate::virtio::{FlowPos, VirtioRt};
use crate::Shared;

impl State {
    /// Delivers `m` to virtio NF `nf` at chain position `pos`: no domain copy and no quota
    /// (the vhost library copies into guest memory, and the guest holds no buffer of ours);
    /// the frame leaves the core when the to-guest port takes it.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(super) fn deliver_virtio(
        &mut self,
        sh: &Shared,
        m: *mut rte_mbuf,
        nf: u16,
        v: &VirtioRt,
        chain: u16,
        pos: usize,
        in_port: u8,
        hash: u32,
    ) {
        let Ok(pos) = u8::try_from(pos) else {
            self.free(m, DropReason::NfUnavailable);
            return;
        };
        // The key is the hash `rx_virtio` will compute from the frame the guest sends back,
        // so it is computed here the same way: the `hash` routed with may be 0 on the port
        // fast path (no balancing needs it). One private header parse per frame, next to the
        // copy the vhost library makes anyway.
        let _ = hash;
        let key = packet_hash(m);
        v.flows.record(
            key,
            FlowPos {
                chain,
                pos,
                in_port,
            },
        );
        if self.tap.is_some() {
            self.tap_one(TapKind::NfIn, nf, m, u16::from(in_port));
        }
        self.stage_tx(sh, m, v.to_port);
    }

    /// Frames `rx_buf[..n]` a guest sent on its to-guest port `pidx` (a bridge flooding back,
    /// a frame of its own): never frames the core sent it, so never part of a chain — dropped
    /// and counted as made up (`virtio_unknown_flow`, the NF's `unknown_flow`).
    #[cold]
    pub(super) fn rx_virtio_stray(&mut self, n: usize, pidx: u16, nf: u16) {
        let p = usize::from(pidx);
        for i in 0..n {
            let m = self.rx_buf[i];
            // SAFETY: received mbufs are valid and owned here; the header is core-private.
            let (len, pkt_len) = unsafe { ((*m).data_len, (*m).pkt_len) };
            self.c.port_rx[p] += 1;
            self.c.port_rx_bytes[p] += u64::from(pkt_len.max(u32::from(len)));
            self.c.vio_unknown[usize::from(nf)] += 1;
            self.free(m, DropReason::VirtioUnknownFlow);
        }
    }

    /// Frames `rx_buf[..n]` received from virtio NF `nf`'s from-guest port `pidx`.
    pub(super) fn rx_virtio(&mut self, sh: &Shared, t: &Tables, n: usize, pidx: u16, nf: u16) {
        let p = usize::from(pidx);
        let dom = sh.ports[p].domain;
        let Some(v) = sh.nfs[usize::from(nf)].virtio.as_deref() else {
            return;
        };
        for i in 0..n {
            let m = self.rx_buf[i];
            // SAFETY: received mbufs are valid and owned here; the header is core-private.
            let (len, pkt_len, segs) = unsafe { ((*m).data_len, (*m).pkt_len, (*m).nb_segs) };
            self.c.port_rx[p] += 1;
            self.c.port_rx_bytes[p] += u64::from(pkt_len.max(u32::from(len)));
            if segs != 1 {
                self.free(m, DropReason::MultiSegment);
                continue;
            }
            // The guest's bytes are parsed from a private copy, as any frame is.
            let hash = packet_hash(m);
            match v.flows.lookup(hash) {
                Some(fp) => {
                    // The guest sent it back: its verdict is NEXT.
                    self.c.nf_verdicts[usize::from(nf)][verdict_idx::NEXT] += 1;
                    if self.tap.is_some() {
                        self.tap_one(TapKind::NfOut, nf, m, u16::from(fp.in_port));
                    }
                    self.route(
                        sh,
                        t,
                        m,
                        dom,
                        fp.chain,
                        usize::from(fp.pos) + 1,
                        fp.in_port,
                        hash,
                    );
                }
                None => {
                    self.c.vio_unknown[usize::from(nf)] += 1;
                    self.free(m, DropReason::VirtioUnknownFlow);
                }
            }
        }
    }
}
