//! The DPDK loop: open devices, wait for links, send paced stamped frames, receive, report.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use dpdk::{EalBuilder, MbufArray, Mempool, Port, PortConfig};
use netvm_wire::{FrameSpec, L4Spec};

use crate::{stamp, Pacer, Rate, Report, RxTracker, SizeMix, BURST};

/// Command line of `netvm-pktgen`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "netvm-pktgen",
    version,
    about = "DPDK traffic generator: paced stamped UDP frames; loss, reordering, round-trip latency as JSON"
)]
pub struct Options {
    /// TX device (any DPDK device string). With no --rx-dev the same port also receives.
    #[arg(
        long,
        default_value = "net_memif0,role=client,socket=/tmp/netvm-pktgen.sock,socket-abstract=no"
    )]
    pub dev: String,
    /// RX device, if different from --dev.
    #[arg(long)]
    pub rx_dev: Option<String>,
    /// RX queues to open and poll on the RX device (with --rx-dev). A memif server can send
    /// only on rings its client opened: OVS-DPDK's PMD thread transmits on queue 1, so it
    /// needs 2. testpmd-based peers need 1.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=8))]
    pub rx_queues: u16,
    /// Frame size in bytes (FCS not included) or a mix: `64`, `64,1518`, `64x7,576x4,1518`.
    #[arg(long, default_value = "64")]
    pub size: SizeMix,
    /// Offered rate: frames per second (`10k`, `2.5m`) or `max`.
    #[arg(long, default_value = "max")]
    pub rate: Rate,
    /// With a paced rate: when the generator falls behind (its thread descheduled, the device
    /// refusing frames), send the whole backlog as soon as it can instead of writing off all
    /// but one burst. Every scheduled frame is then offered, late if need be (RFC 2544 trials);
    /// the default keeps a stall from turning into a burst that distorts latency.
    #[arg(long)]
    pub catch_up: bool,
    /// Number of flows (UDP source ports 1024.., then source addresses).
    #[arg(long, default_value_t = 1)]
    pub flows: u32,
    /// Seconds of sending.
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Seconds to keep receiving after sending stops (ends early once all came back).
    #[arg(long, default_value_t = 0.5)]
    pub drain: f64,
    /// Seconds to wait for the links to come up (memif and vhost peers connect lazily).
    #[arg(long, default_value_t = 20.0)]
    pub link_timeout: f64,
    /// CPU to run on (the EAL's only lcore).
    #[arg(long, default_value_t = 0)]
    pub cpu: u32,
    /// Also write the JSON report to this file.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
    /// Run without hugepages (`--no-huge -m 512`) even where they exist.
    #[arg(long)]
    pub no_huge: bool,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum PktgenError {
    /// EAL initialisation.
    #[error("EAL initialisation failed")]
    Eal(#[from] dpdk::EalError),
    /// Pool creation.
    #[error("mbuf pool")]
    Pool(#[from] dpdk::MempoolError),
    /// A port operation.
    #[error("port")]
    Port(#[from] dpdk::PortError),
    /// A link stayed down.
    #[error("link of {dev:?} still down after {secs} s (is the peer running?)")]
    LinkDown {
        /// Device string.
        dev: String,
        /// Seconds waited.
        secs: f64,
    },
    /// A bad option value.
    #[error("{0}")]
    BadOption(String),
}

const POOL_SIZE: u32 = 8191;
const DATA_ROOM: u16 = 2048 + 128;

fn flow_spec(flow: u32) -> FrameSpec {
    let base = u32::from(Ipv4Addr::new(10, 0, 0, 1));
    let span = 64_512u32; // UDP source ports 1024..=65535
    FrameSpec {
        src_ip: Ipv4Addr::from(base + flow / span),
        // flow % span < 64512: fits u16 with 1024 added.
        l4: L4Spec::Udp {
            src_port: 1024 + u16::try_from(flow % span).unwrap_or(0),
            dst_port: 5000,
        },
        ..FrameSpec::default()
    }
}

/// Header templates (the first [`stamp::OFFSET`] bytes) for every (size, flow).
fn templates(mix: &SizeMix, flows: u32) -> Vec<[u8; stamp::OFFSET]> {
    let mut out = Vec::with_capacity(mix.sizes.len() * flows as usize);
    let mut buf = vec![0u8; usize::from(SizeMix::MAX)];
    for &size in &mix.sizes {
        for flow in 0..flows {
            let payload = vec![0u8; usize::from(size) - stamp::OFFSET];
            let spec = flow_spec(flow);
            let mut t = [0u8; stamp::OFFSET];
            if spec.write(&payload, &mut buf).is_ok() {
                t.copy_from_slice(&buf[..stamp::OFFSET]);
            }
            // UDP checksum 0: "no checksum" (RFC 768); the payload bytes are not rewritten.
            t[40] = 0;
            t[41] = 0;
            out.push(t);
        }
    }
    out
}

/// Starts a port, retrying until `timeout`: a memif client fails to start while its server's
/// socket does not exist yet.
fn start_retry(port: &Port, timeout: Duration) -> Result<(), PktgenError> {
    let end = Instant::now() + timeout;
    loop {
        match port.start() {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= end => return Err(e.into()),
            // Waiting for a peer process's socket (control path).
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn wait_link(port: &Port, timeout: Duration) -> Result<(), PktgenError> {
    let end = Instant::now() + timeout;
    loop {
        if port.link()?.up {
            return Ok(());
        }
        if Instant::now() >= end {
            return Err(PktgenError::LinkDown {
                dev: port.devargs().to_owned(),
                secs: timeout.as_secs_f64(),
            });
        }
        // Polling a link state (control path, not a synchronisation of our own threads).
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs the generator and returns its report.
pub fn run(opts: &Options) -> Result<Report, PktgenError> {
    let secs = |what: &str, s: f64| {
        Duration::try_from_secs_f64(s).map_err(|e| PktgenError::BadOption(format!("{what}: {e}")))
    };
    let duration = secs("--duration", opts.duration)?;
    let drain = secs("--drain", opts.drain)?;
    let link_timeout = secs("--link-timeout", opts.link_timeout)?;
    if opts.flows == 0 || opts.flows > 1 << 20 {
        return Err(PktgenError::BadOption("--flows must be 1..=1048576".into()));
    }

    let builder = EalBuilder::new("netvm-pktgen").lcores(&opts.cpu.to_string());
    let (builder, no_huge) = if opts.no_huge {
        (builder.no_huge(512), true)
    } else {
        builder.huge_or_fallback(512)
    };
    let eal = builder.init()?;
    let hz = eal.tsc_hz();
    let pool = Mempool::new(
        &eal,
        &format!("pktgen{}", std::process::id()),
        POOL_SIZE,
        256,
        DATA_ROOM,
        -1,
    )?;
    let cfg = PortConfig::default();
    let mut tx = Port::open(&eal, &opts.dev)?;
    tx.configure(&cfg, &[&pool])?;
    let rx_other = match &opts.rx_dev {
        Some(d) if d != &opts.dev => {
            let mut p = Port::open(&eal, d)?;
            let pools: Vec<&Mempool> = (0..opts.rx_queues).map(|_| &pool).collect();
            let rx_cfg = PortConfig {
                rx_queues: opts.rx_queues,
                ..cfg.clone()
            };
            p.configure(&rx_cfg, &pools)?;
            Some(p)
        }
        _ => None,
    };
    start_retry(&tx, link_timeout)?;
    if let Some(p) = &rx_other {
        start_retry(p, link_timeout)?;
    }
    wait_link(&tx, link_timeout)?;
    if let Some(p) = &rx_other {
        wait_link(p, link_timeout)?;
    }
    let rx = rx_other.as_ref().unwrap_or(&tx);

    let tpl = templates(&opts.size, opts.flows);
    let lens: Vec<u16> = opts.size.sizes.clone();
    let flows = u64::from(opts.flows);
    let mut tracker = RxTracker::new(opts.flows, hz);
    let mut txq: MbufArray<BURST> = MbufArray::new();
    let mut fresh: MbufArray<BURST> = MbufArray::new();
    let mut rxa: MbufArray<BURST> = MbufArray::new();
    let mut stash: MbufArray<BURST> = MbufArray::new();

    let rx_queues = if rx_other.is_some() {
        opts.rx_queues
    } else {
        1
    };
    let mut rx_poll = |tracker: &mut RxTracker| {
        let mut got = 0;
        for q in 0..rx_queues {
            got += rx.rx_burst(q, &mut rxa);
            if rxa.free() == 0 {
                break;
            }
        }
        if got == 0 {
            return;
        }
        let now = dpdk::rdtsc();
        // pop() takes from the back: move to the stash and back to inspect in arrival order.
        while let Some(m) = rxa.pop() {
            let _ = stash.push(m);
        }
        while let Some(m) = stash.pop() {
            tracker.on_frame(m.data(), now);
            let _ = rxa.push(m);
        }
        rxa.clear();
    };

    let dur_cycles =
        u64::try_from(u128::from(hz) * duration.as_nanos() / 1_000_000_000).unwrap_or(u64::MAX);
    let start = dpdk::rdtsc();
    let end = start.saturating_add(dur_cycles);
    let mut pacer = match opts.rate {
        Rate::Pps(r) if opts.catch_up => Some(Pacer::new(start, r, hz).catching_up()),
        Rate::Pps(r) => Some(Pacer::new(start, r, hz)),
        Rate::Max => None,
    };
    let mut seq: u64 = 0;
    let mut sent: u64 = 0;
    let mut now = start;
    while now < end {
        let room = txq.free();
        let want = match &mut pacer {
            Some(p) => p.due(now, room),
            None => room,
        };
        if want > 0 && pool.alloc_bulk(&mut fresh, want) {
            while let Some(mut m) = fresh.pop() {
                let flow = seq % flows;
                let si = opts.size.index_of(seq, opts.flows);
                let len = lens[si];
                // flow < flows <= 2^20 fits usize.
                let t = &tpl[si * opts.flows as usize + usize::try_from(flow).unwrap_or(0)];
                if m.set_data(m.data_off(), len) {
                    let d = m.data_mut();
                    d[..stamp::OFFSET].copy_from_slice(t);
                    stamp::write(d, seq, dpdk::rdtsc());
                    seq += 1;
                    let _ = txq.push(m);
                }
            }
        }
        if !txq.is_empty() {
            sent += tx.tx_burst(0, &mut txq) as u64;
        }
        rx_poll(&mut tracker);
        now = dpdk::rdtsc();
    }
    let tx_end = dpdk::rdtsc();
    let unsent = txq.len() as u64;
    txq.clear();
    let drain_end = Instant::now() + drain;
    while tracker.received < sent && Instant::now() < drain_end {
        rx_poll(&mut tracker);
    }

    let dur_s = tx_end.saturating_sub(start) as f64 / hz as f64;
    let received = tracker.received;
    let lost = sent.saturating_sub(received);
    let report = Report {
        tx_dev: opts.dev.clone(),
        rx_dev: opts.rx_dev.clone().unwrap_or_else(|| opts.dev.clone()),
        mean_size: opts.size.mean(),
        sizes: opts.size.clone(),
        flows: opts.flows,
        rate_pps: match opts.rate {
            Rate::Pps(r) => Some(r),
            Rate::Max => None,
        },
        duration_s: dur_s,
        offered: pacer.as_ref().map_or(sent + unsent, Pacer::scheduled),
        catch_up: opts.catch_up && pacer.is_some(),
        sent,
        received,
        lost,
        loss_ratio: if sent == 0 {
            0.0
        } else {
            lost as f64 / sent as f64
        },
        reordered: tracker.reordered,
        foreign: tracker.foreign,
        pacing_skipped: pacer.map_or(0, |p| p.skipped),
        unsent,
        tx_pps: sent as f64 / dur_s.max(1e-9),
        rx_pps: received as f64 / dur_s.max(1e-9),
        rx_mbps: tracker.bytes as f64 * 8.0 / dur_s.max(1e-9) / 1e6,
        latency: tracker.latency_summary(),
        tsc_hz: hz,
        no_huge,
    };
    drop(rx_other);
    drop(tx);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_are_valid_headers_per_size_and_flow() {
        let mix: SizeMix = "64,1518".parse().unwrap();
        let t = templates(&mix, 3);
        assert_eq!(t.len(), 6);
        // IPv4 total length: size - 14.
        assert_eq!(u16::from_be_bytes([t[0][16], t[0][17]]), 50);
        assert_eq!(u16::from_be_bytes([t[3][16], t[3][17]]), 1504);
        // UDP source port per flow; checksum zeroed.
        assert_eq!(u16::from_be_bytes([t[1][34], t[1][35]]), 1025);
        assert_eq!(&t[2][40..42], &[0, 0]);
        assert_eq!(flow_spec(64_512).src_ip, Ipv4Addr::new(10, 0, 0, 2));
    }
}
