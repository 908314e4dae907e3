//! Resource operations: how reserve, unreserve, create volume and destroy volume change an
//! agent's resources, and who may do them.
//!
//! Each operation *converts* resources: it takes some of an agent's resources (`consumed`)
//! and puts back the same amounts under other keys (`produced`). Reserving `cpus:1` for role
//! `web` consumes `cpus:1` and produces `cpus(web, by principal p):1`; creating a volume
//! consumes reserved disk and produces the same disk carrying the volume. The leader applies a
//! conversion to the offers it came from and to its view of the agent; the agent applies it to
//! its checkpointed resources, once per operation id (R5). Nothing is ever created or lost:
//! [`Conversion::produced`] always has the amounts of [`Conversion::consumed`].
//!
//! A persistent volume lives on disk reserved for a role, is offered only to that role
//! (R3: its key carries the reservation), and its data is deleted only by `DestroyVolume`
//! (R4): every other change keeps its key, and so its directory.

use alloc::collections::BTreeSet;
use core::fmt;

use crate::ids::{Principal, Role};
use crate::message::OperationKind;
use crate::resources::{DISK, PersistentVolume, Reservation, ResourceKey, Resources};

/// What an operation takes and gives back.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Conversion {
    /// Taken from the agent's resources.
    pub consumed: Resources,
    /// Put back in their place.
    pub produced: Resources,
}

/// Why an operation does not suit its resources.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OperationError {
    /// No resources named.
    Empty,
    /// Reserve: some resources are reserved already, or carry a volume.
    NotUnreserved,
    /// Unreserve: some resources are not dynamically reserved for the framework's role.
    NotReservedForRole,
    /// Create volume: the source is not disk reserved for the framework's role without a
    /// volume.
    NotReservedDisk,
    /// Destroy volume: the resources are not one volume of the framework's role.
    NotAVolumeOfRole,
    /// A launch is not a conversion.
    NotAConversion,
    /// The converted resources would count a volume or a range twice.
    Invalid,
}

impl fmt::Display for OperationError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            OperationError::Empty => "the operation names no resources",
            OperationError::NotUnreserved => {
                "only unreserved resources without volumes can be reserved"
            }
            OperationError::NotReservedForRole => {
                "only resources dynamically reserved for the framework's role can be unreserved"
            }
            OperationError::NotReservedDisk => {
                "a volume is created on disk reserved for the framework's role, without a volume"
            }
            OperationError::NotAVolumeOfRole => {
                "only a persistent volume of the framework's role can be destroyed"
            }
            OperationError::NotAConversion => "a launch does not convert resources",
            OperationError::Invalid => "the converted resources would count something twice",
        })
    }
}

impl core::error::Error for OperationError {}

/// The conversion `kind` makes for a framework of `role` whose principal is `principal`.
pub fn conversion(
    kind: &OperationKind,
    role: &Role,
    principal: &Principal,
) -> Result<Conversion, OperationError> {
    let source = match kind {
        OperationKind::Launch(_) => return Err(OperationError::NotAConversion),
        OperationKind::Reserve(source)
        | OperationKind::Unreserve(source)
        | OperationKind::CreateVolume { source, .. }
        | OperationKind::DestroyVolume(source) => source,
    };
    if source.is_empty() {
        return Err(OperationError::Empty);
    }
    let produced = match kind {
        OperationKind::Launch(_) => unreachable!("handled above"),
        OperationKind::Reserve(_) => {
            if source
                .keys()
                .any(|key| key.reservation != Reservation::Unreserved || key.volume.is_some())
            {
                return Err(OperationError::NotUnreserved);
            }
            source.rekeyed(|key| {
                key.clone().reserved(Reservation::Dynamic {
                    role: role.clone(),
                    principal: principal.clone(),
                })
            })
        }
        OperationKind::Unreserve(_) => {
            let reserved = |key: &ResourceKey| {
                matches!(&key.reservation, Reservation::Dynamic { role: reserved, .. } if reserved == role)
                    && key.volume.is_none()
            };
            if !source.keys().all(reserved) {
                return Err(OperationError::NotReservedForRole);
            }
            source.rekeyed(|key| key.clone().reserved(Reservation::Unreserved))
        }
        OperationKind::CreateVolume { volume, .. } => {
            let disk = |key: &ResourceKey| {
                key.name.as_str() == DISK
                    && key.reservation.role() == Some(role)
                    && key.volume.is_none()
            };
            if !source.keys().all(disk) || source.keys().count() != 1 {
                return Err(OperationError::NotReservedDisk);
            }
            source.rekeyed(|key| ResourceKey {
                volume: Some(volume.clone()),
                ..key.clone()
            })
        }
        OperationKind::DestroyVolume(_) => {
            let volumes: BTreeSet<&PersistentVolume> =
                source.keys().filter_map(|key| key.volume.as_ref()).collect();
            let of_role = source
                .keys()
                .all(|key| key.volume.is_some() && key.reservation.role() == Some(role));
            if !of_role || volumes.len() != 1 || source.keys().count() != 1 {
                return Err(OperationError::NotAVolumeOfRole);
            }
            source.rekeyed(|key| ResourceKey {
                volume: None,
                ..key.clone()
            })
        }
    }
    .map_err(|_| OperationError::Invalid)?;
    Ok(Conversion {
        consumed: source.clone(),
        produced,
    })
}

/// Applies `conversion` to `resources`, if they hold what it consumes.
pub fn apply(resources: &Resources, conversion: &Conversion) -> Option<Resources> {
    resources
        .checked_sub(&conversion.consumed)
        .ok()?
        .checked_add(&conversion.produced)
        .ok()
}

/// Who may do what in which role: deny by default once configured.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AccessList {
    /// (principal, role) pairs that may register frameworks.
    pub register: BTreeSet<(Principal, Role)>,
    /// (principal, role) pairs that may reserve and unreserve.
    pub reserve: BTreeSet<(Principal, Role)>,
    /// (principal, role) pairs that may create and destroy volumes.
    pub volumes: BTreeSet<(Principal, Role)>,
}

/// What a principal asks to do, for [`authorized`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    /// Register a framework in a role.
    Register,
    /// Reserve or unreserve for a role.
    Reserve,
    /// Create or destroy volumes in a role.
    Volumes,
}

/// Whether `principal` may do `permission` in `role`: always without an access list, and only
/// if listed with one.
pub fn authorized(
    access: Option<&AccessList>,
    permission: Permission,
    principal: &Principal,
    role: &Role,
) -> bool {
    let Some(access) = access else {
        return true;
    };
    let pairs = match permission {
        Permission::Register => &access.register,
        Permission::Reserve => &access.reserve,
        Permission::Volumes => &access.volumes,
    };
    pairs.contains(&(principal.clone(), role.clone()))
}

/// The permission an operation needs, if any.
pub fn permission_of(kind: &OperationKind) -> Option<Permission> {
    match kind {
        OperationKind::Launch(_) => None,
        OperationKind::Reserve(_) | OperationKind::Unreserve(_) => Some(Permission::Reserve),
        OperationKind::CreateVolume { .. } | OperationKind::DestroyVolume(_) => {
            Some(Permission::Volumes)
        }
    }
}

#[cfg(test)]
mod tests;
