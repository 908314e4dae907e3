//! `berth-model`: check, simulate or explore the protocol's models.
//!
//! ```text
//! cargo run --release -p berth-model -- check election [--masters 3] [--crashes 1] [--terms 2] [--entries 1]
//! cargo run --release -p berth-model -- check agents [--crashes 1] [--reboots 0] [--terms 2]
//! cargo run --release -p berth-model -- check offers [--agents 2] [--frameworks 2] [--no-failover]
//! cargo run --release -p berth-model -- simulate election --seed 7 --steps 100000
//! cargo run --release -p berth-model -- explore election --address 127.0.0.1:3000
//! ```

use std::process::ExitCode;
use std::time::{Duration, Instant};

use berth_model::agents::{AgentsConfig, agents_model};
use berth_model::election::{ElectionConfig, election_model};
use berth_model::offers::{OffersConfig, OffersMutation, offers_model};
use berth_protocol::agent::AgentMutation;
use berth_protocol::master::Mutation;
use clap::{Args, Parser, Subcommand, ValueEnum};
use stateright::{Checker, Expectation, Model};

/// Model-check the Berth protocol: the exact protocol code, with crashes and a lossy,
/// duplicating, reordering network.
#[derive(Debug, Parser)]
#[command(name = "berth-model", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Exhaustive breadth-first search of a model; exits non-zero if a property is violated.
    Check {
        /// Which model.
        model: Which,
        #[command(flatten)]
        bounds: Bounds,
        /// Search depth-first (bounded by --depth; light on memory) instead of breadth-first.
        #[arg(long)]
        dfs: bool,
        /// The deepest path explored; 0 for no bound. The full spaces of the default models
        /// are far beyond ten million states, so the default stops at depth 12 (election:
        /// about 4 million states, under two minutes and 6 GiB; agents: 356 thousand) or, for
        /// offers, 10 (about 820 thousand states, a minute).
        #[arg(long)]
        depth: Option<usize>,
        /// Worker threads.
        #[arg(long, default_value_t = 2)]
        threads: usize,
    },
    /// Random walks through a (larger) model; a violation prints its path.
    Simulate {
        /// Which model.
        model: Which,
        #[command(flatten)]
        bounds: Bounds,
        /// The seed of the random walks; the same seed explores the same walks.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Stop after visiting this many states.
        #[arg(long, default_value_t = 1_000_000)]
        steps: usize,
        /// The longest walk.
        #[arg(long, default_value_t = 200)]
        depth: usize,
    },
    /// Serves stateright's interactive explorer for a model.
    Explore {
        /// Which model.
        model: Which,
        #[command(flatten)]
        bounds: Bounds,
        /// Where to listen (keep it on loopback).
        #[arg(long, default_value = "127.0.0.1:3000")]
        address: String,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Which {
    /// Master election and the replicated registry.
    Election,
    /// A master, an agent with its executors and a framework: registration, failover
    /// re-registration, status updates, recovery.
    Agents,
    /// A master, two agents and two frameworks: offers, reservations, a persistent volume,
    /// scheduler failover, an unreachable agent (R1-R5, F1).
    Offers,
}

/// The bounds of a model; unset ones take the model's defaults (or, for `simulate`, larger
/// ones).
#[derive(Debug, Args)]
struct Bounds {
    /// Masters (1, 3 or 5).
    #[arg(long)]
    masters: Option<u8>,
    /// Masters that may be down at once.
    #[arg(long)]
    crashes: Option<usize>,
    /// The highest term explored.
    #[arg(long)]
    terms: Option<u64>,
    /// Requests the operator makes (log entries besides each leader's no-op).
    #[arg(long)]
    entries: Option<u8>,
    /// Applied entries after which a master compacts its log.
    #[arg(long)]
    snapshot_threshold: Option<u64>,
    /// Let the network lose messages too (the election and offers models' networks do not by
    /// default: in the election model, loss reaches no actor state that duplication and
    /// reordering do not).
    #[arg(long)]
    lossy: bool,
    /// A network that never loses a message (agents model; its default loses them).
    #[arg(long)]
    lossless: bool,
    /// A network that delivers each message at most once (it still reorders).
    #[arg(long)]
    no_duplication: bool,
    /// A network that may deliver a message more than once (offers model; its default does
    /// not, though the protocol's own resends still duplicate launches and operations).
    #[arg(long)]
    duplicating: bool,
    /// Agents (offers model: 1 or 2).
    #[arg(long)]
    agents: Option<usize>,
    /// Frameworks (offers model: 1 or 2).
    #[arg(long)]
    frameworks: Option<usize>,
    /// No standby scheduler (offers model).
    #[arg(long)]
    no_failover: bool,
    /// Timeouts never fire: every message arrives in time (offers model). Every path found
    /// is a path of the full model; the searches reach far deeper.
    #[arg(long)]
    no_timeouts: bool,
    /// The most messages in flight at once.
    #[arg(long)]
    in_flight: Option<usize>,
    /// Masters elect without the pre-vote phase (shorter paths to every state).
    #[arg(long)]
    no_pre_vote: bool,
    /// Masters run without check-quorum and leader stickiness.
    #[arg(long)]
    no_check_quorum: bool,
    /// Check a deliberately broken protocol instead, to watch a property catch the bug.
    #[arg(long, value_enum)]
    mutation: Option<MutationFlag>,
    /// Host reboots (agents model).
    #[arg(long)]
    reboots: Option<u8>,
    /// A deliberately broken agent (agents and offers models).
    #[arg(long, value_enum)]
    agent_mutation: Option<AgentMutationFlag>,
}

/// The seeded bugs of `berth_protocol::agent::AgentMutation`.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum AgentMutationFlag {
    /// Updates are sent without being persisted (A2).
    UpdateNotPersisted,
    /// An update counts as acknowledged once sent (A2).
    AcknowledgeOnSend,
    /// A reconnecting executor's tasks are forgotten (A3).
    ForgetReconnectedTasks,
    /// Late executors are reported failed without being destroyed (A1).
    FailWithoutDestroy,
    /// Commands of lower terms are obeyed (E3).
    ObeyLowerTerm,
    /// A launch of a task that ended is run again (R5).
    ForgetEndedTasks,
    /// A resent resource operation is applied again (R5).
    ReapplyOperations,
    /// A task's volumes are deleted when it ends (R4).
    DeleteVolumesWithTask,
}

impl From<AgentMutationFlag> for AgentMutation {
    fn from(flag: AgentMutationFlag) -> AgentMutation {
        match flag {
            AgentMutationFlag::UpdateNotPersisted => AgentMutation::UpdateNotPersisted,
            AgentMutationFlag::AcknowledgeOnSend => AgentMutation::AcknowledgeOnSend,
            AgentMutationFlag::ForgetReconnectedTasks => AgentMutation::ForgetReconnectedTasks,
            AgentMutationFlag::FailWithoutDestroy => AgentMutation::FailWithoutDestroy,
            AgentMutationFlag::ObeyLowerTerm => AgentMutation::ObeyLowerTerm,
            AgentMutationFlag::ForgetEndedTasks => AgentMutation::ForgetEndedTasks,
            AgentMutationFlag::ReapplyOperations => AgentMutation::ReapplyOperations,
            AgentMutationFlag::DeleteVolumesWithTask => AgentMutation::DeleteVolumesWithTask,
        }
    }
}

/// The seeded bugs of `berth_protocol::master::Mutation`.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum MutationFlag {
    /// Votes are sent without being persisted (E1 breaks after a crash).
    VoteNotPersisted,
    /// A second candidate of the same term gets a vote too (E1).
    VoteTwicePerTerm,
    /// Votes are granted whatever the candidate's log (E2).
    VoteWithoutLogCheck,
    /// Followers append without checking the entry before (E2, log matching).
    AppendWithoutPreviousCheck,
    /// Outstanding offers are offered again (R1).
    OfferOutstandingAgain,
    /// Other roles' reservations are added to offers (R2).
    OfferOtherRolesReservations,
    /// Other roles' volumes are added to offers (R3).
    OfferOtherRolesVolumes,
    /// A new leader arms failover timers with no time left (F1).
    FailoverTimerNotRearmed,
}

impl From<MutationFlag> for Mutation {
    fn from(flag: MutationFlag) -> Mutation {
        match flag {
            MutationFlag::VoteNotPersisted => Mutation::VoteNotPersisted,
            MutationFlag::VoteTwicePerTerm => Mutation::VoteTwicePerTerm,
            MutationFlag::VoteWithoutLogCheck => Mutation::VoteWithoutLogCheck,
            MutationFlag::AppendWithoutPreviousCheck => Mutation::AppendWithoutPreviousCheck,
            MutationFlag::OfferOutstandingAgain => Mutation::OfferOutstandingAgain,
            MutationFlag::OfferOtherRolesReservations => Mutation::OfferOtherRolesReservations,
            MutationFlag::OfferOtherRolesVolumes => Mutation::OfferOtherRolesVolumes,
            MutationFlag::FailoverTimerNotRearmed => Mutation::FailoverTimerNotRearmed,
        }
    }
}

impl Bounds {
    fn agents(&self, base: AgentsConfig) -> AgentsConfig {
        AgentsConfig {
            crashes: self.crashes.unwrap_or(base.crashes),
            reboots: self.reboots.unwrap_or(base.reboots),
            terms_max: self.terms.unwrap_or(base.terms_max),
            lossy: base.lossy && !self.lossless,
            duplicating: base.duplicating && !self.no_duplication,
            in_flight_max: self.in_flight.unwrap_or(base.in_flight_max),
            mutation: self.agent_mutation.map(AgentMutation::from),
        }
    }

    fn offers(&self, base: OffersConfig) -> OffersConfig {
        let mutation = match (self.mutation, self.agent_mutation) {
            (Some(master), _) => Some(OffersMutation::Master(master.into())),
            (None, Some(agent)) => Some(OffersMutation::Agent(agent.into())),
            (None, None) => None,
        };
        OffersConfig {
            agents: self.agents.unwrap_or(base.agents).clamp(1, 2),
            frameworks: self.frameworks.unwrap_or(base.frameworks).clamp(1, 2),
            failover: base.failover && !self.no_failover,
            crashes: self.crashes.unwrap_or(base.crashes),
            terms_max: self.terms.unwrap_or(base.terms_max),
            lossy: base.lossy || self.lossy,
            duplicating: base.duplicating || self.duplicating,
            in_flight_max: self.in_flight.unwrap_or(base.in_flight_max),
            timeouts: base.timeouts && !self.no_timeouts,
            mutation,
        }
    }

    fn election(&self, base: ElectionConfig) -> ElectionConfig {
        ElectionConfig {
            masters: self.masters.unwrap_or(base.masters),
            crashes: self.crashes.unwrap_or(base.crashes),
            terms_max: self.terms.unwrap_or(base.terms_max),
            entries: self.entries.unwrap_or(base.entries),
            snapshot_threshold: self.snapshot_threshold.unwrap_or(base.snapshot_threshold),
            lossy: base.lossy || self.lossy,
            duplicating: base.duplicating && !self.no_duplication,
            ordered: base.ordered,
            in_flight_max: self.in_flight.unwrap_or(base.in_flight_max),
            pre_vote: base.pre_vote && !self.no_pre_vote,
            check_quorum: base.check_quorum && !self.no_check_quorum,
            mutation: self.mutation.map(Mutation::from),
        }
    }
}

/// Runs an exhaustive search of `model`.
fn check<M>(model: M, seeded_bug: bool, dfs: bool, depth: usize, threads: usize) -> ExitCode
where
    M: Model + Send + Sync + 'static,
    M::State: std::fmt::Debug + Clone + PartialEq + std::hash::Hash + Send + Sync,
    M::Action: std::fmt::Debug + Clone + PartialEq + Send + Sync,
{
    let mut checker = model.checker().threads(threads);
    if seeded_bug {
        // Looking for the bug: stop at the first violation.
        checker = checker.finish_when(stateright::HasDiscoveries::AnyFailures);
    }
    let bound = if depth == 0 {
        "unbounded".to_string()
    } else {
        checker = checker.target_max_depth(depth);
        format!("<= {depth}")
    };
    if dfs {
        if depth == 0 {
            eprintln!("error: --dfs needs a depth bound (--depth N, N > 0)");
            return ExitCode::FAILURE;
        }
        println!("search: depth-first, depth {bound}");
        report(checker.spawn_dfs(), None)
    } else {
        println!("search: breadth-first, depth {bound}");
        report(checker.spawn_bfs(), None)
    }
}

/// Random walks through `model` from `seed`, stopping at the first violation.
fn simulate<M>(model: M, seed: u64, steps: usize, depth: usize) -> ExitCode
where
    M: Model + Send + Sync + 'static,
    M::State: std::fmt::Debug + Clone + PartialEq + std::hash::Hash + Send + Sync,
    M::Action: std::fmt::Debug + Clone + PartialEq + Send + Sync,
{
    println!("search: random walks, seed {seed}, {steps} states, depth <= {depth}");
    let checker = model
        .checker()
        .target_state_count(steps)
        .target_max_depth(depth)
        .finish_when(stateright::HasDiscoveries::AnyFailures)
        .spawn_simulation(seed, stateright::UniformChooser);
    report(checker, Some(steps))
}

/// Serves stateright's explorer for `model` at `address` until the process is stopped.
fn explore<M>(model: M, address: &str) -> ExitCode
where
    M: Model + Send + Sync + 'static,
    M::State: std::fmt::Debug + Clone + PartialEq + std::hash::Hash + Send + Sync,
    M::Action: std::fmt::Debug + Clone + PartialEq + Send + Sync,
{
    println!("explorer: http://{address}");
    model.checker().serve(address);
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check {
            model: Which::Agents,
            bounds,
            dfs,
            depth,
            threads,
        } => {
            let config = bounds.agents(AgentsConfig::default());
            println!("model: agents; {config}");
            let seeded_bug = config.mutation.is_some();
            let depth = depth.unwrap_or(12);
            check(agents_model(config), seeded_bug, dfs, depth, threads)
        }
        Command::Simulate {
            model: Which::Agents,
            bounds,
            seed,
            steps,
            depth,
        } => {
            let larger = AgentsConfig {
                crashes: 2,
                reboots: 1,
                terms_max: 4,
                in_flight_max: 8,
                ..AgentsConfig::default()
            };
            let config = bounds.agents(larger);
            println!("model: agents; {config}");
            simulate(agents_model(config), seed, steps, depth)
        }
        Command::Explore {
            model: Which::Agents,
            bounds,
            address,
        } => {
            let config = bounds.agents(AgentsConfig::default());
            println!("model: agents; {config}");
            explore(agents_model(config), &address)
        }
        Command::Check {
            model: Which::Offers,
            bounds,
            dfs,
            depth,
            threads,
        } => {
            let config = bounds.offers(OffersConfig::default());
            println!("model: offers; {config}");
            let seeded_bug = config.mutation.is_some();
            let depth = depth.unwrap_or(10);
            check(offers_model(config), seeded_bug, dfs, depth, threads)
        }
        Command::Simulate {
            model: Which::Offers,
            bounds,
            seed,
            steps,
            depth,
        } => {
            let larger = OffersConfig {
                crashes: 2,
                terms_max: 4,
                lossy: true,
                duplicating: true,
                in_flight_max: 8,
                ..OffersConfig::default()
            };
            let config = bounds.offers(larger);
            println!("model: offers; {config}");
            simulate(offers_model(config), seed, steps, depth)
        }
        Command::Explore {
            model: Which::Offers,
            bounds,
            address,
        } => {
            let config = bounds.offers(OffersConfig::default());
            println!("model: offers; {config}");
            explore(offers_model(config), &address)
        }
        Command::Check {
            model: Which::Election,
            bounds,
            dfs,
            depth,
            threads,
        } => {
            let config = bounds.election(ElectionConfig::default());
            println!("model: election; {config}");
            let seeded_bug = config.mutation.is_some();
            let depth = depth.unwrap_or(12);
            check(election_model(config), seeded_bug, dfs, depth, threads)
        }
        Command::Simulate {
            model: Which::Election,
            bounds,
            seed,
            steps,
            depth,
        } => {
            let larger = ElectionConfig {
                ordered: true,
                lossy: true,
                masters: 5,
                crashes: 2,
                terms_max: 6,
                entries: 3,
                ..ElectionConfig::default()
            };
            let config = bounds.election(larger);
            println!("model: election; {config}");
            simulate(election_model(config), seed, steps, depth)
        }
        Command::Explore {
            model: Which::Election,
            bounds,
            address,
        } => {
            let config = bounds.election(ElectionConfig::default());
            println!("model: election; {config}");
            explore(election_model(config), &address)
        }
    }
}

/// Waits for `checker`, prints states, time and every property, and exits non-zero on a
/// violated safety property. `target_states` is a random walk's target, if it is one.
fn report<M, C>(checker: C, target_states: Option<usize>) -> ExitCode
where
    M: Model,
    M::State: std::fmt::Debug + Clone + PartialEq,
    M::Action: std::fmt::Debug + Clone + PartialEq,
    C: Checker<M>,
{
    let start = Instant::now();
    let mut last_print = Instant::now();
    while !checker.is_done() {
        std::thread::sleep(Duration::from_millis(50));
        if last_print.elapsed() >= Duration::from_secs(10) {
            println!(
                "  ... {} unique states, depth {}, {:.0?}",
                checker.unique_state_count(),
                checker.max_depth(),
                start.elapsed()
            );
            last_print = Instant::now();
        }
    }
    let checker = checker.join();
    let elapsed = start.elapsed();
    let states = checker.unique_state_count();
    println!(
        "unique states: {states}; total states: {}; max depth: {}; elapsed: {:.2?}; {:.0} states/s",
        checker.state_count(),
        checker.max_depth(),
        elapsed,
        states as f64 / elapsed.as_secs_f64()
    );
    // Stateright rebuilds a random walk's path by replaying action indices, which fails when
    // the order of an actor's timers differs between replays: then only the verdict is known.
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let discoveries =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| checker.discoveries()));
    std::panic::set_hook(quiet);
    let Ok(discoveries) = discoveries else {
        println!("  (the paths of the walks' discoveries could not be replayed)");
        // Walks stop at the first failure (`finish_when(AnyFailures)`), so a run that reached
        // its target found none.
        if target_states.is_some_and(|target| states < target) {
            println!("  a safety property was VIOLATED: rerun with the same seed to investigate");
            return ExitCode::FAILURE;
        }
        println!("  every safety property holds on these walks");
        return ExitCode::SUCCESS;
    };
    let mut violated = false;
    for property in checker.model().properties() {
        let found = discoveries.get(property.name);
        let verdict = match (&property.expectation, found) {
            (Expectation::Always | Expectation::Eventually, None) => "holds",
            (Expectation::Sometimes, Some(_)) => "holds (example found)",
            (Expectation::Sometimes, None) => "not reached",
            (Expectation::Always | Expectation::Eventually, Some(_)) => {
                violated = true;
                "VIOLATED"
            }
        };
        println!("  {:<50} {verdict}", property.name);
        if let (Expectation::Always | Expectation::Eventually, Some(path)) =
            (&property.expectation, found)
        {
            println!("    counterexample:");
            for (step, action) in path.clone().into_actions().iter().enumerate() {
                println!("      {step:>3}. {action:?}");
            }
        }
    }
    if violated {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
