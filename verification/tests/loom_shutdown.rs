//! loom: the network's shutdown (`node/src/transport/lifecycle.rs`, with the routing table of
//! `node/src/transport/routes.rs`, both compiled here from the node's own source) under every
//! interleaving of a shutdown with a state-machine task sending and with a reader of
//! connection ends being set.
//!
//! The stopping flag here uses relaxed atomics, weaker than the node's `watch` channel: the
//! promises must come from the locks, not from the flag. Each check also runs with a seeded
//! bug of `lifecycle::Mutation` switched on, and must fail then.
//!
//! Built only with `RUSTFLAGS="--cfg loom"`; `tests/loom.rs` runs it from the normal test
//! command:
//!
//! ```sh
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom \
//!     cargo test --release -p berth-verification --test loom_shutdown
//! ```
#![cfg(loom)]

use berth_protocol::Address;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering as LoomOrdering};
use loom::sync::{Arc, Mutex as LoomMutex};
use loom::thread;

/// The primitives `routes.rs` and `lifecycle.rs` take from their parent module.
mod sync {
    pub(crate) use loom::sync::atomic::{AtomicU64, Ordering};
    pub(crate) use loom::sync::{Mutex, MutexGuard};
    pub(crate) use std::sync::PoisonError;
}

#[path = "../../node/src/transport/routes.rs"]
#[allow(dead_code)]
mod routes;

#[path = "../../node/src/transport/lifecycle.rs"]
#[allow(dead_code)]
mod lifecycle;

use lifecycle::{Flag, Lifecycle, Mutation};
use routes::{Queue, Refused, Routed, Routes};

/// The stopping flag, with the weakest ordering there is.
#[derive(Debug, Default)]
struct RelaxedFlag(AtomicBool);

impl Flag for RelaxedFlag {
    fn raise(&self) {
        self.0.store(true, LoomOrdering::Relaxed);
    }

    fn is_raised(&self) -> bool {
        self.0.load(LoomOrdering::Relaxed)
    }
}

/// A dialer's queue: the messages it holds.
#[derive(Debug, Default)]
struct TestQueue(LoomMutex<Vec<u32>>);

impl Queue<u32> for Arc<TestQueue> {
    fn try_queue(&self, message: u32) -> Result<(), Refused<u32>> {
        self.0.lock().expect("not poisoned").push(message);
        Ok(())
    }
}

/// What a send told its caller, as `Network::send` does.
#[derive(Debug, PartialEq, Eq)]
enum Sent {
    Queued,
    ShutDown,
}

/// The network's shared state, as `transport::Shared` holds it.
struct Network {
    stopping: RelaxedFlag,
    routes: Routes<Arc<TestQueue>>,
    lifecycle: Lifecycle<Vec<thread::JoinHandle<()>>, u32>,
    /// Tasks started so far, and tasks shutdown waited for.
    started: AtomicUsize,
    joined: AtomicUsize,
}

impl Network {
    fn new(mutation: Option<Mutation>) -> Network {
        Network {
            stopping: RelaxedFlag::default(),
            routes: Routes::new(),
            lifecycle: mutation.map_or_else(Lifecycle::new, Lifecycle::with_mutation),
            started: AtomicUsize::new(0),
            joined: AtomicUsize::new(0),
        }
    }

    /// `Network::send` to a peer with no connection: refused once stopping, else a new
    /// dialer's queue takes the message.
    fn send(&self, to: &Address, message: u32) -> Sent {
        if self.stopping.is_raised() {
            return Sent::ShutDown;
        }
        let message = match self.routes.route(to, message) {
            Routed::Queued(_) => return Sent::Queued,
            Routed::Full => unreachable!("test queues are never full"),
            Routed::NoQueue(message) => message,
        };
        let queue = Arc::new(TestQueue::default());
        let _ = queue.try_queue(message);
        let dialed = self.lifecycle.dial(
            &self.stopping,
            &self.routes,
            to,
            Arc::clone(&queue),
            |tasks, _connection| {
                self.started.fetch_add(1, LoomOrdering::Relaxed);
                tasks.push(thread::spawn(move || drop(queue)));
            },
        );
        match dialed {
            Some(_) => Sent::Queued,
            None => Sent::ShutDown,
        }
    }

    /// `Network::shutdown`: stop, then wait for every task.
    fn shutdown(&self) {
        for task in self.lifecycle.stop(&self.stopping, &self.routes) {
            task.join().expect("no panic");
            self.joined.fetch_add(1, LoomOrdering::Relaxed);
        }
    }
}

fn peer() -> Address {
    Address::new("10.0.0.2:5050").expect("valid")
}

/// A state-machine task sends to a peer with no connection while the network shuts down:
/// the dialer it starts is one of the tasks shutdown waits for (none escapes), a send
/// reported queued has a dialer that ran, a send refused left no queue behind, and nothing
/// deadlocks.
#[test]
fn no_dialer_escapes_a_shutdown_and_no_send_is_queued_for_nothing() {
    loom::model(|| send_during_shutdown(None));
}

/// The check above fails when `spawn` looks at the flag outside the task set's lock.
#[test]
#[should_panic(expected = "a task escaped the shutdown")]
fn a_flag_checked_outside_the_task_lock_is_caught() {
    loom::model(|| send_during_shutdown(Some(Mutation::SpawnChecksOutsideLock)));
}

/// The check above fails when shutdown takes the tasks before raising the flag.
#[test]
#[should_panic(expected = "a task escaped the shutdown")]
fn tasks_taken_before_the_flag_is_raised_are_caught() {
    loom::model(|| send_during_shutdown(Some(Mutation::StopTakesTasksFirst)));
}

/// The check above fails when a refused dialer is reported queued (as the node did before).
#[test]
#[should_panic(expected = "queued on a dialer that never ran")]
fn a_send_queued_on_a_refused_dialer_is_caught() {
    loom::model(|| send_during_shutdown(Some(Mutation::DialIgnoresRefusal)));
}

fn send_during_shutdown(mutation: Option<Mutation>) {
    let network = Arc::new(Network::new(mutation));
    let sending = {
        let network = Arc::clone(&network);
        thread::spawn(move || network.send(&peer(), 7))
    };
    let stopping = {
        let network = Arc::clone(&network);
        thread::spawn(move || network.shutdown())
    };
    let sent = sending.join().expect("no panic");
    stopping.join().expect("no panic");
    let started = network.started.load(LoomOrdering::Relaxed);
    let joined = network.joined.load(LoomOrdering::Relaxed);
    assert_eq!(started, joined, "a task escaped the shutdown");
    if sent == Sent::Queued {
        assert_eq!(
            started, 1,
            "a message was queued on a dialer that never ran"
        );
    }
    assert!(
        network.routes.connections(&peer()).is_empty(),
        "a queue outlived the shutdown"
    );
}

/// A reader of connection ends is set, and a connection end reported, while the network
/// shuts down: after shutdown no reader is left (its channel closes, so it never waits for
/// ever), and nothing deadlocks.
#[test]
fn every_reader_of_connection_ends_is_dropped_at_shutdown() {
    loom::model(|| ends_during_shutdown(None));
}

/// The check above fails when the flag is looked at outside the reader's lock (as the node
/// did before).
#[test]
#[should_panic(expected = "a reader of connection ends outlived the shutdown")]
fn a_reader_stored_after_shutdown_is_caught() {
    loom::model(|| ends_during_shutdown(Some(Mutation::EndsCheckedOutsideLock)));
}

fn ends_during_shutdown(mutation: Option<Mutation>) {
    let network = Arc::new(Network::new(mutation));
    let asking = {
        let network = Arc::clone(&network);
        thread::spawn(move || network.lifecycle.set_connection_ends(&network.stopping, 1))
    };
    let reporting = {
        let network = Arc::clone(&network);
        thread::spawn(move || {
            let mut reported = None;
            network
                .lifecycle
                .report_connection_end(|reader| reported = Some(*reader));
            reported
        })
    };
    network.shutdown();
    let stored = asking.join().expect("no panic");
    let reported = reporting.join().expect("no panic");
    assert!(
        !network.lifecycle.has_connection_ends(),
        "a reader of connection ends outlived the shutdown"
    );
    if reported.is_some() {
        assert!(stored, "a report reached a reader that was never stored");
    }
}
