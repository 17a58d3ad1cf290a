//! The engine, the same code on every target:
//! symbols -> dedup -> memory tier -> persistent tier -> coalesce -> chunk -> providers.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use futures_channel::oneshot;
use futures_util::future::join_all;
use lru::LruCache;
use tokio::sync::Semaphore;

use crate::backend;
use crate::calendar::{MarketCalendar, TtlMode, TtlPolicy};
use crate::error::{Error, SymbolError};
use crate::provider::Provider;
use crate::quote::{BatchEntry, CacheSource, Quote};
use crate::stats::{CacheStats, Counters};
use crate::store::{Store, Stored};
use crate::symbol::Symbol;
use crate::transport::{host_of, Clock, SystemClock, Transport, TransportError};
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
    persistent: Option<Arc<WriteBehind>>,
    memory: Mutex<LruCache<Symbol, Cached>>,
    memory_capacity: usize,
    max_stale: MaxStale,
    /// Symbols being fetched right now, with the callers waiting for them.
    inflight: Mutex<HashMap<Symbol, Vec<oneshot::Sender<Answer>>>>,
    permits: Semaphore,
    counters: Counters,
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
        let writer_count = |counter: fn(&WriteBehind) -> &std::sync::atomic::AtomicU64| {
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
        }
    }

    /// Empties every tier (queued persistent writes included).
    pub async fn clear_cache(&self) -> Result<(), Error> {
        lock(&self.inner.memory).clear();
        match self.inner.writer() {
            Some(writer) => {
                writer.discard(None);
                let _ = writer.flush().await; // the batch being written, if any
                writer.store().clear().await
            }
            None => Ok(()),
        }
    }

    /// Removes one symbol from every tier.
    pub async fn clear_symbol(&self, symbol: &str) -> Result<(), Error> {
        let symbol = Symbol::parse(symbol)?;
        lock(&self.inner.memory).pop(&symbol);
        match self.inner.writer() {
            Some(writer) => {
                writer.discard(Some(&[symbol]));
                let _ = writer.flush().await;
                writer.store().remove(symbol).await
            }
            None => Ok(()),
        }
    }

    /// Waits until every quote fetched so far is in the persistent tier. Writes happen behind
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
        match &self.inner.persistent {
            Some(writer) => writer.flush().await,
            None => Ok(()),
        }
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
        Counters::add(&inner.counters.persistent_reads, 1);
        let slots = match writer.store().load(&pending).await {
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

    /// Fetches upstream, sharing in-flight requests with concurrent callers.
    async fn fetch_coalesced(
        &self,
        mut todo: Vec<Symbol>,
        force: bool,
        out: &mut HashMap<Symbol, Answer>,
    ) {
        // A waiter whose fetching caller was cancelled tries again, as the fetcher this time.
        for _ in 0..3 {
            if todo.is_empty() {
                return;
            }
            let (owned, waits) = self.claim(&todo, force, out);
            if !owned.is_empty() {
                let flight = Flight {
                    inner: &self.inner,
                    symbols: owned,
                };
                let answers = self.fetch_upstream(&flight.symbols).await;
                // A quote a relay answered stale is passed on, never kept as fresh.
                let fresh: Vec<Quote> = (flight.symbols.iter())
                    .filter_map(|s| answers.get(s)?.as_ref().ok().filter(|q| !q.stale).cloned())
                    .collect();
                flight.complete(answers, out);
                if let Some(writer) = self.inner.writer() {
                    writer.enqueue(fresh);
                }
            }
            todo.clear();
            for (s, rx) in waits {
                match rx.await {
                    Ok(answer) => {
                        out.insert(s, answer);
                    }
                    Err(oneshot::Canceled) => todo.push(s),
                }
            }
        }
        for s in todo {
            out.insert(s, Err(lost(s)));
        }
    }

    /// Splits `todo` into symbols this caller fetches and symbols it waits for.
    #[allow(clippy::type_complexity)]
    fn claim(
        &self,
        todo: &[Symbol],
        force: bool,
        out: &mut HashMap<Symbol, Answer>,
    ) -> (Vec<Symbol>, Vec<(Symbol, oneshot::Receiver<Answer>)>) {
        let inner = &self.inner;
        let now = inner.clock.now();
        let mut owned = Vec::new();
        let mut waits = Vec::new();
        let mut late_hits = 0;
        let mut inflight = lock(&inner.inflight);
        for s in todo {
            if let Some(waiters) = inflight.get_mut(s) {
                let (tx, rx) = oneshot::channel();
                waiters.push(tx);
                waits.push((*s, rx));
                continue;
            }
            // A fetch may have finished since the memory lookup: fetchers fill memory before
            // leaving the in-flight table, so checking here under the lock closes that gap.
            if !force {
                if let Some(answer) = fresh_in_memory(&mut lock(&inner.memory), s, now) {
                    out.insert(*s, answer);
                    late_hits += 1;
                    continue;
                }
            }
            inflight.insert(*s, Vec::new());
            owned.push(*s);
        }
        drop(inflight);
        Counters::add(&inner.counters.memory_hits, late_hits);
        Counters::add(&inner.counters.coalesced_waits, waits.len());
        Counters::add(&inner.counters.misses, owned.len() + waits.len());
        (owned, waits)
    }

    /// Asks the providers in order; each one gets the symbols the previous ones failed or
    /// did not know, in chunks of its batch size, fetched concurrently.
    async fn fetch_upstream(&self, symbols: &[Symbol]) -> HashMap<Symbol, Answer> {
        let mut out = HashMap::with_capacity(symbols.len());
        let mut pending = symbols.to_vec();
        let mut errors: HashMap<Symbol, Vec<Error>> = HashMap::new();
        let mut answered_without: HashSet<Symbol> = HashSet::new();
        for up in &self.inner.upstreams {
            if pending.is_empty() {
                break;
            }
            let chunks: Vec<&[Symbol]> = pending.chunks(up.chunk_size).collect();
            let results = join_all(chunks.iter().map(|chunk| self.fetch_chunk(up, chunk))).await;
            let mut next = Vec::new();
            for (chunk, result) in chunks.into_iter().zip(results) {
                match result {
                    Ok(answers) => {
                        let mut by_symbol: HashMap<Symbol, Answer> = answers.into_iter().collect();
                        for s in chunk {
                            match by_symbol.remove(s) {
                                Some(Ok(q)) => {
                                    out.insert(*s, Ok(q));
                                }
                                // A relay's error for this symbol: the next provider may know better.
                                Some(Err(e)) => {
                                    errors.entry(*s).or_default().push(e);
                                    next.push(*s);
                                }
                                None => {
                                    answered_without.insert(*s);
                                    next.push(*s);
                                }
                            }
                        }
                    }
                    Err(e) => {
                        for s in chunk {
                            errors.entry(*s).or_default().push(e.clone());
                            next.push(*s);
                        }
                    }
                }
            }
            pending = next;
        }
        let tried = self
            .inner
            .upstreams
            .iter()
            .map(|u| u.provider.name())
            .collect::<Vec<_>>()
            .join(", ");
        // Not found only when every provider answered without it; when one of them failed,
        // that one might have known it.
        for s in pending {
            let err = match errors.remove(&s) {
                None => Error::NotFound {
                    symbol: s.to_string(),
                    providers: tried.clone(),
                },
                Some(mut attempts) if attempts.len() == 1 && !answered_without.contains(&s) => {
                    attempts.remove(0)
                }
                Some(attempts) => Error::Unavailable { attempts },
            };
            out.insert(s, Err(err));
        }
        out
    }

    /// One upstream request.
    async fn fetch_chunk(
        &self,
        up: &Upstream,
        chunk: &[Symbol],
    ) -> Result<Vec<(Symbol, Answer)>, Error> {
        let inner = &self.inner;
        let _permit = inner.permits.acquire().await.map_err(|_| Error::Upstream {
            provider: up.provider.name().into(),
            message: "client is shutting down".into(),
        })?;
        let request = up.provider.request(&up.base_url, chunk);
        Counters::add(&inner.counters.upstream_requests, 1);
        Counters::add(&inner.counters.symbols_fetched, chunk.len());
        let provider = up.provider.name().to_string();
        let body = match inner.transport.get(&request, inner.timeout).await {
            Ok(resp) if resp.status == 200 => Ok(resp.body),
            Ok(resp) => Err(Error::Upstream {
                provider,
                message: format!("{}: HTTP {}", host_of(&request.url), resp.status),
            }),
            Err(TransportError::Timeout) => Err(Error::Timeout {
                provider,
                timeout_ms: inner.timeout.as_millis() as u64,
            }),
            Err(TransportError::Failed(message)) => Err(Error::Upstream { provider, message }),
        };
        let fetched_at = inner.clock.now();
        let phase = inner.calendar.phase(fetched_at);
        body.and_then(|body| up.provider.answers(&body, fetched_at, phase))
            .inspect_err(|e| {
                Counters::add(&inner.counters.upstream_failures, 1);
                tracing::debug!("{e}");
            })
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
    fn writer(&self) -> Option<&Arc<WriteBehind>> {
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
    writer: &WriteBehind,
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

/// The error for a symbol whose answer went missing (a cancelled in-flight fetch, thrice).
fn lost(s: Symbol) -> Error {
    Error::Upstream {
        provider: "quantdb".into(),
        message: format!("the in-flight request for {s} was cancelled"),
    }
}

/// Symbols this caller is fetching. Dropping it unfinished (the caller's future was
/// cancelled) releases them, so waiters retry instead of hanging.
struct Flight<'a> {
    inner: &'a Inner,
    symbols: Vec<Symbol>,
}

impl Flight<'_> {
    /// Fills memory, then hands each answer to the waiters and leaves the in-flight table.
    fn complete(mut self, mut answers: HashMap<Symbol, Answer>, out: &mut HashMap<Symbol, Answer>) {
        {
            // In request order, so that a batch larger than memory keeps its last symbols.
            // Quotes and "no upstream knows it" are kept; failures are not.
            let now = self.inner.clock.now();
            let mut memory = lock(&self.inner.memory);
            for s in &self.symbols {
                match answers.get(s) {
                    Some(Ok(q)) if !q.stale => {
                        memory.put(*s, self.inner.entry(Ok(q.clone()), q.fetched_at()));
                    }
                    Some(Err(e @ Error::NotFound { .. })) => {
                        memory.put(*s, self.inner.entry(Err(e.clone()), now));
                    }
                    _ => {}
                }
            }
        }
        let mut inflight = lock(&self.inner.inflight);
        for s in std::mem::take(&mut self.symbols) {
            let answer = answers.remove(&s).unwrap_or_else(|| Err(lost(s)));
            for waiter in inflight.remove(&s).unwrap_or_default() {
                let _ = waiter.send(answer.clone()); // a waiter may have given up
            }
            out.insert(s, answer);
        }
    }
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        if !self.symbols.is_empty() {
            let mut inflight = lock(&self.inner.inflight);
            for s in &self.symbols {
                inflight.remove(s); // drops the senders: waiters see Canceled
            }
        }
    }
}

/// The longest upstream timeout accepted (a browser timer cannot wait much longer).
const MAX_TIMEOUT: Duration = Duration::from_secs(600);
/// The longest TTL accepted: a year.
const MAX_TTL: Duration = Duration::from_secs(366 * 86_400);

/// Configures a [`QuantDb`].
///
/// ```no_run
/// # async fn demo() -> Result<(), quantdb::Error> {
/// use std::time::Duration;
/// use quantdb::{Provider, QuantDb};
/// let db = QuantDb::builder()
///     .cache_dir("/tmp/quotes")
///     .providers([Provider::Tencent, Provider::Sina])
///     .base_url(Provider::Tencent, "http://127.0.0.1:18080")
///     .timeout(Duration::from_secs(2))
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
pub struct QuantDbBuilder {
    memory_capacity: usize,
    policy: TtlPolicy,
    providers: Vec<Provider>,
    base_urls: HashMap<Provider, String>,
    chunk_sizes: HashMap<Provider, usize>,
    timeout: Duration,
    max_concurrent_requests: usize,
    persistent: bool,
    write_queue_capacity: usize,
    max_stale: MaxStale,
    cache_dir: Option<PathBuf>,
    db_name: String,
    closures: Vec<NaiveDate>,
    clock: Arc<dyn Clock>,
    transport: Option<Arc<dyn Transport>>,
    store: Option<Arc<dyn Store>>,
}

impl Default for QuantDbBuilder {
    fn default() -> Self {
        QuantDbBuilder {
            memory_capacity: 10_000,
            policy: TtlPolicy::default(),
            providers: Provider::ALL.to_vec(),
            base_urls: HashMap::new(),
            chunk_sizes: HashMap::new(),
            timeout: Duration::from_secs(5),
            max_concurrent_requests: 8,
            persistent: true,
            write_queue_capacity: 20_000,
            max_stale: MaxStale::NextSession,
            cache_dir: None,
            db_name: "quantdb".to_string(),
            closures: Vec::new(),
            clock: Arc::new(SystemClock),
            transport: None,
            store: None,
        }
    }
}

impl QuantDbBuilder {
    /// Quotes kept in memory (least recently used go first). Default 10,000.
    pub fn memory_capacity(mut self, n: usize) -> Self {
        self.memory_capacity = n;
        self
    }

    /// TTL during trading sessions. Default 30 s.
    pub fn ttl_trading(mut self, ttl: Duration) -> Self {
        self.policy.trading = ttl;
        self
    }

    /// TTL outside trading sessions. Default 60 s.
    pub fn ttl_closed(mut self, ttl: Duration) -> Self {
        self.policy.closed = ttl;
        self
    }

    /// [`TtlMode::Fixed`] (default) or [`TtlMode::UntilNextOpen`].
    pub fn ttl_mode(mut self, mode: TtlMode) -> Self {
        self.policy.mode = mode;
        self
    }

    /// The providers to try, in order. Default Sina, Tencent, Eastmoney.
    pub fn providers(mut self, providers: impl IntoIterator<Item = Provider>) -> Self {
        self.providers = providers.into_iter().collect();
        self
    }

    /// A provider's base URL (a proxy, a mirror, a local test server). Without it the
    /// environment variable (`QUANTDB_SINA_URL`, `QUANTDB_TENCENT_URL`,
    /// `QUANTDB_EASTMONEY_URL`) applies, then the public address.
    pub fn base_url(mut self, provider: Provider, url: impl Into<String>) -> Self {
        self.base_urls.insert(provider, url.into());
        self
    }

    /// Codes per request for a provider (defaults: Sina 800, Tencent 60, Eastmoney 100).
    pub fn chunk_size(mut self, provider: Provider, n: usize) -> Self {
        self.chunk_sizes.insert(provider, n);
        self
    }

    /// Timeout of each upstream request. Default 5 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Upstream requests in flight at once, across all callers. Default 8.
    pub fn max_concurrent_requests(mut self, n: usize) -> Self {
        self.max_concurrent_requests = n;
        self
    }

    /// Turns the persistent tier on (default) or off.
    pub fn persistent(mut self, on: bool) -> Self {
        self.persistent = on;
        self
    }

    /// Quotes waiting to be written to the persistent tier, at most (one per symbol: a newer
    /// quote replaces a waiting one). When full, quotes of further symbols stay in memory
    /// only, counted in `persistent_writes_dropped`. Default 20,000, more than every listed
    /// symbol.
    pub fn write_queue_capacity(mut self, n: usize) -> Self {
        self.write_queue_capacity = n;
        self
    }

    /// How old a quote may be and still be answered, marked `stale: true`, when every
    /// upstream fails for its symbol: at most this long after it was fetched. Zero turns
    /// stale answers off. Default: until the next session starts after it was fetched.
    pub fn max_stale(mut self, age: Duration) -> Self {
        self.max_stale = MaxStale::Age(age);
        self
    }

    /// The file cache's directory (native). Default: the platform cache directory plus
    /// `quantdb`, e.g. `~/.cache/quantdb`.
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// The IndexedDB database name (browser). Default `quantdb`.
    pub fn db_name(mut self, name: impl Into<String>) -> Self {
        self.db_name = name.into();
        self
    }

    /// Extra exchange closure dates, on top of the shipped 2024-2026 calendar.
    pub fn extra_closures(mut self, dates: impl IntoIterator<Item = NaiveDate>) -> Self {
        self.closures.extend(dates);
        self
    }

    /// The clock (tests inject one to cross TTL boundaries).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// A transport other than the platform's (reqwest natively, fetch in the browser).
    pub fn transport(mut self, transport: Arc<dyn Transport>) -> Self {
        self.transport = Some(transport);
        self
    }

    /// A persistent store other than the platform's (file cache, IndexedDB).
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Checks the configuration and opens the persistent tier. A persistent tier that cannot
    /// be opened (unwritable directory, IndexedDB unavailable) leaves the client memory-only,
    /// with a warning and `persistent_enabled: false` in the stats.
    // On wasm32 the store and transport hold JS handles (not `Send`): the browser has one thread.
    #[cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]
    pub async fn build(self) -> Result<QuantDb, Error> {
        let memory = NonZeroUsize::new(self.memory_capacity)
            .ok_or_else(|| Error::Config("memory_capacity must be at least 1".into()))?;
        if self.write_queue_capacity == 0 {
            return Err(Error::Config(
                "write_queue_capacity must be at least 1".into(),
            ));
        }
        if self.max_concurrent_requests == 0 {
            return Err(Error::Config(
                "max_concurrent_requests must be at least 1".into(),
            ));
        }
        if self.timeout.is_zero() || self.timeout > MAX_TIMEOUT {
            return Err(Error::Config(format!(
                "timeout must be more than zero and at most {} s",
                MAX_TIMEOUT.as_secs()
            )));
        }
        for (name, ttl) in [
            ("ttl_trading", self.policy.trading),
            ("ttl_closed", self.policy.closed),
        ] {
            if ttl > MAX_TTL {
                return Err(Error::Config(format!(
                    "{name} must be at most {} days",
                    MAX_TTL.as_secs() / 86_400
                )));
            }
        }
        if self.providers.is_empty() {
            return Err(Error::Config("at least one provider is needed".into()));
        }
        let mut upstreams: Vec<Upstream> = Vec::new();
        for provider in self.providers.iter().copied() {
            if upstreams.iter().any(|u| u.provider == provider) {
                return Err(Error::Config(format!(
                    "provider {provider} is listed twice"
                )));
            }
            let base_url = self
                .base_urls
                .get(&provider)
                .cloned()
                .or_else(|| {
                    std::env::var(provider.url_env_var())
                        .ok()
                        .filter(|v| !v.trim().is_empty())
                })
                .unwrap_or_else(|| provider.default_base_url().to_string());
            if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
                return Err(Error::Config(format!(
                    "{provider} base URL {base_url:?} is not an http(s) URL"
                )));
            }
            let chunk_size = self
                .chunk_sizes
                .get(&provider)
                .copied()
                .unwrap_or(provider.default_chunk_size());
            if chunk_size == 0 {
                return Err(Error::Config(format!(
                    "{provider} chunk size must be at least 1"
                )));
            }
            upstreams.push(Upstream {
                provider,
                base_url,
                chunk_size,
            });
        }
        let transport = match self.transport {
            Some(t) => t,
            None => backend::default_transport()?,
        };
        let store = match (self.persistent, self.store) {
            (false, _) => None,
            (true, Some(store)) => Some(store),
            (true, None) => {
                match backend::open_store(self.cache_dir.as_deref(), &self.db_name).await {
                    Ok(store) => Some(store),
                    Err(e) => {
                        tracing::warn!("persistent cache is off, memory only: {e}");
                        None
                    }
                }
            }
        };
        let mut calendar = MarketCalendar::default();
        calendar.add_closures(self.closures);
        Ok(QuantDb {
            inner: Arc::new(Inner {
                upstreams,
                timeout: self.timeout,
                policy: self.policy,
                calendar,
                clock: self.clock,
                transport,
                persistent: store.map(|s| Arc::new(WriteBehind::new(s, self.write_queue_capacity))),
                memory: Mutex::new(LruCache::new(memory)),
                memory_capacity: self.memory_capacity,
                max_stale: self.max_stale,
                inflight: Mutex::new(HashMap::new()),
                permits: Semaphore::new(self.max_concurrent_requests),
                counters: Counters::default(),
            }),
        })
    }
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
