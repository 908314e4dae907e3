//! An agent's work directory: where its checkpoint, its executors' files, the tasks'
//! sandboxes and the persistent volumes live.
//!
//! ```text
//!   WORK_DIR/agent.lock                       held (flock) by the running agent; holds its pid
//!   WORK_DIR/executor.sock                    the Unix socket executors connect to
//!   WORK_DIR/meta/                            the checkpoint: Store<AgentRecord, AgentDurable>
//!   WORK_DIR/executors/<fw>/<ex>/executor.pid the executor's process id while it runs
//!   WORK_DIR/executors/<fw>/<ex>/executor.log the executor's standard output and error
//!   WORK_DIR/sandboxes/<fw>/<ex>/<task>/run-<n>/   one run of a task: its working directory,
//!                                             with `stdout` and `stderr`
//!   WORK_DIR/volumes/<role>/<id>/             a persistent volume's data (`*` for no role)
//! ```
//!
//! Framework, executor, task, role and volume ids are [`Name`](berth_protocol::bounded::Name)s,
//! which may contain `/`. Each id is one path component: `/` is written `%2F` (`%` cannot
//! appear in a name, so the encoding is unambiguous), and a name never starts with `.`, so no
//! component is `.` or `..` and nothing escapes its directory.
//!
//! The executors' own files are kept apart from the sandboxes so that no task id can collide
//! with them.

#![warn(missing_docs)]

use std::io;
use std::path::{Path, PathBuf};

use berth_protocol::ids::{ExecutorId, FrameworkId, TaskId, VolumeId};
use berth_protocol::resources::Reservation;

/// The checkpoint directory's name.
pub const META_DIRECTORY: &str = "meta";
/// The sandboxes directory's name.
pub const SANDBOXES_DIRECTORY: &str = "sandboxes";
/// The persistent volumes directory's name.
pub const VOLUMES_DIRECTORY: &str = "volumes";
/// The executors' directory's name.
pub const EXECUTORS_DIRECTORY: &str = "executors";
/// The executors' socket's name.
pub const EXECUTOR_SOCKET: &str = "executor.sock";
/// The lock file's name.
pub const LOCK_FILE: &str = "agent.lock";
/// An executor's process id file's name.
pub const EXECUTOR_PID_FILE: &str = "executor.pid";
/// An executor's log file's name.
pub const EXECUTOR_LOG_FILE: &str = "executor.log";
/// The directory name of volumes not reserved for a role (Mesos's name for "any role").
pub const UNRESERVED_ROLE_DIRECTORY: &str = "*";
/// The longest path of a Unix socket, in bytes, on Linux (`sun_path` holds 108 with the
/// terminating zero).
pub const SOCKET_PATH_LENGTH_MAX: usize = 107;

/// The paths of one agent's work directory. Computes paths only; see
/// [`create`](WorkDir::create) for the directories that must exist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkDir {
    root: PathBuf,
}

impl WorkDir {
    /// The work directory at `root`.
    pub fn new(root: impl Into<PathBuf>) -> WorkDir {
        WorkDir { root: root.into() }
    }

    /// The work directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The checkpoint directory.
    pub fn meta(&self) -> PathBuf {
        self.root.join(META_DIRECTORY)
    }

    /// The sandboxes' directory.
    pub fn sandboxes(&self) -> PathBuf {
        self.root.join(SANDBOXES_DIRECTORY)
    }

    /// The persistent volumes' directory.
    pub fn volumes(&self) -> PathBuf {
        self.root.join(VOLUMES_DIRECTORY)
    }

    /// The executors' directory.
    pub fn executors(&self) -> PathBuf {
        self.root.join(EXECUTORS_DIRECTORY)
    }

    /// The Unix socket executors connect to.
    pub fn executor_socket(&self) -> PathBuf {
        self.root.join(EXECUTOR_SOCKET)
    }

    /// The lock file a running agent holds.
    pub fn lock_file(&self) -> PathBuf {
        self.root.join(LOCK_FILE)
    }

    /// One executor's directory: its pid file and log.
    pub fn executor_dir(&self, framework: &FrameworkId, executor: &ExecutorId) -> PathBuf {
        self.executors()
            .join(path_component(&framework.to_string()))
            .join(path_component(executor.as_str()))
    }

    /// One task's directory, which holds a directory per run.
    pub fn task_dir(
        &self,
        framework: &FrameworkId,
        executor: &ExecutorId,
        task: &TaskId,
    ) -> PathBuf {
        self.sandboxes()
            .join(path_component(&framework.to_string()))
            .join(path_component(executor.as_str()))
            .join(path_component(task.as_str()))
    }

    /// One persistent volume's directory.
    pub fn volume_dir(&self, reservation: &Reservation, volume: &VolumeId) -> PathBuf {
        let role = reservation.role().map_or_else(
            || UNRESERVED_ROLE_DIRECTORY.to_string(),
            |role| path_component(role.as_str()),
        );
        self.volumes()
            .join(role)
            .join(path_component(volume.as_str()))
    }

    /// Creates the work directory and its `meta/`, `sandboxes/`, `volumes/` and
    /// `executors/` directories if they are missing. The error names the directory.
    pub fn create(&self) -> Result<(), WorkDirError> {
        for directory in [
            self.root.clone(),
            self.meta(),
            self.sandboxes(),
            self.volumes(),
            self.executors(),
        ] {
            std::fs::create_dir_all(&directory).map_err(|error| WorkDirError {
                path: directory.clone(),
                error,
            })?;
            let metadata = std::fs::metadata(&directory).map_err(|error| WorkDirError {
                path: directory.clone(),
                error,
            })?;
            if !metadata.is_dir() {
                return Err(WorkDirError {
                    path: directory,
                    error: io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
                });
            }
        }
        Ok(())
    }

    /// The process ids in the executors' pid files: the executors started in this work
    /// directory that have not exited cleanly. Unreadable or malformed files are skipped.
    pub fn executor_pids(&self) -> Vec<u32> {
        let mut pids = Vec::new();
        let Ok(frameworks) = std::fs::read_dir(self.executors()) else {
            return pids;
        };
        for framework in frameworks.flatten() {
            let Ok(executors) = std::fs::read_dir(framework.path()) else {
                continue;
            };
            for executor in executors.flatten() {
                let file = executor.path().join(EXECUTOR_PID_FILE);
                if let Some(pid) = std::fs::read_to_string(&file)
                    .ok()
                    .and_then(|text| text.trim().parse().ok())
                {
                    pids.push(pid);
                }
            }
        }
        pids.sort_unstable();
        pids
    }
}

/// A directory of the work directory could not be created or is not a directory.
#[derive(Debug, thiserror::Error)]
#[error("cannot use {} as part of the agent's work directory: {error}", path.display())]
pub struct WorkDirError {
    /// The directory.
    pub path: PathBuf,
    /// What the operating system said.
    pub error: io::Error,
}

/// `name` as one path component: `/` becomes `%2F`.
pub fn path_component(name: &str) -> String {
    name.replace('/', "%2F")
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_protocol::ids::Role;

    #[test]
    fn a_name_with_slashes_stays_one_component() {
        let work_dir = WorkDir::new("/w");
        let framework: FrameworkId = "3-1".parse().expect("an id");
        let executor = ExecutorId::new("web/../../x").expect("a name");
        let task = TaskId::new("t").expect("a name");
        assert_eq!(
            work_dir.task_dir(&framework, &executor, &task),
            Path::new("/w/sandboxes/3-1/web%2F..%2F..%2Fx/t")
        );
        let role = Role::new("eng/web").expect("a role");
        let volume = VolumeId::new("data").expect("a name");
        assert_eq!(
            work_dir.volume_dir(&Reservation::Static(role), &volume),
            Path::new("/w/volumes/eng%2Fweb/data")
        );
        assert_eq!(
            work_dir.volume_dir(&Reservation::Unreserved, &volume),
            Path::new("/w/volumes/*/data")
        );
    }
}
