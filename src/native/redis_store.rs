//! A persistent tier on Redis (feature `redis`), which relays share: one key a quote,
//! `<prefix><key>` (`quantdb:sh600000`), holding the same record as IndexedDB
//! ([`Record::encode`]), set with an expiry of `keep_for` (the TTL plus the stale-on-error
//! bound: a quote is only served fresh within its TTL, which the engine decides from its fetch
//! time). Any Redis URL the `redis` crate takes: `redis://`, `rediss://` (TLS), a password,
//! a database number.
//!
//! It also coordinates the fleet ([`Coordinator`]): a relay that misses a symbol takes its
//! lease (`SET <prefix>lease:<key> NX PX`) and fetches it, writes the quote, announces it on
//! the channel `<prefix>fresh` (pub/sub) and drops the lease; the relays that found the
//! lease taken wait for the announcement (looking at the store every 50 ms meanwhile) and
//! answer the quote from Redis, or fetch for themselves once the lease's time is up (its
//! holder died). A lease lasts twice the request timeout.
//!
//! Redis is never a single point of failure: every command has a short timeout; when one
//! fails the store says it is unavailable ([`Store::is_available`]), the engine goes on from
//! its memory tier and the upstreams, and a background task reconnects with backoff, after
//! which the store is used again. A relay that starts while Redis is down starts anyway.

#[cfg(feature = "relay")]
mod push;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncCommands;

use crate::error::Error;
use crate::platform::BoxFuture;
use crate::quote::Quote;
use crate::store::{Coordinator, Record, Store, Stored};
use crate::symbol::Symbol;

/// Distinguishes the stores of one process on their leases.
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A store's name on its leases, unique in the fleet: two relays on two hosts may have the
/// same process id.
fn client_id() -> String {
    format!(
        "{}-{}-{:x}",
        std::process::id(),
        NEXT_ID.fetch_add(1, Ordering::Relaxed),
        super::random_id()
    )
}

/// How long one command may take before Redis counts as unavailable.
const COMMAND_TIMEOUT: Duration = Duration::from_millis(500);
/// The longest wait between two reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Quotes in Redis: a cheap handle (clones share the connection).
#[derive(Clone)]
pub struct RedisStore(Arc<Shared>);

struct Shared {
    client: redis::Client,
    /// This client's name on its leases.
    id: String,
    /// Woken by every announcement on the channel.
    announced: tokio::sync::Notify,
    prefix: String,
    keep_for: Duration,
    connection: Mutex<Option<ConnectionManager>>,
    available: AtomicBool,
    reconnecting: AtomicBool,
    /// Where the fleet's push events go (the relay's streams), once they listen.
    #[cfg(feature = "relay")]
    pushed: Mutex<Option<tokio::sync::mpsc::Sender<crate::relay::fleet::Published>>>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.0.prefix)
            .field("available", &self.0.available.load(Ordering::Relaxed))
            .finish()
    }
}

fn storage(e: impl std::fmt::Display) -> Error {
    Error::Storage(format!("redis: {e}"))
}

impl RedisStore {
    /// A store on the Redis at `url`, its keys starting with `prefix`, kept `keep_for`.
    /// A bad URL is an error; an unreachable Redis is not (the store is unavailable until it
    /// answers). Call within a tokio runtime.
    pub async fn open(url: &str, prefix: &str, keep_for: Duration) -> Result<RedisStore, Error> {
        let client =
            redis::Client::open(url).map_err(|e| Error::Config(format!("bad Redis URL: {e}")))?;
        let store = Arc::new(Shared {
            client,
            id: client_id(),
            announced: tokio::sync::Notify::new(),
            prefix: prefix.to_string(),
            keep_for: keep_for.max(Duration::from_secs(1)),
            connection: Mutex::new(None),
            available: AtomicBool::new(false),
            reconnecting: AtomicBool::new(false),
            #[cfg(feature = "relay")]
            pushed: Mutex::new(None),
        });
        if let Err(e) = store.connect().await {
            tracing::warn!("Redis is unavailable, going on without it for now: {e}");
            store.reconnect_behind();
        }
        tokio::spawn(listen(Arc::downgrade(&store)));
        Ok(RedisStore(store))
    }
}

impl Shared {
    async fn connect(&self) -> Result<(), Error> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(COMMAND_TIMEOUT)
            .set_response_timeout(COMMAND_TIMEOUT)
            .set_number_of_retries(1);
        let mut manager = tokio::time::timeout(
            COMMAND_TIMEOUT * 2,
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await
        .map_err(|_| storage("no answer"))?
        .map_err(storage)?;
        let _: String = redis::cmd("PING")
            .query_async(&mut manager)
            .await
            .map_err(storage)?;
        *self.connection.lock().unwrap_or_else(|e| e.into_inner()) = Some(manager);
        self.available.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Reconnects in the background, with backoff, until Redis answers.
    fn reconnect_behind(self: &Arc<Self>) {
        self.available.store(false, Ordering::Relaxed);
        if self.reconnecting.swap(true, Ordering::AcqRel) {
            return;
        }
        let store = self.clone();
        tokio::spawn(async move {
            let mut wait = Duration::from_millis(100);
            loop {
                tokio::time::sleep(wait).await;
                match store.connect().await {
                    Ok(()) => {
                        tracing::info!("Redis is back");
                        break;
                    }
                    Err(e) => tracing::debug!("Redis still unavailable: {e}"),
                }
                wait = (wait * 2).min(MAX_BACKOFF);
            }
            store.reconnecting.store(false, Ordering::Release);
        });
    }

    fn key(&self, symbol: Symbol) -> String {
        format!("{}{}", self.prefix, symbol.key())
    }

    fn lease(&self, symbol: Symbol) -> String {
        format!("{}lease:{}", self.prefix, symbol.key())
    }

    fn channel(&self) -> String {
        format!("{}fresh", self.prefix)
    }

    /// Runs one command on the connection within the timeout; a connection failure or a
    /// timeout marks the store unavailable and starts reconnecting.
    async fn run<T, F>(
        self: &Arc<Self>,
        command: impl FnOnce(ConnectionManager) -> F,
    ) -> Result<T, Error>
    where
        F: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let connection = self
            .connection
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(connection) = connection.filter(|_| self.available.load(Ordering::Relaxed)) else {
            return Err(storage("unavailable"));
        };
        match tokio::time::timeout(COMMAND_TIMEOUT, command(connection)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                // A lost or refused connection makes Redis unavailable until it reconnects;
                // an error answer (a script's, a key of another type) fails this command only.
                if e.is_io_error() || e.is_unrecoverable_error() {
                    self.reconnect_behind();
                }
                Err(storage(e))
            }
            Err(_) => {
                self.reconnect_behind();
                Err(storage("no answer in time"))
            }
        }
    }
}

impl Store for RedisStore {
    fn load<'a>(&'a self, symbols: &'a [Symbol]) -> BoxFuture<'a, Result<Vec<Stored>, Error>> {
        Box::pin(async move {
            if symbols.is_empty() {
                return Ok(Vec::new());
            }
            let keys: Vec<String> = symbols.iter().map(|s| self.0.key(*s)).collect();
            let values: Vec<Option<String>> = self
                .0
                .run(|mut c| async move { c.mget(keys).await })
                .await?;
            Ok(symbols
                .iter()
                .zip(values)
                .map(|(s, v)| match v {
                    None => Stored::Missing,
                    Some(text) => Record::decode(*s, text.as_bytes()),
                })
                .collect())
        })
    }

    fn save<'a>(&'a self, quotes: &'a [Quote]) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let mut pipe = redis::pipe();
            let ms = self.0.keep_for.as_millis() as u64;
            for q in quotes {
                let Some(symbol) = q.key() else { continue };
                let record = String::from_utf8_lossy(&Record::encode(q)?).into_owned();
                pipe.pset_ex(self.0.key(symbol), record, ms).ignore();
            }
            self.0
                .run(|mut c| async move { pipe.query_async::<()>(&mut c).await })
                .await
        })
    }

    fn remove(&self, symbol: Symbol) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            let key = self.0.key(symbol);
            self.0
                .run(|mut c| async move { c.del::<_, ()>(key).await })
                .await
        })
    }

    fn clear(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            let pattern = format!("{}*", self.0.prefix);
            let keys: Vec<String> = self
                .0
                .run(|mut c| async move {
                    let mut keys = Vec::new();
                    let mut iter = c.scan_match::<_, String>(pattern).await?;
                    while let Some(k) = futures_util::StreamExt::next(&mut iter).await {
                        keys.push(k);
                    }
                    Ok(keys)
                })
                .await?;
            for chunk in keys.chunks(1000) {
                let chunk = chunk.to_vec();
                self.0
                    .run(|mut c| async move { c.del::<_, ()>(chunk).await })
                    .await?;
            }
            Ok(())
        })
    }

    fn entry_count(&self) -> Option<usize> {
        None
    }

    fn is_available(&self) -> bool {
        self.0.available.load(Ordering::Relaxed)
    }
}

/// Listens to the announcements of the fleet (pub/sub) while the store lives, reconnecting
/// with backoff; each one wakes the clients waiting for a quote. With the relay, also to the
/// fleet's push events, handed to its streams.
async fn listen(store: std::sync::Weak<Shared>) {
    let mut wait = Duration::from_millis(100);
    loop {
        let Some(shared) = store.upgrade() else {
            return;
        };
        let (client, channel) = (shared.client.clone(), shared.channel());
        #[cfg(feature = "relay")]
        let channels = [channel.clone(), shared.push_channel()];
        #[cfg(not(feature = "relay"))]
        let channels = [channel.clone()];
        drop(shared);
        let subscribed = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channels).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        match tokio::time::timeout(COMMAND_TIMEOUT * 2, subscribed).await {
            Ok(Ok(mut pubsub)) => {
                wait = Duration::from_millis(100);
                let mut messages = pubsub.on_message();
                while let Some(message) = futures_util::StreamExt::next(&mut messages).await {
                    let Some(shared) = store.upgrade() else {
                        return;
                    };
                    if message.get_channel_name() == channel {
                        shared.announced.notify_waiters();
                    } else {
                        #[cfg(feature = "relay")]
                        shared.forward(message.get_payload_bytes());
                    }
                }
            }
            _ => tracing::debug!("Redis announcements unavailable, trying again"),
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(MAX_BACKOFF);
    }
}

impl Coordinator for RedisStore {
    fn claim<'a>(
        &'a self,
        symbols: &'a [Symbol],
        hold: Duration,
    ) -> BoxFuture<'a, Result<Vec<bool>, Error>> {
        Box::pin(async move {
            // One script for the whole batch, so that it runs at once: two relays missing the
            // same chunk do not split it between them (each fetching a part).
            let script = redis::Script::new(
                "local out = {} \
                 for i, key in ipairs(KEYS) do \
                   out[i] = redis.call('SET', key, ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0 \
                 end \
                 return out",
            );
            let mut invocation = script.prepare_invoke();
            for &s in symbols {
                invocation.key(self.0.lease(s));
            }
            invocation.arg(&self.0.id).arg(hold.as_millis() as u64);
            let taken: Vec<i64> = self
                .0
                .run(|mut c| async move { invocation.invoke_async(&mut c).await })
                .await?;
            Ok(taken.into_iter().map(|t| t == 1).collect())
        })
    }

    fn announce<'a>(&'a self, symbols: &'a [Symbol]) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let keys: Vec<String> = symbols.iter().map(Symbol::key).collect();
            // The leases go back (only those still ours: one that ran out may be another
            // relay's now), and the others hear of it.
            let script = redis::Script::new(
                "for _, key in ipairs(KEYS) do \
                   if redis.call('GET', key) == ARGV[1] then redis.call('DEL', key) end \
                 end \
                 redis.call('PUBLISH', ARGV[2], ARGV[3]) \
                 return 1",
            );
            let mut invocation = script.prepare_invoke();
            for &s in symbols {
                invocation.key(self.0.lease(s));
            }
            invocation
                .arg(&self.0.id)
                .arg(self.0.channel())
                .arg(keys.join(","));
            let done: Result<i64, Error> = self
                .0
                .run(|mut c| async move { invocation.invoke_async(&mut c).await })
                .await;
            if let Err(e) = done {
                tracing::debug!("announcement lost (the others look at the store anyway): {e}");
            }
        })
    }

    fn wait(&self, at_most: Duration) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let _ = tokio::time::timeout(at_most, self.0.announced.notified()).await;
        })
    }

    fn is_available(&self) -> bool {
        self.0.available.load(Ordering::Relaxed)
    }
}
