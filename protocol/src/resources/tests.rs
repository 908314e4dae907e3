use alloc::string::ToString;
use alloc::vec;

use proptest::prelude::*;

use super::*;

fn parse(text: &str) -> Resources {
    Resources::parse(text).expect("valid resource string")
}

fn parse_error(text: &str) -> ResourceParseError {
    Resources::parse(text).expect_err("invalid resource string")
}

fn role(name: &str) -> Role {
    Role::new(name).expect("valid role")
}

fn volume(id: &str, size: u64) -> Resources {
    let key = ResourceKey {
        name: Name::new(DISK).expect("valid"),
        reservation: Reservation::Dynamic {
            role: role("db"),
            principal: Principal::new("alice").expect("valid"),
        },
        volume: Some(PersistentVolume {
            id: VolumeId::new(id).expect("valid"),
            container_path: ContainerPath::new("data").expect("valid"),
        }),
    };
    Resources::scalar(key, Quantity::from_units(size).expect("fits"))
}

#[test]
fn parses_the_agent_example() {
    let resources = parse("cpus:4;mem:8192;disk:100000;ports:[31000-32000];cpus(ops):2");
    assert_eq!(resources.total("cpus"), Quantity::from_thousandths(6_000));
    assert_eq!(
        resources.total("mem"),
        Quantity::from_thousandths(8_192_000)
    );
    assert_eq!(
        resources.reserved_for(&role("ops")).total("cpus"),
        Quantity::from_thousandths(2_000)
    );
    assert_eq!(
        resources.unreserved().total("cpus"),
        Quantity::from_thousandths(4_000)
    );
    let ports: Vec<_> = resources.range_sets().collect();
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0].1.count(), 1001);
}

#[test]
fn parses_fractions_whitespace_and_trailing_separator() {
    let resources = parse(" cpus : 0.125 ; mem:64 ; ");
    assert_eq!(resources.total("cpus"), Quantity::from_thousandths(125));
    assert_eq!(resources.to_string(), "cpus:0.125;mem:64");
    assert_eq!(parse(""), Resources::new());
    assert_eq!(parse("cpus:0"), Resources::new());
}

#[test]
fn display_round_trips_through_parse() {
    let text = "cpus:4;cpus(ops):0.5;disk:100;ports:[1-5,10-20]";
    assert_eq!(parse(text).to_string(), text);
}

#[test]
fn each_parse_error_names_the_offending_part() {
    let cases: [(&str, &str, ResourceParseErrorKind); 13] = [
        ("cpus:4;mem", "mem", ResourceParseErrorKind::MissingColon),
        (
            "cp us:4",
            "cp us:4",
            ResourceParseErrorKind::InvalidName(NameError::InvalidCharacter { character: ' ' }),
        ),
        (
            ":4",
            ":4",
            ResourceParseErrorKind::InvalidName(NameError::Empty),
        ),
        (
            "cpus(ops:2",
            "cpus(ops:2",
            ResourceParseErrorKind::UnclosedRole,
        ),
        (
            "cpus():2",
            "cpus():2",
            ResourceParseErrorKind::InvalidRole(NameError::Empty),
        ),
        (
            "cpus(a b):2",
            "cpus(a b):2",
            ResourceParseErrorKind::InvalidRole(NameError::InvalidCharacter { character: ' ' }),
        ),
        (
            "cpus:four",
            "cpus:four",
            ResourceParseErrorKind::InvalidScalar,
        ),
        ("cpus:-1", "cpus:-1", ResourceParseErrorKind::InvalidScalar),
        (
            "cpus:0.0001",
            "cpus:0.0001",
            ResourceParseErrorKind::TooManyDecimals,
        ),
        (
            "mem:99999999999999999999",
            "mem:99999999999999999999",
            ResourceParseErrorKind::ScalarTooLarge,
        ),
        (
            "ports:[1-x]",
            "ports:[1-x]",
            ResourceParseErrorKind::InvalidRanges,
        ),
        (
            "ports:[9-1]",
            "ports:[9-1]",
            ResourceParseErrorKind::ReversedRange,
        ),
        (
            "ports:[1-5,3-7]",
            "ports:[1-5,3-7]",
            ResourceParseErrorKind::OverlappingRanges,
        ),
    ];
    for (text, item, kind) in cases {
        let error = parse_error(text);
        assert_eq!(error.item, item, "for {text}");
        assert_eq!(error.kind, kind, "for {text}");
        assert!(error.to_string().contains(item), "{error} names {item}");
    }
    let error = parse_error("cpus:1;mem:2;cpus:3");
    assert_eq!(
        (error.item.as_str(), error.kind),
        ("cpus:3", ResourceParseErrorKind::Duplicate)
    );
    assert_eq!(
        parse_error("cpus:1.").kind,
        ResourceParseErrorKind::InvalidScalar
    );
    assert_eq!(
        parse_error("cpus:.5").kind,
        ResourceParseErrorKind::InvalidScalar
    );
    assert_eq!(
        parse_error("mem:18446744073709552").kind,
        ResourceParseErrorKind::ScalarTooLarge
    );
    assert_eq!(
        parse_error("ports:1-5]").kind,
        ResourceParseErrorKind::InvalidScalar
    );
    assert_eq!(
        parse_error("ports:[1-5").kind,
        ResourceParseErrorKind::InvalidRanges
    );
    assert_eq!(
        parse_error("ports:[]").kind,
        ResourceParseErrorKind::InvalidRanges
    );
}

#[test]
fn static_and_unreserved_resources_of_one_name_are_distinct() {
    let resources = parse("cpus:1;cpus(ops):2;cpus(web):3");
    assert_eq!(
        resources.allocatable_to(&role("ops")).total("cpus"),
        Quantity::from_thousandths(3_000)
    );
    assert_eq!(
        resources.allocatable_to(&role("web")).total("cpus"),
        Quantity::from_thousandths(4_000)
    );
    assert_eq!(
        resources.allocatable_to(&role("other")).total("cpus"),
        Quantity::from_thousandths(1_000)
    );
}

#[test]
fn subtraction_needs_containment() {
    let total = parse("cpus:4;ports:[100-200]");
    let used = parse("cpus:1.5;ports:[150-160]");
    let left = total.checked_sub(&used).expect("contained");
    assert_eq!(left.to_string(), "cpus:2.5;ports:[100-149,161-200]");
    assert_eq!(left.checked_add(&used), Ok(total.clone()));
    assert_eq!(used.checked_sub(&total), Err(ResourcesError::NotContained));
    assert_eq!(
        total.checked_sub(&parse("cpus(ops):1")),
        Err(ResourcesError::NotContained),
        "a reservation is a different resource"
    );
}

#[test]
fn adding_never_counts_a_range_or_volume_twice() {
    let ports = parse("ports:[1-10]");
    assert!(matches!(
        ports.checked_add(&parse("ports:[10-12]")),
        Err(ResourcesError::OverlappingRanges(_))
    ));
    let data = volume("v1", 10);
    assert!(matches!(
        data.checked_add(&data),
        Err(ResourcesError::DuplicateVolume(_))
    ));
    let big = Resources::scalar(
        ResourceKey::unreserved("x"),
        Quantity::from_thousandths(u64::MAX),
    );
    assert!(matches!(
        big.checked_add(&big),
        Err(ResourcesError::Overflow(_))
    ));
}

#[test]
fn a_volume_is_contained_only_whole() {
    let data = volume("v1", 10);
    let half = volume("v1", 5);
    assert!(data.contains(&data));
    assert!(!data.contains(&half));
    assert_eq!(data.checked_sub(&half), Err(ResourcesError::NotContained));
    assert_eq!(data.checked_sub(&data), Ok(Resources::new()));
    assert_eq!(data.volumes().count(), 1);
}

#[test]
fn container_paths_cannot_escape_the_sandbox() {
    assert!(ContainerPath::new("data/logs").is_ok());
    for bad in ["a/../b", "a//b", "a/./b", "a/"] {
        assert_eq!(
            ContainerPath::new(bad),
            Err(ContainerPathError::EscapesSandbox),
            "{bad}"
        );
    }
    assert!(matches!(
        ContainerPath::new("/abs"),
        Err(ContainerPathError::InvalidName(_))
    ));
}

#[test]
fn decoding_refuses_non_canonical_or_double_counted_lists() {
    let cpus = Resource {
        key: ResourceKey::unreserved("cpus"),
        value: ResourceValue::Scalar(Quantity::from_thousandths(1)),
    };
    let zero = Resource {
        key: ResourceKey::unreserved("mem"),
        value: ResourceValue::Scalar(Quantity::ZERO),
    };
    let mem = Resource {
        key: ResourceKey::unreserved("mem"),
        value: ResourceValue::Scalar(Quantity::from_thousandths(1)),
    };
    let ports = |key: ResourceKey, ranges: &[ValueRange]| Resource {
        key,
        value: ResourceValue::Ranges(
            RangeSet::from_ranges(ranges.iter().copied()).expect("valid ranges"),
        ),
    };
    let port_range = ValueRange { start: 1, end: 2 };
    let ports_key = ResourceKey::unreserved("ports");
    let mut ports_on_a_volume = ResourceKey::unreserved("ports");
    ports_on_a_volume.volume = Some(PersistentVolume {
        id: VolumeId::new("v").expect("valid"),
        container_path: ContainerPath::new("data").expect("valid"),
    });
    for list in [
        vec![cpus.clone(), cpus.clone()],
        vec![zero],
        vec![mem.clone(), cpus.clone()],
        vec![ports(ports_key.clone(), &[port_range]), cpus.clone()],
        vec![cpus.clone(), ports(ports_key.clone(), &[])],
        vec![
            ports(ports_key.clone(), &[port_range]),
            ports(ports_key.clone(), &[ValueRange { start: 5, end: 6 }]),
        ],
        vec![ports(ports_on_a_volume, &[port_range])],
    ] {
        let bytes = postcard::to_allocvec(&list).expect("encodes");
        assert!(
            postcard::from_bytes::<Resources>(&bytes).is_err(),
            "{list:?}"
        );
    }
    let canonical = vec![cpus, mem, ports(ports_key, &[port_range])];
    let bytes = postcard::to_allocvec(&canonical).expect("encodes");
    assert_eq!(
        postcard::from_bytes::<Resources>(&bytes).map(|resources| resources.to_list()),
        Ok(canonical)
    );
    let unsorted = vec![
        ValueRange { start: 5, end: 6 },
        ValueRange { start: 1, end: 2 },
    ];
    let bytes = postcard::to_allocvec(&unsorted).expect("encodes");
    assert!(postcard::from_bytes::<RangeSet>(&bytes).is_err());
}

/// A bag with every kind of key: unreserved, static and dynamic reservations, a persistent
/// volume, scalars and ranges.
fn every_kind_of_key() -> Resources {
    parse("cpus:4;mem:8192;ports:[31000-32000,33000-33099];cpus(ops):0.5")
        .checked_add(&volume("db-1", 100))
        .expect("disjoint")
}

/// The wire form of [`every_kind_of_key`], as written when `Resources` was two `BTreeMap`s:
/// a change of representation must not change a byte of it.
const EVERY_KIND_OF_KEY_WIRE: &[u8] = &[
    5, 4, 99, 112, 117, 115, 0, 0, 0, 160, 31, 4, 99, 112, 117, 115, 1, 3, 111, 112, 115, 0, 0,
    244, 3, 4, 100, 105, 115, 107, 2, 2, 100, 98, 5, 97, 108, 105, 99, 101, 1, 4, 100, 98, 45, 49,
    4, 100, 97, 116, 97, 0, 160, 141, 6, 3, 109, 101, 109, 0, 0, 0, 128, 128, 244, 3, 5, 112, 111,
    114, 116, 115, 0, 0, 1, 2, 152, 242, 1, 128, 250, 1, 232, 129, 2, 203, 130, 2,
];

#[test]
fn wire_form_is_unchanged() {
    let bag = every_kind_of_key();
    assert_eq!(
        postcard::to_allocvec(&bag).expect("encodes"),
        EVERY_KIND_OF_KEY_WIRE
    );
    assert_eq!(
        postcard::from_bytes::<Resources>(EVERY_KIND_OF_KEY_WIRE),
        Ok(bag)
    );
}

#[test]
fn debug_form_shows_maps() {
    let bag = parse("cpus:1;ports:[1-2]");
    assert_eq!(
        alloc::format!("{bag:?}"),
        "Resources { scalars: {ResourceKey { name: \"cpus\", reservation: Unreserved, volume: None }: \
         Quantity(1000)}, ranges: {ResourceKey { name: \"ports\", reservation: Unreserved, volume: \
         None }: RangeSet([ValueRange { start: 1, end: 2 }])} }"
    );
}

/// Records what is hashed, so that two values can be shown to hash alike under any hasher.
#[derive(Default)]
struct HashRecorder(Vec<u8>);

impl core::hash::Hasher for HashRecorder {
    fn finish(&self) -> u64 {
        0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }
}

fn hashed(value: &impl core::hash::Hash) -> Vec<u8> {
    let mut recorder = HashRecorder::default();
    value.hash(&mut recorder);
    recorder.0
}

/// The bag as two maps, the representation `Resources` had first. The model checker's state
/// counts depend on `Resources` ordering and hashing exactly as these do.
fn as_maps(
    bag: &Resources,
) -> (
    alloc::collections::BTreeMap<ResourceKey, Quantity>,
    alloc::collections::BTreeMap<ResourceKey, RangeSet>,
) {
    (
        bag.scalars()
            .map(|(key, quantity)| (key.clone(), quantity))
            .collect(),
        bag.range_sets()
            .map(|(key, set)| (key.clone(), set.clone()))
            .collect(),
    )
}

#[test]
fn hashes_and_orders_as_maps_of_every_kind_of_key() {
    let bag = every_kind_of_key();
    assert_eq!(hashed(&bag), hashed(&as_maps(&bag)));
    let smaller = bag.unreserved();
    assert_eq!(bag.cmp(&smaller), as_maps(&bag).cmp(&as_maps(&smaller)));
}

fn arbitrary_resources() -> impl Strategy<Value = Resources> {
    let names = prop::sample::select(vec!["cpus", "mem", "disk"]);
    let roles = prop::option::of(prop::sample::select(vec!["ops", "web"]));
    let scalar = (names, roles, 0u64..5_000).prop_map(|(name, reserved, amount)| {
        let key = ResourceKey::unreserved(name);
        let key = match reserved {
            Some(role_name) => key.reserved(Reservation::Static(role(role_name))),
            None => key,
        };
        Resources::scalar(key, Quantity::from_thousandths(amount))
    });
    let ports = prop::collection::vec((0u64..200, 0u64..5), 0..4).prop_map(|ranges| {
        let mut set = RangeSet::default();
        for (start, length) in ranges {
            if let Ok(one) = RangeSet::from_ranges([ValueRange {
                start,
                end: start + length,
            }]) && let Some(union) = set.disjoint_union(&one)
            {
                set = union;
            }
        }
        Resources::ranges(ResourceKey::unreserved("ports"), set)
    });
    (prop::collection::vec(scalar, 0..6), ports).prop_map(|(scalars, ports)| {
        scalars.iter().fold(ports, |sum, one| {
            sum.checked_add(one).expect("small sums fit")
        })
    })
}

proptest! {
    #[test]
    fn sum_then_difference_is_identity(a in arbitrary_resources(), b in arbitrary_resources()) {
        // Ranges may overlap between a and b; only disjoint ones can be added.
        if let Ok(sum) = a.checked_add(&b) {
            prop_assert!(sum.contains(&a));
            prop_assert!(sum.contains(&b));
            prop_assert_eq!(sum.checked_sub(&b), Ok(a.clone()));
            prop_assert_eq!(sum.checked_sub(&a), Ok(b.clone()));
            prop_assert_eq!(b.checked_add(&a), Ok(sum));
        }
    }

    #[test]
    fn role_filters_partition_a_bag(a in arbitrary_resources()) {
        let ops = a.reserved_for(&role("ops"));
        let web = a.reserved_for(&role("web"));
        let rest = a.unreserved();
        let whole = ops.checked_add(&web).and_then(|sum| sum.checked_add(&rest));
        prop_assert_eq!(whole, Ok(a.clone()));
        prop_assert!(a.allocatable_to(&role("ops")).contains(&ops));
        prop_assert!(!a.allocatable_to(&role("ops")).contains(&web) || web.is_empty());
    }

    #[test]
    fn wire_form_round_trips(a in arbitrary_resources()) {
        let bytes = postcard::to_allocvec(&a).expect("encodes");
        prop_assert_eq!(postcard::from_bytes::<Resources>(&bytes).expect("decodes"), a);
    }

    #[test]
    fn hashes_and_orders_as_maps(a in arbitrary_resources(), b in arbitrary_resources()) {
        prop_assert_eq!(hashed(&a), hashed(&as_maps(&a)));
        prop_assert_eq!(a.cmp(&b), as_maps(&a).cmp(&as_maps(&b)));
        prop_assert_eq!(a.partial_cmp(&b), as_maps(&a).partial_cmp(&as_maps(&b)));
        prop_assert_eq!(a == b, as_maps(&a) == as_maps(&b));
    }

    #[test]
    fn display_round_trips(a in arbitrary_resources()) {
        prop_assert_eq!(Resources::parse(&a.to_string()), Ok(a));
    }

    #[test]
    fn quantity_text_round_trips(thousandths in 0u64..u64::MAX / 1000) {
        let quantity = Quantity::from_thousandths(thousandths);
        prop_assert_eq!(quantity.to_string().parse::<Quantity>(), Ok(quantity));
    }
}
