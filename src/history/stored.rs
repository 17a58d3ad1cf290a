//! What the history cache holds for one symbol, and how it is written: a small meta record
//! (covered ranges, factor table) plus one record of bars per calendar year, so that adding a
//! day rewrites one year, never ten. The same records go to files and to IndexedDB.

use std::collections::BTreeSet;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use super::{Coverage, Factors, RawBar};
use crate::symbol::Symbol;

/// A symbol's factor table and when it was last checked against the upstream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FactorState {
    /// The table.
    pub table: Factors,
    /// The exchange date it was fetched on.
    #[serde(deserialize_with = "crate::dates::de_date")]
    pub checked_on: NaiveDate,
}

/// Everything cached for one symbol.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SymbolHistory {
    /// Final raw bars, date order, one a day.
    pub bars: Vec<RawBar>,
    /// The date ranges fetched: a day inside with no bar had none.
    pub coverage: Coverage,
    /// The factor table, once fetched.
    pub factors: Option<FactorState>,
    /// New bars showed an ex-event the factor table does not have: fetch it again before
    /// adjusting.
    pub ex_event_pending: bool,
}

impl SymbolHistory {
    /// Puts `bars` (date order) in, replacing cached bars of the same days; returns the years
    /// touched.
    pub fn merge_bars(&mut self, bars: &[RawBar]) -> BTreeSet<i32> {
        let years = bars.iter().map(|b| b.date.year()).collect();
        if bars.is_empty() {
            return years;
        }
        let mut merged = Vec::with_capacity(self.bars.len() + bars.len());
        let (mut old, mut new) = (self.bars.iter().peekable(), bars.iter().peekable());
        loop {
            let next = match (old.peek(), new.peek()) {
                (Some(o), Some(n)) if o.date < n.date => old.next(),
                (Some(o), Some(n)) if o.date == n.date => {
                    old.next();
                    new.next()
                }
                (Some(_), Some(_)) | (None, Some(_)) => new.next(),
                (Some(_), None) => old.next(),
                (None, None) => break,
            };
            merged.extend(next.copied());
        }
        self.bars = merged;
        years
    }

    /// The cached bars from `start` to `end`, and the bar before them.
    pub fn range(&self, start: NaiveDate, end: NaiveDate) -> (Option<&RawBar>, &[RawBar]) {
        let a = self.bars.partition_point(|b| b.date < start);
        let z = self.bars.partition_point(|b| b.date <= end);
        (
            a.checked_sub(1).map(|i| &self.bars[i]),
            &self.bars[a..z.max(a)],
        )
    }

    /// Another copy of the same symbol's cache (another process's) put together with this
    /// one: bars of both (this one's win on the same day), both coverages, the newer factors.
    pub fn absorb(&mut self, other: SymbolHistory) {
        let mine = std::mem::replace(&mut self.bars, other.bars);
        self.merge_bars(&mine);
        for &(a, b) in other.coverage.ranges() {
            self.coverage.insert(a, b);
        }
        let newer = match (&self.factors, &other.factors) {
            (Some(mine), Some(theirs)) => theirs.checked_on > mine.checked_on,
            (None, Some(_)) => true,
            _ => false,
        };
        if newer {
            self.factors = other.factors;
        }
        self.ex_event_pending |= other.ex_event_pending;
    }

    /// The years that have bars.
    pub fn years(&self) -> BTreeSet<i32> {
        self.bars.iter().map(|b| b.date.year()).collect()
    }

    /// The meta record.
    pub fn encode_meta(&self, symbol: Symbol) -> Vec<u8> {
        let meta = Meta {
            format: META_FORMAT.into(),
            version: VERSION,
            symbol: symbol.key(),
            coverage: self.coverage.clone(),
            factors: self.factors.clone(),
            ex_event_pending: self.ex_event_pending,
            years: self.years().into_iter().collect(),
        };
        serde_json::to_vec(&meta).unwrap_or_default()
    }

    /// One year's record of bars.
    pub fn encode_year(&self, symbol: Symbol, year: i32) -> Vec<u8> {
        let bars: Vec<BarRow> = (self.bars.iter())
            .filter(|b| b.date.year() == year)
            .map(|b| {
                let date = super::date_text(b.date, false);
                (
                    date,
                    b.open,
                    b.high,
                    b.low,
                    b.close,
                    b.volume,
                    b.amount,
                    b.turnover_rate,
                    b.prev_close,
                )
            })
            .collect();
        let record = Year {
            format: YEAR_FORMAT.into(),
            version: VERSION,
            symbol: symbol.key(),
            year,
            bars,
        };
        serde_json::to_vec(&record).unwrap_or_default()
    }

    /// Reads a meta record: the history without its bars, and the years whose records hold
    /// them. `Err` says why it is not one of ours for `symbol`.
    pub fn decode_meta(symbol: Symbol, bytes: &[u8]) -> Result<(SymbolHistory, Vec<i32>), String> {
        let meta: Meta = serde_json::from_slice(bytes).map_err(|e| format!("meta: {e}"))?;
        if meta.format != META_FORMAT || meta.version != VERSION || meta.symbol != symbol.key() {
            return Err(format!(
                "meta: not a {META_FORMAT} v{VERSION} record of {symbol}"
            ));
        }
        let history = SymbolHistory {
            bars: Vec::new(),
            coverage: Coverage::from_ranges(meta.coverage.ranges().iter().copied()),
            factors: meta.factors.map(|f| FactorState {
                table: Factors::new(f.table.rows().to_vec()),
                ..f
            }),
            ex_event_pending: meta.ex_event_pending,
        };
        Ok((history, meta.years))
    }

    /// Reads a year's record into this history (its bars, checked).
    pub fn decode_year(&mut self, symbol: Symbol, year: i32, bytes: &[u8]) -> Result<(), String> {
        let record: Year = serde_json::from_slice(bytes).map_err(|e| format!("{year}: {e}"))?;
        if record.format != YEAR_FORMAT
            || record.version != VERSION
            || record.symbol != symbol.key()
            || record.year != year
        {
            return Err(format!(
                "{year}: not a {YEAR_FORMAT} v{VERSION} record of {symbol}"
            ));
        }
        let mut bars = Vec::with_capacity(record.bars.len());
        for (date, open, high, low, close, volume, amount, turnover_rate, prev_close) in record.bars
        {
            let date = super::ymd(&date)
                .filter(|d| d.year() == year)
                .ok_or_else(|| format!("{year}: bad date {date:?}"))?;
            let bar = RawBar {
                date,
                open,
                high,
                low,
                close,
                volume,
                amount,
                turnover_rate,
                prev_close,
            };
            bar.check()?;
            bars.push(bar);
        }
        bars.sort_by_key(|b| b.date);
        bars.dedup_by_key(|b| b.date);
        self.merge_bars(&bars);
        Ok(())
    }
}

const META_FORMAT: &str = "quantdb.history";
const YEAR_FORMAT: &str = "quantdb.history.year";
const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Meta {
    format: String,
    version: u32,
    symbol: String,
    coverage: Coverage,
    factors: Option<FactorState>,
    #[serde(default)]
    ex_event_pending: bool,
    years: Vec<i32>,
}

/// `[date, open, high, low, close, volume, amount, turnover_rate, prev_close]`
type BarRow = (
    String,
    f64,
    f64,
    f64,
    f64,
    f64,
    Option<f64>,
    Option<f64>,
    Option<f64>,
);

#[derive(Serialize, Deserialize)]
struct Year {
    format: String,
    version: u32,
    symbol: String,
    year: i32,
    bars: Vec<BarRow>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    fn bar(date: &str, close: f64) -> RawBar {
        RawBar {
            date: d(date),
            open: close,
            high: close,
            low: close,
            close,
            volume: 100.0,
            amount: None,
            turnover_rate: Some(0.5),
            prev_close: None,
        }
    }

    #[test]
    fn records_round_trip_and_refuse_strangers() {
        let sym = Symbol::from_key("sh600000").unwrap();
        let mut h = SymbolHistory::default();
        let years = h.merge_bars(&[bar("2023-12-29", 9.0), bar("2024-01-02", 10.0)]);
        assert_eq!(years.into_iter().collect::<Vec<_>>(), vec![2023, 2024]);
        h.merge_bars(&[bar("2024-01-02", 10.5), bar("2024-01-03", 11.0)]);
        assert_eq!(
            h.bars.iter().map(|b| b.close).collect::<Vec<_>>(),
            vec![9.0, 10.5, 11.0]
        );
        h.coverage.insert(d("2023-12-01"), d("2024-01-03"));
        h.factors = Some(FactorState {
            table: Factors::new(vec![(d("2020-01-01"), 1.5)]),
            checked_on: d("2024-01-03"),
        });
        let (mut back, years) = SymbolHistory::decode_meta(sym, &h.encode_meta(sym)).unwrap();
        assert_eq!(years, vec![2023, 2024]);
        for y in years {
            back.decode_year(sym, y, &h.encode_year(sym, y)).unwrap();
        }
        assert_eq!(back, h);
        let other = Symbol::from_key("sz000001").unwrap();
        assert!(SymbolHistory::decode_meta(other, &h.encode_meta(sym)).is_err());
        assert!(back
            .decode_year(sym, 2023, &h.encode_year(sym, 2024))
            .is_err());
        assert!(SymbolHistory::decode_meta(sym, b"{}").is_err());
        let bad = String::from_utf8(h.encode_year(sym, 2024))
            .unwrap()
            .replace("10.5", "-1");
        assert!(back.decode_year(sym, 2024, bad.as_bytes()).is_err());
        let (before, bars) = h.range(d("2024-01-01"), d("2024-01-02"));
        assert_eq!((before.unwrap().close, bars.len()), (9.0, 1));
    }

    #[test]
    fn two_copies_put_together_keep_everything() {
        let mut a = SymbolHistory::default();
        a.merge_bars(&[bar("2024-01-02", 10.0)]);
        a.coverage.insert(d("2024-01-01"), d("2024-01-02"));
        let mut b = SymbolHistory::default();
        b.merge_bars(&[bar("2024-01-02", 99.0), bar("2025-01-02", 12.0)]);
        b.coverage.insert(d("2025-01-01"), d("2025-01-02"));
        a.absorb(b);
        assert_eq!(
            a.bars.iter().map(|b| b.close).collect::<Vec<_>>(),
            vec![10.0, 12.0]
        );
        assert_eq!(a.coverage.ranges().len(), 2);
    }
}
