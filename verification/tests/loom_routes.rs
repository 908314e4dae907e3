//! loom: the node's routing table (`node/src/transport/routes.rs`, compiled here from the
//! node's own source) under every interleaving of a state-machine task sending and connection
//! tasks registering and unregistering. Each check also runs with a seeded bug of
//! `routes::Mutation` switched on, and must fail then: a check that cannot fail proves
//! nothing.
//!
//! Built only with `RUSTFLAGS="--cfg loom"`; `tests/loom.rs` runs it from the normal test
//! command:
//!
//! ```sh
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom \
//!     cargo test --release -p berth-verification --test loom_routes
//! ```
#![cfg(loom)]

use berth_protocol::Address;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, Ordering as LoomOrdering};
use loom::thread;

/// The primitives `routes.rs` takes from its parent module.
mod sync {
    pub(crate) use loom::sync::atomic::{AtomicU64, Ordering};
    pub(crate) use loom::sync::{Mutex, MutexGuard};
    pub(crate) use std::sync::PoisonError;
}

#[path = "../../node/src/transport/routes.rs"]
#[allow(dead_code)]
mod routes;

use routes::{Mutation, Queue, Refused, Routed, Routes};

/// A connection's queue: what it received, and whether its connection ended.
#[derive(Debug, Default)]
struct TestQueue {
    received: loom::sync::Mutex<Vec<u32>>,
    closed: AtomicBool,
}

impl Queue<u32> for Arc<TestQueue> {
    fn try_queue(&self, message: u32) -> Result<(), Refused<u32>> {
        if self.closed.load(LoomOrdering::SeqCst) {
            return Err(Refused::Closed(message));
        }
        self.received.lock().expect("not poisoned").push(message);
        Ok(())
    }
}

fn peer() -> Address {
    Address::new("10.0.0.2:5050").expect("valid")
}

/// The table under test: the real one, or one with a seeded bug.
fn table(mutation: Option<Mutation>) -> Routes<Arc<TestQueue>> {
    mutation.map_or_else(Routes::new, Routes::with_mutation)
}

/// Two connections of one peer register while the state-machine task sends: connection
/// numbers are distinct, and each message lands in exactly one registered queue or comes back
/// for a dialer, never lost or delivered twice.
#[test]
fn concurrent_registrations_get_distinct_numbers_and_every_message_one_place() {
    loom::model(|| registrations_and_sends(None));
}

/// The check above fails when connection numbers are not drawn atomically.
#[test]
#[should_panic(expected = "two connections share a number")]
fn a_non_atomic_connection_number_is_caught() {
    loom::model(|| registrations_and_sends(Some(Mutation::NumberingNotAtomic)));
}

fn registrations_and_sends(mutation: Option<Mutation>) {
    let routes = Arc::new(table(mutation));
    let queues = [
        Arc::new(TestQueue::default()),
        Arc::new(TestQueue::default()),
    ];
    let registering: Vec<_> = queues
        .iter()
        .map(|queue| {
            let routes = Arc::clone(&routes);
            let queue = Arc::clone(queue);
            thread::spawn(move || routes.register(&peer(), queue))
        })
        .collect();
    let mut returned = Vec::new();
    for message in [1, 2] {
        match routes.route(&peer(), message) {
            Routed::Queued(_) => {}
            Routed::Full => unreachable!("test queues are never full"),
            Routed::NoQueue(message) => returned.push(message),
        }
    }
    let numbers: Vec<u64> = registering
        .into_iter()
        .map(|thread| thread.join().expect("no panic"))
        .collect();
    assert_ne!(numbers[0], numbers[1], "two connections share a number");
    let mut seen: Vec<u32> = queues
        .iter()
        .flat_map(|queue| queue.received.lock().expect("not poisoned").clone())
        .chain(returned)
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, vec![1, 2], "a message was lost or delivered twice");
    let mut table = routes.connections(&peer());
    table.sort_unstable();
    let mut expected = numbers.clone();
    expected.sort_unstable();
    assert_eq!(table, expected);
}

/// A connection ends (its queue closes, then it unregisters) while a newer one registers and
/// the state-machine task sends: the message never lands in the ended connection's queue
/// after it closed, an unregister never removes the newer connection, and the table ends with
/// exactly the live connection.
#[test]
fn an_ending_connection_never_takes_a_message_or_a_newer_connection_with_it() {
    loom::model(|| ending_connection(None));
}

/// The check above fails when an ending connection unregisters its whole peer.
#[test]
#[should_panic(expected = "the live connection is not in the table")]
fn an_unregister_that_removes_a_newer_connection_is_caught() {
    loom::model(|| ending_connection(Some(Mutation::UnregisterRemovesThePeer)));
}

fn ending_connection(mutation: Option<Mutation>) {
    let routes = Arc::new(table(mutation));
    let old_queue = Arc::new(TestQueue::default());
    let old = routes.register(&peer(), Arc::clone(&old_queue));
    let ending = {
        let routes = Arc::clone(&routes);
        let queue = Arc::clone(&old_queue);
        thread::spawn(move || {
            queue.closed.store(true, LoomOrdering::SeqCst);
            routes.unregister(&peer(), old);
        })
    };
    let new_queue = Arc::new(TestQueue::default());
    let registering = {
        let routes = Arc::clone(&routes);
        let queue = Arc::clone(&new_queue);
        thread::spawn(move || routes.register(&peer(), queue))
    };
    let routed = routes.route(&peer(), 7);
    ending.join().expect("no panic");
    let new = registering.join().expect("no panic");
    let in_old = old_queue.received.lock().expect("not poisoned").clone();
    let in_new = new_queue.received.lock().expect("not poisoned").clone();
    match routed {
        Routed::Queued(connection) if connection == new => assert_eq!(in_new, vec![7]),
        // Queued on the old connection before it closed: lost with it, as on a real
        // connection that ends; the protocol retries.
        Routed::Queued(connection) => {
            assert_eq!(connection, old);
            assert_eq!(in_old, vec![7]);
        }
        Routed::NoQueue(message) => assert_eq!(message, 7),
        Routed::Full => unreachable!("test queues are never full"),
    }
    assert_eq!(
        routes.connections(&peer()),
        vec![new],
        "the live connection is not in the table"
    );
}
