//! The fleet's push bus on Redis ([`PushBus`], features `redis` and `relay`):
//!
//! - `<prefix>push:leader` holds the id of the relay that polls (`SET NX PX`, renewed by its
//!   holder each window);
//! - `<prefix>push:want:<relay>` holds each relay's symbols (expiring with the lease), and the
//!   sorted set `<prefix>push:relays` names the relays;
//! - `<prefix>push:seq` (a hash: `epoch`, `seq`) numbers the events of the fleet, and one
//!   script numbers and publishes each batch on the channel `<prefix>push`, so that every
//!   relay receives the events in their order.

use std::time::Duration;

use super::{RedisStore, Shared};
use crate::error::Error;
use crate::platform::BoxFuture;
use crate::relay::fleet::{BusEvent, Published, PushBus};
use crate::symbol::Symbol;

/// Events waiting for the hub; more are dropped (the hub sees the gap and catches up).
const BACKLOG: usize = 1024;

impl Shared {
    fn push_key(&self, what: &str) -> String {
        format!("{}push:{what}", self.prefix)
    }

    pub(super) fn push_channel(&self) -> String {
        format!("{}push", self.prefix)
    }

    /// Hands a message of the push channel to the hub.
    pub(super) fn forward(&self, payload: &[u8]) {
        let Ok(published) = serde_json::from_slice::<Published>(payload) else {
            tracing::warn!("an unreadable push message on Redis: skipped");
            return;
        };
        let tx = self.pushed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = tx.as_ref() {
            if tx.try_send(published).is_err() {
                tracing::warn!("push events arrive faster than they are handed out: some dropped");
            }
        }
    }
}

impl PushBus for RedisStore {
    fn is_available(&self) -> bool {
        crate::store::Store::is_available(self)
    }

    fn register<'a>(
        &'a self,
        symbols: &'a [Symbol],
        hold: Duration,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            let script = redis::Script::new(
                "local t = redis.call('TIME') \
                 local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) \
                 redis.call('SET', KEYS[3], ARGV[3], 'PX', ARGV[2]) \
                 redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1]) \
                 redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now) \
                 local holder = redis.call('GET', KEYS[1]) \
                 if holder == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end \
                 if not holder then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end \
                 return 0",
            );
            let keys: Vec<String> = symbols.iter().map(Symbol::key).collect();
            let mut invocation = script.prepare_invoke();
            invocation
                .key(self.0.push_key("leader"))
                .key(self.0.push_key("relays"))
                .key(self.0.push_key(&format!("want:{}", self.0.id)))
                .arg(&self.0.id)
                .arg(hold.as_millis().max(1) as u64)
                .arg(keys.join(","));
            let leads: i64 = self
                .0
                .run(|mut c| async move { invocation.invoke_async(&mut c).await })
                .await?;
            Ok(leads == 1)
        })
    }

    fn wanted(&self) -> BoxFuture<'_, Result<Vec<Symbol>, Error>> {
        Box::pin(async move {
            let relays = self.0.push_key("relays");
            let ids: Vec<String> =
                self.0
                    .run(|mut c| async move {
                        redis::AsyncCommands::zrange(&mut c, relays, 0, -1).await
                    })
                    .await?;
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let keys: Vec<String> = (ids.iter())
                .map(|id| self.0.push_key(&format!("want:{id}")))
                .collect();
            let lists: Vec<Option<String>> = self
                .0
                .run(|mut c| async move { redis::AsyncCommands::mget(&mut c, keys).await })
                .await?;
            let mut symbols: Vec<Symbol> = (lists.iter().flatten())
                .flat_map(|list| list.split(','))
                .filter_map(Symbol::from_key)
                .collect();
            symbols.sort();
            symbols.dedup();
            Ok(symbols)
        })
    }

    fn publish(&self, events: Vec<BusEvent>) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            if events.is_empty() {
                return Ok(());
            }
            // Numbered and published in one script: every relay gets the batches in the
            // order of their numbers. The epoch is kept beside the sequence, so that losing
            // one loses the other and ids are never reused.
            let script = redis::Script::new(
                "local last = redis.call('HINCRBY', KEYS[1], 'seq', ARGV[1]) \
                 redis.call('HSETNX', KEYS[1], 'epoch', ARGV[2]) \
                 local epoch = redis.call('HGET', KEYS[1], 'epoch') \
                 redis.call('PUBLISH', ARGV[3], '{\"epoch\":' .. epoch .. ',\"first\":' .. \
                   string.format('%d', last - tonumber(ARGV[1]) + 1) .. ',\"events\":' .. ARGV[4] .. '}') \
                 return last",
            );
            let body = serde_json::to_string(&events).map_err(|e| Error::Storage(e.to_string()))?;
            let mut invocation = script.prepare_invoke();
            invocation
                .key(self.0.push_key("seq"))
                .arg(events.len())
                .arg(crate::native::random_id())
                .arg(self.0.push_channel())
                .arg(body);
            self.0
                .run(|mut c| async move { invocation.invoke_async::<i64>(&mut c).await })
                .await
                .map(|_| ())
        })
    }

    fn listen(&self) -> Option<tokio::sync::mpsc::Receiver<Published>> {
        let mut slot = self.0.pushed.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_some() {
            return None;
        }
        let (tx, rx) = tokio::sync::mpsc::channel(BACKLOG);
        *slot = Some(tx);
        Some(rx)
    }

    fn resign(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let script = redis::Script::new(
                "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end \
                 redis.call('ZREM', KEYS[2], ARGV[1]) \
                 redis.call('DEL', KEYS[3]) \
                 return 1",
            );
            let mut invocation = script.prepare_invoke();
            invocation
                .key(self.0.push_key("leader"))
                .key(self.0.push_key("relays"))
                .key(self.0.push_key(&format!("want:{}", self.0.id)))
                .arg(&self.0.id);
            let done: Result<i64, Error> = self
                .0
                .run(|mut c| async move { invocation.invoke_async(&mut c).await })
                .await;
            if let Err(e) = done {
                tracing::debug!("resigning the poll lease failed (it runs out anyway): {e}");
            }
        })
    }
}
