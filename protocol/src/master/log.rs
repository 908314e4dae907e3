//! The master's durable state: term, vote and the replicated log with its snapshot.

use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::ids::{MasterId, Term};
use crate::message::{LogEntry, Snapshot};
use crate::registry::LogIndex;

/// The most log entries kept after the snapshot. The leader refuses new requests when its log
/// is this long (they are retried), and compacts long before, at the configured snapshot
/// threshold; so the log a master keeps and replays at boot is bounded.
pub const LOG_ENTRIES_MAX: usize = 4096;

/// The replicated log: a snapshot of the registry up to `snapshot.index`, then the entries
/// after it. Entry `i` (counting from 1) is `entries[i - snapshot.index - 1]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RaftLog {
    snapshot: Snapshot,
    entries: Vec<LogEntry>,
}

impl RaftLog {
    /// The snapshot the log starts from.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// The entries after the snapshot.
    pub fn entries(&self) -> &[LogEntry] {
        &self.entries
    }

    /// The index of the last entry (the snapshot's index if there is none after it).
    pub fn last_index(&self) -> LogIndex {
        LogIndex(self.snapshot.index.0 + self.entries.len() as u64)
    }

    /// The term of the last entry.
    pub fn last_term(&self) -> Term {
        self.entries
            .last()
            .map_or(self.snapshot.term, |entry| entry.term)
    }

    /// The term of the entry at `index`, if the log still knows it: `None` past the end or
    /// inside the snapshot (except at its last index).
    pub fn term_at(&self, index: LogIndex) -> Option<Term> {
        if index == self.snapshot.index {
            return Some(self.snapshot.term);
        }
        self.entry_at(index).map(|entry| entry.term)
    }

    /// The entry at `index`, if it is after the snapshot and in the log.
    pub fn entry_at(&self, index: LogIndex) -> Option<&LogEntry> {
        let offset = index.0.checked_sub(self.snapshot.index.0 + 1)?;
        self.entries.get(usize::try_from(offset).ok()?)
    }

    /// Up to `count_max` entries after `index` (which must not be inside the snapshot).
    pub fn entries_after(&self, index: LogIndex, count_max: usize) -> &[LogEntry] {
        let start = usize::try_from(index.0.saturating_sub(self.snapshot.index.0))
            .unwrap_or(usize::MAX)
            .min(self.entries.len());
        let end = start.saturating_add(count_max).min(self.entries.len());
        &self.entries[start..end]
    }

    /// Whether a candidate whose log ends at (`last_index`, `last_term`) is at least as
    /// up to date as this log (Raft §5.4.1): this is what keeps every committed entry in the
    /// log of every later leader (E2, leader completeness).
    pub fn candidate_is_up_to_date(&self, last_index: LogIndex, last_term: Term) -> bool {
        (last_term, last_index) >= (self.last_term(), self.last_index())
    }

    /// Removes the entries from `from` on and appends `entries` in their place.
    fn replace_from(&mut self, from: LogIndex, entries: &[LogEntry]) {
        debug_assert!(
            from > self.snapshot.index,
            "entries inside the snapshot are committed and never replaced"
        );
        let keep = usize::try_from(from.0.saturating_sub(self.snapshot.index.0 + 1))
            .unwrap_or(usize::MAX)
            .min(self.entries.len());
        self.entries.truncate(keep);
        self.entries.extend_from_slice(entries);
    }

    /// Makes `snapshot` the start of the log. Entries after it are kept if the log agrees
    /// with the snapshot at its index (compaction), dropped otherwise (installation).
    fn install(&mut self, snapshot: &Snapshot) {
        if snapshot.index <= self.snapshot.index {
            return;
        }
        if self.term_at(snapshot.index) == Some(snapshot.term) {
            let drop = usize::try_from(snapshot.index.0 - self.snapshot.index.0)
                .expect("a log holds fewer than usize::MAX entries");
            self.entries.drain(..drop);
        } else {
            self.entries.clear();
        }
        self.snapshot = snapshot.clone();
    }
}

/// What a master keeps across crashes: the fold of its [`MasterRecord`]s.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MasterDurable {
    /// The latest term this master has seen.
    pub term: Term,
    /// Whom it voted for in `term`, if anyone.
    pub voted_for: Option<MasterId>,
    /// Its replicated log.
    pub log: RaftLog,
}

/// One durable change of a master.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MasterRecord {
    /// The term moved on, or a vote was cast. Persisted before any vote is sent (E1).
    HardState {
        /// The new term.
        term: Term,
        /// The vote in that term.
        voted_for: Option<MasterId>,
    },
    /// The log from `from` on is replaced by `entries`. Persisted before they are
    /// acknowledged (E2).
    Entries {
        /// The index of the first entry.
        from: LogIndex,
        /// The entries.
        entries: Vec<LogEntry>,
    },
    /// The log up to the snapshot's index is replaced by the snapshot.
    Snapshot(Snapshot),
}

/// Folds one record into the durable state.
pub(crate) fn apply(durable: &mut MasterDurable, record: &MasterRecord) {
    match record {
        MasterRecord::HardState { term, voted_for } => {
            durable.term = *term;
            durable.voted_for = *voted_for;
        }
        MasterRecord::Entries { from, entries } => durable.log.replace_from(*from, entries),
        MasterRecord::Snapshot(snapshot) => durable.log.install(snapshot),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{Registry, RegistryEntry};

    fn entry(term: u64) -> LogEntry {
        LogEntry {
            term: Term(term),
            entry: RegistryEntry::Noop,
        }
    }

    #[test]
    fn replacing_truncates_a_conflicting_suffix() {
        let mut log = RaftLog::default();
        log.replace_from(LogIndex(1), &[entry(1), entry(1), entry(2)]);
        assert_eq!(log.last_index(), LogIndex(3));
        log.replace_from(LogIndex(2), &[entry(3)]);
        assert_eq!(log.last_index(), LogIndex(2));
        assert_eq!(log.term_at(LogIndex(2)), Some(Term(3)));
        assert_eq!(log.term_at(LogIndex(0)), Some(Term(0)));
        assert_eq!(log.term_at(LogIndex(3)), None);
    }

    #[test]
    fn compaction_keeps_the_entries_after_the_snapshot() {
        let mut log = RaftLog::default();
        log.replace_from(LogIndex(1), &[entry(1), entry(1), entry(2)]);
        log.install(&Snapshot {
            index: LogIndex(2),
            term: Term(1),
            registry: Registry::new(),
        });
        assert_eq!(log.last_index(), LogIndex(3));
        assert_eq!(log.term_at(LogIndex(2)), Some(Term(1)));
        assert_eq!(log.term_at(LogIndex(1)), None, "compacted away");
        assert_eq!(log.entry_at(LogIndex(3)), Some(&entry(2)));
        assert_eq!(log.entries_after(LogIndex(2), 10), &[entry(2)]);
    }

    #[test]
    fn installing_a_conflicting_snapshot_drops_the_log() {
        let mut log = RaftLog::default();
        log.replace_from(LogIndex(1), &[entry(1), entry(1)]);
        log.install(&Snapshot {
            index: LogIndex(2),
            term: Term(2),
            registry: Registry::new(),
        });
        assert_eq!(log.last_index(), LogIndex(2));
        assert!(log.entries().is_empty());
        // An older snapshot changes nothing.
        log.install(&Snapshot::default());
        assert_eq!(log.snapshot().index, LogIndex(2));
    }

    #[test]
    fn up_to_date_compares_last_term_then_length() {
        let mut log = RaftLog::default();
        log.replace_from(LogIndex(1), &[entry(1), entry(2)]);
        assert!(log.candidate_is_up_to_date(LogIndex(2), Term(2)));
        assert!(log.candidate_is_up_to_date(LogIndex(1), Term(3)));
        assert!(!log.candidate_is_up_to_date(LogIndex(5), Term(1)));
        assert!(!log.candidate_is_up_to_date(LogIndex(1), Term(2)));
    }
}
