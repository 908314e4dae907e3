//! Durable storage: atomic checkpoint files, an append-only record log, and a typed store that
//! folds records into a machine's durable state.
//!
//! The protocol persists small *records* (a vote, a status update); a role's durable state is
//! the fold of its records by `Machine::apply` (see `berth_protocol::Machine`). Storage keeps
//! that fold cheap to extend and safe to recover:
//!
//! ```text
//!   directory/
//!     snapshot-00000000000000000003   postcard(D) as of the start of generation 3
//!     log-00000000000000000003        records appended since that snapshot
//! ```
//!
//! * [`atomic_write_file`] replaces a file so that a crash leaves either the old or the new
//!   contents: write a temporary file in the same directory, fsync it, rename it over the
//!   target, fsync the directory.
//! * [`RecordLog`] is an append-only file of checksummed records. Opening it truncates a torn
//!   tail (the last write of a crashed process) and refuses damage anywhere else.
//! * [`Store`] puts both together for a record type `R` and a durable type `D`: it replays the
//!   latest snapshot plus its log at [`open`](Store::open), appends records, and
//!   [`compact`](Store::compact)s the log into a new snapshot.
//!
//! # Failures are fatal
//!
//! Every error from a write or an fsync must stop the process; it must never be retried. After
//! a failed fsync the kernel may have dropped the dirty pages and cleared the error, so a
//! second fsync can "succeed" without the data ever reaching the disk. The process restarts
//! and recovers from what is really on disk. To make a retry impossible by mistake, a
//! [`RecordLog`] or [`Store`] that saw a write or sync fail refuses every later call with
//! [`StorageError::Failed`].
//!
//! Storage is synchronous: the fsyncs are the point. A tokio driver calls it from a blocking
//! thread (`spawn_blocking` or `block_in_place`).
//!
//! A [`Store`] is never shared: the driver moves it to the blocking thread and takes it back,
//! so one thread at a time holds it, and the `Arc<dyn FileSystem>` it keeps points at a
//! [`RealFileSystem`] with no state of its own. Only the test file system,
//! [`FaultyFileSystem`], has shared state (its test and its store both reach it), and it takes
//! one lock for the whole of each operation. None of this needs a loom test
//! (RELIABILITY.md, "loom").
//!
//! # Testing crash points
//!
//! All file operations go through the [`FileSystem`] trait. [`FaultyFileSystem`] fails a
//! chosen operation before or after carrying it out, or cuts the power right after it; it
//! also keeps a model of the page cache, so that a crash can lose what was not yet synced
//! ([`AfterCrash`]). That is how the tests check that a crash or a full disk at any step
//! leaves a directory that recovers to the state before or after the step, never a mix.

#![warn(missing_docs)]

mod fault;
mod file_system;
mod record_log;
mod store;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

pub use fault::{AfterCrash, Fault, FaultTiming, FaultyFileSystem, UnsyncedData};
pub use file_system::{FileSystem, Operation, RealFileSystem};
pub use record_log::{RECORD_HEADER_LENGTH, RECORD_LENGTH_MAX, RecordLog};
pub use store::{SNAPSHOT_MAGIC, Store};

/// The suffix of the temporary file [`atomic_write_file`] writes before renaming it.
pub const TEMPORARY_SUFFIX: &str = ".tmp";

/// Replaces `directory/file_name` with `bytes` atomically and durably, on the real file
/// system. See [`atomic_write_file_with`].
pub fn atomic_write_file(
    directory: &Path,
    file_name: &str,
    bytes: &[u8],
) -> Result<(), StorageError> {
    atomic_write_file_with(&RealFileSystem, directory, file_name, bytes)
}

/// Replaces `directory/file_name` with `bytes` so that after a crash the file holds either
/// its old contents or all of `bytes`.
///
/// Steps: create `file_name` + [`TEMPORARY_SUFFIX`] in the same directory (a rename is only
/// atomic within one file system), write, fsync the file, rename it over the target, fsync
/// the directory (which makes the rename durable). If a step before the rename fails, the
/// temporary file is removed and the target is untouched. An error after the rename (the
/// directory fsync) leaves the new contents in place but not known to be durable: fatal like
/// every storage error.
pub fn atomic_write_file_with(
    file_system: &dyn FileSystem,
    directory: &Path,
    file_name: &str,
    bytes: &[u8],
) -> Result<(), StorageError> {
    if file_name.is_empty()
        || file_name.contains(std::path::is_separator)
        || file_name == "."
        || file_name == ".."
    {
        return Err(StorageError::InvalidFileName {
            name: file_name.to_string(),
        });
    }
    let target = directory.join(file_name);
    let temporary = directory.join(format!("{file_name}{TEMPORARY_SUFFIX}"));
    let written = write_and_rename(file_system, &temporary, &target, bytes);
    if written.is_err() {
        // Best effort: leave the directory as it was. The rename did not happen, so the
        // temporary file (if it was created) is the only change.
        let _ = file_system.remove_file(&temporary);
    }
    written?;
    file_system
        .sync_directory(directory)
        .map_err(|error| StorageError::io(Operation::SyncDirectory, directory, error))
}

fn write_and_rename(
    file_system: &dyn FileSystem,
    temporary: &Path,
    target: &Path,
    bytes: &[u8],
) -> Result<(), StorageError> {
    let mut file = file_system
        .create(temporary)
        .map_err(|error| StorageError::io(Operation::Create, temporary, error))?;
    file_system
        .write(&mut file, temporary, bytes)
        .map_err(|error| StorageError::io(Operation::Write, temporary, error))?;
    file_system
        .sync_file(&file, temporary)
        .map_err(|error| StorageError::io(Operation::SyncFile, temporary, error))?;
    drop(file);
    file_system
        .rename(temporary, target)
        .map_err(|error| StorageError::io(Operation::Rename, target, error))
}

/// Why storage failed. Each variant names the file or directory concerned.
///
/// [`Io`](StorageError::Io) and [`Failed`](StorageError::Failed) from a write or sync are
/// fatal: stop the process, never retry (see the [module documentation](self)). The
/// corruption variants stop the process at startup with a message an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The storage directory is missing, is not a directory, or cannot be read.
    #[error("storage directory {}: {error}", path.display())]
    Directory {
        /// The directory.
        path: PathBuf,
        /// What the operating system said.
        error: io::Error,
    },
    /// A file operation failed: no space left, an I/O error, a failed fsync.
    #[error("{operation} {}: {error}", path.display())]
    Io {
        /// The step that failed.
        operation: Operation,
        /// The file (or directory) it acted on.
        path: PathBuf,
        /// What the operating system said.
        error: io::Error,
    },
    /// A record of a log is damaged and more data follows it, so it is not a torn tail.
    #[error(
        "log {} is corrupt at byte {offset}: {corruption}; it was not written by a crash and \
         needs an operator (restore the directory or remove the node's state)",
        path.display()
    )]
    CorruptLog {
        /// The log file.
        path: PathBuf,
        /// Where the damaged record starts.
        offset: u64,
        /// What is wrong with it.
        corruption: LogCorruption,
    },
    /// A snapshot does not hold what was written.
    #[error("snapshot {} is corrupt: {corruption}", path.display())]
    CorruptSnapshot {
        /// The snapshot file.
        path: PathBuf,
        /// What is wrong with it.
        corruption: SnapshotCorruption,
    },
    /// A log exists whose snapshot is missing: records would be replayed on the wrong base.
    #[error(
        "log {} has no snapshot for its generation {generation}: files were removed from the \
         storage directory",
        path.display()
    )]
    MissingSnapshot {
        /// The orphaned log.
        path: PathBuf,
        /// Its generation.
        generation: u64,
    },
    /// A record passed its checksum but is not a valid record of the expected type (a file
    /// written by an incompatible version).
    #[error("record {index} of log {} does not decode: {error}", path.display())]
    UndecodableRecord {
        /// The log file.
        path: PathBuf,
        /// The record's position in the log, from 0.
        index: usize,
        /// What the decoder said.
        error: postcard::Error,
    },
    /// A record (or state) could not be encoded: a bug in its type, not a disk problem.
    #[error("a record or snapshot could not be encoded: {error}")]
    Encode {
        /// What the encoder said.
        error: postcard::Error,
    },
    /// A record to append is longer than [`RECORD_LENGTH_MAX`].
    #[error("a record of {length} bytes exceeds the maximum of {RECORD_LENGTH_MAX}")]
    RecordTooLong {
        /// Its length in bytes.
        length: usize,
    },
    /// [`atomic_write_file`] was given something other than a plain file name.
    #[error("{name:?} is not a plain file name")]
    InvalidFileName {
        /// The name given.
        name: String,
    },
    /// An earlier write or sync of this file failed. Its state on disk is unknown until the
    /// process restarts and recovers.
    #[error(
        "an earlier write or sync of {} failed; restart the process to recover",
        path.display()
    )]
    Failed {
        /// The file.
        path: PathBuf,
    },
}

impl StorageError {
    fn io(operation: Operation, path: &Path, error: io::Error) -> StorageError {
        StorageError::Io {
            operation,
            path: path.to_path_buf(),
            error,
        }
    }
}

/// What is wrong with a damaged log record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogCorruption {
    /// The checksum stored in the header does not match the record.
    Checksum {
        /// The checksum in the header.
        stored: u32,
        /// The checksum of the bytes read.
        computed: u32,
    },
    /// The header declares a record longer than [`RECORD_LENGTH_MAX`].
    LengthTooLarge {
        /// The declared length.
        length: u32,
    },
}

impl fmt::Display for LogCorruption {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogCorruption::Checksum { stored, computed } => write!(
                formatter,
                "checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
            LogCorruption::LengthTooLarge { length } => write!(
                formatter,
                "record length {length} exceeds the maximum of {RECORD_LENGTH_MAX}"
            ),
        }
    }
}

/// What is wrong with a damaged snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapshotCorruption {
    /// The file does not start with [`SNAPSHOT_MAGIC`].
    BadMagic,
    /// The file is shorter than a snapshot header.
    Truncated {
        /// Its length in bytes.
        length: usize,
    },
    /// The header declares a different payload length than the file holds.
    LengthMismatch {
        /// The length in the header.
        declared: u64,
        /// The bytes present after the header.
        actual: u64,
    },
    /// The payload's checksum does not match the header.
    Checksum {
        /// The checksum in the header.
        stored: u32,
        /// The checksum of the bytes read.
        computed: u32,
    },
    /// The payload is not a valid encoding of the durable state.
    Undecodable(postcard::Error),
}

impl fmt::Display for SnapshotCorruption {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnapshotCorruption::BadMagic => formatter.write_str("not a snapshot (bad magic)"),
            SnapshotCorruption::Truncated { length } => {
                write!(formatter, "truncated to {length} bytes")
            }
            SnapshotCorruption::LengthMismatch { declared, actual } => write!(
                formatter,
                "header declares {declared} bytes of state, {actual} present"
            ),
            SnapshotCorruption::Checksum { stored, computed } => write!(
                formatter,
                "checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
            SnapshotCorruption::Undecodable(error) => {
                write!(formatter, "state does not decode: {error}")
            }
        }
    }
}
