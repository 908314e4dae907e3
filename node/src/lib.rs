//! Berth's node runtime: the `berth` binary's library.
//!
//! The node is thin by design: one task owns each protocol state machine and turns its outbox
//! into I/O; protocol decisions stay in `berth-protocol` (DESIGN.md, "Node runtime").

pub mod agent;
pub mod cli;
pub mod client;
pub mod config;
pub mod driver;
pub mod executor;
pub mod local;
pub mod logging;
pub mod master;
pub mod operator;
pub mod process;
pub mod run;
pub mod storage;
pub mod transport;
pub mod work_dir;
