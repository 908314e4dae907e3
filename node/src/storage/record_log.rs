//! The append-only record log: [`RecordLog`].

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{FileSystem, LogCorruption, Operation, StorageError};

/// Bytes in a record header: the length and the checksum.
pub const RECORD_HEADER_LENGTH: usize = 8;

/// The longest record payload, in bytes: 16 MiB, the size of the largest frame, since a
/// record never holds more than one message could carry.
pub const RECORD_LENGTH_MAX: usize = 16 * 1024 * 1024;

/// An append-only log of checksummed records.
///
/// # Format
///
/// The file is a sequence of records, each a header and a payload, integers big-endian
/// (network byte order, like the frames of `berth_protocol::frame`):
///
/// ```text
/// +----------------------+------------------------------------+-------------------+
/// | length: u32, BE      | crc32(length bytes ++ payload), BE | payload           |
/// +----------------------+------------------------------------+-------------------+
///  4 bytes                4 bytes                              `length` bytes
/// ```
///
/// The checksum (CRC-32, IEEE) covers the length field as well as the payload, so a run of
/// zero bytes (what a file system may leave after a crash that extended the file) is never a
/// valid record: the CRC of four zero bytes is not zero.
///
/// # Recovery
///
/// [`RecordLog::open`] reads the whole file and accepts records until the first bad one. A
/// bad record is a *torn tail*, the unfinished last write of a crashed process, if it is
/// incomplete (the file ends inside its header or payload), or if its checksum fails and
/// nothing but it, or nothing but zero bytes, follows. A torn tail is truncated and logged.
/// Any other bad record is corruption in the middle of the log: an error naming the file
/// and the byte offset, and the file is left as it is. A header that claims more than
/// [`RECORD_LENGTH_MAX`] bytes is corruption; lengths are checked against the bytes present,
/// so a bad header never causes an allocation.
///
/// [`append`](RecordLog::append) only buffers; [`sync`](RecordLog::sync) writes the buffer
/// and fsyncs. If a write or sync fails, the error is fatal: the log refuses every later call
/// with [`StorageError::Failed`], because after a failed fsync the state of the page cache is
/// unknown and a retried fsync can report success for data that never reached the disk.
#[derive(Debug)]
pub struct RecordLog {
    file_system: Arc<dyn FileSystem>,
    path: PathBuf,
    file: File,
    /// Bytes of the file that were written and synced.
    durable_length: u64,
    /// Encoded records appended since the last sync.
    pending: Vec<u8>,
    failed: bool,
}

impl RecordLog {
    /// Opens the log at `path`, creating it (durably) if it does not exist, and returns it
    /// with the payloads of its records in order. A torn tail is truncated; corruption
    /// before the end is a [`StorageError::CorruptLog`] that changes nothing.
    pub fn open(
        file_system: Arc<dyn FileSystem>,
        path: &Path,
    ) -> Result<(RecordLog, Vec<Vec<u8>>), StorageError> {
        let contents = match file_system.read(path) {
            Ok(contents) => Some(contents),
            Err(error) if error.kind() == io::ErrorKind::NotFound => None,
            Err(error) => return Err(StorageError::io(Operation::Read, path, error)),
        };
        let scan = match &contents {
            Some(contents) => scan(path, contents)?,
            None => Scan::default(),
        };
        let file = file_system
            .open_append(path)
            .map_err(|error| StorageError::io(Operation::OpenAppend, path, error))?;
        let mut log = RecordLog {
            file_system,
            path: path.to_path_buf(),
            file,
            durable_length: to_u64(scan.valid_length),
            pending: Vec::new(),
            failed: false,
        };
        match &contents {
            None => log.sync_parent_directory()?,
            Some(contents) if scan.valid_length < contents.len() => {
                tracing::warn!(
                    path = %path.display(),
                    offset = scan.valid_length,
                    discarded_bytes = contents.len() - scan.valid_length,
                    reason = scan.torn_reason,
                    "truncating the torn tail of a log (the last write before a crash)"
                );
                log.truncate_torn_tail()?;
            }
            Some(_) => {}
        }
        Ok((log, scan.records))
    }

    /// Buffers one record. Nothing reaches the file before [`sync`](RecordLog::sync).
    pub fn append(&mut self, payload: &[u8]) -> Result<(), StorageError> {
        self.check_not_failed()?;
        let length = u32::try_from(payload.len())
            .ok()
            .filter(|_| payload.len() <= RECORD_LENGTH_MAX)
            .ok_or(StorageError::RecordTooLong {
                length: payload.len(),
            })?;
        self.pending.extend_from_slice(&length.to_be_bytes());
        self.pending
            .extend_from_slice(&checksum(length, payload).to_be_bytes());
        self.pending.extend_from_slice(payload);
        Ok(())
    }

    /// Writes the buffered records and fsyncs the file; on success they are durable. Does
    /// nothing if no record is buffered.
    ///
    /// An error is fatal (see [`RecordLog`]). A failed write is cut back off the file on a
    /// best-effort basis, so a full disk leaves the file as it was.
    pub fn sync(&mut self) -> Result<(), StorageError> {
        self.check_not_failed()?;
        if self.pending.is_empty() {
            return Ok(());
        }
        if let Err(error) = self
            .file_system
            .write(&mut self.file, &self.path, &self.pending)
        {
            self.failed = true;
            let _ = self
                .file_system
                .set_length(&self.file, &self.path, self.durable_length);
            return Err(StorageError::io(Operation::Write, &self.path, error));
        }
        if let Err(error) = self.file_system.sync_file(&self.file, &self.path) {
            self.failed = true;
            return Err(StorageError::io(Operation::SyncFile, &self.path, error));
        }
        self.durable_length += to_u64(self.pending.len());
        self.pending.clear();
        Ok(())
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The log's length in bytes, counting records not yet synced.
    pub fn length(&self) -> u64 {
        self.durable_length + to_u64(self.pending.len())
    }

    /// Whether records were appended since the last sync.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    fn check_not_failed(&self) -> Result<(), StorageError> {
        if self.failed {
            return Err(StorageError::Failed {
                path: self.path.clone(),
            });
        }
        Ok(())
    }

    fn truncate_torn_tail(&mut self) -> Result<(), StorageError> {
        self.file_system
            .set_length(&self.file, &self.path, self.durable_length)
            .map_err(|error| StorageError::io(Operation::SetLength, &self.path, error))?;
        self.file_system
            .sync_file(&self.file, &self.path)
            .map_err(|error| StorageError::io(Operation::SyncFile, &self.path, error))
    }

    fn sync_parent_directory(&self) -> Result<(), StorageError> {
        let directory = parent_directory(&self.path);
        self.file_system
            .sync_directory(directory)
            .map_err(|error| StorageError::io(Operation::SyncDirectory, directory, error))
    }
}

/// The directory holding `path`; `.` for a bare file name.
fn parent_directory(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// What opening found in a log file.
#[derive(Debug, Default)]
struct Scan {
    /// The payloads of the good records, in order.
    records: Vec<Vec<u8>>,
    /// Bytes from the start of the file up to the end of the last good record.
    valid_length: usize,
    /// Why the rest is a torn tail, if there is a rest.
    torn_reason: &'static str,
}

/// Splits `contents` into good records and a torn tail, or finds corruption.
fn scan(path: &Path, contents: &[u8]) -> Result<Scan, StorageError> {
    let mut scan = Scan::default();
    // Each pass consumes at least one header, so the loop ends after at most
    // contents.len() / RECORD_HEADER_LENGTH passes.
    while scan.valid_length < contents.len() {
        let offset = scan.valid_length;
        let rest = &contents[offset..];
        let Some((header, after_header)) = rest.split_first_chunk::<RECORD_HEADER_LENGTH>() else {
            scan.torn_reason = "incomplete record header";
            return Ok(scan);
        };
        let length = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let stored = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        let corrupt = |corruption| StorageError::CorruptLog {
            path: path.to_path_buf(),
            offset: to_u64(offset),
            corruption,
        };
        let payload_length = usize::try_from(length).unwrap_or(usize::MAX);
        if payload_length > RECORD_LENGTH_MAX {
            return Err(corrupt(LogCorruption::LengthTooLarge { length }));
        }
        let Some(payload) = after_header.get(..payload_length) else {
            scan.torn_reason = "incomplete record";
            return Ok(scan);
        };
        let computed = checksum(length, payload);
        if computed != stored {
            let at_end = after_header.len() == payload_length;
            if at_end || rest.iter().all(|byte| *byte == 0) {
                scan.torn_reason = "bad checksum in the last record";
                return Ok(scan);
            }
            return Err(corrupt(LogCorruption::Checksum { stored, computed }));
        }
        scan.records.push(payload.to_vec());
        scan.valid_length = offset + RECORD_HEADER_LENGTH + payload_length;
    }
    Ok(scan)
}

/// The checksum of a record: CRC-32 of its length field and its payload.
fn checksum(length: u32, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&length.to_be_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// A file length or offset as `u64`; `usize` is at most 64 bits on every supported target.
fn to_u64(length: usize) -> u64 {
    u64::try_from(length).unwrap_or(u64::MAX)
}
