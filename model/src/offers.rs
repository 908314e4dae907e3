//! The offers model: a leader, two agents and two frameworks in two roles, with a static and a
//! dynamic reservation, a persistent volume, a scheduler that fails over to a standby
//! instance, an agent that can become unreachable, and a leader whose term can change once.
//!
//! Every machine is the real protocol code. Agents run inside an [`AgentHost`] that keeps the
//! host's disk as ghost state ([`HostGhosts`]): each task that mounts a volume reads what is
//! on it and appends its own id, so a lost or rolled-back volume shows as a read that misses
//! an earlier write. The master runs inside a [`WatchedMaster`] that remembers, as ghost
//! state, the duration each framework's failover timer was armed with. The framework `web`
//! has a primary scheduler and a standby ([`SchedulerHost`]); the primary hands the
//! framework id to the standby once subscribed (as a real framework would through its own
//! store), and the standby may take over at any moment.
//!
//! The scenario:
//!
//! | actor | what it is |
//! |-------|------------|
//! | `m1`  | the only master: it leads at once, and a crash gives it a new term with its soft state lost |
//! | `a1`  | `cpus:2;cpus(web):1;disk(web):1`: unreserved cpus and a static reservation for `web` |
//! | `a2`  | `cpus:1` (with `--agents 2`) |
//! | `s1`  | `web`'s scheduler: creates volume `v1` on the reserved disk and runs `t1` on it, then `t2` on the same volume |
//! | `s2`  | `batch`'s scheduler (with `--frameworks 2`): reserves `cpus:1` for `batch` (a dynamic reservation) and runs `t3` on it |
//! | `s1b` | `web`'s standby scheduler (with `--failover`) |
//!
//! Properties (DESIGN.md's names):
//!
//! * **R1** on every agent the leader knows, outstanding offers plus its tasks' resources fit
//!   in the agent's resources, and no resource is in two outstanding offers;
//! * **R2** reserved resources are offered only to, and used only by, their role;
//! * **R3** a volume is offered only to, and mounted only by, its role;
//! * **R4** a volume's data is deleted only by `DestroyVolume`: no task finds it gone or
//!   missing an earlier task's write;
//! * **R5** no task starts twice and no resource operation is applied twice;
//! * **F1** a framework is removed only by its failover timer, armed in full by the leader that
//!   removes it after its scheduler disconnected;
//! * liveness, as `sometimes`: `t1` writes to its volume and ends, the volume is offered back
//!   to `web`, and `t2` reads `t1`'s data; the standby takes over; an agent becomes
//!   unreachable; a framework is removed after its failover timeout.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;

use berth_protocol::agent::{AgentConfig, AgentMutation};
use berth_protocol::bounded::Name;
use berth_protocol::ids::{ExecutorId, FrameworkId, MasterId, Principal, Role, TaskId, Term};
use berth_protocol::master::{Master, MasterConfig, MasterTimer, Mutation};
use berth_protocol::message::{Message, OperationKind, Subscribed, TaskSpec};
use berth_protocol::operation::conversion;
use berth_protocol::registry::{AgentInfo, AgentStatus, FrameworkInfo};
use berth_protocol::resources::{ContainerPath, PersistentVolume, Resources};
use berth_protocol::scheduler::{Scheduler, SchedulerAction, SchedulerConfig, SchedulerPhase};
use berth_protocol::task::TaskCommand;
use berth_protocol::{Address, ids::VolumeId};
use stateright::Expectation;
use stateright::actor::{
    Actor, ActorModel, ActorModelState, Command, Id, LossyNetwork, Network, Out,
};

use crate::agents::{AgentHost, HostState, boot_id};
use crate::{Directory, Either, MachineActor, MachineState, Roles, SharedActor};

/// A deliberately broken protocol, to watch a property catch it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OffersMutation {
    /// A broken master.
    Master(Mutation),
    /// Broken agents.
    Agent(AgentMutation),
}

/// The bounds and faults of an offers model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OffersConfig {
    /// Agents: 1 or 2.
    pub agents: usize,
    /// Frameworks: 1 (`web`) or 2 (`web` and `batch`).
    pub frameworks: usize,
    /// Whether `web` has a standby scheduler that may take over.
    pub failover: bool,
    /// Actors that may be down at once.
    pub crashes: usize,
    /// The highest master term explored (each master crash raises it by one).
    pub terms_max: u64,
    /// Whether the network may lose messages.
    pub lossy: bool,
    /// Whether the network may deliver a message more than once.
    pub duplicating: bool,
    /// The most messages in flight at once.
    pub in_flight_max: usize,
    /// Whether timeouts fire. Without them every message arrives in time: no retries, pings
    /// or offer timeouts, only the world's events (task exits) and decline filters ending.
    /// Every path of such a model is a path of the full one, so it finds liveness examples
    /// and deep seeded bugs with far shorter searches.
    pub timeouts: bool,
    /// A deliberately broken protocol.
    pub mutation: Option<OffersMutation>,
}

impl Default for OffersConfig {
    /// The scenario: 2 agents, 2 frameworks, the standby, one crash at a time, terms
    /// up to 2, and a reordering network that neither loses nor duplicates (the protocol's own
    /// resends of launches and operations still deliver duplicates), at most 6 messages in
    /// flight.
    fn default() -> Self {
        OffersConfig {
            agents: 2,
            frameworks: 2,
            failover: true,
            crashes: 1,
            terms_max: 2,
            lossy: false,
            duplicating: false,
            in_flight_max: 6,
            timeouts: true,
            mutation: None,
        }
    }
}

impl std::fmt::Display for OffersConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "1 master, {} agent(s), {} framework(s){}; crashes at once {}; terms <= {}; \
             network: {}, {}, reordering, <= {} in flight",
            self.agents,
            self.frameworks,
            if self.failover {
                ", a standby scheduler"
            } else {
                ""
            },
            self.crashes,
            self.terms_max,
            if self.lossy { "lossy" } else { "lossless" },
            if self.duplicating {
                "duplicating"
            } else {
                "non-duplicating"
            },
            self.in_flight_max,
        )?;
        if !self.timeouts {
            write!(formatter, "; no timeouts")?;
        }
        if let Some(mutation) = self.mutation {
            write!(formatter, "; SEEDED BUG {mutation:?}")?;
        }
        Ok(())
    }
}

/// Moves one actor's commands into another's (the two share every associated type), leaving
/// out the timers `keep` refuses.
fn relay<A, B>(from: Out<A>, into: &mut Out<B>, keep: impl Fn(&A::Timer) -> bool)
where
    A: Actor,
    B: Actor<Msg = A::Msg, Timer = A::Timer, Storage = A::Storage, Random = A::Random>,
{
    for command in from {
        match command {
            Command::Send(to, message) => into.send(to, message),
            Command::SetTimer(timer, duration) => {
                if keep(&timer) {
                    into.set_timer(timer, duration);
                }
            }
            Command::CancelTimer(timer) => into.cancel_timer(timer),
            Command::Save(saved) => into.save(saved),
            Command::ChooseRandom(key, choices) => into.choose_random(key, choices),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The master, watched for F1.

/// The master and what the model remembers about its failover timers.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WatchedState {
    /// The master.
    pub master: MachineState<Master>,
    /// Each framework failover timer this master incarnation has armed and not cancelled,
    /// with the duration it was armed with, if the framework was disconnected when it was
    /// armed (`None`: armed while the registry held the framework connected).
    pub failover_armed: BTreeMap<FrameworkId, Option<Duration>>,
    /// The first F1 violation seen.
    pub removed_early: Option<String>,
}

/// A master whose failover timers the model watches (F1 is about time, which the checker
/// does not keep: a timer may fire any time after it is set, so a removal is on time if it
/// is the firing of a timer armed with the full failover timeout after the disconnection).
pub struct WatchedMaster {
    inner: MachineActor<Master>,
    timeouts: bool,
}

impl WatchedMaster {
    /// Whether `timer` is set: all are, unless timeouts are off; then only decline filters
    /// end.
    fn keeps(&self, timer: &MasterTimer) -> bool {
        self.timeouts || matches!(timer, MasterTimer::DeclineFilter(..))
    }

    fn watch(
        &self,
        state: &mut Cow<WatchedState>,
        out: &mut Out<Self>,
        fired: Option<FrameworkId>,
        step: impl FnOnce(&mut Cow<MachineState<Master>>, &mut Out<MachineActor<Master>>),
    ) {
        let mut inner_state = Cow::Borrowed(&state.master);
        let mut inner_out = Out::new();
        step(&mut inner_state, &mut inner_out);
        let Cow::Owned(master) = inner_state else {
            relay(inner_out, out, |timer| self.keeps(timer));
            return;
        };
        let mut next = WatchedState {
            master,
            ..state.as_ref().clone()
        };
        let before = state.master.machine.registry().frameworks();
        let after = next.master.machine.registry().frameworks();
        for (framework, record) in before {
            if after.contains_key(framework) {
                continue;
            }
            let armed = state.failover_armed.get(framework).copied().flatten();
            let on_time = fired == Some(*framework)
                && armed.is_some_and(|armed| armed >= record.info.failover_timeout);
            if !on_time {
                next.removed_early.get_or_insert_with(|| {
                    format!(
                        "framework {framework} removed {}",
                        match (fired == Some(*framework), armed) {
                            (false, _) => "outside its failover timer".to_string(),
                            (true, None) => "by a timer armed while it was connected".to_string(),
                            (true, Some(armed)) => format!(
                                "by a timer armed for {armed:?}, not its failover timeout \
                                 of {:?}",
                                record.info.failover_timeout
                            ),
                        }
                    )
                });
            }
        }
        for command in inner_out.iter() {
            match command {
                Command::SetTimer(MasterTimer::FrameworkFailover(framework), duration) => {
                    let disconnected = after
                        .get(framework)
                        .is_some_and(|record| record.disconnected_since.is_some());
                    next.failover_armed
                        .insert(*framework, disconnected.then_some(duration.start));
                }
                Command::CancelTimer(MasterTimer::FrameworkFailover(framework)) => {
                    next.failover_armed.remove(framework);
                }
                _ => {}
            }
        }
        if let Some(framework) = fired {
            next.failover_armed.remove(&framework);
        }
        relay(inner_out, out, |timer| self.keeps(timer));
        *state = Cow::Owned(next);
    }
}

impl Actor for WatchedMaster {
    type Msg = Message;
    type Timer = MasterTimer;
    type State = WatchedState;
    type Storage = <MachineActor<Master> as Actor>::Storage;
    type Random = ();

    fn on_start(
        &self,
        id: Id,
        storage: &Option<Self::Storage>,
        out: &mut Out<Self>,
    ) -> WatchedState {
        let mut inner_out = Out::new();
        let master = self.inner.on_start(id, storage, &mut inner_out);
        let mut failover_armed = BTreeMap::new();
        for command in inner_out.iter() {
            if let Command::SetTimer(MasterTimer::FrameworkFailover(framework), duration) = command
            {
                failover_armed.insert(*framework, Some(duration.start));
            }
        }
        relay(inner_out, out, |timer| self.keeps(timer));
        WatchedState {
            master,
            failover_armed,
            removed_early: None,
        }
    }

    fn on_msg(
        &self,
        id: Id,
        state: &mut Cow<WatchedState>,
        src: Id,
        msg: Message,
        out: &mut Out<Self>,
    ) {
        self.watch(state, out, None, |inner, inner_out| {
            self.inner.on_msg(id, inner, src, msg, inner_out);
        });
    }

    fn on_timeout(
        &self,
        id: Id,
        state: &mut Cow<WatchedState>,
        timer: &MasterTimer,
        out: &mut Out<Self>,
    ) {
        let fired = match timer {
            MasterTimer::FrameworkFailover(framework) => Some(*framework),
            _ => None,
        };
        self.watch(state, out, fired, |inner, inner_out| {
            self.inner.on_timeout(id, inner, timer, inner_out);
        });
    }

    fn name(&self) -> String {
        "Master".to_string()
    }
}

// ---------------------------------------------------------------------------------------------
// Schedulers: a primary, and a standby that takes over.

/// A scheduler process: a primary that runs from the start, or a standby that starts once
/// the primary has handed it the framework's id.
pub struct SchedulerHost {
    inner: MachineActor<Scheduler>,
    config: SchedulerConfig,
    directory: Directory,
    standby: bool,
    timeouts: bool,
}

impl SchedulerHost {
    fn boot(
        &self,
        id: Id,
        config: SchedulerConfig,
        storage: &Option<<Self as Actor>::Storage>,
        out: &mut Out<Self>,
    ) -> MachineState<Scheduler> {
        let mut inner_out = Out::new();
        let state =
            MachineActor::new(config, self.directory.clone()).on_start(id, storage, &mut inner_out);
        relay(inner_out, out, |_| self.timeouts);
        state
    }
}

/// The primary's hand-off: once subscribed, it tells the standby the framework's id.
fn hand_off(action: &SchedulerAction) -> Vec<(Address, Message)> {
    match action {
        SchedulerAction::Subscribed(framework) => vec![(
            address(STANDBY),
            Message::Subscribed(Subscribed {
                term: Term(0),
                framework: *framework,
            }),
        )],
        _ => Vec::new(),
    }
}

impl Actor for SchedulerHost {
    type Msg = Message;
    type Timer = <MachineActor<Scheduler> as Actor>::Timer;
    type State = Option<MachineState<Scheduler>>;
    type Storage = <MachineActor<Scheduler> as Actor>::Storage;
    type Random = ();

    fn on_start(
        &self,
        id: Id,
        storage: &Option<Self::Storage>,
        out: &mut Out<Self>,
    ) -> Self::State {
        match (
            self.standby,
            storage.as_ref().and_then(|durable| durable.framework),
        ) {
            (false, _) => Some(self.boot(id, self.config.clone(), storage, out)),
            (true, Some(framework)) => {
                let config = self.config.clone().with_framework(framework);
                Some(self.boot(id, config, storage, out))
            }
            (true, None) => None,
        }
    }

    fn on_msg(
        &self,
        id: Id,
        state: &mut Cow<Self::State>,
        src: Id,
        msg: Message,
        out: &mut Out<Self>,
    ) {
        let Some(current) = state.as_ref() else {
            // A standby starts when the primary hands it the framework.
            if let Message::Subscribed(handed) = msg
                && self.directory.address(src) == &address(PRIMARY)
            {
                let config = self.config.clone().with_framework(handed.framework);
                *state = Cow::Owned(Some(self.boot(id, config, &None, out)));
            }
            return;
        };
        if self.standby
            || !matches!(msg, Message::Subscribed(_))
            || self.directory.address(src) != &address(STANDBY)
        {
            let mut inner_state = Cow::Borrowed(current);
            let mut inner_out = Out::new();
            self.inner
                .on_msg(id, &mut inner_state, src, msg, &mut inner_out);
            relay(inner_out, out, |_| self.timeouts);
            if let Cow::Owned(next) = inner_state {
                *state = Cow::Owned(Some(next));
            }
        }
    }

    fn on_timeout(
        &self,
        id: Id,
        state: &mut Cow<Self::State>,
        timer: &Self::Timer,
        out: &mut Out<Self>,
    ) {
        let Some(current) = state.as_ref() else {
            return;
        };
        let mut inner_state = Cow::Borrowed(current);
        let mut inner_out = Out::new();
        self.inner
            .on_timeout(id, &mut inner_state, timer, &mut inner_out);
        relay(inner_out, out, |_| self.timeouts);
        if let Cow::Owned(next) = inner_state {
            *state = Cow::Owned(Some(next));
        }
    }

    fn name(&self) -> String {
        if self.standby {
            "Standby".to_string()
        } else {
            "Scheduler".to_string()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The model.

/// The model's actors: the master, the agent hosts, then the schedulers.
pub type OffersActor = SharedActor<Roles<WatchedMaster, Roles<AgentHost, SchedulerHost>>>;
/// The offers model.
pub type OffersModel = ActorModel<OffersActor, OffersConfig, ()>;
/// One state of the offers model.
pub type OffersState = ActorModelState<OffersActor, ()>;

const MASTER: &str = "m1";
const AGENTS: [&str; 2] = ["a1", "a2"];
const PRIMARY: &str = "s1";
const BATCH: &str = "s2";
const STANDBY: &str = "s1b";

fn address(text: &str) -> Address {
    Address::new(text).expect("valid address")
}

fn name<T>(text: &str, new: fn(&str) -> Result<T, berth_protocol::bounded::NameError>) -> T {
    new(text).expect("a valid name")
}

fn resources(text: &str) -> Resources {
    Resources::parse(text).expect("valid resources")
}

/// The role of the framework `web`.
pub fn web() -> Role {
    name("web", Role::new)
}

/// The role of the framework `batch`.
pub fn batch() -> Role {
    name("batch", Role::new)
}

fn info(role: &str) -> FrameworkInfo {
    FrameworkInfo {
        name: name(role, Name::new),
        role: name(role, Role::new),
        principal: name(role, Principal::new),
        failover_timeout: Duration::from_secs(60),
    }
}

fn task(id: &str, resources: Resources) -> TaskSpec {
    TaskSpec {
        task: name(id, TaskId::new),
        executor: name(id, ExecutorId::new),
        resources,
        command: TaskCommand::new("cat data/log; echo written >> data/log").expect("valid"),
    }
}

/// `web`'s plans: create `v1` on its reserved disk and run `t1` on it; then `t2` on the same
/// volume, which fits only once `t1` has ended and the volume is offered again.
fn web_plans() -> Vec<Vec<OperationKind>> {
    let create = OperationKind::CreateVolume {
        source: resources("disk(web):1"),
        volume: PersistentVolume {
            id: name("v1", VolumeId::new),
            container_path: ContainerPath::new("data").expect("valid"),
        },
    };
    let volume = conversion(&create, &web(), &name("web", Principal::new))
        .expect("a volume on reserved disk")
        .produced;
    let on_volume = resources("cpus(web):1")
        .checked_add(&volume)
        .expect("disjoint");
    vec![
        vec![create, OperationKind::Launch(task("t1", on_volume.clone()))],
        vec![OperationKind::Launch(task("t2", on_volume))],
    ]
}

/// `batch`'s plan: reserve a cpu for `batch` and run `t3` on it.
fn batch_plans() -> Vec<Vec<OperationKind>> {
    let reserve = OperationKind::Reserve(resources("cpus:1"));
    let reserved = conversion(&reserve, &batch(), &name("batch", Principal::new))
        .expect("reservable")
        .produced;
    vec![vec![reserve, OperationKind::Launch(task("t3", reserved))]]
}

/// Builds the model for `config`.
///
/// # Panics
/// If `config` has no agent or framework, or more than two of either.
pub fn offers_model(config: OffersConfig) -> OffersModel {
    assert!((1..=2).contains(&config.agents), "1 or 2 agents");
    assert!((1..=2).contains(&config.frameworks), "1 or 2 frameworks");
    let master = address(MASTER);
    let mut addresses = vec![master.clone()];
    addresses.extend(AGENTS[..config.agents].iter().map(|agent| address(agent)));
    addresses.push(address(PRIMARY));
    if config.frameworks == 2 {
        addresses.push(address(BATCH));
    }
    if config.failover {
        addresses.push(address(STANDBY));
    }
    let directory = Directory::new(addresses);

    let members = BTreeMap::from([(MasterId(1), master.clone())]);
    let master_config = MasterConfig::new(MasterId(1), members)
        .expect("a valid membership")
        .with_max_missed_pings(1);
    let master_config = match config.mutation {
        Some(OffersMutation::Master(mutation)) => master_config.with_mutation(mutation),
        _ => master_config,
    };
    let mut model =
        ActorModel::new(config.clone(), ()).actor(SharedActor(Roles::Left(WatchedMaster {
            inner: MachineActor::new(master_config, directory.clone()),
            timeouts: config.timeouts,
        })));
    for (index, agent) in AGENTS[..config.agents].iter().enumerate() {
        let resources_text = if index == 0 {
            "cpus:2;cpus(web):1;disk(web):1"
        } else {
            "cpus:1"
        };
        let info = AgentInfo {
            hostname: name(agent, Name::new),
            resources: resources(resources_text),
        };
        let agent_config = AgentConfig::new(vec![master.clone()], address(agent), info, boot_id(0))
            .expect("a valid agent configuration");
        let agent_config = match config.mutation {
            Some(OffersMutation::Agent(mutation)) => agent_config.with_mutation(mutation),
            _ => agent_config,
        };
        let host = AgentHost::new(agent_config, directory.clone(), 0, true);
        let host = if config.timeouts {
            host
        } else {
            host.without_timeouts()
        };
        model = model.actor(SharedActor(Roles::Right(Roles::Left(host))));
    }
    let timeouts = config.timeouts;
    let scheduler = |at: &str, role: &str, plans: Vec<Vec<OperationKind>>, standby: bool| {
        let config = SchedulerConfig::new(address(at), vec![master.clone()], info(role))
            .expect("a valid scheduler configuration")
            .with_plans(plans);
        let inner = MachineActor::new(config.clone(), directory.clone());
        let inner = if at == PRIMARY && !standby {
            inner.with_action_hook(hand_off)
        } else {
            inner
        };
        SharedActor(Roles::Right(Roles::Right(SchedulerHost {
            inner,
            config,
            directory: directory.clone(),
            standby,
            timeouts,
        })))
    };
    model = model.actor(scheduler(PRIMARY, "web", web_plans(), false));
    if config.frameworks == 2 {
        model = model.actor(scheduler(BATCH, "batch", batch_plans(), false));
    }
    if config.failover {
        model = model.actor(scheduler(STANDBY, "web", Vec::new(), true));
    }
    model
        .init_network(if config.duplicating {
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
        .within_boundary(within_bounds)
        .property(Expectation::Always, R1, |_, state| {
            offers_fit(state).is_none()
        })
        .property(Expectation::Always, R2, |model, state| {
            foreign_resource(&model.cfg, state, false).is_none()
        })
        .property(Expectation::Always, R3, |model, state| {
            foreign_resource(&model.cfg, state, true).is_none()
        })
        .property(Expectation::Always, R4, |_, state| {
            hosts(state).all(|host| host.storage.ghosts.data_lost.is_none())
        })
        .property(Expectation::Always, R5, |_, state| {
            hosts(state).all(|host| host.storage.ghosts.applied_twice.is_none())
        })
        .property(Expectation::Always, F1, |_, state| {
            watched(state).removed_early.is_none()
        })
        .property(Expectation::Sometimes, STORY, |_, state| {
            let t1 = name("t1", TaskId::new);
            hosts(state).any(|host| {
                host.storage
                    .ghosts
                    .reads
                    .get(&name("t2", TaskId::new))
                    .is_some_and(|read| read.contains(&t1))
            })
        })
        .property(Expectation::Sometimes, TAKEOVER, |model, state| {
            let phase = |at: &str| scheduler_at(&model.cfg, state, at).map(Scheduler::phase);
            matches!(phase(STANDBY), Some(SchedulerPhase::Subscribed { .. }))
                && matches!(phase(PRIMARY), Some(SchedulerPhase::Replaced))
        })
        .property(Expectation::Sometimes, UNREACHABLE, |_, state| {
            watched(state)
                .master
                .machine
                .registry()
                .agents()
                .values()
                .any(|agent| matches!(agent.status, AgentStatus::Unreachable { .. }))
        })
        .property(Expectation::Sometimes, REMOVED, |model, state| {
            let registered =
                scheduler_at(&model.cfg, state, PRIMARY).and_then(Scheduler::framework);
            registered.is_some_and(|framework| {
                !watched(state)
                    .master
                    .machine
                    .registry()
                    .frameworks()
                    .contains_key(&framework)
            })
        })
}

/// R1's name.
pub const R1: &str = "R1 offers and tasks fit in every agent, nothing offered twice";
/// R2's name.
pub const R2: &str = "R2 reserved resources offered to and used by their role only";
/// R3's name.
pub const R3: &str = "R3 a volume offered to and mounted by its role only";
/// R4's name.
pub const R4: &str = "R4 a volume's data is deleted only by DestroyVolume";
/// R5's name.
pub const R5: &str = "R5 no task started and no operation applied twice";
/// F1's name.
pub const F1: &str = "F1 a framework is removed only after its full failover timeout";
/// The storage story, as a liveness example.
pub const STORY: &str = "t1 writes to its volume, ends, and t2 reads its data on the same volume";
/// Scheduler failover, as a liveness example.
pub const TAKEOVER: &str = "the standby scheduler takes over the framework";
/// Agent failure detection, as a liveness example.
pub const UNREACHABLE: &str = "an agent becomes unreachable";
/// Framework failover timeout, as a liveness example.
pub const REMOVED: &str = "a framework is removed after its failover timeout";

/// The safety properties, by name.
pub const SAFETY: [&str; 6] = [R1, R2, R3, R4, R5, F1];

fn within_bounds(config: &OffersConfig, state: &OffersState) -> bool {
    state.network.len() <= config.in_flight_max
        && watched(state).master.durable.term.0 <= config.terms_max
}

/// The master's state (kept, with its ghosts, while it is down).
pub fn watched(state: &OffersState) -> &WatchedState {
    match &**state.actor_states[0] {
        Either::Left(watched) => watched,
        Either::Right(_) => unreachable!("actor 0 is the master"),
    }
}

/// The leader, if the master is up and leads.
fn leader(state: &OffersState) -> Option<&Master> {
    (!state.crashed[0]).then(|| &watched(state).master.machine)
}

/// Every agent host, up or down (its disk and executors outlive the agent process).
pub fn hosts(state: &OffersState) -> impl Iterator<Item = &HostState> {
    state
        .actor_states
        .iter()
        .filter_map(|actor| match &***actor {
            Either::Right(Either::Left(host)) => Some(host),
            _ => None,
        })
}

/// The actor index of the scheduler at `at`, if the model has it.
fn scheduler_index(config: &OffersConfig, at: &str) -> Option<usize> {
    let primary = 1 + config.agents;
    let batch = (config.frameworks == 2).then_some(primary + 1);
    let standby = config
        .failover
        .then_some(primary + 1 + usize::from(batch.is_some()));
    match at {
        PRIMARY => Some(primary),
        BATCH => batch,
        STANDBY => standby,
        _ => None,
    }
}

/// The scheduler at `at`, if the model has it and it started.
fn scheduler_at<'a>(
    config: &OffersConfig,
    state: &'a OffersState,
    at: &str,
) -> Option<&'a Scheduler> {
    match &**state.actor_states[scheduler_index(config, at)?] {
        Either::Right(Either::Right(Some(started))) => Some(&started.machine),
        _ => None,
    }
}

/// Each framework's role, as its schedulers know it.
fn roles(config: &OffersConfig, state: &OffersState) -> BTreeMap<FrameworkId, Role> {
    [(PRIMARY, web()), (BATCH, batch()), (STANDBY, web())]
        .into_iter()
        .filter_map(|(at, role)| Some((scheduler_at(config, state, at)?.framework()?, role)))
        .collect()
}

/// R1: a description of the first agent whose outstanding offers and tasks do not fit in its
/// resources, or whose resources are in two offers.
fn offers_fit(state: &OffersState) -> Option<String> {
    let master = leader(state)?;
    let (agents, frameworks) = (master.agent_directory()?, master.framework_directory()?);
    for (agent, view) in agents.agents() {
        let Some(total) = view.total.clone().or_else(|| {
            master
                .registry()
                .agents()
                .get(agent)
                .map(|record| record.info.resources.clone())
        }) else {
            continue;
        };
        let mut taken = Resources::new();
        let tasks = view.tasks.values().filter(|task| !task.state.is_terminal());
        for resources in tasks.map(|task| &task.resources).chain(
            frameworks
                .offers()
                .values()
                .filter(|offer| offer.agent == *agent)
                .map(|offer| &offer.resources),
        ) {
            match taken.checked_add(resources) {
                Ok(sum) => taken = sum,
                Err(_) => return Some(format!("agent {agent}: {resources} counted twice")),
            }
        }
        if total.checked_sub(&taken).is_err() {
            return Some(format!("agent {agent}: {taken} taken of {total}"));
        }
    }
    None
}

/// R2 (`volumes` false) or R3 (`volumes` true): the first outstanding offer, or task on an
/// agent, holding reserved resources (or a volume) of another role than its framework's.
fn foreign_resource(config: &OffersConfig, state: &OffersState, volumes: bool) -> Option<String> {
    let roles = roles(config, state);
    let foreign = |framework: &FrameworkId, resources: &Resources| -> Option<String> {
        let role = roles.get(framework)?;
        resources
            .keys()
            .filter(|key| key.volume.is_some() == volumes)
            .find(|key| key.reservation.role().is_some_and(|owner| owner != role))
            .map(|key| format!("{key:?} held by framework {framework} of role {role}"))
    };
    if let Some(master) = leader(state)
        && let Some(frameworks) = master.framework_directory()
    {
        for offer in frameworks.offers().values() {
            if let Some(found) = foreign(&offer.framework, &offer.resources) {
                return Some(format!("offered: {found}"));
            }
        }
    }
    for host in hosts(state) {
        for ((framework, _), task) in &host.storage.durable.tasks {
            if let Some(found) = foreign(framework, &task.resources) {
                return Some(format!("used: {found}"));
            }
        }
    }
    None
}

/// Why a safety property fails in `state`, for the command line.
pub fn explain(config: &OffersConfig, state: &OffersState, property: &str) -> Option<String> {
    match property {
        R1 => offers_fit(state),
        R2 => foreign_resource(config, state, false),
        R3 => foreign_resource(config, state, true),
        R4 => hosts(state).find_map(|host| host.storage.ghosts.data_lost.clone()),
        R5 => hosts(state).find_map(|host| host.storage.ghosts.applied_twice.clone()),
        F1 => watched(state).removed_early.clone(),
        _ => None,
    }
}
