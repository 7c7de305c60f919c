//! `firewall` NF binary: see [`netvm_nfs::firewall`].
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    netvm_nfs::exit(
        "firewall",
        netvm_nfs::firewall::main(netvm_nfs::firewall::Args::parse()),
    )
}
