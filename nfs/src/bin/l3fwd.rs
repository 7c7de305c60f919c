//! `l3fwd` NF binary: see [`netvm_nfs::l3fwd`].
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    netvm_nfs::exit(
        "l3fwd",
        netvm_nfs::l3fwd::main(netvm_nfs::l3fwd::Args::parse()),
    )
}
