//! l2fwd: rewrites Ethernet addresses and passes every frame on.
//!
//! Sets the destination MAC to `--dst-mac` and, if given, the source MAC to `--src-mac`, then
//! returns NEXT (continue the chain) or, with `--out-port`, OUT(port). Frames shorter than an
//! Ethernet header are dropped and counted.

use netlib_guest::{NfOptions, NfStats, Packet, PacketHandler, Verdict};
use netvm_wire::MacAddr;

use crate::NfsError;

/// Command line of `l2fwd`.
#[derive(Clone, Debug, clap::Parser)]
#[command(
    name = "l2fwd",
    version,
    about = "netvm NF: rewrite MAC addresses, forward"
)]
pub struct Args {
    /// Region and NF name.
    #[command(flatten)]
    pub nf: NfOptions,
    /// Destination MAC to write into every frame (aa:bb:cc:dd:ee:ff).
    #[arg(long, value_name = "MAC")]
    pub dst_mac: MacAddr,
    /// Source MAC to write (default: leave it).
    #[arg(long, value_name = "MAC")]
    pub src_mac: Option<MacAddr>,
    /// Send frames out of this port (verdict OUT) instead of to the next service (NEXT).
    #[arg(long, value_name = "PORT")]
    pub out_port: Option<u16>,
}

/// The per-packet state of l2fwd.
#[derive(Clone, Debug)]
pub struct L2fwd {
    dst: MacAddr,
    src: Option<MacAddr>,
    verdict: Verdict,
    /// Frames dropped for being shorter than 14 bytes.
    pub short: u64,
}

impl L2fwd {
    /// Rewrites to `dst` (and `src`), verdict OUT(`out_port`) or NEXT.
    #[must_use]
    pub fn new(dst: MacAddr, src: Option<MacAddr>, out_port: Option<u16>) -> Self {
        Self {
            dst,
            src,
            verdict: out_port.map_or(Verdict::Next, Verdict::Out),
            short: 0,
        }
    }

    /// Rewrites `frame` in place and returns its verdict.
    #[inline]
    pub fn process(&mut self, frame: &mut [u8]) -> Verdict {
        let Some(hdr) = frame.get_mut(..14) else {
            self.short += 1;
            return Verdict::Drop;
        };
        hdr[..6].copy_from_slice(&self.dst.0);
        if let Some(src) = self.src {
            hdr[6..12].copy_from_slice(&src.0);
        }
        self.verdict
    }
}

impl PacketHandler for L2fwd {
    fn process(&mut self, pkt: &mut Packet<'_>) -> Verdict {
        L2fwd::process(self, pkt.data_mut())
    }
}

/// Runs l2fwd until SIGINT/SIGTERM and prints its summary.
pub fn main(args: Args) -> Result<(), NfsError> {
    let mut h = L2fwd::new(args.dst_mac, args.src_mac, args.out_port);
    let stats: NfStats = crate::run_nf("l2fwd", &args.nf, &mut h)?;
    println!("{}", crate::summary_line("l2fwd", &stats));
    println!("l2fwd: short frames dropped {}", h.short);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use netvm_wire::FrameSpec;

    const A: MacAddr = MacAddr([0x02, 0xaa, 0, 0, 0, 1]);
    const B: MacAddr = MacAddr([0x02, 0xbb, 0, 0, 0, 2]);

    #[test]
    fn rewrites_dst_and_optionally_src() {
        let orig = FrameSpec::default().build(b"hello");
        let mut f = orig.clone();
        let mut nf = L2fwd::new(A, None, None);
        assert_eq!(nf.process(&mut f), Verdict::Next);
        assert_eq!(&f[..6], &A.0);
        assert_eq!(&f[6..], &orig[6..]);

        let mut f = orig.clone();
        let mut nf = L2fwd::new(A, Some(B), Some(3));
        assert_eq!(nf.process(&mut f), Verdict::Out(3));
        assert_eq!(&f[..12], &[A.0, B.0].concat()[..]);
        assert_eq!(&f[12..], &orig[12..]);
    }

    #[test]
    fn short_frames_are_dropped() {
        let mut nf = L2fwd::new(A, None, None);
        let mut f = [0u8; 13];
        assert_eq!(nf.process(&mut f), Verdict::Drop);
        assert_eq!(f, [0u8; 13]);
        assert_eq!(nf.short, 1);
    }
}
