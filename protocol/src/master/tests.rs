//! Unit tests of the master's election and replication rules, asserting on outboxes. Each
//! names the rule (module docs) and the invariant it protects.

use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;

use super::*;
use crate::Command;
use crate::bounded::BoundedVec;
use crate::ids::Role;
use crate::message::{
    AppendEntries, AppendReply, ElectionMessage, InstallSnapshot, Snapshot, VoteReply, VoteRequest,
};
use crate::note::StepDownReason;
use crate::test_support::{persisted, sent};

type Commands = Vec<Command<MasterTimer, MasterRecord, Infallible>>;

fn address(id: u8) -> Address {
    Address::new(&alloc::format!("m{id}")).expect("valid")
}

fn config(id: u8, count: u8) -> MasterConfig {
    let members: BTreeMap<MasterId, Address> = (1..=count)
        .map(|member| (MasterId(member), address(member)))
        .collect();
    MasterConfig::new(MasterId(id), members).expect("valid configuration")
}

fn boot(id: u8, count: u8) -> (Master, Commands) {
    boot_from(id, count, &MasterDurable::default())
}

fn boot_from(id: u8, count: u8, durable: &MasterDurable) -> (Master, Commands) {
    let mut out = Outbox::new();
    let master = Master::boot(&config(id, count), durable, &mut out).expect("boots");
    (master, out.drain().collect())
}

fn deliver(master: &mut Master, from: u8, message: ElectionMessage) -> Commands {
    let mut out = Outbox::new();
    master.handle_message(&address(from), Message::Election(message), &mut out);
    out.drain().collect()
}

fn fire(master: &mut Master, timer: MasterTimer) -> Commands {
    let mut out = Outbox::new();
    master.handle_timer(timer, &mut out);
    out.drain().collect()
}

fn vote_request(term: u64, last_index: u64, last_term: u64) -> VoteRequest {
    VoteRequest {
        term: Term(term),
        last_log_index: LogIndex(last_index),
        last_log_term: Term(last_term),
        membership: config(1, 3).membership_digest(),
    }
}

fn heartbeat(term: u64, commit: u64) -> AppendEntries {
    AppendEntries {
        term: Term(term),
        previous_index: LogIndex(0),
        previous_term: Term(0),
        entries: BoundedVec::new(),
        leader_commit: LogIndex(commit),
        membership: config(1, 3).membership_digest(),
    }
}

fn vote_granted(commands: &Commands) -> Option<bool> {
    sent(commands)
        .into_iter()
        .find_map(|(_, message)| match message {
            Message::Election(ElectionMessage::Vote(reply)) => Some(reply.granted),
            _ => None,
        })
}

/// Drives master 1 of 3 to leadership of term 1 and returns it.
fn leader_of_term_one() -> Master {
    let (mut master, _) = boot(1, 3);
    fire(&mut master, MasterTimer::Election);
    deliver(
        &mut master,
        2,
        ElectionMessage::PreVoteReply(VoteReply {
            term: Term(1),
            granted: true,
        }),
    );
    deliver(
        &mut master,
        2,
        ElectionMessage::Vote(VoteReply {
            term: Term(1),
            granted: true,
        }),
    );
    assert!(master.is_leader());
    master
}

#[test]
fn a_lone_master_leads_at_once() {
    let (master, commands) = boot(1, 1);
    assert!(master.is_leader());
    assert_eq!(master.term(), Term(1));
    // Its no-op commits at once: it is a majority by itself.
    assert_eq!(master.commit_index(), LogIndex(1));
    assert!(matches!(
        persisted(&commands)[0],
        MasterRecord::HardState {
            voted_for: Some(MasterId(1)),
            ..
        }
    ));
}

#[test]
fn pre_vote_does_not_raise_anyones_term() {
    let (mut candidate, _) = boot(1, 3);
    let commands = fire(&mut candidate, MasterTimer::Election);
    assert_eq!(
        candidate.term(),
        Term(0),
        "the pre-candidate keeps its term"
    );
    assert!(
        persisted(&commands).is_empty(),
        "nothing to persist before a pre-vote"
    );
    assert_eq!(sent(&commands).len(), 2);

    let (mut voter, _) = boot(2, 3);
    let commands = deliver(
        &mut voter,
        1,
        ElectionMessage::PreVote(vote_request(1, 0, 0)),
    );
    assert_eq!(voter.term(), Term(0), "granting a pre-vote changes nothing");
    assert!(persisted(&commands).is_empty());
    assert!(matches!(
        sent(&commands)[0].1,
        Message::Election(ElectionMessage::PreVoteReply(VoteReply {
            granted: true,
            term: Term(1)
        }))
    ));
}

#[test]
fn a_master_that_hears_from_its_leader_refuses_pre_votes_and_ignores_higher_terms() {
    let (mut follower, _) = boot(2, 3);
    deliver(
        &mut follower,
        1,
        ElectionMessage::AppendEntries(heartbeat(1, 0)),
    );
    assert_eq!(follower.leader(), Some(MasterId(1)));
    // A master that was cut off comes back asking for term 5.
    let commands = deliver(
        &mut follower,
        3,
        ElectionMessage::PreVote(vote_request(5, 9, 1)),
    );
    assert!(matches!(
        sent(&commands)[0].1,
        Message::Election(ElectionMessage::PreVoteReply(VoteReply {
            granted: false,
            term: Term(1)
        }))
    ));
    let commands = deliver(
        &mut follower,
        3,
        ElectionMessage::RequestVote(vote_request(5, 9, 1)),
    );
    assert!(commands.is_empty(), "leader stickiness: ignored");
    assert_eq!(follower.term(), Term(1));
}

#[test]
fn a_vote_is_persisted_before_it_is_sent() {
    let (mut voter, _) = boot(2, 3);
    let commands = deliver(
        &mut voter,
        1,
        ElectionMessage::RequestVote(vote_request(1, 0, 0)),
    );
    let persist = commands
        .iter()
        .position(|c| matches!(c, Command::Persist(_)));
    let send = commands
        .iter()
        .position(|c| matches!(c, Command::Send { .. }));
    assert!(
        persist.expect("persisted") < send.expect("sent"),
        "E1: persist is a barrier before the vote"
    );
    assert_eq!(voter.voted_for(), Some(MasterId(1)));
}

#[test]
fn one_vote_per_term() {
    let (mut voter, _) = boot(2, 3);
    assert_eq!(
        vote_granted(&deliver(
            &mut voter,
            1,
            ElectionMessage::RequestVote(vote_request(1, 0, 0))
        )),
        Some(true)
    );
    // The same candidate again (a duplicate): granted again, same vote.
    assert_eq!(
        vote_granted(&deliver(
            &mut voter,
            1,
            ElectionMessage::RequestVote(vote_request(1, 0, 0))
        )),
        Some(true)
    );
    // Another candidate of the same term: refused (E1).
    assert_eq!(
        vote_granted(&deliver(
            &mut voter,
            3,
            ElectionMessage::RequestVote(vote_request(1, 0, 0))
        )),
        Some(false)
    );
    // The vote survives a crash.
    let (mut recovered, _) = boot_from(2, 3, &voter.durable);
    assert_eq!(
        vote_granted(&deliver(
            &mut recovered,
            3,
            ElectionMessage::RequestVote(vote_request(1, 0, 0))
        )),
        Some(false)
    );
}

#[test]
fn a_stale_vote_request_is_refused_with_the_current_term() {
    let (mut voter, _) = boot(2, 3);
    deliver(
        &mut voter,
        1,
        ElectionMessage::RequestVote(vote_request(3, 0, 0)),
    );
    // Let its election timer fire so it no longer follows anyone.
    fire(&mut voter, MasterTimer::Election);
    let commands = deliver(
        &mut voter,
        3,
        ElectionMessage::RequestVote(vote_request(2, 0, 0)),
    );
    assert!(matches!(
        sent(&commands)[0].1,
        Message::Election(ElectionMessage::Vote(VoteReply {
            granted: false,
            term: Term(3)
        }))
    ));
}

#[test]
fn a_vote_needs_an_up_to_date_log() {
    let (mut voter, _) = boot(2, 3);
    let mut append = heartbeat(2, 0);
    append.entries = BoundedVec::from_vec(vec![LogEntry {
        term: Term(2),
        entry: RegistryEntry::Noop,
    }])
    .expect("one");
    deliver(&mut voter, 1, ElectionMessage::AppendEntries(append));
    fire(&mut voter, MasterTimer::Election);
    // A candidate whose last entry is of an older term is refused (E2, leader completeness).
    let commands = deliver(
        &mut voter,
        3,
        ElectionMessage::RequestVote(vote_request(3, 5, 1)),
    );
    assert_eq!(vote_granted(&commands), Some(false));
    assert_eq!(voter.term(), Term(3), "the higher term is adopted even so");
    let commands = deliver(
        &mut voter,
        3,
        ElectionMessage::RequestVote(vote_request(3, 1, 2)),
    );
    assert_eq!(vote_granted(&commands), Some(true));
}

#[test]
fn a_leader_steps_down_on_a_higher_term() {
    let mut leader = leader_of_term_one();
    let commands = deliver(
        &mut leader,
        2,
        ElectionMessage::AppendReply(AppendReply {
            term: Term(4),
            success: false,
            index: LogIndex(1),
        }),
    );
    assert!(!leader.is_leader());
    assert_eq!(leader.term(), Term(4));
    assert!(commands.contains(&Command::Note(Note::SteppedDown {
        term: Term(1),
        reason: StepDownReason::HigherTerm
    })));
    assert!(commands.contains(&Command::CancelTimer(MasterTimer::Heartbeat)));
}

#[test]
fn check_quorum_steps_a_cut_off_leader_down() {
    let mut leader = leader_of_term_one();
    // Master 2 answers within the first election timeout: a majority (with itself).
    deliver(
        &mut leader,
        2,
        ElectionMessage::AppendReply(AppendReply {
            term: Term(1),
            success: true,
            index: LogIndex(1),
        }),
    );
    fire(&mut leader, MasterTimer::Election);
    assert!(leader.is_leader());
    // Nobody answers within the next one.
    let commands = fire(&mut leader, MasterTimer::Election);
    assert!(!leader.is_leader());
    assert_eq!(
        leader.term(),
        Term(1),
        "stepping down does not change the term"
    );
    assert!(commands.contains(&Command::Note(Note::SteppedDown {
        term: Term(1),
        reason: StepDownReason::LostQuorum
    })));
}

#[test]
fn a_stale_leader_is_told_the_current_term() {
    let (mut follower, _) = boot(2, 3);
    deliver(
        &mut follower,
        3,
        ElectionMessage::AppendEntries(heartbeat(2, 0)),
    );
    let commands = deliver(
        &mut follower,
        1,
        ElectionMessage::AppendEntries(heartbeat(1, 0)),
    );
    assert_eq!(
        follower.leader(),
        Some(MasterId(3)),
        "the stale leader is not followed"
    );
    assert!(matches!(
        sent(&commands)[0].1,
        Message::Election(ElectionMessage::AppendReply(AppendReply {
            success: false,
            term: Term(2),
            ..
        }))
    ));
}

#[test]
fn entries_commit_on_a_majority_of_the_leaders_term_only() {
    let mut leader = leader_of_term_one();
    assert_eq!(leader.commit_index(), LogIndex(0));
    deliver(
        &mut leader,
        2,
        ElectionMessage::AppendReply(AppendReply {
            term: Term(1),
            success: true,
            index: LogIndex(1),
        }),
    );
    assert_eq!(
        leader.commit_index(),
        LogIndex(1),
        "the no-op of term 1 is on 2 of 3"
    );

    // A leader of term 3 whose log holds an unreplicated entry of term 2 does not commit it by
    // counting replicas (Raft figure 8); it commits it with its own no-op.
    let mut durable = MasterDurable::default();
    log::apply(
        &mut durable,
        &MasterRecord::Entries {
            from: LogIndex(1),
            entries: vec![LogEntry {
                term: Term(2),
                entry: RegistryEntry::Noop,
            }],
        },
    );
    log::apply(
        &mut durable,
        &MasterRecord::HardState {
            term: Term(2),
            voted_for: None,
        },
    );
    let (mut master, _) = boot_from(1, 3, &durable);
    fire(&mut master, MasterTimer::Election);
    deliver(
        &mut master,
        2,
        ElectionMessage::PreVoteReply(VoteReply {
            term: Term(3),
            granted: true,
        }),
    );
    deliver(
        &mut master,
        2,
        ElectionMessage::Vote(VoteReply {
            term: Term(3),
            granted: true,
        }),
    );
    assert!(master.is_leader());
    deliver(
        &mut master,
        2,
        ElectionMessage::AppendReply(AppendReply {
            term: Term(3),
            success: true,
            index: LogIndex(1),
        }),
    );
    assert_eq!(
        master.commit_index(),
        LogIndex(0),
        "index 1 is of term 2: not committed by counting"
    );
    deliver(
        &mut master,
        2,
        ElectionMessage::AppendReply(AppendReply {
            term: Term(3),
            success: true,
            index: LogIndex(2),
        }),
    );
    assert_eq!(
        master.commit_index(),
        LogIndex(2),
        "committed with the no-op of term 3"
    );
}

#[test]
fn a_follower_appends_only_after_a_matching_predecessor() {
    let (mut follower, _) = boot(2, 3);
    let mut append = heartbeat(1, 0);
    append.previous_index = LogIndex(3);
    append.previous_term = Term(1);
    let commands = deliver(&mut follower, 1, ElectionMessage::AppendEntries(append));
    assert!(
        !persisted(&commands)
            .iter()
            .any(|record| matches!(record, MasterRecord::Entries { .. }))
    );
    assert!(matches!(
        sent(&commands)[0].1,
        Message::Election(ElectionMessage::AppendReply(AppendReply {
            success: false,
            index: LogIndex(1),
            ..
        }))
    ));
    // Entries are persisted before the acknowledgement (E2).
    let mut append = heartbeat(1, 1);
    append.entries = BoundedVec::from_vec(vec![LogEntry {
        term: Term(1),
        entry: RegistryEntry::Noop,
    }])
    .expect("one");
    let commands = deliver(
        &mut follower,
        1,
        ElectionMessage::AppendEntries(append.clone()),
    );
    let persist = commands
        .iter()
        .position(|c| matches!(c, Command::Persist(MasterRecord::Entries { .. })));
    let send = commands
        .iter()
        .position(|c| matches!(c, Command::Send { .. }));
    assert!(persist.expect("persisted") < send.expect("acknowledged"));
    assert_eq!(follower.commit_index(), LogIndex(1));
    // The same entries again change nothing.
    let commands = deliver(&mut follower, 1, ElectionMessage::AppendEntries(append));
    assert!(persisted(&commands).is_empty());
}

#[test]
fn a_follower_installs_a_snapshot_and_the_leader_sends_one_when_entries_are_compacted() {
    let role = Role::new("ops").expect("valid");
    let mut registry = Registry::new();
    let entry = RegistryEntry::RoleWeightSet {
        role: role.clone(),
        weight: "2".parse().expect("valid"),
    };
    registry.apply(LogIndex(7), &entry);
    let snapshot = Snapshot {
        index: LogIndex(7),
        term: Term(1),
        registry: registry.clone(),
    };
    let (mut follower, _) = boot(2, 3);
    let commands = deliver(
        &mut follower,
        1,
        ElectionMessage::InstallSnapshot(InstallSnapshot {
            term: Term(1),
            snapshot: snapshot.clone(),
            membership: config(1, 3).membership_digest(),
        }),
    );
    assert_eq!(
        persisted(&commands).last(),
        Some(&MasterRecord::Snapshot(snapshot))
    );
    assert_eq!(follower.registry(), &registry);
    assert_eq!(follower.commit_index(), LogIndex(7));
    assert_eq!(follower.log().last_index(), LogIndex(7));

    // A leader compacts at its threshold and then sends the snapshot to a lagging follower.
    let (mut leader, _) = {
        let mut out = Outbox::new();
        let config = config(1, 1).with_snapshot_threshold(1);
        (
            Master::boot(&config, &MasterDurable::default(), &mut out).expect("boots"),
            (),
        )
    };
    assert_eq!(
        leader.log().snapshot().index,
        LogIndex(1),
        "the committed no-op was compacted"
    );
    let mut out = Outbox::new();
    leader.handle_message(
        &address(9),
        Message::SetRoleWeight(SetRoleWeight {
            request: 1,
            role,
            weight: "2".parse().expect("valid"),
        }),
        &mut out,
    );
    assert_eq!(leader.log().snapshot().index, LogIndex(2));
    assert_eq!(leader.registry(), &{
        let mut expected = Registry::new();
        expected.apply(LogIndex(2), &entry);
        expected
    });
}

#[test]
fn a_non_leader_answers_with_a_hint_to_the_leader() {
    let (mut follower, _) = boot(2, 3);
    let mut out = Outbox::new();
    follower.handle_message(&address(9), Message::FindLeader, &mut out);
    assert_eq!(
        sent(&out.drain().collect::<Commands>()),
        vec![(
            address(9),
            Message::LeaderHint(LeaderHint {
                term: Term(0),
                leader: None
            })
        )]
    );
    deliver(
        &mut follower,
        1,
        ElectionMessage::AppendEntries(heartbeat(1, 0)),
    );
    let request = SetRoleWeight {
        request: 5,
        role: Role::new("ops").expect("valid"),
        weight: "2".parse().expect("valid"),
    };
    follower.handle_message(&address(9), Message::SetRoleWeight(request), &mut out);
    assert_eq!(
        sent(&out.drain().collect::<Commands>()),
        vec![(
            address(9),
            Message::LeaderHint(LeaderHint {
                term: Term(1),
                leader: Some(address(1))
            })
        )]
    );
}

#[test]
fn a_request_is_answered_once_committed_and_a_retry_adds_nothing() {
    let mut leader = leader_of_term_one();
    let request = SetRoleWeight {
        request: 5,
        role: Role::new("ops").expect("valid"),
        weight: "2".parse().expect("valid"),
    };
    let mut out = Outbox::new();
    leader.handle_message(
        &address(9),
        Message::SetRoleWeight(request.clone()),
        &mut out,
    );
    assert!(
        !sent(&out.drain().collect::<Commands>())
            .iter()
            .any(|(to, _)| *to == address(9)),
        "not yet committed"
    );
    leader.handle_message(
        &address(9),
        Message::SetRoleWeight(request.clone()),
        &mut out,
    );
    assert_eq!(
        leader.log().last_index(),
        LogIndex(2),
        "the retry is not appended again"
    );
    out.drain().for_each(drop);
    let commands = deliver(
        &mut leader,
        2,
        ElectionMessage::AppendReply(AppendReply {
            term: Term(1),
            success: true,
            index: LogIndex(2),
        }),
    );
    let replies: Vec<_> = sent(&commands)
        .into_iter()
        .filter(|(to, _)| *to == address(9))
        .collect();
    assert_eq!(
        replies.len(),
        2,
        "both the request and its retry are answered"
    );
    assert_eq!(
        replies[0].1,
        Message::Committed(Committed {
            request: 5,
            term: Term(1)
        })
    );
    // Once committed, a retry is answered at once.
    leader.handle_message(&address(9), Message::SetRoleWeight(request), &mut out);
    assert_eq!(
        sent(&out.drain().collect::<Commands>()),
        vec![(
            address(9),
            Message::Committed(Committed {
                request: 5,
                term: Term(1)
            })
        )]
    );
}

#[test]
fn masters_with_different_membership_lists_refuse_each_other() {
    let (mut follower, _) = boot(2, 3);
    let mut request = vote_request(1, 0, 0);
    request.membership = config(1, 5).membership_digest();
    let commands = deliver(&mut follower, 1, ElectionMessage::RequestVote(request));
    assert_eq!(
        commands,
        vec![Command::Note(Note::MembershipMismatch { peer: address(1) })]
    );
    assert_eq!(follower.term(), Term(0));
}

#[test]
fn messages_from_unknown_addresses_are_ignored() {
    let (mut follower, _) = boot(2, 3);
    let mut out = Outbox::new();
    follower.handle_message(
        &address(9),
        Message::Election(ElectionMessage::AppendEntries(heartbeat(5, 0))),
        &mut out,
    );
    assert_eq!(
        out.drain().collect::<Commands>(),
        vec![Command::Note(Note::UnknownPeer { peer: address(9) })]
    );
    assert_eq!(follower.term(), Term(0));
}

#[test]
fn configuration_is_validated() {
    let members = |count: u8| -> BTreeMap<MasterId, Address> {
        (1..=count).map(|id| (MasterId(id), address(id))).collect()
    };
    assert_eq!(
        MasterConfig::new(MasterId(1), members(2)),
        Err(MasterConfigError::MembershipSize { count: 2 })
    );
    assert_eq!(
        MasterConfig::new(MasterId(7), members(3)),
        Err(MasterConfigError::NotAMember { id: MasterId(7) })
    );
    let mut duplicate = members(3);
    duplicate.insert(MasterId(3), address(1));
    assert_eq!(
        MasterConfig::new(MasterId(1), duplicate),
        Err(MasterConfigError::DuplicateAddress)
    );
    assert_ne!(
        config(1, 3).membership_digest(),
        config(1, 5).membership_digest()
    );
    assert_eq!(
        config(1, 3).membership_digest(),
        config(2, 3).membership_digest()
    );
}

#[test]
fn any_master_reports_its_term_leader_and_registry() {
    let leader = leader_of_term_one();
    let (mut follower, _) = boot(2, 3);
    deliver(
        &mut follower,
        1,
        ElectionMessage::AppendEntries(heartbeat(1, 0)),
    );
    for master in [leader, follower] {
        let mut master = master;
        let mut out = Outbox::new();
        master.handle_message(&address(9), Message::StateRequest, &mut out);
        let commands: Commands = out.drain().collect();
        assert_eq!(
            sent(&commands),
            vec![(
                address(9),
                Message::StateReport(alloc::boxed::Box::new(crate::message::StateReport {
                    term: Term(1),
                    leader: Some(address(1)),
                    commit_index: LogIndex(0),
                    registry: Registry::new(),
                    registered: crate::bounded::BoundedVec::new(),
                }))
            )]
        );
        assert!(persisted(&commands).is_empty(), "a report changes nothing");
    }
}
