//! Berth's protocol: the pure state machines of a cluster resource manager.
//!
//! This crate holds every protocol decision Berth makes — elections, the replicated registry,
//! agent registration and recovery, status updates, offers, reservations and volumes — as
//! deterministic state machines. It touches no network, reads no clock, draws no random
//! numbers and starts no threads: `#![no_std]` with `alloc`, no `unsafe`. The `berth` binary,
//! the stateright model, the seeded simulator and third-party runtimes all drive the *same*
//! code through the contract below.
//!
//! # The calling contract
//!
//! Every role (the [`master`], the [`agent`] with its executors as events and actions, the
//! [`scheduler`]) implements [`Machine`]. A driver owns one machine and feeds it inputs one
//! at a time; each input appends commands to an [`Outbox`], which the driver executes front
//! to back before the next input. The `testing` module (feature `testing`) drives them all in memory.
//!
//! ```text
//!                        inputs                                  outbox (in order)
//!                 +----------------------+               +---------------------------+
//!  boot --------->| Machine::boot        |               | Send { to, message }      |
//!  message ------>| handle_message       |--- writes --->| SetTimer { timer, range } |
//!  timer fired -->| handle_timer         |               | CancelTimer(timer)        |
//!  local event -->| handle_event         |               | Persist(record)  <barrier>|
//!  batch ends --->| end_batch            |               | Act(action)               |
//!                 +----------------------+               |                           |
//!                                                        +-------------+-------------+
//!                                                                      |
//!               driver: for each command, in order                     v
//!       Send -> hand to the transport        SetTimer -> arm, with jitter in the range
//!       Persist -> append the record; WAIT until it is durable, then go on
//!       Act -> role-specific effect (start an executor, create a volume directory)
//!       Note -> write to the operator's log (no effect on the protocol)
//! ```
//!
//! The rules a driver follows:
//!
//! 1. **Boot.** Fold every record the machine persisted, in order, with [`Machine::apply`]
//!    (starting from `Durable::default()`), and pass the result to [`Machine::boot`]. A machine
//!    that never persisted anything boots from the default.
//! 2. **One input at a time.** Call one `handle_*` method, then execute its whole outbox,
//!    then take the next input. Nothing else touches the machine.
//! 3. **Persist is a barrier.** No command after a [`Command::Persist`] is executed before
//!    the record is on stable storage. A machine sends a message that promises something (a
//!    vote, an acknowledgement, a registration) only after the record it promises. Consecutive
//!    persists may share one sync. If the sync fails, stop the process: never retry.
//! 4. **Timers** carry a name and a [`DurationRange`]; the driver picks any delay in it.
//!    Setting a timer that is already set replaces it. Timers do not survive a crash: a
//!    machine re-arms what it needs in `boot`.
//! 5. **The network is unreliable**: the driver may lose, duplicate, delay or reorder any
//!    message, and the protocol stays safe. Safety rests on terms and persisted state, never
//!    on a timer firing in time.
//!    A driver that sees a connection to a peer end may say so where a role takes it as an
//!    event (a scheduler's [`ConnectionLost`](scheduler::SchedulerEvent::ConnectionLost),
//!    the master's [`ConnectionLost`](master::MasterEvent::ConnectionLost)): it only makes a
//!    failover, or noticing a stopped scheduler, faster, and a driver that cannot tell loses
//!    only time.
//! 6. **End each batch.** After one or more inputs (say, every message that was already
//!    waiting), and before waiting for the next one, call [`Machine::end_batch`] and execute
//!    its outbox: the machine does there what it deferred to once per batch (the master
//!    allocates offers). Calling it after every input is correct too, only slower under load;
//!    holding a batch open for a bounded time to gather more input is correct as well (a
//!    driver whose `end_batch` is slow should, so that deferred work cannot take all of its
//!    time).
//!
//! A crash can happen between any two inputs; because of rule 3 and a lossy network, "persisted
//! but not yet sent" needs no special handling.
//!
//! # Example: driving a toy machine
//!
//! A pinger that numbers its probes and never reuses a number, even across crashes: it
//! persists the number *before* it sends the probe.
//!
//! ```
//! use core::convert::Infallible;
//! use core::time::Duration;
//! use berth_protocol::{Address, Command, DurationRange, Machine, Outbox};
//! use berth_protocol::ids::Term;
//! use berth_protocol::message::{Message, Ping};
//!
//! struct Pinger { peer: Address, next: u64 }
//!
//! impl Machine for Pinger {
//!     type Config = Address;
//!     type Timer = ();
//!     type Record = u64;      // "probe number n was used"
//!     type Durable = u64;     // the next unused probe number
//!     type Event = Infallible;
//!     type Action = Infallible;
//!     type BootError = Infallible;
//!
//!     fn boot(peer: &Address, next: &u64, out: &mut Outbox<Self>) -> Result<Self, Infallible> {
//!         out.set_timer((), DurationRange::fixed(Duration::from_secs(1)));
//!         Ok(Pinger { peer: peer.clone(), next: *next })
//!     }
//!     fn apply(next: &mut u64, used: &u64) { *next = used + 1; }
//!     fn handle_message(&mut self, _: &Address, _: Message, _: &mut Outbox<Self>) {}
//!     fn handle_timer(&mut self, (): (), out: &mut Outbox<Self>) {
//!         let sequence = self.next;
//!         self.next += 1;
//!         out.persist(sequence); // barrier: the number is durable before it is used
//!         out.send(self.peer.clone(), Message::Ping(Ping { term: Term(1), sequence }));
//!         out.set_timer((), DurationRange::fixed(Duration::from_secs(1)));
//!     }
//! }
//!
//! // A driver: boot, fire the timer twice, "crash", recover from the persisted records.
//! let peer = Address::new("10.0.0.2:5050").unwrap();
//! let mut log = Vec::new(); // the driver's durable storage
//! let mut out = Outbox::new();
//! let mut pinger = Pinger::boot(&peer, &0, &mut out).unwrap();
//! let mut sent = Vec::new();
//! for _ in 0..2 {
//!     out.drain().for_each(drop);
//!     pinger.handle_timer((), &mut out);
//!     for command in out.drain() {
//!         match command {
//!             Command::Persist(record) => log.push(record), // and fsync, before going on
//!             Command::Send { message: Message::Ping(ping), .. } => sent.push(ping.sequence),
//!             _ => {}
//!         }
//!     }
//! }
//! let mut durable = 0;
//! log.iter().for_each(|record| Pinger::apply(&mut durable, record));
//! let recovered = Pinger::boot(&peer, &durable, &mut out).unwrap();
//! assert_eq!(sent, [0, 1]);
//! assert_eq!(recovered.next, 2); // no probe number is ever reused
//! ```
//!
//! # Modules
//!
//! * [`ids`]: terms and identifiers; [`bounded`]: names and bounded collections.
//! * [`allocator`]: hierarchical DRF allocation of offers, as a pure function.
//! * [`resources`]: fixed-point resources, reservations, volumes and the resource-string parser.
//! * [`task`]: task states and reasons.
//! * [`message`]: the one wire enum; [`frame`]: its versioned, length-prefixed framing.
//! * [`agent`]: the agent: registration, fencing, reliable status updates and recovery.
//! * [`master`]: the master: election and the replicated [`registry`] (Raft with pre-vote and
//!   check-quorum).
//! * [`note`]: what machines tell the operator's log.
//!
//! # Invariants
//!
//! DESIGN.md names the invariants (E1–E3, A1–A3, R1–R5, F1). The model checker (`berth-model`)
//! checks each of them against this code; the code asserts the local ones after each step.

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod agent;
pub mod allocator;
pub mod bounded;
pub mod frame;
pub mod ids;
mod machine;
pub mod master;
pub mod message;
pub mod note;
pub mod operation;
pub mod registry;
pub mod resources;
pub mod scheduler;
pub mod task;
#[cfg(test)]
mod test_support;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use machine::{
    ADDRESS_LENGTH_MAX, Address, AddressError, Command, DurationRange, Machine, Outbox,
};
