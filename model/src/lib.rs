//! Stateright models of the Berth protocol.
//!
//! The models run the *exact* protocol code that production runs: [`MachineActor`] adapts any
//! [`berth_protocol::Machine`] to stateright's actor contract (persist becomes stateright's
//! saved storage, so the checker's crashes recover from exactly what was persisted), and
//! [`Roles`] mixes roles with different timers and storage in one model. Each protocol concern
//! gets its own small model with named properties (DESIGN.md's invariants E1–F1) and tests
//! that pin state counts and show that a deliberately broken protocol is caught.

pub mod actor;
pub mod agents;
pub mod election;
pub mod mixed;
pub mod offers;
pub mod shared;

pub use actor::{Directory, MachineActor, MachineState};
pub use mixed::{Either, Roles};
pub use shared::{Shared, SharedActor};
