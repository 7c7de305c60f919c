//! Ethernet ports: any DPDK device string, probed at runtime.

use std::ffi::{CStr, CString};
use std::mem::MaybeUninit;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::{sys, Eal, MbufArray, Mempool};

/// Errors from port operations. Each names the device and carries DPDK's code and message.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// The device string is empty or contains NUL.
    #[error("device string {devargs:?} is invalid")]
    BadDevargs {
        /// The string given.
        devargs: String,
    },
    /// `rte_dev_probe` rejected the device string.
    #[error("DPDK could not probe device {devargs:?}: {message} (errno {errno})")]
    Probe {
        /// The string given.
        devargs: String,
        /// Negative return of rte_dev_probe, as positive errno.
        errno: i32,
        /// DPDK's message.
        message: String,
    },
    /// Probing succeeded but no ethdev port carries the name.
    #[error("device {name:?} was probed but is not an ethernet port")]
    NotEthernet {
        /// Device name.
        name: String,
    },
    /// A configuration step failed.
    #[error("port {name} ({port}): {step} failed: {message} (errno {errno})")]
    Op {
        /// Device name.
        name: String,
        /// Port id.
        port: u16,
        /// Which call failed.
        step: &'static str,
        /// Errno.
        errno: i32,
        /// DPDK's message.
        message: String,
    },
    /// Asked for more queues than the device has.
    #[error("port {name}: {what} queues requested {requested}, device maximum {max}")]
    TooManyQueues {
        /// Device name.
        name: String,
        /// "rx" or "tx".
        what: &'static str,
        /// Requested.
        requested: u16,
        /// Device maximum.
        max: u16,
    },
    /// The number of rx pools does not match the rx queue count.
    #[error("port {name}: {pools} mempools given for {queues} rx queues")]
    PoolCount {
        /// Device name.
        name: String,
        /// Pools given.
        pools: usize,
        /// Queues configured.
        queues: u16,
    },
}

/// Queue and descriptor configuration.
#[derive(Debug, Clone)]
pub struct PortConfig {
    /// RX queues.
    pub rx_queues: u16,
    /// TX queues.
    pub tx_queues: u16,
    /// RX descriptors per queue (adjusted to the device's limits).
    pub rx_desc: u16,
    /// TX descriptors per queue (adjusted to the device's limits).
    pub tx_desc: u16,
    /// Enable promiscuous mode (ignored where unsupported).
    pub promiscuous: bool,
    /// Largest frame to receive whole, Ethernet header included (without FCS): the MTU is set
    /// to this minus 14 (clamped to what the device offers; [`Port::mtu`] says what was set).
    /// `None`: the driver's default (1500).
    pub max_frame: Option<u32>,
    /// With more than one RX queue: spread flows over the queues by RSS with a symmetric
    /// Toeplitz key (both directions of a flow land on one queue) where the device offers RSS
    /// on IP. [`Port::rss`] says whether it was enabled.
    pub rss: bool,
}

/// DPDK's RSS hash-function bits (`RTE_ETH_RSS_*`, function-like macros bindgen cannot read).
pub mod rss_hf {
    /// IPv4, fragmented IPv4, other IPv4, IPv6, fragmented IPv6, other IPv6, IPv6 with
    /// extension headers (`RTE_ETH_RSS_IP`).
    pub const IP: u64 =
        (1 << 2) | (1 << 3) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 13) | (1 << 15);
    /// TCP over IPv4/IPv6 (`RTE_ETH_RSS_TCP`).
    pub const TCP: u64 = (1 << 4) | (1 << 10) | (1 << 16);
    /// UDP over IPv4/IPv6 (`RTE_ETH_RSS_UDP`).
    pub const UDP: u64 = (1 << 5) | (1 << 11) | (1 << 17);
}

/// The symmetric Toeplitz key: 0x6d5a repeated. With it the hash of (src, dst, sport, dport)
/// equals that of (dst, src, dport, sport), so both directions of a flow meet on one queue
/// (Woo and Park, "Scalable TCP Session Monitoring with Symmetric Receive-side Scaling").
pub const SYMMETRIC_RSS_KEY: [u8; 52] = {
    let mut k = [0u8; 52];
    let mut i = 0;
    while i < 52 {
        k[i] = if i % 2 == 0 { 0x6d } else { 0x5a };
        i += 1;
    }
    k
};

impl Default for PortConfig {
    fn default() -> Self {
        Self {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            promiscuous: true,
            max_frame: None,
            rss: false,
        }
    }
}

/// Counters from `rte_eth_stats_get`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets transmitted.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes transmitted.
    pub obytes: u64,
    /// RX packets dropped by the hardware (queue full).
    pub imissed: u64,
    /// RX errors.
    pub ierrors: u64,
    /// TX errors.
    pub oerrors: u64,
    /// RX mbuf allocation failures.
    pub rx_nombuf: u64,
}

/// Link state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkInfo {
    /// Link up.
    pub up: bool,
    /// Speed in Mbit/s.
    pub speed_mbps: u32,
    /// Full duplex.
    pub full_duplex: bool,
}

/// Static device facts.
#[derive(Debug, Clone)]
pub struct PortInfo {
    /// Driver name.
    pub driver: String,
    /// Maximum RX queues.
    pub max_rx_queues: u16,
    /// Maximum TX queues.
    pub max_tx_queues: u16,
    /// NUMA socket (-1 unknown).
    pub socket: i32,
    /// Largest MTU the device accepts.
    pub max_mtu: u16,
    /// Largest frame the device receives (Ethernet header and FCS included).
    pub max_rx_pktlen: u32,
    /// RSS hash functions the device offers (`RTE_ETH_RSS_*` bits; 0: no RSS).
    pub flow_type_rss_offloads: u64,
    /// RSS key length the device takes (0: unspecified, 40 assumed).
    pub hash_key_size: u8,
}

/// An ethernet port. Stopped and closed on drop.
#[derive(Debug)]
pub struct Port {
    id: u16,
    name: String,
    devargs: String,
    rx_queues: u16,
    tx_queues: u16,
    rss_hf: u64,
    started: AtomicBool,
    _eal: Eal,
}

fn errmsg(ret: i32) -> (i32, String) {
    let e = if ret < 0 { -ret } else { crate::rte_errno() };
    (e, crate::strerror(e))
}

impl Port {
    /// Probes `devargs` (a vdev like `net_null0,size=64` or `net_pcap0,rx_pcap=in.pcap`, or a PCI
    /// address allowed at EAL init) and returns its port. A device that is already probed (e.g.
    /// given with `--vdev` at init) is found by name.
    pub fn open(eal: &Eal, devargs: &str) -> Result<Self, PortError> {
        let name = devargs.split(',').next().unwrap_or("").trim().to_owned();
        let bad = || PortError::BadDevargs {
            devargs: devargs.into(),
        };
        if name.is_empty() {
            return Err(bad());
        }
        let cdev = CString::new(devargs).map_err(|_| bad())?;
        let cname = CString::new(name.as_str()).map_err(|_| bad())?;
        let mut id = 0u16;
        // SAFETY: cname is a valid C string; id is a valid out pointer.
        let found = unsafe { sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) } == 0;
        if !found {
            // SAFETY: cdev is a valid C string; the EAL is initialised (eal exists).
            let ret = unsafe { sys::rte_dev_probe(cdev.as_ptr()) };
            if ret < 0 && ret != -libc::EEXIST {
                let (errno, message) = errmsg(ret);
                return Err(PortError::Probe {
                    devargs: devargs.into(),
                    errno,
                    message,
                });
            }
            // SAFETY: as above.
            if unsafe { sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) } != 0 {
                return Err(PortError::NotEthernet { name });
            }
        }
        Ok(Self {
            id,
            name,
            devargs: devargs.into(),
            rx_queues: 0,
            tx_queues: 0,
            rss_hf: 0,
            started: AtomicBool::new(false),
            _eal: eal.clone(),
        })
    }

    fn op(&self, step: &'static str, ret: i32) -> Result<(), PortError> {
        if ret < 0 {
            let (errno, message) = errmsg(ret);
            return Err(PortError::Op {
                name: self.name.clone(),
                port: self.id,
                step,
                errno,
                message,
            });
        }
        Ok(())
    }

    /// DPDK port id.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// Device name (the devargs up to the first comma).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The device string this port was opened with.
    pub fn devargs(&self) -> &str {
        &self.devargs
    }

    /// Configured RX queue count.
    pub fn rx_queues(&self) -> u16 {
        self.rx_queues
    }

    /// Configured TX queue count.
    pub fn tx_queues(&self) -> u16 {
        self.tx_queues
    }

    /// The RSS hash functions enabled at [`Port::configure`] (0: RSS off — one RX queue, no
    /// RSS asked, or the device offers none on IP).
    pub fn rss(&self) -> u64 {
        self.rss_hf
    }

    /// `rte_eth_dev_info_get` and the driver's name.
    fn dev_info(&self) -> Result<(sys::rte_eth_dev_info, String), PortError> {
        let mut info = MaybeUninit::<sys::rte_eth_dev_info>::zeroed();
        // SAFETY: info is a valid out pointer to a zeroed struct of the right type.
        let ret = unsafe { sys::rte_eth_dev_info_get(self.id, info.as_mut_ptr()) };
        self.op("rte_eth_dev_info_get", ret)?;
        // SAFETY: initialised by the successful call above (zeroed before).
        let info = unsafe { info.assume_init() };
        let driver = if info.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: driver_name is a static NUL-terminated string owned by the driver.
            unsafe { CStr::from_ptr(info.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        Ok((info, driver))
    }

    /// The port's generic `rte_device` (for bus-level calls such as DMA mapping) and its
    /// driver name. Valid until the port is closed.
    pub(crate) fn rte_device(&self) -> Result<(NonNull<sys::rte_device>, String), PortError> {
        let (info, driver) = self.dev_info()?;
        let dev = NonNull::new(info.device).ok_or_else(|| PortError::Op {
            name: self.name.clone(),
            port: self.id,
            step: "rte_eth_dev_info_get (no rte_device)",
            errno: libc::ENODEV,
            message: crate::strerror(libc::ENODEV),
        })?;
        Ok((dev, driver))
    }

    /// Driver facts.
    pub fn info(&self) -> Result<PortInfo, PortError> {
        let (info, driver) = self.dev_info()?;
        // SAFETY: plain query on a valid port id.
        let socket = unsafe { sys::rte_eth_dev_socket_id(self.id) };
        Ok(PortInfo {
            driver,
            max_rx_queues: info.max_rx_queues,
            max_tx_queues: info.max_tx_queues,
            socket,
            max_mtu: info.max_mtu,
            max_rx_pktlen: info.max_rx_pktlen,
            flow_type_rss_offloads: info.flow_type_rss_offloads,
            hash_key_size: info.hash_key_size,
        })
    }

    /// The MTU the device runs with now.
    pub fn mtu(&self) -> Result<u16, PortError> {
        let mut mtu = 0u16;
        // SAFETY: valid port id and out pointer.
        let ret = unsafe { sys::rte_eth_dev_get_mtu(self.id, &mut mtu) };
        self.op("rte_eth_dev_get_mtu", ret)?;
        Ok(mtu)
    }

    /// Configures queues; RX queue `q` takes its mbufs from `rx_pools[q]` (the pool of the
    /// port's trust domain, so packets land in that domain's memory).
    pub fn configure(&mut self, cfg: &PortConfig, rx_pools: &[&Mempool]) -> Result<(), PortError> {
        let info = self.info()?;
        if cfg.rx_queues > info.max_rx_queues {
            return Err(PortError::TooManyQueues {
                name: self.name.clone(),
                what: "rx",
                requested: cfg.rx_queues,
                max: info.max_rx_queues,
            });
        }
        if cfg.tx_queues > info.max_tx_queues {
            return Err(PortError::TooManyQueues {
                name: self.name.clone(),
                what: "tx",
                requested: cfg.tx_queues,
                max: info.max_tx_queues,
            });
        }
        if rx_pools.len() != usize::from(cfg.rx_queues) {
            return Err(PortError::PoolCount {
                name: self.name.clone(),
                pools: rx_pools.len(),
                queues: cfg.rx_queues,
            });
        }
        let mut conf = sys::rte_eth_conf::default();
        if let Some(frame) = cfg.max_frame {
            // DPDK's frame overhead for an MTU: Ethernet header (14) + FCS (4) + 2 VLAN tags (8).
            const OVERHEAD: u32 = 26;
            let want = frame.saturating_sub(14);
            let by_len = info.max_rx_pktlen.saturating_sub(OVERHEAD);
            conf.rxmode.mtu = want.min(u32::from(info.max_mtu)).min(by_len).max(68);
        }
        let mut key = SYMMETRIC_RSS_KEY;
        let hf = info.flow_type_rss_offloads & (rss_hf::IP | rss_hf::TCP | rss_hf::UDP);
        let rss_on = cfg.rss && cfg.rx_queues > 1 && hf & rss_hf::IP != 0;
        if rss_on {
            conf.rxmode.mq_mode = sys::rte_eth_rx_mq_mode_RTE_ETH_MQ_RX_RSS;
            let klen = if info.hash_key_size == 0 {
                40
            } else {
                info.hash_key_size.min(52)
            };
            conf.rx_adv_conf.rss_conf.rss_key = key.as_mut_ptr();
            conf.rx_adv_conf.rss_conf.rss_key_len = klen;
            conf.rx_adv_conf.rss_conf.rss_hf = hf;
        }
        // SAFETY: valid port id; conf is a valid configuration; the RSS key it may point to
        // lives on this stack frame for the call (the driver copies it).
        let ret =
            unsafe { sys::rte_eth_dev_configure(self.id, cfg.rx_queues, cfg.tx_queues, &conf) };
        self.op("rte_eth_dev_configure", ret)?;
        let (mut nrx, mut ntx) = (cfg.rx_desc, cfg.tx_desc);
        // SAFETY: valid port id and out pointers.
        let ret = unsafe { sys::rte_eth_dev_adjust_nb_rx_tx_desc(self.id, &mut nrx, &mut ntx) };
        self.op("rte_eth_dev_adjust_nb_rx_tx_desc", ret)?;
        let socket = u32::try_from(info.socket).unwrap_or(u32::MAX); // SOCKET_ID_ANY as unsigned
        for (q, pool) in (0..cfg.rx_queues).zip(rx_pools) {
            // SAFETY: valid port and queue id; NULL rxconf means driver defaults; the pool
            // outlives the port's use of it (the caller keeps it alive until the port drops).
            let ret = unsafe {
                sys::rte_eth_rx_queue_setup(
                    self.id,
                    q,
                    nrx,
                    socket,
                    std::ptr::null(),
                    pool.as_ptr(),
                )
            };
            self.op("rte_eth_rx_queue_setup", ret)?;
        }
        for q in 0..cfg.tx_queues {
            // SAFETY: valid port and queue id; NULL txconf means driver defaults.
            let ret =
                unsafe { sys::rte_eth_tx_queue_setup(self.id, q, ntx, socket, std::ptr::null()) };
            self.op("rte_eth_tx_queue_setup", ret)?;
        }
        if cfg.promiscuous {
            // SAFETY: valid port id. Unsupported promiscuous mode is not an error for us.
            let _ = unsafe { sys::rte_eth_promiscuous_enable(self.id) };
        }
        self.rx_queues = cfg.rx_queues;
        self.tx_queues = cfg.tx_queues;
        self.rss_hf = if rss_on { hf } else { 0 };
        Ok(())
    }

    /// Starts the port (after [`Port::configure`]).
    pub fn start(&self) -> Result<(), PortError> {
        // SAFETY: valid, configured port id.
        let ret = unsafe { sys::rte_eth_dev_start(self.id) };
        self.op("rte_eth_dev_start", ret)?;
        self.started.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Stops the port. Callers stop polling its queues first.
    pub fn stop(&self) -> Result<(), PortError> {
        if self.started.swap(false, Ordering::SeqCst) {
            // SAFETY: valid port id.
            let ret = unsafe { sys::rte_eth_dev_stop(self.id) };
            self.op("rte_eth_dev_stop", ret)?;
        }
        Ok(())
    }

    /// Receives up to the array's free room from `queue`; returns how many arrived.
    /// Each queue must be polled by one thread at a time.
    #[inline]
    pub fn rx_burst<const N: usize>(&self, queue: u16, arr: &mut MbufArray<N>) -> usize {
        let old = arr.len();
        let spare = arr.spare_mut();
        let want = u16::try_from(spare.len()).unwrap_or(u16::MAX);
        // SAFETY: valid port/queue; spare has room for `want` pointers.
        let n = unsafe { sys::netvm_rte_eth_rx_burst(self.id, queue, spare.as_mut_ptr(), want) };
        // SAFETY: DPDK filled n entries with mbufs now owned by the array.
        unsafe { arr.set_len(old + usize::from(n)) };
        usize::from(n)
    }

    /// Raw receive for the hot path: fills `out` with owned mbuf pointers.
    ///
    /// # Safety
    /// The caller owns the returned mbufs and must free or transmit each exactly once; `queue`
    /// must be polled by one thread at a time.
    #[inline]
    pub unsafe fn rx_burst_raw(&self, queue: u16, out: &mut [*mut sys::rte_mbuf]) -> usize {
        let want = u16::try_from(out.len()).unwrap_or(u16::MAX);
        // SAFETY: valid port/queue; out has room for `want` pointers (caller's contract).
        usize::from(unsafe { sys::netvm_rte_eth_rx_burst(self.id, queue, out.as_mut_ptr(), want) })
    }

    /// Transmits from the front of `arr`; sent mbufs leave the array, unsent ones stay.
    #[inline]
    pub fn tx_burst<const N: usize>(&self, queue: u16, arr: &mut MbufArray<N>) -> usize {
        let len = u16::try_from(arr.len()).unwrap_or(u16::MAX);
        if len == 0 {
            return 0;
        }
        let ptrs = arr.as_ptrs().as_ptr().cast_mut();
        // SAFETY: valid port/queue; ptrs holds len owned mbufs; the driver takes ownership of
        // the first n, which consume_front then forgets.
        let n = unsafe { sys::netvm_rte_eth_tx_burst(self.id, queue, ptrs, len) };
        arr.consume_front(usize::from(n));
        usize::from(n)
    }

    /// Raw transmit for the hot path; the driver takes ownership of the first `n` returned.
    ///
    /// # Safety
    /// `pkts` holds owned valid mbufs; after the call the caller owns only `pkts[n..]`.
    #[inline]
    pub unsafe fn tx_burst_raw(&self, queue: u16, pkts: &mut [*mut sys::rte_mbuf]) -> usize {
        let len = u16::try_from(pkts.len()).unwrap_or(u16::MAX);
        // SAFETY: caller's contract.
        usize::from(unsafe { sys::netvm_rte_eth_tx_burst(self.id, queue, pkts.as_mut_ptr(), len) })
    }

    /// Counters.
    pub fn stats(&self) -> Result<PortStats, PortError> {
        let mut s = sys::rte_eth_stats::default();
        // SAFETY: valid port id and out pointer.
        let ret = unsafe { sys::rte_eth_stats_get(self.id, &mut s) };
        self.op("rte_eth_stats_get", ret)?;
        Ok(PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }

    /// Resets the counters.
    pub fn reset_stats(&self) -> Result<(), PortError> {
        // SAFETY: valid port id.
        let ret = unsafe { sys::rte_eth_stats_reset(self.id) };
        self.op("rte_eth_stats_reset", ret)
    }

    /// MAC address.
    pub fn mac(&self) -> Result<[u8; 6], PortError> {
        let mut a = sys::rte_ether_addr::default();
        // SAFETY: valid port id and out pointer.
        let ret = unsafe { sys::rte_eth_macaddr_get(self.id, &mut a) };
        self.op("rte_eth_macaddr_get", ret)?;
        Ok(a.addr_bytes)
    }

    /// Link state without waiting.
    pub fn link(&self) -> Result<LinkInfo, PortError> {
        let mut l = sys::rte_eth_link::default();
        // SAFETY: valid port id and out pointer.
        let ret = unsafe { sys::rte_eth_link_get_nowait(self.id, &mut l) };
        self.op("rte_eth_link_get_nowait", ret)?;
        Ok(LinkInfo {
            up: l.link_status() != 0,
            speed_mbps: l.link_speed,
            full_duplex: l.link_duplex() != 0,
        })
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        let _ = self.stop();
        // SAFETY: valid port id; closing releases the ethdev. Mbufs still held by the driver
        // are returned to their pools.
        unsafe {
            sys::rte_eth_dev_close(self.id);
        }
        // A PCI address has ':' in it (0000:01:00.0); everything else is a vdev.
        let bus = if self.name.contains(':') {
            c"pci"
        } else {
            c"vdev"
        };
        if let Ok(c) = CString::new(self.name.as_str()) {
            // SAFETY: valid C strings; detaching lets the same name be probed again.
            unsafe {
                sys::rte_eal_hotplug_remove(bus.as_ptr(), c.as_ptr());
            }
        }
    }
}
