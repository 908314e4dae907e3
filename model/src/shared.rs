//! Sharing what a step leaves unchanged, and hashing it once.
//!
//! The checker copies a whole model state for every transition it tries and hashes the whole
//! copy to know whether it is new. A model state holds every actor's state and saved storage
//! and every message in flight; one step changes one actor and adds a few messages. Without
//! sharing, each transition deep-copied and deep-hashed all of it (a master's log and
//! registry, every message a duplicating network keeps), and that, with the allocations it
//! took, was most of the checker's time.
//!
//! [`Shared`] keeps a value behind an [`Arc`] together with a digest of it computed once, when
//! the value is made. Copying one is a reference count; hashing one writes its digest. So a
//! transition costs the step itself plus the hashing of what it made new. [`SharedActor`] puts
//! a whole actor's messages, saved storage and state in [`Shared`], leaving the actor itself
//! unchanged: the model checks the same code and the same state space.
//!
//! Equality still compares values (after a pointer and a digest check), and ordering is the
//! value's own, so the checker lists actions in the same order as without sharing. The checker
//! tells states apart by a 64-bit fingerprint; with digests inside it, two states also merge
//! if two of their parts share a 64-bit digest: odds of the same order, negligible at the
//! models' tens of millions of values.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

use stateright::actor::{Actor, Command, Id, Out};

/// A value behind an [`Arc`], with its digest computed once.
pub struct Shared<T> {
    inner: Arc<Digested<T>>,
}

struct Digested<T> {
    digest: u64,
    value: T,
}

/// The digest of `value`: a 64-bit hash with fixed keys, the same on every run, so that state
/// counts and paths are reproducible.
fn digest<T: Hash + ?Sized>(value: &T) -> u64 {
    // The same fixed-key hasher the checker fingerprints states with.
    let hasher = ahash::RandomState::with_seeds(
        0x2d35_8dcc_aa6c_78a5,
        0x8bb8_4b93_962e_acc9,
        0x4b33_a62e_d433_d4a3,
        0x4d5a_2da5_1de1_aa47,
    );
    hasher.hash_one(value)
}

impl<T: Hash> Shared<T> {
    /// Shares `value`, hashing it once.
    pub fn new(value: T) -> Shared<T> {
        Shared {
            inner: Arc::new(Digested {
                digest: digest(&value),
                value,
            }),
        }
    }

    /// Changes the value with `change` (copying it first if it is shared) and hashes it again.
    pub fn update<R>(&mut self, change: impl FnOnce(&mut T) -> R) -> R
    where
        T: Clone,
    {
        let digested = Arc::make_mut(&mut self.inner);
        let result = change(&mut digested.value);
        digested.digest = digest(&digested.value);
        result
    }
}

impl<T> Shared<T> {
    /// The value, taken out if this is its last reference, else copied.
    pub fn into_inner(self) -> T
    where
        T: Clone,
    {
        match Arc::try_unwrap(self.inner) {
            Ok(digested) => digested.value,
            Err(shared) => shared.value.clone(),
        }
    }
}

impl<T: Clone> Clone for Digested<T> {
    fn clone(&self) -> Self {
        Digested {
            digest: self.digest,
            value: self.value.clone(),
        }
    }
}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T> Deref for Shared<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.inner.value
    }
}

impl<T: Hash + Default> Default for Shared<T> {
    fn default() -> Self {
        Shared::new(T::default())
    }
}

impl<T> Hash for Shared<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.inner.digest);
    }
}

impl<T: PartialEq> PartialEq for Shared<T> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
            || (self.inner.digest == other.inner.digest && self.inner.value == other.inner.value)
    }
}

impl<T: Eq> Eq for Shared<T> {}

impl<T: PartialOrd> PartialOrd for Shared<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        if Arc::ptr_eq(&self.inner, &other.inner) {
            return Some(Ordering::Equal);
        }
        self.inner.value.partial_cmp(&other.inner.value)
    }
}

impl<T: Ord> Ord for Shared<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        if Arc::ptr_eq(&self.inner, &other.inner) {
            return Ordering::Equal;
        }
        self.inner.value.cmp(&other.inner.value)
    }
}

impl<T: fmt::Debug> fmt::Debug for Shared<T> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.value.fmt(formatter)
    }
}

/// An actor whose messages, saved storage and state are [`Shared`]: the same actor, cheaper
/// to copy and to hash. Wrap a model's whole actor (its [`crate::Roles`]) in it.
#[derive(Clone, Debug)]
pub struct SharedActor<A>(pub A);

impl<A> SharedActor<A>
where
    A: Actor,
{
    /// Re-tags an inner step's commands, sharing each message and saved storage.
    fn share(inner: Out<A>, out: &mut Out<Self>) {
        for command in inner {
            match command {
                Command::Send(to, message) => out.send(to, Shared::new(message)),
                Command::SetTimer(timer, duration) => out.set_timer(timer, duration),
                Command::CancelTimer(timer) => out.cancel_timer(timer),
                Command::Save(storage) => out.save(Shared::new(storage)),
                Command::ChooseRandom(key, choices) => out.choose_random(key, choices),
            }
        }
    }

    /// Runs `step` on the inner state and replaces `state` if the step made a new one.
    fn step(state: &mut Cow<Shared<A::State>>, step: impl FnOnce(&mut Cow<A::State>))
    where
        A::State: Clone,
    {
        let mut inner = Cow::Borrowed(&***state);
        step(&mut inner);
        let next = match inner {
            Cow::Owned(next) => Some(next),
            Cow::Borrowed(_) => None,
        };
        if let Some(next) = next {
            *state = Cow::Owned(Shared::new(next));
        }
    }
}

impl<A> Actor for SharedActor<A>
where
    A: Actor,
{
    type Msg = Shared<A::Msg>;
    type Timer = A::Timer;
    type State = Shared<A::State>;
    type Storage = Shared<A::Storage>;
    type Random = A::Random;

    fn on_start(
        &self,
        id: Id,
        storage: &Option<Self::Storage>,
        out: &mut Out<Self>,
    ) -> Self::State {
        let storage = storage.as_ref().map(|shared| (**shared).clone());
        let mut inner = Out::new();
        let state = self.0.on_start(id, &storage, &mut inner);
        Self::share(inner, out);
        Shared::new(state)
    }

    fn on_msg(
        &self,
        id: Id,
        state: &mut Cow<Self::State>,
        src: Id,
        msg: Self::Msg,
        out: &mut Out<Self>,
    ) {
        let mut inner = Out::new();
        Self::step(state, |inner_state| {
            self.0
                .on_msg(id, inner_state, src, msg.into_inner(), &mut inner);
        });
        Self::share(inner, out);
    }

    fn on_timeout(
        &self,
        id: Id,
        state: &mut Cow<Self::State>,
        timer: &Self::Timer,
        out: &mut Out<Self>,
    ) {
        let mut inner = Out::new();
        Self::step(state, |inner_state| {
            self.0.on_timeout(id, inner_state, timer, &mut inner);
        });
        Self::share(inner, out);
    }

    fn name(&self) -> String {
        self.0.name()
    }
}
