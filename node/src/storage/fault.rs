//! A [`FileSystem`] that fails on purpose, and forgets what a crash would: [`FaultyFileSystem`].

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::file_system::{FileSystem, Operation, RealFileSystem};

/// When an injected failure happens relative to the operation it replaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultTiming {
    /// The operation is not carried out.
    Before,
    /// The operation is carried out, then reported as failed. The caller goes on, and may
    /// clean up: an I/O error that the process survives.
    After,
    /// The operation is carried out, then the machine loses power: the operation and every
    /// later one report an error and do nothing, until
    /// [`reboot`](FaultyFileSystem::reboot) decides what of the unsynced state reached the
    /// disk.
    Crash,
}

/// Which operation fails, when, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The kind of operation that fails; `None` counts operations of every kind.
    pub operation: Option<Operation>,
    /// How many matching operations succeed before the one that fails.
    pub skip: usize,
    /// Whether the failing operation is carried out first, and whether the machine stops.
    pub timing: FaultTiming,
    /// The error's kind, e.g. [`io::ErrorKind::StorageFull`] for a full disk (`ENOSPC`).
    pub kind: io::ErrorKind,
}

impl Fault {
    /// A power cut right after the `skip + 1`-th operation of any kind.
    pub fn crash_after(skip: usize) -> Fault {
        Fault {
            operation: None,
            skip,
            timing: FaultTiming::Crash,
            kind: io::ErrorKind::Other,
        }
    }
}

/// What of the state not yet made durable a crash leaves on the disk.
///
/// A crash keeps what was synced: a file's data as of its last `fsync`, a directory's
/// entries as of its last directory `fsync`. Of the rest, the page cache may have written
/// back any part. The two are independent, which is what makes the order write, fsync,
/// rename, fsync-the-directory necessary: without the first fsync, a rename can reach the
/// disk before the data it names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AfterCrash {
    /// How many of each directory's entry changes since its last fsync survive (creations,
    /// renames and removals, oldest first; metadata journals keep them in order). `0` loses
    /// them all; [`usize::MAX`] keeps them all.
    pub name_changes_kept: usize,
    /// What survives of the data written since each file's last fsync.
    pub unsynced_data: UnsyncedData,
}

impl AfterCrash {
    /// Every outcome of a crash that left `name_changes` unsynced entry changes in a
    /// directory: each number of them kept, with unsynced data lost, torn and kept.
    pub fn every(name_changes: usize) -> Vec<AfterCrash> {
        (0..=name_changes)
            .flat_map(|name_changes_kept| {
                [UnsyncedData::Lost, UnsyncedData::Torn, UnsyncedData::Kept].map(|unsynced_data| {
                    AfterCrash {
                        name_changes_kept,
                        unsynced_data,
                    }
                })
            })
            .collect()
    }
}

/// What a crash leaves of a file's unsynced data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnsyncedData {
    /// None of it: the file holds what it held at its last fsync (nothing, if it never was).
    Lost,
    /// The first half of it, as when a write is cut short: of the bytes that differ from
    /// the synced contents, the first half reached the disk. An append keeps half the bytes
    /// appended; a truncation is kept.
    Torn,
    /// All of it: the page cache was written back before the crash.
    Kept,
}

/// A [`FileSystem`] that fails on purpose, for crash-point and full-disk tests.
///
/// # Faults
///
/// It carries out every operation on the real file system, except the one a [`Fault`]
/// picks: the `skip + 1`-th operation of a kind (or of any kind) after the fault is armed.
/// That operation fails with the fault's error, either [`FaultTiming::Before`] doing
/// anything (a full disk refusing a write), [`FaultTiming::After`] doing it (an error the
/// caller survives), or [`FaultTiming::Crash`] doing it, after which nothing works until
/// [`reboot`](Self::reboot). A fault fires once. To visit every crash point of a procedure,
/// run it once with [`operation_count`](Self::operation_count) to count its steps, then once
/// per step with [`Fault::crash_after`].
///
/// # The page cache
///
/// In the directories it [`track`](Self::track)s, it also keeps what a real disk would hold
/// after a power cut: each file's data as of its last [`sync_file`](FileSystem::sync_file)
/// and each directory's entries as of its last
/// [`sync_directory`](FileSystem::sync_directory). [`reboot`](Self::reboot) then rewrites
/// those directories as the crash left them, keeping as much of the unsynced state as an
/// [`AfterCrash`] says. Every change to a tracked directory must go through this file system,
/// and a rename between two directories is modelled as its two halves, each made durable by
/// its own directory's fsync.
#[derive(Debug, Default)]
pub struct FaultyFileSystem {
    state: Mutex<FaultState>,
}

#[derive(Debug, Default)]
struct FaultState {
    armed: Option<Fault>,
    fired: bool,
    crashed: bool,
    operation_count: usize,
    cache: PageCache,
}

/// A file, whatever its names: it keeps its identity through renames, as an inode does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct FileId(u64);

/// What is durable, and what is only in memory, in the tracked directories.
#[derive(Debug, Default)]
struct PageCache {
    directories: BTreeMap<PathBuf, DirectoryCache>,
    files: BTreeMap<FileId, FileCache>,
    next_file: u64,
}

#[derive(Debug, Default)]
struct DirectoryCache {
    /// The entries as of the last directory fsync.
    durable: BTreeMap<OsString, FileId>,
    /// The entries now.
    current: BTreeMap<OsString, FileId>,
    /// The changes from `durable` to `current`, oldest first.
    unsynced: Vec<NameChange>,
}

#[derive(Debug, Default)]
struct FileCache {
    /// The data as of the last fsync.
    durable: Vec<u8>,
    /// The data when the file lost its last name (removed, or replaced by a rename), for a
    /// crash that brings the name back with the unsynced data.
    unlinked: Option<Vec<u8>>,
}

#[derive(Clone, Debug)]
enum NameChange {
    Link { name: OsString, file: FileId },
    Rename { from: OsString, to: OsString },
    Unlink { name: OsString },
}

impl NameChange {
    fn apply(&self, entries: &mut BTreeMap<OsString, FileId>) {
        match self {
            NameChange::Link { name, file } => {
                entries.insert(name.clone(), *file);
            }
            NameChange::Rename { from, to } => {
                if let Some(file) = entries.remove(from) {
                    entries.insert(to.clone(), file);
                }
            }
            NameChange::Unlink { name } => {
                entries.remove(name);
            }
        }
    }
}

impl FaultyFileSystem {
    /// A file system with no fault armed and no directory tracked: it behaves like the real
    /// one.
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

    /// Starts keeping the page cache of `directory`, taking everything in it now as
    /// durable (tracking it again starts over). Its subdirectories are not tracked.
    pub fn track(&self, directory: &Path) -> io::Result<()> {
        let mut files = Vec::new();
        for entry in fs::read_dir(directory)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                files.push((entry.file_name(), fs::read(entry.path())?));
            }
        }
        let mut state = self.lock();
        let cache = &mut state.cache;
        let mut entries = BTreeMap::new();
        for (name, data) in files {
            let file = cache.new_file(data);
            entries.insert(name, file);
        }
        cache.directories.insert(
            directory.to_path_buf(),
            DirectoryCache {
                durable: entries.clone(),
                current: entries,
                unsynced: Vec::new(),
            },
        );
        Ok(())
    }

    /// The most entry changes not yet made durable in one tracked directory: what
    /// [`AfterCrash::name_changes_kept`] chooses among.
    pub fn unsynced_name_changes(&self) -> usize {
        self.lock()
            .cache
            .directories
            .values()
            .map(|directory| directory.unsynced.len())
            .max()
            .unwrap_or(0)
    }

    /// Power comes back: rewrites every tracked directory as a crash now would leave it,
    /// keeping what `after` says of the unsynced state, then takes that as durable, disarms
    /// any fault and makes the file system work again. Works whether or not a
    /// [`FaultTiming::Crash`] fired: a crash can come at any time.
    pub fn reboot(&self, after: AfterCrash) -> io::Result<()> {
        let mut state = self.lock();
        let cache = &mut state.cache;
        let mut images = Vec::new();
        for (path, directory) in &cache.directories {
            let mut entries = directory.durable.clone();
            for change in directory.unsynced.iter().take(after.name_changes_kept) {
                change.apply(&mut entries);
            }
            let mut files = Vec::new();
            for (name, file) in &entries {
                let data = cache.data_after_crash(path, directory, *file, after.unsynced_data)?;
                files.push((name.clone(), *file, data));
            }
            images.push((path.clone(), entries, files));
        }
        for (path, entries, files) in images {
            for entry in fs::read_dir(&path)? {
                let entry = entry?;
                if entry.file_type()?.is_file() {
                    fs::remove_file(entry.path())?;
                }
            }
            for (name, file, data) in files {
                fs::write(path.join(&name), &data)?;
                cache.files.insert(
                    file,
                    FileCache {
                        durable: data,
                        unlinked: None,
                    },
                );
            }
            cache.directories.insert(
                path,
                DirectoryCache {
                    durable: entries.clone(),
                    current: entries,
                    unsynced: Vec::new(),
                },
            );
        }
        state.crashed = false;
        state.armed = None;
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, FaultState> {
        // A panicking test thread cannot leave the counters inconsistent: use them anyway.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `action` as operation `operation` on `path`, unless the armed fault picks it or
    /// the machine has crashed.
    fn perform<T>(
        &self,
        operation: Operation,
        path: &Path,
        action: impl FnOnce() -> io::Result<T>,
    ) -> io::Result<T> {
        let timing = {
            let mut state = self.lock();
            state.operation_count += 1;
            if state.crashed {
                return Err(io::Error::other(format!(
                    "injected crash: the machine is down ({operation} {})",
                    path.display()
                )));
            }
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
            Some((FaultTiming::Crash, kind)) => {
                let result = action();
                self.lock().crashed = true;
                result?;
                Err(injected(kind))
            }
        }
    }

    /// Records that `path` now names a file: a new one, unless it already did.
    fn linked(&self, path: &Path) {
        let mut state = self.lock();
        let cache = &mut state.cache;
        let Some((directory, name)) = split(path) else {
            return;
        };
        let Some(entries) = cache.directories.get(directory) else {
            return;
        };
        if entries.current.contains_key(name) {
            return; // Opened or truncated: a change of data, not of names.
        }
        let file = cache.new_file(Vec::new());
        cache.change(
            directory,
            NameChange::Link {
                name: name.to_os_string(),
                file,
            },
        );
    }

    /// Records that the file `path` names is synced: its data as it is now is durable.
    fn synced(&self, path: &Path) -> io::Result<()> {
        let Some(file) = self.file_named(path) else {
            return Ok(());
        };
        let data = fs::read(path)?;
        if let Some(cache) = self.lock().cache.files.get_mut(&file) {
            cache.durable = data;
        }
        Ok(())
    }

    /// Keeps the data of the file `path` names, which is about to lose that name.
    fn about_to_unlink(&self, path: &Path) -> io::Result<()> {
        let Some(file) = self.file_named(path) else {
            return Ok(());
        };
        let data = fs::read(path)?;
        if let Some(cache) = self.lock().cache.files.get_mut(&file) {
            cache.unlinked = Some(data);
        }
        Ok(())
    }

    fn renamed(&self, from: &Path, to: &Path) {
        let mut state = self.lock();
        let cache = &mut state.cache;
        match (split(from), split(to)) {
            (Some((from_directory, from_name)), Some((to_directory, to_name)))
                if from_directory == to_directory =>
            {
                if cache.directories.contains_key(from_directory) {
                    cache.change(
                        from_directory,
                        NameChange::Rename {
                            from: from_name.to_os_string(),
                            to: to_name.to_os_string(),
                        },
                    );
                }
            }
            (from_parts, to_parts) => {
                let file = from_parts.and_then(|(directory, name)| {
                    let file = cache.directories.get(directory)?.current.get(name).copied();
                    cache.change(
                        directory,
                        NameChange::Unlink {
                            name: name.to_os_string(),
                        },
                    );
                    file
                });
                if let Some((directory, name)) = to_parts
                    && cache.directories.contains_key(directory)
                {
                    let file = file.unwrap_or_else(|| cache.new_file(Vec::new()));
                    cache.change(
                        directory,
                        NameChange::Link {
                            name: name.to_os_string(),
                            file,
                        },
                    );
                }
            }
        }
    }

    fn unlinked(&self, path: &Path) {
        let mut state = self.lock();
        if let Some((directory, name)) = split(path)
            && state.cache.directories.contains_key(directory)
        {
            state.cache.change(
                directory,
                NameChange::Unlink {
                    name: name.to_os_string(),
                },
            );
        }
    }

    fn directory_synced(&self, directory: &Path) {
        let mut state = self.lock();
        if let Some(entries) = state.cache.directories.get_mut(directory) {
            entries.durable = entries.current.clone();
            entries.unsynced.clear();
        }
    }

    fn file_named(&self, path: &Path) -> Option<FileId> {
        let (directory, name) = split(path)?;
        self.lock()
            .cache
            .directories
            .get(directory)?
            .current
            .get(name)
            .copied()
    }
}

impl PageCache {
    fn new_file(&mut self, durable: Vec<u8>) -> FileId {
        let file = FileId(self.next_file);
        self.next_file += 1;
        self.files.insert(
            file,
            FileCache {
                durable,
                unlinked: None,
            },
        );
        file
    }

    /// Applies `change` to `directory`'s current entries and queues it until the directory
    /// is synced. A file that loses its last name keeps its data for a crash to bring back.
    fn change(&mut self, directory: &Path, change: NameChange) {
        if let Some(entries) = self.directories.get_mut(directory) {
            change.apply(&mut entries.current);
            entries.unsynced.push(change);
        }
    }

    /// What a crash leaves of `file`, found in `directory` at `path`.
    fn data_after_crash(
        &self,
        path: &Path,
        directory: &DirectoryCache,
        file: FileId,
        unsynced: UnsyncedData,
    ) -> io::Result<Vec<u8>> {
        let cache = self.files.get(&file);
        let durable = cache.map(|cache| cache.durable.clone()).unwrap_or_default();
        if unsynced == UnsyncedData::Lost {
            return Ok(durable);
        }
        let current_name = directory
            .current
            .iter()
            .find(|(_, named)| **named == file)
            .map(|(name, _)| name);
        let current = match current_name {
            Some(name) => fs::read(path.join(name))?,
            None => cache
                .and_then(|cache| cache.unlinked.clone())
                .unwrap_or_else(|| durable.clone()),
        };
        Ok(match unsynced {
            UnsyncedData::Lost => durable,
            UnsyncedData::Kept => current,
            UnsyncedData::Torn => {
                let common = durable
                    .iter()
                    .zip(&current)
                    .take_while(|(old, new)| old == new)
                    .count();
                let kept = common + (current.len() - common) / 2;
                current[..kept].to_vec()
            }
        })
    }
}

/// `path`'s directory and file name.
fn split(path: &Path) -> Option<(&Path, &std::ffi::OsStr)> {
    Some((path.parent()?, path.file_name()?))
}

impl FileSystem for FaultyFileSystem {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.perform(Operation::Read, path, || RealFileSystem.read(path))
    }

    fn create(&self, path: &Path) -> io::Result<File> {
        self.perform(Operation::Create, path, || {
            let file = RealFileSystem.create(path)?;
            self.linked(path);
            Ok(file)
        })
    }

    fn open_append(&self, path: &Path) -> io::Result<File> {
        self.perform(Operation::OpenAppend, path, || {
            let file = RealFileSystem.open_append(path)?;
            self.linked(path);
            Ok(file)
        })
    }

    fn write(&self, file: &mut File, path: &Path, bytes: &[u8]) -> io::Result<()> {
        self.perform(Operation::Write, path, || {
            RealFileSystem.write(file, path, bytes)
        })
    }

    fn sync_file(&self, file: &File, path: &Path) -> io::Result<()> {
        self.perform(Operation::SyncFile, path, || {
            RealFileSystem.sync_file(file, path)?;
            self.synced(path)
        })
    }

    fn set_length(&self, file: &File, path: &Path, length: u64) -> io::Result<()> {
        self.perform(Operation::SetLength, path, || {
            RealFileSystem.set_length(file, path, length)
        })
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.perform(Operation::Rename, to, || {
            self.about_to_unlink(to)?;
            RealFileSystem.rename(from, to)?;
            self.renamed(from, to);
            Ok(())
        })
    }

    fn sync_directory(&self, directory: &Path) -> io::Result<()> {
        self.perform(Operation::SyncDirectory, directory, || {
            RealFileSystem.sync_directory(directory)?;
            self.directory_synced(directory);
            Ok(())
        })
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.perform(Operation::RemoveFile, path, || {
            self.about_to_unlink(path)?;
            RealFileSystem.remove_file(path)?;
            self.unlinked(path);
            Ok(())
        })
    }

    fn list_directory(&self, directory: &Path) -> io::Result<Vec<OsString>> {
        self.perform(Operation::ListDirectory, directory, || {
            RealFileSystem.list_directory(directory)
        })
    }
}

#[cfg(test)]
mod tests {
    //! The crash model itself: what survives a crash is what was synced, plus what the
    //! [`AfterCrash`] keeps of the rest, and nothing else.

    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A fresh directory, tracked by a new file system; removed when dropped.
    struct Tracked {
        directory: PathBuf,
        file_system: FaultyFileSystem,
    }

    impl Tracked {
        /// `files` are written (durably, as far as the model knows) before tracking starts.
        fn new(files: &[(&str, &[u8])]) -> Tracked {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let directory = std::env::temp_dir().join(format!(
                "berth-fault-{}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&directory);
            fs::create_dir_all(&directory).expect("create a test directory");
            for (name, data) in files {
                fs::write(directory.join(name), data).expect("write a file");
            }
            let file_system = FaultyFileSystem::new();
            file_system.track(&directory).expect("track the directory");
            Tracked {
                directory,
                file_system,
            }
        }

        fn path(&self, name: &str) -> PathBuf {
            self.directory.join(name)
        }

        /// Every file's name and contents, sorted by name.
        fn contents(&self) -> Vec<(String, Vec<u8>)> {
            let mut contents: Vec<(String, Vec<u8>)> = fs::read_dir(&self.directory)
                .expect("list the directory")
                .map(|entry| {
                    let entry = entry.expect("an entry");
                    let name = entry.file_name().into_string().expect("a UTF-8 name");
                    (name, fs::read(entry.path()).expect("read a file"))
                })
                .collect();
            contents.sort();
            contents
        }

        fn append(&self, name: &str, bytes: &[u8]) -> File {
            let path = self.path(name);
            let mut file = self.file_system.open_append(&path).expect("open");
            self.file_system
                .write(&mut file, &path, bytes)
                .expect("write");
            file
        }

        /// Writes `bytes` as a new file `name`, syncing its data if `sync`.
        fn write_new(&self, name: &str, bytes: &[u8], sync: bool) {
            let path = self.path(name);
            let mut file = self.file_system.create(&path).expect("create");
            self.file_system
                .write(&mut file, &path, bytes)
                .expect("write");
            if sync {
                self.file_system.sync_file(&file, &path).expect("sync");
            }
        }

        fn reboot(&self, name_changes_kept: usize, unsynced_data: UnsyncedData) {
            self.file_system
                .reboot(AfterCrash {
                    name_changes_kept,
                    unsynced_data,
                })
                .expect("reboot");
        }
    }

    impl Drop for Tracked {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.directory);
        }
    }

    fn entry(name: &str, data: &[u8]) -> (String, Vec<u8>) {
        (name.to_string(), data.to_vec())
    }

    #[test]
    fn unsynced_appended_data_is_lost_torn_or_kept() {
        let outcomes = [
            (UnsyncedData::Lost, &b"old"[..]),
            (UnsyncedData::Torn, b"old-ne"),
            (UnsyncedData::Kept, b"old-new!!"),
        ];
        for (unsynced, expected) in outcomes {
            let tracked = Tracked::new(&[("log", b"old")]);
            tracked.append("log", b"-new!!");
            tracked.reboot(usize::MAX, unsynced);
            assert_eq!(tracked.contents(), [entry("log", expected)], "{unsynced:?}");
        }
    }

    #[test]
    fn synced_data_survives_every_crash() {
        for after in AfterCrash::every(0) {
            let tracked = Tracked::new(&[("log", b"old")]);
            let file = tracked.append("log", b"-new");
            let path = tracked.path("log");
            tracked.file_system.sync_file(&file, &path).expect("sync");
            tracked.file_system.reboot(after).expect("reboot");
            assert_eq!(tracked.contents(), [entry("log", b"old-new")], "{after:?}");
        }
    }

    /// The atomic write's steps, one crash image each: the rename is durable only once the
    /// directory is synced, and until then a crash may keep any prefix of the entry changes.
    #[test]
    fn an_unsynced_rename_survives_in_order_or_not_at_all() {
        let images = [
            (0, vec![entry("target", b"old")]),
            (
                1,
                vec![entry("target", b"old"), entry("target.tmp", b"new")],
            ),
            (2, vec![entry("target", b"new")]),
        ];
        for (kept, expected) in images {
            let tracked = Tracked::new(&[("target", b"old")]);
            tracked.write_new("target.tmp", b"new", true);
            tracked
                .file_system
                .rename(&tracked.path("target.tmp"), &tracked.path("target"))
                .expect("rename");
            assert_eq!(tracked.file_system.unsynced_name_changes(), 2);
            tracked.reboot(kept, UnsyncedData::Lost);
            assert_eq!(tracked.contents(), expected, "{kept} kept");
        }
    }

    /// Why a file is synced before it is renamed: otherwise the rename can reach the disk
    /// without the data, leaving the target empty. The model must allow that outcome, or it
    /// could not catch the missing fsync.
    #[test]
    fn a_rename_before_the_data_is_synced_can_leave_an_empty_file() {
        let tracked = Tracked::new(&[("target", b"old")]);
        tracked.write_new("target.tmp", b"new", false);
        let file_system = &tracked.file_system;
        file_system
            .rename(&tracked.path("target.tmp"), &tracked.path("target"))
            .expect("rename");
        file_system
            .sync_directory(&tracked.directory)
            .expect("sync the directory");
        tracked.reboot(0, UnsyncedData::Lost);
        assert_eq!(tracked.contents(), [entry("target", b"")]);
    }

    #[test]
    fn a_removal_is_undone_by_a_crash_before_the_directory_is_synced() {
        let tracked = Tracked::new(&[("old", b"data")]);
        tracked
            .file_system
            .remove_file(&tracked.path("old"))
            .expect("remove");
        tracked.reboot(0, UnsyncedData::Kept);
        assert_eq!(tracked.contents(), [entry("old", b"data")]);

        tracked
            .file_system
            .remove_file(&tracked.path("old"))
            .expect("remove");
        tracked
            .file_system
            .sync_directory(&tracked.directory)
            .expect("sync the directory");
        tracked.reboot(0, UnsyncedData::Lost);
        assert_eq!(tracked.contents(), []);
    }

    #[test]
    fn a_crashed_file_system_does_nothing_until_it_reboots() {
        let tracked = Tracked::new(&[]);
        let file_system = &tracked.file_system;
        file_system.arm(Fault::crash_after(1));
        let path = tracked.path("log");
        let mut file = file_system
            .open_append(&path)
            .expect("the first operation works");
        let error = file_system
            .write(&mut file, &path, b"written")
            .expect_err("the crash");
        assert!(error.to_string().contains("injected fault"), "{error}");
        assert!(file_system.fired());
        assert!(file_system.sync_file(&file, &path).is_err());
        assert!(file_system.create(&tracked.path("other")).is_err());
        assert!(!tracked.path("other").exists(), "nothing is done");
        assert_eq!(
            fs::read(&path).expect("read"),
            b"written",
            "before the crash"
        );

        tracked.reboot(usize::MAX, UnsyncedData::Kept);
        assert_eq!(tracked.contents(), [entry("log", b"written")]);
        tracked.write_new("other", b"works", true);
        assert_eq!(
            file_system.read(&tracked.path("other")).expect("read"),
            b"works"
        );
    }

    #[test]
    fn every_outcome_is_listed_once() {
        let outcomes = AfterCrash::every(2);
        assert_eq!(outcomes.len(), 9);
        for (index, outcome) in outcomes.iter().enumerate() {
            assert!(!outcomes[..index].contains(outcome), "{outcome:?} twice");
        }
    }
}
