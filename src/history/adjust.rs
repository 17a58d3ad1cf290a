//! Price adjustment from raw bars and a factor table, and weekly/monthly bars from daily ones.

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use super::kline::round_to;
use super::{Adjust, Bar, Period, RawBar};

/// A symbol's cumulative backward-adjustment factors: `F(d)` is the factor of the last row
/// dated on or before `d` (1 before the first row).
///
/// ```
/// use chrono::NaiveDate;
/// use quantdb::history::Factors;
/// let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
/// let f = Factors::new(vec![(d("2022-08-25"), 160.8188465756604), (d("2023-08-25"), 169.1453113717332)]);
/// assert_eq!(f.at(d("2023-01-01")), 160.8188465756604);
/// assert_eq!(f.latest(), 169.1453113717332);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Factors {
    /// `(ex-date, factor)`, oldest first.
    #[serde(deserialize_with = "crate::dates::de_date_rows")]
    rows: Vec<(NaiveDate, f64)>,
}

impl Factors {
    /// The table with no ex-event (factor 1 on every day).
    pub const fn empty() -> Self {
        Factors { rows: Vec::new() }
    }

    /// A table from its rows, in any order.
    pub fn new(mut rows: Vec<(NaiveDate, f64)>) -> Self {
        rows.sort_by_key(|r| r.0);
        rows.dedup_by_key(|r| r.0);
        Factors { rows }
    }

    /// `F(d)`.
    pub fn at(&self, date: NaiveDate) -> f64 {
        match self.rows.partition_point(|r| r.0 <= date) {
            0 => 1.0,
            i => self.rows[i - 1].1,
        }
    }

    /// The newest factor.
    pub fn latest(&self) -> f64 {
        self.rows.last().map_or(1.0, |r| r.1)
    }

    /// The rows, oldest first.
    pub fn rows(&self) -> &[(NaiveDate, f64)] {
        &self.rows
    }

    /// Whether `date` is one of the table's ex-dates.
    pub fn has_event_on(&self, date: NaiveDate) -> bool {
        self.rows.binary_search_by_key(&date, |r| r.0).is_ok()
    }
}

/// The bars as answered: `raw` (date order) adjusted by `factors` (none: factor 1), changes
/// against the previous close. `before` is the raw bar before the first one, when known.
pub fn derive(
    raw: &[RawBar],
    before: Option<&RawBar>,
    factors: Option<&Factors>,
    adjust: Adjust,
) -> Vec<Bar> {
    let rows = factors.map_or(&[][..], Factors::rows);
    let latest = factors.map_or(1.0, Factors::latest);
    // The bars are in date order: walk the factor rows along with them.
    let mut next_row = 0;
    let mut factor_on = |d: NaiveDate| {
        while next_row < rows.len() && rows[next_row].0 <= d {
            next_row += 1;
        }
        next_row.checked_sub(1).map_or(1.0, |i| rows[i].1)
    };
    let mut prev = before.map(|p| (p.close, factors.map_or(1.0, |t| t.at(p.date))));
    let mut out = Vec::with_capacity(raw.len());
    for b in raw {
        let f = factor_on(b.date);
        // The raw close the change is against: the upstream's, else the previous bar's close
        // ex-adjusted by the factor step between the two days.
        let basis = b.prev_close.or(prev.map(|(close, pf)| close * pf / f));
        prev = Some((b.close, f));
        let k = match adjust {
            Adjust::None => 1.0,
            Adjust::Hfq => f,
            Adjust::Qfq => f / latest,
        };
        let adj = |x: f64| if k == 1.0 { x } else { round6(x * k) };
        // The adjusted basis, and 100 over it (one division a bar).
        let basis = basis.filter(|p| *p > 0.0).map(|p| (p * k, 100.0 / (p * k)));
        out.push(Bar {
            date: b.date,
            open: adj(b.open),
            high: adj(b.high),
            low: adj(b.low),
            close: adj(b.close),
            volume: b.volume,
            amount: b.amount,
            change: basis.map(|(p, _)| round6(b.close * k - p)),
            change_percent: basis.map(|(_, per)| round6(b.close * k * per - 100.0)),
            amplitude: basis.map(|(_, per)| round6((b.high - b.low) * k * per)),
            turnover_rate: b.turnover_rate,
            adjust,
        });
    }
    out
}

/// `x` rounded to 6 decimals, as every derived number is (adjusted prices are products of
/// factors), without a libm call: adding and subtracting
/// 1.5 × 2^52 rounds a double to an integer (half to even) in two additions. Numbers too large
/// for that have no digits to spare anyway and are left as they are.
#[inline]
fn round6(x: f64) -> f64 {
    const SHIFT: f64 = 6_755_399_441_055_744.0; // 1.5 × 2^52
    const SCALE: f64 = 1e6;
    let v = x * SCALE;
    if v.abs() < 2_251_799_813_685_248.0 {
        // |v| < 2^51
        ((v + SHIFT) - SHIFT) / SCALE
    } else {
        x
    }
}

/// Weekly or monthly bars from daily ones (date order), each dated its last trading day.
/// A period's change is the product of its days' changes, so ex-dates inside it count.
pub fn aggregate(daily: &[Bar], period: Period) -> Vec<Bar> {
    let key = |d: NaiveDate| match period {
        Period::Daily => (d.year(), d.ordinal()),
        Period::Weekly => {
            let w = d.iso_week();
            (w.year(), w.week())
        }
        Period::Monthly => (d.year(), d.month()),
    };
    if period == Period::Daily {
        return daily.to_vec();
    }
    let mut out: Vec<Bar> = Vec::new();
    let mut growth: Option<f64> = Some(1.0);
    for (i, b) in daily.iter().enumerate() {
        let same = i > 0 && key(daily[i - 1].date) == key(b.date);
        let day_growth = b.change_percent.map(|p| 1.0 + p / 100.0);
        match out.last_mut() {
            Some(w) if same => {
                w.date = b.date;
                w.high = w.high.max(b.high);
                w.low = w.low.min(b.low);
                w.close = b.close;
                w.volume += b.volume;
                w.amount = w.amount.zip(b.amount).map(|(a, x)| round_to(a + x, 2));
                w.turnover_rate =
                    (w.turnover_rate.zip(b.turnover_rate)).map(|(a, x)| round6(a + x));
                growth = growth.zip(day_growth).map(|(g, x)| g * x);
            }
            _ => {
                out.push(*b);
                growth = day_growth;
            }
        }
        let w = out.last_mut().expect("a bar was just pushed");
        let basis = growth.filter(|g| *g > 0.0).map(|g| w.close / g);
        w.change = basis.map(|p| round6(w.close - p));
        w.change_percent = growth.map(|g| round6((g - 1.0) * 100.0));
        w.amplitude = basis.map(|p| round6((w.high - w.low) / p * 100.0));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    fn bar(date: &str, close: f64, prev_close: Option<f64>) -> RawBar {
        RawBar {
            date: d(date),
            open: close,
            high: close + 0.5,
            low: close - 0.5,
            close,
            volume: 1000.0,
            amount: Some(close * 1000.0),
            turnover_rate: None,
            prev_close,
        }
    }

    /// The real sz000002 hfq factors of `../shared/HISTORY.md`.
    fn vanke() -> Factors {
        Factors::new(vec![
            (d("2023-08-25"), 169.1453113717332),
            (d("2022-08-25"), 160.8188465756604),
            (d("2021-08-25"), 151.4445011965874),
            (d("2007-05-16"), 63.77650102944391),
            (d("1991-06-10"), 1.4227575982209),
            (d("1991-01-29"), 1.0),
        ])
    }

    /// hfq = raw × F(d), qfq = raw × F(d) / F(latest), checked against the same arithmetic
    /// written out by hand for the sz000002 table.
    #[test]
    fn adjustment_equals_hand_computed_values() {
        let f = vanke();
        let raw = [
            bar("2022-08-24", 18.00, None),
            bar("2022-08-25", 17.20, None),
        ];
        let hfq = derive(&raw, None, Some(&f), Adjust::Hfq);
        assert_eq!(hfq[0].close, round_to(18.00 * 151.4445011965874, 6));
        assert_eq!(hfq[1].close, round_to(17.20 * 160.8188465756604, 6));
        let qfq = derive(&raw, None, Some(&f), Adjust::Qfq);
        assert_eq!(
            qfq[0].close,
            round_to(18.00 * 151.4445011965874 / 169.1453113717332, 6)
        );
        assert_eq!(
            qfq[1].close,
            round_to(17.20 * 160.8188465756604 / 169.1453113717332, 6)
        );
        // After the latest ex-date qfq is the raw price.
        let today = derive(
            &[bar("2024-01-02", 10.0, None)],
            None,
            Some(&f),
            Adjust::Qfq,
        );
        assert_eq!(today[0].close, 10.0);
        // The change across the ex-date is against the ex-adjusted previous close, the same
        // in every adjustment.
        let expected_pct = (17.20 / (18.00 * 151.4445011965874 / 160.8188465756604) - 1.0) * 100.0;
        let raw_bars = derive(&raw, None, Some(&f), Adjust::None);
        for bars in [&raw_bars, &hfq, &qfq] {
            assert_eq!(bars[0].change, None, "nothing known before the first bar");
            assert!((bars[1].change_percent.unwrap() - expected_pct).abs() < 1e-5);
        }
        assert_eq!(raw_bars[1].close, 17.20);
        // Baostock's sh.600000 2015-06-23: fore = back / back(latest).
        let f = Factors::new(vec![
            (d("2015-06-23"), 6.295967),
            (d("2016-06-23"), 9.485146),
        ]);
        let fore = derive(&[bar("2015-06-23", 1.0, None)], None, Some(&f), Adjust::Qfq);
        assert!(
            (fore[0].close - 0.663_773).abs() < 1e-5,
            "{}",
            fore[0].close
        );
    }

    #[test]
    fn the_upstreams_previous_close_wins() {
        let raw = [
            bar("2024-12-18", 6.18, Some(6.08)),
            bar("2024-12-19", 6.09, Some(6.18)),
        ];
        let bars = derive(&raw, None, None, Adjust::None);
        assert_eq!(bars[0].change, Some(0.1));
        assert_eq!(bars[0].change_percent, Some(1.644737));
        assert_eq!(bars[1].change, Some(-0.09));
        let before = bar("2024-12-17", 6.08, None);
        let bars = derive(
            &raw[..1]
                .iter()
                .map(|b| RawBar {
                    prev_close: None,
                    ..*b
                })
                .collect::<Vec<_>>(),
            Some(&before),
            None,
            Adjust::None,
        );
        assert_eq!(bars[0].change, Some(0.1));
    }

    #[test]
    fn weeks_and_months() {
        // Mon 2024-01-01 .. Fri 2024-01-12, two weeks; an ex-date on Wednesday the 3rd.
        let f = Factors::new(vec![(d("2024-01-03"), 2.0)]);
        let days: Vec<RawBar> = (1..=12)
            .filter(|n| ![6, 7].contains(n))
            .map(|n| {
                bar(
                    &format!("2024-01-{n:02}"),
                    if n < 3 { 20.0 } else { 10.0 + n as f64 / 10.0 },
                    None,
                )
            })
            .collect();
        let daily = derive(&days, None, Some(&f), Adjust::None);
        let weeks = aggregate(&daily, Period::Weekly);
        assert_eq!(weeks.len(), 2);
        assert_eq!(
            (weeks[0].date, weeks[1].date),
            (d("2024-01-05"), d("2024-01-12"))
        );
        assert_eq!(weeks[0].open, 20.0);
        assert_eq!(weeks[0].high, 20.5);
        assert_eq!(weeks[0].volume, 5000.0);
        assert_eq!(weeks[0].amount, Some(71_200.0), "summed to the cent");
        // Week 2 against week 1's close, 10.5.
        assert!((weeks[1].change.unwrap() - (11.2 - 10.5)).abs() < 1e-9);
        // Week 1 from Monday's basis (unknown: no bar before) is unknown.
        assert_eq!(weeks[0].change, None);
        // In hfq terms the ex-date is no drop: Tuesday's 20 × 1 vs Wednesday's 10.3 × 2.
        let hfq = aggregate(&derive(&days, None, Some(&f), Adjust::Hfq), Period::Monthly);
        assert_eq!(hfq.len(), 1);
        assert_eq!(hfq[0].close, 22.4);
        assert_eq!(hfq[0].low, 19.5);
    }
}
