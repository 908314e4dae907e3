//! A lightweight driver for a protocol machine in this process: its own TCP [`Network`]
//! (one connection per peer, as a real node has), tokio timers, and durable state kept in
//! memory instead of on disk.
//!
//! It executes an outbox the way the node's driver does (front to back; a persist is folded
//! into the durable state before the next command), except that nothing is written or synced:
//! a simulated node pays for the protocol and the network, not for a disk. The caller decides
//! what an action does; an action may answer with local events, which the machine handles at
//! once, as an executor that reports instantly would make it.

use std::collections::BTreeMap;
use std::future::Future;

use berth_node::driver::draw_delay;
use std::sync::atomic::{AtomicU64, Ordering};

use berth_node::transport::{Network, SendOutcome};
use berth_protocol::message::Message;
use berth_protocol::{Address, Command, Machine, Outbox};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Messages the simulated nodes of this process could not queue (full queue, no route).
pub static DROPPED: AtomicU64 = AtomicU64::new(0);

/// What a simulated node does with the effects of its machine besides sending and timing.
pub trait Host<M: Machine> {
    /// Carries out `action`; local events it causes go to `events`, handled right after.
    fn act(&mut self, action: M::Action, events: &mut Vec<M::Event>);

    /// Sees a message just before it is sent (to time it).
    fn sent(&mut self, to: &Address, message: &Message) {
        let _ = (to, message);
    }

    /// Sees a note the machine wrote.
    fn noted(&mut self, note: &berth_protocol::note::Note) {
        let _ = note;
    }
}

/// A machine, its durable state (in memory) and its timers.
pub struct SimNode<M: Machine> {
    machine: M,
    durable: M::Durable,
    timers: BTreeMap<M::Timer, Instant>,
}

impl<M: Machine> SimNode<M> {
    /// Boots a machine from `durable` and executes the boot's outbox.
    pub fn boot(
        config: &M::Config,
        durable: M::Durable,
        network: &Network,
        host: &mut impl Host<M>,
    ) -> Result<SimNode<M>, M::BootError> {
        let mut out = Outbox::new();
        let machine = M::boot(config, &durable, &mut out)?;
        let mut node = SimNode {
            machine,
            durable,
            timers: BTreeMap::new(),
        };
        node.execute(out, network, host);
        Ok(node)
    }

    /// Runs the machine on messages from `inbox`, events from `events` and its timers until
    /// `shutdown` completes or the inbox closes.
    pub async fn run(
        &mut self,
        network: &Network,
        inbox: &mut mpsc::Receiver<(Address, Message)>,
        events: &mut mpsc::Receiver<M::Event>,
        host: &mut impl Host<M>,
        shutdown: impl Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        loop {
            let deadline = self.timers.values().min().copied();
            let mut out = Outbox::new();
            tokio::select! {
                biased;
                () = &mut shutdown => return,
                () = sleep_until(deadline) => {
                    let now = Instant::now();
                    let due = self
                        .timers
                        .iter()
                        .find(|(_, at)| **at <= now)
                        .map(|(timer, _)| timer.clone());
                    if let Some(timer) = due {
                        self.timers.remove(&timer);
                        self.machine.handle_timer(timer, &mut out);
                    }
                }
                Some(event) = events.recv() => self.machine.handle_event(event, &mut out),
                received = inbox.recv() => match received {
                    Some((from, message)) => self.machine.handle_message(&from, message, &mut out),
                    None => return,
                },
            }
            self.machine.end_batch(&mut out);
            self.execute(out, network, host);
        }
    }

    /// Executes `out`, then the outboxes of the local events its actions caused, in order.
    fn execute(&mut self, out: Outbox<M>, network: &Network, host: &mut impl Host<M>) {
        let mut pending = std::collections::VecDeque::from([out]);
        while let Some(mut out) = pending.pop_front() {
            let mut events = Vec::new();
            for command in out.drain() {
                match command {
                    Command::Send { to, message } => {
                        host.sent(&to, &message);
                        // Loss is part of the contract: a full queue drops the message.
                        if network.send(&to, message) != SendOutcome::Queued {
                            DROPPED.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Command::SetTimer { timer, duration } => {
                        let delay = draw_delay(duration, &mut rand::rng());
                        self.timers.insert(timer, Instant::now() + delay);
                    }
                    Command::CancelTimer(timer) => {
                        self.timers.remove(&timer);
                    }
                    Command::Persist(record) => M::apply(&mut self.durable, &record),
                    Command::Act(action) => host.act(action, &mut events),
                    Command::Note(note) => host.noted(&note),
                }
            }
            for event in events {
                let mut next = Outbox::new();
                self.machine.handle_event(event, &mut next);
                pending.push_back(next);
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
