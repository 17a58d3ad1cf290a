//! The builder: every setting of a client, checked when it is built.

use foldhash::{HashMap, HashMapExt};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::NaiveDate;
use lru::LruCache;
use tokio::sync::Semaphore;

use super::history::{HistoryTier, HistoryUpstream};
use super::{Inner, MaxStale, QuantDb, Upstream};
use crate::backend;
use crate::calendar::{MarketCalendar, TtlMode, TtlPolicy};
use crate::error::Error;
use crate::stats::Counters;
use crate::store::{HistoryStore, Store};
use crate::transport::{Clock, SystemClock, Transport};
use crate::upstream::Provider;
use crate::write_behind::WriteBehind;

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
    history_providers: Option<Vec<Provider>>,
    history_store: Option<Arc<dyn HistoryStore>>,
    history_memory_capacity: usize,
    max_history_bars: u32,
    poll_every: Option<Duration>,
    coordinator: Option<Arc<dyn crate::store::Coordinator>>,
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
            history_providers: None,
            history_store: None,
            history_memory_capacity: 512,
            max_history_bars: 10_000,
            poll_every: None,
            coordinator: None,
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

    /// History providers, in the order asked (default: a relay when the quote providers
    /// include one, else Eastmoney, Tencent, Sina). Factors come from Sina (or the relay).
    pub fn history_providers(mut self, providers: impl IntoIterator<Item = Provider>) -> Self {
        self.history_providers = Some(providers.into_iter().collect());
        self
    }

    /// How often [`QuantDb::subscribe`] asks for its symbols when it polls (default: once a
    /// TTL window, which is what the cache allows anyway; shorter only helps with an
    /// injected clock).
    pub fn subscribe_interval(mut self, every: Duration) -> Self {
        self.poll_every = Some(every);
        self
    }

    /// Shares upstream fetches with the other clients of the same persistent tier (relays on
    /// one Redis: `quantdb::native::RedisStore` is both): each symbol is fetched by one of
    /// them, the others take its quote from the store.
    pub fn coordinator(mut self, coordinator: Arc<dyn crate::store::Coordinator>) -> Self {
        self.coordinator = Some(coordinator);
        self
    }

    /// A custom persistent history store (tests, other backends).
    pub fn history_store(mut self, store: Arc<dyn HistoryStore>) -> Self {
        self.history_store = Some(store);
        self
    }

    /// Symbols whose daily history is kept in memory (default 512; ten years of one symbol
    /// is about 200 KB).
    pub fn history_memory_capacity(mut self, n: usize) -> Self {
        self.history_memory_capacity = n;
        self
    }

    /// The most bars one history request may span (default 10,000): a larger request is an
    /// `invalid_request` error, and nothing is fetched.
    pub fn max_history_bars(mut self, n: u32) -> Self {
        self.max_history_bars = n;
        self
    }

    /// The base URL configured for a provider (the builder's, else its environment
    /// variable), checked; `None` for the public one. It serves quotes and history alike.
    fn configured_url(&self, provider: Provider) -> Result<Option<String>, Error> {
        let url = (self.base_urls.get(&provider).cloned()).or_else(|| {
            std::env::var(provider.url_env_var())
                .ok()
                .filter(|v| !v.trim().is_empty())
        });
        match url {
            Some(u) if !(u.starts_with("http://") || u.starts_with("https://")) => Err(
                Error::Config(format!("{provider} base URL {u:?} is not an http(s) URL")),
            ),
            url => Ok(url),
        }
    }

    /// The history tier: providers in order, the factor providers, memory and the store.
    // On wasm32 the store holds JS handles (not `Send`): the browser has one thread.
    #[cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]
    async fn history_tier(&mut self) -> Result<HistoryTier, Error> {
        let memory = NonZeroUsize::new(self.history_memory_capacity)
            .ok_or_else(|| Error::Config("history_memory_capacity must be at least 1".into()))?;
        if self.max_history_bars == 0 {
            return Err(Error::Config("max_history_bars must be at least 1".into()));
        }
        let relay = self.providers.contains(&Provider::Relay);
        let providers = (self.history_providers.clone()).unwrap_or_else(|| {
            if relay {
                vec![Provider::Relay]
            } else {
                vec![Provider::Eastmoney, Provider::Tencent, Provider::Sina]
            }
        });
        if providers.is_empty() {
            return Err(Error::Config(
                "at least one history provider is needed".into(),
            ));
        }
        let mut upstreams: Vec<HistoryUpstream> = Vec::new();
        for provider in providers {
            if upstreams.iter().any(|u| u.provider == provider) {
                return Err(Error::Config(format!(
                    "history provider {provider} is listed twice"
                )));
            }
            upstreams.push(HistoryUpstream {
                provider,
                base_url: self.configured_url(provider)?,
            });
        }
        let factor_provider = if upstreams.iter().any(|u| u.provider == Provider::Relay) {
            Provider::Relay
        } else {
            Provider::Sina
        };
        let factor_upstreams = vec![HistoryUpstream {
            provider: factor_provider,
            base_url: self.configured_url(factor_provider)?,
        }];
        let store = match (self.persistent, self.history_store.take()) {
            (false, _) => None,
            (true, Some(store)) => Some(store),
            (true, None) => {
                match backend::open_history_store(self.cache_dir.as_deref(), &self.db_name).await {
                    Ok(store) => Some(store),
                    Err(e) => {
                        tracing::warn!("persistent history cache is off, memory only: {e}");
                        None
                    }
                }
            }
        };
        Ok(HistoryTier {
            upstreams,
            factor_upstreams,
            memory: Mutex::new(LruCache::new(memory)),
            provisional: Mutex::new(HashMap::new()),
            busy: Mutex::new(HashMap::new()),
            writer: store.map(|s| Arc::new(WriteBehind::new(s, self.write_queue_capacity))),
            max_bars: self.max_history_bars,
        })
    }

    /// Checks the configuration and opens the persistent tier. A persistent tier that cannot
    /// be opened (unwritable directory, IndexedDB unavailable) leaves the client memory-only,
    /// with a warning and `persistent_enabled: false` in the stats.
    // On wasm32 the store and transport hold JS handles (not `Send`): the browser has one thread.
    #[cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]
    pub async fn build(mut self) -> Result<QuantDb, Error> {
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
            let base_url = (self.configured_url(provider)?)
                .unwrap_or_else(|| provider.default_base_url().to_string());
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
        let history = self.history_tier().await?;
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
                inflight: Mutex::default(),
                reading: Mutex::default(),
                permits: Semaphore::new(self.max_concurrent_requests),
                counters: Counters::default(),
                history,
                poll_every: self.poll_every,
                coordinator: self.coordinator,
            }),
        })
    }
}
