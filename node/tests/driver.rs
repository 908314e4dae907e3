//! The driver honours the calling contract: persist is a barrier (a send queued after a
//! persist reaches the network only after the sync returned), consecutive persists share one
//! sync, a storage failure stops the driver before any later command, replaced and cancelled
//! timers never fire, and the store is compacted and recovers.

use std::convert::Infallible;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use berth_node::driver::{Driver, DriverConfig, DriverError, MessageSink, no_actions};
use berth_node::storage::{
    Fault, FaultTiming, FaultyFileSystem, FileSystem, Operation, RealFileSystem, StorageError,
    Store,
};
use berth_protocol::ids::Term;
use berth_protocol::message::{Message, Ping};
use berth_protocol::{Address, DurationRange, Machine, Outbox};
use tokio::sync::{mpsc, oneshot};

mod common;
use common::TestDirectory;

/// Long enough for anything here; a test that waits this long has failed.
const PATIENCE: Duration = Duration::from_secs(10);

fn address(text: &str) -> Address {
    Address::new(text).expect("a valid address")
}

fn ping(sequence: u64) -> Message {
    Message::Ping(Ping {
        term: Term(1),
        sequence,
    })
}

/// What happened, in order, across the file system and the network.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Event {
    SyncStarted,
    SyncReturned,
    Sent(u64),
}

#[derive(Clone, Debug, Default)]
struct Events(Arc<Mutex<Vec<Event>>>);

impl Events {
    fn push(&self, event: Event) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(event);
    }

    fn snapshot(&self) -> Vec<Event> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    async fn wait_for(&self, event: Event) {
        let waited = tokio::time::timeout(PATIENCE, async {
            while !self.snapshot().contains(&event) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert!(
            waited.is_ok(),
            "no {event:?} within {PATIENCE:?}: {:?}",
            self.snapshot()
        );
    }
}

/// A network that records what it is handed.
struct RecordingSink(Events);

impl MessageSink for RecordingSink {
    fn send(&self, _to: &Address, message: Message) {
        if let Message::Ping(ping) = message {
            self.0.push(Event::Sent(ping.sequence));
        }
    }
}

/// The real file system, except that once armed, each file sync records its start, waits
/// for the test to release it, syncs, and records its return.
#[derive(Debug)]
struct GatedFileSystem {
    events: Events,
    armed: AtomicBool,
    release: Mutex<std::sync::mpsc::Receiver<()>>,
}

impl FileSystem for GatedFileSystem {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        RealFileSystem.read(path)
    }
    fn create(&self, path: &Path) -> io::Result<File> {
        RealFileSystem.create(path)
    }
    fn open_append(&self, path: &Path) -> io::Result<File> {
        RealFileSystem.open_append(path)
    }
    fn write(&self, file: &mut File, path: &Path, bytes: &[u8]) -> io::Result<()> {
        RealFileSystem.write(file, path, bytes)
    }
    fn sync_file(&self, file: &File, path: &Path) -> io::Result<()> {
        if !self.armed.load(Ordering::SeqCst) {
            return RealFileSystem.sync_file(file, path);
        }
        self.events.push(Event::SyncStarted);
        let released = self
            .release
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .recv_timeout(PATIENCE);
        assert!(released.is_ok(), "the test never released the sync");
        let synced = RealFileSystem.sync_file(file, path);
        self.events.push(Event::SyncReturned);
        synced
    }
    fn set_length(&self, file: &File, path: &Path, length: u64) -> io::Result<()> {
        RealFileSystem.set_length(file, path, length)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        RealFileSystem.rename(from, to)
    }
    fn sync_directory(&self, directory: &Path) -> io::Result<()> {
        RealFileSystem.sync_directory(directory)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        RealFileSystem.remove_file(path)
    }
    fn list_directory(&self, directory: &Path) -> io::Result<Vec<OsString>> {
        RealFileSystem.list_directory(directory)
    }
}

/// A machine that, for each ping it receives, persists the ping's number (and, for an even
/// number, the next one too) and then sends the ping on: the send promises the persist.
/// Its durable state is the highest number persisted. Its timers send a marker ping when
/// they fire (see [`TimerTest`]).
#[derive(Debug)]
struct Relay {
    peer: Address,
    highest: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum TimerTest {
    /// Set at boot for 150 ms, cancelled when `Canceller` fires: must never fire.
    Cancelled,
    /// Set at boot for 150 ms, replaced with 1 h when `Canceller` fires: must never fire.
    Replaced,
    /// Set at boot for 20 ms.
    Canceller,
}

const MARKER_CANCELLED: u64 = 1_000_001;
const MARKER_REPLACED: u64 = 1_000_002;
const MARKER_CANCELLER: u64 = 1_000_003;

impl Machine for Relay {
    type Config = (Address, bool);
    type Timer = TimerTest;
    type Record = u64;
    type Durable = u64;
    type Event = Infallible;
    type Action = Infallible;
    type BootError = Infallible;

    fn boot(
        (peer, timers): &(Address, bool),
        highest: &u64,
        out: &mut Outbox<Self>,
    ) -> Result<Self, Infallible> {
        if *timers {
            let soon = DurationRange::fixed(Duration::from_millis(150));
            out.set_timer(TimerTest::Cancelled, soon);
            out.set_timer(TimerTest::Replaced, soon);
            out.set_timer(
                TimerTest::Canceller,
                DurationRange::between(Duration::from_millis(10), Duration::from_millis(30)),
            );
        }
        Ok(Relay {
            peer: peer.clone(),
            highest: *highest,
        })
    }

    fn apply(highest: &mut u64, record: &u64) {
        *highest = (*highest).max(*record);
    }

    fn handle_message(&mut self, _from: &Address, message: Message, out: &mut Outbox<Self>) {
        let Message::Ping(ping) = message else { return };
        out.persist(ping.sequence);
        if ping.sequence % 2 == 0 {
            out.persist(ping.sequence + 1);
        }
        self.highest = self.highest.max(ping.sequence + 1);
        out.send(self.peer.clone(), message);
    }

    fn handle_timer(&mut self, timer: TimerTest, out: &mut Outbox<Self>) {
        let marker = match timer {
            TimerTest::Cancelled => MARKER_CANCELLED,
            TimerTest::Replaced => MARKER_REPLACED,
            TimerTest::Canceller => {
                out.cancel_timer(TimerTest::Cancelled);
                out.set_timer(
                    TimerTest::Replaced,
                    DurationRange::fixed(Duration::from_secs(3600)),
                );
                MARKER_CANCELLER
            }
        };
        out.send(self.peer.clone(), ping(marker));
    }
}

fn highest(relay: &Relay) -> u64 {
    relay.highest
}

/// A running driver of a [`Relay`].
struct Running {
    inbox: mpsc::Sender<(Address, Message)>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), DriverError>>,
}

impl Running {
    fn start(store: Store<u64, u64>, durable: u64, timers: bool, events: &Events) -> Running {
        Running::start_with(store, durable, timers, events, DriverConfig::default())
    }

    fn start_with(
        store: Store<u64, u64>,
        durable: u64,
        timers: bool,
        events: &Events,
        config: DriverConfig,
    ) -> Running {
        let config_of_relay = (address("127.0.0.1:1"), timers);
        let (driver, _status) =
            Driver::boot(store, durable, &config_of_relay, highest, config).expect("boots");
        Running::run(driver, events)
    }

    /// Runs `driver`, its sends recorded in `events`, until stopped.
    fn run<M, S>(driver: Driver<M, S>, events: &Events) -> Running
    where
        M: Machine<Record = u64, Durable = u64, Event = Infallible, Action = Infallible>
            + Send
            + 'static,
        M::Timer: Send,
        S: PartialEq + Send + Sync + 'static,
    {
        let (inbox, inbox_receiver) = mpsc::channel(16);
        let (stop, stopped) = oneshot::channel::<()>();
        let sink = RecordingSink(events.clone());
        let task = tokio::spawn(async move {
            driver
                .run(&sink, inbox_receiver, None, no_actions, async {
                    let _ = stopped.await;
                })
                .await
        });
        Running { inbox, stop, task }
    }

    async fn deliver(&self, message: Message) {
        self.inbox
            .send((address("127.0.0.1:2"), message))
            .await
            .expect("the driver runs");
    }

    async fn stop(self) -> Result<(), DriverError> {
        let _ = self.stop.send(());
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("the driver stops")
            .expect("the driver does not panic")
    }
}

fn open(directory: &Path, file_system: Arc<dyn FileSystem>) -> (Store<u64, u64>, u64) {
    Store::open_with(file_system, directory, Relay::apply).expect("the store opens")
}

/// A [`Relay`] on a store whose file syncs are gated: each waits for a message on the
/// returned sender. Returns the store's directory, the events and the running driver.
fn gated_relay(name: &str) -> (TestDirectory, Events, std::sync::mpsc::Sender<()>, Running) {
    let directory = TestDirectory::new(name);
    let events = Events::default();
    let (release, released) = std::sync::mpsc::channel();
    let file_system = Arc::new(GatedFileSystem {
        events: events.clone(),
        armed: AtomicBool::new(false),
        release: Mutex::new(released),
    });
    let (store, durable) = open(directory.path(), file_system.clone());
    file_system.armed.store(true, Ordering::SeqCst);
    let running = Running::start(store, durable, false, &events);
    (directory, events, release, running)
}

/// The calling contract, rule 3: no command after a persist is executed before the record
/// is durable. The sync is held open; the send queued after the persist must wait for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_after_a_persist_waits_for_the_sync() {
    let (directory, events, release, running) = gated_relay("barrier");

    running.deliver(ping(7)).await;
    events.wait_for(Event::SyncStarted).await;
    // The sync is in progress and held: give the driver every chance to run ahead.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        events.snapshot(),
        [Event::SyncStarted],
        "nothing is sent while the record is not yet durable"
    );

    release.send(()).expect("the sync waits");
    events.wait_for(Event::Sent(7)).await;
    assert_eq!(
        events.snapshot(),
        [Event::SyncStarted, Event::SyncReturned, Event::Sent(7)]
    );
    running.stop().await.expect("a clean stop");
    let (_, durable) = open(directory.path(), Arc::new(RealFileSystem));
    assert_eq!(durable, 7, "the record survives");
}

/// Consecutive persists may share one sync: two records, one sync, then the send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consecutive_persists_share_one_sync() {
    let (directory, events, release, running) = gated_relay("coalesce");

    release.send(()).expect("the sync will wait");
    running.deliver(ping(4)).await; // Persists 4 and 5, then sends.
    events.wait_for(Event::Sent(4)).await;
    assert_eq!(
        events.snapshot(),
        [Event::SyncStarted, Event::SyncReturned, Event::Sent(4)]
    );
    running.stop().await.expect("a clean stop");
    let (_, durable) = open(directory.path(), Arc::new(RealFileSystem));
    assert_eq!(durable, 5, "both records are durable");
}

/// Group commit (rule 3): the steps of one batch share one sync, and none of their sends
/// leaves before it. While the first sync is held, three more pings arrive; the driver takes
/// all three, syncs their records once, and only then sends them, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_steps_of_a_batch_share_one_sync_and_send_after_it() {
    let (directory, events, release, running) = gated_relay("group-commit");

    running.deliver(ping(1)).await;
    events.wait_for(Event::SyncStarted).await;
    for sequence in [3, 5, 7] {
        running.deliver(ping(sequence)).await;
    }
    release.send(()).expect("the first sync waits");
    release.send(()).expect("the second sync will wait");
    events.wait_for(Event::Sent(7)).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        events.snapshot(),
        [
            Event::SyncStarted,
            Event::SyncReturned,
            Event::Sent(1),
            Event::SyncStarted,
            Event::SyncReturned,
            Event::Sent(3),
            Event::Sent(5),
            Event::Sent(7),
        ],
        "one sync for the batch of three, then their sends in order"
    );
    running.stop().await.expect("a clean stop");
    let (_, durable) = open(directory.path(), Arc::new(RealFileSystem));
    assert_eq!(durable, 7, "every record of the batch is durable");
}

/// A failed fsync stops the driver with the file's name, and the send that depended on it
/// is never executed (and the sync is never retried).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sync_stops_the_driver_before_the_send() {
    let directory = TestDirectory::new("failed-sync");
    let events = Events::default();
    let file_system = Arc::new(FaultyFileSystem::new());
    let (store, durable) = open(directory.path(), file_system.clone());
    file_system.arm(Fault {
        operation: Some(Operation::SyncFile),
        skip: 0,
        timing: FaultTiming::Before,
        kind: io::ErrorKind::Other,
    });
    let running = Running::start(store, durable, false, &events);
    running.deliver(ping(9)).await;
    let result = tokio::time::timeout(PATIENCE, running.task)
        .await
        .expect("the driver stops by itself")
        .expect("the driver does not panic");
    let error = result.expect_err("a failed sync is fatal");
    assert!(
        matches!(
            &error,
            DriverError::Storage(StorageError::Io {
                operation: Operation::SyncFile,
                ..
            })
        ),
        "{error}"
    );
    assert!(
        error.to_string().contains("log-00000000000000000000"),
        "the error names the file: {error}"
    );
    assert!(file_system.fired());
    assert_eq!(
        events.snapshot(),
        [],
        "nothing after the failed persist ran"
    );
}

/// A full disk (`ENOSPC` on the write, after part of it reached the file) stops the driver
/// with that error, naming the file; the send that depended on the record never happens, and
/// the log holds exactly what was durable before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_the_driver_before_the_send_and_changes_nothing() {
    let directory = TestDirectory::new("full-disk");
    let events = Events::default();
    let file_system = Arc::new(FaultyFileSystem::new());
    let (store, durable) = open(directory.path(), file_system.clone());
    let running = Running::start(store, durable, false, &events);
    running.deliver(ping(3)).await;
    events.wait_for(Event::Sent(3)).await;
    let log = directory.path().join("log-00000000000000000000");
    let before = std::fs::read(&log).expect("read the log");

    file_system.arm(Fault {
        operation: Some(Operation::Write),
        skip: 0,
        timing: FaultTiming::After,
        kind: io::ErrorKind::StorageFull,
    });
    running.deliver(ping(5)).await;
    let result = tokio::time::timeout(PATIENCE, running.task)
        .await
        .expect("the driver stops by itself")
        .expect("the driver does not panic");
    let error = result.expect_err("a full disk is fatal");
    match &error {
        DriverError::Storage(StorageError::Io {
            operation: Operation::Write,
            path,
            error,
        }) => {
            assert_eq!(path, &log);
            assert_eq!(error.kind(), io::ErrorKind::StorageFull);
        }
        other => panic!("expected a failed write, got {other}"),
    }
    assert!(
        error.to_string().contains(&log.display().to_string()),
        "{error}"
    );
    assert_eq!(events.snapshot(), [Event::Sent(3)], "5 is never sent");
    assert_eq!(
        std::fs::read(&log).expect("read the log"),
        before,
        "cut back"
    );
    let (_, durable) = open(directory.path(), Arc::new(RealFileSystem));
    assert_eq!(durable, 3, "the durable state is as before");
}

/// Setting a timer replaces the earlier setting and cancelling it removes it: neither the
/// cancelled nor the replaced setting ever fires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_and_cancelled_timers_never_fire() {
    let directory = TestDirectory::new("timers");
    let events = Events::default();
    let (store, durable) = open(directory.path(), Arc::new(RealFileSystem));
    let running = Running::start(store, durable, true, &events);
    events.wait_for(Event::Sent(MARKER_CANCELLER)).await;
    // Well past the 150 ms the two doomed settings had.
    tokio::time::sleep(Duration::from_millis(400)).await;
    running.stop().await.expect("a clean stop");
    assert_eq!(events.snapshot(), [Event::Sent(MARKER_CANCELLER)]);
}

/// Past the threshold, the driver compacts the store into a snapshot of its folded copy of
/// the durable state, and the store recovers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_is_compacted_and_recovers() {
    let directory = TestDirectory::new("compaction");
    let events = Events::default();
    let (store, durable) = open(directory.path(), Arc::new(RealFileSystem));
    assert_eq!(store.generation(), 0);
    let config = DriverConfig {
        compaction_records: 3,
    };
    let running = Running::start_with(store, durable, false, &events, config);
    for sequence in [1, 3, 5, 7, 9] {
        running.deliver(ping(sequence)).await;
    }
    events.wait_for(Event::Sent(9)).await;
    running.stop().await.expect("a clean stop");
    let (store, durable) = open(directory.path(), Arc::new(RealFileSystem));
    assert_eq!(durable, 9);
    assert_eq!(
        store.generation(),
        1,
        "compacted once, after the fourth record"
    );
}

/// A machine whose local events are numbers it persists.
#[derive(Debug)]
struct Recorder;

impl Machine for Recorder {
    type Config = ();
    type Timer = TimerTest;
    type Record = u64;
    type Durable = u64;
    type Event = u64;
    type Action = Infallible;
    type BootError = Infallible;

    fn boot(_config: &(), _durable: &u64, _out: &mut Outbox<Self>) -> Result<Self, Infallible> {
        Ok(Recorder)
    }

    fn apply(highest: &mut u64, record: &u64) {
        *highest = (*highest).max(*record);
    }

    fn handle_message(&mut self, _from: &Address, _message: Message, _out: &mut Outbox<Self>) {}

    fn handle_timer(&mut self, _timer: TimerTest, _out: &mut Outbox<Self>) {}

    fn handle_event(&mut self, event: u64, out: &mut Outbox<Self>) {
        out.persist(event);
    }
}

/// An event counts as processed only once its step is executed, its persist durable: what
/// an agent waits for before it acknowledges an executor's report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_counts_as_processed_once_its_persist_is_durable() {
    let directory = TestDirectory::new("events-processed");
    let events = Events::default();
    let (release, released) = std::sync::mpsc::channel();
    let file_system = Arc::new(GatedFileSystem {
        events: events.clone(),
        armed: AtomicBool::new(false),
        release: Mutex::new(released),
    });
    let (store, durable) =
        Store::open_with(file_system.clone(), directory.path(), Recorder::apply).expect("opens");
    file_system.armed.store(true, Ordering::SeqCst);
    let (driver, _status) = Driver::boot(
        store,
        durable,
        &(),
        |_: &Recorder| (),
        DriverConfig::default(),
    )
    .expect("boots");
    let mut processed = driver.events_processed();
    let (_inbox, inbox_receiver) = mpsc::channel(1);
    let (event_sender, event_receiver) = mpsc::channel(4);
    let (stop, stopped) = oneshot::channel::<()>();
    let sink = RecordingSink(events.clone());
    let task = tokio::spawn(async move {
        driver
            .run(
                &sink,
                inbox_receiver,
                Some(event_receiver),
                no_actions,
                async {
                    let _ = stopped.await;
                },
            )
            .await
    });

    event_sender.send(42).await.expect("the driver runs");
    events.wait_for(Event::SyncStarted).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        *processed.borrow(),
        0,
        "not processed while its record is not durable"
    );
    release.send(()).expect("the sync waits");
    tokio::time::timeout(PATIENCE, processed.wait_for(|count| *count == 1))
        .await
        .expect("processed in time")
        .expect("the driver runs");
    assert_eq!(events.snapshot(), [Event::SyncStarted, Event::SyncReturned]);

    let _ = stop.send(());
    tokio::time::timeout(PATIENCE, task)
        .await
        .expect("the driver stops")
        .expect("no panic")
        .expect("a clean stop");
    let (_, durable) =
        Store::<u64, u64>::open_with(Arc::new(RealFileSystem), directory.path(), Recorder::apply)
            .expect("opens");
    assert_eq!(durable, 42);
}

/// A machine whose deferred work is slow: each message is sent on at once, and each end of
/// a batch takes [`SLOW_END_BATCH`] and then sends ping 0, which marks it.
#[derive(Debug)]
struct SlowBatches {
    peer: Address,
}

/// Long enough that the test delivers two messages within it even on a busy machine.
const SLOW_END_BATCH: Duration = Duration::from_millis(400);

impl Machine for SlowBatches {
    type Config = Address;
    type Timer = TimerTest;
    type Record = u64;
    type Durable = u64;
    type Event = Infallible;
    type Action = Infallible;
    type BootError = Infallible;

    fn boot(peer: &Address, _: &u64, _: &mut Outbox<Self>) -> Result<Self, Infallible> {
        Ok(SlowBatches { peer: peer.clone() })
    }

    fn apply(_: &mut u64, _: &u64) {}

    fn handle_message(&mut self, _from: &Address, message: Message, out: &mut Outbox<Self>) {
        out.send(self.peer.clone(), message);
    }

    fn handle_timer(&mut self, _: TimerTest, _: &mut Outbox<Self>) {}

    fn end_batch(&mut self, out: &mut Outbox<Self>) {
        std::thread::sleep(SLOW_END_BATCH);
        out.send(self.peer.clone(), ping(0));
    }
}

/// Pacing (rule 6): a batch does not end sooner after the last one than that one's
/// deferred work took. Two messages arriving one by one right after a slow end of a batch
/// are sent on at once (nothing waits for the batch to end) and share the next end, which
/// comes without further input. Without pacing, each would end a batch of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_ends_no_sooner_after_the_last_than_that_one_took() {
    let directory = TestDirectory::new("pacing");
    let events = Events::default();
    let (store, durable) = Store::open_with(
        Arc::new(RealFileSystem),
        directory.path(),
        SlowBatches::apply,
    )
    .expect("the store opens");
    let (driver, _status) = Driver::boot(
        store,
        durable,
        &address("127.0.0.1:1"),
        |_: &SlowBatches| (),
        DriverConfig::default(),
    )
    .expect("boots");
    let running = Running::run(driver, &events);
    running.deliver(ping(1)).await;
    events.wait_for(Event::Sent(0)).await;
    running.deliver(ping(2)).await;
    events.wait_for(Event::Sent(2)).await;
    running.deliver(ping(3)).await;
    events.wait_for(Event::Sent(3)).await;
    let ended_twice = tokio::time::timeout(PATIENCE, async {
        while events
            .snapshot()
            .iter()
            .filter(|event| **event == Event::Sent(0))
            .count()
            < 2
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(ended_twice.is_ok(), "the held batch ends by itself");
    assert_eq!(
        events.snapshot(),
        [
            Event::Sent(1),
            Event::Sent(0),
            Event::Sent(2),
            Event::Sent(3),
            Event::Sent(0),
        ],
        "the second and third messages share one end of a batch"
    );
    running.stop().await.expect("a clean stop");
}
