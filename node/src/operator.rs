//! Operator commands for reservations and volumes: `berth reserve`, `berth unreserve`,
//! `berth volume create`, `berth volume destroy`.
//!
//! Each runs as a short-lived framework of the role concerned (principal: the operator's), so
//! that the operation goes through the same path and the same checks as a framework's: it is
//! applied on an offer that holds the resources, authorized against the access list,
//! persisted by the agent before it is acknowledged, and applied at most once. The framework
//! has a failover timeout of zero: the leader forgets it once it is gone.

use std::time::Duration;

use anyhow::Context;
use berth_protocol::Address;
use berth_protocol::bounded::Name;
use berth_protocol::ids::{Principal, Role, VolumeId};
use berth_protocol::message::{OperationKind, OperationState};
use berth_protocol::operation::conversion;
use berth_protocol::registry::FrameworkInfo;
use berth_protocol::resources::{ContainerPath, PersistentVolume, Resources};
use berth_protocol::scheduler::{SchedulerAction, SchedulerEvent};

use crate::run::Framework;
use crate::transport::ClusterSecret;

/// An operator operation.
#[derive(Clone, Debug)]
pub enum OperatorRequest {
    /// Reserve unreserved resources for the role.
    Reserve(Resources),
    /// Unreserve resources reserved for the role by this principal.
    Unreserve(Resources),
    /// Reserve `size_mb` of disk and create a volume on it.
    CreateVolume {
        /// The volume's id.
        id: VolumeId,
        /// Its size, MiB.
        size_mb: u64,
        /// Where tasks see it.
        path: ContainerPath,
    },
    /// Destroy a volume (its data is deleted) and unreserve its disk.
    DestroyVolume {
        /// The volume's id.
        id: VolumeId,
        /// Its size, MiB.
        size_mb: u64,
        /// Where tasks see it.
        path: ContainerPath,
    },
}

/// Where and as whom.
#[derive(Clone, Debug)]
pub struct OperatorOptions {
    /// The masters.
    pub masters: Vec<Address>,
    /// The cluster's name.
    pub cluster: Name,
    /// Its secret.
    pub secret: ClusterSecret,
    /// The role.
    pub role: Role,
    /// The principal the operation is done as.
    pub principal: Principal,
    /// How long to wait for an offer that holds the resources.
    pub timeout: Duration,
}

/// The operations a request becomes, in order.
pub fn operations(
    request: &OperatorRequest,
    role: &Role,
    principal: &Principal,
) -> anyhow::Result<Vec<OperationKind>> {
    let reserved = |resources: &Resources| -> anyhow::Result<Resources> {
        Ok(
            conversion(&OperationKind::Reserve(resources.clone()), role, principal)
                .context("only unreserved resources can be named")?
                .produced,
        )
    };
    Ok(match request {
        OperatorRequest::Reserve(resources) => vec![OperationKind::Reserve(resources.clone())],
        OperatorRequest::Unreserve(resources) => {
            vec![OperationKind::Unreserve(reserved(resources)?)]
        }
        OperatorRequest::CreateVolume { id, size_mb, path }
        | OperatorRequest::DestroyVolume { id, size_mb, path } => {
            let disk = Resources::parse(&format!("disk:{size_mb}")).context("the size")?;
            let source = reserved(&disk)?;
            let volume = PersistentVolume {
                id: id.clone(),
                container_path: path.clone(),
            };
            let create = OperationKind::CreateVolume {
                source: source.clone(),
                volume,
            };
            if matches!(request, OperatorRequest::CreateVolume { .. }) {
                vec![OperationKind::Reserve(disk), create]
            } else {
                let with_volume = conversion(&create, role, principal)
                    .context("the volume")?
                    .produced;
                vec![
                    OperationKind::DestroyVolume(with_volume),
                    OperationKind::Unreserve(source),
                ]
            }
        }
    })
}

/// Applies `request`; prints each operation's outcome. Fails unless every one finished.
pub async fn apply(options: OperatorOptions, request: OperatorRequest) -> anyhow::Result<()> {
    let operations = operations(&request, &options.role, &options.principal)?;
    let expected = operations.len();
    let info = FrameworkInfo {
        name: Name::new("berth-operator").expect("valid"),
        role: options.role.clone(),
        principal: options.principal.clone(),
        failover_timeout: Duration::ZERO,
    };
    let mut framework = Framework::start(
        options.masters.clone(),
        info,
        options.cluster.clone(),
        options.secret.clone(),
    )?;
    framework
        .events
        .send(SchedulerEvent::Submit(operations))
        .await
        .context("the scheduler stopped")?;
    let deadline = tokio::time::Instant::now() + options.timeout;
    let mut finished = 0;
    let mut failed = None;
    while finished < expected && failed.is_none() {
        let Ok(Some(action)) = tokio::time::timeout_at(deadline, framework.actions.recv()).await
        else {
            break;
        };
        match action {
            SchedulerAction::Operation { operation, state } => match state {
                OperationState::Finished => {
                    println!("{operation}: finished");
                    finished += 1;
                }
                OperationState::Failed(failure) => {
                    println!("{operation}: failed ({failure:?})");
                    failed = Some(failure);
                }
            },
            SchedulerAction::Refused(reason) => {
                framework.stop().await?;
                anyhow::bail!("the leader refused the operator's subscription: {reason:?}");
            }
            _ => {}
        }
    }
    framework.stop().await?;
    match failed {
        Some(failure) => anyhow::bail!("the operation failed: {failure:?}"),
        None if finished < expected => anyhow::bail!(
            "no offer of role {} held the resources within {:?}",
            options.role,
            options.timeout
        ),
        None => Ok(()),
    }
}
