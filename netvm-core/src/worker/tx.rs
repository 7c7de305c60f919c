//! TX batching: per-port staging arrays, one `rte_eth_tx_burst` per port per round.

use dpdk::sys::rte_mbuf;

use super::{State, BURST};
use crate::capture::TapKind;
use crate::stats::DropReason;
use crate::tables::Tables;
use crate::Shared;

impl State {
    #[inline]
    pub(super) fn stage_tx(&mut self, sh: &Shared, m: *mut rte_mbuf, port: u16) {
        if self.txq[usize::from(port)].n == 2 * BURST {
            self.flush_tx(sh, port);
        }
        let q = &mut self.txq[usize::from(port)];
        q.pkts[q.n] = m;
        q.n += 1;
    }

    pub(super) fn flush_tx(&mut self, sh: &Shared, port: u16) {
        let n = self.txq[usize::from(port)].n;
        if n == 0 {
            return;
        }
        let Some(queue) = sh.ports[usize::from(port)].txq_of_worker(self.id) else {
            // The port has no TX queue for this worker: its owner transmits these.
            self.txq[usize::from(port)].n = 0;
            let pkts = self.txq[usize::from(port)].pkts;
            self.hand_tx(sh, port, &pkts[..n]);
            return;
        };
        if self.tap.is_some() {
            let pkts = self.txq[usize::from(port)].pkts;
            self.tap_burst(TapKind::PortTx, port, &pkts[..n], None);
        }
        let q = &mut self.txq[usize::from(port)];
        q.n = 0;
        let mut bytes = 0u64;
        for &m in &q.pkts[..n] {
            // SAFETY: staged mbufs are valid and owned here.
            bytes += u64::from(unsafe { (*m).data_len });
        }
        // SAFETY: pkts[..n] are owned valid mbufs; the driver takes the first `sent`; this
        // worker is the only user of its TX queue on this port.
        let sent = unsafe {
            sh.ports[usize::from(port)]
                .port
                .tx_burst_raw(queue, &mut q.pkts[..n])
        };
        let pkts = q.pkts;
        let mut sent_bytes = bytes;
        // A virtio NF's guest queue that takes fewer is that NF's full ring (`ring_full`).
        let why = match sh.ports[usize::from(port)].virtio {
            Some(crate::virtio::VirtioPort::ToGuest(nf)) => {
                self.c.vio_full[usize::from(nf)] += (n - sent) as u64;
                DropReason::RingFull
            }
            _ => DropReason::TxFull,
        };
        for &m in &pkts[sent..n] {
            // SAFETY: unsent mbufs are still ours.
            sent_bytes -= u64::from(unsafe { (*m).data_len });
            self.free(m, why);
        }
        self.c.port_tx[usize::from(port)] += sent as u64;
        self.c.port_tx_bytes[usize::from(port)] += sent_bytes;
    }

    pub(super) fn flush_all_tx(&mut self, sh: &Shared, _t: &Tables) {
        for p in 0..self.txq.len() {
            self.flush_tx(sh, crate::id16(p));
        }
    }
}
