//! A lightweight driver for a protocol machine in this process: its own TCP [`Network`]
//! (one connection per peer, as a real node has), tokio timers, and durable state kept in
//! memory instead of on disk.
//!
//! It executes an outbox the way the node's driver does (front to back; a persist is folded
//! into the durable state before the next command), except that nothing is written or synced:
//! a simulated node pays for the protocol and the network, not for a disk. The caller decides
//! what an action does; an action may answer with local events, which the machine handles at
//! once, as an executor that reports instantly would make it.
//!
//! A message that does not fit in its connection's queue is not dropped: it waits in the
//! node's own queue ([`BACKLOG_LENGTH_MAX`]), in order, and goes out as the connection
//! drains, the way a framework or agent that waits for its socket would behave. Loss in the
//! benchmark would otherwise measure the offer timeout and the status retries, not launches:
//! a scheduler answers every offer of an offer message at once, which can be hundreds of
//! messages in one step.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::time::Duration;

use berth_node::driver::draw_delay;
use std::sync::atomic::{AtomicU64, Ordering};

use berth_node::transport::{Network, SendOutcome};
use berth_protocol::message::Message;
use berth_protocol::{Address, Command, Machine, Outbox};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Messages the simulated nodes of this process could not queue (no route, or a full
/// backlog).
pub static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Messages that waited for room in a full connection queue.
pub static DELAYED: AtomicU64 = AtomicU64::new(0);

/// Messages one node keeps waiting for room in its connections' queues; more are dropped.
pub const BACKLOG_LENGTH_MAX: usize = 65_536;

/// How often a node with a backlog tries its connections again.
const BACKLOG_RETRY: Duration = Duration::from_millis(1);

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
    /// Messages waiting for room in a connection's queue, in the order they were sent.
    backlog: VecDeque<(Address, Message)>,
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
            backlog: VecDeque::new(),
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
            let retry = (!self.backlog.is_empty()).then(|| Instant::now() + BACKLOG_RETRY);
            let mut out = Outbox::new();
            tokio::select! {
                biased;
                () = &mut shutdown => return,
                () = sleep_until(retry) => {
                    self.send_backlog(network);
                    continue;
                }
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
                        self.send(network, to, message);
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

impl<M: Machine> SimNode<M> {
    /// Sends `message`, or keeps it in the backlog behind the messages already there.
    fn send(&mut self, network: &Network, to: Address, message: Message) {
        if !self.backlog.is_empty() {
            self.keep(to, message);
            return;
        }
        // The transport drops a message its full queue refuses; a copy waits instead.
        match network.send(&to, message.clone()) {
            SendOutcome::Queued => {}
            SendOutcome::QueueFull => self.keep(to, message),
            SendOutcome::NoRoute | SendOutcome::ShutDown => {
                DROPPED.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn keep(&mut self, to: Address, message: Message) {
        if self.backlog.len() < BACKLOG_LENGTH_MAX {
            DELAYED.fetch_add(1, Ordering::Relaxed);
            self.backlog.push_back((to, message));
        } else {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Sends what the backlog holds, front first, until a queue is full again.
    fn send_backlog(&mut self, network: &Network) {
        while let Some((to, message)) = self.backlog.pop_front() {
            match network.send(&to, message.clone()) {
                SendOutcome::Queued => {}
                SendOutcome::QueueFull => {
                    self.backlog.push_front((to, message));
                    return;
                }
                SendOutcome::NoRoute | SendOutcome::ShutDown => {
                    DROPPED.fetch_add(1, Ordering::Relaxed);
                }
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
