//! The adapter: any [`Machine`] as a stateright [`Actor`].
//!
//! | protocol                         | stateright                                   |
//! |----------------------------------|----------------------------------------------|
//! | `Machine::boot(config, durable)` | `on_start(id, storage)`, storage = durable   |
//! | `handle_message(from, message)`  | `on_msg(id, state, src, msg)`                |
//! | `handle_timer(timer)`            | `on_timeout(id, state, timer)`               |
//! | `end_batch()`                    | after each input above, in the same step     |
//! | `Command::Send { to, .. }`       | `Out::send(directory[to], ..)`               |
//! | `Command::SetTimer/CancelTimer`  | `Out::set_timer/cancel_timer`                |
//! | `Command::Persist(record)`       | `apply(durable, record)`, then `Out::save`   |
//! | `Command::Act(action)`           | the model's action hook, or nothing          |
//!
//! Stateright executes one step's outputs atomically and crashes an actor only between steps,
//! recovering it with `on_start` from the storage it last saved. Saving the folded durable
//! state on every persist is therefore exactly "recover from what was persisted": a crash
//! loses everything else, timers included. Together with a lossy network this covers a crash
//! between a persist and the sends after it (DESIGN.md, "The state-machine contract").

use std::borrow::Cow;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use berth_protocol::message::Message;
use berth_protocol::{Address, Command, Machine, Outbox};
use stateright::actor::{Actor, Id, Out};

use crate::Shared;

/// The addresses of a model's actors: actor `Id(i)` is `addresses[i]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Directory {
    addresses: Arc<Vec<Address>>,
    /// Actors whose incoming messages the model leaves out (see [`Directory::mute`]).
    muted: Arc<Vec<Address>>,
}

impl Directory {
    /// A directory of the given addresses, in actor order.
    ///
    /// # Panics
    /// If an address appears twice: a bug in the model.
    pub fn new(addresses: Vec<Address>) -> Directory {
        for (index, address) in addresses.iter().enumerate() {
            assert!(
                !addresses[..index].contains(address),
                "address {address} appears twice in the directory"
            );
        }
        Directory {
            addresses: Arc::new(addresses),
            muted: Arc::new(Vec::new()),
        }
    }

    /// Leaves out every message sent *to* `address`: for an actor that only sends (an
    /// operator issuing requests), whose answers would only multiply the network's states.
    #[must_use]
    pub fn mute(mut self, address: Address) -> Directory {
        Arc::make_mut(&mut self.muted).push(address);
        self
    }

    /// The address of actor `id`.
    ///
    /// # Panics
    /// If `id` is not an actor of this directory.
    pub fn address(&self, id: Id) -> &Address {
        &self.addresses[usize::from(id)]
    }

    /// The actor at `address`, if there is one and it is not muted.
    pub fn id(&self, address: &Address) -> Option<Id> {
        if self.muted.contains(address) {
            return None;
        }
        self.addresses
            .iter()
            .position(|known| known == address)
            .map(Id::from)
    }

    /// Every address, in actor order.
    pub fn addresses(&self) -> &[Address] {
        &self.addresses
    }
}

/// A protocol machine running as a stateright actor.
pub struct MachineActor<M: Machine> {
    config: M::Config,
    directory: Directory,
    /// What the model does with the machine's [`Command::Act`]: the messages it turns into.
    /// For example, an agent's "start executor" can become a message to an executor actor.
    action_hook: Option<fn(&M::Action) -> Vec<(Address, Message)>>,
}

impl<M: Machine> MachineActor<M> {
    /// An actor that boots `M` with `config` and reaches its peers through `directory`.
    pub fn new(config: M::Config, directory: Directory) -> Self {
        MachineActor {
            config,
            directory,
            action_hook: None,
        }
    }

    /// Turns the machine's actions into messages with `hook` instead of dropping them.
    #[must_use]
    pub fn with_action_hook(mut self, hook: fn(&M::Action) -> Vec<(Address, Message)>) -> Self {
        self.action_hook = Some(hook);
        self
    }

    /// Carries out a step's outbox in order; returns whether anything was persisted.
    ///
    /// The records are applied after the other commands, all at once: the checker executes a
    /// step's outputs atomically, and no other command reads the durable state.
    fn execute(
        &self,
        outbox: &mut Outbox<M>,
        durable: &mut Shared<M::Durable>,
        out: &mut Out<Self>,
    ) -> bool
    where
        Self: Actor<Msg = Message, Timer = M::Timer, Storage = Shared<M::Durable>>,
        M::Durable: Hash,
    {
        let mut records = Vec::new();
        for command in outbox.drain() {
            match command {
                Command::Send { to, message } => self.send(&to, message, out),
                Command::SetTimer { timer, duration } => {
                    // Stateright wants a non-empty range; the checker ignores its length.
                    let end = duration.max.max(duration.min + Duration::from_millis(1));
                    out.set_timer(timer, duration.min..end);
                }
                Command::CancelTimer(timer) => out.cancel_timer(timer),
                Command::Persist(record) => records.push(record),
                Command::Note(_) => {}
                Command::Act(action) => {
                    if let Some(hook) = self.action_hook {
                        for (to, message) in hook(&action) {
                            self.send(&to, message, out);
                        }
                    }
                }
            }
        }
        if records.is_empty() {
            return false;
        }
        durable.update(|durable| {
            for record in &records {
                M::apply(durable, record);
            }
        });
        true
    }

    /// Sends to the actor at `to`; a message to an address outside the model is lost, as on a
    /// real network.
    fn send(&self, to: &Address, message: Message, out: &mut Out<Self>)
    where
        Self: Actor<Msg = Message>,
    {
        if let Some(id) = self.directory.id(to) {
            out.send(id, message);
        }
    }
}

/// An actor's state: the machine and its durable state as persisted so far.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MachineState<M: Machine> {
    /// The machine.
    pub machine: M,
    /// The fold of every record it persisted; what a crash recovers from. Shared with the
    /// saved storage and with every later state until the machine persists again.
    pub durable: Shared<M::Durable>,
}

impl<M> Actor for MachineActor<M>
where
    M: Machine + Clone + Debug + PartialEq + Hash,
{
    type Msg = Message;
    type Timer = M::Timer;
    type State = MachineState<M>;
    type Storage = Shared<M::Durable>;
    type Random = ();

    fn on_start(
        &self,
        _id: Id,
        storage: &Option<Shared<M::Durable>>,
        out: &mut Out<Self>,
    ) -> Self::State {
        let mut durable = storage.clone().unwrap_or_default();
        let mut outbox = Outbox::new();
        let machine = match M::boot(&self.config, &durable, &mut outbox) {
            Ok(machine) => machine,
            Err(error) => panic!("a machine in a model refused to boot: {error}"),
        };
        if self.execute(&mut outbox, &mut durable, out) {
            out.save(durable.clone());
        }
        MachineState { machine, durable }
    }

    fn on_msg(
        &self,
        _id: Id,
        state: &mut Cow<Self::State>,
        src: Id,
        msg: Message,
        out: &mut Out<Self>,
    ) {
        let from = self.directory.address(src).clone();
        self.step(state, out, |machine, outbox| {
            machine.handle_message(&from, msg, outbox);
        });
    }

    fn on_timeout(
        &self,
        _id: Id,
        state: &mut Cow<Self::State>,
        timer: &M::Timer,
        out: &mut Out<Self>,
    ) {
        self.step(state, out, |machine, outbox| {
            machine.handle_timer(timer.clone(), outbox);
        });
    }

    fn name(&self) -> String {
        let type_name = std::any::type_name::<M>();
        type_name
            .rsplit("::")
            .next()
            .unwrap_or(type_name)
            .to_string()
    }
}

impl<M> MachineActor<M>
where
    M: Machine + Clone + Debug + PartialEq + Hash,
{
    /// Runs one input on a copy of the state, then ends the batch (every input is a batch of
    /// one: the finest batching a driver may choose, so the checker sees each deferred step
    /// at the earliest point it can run), and replaces the state only if it changed, so that
    /// stateright can still prune no-op steps.
    fn step(
        &self,
        state: &mut Cow<MachineState<M>>,
        out: &mut Out<Self>,
        input: impl FnOnce(&mut M, &mut Outbox<M>),
    ) {
        let mut next = state.as_ref().clone();
        let mut outbox = Outbox::new();
        input(&mut next.machine, &mut outbox);
        next.machine.end_batch(&mut outbox);
        if self.execute(&mut outbox, &mut next.durable, out) {
            out.save(next.durable.clone());
        }
        if next != **state {
            *state = Cow::Owned(next);
        }
    }
}
