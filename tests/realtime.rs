//! The engine against a real local HTTP server speaking the upstreams' wire formats.
#![cfg(not(target_arch = "wasm32"))]

#[path = "support/common.rs"]
mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::{builder, listed_symbols, ManualClock};
use mock_upstream::{Counts, MockConfig, MockUpstream};
use quantdb::{BatchEntry, CacheSource, FetchOptions, MarketStatus, Provider, Quote};

async fn mock() -> MockUpstream {
    MockUpstream::start(MockConfig::default()).await.unwrap()
}

fn quotes(entries: &[BatchEntry]) -> Vec<&Quote> {
    entries
        .iter()
        .map(|e| {
            e.quote()
                .unwrap_or_else(|| panic!("expected a quote, got {e:?}"))
        })
        .collect()
}

/// The quote agrees with the mock's market data, in shares and yuan.
fn assert_matches_market(mock: &MockUpstream, q: &Quote) {
    let key = format!("{}{}", q.exchange.as_str().to_lowercase(), q.symbol);
    let m = mock
        .market_quote(&key)
        .unwrap_or_else(|| panic!("{key} not in the mock market"));
    assert_eq!(q.name, m.name, "{key}");
    assert_eq!(q.current_price, m.price, "{key}");
    assert_eq!(q.prev_close, m.prev_close, "{key}");
    assert_eq!(q.volume, m.volume, "{key}");
    assert_eq!(q.amount, m.amount, "{key}");
    if m.suspended {
        assert_eq!(q.market_status, MarketStatus::Suspended, "{key}");
        assert_eq!((q.open, q.high, q.low), (None, None, None), "{key}");
        return;
    }
    assert_eq!(q.high, Some(m.high), "{key}");
    assert_eq!(q.low, Some(m.low), "{key}");
    assert_eq!(q.open, Some(m.open), "{key}");
    let change = ((m.price - m.prev_close) * 1000.0).round() / 1000.0;
    assert!(
        (q.change - change).abs() < 1e-9,
        "{key}: {} vs {change}",
        q.change
    );
}

#[tokio::test]
async fn cold_batch_costs_one_request_per_chunk_and_warm_batch_costs_none() {
    let mock = mock().await;
    let db = builder(&mock, ManualClock::trading(), None)
        .build()
        .await
        .unwrap();
    let symbols = listed_symbols(100);

    let cold = db.get_realtime_data_batch(&symbols).await;
    assert_eq!(cold.len(), 100);
    for q in quotes(&cold) {
        assert!(!q.cache_hit);
        assert_eq!(q.cache_source, CacheSource::Network);
        assert_eq!(q.source, Provider::Sina);
        assert_eq!(q.market_status, MarketStatus::Trading);
        assert_matches_market(&mock, q);
    }
    assert_eq!(
        mock.requests(),
        Counts {
            sina: 1,
            tencent: 0,
            eastmoney: 0,
            total: 1
        }
    );
    assert_eq!(mock.symbols_requested().total, 100);

    let warm = db.get_realtime_data_batch(&symbols).await;
    assert_eq!(
        mock.requests().total,
        1,
        "a warm batch must not go upstream"
    );
    for (w, c) in quotes(&warm).into_iter().zip(quotes(&cold)) {
        assert!(w.cache_hit);
        assert_eq!(w.cache_source, CacheSource::Memory);
        assert_eq!(
            (w.symbol.as_str(), w.current_price),
            (c.symbol.as_str(), c.current_price)
        );
    }
    let stats = db.cache_stats();
    assert_eq!(
        (stats.memory_hits, stats.misses, stats.upstream_requests),
        (100, 100, 1)
    );
    assert_eq!(stats.hit_rate, 0.5);
    assert_eq!(stats.memory_entries, 100);
    assert_eq!(stats.ttl_seconds, 30);
    assert!(!stats.persistent_enabled);
}

#[tokio::test]
async fn entries_follow_request_order_and_duplicates_are_fetched_once() {
    let mock = mock().await;
    let db = builder(&mock, ManualClock::trading(), None)
        .build()
        .await
        .unwrap();
    let input = [
        "000001",
        "600000",
        "sz000001",
        "000001.SZ",
        "sh000001",
        "600000.SH",
        "bj430017",
    ];
    let entries = db.get_realtime_data_batch(&input).await;
    let got: Vec<(String, &str)> = quotes(&entries)
        .iter()
        .map(|q| (q.symbol.clone(), q.exchange.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("000001".into(), "SZ"),
            ("600000".into(), "SH"),
            ("000001".into(), "SH"),
            ("430017".into(), "BJ")
        ]
    );
    assert_eq!(quotes(&entries)[0].name, "平安银行");
    assert_eq!(quotes(&entries)[2].name, "上证指数");
    assert_eq!(quotes(&entries)[3].name, "星昊医药");
    assert_eq!(mock.requests().total, 1);
    assert_eq!(mock.symbols_requested().total, 4);
}

#[tokio::test]
async fn misses_are_chunked_by_provider_batch_size() {
    let mock = mock().await;
    let symbols = listed_symbols(250);
    for (provider, chunk, expected) in [
        (Provider::Sina, 800, 1),
        (Provider::Sina, 40, 7),
        (Provider::Tencent, 60, 5),
        (Provider::Eastmoney, 100, 3),
    ] {
        mock.reset_counts();
        let db = builder(&mock, ManualClock::trading(), None)
            .providers([provider])
            .chunk_size(provider, chunk)
            .build()
            .await
            .unwrap();
        let entries = db.get_realtime_data_batch(&symbols).await;
        for q in quotes(&entries) {
            assert_eq!(q.source, provider);
            assert_matches_market(&mock, q);
        }
        assert_eq!(mock.requests().total, expected, "{provider} chunk {chunk}");
        assert_eq!(mock.symbols_requested().total, 250);
        // Half warm, half cold: only the cold half goes upstream.
        mock.reset_counts();
        let more = listed_symbols(500);
        db.get_realtime_data_batch(&more).await;
        assert_eq!(mock.symbols_requested().total, 250, "{provider}");
        assert_eq!(
            mock.requests().total as usize,
            250usize.div_ceil(chunk),
            "{provider}"
        );
    }
}

#[tokio::test]
async fn chunks_are_fetched_concurrently_up_to_the_bound() {
    let mock = mock().await;
    mock.set_latency(Duration::from_millis(100));
    for bound in [1, 3] {
        mock.reset_counts();
        let db = builder(&mock, ManualClock::trading(), None)
            .providers([Provider::Tencent])
            .max_concurrent_requests(bound)
            .build()
            .await
            .unwrap();
        let entries = db.get_realtime_data_batch(&listed_symbols(300)).await; // 5 chunks of 60
        assert!(entries.iter().all(|e| e.quote().is_some()));
        assert_eq!(mock.requests().total, 5);
        assert_eq!(mock.max_in_flight(), bound as u64, "bound {bound}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_thousand_concurrent_callers_share_one_request() {
    let mock = mock().await;
    mock.set_latency(Duration::from_millis(100));
    let db = builder(&mock, ManualClock::trading(), None)
        .build()
        .await
        .unwrap();
    let calls: Vec<_> = (0..1000)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move { db.get_realtime_data("600000").await })
        })
        .collect();
    for call in calls {
        let q = call.await.unwrap().unwrap();
        assert_eq!(q.name, "浦发银行");
    }
    assert_eq!(mock.requests().total, 1);
    let stats = db.cache_stats();
    assert_eq!(stats.upstream_requests, 1);
    assert_eq!(stats.coalesced_waits + stats.memory_hits, 999);
    assert_eq!(stats.misses, 1 + stats.coalesced_waits);
}

#[tokio::test]
async fn overlapping_concurrent_batches_fetch_each_symbol_once() {
    let mock = mock().await;
    mock.set_latency(Duration::from_millis(50));
    let db = builder(&mock, ManualClock::trading(), None)
        .providers([Provider::Tencent])
        .build()
        .await
        .unwrap();
    let all = listed_symbols(120);
    let calls: Vec<_> = (0..20)
        .map(|i| {
            let db = db.clone();
            let slice = all[(i * 5)..(i * 5 + 20)].to_vec(); // windows overlapping by 15
            tokio::spawn(async move { db.get_realtime_data_batch(&slice).await })
        })
        .collect();
    for call in calls {
        assert!(call.await.unwrap().iter().all(|e| e.quote().is_some()));
    }
    assert_eq!(
        mock.symbols_requested().total,
        115,
        "each distinct symbol asked once"
    );
}

#[tokio::test]
async fn force_refresh_skips_the_cache_and_refreshes_it() {
    let mock = mock().await;
    let db = builder(&mock, ManualClock::trading(), None)
        .build()
        .await
        .unwrap();
    let before = db.get_realtime_data("600000").await.unwrap();
    mock.set_tick(7);
    let cached = db.get_realtime_data("600000").await.unwrap();
    assert_eq!(
        (cached.current_price, cached.cache_source),
        (before.current_price, CacheSource::Memory)
    );
    assert_eq!(mock.requests().total, 1);

    let refreshed = db
        .get_realtime_data_with("600000", FetchOptions::refresh())
        .await
        .unwrap();
    assert_eq!(mock.requests().total, 2);
    assert!(!refreshed.cache_hit);
    assert_eq!(
        refreshed.current_price,
        mock.market_quote("sh600000").unwrap().price
    );
    assert_ne!(
        refreshed.current_price, before.current_price,
        "tick 7 must move the price"
    );
    let after = db.get_realtime_data("600000").await.unwrap();
    assert_eq!(
        (after.current_price, after.cache_source),
        (refreshed.current_price, CacheSource::Memory)
    );
    let batch = db
        .get_realtime_data_batch_with(&["600000", "000001"], FetchOptions::refresh())
        .await;
    assert_eq!(quotes(&batch).len(), 2);
    assert_eq!(mock.requests().total, 3);
}

#[tokio::test]
async fn ttl_expiry_follows_the_clock() {
    let mock = mock().await;
    let clock = ManualClock::trading();
    let db = builder(&mock, clock.clone(), None).build().await.unwrap();
    db.get_realtime_data("600000").await.unwrap();
    clock.advance(29);
    assert!(db.get_realtime_data("600000").await.unwrap().cache_hit);
    assert_eq!(mock.requests().total, 1);
    clock.advance(1);
    assert!(!db.get_realtime_data("600000").await.unwrap().cache_hit);
    assert_eq!(mock.requests().total, 2);
    // Lunch break: 60 s.
    clock.advance(90 * 60);
    assert_eq!(
        db.cache_stats().market_phase,
        quantdb::MarketPhase::LunchBreak
    );
    db.get_realtime_data("600000").await.unwrap();
    clock.advance(59);
    assert!(db.get_realtime_data("600000").await.unwrap().cache_hit);
    assert_eq!(mock.requests().total, 3);
}

/// A first client fetches `symbols` into the file cache in `dir` (100 of them), and is gone.
async fn cache_on_disk(
    mock: &MockUpstream,
    clock: &Arc<ManualClock>,
    dir: &std::path::Path,
    symbols: &[String],
) {
    let first = builder(mock, clock.clone(), Some(dir))
        .build()
        .await
        .unwrap();
    first.get_realtime_data_batch(symbols).await;
    first.flush().await.unwrap();
    assert_eq!(first.cache_stats().persistent_entries, Some(100));
}

#[tokio::test]
async fn restart_is_served_from_the_file_cache() {
    let mock = mock().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::trading();
    let symbols = listed_symbols(100);
    cache_on_disk(&mock, &clock, dir.path(), &symbols).await;
    assert_eq!(mock.requests().total, 1);
    clock.advance(20);
    let second = builder(&mock, clock.clone(), Some(dir.path()))
        .build()
        .await
        .unwrap();
    let entries = second.get_realtime_data_batch(&symbols).await;
    assert_eq!(
        mock.requests().total,
        1,
        "a restart within the TTL must not go upstream"
    );
    for q in quotes(&entries) {
        assert_eq!(q.cache_source, CacheSource::Disk);
        assert!(q.cache_hit);
        assert_matches_market(&mock, q);
    }
    // Promoted to memory.
    let again = second.get_realtime_data_batch(&symbols).await;
    assert!(quotes(&again)
        .iter()
        .all(|q| q.cache_source == CacheSource::Memory));
    let stats = second.cache_stats();
    assert_eq!(
        (stats.persistent_hits, stats.memory_hits, stats.misses),
        (100, 100, 0)
    );
    // Past the TTL the files are stale: a third client goes upstream.
    clock.advance(11);
    let third = builder(&mock, clock, Some(dir.path()))
        .build()
        .await
        .unwrap();
    third.get_realtime_data_batch(&symbols).await;
    assert_eq!(mock.requests().total, 2);
}

/// Twenty callers at once, cold, on what the file cache holds: one read of the file cache
/// for all of them (the others wait for it), and every one answered from it.
#[tokio::test]
async fn a_burst_of_cold_callers_reads_the_persistent_tier_once() {
    let mock = mock().await;
    let clock = ManualClock::trading();
    let dir = tempfile::tempdir().unwrap();
    let symbols = listed_symbols(100);
    cache_on_disk(&mock, &clock, dir.path(), &symbols).await;
    let second = builder(&mock, clock, Some(dir.path()))
        .build()
        .await
        .unwrap();
    let answers =
        futures_util::future::join_all((0..20).map(|_| second.get_realtime_data_batch(&symbols)))
            .await;
    for entries in &answers {
        let from_disk = quotes(entries)
            .iter()
            .filter(|q| q.cache_source == CacheSource::Disk)
            .count();
        assert_eq!(from_disk, 100);
    }
    let stats = second.cache_stats();
    assert_eq!(stats.persistent_reads, 1, "one read for the twenty callers");
    assert_eq!((stats.persistent_hits, stats.misses), (2000, 0));
    assert_eq!(mock.requests().total, 1, "the first client's request only");
}

#[tokio::test]
async fn clearing_empties_every_tier() {
    let mock = mock().await;
    let dir = tempfile::tempdir().unwrap();
    let db = builder(&mock, ManualClock::trading(), Some(dir.path()))
        .build()
        .await
        .unwrap();
    db.get_realtime_data_batch(&["600000", "000001", "300750"])
        .await;
    db.clear_symbol("sh600000").await.unwrap();
    assert_eq!(db.cache_stats().persistent_entries, Some(2));
    assert_eq!(db.cache_stats().memory_entries, 2);
    assert!(!db.get_realtime_data("600000").await.unwrap().cache_hit);
    assert!(db.get_realtime_data("000001").await.unwrap().cache_hit);
    assert_eq!(mock.requests().total, 2);
    db.clear_cache().await.unwrap();
    let stats = db.cache_stats();
    assert_eq!(
        (stats.memory_entries, stats.persistent_entries),
        (0, Some(0))
    );
    assert!(db.clear_symbol("nonsense").await.is_err());
}

#[tokio::test]
async fn falls_back_to_the_next_provider() {
    let mock = mock().await;
    mock.set_down("sina", true);
    let db = builder(&mock, ManualClock::trading(), None)
        .build()
        .await
        .unwrap();
    let entries = db.get_realtime_data_batch(&listed_symbols(70)).await;
    for q in quotes(&entries) {
        assert_eq!(q.source, Provider::Tencent);
        assert_matches_market(&mock, q);
    }
    assert_eq!(
        mock.requests(),
        Counts {
            sina: 1,
            tencent: 2,
            eastmoney: 0,
            total: 3
        }
    );
    assert_eq!(db.cache_stats().upstream_failures, 1);

    mock.set_down("tencent", true);
    let q = db.get_realtime_data("300750").await.unwrap();
    assert_eq!(q.source, Provider::Eastmoney);
    assert_matches_market(&mock, &q);
}

#[tokio::test]
async fn a_sina_request_without_referer_is_refused_by_the_mock() {
    // Guards the mock itself: the client's Referer is what makes Sina answer.
    let mock = mock().await;
    let resp = reqwest::get(format!("{}/list=sh600000", mock.base_url()))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
}

#[tokio::test]
async fn unknown_codes_are_not_found_and_do_not_spoil_the_batch() {
    let mock = mock().await;
    let db = builder(&mock, ManualClock::trading(), None)
        .build()
        .await
        .unwrap();
    let entries = db
        .get_realtime_data_batch(&["600000", "603999", "000001"])
        .await;
    assert!(entries[0].quote().is_some() && entries[2].quote().is_some());
    let err = entries[1].error().unwrap();
    assert_eq!(
        (err.symbol.as_str(), err.input.as_str(), err.code.as_str()),
        ("sh603999", "603999", "not_found")
    );
    // The unknown code was asked of each provider in turn; the known ones only of Sina.
    assert_eq!(
        mock.requests(),
        Counts {
            sina: 1,
            tencent: 1,
            eastmoney: 1,
            total: 3
        }
    );
    assert_eq!(db.cache_stats().errors, 1);
    // Within the TTL the verdict is remembered: asking again costs nothing upstream.
    let again = db.get_realtime_data("603999").await.unwrap_err();
    assert_eq!(again.code(), "not_found");
    assert_eq!(mock.requests().total, 3);
}

#[tokio::test]
async fn every_kind_of_bad_symbol_gets_its_own_error() {
    let mock = mock().await;
    let db = builder(&mock, ManualClock::trading(), None)
        .build()
        .await
        .unwrap();
    let bad = [
        "",
        "12345",
        "1234567",
        "abcdef",
        "sx600000",
        "600000.XX",
        "700000",
        "平安银行",
        "60000a",
        "sh",
    ];
    let mut input: Vec<&str> = bad.to_vec();
    input.insert(3, "600000");
    input.push("000001");
    let entries = db.get_realtime_data_batch(&input).await;
    assert_eq!(entries.len(), bad.len() + 2);
    assert!(entries[3].quote().is_some() && entries.last().unwrap().quote().is_some());
    let errors: Vec<_> = entries.iter().filter_map(BatchEntry::error).collect();
    assert_eq!(errors.len(), bad.len());
    for (err, text) in errors.iter().zip(bad) {
        assert_eq!(err.symbol, text);
        assert_eq!(err.code, "invalid_symbol");
        assert!(err.error.contains(&format!("{text:?}")), "{}", err.error);
    }
    assert_eq!(mock.symbols_requested().total, 2);
    let single = db.get_realtime_data("sx600000").await.unwrap_err();
    assert_eq!(single.code(), "invalid_symbol");
}

#[tokio::test]
async fn all_upstreams_down_is_a_per_symbol_error() {
    let mock = mock().await;
    for p in ["sina", "tencent", "eastmoney"] {
        mock.set_down(p, true);
    }
    let db = builder(&mock, ManualClock::trading(), None)
        .build()
        .await
        .unwrap();
    let entries = db.get_realtime_data_batch(&["600000", "bad"]).await;
    let errs: Vec<_> = entries
        .iter()
        .map(|e| e.error().unwrap().code.as_str())
        .collect();
    assert_eq!(errs, ["upstream_unavailable", "invalid_symbol"]);
    let msg = &entries[0].error().unwrap().error;
    assert!(
        msg.contains("sina")
            && msg.contains("tencent")
            && msg.contains("eastmoney")
            && msg.contains("500"),
        "{msg}"
    );
}

#[tokio::test]
async fn slow_upstreams_time_out() {
    let mock = mock().await;
    mock.set_latency(Duration::from_millis(1500));
    let db = builder(&mock, ManualClock::trading(), None)
        .providers([Provider::Eastmoney])
        .timeout(Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    let err = db.get_realtime_data("600000").await.unwrap_err();
    assert_eq!(err.code(), "timeout", "{err}");
}

#[tokio::test]
async fn units_agree_whichever_provider_answers() {
    // The whole market, every board: Sina's Shanghai index volumes are in lots, Tencent's
    // STAR board volumes in shares, and both must come out in shares.
    let mock = mock().await;
    let symbols = MockUpstream::listed_keys();
    assert!(symbols.iter().any(|k| k.starts_with("sh688")) && symbols.contains(&"sh000001".into()));
    let mut seen = Vec::new();
    for p in Provider::ALL {
        let db = builder(&mock, ManualClock::trading(), None)
            .providers([p])
            .build()
            .await
            .unwrap();
        let entries = db.get_realtime_data_batch(&symbols).await;
        let qs: Vec<Quote> = quotes(&entries).into_iter().cloned().collect();
        assert_eq!(qs.len(), symbols.len());
        for q in &qs {
            assert_eq!(q.source, p);
            assert_matches_market(&mock, q);
            // A stock that traded: its average price lies between its low and its high.
            let key = q.key().unwrap().key();
            if q.volume > 0 && !mock.market_quote(&key).unwrap().is_index {
                let average = q.amount / q.volume as f64;
                let (low, high) = (q.low.unwrap(), q.high.unwrap());
                assert!(
                    average >= low * 0.995 && average <= high * 1.005,
                    "{p} {key}: average {average} outside {low}..{high}"
                );
            }
        }
        seen.push(qs);
    }
    let strip = |q: &Quote| {
        (
            q.symbol.clone(),
            q.name.clone(),
            q.volume,
            q.amount.to_bits(),
            q.change.to_bits(),
        )
    };
    for other in &seen[1..] {
        assert_eq!(
            seen[0].iter().map(strip).collect::<Vec<_>>(),
            other.iter().map(strip).collect::<Vec<_>>()
        );
    }
}

#[tokio::test]
async fn suspended_stocks_are_reported_as_such() {
    let mock = mock().await;
    assert!(mock.market_quote("sz000097").unwrap().suspended);
    for p in Provider::ALL {
        let db = builder(&mock, ManualClock::trading(), None)
            .providers([p])
            .build()
            .await
            .unwrap();
        let q = db.get_realtime_data("000097").await.unwrap();
        assert_eq!(q.market_status, MarketStatus::Suspended, "{p}");
        assert_eq!((q.change, q.change_percent, q.volume), (0.0, 0.0, 0), "{p}");
        assert_eq!(q.current_price, q.prev_close, "{p}");
        assert_eq!(q.open, None, "{p}");
    }
}

#[tokio::test]
async fn json_field_names_are_the_compatibility_promise() {
    let mock = mock().await;
    let db = builder(&mock, ManualClock::trading(), None)
        .build()
        .await
        .unwrap();
    let q = db.get_realtime_data("600000").await.unwrap();
    let json = serde_json::to_value(&q).unwrap();
    let keys: BTreeSet<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let expected: BTreeSet<&str> = [
        "symbol",
        "exchange",
        "name",
        "current_price",
        "change",
        "change_percent",
        "open",
        "high",
        "low",
        "prev_close",
        "volume",
        "amount",
        "quote_time",
        "timestamp",
        "cache_hit",
        "cache_source",
        "stale",
        "source",
        "market_status",
    ]
    .into();
    assert_eq!(keys, expected);
    assert_eq!(json["symbol"], "600000");
    assert_eq!(json["timestamp"], "2026-11-30T10:00:00+08:00");
    assert!(json["quote_time"].as_str().unwrap().ends_with("+08:00"));
    let back: Quote = serde_json::from_value(json).unwrap();
    assert_eq!(back, q);
}

#[tokio::test]
async fn memory_tier_is_bounded() {
    let mock = mock().await;
    let db = builder(&mock, ManualClock::trading(), None)
        .memory_capacity(10)
        .build()
        .await
        .unwrap();
    db.get_realtime_data_batch(&listed_symbols(25)).await;
    assert_eq!(db.cache_stats().memory_entries, 10);
    // The most recent ten are the ones kept.
    let last: Vec<String> = listed_symbols(25)[15..].to_vec();
    let entries = db.get_realtime_data_batch(&last).await;
    assert!(quotes(&entries).iter().all(|q| q.cache_hit));
}

#[tokio::test]
async fn unwritable_cache_dir_degrades_to_memory_only() {
    let mock = mock().await;
    let file = tempfile::NamedTempFile::new().unwrap();
    let impossible = file.path().join("under-a-file");
    let db = builder(&mock, ManualClock::trading(), Some(&impossible))
        .build()
        .await
        .unwrap();
    assert!(!db.cache_stats().persistent_enabled);
    assert!(db.get_realtime_data("600000").await.is_ok());
    assert!(db.get_realtime_data("600000").await.unwrap().cache_hit);
}

#[tokio::test]
async fn bad_configuration_is_refused_with_a_reason() {
    for (b, needle) in [
        (
            quantdb::QuantDb::builder().memory_capacity(0),
            "memory_capacity",
        ),
        (quantdb::QuantDb::builder().providers([]), "provider"),
        (
            quantdb::QuantDb::builder().providers([Provider::Sina, Provider::Sina]),
            "twice",
        ),
        (
            quantdb::QuantDb::builder().base_url(Provider::Sina, "ftp://x"),
            "ftp://x",
        ),
        (
            quantdb::QuantDb::builder().chunk_size(Provider::Tencent, 0),
            "chunk",
        ),
        (
            quantdb::QuantDb::builder().timeout(Duration::ZERO),
            "timeout",
        ),
    ] {
        let err = b.persistent(false).build().await.err().expect("must fail");
        assert_eq!(err.code(), "config_error");
        assert!(err.to_string().contains(needle), "{err}");
    }
}

#[tokio::test]
async fn flaky_upstreams_lose_nothing() {
    let mock = mock().await;
    mock.set_failure_rate(0.5);
    let db = Arc::new(
        builder(&mock, ManualClock::trading(), None)
            .chunk_size(Provider::Sina, 10)
            .build()
            .await
            .unwrap(),
    );
    let symbols = listed_symbols(200);
    let entries = db.get_realtime_data_batch(&symbols).await;
    assert_eq!(entries.len(), 200);
    for (e, s) in entries.iter().zip(&symbols) {
        match e {
            BatchEntry::Quote(q) => assert_eq!(
                &format!("{}{}", q.exchange.as_str().to_lowercase(), q.symbol),
                s
            ),
            BatchEntry::Error(err) => {
                assert_eq!(&err.symbol, s);
                assert_eq!(err.code, "upstream_unavailable");
            }
        }
    }
    let stats = db.cache_stats();
    assert!(stats.upstream_failures > 0);
    assert_eq!(stats.upstream_requests, mock.requests().total);
}

#[tokio::test]
async fn cached_quotes_are_served_stale_without_requests() {
    let mock = mock().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::trading();
    let first = builder(&mock, clock.clone(), Some(dir.path()))
        .build()
        .await
        .unwrap();
    first.get_realtime_data_batch(&["600000", "000001"]).await;
    let memory = first
        .get_cached(&["000001", "bad", "600000", "300750", "sz000001"])
        .await;
    let got: Vec<(&str, CacheSource)> = memory
        .iter()
        .map(|q| (q.symbol.as_str(), q.cache_source))
        .collect();
    assert_eq!(
        got,
        [
            ("000001", CacheSource::Memory),
            ("600000", CacheSource::Memory)
        ]
    );
    first.flush().await.unwrap();
    clock.advance(3600); // long stale
    let second = builder(&mock, clock, Some(dir.path()))
        .build()
        .await
        .unwrap();
    let disk = second.get_cached(&["600000", "000001"]).await;
    assert!(disk
        .iter()
        .all(|q| q.cache_source == CacheSource::Disk && q.cache_hit));
    assert_eq!(disk.len(), 2);
    assert_eq!(mock.requests().total, 1);
    let stats = second.cache_stats();
    assert_eq!(
        (stats.memory_hits, stats.persistent_hits, stats.misses),
        (0, 0, 0)
    );
}

#[tokio::test]
async fn a_cancelled_fetcher_does_not_strand_its_waiters() {
    let mock = mock().await;
    mock.set_latency(Duration::from_millis(300));
    let db = builder(&mock, ManualClock::trading(), None)
        .build()
        .await
        .unwrap();
    let fetcher = {
        let db = db.clone();
        tokio::spawn(async move { db.get_realtime_data("600000").await })
    };
    // Wait (by condition, not by clock) until the fetcher's request is at the mock...
    while mock.requests().total == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let waiter = {
        let db = db.clone();
        tokio::spawn(async move { db.get_realtime_data("600000").await })
    };
    // ...and the second caller is waiting on it.
    while db.cache_stats().coalesced_waits == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    fetcher.abort();
    let q = waiter
        .await
        .unwrap()
        .expect("the waiter fetches for itself");
    assert_eq!(q.name, "浦发银行");
    assert_eq!(mock.requests().total, 2);
}

#[tokio::test]
async fn not_found_needs_every_provider_to_answer_without_the_symbol() {
    let mock = mock().await;
    let db = builder(&mock, ManualClock::trading(), None)
        .build()
        .await
        .unwrap();
    // Sina and Eastmoney answer without sh603999, Tencent fails: it might have known it.
    mock.set_down("tencent", true);
    for round in 1..=2 {
        let err = db.get_realtime_data("sh603999").await.unwrap_err();
        assert_eq!(err.code(), "upstream_unavailable", "{err}");
        assert_eq!(mock.requests().total, 3 * round, "not remembered");
    }
    mock.set_down("tencent", false);
    let err = db.get_realtime_data("sh603999").await.unwrap_err();
    assert_eq!(err.code(), "not_found", "{err}");
    db.get_realtime_data("sh603999").await.unwrap_err();
    assert_eq!(mock.requests().total, 9, "remembered for the TTL");
}

/// A server answering every request with `head` and then `body_len` bytes of `x`; counts the
/// requests it got.
async fn canned(head: String, body_len: usize) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            let head = head.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf).await;
                let _ = conn.write_all(head.as_bytes()).await;
                let chunk = vec![b'x'; 64 * 1024];
                let mut left = body_len;
                while left > 0 {
                    let n = left.min(chunk.len());
                    if conn.write_all(&chunk[..n]).await.is_err() {
                        return;
                    }
                    left -= n;
                }
            });
        }
    });
    (url, count)
}

#[tokio::test]
async fn redirects_are_not_followed() {
    use std::sync::atomic::Ordering;
    let (target, reached) = canned("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".into(), 0).await;
    let head = format!(
        "HTTP/1.1 302 Found\r\nlocation: {target}/list=sh600000\r\ncontent-length: 0\r\n\r\n"
    );
    let (url, _) = canned(head, 0).await;
    let db = quantdb::QuantDb::builder()
        .persistent(false)
        .providers([Provider::Sina])
        .base_url(Provider::Sina, url)
        .build()
        .await
        .unwrap();
    let err = db.get_realtime_data("600000").await.unwrap_err();
    assert!(err.to_string().contains("302"), "{err}");
    assert_eq!(
        reached.load(Ordering::SeqCst),
        0,
        "the redirect was followed"
    );
}

#[tokio::test]
async fn answers_larger_than_a_chunk_can_be_are_refused() {
    // 100 symbols may answer at most 16 KiB + 100 KiB; this server sends 8 MB, with and
    // without announcing its length.
    for head in [
        format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", 8 << 20),
        "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n".to_string(),
    ] {
        let (url, _) = canned(head, 8 << 20).await;
        let db = quantdb::QuantDb::builder()
            .persistent(false)
            .providers([Provider::Sina])
            .base_url(Provider::Sina, url)
            .build()
            .await
            .unwrap();
        let entries = db.get_realtime_data_batch(&listed_symbols(100)).await;
        let err = entries[0].error().expect("an error");
        assert!(
            err.error.contains("larger than 118784 bytes"),
            "{}",
            err.error
        );
    }
}

fn all_down(mock: &MockUpstream, down: bool) {
    for p in ["sina", "tencent", "eastmoney"] {
        mock.set_down(p, down);
    }
}

#[tokio::test]
async fn an_upstream_outage_is_answered_stale_from_memory_then_disk() {
    let mock = mock().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::trading();
    let db = builder(&mock, clock.clone(), Some(dir.path()))
        .build()
        .await
        .unwrap();
    let fresh = db.get_realtime_data("600000").await.unwrap();
    assert!(!fresh.stale);
    db.flush().await.unwrap();
    clock.advance(60); // expired
    all_down(&mock, true);
    let stale = db.get_realtime_data("600000").await.unwrap();
    assert!(stale.stale && stale.cache_hit);
    assert_eq!(stale.cache_source, CacheSource::Memory);
    assert_eq!(stale.timestamp, fresh.timestamp, "it keeps its fetch time");
    let json = serde_json::to_value(&stale).unwrap();
    assert_eq!(json["stale"], true);
    // A new client (a restart) finds it on disk.
    let restarted = builder(&mock, clock.clone(), Some(dir.path()))
        .build()
        .await
        .unwrap();
    let from_disk = restarted.get_realtime_data("600000").await.unwrap();
    assert!(from_disk.stale);
    assert_eq!(from_disk.cache_source, CacheSource::Disk);
    assert_eq!(restarted.cache_stats().stale_served, 1);
    // A forced refresh never answers stale; an unknown symbol has nothing to answer.
    let forced = db
        .get_realtime_data_with("600000", FetchOptions::refresh())
        .await;
    assert_eq!(forced.unwrap_err().code(), "upstream_unavailable");
    assert!(db.get_realtime_data("000002").await.is_err());
    assert_eq!(db.cache_stats().stale_served, 1);
    // Nothing stale was written back: once the upstreams are back, the next call fetches.
    all_down(&mock, false);
    let requests = mock.requests().total;
    let back = db.get_realtime_data("600000").await.unwrap();
    assert!(!back.stale && back.cache_source == CacheSource::Network);
    assert_eq!(mock.requests().total, requests + 1);
}

#[tokio::test]
async fn stale_answers_are_bounded_by_max_stale() {
    let mock = mock().await;
    // The default: until the next session starts (13:00 after a 10:00 quote).
    let clock = ManualClock::trading();
    let db = builder(&mock, clock.clone(), None).build().await.unwrap();
    db.get_realtime_data("600000").await.unwrap();
    all_down(&mock, true);
    clock.advance(55 * 60); // 10:55
    assert!(db.get_realtime_data("600000").await.unwrap().stale);
    clock.advance(3 * 3600); // 13:55: a new session has started
    let err = db.get_realtime_data("600000").await.unwrap_err();
    assert_eq!(err.code(), "upstream_unavailable");
    // A fixed bound, and 0 to turn it off.
    for (max, age, served) in [(120, 100, true), (120, 130, false), (0, 31, false)] {
        all_down(&mock, false);
        let clock = ManualClock::trading();
        let db = builder(&mock, clock.clone(), None)
            .max_stale(Duration::from_secs(max))
            .build()
            .await
            .unwrap();
        db.get_realtime_data("600000").await.unwrap();
        all_down(&mock, true);
        clock.advance(age);
        let answer = db.get_realtime_data("600000").await;
        assert_eq!(
            answer.is_ok(),
            served,
            "max {max} s, age {age} s: {answer:?}"
        );
    }
}

#[tokio::test]
async fn error_entries_carry_the_canonical_symbol_and_the_input() {
    let mock = mock().await;
    let db = builder(&mock, ManualClock::trading(), None)
        .build()
        .await
        .unwrap();
    let entries = db
        .get_realtime_data_batch(&["603999.SH", "nonsense", "000001.SZ"])
        .await;
    let json = serde_json::to_value(&entries).unwrap();
    assert_eq!(json[0]["symbol"], "sh603999");
    assert_eq!(json[0]["input"], "603999.SH");
    assert_eq!(json[0]["code"], "not_found");
    assert_eq!(
        (json[1]["symbol"].as_str(), json[1]["input"].as_str()),
        (Some("nonsense"), Some("nonsense"))
    );
    assert_eq!(
        json[2]["symbol"], "000001",
        "a quote keeps its 6-digit symbol"
    );
}
