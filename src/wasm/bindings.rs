//! The JavaScript API: `QuantDB.open(options)`, `getRealtimeData`, `getRealtimeDataBatch`,
//! `getCachedBatch`, `cacheStats`, `clearCache`, `flush`. Results are plain objects with the
//! native JSON field names.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, NaiveDate};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::calendar::TtlMode;
use crate::engine::{FetchOptions, QuantDb};
use crate::error::Error;
use crate::provider::Provider;
use crate::transport::FixedClock;

use super::objects;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &str = r#"
/** An upstream. */
export type Provider = "sina" | "tencent" | "eastmoney" | "relay";

/** Stable error codes, on rejected promises (`error.code`) and batch error entries. */
export type ErrorCode =
  | "invalid_symbol" | "not_found" | "timeout" | "upstream_error" | "parse_error"
  | "upstream_unavailable" | "config_error" | "storage_error";

export type MarketPhase =
  | "pre_open" | "opening_auction" | "trading" | "lunch_break" | "closing_auction"
  | "after_close" | "closed";

export interface OpenOptions {
  /**
   * Base URL of a quantdb relay (`quantdb serve`). Without `providers`, the client then asks
   * only the relay; it still keeps its own memory and IndexedDB tiers.
   */
  relayUrl?: string;
  /** Base URL that answers like hq.sinajs.cn, e.g. a CORS proxy that adds Sina's Referer. */
  sinaUrl?: string;
  /** Base URL that answers like qt.gtimg.cn (a CORS proxy). */
  tencentUrl?: string;
  /** Base URL that answers like push2.eastmoney.com (a CORS proxy). */
  eastmoneyUrl?: string;
  /**
   * Providers to try, in order. Default: the relay if `relayUrl` is set, else the upstreams
   * whose URL is set (sina, tencent, eastmoney order), else all three public hosts.
   */
  providers?: Provider[];
  /** IndexedDB database name. Default "quantdb". */
  dbName?: string;
  /** Keep quotes in IndexedDB across reloads. Default true. */
  persistent?: boolean;
  /** Quotes kept in memory. Default 10000. */
  memoryCapacity?: number;
  /** TTL during trading sessions, seconds. Default 30. */
  ttlTradingSeconds?: number;
  /** TTL outside trading sessions, seconds. Default 60. */
  ttlClosedSeconds?: number;
  /** "until_next_open" keeps settled after-close quotes until the next session. Default "fixed". */
  ttlMode?: "fixed" | "until_next_open";
  /** Timeout of each upstream request, milliseconds. Default 5000. */
  timeoutMs?: number;
  /** Upstream requests in flight at once. Default 8. */
  maxConcurrentRequests?: number;
  /**
   * When every upstream fails for a symbol, answer its last quote (marked `stale: true`) if
   * it is at most this many seconds old; 0 never answers stale. Default: until the next
   * trading session starts after the quote was fetched.
   */
  maxStaleSeconds?: number;
  /**
   * A testing aid: run on a clock stopped at this instant (ISO 8601 with an offset, e.g.
   * "2026-11-30T10:00:00+08:00") instead of the system clock.
   */
  now?: string;
  /** Extra exchange closure dates, "YYYY-MM-DD". */
  extraClosures?: string[];
}

export interface FetchOptions {
  /** Skip the caches and ask the upstream; the answer refreshes the caches. */
  forceRefresh?: boolean;
}

export interface Quote {
  /** The 6-digit code. */
  symbol: string;
  exchange: "SH" | "SZ" | "BJ";
  name: string;
  current_price: number;
  change: number;
  change_percent: number;
  /** null when there was no trade today. */
  open: number | null;
  high: number | null;
  low: number | null;
  prev_close: number;
  /** Shares. */
  volume: number;
  /** Yuan. */
  amount: number;
  /** The upstream's time for the quote, ISO 8601 with +08:00. */
  quote_time: string | null;
  /** When it was fetched, ISO 8601 with +08:00. */
  timestamp: string;
  cache_hit: boolean;
  cache_source: "memory" | "disk" | "network";
  /**
   * true: an expired quote, answered because every upstream failed for this symbol;
   * `cache_source` says which tier kept it. false on every other quote.
   */
  stale: boolean;
  source: Provider;
  market_status: MarketPhase | "suspended";
}

/** A batch entry for a symbol that could not be answered. */
export interface SymbolError {
  /** The symbol as it was written in the request. */
  symbol: string;
  error: string;
  code: ErrorCode;
}

export type BatchEntry = Quote | SymbolError;

export interface CacheStats {
  memory_hits: number;
  persistent_hits: number;
  misses: number;
  hit_rate: number;
  upstream_requests: number;
  upstream_failures: number;
  symbols_fetched: number;
  coalesced_waits: number;
  /** Expired quotes answered (marked stale) because every upstream failed. */
  stale_served: number;
  errors: number;
  corrupt_entries: number;
  store_errors: number;
  /**
   * Reads of IndexedDB: one per batch that missed memory, one per getCachedBatch that missed
   * memory. A memory hit reads none.
   */
  persistent_reads: number;
  /** Quotes written to IndexedDB, behind the answers. */
  persistent_writes: number;
  /** Quotes not written to IndexedDB because the write queue was full (kept in memory). */
  persistent_writes_dropped: number;
  /** Quotes waiting to be written to IndexedDB now; `flush()` waits for them. */
  persistent_pending: number;
  memory_entries: number;
  memory_capacity: number;
  /** null when the persistent tier is off. */
  persistent_entries: number | null;
  /** false when IndexedDB is unavailable or failed: the client works from memory. */
  persistent_enabled: boolean;
  ttl_seconds: number;
  market_phase: MarketPhase;
  calendar_covers_today: boolean;
}

/** What a QuantDB promise rejects with. */
export interface QuantDBError extends Error {
  code: ErrorCode;
}
"#;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(typescript_type = "OpenOptions")]
    pub type OpenOptions;
    #[wasm_bindgen(typescript_type = "FetchOptions")]
    pub type JsFetchOptions;
}

/// `OpenOptions`, as Rust reads it. Unknown keys are refused so a typo is not silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Options {
    relay_url: Option<String>,
    sina_url: Option<String>,
    tencent_url: Option<String>,
    eastmoney_url: Option<String>,
    providers: Option<Vec<Provider>>,
    db_name: Option<String>,
    persistent: Option<bool>,
    memory_capacity: Option<f64>,
    ttl_trading_seconds: Option<f64>,
    ttl_closed_seconds: Option<f64>,
    ttl_mode: Option<TtlMode>,
    timeout_ms: Option<f64>,
    max_concurrent_requests: Option<f64>,
    max_stale_seconds: Option<f64>,
    extra_closures: Option<Vec<NaiveDate>>,
    now: Option<DateTime<FixedOffset>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CallOptions {
    force_refresh: Option<bool>,
}

/// Reads an optional options object (`undefined` and `null` mean defaults). It goes through
/// JSON so that every key is seen and an unknown one (a typo) is refused.
fn options<T: Default + serde::de::DeserializeOwned>(value: Option<JsValue>) -> Result<T, Error> {
    let bad = |e: &dyn std::fmt::Display| Error::Config(format!("bad options: {e}"));
    match value {
        Some(v) if !v.is_undefined() && !v.is_null() => {
            let json: serde_json::Value = serde_wasm_bindgen::from_value(v).map_err(|e| bad(&e))?;
            serde_json::from_value(json).map_err(|e| bad(&e))
        }
        _ => Ok(T::default()),
    }
}

/// A number option in its JS name and unit, checked against its range: the error says which
/// option, what it must be, and what it got (`timeoutMs must be from 1 to 600000 (got -5)`).
fn in_range(name: &str, value: f64, range: std::ops::RangeInclusive<f64>) -> Result<f64, Error> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(Error::Config(format!(
            "{name} must be from {} to {} (got {value})",
            range.start(),
            range.end()
        )))
    }
}

/// A whole number option (`memoryCapacity`, `maxConcurrentRequests`).
fn count(name: &str, value: f64, max: f64) -> Result<usize, Error> {
    let n = in_range(name, value, 1.0..=max)?;
    if n.fract() != 0.0 {
        return Err(Error::Config(format!(
            "{name} must be a whole number (got {value})"
        )));
    }
    Ok(n as usize)
}

/// The longest TTL or staleness accepted, in seconds: a year.
const YEAR_SECS: f64 = 366.0 * 86_400.0;

/// A JS `Error` carrying `.code` (and the message of the Rust error).
fn js_error(err: &Error) -> JsValue {
    let e = js_sys::Error::new(&err.to_string());
    e.set_name("QuantDBError");
    let _ = js_sys::Reflect::set(&e, &"code".into(), &err.code().into());
    e.into()
}

/// What `JSON.parse` makes of the native JSON: plain objects, `null` for `None`. Quotes go
/// through [`objects`], faster.
fn to_js<T: Serialize>(value: &T) -> Result<JsValue, JsValue> {
    let fail = |e: &dyn std::fmt::Display| {
        js_error(&Error::Config(format!("cannot convert the answer: {e}")))
    };
    let text = serde_json::to_string(value).map_err(|e| fail(&e))?;
    js_sys::JSON::parse(&text).map_err(|e| fail(&format!("{e:?}")))
}

/// A realtime quote client for the browser, with a memory tier and an IndexedDB tier.
#[wasm_bindgen]
pub struct QuantDB {
    db: QuantDb,
}

impl From<QuantDb> for QuantDB {
    /// Hands a client built in Rust (with its own store, transport or clock) to JavaScript.
    fn from(db: QuantDb) -> Self {
        QuantDB { db }
    }
}

#[wasm_bindgen]
impl QuantDB {
    /// Opens a client. IndexedDB problems (unavailable, blocked, quota) leave it memory-only:
    /// `cacheStats().persistent_enabled` says which. Rejects only on invalid options.
    pub async fn open(options: Option<OpenOptions>) -> Result<QuantDB, JsValue> {
        Self::open_inner(options.map(JsValue::from))
            .await
            .map_err(|e| js_error(&e))
    }

    async fn open_inner(value: Option<JsValue>) -> Result<QuantDB, Error> {
        let o: Options = options(value)?;
        let mut b = QuantDb::builder();
        // A page can only reach upstreams through the URLs it configures: without an explicit
        // provider list, ask just those (a relay alone, or the proxied upstreams).
        let configured: Vec<Provider> = [
            (Provider::Sina, &o.sina_url),
            (Provider::Tencent, &o.tencent_url),
            (Provider::Eastmoney, &o.eastmoney_url),
        ]
        .into_iter()
        .filter_map(|(p, url)| url.as_ref().map(|_| p))
        .collect();
        if o.providers.is_none() && o.relay_url.is_none() && !configured.is_empty() {
            b = b.providers(configured);
        }
        for (provider, url) in [
            (Provider::Sina, o.sina_url),
            (Provider::Tencent, o.tencent_url),
            (Provider::Eastmoney, o.eastmoney_url),
        ] {
            if let Some(url) = url {
                b = b.base_url(provider, url);
            }
        }
        if let Some(url) = o.relay_url {
            b = b.base_url(Provider::Relay, url);
            if o.providers.is_none() {
                b = b.providers([Provider::Relay]);
            }
        }
        if let Some(p) = o.providers {
            b = b.providers(p);
        }
        if let Some(name) = o.db_name {
            b = b.db_name(name);
        }
        if let Some(on) = o.persistent {
            b = b.persistent(on);
        }
        if let Some(n) = o.memory_capacity {
            b = b.memory_capacity(count("memoryCapacity", n, 10_000_000.0)?);
        }
        if let Some(s) = o.ttl_trading_seconds {
            let s = in_range("ttlTradingSeconds", s, 0.0..=YEAR_SECS)?;
            b = b.ttl_trading(Duration::from_secs_f64(s));
        }
        if let Some(s) = o.ttl_closed_seconds {
            let s = in_range("ttlClosedSeconds", s, 0.0..=YEAR_SECS)?;
            b = b.ttl_closed(Duration::from_secs_f64(s));
        }
        if let Some(mode) = o.ttl_mode {
            b = b.ttl_mode(mode);
        }
        if let Some(ms) = o.timeout_ms {
            let ms = in_range("timeoutMs", ms, 1.0..=600_000.0)?;
            b = b.timeout(Duration::from_secs_f64(ms / 1000.0));
        }
        if let Some(n) = o.max_concurrent_requests {
            b = b.max_concurrent_requests(count("maxConcurrentRequests", n, 1000.0)?);
        }
        if let Some(s) = o.max_stale_seconds {
            let s = in_range("maxStaleSeconds", s, 0.0..=YEAR_SECS)?;
            b = b.max_stale(Duration::from_secs_f64(s));
        }
        if let Some(now) = o.now {
            b = b.clock(Arc::new(FixedClock(now.to_utc())));
        }
        if let Some(dates) = o.extra_closures {
            b = b.extra_closures(dates);
        }
        Ok(QuantDB {
            db: b.build().await?,
        })
    }

    /// One quote. Rejects with an `Error` whose `.code` says why.
    #[wasm_bindgen(js_name = getRealtimeData, unchecked_return_type = "Promise<Quote>")]
    pub fn get_realtime_data(
        &self,
        symbol: String,
        options: Option<JsFetchOptions>,
    ) -> js_sys::Promise {
        let db = self.db.clone();
        let options = call_options(options);
        future_to_promise(async move {
            let quote = db
                .get_realtime_data_with(&symbol, options.map_err(|e| js_error(&e))?)
                .await
                .map_err(|e| js_error(&e))?;
            objects::quote(&quote).map_or_else(|| to_js(&quote), Ok)
        })
    }

    /// One entry per distinct symbol, in request order: a `Quote`, or a `SymbolError`.
    #[wasm_bindgen(js_name = getRealtimeDataBatch, unchecked_return_type = "Promise<BatchEntry[]>")]
    pub fn get_realtime_data_batch(
        &self,
        symbols: Vec<String>,
        options: Option<JsFetchOptions>,
    ) -> js_sys::Promise {
        let db = self.db.clone();
        let options = call_options(options);
        future_to_promise(async move {
            let entries = db
                .get_realtime_data_batch_with(&symbols, options.map_err(|e| js_error(&e))?)
                .await;
            objects::entries(&entries).map_or_else(|| to_js(&entries), Ok)
        })
    }

    /// What the memory and IndexedDB tiers hold for these symbols, fresh or not, with no
    /// network request: paint a dashboard at once, then refresh. Uncached and invalid symbols
    /// are left out; `timestamp` says how old each quote is.
    #[wasm_bindgen(js_name = getCachedBatch, unchecked_return_type = "Promise<Quote[]>")]
    pub fn get_cached_batch(&self, symbols: Vec<String>) -> js_sys::Promise {
        let db = self.db.clone();
        future_to_promise(async move {
            let quotes = db.get_cached(&symbols).await;
            objects::quotes(&quotes).map_or_else(|| to_js(&quotes), Ok)
        })
    }

    /// Hits, misses, hit rate, upstream requests, entries per tier, the TTL and market phase now.
    #[wasm_bindgen(js_name = cacheStats, unchecked_return_type = "CacheStats")]
    pub fn cache_stats(&self) -> Result<JsValue, JsValue> {
        to_js(&self.db.cache_stats())
    }

    /// Waits until every quote fetched so far is in IndexedDB. Writes happen behind the
    /// answers; call this before tearing down (e.g. in a `pagehide` handler; best effort, the
    /// page may go before it settles). Rejects with the first write that failed since the
    /// last flush.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn flush(&self) -> js_sys::Promise {
        let db = self.db.clone();
        future_to_promise(async move {
            db.flush()
                .await
                .map(|()| JsValue::UNDEFINED)
                .map_err(|e| js_error(&e))
        })
    }

    /// Clears every tier, or one symbol's entries.
    #[wasm_bindgen(js_name = clearCache, unchecked_return_type = "Promise<void>")]
    pub fn clear_cache(&self, symbol: Option<String>) -> js_sys::Promise {
        let db = self.db.clone();
        future_to_promise(async move {
            let done = match symbol {
                Some(s) => db.clear_symbol(&s).await,
                None => db.clear_cache().await,
            };
            done.map(|()| JsValue::UNDEFINED).map_err(|e| js_error(&e))
        })
    }
}

fn call_options(value: Option<JsFetchOptions>) -> Result<FetchOptions, Error> {
    let o: CallOptions = options(value.map(JsValue::from))?;
    Ok(FetchOptions {
        force_refresh: o.force_refresh.unwrap_or(false),
    })
}
