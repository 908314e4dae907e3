//! Processes on this host, as an agent and its executors see them: is a process still
//! running, which processes belong to a session, and signals to a process, a process group
//! or a whole session.
//!
//! An executor runs in its own session (`setsid`), and each of its tasks in its own process
//! group inside that session, so:
//!
//! * killing a task is a signal to its process group (the shell and what it started);
//! * cleaning up after an executor that died is a signal to every process left in its
//!   session, whose id is the executor's process id.
//!
//! A process group or session id stays allocated while any process is in it, so the kernel
//! does not hand its number to a new process while a member remains: signalling a group or
//! session that still has members reaches exactly those members. Sessions are found by
//! reading `/proc` (Linux).

#![warn(missing_docs)]

use std::io;
use std::path::Path;

use rustix::process::{Pid, Signal, kill_process, kill_process_group};

/// What `/proc/<pid>/stat` says about a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessStat {
    /// Its state letter: `R`, `S`, `D`, `T`, `Z` (zombie), `X` (dead), ...
    pub state: char,
    /// Its process group id.
    pub process_group: u32,
    /// Its session id.
    pub session: u32,
}

/// Reads `/proc/<pid>/stat`; `None` if there is no such process.
pub fn process_stat(pid: u32) -> Option<ProcessStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Parses the text of `/proc/<pid>/stat`. The command name (field 2) is in parentheses and
/// may itself hold spaces and parentheses, so the fields are counted from the last `)`.
fn parse_stat(text: &str) -> Option<ProcessStat> {
    let (_, rest) = text.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _parent = fields.next()?;
    let process_group = fields.next()?.parse().ok()?;
    let session = fields.next()?.parse().ok()?;
    Some(ProcessStat {
        state,
        process_group,
        session,
    })
}

/// Whether process `pid` exists and has not exited (a zombie, exited but not yet reaped by
/// its parent, counts as exited).
pub fn process_is_running(pid: u32) -> bool {
    process_stat(pid).is_some_and(|stat| !matches!(stat.state, 'Z' | 'X'))
}

/// The running processes of session `session`, by reading `/proc`.
pub fn session_members(session: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir(Path::new("/proc")) else {
        return Vec::new();
    };
    let mut members: Vec<u32> = entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            process_stat(*pid)
                .is_some_and(|stat| stat.session == session && !matches!(stat.state, 'Z' | 'X'))
        })
        .collect();
    members.sort_unstable();
    members
}

/// Sends `signal` to every running process of session `session`; returns how many were
/// signalled.
pub fn signal_session(session: u32, signal: Signal) -> usize {
    session_members(session)
        .into_iter()
        .filter(|pid| signal_process(*pid, signal).is_ok())
        .count()
}

/// Sends `signal` to process `pid`.
pub fn signal_process(pid: u32, signal: Signal) -> io::Result<()> {
    kill_process(to_pid(pid)?, signal).map_err(io::Error::from)
}

/// Sends `signal` to every process of process group `group`.
pub fn signal_process_group(group: u32, signal: Signal) -> io::Result<()> {
    kill_process_group(to_pid(group)?, signal).map_err(io::Error::from)
}

fn to_pid(pid: u32) -> io::Result<Pid> {
    i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("no process id {pid}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let text = "4242 (odd) name)) S 1 4240 4200 0 -1 4194560 100 0 0 0";
        assert_eq!(
            parse_stat(text),
            Some(ProcessStat {
                state: 'S',
                process_group: 4240,
                session: 4200,
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_runs_in_its_session() {
        let pid = std::process::id();
        assert!(process_is_running(pid));
        let stat = process_stat(pid).expect("this process has a stat");
        assert!(session_members(stat.session).contains(&pid));
    }
}
