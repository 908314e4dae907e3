//! Verification beyond unit tests: fuzzing of every decoder ([`fuzz`]) and the seeded
//! whole-cluster simulator ([`simulator`]).
//!
//! Everything random is drawn from a [`SplitMix64`] seeded explicitly, so every failure is
//! replayable from the seed it prints.

pub mod fuzz;
pub mod simulator;

/// A small, fast, seedable pseudo-random generator (SplitMix64). Not for cryptography: for
/// reproducible test inputs.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator that yields the same sequence for the same seed.
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (`bound > 0`).
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0, "an empty range has no member");
        self.next_u64() % bound
    }
}
