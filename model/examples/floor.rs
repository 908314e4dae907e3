//! What one transition of the checker costs, part by part, on states the models really reach.
//!
//! ```text
//! cargo run --release -p berth-model --example floor
//! ```
//!
//! For each model it walks the state space from its initial state (a fixed pseudo-random
//! walk, restarted every few steps) and samples the states and actions it passes. Then it
//! times, per sampled transition, on one thread, in CPU time (the machine may be shared):
//!
//! * `protocol step`: the actor's own step (`on_msg`/`on_timeout`), which runs the protocol
//!   code on a copy of the actor's state, compares it with the old one and digests the new one;
//! * `copy state`: copying the whole model state and dropping the copy;
//! * `hash state`: hashing the whole model state (the checker's fingerprint);
//! * `transition`: `next_state` as the checker calls it: all of the above and the network
//!   and history updates;
//! * `actions`: listing a state's actions (the checker does it once per explored state).
//!
//! Last, it checks a trivial model (a tree of numbers) with stateright's breadth-first search:
//! the checker's own cost per state, with no protocol at all.

use std::hash::Hash;

use std::time::Instant;

use berth_model::agents::{AgentsConfig, agents_model};
use berth_model::election::{ElectionConfig, election_model};
use berth_model::offers::{OffersConfig, offers_model};
use stateright::actor::{Actor, ActorModel, ActorModelAction, Id, Out};
use stateright::{Checker, Model, Property};

/// A fixed pseudo-random sequence (xorshift), so every run samples the same states.
struct Walk(u64);

impl Walk {
    fn next(&mut self, below: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % below as u64) as usize
    }
}

/// Nanoseconds of this thread's time on a CPU so far (the machine may be shared: wall time
/// would count the time other processes ran).
fn thread_cpu_ns() -> u64 {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").expect("Linux schedstat");
    text.split_whitespace()
        .next()
        .and_then(|field| field.parse().ok())
        .expect("a number of nanoseconds")
}

/// Seconds of CPU time (user and system) of the whole process so far.
fn process_cpu_s() -> f64 {
    let text = std::fs::read_to_string("/proc/self/stat").expect("Linux stat");
    // The fields after the command name (in parentheses); utime and stime are the 14th and
    // 15th fields, counted in clock ticks of 1/100 s.
    let after = &text[text.rfind(')').expect("a command name") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    ticks as f64 / 100.0
}

/// CPU nanoseconds per call of `work` over `items`, repeated until at least half a second of
/// CPU time passed.
fn per_item<T>(items: &[T], mut work: impl FnMut(&T)) -> f64 {
    let start = thread_cpu_ns();
    let mut rounds = 0_u32;
    while thread_cpu_ns() - start < 500_000_000 {
        for item in items {
            work(item);
        }
        rounds += 1;
    }
    (thread_cpu_ns() - start) as f64 / (f64::from(rounds) * items.len() as f64)
}

fn measure<A, C, H>(name: &str, model: &ActorModel<A, C, H>)
where
    A: Actor,
    A::Msg: Ord,
    A::Timer: Ord,
    H: Clone + std::fmt::Debug + Hash,
{
    let samples_max = 3_000;
    let mut walk = Walk(0x9e37_79b9_7f4a_7c15);
    let init = model.init_states().remove(0);
    let mut samples = Vec::new();
    let mut state = init.clone();
    let mut steps = 0;
    let mut actions = Vec::new();
    while samples.len() < samples_max {
        actions.clear();
        model.actions(&state, &mut actions);
        let next = (!actions.is_empty()).then(|| {
            let action = actions[walk.next(actions.len())].clone();
            samples.push((state.clone(), action.clone()));
            model.next_state(&state, action)
        });
        steps += 1;
        match next.flatten() {
            Some(next) if steps < 12 && model.within_boundary(&next) => state = next,
            _ => {
                state = init.clone();
                steps = 0;
            }
        }
    }
    let hasher = ahash::RandomState::with_seeds(1, 2, 3, 4);
    let transition = per_item(&samples, |(state, action)| {
        std::hint::black_box(model.next_state(state, action.clone()));
    });
    let copy = per_item(&samples, |(state, _)| {
        std::hint::black_box(state.clone());
    });
    let hash = per_item(&samples, |(state, _)| {
        std::hint::black_box(hasher.hash_one(state));
    });
    let mut listed = Vec::new();
    let list = per_item(&samples, |(state, _)| {
        listed.clear();
        model.actions(state, &mut listed);
        std::hint::black_box(&listed);
    });
    let steps: Vec<_> = samples
        .iter()
        .filter(|(state, action)| match action {
            ActorModelAction::Deliver { dst, .. } | ActorModelAction::Timeout(dst, _) => {
                !state.crashed[usize::from(*dst)]
            }
            _ => false,
        })
        .collect();
    let step = per_item(&steps, |(state, action)| {
        let mut out = Out::new();
        match action {
            ActorModelAction::Deliver { src, dst, msg } => {
                let index = usize::from(*dst);
                let mut actor = std::borrow::Cow::Borrowed(&*state.actor_states[index]);
                model.actors[index].on_msg(
                    Id::from(index),
                    &mut actor,
                    *src,
                    msg.clone(),
                    &mut out,
                );
                std::hint::black_box(actor);
            }
            ActorModelAction::Timeout(id, timer) => {
                let index = usize::from(*id);
                let mut actor = std::borrow::Cow::Borrowed(&*state.actor_states[index]);
                model.actors[index].on_timeout(*id, &mut actor, timer, &mut out);
                std::hint::black_box(actor);
            }
            _ => {}
        }
        std::hint::black_box(out);
    });
    println!(
        "{name:<10} {step:>10.0} {copy:>10.0} {hash:>10.0} {transition:>11.0} {list:>10.0}   \
         (ns; {} sampled transitions)",
        samples.len()
    );
}

/// A tree of `self.0` nodes, each with eight children: stateright's cost per state with no
/// protocol at all, on paths as short as the models' (stateright's breadth-first search copies
/// a state's path for each of its successors).
#[derive(Clone)]
struct Tree(u64);

impl Model for Tree {
    type State = u64;
    type Action = u64;

    fn init_states(&self) -> Vec<u64> {
        vec![0]
    }

    fn actions(&self, _: &u64, actions: &mut Vec<u64>) {
        actions.extend(1..=8);
    }

    fn next_state(&self, node: &u64, child: u64) -> Option<u64> {
        let next = node * 8 + child;
        (next < self.0).then_some(next)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        // The checker stops once every property is decided: one that never is keeps it going.
        vec![Property::sometimes(
            "outside the tree",
            |model: &Tree, node: &u64| *node >= model.0,
        )]
    }
}

fn main() {
    println!(
        "{:<10} {:>10} {:>10} {:>10} {:>11} {:>10}",
        "model", "step", "copy", "hash", "transition", "actions"
    );
    measure("election", &election_model(ElectionConfig::default()));
    measure("agents", &agents_model(AgentsConfig::default()));
    measure("offers", &offers_model(OffersConfig::default()));
    for threads in [1, 2] {
        let (start, cpu_start) = (Instant::now(), process_cpu_s());
        let checker = Tree(2_000_000)
            .checker()
            .threads(threads)
            .spawn_bfs()
            .join();
        let (elapsed, cpu) = (start.elapsed(), process_cpu_s() - cpu_start);
        let states = checker.unique_state_count() as f64;
        println!(
            "a tree, breadth-first, {threads} thread(s): {states} states in {elapsed:.2?} \
             ({cpu:.2} s of CPU): {:.0} states/s, {:.0} states per CPU second",
            states / elapsed.as_secs_f64(),
            states / cpu
        );
    }
}
