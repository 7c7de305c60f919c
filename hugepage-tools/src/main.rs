//! `netvm-hugepages`: see `netvm-hugepages --help` and the `hugepage_tools` crate docs.

use std::process::ExitCode;

use clap::Parser;
use hugepage_tools::cli::{run, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli, &mut std::io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "netvm-hugepages: error: {}",
                hugepage_tools::error_chain(&e)
            );
            ExitCode::FAILURE
        }
    }
}
