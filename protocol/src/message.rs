//! Everything that crosses the wire: one [`Message`] enum for every role.
//!
//! Messages are `Ord` and `Hash` so the model checker can keep them in its network. Each
//! variant is a typed payload; bounded collections ([`BoundedVec`](crate::bounded::BoundedVec),
//! [`Name`](crate::bounded::Name)) keep a peer from making a decoder allocate without limit.
//! Messages travel in [frames](crate::frame) that carry the protocol version.

use serde::{Deserialize, Serialize};

use crate::ids::Term;

/// Every message of the protocol. It grows with the protocol's roles; each variant documents
/// who sends it to whom.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Message {
    /// A liveness probe. The leader pings each agent; a peer answers with [`Message::Pong`]
    /// carrying the same sequence number.
    Ping(Ping),
    /// The answer to a [`Message::Ping`].
    Pong(Pong),
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
