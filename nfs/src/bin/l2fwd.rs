//! `l2fwd` NF binary: see [`netvm_nfs::l2fwd`].
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    netvm_nfs::exit(
        "l2fwd",
        netvm_nfs::l2fwd::main(netvm_nfs::l2fwd::Args::parse()),
    )
}
