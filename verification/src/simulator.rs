//! The seeded whole-cluster simulator: the real master, agent and scheduler machines on the
//! protocol's in-memory cluster ([`berth_protocol::testing::Cluster`]), driven through
//! crashes, restarts, partitions and task exits drawn from one seed, with every invariant of
//! DESIGN.md that the cluster's state shows checked after every step.
//!
//! ```text
//! cargo run --release -p berth-verification -- simulate --seed 7 --steps 100000
//! ```
//!
//! A failure names the invariant, the step and the seed; the same seed replays the same run.
//!
//! Checked after every step:
//!
//! * **E1** at most one live leader per term, and never two leaders of one term over the run;
//! * **A1** no task a framework holds as ended runs in an executor;
//! * **A2** a framework is never told of a task after its terminal state;
//! * **R1** on every agent the leader's outstanding offers and its tasks fit in the agent's
//!   resources, and no resource is in two offers;
//! * **R2/R3** every offered reserved resource (volumes included) is reserved for the
//!   offered framework's role;
//! * **R4** a volume that was written keeps its data (the workload never destroys one);
//! * **R5** no task is handed to an executor twice.
//!
//! Then every node is restarted, every link healed, and the cluster runs without faults
//! for [`SimulationConfig::settle`] of simulated time, until it has converged (DESIGN.md's
//! liveness, checked once at the end; the invariants above are still checked every
//! simulated second):
//!
//! * **L1** a leader is elected;
//! * **L2** every agent is registered with it, and admitted in its registry;
//! * **L3** every framework knows the truth about its tasks: a task an executor runs is
//!   `RUNNING` to its framework, and a task its framework still holds as live (its latest
//!   update not terminal) runs in an executor.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use berth_protocol::agent::AgentPhase;
use berth_protocol::ids::{ExecutorId, Principal, Role, TaskId, Term, VolumeId};
use berth_protocol::master::Master;
use berth_protocol::message::{OperationKind, TaskSpec};
use berth_protocol::operation::conversion;
use berth_protocol::registry::AgentStatus;
use berth_protocol::resources::{ContainerPath, PersistentVolume, Resources};
use berth_protocol::scheduler::{SchedulerAction, SchedulerEvent};
use berth_protocol::task::{TaskCommand, TaskState};
use berth_protocol::testing::Cluster;

use crate::SplitMix64;

/// The shape of a simulated cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimulationConfig {
    /// Masters (1, 3 or 5).
    pub masters: u8,
    /// Agents.
    pub agents: usize,
    /// Steps to run.
    pub steps: u64,
    /// A deliberately broken agent, to show that an invariant catches it.
    pub agent_mutation: Option<berth_protocol::agent::AgentMutation>,
    /// Deliberately broken masters, to show that an invariant catches them.
    pub master_mutation: Option<berth_protocol::master::Mutation>,
    /// Simulated time the healed cluster gets to converge after the last step (L1–L3);
    /// zero skips the check.
    pub settle: Duration,
}

/// Long enough for every retry to fire after the faults end: an agent's status update
/// backs off to 60 s, as does a scheduler's reconciliation of a task it cannot place.
pub const SETTLE_DEFAULT: Duration = Duration::from_secs(300);

impl Default for SimulationConfig {
    fn default() -> Self {
        SimulationConfig {
            masters: 3,
            agents: 4,
            steps: 10_000,
            agent_mutation: None,
            master_mutation: None,
            settle: SETTLE_DEFAULT,
        }
    }
}

/// A violated invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The seed of the run.
    pub seed: u64,
    /// The step at which it was seen.
    pub step: u64,
    /// Which invariant, and how.
    pub invariant: String,
    /// Whether it was seen while the healed cluster settled after the last step (L1–L3, or
    /// an invariant broken then).
    pub settling: bool,
}

impl fmt::Display for Violation {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (when, steps) = if self.settling {
            (format!("settling after step {}", self.step), self.step)
        } else {
            (format!("step {}", self.step), self.step + 1)
        };
        write!(
            formatter,
            "seed {}: {when}: {} (replay: cargo run --release -p berth-verification -- \
             simulate --seed {} --steps {steps})",
            self.seed, self.invariant, self.seed,
        )
    }
}

/// What a run did, for the report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimulationReport {
    /// Steps run.
    pub steps: u64,
    /// Simulated time.
    pub simulated: Duration,
    /// Faults injected, by kind.
    pub faults: BTreeMap<&'static str, u64>,
    /// Tasks that finished, as the frameworks saw it.
    pub tasks_finished: u64,
    /// Leaders elected (distinct terms).
    pub leaders: usize,
}

struct Simulation {
    cluster: Cluster,
    random: SplitMix64,
    masters: Vec<String>,
    agents: Vec<String>,
    schedulers: Vec<(String, Role)>,
    leaders: BTreeMap<Term, String>,
    written: BTreeSet<(String, String, String)>,
    next_task: u64,
    report: SimulationReport,
}

/// Runs `config` from `seed`; returns the report, or the first violation.
pub fn simulate(seed: u64, config: SimulationConfig) -> Result<SimulationReport, Violation> {
    let mut simulation = Simulation::new(seed, config);
    for step in 0..config.steps {
        simulation.step();
        if let Err(invariant) = simulation.check() {
            return Err(Violation {
                seed,
                step,
                invariant,
                settling: false,
            });
        }
        simulation.report.steps = step + 1;
    }
    if !config.settle.is_zero() {
        simulation
            .settle(config.settle)
            .map_err(|invariant| Violation {
                seed,
                step: config.steps,
                invariant,
                settling: true,
            })?;
    }
    simulation.report.simulated = simulation.cluster.now();
    simulation.report.leaders = simulation.leaders.len();
    Ok(simulation.report)
}

impl Simulation {
    fn new(seed: u64, config: SimulationConfig) -> Simulation {
        let mut cluster = Cluster::with_seed(seed);
        // One message in 50 arrives twice, the copy up to a second later.
        cluster.duplicate_one_in(50);
        cluster.add_masters_with(config.masters, |master| match config.master_mutation {
            Some(mutation) => master.with_mutation(mutation),
            None => master,
        });
        let masters = (1..=config.masters).map(|id| format!("m{id}")).collect();
        let mut agents = Vec::new();
        for index in 0..config.agents {
            let name = format!("a{index}");
            // Every other agent has cpus statically reserved for `ops`.
            let resources = if index % 2 == 0 {
                "cpus:4;mem:1024;disk:1000"
            } else {
                "cpus:2;mem:1024;disk:1000;cpus(ops):2"
            };
            cluster.add_agent_with(&name, resources, |agent| match config.agent_mutation {
                Some(mutation) => agent.with_mutation(mutation),
                None => agent,
            });
            agents.push(name);
        }
        let schedulers = vec![
            ("web".to_string(), Role::new("web").expect("valid")),
            ("ops".to_string(), Role::new("ops").expect("valid")),
        ];
        for (name, role) in &schedulers {
            cluster.add_scheduler(name, role.as_str(), |config| config);
        }
        Simulation {
            cluster,
            random: SplitMix64::new(seed),
            masters,
            agents,
            schedulers,
            leaders: BTreeMap::new(),
            written: BTreeSet::new(),
            next_task: 0,
            report: SimulationReport::default(),
        }
    }

    fn count(&mut self, fault: &'static str) {
        *self.report.faults.entry(fault).or_default() += 1;
    }

    fn pick<'a>(&mut self, names: &'a [String]) -> &'a str {
        &names[self.random.below(names.len() as u64) as usize]
    }

    /// One step: time passes, and maybe one fault or one piece of work.
    fn step(&mut self) {
        let advance = Duration::from_millis(1 + self.random.below(300));
        self.cluster.run_for(advance);
        let masters = self.masters.clone();
        let agents = self.agents.clone();
        match self.random.below(100) {
            0..=2 => {
                // Crash a master, keeping a majority up.
                let master = self.pick(&masters).to_string();
                let up = masters.iter().filter(|m| self.cluster.is_up(m)).count();
                if self.cluster.is_up(&master) && up > masters.len() / 2 + 1 {
                    self.cluster.crash(&master);
                    self.count("master crash");
                }
            }
            3..=5 => {
                let master = self.pick(&masters).to_string();
                if !self.cluster.is_up(&master) {
                    self.cluster.restart(&master);
                    self.count("master restart");
                }
            }
            6..=8 => {
                let agent = self.pick(&agents).to_string();
                if self.cluster.is_up(&agent) {
                    self.cluster.crash(&agent);
                    self.count("agent crash");
                } else {
                    self.cluster.restart(&agent);
                    self.count("agent restart");
                }
            }
            9..=10 => {
                let mut nodes = masters.clone();
                nodes.extend(agents.iter().cloned());
                let a = self.pick(&nodes).to_string();
                let b = self.pick(&nodes).to_string();
                if a != b {
                    self.cluster.partition(&a, &b);
                    self.count("partition");
                }
            }
            11..=14 => {
                self.cluster.heal();
                self.count("heal");
            }
            15..=29 => self.finish_a_task(),
            30..=39 => self.submit_a_task(),
            _ => {}
        }
        // Restart what is down now and then, so the cluster keeps working.
        if self.random.below(20) == 0 {
            for node in masters.iter().chain(agents.iter()) {
                if !self.cluster.is_up(node) {
                    self.cluster.restart(node);
                }
            }
            self.cluster.heal();
        }
    }

    fn finish_a_task(&mut self) {
        let running: Vec<(String, String)> =
            self.cluster
                .agents()
                .iter()
                .flat_map(|(agent, host)| {
                    host.executors.values().flat_map(move |executor| {
                        executor.running.iter().map(move |task| {
                            (agent.as_str().to_string(), task.as_str().to_string())
                        })
                    })
                })
                .collect();
        if running.is_empty() {
            return;
        }
        let (agent, task) = running[self.random.below(running.len() as u64) as usize].clone();
        if !self.cluster.is_up(&agent) {
            return;
        }
        let success = self.random.below(4) != 0;
        self.cluster.finish_task(&agent, &task, success);
        self.count("task exit");
    }

    fn submit_a_task(&mut self) {
        let (name, role) = self.schedulers[self.random.below(2) as usize].clone();
        self.next_task += 1;
        let task = TaskId::new(&format!("t{}", self.next_task)).expect("valid");
        let cpus = if role.as_str() == "ops" && self.random.below(2) == 0 {
            "cpus(ops):1"
        } else {
            "cpus:1"
        };
        let spec = |resources: Resources| TaskSpec {
            task: task.clone(),
            executor: ExecutorId::new(task.as_str()).expect("valid"),
            resources,
            command: TaskCommand::new("work").expect("valid"),
        };
        let event = if role.as_str() == "web" && self.random.below(3) == 0 {
            // On the role's volume `v`: reuse it if an offer holds it, else reserve and
            // create it.
            let principal = Principal::new(role.as_str()).expect("valid");
            let reserve =
                OperationKind::Reserve(Resources::parse("cpus:1;disk:10").expect("valid"));
            let reserved = conversion(&reserve, &role, &principal)
                .expect("reservable")
                .produced;
            let disk = reserved.filter(|key| key.name.as_str() == "disk");
            let create = OperationKind::CreateVolume {
                source: disk.clone(),
                volume: PersistentVolume {
                    id: VolumeId::new("v").expect("valid"),
                    container_path: ContainerPath::new("data").expect("valid"),
                },
            };
            let with_volume = conversion(&create, &role, &principal)
                .expect("a volume")
                .produced;
            let resources = reserved
                .checked_sub(&disk)
                .and_then(|rest| rest.checked_add(&with_volume))
                .expect("the same amounts");
            let launch = OperationKind::Launch(spec(resources));
            SchedulerEvent::SubmitFirstFitting(vec![
                vec![launch.clone()],
                vec![reserve, create, launch],
            ])
        } else {
            SchedulerEvent::Launch(spec(Resources::parse(cpus).expect("valid")))
        };
        self.cluster.scheduler_event(&name, event);
        self.count("task submitted");
    }

    /// Heals the cluster and runs it without faults until it converges (L1–L3) or `limit`
    /// passes, checking the invariants every simulated second.
    fn settle(&mut self, limit: Duration) -> Result<(), String> {
        for node in self.masters.iter().chain(self.agents.iter()) {
            if !self.cluster.is_up(node) {
                self.cluster.restart(node);
            }
        }
        self.cluster.heal();
        let end = self.cluster.now() + limit;
        loop {
            self.check()?;
            let converged = converged(&self.cluster);
            if converged.is_ok() || self.cluster.now() >= end {
                return converged;
            }
            self.cluster.run_for(Duration::from_secs(1));
        }
    }

    /// Every invariant; the first violated, described.
    fn check(&mut self) -> Result<(), String> {
        self.check_leaders()?;
        self.write_volumes();
        self.check_tasks()?;
        self.check_offers()?;
        Ok(())
    }

    fn check_leaders(&mut self) -> Result<(), String> {
        let mut terms = BTreeSet::new();
        for (at, node) in self.cluster.masters() {
            let Some(master) = node.machine().filter(|master| master.is_leader()) else {
                continue;
            };
            if !terms.insert(master.term()) {
                return Err(format!("E1: two live leaders in term {}", master.term()));
            }
            match self.leaders.get(&master.term()) {
                Some(known) if known != at.as_str() => {
                    return Err(format!(
                        "E1: {known} and {at} both led term {}",
                        master.term()
                    ));
                }
                Some(_) => {}
                None => {
                    self.leaders.insert(master.term(), at.as_str().to_string());
                }
            }
        }
        Ok(())
    }

    /// A running task on a volume writes to it: the data R4 protects.
    fn write_volumes(&mut self) {
        let mut writes = Vec::new();
        for (agent, host) in self.cluster.agents() {
            for (role, volume) in host.volumes.keys() {
                let runs_on_it = host
                    .executors
                    .values()
                    .any(|executor| !executor.running.is_empty());
                if runs_on_it {
                    writes.push((
                        agent.as_str().to_string(),
                        role.to_string(),
                        volume.to_string(),
                    ));
                }
            }
        }
        for (agent, role, volume) in writes {
            if self
                .written
                .insert((agent.clone(), role.clone(), volume.clone()))
            {
                self.cluster.write_volume(&agent, &role, &volume, b"data");
            }
        }
    }

    fn check_tasks(&mut self) -> Result<(), String> {
        let running: BTreeSet<String> = self
            .cluster
            .agents()
            .values()
            .flat_map(|host| host.executors.values())
            .flat_map(|executor| {
                executor
                    .running
                    .iter()
                    .map(|task| task.as_str().to_string())
            })
            .collect();
        let mut finished = 0;
        for (name, host) in self.cluster.schedulers() {
            let mut ended: BTreeSet<String> = BTreeSet::new();
            for action in &host.actions {
                if let SchedulerAction::Status { task, state, .. } = action {
                    if ended.contains(task.as_str()) {
                        return Err(format!(
                            "A2: {name} was told {task} is {state} after its terminal state"
                        ));
                    }
                    if state.is_terminal() {
                        ended.insert(task.as_str().to_string());
                        if *state == TaskState::Finished {
                            finished += 1;
                        }
                    }
                }
            }
            if let Some(task) = ended.iter().find(|task| running.contains(*task)) {
                return Err(format!("A1: {name} holds {task} as ended while it runs"));
            }
        }
        self.report.tasks_finished = finished;
        for (agent, host) in self.cluster.agents() {
            if let Some(((_, task), count)) = host.launches.iter().find(|(_, count)| **count > 1) {
                return Err(format!("R5: {task} was launched {count} times on {agent}"));
            }
        }
        for (agent, role, volume) in &self.written {
            if self.cluster.read_volume(agent, role, volume).is_none() {
                return Err(format!(
                    "R4: volume {role}/{volume} on {agent} lost its data"
                ));
            }
        }
        Ok(())
    }

    fn check_offers(&self) -> Result<(), String> {
        for node in self.cluster.masters().values() {
            let Some(master) = node.machine().filter(|master| master.is_leader()) else {
                continue;
            };
            check_leader_offers(master)?;
        }
        Ok(())
    }
}

/// L1–L3: the first way in which the cluster has not converged, described.
fn converged(cluster: &Cluster) -> Result<(), String> {
    let leader = cluster.leader().ok_or("L1: no leader")?;
    let master = cluster.masters()[&leader]
        .machine()
        .ok_or("L1: the leader is down")?;
    let directory = master.agent_directory().ok_or("L1: no leader")?;
    for (at, host) in cluster.agents() {
        let agent = host.node().machine().ok_or("L2: an agent is down")?;
        let registered = agent.id().filter(|id| {
            master
                .registry()
                .agents()
                .get(id)
                .is_some_and(|record| record.status == AgentStatus::Admitted)
                && directory
                    .agents()
                    .get(id)
                    .is_some_and(|view| view.registered)
        });
        match (registered, agent.phase()) {
            (Some(_), AgentPhase::Registered { leader: with, term })
                if *with == leader && *term == master.term() => {}
            (_, phase) => {
                return Err(format!(
                    "L2: {at} is not registered with {leader} (term {}): {phase:?}",
                    master.term()
                ));
            }
        }
    }
    let running: BTreeSet<&str> = cluster
        .agents()
        .values()
        .flat_map(|host| host.executors.values())
        .flat_map(|executor| executor.running.iter().map(TaskId::as_str))
        .collect();
    for (name, host) in cluster.schedulers() {
        let mut latest: BTreeMap<&str, TaskState> = BTreeMap::new();
        for action in &host.actions {
            if let SchedulerAction::Status { task, state, .. } = action {
                latest.insert(task.as_str(), *state);
            }
        }
        for (task, state) in &latest {
            let runs = running.contains(task);
            if runs && *state != TaskState::Running {
                return Err(format!("L3: {task} runs, but {name} holds it {state}"));
            }
            if !runs && !state.is_terminal() {
                return Err(format!(
                    "L3: {name} holds {task} {state}, but no executor runs it"
                ));
            }
        }
    }
    for task in &running {
        if !cluster
            .schedulers()
            .values()
            .any(|host| host.states_of(task).last() == Some(&TaskState::Running))
        {
            return Err(format!(
                "L3: {task} runs, but no framework holds it RUNNING"
            ));
        }
    }
    Ok(())
}

/// R1–R3 on one leader's soft state.
fn check_leader_offers(master: &Master) -> Result<(), String> {
    let (Some(agents), Some(frameworks)) = (master.agent_directory(), master.framework_directory())
    else {
        return Ok(());
    };
    for (agent, view) in agents.agents() {
        let Some(total) = view.total.clone().or_else(|| {
            master
                .registry()
                .agents()
                .get(agent)
                .map(|record| record.info.resources.clone())
        }) else {
            continue;
        };
        let mut taken = Resources::new();
        for task in view.tasks.values().filter(|task| !task.state.is_terminal()) {
            taken = taken
                .checked_add(&task.resources)
                .map_err(|error| format!("R1: tasks on {agent} overlap: {error}"))?;
        }
        for (id, offer) in frameworks
            .offers()
            .iter()
            .filter(|(_, offer)| offer.agent == *agent)
        {
            taken = taken
                .checked_add(&offer.resources)
                .map_err(|error| format!("R1: offer {id} overlaps on {agent}: {error}"))?;
            let role = master
                .registry()
                .frameworks()
                .get(&offer.framework)
                .map(|record| record.info.role.clone());
            if let Some(role) = role
                && offer
                    .resources
                    .keys()
                    .any(|key| !key.reservation.is_allocatable_to(&role))
            {
                return Err(format!(
                    "R2/R3: offer {id} gives {} resources reserved for another role",
                    offer.framework
                ));
            }
        }
        if view.registered && !total.contains(&taken) {
            return Err(format!(
                "R1: on {agent}, offers and tasks {taken} exceed the agent's {total}"
            ));
        }
    }
    Ok(())
}
