//! The election and replication rules of the [master](super). Each handler cites the rule of
//! the module docs it implements.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use super::{
    AgentDirectory, ElectionRole, LeaderState, Master, MasterRecord, MasterTimer, Mutation,
    Progress,
};
use crate::bounded::BoundedVec;
use crate::ids::{IdSequence, MasterId, Term};
use crate::message::{
    APPEND_ENTRIES_MAX, AppendEntries, AppendReply, ElectionMessage, InstallSnapshot, LogEntry,
    Message, VoteReply, VoteRequest,
};
use crate::note::{Note, StepDownReason};
use crate::registry::{LogIndex, RegistryEntry};
use crate::{Address, DurationRange, Outbox};

impl Master {
    /// Dispatches a message from master `peer` (at `from`).
    pub(super) fn handle_election(
        &mut self,
        peer: MasterId,
        from: &Address,
        message: ElectionMessage,
        out: &mut Outbox<Master>,
    ) {
        let membership = match &message {
            ElectionMessage::PreVote(request) | ElectionMessage::RequestVote(request) => {
                Some(request.membership)
            }
            ElectionMessage::AppendEntries(append) => Some(append.membership),
            ElectionMessage::InstallSnapshot(install) => Some(install.membership),
            ElectionMessage::PreVoteReply(_)
            | ElectionMessage::Vote(_)
            | ElectionMessage::AppendReply(_)
            | ElectionMessage::InstallSnapshotReply(_) => None,
        };
        if membership.is_some_and(|digest| digest != self.config.membership_digest()) {
            out.note(Note::MembershipMismatch { peer: from.clone() });
            return;
        }
        match message {
            ElectionMessage::PreVote(request) => self.handle_pre_vote(from, &request, out),
            ElectionMessage::PreVoteReply(reply) => self.handle_pre_vote_reply(peer, reply, out),
            ElectionMessage::RequestVote(request) => {
                self.handle_request_vote(peer, from, &request, out);
            }
            ElectionMessage::Vote(reply) => self.handle_vote(peer, reply, out),
            ElectionMessage::AppendEntries(append) => {
                self.handle_append_entries(peer, from, append, out);
            }
            ElectionMessage::AppendReply(reply) => self.handle_append_reply(peer, reply, out),
            ElectionMessage::InstallSnapshot(install) => {
                self.handle_install_snapshot(peer, from, install, out);
            }
            ElectionMessage::InstallSnapshotReply(reply) => {
                self.handle_append_reply(peer, reply, out);
            }
        }
    }

    /// Follower or candidate: no leader for an election timeout, so ask for pre-votes.
    /// Leader: check-quorum.
    pub(super) fn handle_election_timeout(&mut self, out: &mut Outbox<Master>) {
        if let ElectionRole::Leader(leader) = &mut self.role {
            if !self.config.check_quorum {
                return;
            }
            // Check-quorum: step down unless a majority answered since the last check.
            let in_contact = leader.active.len() + 1;
            leader.active.clear();
            if in_contact < self.majority() {
                self.step_down(StepDownReason::LostQuorum, out);
            } else {
                out.set_timer(MasterTimer::Election, self.config.election_timeout);
            }
            return;
        }
        self.start_pre_vote(out);
    }

    /// Leader: heartbeats, carrying whatever entries each follower lacks.
    pub(super) fn handle_heartbeat(&mut self, out: &mut Outbox<Master>) {
        if self.is_leader() {
            self.replicate_all(out);
            out.set_timer(
                MasterTimer::Heartbeat,
                DurationRange::fixed(self.config.heartbeat_interval),
            );
        }
    }

    /// Pre-vote: ask whether a majority would vote for us in the next term, without raising
    /// anyone's term.
    fn start_pre_vote(&mut self, out: &mut Outbox<Master>) {
        let mut granted = BTreeSet::new();
        granted.insert(self.id());
        self.role = ElectionRole::PreCandidate { granted };
        out.set_timer(MasterTimer::Election, self.config.election_timeout);
        if self.majority() == 1 || !self.config.pre_vote {
            self.start_election(out);
            return;
        }
        let request = self.vote_request(self.term().next());
        for (_, address) in self.peers() {
            out.send(
                address.clone(),
                Message::Election(ElectionMessage::PreVote(request.clone())),
            );
        }
    }

    /// Becomes a candidate: next term, vote for itself, persisted before anyone is asked (E1).
    pub(super) fn start_election(&mut self, out: &mut Outbox<Master>) {
        let term = self.term().next();
        self.record(
            MasterRecord::HardState {
                term,
                voted_for: Some(self.id()),
            },
            out,
        );
        out.note(Note::ElectionStarted { term });
        let mut granted = BTreeSet::new();
        granted.insert(self.id());
        self.role = ElectionRole::Candidate { granted };
        if self.majority() == 1 {
            self.become_leader(out);
            return;
        }
        out.set_timer(MasterTimer::Election, self.config.election_timeout);
        let request = self.vote_request(term);
        for (_, address) in self.peers() {
            out.send(
                address.clone(),
                Message::Election(ElectionMessage::RequestVote(request.clone())),
            );
        }
    }

    fn vote_request(&self, term: Term) -> VoteRequest {
        VoteRequest {
            term,
            last_log_index: self.log().last_index(),
            last_log_term: self.log().last_term(),
            membership: self.config.membership_digest(),
        }
    }

    /// Whether this master has heard from a leader of its term within an election timeout
    /// (or leads): then it refuses pre-votes and ignores higher-term vote requests.
    fn hears_from_leader(&self) -> bool {
        self.config.check_quorum && self.leader().is_some()
    }

    /// Answers a pre-vote as it would answer a vote, but changes nothing.
    fn handle_pre_vote(&mut self, from: &Address, request: &VoteRequest, out: &mut Outbox<Master>) {
        let granted = request.term > self.term()
            && !self.hears_from_leader()
            && (self
                .log()
                .candidate_is_up_to_date(request.last_log_index, request.last_log_term)
                || self.mutated(Mutation::VoteWithoutLogCheck));
        let term = if granted { request.term } else { self.term() };
        out.send(
            from.clone(),
            Message::Election(ElectionMessage::PreVoteReply(VoteReply { term, granted })),
        );
    }

    fn handle_pre_vote_reply(
        &mut self,
        peer: MasterId,
        reply: VoteReply,
        out: &mut Outbox<Master>,
    ) {
        if !reply.granted && reply.term > self.term() {
            self.observe_higher_term(reply.term, out);
            return;
        }
        let next_term = self.term().next();
        let majority = self.majority();
        let ElectionRole::PreCandidate { granted } = &mut self.role else {
            return;
        };
        if reply.granted && reply.term == next_term {
            granted.insert(peer);
            if granted.len() >= majority {
                self.start_election(out);
            }
        }
    }

    /// Grants at most one vote per term, to a candidate at least as up to date, and persists
    /// the vote before sending it (E1, E2).
    fn handle_request_vote(
        &mut self,
        candidate: MasterId,
        from: &Address,
        request: &VoteRequest,
        out: &mut Outbox<Master>,
    ) {
        if request.term > self.term() && self.hears_from_leader() {
            // Leader stickiness: a healthy leader is not deposed by a higher term.
            return;
        }
        if request.term < self.term() {
            out.send(
                from.clone(),
                Message::Election(ElectionMessage::Vote(VoteReply {
                    term: self.term(),
                    granted: false,
                })),
            );
            return;
        }
        if request.term > self.term() {
            self.observe_higher_term(request.term, out);
        }
        let free = self.voted_for().is_none_or(|voted| voted == candidate)
            || self.mutated(Mutation::VoteTwicePerTerm);
        let up_to_date = self
            .log()
            .candidate_is_up_to_date(request.last_log_index, request.last_log_term)
            || self.mutated(Mutation::VoteWithoutLogCheck);
        let granted = free && up_to_date;
        if granted {
            let vote = MasterRecord::HardState {
                term: self.term(),
                voted_for: Some(candidate),
            };
            if self.mutated(Mutation::VoteNotPersisted) {
                super::log::apply(&mut self.durable, &vote);
            } else {
                self.record(vote, out);
            }
            out.set_timer(MasterTimer::Election, self.config.election_timeout);
        }
        out.send(
            from.clone(),
            Message::Election(ElectionMessage::Vote(VoteReply {
                term: if granted { request.term } else { self.term() },
                granted,
            })),
        );
    }

    fn handle_vote(&mut self, voter: MasterId, reply: VoteReply, out: &mut Outbox<Master>) {
        if reply.term > self.term() {
            self.observe_higher_term(reply.term, out);
            return;
        }
        let term = self.term();
        let majority = self.majority();
        let ElectionRole::Candidate { granted } = &mut self.role else {
            return;
        };
        if reply.granted && reply.term == term {
            granted.insert(voter);
            if granted.len() >= majority {
                self.become_leader(out);
            }
        }
    }

    /// Wins the election: a no-op entry of its own term commits whatever earlier leaders left.
    fn become_leader(&mut self, out: &mut Outbox<Master>) {
        let next = self.log().last_index().next();
        let progress: BTreeMap<MasterId, Progress> = self
            .peers()
            .map(|(peer, _)| {
                (
                    peer,
                    Progress {
                        next,
                        matched: LogIndex(0),
                    },
                )
            })
            .collect();
        self.role = ElectionRole::Leader(alloc::boxed::Box::new(LeaderState {
            progress,
            active: BTreeSet::new(),
            pending: BTreeMap::new(),
            agents: AgentDirectory::new(IdSequence::new(self.term()), &self.registry),
            frameworks: super::FrameworkDirectory::new(IdSequence::new(self.term())),
        }));
        out.note(Note::BecameLeader { term: self.term() });
        let appended = self.append(RegistryEntry::Noop, out);
        debug_assert!(
            appended.is_some(),
            "a new leader's log has room for its no-op"
        );
        self.replicate_all(out);
        out.set_timer(
            MasterTimer::Heartbeat,
            crate::DurationRange::fixed(self.config.heartbeat_interval),
        );
        if self.config.check_quorum {
            out.set_timer(MasterTimer::Election, self.config.election_timeout);
        } else {
            out.cancel_timer(MasterTimer::Election);
        }
        self.contact_agents(out);
        self.arm_framework_failovers(out);
    }

    /// A message showed a term higher than ours: adopt it as a follower with no vote,
    /// persisted (E1: a vote is per term).
    fn observe_higher_term(&mut self, term: Term, out: &mut Outbox<Master>) {
        debug_assert!(term > self.term());
        if self.is_leader() {
            self.step_down(StepDownReason::HigherTerm, out);
        }
        self.record(
            MasterRecord::HardState {
                term,
                voted_for: None,
            },
            out,
        );
        self.role = ElectionRole::Follower { leader: None };
    }

    /// Stops leading; the term does not change.
    fn step_down(&mut self, reason: StepDownReason, out: &mut Outbox<Master>) {
        out.note(Note::SteppedDown {
            term: self.term(),
            reason,
        });
        out.cancel_timer(MasterTimer::Heartbeat);
        self.stop_agent_pings(out);
        out.set_timer(MasterTimer::Election, self.config.election_timeout);
        self.role = ElectionRole::Follower { leader: None };
    }

    /// Follows `leader` in the current term, re-arming the election timer.
    fn follow(&mut self, leader: MasterId, out: &mut Outbox<Master>) {
        debug_assert!(
            !self.is_leader() || self.config.mutation.is_some(),
            "E1: a leader never hears from another leader of its term"
        );
        if self.leader() != Some(leader) {
            out.note(Note::FollowingLeader {
                term: self.term(),
                leader,
            });
        }
        self.role = ElectionRole::Follower {
            leader: Some(leader),
        };
        out.set_timer(MasterTimer::Election, self.config.election_timeout);
    }

    /// Log matching (E2): append only after a matching predecessor; persist before answering.
    fn handle_append_entries(
        &mut self,
        leader: MasterId,
        from: &Address,
        append: AppendEntries,
        out: &mut Outbox<Master>,
    ) {
        if append.term < self.term() {
            self.reply_append(from, false, self.log().last_index().next(), out);
            return;
        }
        if append.term > self.term() {
            self.observe_higher_term(append.term, out);
        }
        self.follow(leader, out);

        // Entries inside our snapshot are committed: skip them, they match by E2.
        let snapshot_index = self.log().snapshot().index;
        let skip = snapshot_index.0.saturating_sub(append.previous_index.0);
        let entries: Vec<LogEntry> = append
            .entries
            .into_vec()
            .into_iter()
            .skip(usize::try_from(skip).unwrap_or(usize::MAX))
            .collect();
        let previous_index = append.previous_index.max(snapshot_index);
        let previous_matches = if append.previous_index < snapshot_index
            || self.mutated(Mutation::AppendWithoutPreviousCheck)
        {
            true
        } else {
            self.log().term_at(previous_index) == Some(append.previous_term)
        };
        if !previous_matches {
            let retry = previous_index.min(self.log().last_index().next());
            self.reply_append(from, false, retry.max(snapshot_index.next()), out);
            return;
        }
        // Append from the first entry we lack or that conflicts; never truncate entries that
        // match (a delayed, shorter AppendEntries must not undo a longer one).
        let first_new = entries.iter().enumerate().find(|(offset, entry)| {
            let index = LogIndex(previous_index.0 + 1 + *offset as u64);
            self.log().term_at(index) != Some(entry.term)
        });
        if let Some((offset, _)) = first_new {
            let from_index = LogIndex(previous_index.0 + 1 + offset as u64);
            self.record(
                MasterRecord::Entries {
                    from: from_index,
                    entries: entries[offset..].to_vec(),
                },
                out,
            );
        }
        let matched = LogIndex(previous_index.0 + entries.len() as u64);
        self.commit_to(append.leader_commit.min(matched), out);
        self.reply_append(from, true, matched, out);
    }

    fn reply_append(&self, to: &Address, success: bool, index: LogIndex, out: &mut Outbox<Master>) {
        out.send(
            to.clone(),
            Message::Election(ElectionMessage::AppendReply(AppendReply {
                term: self.term(),
                success,
                index,
            })),
        );
    }

    /// A follower too far behind takes the leader's snapshot.
    fn handle_install_snapshot(
        &mut self,
        leader: MasterId,
        from: &Address,
        install: InstallSnapshot,
        out: &mut Outbox<Master>,
    ) {
        let reply = |master: &Master, success, index, out: &mut Outbox<Master>| {
            out.send(
                from.clone(),
                Message::Election(ElectionMessage::InstallSnapshotReply(AppendReply {
                    term: master.term(),
                    success,
                    index,
                })),
            );
        };
        if install.term < self.term() {
            reply(self, false, self.log().last_index().next(), out);
            return;
        }
        if install.term > self.term() {
            self.observe_higher_term(install.term, out);
        }
        self.follow(leader, out);
        let snapshot = install.snapshot;
        if snapshot.index > self.commit_index {
            self.registry = snapshot.registry.clone();
            self.commit_index = snapshot.index;
            let index = snapshot.index;
            self.record(MasterRecord::Snapshot(snapshot), out);
            reply(self, true, index, out);
        } else {
            reply(self, true, self.commit_index, out);
        }
    }

    /// Leader: a follower's answer moves its progress and maybe the commit index.
    fn handle_append_reply(
        &mut self,
        peer: MasterId,
        reply: AppendReply,
        out: &mut Outbox<Master>,
    ) {
        if reply.term > self.term() {
            self.observe_higher_term(reply.term, out);
            return;
        }
        let last_index = self.log().last_index();
        let term = self.term();
        let ElectionRole::Leader(leader) = &mut self.role else {
            return;
        };
        if reply.term < term {
            return;
        }
        leader.active.insert(peer);
        let Some(progress) = leader.progress.get_mut(&peer) else {
            return;
        };
        if reply.success {
            // Replies may arrive out of order: progress only moves forward.
            let matched = reply.index.min(last_index);
            if matched > progress.matched {
                progress.matched = matched;
            }
            progress.next = progress.next.max(progress.matched.next());
            self.advance_commit(out);
        } else {
            progress.next = reply
                .index
                .max(progress.matched.next())
                .min(last_index.next());
        }
        if self.needs_entries(peer) {
            self.replicate_to(peer, out);
        }
    }

    /// Whether `peer` lacks entries the leader has.
    fn needs_entries(&self, peer: MasterId) -> bool {
        match &self.role {
            ElectionRole::Leader(leader) => leader
                .progress
                .get(&peer)
                .is_some_and(|progress| progress.matched < self.log().last_index()),
            _ => false,
        }
    }

    /// Leader: commits the highest index stored on a majority whose entry is of the current
    /// term (Raft §5.4.2); earlier entries commit with it.
    pub(super) fn advance_commit(&mut self, out: &mut Outbox<Master>) {
        let ElectionRole::Leader(leader) = &self.role else {
            return;
        };
        let mut matched: Vec<LogIndex> = leader
            .progress
            .values()
            .map(|progress| progress.matched)
            .collect();
        matched.push(self.log().last_index());
        matched.sort_unstable_by(|a, b| b.cmp(a));
        let stored_on_majority = matched[self.majority() - 1];
        let own_term = self.log().term_at(stored_on_majority) == Some(self.term());
        if own_term {
            self.commit_to(stored_on_majority, out);
        }
    }

    /// Leader: sends every follower what it lacks (or a heartbeat).
    pub(super) fn replicate_all(&self, out: &mut Outbox<Master>) {
        for (peer, _) in self.peers() {
            self.replicate_to(peer, out);
        }
    }

    /// Leader: sends `peer` the entries from its next index, or the snapshot if they were
    /// compacted away.
    fn replicate_to(&self, peer: MasterId, out: &mut Outbox<Master>) {
        let ElectionRole::Leader(leader) = &self.role else {
            return;
        };
        let (Some(progress), Some(address)) =
            (leader.progress.get(&peer), self.config.members.get(&peer))
        else {
            return;
        };
        let log = self.log();
        let previous_index = progress.next.previous();
        let message = match log.term_at(previous_index) {
            Some(previous_term) if previous_index >= log.snapshot().index => {
                let entries = log
                    .entries_after(previous_index, APPEND_ENTRIES_MAX)
                    .to_vec();
                ElectionMessage::AppendEntries(AppendEntries {
                    term: self.term(),
                    previous_index,
                    previous_term,
                    entries: BoundedVec::from_vec(entries)
                        .expect("entries_after returns at most APPEND_ENTRIES_MAX entries"),
                    leader_commit: self.commit_index,
                    membership: self.config.membership_digest(),
                })
            }
            _ => ElectionMessage::InstallSnapshot(InstallSnapshot {
                term: self.term(),
                snapshot: log.snapshot().clone(),
                membership: self.config.membership_digest(),
            }),
        };
        out.send(address.clone(), Message::Election(message));
    }
}
