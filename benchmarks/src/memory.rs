//! `berth-bench master-memory`: the resident memory of one leading master that knows many
//! agents and their tasks.
//!
//! The protocol's [`Master`] runs in this process, driven directly: no network, no disk. Its
//! outbox is executed the way the node's driver executes it, minus the I/O: persisted records
//! are folded into an in-memory durable state (the node's driver keeps the same fold in
//! memory besides writing it to disk), messages and timers are dropped. So the figure is the
//! protocol's state (registry, replicated log with its snapshot, the leader's soft directory
//! of agents and tasks) plus the driver's copy of the durable state; the network layer's
//! buffers and connections are not in it.
//!
//! Agents enter the registry in one of two ways:
//!
//! * `--admission messages`: each agent sends `RegisterAgent`, which the lone master commits
//!   at once. The real path, but every admission copies the registry (see BENCHMARKS.md), so
//!   it is slow for tens of thousands of agents.
//! * `--admission snapshot` (default): the registry is built by folding one `AgentAdmitted`
//!   entry per agent, installed as a snapshot in the master's durable state, and the master
//!   boots from it: what a master restarting on a large cluster's data directory holds.
//!
//! Then every agent re-registers with its tasks (`ReregisterAgent`, tasks `RUNNING`), which
//! builds the leader's soft state exactly as after a failover.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use berth_protocol::bounded::{BoundedVec, Name};
use berth_protocol::ids::{
    AgentId, AssignedId, BootId, ExecutorId, FrameworkId, MasterId, TaskId, Term,
};
use berth_protocol::master::{Master, MasterConfig, MasterDurable, MasterRecord};
use berth_protocol::message::{Message, RegisterAgent, ReregisterAgent, Snapshot, TaskReport};
use berth_protocol::registry::{AgentInfo, LogIndex, Registry, RegistryEntry};
use berth_protocol::resources::Resources;
use berth_protocol::task::TaskState;
use berth_protocol::{Address, Command, Machine, Outbox};

/// How agents enter the registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Admission {
    /// One `RegisterAgent` message per agent, committed by the lone master.
    Messages,
    /// A registry snapshot the master boots from.
    Snapshot,
}

/// What to build.
#[derive(Clone, Debug, clap::Args)]
pub struct MemoryOptions {
    /// Agents registered with the master.
    #[arg(long, default_value_t = 50_000)]
    pub agents: u64,
    /// Running tasks each agent reports when it re-registers.
    #[arg(long, default_value_t = 10)]
    pub tasks_per_agent: u64,
    /// How agents enter the registry.
    #[arg(long, value_enum, default_value_t = Admission::Snapshot)]
    pub admission: Admission,
    /// Each agent's resources.
    #[arg(
        long,
        default_value = "cpus:32;mem:262144;disk:1000000;ports:[31000-32000]"
    )]
    pub agent_resources: String,
    /// Each task's resources.
    #[arg(long, default_value = "cpus:0.5;mem:2048;disk:1000")]
    pub task_resources: String,
    /// Print a progress line every this many agents.
    #[arg(long, default_value_t = 5_000)]
    pub progress_every: u64,
}

/// Memory figures of this process, from `/proc/self/status`, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessMemory {
    /// Resident set size now (`VmRSS`).
    pub resident: u64,
    /// Its peak so far (`VmHWM`).
    pub resident_peak: u64,
}

impl ProcessMemory {
    /// Reads the figures of this process.
    pub fn read() -> anyhow::Result<ProcessMemory> {
        let status = std::fs::read_to_string("/proc/self/status")
            .context("cannot read /proc/self/status (Linux only)")?;
        ProcessMemory::parse(&status).context("no VmRSS or VmHWM in /proc/self/status")
    }

    /// Parses the `VmRSS` and `VmHWM` lines of a `/proc/PID/status` text.
    pub fn parse(status: &str) -> Option<ProcessMemory> {
        Some(ProcessMemory {
            resident: status_kilobytes(status, "VmRSS:")? * 1024,
            resident_peak: status_kilobytes(status, "VmHWM:")? * 1024,
        })
    }
}

/// The value of a `NAME:   123 kB` line.
fn status_kilobytes(status: &str, name: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with(name))?;
    let mut words = line[name.len()..].split_whitespace();
    let value = words.next()?.parse().ok()?;
    (words.next() == Some("kB")).then_some(value)
}

/// One master, its durable state and the time spent in its handlers.
struct Harness {
    master: Master,
    durable: MasterDurable,
    handling: Duration,
}

impl Harness {
    fn boot(config: &MasterConfig, durable: MasterDurable) -> Harness {
        let mut out = Outbox::new();
        let Ok(master) = Master::boot(config, &durable, &mut out);
        let mut harness = Harness {
            master,
            durable,
            handling: Duration::ZERO,
        };
        harness.execute(out);
        harness
    }

    fn deliver(&mut self, from: &Address, message: Message) {
        let mut out = Outbox::new();
        let started = Instant::now();
        self.master.handle_message(from, message, &mut out);
        self.master.end_batch(&mut out);
        self.handling += started.elapsed();
        self.execute(out);
    }

    /// Persists are folded into the durable state, as the node's driver does before it
    /// writes them; sends, timers and notes are dropped.
    fn execute(&mut self, mut out: Outbox<Master>) {
        for command in out.drain() {
            if let Command::Persist(record) = command {
                Master::apply(&mut self.durable, &record);
            }
        }
    }
}

fn agent_address(index: u64) -> Address {
    // The form an agent's address has in production: IP:PORT, here unique per agent.
    let octets = index.to_be_bytes();
    Address::new(&format!(
        "10.{}.{}.{}:5051",
        octets[5], octets[6], octets[7]
    ))
    .expect("a valid address")
}

fn agent_info(index: u64, resources: &Resources) -> AgentInfo {
    AgentInfo {
        hostname: Name::new(&format!("host-{index:06}.cluster.example")).expect("a valid name"),
        resources: resources.clone(),
    }
}

/// Runs the benchmark and prints its figures.
pub fn run(options: &MemoryOptions) -> anyhow::Result<()> {
    let agent_resources =
        Resources::parse(&options.agent_resources).context("invalid --agent-resources")?;
    let task_resources =
        Resources::parse(&options.task_resources).context("invalid --task-resources")?;
    let tasks_per_agent =
        usize::try_from(options.tasks_per_agent).context("--tasks-per-agent is too large")?;
    let boot_id = BootId::new("boot-0").expect("a valid boot id");
    let master_address = Address::new("127.0.0.1:5050").expect("a valid address");
    let config = MasterConfig::new(MasterId(1), BTreeMap::from([(MasterId(1), master_address)]))
        .context("a lone master's configuration")?;
    let before = ProcessMemory::read()?;
    println!(
        "sizes: ResourceKey {} B, Resources {} B, TaskView {} B, AgentView {} B, \
         AgentRecord {} B",
        std::mem::size_of::<berth_protocol::resources::ResourceKey>(),
        std::mem::size_of::<Resources>(),
        std::mem::size_of::<berth_protocol::master::TaskView>(),
        std::mem::size_of::<berth_protocol::master::AgentView>(),
        std::mem::size_of::<berth_protocol::registry::AgentRecord>(),
    );
    println!(
        "master-memory: {} agents x {} tasks, admission {:?}; before: VmRSS {}",
        options.agents,
        options.tasks_per_agent,
        options.admission,
        mebibytes(before.resident)
    );

    let started = Instant::now();
    let mut agent_ids = Vec::new();
    let mut harness = match options.admission {
        Admission::Snapshot => {
            let mut registry = Registry::new();
            for index in 0..options.agents {
                let agent = AgentId(AssignedId {
                    term: Term(1),
                    sequence: index,
                });
                registry.apply(
                    LogIndex(index + 1),
                    &RegistryEntry::AgentAdmitted {
                        agent,
                        address: agent_address(index),
                        info: agent_info(index, &agent_resources),
                    },
                );
                agent_ids.push(agent);
            }
            let mut durable = MasterDurable {
                term: Term(1),
                voted_for: Some(MasterId(1)),
                ..MasterDurable::default()
            };
            Master::apply(
                &mut durable,
                &MasterRecord::Snapshot(Snapshot {
                    index: LogIndex(options.agents),
                    term: Term(1),
                    registry,
                }),
            );
            Harness::boot(&config, durable)
        }
        Admission::Messages => {
            let mut harness = Harness::boot(&config, MasterDurable::default());
            anyhow::ensure!(
                harness.master.is_leader(),
                "a lone master leads once it has booted"
            );
            let phase = Instant::now();
            for index in 0..options.agents {
                let address = agent_address(index);
                harness.deliver(
                    &address,
                    Message::RegisterAgent(Box::new(RegisterAgent {
                        address: address.clone(),
                        info: agent_info(index, &agent_resources),
                        boot_id: boot_id.clone(),
                        highest_term: Term(0),
                        report: 1,
                    })),
                );
                if (index + 1) % options.progress_every == 0 {
                    println!(
                        "  registered {} agents in {:.1} s",
                        index + 1,
                        phase.elapsed().as_secs_f64()
                    );
                }
            }
            agent_ids = harness
                .master
                .registry()
                .agents()
                .iter()
                .filter(|(_, record)| {
                    record.status == berth_protocol::registry::AgentStatus::Admitted
                })
                .map(|(agent, _)| *agent)
                .collect();
            anyhow::ensure!(
                agent_ids.len() as u64 == options.agents,
                "{} of {} agents were admitted",
                agent_ids.len(),
                options.agents
            );
            harness
        }
    };
    anyhow::ensure!(harness.master.is_leader(), "the lone master leads");
    let admitted = started.elapsed();
    let after_admission = ProcessMemory::read()?;
    println!(
        "  admitted {} agents in {:.1} s; VmRSS {}",
        agent_ids.len(),
        admitted.as_secs_f64(),
        mebibytes(after_admission.resident)
    );

    // Agent ids are ordered as the registry orders them; the addresses follow admission order.
    let framework = FrameworkId(AssignedId {
        term: Term(1),
        sequence: 0,
    });
    let registry_addresses: Vec<(AgentId, Address)> = harness
        .master
        .registry()
        .agents()
        .iter()
        .map(|(agent, record)| (*agent, record.address.clone()))
        .collect();
    let leader_term = harness.master.term();
    let phase = Instant::now();
    let handling_before = harness.handling;
    for (count, (agent, address)) in registry_addresses.into_iter().enumerate() {
        let index = count as u64;
        let tasks: Vec<TaskReport> = (0..tasks_per_agent)
            .map(|task| {
                let name = format!("task-{index:06}-{task:02}");
                TaskReport {
                    framework,
                    executor: ExecutorId::new(&name).expect("a valid id"),
                    task: TaskId::new(&name).expect("a valid id"),
                    resources: task_resources.clone(),
                    state: TaskState::Running,
                    latest_update: None,
                }
            })
            .collect();
        let info = harness
            .master
            .registry()
            .agents()
            .get(&agent)
            .map(|record| record.info.clone())
            .context("a registered agent")?;
        harness.deliver(
            &address,
            Message::ReregisterAgent(Box::new(ReregisterAgent {
                agent,
                address: address.clone(),
                info,
                boot_id: boot_id.clone(),
                // A report made after hearing of the leader's term, as a real agent's is
                // (a leader takes no report made before its term).
                highest_term: leader_term,
                tasks: BoundedVec::from_vec(tasks)
                    .ok()
                    .context("too many tasks per agent")?,
                unacknowledged: BoundedVec::new(),
                operations: BoundedVec::new(),
                report: 2,
            })),
        );
        if (index + 1) % options.progress_every == 0 {
            println!(
                "  re-registered {} agents in {:.1} s",
                index + 1,
                phase.elapsed().as_secs_f64()
            );
        }
    }
    let reregistered = phase.elapsed();
    let reregistering = harness.handling - handling_before;
    let after = ProcessMemory::read()?;

    let directory = harness
        .master
        .agent_directory()
        .context("the leader has an agent directory")?;
    let known_agents = directory
        .agents()
        .values()
        .filter(|view| view.registered)
        .count() as u64;
    let known_tasks: u64 = directory
        .agents()
        .values()
        .map(|view| view.tasks.len() as u64)
        .sum();
    anyhow::ensure!(
        known_agents == options.agents && known_tasks == options.agents * options.tasks_per_agent,
        "the leader knows {known_agents} registered agents and {known_tasks} tasks"
    );
    let grown = after.resident.saturating_sub(before.resident);
    println!(
        "  re-registered {} agents with {} tasks in {:.1} s ({:.2} ms per agent in the handler)",
        known_agents,
        known_tasks,
        reregistered.as_secs_f64(),
        reregistering.as_secs_f64() * 1000.0 / known_agents.max(1) as f64
    );
    let per_task = if known_tasks == 0 {
        "-".to_string()
    } else {
        format!("{:.0}", grown as f64 / known_tasks as f64)
    };
    println!(
        "result: VmRSS {} (grew {}), VmHWM {}; {:.0} bytes per agent with its {} tasks, \
         {per_task} bytes per task counting everything",
        mebibytes(after.resident),
        mebibytes(grown),
        mebibytes(after.resident_peak),
        grown as f64 / known_agents.max(1) as f64,
        options.tasks_per_agent,
    );
    // Keep the state alive until it is measured.
    drop(harness);
    Ok(())
}

fn mebibytes(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_status() {
        let status = "Name:\tberth-bench\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\nThreads:\t1\n";
        assert_eq!(
            ProcessMemory::parse(status),
            Some(ProcessMemory {
                resident: 1024 * 1024,
                resident_peak: 2048 * 1024,
            })
        );
        assert_eq!(ProcessMemory::parse("VmRSS: 12 MB\nVmHWM: 1 kB\n"), None);
    }

    /// The benchmark runs through at a small size with either admission: a protocol change
    /// that makes the master refuse its agents' reports (as the rule that a report must be
    /// made in the leader's term once did) fails here, not in the next measurement.
    #[test]
    fn a_small_run_registers_every_agent_with_its_tasks() {
        for admission in [Admission::Snapshot, Admission::Messages] {
            let options = MemoryOptions {
                agents: 20,
                tasks_per_agent: 3,
                admission,
                agent_resources: "cpus:32;mem:262144;disk:1000000;ports:[31000-32000]".into(),
                task_resources: "cpus:0.5;mem:2048;disk:1000".into(),
                progress_every: 10,
            };
            run(&options).unwrap_or_else(|error| panic!("{admission:?}: {error:#}"));
        }
    }

    #[test]
    fn agent_addresses_are_distinct() {
        assert_ne!(agent_address(1), agent_address(256));
        assert_eq!(agent_address(258).as_str(), "10.0.1.2:5051");
    }
}
