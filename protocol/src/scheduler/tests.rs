//! Unit tests of the scheduler's rules (module docs), asserting on outboxes.

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;

use super::*;
use crate::Command;
use crate::bounded::Name;
use crate::ids::{AssignedId, OfferId, Principal, Role, UpdateId};
use crate::resources::Resources;
use crate::task::TaskCommand;
use crate::test_support::{persisted, sent};

type Commands = Vec<Command<SchedulerTimer, SchedulerRecord, SchedulerAction>>;

fn master(id: u8) -> Address {
    Address::new(&alloc::format!("m{id}")).expect("valid")
}

fn framework() -> FrameworkId {
    FrameworkId(AssignedId {
        term: Term(2),
        sequence: 0,
    })
}

fn agent() -> AgentId {
    AgentId(AssignedId {
        term: Term(1),
        sequence: 0,
    })
}

fn task(name: &str) -> TaskId {
    TaskId::new(name).expect("valid")
}

fn spec(name: &str, resources: &str) -> TaskSpec {
    TaskSpec {
        task: task(name),
        executor: crate::ids::ExecutorId::new(name).expect("valid"),
        resources: Resources::parse(resources).expect("valid"),
        command: TaskCommand::new("true").expect("valid"),
    }
}

fn config() -> SchedulerConfig {
    let info = FrameworkInfo {
        name: Name::new("web").expect("valid"),
        role: Role::new("web").expect("valid"),
        principal: Principal::new("web").expect("valid"),
        failover_timeout: Duration::from_secs(60),
    };
    SchedulerConfig::new(
        Address::new("s1").expect("valid"),
        vec![master(1), master(2)],
        info,
    )
    .expect("valid")
}

fn boot(config: &SchedulerConfig, durable: &SchedulerDurable) -> (Scheduler, Commands) {
    let mut out = Outbox::new();
    let scheduler = Scheduler::boot(config, durable, &mut out).expect("boots");
    (scheduler, out.drain().collect())
}

fn deliver(scheduler: &mut Scheduler, from: u8, message: Message) -> Commands {
    let mut out = Outbox::new();
    scheduler.handle_message(&master(from), message, &mut out);
    out.drain().collect()
}

fn subscribed(term: u64) -> Message {
    Message::Subscribed(Subscribed {
        term: Term(term),
        framework: framework(),
    })
}

/// A scheduler subscribed with m1 in term 2, with `tasks` queued.
fn subscribed_scheduler(tasks: Vec<TaskSpec>) -> Scheduler {
    let (mut scheduler, _) = boot(&config().with_tasks(tasks), &SchedulerDurable::default());
    deliver(&mut scheduler, 1, subscribed(2));
    scheduler
}

fn offer(sequence: u64, resources: &str) -> Message {
    Message::Offers(Box::new(Offers {
        term: Term(2),
        framework: framework(),
        offers: BoundedVec::from_vec(vec![OfferInfo {
            offer: OfferId(AssignedId {
                term: Term(2),
                sequence,
            }),
            agent: agent(),
            resources: Resources::parse(resources).expect("valid"),
        }])
        .expect("one offer"),
    }))
}

fn status(term: u64, name: &str, state: TaskState, source: StatusSource) -> Message {
    Message::TaskStatus(Box::new(TaskStatus {
        term: Term(term),
        framework: framework(),
        task: task(name),
        agent: Some(agent()),
        state,
        reason: None,
        source,
    }))
}

/// The agent's update number `update` of task `name`, relayed by the leader of term 2.
fn agent_update(name: &str, state: TaskState, update: u64) -> Message {
    status(2, name, state, StatusSource::Agent(UpdateId(update)))
}

fn actions(commands: &Commands) -> Vec<SchedulerAction> {
    commands
        .iter()
        .filter_map(|command| match command {
            Command::Act(action) => Some(action.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_new_scheduler_subscribes_and_persists_its_id_before_using_it() {
    let (mut scheduler, commands) = boot(&config(), &SchedulerDurable::default());
    assert!(matches!(
        sent(&commands)[..],
        [(ref to, Message::Subscribe(ref subscribe))] if *to == master(1) && subscribe.framework.is_none()
    ));
    let commands = deliver(&mut scheduler, 1, subscribed(2));
    assert_eq!(
        persisted(&commands),
        [
            SchedulerRecord::TermSeen(Term(2)),
            SchedulerRecord::Subscribed(framework())
        ]
    );
    assert_eq!(scheduler.framework(), Some(framework()));
    // Restarted from its checkpoint, it fails over to its framework, asking every master.
    let (_, commands) = boot(&config(), scheduler.durable());
    assert_eq!(
        subscriptions(&commands),
        [
            (master(1), Some(framework())),
            (master(2), Some(framework()))
        ]
    );
}

#[test]
fn a_launch_is_persisted_before_the_accept_and_unused_offers_are_declined() {
    let mut scheduler = subscribed_scheduler(vec![spec("t1", "cpus:1")]);
    let commands = deliver(&mut scheduler, 1, offer(0, "cpus:4"));
    let persist = commands
        .iter()
        .position(|command| matches!(command, Command::Persist(SchedulerRecord::Launched { .. })))
        .expect("the launch is persisted");
    let accept = commands
        .iter()
        .position(|command| {
            matches!(
                command,
                Command::Send {
                    message: Message::Accept(_),
                    ..
                }
            )
        })
        .expect("the offer is accepted");
    assert!(persist < accept, "R5: persisted before it leaves");
    let Message::Accept(ref accepted) = sent(&commands)[0].1 else {
        panic!("an accept");
    };
    assert!(accepted.suppress, "nothing left to launch");
    // The next offer is declined; the task is not launched twice.
    let commands = deliver(&mut scheduler, 1, offer(1, "cpus:4"));
    assert!(matches!(sent(&commands)[..], [(_, Message::Decline(_))]));
    // A restarted scheduler given the same task does not launch it again.
    let (mut restarted, _) = boot(
        &config().with_tasks(vec![spec("t1", "cpus:1")]),
        scheduler.durable(),
    );
    deliver(&mut restarted, 1, subscribed(2));
    let commands = deliver(&mut restarted, 1, offer(2, "cpus:4"));
    assert!(matches!(sent(&commands)[..], [(_, Message::Decline(_))]));
}

#[test]
fn a_task_that_does_not_fit_waits_for_a_larger_offer() {
    let mut scheduler = subscribed_scheduler(vec![spec("t1", "cpus:2")]);
    let commands = deliver(&mut scheduler, 1, offer(0, "cpus:1"));
    assert!(matches!(sent(&commands)[..], [(_, Message::Decline(ref d))] if !d.suppress));
    assert_eq!(scheduler.queue().count(), 1);
}

#[test]
fn every_status_is_acknowledged_but_each_state_is_passed_on_once() {
    let mut scheduler = subscribed_scheduler(vec![spec("t1", "cpus:1")]);
    deliver(&mut scheduler, 1, offer(0, "cpus:1"));
    let running = agent_update("t1", TaskState::Running, 3);
    let commands = deliver(&mut scheduler, 1, running.clone());
    assert!(matches!(
        sent(&commands)[..],
        [(_, Message::Acknowledge(_))]
    ));
    assert_eq!(actions(&commands).len(), 1);
    // Its acknowledgement was lost: the resend is acknowledged again, not passed on.
    let commands = deliver(&mut scheduler, 1, running);
    assert!(matches!(
        sent(&commands)[..],
        [(_, Message::Acknowledge(_))]
    ));
    assert!(actions(&commands).is_empty());
    // An older update arriving late is not passed on either (A2).
    let commands = deliver(
        &mut scheduler,
        1,
        agent_update("t1", TaskState::Starting, 2),
    );
    assert!(actions(&commands).is_empty());
    // Nothing after a terminal state.
    deliver(
        &mut scheduler,
        1,
        agent_update("t1", TaskState::Finished, 4),
    );
    let commands = deliver(
        &mut scheduler,
        1,
        status(2, "t1", TaskState::Unreachable, StatusSource::Master),
    );
    assert!(actions(&commands).is_empty());
}

/// Regression (found by the network-namespace nemesis): a reconciliation answer told RUNNING,
/// then the agent resent its oldest unacknowledged update, STARTING, which had no earlier
/// agent update to compare with and was passed on: the application saw RUNNING, STARTING,
/// RUNNING (A2).
#[test]
fn an_older_update_after_a_reconciled_state_is_acknowledged_but_not_passed_on() {
    let mut scheduler = subscribed_scheduler(vec![spec("t1", "cpus:1")]);
    deliver(&mut scheduler, 1, offer(0, "cpus:1"));
    let commands = deliver(
        &mut scheduler,
        1,
        status(2, "t1", TaskState::Running, StatusSource::Reconciliation),
    );
    assert_eq!(actions(&commands).len(), 1, "RUNNING is passed on");
    let commands = deliver(
        &mut scheduler,
        1,
        agent_update("t1", TaskState::Starting, 0),
    );
    assert!(
        matches!(sent(&commands)[..], [(_, Message::Acknowledge(_))]),
        "acknowledged, so the agent sends its next update"
    );
    assert!(actions(&commands).is_empty(), "not passed on: it is older");
    let commands = deliver(
        &mut scheduler,
        1,
        agent_update("t1", TaskState::Finished, 2),
    );
    assert_eq!(actions(&commands).len(), 1, "the end is passed on");
}

/// Found by the strict nemesis (seed 1796532659286894989): the framework heard STARTING
/// from the agent, then a reconciliation answer STAGING from a leader whose view of the task
/// was behind, and passed it on: the application saw STARTING, STAGING, STARTING (A2). An
/// answer older than the state known is not news, whatever its source.
#[test]
fn a_reconciliation_answer_older_than_the_known_state_is_not_passed_on() {
    let mut scheduler = subscribed_scheduler(vec![spec("t1", "cpus:1")]);
    deliver(&mut scheduler, 1, offer(0, "cpus:1"));
    let commands = deliver(
        &mut scheduler,
        1,
        agent_update("t1", TaskState::Starting, 0),
    );
    assert_eq!(actions(&commands).len(), 1, "STARTING is passed on");
    let commands = deliver(
        &mut scheduler,
        1,
        status(2, "t1", TaskState::Staging, StatusSource::Reconciliation),
    );
    assert!(actions(&commands).is_empty(), "not passed on: it is older");
    assert!(
        sent(&commands).is_empty(),
        "a reconciliation answer needs no acknowledgement"
    );
    let commands = deliver(
        &mut scheduler,
        1,
        status(2, "t1", TaskState::Running, StatusSource::Reconciliation),
    );
    assert_eq!(actions(&commands).len(), 1, "a newer answer is passed on");
}

/// A new state is on the scheduler's disk before its acknowledgement leaves: once the agent
/// hears it, it moves on to the next update, so a crash in between would lose the state (A2).
#[test]
fn a_new_state_is_persisted_before_it_is_acknowledged() {
    let mut scheduler = subscribed_scheduler(vec![spec("t1", "cpus:1")]);
    deliver(&mut scheduler, 1, offer(0, "cpus:1"));
    let commands = deliver(&mut scheduler, 1, agent_update("t1", TaskState::Running, 0));
    let persisted = commands
        .iter()
        .position(|command| {
            matches!(
                command,
                Command::Persist(SchedulerRecord::State {
                    state: TaskState::Running,
                    ..
                })
            )
        })
        .expect("the state is persisted");
    let acknowledged = commands
        .iter()
        .position(|command| {
            matches!(
                command,
                Command::Send {
                    message: Message::Acknowledge(_),
                    ..
                }
            )
        })
        .expect("the status is acknowledged");
    assert!(persisted < acknowledged);
}

#[test]
fn statuses_of_a_lower_term_are_ignored() {
    let mut scheduler = subscribed_scheduler(vec![spec("t1", "cpus:1")]);
    deliver(&mut scheduler, 1, offer(0, "cpus:1"));
    let commands = deliver(
        &mut scheduler,
        1,
        status(1, "t1", TaskState::Failed, StatusSource::Agent(UpdateId(0))),
    );
    assert!(sent(&commands).is_empty(), "E3: not even acknowledged");
    assert!(actions(&commands).is_empty());
}

#[test]
fn after_subscribing_the_scheduler_reconciles_until_every_task_is_answered() {
    let mut scheduler = subscribed_scheduler(vec![spec("t1", "cpus:1")]);
    deliver(&mut scheduler, 1, offer(0, "cpus:1"));
    // The leader fails over: the scheduler hears a ping of term 3 from m2 and subscribes.
    let commands = deliver(
        &mut scheduler,
        2,
        Message::Ping(Ping {
            term: Term(3),
            sequence: 1,
        }),
    );
    assert!(matches!(sent(&commands)[..], [(_, Message::Subscribe(_))]));
    let commands = deliver(&mut scheduler, 2, subscribed(3));
    let reconcile = sent(&commands)
        .into_iter()
        .find_map(|(_, message)| match message {
            Message::Reconcile(reconcile) => Some(reconcile),
            _ => None,
        })
        .expect("reconciles");
    assert_eq!(reconcile.tasks.as_slice(), [(task("t1"), Some(agent()))]);
    // No answer yet: asked again when the timer fires.
    let mut out = Outbox::new();
    scheduler.handle_timer(SchedulerTimer::Reconcile, &mut out);
    assert!(matches!(
        sent(out.commands())[..],
        [(_, Message::Reconcile(_))]
    ));
    // UNREACHABLE: not acknowledged (a reconciliation answer needs none), and asked again,
    // since the leader can say more once the agent is back.
    let commands = deliver(
        &mut scheduler,
        2,
        status(
            3,
            "t1",
            TaskState::Unreachable,
            StatusSource::Reconciliation,
        ),
    );
    assert!(sent(&commands).is_empty());
    let mut out = Outbox::new();
    scheduler.handle_timer(SchedulerTimer::Reconcile, &mut out);
    assert!(matches!(
        sent(out.commands())[..],
        [(_, Message::Reconcile(_))]
    ));
    // Answered for good (the agent came back without the task): not asked again.
    let commands = deliver(
        &mut scheduler,
        2,
        status(3, "t1", TaskState::Dropped, StatusSource::Reconciliation),
    );
    assert!(sent(&commands).is_empty());
    let mut out = Outbox::new();
    scheduler.handle_timer(SchedulerTimer::Reconcile, &mut out);
    assert!(sent(out.commands()).is_empty());
}

#[test]
fn a_replaced_scheduler_stops() {
    let mut scheduler = subscribed_scheduler(vec![]);
    let commands = deliver(
        &mut scheduler,
        1,
        Message::FrameworkReplaced(Subscribed {
            term: Term(2),
            framework: framework(),
        }),
    );
    assert_eq!(actions(&commands), [SchedulerAction::Replaced]);
    assert_eq!(scheduler.phase(), &SchedulerPhase::Replaced);
    assert!(deliver(&mut scheduler, 1, offer(0, "cpus:1")).is_empty());
}

#[test]
fn work_queued_while_subscribing_revives_offers_once_subscribed() {
    let (mut scheduler, commands) = boot(&config(), &SchedulerDurable::default());
    assert!(matches!(
        sent(&commands)[..],
        [(_, Message::Subscribe(ref subscribe))] if subscribe.suppressed
    ));
    let mut out = Outbox::new();
    scheduler.handle_event(SchedulerEvent::Launch(spec("t1", "cpus:1")), &mut out);
    assert!(sent(out.commands()).is_empty(), "not subscribed yet");
    let commands = deliver(&mut scheduler, 1, subscribed(2));
    assert!(
        sent(&commands)
            .iter()
            .any(|(_, message)| *message == Message::Revive(framework())),
        "the suppressed subscription is lifted"
    );
}

#[test]
fn an_offer_that_fits_more_than_an_accept_carries_takes_what_one_accept_can() {
    let tasks: Vec<TaskSpec> = (0..300)
        .map(|index| spec(&alloc::format!("t{index}"), "cpus:0.001"))
        .collect();
    let mut scheduler = subscribed_scheduler(tasks);
    let commands = deliver(&mut scheduler, 1, offer(0, "cpus:1"));
    let Message::Accept(ref accept) = sent(&commands)[0].1 else {
        panic!("an accept");
    };
    assert_eq!(accept.operations.len(), crate::message::OPERATIONS_MAX);
    assert_eq!(
        scheduler.queue().count(),
        300 - crate::message::OPERATIONS_MAX
    );
}

fn fire(scheduler: &mut Scheduler, timer: SchedulerTimer) -> Commands {
    let mut out = Outbox::new();
    scheduler.handle_timer(timer, &mut out);
    out.drain().collect()
}

fn event(scheduler: &mut Scheduler, event: SchedulerEvent) -> Commands {
    let mut out = Outbox::new();
    scheduler.handle_event(event, &mut out);
    out.drain().collect()
}

/// The masters a step sent a subscription to, and the framework id each carried.
fn subscriptions(commands: &Commands) -> Vec<(Address, Option<FrameworkId>)> {
    sent(commands)
        .into_iter()
        .filter_map(|(to, message)| match message {
            Message::Subscribe(subscribe) => Some((to, subscribe.framework)),
            _ => None,
        })
        .collect()
}

fn notes(commands: &Commands) -> Vec<Note> {
    commands
        .iter()
        .filter_map(|command| match command {
            Command::Note(note) => Some(note.clone()),
            _ => None,
        })
        .collect()
}

/// A scheduler of a known framework, subscribed with m1 in term 2, that lost m1 and asked
/// every master to subscribe it again.
fn resubscribing_scheduler() -> Scheduler {
    let mut scheduler = subscribed_scheduler(vec![spec("t1", "cpus:1")]);
    deliver(&mut scheduler, 1, offer(0, "cpus:1"));
    event(&mut scheduler, SchedulerEvent::ConnectionLost(master(1)));
    scheduler
}

#[test]
fn a_first_registration_asks_one_master_at_a_time() {
    let (mut scheduler, commands) = boot(&config(), &SchedulerDurable::default());
    assert_eq!(subscriptions(&commands), [(master(1), None)]);
    // m1 does not answer: the retry asks m2, and only m2 (no two registrations at once).
    let commands = fire(&mut scheduler, SchedulerTimer::Subscription);
    assert_eq!(subscriptions(&commands), [(master(2), None)]);
    let commands = fire(&mut scheduler, SchedulerTimer::Subscription);
    assert_eq!(subscriptions(&commands), [(master(1), None)]);
}

#[test]
fn a_lost_connection_to_the_leader_asks_every_master_at_once() {
    let mut scheduler = subscribed_scheduler(vec![]);
    let commands = event(&mut scheduler, SchedulerEvent::ConnectionLost(master(1)));
    assert_eq!(
        notes(&commands),
        [Note::LeaderConnectionLost { leader: master(1) }]
    );
    assert_eq!(
        subscriptions(&commands),
        [
            (master(1), Some(framework())),
            (master(2), Some(framework()))
        ]
    );
    assert!(commands.contains(&Command::CancelTimer(SchedulerTimer::LeaderSilence)));
    assert!(commands.iter().any(|command| matches!(
        command,
        Command::SetTimer {
            timer: SchedulerTimer::Subscription,
            ..
        }
    )));
    assert_eq!(
        scheduler.phase(),
        &SchedulerPhase::Subscribing { next_master: 0 }
    );
    // No answer: the retry asks every master again.
    let commands = fire(&mut scheduler, SchedulerTimer::Subscription);
    assert_eq!(
        subscriptions(&commands),
        [
            (master(1), Some(framework())),
            (master(2), Some(framework()))
        ]
    );
}

#[test]
fn a_lost_connection_to_another_master_changes_nothing() {
    let mut scheduler = subscribed_scheduler(vec![]);
    assert!(event(&mut scheduler, SchedulerEvent::ConnectionLost(master(2))).is_empty());
    assert!(matches!(
        scheduler.phase(),
        SchedulerPhase::Subscribed { leader, .. } if *leader == master(1)
    ));
    // Nor does one while subscribing: the retry is already armed.
    event(&mut scheduler, SchedulerEvent::ConnectionLost(master(1)));
    assert!(event(&mut scheduler, SchedulerEvent::ConnectionLost(master(1))).is_empty());
}

#[test]
fn a_silent_leader_also_makes_it_ask_every_master() {
    let mut scheduler = subscribed_scheduler(vec![]);
    let commands = fire(&mut scheduler, SchedulerTimer::LeaderSilence);
    assert_eq!(notes(&commands), [Note::LeaderSilent { leader: master(1) }]);
    assert_eq!(
        subscriptions(&commands),
        [
            (master(1), Some(framework())),
            (master(2), Some(framework()))
        ]
    );
}

#[test]
fn a_follower_hint_is_followed_at_once() {
    let mut scheduler = resubscribing_scheduler();
    let commands = deliver(
        &mut scheduler,
        1,
        Message::LeaderHint(LeaderHint {
            term: Term(3),
            leader: Some(master(2)),
        }),
    );
    assert_eq!(subscriptions(&commands), [(master(2), Some(framework()))]);
}

#[test]
fn re_subscription_takes_the_first_answer_and_ignores_duplicates_and_stale_ones() {
    let mut scheduler = resubscribing_scheduler();
    let commands = deliver(&mut scheduler, 2, subscribed(3));
    assert_eq!(
        actions(&commands),
        [SchedulerAction::Subscribed(framework())]
    );
    assert_eq!(persisted(&commands), [SchedulerRecord::TermSeen(Term(3))]);
    assert!(
        sent(&commands)
            .iter()
            .any(|(to, message)| *to == master(2) && matches!(message, Message::Reconcile(_)))
    );
    // The same leader answers again (it was asked directly and after a follower's hint):
    // a duplicate, which neither subscribes again nor reconciles again.
    assert!(deliver(&mut scheduler, 2, subscribed(3)).is_empty());
    // The deposed leader answers late: fenced off (E3), with only a note.
    let commands = deliver(&mut scheduler, 1, subscribed(2));
    assert!(matches!(notes(&commands)[..], [Note::StaleTerm { .. }]));
    assert_eq!(notes(&commands).len(), commands.len());
    assert_eq!(
        scheduler.phase(),
        &SchedulerPhase::Subscribed {
            leader: master(2),
            term: Term(3)
        }
    );
    assert_eq!(scheduler.framework(), Some(framework()));
}

#[test]
fn a_newer_leader_answering_after_a_deposed_one_wins() {
    let mut scheduler = resubscribing_scheduler();
    // m1 has not heard of its successor and answers first, in its own term.
    let commands = deliver(&mut scheduler, 1, subscribed(2));
    assert_eq!(
        actions(&commands),
        [SchedulerAction::Subscribed(framework())]
    );
    // The successor's answer, of a higher term, moves the scheduler to it.
    let commands = deliver(&mut scheduler, 2, subscribed(3));
    assert_eq!(persisted(&commands), [SchedulerRecord::TermSeen(Term(3))]);
    assert_eq!(
        actions(&commands),
        [SchedulerAction::Subscribed(framework())]
    );
    assert_eq!(
        scheduler.phase(),
        &SchedulerPhase::Subscribed {
            leader: master(2),
            term: Term(3)
        }
    );
    assert!(
        sent(&commands)
            .iter()
            .all(|(to, message)| *to == master(2) && matches!(message, Message::Reconcile(_))),
        "reconciles with the new leader"
    );
    // The deposed leader's offers are fenced off: not even declined.
    assert!(sent(&deliver(&mut scheduler, 1, offer(1, "cpus:1"))).is_empty());
}

#[test]
fn a_second_registration_answer_does_not_make_a_second_framework() {
    let (mut scheduler, _) = boot(&config(), &SchedulerDurable::default());
    deliver(&mut scheduler, 1, subscribed(2));
    // Another master registered this scheduler too, under another id, in a later term.
    let other = FrameworkId(AssignedId {
        term: Term(3),
        sequence: 0,
    });
    let commands = deliver(
        &mut scheduler,
        2,
        Message::Subscribed(Subscribed {
            term: Term(3),
            framework: other,
        }),
    );
    assert!(actions(&commands).is_empty());
    assert_eq!(persisted(&commands), [SchedulerRecord::TermSeen(Term(3))]);
    assert_eq!(scheduler.framework(), Some(framework()));
    assert_eq!(scheduler.durable().framework, Some(framework()));
    // And the next round of subscriptions carries the first id.
    let commands = fire(&mut scheduler, SchedulerTimer::LeaderSilence);
    assert!(
        subscriptions(&commands)
            .iter()
            .all(|(_, framework_id)| *framework_id == Some(framework()))
    );
}

/// A checkpoint of a subscribed framework that launched `count` tasks, each in `state`.
fn durable_with_tasks(count: usize, state: TaskState) -> SchedulerDurable {
    let mut durable = SchedulerDurable {
        framework: Some(framework()),
        highest_term: Term(2),
        ..SchedulerDurable::default()
    };
    for index in 0..count {
        durable.tasks.insert(
            task(&alloc::format!("old-{index}")),
            LaunchedTask {
                agent: agent(),
                state,
            },
        );
    }
    durable
}

/// A scheduler restarted from a checkpoint of `SCHEDULER_TASKS_MAX` tasks in `state`, given
/// one more task and then an offer it fits in: its checkpoint, the scheduler, and what the
/// offer made it do.
fn full_scheduler_offered_one_more(state: TaskState) -> (SchedulerDurable, Scheduler, Commands) {
    let full = durable_with_tasks(SCHEDULER_TASKS_MAX, state);
    let (mut scheduler, _) = boot(&config(), &full);
    deliver(&mut scheduler, 1, subscribed(2));
    event(
        &mut scheduler,
        SchedulerEvent::Launch(spec("next", "cpus:1")),
    );
    let commands = deliver(&mut scheduler, 1, offer(0, "cpus:4"));
    (full, scheduler, commands)
}

fn launched(commands: &Commands) -> Vec<TaskId> {
    persisted(commands)
        .into_iter()
        .filter_map(|record| match record {
            SchedulerRecord::Launched { task, .. } => Some(task),
            _ => None,
        })
        .collect()
}

/// Only live tasks count against the limit over a scheduler's life: one whose launched tasks
/// all ended launches more, forgetting the ended ones (in its checkpoint too, as recovery
/// folds the same records).
#[test]
fn a_scheduler_full_of_ended_tasks_forgets_them_to_launch_more() {
    let (full, scheduler, commands) = full_scheduler_offered_one_more(TaskState::Finished);
    assert_eq!(launched(&commands), [task("next")]);
    assert!(matches!(sent(&commands)[..], [(_, Message::Accept(_))]));
    let tasks: Vec<&TaskId> = scheduler.durable().tasks.keys().collect();
    assert_eq!(tasks, [&task("next")], "the ended tasks are forgotten");
    let mut recovered = full;
    for record in persisted(&commands) {
        Scheduler::apply(&mut recovered, &record);
    }
    assert_eq!(&recovered, scheduler.durable());
}

/// Live tasks still bound it: a scheduler with as many running tasks as it may hold queues
/// nothing more.
#[test]
fn a_scheduler_full_of_live_tasks_takes_no_more() {
    let (_, scheduler, commands) = full_scheduler_offered_one_more(TaskState::Running);
    assert!(launched(&commands).is_empty());
    assert_eq!(scheduler.durable().tasks.len(), SCHEDULER_TASKS_MAX);
}

/// The offers of one message that nothing fits in are declined in one message, however many
/// there are; those used are accepted one by one.
#[test]
fn the_offers_of_one_message_nothing_fits_in_are_declined_together() {
    let mut scheduler = subscribed_scheduler(vec![spec("t1", "cpus:2")]);
    let offer_of = |sequence: u64, resources: &str| OfferInfo {
        offer: OfferId(AssignedId {
            term: Term(2),
            sequence,
        }),
        agent: agent(),
        resources: Resources::parse(resources).expect("valid"),
    };
    let offers = Message::Offers(Box::new(Offers {
        term: Term(2),
        framework: framework(),
        offers: BoundedVec::from_vec(vec![
            offer_of(0, "cpus:1"),
            offer_of(1, "cpus:4"),
            offer_of(2, "cpus:1"),
        ])
        .expect("three offers"),
    }));
    let commands = deliver(&mut scheduler, 1, offers);
    let sent = sent(&commands);
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(matches!(&sent[0].1, Message::Accept(accept)
        if accept.offers.as_slice() == [offer_of(1, "").offer]));
    assert!(matches!(&sent[1].1, Message::Decline(decline)
        if decline.offers.as_slice() == [offer_of(0, "").offer, offer_of(2, "").offer]
            && decline.suppress));
}
