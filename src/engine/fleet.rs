//! Fetches shared by a fleet of clients on one persistent tier (relays on one Redis): with a
//! [`Coordinator`], each symbol a client misses is fetched by the one that takes its lease;
//! the others wait (within a bound) for its quote in the shared store. The holder gives its
//! leases back once it is done, fetched or failed; a waiter that finds a lease free and no
//! quote (the holder failed, or died and its lease ran out) takes it and fetches. Without a
//! coordinator, or while it is unavailable, every client fetches for itself.

use foldhash::{HashMap, HashMapExt};
use std::sync::Arc;
use std::time::Duration;

use super::{Answer, QuantDb};
use crate::quote::{CacheSource, Quote};
use crate::stats::Counters;
use crate::store::{Coordinator, Stored};
use crate::symbol::Symbol;

/// How often a waiting client looks at the shared store when no announcement comes.
const LOOK_EVERY: Duration = Duration::from_millis(50);

impl QuantDb {
    /// Answers for `symbols` from the upstreams, sharing the fetch with the fleet.
    pub(super) async fn fetch_shared(
        &self,
        symbols: &[Symbol],
        force: bool,
    ) -> HashMap<Symbol, Answer> {
        let inner = &self.inner;
        let coordinator = inner.coordinator.as_ref().filter(|c| c.is_available());
        let (Some(co), Some(_), false) = (coordinator, inner.writer(), force) else {
            return self.fetch_upstream(symbols).await;
        };
        // A lease outlives a fetch with its fallbacks; the others wait as long at most.
        let hold = inner.timeout * 2;
        let leases = match co.claim(symbols, hold).await {
            Ok(leases) if leases.len() == symbols.len() => leases,
            _ => return self.fetch_upstream(symbols).await,
        };
        let mut mine = Vec::new();
        let mut theirs = Vec::new();
        for (&s, held) in symbols.iter().zip(leases) {
            if held {
                mine.push(s);
            } else {
                theirs.push(s);
            }
        }
        let (mut answers, (found, missing)) = futures_util::future::join(
            self.fetch_leased(co, mine),
            self.wait_for_fleet(co, theirs, hold),
        )
        .await;
        answers.extend(found);
        if !missing.is_empty() {
            answers.extend(self.fetch_upstream(&missing).await);
        }
        answers
    }

    /// Fetches the symbols whose leases this client holds, shares the quotes and gives the
    /// leases back.
    async fn fetch_leased(
        &self,
        co: &Arc<dyn Coordinator>,
        mine: Vec<Symbol>,
    ) -> HashMap<Symbol, Answer> {
        if mine.is_empty() {
            return HashMap::new();
        }
        // Another client may have stored them between our look at the store and our claim
        // (it gave its lease back after writing): look once more.
        let (mut answers, mine) = self.fresh_in_store(mine).await;
        if !answers.is_empty() {
            // Not ours to fetch after all: give the leases back.
            let taken: Vec<Symbol> = answers.keys().copied().collect();
            co.announce(&taken).await;
        }
        if !mine.is_empty() {
            let fetched = self.fetch_upstream(&mine).await;
            self.share(co, &mine, &fetched).await;
            answers.extend(fetched);
        }
        answers
    }

    /// Writes the quotes fetched under a lease to the shared store now (not behind: the
    /// others are waiting), then gives every lease back, fetched or not: the waiters answer
    /// what is in the store, and take the leases of the rest.
    async fn share(
        &self,
        co: &Arc<dyn Coordinator>,
        symbols: &[Symbol],
        answers: &HashMap<Symbol, Answer>,
    ) {
        let fresh: Vec<Quote> = (symbols.iter())
            .filter_map(|s| answers.get(s)?.as_ref().ok().filter(|q| !q.stale).cloned())
            .collect();
        if let (Some(writer), false) = (self.inner.writer(), fresh.is_empty()) {
            if let Err(e) = writer.store().save(&fresh).await {
                Counters::add(&self.inner.counters.store_errors, 1);
                tracing::warn!("shared store write failed: {e}");
            }
        }
        co.announce(symbols).await;
    }

    /// Waits up to `bound` for fresh quotes of `todo` in the shared store, taking the leases
    /// given back without a quote (or run out) and fetching those: what came or was fetched,
    /// and what did neither.
    async fn wait_for_fleet(
        &self,
        co: &Arc<dyn Coordinator>,
        mut todo: Vec<Symbol>,
        bound: Duration,
    ) -> (HashMap<Symbol, Answer>, Vec<Symbol>) {
        let mut found = HashMap::new();
        let rounds = (bound.as_millis() / LOOK_EVERY.as_millis()).max(1);
        for _ in 0..rounds {
            // Redis gone meanwhile: nobody will announce; fetch now rather than wait.
            if todo.is_empty() || !co.is_available() {
                break;
            }
            co.wait(LOOK_EVERY).await;
            let (came, rest) = self.fresh_in_store(todo).await;
            found.extend(came);
            todo = rest;
            if todo.is_empty() {
                break;
            }
            let Ok(taken) = co.claim(&todo, bound).await else {
                continue;
            };
            if taken.len() != todo.len() {
                continue;
            }
            let (mine, theirs): (Vec<_>, Vec<_>) =
                todo.into_iter().zip(taken).partition(|(_, held)| *held);
            todo = theirs.into_iter().map(|(s, _)| s).collect();
            let mine = mine.into_iter().map(|(s, _)| s).collect();
            found.extend(self.fetch_leased(co, mine).await);
        }
        (found, todo)
    }

    /// The quotes of `symbols` the shared store holds fresh, and the symbols it does not.
    async fn fresh_in_store(&self, symbols: Vec<Symbol>) -> (HashMap<Symbol, Answer>, Vec<Symbol>) {
        let inner = &self.inner;
        let mut found = HashMap::new();
        let slots = match inner.writer() {
            Some(writer) if !symbols.is_empty() => writer.store().load(&symbols).await,
            _ => return (found, symbols),
        };
        let Ok(slots) = slots else {
            return (found, symbols);
        };
        let now = inner.clock.now();
        let mut rest = Vec::new();
        for (s, slot) in symbols.into_iter().zip(slots) {
            match slot {
                Stored::Found(q) if inner.policy.is_fresh(&inner.calendar, q.fetched_at(), now) => {
                    found.insert(s, Ok(q.served_from(CacheSource::Disk)));
                }
                _ => rest.push(s),
            }
        }
        Counters::add(&inner.counters.persistent_hits, found.len());
        (found, rest)
    }
}
