//! The conversation between an agent and its executors over the agent's Unix socket.
//!
//! Frames are a 4-byte big-endian length and a postcard body of at most
//! [`EXECUTOR_FRAME_LENGTH_MAX`] bytes; a longer, truncated or undecodable frame closes the
//! connection. The socket lives in the agent's work directory (mode 600), so only the
//! agent's user can connect; there is no other authentication.
//!
//! ```text
//!  executor                                        agent
//!     | Hello{version, framework, executor, pid,     |
//!     |       tasks it holds, with their states}     |  -> ExecutorConnected
//!     |--------------------------------------------->|
//!     | Report{#n, task, state, reason}  (unacked,   |  -> TaskStateReported
//!     |   re-sent after a reconnect)                 |     ... persisted ...
//!     |--------------------------------------------->|
//!     |                         Acknowledge{#n}      |
//!     |<---------------------------------------------|
//!     |                 Launch{task, command, ..}    |  <- LaunchTask
//!     |                 Kill{task}                   |  <- KillTask
//!     |                 Shutdown                     |  <- ShutdownExecutor, or idle
//!     |<---------------------------------------------|
//! ```
//!
//! The executor numbers its reports and keeps each until the agent acknowledges it; the
//! agent acknowledges a report only once its effect on the agent's checkpoint is durable.
//! So a report is lost only if both processes die, and then the task's fate is settled by
//! the agent's recovery (the executor is gone: its tasks fail).

use berth_protocol::bounded::BoundedVec;
use berth_protocol::ids::{ExecutorId, FrameworkId, TaskId};
use berth_protocol::message::AGENT_TASKS_MAX;
use berth_protocol::resources::Resources;
use berth_protocol::task::{TaskCommand, TaskState, TaskStatusReason};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The version of this conversation; an agent refuses an executor of another version.
pub const EXECUTOR_PROTOCOL_VERSION: u16 = 1;
/// The largest frame body, in bytes: a hello with every task an agent may hold fits.
pub const EXECUTOR_FRAME_LENGTH_MAX: usize = 1024 * 1024;

/// What an executor sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FromExecutor {
    /// The first frame of every connection.
    Hello(ExecutorHello),
    /// A task's new state.
    Report(TaskStateReport),
}

/// Who the executor is and what it holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutorHello {
    /// [`EXECUTOR_PROTOCOL_VERSION`].
    pub version: u16,
    /// The executor's framework.
    pub framework: FrameworkId,
    /// The executor.
    pub executor: ExecutorId,
    /// Its process id (the id of its session, too).
    pub pid: u32,
    /// Every task it holds: running, or ended with a report not yet acknowledged.
    pub tasks: BoundedVec<HeldTask, AGENT_TASKS_MAX>,
}

/// A task an executor holds, with the latest state it reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldTask {
    /// The task.
    pub task: TaskId,
    /// Its latest state.
    pub state: TaskState,
}

/// A task's new state, numbered by its executor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskStateReport {
    /// The report's number, unique for the executor's process.
    pub sequence: u64,
    /// The task.
    pub task: TaskId,
    /// Its new state.
    pub state: TaskState,
    /// Why, when the state alone does not say.
    pub reason: Option<TaskStatusReason>,
}

/// What an agent sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToExecutor {
    /// Run a task.
    Launch(Box<LaunchTask>),
    /// Kill a task: SIGTERM to its process group, SIGKILL after the grace period.
    Kill {
        /// The task.
        task: TaskId,
    },
    /// The report with this number is durable on the agent: forget it.
    Acknowledge {
        /// The report's number.
        sequence: u64,
    },
    /// Kill every task, and exit once every report is acknowledged.
    Shutdown,
}

/// A task to run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchTask {
    /// The task.
    pub task: TaskId,
    /// What it runs, with `sh -c`.
    pub command: TaskCommand,
    /// What it uses; its persistent volumes are linked into its sandbox.
    pub resources: Resources,
}

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The socket failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The peer declared a frame longer than [`EXECUTOR_FRAME_LENGTH_MAX`].
    #[error("a frame of {length} bytes exceeds the maximum of {EXECUTOR_FRAME_LENGTH_MAX}")]
    Oversized {
        /// The declared length.
        length: usize,
    },
    /// The frame's body is not a valid message.
    #[error("an undecodable frame: {0}")]
    Decode(postcard::Error),
    /// A message could not be encoded (a bug, or a message over the maximum).
    #[error("a message could not be encoded: {0}")]
    Encode(String),
}

/// Writes `message` as one frame.
pub async fn write_frame<W: AsyncWrite + Unpin, T: Serialize>(
    writer: &mut W,
    message: &T,
) -> Result<(), WireError> {
    let body =
        postcard::to_allocvec(message).map_err(|error| WireError::Encode(error.to_string()))?;
    if body.len() > EXECUTOR_FRAME_LENGTH_MAX {
        return Err(WireError::Encode(format!(
            "{} bytes exceed the maximum of {EXECUTOR_FRAME_LENGTH_MAX}",
            body.len()
        )));
    }
    let length = u32::try_from(body.len()).map_err(|error| WireError::Encode(error.to_string()))?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&length.to_be_bytes());
    frame.extend_from_slice(&body);
    writer.write_all(&frame).await?;
    writer.flush().await?;
    Ok(())
}

/// Reads one frame: `Ok(None)` at a clean end of the stream (between frames).
///
/// Not cancel-safe: read frames from one task that owns the reading half.
pub async fn read_frame<R: AsyncRead + Unpin, T: DeserializeOwned>(
    reader: &mut R,
) -> Result<Option<T>, WireError> {
    let mut header = [0_u8; 4];
    let mut filled = 0;
    while filled < header.len() {
        let read = reader.read(&mut header[filled..]).await?;
        if read == 0 {
            if filled == 0 {
                return Ok(None);
            }
            return Err(WireError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        filled += read;
    }
    let length = usize::try_from(u32::from_be_bytes(header)).unwrap_or(usize::MAX);
    if length > EXECUTOR_FRAME_LENGTH_MAX {
        return Err(WireError::Oversized { length });
    }
    let mut body = vec![0_u8; length];
    reader.read_exact(&mut body).await?;
    match postcard::take_from_bytes(&body) {
        Ok((message, [])) => Ok(Some(message)),
        Ok(_) => Err(WireError::Decode(postcard::Error::DeserializeBadEncoding)),
        Err(error) => Err(WireError::Decode(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_end_cleanly() {
        let (mut left, mut right) = tokio::io::duplex(4096);
        let message = ToExecutor::Kill {
            task: TaskId::new("web-1").expect("a name"),
        };
        write_frame(&mut left, &message).await.expect("written");
        drop(left);
        let read: Option<ToExecutor> = read_frame(&mut right).await.expect("read");
        assert_eq!(read, Some(message));
        let end: Option<ToExecutor> = read_frame(&mut right).await.expect("a clean end");
        assert_eq!(end, None);
    }

    #[tokio::test]
    async fn an_oversized_or_truncated_frame_is_an_error() {
        let (mut left, mut right) = tokio::io::duplex(64);
        let header = u32::try_from(EXECUTOR_FRAME_LENGTH_MAX + 1).expect("fits");
        left.write_all(&header.to_be_bytes())
            .await
            .expect("written");
        let error = read_frame::<_, ToExecutor>(&mut right)
            .await
            .expect_err("oversized");
        assert!(matches!(error, WireError::Oversized { .. }), "{error}");

        let (mut left, mut right) = tokio::io::duplex(64);
        left.write_all(&[0, 0]).await.expect("written");
        drop(left);
        let error = read_frame::<_, ToExecutor>(&mut right)
            .await
            .expect_err("truncated");
        assert!(matches!(error, WireError::Io(_)), "{error}");
    }
}
