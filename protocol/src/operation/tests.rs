//! The conversions of each operation and the access list.

use alloc::string::ToString;

use super::*;
use crate::resources::ContainerPath;

fn role() -> Role {
    Role::new("web").expect("valid")
}

fn principal() -> Principal {
    Principal::new("alice").expect("valid")
}

fn resources(text: &str) -> Resources {
    Resources::parse(text).expect("valid")
}

fn reserved(text: &str) -> Resources {
    conversion(
        &OperationKind::Reserve(resources(text)),
        &role(),
        &principal(),
    )
    .expect("reservable")
    .produced
}

fn volume(id: &str) -> PersistentVolume {
    PersistentVolume {
        id: crate::ids::VolumeId::new(id).expect("valid"),
        container_path: ContainerPath::new("data").expect("valid"),
    }
}

#[test]
fn reserve_and_unreserve_convert_the_same_amounts_back_and_forth() {
    let agent = resources("cpus:4;mem:1024;disk:100");
    let reserve = conversion(
        &OperationKind::Reserve(resources("cpus:1;disk:50")),
        &role(),
        &principal(),
    )
    .expect("valid");
    let after = apply(&agent, &reserve).expect("the agent holds it");
    assert_eq!(after.reserved_for(&role()).total("cpus").to_string(), "1");
    assert_eq!(after.stripped(), agent, "nothing created or lost");
    let unreserve = conversion(
        &OperationKind::Unreserve(reserve.produced.clone()),
        &role(),
        &principal(),
    )
    .expect("valid");
    assert_eq!(apply(&after, &unreserve), Some(agent));
}

#[test]
fn a_volume_is_created_on_reserved_disk_and_destroyed_back_to_it() {
    let disk = reserved("disk:50");
    let create = conversion(
        &OperationKind::CreateVolume {
            source: disk.clone(),
            volume: volume("v1"),
        },
        &role(),
        &principal(),
    )
    .expect("valid");
    assert_eq!(create.produced.volumes().count(), 1);
    let destroy = conversion(
        &OperationKind::DestroyVolume(create.produced.clone()),
        &role(),
        &principal(),
    )
    .expect("valid");
    assert_eq!(destroy.produced, disk);
}

#[test]
fn operations_on_the_wrong_resources_are_refused() {
    let kinds = [
        (
            OperationKind::Reserve(reserved("cpus:1")),
            OperationError::NotUnreserved,
        ),
        (
            OperationKind::Reserve(Resources::new()),
            OperationError::Empty,
        ),
        (
            OperationKind::Unreserve(resources("cpus:1")),
            OperationError::NotReservedForRole,
        ),
        (
            OperationKind::Unreserve(resources("cpus(web):1")),
            OperationError::NotReservedForRole,
        ),
        (
            OperationKind::CreateVolume {
                source: resources("disk:50"),
                volume: volume("v1"),
            },
            OperationError::NotReservedDisk,
        ),
        (
            OperationKind::CreateVolume {
                source: reserved("cpus:1"),
                volume: volume("v1"),
            },
            OperationError::NotReservedDisk,
        ),
        (
            OperationKind::DestroyVolume(reserved("disk:50")),
            OperationError::NotAVolumeOfRole,
        ),
    ];
    for (kind, expected) in kinds {
        assert_eq!(
            conversion(&kind, &role(), &principal()),
            Err(expected.clone()),
            "{kind:?}"
        );
    }
    // Another role's reservation cannot be unreserved.
    let other = conversion(
        &OperationKind::Reserve(resources("cpus:1")),
        &Role::new("ops").expect("valid"),
        &principal(),
    )
    .expect("valid")
    .produced;
    assert_eq!(
        conversion(&OperationKind::Unreserve(other), &role(), &principal()),
        Err(OperationError::NotReservedForRole)
    );
}

#[test]
fn without_an_access_list_everything_is_allowed_and_with_one_only_what_it_lists() {
    assert!(authorized(None, Permission::Reserve, &principal(), &role()));
    let mut access = AccessList::default();
    access.reserve.insert((principal(), role()));
    assert!(authorized(
        Some(&access),
        Permission::Reserve,
        &principal(),
        &role()
    ));
    assert!(!authorized(
        Some(&access),
        Permission::Volumes,
        &principal(),
        &role()
    ));
    assert!(!authorized(
        Some(&access),
        Permission::Reserve,
        &Principal::new("mallory").expect("valid"),
        &role()
    ));
}
