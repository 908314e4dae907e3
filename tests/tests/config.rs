//! Configuration files and logs, with real `berth` processes: a master runs from a
//! configuration file alone; a flag beats its variable, which beats the file; a bad file stops
//! `berth` before it starts anything; in JSON mode every line a node writes to standard error
//! is one JSON object, `RUST_LOG` picks what is written, and nothing is by default.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use berth_tests::{
    TEST_CLUSTER, TestDirectory, ask_leader, berth_binary, free_loopback_addresses,
    write_secret_file,
};

/// How long a lone master may take to lead on a loaded machine (it leads at once).
const ELECTION_PATIENCE: Duration = Duration::from_secs(15);
/// How long a process refusing its configuration may take to exit.
const EXIT_PATIENCE: Duration = Duration::from_secs(10);
/// The exit status of a refused command line or configuration file.
const USAGE_ERROR: i32 = 2;

/// A `berth` process with its standard error in a file, killed and reaped when dropped.
struct Node {
    child: Child,
    stderr: PathBuf,
    exit: Option<ExitStatus>,
}

impl Node {
    /// Starts `berth args...` with exactly the variables `variables` of Berth's own (no
    /// `BERTH_*`, `RUST_LOG` or `NO_COLOR` of the test's environment leaks in).
    fn start(args: &[&str], variables: &[(&str, &str)], stderr: &Path) -> Node {
        let file = fs::File::create(stderr).expect("create the standard error file");
        let mut command = Command::new(berth_binary());
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file);
        for (name, _) in std::env::vars_os() {
            let name_text = name.to_string_lossy();
            if name_text.starts_with("BERTH_") || name_text == "RUST_LOG" || name_text == "NO_COLOR"
            {
                command.env_remove(&name);
            }
        }
        command.envs(variables.iter().copied());
        Node {
            child: command.spawn().expect("start berth"),
            stderr: stderr.to_path_buf(),
            exit: None,
        }
    }

    /// Waits up to `timeout` for it to exit.
    fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while self.exit.is_none() {
            match self.child.try_wait().expect("look at the process") {
                Some(status) => self.exit = Some(status),
                None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                None => return None,
            }
        }
        self.exit
    }

    /// Stops it with SIGTERM, as an operator would, and returns how it exited.
    fn stop(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {}", self.child.id());
        self.wait_timeout(EXIT_PATIENCE)
            .unwrap_or_else(|| panic!("berth did not stop: {}", self.stderr_text()))
    }

    fn stderr_text(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.exit.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One master's files: a secret, a data directory, a configuration file, its standard error.
struct MasterFiles {
    directory: TestDirectory,
    address: String,
}

impl MasterFiles {
    fn new(name: &str) -> MasterFiles {
        let directory = TestDirectory::new(name);
        write_secret_file(&directory.path().join("secret"));
        let address = free_loopback_addresses(1).remove(0);
        MasterFiles { directory, address }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.directory.path().join(name)
    }

    fn data_dir(&self) -> PathBuf {
        self.path("data")
    }

    /// A configuration file for a lone master: every required key, then `extra` lines.
    fn write_config(&self, extra: &str) -> PathBuf {
        let file = self.path("master.toml");
        let text = format!(
            "# A lone master.\nid = 1\nmasters = \"1={address}\"\ndata-dir = {data_dir:?}\n\
             secret-file = {secret:?}\n{extra}",
            address = self.address,
            data_dir = self.data_dir().display().to_string(),
            secret = self.path("secret").display().to_string(),
        );
        fs::write(&file, text).expect("write the configuration file");
        file
    }

    /// Starts `berth [global...] master --config FILE [flags...]`.
    fn start(
        &self,
        config: &Path,
        flags: &[&str],
        variables: &[(&str, &str)],
        stderr: &str,
    ) -> Node {
        let config = config.to_str().expect("a UTF-8 temporary directory");
        let mut args = vec!["master", "--config", config];
        args.extend_from_slice(flags);
        Node::start(&args, variables, &self.path(stderr))
    }

    /// Waits until the master leads, answering `berth leader --cluster e2e`.
    fn wait_until_it_leads(&self, node: &mut Node) {
        let deadline = Instant::now() + ELECTION_PATIENCE;
        let secret = self.path("secret");
        let masters = [self.address.clone()];
        while Instant::now() < deadline {
            if let Some(status) = node.wait_timeout(Duration::ZERO) {
                panic!("the master exited ({status}): {}", node.stderr_text());
            }
            let view = ask_leader(&masters, &secret, Duration::from_millis(500));
            if let Ok(view) = view
                && view
                    .agreed()
                    .is_some_and(|(leader, _)| leader == self.address)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "the master did not lead cluster {TEST_CLUSTER} within {ELECTION_PATIENCE:?}: {}",
            node.stderr_text()
        );
    }
}

/// Parses every line of `text` as a JSON log event and checks its shape: a timestamp, a
/// level, a target, and fields holding a message. Panics naming the first bad line.
fn json_events(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|line| {
            assert!(
                !line.contains('\u{1b}') && !line.contains("\\u001b"),
                "no colour codes in a JSON log: {line:?}"
            );
            let event: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|error| panic!("not JSON ({error}): {line:?}\nall:\n{text}"));
            assert!(event["timestamp"].is_string(), "a timestamp: {line}");
            assert!(
                ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]
                    .contains(&event["level"].as_str().unwrap_or_default()),
                "a level: {line}"
            );
            assert!(
                event["target"]
                    .as_str()
                    .is_some_and(|target| !target.is_empty()),
                "a target: {line}"
            );
            assert!(event["fields"]["message"].is_string(), "a message: {line}");
            event
        })
        .collect()
}

fn messages(events: &[serde_json::Value]) -> BTreeSet<String> {
    events
        .iter()
        .filter_map(|event| event["fields"]["message"].as_str().map(str::to_string))
        .collect()
}

/// A master started with nothing but `--config FILE` runs as the file says: it leads the
/// file's cluster, keeps its state in the file's data directory and logs as JSON, each line
/// one event with its level, target and fields.
#[test]
fn a_master_runs_from_a_configuration_file_alone() {
    let files = MasterFiles::new("config-alone");
    let config = files.write_config(&format!(
        "cluster = \"{TEST_CLUSTER}\"\nlog-format = \"json\"\n"
    ));
    let mut master = files.start(&config, &[], &[("RUST_LOG", "info")], "master.stderr");
    files.wait_until_it_leads(&mut master);
    assert!(files.data_dir().is_dir(), "the file's data directory");
    let status = master.stop();
    assert!(status.success(), "{status}: {}", master.stderr_text());

    let events = json_events(&master.stderr_text());
    let messages = messages(&events);
    for expected in ["master starting", "became the leader", "master stopped"] {
        assert!(messages.contains(expected), "{expected:?} in {messages:?}");
    }
    let starting = events
        .iter()
        .find(|event| event["fields"]["message"] == "master starting")
        .expect("the start is logged");
    assert_eq!(
        starting["fields"]["data_dir"].as_str(),
        Some(files.data_dir().display().to_string().as_str())
    );
    assert_eq!(starting["target"], "berth_node::master");
    assert_eq!(starting["level"], "INFO");
}

/// Precedence: the file beats the default (the case above), `BERTH_CLUSTER` beats the file,
/// `--cluster` beats `BERTH_CLUSTER`. A master answers only in its own cluster, so that it
/// answers `berth leader --cluster e2e` shows which value won.
#[test]
fn a_flag_beats_its_variable_which_beats_the_configuration_file() {
    let cases: [(&str, &[&str], &[(&str, &str)]); 2] = [
        ("variable", &[], &[("BERTH_CLUSTER", TEST_CLUSTER)]),
        (
            "flag",
            &["--cluster", TEST_CLUSTER],
            &[("BERTH_CLUSTER", "from-the-variable")],
        ),
    ];
    for (winner, flags, variables) in cases {
        let files = MasterFiles::new(&format!("config-precedence-{winner}"));
        let config = files.write_config("cluster = \"from-the-file\"\n");
        let mut master = files.start(&config, flags, variables, "master.stderr");
        files.wait_until_it_leads(&mut master);
        let status = master.stop();
        assert!(status.success(), "{winner}: {status}");
    }
}

/// A configuration file with a mistake stops `berth` with exit status 2 and a message naming
/// the file and the line, before it creates, binds or starts anything.
#[test]
fn a_bad_configuration_file_stops_berth_before_it_starts_anything() {
    let files = MasterFiles::new("config-bad");
    let cases = [
        (
            "unknown key",
            "data_dir = \"/elsewhere\"\n",
            ":6: unknown key `data_dir`",
        ),
        (
            "wrong type",
            "cluster = 7\n",
            ":6: `cluster` must be a string, not integer",
        ),
        (
            "malformed TOML",
            "cluster = \"e2e\n",
            "is not valid TOML: TOML parse error at line 6",
        ),
        (
            "refused value",
            "listen = \"nowhere\"\n",
            ":6: invalid value for `listen`",
        ),
    ];
    for (case, extra, expected) in cases {
        let config = files.write_config(extra);
        let mut master = files.start(&config, &[], &[("RUST_LOG", "info")], "master.stderr");
        let status = master
            .wait_timeout(EXIT_PATIENCE)
            .unwrap_or_else(|| panic!("{case}: berth master did not stop"));
        let stderr = master.stderr_text();
        assert_eq!(status.code(), Some(USAGE_ERROR), "{case}: {stderr}");
        assert!(
            stderr.contains(&config.display().to_string()) && stderr.contains(expected),
            "{case}: {expected:?} in {stderr:?}"
        );
        assert!(!files.data_dir().exists(), "{case}: nothing was created");
        assert!(
            std::net::TcpStream::connect(&files.address).is_err(),
            "{case}: nothing listens"
        );
    }

    // A missing file, named in BERTH_CONFIG, and an agent's unknown key.
    let missing = files.path("missing.toml");
    let mut master = Node::start(
        &["master"],
        &[("BERTH_CONFIG", missing.to_str().expect("UTF-8"))],
        &files.path("missing.stderr"),
    );
    let status = master
        .wait_timeout(EXIT_PATIENCE)
        .expect("berth master stops");
    assert_eq!(status.code(), Some(USAGE_ERROR));
    assert!(
        master.stderr_text().contains(&format!(
            "cannot read the configuration file {}",
            missing.display()
        )),
        "{}",
        master.stderr_text()
    );
    let agent_config = files.path("agent.toml");
    let work_dir = files.path("work");
    fs::write(
        &agent_config,
        format!(
            "masters = \"{}\"\nlisten = \"127.0.0.1:0\"\nwork-dir = {:?}\nsecret-file = {:?}\n\
             id = 1\n",
            files.address,
            work_dir.display().to_string(),
            files.path("secret").display().to_string()
        ),
    )
    .expect("write the agent's configuration");
    let mut agent = Node::start(
        &["agent", "--config", agent_config.to_str().expect("UTF-8")],
        &[],
        &files.path("agent.stderr"),
    );
    let status = agent
        .wait_timeout(EXIT_PATIENCE)
        .expect("berth agent stops");
    assert_eq!(status.code(), Some(USAGE_ERROR));
    assert!(
        agent
            .stderr_text()
            .contains(":5: unknown key `id` for `berth agent`"),
        "{}",
        agent.stderr_text()
    );
    assert!(!work_dir.exists(), "no work directory was created");
}

/// Logs are quiet by default: a healthy master writes nothing to standard error. `RUST_LOG`
/// picks what is written: with `berth_node::master=info`, the master module's events and
/// nothing else (the election's are another module's).
#[test]
fn json_logs_are_quiet_by_default_and_follow_rust_log() {
    let files = MasterFiles::new("config-quiet");
    let config = files.write_config(&format!("cluster = \"{TEST_CLUSTER}\"\n"));
    let mut quiet = files.start(&config, &["--log-format", "json"], &[], "quiet.stderr");
    files.wait_until_it_leads(&mut quiet);
    assert!(quiet.stop().success());
    assert_eq!(
        quiet.stderr_text(),
        "",
        "nothing below a warning by default"
    );

    let mut filtered = files.start(
        &config,
        &["--log-format", "json"],
        &[("RUST_LOG", "berth_node::master=info")],
        "filtered.stderr",
    );
    files.wait_until_it_leads(&mut filtered);
    assert!(filtered.stop().success());
    let events = json_events(&filtered.stderr_text());
    assert!(
        events
            .iter()
            .all(|event| event["target"] == "berth_node::master"),
        "only the master module: {events:?}"
    );
    let messages = messages(&events);
    assert!(messages.contains("master starting"), "{messages:?}");
    assert!(
        !messages.contains("became the leader"),
        "the election is logged by another module: {messages:?}"
    );
}

/// The error that stops a node is a JSON event too, and no `RUST_LOG` filter hides it.
#[test]
fn the_error_that_stops_a_node_is_a_json_line() {
    let files = MasterFiles::new("config-fatal");
    fs::remove_file(files.path("secret")).expect("remove the secret");
    let config = files.write_config("log-format = \"json\"\n");
    let mut master = files.start(&config, &[], &[("RUST_LOG", "off")], "master.stderr");
    let status = master
        .wait_timeout(EXIT_PATIENCE)
        .expect("a master without its secret stops");
    assert!(!status.success());
    let events = json_events(&master.stderr_text());
    let [fatal] = events.as_slice() else {
        panic!("one line, the fatal error: {events:?}");
    };
    assert_eq!(fatal["level"], "ERROR");
    let error = fatal["fields"]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&files.path("secret").display().to_string()),
        "names the missing secret file: {error}"
    );
}

/// Text logs are coloured on a terminal only: written to a file, they hold no escape codes.
#[test]
fn text_logs_in_a_file_carry_no_colour_codes() {
    let files = MasterFiles::new("config-text");
    let config = files.write_config(&format!("cluster = \"{TEST_CLUSTER}\"\n"));
    let mut master = files.start(&config, &[], &[("RUST_LOG", "info")], "master.stderr");
    files.wait_until_it_leads(&mut master);
    assert!(master.stop().success());
    let text = master.stderr_text();
    assert!(text.contains("became the leader"), "{text}");
    assert!(!text.contains('\u{1b}'), "no escape codes: {text:?}");
}
