//! `berth-bench`: whole-system benchmarks of Berth, each printing what it measured. See
//! BENCHMARKS.md for the results and how to read them.

mod cpu;
mod failover;
mod launch;
mod memory;
mod recovery;
mod sim;
mod stats;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};

/// Whole-system benchmarks of Berth.
#[derive(Debug, Parser)]
#[command(name = "berth-bench", version)]
struct Arguments {
    #[command(subcommand)]
    command: Benchmark,
}

#[derive(Debug, Subcommand)]
enum Benchmark {
    /// Launch throughput and latency: one `berth master` process, simulated agents (the real
    /// agent machine, one connection each) and frameworks in this process.
    Launch(launch::LaunchOptions),
    /// Resident memory of one leading master that knows many agents and their tasks
    /// (protocol state only, driven in this process).
    MasterMemory(memory::MemoryOptions),
    /// Recovery of a `berth agent` with many running tasks after `kill -9`: real master,
    /// agent, executors and tasks; until every executor reconnected and the agent
    /// re-registered.
    AgentRecovery(recovery::RecoveryOptions),
    /// Master failover with agents and a framework: `kill -9` of the leader of three real
    /// masters with real agents and a framework with running tasks; until a new leader is
    /// agreed, every agent re-registered and offers flow again.
    Failover(failover::FailoverOptions),
}

fn main() -> anyhow::Result<()> {
    let arguments = Arguments::parse();
    match arguments.command {
        Benchmark::Launch(options) => runtime()?.block_on(launch::run(&options)),
        Benchmark::MasterMemory(options) => memory::run(&options),
        Benchmark::AgentRecovery(options) => runtime()?.block_on(recovery::run(&options)),
        Benchmark::Failover(options) => runtime()?.block_on(failover::run(&options)),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")
}

/// Raises this process's soft limit of open files to its hard limit (children inherit it);
/// returns the new limit.
fn raise_open_files_limit() -> anyhow::Result<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    limit.current = limit.maximum;
    setrlimit(Resource::Nofile, limit).context("cannot raise the open files limit")?;
    Ok(limit.current.unwrap_or(u64::MAX))
}

/// The `berth` binary: `explicit`, or the one built next to this binary.
fn berth_binary(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    let path = match explicit {
        Some(path) => path.to_path_buf(),
        None => std::env::current_exe()
            .context("cannot find this binary")?
            .with_file_name("berth"),
    };
    anyhow::ensure!(
        path.is_file(),
        "no berth binary at {} (build it with `cargo build --release -p berth-node`, or pass --berth)",
        path.display()
    );
    Ok(path)
}

/// A fresh scratch directory for one benchmark run.
fn scratch_directory(name: &str) -> anyhow::Result<PathBuf> {
    let directory = std::env::temp_dir().join(format!(
        "berth-bench-{name}-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&directory)
        .with_context(|| format!("cannot create {}", directory.display()))?;
    Ok(directory)
}

/// A loopback port free at the time of asking.
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("cannot bind a port")?;
    Ok(listener.local_addr().context("a bound port")?.port())
}

/// Waits until something accepts TCP connections at `address`.
async fn wait_for_port(address: &str, timeout: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        if tokio::net::TcpStream::connect(address).await.is_ok() {
            return Ok(());
        }
        anyhow::ensure!(
            started.elapsed() < timeout,
            "nothing listens at {address} after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
