//! Processes started in a host's namespace: a node that can be killed, paused, resumed and
//! started again with the same command line, its output appended to one log.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::fabric::{Fabric, HostId};

/// The signals the harness sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// SIGKILL: a crash.
    Kill,
    /// SIGTERM: a clean stop.
    Terminate,
    /// SIGSTOP: a pause (a long GC, a frozen VM); the process keeps its sockets.
    Stop,
    /// SIGCONT: the end of a pause.
    Continue,
}

/// Sends `signal` to process `pid`; a process that is already gone is not an error.
pub fn signal(pid: u32, signal: Signal) {
    use rustix::process::{Pid, Signal as Raw, kill_process};
    let raw = match signal {
        Signal::Kill => Raw::KILL,
        Signal::Terminate => Raw::TERM,
        Signal::Stop => Raw::STOP,
        Signal::Continue => Raw::CONT,
    };
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = kill_process(pid, raw);
    }
}

/// Whether process `pid` runs (a zombie does not).
pub fn is_running(pid: u32) -> bool {
    berth_node::process::process_is_running(pid)
}

/// How long a killed process may take to be reaped before the harness gives up on it.
const REAP_PATIENCE: Duration = Duration::from_secs(10);

/// SIGKILLs `child` and reaps it, waiting at most [`REAP_PATIENCE`] (a process stuck in
/// the kernel is left behind, said so, rather than hanging the test).
pub fn kill_and_reap(child: &mut Child, name: &str) -> Option<ExitStatus> {
    let _ = child.kill();
    let deadline = Instant::now() + REAP_PATIENCE;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) | Err(_) => {
                eprintln!(
                    "{name} (pid {}) was not reaped {REAP_PATIENCE:?} after SIGKILL",
                    child.id()
                );
                return None;
            }
        }
    }
}

/// What a node process is doing, as the harness left it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessState {
    /// Not started, or killed and reaped.
    Down,
    /// Running.
    Running,
    /// Stopped by SIGSTOP.
    Paused,
}

/// A process in a host's namespace, restartable with the same command line. Killed
/// (SIGKILL) and reaped when dropped.
#[derive(Debug)]
pub struct NodeProcess {
    name: String,
    host: HostId,
    program: PathBuf,
    args: Vec<OsString>,
    environment: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
    paused: bool,
    last_exit: Option<ExitStatus>,
}

impl NodeProcess {
    /// A process `program args...` on `host`, logging to `log`; not started yet.
    pub fn new(
        name: &str,
        host: HostId,
        program: &Path,
        args: Vec<OsString>,
        log: PathBuf,
    ) -> NodeProcess {
        NodeProcess {
            name: name.to_string(),
            host,
            program: program.to_path_buf(),
            args,
            environment: Vec::new(),
            log,
            child: None,
            paused: false,
            last_exit: None,
        }
    }

    /// Sets an environment variable for every later start.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.environment.retain(|(known, _)| known != key);
        self.environment.push((key.to_string(), value.to_string()));
    }

    /// Replaces the value after `flag` for every later start, or appends `flag value`.
    pub fn set_flag(&mut self, flag: &str, value: &str) {
        match self.args.iter().position(|arg| arg == flag) {
            Some(index) if index + 1 < self.args.len() => self.args[index + 1] = value.into(),
            _ => {
                self.args.push(flag.into());
                self.args.push(value.into());
            }
        }
    }

    /// Its name in messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its host.
    pub fn host(&self) -> HostId {
        self.host
    }

    /// Starts it, with standard output and error appended to its log.
    ///
    /// # Panics
    /// If it is running.
    pub fn start(&mut self, fabric: &Fabric) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open the log file");
        let mut command = fabric.command(self.host, &self.program);
        command
            .args(&self.args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("share the log file"))
            .stderr(log);
        for (key, value) in &self.environment {
            command.env(key, value);
        }
        let child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {}: {error}", self.name));
        self.child = Some(child);
        self.paused = false;
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// What it is doing. A process that exited on its own is reaped and `Down`.
    pub fn state(&mut self) -> ProcessState {
        let Some(child) = &mut self.child else {
            return ProcessState::Down;
        };
        if let Ok(Some(status)) = child.try_wait() {
            self.last_exit = Some(status);
            self.child = None;
            self.paused = false;
            return ProcessState::Down;
        }
        if self.paused {
            ProcessState::Paused
        } else {
            ProcessState::Running
        }
    }

    /// How it last exited, if it did.
    pub fn last_exit(&self) -> Option<ExitStatus> {
        self.last_exit
    }

    /// `kill -9` and reap.
    pub fn kill_hard(&mut self) {
        if let Some(mut child) = self.child.take() {
            self.last_exit = kill_and_reap(&mut child, &self.name);
        }
        self.paused = false;
    }

    /// SIGTERM, then waits up to `patience` for it to exit; SIGKILL after that. Whether it
    /// stopped on its own.
    pub fn stop(&mut self, patience: Duration) -> bool {
        let Some(pid) = self.pid() else {
            return true;
        };
        if self.paused {
            signal(pid, Signal::Continue);
            self.paused = false;
        }
        signal(pid, Signal::Terminate);
        let deadline = Instant::now() + patience;
        while Instant::now() < deadline {
            if self.state() == ProcessState::Down {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill_hard();
        false
    }

    /// SIGSTOP: it freezes with its sockets open.
    pub fn pause(&mut self) {
        if let Some(pid) = self.pid() {
            signal(pid, Signal::Stop);
            self.paused = true;
        }
    }

    /// SIGCONT.
    pub fn resume(&mut self) {
        if let Some(pid) = self.pid() {
            signal(pid, Signal::Continue);
            self.paused = false;
        }
    }

    /// `kill -9`, then starts it again with the same command line.
    pub fn restart(&mut self, fabric: &Fabric) {
        self.kill_hard();
        self.start(fabric);
    }

    /// Its log so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `lines` lines of its log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = self.log_text();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill_hard();
    }
}
