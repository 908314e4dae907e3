//! Masters run in-process on 127.0.0.1 port 0: a cluster elects exactly one leader (E1), a
//! lone master leads at once, and a restarted master keeps its persisted term and vote. A
//! corrupt log stops a real `berth master` with an error naming it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use berth_node::driver::DriverConfig;
use berth_node::master::{MasterError, MasterNode, MasterNodeConfig, MasterStatus, Standing};
use berth_node::storage::Store;
use berth_node::transport::{ClusterSecret, INBOUND_CONNECTIONS_DEFAULT};
use berth_protocol::Address;
use berth_protocol::Machine;
use berth_protocol::bounded::Name;
use berth_protocol::ids::{MasterId, Term};
use berth_protocol::master::{Master, MasterConfig, MasterDurable, MasterRecord};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

mod common;
use common::TestDirectory;

/// Long enough for an election on a loaded machine; a test that waits this long has failed.
const PATIENCE: Duration = Duration::from_secs(15);
/// How often the tests look at the masters' statuses.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// A master running in this process.
struct RunningMaster {
    status: watch::Receiver<MasterStatus>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), MasterError>>,
}

impl RunningMaster {
    fn start(config: MasterNodeConfig, listener: TcpListener) -> RunningMaster {
        let node = MasterNode::open(config).expect("the master opens its data directory");
        let status = node.status();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(node.run(listener, async {
            let _ = stopped.await;
        }));
        RunningMaster { status, stop, task }
    }

    fn status(&self) -> MasterStatus {
        self.status.borrow().clone()
    }

    /// Stops the master and returns its last status.
    async fn stop(self) -> MasterStatus {
        let _ = self.stop.send(());
        let result = tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("the master stops")
            .expect("the master does not panic");
        result.expect("the master stops cleanly");
        self.status.borrow().clone()
    }
}

/// Everything to start the masters of one cluster, again and again, on the same addresses.
struct Cluster {
    directory: TestDirectory,
    members: BTreeMap<MasterId, Address>,
    /// Each master's listening socket, held for the whole test so that no other test can
    /// take its port while the master is stopped; each run gets a duplicate of it.
    listeners: BTreeMap<MasterId, std::net::TcpListener>,
    secret: ClusterSecret,
}

impl Cluster {
    fn new(name: &str, size: u8) -> Cluster {
        let mut members = BTreeMap::new();
        let mut listeners = BTreeMap::new();
        for id in 1..=size {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            listener
                .set_nonblocking(true)
                .expect("a non-blocking listener for tokio");
            let address = listener.local_addr().expect("a local address").to_string();
            members.insert(MasterId(id), Address::new(&address).expect("an address"));
            listeners.insert(MasterId(id), listener);
        }
        Cluster {
            directory: TestDirectory::new(name),
            members,
            listeners,
            secret: ClusterSecret::generate(),
        }
    }

    fn data_dir(&self, id: MasterId) -> PathBuf {
        self.directory.path().join(format!("master-{id}"))
    }

    fn config(&self, id: MasterId) -> MasterNodeConfig {
        MasterNodeConfig {
            master: MasterConfig::new(id, self.members.clone()).expect("a valid membership"),
            cluster: Name::new("test").expect("a valid name"),
            secret: self.secret.clone(),
            data_dir: self.data_dir(id),
            driver: DriverConfig::default(),
            inbound_connections_max: INBOUND_CONNECTIONS_DEFAULT,
        }
    }

    /// A listener on master `id`'s address: a duplicate of the socket the cluster holds.
    fn listener(&self, id: MasterId) -> TcpListener {
        let duplicate = self.listeners[&id]
            .try_clone()
            .expect("duplicate the listening socket");
        TcpListener::from_std(duplicate).expect("a tokio listener")
    }

    fn start(&self, id: MasterId) -> RunningMaster {
        let listener = self.listener(id);
        RunningMaster::start(self.config(id), listener)
    }

    fn start_all(&self) -> Vec<RunningMaster> {
        let ids: Vec<MasterId> = self.members.keys().copied().collect();
        let mut running = Vec::new();
        for id in ids {
            running.push(self.start(id));
        }
        running
    }
}

/// Polls `masters` until `settled` returns something, or fails the test after [`PATIENCE`].
/// Checks E1 on every look: no two masters lead the same term.
async fn wait_until<T>(
    masters: &[RunningMaster],
    what: &str,
    settled: impl Fn(&[MasterStatus]) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let statuses: Vec<MasterStatus> = masters.iter().map(RunningMaster::status).collect();
        assert_at_most_one_leader_per_term(&statuses);
        if let Some(value) = settled(&statuses) {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {PATIENCE:?}; statuses: {statuses:#?}"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// E1: at most one leader per term.
fn assert_at_most_one_leader_per_term(statuses: &[MasterStatus]) {
    let mut leaders: BTreeMap<Term, MasterId> = BTreeMap::new();
    for status in statuses.iter().filter(|status| status.is_leader()) {
        if let Some(other) = leaders.insert(status.term, status.id) {
            panic!(
                "E1: masters {other} and {} both lead term {}",
                status.id, status.term
            );
        }
    }
}

/// The leader every master agrees on, with its term: one master leads, and every other
/// follows it in the same term.
fn agreed_leader(statuses: &[MasterStatus]) -> Option<(MasterId, Term)> {
    let leader = statuses.iter().find(|status| status.is_leader())?;
    statuses
        .iter()
        .all(|status| status.term == leader.term && status.leader == Some(leader.id))
        .then_some((leader.id, leader.term))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_masters_elect_exactly_one_leader() {
    let cluster = Cluster::new("three", 3);
    let masters = cluster.start_all();
    let (leader, term) = wait_until(&masters, "a leader all agree on", agreed_leader).await;
    assert!(term >= Term(1));

    // The leader holds on: heartbeats keep the followers from starting elections.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let statuses: Vec<MasterStatus> = masters.iter().map(RunningMaster::status).collect();
    assert_eq!(
        agreed_leader(&statuses),
        Some((leader, term)),
        "{statuses:#?}"
    );
    let leaders = statuses.iter().filter(|status| status.is_leader()).count();
    assert_eq!(leaders, 1, "exactly one leader");
    // The new leader's no-op entry committed on a majority.
    let leader_status = &statuses[usize::from(leader.0) - 1];
    assert!(leader_status.commit_index.0 >= 1, "{leader_status:#?}");
    for master in masters {
        master.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_master_leads_at_once() {
    let cluster = Cluster::new("lone", 1);
    let id = MasterId(1);
    let listener = cluster.listener(id);
    let node = MasterNode::open(cluster.config(id)).expect("opens");
    let booted = node.status().borrow().clone();
    assert_eq!(
        booted.standing,
        Standing::Leader,
        "a majority of one: leads at boot"
    );
    assert_eq!(booted.term, Term(1));
    assert_eq!(booted.voted_for, Some(id));

    let (stop, stopped) = oneshot::channel::<()>();
    let status = node.status();
    let task = tokio::spawn(node.run(listener, async {
        let _ = stopped.await;
    }));
    let master = RunningMaster { status, stop, task };
    wait_until(
        std::slice::from_ref(&master),
        "the no-op committed",
        |statuses| (statuses[0].commit_index.0 >= 1).then_some(()),
    )
    .await;
    master.stop().await;

    // The vote that made it leader is on disk.
    let (_, durable) =
        Store::<MasterRecord, MasterDurable>::open(&cluster.data_dir(id), Master::apply)
            .expect("the data directory opens");
    assert_eq!((durable.term, durable.voted_for), (Term(1), Some(id)));

    // Restarted, it runs for the next term: its term survived the restart.
    let restarted = cluster.start(id);
    assert_eq!(restarted.status().term, Term(2));
    restarted.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_master_keeps_its_term_and_vote() {
    let cluster = Cluster::new("restart", 3);
    let masters = cluster.start_all();
    let (leader, term) = wait_until(&masters, "a leader all agree on", agreed_leader).await;
    let mut last = Vec::new();
    for master in masters {
        last.push(master.stop().await);
    }
    for status in &last {
        assert_eq!(status.term, term);
    }
    let leader_before = &last[usize::from(leader.0) - 1];
    assert_eq!(
        leader_before.voted_for,
        Some(leader),
        "a leader voted for itself"
    );

    // Each master, restarted alone on its data directory, recovers its term and vote. Alone
    // it cannot win pre-votes, so its term stays put while it runs.
    for before in &last {
        let restarted = cluster.start(before.id);
        let booted = restarted.status();
        assert_eq!(
            (booted.term, booted.voted_for),
            (before.term, before.voted_for),
            "master {} after a restart",
            before.id
        );
        assert_eq!(booted.last_log_index, before.last_log_index, "its log too");
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let after = restarted.stop().await;
        assert_eq!(after.term, before.term, "pre-vote: no term raised alone");
        assert_ne!(after.standing, Standing::Leader);
    }
}

/// A log damaged before its end (not the torn tail of a crash) stops `berth master` at
/// startup with an error naming the log file and the offset; the data directory stays as it
/// was, for an operator to restore.
#[test]
fn a_corrupt_log_stops_the_master_naming_the_file_and_changes_nothing() {
    use std::process::{Command, Stdio};
    use std::time::Instant;

    let directory = TestDirectory::new("master-corrupt-log");
    let data_dir = directory.path().join("data");
    std::fs::create_dir_all(&data_dir).expect("create the data directory");
    let (mut store, _) = Store::<MasterRecord, MasterDurable>::open(&data_dir, Master::apply)
        .expect("open the store");
    for term in 1..=3 {
        let record = MasterRecord::HardState {
            term: Term(term),
            voted_for: Some(MasterId(1)),
        };
        store.append(&record).expect("append");
    }
    store.sync().expect("sync");
    drop(store);
    let log = data_dir.join("log-00000000000000000000");
    let mut bytes = std::fs::read(&log).expect("read the log");
    // The first record's payload: two intact records follow it.
    bytes[berth_node::storage::RECORD_HEADER_LENGTH] ^= 0xff;
    std::fs::write(&log, &bytes).expect("damage the log");
    let secret = directory.path().join("secret");
    ClusterSecret::generate()
        .write_new_file(&secret)
        .expect("write the secret file");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let address = listener.local_addr().expect("its address").to_string();
    drop(listener);

    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["master", "--id", "1", "--masters", &format!("1={address}")])
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("--secret-file")
        .arg(&secret)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start berth master");
    let deadline = Instant::now() + PATIENCE;
    while child.try_wait().expect("look at the master").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("a master with a corrupt log kept running");
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    let output = child.wait_with_output().expect("the master's output");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("log {} is corrupt at byte 0", log.display())),
        "names the file and the offset: {stderr}"
    );
    assert_eq!(
        std::fs::read(&log).expect("read the log"),
        bytes,
        "the log is unchanged"
    );
    let names: Vec<_> = std::fs::read_dir(&data_dir)
        .expect("list the data directory")
        .map(|entry| entry.expect("an entry").file_name())
        .collect();
    assert_eq!(
        names,
        ["log-00000000000000000000"],
        "nothing else was written"
    );
}

/// A scheduler's process that dies closes its connection, and the master disconnects its
/// framework at once (`MasterEvent::ConnectionLost`): its offers return to the others now,
/// not after five missed pings (at one a second, at least 5 s). The test gives it 3 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_framework_whose_scheduler_connection_ends_is_disconnected_at_once() {
    use berth_node::transport::{Network, NetworkConfig};
    use berth_protocol::ids::{Principal, Role};
    use berth_protocol::message::{Message, Subscribe};
    use berth_protocol::registry::FrameworkInfo;

    let cluster = Cluster::new("connection-end", 1);
    let id = MasterId(1);
    let master = cluster.start(id);
    let master_address = cluster.members[&id].clone();
    let client = |name: &str| NetworkConfig {
        address: Address::new(name).expect("an address"),
        cluster: Name::new("test").expect("a valid name"),
        secret: cluster.secret.clone(),
    };

    let (scheduler, mut inbox) = Network::new(client("client-scheduler"));
    let subscribe = Message::Subscribe(Box::new(Subscribe {
        framework: None,
        info: FrameworkInfo {
            name: Name::new("gone").expect("a valid name"),
            role: Role::new("test").expect("a valid role"),
            principal: Principal::new("test").expect("a valid principal"),
            failover_timeout: Duration::from_secs(3600),
        },
        highest_term: Term(0),
        suppressed: true,
    }));
    let framework = tokio::time::timeout(PATIENCE, async {
        loop {
            scheduler.send(&master_address, subscribe.clone());
            let answer = tokio::time::timeout(Duration::from_millis(500), inbox.recv()).await;
            if let Ok(Some((_, Message::Subscribed(subscribed)))) = answer {
                return subscribed.framework;
            }
        }
    })
    .await
    .expect("the lone master takes the subscription");
    scheduler.shutdown().await;
    let ended = tokio::time::Instant::now();

    let (operator, mut answers) = Network::new(client("client-operator"));
    let disconnected = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            operator.send(&master_address, Message::StateRequest);
            let answer = tokio::time::timeout(Duration::from_millis(200), answers.recv()).await;
            if let Ok(Some((_, Message::StateReport(report)))) = answer
                && report.registry.frameworks()[&framework]
                    .disconnected_since
                    .is_some()
            {
                return;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    })
    .await;
    assert!(
        disconnected.is_ok(),
        "the framework was still connected 3 s after its scheduler's connection ended"
    );
    println!(
        "disconnected {:?} after the connection ended",
        ended.elapsed()
    );
    operator.shutdown().await;
    master.stop().await;
}
