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
use crate::history::HistoryRequest;
use crate::quote::BatchEntry;
use crate::transport::{FixedClock, ShiftedClock};
use crate::upstream::Provider;

use super::objects;

/// The TypeScript declarations of the package (`types.d.ts`, checked against the Rust types
/// by `tests/types.rs`).
#[wasm_bindgen(typescript_custom_section)]
const TYPES: &str = include_str!("types.d.ts");

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(typescript_type = "OpenOptions")]
    pub type OpenOptions;
    #[wasm_bindgen(typescript_type = "FetchOptions")]
    pub type JsFetchOptions;
    #[wasm_bindgen(typescript_type = "HistoryOptions")]
    pub type JsHistoryOptions;
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
    history_providers: Option<Vec<Provider>>,
    db_name: Option<String>,
    persistent: Option<bool>,
    memory_capacity: Option<f64>,
    ttl_trading_seconds: Option<f64>,
    ttl_closed_seconds: Option<f64>,
    ttl_mode: Option<TtlMode>,
    timeout_ms: Option<f64>,
    max_concurrent_requests: Option<f64>,
    max_stale_seconds: Option<f64>,
    #[serde(default, deserialize_with = "crate::dates::de_opt_dates")]
    extra_closures: Option<Vec<NaiveDate>>,
    #[serde(default, deserialize_with = "crate::dates::de_opt_datetime")]
    now: Option<DateTime<FixedOffset>>,
    #[serde(default, deserialize_with = "crate::dates::de_opt_datetime")]
    clock_start: Option<DateTime<FixedOffset>>,
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
            b = b.providers(configured.clone());
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
        let relay = o.relay_url.is_some();
        if let Some(url) = o.relay_url {
            b = b.base_url(Provider::Relay, url);
            if o.providers.is_none() {
                b = b.providers([Provider::Relay]);
            }
        }
        if let Some(p) = o.providers {
            b = b.providers(p);
        }
        // History: the order asked, else the configured upstreams in the history order.
        let history: Vec<Provider> = [Provider::Eastmoney, Provider::Tencent, Provider::Sina]
            .into_iter()
            .filter(|p| configured.contains(p))
            .collect();
        match o.history_providers {
            Some(p) => b = b.history_providers(p),
            None if !relay && !history.is_empty() => b = b.history_providers(history),
            None => {}
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
        match (o.now, o.clock_start) {
            (Some(_), Some(_)) => {
                return Err(Error::Config(
                    "now and clockStart cannot both be given (one stops the clock, the other runs it)"
                        .into(),
                ));
            }
            (Some(now), None) => b = b.clock(Arc::new(FixedClock(now.to_utc()))),
            (None, Some(start)) => b = b.clock(Arc::new(ShiftedClock::starting_at(start.to_utc()))),
            (None, None) => {}
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

    /// Daily (weekly, monthly) bars of one symbol in date order, from the history cache
    /// (memory, then IndexedDB) and fetched only for the dates not cached yet. Rejects with an
    /// `Error` whose `.code` says why (`invalid_request` for bad dates or options).
    #[wasm_bindgen(js_name = getStockData, unchecked_return_type = "Promise<Bar[]>")]
    pub fn get_stock_data(
        &self,
        symbol: String,
        options: Option<JsHistoryOptions>,
    ) -> js_sys::Promise {
        let db = self.db.clone();
        let request = history_request(options);
        future_to_promise(async move {
            let request = request.map_err(|e| js_error(&e))?;
            let bars = db
                .get_stock_data(&symbol, request)
                .await
                .map_err(|e| js_error(&e))?;
            to_js(&bars)
        })
    }

    /// The canonical form of a symbol, as batch answers name it: `000001.SZ`, `SZ000001` and
    /// `000001` all give `sz000001`. Throws a `QuantDBError` (`invalid_symbol`) naming what
    /// is wrong.
    #[wasm_bindgen(js_name = normalizeSymbol)]
    pub fn normalize_symbol(input: &str) -> Result<String, JsValue> {
        crate::symbol::Symbol::parse(input)
            .map(|s| s.key())
            .map_err(|e| js_error(&e))
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

/// `HistoryOptions`, as Rust reads it.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct HistoryOptions {
    start: Option<String>,
    end: Option<String>,
    days: Option<f64>,
    adjust: Option<String>,
    period: Option<String>,
    force_refresh: Option<bool>,
}

fn history_request(value: Option<JsHistoryOptions>) -> Result<HistoryRequest, Error> {
    let o: HistoryOptions = options(value.map(JsValue::from))?;
    let date = |d: &Option<String>| d.as_deref().map(crate::history::parse_date).transpose();
    Ok(HistoryRequest {
        start: date(&o.start)?,
        end: date(&o.end)?,
        days: o
            .days
            .map(|n| count("days", n, 100_000.0).map(|n| n as u32))
            .transpose()?,
        adjust: o.adjust.as_deref().unwrap_or("").parse()?,
        period: o.period.as_deref().unwrap_or("daily").parse()?,
        force_refresh: o.force_refresh.unwrap_or(false),
    })
}

fn call_options(value: Option<JsFetchOptions>) -> Result<FetchOptions, Error> {
    let o: CallOptions = options(value.map(JsValue::from))?;
    Ok(FetchOptions {
        force_refresh: o.force_refresh.unwrap_or(false),
    })
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(typescript_type = "SubscribeOptions")]
    pub type JsSubscribeOptions;
}

/// A live subscription ([`QuantDB::subscribe`]); `close()` ends it.
#[wasm_bindgen]
pub struct Subscription {
    source: Option<web_sys::EventSource>,
    closed: std::rc::Rc<std::cell::Cell<bool>>,
    /// `{ closed }`, read by the JavaScript that reports a refused stream.
    token: js_sys::Object,
    _listeners: Vec<Closure<dyn FnMut(web_sys::Event)>>,
}

#[wasm_bindgen]
impl Subscription {
    /// Ends the subscription: no more callbacks (`onStatus` included: "closed" only ever
    /// says that the browser gave up the stream).
    pub fn close(&mut self) {
        if !self.closed.replace(true) {
            let _ = js_sys::Reflect::set(&self.token, &"closed".into(), &true.into());
            if let Some(source) = self.source.take() {
                source.close();
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.close();
    }
}

#[wasm_bindgen(module = "/src/js/refusal.js")]
extern "C" {
    /// Calls `on_status("closed", reason)` with the relay's reason for refusing `url` (or
    /// none), unless `token.closed` is set by then.
    #[wasm_bindgen(js_name = reportClosed)]
    fn report_closed(url: &str, on_status: &js_sys::Function, token: &js_sys::Object);
}

/// A callback option (`onError`, `onStatus`), when given.
fn callback(options: &Option<JsSubscribeOptions>, name: &str) -> Option<js_sys::Function> {
    let value = js_sys::Reflect::get(options.as_ref()?, &name.into()).ok()?;
    value.dyn_into().ok()
}

#[wasm_bindgen]
impl QuantDB {
    /// Live quotes: `onQuote(quote)` at once for each symbol, then whenever it changes;
    /// `onError(entry)` for a symbol's error; `onStatus("live" | "reconnecting" | "closed")`
    /// for the connection. In relay mode over the relay's push stream (an `EventSource`, which
    /// reconnects and resumes by itself); otherwise asking once a TTL window. Quotes land in
    /// this client's memory and IndexedDB tiers too. Returns a `Subscription`: `close()` it.
    #[wasm_bindgen(unchecked_return_type = "Subscription")]
    pub fn subscribe(
        &self,
        symbols: Vec<String>,
        #[wasm_bindgen(unchecked_param_type = "(quote: Quote) => void")] on_quote: js_sys::Function,
        options: Option<JsSubscribeOptions>,
    ) -> Result<Subscription, JsValue> {
        let on_error = callback(&options, "onError");
        let on_status = callback(&options, "onStatus");
        let closed = std::rc::Rc::new(std::cell::Cell::new(false));
        let token = js_sys::Object::new();
        let deliver = {
            let (db, on_quote, on_error) = (self.db.clone(), on_quote.clone(), on_error.clone());
            move |entry: BatchEntry| {
                let (f, value) = match &entry {
                    BatchEntry::Quote(q) => {
                        db.remember(std::slice::from_ref(q));
                        (
                            Some(&on_quote),
                            objects::quote(q).map_or_else(|| to_js(q), Ok),
                        )
                    }
                    BatchEntry::Error(e) => (on_error.as_ref(), to_js(e)),
                };
                if let (Some(f), Ok(value)) = (f, value) {
                    let _ = f.call1(&JsValue::NULL, &value);
                }
            }
        };
        let Some(relay) = self.db.relay_url() else {
            // Direct: the polling stream, on the page's event loop.
            let mut live = self.db.poll_stream(symbols);
            let still_open = closed.clone();
            wasm_bindgen_futures::spawn_local(async move {
                use futures_util::StreamExt;
                while let Some(entry) = live.next().await {
                    if still_open.get() {
                        break;
                    }
                    deliver(entry);
                }
            });
            if let Some(f) = &on_status {
                let _ = f.call1(&JsValue::NULL, &"live".into());
            }
            return Ok(Subscription {
                source: None,
                closed,
                token,
                _listeners: Vec::new(),
            });
        };
        let list: Vec<String> = (symbols.iter())
            .map(|s| String::from(js_sys::encode_uri_component(s)))
            .collect();
        let url = format!(
            "{}/api/v1/stream?symbols={}",
            relay.trim_end_matches('/'),
            list.join(",")
        );
        let source = web_sys::EventSource::new(&url)?;
        let deliver = std::rc::Rc::new(deliver);
        let entry_of = |kind: &'static str, event: &web_sys::Event| -> Option<BatchEntry> {
            let text = event
                .dyn_ref::<web_sys::MessageEvent>()?
                .data()
                .as_string()?;
            match kind {
                "quote" => serde_json::from_str(&text).ok().map(BatchEntry::Quote),
                _ => serde_json::from_str(&text).ok().map(BatchEntry::Error),
            }
        };
        let mut listeners = Vec::new();
        for kind in ["quote", "error", "open"] {
            let deliver = deliver.clone();
            let on_status = on_status.clone();
            let state_of = source.clone();
            let (url, token) = (url.clone(), token.clone());
            let listener =
                Closure::<dyn FnMut(web_sys::Event)>::new(move |event: web_sys::Event| {
                    // Our `event: error` carries a symbol's error; EventSource's own `error` event
                    // (no data) says the connection dropped.
                    match (kind, entry_of(kind, &event)) {
                        (_, Some(entry)) => deliver(entry),
                        ("open", None) | ("error", None) => {
                            let status = match (kind, state_of.ready_state()) {
                                ("open", _) => "live",
                                (_, web_sys::EventSource::CLOSED) => "closed",
                                _ => "reconnecting",
                            };
                            let Some(f) = on_status.clone() else { return };
                            if status != "closed" {
                                let _ = f.call1(&JsValue::NULL, &status.into());
                                return;
                            }
                            // The browser gives a stream up when the answer is not one (the
                            // relay refused it, say at its limit): ask once more for the reason.
                            report_closed(&url, &f, &token);
                        }
                        _ => {}
                    }
                });
            source.add_event_listener_with_callback(kind, listener.as_ref().unchecked_ref())?;
            listeners.push(listener);
        }
        Ok(Subscription {
            source: Some(source),
            closed,
            token,
            _listeners: listeners,
        })
    }
}
