//! The browser client in headless Chromium: the JavaScript API against the repo's mock
//! upstream (started by `scripts/test-browser.sh` with CORS on), real fetch, real IndexedDB.
#![cfg(target_arch = "wasm32")]

use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeZone, Utc};
use gloo_net::http::Request;
use js_sys::Reflect;
use quantdb::wasm::QuantDB;
use quantdb::{Clock, Provider, QuantDb};
use serde_json::{json, Value};
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

/// Default mock settings and zeroed counters; `config` overrides settings.
async fn reset_mock(config: Value) {
    let mut all = json!({"latency_ms": 0, "failure_rate": 0.0, "down": [], "tick": 0});
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
fn options(extra: Value) -> Value {
    let mut o = json!({"sinaUrl": mock_url(), "tencentUrl": mock_url(), "eastmoneyUrl": mock_url(), "dbName": unique("db")});
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
    let warm = batch(&db, &symbols, false).await;
    assert!(warm
        .iter()
        .all(|q| q["cache_source"] == "memory" && q["cache_hit"] == true));
    assert_eq!(upstream_requests().await, 1);
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
        json!({"symbol": "abc", "code": "invalid_symbol", "error": list[1]["error"]})
    );
    assert_eq!(list[2]["code"], "not_found");
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
    let err = QuantDB::open(Some(js(&json!({"timeoutMs": -5})).unchecked_into()))
        .await
        .err()
        .unwrap();
    assert_eq!(Reflect::get(&err, &"code".into()).unwrap(), "config_error");
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
