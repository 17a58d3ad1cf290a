//! The browser client in headless Chromium: the JavaScript API against the repo's mock
//! upstream (started by `scripts/test-browser.sh` with CORS on), real fetch, real IndexedDB.
#![cfg(target_arch = "wasm32")]

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use futures_util::future::{select, Either};
use gloo_net::http::Request;
use js_sys::{Object, Reflect};
use quantdb::js::QuantDB;
use quantdb::wasm::IdbStore;
use quantdb::{
    BatchEntry, BoxFuture, CacheSource, Clock, Error, MarketStatus, Provider, QuantDb,
    QuantDbBuilder, Quote, Store, Stored, Symbol,
};
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[path = "support/browser.rs"]
mod browser;

fn mock_url() -> &'static str {
    match option_env!("QUANTDB_MOCK_URL") {
        Some(url) => url,
        None => panic!(
            "build the browser tests with QUANTDB_MOCK_URL set (scripts/test-browser.sh does)"
        ),
    }
}

fn unique(tag: &str) -> String {
    format!(
        "quantdb-web-{tag}-{}-{}",
        js_sys::Date::now(),
        js_sys::Math::random()
    )
}

async fn control(method: &str, path: &str, body: Option<Value>) -> Value {
    let url = format!("{}{path}", mock_url());
    let response = match (method, body) {
        ("POST", Some(body)) => {
            Request::post(&url)
                .body(body.to_string())
                .unwrap()
                .send()
                .await
        }
        ("POST", None) => Request::post(&url).send().await,
        _ => Request::get(&url).send().await,
    }
    .expect("the mock upstream answers");
    assert_eq!(response.status(), 200, "{path}");
    serde_json::from_str(&response.text().await.unwrap()).unwrap()
}

/// Default mock settings (its clock at [`NOW`], as the clients') and zeroed counters;
/// `config` overrides settings.
async fn reset_mock(config: Value) {
    let mut all = json!({"latency_ms": 0, "failure_rate": 0.0, "down": [], "tick": 0, "now": NOW});
    for (k, v) in config.as_object().unwrap() {
        all[k] = v.clone();
    }
    control("POST", "/__mock/config", Some(all)).await;
    control("POST", "/__mock/reset", None).await;
}

async fn upstream_requests() -> u64 {
    control("GET", "/__mock/stats", None).await["requests"]["total"]
        .as_u64()
        .unwrap()
}

async fn market(key: &str) -> Value {
    control("GET", &format!("/__mock/quote/{key}"), None).await
}

/// A plain JS object (not a `Map`), as a page would write it.
fn js(value: &Value) -> JsValue {
    use serde::Serialize;
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .unwrap()
}

fn rust(value: &JsValue) -> Value {
    serde_wasm_bindgen::from_value(value.clone()).unwrap()
}

/// Options aimed at the mock, with a fresh database name.
/// A Monday during continuous trading: every client of these tests runs on this fixed clock,
/// never on the time of day (a TTL ends at 11:30 or 13:00 whatever it says).
const NOW: &str = "2026-11-30T10:00:00+08:00";

fn options(extra: Value) -> Value {
    let mut o = json!({"sinaUrl": mock_url(), "tencentUrl": mock_url(), "eastmoneyUrl": mock_url(),
                       "dbName": unique("db"), "now": NOW});
    for (k, v) in extra.as_object().unwrap() {
        o[k] = v.clone();
    }
    o
}

async fn open(options: &Value) -> QuantDB {
    QuantDB::open(Some(js(options).unchecked_into()))
        .await
        .unwrap()
}

async fn settle(promise: js_sys::Promise) -> Result<Value, JsValue> {
    JsFuture::from(promise).await.map(|v| rust(&v))
}

async fn quote(db: &QuantDB, symbol: &str) -> Value {
    settle(db.get_realtime_data(symbol.into(), None))
        .await
        .unwrap()
}

async fn batch(db: &QuantDB, symbols: &[&str], force: bool) -> Vec<Value> {
    let opts = js(&json!({"forceRefresh": force})).unchecked_into();
    let list =
        db.get_realtime_data_batch(symbols.iter().map(|s| s.to_string()).collect(), Some(opts));
    settle(list).await.unwrap().as_array().unwrap().clone()
}

/// Numbers as f64: JS has no integer type, so `1.0` and `1` are the same number there.
fn numbers_as_f64(v: Value) -> Value {
    match v {
        Value::Number(n) => json!(n.as_f64().unwrap()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, numbers_as_f64(v)))
                .collect(),
        ),
        Value::Array(list) => Value::Array(list.into_iter().map(numbers_as_f64).collect()),
        other => other,
    }
}

fn stats(db: &QuantDB) -> Value {
    rust(&db.cache_stats().unwrap())
}

#[wasm_bindgen_test]
async fn single_and_batch_quotes_match_the_market() {
    reset_mock(json!({})).await;
    let db = open(&options(json!({}))).await;
    let q = quote(&db, "600000").await;
    let m = market("sh600000").await;
    assert_eq!(q["name"], "浦发银行");
    for (field, market_field) in [
        ("current_price", "price"),
        ("prev_close", "prev_close"),
        ("volume", "volume"),
        ("amount", "amount"),
    ] {
        assert_eq!(q[field].as_f64(), m[market_field].as_f64(), "{field}");
    }
    assert_eq!(q["cache_hit"], false);
    assert_eq!(q["cache_source"], "network");
    assert!(q["timestamp"].as_str().unwrap().ends_with("+08:00"));

    let list = batch(&db, &["000001", "300750", "bj430017"], false).await;
    let names: Vec<&str> = list.iter().map(|q| q["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["平安银行", "宁德时代", "星昊医药"]);
    assert_eq!(upstream_requests().await, 2);
}

/// The name in a one-record upstream answer.
fn name_in(provider: Provider, body: &[u8]) -> String {
    let answers = provider
        .answers(body, Utc::now(), quantdb::MarketPhase::Trading)
        .unwrap();
    answers[0].1.as_ref().unwrap().name.clone()
}

#[wasm_bindgen_test]
fn gbk_names_decode_in_the_browser_as_natively() {
    // The browser's TextDecoder and encoding_rs implement the same WHATWG `gbk` decoder.
    let names = ["浦发银行", "*ST星源", "中国平安", "沪深300", "鑫龙电器"];
    for (i, name) in names.iter().enumerate() {
        let line = format!("var hq_str_sh60000{i}=\"{name},9.090,9.110,9.050,9.150,9.030,9.040,9.050,51270289,465159863.000,375500,9.040,709400,9.030,452100,9.020,714700,9.010,862200,9.000,436555,9.050,284000,9.060,220600,9.070,110065,9.080,351295,9.090,2026-08-21,15:34:58,00\";");
        let body = encoding_rs::GBK.encode(&line).0;
        let record = format!(
            "v_sz00000{i}=\"51~{name}~00000{i}~9.00~8.89~8.85~544687~0~0{}~~20260708161454~0.11~1.24~9.03~8.79~9.00/544687/488947253~544687~48894.7253\";",
            "~0".repeat(20)
        );
        let tencent = encoding_rs::GBK.encode(&record).0;
        assert_eq!(name_in(Provider::Sina, &body), *name);
        assert_eq!(name_in(Provider::Tencent, &tencent), *name);
    }
    // Malformed bytes become U+FFFD, as natively.
    let bad = b"var hq_str_sh600000=\"\x81\x20AB,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,2026-08-21,15:34:58,00\";";
    assert_eq!(name_in(Provider::Sina, bad), "\u{fffd} AB");
}

#[wasm_bindgen_test]
async fn results_have_exactly_the_native_field_names() {
    reset_mock(json!({})).await;
    let db = open(&options(json!({"persistent": false}))).await;
    let q = quote(&db, "sh000001").await;
    let mut keys: Vec<&str> = q.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "amount",
            "cache_hit",
            "cache_source",
            "change",
            "change_percent",
            "current_price",
            "exchange",
            "high",
            "low",
            "market_status",
            "name",
            "open",
            "prev_close",
            "quote_time",
            "source",
            "stale",
            "symbol",
            "timestamp",
            "volume"
        ]
    );
    // The JS object converts back into the Rust type: the same shape as native JSON.
    let back: quantdb::Quote = serde_json::from_value(q.clone()).unwrap();
    assert_eq!(
        numbers_as_f64(serde_json::to_value(&back).unwrap()),
        numbers_as_f64(q)
    );
}

#[wasm_bindgen_test]
async fn warm_hits_cost_no_requests() {
    reset_mock(json!({})).await;
    let db = open(&options(json!({}))).await;
    let symbols = ["600000", "000001", "601318", "300750"];
    batch(&db, &symbols, false).await;
    assert_eq!(upstream_requests().await, 1);
    let reads = stats(&db)["persistent_reads"].clone();
    let warm = batch(&db, &symbols, false).await;
    assert!(warm
        .iter()
        .all(|q| q["cache_source"] == "memory" && q["cache_hit"] == true));
    assert_eq!(upstream_requests().await, 1);
    assert_eq!(
        stats(&db)["persistent_reads"],
        reads,
        "a memory hit reads no IndexedDB"
    );
    JsFuture::from(db.flush()).await.unwrap();
    let s = stats(&db);
    assert_eq!(
        (s["memory_hits"].as_u64(), s["misses"].as_u64()),
        (Some(4), Some(4))
    );
    assert_eq!(s["hit_rate"], 0.5);
    assert_eq!(s["persistent_enabled"], true);
    assert_eq!(s["persistent_entries"], 4);
}

#[wasm_bindgen_test]
async fn a_second_instance_is_served_from_indexeddb() {
    reset_mock(json!({})).await;
    let opts = options(json!({}));
    let symbols = ["600000", "000001", "300750"];
    let first = open(&opts).await;
    batch(&first, &symbols, false).await;
    JsFuture::from(first.flush()).await.unwrap();
    drop(first);
    assert_eq!(upstream_requests().await, 1);
    let second = open(&opts).await; // same dbName: a page reload
    let list = batch(&second, &symbols, false).await;
    assert!(
        list.iter()
            .all(|q| q["cache_source"] == "disk" && q["cache_hit"] == true),
        "{list:?}"
    );
    assert_eq!(
        upstream_requests().await,
        1,
        "a reload within the TTL must not go upstream"
    );
    assert_eq!(stats(&second)["persistent_hits"], 3);
    // clearCache empties IndexedDB too.
    JsFuture::from(second.clear_cache(Some("600000".into())))
        .await
        .unwrap();
    assert_eq!(stats(&second)["persistent_entries"], 2);
    JsFuture::from(second.clear_cache(None)).await.unwrap();
    let third = open(&opts).await;
    assert_eq!(stats(&third)["persistent_entries"], 0);
    batch(&third, &symbols, false).await;
    assert_eq!(upstream_requests().await, 2);
}

#[wasm_bindgen_test]
async fn force_refresh_goes_upstream() {
    reset_mock(json!({})).await;
    let db = open(&options(json!({}))).await;
    let before = quote(&db, "600000").await;
    reset_mock(json!({"tick": 3})).await;
    let refreshed = batch(&db, &["600000"], true).await;
    assert_eq!(upstream_requests().await, 1);
    assert_eq!(refreshed[0]["cache_source"], "network");
    assert_eq!(
        refreshed[0]["current_price"],
        market("sh600000").await["price"]
    );
    assert_ne!(refreshed[0]["current_price"], before["current_price"]);
}

/// A clock the test moves (Monday 2026-11-30 10:00 in Shanghai, TTL 30 s).
struct ManualClock(Mutex<DateTime<Utc>>);

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

#[wasm_bindgen_test]
async fn ttl_expiry_follows_the_injected_clock() {
    reset_mock(json!({})).await;
    let start = chrono::FixedOffset::east_opt(8 * 3600)
        .unwrap()
        .with_ymd_and_hms(2026, 11, 30, 10, 0, 0)
        .unwrap();
    let clock = Arc::new(ManualClock(Mutex::new(start.with_timezone(&Utc))));
    let mut b = QuantDb::builder()
        .clock(clock.clone())
        .db_name(unique("ttl"));
    for p in Provider::ALL {
        b = b.base_url(p, mock_url());
    }
    let db = b.build().await.unwrap();
    assert!(db.cache_stats().persistent_enabled);
    db.get_realtime_data("600000").await.unwrap();
    *clock.0.lock().unwrap() += chrono::Duration::seconds(29);
    assert!(db.get_realtime_data("600000").await.unwrap().cache_hit);
    assert_eq!(upstream_requests().await, 1);
    *clock.0.lock().unwrap() += chrono::Duration::seconds(1);
    assert!(!db.get_realtime_data("600000").await.unwrap().cache_hit);
    assert_eq!(upstream_requests().await, 2);
}

/// A quote that goes stale while still queued for writing is fetched again (a queued quote
/// is only taken when fresh). Here the clock jumps past the TTL while the IndexedDB write is
/// still under way.
#[wasm_bindgen_test]
async fn a_quote_gone_stale_while_queued_for_writing_is_fetched_again() {
    reset_mock(json!({})).await;
    let start = Utc.with_ymd_and_hms(2026, 11, 30, 2, 0, 0).unwrap(); // 10:00 in Shanghai
    let clock = Arc::new(ManualClock(Mutex::new(start)));
    let store = Watched::open(true).await; // writes wait for the test
    let db = builder()
        .clock(clock.clone())
        .store(store.clone())
        .build()
        .await
        .unwrap();
    db.get_realtime_data("600000").await.unwrap();
    *clock.0.lock().unwrap() += chrono::Duration::seconds(30);
    let again = db.get_realtime_data("600000").await;
    store.gate.as_ref().unwrap().add_permits(10);
    assert_eq!(again.unwrap().cache_source, CacheSource::Network);
    assert_eq!(upstream_requests().await, 2);
}

#[wasm_bindgen_test]
async fn duplicates_and_concurrent_callers_are_coalesced() {
    reset_mock(json!({"latency_ms": 100})).await;
    let db = open(&options(json!({"persistent": false}))).await;
    let list = batch(
        &db,
        &["000001", "sz000001", "000001.SZ", "600000", "600000"],
        false,
    )
    .await;
    assert_eq!(list.len(), 2);
    let s = control("GET", "/__mock/stats", None).await;
    assert_eq!(
        (
            s["requests"]["total"].as_u64(),
            s["symbols"]["total"].as_u64()
        ),
        (Some(1), Some(2))
    );

    reset_mock(json!({"latency_ms": 100})).await;
    let calls: Vec<_> = (0..50)
        .map(|_| JsFuture::from(db.get_realtime_data("300750".into(), None)))
        .collect();
    for result in futures_util::future::join_all(calls).await {
        assert_eq!(rust(&result.unwrap())["name"], "宁德时代");
    }
    assert_eq!(upstream_requests().await, 1);
    assert_eq!(stats(&db)["coalesced_waits"], 49);
}

#[wasm_bindgen_test]
async fn falls_back_to_the_next_provider() {
    reset_mock(json!({"down": ["sina"]})).await;
    let db = open(&options(json!({"persistent": false}))).await;
    let q = quote(&db, "601318").await;
    assert_eq!(q["source"], "tencent");
    assert_eq!(q["name"], "中国平安");
    let s = control("GET", "/__mock/stats", None).await;
    assert_eq!(
        (
            s["requests"]["sina"].as_u64(),
            s["requests"]["tencent"].as_u64()
        ),
        (Some(1), Some(1))
    );
    reset_mock(json!({})).await;
}

#[wasm_bindgen_test]
async fn invalid_symbols_are_errors_with_codes() {
    reset_mock(json!({})).await;
    let db = open(&options(json!({"persistent": false}))).await;
    let list = batch(&db, &["600000", "abc", "603999", "sx000001"], false).await;
    assert_eq!(list[0]["name"], "浦发银行");
    assert_eq!(
        list[1],
        json!({"symbol": "abc", "input": "abc", "code": "invalid_symbol", "error": list[1]["error"]})
    );
    assert_eq!(list[2]["code"], "not_found");
    assert_eq!(
        (list[2]["symbol"].as_str(), list[2]["input"].as_str()),
        (Some("sh603999"), Some("603999"))
    );
    assert_eq!(QuantDB::normalize_symbol("000001.SZ").unwrap(), "sz000001");
    let bad = QuantDB::normalize_symbol("sx000001").unwrap_err();
    assert_eq!(
        Reflect::get(&bad, &"code".into()).unwrap(),
        "invalid_symbol"
    );
    assert_eq!(list[3]["code"], "invalid_symbol");
    let err = JsFuture::from(db.get_realtime_data("12345".into(), None))
        .await
        .unwrap_err();
    assert_eq!(
        Reflect::get(&err, &"code".into()).unwrap(),
        "invalid_symbol"
    );
    assert!(err.is_instance_of::<js_sys::Error>());
    let message = Reflect::get(&err, &"message".into())
        .unwrap()
        .as_string()
        .unwrap();
    assert!(message.contains("12345"), "{message}");
}

#[wasm_bindgen_test]
async fn bad_options_are_refused() {
    let err = QuantDB::open(Some(js(&json!({"eastmoneyURL": "x"})).unchecked_into()))
        .await
        .err()
        .unwrap();
    assert_eq!(Reflect::get(&err, &"code".into()).unwrap(), "config_error");
    let message = Reflect::get(&err, &"message".into())
        .unwrap()
        .as_string()
        .unwrap();
    assert!(message.contains("eastmoneyURL"), "{message}");
    // Option errors speak of the JS names and units, and say what they got.
    for (options, expected) in [
        (
            json!({"timeoutMs": -5}),
            "timeoutMs must be from 1 to 600000 (got -5)",
        ),
        (
            json!({"memoryCapacity": 0}),
            "memoryCapacity must be from 1 to",
        ),
        (
            json!({"memoryCapacity": 2.5}),
            "memoryCapacity must be a whole number (got 2.5)",
        ),
        (
            json!({"maxConcurrentRequests": -1}),
            "maxConcurrentRequests must be from 1",
        ),
        (
            json!({"ttlClosedSeconds": -1}),
            "ttlClosedSeconds must be from 0",
        ),
        (
            json!({"maxStaleSeconds": -1}),
            "maxStaleSeconds must be from 0",
        ),
        (
            json!({"now": NOW, "clockStart": NOW}),
            "now and clockStart cannot both be given",
        ),
    ] {
        let err = QuantDB::open(Some(js(&options).unchecked_into()))
            .await
            .err()
            .unwrap();
        assert_eq!(Reflect::get(&err, &"code".into()).unwrap(), "config_error");
        let message = Reflect::get(&err, &"message".into())
            .unwrap()
            .as_string()
            .unwrap();
        assert!(message.contains(expected), "{options}: {message}");
    }
}

/// `clockStart`: a clock that starts at the given instant and runs (Saturday: closed, the
/// closed TTL), against the stopped clock of the other tests (Monday 10:00: trading).
#[wasm_bindgen_test]
async fn a_running_clock_starts_where_asked() {
    let mut o = options(json!({"clockStart": "2026-11-28T10:00:00+08:00", "persistent": false}));
    o.as_object_mut().unwrap().remove("now");
    let s = stats(&open(&o).await);
    assert_eq!(
        (s["market_phase"].as_str(), s["ttl_seconds"].as_u64()),
        (Some("closed"), Some(60))
    );
    let s = stats(&open(&options(json!({"persistent": false}))).await);
    assert_eq!(
        (s["market_phase"].as_str(), s["ttl_seconds"].as_u64()),
        (Some("trading"), Some(30))
    );
}

#[wasm_bindgen_test]
async fn without_indexeddb_the_client_works_from_memory() {
    reset_mock(json!({})).await;
    let db = browser::without_indexed_db(QuantDB::open(Some(
        js(&options(json!({}))).unchecked_into(),
    )))
    .await;
    let db = db.unwrap();
    let s = stats(&db);
    assert_eq!(s["persistent_enabled"], false);
    assert_eq!(s["persistent_entries"], Value::Null);
    assert_eq!(quote(&db, "600000").await["cache_source"], "network");
    assert_eq!(quote(&db, "600000").await["cache_source"], "memory");
}

#[wasm_bindgen_test]
async fn slow_upstreams_time_out() {
    reset_mock(json!({"latency_ms": 3000})).await;
    let db = open(&options(
        json!({"persistent": false, "providers": ["eastmoney"], "timeoutMs": 200}),
    ))
    .await;
    let err = JsFuture::from(db.get_realtime_data("600000".into(), None))
        .await
        .unwrap_err();
    assert_eq!(Reflect::get(&err, &"code".into()).unwrap(), "timeout");
    reset_mock(json!({})).await;
}

#[wasm_bindgen_test]
async fn another_page_upgrading_the_database_turns_the_tier_off_not_the_client() {
    reset_mock(json!({})).await;
    let name = unique("yield");
    let opts = options(json!({ "dbName": name }));
    let db = open(&opts).await;
    quote(&db, "600000").await;
    assert_eq!(stats(&db)["persistent_enabled"], true);
    // Another tab opens the same database at a newer version: ours closes and steps aside.
    let newer =
        browser::raw_open(&name, quantdb::wasm::IdbStore::SCHEMA_VERSION + 1, "other").await;
    let s = stats(&db);
    assert_eq!(
        (
            s["persistent_enabled"].as_bool(),
            s["persistent_entries"].as_null()
        ),
        (Some(false), Some(()))
    );
    assert_eq!(quote(&db, "600000").await["cache_source"], "memory");
    assert_eq!(quote(&db, "000001").await["cache_source"], "network");
    newer.close();
}

#[wasm_bindgen_test]
async fn only_the_configured_upstreams_are_asked() {
    reset_mock(json!({})).await;
    let url = mock_url();
    let db = open(&json!({ "tencentUrl": url, "persistent": false })).await;
    assert_eq!(quote(&db, "600000").await["source"], "tencent");
    let s = control("GET", "/__mock/stats", None).await;
    assert_eq!(
        (
            s["requests"]["total"].as_u64(),
            s["requests"]["tencent"].as_u64()
        ),
        (Some(1), Some(1))
    );
}

/// A builder aimed at the mock upstream.
fn builder() -> QuantDbBuilder {
    let now = chrono::DateTime::parse_from_rfc3339(NOW).unwrap().to_utc();
    let mut b = QuantDb::builder().clock(Arc::new(quantdb::FixedClock(now)));
    for p in Provider::ALL {
        b = b.base_url(p, mock_url());
    }
    b
}

/// `n` stocks the mock lists: sh600000, sh600001, ...
fn listed(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("sh{}", 600_000 + i)).collect()
}

fn strs(list: &[String]) -> Vec<&str> {
    list.iter().map(String::as_str).collect()
}

async fn sleep(ms: u64) {
    gloo_timers::future::sleep(Duration::from_millis(ms)).await;
}

/// Waits until `cond` holds (the persistent writer runs as a task of its own).
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if cond() {
            return;
        }
        sleep(5).await;
    }
    panic!("never happened: {what}");
}

/// IndexedDB watched by the test: counts the loads, records the size of each save and, when
/// gated, holds every save until the test adds permits.
struct Watched {
    inner: IdbStore,
    gate: Option<Semaphore>,
    loads: Cell<usize>,
    saves: RefCell<Vec<usize>>,
}

impl Watched {
    #[allow(clippy::arc_with_non_send_sync)] // the browser has one thread
    async fn open(gated: bool) -> Arc<Watched> {
        Arc::new(Watched {
            inner: IdbStore::open(&unique("watched")).await.unwrap(),
            gate: gated.then(|| Semaphore::new(0)),
            loads: Cell::new(0),
            saves: RefCell::new(Vec::new()),
        })
    }

    fn saves(&self) -> Vec<usize> {
        self.saves.borrow().clone()
    }
}

impl Store for Watched {
    fn load<'a>(&'a self, symbols: &'a [Symbol]) -> BoxFuture<'a, Result<Vec<Stored>, Error>> {
        self.loads.set(self.loads.get() + 1);
        self.inner.load(symbols)
    }
    fn save<'a>(&'a self, quotes: &'a [Quote]) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            if let Some(gate) = &self.gate {
                gate.acquire().await.unwrap().forget();
            }
            self.saves.borrow_mut().push(quotes.len());
            self.inner.save(quotes).await
        })
    }
    fn remove(&self, symbol: Symbol) -> BoxFuture<'_, Result<(), Error>> {
        self.inner.remove(symbol)
    }
    fn clear(&self) -> BoxFuture<'_, Result<(), Error>> {
        self.inner.clear()
    }
    fn entry_count(&self) -> Option<usize> {
        self.inner.entry_count()
    }
    fn is_available(&self) -> bool {
        self.inner.is_available()
    }
}

fn sources(list: &[Value]) -> Vec<&str> {
    list.iter()
        .map(|q| q["cache_source"].as_str().unwrap_or("error"))
        .collect()
}

fn all(list: &[Value], source: &str) -> bool {
    sources(list).iter().all(|s| *s == source)
}

#[wasm_bindgen_test]
async fn a_memory_hit_touches_no_indexeddb() {
    reset_mock(json!({})).await;
    let store = Watched::open(false).await;
    let db = QuantDB::from(builder().store(store.clone()).build().await.unwrap());
    let symbols = listed(100);
    let symbols = strs(&symbols);
    assert!(all(&batch(&db, &symbols, false).await, "network"));
    JsFuture::from(db.flush()).await.unwrap();
    assert_eq!(
        store.loads.get(),
        1,
        "the cold batch looked in IndexedDB once"
    );
    assert_eq!(store.saves(), [100]);
    let before = stats(&db);

    for _ in 0..5 {
        assert!(all(&batch(&db, &symbols, false).await, "memory"));
        assert_eq!(quote(&db, "600000").await["cache_source"], "memory");
        let cached = settle(db.get_cached_batch(listed(100))).await.unwrap();
        assert!(all(cached.as_array().unwrap(), "memory"));
    }
    JsFuture::from(db.flush()).await.unwrap();
    assert_eq!(store.loads.get(), 1, "memory hits read nothing");
    assert_eq!(store.saves(), [100], "memory hits write nothing");
    let after = stats(&db);
    for field in ["persistent_reads", "persistent_writes", "upstream_requests"] {
        assert_eq!(after[field], before[field], "{field}");
    }
    assert_eq!(after["memory_hits"], 5 * 101);
    assert_eq!(upstream_requests().await, 1);
}

#[wasm_bindgen_test]
async fn indexeddb_writes_happen_behind_the_answers() {
    reset_mock(json!({})).await;
    let store = Watched::open(true).await;
    let db = QuantDB::from(builder().store(store.clone()).build().await.unwrap());
    let symbols = listed(150);
    let symbols = strs(&symbols);

    // Every IndexedDB write blocks, yet the answers arrive.
    assert!(all(&batch(&db, &symbols[..100], false).await, "network"));
    // The writer takes the 100 as one batch and waits at the gate; 50 more queue behind it.
    until("the writer takes the first batch", || {
        stats(&db)["persistent_pending"] == 0
    })
    .await;
    assert!(all(&batch(&db, &symbols[100..], false).await, "network"));
    let s = stats(&db);
    assert_eq!(
        (&s["persistent_pending"], &s["persistent_writes"]),
        (&json!(50), &json!(0))
    );
    assert_eq!(store.inner.entry_count(), Some(0), "nothing written yet");
    // Quotes waiting to be written answer from memory like any other.
    assert!(all(&batch(&db, &symbols, false).await, "memory"));

    // flush() waits for the writes.
    let mut flushing = Box::pin(JsFuture::from(db.flush()));
    if let Either::Left(_) = select(&mut flushing, Box::pin(sleep(100))).await {
        panic!("flush() settled while the writes were blocked");
    }
    store.gate.as_ref().unwrap().add_permits(2);
    flushing.await.unwrap();
    assert_eq!(store.saves(), [100, 50]);
    let s = stats(&db);
    assert_eq!(
        (
            &s["persistent_pending"],
            &s["persistent_writes"],
            &s["persistent_writes_dropped"],
            &s["persistent_entries"]
        ),
        (&json!(0), &json!(150), &json!(0), &json!(150))
    );
    assert_eq!(upstream_requests().await, 2);
}

#[wasm_bindgen_test]
async fn a_reload_after_flush_paints_every_row_from_indexeddb() {
    reset_mock(json!({})).await;
    let opts = options(json!({}));
    let symbols = listed(100);
    let first = open(&opts).await;
    let fetched = batch(&first, &strs(&symbols), false).await;
    assert!(all(&fetched, "network"));
    JsFuture::from(first.flush()).await.unwrap();
    let s = stats(&first);
    assert_eq!(
        (&s["persistent_pending"], &s["persistent_writes"]),
        (&json!(0), &json!(100))
    );
    drop(first);

    // A page reload: a new client on the same database paints every row at once.
    let second = open(&opts).await;
    let painted = settle(second.get_cached_batch(symbols.clone()))
        .await
        .unwrap();
    let painted = painted.as_array().unwrap();
    assert_eq!(painted.len(), 100);
    for (p, f) in painted.iter().zip(&fetched) {
        assert_eq!(
            (&p["cache_source"], &p["cache_hit"]),
            (&json!("disk"), &json!(true))
        );
        let (mut p, mut f) = (p.clone(), f.clone());
        for q in [&mut p, &mut f] {
            q["cache_source"] = Value::Null;
            q["cache_hit"] = Value::Null;
        }
        assert_eq!(p, f, "the painted quote is the fetched one");
    }
    assert_eq!(stats(&second)["persistent_reads"], 1);
    assert_eq!(upstream_requests().await, 1, "painting asks no upstream");
}

/// A store whose writes all fail.
struct Failing;

impl Store for Failing {
    fn load<'a>(&'a self, symbols: &'a [Symbol]) -> BoxFuture<'a, Result<Vec<Stored>, Error>> {
        Box::pin(async move { Ok(vec![Stored::Missing; symbols.len()]) })
    }
    fn save<'a>(&'a self, _: &'a [Quote]) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async { Err(Error::Storage("the disk is on fire".into())) })
    }
    fn remove(&self, _: Symbol) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }
    fn clear(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }
    fn entry_count(&self) -> Option<usize> {
        Some(0)
    }
}

#[wasm_bindgen_test]
async fn flush_rejects_with_the_failed_write() {
    reset_mock(json!({})).await;
    let db = QuantDB::from(builder().store(Arc::new(Failing)).build().await.unwrap());
    assert_eq!(quote(&db, "600000").await["cache_source"], "network");
    let err = JsFuture::from(db.flush()).await.unwrap_err();
    assert!(err.is_instance_of::<js_sys::Error>());
    assert_eq!(Reflect::get(&err, &"code".into()).unwrap(), "storage_error");
    assert_eq!(Reflect::get(&err, &"name".into()).unwrap(), "QuantDBError");
    let message = Reflect::get(&err, &"message".into()).unwrap();
    assert!(
        message.as_string().unwrap().contains("on fire"),
        "{message:?}"
    );
    // Reported once: the next flush has nothing new to report.
    JsFuture::from(db.flush()).await.unwrap();
    assert_eq!(stats(&db)["store_errors"], 1);
    // Without a persistent tier there is nothing to wait for.
    let memory_only = QuantDB::from(builder().persistent(false).build().await.unwrap());
    JsFuture::from(memory_only.flush()).await.unwrap();
}

/// Quotes kept in memory, handed out exactly as they were put in (NaN included).
#[derive(Default)]
struct Held(Mutex<HashMap<Symbol, Quote>>);

impl Store for Held {
    fn load<'a>(&'a self, symbols: &'a [Symbol]) -> BoxFuture<'a, Result<Vec<Stored>, Error>> {
        let held = self.0.lock().unwrap();
        let slots = (symbols.iter())
            .map(|s| held.get(s).cloned().map_or(Stored::Missing, Stored::Found))
            .collect();
        Box::pin(async move { Ok(slots) })
    }
    fn save<'a>(&'a self, quotes: &'a [Quote]) -> BoxFuture<'a, Result<(), Error>> {
        let mut held = self.0.lock().unwrap();
        for q in quotes {
            held.insert(q.key().unwrap(), q.clone());
        }
        Box::pin(async { Ok(()) })
    }
    fn remove(&self, symbol: Symbol) -> BoxFuture<'_, Result<(), Error>> {
        self.0.lock().unwrap().remove(&symbol);
        Box::pin(async { Ok(()) })
    }
    fn clear(&self) -> BoxFuture<'_, Result<(), Error>> {
        self.0.lock().unwrap().clear();
        Box::pin(async { Ok(()) })
    }
    fn entry_count(&self) -> Option<usize> {
        Some(self.0.lock().unwrap().len())
    }
}

/// Whether `a` and `b` are the same: arrays and objects element by element, keys in the same
/// order, everything else `Object.is` (so `null` is not `NaN`, nor `0` `-0`).
fn same(a: &JsValue, b: &JsValue, at: &str) -> Result<(), String> {
    if js_sys::Array::is_array(a) && js_sys::Array::is_array(b) {
        let (a, b) = (js_sys::Array::from(a), js_sys::Array::from(b));
        if a.length() != b.length() {
            return Err(format!("{at}: {} vs {} entries", a.length(), b.length()));
        }
        return (0..a.length()).try_for_each(|i| same(&a.get(i), &b.get(i), &format!("{at}[{i}]")));
    }
    if a.is_object() && b.is_object() {
        let keys = |o: &JsValue| -> Vec<String> {
            Object::keys(o.unchecked_ref::<Object>())
                .iter()
                .filter_map(|k| k.as_string())
                .collect()
        };
        let (ka, kb) = (keys(a), keys(b));
        if ka != kb {
            return Err(format!("{at}: keys {ka:?} vs {kb:?}"));
        }
        return ka.iter().try_for_each(|k| {
            let get = |o: &JsValue| Reflect::get(o, &k.into()).unwrap();
            same(&get(a), &get(b), &format!("{at}.{k}"))
        });
    }
    if Object::is(a, b) {
        Ok(())
    } else {
        Err(format!("{at}: {a:?} vs {b:?}"))
    }
}

/// What a page gets from `JSON.parse` of the native JSON.
fn parsed<T: serde::Serialize>(value: &T) -> JsValue {
    js_sys::JSON::parse(&serde_json::to_string(value).unwrap()).unwrap()
}

#[wasm_bindgen_test]
async fn objects_are_what_json_parse_makes_of_the_native_json() {
    // Saturday 2026-11-28 12:00 in Shanghai: the market is closed until Monday, so quotes
    // fetched earlier on Saturday are fresh with a one-day TTL.
    let shanghai = FixedOffset::east_opt(8 * 3600).unwrap();
    let utc = FixedOffset::east_opt(0).unwrap();
    let minus = FixedOffset::west_opt(5 * 3600 + 30 * 60).unwrap();
    let at = |h, m, s, nanos| {
        shanghai
            .with_ymd_and_hms(2026, 11, 28, h, m, s)
            .unwrap()
            .checked_add_signed(chrono::Duration::nanoseconds(nanos))
            .unwrap()
    };
    let now = at(12, 0, 0, 0).with_timezone(&Utc);
    let statuses = [
        MarketStatus::PreOpen,
        MarketStatus::OpeningAuction,
        MarketStatus::Trading,
        MarketStatus::LunchBreak,
        MarketStatus::ClosingAuction,
        MarketStatus::AfterClose,
        MarketStatus::Closed,
        MarketStatus::Suspended,
    ];
    let providers = [
        Provider::Sina,
        Provider::Tencent,
        Provider::Eastmoney,
        Provider::Relay,
    ];
    let keys = [
        "sh600000", "sz000001", "bj430017", "sh000001", "sz300750", "sh688001", "sz002001",
        "bj830001", "sh601318", "sz399001",
    ];
    let mut quotes = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let symbol = Symbol::from_key(key).unwrap();
        let price = 10.0 + i as f64 * 1.37;
        // Times repeating (a batch fetched together) and not, in various offsets and precisions.
        let timestamp = match i {
            0..=3 => at(11, 0, 0, 417_000_000),
            4 => at(11, 0, 0, 417_000_000).with_timezone(&utc), // the same instant, other text
            5 => at(11, 30, 5, 0).with_timezone(&minus),
            6 => at(11, 30, 5, 123_456_000),
            7 => at(11, 30, 5, 123_456_789),
            _ => at(11, 59, 59, 999_000_000),
        };
        quotes.push(Quote {
            symbol: symbol.code().to_string(),
            exchange: symbol.exchange(),
            name: match i {
                1 => String::new(),
                2 => "A\"B\\C\n\u{1}😀 é\u{2028}".into(),
                3 => "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 上证".into(),
                _ => format!("测试{i}"),
            },
            current_price: if i == 2 { f64::NAN } else { price },
            change: if i == 2 { f64::INFINITY } else { -0.06 },
            change_percent: if i == 2 { f64::NEG_INFINITY } else { -0.66 },
            open: (i % 3 != 0).then_some(price - 0.1),
            high: (i % 2 == 0).then_some(price + 0.1),
            low: (i != 4).then_some(if i == 5 { f64::NAN } else { price - 0.2 }),
            prev_close: price + 0.06,
            volume: if i == 2 {
                (1 << 53) + 1
            } else {
                51_270_289 * i as u64
            },
            amount: if i == 3 {
                -0.0
            } else {
                465_159_863.25 * i as f64
            },
            quote_time: match i % 4 {
                0 => None,
                1 => Some(at(11, 0, 0, 0)),
                2 => Some(at(10, 59, 58, 0).with_timezone(&utc)),
                _ => Some(at(11, 0, 0, 5)),
            },
            timestamp,
            cache_hit: false,
            cache_source: CacheSource::Network,
            stale: false,
            source: providers[i % providers.len()],
            market_status: statuses[i % statuses.len()],
        });
    }
    let held = Arc::new(Held::default());
    held.save(&quotes).await.unwrap();
    let db = builder()
        .store(held.clone())
        .clock(Arc::new(ManualClock(Mutex::new(now))))
        .ttl_closed(Duration::from_secs(86_400))
        .build()
        .await
        .unwrap();
    let js_db = QuantDB::from(db.clone());
    let served = |source: CacheSource| -> Vec<Quote> {
        (quotes.iter().cloned())
            .map(|mut q| {
                q.cache_hit = true;
                q.cache_source = source;
                q
            })
            .collect()
    };

    // getCachedBatch: every quote, from the store.
    let cached =
        JsFuture::from(js_db.get_cached_batch(keys.iter().map(|k| k.to_string()).collect()))
            .await
            .unwrap();
    same(
        &cached,
        &parsed(&served(CacheSource::Disk)),
        "getCachedBatch",
    )
    .unwrap();

    // getRealtimeDataBatch: every quote from the store, and error entries.
    let mut asked: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    asked.extend(["bad!".into(), "600000".into(), "12345".into()]);
    let list = JsFuture::from(js_db.get_realtime_data_batch(asked.clone(), None))
        .await
        .unwrap();
    let mut expected: Vec<BatchEntry> = db.get_realtime_data_batch(&asked).await; // now from memory
    for entry in &mut expected {
        if let BatchEntry::Quote(q) = entry {
            q.cache_source = CacheSource::Disk;
        }
    }
    assert_eq!(expected.len(), keys.len() + 2);
    assert!(expected[keys.len()].error().is_some());
    same(&list, &parsed(&expected), "getRealtimeDataBatch").unwrap();

    // getRealtimeData: one quote, from memory now.
    let one = JsFuture::from(js_db.get_realtime_data("bj430017".into(), None))
        .await
        .unwrap();
    same(
        &one,
        &parsed(&served(CacheSource::Memory)[2]),
        "getRealtimeData",
    )
    .unwrap();

    // cacheStats: the native JSON too.
    same(
        &js_db.cache_stats().unwrap(),
        &parsed(&db.cache_stats()),
        "cacheStats",
    )
    .unwrap();
}

#[wasm_bindgen_test]
async fn fetch_refuses_answers_larger_than_the_request_allows() {
    use quantdb::wasm::FetchTransport;
    use quantdb::{HttpRequest, Transport, TransportError};
    let ask = |max_body| HttpRequest {
        url: format!("{}/__mock/stats", mock_url()),
        headers: Vec::new(),
        max_body,
    };
    let timeout = Duration::from_secs(5);
    let ok = FetchTransport.get(&ask(64 * 1024), timeout).await.unwrap();
    assert_eq!(ok.status, 200);
    assert!(ok.body.len() > 10);
    assert_eq!(
        FetchTransport.get(&ask(10), timeout).await,
        Err(TransportError::Failed("answer larger than 10 bytes".into()))
    );
}

/// `getStockData`: plain bar objects as the native client answers them, history requests
/// counted, the IndexedDB history tier read by a new client, bad options refused.
#[wasm_bindgen_test]
async fn stock_data_through_memory_and_indexeddb() {
    reset_mock(json!({})).await;
    let o = options(json!({}));
    let db = open(&o).await;
    let year = js(&json!({"start": "20240101", "end": "2024-12-31", "adjust": "qfq"}));
    let bars = settle(db.get_stock_data("600000".into(), Some(year.clone().unchecked_into())))
        .await
        .unwrap();
    let history = control("GET", "/__mock/stats", None).await["history"].clone();
    assert_eq!(history["eastmoney_kline"], 1);
    assert_eq!(history["sina_factors"], 1);
    let truth = control("GET", "/__mock/history/sh600000", None).await;
    let in_2024: Vec<&Value> = (truth["bars"].as_array().unwrap().iter())
        .filter(|b| b["date"].as_str().unwrap().starts_with("2024"))
        .collect();
    let bars = bars.as_array().unwrap();
    assert_eq!(bars.len(), in_2024.len());
    assert_eq!(bars[0]["date"], in_2024[0]["date"]);
    assert_eq!(bars[0]["adjust"], "qfq");
    assert_eq!(bars[0]["volume"], in_2024[0]["volume"]);
    // The same request natively: the same objects.
    let native = builder()
        .persistent(false)
        .build()
        .await
        .unwrap()
        .get_stock_data(
            "600000",
            quantdb::history::HistoryRequest::range("20240101", "20241231")
                .unwrap()
                .adjust(quantdb::Adjust::Qfq),
        )
        .await
        .unwrap();
    let from_js: Vec<quantdb::Bar> = serde_json::from_value(Value::Array(bars.clone())).unwrap();
    assert_eq!(from_js, native);
    settle(db.flush()).await.unwrap();

    // A new client on the same database: from IndexedDB, no request.
    reset_mock(json!({})).await;
    let again = open(&o).await;
    let from_idb = settle(again.get_stock_data("600000".into(), Some(year.unchecked_into())))
        .await
        .unwrap();
    assert_eq!(from_idb.as_array().unwrap(), bars);
    let history = control("GET", "/__mock/stats", None).await["history"].clone();
    assert_eq!(history["total"], 0);
    let s = stats(&again);
    assert_eq!(
        (s["history_hits"].as_u64(), s["history_misses"].as_u64()),
        (Some(1), Some(0))
    );

    for (options, code, text) in [
        (json!({"adjust": "weird"}), "invalid_request", "adjust"),
        (
            json!({"start": "2024/01/01"}),
            "invalid_request",
            "YYYYMMDD",
        ),
        (json!({"days": 0}), "config_error", "days must be from 1"),
        (json!({"dayz": 5}), "config_error", "dayz"),
    ] {
        let err =
            settle(again.get_stock_data("600000".into(), Some(js(&options).unchecked_into())))
                .await
                .unwrap_err();
        assert_eq!(
            Reflect::get(&err, &"code".into()).unwrap(),
            code,
            "{options}"
        );
        let message = Reflect::get(&err, &"message".into())
            .unwrap()
            .as_string()
            .unwrap();
        assert!(message.contains(text), "{options}: {message}");
    }
}

/// `historyProviders` picks the upstreams of history, in order.
#[wasm_bindgen_test]
async fn history_providers_are_configurable() {
    reset_mock(json!({})).await;
    let db = open(&options(
        json!({"historyProviders": ["tencent"], "persistent": false}),
    ))
    .await;
    let days = js(&json!({"days": 5}));
    let bars = settle(db.get_stock_data("600000".into(), Some(days.unchecked_into())))
        .await
        .unwrap();
    assert_eq!(bars.as_array().unwrap().len(), 5);
    let history = control("GET", "/__mock/stats", None).await["history"].clone();
    assert_eq!(
        (
            history["tencent_kline"].as_u64(),
            history["eastmoney_kline"].as_u64()
        ),
        (Some(1), Some(0))
    );
    let err = QuantDB::open(Some(
        js(&options(json!({"historyProviders": ["yahoo"]}))).unchecked_into(),
    ))
    .await
    .err()
    .unwrap();
    assert_eq!(Reflect::get(&err, &"code".into()).unwrap(), "config_error");
}

/// `subscribe` in direct mode: the current quotes at once through `onQuote`, a bad symbol
/// through `onError`, the status through `onStatus`, and `close()` (no callback after it).
#[wasm_bindgen_test]
async fn subscribe_delivers_quotes_errors_and_status() {
    use std::rc::Rc;
    use wasm_bindgen::closure::Closure;
    reset_mock(json!({})).await;
    let db = open(&options(json!({"persistent": false}))).await;
    let seen: Rc<RefCell<Vec<(String, Value)>>> = Rc::default();
    let recorder = |kind: &'static str| {
        let seen = seen.clone();
        Closure::<dyn FnMut(JsValue)>::new(move |v: JsValue| {
            seen.borrow_mut().push((kind.into(), rust(&v)))
        })
    };
    let (on_quote, on_error, on_status) =
        (recorder("quote"), recorder("error"), recorder("status"));
    let callbacks = js_sys::Object::new();
    Reflect::set(&callbacks, &"onError".into(), on_error.as_ref()).unwrap();
    Reflect::set(&callbacks, &"onStatus".into(), on_status.as_ref()).unwrap();
    let mut sub = db
        .subscribe(
            vec!["600000".into(), "000001".into(), "bad!".into()],
            on_quote.as_ref().clone().unchecked_into(),
            Some(callbacks.unchecked_into()),
        )
        .unwrap();
    for _ in 0..100 {
        if seen.borrow().iter().filter(|(k, _)| k != "status").count() == 3 {
            break;
        }
        gloo_timers::future::sleep(Duration::from_millis(20)).await;
    }
    sub.close();
    let seen = seen.borrow().clone();
    let kinds: Vec<&str> = seen.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["status", "quote", "quote", "error"], "{seen:?}");
    assert_eq!(seen[0].1, "live");
    assert_eq!(
        seen[1].1["current_price"],
        market("sh600000").await["price"]
    );
    assert_eq!(seen[3].1["code"], "invalid_symbol");
    assert_eq!(upstream_requests().await, 1);
}
