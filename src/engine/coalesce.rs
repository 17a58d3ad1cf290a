//! In-flight sharing: concurrent callers that want the same symbol share one upstream request,
//! and one read of the persistent tier before it.
//!
//! A caller that misses the caches *claims* each symbol it needs: a symbol nobody is fetching
//! is entered in the in-flight table and fetched by this caller (its *flight*); a symbol
//! already in the table gets a oneshot receiver, and the caller waits for the fetcher's
//! answer. When the flight lands, its answers go to memory first and then to every waiter,
//! and the symbols leave the table. A fetcher whose future is dropped mid-way (a cancelled
//! caller) releases its symbols on drop: the waiters see `Canceled` and fetch for themselves.

use foldhash::HashMap;

use futures_channel::oneshot;

use super::{fresh_in_memory, lock, Answer, Inner, QuantDb};
use crate::error::Error;
use crate::quote::{CacheSource, Quote};
use crate::stats::Counters;
use crate::store::{Store, Stored};
use crate::symbol::Symbol;

impl QuantDb {
    /// Fetches upstream, sharing in-flight requests with concurrent callers.
    pub(super) async fn fetch_coalesced(
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
                let answers = self.fetch_shared(&flight.symbols, force).await;
                // A quote a relay answered stale is passed on, never kept as fresh; one the
                // fleet's shared store gave is there already.
                let fresh: Vec<Quote> = (flight.symbols.iter())
                    .filter_map(|s| answers.get(s)?.as_ref().ok())
                    .filter(|q| !q.stale && q.cache_source == CacheSource::Network)
                    .cloned()
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

    /// Reads `symbols` from the persistent tier, sharing reads in progress: a symbol another
    /// caller is reading is waited for, not read again (a burst of cold callers on the same
    /// symbols costs one read). Each caller then judges the slots as its own.
    pub(super) async fn load_shared(
        &self,
        store: &dyn Store,
        symbols: &[Symbol],
    ) -> Result<Vec<Stored>, Error> {
        let inner = &self.inner;
        let mut mine = Vec::new();
        let mut waits = Vec::new();
        {
            let mut reading = lock(&inner.reading);
            for (i, s) in symbols.iter().enumerate() {
                match reading.get_mut(s) {
                    Some(waiters) => {
                        let (tx, rx) = oneshot::channel();
                        waiters.push(tx);
                        waits.push((i, rx));
                    }
                    None => {
                        reading.insert(*s, Vec::new());
                        mine.push(*s);
                    }
                }
            }
        }
        let mut read = Reading {
            inner,
            symbols: mine,
        };
        let mut slots = vec![Stored::Missing; symbols.len()];
        if !read.symbols.is_empty() {
            Counters::add(&inner.counters.persistent_reads, 1);
            // On an error the read is dropped: its waiters see `Canceled` (a miss to them).
            let found = store.load(&read.symbols).await?;
            let mut answered = HashMap::default();
            let mut reading = lock(&inner.reading);
            for (s, value) in read.symbols.iter().zip(found) {
                for waiter in reading.remove(s).unwrap_or_default() {
                    let _ = waiter.send(value.clone());
                }
                answered.insert(*s, value);
            }
            drop(reading);
            read.symbols.clear(); // answered: nothing left to release
            for (slot, s) in slots.iter_mut().zip(symbols) {
                if let Some(value) = answered.remove(s) {
                    *slot = value;
                }
            }
        }
        drop(read);
        for (i, rx) in waits {
            slots[i] = rx.await.unwrap_or(Stored::Missing);
        }
        Ok(slots)
    }

    /// Splits `todo` into symbols this caller fetches and symbols it waits for.
    #[allow(clippy::type_complexity)]
    pub(super) fn claim(
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
}

/// The error for a symbol whose answer went missing (a cancelled in-flight fetch, thrice).
pub(super) fn lost(s: Symbol) -> Error {
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

/// Symbols this caller is reading from the persistent tier; dropping it releases those not
/// answered yet (their waiters see `Canceled`).
struct Reading<'a> {
    inner: &'a Inner,
    symbols: Vec<Symbol>,
}

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        let mut reading = lock(&self.inner.reading);
        for s in &self.symbols {
            reading.remove(s);
        }
    }
}
