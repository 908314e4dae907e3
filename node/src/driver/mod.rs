//! The driver: one tokio task that owns a protocol [`Machine`] and turns its outbox into I/O.
//!
//! DESIGN.md, "Node runtime": *one tokio task owns each state machine and executes its
//! outbox; connections, timers and disk completions feed it through channels.* [`Driver`] is
//! that task for any role. Nothing else holds the machine, so nothing else can touch protocol
//! state; the rest of the process sees it only through the status [`watch`] channel.
//!
//! ```text
//!   network inbox ---(from, message)--+
//!   local events  ---(event)----------+--> Driver::run --> machine.handle_*() --> outbox
//!   timers (one sleep_until) ---------+         ^                                  |
//!   shutdown -------------------------+         |      execute front to back       v
//!                                               |   Send      -> MessageSink::send (never waits)
//!                                               |   SetTimer  -> Timers::set (jitter drawn here)
//!                                               |   Persist.. -> append + fsync, WAIT  <barrier>
//!                                               |   Act       -> the caller's closure
//!                                               |   Note      -> tracing event
//!                                               +-- status watch <- after every step
//! ```
//!
//! # How the driver honours the calling contract
//!
//! The rules are those of the [`berth_protocol`] crate documentation.
//!
//! 1. **Boot.** [`Driver::open`] opens the machine's [`Store`], which folds every record on
//!    disk with [`Machine::apply`] starting from `Durable::default()`, and passes the fold to
//!    [`Machine::boot`]. The boot's outbox is the first thing [`Driver::run`] executes.
//! 2. **One input at a time.** [`Driver::run`] takes one input (a message, a fired timer, a
//!    local event), calls the matching `handle_*` method, executes the whole outbox, publishes
//!    the status, and only then takes the next input. After a local event's step it also
//!    counts the event as processed ([`Driver::events_processed`]), so the sender of events
//!    can tell when their effects are durable.
//! 3. **Persist is a barrier, committed in groups.** A [`Command::Persist`] is folded into
//!    the driver's durable copy at once, but reaches the disk with the batch (rule 6): the
//!    records of every step of a batch are appended to the store and made durable with
//!    *one* fsync, on a blocking thread (`spawn_blocking`), which the driver awaits. Every
//!    `Send`, `Act` and `Note` queued after a `Persist` is held until that sync, and then
//!    carried out in order: a vote is never sent before it is durable, and nothing a later
//!    step did escapes before the records it followed. (The machine goes on taking inputs
//!    meanwhile; none of what it does is visible until the sync, so a crash before it is a
//!    crash before those inputs.) Under load, one fsync covers up to [`BATCH_INPUTS_MAX`]
//!    steps instead of one each: fsync latency, not CPU, bounded how fast a lone master
//!    admitted agents (about 600 a second on this machine's disk). The status is published,
//!    and a local event counted as processed, only once nothing before it waits for a sync.
//!    A storage error of any kind ends [`Driver::run`] with [`DriverError::Storage`], with
//!    nothing held released; the caller stops the process. A failed fsync is never retried
//!    (see [`storage`](crate::storage)).
//! 4. **Timers** live in [`Timers`]: one deadline per timer name and a single `sleep_until`
//!    on the earliest, no task per setting. `SetTimer` draws a delay uniformly from the
//!    machine's range and replaces the earlier setting; `CancelTimer` removes it. Both happen
//!    before the driver sleeps again, so a replaced or cancelled setting never fires.
//! 5. **The network is unreliable**, and the driver does not hide it: [`MessageSink::send`]
//!    never waits, and a message the transport cannot queue is dropped.
//! 6. **End each batch, paced.** After a step, if no message or event is waiting in its
//!    channels (or [`BATCH_INPUTS_MAX`] inputs were handled since the last batch ended), the
//!    driver calls [`Machine::end_batch`] and executes its outbox like a step's. Under load
//!    the master thus allocates offers once per burst of messages instead of after each of
//!    them; when idle, every input is a batch of one. But a batch is not ended sooner after
//!    the last one than that one's `end_batch` took (at most [`END_BATCH_PACING_MAX`]):
//!    until then the driver syncs what the batch's steps did and releases it, as at the end
//!    of a batch, and keeps the batch open for more input, ending it when the time is up
//!    whether or not input arrived. Deferred work thus takes at most about half of the
//!    driver's time. Without pacing, a master of 10,000 agents whose messages came in a
//!    trickle ran a full allocation cycle (tens of milliseconds) after every one of them,
//!    fell behind, and got its messages in ever smaller batches. A cheap `end_batch` (a
//!    small cluster, nothing to allocate) is not delayed noticeably.
//!
//! Shutdown is looked at only between steps, so a clean stop never leaves an outbox half
//! executed; only a storage failure does, and then the process exits and recovers from disk,
//! which rule 3 makes safe.
//!
//! The driver shares no memory with other threads, so loom has nothing to check here
//! (RELIABILITY.md, "loom"): the machine, the timers and the durable copy are its own; its
//! inputs, its status and its count of processed events cross tasks only through tokio's
//! `mpsc` and `watch` channels; and a storage operation *moves* the store to a blocking
//! thread and back, so exactly one thread holds it at any time.
//!
//! # Compaction
//!
//! The driver keeps its own copy of the durable state, folding each record it persists with
//! [`Machine::apply`] (the machine's own copy is not visible to it). Once more than
//! [`DriverConfig::compaction_records`] records were appended since the last snapshot, it
//! [`compact`](Store::compact)s the store into a snapshot of that copy, on the same blocking
//! thread, right after the sync. A store opened with records in its log is compacted when
//! [`Driver::run`] starts, so the count is exact.

#![warn(missing_docs)]

mod notes;
mod timers;

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_protocol::message::Message;
use berth_protocol::{Address, Command, Machine, Outbox};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch};

use tokio::time::Instant;

pub use notes::{NoteLog, WARNING_REPEAT_INTERVAL, WARNINGS_REMEMBERED_MAX};
pub use timers::{Timers, draw_delay};

use crate::storage::{StorageError, Store};
use crate::transport::Network;

/// The most inputs the driver handles before it ends a batch even though more are waiting,
/// so that deferred work (the master's allocation) waits for at most this many steps.
pub const BATCH_INPUTS_MAX: usize = 256;
/// The longest a batch is held open after the previous one ended (rule 6), however long
/// that one's deferred work took.
pub const END_BATCH_PACING_MAX: Duration = Duration::from_millis(500);
/// A timer that fires this much after its deadline means the process did not run for that
/// long (stopped, frozen or starved): the driver then moves every deadline as much later
/// instead of firing. Well above a busy machine's scheduling delays, well below the
/// shortest timeout that ends something for good (an agent's executor re-registration
/// window, 2 s).
pub const FROZEN_AFTER: Duration = Duration::from_secs(1);

/// The default number of records appended after which the store is compacted.
pub const COMPACTION_RECORDS_DEFAULT: u64 = 1024;

/// Where the driver hands the messages a machine sends. [`Network`] is the real one; tests
/// substitute their own.
pub trait MessageSink {
    /// Queues `message` for `to` without waiting. Delivery is best effort.
    fn send(&self, to: &Address, message: Message);
}

impl MessageSink for Network {
    fn send(&self, to: &Address, message: Message) {
        // Loss is part of the contract: a full queue or a missing route drops the message.
        let _ = Network::send(self, to, message);
    }
}

/// The [`Driver::run`] action handler of a role without actions (`Action = Infallible`).
pub fn no_actions(action: Infallible) {
    match action {}
}

/// The driver's own settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriverConfig {
    /// Compact the store once more than this many records were appended since the last
    /// snapshot.
    pub compaction_records: u64,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            compaction_records: COMPACTION_RECORDS_DEFAULT,
        }
    }
}

/// Why a driver stopped. Every variant is fatal: the process exits and recovers from disk.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// Storage failed (the error names the file). Never retried.
    #[error("storage failed: {0}")]
    Storage(#[from] StorageError),
    /// The thread doing a storage operation panicked; the store's state is unknown.
    #[error("a storage operation in {} panicked: {message}", directory.display())]
    StorageThread {
        /// The store's directory.
        directory: PathBuf,
        /// What the thread's panic said.
        message: String,
    },
    /// The machine refused to boot from its durable state.
    #[error("the state machine refused to boot: {0}")]
    Boot(String),
}

/// One input to the machine.
// One short-lived value per step: boxing the message would allocate for every message.
#[allow(clippy::large_enum_variant)]
enum Input<M: Machine> {
    Message(Address, Message),
    Timer,
    Event(M::Event),
    /// The batch held open by pacing (rule 6) is due to end.
    EndBatch,
}

/// The task that owns a machine `M`; `S` is the status it publishes after every step. See
/// the [module documentation](self).
pub struct Driver<M: Machine, S> {
    machine: M,
    /// `None` only while a blocking storage operation holds it.
    store: Option<Store<M::Record, M::Durable>>,
    /// The store's directory, for error messages.
    directory: PathBuf,
    /// The fold of every record persisted: what a snapshot holds.
    durable: M::Durable,
    records_since_compaction: u64,
    timers: Timers<M::Timer>,
    /// Commands not yet executed: the boot's, until [`Driver::run`] starts.
    outbox: Outbox<M>,
    notes: NoteLog,
    status: watch::Sender<S>,
    status_of: fn(&M) -> S,
    /// How many local events have been handled and their outboxes executed.
    events_processed: watch::Sender<u64>,
    /// Records persisted by the steps of this batch and not yet on disk, and what those
    /// steps must not do before they are (rule 3, group commit).
    held: Held<M>,
    /// Pacing (rule 6): the next [`Machine::end_batch`] not before this instant, as long
    /// after the last one ended as that one took.
    end_batch_not_before: Option<Instant>,
    config: DriverConfig,
}

/// What the steps since the last sync persisted, and the effects that wait for it.
struct Held<M: Machine> {
    /// Records folded into the driver's durable copy, not yet appended to the store.
    records: Vec<M::Record>,
    /// Sends, actions and notes, in the order the steps queued them.
    effects: Vec<Effect<M>>,
    /// Local events handled whose steps persisted something or follow one that did.
    events: u64,
}

/// A command that leaves the process, held until the records before it are durable.
// One short-lived value per command: boxing the message would allocate for every message.
#[allow(clippy::large_enum_variant)]
enum Effect<M: Machine> {
    Send(Address, Message),
    Act(M::Action),
    Note(berth_protocol::note::Note),
}

impl<M: Machine> Held<M> {
    fn new() -> Held<M> {
        Held {
            records: Vec::new(),
            effects: Vec::new(),
            events: 0,
        }
    }
}

impl<M, S> Driver<M, S>
where
    M: Machine + Send,
    M::Record: Serialize + DeserializeOwned + Send + 'static,
    M::Durable: Serialize + DeserializeOwned + Send + 'static,
    M::Timer: Send,
    M::Event: Send,
    M::Action: Send,
    S: PartialEq + Send + Sync,
{
    /// Opens the store in `directory` (which must exist), folds its records and boots the
    /// machine. Returns the driver and a receiver of its status, which `status_of` computes
    /// from the machine after boot and after every step.
    ///
    /// The status is the machine's view: until [`run`](Driver::run) has executed the boot's
    /// outbox, a record the boot queued (a lone master's vote for itself) is not yet on disk.
    pub fn open(
        directory: &Path,
        config: &M::Config,
        status_of: fn(&M) -> S,
        driver_config: DriverConfig,
    ) -> Result<(Driver<M, S>, watch::Receiver<S>), DriverError> {
        let (store, durable) = Store::open(directory, M::apply)?;
        Driver::boot(store, durable, config, status_of, driver_config)
    }

    /// Boots the machine from an already opened `store` and the `durable` state it returned
    /// (tests open stores on a file system of their own).
    pub fn boot(
        store: Store<M::Record, M::Durable>,
        durable: M::Durable,
        config: &M::Config,
        status_of: fn(&M) -> S,
        driver_config: DriverConfig,
    ) -> Result<(Driver<M, S>, watch::Receiver<S>), DriverError> {
        let mut outbox = Outbox::new();
        let machine = M::boot(config, &durable, &mut outbox)
            .map_err(|error| DriverError::Boot(error.to_string()))?;
        let (status, receiver) = watch::channel(status_of(&machine));
        let driver = Driver {
            machine,
            directory: store.directory().to_path_buf(),
            store: Some(store),
            durable,
            records_since_compaction: 0,
            timers: Timers::new(),
            outbox,
            notes: NoteLog::new(),
            status,
            status_of,
            events_processed: watch::Sender::new(0),
            held: Held::new(),
            end_batch_not_before: None,
            config: driver_config,
        };
        Ok((driver, receiver))
    }

    /// A receiver of the status, like the one [`open`](Driver::open) returned.
    pub fn status(&self) -> watch::Receiver<S> {
        self.status.subscribe()
    }

    /// A receiver of how many local events (sent on [`run`](Driver::run)'s `events`
    /// channel) the machine has handled, counting an event only once every command of its
    /// step has been executed, its persists made durable included.
    ///
    /// Whoever sends events counts them too, so it knows when the `n`-th event's effects are
    /// on disk: an agent acknowledges an executor's report only then, so that a report is
    /// never forgotten by both sides of a crash.
    pub fn events_processed(&self) -> watch::Receiver<u64> {
        self.events_processed.subscribe()
    }

    /// Runs the machine until `shutdown` completes or the inbox closes (`Ok`), or a storage
    /// failure (`Err`, fatal: stop the process).
    ///
    /// Messages arrive on `inbox`, local events on `events` (`None` for a role without
    /// them); sends go to `sink` and actions to `act`.
    pub async fn run<N: MessageSink>(
        mut self,
        sink: &N,
        mut inbox: mpsc::Receiver<(Address, Message)>,
        mut events: Option<mpsc::Receiver<M::Event>>,
        mut act: impl FnMut(M::Action),
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), DriverError> {
        let result = self
            .run_steps(sink, &mut inbox, &mut events, &mut act, shutdown)
            .await;
        if let Err(error) = &result {
            tracing::error!(
                %error,
                "stopping: storage failed, and a failed write or fsync is never retried; \
                 restart the process to recover from what is on disk"
            );
        }
        result
    }

    async fn run_steps<N: MessageSink>(
        &mut self,
        sink: &N,
        inbox: &mut mpsc::Receiver<(Address, Message)>,
        events: &mut Option<mpsc::Receiver<M::Event>>,
        act: &mut impl FnMut(M::Action),
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), DriverError> {
        self.compact_at_start().await?;
        let mut outbox = std::mem::take(&mut self.outbox);
        self.execute(&mut outbox, sink, act);
        self.sync(sink, act).await?;
        self.publish_status();
        tokio::pin!(shutdown);
        // Inputs since the batch was last ended, and since the last sync.
        let mut batch_inputs = 0;
        let mut unsynced_inputs = 0;
        // Whether the batch was due to end but is held open by pacing.
        let mut held_open = false;
        loop {
            let deadline = self.timers.next_deadline();
            // A batch held open ends at this instant, input or not.
            let end_batch_at = self.end_batch_not_before.filter(|_| held_open);
            let input: Input<M> = tokio::select! {
                biased;
                () = &mut shutdown => return self.sync(sink, act).await,
                () = sleep_until(deadline) => Input::Timer,
                () = sleep_until(end_batch_at) => Input::EndBatch,
                Some(event) = receive(events) => Input::Event(event),
                received = inbox.recv() => match received {
                    Some((from, message)) => Input::Message(from, message),
                    None => return self.sync(sink, act).await,
                },
            };
            let was_event = matches!(input, Input::Event(_));
            match input {
                Input::Message(from, message) => {
                    self.machine.handle_message(&from, message, &mut outbox);
                }
                Input::Timer => {
                    let now = Instant::now();
                    let late = deadline.map_or(Duration::ZERO, |deadline| {
                        now.saturating_duration_since(deadline)
                    });
                    if late > FROZEN_AFTER {
                        // The process did not run (stopped, a frozen VM, a stalled disk): the
                        // time it lost does not count against its timers. Otherwise a
                        // timeout would expire for what this process could not see or do,
                        // such as an agent failing executors that could not reconnect while
                        // it was stopped (A3).
                        tracing::info!(
                            late_ms = late.as_millis() as u64,
                            "this process did not run for a while: its timers wait as long"
                        );
                        self.timers.postpone_all(late);
                        continue;
                    }
                    if let Some(timer) = self.timers.pop_due(now) {
                        self.machine.handle_timer(timer, &mut outbox);
                    }
                }
                Input::Event(event) => self.machine.handle_event(event, &mut outbox),
                Input::EndBatch => {
                    self.end_batch(&mut outbox, sink, act).await?;
                    (batch_inputs, unsynced_inputs, held_open) = (0, 0, false);
                    self.publish_status();
                    continue;
                }
            }
            self.execute(&mut outbox, sink, act);
            if was_event {
                if self.held.records.is_empty() {
                    self.events_processed.send_modify(|count| *count += 1);
                } else {
                    self.held.events += 1;
                }
            }
            batch_inputs += 1;
            unsynced_inputs += 1;
            let waiting =
                !inbox.is_empty() || events.as_ref().is_some_and(|events| !events.is_empty());
            let due = !waiting || batch_inputs >= BATCH_INPUTS_MAX;
            let paced = self
                .end_batch_not_before
                .is_some_and(|not_before| Instant::now() < not_before);
            if due && !paced {
                self.end_batch(&mut outbox, sink, act).await?;
                (batch_inputs, unsynced_inputs, held_open) = (0, 0, false);
            } else {
                held_open |= due;
                if !waiting || unsynced_inputs >= BATCH_INPUTS_MAX {
                    // What the steps did goes out as at the end of a batch; the batch
                    // itself stays open until pacing lets it end.
                    self.sync(sink, act).await?;
                    unsynced_inputs = 0;
                }
            }
            if self.held.records.is_empty() {
                self.publish_status();
            }
        }
    }

    /// Ends the batch (rule 6): the machine's deferred work, executed and synced like a
    /// step's. Sets the pacing deadline of the next one from what this one took.
    async fn end_batch<N: MessageSink>(
        &mut self,
        outbox: &mut Outbox<M>,
        sink: &N,
        act: &mut impl FnMut(M::Action),
    ) -> Result<(), DriverError> {
        let started = Instant::now();
        self.machine.end_batch(outbox);
        let ended = Instant::now();
        let took = ended.duration_since(started).min(END_BATCH_PACING_MAX);
        self.end_batch_not_before = Some(ended + took);
        self.execute(outbox, sink, act);
        self.sync(sink, act).await
    }

    /// Executes `outbox` front to back. A persist is folded into the durable copy and
    /// held for the batch's sync; every send, action and note after it is held behind it.
    fn execute<N: MessageSink>(
        &mut self,
        outbox: &mut Outbox<M>,
        sink: &N,
        act: &mut impl FnMut(M::Action),
    ) {
        for command in outbox.drain() {
            let effect = match command {
                Command::Persist(record) => {
                    M::apply(&mut self.durable, &record);
                    self.held.records.push(record);
                    continue;
                }
                Command::SetTimer { timer, duration } => {
                    let delay = draw_delay(duration, &mut rand::rng());
                    self.timers.set(timer, Instant::now() + delay);
                    continue;
                }
                Command::CancelTimer(timer) => {
                    self.timers.cancel(&timer);
                    continue;
                }
                Command::Send { to, message } => Effect::Send(to, message),
                Command::Act(action) => Effect::Act(action),
                Command::Note(note) => Effect::Note(note),
            };
            if self.held.records.is_empty() {
                self.release(effect, sink, act);
            } else {
                self.held.effects.push(effect);
            }
        }
    }

    fn release<N: MessageSink>(
        &mut self,
        effect: Effect<M>,
        sink: &N,
        act: &mut impl FnMut(M::Action),
    ) {
        match effect {
            Effect::Send(to, message) => sink.send(&to, message),
            Effect::Act(action) => act(action),
            Effect::Note(note) => self.notes.write(&note),
        }
    }

    /// Group commit: makes the records the batch persisted durable with one sync, then
    /// carries out what waited for them, in order, and counts the events they finished.
    /// Returns at a storage failure with nothing released.
    async fn sync<N: MessageSink>(
        &mut self,
        sink: &N,
        act: &mut impl FnMut(M::Action),
    ) -> Result<(), DriverError> {
        if self.held.records.is_empty() {
            return Ok(());
        }
        let records = std::mem::take(&mut self.held.records);
        self.persist(records).await?;
        for effect in std::mem::take(&mut self.held.effects) {
            self.release(effect, sink, act);
        }
        let events = std::mem::take(&mut self.held.events);
        if events > 0 {
            self.events_processed.send_modify(|count| *count += events);
        }
        self.publish_status();
        Ok(())
    }

    /// Appends `records` (already folded into the durable copy), makes them durable with
    /// one sync, and compacts the store when its log is long enough; returns once all of it
    /// is done.
    async fn persist(&mut self, records: Vec<M::Record>) -> Result<(), DriverError> {
        let count = u64::try_from(records.len()).unwrap_or(u64::MAX);
        self.records_since_compaction = self.records_since_compaction.saturating_add(count);
        let snapshot = (self.records_since_compaction > self.config.compaction_records)
            .then(|| self.durable.clone());
        let compacting = snapshot.is_some();
        self.with_store(move |store| {
            for record in &records {
                store.append(record)?;
            }
            store.sync()?;
            if let Some(durable) = snapshot {
                store.compact(&durable)?;
            }
            Ok(())
        })
        .await?;
        if compacting {
            self.records_since_compaction = 0;
            tracing::debug!("compacted the store into a snapshot");
        }
        Ok(())
    }

    /// Compacts a store opened with records in its log, so that the driver's record count
    /// starts exact.
    async fn compact_at_start(&mut self) -> Result<(), DriverError> {
        let log_is_empty = self
            .store
            .as_ref()
            .is_none_or(|store| store.log_length() == 0);
        if log_is_empty {
            return Ok(());
        }
        let durable = self.durable.clone();
        self.with_store(move |store| store.compact(&durable)).await
    }

    /// Runs `work` on the store on a blocking thread and waits for it.
    async fn with_store<T: Send + 'static>(
        &mut self,
        work: impl FnOnce(&mut Store<M::Record, M::Durable>) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, DriverError> {
        let Some(mut store) = self.store.take() else {
            // A previous operation's thread panicked and took the store with it; `run`
            // returned an error then, so this is not reached.
            return Err(DriverError::StorageThread {
                directory: self.directory.clone(),
                message: "the store was lost by an earlier failure".into(),
            });
        };
        let joined = tokio::task::spawn_blocking(move || {
            let result = work(&mut store);
            (store, result)
        })
        .await;
        match joined {
            Ok((store, result)) => {
                self.store = Some(store);
                Ok(result?)
            }
            Err(error) => Err(DriverError::StorageThread {
                directory: self.directory.clone(),
                message: error.to_string(),
            }),
        }
    }

    fn publish_status(&self) {
        let status = (self.status_of)(&self.machine);
        self.status.send_if_modified(|current| {
            let changed = *current != status;
            if changed {
                *current = status;
            }
            changed
        });
    }
}

impl<M: Machine, S> fmt::Debug for Driver<M, S> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Driver")
            .field("timers", &self.timers.len())
            .field("records_since_compaction", &self.records_since_compaction)
            .finish_non_exhaustive()
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The next event, or `None` at once if there is no event channel or it is closed (the
/// `select!` then disables the branch for that round).
async fn receive<E>(events: &mut Option<mpsc::Receiver<E>>) -> Option<E> {
    match events {
        Some(receiver) => receiver.recv().await,
        None => None,
    }
}
