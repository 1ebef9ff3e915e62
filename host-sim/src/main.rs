//! `host-sim`: the host simulator's command line. See docs/HOST_SIM.md.

use std::process::ExitCode;

use clap::Parser;
use host_sim::cli::{run, Cli};

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("Error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
