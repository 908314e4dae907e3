//! Helpers for the unit tests of every role: reading what a step put in its outbox.

use alloc::vec::Vec;

use crate::message::Message;
use crate::{Address, Command};

/// The messages a step sent, with their recipients, in order.
pub(crate) fn sent<T, R, A>(commands: &[Command<T, R, A>]) -> Vec<(Address, Message)> {
    commands
        .iter()
        .filter_map(|command| match command {
            Command::Send { to, message } => Some((to.clone(), message.clone())),
            _ => None,
        })
        .collect()
}

/// The records a step persisted, in order.
pub(crate) fn persisted<T, R: Clone, A>(commands: &[Command<T, R, A>]) -> Vec<R> {
    commands
        .iter()
        .filter_map(|command| match command {
            Command::Persist(record) => Some(record.clone()),
            _ => None,
        })
        .collect()
}
