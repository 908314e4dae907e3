//! A master process: the protocol's [`Master`] machine behind a [`Driver`], a [`Network`]
//! and a [`Store`](crate::storage::Store) in its data directory.
//!
//! Everything a master decides (elections, the replicated registry) is in
//! [`berth_protocol::master`]; this module only wires it to TCP and to the disk. The shape is
//! mini-redis's: [`run_master`] takes its configuration, a bound listener and a shutdown
//! future, so tests start masters in-process on port 0 and the binary's `berth master` is a
//! thin wrapper around it.
//!
//! ```no_run
//! # async fn demo(config: berth_node::master::MasterNodeConfig) -> anyhow::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:5050").await?;
//! berth_node::master::run_master(config, listener, async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await?;
//! # Ok(()) }
//! ```
//!
//! A master is known to its peers by its entry in the membership list: that text is its
//! [`Address`] in the handshake and in every message, so the list must name each master by
//! the `IP:PORT` the others reach it at.

#![warn(missing_docs)]

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};

use berth_protocol::Address;
use berth_protocol::bounded::Name;
use berth_protocol::ids::{MasterId, Term};
use berth_protocol::master::{ElectionRole, Master, MasterConfig, MasterEvent};
use berth_protocol::registry::LogIndex;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::Instrument;

use crate::driver::{Driver, DriverConfig, DriverError, no_actions};
use crate::transport::{
    ClusterSecret, Network, NetworkConfig, inbound_connections_possible, open_files_needed,
    raise_open_files_limit,
};

/// Everything a master process needs.
#[derive(Clone, Debug)]
pub struct MasterNodeConfig {
    /// Its identity, the membership list and the protocol's timing.
    pub master: MasterConfig,
    /// The cluster's name; peers of another cluster are refused at the handshake.
    pub cluster: Name,
    /// The cluster's shared secret.
    pub secret: ClusterSecret,
    /// Where its durable state (term, vote, log) lives; created if missing.
    pub data_dir: PathBuf,
    /// The driver's settings.
    pub driver: DriverConfig,
    /// Inbound connections (agents, frameworks, other masters, operator commands) held open
    /// at once; more are refused. Capped at what the open files limit allows.
    pub inbound_connections_max: usize,
}

/// Where a master stands in the election, for status output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Standing {
    /// Following a leader, or waiting to hear from one.
    Follower,
    /// Asking for pre-votes.
    PreCandidate,
    /// Asking for votes in its term.
    Candidate,
    /// Leading its term.
    Leader,
}

/// How many entries the registry holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RegistrySummary {
    /// Agents ever admitted.
    pub agents: usize,
    /// Frameworks not removed.
    pub frameworks: usize,
    /// Roles with a configured weight.
    pub role_weights: usize,
}

/// A snapshot of a master, published after every step of its machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MasterStatus {
    /// Its id.
    pub id: MasterId,
    /// Its address in the membership list.
    pub address: Address,
    /// Its current term.
    pub term: Term,
    /// Where it stands.
    pub standing: Standing,
    /// The leader of its term it knows of (itself if it leads).
    pub leader: Option<MasterId>,
    /// Its vote in its term.
    pub voted_for: Option<MasterId>,
    /// The highest log index it knows to be committed.
    pub commit_index: LogIndex,
    /// The index of its last log entry.
    pub last_log_index: LogIndex,
    /// The registry as of the commit index.
    pub registry: RegistrySummary,
}

impl MasterStatus {
    /// The status of `master`.
    pub fn of(master: &Master) -> MasterStatus {
        let standing = match master.role() {
            ElectionRole::Follower { .. } => Standing::Follower,
            ElectionRole::PreCandidate { .. } => Standing::PreCandidate,
            ElectionRole::Candidate { .. } => Standing::Candidate,
            ElectionRole::Leader(_) => Standing::Leader,
        };
        let registry = master.registry();
        MasterStatus {
            id: master.id(),
            address: own_address(master.config()),
            term: master.term(),
            standing,
            leader: master.leader(),
            voted_for: master.voted_for(),
            commit_index: master.commit_index(),
            last_log_index: master.log().last_index(),
            registry: RegistrySummary {
                agents: registry.agents().len(),
                frameworks: registry.frameworks().len(),
                role_weights: registry.role_weights().len(),
            },
        }
    }

    /// Whether it leads its term.
    pub fn is_leader(&self) -> bool {
        self.standing == Standing::Leader
    }
}

/// Why a master stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    /// The data directory could not be created.
    #[error("cannot create the data directory {}: {error}", path.display())]
    DataDirectory {
        /// The directory.
        path: PathBuf,
        /// What the operating system said.
        error: io::Error,
    },
    /// The driver stopped: storage failed (fatal, never retried).
    #[error(transparent)]
    Driver(#[from] DriverError),
}

/// A master whose durable state is loaded and whose machine has booted, ready to
/// [`run`](MasterNode::run).
#[derive(Debug)]
pub struct MasterNode {
    driver: Driver<Master, MasterStatus>,
    status: watch::Receiver<MasterStatus>,
    network: NetworkConfig,
    data_dir: PathBuf,
    inbound_connections_max: usize,
}

impl MasterNode {
    /// Creates the data directory if needed, recovers the durable state from it and boots
    /// the machine. Does no network I/O.
    pub fn open(config: MasterNodeConfig) -> Result<MasterNode, MasterError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|error| MasterError::DataDirectory {
            path: config.data_dir.clone(),
            error,
        })?;
        let (driver, status) = Driver::open(
            &config.data_dir,
            &config.master,
            MasterStatus::of,
            config.driver,
        )?;
        let network = NetworkConfig {
            address: own_address(&config.master),
            cluster: config.cluster,
            secret: config.secret,
        };
        Ok(MasterNode {
            driver,
            status,
            network,
            data_dir: config.data_dir,
            inbound_connections_max: config.inbound_connections_max,
        })
    }

    /// A receiver of the master's status, updated after every step while it runs; it keeps
    /// the last status once the master stops.
    pub fn status(&self) -> watch::Receiver<MasterStatus> {
        self.status.clone()
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Accepts peers on `listener` and runs the machine until `shutdown` completes (`Ok`)
    /// or storage fails (`Err`: stop the process, never retry).
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), MasterError> {
        let status = self.status.borrow().clone();
        let span = tracing::info_span!("master", id = %status.id);
        async move {
            let inbound_connections_max = inbound_connections_allowed(self.inbound_connections_max);
            tracing::info!(
                address = %status.address,
                listening = %display_local_address(&listener),
                data_dir = %self.data_dir.display(),
                term = status.term.0,
                max_connections = inbound_connections_max,
                "master starting"
            );
            let (network, inbox) = Network::new(self.network);
            let (stop_accepting, accepting_stopped) = oneshot::channel::<()>();
            // Connections that end become events: a scheduler whose process died is
            // disconnected at once, not after its missed pings (`MasterEvent`).
            let (events, events_receiver) = mpsc::channel(CONNECTION_END_EVENTS_MAX);
            let forwarding =
                tokio::spawn(forward_connection_ends(network.connection_ends(), events));
            let driving = async {
                let result = self
                    .driver
                    .run(&network, inbox, Some(events_receiver), no_actions, shutdown)
                    .await;
                forwarding.abort();
                let _ = stop_accepting.send(());
                result
            };
            let accepting = network.run(listener, inbound_connections_max, async {
                let _ = accepting_stopped.await;
            });
            let (result, ()) = tokio::join!(driving, accepting);
            tracing::info!("master stopped");
            result.map_err(MasterError::from)
        }
        .instrument(span)
        .await
    }
}

/// Connection ends waiting for the master's driver; more wait in the transport's own queue,
/// and past that are dropped (the scheduler's missed pings still tell).
const CONNECTION_END_EVENTS_MAX: usize = 1024;

/// Passes each connection end the network reports to the master as an event.
async fn forward_connection_ends(
    mut ends: mpsc::Receiver<Address>,
    events: mpsc::Sender<MasterEvent>,
) {
    while let Some(peer) = ends.recv().await {
        if events
            .send(MasterEvent::ConnectionLost(peer))
            .await
            .is_err()
        {
            return;
        }
    }
}

/// How many of `requested` inbound connections this process can hold: raises the soft open
/// files limit to the hard one if it is too low for them, and if even the hard limit is,
/// caps the connections at what it allows and says so (a warning when the operator asked for
/// more with `--max-connections`; a note in the info log for the default).
fn inbound_connections_allowed(requested: usize) -> usize {
    let wanted = open_files_needed(requested);
    let open_files = match raise_open_files_limit(wanted) {
        Ok(open_files) => open_files,
        Err(error) => {
            let open_files = rustix::process::getrlimit(rustix::process::Resource::Nofile)
                .current
                .unwrap_or(u64::MAX);
            tracing::warn!(%error, open_files, "cannot raise the open files limit");
            open_files
        }
    };
    let allowed = inbound_connections_possible(requested, open_files);
    if allowed < requested && requested == crate::transport::INBOUND_CONNECTIONS_DEFAULT {
        // The default is sized for the largest clusters; most hosts' limits hold fewer
        // connections and most clusters need fewer. Said once, quietly: a healthy master
        // writes nothing to standard error by default.
        tracing::info!(
            requested,
            allowed,
            open_files,
            "the open files limit (RLIMIT_NOFILE) holds {allowed} of the default \
             {requested} inbound connections; raise the hard limit to {wanted} for more"
        );
    } else if allowed < requested {
        tracing::warn!(
            requested,
            allowed,
            open_files,
            "the open files limit (RLIMIT_NOFILE) is too low for --max-connections {requested}: \
             accepting at most {allowed} connections; raise the hard limit to {wanted} \
             (`ulimit -Hn`, `LimitNOFILE=` in a systemd unit) or lower --max-connections"
        );
    }
    allowed
}

/// Opens the master's data directory, boots it and runs it on `listener` until `shutdown`.
/// See [`MasterNode`] to watch its status while it runs.
pub async fn run_master(
    config: MasterNodeConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), MasterError> {
    MasterNode::open(config)?.run(listener, shutdown).await
}

/// The master's own entry in its membership list.
fn own_address(config: &MasterConfig) -> Address {
    config
        .members()
        .get(&config.id())
        .cloned()
        .expect("MasterConfig::new checks that a master is in its membership list")
}

fn display_local_address(listener: &TcpListener) -> String {
    listener.local_addr().map_or_else(
        |error| format!("unknown ({error})"),
        |address| address.to_string(),
    )
}
