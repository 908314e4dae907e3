//! Notes: what a machine tells the operator's log about what it decided and why.
//!
//! A machine cannot write logs (it does no I/O), so it queues a [`Note`] in its outbox and the
//! driver logs it. Notes never affect the protocol; a model may ignore them.

use serde::{Deserialize, Serialize};

use crate::Address;
use crate::ids::{AgentId, FrameworkId, MasterId, Term};
use crate::registry::LogIndex;

/// Something worth a line in the operator's log.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Note {
    /// A majority granted pre-votes: this master starts an election for `term`.
    ElectionStarted {
        /// The term it runs for.
        term: Term,
    },
    /// This master won the election for `term`.
    BecameLeader {
        /// Its term.
        term: Term,
    },
    /// This master follows `leader` in `term` (noted when the leader changes).
    FollowingLeader {
        /// The term.
        term: Term,
        /// The leader.
        leader: MasterId,
    },
    /// This leader stopped leading.
    SteppedDown {
        /// The term it led.
        term: Term,
        /// Why.
        reason: StepDownReason,
    },
    /// A peer runs with a different list of masters; its messages are refused. Fix the
    /// configuration: every master must be given the same `--masters` list.
    MembershipMismatch {
        /// The peer.
        peer: Address,
    },
    /// A message claiming to be from a master came from an address that is not in the list.
    UnknownPeer {
        /// The address.
        peer: Address,
    },
    /// A scheduler named a framework this leader does not serve it as: unknown, removed,
    /// with another role or principal, or subscribed from elsewhere.
    UnknownFramework {
        /// The scheduler's address.
        peer: Address,
        /// The framework named.
        framework: FrameworkId,
    },
    /// A framework's scheduler stopped answering: its failover timeout starts (F1).
    FrameworkDisconnected {
        /// The framework.
        framework: FrameworkId,
    },
    /// A disconnected framework's failover timeout ran out: it is removed, its tasks killed.
    FrameworkRemoved {
        /// The framework.
        framework: FrameworkId,
    },
    /// An operator named an agent this cluster never admitted.
    UnknownAgent {
        /// The operator's address.
        peer: Address,
        /// The agent named.
        agent: AgentId,
    },
    /// The log up to `index` was replaced by a registry snapshot.
    Compacted {
        /// The last index the snapshot covers.
        index: LogIndex,
    },
    /// A request was refused because too many are waiting to commit; the requester retries.
    Overloaded {
        /// Who asked.
        peer: Address,
    },
    /// The leader admitted a new agent (its admission is committed).
    AgentAdmitted {
        /// The agent's id.
        agent: AgentId,
        /// Where it listens.
        address: Address,
    },
    /// The leader stopped hearing from an agent and marks it unreachable.
    AgentUnreachable {
        /// The agent.
        agent: AgentId,
    },
    /// An agent marked unreachable (or one that moved) re-registered, and its readmission is
    /// committed: its tasks resume.
    AgentReadmitted {
        /// The agent's id.
        agent: AgentId,
        /// Where it listens now.
        address: Address,
    },
    /// This agent is registered with the leader of `term`.
    RegisteredWithLeader {
        /// The agent's id.
        agent: AgentId,
        /// The leader.
        leader: Address,
        /// The leader's term.
        term: Term,
    },
    /// This agent stopped hearing from its leader and looks for the leader again.
    LeaderSilent {
        /// The leader it last knew.
        leader: Address,
    },
    /// This agent ignored a command from a lower term than the highest it has seen (E3): the
    /// sender is a deposed leader.
    StaleTerm {
        /// The sender.
        peer: Address,
        /// The command's term.
        term: Term,
        /// The highest term the agent has seen.
        highest: Term,
    },
    /// This scheduler's runtime reported that its connection to its leader ended: it looks
    /// for the leader again without waiting for the silence timeout.
    LeaderConnectionLost {
        /// The leader it last knew.
        leader: Address,
    },
}

/// Why a leader stepped down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum StepDownReason {
    /// A message showed a higher term: a newer leader may exist.
    HigherTerm,
    /// No majority answered within an election timeout (check-quorum).
    LostQuorum,
}
