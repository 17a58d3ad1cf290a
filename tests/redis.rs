//! Relays sharing one cache on a real `redis-server` (Debian's package, started here on a
//! free loopback port): what one relay fetched the other answers without an upstream
//! request; Redis stopped in the middle: no request fails, the relays say they are degraded;
//! Redis back: they use it again.
#![cfg(not(target_arch = "wasm32"))]

#[path = "support/common.rs"]
mod common;
#[path = "support/redis_server.rs"]
mod redis_server;
#[path = "support/sse.rs"]
mod sse;

use std::time::Duration;

use common::{builder, listed_symbols, ManualClock};
use mock_upstream::{MockConfig, MockUpstream};
use quantdb::native::RedisStore;
use quantdb::relay::{self, RelayConfig};
use quantdb::QuantDb;
use redis_server::{free_port, RedisServer};
use serde_json::Value;

/// A relay on the mock whose persistent tier and coordinator is the Redis at `url`.
async fn relay(mock: &MockUpstream, url: &str) -> (QuantDb, String) {
    relay_with(mock, url, Duration::from_secs(5)).await
}

async fn relay_with(mock: &MockUpstream, url: &str, timeout: Duration) -> (QuantDb, String) {
    let (db, base, _) = relay_on(
        mock,
        url,
        timeout,
        ManualClock::trading(),
        RelayConfig::default(),
    )
    .await;
    (db, base)
}

async fn relay_on(
    mock: &MockUpstream,
    url: &str,
    timeout: Duration,
    clock: std::sync::Arc<ManualClock>,
    mut config: RelayConfig,
) -> (QuantDb, String, relay::Streams) {
    let store = RedisStore::open(url, "test:", Duration::from_secs(600))
        .await
        .unwrap();
    config.stream.fleet = Some(std::sync::Arc::new(store.clone()));
    let db = builder(mock, clock, None)
        .persistent(true)
        .timeout(timeout)
        .store(std::sync::Arc::new(store.clone()))
        .coordinator(std::sync::Arc::new(store))
        .build()
        .await
        .unwrap();
    let (router, streams) = relay::router_with_streams(db.clone(), &config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = relay::url_of(listener.local_addr().unwrap());
    tokio::spawn(relay::serve(
        listener,
        router,
        Duration::from_secs(10),
        std::future::pending(),
    ));
    (db, base, streams)
}

/// A relay that polls for its streams every 20 ms, not once a TTL window: the tests' windows
/// are the clock's jumps.
fn polling_fast() -> RelayConfig {
    RelayConfig {
        stream: relay::StreamConfig {
            poll_every: Some(Duration::from_millis(20)),
            ..relay::StreamConfig::default()
        },
        ..RelayConfig::default()
    }
}

async fn get(url: impl reqwest::IntoUrl) -> (u16, Value) {
    let r = reqwest::get(url).await.unwrap();
    let status = r.status().as_u16();
    (
        status,
        serde_json::from_slice(&r.bytes().await.unwrap()).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_share_one_cache_and_outlive_redis() {
    let redis = RedisServer::start(free_port());
    let port = redis.port;
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let (a_db, a) = relay(&mock, &redis.url()).await;
    let (b_db, b) = relay(&mock, &redis.url()).await;
    let symbols = listed_symbols(100).join(",");

    let (status, first) = get(&format!("{a}/api/v1/realtime?symbols={symbols}")).await;
    assert_eq!(status, 200);
    assert_eq!(mock.requests().total, 1);
    a_db.flush().await.unwrap(); // written behind the answer: wait for it
    let (_, second) = get(&format!("{b}/api/v1/realtime?symbols={symbols}")).await;
    assert_eq!(
        mock.requests().total,
        1,
        "the second relay answered from Redis"
    );
    assert_eq!(b_db.cache_stats().persistent_hits, 100);
    let price = |v: &Value, i: usize| v[i]["current_price"].clone();
    assert!((0..100).all(|i| price(&first, i) == price(&second, i)));
    assert_eq!(get(&format!("{b}/healthz")).await.1["status"], "ok");

    // Redis goes away in the middle: every request is still answered, from memory and the
    // upstreams, and the relays say they are degraded.
    redis.stop();
    let more = listed_symbols(300)[200..].join(",");
    for base in [&a, &b] {
        let (status, answer) = get(&format!("{base}/api/v1/realtime?symbols={more}")).await;
        assert_eq!(status, 200);
        assert!(
            answer
                .as_array()
                .unwrap()
                .iter()
                .all(|q| q["current_price"].is_number()),
            "{base}"
        );
    }
    let (status, health) = get(&format!("{a}/healthz")).await;
    assert_eq!(
        (status, health["status"].as_str()),
        (200, Some("degraded")),
        "{health}"
    );
    assert_eq!(
        get(&format!("{a}/api/v1/stats")).await.1["persistent_unavailable"],
        true
    );

    // Redis back on the same port: the relays use it again.
    let _redis = RedisServer::start(port);
    tokio::time::timeout(Duration::from_secs(20), async {
        while a_db.cache_stats().persistent_unavailable || b_db.cache_stats().persistent_unavailable
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the relays reconnect");
    let fresh = listed_symbols(400)[300..].join(",");
    mock.reset_counts();
    get(&format!("{a}/api/v1/realtime?symbols={fresh}")).await;
    a_db.flush().await.unwrap();
    get(&format!("{b}/api/v1/realtime?symbols={fresh}")).await;
    assert_eq!(mock.requests().total, 1, "shared again");
    assert_eq!(get(&format!("{b}/healthz")).await.1["status"], "ok");
}

#[tokio::test]
async fn a_relay_starts_while_redis_is_down() {
    let port = free_port();
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let (db, base) = relay(&mock, &format!("redis://127.0.0.1:{port}/0")).await;
    let (status, quote) = get(&format!("{base}/api/v1/realtime/600000")).await;
    assert_eq!(status, 200);
    assert_eq!(
        quote["current_price"],
        mock.market_quote("sh600000").unwrap().price
    );
    assert!(db.cache_stats().persistent_unavailable);
    assert!(
        RedisStore::open("http://nope", "x:", Duration::from_secs(1))
            .await
            .is_err(),
        "a bad URL"
    );
}

/// Three relays with fifty concurrent clients each, all asking for the same hundred symbols
/// at once: one upstream request for the whole fleet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_of_three_relays_asks_the_upstream_once() {
    let redis = RedisServer::start(free_port());
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    mock.set_latency(Duration::from_millis(200));
    let mut relays = Vec::new();
    for _ in 0..3 {
        relays.push(relay(&mock, &redis.url()).await.1);
    }
    let symbols = listed_symbols(100).join(",");
    let client = reqwest::Client::new();
    let mut asks = Vec::new();
    for base in &relays {
        for _ in 0..50 {
            let url = format!("{base}/api/v1/realtime?symbols={symbols}");
            let client = client.clone();
            asks.push(tokio::spawn(async move {
                let r = client.get(url).send().await.unwrap();
                let status = r.status().as_u16();
                let body: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
                (status, body)
            }));
        }
    }
    for ask in asks {
        let (status, body) = ask.await.unwrap();
        assert_eq!(status, 200);
        assert!(
            body.as_array()
                .unwrap()
                .iter()
                .all(|q| q["current_price"].is_number()),
            "{body}"
        );
    }
    assert_eq!(
        mock.requests().total,
        1,
        "one upstream request for 150 clients on 3 relays"
    );
}

/// A lease holder that goes away without a quote: the waiting relay waits while the lease is
/// held, and fetches itself as soon as it is free, long before its own wait would be over.
/// Once for a holder that died (its lease runs out), once for one whose fetch failed (it
/// gives its lease back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_holder_without_a_quote_holds_nobody_up() {
    use quantdb::{Coordinator, Symbol};
    let redis = RedisServer::start(free_port());
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let holder = RedisStore::open(&redis.url(), "test:", Duration::from_secs(600))
        .await
        .unwrap();
    // The relay would wait for the holder up to twice its timeout: 20 s.
    let (_, base) = relay_with(&mock, &redis.url(), Duration::from_secs(10)).await;
    for (n, (code, dies)) in [("600000", true), ("000001", false)]
        .into_iter()
        .enumerate()
    {
        let key = if dies { "sh600000" } else { "sz000001" };
        let symbol = Symbol::from_key(key).unwrap();
        let lease = Duration::from_millis(if dies { 1500 } else { 60_000 });
        assert_eq!(holder.claim(&[symbol], lease).await.unwrap(), [true]);
        let asked = tokio::spawn(get(format!("{base}/api/v1/realtime/{code}")));
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(
            mock.requests().total,
            n as u64,
            "{key}: waiting for the holder"
        );
        if !dies {
            // Its fetch failed: it gives the lease back, with no quote in the store.
            holder.announce(&[symbol]).await;
        }
        let (status, quote) = tokio::time::timeout(Duration::from_secs(8), asked)
            .await
            .expect("fetched once the lease was free, not at the end of the wait")
            .unwrap();
        assert_eq!(status, 200, "{quote}");
        assert_eq!(
            quote["current_price"],
            mock.market_quote(key).unwrap().price
        );
        assert_eq!(
            mock.requests().total,
            n as u64 + 1,
            "{key}: fetched by the relay"
        );
    }
}

/// An error answer from Redis (here a lease key of another type, which the script that gives
/// leases back cannot read) fails that command only: Redis is not taken for unavailable, as it
/// is when the connection goes.
#[tokio::test]
async fn an_error_answer_is_not_an_outage() {
    use quantdb::{Coordinator, Store, Symbol};
    let redis = RedisServer::start(free_port());
    let store = RedisStore::open(&redis.url(), "test:", Duration::from_secs(600))
        .await
        .unwrap();
    redis.cli(&["HSET", "test:lease:sh600000", "f", "v"]);
    let sh = Symbol::from_key("sh600000").unwrap();
    Coordinator::announce(&store, &[sh]).await;
    assert!(
        Store::is_available(&store),
        "one failed script is not an outage"
    );
    assert!(store.load(&[sh]).await.is_ok());
    redis.stop();
    assert!(store.load(&[sh]).await.is_err());
    assert!(!Store::is_available(&store), "a lost connection is");
}

/// Push from a fleet: subscribers spread over three relays on one Redis get every change of
/// their hundred symbols, in order, while the upstream sees one request a window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_of_three_relays_cost_one_request_a_window() {
    let redis = RedisServer::start(free_port());
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let clock = ManualClock::trading();
    let config = polling_fast();
    let mut relays = Vec::new();
    for _ in 0..3 {
        let timeout = Duration::from_secs(5);
        relays.push(
            relay_on(&mock, &redis.url(), timeout, clock.clone(), config.clone())
                .await
                .1,
        );
    }
    let symbols = listed_symbols(100);
    let mut subscribers = Vec::new();
    for i in 0..30 {
        let url = format!(
            "{}/api/v1/stream?symbols={}",
            relays[i % 3],
            symbols.join(",")
        );
        let mut s = sse::SseClient::open(&url, None).await;
        assert_eq!(s.take(100).await.len(), 100);
        subscribers.push(s);
    }
    assert_eq!(
        mock.requests().total,
        1,
        "the first snapshot's fetch served the fleet"
    );
    for window in 1..=3 {
        mock.reset_counts();
        mock.set_tick(window);
        clock.advance(31);
        for s in &mut subscribers {
            let events = s.take(100).await;
            assert!(events.windows(2).all(|w| w[0].id < w[1].id), "in order");
            let mut seen: Vec<&str> = events
                .iter()
                .map(|e| e.data["symbol"].as_str().unwrap())
                .collect();
            seen.sort();
            seen.dedup();
            assert_eq!(seen.len(), 100, "every symbol's change, once");
        }
        assert_eq!(
            mock.requests().total,
            1,
            "window {window}: one request for three relays"
        );
    }
}

/// The symbols each relay's own streams want: in a fleet, every relay's lookups but one's
/// stay still, however many windows pass.
fn lookups(db: &QuantDb) -> u64 {
    let s = db.cache_stats();
    s.memory_hits + s.persistent_hits + s.misses
}

/// One relay of the fleet polls, for the streams of all; the events carry one numbering, so
/// that a client resumes on another relay with what it missed; when the polling relay stops,
/// another one polls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_relay_polls_for_the_fleet_and_a_client_resumes_on_another() {
    let redis = RedisServer::start(free_port());
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let clock = ManualClock::trading();
    let config = polling_fast();
    let mut relays = Vec::new();
    for _ in 0..3 {
        let timeout = Duration::from_secs(5);
        relays.push(relay_on(&mock, &redis.url(), timeout, clock.clone(), config.clone()).await);
    }
    // Each relay's streams want their own third of the symbols.
    let symbols = listed_symbols(90);
    let thirds: Vec<String> = symbols.chunks(30).map(|c| c.join(",")).collect();
    let stream = |r: usize| format!("{}/api/v1/stream?symbols={}", relays[r].1, thirds[r]);
    let mut subscribers = Vec::new();
    for r in 0..3 {
        let mut s = sse::SseClient::open(&stream(r), None).await;
        assert_eq!(s.take(30).await.len(), 30);
        subscribers.push(s);
    }
    // A client of relay 0's symbols, on relay 0, that will move to relay 1.
    let mut moving = sse::SseClient::open(&stream(0), None).await;
    moving.take(30).await;
    tokio::time::sleep(Duration::from_millis(300)).await; // every relay registered its symbols
    let before: Vec<u64> = relays.iter().map(|r| lookups(&r.0)).collect();
    mock.reset_counts();
    mock.set_tick(1);
    clock.advance(31);
    let mut first = Vec::new();
    for s in &mut subscribers {
        first.push(s.take(30).await);
    }
    let seen_by_mover = moving.take(30).await;
    assert_eq!(
        mock.requests().total,
        1,
        "one request for the symbols of three relays"
    );
    let grew: Vec<usize> = (0..3)
        .filter(|&r| lookups(&relays[r].0) > before[r])
        .collect();
    assert_eq!(grew.len(), 1, "one relay polls: {grew:?}");
    let leader = grew[0];
    let mut ids: Vec<u64> = first.iter().flatten().map(|e| e.id.unwrap()).collect();
    ids.sort();
    assert!(
        ids.windows(2).all(|w| w[1] == w[0] + 1),
        "one numbering for the fleet: {ids:?}"
    );
    let same = |a: &[sse::SseEvent], b: &[sse::SseEvent]| {
        let ids = |e: &[sse::SseEvent]| e.iter().map(|e| e.raw_id.clone()).collect::<Vec<_>>();
        ids(a) == ids(b)
    };
    assert!(same(&seen_by_mover, &first[0]), "the same ids on one relay");

    // The mover goes away, a window passes, and it comes back to relay 1 with its last id.
    let last = seen_by_mover.last().unwrap().raw_id.clone();
    drop(moving);
    mock.set_tick(2);
    clock.advance(31);
    let missed = subscribers[0].take(30).await;
    for s in &mut subscribers[1..] {
        s.take(30).await;
    }
    let url = format!("{}/api/v1/stream?symbols={}", relays[1].1, thirds[0]);
    let mut back = sse::SseClient::open(&url, last.as_deref()).await;
    let replayed = back.take(30).await;
    assert!(
        same(&replayed, &missed),
        "exactly the missed events, from another relay"
    );
    assert_eq!(
        replayed.iter().map(|e| e.data.clone()).collect::<Vec<_>>(),
        missed.iter().map(|e| e.data.clone()).collect::<Vec<_>>()
    );

    // The polling relay stops: it gives the lease up at once, and another one polls.
    let holder = || redis.cli(&["GET", "test:push:leader"]);
    let polling = holder();
    relays[leader].2.close();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_ne!(holder(), polling, "the lease given up, not run out (6 s)");
    subscribers.remove(leader);
    tokio::time::sleep(Duration::from_millis(300)).await;
    mock.reset_counts();
    mock.set_tick(3);
    clock.advance(31);
    for s in &mut subscribers {
        let events = s.take(30).await;
        assert!(events.iter().all(|e| e.event == "quote"));
    }
    back.take(30).await;
    assert_eq!(mock.requests().total, 1, "still one request a window");
}

/// A quote the polling relay pushes is also what every relay of the fleet answers: a client
/// that refreshes through the polling relay moves the others' streams and their own answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_relay_answers_what_the_fleet_pushed() {
    let redis = RedisServer::start(free_port());
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let clock = ManualClock::trading();
    let config = polling_fast();
    let mut relays = Vec::new();
    let mut streams = Vec::new();
    for _ in 0..2 {
        let r = relay_on(
            &mock,
            &redis.url(),
            Duration::from_secs(5),
            clock.clone(),
            config.clone(),
        )
        .await;
        let mut s =
            sse::SseClient::open(&format!("{}/api/v1/stream?symbols=600000", r.1), None).await;
        s.take(1).await;
        streams.push(s);
        relays.push(r);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before: Vec<u64> = relays.iter().map(|r| lookups(&r.0)).collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let polling: Vec<usize> = (0..2)
        .filter(|&r| lookups(&relays[r].0) > before[r])
        .collect();
    assert_eq!(polling.len(), 1, "one relay polls: {polling:?}");
    let (leader, other) = (polling[0], 1 - polling[0]);

    mock.set_tick(1);
    let new_price = mock.market_quote("sh600000").unwrap().price;
    let refreshed = relays[leader]
        .0
        .get_realtime_data_with("600000", quantdb::FetchOptions::refresh())
        .await
        .unwrap();
    assert_eq!(refreshed.current_price, new_price);
    let pushed = streams[other].take(1).await;
    assert_eq!(pushed[0].data["current_price"], new_price);
    let (_, answer) = get(format!("{}/api/v1/realtime/600000", relays[other].1)).await;
    assert_eq!(answer["current_price"], new_price, "as new as its stream");
    assert_eq!(answer["cache_source"], "memory");
}

/// Events lost on the way from Redis (a dropped subscription) leave a gap in the fleet's
/// numbering: the relay asks the upstream for its streams' symbols once more and pushes what
/// changed meanwhile, so that a client resuming from the last event before the gap misses
/// nothing; older ids get the current quotes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_in_the_fleets_events_is_caught_up() {
    let redis = RedisServer::start(free_port());
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let clock = ManualClock::trading();
    let config = polling_fast();
    let (_db, base, _streams) = relay_on(
        &mock,
        &redis.url(),
        Duration::from_secs(5),
        clock.clone(),
        config,
    )
    .await;
    let url = format!("{base}/api/v1/stream?symbols=600000,000001");
    let mut watcher = sse::SseClient::open(&url, None).await;
    watcher.take(2).await;
    mock.set_tick(1);
    clock.advance(31);
    let seen = watcher.take(2).await;
    let (before, last) = (seen[0].raw_id.clone(), seen[1].raw_id.clone().unwrap());
    let epoch = redis.cli(&["HGET", "test:push:seq", "epoch"]);
    let seq: u64 = redis
        .cli(&["HGET", "test:push:seq", "seq"])
        .parse()
        .unwrap();
    assert_eq!(
        last,
        format!("{epoch}-{seq}"),
        "the fleet numbered the events"
    );

    // The prices move, and the fleet's events of that never arrive (the relay's quotes are
    // still fresh: only the upstream knows); then a later batch does.
    mock.set_tick(2);
    let event = r#"{"symbol":"sh600000","kind":"error","data":"{\"symbol\":\"600000\",\"input\":\"600000\",\"error\":\"x\",\"code\":\"upstream_error\"}"}"#;
    // Numbered as the fleet would have numbered it after nine lost events, and the fleet's
    // numbering goes on from there.
    let lost = (seq + 10).to_string();
    assert_eq!(redis.cli(&["HSET", "test:push:seq", "seq", &lost]), "0");
    let message = format!(r#"{{"epoch":{epoch},"first":{lost},"events":[{event}]}}"#);
    assert_eq!(
        redis.cli(&["PUBLISH", "test:push", &message]),
        "1",
        "the relay listens"
    );
    let caught_up = watcher.take(2).await;
    for e in &caught_up {
        let key = format!(
            "{}{}",
            e.data["exchange"].as_str().unwrap().to_lowercase(),
            e.data["symbol"].as_str().unwrap()
        );
        assert_eq!(
            e.data["current_price"],
            mock.market_quote(&key).unwrap().price,
            "{key}"
        );
    }

    let mut back = sse::SseClient::open(&url, Some(&last)).await;
    let replayed = back.take(2).await;
    let ids =
        |events: &[sse::SseEvent]| events.iter().map(|e| e.raw_id.clone()).collect::<Vec<_>>();
    assert_eq!(
        ids(&replayed),
        ids(&caught_up),
        "what it missed, from the last id before the gap"
    );
    let mut old = sse::SseClient::open(&url, before.as_deref()).await;
    let current = old.take(2).await;
    assert!(
        current.iter().all(|e| e.raw_id == current[0].raw_id),
        "an id from before that: the current quotes, not a replay"
    );
    assert_eq!(
        current[0].data["current_price"],
        mock.market_quote("sh600000").unwrap().price
    );
}

/// Redis stopped and started again in the middle of a load on two relays: not one failed
/// request or entry, and the relays share through Redis again afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_fails_while_redis_goes_down_and_comes_back_under_load() {
    let redis = RedisServer::start(free_port());
    let port = redis.port;
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    mock.set_latency(Duration::from_millis(20));
    let (a_db, a) = relay(&mock, &redis.url()).await;
    let (b_db, b) = relay(&mock, &redis.url()).await;
    let symbols = listed_symbols(2_000);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for worker in 0..6 {
        let (base, symbols, stop) = (
            if worker % 2 == 0 {
                a.clone()
            } else {
                b.clone()
            },
            symbols.clone(),
            stop.clone(),
        );
        load.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let (mut asked, mut failed) = (0, Vec::new());
            let mut i = worker * 37;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Fresh symbols each time: misses that go to Redis and the upstream.
                let batch: Vec<&str> = (0..25)
                    .map(|k| symbols[(i + k) % symbols.len()].as_str())
                    .collect();
                i += 25;
                let url = format!("{base}/api/v1/realtime?symbols={}", batch.join(","));
                match client.get(&url).send().await {
                    Ok(r) if r.status() == 200 => {
                        let body: Value =
                            serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
                        for entry in body.as_array().unwrap() {
                            asked += 1;
                            if !entry["current_price"].is_number() {
                                failed.push(entry.to_string());
                            }
                        }
                    }
                    other => failed.push(format!("{other:?}")),
                }
            }
            (asked, failed)
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.stop();
    // The relays notice while serving the load.
    tokio::time::timeout(Duration::from_secs(10), async {
        while !(a_db.cache_stats().persistent_unavailable
            && b_db.cache_stats().persistent_unavailable)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("both relays see Redis gone");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _back = RedisServer::start(port);
    tokio::time::timeout(Duration::from_secs(20), async {
        while a_db.cache_stats().persistent_unavailable || b_db.cache_stats().persistent_unavailable
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the relays reconnect under load");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for task in load {
        let (asked, failed) = task.await.unwrap();
        assert!(failed.is_empty(), "failed entries: {failed:?}");
        total += asked;
    }
    assert!(total > 500, "a load, not a trickle: {total} entries");
}
