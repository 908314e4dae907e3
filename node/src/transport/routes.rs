//! The routing table shared by a node's connection tasks and its state-machine task: for
//! each peer address, the queues of its live connections (and dialers), oldest first.
//!
//! * `route` (the state-machine task's send) tries the newest queue first: after a peer
//!   restarts, its new connection is the live one. A closed queue is dropped from the table
//!   and the next one tried; a full queue drops the message (the protocol retries).
//! * `register` (a connection task, once its handshake is done, or a new dialer) adds a queue
//!   under a fresh connection number; `unregister` (the same task, when its connection ends)
//!   removes exactly that queue, never a newer connection's.
//! * `clear` (shutdown) forgets every queue.
//!
//! Each operation holds the table's lock from start to end, so the table never shows half an
//! operation, and connection numbers come from one atomic counter, so two connections never
//! share one. The loom test `verification/tests/loom_routes.rs` compiles this file against
//! loom's primitives and checks both under every interleaving; it also switches on each
//! seeded bug of [`Mutation`] and shows that the check fails.

use std::collections::BTreeMap;

use berth_protocol::Address;

use super::sync::{AtomicU64, Mutex, MutexGuard, Ordering, PoisonError};

/// Why a queue refused a message.
#[derive(Debug)]
pub(crate) enum Refused<M> {
    /// The queue is full; the message is dropped.
    Full,
    /// The connection ended; the message comes back to be routed elsewhere.
    Closed(M),
}

/// The sending end of one connection's queue.
pub(crate) trait Queue<M> {
    /// Queues `message` without waiting.
    fn try_queue(&self, message: M) -> Result<(), Refused<M>>;
}

/// Where `route` put a message.
#[derive(Debug)]
pub(crate) enum Routed<M> {
    /// On the queue of this connection.
    Queued(u64),
    /// Nowhere: the newest live queue was full.
    Full,
    /// Nowhere: no live queue; the message comes back, for a new dialer.
    NoQueue(M),
}

/// A seeded bug, switched on only by the loom tests (`cfg(loom)`), to show that they catch
/// it. A build without `--cfg loom` cannot switch any on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(loom), allow(dead_code))] // Constructed by the loom tests only.
pub(crate) enum Mutation {
    /// `register` numbers a connection with a load and a store instead of one atomic add.
    NumberingNotAtomic,
    /// `unregister` removes every queue of the peer, not just its own connection's.
    UnregisterRemovesThePeer,
}

/// See the [module documentation](self).
#[derive(Debug)]
pub(crate) struct Routes<Q> {
    peers: Mutex<BTreeMap<Address, Vec<(u64, Q)>>>,
    next_connection: AtomicU64,
    #[cfg(loom)]
    mutation: Option<Mutation>,
}

impl<Q> Routes<Q> {
    /// An empty table.
    pub(crate) fn new() -> Routes<Q> {
        Routes {
            peers: Mutex::new(BTreeMap::new()),
            next_connection: AtomicU64::new(0),
            #[cfg(loom)]
            mutation: None,
        }
    }

    /// An empty table with the seeded bug `mutation` switched on.
    #[cfg(loom)]
    pub(crate) fn with_mutation(mutation: Mutation) -> Routes<Q> {
        Routes {
            mutation: Some(mutation),
            ..Routes::new()
        }
    }

    /// Whether the seeded bug `mutation` is switched on (never, outside the loom tests).
    fn mutated(&self, mutation: Mutation) -> bool {
        #[cfg(loom)]
        return self.mutation == Some(mutation);
        #[cfg(not(loom))]
        {
            let _ = mutation;
            false
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<Address, Vec<(u64, Q)>>> {
        // The table stays consistent even if a holder panicked: each change is one call.
        self.peers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts `message` on the newest live queue of `to`; see the [module documentation](self).
    pub(crate) fn route<M>(&self, to: &Address, message: M) -> Routed<M>
    where
        Q: Queue<M>,
    {
        let mut peers = self.lock();
        let mut message = message;
        if let Some(queues) = peers.get_mut(to) {
            while let Some((connection, queue)) = queues.last() {
                match queue.try_queue(message) {
                    Ok(()) => return Routed::Queued(*connection),
                    Err(Refused::Full) => return Routed::Full,
                    Err(Refused::Closed(returned)) => {
                        message = returned;
                        queues.pop();
                    }
                }
            }
            peers.remove(to);
        }
        Routed::NoQueue(message)
    }

    /// Adds `queue` for `peer` as its newest; returns its connection number.
    pub(crate) fn register(&self, peer: &Address, queue: Q) -> u64 {
        let connection = if self.mutated(Mutation::NumberingNotAtomic) {
            let connection = self.next_connection.load(Ordering::Relaxed);
            self.next_connection
                .store(connection + 1, Ordering::Relaxed);
            connection
        } else {
            self.next_connection.fetch_add(1, Ordering::Relaxed)
        };
        self.lock()
            .entry(peer.clone())
            .or_default()
            .push((connection, queue));
        connection
    }

    /// Removes the queue of `connection` to `peer`, if it is still there.
    pub(crate) fn unregister(&self, peer: &Address, connection: u64) {
        let mut peers = self.lock();
        if let Some(queues) = peers.get_mut(peer) {
            queues.retain(|(number, _)| *number != connection);
            if queues.is_empty() || self.mutated(Mutation::UnregisterRemovesThePeer) {
                peers.remove(peer);
            }
        }
    }

    /// Forgets every queue: their connections see them closed.
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    /// The connection numbers of `peer`'s queues, oldest first.
    pub(crate) fn connections(&self, peer: &Address) -> Vec<u64> {
        self.lock()
            .get(peer)
            .map(|queues| queues.iter().map(|(number, _)| *number).collect())
            .unwrap_or_default()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::Mutex as StdMutex;

    use super::*;

    /// A queue of one slot that can be closed.
    #[derive(Debug, Default)]
    struct Slot {
        message: StdMutex<Option<u32>>,
        closed: bool,
    }

    impl Queue<u32> for Slot {
        fn try_queue(&self, message: u32) -> Result<(), Refused<u32>> {
            if self.closed {
                return Err(Refused::Closed(message));
            }
            let mut slot = self.message.lock().expect("not poisoned");
            if slot.is_some() {
                return Err(Refused::Full);
            }
            *slot = Some(message);
            Ok(())
        }
    }

    fn peer() -> Address {
        Address::new("127.0.0.1:5050").expect("valid")
    }

    #[test]
    fn the_newest_live_queue_gets_the_message_and_closed_ones_are_dropped() {
        let routes = Routes::new();
        let old = routes.register(&peer(), Slot::default());
        let closed = routes.register(
            &peer(),
            Slot {
                closed: true,
                ..Slot::default()
            },
        );
        assert!(matches!(routes.route(&peer(), 7), Routed::Queued(number) if number == old));
        assert_eq!(
            routes.connections(&peer()),
            vec![old],
            "{closed} was dropped"
        );
        assert!(matches!(routes.route(&peer(), 8), Routed::Full));
    }

    #[test]
    fn unregister_removes_only_its_own_connection() {
        let routes = Routes::new();
        let first = routes.register(&peer(), Slot::default());
        let second = routes.register(&peer(), Slot::default());
        routes.unregister(&peer(), first);
        routes.unregister(&peer(), first);
        assert_eq!(routes.connections(&peer()), vec![second]);
        routes.unregister(&peer(), second);
        assert!(matches!(routes.route(&peer(), 1), Routed::NoQueue(1)));
    }
}
