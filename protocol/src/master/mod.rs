//! The master: leader election and the replicated registry.
//!
//! Masters elect one leader among themselves and replicate the [registry](crate::registry)
//! in a log. This replaces both ZooKeeper and Mesos's replicated log. The algorithm is Raft
//! (Ongaro and Ousterhout, "In Search of an Understandable Consensus Algorithm", and Ongaro's
//! thesis for pre-vote and check-quorum); the rules and the invariant each protects:
//!
//! ```text
//!            election timer fires                 majority of pre-votes
//!  Follower ----------------------> PreCandidate ----------------------> Candidate
//!     ^  ^     (no term change)         |                                 | term+1,
//!     |  |                              | higher term seen                | vote self,
//!     |  +------------------------------+                                 | PERSIST
//!     |        higher term seen, or a leader's AppendEntries               v
//!     +-------------------------------------------------------------- majority of votes
//!     |   higher term seen, or check-quorum fails                          |
//!     +------------------------------------------------------------  Leader <--+
//! ```
//!
//! * **Terms and votes (E1: at most one leader per term).** A master votes at most once per
//!   term, and persists `(term, vote)` *before* the vote leaves it, so a crash cannot make it
//!   vote twice. A candidate needs a majority; two majorities intersect, so two candidates
//!   cannot both win a term.
//! * **Pre-vote.** Before raising its term, a would-be candidate asks whether a majority
//!   *would* vote for it. Masters that hear from a leader say no, so a master that was cut
//!   off and rejoins cannot depose a healthy leader by arriving with a higher term.
//! * **Leader stickiness.** A master that has heard from its leader within an election
//!   timeout ignores vote requests of higher terms.
//! * **Check-quorum.** A leader that has not heard from a majority within an election
//!   timeout steps down, so a leader cut off from the other masters stops acting on its own.
//!   (Safety does not depend on it: agents and frameworks fence on terms, E3.)
//! * **Log matching (E2).** A follower appends entries only after the entry just before them
//!   matches the leader's (same index and term), and persists them before acknowledging.
//! * **Up-to-date votes (E2, leader completeness).** A master grants a vote only to a
//!   candidate whose log is at least as up to date as its own, so every leader holds every
//!   committed entry.
//! * **Commit (E2).** The leader commits an entry once a majority store it *and* it is of the
//!   leader's own term; earlier entries commit with it (Raft §5.4.2: counting replicas of an
//!   older term's entry is unsafe, the paper's figure 8). A new leader appends a no-op to
//!   commit what earlier leaders left.
//! * **Act after commit.** The leader applies an entry to its registry, and answers the
//!   request that made it, only once the entry commits.
//! * **Snapshots.** Once the applied prefix of the log reaches the snapshot threshold, the
//!   master replaces it by a registry snapshot; a follower too far behind receives the
//!   snapshot instead of entries. The log kept is bounded by [`LOG_ENTRIES_MAX`].
//!
//! Timers carry duration ranges; the driver picks the jitter. Safety never depends on them.
//!
//! # Agents
//!
//! The leader also serves the agents (the agent's side is in [`crate::agent`]). All it
//! knows of them besides the registry is soft state ([`AgentDirectory`]), dropped when it
//! stops leading and rebuilt from re-registrations:
//!
//! * **Admission.** A new agent is admitted by an `AgentAdmitted` registry entry with an id
//!   from the leader's term; the agent hears its id only once the entry commits. A retried
//!   registration finds its admission in the log and adds nothing. Non-leaders answer
//!   agents with a [`LeaderHint`].
//! * **Re-registration.** A known agent's report rebuilds the leader's view of its tasks
//!   (latest state per task). An unreachable agent is readmitted (`AgentReadmitted`,
//!   committed before the answer) and its tasks resume; a gone agent is told to shut down.
//! * **Failover.** A new leader sends [`LeaderChanged`](crate::message::LeaderChanged) to
//!   every admitted or unreachable agent in its registry, so they re-register at once.
//! * **Health.** The leader pings each admitted agent every ping interval (default 1 s);
//!   after `max_missed_pings` (default 5) unanswered pings in a row it proposes
//!   `AgentUnreachable`, and once that commits the agent's tasks become `UNREACHABLE`,
//!   kept as master-generated updates for the frameworks.
//! * **Status updates.** The leader records each task's latest state and passes the update
//!   to the task's framework; the framework's acknowledgement reaches the agent through the
//!   leader, and only then does the agent send the task's next update.
//!
//! # Frameworks
//!
//! The framework-facing part (the scheduler's side is in [`crate::scheduler`]): subscription
//! and failover, offers from the [allocator](crate::allocator), launches, acknowledgements,
//! reconciliation and kills. See `frameworks.rs` for the rules; in short:
//!
//! ```text
//!  scheduler                 leader                              agent
//!    | Subscribe               |                                   |
//!    |------------------------>| FrameworkRegistered, committed    |
//!    |  Subscribed{t, f}       |                                   |
//!    |<------------------------|                                   |
//!    |  Offers{o: cpus:4}      | allocate (DRF)                    |
//!    |<------------------------|                                   |
//!    | PERSIST Launched(t1)    |                                   |
//!    | Accept{o, Launch t1}    |                                   |
//!    |------------------------>|  RunTask{t, t1, command}          |
//!    |                         |---------------------------------->| PERSIST TaskLaunched
//!    |                         |  StatusUpdate{t1 RUNNING, #0}     | PERSIST Update #0
//!    |  TaskStatus{RUNNING,#0} |<----------------------------------|
//!    |<------------------------|                                   |
//!    | Acknowledge{#0}         |                                   |
//!    |------------------------>|  StatusAcknowledgement{#0}        |
//!    |                         |---------------------------------->| next update, if any
//! ```
//!
//! Every message the leader sends an agent carries its term, so an agent can fence off a
//! deposed leader (E3).
//!
//! A scheduler that misses `max_missed_pings` pings is disconnected (`FrameworkDisconnected`:
//! its offers are void, its failover timeout starts); so is one whose connection the runtime
//! reports ended ([`MasterEvent::ConnectionLost`]), at once.

mod agents;
mod election;
mod frameworks;
mod log;
mod tasks;

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::convert::Infallible;
use core::fmt;
use core::time::Duration;

pub use agents::{AgentDirectory, AgentView, GENERATED_UPDATES_MAX, GeneratedUpdate, TaskView};
pub use frameworks::{FrameworkDirectory, FrameworkView, OutstandingOffer};
pub use log::{LOG_ENTRIES_MAX, MasterDurable, MasterRecord, RaftLog};
pub use tasks::AgentTasks;

use crate::ids::{MasterId, Term};
use crate::message::{
    Committed, LeaderHint, LogEntry, MarkAgentGone, MembershipDigest, Message, SetRoleWeight,
    StateReport,
};
use crate::note::Note;
use crate::registry::{LogIndex, Registry, RegistryEntry};
use crate::{Address, DurationRange, Machine, Outbox};

/// The default election timeout: a randomized 500–1000 ms.
pub const ELECTION_TIMEOUT_DEFAULT: DurationRange = DurationRange {
    min: Duration::from_millis(500),
    max: Duration::from_millis(1000),
};
/// The default interval between a leader's heartbeats.
pub const HEARTBEAT_INTERVAL_DEFAULT: Duration = Duration::from_millis(100);
/// The default number of applied entries after which the log is compacted into a snapshot.
pub const SNAPSHOT_THRESHOLD_DEFAULT: u64 = 1024;
/// The most requests a leader holds waiting for their entries to commit.
pub const PENDING_REQUESTS_MAX: usize = 1024;
/// The default interval between the leader's pings to each agent (Mesos: 15 s).
pub const AGENT_PING_INTERVAL_DEFAULT: Duration = Duration::from_secs(1);
/// The default number of consecutive unanswered pings after which an agent is marked
/// unreachable (as Mesos).
pub const MAX_MISSED_PINGS_DEFAULT: u32 = 5;
/// The default time an offer may be held before it is rescinded (Mesos: none, offers can be
/// held for ever).
pub const OFFER_TIMEOUT_DEFAULT: Duration = Duration::from_secs(60);
/// The membership sizes a cluster may have.
pub const MEMBERSHIP_SIZES: [usize; 3] = [1, 3, 5];

/// Deliberately broken protocol variants, to show that the model checker catches each bug.
/// Only the `mutations` feature (for the checker's own tests) can set one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mutation {
    /// Votes are cast without persisting them first (E1 breaks after a crash).
    VoteNotPersisted,
    /// A second candidate of the same term gets a vote too (E1).
    VoteTwicePerTerm,
    /// Followers append entries without checking the entry before them (E2, log matching).
    AppendWithoutPreviousCheck,
    /// Votes are granted whatever the candidate's log (E2, leader completeness).
    VoteWithoutLogCheck,
    /// The allocator is not told what outstanding offers hold, so it offers it again (R1).
    OfferOutstandingAgain,
    /// What is left of an agent after the allocator ran, reserved for *other* roles and not a
    /// volume, is added to each offer of the agent, as an allocator that forgot roles would
    /// (R2).
    OfferOtherRolesReservations,
    /// The same, for other roles' persistent volumes (R3).
    OfferOtherRolesVolumes,
    /// A new leader counts a disconnected framework's failover time as spent under the old
    /// leader and arms its timer with nothing left, instead of in full (F1).
    FailoverTimerNotRearmed,
    /// An unreachable entry that commits after its agent returned marks the tasks the agent
    /// reported `UNREACHABLE` anyway, and its readmission resumes them as such (L3: the
    /// framework holds running tasks unreachable for good).
    UnreachableOverridesReturn,
}

/// A master's configuration: who it is, who its peers are, and its timing.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MasterConfig {
    id: MasterId,
    members: BTreeMap<MasterId, Address>,
    election_timeout: DurationRange,
    heartbeat_interval: Duration,
    snapshot_threshold: u64,
    pre_vote: bool,
    check_quorum: bool,
    agent_ping_interval: Duration,
    max_missed_pings: u32,
    access: Option<crate::operation::AccessList>,
    mutation: Option<Mutation>,
}

impl MasterConfig {
    /// The configuration of master `id` in a cluster of `members` (1, 3 or 5 masters, `id`
    /// among them, distinct addresses), with the default timing.
    pub fn new(
        id: MasterId,
        members: BTreeMap<MasterId, Address>,
    ) -> Result<MasterConfig, MasterConfigError> {
        if !MEMBERSHIP_SIZES.contains(&members.len()) {
            return Err(MasterConfigError::MembershipSize {
                count: members.len(),
            });
        }
        if !members.contains_key(&id) {
            return Err(MasterConfigError::NotAMember { id });
        }
        let addresses: BTreeSet<&Address> = members.values().collect();
        if addresses.len() != members.len() {
            return Err(MasterConfigError::DuplicateAddress);
        }
        Ok(MasterConfig {
            id,
            members,
            election_timeout: ELECTION_TIMEOUT_DEFAULT,
            heartbeat_interval: HEARTBEAT_INTERVAL_DEFAULT,
            snapshot_threshold: SNAPSHOT_THRESHOLD_DEFAULT,
            pre_vote: true,
            check_quorum: true,
            agent_ping_interval: AGENT_PING_INTERVAL_DEFAULT,
            max_missed_pings: MAX_MISSED_PINGS_DEFAULT,
            access: None,
            mutation: None,
        })
    }

    /// With another election timeout range; the heartbeat must stay well below its minimum.
    #[must_use]
    pub fn with_election_timeout(mut self, timeout: DurationRange) -> Self {
        self.election_timeout = timeout;
        self
    }

    /// With another heartbeat interval.
    #[must_use]
    pub fn with_heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval;
        self
    }

    /// Compacts the log after this many applied entries (at least 1, at most
    /// [`LOG_ENTRIES_MAX`] / 2, so that the log always has room).
    #[must_use]
    pub fn with_snapshot_threshold(mut self, entries: u64) -> Self {
        self.snapshot_threshold = entries.clamp(1, LOG_ENTRIES_MAX as u64 / 2);
        self
    }

    /// Without the pre-vote phase (on by default): an election timeout starts an election at
    /// once. Safety does not depend on pre-vote; without it, a master that was cut off can
    /// depose a healthy leader when it returns, and elections take two fewer message delays.
    #[must_use]
    pub fn with_pre_vote(mut self, pre_vote: bool) -> Self {
        self.pre_vote = pre_vote;
        self
    }

    /// Without check-quorum and leader stickiness (on by default): a leader then leads until
    /// it sees a higher term, and a follower votes for a higher-term candidate even while it
    /// hears from its leader. Safety does not depend on either.
    #[must_use]
    pub fn with_check_quorum(mut self, check_quorum: bool) -> Self {
        self.check_quorum = check_quorum;
        self
    }

    /// With another interval between the leader's pings to each agent.
    #[must_use]
    pub fn with_agent_ping_interval(mut self, interval: Duration) -> Self {
        self.agent_ping_interval = interval;
        self
    }

    /// Marks an agent unreachable after this many consecutive unanswered pings (at least 1).
    #[must_use]
    pub fn with_max_missed_pings(mut self, pings: u32) -> Self {
        self.max_missed_pings = pings.max(1);
        self
    }

    /// With an access list: from then on, only the principals it lists may register
    /// frameworks, reserve and create volumes in its roles (deny by default).
    #[must_use]
    pub fn with_access_list(mut self, access: crate::operation::AccessList) -> Self {
        self.access = Some(access);
        self
    }

    /// With a deliberately broken protocol rule (tests of the checker only).
    #[cfg(feature = "mutations")]
    #[must_use]
    pub fn with_mutation(mut self, mutation: Mutation) -> Self {
        self.mutation = Some(mutation);
        self
    }

    /// This master's id.
    pub fn id(&self) -> MasterId {
        self.id
    }

    /// Every master, this one included.
    pub fn members(&self) -> &BTreeMap<MasterId, Address> {
        &self.members
    }

    /// A digest of the membership list: masters with different lists refuse each other.
    pub fn membership_digest(&self) -> MembershipDigest {
        // FNV-1a over the list; deterministic, no hashing state from the platform.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for byte in bytes {
                hash ^= u64::from(*byte);
                hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
            }
        };
        for (id, address) in &self.members {
            eat(&[id.0]);
            eat(address.as_str().as_bytes());
            eat(&[0]);
        }
        MembershipDigest(hash)
    }
}

/// Why a master configuration is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MasterConfigError {
    /// The membership list does not have 1, 3 or 5 masters.
    MembershipSize {
        /// How many it has.
        count: usize,
    },
    /// The master's own id is not in the list.
    NotAMember {
        /// The id.
        id: MasterId,
    },
    /// Two masters share an address.
    DuplicateAddress,
}

impl fmt::Display for MasterConfigError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MasterConfigError::MembershipSize { count } => write!(
                formatter,
                "a cluster has 1, 3 or 5 masters, this list has {count}"
            ),
            MasterConfigError::NotAMember { id } => {
                write!(formatter, "master {id} is not in the list of masters")
            }
            MasterConfigError::DuplicateAddress => {
                formatter.write_str("two masters in the list share an address")
            }
        }
    }
}

impl core::error::Error for MasterConfigError {}

/// The master's timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MasterTimer {
    /// Follower or candidate: no word from a leader for an election timeout, start a
    /// (pre-)election. Leader: time to check that a majority is still in contact.
    Election,
    /// Leader: time to send heartbeats (and any entries followers lack).
    Heartbeat,
    /// Leader: time to ping every admitted agent (and every scheduler).
    AgentPing,
    /// Leader: a disconnected framework's failover timeout is over; it is removed and its
    /// tasks killed, unless its scheduler came back (F1).
    FrameworkFailover(crate::ids::FrameworkId),
    /// Leader: a decline filter ends; the framework may be offered the agent again.
    DeclineFilter(crate::ids::FrameworkId, crate::ids::AgentId),
    /// Leader: an offer was held too long; it is rescinded.
    OfferTimeout(crate::ids::OfferId),
}

/// What the master's runtime tells it besides messages and timers.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MasterEvent {
    /// An established connection with the peer at this address ended (closed by the peer,
    /// reset, or a read or write failed), and the runtime holds no other connection to it.
    /// The leader takes each framework whose scheduler was at that address as disconnected
    /// at once, as it would after missed pings: its offers are rescinded, so that other
    /// frameworks can use them, and its failover timeout starts. A scheduler that is alive
    /// subscribes again and gets its framework back (F1). Agents are left to their pings: an
    /// agent's tasks outlive its connection, and marking it unreachable costs its frameworks
    /// far more than a second or two of waiting.
    ///
    /// Optional. A runtime that never sends it only loses time: the leader still notices a
    /// silent scheduler after `max_missed_pings` pings. One sent for a scheduler that is in
    /// fact alive costs a re-subscription, not safety.
    ConnectionLost(Address),
}

/// Where a master stands in the election.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ElectionRole {
    /// Follows `leader`, if it has heard from one in this term within an election timeout.
    Follower {
        /// The leader it heard from.
        leader: Option<MasterId>,
    },
    /// Asking for pre-votes for the next term.
    PreCandidate {
        /// Masters that granted one (itself included).
        granted: BTreeSet<MasterId>,
    },
    /// Asking for votes in its term.
    Candidate {
        /// Masters that granted one (itself included).
        granted: BTreeSet<MasterId>,
    },
    /// Leading its term.
    Leader(alloc::boxed::Box<LeaderState>),
}

/// What a leader tracks about its followers.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LeaderState {
    /// Per follower: the next index to send and the highest index known to match.
    progress: BTreeMap<MasterId, Progress>,
    /// Followers heard from since the last check-quorum.
    active: BTreeSet<MasterId>,
    /// Requests waiting for their entry to commit, by log index.
    pending: BTreeMap<LogIndex, Vec<Waiter>>,
    /// What it knows of the agents (soft state).
    agents: AgentDirectory,
    /// What it knows of the frameworks and their offers (soft state).
    frameworks: FrameworkDirectory,
}

/// Someone waiting for a log index to commit before the leader answers.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Waiter {
    /// An operator's request, answered with [`Message::Committed`].
    Request {
        /// Who asked.
        requester: Address,
        /// The request's number.
        request: u64,
    },
    /// An agent's (re-)registration, answered with `answer`.
    Agent {
        /// Where to answer.
        address: Address,
        /// The answer.
        answer: Message,
    },
}

/// The leader's view of one follower's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Progress {
    next: LogIndex,
    matched: LogIndex,
}

/// A master. See the [module docs](self) for the algorithm, and the
/// [crate docs](crate) for how to drive it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Master {
    config: Arc<MasterConfig>,
    durable: MasterDurable,
    role: ElectionRole,
    commit_index: LogIndex,
    /// The registry with every entry up to `commit_index` applied.
    registry: Registry,
}

impl Master {
    /// This master's id.
    pub fn id(&self) -> MasterId {
        self.config.id
    }

    /// Its current term.
    pub fn term(&self) -> Term {
        self.durable.term
    }

    /// Where it stands in the election.
    pub fn role(&self) -> &ElectionRole {
        &self.role
    }

    /// Whether it leads its term.
    pub fn is_leader(&self) -> bool {
        matches!(self.role, ElectionRole::Leader(_))
    }

    /// The leader it knows of in its term (itself if it leads).
    pub fn leader(&self) -> Option<MasterId> {
        match &self.role {
            ElectionRole::Leader(_) => Some(self.config.id),
            ElectionRole::Follower { leader } => *leader,
            ElectionRole::PreCandidate { .. } | ElectionRole::Candidate { .. } => None,
        }
    }

    /// The vote it cast in its term.
    pub fn voted_for(&self) -> Option<MasterId> {
        self.durable.voted_for
    }

    /// Its replicated log.
    pub fn log(&self) -> &RaftLog {
        &self.durable.log
    }

    /// The highest log index it knows to be committed.
    pub fn commit_index(&self) -> LogIndex {
        self.commit_index
    }

    /// The registry as of the commit index.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Its configuration.
    pub fn config(&self) -> &MasterConfig {
        &self.config
    }

    /// The number of masters that make a majority.
    fn majority(&self) -> usize {
        self.config.members.len() / 2 + 1
    }

    /// The other masters.
    fn peers(&self) -> impl Iterator<Item = (MasterId, &Address)> + '_ {
        let id = self.config.id;
        self.config
            .members
            .iter()
            .filter(move |(peer, _)| **peer != id)
            .map(|(peer, address)| (*peer, address))
    }

    /// The id of the master at `address`, if it is one.
    fn member_at(&self, address: &Address) -> Option<MasterId> {
        self.config
            .members
            .iter()
            .find(|(_, member)| *member == address)
            .map(|(id, _)| *id)
    }

    /// Whether the seeded bug `mutation` is switched on (never, outside the checker's tests).
    fn mutated(&self, mutation: Mutation) -> bool {
        self.config.mutation == Some(mutation)
    }

    /// Makes `record` durable (queued as a barrier) and folds it into the in-memory copy of
    /// the durable state, through the same `apply` that recovery uses.
    fn record(&mut self, record: MasterRecord, out: &mut Outbox<Master>) {
        log::apply(&mut self.durable, &record);
        out.persist(record);
    }

    /// Answers someone who asked a non-leader for a leader's job.
    fn send_leader_hint(&self, to: &Address, out: &mut Outbox<Master>) {
        let leader = self
            .leader()
            .and_then(|leader| self.config.members.get(&leader))
            .cloned();
        out.send(
            to.clone(),
            Message::LeaderHint(LeaderHint {
                term: self.term(),
                leader,
            }),
        );
    }

    /// Answers an operator's `StateRequest`: any master answers, with what it knows.
    fn send_state_report(&self, to: &Address, out: &mut Outbox<Master>) {
        let leader = self
            .leader()
            .and_then(|leader| self.config.members.get(&leader))
            .cloned();
        out.send(
            to.clone(),
            Message::StateReport(alloc::boxed::Box::new(StateReport {
                term: self.term(),
                leader,
                commit_index: self.commit_index,
                registry: self.registry.clone(),
                registered: self
                    .agent_directory()
                    .map(|directory| {
                        let registered: alloc::vec::Vec<crate::ids::AgentId> = directory
                            .agents()
                            .iter()
                            .filter(|(_, view)| view.registered)
                            .map(|(agent, _)| *agent)
                            .collect();
                        crate::bounded::BoundedVec::from_vec(registered).unwrap_or_default()
                    })
                    .unwrap_or_default(),
            })),
        );
    }

    /// Proposes `entry` on behalf of `requester`, who is told when it commits.
    fn handle_request(
        &mut self,
        requester: &Address,
        request: u64,
        entry: RegistryEntry,
        out: &mut Outbox<Master>,
    ) {
        if !self.is_leader() {
            self.send_leader_hint(requester, out);
            return;
        }
        let waiter = Waiter::Request {
            requester: requester.clone(),
            request,
        };
        self.propose(Some(entry), waiter, out);
    }

    /// The registry as it will be once everything in the log commits: borrowed when the
    /// whole log is committed (always, for a lone master), else a copy. For rare steps (a new
    /// leader, a subscription); hot paths use [`Master::with_latest_registry`].
    fn latest_registry(&self) -> alloc::borrow::Cow<'_, Registry> {
        if self.commit_index >= self.log().last_index() {
            return alloc::borrow::Cow::Borrowed(&self.registry);
        }
        let mut latest = self.registry.clone();
        for index in self.commit_index.0 + 1..=self.log().last_index().0 {
            if let Some(logged) = self.log().entry_at(LogIndex(index)) {
                latest.apply(LogIndex(index), &logged.entry);
            }
        }
        alloc::borrow::Cow::Owned(latest)
    }

    /// Calls `read` with the registry as it will be once everything in the log commits,
    /// without copying it: the uncommitted entries (a few) are applied to the registry in
    /// place and undone after `read`, which leaves the registry exactly as it was.
    fn with_latest_registry<T>(&mut self, read: impl FnOnce(&Registry) -> T) -> T {
        let mut undos = Vec::new();
        for index in self.commit_index.0 + 1..=self.durable.log.last_index().0 {
            if let Some(logged) = self.durable.log.entry_at(LogIndex(index)) {
                undos.push(self.registry.apply_undoably(LogIndex(index), &logged.entry));
            }
        }
        let value = read(&self.registry);
        for undo in undos.into_iter().rev() {
            self.registry.undo(undo);
        }
        value
    }

    /// Leader: proposes `entry` (if any) and answers `waiter` once the log commits up to it.
    /// An entry that would change nothing once the log commits is not appended again: the
    /// waiter waits for what is already in flight (or is answered at once), so retries add
    /// nothing to the log.
    fn propose(&mut self, entry: Option<RegistryEntry>, waiter: Waiter, out: &mut Outbox<Master>) {
        debug_assert!(self.is_leader(), "only a leader proposes");
        let entry =
            entry.filter(|entry| self.with_latest_registry(|latest| latest.would_change(entry)));
        let index = match entry {
            Some(entry) => match self.append(entry, out) {
                Some(index) => index,
                None => {
                    out.note(Note::Overloaded {
                        peer: waiter.address().clone(),
                    });
                    return;
                }
            },
            None => self.log().last_index(),
        };
        if index <= self.commit_index {
            self.answer(waiter, out);
            return;
        }
        let ElectionRole::Leader(leader) = &mut self.role else {
            return;
        };
        let waiting: usize = leader.pending.values().map(Vec::len).sum();
        if waiting < PENDING_REQUESTS_MAX {
            leader.pending.entry(index).or_default().push(waiter);
        }
        self.replicate_all(out);
    }

    /// Answers a waiter whose index committed.
    fn answer(&self, waiter: Waiter, out: &mut Outbox<Master>) {
        match waiter {
            Waiter::Request { requester, request } => {
                self.send_committed(&requester, request, out);
            }
            Waiter::Agent { address, answer } => out.send(address, answer),
        }
    }

    fn send_committed(&self, requester: &Address, request: u64, out: &mut Outbox<Master>) {
        out.send(
            requester.clone(),
            Message::Committed(Committed {
                request,
                term: self.term(),
            }),
        );
    }

    /// Leader: appends `entry` to its log in its term; `None` if the log is full.
    fn append(&mut self, entry: RegistryEntry, out: &mut Outbox<Master>) -> Option<LogIndex> {
        debug_assert!(self.is_leader(), "only a leader appends");
        if self.log().entries().len() >= LOG_ENTRIES_MAX {
            return None;
        }
        let index = self.log().last_index().next();
        let term = self.term();
        self.record(
            MasterRecord::Entries {
                from: index,
                entries: alloc::vec![LogEntry { term, entry }],
            },
            out,
        );
        // A single master is a majority by itself.
        self.advance_commit(out);
        Some(index)
    }

    /// Raises the commit index to `index` (never lowers it), applies the newly committed
    /// entries to the registry, answers the requests they complete and compacts the log when
    /// it is long enough.
    fn commit_to(&mut self, index: LogIndex, out: &mut Outbox<Master>) {
        let index = index.min(self.log().last_index());
        if index <= self.commit_index {
            return;
        }
        let mut committed = Vec::new();
        for position in self.commit_index.0 + 1..=index.0 {
            let position = LogIndex(position);
            let entry = &self
                .durable
                .log
                .entry_at(position)
                .expect("committed entries after the snapshot are in the log")
                .entry;
            self.registry.apply(position, entry);
            if self.is_leader() {
                committed.push((position, entry.clone()));
            }
        }
        self.commit_index = index;
        self.agent_entries_committed(&committed, out);
        self.framework_entries_committed(&committed, out);
        if let ElectionRole::Leader(leader) = &mut self.role {
            let later = leader.pending.split_off(&index.next());
            let done = core::mem::replace(&mut leader.pending, later);
            for waiter in done.into_values().flatten() {
                self.answer(waiter, out);
            }
        }
        if !committed.is_empty() {
            self.request_allocation();
        }
        self.compact_if_due(out);
    }

    /// Replaces the applied prefix of the log by a snapshot once it reaches the threshold.
    fn compact_if_due(&mut self, out: &mut Outbox<Master>) {
        let applied = self.commit_index.0 - self.log().snapshot().index.0;
        if applied < self.config.snapshot_threshold {
            return;
        }
        let snapshot = crate::message::Snapshot {
            index: self.commit_index,
            term: self
                .log()
                .term_at(self.commit_index)
                .expect("the commit index is in the log"),
            registry: self.registry.clone(),
        };
        self.record(MasterRecord::Snapshot(snapshot), out);
        out.note(Note::Compacted {
            index: self.commit_index,
        });
    }

    /// Assertions that hold after every step (TigerBeetle style): cheap, local, and each a
    /// consequence of a rule in the module docs.
    fn check_invariants(&self) {
        if self.config.mutation.is_some() {
            // A seeded bug may break what these assertions rely on; the model reports it.
            return;
        }
        let log = self.log();
        debug_assert!(
            log.snapshot().index <= self.commit_index,
            "the snapshot covers only committed entries"
        );
        debug_assert!(
            self.commit_index <= log.last_index(),
            "nothing past the end of the log is committed"
        );
        debug_assert!(log.entries().len() <= LOG_ENTRIES_MAX, "the log is bounded");
        debug_assert!(
            log.entries()
                .windows(2)
                .all(|pair| pair[0].term <= pair[1].term),
            "terms in a log never decrease"
        );
        debug_assert!(
            log.last_term() <= self.term(),
            "no entry is from a future term"
        );
        match &self.role {
            ElectionRole::Candidate { granted } => {
                debug_assert_eq!(
                    self.voted_for(),
                    Some(self.id()),
                    "a candidate votes for itself"
                );
                debug_assert!(granted.contains(&self.id()));
            }
            ElectionRole::Leader(leader) => {
                debug_assert_eq!(
                    self.voted_for(),
                    Some(self.id()),
                    "a leader voted for itself"
                );
                debug_assert!(
                    leader.agents.derived_data_is_exact(),
                    "the task index and what tasks use are kept exactly as tasks change"
                );
                debug_assert!(
                    leader.agents.addresses == agents::AddressIndex::of(&self.registry),
                    "the address index is kept exactly as agent entries commit"
                );
                debug_assert!(
                    leader
                        .progress
                        .values()
                        .all(|progress| progress.matched < progress.next
                            && progress.matched <= log.last_index())
                );
            }
            ElectionRole::Follower { .. } | ElectionRole::PreCandidate { .. } => {}
        }
    }
}

impl Waiter {
    /// Where the answer goes.
    fn address(&self) -> &Address {
        match self {
            Waiter::Request { requester, .. } => requester,
            Waiter::Agent { address, .. } => address,
        }
    }
}

impl Machine for Master {
    type Config = MasterConfig;
    type Timer = MasterTimer;
    type Record = MasterRecord;
    type Durable = MasterDurable;
    type Event = MasterEvent;
    type Action = Infallible;
    type BootError = Infallible;

    /// Boots as a follower from the persisted term, vote and log. The registry is rebuilt
    /// from the snapshot; entries after it are applied once a leader says they committed. A
    /// lone master leads at once.
    fn boot(
        config: &MasterConfig,
        durable: &MasterDurable,
        out: &mut Outbox<Master>,
    ) -> Result<Master, Infallible> {
        let mut master = Master {
            config: Arc::new(config.clone()),
            durable: durable.clone(),
            role: ElectionRole::Follower { leader: None },
            commit_index: durable.log.snapshot().index,
            registry: durable.log.snapshot().registry.clone(),
        };
        if master.config.members.len() == 1 {
            master.start_election(out);
        } else {
            out.set_timer(MasterTimer::Election, master.config.election_timeout);
        }
        // A lone master leads (and commits) at once: boot ends its own batch, so a booted
        // master has nothing pending.
        master.allocate_if_pending(out);
        master.check_invariants();
        Ok(master)
    }

    fn apply(durable: &mut MasterDurable, record: &MasterRecord) {
        log::apply(durable, record);
    }

    fn handle_message(&mut self, from: &Address, message: Message, out: &mut Outbox<Master>) {
        match message {
            Message::Election(message) => match self.member_at(from) {
                Some(peer) => self.handle_election(peer, from, message, out),
                None => out.note(Note::UnknownPeer { peer: from.clone() }),
            },
            Message::FindLeader => self.send_leader_hint(from, out),
            Message::StateRequest => self.send_state_report(from, out),
            Message::SetRoleWeight(SetRoleWeight {
                request,
                role,
                weight,
            }) => {
                self.handle_request(
                    from,
                    request,
                    RegistryEntry::RoleWeightSet { role, weight },
                    out,
                );
            }
            Message::MarkAgentGone(MarkAgentGone { request, agent }) => {
                if self.is_leader()
                    && !self.with_latest_registry(|latest| latest.agents().contains_key(&agent))
                {
                    // Not an agent of this cluster: refused, nothing proposed.
                    out.note(Note::UnknownAgent {
                        peer: from.clone(),
                        agent,
                    });
                    return;
                }
                self.handle_request(from, request, RegistryEntry::AgentGone { agent }, out);
            }
            Message::RegisterAgent(register) => self.handle_register_agent(from, *register, out),
            Message::ReregisterAgent(reregister) => {
                self.handle_reregister_agent(from, *reregister, out);
            }
            Message::StatusUpdate(update) => self.handle_status_update(from, update, out),
            Message::Pong(pong) => {
                self.handle_scheduler_pong(from, pong);
                self.handle_pong(from, pong);
            }
            Message::Subscribe(subscribe) => self.handle_subscribe(from, *subscribe, out),
            Message::Accept(accept) => self.handle_accept(from, *accept, out),
            Message::Decline(decline) => self.handle_decline(from, *decline, out),
            Message::Revive(framework) => self.handle_revive(from, framework, out),
            Message::Acknowledge(acknowledge) => self.handle_acknowledge(from, acknowledge, out),
            Message::Reconcile(reconcile) => self.handle_reconcile(from, *reconcile, out),
            Message::Kill(kill) => self.handle_kill(from, kill, out),
            Message::OperationStatus(status) => self.handle_operation_status(from, *status, out),
            // Not for masters, or not from a peer a master listens to: ignored.
            Message::Ping(_)
            | Message::LeaderHint(_)
            | Message::Committed(_)
            | Message::StateReport(_)
            | Message::AgentRegistered(_)
            | Message::AgentReregistered(_)
            | Message::ShutdownAgent(_)
            | Message::LeaderChanged(_)
            | Message::RunTask(_)
            | Message::KillTask(_)
            | Message::StatusAcknowledgement(_)
            | Message::Subscribed(_)
            | Message::FrameworkReplaced(_)
            | Message::Offers(_)
            | Message::TaskStatus(_)
            | Message::ApplyOperations(_)
            | Message::SubscriptionRefused(_)
            | Message::RescindOffer(_) => {}
        }
        self.check_invariants();
    }

    fn handle_timer(&mut self, timer: MasterTimer, out: &mut Outbox<Master>) {
        match timer {
            MasterTimer::Election => self.handle_election_timeout(out),
            MasterTimer::Heartbeat => self.handle_heartbeat(out),
            MasterTimer::AgentPing => self.handle_agent_ping(out),
            MasterTimer::FrameworkFailover(framework) => {
                self.handle_framework_failover(framework, out);
            }
            MasterTimer::DeclineFilter(framework, agent) => {
                self.end_decline_filter(framework, agent);
            }
            MasterTimer::OfferTimeout(offer) => self.offer_timed_out(offer, out),
        }
        self.check_invariants();
    }

    fn handle_event(&mut self, event: MasterEvent, out: &mut Outbox<Master>) {
        match event {
            MasterEvent::ConnectionLost(peer) => self.handle_connection_lost(&peer, out),
        }
        self.check_invariants();
    }

    /// Runs the allocator once if any input of the batch freed resources or added demand
    /// (a commit, an accept, a decline, a task's end, a subscription, ...): however many
    /// inputs a batch holds, it costs one allocation cycle.
    fn end_batch(&mut self, out: &mut Outbox<Master>) {
        self.allocate_if_pending(out);
        self.check_invariants();
    }
}

#[cfg(test)]
mod tests;
