//! CPU time of a process, from `/proc/PID/stat`, and the time its threads spent runnable but
//! waiting for a CPU, from each thread's `/proc/PID/task/TID/schedstat` (second field: time
//! on a run queue, in nanoseconds). On a machine whose cores other work shares, the wait is
//! what says that a process was short of CPU rather than of work.

use std::time::Duration;

use anyhow::Context;

/// The CPU time (user and system) a process has used so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessCpu {
    used: Duration,
    waited: Duration,
}

impl ProcessCpu {
    /// The CPU time of process `pid` so far.
    pub fn of(pid: u32) -> anyhow::Result<ProcessCpu> {
        ProcessCpu::read(&format!("/proc/{pid}"))
    }

    /// The CPU time of this process so far.
    pub fn own() -> anyhow::Result<ProcessCpu> {
        ProcessCpu::read("/proc/self")
    }

    fn read(directory: &str) -> anyhow::Result<ProcessCpu> {
        let path = format!("{directory}/stat");
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
        let ticks = cpu_ticks(&text).with_context(|| format!("cannot parse {path}"))?;
        let per_second = rustix::param::clock_ticks_per_second();
        Ok(ProcessCpu {
            used: Duration::from_secs_f64(ticks as f64 / per_second as f64),
            waited: run_queue_wait(directory),
        })
    }

    /// The CPU time used between `earlier` and this reading.
    pub fn since(self, earlier: ProcessCpu) -> Duration {
        self.used.saturating_sub(earlier.used)
    }

    /// The time the process's threads waited for a CPU between `earlier` and this reading,
    /// added up over its threads (threads that ended meanwhile are not counted).
    pub fn waited_since(self, earlier: ProcessCpu) -> Duration {
        self.waited.saturating_sub(earlier.waited)
    }
}

/// The run-queue wait of every thread of the process at `directory` so far, added up; zero
/// where the kernel does not keep scheduler statistics.
fn run_queue_wait(directory: &str) -> Duration {
    let Ok(threads) = std::fs::read_dir(format!("{directory}/task")) else {
        return Duration::ZERO;
    };
    let nanoseconds: u64 = threads
        .filter_map(Result::ok)
        .filter_map(|thread| std::fs::read_to_string(thread.path().join("schedstat")).ok())
        .filter_map(|text| waited_nanoseconds(&text))
        .sum();
    Duration::from_nanos(nanoseconds)
}

/// The second field of a `schedstat` text: nanoseconds spent runnable on a run queue.
fn waited_nanoseconds(schedstat: &str) -> Option<u64> {
    schedstat.split_whitespace().nth(1)?.parse().ok()
}

/// `utime + stime` (fields 14 and 15) of a `/proc/PID/stat` text. The command name (field 2)
/// is in parentheses and may hold spaces, so fields are counted from the last `)`.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_user_and_system_ticks() {
        let stat = "4242 (berth master) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 70 0 0 20 0 \
                    5 0 100 1000 200 18446744073709551615";
        assert_eq!(cpu_ticks(stat), Some(320));
        assert_eq!(cpu_ticks("garbage"), None);
    }

    #[test]
    fn reads_the_run_queue_wait() {
        assert_eq!(waited_nanoseconds("4123000 2500000 77\n"), Some(2_500_000));
        assert_eq!(waited_nanoseconds("4123000"), None);
    }
}
