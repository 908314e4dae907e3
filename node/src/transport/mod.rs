//! The TCP transport: authenticated connections that carry framed messages between nodes.
//!
//! A [`Network`] connects one state machine to its peers. Every message that arrives on any
//! connection goes into *one* bounded channel, the inbox, that the state-machine task reads;
//! [`Network::send`] queues a message on a connection to its recipient without ever waiting:
//!
//! ```text
//!                +------------------------- Network --------------------------+
//!  peer  ------> | accept -> handshake -> reader --+                          |
//!  sockets       | dial   -> handshake -> reader --+--> inbox ----------------+--> state-machine
//!                |                                     (INBOX_LENGTH_MAX)     |    task
//!        <------ | writer <- queue <- send(to, message) <----------------------+--- (no waiting)
//!                |          (PEER_QUEUE_LENGTH_MAX per connection)            |
//!                +------------------------------------------------------------+
//! ```
//!
//! # Handshake
//!
//! Both sides run the same small protocol as soon as a connection opens, within
//! [`HANDSHAKE_TIMEOUT`]:
//!
//! 1. Each sends a hello, integers big-endian:
//!
//!    ```text
//!    +--------+-------------+-----------------+-----------+---------------+---------------+
//!    | "BRTH" | version u16 | body length u16 | nonce: 32 | cluster:      | address:      |
//!    |        |             |                 |           | u8 length, .. | u8 length, .. |
//!    +--------+-------------+-----------------+-----------+---------------+---------------+
//!     8-byte prefix                            body, at most HELLO_BODY_LENGTH_MAX bytes
//!    ```
//!
//!    `version` is [`PROTOCOL_VERSION`](berth_protocol::frame::PROTOCOL_VERSION), `nonce`
//!    fresh random bytes, `address` the sender's [`Address`] in the protocol (a client that
//!    does not listen, such as a scheduler, still has one).
//! 2. Each reads the other's hello and checks, in this order, the magic
//!    ([`HandshakeError::BadMagic`]), the version ([`HandshakeError::VersionMismatch`], before
//!    the body, whose layout another version may change), the body's bounds
//!    ([`HandshakeError::Malformed`]) and the cluster name
//!    ([`HandshakeError::ClusterMismatch`]).
//! 3. Each sends its proof, `HMAC-SHA256(secret, label || version || dialer nonce ||
//!    acceptor nonce || cluster || dialer address || acceptor address)`, where `label` names
//!    the side (dialer or acceptor) and each text is prefixed with its length.
//! 4. Each reads the other's proof and verifies it in constant time
//!    ([`HandshakeError::WrongSecret`]).
//!
//! Why this shape: the secret never crosses the wire; both nonces make every proof new, so a
//! recorded proof cannot be replayed; the side label keeps a proof from being reflected back
//! to its maker; and the addresses inside the MAC make the peer's declared address, which
//! becomes the `from` of all its messages, as trustworthy as the secret. The handshake
//! authenticates peers; it does not encrypt. Where the network between nodes is not trusted,
//! run Berth inside a private network or a tunnel.
//!
//! # Frames
//!
//! After the handshake both directions carry frames exactly as
//! [`berth_protocol::frame`] defines them. The reader checks the 4-byte header against
//! [`FRAME_LENGTH_MAX`](berth_protocol::frame::FRAME_LENGTH_MAX) before it buffers anything,
//! and the body buffer grows only with the bytes that arrive. A bad handshake or a malformed,
//! oversized or wrong-version frame closes that connection, is logged (`warn`) with the
//! peer's socket address, and delivers nothing: the state machine never sees it.
//!
//! # Routing, loss and reconnection
//!
//! Connections are kept by the peer's protocol address: the declared address for an inbound
//! connection, the dialed address for an outbound one. `send(to, ..)` uses the newest live
//! connection to `to`, inbound or outbound, so replies to a client reach it over the
//! connection it opened. With no connection and a `to` that parses as a [`SocketAddr`], it
//! starts a dialer: up to [`DIAL_ATTEMPTS_MAX`] attempts with exponential backoff from
//! [`DIAL_BACKOFF_MIN`] to [`DIAL_BACKOFF_MAX`], messages queueing meanwhile. A connection
//! that fails, or a dialer that gives up, is removed, and the next send dials again.
//!
//! A state machine that wants to know when a peer is gone can ask for
//! [`Network::connection_ends`]: the address of every peer whose established connection
//! ends (closed by the peer, reset, or failed) while no other connection to it is left, as
//! soon as the connection's task sees it. A scheduler uses it to notice that its leader's
//! process died without waiting for the leader's pings to stop
//! ([`SchedulerEvent::ConnectionLost`]), and a master to notice that a scheduler's process
//! did ([`MasterEvent::ConnectionLost`]). Failed attempts to connect are not reported, and
//! connections closed by [`Network::shutdown`] are not either.
//!
//! [`SchedulerEvent::ConnectionLost`]: berth_protocol::scheduler::SchedulerEvent::ConnectionLost
//! [`MasterEvent::ConnectionLost`]: berth_protocol::master::MasterEvent::ConnectionLost
//!
//! Queues are bounded. When a connection's queue is full, the message is dropped and
//! counted ([`Network::dropped_count`]) rather than blocking the state machine: the protocol
//! tolerates loss (rule 5 of the calling contract) but must never stall on a slow peer. The
//! inbox, by contrast, is awaited by readers: a busy state machine slows its peers down
//! through TCP flow control instead of losing their messages.
//!
//! # Inbound connections
//!
//! [`Network::run`] holds at most `inbound_connections_max` inbound connections open at
//! once, counting those still in their handshake. A connection beyond the limit is closed as
//! soon as it is accepted, before anything is read from it, counted
//! ([`Network::refused_count`]) and logged (`warn`, at the 1st, 2nd, 4th, 8th... refusal, so
//! that a flood of connections cannot flood the log too). The bound is what keeps a flood
//! of connections from exhausting the process's file descriptors and memory; a master sets
//! it from `--max-connections` ([`INBOUND_CONNECTIONS_DEFAULT`] unless told otherwise) and
//! never above what its open files limit allows ([`inbound_connections_possible`]).
//!
//! # Shutdown
//!
//! [`Network::run`] accepts until its `shutdown` future completes, then closes everything,
//! like mini-redis's `run(listener, shutdown)`. [`Network::shutdown`] does the same for a
//! network with no listener (a client) or from another task: every task stops and every
//! socket is closed before it returns. A send that races the shutdown either queues its
//! message before the shutdown closes that queue, or returns [`SendOutcome::ShutDown`].
//!
//! # Shared memory
//!
//! The network's tasks share memory in two places, each a small module that loom compiles
//! from this source and checks under every interleaving (RELIABILITY.md, "loom"): the routing
//! table (`routes.rs`) and the task set with the reader of connection ends, guarded by the
//! stopping flag (`lifecycle.rs`). The rest is tokio's (the inbox, the queues, the `watch`
//! that wakes tasks at shutdown) or relaxed counters of dropped messages and refused
//! connections that only statistics read.

#![warn(missing_docs)]

mod connection;
mod handshake;
pub(crate) mod lifecycle;
pub(crate) mod routes;
mod secret;
pub(crate) mod sync;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use berth_protocol::Address;
use berth_protocol::bounded::Name;
use berth_protocol::message::Message;
use lifecycle::{Flag, Lifecycle};
use routes::{Queue, Refused, Routed, Routes};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

pub use handshake::{
    HANDSHAKE_TIMEOUT, HELLO_BODY_LENGTH_MAX, HELLO_MAGIC, HELLO_PREFIX_LENGTH, HandshakeError,
    Hello, NONCE_LENGTH, PROOF_LENGTH, Side, handshake,
};
pub use secret::{
    CLUSTER_SECRET_LENGTH_MAX, CLUSTER_SECRET_LENGTH_MIN, ClusterSecret, GENERATED_SECRET_LENGTH,
    SecretError,
};

/// Messages the inbox holds before readers wait for the state machine.
pub const INBOX_LENGTH_MAX: usize = 1024;
/// Messages queued for one connection before [`Network::send`] drops them.
pub const PEER_QUEUE_LENGTH_MAX: usize = 256;
/// Inbound connections (authenticated or still in their handshake) a master holds open at
/// once unless configured otherwise: one per agent, framework and operator command, with room
/// for the largest clusters Berth is sized for (50,000 agents and their frameworks).
pub const INBOUND_CONNECTIONS_DEFAULT: usize = 65_536;
/// Inbound connections an agent holds open at once: only masters (at most five) and the odd
/// client call an agent, so a small bound is plenty.
pub const AGENT_INBOUND_CONNECTIONS_MAX: usize = 1024;
/// File descriptors kept for everything a node opens besides its inbound connections: the
/// listener, standard streams, log and snapshot files, connections it dials to other masters.
pub const FILE_DESCRIPTORS_RESERVED: u64 = 256;
/// How long one TCP connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Connection attempts of one dialer before it gives up.
pub const DIAL_ATTEMPTS_MAX: u32 = 10;
/// The pause after a dialer's first failed attempt; it doubles after each failure.
pub const DIAL_BACKOFF_MIN: Duration = Duration::from_millis(50);
/// The longest pause between two attempts of a dialer.
pub const DIAL_BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Connection ends queued for the reader of [`Network::connection_ends`]; more are dropped
/// until it reads.
pub const CONNECTION_ENDS_QUEUED_MAX: usize = 64;
/// The pause after `accept` fails (for example, out of file descriptors).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Who this node is on the network.
#[derive(Clone, Debug)]
pub struct NetworkConfig {
    /// The address this node is known by in the protocol, sent in the handshake.
    pub address: Address,
    /// The cluster's name; peers of another cluster are refused.
    pub cluster: Name,
    /// The cluster's shared secret.
    pub secret: ClusterSecret,
}

/// What [`Network::send`] did with a message. Loss is normal: a driver may ignore this.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendOutcome {
    /// Queued on a connection (or on a dialer that is connecting).
    Queued,
    /// Dropped: the connection's queue is full.
    QueueFull,
    /// Dropped: no connection to the recipient, and its address is not a socket address.
    NoRoute,
    /// Dropped: the network is shut down.
    ShutDown,
}

/// The node's connections to its peers. See the [module documentation](self).
///
/// Cheap to clone: clones share the connections.
#[derive(Clone, Debug)]
pub struct Network {
    shared: Arc<Shared>,
}

/// What the network's tasks share.
#[derive(Debug)]
struct Shared {
    config: NetworkConfig,
    inbox: mpsc::Sender<(Address, Message)>,
    /// Queues of live connections (and dialers) by peer address.
    routes: Routes<mpsc::Sender<Message>>,
    dropped: AtomicU64,
    /// Inbound connections closed because the limit was reached.
    refused: AtomicU64,
    /// `true` once the network shuts down.
    stopping: watch::Sender<bool>,
    /// The running tasks, and where connection ends are reported once someone asked.
    lifecycle: Lifecycle<JoinSet<()>, mpsc::Sender<Address>>,
    runtime: Handle,
}

impl Queue<Message> for mpsc::Sender<Message> {
    fn try_queue(&self, message: Message) -> Result<(), Refused<Message>> {
        self.try_send(message).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => Refused::Full,
            mpsc::error::TrySendError::Closed(message) => Refused::Closed(message),
        })
    }
}

impl Flag for watch::Sender<bool> {
    fn raise(&self) {
        self.send_replace(true);
    }

    fn is_raised(&self) -> bool {
        *self.borrow()
    }
}

impl Network {
    /// A network with no connections yet, and the receiving end of its inbox: every
    /// message from a peer arrives there as `(from, message)`.
    ///
    /// # Panics
    /// If called outside a tokio runtime.
    pub fn new(config: NetworkConfig) -> (Network, mpsc::Receiver<(Address, Message)>) {
        let (inbox, receiver) = mpsc::channel(INBOX_LENGTH_MAX);
        let shared = Shared {
            config,
            inbox,
            routes: Routes::new(),
            dropped: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            stopping: watch::Sender::new(false),
            lifecycle: Lifecycle::new(),
            runtime: Handle::current(),
        };
        (
            Network {
                shared: Arc::new(shared),
            },
            receiver,
        )
    }

    /// Accepts connections on `listener` until `shutdown` completes (or
    /// [`shutdown`](Network::shutdown) is called), then closes every connection and returns.
    /// At most `inbound_connections_max` inbound connections are open at once; see
    /// [Inbound connections](self#inbound-connections).
    ///
    /// # Panics
    /// If `inbound_connections_max` is 0: such a network could accept nothing.
    pub async fn run(
        &self,
        listener: TcpListener,
        inbound_connections_max: usize,
        shutdown: impl Future<Output = ()>,
    ) {
        assert!(
            inbound_connections_max > 0,
            "a network that listens accepts at least one connection"
        );
        let permits = Arc::new(Semaphore::new(inbound_connections_max));
        let mut stopping = self.shared.stopping.subscribe();
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                () = &mut shutdown => break,
                _ = stopping.wait_for(|stopping| *stopping) => break,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, socket_address)) => {
                    let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                        self.shared.refuse(socket_address, inbound_connections_max);
                        drop(stream);
                        continue;
                    };
                    let shared = Arc::clone(&self.shared);
                    self.shared.spawn(async move {
                        accept(&shared, stream, socket_address).await;
                        drop(permit);
                    });
                }
                Err(error) => {
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            }
        }
        drop(listener);
        self.shutdown().await;
    }

    /// Queues `message` for the peer at `to` and returns at once; see the
    /// [module documentation](self) for routing and loss.
    pub fn send(&self, to: &Address, message: Message) -> SendOutcome {
        if *self.shared.stopping.borrow() {
            return SendOutcome::ShutDown;
        }
        let message = match self.shared.routes.route(to, message) {
            Routed::Queued(connection) => {
                tracing::trace!(address = %to, connection, "queued a message");
                return SendOutcome::Queued;
            }
            Routed::Full => {
                self.shared.count_dropped();
                tracing::debug!(address = %to, "queue full; dropping a message");
                return SendOutcome::QueueFull;
            }
            Routed::NoQueue(message) => message,
        };
        let Ok(socket_address) = to.as_str().parse::<SocketAddr>() else {
            self.shared.count_dropped();
            tracing::debug!(address = %to, "no connection to this address; dropping a message");
            return SendOutcome::NoRoute;
        };
        let (sender, receiver) = mpsc::channel(PEER_QUEUE_LENGTH_MAX);
        if sender.try_send(message).is_err() {
            // A fresh queue has room; this cannot happen.
            self.shared.count_dropped();
        }
        let shared = Arc::clone(&self.shared);
        let dialed = to.clone();
        let started = self.shared.lifecycle.dial(
            &self.shared.stopping,
            &self.shared.routes,
            to,
            sender,
            |tasks, connection| {
                self.shared.start(tasks, async move {
                    dial(&shared, &dialed, socket_address, connection, receiver).await;
                });
            },
        );
        if started.is_none() {
            // The network shut down since the check above, and the dialer's queue with it:
            // the same answer as a send after the shutdown.
            return SendOutcome::ShutDown;
        }
        SendOutcome::Queued
    }

    /// From now on, the protocol address of every peer whose established connection ends,
    /// inbound or outbound: the peer closed it, it was reset, or reading or writing failed.
    /// Attempts to connect that fail are not reported, nor are the connections that
    /// [`shutdown`](Network::shutdown) closes; the channel closes at shutdown.
    ///
    /// At most [`CONNECTION_ENDS_QUEUED_MAX`] ends wait to be read; later ones are dropped
    /// until the reader catches up. Asking again replaces the earlier receiver, whose
    /// channel closes.
    pub fn connection_ends(&self) -> mpsc::Receiver<Address> {
        let (sender, receiver) = mpsc::channel(CONNECTION_ENDS_QUEUED_MAX);
        // Refused once the network is stopping: the sender is dropped and the channel closed.
        self.shared
            .lifecycle
            .set_connection_ends(&self.shared.stopping, sender);
        receiver
    }

    /// How many messages were dropped so far: full queues, no route, dialers that gave up.
    pub fn dropped_count(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// How many inbound connections were refused so far because `inbound_connections_max`
    /// were open.
    pub fn refused_count(&self) -> u64 {
        self.shared.refused.load(Ordering::Relaxed)
    }

    /// The configuration this network was made with.
    pub fn config(&self) -> &NetworkConfig {
        &self.shared.config
    }

    /// Stops accepting and dialing, closes every connection, and returns when every task of
    /// the network has ended. Later sends return [`SendOutcome::ShutDown`].
    pub async fn shutdown(&self) {
        let mut tasks = self
            .shared
            .lifecycle
            .stop(&self.shared.stopping, &self.shared.routes);
        while tasks.join_next().await.is_some() {}
    }
}

impl Shared {
    /// Reports that the established connection to `peer` ended, if anyone asked and no
    /// other connection to `peer` is left (one it opened again already, or a dialer). Never
    /// waits: a reader that is behind loses the report.
    fn report_connection_end(&self, peer: &Address) {
        if !self.routes.connections(peer).is_empty() {
            return;
        }
        self.lifecycle.report_connection_end(|ends| {
            let _ = ends.try_send(peer.clone());
        });
    }

    /// Counts a connection from `peer` closed because `limit` were open, and logs the 1st,
    /// 2nd, 4th, 8th... such refusal.
    fn refuse(&self, peer: SocketAddr, limit: usize) {
        let refused = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        if refused.is_power_of_two() {
            tracing::warn!(
                %peer,
                limit,
                refused,
                "refusing a connection: the limit of inbound connections is reached \
                 (`berth master --max-connections`); connections refused so far: {refused}"
            );
        }
    }

    fn count_dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Runs `task` until it ends or the network shuts down. Nothing is spawned once the
    /// network is stopping, so no task escapes [`Network::shutdown`] (see
    /// [`lifecycle`](self::lifecycle)).
    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.lifecycle
            .spawn(&self.stopping, |tasks| self.start(tasks, task));
    }

    /// Adds `task` to `tasks`, to run until it ends or the network shuts down.
    fn start(&self, tasks: &mut JoinSet<()>, task: impl Future<Output = ()> + Send + 'static) {
        while tasks.try_join_next().is_some() {}
        let mut stopping = self.stopping.subscribe();
        tasks.spawn_on(
            async move {
                tokio::select! {
                    () = task => {}
                    _ = stopping.wait_for(|stopping| *stopping) => {}
                }
            },
            &self.runtime,
        );
    }
}

/// Authenticates an inbound connection and carries its messages until it ends.
async fn accept(shared: &Shared, mut stream: TcpStream, socket_address: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let peer = match handshake(&mut stream, Side::Acceptor, &shared.config).await {
        Ok(peer) => peer,
        Err(error) => {
            tracing::warn!(
                peer = %socket_address,
                %error,
                "handshake failed; closing the connection"
            );
            return;
        }
    };
    tracing::debug!(peer = %socket_address, address = %peer, "accepted a connection");
    let (sender, mut receiver) = mpsc::channel(PEER_QUEUE_LENGTH_MAX);
    let connection = shared.routes.register(&peer, sender);
    connection::run(shared, stream, socket_address, &peer, &mut receiver).await;
    shared.routes.unregister(&peer, connection);
    shared.report_connection_end(&peer);
}

/// Connects to `to` with backoff, then carries the messages of `queue` (and the peer's
/// replies) until the connection ends. Gives up after [`DIAL_ATTEMPTS_MAX`] attempts.
async fn dial(
    shared: &Shared,
    to: &Address,
    socket_address: SocketAddr,
    connection: u64,
    mut queue: mpsc::Receiver<Message>,
) {
    let mut backoff = DIAL_BACKOFF_MIN;
    for attempt in 1..=DIAL_ATTEMPTS_MAX {
        match connect(shared, socket_address).await {
            Ok((stream, peer)) => {
                if &peer != to {
                    tracing::warn!(
                        peer = %socket_address,
                        declared = %peer,
                        "the peer declares another address than the one dialed: \
                         check its configuration"
                    );
                }
                tracing::debug!(peer = %socket_address, address = %peer, "connected");
                connection::run(shared, stream, socket_address, &peer, &mut queue).await;
                shared.routes.unregister(to, connection);
                shared.report_connection_end(to);
                return;
            }
            Err(DialError::Handshake(error)) if attempt == 1 => {
                // Warn once per dialer: the attempts that follow fail the same way.
                tracing::warn!(peer = %socket_address, %error, "handshake failed");
            }
            Err(error) => {
                tracing::debug!(peer = %socket_address, attempt, %error, "connecting failed");
            }
        }
        if attempt < DIAL_ATTEMPTS_MAX {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(DIAL_BACKOFF_MAX);
        }
    }
    tracing::info!(
        peer = %socket_address,
        attempts = DIAL_ATTEMPTS_MAX,
        "giving up connecting; its queued messages are dropped, the next send dials again"
    );
    shared.routes.unregister(to, connection);
    queue.close();
    while queue.try_recv().is_ok() {
        shared.count_dropped();
    }
}

/// Why one connection attempt failed.
#[derive(Debug, thiserror::Error)]
enum DialError {
    #[error("{0}")]
    Connect(std::io::Error),
    #[error("no connection within {CONNECT_TIMEOUT:?}")]
    Timeout,
    #[error("{0}")]
    Handshake(HandshakeError),
}

async fn connect(
    shared: &Shared,
    socket_address: SocketAddr,
) -> Result<(TcpStream, Address), DialError> {
    let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(socket_address))
        .await
        .map_err(|_| DialError::Timeout)?
        .map_err(DialError::Connect)?;
    let _ = stream.set_nodelay(true);
    let peer = handshake(&mut stream, Side::Dialer, &shared.config)
        .await
        .map_err(DialError::Handshake)?;
    Ok((stream, peer))
}

/// Raises this process's soft limit of open files (`RLIMIT_NOFILE`) to its hard limit if the
/// soft limit is below `wanted`; returns the soft limit in force afterwards (`u64::MAX` for
/// no limit). Only root can raise the hard limit: a process whose hard limit is too low
/// keeps it, and the caller decides what to do with fewer descriptors.
pub fn raise_open_files_limit(wanted: u64) -> io::Result<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    let soft = limit.current.unwrap_or(u64::MAX);
    if soft >= wanted || limit.current == limit.maximum {
        return Ok(soft);
    }
    limit.current = limit.maximum;
    setrlimit(Resource::Nofile, limit).map_err(io::Error::from)?;
    Ok(getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX))
}

/// The open files limit that `inbound_connections_max` connections need: one descriptor
/// each, and [`FILE_DESCRIPTORS_RESERVED`] for the rest of the process.
pub fn open_files_needed(inbound_connections_max: usize) -> u64 {
    u64::try_from(inbound_connections_max)
        .unwrap_or(u64::MAX)
        .saturating_add(FILE_DESCRIPTORS_RESERVED)
}

/// How many of `requested` inbound connections a process whose open files limit is
/// `open_files` can hold: `requested`, or what the limit leaves after
/// [`FILE_DESCRIPTORS_RESERVED`] (at least 1), whichever is smaller.
pub fn inbound_connections_possible(requested: usize, open_files: u64) -> usize {
    let available = open_files.saturating_sub(FILE_DESCRIPTORS_RESERVED).max(1);
    requested.min(usize::try_from(available).unwrap_or(usize::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_files_limit_caps_inbound_connections_after_the_reserve() {
        assert_eq!(inbound_connections_possible(65_536, u64::MAX), 65_536);
        assert_eq!(inbound_connections_possible(65_536, 1_048_576), 65_536);
        assert_eq!(inbound_connections_possible(65_536, 20_000), 20_000 - 256);
        assert_eq!(inbound_connections_possible(10, 1_024), 10);
        // A process with almost no descriptors still accepts one connection, not none.
        assert_eq!(inbound_connections_possible(10, 100), 1);
        assert_eq!(open_files_needed(65_536), 65_536 + 256);
        assert_eq!(open_files_needed(usize::MAX), u64::MAX);
    }

    #[test]
    fn raising_the_open_files_limit_never_lowers_it() {
        use rustix::process::{Resource, getrlimit};
        let before = getrlimit(Resource::Nofile);
        let soft = raise_open_files_limit(u64::MAX).expect("raising to the hard limit");
        let after = getrlimit(Resource::Nofile);
        assert_eq!(after.maximum, before.maximum, "the hard limit is untouched");
        assert_eq!(
            after.current, after.maximum,
            "the soft limit is the hard one"
        );
        assert_eq!(soft, after.current.unwrap_or(u64::MAX));
        // Asking for no more than the limit in force changes nothing.
        assert_eq!(raise_open_files_limit(1).expect("nothing to raise"), soft);
    }
}
