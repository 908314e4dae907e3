//! A framework as a process of its own on a host of the fabric: `berth-test-framework`
//! (this crate's binary), driven over its standard input and read from its standard output.
//! Its view of its tasks is a [`TaskHistory`].

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::fabric::{Fabric, HostId};
use super::invariants::{StatusEvent, TaskHistory};
use super::process::{Signal, signal};
use crate::TEST_CLUSTER;

/// The framework binary's name, next to `berth`.
const FRAMEWORK_BINARY: &str = "berth-test-framework";

/// How a framework is started.
#[derive(Clone, Debug)]
pub struct FrameworkSpec {
    /// Its name.
    pub name: String,
    /// Its role.
    pub role: String,
    /// How long its tasks outlive a silent scheduler.
    pub failover_timeout: Duration,
    /// How long the scheduler waits without a word from its leader before it looks for
    /// another.
    pub leader_silence: Duration,
    /// Subscribe as a new scheduler of this existing framework (failover).
    pub framework: Option<String>,
    /// The scheduler's checkpoint directory [default: a new one]. A second instance given
    /// the first's directory (on storage both reach) takes over its framework and knows its
    /// tasks; one given a fresh directory and [`framework`](Self::framework) takes over the
    /// framework but knows none of its earlier tasks.
    pub state_dir: Option<PathBuf>,
}

impl FrameworkSpec {
    /// A framework called `name` of role `role`, with a week's failover timeout and the
    /// default 5 s leader silence.
    pub fn new(name: &str, role: &str) -> FrameworkSpec {
        FrameworkSpec {
            name: name.to_string(),
            role: role.to_string(),
            failover_timeout: Duration::from_secs(7 * 24 * 3600),
            leader_silence: Duration::from_secs(5),
            framework: None,
            state_dir: None,
        }
    }
}

/// A running `berth-test-framework`. Killed when dropped.
#[derive(Debug)]
pub struct FrameworkProcess {
    name: String,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    log: PathBuf,
    state_dir: PathBuf,
    /// Every status it passed on, by task.
    pub history: TaskHistory,
    framework: Option<String>,
    leader: Option<(String, u64)>,
    replaced: bool,
    /// Every line it printed, for failure messages.
    transcript: Vec<String>,
}

impl FrameworkProcess {
    /// Starts the framework binary on `host`, its log and checkpoint in `directory`.
    pub fn start(
        fabric: &Fabric,
        host: HostId,
        spec: &FrameworkSpec,
        masters: &[String],
        secret_file: &Path,
        directory: &Path,
    ) -> FrameworkProcess {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let instance = COUNTER.fetch_add(1, Ordering::Relaxed);
        let label = format!("framework-{}-{instance}", spec.name);
        let log = directory.join(format!("{label}.log"));
        let state_dir = spec
            .state_dir
            .clone()
            .unwrap_or_else(|| directory.join(format!("{label}-state")));
        let log_file = fs::File::create(&log).expect("create the framework's log");
        let mut command = fabric.command(host, framework_binary());
        command
            .args(["--masters", &masters.join(","), "--secret-file"])
            .arg(secret_file)
            .args(["--cluster", TEST_CLUSTER, "--name", &spec.name])
            .args(["--role", &spec.role])
            .args([
                "--failover-timeout-ms",
                &spec.failover_timeout.as_millis().to_string(),
                "--leader-silence-ms",
                &spec.leader_silence.as_millis().to_string(),
                "--state-dir",
            ])
            .arg(&state_dir)
            .env("RUST_LOG", "info,berth_node::driver::notes=debug")
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log_file);
        if let Some(framework) = &spec.framework {
            command.args(["--framework", framework]);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {label}: {error}"));
        let stdout = child.stdout.take().expect("piped");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        FrameworkProcess {
            name: label,
            stdin: child.stdin.take(),
            child: Some(child),
            lines,
            log,
            state_dir,
            history: TaskHistory::default(),
            framework: spec.framework.clone(),
            leader: None,
            replaced: false,
            transcript: Vec::new(),
        }
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The scheduler's checkpoint directory.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Whether the process still runs.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// The framework's id, once subscribed.
    pub fn framework_id(&self) -> Option<&str> {
        self.framework.as_deref()
    }

    /// The leader and term the scheduler follows, if subscribed.
    pub fn leader(&self) -> Option<&(String, u64)> {
        self.leader.as_ref()
    }

    /// Whether another scheduler took the framework over.
    pub fn replaced(&self) -> bool {
        self.replaced
    }

    /// Asks it to launch `task` with `resources` running `command`.
    pub fn launch(&mut self, task: &str, resources: &str, command: &str) {
        self.send(&format!("launch {task} {resources} {command}"));
    }

    /// Asks it to kill `task`.
    pub fn kill(&mut self, task: &str) {
        self.send(&format!("kill {task}"));
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("the framework runs");
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|error| panic!("{} stopped reading commands: {error}", self.name));
    }

    /// Reads every line printed so far into its history.
    pub fn poll(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.absorb(line);
        }
    }

    fn absorb(&mut self, line: String) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["subscribed", framework] => self.framework = Some((*framework).to_string()),
            ["leader", "-", "-"] => self.leader = None,
            ["leader", leader, term] => {
                self.leader = term.parse().ok().map(|term| ((*leader).to_string(), term));
            }
            ["status", task, state, agent, reason] => {
                let known = |word: &str| (word != "-").then(|| word.to_string());
                self.history.record(
                    task,
                    StatusEvent {
                        state: (*state).to_string(),
                        agent: known(agent),
                        reason: known(reason),
                        at: Instant::now(),
                    },
                );
            }
            ["replaced"] => self.replaced = true,
            _ => {}
        }
        self.transcript.push(line);
    }

    /// Polls until `done` approves it; panics after `timeout` with what it printed and its
    /// log, and `context` (the cluster's logs, say).
    pub fn wait_until(
        &mut self,
        what: &str,
        timeout: Duration,
        mut done: impl FnMut(&FrameworkProcess) -> bool,
        context: impl FnOnce() -> String,
    ) {
        let deadline = Instant::now() + timeout;
        loop {
            self.poll();
            if done(self) {
                return;
            }
            let now = Instant::now();
            if now >= deadline {
                panic!(
                    "{}: waited {timeout:?} for {what}\n{}\n{}",
                    self.name,
                    self.describe(),
                    context()
                );
            }
            match self
                .lines
                .recv_timeout((deadline - now).min(Duration::from_millis(100)))
            {
                Ok(line) => self.absorb(line),
                Err(mpsc::RecvTimeoutError::Timeout | mpsc::RecvTimeoutError::Disconnected) => {}
            }
        }
    }

    /// Waits until `task`'s latest state is `state`.
    pub fn wait_for_state(
        &mut self,
        task: &str,
        state: &str,
        timeout: Duration,
        context: impl FnOnce() -> String,
    ) {
        let what = format!("task {task} to be {state}");
        self.wait_until(
            &what,
            timeout,
            |framework| {
                framework
                    .history
                    .latest(task)
                    .is_some_and(|event| event.state == state)
            },
            context,
        );
    }

    /// What it printed and logged, for failure messages.
    pub fn describe(&self) -> String {
        format!(
            "--- {} printed ---\n{}\n--- {} log ---\n{}",
            self.name,
            self.transcript.join("\n"),
            self.name,
            fs::read_to_string(&self.log).unwrap_or_default()
        )
    }

    /// `kill -9`: the scheduler crashes.
    pub fn kill_hard(&mut self) {
        self.stdin = None;
        if let Some(mut child) = self.child.take() {
            super::process::kill_and_reap(&mut child, &self.name);
        }
        self.poll();
    }

    /// SIGSTOP.
    pub fn pause(&self) {
        if let Some(pid) = self.pid() {
            signal(pid, Signal::Stop);
        }
    }

    /// SIGCONT.
    pub fn resume(&self) {
        if let Some(pid) = self.pid() {
            signal(pid, Signal::Continue);
        }
    }
}

impl Drop for FrameworkProcess {
    fn drop(&mut self) {
        self.kill_hard();
    }
}

/// The framework binary, built next to `berth` by `cargo test`.
fn framework_binary() -> PathBuf {
    let berth = crate::berth_binary();
    let binary = berth.with_file_name(format!(
        "{FRAMEWORK_BINARY}{}",
        std::env::consts::EXE_SUFFIX
    ));
    assert!(
        binary.exists(),
        "{} does not exist: run `cargo build -p berth-tests` (or `cargo test --workspace`)",
        binary.display()
    );
    binary
}

/// A steady stream of short tasks: one launched every `interval` while fewer than
/// `in_flight_max` have not ended, each sleeping `task_seconds`.
#[derive(Debug)]
pub struct SteadyLoad {
    prefix: String,
    interval: Duration,
    task_seconds: u64,
    in_flight_max: usize,
    next_launch: Instant,
    launched: Vec<String>,
}

impl SteadyLoad {
    /// A load of tasks named `<prefix>-<n>`.
    pub fn new(prefix: &str, interval: Duration, task_seconds: u64, in_flight_max: usize) -> Self {
        SteadyLoad {
            prefix: prefix.to_string(),
            interval,
            task_seconds,
            in_flight_max,
            next_launch: Instant::now(),
            launched: Vec::new(),
        }
    }

    /// Reads the framework's news and launches the next task when it is time.
    pub fn tick(&mut self, framework: &mut FrameworkProcess) {
        framework.poll();
        let now = Instant::now();
        if now < self.next_launch || self.in_flight(framework) >= self.in_flight_max {
            return;
        }
        let task = format!("{}-{}", self.prefix, self.launched.len());
        framework.launch(
            &task,
            "cpus:0.1;mem:16",
            &super::cluster::task_command(self.task_seconds),
        );
        self.launched.push(task);
        self.next_launch = now + self.interval;
    }

    /// The tasks launched so far.
    pub fn launched(&self) -> &[String] {
        &self.launched
    }

    /// How many launched tasks are on their way or running, as the framework knows: not
    /// ended, and not out of its sight (UNREACHABLE, UNKNOWN), so that tasks it lost track
    /// of do not stall the load.
    pub fn in_flight(&self, framework: &FrameworkProcess) -> usize {
        self.launched
            .iter()
            .filter(|task| {
                !framework.history.latest(task).is_some_and(|event| {
                    super::invariants::is_terminal(&event.state)
                        || matches!(event.state.as_str(), "TASK_UNREACHABLE" | "TASK_UNKNOWN")
                })
            })
            .count()
    }

    /// The launched tasks by their final state (`None`: not ended yet).
    pub fn outcomes(&self, framework: &FrameworkProcess) -> BTreeMap<String, usize> {
        let mut outcomes = BTreeMap::new();
        for task in &self.launched {
            let outcome = framework.history.latest(task).map_or_else(
                || "no status".to_string(),
                |event| match &event.reason {
                    Some(reason) => format!("{} ({reason})", event.state),
                    None => event.state.clone(),
                },
            );
            *outcomes.entry(outcome).or_insert(0) += 1;
        }
        outcomes
    }
}
