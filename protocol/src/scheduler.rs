//! The scheduler: a framework's side of the protocol, for Berth's own frameworks (`berth
//! run`) and for third parties that embed it.
//!
//! The machine does the protocol's bookkeeping: it subscribes (and fails over), fences off
//! deposed leaders, acknowledges every status, reconciles after each subscription until every
//! task it holds has an answer, and launches the tasks it is given on offers that fit. The
//! application (a `berth run` command, a third party's scheduler) feeds it tasks and kills as
//! [`SchedulerEvent`]s and hears of task states and offers as [`SchedulerAction`]s. The
//! runtime that carries its messages may feed it one event of its own,
//! [`SchedulerEvent::ConnectionLost`].
//!
//! * **Subscription.** A scheduler with no framework id yet (a first registration) sends
//!   [`Subscribe`] to one master at a time, the next one after each subscription retry, and
//!   follows a non-leader's [`LeaderHint`] at once. One at a time, because a leader
//!   registers a new framework for every subscription without an id that it cannot match
//!   to a subscription of the same scheduler it already holds: asking two masters that
//!   both believe they lead (a deposed one that has not heard yet, and its successor) could
//!   register the framework twice. The framework's id is persisted before it is used, so
//!   that a restarted scheduler fails over to its framework instead of registering a second
//!   one. A scheduler configured with an existing framework's id subscribes as its new
//!   scheduler (failover); the one it replaces hears [`Message::FrameworkReplaced`] and
//!   stops.
//! * **Re-subscription.** A scheduler that knows its framework's id asks *every* master at
//!   once, and again after each subscription retry until one subscribes it. A subscription
//!   with an id registers nothing new, so asking all is safe: the leader answers
//!   [`Subscribed`], followers answer [`LeaderHint`]s (followed at once), and the scheduler
//!   takes the first [`Subscribed`] for its framework. Any later one of the same term is a
//!   duplicate and is ignored; one of a lower term is fenced off (E3); one of a higher term
//!   comes from a newer leader than the one that answered first (a deposed leader that had
//!   not heard of its successor can answer too), and the scheduler moves to it.
//! * **Fencing (E3).** Every message from a master carries its leader's term; the scheduler
//!   ignores one of a lower term than the highest it has seen, persisted when it grows.
//! * **Leader liveness.** The scheduler looks for the leader again (a re-subscription) as
//!   soon as it learns that its leader is gone, in one of two ways. The runtime reports
//!   that its connection to the leader ended ([`SchedulerEvent::ConnectionLost`]): when the
//!   leader's process dies, its kernel closes the connection at once, so this is what
//!   detects a crashed leader, in a round trip rather than a timeout. And the leader pings
//!   its schedulers (every second by default): a scheduler that hears nothing from it for
//!   the silence timeout ([`LEADER_SILENCE_TIMEOUT_DEFAULT`], five pings) looks again. The
//!   timeout covers what no connection reports: a leader cut off by the network or hung.
//!   It is kept several pings long because a spurious expiry is not free (a
//!   re-subscription and a reconciliation of every task), and a busy leader's pings can be
//!   late. Neither way is needed for safety: a scheduler that keeps a deposed leader only
//!   hears nothing useful from it, and fencing discards what it does hear.
//! * **Statuses (A2).** Each [`TaskStatus`] is acknowledged (except answers to
//!   reconciliation), duplicates included: a lost acknowledgement makes the agent resend, and
//!   the resend needs an answer too. A duplicate, an update older than the latest known, or
//!   anything after a terminal state is not passed on to the application.
//! * **Reconciliation.** After every subscription the scheduler asks the leader for the
//!   state of each task it holds that has not ended, and asks again (doubling the wait) until
//!   each has an answer. This is how a state the master generated (`UNREACHABLE`) reaches a
//!   framework after a master failover: the new leader answers from its registry. An
//!   `UNKNOWN` or `UNREACHABLE` answer is not final: the task is asked about again until the
//!   leader can say more, for example `DROPPED` for a launch lost with a deposed leader once
//!   the task's agent has re-registered without it.
//! * **Launch (R5).** A task given to the scheduler is launched on the first offer that
//!   holds its resources. The launch is persisted before the accept leaves, so a restarted
//!   scheduler does not launch a task twice. Offers not used are declined. A task id the
//!   scheduler knows (queued, live, or ended and still held) is refused. It holds at most
//!   [`SCHEDULER_TASKS_MAX`] live tasks; ended tasks are kept until a launch needs their
//!   room, then forgotten together, so a long-lived framework launches without limit.
//!
//! # A leader's crash, as its scheduler sees it
//!
//! ```text
//!  scheduler                         m1 (leads t1)     m2                m3
//!     |  its connection to m1 ends     X killed          |                 |
//!     |  (ConnectionLost from the runtime)               |                 |
//!     |-- Subscribe{f} to m1, m2 and m3 ---------------->|---------------->|
//!     |<--------------------------------- LeaderHint{t1, m1} from m2 and m3
//!     |        ... m2 and m3 elect m3 in t2: an election timeout ...
//!     |-- (retry) Subscribe{f} to m1, m2 and m3 -------->|---------------->|
//!     |<-------------------------------------------------------- Subscribed{t2, f}
//!     |<-------------------------------------------------------- Offers{t2, ..}
//! ```
//!
//! The scheduler asks at once, before the survivors have a leader; the round that finds
//! the new leader is the first retry ([`SUBSCRIPTION_RETRY_DEFAULT`]) after the election,
//! or a follower's hint naming it. So the time from the crash to the scheduler's new
//! subscription is the election plus at most one retry, and the first offer follows at
//! once if the new leader has resources to offer.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use serde::{Deserialize, Serialize};

use crate::bounded::BoundedVec;
use crate::ids::{AgentId, FrameworkId, OperationId, TaskId, Term};
use crate::message::{
    Accept, Acknowledge, Decline, Kill, LeaderHint, Message, OfferInfo, Offers, Operation,
    OperationKind, Ping, Pong, RECONCILE_TASKS_MAX, Reconcile, StatusSource, Subscribe, Subscribed,
    TaskSpec, TaskStatus,
};
use crate::message::{OPERATIONS_MAX, OperationState, SubscriptionRefusal};
use crate::note::Note;
use crate::operation;
use crate::registry::FrameworkInfo;
use crate::resources::Resources;
use crate::task::{TaskState, TaskStatusReason};
use crate::{Address, DurationRange, Machine, Outbox};

/// The default wait between subscription attempts: a randomized 250–500 ms.
///
/// Short, because a scheduler that lost its leader asks before the masters have elected a
/// successor (an election takes at least the masters' election timeout, 500–1000 ms by
/// default), and what it then waits after the election is up to one retry. A round is
/// cheap: one [`Subscribe`] per master, which a follower answers with a [`LeaderHint`] and
/// a leader with [`Subscribed`]. A subscribed scheduler does not retry.
pub const SUBSCRIPTION_RETRY_DEFAULT: DurationRange = DurationRange {
    min: Duration::from_millis(250),
    max: Duration::from_millis(500),
};
/// The default first wait before reconciling again the tasks still without an answer.
pub const RECONCILE_RETRY_INITIAL_DEFAULT: Duration = Duration::from_secs(1);
/// The default longest wait between reconciliations.
pub const RECONCILE_RETRY_MAX_DEFAULT: Duration = Duration::from_secs(60);
/// The default silence from the leader after which the scheduler subscribes again.
pub const LEADER_SILENCE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);
/// The most tasks a scheduler holds: its queue and the tasks it launched. Only live tasks
/// (queued, or launched and not ended) count against it over time: when launching one more
/// would exceed it, the scheduler forgets the tasks that ended, and their ids are free
/// again.
pub const SCHEDULER_TASKS_MAX: usize = RECONCILE_TASKS_MAX;

/// A scheduler's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SchedulerConfig {
    address: Address,
    masters: Vec<Address>,
    info: FrameworkInfo,
    framework: Option<FrameworkId>,
    tasks: Vec<TaskSpec>,
    plans: Vec<Vec<OperationKind>>,
    subscription_retry: DurationRange,
    reconcile_retry_initial: Duration,
    reconcile_retry_max: Duration,
    leader_silence_timeout: Duration,
}

impl SchedulerConfig {
    /// A scheduler at `address` for the framework `info`, reaching the cluster through
    /// `masters` (1 to 5 addresses), with the default timing.
    pub fn new(
        address: Address,
        masters: Vec<Address>,
        info: FrameworkInfo,
    ) -> Result<SchedulerConfig, SchedulerConfigError> {
        if masters.is_empty() || masters.len() > crate::agent::MASTERS_MAX {
            return Err(SchedulerConfigError::MasterCount {
                count: masters.len(),
            });
        }
        Ok(SchedulerConfig {
            address,
            masters,
            info,
            framework: None,
            tasks: Vec::new(),
            plans: Vec::new(),
            subscription_retry: SUBSCRIPTION_RETRY_DEFAULT,
            reconcile_retry_initial: RECONCILE_RETRY_INITIAL_DEFAULT,
            reconcile_retry_max: RECONCILE_RETRY_MAX_DEFAULT,
            leader_silence_timeout: LEADER_SILENCE_TIMEOUT_DEFAULT,
        })
    }

    /// Subscribes as the new scheduler of the existing `framework` (failover) unless the
    /// checkpoint names a framework already.
    #[must_use]
    pub fn with_framework(mut self, framework: FrameworkId) -> Self {
        self.framework = Some(framework);
        self
    }

    /// Tasks to launch from the start (those the checkpoint shows launched are not launched
    /// again).
    #[must_use]
    pub fn with_tasks(mut self, tasks: Vec<TaskSpec>) -> Self {
        self.tasks = tasks;
        self
    }

    /// Operations to apply from the start, each list on one offer it fits.
    #[must_use]
    pub fn with_plans(mut self, plans: Vec<Vec<OperationKind>>) -> Self {
        self.plans = plans;
        self
    }

    /// Sets the silence from the leader after which the scheduler subscribes again.
    #[must_use]
    pub fn with_leader_silence_timeout(mut self, timeout: Duration) -> Self {
        self.leader_silence_timeout = timeout;
        self
    }

    /// Where the scheduler is.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// The framework's information.
    pub fn info(&self) -> &FrameworkInfo {
        &self.info
    }

    /// The masters.
    pub fn masters(&self) -> &[Address] {
        &self.masters
    }
}

/// Why a scheduler configuration is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SchedulerConfigError {
    /// Not 1 to 5 masters.
    MasterCount {
        /// How many were given.
        count: usize,
    },
}

impl fmt::Display for SchedulerConfigError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchedulerConfigError::MasterCount { count } => write!(
                formatter,
                "a scheduler needs 1 to {} masters, not {count}",
                crate::agent::MASTERS_MAX
            ),
        }
    }
}

impl core::error::Error for SchedulerConfigError {}

/// One durable change of a scheduler.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SchedulerRecord {
    /// The highest term seen grew (E3).
    TermSeen(Term),
    /// The leader subscribed the framework under this id.
    Subscribed(FrameworkId),
    /// A task was launched on an agent; persisted before the accept leaves (R5).
    Launched {
        /// The task.
        task: TaskId,
        /// The agent whose offer it used.
        agent: AgentId,
    },
    /// Operation ids up to `next` are used: persisted before an accept that uses them, so
    /// that a restarted scheduler never names two operations alike (R5).
    OperationIds {
        /// The next operation number.
        next: u64,
    },
    /// A task's new state, as passed on to the application.
    State {
        /// The task.
        task: TaskId,
        /// Its state.
        state: TaskState,
    },
}

/// A scheduler's durable state: the fold of its records.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SchedulerDurable {
    /// The framework's id, once subscribed.
    pub framework: Option<FrameworkId>,
    /// The highest term seen (E3).
    pub highest_term: Term,
    /// Every launched task, its agent and latest state. Ended tasks are kept, so that a
    /// task id is not used twice while its task is known (R5), until room is needed: at most
    /// [`SCHEDULER_TASKS_MAX`], and a launch into a full map forgets every ended task first.
    pub tasks: BTreeMap<TaskId, LaunchedTask>,
    /// The next operation number.
    pub next_operation: u64,
}

/// What a scheduler keeps about a launched task.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LaunchedTask {
    /// The agent it was launched on.
    pub agent: AgentId,
    /// Its latest known state.
    pub state: TaskState,
}

fn apply(durable: &mut SchedulerDurable, record: &SchedulerRecord) {
    match record {
        SchedulerRecord::TermSeen(term) => durable.highest_term = durable.highest_term.max(*term),
        SchedulerRecord::Subscribed(framework) => durable.framework = Some(*framework),
        SchedulerRecord::Launched { task, agent } => {
            // Full: forget the tasks that ended (a fold of the records, so recovery forgets
            // exactly what the running scheduler did).
            if durable.tasks.len() >= SCHEDULER_TASKS_MAX && !durable.tasks.contains_key(task) {
                durable.tasks.retain(|_, known| !known.state.is_terminal());
            }
            durable.tasks.entry(task.clone()).or_insert(LaunchedTask {
                agent: *agent,
                state: TaskState::Staging,
            });
        }
        SchedulerRecord::OperationIds { next } => {
            durable.next_operation = durable.next_operation.max(*next);
        }
        SchedulerRecord::State { task, state } => {
            if let Some(launched) = durable.tasks.get_mut(task)
                && !launched.state.is_terminal()
            {
                launched.state = *state;
            }
        }
    }
}

/// The scheduler's timers.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SchedulerTimer {
    /// Subscribing: ask again (the next master, or every master).
    Subscription,
    /// Subscribed: no word from the leader for the silence timeout.
    LeaderSilence,
    /// Some tasks have no answer to their reconciliation yet.
    Reconcile,
}

/// What the application asks of its scheduler, and what the runtime that carries its messages
/// tells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SchedulerEvent {
    /// Launch a task on the first offer that holds its resources.
    Launch(TaskSpec),
    /// Apply these operations, in order, on the first offer they all fit (for example:
    /// reserve, create a volume on the reserved disk, launch a task that uses it).
    Submit(Vec<OperationKind>),
    /// Apply the first of these lists of operations that fits an offer (for example: launch
    /// on an existing volume, or else reserve, create it and launch).
    SubmitFirstFitting(Vec<Vec<OperationKind>>),
    /// Kill a launched task.
    Kill(TaskId),
    /// From the runtime: its connection to this master ended after it was established (the
    /// peer closed it, it was reset, or a read or write failed). If the master is the
    /// scheduler's leader, the scheduler takes it as gone and looks for the leader again at
    /// once, instead of after the leader-silence timeout; otherwise the event changes
    /// nothing.
    ///
    /// Optional. A runtime that cannot tell when a connection ends never sends it and only
    /// loses time: the silence timeout still finds a new leader. A runtime that sends it
    /// for a leader that is in fact alive costs a re-subscription and a reconciliation, not
    /// safety. Do not send it for an attempt to connect that failed: no connection ended,
    /// and a dead master's address refuses connections for as long as it is down.
    ConnectionLost(Address),
}

/// What the scheduler tells its application.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SchedulerAction {
    /// Subscribed as this framework.
    Subscribed(FrameworkId),
    /// A task's new state (each state once, in order; nothing after a terminal one).
    Status {
        /// The task.
        task: TaskId,
        /// Its agent, if known.
        agent: Option<AgentId>,
        /// The state.
        state: TaskState,
        /// Why.
        reason: Option<TaskStatusReason>,
    },
    /// A resource operation's outcome.
    Operation {
        /// The operation.
        operation: OperationId,
        /// Its outcome.
        state: OperationState,
    },
    /// Another scheduler subscribed for the framework: this one stopped.
    Replaced,
    /// The leader refused the subscription: this scheduler stopped.
    Refused(SubscriptionRefusal),
}

/// Where a scheduler stands with the masters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SchedulerPhase {
    /// Looking for the leader.
    Subscribing {
        /// The index of the next master to ask, for a first registration (one master at a
        /// time); a re-subscription asks every master at once and leaves it at 0.
        next_master: usize,
    },
    /// Subscribed with the leader of `term`.
    Subscribed {
        /// The leader.
        leader: Address,
        /// Its term.
        term: Term,
    },
    /// Replaced by another scheduler, or refused: does nothing more.
    Replaced,
}

/// A scheduler. See the [module docs](self).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Scheduler {
    config: Arc<SchedulerConfig>,
    durable: SchedulerDurable,
    phase: SchedulerPhase,
    /// Operations waiting for an offer they fit, in the order given. Each entry is a list of
    /// alternatives; the first that fits an offer is applied on it, whole.
    queue: VecDeque<Vec<Vec<OperationKind>>>,
    /// Per task: the newest agent update passed on, to drop duplicates and older updates.
    latest_update: BTreeMap<TaskId, crate::ids::UpdateId>,
    /// Tasks asked about in the current reconciliation and not yet answered.
    reconciling: BTreeSet<TaskId>,
    /// The wait before the next reconciliation.
    reconcile_backoff: Duration,
}

impl Scheduler {
    /// The framework's id, once subscribed.
    pub fn framework(&self) -> Option<FrameworkId> {
        self.durable.framework
    }

    /// Where the scheduler stands.
    pub fn phase(&self) -> &SchedulerPhase {
        &self.phase
    }

    /// Its durable state.
    pub fn durable(&self) -> &SchedulerDurable {
        &self.durable
    }

    /// The operations waiting for an offer: each entry's alternatives.
    pub fn queue(&self) -> impl Iterator<Item = &Vec<Vec<OperationKind>>> {
        self.queue.iter()
    }

    /// How many operations the queue holds, counting each entry's longest alternative.
    fn queued_operations(&self) -> usize {
        self.queue
            .iter()
            .map(|entry| entry.iter().map(Vec::len).max().unwrap_or(0))
            .sum()
    }

    /// Queues alternatives unless one launches a known task or the scheduler is full.
    fn enqueue(&mut self, alternatives: Vec<Vec<OperationKind>>) {
        let launches = |entry: &Vec<Vec<OperationKind>>| -> Vec<TaskId> {
            entry
                .iter()
                .flatten()
                .filter_map(|kind| match kind {
                    OperationKind::Launch(spec) => Some(spec.task.clone()),
                    _ => None,
                })
                .collect()
        };
        let new = launches(&alternatives);
        let known = new.iter().any(|task| {
            self.durable.tasks.contains_key(task)
                || self
                    .queue
                    .iter()
                    .any(|queued| launches(queued).contains(task))
        });
        let size = alternatives.iter().map(Vec::len).max().unwrap_or(0);
        // Room for it among the live tasks; ended ones are counted out (and forgotten at the
        // next launch) only when the map is too full to tell at once.
        let fits = |held: usize| self.queued_operations() + size + held <= SCHEDULER_TASKS_MAX;
        if !known && size > 0 && (fits(self.durable.tasks.len()) || fits(self.live_tasks())) {
            self.queue.push_back(alternatives);
        }
    }

    /// What `pool` is after `plan`, if the plan fits in it.
    fn fits(&self, plan: &[OperationKind], pool: &Resources) -> Option<Resources> {
        let info = &self.config.info;
        plan.iter().try_fold(pool.clone(), |pool, kind| match kind {
            OperationKind::Launch(spec) => pool.checked_sub(&spec.resources).ok(),
            kind => {
                let conversion = operation::conversion(kind, &info.role, &info.principal).ok()?;
                operation::apply(&pool, &conversion)
            }
        })
    }

    fn record(&mut self, record: SchedulerRecord, out: &mut Outbox<Scheduler>) {
        apply(&mut self.durable, &record);
        out.persist(record);
    }

    /// E3: whether a message of `term` may be acted on; a higher term is persisted.
    fn fence(&mut self, from: &Address, term: Term, out: &mut Outbox<Scheduler>) -> bool {
        let highest = self.durable.highest_term;
        if term < highest {
            out.note(Note::StaleTerm {
                peer: from.clone(),
                term,
                highest,
            });
            return false;
        }
        if term > highest {
            self.record(SchedulerRecord::TermSeen(term), out);
        }
        true
    }

    /// Whether `from` is the leader this scheduler is subscribed with, in `term`.
    fn is_leader_at(&self, from: &Address, term: Term) -> bool {
        matches!(&self.phase, SchedulerPhase::Subscribed { leader, term: current }
            if leader == from && *current == term)
    }

    fn subscription(&self) -> Message {
        Message::Subscribe(Box::new(Subscribe {
            framework: self.durable.framework,
            info: self.config.info.clone(),
            highest_term: self.durable.highest_term,
            suppressed: self.queue.is_empty(),
        }))
    }

    fn start_subscription(&mut self, out: &mut Outbox<Scheduler>) {
        if let SchedulerPhase::Subscribed { .. } = self.phase {
            out.cancel_timer(SchedulerTimer::LeaderSilence);
        }
        self.phase = SchedulerPhase::Subscribing { next_master: 0 };
        self.send_subscription(out);
    }

    /// Sends a round of the subscription and arms the retry: to every master at once for a
    /// framework with an id, to the next master in turn for a new one (module docs).
    fn send_subscription(&mut self, out: &mut Outbox<Scheduler>) {
        let subscription = self.subscription();
        let SchedulerPhase::Subscribing { next_master } = &mut self.phase else {
            return;
        };
        if self.durable.framework.is_some() {
            for master in &self.config.masters {
                out.send(master.clone(), subscription.clone());
            }
        } else {
            let index = *next_master % self.config.masters.len();
            *next_master = index + 1;
            out.send(self.config.masters[index].clone(), subscription);
        }
        out.set_timer(SchedulerTimer::Subscription, self.config.subscription_retry);
    }

    fn handle_subscribed(
        &mut self,
        from: &Address,
        subscribed: Subscribed,
        out: &mut Outbox<Scheduler>,
    ) {
        if !self.fence(from, subscribed.term, out) {
            return;
        }
        match &self.phase {
            SchedulerPhase::Subscribing { .. } => {}
            // Asked every master at once, a deposed leader that has not heard of its
            // successor may answer first: the successor's answer, of a higher term, wins.
            SchedulerPhase::Subscribed { term, .. } if subscribed.term > *term => {}
            // A duplicate: another answer of the same leader (the subscription went to it
            // directly and again after a follower's hint, or a retry crossed the answer).
            SchedulerPhase::Subscribed { .. } | SchedulerPhase::Replaced => return,
        }
        match self.durable.framework {
            None => self.record(SchedulerRecord::Subscribed(subscribed.framework), out),
            Some(framework) if framework == subscribed.framework => {}
            Some(_) => return,
        }
        self.phase = SchedulerPhase::Subscribed {
            leader: from.clone(),
            term: subscribed.term,
        };
        out.cancel_timer(SchedulerTimer::Subscription);
        self.arm_silence(out);
        out.act(SchedulerAction::Subscribed(subscribed.framework));
        if !self.queue.is_empty() {
            // The subscription may have said "no offers" before work was queued.
            out.send(from.clone(), Message::Revive(subscribed.framework));
        }
        self.reconcile_all(out);
    }

    fn arm_silence(&self, out: &mut Outbox<Scheduler>) {
        out.set_timer(
            SchedulerTimer::LeaderSilence,
            DurationRange::fixed(self.config.leader_silence_timeout),
        );
    }

    /// Asks the leader about every task not ended, and arms the retry.
    fn reconcile_all(&mut self, out: &mut Outbox<Scheduler>) {
        self.reconciling = self
            .durable
            .tasks
            .iter()
            .filter(|(_, task)| !task.state.is_terminal())
            .map(|(id, _)| id.clone())
            .collect();
        self.reconcile_backoff = self.config.reconcile_retry_initial;
        self.send_reconcile(out);
    }

    fn send_reconcile(&mut self, out: &mut Outbox<Scheduler>) {
        let (SchedulerPhase::Subscribed { leader, .. }, Some(framework)) =
            (&self.phase, self.durable.framework)
        else {
            return;
        };
        if self.reconciling.is_empty() {
            return;
        }
        let tasks: Vec<(TaskId, Option<AgentId>)> = self
            .reconciling
            .iter()
            .map(|task| (task.clone(), self.durable.tasks.get(task).map(|t| t.agent)))
            .collect();
        out.send(
            leader.clone(),
            Message::Reconcile(Box::new(Reconcile {
                framework,
                tasks: BoundedVec::from_vec(tasks).expect("tasks are bounded"),
            })),
        );
        out.set_timer(
            SchedulerTimer::Reconcile,
            DurationRange::fixed(self.reconcile_backoff),
        );
    }

    fn handle_offers(&mut self, from: &Address, offers: Offers, out: &mut Outbox<Scheduler>) {
        if !self.fence(from, offers.term, out) || !self.is_leader_at(from, offers.term) {
            return;
        }
        if Some(offers.framework) != self.durable.framework {
            return;
        }
        let Some(framework) = self.durable.framework else {
            return;
        };
        // The offers nothing fits in are declined together, in one message: a framework
        // offered thousands of agents for a few tasks would otherwise answer with thousands
        // of messages, each a round of work for the leader.
        let mut declined = Vec::new();
        for offer in offers.offers.into_vec() {
            if !self.use_offer(from, &offer, out) {
                declined.push(offer.offer);
            }
        }
        if !declined.is_empty() {
            let offers = BoundedVec::from_vec(declined)
                .expect("no more offers are declined than an offer message holds");
            out.send(
                from.clone(),
                Message::Decline(Box::new(Decline {
                    framework,
                    offers,
                    suppress: self.queue.is_empty(),
                })),
            );
        }
    }

    /// Applies the queued operations that fit in `offer`, in order, and accepts it with them;
    /// returns whether it did (an offer nothing fits in is for the caller to decline).
    fn use_offer(
        &mut self,
        leader: &Address,
        offer: &OfferInfo,
        out: &mut Outbox<Scheduler>,
    ) -> bool {
        let Some(framework) = self.durable.framework else {
            return false;
        };
        let mut remaining = offer.resources.clone();
        let mut plans = Vec::new();
        let mut index = 0;
        let mut operations_taken = 0;
        while index < self.queue.len() {
            let fitting = self.queue[index]
                .iter()
                .find_map(|plan| Some((plan.clone(), self.fits(plan, &remaining)?)))
                // One accept carries at most OPERATIONS_MAX operations; the rest waits.
                .filter(|(plan, _)| operations_taken + plan.len() <= OPERATIONS_MAX);
            match fitting {
                Some((plan, rest)) => {
                    operations_taken += plan.len();
                    remaining = rest;
                    self.queue.remove(index);
                    plans.push(plan);
                }
                None => index += 1,
            }
        }
        if plans.is_empty() {
            return false;
        }
        let offers =
            BoundedVec::from_vec(alloc::vec![offer.offer]).expect("one offer is within bounds");
        // Persisted before the accept leaves: the launches (so that a restart does not launch
        // them again) and the operation numbers used (so that none is named twice).
        let mut operations = Vec::new();
        let mut next = self.durable.next_operation;
        for kind in plans.into_iter().flatten() {
            if let OperationKind::Launch(spec) = &kind {
                self.record(
                    SchedulerRecord::Launched {
                        task: spec.task.clone(),
                        agent: offer.agent,
                    },
                    out,
                );
            }
            let id = OperationId::new(&alloc::format!("operation-{next}")).expect("a short name");
            next += 1;
            operations.push(Operation { id, kind });
        }
        self.record(SchedulerRecord::OperationIds { next }, out);
        out.send(
            leader.clone(),
            Message::Accept(Box::new(Accept {
                framework,
                offers,
                operations: BoundedVec::from_vec(operations)
                    .expect("the queue is bounded below the accept's bound"),
                suppress: self.queue.is_empty(),
            })),
        );
        true
    }

    fn handle_status(&mut self, from: &Address, status: TaskStatus, out: &mut Outbox<Scheduler>) {
        if !self.fence(from, status.term, out) || !self.is_leader_at(from, status.term) {
            return;
        }
        let Some(framework) = self.durable.framework else {
            return;
        };
        if status.framework != framework {
            return;
        }
        if !(status.source == StatusSource::Reconciliation
            && matches!(status.state, TaskState::Unknown | TaskState::Unreachable))
        {
            // Answered for good. An `UNKNOWN` or `UNREACHABLE` answer is asked again, with
            // the backoff: the leader can tell more once the task's agent re-registers (a
            // launch lost on the way to an unreachable agent is `DROPPED` then).
            self.reconciling.remove(&status.task);
        }
        // A new state is persisted before it is acknowledged: once the agent hears the
        // acknowledgement it moves on, so a crash in between must not lose the state (A2).
        let taken = self.take_status(&status, out);
        self.acknowledge(from, framework, &status, out);
        if taken {
            let agent = status.agent.or_else(|| {
                self.durable
                    .tasks
                    .get(&status.task)
                    .map(|known| known.agent)
            });
            out.act(SchedulerAction::Status {
                task: status.task,
                agent,
                state: status.state,
                reason: status.reason,
            });
        }
    }

    /// Acknowledges a status from an agent or the master (a reconciliation answer needs
    /// none).
    fn acknowledge(
        &self,
        leader: &Address,
        framework: FrameworkId,
        status: &TaskStatus,
        out: &mut Outbox<Scheduler>,
    ) {
        if status.source != StatusSource::Reconciliation {
            out.send(
                leader.clone(),
                Message::Acknowledge(Acknowledge {
                    framework,
                    task: status.task.clone(),
                    agent: status.agent,
                    state: status.state,
                    source: status.source,
                }),
            );
        }
    }

    /// Records `status` if it is news: a state of a task this framework launched, newer than
    /// what it knows and not after its end (A2). Returns whether it was.
    fn take_status(&mut self, status: &TaskStatus, out: &mut Outbox<Scheduler>) -> bool {
        if let StatusSource::Agent(update) = status.source {
            let latest = self.latest_update.get(&status.task);
            if latest.is_some_and(|latest| *latest >= update) {
                return false; // A duplicate or an older update: passed on already.
            }
            self.latest_update.insert(status.task.clone(), update);
        }
        let Some(known) = self.durable.tasks.get(&status.task) else {
            return false; // Never launched by this framework.
        };
        if known.state == status.state || known.state.is_terminal() {
            return false; // Nothing new, or after the end (A2).
        }
        if lifecycle_step(status.state)
            .zip(lifecycle_step(known.state))
            .is_some_and(|(update, known)| update < known)
        {
            // An older state than the one known (a task's lifecycle only goes forward, and
            // its id is never reused): an update the agent resends after a reconciliation
            // answer told the newer state, or a reconciliation answer from a leader whose
            // view is behind what the agent already reported. Acknowledged if it needs it,
            // not passed on, so the states stay in order (A2).
            return false;
        }
        self.record(
            SchedulerRecord::State {
                task: status.task.clone(),
                state: status.state,
            },
            out,
        );
        if status.state.is_terminal() {
            self.latest_update.remove(&status.task);
        }
        true
    }

    fn handle_operation_status(
        &mut self,
        from: &Address,
        status: crate::message::OperationStatus,
        out: &mut Outbox<Scheduler>,
    ) {
        if self.fence(from, status.term, out)
            && self.is_leader_at(from, status.term)
            && Some(status.framework) == self.durable.framework
        {
            out.act(SchedulerAction::Operation {
                operation: status.operation,
                state: status.state,
            });
        }
    }

    fn handle_refused(
        &mut self,
        from: &Address,
        refused: crate::message::SubscriptionRefused,
        out: &mut Outbox<Scheduler>,
    ) {
        if self.fence(from, refused.term, out)
            && matches!(self.phase, SchedulerPhase::Subscribing { .. })
        {
            out.cancel_timer(SchedulerTimer::Subscription);
            self.phase = SchedulerPhase::Replaced;
            out.act(SchedulerAction::Refused(refused.reason));
        }
    }

    fn handle_replaced(
        &mut self,
        from: &Address,
        replaced: Subscribed,
        out: &mut Outbox<Scheduler>,
    ) {
        if !self.fence(from, replaced.term, out)
            || Some(replaced.framework) != self.durable.framework
        {
            return;
        }
        out.cancel_timer(SchedulerTimer::Subscription);
        out.cancel_timer(SchedulerTimer::LeaderSilence);
        out.cancel_timer(SchedulerTimer::Reconcile);
        self.phase = SchedulerPhase::Replaced;
        out.act(SchedulerAction::Replaced);
    }

    fn handle_ping(&mut self, from: &Address, ping: Ping, out: &mut Outbox<Scheduler>) {
        if !self.fence(from, ping.term, out) {
            return;
        }
        if self.is_leader_at(from, ping.term) {
            out.send(
                from.clone(),
                Message::Pong(Pong {
                    term: ping.term,
                    sequence: ping.sequence,
                }),
            );
            self.arm_silence(out);
        } else if !matches!(self.phase, SchedulerPhase::Replaced) {
            // A newer leader: subscribe with it.
            if let SchedulerPhase::Subscribed { .. } = self.phase {
                out.cancel_timer(SchedulerTimer::LeaderSilence);
            }
            self.phase = SchedulerPhase::Subscribing { next_master: 0 };
            out.send(from.clone(), self.subscription());
            out.set_timer(SchedulerTimer::Subscription, self.config.subscription_retry);
        }
    }

    /// The runtime's connection to `master` ended: if it is the leader, look for the leader
    /// again now rather than after the silence timeout.
    fn handle_connection_lost(&mut self, master: Address, out: &mut Outbox<Scheduler>) {
        if let SchedulerPhase::Subscribed { leader, .. } = &self.phase
            && *leader == master
        {
            out.note(Note::LeaderConnectionLost { leader: master });
            self.start_subscription(out);
        }
    }

    fn check_invariants(&self) {
        if let SchedulerPhase::Subscribed { term, .. } = &self.phase {
            debug_assert!(self.durable.framework.is_some(), "subscribed means an id");
            debug_assert!(*term <= self.durable.highest_term, "E3");
        }
        debug_assert!(self.queued_operations() + self.live_tasks() <= SCHEDULER_TASKS_MAX);
        debug_assert!(self.durable.tasks.len() <= SCHEDULER_TASKS_MAX);
    }

    /// Launched tasks not yet ended.
    fn live_tasks(&self) -> usize {
        self.durable
            .tasks
            .values()
            .filter(|task| !task.state.is_terminal())
            .count()
    }
}

impl Machine for Scheduler {
    type Config = SchedulerConfig;
    type Timer = SchedulerTimer;
    type Record = SchedulerRecord;
    type Durable = SchedulerDurable;
    type Event = SchedulerEvent;
    type Action = SchedulerAction;
    type BootError = core::convert::Infallible;

    fn boot(
        config: &SchedulerConfig,
        durable: &SchedulerDurable,
        out: &mut Outbox<Scheduler>,
    ) -> Result<Scheduler, Self::BootError> {
        let mut scheduler = Scheduler {
            config: Arc::new(config.clone()),
            durable: durable.clone(),
            phase: SchedulerPhase::Subscribing { next_master: 0 },
            queue: VecDeque::new(),
            latest_update: BTreeMap::new(),
            reconciling: BTreeSet::new(),
            reconcile_backoff: config.reconcile_retry_initial,
        };
        if scheduler.durable.framework.is_none()
            && let Some(framework) = config.framework
        {
            scheduler.record(SchedulerRecord::Subscribed(framework), out);
        }
        for spec in config.tasks.iter().cloned() {
            scheduler.enqueue(alloc::vec![alloc::vec![OperationKind::Launch(spec)]]);
        }
        for plan in config.plans.iter().cloned() {
            scheduler.enqueue(alloc::vec![plan]);
        }
        scheduler.start_subscription(out);
        scheduler.check_invariants();
        Ok(scheduler)
    }

    fn apply(durable: &mut SchedulerDurable, record: &SchedulerRecord) {
        apply(durable, record);
    }

    /// Only the configured masters are listened to.
    fn handle_message(&mut self, from: &Address, message: Message, out: &mut Outbox<Scheduler>) {
        if !self.config.masters.contains(from) {
            out.note(Note::UnknownPeer { peer: from.clone() });
            return;
        }
        if self.phase == SchedulerPhase::Replaced {
            return;
        }
        match message {
            Message::LeaderHint(LeaderHint { term, leader }) => {
                if term >= self.durable.highest_term
                    && let (SchedulerPhase::Subscribing { .. }, Some(leader)) =
                        (&self.phase, leader)
                    && self.config.masters.contains(&leader)
                {
                    out.send(leader, self.subscription());
                }
            }
            Message::Subscribed(subscribed) => self.handle_subscribed(from, subscribed, out),
            Message::FrameworkReplaced(replaced) => self.handle_replaced(from, replaced, out),
            Message::Offers(offers) => self.handle_offers(from, *offers, out),
            Message::TaskStatus(status) => self.handle_status(from, *status, out),
            Message::OperationStatus(status) => self.handle_operation_status(from, *status, out),
            Message::SubscriptionRefused(refused) => self.handle_refused(from, *refused, out),
            Message::Ping(ping) => self.handle_ping(from, ping, out),
            _ => {}
        }
        self.check_invariants();
    }

    fn handle_timer(&mut self, timer: SchedulerTimer, out: &mut Outbox<Scheduler>) {
        match timer {
            SchedulerTimer::Subscription => self.send_subscription(out),
            SchedulerTimer::LeaderSilence => {
                if let SchedulerPhase::Subscribed { leader, .. } = &self.phase {
                    out.note(Note::LeaderSilent {
                        leader: leader.clone(),
                    });
                    self.start_subscription(out);
                }
            }
            SchedulerTimer::Reconcile => {
                let tasks = &self.durable.tasks;
                self.reconciling.retain(|task| {
                    tasks
                        .get(task)
                        .is_some_and(|task| !task.state.is_terminal())
                });
                self.reconcile_backoff = self
                    .reconcile_backoff
                    .saturating_mul(2)
                    .min(self.config.reconcile_retry_max);
                self.send_reconcile(out);
            }
        }
        self.check_invariants();
    }

    fn handle_event(&mut self, event: SchedulerEvent, out: &mut Outbox<Scheduler>) {
        match event {
            SchedulerEvent::Launch(_)
            | SchedulerEvent::Submit(_)
            | SchedulerEvent::SubmitFirstFitting(_) => {
                let plan = match event {
                    SchedulerEvent::Launch(spec) => {
                        alloc::vec![alloc::vec![OperationKind::Launch(spec)]]
                    }
                    SchedulerEvent::Submit(plan) => alloc::vec![plan],
                    SchedulerEvent::SubmitFirstFitting(alternatives) => alternatives,
                    SchedulerEvent::Kill(_) | SchedulerEvent::ConnectionLost(_) => {
                        unreachable!("matched below")
                    }
                };
                let was_empty = self.queue.is_empty();
                self.enqueue(plan);
                if was_empty
                    && !self.queue.is_empty()
                    && let (SchedulerPhase::Subscribed { leader, .. }, Some(framework)) =
                        (&self.phase, self.durable.framework)
                {
                    out.send(leader.clone(), Message::Revive(framework));
                }
            }
            SchedulerEvent::ConnectionLost(master) => self.handle_connection_lost(master, out),
            SchedulerEvent::Kill(task) => {
                self.queue.retain(|queued| {
                    !queued.iter().flatten().any(
                        |kind| matches!(kind, OperationKind::Launch(spec) if spec.task == task),
                    )
                });
                if let (SchedulerPhase::Subscribed { leader, .. }, Some(framework)) =
                    (&self.phase, self.durable.framework)
                    && self.durable.tasks.contains_key(&task)
                {
                    out.send(leader.clone(), Message::Kill(Kill { framework, task }));
                }
            }
        }
        self.check_invariants();
    }
}

/// Where a state stands in a task's life as its agent reports it, for the states that only
/// move forward: `STAGING`, `STARTING`, `RUNNING`, `KILLING`. Others have no place to compare.
fn lifecycle_step(state: TaskState) -> Option<u8> {
    match state {
        TaskState::Staging => Some(0),
        TaskState::Starting => Some(1),
        TaskState::Running => Some(2),
        TaskState::Killing => Some(3),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
