//! A [`FileSystem`] that fails on purpose: [`FaultyFileSystem`].

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use super::file_system::{FileSystem, Operation, RealFileSystem};

/// When an injected failure happens relative to the operation it replaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultTiming {
    /// The operation is not carried out.
    Before,
    /// The operation is carried out, then reported as failed.
    After,
}

/// Which operation fails, when, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The kind of operation that fails; `None` counts operations of every kind.
    pub operation: Option<Operation>,
    /// How many matching operations succeed before the one that fails.
    pub skip: usize,
    /// Whether the failing operation is carried out first.
    pub timing: FaultTiming,
    /// The error's kind, e.g. [`io::ErrorKind::StorageFull`] for a full disk (`ENOSPC`).
    pub kind: io::ErrorKind,
}

/// A [`FileSystem`] that fails on purpose, for crash-point and full-disk tests.
///
/// It carries out every operation on the real file system, except the one a
/// [`Fault`] picks: the `skip + 1`-th operation of a kind (or of any kind) after the fault is
/// armed. That operation fails with the fault's error, either [`FaultTiming::Before`] doing
/// anything (a full disk refusing a write) or [`FaultTiming::After`] doing it (a crash right
/// after the step: the effect is on disk, the caller sees an error and stops). A fault fires
/// once. To visit every crash point of a procedure, run it once with
/// [`operation_count`](FaultyFileSystem::operation_count) to count its steps, then once per
/// step with `Fault { operation: None, skip: step, .. }`.
#[derive(Debug, Default)]
pub struct FaultyFileSystem {
    state: Mutex<FaultState>,
}

#[derive(Debug, Default)]
struct FaultState {
    armed: Option<Fault>,
    fired: bool,
    operation_count: usize,
}

impl FaultyFileSystem {
    /// A file system with no fault armed: it behaves like the real one.
    pub fn new() -> FaultyFileSystem {
        FaultyFileSystem::default()
    }

    /// Arms `fault`, replacing any armed one, and resets [`fired`](Self::fired).
    pub fn arm(&self, fault: Fault) {
        let mut state = self.lock();
        state.armed = Some(fault);
        state.fired = false;
    }

    /// Disarms the armed fault, if any.
    pub fn disarm(&self) {
        self.lock().armed = None;
    }

    /// Whether the last armed fault has fired.
    pub fn fired(&self) -> bool {
        self.lock().fired
    }

    /// How many operations were attempted since this file system was made.
    pub fn operation_count(&self) -> usize {
        self.lock().operation_count
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FaultState> {
        // A panicking test thread cannot leave the counters inconsistent: use them anyway.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `action` as operation `operation` on `path`, unless the armed fault picks it.
    fn perform<T>(
        &self,
        operation: Operation,
        path: &Path,
        action: impl FnOnce() -> io::Result<T>,
    ) -> io::Result<T> {
        let timing = {
            let mut state = self.lock();
            state.operation_count += 1;
            match state.armed {
                Some(fault) if fault.operation.is_none_or(|kind| kind == operation) => {
                    if fault.skip == 0 {
                        state.armed = None;
                        state.fired = true;
                        Some((fault.timing, fault.kind))
                    } else {
                        state.armed = Some(Fault {
                            skip: fault.skip - 1,
                            ..fault
                        });
                        None
                    }
                }
                _ => None,
            }
        };
        let injected = |kind: io::ErrorKind| {
            io::Error::new(
                kind,
                format!("injected fault: {operation} {}", path.display()),
            )
        };
        match timing {
            None => action(),
            Some((FaultTiming::Before, kind)) => Err(injected(kind)),
            Some((FaultTiming::After, kind)) => {
                action()?;
                Err(injected(kind))
            }
        }
    }
}

impl FileSystem for FaultyFileSystem {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.perform(Operation::Read, path, || RealFileSystem.read(path))
    }

    fn create(&self, path: &Path) -> io::Result<File> {
        self.perform(Operation::Create, path, || RealFileSystem.create(path))
    }

    fn open_append(&self, path: &Path) -> io::Result<File> {
        self.perform(Operation::OpenAppend, path, || {
            RealFileSystem.open_append(path)
        })
    }

    fn write(&self, file: &mut File, path: &Path, bytes: &[u8]) -> io::Result<()> {
        self.perform(Operation::Write, path, || {
            RealFileSystem.write(file, path, bytes)
        })
    }

    fn sync_file(&self, file: &File, path: &Path) -> io::Result<()> {
        self.perform(Operation::SyncFile, path, || {
            RealFileSystem.sync_file(file, path)
        })
    }

    fn set_length(&self, file: &File, path: &Path, length: u64) -> io::Result<()> {
        self.perform(Operation::SetLength, path, || {
            RealFileSystem.set_length(file, path, length)
        })
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.perform(Operation::Rename, to, || RealFileSystem.rename(from, to))
    }

    fn sync_directory(&self, directory: &Path) -> io::Result<()> {
        self.perform(Operation::SyncDirectory, directory, || {
            RealFileSystem.sync_directory(directory)
        })
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.perform(Operation::RemoveFile, path, || {
            RealFileSystem.remove_file(path)
        })
    }

    fn list_directory(&self, directory: &Path) -> io::Result<Vec<OsString>> {
        self.perform(Operation::ListDirectory, directory, || {
            RealFileSystem.list_directory(directory)
        })
    }
}
