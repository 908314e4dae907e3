//! `berth run`: a built-in framework that runs one command to completion and streams its
//! status, like `mesos-execute`.
//!
//! It is the protocol's [`Scheduler`] behind a [`Driver`]: it subscribes as a new framework,
//! waits for an offer that holds the task's resources, launches it, passes every status on to
//! standard output, and exits with the command's outcome. With `--volume`, the task runs on a
//! persistent volume of the framework's role: an existing one with that id if an offer holds
//! it, or else a new one on disk it reserves first (reserve, create the volume, launch, all in
//! one accept). The reservation and the volume outlive the task: a later `berth run` with the
//! same volume finds the data.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use berth_protocol::Address;
use berth_protocol::bounded::Name;
use berth_protocol::ids::{ExecutorId, FrameworkId, Principal, Role, TaskId, VolumeId};
use berth_protocol::message::{OperationKind, OperationState, TaskSpec};
use berth_protocol::operation::conversion;
use berth_protocol::registry::FrameworkInfo;
use berth_protocol::resources::{ContainerPath, PersistentVolume, Resources};
use berth_protocol::scheduler::{Scheduler, SchedulerAction, SchedulerConfig, SchedulerEvent};
use berth_protocol::task::{TaskCommand, TaskState};
use tokio::sync::{mpsc, oneshot};

use crate::client::client_address;
use crate::driver::{Driver, DriverConfig};
use crate::transport::{ClusterSecret, Network, NetworkConfig};

/// A persistent volume for `berth run --volume ID:SIZE:PATH`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeRequest {
    /// The volume's id.
    pub id: VolumeId,
    /// Its size in MiB (disk).
    pub size_mb: u64,
    /// Where the task sees it, relative to its sandbox.
    pub path: ContainerPath,
}

impl std::str::FromStr for VolumeRequest {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut parts = text.splitn(3, ':');
        let (Some(id), Some(size), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            return Err("a volume is ID:SIZE_MB:PATH, for example data:64:data".to_string());
        };
        Ok(VolumeRequest {
            id: VolumeId::new(id).map_err(|error| format!("volume id {id:?}: {error}"))?,
            size_mb: size
                .parse()
                .ok()
                .filter(|size| *size > 0)
                .ok_or_else(|| format!("volume size {size:?} is not a positive number of MiB"))?,
            path: ContainerPath::new(path)
                .map_err(|error| format!("volume path {path:?}: {error}"))?,
        })
    }
}

/// What to run, and where.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The masters.
    pub masters: Vec<Address>,
    /// The cluster's name.
    pub cluster: Name,
    /// The cluster's secret.
    pub secret: ClusterSecret,
    /// The framework's name.
    pub name: Name,
    /// Its role.
    pub role: Role,
    /// Its principal.
    pub principal: Principal,
    /// The task's cpus, e.g. `0.5`.
    pub cpus: String,
    /// The task's memory in MiB.
    pub mem: u64,
    /// A persistent volume for the task.
    pub volume: Option<VolumeRequest>,
    /// The command line, run with `sh -c`.
    pub command: String,
    /// Give up after this long without the task ending; `None` waits for ever.
    pub timeout: Option<Duration>,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunOutcome {
    /// The framework it ran as.
    pub framework: Option<FrameworkId>,
    /// The task's last state.
    pub state: Option<TaskState>,
}

/// The task's resources and the alternatives to submit: without a volume, a launch on
/// unreserved resources; with one, a launch on the role's existing volume, or else reserve,
/// create the volume and launch.
pub fn plan(options: &RunOptions, task: &TaskId) -> anyhow::Result<Vec<Vec<OperationKind>>> {
    let base = format!("cpus:{};mem:{}", options.cpus, options.mem);
    let spec = |resources: Resources| TaskSpec {
        task: task.clone(),
        executor: ExecutorId::new(task.as_str()).expect("a task id is a valid executor id"),
        resources,
        command: TaskCommand::new(&options.command).expect("checked by the caller"),
    };
    let Some(volume) = &options.volume else {
        let resources = Resources::parse(&base).context("invalid --cpus or --mem")?;
        return Ok(vec![vec![OperationKind::Launch(spec(resources))]]);
    };
    let unreserved = Resources::parse(&format!("{base};disk:{}", volume.size_mb))
        .context("invalid --cpus, --mem or volume size")?;
    let reserve = OperationKind::Reserve(unreserved);
    let reserved = conversion(&reserve, &options.role, &options.principal)
        .context("the resources cannot be reserved")?
        .produced;
    let disk = reserved.filter(|key| key.name.as_str() == "disk");
    let create = OperationKind::CreateVolume {
        source: disk.clone(),
        volume: PersistentVolume {
            id: volume.id.clone(),
            container_path: volume.path.clone(),
        },
    };
    let with_volume = conversion(&create, &options.role, &options.principal)
        .context("the volume cannot be created on the reserved disk")?
        .produced;
    let task_resources = reserved
        .checked_sub(&disk)
        .and_then(|rest| rest.checked_add(&with_volume))
        .context("the task's resources")?;
    let launch = OperationKind::Launch(spec(task_resources));
    Ok(vec![vec![launch.clone()], vec![reserve, create, launch]])
}

/// A framework in this process: the protocol's scheduler behind a driver, on its own task.
/// The application sends it [`SchedulerEvent`]s and reads its [`SchedulerAction`]s; the
/// network's connection ends reach it too ([`forward_connection_ends`]).
pub struct Framework {
    /// The application's requests.
    pub events: mpsc::Sender<SchedulerEvent>,
    /// What the scheduler tells the application.
    pub actions: mpsc::UnboundedReceiver<SchedulerAction>,
    stop: Option<oneshot::Sender<()>>,
    driving: tokio::task::JoinHandle<Result<(), crate::driver::DriverError>>,
    state_dir: PathBuf,
}

impl Framework {
    /// Starts a new framework with `info`, reaching the cluster through `masters`. Its
    /// checkpoint lives in a scratch directory removed by [`Framework::stop`].
    pub fn start(
        masters: Vec<Address>,
        info: FrameworkInfo,
        cluster: Name,
        secret: ClusterSecret,
    ) -> anyhow::Result<Framework> {
        let config =
            SchedulerConfig::new(client_address(), masters, info).context("invalid --masters")?;
        let state_dir = scratch_directory()?;
        let (driver, status) = Driver::open(
            &state_dir,
            &config,
            |scheduler: &Scheduler| scheduler.phase().clone(),
            DriverConfig::default(),
        )?;
        drop(status);
        let (events, events_receiver) = mpsc::channel(64);
        let (actions_sender, actions) = mpsc::unbounded_channel::<SchedulerAction>();
        let (stop, stopped) = oneshot::channel::<()>();
        let network_config = NetworkConfig {
            address: config.address().clone(),
            cluster,
            secret,
        };
        let connection_events = events.clone();
        let driving = tokio::spawn(async move {
            let (network, inbox) = Network::new(network_config);
            let forwarding = tokio::spawn(forward_connection_ends(
                network.connection_ends(),
                connection_events,
            ));
            let result = driver
                .run(
                    &network,
                    inbox,
                    Some(events_receiver),
                    move |action| {
                        let _ = actions_sender.send(action);
                    },
                    async {
                        let _ = stopped.await;
                    },
                )
                .await;
            network.shutdown().await;
            forwarding.abort();
            result
        });
        Ok(Framework {
            events,
            actions,
            stop: Some(stop),
            driving,
            state_dir,
        })
    }

    /// Stops the scheduler and removes its scratch state.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = (&mut self.driving).await;
        if let Err(error) = std::fs::remove_dir_all(&self.state_dir) {
            tracing::debug!(directory = %self.state_dir.display(), %error, "cannot remove the scheduler's state");
        }
        result.context("the scheduler's task panicked")??;
        Ok(())
    }
}

/// Tells a scheduler of every connection of its network that ends, as
/// [`SchedulerEvent::ConnectionLost`], until `ends` closes (the network shut down) or the
/// scheduler's event channel does. With it, the scheduler notices that its leader's process
/// died as soon as the connection breaks, instead of after its leader-silence timeout.
pub async fn forward_connection_ends(
    mut ends: mpsc::Receiver<Address>,
    events: mpsc::Sender<SchedulerEvent>,
) {
    while let Some(peer) = ends.recv().await {
        if events
            .send(SchedulerEvent::ConnectionLost(peer))
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Runs the command; prints each status; returns how it ended.
pub async fn run(options: RunOptions) -> anyhow::Result<RunOutcome> {
    TaskCommand::new(&options.command).context("the command is too long")?;
    let random = client_address();
    let task =
        TaskId::new(&format!("run-{}", &random.as_str()["client-".len()..])).expect("a short id");
    let alternatives = plan(&options, &task)?;
    let info = FrameworkInfo {
        name: options.name.clone(),
        role: options.role.clone(),
        principal: options.principal.clone(),
        failover_timeout: Duration::from_secs(7 * 24 * 3600),
    };
    let mut framework = Framework::start(
        options.masters.clone(),
        info,
        options.cluster.clone(),
        options.secret.clone(),
    )?;
    framework
        .events
        .send(SchedulerEvent::SubmitFirstFitting(alternatives))
        .await
        .context("the scheduler stopped")?;
    let outcome = watch_task(
        &mut framework.actions,
        &task,
        &options.role,
        options.timeout,
    )
    .await;
    framework.stop().await?;
    Ok(outcome)
}

/// Prints the scheduler's actions until `task` ends (or `timeout` passes).
async fn watch_task(
    actions: &mut mpsc::UnboundedReceiver<SchedulerAction>,
    task: &TaskId,
    role: &Role,
    timeout: Option<Duration>,
) -> RunOutcome {
    let mut outcome = RunOutcome {
        framework: None,
        state: None,
    };
    let deadline = timeout.map(|timeout| tokio::time::Instant::now() + timeout);
    loop {
        let next = match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, actions.recv()).await {
                Ok(next) => next,
                Err(_) => {
                    println!(
                        "gave up: the task did not end within {:?}",
                        timeout.unwrap_or_default()
                    );
                    break;
                }
            },
            None => actions.recv().await,
        };
        let Some(action) = next else {
            break;
        };
        match action {
            SchedulerAction::Subscribed(framework) => {
                println!("subscribed as framework {framework} (role {role})");
                outcome.framework = Some(framework);
            }
            SchedulerAction::Operation { operation, state } => match state {
                OperationState::Finished => println!("operation {operation}: finished"),
                OperationState::Failed(failure) => {
                    println!("operation {operation}: failed ({failure:?})");
                }
            },
            SchedulerAction::Status {
                task: status_task,
                agent,
                state,
                reason,
            } if status_task == *task => {
                let agent = agent.map_or_else(|| "-".to_string(), |agent| agent.to_string());
                match reason {
                    Some(reason) => println!("task {task}: {state} on agent {agent} ({reason:?})"),
                    None => println!("task {task}: {state} on agent {agent}"),
                }
                outcome.state = Some(state);
                if state.is_terminal() {
                    break;
                }
            }
            SchedulerAction::Status { .. } => {}
            SchedulerAction::Replaced => {
                println!("another scheduler took over the framework");
                break;
            }
            SchedulerAction::Refused(reason) => {
                println!("the leader refused the subscription: {reason:?}");
                break;
            }
        }
    }
    outcome
}

/// A fresh directory for the scheduler's checkpoint: a run is one framework, and its state
/// is removed at the end.
fn scratch_directory() -> anyhow::Result<PathBuf> {
    let name = format!(
        "berth-run-{}-{}",
        std::process::id(),
        &client_address().as_str()["client-".len()..]
    );
    let directory = std::env::temp_dir().join(name);
    std::fs::create_dir_all(&directory)
        .with_context(|| format!("cannot create {}", directory.display()))?;
    Ok(directory)
}
