//! The agents model: a master, an agent with its executors, and a framework, through master
//! crashes (a new term, soft state lost), agent-process crashes (executors survive), a host
//! reboot, and a lossy, duplicating, reordering network.
//!
//! The master, the agent and the scheduler run the real protocol code. The agent runs inside
//! an [`AgentHost`]: the host plays the node and the executors. It carries out the agent's
//! actions (start an executor, launch, kill, destroy) and feeds back the executors' reports;
//! its executors are part of what it saves, so they outlive a crash of the agent process, and
//! reconnect (a timer each) when it comes back. A host reboot (a timer, at most `reboots`
//! times) kills every executor and boots the agent on a new boot id. A task's exit is a timer.
//!
//! Properties (DESIGN.md's names):
//!
//! * **A1** no task is reported terminal (to its framework, or recorded so by the master)
//!   while an executor still runs it;
//! * **A2** every update is on the agent's disk before it is sent; a task's updates reach its
//!   framework in order and without gaps, nothing follows a terminal update, and an update id
//!   never names two different updates;
//! * **A3** once a restarted agent has recovered, every task a surviving executor runs is
//!   known to it and not terminal;
//! * **E3** the agent never acts on a command of a lower term than the highest it has seen;
//! * liveness, as `sometimes`: the task reaches RUNNING and the framework's acknowledgement
//!   reaches the agent; the agent re-registers with a leader of a later term after the
//!   master crashed; the task finishes and its end is acknowledged.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use berth_protocol::agent::{
    Agent, AgentAction, AgentConfig, AgentDurable, AgentEvent, AgentMutation, AgentPhase,
    AgentRecord, AgentTimer,
};
use berth_protocol::bounded::{BoundedVec, Name};
use berth_protocol::ids::{
    BootId, ExecutorId, FrameworkId, MasterId, OperationId, Principal, Role, TaskId, VolumeId,
};
use berth_protocol::master::{Master, MasterConfig};
use berth_protocol::message::{ApplyOperations, Message, StatusSource, TaskSpec};
use berth_protocol::registry::{AgentInfo, FrameworkInfo};
use berth_protocol::resources::Resources;
use berth_protocol::scheduler::{Scheduler, SchedulerConfig};
use berth_protocol::task::{TaskCommand, TaskState};
use berth_protocol::{Address, Command, Machine, Outbox};
use stateright::Expectation;
use stateright::actor::{
    Actor, ActorModel, ActorModelState, Envelope, Id, LossyNetwork, Network, Out,
};

use crate::{Directory, Either, MachineActor, MachineState, Roles, Shared, SharedActor};

/// The bounds and faults of an agents model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AgentsConfig {
    /// Actors (master, agent host, scheduler) that may be down at once.
    pub crashes: usize,
    /// Host reboots.
    pub reboots: u8,
    /// The highest master term explored (each master crash raises it by one).
    pub terms_max: u64,
    /// Whether the network may lose messages.
    pub lossy: bool,
    /// Whether the network may deliver a message more than once.
    pub duplicating: bool,
    /// The most messages in flight at once.
    pub in_flight_max: usize,
    /// A deliberately broken agent, to watch a property catch it.
    pub mutation: Option<AgentMutation>,
}

impl Default for AgentsConfig {
    /// The default run: one crash at a time, no reboot, terms up to 2 (one master crash), a
    /// lossy, duplicating, reordering network with at most 4 messages in flight.
    fn default() -> Self {
        AgentsConfig {
            crashes: 1,
            reboots: 0,
            terms_max: 2,
            lossy: true,
            duplicating: true,
            in_flight_max: 4,
            mutation: None,
        }
    }
}

impl std::fmt::Display for AgentsConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "1 master, 1 agent, 1 framework; crashes at once {}; reboots {}; terms <= {}; \
             network: {}, {}, reordering, <= {} in flight",
            self.crashes,
            self.reboots,
            self.terms_max,
            if self.lossy { "lossy" } else { "lossless" },
            if self.duplicating {
                "duplicating"
            } else {
                "non-duplicating"
            },
            self.in_flight_max,
        )?;
        if let Some(mutation) = self.mutation {
            write!(formatter, "; SEEDED BUG {mutation:?}")?;
        }
        Ok(())
    }
}

/// An executor, as the host runs it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Executor {
    /// The tasks it runs.
    pub running: BTreeSet<TaskId>,
    /// Whether it is connected to the current agent process.
    pub connected: bool,
}

/// What survives an agent-process crash: the checkpoint, the executors and the boot count.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct HostStorage {
    /// The agent's checkpoint.
    pub durable: AgentDurable,
    /// The executors, by framework and executor id.
    pub executors: BTreeMap<(FrameworkId, ExecutorId), Executor>,
    /// How many times the host rebooted.
    pub boots: u8,
    /// The host's disk and what the model remembers about it (left empty unless the host
    /// tracks resources).
    pub ghosts: HostGhosts,
}

/// The persistent volumes on a host's disk, and the history of launches and operations that
/// R4 and R5 are checked against. Ghost state: no machine reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct HostGhosts {
    /// Each volume directory on disk, with its data: the tasks that wrote to it, in order.
    /// Every task that mounts a volume reads it and appends its own id.
    pub volumes: BTreeMap<(Role, VolumeId), Vec<TaskId>>,
    /// What each task read from its volumes when it started.
    pub reads: BTreeMap<TaskId, Vec<TaskId>>,
    /// Volumes a `DestroyVolume` for reached this host: the only ones it may delete (R4).
    pub destroys: BTreeSet<(Role, VolumeId)>,
    /// Every task started, with how many times (R5).
    pub launches: BTreeMap<(FrameworkId, TaskId), u8>,
    /// Every resource operation applied, with how many times (R5).
    pub applied: BTreeMap<(FrameworkId, OperationId), u8>,
    /// The first R4 violation seen.
    pub data_lost: Option<String>,
    /// The first R5 violation seen.
    pub applied_twice: Option<String>,
}

/// The host's state: the agent process and what outlives it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostState {
    /// The agent.
    pub agent: Agent,
    /// Its checkpoint, executors and boots.
    pub storage: HostStorage,
    /// Whether the agent ever acted on a command of a lower term than it had seen (E3).
    pub obeyed_lower_term: bool,
}

/// The host's timers: the agent's, and the world's.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HostTimer {
    /// One of the agent's timers.
    Agent(AgentTimer),
    /// A surviving executor reconnects to the agent process.
    Reconnect(FrameworkId, ExecutorId),
    /// A task's command exits with status 0.
    TaskExits(FrameworkId, ExecutorId, TaskId),
    /// The host reboots.
    Reboot,
}

/// The node and executors around an agent.
#[derive(Clone, Debug)]
pub struct AgentHost {
    config: AgentConfig,
    directory: Directory,
    reboots: u8,
    /// Whether to keep [`HostGhosts`]: volumes, launches and operations.
    track_resources: bool,
    /// Whether the agent's timeouts fire (false: every message arrives in time).
    timeouts: bool,
}

/// The boot id of a host's `boots`-th boot.
pub fn boot_id(boots: u8) -> BootId {
    BootId::new(&format!("boot-{boots}")).expect("valid boot id")
}

impl AgentHost {
    /// The host of an agent with `config`, reaching its peers through `directory`, that
    /// reboots at most `reboots` times and keeps [`HostGhosts`] if `track_resources`.
    pub fn new(
        config: AgentConfig,
        directory: Directory,
        reboots: u8,
        track_resources: bool,
    ) -> AgentHost {
        AgentHost {
            config,
            directory,
            reboots,
            track_resources,
            timeouts: true,
        }
    }

    /// Leaves out the agent's timeouts, as if every message arrived in time: the host's own
    /// events (a task's exit, an executor reconnecting, a reboot) still happen. Any path of
    /// such a model is a path of the full one, so it finds liveness examples on shorter
    /// searches.
    #[must_use]
    pub fn without_timeouts(mut self) -> AgentHost {
        self.timeouts = false;
        self
    }

    /// Runs one input of the agent and everything it causes on the host, to the end.
    fn step(
        &self,
        state: &mut HostState,
        out: &mut Out<Self>,
        input: impl FnOnce(&mut Agent, &mut Outbox<Agent>),
    ) -> bool {
        let mut outbox = Outbox::new();
        input(&mut state.agent, &mut outbox);
        self.execute(state, outbox, out)
    }

    /// Carries out an outbox; executors' reports are fed back as events until none is left.
    /// Returns whether the storage changed.
    fn execute(&self, state: &mut HostState, outbox: Outbox<Agent>, out: &mut Out<Self>) -> bool {
        let mut saved = false;
        let mut pending: VecDeque<Outbox<Agent>> = VecDeque::from([outbox]);
        while let Some(mut outbox) = pending.pop_front() {
            let mut events = Vec::new();
            for command in outbox.drain() {
                match command {
                    Command::Send { to, message } => {
                        if let Some(id) = self.directory.id(&to) {
                            out.send(id, message);
                        }
                    }
                    Command::SetTimer { timer, duration } => {
                        if self.timeouts {
                            let end = duration.max.max(duration.min + Duration::from_millis(1));
                            out.set_timer(HostTimer::Agent(timer), duration.min..end);
                        }
                    }
                    Command::CancelTimer(timer) => out.cancel_timer(HostTimer::Agent(timer)),
                    Command::Persist(record) => {
                        if self.track_resources {
                            record_applied(&mut state.storage.ghosts, &record);
                        }
                        Agent::apply(&mut state.storage.durable, &record);
                        saved = true;
                    }
                    Command::Note(_) => {}
                    Command::Act(action) => {
                        saved |= self.act(state, action, &mut events, out);
                    }
                }
            }
            for event in events {
                let mut next = Outbox::new();
                state.agent.handle_event(event, &mut next);
                pending.push_back(next);
            }
        }
        saved
    }

    /// What the node and the executors do for an action.
    fn act(
        &self,
        state: &mut HostState,
        action: AgentAction,
        events: &mut Vec<AgentEvent>,
        out: &mut Out<Self>,
    ) -> bool {
        let executors = &mut state.storage.executors;
        match action {
            AgentAction::StartExecutor {
                framework,
                executor,
            } => {
                executors.entry((framework, executor)).or_insert(Executor {
                    running: BTreeSet::new(),
                    connected: true,
                });
            }
            AgentAction::LaunchTask {
                framework,
                executor,
                task,
                resources,
                ..
            } => {
                let Some(running) = executors.get_mut(&(framework, executor.clone())) else {
                    return false;
                };
                running.running.insert(task.clone());
                if self.track_resources {
                    start_task(&mut state.storage.ghosts, framework, &task, &resources);
                }
                events.push(AgentEvent::TaskStateReported {
                    framework,
                    executor: executor.clone(),
                    task: task.clone(),
                    state: TaskState::Running,
                    reason: None,
                });
                out.set_timer(
                    HostTimer::TaskExits(framework, executor, task),
                    Duration::ZERO..Duration::from_millis(1),
                );
            }
            AgentAction::KillTask {
                framework,
                executor,
                task,
            } => {
                let Some(running) = executors.get_mut(&(framework, executor.clone())) else {
                    return false;
                };
                if running.running.remove(&task) {
                    events.push(AgentEvent::TaskStateReported {
                        framework,
                        executor,
                        task,
                        state: TaskState::Killed,
                        reason: None,
                    });
                }
            }
            AgentAction::DestroyExecutor {
                framework,
                executor,
            }
            | AgentAction::ShutdownExecutor {
                framework,
                executor,
            } => {
                executors.remove(&(framework, executor));
            }
            AgentAction::CreateVolumeDirectory { role, volume } => {
                if !self.track_resources {
                    return false;
                }
                // `mkdir -p`: creating it again keeps its data.
                state
                    .storage
                    .ghosts
                    .volumes
                    .entry((role, volume))
                    .or_default();
            }
            AgentAction::DeleteVolumeDirectory { role, volume } => {
                if !self.track_resources {
                    return false;
                }
                let ghosts = &mut state.storage.ghosts;
                let key = (role, volume);
                if !ghosts.destroys.contains(&key) {
                    ghosts.data_lost.get_or_insert_with(|| {
                        format!(
                            "volume {} of role {} deleted without a DestroyVolume",
                            key.1, key.0
                        )
                    });
                }
                ghosts.volumes.remove(&key);
            }
        }
        true
    }

    /// Boots the agent from `storage`; the executors in it survived and will reconnect.
    fn boot(&self, mut storage: HostStorage, out: &mut Out<Self>) -> HostState {
        let config = self.config.clone().with_boot_id(boot_id(storage.boots));
        let mut outbox = Outbox::new();
        let agent = Agent::boot(&config, &storage.durable, &mut outbox)
            .unwrap_or_else(|error| panic!("the agent refused its checkpoint: {error}"));
        for ((framework, executor), running) in &mut storage.executors {
            running.connected = false;
            out.set_timer(
                HostTimer::Reconnect(*framework, executor.clone()),
                Duration::ZERO..Duration::from_millis(1),
            );
        }
        let mut state = HostState {
            agent,
            storage,
            obeyed_lower_term: false,
        };
        self.execute(&mut state, outbox, out);
        out.save(state.storage.clone());
        state
    }
}

/// A task starts: it reads each of its volumes and writes its own id to it. A volume whose
/// directory is gone lost its data (R4); a task started twice breaks R5.
fn start_task(
    ghosts: &mut HostGhosts,
    framework: FrameworkId,
    task: &TaskId,
    resources: &Resources,
) {
    let launches = ghosts
        .launches
        .entry((framework, task.clone()))
        .or_default();
    *launches += 1;
    if *launches > 1 {
        ghosts
            .applied_twice
            .get_or_insert_with(|| format!("task {task} of framework {framework} started twice"));
    }
    for (key, _) in resources.volumes() {
        let (Some(role), Some(volume)) = (key.reservation.role(), &key.volume) else {
            continue;
        };
        match ghosts.volumes.get_mut(&(role.clone(), volume.id.clone())) {
            Some(data) => {
                ghosts.reads.insert(task.clone(), data.clone());
                data.push(task.clone());
            }
            None => {
                ghosts.data_lost.get_or_insert_with(|| {
                    format!(
                        "task {task} mounts volume {} but its data is gone",
                        volume.id
                    )
                });
            }
        }
    }
}

/// Counts the applications of each resource operation (R5).
fn record_applied(ghosts: &mut HostGhosts, record: &AgentRecord) {
    if let AgentRecord::OperationApplied {
        framework,
        operation,
        ..
    } = record
    {
        let applied = ghosts
            .applied
            .entry((*framework, operation.clone()))
            .or_default();
        *applied += 1;
        if *applied > 1 {
            ghosts.applied_twice.get_or_insert_with(|| {
                format!("operation {operation} of framework {framework} applied twice")
            });
        }
    }
}

/// Notes the volumes that operations arriving at the host destroy: the only ones the agent
/// may delete (R4).
fn record_destroys(ghosts: &mut HostGhosts, apply: &ApplyOperations) {
    for operation in apply.operations.iter() {
        for (key, _) in operation.consumed.volumes() {
            let still_there = operation.produced.keys().any(|kept| kept == key);
            if let (false, Some(role), Some(volume)) =
                (still_there, key.reservation.role(), &key.volume)
            {
                ghosts.destroys.insert((role.clone(), volume.id.clone()));
            }
        }
    }
}

/// The term of a command from a master, for fencing.
fn command_term(message: &Message) -> Option<berth_protocol::ids::Term> {
    match message {
        Message::RunTask(run) => Some(run.term),
        Message::KillTask(kill) => Some(kill.term),
        Message::StatusAcknowledgement(acknowledgement) => Some(acknowledgement.term),
        Message::ShutdownAgent(shutdown) => Some(shutdown.term),
        Message::AgentRegistered(answer) | Message::AgentReregistered(answer) => Some(answer.term),
        Message::LeaderChanged(changed) => Some(changed.term),
        Message::Ping(ping) => Some(ping.term),
        _ => None,
    }
}

impl Actor for AgentHost {
    type Msg = Message;
    type Timer = HostTimer;
    type State = HostState;
    type Storage = HostStorage;
    type Random = ();

    fn on_start(&self, _id: Id, storage: &Option<HostStorage>, out: &mut Out<Self>) -> HostState {
        let storage = storage.clone().unwrap_or_default();
        if storage.boots < self.reboots {
            out.set_timer(HostTimer::Reboot, Duration::ZERO..Duration::from_millis(1));
        }
        self.boot(storage, out)
    }

    fn on_msg(
        &self,
        _id: Id,
        state: &mut Cow<HostState>,
        src: Id,
        msg: Message,
        out: &mut Out<Self>,
    ) {
        let from = self.directory.address(src).clone();
        let mut next = state.as_ref().clone();
        if self.track_resources
            && let Message::ApplyOperations(apply) = &msg
        {
            record_destroys(&mut next.storage.ghosts, apply);
        }
        let highest = next.agent.highest_term();
        let stale = command_term(&msg).is_some_and(|term| term < highest);
        // Only a stale command needs the state before it, to tell whether the agent acted.
        let before = stale.then(|| (next.agent.clone(), next.storage.clone()));
        let commands_before = out.len();
        let saved = self.step(&mut next, out, |agent, outbox| {
            agent.handle_message(&from, msg, outbox);
        });
        if let Some((agent, storage)) = before {
            let acted =
                out.len() > commands_before || next.agent != agent || next.storage != storage;
            if acted {
                next.obeyed_lower_term = true;
            }
        }
        if saved {
            out.save(next.storage.clone());
        }
        if next != **state {
            *state = Cow::Owned(next);
        }
    }

    fn on_timeout(
        &self,
        _id: Id,
        state: &mut Cow<HostState>,
        timer: &HostTimer,
        out: &mut Out<Self>,
    ) {
        let mut next = state.as_ref().clone();
        let saved = match timer {
            HostTimer::Agent(timer) => {
                let timer = timer.clone();
                self.step(&mut next, out, |agent, outbox| {
                    agent.handle_timer(timer, outbox);
                })
            }
            HostTimer::Reconnect(framework, executor) => {
                let key = (*framework, executor.clone());
                let Some(running) = next.storage.executors.get_mut(&key) else {
                    return;
                };
                if running.connected {
                    return;
                }
                running.connected = true;
                let tasks: Vec<TaskId> = running.running.iter().cloned().collect();
                for task in &tasks {
                    out.set_timer(
                        HostTimer::TaskExits(*framework, executor.clone(), task.clone()),
                        Duration::ZERO..Duration::from_millis(1),
                    );
                }
                let event = AgentEvent::ExecutorConnected {
                    framework: *framework,
                    executor: executor.clone(),
                    tasks: BoundedVec::from_vec(tasks).expect("few tasks"),
                };
                self.step(&mut next, out, |agent, outbox| {
                    agent.handle_event(event, outbox);
                });
                true
            }
            HostTimer::TaskExits(framework, executor, task) => {
                let key = (*framework, executor.clone());
                let Some(running) = next.storage.executors.get_mut(&key) else {
                    return;
                };
                if !running.connected || !running.running.remove(task) {
                    return;
                }
                let event = AgentEvent::TaskStateReported {
                    framework: *framework,
                    executor: executor.clone(),
                    task: task.clone(),
                    state: TaskState::Finished,
                    reason: None,
                };
                self.step(&mut next, out, |agent, outbox| {
                    agent.handle_event(event, outbox);
                });
                true
            }
            HostTimer::Reboot => {
                let mut storage = next.storage.clone();
                storage.executors.clear();
                storage.boots += 1;
                if storage.boots < self.reboots {
                    out.set_timer(HostTimer::Reboot, Duration::ZERO..Duration::from_millis(1));
                }
                let obeyed = next.obeyed_lower_term;
                next = self.boot(storage, out);
                next.obeyed_lower_term = obeyed;
                false
            }
        };
        if saved {
            out.save(next.storage.clone());
        }
        if next != **state {
            *state = Cow::Owned(next);
        }
    }

    fn name(&self) -> String {
        "AgentHost".to_string()
    }
}

/// What the model remembers about status updates across crashes (A2).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AgentsHistory {
    /// Every update the agent sent, by task: its id and state.
    pub sent: BTreeMap<TaskId, BTreeMap<u64, TaskState>>,
    /// The update ids that reached the framework, by task.
    pub arrived: BTreeMap<TaskId, BTreeSet<u64>>,
    /// Tasks whose terminal update reached the framework.
    pub ended: BTreeSet<TaskId>,
    /// The first A2 violation seen, if any.
    pub violation: Option<String>,
    /// The master's highest term, ever.
    pub master_terms: BTreeSet<u64>,
}

/// The model's actors: the master, then the agent host, then the scheduler.
pub type AgentsActor =
    SharedActor<Roles<MachineActor<Master>, Roles<AgentHost, MachineActor<Scheduler>>>>;
/// The agents model.
pub type AgentsModel = ActorModel<AgentsActor, AgentsConfig, Shared<AgentsHistory>>;
/// One state of the agents model.
pub type AgentsState = ActorModelState<AgentsActor, Shared<AgentsHistory>>;

const MASTER: usize = 0;
const HOST: usize = 1;
const SCHEDULER: usize = 2;

fn address(text: &str) -> Address {
    Address::new(text).expect("valid address")
}

fn task_id() -> TaskId {
    TaskId::new("t1").expect("valid task id")
}

/// Builds the model for `config`.
pub fn agents_model(config: AgentsConfig) -> AgentsModel {
    let master = address("m1");
    let agent = address("a1");
    let scheduler = address("s1");
    let directory = Directory::new(vec![master.clone(), agent.clone(), scheduler.clone()]);
    let members = BTreeMap::from([(MasterId(1), master.clone())]);
    let master_config = MasterConfig::new(MasterId(1), members)
        .expect("a valid membership")
        .with_max_missed_pings(1);
    let info = AgentInfo {
        hostname: Name::new("host").expect("valid"),
        resources: Resources::parse("cpus:1").expect("valid"),
    };
    let agent_config = AgentConfig::new(vec![master.clone()], agent, info, boot_id(0))
        .expect("a valid agent configuration");
    let agent_config = match config.mutation {
        Some(mutation) => agent_config.with_mutation(mutation),
        None => agent_config,
    };
    let framework = FrameworkInfo {
        name: Name::new("web").expect("valid"),
        role: Role::new("web").expect("valid"),
        principal: Principal::new("web").expect("valid"),
        failover_timeout: Duration::from_secs(60),
    };
    let scheduler_config = SchedulerConfig::new(scheduler, vec![master], framework)
        .expect("a valid scheduler configuration")
        .with_tasks(vec![TaskSpec {
            task: task_id(),
            executor: ExecutorId::new("e1").expect("valid"),
            resources: Resources::parse("cpus:1").expect("valid"),
            command: TaskCommand::new("true").expect("valid"),
        }]);
    let host = AgentHost::new(agent_config, directory.clone(), config.reboots, false);
    ActorModel::new(config.clone(), Shared::new(AgentsHistory::default()))
        .actor(SharedActor(Roles::Left(MachineActor::new(
            master_config,
            directory.clone(),
        ))))
        .actor(SharedActor(Roles::Right(Roles::Left(host))))
        .actor(SharedActor(Roles::Right(Roles::Right(MachineActor::new(
            scheduler_config,
            directory,
        )))))
        .init_network(if config.duplicating {
            Network::new_unordered_duplicating([])
        } else {
            Network::new_unordered_nonduplicating([])
        })
        .lossy_network(if config.lossy {
            LossyNetwork::Yes
        } else {
            LossyNetwork::No
        })
        .max_crashes(config.crashes)
        .record_msg_out(record_sent)
        .record_msg_in(record_arrived)
        .within_boundary(within_bounds)
        .property(
            Expectation::Always,
            "A1 no task reported terminal while its executor runs it",
            no_terminal_while_running,
        )
        .property(
            Expectation::Always,
            "A2 every update is persisted before it is sent",
            updates_persisted_before_sent,
        )
        .property(
            Expectation::Always,
            "A2 updates reach the framework in order, without gaps",
            |_, state| state.history.violation.is_none(),
        )
        .property(
            Expectation::Always,
            "A3 a recovered agent knows every surviving executor's task",
            recovered_agent_knows_surviving_tasks,
        )
        .property(
            Expectation::Always,
            "E3 the agent never obeys a lower term",
            |_, state| host_of(state).is_none_or(|host| !host.obeyed_lower_term),
        )
        .property(
            Expectation::Sometimes,
            "the task runs and the framework's acknowledgement reaches the agent",
            |_, state| {
                host_of(state).is_some_and(|host| {
                    host.storage.durable.tasks.values().any(|task| {
                        task.state == TaskState::Running && task.unacknowledged.is_empty()
                    })
                })
            },
        )
        .property(
            Expectation::Sometimes,
            "the agent re-registers with a new leader after a master crash",
            |_, state| {
                host_of(state).is_some_and(|host| {
                    matches!(host.agent.phase(), AgentPhase::Registered { term, .. } if term.0 >= 2)
                })
            },
        )
        .property(
            Expectation::Sometimes,
            "the task finishes and its end is acknowledged",
            |_, state| {
                state.history.ended.contains(&task_id())
                    && host_of(state).is_some_and(|host| host.storage.durable.tasks.is_empty())
            },
        )
}

/// The live agent host of a state.
pub fn host_of(state: &AgentsState) -> Option<&HostState> {
    if state.crashed[HOST] {
        return None;
    }
    match &**state.actor_states[HOST] {
        Either::Right(Either::Left(host)) => Some(host),
        _ => None,
    }
}

/// The host's executors, live or not: they outlive the agent process.
fn executors_of(state: &AgentsState) -> Option<&BTreeMap<(FrameworkId, ExecutorId), Executor>> {
    match &**state.actor_states[HOST] {
        Either::Right(Either::Left(host)) => Some(&host.storage.executors),
        _ => None,
    }
}

fn scheduler_of(state: &AgentsState) -> Option<&Scheduler> {
    match &**state.actor_states[SCHEDULER] {
        Either::Right(Either::Right(MachineState { machine, .. })) => Some(machine),
        _ => None,
    }
}

fn master_of(state: &AgentsState) -> Option<&Master> {
    if state.crashed[MASTER] {
        return None;
    }
    match &**state.actor_states[MASTER] {
        Either::Left(MachineState { machine, .. }) => Some(machine),
        _ => None,
    }
}

fn record_sent(
    _: &AgentsConfig,
    history: &Shared<AgentsHistory>,
    envelope: Envelope<&Shared<Message>>,
) -> Option<Shared<AgentsHistory>> {
    match &**envelope.msg {
        Message::StatusUpdate(update) if usize::from(envelope.src) == HOST => {
            let mut next = (**history).clone();
            let sent = next.sent.entry(update.task.clone()).or_default();
            match sent.get(&update.update.0) {
                Some(state) if *state != update.state => {
                    next.violation.get_or_insert_with(|| {
                        format!(
                            "update #{} of {} names both {state} and {}",
                            update.update, update.task, update.state
                        )
                    });
                }
                Some(_) => {}
                None => {
                    sent.insert(update.update.0, update.state);
                }
            }
            (next != **history).then(|| Shared::new(next))
        }
        Message::Election(_) | Message::Ping(_) if usize::from(envelope.src) == MASTER => {
            let term = match &**envelope.msg {
                Message::Ping(ping) => ping.term.0,
                _ => return None,
            };
            if history.master_terms.contains(&term) {
                return None;
            }
            let mut next = (**history).clone();
            next.master_terms.insert(term);
            Some(Shared::new(next))
        }
        _ => None,
    }
}

fn record_arrived(
    _: &AgentsConfig,
    history: &Shared<AgentsHistory>,
    envelope: Envelope<&Shared<Message>>,
) -> Option<Shared<AgentsHistory>> {
    let Message::TaskStatus(status) = &**envelope.msg else {
        return None;
    };
    let StatusSource::Agent(update) = status.source else {
        return None;
    };
    if usize::from(envelope.dst) != SCHEDULER {
        return None;
    }
    let arrived = history.arrived.get(&status.task);
    if arrived.is_some_and(|arrived| arrived.contains(&update.0)) {
        return None;
    }
    let mut next = (**history).clone();
    let sent = next.sent.get(&status.task).cloned().unwrap_or_default();
    let arrived = next.arrived.entry(status.task.clone()).or_default();
    if next.ended.contains(&status.task) {
        next.violation.get_or_insert_with(|| {
            format!(
                "update #{update} of {} arrived after its terminal update",
                status.task
            )
        });
    }
    if let Some(missing) = sent
        .keys()
        .find(|earlier| **earlier < update.0 && !arrived.contains(earlier))
    {
        next.violation.get_or_insert_with(|| {
            format!(
                "update #{update} of {} arrived before update #{missing}",
                status.task
            )
        });
    }
    let arrived = next.arrived.entry(status.task.clone()).or_default();
    arrived.insert(update.0);
    if status.state.is_terminal() {
        next.ended.insert(status.task.clone());
    }
    Some(Shared::new(next))
}

fn within_bounds(config: &AgentsConfig, state: &AgentsState) -> bool {
    let term = match &**state.actor_states[MASTER] {
        Either::Left(MachineState { durable, .. }) => durable.term.0,
        _ => 0,
    };
    state.network.len() <= config.in_flight_max && term <= config.terms_max
}

/// Every (framework, task) an executor runs.
fn running_tasks(state: &AgentsState) -> BTreeSet<(FrameworkId, TaskId)> {
    executors_of(state)
        .into_iter()
        .flatten()
        .flat_map(|((framework, _), executor)| {
            executor
                .running
                .iter()
                .map(move |task| (*framework, task.clone()))
        })
        .collect()
}

fn no_terminal_while_running(_: &AgentsModel, state: &AgentsState) -> bool {
    let running = running_tasks(state);
    // The report starts on the agent's disk: a terminal update is persisted before it is sent.
    let agent_ok = executors_of(state).is_none_or(|_| {
        let durable = match &**state.actor_states[HOST] {
            Either::Right(Either::Left(host)) => &host.storage.durable,
            _ => return true,
        };
        durable
            .tasks
            .iter()
            .all(|(key, task)| !task.state.is_terminal() || !running.contains(key))
    });
    let scheduler_ok = scheduler_of(state).is_none_or(|scheduler| {
        let Some(framework) = scheduler.framework() else {
            return true;
        };
        scheduler.durable().tasks.iter().all(|(task, known)| {
            !known.state.is_terminal() || !running.contains(&(framework, task.clone()))
        })
    });
    let master_ok = master_of(state)
        .and_then(Master::agent_directory)
        .is_none_or(|directory| {
            directory.agents().values().all(|view| {
                view.tasks
                    .iter()
                    .all(|(key, task)| !task.state.is_terminal() || !running.contains(key))
            })
        });
    agent_ok && scheduler_ok && master_ok
}

/// A2's first half: an update is on the agent's disk before it is sent, so that no crash can
/// lose it or give its id to another update. Every id sent is below the checkpoint's next id.
fn updates_persisted_before_sent(_: &AgentsModel, state: &AgentsState) -> bool {
    let Either::Right(Either::Left(host)) = &**state.actor_states[HOST] else {
        return true;
    };
    let next = host.storage.durable.next_update.0;
    state
        .history
        .sent
        .values()
        .flat_map(|sent| sent.keys())
        .all(|id| *id < next)
}

fn recovered_agent_knows_surviving_tasks(_: &AgentsModel, state: &AgentsState) -> bool {
    let Some(host) = host_of(state) else {
        return true;
    };
    if matches!(host.agent.phase(), AgentPhase::Recovering { .. }) {
        return true;
    }
    running_tasks(state).iter().all(|key| {
        host.agent
            .durable()
            .tasks
            .get(key)
            .is_some_and(|task| !task.state.is_terminal())
    })
}
