//! Cache statistics.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::calendar::MarketPhase;

/// Counters kept by the engine since it was built.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub memory_hits: AtomicU64,
    pub persistent_hits: AtomicU64,
    pub misses: AtomicU64,
    pub upstream_requests: AtomicU64,
    pub upstream_failures: AtomicU64,
    pub symbols_fetched: AtomicU64,
    pub coalesced_waits: AtomicU64,
    pub errors: AtomicU64,
    pub corrupt_entries: AtomicU64,
    pub store_errors: AtomicU64,
    pub persistent_reads: AtomicU64,
    pub stale_served: AtomicU64,
    pub history_hits: AtomicU64,
    pub history_misses: AtomicU64,
    pub history_bars_fetched: AtomicU64,
    pub history_upstream_requests: AtomicU64,
    /// Requests and failures per provider, in [`crate::Provider`] order (sina, tencent,
    /// eastmoney, relay).
    pub by_provider: [(AtomicU64, AtomicU64); 4],
}

impl Counters {
    /// One more request to `provider`.
    pub fn request(&self, provider: crate::Provider) {
        Self::add(&self.upstream_requests, 1);
        Self::add(&self.by_provider[provider as usize].0, 1);
    }

    /// One more failed request to `provider`.
    pub fn failure(&self, provider: crate::Provider) {
        Self::add(&self.upstream_failures, 1);
        Self::add(&self.by_provider[provider as usize].1, 1);
    }

    pub fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// A snapshot of the cache's statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheStats {
    /// Symbols answered from the memory tier.
    pub memory_hits: u64,
    /// Symbols answered from the persistent tier (then promoted to memory).
    pub persistent_hits: u64,
    /// Symbols that needed the network (forced refreshes included).
    pub misses: u64,
    /// `(memory_hits + persistent_hits) / (hits + misses)`, 0 before any lookup.
    pub hit_rate: f64,
    /// HTTP requests sent upstream.
    pub upstream_requests: u64,
    /// Of those, the ones that failed (error status, timeout, unreadable body).
    pub upstream_failures: u64,
    /// Symbols asked of upstreams, summed over requests.
    pub symbols_fetched: u64,
    /// Symbol lookups that joined another caller's in-flight request instead of sending one.
    pub coalesced_waits: u64,
    /// Expired quotes answered (marked `stale`) because every upstream failed.
    pub stale_served: u64,
    /// Per-symbol errors returned to callers.
    pub errors: u64,
    /// Persistent entries that could not be read (counted as misses).
    pub corrupt_entries: u64,
    /// Persistent tier operations that failed.
    pub store_errors: u64,
    /// Lookups that read the persistent tier (one per batch that missed memory).
    pub persistent_reads: u64,
    /// Quotes written to the persistent tier (behind the answers).
    pub persistent_writes: u64,
    /// Quotes not persisted because the write queue was full (they stay in memory).
    pub persistent_writes_dropped: u64,
    /// Quotes waiting to be written now.
    pub persistent_pending: usize,
    /// Answers held in memory (quotes, and symbols no upstream knows).
    pub memory_entries: usize,
    /// The most the memory tier holds.
    pub memory_capacity: usize,
    /// `null` when the persistent tier is off.
    pub persistent_entries: Option<usize>,
    /// Whether the persistent tier is in use (off when it could not be opened or failed).
    pub persistent_enabled: bool,
    /// The TTL a quote fetched now would get, in seconds.
    pub ttl_seconds: u64,
    /// The market phase now.
    pub market_phase: MarketPhase,
    /// Whether the holiday calendar covers today (outside it, weekdays count as open).
    pub calendar_covers_today: bool,
    /// History calls answered from the cache without an upstream request.
    pub history_hits: u64,
    /// History calls that needed upstream requests (bars or factors).
    pub history_misses: u64,
    /// Daily bars received from the upstreams.
    pub history_bars_fetched: u64,
    /// Upstream requests for history (bars and factors; also in `upstream_requests`).
    pub history_upstream_requests: u64,
    /// Symbols whose history is in memory.
    pub history_memory_entries: usize,
    /// A persistent tier is configured but cannot be used now (Redis down, IndexedDB closed
    /// by another page): the client goes on from memory and the upstreams.
    pub persistent_unavailable: bool,
}
