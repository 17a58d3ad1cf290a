//! The quote returned to callers: its fields and their names are the compatibility promise.

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::calendar::{exchange_tz, MarketPhase};
use crate::error::SymbolError;
use crate::symbol::{Exchange, Symbol};
use crate::upstream::Provider;

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheSource {
    /// The in-process memory tier.
    Memory,
    /// The persistent tier (the file cache natively, IndexedDB in the browser).
    Disk,
    /// An upstream request made for this call.
    Network,
}

/// The state of the security when the quote was fetched: the market phase, or `suspended`
/// for a stock with no trade in a session where it should have traded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MarketStatus {
    /// Before 09:15 on a trading day.
    PreOpen,
    /// 09:15 to 09:30.
    OpeningAuction,
    /// Continuous trading, 09:30 to 11:30 and 13:00 to 14:57.
    Trading,
    /// 11:30 to 13:00.
    LunchBreak,
    /// 14:57 to 15:00.
    ClosingAuction,
    /// After 15:00 on a trading day.
    AfterClose,
    /// A weekend or holiday.
    Closed,
    /// No trade in a session where the stock should have traded.
    Suspended,
}

impl From<MarketPhase> for MarketStatus {
    fn from(phase: MarketPhase) -> Self {
        match phase {
            MarketPhase::PreOpen => MarketStatus::PreOpen,
            MarketPhase::OpeningAuction => MarketStatus::OpeningAuction,
            MarketPhase::Trading => MarketStatus::Trading,
            MarketPhase::LunchBreak => MarketStatus::LunchBreak,
            MarketPhase::ClosingAuction => MarketStatus::ClosingAuction,
            MarketPhase::AfterClose => MarketStatus::AfterClose,
            MarketPhase::Closed => MarketStatus::Closed,
        }
    }
}

/// A realtime quote. Prices in yuan, `volume` in shares, `amount` in yuan, whichever
/// upstream answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quote {
    /// The 6-digit code, e.g. `600000`.
    pub symbol: String,
    /// Where it is listed.
    pub exchange: Exchange,
    /// Its name, as the upstream gives it (Chinese).
    pub name: String,
    /// The last price; for a stock with no trade today, the previous close.
    pub current_price: f64,
    /// `current_price - prev_close`, rounded to 3 decimals.
    pub change: f64,
    /// The change in percent of the previous close, rounded to 2 decimals.
    pub change_percent: f64,
    /// `null` when there was no trade today.
    pub open: Option<f64>,
    /// Today's high; `null` when there was no trade today.
    pub high: Option<f64>,
    /// Today's low; `null` when there was no trade today.
    pub low: Option<f64>,
    /// The previous session's close.
    pub prev_close: f64,
    /// Shares.
    pub volume: u64,
    /// Yuan.
    pub amount: f64,
    /// The upstream's own time for the quote, exchange time (`+08:00`).
    #[serde(default, deserialize_with = "crate::dates::de_opt_datetime")]
    pub quote_time: Option<DateTime<FixedOffset>>,
    /// When quantdb fetched it from the upstream, exchange time (`+08:00`).
    #[serde(deserialize_with = "crate::dates::de_datetime")]
    pub timestamp: DateTime<FixedOffset>,
    /// Whether this answer came from a cache tier.
    pub cache_hit: bool,
    /// The tier that answered.
    pub cache_source: CacheSource,
    /// An expired quote, answered because every upstream failed (`cache_source` says which
    /// tier kept it). `false` on every other quote.
    #[serde(default)]
    pub stale: bool,
    /// The upstream that answered.
    pub source: Provider,
    /// The market phase when it was fetched, or `suspended`.
    pub market_status: MarketStatus,
}

impl Quote {
    /// Whether the market data are the same (price, volume, amount, open, high, low, the
    /// upstream's time, staleness): what a push compares, ignoring when and where it was
    /// fetched.
    pub fn same_market_data(&self, other: &Quote) -> bool {
        (
            self.current_price,
            self.volume,
            self.amount,
            self.open,
            self.high,
            self.low,
        ) == (
            other.current_price,
            other.volume,
            other.amount,
            other.open,
            other.high,
            other.low,
        ) && self.quote_time == other.quote_time
            && self.stale == other.stale
    }

    /// Whether `other` is the same answer of the same fetch: every member equal but
    /// `cache_hit` and `cache_source`, which say how this call was served.
    pub fn same_fetch(&self, other: &Quote) -> bool {
        // Destructured, so that a new member cannot be forgotten here.
        let Quote {
            symbol,
            exchange,
            name,
            current_price,
            change,
            change_percent,
            open,
            high,
            low,
            prev_close,
            volume,
            amount,
            quote_time,
            timestamp,
            cache_hit: _,
            cache_source: _,
            stale,
            source,
            market_status,
        } = self;
        (symbol, exchange, name, quote_time, timestamp, stale, source)
            == (
                &other.symbol,
                &other.exchange,
                &other.name,
                &other.quote_time,
                &other.timestamp,
                &other.stale,
                &other.source,
            )
            && (current_price, change, change_percent, prev_close, amount)
                == (
                    &other.current_price,
                    &other.change,
                    &other.change_percent,
                    &other.prev_close,
                    &other.amount,
                )
            && (open, high, low, volume, market_status)
                == (
                    &other.open,
                    &other.high,
                    &other.low,
                    &other.volume,
                    &other.market_status,
                )
    }

    /// The symbol this quote belongs to.
    pub fn key(&self) -> Option<Symbol> {
        Symbol::new(self.exchange, &self.symbol)
    }

    /// When it was fetched, as a UTC instant.
    pub fn fetched_at(&self) -> DateTime<Utc> {
        self.timestamp.with_timezone(&Utc)
    }

    pub(crate) fn served_from(mut self, source: CacheSource) -> Quote {
        self.cache_hit = source != CacheSource::Network;
        self.cache_source = source;
        self
    }

    pub(crate) fn served_stale(self, source: CacheSource) -> Quote {
        Quote {
            stale: true,
            ..self.served_from(source)
        }
    }
}

/// One entry of a batch answer: a quote, or that symbol's error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum BatchEntry {
    /// The symbol's quote.
    Quote(Quote),
    /// Why there is none.
    Error(SymbolError),
}

impl BatchEntry {
    /// The quote, if this entry is one.
    pub fn quote(&self) -> Option<&Quote> {
        match self {
            BatchEntry::Quote(q) => Some(q),
            BatchEntry::Error(_) => None,
        }
    }

    /// The error, if this entry is one.
    pub fn error(&self) -> Option<&SymbolError> {
        match self {
            BatchEntry::Quote(_) => None,
            BatchEntry::Error(e) => Some(e),
        }
    }
}

/// What a provider parser reads for one symbol, already in shares and yuan. Missing or
/// non-numeric values are `None`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RawQuote {
    /// The symbol the record is for.
    pub symbol: Option<Symbol>,
    /// The name, decoded.
    pub name: String,
    /// The last price (0 or missing when there was no trade).
    pub price: Option<f64>,
    /// The previous close.
    pub prev_close: Option<f64>,
    /// Today's open.
    pub open: Option<f64>,
    /// Today's high.
    pub high: Option<f64>,
    /// Today's low.
    pub low: Option<f64>,
    /// Shares.
    pub volume: Option<f64>,
    /// Yuan.
    pub amount: Option<f64>,
    /// Exchange-local time of the quote.
    pub time: Option<NaiveDateTime>,
}

fn round_to(x: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    let r = (x * f).round() / f;
    if r == 0.0 {
        0.0 // never "-0.0"
    } else {
        r
    }
}

/// The largest price accepted (yuan, or index points): far above any listing's.
const MAX_PRICE: f64 = 10_000_000.0;
/// The largest move accepted from the previous close, in percent (a first trading day can
/// multiply a price many times, never by a thousand).
const MAX_CHANGE_PERCENT: f64 = 100_000.0;

impl RawQuote {
    /// Refuses a record whose numbers cannot be right: not finite, negative, absurdly large,
    /// or a move no listing makes. A refused record is that symbol's parse error.
    pub fn check(&self) -> Result<(), String> {
        let prices = [
            ("price", self.price),
            ("previous close", self.prev_close),
            ("open", self.open),
            ("high", self.high),
            ("low", self.low),
        ];
        for (name, value) in prices {
            if let Some(v) = value.filter(|v| !(0.0..=MAX_PRICE).contains(v)) {
                return Err(format!("{name} {v} is not a price"));
            }
        }
        for (name, value) in [("volume", self.volume), ("amount", self.amount)] {
            if let Some(v) = value.filter(|v| !(v.is_finite() && *v >= 0.0 && *v < 1e18)) {
                return Err(format!("{name} {v} is out of range"));
            }
        }
        if let (Some(price), Some(prev)) = (self.price, self.prev_close) {
            if price > 0.0 && prev > 0.0 {
                let percent = (price - prev) / prev * 100.0;
                if percent.abs() > MAX_CHANGE_PERCENT {
                    return Err(format!("a move from {prev} to {price} is not plausible"));
                }
            }
        }
        Ok(())
    }

    /// Maps a parsed record to a [`Quote`], the same way for every upstream. Returns `None`
    /// when the record cannot make a quote (no symbol, no previous close).
    pub fn into_quote(
        self,
        source: Provider,
        fetched_at: DateTime<Utc>,
        phase: MarketPhase,
    ) -> Option<Quote> {
        let symbol = self.symbol?;
        let positive = |v: Option<f64>| v.filter(|x| x.is_finite() && *x > 0.0);
        let prev_close = positive(self.prev_close)?;
        let volume = self.volume.map_or(0, |v| v.round() as u64);
        let price = positive(self.price);
        let tz = exchange_tz();
        let mut quote = Quote {
            symbol: symbol.code().to_string(),
            exchange: symbol.exchange(),
            name: match self.name.trim() {
                trimmed if trimmed.len() == self.name.len() => self.name,
                trimmed => trimmed.to_string(),
            },
            current_price: prev_close,
            change: 0.0,
            change_percent: 0.0,
            open: None,
            high: None,
            low: None,
            prev_close,
            volume,
            amount: positive(self.amount).map_or(0.0, |a| round_to(a, 2)),
            quote_time: self.time.and_then(|t| tz.from_local_datetime(&t).single()),
            timestamp: whole_millis(fetched_at.with_timezone(&tz)),
            cache_hit: false,
            cache_source: CacheSource::Network,
            stale: false,
            source,
            market_status: phase.into(),
        };
        match price {
            Some(price) if volume > 0 => {
                quote.current_price = price;
                quote.change = round_to(price - prev_close, 3);
                quote.change_percent = round_to((price - prev_close) / prev_close * 100.0, 2);
                quote.open = positive(self.open);
                quote.high = positive(self.high);
                quote.low = positive(self.low);
            }
            // No trade yet: before continuous trading that is normal; later it is a suspension.
            _ if !matches!(phase, MarketPhase::PreOpen | MarketPhase::OpeningAuction) => {
                quote.market_status = MarketStatus::Suspended;
                quote.amount = 0.0;
            }
            _ => quote.amount = 0.0,
        }
        Some(quote)
    }
}

/// Truncates to whole milliseconds so the JSON form is short and round-trips exactly.
fn whole_millis(t: DateTime<FixedOffset>) -> DateTime<FixedOffset> {
    use chrono::Timelike;
    t.with_nanosecond(t.nanosecond() / 1_000_000 * 1_000_000)
        .unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn raw(price: f64, prev: f64, volume: u64) -> RawQuote {
        RawQuote {
            symbol: Symbol::from_key("sh600000"),
            name: "浦发银行".into(),
            price: Some(price),
            prev_close: Some(prev),
            open: Some(9.09),
            high: Some(9.15),
            low: Some(9.03),
            volume: Some(volume as f64),
            amount: Some(465159863.0),
            time: NaiveDate::from_ymd_opt(2026, 8, 21)
                .unwrap()
                .and_hms_opt(15, 34, 58),
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 8, 21, 2, 0, 0).unwrap()
    }

    #[test]
    fn computes_change_and_percent() {
        let q = raw(9.05, 9.11, 51270289)
            .into_quote(Provider::Sina, now(), MarketPhase::Trading)
            .unwrap();
        assert_eq!(q.change, -0.06);
        assert_eq!(q.change_percent, -0.66);
        assert_eq!(q.symbol, "600000");
        assert_eq!(q.exchange, Exchange::Shanghai);
        assert_eq!(q.market_status, MarketStatus::Trading);
        let json = serde_json::to_value(&q).unwrap();
        assert_eq!(json["quote_time"], "2026-08-21T15:34:58+08:00");
        assert_eq!(json["timestamp"], "2026-08-21T10:00:00+08:00");
        assert_eq!(json["exchange"], "SH");
        assert_eq!(json["source"], "sina");
        assert_eq!(json["cache_source"], "network");
    }

    #[test]
    fn suspended_is_not_a_minus_100_percent_move() {
        let q = raw(0.0, 9.11, 0)
            .into_quote(Provider::Sina, now(), MarketPhase::Trading)
            .unwrap();
        assert_eq!(q.market_status, MarketStatus::Suspended);
        assert_eq!(q.current_price, 9.11);
        assert_eq!(q.change, 0.0);
        assert_eq!(q.change_percent, 0.0);
        assert_eq!(q.open, None);
        let before_open = raw(0.0, 9.11, 0)
            .into_quote(Provider::Sina, now(), MarketPhase::PreOpen)
            .unwrap();
        assert_eq!(before_open.market_status, MarketStatus::PreOpen);
    }

    #[test]
    fn no_previous_close_makes_no_quote() {
        let mut r = raw(9.0, 0.0, 1);
        assert!(r
            .clone()
            .into_quote(Provider::Sina, now(), MarketPhase::Trading)
            .is_none());
        r.prev_close = Some(f64::NAN);
        assert!(r
            .into_quote(Provider::Sina, now(), MarketPhase::Trading)
            .is_none());
    }

    #[test]
    fn batch_entries_serialise_flat() {
        let err = SymbolError::new(
            "abc",
            &crate::Error::InvalidSymbol {
                input: "abc".into(),
                reason: "bad".into(),
            },
        );
        let json = serde_json::to_value(BatchEntry::Error(err)).unwrap();
        assert_eq!(json["symbol"], "abc");
        assert_eq!(json["code"], "invalid_symbol");
        assert!(json["error"].as_str().unwrap().contains("abc"));
    }
}
