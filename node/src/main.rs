//! The `berth` binary: parses arguments, sets up logging and calls into `berth_node`.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = berth_node::cli::Cli::parse();
    berth_node::logging::init(cli.log_format);
    match berth_node::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
