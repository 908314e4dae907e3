//! Whole-cluster scenarios on the in-memory cluster: the persistent-storage story end to end.

use alloc::vec;

use super::*;
use crate::ids::{OperationId, Principal};
use crate::message::{OperationKind, OperationState, TaskSpec};
use crate::operation::conversion;
use crate::resources::{ContainerPath, PersistentVolume};
use crate::scheduler::SchedulerEvent;
use crate::task::TaskCommand;

const SECOND: Duration = Duration::from_secs(1);

fn web() -> Role {
    Role::new("web").expect("valid")
}

fn volume() -> PersistentVolume {
    PersistentVolume {
        id: VolumeId::new("v1").expect("valid"),
        container_path: ContainerPath::new("data").expect("valid"),
    }
}

/// Reserve, create a volume on the reserved disk, and the resources a task on the volume
/// uses.
fn storage_plan() -> (Vec<OperationKind>, Resources) {
    let principal = Principal::new("web").expect("valid");
    let reserve =
        OperationKind::Reserve(Resources::parse("cpus:0.5;mem:128;disk:100").expect("valid"));
    let reserved = conversion(&reserve, &web(), &principal)
        .expect("reservable")
        .produced;
    let disk = reserved.filter(|key| key.name.as_str() == "disk");
    let create = OperationKind::CreateVolume {
        source: disk.clone(),
        volume: volume(),
    };
    let with_volume = conversion(&create, &web(), &principal)
        .expect("a volume on reserved disk")
        .produced;
    let task_resources = reserved
        .checked_sub(&disk)
        .and_then(|rest| rest.checked_add(&with_volume))
        .expect("the same amounts");
    (vec![reserve, create], task_resources)
}

fn task(name: &str, resources: &Resources) -> TaskSpec {
    TaskSpec {
        task: TaskId::new(name).expect("valid"),
        executor: ExecutorId::new(name).expect("valid"),
        resources: resources.clone(),
        command: TaskCommand::new("cat data/log; echo hello >> data/log").expect("valid"),
    }
}

fn running(cluster: &Cluster, task: &str) -> bool {
    cluster
        .scheduler("s1")
        .states_of(task)
        .last()
        .is_some_and(|state| *state == TaskState::Running)
}

#[test]
fn a_volume_outlives_its_task_an_agent_restart_and_a_master_failover() {
    let mut cluster = Cluster::new();
    cluster.add_masters(3);
    cluster.add_agent("a1", "cpus:2;mem:1024;disk:1000");
    let (mut plan, task_resources) = storage_plan();
    plan.push(OperationKind::Launch(task("t1", &task_resources)));
    cluster.add_scheduler("s1", "web", |config| config.with_plans(vec![plan]));

    // Reserve, create the volume and launch the task on it, in one accept.
    assert!(
        cluster.run_until(10 * SECOND, |c| running(c, "t1")),
        "t1 runs"
    );
    let finished_operations = cluster
        .scheduler("s1")
        .actions
        .iter()
        .filter(|action| {
            matches!(
                action,
                SchedulerAction::Operation {
                    state: OperationState::Finished,
                    ..
                }
            )
        })
        .count();
    assert_eq!(
        finished_operations, 2,
        "the reservation and the volume are acknowledged"
    );
    cluster.write_volume("a1", "web", "v1", b"hello\n");
    cluster.finish_task("a1", "t1", true);
    assert!(cluster.run_until(10 * SECOND, |c| {
        c.scheduler("s1").states_of("t1").last() == Some(&TaskState::Finished)
    }));

    // The leader dies; the agent re-registers with the new one, its reservation and volume
    // with it.
    let old = cluster.leader().expect("a leader");
    cluster.crash(old.as_str());
    assert!(cluster.run_until(10 * SECOND, |c| {
        c.leader().is_some_and(|leader| {
            leader != old
                && c.master(leader.as_str())
                    .machine()
                    .and_then(Master::agent_directory)
                    .is_some_and(|directory| {
                        directory.agents().values().any(|view| view.registered)
                    })
        })
    }));
    // The agent process restarts: its checkpoint keeps the reservation and the volume.
    cluster.crash("a1");
    cluster.restart("a1");
    let durable = cluster.agent("a1").node().durable();
    assert!(
        durable
            .resources
            .as_ref()
            .is_some_and(|resources| resources.volumes().count() == 1),
        "the volume is checkpointed"
    );
    assert_eq!(
        cluster.read_volume("a1", "web", "v1"),
        Some(&b"hello\n"[..]),
        "R4"
    );

    // A second task on the same reserved resources and volume: the volume was offered back to
    // its role.
    cluster.scheduler_event("s1", SchedulerEvent::Launch(task("t2", &task_resources)));
    let ran = cluster.run_until(20 * SECOND, |c| running(c, "t2"));
    assert!(ran, "t2 runs on the volume");
    assert_eq!(
        cluster.read_volume("a1", "web", "v1"),
        Some(&b"hello\n"[..])
    );

    // The volume is not offered while t2 uses it, so it can be destroyed only after t2 ends;
    // only then is the data gone (R4).
    let principal = Principal::new("web").expect("valid");
    let with_volume = task_resources.filter(|key| key.volume.is_some());
    let destroy = OperationKind::DestroyVolume(with_volume);
    conversion(&destroy, &web(), &principal).expect("a volume of the role");
    cluster.finish_task("a1", "t2", true);
    assert!(cluster.run_until(10 * SECOND, |c| {
        c.scheduler("s1").states_of("t2").last() == Some(&TaskState::Finished)
    }));
    cluster.scheduler_event("s1", SchedulerEvent::Submit(vec![destroy]));
    let destroyed = OperationId::new("operation-4").expect("valid");
    assert!(cluster.run_until(10 * SECOND, |c| {
        c.scheduler("s1").actions.iter().any(|action| {
            matches!(action, SchedulerAction::Operation { operation, state: OperationState::Finished }
                if *operation == destroyed)
        })
    }));
    assert_eq!(
        cluster.read_volume("a1", "web", "v1"),
        None,
        "DestroyVolume deleted the data"
    );
}
