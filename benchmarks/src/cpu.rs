//! CPU time of a process, from `/proc/PID/stat`.

use std::time::Duration;

use anyhow::Context;

/// The CPU time (user and system) a process has used so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessCpu {
    used: Duration,
}

impl ProcessCpu {
    /// The CPU time of process `pid` so far.
    pub fn of(pid: u32) -> anyhow::Result<ProcessCpu> {
        ProcessCpu::read(&format!("/proc/{pid}/stat"))
    }

    /// The CPU time of this process so far.
    pub fn own() -> anyhow::Result<ProcessCpu> {
        ProcessCpu::read("/proc/self/stat")
    }

    fn read(path: &str) -> anyhow::Result<ProcessCpu> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
        let ticks = cpu_ticks(&text).with_context(|| format!("cannot parse {path}"))?;
        let per_second = rustix::param::clock_ticks_per_second();
        Ok(ProcessCpu {
            used: Duration::from_secs_f64(ticks as f64 / per_second as f64),
        })
    }

    /// The CPU time used between `earlier` and this reading.
    pub fn since(self, earlier: ProcessCpu) -> Duration {
        self.used.saturating_sub(earlier.used)
    }
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
}
