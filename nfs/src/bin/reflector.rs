//! `reflector` NF binary: see [`netvm_nfs::reflector`].
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    netvm_nfs::exit(
        "reflector",
        netvm_nfs::reflector::main(netvm_nfs::reflector::Args::parse()),
    )
}
