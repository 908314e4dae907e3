//! Starting one run of a task: its sandbox, its persistent volumes and its process.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use berth_protocol::ids::{ExecutorId, FrameworkId};
use tokio::process::{Child, Command};

use super::wire::LaunchTask;
use crate::work_dir::WorkDir;

/// The prefix of a run directory's name: `run-1`, `run-2`, ...
pub const RUN_DIRECTORY_PREFIX: &str = "run-";
/// The most runs one task id keeps sandboxes for in an executor's lifetime; a bound on the
/// search for a free run number.
pub const RUNS_MAX: u32 = 100_000;

/// A task's process, started.
#[derive(Debug)]
pub struct StartedTask {
    /// The shell running the command: the leader of the task's process group.
    pub child: Child,
    /// Its process id, which is also the task's process group id.
    pub pid: u32,
    /// The run's sandbox.
    pub sandbox: PathBuf,
}

/// Why a task could not be started. Names the path concerned.
#[derive(Debug, thiserror::Error)]
#[error("{what} {}: {error}", path.display())]
pub struct LaunchError {
    /// What was being done.
    pub what: &'static str,
    /// The path concerned.
    pub path: PathBuf,
    /// What the operating system said.
    pub error: std::io::Error,
    /// The run's sandbox, if it was created: the error is written to its `stderr` there.
    pub sandbox: Option<PathBuf>,
}

/// Prepares a new run's sandbox in the task's directory, links the task's persistent volumes
/// into it, and starts `sh -c COMMAND` there in a process group of its own, with standard
/// input from `/dev/null` and standard output and error to the sandbox's `stdout` and
/// `stderr` files.
pub fn start(
    work_dir: &WorkDir,
    framework: &FrameworkId,
    executor: &ExecutorId,
    launch: &LaunchTask,
) -> Result<StartedTask, LaunchError> {
    let task_dir = work_dir.task_dir(framework, executor, &launch.task);
    std::fs::create_dir_all(&task_dir).map_err(|error| LaunchError {
        what: "cannot create the task directory",
        path: task_dir.clone(),
        error,
        sandbox: None,
    })?;
    let sandbox = create_run_directory(&task_dir)?;
    let in_sandbox = |what: &'static str, path: &Path| {
        let sandbox = sandbox.clone();
        let path = path.to_path_buf();
        move |error| LaunchError {
            what,
            path,
            error,
            sandbox: Some(sandbox),
        }
    };
    let stdout_path = sandbox.join("stdout");
    let stderr_path = sandbox.join("stderr");
    let stdout = File::create(&stdout_path).map_err(in_sandbox(
        "cannot create the task's output file",
        &stdout_path,
    ))?;
    let stderr = File::create(&stderr_path).map_err(in_sandbox(
        "cannot create the task's error file",
        &stderr_path,
    ))?;
    link_volumes(work_dir, launch, &sandbox)?;
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(launch.command.as_str())
        .current_dir(&sandbox)
        .env("BERTH_SANDBOX", &sandbox)
        .env("BERTH_TASK_ID", launch.task.as_str())
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        // Its own process group: a kill reaches the shell and everything it started.
        .process_group(0)
        .kill_on_drop(false);
    let child = command
        .spawn()
        .map_err(in_sandbox("cannot start `sh -c` in", &sandbox))?;
    let pid = child.id().ok_or_else(|| LaunchError {
        what: "the task exited before its process id was read, in",
        path: sandbox.clone(),
        error: std::io::Error::other("no process id"),
        sandbox: Some(sandbox.clone()),
    })?;
    Ok(StartedTask {
        child,
        pid,
        sandbox,
    })
}

/// Writes a launch failure into the run's `stderr`, where the task's output would have been.
pub fn record_failure(error: &LaunchError) {
    if let Some(sandbox) = &error.sandbox
        && let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(sandbox.join("stderr"))
    {
        let _ = writeln!(file, "berth executor: the task could not start: {error}");
    }
}

/// Creates `task_dir/run-N` with the lowest `N` from 1 not yet used.
fn create_run_directory(task_dir: &Path) -> Result<PathBuf, LaunchError> {
    let highest = std::fs::read_dir(task_dir)
        .map_err(|error| LaunchError {
            what: "cannot list the task directory",
            path: task_dir.to_path_buf(),
            error,
            sandbox: None,
        })?
        .flatten()
        .filter_map(|entry| {
            entry
                .file_name()
                .to_str()?
                .strip_prefix(RUN_DIRECTORY_PREFIX)?
                .parse::<u32>()
                .ok()
        })
        .max()
        .unwrap_or(0);
    let mut run = highest.saturating_add(1);
    loop {
        let sandbox = task_dir.join(format!("{RUN_DIRECTORY_PREFIX}{run}"));
        match std::fs::create_dir(&sandbox) {
            Ok(()) => return Ok(sandbox),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists && run < RUNS_MAX => {
                run += 1;
            }
            Err(error) => {
                return Err(LaunchError {
                    what: "cannot create the sandbox",
                    path: sandbox,
                    error,
                    sandbox: None,
                });
            }
        }
    }
}

/// Makes each persistent volume of the task appear at its container path in the sandbox:
/// a symbolic link to `volumes/<role>/<id>/`, created if missing. A volume's directory is
/// never removed here (R4).
fn link_volumes(
    work_dir: &WorkDir,
    launch: &LaunchTask,
    sandbox: &Path,
) -> Result<(), LaunchError> {
    for (key, _) in launch.resources.volumes() {
        let Some(volume) = &key.volume else {
            continue;
        };
        let error_in = |what: &'static str, path: &Path| {
            let sandbox = sandbox.to_path_buf();
            let path = path.to_path_buf();
            move |error| LaunchError {
                what,
                path,
                error,
                sandbox: Some(sandbox),
            }
        };
        let data = work_dir.volume_dir(&key.reservation, &volume.id);
        std::fs::create_dir_all(&data)
            .map_err(error_in("cannot create the persistent volume", &data))?;
        // A container path has no empty, `.` or `..` component: it stays in the sandbox.
        let link = sandbox.join(volume.container_path.as_str());
        if let Some(parent) = link.parent() {
            std::fs::create_dir_all(parent).map_err(error_in(
                "cannot create the volume's parent directory",
                parent,
            ))?;
        }
        std::os::unix::fs::symlink(&data, &link)
            .map_err(error_in("cannot link the persistent volume at", &link))?;
    }
    Ok(())
}
