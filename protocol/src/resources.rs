//! Resources: what agents offer, frameworks use, roles reserve and volumes live on.
//!
//! A [`Resources`] value is a bag of named quantities, each keyed by a [`ResourceKey`]: its
//! name, its [`Reservation`] and, for disk, an optional [`PersistentVolume`]. Two kinds of value
//! exist:
//!
//! * **scalars** (`cpus`, `mem`, `disk`, …) as a fixed-point [`Quantity`] in thousandths of a
//!   unit, so `cpus:0.5` is exactly 500 and arithmetic never rounds (no floats in state);
//! * **ranges** (`ports`) as a [`RangeSet`] of inclusive integer ranges.
//!
//! Arithmetic is exact and checked: adding two bags that both hold the same persistent volume,
//! or overlapping ranges, is an error, because it would count one physical resource twice;
//! subtracting what is not contained is an error. A persistent volume is indivisible: a bag
//! contains it only whole. The value is always kept canonical (no zero quantities, no empty or
//! touching ranges), so equal bags compare equal and hash alike, which the model checker needs.
//!
//! Agents describe their resources with a string such as
//! `cpus:4;mem:8192;disk:100000;ports:[31000-32000];cpus(ops):2`, parsed by
//! [`Resources::parse`]; `cpus(ops):2` is a *static* reservation of two cpus for role `ops`.

use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cmp::Ordering;
use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::bounded::{BoundedVec, Name, NameError};
use crate::ids::{Principal, Role, VolumeId};

/// The most entries (distinct keys) one [`Resources`] value holds on the wire.
pub const RESOURCE_ENTRIES_MAX: usize = 1024;
/// The most disjoint ranges one [`RangeSet`] holds on the wire.
pub const RANGES_MAX: usize = 1024;

/// The resource name that persistent volumes live on.
pub const DISK: &str = "disk";

/// A fixed-point scalar amount, in thousandths of its unit (milli-cpus, thousandths of a MiB).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Quantity(u64);

impl Quantity {
    /// Nothing.
    pub const ZERO: Quantity = Quantity(0);
    /// Thousandths per unit.
    pub const SCALE: u64 = 1000;

    /// `thousandths` thousandths of a unit.
    pub const fn from_thousandths(thousandths: u64) -> Quantity {
        Quantity(thousandths)
    }

    /// `units` whole units, or `None` if that does not fit.
    pub const fn from_units(units: u64) -> Option<Quantity> {
        match units.checked_mul(Quantity::SCALE) {
            Some(thousandths) => Some(Quantity(thousandths)),
            None => None,
        }
    }

    /// The amount in thousandths of a unit.
    pub const fn thousandths(self) -> u64 {
        self.0
    }

    /// Whether this is nothing.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// `self + other`, or `None` on overflow.
    pub fn checked_add(self, other: Quantity) -> Option<Quantity> {
        self.0.checked_add(other.0).map(Quantity)
    }

    /// `self - other`, or `None` if `other` is larger.
    pub fn checked_sub(self, other: Quantity) -> Option<Quantity> {
        self.0.checked_sub(other.0).map(Quantity)
    }

    /// `self - other`, or zero if `other` is larger.
    pub fn saturating_sub(self, other: Quantity) -> Quantity {
        Quantity(self.0.saturating_sub(other.0))
    }
}

impl fmt::Display for Quantity {
    /// Writes the amount in units, with as many decimals as it needs: `4`, `0.5`, `1.125`.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units = self.0 / Quantity::SCALE;
        let fraction = self.0 % Quantity::SCALE;
        if fraction == 0 {
            return write!(formatter, "{units}");
        }
        let mut digits = alloc::format!("{fraction:03}");
        while digits.ends_with('0') {
            digits.pop();
        }
        write!(formatter, "{units}.{digits}")
    }
}

impl FromStr for Quantity {
    type Err = ResourceParseErrorKind;

    /// Parses a non-negative decimal with at most three decimals: `4`, `0.5`, `8192`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let all_digits = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
        if whole.is_empty()
            || !all_digits(whole)
            || !all_digits(fraction)
            || (text.contains('.') && fraction.is_empty())
        {
            return Err(ResourceParseErrorKind::InvalidScalar);
        }
        if fraction.len() > 3 {
            return Err(ResourceParseErrorKind::TooManyDecimals);
        }
        let units: u64 = whole
            .parse()
            .map_err(|_| ResourceParseErrorKind::ScalarTooLarge)?;
        let mut thousandths: u64 = 0;
        for (position, digit) in fraction.bytes().enumerate() {
            let weight = [100, 10, 1][position];
            thousandths += u64::from(digit - b'0') * weight;
        }
        Quantity::from_units(units)
            .and_then(|quantity| quantity.checked_add(Quantity(thousandths)))
            .ok_or(ResourceParseErrorKind::ScalarTooLarge)
    }
}

/// Who a resource is set aside for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Reservation {
    /// Offered to any role.
    Unreserved,
    /// Reserved for a role by the agent's configuration (`cpus(ops):2`); lasts as long as that
    /// configuration.
    Static(Role),
    /// Reserved for a role by a `Reserve` operation of `principal`; lasts until `Unreserve`.
    Dynamic {
        /// The role the resources are reserved for.
        role: Role,
        /// The principal that reserved them.
        principal: Principal,
    },
}

impl Reservation {
    /// The role this reservation is for, if any.
    pub fn role(&self) -> Option<&Role> {
        match self {
            Reservation::Unreserved => None,
            Reservation::Static(role) | Reservation::Dynamic { role, .. } => Some(role),
        }
    }

    /// Whether a framework of `role` may be offered resources with this reservation (R2).
    pub fn is_allocatable_to(&self, role: &Role) -> bool {
        self.role().is_none_or(|reserved| reserved == role)
    }
}

/// A path inside a task's sandbox where a volume appears: a relative [`Name`] without empty,
/// `.` or `..` components, so it cannot escape the sandbox.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "Name", into = "Name")]
pub struct ContainerPath(Name);

impl ContainerPath {
    /// Parses a container path.
    pub fn new(text: &str) -> Result<Self, ContainerPathError> {
        ContainerPath::try_from(Name::new(text).map_err(ContainerPathError::InvalidName)?)
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl TryFrom<Name> for ContainerPath {
    type Error = ContainerPathError;
    fn try_from(name: Name) -> Result<Self, Self::Error> {
        if name
            .as_str()
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..")
        {
            return Err(ContainerPathError::EscapesSandbox);
        }
        Ok(ContainerPath(name))
    }
}

impl From<ContainerPath> for Name {
    fn from(path: ContainerPath) -> Name {
        path.0
    }
}

impl fmt::Display for ContainerPath {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, formatter)
    }
}

/// Why a text is not a [`ContainerPath`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContainerPathError {
    /// The text is not a valid name.
    InvalidName(NameError),
    /// The path has an empty, `.` or `..` component.
    EscapesSandbox,
}

impl fmt::Display for ContainerPathError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContainerPathError::InvalidName(error) => write!(formatter, "{error}"),
            ContainerPathError::EscapesSandbox => {
                formatter.write_str("a container path cannot have empty, '.' or '..' components")
            }
        }
    }
}

impl core::error::Error for ContainerPathError {}

/// A persistent volume carried by a disk resource: data that outlives the tasks that use it
/// and is deleted only by an explicit `DestroyVolume` (R4).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PersistentVolume {
    /// The volume's id, chosen by the framework that created it.
    pub id: VolumeId,
    /// Where the volume appears inside a task's sandbox.
    pub container_path: ContainerPath,
}

/// What distinguishes one resource entry from another in a [`Resources`] bag.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ResourceKey {
    /// The resource's name: `cpus`, `mem`, `disk`, `ports`, or any other.
    pub name: Name,
    /// Who the resource is reserved for.
    pub reservation: Reservation,
    /// The persistent volume on this disk, if any. Only scalar resources carry one.
    pub volume: Option<PersistentVolume>,
}

impl ResourceKey {
    /// An unreserved resource called `name`.
    ///
    /// # Panics
    /// If `name` is not a valid [`Name`]; meant for names written in code.
    pub fn unreserved(name: &str) -> ResourceKey {
        ResourceKey {
            name: Name::new(name).expect("resource names in code are valid"),
            reservation: Reservation::Unreserved,
            volume: None,
        }
    }

    /// The same key with another reservation.
    #[must_use]
    pub fn reserved(mut self, reservation: Reservation) -> ResourceKey {
        self.reservation = reservation;
        self
    }
}

/// An inclusive range of integers, such as ports `31000-32000`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ValueRange {
    /// The first value in the range.
    pub start: u64,
    /// The last value in the range (inclusive).
    pub end: u64,
}

/// A set of integers as sorted, disjoint, non-touching inclusive ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(
    try_from = "BoundedVec<ValueRange, RANGES_MAX>",
    into = "Vec<ValueRange>"
)]
pub struct RangeSet(Vec<ValueRange>);

impl RangeSet {
    /// The set of the given ranges. Touching ranges merge (`1-2,3-4` is `1-4`); reversed or
    /// overlapping ranges are refused, because they usually mean a typing mistake.
    pub fn from_ranges(
        ranges: impl IntoIterator<Item = ValueRange>,
    ) -> Result<RangeSet, RangeSetError> {
        let mut ranges: Vec<ValueRange> = ranges.into_iter().collect();
        if let Some(range) = ranges.iter().find(|range| range.start > range.end) {
            return Err(RangeSetError::Reversed(*range));
        }
        ranges.sort_unstable();
        let mut merged: Vec<ValueRange> = Vec::with_capacity(ranges.len());
        for range in ranges {
            match merged.last_mut() {
                Some(last) if range.start <= last.end => {
                    return Err(RangeSetError::Overlapping(range));
                }
                Some(last) if range.start == last.end + 1 => last.end = range.end,
                _ => merged.push(range),
            }
        }
        Ok(RangeSet(merged))
    }

    /// The ranges, sorted.
    pub fn ranges(&self) -> &[ValueRange] {
        &self.0
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many integers the set holds.
    pub fn count(&self) -> u64 {
        self.0
            .iter()
            .map(|range| range.end - range.start + 1)
            .fold(0, u64::saturating_add)
    }

    /// Whether every value of `self` is in `other`.
    pub fn is_subset(&self, other: &RangeSet) -> bool {
        self.0.iter().all(|range| {
            other
                .0
                .iter()
                .any(|outer| outer.start <= range.start && range.end <= outer.end)
        })
    }

    /// Whether the sets share a value.
    pub fn intersects(&self, other: &RangeSet) -> bool {
        self.0
            .iter()
            .any(|a| other.0.iter().any(|b| a.start <= b.end && b.start <= a.end))
    }

    /// The union of two disjoint sets, or `None` if they overlap.
    pub fn disjoint_union(&self, other: &RangeSet) -> Option<RangeSet> {
        if self.intersects(other) {
            return None;
        }
        RangeSet::from_ranges(self.0.iter().chain(other.0.iter()).copied()).ok()
    }

    /// The values of `self` that are not in `other`.
    pub fn difference(&self, other: &RangeSet) -> RangeSet {
        let mut result = Vec::new();
        for range in &self.0 {
            let mut start = range.start;
            let mut remaining = true;
            for cut in other
                .0
                .iter()
                .filter(|cut| cut.start <= range.end && range.start <= cut.end)
            {
                if cut.start > start {
                    result.push(ValueRange {
                        start,
                        end: cut.start - 1,
                    });
                }
                match cut.end.checked_add(1) {
                    Some(next) => start = next,
                    None => remaining = false,
                }
            }
            if remaining && start <= range.end {
                result.push(ValueRange {
                    start,
                    end: range.end,
                });
            }
        }
        RangeSet(result)
    }
}

impl TryFrom<BoundedVec<ValueRange, RANGES_MAX>> for RangeSet {
    type Error = RangeSetError;
    /// Decoding accepts only the canonical form that encoding writes.
    fn try_from(ranges: BoundedVec<ValueRange, RANGES_MAX>) -> Result<Self, Self::Error> {
        let ranges = ranges.into_vec();
        let set = RangeSet::from_ranges(ranges.iter().copied())?;
        if set.0 != ranges {
            return Err(RangeSetError::NotCanonical);
        }
        Ok(set)
    }
}

impl From<RangeSet> for Vec<ValueRange> {
    fn from(set: RangeSet) -> Vec<ValueRange> {
        set.0
    }
}

impl fmt::Display for RangeSet {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("[")?;
        for (index, range) in self.0.iter().enumerate() {
            if index > 0 {
                formatter.write_str(",")?;
            }
            write!(formatter, "{}-{}", range.start, range.end)?;
        }
        formatter.write_str("]")
    }
}

/// Why ranges do not form a [`RangeSet`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeSetError {
    /// A range ends before it starts.
    Reversed(ValueRange),
    /// A range overlaps another.
    Overlapping(ValueRange),
    /// Decoded ranges were not sorted, disjoint and merged.
    NotCanonical,
}

impl fmt::Display for RangeSetError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RangeSetError::Reversed(range) => write!(
                formatter,
                "range {}-{} ends before it starts",
                range.start, range.end
            ),
            RangeSetError::Overlapping(range) => write!(
                formatter,
                "range {}-{} overlaps another range",
                range.start, range.end
            ),
            RangeSetError::NotCanonical => {
                formatter.write_str("ranges are not sorted, disjoint and merged")
            }
        }
    }
}

impl core::error::Error for RangeSetError {}

/// The value of one resource entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ResourceValue {
    /// An amount.
    Scalar(Quantity),
    /// A set of integers.
    Ranges(RangeSet),
}

/// One resource entry: a key and a value. The wire form of [`Resources`] is a list of these.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Resource {
    /// Name, reservation and volume.
    pub key: ResourceKey,
    /// How much.
    pub value: ResourceValue,
}

/// A bag of resources with exact, checked arithmetic. See the [module docs](self).
///
/// The entries are kept in two vectors sorted by key rather than in maps: most bags hold a
/// handful of entries (a task's `cpus`, `mem` and `disk`), and a B-tree allocates a node with
/// room for eleven keys however few it holds, which made a master with tens of thousands of
/// agents spend most of its memory on empty key slots. Sorted vectors compare, order and hash
/// exactly as the maps did (entry by entry, scalars before ranges), so the state a model
/// checker hashes is the same.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(
    try_from = "BoundedVec<Resource, RESOURCE_ENTRIES_MAX>",
    into = "Vec<Resource>"
)]
pub struct Resources {
    /// Sorted by key, each key once; never holds a zero quantity.
    scalars: Vec<(ResourceKey, Quantity)>,
    /// Sorted by key, each key once; never holds an empty set or a key with a volume.
    ranges: Vec<(ResourceKey, RangeSet)>,
}

impl Resources {
    /// No resources.
    pub const fn new() -> Resources {
        Resources {
            scalars: Vec::new(),
            ranges: Vec::new(),
        }
    }

    /// `quantity` of the resource `key`.
    pub fn scalar(key: ResourceKey, quantity: Quantity) -> Resources {
        let mut resources = Resources::new();
        if !quantity.is_zero() {
            resources.scalars = alloc::vec![(key, quantity)];
        }
        resources
    }

    /// The values `set` of the resource `key`. A volume on `key` is dropped: only scalar
    /// disk carries volumes.
    pub fn ranges(mut key: ResourceKey, set: RangeSet) -> Resources {
        key.volume = None;
        let mut resources = Resources::new();
        if !set.is_empty() {
            resources.ranges = alloc::vec![(key, set)];
        }
        resources
    }

    /// Parses an agent's resource string; see [`ResourceParseError`] for what it refuses.
    ///
    /// ```
    /// # use berth_protocol::resources::{Resources, ResourceKey, Quantity};
    /// let resources = Resources::parse("cpus:4;mem:8192;ports:[31000-32000];cpus(ops):0.5")?;
    /// assert_eq!(resources.total("cpus"), Quantity::from_thousandths(4_500));
    /// assert_eq!(resources.to_string(), "cpus:4;cpus(ops):0.5;mem:8192;ports:[31000-32000]");
    /// # Ok::<(), berth_protocol::resources::ResourceParseError>(())
    /// ```
    pub fn parse(text: &str) -> Result<Resources, ResourceParseError> {
        let mut resources = Resources::new();
        let mut seen: Vec<(Name, Reservation)> = Vec::new();
        for item in text
            .split(';')
            .map(str::trim)
            .filter(|item| !item.is_empty())
        {
            let error = |kind| ResourceParseError {
                item: item.to_string(),
                kind,
            };
            let resource = parse_item(item).map_err(error)?;
            let identity = (resource.key.name.clone(), resource.key.reservation.clone());
            if seen.contains(&identity) {
                return Err(error(ResourceParseErrorKind::Duplicate));
            }
            seen.push(identity);
            resources = resources
                .checked_add(&Resources::from(resource))
                .map_err(|_| error(ResourceParseErrorKind::ScalarTooLarge))?;
        }
        Ok(resources)
    }

    /// Whether the bag is empty.
    pub fn is_empty(&self) -> bool {
        self.scalars.is_empty() && self.ranges.is_empty()
    }

    /// The scalar entries, in key order.
    pub fn scalars(&self) -> impl Iterator<Item = (&ResourceKey, Quantity)> {
        self.scalars.iter().map(|(key, quantity)| (key, *quantity))
    }

    /// The range entries, in key order.
    pub fn range_sets(&self) -> impl Iterator<Item = (&ResourceKey, &RangeSet)> {
        self.ranges.iter().map(|(key, set)| (key, set))
    }

    /// Every entry, as owned [`Resource`] values, scalars first.
    pub fn to_list(&self) -> Vec<Resource> {
        let scalars = self.scalars.iter().map(|(key, quantity)| Resource {
            key: key.clone(),
            value: ResourceValue::Scalar(*quantity),
        });
        let ranges = self.ranges.iter().map(|(key, set)| Resource {
            key: key.clone(),
            value: ResourceValue::Ranges(set.clone()),
        });
        scalars.chain(ranges).collect()
    }

    /// The total amount of scalar `name` over every reservation and volume.
    pub fn total(&self, name: &str) -> Quantity {
        self.scalars
            .iter()
            .filter(|(key, _)| key.name.as_str() == name)
            .map(|(_, quantity)| *quantity)
            .fold(Quantity::ZERO, |sum, quantity| {
                sum.checked_add(quantity)
                    .expect("a bag's total fits: it was built with checked additions")
            })
    }

    /// The persistent volumes in the bag.
    pub fn volumes(&self) -> impl Iterator<Item = (&ResourceKey, Quantity)> {
        self.scalars().filter(|(key, _)| key.volume.is_some())
    }

    /// The entries whose key satisfies `keep`.
    pub fn filter(&self, mut keep: impl FnMut(&ResourceKey) -> bool) -> Resources {
        Resources {
            scalars: entries_kept(&self.scalars, &mut keep),
            ranges: entries_kept(&self.ranges, &mut keep),
        }
    }

    /// The unreserved entries.
    pub fn unreserved(&self) -> Resources {
        self.filter(|key| key.reservation == Reservation::Unreserved)
    }

    /// The entries reserved (statically or dynamically) for `role`.
    pub fn reserved_for(&self, role: &Role) -> Resources {
        self.filter(|key| key.reservation.role() == Some(role))
    }

    /// The entries a framework of `role` may be offered: unreserved or reserved for `role`.
    pub fn allocatable_to(&self, role: &Role) -> Resources {
        self.filter(|key| key.reservation.is_allocatable_to(role))
    }

    /// Whether `other` is wholly inside `self`. A persistent volume is contained only whole.
    pub fn contains(&self, other: &Resources) -> bool {
        entries_cover(&self.scalars, &other.scalars, |key, held, wanted| {
            if key.volume.is_some() {
                held == wanted
            } else {
                held >= wanted
            }
        }) && entries_cover(&self.ranges, &other.ranges, |_, held, wanted| {
            wanted.is_subset(held)
        })
    }

    /// `self + other`.
    ///
    /// Fails if the sum would count a persistent volume or a range value twice, or overflow.
    pub fn checked_add(&self, other: &Resources) -> Result<Resources, ResourcesError> {
        let scalars = entries_merged(&self.scalars, &other.scalars, |key, held, added| {
            if key.volume.is_some() {
                return Err(ResourcesError::DuplicateVolume(Box::new(key.clone())));
            }
            held.checked_add(*added)
                .ok_or_else(|| ResourcesError::Overflow(Box::new(key.clone())))
        })?;
        let ranges = entries_merged(&self.ranges, &other.ranges, |key, held, added| {
            held.disjoint_union(added)
                .ok_or_else(|| ResourcesError::OverlappingRanges(Box::new(key.clone())))
        })?;
        Ok(Resources { scalars, ranges })
    }

    /// The same resources under other keys: `rekey` gives each entry its new key. Fails if
    /// two entries land on one volume or overlapping ranges.
    pub fn rekeyed(
        &self,
        mut rekey: impl FnMut(&ResourceKey) -> ResourceKey,
    ) -> Result<Resources, ResourcesError> {
        let mut result = Resources::new();
        for (key, quantity) in &self.scalars {
            result = result.checked_add(&Resources::scalar(rekey(key), *quantity))?;
        }
        for (key, set) in &self.ranges {
            result = result.checked_add(&Resources::ranges(rekey(key), set.clone()))?;
        }
        Ok(result)
    }

    /// Every key of the bag, scalars first, each part in key order.
    pub fn keys(&self) -> impl Iterator<Item = &ResourceKey> {
        self.scalars
            .iter()
            .map(|(key, _)| key)
            .chain(self.ranges.iter().map(|(key, _)| key))
    }

    /// The same resources with every reservation and volume removed: what an agent's
    /// configuration describes, before operations changed it.
    pub fn stripped(&self) -> Resources {
        self.rekeyed(|key| ResourceKey {
            name: key.name.clone(),
            reservation: match &key.reservation {
                Reservation::Static(role) => Reservation::Static(role.clone()),
                Reservation::Unreserved | Reservation::Dynamic { .. } => Reservation::Unreserved,
            },
            volume: None,
        })
        .expect("removing reservations and volumes cannot count anything twice")
    }

    /// `self - other`, if `self` [contains](Resources::contains) `other`.
    pub fn checked_sub(&self, other: &Resources) -> Result<Resources, ResourcesError> {
        if !self.contains(other) {
            return Err(ResourcesError::NotContained);
        }
        Ok(Resources {
            scalars: entries_reduced(&self.scalars, &other.scalars, |held, taken| {
                let rest = held.checked_sub(*taken).expect("contained amounts fit");
                (!rest.is_zero()).then_some(rest)
            }),
            ranges: entries_reduced(&self.ranges, &other.ranges, |held, taken| {
                let rest = held.difference(taken);
                (!rest.is_empty()).then_some(rest)
            }),
        })
    }

    /// The bag a list in canonical form describes (what [`Resources::to_list`] writes), or
    /// the list back if it is not in that form. Takes no sums: in canonical form no key
    /// appears twice.
    fn from_canonical_list(list: Vec<Resource>) -> Result<Resources, Vec<Resource>> {
        let mut scalar_count = 0;
        let mut previous: Option<&Resource> = None;
        for resource in &list {
            let in_order = match previous {
                None => true,
                Some(previous) => match (&previous.value, &resource.value) {
                    (ResourceValue::Scalar(_), ResourceValue::Ranges(_)) => true,
                    (ResourceValue::Ranges(_), ResourceValue::Scalar(_)) => false,
                    _ => previous.key < resource.key,
                },
            };
            let canonical = match &resource.value {
                ResourceValue::Scalar(quantity) => {
                    scalar_count += 1;
                    !quantity.is_zero()
                }
                ResourceValue::Ranges(set) => !set.is_empty() && resource.key.volume.is_none(),
            };
            if !in_order || !canonical {
                return Err(list);
            }
            previous = Some(resource);
        }
        let mut resources = Resources {
            scalars: Vec::with_capacity(scalar_count),
            ranges: Vec::with_capacity(list.len() - scalar_count),
        };
        for resource in list {
            match resource.value {
                ResourceValue::Scalar(quantity) => resources.scalars.push((resource.key, quantity)),
                ResourceValue::Ranges(set) => resources.ranges.push((resource.key, set)),
            }
        }
        Ok(resources)
    }
}

impl fmt::Debug for Resources {
    /// Writes each part as a map from key to value.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Resources")
            .field("scalars", &EntriesDebug(&self.scalars))
            .field("ranges", &EntriesDebug(&self.ranges))
            .finish()
    }
}

/// Sorted entries, written as a map.
struct EntriesDebug<'entries, V>(&'entries [(ResourceKey, V)]);

impl<V: fmt::Debug> fmt::Debug for EntriesDebug<'_, V> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_map()
            .entries(self.0.iter().map(|(key, value)| (key, value)))
            .finish()
    }
}

/// The entries whose key satisfies `keep`, in an allocation of exactly their size.
fn entries_kept<V: Clone>(
    entries: &[(ResourceKey, V)],
    keep: &mut impl FnMut(&ResourceKey) -> bool,
) -> Vec<(ResourceKey, V)> {
    let mut kept = Vec::with_capacity(entries.len());
    kept.extend(entries.iter().filter(|(key, _)| keep(key)).cloned());
    kept.shrink_to_fit();
    kept
}

/// Whether every key of `wanted` is in `held` with a value that `covers` the wanted one.
/// Both are sorted by key, so one pass over each suffices.
fn entries_cover<V>(
    held: &[(ResourceKey, V)],
    wanted: &[(ResourceKey, V)],
    mut covers: impl FnMut(&ResourceKey, &V, &V) -> bool,
) -> bool {
    let mut held = held.iter();
    wanted.iter().all(|(key, wanted_value)| {
        for (held_key, held_value) in held.by_ref() {
            match held_key.cmp(key) {
                Ordering::Less => {}
                Ordering::Equal => return covers(key, held_value, wanted_value),
                Ordering::Greater => return false,
            }
        }
        false
    })
}

/// The union of two entry lists sorted by key, sorted by key; `combine` joins the values of
/// a key both hold, or fails. Entries are combined in key order, so the error returned is
/// the one of the first key that fails.
fn entries_merged<V: Clone>(
    left: &[(ResourceKey, V)],
    right: &[(ResourceKey, V)],
    mut combine: impl FnMut(&ResourceKey, &V, &V) -> Result<V, ResourcesError>,
) -> Result<Vec<(ResourceKey, V)>, ResourcesError> {
    let mut merged = Vec::with_capacity(left.len() + right.len());
    let (mut left_rest, mut right_rest) = (left, right);
    while let (Some((left_entry, left_after)), Some((right_entry, right_after))) =
        (left_rest.split_first(), right_rest.split_first())
    {
        match left_entry.0.cmp(&right_entry.0) {
            Ordering::Less => {
                merged.push(left_entry.clone());
                left_rest = left_after;
            }
            Ordering::Greater => {
                merged.push(right_entry.clone());
                right_rest = right_after;
            }
            Ordering::Equal => {
                let value = combine(&left_entry.0, &left_entry.1, &right_entry.1)?;
                merged.push((left_entry.0.clone(), value));
                left_rest = left_after;
                right_rest = right_after;
            }
        }
    }
    merged.extend_from_slice(left_rest);
    merged.extend_from_slice(right_rest);
    merged.shrink_to_fit();
    Ok(merged)
}

/// `held` with the entries of `taken` taken away: `reduce` gives what remains of a value, or
/// `None` if nothing does. Every key of `taken` must be in `held` (the caller checked
/// containment); both are sorted by key.
fn entries_reduced<V: Clone>(
    held: &[(ResourceKey, V)],
    taken: &[(ResourceKey, V)],
    mut reduce: impl FnMut(&V, &V) -> Option<V>,
) -> Vec<(ResourceKey, V)> {
    let mut taken = taken.iter().peekable();
    let mut rest = Vec::with_capacity(held.len());
    for (key, value) in held {
        match taken.next_if(|(taken_key, _)| taken_key == key) {
            Some((_, taken_value)) => {
                if let Some(remaining) = reduce(value, taken_value) {
                    rest.push((key.clone(), remaining));
                }
            }
            None => rest.push((key.clone(), value.clone())),
        }
    }
    assert!(taken.next().is_none(), "contained keys are present");
    rest.shrink_to_fit();
    rest
}

impl From<Resource> for Resources {
    fn from(resource: Resource) -> Resources {
        match resource.value {
            ResourceValue::Scalar(quantity) => Resources::scalar(resource.key, quantity),
            ResourceValue::Ranges(set) => Resources::ranges(resource.key, set),
        }
    }
}

impl TryFrom<BoundedVec<Resource, RESOURCE_ENTRIES_MAX>> for Resources {
    type Error = ResourcesError;
    /// Decoding refuses a list that double-counts anything, or is not canonical.
    fn try_from(list: BoundedVec<Resource, RESOURCE_ENTRIES_MAX>) -> Result<Self, Self::Error> {
        // The canonical list every encoder writes is taken as it is; any other is summed
        // entry by entry to find the first double count, if any, and otherwise refused.
        let list = match Resources::from_canonical_list(list.into_vec()) {
            Ok(resources) => return Ok(resources),
            Err(list) => list,
        };
        let mut resources = Resources::new();
        for resource in &list {
            resources = resources.checked_add(&Resources::from(resource.clone()))?;
        }
        if resources.to_list() != list {
            return Err(ResourcesError::NotCanonical);
        }
        Ok(resources)
    }
}

impl From<Resources> for Vec<Resource> {
    fn from(resources: Resources) -> Vec<Resource> {
        resources.to_list()
    }
}

impl FromStr for Resources {
    type Err = ResourceParseError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Resources::parse(text)
    }
}

impl fmt::Display for Resources {
    /// Writes the resource-string form that [`Resources::parse`] reads, for entries without a
    /// volume or dynamic reservation; those are written as `disk(role,principal)[id:path]`.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut entries: Vec<(&ResourceKey, String)> = self
            .scalars()
            .map(|(key, quantity)| (key, quantity.to_string()))
            .chain(self.range_sets().map(|(key, set)| (key, set.to_string())))
            .collect();
        entries.sort_by_key(|(key, _)| *key);
        for (index, (key, value)) in entries.iter().enumerate() {
            if index > 0 {
                formatter.write_str(";")?;
            }
            formatter.write_str(key.name.as_str())?;
            match &key.reservation {
                Reservation::Unreserved => {}
                Reservation::Static(role) => write!(formatter, "({role})")?,
                Reservation::Dynamic { role, principal } => {
                    write!(formatter, "({role},{principal})")?;
                }
            }
            if let Some(volume) = &key.volume {
                write!(formatter, "[{}:{}]", volume.id, volume.container_path)?;
            }
            write!(formatter, ":{value}")?;
        }
        Ok(())
    }
}

/// Why resource arithmetic failed. Each names the entry at fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResourcesError {
    /// A sum does not fit in a [`Quantity`].
    Overflow(Box<ResourceKey>),
    /// Both sides of a sum hold this persistent volume.
    DuplicateVolume(Box<ResourceKey>),
    /// Both sides of a sum hold some of the same range values.
    OverlappingRanges(Box<ResourceKey>),
    /// A subtraction takes away what is not there.
    NotContained,
    /// Decoded entries were not in canonical order and form.
    NotCanonical,
}

impl fmt::Display for ResourcesError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResourcesError::Overflow(key) => write!(formatter, "{} overflows", key.name),
            ResourcesError::DuplicateVolume(key) => write!(
                formatter,
                "persistent volume {} would be counted twice",
                key.volume.as_ref().map_or("?", |volume| volume.id.as_str())
            ),
            ResourcesError::OverlappingRanges(key) => {
                write!(formatter, "{} ranges would be counted twice", key.name)
            }
            ResourcesError::NotContained => {
                formatter.write_str("the resources to subtract are not all there")
            }
            ResourcesError::NotCanonical => {
                formatter.write_str("resource entries are not in canonical form")
            }
        }
    }
}

impl core::error::Error for ResourcesError {}

/// An agent resource string could not be parsed. `item` is the offending `;`-separated part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceParseError {
    /// The part of the string at fault, such as `cpus(ops:2`.
    pub item: String,
    /// What is wrong with it.
    pub kind: ResourceParseErrorKind,
}

impl fmt::Display for ResourceParseError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "in resource `{}`: {}", self.item, self.kind)
    }
}

impl core::error::Error for ResourceParseError {}

/// What is wrong with one part of a resource string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResourceParseErrorKind {
    /// There is no `:` between the name and the value.
    MissingColon,
    /// The resource name is not a valid name.
    InvalidName(NameError),
    /// A `(` is not closed by a `)` just before the `:`.
    UnclosedRole,
    /// The role in parentheses is not a valid name.
    InvalidRole(NameError),
    /// The value is neither a decimal number nor `[start-end,...]`.
    InvalidScalar,
    /// The number has more than three decimals (quantities are exact thousandths).
    TooManyDecimals,
    /// The number is too large to hold in thousandths.
    ScalarTooLarge,
    /// The ranges are not of the form `[start-end,...]` with integer bounds.
    InvalidRanges,
    /// A range ends before it starts.
    ReversedRange,
    /// Two ranges overlap.
    OverlappingRanges,
    /// The same resource and role appear twice.
    Duplicate,
}

impl fmt::Display for ResourceParseErrorKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResourceParseErrorKind::MissingColon => {
                formatter.write_str("expected NAME:VALUE or NAME(ROLE):VALUE")
            }
            ResourceParseErrorKind::InvalidName(error) => {
                write!(formatter, "invalid resource name: {error}")
            }
            ResourceParseErrorKind::UnclosedRole => {
                formatter.write_str("the role must be closed by ')' just before ':'")
            }
            ResourceParseErrorKind::InvalidRole(error) => {
                write!(formatter, "invalid role: {error}")
            }
            ResourceParseErrorKind::InvalidScalar => formatter.write_str(
                "expected a non-negative number such as 4 or 0.5, or ranges such as [31000-32000]",
            ),
            ResourceParseErrorKind::TooManyDecimals => {
                formatter.write_str("at most three decimals are allowed")
            }
            ResourceParseErrorKind::ScalarTooLarge => {
                formatter.write_str("the number is too large")
            }
            ResourceParseErrorKind::InvalidRanges => {
                formatter.write_str("expected ranges such as [31000-32000,33000-33100]")
            }
            ResourceParseErrorKind::ReversedRange => {
                formatter.write_str("a range ends before it starts")
            }
            ResourceParseErrorKind::OverlappingRanges => formatter.write_str("ranges overlap"),
            ResourceParseErrorKind::Duplicate => {
                formatter.write_str("this resource and role appear more than once")
            }
        }
    }
}

/// Parses one `NAME[(ROLE)]:VALUE` item.
fn parse_item(item: &str) -> Result<Resource, ResourceParseErrorKind> {
    let (head, value) = item
        .split_once(':')
        .ok_or(ResourceParseErrorKind::MissingColon)?;
    let (head, value) = (head.trim(), value.trim());
    let (name, reservation) = match head.split_once('(') {
        None => (head, Reservation::Unreserved),
        Some((name, rest)) => {
            let role = rest
                .strip_suffix(')')
                .ok_or(ResourceParseErrorKind::UnclosedRole)?;
            let role = Role::new(role).map_err(ResourceParseErrorKind::InvalidRole)?;
            (name, Reservation::Static(role))
        }
    };
    let name = Name::new(name).map_err(ResourceParseErrorKind::InvalidName)?;
    let value = if value.starts_with('[') {
        ResourceValue::Ranges(parse_ranges(value)?)
    } else {
        ResourceValue::Scalar(value.parse()?)
    };
    Ok(Resource {
        key: ResourceKey {
            name,
            reservation,
            volume: None,
        },
        value,
    })
}

/// Parses `[start-end,start-end,...]`.
fn parse_ranges(text: &str) -> Result<RangeSet, ResourceParseErrorKind> {
    let inner = text
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .ok_or(ResourceParseErrorKind::InvalidRanges)?;
    let mut ranges = Vec::new();
    for part in inner.split(',') {
        let (start, end) = part
            .trim()
            .split_once('-')
            .ok_or(ResourceParseErrorKind::InvalidRanges)?;
        let bound = |text: &str| {
            text.trim()
                .parse::<u64>()
                .map_err(|_| ResourceParseErrorKind::InvalidRanges)
        };
        ranges.push(ValueRange {
            start: bound(start)?,
            end: bound(end)?,
        });
    }
    RangeSet::from_ranges(ranges).map_err(|error| match error {
        RangeSetError::Reversed(_) => ResourceParseErrorKind::ReversedRange,
        RangeSetError::Overlapping(_) | RangeSetError::NotCanonical => {
            ResourceParseErrorKind::OverlappingRanges
        }
    })
}

#[cfg(test)]
mod tests;
