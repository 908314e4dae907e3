//! Seeded agent bugs for end-to-end tests (the `mutations` feature only): the agent reads
//! `BERTH_AGENT_MUTATION` when it starts and switches the named bug on, so that a test run
//! against real processes can show that a scenario catches it. A build without the feature
//! has no such variable and no such code.

use berth_protocol::agent::{AgentConfig, AgentMutation};

use super::AgentError;

/// The environment variable naming the mutation.
pub const MUTATION_VARIABLE: &str = "BERTH_AGENT_MUTATION";

/// Every mutation by the name the model checker's `--agent-mutation` uses.
const MUTATIONS: [(&str, AgentMutation); 6] = [
    ("update-not-persisted", AgentMutation::UpdateNotPersisted),
    ("acknowledge-on-send", AgentMutation::AcknowledgeOnSend),
    (
        "forget-reconnected-tasks",
        AgentMutation::ForgetReconnectedTasks,
    ),
    ("fail-without-destroy", AgentMutation::FailWithoutDestroy),
    ("obey-lower-term", AgentMutation::ObeyLowerTerm),
    ("forget-ended-tasks", AgentMutation::ForgetEndedTasks),
];

/// `config` with the mutation `BERTH_AGENT_MUTATION` names, if it is set.
pub fn from_environment(config: AgentConfig) -> Result<AgentConfig, AgentError> {
    let Ok(name) = std::env::var(MUTATION_VARIABLE) else {
        return Ok(config);
    };
    let Some((_, mutation)) = MUTATIONS.iter().find(|(known, _)| *known == name) else {
        return Err(AgentError::UnknownMutation { name });
    };
    tracing::warn!(mutation = %name, "running with a seeded bug: this agent is broken on purpose");
    Ok(config.with_mutation(*mutation))
}
