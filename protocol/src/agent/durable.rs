//! What an agent checkpoints: its [`AgentRecord`]s and their fold, [`AgentDurable`].

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::ids::{AgentId, BootId, ExecutorId, FrameworkId, OperationId, TaskId, Term, UpdateId};
use crate::resources::Resources;
use crate::task::{TaskCommand, TaskState, TaskStatusReason};

/// One durable change of an agent. Each is small: a status update costs one append.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AgentRecord {
    /// The agent booted on this host boot.
    Booted(BootId),
    /// The highest term seen grew; persisted so fencing (E3) survives a restart.
    TermSeen(Term),
    /// The leader admitted the agent under this id. Persisted before the id is used.
    Registered(AgentId),
    /// The agent accepted a task to run.
    TaskLaunched {
        /// The task's framework.
        framework: FrameworkId,
        /// The executor that runs it.
        executor: ExecutorId,
        /// The task.
        task: TaskId,
        /// What it uses.
        resources: Resources,
        /// What it runs.
        command: TaskCommand,
    },
    /// A task reached a new state; the update is persisted before it is sent (A2).
    Update {
        /// The task's framework.
        framework: FrameworkId,
        /// The task.
        task: TaskId,
        /// The update.
        update: UpdateCheckpoint,
    },
    /// The task's oldest unacknowledged update was acknowledged.
    Acknowledged {
        /// The task's framework.
        framework: FrameworkId,
        /// The task.
        task: TaskId,
        /// The update acknowledged.
        update: UpdateId,
    },
    /// The agent was marked gone: it forgets its id and tasks and registers anew. It keeps
    /// its highest term, boot id, update counter, reservations and volumes.
    Removed,
    /// A resource operation (reserve, unreserve, create or destroy a volume) was applied:
    /// the agent's resources are now `total`. Persisted before it is acknowledged (R5).
    OperationApplied {
        /// The operation's framework.
        framework: FrameworkId,
        /// The operation.
        operation: OperationId,
        /// The agent's resources after it.
        total: Resources,
    },
    /// The agent starts looking for a leader: a new registration attempt, numbered so that
    /// a leader can tell a delayed copy of an older report from a newer one.
    Reporting,
}

/// How many applied operations an agent remembers, to apply a resent one only once (R5).
pub const OPERATIONS_REMEMBERED: usize = 1024;

/// An agent's durable state: the fold of its records by [`Agent::apply`](crate::Machine::apply).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AgentDurable {
    /// The id the leader assigned, once registered.
    pub agent: Option<AgentId>,
    /// The highest term seen (E3).
    pub highest_term: Term,
    /// The host boot the agent last ran on.
    pub boot_id: Option<BootId>,
    /// The id of the next status update.
    pub next_update: UpdateId,
    /// Every task the agent holds, until its terminal update is acknowledged.
    pub tasks: BTreeMap<(FrameworkId, TaskId), TaskCheckpoint>,
    /// Its resources as operations changed them (reservations, volumes); `None` until the
    /// first operation: the configured resources.
    pub resources: Option<Resources>,
    /// The last [`OPERATIONS_REMEMBERED`] operations applied, oldest first.
    pub operations: Vec<(FrameworkId, OperationId)>,
    /// The last [`TASKS_REMEMBERED`] tasks that ended and were forgotten, oldest first: a
    /// late or duplicated launch of one of them is not run again (R5).
    pub completed: Vec<(FrameworkId, TaskId)>,
    /// Registration attempts started: the number of the current one.
    pub reports: u64,
}

/// How many ended tasks an agent remembers, to refuse a late duplicate of their launch.
pub const TASKS_REMEMBERED: usize = 1024;

/// What an agent keeps about one task.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TaskCheckpoint {
    /// The executor that runs it.
    pub executor: ExecutorId,
    /// What it uses of the agent's resources.
    pub resources: Resources,
    /// What it runs.
    pub command: TaskCommand,
    /// Its latest state.
    pub state: TaskState,
    /// Its updates not yet acknowledged, oldest first; the oldest is the one in flight.
    pub unacknowledged: Vec<UpdateCheckpoint>,
}

/// One checkpointed status update.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UpdateCheckpoint {
    /// The task's new state.
    pub state: TaskState,
    /// Why.
    pub reason: Option<TaskStatusReason>,
    /// The update's id.
    pub update: UpdateId,
}

/// Folds one record into the durable state. Total: a record that does not fit changes
/// nothing.
pub(crate) fn apply(durable: &mut AgentDurable, record: &AgentRecord) {
    match record {
        AgentRecord::Booted(boot_id) => durable.boot_id = Some(boot_id.clone()),
        AgentRecord::TermSeen(term) => durable.highest_term = durable.highest_term.max(*term),
        AgentRecord::Registered(agent) => durable.agent = Some(*agent),
        AgentRecord::Reporting => durable.reports = durable.reports.saturating_add(1),
        AgentRecord::TaskLaunched {
            framework,
            executor,
            task,
            resources,
            command,
        } => {
            durable
                .tasks
                .entry((*framework, task.clone()))
                .or_insert_with(|| TaskCheckpoint {
                    executor: executor.clone(),
                    resources: resources.clone(),
                    command: command.clone(),
                    state: TaskState::Staging,
                    unacknowledged: Vec::new(),
                });
        }
        AgentRecord::Update {
            framework,
            task,
            update,
        } => {
            if let Some(checkpoint) = durable.tasks.get_mut(&(*framework, task.clone())) {
                checkpoint.state = update.state;
                checkpoint.unacknowledged.push(update.clone());
                durable.next_update = durable.next_update.max(UpdateId(update.update.0 + 1));
            }
        }
        AgentRecord::Acknowledged {
            framework,
            task,
            update,
        } => {
            let key = (*framework, task.clone());
            if let Some(checkpoint) = durable.tasks.get_mut(&key)
                && checkpoint
                    .unacknowledged
                    .first()
                    .is_some_and(|oldest| oldest.update == *update)
            {
                checkpoint.unacknowledged.remove(0);
                if checkpoint.unacknowledged.is_empty() && checkpoint.state.is_terminal() {
                    durable.tasks.remove(&key);
                    if durable.completed.len() >= TASKS_REMEMBERED {
                        durable.completed.remove(0);
                    }
                    durable.completed.push(key);
                }
            }
        }
        AgentRecord::Removed => {
            durable.agent = None;
            durable.tasks.clear();
        }
        AgentRecord::OperationApplied {
            framework,
            operation,
            total,
        } => {
            let key = (*framework, operation.clone());
            if !durable.operations.contains(&key) {
                if durable.operations.len() >= OPERATIONS_REMEMBERED {
                    durable.operations.remove(0);
                }
                durable.operations.push(key);
                durable.resources = Some(total.clone());
            }
        }
    }
}
