//! Turning a machine's [`Note`]s into `tracing` events for the operator.
//!
//! Decisions (elections, leadership changes) are `info`: quiet by default, shown with
//! `RUST_LOG=info`. Refusals that point at a misconfiguration or an overloaded leader are
//! `warn`. A misconfigured peer repeats itself with every heartbeat, so each distinct warning
//! is written at most once per [`WARNING_REPEAT_INTERVAL`], with the count of those held back.

use std::collections::BTreeMap;
use std::time::Duration;

use berth_protocol::note::Note;
use tokio::time::Instant;

/// The shortest time between two identical warnings.
pub const WARNING_REPEAT_INTERVAL: Duration = Duration::from_secs(10);
/// The most distinct warnings remembered for rate limiting. Warnings name peers, which a
/// stranger can choose; past this bound, the oldest are forgotten.
pub const WARNINGS_REMEMBERED_MAX: usize = 256;

/// Writes notes to the log, rate-limiting repeated warnings.
#[derive(Debug, Default)]
pub struct NoteLog {
    /// For each warning recently written: when, and how many identical ones were held back
    /// since.
    warned: BTreeMap<Note, (Instant, u64)>,
}

impl NoteLog {
    /// An empty log.
    pub fn new() -> NoteLog {
        NoteLog::default()
    }

    /// Writes `note` as a `tracing` event (or holds back a repeated warning).
    pub fn write(&mut self, note: &Note) {
        match note {
            Note::ElectionStarted { term } => {
                tracing::info!(term = term.0, "starting an election");
            }
            Note::BecameLeader { term } => tracing::info!(term = term.0, "became the leader"),
            Note::FollowingLeader { term, leader } => {
                tracing::info!(term = term.0, leader = leader.0, "following a new leader");
            }
            Note::SteppedDown { term, reason } => {
                tracing::info!(term = term.0, ?reason, "stepped down as leader");
            }
            Note::Compacted { index } => {
                tracing::debug!(
                    index = index.0,
                    "compacted the replicated log into a registry snapshot"
                );
            }
            Note::MembershipMismatch { peer } => {
                if let Some(held_back) = self.admit_warning(note) {
                    tracing::warn!(
                        %peer,
                        held_back,
                        "refusing a master configured with another list of masters: give \
                         every master the same --masters list"
                    );
                }
            }
            Note::UnknownPeer { peer } => {
                if let Some(held_back) = self.admit_warning(note) {
                    tracing::warn!(
                        %peer,
                        held_back,
                        "ignoring master messages from an address that is not in --masters"
                    );
                }
            }
            Note::UnknownFramework { peer, framework } => {
                if let Some(held_back) = self.admit_warning(note) {
                    tracing::warn!(
                        %peer,
                        %framework,
                        held_back,
                        "refused a scheduler's request for a framework it does not hold"
                    );
                }
            }
            Note::FrameworkDisconnected { framework } => {
                tracing::warn!(%framework, "a framework's scheduler stopped answering: its failover timeout starts");
            }
            Note::FrameworkRemoved { framework } => {
                tracing::warn!(%framework, "a framework's failover timeout ran out: it is removed and its tasks killed");
            }
            Note::UnknownAgent { peer, agent } => {
                tracing::warn!(%peer, %agent, "refused a request about an agent this cluster never admitted");
            }
            Note::AgentAdmitted { agent, address } => {
                tracing::info!(%agent, %address, "admitted a new agent");
            }
            Note::AgentUnreachable { agent } => {
                tracing::info!(%agent, "marking an agent unreachable: it missed too many pings");
            }
            Note::AgentReadmitted { agent, address } => {
                tracing::info!(%agent, %address, "readmitted an agent: its tasks resume");
            }
            Note::RegisteredWithLeader {
                agent,
                leader,
                term,
            } => {
                tracing::info!(%agent, %leader, term = term.0, "registered with the leader");
            }
            Note::LeaderSilent { leader } => {
                tracing::info!(%leader, "no ping from the leader in time: looking for the leader");
            }
            Note::LeaderConnectionLost { leader } => {
                tracing::info!(%leader, "the connection to the leader ended: looking for the leader");
            }
            Note::StaleTerm {
                peer,
                term,
                highest,
            } => {
                tracing::debug!(
                    %peer,
                    term = term.0,
                    highest = highest.0,
                    "ignored a command from a deposed leader"
                );
            }
            Note::Overloaded { peer } => {
                if let Some(held_back) = self.admit_warning(note) {
                    tracing::warn!(
                        %peer,
                        held_back,
                        "refused a request: too many are waiting to commit; the requester retries"
                    );
                }
            }
        }
    }

    /// `Some(count of identical warnings held back since the last one)` if `note` may be
    /// written now; `None` to hold it back.
    fn admit_warning(&mut self, note: &Note) -> Option<u64> {
        let now = Instant::now();
        if let Some((written, held_back)) = self.warned.get_mut(note) {
            if now.duration_since(*written) < WARNING_REPEAT_INTERVAL {
                *held_back += 1;
                return None;
            }
            let count = *held_back;
            *written = now;
            *held_back = 0;
            return Some(count);
        }
        if self.warned.len() >= WARNINGS_REMEMBERED_MAX {
            self.warned
                .retain(|_, (written, _)| now.duration_since(*written) < WARNING_REPEAT_INTERVAL);
            if self.warned.len() >= WARNINGS_REMEMBERED_MAX {
                // Every remembered warning is recent: forget the one written longest ago.
                let oldest = self
                    .warned
                    .iter()
                    .min_by_key(|(_, (written, _))| *written)
                    .map(|(note, _)| note.clone());
                if let Some(oldest) = oldest {
                    self.warned.remove(&oldest);
                }
            }
        }
        self.warned.insert(note.clone(), (now, 0));
        Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_protocol::Address;

    fn unknown(peer: &str) -> Note {
        Note::UnknownPeer {
            peer: Address::new(peer).expect("a valid address"),
        }
    }

    #[test]
    fn repeated_warnings_are_held_back() {
        let mut log = NoteLog::new();
        assert_eq!(log.admit_warning(&unknown("10.0.0.9:5050")), Some(0));
        assert_eq!(log.admit_warning(&unknown("10.0.0.9:5050")), None);
        assert_eq!(log.admit_warning(&unknown("10.0.0.9:5050")), None);
        assert_eq!(
            log.admit_warning(&unknown("10.0.0.8:5050")),
            Some(0),
            "another peer is another warning"
        );
    }

    #[test]
    fn remembered_warnings_are_bounded() {
        let mut log = NoteLog::new();
        for port in 0..WARNINGS_REMEMBERED_MAX + 10 {
            log.admit_warning(&unknown(&format!("10.0.0.9:{port}")));
            assert!(log.warned.len() <= WARNINGS_REMEMBERED_MAX);
        }
    }
}
