//! End-to-end tests of Berth with real `berth` processes.
//!
//! The tests find the `berth` binary that `cargo test --workspace` builds alongside them
//! (`target/<profile>/berth`); run `cargo build -p berth-node` first when running this crate
//! alone.
//!
//! Everything a test starts is owned by a guard that cleans up when dropped, also when the
//! test fails: a [`BerthProcess`] is killed and reaped, a [`TestDirectory`] is removed.

use std::fs;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The cluster name the tests use.
pub const TEST_CLUSTER: &str = "e2e";

/// The path of the `berth` binary built in this workspace's target directory.
///
/// # Panics
/// If it has not been built, with the command that builds it.
pub fn berth_binary() -> PathBuf {
    let test_executable = std::env::current_exe().expect("the test knows its own path");
    // target/<profile>/deps/<test> -> target/<profile>/berth
    let profile_directory = test_executable
        .parent()
        .and_then(|deps| deps.parent())
        .expect("tests run from target/<profile>/deps");
    let binary = profile_directory.join(format!("berth{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.exists(),
        "{} does not exist: run `cargo build -p berth-node` (or `cargo test --workspace`) first",
        binary.display()
    );
    binary
}

/// A fresh directory under the system's temporary directory, removed when dropped.
#[derive(Debug)]
pub struct TestDirectory {
    path: PathBuf,
}

impl TestDirectory {
    /// Creates `berth-e2e-<name>-<pid>-<n>` under the temporary directory.
    pub fn new(name: &str) -> TestDirectory {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "berth-e2e-{name}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create a test directory");
        TestDirectory { path }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TestDirectory {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// `count` loopback socket addresses (`127.0.0.1:PORT`) whose ports were free a moment ago;
/// all are held at once, so they differ.
pub fn free_loopback_addresses(count: usize) -> Vec<String> {
    let listeners: Vec<std::net::TcpListener> = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
        .collect();
    listeners
        .iter()
        .map(|listener| {
            listener
                .local_addr()
                .expect("a bound port's address")
                .to_string()
        })
        .collect()
}

/// Writes a cluster secret (64 hex digits) readable only by its owner.
pub fn write_secret_file(path: &Path) {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).expect("create the secret file");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    writeln!(
        file,
        "{:032x}{:032x}",
        nanos,
        u128::from(std::process::id())
    )
    .expect("write the secret");
}

/// A running `berth` process, killed (SIGKILL) and reaped when dropped.
#[derive(Debug)]
pub struct BerthProcess {
    name: String,
    child: Child,
    log: Option<PathBuf>,
    exit: Option<ExitStatus>,
}

impl BerthProcess {
    /// Starts `berth args...` with standard output and error appended to `log`.
    pub fn start_logged(name: &str, args: &[&str], log: &Path) -> BerthProcess {
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open the log file");
        let child = Command::new(berth_binary())
            .args(args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("share the log file"))
            .stderr(file)
            .spawn()
            .expect("start berth");
        BerthProcess {
            name: name.to_string(),
            child,
            log: Some(log.to_path_buf()),
            exit: None,
        }
    }

    /// Starts `berth args...` with standard output piped (read it with
    /// [`stdout_lines`](BerthProcess::stdout_lines)) and standard error appended to `log`.
    pub fn start_piped(name: &str, args: &[&str], log: &Path) -> BerthProcess {
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open the log file");
        let child = Command::new(berth_binary())
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(file)
            .spawn()
            .expect("start berth");
        BerthProcess {
            name: name.to_string(),
            child,
            log: Some(log.to_path_buf()),
            exit: None,
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its name in messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The lines of its standard output, as they come, from a reader thread. Only once.
    pub fn stdout_lines(&mut self) -> mpsc::Receiver<String> {
        let stdout = self
            .child
            .stdout
            .take()
            .expect("standard output was piped and not taken yet");
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        receiver
    }

    /// `kill -9`: stops it at once, as a crash would, and reaps it.
    pub fn kill_hard(&mut self) {
        if self.exit.is_none() {
            let _ = self.child.kill();
            self.exit = self.child.wait().ok();
        }
    }

    /// Sends SIGTERM (a clean stop).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {}", self.pid());
    }

    /// Waits up to `timeout` for it to exit; `None` if it still runs.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while self.exit.is_none() {
            match self.child.try_wait() {
                Ok(Some(status)) => self.exit = Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(None) | Err(_) => return None,
            }
        }
        self.exit
    }

    /// Its log so far, for a failure message.
    pub fn log_text(&self) -> String {
        self.log
            .as_ref()
            .and_then(|log| fs::read_to_string(log).ok())
            .unwrap_or_default()
    }
}

impl Drop for BerthProcess {
    fn drop(&mut self) {
        self.kill_hard();
    }
}

/// Whether a process with this id exists (Linux: `/proc/<pid>`).
pub fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The session id of process `pid`, from `/proc/<pid>/stat` (its sixth field, counted
/// after the parenthesised command name, which may hold spaces).
fn session_of(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, fields) = stat.rsplit_once(')')?;
    fields.split_whitespace().nth(3)?.parse().ok()
}

/// Kills (SIGKILL) every process of the sessions of the executors an agent started in
/// `work_dir` (their pid files are `executors/<framework>/<executor>/executor.pid`): the
/// executors and their tasks.
pub fn kill_executors(work_dir: &Path) {
    let Ok(frameworks) = fs::read_dir(work_dir.join("executors")) else {
        return;
    };
    let sessions: Vec<u32> = frameworks
        .flatten()
        .filter_map(|framework| fs::read_dir(framework.path()).ok())
        .flat_map(|executors| executors.flatten())
        .filter_map(|executor| {
            fs::read_to_string(executor.path().join("executor.pid"))
                .ok()?
                .trim()
                .parse()
                .ok()
        })
        .collect();
    if sessions.is_empty() {
        return;
    }
    let Ok(processes) = fs::read_dir("/proc") else {
        return;
    };
    for pid in processes
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| session_of(*pid).is_some_and(|session| sessions.contains(&session)))
    {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
}

/// A `berth agent` process. Dropping it kills the agent and its executors, tasks included.
#[derive(Debug)]
pub struct AgentProcess {
    process: Option<BerthProcess>,
    address: String,
    work_dir: PathBuf,
}

impl AgentProcess {
    /// Starts `berth agent` on `address`, registering with `masters`, with its work
    /// directory and log in `directory` (`agent-<name>/`, `agent-<name>.log`).
    pub fn start(
        name: &str,
        directory: &Path,
        address: &str,
        masters: &[String],
        secret_file: &Path,
    ) -> AgentProcess {
        let work_dir = directory.join(format!("agent-{name}"));
        let log = directory.join(format!("agent-{name}.log"));
        let masters = masters.join(",");
        let args = [
            "agent",
            "--masters",
            &masters,
            "--listen",
            address,
            "--work-dir",
            work_dir.to_str().expect("a UTF-8 temporary directory"),
            "--resources",
            "cpus:1;mem:256;disk:1000",
            "--hostname",
            &format!("host-{name}"),
            "--cluster",
            TEST_CLUSTER,
            "--secret-file",
            secret_file.to_str().expect("a UTF-8 temporary directory"),
        ];
        AgentProcess {
            process: Some(BerthProcess::start_logged(
                &format!("agent {name}"),
                &args,
                &log,
            )),
            address: address.to_string(),
            work_dir,
        }
    }

    /// Its address.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Its log so far.
    pub fn log_text(&self) -> String {
        self.process
            .as_ref()
            .map(BerthProcess::log_text)
            .unwrap_or_default()
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill_hard();
        }
        kill_executors(&self.work_dir);
    }
}

/// Runs `berth state --json` against `masters` and parses its answer; `None` if no master
/// answered.
pub fn ask_state(masters: &[String], secret_file: &Path) -> Option<serde_json::Value> {
    let output = Command::new(berth_binary())
        .args(["state", "--json", "--cluster", TEST_CLUSTER, "--masters"])
        .arg(masters.join(","))
        .arg("--secret-file")
        .arg(secret_file)
        .args(["--timeout-ms", "500"])
        .output()
        .ok()?;
    serde_json::from_str(String::from_utf8_lossy(&output.stdout).trim()).ok()
}

/// The agents `berth state` lists as admitted: address and id.
pub fn admitted_agents(state: &serde_json::Value) -> Vec<(String, String)> {
    state["agents"]
        .as_array()
        .map(|agents| {
            agents
                .iter()
                .filter(|agent| agent["status"] == "admitted")
                .filter_map(|agent| {
                    Some((
                        agent["address"].as_str()?.to_string(),
                        agent["id"].as_str()?.to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What `berth leader --json` reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderView {
    /// The leader's address, if a master named one.
    pub leader: Option<String>,
    /// Its term.
    pub term: Option<u64>,
    /// Each master asked: its address, and if it answered, its term and the leader it named.
    pub answers: Vec<(String, Option<(u64, Option<String>)>)>,
}

impl LeaderView {
    /// The leader and term if every master asked answered and named that leader in that term.
    pub fn agreed(&self) -> Option<(String, u64)> {
        let leader = self.leader.clone()?;
        let term = self.term?;
        self.answers
            .iter()
            .all(|(_, answer)| {
                answer.as_ref().is_some_and(|(answered, named)| {
                    *answered == term && named.as_deref() == Some(leader.as_str())
                })
            })
            .then_some((leader, term))
    }
}

/// Runs `berth leader --json` against `masters` and parses its answer.
pub fn ask_leader(
    masters: &[String],
    secret_file: &Path,
    timeout: Duration,
) -> io::Result<LeaderView> {
    let output: Output = Command::new(berth_binary())
        .args(["leader", "--json", "--cluster", TEST_CLUSTER, "--masters"])
        .arg(masters.join(","))
        .arg("--secret-file")
        .arg(secret_file)
        .args(["--timeout-ms", &timeout.as_millis().to_string()])
        .output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let json: serde_json::Value = serde_json::from_str(text.trim()).map_err(|error| {
        io::Error::other(format!(
            "berth leader printed {text:?} ({error}); stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        ))
    })?;
    let text_of = |value: &serde_json::Value| value.as_str().map(str::to_string);
    let answers = json["masters"]
        .as_array()
        .map(|masters| {
            masters
                .iter()
                .map(|master| {
                    let address = text_of(&master["address"]).unwrap_or_default();
                    let answer = master["answered"]
                        .as_bool()
                        .unwrap_or(false)
                        .then(|| master["term"].as_u64())
                        .flatten()
                        .map(|term| (term, text_of(&master["leader"])));
                    (address, answer)
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(LeaderView {
        leader: text_of(&json["leader"]),
        term: json["term"].as_u64(),
        answers,
    })
}

/// A cluster of `berth master` processes on loopback. Dropping it kills every master, then
/// removes its directory.
#[derive(Debug)]
pub struct MasterCluster {
    /// The masters by id - 1; `None` once killed. Declared before `directory`, so they are
    /// killed before it is removed.
    masters: Vec<Option<BerthProcess>>,
    addresses: Vec<String>,
    secret_file: PathBuf,
    directory: TestDirectory,
}

impl MasterCluster {
    /// Starts `count` masters (1, 3 or 5) with ids 1..=count on free loopback ports.
    pub fn start(name: &str, count: usize) -> MasterCluster {
        let directory = TestDirectory::new(name);
        let secret_file = directory.path().join("cluster-secret");
        write_secret_file(&secret_file);
        let addresses = free_loopback_addresses(count);
        let members = addresses
            .iter()
            .enumerate()
            .map(|(index, address)| format!("{}={address}", index + 1))
            .collect::<Vec<_>>()
            .join(",");
        let masters = (1..=count)
            .map(|id| {
                let data_dir = directory.path().join(format!("master-{id}"));
                let log = directory.path().join(format!("master-{id}.log"));
                let id_text = id.to_string();
                let args = [
                    "master",
                    "--id",
                    &id_text,
                    "--masters",
                    &members,
                    "--data-dir",
                    data_dir.to_str().expect("a UTF-8 temporary directory"),
                    "--cluster",
                    TEST_CLUSTER,
                    "--secret-file",
                    secret_file.to_str().expect("a UTF-8 temporary directory"),
                ];
                Some(BerthProcess::start_logged(
                    &format!("master {id}"),
                    &args,
                    &log,
                ))
            })
            .collect();
        MasterCluster {
            masters,
            addresses,
            secret_file,
            directory,
        }
    }

    /// Every master's address, by id - 1.
    pub fn addresses(&self) -> &[String] {
        &self.addresses
    }

    /// The addresses of the masters not killed.
    pub fn running_addresses(&self) -> Vec<String> {
        self.masters
            .iter()
            .zip(&self.addresses)
            .filter(|(master, _)| master.is_some())
            .map(|(_, address)| address.clone())
            .collect()
    }

    /// The id of the master at `address`.
    pub fn id_of(&self, address: &str) -> Option<usize> {
        self.addresses
            .iter()
            .position(|known| known == address)
            .map(|index| index + 1)
    }

    /// The secret file.
    pub fn secret_file(&self) -> &Path {
        &self.secret_file
    }

    /// `kill -9` master `id`.
    pub fn kill_hard(&mut self, id: usize) {
        if let Some(mut master) = self.masters.get_mut(id - 1).and_then(Option::take) {
            master.kill_hard();
        }
    }

    /// Polls `berth leader` against the running masters until every one of them names the
    /// same leader in the same term and `accept` approves it; panics with the masters' logs
    /// after `timeout`.
    pub fn wait_for_leader(
        &self,
        timeout: Duration,
        accept: impl Fn(&str, u64) -> bool,
    ) -> (String, u64) {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        while Instant::now() < deadline {
            let running = self.running_addresses();
            match ask_leader(&running, &self.secret_file, Duration::from_millis(500)) {
                Ok(view) => {
                    if let Some((leader, term)) = view.agreed()
                        && accept(&leader, term)
                    {
                        return (leader, term);
                    }
                    last = Some(format!("{view:?}"));
                }
                Err(error) => last = Some(error.to_string()),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "no leader within {timeout:?}; last answer: {last:?}\n{}",
            self.logs()
        );
    }

    /// Every master's log, for a failure message.
    pub fn logs(&self) -> String {
        (1..=self.addresses.len())
            .map(|id| {
                let log = self.directory.path().join(format!("master-{id}.log"));
                format!(
                    "--- master {id} ---\n{}",
                    fs::read_to_string(&log).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

pub mod netns;
