//! Structure-aware fuzzing of the frame decoder: valid frames, mutated.
//!
//! Each input starts from a valid encoded frame and is mutated (bit flips, byte overwrites,
//! truncation, extension, header rewrites), so most inputs get past the header and exercise
//! the message decoder. The decoder must return `Ok` or a typed error: a panic is a failure,
//! and so is an accepted message that does not survive its own re-encoding. (Accepted bytes
//! need not be canonical: postcard reads overlong varints, see the frame module's docs.)

use berth_protocol::Address;
use berth_protocol::bounded::{BoundedVec, Name};
use berth_protocol::frame::{FrameError, decode_frame, encode_frame};
use berth_protocol::ids::{
    AgentId, AssignedId, BootId, ExecutorId, FrameworkId, OfferId, OperationId, Principal, Role,
    TaskId, Term, UpdateId,
};
use berth_protocol::message::{
    Accept, AgentRegistered, KillTask, LeaderChanged, Message, Operation, OperationKind, Ping,
    Pong, Reconcile, RegisterAgent, ReregisterAgent, RunTask, ShutdownAgent, StatusAcknowledgement,
    StatusSource, StatusUpdate, Subscribe, TaskReport, TaskSpec, TaskStatus,
};
use berth_protocol::registry::{AgentInfo, FrameworkInfo};
use berth_protocol::resources::Resources;
use berth_protocol::task::{TaskCommand, TaskState, TaskStatusReason};

use crate::SplitMix64;

/// What a fuzzing run saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FuzzReport {
    /// Inputs decoded.
    pub inputs: u64,
    /// Inputs that decoded to a message.
    pub accepted: u64,
    /// Inputs refused, by error kind: short, truncated, oversized, trailing, version, malformed.
    pub refused: [u64; 6],
}

/// Seeds: one valid frame per message shape.
fn seed_messages(random: &mut SplitMix64) -> Vec<Message> {
    vec![
        Message::Ping(Ping {
            term: Term(random.next_u64()),
            sequence: random.next_u64(),
        }),
        Message::Pong(Pong {
            term: Term(random.below(10)),
            sequence: random.below(1000),
        }),
        Message::RegisterAgent(Box::new(RegisterAgent {
            address: address(),
            info: agent_info(),
            boot_id: BootId::new("4f2a-boot").expect("valid"),
            highest_term: Term(random.below(10)),
            report: random.below(10),
        })),
        Message::ReregisterAgent(Box::new(ReregisterAgent {
            agent: agent_id(random),
            address: address(),
            info: agent_info(),
            boot_id: BootId::new("4f2a-boot").expect("valid"),
            highest_term: Term(random.below(10)),
            tasks: BoundedVec::from_vec(vec![TaskReport {
                framework: framework_id(random),
                executor: ExecutorId::new("executor-1").expect("valid"),
                task: TaskId::new("task-1").expect("valid"),
                resources: Resources::parse("cpus:1;mem:64").expect("valid"),
                state: TaskState::Running,
                latest_update: Some(UpdateId(random.below(100))),
            }])
            .expect("one task"),
            unacknowledged: BoundedVec::from_vec(vec![status_update(random)]).expect("one update"),
            operations: BoundedVec::new(),
            report: random.below(10),
        })),
        Message::AgentRegistered(AgentRegistered {
            term: Term(random.below(10)),
            agent: agent_id(random),
            report: random.below(10),
        }),
        Message::AgentReregistered(AgentRegistered {
            term: Term(random.below(10)),
            agent: agent_id(random),
            report: random.below(10),
        }),
        Message::ShutdownAgent(ShutdownAgent {
            term: Term(random.below(10)),
            agent: agent_id(random),
        }),
        Message::LeaderChanged(LeaderChanged {
            term: Term(random.below(10)),
        }),
        Message::RunTask(Box::new(RunTask {
            term: Term(random.below(10)),
            framework: framework_id(random),
            executor: ExecutorId::new("executor-1").expect("valid"),
            task: TaskId::new("task-1").expect("valid"),
            resources: Resources::parse("cpus:0.5;mem:128;ports:[31000-31010]").expect("valid"),
            command: TaskCommand::new("sleep 60").expect("valid"),
        })),
        Message::StatusUpdate(status_update(random)),
        Message::StatusAcknowledgement(StatusAcknowledgement {
            term: Term(random.below(10)),
            framework: framework_id(random),
            task: TaskId::new("task-1").expect("valid"),
            update: UpdateId(random.below(100)),
        }),
        Message::KillTask(KillTask {
            term: Term(random.below(10)),
            framework: framework_id(random),
            task: TaskId::new("task-1").expect("valid"),
        }),
        Message::Subscribe(Box::new(Subscribe {
            framework: Some(framework_id(random)),
            info: FrameworkInfo {
                name: Name::new("web").expect("valid"),
                role: Role::new("web").expect("valid"),
                principal: Principal::new("web").expect("valid"),
                failover_timeout: core::time::Duration::from_secs(random.below(1_000_000)),
            },
            highest_term: Term(random.below(10)),
            suppressed: false,
        })),
        Message::Accept(Box::new(Accept {
            framework: framework_id(random),
            offers: BoundedVec::from_vec(vec![OfferId(AssignedId {
                term: Term(random.below(10)),
                sequence: random.below(100),
            })])
            .expect("one offer"),
            operations: BoundedVec::from_vec(vec![Operation {
                id: OperationId::new("launch-1").expect("valid"),
                kind: OperationKind::Launch(TaskSpec {
                    task: TaskId::new("task-1").expect("valid"),
                    executor: ExecutorId::new("executor-1").expect("valid"),
                    resources: Resources::parse("cpus:0.5;mem:64").expect("valid"),
                    command: TaskCommand::new("echo hello").expect("valid"),
                }),
            }])
            .expect("one operation"),
            suppress: true,
        })),
        Message::TaskStatus(Box::new(TaskStatus {
            term: Term(random.below(10)),
            framework: framework_id(random),
            task: TaskId::new("task-1").expect("valid"),
            agent: Some(agent_id(random)),
            state: TaskState::Running,
            reason: None,
            source: StatusSource::Agent(UpdateId(random.below(100))),
        })),
        Message::Reconcile(Box::new(Reconcile {
            framework: framework_id(random),
            tasks: BoundedVec::from_vec(vec![(
                TaskId::new("task-1").expect("valid"),
                Some(agent_id(random)),
            )])
            .expect("one task"),
        })),
    ]
}

fn address() -> Address {
    Address::new("10.0.0.7:5051").expect("valid")
}

fn agent_info() -> AgentInfo {
    AgentInfo {
        hostname: Name::new("node-7").expect("valid"),
        resources: Resources::parse("cpus:4;mem:8192;disk(ops):100").expect("valid"),
    }
}

fn assigned_id(random: &mut SplitMix64) -> AssignedId {
    AssignedId {
        term: Term(random.below(10)),
        sequence: random.below(100),
    }
}

fn agent_id(random: &mut SplitMix64) -> AgentId {
    AgentId(assigned_id(random))
}

fn framework_id(random: &mut SplitMix64) -> FrameworkId {
    FrameworkId(assigned_id(random))
}

fn status_update(random: &mut SplitMix64) -> StatusUpdate {
    StatusUpdate {
        agent: agent_id(random),
        framework: framework_id(random),
        task: TaskId::new("task-1").expect("valid"),
        state: TaskState::Failed,
        reason: Some(TaskStatusReason::ExecutorTerminated),
        update: UpdateId(random.below(100)),
    }
}

/// Decodes `iterations` mutated frames drawn from `seed`.
///
/// # Panics
/// If the decoder panics, or accepts a message that does not round-trip; the panic message
/// names the seed and iteration to replay.
pub fn fuzz_frames(seed: u64, iterations: u64) -> FuzzReport {
    let mut random = SplitMix64::new(seed);
    let mut report = FuzzReport::default();
    for iteration in 0..iterations {
        let messages = seed_messages(&mut random);
        let message =
            &messages[usize::try_from(random.below(messages.len() as u64)).expect("small")];
        let mut bytes = encode_frame(message).expect("seed messages encode");
        mutate(&mut random, &mut bytes);
        let result = std::panic::catch_unwind(|| decode_frame(&bytes));
        let decoded = result.unwrap_or_else(|_| {
            panic!("decoder panicked: seed {seed}, iteration {iteration}, input {bytes:02x?}")
        });
        report.inputs += 1;
        match decoded {
            Ok(message) => {
                report.accepted += 1;
                let again = encode_frame(&message).expect("decoded messages encode");
                assert_eq!(
                    decode_frame(&again).as_ref(),
                    Ok(&message),
                    "an accepted message does not round-trip: seed {seed}, iteration {iteration}"
                );
            }
            Err(error) => report.refused[error_index(&error)] += 1,
        }
    }
    report
}

fn error_index(error: &FrameError) -> usize {
    match error {
        FrameError::Short { .. } => 0,
        FrameError::Truncated { .. } => 1,
        FrameError::Oversized { .. } => 2,
        FrameError::TrailingBytes { .. } => 3,
        FrameError::UnknownVersion { .. } => 4,
        FrameError::Malformed(_) | FrameError::Encode => 5,
    }
}

fn mutate(random: &mut SplitMix64, bytes: &mut Vec<u8>) {
    for _ in 0..=random.below(3) {
        let length = bytes.len() as u64;
        match random.below(6) {
            0 if length > 0 => {
                let index = usize::try_from(random.below(length)).expect("small");
                bytes[index] ^= 1 << random.below(8);
            }
            1 if length > 0 => {
                let index = usize::try_from(random.below(length)).expect("small");
                bytes[index] = random.next_u64() as u8;
            }
            2 => bytes.truncate(usize::try_from(random.below(length + 1)).expect("small")),
            3 => bytes.extend((0..random.below(8)).map(|_| random.next_u64() as u8)),
            4 if length >= 4 => {
                // Rewrite the declared length to match the (mutated) body, so the body is read.
                let body = u32::try_from(bytes.len() - 4).expect("small");
                bytes[..4].copy_from_slice(&body.to_be_bytes());
            }
            _ => {}
        }
    }
}
