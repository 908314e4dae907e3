//! Everything that crosses the wire: one [`Message`] enum for every role.
//!
//! Messages are `Ord` and `Hash` so the model checker can keep them in its network. Each
//! variant is a typed payload; bounded collections ([`BoundedVec`],
//! [`Name`](crate::bounded::Name)) keep a peer from making a decoder allocate without limit.
//! Messages travel in [frames](crate::frame) that carry the protocol version.

use alloc::boxed::Box;

use serde::{Deserialize, Serialize};

use crate::Address;
use crate::allocator::Weight;
use crate::bounded::BoundedVec;
use crate::ids::{
    AgentId, BootId, ExecutorId, FrameworkId, OfferId, OperationId, Role, TaskId, Term, UpdateId,
};
use crate::registry::{AgentInfo, FrameworkInfo, LogIndex, Registry, RegistryEntry};
use crate::resources::{PersistentVolume, Resources};
use crate::task::{TaskCommand, TaskState, TaskStatusReason};

/// The most log entries one [`AppendEntries`] carries.
pub const APPEND_ENTRIES_MAX: usize = 64;
/// The most tasks one agent holds, and so reports when it re-registers.
pub const AGENT_TASKS_MAX: usize = 4096;
/// The most offers one [`Offers`] message carries, and one accept or decline names.
pub const OFFERS_MAX: usize = 1024;
/// The most operations one [`Accept`] carries.
pub const OPERATIONS_MAX: usize = 256;
/// The most tasks one [`Reconcile`] names.
pub const RECONCILE_TASKS_MAX: usize = 4096;

/// Every message of the protocol. It grows with the protocol's roles; each variant documents
/// who sends it to whom. Large payloads are boxed, so that a message stays small to move.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Message {
    /// A liveness probe. The leader pings each agent; a peer answers with [`Message::Pong`]
    /// carrying the same sequence number.
    Ping(Ping),
    /// The answer to a [`Message::Ping`].
    Pong(Pong),
    /// Master to master: election and log replication.
    Election(ElectionMessage),
    /// Anyone to any master: who leads? Answered with [`Message::LeaderHint`].
    FindLeader,
    /// A master to anyone who asked a non-leader for something only the leader does: the
    /// leader it knows of, if any. Retry there.
    LeaderHint(LeaderHint),
    /// An operator to the leader: set a role's weight for the allocator. Idempotent: retry it
    /// until [`Message::Committed`] arrives.
    SetRoleWeight(SetRoleWeight),
    /// An operator to the leader: this agent is gone for good (its machine was
    /// decommissioned). Its tasks become `GONE` and, should it come back, it is told to shut
    /// down and register anew. Idempotent: retry it until [`Message::Committed`] arrives.
    MarkAgentGone(MarkAgentGone),
    /// The leader to whoever made a request: the request's change is committed.
    Committed(Committed),
    /// Anyone to any master: report what you know. Answered with [`Message::StateReport`].
    StateRequest,
    /// A master's answer to [`Message::StateRequest`]: its term, the leader it knows and the
    /// registry as of its commit index.
    StateReport(Box<StateReport>),
    /// A new agent (no id yet) to the leader: admit me. Non-leaders answer with
    /// [`Message::LeaderHint`]; the leader answers [`Message::AgentRegistered`] once the
    /// admission is committed to the registry.
    RegisterAgent(Box<RegisterAgent>),
    /// An agent with an id to the leader, after a leader change, a lost connection or its own
    /// restart: here is everything I hold. Answered with [`Message::AgentReregistered`], or
    /// [`Message::ShutdownAgent`] if the agent was marked gone.
    ReregisterAgent(Box<ReregisterAgent>),
    /// The leader to a new agent: you are admitted under this id.
    AgentRegistered(AgentRegistered),
    /// The leader to a re-registering agent: you are known (again) under your id.
    AgentReregistered(AgentRegistered),
    /// The leader to an agent marked gone: shut down every task and register anew.
    ShutdownAgent(ShutdownAgent),
    /// A new leader to every agent in its registry: re-register with me.
    LeaderChanged(LeaderChanged),
    /// The leader to an agent: run a task in an executor, once a framework's launch is
    /// accepted.
    RunTask(Box<RunTask>),
    /// An agent to the leader: a task changed state. Retried until acknowledged.
    StatusUpdate(StatusUpdate),
    /// The leader to an agent: this status update was received; send the task's next one.
    StatusAcknowledgement(StatusAcknowledgement),
    /// The leader to an agent: kill a task. The agent's executor kills it and the agent
    /// reports `KILLED` like any other update.
    KillTask(KillTask),
    /// A scheduler to the leader: subscribe, as a new framework or (with its id) as the
    /// framework's new scheduler (failover). Non-leaders answer with [`Message::LeaderHint`];
    /// the leader answers [`Message::Subscribed`] once the framework is in the registry.
    Subscribe(Box<Subscribe>),
    /// The leader to a scheduler: you are subscribed as this framework.
    Subscribed(Subscribed),
    /// The leader to a framework's previous scheduler: another one subscribed in your place.
    FrameworkReplaced(Subscribed),
    /// The leader to a scheduler: resources offered to its framework.
    Offers(Box<Offers>),
    /// A scheduler to the leader: use these offers for these operations. What the operations
    /// leave unused goes back to the pool.
    Accept(Box<Accept>),
    /// A scheduler to the leader: these offers are not wanted.
    Decline(Box<Decline>),
    /// The leader to a scheduler: a task's state, from its agent or from the master.
    TaskStatus(Box<TaskStatus>),
    /// A scheduler to the leader: this task status was received. The leader passes it on to
    /// the agent, which then sends the task's next update.
    Acknowledge(Acknowledge),
    /// A scheduler to the leader: tell me the latest state of these tasks (all of mine if the
    /// list is empty).
    Reconcile(Box<Reconcile>),
    /// A scheduler to the leader: kill this task.
    Kill(Kill),
    /// A scheduler to the leader: offers are wanted again (after an accept or decline that
    /// suppressed them).
    Revive(FrameworkId),
    /// The leader to an agent: apply these resource operations (reserve, unreserve, create or
    /// destroy a volume). Resent until the agent answers; applied at most once (R5).
    ApplyOperations(Box<ApplyOperations>),
    /// An agent to the leader, and the leader to the framework: an operation's outcome.
    OperationStatus(Box<OperationStatus>),
    /// The leader to a scheduler: this offer is void (it timed out, its agent became
    /// unreachable, or the framework failed over).
    RescindOffer(RescindOffer),
    /// The leader to a scheduler whose subscription it refuses (not authorized, or a
    /// framework id it does not know).
    SubscriptionRefused(Box<SubscriptionRefused>),
}

/// The messages of the masters' election and replicated log (Raft, with pre-vote and
/// check-quorum). See [`crate::master`] for the algorithm.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ElectionMessage {
    /// "Would you vote for me in `term`?" — asked before starting an election, without raising
    /// anyone's term, so a master that was cut off cannot depose a healthy leader.
    PreVote(VoteRequest),
    /// The answer to a [`ElectionMessage::PreVote`].
    PreVoteReply(VoteReply),
    /// "Vote for me in `term`."
    RequestVote(VoteRequest),
    /// The answer to a [`ElectionMessage::RequestVote`].
    Vote(VoteReply),
    /// The leader's log replication, also its heartbeat.
    AppendEntries(AppendEntries),
    /// The answer to an [`ElectionMessage::AppendEntries`].
    AppendReply(AppendReply),
    /// The leader's registry snapshot, for a follower that needs entries it has compacted.
    InstallSnapshot(InstallSnapshot),
    /// The answer to an [`ElectionMessage::InstallSnapshot`].
    InstallSnapshotReply(AppendReply),
}

/// Identifies a membership list, so that masters configured with different lists refuse each
/// other instead of electing two leaders.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MembershipDigest(pub u64);

/// A request for a (pre-)vote.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct VoteRequest {
    /// The term the candidate runs for (for a pre-vote: the term it would run for).
    pub term: Term,
    /// The index of the candidate's last log entry.
    pub last_log_index: LogIndex,
    /// The term of the candidate's last log entry.
    pub last_log_term: Term,
    /// The candidate's membership list.
    pub membership: MembershipDigest,
}

/// An answer to a [`VoteRequest`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct VoteReply {
    /// The term voted in if granted; the voter's own term if not.
    pub term: Term,
    /// Whether the vote is granted.
    pub granted: bool,
}

/// Log replication and heartbeat.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AppendEntries {
    /// The leader's term.
    pub term: Term,
    /// The index of the entry just before `entries`.
    pub previous_index: LogIndex,
    /// The term of the entry at `previous_index`.
    pub previous_term: Term,
    /// Entries to append, in order, starting at `previous_index + 1`.
    pub entries: BoundedVec<LogEntry, APPEND_ENTRIES_MAX>,
    /// The leader's commit index.
    pub leader_commit: LogIndex,
    /// The leader's membership list.
    pub membership: MembershipDigest,
}

/// An answer to [`AppendEntries`] or [`InstallSnapshot`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AppendReply {
    /// The follower's term.
    pub term: Term,
    /// Whether the entries (or snapshot) were accepted.
    pub success: bool,
    /// On success, the index up to which the follower's log matches the leader's; on failure,
    /// the index the leader should try next.
    pub index: LogIndex,
}

/// A registry snapshot sent by the leader.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct InstallSnapshot {
    /// The leader's term.
    pub term: Term,
    /// The snapshot.
    pub snapshot: Snapshot,
    /// The leader's membership list.
    pub membership: MembershipDigest,
}

/// One replicated log entry.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LogEntry {
    /// The term of the leader that created it.
    pub term: Term,
    /// The registry change.
    pub entry: RegistryEntry,
}

/// The registry as of a log index: what replaces the log's prefix up to that index.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Snapshot {
    /// The last index the snapshot covers.
    pub index: LogIndex,
    /// The term of the entry at `index`.
    pub term: Term,
    /// The registry with every entry up to `index` applied.
    pub registry: Registry,
}

/// Where the leader is, as far as a master knows.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LeaderHint {
    /// The answering master's term.
    pub term: Term,
    /// The leader's address, if the master knows of one.
    pub leader: Option<Address>,
}

/// What a master knows, for operators (`berth state`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct StateReport {
    /// The answering master's term.
    pub term: Term,
    /// The leader it knows of, if any (its own address if it leads).
    pub leader: Option<Address>,
    /// Its commit index.
    pub commit_index: LogIndex,
    /// The registry as of its commit index.
    pub registry: Registry,
    /// From the leader: the agents that registered or re-registered with it (in its term),
    /// so operators can see an agent follow a failover. Empty from other masters.
    pub registered: BoundedVec<AgentId, { crate::registry::REGISTRY_AGENTS_MAX }>,
}

/// An operator's request to set a role's weight.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SetRoleWeight {
    /// Chosen by the requester, echoed in [`Committed`].
    pub request: u64,
    /// The role.
    pub role: Role,
    /// The weight.
    pub weight: Weight,
}

/// An operator's request to mark an agent gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MarkAgentGone {
    /// Chosen by the requester, echoed in [`Committed`].
    pub request: u64,
    /// The agent.
    pub agent: AgentId,
}

/// A request's change is committed to the registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Committed {
    /// The request, as the requester numbered it.
    pub request: u64,
    /// The term of the leader that committed it.
    pub term: Term,
}

/// A liveness probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Ping {
    /// The sender's term; a receiver ignores a ping from a lower term than it has seen (E3).
    pub term: Term,
    /// Which probe this is, echoed in the [`Pong`].
    pub sequence: u64,
}

/// The answer to a [`Ping`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Pong {
    /// The term of the ping answered.
    pub term: Term,
    /// The sequence number of the ping answered.
    pub sequence: u64,
}

/// A new agent's request to be admitted.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RegisterAgent {
    /// Where the agent listens.
    pub address: Address,
    /// Its host name and total resources.
    pub info: AgentInfo,
    /// Its host's boot.
    pub boot_id: BootId,
    /// The highest term the agent has seen; a master of a lower term cannot admit it.
    pub highest_term: Term,
    /// The number of this registration attempt (see [`ReregisterAgent::report`]).
    pub report: u64,
}

/// An agent's re-registration: its id and everything it holds.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReregisterAgent {
    /// The agent's id.
    pub agent: AgentId,
    /// Where it listens now.
    pub address: Address,
    /// Its host name and total resources.
    pub info: AgentInfo,
    /// Its host's boot.
    pub boot_id: BootId,
    /// The highest term it has seen.
    pub highest_term: Term,
    /// Every task it holds, with its latest state.
    pub tasks: BoundedVec<TaskReport, AGENT_TASKS_MAX>,
    /// The oldest unacknowledged update of each task (at most one per task is in flight).
    pub unacknowledged: BoundedVec<StatusUpdate, AGENT_TASKS_MAX>,
    /// The resource operations it applied last, oldest first: the leader resends those it
    /// sent and did not hear answered, and counts in its view of the agent's resources only
    /// those not applied yet.
    pub operations: BoundedVec<(FrameworkId, OperationId), { crate::agent::OPERATIONS_REMEMBERED }>,
    /// The number of this registration attempt: it grows, durably, each time the agent
    /// starts looking for a leader, and every copy of one attempt carries the same. A leader
    /// takes a report only if it is newer than the last it took, so a copy the network
    /// delayed cannot roll its view of the agent back; the agent takes only the answer to its
    /// current attempt ([`AgentRegistered::report`]).
    pub report: u64,
}

/// One task an agent holds, as it reports it when re-registering.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TaskReport {
    /// The task's framework.
    pub framework: FrameworkId,
    /// The executor running it.
    pub executor: ExecutorId,
    /// The task.
    pub task: TaskId,
    /// What it uses of the agent's resources.
    pub resources: Resources,
    /// Its latest state on the agent (which may not have reached the master yet).
    pub state: TaskState,
    /// The update that reported `state`, while it is unacknowledged. An update the master
    /// receives later with this id or a lower one is older than `state`.
    pub latest_update: Option<UpdateId>,
}

/// The leader's answer to a (re-)registration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AgentRegistered {
    /// The leader's term (E3).
    pub term: Term,
    /// The agent's id.
    pub agent: AgentId,
    /// The registration attempt answered.
    pub report: u64,
}

/// The leader tells an agent marked gone to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ShutdownAgent {
    /// The leader's term (E3).
    pub term: Term,
    /// The agent marked gone.
    pub agent: AgentId,
}

/// A new leader's call to re-register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LeaderChanged {
    /// The new leader's term (E3).
    pub term: Term,
}

/// The leader asks an agent to run a task.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RunTask {
    /// The leader's term (E3).
    pub term: Term,
    /// The task's framework.
    pub framework: FrameworkId,
    /// The executor to run it in (started if it is not running).
    pub executor: ExecutorId,
    /// The task.
    pub task: TaskId,
    /// What it uses of the agent's resources, persistent volumes included.
    pub resources: Resources,
    /// What it runs.
    pub command: TaskCommand,
}

/// The leader asks an agent to kill a task.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct KillTask {
    /// The leader's term (E3).
    pub term: Term,
    /// The task's framework.
    pub framework: FrameworkId,
    /// The task.
    pub task: TaskId,
}

/// A task's new state, from its agent.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct StatusUpdate {
    /// The agent the task runs on.
    pub agent: AgentId,
    /// The task's framework.
    pub framework: FrameworkId,
    /// The task.
    pub task: TaskId,
    /// Its new state.
    pub state: TaskState,
    /// Why, when the state alone does not say.
    pub reason: Option<TaskStatusReason>,
    /// The update's number on its agent; a resent update keeps it.
    pub update: UpdateId,
}

/// The acknowledgement of a status update.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct StatusAcknowledgement {
    /// The leader's term (E3).
    pub term: Term,
    /// The task's framework.
    pub framework: FrameworkId,
    /// The task.
    pub task: TaskId,
    /// The update acknowledged.
    pub update: UpdateId,
}

/// A scheduler's subscription.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Subscribe {
    /// The framework's id when the scheduler fails over to a framework that exists; `None` for
    /// a new framework.
    pub framework: Option<FrameworkId>,
    /// Its name, role, principal and failover timeout.
    pub info: FrameworkInfo,
    /// The highest term the scheduler has seen; a master of a lower term cannot serve it.
    pub highest_term: Term,
    /// Whether the scheduler wants no offers for now (it has nothing to launch).
    pub suppressed: bool,
}

/// The leader's answer to a subscription, or its notice that a subscription was replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Subscribed {
    /// The leader's term (E3).
    pub term: Term,
    /// The framework.
    pub framework: FrameworkId,
}

/// Resources offered to a framework.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Offers {
    /// The leader's term (E3).
    pub term: Term,
    /// The framework offered to.
    pub framework: FrameworkId,
    /// The offers.
    pub offers: BoundedVec<OfferInfo, OFFERS_MAX>,
}

/// One offer: resources of one agent.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OfferInfo {
    /// The offer's id, named when it is accepted or declined.
    pub offer: OfferId,
    /// The agent whose resources these are.
    pub agent: AgentId,
    /// The resources.
    pub resources: Resources,
}

/// A scheduler's use of offers.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Accept {
    /// The framework.
    pub framework: FrameworkId,
    /// The offers used, all of one agent.
    pub offers: BoundedVec<OfferId, OFFERS_MAX>,
    /// The operations, applied in order.
    pub operations: BoundedVec<Operation, OPERATIONS_MAX>,
    /// Whether the scheduler wants no more offers for now.
    pub suppress: bool,
}

/// One operation of an [`Accept`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Operation {
    /// Named by the framework, for feedback and so a retry is recognised (R5).
    pub id: OperationId,
    /// What to do.
    pub kind: OperationKind,
}

/// What an operation does. See [`crate::operation`] for how each changes an agent's
/// resources.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum OperationKind {
    /// Launch a task.
    Launch(TaskSpec),
    /// Reserve these unreserved resources for the framework's role, in its principal's name.
    Reserve(Resources),
    /// Give these resources, dynamically reserved for the framework's role, back to the pool.
    Unreserve(Resources),
    /// Create a persistent volume on `source`: disk reserved for the framework's role.
    CreateVolume {
        /// The disk, reserved for the role, without a volume.
        source: Resources,
        /// The volume's id and where tasks see it.
        volume: PersistentVolume,
    },
    /// Destroy a persistent volume and its data: the disk entry that carries it. Refused while
    /// a task that has not ended uses it.
    DestroyVolume(Resources),
}

/// A task to launch.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TaskSpec {
    /// The task's id, unique within the framework.
    pub task: TaskId,
    /// The executor to run it in.
    pub executor: ExecutorId,
    /// What it uses, from the accepted offers.
    pub resources: Resources,
    /// What it runs.
    pub command: TaskCommand,
}

/// A scheduler declines offers.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Decline {
    /// The framework.
    pub framework: FrameworkId,
    /// The offers.
    pub offers: BoundedVec<OfferId, OFFERS_MAX>,
    /// Whether the scheduler wants no more offers for now.
    pub suppress: bool,
}

/// Identifies a task status for its acknowledgement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum StatusSource {
    /// An agent's status update, acknowledged to the agent through the leader.
    Agent(UpdateId),
    /// A state the master reports itself (`UNREACHABLE`, `GONE`, or a task's state again once
    /// its agent is readmitted); acknowledged to the leader, which resends it until then.
    Master,
    /// An answer to a reconciliation: not acknowledged (ask again if it is lost).
    Reconciliation,
}

/// A task's state, as the leader tells its framework.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TaskStatus {
    /// The leader's term (E3).
    pub term: Term,
    /// The task's framework.
    pub framework: FrameworkId,
    /// The task.
    pub task: TaskId,
    /// Its agent, if known.
    pub agent: Option<AgentId>,
    /// Its state.
    pub state: TaskState,
    /// Why, when the state alone does not say.
    pub reason: Option<TaskStatusReason>,
    /// Where it comes from, which says how to acknowledge it.
    pub source: StatusSource,
}

/// A scheduler's acknowledgement of a [`TaskStatus`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Acknowledge {
    /// The framework.
    pub framework: FrameworkId,
    /// The task.
    pub task: TaskId,
    /// The task's agent, as the status named it.
    pub agent: Option<AgentId>,
    /// The task's state, as the status reported it.
    pub state: TaskState,
    /// The status's source.
    pub source: StatusSource,
}

/// A scheduler asks for the latest state of its tasks.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Reconcile {
    /// The framework.
    pub framework: FrameworkId,
    /// The tasks, each with the agent the scheduler last knew it on; empty for every task the
    /// leader knows of the framework.
    pub tasks: BoundedVec<(TaskId, Option<AgentId>), RECONCILE_TASKS_MAX>,
}

/// A scheduler asks to kill a task.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Kill {
    /// The framework.
    pub framework: FrameworkId,
    /// The task.
    pub task: TaskId,
}

/// The most resource operations one [`ApplyOperations`] carries.
pub const AGENT_OPERATIONS_MAX: usize = 256;

/// Resource operations for an agent.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ApplyOperations {
    /// The leader's term (E3).
    pub term: Term,
    /// The agent.
    pub agent: AgentId,
    /// The framework whose operations these are.
    pub framework: FrameworkId,
    /// The operations, in order.
    pub operations: BoundedVec<AgentOperation, AGENT_OPERATIONS_MAX>,
}

/// One resource operation as the agent applies it: what it takes from the agent's total and
/// what it puts back.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AgentOperation {
    /// The framework's id for the operation (R5: applied once per id).
    pub id: OperationId,
    /// What the operation takes from the agent's resources.
    pub consumed: Resources,
    /// What it gives back in their place.
    pub produced: Resources,
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum OperationState {
    /// Applied (persisted on the agent).
    Finished,
    /// Refused; nothing changed.
    Failed(OperationFailure),
}

/// Why an operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum OperationFailure {
    /// The offers were not outstanding, not the framework's, or of several agents.
    InvalidOffers,
    /// The resources are not in the offers (or, on the agent, not in its resources).
    ResourcesUnavailable,
    /// The resources do not suit the operation (see [`crate::operation::OperationError`]).
    Invalid,
    /// The framework's principal may not do this in its role.
    Unauthorized,
    /// The volume is used by a task that has not ended.
    VolumeInUse,
}

/// An operation's outcome.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OperationStatus {
    /// The sender's term: the leader's, or the highest the agent has seen.
    pub term: Term,
    /// The agent the operation is for, if it got that far.
    pub agent: Option<AgentId>,
    /// The framework.
    pub framework: FrameworkId,
    /// The operation.
    pub operation: OperationId,
    /// Its outcome.
    pub state: OperationState,
    /// From an agent: its resources after the operation (the leader's view follows them).
    pub total: Option<Resources>,
}

/// A refused subscription.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SubscriptionRefused {
    /// The leader's term.
    pub term: Term,
    /// Why.
    pub reason: SubscriptionRefusal,
}

/// Why a subscription is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SubscriptionRefusal {
    /// The principal may not register frameworks in the role.
    Unauthorized,
    /// The framework id is unknown (never registered, or removed), or its role or principal
    /// differ from the registered ones.
    UnknownFramework,
}

/// An offer withdrawn by the leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RescindOffer {
    /// The leader's term (E3).
    pub term: Term,
    /// The framework it was offered to.
    pub framework: FrameworkId,
    /// The offer.
    pub offer: OfferId,
}
