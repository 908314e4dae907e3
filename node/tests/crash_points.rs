//! Crash points: a power cut right after any file operation of a storage procedure, then
//! recovery from every disk image that cut can leave.
//!
//! The crash model is the page cache's ([`AfterCrash`]): what was fsynced survives; of what
//! was not, each directory keeps any number of its entry changes (creations, renames,
//! removals) in order, and the files' unsynced data is lost, torn in the middle or kept. For
//! each crash point the procedure runs again on a fresh copy of the same directory, once per
//! image. A crash after the procedure returned is checked the same way.
//!
//! What every image must give back, checked by opening it for real:
//!
//! * an atomic file holds its old contents or its new ones, and the new ones once the write
//!   returned;
//! * a store holds the fold of a prefix of the records appended: each record whole or not at
//!   all, none without those before it (never a mix of old and new), and at least every
//!   record whose sync returned. So a vote or a task's update that was made durable is
//!   never forgotten, and no promise rests on a record that a crash could take back.

use std::cell::Cell;
use std::fmt::Debug;
use std::fs;
use std::path::Path;
use std::sync::Arc;

use berth_node::storage::{
    AfterCrash, Fault, FaultyFileSystem, FileSystem, RECORD_HEADER_LENGTH, StorageError, Store,
    TEMPORARY_SUFFIX, UnsyncedData, atomic_write_file_with,
};
use berth_protocol::agent::{Agent, AgentConfig, AgentDurable, AgentRecord, UpdateCheckpoint};
use berth_protocol::bounded::Name;
use berth_protocol::ids::{
    AgentId, AssignedId, BootId, ExecutorId, FrameworkId, MasterId, TaskId, Term, UpdateId,
};
use berth_protocol::master::{Master, MasterDurable, MasterRecord};
use berth_protocol::message::LogEntry;
use berth_protocol::registry::{AgentInfo, LogIndex, RegistryEntry};
use berth_protocol::resources::Resources;
use berth_protocol::task::{TaskCommand, TaskState};
use berth_protocol::{Address, Machine, Outbox};
use serde::Serialize;
use serde::de::DeserializeOwned;

mod common;
use common::TestDirectory;

/// Where a crash came and what it left.
#[derive(Clone, Copy, Debug)]
struct Crash {
    /// The operation (counted from 0) right after which the power was cut; `None` for a
    /// crash after the procedure returned.
    after_operation: Option<usize>,
    /// What survived of the unsynced state.
    after: AfterCrash,
}

impl Crash {
    fn procedure_returned(&self) -> bool {
        self.after_operation.is_none()
    }
}

/// Runs `procedure` on a directory that `prepare` filled, once per crash point and disk
/// image, and calls `check` on each image. `prepare` writes with the real file system; what
/// it leaves counts as durable. Returns how many images were checked.
///
/// The crash points are counted in a first, uninterrupted run; each later run cuts the power
/// right after one of them. The procedure must stop at the first error, as a process would.
fn at_every_crash_point<C>(
    name: &str,
    prepare: impl Fn(&Path) -> C,
    procedure: impl Fn(Arc<FaultyFileSystem>, &Path, &C) -> Result<(), StorageError>,
    check: impl Fn(&Path, &C, Crash),
) -> usize {
    let operations = {
        let directory = TestDirectory::new(name);
        let context = prepare(directory.path());
        let file_system = Arc::new(FaultyFileSystem::new());
        file_system.track(directory.path()).expect("track");
        procedure(file_system.clone(), directory.path(), &context)
            .expect("the procedure succeeds without a crash");
        file_system.operation_count()
    };
    assert!(operations > 0, "{name}: the procedure does some I/O");
    let mut images = 0;
    for after_operation in (0..operations).map(Some).chain([None]) {
        let mut name_changes_kept = 0;
        loop {
            let mut unsynced_name_changes = 0;
            for unsynced_data in [UnsyncedData::Lost, UnsyncedData::Torn, UnsyncedData::Kept] {
                let crash = Crash {
                    after_operation,
                    after: AfterCrash {
                        name_changes_kept,
                        unsynced_data,
                    },
                };
                let directory = TestDirectory::new(name);
                let context = prepare(directory.path());
                let file_system = Arc::new(FaultyFileSystem::new());
                file_system.track(directory.path()).expect("track");
                if let Some(operation) = after_operation {
                    file_system.arm(Fault::crash_after(operation));
                }
                let result = procedure(file_system.clone(), directory.path(), &context);
                match after_operation {
                    Some(_) => {
                        assert!(file_system.fired(), "{name}: {crash:?} fired");
                        assert!(result.is_err(), "{name}: {crash:?} stops the procedure");
                    }
                    None => result.expect("the procedure succeeds without a crash"),
                }
                unsynced_name_changes = file_system.unsynced_name_changes();
                file_system.reboot(crash.after).expect("reboot");
                check(directory.path(), &context, crash);
                images += 1;
            }
            name_changes_kept += 1;
            if name_changes_kept > unsynced_name_changes {
                break;
            }
        }
    }
    images
}

/// What a store procedure wrote and made durable, for its check.
struct Appended<R> {
    /// The records in the store before the procedure, in order.
    before: Vec<R>,
    /// The records the procedure appends, in order.
    records: Vec<R>,
    /// How many of `records` a returned sync made durable so far.
    synced: Cell<usize>,
}

impl<R> Appended<R> {
    fn new(before: Vec<R>, records: Vec<R>) -> Appended<R> {
        Appended {
            before,
            records,
            synced: Cell::new(0),
        }
    }
}

/// Appends `records[range]` to `store` and syncs, counting them as durable once the sync
/// returned.
fn append_and_sync<R: Serialize + DeserializeOwned, D>(
    store: &mut Store<R, D>,
    appended: &Appended<R>,
    count: usize,
) -> Result<(), StorageError>
where
    D: Serialize + DeserializeOwned + Default,
{
    let from = appended.synced.get();
    for record in &appended.records[from..from + count] {
        store.append(record)?;
    }
    store.sync()?;
    appended.synced.set(from + count);
    Ok(())
}

fn fold<R, D: Default>(records: &[R], apply: fn(&mut D, &R)) -> D {
    let mut durable = D::default();
    for record in records {
        apply(&mut durable, record);
    }
    durable
}

/// How many of the procedure's records must survive `crash`: all of them once it returned,
/// else those a returned sync made durable.
fn durable_count<R>(appended: &Appended<R>, crash: Crash) -> usize {
    if crash.procedure_returned() {
        appended.records.len()
    } else {
        appended.synced.get()
    }
}

/// Opens the store in `directory` for real, checks that it holds the fold of the records
/// before the procedure and of a prefix of at least `at_least` of its records, and that it
/// takes a further record. Returns how many of the procedure's records it holds, and the
/// recovered state. `case` names the case in failure messages.
fn recover_a_prefix<R, D>(
    directory: &Path,
    appended: &Appended<R>,
    apply: fn(&mut D, &R),
    further: &R,
    at_least: usize,
    case: &dyn Debug,
) -> (usize, D)
where
    R: Serialize + DeserializeOwned + Clone + Debug,
    D: Serialize + DeserializeOwned + Default + PartialEq + Debug,
{
    let (mut store, recovered) = Store::<R, D>::open(directory, apply)
        .unwrap_or_else(|error| panic!("{case:?}: recovery fails: {error}"));
    let mut records = appended.before.clone();
    let mut prefixes = Vec::new();
    for count in 0..=appended.records.len() {
        if count > 0 {
            records.push(appended.records[count - 1].clone());
        }
        prefixes.push(fold(&records, apply));
    }
    let Some(kept) = prefixes.iter().position(|prefix| *prefix == recovered) else {
        panic!("{case:?}: the recovered state is no prefix of the records: {recovered:?}");
    };
    assert!(
        kept >= at_least,
        "{case:?}: {kept} records recovered, but {at_least} were durable"
    );

    store.append(further).expect("append after recovery");
    store.sync().expect("sync after recovery");
    drop(store);
    let (_, reopened) = Store::<R, D>::open(directory, apply).expect("reopen");
    let mut expected = records[..appended.before.len() + kept].to_vec();
    expected.push(further.clone());
    assert_eq!(
        reopened,
        fold(&expected, apply),
        "{case:?}: usable after recovery"
    );
    (kept, recovered)
}

/// The files of `directory`, sorted by name.
fn files(directory: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = fs::read_dir(directory)
        .expect("list")
        .map(|entry| {
            let entry = entry.expect("an entry");
            let name = entry.file_name().into_string().expect("a UTF-8 name");
            (name, fs::read(entry.path()).expect("read"))
        })
        .collect();
    files.sort();
    files
}

/// An atomic file (temporary file, fsync, rename, directory fsync) holds its old contents or
/// its new ones after a crash at any step, and the new ones once the write returned. A
/// leftover temporary file never replaces it.
#[test]
fn an_atomic_file_holds_the_old_or_the_new_contents_after_a_crash_at_any_step() {
    const OLD: &[u8] = b"the old checkpoint";
    const NEW: &[u8] = b"the new checkpoint, longer than the old";
    let images = at_every_crash_point(
        "crash-atomic",
        |directory| fs::write(directory.join("checkpoint"), OLD).expect("write"),
        |file_system, directory, ()| {
            atomic_write_file_with(&*file_system, directory, "checkpoint", NEW)
        },
        |directory, (), crash| {
            let files = files(directory);
            let checkpoint = files
                .iter()
                .find(|(name, _)| name == "checkpoint")
                .map(|(_, data)| data.as_slice());
            if crash.procedure_returned() {
                assert_eq!(checkpoint, Some(NEW), "{crash:?}");
            } else {
                assert!(
                    checkpoint == Some(OLD) || checkpoint == Some(NEW),
                    "{crash:?}: {checkpoint:?}"
                );
            }
            let temporary = format!("checkpoint{TEMPORARY_SUFFIX}");
            assert!(
                files
                    .iter()
                    .all(|(name, _)| name == "checkpoint" || *name == temporary),
                "{crash:?}: {files:?}"
            );
        },
    );
    assert!(images > 30, "{images} images");
}

fn framework() -> FrameworkId {
    FrameworkId(AssignedId {
        term: Term(1),
        sequence: 0,
    })
}

fn task(name: &str) -> TaskId {
    TaskId::new(name).expect("a task id")
}

fn launched(name: &str) -> AgentRecord {
    AgentRecord::TaskLaunched {
        framework: framework(),
        executor: ExecutorId::new(name).expect("an executor id"),
        task: task(name),
        resources: Resources::parse("cpus:1;mem:128").expect("resources"),
        command: TaskCommand::new("sleep 600").expect("a command"),
    }
}

fn update(name: &str, state: TaskState, id: u64) -> AgentRecord {
    AgentRecord::Update {
        framework: framework(),
        task: task(name),
        update: UpdateCheckpoint {
            state,
            reason: None,
            update: UpdateId(id),
        },
    }
}

fn acknowledged(name: &str, id: u64) -> AgentRecord {
    AgentRecord::Acknowledged {
        framework: framework(),
        task: task(name),
        update: UpdateId(id),
    }
}

const BOOT_ID: &str = "boot-1";

/// The agent as it stands before the procedure: registered, task `web-1` RUNNING, in a
/// compacted store (generation 1) whose log ends in the torn tail of an earlier crash.
fn agent_before() -> Vec<AgentRecord> {
    vec![
        AgentRecord::Booted(BootId::new(BOOT_ID).expect("a boot id")),
        AgentRecord::TermSeen(Term(1)),
        AgentRecord::Registered(AgentId(AssignedId {
            term: Term(1),
            sequence: 0,
        })),
        launched("web-1"),
        update("web-1", TaskState::Starting, 0),
        acknowledged("web-1", 0),
        update("web-1", TaskState::Running, 1),
    ]
}

/// Boots the real agent machine from `durable`, as a restarted agent process does.
fn boot_agent(durable: &AgentDurable) -> Agent {
    let config = AgentConfig::new(
        vec![Address::new("127.0.0.1:5050").expect("an address")],
        Address::new("127.0.0.1:5051").expect("an address"),
        AgentInfo {
            hostname: Name::new("host").expect("a name"),
            resources: Resources::parse("cpus:4;mem:4096").expect("resources"),
        },
        BootId::new(BOOT_ID).expect("a boot id"),
    )
    .expect("a valid configuration");
    let mut outbox = Outbox::new();
    <Agent as Machine>::boot(&config, durable, &mut outbox)
        .unwrap_or_else(|error| panic!("the agent boots from its checkpoint: {error}"))
}

/// A3 across crashes of the checkpoint itself: while the agent records a second task,
/// acknowledgements and a compaction, a crash after any file operation, whatever the page
/// cache kept, leaves a checkpoint that recovers to a prefix of its records, and the agent
/// booted from it still knows its checkpointed task `web-1` as RUNNING. Recovery itself (a
/// torn tail to truncate) is among the crash points.
#[test]
fn an_agent_checkpoint_never_forgets_a_checkpointed_running_task() {
    let images = at_every_crash_point(
        "crash-agent",
        |directory| {
            let before = agent_before();
            let (mut store, _) =
                Store::<AgentRecord, AgentDurable>::open(directory, Agent::apply).expect("open");
            let (first, last) = before.split_at(4);
            first
                .iter()
                .for_each(|record| store.append(record).expect("append"));
            store.sync().expect("sync");
            store.compact(&fold(first, Agent::apply)).expect("compact");
            last.iter()
                .for_each(|record| store.append(record).expect("append"));
            store.sync().expect("sync");
            drop(store);
            let log = directory.join("log-00000000000000000001");
            let mut bytes = fs::read(&log).expect("read the log");
            bytes.extend_from_slice(&[0, 0, 0, 40, 1, 2]); // a header cut short
            fs::write(&log, bytes).expect("leave a torn tail");
            Appended::new(
                before,
                vec![
                    launched("web-2"),
                    update("web-2", TaskState::Starting, 2),
                    acknowledged("web-1", 1),
                    update("web-2", TaskState::Running, 3),
                    acknowledged("web-2", 2),
                ],
            )
        },
        |file_system, directory, appended| {
            let (mut store, _) = Store::<AgentRecord, AgentDurable>::open_with(
                file_system,
                directory,
                Agent::apply,
            )?;
            append_and_sync(&mut store, appended, 2)?;
            append_and_sync(&mut store, appended, 2)?;
            let all: Vec<AgentRecord> = appended
                .before
                .iter()
                .chain(&appended.records[..4])
                .cloned()
                .collect();
            store.compact(&fold(&all, Agent::apply))?;
            append_and_sync(&mut store, appended, 1)
        },
        |directory, appended, crash| {
            let (kept, recovered) = recover_a_prefix(
                directory,
                appended,
                Agent::apply,
                &acknowledged("web-2", 3),
                durable_count(appended, crash),
                &crash,
            );
            let agent = boot_agent(&recovered);
            let web_1 = agent
                .durable()
                .tasks
                .get(&(framework(), task("web-1")))
                .unwrap_or_else(|| panic!("{crash:?}: web-1 is forgotten"));
            assert_eq!(web_1.state, TaskState::Running, "{crash:?}");
            let web_2 = agent.durable().tasks.get(&(framework(), task("web-2")));
            assert_eq!(web_2.is_some(), kept >= 1, "{crash:?}: {kept} kept");
        },
    );
    assert!(images > 100, "{images} images");
}

fn entry(term: u64) -> LogEntry {
    LogEntry {
        term: Term(term),
        entry: RegistryEntry::Noop,
    }
}

fn hard_state(term: u64, voted_for: Option<u8>) -> MasterRecord {
    MasterRecord::HardState {
        term: Term(term),
        voted_for: voted_for.map(MasterId),
    }
}

fn entries(from: u64, terms: &[u64]) -> MasterRecord {
    MasterRecord::Entries {
        from: LogIndex(from),
        entries: terms.iter().copied().map(entry).collect(),
    }
}

/// E1 and E2 across crashes of a master's storage: while a master votes in two new terms,
/// appends entries of each and compacts its store, a crash after any file operation,
/// whatever the page cache kept, recovers a prefix of its records. So a term and its vote
/// are never split or mixed with another term's, a synced vote (which may have been sent)
/// is never forgotten, and the log holds exactly the entries of the records kept. A
/// temporary snapshot left by an earlier crash is cleaned up on the way.
#[test]
fn a_master_recovers_its_term_vote_and_log_as_before_or_after_each_record() {
    let images = at_every_crash_point(
        "crash-master",
        |directory| {
            let before = vec![hard_state(1, Some(1)), entries(1, &[1])];
            let (mut store, _) =
                Store::<MasterRecord, MasterDurable>::open(directory, Master::apply).expect("open");
            before
                .iter()
                .for_each(|record| store.append(record).expect("append"));
            store.sync().expect("sync");
            drop(store);
            let temporary = format!("snapshot-00000000000000000001{TEMPORARY_SUFFIX}");
            fs::write(directory.join(temporary), b"half a snapshot").expect("write");
            Appended::new(
                before,
                vec![
                    hard_state(2, Some(2)),
                    entries(2, &[2, 2]),
                    hard_state(3, None),
                    hard_state(3, Some(3)),
                    entries(4, &[3]),
                ],
            )
        },
        |file_system, directory, appended| {
            let (mut store, _) = Store::<MasterRecord, MasterDurable>::open_with(
                file_system,
                directory,
                Master::apply,
            )?;
            append_and_sync(&mut store, appended, 2)?;
            let all: Vec<MasterRecord> = appended
                .before
                .iter()
                .chain(&appended.records[..2])
                .cloned()
                .collect();
            store.compact(&fold(&all, Master::apply))?;
            append_and_sync(&mut store, appended, 1)?;
            append_and_sync(&mut store, appended, 2)
        },
        |directory, appended, crash| {
            let (kept, recovered) = recover_a_prefix(
                directory,
                appended,
                Master::apply,
                &hard_state(4, None),
                durable_count(appended, crash),
                &crash,
            );
            // The prefix, spelt out: each term with its own vote and entries.
            let expected = [
                (1, Some(1), 1),
                (2, Some(2), 1),
                (2, Some(2), 3),
                (3, None, 3),
                (3, Some(3), 3),
                (3, Some(3), 4),
            ];
            let (term, vote, last_index) = expected[kept];
            assert_eq!(
                (
                    recovered.term,
                    recovered.voted_for,
                    recovered.log.last_index()
                ),
                (Term(term), vote.map(MasterId), LogIndex(last_index)),
                "{crash:?}"
            );
            assert!(
                files(directory)
                    .iter()
                    .all(|(name, _)| !name.ends_with(TEMPORARY_SUFFIX)),
                "{crash:?}: a leftover temporary snapshot is removed at recovery"
            );
        },
    );
    assert!(images > 100, "{images} images");
}

/// The log's own torn writes: three records written in one `write`, cut anywhere, recover
/// as the whole records before the cut. Complements the page cache's half-torn writes with
/// every cut point of the unsynced bytes.
#[test]
fn a_record_log_cut_anywhere_in_an_unsynced_write_recovers_the_whole_records_before_it() {
    let directory = TestDirectory::new("crash-cut");
    let before = vec![hard_state(1, Some(1))];
    let records = vec![
        hard_state(2, Some(2)),
        entries(1, &[2, 2]),
        hard_state(3, None),
    ];
    let (mut store, _) =
        Store::<MasterRecord, MasterDurable>::open(directory.path(), Master::apply).expect("open");
    store.append(&before[0]).expect("append");
    store.sync().expect("sync");
    drop(store);
    let log = directory.path().join("log-00000000000000000000");
    let durable = fs::read(&log).expect("read the log");
    let (mut store, _) =
        Store::<MasterRecord, MasterDurable>::open(directory.path(), Master::apply).expect("open");
    records
        .iter()
        .for_each(|record| store.append(record).expect("append"));
    store.sync().expect("sync");
    drop(store);
    let written = fs::read(&log).expect("read the log");
    assert!(written.len() > durable.len() + 3 * RECORD_HEADER_LENGTH);

    let appended = Appended::new(before, records);
    for cut in durable.len()..=written.len() {
        fs::write(&log, &written[..cut]).expect("cut the log");
        let case = format!("cut at byte {cut}");
        let (kept, _) = recover_a_prefix(
            directory.path(),
            &appended,
            Master::apply,
            &hard_state(9, None),
            0,
            &case,
        );
        let whole_records: usize = {
            let mut offset = durable.len();
            let mut count = 0;
            while offset + RECORD_HEADER_LENGTH <= cut {
                let header: [u8; 4] = written[offset..offset + 4].try_into().expect("four bytes");
                let length = usize::try_from(u32::from_be_bytes(header)).expect("a length");
                if offset + RECORD_HEADER_LENGTH + length > cut {
                    break;
                }
                offset += RECORD_HEADER_LENGTH + length;
                count += 1;
            }
            count
        };
        assert_eq!(kept, whole_records, "cut at byte {cut}");
    }
}

/// The model would catch a missing fsync: a write-then-rename without syncing the data first
/// loses the checkpoint to an empty file in one of the images `at_every_crash_point` visits.
/// Keeps the harness honest, the same way a seeded bug keeps a model checker honest.
#[test]
fn the_harness_catches_a_rename_without_an_fsync_first() {
    let broken_atomic_write = |file_system: &dyn FileSystem, directory: &Path, bytes: &[u8]| {
        let temporary = directory.join("checkpoint.tmp");
        let target = directory.join("checkpoint");
        let io = |operation, error| StorageError::Io {
            operation,
            path: target.clone(),
            error,
        };
        let mut file = file_system
            .create(&temporary)
            .map_err(|error| io(berth_node::storage::Operation::Create, error))?;
        file_system
            .write(&mut file, &temporary, bytes)
            .map_err(|error| io(berth_node::storage::Operation::Write, error))?;
        drop(file);
        file_system
            .rename(&temporary, &target)
            .map_err(|error| io(berth_node::storage::Operation::Rename, error))?;
        file_system
            .sync_directory(directory)
            .map_err(|error| io(berth_node::storage::Operation::SyncDirectory, error))
    };
    let empty_images = Cell::new(0);
    at_every_crash_point(
        "crash-seeded-bug",
        |directory| fs::write(directory.join("checkpoint"), b"old").expect("write"),
        |file_system, directory, ()| broken_atomic_write(&*file_system, directory, b"new"),
        |directory, (), _crash| {
            if fs::read(directory.join("checkpoint")).is_ok_and(|data| data.is_empty()) {
                empty_images.set(empty_images.get() + 1);
            }
        },
    );
    assert!(
        empty_images.get() > 0,
        "some crash image leaves the checkpoint empty"
    );
}
