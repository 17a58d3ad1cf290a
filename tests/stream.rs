//! Push over Server-Sent Events from the relay, over real HTTP against the mock upstream, on
//! an injected clock: the current quotes at once, changes pushed, one upstream request per
//! chunk however many subscribers, `Last-Event-ID` resume, slow subscribers dropped, limits,
//! shutdown.
#![cfg(not(target_arch = "wasm32"))]

#[path = "support/common.rs"]
mod common;
#[path = "support/sse.rs"]
mod sse;

use std::sync::Arc;
use std::time::Duration;

use common::{builder, listed_symbols, ManualClock};
use mock_upstream::{MockConfig, MockUpstream};
use quantdb::relay::{self, RelayConfig, StreamConfig, Streams};
use serde_json::Value;
use sse::{SseClient, SseEvent};
use tokio::sync::oneshot;

struct Relay {
    url: String,
    streams: Streams,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(mock: &MockUpstream, clock: Arc<ManualClock>, stream: StreamConfig) -> Relay {
    let db = builder(mock, clock, None).build().await.unwrap();
    let config = RelayConfig {
        stream,
        ..RelayConfig::default()
    };
    let (router, streams) = relay::router_with_streams(db, &config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = relay::url_of(listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let closing = streams.clone();
    let done = tokio::spawn(relay::serve(
        listener,
        router,
        config.client_timeout,
        async move {
            let _ = stopped.await;
            closing.close();
        },
    ));
    Relay {
        url,
        streams,
        stop: Some(stop),
        done,
    }
}

fn fast() -> StreamConfig {
    StreamConfig {
        poll_every: Some(Duration::from_millis(20)),
        ..StreamConfig::default()
    }
}

/// The next TTL window: the clock moves past the trading TTL and the prices move.
fn next_window(mock: &MockUpstream, clock: &ManualClock, tick: u64) {
    mock.set_tick(tick);
    clock.advance(31);
}

#[tokio::test]
async fn the_current_quotes_at_once_then_every_change() {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let clock = ManualClock::trading();
    let relay = start(&mock, clock.clone(), fast()).await;
    let url = format!("{}/api/v1/stream?symbols=600000,000001.SZ,bad!", relay.url);
    let mut client = SseClient::open(&url, None).await;
    let first = client.take(3).await;
    assert_eq!(
        first[0].retry,
        Some(3000),
        "reconnection advice on the first event"
    );
    assert_eq!(
        first.iter().map(|e| e.event.as_str()).collect::<Vec<_>>(),
        ["quote", "quote", "error"]
    );
    assert_eq!(
        first[0].data["current_price"],
        mock.market_quote("sh600000").unwrap().price
    );
    assert_eq!(first[1].data["symbol"], "000001");
    assert_eq!(
        (
            first[2].data["code"].as_str(),
            first[2].data["input"].as_str()
        ),
        (Some("invalid_symbol"), Some("bad!"))
    );
    let start_id = first[0].id.unwrap();
    assert!(first.iter().all(|e| e.id == Some(start_id)));

    next_window(&mock, &clock, 1);
    let changes = client.take(2).await;
    let mut keys: Vec<String> = changes
        .iter()
        .map(|e| format!("{}", e.data["symbol"]))
        .collect();
    keys.sort();
    assert_eq!(keys, ["\"000001\"", "\"600000\""]);
    for e in &changes {
        assert_eq!(e.event, "quote");
        assert!(e.id.unwrap() > start_id);
        let key = if e.data["symbol"] == "600000" {
            "sh600000"
        } else {
            "sz000001"
        };
        assert_eq!(
            e.data["current_price"],
            mock.market_quote(key).unwrap().price,
            "{key} at tick 1"
        );
    }
    assert_eq!(relay.streams.subscribers(), 1);
    drop(client);
    relay.stop.unwrap().send(()).unwrap();
    relay.done.await.unwrap().unwrap();
}

/// Twenty subscribers on the same hundred symbols: every change reaches each of them, in
/// order, and the upstream sees one request a window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_poll_for_every_subscriber() {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let clock = ManualClock::trading();
    let relay = start(&mock, clock.clone(), fast()).await;
    let symbols = listed_symbols(100);
    let url = format!("{}/api/v1/stream?symbols={}", relay.url, symbols.join(","));
    let mut clients = Vec::new();
    for _ in 0..20 {
        let mut c = SseClient::open(&url, None).await;
        assert_eq!(c.take(100).await.len(), 100);
        clients.push(c);
    }
    assert_eq!(
        mock.requests().total,
        1,
        "the snapshots came from one fetch"
    );
    for window in 1..=3 {
        mock.reset_counts();
        next_window(&mock, &clock, window);
        for c in &mut clients {
            let events = c.take(100).await;
            assert!(events.iter().all(|e| e.event == "quote"));
            assert!(events.windows(2).all(|w| w[0].id < w[1].id), "in order");
            let prices: Vec<f64> = events
                .iter()
                .map(|e| e.data["current_price"].as_f64().unwrap())
                .collect();
            let expected: Vec<f64> = events
                .iter()
                .map(|e| {
                    let code = e.data["symbol"].as_str().unwrap();
                    let key = symbols.iter().find(|k| k.ends_with(code)).unwrap();
                    mock.market_quote(key).unwrap().price
                })
                .collect();
            assert_eq!(prices, expected, "window {window}");
        }
        assert_eq!(
            mock.requests().total,
            1,
            "one request a window for 20 subscribers"
        );
    }
}

#[tokio::test]
async fn last_event_id_resumes_without_a_gap() {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let clock = ManualClock::trading();
    let relay = start(&mock, clock.clone(), fast()).await;
    let url = format!("{}/api/v1/stream?symbols=600000,000001", relay.url);
    // A second subscriber keeps the poll going while the first is away.
    let mut watcher = SseClient::open(&url, None).await;
    watcher.take(2).await;
    let mut client = SseClient::open(&url, None).await;
    let seen = client.take(2).await[1].raw_id.clone().unwrap();
    drop(client);
    next_window(&mock, &clock, 1);
    let missed = watcher.take(2).await;
    next_window(&mock, &clock, 2);
    let missed_too = watcher.take(2).await;

    let mut back = SseClient::open(&url, Some(&seen)).await;
    let replayed = back.take(4).await;
    let ids = |events: &[SseEvent]| events.iter().map(|e| e.id.unwrap()).collect::<Vec<_>>();
    assert_eq!(
        ids(&replayed),
        [ids(&missed), ids(&missed_too)].concat(),
        "exactly the missed events"
    );
    assert_eq!(
        replayed.iter().map(|e| e.data.clone()).collect::<Vec<_>>(),
        [missed, missed_too]
            .concat()
            .iter()
            .map(|e| e.data.clone())
            .collect::<Vec<_>>()
    );
    // An id the relay no longer knows: the current quotes again.
    let epoch = seen.split_once('-').unwrap().0;
    let mut fresh = SseClient::open(&url, Some(&format!("{epoch}-1000000"))).await;
    let again = fresh.take(2).await;
    assert_eq!(
        again[0].data["current_price"],
        mock.market_quote("sh600000").unwrap().price
    );
    // An id of another relay, or of this one before a restart (its sequence still small):
    // the current quotes, not a replay from a sequence that means nothing here.
    let mut other = SseClient::open(&url, Some("12345-1")).await;
    let current = other.take(2).await;
    assert!(
        current.iter().all(|e| e.id == again[0].id),
        "the current quotes, with the last id"
    );
    assert_eq!(
        current[0].data["current_price"],
        mock.market_quote("sh600000").unwrap().price
    );
}

/// A subscriber that does not read is dropped with a final event once its buffer is full;
/// the others keep getting every change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_subscriber_is_dropped_and_the_others_go_on() {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let clock = ManualClock::trading();
    let config = StreamConfig {
        stream_buffer: 8,
        ..fast()
    };
    let relay = start(&mock, clock.clone(), config).await;
    let symbols = listed_symbols(200);
    let url = format!("{}/api/v1/stream?symbols={}", relay.url, symbols.join(","));
    let mut stalled = SseClient::open(&url, None).await;
    let mut reader = SseClient::open(&url, None).await;
    reader.take(200).await;
    let mut window = 0;
    while relay.streams.subscribers() == 2 {
        window += 1;
        assert!(window < 2_000, "the stalled subscriber was never dropped");
        next_window(&mock, &clock, window);
        let events = reader.take(200).await;
        assert!(events.iter().all(|e| e.event == "quote"), "window {window}");
    }
    // The reader still gets every change.
    next_window(&mock, &clock, window + 1);
    assert_eq!(reader.take(200).await.len(), 200);
    // What the stalled one finally reads ends with the reason.
    let mut last = None;
    while let Some(e) = stalled.next().await {
        last = Some(e);
    }
    let last = last.unwrap();
    assert_eq!(
        (last.event.as_str(), last.data["code"].as_str()),
        ("error", Some("too_slow"))
    );
}

#[tokio::test]
async fn limits_and_shutdown() {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let clock = ManualClock::trading();
    let config = StreamConfig {
        max_streams: 1,
        ..fast()
    };
    let relay = start(&mock, clock.clone(), config).await;
    let url = format!("{}/api/v1/stream?symbols=600000", relay.url);
    let mut first = SseClient::open(&url, None).await;
    first.take(1).await;
    let refused = reqwest::get(&url).await.unwrap();
    assert_eq!(refused.status(), 503);
    let body: Value = serde_json::from_slice(&refused.bytes().await.unwrap()).unwrap();
    assert_eq!(body["code"], "too_many_streams");
    for bad in ["?symbols=", "?symbols=x!", "?nope=1"] {
        let r = reqwest::get(format!("{}/api/v1/stream{bad}", relay.url))
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
    // POST with a long list works like GET (once the first stream is gone).
    drop(first);
    tokio::time::timeout(Duration::from_secs(5), async {
        while relay.streams.subscribers() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("a closed stream is forgotten");
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/stream", relay.url))
        .header("content-type", "application/json")
        .body(r#"["600000","000001"]"#)
        .send()
        .await
        .unwrap();
    let mut posted = SseClient {
        response,
        buffer: Vec::new(),
    };
    assert_eq!(posted.take(2).await.len(), 2);
    // Shutdown ends the stream cleanly and the relay stops.
    relay.stop.unwrap().send(()).unwrap();
    assert!(posted.next().await.is_none(), "the stream ends");
    relay.done.await.unwrap().unwrap();
}

/// `QuantDb::subscribe` through a relay: the relay's push stream, the quotes kept in the
/// client's own memory tier.
#[tokio::test]
async fn a_native_client_follows_the_relay_stream() {
    use futures_util::StreamExt;
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let clock = ManualClock::trading();
    let relay = start(&mock, clock.clone(), fast()).await;
    let client = quantdb::QuantDb::builder()
        .clock(clock.clone())
        .persistent(false)
        .providers([quantdb::Provider::Relay])
        .base_url(quantdb::Provider::Relay, relay.url.clone())
        .build()
        .await
        .unwrap();
    let mut live = client.subscribe(&["600000", "000001", "bad!"]);
    let mut first = Vec::new();
    for _ in 0..3 {
        first.push(
            tokio::time::timeout(Duration::from_secs(10), live.next())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    assert_eq!(
        first[0].quote().unwrap().current_price,
        mock.market_quote("sh600000").unwrap().price
    );
    assert_eq!(first[2].error().unwrap().code, "invalid_symbol");
    next_window(&mock, &clock, 1);
    let pushed = tokio::time::timeout(Duration::from_secs(10), live.next())
        .await
        .unwrap()
        .unwrap();
    let q = pushed.quote().unwrap();
    let key = format!("{}{}", q.exchange.to_string().to_lowercase(), q.symbol);
    assert_eq!(
        q.current_price,
        mock.market_quote(&key).unwrap().price,
        "{key} at tick 1"
    );
    // The pushed quote is in the client's memory: no request for it.
    let requests = mock.requests().total;
    let kept = client.get_realtime_data(&key).await.unwrap();
    assert_eq!(
        (kept.current_price, kept.cache_source),
        (q.current_price, quantdb::CacheSource::Memory)
    );
    assert_eq!(mock.requests().total, requests);
}

/// The next entry, within 10 s.
async fn within(
    next: impl std::future::Future<Output = Option<quantdb::BatchEntry>>,
) -> quantdb::BatchEntry {
    tokio::time::timeout(Duration::from_secs(10), next)
        .await
        .unwrap()
        .unwrap()
}

/// `QuantDb::subscribe` straight to the upstreams: the batch asked each window, changes only.
#[tokio::test]
async fn a_direct_client_polls_once_a_window() {
    use futures_util::StreamExt;
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let clock = ManualClock::trading();
    let client = builder(&mock, clock.clone(), None)
        .subscribe_interval(Duration::from_millis(20))
        .build()
        .await
        .unwrap();
    let mut live = client.subscribe(&["600000", "000001"]);
    let a = within(live.next()).await;
    let b = within(live.next()).await;
    assert!(a.quote().is_some() && b.quote().is_some());
    assert_eq!(mock.requests().total, 1);
    // Within the TTL nothing changes and nothing is asked upstream; then a new window.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(mock.requests().total, 1);
    next_window(&mock, &clock, 1);
    let c = within(live.next()).await;
    assert_eq!(mock.requests().total, 2, "one batch for both symbols");
    let q = c.quote().unwrap();
    let key = format!("{}{}", q.exchange.to_string().to_lowercase(), q.symbol);
    assert_eq!(q.current_price, mock.market_quote(&key).unwrap().price);
}
