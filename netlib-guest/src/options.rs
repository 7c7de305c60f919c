//! Command-line and environment options shared by every NF binary.

use std::path::PathBuf;
use std::time::Duration;

use netvm_shm::WaitMode;

use crate::error::NfError;
use crate::nf::{Nf, NfConfig};

/// How an idle NF sleeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum WaitKind {
    /// Sleep on the ring doorbells (futex); the core wakes the NF. Host processes.
    Futex,
    /// Sleep in 1 ms steps and re-check. QEMU guests (a futex does not cross the VM).
    Poll,
}

/// Where the NF's region is and what the NF is called, plus attach tuning. Flatten it into a
/// binary's clap arguments (`#[command(flatten)] nf: NfOptions`).
#[derive(Clone, Debug, PartialEq, Eq, clap::Args)]
pub struct NfOptions {
    /// Region file of the NF's trust domain (/dev/hugepages/netvm-DOMAIN.COREPID.region),
    /// or, in a guest, the ivshmem BAR file (/sys/bus/pci/devices/BDF/resource2). Without
    /// it, in a netvm guest (`netvm.nf=` on the kernel command line), the ivshmem devices are
    /// found in sysfs (`netvm.bar=` and `netvm.ctl=` name them) and their BAR2s used, in
    /// guest mode.
    #[arg(long, env = "NETVM_REGION", value_name = "PATH")]
    pub region: Option<PathBuf>,
    /// The NF's own control region file (its slot and rings) [default: next to --region,
    /// netvm-DOMAIN.COREPID.NF.ctl].
    #[arg(long, env = "NETVM_CONTROL", value_name = "PATH")]
    pub control: Option<PathBuf>,
    /// NF name: the core reserved a slot under this name [default in a guest: `netvm.nf`
    /// from the kernel command line].
    #[arg(long = "nf", env = "NETVM_NF", value_name = "NAME")]
    pub nf: Option<String>,
    /// Run as a QEMU guest NF: poll-sleep when idle (unless --wait says otherwise) and write
    /// pid 0 into the slot (a guest pid means nothing to the host). Implied when the region
    /// is discovered as an ivshmem BAR.
    #[arg(long, env = "NETVM_GUEST")]
    pub guest: bool,
    /// How to sleep when idle [default: futex on the host, poll with --guest].
    #[arg(long, value_enum, env = "NETVM_WAIT")]
    pub wait: Option<WaitKind>,
    /// Keep retrying the first attach for this many seconds (the core may not have reserved
    /// the slot yet).
    #[arg(long, value_name = "SECS", default_value = "0", value_parser = parse_secs)]
    pub attach_wait: Duration,
    /// Empty polls an idle NF spins before it sleeps [default: 256]. Fewer where NFs share a
    /// CPU (the spinning NF keeps the CPU from one with work); more for lower wake-up latency
    /// on a CPU of its own.
    #[arg(long, env = "NETVM_SPIN_POLLS", value_name = "N",
          value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub spin_polls: Option<u32>,
    /// Empty polls, after the spins, with a `sched_yield` between them before the NF sleeps
    /// [default: 0]. Lets NFs that share a CPU hand it to each other without a futex wake-up
    /// from the core; a busy task on the same CPU (a traffic generator) then gets whole time
    /// slices, which costs latency.
    #[arg(long, env = "NETVM_YIELD_POLLS", value_name = "N",
          value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub yield_polls: Option<u32>,
    /// After a core restart, wait this many seconds for the slot to be reserved again.
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = parse_secs)]
    pub reattach_timeout: Duration,
}

/// Standalone parser for programs whose only options are [`NfOptions`].
#[derive(clap::Parser)]
#[command(about = "A netvm network function")]
struct Standalone {
    #[command(flatten)]
    nf: NfOptions,
}

impl NfOptions {
    /// Parses `--region/--nf` (or `NETVM_REGION` / `NETVM_NF`) and the tuning options from the
    /// process arguments and environment; prints usage and exits on error, like clap.
    #[must_use]
    pub fn from_env_and_args() -> Self {
        <Standalone as clap::Parser>::parse().nf
    }

    /// As [`from_env_and_args`](Self::from_env_and_args) over explicit arguments (the first is
    /// the program name), returning clap's error.
    pub fn try_from_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        <Standalone as clap::Parser>::try_parse_from(args).map(|s| s.nf)
    }

    /// The [`NfConfig`] these options describe.
    #[must_use]
    pub fn config(&self) -> NfConfig {
        self.config_for(self.guest)
    }

    fn config_for(&self, guest: bool) -> NfConfig {
        let mut cfg = if guest {
            NfConfig::guest()
        } else {
            NfConfig::host()
        };
        match self.wait {
            Some(WaitKind::Futex) => cfg.wait_mode = WaitMode::Futex,
            Some(WaitKind::Poll) => cfg.wait_mode = NfConfig::guest().wait_mode,
            None => {}
        }
        if let Some(n) = self.spin_polls {
            cfg.poll.spin_polls = n;
        }
        if let Some(n) = self.yield_polls {
            cfg.poll.yield_polls = n;
        }
        cfg.attach_wait = self.attach_wait;
        cfg.reattach_timeout = self.reattach_timeout;
        cfg
    }

    /// Where to attach: (domain region path, control region path, NF name, whether it is a
    /// guest). With `--region`, as given (the control region next to it unless `--control`
    /// says otherwise); without it, the ivshmem BARs found by [`pci::discover`] (guest mode),
    /// named by `--nf` or else `netvm.nf`.
    ///
    /// [`pci::discover`]: crate::pci::discover
    pub fn resolve(&self) -> Result<(PathBuf, PathBuf, String, bool), NfError> {
        let with_control = |r: &PathBuf, n: String| {
            let c = self
                .control
                .clone()
                .unwrap_or_else(|| netvm_shm::control_path(r, &n));
            (r.clone(), c, n)
        };
        match (&self.region, &self.nf) {
            (Some(r), Some(n)) => {
                let (r, c, n) = with_control(r, n.clone());
                Ok((r, c, n, self.guest))
            }
            (None, _) => match crate::pci::discover() {
                Some(found) => {
                    let (name, bar, ctl) = found?;
                    Ok((bar, ctl, self.nf.clone().unwrap_or(name), true))
                }
                None => Err(NfError::NoRegion),
            },
            (Some(r), None) => match crate::pci::kernel_param("nf") {
                Some(n) => {
                    let (r, c, n) = with_control(r, n);
                    Ok((r, c, n, self.guest))
                }
                None => Err(NfError::NoRegion),
            },
        }
    }

    /// Attaches as described (see [`resolve`](Self::resolve)).
    pub fn attach(&self) -> Result<Nf, NfError> {
        let (region, control, name, guest) = self.resolve()?;
        Nf::attach_files(&region, &control, &name, self.config_for(guest))
    }
}

/// Parses a non-negative number of seconds (`1`, `0.5`) into a `Duration`.
pub fn parse_secs(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(v).map_err(|_| format!("{s:?} is not a non-negative duration"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spin_and_yield_polls_tune_the_poll_policy() {
        let o =
            NfOptions::try_from_args(["x", "--spin-polls", "64", "--yield-polls", "8"]).unwrap();
        let c = o.config();
        assert_eq!((c.poll.spin_polls, c.poll.yield_polls), (64, 8));
        let d = NfOptions::try_from_args(["x"]).unwrap().config();
        assert_eq!(d.poll, crate::nf::PollPolicy::default());
        assert_eq!(d.poll.spin_polls, 256);
        assert!(NfOptions::try_from_args(["x", "--spin-polls", "-1"]).is_err());
        assert!(NfOptions::try_from_args(["x", "--spin-polls", "2000000"]).is_err());
        assert!(NfOptions::try_from_args(["x", "--yield-polls", "many"]).is_err());
    }

    #[test]
    fn parses_args() {
        let o = NfOptions::try_from_args(["x", "--region", "/r", "--nf", "fw1", "--wait", "poll"])
            .unwrap();
        assert_eq!(o.region, Some(PathBuf::from("/r")));
        assert_eq!(o.nf.as_deref(), Some("fw1"));
        assert_eq!(
            o.resolve().unwrap(),
            (
                PathBuf::from("/r"),
                PathBuf::from("/r.fw1.ctl"),
                "fw1".to_string(),
                false
            )
        );
        let o2 =
            NfOptions::try_from_args(["x", "--region", "/d/netvm-edge.7.region", "--nf", "fw1"])
                .unwrap();
        assert_eq!(
            o2.resolve().unwrap().1,
            PathBuf::from("/d/netvm-edge.7.fw1.ctl")
        );
        let o3 = NfOptions::try_from_args(["x", "--region=/r", "--control=/c", "--nf=a"]).unwrap();
        assert_eq!(o3.resolve().unwrap().1, PathBuf::from("/c"));
        assert_eq!(o.wait, Some(WaitKind::Poll));
        assert_eq!(o.attach_wait, Duration::ZERO);
        assert_eq!(o.reattach_timeout, Duration::from_secs(60));
        assert!(matches!(o.config().wait_mode, WaitMode::PollSleep { .. }));
        assert!(o.config().write_pid);
        let o = NfOptions::try_from_args(["x", "--region=/r", "--nf=a", "--attach-wait", "1.5"])
            .unwrap();
        assert_eq!(o.attach_wait, Duration::from_millis(1500));
        assert_eq!(o.config().wait_mode, WaitMode::Futex);
        let o = NfOptions::try_from_args(["x", "--region=/r", "--nf=a", "--guest"]).unwrap();
        assert_eq!(o.config(), NfConfig::guest());
        let o = NfOptions::try_from_args(["x", "--region=/r", "--nf=a", "--guest", "--wait=futex"])
            .unwrap();
        assert_eq!(o.config().wait_mode, WaitMode::Futex);
        assert!(!o.config().write_pid);
        // Nothing given, and this host's kernel command line names no netvm NF.
        let o = NfOptions::try_from_args(["x"]).unwrap();
        assert_eq!(o.region, None);
        if crate::pci::kernel_param("nf").is_none() {
            assert!(matches!(o.resolve(), Err(NfError::NoRegion)));
        }
    }

    #[test]
    fn secs() {
        assert_eq!(parse_secs("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_secs("0.25"), Ok(Duration::from_millis(250)));
        assert!(parse_secs("-1").is_err());
        assert!(parse_secs("x").is_err());
        assert!(parse_secs("inf").is_err());
    }
}
