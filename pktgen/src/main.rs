//! `netvm-pktgen`: see the crate docs ([`netvm_pktgen`]).
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let opts = netvm_pktgen::Options::parse();
    match netvm_pktgen::run(&opts) {
        Ok(report) => {
            let text = serde_json::to_string_pretty(&report).unwrap_or_default();
            println!("{text}");
            if let Some(p) = &opts.json {
                if let Err(e) = std::fs::write(p, &text) {
                    eprintln!("netvm-pktgen: writing {}: {e}", p.display());
                    return ExitCode::FAILURE;
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            let mut msg = format!("netvm-pktgen: {e}");
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(&format!(": {s}"));
                src = s.source();
            }
            eprintln!("{msg}");
            ExitCode::FAILURE
        }
    }
}
