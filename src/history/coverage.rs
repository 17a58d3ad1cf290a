//! The date ranges a symbol's cache covers: days inside them with no bar are days the symbol
//! did not trade (holidays, suspensions, before listing) and are never fetched again.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// Disjoint, sorted, non-adjacent inclusive date ranges.
///
/// ```
/// use chrono::NaiveDate;
/// use quantdb::history::Coverage;
/// let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
/// let mut c = Coverage::default();
/// c.insert(d("2024-01-01"), d("2024-06-30"));
/// assert_eq!(c.missing(d("2024-01-01"), d("2024-12-31")), vec![(d("2024-07-01"), d("2024-12-31"))]);
/// assert!(c.missing(d("2024-02-01"), d("2024-03-01")).is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Coverage(
    #[serde(deserialize_with = "crate::dates::de_date_ranges")] Vec<(NaiveDate, NaiveDate)>,
);

impl Coverage {
    /// Marks `start..=end` covered (nothing when `start > end`).
    pub fn insert(&mut self, start: NaiveDate, end: NaiveDate) {
        if start > end {
            return;
        }
        let (mut start, mut end) = (start, end);
        let mut kept = Vec::with_capacity(self.0.len() + 1);
        for &(a, b) in &self.0 {
            // Overlapping or touching ranges merge.
            if b.succ_opt().is_some_and(|next| next < start)
                || end.succ_opt().is_some_and(|next| next < a)
            {
                kept.push((a, b));
            } else {
                start = start.min(a);
                end = end.max(b);
            }
        }
        kept.push((start, end));
        kept.sort();
        self.0 = kept;
    }

    /// The parts of `start..=end` not covered, in order.
    pub fn missing(&self, start: NaiveDate, end: NaiveDate) -> Vec<(NaiveDate, NaiveDate)> {
        let mut out = Vec::new();
        let mut from = start;
        for &(a, b) in &self.0 {
            if from > end {
                break;
            }
            if b < from {
                continue;
            }
            if a > from {
                let until = a.pred_opt().unwrap_or(a).min(end);
                out.push((from, until));
            }
            match b.succ_opt() {
                Some(next) => from = from.max(next),
                None => return out,
            }
        }
        if from <= end {
            out.push((from, end));
        }
        out
    }

    /// The ranges, oldest first.
    pub fn ranges(&self) -> &[(NaiveDate, NaiveDate)] {
        &self.0
    }

    /// A coverage read from storage: sorted and merged again, whatever it held.
    pub fn from_ranges(ranges: impl IntoIterator<Item = (NaiveDate, NaiveDate)>) -> Self {
        let mut c = Coverage::default();
        for (a, b) in ranges {
            c.insert(a, b);
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 1, day).unwrap()
    }

    #[test]
    fn inserts_merge_and_gaps_are_what_is_left() {
        let mut c = Coverage::default();
        c.insert(d(10), d(12));
        c.insert(d(1), d(3));
        c.insert(d(5), d(4)); // empty
        assert_eq!(c.ranges(), &[(d(1), d(3)), (d(10), d(12))]);
        assert_eq!(c.missing(d(1), d(20)), vec![(d(4), d(9)), (d(13), d(20))]);
        assert_eq!(c.missing(d(2), d(11)), vec![(d(4), d(9))]);
        assert_eq!(c.missing(d(5), d(6)), vec![(d(5), d(6))]);
        c.insert(d(4), d(9)); // touching on both sides
        assert_eq!(c.ranges(), &[(d(1), d(12))]);
        assert!(c.missing(d(1), d(12)).is_empty());
        c.insert(d(13), d(13));
        assert_eq!(c.ranges(), &[(d(1), d(13))]);
        assert_eq!(
            Coverage::from_ranges([(d(5), d(7)), (d(1), d(6))]).ranges(),
            &[(d(1), d(7))]
        );
        let end = NaiveDate::MAX;
        let mut far = Coverage::default();
        far.insert(d(1), end);
        assert!(far.missing(d(2), end).is_empty());
    }
}
