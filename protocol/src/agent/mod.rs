//! The agent: registration, fencing, reliable status updates and recovery.
//!
//! An agent offers its machine's resources, runs tasks in executors (separate processes that
//! outlive the agent process), and reports every task's state changes to the leading master.
//! The rules, and the invariant each protects:
//!
//! * **Registration.** A new agent sends [`RegisterAgent`] to
//!   the masters in turn until one answers; a non-leader answers with a
//!   [`LeaderHint`] and the agent asks the leader named there.
//!   The leader admits the agent in the registry and answers with its id only once that is
//!   committed; the agent persists the id before it uses it. An agent with an id
//!   re-registers instead, reporting its tasks and unacknowledged updates.
//! * **Fencing (E3).** Every command from a master carries its leader's term. The agent
//!   ignores a command from a lower term than the highest it has seen, and persists the
//!   highest term when it grows, so fencing survives a restart. A command from a higher term
//!   comes from a new leader: the agent re-registers with it.
//! * **Leader liveness.** The leader pings the agent; the agent answers. If no ping arrives
//!   for the leader-silence timeout, the agent looks for the leader again. A new leader calls
//!   every agent in its registry itself ([`LeaderChanged`]).
//! * **Status updates (A2).** Each new state of a task is persisted before it is sent. Per
//!   task, one update is in flight at a time, retried with a doubling backoff until the
//!   master acknowledges it; an acknowledgement that does not match the update in flight
//!   (a duplicate) is ignored. Nothing follows a terminal state.
//! * **Recovery (A3).** Booting from a checkpoint on the same host boot, the agent waits up
//!   to `executor_reregister_timeout` for its executors to reconnect; the tasks of executors
//!   that do not return become `FAILED` (reason executor re-registration timeout). Then it
//!   re-registers. On a new boot id the executors died with the host: every earlier task
//!   becomes `LOST` (reason agent restarted), and the agent keeps its id. A checkpoint that
//!   contradicts the configuration (its tasks need more than the configured resources) is
//!   refused with a [`AgentBootError`].
//! * **Gone.** An agent the leader marked gone is told to shut down: it stops its executors,
//!   forgets its id and tasks, and registers anew as a new agent.
//!
//! # Registration
//!
//! ```text
//!  agent                      m1 (follower)            m2 (leader, term 3)       m3
//!    | RegisterAgent              |                          |                    |
//!    |--------------------------->|                          |                    |
//!    |  LeaderHint{3, m2}         |                          |                    |
//!    |<---------------------------|                          |                    |
//!    | RegisterAgent                                         |                    |
//!    |------------------------------------------------------>| AgentAdmitted{a}   |
//!    |                                                       | PERSIST, replicate |
//!    |                                                       |------------------->|
//!    |                                                       |<-------------------|
//!    |                                                       | committed          |
//!    |  AgentRegistered{3, a}                                |                    |
//!    |<------------------------------------------------------|                    |
//!    | PERSIST TermSeen(3), Registered(a)                    |                    |
//!    |  Ping{3, n} / Pong{3, n} every second                 |                    |
//!    |<=====================================================>|                    |
//! ```
//!
//! # Failover re-registration
//!
//! ```text
//!  agent                           m2 (old leader, term 3)        m3 (new leader, term 4)
//!    |  StatusUpdate{t, RUNNING, #7}      |                               |
//!    |----------------------------------->X (m2 crashed)                  |
//!    |                                                                    | elected
//!    |  LeaderChanged{4}                                                  |
//!    |<-------------------------------------------------------------------|
//!    | PERSIST TermSeen(4)                                                |
//!    |  ReregisterAgent{a, tasks + latest states, unacknowledged #7}      |
//!    |------------------------------------------------------------------->| rebuilds soft
//!    |  AgentReregistered{4, a}                  (after its log commits)  | state
//!    |<-------------------------------------------------------------------|
//!    |  StatusUpdate{t, RUNNING, #7}  (the update in flight, resent)      |
//!    |------------------------------------------------------------------->| records it
//!    |  StatusAcknowledgement{4, t, #7}                                   |
//!    |<-------------------------------------------------------------------|
//!    | PERSIST Acknowledged(#7), send the task's next update              |
//!    |                                                                    |
//!    |  anything of term 3 from m2, should it come back: ignored (E3)     |
//! ```
//!
//! # Agent recovery
//!
//! ```text
//!  executor e1     executor e2          agent (restarted)                     leader
//!    | (survived)    | (died too)           | boot from checkpoint: same boot id
//!    |               X                      | wait executor_reregister_timeout
//!    | connect {t1}                         |
//!    |------------------------------------->| e1 is back: t1 still RUNNING (A3)
//!    |                                      | timer fires: e2 missing
//!    |                                      | PERSIST t2 FAILED (executor
//!    |                                      |   re-registration timeout)
//!    |                                      |  ReregisterAgent{t1 RUNNING, t2 FAILED}
//!    |                                      |-------------------------------------->|
//!    |                                      |  AgentReregistered                    |
//!    |                                      |<--------------------------------------|
//!    |                                      |  StatusUpdate{t2, FAILED}             |
//!    |                                      |-------------------------------------->|
//!
//!  On a new boot id no executor survived: every earlier task is PERSISTED as LOST (agent
//!  restarted) at boot, and the agent re-registers at once under its old id.
//! ```

mod durable;

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

pub use durable::{
    AgentDurable, AgentRecord, OPERATIONS_REMEMBERED, TASKS_REMEMBERED, TaskCheckpoint,
    UpdateCheckpoint,
};

use crate::bounded::BoundedVec;
use crate::ids::{AgentId, BootId, ExecutorId, FrameworkId, Role, TaskId, Term, VolumeId};
use crate::message::{
    AGENT_TASKS_MAX, AgentRegistered, ApplyOperations, KillTask, LeaderChanged, LeaderHint,
    Message, OperationFailure, OperationState, OperationStatus, Ping, Pong, RegisterAgent,
    ReregisterAgent, RunTask, ShutdownAgent, StatusAcknowledgement, StatusUpdate, TaskReport,
};
use crate::note::Note;
use crate::registry::AgentInfo;
use crate::resources::Resources;
use crate::task::{TaskCommand, TaskState, TaskStatusReason};
use crate::{Address, DurationRange, Machine, Outbox};

/// The default wait between registration attempts: a randomized 500–1000 ms.
pub const REGISTRATION_RETRY_DEFAULT: DurationRange = DurationRange {
    min: Duration::from_millis(500),
    max: Duration::from_millis(1000),
};
/// The default first retry of an unacknowledged status update (Mesos: 10 s).
pub const STATUS_RETRY_INITIAL_DEFAULT: Duration = Duration::from_secs(1);
/// The default longest wait between retries of a status update (Mesos: 10 min).
pub const STATUS_RETRY_MAX_DEFAULT: Duration = Duration::from_secs(60);
/// The default window for executors to reconnect after an agent restart (as Mesos).
pub const EXECUTOR_REREGISTER_TIMEOUT_DEFAULT: Duration = Duration::from_secs(2);
/// The default silence from the leader after which the agent looks for the leader again:
/// the leader pings every second and gives up on an agent after five missed pings.
pub const LEADER_SILENCE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);
/// The most masters an agent is configured with.
pub const MASTERS_MAX: usize = 5;
/// The most unacknowledged updates an agent keeps per task. A terminal update is always
/// taken; a non-terminal one only while there is room for the terminal one after it.
pub const TASK_UPDATES_PENDING_MAX: usize = 16;

/// An agent's configuration: where the masters are, who it is, and its timing.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AgentConfig {
    masters: Vec<Address>,
    address: Address,
    info: AgentInfo,
    boot_id: BootId,
    registration_retry: DurationRange,
    status_retry_initial: Duration,
    status_retry_max: Duration,
    executor_reregister_timeout: Duration,
    leader_silence_timeout: Duration,
    mutation: Option<AgentMutation>,
}

/// Deliberately broken agent variants, to show that the model checker catches each bug.
/// Only the `mutations` feature (for the checker's own tests) can set one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AgentMutation {
    /// A status update is sent without being persisted (A2: a restart reuses its id for
    /// another state, or loses it).
    UpdateNotPersisted,
    /// A status update counts as acknowledged once sent (A2: a lost update leaves a gap).
    AcknowledgeOnSend,
    /// A reconnecting executor's tasks are forgotten (A3).
    ForgetReconnectedTasks,
    /// Executors that miss the re-registration window are reported failed without being
    /// destroyed first (A1).
    FailWithoutDestroy,
    /// Commands of a lower term than the highest seen are obeyed (E3).
    ObeyLowerTerm,
    /// A launch of a task that ended is run again (R5).
    ForgetEndedTasks,
    /// A resent resource operation is applied again (R5).
    ReapplyOperations,
    /// A task's persistent volumes are deleted with its sandbox when it ends (R4).
    DeleteVolumesWithTask,
}

impl AgentConfig {
    /// The configuration of an agent listening at `address`, on the host boot `boot_id`,
    /// offering `info.resources`, in a cluster of `masters` (1 to [`MASTERS_MAX`]), with the
    /// default timing.
    pub fn new(
        masters: Vec<Address>,
        address: Address,
        info: AgentInfo,
        boot_id: BootId,
    ) -> Result<AgentConfig, AgentConfigError> {
        if masters.is_empty() || masters.len() > MASTERS_MAX {
            return Err(AgentConfigError::MasterCount {
                count: masters.len(),
            });
        }
        Ok(AgentConfig {
            masters,
            address,
            info,
            boot_id,
            registration_retry: REGISTRATION_RETRY_DEFAULT,
            status_retry_initial: STATUS_RETRY_INITIAL_DEFAULT,
            status_retry_max: STATUS_RETRY_MAX_DEFAULT,
            executor_reregister_timeout: EXECUTOR_REREGISTER_TIMEOUT_DEFAULT,
            leader_silence_timeout: LEADER_SILENCE_TIMEOUT_DEFAULT,
            mutation: None,
        })
    }

    /// On another host boot: what a host reboot changes.
    #[must_use]
    pub fn with_boot_id(mut self, boot_id: BootId) -> Self {
        self.boot_id = boot_id;
        self
    }

    /// Switches on a seeded bug, for the model checker's tests.
    #[cfg(feature = "mutations")]
    #[must_use]
    pub fn with_mutation(mut self, mutation: AgentMutation) -> Self {
        self.mutation = Some(mutation);
        self
    }

    /// With another wait between registration attempts.
    #[must_use]
    pub fn with_registration_retry(mut self, retry: DurationRange) -> Self {
        self.registration_retry = retry;
        self
    }

    /// With another status-update backoff: the first retry after `initial`, doubling up to
    /// `max` (at least `initial`).
    #[must_use]
    pub fn with_status_retry(mut self, initial: Duration, max: Duration) -> Self {
        self.status_retry_initial = initial;
        self.status_retry_max = max.max(initial);
        self
    }

    /// With another window for executors to reconnect after a restart.
    #[must_use]
    pub fn with_executor_reregister_timeout(mut self, timeout: Duration) -> Self {
        self.executor_reregister_timeout = timeout;
        self
    }

    /// With another leader-silence timeout.
    #[must_use]
    pub fn with_leader_silence_timeout(mut self, timeout: Duration) -> Self {
        self.leader_silence_timeout = timeout;
        self
    }

    /// The masters' addresses.
    pub fn masters(&self) -> &[Address] {
        &self.masters
    }

    /// Where this agent listens.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// Its host name and total resources.
    pub fn info(&self) -> &AgentInfo {
        &self.info
    }

    /// Its host's boot.
    pub fn boot_id(&self) -> &BootId {
        &self.boot_id
    }
}

/// Why an agent configuration is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentConfigError {
    /// An agent needs 1 to [`MASTERS_MAX`] masters.
    MasterCount {
        /// How many it was given.
        count: usize,
    },
}

impl fmt::Display for AgentConfigError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AgentConfigError::MasterCount { count } => write!(
                formatter,
                "an agent needs 1 to {MASTERS_MAX} master addresses, it was given {count}"
            ),
        }
    }
}

impl core::error::Error for AgentConfigError {}

/// Why an agent refuses to boot from its checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentBootError {
    /// The checkpointed tasks use more than the configured resources: the configuration
    /// shrank under running tasks. Restore the configuration, or remove the agent's work
    /// directory to start it as a new agent.
    TasksExceedResources {
        /// What the tasks use.
        used: Resources,
        /// What the configuration offers.
        total: Resources,
    },
    /// The checkpointed resources (reservations and volumes aside) differ from the
    /// configured ones: reservations and volumes would no longer fit.
    ResourcesChanged {
        /// The checkpoint's resources, reservations and volumes removed.
        checkpointed: Resources,
        /// The configured resources, likewise.
        configured: Resources,
    },
    /// The checkpoint holds more than [`AGENT_TASKS_MAX`] tasks.
    TooManyTasks {
        /// How many it holds.
        count: usize,
    },
}

impl fmt::Display for AgentBootError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AgentBootError::TasksExceedResources { used, total } => write!(
                formatter,
                "the checkpoint's tasks use {used}, more than the configured resources \
                 {total}: restore the configuration, or remove the agent's work directory to \
                 start it as a new agent"
            ),
            AgentBootError::ResourcesChanged {
                checkpointed,
                configured,
            } => write!(
                formatter,
                "the checkpoint's resources {checkpointed} (its reservations and volumes \
                 included) differ from the configured {configured}: restore the \
                 configuration, or remove the agent's work directory to start it as a new \
                 agent (its reservations and volumes are then lost)"
            ),
            AgentBootError::TooManyTasks { count } => write!(
                formatter,
                "the checkpoint holds {count} tasks, more than the {AGENT_TASKS_MAX} an agent \
                 may hold"
            ),
        }
    }
}

impl core::error::Error for AgentBootError {}

/// The agent's timers.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AgentTimer {
    /// Registering: try the next master.
    Registration,
    /// Registered: no ping from the leader for the silence timeout.
    LeaderSilence,
    /// Recovering: the executors' window to reconnect closed.
    ExecutorReregistration,
    /// The task's update in flight is due for a retry.
    StatusRetry {
        /// The task's framework.
        framework: FrameworkId,
        /// The task.
        task: TaskId,
    },
}

/// Something the agent's node saw locally.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentEvent {
    /// An executor reported a task's new state.
    TaskStateReported {
        /// The task's framework.
        framework: FrameworkId,
        /// The executor.
        executor: ExecutorId,
        /// The task.
        task: TaskId,
        /// Its new state.
        state: TaskState,
        /// Why, when the state alone does not say.
        reason: Option<TaskStatusReason>,
    },
    /// An executor connected, with the tasks it runs (after an agent restart, the ones that
    /// survived).
    ExecutorConnected {
        /// The executor's framework.
        framework: FrameworkId,
        /// The executor.
        executor: ExecutorId,
        /// The tasks it runs.
        tasks: BoundedVec<TaskId, AGENT_TASKS_MAX>,
    },
    /// An executor process exited.
    ExecutorExited {
        /// The executor's framework.
        framework: FrameworkId,
        /// The executor.
        executor: ExecutorId,
    },
}

/// What the agent's node does for it besides messages, timers and checkpoints.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AgentAction {
    /// Start an executor process.
    StartExecutor {
        /// Its framework.
        framework: FrameworkId,
        /// The executor.
        executor: ExecutorId,
    },
    /// Hand a task to its executor (once the executor connects).
    LaunchTask {
        /// The task's framework.
        framework: FrameworkId,
        /// The executor.
        executor: ExecutorId,
        /// The task.
        task: TaskId,
        /// What it uses: the node makes its persistent volumes available at their container
        /// paths.
        resources: Resources,
        /// What it runs.
        command: TaskCommand,
    },
    /// Kill a task: its executor kills it and reports `KILLED`
    /// ([`AgentEvent::TaskStateReported`]).
    KillTask {
        /// The task's framework.
        framework: FrameworkId,
        /// The executor that runs it.
        executor: ExecutorId,
        /// The task.
        task: TaskId,
    },
    /// Kill an executor and every task it runs at once, without its cooperation (it did not
    /// reconnect in time). The node finishes this before it executes anything after it in
    /// the outbox: the tasks' terminal updates follow it (A1).
    DestroyExecutor {
        /// Its framework.
        framework: FrameworkId,
        /// The executor.
        executor: ExecutorId,
    },
    /// Create a persistent volume's directory (`volumes/<role>/<id>/`), before the
    /// operation that created it is acknowledged.
    CreateVolumeDirectory {
        /// The role whose reserved disk it is on.
        role: Role,
        /// The volume.
        volume: VolumeId,
    },
    /// Delete a destroyed volume's directory and its data (R4: only `DestroyVolume` does).
    DeleteVolumeDirectory {
        /// The role.
        role: Role,
        /// The volume.
        volume: VolumeId,
    },
    /// Stop an executor and every task it runs.
    ShutdownExecutor {
        /// Its framework.
        framework: FrameworkId,
        /// The executor.
        executor: ExecutorId,
    },
}

/// Where an agent stands with the masters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AgentPhase {
    /// Restarted from a checkpoint: waiting for these executors to reconnect before
    /// re-registering.
    Recovering {
        /// Executors not yet reconnected.
        awaiting: BTreeSet<(FrameworkId, ExecutorId)>,
    },
    /// Looking for the leader: registration goes to the masters in turn.
    Registering {
        /// The index of the next master to try.
        next_master: usize,
    },
    /// Registered with the leader of `term`.
    Registered {
        /// The leader.
        leader: Address,
        /// Its term.
        term: Term,
    },
}

/// An agent. See the [module docs](self) for the rules and the [crate docs](crate) for how
/// to drive it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Agent {
    config: Arc<AgentConfig>,
    durable: AgentDurable,
    phase: AgentPhase,
    /// Executors known to run: started by this agent process or reconnected to it.
    executors: BTreeSet<(FrameworkId, ExecutorId)>,
    /// Tasks whose oldest update is in flight, with the wait before its next retry.
    in_flight: BTreeMap<(FrameworkId, TaskId), Duration>,
}

impl Agent {
    /// The id the leader assigned, once registered.
    pub fn id(&self) -> Option<AgentId> {
        self.durable.agent
    }

    /// The highest term seen.
    pub fn highest_term(&self) -> Term {
        self.durable.highest_term
    }

    /// Where it stands with the masters.
    pub fn phase(&self) -> &AgentPhase {
        &self.phase
    }

    /// Its durable state (what it has persisted so far).
    pub fn durable(&self) -> &AgentDurable {
        &self.durable
    }

    /// The executors known to run.
    pub fn executors(&self) -> &BTreeSet<(FrameworkId, ExecutorId)> {
        &self.executors
    }

    /// Its configuration.
    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    /// Makes `record` durable (queued as a barrier) and folds it into the in-memory copy,
    /// through the same `apply` that recovery uses.
    fn record(&mut self, record: AgentRecord, out: &mut Outbox<Agent>) {
        durable::apply(&mut self.durable, &record);
        let skip = self.mutated(AgentMutation::UpdateNotPersisted)
            && matches!(record, AgentRecord::Update { .. });
        if !skip {
            out.persist(record);
        }
    }

    /// Whether the seeded bug `mutation` is switched on (never, outside the checker's tests).
    fn mutated(&self, mutation: AgentMutation) -> bool {
        self.config.mutation == Some(mutation)
    }

    /// The agent's resources: as configured, then as operations changed them.
    pub fn total(&self) -> &Resources {
        self.durable
            .resources
            .as_ref()
            .unwrap_or(&self.config.info.resources)
    }

    /// The agent's information as it reports it: its resources include its reservations and
    /// volumes.
    fn reported_info(&self) -> AgentInfo {
        AgentInfo {
            hostname: self.config.info.hostname.clone(),
            resources: self.total().clone(),
        }
    }

    /// The resources the tasks not yet terminal use.
    fn used_resources(durable: &AgentDurable) -> Option<Resources> {
        durable
            .tasks
            .values()
            .filter(|task| !task.state.is_terminal())
            .try_fold(Resources::new(), |sum, task| {
                sum.checked_add(&task.resources).ok()
            })
    }

    /// E3: whether a command of `term` may be obeyed. A higher term is persisted before
    /// anything the command causes.
    fn fence(&mut self, from: &Address, term: Term, out: &mut Outbox<Agent>) -> bool {
        let highest = self.durable.highest_term;
        if term < highest && !self.mutated(AgentMutation::ObeyLowerTerm) {
            out.note(Note::StaleTerm {
                peer: from.clone(),
                term,
                highest,
            });
            return false;
        }
        if term > highest {
            self.record(AgentRecord::TermSeen(term), out);
        }
        true
    }

    /// The registration to send: a re-registration with everything held once the agent has
    /// an id.
    fn registration(&self) -> Message {
        let Some(agent) = self.durable.agent else {
            return Message::RegisterAgent(Box::new(RegisterAgent {
                address: self.config.address.clone(),
                info: self.reported_info(),
                boot_id: self.config.boot_id.clone(),
                highest_term: self.durable.highest_term,
                report: self.durable.reports,
            }));
        };
        let tasks: Vec<TaskReport> = self
            .durable
            .tasks
            .iter()
            .map(|((framework, task), checkpoint)| TaskReport {
                framework: *framework,
                executor: checkpoint.executor.clone(),
                task: task.clone(),
                resources: checkpoint.resources.clone(),
                state: checkpoint.state,
                latest_update: checkpoint.unacknowledged.last().map(|update| update.update),
            })
            .collect();
        let unacknowledged: Vec<StatusUpdate> = self
            .durable
            .tasks
            .keys()
            .filter_map(|key| self.oldest_update(agent, key))
            .collect();
        Message::ReregisterAgent(Box::new(ReregisterAgent {
            agent,
            address: self.config.address.clone(),
            info: self.reported_info(),
            boot_id: self.config.boot_id.clone(),
            highest_term: self.durable.highest_term,
            tasks: BoundedVec::from_vec(tasks).expect("tasks are bounded at boot and launch"),
            unacknowledged: BoundedVec::from_vec(unacknowledged)
                .expect("at most one update per task"),
            operations: BoundedVec::from_vec(self.durable.operations.clone())
                .expect("the operations remembered are bounded"),
            report: self.durable.reports,
        }))
    }

    /// The task's oldest unacknowledged update, as sent.
    fn oldest_update(&self, agent: AgentId, key: &(FrameworkId, TaskId)) -> Option<StatusUpdate> {
        let checkpoint = self.durable.tasks.get(key)?;
        let oldest = checkpoint.unacknowledged.first()?;
        Some(StatusUpdate {
            agent,
            framework: key.0,
            task: key.1.clone(),
            state: oldest.state,
            reason: oldest.reason,
            update: oldest.update,
        })
    }

    /// Starts looking for the leader from the first master.
    fn start_registration(&mut self, out: &mut Outbox<Agent>) {
        self.phase = AgentPhase::Registering { next_master: 0 };
        self.record(AgentRecord::Reporting, out);
        self.try_next_master(out);
    }

    /// Registering: sends the registration to the next master in turn.
    fn try_next_master(&mut self, out: &mut Outbox<Agent>) {
        let AgentPhase::Registering { next_master } = &mut self.phase else {
            return;
        };
        let index = *next_master % self.config.masters.len();
        *next_master = index + 1;
        let master = self.config.masters[index].clone();
        out.send(master, self.registration());
        out.set_timer(AgentTimer::Registration, self.config.registration_retry);
    }

    /// Registers with the master at `leader`, which claims to lead.
    fn register_with(&mut self, leader: &Address, out: &mut Outbox<Agent>) {
        if let AgentPhase::Registered { .. } = &self.phase {
            out.cancel_timer(AgentTimer::LeaderSilence);
        }
        self.phase = AgentPhase::Registering { next_master: 0 };
        self.record(AgentRecord::Reporting, out);
        out.send(leader.clone(), self.registration());
        out.set_timer(AgentTimer::Registration, self.config.registration_retry);
    }

    /// The leader of `term` at `leader` (re-)admitted us: resend every task's oldest update.
    fn become_registered(
        &mut self,
        agent: AgentId,
        leader: &Address,
        term: Term,
        out: &mut Outbox<Agent>,
    ) {
        out.note(Note::RegisteredWithLeader {
            agent,
            leader: leader.clone(),
            term,
        });
        self.phase = AgentPhase::Registered {
            leader: leader.clone(),
            term,
        };
        out.cancel_timer(AgentTimer::Registration);
        out.set_timer(
            AgentTimer::LeaderSilence,
            DurationRange::fixed(self.config.leader_silence_timeout),
        );
        let keys: Vec<(FrameworkId, TaskId)> = self.durable.tasks.keys().cloned().collect();
        for key in keys {
            self.send_oldest_update(key, self.config.status_retry_initial, out);
        }
    }

    /// Sends the task's oldest unacknowledged update to the leader, if registered, and arms
    /// its retry after `backoff`.
    fn send_oldest_update(
        &mut self,
        key: (FrameworkId, TaskId),
        backoff: Duration,
        out: &mut Outbox<Agent>,
    ) {
        let AgentPhase::Registered { leader, .. } = &self.phase else {
            return;
        };
        let Some(agent) = self.durable.agent else {
            return;
        };
        let Some(update) = self.oldest_update(agent, &key) else {
            return;
        };
        out.send(leader.clone(), Message::StatusUpdate(update.clone()));
        if self.mutated(AgentMutation::AcknowledgeOnSend) {
            self.record(
                AgentRecord::Acknowledged {
                    framework: key.0,
                    task: key.1.clone(),
                    update: update.update,
                },
                out,
            );
            return self.send_oldest_update(key, backoff, out);
        }
        out.set_timer(
            AgentTimer::StatusRetry {
                framework: key.0,
                task: key.1.clone(),
            },
            DurationRange::fixed(backoff),
        );
        self.in_flight.insert(key, backoff);
    }

    /// A task reached `state`: persist the update, then send it if none is in flight (A2).
    /// Ignored for an unknown task, after a terminal state, for a repeated state, or when
    /// the task's queue is full.
    fn new_state(
        &mut self,
        key: (FrameworkId, TaskId),
        state: TaskState,
        reason: Option<TaskStatusReason>,
        out: &mut Outbox<Agent>,
    ) {
        let Some(checkpoint) = self.durable.tasks.get(&key) else {
            return;
        };
        if checkpoint.state.is_terminal() || checkpoint.state == state {
            return;
        }
        let room = if state.is_terminal() {
            TASK_UPDATES_PENDING_MAX
        } else {
            TASK_UPDATES_PENDING_MAX - 1
        };
        if checkpoint.unacknowledged.len() >= room {
            return;
        }
        let idle = checkpoint.unacknowledged.is_empty();
        let update = UpdateCheckpoint {
            state,
            reason,
            update: self.durable.next_update,
        };
        if state.is_terminal() && self.mutated(AgentMutation::DeleteVolumesWithTask) {
            for (volume, _) in checkpoint.resources.volumes() {
                if let (Some(role), Some(persistent)) = (volume.reservation.role(), &volume.volume)
                {
                    out.act(AgentAction::DeleteVolumeDirectory {
                        role: role.clone(),
                        volume: persistent.id.clone(),
                    });
                }
            }
        }
        self.record(
            AgentRecord::Update {
                framework: key.0,
                task: key.1.clone(),
                update,
            },
            out,
        );
        if idle {
            self.send_oldest_update(key, self.config.status_retry_initial, out);
        }
    }

    /// Every task of `executor` not yet terminal.
    fn tasks_of(&self, executor: &(FrameworkId, ExecutorId)) -> Vec<(FrameworkId, TaskId)> {
        self.durable
            .tasks
            .iter()
            .filter(|((framework, _), checkpoint)| {
                *framework == executor.0
                    && checkpoint.executor == executor.1
                    && !checkpoint.state.is_terminal()
            })
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Recovery is over: the tasks of executors that did not return fail, then re-register.
    fn finish_recovery(&mut self, out: &mut Outbox<Agent>) {
        let AgentPhase::Recovering { awaiting } = &self.phase else {
            return;
        };
        let missing: Vec<(FrameworkId, ExecutorId)> = awaiting.iter().cloned().collect();
        for executor in &missing {
            // It may still run, cut off from the agent: it dies before its tasks are
            // reported failed, never after (A1).
            if !self.mutated(AgentMutation::FailWithoutDestroy) {
                out.act(AgentAction::DestroyExecutor {
                    framework: executor.0,
                    executor: executor.1.clone(),
                });
            }
            for key in self.tasks_of(executor) {
                self.new_state(
                    key,
                    TaskState::Failed,
                    Some(TaskStatusReason::ExecutorReregistrationTimeout),
                    out,
                );
            }
        }
        out.cancel_timer(AgentTimer::ExecutorReregistration);
        self.start_registration(out);
    }

    fn handle_leader_changed(
        &mut self,
        from: &Address,
        LeaderChanged { term }: LeaderChanged,
        out: &mut Outbox<Agent>,
    ) {
        if !self.fence(from, term, out) {
            return;
        }
        self.follow_leader_of(from, term, out);
    }

    /// A command of `term` from `from` (already fenced): if it is newer than the leader we
    /// are registered with, `from` leads now; re-register with it. While recovering, the
    /// registration waits for the executors.
    fn follow_leader_of(&mut self, from: &Address, term: Term, out: &mut Outbox<Agent>) {
        match &self.phase {
            AgentPhase::Recovering { .. } => {}
            AgentPhase::Registered { term: current, .. } if *current >= term => {}
            AgentPhase::Registered { .. } | AgentPhase::Registering { .. } => {
                self.register_with(from, out);
            }
        }
    }

    /// After obeying a command of `term`: if it is the highest term seen and newer than our
    /// leader's, its sender leads now; re-register with it.
    fn follow_newer_leader(&mut self, from: &Address, term: Term, out: &mut Outbox<Agent>) {
        if term == self.durable.highest_term {
            self.follow_leader_of(from, term, out);
        }
    }

    fn handle_ping(&mut self, from: &Address, ping: Ping, out: &mut Outbox<Agent>) {
        if !self.fence(from, ping.term, out) {
            return;
        }
        match &self.phase {
            AgentPhase::Registered { leader, term } if *term == ping.term && leader == from => {
                out.send(
                    from.clone(),
                    Message::Pong(Pong {
                        term: ping.term,
                        sequence: ping.sequence,
                    }),
                );
                out.set_timer(
                    AgentTimer::LeaderSilence,
                    DurationRange::fixed(self.config.leader_silence_timeout),
                );
            }
            _ => self.follow_leader_of(from, ping.term, out),
        }
    }

    fn handle_registered(
        &mut self,
        from: &Address,
        answer: AgentRegistered,
        reregistered: bool,
        out: &mut Outbox<Agent>,
    ) {
        if !self.fence(from, answer.term, out) {
            return;
        }
        if !matches!(self.phase, AgentPhase::Registering { .. })
            || answer.report != self.durable.reports
        {
            // Not looking for a leader, or the answer to an older attempt: the leader took
            // a report that may lack what the agent did since.
            return;
        }
        match self.durable.agent {
            // The id is persisted before it is used (a registration is a promise).
            None if !reregistered => self.record(AgentRecord::Registered(answer.agent), out),
            Some(agent) if agent == answer.agent => {}
            None | Some(_) => return,
        }
        self.become_registered(answer.agent, from, answer.term, out);
    }

    fn handle_leader_hint(&mut self, hint: LeaderHint, out: &mut Outbox<Agent>) {
        if hint.term < self.durable.highest_term {
            return;
        }
        if let (AgentPhase::Registering { .. }, Some(leader)) = (&self.phase, hint.leader)
            && self.config.masters.contains(&leader)
        {
            out.send(leader, self.registration());
        }
    }

    fn handle_shutdown(
        &mut self,
        from: &Address,
        shutdown: ShutdownAgent,
        out: &mut Outbox<Agent>,
    ) {
        if !self.fence(from, shutdown.term, out) || self.durable.agent != Some(shutdown.agent) {
            return;
        }
        let mut executors = self.executors.clone();
        for ((framework, _), task) in &self.durable.tasks {
            if !task.state.is_terminal() {
                executors.insert((*framework, task.executor.clone()));
            }
        }
        for (framework, executor) in executors {
            out.act(AgentAction::ShutdownExecutor {
                framework,
                executor,
            });
        }
        for (framework, task) in core::mem::take(&mut self.in_flight).into_keys() {
            out.cancel_timer(AgentTimer::StatusRetry { framework, task });
        }
        if matches!(self.phase, AgentPhase::Recovering { .. }) {
            out.cancel_timer(AgentTimer::ExecutorReregistration);
        }
        self.executors.clear();
        self.record(AgentRecord::Removed, out);
        self.register_with(from, out);
    }

    fn handle_run_task(&mut self, from: &Address, run: RunTask, out: &mut Outbox<Agent>) {
        if !self.fence(from, run.term, out) {
            return;
        }
        if !matches!(self.phase, AgentPhase::Registered { .. })
            || self.durable.tasks.len() >= AGENT_TASKS_MAX
        {
            return;
        }
        let key = (run.framework, run.task.clone());
        let ended =
            self.durable.completed.contains(&key) && !self.mutated(AgentMutation::ForgetEndedTasks);
        if self.durable.tasks.contains_key(&key) || ended {
            return; // A duplicate launch, or a late one of a task that ended (R5).
        }
        let fits = Agent::used_resources(&self.durable)
            .and_then(|used| used.checked_add(&run.resources).ok())
            .is_some_and(|needed| self.total().contains(&needed));
        let resources = if fits {
            run.resources
        } else {
            Resources::new()
        };
        self.record(
            AgentRecord::TaskLaunched {
                framework: run.framework,
                executor: run.executor.clone(),
                task: run.task.clone(),
                resources: resources.clone(),
                command: run.command.clone(),
            },
            out,
        );
        if !fits {
            self.new_state(
                key,
                TaskState::Error,
                Some(TaskStatusReason::ResourcesUnavailable),
                out,
            );
            return;
        }
        let executor = (run.framework, run.executor.clone());
        if self.executors.insert(executor) {
            out.act(AgentAction::StartExecutor {
                framework: run.framework,
                executor: run.executor.clone(),
            });
        }
        out.act(AgentAction::LaunchTask {
            framework: run.framework,
            executor: run.executor,
            task: run.task,
            resources,
            command: run.command,
        });
    }

    /// Resource operations from the leader: each is applied once (R5), persisted before it is
    /// answered, and answered with the agent's resources after it. One that the agent's
    /// resources do not hold, or that destroys a volume a task uses, fails and changes nothing.
    fn handle_apply_operations(
        &mut self,
        from: &Address,
        apply: ApplyOperations,
        out: &mut Outbox<Agent>,
    ) {
        if !self.fence(from, apply.term, out)
            || self.durable.agent != Some(apply.agent)
            || !matches!(self.phase, AgentPhase::Registered { .. })
        {
            return;
        }
        for operation in apply.operations.into_vec() {
            let key = (apply.framework, operation.id.clone());
            let state = if self.durable.operations.contains(&key)
                && !self.mutated(AgentMutation::ReapplyOperations)
            {
                OperationState::Finished // Applied already: answered again, not reapplied.
            } else {
                let in_use = operation.consumed.volumes().any(|(volume, _)| {
                    self.durable.tasks.values().any(|task| {
                        !task.state.is_terminal() && task.resources.keys().any(|key| key == volume)
                    })
                });
                let total = self
                    .total()
                    .checked_sub(&operation.consumed)
                    .ok()
                    .and_then(|rest| rest.checked_add(&operation.produced).ok());
                match (in_use, total) {
                    (true, _) => OperationState::Failed(OperationFailure::VolumeInUse),
                    (false, None) => OperationState::Failed(OperationFailure::ResourcesUnavailable),
                    (false, Some(total)) => {
                        self.apply_operation(apply.framework, &operation, total, out);
                        OperationState::Finished
                    }
                }
            };
            out.send(
                from.clone(),
                Message::OperationStatus(Box::new(OperationStatus {
                    term: self.durable.highest_term,
                    agent: Some(apply.agent),
                    framework: apply.framework,
                    operation: operation.id,
                    state,
                    total: Some(self.total().clone()),
                })),
            );
        }
    }

    /// Applies one operation: a new volume's directory exists before the change is
    /// persisted; a destroyed one's is deleted only after.
    fn apply_operation(
        &mut self,
        framework: FrameworkId,
        operation: &crate::message::AgentOperation,
        total: Resources,
        out: &mut Outbox<Agent>,
    ) {
        let volumes = |resources: &Resources| -> BTreeSet<(Role, VolumeId)> {
            resources
                .volumes()
                .filter_map(|(key, _)| {
                    let role = key.reservation.role()?.clone();
                    Some((role, key.volume.as_ref()?.id.clone()))
                })
                .collect()
        };
        let before = volumes(&operation.consumed);
        let after = volumes(&operation.produced);
        for (role, volume) in after.difference(&before) {
            out.act(AgentAction::CreateVolumeDirectory {
                role: role.clone(),
                volume: volume.clone(),
            });
        }
        self.record(
            AgentRecord::OperationApplied {
                framework,
                operation: operation.id.clone(),
                total,
            },
            out,
        );
        for (role, volume) in before.difference(&after) {
            out.act(AgentAction::DeleteVolumeDirectory {
                role: role.clone(),
                volume: volume.clone(),
            });
        }
    }

    /// A kill of a task the agent holds and that has not ended goes to its executor; the
    /// executor's report of `KILLED` becomes the task's update. A kill of an unknown or
    /// finished task changes nothing: the master answers for those from what it knows.
    fn handle_kill_task(&mut self, from: &Address, kill: KillTask, out: &mut Outbox<Agent>) {
        if !self.fence(from, kill.term, out) {
            return;
        }
        let key = (kill.framework, kill.task);
        let Some(checkpoint) = self.durable.tasks.get(&key) else {
            return;
        };
        if checkpoint.state.is_terminal() {
            return;
        }
        out.act(AgentAction::KillTask {
            framework: key.0,
            executor: checkpoint.executor.clone(),
            task: key.1,
        });
    }

    fn handle_acknowledgement(
        &mut self,
        from: &Address,
        acknowledgement: StatusAcknowledgement,
        out: &mut Outbox<Agent>,
    ) {
        if !self.fence(from, acknowledgement.term, out) {
            return;
        }
        let key = (acknowledgement.framework, acknowledgement.task.clone());
        let matches = self.durable.tasks.get(&key).is_some_and(|checkpoint| {
            checkpoint
                .unacknowledged
                .first()
                .is_some_and(|oldest| oldest.update == acknowledgement.update)
        });
        if !matches {
            return; // A duplicate, or for an update no longer in flight.
        }
        self.record(
            AgentRecord::Acknowledged {
                framework: acknowledgement.framework,
                task: acknowledgement.task.clone(),
                update: acknowledgement.update,
            },
            out,
        );
        self.in_flight.remove(&key);
        out.cancel_timer(AgentTimer::StatusRetry {
            framework: acknowledgement.framework,
            task: acknowledgement.task,
        });
        self.send_oldest_update(key, self.config.status_retry_initial, out);
    }

    fn handle_status_retry(&mut self, key: (FrameworkId, TaskId), out: &mut Outbox<Agent>) {
        let Some(backoff) = self.in_flight.remove(&key) else {
            return;
        };
        let next = backoff.saturating_mul(2).min(self.config.status_retry_max);
        self.send_oldest_update(key, next, out);
    }

    fn handle_executor_connected(
        &mut self,
        executor: (FrameworkId, ExecutorId),
        tasks: &BoundedVec<TaskId, AGENT_TASKS_MAX>,
        out: &mut Outbox<Agent>,
    ) {
        self.executors.insert(executor.clone());
        let AgentPhase::Recovering { awaiting } = &mut self.phase else {
            return;
        };
        if !awaiting.remove(&executor) {
            return;
        }
        let done = awaiting.is_empty();
        if self.mutated(AgentMutation::ForgetReconnectedTasks) {
            for key in self.tasks_of(&executor) {
                self.durable.tasks.remove(&key);
            }
        }
        // A task the checkpoint gives this executor but that it no longer runs ended while
        // the agent was down; its exit was not seen.
        for key in self.tasks_of(&executor) {
            if !tasks.iter().any(|task| *task == key.1) {
                self.new_state(
                    key,
                    TaskState::Failed,
                    Some(TaskStatusReason::ExecutorTerminated),
                    out,
                );
            }
        }
        if done {
            self.finish_recovery(out);
        }
    }

    fn handle_executor_exited(
        &mut self,
        executor: (FrameworkId, ExecutorId),
        out: &mut Outbox<Agent>,
    ) {
        self.executors.remove(&executor);
        for key in self.tasks_of(&executor) {
            self.new_state(
                key,
                TaskState::Failed,
                Some(TaskStatusReason::ExecutorTerminated),
                out,
            );
        }
        if let AgentPhase::Recovering { awaiting } = &mut self.phase
            && awaiting.remove(&executor)
            && awaiting.is_empty()
        {
            self.finish_recovery(out);
        }
    }

    /// Assertions that hold after every step.
    fn check_invariants(&self) {
        debug_assert!(
            self.in_flight.keys().all(|key| self
                .durable
                .tasks
                .get(key)
                .is_some_and(|task| !task.unacknowledged.is_empty())),
            "A2: only a task with an unacknowledged update has one in flight"
        );
        debug_assert!(
            self.durable.tasks.values().all(|task| {
                let updates = &task.unacknowledged;
                updates.len() <= TASK_UPDATES_PENDING_MAX
                    && updates
                        .iter()
                        .rev()
                        .skip(1)
                        .all(|update| !update.state.is_terminal())
            }),
            "A2: nothing follows a terminal update"
        );
        debug_assert!(self.durable.tasks.len() <= AGENT_TASKS_MAX);
        match &self.phase {
            AgentPhase::Registered { term, .. } => {
                debug_assert!(self.durable.agent.is_some(), "registered means an id");
                debug_assert!(*term <= self.durable.highest_term, "E3");
            }
            AgentPhase::Recovering { .. } => {
                debug_assert!(
                    self.in_flight.is_empty(),
                    "nothing is sent while recovering"
                );
            }
            AgentPhase::Registering { .. } => {}
        }
    }
}

impl Machine for Agent {
    type Config = AgentConfig;
    type Timer = AgentTimer;
    type Record = AgentRecord;
    type Durable = AgentDurable;
    type Event = AgentEvent;
    type Action = AgentAction;
    type BootError = AgentBootError;

    /// Boots from the checkpoint: refuses one that contradicts the configuration; on a new
    /// host boot, earlier tasks are lost; on the same boot, waits for the executors of the
    /// checkpointed tasks; otherwise registers at once.
    fn boot(
        config: &AgentConfig,
        durable: &AgentDurable,
        out: &mut Outbox<Agent>,
    ) -> Result<Agent, AgentBootError> {
        if durable.tasks.len() > AGENT_TASKS_MAX {
            return Err(AgentBootError::TooManyTasks {
                count: durable.tasks.len(),
            });
        }
        if let Some(checkpointed) = &durable.resources
            && checkpointed.stripped() != config.info.resources.stripped()
        {
            return Err(AgentBootError::ResourcesChanged {
                checkpointed: checkpointed.stripped(),
                configured: config.info.resources.stripped(),
            });
        }
        let total = durable.resources.as_ref().unwrap_or(&config.info.resources);
        match Agent::used_resources(durable) {
            Some(used) if total.contains(&used) => {}
            used => {
                return Err(AgentBootError::TasksExceedResources {
                    used: used.unwrap_or_default(),
                    total: total.clone(),
                });
            }
        }
        let mut agent = Agent {
            config: Arc::new(config.clone()),
            durable: durable.clone(),
            phase: AgentPhase::Registering { next_master: 0 },
            executors: BTreeSet::new(),
            in_flight: BTreeMap::new(),
        };
        let same_boot = durable.boot_id.as_ref() == Some(&config.boot_id);
        if !same_boot {
            agent.record(AgentRecord::Booted(config.boot_id.clone()), out);
            // The host rebooted: every executor died with it.
            let keys: Vec<(FrameworkId, TaskId)> = agent.durable.tasks.keys().cloned().collect();
            for key in keys {
                agent.new_state(
                    key,
                    TaskState::Lost,
                    Some(TaskStatusReason::AgentRestarted),
                    out,
                );
            }
        } else {
            let awaiting: BTreeSet<(FrameworkId, ExecutorId)> = agent
                .durable
                .tasks
                .iter()
                .filter(|(_, task)| !task.state.is_terminal())
                .map(|((framework, _), task)| (*framework, task.executor.clone()))
                .collect();
            if !awaiting.is_empty() {
                agent.phase = AgentPhase::Recovering { awaiting };
                out.set_timer(
                    AgentTimer::ExecutorReregistration,
                    DurationRange::fixed(agent.config.executor_reregister_timeout),
                );
                agent.check_invariants();
                return Ok(agent);
            }
        }
        agent.start_registration(out);
        agent.check_invariants();
        Ok(agent)
    }

    fn apply(durable: &mut AgentDurable, record: &AgentRecord) {
        durable::apply(durable, record);
    }

    /// Only the configured masters command an agent: anything else from another address is
    /// ignored, so no stranger can raise the agent's term and fence off the real leader.
    fn handle_message(&mut self, from: &Address, message: Message, out: &mut Outbox<Agent>) {
        if !self.config.masters.contains(from) {
            out.note(Note::UnknownPeer { peer: from.clone() });
            return;
        }
        match message {
            Message::LeaderHint(hint) => self.handle_leader_hint(hint, out),
            Message::LeaderChanged(changed) => self.handle_leader_changed(from, changed, out),
            Message::Ping(ping) => self.handle_ping(from, ping, out),
            Message::AgentRegistered(answer) => self.handle_registered(from, answer, false, out),
            Message::AgentReregistered(answer) => self.handle_registered(from, answer, true, out),
            Message::ShutdownAgent(shutdown) => self.handle_shutdown(from, shutdown, out),
            Message::RunTask(run) => {
                let term = run.term;
                self.handle_run_task(from, *run, out);
                self.follow_newer_leader(from, term, out);
            }
            Message::StatusAcknowledgement(acknowledgement) => {
                let term = acknowledgement.term;
                self.handle_acknowledgement(from, acknowledgement, out);
                self.follow_newer_leader(from, term, out);
            }
            Message::KillTask(kill) => {
                let term = kill.term;
                self.handle_kill_task(from, kill, out);
                self.follow_newer_leader(from, term, out);
            }
            Message::ApplyOperations(apply) => {
                let term = apply.term;
                self.handle_apply_operations(from, *apply, out);
                self.follow_newer_leader(from, term, out);
            }
            // Not for agents: ignored.
            Message::Pong(_)
            | Message::Election(_)
            | Message::FindLeader
            | Message::SetRoleWeight(_)
            | Message::MarkAgentGone(_)
            | Message::Committed(_)
            | Message::StateRequest
            | Message::StateReport(_)
            | Message::RegisterAgent(_)
            | Message::ReregisterAgent(_)
            | Message::StatusUpdate(_)
            | Message::Subscribe(_)
            | Message::Subscribed(_)
            | Message::FrameworkReplaced(_)
            | Message::Offers(_)
            | Message::Accept(_)
            | Message::Decline(_)
            | Message::Revive(_)
            | Message::TaskStatus(_)
            | Message::Acknowledge(_)
            | Message::Reconcile(_)
            | Message::Kill(_)
            | Message::OperationStatus(_)
            | Message::SubscriptionRefused(_)
            | Message::RescindOffer(_) => {}
        }
        self.check_invariants();
    }

    fn handle_timer(&mut self, timer: AgentTimer, out: &mut Outbox<Agent>) {
        match timer {
            AgentTimer::Registration => self.try_next_master(out),
            AgentTimer::LeaderSilence => {
                if let AgentPhase::Registered { leader, .. } = &self.phase {
                    out.note(Note::LeaderSilent {
                        leader: leader.clone(),
                    });
                    self.start_registration(out);
                }
            }
            AgentTimer::ExecutorReregistration => self.finish_recovery(out),
            AgentTimer::StatusRetry { framework, task } => {
                self.handle_status_retry((framework, task), out);
            }
        }
        self.check_invariants();
    }

    fn handle_event(&mut self, event: AgentEvent, out: &mut Outbox<Agent>) {
        match event {
            AgentEvent::TaskStateReported {
                framework,
                executor,
                task,
                state,
                reason,
            } => {
                let key = (framework, task);
                let owned = self
                    .durable
                    .tasks
                    .get(&key)
                    .is_some_and(|checkpoint| checkpoint.executor == executor);
                // Only the master reports these states; an executor cannot.
                let master_state = matches!(
                    state,
                    TaskState::Unreachable | TaskState::Gone | TaskState::Unknown
                );
                if owned && !master_state {
                    self.new_state(key, state, reason, out);
                }
            }
            AgentEvent::ExecutorConnected {
                framework,
                executor,
                tasks,
            } => self.handle_executor_connected((framework, executor), &tasks, out),
            AgentEvent::ExecutorExited {
                framework,
                executor,
            } => self.handle_executor_exited((framework, executor), out),
        }
        self.check_invariants();
    }
}

#[cfg(test)]
mod tests;
