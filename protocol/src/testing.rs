//! An in-memory cluster for tests and examples: the real machines, a deterministic network,
//! manual time, and emulated executors and volume directories. Enabled by the `testing`
//! feature (and in this crate's own tests).
//!
//! Every input is a batch of one: each is followed by [`Machine::end_batch`].
//!
//! Everything is deterministic: messages take [`Cluster::latency`] to arrive and are
//! delivered in the order sent; a timer fires at a point of its range drawn from the cluster's
//! seed; the only other source of choice is the test itself (crash a node, cut a link, finish
//! a task). A third party can
//! drive its own runtime's expectations against it, and the seeded simulator builds on it.
//!
//! ```
//! use berth_protocol::testing::Cluster;
//! let mut cluster = Cluster::new();
//! cluster.add_masters(3);
//! cluster.run_for(core::time::Duration::from_secs(3));
//! assert!(cluster.leader().is_some());
//! ```

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::format;
use alloc::vec::Vec;
use core::time::Duration;

use crate::agent::{Agent, AgentAction, AgentConfig, AgentEvent};
use crate::bounded::{BoundedVec, Name};
use crate::ids::{ExecutorId, FrameworkId, MasterId, Role, TaskId, VolumeId};
use crate::master::{Master, MasterConfig};
use crate::message::Message;
use crate::registry::{AgentInfo, FrameworkInfo};
use crate::resources::Resources;
use crate::scheduler::{Scheduler, SchedulerAction, SchedulerConfig};
use crate::task::{TaskState, TaskStatusReason};
use crate::{Address, Command, Machine, Outbox};

/// One machine, its durable state and its timers.
#[derive(Clone, Debug)]
pub struct Node<M: Machine> {
    config: M::Config,
    /// `None` while crashed.
    machine: Option<M>,
    durable: M::Durable,
    timers: BTreeMap<M::Timer, Duration>,
}

impl<M: Machine> Node<M> {
    /// The running machine, if it is up.
    pub fn machine(&self) -> Option<&M> {
        self.machine.as_ref()
    }

    /// What it persisted.
    pub fn durable(&self) -> &M::Durable {
        &self.durable
    }

    /// Its timers due at `now`.
    fn due(&self, now: Duration) -> Vec<M::Timer> {
        self.timers
            .iter()
            .filter(|(_, deadline)| **deadline <= now)
            .map(|(timer, _)| timer.clone())
            .collect()
    }

    /// Fires `timer` if it is still set and the machine is up; the step's outbox.
    fn fire(&mut self, timer: M::Timer) -> Option<Outbox<M>> {
        self.timers.remove(&timer)?;
        let machine = self.machine.as_mut()?;
        let mut out = Outbox::new();
        machine.handle_timer(timer, &mut out);
        machine.end_batch(&mut out);
        Some(out)
    }
}

/// An emulated executor: the tasks it runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Executor {
    /// Its running tasks.
    pub running: BTreeSet<TaskId>,
}

/// An agent and what outlives its process: executors and volume directories.
#[derive(Clone, Debug)]
pub struct AgentHost {
    node: Node<Agent>,
    /// The executors, by framework and id.
    pub executors: BTreeMap<(FrameworkId, ExecutorId), Executor>,
    /// The volume directories and their contents.
    pub volumes: BTreeMap<(Role, VolumeId), Vec<u8>>,
    /// How many times each task was handed to an executor (R5: at most once).
    pub launches: BTreeMap<(FrameworkId, TaskId), u32>,
}

impl AgentHost {
    /// The agent machine and its checkpoint.
    pub fn node(&self) -> &Node<Agent> {
        &self.node
    }
}

/// A scheduler and what it told its application.
#[derive(Clone, Debug)]
pub struct SchedulerHost {
    node: Node<Scheduler>,
    /// Every action, in order.
    pub actions: Vec<SchedulerAction>,
}

impl SchedulerHost {
    /// The scheduler machine and its checkpoint.
    pub fn node(&self) -> &Node<Scheduler> {
        &self.node
    }

    /// The states passed on for `task`, in order.
    pub fn states_of(&self, task: &str) -> Vec<TaskState> {
        self.actions
            .iter()
            .filter_map(|action| match action {
                SchedulerAction::Status {
                    task: status_task,
                    state,
                    ..
                } if status_task.as_str() == task => Some(*state),
                _ => None,
            })
            .collect()
    }
}

/// The in-memory cluster. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct Cluster {
    now: Duration,
    /// How long a message takes.
    pub latency: Duration,
    masters: BTreeMap<Address, Node<Master>>,
    agents: BTreeMap<Address, AgentHost>,
    schedulers: BTreeMap<Address, SchedulerHost>,
    /// Messages in flight: (delivery time, sequence) → (from, to, message).
    network: BTreeMap<(Duration, u64), (Address, Address, Message)>,
    sequence: u64,
    /// Links cut, one way: (from, to).
    cut: BTreeSet<(Address, Address)>,
    /// The state of the generator that picks each timer's delay within its range.
    jitter: u64,
    /// One message in this many is delivered a second time, later (0: never).
    duplicate_one_in: u64,
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster::new()
    }
}

fn address(text: &str) -> Address {
    Address::new(text).expect("generated addresses are valid")
}

impl Cluster {
    /// An empty cluster at time zero, with a 1 ms network.
    pub fn new() -> Cluster {
        Cluster {
            now: Duration::ZERO,
            latency: Duration::from_millis(1),
            masters: BTreeMap::new(),
            agents: BTreeMap::new(),
            schedulers: BTreeMap::new(),
            network: BTreeMap::new(),
            sequence: 0,
            cut: BTreeSet::new(),
            jitter: 0x9e37_79b9_7f4a_7c15,
            duplicate_one_in: 0,
        }
    }

    /// Delivers one message in `n` a second time, up to a second later (0: never), as a
    /// network that retransmits can.
    pub fn duplicate_one_in(&mut self, n: u64) {
        self.duplicate_one_in = n;
    }

    /// The next draw of the cluster's generator (SplitMix64).
    fn draw(&mut self) -> u64 {
        self.jitter = self.jitter.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.jitter;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A cluster whose timer delays are drawn from `seed`.
    pub fn with_seed(seed: u64) -> Cluster {
        Cluster {
            jitter: seed,
            ..Cluster::new()
        }
    }

    /// When a timer set now with `duration` fires: a deterministic draw within its range
    /// (SplitMix64), so that masters do not time out in lockstep.
    fn deadline(&mut self, duration: crate::DurationRange) -> Duration {
        let z = self.draw();
        let spread = duration.max.saturating_sub(duration.min).as_micros() as u64;
        let extra = if spread == 0 { 0 } else { z % (spread + 1) };
        self.now + duration.min + Duration::from_micros(extra)
    }

    /// The time since the cluster started.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// The masters' addresses (`m1`, `m2`, …).
    pub fn master_addresses(&self) -> Vec<Address> {
        self.masters.keys().cloned().collect()
    }

    /// Adds `count` masters (1, 3 or 5) at `m1`…, with the default configuration.
    pub fn add_masters(&mut self, count: u8) {
        self.add_masters_with(count, |config| config);
    }

    /// Adds `count` masters, each configuration passed through `configure`.
    pub fn add_masters_with(
        &mut self,
        count: u8,
        configure: impl Fn(MasterConfig) -> MasterConfig,
    ) {
        let members: BTreeMap<MasterId, Address> = (1..=count)
            .map(|id| (MasterId(id), address(&format!("m{id}"))))
            .collect();
        for (id, at) in &members {
            let config =
                configure(MasterConfig::new(*id, members.clone()).expect("a valid membership"));
            self.masters.insert(
                at.clone(),
                Node {
                    config,
                    machine: None,
                    durable: Default::default(),
                    timers: BTreeMap::new(),
                },
            );
            self.boot_master(at);
        }
    }

    /// Adds an agent at `at` with `resources` (a resource string).
    pub fn add_agent(&mut self, at: &str, resources: &str) {
        self.add_agent_with(at, resources, |config| config);
    }

    /// Adds an agent, its configuration passed through `configure`.
    pub fn add_agent_with(
        &mut self,
        at: &str,
        resources: &str,
        configure: impl FnOnce(AgentConfig) -> AgentConfig,
    ) {
        let info = AgentInfo {
            hostname: Name::new(at).expect("a valid host name"),
            resources: Resources::parse(resources).expect("a valid resource string"),
        };
        let boot_id = crate::ids::BootId::new("boot-0").expect("valid");
        let config = configure(
            AgentConfig::new(self.master_addresses(), address(at), info, boot_id)
                .expect("a valid agent configuration"),
        );
        self.agents.insert(
            address(at),
            AgentHost {
                node: Node {
                    config,
                    machine: None,
                    durable: Default::default(),
                    timers: BTreeMap::new(),
                },
                executors: BTreeMap::new(),
                volumes: BTreeMap::new(),
                launches: BTreeMap::new(),
            },
        );
        self.boot_agent(&address(at));
    }

    /// Adds a scheduler at `at` for a framework of `role` (principal = role), configured by
    /// `configure`.
    pub fn add_scheduler(
        &mut self,
        at: &str,
        role: &str,
        configure: impl FnOnce(SchedulerConfig) -> SchedulerConfig,
    ) {
        let info = FrameworkInfo {
            name: Name::new(at).expect("valid"),
            role: Role::new(role).expect("a valid role"),
            principal: crate::ids::Principal::new(role).expect("a valid principal"),
            failover_timeout: Duration::from_secs(7 * 24 * 3600),
        };
        let config = configure(
            SchedulerConfig::new(address(at), self.master_addresses(), info)
                .expect("a valid scheduler configuration"),
        );
        self.schedulers.insert(
            address(at),
            SchedulerHost {
                node: Node {
                    config,
                    machine: None,
                    durable: Default::default(),
                    timers: BTreeMap::new(),
                },
                actions: Vec::new(),
            },
        );
        self.boot_scheduler(&address(at));
    }

    /// Every master, by address.
    pub fn masters(&self) -> &BTreeMap<Address, Node<Master>> {
        &self.masters
    }

    /// Every agent host, by address.
    pub fn agents(&self) -> &BTreeMap<Address, AgentHost> {
        &self.agents
    }

    /// Every scheduler host, by address.
    pub fn schedulers(&self) -> &BTreeMap<Address, SchedulerHost> {
        &self.schedulers
    }

    /// Whether the node at `at` runs (has not crashed, or was restarted).
    pub fn is_up(&self, at: &str) -> bool {
        let at = address(at);
        self.masters
            .get(&at)
            .map(|node| node.machine.is_some())
            .or_else(|| self.agents.get(&at).map(|host| host.node.machine.is_some()))
            .or_else(|| {
                self.schedulers
                    .get(&at)
                    .map(|host| host.node.machine.is_some())
            })
            .unwrap_or(false)
    }

    /// The master at `at`.
    pub fn master(&self, at: &str) -> &Node<Master> {
        &self.masters[&address(at)]
    }

    /// The agent host at `at`.
    pub fn agent(&self, at: &str) -> &AgentHost {
        &self.agents[&address(at)]
    }

    /// The scheduler host at `at`.
    pub fn scheduler(&self, at: &str) -> &SchedulerHost {
        &self.schedulers[&address(at)]
    }

    /// The address of the live master that leads in the highest term, if any.
    pub fn leader(&self) -> Option<Address> {
        self.masters
            .iter()
            .filter_map(|(at, node)| Some((at, node.machine.as_ref()?)))
            .filter(|(_, master)| master.is_leader())
            .max_by_key(|(_, master)| master.term())
            .map(|(at, _)| at.clone())
    }

    /// Crashes the node at `at`: it loses everything it did not persist; executors and
    /// volume directories of an agent survive.
    pub fn crash(&mut self, at: &str) {
        let at = address(at);
        if let Some(node) = self.masters.get_mut(&at) {
            node.machine = None;
            node.timers.clear();
        } else if let Some(host) = self.agents.get_mut(&at) {
            host.node.machine = None;
            host.node.timers.clear();
        } else if let Some(host) = self.schedulers.get_mut(&at) {
            host.node.machine = None;
            host.node.timers.clear();
        }
        self.network.retain(|_, (_, to, _)| *to != at);
    }

    /// Restarts a crashed node from what it persisted. A restarted agent's surviving
    /// executors reconnect at once.
    pub fn restart(&mut self, at: &str) {
        let at = address(at);
        if self.masters.contains_key(&at) {
            self.boot_master(&at);
        } else if self.agents.contains_key(&at) {
            self.boot_agent(&at);
            let executors: Vec<((FrameworkId, ExecutorId), Vec<TaskId>)> = self.agents[&at]
                .executors
                .iter()
                .map(|(key, executor)| (key.clone(), executor.running.iter().cloned().collect()))
                .collect();
            for ((framework, executor), tasks) in executors {
                self.agent_event(
                    &at,
                    AgentEvent::ExecutorConnected {
                        framework,
                        executor,
                        tasks: BoundedVec::from_vec(tasks).expect("bounded by the agent"),
                    },
                );
            }
        } else if self.schedulers.contains_key(&at) {
            self.boot_scheduler(&at);
        }
    }

    /// Cuts both directions between `a` and `b`.
    pub fn partition(&mut self, a: &str, b: &str) {
        self.cut.insert((address(a), address(b)));
        self.cut.insert((address(b), address(a)));
    }

    /// Heals every cut link.
    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// A task's command exits: `FINISHED` on `success`, `FAILED` otherwise.
    pub fn finish_task(&mut self, agent: &str, task: &str, success: bool) {
        let at = address(agent);
        let Some(host) = self.agents.get_mut(&at) else {
            return;
        };
        let found = host.executors.iter_mut().find_map(|(key, executor)| {
            executor
                .running
                .iter()
                .find(|running| running.as_str() == task)
                .cloned()
                .map(|task| (key.clone(), task))
        });
        let Some(((framework, executor), task)) = found else {
            return;
        };
        if let Some(running) = host.executors.get_mut(&(framework, executor.clone())) {
            running.running.remove(&task);
        }
        let (state, reason) = if success {
            (TaskState::Finished, Some(TaskStatusReason::CommandExited))
        } else {
            (TaskState::Failed, Some(TaskStatusReason::CommandExited))
        };
        self.agent_event(
            &at,
            AgentEvent::TaskStateReported {
                framework,
                executor,
                task,
                state,
                reason,
            },
        );
    }

    /// A running task writes `data` to a volume directory of its agent.
    pub fn write_volume(&mut self, agent: &str, role: &str, volume: &str, data: &[u8]) {
        let key = (
            Role::new(role).expect("valid"),
            VolumeId::new(volume).expect("valid"),
        );
        if let Some(contents) = self
            .agents
            .get_mut(&address(agent))
            .and_then(|host| host.volumes.get_mut(&key))
        {
            contents.extend_from_slice(data);
        }
    }

    /// The contents of a volume directory, if it exists.
    pub fn read_volume(&self, agent: &str, role: &str, volume: &str) -> Option<&[u8]> {
        let key = (
            Role::new(role).expect("valid"),
            VolumeId::new(volume).expect("valid"),
        );
        self.agents
            .get(&address(agent))?
            .volumes
            .get(&key)
            .map(Vec::as_slice)
    }

    /// Passes an application's event to a scheduler.
    pub fn scheduler_event(&mut self, at: &str, event: crate::scheduler::SchedulerEvent) {
        let at = address(at);
        let Some(host) = self.schedulers.get_mut(&at) else {
            return;
        };
        let Some(machine) = host.node.machine.as_mut() else {
            return;
        };
        let mut out = Outbox::new();
        machine.handle_event(event, &mut out);
        machine.end_batch(&mut out);
        self.execute_scheduler(&at, out);
    }

    /// Runs the cluster for `duration`: delivers messages and fires timers in time order.
    pub fn run_for(&mut self, duration: Duration) {
        let end = self.now + duration;
        while let Some(next) = self.next_event().filter(|next| *next <= end) {
            self.now = next;
            self.step();
        }
        self.now = end;
    }

    /// Runs until `done` holds or `limit` passes; returns whether it held.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Cluster) -> bool) -> bool {
        let end = self.now + limit;
        while !done(self) {
            match self.next_event().filter(|next| *next <= end) {
                Some(next) => {
                    self.now = next;
                    self.step();
                }
                None => {
                    self.now = end;
                    return done(self);
                }
            }
        }
        true
    }

    fn next_event(&self) -> Option<Duration> {
        let message = self.network.keys().next().map(|(at, _)| *at);
        let timers = self
            .masters
            .values()
            .flat_map(|node| node.timers.values())
            .chain(
                self.agents
                    .values()
                    .flat_map(|host| host.node.timers.values()),
            )
            .chain(
                self.schedulers
                    .values()
                    .flat_map(|host| host.node.timers.values()),
            )
            .min()
            .copied();
        match (message, timers) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Handles everything due now: first messages, then timers.
    fn step(&mut self) {
        let due: Vec<(Duration, u64)> = self
            .network
            .range(..=(self.now, u64::MAX))
            .map(|(key, _)| *key)
            .collect();
        for key in due {
            if let Some((from, to, message)) = self.network.remove(&key) {
                self.deliver(&from, &to, message);
            }
        }
        let now = self.now;
        // Timers due now, collected before any fires: what firing them sets waits for the
        // next step.
        let masters: Vec<(Address, Vec<crate::master::MasterTimer>)> = self
            .masters
            .iter()
            .map(|(at, node)| (at.clone(), node.due(now)))
            .collect();
        for (at, timers) in masters {
            for timer in timers {
                if let Some(out) = self.masters.get_mut(&at).and_then(|node| node.fire(timer)) {
                    self.execute_master(&at, out);
                }
            }
        }
        let agents: Vec<(Address, Vec<crate::agent::AgentTimer>)> = self
            .agents
            .iter()
            .map(|(at, host)| (at.clone(), host.node.due(now)))
            .collect();
        for (at, timers) in agents {
            for timer in timers {
                let fired = self
                    .agents
                    .get_mut(&at)
                    .and_then(|host| host.node.fire(timer));
                if let Some(out) = fired {
                    self.execute_agent(&at, out);
                }
            }
        }
        let schedulers: Vec<(Address, Vec<crate::scheduler::SchedulerTimer>)> = self
            .schedulers
            .iter()
            .map(|(at, host)| (at.clone(), host.node.due(now)))
            .collect();
        for (at, timers) in schedulers {
            for timer in timers {
                let fired = self
                    .schedulers
                    .get_mut(&at)
                    .and_then(|host| host.node.fire(timer));
                if let Some(out) = fired {
                    self.execute_scheduler(&at, out);
                }
            }
        }
    }

    fn deliver(&mut self, from: &Address, to: &Address, message: Message) {
        if let Some(machine) = self
            .masters
            .get_mut(to)
            .and_then(|node| node.machine.as_mut())
        {
            let mut out = Outbox::new();
            machine.handle_message(from, message, &mut out);
            machine.end_batch(&mut out);
            self.execute_master(to, out);
        } else if let Some(machine) = self
            .agents
            .get_mut(to)
            .and_then(|host| host.node.machine.as_mut())
        {
            let mut out = Outbox::new();
            machine.handle_message(from, message, &mut out);
            machine.end_batch(&mut out);
            self.execute_agent(to, out);
        } else if let Some(machine) = self
            .schedulers
            .get_mut(to)
            .and_then(|host| host.node.machine.as_mut())
        {
            let mut out = Outbox::new();
            machine.handle_message(from, message, &mut out);
            machine.end_batch(&mut out);
            self.execute_scheduler(to, out);
        }
    }

    fn send(&mut self, from: &Address, to: Address, message: Message) {
        if self.cut.contains(&(from.clone(), to.clone())) {
            return;
        }
        if self.duplicate_one_in > 0 && self.draw() % self.duplicate_one_in == 0 {
            let later = Duration::from_millis(self.draw() % 1000);
            self.sequence += 1;
            self.network.insert(
                (self.now + self.latency + later, self.sequence),
                (from.clone(), to.clone(), message.clone()),
            );
        }
        self.sequence += 1;
        self.network.insert(
            (self.now + self.latency, self.sequence),
            (from.clone(), to, message),
        );
    }

    fn boot_master(&mut self, at: &Address) {
        let node = self.masters.get_mut(at).expect("a master");
        let mut out = Outbox::new();
        let Ok(machine) = Master::boot(&node.config, &node.durable, &mut out);
        node.machine = Some(machine);
        self.execute_master(at, out);
    }

    fn boot_agent(&mut self, at: &Address) {
        let host = self.agents.get_mut(at).expect("an agent");
        let mut out = Outbox::new();
        let machine = Agent::boot(&host.node.config, &host.node.durable, &mut out)
            .unwrap_or_else(|error| panic!("the agent at {at} refused its checkpoint: {error}"));
        host.node.machine = Some(machine);
        self.execute_agent(at, out);
    }

    fn boot_scheduler(&mut self, at: &Address) {
        let host = self.schedulers.get_mut(at).expect("a scheduler");
        let mut out = Outbox::new();
        let Ok(machine) = Scheduler::boot(&host.node.config, &host.node.durable, &mut out);
        host.node.machine = Some(machine);
        self.execute_scheduler(at, out);
    }

    fn execute_master(&mut self, at: &Address, mut out: Outbox<Master>) {
        for command in out.drain() {
            match command {
                Command::Send { to, message } => self.send(at, to, message),
                Command::SetTimer { timer, duration } => {
                    let deadline = self.deadline(duration);
                    if let Some(node) = self.masters.get_mut(at) {
                        node.timers.insert(timer, deadline);
                    }
                }
                Command::CancelTimer(timer) => {
                    if let Some(node) = self.masters.get_mut(at) {
                        node.timers.remove(&timer);
                    }
                }
                Command::Persist(record) => {
                    if let Some(node) = self.masters.get_mut(at) {
                        Master::apply(&mut node.durable, &record);
                    }
                }
                Command::Act(action) => match action {},
                Command::Note(_) => {}
            }
        }
    }

    fn execute_scheduler(&mut self, at: &Address, mut out: Outbox<Scheduler>) {
        for command in out.drain() {
            match command {
                Command::Send { to, message } => self.send(at, to, message),
                Command::SetTimer { timer, duration } => {
                    let deadline = self.deadline(duration);
                    if let Some(host) = self.schedulers.get_mut(at) {
                        host.node.timers.insert(timer, deadline);
                    }
                }
                Command::CancelTimer(timer) => {
                    if let Some(host) = self.schedulers.get_mut(at) {
                        host.node.timers.remove(&timer);
                    }
                }
                Command::Persist(record) => {
                    if let Some(host) = self.schedulers.get_mut(at) {
                        Scheduler::apply(&mut host.node.durable, &record);
                    }
                }
                Command::Act(action) => {
                    if let Some(host) = self.schedulers.get_mut(at) {
                        host.actions.push(action);
                    }
                }
                Command::Note(_) => {}
            }
        }
    }

    fn agent_event(&mut self, at: &Address, event: AgentEvent) {
        let Some(machine) = self
            .agents
            .get_mut(at)
            .and_then(|host| host.node.machine.as_mut())
        else {
            return;
        };
        let mut out = Outbox::new();
        machine.handle_event(event, &mut out);
        machine.end_batch(&mut out);
        self.execute_agent(at, out);
    }

    fn execute_agent(&mut self, at: &Address, out: Outbox<Agent>) {
        let mut pending = VecDeque::from([out]);
        while let Some(mut out) = pending.pop_front() {
            let mut events = Vec::new();
            for command in out.drain() {
                match command {
                    Command::Send { to, message } => self.send(at, to, message),
                    Command::SetTimer { timer, duration } => {
                        let deadline = self.deadline(duration);
                        if let Some(host) = self.agents.get_mut(at) {
                            host.node.timers.insert(timer, deadline);
                        }
                    }
                    Command::CancelTimer(timer) => {
                        if let Some(host) = self.agents.get_mut(at) {
                            host.node.timers.remove(&timer);
                        }
                    }
                    Command::Persist(record) => {
                        if let Some(host) = self.agents.get_mut(at) {
                            Agent::apply(&mut host.node.durable, &record);
                        }
                    }
                    Command::Act(action) => {
                        if let Some(host) = self.agents.get_mut(at) {
                            act(host, action, &mut events);
                        }
                    }
                    Command::Note(_) => {}
                }
            }
            let Some(host) = self.agents.get_mut(at) else {
                return;
            };
            for event in events {
                if let Some(machine) = host.node.machine.as_mut() {
                    let mut next = Outbox::new();
                    machine.handle_event(event, &mut next);
                    machine.end_batch(&mut next);
                    pending.push_back(next);
                }
            }
        }
    }
}

/// What the emulated node and executors do for an agent's action.
fn act(host: &mut AgentHost, action: AgentAction, events: &mut Vec<AgentEvent>) {
    match action {
        AgentAction::StartExecutor {
            framework,
            executor,
        } => {
            host.executors.entry((framework, executor)).or_default();
        }
        AgentAction::LaunchTask {
            framework,
            executor,
            task,
            ..
        } => {
            *host.launches.entry((framework, task.clone())).or_default() += 1;
            host.executors
                .entry((framework, executor.clone()))
                .or_default()
                .running
                .insert(task.clone());
            events.push(AgentEvent::TaskStateReported {
                framework,
                executor,
                task,
                state: TaskState::Running,
                reason: None,
            });
        }
        AgentAction::KillTask {
            framework,
            executor,
            task,
        } => {
            if let Some(running) = host.executors.get_mut(&(framework, executor.clone()))
                && running.running.remove(&task)
            {
                events.push(AgentEvent::TaskStateReported {
                    framework,
                    executor,
                    task,
                    state: TaskState::Killed,
                    reason: Some(TaskStatusReason::KilledByFramework),
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
            host.executors.remove(&(framework, executor));
        }
        AgentAction::CreateVolumeDirectory { role, volume } => {
            host.volumes.entry((role, volume)).or_default();
        }
        AgentAction::DeleteVolumeDirectory { role, volume } => {
            host.volumes.remove(&(role, volume));
        }
    }
}

#[cfg(test)]
mod tests;
