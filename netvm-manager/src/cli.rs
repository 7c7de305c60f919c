//! The command line (clap derive) and dispatch to the library functions.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::check::{self, Overrides};
use crate::error::ManagerError;
use crate::instance::{self, StatsOptions, Target};
use crate::up::{self, UpOptions};

/// netvm control plane: check, run and watch a netvm instance described by one JSON config.
#[derive(Parser, Debug)]
#[command(name = "netvm-manager", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Validate a config without starting anything: prints `ok`, or one line
    /// `CONFIG: JSON-PATH: REASON` and exits with 2. Several configs (the instances of one
    /// cluster): each is checked, then every service path (`path_id`) they share must agree:
    /// the same hops in the same order, each hop run by exactly one of them.
    Check {
        /// Config files (JSON).
        #[arg(required = true)]
        configs: Vec<PathBuf>,
    },
    /// Print the JSON Schema of the config (the shipped schema/netvm-config.schema.json).
    Schema,
    /// Run an instance in the foreground: hugepages, netvm-core, NF processes, live
    /// progress, then teardown and a final summary (exit 0 when accounting holds and every
    /// pool is full again, 3 when not, 1 on error, 2 on an invalid config).
    Up(UpArgs),
    /// Stop a running instance (from another shell).
    Down {
        /// Which instance.
        #[command(flatten)]
        target: TargetArgs,
        /// Seconds to wait for its manager to finish its teardown.
        #[arg(long, default_value_t = 60.0)]
        timeout: f64,
    },
    /// Show an instance's parts and their state.
    Status {
        /// Which instance.
        #[command(flatten)]
        target: TargetArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print an instance's counters; with --watch a live table per interval: rates per port,
    /// per NF, per chain, drops by reason, buffers held per NF (the saturation signal).
    Stats {
        /// Which instance.
        #[command(flatten)]
        target: TargetArgs,
        /// Refresh every --interval seconds until Ctrl-C (or --count refreshes).
        #[arg(long)]
        watch: bool,
        /// Seconds between refreshes.
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
        /// Stop after this many refreshes.
        #[arg(long)]
        count: Option<u64>,
        /// Print the core's report as JSON (one line per refresh with --watch).
        #[arg(long)]
        json: bool,
    },
    /// Serve an instance's counters to Prometheus: an HTTP server on --listen whose
    /// `GET /metrics` answers the core's stats in the Prometheus text format (every counter of
    /// `stats`, per port, NF, chain, verdict and drop/reject reason). Runs until Ctrl-C or
    /// SIGTERM.
    Metrics {
        /// Which instance.
        #[command(flatten)]
        target: TargetArgs,
        /// Address to listen on, ADDR:PORT (port 0: any free port; the address in use is
        /// printed on stderr).
        #[arg(long, default_value = "127.0.0.1:9464")]
        listen: String,
    },
    /// Capture the frames passing one point of a running instance into a pcapng file (from
    /// another shell while `up` runs). The core copies matching frames into bounded rings and
    /// never waits for this command: frames it could not copy are counted as dropped by the
    /// capture (the data path is unaffected either way). Ends after -c COUNT frames, or on
    /// Ctrl-C (SIGINT/SIGTERM), or when the reader of `-w -` exits; the capture is stopped in
    /// the core before exiting, and the counts are printed on stderr. Examples:
    ///
    ///   netvm-manager capture demo --at fw1:out -w fw.pcapng
    ///
    ///   netvm-manager capture demo --at port:in:rx --filter proto=udp,dst_port=53 -c 100 -w - | tshark -r -
    #[command(verbatim_doc_comment)]
    Capture(CaptureArgs),
    /// Add or remove an NF of a running instance (its `up` starts, watches and stops the
    /// process).
    #[command(subcommand)]
    Nf(NfCommand),
    /// Change the chains of a running instance.
    #[command(subcommand)]
    Chain(ChainCommand),
    /// Write the demo traffic (mixed UDP/TCP flows, some of which the demo rules deny) to a
    /// pcap file.
    GenPcap {
        /// Output pcap file.
        out: PathBuf,
        /// Number of flows.
        #[arg(long, default_value_t = 32)]
        flows: u32,
        /// Packets per flow.
        #[arg(long, default_value_t = 64)]
        packets_per_flow: u32,
    },
}

/// `nf …`.
#[derive(Subcommand, Debug)]
pub enum NfCommand {
    /// Add an NF while the instance runs: it takes a free entry (`spare_nfs` in the config),
    /// its service (new or not) can be named by chains from then on (`chain set`); the
    /// running `up` starts its program like a configured NF's (own user in its domain's
    /// group, log nf-NAME.log in the run directory, working directory the config's) and
    /// waits until it attached. Refused, with nothing changed, when the name is taken, the
    /// domain unknown or no entry free. Example:
    ///
    ///   netvm-manager nf add mon2 --service mon --domain trusted --program monitor --name demo -- --interval 1
    #[command(verbatim_doc_comment)]
    Add {
        /// The new NF's name.
        nf: String,
        /// Service it provides.
        #[arg(long)]
        service: String,
        /// Its domain.
        #[arg(long)]
        domain: String,
        /// Its program: a path, or a name found next to netvm-manager or on PATH.
        #[arg(long)]
        program: String,
        /// CPU to pin it to.
        #[arg(long)]
        cpu: Option<usize>,
        /// Which instance.
        #[command(flatten)]
        target: TargetArgs,
        /// Its arguments (after `--`).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Remove an NF while the instance runs: it gets no new packets, returns what it holds
    /// (what it still holds after a grace period is taken back), its entry is freed and its
    /// process stopped. Chains naming its service follow their failure policy when no
    /// instance is left.
    Remove {
        /// The NF's name.
        nf: String,
        /// Which instance.
        #[command(flatten)]
        target: TargetArgs,
    },
}

/// `chain …`.
#[derive(Subcommand, Debug)]
pub enum ChainCommand {
    /// Replace the chains of a running instance with those in FILE (a JSON array of chains,
    /// or an object with a `chains` array; the config's schema). Packets of unchanged
    /// chains are not dropped; packets in flight finish on the chain they entered.
    Set {
        /// The chains file.
        file: PathBuf,
        /// Which instance.
        #[command(flatten)]
        target: TargetArgs,
    },
}

/// Arguments of `up`.
#[derive(Args, Debug)]
pub struct UpArgs {
    /// Config file (JSON).
    pub config: PathBuf,
    /// Stop after this many seconds of traffic.
    #[arg(long)]
    pub duration: Option<f64>,
    /// No live progress line.
    #[arg(long)]
    pub no_progress: bool,
    /// Run under this name instead of the config's (a second copy of one config).
    #[arg(long)]
    pub name: Option<String>,
    /// Use this run directory instead of the config's.
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Seconds every NF may take to attach.
    #[arg(long, default_value_t = 30.0)]
    pub attach_timeout: f64,
    /// Also write the final summary as JSON to this file.
    #[arg(long)]
    pub summary: Option<PathBuf>,
    /// The netvm-core binary [default: next to netvm-manager, else on PATH].
    #[arg(long)]
    pub core: Option<PathBuf>,
    /// Guest image directory for VM NFs (vmlinuz, initramfs.cpio.gz from
    /// scripts/build-guest.sh) [default: $NETVM_GUEST_IMAGE, else ../guest-image next to
    /// netvm-manager].
    #[arg(long)]
    pub guest_image: Option<PathBuf>,
}

/// Arguments of `capture`.
#[derive(Args, Debug)]
pub struct CaptureArgs {
    /// The instance: its name (run directory /run/netvm/NAME) or its config file [default:
    /// the only instance under /run/netvm].
    #[arg(conflicts_with = "run_dir")]
    pub instance: Option<String>,
    /// The instance's run directory.
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Where: NF:in (frames delivered to the NF), NF:out (frames it passes on, as it returns
    /// them), NF:drop (frames it drops), port:PORT:rx (received), port:PORT:tx (sent).
    #[arg(long)]
    pub at: String,
    /// Only frames matching this, in chain `match` syntax: a JSON object
    /// ('{"proto":"udp","dst_port":"53"}') or key=value pairs (proto=udp,dst_port=53); keys
    /// in_port, ethertype, vlan, inner_vlan, src, dst, proto, src_port, dst_port.
    #[arg(long)]
    pub filter: Option<String>,
    /// Stop after this many frames.
    #[arg(short = 'c', long)]
    pub count: Option<u64>,
    /// Bytes kept per frame [default: whole frames].
    #[arg(long)]
    pub snaplen: Option<u32>,
    /// The pcapng file to write; `-` writes to stdout (a pipe into `tshark -r -` or
    /// `wireshark -k -i -`).
    #[arg(short = 'w', long = "write")]
    pub write: PathBuf,
}

/// Which instance.
#[derive(Args, Debug, Clone)]
pub struct TargetArgs {
    /// Its config file.
    #[arg(conflicts_with = "run_dir")]
    pub config: Option<PathBuf>,
    /// Its name (run directory /run/netvm/NAME unless the config says otherwise).
    #[arg(long)]
    pub name: Option<String>,
    /// Its run directory.
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
}

impl From<TargetArgs> for Target {
    fn from(t: TargetArgs) -> Self {
        Target {
            config: t.config,
            name: t.name,
            run_dir: t.run_dir,
        }
    }
}

fn secs(arg: &'static str, s: f64) -> Result<Duration, ManagerError> {
    Duration::try_from_secs_f64(s).map_err(|e| ManagerError::BadArg {
        arg,
        why: format!("{s}: {e}"),
    })
}

/// Runs a command; returns the process exit code (0, or 3 when `up`'s accounting check
/// failed). Errors carry their own code ([`ManagerError::exit_code`]).
pub fn run(cli: Cli) -> Result<u8, ManagerError> {
    match cli.command {
        Command::Check { configs } => {
            let mut loaded = Vec::with_capacity(configs.len());
            for c in &configs {
                loaded.push((c.clone(), check::load(c, &Overrides::default())?.config));
            }
            check::paths_agree(&loaded)?;
            println!("ok");
            Ok(0)
        }
        Command::Schema => {
            print!("{}", crate::schema::generate());
            Ok(0)
        }
        Command::Up(a) => {
            let opts = UpOptions {
                duration: a.duration.map(|d| secs("duration", d)).transpose()?,
                progress: !a.no_progress,
                attach_timeout: secs("attach-timeout", a.attach_timeout)?,
                summary: a.summary,
                core: a.core,
                guest_image: a.guest_image,
                overrides: Overrides {
                    name: a.name,
                    run_dir: a.run_dir,
                },
            };
            let s = up::up(&a.config, &opts)?;
            print!("{}", crate::report::render_summary(&s));
            Ok(if s.ok { 0 } else { 3 })
        }
        Command::Down { target, timeout } => {
            instance::down(&target.into(), secs("timeout", timeout)?)?;
            Ok(0)
        }
        Command::Status { target, json } => {
            print!("{}", instance::status(&target.into(), json)?);
            Ok(0)
        }
        Command::Stats {
            target,
            watch,
            interval,
            count,
            json,
        } => {
            let opts = StatsOptions {
                watch,
                interval: secs("interval", interval)?,
                count,
                json,
            };
            instance::stats(&target.into(), &opts, &mut std::io::stdout())?;
            Ok(0)
        }
        Command::Metrics { target, listen } => {
            crate::exporter::serve(&target.into(), &listen)?;
            Ok(0)
        }
        Command::Capture(a) => {
            let target = match a.instance {
                // A config file names the instance as `status CONFIG` does; anything else is
                // its name.
                Some(i) if i.ends_with(".json") || std::path::Path::new(&i).is_file() => Target {
                    config: Some(PathBuf::from(i)),
                    name: None,
                    run_dir: None,
                },
                name => Target {
                    config: None,
                    name,
                    run_dir: a.run_dir,
                },
            };
            let at =
                a.at.parse()
                    .map_err(
                        |e: netvm_api::capture::BadCapturePoint| ManagerError::BadArg {
                            arg: "at",
                            why: e.to_string(),
                        },
                    )?;
            let filter = a
                .filter
                .as_deref()
                .map(netvm_api::capture::parse_filter)
                .transpose()
                .map_err(|why| ManagerError::BadArg { arg: "filter", why })?;
            let opts = crate::capture::CaptureOptions {
                at,
                filter,
                count: a.count,
                snaplen: a.snaplen,
                out: a.write,
            };
            crate::capture::capture(&target, &opts)?;
            Ok(0)
        }
        Command::Nf(NfCommand::Add {
            nf,
            service,
            domain,
            program,
            cpu,
            target,
            args,
        }) => {
            let spec = crate::runtime::NfSpec {
                name: nf,
                service,
                domain,
                program,
                cpu,
                args,
            };
            println!("{}", crate::runtime::nf_add(&target.into(), spec)?);
            Ok(0)
        }
        Command::Nf(NfCommand::Remove { nf, target }) => {
            println!("{}", crate::runtime::nf_remove(&target.into(), &nf)?);
            Ok(0)
        }
        Command::Chain(ChainCommand::Set { file, target }) => {
            let v = crate::runtime::chain_set(&target.into(), &file)?;
            println!("chains set from {} (tables version {v})", file.display());
            Ok(0)
        }
        Command::GenPcap {
            out,
            flows,
            packets_per_flow,
        } => {
            let n = crate::pcapgen::gen_pcap(&out, flows, packets_per_flow)?;
            println!(
                "{}: {n} packets ({flows} flows x {packets_per_flow})",
                out.display()
            );
            Ok(0)
        }
    }
}
