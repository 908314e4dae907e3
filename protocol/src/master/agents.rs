//! The leader's agent-facing part: admission, re-registration, health checks and status
//! updates. Everything here is soft state of the leader, rebuilt from the agents after a
//! failover; only the registry entries (admitted, unreachable, readmitted) are replicated,
//! and each is committed before the leader answers or acts on it.
//!
//! * **Admission.** A new agent is admitted by proposing
//!   [`RegistryEntry::AgentAdmitted`] with an id from the leader's [`IdSequence`]; the agent
//!   hears [`AgentRegistered`] only once the entry commits. A retried registration from the
//!   same address finds its admission in the log and adds nothing.
//! * **Re-registration.** A known agent's report rebuilds the leader's view of its tasks. An
//!   unreachable agent is readmitted ([`RegistryEntry::AgentReadmitted`], committed before
//!   the answer) and its tasks resume; a gone agent is told to shut down. A report is taken
//!   only if the agent made it after hearing of the leader's term (else the agent is told
//!   the term, [`LeaderChanged`], and reports again), so it holds every task an older
//!   leader's launch will ever start there (E3); and only if it is newer than the last one
//!   taken (reports are numbered by registration attempt), so a copy the network delayed
//!   cannot roll the view back. Launches and resource operations the leader sent that the
//!   report does not show are kept and resent.
//! * **Failover.** A new leader calls every admitted or unreachable agent in its registry
//!   ([`LeaderChanged`]) instead of waiting for them to notice.
//! * **Health.** The leader pings every admitted agent each ping interval; after
//!   `max_missed_pings` consecutive pings without an answer it proposes (a late answer, one
//!   that comes after the next ping went out, counts: the agent was alive when it sent it)
//!   [`RegistryEntry::AgentUnreachable`], and once that commits the agent's tasks become
//!   `UNREACHABLE` — unless the agent's readmission follows it in the log: an entry that
//!   commits late (a dead leader's, committed by the next one) changes no task of an agent
//!   that has re-registered since.
//! * **Status updates.** The leader records each task's latest state and passes the update to
//!   the task's framework; the framework's acknowledgement comes back to the agent through
//!   the leader ([`frameworks`](super::frameworks)).

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use super::tasks::{AgentTasks, TaskIndex};
use super::{ElectionRole, Master, MasterTimer, Waiter};
use crate::ids::{
    AgentId, ExecutorId, FrameworkId, IdSequence, OperationId, TaskId, Term, UpdateId,
};
use crate::message::{
    AGENT_TASKS_MAX, AgentOperation, AgentRegistered, LeaderChanged, Message, Ping, Pong,
    RegisterAgent, ReregisterAgent, ShutdownAgent, StatusUpdate,
};
use crate::note::Note;
use crate::registry::{AgentStatus, LogIndex, RegistryEntry};
use crate::resources::Resources;
use crate::task::TaskCommand;
use crate::task::{TaskState, TaskStatusReason};
use crate::{Address, DurationRange, Outbox};

/// The most master-generated updates the leader keeps for frameworks to collect.
pub const GENERATED_UPDATES_MAX: usize = 65_536;

/// The leader's soft state about agents. Lost when it stops leading; a new leader rebuilds
/// it from re-registrations.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AgentDirectory {
    /// The source of new agents' ids, in the leader's term.
    ids: IdSequence,
    /// Per admitted agent: its tasks and its health.
    pub(super) agents: BTreeMap<AgentId, AgentView>,
    /// Updates the master generated itself (`UNREACHABLE`, and the state a task resumes in
    /// when its agent is readmitted), by task: the latest per task. They are kept for the
    /// frameworks, which will receive them until they acknowledge them; frameworks do not
    /// [`GENERATED_UPDATES_MAX`].
    pub(super) generated: BTreeMap<(FrameworkId, TaskId), GeneratedUpdate>,
    /// Whether the ping timer is armed.
    pinging: bool,
    /// Which agents hold each task (derived from `agents`; kept up to date wherever a
    /// task table gains or loses a task).
    pub(super) index: TaskIndex,
    /// The admitted agents of the committed registry by address (derived from the registry;
    /// kept up to date as agent entries commit), so that a pong finds its agent without a
    /// scan of the registry: with 10,000 agents that scan, once per pong, took a third of
    /// the leader's time.
    pub(super) addresses: AddressIndex,
}

/// The lowest agent id there can be, where a range of the address index starts.
const LOWEST_AGENT_ID: AgentId = AgentId(crate::ids::AssignedId {
    term: Term(0),
    sequence: 0,
});

/// The admitted agents of a registry by address. An address normally belongs to one admitted
/// agent; when a new agent was admitted at the address of one not yet marked unreachable,
/// both are held and the lowest id is the one found, as a scan of the registry in id order
/// would find it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(super) struct AddressIndex {
    by_address: BTreeSet<(Address, AgentId)>,
    of_agent: BTreeMap<AgentId, Address>,
}

impl AddressIndex {
    /// The index of `registry`'s admitted agents.
    pub(super) fn of(registry: &crate::registry::Registry) -> AddressIndex {
        let mut index = AddressIndex::default();
        for agent in registry.agents().keys() {
            index.update(registry, *agent);
        }
        index
    }

    /// Takes `agent`'s record in `registry` as it is now.
    pub(super) fn update(&mut self, registry: &crate::registry::Registry, agent: AgentId) {
        if let Some(address) = self.of_agent.remove(&agent) {
            self.by_address.remove(&(address, agent));
        }
        if let Some(record) = registry
            .agents()
            .get(&agent)
            .filter(|record| record.status == AgentStatus::Admitted)
        {
            self.by_address.insert((record.address.clone(), agent));
            self.of_agent.insert(agent, record.address.clone());
        }
    }

    /// The admitted agent at `address` (the lowest id, if there are several).
    pub(super) fn admitted_at(&self, address: &Address) -> Option<AgentId> {
        self.all_admitted_at(address).next()
    }

    /// Every admitted agent at `address`, in id order.
    fn all_admitted_at<'a>(&'a self, address: &'a Address) -> impl Iterator<Item = AgentId> + 'a {
        self.by_address
            .range((address.clone(), LOWEST_AGENT_ID)..)
            .take_while(move |(at, _)| at == address)
            .map(|(_, agent)| *agent)
    }
}

impl AgentDirectory {
    /// The directory of a new leader of the term `ids` assigns in.
    pub(super) fn new(ids: IdSequence, registry: &crate::registry::Registry) -> AgentDirectory {
        AgentDirectory {
            ids,
            agents: BTreeMap::new(),
            generated: BTreeMap::new(),
            pinging: false,
            index: TaskIndex::default(),
            addresses: AddressIndex::of(registry),
        }
    }

    /// The leader's view of each agent.
    pub fn agents(&self) -> &BTreeMap<AgentId, AgentView> {
        &self.agents
    }

    /// The updates the master generated, by task.
    pub fn generated(&self) -> &BTreeMap<(FrameworkId, TaskId), GeneratedUpdate> {
        &self.generated
    }

    /// The agents that hold the task, in id order.
    pub fn agents_holding(&self, key: &(FrameworkId, TaskId)) -> impl Iterator<Item = AgentId> {
        self.index.agents_of(key)
    }

    /// Whether the kept task index and sums equal a recomputation (they always should).
    pub fn derived_data_is_exact(&self) -> bool {
        self.index.is_exact(&self.agents)
            && self.agents.values().all(|view| view.tasks.sums_are_exact())
    }

    /// Records `task` under `key` on `agent`'s table, if the leader has a view of the agent.
    pub(super) fn insert_task(
        &mut self,
        agent: AgentId,
        key: (FrameworkId, TaskId),
        task: TaskView,
    ) {
        if let Some(view) = self.agents.get_mut(&agent) {
            self.index.add(agent, &key);
            view.tasks.insert(key, task);
        }
    }
}

/// What the leader knows of one agent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AgentView {
    /// Whether the agent registered or re-registered with this leader, so that its tasks
    /// are known and its resources can be offered.
    pub registered: bool,
    /// Whether its tasks are what it reported when it re-registered with this leader, after
    /// it had heard of this leader's term: every task it will ever run of an older leader's
    /// launches is among them (E3), so a task it lacks never reached it.
    pub reported: bool,
    /// The number of the newest registration attempt taken from it: an older one is a copy
    /// the network delayed, which would roll the view back.
    pub report: u64,
    /// Its tasks, with their latest known states (and what the live ones use, summed).
    pub tasks: AgentTasks,
    /// The sequence number of the last ping sent.
    pub ping: u64,
    /// The sequence number of the newest ping answered (or forgiven). The pings after it,
    /// up to [`ping`](Self::ping), are the ones missed in a row: an answer that comes after
    /// the next ping went out still shows the agent was alive when it answered.
    pub answered: u64,
    /// Its resources as operations changed them, as it last reported them or the leader
    /// applied since; `None` until it re-registers, then the registry's.
    pub total: Option<Resources>,
    /// Resource operations sent and not yet answered, in order; resent every ping round.
    pub pending_operations: Vec<(FrameworkId, AgentOperation)>,
}

impl AgentView {
    /// Pings sent in a row without an answer (the last one counts once the next is due).
    pub fn missed_pings(&self) -> u32 {
        u32::try_from(self.ping.saturating_sub(self.answered)).unwrap_or(u32::MAX)
    }
}

/// What the leader knows of one task.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TaskView {
    /// The executor running it, if the agent reported it.
    pub executor: Option<ExecutorId>,
    /// Its latest known state.
    pub state: TaskState,
    /// The id of the newest update recorded for it, if known: an update with this id or a
    /// lower one is a resend of an older state.
    pub update: Option<UpdateId>,
    /// What it uses of the agent's resources.
    pub resources: Resources,
    /// While the task is `STAGING` after a launch by this leader: what it runs, so that the
    /// launch can be resent until the agent reports the task (a lost `RunTask` would
    /// otherwise leave it staging for good). The agent runs a task at most once (R5).
    pub launch: Option<TaskCommand>,
}

/// A status update the master generated itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GeneratedUpdate {
    /// The task's agent, if the task reached one.
    pub agent: Option<AgentId>,
    /// The state reported.
    pub state: TaskState,
    /// Why.
    pub reason: Option<TaskStatusReason>,
}

impl Master {
    /// The leader's agent directory; `None` on a master that does not lead.
    pub fn agent_directory(&self) -> Option<&AgentDirectory> {
        match &self.role {
            ElectionRole::Leader(leader) => Some(&leader.agents),
            _ => None,
        }
    }

    pub(super) fn agents_mut(&mut self) -> Option<&mut AgentDirectory> {
        self.directory_mut()
    }

    /// The leader's views of its agents, to record a launch in.
    pub(super) fn directory_mut_for_launch(&mut self) -> Option<&mut BTreeMap<AgentId, AgentView>> {
        self.directory_mut().map(|directory| &mut directory.agents)
    }

    fn directory_mut(&mut self) -> Option<&mut AgentDirectory> {
        match &mut self.role {
            ElectionRole::Leader(leader) => Some(&mut leader.agents),
            _ => None,
        }
    }

    /// New leader: call every agent in the registry (log included, committed or not) to
    /// re-register, and start pinging if any is admitted.
    pub(super) fn contact_agents(&mut self, out: &mut Outbox<Master>) {
        let latest = self.latest_registry();
        let term = self.term();
        let mut admitted = false;
        for record in latest.agents().values() {
            match record.status {
                AgentStatus::Admitted | AgentStatus::Unreachable { .. } => {
                    admitted |= record.status == AgentStatus::Admitted;
                    out.send(
                        record.address.clone(),
                        Message::LeaderChanged(LeaderChanged { term }),
                    );
                }
                AgentStatus::Gone => {}
            }
        }
        if admitted {
            self.arm_agent_pings(out);
        }
    }

    /// Arms the ping timer unless it is armed.
    fn arm_agent_pings(&mut self, out: &mut Outbox<Master>) {
        let interval = self.config.agent_ping_interval;
        if let Some(directory) = self.directory_mut()
            && !directory.pinging
        {
            directory.pinging = true;
            out.set_timer(MasterTimer::AgentPing, DurationRange::fixed(interval));
        }
    }

    /// Stepping down: the ping timer stops with the directory.
    pub(super) fn stop_agent_pings(&self, out: &mut Outbox<Master>) {
        if self
            .agent_directory()
            .is_some_and(|directory| directory.pinging)
        {
            out.cancel_timer(MasterTimer::AgentPing);
        }
    }

    /// A new agent asks to be admitted.
    pub(super) fn handle_register_agent(
        &mut self,
        from: &Address,
        register: RegisterAgent,
        out: &mut Outbox<Master>,
    ) {
        if !self.is_leader() || register.highest_term > self.term() {
            self.send_leader_hint(from, out);
            return;
        }
        // A retried registration (its answer was lost, or is waiting for the commit) finds
        // its admission in the log: same address, same info, still admitted.
        let existing = self.admission_of(&register);
        let term = self.term();
        let Some(directory) = self.directory_mut() else {
            return;
        };
        let (agent, entry) = match existing {
            Some(agent) => {
                let view = directory.agents.entry(agent).or_default();
                // A new agent holds no tasks, whatever an earlier registration left; unless
                // this is a copy of an attempt already taken, or a delayed one of an older
                // attempt: answered only (the agent ignores an answer to an older attempt).
                if register.report > view.report {
                    directory.index.remove_all(agent, &view.tasks);
                    view.tasks.clear();
                    view.registered = true;
                    view.reported = false;
                    view.report = register.report;
                }
                (agent, None)
            }
            None => {
                let agent = AgentId(directory.ids.next_id());
                // Registered once the admission commits; the attempt is known from now on.
                directory.agents.entry(agent).or_default().report = register.report;
                let entry = RegistryEntry::AgentAdmitted {
                    agent,
                    address: register.address,
                    info: register.info,
                };
                (agent, Some(entry))
            }
        };
        self.propose(
            entry,
            Waiter::Agent {
                address: from.clone(),
                answer: Message::AgentRegistered(AgentRegistered {
                    term,
                    agent,
                    report: register.report,
                }),
            },
            out,
        );
    }

    /// The agent admitted with `register`'s address and info in the latest registry (the
    /// lowest id, if there are several), found without a scan of the registry: among the
    /// admitted agents at the address in the committed registry and those the uncommitted
    /// entries admit or readmit. Under a registration storm every agent retries each half
    /// second while the leader is behind; a scan of 10,000 agents per attempt is what
    /// kept the leader behind.
    fn admission_of(&mut self, register: &RegisterAgent) -> Option<AgentId> {
        let mut candidates: BTreeSet<AgentId> = self
            .agent_directory()
            .map(|directory| {
                directory
                    .addresses
                    .all_admitted_at(&register.address)
                    .collect()
            })
            .unwrap_or_default();
        for index in self.commit_index.0 + 1..=self.durable.log.last_index().0 {
            if let Some(logged) = self.durable.log.entry_at(LogIndex(index))
                && let RegistryEntry::AgentAdmitted { agent, address, .. }
                | RegistryEntry::AgentReadmitted { agent, address } = &logged.entry
                && *address == register.address
            {
                candidates.insert(*agent);
            }
        }
        let found = self.with_latest_registry(|latest| {
            candidates.into_iter().find(|agent| {
                latest.agents().get(agent).is_some_and(|record| {
                    record.status == AgentStatus::Admitted
                        && record.address == register.address
                        && record.info == register.info
                })
            })
        });
        debug_assert_eq!(
            found,
            self.with_latest_registry(|latest| {
                latest
                    .agents()
                    .iter()
                    .find(|(_, record)| {
                        record.status == AgentStatus::Admitted
                            && record.address == register.address
                            && record.info == register.info
                    })
                    .map(|(agent, _)| *agent)
            }),
            "the address index finds what a scan of the latest registry finds"
        );
        found
    }

    /// A known agent reports everything it holds.
    pub(super) fn handle_reregister_agent(
        &mut self,
        from: &Address,
        reregister: ReregisterAgent,
        out: &mut Outbox<Master>,
    ) {
        if !self.is_leader() || reregister.highest_term > self.term() {
            self.send_leader_hint(from, out);
            return;
        }
        let term = self.term();
        if reregister.highest_term < term {
            // Made before the agent heard of this term: an older leader's launch could still
            // reach it and run, unreported. Once it has this term it obeys no older leader
            // (E3), so a report made then is complete, and a task it lacks never ran there
            // and never will (what reconciliation answers rely on). The agent reports again.
            out.send(from.clone(), Message::LeaderChanged(LeaderChanged { term }));
            return;
        }
        let agent = reregister.agent;
        let report = reregister.report;
        let answer = Message::AgentReregistered(AgentRegistered {
            term,
            agent,
            report,
        });
        let taken = self
            .agent_directory()
            .and_then(|directory| directory.agents.get(&agent))
            .filter(|view| view.reported)
            .map(|view| view.report);
        if let Some(taken) = taken
            && report <= taken
        {
            // A copy of the report already taken (its answer may have been lost): answered
            // again, the view left as it is. An older one (delayed by the network) would roll
            // the view back: ignored; the agent ignores answers to older attempts anyway.
            if report == taken {
                self.propose(
                    None,
                    Waiter::Agent {
                        address: from.clone(),
                        answer,
                    },
                    out,
                );
            }
            return;
        }
        // The agent's record, and the frameworks of its tasks that are removed (their
        // failover timeout ran out meanwhile).
        let (record, removed_frameworks) = self.with_latest_registry(|latest| {
            let removed: BTreeSet<FrameworkId> = reregister
                .tasks
                .iter()
                .map(|report| report.framework)
                .filter(|framework| !latest.frameworks().contains_key(framework))
                .collect();
            (latest.agents().get(&agent).cloned(), removed)
        });
        let Some(record) = record else {
            // Not an agent of this cluster: nothing to rebuild, nothing to promise.
            return;
        };
        let entry = match record.status {
            AgentStatus::Gone => {
                out.send(
                    from.clone(),
                    Message::ShutdownAgent(ShutdownAgent { term, agent }),
                );
                return;
            }
            // Same agent, new address (it restarted elsewhere, or its port changed): the
            // registry learns the address before the agent is answered.
            AgentStatus::Admitted if record.address != reregister.address => {
                Some(RegistryEntry::AgentReadmitted {
                    agent,
                    address: reregister.address.clone(),
                })
            }
            AgentStatus::Admitted => None,
            AgentStatus::Unreachable { .. } => Some(RegistryEntry::AgentReadmitted {
                agent,
                address: reregister.address,
            }),
        };
        let tasks: BTreeMap<(FrameworkId, TaskId), TaskView> = reregister
            .tasks
            .into_iter()
            .map(|report| {
                (
                    (report.framework, report.task),
                    TaskView {
                        executor: Some(report.executor),
                        state: report.state,
                        update: report.latest_update,
                        resources: report.resources,
                        launch: None,
                    },
                )
            })
            .collect();
        // Tasks of frameworks removed meanwhile (their failover timeout ran out) are killed.
        for ((framework, task), view) in &tasks {
            if !view.state.is_terminal() && removed_frameworks.contains(framework) {
                out.send(
                    from.clone(),
                    Message::KillTask(crate::message::KillTask {
                        term,
                        framework: *framework,
                        task: task.clone(),
                    }),
                );
            }
        }
        let mut tasks = tasks;
        if let Some(directory) = self.directory_mut() {
            // A launch this leader sent that the agent does not report never reached it
            // (the agent ran it, or refused it, if it had): it is staging again, and resent
            // every ping round until the agent reports it. Dropping it would leave the task
            // UNREACHABLE at its framework for good.
            if let Some(previous) = directory.agents.get(&agent) {
                for (key, task) in &previous.tasks {
                    if task.launch.is_some()
                        && matches!(task.state, TaskState::Staging | TaskState::Unreachable)
                        && !tasks.contains_key(key)
                    {
                        let mut relaunched = task.clone();
                        relaunched.state = TaskState::Staging;
                        tasks.insert(key.clone(), relaunched);
                    }
                }
            }
            // The frameworks of an unreachable agent's tasks were told UNREACHABLE: once the
            // readmission commits they are told the state each task resumes in, even those
            // that acknowledged UNREACHABLE already (`agent_tasks_resume`).
            if matches!(record.status, AgentStatus::Unreachable { .. }) {
                for (key, task) in &tasks {
                    if !task.state.is_terminal()
                        && !directory.generated.contains_key(key)
                        && directory.generated.len() < GENERATED_UPDATES_MAX
                    {
                        directory.generated.insert(
                            key.clone(),
                            GeneratedUpdate {
                                agent: Some(agent),
                                state: TaskState::Unreachable,
                                reason: Some(TaskStatusReason::AgentUnreachable),
                            },
                        );
                    }
                }
            }
            // Resource operations this leader sent and did not hear answered stay pending
            // (resent every ping round, so that their frameworks hear how they ended); those
            // the agent had not applied when it reported count in its resources as they did
            // before, as the launches kept above may use what they produce.
            let applied: BTreeSet<&(FrameworkId, OperationId)> =
                reregister.operations.iter().collect();
            let mut total = reregister.info.resources.clone();
            let mut pending_operations = Vec::new();
            if let Some(previous) = directory.agents.get(&agent) {
                for (framework, operation) in &previous.pending_operations {
                    if !applied.contains(&(*framework, operation.id.clone()))
                        && let Some(after) = total
                            .checked_sub(&operation.consumed)
                            .ok()
                            .and_then(|rest| rest.checked_add(&operation.produced).ok())
                    {
                        total = after;
                    }
                    pending_operations.push((*framework, operation.clone()));
                }
            }
            let tasks = AgentTasks::from(tasks);
            directory.index.add_all(agent, &tasks);
            let previous = directory.agents.insert(
                agent,
                AgentView {
                    registered: true,
                    reported: true,
                    report,
                    tasks,
                    total: Some(total),
                    pending_operations,
                    ..AgentView::default()
                },
            );
            if let Some(previous) = previous {
                // Forget what only the previous report held (the new one was added above).
                for key in previous.tasks.keys() {
                    let still_held = directory
                        .agents
                        .get(&agent)
                        .is_some_and(|view| view.tasks.contains_key(key));
                    if !still_held {
                        directory.index.remove(agent, key);
                    }
                }
            }
            // Its resources can be offered now. A re-registration that changes the registry
            // asks again once that commits; one that changes nothing (the usual case after a
            // failover) would otherwise wait for the next allocation round.
            self.request_allocation();
        }
        self.propose(
            entry,
            Waiter::Agent {
                address: from.clone(),
                answer,
            },
            out,
        );
    }

    /// An agent reports a task's new state: record it and pass it to the task's framework,
    /// whose acknowledgement comes back through the leader.
    pub(super) fn handle_status_update(
        &mut self,
        from: &Address,
        update: StatusUpdate,
        out: &mut Outbox<Master>,
    ) {
        if !self.is_leader() {
            self.send_leader_hint(from, out);
            return;
        }
        let admitted = self
            .registry
            .agents()
            .get(&update.agent)
            .is_some_and(|record| {
                record.status == AgentStatus::Admitted && record.address == *from
            });
        let Some(directory) = self.directory_mut() else {
            return;
        };
        // Until the agent (re-)registers with this leader, its updates wait on the agent.
        let Some(view) = directory
            .agents
            .get_mut(&update.agent)
            .filter(|view| admitted && view.registered)
        else {
            return;
        };
        let key = (update.framework, update.task.clone());
        if !view.tasks.contains_key(&key) && view.tasks.len() >= AGENT_TASKS_MAX {
            // Full: make room by forgetting a finished task, or let the agent retry.
            let finished = view
                .tasks
                .iter()
                .find(|(_, task)| task.state.is_terminal())
                .map(|(key, _)| key.clone());
            match finished {
                Some(finished) => {
                    view.tasks.remove(&finished);
                    directory.index.remove(update.agent, &finished);
                }
                None => return,
            }
        }
        if !view.tasks.contains_key(&key) {
            directory.index.add(update.agent, &key);
            view.tasks.insert(
                key.clone(),
                TaskView {
                    executor: None,
                    state: update.state,
                    update: None,
                    resources: Resources::new(),
                    launch: None,
                },
            );
        }
        let ended = view.tasks.update(&key, |task| {
            task.launch = None;
            let ended = !task.state.is_terminal() && update.state.is_terminal();
            if task.update.is_none_or(|recorded| update.update > recorded) {
                task.state = update.state;
                task.update = Some(update.update);
            }
            ended
        });
        self.forward_status(update, out);
        if ended == Some(true) {
            // Its resources are free again.
            self.request_allocation();
        }
    }

    /// An agent answers a ping.
    pub(super) fn handle_pong(&mut self, from: &Address, pong: Pong) {
        if pong.term != self.term() {
            return;
        }
        let Some(directory) = self.directory_mut() else {
            return;
        };
        let Some(agent) = directory.addresses.admitted_at(from) else {
            return;
        };
        // Any ping sent since the newest answered one: late (answered after the next ping
        // went out, as under load) is not missed. A sequence never sent is ignored.
        if let Some(view) = directory.agents.get_mut(&agent)
            && pong.sequence > view.answered
            && pong.sequence <= view.ping
        {
            view.answered = pong.sequence;
        }
    }

    /// Ping timer: count a miss for every unanswered ping, mark the agents that missed too
    /// many unreachable, and ping every admitted agent again.
    pub(super) fn handle_agent_ping(&mut self, out: &mut Outbox<Master>) {
        if !self.is_leader() {
            return;
        }
        let term = self.term();
        let max_missed = self.config.max_missed_pings;
        let admitted: Vec<(AgentId, Address)> = self
            .registry
            .agents()
            .iter()
            .filter(|(_, record)| record.status == AgentStatus::Admitted)
            .map(|(agent, record)| (*agent, record.address.clone()))
            .collect();
        let mut silent = Vec::new();
        if let Some(directory) = self.directory_mut() {
            for (agent, address) in admitted {
                let view = directory.agents.entry(agent).or_default();
                if view.missed_pings() >= max_missed {
                    silent.push(agent);
                }
                view.ping = view.ping.saturating_add(1);
                out.send(
                    address,
                    Message::Ping(Ping {
                        term,
                        sequence: view.ping,
                    }),
                );
            }
        }
        let unreachable: Vec<RegistryEntry> = self.with_latest_registry(|latest| {
            silent
                .into_iter()
                .map(|agent| RegistryEntry::AgentUnreachable { agent })
                .filter(|entry| latest.would_change(entry))
                .collect()
        });
        let mut appended = false;
        for entry in unreachable {
            if let RegistryEntry::AgentUnreachable { agent } = entry {
                out.note(Note::AgentUnreachable { agent });
                appended |= self.append(entry, out).is_some();
            }
        }
        if appended {
            self.replicate_all(out);
        }
        self.framework_round(out);
        out.set_timer(
            MasterTimer::AgentPing,
            DurationRange::fixed(self.config.agent_ping_interval),
        );
    }

    /// Leader: acts on newly committed agent entries.
    pub(super) fn agent_entries_committed(
        &mut self,
        entries: &[(LogIndex, RegistryEntry)],
        out: &mut Outbox<Master>,
    ) {
        for (_, entry) in entries {
            let agent = match entry {
                RegistryEntry::AgentAdmitted { agent, .. }
                | RegistryEntry::AgentReadmitted { agent, .. }
                | RegistryEntry::AgentUnreachable { agent }
                | RegistryEntry::AgentGone { agent } => *agent,
                _ => continue,
            };
            if let ElectionRole::Leader(leader) = &mut self.role {
                leader.agents.addresses.update(&self.registry, agent);
            }
        }
        for (index, entry) in entries {
            match entry {
                RegistryEntry::AgentAdmitted { agent, address, .. } => {
                    // Admissions of earlier terms were noted by their leaders.
                    if self.log().term_at(*index) == Some(self.term()) {
                        out.note(Note::AgentAdmitted {
                            agent: *agent,
                            address: address.clone(),
                        });
                    }
                    // An admission of this leader's own term is a new agent, with no tasks.
                    let own_term = self.log().term_at(*index) == Some(self.term());
                    if let Some(directory) = self.directory_mut() {
                        let view = directory.agents.entry(*agent).or_default();
                        view.registered |= own_term;
                    }
                    self.arm_agent_pings(out);
                }
                RegistryEntry::AgentReadmitted { agent, address } => {
                    if self.log().term_at(*index) == Some(self.term()) {
                        out.note(Note::AgentReadmitted {
                            agent: *agent,
                            address: address.clone(),
                        });
                    }
                    self.agent_tasks_resume(*agent, out);
                    self.arm_agent_pings(out);
                }
                RegistryEntry::AgentUnreachable { agent } => {
                    // The agent returned after this entry was proposed (an older leader's,
                    // or this one's, proposal that committed late): its report was taken
                    // and its readmission follows in the log. Its view holds the states it
                    // reported, which the unreachable mark must not overwrite.
                    let readmitted = self.with_latest_registry(|latest| {
                        latest
                            .agents()
                            .get(agent)
                            .is_some_and(|record| record.status == AgentStatus::Admitted)
                    });
                    if readmitted && !self.mutated(super::Mutation::UnreachableOverridesReturn) {
                        continue;
                    }
                    self.rescind_offers_of(*agent, out);
                    self.agent_tasks_change(
                        *agent,
                        TaskState::Unreachable,
                        TaskStatusReason::AgentUnreachable,
                        out,
                    );
                }
                RegistryEntry::AgentGone { agent } => {
                    self.rescind_offers_of(*agent, out);
                    self.agent_tasks_change(
                        *agent,
                        TaskState::Gone,
                        TaskStatusReason::AgentGone,
                        out,
                    );
                }
                _ => {}
            }
        }
    }

    /// The agent's tasks not yet terminal reach `state`, an update the master generates and
    /// sends to each task's framework until acknowledged.
    fn agent_tasks_change(
        &mut self,
        agent: AgentId,
        state: TaskState,
        reason: TaskStatusReason,
        out: &mut Outbox<Master>,
    ) {
        let Some(directory) = self.directory_mut() else {
            return;
        };
        let Some(view) = directory.agents.get_mut(&agent) else {
            return;
        };
        view.answered = view.ping;
        let mut changed = Vec::new();
        view.tasks.update_all(|key, task| {
            if !task.state.is_terminal() {
                task.state = state;
                changed.push(key.clone());
            }
        });
        for (framework, task) in changed {
            self.generate_status(framework, task, Some(agent), state, reason, out);
        }
    }

    /// A readmitted agent's tasks resume: the frameworks that were told `UNREACHABLE` are
    /// told the state the agent reported.
    fn agent_tasks_resume(&mut self, agent: AgentId, out: &mut Outbox<Master>) {
        let Some(directory) = self.directory_mut() else {
            return;
        };
        let Some(view) = directory.agents.get(&agent) else {
            return;
        };
        let mut resumed = Vec::new();
        for (key, task) in &view.tasks {
            if let Some(generated) = directory.generated.get_mut(key)
                && generated.agent == Some(agent)
                && generated.state == TaskState::Unreachable
            {
                generated.state = task.state;
                generated.reason = None;
                resumed.push(key.clone());
            }
        }
        for (framework, task) in resumed {
            self.send_generated_status(framework, &task, out);
        }
    }
}

#[cfg(test)]
#[path = "agents_tests.rs"]
mod tests;
