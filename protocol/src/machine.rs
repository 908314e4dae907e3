//! The calling contract shared by every role: [`Machine`], its [`Outbox`] and [`Command`]s.
//!
//! See the [crate documentation](crate) for the diagram and the rules a driver follows.

use alloc::vec::Vec;
use core::fmt;
use core::hash::Hash;
use core::time::Duration;

use serde::{Deserialize, Serialize};

use crate::message::Message;
use crate::note::Note;

/// The longest [`Address`], in bytes.
pub const ADDRESS_LENGTH_MAX: usize = 128;

/// Where a peer can be reached, as the driver understands it: `10.0.0.5:5050` for a TCP
/// listener, `m0` in a model. The protocol only stores, compares and returns addresses; the
/// driver resolves them. 1 to [`ADDRESS_LENGTH_MAX`] bytes of printable ASCII without spaces.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "alloc::string::String", into = "alloc::string::String")]
pub struct Address(heapless::String<ADDRESS_LENGTH_MAX>);

impl Address {
    /// Parses an address.
    pub fn new(text: &str) -> Result<Address, AddressError> {
        if text.is_empty() || text.len() > ADDRESS_LENGTH_MAX {
            return Err(AddressError::Length { length: text.len() });
        }
        if let Some(character) = text.chars().find(|c| !c.is_ascii_graphic()) {
            return Err(AddressError::InvalidCharacter { character });
        }
        let mut address = heapless::String::new();
        let pushed = address.push_str(text);
        debug_assert!(pushed.is_ok(), "length checked against the capacity");
        Ok(Address(address))
    }

    /// The address as text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl core::str::FromStr for Address {
    type Err = AddressError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Address::new(text)
    }
}

impl TryFrom<alloc::string::String> for Address {
    type Error = AddressError;
    fn try_from(text: alloc::string::String) -> Result<Self, Self::Error> {
        Address::new(&text)
    }
}

impl From<Address> for alloc::string::String {
    fn from(address: Address) -> alloc::string::String {
        address.as_str().into()
    }
}

impl fmt::Display for Address {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.pad(self.as_str())
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), formatter)
    }
}

/// Why a text is not an [`Address`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddressError {
    /// Empty, or longer than [`ADDRESS_LENGTH_MAX`] bytes.
    Length {
        /// Its length in bytes.
        length: usize,
    },
    /// A space, control or non-ASCII character.
    InvalidCharacter {
        /// The first such character.
        character: char,
    },
}

impl fmt::Display for AddressError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressError::Length { length } => write!(
                formatter,
                "an address is 1 to {ADDRESS_LENGTH_MAX} bytes, this one is {length}"
            ),
            AddressError::InvalidCharacter { character } => write!(
                formatter,
                "an address holds printable ASCII without spaces, not {character:?}"
            ),
        }
    }
}

impl core::error::Error for AddressError {}

/// How long until a timer fires: any duration in `min..=max`, chosen by the driver.
///
/// A range, not a value, because the machine draws no random numbers: a randomized election
/// timeout is the range 500–1000 ms, and the driver picks the jitter (the model checker
/// explores the firing as one nondeterministic event).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DurationRange {
    /// The shortest allowed delay.
    pub min: Duration,
    /// The longest allowed delay.
    pub max: Duration,
}

impl DurationRange {
    /// Exactly `duration`.
    pub const fn fixed(duration: Duration) -> DurationRange {
        DurationRange {
            min: duration,
            max: duration,
        }
    }

    /// Anything from `min` to `max`.
    ///
    /// # Panics
    /// If `min > max`: a bug in the caller.
    pub fn between(min: Duration, max: Duration) -> DurationRange {
        assert!(min <= max, "a duration range has min <= max");
        DurationRange { min, max }
    }
}

/// One effect a machine asks its driver to carry out. The driver executes a step's commands
/// in order; see the [crate documentation](crate) for the rules.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Command<Timer, Record, Action> {
    /// Send `message` to `to`. Delivery is best effort: the protocol tolerates loss,
    /// duplication and reordering.
    Send {
        /// The recipient.
        to: Address,
        /// What to send.
        message: Message,
    },
    /// Fire `timer` after a delay in `duration`, replacing any earlier setting of it.
    SetTimer {
        /// Which timer.
        timer: Timer,
        /// When it fires.
        duration: DurationRange,
    },
    /// Do not fire `timer` (if it is set).
    CancelTimer(Timer),
    /// Make `record` durable. **A barrier**: no later command of this step is executed before
    /// the record is on stable storage. Consecutive persists may share one sync.
    Persist(Record),
    /// A role-specific effect on the local machine, such as starting an executor process.
    Act(Action),
    /// Something the machine decided, or refused, that an operator may want to read: the
    /// driver logs it. It has no effect on the protocol.
    Note(Note),
}

/// The ordered effects of one step of a [`Machine`].
///
/// The machine writes; the driver reads [`commands`](Outbox::commands) or
/// [`drain`s](Outbox::drain) them front to back after each input.
pub struct Outbox<M: Machine> {
    commands: Vec<Command<M::Timer, M::Record, M::Action>>,
}

impl<M: Machine> Outbox<M> {
    /// An empty outbox.
    pub const fn new() -> Outbox<M> {
        Outbox {
            commands: Vec::new(),
        }
    }

    /// Queues a message.
    pub fn send(&mut self, to: Address, message: Message) {
        self.commands.push(Command::Send { to, message });
    }

    /// Queues setting (or resetting) a timer.
    pub fn set_timer(&mut self, timer: M::Timer, duration: DurationRange) {
        self.commands.push(Command::SetTimer { timer, duration });
    }

    /// Queues cancelling a timer.
    pub fn cancel_timer(&mut self, timer: M::Timer) {
        self.commands.push(Command::CancelTimer(timer));
    }

    /// Queues making a record durable; a barrier for every later command.
    pub fn persist(&mut self, record: M::Record) {
        self.commands.push(Command::Persist(record));
    }

    /// Queues a role-specific effect.
    pub fn act(&mut self, action: M::Action) {
        self.commands.push(Command::Act(action));
    }

    /// Queues a note for the log.
    pub fn note(&mut self, note: Note) {
        self.commands.push(Command::Note(note));
    }

    /// The queued commands, in order.
    pub fn commands(&self) -> &[Command<M::Timer, M::Record, M::Action>] {
        &self.commands
    }

    /// Removes and yields the queued commands, in order.
    pub fn drain(&mut self) -> alloc::vec::Drain<'_, Command<M::Timer, M::Record, M::Action>> {
        self.commands.drain(..)
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }

    /// How many commands are queued.
    pub fn len(&self) -> usize {
        self.commands.len()
    }
}

impl<M: Machine> Default for Outbox<M> {
    fn default() -> Self {
        Outbox::new()
    }
}

impl<M: Machine> fmt::Debug for Outbox<M> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_list().entries(&self.commands).finish()
    }
}

/// A role of the protocol (master, agent, executor, scheduler) as a deterministic state
/// machine. See the [crate documentation](crate) for how to drive one.
///
/// A machine never blocks, reads a clock, draws a random number or does I/O. Given the same
/// inputs it produces the same outputs, which is what lets the model checker and the
/// simulator run the exact code production runs.
pub trait Machine: Sized {
    /// What the machine is told when it boots: its identity, peers and settings.
    type Config;
    /// The names of its timers: a small enum.
    type Timer: Clone + fmt::Debug + Eq + Ord + Hash;
    /// One durable change, such as a vote or a status update. Small on purpose: the driver
    /// appends records to a log instead of rewriting the whole state.
    type Record: Clone + fmt::Debug + Eq + Hash;
    /// The durable state: the fold of every record persisted so far by
    /// [`apply`](Machine::apply), starting from `Default`.
    type Durable: Clone + fmt::Debug + Default + Eq + Hash;
    /// Local inputs besides messages and timers (an agent's executor exited); use
    /// [`core::convert::Infallible`] for none.
    type Event: Clone + fmt::Debug;
    /// Role-specific effects besides messages, timers and persistence (start an executor);
    /// use [`core::convert::Infallible`] for none.
    type Action: Clone + fmt::Debug + Eq + Hash;
    /// Why a machine refuses to boot, for example from a checkpoint that contradicts its
    /// configuration.
    type BootError: fmt::Debug + fmt::Display;

    /// Starts the machine from its durable state: `Durable::default()` on first boot, or the
    /// fold of every record it persisted before it stopped.
    fn boot(
        config: &Self::Config,
        durable: &Self::Durable,
        out: &mut Outbox<Self>,
    ) -> Result<Self, Self::BootError>;

    /// Folds one persisted record into the durable state. Pure: recovery and the model both
    /// rebuild the durable state with this function, so they cannot disagree.
    fn apply(durable: &mut Self::Durable, record: &Self::Record);

    /// Handles a message from the peer at `from`. A bad or stale message is ignored or
    /// answered; never a panic.
    fn handle_message(&mut self, from: &Address, message: Message, out: &mut Outbox<Self>);

    /// Handles a timer that fired.
    fn handle_timer(&mut self, timer: Self::Timer, out: &mut Outbox<Self>);

    /// Handles a local event. Roles without local events keep this default, which ignores it.
    fn handle_event(&mut self, event: Self::Event, out: &mut Outbox<Self>) {
        let _ = (event, out);
    }

    /// Ends a batch of inputs: does the work the machine deferred while it handled them, so
    /// that a burst of inputs pays for it once. The driver calls it after one or more
    /// inputs, normally before it waits for the next input, and executes its outbox like
    /// any step's. A driver may also hold a batch open for a bounded time to gather more
    /// input (the node's driver does after a slow `end_batch`, so that deferred work cannot
    /// take all of its time). Calling it after every input is always correct (the model
    /// checker does); a driver that never calls it leaves deferred work to the machine's
    /// timers, only later. The master allocates offers here; roles without deferred work keep this
    /// default, which does nothing.
    fn end_batch(&mut self, out: &mut Outbox<Self>) {
        let _ = out;
    }
}
