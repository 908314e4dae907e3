//! Role weights.

use core::fmt;
use core::num::NonZeroU64;
use core::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::resources::{Quantity, ResourceParseErrorKind};

/// How much a role counts in fair sharing: a role of weight 2 is entitled to twice the
/// dominant share of a role of weight 1.
///
/// Fixed point in thousandths (`1` is 1000, `0.5` is 500), never zero: a zero weight would
/// make the role's weighted share infinite, and dividing by it is not defined. A role without
/// a recorded weight has [`Weight::ONE`]. Decoding refuses zero too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Weight(NonZeroU64);

impl Weight {
    /// Thousandths per unit of weight.
    pub const SCALE: u64 = 1000;

    /// Weight 1, the weight of a role that has none recorded.
    pub const ONE: Weight = match NonZeroU64::new(Weight::SCALE) {
        Some(thousandths) => Weight(thousandths),
        None => panic!("the scale is not zero"),
    };

    /// A weight of `thousandths` thousandths; zero is refused.
    pub const fn from_thousandths(thousandths: u64) -> Result<Weight, WeightError> {
        match NonZeroU64::new(thousandths) {
            Some(thousandths) => Ok(Weight(thousandths)),
            None => Err(WeightError::Zero),
        }
    }

    /// The weight in thousandths; never zero.
    pub const fn thousandths(self) -> u64 {
        self.0.get()
    }
}

impl Default for Weight {
    /// [`Weight::ONE`].
    fn default() -> Weight {
        Weight::ONE
    }
}

impl fmt::Display for Weight {
    /// Writes the weight as a decimal with as many decimals as it needs: `2`, `0.5`.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&Quantity::from_thousandths(self.thousandths()), formatter)
    }
}

impl FromStr for Weight {
    type Err = WeightError;

    /// Parses a positive decimal with at most three decimals: `2`, `0.5`, `1.25`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let quantity: Quantity = text.parse().map_err(|kind| match kind {
            ResourceParseErrorKind::TooManyDecimals => WeightError::TooManyDecimals,
            ResourceParseErrorKind::ScalarTooLarge => WeightError::TooLarge,
            _ => WeightError::NotANumber,
        })?;
        Weight::from_thousandths(quantity.thousandths())
    }
}

/// Why a value is not a [`Weight`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightError {
    /// The weight is zero.
    Zero,
    /// The text is not a non-negative decimal number such as `2` or `0.5`.
    NotANumber,
    /// The number has more than three decimals (weights are exact thousandths).
    TooManyDecimals,
    /// The number is too large to hold in thousandths.
    TooLarge,
}

impl fmt::Display for WeightError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            WeightError::Zero => "a role's weight must be positive, not zero",
            WeightError::NotANumber => "expected a positive number such as 2 or 0.5",
            WeightError::TooManyDecimals => "a weight has at most three decimals",
            WeightError::TooLarge => "the weight is too large",
        })
    }
}

impl core::error::Error for WeightError {}
