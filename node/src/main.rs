//! The `berth` binary: parses arguments, sets up logging and calls into `berth_node`.

use std::process::ExitCode;

use berth_node::cli::CommandLineError;

/// The exit status of a refused command line or configuration file, like clap's for a bad
/// flag.
const USAGE_ERROR: u8 = 2;

fn main() -> ExitCode {
    let cli = match berth_node::cli::parse_command_line(std::env::args_os()) {
        Ok(cli) => cli,
        Err(CommandLineError::Usage(error)) => error.exit(),
        Err(CommandLineError::Config(error)) => {
            // Logging is not set up yet: the file may be what sets its format.
            eprintln!("error: {error}");
            return ExitCode::from(USAGE_ERROR);
        }
    };
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
