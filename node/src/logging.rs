//! Structured logs through `tracing`: quiet by default (warnings and errors), `RUST_LOG` to
//! change the level, `--log-format json` for machines.
//!
//! Logs go to standard error, one event per line. As text, they are coloured only on a
//! terminal (and not with `NO_COLOR` set), so a log file holds no escape codes. As JSON,
//! each line is one object:
//!
//! ```json
//! {"timestamp":"...","level":"INFO","fields":{"message":"became the leader","term":1},
//!  "target":"berth_node::driver::notes","span":{"id":"1","name":"master"},"spans":[...]}
//! ```
//!
//! (one line in the output). The error that ends the process is written the same way, so
//! that every line a node writes to standard error is JSON; only a refused command line or
//! configuration file, found before logging starts, is plain text.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The level when `RUST_LOG` is not set: warnings and errors only.
pub const LOG_LEVEL_DEFAULT: &str = "warn";

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per event.
    Json,
}

/// Installs the global subscriber, writing to standard error.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(LOG_LEVEL_DEFAULT));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second initialization (in tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.with_ansi(colours_wanted()).try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Writes the error that stops the process: a plain `error: ...` line as text, an `ERROR`
/// event as JSON.
pub fn report_fatal(format: LogFormat, error: &anyhow::Error) {
    match format {
        LogFormat::Text => eprintln!("error: {error:#}"),
        LogFormat::Json => {
            // Not through the global subscriber, whose filter (RUST_LOG) may leave out the
            // one line that says why the process stopped; in the same format.
            let subscriber = tracing_subscriber::fmt()
                .json()
                .with_writer(std::io::stderr)
                .finish();
            tracing::subscriber::with_default(subscriber, || {
                tracing::error!(error = format!("{error:#}"), "stopping");
            });
        }
    }
}

/// Whether text logs are coloured: only on a terminal, and not if `NO_COLOR` is set to
/// anything but the empty string (<https://no-color.org>).
fn colours_wanted() -> bool {
    let no_colour = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
    std::io::stderr().is_terminal() && !no_colour
}
