//! Task states and the reasons a task reaches them.

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::bounded::{BoundedText, TooLong};

/// The longest task command, in bytes.
pub const TASK_COMMAND_MAX: usize = 4096;

/// What a task runs: a shell command line, run with `sh -c` in the task's sandbox.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TaskCommand(BoundedText<TASK_COMMAND_MAX>);

impl TaskCommand {
    /// A command line of at most [`TASK_COMMAND_MAX`] bytes.
    pub fn new(command: &str) -> Result<TaskCommand, TooLong> {
        BoundedText::new(command).map(TaskCommand)
    }

    /// The command line.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Display for TaskCommand {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// The state of a task, as reported in status updates.
///
/// A task moves `Staging → Starting → Running → (Killing →)` a terminal state. Partition-aware
/// semantics: a task on an agent the master cannot reach is `Unreachable`, and a task whose
/// fate is not known is `Unknown`; neither is terminal, because the task may still be running.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TaskState {
    /// Accepted by the master, on its way to the agent.
    Staging,
    /// The agent's executor is starting it.
    Starting,
    /// Running.
    Running,
    /// A kill was requested and is in progress.
    Killing,
    /// Exited with status 0. Terminal.
    Finished,
    /// Exited with a non-zero status, or its executor failed. Terminal.
    Failed,
    /// Killed on request. Terminal.
    Killed,
    /// Could not be launched because its description was invalid. Terminal.
    Error,
    /// Lost, for example when its host rebooted. Terminal.
    Lost,
    /// Never reached its agent (the launch was dropped). Terminal.
    Dropped,
    /// Its agent is unreachable; the task may still run. Not terminal.
    Unreachable,
    /// Its agent was marked gone and will never come back. Terminal.
    Gone,
    /// The master does not know the task (reconciliation). Not terminal.
    Unknown,
}

impl TaskState {
    /// Every state, in declaration order.
    pub const ALL: [TaskState; 13] = [
        TaskState::Staging,
        TaskState::Starting,
        TaskState::Running,
        TaskState::Killing,
        TaskState::Finished,
        TaskState::Failed,
        TaskState::Killed,
        TaskState::Error,
        TaskState::Lost,
        TaskState::Dropped,
        TaskState::Unreachable,
        TaskState::Gone,
        TaskState::Unknown,
    ];

    /// Whether no update can follow this one (A2). `Unreachable` and `Unknown` are not
    /// terminal: the task may still be running somewhere.
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Finished
                | TaskState::Failed
                | TaskState::Killed
                | TaskState::Error
                | TaskState::Lost
                | TaskState::Dropped
                | TaskState::Gone
        )
    }

    /// The name operators see, as in Mesos: `TASK_RUNNING`.
    pub const fn name(self) -> &'static str {
        match self {
            TaskState::Staging => "TASK_STAGING",
            TaskState::Starting => "TASK_STARTING",
            TaskState::Running => "TASK_RUNNING",
            TaskState::Killing => "TASK_KILLING",
            TaskState::Finished => "TASK_FINISHED",
            TaskState::Failed => "TASK_FAILED",
            TaskState::Killed => "TASK_KILLED",
            TaskState::Error => "TASK_ERROR",
            TaskState::Lost => "TASK_LOST",
            TaskState::Dropped => "TASK_DROPPED",
            TaskState::Unreachable => "TASK_UNREACHABLE",
            TaskState::Gone => "TASK_GONE",
            TaskState::Unknown => "TASK_UNKNOWN",
        }
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.pad(self.name())
    }
}

/// Why a task reached its state, when the state alone does not say.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TaskStatusReason {
    /// The task's command exited.
    CommandExited,
    /// The framework asked to kill the task.
    KilledByFramework,
    /// The executor running the task terminated.
    ExecutorTerminated,
    /// The executor did not reconnect within the agent's executor re-register window after
    /// an agent restart.
    ExecutorReregistrationTimeout,
    /// The agent's host rebooted (its boot id changed), so the task's processes are gone.
    AgentRestarted,
    /// The master has not heard from the task's agent for `max_missed_pings` pings.
    AgentUnreachable,
    /// The agent was marked gone by an operator and will never return.
    AgentGone,
    /// The framework was removed after its failover timeout expired.
    FrameworkRemoved,
    /// The task's framework, agent or offer was not known where the launch arrived.
    InvalidOffers,
    /// The task description was invalid (for example a duplicate task id).
    TaskInvalid,
    /// The framework's principal may not launch in its role.
    TaskUnauthorized,
    /// The task's resources were no longer available on the agent.
    ResourcesUnavailable,
    /// The state was sent in answer to a reconciliation request.
    Reconciliation,
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn unreachable_and_unknown_are_not_terminal() {
        let terminal: alloc::vec::Vec<TaskState> = TaskState::ALL
            .into_iter()
            .filter(|state| state.is_terminal())
            .collect();
        assert_eq!(
            terminal,
            [
                TaskState::Finished,
                TaskState::Failed,
                TaskState::Killed,
                TaskState::Error,
                TaskState::Lost,
                TaskState::Dropped,
                TaskState::Gone,
            ]
        );
        assert!(!TaskState::Unreachable.is_terminal());
        assert!(!TaskState::Unknown.is_terminal());
        assert_eq!(TaskState::Running.to_string(), "TASK_RUNNING");
    }
}
