//! The `berth` binary: parses arguments, sets up logging and calls into `berth_node`.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = berth_node::cli::Cli::parse();
    let log_format = cli.log_format;
    berth_node::logging::init(log_format);
    match berth_node::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            berth_node::logging::report_fatal(log_format, &error);
            ExitCode::FAILURE
        }
    }
}
