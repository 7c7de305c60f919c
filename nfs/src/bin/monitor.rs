//! `monitor` NF binary: see [`netvm_nfs::monitor`].
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    netvm_nfs::exit(
        "monitor",
        netvm_nfs::monitor::main(netvm_nfs::monitor::Args::parse()),
    )
}
