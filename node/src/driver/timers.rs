//! The driver's timers: one deadline per timer name, in two ordered maps instead of one tokio
//! task per `SetTimer`.
//!
//! The driver sleeps until [`Timers::next_deadline`] and then takes the timer that is due with
//! [`Timers::pop_due`]. Setting a timer replaces its deadline and cancelling removes it, both
//! before the driver sleeps again, so a replaced or cancelled setting can never fire: it no
//! longer exists anywhere.

use std::collections::BTreeMap;
use std::time::Duration;

use berth_protocol::DurationRange;
use rand::Rng;
use tokio::time::Instant;

/// The armed timers of one machine, by name and by deadline.
///
/// A machine's timers are a small set of names (its `Timer` type), so the maps hold at most
/// one entry per name: nothing a peer sends can grow them.
#[derive(Debug)]
pub struct Timers<T> {
    /// Each armed timer's deadline and the sequence number of its setting.
    by_timer: BTreeMap<T, (Instant, u64)>,
    /// The same settings ordered by deadline; the sequence number breaks ties in setting
    /// order and makes each key unique.
    by_deadline: BTreeMap<(Instant, u64), T>,
    next_sequence: u64,
}

impl<T: Clone + Ord> Timers<T> {
    /// No timer armed.
    pub fn new() -> Timers<T> {
        Timers {
            by_timer: BTreeMap::new(),
            by_deadline: BTreeMap::new(),
            next_sequence: 0,
        }
    }

    /// Arms `timer` to fire at `deadline`, replacing any earlier setting of it.
    pub fn set(&mut self, timer: T, deadline: Instant) {
        self.cancel(&timer);
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.by_deadline.insert((deadline, sequence), timer.clone());
        self.by_timer.insert(timer, (deadline, sequence));
        self.check();
    }

    /// Disarms `timer`, if it is armed.
    pub fn cancel(&mut self, timer: &T) {
        if let Some(key) = self.by_timer.remove(timer) {
            let removed = self.by_deadline.remove(&key);
            debug_assert!(removed.is_some(), "both maps hold every setting");
        }
        self.check();
    }

    /// The earliest deadline, if any timer is armed.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.by_deadline
            .first_key_value()
            .map(|((deadline, _), _)| *deadline)
    }

    /// Disarms and returns the timer with the earliest deadline, if that deadline is at or
    /// before `now`. Timers due at the same instant come out in the order they were set.
    pub fn pop_due(&mut self, now: Instant) -> Option<T> {
        let entry = self.by_deadline.first_entry()?;
        if entry.key().0 > now {
            return None;
        }
        let timer = entry.remove();
        let removed = self.by_timer.remove(&timer);
        debug_assert!(removed.is_some(), "both maps hold every setting");
        self.check();
        Some(timer)
    }

    /// Moves every deadline `by` later, keeping their order: the time the process did not
    /// run (see the driver's loop) does not count against its timers.
    pub fn postpone_all(&mut self, by: Duration) {
        let by_deadline = std::mem::take(&mut self.by_deadline);
        for ((deadline, sequence), timer) in by_deadline {
            let later = deadline + by;
            self.by_timer.insert(timer.clone(), (later, sequence));
            self.by_deadline.insert((later, sequence), timer);
        }
        self.check();
    }

    /// How many timers are armed.
    pub fn len(&self) -> usize {
        self.by_timer.len()
    }

    /// Whether no timer is armed.
    pub fn is_empty(&self) -> bool {
        self.by_timer.is_empty()
    }

    fn check(&self) {
        debug_assert_eq!(
            self.by_timer.len(),
            self.by_deadline.len(),
            "each armed timer has exactly one deadline"
        );
    }
}

impl<T: Clone + Ord> Default for Timers<T> {
    fn default() -> Self {
        Timers::new()
    }
}

/// A delay drawn uniformly from `range` (the machine names the range, the driver picks the
/// jitter). A range whose `max` is below its `min` yields `min`.
pub fn draw_delay(range: DurationRange, rng: &mut impl Rng) -> Duration {
    if range.max <= range.min {
        return range.min;
    }
    rng.random_range(range.min..=range.max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
    enum Timer {
        Election,
        Heartbeat,
    }

    fn at(base: Instant, milliseconds: u64) -> Instant {
        base + Duration::from_millis(milliseconds)
    }

    #[test]
    fn fires_in_deadline_order() {
        let base = Instant::now();
        let mut timers = Timers::new();
        timers.set(Timer::Election, at(base, 20));
        timers.set(Timer::Heartbeat, at(base, 10));
        assert_eq!(timers.next_deadline(), Some(at(base, 10)));
        assert_eq!(timers.pop_due(at(base, 5)), None, "nothing is due yet");
        assert_eq!(timers.pop_due(at(base, 30)), Some(Timer::Heartbeat));
        assert_eq!(timers.pop_due(at(base, 30)), Some(Timer::Election));
        assert_eq!(timers.pop_due(at(base, 30)), None);
        assert!(timers.is_empty());
    }

    #[test]
    fn postponed_timers_keep_their_order_and_fire_that_much_later() {
        let base = Instant::now();
        let mut timers = Timers::new();
        timers.set("b", at(base, 20));
        timers.set("a", at(base, 10));
        timers.postpone_all(Duration::from_millis(100));
        assert_eq!(timers.pop_due(at(base, 109)), None);
        assert_eq!(timers.pop_due(at(base, 110)), Some("a"));
        assert_eq!(timers.pop_due(at(base, 119)), None);
        assert_eq!(timers.pop_due(at(base, 120)), Some("b"));
        timers.set("c", at(base, 5));
        timers.cancel(&"c");
        assert!(
            timers.is_empty(),
            "the by-name map follows the postponed deadlines"
        );
    }

    #[test]
    fn a_replaced_setting_never_fires() {
        let base = Instant::now();
        let mut timers = Timers::new();
        timers.set(Timer::Election, at(base, 10));
        timers.set(Timer::Election, at(base, 50));
        assert_eq!(timers.len(), 1);
        assert_eq!(
            timers.pop_due(at(base, 20)),
            None,
            "the first setting is gone"
        );
        assert_eq!(timers.next_deadline(), Some(at(base, 50)));
        assert_eq!(timers.pop_due(at(base, 50)), Some(Timer::Election));
    }

    #[test]
    fn a_cancelled_timer_never_fires() {
        let base = Instant::now();
        let mut timers = Timers::new();
        timers.set(Timer::Heartbeat, at(base, 10));
        timers.set(Timer::Election, at(base, 20));
        timers.cancel(&Timer::Heartbeat);
        timers.cancel(&Timer::Heartbeat); // Cancelling an unarmed timer changes nothing.
        assert_eq!(timers.pop_due(at(base, 100)), Some(Timer::Election));
        assert_eq!(timers.pop_due(at(base, 100)), None);
    }

    #[test]
    fn timers_due_together_fire_in_setting_order() {
        let base = Instant::now();
        let mut timers = Timers::new();
        timers.set(Timer::Heartbeat, at(base, 10));
        timers.set(Timer::Election, at(base, 10));
        assert_eq!(timers.pop_due(at(base, 10)), Some(Timer::Heartbeat));
        assert_eq!(timers.pop_due(at(base, 10)), Some(Timer::Election));
    }

    #[test]
    fn delays_stay_in_their_range() {
        let mut rng = rand::rng();
        let range = DurationRange::between(Duration::from_millis(500), Duration::from_millis(1000));
        for _ in 0..1000 {
            let delay = draw_delay(range, &mut rng);
            assert!(range.min <= delay && delay <= range.max, "{delay:?}");
        }
        let fixed = DurationRange::fixed(Duration::from_millis(100));
        assert_eq!(draw_delay(fixed, &mut rng), Duration::from_millis(100));
    }
}
