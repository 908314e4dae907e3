//! Exact dominant shares and the keys that order roles and frameworks by them.
//!
//! A share is a fraction `allocated / total` of two `u64` thousandths. Two shares compare by
//! cross-multiplying in `u128`, which cannot overflow. A *weighted* share divides by a
//! [`Weight`] as well, so comparing two of them multiplies three `u64` factors on each side:
//! up to 192 bits, computed exactly by [`product`]. No share is ever rounded, so two
//! frameworks can only tie when their shares are truly equal, and then their index decides.

use core::cmp::Ordering;

use super::weight::Weight;

/// A fraction `allocated / total` with `total > 0`, ordered by its value.
#[derive(Clone, Copy, Debug)]
pub(super) struct Share {
    allocated: u64,
    total: u64,
}

impl Share {
    /// Nothing allocated.
    pub(super) const ZERO: Share = Share {
        allocated: 0,
        total: 1,
    };

    /// `allocated / total`, or `None` when `total` is zero (the resource does not exist in
    /// the cluster, so it cannot dominate).
    pub(super) fn new(allocated: u64, total: u64) -> Option<Share> {
        (total > 0).then_some(Share { allocated, total })
    }

    /// The dominant share of `allocation`: the largest `allocation[name] / totals[name]` over
    /// the names the cluster has. Both slices are indexed by the same resource names.
    pub(super) fn dominant(allocation: &[u64], totals: &[u64]) -> Share {
        debug_assert_eq!(allocation.len(), totals.len(), "one amount per name");
        allocation
            .iter()
            .zip(totals)
            .filter_map(|(allocated, total)| Share::new(*allocated, *total))
            .fold(Share::ZERO, Ord::max)
    }

    /// Compares `self / weight` with `other / other_weight` exactly.
    pub(super) fn cmp_weighted(
        self,
        weight: Weight,
        other: Share,
        other_weight: Weight,
    ) -> Ordering {
        // a / (b·w) < c / (d·v)  ⇔  a·d·v < c·b·w, all positive denominators.
        let left = product(self.allocated, other.total, other_weight.thousandths());
        let right = product(other.allocated, self.total, weight.thousandths());
        left.cmp(&right)
    }
}

impl Ord for Share {
    fn cmp(&self, other: &Share) -> Ordering {
        let left = u128::from(self.allocated) * u128::from(other.total);
        let right = u128::from(other.allocated) * u128::from(self.total);
        left.cmp(&right)
    }
}

impl PartialOrd for Share {
    fn partial_cmp(&self, other: &Share) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Share {
    /// Equal values, not equal parts: `1/2 == 2/4`.
    fn eq(&self, other: &Share) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Share {}

/// `a · b · c` exactly, as a 192-bit number `(high, low)`: the value is
/// `high · 2^128 + low`, and `high < 2^64`. Tuples compare like the numbers they stand for.
pub(super) fn product(a: u64, b: u64, c: u64) -> (u128, u128) {
    const LOW_64: u128 = (1 << 64) - 1;
    let ab = u128::from(a) * u128::from(b);
    // ab = ab_high·2^64 + ab_low; each half times c fits in u128.
    let low_part = (ab & LOW_64) * u128::from(c);
    let high_part = (ab >> 64) * u128::from(c);
    let (low, carry) = (high_part << 64).overflowing_add(low_part);
    let high = (high_part >> 64) + u128::from(carry);
    (high, low)
}

/// A framework's place in its role's order: lowest dominant share first, then lowest index
/// (frameworks are indexed in id order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct FrameworkKey {
    /// The framework's dominant share.
    pub(super) share: Share,
    /// The framework's index.
    pub(super) framework: usize,
}

/// A role's place in the order of roles: lowest weighted dominant share first, then lowest
/// index (roles are indexed in name order).
#[derive(Clone, Copy, Debug)]
pub(super) struct RoleKey {
    /// The role's dominant share, before weighting.
    pub(super) share: Share,
    /// The role's weight.
    pub(super) weight: Weight,
    /// The role's index.
    pub(super) role: usize,
}

impl Ord for RoleKey {
    fn cmp(&self, other: &RoleKey) -> Ordering {
        self.share
            .cmp_weighted(self.weight, other.share, other.weight)
            .then(self.role.cmp(&other.role))
    }
}

impl PartialOrd for RoleKey {
    fn partial_cmp(&self, other: &RoleKey) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for RoleKey {
    fn eq(&self, other: &RoleKey) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for RoleKey {}
