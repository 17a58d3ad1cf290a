//! Daily history through the tiers: memory, then the persistent tier, then the upstreams for
//! the dates the cache does not cover yet (see [`crate::history`]).
//!
//! Rules:
//! - Covered ranges are recorded per symbol, so a day inside one with no bar (a holiday, a
//!   suspension, before listing) is never fetched again.
//! - An answer with bars covers the whole range asked. An empty answer is not trusted (an
//!   upstream throttling answers the same way): the range is asked again reaching to today,
//!   and only when that answer has bars (all later: the range was before listing or inside a
//!   suspension) is it recorded as covered. A symbol with no bars at all is fetched again
//!   on every call.
//! - Today's bar is provisional until the day is settled (15:30, exchange time): it is kept
//!   in memory only, for the trading TTL, and the day is not recorded as covered until then.
//! - Factors are fetched when an adjusted answer needs them, at most once per exchange day,
//!   and again at once when new bars show an ex-event the table does not have.

use foldhash::HashMap;
use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Datelike, Duration as Days, NaiveDate, NaiveTime, Utc, Weekday};
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};

use super::{lock, QuantDb};
use crate::calendar::exchange_tz;
use crate::error::{Error, SymbolError};
use crate::history::{
    aggregate, derive, parse_bars, parse_factors, request, Adjust, Bar, Endpoint, FactorState,
    Factors, HistoryRequest, KlineAnswer, RawBar, SymbolHistory, SINA_MAX_BARS,
};
use crate::quote::MarketStatus;
use crate::stats::Counters;
use crate::store::{HistoryStore, HistoryWrite};
use crate::symbol::Symbol;
use crate::upstream::Provider;
use crate::write_behind::WriteBehind;

/// Bars asked for when neither `start` nor `days` is given.
const DEFAULT_DAYS: u32 = 30;
/// The day's bar is final from this time (the close, 15:00, plus a margin).
const SETTLED: NaiveTime = match NaiveTime::from_hms_opt(15, 30, 0) {
    Some(t) => t,
    None => panic!("valid time"),
};
/// Today's bar exists from the open.
const OPEN: NaiveTime = match NaiveTime::from_hms_opt(9, 30, 0) {
    Some(t) => t,
    None => panic!("valid time"),
};
/// A Tencent request covers at most a year (about 250 bars, under its 640).
const TENCENT_WINDOW_DAYS: i64 = 365;
/// No A-share traded before this.
const FIRST_DAY: NaiveDate = match NaiveDate::from_ymd_opt(1990, 12, 1) {
    Some(d) => d,
    None => panic!("valid date"),
};
/// How many times a `days` request widens its window when the first one held too few bars.
const MAX_WIDENINGS: u32 = 4;

/// One upstream of history, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct HistoryUpstream {
    pub provider: Provider,
    /// The configured base URL (else each endpoint's public one).
    pub base_url: Option<String>,
}

impl HistoryUpstream {
    fn request(&self, symbol: Symbol, endpoint: Endpoint) -> Option<crate::transport::HttpRequest> {
        let base = (self.base_url.as_deref())
            .unwrap_or_else(|| crate::history::default_base_url(self.provider, endpoint));
        request(self.provider, base, symbol, endpoint)
    }
}

/// The engine's history state.
pub(super) struct HistoryTier {
    pub upstreams: Vec<HistoryUpstream>,
    pub factor_upstreams: Vec<HistoryUpstream>,
    pub memory: std::sync::Mutex<lru::LruCache<Symbol, Arc<SymbolHistory>>>,
    /// Today's provisional bars, memory only, with their fetch time.
    pub provisional: std::sync::Mutex<HashMap<Symbol, (RawBar, DateTime<Utc>)>>,
    /// One caller at a time works on a symbol; the others wait and then find it cached.
    pub busy: std::sync::Mutex<HashMap<Symbol, Arc<tokio::sync::Mutex<()>>>>,
    pub writer: Option<Arc<WriteBehind<HistoryWrite, dyn HistoryStore>>>,
    pub max_bars: u32,
}

/// One entry of [`QuantDb::get_multiple_stocks`]: a symbol's bars, or its error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HistoryEntry {
    /// The symbol's bars.
    Bars {
        /// The canonical symbol (`sh600000`).
        symbol: String,
        /// The symbol as the caller wrote it.
        input: String,
        /// The bars, in date order.
        bars: Vec<Bar>,
    },
    /// Why there are none.
    Error(SymbolError),
}

/// A request worked out against the clock.
#[derive(Debug, Clone, Copy)]
struct Plan {
    start: NaiveDate,
    end: NaiveDate,
    days: Option<u32>,
    today: NaiveDate,
    /// The last day whose bar is final.
    final_end: NaiveDate,
    /// Today's bar exists and is provisional.
    today_live: bool,
}

/// What one range fetched.
#[derive(Default)]
struct Fetched {
    bars: Vec<RawBar>,
    covered: Option<(NaiveDate, NaiveDate)>,
    ex_dates: Vec<NaiveDate>,
    /// Upstream requests it took.
    requests: usize,
}

/// Weekdays from `a` to `b` (an upper bound of the trading days).
fn weekdays(a: NaiveDate, b: NaiveDate) -> i64 {
    if b < a {
        return 0;
    }
    let days = (b - a).num_days() + 1;
    let mut n = days / 7 * 5;
    let mut d = a + Days::days(days / 7 * 7);
    while d <= b {
        if !matches!(d.weekday(), Weekday::Sat | Weekday::Sun) {
            n += 1;
        }
        d += Days::days(1);
    }
    n
}

fn invalid(message: String) -> Error {
    Error::InvalidRequest(message)
}

impl QuantDb {
    /// Daily (weekly, monthly) bars of one symbol, served from the cache and fetched only
    /// where the cache does not cover the dates yet.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), quantdb::Error> {
    /// use quantdb::history::{Adjust, HistoryRequest};
    /// let db = quantdb::QuantDb::builder().build().await?;
    /// let year = HistoryRequest::range("20240101", "20241231")?.adjust(Adjust::Qfq);
    /// for bar in db.get_stock_data("600000", year).await? {
    ///     println!("{} {:.2} {:?}", bar.date, bar.close, bar.change_percent);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn get_stock_data(
        &self,
        symbol: &str,
        request: HistoryRequest,
    ) -> Result<Vec<Bar>, Error> {
        let answer = match Symbol::parse(symbol) {
            Ok(s) => self.history_of(s, &request).await,
            Err(e) => Err(e),
        };
        if answer.is_err() {
            Counters::add(&self.inner.counters.errors, 1);
        }
        answer
    }

    /// The same request for many symbols, fetched concurrently (up to the engine's bound on
    /// upstream requests): one entry per distinct input, in order, bars or that symbol's error.
    pub async fn get_multiple_stocks<S: AsRef<str>>(
        &self,
        symbols: &[S],
        request: HistoryRequest,
    ) -> Vec<HistoryEntry> {
        let mut seen = foldhash::HashSet::default();
        let inputs: Vec<&str> = (symbols.iter().map(AsRef::as_ref))
            .filter(|s| seen.insert(*s))
            .collect();
        // Today's bars come from the realtime quotes during the session: one batch for all.
        let live = self.plan(&request, self.inner.clock.now());
        if live.is_ok_and(|p| p.today_live && p.end == p.today) && !request.force_refresh {
            let valid: Vec<&str> = (inputs.iter().copied())
                .filter(|s| Symbol::parse(s).is_ok())
                .collect();
            self.get_realtime_data_batch(&valid).await;
        }
        let answers = join_all(inputs.iter().map(|input| async move {
            let answer = self.get_stock_data(input, request).await;
            match answer {
                Ok(bars) => HistoryEntry::Bars {
                    symbol: Symbol::parse(input).map_or_else(|_| input.to_string(), |s| s.key()),
                    input: input.to_string(),
                    bars,
                },
                Err(e) => HistoryEntry::Error(SymbolError::new(*input, &e)),
            }
        }));
        answers.await
    }

    fn plan(&self, r: &HistoryRequest, now: DateTime<Utc>) -> Result<Plan, Error> {
        let local = now.with_timezone(&exchange_tz());
        let today = local.date_naive();
        if let (Some(s), Some(e)) = (r.start, r.end) {
            if s > e {
                return Err(invalid(format!("start {s} is after end {e}")));
            }
        }
        if r.start.is_some() && r.days.is_some() {
            return Err(invalid("give start or days, not both".into()));
        }
        if let Some(s) = r.start.filter(|s| *s > today) {
            return Err(invalid(format!(
                "the range from {s} is entirely in the future (today is {today})"
            )));
        }
        let end = r.end.unwrap_or(today).min(today);
        let max = self.inner.history.max_bars;
        let days = match (r.start, r.days) {
            (Some(_), _) => None,
            (None, Some(0)) => return Err(invalid("days must be at least 1".into())),
            (None, Some(n)) if n > max => {
                return Err(invalid(format!(
                    "days {n} is more than the limit of {max} bars (max_history_bars)"
                )))
            }
            (None, n) => Some(n.unwrap_or(DEFAULT_DAYS)),
        };
        let start = match (r.start, days) {
            (Some(s), _) => s.max(FIRST_DAY),
            (None, Some(n)) => end - Days::days(i64::from(n) * 3 / 2 + 20),
            (None, None) => end,
        };
        let span = weekdays(start, end);
        if span > i64::from(max) {
            return Err(invalid(format!(
                "{start} to {end} is about {span} bars, more than the limit of {max} \
                 (max_history_bars): ask for a shorter range"
            )));
        }
        let trading_today = self.inner.calendar.is_trading_day(today);
        let settled = local.time() >= SETTLED;
        let (final_end, today_live) = if trading_today && !settled {
            (today.pred_opt().unwrap_or(today), local.time() >= OPEN)
        } else {
            (today, false)
        };
        Ok(Plan {
            start,
            end,
            days,
            today,
            final_end,
            today_live,
        })
    }

    async fn history_of(&self, symbol: Symbol, r: &HistoryRequest) -> Result<Vec<Bar>, Error> {
        let now = self.inner.clock.now();
        let mut plan = self.plan(r, now)?;
        self.exclusive(symbol, self.history_locked(symbol, r, &mut plan, now))
            .await
    }

    /// Runs `work` as the only history work on `symbol` in this client: a second caller
    /// waits, then finds the bars cached.
    async fn exclusive<T>(&self, symbol: Symbol, work: impl std::future::Future<Output = T>) -> T {
        let tier = &self.inner.history;
        let gate = lock(&tier.busy).entry(symbol).or_default().clone();
        let guard = gate.lock().await;
        let result = work.await;
        drop(guard);
        let mut busy = lock(&tier.busy);
        // Nobody else holds or waits for it (the map's copy and ours): forget it.
        if busy.get(&symbol).is_some_and(|g| Arc::strong_count(g) <= 2) {
            busy.remove(&symbol);
        }
        result
    }

    async fn history_locked(
        &self,
        symbol: Symbol,
        r: &HistoryRequest,
        plan: &mut Plan,
        now: DateTime<Utc>,
    ) -> Result<Vec<Bar>, Error> {
        let inner = &self.inner;
        let counters = &inner.counters;
        let mut history = self.load_history(symbol).await.unwrap_or_default();
        let mut touched = BTreeSet::new();
        let mut requests = 0;
        let mut failure = None;
        for widening in 0..=MAX_WIDENINGS {
            let (fetched, error) = self
                .fill(
                    symbol,
                    plan,
                    r.force_refresh && widening == 0,
                    &history,
                    now,
                )
                .await;
            if !fetched.is_empty() {
                let h = Arc::make_mut(&mut history);
                for f in &fetched {
                    requests += f.requests;
                    touched.extend(self.merge(symbol, h, f, plan, now));
                }
            }
            if error.is_some() {
                failure = error;
                break;
            }
            // `days`: widen the window until it holds enough bars, or nothing more comes.
            let Some(n) = plan.days else { break };
            let (_, bars) = history.range(plan.start, plan.end);
            if bars.len() >= n as usize || plan.start <= FIRST_DAY || widening == MAX_WIDENINGS {
                break;
            }
            if widening > 0 && fetched.iter().all(|f| f.bars.is_empty()) {
                break;
            }
            let missing = i64::from(n) - bars.len() as i64;
            plan.start = (plan.start
                - Days::days(missing * 3 / 2 + 20 + (plan.end - plan.start).num_days()))
            .max(FIRST_DAY);
        }
        if let Some(e) = failure {
            self.keep(symbol, history, touched);
            return Err(e);
        }
        // Factors, when the answer is adjusted.
        let index = symbol.is_shanghai_index() || symbol.code().starts_with("399");
        if r.adjust != Adjust::None && !index {
            match self
                .ensure_factors(symbol, &mut history, plan.today, r.force_refresh)
                .await
            {
                Ok(fetched) => {
                    if fetched {
                        requests += 1;
                        touched.insert(None);
                    }
                }
                Err(e) => {
                    self.keep(symbol, history, touched);
                    return Err(e);
                }
            }
        }
        if requests == 0 {
            Counters::add(&counters.history_hits, 1);
        } else {
            Counters::add(&counters.history_misses, 1);
        }
        let answer = self.answer(symbol, &history, r, plan, now);
        self.keep(symbol, history, touched);
        Ok(answer)
    }

    /// Makes sure the factor table is today's (or newer than the last ex-event seen): fetched
    /// at most once an exchange day. `Ok(true)` when it was fetched. When the upstream fails,
    /// an older table is used.
    async fn ensure_factors(
        &self,
        symbol: Symbol,
        history: &mut Arc<SymbolHistory>,
        today: NaiveDate,
        force: bool,
    ) -> Result<bool, Error> {
        let stale = match &history.factors {
            None => true,
            Some(f) => f.checked_on < today || history.ex_event_pending || force,
        };
        if !stale {
            return Ok(false);
        }
        match self.fetch_factors(symbol).await {
            Ok(table) => {
                let h = Arc::make_mut(history);
                h.factors = Some(FactorState {
                    table,
                    checked_on: today,
                });
                h.ex_event_pending = false;
                Ok(true)
            }
            // Yesterday's table is better than no answer.
            Err(e) if history.factors.is_some() => {
                tracing::warn!("{symbol}: factors not refreshed, using the cached ones: {e}");
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Raw daily bars from `start` to `end` through the cache, today's provisional bar
    /// included: what a relay serves to the clients that use it as their history provider.
    pub async fn get_raw_bars(
        &self,
        symbol: &str,
        start: NaiveDate,
        end: NaiveDate,
    ) -> Result<Vec<RawBar>, Error> {
        let symbol = Symbol::parse(symbol)?;
        let request = HistoryRequest {
            start: Some(start),
            end: Some(end),
            ..Default::default()
        };
        self.history_of(symbol, &request).await?;
        let now = self.inner.clock.now();
        let plan = self.plan(&request, now)?;
        let history = self.load_history(symbol).await.unwrap_or_default();
        let mut bars = history.range(plan.start, plan.end).1.to_vec();
        if plan.end == plan.today && plan.today_live {
            if let Some((bar, _)) = self.provisional(symbol, now) {
                if bars.last().is_none_or(|b| b.date < bar.date) {
                    bars.push(bar);
                }
            }
        }
        Ok(bars)
    }

    /// A symbol's backward-adjustment factor table, through the cache (fetched at most once
    /// an exchange day). Indices have none: the empty table.
    pub async fn get_factors(&self, symbol: &str) -> Result<Factors, Error> {
        let symbol = Symbol::parse(symbol)?;
        if symbol.is_shanghai_index() || symbol.code().starts_with("399") {
            return Ok(Factors::empty());
        }
        let today = self
            .inner
            .clock
            .now()
            .with_timezone(&exchange_tz())
            .date_naive();
        self.exclusive(symbol, async {
            let mut history = self.load_history(symbol).await.unwrap_or_default();
            let fetched = self
                .ensure_factors(symbol, &mut history, today, false)
                .await?;
            let table = (history.factors.as_ref())
                .map(|f| f.table.clone())
                .unwrap_or_default();
            let touched = if fetched {
                BTreeSet::from([None])
            } else {
                BTreeSet::new()
            };
            self.keep(symbol, history, touched);
            Ok(table)
        })
        .await
    }

    /// The bars asked for, from the cache as it now is.
    fn answer(
        &self,
        symbol: Symbol,
        history: &SymbolHistory,
        r: &HistoryRequest,
        plan: &Plan,
        now: DateTime<Utc>,
    ) -> Vec<Bar> {
        let (mut before, bars) = history.range(plan.start, plan.end);
        let mut bars: Vec<RawBar> = bars.to_vec();
        if plan.end == plan.today && plan.today_live {
            if let Some((bar, _)) = self.provisional(symbol, now) {
                if bars.last().is_none_or(|b| b.date < bar.date) {
                    bars.push(bar);
                }
            }
        }
        if let Some(n) = plan.days {
            let cut = bars.len().saturating_sub(n as usize);
            if cut > 0 {
                before = history.range(bars[cut].date, plan.end).0;
                bars.drain(..cut);
            }
        }
        let factors = if r.adjust == Adjust::None {
            // A change across an ex-date is still against the ex-adjusted close when the
            // table is known.
            history.factors.as_ref().map(|f| &f.table)
        } else {
            Some(history.factors.as_ref().map_or(&NO_FACTORS, |f| &f.table))
        };
        aggregate(&derive(&bars, before, factors, r.adjust), r.period)
    }

    /// Today's provisional bar, while it is fresh (the trading TTL).
    fn provisional(&self, symbol: Symbol, now: DateTime<Utc>) -> Option<(RawBar, DateTime<Utc>)> {
        let map = lock(&self.inner.history.provisional);
        let (bar, fetched) = map.get(&symbol)?;
        let fresh = now < *fetched + self.inner.policy.trading
            && bar.date == now.with_timezone(&exchange_tz()).date_naive();
        fresh.then_some((*bar, *fetched))
    }

    /// Fetches every range of the plan the cache does not cover (and today's bar when it is
    /// live and not fresh), concurrently. The first error, if any, comes with what the other
    /// ranges fetched.
    async fn fill(
        &self,
        symbol: Symbol,
        plan: &Plan,
        force: bool,
        history: &SymbolHistory,
        now: DateTime<Utc>,
    ) -> (Vec<Fetched>, Option<Error>) {
        let last_final = plan.end.min(plan.final_end);
        let mut gaps = if force {
            if plan.start <= last_final {
                vec![(plan.start, last_final)]
            } else {
                Vec::new()
            }
        } else {
            history.coverage.missing(plan.start, last_final)
        };
        let mut wants_today = plan.end == plan.today
            && plan.today_live
            && (force || self.provisional(symbol, now).is_none());
        // During the session today's bar is the realtime quote's numbers: take them from the
        // quote cache (one request a chunk of symbols a TTL) rather than a kline request.
        if wants_today && !force {
            if let Some(bar) = self.today_from_quote(symbol, plan.today).await {
                lock(&self.inner.history.provisional).insert(symbol, (bar, now));
                wants_today = false;
            }
        }
        if wants_today {
            match gaps.last_mut() {
                Some(last) if last.1.succ_opt() == Some(plan.today) || last.1 == plan.final_end => {
                    last.1 = plan.today
                }
                _ => gaps.push((plan.today, plan.today)),
            }
        }
        let results = join_all(gaps.iter().map(|&gap| self.fetch_range(symbol, gap, plan))).await;
        let mut fetched = Vec::new();
        let mut error = None;
        for r in results {
            match r {
                Ok(f) => fetched.push(f),
                Err(e) => {
                    error.get_or_insert(e);
                }
            }
        }
        (fetched, error)
    }

    /// Today's bar from a fresh realtime quote of today, when the symbol traded.
    async fn today_from_quote(&self, symbol: Symbol, today: NaiveDate) -> Option<RawBar> {
        let q = self.get_realtime_data(&symbol.key()).await.ok()?;
        let date = q.quote_time?.date_naive();
        if q.stale || date != today || q.market_status == MarketStatus::Suspended || q.volume == 0 {
            return None;
        }
        let bar = RawBar {
            date,
            open: q.open?,
            high: q.high?,
            low: q.low?,
            close: q.current_price,
            volume: q.volume as f64,
            amount: Some(q.amount),
            turnover_rate: None,
            prev_close: Some(q.prev_close),
        };
        bar.check().ok().map(|()| bar)
    }

    /// Puts what a range fetched into the cache; the years touched (`None`: the meta record).
    fn merge(
        &self,
        symbol: Symbol,
        history: &mut SymbolHistory,
        fetched: &Fetched,
        plan: &Plan,
        now: DateTime<Utc>,
    ) -> BTreeSet<Option<i32>> {
        let inner = &self.inner;
        Counters::add(&inner.counters.history_bars_fetched, fetched.bars.len());
        let (finals, live): (Vec<RawBar>, Vec<RawBar>) =
            fetched.bars.iter().partition(|b| b.date <= plan.final_end);
        if let Some(bar) = live.into_iter().find(|b| b.date == plan.today) {
            lock(&inner.history.provisional).insert(symbol, (bar, now));
        }
        // An ex-event the factor table does not know: a bar whose previous close is not the
        // close of the bar before it, or a day the upstream marks.
        let table = history.factors.as_ref().map(|f| &f.table);
        let known = |d: NaiveDate| table.is_some_and(|t| t.has_event_on(d));
        let mut ex_event = fetched.ex_dates.iter().any(|d| !known(*d));
        for b in &finals {
            let Some(prev_close) = b.prev_close else {
                continue;
            };
            let (before, _) = history.range(b.date, b.date);
            let before = before.or_else(|| finals.iter().rev().find(|p| p.date < b.date));
            if before.is_some_and(|p| (p.close - prev_close).abs() > 0.0051) && !known(b.date) {
                ex_event = true;
            }
        }
        history.ex_event_pending |= ex_event && history.factors.is_some();
        let mut touched: BTreeSet<Option<i32>> =
            history.merge_bars(&finals).into_iter().map(Some).collect();
        if let Some((a, b)) = fetched.covered {
            history.coverage.insert(a, b);
            touched.insert(None);
        }
        if ex_event {
            touched.insert(None);
        }
        touched
    }

    /// Keeps the symbol's cache in memory and, when it changed, writes it behind.
    fn keep(&self, symbol: Symbol, history: Arc<SymbolHistory>, touched: BTreeSet<Option<i32>>) {
        let tier = &self.inner.history;
        if touched.is_empty() {
            lock(&tier.memory).get(&symbol);
            return;
        }
        lock(&tier.memory).put(symbol, history.clone());
        if let Some(writer) = &tier.writer {
            writer.enqueue(vec![HistoryWrite {
                symbol,
                history,
                years: touched.into_iter().flatten().collect(),
            }]);
        }
    }

    /// The symbol's cache: memory, else the persistent tier, else `None`.
    async fn load_history(&self, symbol: Symbol) -> Option<Arc<SymbolHistory>> {
        let tier = &self.inner.history;
        if let Some(h) = lock(&tier.memory).get(&symbol) {
            return Some(h.clone());
        }
        let writer = tier.writer.as_ref()?;
        // Queued writes hold the newest state.
        if let Some(Some(queued)) = writer.queued(&[symbol]).pop() {
            return Some(queued.history);
        }
        Counters::add(&self.inner.counters.persistent_reads, 1);
        match writer.store().load(symbol).await {
            Ok(Some(h)) => {
                let h = Arc::new(h);
                lock(&tier.memory).put(symbol, h.clone());
                Some(h)
            }
            Ok(None) => None,
            Err(e) => {
                Counters::add(&self.inner.counters.store_errors, 1);
                tracing::warn!("history of {symbol} not read from the persistent tier: {e}");
                None
            }
        }
    }

    /// One range from the first provider that serves it, in the configured order.
    async fn fetch_range(
        &self,
        symbol: Symbol,
        (a, b): (NaiveDate, NaiveDate),
        plan: &Plan,
    ) -> Result<Fetched, Error> {
        let tier = &self.inner.history;
        let mut errors = Vec::new();
        let mut requests = 0;
        let mut asked = Vec::new();
        for up in &tier.upstreams {
            let Some(first) = self.fetch_bars(up, symbol, a, b, plan).await else {
                continue; // this provider does not serve such a range
            };
            asked.push(up.provider.name());
            match first {
                Ok((answer, n)) if !answer.known => requests += n,
                Ok((answer, n)) if !answer.bars.is_empty() => {
                    let covered = Self::covered(up.provider, &answer, (a, b), plan);
                    return Ok(Fetched {
                        covered,
                        requests: requests + n,
                        ..Self::fetched(answer)
                    });
                }
                Ok((_, n)) => {
                    requests += n;
                    // Empty: trusted only when the same upstream, asked up to today, has
                    // bars (all of them after the range).
                    if b >= plan.today {
                        return Ok(Fetched {
                            requests,
                            ..Default::default()
                        });
                    }
                    return match self.fetch_bars(up, symbol, a, plan.today, plan).await {
                        Some(Ok((answer, m))) if !answer.bars.is_empty() => {
                            let covered =
                                Self::covered(up.provider, &answer, (a, plan.today), plan);
                            Ok(Fetched {
                                covered,
                                requests: requests + m,
                                ..Self::fetched(answer)
                            })
                        }
                        Some(Ok((_, m))) => Ok(Fetched {
                            requests: requests + m,
                            ..Default::default()
                        }),
                        Some(Err(e)) => Err(e),
                        None => Ok(Fetched {
                            requests,
                            ..Default::default()
                        }),
                    };
                }
                Err(e) => errors.push(e),
            }
        }
        Err(match errors.len() {
            0 => Error::NotFound {
                symbol: symbol.key(),
                providers: asked.join(", "),
            },
            1 if asked.len() == 1 => errors.remove(0),
            _ => Error::Unavailable { attempts: errors },
        })
    }

    fn fetched(answer: KlineAnswer) -> Fetched {
        Fetched {
            bars: answer.bars,
            ex_dates: answer.ex_dates,
            ..Default::default()
        }
    }

    /// The range an answer with bars covers: what was asked, up to the last final day. Sina
    /// answers the latest N bars: when it sent all N and they start after the range, the
    /// range is covered only from its first bar.
    fn covered(
        provider: Provider,
        answer: &KlineAnswer,
        (a, b): (NaiveDate, NaiveDate),
        plan: &Plan,
    ) -> Option<(NaiveDate, NaiveDate)> {
        let end = b.min(plan.final_end);
        let first = answer.bars.first()?.date;
        let start = if provider == Provider::Sina
            && first > a
            && answer.bars.len() >= Self::sina_count(a, plan) as usize
        {
            first
        } else {
            a
        };
        (start <= end).then_some((start, end))
    }

    /// Bars Sina is asked for to reach back to `a`.
    fn sina_count(a: NaiveDate, plan: &Plan) -> u32 {
        (weekdays(a, plan.today) + 5).clamp(1, i64::from(SINA_MAX_BARS)) as u32
    }

    /// One provider's answer for `a..=b`, with the number of requests it took; `None` when
    /// the provider does not serve such a range (Sina: only the latest bars).
    async fn fetch_bars(
        &self,
        up: &HistoryUpstream,
        symbol: Symbol,
        a: NaiveDate,
        b: NaiveDate,
        plan: &Plan,
    ) -> Option<Result<(KlineAnswer, usize), Error>> {
        let windows: Vec<(NaiveDate, NaiveDate, u32)> = match up.provider {
            Provider::Tencent => {
                let mut out = Vec::new();
                let mut from = a;
                while from <= b {
                    let to = (from + Days::days(TENCENT_WINDOW_DAYS - 1)).min(b);
                    out.push((from, to, crate::history::TENCENT_PAGE));
                    from = to + Days::days(1);
                }
                out
            }
            Provider::Sina => {
                // The latest bars only: the range must reach the newest final day.
                if b < plan.final_end || weekdays(a, plan.today) + 5 > i64::from(SINA_MAX_BARS) {
                    return None;
                }
                vec![(a, b, Self::sina_count(a, plan))]
            }
            Provider::Eastmoney | Provider::Relay => vec![(a, b, 0)],
        };
        let pages = join_all(windows.iter().map(|&(start, end, count)| async move {
            let endpoint = Endpoint::Bars { start, end, count };
            let request = up
                .request(symbol, endpoint)
                .expect("every provider serves bars");
            let body = self.get(up.provider, &request).await;
            Counters::add(&self.inner.counters.history_upstream_requests, 1);
            body.and_then(|body| {
                parse_bars(up.provider, symbol, &body).map_err(|message| Error::Parse {
                    provider: up.provider.name().into(),
                    message: format!("{symbol}: {message}"),
                })
            })
            .inspect_err(|_| self.inner.counters.failure(up.provider))
        }))
        .await;
        let n = pages.len();
        let mut answer = KlineAnswer::default();
        for page in pages {
            match page {
                Ok(p) => {
                    answer.known |= p.known;
                    answer
                        .bars
                        .extend(p.bars.into_iter().filter(|x| x.date >= a));
                    answer.ex_dates.extend(p.ex_dates);
                }
                Err(e) => return Some(Err(e)),
            }
        }
        answer.bars.sort_by_key(|x| x.date);
        answer.bars.dedup_by_key(|x| x.date);
        Some(Ok((answer, n)))
    }

    /// The symbol's factor table from the first factor provider that answers. A provider
    /// that does not know the symbol answers an empty table (no ex-event: factor 1).
    async fn fetch_factors(&self, symbol: Symbol) -> Result<Factors, Error> {
        let mut errors = Vec::new();
        for up in &self.inner.history.factor_upstreams {
            let Some(request) = up.request(symbol, Endpoint::Factors) else {
                continue;
            };
            Counters::add(&self.inner.counters.history_upstream_requests, 1);
            let answer = self.get(up.provider, &request).await.and_then(|body| {
                parse_factors(up.provider, &body).map_err(|message| Error::Parse {
                    provider: up.provider.name().into(),
                    message: format!("{symbol} factors: {message}"),
                })
            });
            match answer {
                Ok(table) => return Ok(table.unwrap_or_default()),
                Err(e) => {
                    self.inner.counters.failure(up.provider);
                    errors.push(e)
                }
            }
        }
        Err(match errors.len() {
            1 => errors.remove(0),
            _ => Error::Unavailable { attempts: errors },
        })
    }

    /// Removes history from every tier: one symbol's, or all.
    pub(super) async fn clear_history(&self, symbol: Option<Symbol>) -> Result<(), Error> {
        let tier = &self.inner.history;
        match symbol {
            Some(s) => {
                lock(&tier.memory).pop(&s);
                lock(&tier.provisional).remove(&s);
            }
            None => {
                lock(&tier.memory).clear();
                lock(&tier.provisional).clear();
            }
        }
        let Some(writer) = &tier.writer else {
            return Ok(());
        };
        writer.discard(symbol.as_ref().map(std::slice::from_ref));
        let _ = writer.flush().await;
        match symbol {
            Some(s) => writer.store().remove(s).await,
            None => writer.store().clear().await,
        }
    }
}

static NO_FACTORS: Factors = Factors::empty();
