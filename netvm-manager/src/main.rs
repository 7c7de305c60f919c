//! `netvm-manager`: parses the command line and runs it; errors are printed once, as a chain.

use std::process::ExitCode;

use clap::Parser;
use netvm_manager::cli::{self, Cli};
use netvm_manager::ManagerError;

fn main() -> ExitCode {
    match cli::run(Cli::parse()) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            match &e {
                // `check`'s one line: CONFIG: JSON-PATH: REASON.
                ManagerError::Invalid { .. } => eprintln!("{}", netvm_manager::error::chain(&e)),
                _ => eprintln!("netvm-manager: {}", netvm_manager::error::chain(&e)),
            }
            ExitCode::from(e.exit_code())
        }
    }
}
