//! A machine's durable state on disk: [`Store`].

use std::collections::BTreeSet;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{
    FileSystem, Operation, RealFileSystem, RecordLog, SnapshotCorruption, StorageError,
    TEMPORARY_SUFFIX, atomic_write_file_with,
};

/// The first bytes of every snapshot file.
pub const SNAPSHOT_MAGIC: [u8; 4] = *b"BSNP";

/// Bytes in a snapshot header: magic, checksum, payload length.
const SNAPSHOT_HEADER_LENGTH: usize = 16;
const SNAPSHOT_PREFIX: &str = "snapshot-";
const LOG_PREFIX: &str = "log-";

/// The durable state of one machine: records of type `R` folded into a state of type `D`.
///
/// # Files and generations
///
/// The store owns one directory. Each *generation* `g` has at most a snapshot file and a log
/// file, named with `g` in 20 decimal digits so that names sort like numbers:
///
/// * `snapshot-<g>` holds the durable state after every record of the generations before
///   `g` (generation 0 has no snapshot: its base is `D::default()`);
/// * `log-<g>` holds the records appended since that snapshot.
///
/// The state is the snapshot of the newest generation with its log folded in. A snapshot
/// file is `SNAPSHOT_MAGIC | crc32(payload): u32 BE | payload length: u64 BE | postcard(D)`,
/// written with [`atomic_write_file_with`](super::atomic_write_file_with).
///
/// # Compaction is crash-safe at every step
///
/// [`Store::compact`] moves from generation `g` to `g + 1`:
///
/// 1. write `snapshot-<g+1>` atomically (temporary file, fsync, rename, fsync directory);
/// 2. create the empty `log-<g+1>` and fsync the directory;
/// 3. remove `log-<g>` and `snapshot-<g>`.
///
/// A crash before the rename of step 1 leaves generation `g` newest: its snapshot and log
/// are intact, and the temporary file is removed at the next open. A crash after it makes
/// `g + 1` newest: its snapshot already holds every record of `log-<g>`, which is never
/// replayed again, and a missing `log-<g+1>` is created empty. So no record is lost or
/// replayed twice. [`Store::open`] removes the files of older generations, after making the
/// newest snapshot's name durable.
///
/// # Use
///
/// Typical use by a driver, with `M: Machine`:
///
/// ```no_run
/// # fn demo(directory: &std::path::Path) -> Result<(), berth_node::storage::StorageError> {
/// use berth_node::storage::Store;
///
/// fn apply(total: &mut u64, record: &u64) { *total += record; } // stands for `M::apply`
///
/// let (mut store, mut durable) = Store::<u64, u64>::open(directory, apply)?;
/// // For each `Command::Persist(record)` of a step:
/// store.append(&5)?;
/// apply(&mut durable, &5);
/// // Before any later command of the step (persist is a barrier):
/// store.sync()?;
/// // From time to time, when the log has grown:
/// store.compact(&durable)?;
/// # Ok(()) }
/// ```
///
/// Every error from [`append`](Store::append), [`sync`](Store::sync) or
/// [`compact`](Store::compact) (except [`StorageError::RecordTooLong`]) is fatal: stop the
/// process, never retry (see the [module documentation](super)).
#[derive(Debug)]
pub struct Store<R, D> {
    file_system: Arc<dyn FileSystem>,
    directory: PathBuf,
    generation: u64,
    log: RecordLog,
    failed: bool,
    types: PhantomData<fn(&R, &D)>,
}

impl<R, D> Store<R, D>
where
    R: Serialize + DeserializeOwned,
    D: Serialize + DeserializeOwned + Default,
{
    /// Opens the store in `directory` (which must exist) on the real file system and returns
    /// it with the durable state: the newest snapshot with its log's records folded in by
    /// `fold` (the machine's `apply`).
    pub fn open(directory: &Path, fold: fn(&mut D, &R)) -> Result<(Store<R, D>, D), StorageError> {
        Store::open_with(Arc::new(RealFileSystem), directory, fold)
    }

    /// [`open`](Store::open) on the given file system.
    ///
    /// A missing or unreadable directory, a corrupt snapshot, corruption in the log or an
    /// undecodable record is an error, and nothing on disk changes except the truncation of
    /// a torn tail of the log.
    pub fn open_with(
        file_system: Arc<dyn FileSystem>,
        directory: &Path,
        fold: fn(&mut D, &R),
    ) -> Result<(Store<R, D>, D), StorageError> {
        let files = StoreFiles::list(&*file_system, directory)?;
        let generation = files.snapshots.last().copied().unwrap_or(0);
        if let Some(&newest_log) = files.logs.last()
            && newest_log > generation
        {
            return Err(StorageError::MissingSnapshot {
                path: log_path(directory, newest_log),
                generation: newest_log,
            });
        }
        let mut durable = if files.snapshots.is_empty() {
            D::default()
        } else {
            read_snapshot(&*file_system, &snapshot_path(directory, generation))?
        };
        let log_path = log_path(directory, generation);
        let (log, records) = RecordLog::open(Arc::clone(&file_system), &log_path)?;
        for (index, payload) in records.iter().enumerate() {
            let record = decode::<R>(payload).map_err(|error| StorageError::UndecodableRecord {
                path: log_path.clone(),
                index,
                error,
            })?;
            fold(&mut durable, &record);
        }
        let store = Store {
            file_system,
            directory: directory.to_path_buf(),
            generation,
            log,
            failed: false,
            types: PhantomData,
        };
        store.remove_stale_files(&files)?;
        Ok((store, durable))
    }

    /// Buffers one record. It is durable only after [`sync`](Store::sync) returns.
    pub fn append(&mut self, record: &R) -> Result<(), StorageError> {
        self.check_not_failed()?;
        let payload =
            postcard::to_allocvec(record).map_err(|error| StorageError::Encode { error })?;
        self.log.append(&payload)
    }

    /// Makes every appended record durable. An error is fatal.
    pub fn sync(&mut self) -> Result<(), StorageError> {
        self.check_not_failed()?;
        self.log.sync()
    }

    /// Replaces the snapshot with `durable` and starts an empty log: generation `g` becomes
    /// `g + 1`. `durable` must be the fold of every record appended so far, synced or not;
    /// the new snapshot makes them all durable. Crash-safe at every step (see [`Store`]).
    /// An error is fatal; if the snapshot could not be
    /// written (a full disk), the old generation is left untouched.
    pub fn compact(&mut self, durable: &D) -> Result<(), StorageError> {
        self.check_not_failed()?;
        let next = self.generation + 1;
        let payload =
            postcard::to_allocvec(durable).map_err(|error| StorageError::Encode { error })?;
        self.failed = true; // Until the new generation is in place.
        atomic_write_file_with(
            &*self.file_system,
            &self.directory,
            &generation_name(SNAPSHOT_PREFIX, next),
            &encode_snapshot(&payload),
        )?;
        let (log, records) = RecordLog::open(
            Arc::clone(&self.file_system),
            &log_path(&self.directory, next),
        )?;
        debug_assert!(
            records.is_empty(),
            "no log exists for a generation newer than the newest snapshot"
        );
        let previous = self.generation;
        self.log = log;
        self.generation = next;
        self.failed = false;
        self.remove_file(&log_path(&self.directory, previous))?;
        if previous > 0 {
            self.remove_file(&snapshot_path(&self.directory, previous))?;
        }
        Ok(())
    }

    /// The current generation: how many compactions this directory has seen.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The current log's length in bytes, counting records not yet synced: what a driver
    /// compares with its threshold to decide when to [`compact`](Store::compact).
    pub fn log_length(&self) -> u64 {
        self.log.length()
    }

    /// The store's directory.
    pub fn directory(&self) -> &Path {
        &self.directory
    }

    fn check_not_failed(&self) -> Result<(), StorageError> {
        if self.failed {
            return Err(StorageError::Failed {
                path: self.directory.clone(),
            });
        }
        Ok(())
    }

    /// Removes what older generations and interrupted writes left behind. The newest
    /// snapshot's name is made durable first, so that a later crash cannot bring back an
    /// older generation whose log is gone.
    fn remove_stale_files(&self, files: &StoreFiles) -> Result<(), StorageError> {
        let stale_snapshots = files.snapshots.range(..self.generation);
        let stale_logs = files.logs.range(..self.generation);
        let stale: Vec<PathBuf> = stale_snapshots
            .map(|generation| snapshot_path(&self.directory, *generation))
            .chain(stale_logs.map(|generation| log_path(&self.directory, *generation)))
            .chain(
                files
                    .temporaries
                    .iter()
                    .map(|name| self.directory.join(name)),
            )
            .collect();
        if stale.is_empty() {
            return Ok(());
        }
        self.file_system
            .sync_directory(&self.directory)
            .map_err(|error| StorageError::io(Operation::SyncDirectory, &self.directory, error))?;
        stale.iter().try_for_each(|path| self.remove_file(path))
    }

    fn remove_file(&self, path: &Path) -> Result<(), StorageError> {
        match self.file_system.remove_file(path) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(StorageError::io(Operation::RemoveFile, path, error)),
        }
    }
}

/// The store's files found in its directory; other files are ignored.
#[derive(Debug, Default)]
struct StoreFiles {
    snapshots: BTreeSet<u64>,
    logs: BTreeSet<u64>,
    /// Names of temporary snapshot files left by an interrupted compaction.
    temporaries: Vec<String>,
}

impl StoreFiles {
    fn list(file_system: &dyn FileSystem, directory: &Path) -> Result<StoreFiles, StorageError> {
        let names =
            file_system
                .list_directory(directory)
                .map_err(|error| StorageError::Directory {
                    path: directory.to_path_buf(),
                    error,
                })?;
        let mut files = StoreFiles::default();
        for name in names {
            let Some(name) = name.to_str() else { continue };
            if name.starts_with(SNAPSHOT_PREFIX) && name.ends_with(TEMPORARY_SUFFIX) {
                files.temporaries.push(name.to_string());
            } else if let Some(generation) = parse_generation(name, SNAPSHOT_PREFIX) {
                files.snapshots.insert(generation);
            } else if let Some(generation) = parse_generation(name, LOG_PREFIX) {
                files.logs.insert(generation);
            }
        }
        Ok(files)
    }
}

fn generation_name(prefix: &str, generation: u64) -> String {
    format!("{prefix}{generation:020}")
}

fn parse_generation(name: &str, prefix: &str) -> Option<u64> {
    let digits = name.strip_prefix(prefix)?;
    if digits.len() != 20 || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn snapshot_path(directory: &Path, generation: u64) -> PathBuf {
    directory.join(generation_name(SNAPSHOT_PREFIX, generation))
}

fn log_path(directory: &Path, generation: u64) -> PathBuf {
    directory.join(generation_name(LOG_PREFIX, generation))
}

fn encode_snapshot(payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(SNAPSHOT_HEADER_LENGTH + payload.len());
    bytes.extend_from_slice(&SNAPSHOT_MAGIC);
    bytes.extend_from_slice(&crc32fast::hash(payload).to_be_bytes());
    bytes.extend_from_slice(
        &u64::try_from(payload.len())
            .unwrap_or(u64::MAX)
            .to_be_bytes(),
    );
    bytes.extend_from_slice(payload);
    bytes
}

fn read_snapshot<D: DeserializeOwned>(
    file_system: &dyn FileSystem,
    path: &Path,
) -> Result<D, StorageError> {
    let bytes = file_system
        .read(path)
        .map_err(|error| StorageError::io(Operation::Read, path, error))?;
    decode_snapshot(&bytes).map_err(|corruption| StorageError::CorruptSnapshot {
        path: path.to_path_buf(),
        corruption,
    })
}

fn decode_snapshot<D: DeserializeOwned>(bytes: &[u8]) -> Result<D, SnapshotCorruption> {
    let (header, payload) = bytes.split_first_chunk::<SNAPSHOT_HEADER_LENGTH>().ok_or(
        SnapshotCorruption::Truncated {
            length: bytes.len(),
        },
    )?;
    let (magic, rest) = header.split_at(SNAPSHOT_MAGIC.len());
    if magic != SNAPSHOT_MAGIC {
        return Err(SnapshotCorruption::BadMagic);
    }
    let stored = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
    let declared = u64::from_be_bytes([
        rest[4], rest[5], rest[6], rest[7], rest[8], rest[9], rest[10], rest[11],
    ]);
    let actual = u64::try_from(payload.len()).unwrap_or(u64::MAX);
    if declared != actual {
        return Err(SnapshotCorruption::LengthMismatch { declared, actual });
    }
    let computed = crc32fast::hash(payload);
    if computed != stored {
        return Err(SnapshotCorruption::Checksum { stored, computed });
    }
    decode(payload).map_err(SnapshotCorruption::Undecodable)
}

/// Decodes exactly one value: trailing bytes are an error (postcard's `from_bytes` would
/// accept them).
fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, postcard::Error> {
    match postcard::take_from_bytes(bytes)? {
        (value, []) => Ok(value),
        (_, _) => Err(postcard::Error::DeserializeBadEncoding),
    }
}
