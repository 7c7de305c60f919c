//! `gen-pcap`: the demo's traffic, made with netvm-wire's deterministic generator
//! ([`netvm_wire::generate_mixed_flows`]): flow `f` goes from 10.0.0.1+f to 10.1.0.1+f, UDP for
//! even `f` and TCP for odd, source port 1024+f, destination port 10000+f, TTL 64. The demo's
//! firewall rules deny some of these flows by port and by source subnet.

use std::path::Path;
use std::time::Duration;

use netvm_wire::{generate_mixed_flows, MixedFlows, PcapWriter};

use crate::error::{io, ManagerError};

/// Writes `flows` × `per_flow` frames to `out` (atomically: a temp file renamed into place, so
/// a reader never sees half a file). Returns the number of frames.
pub fn gen_pcap(out: &Path, flows: u32, per_flow: u32) -> Result<usize, ManagerError> {
    let frames = generate_mixed_flows(&MixedFlows {
        flows,
        packets_per_flow: per_flow,
        ..MixedFlows::default()
    });
    let name = out
        .file_name()
        .map_or("out.pcap".into(), |n| n.to_string_lossy().into_owned());
    let tmp = out.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let perr = |source| ManagerError::Pcap {
        path: out.to_path_buf(),
        source,
    };
    let res = (|| {
        let mut w = PcapWriter::create(&tmp).map_err(perr)?;
        for (i, p) in frames.iter().enumerate() {
            w.write_packet(Duration::from_micros(i as u64), &p.frame)
                .map_err(perr)?;
        }
        w.finish().map_err(perr)?;
        std::fs::rename(&tmp, out).map_err(io(format!("writing {}", out.display())))
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res.map(|()| frames.len())
}
