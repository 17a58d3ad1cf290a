//! The engine, the same code on every target:
//! symbols -> dedup -> memory tier -> persistent tier -> coalesce -> chunk -> providers.
//!
//! This file holds the client's API and the walk through the tiers; `coalesce` the in-flight
//! sharing, `fallback` the providers in order, `builder` the settings.

mod builder;
mod coalesce;
mod fallback;
mod fleet;
mod history;
mod push;

pub use builder::QuantDbBuilder;
pub use history::HistoryEntry;

// foldhash (in every engine module): the symbol maps are on every warm request's path, and
// SipHash showed in the relay's profile.
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_channel::oneshot;
use lru::LruCache;
use tokio::sync::Semaphore;

use coalesce::lost;

use crate::calendar::{MarketCalendar, TtlPolicy};
use crate::error::{Error, SymbolError};
use crate::quote::{BatchEntry, CacheSource, Quote};
use crate::stats::{CacheStats, Counters};
use crate::store::Stored;
use crate::symbol::Symbol;
use crate::transport::{Clock, Transport};
use crate::upstream::Provider;
use crate::write_behind::WriteBehind;

/// Per-call options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchOptions {
    /// Skip both cache tiers and ask the upstream; the answer refreshes the caches.
    pub force_refresh: bool,
}

impl FetchOptions {
    /// Options with `force_refresh` set.
    pub fn refresh() -> Self {
        FetchOptions {
            force_refresh: true,
        }
    }
}

/// How old a quote answered stale may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MaxStale {
    /// Until the next session starts after the quote was fetched.
    NextSession,
    /// At most this long after it was fetched; zero: never stale.
    Age(Duration),
}

/// One upstream as configured: which provider, where, and how many codes a request.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Upstream {
    provider: Provider,
    base_url: String,
    chunk_size: usize,
}

type Answer = Result<Quote, Error>;

/// A memory-tier entry, with its expiry worked out once when it is stored: a quote, or the
/// answer that no upstream knows the symbol (so unknown codes do not go upstream every call).
struct Cached {
    answer: Answer,
    fetched: DateTime<Utc>,
    expires: DateTime<Utc>,
}

/// A cached, coalescing realtime quote client. Cheap to clone: clones share every cache tier,
/// the in-flight table and the statistics.
///
/// ```no_run
/// # async fn demo() -> Result<(), quantdb::Error> {
/// let db = quantdb::QuantDb::builder().build().await?;
/// let quote = db.get_realtime_data("600000").await?;
/// println!("{} {} {:+.2}%", quote.name, quote.current_price, quote.change_percent);
/// for entry in db.get_realtime_data_batch(&["000001", "300750", "bad"]).await {
///     println!("{}", serde_json::to_string(&entry).unwrap());
/// }
/// println!("hit rate {:.0}%", db.cache_stats().hit_rate * 100.0);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct QuantDb {
    inner: Arc<Inner>,
}

struct Inner {
    upstreams: Vec<Upstream>,
    timeout: Duration,
    policy: TtlPolicy,
    calendar: MarketCalendar,
    clock: Arc<dyn Clock>,
    transport: Arc<dyn Transport>,
    /// The persistent tier, read directly and written behind.
    persistent: Option<Arc<WriteBehind<Quote>>>,
    memory: Mutex<LruCache<Symbol, Cached>>,
    memory_capacity: usize,
    max_stale: MaxStale,
    /// Symbols being fetched right now, with the callers waiting for them.
    inflight: Mutex<HashMap<Symbol, Vec<oneshot::Sender<Answer>>>>,
    /// Symbols being read from the persistent tier right now, with the callers waiting.
    reading: Mutex<HashMap<Symbol, Vec<oneshot::Sender<Stored>>>>,
    permits: Semaphore,
    counters: Counters,
    history: history::HistoryTier,
    /// How often `subscribe` polls, when not once a TTL window.
    poll_every: Option<Duration>,
    /// Shares upstream fetches with the other clients of the persistent tier.
    coordinator: Option<Arc<dyn crate::store::Coordinator>>,
}

/// A poisoned lock only means another caller panicked mid-update of a cache; the data is
/// still a valid cache, so keep going.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl QuantDb {
    /// A builder with the defaults: memory 10,000 quotes, 30 s / 60 s TTLs, providers
    /// Sina then Tencent then Eastmoney, 5 s timeout, 8 concurrent upstream requests,
    /// persistent tier on.
    pub fn builder() -> QuantDbBuilder {
        QuantDbBuilder::default()
    }

    /// One quote.
    pub async fn get_realtime_data(&self, symbol: &str) -> Result<Quote, Error> {
        self.get_realtime_data_with(symbol, FetchOptions::default())
            .await
    }

    /// One quote, with options.
    pub async fn get_realtime_data_with(
        &self,
        symbol: &str,
        options: FetchOptions,
    ) -> Result<Quote, Error> {
        let answer = match Symbol::parse(symbol) {
            Ok(s) => self
                .resolve(&[s], options)
                .await
                .remove(&s)
                .unwrap_or_else(|| Err(lost(s))),
            Err(e) => Err(e),
        };
        if answer.is_err() {
            Counters::add(&self.inner.counters.errors, 1);
        }
        answer
    }

    /// One entry per distinct requested symbol, in request order (`000001` and `sz000001`
    /// are the same symbol). A bad or unknown symbol gets an error entry; the others are
    /// unaffected.
    pub async fn get_realtime_data_batch<S: AsRef<str>>(&self, symbols: &[S]) -> Vec<BatchEntry> {
        self.get_realtime_data_batch_with(symbols, FetchOptions::default())
            .await
    }

    /// The batch call, with options.
    pub async fn get_realtime_data_batch_with<S: AsRef<str>>(
        &self,
        symbols: &[S],
        options: FetchOptions,
    ) -> Vec<BatchEntry> {
        let mut seen = HashSet::new();
        let mut wanted: Vec<(&str, Result<Symbol, Error>)> = Vec::with_capacity(symbols.len());
        for input in symbols {
            let input = input.as_ref();
            let parsed = Symbol::parse(input);
            let first = match &parsed {
                Ok(s) => seen.insert(Ok(*s)),
                Err(_) => seen.insert(Err(input)),
            };
            if first {
                wanted.push((input, parsed));
            }
        }
        let valid: Vec<Symbol> = wanted
            .iter()
            .filter_map(|(_, p)| p.as_ref().ok().copied())
            .collect();
        let mut answers = self.resolve(&valid, options).await;
        let entries: Vec<BatchEntry> = wanted
            .into_iter()
            .map(|(input, parsed)| {
                match parsed.and_then(|s| answers.remove(&s).unwrap_or_else(|| Err(lost(s)))) {
                    Ok(q) => BatchEntry::Quote(q),
                    Err(e) => BatchEntry::Error(SymbolError::new(input, &e)),
                }
            })
            .collect();
        let errors = entries.iter().filter(|e| e.error().is_some()).count();
        Counters::add(&self.inner.counters.errors, errors);
        entries
    }

    /// Whatever the memory and persistent tiers hold for these symbols, fresh or not, without
    /// any upstream request: for painting a dashboard at once, then refreshing. In request
    /// order; invalid and uncached symbols are left out. Not counted in the statistics.
    pub async fn get_cached<S: AsRef<str>>(&self, symbols: &[S]) -> Vec<Quote> {
        let mut seen = HashSet::new();
        let wanted: Vec<Symbol> = (symbols.iter())
            .filter_map(|s| Symbol::parse(s.as_ref()).ok())
            .filter(|s| seen.insert(*s))
            .collect();
        let mut found: HashMap<Symbol, Quote> = {
            let memory = lock(&self.inner.memory);
            (wanted.iter())
                .filter_map(|s| {
                    let quote = memory.peek(s)?.answer.as_ref().ok()?;
                    Some((*s, quote.clone().served_from(CacheSource::Memory)))
                })
                .collect()
        };
        let missing: Vec<Symbol> = wanted
            .iter()
            .filter(|s| !found.contains_key(s))
            .copied()
            .collect();
        if let (Some(writer), false) = (self.inner.writer(), missing.is_empty()) {
            let missing = take_queued(writer, missing, |s, q| {
                found.insert(s, q.served_from(CacheSource::Disk));
                true
            });
            Counters::add(&self.inner.counters.persistent_reads, 1);
            if let Ok(slots) = writer.store().load(&missing).await {
                for (s, slot) in missing.into_iter().zip(slots) {
                    if let Stored::Found(q) = slot {
                        found.insert(s, q.served_from(CacheSource::Disk));
                    }
                }
            }
        }
        wanted
            .into_iter()
            .filter_map(|s| found.remove(&s))
            .collect()
    }

    /// The statistics since this client was built.
    pub fn cache_stats(&self) -> CacheStats {
        let inner = &self.inner;
        let c = &inner.counters;
        let now = inner.clock.now();
        let (memory_hits, persistent_hits, misses) = (
            Counters::get(&c.memory_hits),
            Counters::get(&c.persistent_hits),
            Counters::get(&c.misses),
        );
        let lookups = memory_hits + persistent_hits + misses;
        let writer_count = |counter: fn(&WriteBehind<Quote>) -> &std::sync::atomic::AtomicU64| {
            (inner.persistent.as_ref()).map_or(0, |w| Counters::get(counter(w)))
        };
        CacheStats {
            memory_hits,
            persistent_hits,
            misses,
            hit_rate: if lookups == 0 {
                0.0
            } else {
                (memory_hits + persistent_hits) as f64 / lookups as f64
            },
            upstream_requests: Counters::get(&c.upstream_requests),
            upstream_failures: Counters::get(&c.upstream_failures),
            symbols_fetched: Counters::get(&c.symbols_fetched),
            coalesced_waits: Counters::get(&c.coalesced_waits),
            stale_served: Counters::get(&c.stale_served),
            errors: Counters::get(&c.errors),
            corrupt_entries: Counters::get(&c.corrupt_entries),
            store_errors: Counters::get(&c.store_errors) + writer_count(|w| &w.failures),
            persistent_reads: Counters::get(&c.persistent_reads),
            persistent_writes: writer_count(|w| &w.written),
            persistent_writes_dropped: writer_count(|w| &w.dropped),
            persistent_pending: inner.persistent.as_ref().map_or(0, |w| w.pending()),
            memory_entries: lock(&inner.memory).len(),
            memory_capacity: inner.memory_capacity,
            persistent_entries: inner.writer().and_then(|w| w.store().entry_count()),
            persistent_enabled: inner.writer().is_some(),
            ttl_seconds: inner.policy.ttl_at(&inner.calendar, now),
            market_phase: inner.calendar.phase(now),
            calendar_covers_today: inner.calendar.covers(
                now.with_timezone(&crate::calendar::exchange_tz())
                    .date_naive(),
            ),
            history_hits: Counters::get(&c.history_hits),
            history_misses: Counters::get(&c.history_misses),
            history_bars_fetched: Counters::get(&c.history_bars_fetched),
            history_upstream_requests: Counters::get(&c.history_upstream_requests),
            history_memory_entries: lock(&inner.history.memory).len(),
            persistent_unavailable: (inner.persistent.as_ref())
                .is_some_and(|w| !w.store().is_available()),
        }
    }

    /// Upstream requests and failed ones so far, per provider (for the relay's metrics).
    pub fn upstream_counts(&self) -> Vec<(Provider, u64, u64)> {
        let by = &self.inner.counters.by_provider;
        [
            Provider::Sina,
            Provider::Tencent,
            Provider::Eastmoney,
            Provider::Relay,
        ]
        .into_iter()
        .map(|p| {
            let (requests, failures) = &by[p as usize];
            (p, Counters::get(requests), Counters::get(failures))
        })
        .collect()
    }

    /// The market phase now, on the client's clock.
    pub fn market_phase(&self) -> crate::calendar::MarketPhase {
        self.inner.calendar.phase(self.inner.clock.now())
    }

    /// How long a quote fetched now stays fresh.
    pub fn ttl_now(&self) -> Duration {
        let inner = &self.inner;
        Duration::from_secs(inner.policy.ttl_at(&inner.calendar, inner.clock.now()))
    }

    /// Empties every tier (queued persistent writes included), quotes and history.
    pub async fn clear_cache(&self) -> Result<(), Error> {
        lock(&self.inner.memory).clear();
        self.clear_history(None).await?;
        match self.inner.writer() {
            Some(writer) => {
                writer.discard(None);
                let _ = writer.flush().await; // the batch being written, if any
                writer.store().clear().await
            }
            None => Ok(()),
        }
    }

    /// Removes one symbol from every tier, its quote and its history.
    pub async fn clear_symbol(&self, symbol: &str) -> Result<(), Error> {
        let symbol = Symbol::parse(symbol)?;
        lock(&self.inner.memory).pop(&symbol);
        self.clear_history(Some(symbol)).await?;
        match self.inner.writer() {
            Some(writer) => {
                writer.discard(Some(&[symbol]));
                let _ = writer.flush().await;
                writer.store().remove(symbol).await
            }
            None => Ok(()),
        }
    }

    /// Waits until every quote and bar fetched so far is in the persistent tier. Writes happen behind
    /// the answers; call this before a clean exit so that nothing is lost. Reports the first
    /// persistent write that failed since the last flush.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), quantdb::Error> {
    /// let db = quantdb::QuantDb::builder().build().await?;
    /// let batch = db.get_realtime_data_batch(&["000001", "600000"]).await;
    /// db.flush().await?; // the next process finds both on disk
    /// # Ok(()) }
    /// ```
    pub async fn flush(&self) -> Result<(), Error> {
        let quotes = match &self.inner.persistent {
            Some(writer) => writer.flush().await,
            None => Ok(()),
        };
        let history = match &self.inner.history.writer {
            Some(writer) => writer.flush().await,
            None => Ok(()),
        };
        quotes.and(history)
    }

    /// Answers for distinct symbols: memory, then the persistent tier, then upstream.
    async fn resolve(&self, symbols: &[Symbol], options: FetchOptions) -> HashMap<Symbol, Answer> {
        let inner = &self.inner;
        let mut out = HashMap::with_capacity(symbols.len());
        let mut pending = Vec::new();
        if options.force_refresh {
            pending.extend_from_slice(symbols);
        } else {
            let now = inner.clock.now();
            let mut memory = lock(&inner.memory);
            for s in symbols {
                match fresh_in_memory(&mut memory, s, now) {
                    Some(answer) => {
                        out.insert(*s, answer);
                    }
                    None => pending.push(*s),
                }
            }
            drop(memory);
            Counters::add(&inner.counters.memory_hits, out.len());
        }
        // Expired quotes of the persistent tier: answers when every upstream fails.
        let mut expired = HashMap::new();
        if !options.force_refresh && !pending.is_empty() {
            pending = self.load_persistent(pending, &mut out, &mut expired).await;
        }
        if !pending.is_empty() {
            self.fetch_coalesced(pending.clone(), options.force_refresh, &mut out)
                .await;
            if !options.force_refresh {
                self.serve_stale(&pending, &mut out, expired);
            }
        }
        out
    }

    /// For symbols every upstream failed for, answers the latest expired quote a tier holds,
    /// marked `stale`, when it is within `max_stale`. Nothing is written back.
    fn serve_stale(
        &self,
        symbols: &[Symbol],
        out: &mut HashMap<Symbol, Answer>,
        mut expired: HashMap<Symbol, Quote>,
    ) {
        let inner = &self.inner;
        let failed: Vec<Symbol> = (symbols.iter())
            .filter(|s| matches!(out.get(s), Some(Err(e)) if e.is_upstream_failure()))
            .copied()
            .collect();
        if failed.is_empty() {
            return;
        }
        let now = inner.clock.now();
        let memory = lock(&inner.memory);
        let mut served = 0;
        for s in failed {
            let in_memory = memory.peek(&s).and_then(|c| c.answer.as_ref().ok());
            let candidate = match (in_memory, expired.remove(&s)) {
                (Some(m), Some(d)) if d.timestamp > m.timestamp => (d, CacheSource::Disk),
                (Some(m), _) => (m.clone(), CacheSource::Memory),
                (None, Some(d)) => (d, CacheSource::Disk),
                (None, None) => continue,
            };
            let (quote, source) = candidate;
            if inner.stale_allowed(quote.fetched_at(), now) {
                out.insert(s, Ok(quote.served_stale(source)));
                served += 1;
            }
        }
        drop(memory);
        Counters::add(&inner.counters.stale_served, served);
    }

    /// Answers what it can from the persistent tier (promoting hits to memory); returns the
    /// symbols still missing.
    async fn load_persistent(
        &self,
        pending: Vec<Symbol>,
        out: &mut HashMap<Symbol, Answer>,
        expired: &mut HashMap<Symbol, Quote>,
    ) -> Vec<Symbol> {
        let inner = &self.inner;
        let Some(writer) = inner.writer() else {
            return pending;
        };
        let now = inner.clock.now();
        let mut promoted = Vec::new();
        // Quotes still queued for writing are newer than anything the store holds.
        let pending = take_queued(writer, pending, |s, q| {
            let fetched = q.fetched_at();
            let entry = inner.entry(Ok(q), fetched);
            let fresh = entry.is_fresh(now);
            match (fresh, entry.answer) {
                (true, answer) => promoted.push((s, Cached { answer, ..entry })),
                (false, Ok(q)) => {
                    expired.insert(s, q);
                }
                (false, Err(_)) => {}
            }
            fresh
        });
        if pending.is_empty() {
            return self.promote(promoted, out, Vec::new());
        }
        let slots = match self.load_shared(writer.store().as_ref(), &pending).await {
            Ok(slots) => slots,
            Err(e) => {
                Counters::add(&inner.counters.store_errors, 1);
                tracing::warn!("persistent cache read failed: {e}");
                return pending;
            }
        };
        let mut missing = Vec::new();
        for (s, slot) in pending.into_iter().zip(slots) {
            match slot {
                Stored::Found(q) => {
                    let fetched = q.fetched_at();
                    match inner.entry(Ok(q), fetched) {
                        entry if entry.is_fresh(now) => promoted.push((s, entry)),
                        Cached { answer: Ok(q), .. } => {
                            expired.entry(s).or_insert(q);
                            missing.push(s);
                        }
                        _ => missing.push(s),
                    }
                }
                Stored::Missing => missing.push(s),
                Stored::Corrupt(why) => {
                    Counters::add(&inner.counters.corrupt_entries, 1);
                    tracing::warn!("ignoring unreadable cache entry for {s}: {why}");
                    missing.push(s);
                }
            }
        }
        self.promote(promoted, out, missing)
    }

    /// Answers persistent hits and puts them in memory; returns `missing`.
    fn promote(
        &self,
        promoted: Vec<(Symbol, Cached)>,
        out: &mut HashMap<Symbol, Answer>,
        missing: Vec<Symbol>,
    ) -> Vec<Symbol> {
        Counters::add(&self.inner.counters.persistent_hits, promoted.len());
        let mut memory = lock(&self.inner.memory);
        for (s, entry) in promoted {
            if let Ok(q) = &entry.answer {
                out.insert(s, Ok(q.clone().served_from(CacheSource::Disk)));
            }
            memory.put(s, entry);
        }
        missing
    }
}

impl Inner {
    /// Whether a quote fetched at `fetched` may still be answered stale at `now`.
    fn stale_allowed(&self, fetched: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        match self.max_stale {
            MaxStale::NextSession => self
                .calendar
                .next_session_start(fetched)
                .is_none_or(|start| now < start),
            MaxStale::Age(age) => {
                !age.is_zero() && (now - fetched).to_std().is_ok_and(|elapsed| elapsed <= age)
            }
        }
    }

    /// The persistent tier, while it works.
    fn writer(&self) -> Option<&Arc<WriteBehind<Quote>>> {
        (self.persistent.as_ref()).filter(|w| w.store().is_available())
    }

    /// A memory-tier entry for an answer fetched at `fetched`, with its expiry.
    fn entry(&self, answer: Answer, fetched: DateTime<Utc>) -> Cached {
        let expires = self.policy.expiry(&self.calendar, fetched);
        Cached {
            answer,
            fetched,
            expires,
        }
    }
}

impl Cached {
    fn is_fresh(&self, now: DateTime<Utc>) -> bool {
        TtlPolicy::fresh_until(self.fetched, self.expires, now)
    }
}

/// A fresh memory-tier answer, a quote marked as served from memory.
fn fresh_in_memory(
    memory: &mut LruCache<Symbol, Cached>,
    s: &Symbol,
    now: DateTime<Utc>,
) -> Option<Answer> {
    let cached = memory.get(s).filter(|c| c.is_fresh(now))?;
    Some(match &cached.answer {
        Ok(q) => Ok(q.clone().served_from(CacheSource::Memory)),
        Err(e) => Err(e.clone()),
    })
}

/// Offers quotes still queued for writing to `take`; returns the symbols it did not take
/// (not queued, or queued but no longer fresh).
fn take_queued(
    writer: &WriteBehind<Quote>,
    symbols: Vec<Symbol>,
    mut take: impl FnMut(Symbol, Quote) -> bool,
) -> Vec<Symbol> {
    let queued = writer.queued(&symbols);
    let mut rest = Vec::with_capacity(symbols.len());
    for (s, q) in symbols.into_iter().zip(queued) {
        if !q.is_some_and(|q| take(s, q)) {
            rest.push(s);
        }
    }
    rest
}

/// Native callers run these futures on multi-threaded runtimes: they must stay `Send`.
#[cfg(not(target_arch = "wasm32"))]
#[allow(dead_code)]
fn assert_futures_are_send(db: &QuantDb) {
    fn send<T: Send>(_: T) {}
    send(db.get_realtime_data("600000"));
    send(db.get_realtime_data_with("600000", FetchOptions::refresh()));
    send(db.get_realtime_data_batch(&["600000"]));
    send(db.get_realtime_data_batch_with(&[String::from("600000")], FetchOptions::default()));
    send(db.clear_cache());
    send(db.get_cached(&["600000"]));
    send(db.clear_symbol("600000"));
    send(db.flush());
    send(QuantDb::builder().build());
}
