//! The election model: masters electing leaders and replicating the registry through crashes
//! and a lossy, duplicating, reordering network.
//!
//! The masters run the real [`Master`] code. An operator actor sends `entries` role-weight
//! requests to every master, so that logs hold entries of their own besides each leader's
//! no-op. Bounds keep the space finite: terms up to `terms_max`, and the log no longer than
//! the terms' no-ops plus the requests.
//!
//! Properties (DESIGN.md's names):
//!
//! * **E1** at most one leader per term — over the live states, and over the history of every
//!   leadership ever announced (a leader announces itself with `AppendEntries`), so a leader
//!   that crashed still counts;
//! * **E2** log matching (two logs that agree on an entry's term agree on everything up to
//!   it), leader completeness (every entry a master knows committed is in the log of every
//!   leader of its term or later), and committed entries never change (a history of every
//!   entry ever sent as committed);
//! * liveness, as `sometimes`: a leader is elected; a request's entry is committed; a leader
//!   is elected after an earlier leader crashed.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::time::Duration;

use berth_protocol::allocator::Weight;
use berth_protocol::ids::{MasterId, Role, Term};
use berth_protocol::master::Mutation;
use berth_protocol::master::{Master, MasterConfig, MasterDurable};
use berth_protocol::message::{ElectionMessage, LogEntry, Message, SetRoleWeight};
use berth_protocol::registry::{LogIndex, RegistryEntry};
use berth_protocol::{Address, Machine, Outbox};
use stateright::Expectation;
use stateright::actor::{ActorModel, ActorModelState, LossyNetwork, Network};

use crate::{Directory, Either, MachineActor, MachineState, Roles, Shared, SharedActor};

/// The bounds and faults of an election model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ElectionConfig {
    /// Masters in the cluster (1, 3 or 5).
    pub masters: u8,
    /// Masters that may be down at once (each may crash and recover repeatedly).
    pub crashes: usize,
    /// The highest term explored.
    pub terms_max: u64,
    /// Role-weight requests the operator sends.
    pub entries: u8,
    /// Applied entries after which a master compacts its log (small, to exercise snapshots).
    pub snapshot_threshold: u64,
    /// Whether the network loses messages (it always duplicates and reorders). Off by
    /// default: in a duplicating network, a lost message is indistinguishable, to every actor,
    /// from one not yet delivered, and the checker explores every path on which it never is;
    /// so loss reaches no new actor state and only multiplies network states. A test checks
    /// this on a small configuration.
    pub lossy: bool,
    /// Whether the network may deliver a message more than once.
    pub duplicating: bool,
    /// Whether each link delivers in order (FIFO, at most once), like a TCP connection.
    /// Overrides `duplicating`. Random walks need it: stateright replays a walk's path by
    /// action index, and only the ordered network lists its messages in a replayable order.
    pub ordered: bool,
    /// The most messages in flight at once; states beyond are not explored.
    pub in_flight_max: usize,
    /// Whether masters run the pre-vote phase.
    pub pre_vote: bool,
    /// Whether masters run check-quorum and leader stickiness.
    pub check_quorum: bool,
    /// A deliberately broken rule, to show the properties catch it.
    pub mutation: Option<Mutation>,
}

impl Default for ElectionConfig {
    /// The default checked in the test suite: 3 masters, one crash, terms up to 2, one request.
    fn default() -> Self {
        ElectionConfig {
            masters: 3,
            crashes: 1,
            terms_max: 2,
            entries: 1,
            snapshot_threshold: 2,
            lossy: false,
            duplicating: true,
            ordered: false,
            in_flight_max: usize::MAX,
            pre_vote: true,
            check_quorum: true,
            mutation: None,
        }
    }
}

impl std::fmt::Display for ElectionConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "{} masters, {} crash(es), terms <= {}, {} request(s), snapshot every {} entries, {} network",
            self.masters,
            self.crashes,
            self.terms_max,
            self.entries,
            self.snapshot_threshold,
            match (self.lossy, self.duplicating && !self.ordered) {
                (true, true) => "lossy, duplicating, reordering",
                (false, true) => "duplicating, reordering",
                (true, false) => "lossy, reordering",
                (false, false) => "reordering",
            },
        )?;
        if self.ordered {
            write!(formatter, ", in order on each link")?;
        }
        if self.in_flight_max != usize::MAX {
            write!(
                formatter,
                ", at most {} messages in flight",
                self.in_flight_max
            )?;
        }
        if !self.pre_vote {
            write!(formatter, ", no pre-vote")?;
        }
        if !self.check_quorum {
            write!(formatter, ", no check-quorum")?;
        }
        if let Some(mutation) = self.mutation {
            write!(formatter, "; SEEDED BUG {mutation:?}")?;
        }
        Ok(())
    }
}

/// What the model remembers across crashes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ElectionHistory {
    /// Every (term, master) that announced leadership.
    pub leaders: BTreeSet<(Term, MasterId)>,
    /// Every entry a leader ever sent as committed, by index.
    pub committed: BTreeMap<LogIndex, LogEntry>,
    /// Whether a leader ever sent, as committed, an entry different from an earlier one at
    /// the same index.
    pub committed_changed: bool,
}

/// The operator: sends its requests to every master at boot. It keeps nothing.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Operator;

/// The operator's configuration: the masters and how many requests to make.
#[derive(Clone, Debug)]
pub struct OperatorConfig {
    masters: Vec<Address>,
    requests: u8,
}

impl Machine for Operator {
    type Config = OperatorConfig;
    type Timer = Infallible;
    type Record = Infallible;
    type Durable = ();
    type Event = Infallible;
    type Action = Infallible;
    type BootError = Infallible;

    fn boot(config: &OperatorConfig, (): &(), out: &mut Outbox<Self>) -> Result<Self, Infallible> {
        for request in 0..config.requests {
            let role = Role::new(&format!("role{request}")).expect("valid role");
            let weight: Weight = "2".parse().expect("valid weight");
            for master in &config.masters {
                out.send(
                    master.clone(),
                    Message::SetRoleWeight(SetRoleWeight {
                        request: u64::from(request),
                        role: role.clone(),
                        weight,
                    }),
                );
            }
        }
        Ok(Operator)
    }

    fn apply((): &mut (), record: &Infallible) {
        match *record {}
    }

    fn handle_message(&mut self, _from: &Address, _message: Message, _out: &mut Outbox<Self>) {}

    fn handle_timer(&mut self, timer: Infallible, _out: &mut Outbox<Self>) {
        match timer {}
    }
}

/// The model's actors: masters, then the operator.
pub type ElectionActor = SharedActor<Roles<MachineActor<Master>, MachineActor<Operator>>>;
/// The election model.
pub type ElectionModel = ActorModel<ElectionActor, ElectionConfig, Shared<ElectionHistory>>;
/// One state of the election model.
pub type ElectionState = ActorModelState<ElectionActor, Shared<ElectionHistory>>;

fn master_address(index: u8) -> Address {
    Address::new(&format!("m{index}")).expect("valid address")
}

/// Builds the model for `config`.
pub fn election_model(config: ElectionConfig) -> ElectionModel {
    let masters: Vec<Address> = (1..=config.masters).map(master_address).collect();
    let operator_address = Address::new("operator").expect("valid address");
    let mut addresses = masters.clone();
    addresses.push(operator_address.clone());
    // The operator's answers (leader hints, commit notices) are not modelled.
    let directory = Directory::new(addresses).mute(operator_address);
    let members: BTreeMap<MasterId, Address> = (1..=config.masters)
        .map(|index| (MasterId(index), master_address(index)))
        .collect();
    let mut model = ActorModel::new(config.clone(), Shared::new(ElectionHistory::default()));
    for index in 1..=config.masters {
        let master_config = MasterConfig::new(MasterId(index), members.clone())
            .expect("a valid membership")
            .with_snapshot_threshold(config.snapshot_threshold)
            .with_heartbeat_interval(Duration::from_millis(100))
            .with_pre_vote(config.pre_vote)
            .with_check_quorum(config.check_quorum);
        let master_config = match config.mutation {
            Some(mutation) => master_config.with_mutation(mutation),
            None => master_config,
        };
        model = model.actor(SharedActor(Roles::Left(MachineActor::new(
            master_config,
            directory.clone(),
        ))));
    }
    let operator = OperatorConfig {
        masters,
        requests: config.entries,
    };
    model
        .actor(SharedActor(Roles::Right(MachineActor::new(
            operator, directory,
        ))))
        .init_network(if config.ordered {
            Network::new_ordered([])
        } else if config.duplicating {
            Network::new_unordered_duplicating([])
        } else {
            Network::new_unordered_nonduplicating([])
        })
        .lossy_network(if config.lossy {
            LossyNetwork::Yes
        } else {
            LossyNetwork::No
        })
        .max_crashes(config.crashes)
        .record_msg_out(record_leadership_and_commits)
        .within_boundary(within_bounds)
        .property(
            Expectation::Always,
            "E1 at most one leader per term",
            one_leader_per_term,
        )
        .property(
            Expectation::Always,
            "E1 at most one leader per term, ever",
            one_leader_per_term_ever,
        )
        .property(Expectation::Always, "E2 log matching", log_matching)
        .property(
            Expectation::Always,
            "E2 leader completeness",
            leader_completeness,
        )
        .property(
            Expectation::Always,
            "E2 committed entries never change",
            committed_entries_never_change,
        )
        .property(Expectation::Sometimes, "a leader is elected", |_, state| {
            masters_of(state).any(|(_, master)| master.is_leader())
        })
        .property(
            Expectation::Sometimes,
            "a request is committed",
            |_, state| {
                masters_of(state).any(|(_, master)| {
                    (1..=master.commit_index().0).any(|index| {
                        matches!(
                            master.log().entry_at(LogIndex(index)).map(|e| &e.entry),
                            Some(RegistryEntry::RoleWeightSet { .. })
                        )
                    }) || !master.log().snapshot().registry.role_weights().is_empty()
                })
            },
        )
        .property(
            Expectation::Sometimes,
            "a leader is elected after a leader crashed",
            leader_after_crash,
        )
}

/// The live (not crashed) masters of a state.
pub fn masters_of(state: &ElectionState) -> impl Iterator<Item = (usize, &Master)> {
    state
        .actor_states
        .iter()
        .enumerate()
        .filter(|(index, _)| !state.crashed[*index])
        .filter_map(|(index, actor)| match &***actor {
            Either::Left(MachineState { machine, .. }) => Some((index, machine)),
            Either::Right(_) => None,
        })
}

/// The durable state of every master, crashed or not (what its disk holds).
fn durable_logs(state: &ElectionState) -> impl Iterator<Item = &MasterDurable> {
    state
        .actor_states
        .iter()
        .filter_map(|actor| match &***actor {
            Either::Left(MachineState { durable, .. }) => Some(&**durable),
            Either::Right(_) => None,
        })
}

fn record_leadership_and_commits(
    _: &ElectionConfig,
    history: &Shared<ElectionHistory>,
    envelope: stateright::actor::Envelope<&Shared<Message>>,
) -> Option<Shared<ElectionHistory>> {
    let Message::Election(ElectionMessage::AppendEntries(append)) = &**envelope.msg else {
        return None;
    };
    let leader = MasterId(u8::try_from(usize::from(envelope.src) + 1).expect("few masters"));
    let mut next = (**history).clone();
    next.leaders.insert((append.term, leader));
    for (offset, entry) in append.entries.iter().enumerate() {
        let index = LogIndex(append.previous_index.0 + 1 + offset as u64);
        if index > append.leader_commit {
            break;
        }
        match next.committed.get(&index) {
            Some(known) if known != entry => next.committed_changed = true,
            Some(_) => {}
            None => {
                next.committed.insert(index, entry.clone());
            }
        }
    }
    (next != **history).then(|| Shared::new(next))
}

fn within_bounds(config: &ElectionConfig, state: &ElectionState) -> bool {
    let log_max = config.terms_max + u64::from(config.entries);
    state.network.len() <= config.in_flight_max
        && durable_logs(state).all(|durable| {
            durable.term <= Term(config.terms_max) && durable.log.last_index().0 <= log_max
        })
}

fn one_leader_per_term(_: &ElectionModel, state: &ElectionState) -> bool {
    let mut terms = BTreeSet::new();
    masters_of(state)
        .filter(|(_, master)| master.is_leader())
        .all(|(_, master)| terms.insert(master.term()))
}

fn one_leader_per_term_ever(_: &ElectionModel, state: &ElectionState) -> bool {
    let leaders = &state.history.leaders;
    leaders
        .iter()
        .zip(leaders.iter().skip(1))
        .all(|((term_a, _), (term_b, _))| term_a != term_b)
}

/// The entry at `index` of a durable log, if it still holds it (not compacted).
fn entry_at(durable: &MasterDurable, index: LogIndex) -> Option<&LogEntry> {
    durable.log.entry_at(index)
}

fn log_matching(_: &ElectionModel, state: &ElectionState) -> bool {
    let logs: Vec<&MasterDurable> = durable_logs(state).collect();
    logs.iter().enumerate().all(|(position, a)| {
        logs[position + 1..].iter().all(|b| {
            let last = a.log.last_index().min(b.log.last_index());
            let first = a.log.snapshot().index.max(b.log.snapshot().index).next();
            // Find the highest index where both logs have an entry of the same term: every
            // entry from `first` up to it must be identical.
            let agreed = (first.0..=last.0).rev().map(LogIndex).find(|index| {
                matches!((entry_at(a, *index), entry_at(b, *index)),
                    (Some(x), Some(y)) if x.term == y.term)
            });
            agreed.is_none_or(|agreed| {
                (first.0..=agreed.0)
                    .map(LogIndex)
                    .all(|index| entry_at(a, index) == entry_at(b, index))
            })
        })
    })
}

fn leader_completeness(_: &ElectionModel, state: &ElectionState) -> bool {
    let masters: Vec<&Master> = masters_of(state).map(|(_, master)| master).collect();
    masters.iter().all(|knower| {
        let committed_from = knower.log().snapshot().index.next();
        masters
            .iter()
            .filter(|leader| leader.is_leader() && leader.term() >= knower.term())
            .all(|leader| {
                (committed_from.0..=knower.commit_index().0)
                    .map(LogIndex)
                    .all(|index| {
                        leader.log().snapshot().index >= index
                            || leader.log().entry_at(index) == knower.log().entry_at(index)
                    })
            })
    })
}

fn committed_entries_never_change(_: &ElectionModel, state: &ElectionState) -> bool {
    let masters: Vec<&Master> = masters_of(state).map(|(_, master)| master).collect();
    let committed = |master: &Master| {
        let from = master.log().snapshot().index.next();
        (from.0..=master.commit_index().0).map(LogIndex)
    };
    // Every entry a master holds as committed is the one a leader announced as committed...
    let matches_history = masters.iter().all(|master| {
        committed(master).all(|index| match state.history.committed.get(&index) {
            Some(known) => master.log().entry_at(index) == Some(known),
            None => true,
        })
    });
    // ...and no two masters hold different committed entries at one index (Raft's state
    // machine safety).
    let masters_agree = masters.iter().enumerate().all(|(position, a)| {
        masters[position + 1..].iter().all(|b| {
            committed(a).all(|index| {
                index > b.commit_index()
                    || b.log().snapshot().index >= index
                    || a.log().entry_at(index) == b.log().entry_at(index)
            })
        })
    });
    !state.history.committed_changed && matches_history && masters_agree
}

fn leader_after_crash(_: &ElectionModel, state: &ElectionState) -> bool {
    let crashed_leader_term = state
        .history
        .leaders
        .iter()
        .filter(|(_, leader)| state.crashed[usize::from(leader.0) - 1])
        .map(|(term, _)| *term)
        .min();
    crashed_leader_term.is_some_and(|crashed_term| {
        masters_of(state).any(|(_, master)| master.is_leader() && master.term() > crashed_term)
    })
}
