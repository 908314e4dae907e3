//! Notes: what a machine tells the operator's log about what it decided and why.
//!
//! A machine cannot write logs (it does no I/O), so it queues a [`Note`] in its outbox and the
//! driver logs it. Notes never affect the protocol; a model may ignore them.

use serde::{Deserialize, Serialize};

use crate::Address;
use crate::ids::{MasterId, Term};
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
}

/// Why a leader stepped down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum StepDownReason {
    /// A message showed a higher term: a newer leader may exist.
    HigherTerm,
    /// No majority answered within an election timeout (check-quorum).
    LostQuorum,
}
