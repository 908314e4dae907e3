//! Summaries of measured samples: median, nearest-rank percentiles, minimum and maximum, and
//! how they are printed.

use std::fmt;
use std::time::Duration;

/// The summary of a non-empty set of durations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    /// How many samples.
    pub count: usize,
    /// The smallest.
    pub min: Duration,
    /// The median (nearest rank, lower middle for an even count).
    pub median: Duration,
    /// The 99th percentile, nearest rank.
    pub p99: Duration,
    /// The largest.
    pub max: Duration,
}

impl Summary {
    /// Summarizes `samples`; `None` if there are none.
    pub fn of(samples: &[Duration]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        Some(Summary {
            count: sorted.len(),
            min: sorted[0],
            median: percentile(&sorted, 50),
            p99: percentile(&sorted, 99),
            max: sorted[sorted.len() - 1],
        })
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "median {} p99 {} min {} max {} (n = {})",
            millis(self.median),
            millis(self.p99),
            millis(self.min),
            millis(self.max),
            self.count
        )
    }
}

/// The nearest-rank `percent`-th percentile of `sorted` (ascending, not empty): the smallest
/// sample such that at least `percent` % of the samples are at most it.
///
/// # Panics
/// If `sorted` is empty or `percent` is 0 or above 100: a bug in the caller.
pub fn percentile<T: Copy>(sorted: &[T], percent: usize) -> T {
    assert!(!sorted.is_empty(), "a percentile of no samples");
    assert!((1..=100).contains(&percent), "a percentile is 1 to 100");
    let rank = (percent * sorted.len()).div_ceil(100);
    sorted[rank.max(1) - 1]
}

/// A duration as milliseconds with two decimals.
pub fn millis(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1000.0)
}

/// The median of `values` (lower middle for an even count); `None` if there are none.
pub fn median_f64(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    Some(sorted[(sorted.len() - 1) / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&values, 50), 50);
        assert_eq!(percentile(&values, 99), 99);
        assert_eq!(percentile(&values, 100), 100);
        // With 20 samples the 99th percentile is the largest.
        let twenty: Vec<u32> = (1..=20).collect();
        assert_eq!(percentile(&twenty, 99), 20);
        assert_eq!(percentile(&[7], 1), 7);
    }

    #[test]
    fn summary_of_unsorted_samples() {
        let samples: Vec<Duration> = [5, 1, 4, 2, 3]
            .into_iter()
            .map(Duration::from_millis)
            .collect();
        let summary = Summary::of(&samples).expect("samples");
        assert_eq!(summary.min, Duration::from_millis(1));
        assert_eq!(summary.median, Duration::from_millis(3));
        assert_eq!(summary.p99, Duration::from_millis(5));
        assert_eq!(summary.max, Duration::from_millis(5));
        assert_eq!(Summary::of(&[]), None);
    }

    #[test]
    fn median_of_floats() {
        assert_eq!(median_f64(&[3.0, 1.0, 2.0, 10.0]), Some(2.0));
        assert_eq!(median_f64(&[]), None);
    }
}
