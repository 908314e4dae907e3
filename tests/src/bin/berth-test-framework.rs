//! `berth-test-framework`: a small framework for the fault tests, run as a process of its own
//! so that a test can kill it, pause it, partition it and start a second instance of it.
//!
//! It is the protocol's scheduler behind the node's driver, like `berth run`, with what
//! `berth run` does not offer: it fails over to an existing framework (`--framework ID`),
//! takes a failover timeout and a leader-silence timeout, launches and kills many tasks, and
//! reports the leader it follows.
//!
//! Standard input, one command a line:
//!
//! ```text
//! launch TASK RESOURCES COMMAND...   launch TASK (its own executor) with RESOURCES, e.g. cpus:0.1;mem:16
//! kill TASK
//! ```
//!
//! Standard output, one event a line, flushed at once:
//!
//! ```text
//! subscribed FRAMEWORK
//! leader ADDRESS TERM            the scheduler follows the leader at ADDRESS, of TERM
//! leader - -                     it is looking for the leader
//! status TASK STATE AGENT REASON AGENT and REASON are - when unknown
//! operation ID finished|failed
//! replaced                       another scheduler took the framework over: this one stops
//! refused REASON
//! ```
//!
//! The scheduler's checkpoint lives in `--state-dir`: an instance started again on the same
//! directory resumes the same framework.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use berth_node::driver::{Driver, DriverConfig};
use berth_node::transport::{ClusterSecret, Network, NetworkConfig};
use berth_protocol::Address;
use berth_protocol::bounded::Name;
use berth_protocol::ids::{ExecutorId, FrameworkId, Principal, Role, TaskId};
use berth_protocol::message::{OperationState, TaskSpec};
use berth_protocol::registry::FrameworkInfo;
use berth_protocol::resources::Resources;
use berth_protocol::scheduler::{
    Scheduler, SchedulerAction, SchedulerConfig, SchedulerEvent, SchedulerPhase,
};
use berth_protocol::task::TaskCommand;
use tokio::sync::mpsc;

/// The most commands waiting for the scheduler.
const COMMANDS_QUEUED_MAX: usize = 256;

/// The command line.
struct Options {
    masters: Vec<Address>,
    secret_file: PathBuf,
    cluster: Name,
    name: Name,
    role: Role,
    failover_timeout: Duration,
    leader_silence: Duration,
    framework: Option<FrameworkId>,
    state_dir: PathBuf,
}

impl Options {
    fn parse(mut args: impl Iterator<Item = String>) -> anyhow::Result<Options> {
        let mut masters = None;
        let mut secret_file = None;
        let mut cluster = "berth".to_string();
        let mut name = "faults".to_string();
        let mut role = "default".to_string();
        let mut failover_timeout_ms: u64 = 7 * 24 * 3600 * 1000;
        let mut leader_silence_ms: u64 = 5000;
        let mut framework = None;
        let mut state_dir = None;
        while let Some(flag) = args.next() {
            let value = args
                .next()
                .with_context(|| format!("{flag} needs a value"))?;
            match flag.as_str() {
                "--masters" => masters = Some(value),
                "--secret-file" => secret_file = Some(PathBuf::from(value)),
                "--cluster" => cluster = value,
                "--name" => name = value,
                "--role" => role = value,
                "--failover-timeout-ms" => failover_timeout_ms = value.parse()?,
                "--leader-silence-ms" => leader_silence_ms = value.parse()?,
                "--framework" => framework = Some(value),
                "--state-dir" => state_dir = Some(PathBuf::from(value)),
                other => bail!("unknown flag {other}"),
            }
        }
        let masters = masters
            .context("--masters IP:PORT,... is required")?
            .split(',')
            .map(|address| Address::new(address.trim()).context("a master address"))
            .collect::<anyhow::Result<Vec<Address>>>()?;
        Ok(Options {
            masters,
            secret_file: secret_file.context("--secret-file is required")?,
            cluster: Name::new(&cluster).context("--cluster")?,
            name: Name::new(&name).context("--name")?,
            role: role.parse().context("--role")?,
            failover_timeout: Duration::from_millis(failover_timeout_ms),
            leader_silence: Duration::from_millis(leader_silence_ms),
            framework: framework
                .map(|id| id.parse().context("--framework"))
                .transpose()?,
            state_dir: state_dir.context("--state-dir is required")?,
        })
    }
}

fn main() -> anyhow::Result<()> {
    berth_node::logging::init(berth_node::logging::LogFormat::Text);
    let options = Options::parse(std::env::args().skip(1))?;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("start the runtime")?
        .block_on(run(options))
}

async fn run(options: Options) -> anyhow::Result<()> {
    let info = FrameworkInfo {
        name: options.name.clone(),
        role: options.role.clone(),
        principal: Principal::new(options.role.as_str()).context("the role as a principal")?,
        failover_timeout: options.failover_timeout,
    };
    let mut config = SchedulerConfig::new(
        berth_node::client::client_address(),
        options.masters.clone(),
        info,
    )
    .context("invalid --masters")?
    .with_leader_silence_timeout(options.leader_silence);
    if let Some(framework) = options.framework {
        config = config.with_framework(framework);
    }
    std::fs::create_dir_all(&options.state_dir)
        .with_context(|| format!("create {}", options.state_dir.display()))?;
    let (driver, mut phase) = Driver::open(
        &options.state_dir,
        &config,
        |scheduler: &Scheduler| scheduler.phase().clone(),
        DriverConfig::default(),
    )?;
    let secret = ClusterSecret::read(&options.secret_file)?;
    let (network, inbox) = Network::new(NetworkConfig {
        address: config.address().clone(),
        cluster: options.cluster.clone(),
        secret,
    });
    let (events, events_receiver) = mpsc::channel(COMMANDS_QUEUED_MAX);
    tokio::spawn(berth_node::run::forward_connection_ends(
        network.connection_ends(),
        events.clone(),
    ));
    std::thread::spawn(move || read_commands(&events));
    tokio::spawn(async move {
        loop {
            let line = match &*phase.borrow_and_update() {
                SchedulerPhase::Subscribed { leader, term } => format!("leader {leader} {term}"),
                SchedulerPhase::Subscribing { .. } | SchedulerPhase::Replaced => {
                    "leader - -".to_string()
                }
            };
            emit(&line);
            if phase.changed().await.is_err() {
                break;
            }
        }
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut stop = Some(stop);
    let result = driver
        .run(
            &network,
            inbox,
            Some(events_receiver),
            move |action| {
                if report(&action)
                    && let Some(stop) = stop.take()
                {
                    let _ = stop.send(());
                }
            },
            async {
                tokio::select! {
                    _ = stopped => {}
                    () = berth_node::cli::shutdown_signal() => {}
                }
            },
        )
        .await;
    network.shutdown().await;
    result.context("the scheduler's driver failed")
}

/// Prints `action`; whether the scheduler has stopped for good.
fn report(action: &SchedulerAction) -> bool {
    match action {
        SchedulerAction::Subscribed(framework) => emit(&format!("subscribed {framework}")),
        SchedulerAction::Status {
            task,
            agent,
            state,
            reason,
        } => {
            let agent = agent.map_or_else(|| "-".to_string(), |agent| agent.to_string());
            let reason = reason.map_or_else(|| "-".to_string(), |reason| format!("{reason:?}"));
            emit(&format!("status {task} {state} {agent} {reason}"));
        }
        SchedulerAction::Operation { operation, state } => match state {
            OperationState::Finished => emit(&format!("operation {operation} finished")),
            OperationState::Failed(failure) => {
                emit(&format!("operation {operation} failed {failure:?}"));
            }
        },
        SchedulerAction::Replaced => {
            emit("replaced");
            return true;
        }
        SchedulerAction::Refused(reason) => {
            emit(&format!("refused {reason:?}"));
            return true;
        }
    }
    false
}

fn emit(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

/// Reads commands from standard input until it closes, and hands them to the scheduler.
fn read_commands(events: &mpsc::Sender<SchedulerEvent>) {
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        match parse_command(&line) {
            Ok(Some(event)) => {
                if events.blocking_send(event).is_err() {
                    break;
                }
            }
            Ok(None) => {}
            Err(error) => eprintln!("ignored the command {line:?}: {error:#}"),
        }
    }
}

fn parse_command(line: &str) -> anyhow::Result<Option<SchedulerEvent>> {
    let mut words = line.trim().splitn(4, ' ');
    match (words.next(), words.next(), words.next(), words.next()) {
        (None | Some(""), ..) => Ok(None),
        (Some("launch"), Some(task), Some(resources), Some(command)) => {
            let spec = TaskSpec {
                task: TaskId::new(task).context("task id")?,
                executor: ExecutorId::new(task).context("executor id")?,
                resources: Resources::parse(resources).context("resources")?,
                command: TaskCommand::new(command).context("command")?,
            };
            Ok(Some(SchedulerEvent::Launch(spec)))
        }
        (Some("kill"), Some(task), None, None) => Ok(Some(SchedulerEvent::Kill(
            TaskId::new(task).context("task id")?,
        ))),
        _ => bail!("expected `launch TASK RESOURCES COMMAND` or `kill TASK`"),
    }
}
