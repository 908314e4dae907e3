//! The command line.

use anyhow::Context;
use berth_protocol::resources::{Reservation, ResourceValue, Resources};
use clap::{Parser, Subcommand};

use crate::logging::LogFormat;

/// Berth: a cluster resource manager whose fault tolerance is model-checked.
#[derive(Debug, Parser)]
#[command(
    name = "berth",
    version,
    about = "Berth: a cluster resource manager whose fault tolerance is model-checked."
)]
pub struct Cli {
    /// How log lines are written (set the level with RUST_LOG, e.g. RUST_LOG=info).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true, env = "BERTH_LOG_FORMAT")]
    pub log_format: LogFormat,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Checks an agent resource string and prints what it describes, one entry per line.
    ///
    /// Example: berth resources "cpus:4;mem:8192;disk:100000;ports:[31000-32000];cpus(ops):2"
    Resources {
        /// The resource string, as given to `berth agent --resources`.
        text: String,
    },
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Resources { text } => {
            print!("{}", describe_resources(&text)?);
            Ok(())
        }
    }
}

/// The table `berth resources` prints.
pub fn describe_resources(text: &str) -> anyhow::Result<String> {
    let resources = Resources::parse(text).context("invalid resource string")?;
    let mut table = format!("{:<12} {:<16} {}\n", "NAME", "RESERVED FOR", "AMOUNT");
    for resource in resources.to_list() {
        let role = match &resource.key.reservation {
            Reservation::Unreserved => "*".to_string(),
            Reservation::Static(role) => format!("{role} (static)"),
            Reservation::Dynamic { role, principal } => format!("{role} (by {principal})"),
        };
        let amount = match &resource.value {
            ResourceValue::Scalar(quantity) => quantity.to_string(),
            ResourceValue::Ranges(ranges) => ranges.to_string(),
        };
        table.push_str(&format!(
            "{:<12} {:<16} {}\n",
            resource.key.name, role, amount
        ));
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_each_entry() {
        let table = describe_resources("cpus:4;cpus(ops):0.5;ports:[1-2]").expect("valid");
        assert!(
            table.contains("cpus         *                4\n"),
            "{table}"
        );
        assert!(
            table.contains("cpus         ops (static)     0.5\n"),
            "{table}"
        );
        assert!(
            table.contains("ports        *                [1-2]\n"),
            "{table}"
        );
    }

    #[test]
    fn names_the_offending_part() {
        let error = describe_resources("cpus:4;mem:lots").expect_err("invalid");
        assert!(format!("{error:#}").contains("mem:lots"), "{error:#}");
    }
}
