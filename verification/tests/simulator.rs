//! The seeded whole-cluster simulator in the default test run: a few seeds, a few thousand
//! steps each (crashes, restarts, partitions, task exits and launches), every invariant
//! checked after every step. Longer runs: see the README.

use berth_verification::simulator::{SimulationConfig, simulate};

#[test]
fn every_invariant_holds_through_seeded_faults() {
    let config = SimulationConfig {
        steps: 4_000,
        ..SimulationConfig::default()
    };
    for seed in 0..4 {
        match simulate(seed, config) {
            Ok(report) => {
                println!("seed {seed}: {report:?}");
                assert!(
                    report.tasks_finished > 0,
                    "seed {seed}: the cluster did work"
                );
                assert!(report.leaders > 1, "seed {seed}: leaders failed over");
                assert!(
                    report
                        .faults
                        .get("agent crash")
                        .is_some_and(|count| *count > 0)
                );
            }
            Err(violation) => panic!("{violation}"),
        }
    }
}

#[test]
fn a_run_is_determined_by_its_seed() {
    let config = SimulationConfig {
        steps: 1_000,
        ..SimulationConfig::default()
    };
    assert_eq!(simulate(9, config), simulate(9, config));
}
