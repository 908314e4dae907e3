//! The file operations storage needs, behind a trait so tests can make any one of them fail.
//!
//! Every call that touches the disk goes through [`FileSystem`]: one method per system call
//! that matters for durability (write, fsync, rename, directory fsync). [`RealFileSystem`] is
//! the operating system's; [`FaultyFileSystem`](super::FaultyFileSystem) wraps it and fails a
//! chosen operation, before or after carrying it out, to test what a crash or a full disk at
//! that point leaves behind.

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// The file operations of storage, one per system call that matters for durability.
///
/// Each method takes the path it acts on (also for operations on an open file) so that an
/// implementation can log it or pick it out for fault injection.
pub trait FileSystem: fmt::Debug + Send + Sync {
    /// Reads a whole file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Creates a file for writing, truncating it if it exists.
    fn create(&self, path: &Path) -> io::Result<File>;
    /// Opens a file for appending, creating it if it does not exist.
    fn open_append(&self, path: &Path) -> io::Result<File>;
    /// Writes all of `bytes` to `file` at its current position.
    fn write(&self, file: &mut File, path: &Path, bytes: &[u8]) -> io::Result<()>;
    /// Flushes `file`'s data and metadata to stable storage (`fsync`).
    fn sync_file(&self, file: &File, path: &Path) -> io::Result<()>;
    /// Shortens (or extends) `file` to `length` bytes.
    fn set_length(&self, file: &File, path: &Path, length: u64) -> io::Result<()>;
    /// Renames `from` to `to`, replacing `to` atomically if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Flushes a directory's entries to stable storage, so that files created, renamed or
    /// removed in it stay so after a crash.
    fn sync_directory(&self, directory: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// The names of the entries of a directory, in no particular order.
    fn list_directory(&self, directory: &Path) -> io::Result<Vec<OsString>>;
}

/// One kind of [`FileSystem`] operation: names the step in errors and fault plans.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operation {
    /// [`FileSystem::read`].
    Read,
    /// [`FileSystem::create`].
    Create,
    /// [`FileSystem::open_append`].
    OpenAppend,
    /// [`FileSystem::write`].
    Write,
    /// [`FileSystem::sync_file`].
    SyncFile,
    /// [`FileSystem::set_length`].
    SetLength,
    /// [`FileSystem::rename`].
    Rename,
    /// [`FileSystem::sync_directory`].
    SyncDirectory,
    /// [`FileSystem::remove_file`].
    RemoveFile,
    /// [`FileSystem::list_directory`].
    ListDirectory,
}

impl fmt::Display for Operation {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Operation::Read => "reading",
            Operation::Create => "creating",
            Operation::OpenAppend => "opening",
            Operation::Write => "writing",
            Operation::SyncFile => "syncing",
            Operation::SetLength => "truncating",
            Operation::Rename => "renaming",
            Operation::SyncDirectory => "syncing directory",
            Operation::RemoveFile => "removing",
            Operation::ListDirectory => "listing directory",
        })
    }
}

/// The operating system's file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealFileSystem;

impl FileSystem for RealFileSystem {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    fn create(&self, path: &Path) -> io::Result<File> {
        File::create(path)
    }

    fn open_append(&self, path: &Path) -> io::Result<File> {
        OpenOptions::new().append(true).create(true).open(path)
    }

    fn write(&self, file: &mut File, _path: &Path, bytes: &[u8]) -> io::Result<()> {
        file.write_all(bytes)
    }

    fn sync_file(&self, file: &File, _path: &Path) -> io::Result<()> {
        file.sync_all()
    }

    fn set_length(&self, file: &File, _path: &Path, length: u64) -> io::Result<()> {
        file.set_len(length)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn sync_directory(&self, directory: &Path) -> io::Result<()> {
        // On Linux a directory opened read-only can be fsynced; that is what makes a rename
        // or a new file's name durable.
        File::open(directory)?.sync_all()
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn list_directory(&self, directory: &Path) -> io::Result<Vec<OsString>> {
        fs::read_dir(directory)?
            .map(|entry| entry.map(|entry| entry.file_name()))
            .collect()
    }
}
