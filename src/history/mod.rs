//! Daily history: the request, the bar, and the pure parts of the history cache (upstream
//! kline formats, price adjustment, weekly and monthly bars, covered date ranges). No I/O
//! happens here; the engine walks the tiers and asks the upstreams.
//!
//! The cache keeps **raw** (unadjusted) daily bars, units normalised (volume in shares, amount
//! in yuan), and each symbol's backward-adjustment factor table `F(d)` (Sina's `hfq.js`)
//! separately. Adjusted prices are derived when read: `hfq = raw × F(d)` and
//! `qfq = raw × F(d) / F(latest)`. This is the multiplicative convention of Sina and tushare;
//! Eastmoney's own qfq subtracts dividends instead (it can go negative far back) and differs
//! from it slightly. A new dividend only adds a factor row: no bar is fetched again.

mod adjust;
mod coverage;
mod kline;
mod stored;

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::error::Error;

pub use adjust::{aggregate, derive, Factors};
pub use coverage::Coverage;
pub(crate) use kline::{default_base_url, request, Endpoint};
pub use kline::{parse_bars, parse_factors, KlineAnswer};
pub(crate) use kline::{SINA_MAX_BARS, TENCENT_PAGE};
pub use stored::{FactorState, SymbolHistory};

/// Price adjustment. QuantDB's strings parse to it: `""` (none), `"qfq"`, `"hfq"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Adjust {
    /// Prices as traded.
    #[default]
    None,
    /// Forward-adjusted: today's prices stay, earlier ones are scaled down by every later
    /// ex-event (`raw × F(d) / F(latest)`).
    Qfq,
    /// Backward-adjusted: the first prices stay, later ones are scaled up (`raw × F(d)`).
    Hfq,
}

impl Adjust {
    /// `none`, `qfq` or `hfq`.
    pub fn as_str(self) -> &'static str {
        match self {
            Adjust::None => "none",
            Adjust::Qfq => "qfq",
            Adjust::Hfq => "hfq",
        }
    }
}

impl FromStr for Adjust {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "none" => Ok(Adjust::None),
            "qfq" => Ok(Adjust::Qfq),
            "hfq" => Ok(Adjust::Hfq),
            _ => Err(Error::InvalidRequest(format!(
                "unknown adjust {s:?}: use \"\" or \"none\", \"qfq\" or \"hfq\""
            ))),
        }
    }
}

impl fmt::Display for Adjust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Bar length. Weekly and monthly bars are built from the cached daily bars.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// One bar a trading day.
    #[default]
    Daily,
    /// One bar a week (Monday to Sunday), dated its last trading day.
    Weekly,
    /// One bar a month, dated its last trading day.
    Monthly,
}

impl Period {
    /// `daily`, `weekly` or `monthly`.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Daily => "daily",
            Period::Weekly => "weekly",
            Period::Monthly => "monthly",
        }
    }
}

impl FromStr for Period {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "daily" | "day" | "d" => Ok(Period::Daily),
            "weekly" | "week" | "w" => Ok(Period::Weekly),
            "monthly" | "month" | "m" => Ok(Period::Monthly),
            _ => Err(Error::InvalidRequest(format!(
                "unknown period {s:?}: use daily, weekly or monthly"
            ))),
        }
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Reads a date written `YYYYMMDD` or `YYYY-MM-DD`.
///
/// ```
/// use chrono::NaiveDate;
/// let d = NaiveDate::from_ymd_opt(2024, 1, 2).unwrap();
/// assert_eq!(quantdb::history::parse_date("20240102").unwrap(), d);
/// assert_eq!(quantdb::history::parse_date("2024-01-02").unwrap(), d);
/// assert!(quantdb::history::parse_date("2024/01/02").is_err());
/// ```
pub fn parse_date(text: &str) -> Result<NaiveDate, Error> {
    ymd(text.trim()).ok_or_else(|| {
        Error::InvalidRequest(format!("bad date {text:?}: write YYYYMMDD or YYYY-MM-DD"))
    })
}

/// `YYYY-MM-DD` or `YYYYMMDD`, years 1900 to 9999. (Read by hand: chrono's format parser
/// would add tens of kilobytes to the browser package.)
pub(crate) fn ymd(text: &str) -> Option<NaiveDate> {
    let b = text.as_bytes();
    let date = match b.len() {
        8 => {
            let year = i32::try_from(crate::dates::digits(&b[0..4])?).ok()?;
            let (month, day) = (
                crate::dates::digits(&b[4..6])?,
                crate::dates::digits(&b[6..8])?,
            );
            NaiveDate::from_ymd_opt(year, month, day)?
        }
        _ => crate::dates::iso_date(text)?,
    };
    Some(date).filter(|d| (1900..=9999).contains(&d.year()))
}

/// `YYYY-MM-DD` (or `YYYYMMDD` with `compact`).
pub(crate) fn date_text(d: NaiveDate, compact: bool) -> String {
    let sep = if compact { "" } else { "-" };
    format!("{:04}{sep}{:02}{sep}{:02}", d.year(), d.month(), d.day())
}

/// What [`crate::QuantDb::get_stock_data`] is asked for.
///
/// `start`/`end` bound the dates (`end` defaults to today and is clamped to it); `days` asks
/// for the last N bars instead (up to `end`). With neither `start` nor `days`, the last 30
/// bars.
///
/// ```
/// use quantdb::history::{Adjust, HistoryRequest, Period};
/// let year = HistoryRequest::range("20240101", "2024-12-31").unwrap().adjust(Adjust::Qfq);
/// let month = HistoryRequest::last_days(22).period(Period::Weekly);
/// assert_eq!(year.adjust, Adjust::Qfq);
/// assert_eq!(month.days, Some(22));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistoryRequest {
    /// The first date wanted.
    pub start: Option<NaiveDate>,
    /// The last date wanted (clamped to today).
    pub end: Option<NaiveDate>,
    /// The last N bars up to `end` (instead of `start`).
    pub days: Option<u32>,
    /// Price adjustment.
    pub adjust: Adjust,
    /// Bar length.
    pub period: Period,
    /// Fetch the range again from the upstream (and the factors), replacing the cached bars.
    pub force_refresh: bool,
}

impl HistoryRequest {
    /// Bars from `start` to `end`, each `YYYYMMDD` or `YYYY-MM-DD`.
    pub fn range(start: &str, end: &str) -> Result<Self, Error> {
        Ok(HistoryRequest {
            start: Some(parse_date(start)?),
            end: Some(parse_date(end)?),
            ..Default::default()
        })
    }

    /// The last `n` bars.
    pub fn last_days(n: u32) -> Self {
        HistoryRequest {
            days: Some(n),
            ..Default::default()
        }
    }

    /// With this adjustment.
    pub fn adjust(mut self, adjust: Adjust) -> Self {
        self.adjust = adjust;
        self
    }

    /// With this bar length.
    pub fn period(mut self, period: Period) -> Self {
        self.period = period;
        self
    }

    /// Fetched again from the upstream.
    pub fn force_refresh(mut self, on: bool) -> Self {
        self.force_refresh = on;
        self
    }
}

/// A daily (or weekly, monthly) bar as answered. Units are the same whichever upstream
/// answered: prices in yuan, `volume` in shares, `amount` in yuan, percentages in percent.
/// `change`, `change_percent` and `amplitude` are against the previous close (ex-adjusted on
/// an ex-date); they are `null` on the first bar when no earlier one is known. `amount` and
/// `turnover_rate` are `null` when the upstream that answered does not give them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bar {
    /// The trading day (the period's last trading day for weekly and monthly bars).
    #[serde(deserialize_with = "crate::dates::de_date")]
    pub date: NaiveDate,
    /// Open.
    pub open: f64,
    /// High.
    pub high: f64,
    /// Low.
    pub low: f64,
    /// Close.
    pub close: f64,
    /// Shares.
    pub volume: f64,
    /// Yuan.
    pub amount: Option<f64>,
    /// Close minus the previous close.
    pub change: Option<f64>,
    /// `change` in percent of the previous close.
    pub change_percent: Option<f64>,
    /// High minus low, in percent of the previous close.
    pub amplitude: Option<f64>,
    /// Volume in percent of the float, when the upstream gives it.
    pub turnover_rate: Option<f64>,
    /// The adjustment of the prices.
    pub adjust: Adjust,
}

/// The lowest and highest price a bar may carry.
const MIN_PRICE: f64 = 1e-4;
const MAX_PRICE: f64 = 1e9;

/// A raw daily bar as cached: unadjusted prices in yuan, volume in shares, amount in yuan.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RawBar {
    /// The trading day.
    #[serde(deserialize_with = "crate::dates::de_date")]
    pub date: NaiveDate,
    /// Open.
    pub open: f64,
    /// High.
    pub high: f64,
    /// Low.
    pub low: f64,
    /// Close.
    pub close: f64,
    /// Shares.
    pub volume: f64,
    /// Yuan, when the upstream gives it.
    pub amount: Option<f64>,
    /// Percent, when the upstream gives it.
    pub turnover_rate: Option<f64>,
    /// The previous close this bar's change is against (ex-adjusted on an ex-date), when the
    /// upstream gives it.
    pub prev_close: Option<f64>,
}

impl RawBar {
    /// Prices (and the previous close) from 0.0001 to 10^9 yuan, high the highest and low the
    /// lowest, volume, amount and turnover finite and not negative: whatever is derived from
    /// the bar (adjusted prices, percentages) is then a finite number.
    pub(crate) fn check(&self) -> Result<(), String> {
        let prices = [self.open, self.high, self.low, self.close];
        let sane = |p: &f64| (MIN_PRICE..=MAX_PRICE).contains(p);
        if !prices.iter().chain(self.prev_close.as_ref()).all(sane) {
            return Err(format!("{}: prices must be from 0.0001 to 10^9", self.date));
        }
        let tolerance = 1e-6 * self.high;
        if self.high + tolerance < self.open.max(self.close).max(self.low)
            || self.low - tolerance > self.open.min(self.close)
        {
            return Err(format!("{}: high/low do not bound open/close", self.date));
        }
        let bounded = |v: f64, max: f64| v.is_finite() && (0.0..=max).contains(&v);
        if !bounded(self.volume, 1e15)
            || !self.amount.is_none_or(|a| bounded(a, 1e16))
            || !self.turnover_rate.is_none_or(|t| bounded(t, 1e6))
        {
            return Err(format!(
                "{}: volume, amount or turnover out of range",
                self.date
            ));
        }
        Ok(())
    }
}
