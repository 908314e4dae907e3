//! A random nemesis: a seeded sequence of the faults the harness can inject, each healed
//! after a random while, at most [`ACTIVE_FAULTS_MAX`] at a time.
//!
//! The seed decides every random draw (which fault, on which node, for how long, when); a
//! failing run is replayed with `BERTH_NEMESIS_SEED`. The nemesis also aims at the leader
//! it last saw and heals on a clock, so a replay injects a similar sequence, not the same
//! one, and never the same interleaving. [`Nemesis::journal`] lists what was done and when.

use std::fmt;
use std::time::{Duration, Instant};

use super::cluster::Cluster;
use super::fabric::HostId;

/// The most faults in force at once.
pub const ACTIVE_FAULTS_MAX: usize = 2;
/// The shortest and longest wait between two injections.
const INJECTION_GAP_MS: (u64, u64) = (300, 1500);
/// The shortest and longest life of a fault. Long enough, at its longest, for an agent to
/// miss its 5 pings and be marked unreachable.
const FAULT_LIFE_MS: (u64, u64) = (800, 7000);
/// The range of random loss, in percent.
const LOSS_PERCENT: (u64, u64) = (20, 60);
/// The range of added delay, when the kernel can delay.
const DELAY_MS: (u64, u64) = (20, 300);

/// How long and with which seed: `BERTH_NEMESIS_SECS` and `BERTH_NEMESIS_SEED` override the
/// defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NemesisConfig {
    /// The seed of every choice.
    pub seed: u64,
    /// How long faults are injected.
    pub duration: Duration,
}

impl NemesisConfig {
    /// `BERTH_NEMESIS_SECS` (default `default_duration`) and `BERTH_NEMESIS_SEED` (default:
    /// drawn from the clock, and printed by the caller).
    ///
    /// # Panics
    /// If either variable is set but not a number.
    pub fn from_environment(default_duration: Duration) -> NemesisConfig {
        let number = |name: &str| {
            std::env::var(name).ok().map(|text| {
                text.trim()
                    .parse::<u64>()
                    .unwrap_or_else(|_| panic!("{name}={text:?} is not a number"))
            })
        };
        let seed = number("BERTH_NEMESIS_SEED").unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| {
                    u64::try_from(elapsed.as_nanos() % u128::from(u64::MAX)).unwrap_or(0)
                })
        });
        let duration = number("BERTH_NEMESIS_SECS").map_or(default_duration, Duration::from_secs);
        NemesisConfig { seed, duration }
    }
}

/// SplitMix64: a small, good, seedable generator.
#[derive(Clone, Debug)]
pub struct Random {
    state: u64,
}

impl Random {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Random {
        Random { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut mixed = self.state;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        mixed ^ (mixed >> 31)
    }

    /// A number in `0..bound` (`bound` > 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0, "an empty range");
        self.next_u64() % bound
    }

    /// A number in `low..=high`.
    pub fn between(&mut self, (low, high): (u64, u64)) -> u64 {
        low + self.below(high - low + 1)
    }

    /// An index into a collection of `length` (> 0) items.
    pub fn index(&mut self, length: usize) -> usize {
        usize::try_from(self.below(length as u64)).expect("below a usize")
    }
}

/// One fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `kill -9` master `id`; it is started again when healed.
    KillMaster(usize),
    /// SIGSTOP master `id`; SIGCONT when healed.
    PauseMaster(usize),
    /// Cut master `id` from the other masters, both directions; it still reaches agents.
    IsolateMaster(usize),
    /// `kill -9` agent `index`, leaving its executors; it is started again when healed.
    KillAgent(usize),
    /// SIGSTOP agent `index`.
    PauseAgent(usize),
    /// Cut agent `index` from every master, both directions.
    PartitionAgent(usize),
    /// Reboot agent `index`'s host (every process dies, new boot id). Instant: nothing to heal.
    RebootAgent(usize),
    /// Drop what the first host sends to the second.
    CutOneWay(HostId, HostId),
    /// The host loses this percentage of what it sends.
    Loss(HostId, u8),
    /// The host's packets are delayed this long.
    Delay(HostId, Duration),
}

impl Fault {
    /// The master it takes away, if any.
    fn master(&self) -> Option<usize> {
        match self {
            Fault::KillMaster(id) | Fault::PauseMaster(id) | Fault::IsolateMaster(id) => Some(*id),
            _ => None,
        }
    }

    /// The agent it takes away, if any.
    fn agent(&self) -> Option<usize> {
        match self {
            Fault::KillAgent(index)
            | Fault::PauseAgent(index)
            | Fault::PartitionAgent(index)
            | Fault::RebootAgent(index) => Some(*index),
            _ => None,
        }
    }

    /// The hosts whose links it changes, if any.
    fn hosts(&self) -> Vec<HostId> {
        match self {
            Fault::CutOneWay(from, to) => vec![*from, *to],
            Fault::Loss(host, _) | Fault::Delay(host, _) => vec![*host],
            _ => Vec::new(),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::KillMaster(id) => write!(formatter, "kill -9 master {id}"),
            Fault::PauseMaster(id) => write!(formatter, "pause master {id}"),
            Fault::IsolateMaster(id) => {
                write!(formatter, "cut master {id} from the other masters")
            }
            Fault::KillAgent(index) => write!(formatter, "kill -9 agent {}", index + 1),
            Fault::PauseAgent(index) => write!(formatter, "pause agent {}", index + 1),
            Fault::PartitionAgent(index) => {
                write!(formatter, "cut agent {} from the masters", index + 1)
            }
            Fault::RebootAgent(index) => write!(formatter, "reboot agent {}'s host", index + 1),
            Fault::CutOneWay(from, to) => {
                write!(
                    formatter,
                    "drop packets from host {} to host {}",
                    from.0, to.0
                )
            }
            Fault::Loss(host, percent) => write!(formatter, "host {} loses {percent}%", host.0),
            Fault::Delay(host, delay) => write!(formatter, "host {} delayed {delay:?}", host.0),
        }
    }
}

/// A fault in force and when it is healed.
#[derive(Clone, Debug)]
struct ActiveFault {
    fault: Fault,
    heal_at: Instant,
}

/// The nemesis. See the [module docs](self).
#[derive(Debug)]
pub struct Nemesis {
    config: NemesisConfig,
    random: Random,
    started: Instant,
    next_injection: Instant,
    active: Vec<ActiveFault>,
    delay_supported: bool,
    journal: Vec<String>,
    reboots: Vec<(usize, Instant)>,
    injected: usize,
}

impl Nemesis {
    /// A nemesis for `cluster`, starting now.
    pub fn new(config: NemesisConfig, cluster: &mut Cluster) -> Nemesis {
        let now = Instant::now();
        let delay_supported = cluster.fabric().delay_supported();
        let mut nemesis = Nemesis {
            config,
            random: Random::new(config.seed),
            started: now,
            next_injection: now,
            active: Vec::new(),
            delay_supported,
            journal: Vec::new(),
            reboots: Vec::new(),
            injected: 0,
        };
        if !delay_supported {
            nemesis.note("this kernel has no netem: no delay faults in this run");
        }
        nemesis
    }

    /// Whether its time is up.
    pub fn finished(&self) -> bool {
        self.started.elapsed() >= self.config.duration
    }

    /// How many faults it injected.
    pub fn injected(&self) -> usize {
        self.injected
    }

    /// What it did, one line per action, with the time since it started.
    pub fn journal(&self) -> &[String] {
        &self.journal
    }

    /// Each reboot: the agent's index and when.
    pub fn reboots(&self) -> &[(usize, Instant)] {
        &self.reboots
    }

    /// Heals the faults whose time is up, and injects a new one when it is time. `leader` is
    /// the current leader's id, if known: the nemesis aims at it half the time.
    pub fn step(&mut self, cluster: &mut Cluster, leader: Option<usize>) {
        let now = Instant::now();
        let due: Vec<ActiveFault> = self
            .active
            .iter()
            .filter(|active| active.heal_at <= now)
            .cloned()
            .collect();
        self.active.retain(|active| active.heal_at > now);
        for active in due {
            self.heal(cluster, &active.fault);
        }
        if self.finished() || now < self.next_injection || self.active.len() >= ACTIVE_FAULTS_MAX {
            return;
        }
        self.next_injection = now + Duration::from_millis(self.random.between(INJECTION_GAP_MS));
        if let Some(fault) = self.choose(cluster, leader) {
            self.inject(cluster, fault);
        }
    }

    /// Heals every fault in force.
    pub fn heal_all(&mut self, cluster: &mut Cluster) {
        for active in std::mem::take(&mut self.active) {
            self.heal(cluster, &active.fault);
        }
    }

    /// A fault that touches no master, agent or host already under one; at most one master
    /// at a time, so a majority stays up and elections can finish.
    fn choose(&mut self, cluster: &Cluster, leader: Option<usize>) -> Option<Fault> {
        let masters = cluster.master_count();
        let agents = cluster.agent_count();
        let master_busy = self
            .active
            .iter()
            .any(|active| active.fault.master().is_some());
        let agent_busy = |index: usize| {
            self.active
                .iter()
                .any(|active| active.fault.agent() == Some(index))
        };
        let host_busy = |host: HostId| {
            self.active
                .iter()
                .any(|active| active.fault.hosts().contains(&host))
        };
        let mut hosts = cluster.master_hosts();
        hosts.extend(cluster.agent_hosts());
        let kind = self.random.below(if self.delay_supported { 10 } else { 9 });
        let master = match leader {
            Some(leader) if self.random.below(2) == 0 => leader,
            _ => 1 + self.random.index(masters),
        };
        let agent = self.random.index(agents);
        let fault = match kind {
            0 if !master_busy => Fault::KillMaster(master),
            1 if !master_busy => Fault::PauseMaster(master),
            2 if !master_busy => Fault::IsolateMaster(master),
            3 if !agent_busy(agent) => Fault::KillAgent(agent),
            4 if !agent_busy(agent) => Fault::PauseAgent(agent),
            5 if !agent_busy(agent) => Fault::PartitionAgent(agent),
            6 if !agent_busy(agent) && self.random.below(2) == 0 => Fault::RebootAgent(agent),
            7 => {
                let from = hosts[self.random.index(hosts.len())];
                let to = hosts[self.random.index(hosts.len())];
                if from == to || host_busy(from) || host_busy(to) {
                    return None;
                }
                Fault::CutOneWay(from, to)
            }
            8 => {
                let host = hosts[self.random.index(hosts.len())];
                if host_busy(host) {
                    return None;
                }
                let percent = u8::try_from(self.random.between(LOSS_PERCENT)).expect("<= 100");
                Fault::Loss(host, percent)
            }
            9 => {
                let host = hosts[self.random.index(hosts.len())];
                if host_busy(host) {
                    return None;
                }
                Fault::Delay(host, Duration::from_millis(self.random.between(DELAY_MS)))
            }
            _ => return None,
        };
        Some(fault)
    }

    fn inject(&mut self, cluster: &mut Cluster, fault: Fault) {
        let life = Duration::from_millis(self.random.between(FAULT_LIFE_MS));
        match &fault {
            Fault::KillMaster(id) => cluster.kill_master(*id),
            Fault::PauseMaster(id) => cluster.master(*id).pause(),
            Fault::IsolateMaster(id) => {
                let host = cluster.master_host(*id);
                let others = cluster.master_hosts();
                cluster.fabric().isolate(host, &others);
            }
            Fault::KillAgent(index) => cluster.kill_agent(*index),
            Fault::PauseAgent(index) => cluster.agent(*index).process.pause(),
            Fault::PartitionAgent(index) => {
                let host = cluster.agent_host(*index);
                let masters = cluster.master_hosts();
                cluster.fabric().isolate(host, &masters);
            }
            Fault::RebootAgent(index) => {
                cluster.reboot_agent(*index);
                self.reboots.push((*index, Instant::now()));
            }
            Fault::CutOneWay(from, to) => cluster.fabric().cut_one_way(*from, *to),
            Fault::Loss(host, percent) => cluster.fabric().set_loss(*host, *percent),
            Fault::Delay(host, delay) => {
                if let Err(unsupported) = cluster.fabric().set_delay(*host, *delay) {
                    self.note(&format!("{fault}: {unsupported}"));
                    return;
                }
            }
        }
        self.injected += 1;
        if matches!(fault, Fault::RebootAgent(_)) {
            self.note(&fault.to_string());
        } else {
            self.note(&format!("{fault} for {} ms", life.as_millis()));
            self.active.push(ActiveFault {
                fault,
                heal_at: Instant::now() + life,
            });
        }
    }

    fn heal(&mut self, cluster: &mut Cluster, fault: &Fault) {
        match fault {
            Fault::KillMaster(id) => cluster.start_master(*id),
            Fault::PauseMaster(id) => cluster.master(*id).resume(),
            Fault::IsolateMaster(id) => {
                let host = cluster.master_host(*id);
                for other in cluster.master_hosts() {
                    if other != host {
                        cluster.fabric().heal(host, other);
                    }
                }
            }
            Fault::KillAgent(index) => cluster.start_agent(*index),
            Fault::PauseAgent(index) => cluster.agent(*index).process.resume(),
            Fault::PartitionAgent(index) => {
                let host = cluster.agent_host(*index);
                for master in cluster.master_hosts() {
                    cluster.fabric().heal(host, master);
                }
            }
            Fault::RebootAgent(_) => {}
            Fault::CutOneWay(from, to) => cluster.fabric().heal_one_way(*from, *to),
            Fault::Loss(host, _) => cluster.fabric().clear_loss(*host),
            Fault::Delay(host, _) => cluster.fabric().clear_delay(*host),
        }
        self.note(&format!("healed: {fault}"));
    }

    fn note(&mut self, line: &str) {
        let elapsed = self.started.elapsed();
        self.journal
            .push(format!("{:>6} ms  {line}", elapsed.as_millis()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_the_same_numbers() {
        let mut first = Random::new(42);
        let mut second = Random::new(42);
        let drawn: Vec<u64> = (0..5).map(|_| first.next_u64()).collect();
        assert_eq!(drawn, (0..5).map(|_| second.next_u64()).collect::<Vec<_>>());
        assert_ne!(drawn[0], Random::new(43).next_u64());
        for _ in 0..1000 {
            assert!((3..=7).contains(&first.between((3, 7))));
        }
    }
}
