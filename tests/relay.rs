//! The relay (`quantdb serve`) over real HTTP: endpoints, limits, CORS, slow clients,
//! shutdown, shared-cache request counts, and the relay as a provider of the native client.
#![cfg(not(target_arch = "wasm32"))]

#[path = "support/common.rs"]
mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{builder, listed_symbols, ManualClock};
use mock_upstream::{MockConfig, MockUpstream};
use quantdb::relay::{self, RelayConfig};
use quantdb::{CacheSource, Provider, QuantDb};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

struct Relay {
    url: String,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Relay {
    async fn start(db: QuantDb, config: RelayConfig) -> Relay {
        let router = relay::router(db, &config).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let done = tokio::spawn(relay::serve(
            listener,
            router,
            config.client_timeout,
            async {
                let _ = stopped.await;
            },
        ));
        Relay {
            url: relay::url_of(addr),
            addr,
            stop: Some(stop),
            done,
        }
    }

    async fn shutdown(mut self) -> std::io::Result<()> {
        let _ = self.stop.take().unwrap().send(());
        self.done.await.unwrap()
    }
}

async fn setup(config: RelayConfig) -> (MockUpstream, Relay) {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let db = builder(&mock, ManualClock::trading(), None)
        .build()
        .await
        .unwrap();
    let relay = Relay::start(db, config).await;
    (mock, relay)
}

async fn get(url: &str) -> (u16, Value) {
    let resp = reqwest::get(url).await.unwrap();
    let status = resp.status().as_u16();
    (
        status,
        serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap(),
    )
}

async fn post(url: &str, body: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (
        status,
        serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap(),
    )
}

#[tokio::test]
async fn each_endpoint_answers_with_the_library_json() {
    let (mock, relay) = setup(RelayConfig::default()).await;
    let url = &relay.url;

    let (status, q) = get(&format!("{url}/api/v1/realtime/600000")).await;
    assert_eq!(status, 200);
    assert_eq!(q["name"], "浦发银行");
    assert_eq!(
        q["current_price"].as_f64(),
        Some(mock.market_quote("sh600000").unwrap().price)
    );

    let (status, list) = get(&format!(
        "{url}/api/v1/realtime?symbols=000001,%20600000,bad,603999,sz000001"
    ))
    .await;
    assert_eq!(status, 200);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 4, "one entry per distinct symbol");
    assert_eq!(list[0]["name"], "平安银行");
    assert_eq!(
        list[1]["cache_source"], "memory",
        "600000 was fetched by the single call"
    );
    assert_eq!(
        (list[2]["symbol"].as_str(), list[2]["code"].as_str()),
        (Some("bad"), Some("invalid_symbol"))
    );
    assert_eq!(list[3]["code"], "not_found");

    let (status, list) = post(
        &format!("{url}/api/v1/realtime"),
        r#"["300750", "bj430017"]"#,
    )
    .await;
    assert_eq!((status, list[1]["name"].as_str()), (200, Some("星昊医药")));
    let (status, list) = post(
        &format!("{url}/api/v1/realtime"),
        r#"{"symbols": ["300750"]}"#,
    )
    .await;
    assert_eq!(
        (status, list[0]["cache_source"].as_str()),
        (200, Some("memory"))
    );

    let (status, stats) = get(&format!("{url}/api/v1/stats")).await;
    assert_eq!(status, 200);
    assert_eq!(
        stats["upstream_requests"].as_u64(),
        Some(mock.requests().total)
    );
    assert!(stats["hit_rate"].as_f64().unwrap() > 0.0);
    let (status, health) = get(&format!("{url}/healthz")).await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
    relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn single_symbol_errors_carry_their_status() {
    let (mock, relay) = setup(RelayConfig::default()).await;
    let (status, body) = get(&format!("{}/api/v1/realtime/abc", relay.url)).await;
    assert_eq!(
        (status, body["code"].as_str(), body["symbol"].as_str()),
        (400, Some("invalid_symbol"), Some("abc"))
    );
    let (status, body) = get(&format!("{}/api/v1/realtime/603999", relay.url)).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    for p in ["sina", "tencent", "eastmoney"] {
        mock.set_down(p, true);
    }
    let (status, body) = get(&format!("{}/api/v1/realtime/000001", relay.url)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (502, Some("upstream_unavailable"))
    );
    let (status, list) = get(&format!(
        "{}/api/v1/realtime?symbols=000001,600000",
        relay.url
    ))
    .await;
    assert_eq!(status, 200, "upstream failures stay per-symbol in a batch");
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["code"] == "upstream_unavailable"));
}

#[tokio::test]
async fn bad_requests_are_refused_with_the_reason() {
    let config = RelayConfig {
        max_symbols: 5,
        max_body_bytes: 256,
        ..RelayConfig::default()
    };
    let (mock, relay) = setup(config).await;
    let url = &relay.url;
    let cases = [
        (
            format!("{url}/api/v1/realtime?symbols=1,2,3,4,5,6"),
            400,
            "too_many_symbols",
            "the limit is 5",
        ),
        (
            format!("{url}/api/v1/realtime?symbols="),
            400,
            "bad_request",
            "no symbols",
        ),
        (
            format!("{url}/api/v1/realtime"),
            400,
            "bad_request",
            "symbols",
        ),
        (
            format!("{url}/api/v1/realtime?symbols=600000&sina_url=http://evil.example"),
            400,
            "bad_request",
            "sina_url",
        ),
        (
            format!("{url}/api/v2/nothing"),
            404,
            "not_found",
            "no such endpoint",
        ),
    ];
    for (u, status, code, needle) in cases {
        let (s, body) = get(&u).await;
        assert_eq!(
            (s, body["code"].as_str()),
            (status, Some(code)),
            "{u}: {body}"
        );
        assert!(
            body["error"].as_str().unwrap().contains(needle),
            "{u}: {body}"
        );
    }
    let too_long = format!(
        "[{}]",
        (0..60)
            .map(|i| format!("\"{:06}\"", 600000 + i))
            .collect::<Vec<_>>()
            .join(",")
    );
    let (s, body) = post(&format!("{url}/api/v1/realtime"), &too_long).await;
    assert_eq!((s, body["code"].as_str()), (413, Some("payload_too_large")));
    let (s, body) = post(
        &format!("{url}/api/v1/realtime"),
        r#"["1","2","3","4","5","6"]"#,
    )
    .await;
    assert_eq!((s, body["code"].as_str()), (400, Some("too_many_symbols")));
    let (s, body) = post(
        &format!("{url}/api/v1/realtime"),
        r#"{"symbols": "600000"}"#,
    )
    .await;
    assert_eq!((s, body["code"].as_str()), (422, Some("bad_request")));
    let (s, body) = post(&format!("{url}/api/v1/realtime"), "not json").await;
    assert_eq!((s, body["code"].as_str()), (400, Some("bad_request")));
    let resp = reqwest::Client::new()
        .delete(format!("{url}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    assert_eq!(
        serde_json::from_slice::<Value>(&resp.bytes().await.unwrap()).unwrap()["code"],
        "method_not_allowed"
    );
    assert_eq!(
        mock.requests().total,
        0,
        "no bad request reaches an upstream"
    );
}

#[tokio::test]
async fn cors_follows_the_allowed_origins() {
    let (_mock, open) = setup(RelayConfig::default()).await;
    let resp = reqwest::Client::new()
        .get(format!("{}/healthz", open.url))
        .header("origin", "http://anywhere.example")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");

    let config = RelayConfig {
        allow_origins: vec!["http://desk.example".into()],
        ..RelayConfig::default()
    };
    let (_mock2, strict) = setup(config).await;
    let client = reqwest::Client::new();
    let allowed = client
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/api/v1/realtime", strict.url),
        )
        .header("origin", "http://desk.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(allowed.status().is_success());
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "http://desk.example"
    );
    assert!(allowed.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("POST"));
    let other = client
        .get(format!("{}/healthz", strict.url))
        .header("origin", "http://other.example")
        .send()
        .await
        .unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
    assert!(relay::router(
        QuantDb::builder().persistent(false).build().await.unwrap(),
        &RelayConfig {
            allow_origins: vec!["bad\norigin".into()],
            ..RelayConfig::default()
        }
    )
    .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_clients_asking_for_the_same_hundred_symbols_cost_one_request() {
    let (mock, relay) = setup(RelayConfig::default()).await;
    mock.set_latency(Duration::from_millis(100));
    let symbols = listed_symbols(100).join(",");
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let url = format!("{}/api/v1/realtime?symbols={symbols}", relay.url);
            tokio::spawn(async move { get(&url).await })
        })
        .collect();
    for call in calls {
        let (status, list) = call.await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(
            list.as_array()
                .unwrap()
                .iter()
                .filter(|e| e["name"].is_string())
                .count(),
            100
        );
    }
    assert_eq!(
        mock.requests().total,
        1,
        "one Sina chunk for everyone in the TTL window"
    );
    assert_eq!(mock.symbols_requested().total, 100);
}

#[tokio::test]
async fn slow_clients_are_cut_off() {
    let config = RelayConfig {
        client_timeout: Duration::from_millis(300),
        ..RelayConfig::default()
    };
    let (_mock, relay) = setup(config).await;
    // A request head that never ends: the connection is closed.
    let mut slow = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut buf)).await;
    assert!(
        read.is_ok(),
        "the relay must not wait forever for a request head"
    );
    // A body that stops halfway: an error answer, not a hung handler.
    let mut slow = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    slow.write_all(b"POST /api/v1/realtime HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n[\"600").await.unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the relay must not wait forever for a body");
    let answer = String::from_utf8_lossy(&buf);
    assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");
    // A body dripped a byte at a time, each well within the timeout but the whole not.
    let mut slow = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    slow.write_all(b"POST /api/v1/realtime HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n").await.unwrap();
    let started = std::time::Instant::now();
    let drip = async {
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if slow.write_all(b" ").await.is_err() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), drip).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut buf)).await;
    let answer = String::from_utf8_lossy(&buf);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // Meanwhile others are served.
    assert_eq!(get(&format!("{}/healthz", relay.url)).await.0, 200);
}

#[tokio::test]
async fn shutdown_is_clean_and_stops_listening() {
    let (_mock, relay) = setup(RelayConfig::default()).await;
    let addr = relay.addr;
    assert_eq!(get(&format!("{}/healthz", relay.url)).await.0, 200);
    relay.shutdown().await.unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn the_native_client_can_use_a_relay() {
    let (mock, relay) = setup(RelayConfig::default()).await;
    let client = |clock| {
        QuantDb::builder()
            .clock(clock)
            .persistent(false)
            .providers([Provider::Relay])
            .base_url(Provider::Relay, relay.url.clone())
            .build()
    };
    let first = client(ManualClock::trading()).await.unwrap();
    let entries = first
        .get_realtime_data_batch(&["600000", "603999", "x"])
        .await;
    let q = entries[0].quote().unwrap();
    assert_eq!(
        (q.name.as_str(), q.source, q.cache_source),
        ("浦发银行", Provider::Sina, CacheSource::Network)
    );
    assert_eq!(
        q.current_price,
        mock.market_quote("sh600000").unwrap().price
    );
    assert_eq!(entries[1].error().unwrap().code, "not_found");
    assert_eq!(entries[2].error().unwrap().code, "invalid_symbol");
    // A second client of the same relay: the relay's cache answers, the upstream sees nothing.
    let upstream_before = mock.requests().total;
    let second = client(ManualClock::trading()).await.unwrap();
    let q2 = second.get_realtime_data("600000").await.unwrap();
    assert_eq!(q2.timestamp, q.timestamp, "the relay's fetch time is kept");
    assert_eq!(mock.requests().total, upstream_before);
    assert_eq!(second.cache_stats().upstream_requests, 1);
    let (_, stats) = get(&format!("{}/api/v1/stats", relay.url)).await;
    assert_eq!(stats["memory_hits"], json!(1));
}

#[tokio::test]
async fn a_slow_answer_times_out_with_a_json_error() {
    let config = RelayConfig {
        client_timeout: Duration::from_millis(100),
        ..RelayConfig::default()
    };
    let (mock, relay) = setup(config).await;
    mock.set_latency(Duration::from_millis(1500)); // longer than three client timeouts
    let (status, body) = get(&format!("{}/api/v1/realtime/600000", relay.url)).await;
    assert_eq!((status, body["code"].as_str()), (504, Some("timeout")));
}

#[tokio::test]
async fn a_list_with_no_valid_symbol_is_a_bad_request() {
    let (mock, relay) = setup(RelayConfig::default()).await;
    let (status, body) = get(&format!("{}/api/v1/realtime?symbols=abc,12", relay.url)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_symbol"))
    );
    assert!(body["error"].as_str().unwrap().contains("abc,12"), "{body}");
    let (status, body) = post(&format!("{}/api/v1/realtime", relay.url), r#"["x"]"#).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_symbol"))
    );
    assert_eq!(mock.requests().total, 0);
}

#[tokio::test]
async fn the_relay_passes_stale_answers_on_and_clients_do_not_keep_them() {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let clock = ManualClock::trading();
    let db = builder(&mock, clock.clone(), None).build().await.unwrap();
    let relay = Relay::start(db, RelayConfig::default()).await;
    let (status, fresh) = get(&format!("{}/api/v1/realtime/600000", relay.url)).await;
    assert_eq!((status, &fresh["stale"]), (200, &json!(false)));
    clock.advance(60);
    for p in ["sina", "tencent", "eastmoney"] {
        mock.set_down(p, true);
    }
    let (status, stale) = get(&format!("{}/api/v1/realtime/600000", relay.url)).await;
    assert_eq!((status, &stale["stale"]), (200, &json!(true)), "{stale}");
    assert_eq!(stale["timestamp"], fresh["timestamp"]);
    // A client of the relay gets it stale, and does not keep it as fresh.
    let client = QuantDb::builder()
        .clock(ManualClock::trading())
        .persistent(false)
        .providers([Provider::Relay])
        .base_url(Provider::Relay, relay.url.clone())
        .build()
        .await
        .unwrap();
    for _ in 0..2 {
        let q = client.get_realtime_data("600000").await.unwrap();
        assert!(q.stale && q.cache_source == CacheSource::Network, "{q:?}");
    }
    assert_eq!(client.cache_stats().memory_entries, 0);
    assert_eq!(client.cache_stats().upstream_requests, 2);
}

/// History through the relay: its endpoint answers what the library answers, bad requests
/// say why, the factor table is served, and clients using the relay as their history provider
/// share one upstream fetch.
#[tokio::test]
async fn history_through_the_relay() {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let clock = ManualClock::trading();
    clock.set_local("2026-11-30T16:00:00");
    mock.set_now(Some(
        chrono::DateTime::parse_from_rfc3339("2026-11-30T16:00:00+08:00").unwrap(),
    ));
    let relay_db = builder(&mock, clock.clone(), None).build().await.unwrap();
    let relay = Relay::start(relay_db, RelayConfig::default()).await;
    let direct = builder(&mock, clock.clone(), None).build().await.unwrap();
    let year = quantdb::history::HistoryRequest::range("20240101", "20241231")
        .unwrap()
        .adjust(quantdb::Adjust::Qfq);
    let expected = direct.get_stock_data("600000", year).await.unwrap();
    mock.reset_counts();

    let url = format!("{}/api/v1/history/600000", relay.url);
    let (status, body) = get(&format!("{url}?start=20240101&end=2024-12-31&adjust=qfq")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["symbol"].as_str(), body["adjust"].as_str()),
        (Some("sh600000"), Some("qfq"))
    );
    assert_eq!(body["bars"], serde_json::to_value(&expected).unwrap());
    assert_eq!(
        mock.history_counts().total,
        2,
        "one kline and one factor request"
    );
    let (status, weekly) = get(&format!("{url}?days=10&period=weekly")).await;
    assert_eq!(
        (status, weekly["period"].as_str()),
        (200, Some("weekly")),
        "{weekly}"
    );

    for (query, status, code) in [
        ("?adjust=weird", 400, "invalid_request"),
        ("?start=20240301&end=20240101", 400, "invalid_request"),
        ("?start=2024/01/01", 400, "invalid_request"),
        ("?bogus=1", 400, "bad_request"),
        ("?raw=1&days=5", 400, "bad_request"),
    ] {
        let (got, body) = get(&format!("{url}{query}")).await;
        assert_eq!(
            (got, body["code"].as_str()),
            (status, Some(code)),
            "{query}: {body}"
        );
    }
    let (status, body) = get(&format!("{}/api/v1/history/nope", relay.url)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_symbol"))
    );

    let (status, body) = get(&format!("{}/api/v1/factors/600000", relay.url)).await;
    assert_eq!(status, 200);
    let table = mock_upstream::history::factors("sh600000", clock_date()).unwrap();
    assert_eq!(body["factors"].as_array().unwrap().len(), table.len());

    let build = || {
        QuantDb::builder()
            .clock(clock.clone())
            .persistent(false)
            .providers([Provider::Relay])
            .base_url(Provider::Relay, relay.url.clone())
            .build()
    };
    // A client using the relay as its provider.
    let relay_client = || async { build().await.unwrap() };

    // Two clients using the relay as their history provider: the first costs the relay one
    // kline request (its cache already holds the factors), the second nothing.
    mock.reset_counts();
    for _ in 0..2 {
        let client = relay_client().await;
        let bars = client.get_stock_data("600000", year).await.unwrap();
        assert_eq!(bars, expected);
        let again = client.get_stock_data("600000", year).await.unwrap();
        assert_eq!(again, expected);
        assert_eq!(
            client.cache_stats().history_upstream_requests,
            2,
            "bars and factors, once"
        );
    }
    assert_eq!(
        mock.history_counts().total,
        0,
        "the relay's cache held the year"
    );

    // The relay's error (a symbol it has not cached, every upstream down) reaches its client
    // with the relay's code.
    for p in ["sina", "tencent", "eastmoney"] {
        mock.set_down(p, true);
    }
    let client = relay_client().await;
    let e = client
        .get_stock_data("000001", year)
        .await
        .map(|b| b.len())
        .unwrap_err();
    assert_eq!(e.code(), "upstream_unavailable", "{e}");
}

fn clock_date() -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(2026, 11, 30).unwrap()
}

/// `GET /metrics`: the Prometheus text format, with requests by route and status, upstream
/// requests by provider and cache lookups by tier, exact.
#[tokio::test]
async fn metrics_in_the_prometheus_format() {
    let (mock, relay) = setup(RelayConfig::default()).await;
    for _ in 0..2 {
        get(&format!("{}/api/v1/realtime/600000", relay.url)).await;
    }
    get(&format!("{}/api/v1/realtime/nope", relay.url)).await;
    let r = reqwest::get(format!("{}/metrics", relay.url))
        .await
        .unwrap();
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .contains("openmetrics-text"));
    let text = r.text().await.unwrap();
    for line in [
        r#"quantdb_http_requests_total{endpoint="/api/v1/realtime/{symbol}",status="200"} 2"#,
        r#"quantdb_http_requests_total{endpoint="/api/v1/realtime/{symbol}",status="400"} 1"#,
        r#"quantdb_upstream_requests_total{provider="sina"} 1"#,
        r#"quantdb_upstream_failures_total{provider="sina"} 0"#,
        r#"quantdb_cache_lookups_total{tier="memory"} 1"#,
        r#"quantdb_cache_lookups_total{tier="miss"} 1"#,
        "quantdb_stale_served_total 0",
        "quantdb_push_subscribers 0",
        "quantdb_persistent_available 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
    }
    assert_eq!(mock.requests().total, 1);
}
