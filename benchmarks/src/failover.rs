//! `berth-bench failover`: `kill -9` of the leader of three masters in a cluster with agents
//! and a running framework, and the time until the cluster works again.
//!
//! * **Masters.** Three real `berth master` child processes on loopback, with default
//!   settings (election timeout 500–1000 ms, heartbeat 100 ms, agent and scheduler pings
//!   every second), each with its data directory on disk.
//! * **Agents.** `--agents` real `berth agent` child processes, each with its own work
//!   directory and listening port, all given the three masters. A few of them run tasks,
//!   each in a real `berth executor` process. Real processes rather than the in-process
//!   agent machines of [`launch`](crate::launch): those dial the master and do not listen,
//!   so a new leader could not call them as it calls real agents after a failover.
//! * **Framework.** One protocol [`Scheduler`] in this process (state in memory, its own
//!   connection, default settings unless `--framework-silence-ms` is given), told when a
//!   connection of its network ends, as `berth run` tells its scheduler. It launches
//!   `--tasks` tasks (`sleep 3600`, each taking most of an agent's cpus, so they land on
//!   different agents) and keeps one more task queued that no agent can hold, so that it
//!   always wants offers: it declines every offer it cannot use, and the leader offers each
//!   agent again when the decline filter (5 s) ends. Offers therefore keep flowing.
//! * **Observed.** Every process's log is read by this process, which timestamps each line
//!   as it arrives: a master's `became the leader` and `following a new leader` (with the
//!   term), and an agent's `registered with the leader` (with the term), which the agent
//!   writes in the step that handles the leader's answer to its registration. The
//!   framework's offers are seen in the scheduler's own step: the scheduler answers every
//!   offer of its leader at once (decline or accept), and the benchmark takes the time as
//!   the answer leaves.
//! * **Measured.** Each repetition waits until the cluster is stable (the three masters
//!   agree on a leader, every agent is registered with it, the framework answered an offer
//!   from it, every task is `RUNNING`), pauses 1–2 s at random, takes the time and sends
//!   `SIGKILL` to the leader. From that moment: (a) the two survivors agree on a new leader
//!   in a higher term (the later of the new leader's and the other survivor's lines),
//!   (b) every agent has registered with the new leader in its term (the last agent's
//!   line), (c) the framework answers an offer from the new leader. The killed master then
//!   restarts on its data directory, and the next repetition kills whoever leads.
//! * **Checked.** The framework hears of no task leaving `RUNNING`, and at the end every
//!   executor is still the process that started.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use berth_node::transport::{ClusterSecret, Network, NetworkConfig};
use berth_protocol::Address;
use berth_protocol::bounded::Name;
use berth_protocol::ids::{ExecutorId, Principal, Role, TaskId};
use berth_protocol::message::{Message, TaskSpec};
use berth_protocol::note::Note;
use berth_protocol::registry::FrameworkInfo;
use berth_protocol::resources::Resources;
use berth_protocol::scheduler::{Scheduler, SchedulerAction, SchedulerConfig, SchedulerEvent};
use berth_protocol::task::{TaskCommand, TaskState};
use rand::Rng;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::sim::{Host, SimNode};
use crate::stats::{Summary, millis};

/// What to measure.
#[derive(Clone, Debug, clap::Args)]
pub struct FailoverOptions {
    /// `berth agent` processes.
    #[arg(long, default_value_t = 100)]
    pub agents: usize,
    /// Failovers measured.
    #[arg(long, default_value_t = 20)]
    pub runs: u32,
    /// Tasks the framework keeps running (one per agent).
    #[arg(long, default_value_t = 10)]
    pub tasks: usize,
    /// Each agent's resources.
    #[arg(long, default_value = "cpus:2;mem:2048")]
    pub agent_resources: String,
    /// Each task's resources (more than half an agent's cpus: one task per agent).
    #[arg(long, default_value = "cpus:1.5;mem:64")]
    pub task_resources: String,
    /// Each task's command.
    #[arg(long, default_value = "sleep 3600")]
    pub command: String,
    /// The framework's leader-silence timeout, in milliseconds [default: the scheduler's
    /// default, 5,000]: how long its scheduler hears nothing from its leader before it
    /// looks for the leader again.
    #[arg(long)]
    pub framework_silence_ms: Option<u64>,
    /// Print the summary as a Markdown table.
    #[arg(long)]
    pub markdown: bool,
    /// The `berth` binary [default: `berth` next to this one].
    #[arg(long)]
    pub berth: Option<PathBuf>,
    /// Give up on a phase (start-up, one failover) after this many seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout_s: u64,
}

/// The target for each phase, at the 99th percentile.
const TARGET: Duration = Duration::from_secs(2);
/// The cluster name every node is given.
const CLUSTER: &str = "bench";
/// How many masters.
const MASTERS: usize = 3;

const BECAME_LEADER_LINE: &str = "became the leader";
const FOLLOWING_LINE: &str = "following a new leader";
const STEPPED_DOWN_LINE: &str = "stepped down as leader";
const REGISTERED_LINE: &str = "registered with the leader";

/// Which child process a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    /// A master, by index (its id is index + 1).
    Master(usize),
    /// An agent, by index.
    Agent(usize),
}

/// What the framework's scheduler did.
#[derive(Debug)]
enum FrameworkEvent {
    Subscribed,
    Status(TaskId, TaskState),
    /// It answered an offer (declined or accepted it); the offer came from this master.
    OfferAnswered(Address),
    LeaderSilent,
    LeaderConnectionLost,
    Stopped(String),
}

/// Something this process observed, with when.
#[derive(Debug)]
enum Event {
    Line {
        source: Source,
        at: Instant,
        text: String,
    },
    Framework {
        at: Instant,
        what: FrameworkEvent,
    },
}

/// The application side of the framework: forwards what the scheduler does.
struct FrameworkHost {
    events: mpsc::UnboundedSender<Event>,
}

impl FrameworkHost {
    fn send(&self, what: FrameworkEvent) {
        let _ = self.events.send(Event::Framework {
            at: Instant::now(),
            what,
        });
    }
}

impl Host<Scheduler> for FrameworkHost {
    fn act(&mut self, action: SchedulerAction, _: &mut Vec<SchedulerEvent>) {
        match action {
            SchedulerAction::Subscribed(_) => self.send(FrameworkEvent::Subscribed),
            SchedulerAction::Status { task, state, .. } => {
                self.send(FrameworkEvent::Status(task, state));
            }
            SchedulerAction::Replaced => self.send(FrameworkEvent::Stopped("replaced".into())),
            SchedulerAction::Refused(refusal) => {
                self.send(FrameworkEvent::Stopped(format!("refused: {refusal:?}")));
            }
            SchedulerAction::Operation { .. } => {}
        }
    }

    fn sent(&mut self, to: &Address, message: &Message) {
        // The scheduler answers an offer only from the leader it is subscribed with, in the
        // step that handles the offer.
        if matches!(message, Message::Decline(_) | Message::Accept(_)) {
            self.send(FrameworkEvent::OfferAnswered(to.clone()));
        }
    }

    fn noted(&mut self, note: &Note) {
        match note {
            Note::LeaderSilent { .. } => self.send(FrameworkEvent::LeaderSilent),
            Note::LeaderConnectionLost { .. } => {
                self.send(FrameworkEvent::LeaderConnectionLost);
            }
            _ => {}
        }
    }
}

/// A master as its own log lines show it.
#[derive(Clone, Debug, Default)]
struct MasterView {
    alive: bool,
    term: u64,
    /// The master it follows or is (by index).
    leader: Option<usize>,
    /// When it last wrote that it leads or follows a new leader.
    since: Option<Instant>,
}

/// Everything observed so far.
struct View {
    masters: Vec<MasterView>,
    /// Per agent: the term and time of its latest registration.
    agents: Vec<Option<(u64, Instant)>>,
    /// Per master address: the first offer the framework answered from it since the last
    /// kill.
    offers: BTreeMap<Address, Instant>,
    subscribed: Option<Instant>,
    leader_silent: u32,
    leader_connection_lost: u32,
    tasks: BTreeMap<TaskId, TaskState>,
    /// Tasks that left `RUNNING` after they first reached it, and how.
    left_running: Vec<(TaskId, TaskState)>,
    stopped: Option<String>,
}

impl View {
    fn apply(&mut self, event: Event) {
        match event {
            Event::Line {
                source: Source::Master(index),
                at,
                text,
            } => {
                let master = &mut self.masters[index];
                if text.contains(BECAME_LEADER_LINE) {
                    if let Some(term) = field(&text, "term").and_then(|t| t.parse().ok()) {
                        master.term = term;
                        master.leader = Some(index);
                        master.since = Some(at);
                    }
                } else if text.contains(FOLLOWING_LINE) {
                    let term = field(&text, "term").and_then(|t| t.parse().ok());
                    let leader = field(&text, "leader").and_then(|l| l.parse::<usize>().ok());
                    if let (Some(term), Some(leader)) = (term, leader) {
                        master.term = term;
                        master.leader = leader.checked_sub(1);
                        master.since = Some(at);
                    }
                } else if text.contains(STEPPED_DOWN_LINE) {
                    master.leader = None;
                }
            }
            Event::Line {
                source: Source::Agent(index),
                at,
                text,
            } => {
                if text.contains(REGISTERED_LINE)
                    && let Some(term) = field(&text, "term").and_then(|t| t.parse().ok())
                {
                    self.agents[index] = Some((term, at));
                }
            }
            Event::Framework { at, what } => match what {
                FrameworkEvent::Subscribed => self.subscribed = Some(at),
                FrameworkEvent::Status(task, state) => {
                    let before = self.tasks.insert(task.clone(), state);
                    if before == Some(TaskState::Running) && state != TaskState::Running {
                        self.left_running.push((task, state));
                    }
                }
                FrameworkEvent::OfferAnswered(to) => {
                    self.offers.entry(to).or_insert(at);
                }
                FrameworkEvent::LeaderSilent => self.leader_silent += 1,
                FrameworkEvent::LeaderConnectionLost => self.leader_connection_lost += 1,
                FrameworkEvent::Stopped(why) => self.stopped = Some(why),
            },
        }
    }

    /// The leader (index), its term and the time of the last line that made it so, if every
    /// live master agrees on it (the leader itself included).
    fn agreed(&self) -> Option<(usize, u64, Instant)> {
        let mut live = self.masters.iter().filter(|master| master.alive);
        let first = live.next()?;
        let leader = first.leader?;
        let term = first.term;
        let leading = &self.masters[leader];
        if !leading.alive || leading.leader != Some(leader) || leading.term != term {
            return None;
        }
        let mut at = first.since?;
        for master in live {
            if master.term != term || master.leader != Some(leader) {
                return None;
            }
            at = at.max(master.since?);
        }
        Some((leader, term, at))
    }

    /// When the last agent registered in `term`, if every one has.
    fn all_registered(&self, term: u64) -> Option<Instant> {
        self.agents
            .iter()
            .try_fold(None, |latest: Option<Instant>, agent| {
                let (registered, at) = (*agent)?;
                (registered == term).then(|| Some(latest.map_or(at, |latest| latest.max(at))))
            })?
    }

    fn running(&self) -> usize {
        self.tasks
            .values()
            .filter(|state| **state == TaskState::Running)
            .count()
    }

    fn describe(&self) -> String {
        let masters: Vec<String> = self
            .masters
            .iter()
            .enumerate()
            .map(|(index, master)| {
                format!(
                    "m{}: {} term {} leader {}",
                    index + 1,
                    if master.alive { "up" } else { "down" },
                    master.term,
                    master
                        .leader
                        .map_or_else(|| "none".to_string(), |leader| format!("m{}", leader + 1))
                )
            })
            .collect();
        let mut terms: BTreeMap<Option<u64>, usize> = BTreeMap::new();
        for agent in &self.agents {
            *terms.entry(agent.map(|(term, _)| term)).or_default() += 1;
        }
        format!(
            "masters [{}]; agents by registered term {terms:?}; framework offers answered \
             from {:?}; tasks RUNNING {}; framework stopped: {:?}",
            masters.join(", "),
            self.offers.keys().collect::<Vec<_>>(),
            self.running(),
            self.stopped
        )
    }
}

/// The value of `name=VALUE` in a text log line.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let start = line.find(&format!(" {name}="))? + name.len() + 2;
    let rest = &line[start..];
    Some(rest.split_whitespace().next().unwrap_or(rest))
}

/// The fixed parts of every node's command line.
struct Cluster {
    berth: PathBuf,
    work: PathBuf,
    secret_file: PathBuf,
    masters: Vec<Address>,
    agents: Vec<Address>,
    agent_resources: String,
    events: mpsc::UnboundedSender<Event>,
}

impl Cluster {
    fn master_work_dir(&self, index: usize) -> PathBuf {
        self.work.join(format!("master-{}", index + 1))
    }

    fn agent_work_dir(&self, index: usize) -> PathBuf {
        self.work.join(format!("agent-{}", index + 1))
    }

    /// Starts master `index` on its address and data directory (the same every time).
    fn start_master(&self, index: usize) -> anyhow::Result<tokio::process::Child> {
        let members: Vec<String> = self
            .masters
            .iter()
            .enumerate()
            .map(|(index, address)| format!("{}={address}", index + 1))
            .collect();
        let args: Vec<OsString> = vec![
            "master".into(),
            "--id".into(),
            (index + 1).to_string().into(),
            "--listen".into(),
            self.masters[index].as_str().into(),
            "--masters".into(),
            members.join(",").into(),
            "--data-dir".into(),
            self.master_work_dir(index).into(),
        ];
        self.spawn(Source::Master(index), args)
    }

    /// Starts agent `index` on its address and work directory.
    fn start_agent(&self, index: usize) -> anyhow::Result<tokio::process::Child> {
        let masters: Vec<&str> = self.masters.iter().map(Address::as_str).collect();
        let args: Vec<OsString> = vec![
            "agent".into(),
            "--masters".into(),
            masters.join(",").into(),
            "--listen".into(),
            self.agents[index].as_str().into(),
            "--work-dir".into(),
            self.agent_work_dir(index).into(),
            "--resources".into(),
            self.agent_resources.clone().into(),
            "--hostname".into(),
            format!("bench-agent-{}", index + 1).into(),
        ];
        self.spawn(Source::Agent(index), args)
    }

    /// Starts `berth ARGS... --cluster bench --secret-file F --parent-pid P`; a task reads
    /// its standard error, appends it to `<name>.log` and passes each line that matters on,
    /// with the time it was read.
    fn spawn(&self, source: Source, args: Vec<OsString>) -> anyhow::Result<tokio::process::Child> {
        let name = match source {
            Source::Master(index) => format!("master-{}", index + 1),
            Source::Agent(index) => format!("agent-{}", index + 1),
        };
        let log_path = self.work.join(format!("{name}.log"));
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("cannot open {}", log_path.display()))?;
        let mut command = tokio::process::Command::new(&self.berth);
        // Settings come from the flags alone.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("BERTH_") {
                command.env_remove(name);
            }
        }
        command
            .args(args)
            .args(["--cluster", CLUSTER])
            .arg("--secret-file")
            .arg(&self.secret_file)
            .args(["--parent-pid", &std::process::id().to_string()])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {}", self.berth.display()))?;
        let stderr = child.stderr.take().context("standard error is piped")?;
        let events = self.events.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(text)) = lines.next_line().await {
                let at = Instant::now();
                let _ = writeln!(log, "{text}");
                if text.contains(BECAME_LEADER_LINE)
                    || text.contains(FOLLOWING_LINE)
                    || text.contains(STEPPED_DOWN_LINE)
                    || text.contains(REGISTERED_LINE)
                {
                    let _ = events.send(Event::Line { source, at, text });
                }
            }
        });
        Ok(child)
    }
}

/// Loopback ports below Linux's default range of ephemeral ports (32768–60999), free at the
/// time of asking: a port the kernel handed out to this process and released could be taken
/// by any of the hundreds of connections the nodes open before the node meant for it
/// listens.
fn free_ports(count: usize) -> anyhow::Result<Vec<u16>> {
    const FIRST: u16 = 20_000;
    const LAST: u16 = 32_000;
    let start = rand::rng().random_range(FIRST..LAST);
    let mut listeners = Vec::new();
    for port in (start..LAST).chain(FIRST..start) {
        if listeners.len() == count {
            break;
        }
        if let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            listeners.push(listener);
        }
    }
    anyhow::ensure!(
        listeners.len() == count,
        "only {} free loopback ports in {FIRST}-{LAST}",
        listeners.len()
    );
    listeners
        .iter()
        .map(|listener| Ok(listener.local_addr().context("a bound port")?.port()))
        .collect()
}

/// One failover's figures, from just before `kill(2)`.
struct RunResult {
    killed: usize,
    old_term: u64,
    leader: usize,
    term: u64,
    elected: Duration,
    registered: Duration,
    resubscribed: Option<Duration>,
    offered: Duration,
}

/// Runs the benchmark and prints its figures.
pub async fn run(options: &FailoverOptions) -> anyhow::Result<()> {
    anyhow::ensure!(
        options.agents > 0 && options.tasks <= options.agents,
        "--agents must be positive and at least --tasks"
    );
    Resources::parse(&options.agent_resources).context("invalid --agent-resources")?;

    let task_resources =
        Resources::parse(&options.task_resources).context("invalid --task-resources")?;
    let limit = crate::raise_open_files_limit()?;
    println!(
        "failover: {MASTERS} masters, {} agents ({}), a framework with {} tasks ({}, {:?}), {} \
         failovers; open files limit {limit}",
        options.agents,
        options.agent_resources,
        options.tasks,
        options.task_resources,
        options.command,
        options.runs
    );
    let berth = crate::berth_binary(options.berth.as_deref())?;
    let work = crate::scratch_directory("failover")?;
    let secret = ClusterSecret::generate();
    let secret_file = work.join("secret");
    secret
        .write_new_file(&secret_file)
        .context("cannot write the secret file")?;
    let mut ports = free_ports(MASTERS + options.agents)?.into_iter();
    let address = |port: u16| Address::new(&format!("127.0.0.1:{port}")).expect("an address");
    let masters: Vec<Address> = ports.by_ref().take(MASTERS).map(address).collect();
    let agents: Vec<Address> = ports.map(address).collect();
    let (events_sender, events) = mpsc::unbounded_channel();
    let cluster = Cluster {
        berth,
        work: work.clone(),
        secret_file,
        masters,
        agents,
        agent_resources: options.agent_resources.clone(),
        events: events_sender.clone(),
    };
    let (stop, stopped) = watch::channel(false);
    let mut bench = Bench {
        options,
        cluster: &cluster,
        masters: Vec::new(),
        agents: Vec::new(),
        events,
        view: View {
            masters: vec![MasterView::default(); MASTERS],
            agents: vec![None; options.agents],
            offers: BTreeMap::new(),
            subscribed: None,
            leader_silent: 0,
            leader_connection_lost: 0,
            tasks: BTreeMap::new(),
            left_running: Vec::new(),
            stopped: None,
        },
        timeout: Duration::from_secs(options.timeout_s),
    };
    let result = bench
        .measure(
            &secret,
            &task_resources,
            &events_sender,
            stopped,
            options.framework_silence_ms.map(Duration::from_millis),
        )
        .await;
    let _ = stop.send(true);
    for agent in &mut bench.agents {
        let _ = agent.start_kill();
    }
    for agent in &mut bench.agents {
        let _ = agent.wait().await;
    }
    let work_dirs: Vec<PathBuf> = (0..options.agents)
        .map(|index| cluster.agent_work_dir(index))
        .collect();
    let stopped_executors = berth_node::local::stop_executors(&work_dirs).await;
    println!("stopped {stopped_executors} executors");
    for master in bench.masters.iter_mut().flatten() {
        let _ = master.start_kill();
        let _ = master.wait().await;
    }
    match &result {
        Ok(()) => {
            if let Err(error) = std::fs::remove_dir_all(&work) {
                eprintln!("cannot remove {}: {error}", work.display());
            }
        }
        Err(_) => println!(
            "kept {} (master-N.log, agent-N.log, agent-N/)",
            work.display()
        ),
    }
    result
}

/// The benchmark's processes and what it observed of them.
struct Bench<'a> {
    options: &'a FailoverOptions,
    cluster: &'a Cluster,
    masters: Vec<Option<tokio::process::Child>>,
    agents: Vec<tokio::process::Child>,
    events: mpsc::UnboundedReceiver<Event>,
    view: View,
    timeout: Duration,
}

impl Bench<'_> {
    async fn measure(
        &mut self,
        secret: &ClusterSecret,
        task_resources: &Resources,
        events: &mpsc::UnboundedSender<Event>,
        stopped: watch::Receiver<bool>,
        framework_silence: Option<Duration>,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        for index in 0..MASTERS {
            self.masters.push(Some(self.cluster.start_master(index)?));
            self.view.masters[index].alive = true;
        }
        let (leader, term, _) = self
            .wait_for("a leader among the masters", |view| view.agreed())
            .await?;
        println!(
            "  m{} leads in term {term} after {:.2} s",
            leader + 1,
            started.elapsed().as_secs_f64()
        );
        let agents_started = Instant::now();
        for index in 0..self.options.agents {
            let agent = self.cluster.start_agent(index)?;
            self.agents.push(agent);
        }
        self.wait_for("every agent registered", |view| {
            let (_, term, _) = view.agreed()?;
            view.all_registered(term)
        })
        .await?;
        println!(
            "  {} agents registered {:.2} s after they started",
            self.options.agents,
            agents_started.elapsed().as_secs_f64()
        );
        let framework_started = Instant::now();
        self.start_framework(secret, task_resources, events, stopped, framework_silence)?;
        let tasks = self.options.tasks;
        self.wait_for("every task RUNNING", |view| {
            (view.running() == tasks).then_some(())
        })
        .await?;
        println!(
            "  the framework subscribed and has {tasks} tasks RUNNING after {:.2} s",
            framework_started.elapsed().as_secs_f64()
        );
        let executors = executor_pids(
            &(0..self.options.agents)
                .map(|index| self.cluster.agent_work_dir(index))
                .collect::<Vec<_>>(),
        );
        anyhow::ensure!(
            executors.len() == tasks,
            "{} executor processes for {tasks} tasks",
            executors.len()
        );

        let mut results = Vec::new();
        for run in 1..=self.options.runs {
            let result = self.failover(run).await?;
            println!(
                "  run {run}: killed m{} (term {}); m{} leads in term {}: elected {}, \
                 {} agents re-registered {}, framework re-subscribed {}, offer from the new \
                 leader {}",
                result.killed + 1,
                result.old_term,
                result.leader + 1,
                result.term,
                millis(result.elected),
                self.options.agents,
                millis(result.registered),
                result.resubscribed.map_or_else(|| "-".to_string(), millis),
                millis(result.offered),
            );
            results.push(result);
        }
        // The tasks: nothing but RUNNING heard, every executor the same process.
        let executors_alive = executors
            .values()
            .filter(|pid| berth_node::process::process_is_running(**pid))
            .count();
        let now = executor_pids(
            &(0..self.options.agents)
                .map(|index| self.cluster.agent_work_dir(index))
                .collect::<Vec<_>>(),
        );
        println!(
            "tasks: {} of {tasks} RUNNING as the framework last heard; {} left RUNNING during \
             the runs {:?}; executors alive and unchanged: {executors_alive} of {} (pid files \
             unchanged: {})",
            self.view.running(),
            self.view.left_running.len(),
            self.view.left_running,
            executors.len(),
            now == executors
        );
        println!(
            "the framework's scheduler noticed its leader's silence {} times and lost its \
             connection to its leader {} times",
            self.view.leader_silent, self.view.leader_connection_lost
        );
        summarize(self.options, &results);
        anyhow::ensure!(
            self.view.left_running.is_empty() && self.view.running() == tasks,
            "tasks were lost across the failovers: {:?}",
            self.view.left_running
        );
        anyhow::ensure!(
            executors_alive == executors.len() && now == executors,
            "executors died or changed across the failovers"
        );
        Ok(())
    }

    fn start_framework(
        &self,
        secret: &ClusterSecret,
        task_resources: &Resources,
        events: &mpsc::UnboundedSender<Event>,
        mut stopped: watch::Receiver<bool>,
        silence: Option<Duration>,
    ) -> anyhow::Result<()> {
        let command = TaskCommand::new(&self.options.command).context("invalid --command")?;
        let address = berth_node::client::client_address();
        let info = FrameworkInfo {
            name: Name::new("failover").expect("a valid name"),
            role: Role::new("bench").expect("a valid role"),
            principal: Principal::new("bench").expect("a valid principal"),
            failover_timeout: Duration::from_secs(3600),
        };
        let mut config = SchedulerConfig::new(address.clone(), self.cluster.masters.clone(), info)
            .context("the scheduler's configuration")?;
        if let Some(silence) = silence {
            config = config.with_leader_silence_timeout(silence);
        }
        let network_config = NetworkConfig {
            address,
            cluster: Name::new(CLUSTER).expect("a valid name"),
            secret: secret.clone(),
        };
        let mut host = FrameworkHost {
            events: events.clone(),
        };
        let (submit, mut scheduler_events) = mpsc::channel(self.options.tasks + 1);
        let spec = |id: &str, resources: Resources| TaskSpec {
            task: TaskId::new(id).expect("a valid id"),
            executor: ExecutorId::new(id).expect("a valid id"),
            resources,
            command: command.clone(),
        };
        for index in 0..self.options.tasks {
            submit
                .try_send(SchedulerEvent::Launch(spec(
                    &format!("task-{index}"),
                    task_resources.clone(),
                )))
                .expect("the queue holds every task");
        }
        // A task no agent can hold: the framework keeps wanting offers.
        let waiting = Resources::parse(&format!(
            "cpus:{}",
            self.agent_cpus().saturating_mul(2).max(1)
        ))
        .context("the waiting task's resources")?;
        submit
            .try_send(SchedulerEvent::Launch(spec("waiting", waiting)))
            .expect("the queue holds every task");
        tokio::spawn(async move {
            // Holds the scheduler's input open for as long as it runs.
            let submit = submit;
            let (network, mut inbox) = Network::new(network_config);
            // The scheduler hears at once when its connection to a master ends, as a
            // framework started by `berth run` does.
            tokio::spawn(berth_node::run::forward_connection_ends(
                network.connection_ends(),
                submit.clone(),
            ));
            let Ok(mut node) =
                SimNode::<Scheduler>::boot(&config, Default::default(), &network, &mut host);
            let shutdown = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            node.run(
                &network,
                &mut inbox,
                &mut scheduler_events,
                &mut host,
                shutdown,
            )
            .await;
            network.shutdown().await;
        });
        Ok(())
    }

    /// An agent's cpus, rounded up.
    fn agent_cpus(&self) -> u64 {
        self.cluster
            .agent_resources
            .split(';')
            .find_map(|part| part.strip_prefix("cpus:"))
            .and_then(|cpus| cpus.parse::<f64>().ok())
            .map_or(1, |cpus| cpus.ceil() as u64)
    }

    /// Applies events until `done` says yes; fails after the timeout.
    async fn wait_for<T>(
        &mut self,
        what: &str,
        mut done: impl FnMut(&View) -> Option<T>,
    ) -> anyhow::Result<T> {
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some(value) = done(&self.view) {
                return Ok(value);
            }
            if let Some(why) = &self.view.stopped {
                anyhow::bail!("the framework's scheduler stopped ({why}) waiting for {what}");
            }
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(event)) => self.view.apply(event),
                Ok(None) => anyhow::bail!("no more events waiting for {what}"),
                Err(_) => {
                    let exited = self.exited();
                    anyhow::bail!(
                        "no {what} within {:?}: {}; {exited}",
                        self.timeout,
                        self.view.describe()
                    )
                }
            }
        }
    }

    /// Which of the processes exited, and how.
    fn exited(&mut self) -> String {
        let mut exited = Vec::new();
        for (index, master) in self.masters.iter_mut().enumerate() {
            if let Some(Ok(Some(status))) = master.as_mut().map(tokio::process::Child::try_wait) {
                exited.push(format!("master-{} {status}", index + 1));
            }
        }
        for (index, agent) in self.agents.iter_mut().enumerate() {
            if let Ok(Some(status)) = agent.try_wait() {
                exited.push(format!("agent-{} {status}", index + 1));
            }
        }
        format!("exited: {exited:?} (their logs: master-N.log, agent-N.log)")
    }

    /// Applies events for `duration`.
    async fn pause(&mut self, duration: Duration) {
        let until = Instant::now() + duration;
        while let Ok(Some(event)) = tokio::time::timeout_at(until, self.events.recv()).await {
            self.view.apply(event);
        }
    }

    async fn failover(&mut self, run: u32) -> anyhow::Result<RunResult> {
        let tasks = self.options.tasks;
        let cluster = self.cluster;
        let (old_leader, old_term) = self
            .wait_for("a stable cluster", |view| {
                let (leader, term, _) = view.agreed()?;
                (view.masters.iter().all(|master| master.alive)
                    && view.all_registered(term).is_some()
                    && view.offers.contains_key(&cluster.masters[leader])
                    && view.running() == tasks)
                    .then_some((leader, term))
            })
            .await
            .with_context(|| format!("before run {run}"))?;
        let pause = Duration::from_millis(rand::rng().random_range(1_000..=2_000));
        self.pause(pause).await;
        anyhow::ensure!(
            self.view.agreed().map(|(leader, ..)| leader) == Some(old_leader),
            "run {run}: the leader changed during the pause before the kill"
        );

        self.view.offers.clear();
        self.view.subscribed = None;
        let killed_at = Instant::now();
        let mut child = self.masters[old_leader]
            .take()
            .context("the leader's process")?;
        child.start_kill().context("cannot kill the leader")?;
        self.view.masters[old_leader] = MasterView::default();
        child.wait().await.context("cannot reap the leader")?;

        let (leader, term, elected_at) = self
            .wait_for("a new leader", |view| {
                view.agreed().filter(|(_, term, _)| *term > old_term)
            })
            .await
            .with_context(|| format!("run {run}"))?;
        let new_address = cluster.masters[leader].clone();
        let registered_at = self
            .wait_for("every agent re-registered", |view| {
                view.all_registered(term)
            })
            .await
            .with_context(|| format!("run {run}"))?;
        let offered_at = self
            .wait_for("an offer from the new leader", |view| {
                view.offers.get(&new_address).copied()
            })
            .await
            .with_context(|| format!("run {run}"))?;
        anyhow::ensure!(
            self.view.agreed().map(|(leader, term, _)| (leader, term)) == Some((leader, term)),
            "run {run}: another election happened before the framework had an offer"
        );
        let result = RunResult {
            killed: old_leader,
            old_term,
            leader,
            term,
            elected: elected_at.duration_since(killed_at),
            registered: registered_at.duration_since(killed_at),
            resubscribed: self.view.subscribed.map(|at| at.duration_since(killed_at)),
            offered: offered_at.duration_since(killed_at),
        };
        // The killed master comes back on its data directory.
        self.masters[old_leader] = Some(self.cluster.start_master(old_leader)?);
        self.view.masters[old_leader].alive = true;
        Ok(result)
    }
}

/// The pid of each executor the agents started, by work directory and executor id (from
/// their pid files).
fn executor_pids(work_dirs: &[PathBuf]) -> BTreeMap<(PathBuf, String), u32> {
    let mut pids = BTreeMap::new();
    for work_dir in work_dirs {
        for (executor, pid) in crate::recovery::executor_pids(work_dir) {
            pids.insert((work_dir.clone(), executor), pid);
        }
    }
    pids
}

fn summarize(options: &FailoverOptions, results: &[RunResult]) {
    let phases: [(&str, Vec<Duration>); 3] = [
        (
            "(a) survivors agree on a new leader",
            results.iter().map(|result| result.elected).collect(),
        ),
        (
            "(b) every agent re-registered with it",
            results.iter().map(|result| result.registered).collect(),
        ),
        (
            "(c) the framework has an offer from it",
            results.iter().map(|result| result.offered).collect(),
        ),
    ];
    let resubscribed: Vec<Duration> = results.iter().filter_map(|r| r.resubscribed).collect();
    println!(
        "result: {} failovers with {} agents and a framework, from just before kill(2) \
         (p99 is the nearest rank; target p99 under {} s for each phase):",
        results.len(),
        options.agents,
        TARGET.as_secs()
    );
    if options.markdown {
        println!("| phase | p50 | p99 | min | max | target (p99 < 2 s) |");
        println!("| --- | ---: | ---: | ---: | ---: | --- |");
    }
    for (name, samples) in &phases {
        let Some(summary) = Summary::of(samples) else {
            continue;
        };
        let met = if summary.p99 < TARGET {
            "met"
        } else {
            "missed"
        };
        if options.markdown {
            println!(
                "| {name} | {} | {} | {} | {} | {met} |",
                whole_millis(summary.median),
                whole_millis(summary.p99),
                whole_millis(summary.min),
                whole_millis(summary.max)
            );
        } else {
            println!("  {name}: {summary}; target {met}");
        }
    }
    if let Some(summary) = Summary::of(&resubscribed) {
        println!("  (the framework re-subscribed: {summary})");
    }
    for (name, samples) in &phases {
        let mut sorted = samples.clone();
        sorted.sort_unstable();
        let list: Vec<String> = sorted
            .iter()
            .map(|sample| sample.as_millis().to_string())
            .collect();
        println!("  samples {name} (ms, sorted): {}", list.join(", "));
    }
}

/// A duration as whole milliseconds with thousands separated: "1,234 ms".
fn whole_millis(duration: Duration) -> String {
    let millis = duration.as_millis().to_string();
    let mut grouped = String::new();
    for (index, digit) in millis.chars().enumerate() {
        if index > 0 && (millis.len() - index) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    format!("{grouped} ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_of_log_lines() {
        let line = "2026-12-05T21:00:00.1Z  INFO berth_node::driver: following a new leader \
                    term=4 leader=2";
        assert_eq!(field(line, "term"), Some("4"));
        assert_eq!(field(line, "leader"), Some("2"));
        assert_eq!(field(line, "agent"), None);
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(whole_millis(Duration::from_millis(7)), "7 ms");
        assert_eq!(whole_millis(Duration::from_millis(1_234)), "1,234 ms");
        assert_eq!(whole_millis(Duration::from_millis(12_345)), "12,345 ms");
    }

    #[test]
    fn agreement_needs_every_live_master() {
        let now = Instant::now();
        let master = |term, leader| MasterView {
            alive: true,
            term,
            leader,
            since: Some(now),
        };
        let mut view = View {
            masters: vec![master(2, Some(0)), master(2, Some(0)), master(1, Some(2))],
            agents: vec![Some((2, now)), Some((2, now))],
            offers: BTreeMap::new(),
            subscribed: None,
            leader_silent: 0,
            leader_connection_lost: 0,
            tasks: BTreeMap::new(),
            left_running: Vec::new(),
            stopped: None,
        };
        assert_eq!(view.agreed(), None, "m3 still follows an old leader");
        view.masters[2].alive = false;
        assert_eq!(
            view.agreed().map(|(leader, term, _)| (leader, term)),
            Some((0, 2))
        );
        assert_eq!(view.all_registered(2), Some(now));
        view.agents[1] = Some((1, now));
        assert_eq!(view.all_registered(2), None);
    }
}
