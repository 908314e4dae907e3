//! `berth-verification simulate --seed S --steps N [--masters M] [--agents A] [--settle SECS]`:
//! runs the seeded whole-cluster simulator and prints its report, or the violation and its
//! seed. `--settle` is the simulated time the healed cluster gets to converge (0 skips it).

use std::process::ExitCode;

use berth_verification::simulator::{SimulationConfig, simulate};

const USAGE: &str = "usage: berth-verification simulate [--seed S] [--steps N] [--seeds K] \
                     [--masters 1|3|5] [--agents A] [--settle SECS]";

fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    if arguments.first().map(String::as_str) != Some("simulate") {
        eprintln!("{USAGE}");
        return ExitCode::FAILURE;
    }
    let mut seed = 0_u64;
    let mut seeds = 1_u64;
    let mut config = SimulationConfig::default();
    let mut rest = arguments[1..].iter();
    while let Some(flag) = rest.next() {
        let value = rest.next().and_then(|value| value.parse::<u64>().ok());
        let Some(value) = value else {
            eprintln!("{flag} needs a number\n{USAGE}");
            return ExitCode::FAILURE;
        };
        match flag.as_str() {
            "--seed" => seed = value,
            "--seeds" => seeds = value.max(1),
            "--steps" => config.steps = value,
            "--masters" if matches!(value, 1 | 3 | 5) => config.masters = value as u8,
            "--agents" if value > 0 => config.agents = value as usize,
            "--settle" => config.settle = std::time::Duration::from_secs(value),
            _ => {
                eprintln!("unknown or invalid flag {flag}\n{USAGE}");
                return ExitCode::FAILURE;
            }
        }
    }
    for seed in seed..seed + seeds {
        let started = std::time::Instant::now();
        match simulate(seed, config) {
            Ok(report) => println!(
                "seed {seed}: {} steps, {:.0?} simulated in {:.2?}; {} leaders; {} tasks \
                 finished; faults: {:?}; every invariant held",
                report.steps,
                report.simulated,
                started.elapsed(),
                report.leaders,
                report.tasks_finished,
                report.faults
            ),
            Err(violation) => {
                println!("VIOLATION {violation}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
