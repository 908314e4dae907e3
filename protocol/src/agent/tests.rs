//! Unit tests of the agent's rules (module docs), asserting on outboxes. Each names the rule
//! and the invariant it protects.

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;

use super::*;
use crate::Command;
use crate::ids::{AssignedId, UpdateId};
use crate::message::{AgentRegistered, KillTask, LeaderHint};
use crate::task::TaskCommand;
use crate::test_support::{persisted, sent};

type Commands = Vec<Command<AgentTimer, AgentRecord, AgentAction>>;

fn master(id: u8) -> Address {
    Address::new(&alloc::format!("m{id}")).expect("valid")
}

fn agent_id() -> AgentId {
    AgentId(AssignedId {
        term: Term(1),
        sequence: 0,
    })
}

fn framework() -> FrameworkId {
    FrameworkId(AssignedId {
        term: Term(1),
        sequence: 7,
    })
}

fn task(name: &str) -> TaskId {
    TaskId::new(name).expect("valid")
}

fn executor(name: &str) -> ExecutorId {
    ExecutorId::new(name).expect("valid")
}

fn boot_id(name: &str) -> BootId {
    BootId::new(name).expect("valid")
}

fn config() -> AgentConfig {
    AgentConfig::new(
        vec![master(1), master(2), master(3)],
        Address::new("a1").expect("valid"),
        AgentInfo {
            hostname: crate::bounded::Name::new("host").expect("valid"),
            resources: Resources::parse("cpus:4;mem:1024").expect("valid"),
        },
        boot_id("boot-1"),
    )
    .expect("valid configuration")
}

fn boot_from(durable: &AgentDurable) -> (Agent, Commands) {
    let mut out = Outbox::new();
    let agent = Agent::boot(&config(), durable, &mut out).expect("boots");
    (agent, out.drain().collect())
}

fn deliver(agent: &mut Agent, from: u8, message: Message) -> Commands {
    let mut out = Outbox::new();
    agent.handle_message(&master(from), message, &mut out);
    out.drain().collect()
}

fn fire(agent: &mut Agent, timer: AgentTimer) -> Commands {
    let mut out = Outbox::new();
    agent.handle_timer(timer, &mut out);
    out.drain().collect()
}

fn event(agent: &mut Agent, event: AgentEvent) -> Commands {
    let mut out = Outbox::new();
    agent.handle_event(event, &mut out);
    out.drain().collect()
}

fn position(
    commands: &Commands,
    wanted: impl Fn(&Command<AgentTimer, AgentRecord, AgentAction>) -> bool,
) -> usize {
    commands
        .iter()
        .position(wanted)
        .expect("the command is in the outbox")
}

fn status_updates(commands: &Commands) -> Vec<StatusUpdate> {
    sent(commands)
        .into_iter()
        .filter_map(|(_, message)| match message {
            Message::StatusUpdate(update) => Some(update),
            _ => None,
        })
        .collect()
}

/// The answer to a new agent's first registration attempt.
fn registered(term: u64) -> Message {
    Message::AgentRegistered(AgentRegistered {
        term: Term(term),
        agent: agent_id(),
        report: 1,
    })
}

/// A new agent registered with m1, the leader of term 1.
fn registered_agent() -> Agent {
    let (mut agent, _) = boot_from(&AgentDurable::default());
    deliver(&mut agent, 1, registered(1));
    assert!(matches!(agent.phase(), AgentPhase::Registered { .. }));
    agent
}

fn run_task(agent: &mut Agent, name: &str, executor_name: &str, resources: &str) -> Commands {
    deliver(
        agent,
        1,
        Message::RunTask(Box::new(RunTask {
            term: Term(1),
            framework: framework(),
            executor: executor(executor_name),
            task: task(name),
            resources: Resources::parse(resources).expect("valid"),
            command: TaskCommand::new("sleep 60").expect("valid"),
        })),
    )
}

fn report(agent: &mut Agent, name: &str, executor_name: &str, state: TaskState) -> Commands {
    event(
        agent,
        AgentEvent::TaskStateReported {
            framework: framework(),
            executor: executor(executor_name),
            task: task(name),
            state,
            reason: None,
        },
    )
}

fn acknowledge(agent: &mut Agent, term: u64, name: &str, update: u64) -> Commands {
    deliver(
        agent,
        1,
        Message::StatusAcknowledgement(StatusAcknowledgement {
            term: Term(term),
            framework: framework(),
            task: task(name),
            update: UpdateId(update),
        }),
    )
}

fn retry_timer(name: &str) -> AgentTimer {
    AgentTimer::StatusRetry {
        framework: framework(),
        task: task(name),
    }
}

/// A registered agent running task `t1` in executor `e1`, whose RUNNING update (id 0) was
/// acknowledged.
fn agent_running_one_task() -> Agent {
    let mut agent = registered_agent();
    run_task(&mut agent, "t1", "e1", "cpus:1");
    report(&mut agent, "t1", "e1", TaskState::Running);
    acknowledge(&mut agent, 1, "t1", 0);
    agent
}

/// The durable state of an agent that crashed while running `t1` in `e1` and `t2` in `e2`,
/// on host boot `boot-1`.
fn checkpoint_with_two_tasks() -> AgentDurable {
    let mut durable = AgentDurable::default();
    let records = [
        AgentRecord::Booted(boot_id("boot-1")),
        AgentRecord::TermSeen(Term(1)),
        AgentRecord::Registered(agent_id()),
        AgentRecord::TaskLaunched {
            framework: framework(),
            executor: executor("e1"),
            task: task("t1"),
            resources: Resources::parse("cpus:1").expect("valid"),
            command: TaskCommand::new("sleep 60").expect("valid"),
        },
        AgentRecord::TaskLaunched {
            framework: framework(),
            executor: executor("e2"),
            task: task("t2"),
            resources: Resources::parse("cpus:2").expect("valid"),
            command: TaskCommand::new("sleep 60").expect("valid"),
        },
    ];
    for record in &records {
        Agent::apply(&mut durable, record);
    }
    for (name, update) in [("t1", 0), ("t2", 1)] {
        for record in [
            AgentRecord::Update {
                framework: framework(),
                task: task(name),
                update: UpdateCheckpoint {
                    state: TaskState::Running,
                    reason: None,
                    update: UpdateId(update),
                },
            },
            AgentRecord::Acknowledged {
                framework: framework(),
                task: task(name),
                update: UpdateId(update),
            },
        ] {
            Agent::apply(&mut durable, &record);
        }
    }
    durable
}

fn connected(executor_name: &str, tasks: &[&str]) -> AgentEvent {
    AgentEvent::ExecutorConnected {
        framework: framework(),
        executor: executor(executor_name),
        tasks: BoundedVec::from_vec(tasks.iter().map(|name| task(name)).collect())
            .expect("few tasks"),
    }
}

#[test]
fn a_new_agent_tries_the_masters_in_turn() {
    let (mut agent, commands) = boot_from(&AgentDurable::default());
    assert_eq!(
        persisted(&commands),
        [
            AgentRecord::Booted(boot_id("boot-1")),
            AgentRecord::Reporting
        ]
    );
    let messages = sent(&commands);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].0, master(1));
    assert!(matches!(messages[0].1, Message::RegisterAgent(_)));
    assert!(commands.contains(&Command::SetTimer {
        timer: AgentTimer::Registration,
        duration: REGISTRATION_RETRY_DEFAULT,
    }));
    let commands = fire(&mut agent, AgentTimer::Registration);
    assert_eq!(sent(&commands)[0].0, master(2));
}

#[test]
fn a_non_leader_hint_redirects_the_registration() {
    let (mut agent, _) = boot_from(&AgentDurable::default());
    let commands = deliver(
        &mut agent,
        1,
        Message::LeaderHint(LeaderHint {
            term: Term(1),
            leader: Some(master(3)),
        }),
    );
    let messages = sent(&commands);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].0, master(3));
    assert!(matches!(messages[0].1, Message::RegisterAgent(_)));
}

#[test]
fn the_assigned_id_is_persisted_before_it_is_used() {
    let (mut agent, _) = boot_from(&AgentDurable::default());
    let commands = deliver(&mut agent, 2, registered(1));
    assert_eq!(
        persisted(&commands),
        [
            AgentRecord::TermSeen(Term(1)),
            AgentRecord::Registered(agent_id())
        ]
    );
    assert_eq!(agent.id(), Some(agent_id()));
    assert_eq!(
        agent.phase(),
        &AgentPhase::Registered {
            leader: master(2),
            term: Term(1)
        }
    );
    assert!(commands.contains(&Command::CancelTimer(AgentTimer::Registration)));
    // A duplicated answer changes nothing.
    let commands = deliver(&mut agent, 2, registered(1));
    assert!(persisted(&commands).is_empty() && sent(&commands).is_empty());
}

#[test]
fn fencing_ignores_commands_of_a_lower_term_even_after_a_restart() {
    // E3: registered with the leader of term 1, the agent hears from the leader of term 2.
    let mut agent = agent_running_one_task();
    let commands = deliver(
        &mut agent,
        2,
        Message::LeaderChanged(LeaderChanged { term: Term(2) }),
    );
    assert_eq!(
        persisted(&commands),
        [AgentRecord::TermSeen(Term(2)), AgentRecord::Reporting]
    );
    let stale: [Message; 4] = [
        Message::Ping(Ping {
            term: Term(1),
            sequence: 1,
        }),
        Message::ShutdownAgent(ShutdownAgent {
            term: Term(1),
            agent: agent_id(),
        }),
        Message::LeaderChanged(LeaderChanged { term: Term(1) }),
        Message::RunTask(Box::new(RunTask {
            term: Term(1),
            framework: framework(),
            executor: executor("e9"),
            task: task("t9"),
            resources: Resources::parse("cpus:1").expect("valid"),
            command: TaskCommand::new("sleep 60").expect("valid"),
        })),
    ];
    for message in stale.clone() {
        let commands = deliver(&mut agent, 1, message);
        assert!(
            commands
                .iter()
                .all(|command| matches!(command, Command::Note(Note::StaleTerm { .. }))),
            "a command of term 1 is ignored: {commands:?}"
        );
    }
    // The highest term is durable: a restarted agent still fences term 1.
    let (mut restarted, _) = boot_from(agent.durable());
    assert_eq!(restarted.highest_term(), Term(2));
    for message in stale {
        let commands = deliver(&mut restarted, 1, message);
        assert!(persisted(&commands).is_empty() && sent(&commands).is_empty());
        assert!(
            commands
                .iter()
                .all(|command| !matches!(command, Command::Act(_)))
        );
    }
}

#[test]
fn only_the_configured_masters_are_obeyed() {
    let mut agent = agent_running_one_task();
    let stranger = Address::new("10.9.9.9:5050").expect("valid");
    for message in [
        Message::LeaderChanged(LeaderChanged { term: Term(9) }),
        Message::ShutdownAgent(ShutdownAgent {
            term: Term(9),
            agent: agent_id(),
        }),
    ] {
        let mut out = Outbox::new();
        agent.handle_message(&stranger, message, &mut out);
        let commands: Commands = out.drain().collect();
        assert_eq!(
            commands,
            [Command::Note(Note::UnknownPeer {
                peer: stranger.clone()
            })]
        );
    }
    assert_eq!(agent.highest_term(), Term(1));
    // Nor does a hint send the registration to a stranger.
    let (mut fresh, _) = boot_from(&AgentDurable::default());
    let commands = deliver(
        &mut fresh,
        1,
        Message::LeaderHint(LeaderHint {
            term: Term(1),
            leader: Some(stranger),
        }),
    );
    assert!(commands.is_empty());
}

#[test]
fn a_new_leader_is_followed_and_gets_the_unacknowledged_updates() {
    let mut agent = registered_agent();
    run_task(&mut agent, "t1", "e1", "cpus:1");
    report(&mut agent, "t1", "e1", TaskState::Running);
    // The leader of term 2 calls: the agent re-registers with everything it holds.
    let commands = deliver(
        &mut agent,
        2,
        Message::LeaderChanged(LeaderChanged { term: Term(2) }),
    );
    let messages = sent(&commands);
    assert_eq!(messages.len(), 1);
    let (to, Message::ReregisterAgent(reregister)) = &messages[0] else {
        panic!("expected a re-registration, got {messages:?}");
    };
    assert_eq!(*to, master(2));
    assert_eq!(reregister.agent, agent_id());
    assert_eq!(reregister.highest_term, Term(2));
    assert_eq!(reregister.tasks.len(), 1);
    assert_eq!(reregister.tasks.as_slice()[0].state, TaskState::Running);
    assert_eq!(
        reregister.tasks.as_slice()[0].latest_update,
        Some(UpdateId(0))
    );
    assert_eq!(reregister.unacknowledged.len(), 1);
    // Re-registered: the update in flight goes to the new leader.
    let commands = deliver(
        &mut agent,
        2,
        Message::AgentReregistered(AgentRegistered {
            term: Term(2),
            agent: agent_id(),
            report: reregister.report,
        }),
    );
    let messages = sent(&commands);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].0, master(2));
    assert!(
        matches!(&messages[0].1, Message::StatusUpdate(update) if update.update == UpdateId(0))
    );
}

#[test]
fn a_command_from_a_newer_leader_makes_the_agent_re_register_with_it() {
    let mut agent = registered_agent();
    run_task(&mut agent, "t1", "e1", "cpus:1");
    report(&mut agent, "t1", "e1", TaskState::Running);
    // m2 leads term 2 and acknowledges the update before the agent heard of it.
    let commands = deliver(
        &mut agent,
        2,
        Message::StatusAcknowledgement(StatusAcknowledgement {
            term: Term(2),
            framework: framework(),
            task: task("t1"),
            update: UpdateId(0),
        }),
    );
    assert_eq!(
        persisted(&commands),
        [
            AgentRecord::TermSeen(Term(2)),
            AgentRecord::Acknowledged {
                framework: framework(),
                task: task("t1"),
                update: UpdateId(0),
            },
            AgentRecord::Reporting
        ]
    );
    let messages = sent(&commands);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].0, master(2));
    assert!(matches!(messages[0].1, Message::ReregisterAgent(_)));
    assert!(matches!(agent.phase(), AgentPhase::Registering { .. }));
}

#[test]
fn an_update_is_persisted_before_it_is_sent() {
    let mut agent = registered_agent();
    run_task(&mut agent, "t1", "e1", "cpus:1");
    let commands = report(&mut agent, "t1", "e1", TaskState::Running);
    let persist = position(&commands, |command| {
        matches!(command, Command::Persist(AgentRecord::Update { .. }))
    });
    let send = position(&commands, |command| {
        matches!(
            command,
            Command::Send {
                message: Message::StatusUpdate(_),
                ..
            }
        )
    });
    assert!(persist < send, "A2: the update is durable before it leaves");
    assert_eq!(
        status_updates(&commands),
        [StatusUpdate {
            agent: agent_id(),
            framework: framework(),
            task: task("t1"),
            state: TaskState::Running,
            reason: None,
            update: UpdateId(0),
        }]
    );
    assert!(commands.contains(&Command::SetTimer {
        timer: retry_timer("t1"),
        duration: DurationRange::fixed(STATUS_RETRY_INITIAL_DEFAULT),
    }));
}

#[test]
fn one_update_per_task_is_in_flight() {
    let mut agent = registered_agent();
    run_task(&mut agent, "t1", "e1", "cpus:1");
    run_task(&mut agent, "t2", "e1", "cpus:1");
    report(&mut agent, "t1", "e1", TaskState::Running);
    // The next update of t1 waits; another task's update does not.
    let commands = report(&mut agent, "t1", "e1", TaskState::Finished);
    assert_eq!(persisted(&commands).len(), 1);
    assert!(sent(&commands).is_empty());
    let commands = report(&mut agent, "t2", "e1", TaskState::Running);
    assert_eq!(status_updates(&commands).len(), 1);
    // The acknowledgement of t1's first update releases its second.
    let commands = acknowledge(&mut agent, 1, "t1", 0);
    assert_eq!(
        persisted(&commands)[0],
        AgentRecord::Acknowledged {
            framework: framework(),
            task: task("t1"),
            update: UpdateId(0),
        }
    );
    let updates = status_updates(&commands);
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].state, TaskState::Finished);
    assert_eq!(updates[0].update, UpdateId(1));
}

#[test]
fn an_unacknowledged_update_is_retried_with_a_doubling_backoff() {
    let mut agent = registered_agent();
    run_task(&mut agent, "t1", "e1", "cpus:1");
    report(&mut agent, "t1", "e1", TaskState::Running);
    let mut waits = Vec::new();
    for _ in 0..8 {
        let commands = fire(&mut agent, retry_timer("t1"));
        let updates = status_updates(&commands);
        assert_eq!(updates.len(), 1);
        assert_eq!(updates[0].update, UpdateId(0), "a resend keeps its id");
        let wait = commands.iter().find_map(|command| match command {
            Command::SetTimer { timer, duration } if *timer == retry_timer("t1") => {
                Some(duration.min.as_secs())
            }
            _ => None,
        });
        waits.push(wait.expect("the retry is re-armed"));
    }
    assert_eq!(waits, [2, 4, 8, 16, 32, 60, 60, 60]);
    // Once acknowledged, it is not retried.
    acknowledge(&mut agent, 1, "t1", 0);
    assert!(fire(&mut agent, retry_timer("t1")).is_empty());
}

#[test]
fn a_duplicate_acknowledgement_is_ignored() {
    let mut agent = registered_agent();
    run_task(&mut agent, "t1", "e1", "cpus:1");
    report(&mut agent, "t1", "e1", TaskState::Running);
    report(&mut agent, "t1", "e1", TaskState::Finished);
    assert_eq!(persisted(&acknowledge(&mut agent, 1, "t1", 0)).len(), 1);
    // The same acknowledgement again must not acknowledge the FINISHED update (id 1).
    let commands = acknowledge(&mut agent, 1, "t1", 0);
    assert!(commands.is_empty(), "{commands:?}");
    let unacknowledged = &agent.durable().tasks[&(framework(), task("t1"))].unacknowledged;
    assert_eq!(unacknowledged.len(), 1);
    assert_eq!(unacknowledged[0].update, UpdateId(1));
}

#[test]
fn nothing_follows_a_terminal_update() {
    let mut agent = agent_running_one_task();
    report(&mut agent, "t1", "e1", TaskState::Finished);
    for state in [TaskState::Running, TaskState::Failed] {
        assert!(report(&mut agent, "t1", "e1", state).is_empty(), "A2");
    }
    // Once the terminal update is acknowledged the task is forgotten; a late report of it
    // changes nothing.
    acknowledge(&mut agent, 1, "t1", 1);
    assert!(agent.durable().tasks.is_empty());
    assert!(report(&mut agent, "t1", "e1", TaskState::Running).is_empty());
    // R5: a late duplicate of its launch does not run it again.
    assert!(run_task(&mut agent, "t1", "e1", "cpus:1").is_empty());
}

#[test]
fn a_launch_that_does_not_fit_fails_with_an_error_update() {
    let mut agent = registered_agent();
    let commands = run_task(&mut agent, "t1", "e1", "cpus:3");
    assert!(
        commands
            .iter()
            .any(|command| matches!(command, Command::Act(AgentAction::StartExecutor { .. })))
    );
    let commands = run_task(&mut agent, "t2", "e1", "cpus:2");
    assert!(
        commands
            .iter()
            .all(|command| !matches!(command, Command::Act(_)))
    );
    let updates = status_updates(&commands);
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].state, TaskState::Error);
    assert_eq!(
        updates[0].reason,
        Some(TaskStatusReason::ResourcesUnavailable)
    );
    // A duplicated launch is not run twice.
    assert!(run_task(&mut agent, "t1", "e1", "cpus:3").is_empty());
}

#[test]
fn recovery_fails_the_tasks_of_executors_that_do_not_return() {
    let (mut agent, commands) = boot_from(&checkpoint_with_two_tasks());
    assert!(
        sent(&commands).is_empty(),
        "no registration before the executors are back"
    );
    assert!(commands.contains(&Command::SetTimer {
        timer: AgentTimer::ExecutorReregistration,
        duration: DurationRange::fixed(EXECUTOR_REREGISTER_TIMEOUT_DEFAULT),
    }));
    assert!(event(&mut agent, connected("e1", &["t1"])).is_empty());
    let commands = fire(&mut agent, AgentTimer::ExecutorReregistration);
    assert_eq!(
        persisted(&commands),
        [
            AgentRecord::Update {
                framework: framework(),
                task: task("t2"),
                update: UpdateCheckpoint {
                    state: TaskState::Failed,
                    reason: Some(TaskStatusReason::ExecutorReregistrationTimeout),
                    update: UpdateId(2),
                },
            },
            AgentRecord::Reporting
        ]
    );
    let messages = sent(&commands);
    assert_eq!(messages.len(), 1);
    let Message::ReregisterAgent(reregister) = &messages[0].1 else {
        panic!("expected a re-registration, got {messages:?}");
    };
    // A3: the task whose executor survived is still known and running.
    let states: Vec<(TaskId, TaskState)> = reregister
        .tasks
        .iter()
        .map(|report| (report.task.clone(), report.state))
        .collect();
    assert_eq!(
        states,
        [
            (task("t1"), TaskState::Running),
            (task("t2"), TaskState::Failed)
        ]
    );
}

#[test]
fn recovery_ends_as_soon_as_every_executor_is_back() {
    let (mut agent, _) = boot_from(&checkpoint_with_two_tasks());
    assert!(event(&mut agent, connected("e2", &["t2"])).is_empty());
    let commands = event(&mut agent, connected("e1", &["t1"]));
    assert_eq!(
        persisted(&commands),
        [AgentRecord::Reporting],
        "no task fails; a registration attempt starts"
    );
    assert!(commands.contains(&Command::CancelTimer(AgentTimer::ExecutorReregistration)));
    assert!(matches!(sent(&commands)[0].1, Message::ReregisterAgent(_)));
    assert!(fire(&mut agent, AgentTimer::ExecutorReregistration).is_empty());
}

#[test]
fn a_new_boot_id_loses_every_task_but_keeps_the_agent_id() {
    let durable = checkpoint_with_two_tasks();
    let mut out = Outbox::new();
    let rebooted = AgentConfig::new(
        vec![master(1)],
        Address::new("a1").expect("valid"),
        config().info().clone(),
        boot_id("boot-2"),
    )
    .expect("valid");
    let agent = Agent::boot(&rebooted, &durable, &mut out).expect("boots");
    let commands: Commands = out.drain().collect();
    let records = persisted(&commands);
    assert_eq!(records[0], AgentRecord::Booted(boot_id("boot-2")));
    let lost: Vec<(TaskState, Option<TaskStatusReason>)> = records[1..]
        .iter()
        .filter_map(|record| match record {
            AgentRecord::Update { update, .. } => Some((update.state, update.reason)),
            AgentRecord::Reporting => None,
            other => panic!("unexpected record {other:?}"),
        })
        .collect();
    assert_eq!(
        lost,
        [(TaskState::Lost, Some(TaskStatusReason::AgentRestarted)); 2]
    );
    assert_eq!(agent.id(), Some(agent_id()));
    let messages = sent(&commands);
    assert!(
        matches!(&messages[0].1, Message::ReregisterAgent(reregister) if reregister.agent == agent_id())
    );
}

#[test]
fn a_checkpoint_that_needs_more_than_the_configuration_is_refused() {
    let mut durable = checkpoint_with_two_tasks();
    Agent::apply(
        &mut durable,
        &AgentRecord::TaskLaunched {
            framework: framework(),
            executor: executor("e3"),
            task: task("t3"),
            resources: Resources::parse("cpus:2").expect("valid"),
            command: TaskCommand::new("sleep 60").expect("valid"),
        },
    );
    let mut out = Outbox::new();
    let error = Agent::boot(&config(), &durable, &mut out).expect_err("5 cpus exceed 4");
    assert!(matches!(error, AgentBootError::TasksExceedResources { .. }));
    assert!(alloc::string::ToString::to_string(&error).contains("cpus:5"));
    assert!(out.is_empty(), "a refused checkpoint changes nothing");
}

#[test]
fn the_leader_is_answered_and_its_silence_starts_a_search() {
    let mut agent = registered_agent();
    let commands = deliver(
        &mut agent,
        1,
        Message::Ping(Ping {
            term: Term(1),
            sequence: 4,
        }),
    );
    assert_eq!(
        sent(&commands),
        [(
            master(1),
            Message::Pong(Pong {
                term: Term(1),
                sequence: 4
            })
        )]
    );
    assert!(commands.contains(&Command::SetTimer {
        timer: AgentTimer::LeaderSilence,
        duration: DurationRange::fixed(LEADER_SILENCE_TIMEOUT_DEFAULT),
    }));
    let commands = fire(&mut agent, AgentTimer::LeaderSilence);
    assert!(matches!(agent.phase(), AgentPhase::Registering { .. }));
    let messages = sent(&commands);
    assert!(matches!(messages[0].1, Message::ReregisterAgent(_)));
}

#[test]
fn a_gone_agent_stops_its_executors_and_registers_anew() {
    let mut agent = agent_running_one_task();
    let commands = deliver(
        &mut agent,
        1,
        Message::ShutdownAgent(ShutdownAgent {
            term: Term(1),
            agent: agent_id(),
        }),
    );
    assert!(
        commands.contains(&Command::Act(AgentAction::ShutdownExecutor {
            framework: framework(),
            executor: executor("e1"),
        }))
    );
    let removed = position(&commands, |command| {
        matches!(command, Command::Persist(AgentRecord::Removed))
    });
    let register = position(&commands, |command| {
        matches!(
            command,
            Command::Send {
                message: Message::RegisterAgent(_),
                ..
            }
        )
    });
    assert!(removed < register);
    assert_eq!(agent.id(), None);
    assert!(agent.durable().tasks.is_empty());
    // The new agent is admitted under a new id.
    let new_id = AgentId(AssignedId {
        term: Term(1),
        sequence: 1,
    });
    let report = agent.durable().reports;
    deliver(
        &mut agent,
        1,
        Message::AgentRegistered(AgentRegistered {
            term: Term(1),
            agent: new_id,
            report,
        }),
    );
    assert_eq!(agent.id(), Some(new_id));
}

#[test]
fn an_executor_exit_fails_its_tasks() {
    let mut agent = agent_running_one_task();
    let commands = event(
        &mut agent,
        AgentEvent::ExecutorExited {
            framework: framework(),
            executor: executor("e1"),
        },
    );
    let updates = status_updates(&commands);
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].state, TaskState::Failed);
    assert_eq!(
        updates[0].reason,
        Some(TaskStatusReason::ExecutorTerminated)
    );
}

#[test]
fn an_unacknowledged_update_survives_a_restart_and_is_resent() {
    let mut agent = registered_agent();
    run_task(&mut agent, "t1", "e1", "cpus:1");
    report(&mut agent, "t1", "e1", TaskState::Running);
    // The agent process crashes before the acknowledgement; its executor survives.
    let (mut restarted, _) = boot_from(agent.durable());
    let commands = event(&mut restarted, connected("e1", &["t1"]));
    let messages = sent(&commands);
    let Message::ReregisterAgent(reregister) = &messages[0].1 else {
        panic!("expected a re-registration, got {messages:?}");
    };
    assert_eq!(reregister.unacknowledged.len(), 1);
    assert_eq!(reregister.unacknowledged.as_slice()[0].update, UpdateId(0));
    let commands = deliver(
        &mut restarted,
        1,
        Message::AgentReregistered(AgentRegistered {
            term: Term(1),
            agent: agent_id(),
            report: reregister.report,
        }),
    );
    let updates = status_updates(&commands);
    assert_eq!(updates.len(), 1);
    assert_eq!(
        updates[0].update,
        UpdateId(0),
        "A2: the same update, not a new one"
    );
    assert_eq!(updates[0].state, TaskState::Running);
    // The next update gets a fresh id: the counter is durable.
    acknowledge(&mut restarted, 1, "t1", 0);
    let commands = report(&mut restarted, "t1", "e1", TaskState::Finished);
    assert_eq!(status_updates(&commands)[0].update, UpdateId(1));
}

fn kill(agent: &mut Agent, term: u64, name: &str) -> Commands {
    deliver(
        agent,
        1,
        Message::KillTask(KillTask {
            term: Term(term),
            framework: framework(),
            task: task(name),
        }),
    )
}

#[test]
fn a_kill_goes_to_the_task_s_executor_and_its_report_is_the_update() {
    let mut agent = agent_running_one_task();
    let commands = kill(&mut agent, 1, "t1");
    assert_eq!(
        commands,
        vec![Command::Act(AgentAction::KillTask {
            framework: framework(),
            executor: executor("e1"),
            task: task("t1"),
        })]
    );
    let commands = report(&mut agent, "t1", "e1", TaskState::Killed);
    assert_eq!(status_updates(&commands)[0].state, TaskState::Killed);
}

#[test]
fn a_kill_of_an_unknown_or_finished_task_or_of_a_lower_term_changes_nothing() {
    let mut agent = agent_running_one_task();
    assert!(kill(&mut agent, 1, "t9").is_empty(), "unknown task");
    let commands = kill(&mut agent, 0, "t1");
    assert!(
        commands
            .iter()
            .all(|command| matches!(command, Command::Note(_))),
        "E3: a kill of a lower term is not obeyed"
    );
    report(&mut agent, "t1", "e1", TaskState::Finished);
    assert!(kill(&mut agent, 1, "t1").is_empty(), "finished task");
}

#[test]
fn a_launch_hands_the_command_and_resources_to_the_executor() {
    let mut agent = registered_agent();
    let commands = run_task(&mut agent, "t1", "e1", "cpus:1");
    assert!(commands.contains(&Command::Act(AgentAction::LaunchTask {
        framework: framework(),
        executor: executor("e1"),
        task: task("t1"),
        resources: Resources::parse("cpus:1").expect("valid"),
        command: TaskCommand::new("sleep 60").expect("valid"),
    })));
    assert_eq!(
        agent.durable().tasks[&(framework(), task("t1"))]
            .command
            .as_str(),
        "sleep 60",
        "the command is checkpointed with the task"
    );
}

/// An answer to an older registration attempt is ignored: the leader took a report that may
/// lack what the agent did since (a launch it ran, an operation it applied), and an agent
/// registered on it would leave the leader's view behind.
#[test]
fn an_answer_to_an_older_registration_attempt_is_ignored() {
    let mut agent = agent_running_one_task();
    let commands = deliver(
        &mut agent,
        2,
        Message::LeaderChanged(LeaderChanged { term: Term(2) }),
    );
    let messages = sent(&commands);
    let Message::ReregisterAgent(reregister) = &messages[0].1 else {
        panic!("expected a re-registration, got {messages:?}");
    };
    let current = reregister.report;
    let older = Message::AgentReregistered(AgentRegistered {
        term: Term(2),
        agent: agent_id(),
        report: current - 1,
    });
    assert!(deliver(&mut agent, 2, older).is_empty());
    assert!(matches!(agent.phase(), AgentPhase::Registering { .. }));
    deliver(
        &mut agent,
        2,
        Message::AgentReregistered(AgentRegistered {
            term: Term(2),
            agent: agent_id(),
            report: current,
        }),
    );
    assert!(matches!(agent.phase(), AgentPhase::Registered { .. }));
}
