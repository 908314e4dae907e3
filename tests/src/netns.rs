//! Real `berth` processes across network namespaces, and the faults between them.
//!
//! Each master, agent and framework runs on a *host* of its own: a network namespace with
//! one address on a bridge that lives in a namespace of its own (the hub), so a test can
//! kill (`kill -9`), pause (SIGSTOP/SIGCONT) and restart any process, cut and heal the link
//! between any two hosts in one or both directions, and make a host lose packets, while
//! other tests run their own clusters beside it on the same addresses.
//!
//! * [`fabric`]: namespaces, the bridge, link faults (`tc` filters), cleanup.
//! * [`process`]: a restartable process on a host.
//! * [`cluster`]: masters and agents on a fabric, `berth state` checked on every read.
//! * [`framework`]: `berth-test-framework`, a scheduler as a process of its own.
//! * [`invariants`]: DESIGN.md's invariants as seen from outside the processes.
//! * [`nemesis`]: a seeded sequence of faults.
//!
//! The tests need root and `iproute2` (`ip`, `tc`): CI runs as root and `.ci/run` installs
//! `iproute2` when it is missing. Without them, creating a [`fabric::Fabric`] panics with
//! what to do: the tests fail, they never pass without running.
//!
//! ```no_run
//! use std::time::Duration;
//! use berth_tests::netns::cluster::{Cluster, ClusterSpec};
//!
//! let mut cluster = Cluster::start("example", &ClusterSpec::default());
//! let (leader, _term) = cluster.wait_for_leader(Duration::from_secs(20));
//! let leader = cluster.master_id(&leader);
//! let others: Vec<_> = (1..=3).filter(|id| *id != leader).map(|id| cluster.master_host(id)).collect();
//! let host = cluster.master_host(leader);
//! cluster.fabric().isolate(host, &others);
//! ```

pub mod cluster;
pub mod fabric;
pub mod framework;
pub mod invariants;
pub mod nemesis;
pub mod process;
