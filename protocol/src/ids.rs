//! Identifiers and terms.
//!
//! Two kinds of identifier exist. Ids the **leader assigns** (agents, frameworks, offers) are an
//! [`AssignedId`]: the leader's [`Term`] and a sequence number within it. Terms only grow and
//! at most one leader holds a term (invariant E1), so such ids are unique across failovers
//! without randomness or clocks. Ids a **framework or operator chooses** (tasks, executors,
//! operations, volumes) and roles and principals are [`Name`]s.

use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::bounded::{Name, NameError};

/// A leader's term (epoch). At most one master leads in a term (E1); every message a leader
/// sends carries its term, and agents and frameworks ignore commands from lower terms than the
/// highest they have seen (E3).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Term(pub u64);

impl Term {
    /// The term before any election.
    pub const ZERO: Term = Term(0);

    /// The term after this one.
    ///
    /// # Panics
    /// At `u64::MAX`, which 2^64 elections cannot reach.
    #[must_use]
    pub fn next(self) -> Term {
        Term(self.0.checked_add(1).expect("terms never reach u64::MAX"))
    }
}

impl fmt::Display for Term {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", self.0)
    }
}

/// A master's identity in the static membership list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MasterId(pub u8);

impl fmt::Display for MasterId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", self.0)
    }
}

/// An id assigned by the leader of `term`: the `sequence`-th it assigned in that term.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AssignedId {
    /// The term of the leader that assigned it.
    pub term: Term,
    /// Its position among the ids that leader assigned, from 0.
    pub sequence: u64,
}

impl fmt::Display for AssignedId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}-{}", self.term.0, self.sequence)
    }
}

impl FromStr for AssignedId {
    type Err = AssignedIdError;

    /// Parses the `TERM-SEQUENCE` form that `Display` writes.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (term, sequence) = text.split_once('-').ok_or(AssignedIdError)?;
        Ok(AssignedId {
            term: Term(term.parse().map_err(|_| AssignedIdError)?),
            sequence: sequence.parse().map_err(|_| AssignedIdError)?,
        })
    }
}

/// A text is not of the form `TERM-SEQUENCE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AssignedIdError;

impl fmt::Display for AssignedIdError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("expected an id of the form TERM-SEQUENCE, such as 3-17")
    }
}

impl core::error::Error for AssignedIdError {}

/// The leader's source of [`AssignedId`]s for its term.
///
/// A new leader starts a new sequence in its own term, so it never needs to know which ids an
/// earlier leader assigned.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IdSequence {
    term: Term,
    next: u64,
}

impl IdSequence {
    /// The first id of `term` is `(term, 0)`.
    pub fn new(term: Term) -> Self {
        IdSequence { term, next: 0 }
    }

    /// The next unused id of this term.
    pub fn next_id(&mut self) -> AssignedId {
        let id = AssignedId {
            term: self.term,
            sequence: self.next,
        };
        self.next = self
            .next
            .checked_add(1)
            .expect("a leader assigns fewer than u64::MAX ids");
        id
    }
}

macro_rules! assigned_id {
    ($(#[$doc:meta])* $type:ident) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
        )]
        pub struct $type(pub AssignedId);

        impl fmt::Display for $type {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, formatter)
            }
        }

        impl FromStr for $type {
            type Err = AssignedIdError;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                text.parse().map($type)
            }
        }
    };
}

assigned_id!(
    /// An agent, as admitted to the registry by a leader.
    AgentId
);
assigned_id!(
    /// A framework, as registered by a leader.
    FrameworkId
);
assigned_id!(
    /// An offer of resources to a framework.
    OfferId
);

/// A status update's number on its agent: the agent counts its updates from 0 and persists
/// the counter with each update, so an id is never reused, even across restarts, and a
/// duplicate is recognised by its id alone.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct UpdateId(pub u64);

impl fmt::Display for UpdateId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", self.0)
    }
}

macro_rules! named_id {
    ($(#[$doc:meta])* $type:ident) => {
        $(#[$doc])*
        #[derive(
            Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
        )]
        pub struct $type(pub Name);

        impl $type {
            /// Parses the id, saying what is wrong with it if it is not a valid name.
            pub fn new(text: &str) -> Result<Self, NameError> {
                Name::new(text).map($type)
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }
        }

        impl fmt::Display for $type {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, formatter)
            }
        }

        impl FromStr for $type {
            type Err = NameError;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                $type::new(text)
            }
        }
    };
}

named_id!(
    /// A task, named by its framework; unique within the framework.
    TaskId
);
named_id!(
    /// An executor, named by its framework; unique within the framework on an agent.
    ExecutorId
);
named_id!(
    /// An operation inside an accept, named by its framework so that feedback can refer to it
    /// and a retried operation is recognised (invariant R5).
    OperationId
);
named_id!(
    /// A persistent volume, named by the framework that creates it.
    VolumeId
);
named_id!(
    /// A host's boot: changes when the machine reboots (Linux: `/proc/sys/kernel/random/boot_id`).
    /// An agent that finds a new boot id knows its executors died with the host.
    BootId
);
named_id!(
    /// A role: the unit that reservations, volumes, weights and fair shares belong to.
    Role
);
named_id!(
    /// The authenticated identity of a framework or operator, checked against access lists.
    Principal
);

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn ids_of_successive_leaders_never_collide() {
        let mut first = IdSequence::new(Term(1));
        let mut second = IdSequence::new(Term(2));
        let a = first.next_id();
        let b = first.next_id();
        let c = second.next_id();
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            c,
            AssignedId {
                term: Term(2),
                sequence: 0
            }
        );
    }

    #[test]
    fn assigned_ids_round_trip_through_text() {
        let id = AgentId(AssignedId {
            term: Term(3),
            sequence: 17,
        });
        assert_eq!(id.to_string(), "3-17");
        assert_eq!("3-17".parse::<AgentId>(), Ok(id));
        assert_eq!("3".parse::<AgentId>(), Err(AssignedIdError));
        assert_eq!("x-1".parse::<AgentId>(), Err(AssignedIdError));
    }

    #[test]
    fn named_ids_validate() {
        assert!(TaskId::new("web-1").is_ok());
        assert_eq!(Role::new(""), Err(NameError::Empty));
    }
}
