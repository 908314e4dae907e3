//! The adapter on a tiny two-role model: a pinger that must never reuse a probe number, even
//! across a crash, and an echo that answers probes. Shows persist → saved storage → recovery,
//! roles with different timers and storage in one model, pinned state counts, and a
//! deliberately broken variant that the checker catches.

use std::convert::Infallible;
use std::time::Duration;

use berth_model::{Directory, Either, MachineActor, Roles};
use berth_protocol::ids::Term;
use berth_protocol::message::{Message, Ping, Pong};
use berth_protocol::{Address, DurationRange, Machine, Outbox};
use stateright::actor::{ActorModel, LossyNetwork, Network};
use stateright::{Checker, Expectation, Model};

#[derive(Clone, Debug)]
struct PingerConfig {
    peer: Address,
    probes_max: u64,
    /// The seeded bug: send probes without persisting their numbers first.
    persist_before_send: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Pinger {
    peer: Address,
    probes_max: u64,
    persist_before_send: bool,
    next: u64,
    pongs: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Probe;

impl Machine for Pinger {
    type Config = PingerConfig;
    type Timer = Probe;
    type Record = u64;
    type Durable = u64;
    type Event = Infallible;
    type Action = Infallible;
    type BootError = Infallible;

    fn boot(config: &PingerConfig, next: &u64, out: &mut Outbox<Self>) -> Result<Self, Infallible> {
        if *next < config.probes_max {
            out.set_timer(Probe, DurationRange::fixed(Duration::from_secs(1)));
        }
        Ok(Pinger {
            peer: config.peer.clone(),
            probes_max: config.probes_max,
            persist_before_send: config.persist_before_send,
            next: *next,
            pongs: 0,
        })
    }

    fn apply(next: &mut u64, used: &u64) {
        *next = used + 1;
    }

    fn handle_message(&mut self, _from: &Address, message: Message, _out: &mut Outbox<Self>) {
        if let Message::Pong(_) = message {
            self.pongs += 1;
        }
    }

    fn handle_timer(&mut self, Probe: Probe, out: &mut Outbox<Self>) {
        let sequence = self.next;
        self.next += 1;
        if self.persist_before_send {
            out.persist(sequence);
        }
        out.send(
            self.peer.clone(),
            Message::Ping(Ping {
                term: Term(1),
                sequence,
            }),
        );
        if self.next < self.probes_max {
            out.set_timer(Probe, DurationRange::fixed(Duration::from_secs(1)));
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Echo;

impl Machine for Echo {
    type Config = ();
    type Timer = Infallible;
    type Record = Infallible;
    type Durable = ();
    type Event = Infallible;
    type Action = Infallible;
    type BootError = Infallible;

    fn boot((): &(), (): &(), _out: &mut Outbox<Self>) -> Result<Self, Infallible> {
        Ok(Echo)
    }

    fn apply((): &mut (), record: &Infallible) {
        match *record {}
    }

    fn handle_message(&mut self, from: &Address, message: Message, out: &mut Outbox<Self>) {
        if let Message::Ping(ping) = message {
            out.send(
                from.clone(),
                Message::Pong(Pong {
                    term: ping.term,
                    sequence: ping.sequence,
                }),
            );
        }
    }

    fn handle_timer(&mut self, timer: Infallible, _out: &mut Outbox<Self>) {
        match timer {}
    }
}

type PingModel = ActorModel<Roles<MachineActor<Pinger>, MachineActor<Echo>>, (), Vec<u64>>;

fn model(persist_before_send: bool) -> PingModel {
    let pinger = Address::new("pinger").expect("valid");
    let echo = Address::new("echo").expect("valid");
    let directory = Directory::new(vec![pinger, echo.clone()]);
    let config = PingerConfig {
        peer: echo,
        probes_max: 3,
        persist_before_send,
    };
    ActorModel::new((), Vec::new())
        .actor(Roles::Left(MachineActor::<Pinger>::new(config, directory.clone())))
        .actor(Roles::Right(MachineActor::<Echo>::new((), directory)))
        .init_network(Network::new_unordered_nonduplicating([]))
        .lossy_network(LossyNetwork::Yes)
        .max_crashes(1)
        .record_msg_out(|_, sent, envelope| match envelope.msg {
            Message::Ping(ping) => {
                let mut sent = sent.clone();
                sent.push(ping.sequence);
                Some(sent)
            }
            _ => None,
        })
        .property(Expectation::Always, "no probe number is sent twice", |_, state| {
            let sent = &state.history;
            sent.iter().enumerate().all(|(index, sequence)| !sent[..index].contains(sequence))
        })
        .property(Expectation::Sometimes, "a pong reaches the pinger", |_, state| {
            matches!(state.actor_states[0].as_ref(), Either::Left(pinger) if pinger.machine.pongs > 0)
        })
        .property(Expectation::Sometimes, "the pinger recovers its durable state", |_, state| {
            // After a crash the machine restarts from its saved storage, not from zero.
            matches!(state.actor_states[0].as_ref(),
                Either::Left(pinger) if pinger.machine.pongs == 0 && pinger.machine.next == 3)
                && state.history.len() == 3
        })
}

#[test]
fn the_correct_pinger_never_reuses_a_probe_number() {
    let checker = model(true).checker().spawn_bfs().join();
    checker.assert_properties();
    // Pinned: a change to the adapter or the network semantics shows up here.
    assert_eq!(checker.unique_state_count(), 222);
}

#[test]
fn the_checker_catches_a_probe_sent_before_its_number_is_persisted() {
    let checker = model(false).checker().spawn_bfs().join();
    let path = checker.assert_any_discovery("no probe number is sent twice");
    let actions = format!("{:?}", path.into_actions());
    assert!(
        actions.contains("Crash"),
        "the bug needs a crash to show: {actions}"
    );
}
