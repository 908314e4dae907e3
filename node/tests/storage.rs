//! Storage: record log recovery, snapshots and compaction, and what failures leave on disk.

use std::fs;
use std::io;
use std::path::Path;
use std::sync::Arc;

use berth_node::storage::{
    Fault, FaultTiming, FaultyFileSystem, LogCorruption, Operation, RECORD_HEADER_LENGTH,
    RECORD_LENGTH_MAX, RealFileSystem, RecordLog, SnapshotCorruption, StorageError, Store,
    atomic_write_file, atomic_write_file_with,
};
use serde::{Deserialize, Serialize};

mod common;
use common::TestDirectory;

/// A record of a toy machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Record {
    Add(u64),
    Note(String),
}

/// The toy machine's durable state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Durable {
    sum: u64,
    notes: Vec<String>,
    records: u64,
}

/// The toy machine's `apply`.
fn apply(durable: &mut Durable, record: &Record) {
    durable.records += 1;
    match record {
        Record::Add(amount) => durable.sum += amount,
        Record::Note(text) => durable.notes.push(text.clone()),
    }
}

fn records(count: u64) -> Vec<Record> {
    (0..count)
        .map(|index| {
            if index % 3 == 0 {
                Record::Note(format!("note {index}"))
            } else {
                Record::Add(index)
            }
        })
        .collect()
}

fn fold(records: &[Record]) -> Durable {
    let mut durable = Durable::default();
    records
        .iter()
        .for_each(|record| apply(&mut durable, record));
    durable
}

fn open(directory: &Path) -> (Store<Record, Durable>, Durable) {
    Store::open(directory, apply).expect("open the store")
}

fn append_all(store: &mut Store<Record, Durable>, records: &[Record]) {
    for record in records {
        store.append(record).expect("append");
    }
    store.sync().expect("sync");
}

const LOG_0: &str = "log-00000000000000000000";
const LOG_1: &str = "log-00000000000000000001";
const SNAPSHOT_1: &str = "snapshot-00000000000000000001";

/// Writes `payloads` as a record log at `path` and returns the offset of each record.
fn write_log(path: &Path, payloads: &[&[u8]]) -> Vec<usize> {
    let (mut log, existing) = RecordLog::open(Arc::new(RealFileSystem), path).expect("open log");
    assert!(existing.is_empty());
    let mut offsets = Vec::new();
    let mut offset = 0;
    for payload in payloads {
        offsets.push(offset);
        offset += RECORD_HEADER_LENGTH + payload.len();
        log.append(payload).expect("append");
    }
    log.sync().expect("sync");
    offsets
}

fn append_bytes(path: &Path, bytes: &[u8]) {
    let mut contents = fs::read(path).expect("read the log");
    contents.extend_from_slice(bytes);
    fs::write(path, contents).expect("write the log");
}

#[test]
fn records_round_trip_through_reopen() {
    let directory = TestDirectory::new("round-trip");
    let (mut store, durable) = open(directory.path());
    assert_eq!(durable, Durable::default());
    let written = records(10);
    append_all(&mut store, &written);
    drop(store);

    let (_store, durable) = open(directory.path());
    assert_eq!(durable, fold(&written));
    assert_eq!(directory.names(), [LOG_0]);
}

#[test]
fn records_not_synced_are_not_written() {
    let directory = TestDirectory::new("unsynced");
    let (mut store, _) = open(directory.path());
    append_all(&mut store, &records(2));
    store.append(&Record::Add(1000)).expect("append");
    assert!(store.log_length() > 0);
    drop(store);

    let (_store, durable) = open(directory.path());
    assert_eq!(durable, fold(&records(2)));
}

#[test]
fn a_torn_tail_is_truncated_and_later_appends_work() {
    // Each kind of torn tail: part of a header, part of a payload, a final record with a bad
    // checksum, and zero bytes left by a crash that extended the file.
    let mut bad_last_record = Vec::new();
    bad_last_record.extend_from_slice(&3u32.to_be_bytes());
    bad_last_record.extend_from_slice(&0xdead_beef_u32.to_be_bytes());
    bad_last_record.extend_from_slice(b"abc");
    let mut incomplete_payload = Vec::new();
    incomplete_payload.extend_from_slice(&100u32.to_be_bytes());
    incomplete_payload.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
    let tails: [&[u8]; 4] = [&[0, 0, 0], &incomplete_payload, &bad_last_record, &[0; 64]];
    for tail in tails {
        let directory = TestDirectory::new("torn-tail");
        let (mut store, _) = open(directory.path());
        let first = records(4);
        append_all(&mut store, &first);
        drop(store);
        let log = directory.path().join(LOG_0);
        let length = fs::metadata(&log).expect("log metadata").len();
        append_bytes(&log, tail);

        let (mut store, durable) = open(directory.path());
        assert_eq!(durable, fold(&first), "tail {tail:?}");
        assert_eq!(fs::metadata(&log).expect("log metadata").len(), length);
        append_all(&mut store, &[Record::Add(7)]);
        drop(store);

        let (_store, durable) = open(directory.path());
        let mut all = first.clone();
        all.push(Record::Add(7));
        assert_eq!(durable, fold(&all), "tail {tail:?}");
    }
}

#[test]
fn corruption_in_the_middle_names_the_file_and_offset() {
    let directory = TestDirectory::new("corrupt-middle");
    let path = directory.path().join("records");
    let offsets = write_log(&path, &[b"first", b"second", b"third"]);
    let mut contents = fs::read(&path).expect("read the log");
    contents[offsets[1] + RECORD_HEADER_LENGTH] ^= 0x01;
    fs::write(&path, &contents).expect("damage the log");

    let error = RecordLog::open(Arc::new(RealFileSystem), &path).expect_err("corrupt");
    match &error {
        StorageError::CorruptLog {
            path: error_path,
            offset,
            corruption: LogCorruption::Checksum { .. },
        } => {
            assert_eq!(error_path, &path);
            assert_eq!(*offset, offsets[1] as u64);
        }
        other => panic!("expected a checksum error, got {other:?}"),
    }
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(
        message.contains(&format!("byte {}", offsets[1])),
        "{message}"
    );
    assert_eq!(
        fs::read(&path).expect("read the log"),
        contents,
        "unchanged"
    );
}

#[test]
fn corruption_in_a_store_log_stops_open() {
    let directory = TestDirectory::new("corrupt-store");
    let (mut store, _) = open(directory.path());
    append_all(&mut store, &records(3));
    drop(store);
    let log = directory.path().join(LOG_0);
    let mut contents = fs::read(&log).expect("read the log");
    contents[RECORD_HEADER_LENGTH] ^= 0xff;
    fs::write(&log, &contents).expect("damage the log");

    let error = Store::<Record, Durable>::open(directory.path(), apply).expect_err("corrupt");
    assert!(
        matches!(error, StorageError::CorruptLog { offset: 0, .. }),
        "{error:?}"
    );
}

#[test]
fn an_oversized_length_header_is_corruption() {
    let directory = TestDirectory::new("oversized");
    let path = directory.path().join("records");
    let offsets = write_log(&path, &[b"good"]);
    let next = offsets[0] + RECORD_HEADER_LENGTH + 4;
    // Followed by more data, and alone at the end of the file.
    for trailing in [&[7u8; 32][..], &[][..]] {
        let mut header = Vec::new();
        header.extend_from_slice(&u32::MAX.to_be_bytes());
        header.extend_from_slice(&0u32.to_be_bytes());
        header.extend_from_slice(trailing);
        let mut contents = fs::read(&path).expect("read the log");
        contents.truncate(next);
        contents.extend_from_slice(&header);
        fs::write(&path, &contents).expect("write the log");

        let error = RecordLog::open(Arc::new(RealFileSystem), &path).expect_err("oversized");
        match error {
            StorageError::CorruptLog {
                offset,
                corruption: LogCorruption::LengthTooLarge { length },
                ..
            } => {
                assert_eq!(offset, next as u64);
                assert_eq!(length, u32::MAX);
            }
            other => panic!("expected an oversized length, got {other:?}"),
        }
    }
}

#[test]
fn appending_an_oversized_record_is_refused() {
    let directory = TestDirectory::new("append-oversized");
    let (mut log, _) = RecordLog::open(Arc::new(RealFileSystem), &directory.path().join("records"))
        .expect("open log");
    let error = log
        .append(&vec![0; RECORD_LENGTH_MAX + 1])
        .expect_err("too long");
    assert!(
        matches!(error, StorageError::RecordTooLong { .. }),
        "{error}"
    );
    // Not fatal: the log still works.
    log.append(b"fine").expect("append");
    log.sync().expect("sync");
}

#[test]
fn a_corrupt_snapshot_is_an_error_and_changes_nothing() {
    let damages: [(&str, fn(&mut Vec<u8>)); 3] = [
        ("flipped payload byte", |bytes| {
            let last = bytes.len() - 1;
            bytes[last] ^= 0x40;
        }),
        ("bad magic", |bytes| bytes[0] = b'X'),
        ("truncated", |bytes| bytes.truncate(10)),
    ];
    for (damage_name, damage) in damages {
        let directory = TestDirectory::new("corrupt-snapshot");
        let (mut store, _) = open(directory.path());
        let written = records(5);
        append_all(&mut store, &written);
        store.compact(&fold(&written)).expect("compact");
        drop(store);
        let snapshot = directory.path().join(SNAPSHOT_1);
        let mut bytes = fs::read(&snapshot).expect("read the snapshot");
        damage(&mut bytes);
        fs::write(&snapshot, &bytes).expect("damage the snapshot");
        let before = directory.contents();

        let error = Store::<Record, Durable>::open(directory.path(), apply).expect_err("corrupt");
        let StorageError::CorruptSnapshot { path, corruption } = &error else {
            panic!("{damage_name}: expected a corrupt snapshot, got {error:?}");
        };
        assert_eq!(path, &snapshot, "{damage_name}");
        match damage_name {
            "bad magic" => assert_eq!(corruption, &SnapshotCorruption::BadMagic),
            "truncated" => assert_eq!(corruption, &SnapshotCorruption::Truncated { length: 10 }),
            _ => assert!(
                matches!(corruption, SnapshotCorruption::Checksum { .. }),
                "{corruption}"
            ),
        }
        assert!(error.to_string().contains(SNAPSHOT_1), "{error}");
        assert_eq!(directory.contents(), before, "{damage_name}: unchanged");
    }
}

#[test]
fn compaction_and_reopen_give_the_same_state() {
    let directory = TestDirectory::new("compaction");
    let (mut store, _) = open(directory.path());
    let mut all = records(20);
    append_all(&mut store, &all);
    store.compact(&fold(&all)).expect("compact");
    assert_eq!(store.generation(), 1);
    assert_eq!(store.log_length(), 0);
    assert_eq!(directory.names(), [LOG_1, SNAPSHOT_1]);

    let more = records(7);
    append_all(&mut store, &more);
    all.extend(more);
    drop(store);

    let (mut store, durable) = open(directory.path());
    assert_eq!(durable, fold(&all));
    assert_eq!(store.generation(), 1);

    // A second compaction replaces the first generation's files.
    store.compact(&durable).expect("compact again");
    append_all(&mut store, &[Record::Note("last".to_string())]);
    all.push(Record::Note("last".to_string()));
    drop(store);
    assert_eq!(
        directory.names(),
        ["log-00000000000000000002", "snapshot-00000000000000000002"]
    );
    let (store, durable) = open(directory.path());
    assert_eq!(durable, fold(&all));
    assert_eq!(store.generation(), 2);
}

#[test]
fn compaction_covers_records_not_yet_synced() {
    let directory = TestDirectory::new("compaction-pending");
    let (mut store, _) = open(directory.path());
    let written = records(4);
    for record in &written {
        store.append(record).expect("append");
    }
    store.compact(&fold(&written)).expect("compact");
    drop(store);
    let (_store, durable) = open(directory.path());
    assert_eq!(durable, fold(&written));
}

#[test]
fn a_crash_between_snapshot_and_log_reset_recovers() {
    let directory = TestDirectory::new("crash-after-snapshot");
    let file_system = Arc::new(FaultyFileSystem::new());
    let (mut store, _) =
        Store::<Record, Durable>::open_with(file_system.clone(), directory.path(), apply)
            .expect("open");
    let mut all = records(6);
    append_all(&mut store, &all);
    // The snapshot is renamed into place and its directory synced; creating the new log fails.
    file_system.arm(Fault {
        operation: Some(Operation::OpenAppend),
        skip: 0,
        timing: FaultTiming::Before,
        kind: io::ErrorKind::Other,
    });
    let error = store.compact(&fold(&all)).expect_err("injected crash");
    assert!(file_system.fired());
    assert!(
        matches!(
            error,
            StorageError::Io {
                operation: Operation::OpenAppend,
                ..
            }
        ),
        "{error:?}"
    );
    // A store that failed refuses to go on.
    assert!(matches!(
        store.append(&Record::Add(1)),
        Err(StorageError::Failed { .. })
    ));
    drop(store);
    assert_eq!(directory.names(), [LOG_0, SNAPSHOT_1]);

    // Recovery uses the new snapshot and never replays the old log on top of it.
    let (mut store, durable) = open(directory.path());
    assert_eq!(durable, fold(&all));
    assert_eq!(store.generation(), 1);
    assert_eq!(directory.names(), [LOG_1, SNAPSHOT_1]);
    append_all(&mut store, &[Record::Add(99)]);
    all.push(Record::Add(99));
    drop(store);
    let (_store, durable) = open(directory.path());
    assert_eq!(durable, fold(&all));
}

#[test]
fn a_crash_at_any_step_of_compaction_recovers() {
    let written = records(9);
    // Count the file operations of one compaction.
    let steps = {
        let directory = TestDirectory::new("compaction-steps");
        let file_system = Arc::new(FaultyFileSystem::new());
        let (mut store, _) =
            Store::<Record, Durable>::open_with(file_system.clone(), directory.path(), apply)
                .expect("open");
        append_all(&mut store, &written);
        let before = file_system.operation_count();
        store.compact(&fold(&written)).expect("compact");
        file_system.operation_count() - before
    };
    assert!(steps >= 6, "a compaction takes {steps} operations");
    for step in 0..steps {
        for timing in [FaultTiming::Before, FaultTiming::After] {
            let directory = TestDirectory::new("compaction-crash");
            let file_system = Arc::new(FaultyFileSystem::new());
            let (mut store, _) =
                Store::<Record, Durable>::open_with(file_system.clone(), directory.path(), apply)
                    .expect("open");
            append_all(&mut store, &written);
            file_system.arm(Fault {
                operation: None,
                skip: step,
                timing,
                kind: io::ErrorKind::Other,
            });
            let _ = store.compact(&fold(&written));
            assert!(file_system.fired(), "step {step} {timing:?}");
            drop(store);

            let (mut store, durable) = open(directory.path());
            assert_eq!(durable, fold(&written), "step {step} {timing:?}");
            append_all(&mut store, &[Record::Add(5)]);
            drop(store);
            let (_store, durable) = open(directory.path());
            let mut all = written.clone();
            all.push(Record::Add(5));
            assert_eq!(durable, fold(&all), "step {step} {timing:?}");
        }
    }
}

#[test]
fn a_failed_fsync_is_returned_and_fatal() {
    let directory = TestDirectory::new("failed-fsync");
    let file_system = Arc::new(FaultyFileSystem::new());
    let (mut store, _) =
        Store::<Record, Durable>::open_with(file_system.clone(), directory.path(), apply)
            .expect("open");
    file_system.arm(Fault {
        operation: Some(Operation::SyncFile),
        skip: 0,
        timing: FaultTiming::Before,
        kind: io::ErrorKind::Other,
    });
    store.append(&Record::Add(1)).expect("append");
    let error = store.sync().expect_err("injected fsync failure");
    match &error {
        StorageError::Io {
            operation: Operation::SyncFile,
            path,
            ..
        } => assert_eq!(path, &directory.path().join(LOG_0)),
        other => panic!("expected a sync error, got {other:?}"),
    }
    assert!(error.to_string().contains(LOG_0), "{error}");
    // Never retried: every later call fails.
    assert!(matches!(store.sync(), Err(StorageError::Failed { .. })));
    assert!(matches!(
        store.append(&Record::Add(2)),
        Err(StorageError::Failed { .. })
    ));
}

#[test]
fn a_full_disk_while_syncing_leaves_the_log_as_it_was() {
    let directory = TestDirectory::new("full-disk-log");
    let file_system = Arc::new(FaultyFileSystem::new());
    let (mut store, _) =
        Store::<Record, Durable>::open_with(file_system.clone(), directory.path(), apply)
            .expect("open");
    let written = records(3);
    append_all(&mut store, &written);
    let before = directory.contents();
    // The write reaches the file, then reports no space left (a partial write).
    file_system.arm(Fault {
        operation: Some(Operation::Write),
        skip: 0,
        timing: FaultTiming::After,
        kind: io::ErrorKind::StorageFull,
    });
    store.append(&Record::Add(4)).expect("append");
    let error = store.sync().expect_err("disk full");
    match &error {
        StorageError::Io {
            operation: Operation::Write,
            error,
            ..
        } => assert_eq!(error.kind(), io::ErrorKind::StorageFull),
        other => panic!("expected a write error, got {other:?}"),
    }
    drop(store);
    assert_eq!(directory.contents(), before);
    let (_store, durable) = open(directory.path());
    assert_eq!(durable, fold(&written));
}

#[test]
fn a_full_disk_while_compacting_changes_nothing() {
    let directory = TestDirectory::new("full-disk-compaction");
    let file_system = Arc::new(FaultyFileSystem::new());
    let (mut store, _) =
        Store::<Record, Durable>::open_with(file_system.clone(), directory.path(), apply)
            .expect("open");
    let written = records(5);
    append_all(&mut store, &written);
    let before = directory.contents();
    file_system.arm(Fault {
        operation: Some(Operation::Write),
        skip: 0,
        timing: FaultTiming::Before,
        kind: io::ErrorKind::StorageFull,
    });
    let error = store.compact(&fold(&written)).expect_err("disk full");
    assert!(
        matches!(
            error,
            StorageError::Io {
                operation: Operation::Write,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains(".tmp"), "{error}");
    drop(store);
    assert_eq!(directory.contents(), before, "no temporary file is left");
    let (store, durable) = open(directory.path());
    assert_eq!(durable, fold(&written));
    assert_eq!(store.generation(), 0);
}

#[test]
fn a_missing_directory_is_an_error_and_is_not_created() {
    let directory = TestDirectory::new("missing");
    let missing = directory.path().join("does-not-exist");
    let error = Store::<Record, Durable>::open(&missing, apply).expect_err("missing");
    match &error {
        StorageError::Directory { path, error } => {
            assert_eq!(path, &missing);
            assert_eq!(error.kind(), io::ErrorKind::NotFound);
        }
        other => panic!("expected a directory error, got {other:?}"),
    }
    assert!(error.to_string().contains("does-not-exist"), "{error}");
    assert!(!missing.exists());
}

#[test]
fn a_file_in_place_of_the_directory_is_an_error() {
    let directory = TestDirectory::new("not-a-directory");
    let file = directory.path().join("plain-file");
    fs::write(&file, b"not a directory").expect("write a file");
    let error = Store::<Record, Durable>::open(&file, apply).expect_err("not a directory");
    assert!(
        matches!(&error, StorageError::Directory { path, .. } if path == &file),
        "{error:?}"
    );
    assert_eq!(fs::read(&file).expect("read"), b"not a directory");
}

#[test]
fn a_log_without_its_snapshot_is_an_error() {
    let directory = TestDirectory::new("missing-snapshot");
    let (mut store, _) = open(directory.path());
    append_all(&mut store, &records(2));
    store.compact(&fold(&records(2))).expect("compact");
    drop(store);
    fs::remove_file(directory.path().join(SNAPSHOT_1)).expect("remove the snapshot");
    let error = Store::<Record, Durable>::open(directory.path(), apply).expect_err("orphan log");
    assert!(
        matches!(error, StorageError::MissingSnapshot { generation: 1, .. }),
        "{error:?}"
    );
}

#[test]
fn a_record_of_the_wrong_type_is_an_error() {
    let directory = TestDirectory::new("undecodable");
    // Variant 9 of `Record` does not exist.
    write_log(&directory.path().join(LOG_0), &[&[0, 5], &[9, 9, 9]]);
    let error = Store::<Record, Durable>::open(directory.path(), apply).expect_err("undecodable");
    assert!(
        matches!(error, StorageError::UndecodableRecord { index: 1, .. }),
        "{error:?}"
    );
}

#[test]
fn atomic_write_replaces_a_file() {
    let directory = TestDirectory::new("atomic-write");
    atomic_write_file(directory.path(), "checkpoint", b"one").expect("write");
    atomic_write_file(directory.path(), "checkpoint", b"two").expect("replace");
    assert_eq!(
        directory.contents(),
        [("checkpoint".to_string(), b"two".to_vec())]
    );

    let error = atomic_write_file(directory.path(), "../escape", b"x").expect_err("not a name");
    assert!(
        matches!(error, StorageError::InvalidFileName { .. }),
        "{error}"
    );
}

#[test]
fn a_failed_atomic_write_keeps_the_old_file() {
    for operation in [Operation::Write, Operation::SyncFile, Operation::Rename] {
        let directory = TestDirectory::new("atomic-write-failure");
        atomic_write_file(directory.path(), "checkpoint", b"old").expect("write");
        let file_system = FaultyFileSystem::new();
        file_system.arm(Fault {
            operation: Some(operation),
            skip: 0,
            timing: FaultTiming::Before,
            kind: io::ErrorKind::StorageFull,
        });
        let error = atomic_write_file_with(&file_system, directory.path(), "checkpoint", b"new")
            .expect_err("injected failure");
        assert!(
            matches!(&error, StorageError::Io { operation: failed, .. } if *failed == operation),
            "{error:?}"
        );
        assert_eq!(
            directory.contents(),
            [("checkpoint".to_string(), b"old".to_vec())],
            "{operation:?}"
        );
    }
    let directory = TestDirectory::new("atomic-write-missing");
    let error = atomic_write_file(&directory.path().join("missing"), "checkpoint", b"x")
        .expect_err("missing directory");
    assert!(error.to_string().contains("missing"), "{error}");
}
