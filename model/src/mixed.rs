//! Several roles in one model.
//!
//! Stateright's own `Choice` needs every alternative to share one timer and storage type, but
//! each protocol role has its own. [`Roles`] is an actor that is one of two actors with the
//! same message type and *different* timers, storage and state; nest it for more roles:
//! `Roles<MachineActor<Master>, Roles<MachineActor<Agent>, MachineActor<Scheduler>>>`.

use std::borrow::Cow;

use stateright::actor::{Actor, Command, Id, Out};

/// One of two values; the state, timer and storage of a [`Roles`] actor.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Either<L, R> {
    /// Of the first role.
    Left(L),
    /// Of the second role.
    Right(R),
}

/// An actor that is either an `L` or an `R`.
#[derive(Clone, Debug)]
pub enum Roles<L, R> {
    /// The first role.
    Left(L),
    /// The second role.
    Right(R),
}

/// Re-tags the commands of one role's step as commands of the combined actor.
fn lift<A, L, R>(
    out: Out<A>,
    timer: fn(A::Timer) -> Either<L::Timer, R::Timer>,
    storage: fn(A::Storage) -> Either<L::Storage, R::Storage>,
    random: fn(A::Random) -> Either<L::Random, R::Random>,
    into: &mut Out<Roles<L, R>>,
) where
    A: Actor,
    L: Actor,
    R: Actor<Msg = L::Msg>,
    Roles<L, R>: Actor<
            Msg = A::Msg,
            Timer = Either<L::Timer, R::Timer>,
            Storage = Either<L::Storage, R::Storage>,
            Random = Either<L::Random, R::Random>,
        >,
{
    for command in out {
        match command {
            Command::Send(to, message) => into.send(to, message),
            Command::SetTimer(name, duration) => into.set_timer(timer(name), duration),
            Command::CancelTimer(name) => into.cancel_timer(timer(name)),
            Command::Save(saved) => into.save(storage(saved)),
            Command::ChooseRandom(key, choices) => {
                into.choose_random(key, choices.into_iter().map(random).collect());
            }
        }
    }
}

/// Runs `step` on one role's inner state and returns the new inner state if it changed.
fn step_inner<S: Clone>(inner: &S, step: impl FnOnce(&mut Cow<S>)) -> Option<S> {
    let mut inner_state = Cow::Borrowed(inner);
    step(&mut inner_state);
    match inner_state {
        Cow::Owned(changed) => Some(changed),
        Cow::Borrowed(_) => None,
    }
}

impl<L, R> Actor for Roles<L, R>
where
    L: Actor,
    R: Actor<Msg = L::Msg>,
    L::Timer: Ord,
    R::Timer: Ord,
    L::Storage: Eq,
    R::Storage: Eq,
    L::State: Eq,
    R::State: Eq,
{
    type Msg = L::Msg;
    type Timer = Either<L::Timer, R::Timer>;
    type State = Either<L::State, R::State>;
    type Storage = Either<L::Storage, R::Storage>;
    type Random = Either<L::Random, R::Random>;

    fn on_start(
        &self,
        id: Id,
        storage: &Option<Self::Storage>,
        out: &mut Out<Self>,
    ) -> Self::State {
        match self {
            Roles::Left(actor) => {
                let storage = match storage {
                    Some(Either::Left(storage)) => Some(storage.clone()),
                    Some(Either::Right(_)) => {
                        unreachable!("an actor keeps its role across crashes")
                    }
                    None => None,
                };
                let mut inner = Out::new();
                let state = actor.on_start(id, &storage, &mut inner);
                lift::<L, L, R>(inner, Either::Left, Either::Left, Either::Left, out);
                Either::Left(state)
            }
            Roles::Right(actor) => {
                let storage = match storage {
                    Some(Either::Right(storage)) => Some(storage.clone()),
                    Some(Either::Left(_)) => unreachable!("an actor keeps its role across crashes"),
                    None => None,
                };
                let mut inner = Out::new();
                let state = actor.on_start(id, &storage, &mut inner);
                lift::<R, L, R>(inner, Either::Right, Either::Right, Either::Right, out);
                Either::Right(state)
            }
        }
    }

    fn on_msg(
        &self,
        id: Id,
        state: &mut Cow<Self::State>,
        src: Id,
        msg: Self::Msg,
        out: &mut Out<Self>,
    ) {
        match (self, state.as_ref()) {
            (Roles::Left(actor), Either::Left(inner)) => {
                let mut inner_out = Out::new();
                let changed = step_inner(inner, |inner_state| {
                    actor.on_msg(id, inner_state, src, msg, &mut inner_out);
                });
                if let Some(changed) = changed {
                    *state = Cow::Owned(Either::Left(changed));
                }
                lift::<L, L, R>(inner_out, Either::Left, Either::Left, Either::Left, out);
            }
            (Roles::Right(actor), Either::Right(inner)) => {
                let mut inner_out = Out::new();
                let changed = step_inner(inner, |inner_state| {
                    actor.on_msg(id, inner_state, src, msg, &mut inner_out);
                });
                if let Some(changed) = changed {
                    *state = Cow::Owned(Either::Right(changed));
                }
                lift::<R, L, R>(inner_out, Either::Right, Either::Right, Either::Right, out);
            }
            _ => unreachable!("an actor's state matches its role"),
        }
    }

    fn on_timeout(
        &self,
        id: Id,
        state: &mut Cow<Self::State>,
        timer: &Self::Timer,
        out: &mut Out<Self>,
    ) {
        match (self, state.as_ref(), timer) {
            (Roles::Left(actor), Either::Left(inner), Either::Left(timer)) => {
                let mut inner_out = Out::new();
                let changed = step_inner(inner, |inner_state| {
                    actor.on_timeout(id, inner_state, timer, &mut inner_out);
                });
                if let Some(changed) = changed {
                    *state = Cow::Owned(Either::Left(changed));
                }
                lift::<L, L, R>(inner_out, Either::Left, Either::Left, Either::Left, out);
            }
            (Roles::Right(actor), Either::Right(inner), Either::Right(timer)) => {
                let mut inner_out = Out::new();
                let changed = step_inner(inner, |inner_state| {
                    actor.on_timeout(id, inner_state, timer, &mut inner_out);
                });
                if let Some(changed) = changed {
                    *state = Cow::Owned(Either::Right(changed));
                }
                lift::<R, L, R>(inner_out, Either::Right, Either::Right, Either::Right, out);
            }
            _ => unreachable!("an actor's state and timers match its role"),
        }
    }

    fn name(&self) -> String {
        match self {
            Roles::Left(actor) => actor.name(),
            Roles::Right(actor) => actor.name(),
        }
    }
}
