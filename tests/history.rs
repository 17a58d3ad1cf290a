//! Daily history against the mock upstream's synthetic ten-year market: exact upstream request
//! counts for every caching rule, values against the mock's own bars and factors, the three
//! upstreams against each other, the file cache across clients, bad input.
#![cfg(not(target_arch = "wasm32"))]

#[path = "support/common.rs"]
mod common;

use std::sync::Arc;

use chrono::{Datelike, NaiveDate};
use common::{builder, ManualClock};
use mock_upstream::history as mock_history;
use mock_upstream::{HistoryCounts, MockConfig, MockUpstream};
use quantdb::history::{Adjust, HistoryRequest, Period, RawBar};
use quantdb::{Bar, Error, HistoryEntry, Provider, QuantDb};

fn d(text: &str) -> NaiveDate {
    quantdb::history::parse_date(text).unwrap()
}

/// A mock and a clock agreeing on the time (exchange time).
async fn setup(local: &str) -> (MockUpstream, Arc<ManualClock>) {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let clock = ManualClock::trading();
    at(&mock, &clock, local);
    (mock, clock)
}

fn at(mock: &MockUpstream, clock: &ManualClock, local: &str) {
    clock.set_local(local);
    mock.set_now(Some(
        chrono::DateTime::from_timestamp(clock_secs(clock), 0)
            .unwrap()
            .with_timezone(&tz()),
    ));
}

fn clock_secs(clock: &ManualClock) -> i64 {
    use quantdb::Clock;
    clock.now().timestamp()
}

fn tz() -> chrono::FixedOffset {
    chrono::FixedOffset::east_opt(8 * 3600).unwrap()
}

async fn client(
    mock: &MockUpstream,
    clock: &Arc<ManualClock>,
    dir: Option<&std::path::Path>,
) -> QuantDb {
    builder(mock, clock.clone(), dir).build().await.unwrap()
}

fn range(start: &str, end: &str) -> HistoryRequest {
    HistoryRequest::range(start, end).unwrap()
}

/// The history requests since the last call, per endpoint.
fn taken(mock: &MockUpstream) -> HistoryCounts {
    let counts = mock.history_counts();
    mock.reset_counts();
    counts
}

fn em(n: u64) -> HistoryCounts {
    HistoryCounts {
        eastmoney_kline: n,
        total: n,
        ..Default::default()
    }
}

/// The mock's raw bars of `key` from `from` to `to`, as quantdb reads them.
fn truth(mock: &MockUpstream, key: &str, from: &str, to: &str) -> Vec<mock_history::MockBar> {
    mock_history::bars_between(key, d(from), d(to), mock.now(), mock.tick()).unwrap()
}

fn assert_raw_equal(bars: &[Bar], truth: &[mock_history::MockBar]) {
    assert_eq!(bars.len(), truth.len(), "bar count");
    for (b, t) in bars.iter().zip(truth) {
        assert_eq!(b.date, t.date);
        assert_eq!(
            (b.open, b.high, b.low, b.close),
            (t.open, t.high, t.low, t.close),
            "{}",
            b.date
        );
        assert_eq!(b.volume, t.volume as f64, "{} volume in shares", b.date);
        let change = b.change.expect("every bar has its previous close");
        assert!(
            (change - (t.close - t.prev_close)).abs() < 1e-6,
            "{} change",
            b.date
        );
    }
}

/// A stock listed before 2015, with no suspension in 2024 and an ex-event in 2024.
fn ordinary(today: NaiveDate) -> String {
    MockUpstream::listed_keys()
        .into_iter()
        .filter(|k| k.starts_with("sh6") || k.starts_with("sz0"))
        .find(|k| {
            mock_history::listing_date(k).is_some_and(|l| l.year() < 2015)
                && mock_history::suspensions(k, today)
                    .unwrap()
                    .iter()
                    .all(|w| w.1.year() < 2023)
                && mock_history::ex_dates(k, today)
                    .iter()
                    .any(|e| e.year() == 2024)
                && !mock_history::ex_dates(k, today)
                    .iter()
                    .any(|e| e.year() == 2026 && e.month() > 10)
        })
        .expect("the mock lists such a stock")
}

#[tokio::test]
async fn a_cold_year_then_six_more_months_then_nothing_then_a_new_client() {
    let (mock, clock) = setup("2026-11-30T10:00:00").await;
    let dir = tempfile::tempdir().unwrap();
    let key = ordinary(d("2026-11-30"));
    let db = client(&mock, &clock, Some(dir.path())).await;

    let half = db
        .get_stock_data(&key, range("20240101", "20240630"))
        .await
        .unwrap();
    assert_eq!(taken(&mock), em(1), "a cold half year: one request");
    assert_raw_equal(&half, &truth(&mock, &key, "2024-01-01", "2024-06-30"));

    let year = db
        .get_stock_data(&key, range("2024-01-01", "2024-12-31"))
        .await
        .unwrap();
    assert_eq!(
        taken(&mock),
        em(1),
        "the year: only its second half is fetched"
    );
    assert_raw_equal(&year, &truth(&mock, &key, "2024-01-01", "2024-12-31"));

    let again = db
        .get_stock_data(&key, range("20240101", "20241231"))
        .await
        .unwrap();
    assert_eq!(taken(&mock), em(0), "asked again: nothing fetched");
    assert_eq!(again, year);
    let inner = db
        .get_stock_data(&key, range("20240301", "20240315"))
        .await
        .unwrap();
    assert_eq!(taken(&mock).total, 0);
    assert_eq!(
        inner.first().unwrap().date,
        truth(&mock, &key, "2024-03-01", "2024-03-15")[0].date
    );
    db.flush().await.unwrap();

    let fresh = client(&mock, &clock, Some(dir.path())).await;
    let from_disk = fresh
        .get_stock_data(&key, range("20240101", "20241231"))
        .await
        .unwrap();
    assert_eq!(
        taken(&mock),
        em(0),
        "a new client on the same cache: nothing fetched"
    );
    assert_eq!(from_disk, year);
    let s = fresh.cache_stats();
    assert_eq!(
        (
            s.history_hits,
            s.history_misses,
            s.history_upstream_requests
        ),
        (1, 0, 0)
    );
    let s = db.cache_stats();
    assert_eq!(
        (
            s.history_hits,
            s.history_misses,
            s.history_upstream_requests
        ),
        (2, 2, 2)
    );
    assert_eq!(s.history_bars_fetched as usize, year.len());
}

#[tokio::test]
async fn suspensions_and_dates_before_listing_are_fetched_once() {
    let (mock, clock) = setup("2026-11-30T10:00:00").await;
    let today = d("2026-11-30");
    let keys = MockUpstream::listed_keys();
    // A stock with a past suspension of at least five trading days, listed before it.
    let (key, (s, e)) = keys
        .iter()
        .filter(|k| !k.starts_with("sh000") && !k.starts_with("sz399"))
        .find_map(|k| {
            let w = *mock_history::suspensions(k, today)?.iter().find(|w| {
                w.1.year() >= 2020 && w.1 < d("2026-06-01") && (w.1 - w.0).num_days() >= 7
            })?;
            Some((k.clone(), w))
        })
        .expect("a suspended stock");
    let db = client(&mock, &clock, None).await;
    let inside = HistoryRequest {
        start: Some(s),
        end: Some(e),
        ..Default::default()
    };
    let bars = db.get_stock_data(&key, inside).await.unwrap();
    assert!(bars.is_empty());
    assert_eq!(
        taken(&mock),
        em(2),
        "empty: asked again up to today to trust it"
    );
    assert!(db.get_stock_data(&key, inside).await.unwrap().is_empty());
    assert_eq!(taken(&mock), em(0), "the suspension is never fetched again");
    let across = HistoryRequest {
        start: Some(s - chrono::Days::new(20)),
        end: Some(e + chrono::Days::new(20)),
        ..Default::default()
    };
    let bars = db.get_stock_data(&key, across).await.unwrap();
    assert_eq!(taken(&mock), em(1), "only the days before the suspension");
    assert!(bars.iter().all(|b| b.date < s || b.date > e));
    assert!(!bars.is_empty());
    db.get_stock_data(&key, across).await.unwrap();
    assert_eq!(taken(&mock).total, 0, "covered by the earlier answers");

    // A stock listed in 2025: a range reaching before its listing costs one request, and a
    // range entirely before it two (the second confirms the empty answer), once.
    let late = keys
        .iter()
        .find(|k| mock_history::listing_date(k).is_some_and(|l| l.year() == 2025 && l.month() > 3))
        .expect("a stock listed in 2025");
    let listed = mock_history::listing_date(late).unwrap();
    let db = client(&mock, &clock, None).await;
    let bars = db
        .get_stock_data(late, range("20240601", "20251231"))
        .await
        .unwrap();
    assert_eq!(taken(&mock), em(1));
    assert_eq!(bars[0].date, listed);
    db.get_stock_data(late, range("20240601", "20251231"))
        .await
        .unwrap();
    assert_eq!(taken(&mock), em(0));
    let db = client(&mock, &clock, None).await;
    assert!(db
        .get_stock_data(late, range("20240101", "20240331"))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(taken(&mock), em(2));
    assert!(db
        .get_stock_data(late, range("20240101", "20240331"))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(taken(&mock), em(0));
}

#[tokio::test]
async fn todays_bar_is_provisional_until_the_day_is_settled() {
    let (mock, clock) = setup("2026-11-30T10:00:00").await;
    let key = ordinary(d("2026-11-30"));
    let db = client(&mock, &clock, None).await;
    let last = |bars: &[Bar]| *bars.last().unwrap();
    // History requests, and realtime quote requests, since the last call.
    let both = |mock: &MockUpstream| {
        let quotes = mock.requests().total;
        (taken(mock), quotes)
    };

    let bars = db
        .get_stock_data(&key, HistoryRequest::last_days(5))
        .await
        .unwrap();
    assert_eq!(
        both(&mock),
        (em(1), 1),
        "the bars to yesterday, and today's quote"
    );
    assert_eq!(bars.len(), 5);
    let quote = mock.market_quote(&key).unwrap();
    let today = last(&bars);
    assert_eq!(
        (today.date, today.open, today.high, today.low, today.close),
        (
            d("2026-11-30"),
            quote.open,
            quote.high,
            quote.low,
            quote.price
        ),
        "today's bar is the quote"
    );
    assert_eq!(
        (today.volume, today.amount),
        (quote.volume as f64, Some(quote.amount))
    );

    clock.advance(10);
    db.get_stock_data(&key, HistoryRequest::last_days(5))
        .await
        .unwrap();
    assert_eq!(
        both(&mock),
        (em(0), 0),
        "within the trading TTL: from memory"
    );
    mock.set_tick(7);
    clock.advance(30);
    let bars = db
        .get_stock_data(&key, HistoryRequest::last_days(5))
        .await
        .unwrap();
    assert_eq!(
        both(&mock),
        (em(0), 1),
        "expired: only the quote is asked again"
    );
    assert_eq!(last(&bars).close, mock.market_quote(&key).unwrap().price);

    at(&mock, &clock, "2026-11-30T16:00:00");
    mock.set_tick(9);
    let bars = db
        .get_stock_data(&key, HistoryRequest::last_days(5))
        .await
        .unwrap();
    assert_eq!(
        taken(&mock),
        em(1),
        "after the close: the final bar replaces it"
    );
    assert_eq!(last(&bars).close, mock.market_quote(&key).unwrap().price);
    clock.advance(3600);
    db.get_stock_data(&key, HistoryRequest::last_days(5))
        .await
        .unwrap();
    assert_eq!(taken(&mock), em(0), "the settled day is covered");
}

/// A new dividend costs one factor request: no bar is fetched again, and the qfq history
/// re-bases on the new factor.
#[tokio::test]
async fn a_new_dividend_costs_one_factor_request_and_rebases_qfq() {
    let today = d("2026-11-30");
    // A stock with an ex-date in 2025 (after June, so a year of bars before it is known).
    let (key, ex) = MockUpstream::listed_keys()
        .into_iter()
        .filter(|k| !k.starts_with("sh000") && !k.starts_with("sz399"))
        .find_map(|k| {
            let ex = *mock_history::ex_dates(&k, today)
                .iter()
                .find(|e| e.year() == 2025 && e.month() >= 6)?;
            let quiet = mock_history::suspensions(&k, today)
                .unwrap()
                .iter()
                .all(|w| w.1 < d("2024-01-01"));
            quiet.then_some((k, ex))
        })
        .expect("a stock with a 2025 dividend");
    let day_before =
        mock_history::trading_days(ex - chrono::Days::new(10), ex - chrono::Days::new(1));
    let day_before = *day_before.last().unwrap();
    let (mock, clock) = setup(&format!("{day_before}T16:00:00")).await;
    let db = client(&mock, &clock, None).await;
    let year = HistoryRequest {
        start: Some(d("2024-07-01")),
        end: None,
        ..Default::default()
    }
    .adjust(Adjust::Qfq);

    let before = db.get_stock_data(&key, year).await.unwrap();
    let c = taken(&mock);
    assert_eq!((c.eastmoney_kline, c.sina_factors, c.total), (1, 1, 2));
    let factors_then = mock_history::factors(&key, day_before).unwrap();
    let f = |table: &[(NaiveDate, f64)], d: NaiveDate| {
        table.iter().rev().find(|r| r.0 <= d).map_or(1.0, |r| r.1)
    };
    let raw = truth(&mock, &key, "2024-07-01", &day_before.to_string());
    let latest = f(&factors_then, day_before);
    for (b, t) in before.iter().zip(&raw) {
        let expected = t.close * f(&factors_then, t.date) / latest;
        assert!(
            (b.close - expected).abs() < 1e-5,
            "{} {} {}",
            b.date,
            b.close,
            expected
        );
    }

    at(&mock, &clock, &format!("{ex}T16:00:00"));
    let after = db.get_stock_data(&key, year).await.unwrap();
    let c = taken(&mock);
    assert_eq!(
        (c.eastmoney_kline, c.sina_factors, c.total),
        (1, 1, 2),
        "the new day's bar and the factors"
    );
    let factors_now = mock_history::factors(&key, ex).unwrap();
    assert!(
        factors_now.len() > factors_then.len(),
        "the dividend is in the table"
    );
    let latest = f(&factors_now, ex);
    assert_eq!(after.len(), before.len() + 1);
    for (b, t) in after
        .iter()
        .zip(&truth(&mock, &key, "2024-07-01", &ex.to_string()))
    {
        let expected = t.close * f(&factors_now, t.date) / latest;
        assert!(
            (b.close - expected).abs() < 1e-5,
            "{} re-based: {} vs {expected} (raw {}, {:?})",
            b.date,
            b.close,
            t.close,
            factors_now
        );
    }
    assert!(
        after[0].close < before[0].close,
        "earlier prices went down by the dividend"
    );
    // The ex-date's change is against the ex-adjusted close, not a drop.
    let t = truth(&mock, &key, &ex.to_string(), &ex.to_string())[0].clone();
    let pct = after.last().unwrap().change_percent.unwrap();
    assert!(
        (pct - (t.close / t.prev_close - 1.0) * 100.0).abs() < 1e-4,
        "{pct}"
    );
    // hfq: the same bars times F.
    let hfq = db
        .get_stock_data(&key, year.adjust(Adjust::Hfq))
        .await
        .unwrap();
    assert_eq!(taken(&mock).total, 0, "factors are fetched once a day");
    let last = hfq.last().unwrap();
    assert!((last.close - t.close * latest).abs() < 1e-5);
}

/// The same range through each upstream: the same bars, in the same units.
#[tokio::test]
async fn the_three_upstreams_agree() {
    let (mock, clock) = setup("2026-11-30T16:00:00").await;
    let key = ordinary(d("2026-11-30"));
    let star = MockUpstream::listed_keys()
        .into_iter()
        .find(|k| k.starts_with("sh688"))
        .unwrap();
    let request = range("20260601", "20261130");
    for key in [key.as_str(), star.as_str(), "sz300750"] {
        let mut answers: Vec<Vec<RawBar>> = Vec::new();
        for provider in [Provider::Eastmoney, Provider::Tencent, Provider::Sina] {
            let db = builder(&mock, clock.clone(), None)
                .history_providers([provider])
                .build()
                .await
                .unwrap();
            let bars = db
                .get_raw_bars(key, request.start.unwrap(), request.end.unwrap())
                .await
                .unwrap();
            let c = taken(&mock);
            let expected = match provider {
                Provider::Eastmoney => c.eastmoney_kline,
                Provider::Tencent => c.tencent_kline,
                _ => c.sina_kline,
            };
            assert_eq!((expected, c.total), (1, 1), "{key} via {provider}");
            answers.push(bars);
        }
        let t = truth(&mock, key, "2026-06-01", "2026-11-30");
        for (bars, provider) in answers.iter().zip(["eastmoney", "tencent", "sina"]) {
            assert_eq!(bars.len(), t.len(), "{key} via {provider}");
            for (b, t) in bars.iter().zip(&t) {
                assert_eq!(
                    (b.date, b.open, b.high, b.low, b.close),
                    (t.date, t.open, t.high, t.low, t.close),
                    "{key} {provider}"
                );
                assert_eq!(
                    b.volume, t.volume as f64,
                    "{key} {provider} {} volume in shares",
                    b.date
                );
            }
        }
        assert!(
            answers[0]
                .iter()
                .zip(&t)
                .all(|(b, t)| b.amount == Some(t.amount)),
            "Eastmoney's amount"
        );
    }
}

#[tokio::test]
async fn weeks_and_months_come_from_the_daily_bars() {
    let (mock, clock) = setup("2026-11-30T16:00:00").await;
    let key = ordinary(d("2026-11-30"));
    let db = client(&mock, &clock, None).await;
    let daily = db
        .get_stock_data(&key, range("20240101", "20241231"))
        .await
        .unwrap();
    let weekly = db
        .get_stock_data(&key, range("20240101", "20241231").period(Period::Weekly))
        .await
        .unwrap();
    let monthly = db
        .get_stock_data(&key, range("20240101", "20241231").period(Period::Monthly))
        .await
        .unwrap();
    assert_eq!(
        taken(&mock),
        em(1),
        "weeks and months are built, not fetched"
    );
    assert_eq!(monthly.len(), 12);
    let weeks: std::collections::BTreeSet<_> = daily
        .iter()
        .map(|b| (b.date.iso_week().year(), b.date.iso_week().week()))
        .collect();
    assert_eq!(weekly.len(), weeks.len());
    for m in &monthly {
        let days: Vec<&Bar> = daily
            .iter()
            .filter(|b| b.date.month() == m.date.month())
            .collect();
        assert_eq!(m.date, days.last().unwrap().date);
        assert_eq!(
            (m.open, m.close),
            (days[0].open, days.last().unwrap().close)
        );
        assert_eq!(m.volume, days.iter().map(|b| b.volume).sum::<f64>());
        assert_eq!(m.high, days.iter().map(|b| b.high).fold(f64::MIN, f64::max));
    }
}

#[tokio::test]
async fn bad_requests_fetch_nothing() {
    let (mock, clock) = setup("2026-11-30T10:00:00").await;
    let db = builder(&mock, clock.clone(), None)
        .max_history_bars(300)
        .build()
        .await
        .unwrap();
    let code = |r: Result<Vec<Bar>, Error>| r.unwrap_err().code();
    let bad = [
        (
            db.get_stock_data("600000", range("20240301", "20240101"))
                .await,
            "invalid_request",
        ),
        (
            db.get_stock_data("600000", range("20270101", "20271231"))
                .await,
            "invalid_request",
        ),
        (
            db.get_stock_data("600000", range("20200101", "20241231"))
                .await,
            "invalid_request",
        ),
        (
            db.get_stock_data("600000", HistoryRequest::last_days(301))
                .await,
            "invalid_request",
        ),
        (
            db.get_stock_data("600000", HistoryRequest::last_days(0))
                .await,
            "invalid_request",
        ),
        (
            db.get_stock_data("60000x", HistoryRequest::last_days(5))
                .await,
            "invalid_symbol",
        ),
    ];
    for (i, (result, expected)) in bad.into_iter().enumerate() {
        assert_eq!(code(result), expected, "case {i}");
    }
    assert_eq!(taken(&mock).total, 0);
    let e = db
        .get_stock_data("600000", range("20200101", "20241231"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("more than the limit of 300"), "{e}");
    assert!("weird"
        .parse::<Adjust>()
        .unwrap_err()
        .to_string()
        .contains("qfq"));
    assert!(HistoryRequest::range("2024/01/01", "20240102").is_err());
}

#[tokio::test]
async fn fallback_and_unknown_symbols() {
    let (mock, clock) = setup("2026-11-30T16:00:00").await;
    let key = ordinary(d("2026-11-30"));
    mock.set_down("eastmoney", true);
    let db = client(&mock, &clock, None).await;
    let bars = db
        .get_stock_data(&key, range("20260101", "20260630"))
        .await
        .unwrap();
    let c = taken(&mock);
    assert_eq!(
        (c.eastmoney_kline, c.tencent_kline, c.total),
        (1, 1, 2),
        "Tencent after Eastmoney failed"
    );
    assert_raw_equal(
        &bars[1..],
        &truth(&mock, &key, "2026-01-01", "2026-06-30")[1..],
    );
    mock.set_down("tencent", true);
    mock.set_down("sina", true);
    let e = db
        .get_stock_data(&key, range("20250101", "20250630"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "upstream_unavailable", "{e}");
    mock.set_down("eastmoney", false);
    mock.set_down("tencent", false);
    mock.set_down("sina", false);
    // A well-formed code the market does not list: every upstream says so.
    let unlisted = (600_000..610_000)
        .map(|n| format!("sh{n}"))
        .find(|k| !MockUpstream::listed_keys().contains(k))
        .unwrap();
    let e = db
        .get_stock_data(&unlisted, range("20260101", "20260630"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "not_found", "{e}");

    let entries = db
        .get_multiple_stocks(
            &[key.as_str(), "bad!", unlisted.as_str(), key.as_str()],
            range("20260101", "20260630"),
        )
        .await;
    assert_eq!(entries.len(), 3, "one entry per distinct input");
    assert!(
        matches!(&entries[0], HistoryEntry::Bars { symbol, bars, .. } if *symbol == key && !bars.is_empty())
    );
    assert!(matches!(&entries[1], HistoryEntry::Error(e) if e.code == "invalid_symbol"));
    assert!(matches!(&entries[2], HistoryEntry::Error(e) if e.code == "not_found"));
}
