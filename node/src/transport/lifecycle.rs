//! What a network's tasks and its shutdown share besides the routing table: the set of
//! running tasks and the reader of connection ends, both guarded by the network's stopping
//! flag.
//!
//! * `spawn` (any task, or a sender starting a dialer) adds a task to the set only while the
//!   flag is down, and looks at the flag *under the set's lock*.
//! * `stop` (shutdown) raises the flag first, then takes the reader of connection ends and
//!   clears the routing table, and takes the task set last, each under its lock. So a
//!   `spawn` that saw the flag down had put its task in the set before `stop` took it:
//!   shutdown joins every task the network ever started, and none escapes it.
//! * `set_connection_ends` likewise stores a reader only while the flag is down, looking at
//!   it under the reader's lock, so the reader `stop` takes is the last one: every channel
//!   of connection ends closes at shutdown, and its reader never waits for ever.
//! * `dial` registers a dialer's queue in the routing table and starts its task; when the
//!   network is stopping it takes the queue back out and says so. A message is thus never
//!   reported queued on a dialer that will never run (the sender is told the network is
//!   shut down, as a send after the shutdown is), and no such queue is left in the table.
//!
//! The flag itself is a [`Flag`]: a `tokio::sync::watch` channel in the node, which also
//! wakes the tasks waiting on it. Correctness does not depend on the flag's own memory
//! ordering: every check that matters happens under a lock that `stop` takes after raising
//! it. The loom test `verification/tests/loom_shutdown.rs` compiles this file and
//! `routes.rs` against loom's primitives, with a flag of the weakest (relaxed) ordering, and
//! checks the promises above under every interleaving; it also switches on each seeded bug
//! of [`Mutation`] and shows that the check fails.

use berth_protocol::Address;

use super::routes::Routes;
use super::sync::{Mutex, MutexGuard, PoisonError};

/// The network's stopping flag: raised once, never lowered.
pub(crate) trait Flag {
    /// Raises the flag.
    fn raise(&self);
    /// Whether the flag is raised.
    fn is_raised(&self) -> bool;
}

/// A seeded bug, switched on only by the loom tests (`cfg(loom)`), to show that they catch
/// it. A build without `--cfg loom` cannot switch any on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(loom), allow(dead_code))] // Constructed by the loom tests only.
pub(crate) enum Mutation {
    /// `spawn` looks at the flag before taking the set's lock.
    SpawnChecksOutsideLock,
    /// `stop` takes the task set before it raises the flag.
    StopTakesTasksFirst,
    /// `set_connection_ends` looks at the flag before taking the reader's lock.
    EndsCheckedOutsideLock,
    /// `dial` leaves a refused dialer's queue in the table and reports it started.
    DialIgnoresRefusal,
}

/// See the [module documentation](self). `T` is the task set (a `JoinSet` in the node), `E`
/// the sending end of the connection ends' channel.
#[derive(Debug)]
pub(crate) struct Lifecycle<T, E> {
    tasks: Mutex<T>,
    connection_ends: Mutex<Option<E>>,
    #[cfg(loom)]
    mutation: Option<Mutation>,
}

impl<T: Default, E> Lifecycle<T, E> {
    /// No tasks, no reader of connection ends.
    pub(crate) fn new() -> Lifecycle<T, E> {
        Lifecycle {
            tasks: Mutex::new(T::default()),
            connection_ends: Mutex::new(None),
            #[cfg(loom)]
            mutation: None,
        }
    }

    /// The same, with the seeded bug `mutation` switched on.
    #[cfg(loom)]
    pub(crate) fn with_mutation(mutation: Mutation) -> Lifecycle<T, E> {
        Lifecycle {
            mutation: Some(mutation),
            ..Lifecycle::new()
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

    /// Calls `start` on the task set, to add a task, unless `stopping` is raised; returns
    /// whether it did.
    pub(crate) fn spawn(&self, stopping: &impl Flag, start: impl FnOnce(&mut T)) -> bool {
        let early = self
            .mutated(Mutation::SpawnChecksOutsideLock)
            .then(|| stopping.is_raised());
        let mut tasks = lock(&self.tasks);
        if early.unwrap_or_else(|| stopping.is_raised()) {
            return false;
        }
        start(&mut tasks);
        true
    }

    /// Registers `queue` as a new dialer's queue to `to` and starts its task with `start`
    /// (given the connection number), unless `stopping` is raised: then the queue is taken
    /// out of `routes` again (its messages are dropped with it) and `None` returned.
    pub(crate) fn dial<Q>(
        &self,
        stopping: &impl Flag,
        routes: &Routes<Q>,
        to: &Address,
        queue: Q,
        start: impl FnOnce(&mut T, u64),
    ) -> Option<u64> {
        let connection = routes.register(to, queue);
        if self.spawn(stopping, |tasks| start(tasks, connection)) {
            return Some(connection);
        }
        if self.mutated(Mutation::DialIgnoresRefusal) {
            return Some(connection);
        }
        routes.unregister(to, connection);
        None
    }

    /// Stores `ends` as the reader of connection ends, replacing the earlier one, unless
    /// `stopping` is raised; returns whether it did.
    pub(crate) fn set_connection_ends(&self, stopping: &impl Flag, ends: E) -> bool {
        let early = self
            .mutated(Mutation::EndsCheckedOutsideLock)
            .then(|| stopping.is_raised());
        let mut slot = lock(&self.connection_ends);
        if early.unwrap_or_else(|| stopping.is_raised()) {
            return false;
        }
        *slot = Some(ends);
        true
    }

    /// Calls `report` with the reader of connection ends, if there is one.
    pub(crate) fn report_connection_end(&self, report: impl FnOnce(&E)) {
        if let Some(ends) = &*lock(&self.connection_ends) {
            report(ends);
        }
    }

    /// Whether a reader of connection ends is stored.
    #[cfg_attr(not(test), allow(dead_code))] // Used by the tests and the loom test.
    pub(crate) fn has_connection_ends(&self) -> bool {
        lock(&self.connection_ends).is_some()
    }

    /// Raises `stopping`, drops the reader of connection ends and every queue of `routes`,
    /// and returns every task started so far, for the caller to wait for. Later spawns are
    /// refused.
    pub(crate) fn stop<Q>(&self, stopping: &impl Flag, routes: &Routes<Q>) -> T {
        let early = self
            .mutated(Mutation::StopTakesTasksFirst)
            .then(|| std::mem::take(&mut *lock(&self.tasks)));
        stopping.raise();
        lock(&self.connection_ends).take();
        routes.clear();
        early.unwrap_or_else(|| std::mem::take(&mut *lock(&self.tasks)))
    }
}

/// Locks `mutex`: its value stays consistent even if a holder panicked, since each change is
/// one call.
fn lock<V>(mutex: &Mutex<V>) -> MutexGuard<'_, V> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::transport::routes::Refused;

    impl Flag for AtomicBool {
        fn raise(&self) {
            self.store(true, Ordering::Relaxed);
        }

        fn is_raised(&self) -> bool {
            self.load(Ordering::Relaxed)
        }
    }

    /// A queue that takes everything.
    struct Sink;

    impl crate::transport::routes::Queue<u32> for Sink {
        fn try_queue(&self, _message: u32) -> Result<(), Refused<u32>> {
            Ok(())
        }
    }

    fn peer() -> Address {
        Address::new("127.0.0.1:5050").expect("valid")
    }

    #[test]
    fn stop_returns_every_task_and_refuses_later_ones() {
        let stopping = AtomicBool::new(false);
        let routes = Routes::<Sink>::new();
        let lifecycle = Lifecycle::<Vec<u32>, ()>::new();
        assert!(lifecycle.spawn(&stopping, |tasks| tasks.push(1)));
        assert_eq!(
            lifecycle.dial(&stopping, &routes, &peer(), Sink, |tasks, _| tasks.push(2)),
            Some(0)
        );
        assert_eq!(lifecycle.stop(&stopping, &routes), vec![1, 2]);
        assert!(stopping.is_raised());
        assert!(routes.connections(&peer()).is_empty());
        assert!(!lifecycle.spawn(&stopping, |tasks| tasks.push(3)));
        assert_eq!(
            lifecycle.dial(&stopping, &routes, &peer(), Sink, |tasks, _| tasks.push(4)),
            None
        );
        assert!(
            routes.connections(&peer()).is_empty(),
            "a refused dialer's queue is taken out again"
        );
        assert_eq!(lifecycle.stop(&stopping, &routes), Vec::<u32>::new());
    }

    #[test]
    fn the_reader_of_connection_ends_is_dropped_at_stop_and_refused_after() {
        let stopping = AtomicBool::new(false);
        let routes = Routes::<Sink>::new();
        let lifecycle = Lifecycle::<Vec<u32>, u32>::new();
        assert!(lifecycle.set_connection_ends(&stopping, 7));
        let mut reported = Vec::new();
        lifecycle.report_connection_end(|ends| reported.push(*ends));
        assert_eq!(reported, vec![7]);
        lifecycle.stop(&stopping, &routes);
        assert!(!lifecycle.has_connection_ends());
        assert!(!lifecycle.set_connection_ends(&stopping, 8));
        assert!(!lifecycle.has_connection_ends());
        lifecycle.report_connection_end(|ends| reported.push(*ends));
        assert_eq!(reported, vec![7]);
    }
}
