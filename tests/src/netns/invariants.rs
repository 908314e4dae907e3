//! The invariants of DESIGN.md as a test outside the processes can see them.
//!
//! [`Observer`] is fed every `berth state --json` the harness reads, during faults and
//! after, and remembers what it saw: a second leader for a term, a committed agent missing
//! from a later registry, or an agent whose id changed is a violation. [`TaskHistory`] is a
//! framework's view of its tasks, checked for A2 as the application sees it.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::Value;

/// What the observer remembers. See the [module docs](self).
#[derive(Debug, Default)]
pub struct Observer {
    /// E1: the leader each master named for each term.
    leaders: BTreeMap<u64, String>,
    /// E2: each agent id and the commit index of the first registry that listed it.
    agents_committed: BTreeMap<String, u64>,
    /// The id each agent address was admitted under.
    agent_ids: BTreeMap<String, String>,
    /// How many states were checked.
    states_checked: u64,
}

impl Observer {
    /// A fresh observer.
    pub fn new() -> Observer {
        Observer::default()
    }

    /// How many states were checked.
    pub fn states_checked(&self) -> u64 {
        self.states_checked
    }

    /// Every term a leader was seen in, and that leader.
    pub fn leaders(&self) -> &BTreeMap<u64, String> {
        &self.leaders
    }

    /// Checks `state` against everything seen before, then remembers it.
    ///
    /// # Errors
    /// The invariant violated, with the evidence.
    pub fn observe(&mut self, state: &Value) -> Result<(), String> {
        self.states_checked += 1;
        self.check_leaders(state)?;
        self.check_registry(state)
    }

    /// E1: at most one leader per term, over every answer of every master ever read.
    fn check_leaders(&mut self, state: &Value) -> Result<(), String> {
        for answer in state["masters"].as_array().into_iter().flatten() {
            if answer["answered"] != true {
                continue;
            }
            let (Some(term), Some(leader)) = (answer["term"].as_u64(), answer["leader"].as_str())
            else {
                continue;
            };
            match self.leaders.get(&term) {
                Some(known) if known != leader => {
                    return Err(format!(
                        "E1 violated: term {term} has two leaders, {known} and {leader} \
                         (master {} says so)",
                        answer["address"]
                    ));
                }
                Some(_) => {}
                None => {
                    self.leaders.insert(term, leader.to_string());
                }
            }
        }
        Ok(())
    }

    /// E2 as the registry shows it: an agent listed at commit index `i` is listed in every
    /// registry at an index of `i` or more (entries are never lost; agents are marked, never
    /// deleted). And an agent keeps its id across restarts, reboots and failovers.
    fn check_registry(&mut self, state: &Value) -> Result<(), String> {
        let Some(commit_index) = state["commit_index"].as_u64() else {
            return Ok(());
        };
        let agents: Vec<(&str, &str)> = state["agents"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|agent| Some((agent["id"].as_str()?, agent["address"].as_str()?)))
            .collect();
        for (id, first_seen) in &self.agents_committed {
            if commit_index >= *first_seen && !agents.iter().any(|(listed, _)| listed == id) {
                return Err(format!(
                    "E2 violated: agent {id}, committed by log index {first_seen}, is missing \
                     from the registry at log index {commit_index}: {state}"
                ));
            }
        }
        for (id, address) in agents {
            self.agents_committed
                .entry(id.to_string())
                .or_insert(commit_index);
            match self.agent_ids.get(address) {
                Some(known) if known != id => {
                    return Err(format!(
                        "the agent at {address} was {known} and is now {id}: an agent keeps its \
                         id across restarts, reboots and failovers"
                    ));
                }
                Some(_) => {}
                None => {
                    self.agent_ids.insert(address.to_string(), id.to_string());
                }
            }
        }
        Ok(())
    }
}

/// One status a framework received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusEvent {
    /// `TASK_RUNNING`, ...
    pub state: String,
    /// The agent's id, if known.
    pub agent: Option<String>,
    /// Why, if said (`AgentRestarted`, ...).
    pub reason: Option<String>,
    /// When the test read it.
    pub at: Instant,
}

/// Whether `state` (`TASK_...`) is terminal: nothing may follow it (A2).
pub fn is_terminal(state: &str) -> bool {
    matches!(
        state,
        "TASK_FINISHED"
            | "TASK_FAILED"
            | "TASK_KILLED"
            | "TASK_ERROR"
            | "TASK_LOST"
            | "TASK_DROPPED"
            | "TASK_GONE"
    )
}

/// The order of a task's life: a later update never goes back to an earlier stage.
/// `UNREACHABLE` and `UNKNOWN` may come and go while it runs.
fn stage(state: &str) -> Option<u8> {
    match state {
        "TASK_STAGING" => Some(0),
        "TASK_STARTING" => Some(1),
        "TASK_RUNNING" => Some(2),
        "TASK_KILLING" => Some(3),
        "TASK_UNREACHABLE" | "TASK_UNKNOWN" => None,
        _ => Some(4),
    }
}

/// A framework's view of its tasks: every status, in the order it arrived.
#[derive(Clone, Debug, Default)]
pub struct TaskHistory {
    tasks: BTreeMap<String, Vec<StatusEvent>>,
}

impl TaskHistory {
    /// Records a status of `task`.
    pub fn record(&mut self, task: &str, event: StatusEvent) {
        self.tasks.entry(task.to_string()).or_default().push(event);
    }

    /// Every task seen, with its statuses.
    pub fn tasks(&self) -> impl Iterator<Item = (&str, &[StatusEvent])> {
        self.tasks
            .iter()
            .map(|(task, events)| (task.as_str(), events.as_slice()))
    }

    /// The statuses of `task`.
    pub fn of(&self, task: &str) -> &[StatusEvent] {
        self.tasks.get(task).map_or(&[], Vec::as_slice)
    }

    /// The latest state of `task`.
    pub fn latest(&self, task: &str) -> Option<&StatusEvent> {
        self.of(task).last()
    }

    /// Whether `task` was ever reported in `state`.
    pub fn saw(&self, task: &str, state: &str) -> bool {
        self.of(task).iter().any(|event| event.state == state)
    }

    /// A2 as the application sees it: nothing after a terminal state, and no going back
    /// (RUNNING never followed by STARTING).
    ///
    /// # Errors
    /// The task and its statuses.
    pub fn check_order(&self) -> Result<(), String> {
        match self.order_violations(false).into_iter().next() {
            Some((_, violation)) => Err(violation),
            None => Ok(()),
        }
    }

    /// Like [`check_order`](Self::check_order), but an agent's update older than a state the
    /// framework learned by reconciliation is not a violation (a known protocol bug, see
    /// RELIABILITY.md): returns the tasks it happened to.
    ///
    /// # Errors
    /// Any other violation.
    pub fn check_order_but_stale_after_reconciliation(&self) -> Result<Vec<String>, String> {
        if let Some((_, violation)) = self.order_violations(true).into_iter().next() {
            return Err(violation);
        }
        Ok(self
            .order_violations(false)
            .into_iter()
            .map(|(task, _)| task)
            .collect())
    }

    /// Every task whose updates break A2, with what is wrong.
    fn order_violations(&self, tolerate_stale_after_reconciliation: bool) -> Vec<(String, String)> {
        let mut violations = Vec::new();
        for (task, events) in &self.tasks {
            let states: Vec<&str> = events.iter().map(|event| event.state.as_str()).collect();
            if let Some(terminal) = states.iter().position(|state| is_terminal(state))
                && terminal + 1 < states.len()
            {
                violations.push((
                    task.clone(),
                    format!(
                        "A2 violated: task {task} has updates after its terminal one: {states:?}"
                    ),
                ));
                continue;
            }
            // The highest stage so far, and whether reconciliation told it.
            let mut highest: Option<(u8, bool)> = None;
            for event in events {
                let Some(current) = stage(&event.state) else {
                    continue;
                };
                let reconciled = event.reason.as_deref() == Some("Reconciliation");
                match highest {
                    Some((top, top_reconciled)) if current < top => {
                        if !(tolerate_stale_after_reconciliation && top_reconciled) {
                            violations.push((
                                task.clone(),
                                format!("A2 violated: task {task}'s updates go back: {states:?}"),
                            ));
                            break;
                        }
                    }
                    _ => highest = Some((current, reconciled)),
                }
            }
        }
        violations
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn state(term: u64, leader: &str, commit_index: u64, agents: &[(&str, &str)]) -> Value {
        json!({
            "leader": leader,
            "term": term,
            "commit_index": commit_index,
            "masters": [{"address": leader, "term": term, "leader": leader, "answered": true}],
            "agents": agents
                .iter()
                .map(|(id, address)| json!({"id": id, "address": address}))
                .collect::<Vec<_>>(),
        })
    }

    #[test]
    fn two_leaders_in_a_term_are_caught() {
        let mut observer = Observer::new();
        assert!(observer.observe(&state(2, "10.0.0.1:5050", 3, &[])).is_ok());
        assert!(observer.observe(&state(3, "10.0.0.2:5050", 4, &[])).is_ok());
        let error = observer
            .observe(&state(2, "10.0.0.3:5050", 5, &[]))
            .expect_err("E1");
        assert!(error.contains("E1 violated"), "{error}");
    }

    #[test]
    fn a_lost_agent_is_caught_only_at_a_later_index() {
        let mut observer = Observer::new();
        let one = [("1-0", "10.0.0.9:5051")];
        assert!(observer.observe(&state(1, "m", 5, &one)).is_ok());
        assert!(
            observer.observe(&state(2, "m", 4, &[])).is_ok(),
            "a lagging registry may not have it yet"
        );
        let error = observer.observe(&state(2, "m", 6, &[])).expect_err("E2");
        assert!(error.contains("E2 violated"), "{error}");
    }

    #[test]
    fn an_agent_changing_its_id_is_caught() {
        let mut observer = Observer::new();
        assert!(
            observer
                .observe(&state(1, "m", 5, &[("1-0", "10.0.0.9:5051")]))
                .is_ok()
        );
        assert!(
            observer
                .observe(&state(
                    1,
                    "m",
                    6,
                    &[("1-0", "10.0.0.9:5051"), ("1-1", "10.0.0.9:5051")]
                ))
                .is_err()
        );
    }

    #[test]
    fn updates_after_a_terminal_one_are_caught() {
        let now = Instant::now();
        let event = |state: &str| StatusEvent {
            state: state.to_string(),
            agent: None,
            reason: None,
            at: now,
        };
        let mut history = TaskHistory::default();
        for state in [
            "TASK_STARTING",
            "TASK_RUNNING",
            "TASK_UNREACHABLE",
            "TASK_RUNNING",
        ] {
            history.record("t", event(state));
        }
        assert!(history.check_order().is_ok());
        history.record("t", event("TASK_LOST"));
        history.record("t", event("TASK_RUNNING"));
        assert!(history.check_order().is_err());
        let mut backwards = TaskHistory::default();
        backwards.record("u", event("TASK_RUNNING"));
        backwards.record("u", event("TASK_STARTING"));
        assert!(backwards.check_order().is_err());
        assert!(
            backwards
                .check_order_but_stale_after_reconciliation()
                .is_err()
        );
        let mut stale = TaskHistory::default();
        stale.record(
            "v",
            StatusEvent {
                reason: Some("Reconciliation".to_string()),
                ..event("TASK_RUNNING")
            },
        );
        stale.record("v", event("TASK_STARTING"));
        stale.record("v", event("TASK_RUNNING"));
        assert!(stale.check_order().is_err());
        assert_eq!(
            stale.check_order_but_stale_after_reconciliation(),
            Ok(vec!["v".to_string()])
        );
    }
}
