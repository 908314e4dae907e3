//! Unit tests of the leader's agent-facing rules (module docs), asserting on outboxes.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::ToString;
use alloc::vec;
use alloc::vec::Vec;
use core::convert::Infallible;

use super::*;
use crate::bounded::{BoundedVec, Name};
use crate::ids::{AssignedId, BootId, MasterId, Term};
use crate::master::{
    MAX_MISSED_PINGS_DEFAULT, MasterConfig, MasterDurable, MasterEvent, MasterRecord,
};
use crate::message::{
    Acknowledge, AppendEntries, AppendReply, ElectionMessage, LeaderHint, LogEntry,
    StatusAcknowledgement, StatusSource, TaskReport, TaskStatus, VoteReply,
};
use crate::registry::AgentInfo;
use crate::resources::Resources;
use crate::{Command, Machine};

type Commands = Vec<Command<MasterTimer, MasterRecord, Infallible>>;

fn member(id: u8) -> Address {
    Address::new(&alloc::format!("m{id}")).expect("valid")
}

fn agent_address() -> Address {
    Address::new("a1").expect("valid")
}

fn config(count: u8) -> MasterConfig {
    let members: BTreeMap<MasterId, Address> =
        (1..=count).map(|id| (MasterId(id), member(id))).collect();
    MasterConfig::new(MasterId(1), members).expect("valid configuration")
}

fn info() -> AgentInfo {
    AgentInfo {
        hostname: Name::new("host").expect("valid"),
        resources: Resources::parse("cpus:4").expect("valid"),
    }
}

fn agent_id(term: u64) -> AgentId {
    AgentId(AssignedId {
        term: Term(term),
        sequence: 0,
    })
}

/// The first framework a leader of term 1 registers.
fn framework() -> FrameworkId {
    FrameworkId(AssignedId {
        term: Term(1),
        sequence: 0,
    })
}

fn scheduler_address() -> Address {
    Address::new("s1").expect("valid")
}

fn framework_info() -> crate::registry::FrameworkInfo {
    crate::registry::FrameworkInfo {
        name: Name::new("web").expect("valid"),
        role: crate::ids::Role::new("web").expect("valid"),
        principal: crate::ids::Principal::new("web").expect("valid"),
        failover_timeout: core::time::Duration::from_secs(60),
    }
}

/// Subscribes the scheduler at `s1` as [`framework`]; returns what the subscription sent.
fn subscribe(master: &mut Master) -> Commands {
    let commands = deliver(
        master,
        &scheduler_address(),
        Message::Subscribe(Box::new(crate::message::Subscribe {
            framework: None,
            info: framework_info(),
            highest_term: Term(0),
            suppressed: true,
        })),
    );
    assert!(
        sent_to(&commands, &scheduler_address()).contains(&Message::Subscribed(
            crate::message::Subscribed {
                term: Term(1),
                framework: framework(),
            }
        ))
    );
    commands
}

fn task() -> TaskId {
    TaskId::new("t1").expect("valid")
}

fn boot(count: u8, durable: &MasterDurable) -> (Master, Commands) {
    let mut out = Outbox::new();
    let master = Master::boot(&config(count), durable, &mut out).expect("boots");
    (master, out.drain().collect())
}

/// Delivers `message` as a batch of one (the batch ends after it).
fn deliver(master: &mut Master, from: &Address, message: Message) -> Commands {
    let mut out = Outbox::new();
    master.handle_message(from, message, &mut out);
    master.end_batch(&mut out);
    out.drain().collect()
}

/// Fires `timer` as a batch of one.
fn fire(master: &mut Master, timer: MasterTimer) -> Commands {
    let mut out = Outbox::new();
    master.handle_timer(timer, &mut out);
    master.end_batch(&mut out);
    out.drain().collect()
}

fn sent_to(commands: &Commands, to: &Address) -> Vec<Message> {
    commands
        .iter()
        .filter_map(|command| match command {
            Command::Send {
                to: address,
                message,
            } if address == to => Some(message.clone()),
            _ => None,
        })
        .collect()
}

fn appended(commands: &Commands) -> Vec<RegistryEntry> {
    commands
        .iter()
        .filter_map(|command| match command {
            Command::Persist(MasterRecord::Entries { entries, .. }) => Some(entries.clone()),
            _ => None,
        })
        .flatten()
        .map(|logged| logged.entry)
        .collect()
}

fn register() -> Message {
    Message::RegisterAgent(Box::new(RegisterAgent {
        address: agent_address(),
        info: info(),
        boot_id: BootId::new("boot-1").expect("valid"),
        highest_term: Term(0),
        report: 1,
    }))
}

/// A new registration attempt's number: each re-registration a test makes is a new attempt.
fn next_report() -> u64 {
    static REPORTS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(1);
    REPORTS.fetch_add(1, core::sync::atomic::Ordering::Relaxed)
}

fn reregister(agent: AgentId, state: TaskState) -> Message {
    reregister_in(Term(1), agent, state)
}

/// A re-registration made by an agent whose highest term seen is `highest_term`.
fn reregister_in(highest_term: Term, agent: AgentId, state: TaskState) -> Message {
    Message::ReregisterAgent(Box::new(ReregisterAgent {
        agent,
        address: agent_address(),
        info: info(),
        boot_id: BootId::new("boot-1").expect("valid"),
        highest_term,
        tasks: BoundedVec::from_vec(vec![TaskReport {
            framework: framework(),
            executor: ExecutorId::new("e1").expect("valid"),
            task: task(),
            resources: Resources::parse("cpus:1").expect("valid"),
            state,
            latest_update: None,
        }])
        .expect("one task"),
        unacknowledged: BoundedVec::new(),
        operations: BoundedVec::new(),
        report: next_report(),
    }))
}

fn status_update(agent: AgentId, state: TaskState, update: u64) -> Message {
    Message::StatusUpdate(StatusUpdate {
        agent,
        framework: framework(),
        task: task(),
        state,
        reason: None,
        update: UpdateId(update),
    })
}

/// A lone master leads term 1 at once; an agent registered with it.
fn lone_leader_with_agent() -> Master {
    let (mut master, _) = boot(1, &MasterDurable::default());
    deliver(&mut master, &agent_address(), register());
    assert!(master.registry().agents().contains_key(&agent_id(1)));
    master
}

/// The durable state of a master that voted for `voted_for` in term 1 and whose log holds
/// `entries`, of term 1.
fn durable_of_term_one(entries: &[RegistryEntry], voted_for: MasterId) -> MasterDurable {
    let mut durable = MasterDurable::default();
    let records = [
        MasterRecord::HardState {
            term: Term(1),
            voted_for: Some(voted_for),
        },
        MasterRecord::Entries {
            from: LogIndex(1),
            entries: entries
                .iter()
                .map(|entry| LogEntry {
                    term: Term(1),
                    entry: entry.clone(),
                })
                .collect(),
        },
    ];
    for record in &records {
        Master::apply(&mut durable, record);
    }
    durable
}

/// Master 1 of 3 runs for election and wins `term` with master 2's pre-vote and vote.
fn win_election(master: &mut Master, term: Term) {
    fire(master, MasterTimer::Election);
    let granted = VoteReply {
        term,
        granted: true,
    };
    deliver(
        master,
        &member(2),
        Message::Election(ElectionMessage::PreVoteReply(granted)),
    );
    deliver(
        master,
        &member(2),
        Message::Election(ElectionMessage::Vote(granted)),
    );
    assert!(master.is_leader());
    assert_eq!(master.term(), term);
}

/// A lone master whose log (of term 1) holds `entries`: it boots as the leader of term 2
/// and commits them.
fn leader_of_term_two_with(entries: &[RegistryEntry]) -> (Master, Commands) {
    let (master, commands) = boot(1, &durable_of_term_one(entries, MasterId(1)));
    assert!(master.is_leader());
    assert_eq!(master.term(), Term(2));
    (master, commands)
}

fn admitted() -> RegistryEntry {
    RegistryEntry::AgentAdmitted {
        agent: agent_id(1),
        address: agent_address(),
        info: info(),
    }
}

#[test]
fn a_follower_redirects_agents_to_the_leader() {
    let (mut follower, _) = boot(3, &MasterDurable::default());
    for message in [
        register(),
        reregister(agent_id(1), TaskState::Running),
        status_update(agent_id(1), TaskState::Running, 0),
    ] {
        let commands = deliver(&mut follower, &agent_address(), message);
        assert_eq!(
            sent_to(&commands, &agent_address()),
            [Message::LeaderHint(LeaderHint {
                term: Term(0),
                leader: None
            })]
        );
        assert!(appended(&commands).is_empty());
    }
}

#[test]
fn a_new_agent_hears_its_id_only_once_its_admission_commits() {
    let (mut master, _) = boot(3, &MasterDurable::default());
    win_election(&mut master, Term(1));

    let commands = deliver(&mut master, &agent_address(), register());
    assert_eq!(appended(&commands), [admitted()]);
    assert!(
        sent_to(&commands, &agent_address()).is_empty(),
        "not committed yet"
    );
    // A retry while the admission is in flight adds nothing to the log.
    let commands = deliver(&mut master, &agent_address(), register());
    assert!(appended(&commands).is_empty());
    assert!(sent_to(&commands, &agent_address()).is_empty());

    let commands = deliver(
        &mut master,
        &member(2),
        Message::Election(ElectionMessage::AppendReply(AppendReply {
            term: Term(1),
            success: true,
            index: LogIndex(2),
        })),
    );
    let answers = sent_to(&commands, &agent_address());
    assert!(!answers.is_empty());
    assert!(answers.iter().all(|answer| *answer
        == Message::AgentRegistered(AgentRegistered {
            term: Term(1),
            agent: agent_id(1),
            report: 1,
        })));
    assert!(commands.contains(&Command::SetTimer {
        timer: MasterTimer::AgentPing,
        duration: DurationRange::fixed(super::super::AGENT_PING_INTERVAL_DEFAULT),
    }));

    // Deposed by a higher term, it stops pinging and forgets its agent directory.
    let commands = deliver(
        &mut master,
        &member(2),
        Message::Election(ElectionMessage::AppendEntries(AppendEntries {
            term: Term(5),
            previous_index: LogIndex(0),
            previous_term: Term(0),
            entries: BoundedVec::new(),
            leader_commit: LogIndex(0),
            membership: config(3).membership_digest(),
        })),
    );
    assert!(commands.contains(&Command::CancelTimer(MasterTimer::AgentPing)));
    assert!(master.agent_directory().is_none());
}

#[test]
fn a_lone_leader_persists_the_admission_before_answering() {
    let (mut master, _) = boot(1, &MasterDurable::default());
    let commands = deliver(&mut master, &agent_address(), register());
    let persist = commands
        .iter()
        .position(|command| matches!(command, Command::Persist(_)))
        .expect("the admission is persisted");
    let answer = commands
        .iter()
        .position(|command| {
            matches!(
                command,
                Command::Send {
                    message: Message::AgentRegistered(_),
                    ..
                }
            )
        })
        .expect("the agent is answered");
    assert!(persist < answer);
    // The answer was lost; the retry gets the same id and adds nothing.
    let commands = deliver(&mut master, &agent_address(), register());
    assert!(appended(&commands).is_empty());
    assert_eq!(
        sent_to(&commands, &agent_address()),
        [Message::AgentRegistered(AgentRegistered {
            term: Term(1),
            agent: agent_id(1),
            report: 1,
        })]
    );
}

#[test]
fn status_updates_go_to_the_framework_and_its_acknowledgement_to_the_agent() {
    let mut master = lone_leader_with_agent();
    subscribe(&mut master);
    let commands = deliver(
        &mut master,
        &agent_address(),
        status_update(agent_id(1), TaskState::Running, 0),
    );
    let status = TaskStatus {
        term: Term(1),
        framework: framework(),
        task: task(),
        agent: Some(agent_id(1)),
        state: TaskState::Running,
        reason: None,
        source: StatusSource::Agent(UpdateId(0)),
    };
    assert!(
        sent_to(&commands, &agent_address()).is_empty(),
        "only the framework acknowledges"
    );
    assert_eq!(
        sent_to(&commands, &scheduler_address()),
        [Message::TaskStatus(Box::new(status))]
    );
    let commands = deliver(
        &mut master,
        &scheduler_address(),
        Message::Acknowledge(Acknowledge {
            framework: framework(),
            task: task(),
            agent: Some(agent_id(1)),
            state: TaskState::Running,
            source: StatusSource::Agent(UpdateId(0)),
        }),
    );
    assert_eq!(
        sent_to(&commands, &agent_address()),
        [Message::StatusAcknowledgement(StatusAcknowledgement {
            term: Term(1),
            framework: framework(),
            task: task(),
            update: UpdateId(0),
        })]
    );
    deliver(
        &mut master,
        &agent_address(),
        status_update(agent_id(1), TaskState::Finished, 1),
    );
    // A resend of the older update (its acknowledgement was lost) is passed on again but
    // does not move the task back.
    let commands = deliver(
        &mut master,
        &agent_address(),
        status_update(agent_id(1), TaskState::Running, 0),
    );
    assert_eq!(sent_to(&commands, &scheduler_address()).len(), 1);
    let view = &master.agent_directory().expect("leads").agents()[&agent_id(1)];
    assert_eq!(
        view.tasks[&(framework(), task())].state,
        TaskState::Finished
    );
    // An update from an agent that is not admitted is not acknowledged.
    let commands = deliver(
        &mut master,
        &agent_address(),
        status_update(agent_id(7), TaskState::Running, 0),
    );
    assert!(commands.is_empty());
}

#[test]
fn answered_pings_keep_an_agent_admitted() {
    let mut master = lone_leader_with_agent();
    for _ in 0..10 {
        let commands = fire(&mut master, MasterTimer::AgentPing);
        let [Message::Ping(ping)] = sent_to(&commands, &agent_address())[..] else {
            panic!("expected one ping, got {commands:?}");
        };
        assert_eq!(ping.term, Term(1));
        deliver(
            &mut master,
            &agent_address(),
            Message::Pong(Pong {
                term: ping.term,
                sequence: ping.sequence,
            }),
        );
    }
    assert_eq!(
        master.registry().agents()[&agent_id(1)].status,
        AgentStatus::Admitted
    );
}

/// An answer that arrives after the next ping went out still counts: a leader behind on its
/// inbox (10,000 agents registering at once) took every agent's pong one round late, and
/// marked every one unreachable while all of them answered.
#[test]
fn pings_answered_one_round_late_keep_an_agent_admitted() {
    let mut master = lone_leader_with_agent();
    let mut previous = None;
    for _ in 0..10 {
        let commands = fire(&mut master, MasterTimer::AgentPing);
        assert!(appended(&commands).is_empty(), "no agent is marked");
        let [Message::Ping(ping)] = sent_to(&commands, &agent_address())[..] else {
            panic!("expected one ping, got {commands:?}");
        };
        if let Some(late) = previous.replace(ping.sequence) {
            deliver(
                &mut master,
                &agent_address(),
                Message::Pong(Pong {
                    term: ping.term,
                    sequence: late,
                }),
            );
        }
    }
    assert_eq!(
        master.registry().agents()[&agent_id(1)].status,
        AgentStatus::Admitted
    );
    assert_eq!(
        master.agent_directory().expect("leads").agents()[&agent_id(1)].missed_pings(),
        1,
        "only the ping sent last is unanswered"
    );
}

/// A pong naming a ping never sent (a later sequence) is not taken as an answer.
#[test]
fn a_pong_for_a_ping_never_sent_is_ignored() {
    let mut master = lone_leader_with_agent();
    for round in 0..5 {
        let commands = fire(&mut master, MasterTimer::AgentPing);
        assert!(appended(&commands).is_empty(), "only {round} pings missed");
        deliver(
            &mut master,
            &agent_address(),
            Message::Pong(Pong {
                term: Term(1),
                sequence: u64::MAX,
            }),
        );
    }
    let commands = fire(&mut master, MasterTimer::AgentPing);
    assert_eq!(
        appended(&commands),
        [RegistryEntry::AgentUnreachable { agent: agent_id(1) }]
    );
}

/// The lone leader's agent, running t1, misses five pings in a row (it answers only with a
/// stale sequence number).
fn leader_with_unreachable_agent() -> Master {
    let mut master = lone_leader_with_agent();
    deliver(
        &mut master,
        &agent_address(),
        status_update(agent_id(1), TaskState::Running, 0),
    );
    for round in 0..5 {
        let commands = fire(&mut master, MasterTimer::AgentPing);
        assert!(appended(&commands).is_empty(), "only {round} pings missed");
        deliver(
            &mut master,
            &agent_address(),
            Message::Pong(Pong {
                term: Term(1),
                sequence: 0,
            }),
        );
    }
    let commands = fire(&mut master, MasterTimer::AgentPing);
    assert_eq!(
        appended(&commands),
        [RegistryEntry::AgentUnreachable { agent: agent_id(1) }]
    );
    assert!(commands.contains(&Command::Note(Note::AgentUnreachable {
        agent: agent_id(1)
    })));
    master
}

#[test]
fn an_agent_that_misses_its_pings_is_marked_unreachable_with_its_tasks() {
    let mut master = leader_with_unreachable_agent();
    assert!(matches!(
        master.registry().agents()[&agent_id(1)].status,
        AgentStatus::Unreachable { .. }
    ));
    let directory = master.agent_directory().expect("leads");
    let key = (framework(), task());
    assert_eq!(
        directory.agents()[&agent_id(1)].tasks[&key].state,
        TaskState::Unreachable
    );
    assert_eq!(
        directory.generated()[&key],
        GeneratedUpdate {
            agent: Some(agent_id(1)),
            state: TaskState::Unreachable,
            reason: Some(TaskStatusReason::AgentUnreachable),
        }
    );
    // It is no longer pinged, and proposed unreachable only once.
    let commands = fire(&mut master, MasterTimer::AgentPing);
    assert!(sent_to(&commands, &agent_address()).is_empty());
    assert!(appended(&commands).is_empty());
}

#[test]
fn an_unreachable_agent_that_returns_is_readmitted_before_it_is_answered() {
    let mut master = leader_with_unreachable_agent();
    let commands = deliver(
        &mut master,
        &agent_address(),
        reregister(agent_id(1), TaskState::Running),
    );
    assert_eq!(
        appended(&commands),
        [RegistryEntry::AgentReadmitted {
            agent: agent_id(1),
            address: agent_address()
        }]
    );
    let persist = commands
        .iter()
        .position(|command| matches!(command, Command::Persist(_)))
        .expect("persisted");
    let answer = commands
        .iter()
        .position(|command| {
            matches!(
                command,
                Command::Send {
                    message: Message::AgentReregistered(_),
                    ..
                }
            )
        })
        .expect("answered");
    assert!(persist < answer);
    assert_eq!(
        master.registry().agents()[&agent_id(1)].status,
        AgentStatus::Admitted
    );
    // Its task resumes: RUNNING again, for the framework too.
    let directory = master.agent_directory().expect("leads");
    let key = (framework(), task());
    assert_eq!(
        directory.agents()[&agent_id(1)].tasks[&key].state,
        TaskState::Running
    );
    assert_eq!(directory.generated()[&key].state, TaskState::Running);
}

/// Ping rounds until the agent (which never answers) is proposed unreachable; the
/// scheduler answers every ping, so it stays connected.
fn until_agent_unreachable(master: &mut Master) {
    for _ in 0..=MAX_MISSED_PINGS_DEFAULT {
        let commands = fire(master, MasterTimer::AgentPing);
        deliver(
            master,
            &scheduler_address(),
            Message::Pong(Pong {
                term: Term(1),
                sequence: 0,
            }),
        );
        if appended(&commands).contains(&RegistryEntry::AgentUnreachable { agent: agent_id(1) }) {
            return;
        }
    }
    panic!("the agent was never marked unreachable");
}

fn master_statuses(commands: &Commands) -> Vec<TaskState> {
    sent_to(commands, &scheduler_address())
        .into_iter()
        .filter_map(|message| match message {
            Message::TaskStatus(status) if status.source == StatusSource::Master => {
                Some(status.state)
            }
            _ => None,
        })
        .collect()
}

/// Regression (found by the network-namespace fault tests): once a framework acknowledged
/// UNREACHABLE, the agent's return told it nothing, and the task stayed UNREACHABLE there
/// while it ran.
#[test]
fn a_framework_that_acknowledged_unreachable_hears_running_when_the_agent_returns() {
    let (mut master, offer) = leader_with_offer();
    deliver(
        &mut master,
        &scheduler_address(),
        launch(offer.offer, "t1", "cpus:1"),
    );
    deliver(
        &mut master,
        &agent_address(),
        status_update(agent_id(1), TaskState::Running, 0),
    );
    until_agent_unreachable(&mut master);
    let key = (framework(), task());
    deliver(
        &mut master,
        &scheduler_address(),
        Message::Acknowledge(Acknowledge {
            framework: framework(),
            task: task(),
            agent: Some(agent_id(1)),
            state: TaskState::Unreachable,
            source: StatusSource::Master,
        }),
    );
    let directory = master.agent_directory().expect("leads");
    assert!(!directory.generated().contains_key(&key), "acknowledged");

    let commands = deliver(
        &mut master,
        &agent_address(),
        reregister(agent_id(1), TaskState::Running),
    );
    assert_eq!(master_statuses(&commands), [TaskState::Running]);
    let directory = master.agent_directory().expect("leads");
    assert_eq!(directory.generated()[&key].state, TaskState::Running);
}

/// Regression (found by the network-namespace fault tests): a launch the agent never
/// received before it became unreachable was forgotten when the agent returned without it,
/// leaving the task UNREACHABLE (or UNKNOWN to reconciliation) for good. It is staging again
/// and resent until the agent reports it.
#[test]
fn a_launch_lost_to_an_unreachable_agent_is_resent_when_the_agent_returns() {
    let (mut master, offer) = leader_with_offer();
    let commands = deliver(
        &mut master,
        &scheduler_address(),
        launch(offer.offer, "t1", "cpus:1"),
    );
    assert!(matches!(
        &sent_to(&commands, &agent_address())[..],
        [Message::RunTask(_)]
    ));
    until_agent_unreachable(&mut master);
    let returning = Message::ReregisterAgent(Box::new(ReregisterAgent {
        agent: agent_id(1),
        address: agent_address(),
        info: info(),
        boot_id: BootId::new("boot-1").expect("valid"),
        highest_term: Term(1),
        tasks: BoundedVec::new(),
        unacknowledged: BoundedVec::new(),
        operations: BoundedVec::new(),
        report: next_report(),
    }));
    let commands = deliver(&mut master, &agent_address(), returning);
    assert_eq!(master_statuses(&commands), [TaskState::Staging]);
    let key = (framework(), task());
    let view = &master.agent_directory().expect("leads").agents()[&agent_id(1)];
    assert_eq!(view.tasks[&key].state, TaskState::Staging);
    let commands = fire(&mut master, MasterTimer::AgentPing);
    assert!(
        sent_to(&commands, &agent_address())
            .iter()
            .any(|message| matches!(message, Message::RunTask(run) if run.task == task())),
        "the launch is resent"
    );
}

#[test]
fn a_new_leader_calls_every_agent_in_its_registry() {
    let registered = RegistryEntry::FrameworkRegistered {
        framework: framework(),
        info: framework_info(),
    };
    let (mut master, commands) = leader_of_term_two_with(&[admitted(), registered]);
    assert_eq!(
        sent_to(&commands, &agent_address()),
        [Message::LeaderChanged(LeaderChanged { term: Term(2) })]
    );
    assert!(commands.contains(&Command::SetTimer {
        timer: MasterTimer::AgentPing,
        duration: DurationRange::fixed(super::super::AGENT_PING_INTERVAL_DEFAULT),
    }));
    // A report made before the agent heard of term 2 is not taken: an older leader's
    // launch could still run there unreported. The agent is told the term and reports again.
    let commands = deliver(
        &mut master,
        &agent_address(),
        reregister_in(Term(1), agent_id(1), TaskState::Running),
    );
    assert!(appended(&commands).is_empty());
    assert_eq!(
        sent_to(&commands, &agent_address()),
        [Message::LeaderChanged(LeaderChanged { term: Term(2) })]
    );
    assert!(!master.agent_directory().expect("leads").agents()[&agent_id(1)].registered);
    // The re-registration rebuilds the leader's view of the agent's tasks; nothing is
    // appended for a known, admitted agent.
    let commands = deliver(
        &mut master,
        &agent_address(),
        reregister_in(Term(2), agent_id(1), TaskState::Running),
    );
    assert!(appended(&commands).is_empty());
    assert!(matches!(
        &sent_to(&commands, &agent_address())[..],
        [Message::AgentReregistered(AgentRegistered {
            term: Term(2),
            agent,
            ..
        })] if *agent == agent_id(1)
    ));
    let view = &master.agent_directory().expect("leads").agents()[&agent_id(1)];
    assert_eq!(view.tasks[&(framework(), task())].state, TaskState::Running);
}

#[test]
fn a_gone_agent_is_told_to_shut_down() {
    let (mut master, commands) =
        leader_of_term_two_with(&[admitted(), RegistryEntry::AgentGone { agent: agent_id(1) }]);
    assert!(
        sent_to(&commands, &agent_address()).is_empty(),
        "a gone agent is not called"
    );
    let commands = deliver(
        &mut master,
        &agent_address(),
        reregister_in(Term(2), agent_id(1), TaskState::Running),
    );
    assert_eq!(
        sent_to(&commands, &agent_address()),
        [Message::ShutdownAgent(ShutdownAgent {
            term: Term(2),
            agent: agent_id(1)
        })]
    );
    assert!(appended(&commands).is_empty());
}

#[test]
fn an_agent_that_saw_a_newer_term_is_not_admitted_by_a_stale_leader() {
    let (mut master, _) = boot(1, &MasterDurable::default());
    let Message::RegisterAgent(mut request) = register() else {
        unreachable!("register() builds a registration")
    };
    request.highest_term = Term(5);
    let commands = deliver(
        &mut master,
        &agent_address(),
        Message::RegisterAgent(request),
    );
    assert!(appended(&commands).is_empty());
    assert!(matches!(
        sent_to(&commands, &agent_address())[..],
        [Message::LeaderHint(_)]
    ));
}

#[test]
fn an_agent_that_re_registers_from_a_new_address_is_readdressed_before_it_is_answered() {
    let mut master = lone_leader_with_agent();
    subscribe(&mut master);
    let Message::ReregisterAgent(mut moved) = reregister(agent_id(1), TaskState::Running) else {
        unreachable!("a re-registration");
    };
    let new_address = Address::new("a1-moved").expect("valid");
    moved.address = new_address.clone();
    let commands = deliver(&mut master, &new_address, Message::ReregisterAgent(moved));
    assert_eq!(
        appended(&commands),
        [RegistryEntry::AgentReadmitted {
            agent: agent_id(1),
            address: new_address.clone()
        }]
    );
    assert_eq!(
        master.registry().agents()[&agent_id(1)].address,
        new_address
    );
    assert!(matches!(
        sent_to(&commands, &new_address)[..],
        [Message::AgentReregistered(_)]
    ));
}

fn offers_in(commands: &Commands) -> Vec<crate::message::OfferInfo> {
    sent_to(commands, &scheduler_address())
        .into_iter()
        .flat_map(|message| match message {
            Message::Offers(offers) => offers.offers.into_vec(),
            _ => Vec::new(),
        })
        .collect()
}

fn launch(offer: crate::ids::OfferId, task: &str, resources: &str) -> Message {
    Message::Accept(Box::new(crate::message::Accept {
        framework: framework(),
        offers: BoundedVec::from_vec(vec![offer]).expect("one offer"),
        operations: BoundedVec::from_vec(vec![crate::message::Operation {
            id: crate::ids::OperationId::new("launch-0").expect("valid"),
            kind: crate::message::OperationKind::Launch(crate::message::TaskSpec {
                task: TaskId::new(task).expect("valid"),
                executor: ExecutorId::new("e1").expect("valid"),
                resources: Resources::parse(resources).expect("valid"),
                command: crate::task::TaskCommand::new("true").expect("valid"),
            }),
        }])
        .expect("one operation"),
        suppress: false,
    }))
}

/// A lone leader with an agent (cpus:4) and a subscribed framework, and the offer it made.
fn leader_with_offer() -> (Master, crate::message::OfferInfo) {
    let mut master = lone_leader_with_agent();
    let subscription = crate::message::Subscribe {
        framework: None,
        info: framework_info(),
        highest_term: Term(0),
        suppressed: false,
    };
    let commands = deliver(
        &mut master,
        &scheduler_address(),
        Message::Subscribe(Box::new(subscription)),
    );
    let offers = offers_in(&commands);
    assert_eq!(offers.len(), 1, "the agent's resources are offered");
    assert_eq!(offers[0].resources.to_string(), "cpus:4");
    (master, offers[0].clone())
}

#[test]
fn an_accepted_launch_runs_on_the_agent_and_the_rest_is_offered_again() {
    let (mut master, offer) = leader_with_offer();
    let commands = deliver(
        &mut master,
        &scheduler_address(),
        launch(offer.offer, "t1", "cpus:1"),
    );
    assert!(matches!(
        &sent_to(&commands, &agent_address())[..],
        [Message::RunTask(run)] if run.task == task() && run.command.as_str() == "true"
    ));
    assert!(
        offers_in(&commands).is_empty(),
        "what the accept left is filtered for the decline filter's time"
    );
    let commands = fire(
        &mut master,
        MasterTimer::DeclineFilter(framework(), agent_id(1)),
    );
    let again = offers_in(&commands);
    assert_eq!(again.len(), 1);
    assert_eq!(
        again[0].resources.to_string(),
        "cpus:3",
        "R1: the task's cpu is taken"
    );
    let view = &master.agent_directory().expect("leads").agents()[&agent_id(1)];
    assert_eq!(view.tasks[&(framework(), task())].state, TaskState::Staging);
}

#[test]
fn a_launch_on_an_unknown_offer_is_dropped_and_changes_nothing() {
    let (mut master, offer) = leader_with_offer();
    let stale = crate::ids::OfferId(AssignedId {
        term: Term(1),
        sequence: 77,
    });
    assert_ne!(stale, offer.offer);
    let commands = deliver(
        &mut master,
        &scheduler_address(),
        launch(stale, "t1", "cpus:1"),
    );
    assert!(sent_to(&commands, &agent_address()).is_empty());
    assert!(matches!(
        &sent_to(&commands, &scheduler_address())[..],
        [Message::TaskStatus(status)]
            if status.state == TaskState::Dropped && status.source == StatusSource::Master
    ));
    assert!(
        master.agent_directory().expect("leads").agents()[&agent_id(1)]
            .tasks
            .is_empty()
    );
}

#[test]
fn a_launch_larger_than_its_offer_or_with_a_known_task_id_fails() {
    let (mut master, offer) = leader_with_offer();
    let commands = deliver(
        &mut master,
        &scheduler_address(),
        launch(offer.offer, "t1", "cpus:5"),
    );
    assert!(sent_to(&commands, &agent_address()).is_empty());
    assert!(
        sent_to(&commands, &scheduler_address())
            .iter()
            .any(|message| matches!(
                message,
                Message::TaskStatus(status) if status.state == TaskState::Error
                    && status.reason == Some(TaskStatusReason::ResourcesUnavailable)
            ))
    );
    let filter = MasterTimer::DeclineFilter(framework(), agent_id(1));
    let offer = offers_in(&fire(&mut master, filter))[0].clone();
    deliver(
        &mut master,
        &scheduler_address(),
        launch(offer.offer, "t2", "cpus:1"),
    );
    fire(&mut master, filter);
    let offer = master
        .framework_directory()
        .expect("leads")
        .offers()
        .keys()
        .next()
        .copied()
        .expect("the rest is offered");
    let commands = deliver(
        &mut master,
        &scheduler_address(),
        launch(offer, "t2", "cpus:1"),
    );
    assert!(
        sent_to(&commands, &agent_address()).is_empty(),
        "a duplicate task id is not launched"
    );
}

/// The framework's scheduler subscribes again to `master` (a new leader), wanting no offers.
fn resubscribe_suppressed(master: &mut Master) {
    resubscribe(master, true);
}

/// The framework's scheduler subscribes again with its id, having seen term 1.
fn resubscribe(master: &mut Master, suppressed: bool) -> Commands {
    deliver(
        master,
        &scheduler_address(),
        Message::Subscribe(Box::new(crate::message::Subscribe {
            framework: Some(framework()),
            info: framework_info(),
            highest_term: Term(1),
            suppressed,
        })),
    )
}

#[test]
fn reconciliation_answers_unreachable_from_the_registry_after_a_failover() {
    // The registry of term 1 marks the agent unreachable; the new leader of term 2 never
    // heard of its tasks, yet answers for them.
    let (mut master, _) = leader_of_term_two_with(&[
        RegistryEntry::AgentAdmitted {
            agent: agent_id(1),
            address: agent_address(),
            info: info(),
        },
        RegistryEntry::AgentUnreachable { agent: agent_id(1) },
        RegistryEntry::FrameworkRegistered {
            framework: framework(),
            info: framework_info(),
        },
    ]);
    resubscribe_suppressed(&mut master);
    let commands = deliver(
        &mut master,
        &scheduler_address(),
        Message::Reconcile(Box::new(crate::message::Reconcile {
            framework: framework(),
            tasks: BoundedVec::from_vec(vec![(task(), Some(agent_id(1)))]).expect("one"),
        })),
    );
    assert!(matches!(
        &sent_to(&commands, &scheduler_address())[..],
        [Message::TaskStatus(status)]
            if status.state == TaskState::Unreachable
                && status.source == StatusSource::Reconciliation
    ));
}

/// A launch sent by a leader deposed before it reached the agent: the new leader never
/// heard of it, and the agent, once it has the new term, refuses the old one's `RunTask`
/// (E3). Reconciliation used to answer `UNKNOWN`, which is not terminal, so the framework
/// waited for the task for good (lost launches of the random nemesis, fault scenario 9s).
#[test]
fn a_launch_lost_with_a_deposed_leader_is_dropped_once_its_agent_reports_in_the_new_term() {
    let (mut master, _) = leader_of_term_two_with(&[
        admitted(),
        RegistryEntry::FrameworkRegistered {
            framework: framework(),
            info: framework_info(),
        },
    ]);
    resubscribe_suppressed(&mut master);
    let lost = TaskId::new("lost").expect("valid");
    let reconcile = || {
        Message::Reconcile(Box::new(crate::message::Reconcile {
            framework: framework(),
            tasks: BoundedVec::from_vec(vec![(lost.clone(), Some(agent_id(1)))]).expect("one"),
        }))
    };
    let answer = |master: &mut Master| {
        let commands = deliver(master, &scheduler_address(), reconcile());
        sent_to(&commands, &scheduler_address())
            .into_iter()
            .map(|message| match message {
                Message::TaskStatus(status) => (status.state, status.source),
                other => panic!("not a status: {other:?}"),
            })
            .collect::<Vec<_>>()
    };
    // Before the agent re-registers: no answer yet.
    assert_eq!(answer(&mut master), []);
    // A report made before the agent heard of term 2 is not taken: term 1's launch could
    // still reach the agent and run.
    deliver(
        &mut master,
        &agent_address(),
        reregister_in(Term(1), agent_id(1), TaskState::Running),
    );
    assert_eq!(answer(&mut master), []);
    // Its report of term 2, without the task: the launch never reached it, and never will.
    deliver(
        &mut master,
        &agent_address(),
        reregister_in(Term(2), agent_id(1), TaskState::Running),
    );
    assert_eq!(
        answer(&mut master),
        [(TaskState::Dropped, StatusSource::Reconciliation)]
    );
    // A task the agent reported is answered with its state, as before.
    let commands = deliver(
        &mut master,
        &scheduler_address(),
        Message::Reconcile(Box::new(crate::message::Reconcile {
            framework: framework(),
            tasks: BoundedVec::from_vec(vec![(task(), Some(agent_id(1)))]).expect("one"),
        })),
    );
    assert!(matches!(
        &sent_to(&commands, &scheduler_address())[..],
        [Message::TaskStatus(status)] if status.state == TaskState::Running
    ));
}

/// Found by the agents model: the scheduler persists a launch and sends its accept, then
/// (subscribing again) asks about the task before the accept arrives. The agent had
/// re-registered without the task, but the accept, naming an offer the framework still
/// holds, can still launch it: the answer must not be `DROPPED` (A1).
#[test]
fn a_task_whose_accept_may_still_arrive_is_not_dropped_by_reconciliation() {
    let (mut master, offer) = leader_with_offer();
    // The agent re-registers in this term without the task (its report is complete).
    let Message::ReregisterAgent(mut report) =
        reregister_in(Term(1), agent_id(1), TaskState::Running)
    else {
        unreachable!()
    };
    report.tasks = BoundedVec::new();
    deliver(
        &mut master,
        &agent_address(),
        Message::ReregisterAgent(report),
    );
    let reconcile = Message::Reconcile(Box::new(crate::message::Reconcile {
        framework: framework(),
        tasks: BoundedVec::from_vec(vec![(task(), Some(agent_id(1)))]).expect("one"),
    }));
    // Asked together with another task of the same agent, each gets the same answer (the
    // request looks the framework's offers up once).
    let other = TaskId::new("t2").expect("valid");
    let both = Message::Reconcile(Box::new(crate::message::Reconcile {
        framework: framework(),
        tasks: BoundedVec::from_vec(vec![
            (task(), Some(agent_id(1))),
            (other.clone(), Some(agent_id(1))),
        ])
        .expect("two"),
    }));
    let commands = deliver(&mut master, &scheduler_address(), both);
    assert!(matches!(
        &sent_to(&commands, &scheduler_address())[..],
        [Message::TaskStatus(first), Message::TaskStatus(second)]
            if first.task == task() && first.state == TaskState::Unknown
                && second.task == other && second.state == TaskState::Unknown
    ));
    // The accept arrives and launches it.
    let commands = deliver(
        &mut master,
        &scheduler_address(),
        launch(offer.offer, "t1", "cpus:1"),
    );
    assert!(matches!(
        &sent_to(&commands, &agent_address())[..],
        [Message::RunTask(run)] if run.task == task()
    ));
    // From now on it is answered with its state.
    let commands = deliver(&mut master, &scheduler_address(), reconcile);
    assert!(matches!(
        &sent_to(&commands, &scheduler_address())[..],
        [Message::TaskStatus(status)] if status.state == TaskState::Staging
    ));
}

/// Found by the seeded simulator (seed 1000): a copy of an agent's report that the network
/// delayed, older than what the leader took since, rolled the leader's view of the agent
/// back (its tasks, its resources). A report is numbered by its registration attempt; a copy
/// of the attempt taken is answered again without a change, an older one ignored.
#[test]
fn a_delayed_copy_of_an_older_report_does_not_roll_the_view_back() {
    let (mut master, _) = leader_of_term_two_with(&[admitted()]);
    let Message::ReregisterAgent(mut older) =
        reregister_in(Term(2), agent_id(1), TaskState::Running)
    else {
        unreachable!()
    };
    older.tasks = BoundedVec::new();
    let newer = reregister_in(Term(2), agent_id(1), TaskState::Running);
    let Message::ReregisterAgent(taken) = &newer else {
        unreachable!()
    };
    let taken = taken.report;
    deliver(&mut master, &agent_address(), newer.clone());
    let commands = deliver(
        &mut master,
        &agent_address(),
        Message::ReregisterAgent(older),
    );
    assert!(sent_to(&commands, &agent_address()).is_empty(), "ignored");
    let view = &master.agent_directory().expect("leads").agents()[&agent_id(1)];
    assert_eq!(view.tasks[&(framework(), task())].state, TaskState::Running);
    // A copy of the attempt taken (its answer was lost) is answered again.
    let commands = deliver(&mut master, &agent_address(), newer);
    assert_eq!(
        sent_to(&commands, &agent_address()),
        [Message::AgentReregistered(AgentRegistered {
            term: Term(2),
            agent: agent_id(1),
            report: taken,
        })]
    );
}

#[test]
fn a_kill_goes_to_the_agent_that_runs_the_task() {
    let (mut master, offer) = leader_with_offer();
    deliver(
        &mut master,
        &scheduler_address(),
        launch(offer.offer, "t1", "cpus:1"),
    );
    let commands = deliver(
        &mut master,
        &scheduler_address(),
        Message::Kill(crate::message::Kill {
            framework: framework(),
            task: task(),
        }),
    );
    assert!(matches!(
        &sent_to(&commands, &agent_address())[..],
        [Message::KillTask(kill)] if kill.task == task() && kill.term == Term(1)
    ));
    // A stranger cannot kill the framework's tasks.
    let stranger = Address::new("s9").expect("valid");
    let commands = deliver(
        &mut master,
        &stranger,
        Message::Kill(crate::message::Kill {
            framework: framework(),
            task: task(),
        }),
    );
    assert!(sent_to(&commands, &agent_address()).is_empty());
}

#[test]
fn an_agent_marked_gone_has_its_tasks_gone_and_is_told_to_shut_down() {
    let mut master = lone_leader_with_agent();
    deliver(
        &mut master,
        &agent_address(),
        reregister(agent_id(1), TaskState::Running),
    );
    subscribe(&mut master);
    let operator = Address::new("operator").expect("valid");
    let mark = Message::MarkAgentGone(crate::message::MarkAgentGone {
        request: 7,
        agent: agent_id(1),
    });
    let commands = deliver(&mut master, &operator, mark.clone());
    assert_eq!(
        appended(&commands),
        [RegistryEntry::AgentGone { agent: agent_id(1) }]
    );
    assert!(sent_to(&commands, &operator).iter().any(|message| matches!(
        message,
        Message::Committed(committed) if committed.request == 7
    )));
    assert!(
        sent_to(&commands, &scheduler_address())
            .iter()
            .any(|message| matches!(
                message,
                Message::TaskStatus(status) if status.state == TaskState::Gone
                    && status.source == StatusSource::Master
            ))
    );
    // Retried: nothing more is proposed.
    assert!(appended(&deliver(&mut master, &operator, mark)).is_empty());
    // The agent comes back: it is told to shut down.
    let commands = deliver(
        &mut master,
        &agent_address(),
        reregister(agent_id(1), TaskState::Running),
    );
    assert!(matches!(
        sent_to(&commands, &agent_address())[..],
        [Message::ShutdownAgent(_)]
    ));
    // An agent the cluster never admitted: refused, nothing proposed.
    let commands = deliver(
        &mut master,
        &operator,
        Message::MarkAgentGone(crate::message::MarkAgentGone {
            request: 8,
            agent: agent_id(5),
        }),
    );
    assert!(appended(&commands).is_empty());
}

fn failover_timer() -> MasterTimer {
    MasterTimer::FrameworkFailover(framework())
}

/// A lone leader with an agent running `t1` for a subscribed framework.
fn leader_with_running_task() -> Master {
    let (mut master, offer) = leader_with_offer();
    deliver(
        &mut master,
        &scheduler_address(),
        launch(offer.offer, "t1", "cpus:1"),
    );
    master
}

#[test]
fn f1_a_silent_scheduler_starts_its_failover_timer_and_its_end_kills_the_tasks() {
    let mut master = leader_with_running_task();
    let mut disconnected = Vec::new();
    for _ in 0..=MAX_MISSED_PINGS_DEFAULT {
        let commands = fire(&mut master, MasterTimer::AgentPing);
        // Keep the agent answering; the scheduler says nothing.
        for message in sent_to(&commands, &agent_address()) {
            if let Message::Ping(ping) = message {
                deliver(
                    &mut master,
                    &agent_address(),
                    Message::Pong(Pong {
                        term: ping.term,
                        sequence: ping.sequence,
                    }),
                );
            }
        }
        disconnected.extend(commands);
    }
    assert!(
        appended(&disconnected).contains(&RegistryEntry::FrameworkDisconnected {
            framework: framework()
        })
    );
    assert!(disconnected.contains(&Command::SetTimer {
        timer: failover_timer(),
        duration: DurationRange::fixed(framework_info().failover_timeout),
    }));
    // Its tasks live on until the timeout (F1): nothing was killed.
    assert!(!disconnected.iter().any(|command| matches!(
        command,
        Command::Send {
            message: Message::KillTask(_),
            ..
        }
    )));
    let commands = fire(&mut master, failover_timer());
    assert_eq!(
        appended(&commands),
        [RegistryEntry::FrameworkRemoved {
            framework: framework()
        }]
    );
    assert!(matches!(
        &sent_to(&commands, &agent_address())[..],
        [Message::KillTask(kill)] if kill.task == task()
    ));
}

/// The runtime says the scheduler's connection ended: the framework is disconnected at once,
/// not after missed pings; its outstanding offer is void and its failover timer starts, and
/// its tasks live on (F1). An end at an address no scheduler uses changes nothing.
#[test]
fn f1_a_scheduler_whose_connection_ends_is_disconnected_at_once() {
    let (mut master, _) = leader_with_offer();
    let mut commands = Vec::new();
    master.handle_event(
        MasterEvent::ConnectionLost(agent_address()),
        &mut Outbox::new(),
    );
    let mut out = Outbox::new();
    master.handle_event(MasterEvent::ConnectionLost(scheduler_address()), &mut out);
    commands.extend(out.drain());
    assert_eq!(
        appended(&commands),
        [RegistryEntry::FrameworkDisconnected {
            framework: framework()
        }]
    );
    assert!(commands.contains(&Command::SetTimer {
        timer: failover_timer(),
        duration: DurationRange::fixed(framework_info().failover_timeout),
    }));
    let directory = master.framework_directory().expect("leads");
    assert!(directory.offers().is_empty(), "its offer is void");
    assert!(!directory.frameworks().contains_key(&framework()));
    // It comes back in time, as a live scheduler whose connection broke would.
    let commands = resubscribe(&mut master, true);
    assert_eq!(
        appended(&commands),
        [RegistryEntry::FrameworkReconnected {
            framework: framework()
        }]
    );
}

#[test]
fn f1_a_scheduler_that_comes_back_in_time_stops_the_timer() {
    let mut master = leader_with_running_task();
    for _ in 0..=MAX_MISSED_PINGS_DEFAULT {
        fire(&mut master, MasterTimer::AgentPing);
    }
    let commands = resubscribe(&mut master, true);
    assert_eq!(
        appended(&commands),
        [RegistryEntry::FrameworkReconnected {
            framework: framework()
        }]
    );
    assert!(commands.contains(&Command::CancelTimer(failover_timer())));
    // Fired anyway (a timer already on its way): nothing is removed.
    assert!(appended(&fire(&mut master, failover_timer())).is_empty());
}

#[test]
fn f1_a_new_leader_re_arms_the_failover_timer_in_full() {
    let (_, commands) = leader_of_term_two_with(&[
        RegistryEntry::FrameworkRegistered {
            framework: framework(),
            info: framework_info(),
        },
        RegistryEntry::FrameworkDisconnected {
            framework: framework(),
        },
    ]);
    assert!(commands.contains(&Command::SetTimer {
        timer: failover_timer(),
        duration: DurationRange::fixed(framework_info().failover_timeout),
    }));
}

#[test]
fn tasks_of_a_removed_framework_are_killed_when_their_agent_re_registers() {
    // The registry knows the agent but not the task's framework (removed after its failover
    // timeout while the agent was away).
    let (mut master, _) = leader_of_term_two_with(&[admitted()]);
    let commands = deliver(
        &mut master,
        &agent_address(),
        reregister_in(Term(2), agent_id(1), TaskState::Running),
    );
    assert!(matches!(
        &sent_to(&commands, &agent_address())[..],
        [Message::KillTask(kill), Message::AgentReregistered(_)] if kill.task == task()
    ));
}

#[test]
fn a_declined_agent_is_not_offered_to_the_framework_until_the_filter_ends_or_it_revives() {
    let (mut master, offer) = leader_with_offer();
    let decline = |offer| {
        Message::Decline(Box::new(crate::message::Decline {
            framework: framework(),
            offers: BoundedVec::from_vec(vec![offer]).expect("one offer"),
            suppress: false,
        }))
    };
    let commands = deliver(&mut master, &scheduler_address(), decline(offer.offer));
    assert!(offers_in(&commands).is_empty());
    assert!(commands.contains(&Command::SetTimer {
        timer: MasterTimer::DeclineFilter(framework(), agent_id(1)),
        duration: DurationRange::fixed(crate::allocator::DECLINE_FILTER_DEFAULT),
    }));
    // Nor at the next allocation round.
    assert!(offers_in(&fire(&mut master, MasterTimer::AgentPing)).is_empty());
    // Reviving clears the filter.
    let commands = deliver(
        &mut master,
        &scheduler_address(),
        Message::Revive(framework()),
    );
    assert_eq!(offers_in(&commands).len(), 1);
}

#[test]
fn an_offer_held_too_long_is_rescinded_and_offered_again() {
    let (mut master, offer) = leader_with_offer();
    let commands = fire(&mut master, MasterTimer::OfferTimeout(offer.offer));
    let sent = sent_to(&commands, &scheduler_address());
    assert!(matches!(
        &sent[0],
        Message::RescindOffer(rescinded) if rescinded.offer == offer.offer
    ));
    let again = offers_in(&commands);
    assert_eq!(again.len(), 1);
    assert_ne!(again[0].offer, offer.offer, "a new offer");
    // The old offer cannot be accepted any more.
    let commands = deliver(
        &mut master,
        &scheduler_address(),
        launch(offer.offer, "t1", "cpus:1"),
    );
    assert!(sent_to(&commands, &agent_address()).is_empty());
}

#[test]
fn a_launch_is_resent_every_round_until_the_agent_reports_the_task() {
    let mut master = leader_with_running_task();
    // The RunTask was lost: the next ping round sends it again.
    let commands = fire(&mut master, MasterTimer::AgentPing);
    assert!(
        sent_to(&commands, &agent_address())
            .iter()
            .any(|message| matches!(message, Message::RunTask(run) if run.task == task()))
    );
    // Once the agent reports the task, the launch is done with.
    deliver(
        &mut master,
        &agent_address(),
        status_update(agent_id(1), TaskState::Running, 0),
    );
    let commands = fire(&mut master, MasterTimer::AgentPing);
    assert!(
        !sent_to(&commands, &agent_address())
            .iter()
            .any(|message| matches!(message, Message::RunTask(_)))
    );
}

/// Found by the seeded simulator (a duplicated message): a second copy of an accept that was
/// applied names offers that are gone, and used to report its launches DROPPED, ending a task
/// that runs (A1).
#[test]
fn a_duplicated_accept_does_not_drop_the_task_it_launched() {
    let (mut master, offer) = leader_with_offer();
    let accept = launch(offer.offer, "t1", "cpus:1");
    deliver(&mut master, &scheduler_address(), accept.clone());
    let commands = deliver(&mut master, &scheduler_address(), accept);
    assert!(
        !sent_to(&commands, &scheduler_address())
            .iter()
            .any(|message| matches!(message, Message::TaskStatus(_))),
        "no status for the launched task"
    );
    let view = &master.agent_directory().expect("leads").agents()[&agent_id(1)];
    assert_eq!(view.tasks[&(framework(), task())].state, TaskState::Staging);
}

#[test]
fn a_batch_of_inputs_is_allocated_once_when_it_ends() {
    let (mut master, offer) = leader_with_offer();
    // Two inputs that each ask for an allocation: a launch of all the offer holds (nothing
    // left, so no decline filter), and the task's end, which frees it again.
    let mut out = Outbox::new();
    master.handle_message(
        &scheduler_address(),
        launch(offer.offer, "t1", "cpus:4"),
        &mut out,
    );
    master.handle_message(
        &agent_address(),
        status_update(agent_id(1), TaskState::Finished, 0),
        &mut out,
    );
    let during: Commands = out.drain().collect();
    assert!(
        offers_in(&during).is_empty(),
        "nothing is allocated before the batch ends"
    );
    master.end_batch(&mut out);
    let ended: Commands = out.drain().collect();
    let offers = offers_in(&ended);
    assert_eq!(offers.len(), 1, "one allocation for the whole batch");
    assert_eq!(
        offers[0].resources.to_string(),
        "cpus:4",
        "the ended task's resources are free again"
    );
    master.end_batch(&mut out);
    assert!(
        out.is_empty(),
        "a batch with nothing pending allocates nothing"
    );
}

/// Master 1 of 3, whose log holds `entries` of term 1 that it never saw committed, elected
/// leader of term 2 with master 2's vote: the entries commit only once master 2 holds
/// the new leader's own no-op.
fn leader_of_term_two_of_three_with(entries: &[RegistryEntry]) -> Master {
    let (mut master, _) = boot(3, &durable_of_term_one(entries, MasterId(2)));
    win_election(&mut master, Term(2));
    master
}

/// Regression (found by a 120 s strict random nemesis, seed 1796511339214831038): a leader
/// that died a second after proposing its agent unreachable left the entry uncommitted; the
/// next leader took the agent's report and proposed its readmission, and the two entries
/// committed together. Applying the older one overwrote the states the agent had just
/// reported with UNREACHABLE, and the readmission then "resumed" them as UNREACHABLE: the
/// framework saw its running tasks UNREACHABLE for good.
#[test]
fn an_unreachable_entry_committed_after_the_agents_return_leaves_its_tasks_as_reported() {
    let mut master = leader_of_term_two_of_three_with(&[
        admitted(),
        RegistryEntry::FrameworkRegistered {
            framework: framework(),
            info: framework_info(),
        },
        RegistryEntry::AgentUnreachable { agent: agent_id(1) },
    ]);
    let commands = deliver(
        &mut master,
        &agent_address(),
        reregister_in(Term(2), agent_id(1), TaskState::Running),
    );
    assert_eq!(
        appended(&commands),
        [RegistryEntry::AgentReadmitted {
            agent: agent_id(1),
            address: agent_address()
        }]
    );
    // Master 2 holds everything: the old entries, the no-op of term 2 and the readmission.
    let last = master.durable.log.last_index();
    deliver(
        &mut master,
        &member(2),
        Message::Election(ElectionMessage::AppendReply(AppendReply {
            term: Term(2),
            success: true,
            index: last,
        })),
    );
    assert_eq!(master.commit_index(), last);
    assert_eq!(
        master.registry().agents()[&agent_id(1)].status,
        AgentStatus::Admitted
    );
    let key = (framework(), task());
    let directory = master.agent_directory().expect("leads");
    assert_eq!(
        directory.agents()[&agent_id(1)].tasks[&key].state,
        TaskState::Running
    );
    assert_eq!(directory.generated()[&key].state, TaskState::Running);
    // Reconciliation answers the state the agent reported.
    resubscribe_suppressed(&mut master);
    let commands = deliver(
        &mut master,
        &scheduler_address(),
        Message::Reconcile(Box::new(crate::message::Reconcile {
            framework: framework(),
            tasks: BoundedVec::from_vec(vec![(task(), Some(agent_id(1)))]).expect("one"),
        })),
    );
    assert!(
        sent_to(&commands, &scheduler_address()).iter().any(
            |message| matches!(message, Message::TaskStatus(status)
                if status.task == task()
                    && status.source == StatusSource::Reconciliation
                    && status.state == TaskState::Running)
        ),
        "{commands:?}"
    );
}

/// After a failover the framework often subscribes to the new leader before the agents
/// re-register. A re-registration that changes nothing in the registry offers the agent at
/// once instead of at the next allocation round (the failover benchmark's tail).
#[test]
fn an_agent_that_re_registers_after_a_failover_is_offered_at_once() {
    let (mut master, _) = leader_of_term_two_with(&[
        admitted(),
        RegistryEntry::FrameworkRegistered {
            framework: framework(),
            info: framework_info(),
        },
    ]);
    let commands = resubscribe(&mut master, false);
    assert!(offers_in(&commands).is_empty(), "no agent has reported yet");
    let commands = deliver(
        &mut master,
        &agent_address(),
        reregister_in(Term(2), agent_id(1), TaskState::Running),
    );
    assert!(appended(&commands).is_empty(), "the registry is unchanged");
    let offers = offers_in(&commands);
    assert_eq!(offers.len(), 1, "{commands:?}");
    assert_eq!(offers[0].agent, agent_id(1));
}

/// The leader finds a pong's agent through an index of the registry's admitted agents by
/// address; it answers as a scan of the registry in id order would.
#[test]
fn the_address_index_follows_the_registry() {
    let other = Address::new("a2").expect("valid");
    let mut registry = crate::registry::Registry::new();
    let entries = [
        admitted(),
        // A second agent admitted at the same address before the first is marked.
        RegistryEntry::AgentAdmitted {
            agent: agent_id(2),
            address: agent_address(),
            info: info(),
        },
        RegistryEntry::AgentUnreachable { agent: agent_id(1) },
        RegistryEntry::AgentReadmitted {
            agent: agent_id(1),
            address: other.clone(),
        },
        RegistryEntry::AgentGone { agent: agent_id(2) },
    ];
    let mut index = AddressIndex::of(&registry);
    let mut found = Vec::new();
    for (position, entry) in entries.iter().enumerate() {
        registry.apply(LogIndex(position as u64 + 1), entry);
        let (RegistryEntry::AgentAdmitted { agent, .. }
        | RegistryEntry::AgentUnreachable { agent }
        | RegistryEntry::AgentReadmitted { agent, .. }
        | RegistryEntry::AgentGone { agent }) = entry
        else {
            unreachable!()
        };
        index.update(&registry, *agent);
        assert_eq!(index, AddressIndex::of(&registry));
        found.push((
            index.admitted_at(&agent_address()),
            index.admitted_at(&other),
        ));
    }
    assert_eq!(
        found,
        [
            (Some(agent_id(1)), None),
            (Some(agent_id(1)), None),
            (Some(agent_id(2)), None),
            (Some(agent_id(2)), Some(agent_id(1))),
            (None, Some(agent_id(1))),
        ]
    );
}
