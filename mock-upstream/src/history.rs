//! Daily history of the synthetic market, served in the upstreams' kline formats.
//!
//! # The model
//!
//! Every security has a deterministic daily history, computed on demand for any date in
//! 1991-2099 (no cumulative random walk):
//!
//! - **Trading days**: weekdays minus exchange closures: for 2024-2026 the official list (the
//!   same as quantdb's calendar), for other years a rule (Jan 1, the Spring Festival eve and the
//!   six days after, May 1-3, Oct 1-7). See [`is_trading_day`] and [`trading_days`].
//! - **Listing**: [`listing_date`]. Most stocks listed in 1991-2014, some in 2019-2025, about
//!   3% within the year before the anchor day (2025-12 to 2026-11), boards permitting (ChiNext
//!   from 2009-10-30, STAR from 2019-07-22, Beijing from 2021-11-15). Indices from 2005-01-04.
//!   A few real dates are kept (sh600000 1999-11-10, sz000001 1991-04-03, sz300750 2018-06-11,
//!   sh601318 2007-03-01, bj430017 2023-05-31). No bars before listing.
//! - **Suspensions**: about 30% of the stocks have one or two historical windows (3 to 25
//!   trading days, between 60 days after listing and 2026-10) without bars. The stocks the
//!   realtime mock marks suspended (code divisible by 97) have been suspended for the last 10-60
//!   trading days up to today (the window moves with today). See [`suspensions`].
//! - **Backward-adjusted price**: a smooth positive function `clean(d) = exp(trend + three sines
//!   + a small hashed daily noise)` of the day, with hashed parameters per security.
//! - **Ex-events**: for about 85% of the years after the listing year, one cash dividend in
//!   May-August (15% of them with bonus shares, 2-4 per 10), on a trading day outside the
//!   historical windows. Each has a nominal factor (`1.005`-`1.05` for cash, times `1.2`-`1.4`
//!   with bonus shares). Indices have none.
//! - **Raw close**: `raw(d) = round(anchor_close * clean(d) / clean(anchor) * G(d))`, where
//!   `G(d)` is the product of the nominal factors of the events in `(d, anchor]` (or the inverse
//!   for the events in `(anchor, d]`) and the anchor is [`ANCHOR_DATE`] (for a suspended stock:
//!   its last bar before its window as seen on 2026-11-30). `anchor_close` is the realtime
//!   previous close the mock served before it had a history, so on 2026-11-30 the realtime
//!   answers are unchanged. Raw bars never change when "today" moves (only new days appear).
//! - **Ex-reference price**: on an ex-date the previous close is `(10 * close - cash per 10) /
//!   (10 + bonus per 10)` rounded to the cent (as the exchanges publish it), the close being the
//!   raw close of the last bar before the ex-date; the event's published factor is
//!   `close / reference` (so `hfq = raw * F(d)` is continuous), and `F(d)` is the product of the
//!   published factors of the events on or before `d`. Events after today are not published,
//!   nor those of a suspended stock inside its current window.
//! - **Bars**: open, high and low hashed around the reference previous close and the close
//!   (`low <= open, close <= high`); volume in shares (a multiple of 100) around a hashed
//!   turnover of the floating shares; amount (yuan, whole) = volume times a price in
//!   `[low, high]`.
//! - **Today's bar**: when today is a trading day, the time is 09:30 or later, the stock is
//!   not suspended in the realtime answer and is listed, the last bar is today's. Until 15:00 it
//!   is provisional: the realtime snapshot at the current tick (open, high, low, price as close,
//!   volume, amount). From 15:00 it is final: the day's settled bar, the same bar the history
//!   serves for that day on every later day (so a cached final bar never goes stale). On a
//!   stopped clock the realtime quote settles too: from 15:00 it is that bar, whatever the tick
//!   (the order book follows its close). On the running system clock the realtime quote keeps
//!   moving with the tick at any hour (tests that move the tick see a change), so after 15:00
//!   it differs from today's bar. Today's bar follows the realtime answer even on a day inside
//!   a historical window. Before 09:30 or on a closed day the last bar is the previous trading
//!   day's.
//! - **The realtime previous close** on a date is the reference previous close of a bar on that
//!   date: the close of the last bar before it, ex-adjusted on an ex-date ([`prev_close`]).
//!   Before a stock's listing the realtime answer still quotes it, with the raw formula's value
//!   of the previous trading day as its previous close.
//!
//! # The endpoints
//!
//! - Eastmoney `GET /api/qt/stock/kline/get?secid=1.600000&klt=101&fqt=0&beg=YYYYMMDD&end=YYYYMMDD`
//!   (`lmt=N`: the last N bars up to `end`, 0 = no limit; `fields1`, `fields2` select the data
//!   keys and the kline fields, all by default; `cb=NAME` answers JSONP; `ut` ignored), in the
//!   real envelope (`rc`, `rt`, `svr`, `lt`, `full`, `dlmkts`, `dsc`, `data`).
//!   `fqt=1` (qfq) and `fqt=2` (hfq) are **multiplicative** (`raw * F(d) / F(today)` and
//!   `raw * F(d)`), where the real Eastmoney's qfq is additive (and can go negative).
//!   Unknown secid or a bad `fqt`, `beg`, `end` or `lmt`: `rc:102` with `"data":null`. `klt`
//!   other than 101: `400` (the mock has daily bars only). `dktotal` is the number of bars in the
//!   whole history (listing to today), whatever the range. An empty range: `rc:0`,
//!   `"klines":[]`, `preKPrice` 0.
//! - Tencent `GET /appstock/app/fqkline/get?param=sh600000,day,START,END,COUNT,FQ` (dates
//!   `YYYY-MM-DD` or empty, COUNT empty = 640, FQ `qfq`, `hfq` or empty = raw): the last COUNT
//!   bars (at most 640) within `[START, END]`, every value a 3-decimal string, volume in lots
//!   (in shares on the STAR board, as in Tencent's realtime quotes), the ex-dividend dict on a
//!   raw row's ex-date; then `qt` (the realtime quote's fields and a `market` line),
//!   `mx_price`, `prec` (the previous close of the first row, empty for the first bar ever) and
//!   `version`, as in the real answers. `_var=NAME` answers `NAME={...}`. An unknown symbol:
//!   its key with no rows and an empty quote,
//!   `{"code":0,"msg":"","data":{"sh999999":{"day":[],"qt":{"sh999999":[],"market":[..]},..}}}`;
//!   a bad date, count or fq, or no symbol: `{"code":-1,"msg":"param error","data":[]}`;
//!   `week`/`month`: `400`.
//! - Sina `GET /quotes_service/api/json_v2.php/CN_MarketData.getKLineData?symbol=..&scale=240&datalen=N`:
//!   the latest N bars (default and cap 1023), raw, volume in shares; without `ma=no` each row
//!   also has `ma_priceN`/`ma_volumeN` for N in `ma` (a list; absent: 5, 10 and 30), when N
//!   bars are there. Unknown symbol: `null`; a known one without bars yet: `[]`; another scale
//!   or a datalen that is not a number: `400`. No Referer check.
//! - Sina `GET /realstock/company/<symbol>/hfq.js`: the published cumulative factors, newest
//!   first, the `1900-01-01` sentinel last; about a third of the symbols get a trailing
//!   `/* ... */` comment. Unknown symbol: `404`.
//!
//! Every request to these paths is counted ([`crate::HistoryCounts`]) before the latency, the
//! outage (`down` of its provider) and the injected failures apply, as for the quotes.

use std::f64::consts::TAU;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::StatusCode;
use chrono::{DateTime, Datelike, Days, FixedOffset, NaiveDate, NaiveTime, Weekday};

use crate::{
    anchor_close_cents, c2, c3, cn_offset, key_rand, market, mix, param, query_params, quote_snap,
    round2, secid_to_key, share_counts, snapshot, tencent_fields, unit, valid_callback, At,
    Exchange, Provider, Security, CT_JSON, CT_JSONP, CT_TEXT,
};

// ---------------------------------------------------------------------------------------------
// Dates
// ---------------------------------------------------------------------------------------------

const fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    match NaiveDate::from_ymd_opt(y, m, d) {
        Some(date) => date,
        None => panic!("invalid constant date"),
    }
}

/// The day whose raw close is the realtime previous close the mock served before it had a
/// history (the Friday before Monday 2026-11-30).
pub const ANCHOR_DATE: NaiveDate = ymd(2026, 11, 27);

/// The first day of the history (the Shanghai exchange's first trading day).
pub const FIRST_DAY: NaiveDate = ymd(1990, 12, 19);

/// The last day of the history; later dates are clamped to it.
pub const LAST_DAY: NaiveDate = ymd(2099, 12, 31);

/// The "today" on which a suspended stock's anchor is taken.
const ANCHOR_TODAY: NaiveDate = ymd(2026, 11, 30);

/// Official closures (weekdays) for 2024-2026, as in quantdb's `src/calendar.rs`.
const OFFICIAL_CLOSURES: &[(i32, u32, &[u32])] = &[
    (2024, 1, &[1]),
    (2024, 2, &[9, 12, 13, 14, 15, 16]),
    (2024, 4, &[4, 5]),
    (2024, 5, &[1, 2, 3]),
    (2024, 6, &[10]),
    (2024, 9, &[16, 17]),
    (2024, 10, &[1, 2, 3, 4, 7]),
    (2025, 1, &[1, 28, 29, 30, 31]),
    (2025, 2, &[3, 4]),
    (2025, 4, &[4]),
    (2025, 5, &[1, 2, 5]),
    (2025, 6, &[2]),
    (2025, 10, &[1, 2, 3, 6, 7, 8]),
    (2026, 1, &[1, 2]),
    (2026, 2, &[16, 17, 18, 19, 20, 23]),
    (2026, 4, &[6]),
    (2026, 5, &[1, 4, 5]),
    (2026, 6, &[19]),
    (2026, 9, &[25]),
    (2026, 10, &[1, 2, 5, 6, 7]),
];

/// Spring Festival as `MMDD`, 1990-2035; other years repeat the 19-year cycle.
const SPRING_FESTIVAL: [u32; 46] = [
    127, 215, 204, 123, 210, 131, 219, 207, 128, 216, 205, 124, 212, 201, 122, 209, 129, 218, 207,
    126, 214, 203, 123, 210, 131, 219, 208, 128, 216, 205, 125, 212, 201, 122, 210, 129, 217, 206,
    126, 213, 203, 123, 211, 131, 219, 208,
];

fn spring_festival(year: i32) -> Option<NaiveDate> {
    let mut y = year;
    while y > 2035 {
        y -= 19;
    }
    while y < 1990 {
        y += 19;
    }
    let mmdd = SPRING_FESTIVAL[usize::try_from(y - 1990).ok()?];
    NaiveDate::from_ymd_opt(year, mmdd / 100, mmdd % 100)
}

fn is_closure(d: NaiveDate) -> bool {
    let (y, m, day) = (d.year(), d.month(), d.day());
    if (2024..=2026).contains(&y) {
        return OFFICIAL_CLOSURES
            .iter()
            .any(|(cy, cm, days)| *cy == y && *cm == m && days.contains(&day));
    }
    if (m, day) == (1, 1) || (m == 5 && day <= 3) || (m == 10 && day <= 7) {
        return true;
    }
    spring_festival(y).is_some_and(|sf| {
        let offset = (d - sf).num_days();
        (-1..=5).contains(&offset)
    })
}

/// Whether the exchanges trade on `d`: a weekday that is not a closure (the official list for
/// 2024-2026, a rule for other years). Days outside 1990-12-19..=2099-12-31 never trade.
pub fn is_trading_day(d: NaiveDate) -> bool {
    (FIRST_DAY..=LAST_DAY).contains(&d)
        && !matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
        && !is_closure(d)
}

/// The trading days in `[from, to]`, oldest first (clamped to the history's span).
pub fn trading_days(from: NaiveDate, to: NaiveDate) -> Vec<NaiveDate> {
    let (from, to) = (from.max(FIRST_DAY), to.min(LAST_DAY));
    from.iter_days()
        .take_while(|d| *d <= to)
        .filter(|d| is_trading_day(*d))
        .collect()
}

/// The last trading day strictly before `d`.
fn prev_trading_day(d: NaiveDate) -> Option<NaiveDate> {
    let mut x = d.min(LAST_DAY.succ_opt()?);
    for _ in 0..40 {
        x = x.pred_opt()?;
        if x < FIRST_DAY {
            return None;
        }
        if is_trading_day(x) {
            return Some(x);
        }
    }
    None
}

/// The first trading day on or after `d` (`d` itself when none is found).
fn next_trading_day(d: NaiveDate) -> NaiveDate {
    let mut x = d.max(FIRST_DAY);
    for _ in 0..40 {
        if is_trading_day(x) {
            return x;
        }
        match x.succ_opt() {
            Some(next) => x = next,
            None => break,
        }
    }
    d
}

fn add_days(d: NaiveDate, n: u64) -> NaiveDate {
    d.checked_add_days(Days::new(n)).unwrap_or(LAST_DAY)
}

/// The history's "today" for a clock reading: its date in China time, clamped to 1991-2099.
pub fn today_of(now: DateTime<FixedOffset>) -> NaiveDate {
    now.with_timezone(&cn_offset())
        .date_naive()
        .clamp(ymd(1991, 1, 1), LAST_DAY)
}

fn day_number(d: NaiveDate) -> i64 {
    i64::from(d.num_days_from_ce())
}

/// Uniform in [0, 1), per security, day and salt.
fn day_rand(seed: u64, d: NaiveDate, salt: u64) -> f64 {
    unit(mix(
        seed ^ mix((day_number(d) as u64) << 16 ^ salt ^ 0x6461_7973)
    ))
}

// ---------------------------------------------------------------------------------------------
// Per-security parameters
// ---------------------------------------------------------------------------------------------

/// The fixed (today-independent) parameters of a security's history, computed once.
pub(crate) struct Profile {
    seed: u64,
    is_index: bool,
    /// Marked suspended by the realtime mock (code divisible by 97).
    suspended: bool,
    listing: NaiveDate,
    /// Historical suspension windows (first and last day without bars), sorted, disjoint.
    windows: Vec<(NaiveDate, NaiveDate)>,
    anchor: NaiveDate,
    anchor_close: i64,
    anchor_log: f64,
    trend: f64,
    waves: [(f64, f64, f64); 3],
    noise: f64,
    /// Typical daily turnover (fraction of the floating shares).
    turnover: f64,
    float_shares: f64,
    /// The last realtime previous close computed: `day number << 32 | cents`, 0 when none.
    prev_cache: AtomicU64,
}

fn profile(sec: &Security) -> &Profile {
    sec.history.get_or_init(|| Profile::new(sec))
}

const REAL_LISTINGS: [(&str, NaiveDate); 5] = [
    ("sh600000", ymd(1999, 11, 10)),
    ("sz000001", ymd(1991, 4, 3)),
    ("sz300750", ymd(2018, 6, 11)),
    ("sh601318", ymd(2007, 3, 1)),
    ("bj430017", ymd(2023, 5, 31)),
];

impl Profile {
    fn new(sec: &Security) -> Profile {
        let r = |salt: u64| key_rand(sec, salt);
        let listing = listing_of(sec);
        let windows = if sec.is_index {
            Vec::new()
        } else {
            historical_windows(sec, listing)
        };
        let scale = if sec.is_index { 0.7 } else { 1.0 };
        // (amplitude, period in days, phase) from (amplitude range, period range, salt).
        let wave = |amp: (f64, f64), period: (f64, f64), salt: u64| {
            (
                scale * (amp.0 + amp.1 * r(salt)),
                period.0 + period.1 * r(salt + 1),
                TAU * r(salt + 2),
            )
        };
        let waves = [
            wave((0.03, 0.03), (40.0, 50.0), 320),
            wave((0.06, 0.06), (200.0, 300.0), 323),
            wave((0.10, 0.12), (900.0, 1600.0), 326),
        ];
        let anchor_close = anchor_close_cents(sec);
        // Stocks: about the growth the ex-events give the adjusted price (6% a year), plus a raw
        // drift between -3% and +4% a year, never upwards for the cheapest stocks, so that old
        // raw prices stay plausible.
        let trend = if sec.is_index {
            0.02 + 0.05 * r(329)
        } else {
            let dear = ((anchor_close as f64 / 200.0).ln() / 100f64.ln()).clamp(0.0, 1.0);
            0.056 - 0.03 + (0.03 + 0.04 * dear) * r(329)
        };
        let noise = if sec.is_index {
            0.004 + 0.004 * r(330)
        } else {
            0.008 + 0.012 * r(330)
        };
        let mut prof = Profile {
            seed: sec.seed,
            is_index: sec.is_index,
            suspended: sec.suspended,
            listing,
            windows,
            anchor: ANCHOR_DATE,
            anchor_close,
            anchor_log: 0.0,
            trend,
            waves,
            noise,
            turnover: 10f64.powf(-2.5 + 1.5 * r(331)),
            float_shares: share_counts(sec).1,
            prev_cache: AtomicU64::new(0),
        };
        if let Some(start) = current_window_start(&prof, ANCHOR_TODAY) {
            if let Some(last) = last_bar_before(&prof, Some(start), start) {
                prof.anchor = last;
            }
        }
        prof.anchor_log = log_clean(&prof, prof.anchor);
        prof
    }
}

fn listing_of(sec: &Security) -> NaiveDate {
    if sec.is_index {
        return ymd(2005, 1, 4);
    }
    if let Some((_, d)) = REAL_LISTINGS.iter().find(|(k, _)| *k == sec.key) {
        return *d;
    }
    const OLD: (NaiveDate, NaiveDate) = (ymd(1991, 1, 2), ymd(2014, 12, 31));
    const RECENT: (NaiveDate, NaiveDate) = (ymd(2019, 1, 2), ymd(2025, 11, 30));
    const NEW: (NaiveDate, NaiveDate) = (ymd(2025, 12, 1), ymd(2026, 11, 13));
    let board_start = if sec.code.starts_with("688") {
        ymd(2019, 7, 22)
    } else if sec.code.starts_with("300") {
        ymd(2009, 10, 30)
    } else if sec.exchange == Exchange::Bj {
        ymd(2021, 11, 15)
    } else {
        FIRST_DAY
    };
    let r = key_rand(sec, 300);
    let (lo, hi) = if r < 0.80 {
        OLD
    } else if r < 0.97 || sec.suspended {
        RECENT
    } else {
        NEW
    };
    let (lo, hi) = if board_start > hi {
        (board_start, RECENT.1)
    } else {
        (lo.max(board_start), hi)
    };
    let span = (hi - lo).num_days().max(0) as f64;
    next_trading_day(add_days(lo, (span * key_rand(sec, 301)) as u64))
}

fn historical_windows(sec: &Security, listing: NaiveDate) -> Vec<(NaiveDate, NaiveDate)> {
    let r = key_rand(sec, 310);
    let count = if r < 0.08 {
        2
    } else if r < 0.30 {
        1
    } else {
        0
    };
    let earliest = add_days(listing, 60);
    let latest = ymd(2026, 9, 30);
    if earliest >= latest {
        return Vec::new();
    }
    let span = (latest - earliest).num_days() as f64;
    let mut windows: Vec<(NaiveDate, NaiveDate)> = (0..count)
        .map(|i| {
            let start = next_trading_day(add_days(
                earliest,
                (span * key_rand(sec, 311 + 2 * i)) as u64,
            ));
            let len = 3 + (23.0 * key_rand(sec, 312 + 2 * i)) as u32;
            let mut end = start;
            for _ in 1..len {
                end = next_trading_day(add_days(end, 1));
            }
            (start, end)
        })
        .collect();
    windows.sort();
    let mut merged: Vec<(NaiveDate, NaiveDate)> = Vec::new();
    for w in windows {
        match merged.last_mut() {
            Some(last) if w.0 <= add_days(last.1, 1) => last.1 = last.1.max(w.1),
            _ => merged.push(w),
        }
    }
    merged
}

/// A suspended stock's current window: its first day (the window runs to today).
fn current_window_start(prof: &Profile, today: NaiveDate) -> Option<NaiveDate> {
    if !prof.suspended {
        return None;
    }
    let n = 10 + mix(prof.seed ^ 0x7375_7370) % 51;
    let mut d = if is_trading_day(today) {
        today
    } else {
        prev_trading_day(today)?
    };
    for _ in 1..n {
        d = prev_trading_day(d)?;
    }
    Some(d)
}

/// Whether `d` has a bar, today's bar aside.
fn has_bar(prof: &Profile, cur: Option<NaiveDate>, d: NaiveDate) -> bool {
    is_trading_day(d)
        && d >= prof.listing
        && !prof.windows.iter().any(|w| w.0 <= d && d <= w.1)
        && cur.is_none_or(|s| d < s)
}

/// The last day before `d` with a bar (today's bar aside).
fn last_bar_before(prof: &Profile, cur: Option<NaiveDate>, d: NaiveDate) -> Option<NaiveDate> {
    let mut x = prev_trading_day(d)?;
    for _ in 0..16 {
        if x < prof.listing {
            return None;
        }
        if let Some(s) = cur.filter(|s| x >= *s) {
            x = prev_trading_day(s)?;
        } else if let Some(w) = prof.windows.iter().find(|w| w.0 <= x && x <= w.1) {
            x = prev_trading_day(w.0)?;
        } else {
            return Some(x);
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Prices
// ---------------------------------------------------------------------------------------------

/// The log of the backward-adjusted price, up to a constant.
fn log_clean(prof: &Profile, d: NaiveDate) -> f64 {
    let t = (day_number(d) - day_number(ANCHOR_DATE)) as f64;
    let mut x = prof.trend * t / 365.25;
    for (amp, period, phase) in prof.waves {
        x += amp * (TAU * t / period + phase).sin();
    }
    x + prof.noise * (2.0 * day_rand(prof.seed, d, 1) - 1.0)
}

/// An ex-event as generated, before its prices are known.
#[derive(Clone, Copy, Debug)]
struct Nominal {
    ex: NaiveDate,
    bonus10: u32,
    cash_yield: f64,
    factor: f64,
}

fn nominal_event(prof: &Profile, year: i32) -> Option<Nominal> {
    if prof.is_index || year <= prof.listing.year() || year > LAST_DAY.year() {
        return None;
    }
    let h = |salt: u64| {
        unit(mix(
            prof.seed ^ mix(((year as u64) << 20) ^ salt ^ 0x6578_6474)
        ))
    };
    if h(1) >= 0.85 {
        return None;
    }
    let mut ex = next_trading_day(add_days(
        NaiveDate::from_ymd_opt(year, 5, 10)?,
        (100.0 * h(2)) as u64,
    ));
    for w in &prof.windows {
        if w.0 <= ex && ex <= w.1 {
            ex = next_trading_day(add_days(w.1, 1));
        }
    }
    let bonus10 = if h(3) < 0.15 {
        2 + (3.0 * h(4)) as u32
    } else {
        0
    };
    let cash_yield = 0.005 + 0.043 * h(5);
    Some(Nominal {
        ex,
        bonus10,
        cash_yield,
        factor: (1.0 + f64::from(bonus10) / 10.0) / (1.0 - cash_yield),
    })
}

/// The nominal events of the years `from..=to`, oldest first.
fn nominal_events(prof: &Profile, from: i32, to: i32) -> Vec<Nominal> {
    let from = from.max(prof.listing.year() + 1);
    let to = to.min(LAST_DAY.year());
    (from..=to).filter_map(|y| nominal_event(prof, y)).collect()
}

/// The raw close of `d` by the formula. `nominal` must hold every event between `d` and the
/// anchor (more does not matter); the factors are multiplied oldest first, so every caller
/// gets the same bits.
fn raw_close(prof: &Profile, nominal: &[Nominal], d: NaiveDate) -> i64 {
    if d == prof.anchor {
        return prof.anchor_close;
    }
    let a = prof.anchor;
    let g = if d < a {
        nominal
            .iter()
            .filter(|e| d < e.ex && e.ex <= a)
            .fold(1.0, |g, e| g * e.factor)
    } else {
        1.0 / nominal
            .iter()
            .filter(|e| a < e.ex && e.ex <= d)
            .fold(1.0, |g, e| g * e.factor)
    };
    let x = prof.anchor_close as f64 * (log_clean(prof, d) - prof.anchor_log).exp() * g;
    if x.is_finite() {
        (x.round() as i64).clamp(1, i64::from(u32::MAX))
    } else {
        1
    }
}

/// A published ex-event, in cents.
#[derive(Clone, Copy, Debug)]
struct Event {
    ex: NaiveDate,
    bonus10: u32,
    /// Cash per 10 shares, in cents.
    cash10: i64,
    /// The close it applies to (the last bar before the ex-date, or the previous event's
    /// reference when two fall in one gap).
    before: i64,
    reference: i64,
    factor: f64,
}

/// The events published on `today`, with their prices; `nominal` must cover every year from
/// the one of the first event wanted (and the anchor's) to today's.
fn published_events(
    prof: &Profile,
    cur: Option<NaiveDate>,
    today: NaiveDate,
    nominal: &[Nominal],
) -> Vec<Event> {
    let mut out: Vec<Event> = Vec::new();
    for n in nominal {
        if n.ex > today || cur.is_some_and(|s| n.ex >= s) {
            continue;
        }
        let Some(p) = last_bar_before(prof, cur, n.ex) else {
            continue;
        };
        let before = match out.last() {
            Some(e) if e.ex > p => e.reference,
            _ => raw_close(prof, nominal, p),
        };
        // At least 6 cents, so that the reference price is below the close even for the
        // cheapest stocks.
        let cash10 = ((n.cash_yield * before as f64 * 10.0).round() as i64).max(6);
        let reference =
            (((10 * before - cash10) as f64 / f64::from(10 + n.bonus10)).round() as i64).max(1);
        out.push(Event {
            ex: n.ex,
            bonus10: n.bonus10,
            cash10,
            before,
            reference,
            factor: before as f64 / reference as f64,
        });
    }
    out
}

/// The reference previous close of a bar on `d`: the close of the last bar before it,
/// ex-adjusted by an event in between; without an earlier bar, the formula's raw close of the
/// previous trading day.
fn reference_prev(
    prof: &Profile,
    cur: Option<NaiveDate>,
    events: &[Event],
    nominal: &[Nominal],
    d: NaiveDate,
) -> i64 {
    match last_bar_before(prof, cur, d) {
        None => raw_close(prof, nominal, prev_trading_day(d).unwrap_or(d)),
        Some(p) => match events.iter().rev().find(|e| p < e.ex && e.ex <= d) {
            Some(e) => e.reference,
            None => raw_close(prof, nominal, p),
        },
    }
}

/// The realtime previous close of `sec` on `today`, in cents (cached per security for the
/// last day asked).
pub(crate) fn prev_close_cents(sec: &Security, today: NaiveDate) -> i64 {
    let prof = profile(sec);
    let today = today.clamp(FIRST_DAY, LAST_DAY);
    let day = (day_number(today) as u64) << 32;
    let cached = prof.prev_cache.load(Ordering::Relaxed);
    if cached != 0 && cached & !0xffff_ffff == day {
        return (cached & 0xffff_ffff) as i64;
    }
    let cur = current_window_start(prof, today);
    let first = last_bar_before(prof, cur, today)
        .or_else(|| prev_trading_day(today))
        .unwrap_or(today);
    let nominal = nominal_events(
        prof,
        first.year().min(prof.anchor.year()),
        today.year().max(prof.anchor.year()),
    );
    let events = published_events(prof, cur, today, &nominal);
    let prev = reference_prev(prof, cur, &events, &nominal, today);
    // raw_close keeps prices within u32 cents.
    prof.prev_cache
        .store(day | (prev as u64 & 0xffff_ffff), Ordering::Relaxed);
    prev
}

// ---------------------------------------------------------------------------------------------
// One security's history on one day
// ---------------------------------------------------------------------------------------------

/// A bar in cents, volume in shares, amount in yuan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DayBar {
    pub(crate) date: NaiveDate,
    pub(crate) open: i64,
    pub(crate) high: i64,
    pub(crate) low: i64,
    pub(crate) close: i64,
    /// The reference previous close.
    pub(crate) prev: i64,
    pub(crate) volume: u64,
    pub(crate) amount: u64,
}

fn hm(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).unwrap_or(NaiveTime::MIN)
}

/// Whether `sec` trades on the day of `now` (China time) and the session has begun (09:30).
fn has_todays_bar(sec: &Security, prof: &Profile, now: DateTime<FixedOffset>) -> bool {
    let today = today_of(now);
    let time = now.with_timezone(&cn_offset()).time();
    is_trading_day(today) && time >= hm(9, 30) && !sec.suspended && today >= prof.listing
}

/// From 15:00 on a day `sec` trades, the day's settled bar: the bar the history serves for
/// that day from then on (today's final bar, and the same bar on the days after).
pub(crate) fn settled_bar(sec: &Security, now: DateTime<FixedOffset>) -> Option<DayBar> {
    let prof = profile(sec);
    let time = now.with_timezone(&cn_offset()).time();
    if !has_todays_bar(sec, prof, now) || time < hm(15, 0) {
        return None;
    }
    let day = today_of(now);
    let a = prof.anchor.year();
    let nominal = nominal_events(prof, day.year().min(a), day.year().max(a));
    let close = raw_close(prof, &nominal, day);
    Some(formula_bar(prof, day, close, prev_close_cents(sec, day)))
}

/// A past day's bar (or a settled today's): open, high and low hashed around the reference
/// previous close and the close, volume around the typical turnover.
fn formula_bar(prof: &Profile, d: NaiveDate, close: i64, prev: i64) -> DayBar {
    let r = |salt: u64| day_rand(prof.seed, d, salt);
    let index = prof.is_index;
    let (open_span, wick) = if index { (0.01, 0.008) } else { (0.025, 0.02) };
    let p = prev as f64;
    let open = ((p * (1.0 + open_span * (2.0 * r(11) - 1.0))).round() as i64).max(1);
    let high = open.max(close) + (p * wick * r(12)).round() as i64;
    let low = (open.min(close) - (p * wick * r(13)).round() as i64).max(1);
    let lots = if index {
        200_000_000 + (400_000_000.0 * r(14)) as u64
    } else {
        let shares = prof.float_shares * prof.turnover * (1.4 * r(14) - 0.7).exp();
        ((shares / 100.0).round() as u64).max(1)
    };
    let volume = lots * 100;
    let avg_yuan = if index {
        8.0 + 4.0 * r(15)
    } else {
        (low + high + 2 * close) as f64 / 400.0
    };
    DayBar {
        date: d,
        open,
        high,
        low,
        close,
        prev,
        volume,
        amount: (volume as f64 * avg_yuan).round() as u64,
    }
}

/// Price adjustment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fq {
    Raw,
    Qfq,
    Hfq,
}

/// Everything the endpoints need for one security at one instant.
struct Hist<'a> {
    sec: &'a Security,
    prof: &'a Profile,
    today: NaiveDate,
    today_bar: bool,
    /// From 15:00: today's bar is the settled bar, not the snapshot.
    after_close: bool,
    tick: u64,
    cur: Option<NaiveDate>,
    nominal: Vec<Nominal>,
    events: Vec<Event>,
    /// `F` after each event of `events`.
    cumulative: Vec<f64>,
}

impl<'a> Hist<'a> {
    fn new(sec: &'a Security, now: DateTime<FixedOffset>, tick: u64) -> Hist<'a> {
        let prof = profile(sec);
        let today = today_of(now);
        let cur = current_window_start(prof, today);
        let today_bar = has_todays_bar(sec, prof, now);
        let after_close = now.with_timezone(&cn_offset()).time() >= hm(15, 0);
        let nominal = nominal_events(
            prof,
            prof.listing.year(),
            today.year().max(prof.anchor.year()),
        );
        let events = published_events(prof, cur, today, &nominal);
        let cumulative = events
            .iter()
            .scan(1.0, |f, e| {
                *f *= e.factor;
                Some(*f)
            })
            .collect();
        Hist {
            sec,
            prof,
            today,
            today_bar,
            after_close,
            tick,
            cur,
            nominal,
            events,
            cumulative,
        }
    }

    fn is_bar_day(&self, d: NaiveDate) -> bool {
        if d == self.today {
            self.today_bar
        } else {
            d < self.today && has_bar(self.prof, self.cur, d)
        }
    }

    /// The bar days in `[from, to]`, oldest first.
    fn days_between(&self, from: NaiveDate, to: NaiveDate) -> Vec<NaiveDate> {
        let from = from.max(self.prof.listing);
        let to = to.min(self.today);
        if from > to {
            return Vec::new();
        }
        from.iter_days()
            .take_while(|d| *d <= to)
            .filter(|d| self.is_bar_day(*d))
            .collect()
    }

    /// The last `n` bar days on or before `to`, oldest first.
    fn last_days(&self, to: NaiveDate, n: u64) -> Vec<NaiveDate> {
        let mut out = Vec::new();
        let mut d = to.min(self.today);
        while (out.len() as u64) < n && d >= self.prof.listing {
            if self.is_bar_day(d) {
                out.push(d);
            }
            match d.pred_opt() {
                Some(p) => d = p,
                None => break,
            }
        }
        out.reverse();
        out
    }

    /// The number of bars from listing to today.
    fn total(&self) -> usize {
        let from = self.prof.listing;
        if from > self.today {
            return 0;
        }
        from.iter_days()
            .take_while(|d| *d <= self.today)
            .filter(|d| self.is_bar_day(*d))
            .count()
    }

    /// The bars of `days` (consecutive bar days, oldest first).
    fn bars(&self, days: &[NaiveDate]) -> Vec<DayBar> {
        let mut out: Vec<DayBar> = Vec::with_capacity(days.len());
        for &d in days {
            let prev = match out.last() {
                Some(p) => match self
                    .events
                    .iter()
                    .rev()
                    .find(|e| p.date < e.ex && e.ex <= d)
                {
                    Some(e) => e.reference,
                    None => p.close,
                },
                None => reference_prev(self.prof, self.cur, &self.events, &self.nominal, d),
            };
            if d == self.today && !self.after_close {
                let s = snapshot(self.sec, self.tick, d);
                out.push(DayBar {
                    date: d,
                    open: s.open,
                    high: s.high,
                    low: s.low,
                    close: s.price,
                    prev: s.prev,
                    volume: s.volume,
                    amount: s.amount,
                });
            } else {
                let close = raw_close(self.prof, &self.nominal, d);
                out.push(formula_bar(self.prof, d, close, prev));
            }
        }
        out
    }

    /// `F(d)`: the product of the published factors of the events on or before `d`.
    fn factor_at(&self, d: NaiveDate) -> f64 {
        self.events
            .iter()
            .zip(&self.cumulative)
            .rev()
            .find(|(e, _)| e.ex <= d)
            .map_or(1.0, |(_, f)| *f)
    }

    fn latest_factor(&self) -> f64 {
        self.cumulative.last().copied().unwrap_or(1.0)
    }

    /// Prices of `bar` adjusted: (open, close, high, low, prev) in cents.
    fn adjusted(&self, bar: &DayBar, fq: Fq) -> [i64; 5] {
        let raw = [bar.open, bar.close, bar.high, bar.low, bar.prev];
        let k = match fq {
            Fq::Raw => return raw,
            Fq::Hfq => self.factor_at(bar.date),
            Fq::Qfq => self.factor_at(bar.date) / self.latest_factor(),
        };
        raw.map(|c| ((c as f64 * k).round() as i64).max(1))
    }

    fn event_on(&self, d: NaiveDate) -> Option<&Event> {
        self.events.iter().find(|e| e.ex == d)
    }
}

// ---------------------------------------------------------------------------------------------
// Public API for tests
// ---------------------------------------------------------------------------------------------

/// A daily bar, raw (unadjusted), as the mock's history holds it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct MockBar {
    /// The trading day.
    #[serde(serialize_with = "ser_date")]
    pub date: NaiveDate,
    /// Yuan.
    pub open: f64,
    /// Yuan.
    pub high: f64,
    /// Yuan.
    pub low: f64,
    /// Yuan.
    pub close: f64,
    /// Shares (a multiple of 100).
    pub volume: u64,
    /// Yuan (a whole number).
    pub amount: f64,
    /// The reference previous close (the previous bar's close, ex-adjusted on an ex-date).
    pub prev_close: f64,
}

impl MockBar {
    fn of(b: &DayBar) -> MockBar {
        MockBar {
            date: b.date,
            open: crate::yuan(b.open),
            high: crate::yuan(b.high),
            low: crate::yuan(b.low),
            close: crate::yuan(b.close),
            volume: b.volume,
            amount: b.amount as f64,
            prev_close: crate::yuan(b.prev),
        }
    }
}

/// A published ex-dividend event.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ExEvent {
    /// The ex-date (a bar day).
    #[serde(serialize_with = "ser_date")]
    pub ex_date: NaiveDate,
    /// The record date: the trading day before the ex-date.
    #[serde(serialize_with = "ser_date")]
    pub record_date: NaiveDate,
    /// The fiscal year paid for (the ex-date's year minus one).
    pub fiscal_year: i32,
    /// Cash per 10 shares, yuan (2 decimals).
    pub cash_per_10: f64,
    /// Bonus shares per 10 shares (0 for cash only).
    pub bonus_per_10: u32,
    /// The close it applies to (the last bar before the ex-date), yuan.
    pub close_before: f64,
    /// The ex-reference price: the ex-date bar's previous close, yuan.
    pub reference: f64,
    /// `close_before / reference`.
    pub factor: f64,
    /// `F` from the ex-date on: the product of the factors so far (the hfq factor).
    pub cumulative: f64,
}

fn ser_date<S: serde::Serializer>(d: &NaiveDate, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&d.format("%Y-%m-%d"))
}

fn find(key: &str) -> Option<&'static Security> {
    market().get(key)
}

/// Every bar of `key` (like `"sh600000"`) from listing to the mock's today, oldest first, when
/// the mock's clock says `now` and its tick is `tick` (today's bar, if any, is the realtime
/// snapshot at `tick`). `None` for an unknown key.
pub fn bars(key: &str, now: DateTime<FixedOffset>, tick: u64) -> Option<Vec<MockBar>> {
    bars_between(key, FIRST_DAY, LAST_DAY, now, tick)
}

/// The bars of `key` in `[from, to]` (see [`bars`]).
pub fn bars_between(
    key: &str,
    from: NaiveDate,
    to: NaiveDate,
    now: DateTime<FixedOffset>,
    tick: u64,
) -> Option<Vec<MockBar>> {
    let h = Hist::new(find(key)?, now, tick);
    Some(
        h.bars(&h.days_between(from, to))
            .iter()
            .map(MockBar::of)
            .collect(),
    )
}

/// The published ex-events of `key` on or before `today`, oldest first (empty for indices).
pub fn ex_events(key: &str, today: NaiveDate) -> Option<Vec<ExEvent>> {
    let now = day_end(today);
    let h = Hist::new(find(key)?, now, 0);
    Some(
        h.events
            .iter()
            .zip(&h.cumulative)
            .map(|(e, f)| ExEvent {
                ex_date: e.ex,
                record_date: prev_trading_day(e.ex).unwrap_or(e.ex),
                fiscal_year: e.ex.year() - 1,
                cash_per_10: crate::yuan(e.cash10),
                bonus_per_10: e.bonus10,
                close_before: crate::yuan(e.before),
                reference: crate::yuan(e.reference),
                factor: e.factor,
                cumulative: *f,
            })
            .collect(),
    )
}

/// The ex-dates of `key` on or before `today`, oldest first.
pub fn ex_dates(key: &str, today: NaiveDate) -> Vec<NaiveDate> {
    ex_events(key, today)
        .unwrap_or_default()
        .iter()
        .map(|e| e.ex_date)
        .collect()
}

/// The hfq factor table of `key` on `today`: `(ex-date, F from that date on)`, oldest first,
/// without Sina's `1900-01-01` sentinel (`F` is 1 before the first date). Empty for indices and
/// stocks without events; `None` for an unknown key.
pub fn factors(key: &str, today: NaiveDate) -> Option<Vec<(NaiveDate, f64)>> {
    Some(
        ex_events(key, today)?
            .iter()
            .map(|e| (e.ex_date, e.cumulative))
            .collect(),
    )
}

/// The first trading day of `key`.
pub fn listing_date(key: &str) -> Option<NaiveDate> {
    find(key).map(|sec| profile(sec).listing)
}

/// The suspension windows of `key` that start on or before `today` (first and last trading
/// day without bars), oldest first; for a stock the realtime mock marks suspended, the last one
/// is its current window and ends on `today`'s last trading day.
pub fn suspensions(key: &str, today: NaiveDate) -> Option<Vec<(NaiveDate, NaiveDate)>> {
    let sec = find(key)?;
    let prof = profile(sec);
    let cur = current_window_start(prof, today);
    let mut out: Vec<(NaiveDate, NaiveDate)> = prof
        .windows
        .iter()
        .copied()
        .filter(|w| w.0 <= today && cur.is_none_or(|s| w.0 < s))
        .map(|(s, e)| (s, cur.map_or(e, |c| e.min(c))))
        .collect();
    if let Some(s) = cur {
        let end = if is_trading_day(today) {
            today
        } else {
            prev_trading_day(today).unwrap_or(today)
        };
        out.push((s, end));
    }
    Some(out)
}

/// The realtime previous close of `key` when the mock's today is `today`, in yuan: the
/// reference previous close a bar on `today` has.
pub fn prev_close(key: &str, today: NaiveDate) -> Option<f64> {
    find(key).map(|sec| crate::yuan(prev_close_cents(sec, today.clamp(FIRST_DAY, LAST_DAY))))
}

/// The last instant of `d` in China time (after the close).
fn day_end(d: NaiveDate) -> DateTime<FixedOffset> {
    d.and_hms_opt(23, 59, 59)
        .and_then(|t| t.and_local_timezone(cn_offset()).single())
        .unwrap_or_else(|| {
            DateTime::from_naive_utc_and_offset(d.and_time(NaiveTime::MIN), cn_offset())
        })
}

/// The status and body the mock answers to `path_and_query` (like
/// `"/api/qt/stock/kline/get?secid=1.600000&klt=101&fqt=0&beg=0&end=20500101"`) when its clock
/// says `now` and its tick is `tick`, without a server: for benchmarks and fuzz seeds. `None`
/// when the path is not one of the history endpoints.
pub fn history_body(
    path_and_query: &str,
    now: DateTime<FixedOffset>,
    tick: u64,
) -> Option<(u16, Vec<u8>)> {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let endpoint = Endpoint::of_path(path)?;
    let a = answer(endpoint, path, query, now, tick, true);
    Some((a.status.as_u16(), a.body.into_bytes()))
}

// ---------------------------------------------------------------------------------------------
// Endpoints
// ---------------------------------------------------------------------------------------------

/// The history endpoints, in the order of their counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    EastmoneyKline = 0,
    TencentKline = 1,
    SinaKline = 2,
    SinaFactors = 3,
}

const EASTMONEY_KLINE: &str = "/api/qt/stock/kline/get";
const TENCENT_KLINE: &str = "/appstock/app/fqkline/get";
const SINA_KLINE: &str = "/quotes_service/api/json_v2.php/CN_MarketData.getKLineData";
const SINA_FACTORS: (&str, &str) = ("/realstock/company/", "/hfq.js");

impl Endpoint {
    pub(crate) fn of_path(path: &str) -> Option<Endpoint> {
        match path {
            EASTMONEY_KLINE => Some(Endpoint::EastmoneyKline),
            TENCENT_KLINE => Some(Endpoint::TencentKline),
            SINA_KLINE => Some(Endpoint::SinaKline),
            _ if path.starts_with(SINA_FACTORS.0) && path.ends_with(SINA_FACTORS.1) => {
                Some(Endpoint::SinaFactors)
            }
            _ => None,
        }
    }

    pub(crate) fn provider(self) -> Provider {
        match self {
            Endpoint::EastmoneyKline => Provider::Eastmoney,
            Endpoint::TencentKline => Provider::Tencent,
            Endpoint::SinaKline | Endpoint::SinaFactors => Provider::Sina,
        }
    }
}

/// A history endpoint's answer.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) content_type: &'static str,
    pub(crate) body: String,
}

const CT_JS: &str = "application/x-javascript; charset=UTF-8";

fn ok(content_type: &'static str, body: String) -> Answer {
    Answer {
        status: StatusCode::OK,
        content_type,
        body,
    }
}

fn bad_request(message: &str) -> Answer {
    Answer {
        status: StatusCode::BAD_REQUEST,
        content_type: CT_TEXT,
        body: message.to_string(),
    }
}

/// Answers one history request (already counted and gated).
pub(crate) fn answer(
    endpoint: Endpoint,
    path: &str,
    query: &str,
    now: DateTime<FixedOffset>,
    tick: u64,
    settle: bool,
) -> Answer {
    let params = query_params(query);
    match endpoint {
        Endpoint::EastmoneyKline => eastmoney_kline(&params, now, tick),
        Endpoint::TencentKline => tencent_kline(&params, At { now, settle }, tick),
        Endpoint::SinaKline => sina_kline(&params, now, tick),
        Endpoint::SinaFactors => {
            let symbol = path
                .strip_prefix(SINA_FACTORS.0)
                .and_then(|p| p.strip_suffix(SINA_FACTORS.1))
                .unwrap_or("");
            sina_factors(symbol, now)
        }
    }
}

/// A count: digits only (saturating), else `None`.
fn parse_count(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse::<u64>().unwrap_or(u64::MAX))
}

/// A positive decimal with trailing zeros trimmed: `2.50` -> `2.5`, `3.00` -> `3`.
fn trimmed(cents: i64) -> String {
    let s = c2(cents);
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

// Eastmoney ------------------------------------------------------------------------------------

const EM_ERROR: &str =
    r#"{"rc":102,"rt":17,"svr":181669349,"lt":1,"full":0,"dlmkts":"","data":null}"#;

/// `YYYYMMDD`, or `0` for the beginning.
fn em_date(s: &str) -> Option<NaiveDate> {
    if s == "0" {
        return Some(FIRST_DAY);
    }
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    NaiveDate::parse_from_str(s, "%Y%m%d").ok()
}

fn eastmoney_kline(params: &[(String, String)], now: DateTime<FixedOffset>, tick: u64) -> Answer {
    let cb = param(params, "cb").filter(|cb| !cb.is_empty());
    if cb.is_some_and(|cb| !valid_callback(cb)) {
        return bad_request("invalid callback name");
    }
    let wrap = |body: String| match cb {
        None => ok(CT_JSON, body),
        Some(cb) => ok(CT_JSONP, format!("{cb}({body});")),
    };
    let klt = param(params, "klt").unwrap_or("101");
    if klt != "101" {
        return bad_request("only klt=101 (daily bars) is served by the mock");
    }
    let Some(sec) = param(params, "secid")
        .and_then(secid_to_key)
        .and_then(|k| find(&k))
    else {
        return wrap(EM_ERROR.to_string());
    };
    let fq = match param(params, "fqt").unwrap_or("0") {
        "0" | "" => Fq::Raw,
        "1" => Fq::Qfq,
        "2" => Fq::Hfq,
        _ => return wrap(EM_ERROR.to_string()),
    };
    let beg = match param(params, "beg").filter(|s| !s.is_empty()) {
        None => Some(FIRST_DAY),
        Some(s) => em_date(s),
    };
    let end = match param(params, "end").filter(|s| !s.is_empty()) {
        None => Some(LAST_DAY),
        Some(s) => em_date(s),
    };
    let lmt = match param(params, "lmt").filter(|s| !s.is_empty()) {
        None => Some(0),
        Some(s) => parse_count(s),
    };
    let (Some(beg), Some(end), Some(lmt)) = (beg, end, lmt) else {
        return wrap(EM_ERROR.to_string());
    };
    let fields1 = param(params, "fields1").unwrap_or("f1,f2,f3,f4,f5,f6");
    let fields2 = param(params, "fields2").unwrap_or("f51,f52,f53,f54,f55,f56,f57,f58,f59,f60,f61");
    let h = Hist::new(sec, now, tick);
    let mut days = h.days_between(beg, end);
    if lmt > 0 && days.len() as u64 > lmt {
        days.drain(..days.len() - lmt as usize);
    }
    let bars = h.bars(&days);
    let pre = bars.first().map_or(0, |b| h.adjusted(b, fq)[4]);
    let mut data = String::from("{");
    for f in fields1.split(',').map(str::trim) {
        let _ = match f {
            "f1" => write!(data, "\"code\":\"{}\",", sec.code),
            "f2" => write!(data, "\"market\":{},", sec.exchange.eastmoney_market()),
            "f3" => write!(
                data,
                "\"name\":{},",
                serde_json::to_string(&sec.name).unwrap_or_else(|_| "\"\"".into())
            ),
            "f4" => write!(data, "\"decimal\":2,"),
            "f5" => write!(data, "\"dktotal\":{},", h.total()),
            "f6" => write!(data, "\"preKPrice\":{},", crate::yuan(pre)),
            _ => Ok(()),
        };
    }
    data.push_str("\"klines\":[");
    for (i, bar) in bars.iter().enumerate() {
        if i > 0 {
            data.push(',');
        }
        data.push('"');
        data.push_str(&em_line(&h, bar, fq, fields2));
        data.push('"');
    }
    data.push_str("]}");
    wrap(format!(
        r#"{{"rc":0,"rt":17,"svr":181669349,"lt":1,"full":0,"dlmkts":"","dsc":"0","data":{data}}}"#
    ))
}

/// One kline: the fields of `fields2` (`f51`..`f61`) in the order asked.
fn em_line(h: &Hist, bar: &DayBar, fq: Fq, fields2: &str) -> String {
    let [open, close, high, low, prev] = h.adjusted(bar, fq);
    let pct = |x: i64| round2(x as f64 * 100.0 / prev as f64);
    let mut parts: Vec<String> = Vec::with_capacity(11);
    for f in fields2.split(',').map(str::trim) {
        parts.push(match f {
            "f51" => bar.date.format("%Y-%m-%d").to_string(),
            "f52" => c2(open),
            "f53" => c2(close),
            "f54" => c2(high),
            "f55" => c2(low),
            "f56" => (bar.volume / 100).to_string(),
            "f57" => format!("{}.00", bar.amount),
            "f58" => format!("{:.2}", pct(high - low)),
            "f59" => format!("{:.2}", pct(close - prev)),
            "f60" => c2(close - prev),
            "f61" => format!(
                "{:.2}",
                round2(bar.volume as f64 * 100.0 / h.prof.float_shares)
            ),
            _ => continue,
        });
    }
    parts.join(",")
}

// Tencent --------------------------------------------------------------------------------------

const TENCENT_PARAM_ERROR: &str = r#"{"code":-1,"msg":"param error","data":[]}"#;

/// Most rows in one Tencent answer.
pub const TENCENT_MAX_ROWS: u64 = 640;

/// Most rows in one Sina answer.
pub const SINA_MAX_ROWS: u64 = 1023;

fn tencent_kline(params: &[(String, String)], at: At, tick: u64) -> Answer {
    let var = param(params, "_var").filter(|v| !v.is_empty());
    if var.is_some_and(|v| !valid_callback(v)) {
        return bad_request("invalid _var name");
    }
    let wrap = |body: String| match var {
        None => ok(CT_JSON, body),
        Some(v) => ok(CT_JSONP, format!("{v}={body}")),
    };
    let raw_param = param(params, "param").unwrap_or("");
    let parts: Vec<&str> = raw_param.split(',').map(str::trim).collect();
    let part = |i: usize| parts.get(i).copied().unwrap_or("");
    let symbol = part(0);
    match part(1) {
        "day" => {}
        "week" | "month" => return bad_request("only day bars are served by the mock"),
        _ => return wrap(TENCENT_PARAM_ERROR.to_string()),
    }
    let date = |s: &str, default: NaiveDate| {
        if s.is_empty() {
            Some(default)
        } else {
            NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
        }
    };
    let count = if part(4).is_empty() {
        Some(TENCENT_MAX_ROWS)
    } else {
        parse_count(part(4))
    };
    let fq = match part(5) {
        "" => Some(Fq::Raw),
        "qfq" => Some(Fq::Qfq),
        "hfq" => Some(Fq::Hfq),
        _ => None,
    };
    let (Some(start), Some(end), Some(count), Some(fq)) =
        (date(part(2), FIRST_DAY), date(part(3), LAST_DAY), count, fq)
    else {
        return wrap(TENCENT_PARAM_ERROR.to_string());
    };
    if symbol.is_empty() {
        return wrap(TENCENT_PARAM_ERROR.to_string());
    }
    let market_line = tencent_market_line(at.now);
    let Some(sec) = find(symbol) else {
        // The real answer for an unknown code: its key, no rows, an empty quote.
        let key = serde_json::to_string(symbol).unwrap_or_else(|_| "\"\"".into());
        return wrap(format!(
            r#"{{"code":0,"msg":"","data":{{{key}:{{"day":[],"qt":{{{key}:[],"market":[{market_line}]}},"mx_price":{{"mx":[],"price":[]}},"prec":"","version":"16"}}}}}}"#
        ));
    };
    let fq = if sec.is_index { Fq::Raw } else { fq };
    let h = Hist::new(sec, at.now, tick);
    let count = count.min(TENCENT_MAX_ROWS);
    let days: Vec<NaiveDate> = if start > end {
        Vec::new()
    } else {
        h.last_days(end, count)
            .into_iter()
            .filter(|d| *d >= start)
            .collect()
    };
    let key = match fq {
        Fq::Raw => "day",
        Fq::Qfq => "qfqday",
        Fq::Hfq => "hfqday",
    };
    // Volume in lots, but in shares on the STAR board, as in Tencent's realtime quotes.
    let unit = if sec.code.starts_with("688") || sec.code.starts_with("689") {
        1
    } else {
        100
    };
    let bars = h.bars(&days);
    let mut rows = String::new();
    for (i, bar) in bars.iter().enumerate() {
        if i > 0 {
            rows.push(',');
        }
        let [open, close, high, low, _] = h.adjusted(bar, fq);
        let _ = write!(
            rows,
            r#"["{}","{}","{}","{}","{}","{}.000""#,
            bar.date.format("%Y-%m-%d"),
            c3(open),
            c3(close),
            c3(high),
            c3(low),
            bar.volume / unit
        );
        if fq == Fq::Raw {
            if let Some(e) = h.event_on(bar.date) {
                let cash = trimmed(e.cash10);
                let content = if e.bonus10 > 0 {
                    format!("10送{}股派{cash}元", e.bonus10)
                } else {
                    format!("10派{cash}元")
                };
                let _ = write!(
                    rows,
                    r#",{{"nd":"{}","fh_sh":"{cash}","djr":"{}","cqr":"{}","FHcontent":"{content}"}}"#,
                    e.ex.year() - 1,
                    prev_trading_day(e.ex).unwrap_or(e.ex).format("%Y-%m-%d"),
                    e.ex.format("%Y-%m-%d"),
                );
            }
        }
        rows.push(']');
    }
    // The previous close of the first row; none before the first bar ever.
    let prec = match bars.first() {
        Some(b) if b.date > h.prof.listing => c3(h.adjusted(b, fq)[4]),
        _ => String::new(),
    };
    let stamp = at.now.format("%Y%m%d%H%M%S").to_string();
    let quote = tencent_fields(sec, &quote_snap(sec, tick, at), &stamp);
    let quote = serde_json::to_string(&quote).unwrap_or_else(|_| "[]".into());
    wrap(format!(
        r#"{{"code":0,"msg":"","data":{{"{k}":{{"{key}":[{rows}],"qt":{{"{k}":{quote},"market":[{market_line}]}},"mx_price":{{"mx":[],"price":[]}},"prec":"{prec}","version":"16"}}}}}}"#,
        k = sec.key
    ))
}

/// The `qt.market` string: the time and whether the exchanges are open.
fn tencent_market_line(now: DateTime<FixedOffset>) -> String {
    let now = now.with_timezone(&cn_offset());
    let time = now.time();
    let open = is_trading_day(now.date_naive()) && time >= hm(9, 15) && time < hm(15, 0);
    let state = if open {
        "open_交易中"
    } else {
        "close_已休市"
    };
    format!(
        "\"{}|SH_{state}|SZ_{state}|BJ_{state}\"",
        now.format("%Y-%m-%d %H:%M:%S")
    )
}

// Sina -----------------------------------------------------------------------------------------

fn sina_kline(params: &[(String, String)], now: DateTime<FixedOffset>, tick: u64) -> Answer {
    match param(params, "scale") {
        None | Some("240") => {}
        Some(_) => return bad_request("only scale=240 (daily bars) is served by the mock"),
    }
    let n = match param(params, "datalen") {
        None | Some("") => SINA_MAX_ROWS,
        Some(s) => match parse_count(s) {
            Some(n) => n.min(SINA_MAX_ROWS),
            None => return bad_request("invalid datalen"),
        },
    };
    let Some(sec) = param(params, "symbol").and_then(find) else {
        return ok(CT_JSON, "null".to_string());
    };
    // Moving averages: `ma=no` none, absent 5, 10 and 30 days, else the listed spans.
    let spans: Vec<usize> = match param(params, "ma") {
        None => vec![5, 10, 30],
        Some(list) => list
            .split(',')
            .filter_map(|x| x.trim().parse::<usize>().ok())
            .filter(|n| (2..=250).contains(n))
            .collect(),
    };
    let longest = spans.iter().max().copied().unwrap_or(1);
    let h = Hist::new(sec, now, tick);
    let bars = h.bars(&h.last_days(LAST_DAY, n + longest as u64 - 1));
    let first = bars.len().saturating_sub(n as usize);
    let mut body = String::from("[");
    for (i, b) in bars.iter().enumerate().skip(first) {
        if i > first {
            body.push(',');
        }
        let _ = write!(
            body,
            r#"{{"day":"{}","open":"{}","high":"{}","low":"{}","close":"{}","volume":"{}""#,
            b.date.format("%Y-%m-%d"),
            c3(b.open),
            c3(b.high),
            c3(b.low),
            c3(b.close),
            b.volume
        );
        for &span in &spans {
            let Some(window) = (i + 1).checked_sub(span).map(|from| &bars[from..=i]) else {
                continue;
            };
            let price = window.iter().map(|w| w.close as f64).sum::<f64>() / span as f64 / 100.0;
            let volume = window.iter().map(|w| w.volume as f64).sum::<f64>() / span as f64;
            let _ = write!(
                body,
                r#","ma_price{span}":{},"ma_volume{span}":{}"#,
                (price * 1000.0).round() / 1000.0,
                volume.round() as u64
            );
        }
        body.push('}');
    }
    body.push(']');
    ok(CT_JSON, body)
}

fn sina_factors(symbol: &str, now: DateTime<FixedOffset>) -> Answer {
    let Some(sec) = find(symbol) else {
        return Answer {
            status: StatusCode::NOT_FOUND,
            content_type: CT_TEXT,
            body: "not found".to_string(),
        };
    };
    let h = Hist::new(sec, now, 0);
    let mut entries: Vec<String> = h
        .events
        .iter()
        .zip(&h.cumulative)
        .rev()
        .map(|(e, f)| format!(r#"{{"d":"{}","f":"{f:.16}"}}"#, e.ex.format("%Y-%m-%d")))
        .collect();
    entries.push(r#"{"d":"1900-01-01","f":"1.0000000000000000"}"#.to_string());
    let mut body = format!(
        r#"var {}hfq={{"total":{},"data":[{}]}};"#,
        sec.key,
        entries.len(),
        entries.join(",")
    );
    if key_rand(sec, 340) < 1.0 / 3.0 {
        let _ = write!(body, "\n/* {:012x} */", mix(sec.seed ^ 0x0068_6671) >> 16);
    }
    ok(CT_JS, body)
}

// Control --------------------------------------------------------------------------------------

#[derive(serde::Serialize)]
struct HistoryView {
    key: String,
    #[serde(serialize_with = "ser_date")]
    today: NaiveDate,
    #[serde(serialize_with = "ser_date")]
    listing_date: NaiveDate,
    bars: Vec<MockBar>,
    factors: Vec<FactorView>,
    ex_events: Vec<ExEvent>,
    suspensions: Vec<[String; 2]>,
}

#[derive(serde::Serialize)]
struct FactorView {
    #[serde(serialize_with = "ser_date")]
    date: NaiveDate,
    factor: f64,
}

/// The body of `GET /__mock/history/<key>`: every raw bar up to today, the factor table, the
/// ex-events and the suspension windows.
pub(crate) fn control_json(key: &str, now: DateTime<FixedOffset>, tick: u64) -> Option<String> {
    let today = today_of(now);
    let events = ex_events(key, today)?;
    let view = HistoryView {
        key: key.to_string(),
        today,
        listing_date: listing_date(key)?,
        bars: bars(key, now, tick)?,
        factors: events
            .iter()
            .map(|e| FactorView {
                date: e.ex_date,
                factor: e.cumulative,
            })
            .collect(),
        ex_events: events,
        suspensions: suspensions(key, today)?
            .iter()
            .map(|(s, e)| [s.to_string(), e.to_string()])
            .collect(),
    };
    serde_json::to_string(&view).ok()
}
