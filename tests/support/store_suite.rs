//! The behaviour every persistent store must have, run against each backend (the file cache
//! natively, IndexedDB in the browser) so they cannot drift apart.
#![allow(dead_code)]

use chrono::{DateTime, TimeZone, Utc};
use quantdb::{CacheSource, Exchange, MarketStatus, Provider, Quote, Store, Stored, Symbol};

pub fn sample(key: &str, price: f64, fetched_ms: i64) -> Quote {
    let symbol = Symbol::from_key(key).expect("a valid key");
    let tz = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
    let fetched: DateTime<Utc> = Utc.timestamp_millis_opt(fetched_ms).unwrap();
    Quote {
        symbol: symbol.code().to_string(),
        exchange: symbol.exchange(),
        name: "测试股份".to_string(),
        current_price: price,
        change: 0.12,
        change_percent: 1.23,
        open: Some(price - 0.1),
        high: None,
        low: Some(price - 0.2),
        prev_close: price - 0.12,
        volume: 123_456_700,
        amount: 987_654_321.5,
        quote_time: Some(tz.with_ymd_and_hms(2026, 11, 30, 10, 0, 3).unwrap()),
        timestamp: fetched.with_timezone(&tz),
        cache_hit: false,
        cache_source: CacheSource::Network,
        stale: false,
        source: Provider::Tencent,
        market_status: MarketStatus::Trading,
    }
}

fn sym(key: &str) -> Symbol {
    Symbol::from_key(key).unwrap()
}

fn found(slot: &Stored) -> &Quote {
    match slot {
        Stored::Found(q) => q,
        other => panic!("expected an entry, got {other:?}"),
    }
}

/// Every check on one store, starting from whatever it holds.
pub async fn check_store(store: &dyn Store) {
    const T: i64 = 1_796_011_200_123; // 2026-11-30T10:00:00.123+08:00
    store.clear().await.unwrap();
    assert_eq!(store.entry_count(), Some(0));
    let (a, b, c) = (sym("sh600000"), sym("sz000001"), sym("bj430017"));
    assert_eq!(
        store.load(&[a, b]).await.unwrap(),
        vec![Stored::Missing, Stored::Missing]
    );

    let qa = sample("sh600000", 9.05, T);
    let qb = sample("sz000001", 11.5, T + 1);
    store.save(&[qa.clone(), qb.clone()]).await.unwrap();
    let got = store.load(&[a, c, b]).await.unwrap();
    assert_eq!(
        found(&got[0]),
        &qa,
        "round trip keeps every field, fetch time to the ms"
    );
    assert_eq!(got[1], Stored::Missing);
    assert_eq!(found(&got[2]), &qb);
    assert_eq!(store.entry_count(), Some(2));

    // A later save replaces; an index and a stock with the same code are separate entries.
    let qa2 = sample("sh600000", 9.10, T + 5_000);
    let index = sample("sh000001", 3300.5, T);
    let stock = sample("sz000001", 11.6, T);
    store
        .save(&[qa2.clone(), index.clone(), stock.clone()])
        .await
        .unwrap();
    let got = store.load(&[a, sym("sh000001"), b]).await.unwrap();
    assert_eq!(found(&got[0]), &qa2);
    assert_eq!(found(&got[1]).exchange, Exchange::Shanghai);
    assert_eq!(found(&got[1]).current_price, 3300.5);
    assert_eq!(found(&got[2]), &stock);
    assert_eq!(store.entry_count(), Some(3));

    store.remove(a).await.unwrap();
    store.remove(a).await.unwrap(); // absent: still fine
    assert_eq!(store.load(&[a]).await.unwrap(), vec![Stored::Missing]);
    assert_eq!(store.entry_count(), Some(2));

    // A whole market's worth in one call.
    let many: Vec<Quote> = (0..600)
        .map(|i| sample(&format!("sz{:06}", 2000 + i), 10.0 + i as f64, T))
        .collect();
    store.save(&many).await.unwrap();
    let keys: Vec<Symbol> = many.iter().map(|q| q.key().unwrap()).collect();
    let got = store.load(&keys).await.unwrap();
    for (slot, q) in got.iter().zip(&many) {
        assert_eq!(found(slot), q);
    }
    assert_eq!(store.entry_count(), Some(602));

    store.clear().await.unwrap();
    assert_eq!(store.entry_count(), Some(0));
    assert_eq!(
        store.load(&[b, keys[0]]).await.unwrap(),
        vec![Stored::Missing, Stored::Missing]
    );
}

/// Two handles on the same location see each other's writes (two clients, or a reload).
pub async fn check_shared(first: &dyn Store, second: &dyn Store) {
    first.clear().await.unwrap();
    let q = sample("sh601318", 45.6, 1_796_011_200_000);
    first.save(std::slice::from_ref(&q)).await.unwrap();
    let got = second.load(&[sym("sh601318")]).await.unwrap();
    assert_eq!(found(&got[0]), &q);
    second.clear().await.unwrap();
    assert_eq!(
        first.load(&[sym("sh601318")]).await.unwrap(),
        vec![Stored::Missing]
    );
}
