//! The leader's table of one agent's tasks, with what its live tasks use kept summed.
//!
//! An allocation cycle needs, per agent, what its live (not terminal) tasks use, and per
//! framework, what its live tasks hold. Adding up every task the leader knows on every cycle
//! costs O(tasks ever reported), finished ones included, and the leader allocates after most
//! events; so the sums are kept up to date as tasks are added, change state and are removed.
//!
//! The sums are **derived data**: a function of the task map alone, so two tables with the
//! same tasks are equal and hash alike whatever order the changes came in (the model checker
//! compares and hashes the leader's state; the sums must not split one state into two).
//! [`AgentTasks::sums_are_exact`] recomputes them from scratch; the leader asserts it after
//! every step in debug builds.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::hash::{Hash, Hasher};
use core::ops::Deref;

use super::agents::{AgentView, TaskView};
use crate::bounded::Name;
use crate::ids::{AgentId, FrameworkId, TaskId};
use crate::resources::Resources;

/// One agent's tasks, with their latest known states: read it as the map it dereferences
/// to; change it through its methods, which keep the sums of its live tasks' resources.
#[derive(Clone, Debug)]
pub struct AgentTasks {
    tasks: BTreeMap<(FrameworkId, TaskId), TaskView>,
    sums: TaskSums,
}

/// What an agent's live tasks use, derived from its task map.
#[derive(Clone, Debug, PartialEq, Eq)]
struct TaskSums {
    /// The sum of the live tasks' resources; `None` when they do not add up (two of them
    /// claim one volume or one port, which only a misbehaving agent's report can cause).
    used: Option<Resources>,
    /// Per framework with live tasks here, their scalar resources by name, in thousandths:
    /// all that fair sharing reads of an allocation (ranges do not count in shares). A
    /// `u128` is wide enough that no sum of `u64` quantities over every task of a cluster
    /// overflows, so adding and subtracting are exact.
    by_framework: BTreeMap<FrameworkId, BTreeMap<Name, u128>>,
}

impl TaskSums {
    fn new() -> TaskSums {
        TaskSums {
            used: Some(Resources::new()),
            by_framework: BTreeMap::new(),
        }
    }

    /// The sums of `tasks`, from scratch.
    fn of(tasks: &BTreeMap<(FrameworkId, TaskId), TaskView>) -> TaskSums {
        let mut sums = TaskSums::new();
        sums.used = used_of(tasks);
        for ((framework, _), task) in live(tasks) {
            add_scalars(
                sums.by_framework.entry(*framework).or_default(),
                &task.resources,
            );
        }
        sums
    }
}

/// The sum of the live tasks' resources, from scratch; `None` if they do not add up.
fn used_of(tasks: &BTreeMap<(FrameworkId, TaskId), TaskView>) -> Option<Resources> {
    live(tasks).try_fold(Resources::new(), |sum, (_, task)| {
        sum.checked_add(&task.resources).ok()
    })
}

/// The tasks of `tasks` that are not terminal.
fn live(
    tasks: &BTreeMap<(FrameworkId, TaskId), TaskView>,
) -> impl Iterator<Item = (&(FrameworkId, TaskId), &TaskView)> {
    tasks.iter().filter(|(_, task)| !task.state.is_terminal())
}

/// Adds the scalars of `resources` to `sums`, by name.
pub(super) fn add_scalars(sums: &mut BTreeMap<Name, u128>, resources: &Resources) {
    for (key, quantity) in resources.scalars() {
        *sums.entry(key.name.clone()).or_insert(0) += u128::from(quantity.thousandths());
    }
}

/// Subtracts the scalars of `resources` from `sums`, by name; names that reach zero go.
fn subtract_scalars(sums: &mut BTreeMap<Name, u128>, resources: &Resources) {
    for (key, quantity) in resources.scalars() {
        if let Some(sum) = sums.get_mut(&key.name) {
            *sum = sum.saturating_sub(u128::from(quantity.thousandths()));
            if *sum == 0 {
                sums.remove(&key.name);
            }
        }
    }
}

impl AgentTasks {
    /// No tasks.
    pub fn new() -> AgentTasks {
        AgentTasks {
            tasks: BTreeMap::new(),
            sums: TaskSums::new(),
        }
    }

    /// What the live tasks use; `None` if their resources do not add up (the agent is then
    /// not offered until they do).
    pub fn used(&self) -> Option<&Resources> {
        self.sums.used.as_ref()
    }

    /// Per framework with live tasks on the agent: their scalar resources by name, in
    /// thousandths.
    pub fn framework_sums(&self) -> &BTreeMap<FrameworkId, BTreeMap<Name, u128>> {
        &self.sums.by_framework
    }

    /// Whether the kept sums equal a recomputation from the tasks (they always should).
    pub fn sums_are_exact(&self) -> bool {
        self.sums == TaskSums::of(&self.tasks)
    }

    /// Records `task` under `key`, replacing (and returning) what was there.
    pub(super) fn insert(
        &mut self,
        key: (FrameworkId, TaskId),
        task: TaskView,
    ) -> Option<TaskView> {
        let framework = key.0;
        let (live, resources) = (!task.state.is_terminal(), task.resources.clone());
        let previous = self.tasks.insert(key, task);
        if let Some(previous) = &previous {
            self.discount(
                framework,
                !previous.state.is_terminal(),
                &previous.resources,
            );
        }
        self.count(framework, live, &resources);
        self.settle();
        previous
    }

    /// Forgets the task under `key`, returning it.
    pub(super) fn remove(&mut self, key: &(FrameworkId, TaskId)) -> Option<TaskView> {
        let removed = self.tasks.remove(key)?;
        self.discount(key.0, !removed.state.is_terminal(), &removed.resources);
        self.settle();
        Some(removed)
    }

    /// Forgets every task.
    pub(super) fn clear(&mut self) {
        *self = AgentTasks::new();
    }

    /// Changes the task under `key` with `change`, if there is one.
    pub(super) fn update<T>(
        &mut self,
        key: &(FrameworkId, TaskId),
        change: impl FnOnce(&mut TaskView) -> T,
    ) -> Option<T> {
        let task = self.tasks.get_mut(key)?;
        let (was_live, resources) = (!task.state.is_terminal(), task.resources.clone());
        let result = change(task);
        let is_live = !task.state.is_terminal();
        if was_live != is_live || resources != task.resources {
            let now = task.resources.clone();
            self.discount(key.0, was_live, &resources);
            self.count(key.0, is_live, &now);
            self.settle();
        }
        Some(result)
    }

    /// Changes every task with `change`; the sums are recomputed (this touches every task
    /// anyway).
    pub(super) fn update_all(
        &mut self,
        mut change: impl FnMut(&(FrameworkId, TaskId), &mut TaskView),
    ) {
        for (key, task) in &mut self.tasks {
            change(key, task);
        }
        self.sums = TaskSums::of(&self.tasks);
    }

    /// Counts a task of `framework` that uses `resources` in the sums, if it is live.
    fn count(&mut self, framework: FrameworkId, live: bool, resources: &Resources) {
        if !live {
            return;
        }
        self.sums.used = self
            .sums
            .used
            .take()
            .and_then(|used| used.checked_add(resources).ok());
        add_scalars(
            self.sums.by_framework.entry(framework).or_default(),
            resources,
        );
    }

    /// Takes a task of `framework` that used `resources` out of the sums, if it was live.
    fn discount(&mut self, framework: FrameworkId, live: bool, resources: &Resources) {
        if !live {
            return;
        }
        self.sums.used = self
            .sums
            .used
            .take()
            .and_then(|used| used.checked_sub(resources).ok());
        if let Some(sums) = self.sums.by_framework.get_mut(&framework) {
            subtract_scalars(sums, resources);
            if sums.is_empty() {
                self.sums.by_framework.remove(&framework);
            }
        }
    }

    /// After a change: a sum of used resources that does not add up may add up again (a
    /// task that overlapped another is gone), which only a recomputation tells. Rare: only a
    /// misbehaving agent's report makes tasks overlap.
    fn settle(&mut self) {
        if self.sums.used.is_none() {
            self.sums.used = used_of(&self.tasks);
        }
    }
}

impl Default for AgentTasks {
    fn default() -> AgentTasks {
        AgentTasks::new()
    }
}

impl From<BTreeMap<(FrameworkId, TaskId), TaskView>> for AgentTasks {
    fn from(tasks: BTreeMap<(FrameworkId, TaskId), TaskView>) -> AgentTasks {
        let sums = TaskSums::of(&tasks);
        AgentTasks { tasks, sums }
    }
}

impl Deref for AgentTasks {
    type Target = BTreeMap<(FrameworkId, TaskId), TaskView>;

    fn deref(&self) -> &BTreeMap<(FrameworkId, TaskId), TaskView> {
        &self.tasks
    }
}

impl<'a> IntoIterator for &'a AgentTasks {
    type Item = (&'a (FrameworkId, TaskId), &'a TaskView);
    type IntoIter = alloc::collections::btree_map::Iter<'a, (FrameworkId, TaskId), TaskView>;

    fn into_iter(self) -> Self::IntoIter {
        self.tasks.iter()
    }
}

/// Equal when the tasks are: the sums are derived from them.
impl PartialEq for AgentTasks {
    fn eq(&self, other: &AgentTasks) -> bool {
        self.tasks == other.tasks
    }
}

impl Eq for AgentTasks {}

/// Hashes the tasks only: the sums are derived from them.
impl Hash for AgentTasks {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.tasks.hash(state);
    }
}

/// Which agents hold each task, by framework and task id: derived from the agents' task
/// tables, so that finding a task's agent (a launch checks that its task id is new, a kill
/// and a reconciliation look the task up) costs a lookup instead of a scan of every agent.
/// Left out of equality and hashing like the sums; the leader asserts in debug builds that
/// it equals a recomputation.
#[derive(Clone, Debug, Default)]
pub(super) struct TaskIndex {
    /// The agents of each task, sorted and without repeats. Nearly always one: a vector
    /// of one holds it in 16 bytes, where a set took a tree node of about 190 per task.
    agents: BTreeMap<(FrameworkId, TaskId), Vec<AgentId>>,
}

impl TaskIndex {
    /// The index of `agents`, from scratch.
    pub(super) fn of(agents: &BTreeMap<AgentId, AgentView>) -> TaskIndex {
        let mut index = TaskIndex::default();
        for (agent, view) in agents {
            index.add_all(*agent, &view.tasks);
        }
        index
    }

    /// The agents that hold the task, in id order.
    pub(super) fn agents_of(
        &self,
        key: &(FrameworkId, TaskId),
    ) -> impl Iterator<Item = AgentId> + '_ {
        self.agents.get(key).into_iter().flatten().copied()
    }

    /// Whether some agent holds the task.
    pub(super) fn contains(&self, key: &(FrameworkId, TaskId)) -> bool {
        self.agents.contains_key(key)
    }

    /// `agent` holds the task.
    pub(super) fn add(&mut self, agent: AgentId, key: &(FrameworkId, TaskId)) {
        let agents = self
            .agents
            .entry(key.clone())
            .or_insert_with(|| Vec::with_capacity(1));
        if let Err(position) = agents.binary_search(&agent) {
            agents.insert(position, agent);
        }
    }

    /// `agent` no longer holds the task.
    pub(super) fn remove(&mut self, agent: AgentId, key: &(FrameworkId, TaskId)) {
        if let Some(agents) = self.agents.get_mut(key) {
            if let Ok(position) = agents.binary_search(&agent) {
                agents.remove(position);
            }
            if agents.is_empty() {
                self.agents.remove(key);
            }
        }
    }

    /// `agent` holds every task of `tasks`.
    pub(super) fn add_all(&mut self, agent: AgentId, tasks: &AgentTasks) {
        for key in tasks.keys() {
            self.add(agent, key);
        }
    }

    /// `agent` holds none of the tasks of `tasks` any more.
    pub(super) fn remove_all(&mut self, agent: AgentId, tasks: &AgentTasks) {
        for key in tasks.keys() {
            self.remove(agent, key);
        }
    }

    /// Whether the index is what a recomputation from `agents` gives (it always should).
    pub(super) fn is_exact(&self, agents: &BTreeMap<AgentId, AgentView>) -> bool {
        self.agents == TaskIndex::of(agents).agents
    }
}

/// Always equal: the index is derived from the agents' tables, which are compared.
impl PartialEq for TaskIndex {
    fn eq(&self, _: &TaskIndex) -> bool {
        true
    }
}

impl Eq for TaskIndex {}

/// Hashes nothing: the index is derived from the agents' tables, which are hashed.
impl Hash for TaskIndex {
    fn hash<H: Hasher>(&self, _: &mut H) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::AssignedId;
    use crate::ids::Term;
    use crate::task::TaskState;

    fn key(framework: u64, task: &str) -> (FrameworkId, TaskId) {
        let framework = FrameworkId(AssignedId {
            term: Term(1),
            sequence: framework,
        });
        (framework, TaskId::new(task).expect("valid"))
    }

    fn task(state: TaskState, resources: &str) -> TaskView {
        TaskView {
            executor: None,
            state,
            update: None,
            resources: Resources::parse(resources).expect("valid"),
            launch: None,
        }
    }

    fn used(tasks: &AgentTasks) -> Option<alloc::string::String> {
        tasks.used().map(alloc::string::ToString::to_string)
    }

    #[test]
    fn the_sums_follow_tasks_as_they_start_change_and_go() {
        let mut tasks = AgentTasks::new();
        tasks.insert(
            key(1, "a"),
            task(TaskState::Running, "cpus:1;mem:64;ports:[1-2]"),
        );
        tasks.insert(key(1, "b"), task(TaskState::Staging, "cpus:2;ports:[3-3]"));
        tasks.insert(key(2, "c"), task(TaskState::Finished, "cpus:8"));
        assert!(tasks.sums_are_exact());
        assert_eq!(used(&tasks).as_deref(), Some("cpus:3;mem:64;ports:[1-3]"));
        assert_eq!(
            tasks.framework_sums().len(),
            1,
            "a finished task holds nothing"
        );

        tasks.update(&key(1, "a"), |task| task.state = TaskState::Finished);
        assert!(tasks.sums_are_exact());
        assert_eq!(used(&tasks).as_deref(), Some("cpus:2;ports:[3-3]"));

        tasks.remove(&key(1, "b"));
        tasks.remove(&key(2, "c"));
        assert!(tasks.sums_are_exact());
        assert_eq!(used(&tasks).as_deref(), Some(""));
        assert!(tasks.framework_sums().is_empty());
    }

    #[test]
    fn overlapping_tasks_do_not_add_up_until_one_ends() {
        // Only a misbehaving agent reports two live tasks on one port.
        let mut tasks = AgentTasks::new();
        tasks.insert(key(1, "a"), task(TaskState::Running, "cpus:1;ports:[5-5]"));
        tasks.insert(key(1, "b"), task(TaskState::Running, "cpus:1;ports:[5-5]"));
        assert!(tasks.sums_are_exact());
        assert_eq!(used(&tasks), None, "the agent is not offered meanwhile");
        tasks.update(&key(1, "b"), |task| task.state = TaskState::Failed);
        assert!(tasks.sums_are_exact());
        assert_eq!(used(&tasks).as_deref(), Some("cpus:1;ports:[5-5]"));
    }

    #[test]
    fn equal_tasks_are_equal_whatever_their_history() {
        let mut direct = AgentTasks::new();
        direct.insert(key(1, "a"), task(TaskState::Running, "cpus:1"));
        let mut roundabout = AgentTasks::new();
        roundabout.insert(key(1, "b"), task(TaskState::Running, "cpus:2"));
        roundabout.insert(key(1, "a"), task(TaskState::Staging, "cpus:1"));
        roundabout.remove(&key(1, "b"));
        roundabout.update(&key(1, "a"), |task| task.state = TaskState::Running);
        assert_eq!(direct, roundabout);
        assert_eq!(
            AgentTasks::from(BTreeMap::from([(
                key(1, "a"),
                task(TaskState::Running, "cpus:1")
            )])),
            roundabout
        );
    }
}
