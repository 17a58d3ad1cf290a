//! Speed figures for daily history: ten years of one symbol from the file cache in a fresh
//! client, deriving qfq for 2,500 bars, and 300 symbols × one year cold against the mock
//! upstream at 50 ms latency (with its request count) and warm.
//! Run with `cargo bench --bench history`.
//! (Native only: on wasm32 this target is empty.)

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
criterion::criterion_main!(native::benches);

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::hint::black_box;
    use std::time::Duration;

    use criterion::{criterion_group, BatchSize, Criterion};
    use mock_upstream::{MockConfig, MockUpstream};
    use quantdb::history::{derive, Adjust, Factors, HistoryRequest, RawBar};
    use quantdb::{FixedClock, HistoryEntry, Provider, QuantDb, QuantDbBuilder};
    use tokio::runtime::Runtime;

    /// Monday 2026-11-30 after the close, for the client and the mock alike.
    const NOW: &str = "2026-11-30T16:00:00+08:00";

    fn client(mock: &MockUpstream) -> QuantDbBuilder {
        let now = chrono::DateTime::parse_from_rfc3339(NOW).unwrap();
        let mut b = QuantDb::builder().clock(std::sync::Arc::new(FixedClock(now.to_utc())));
        for p in Provider::ALL {
            b = b.base_url(p, mock.base_url());
        }
        b
    }

    fn mock(rt: &Runtime) -> MockUpstream {
        let mock = rt
            .block_on(MockUpstream::start(MockConfig::default()))
            .unwrap();
        mock.set_now(Some(chrono::DateTime::parse_from_rfc3339(NOW).unwrap()));
        mock
    }

    /// Stocks listed before 2015 (ten years of bars), no indices.
    fn old_stocks(n: usize) -> Vec<String> {
        MockUpstream::listed_keys()
            .into_iter()
            .filter(|k| !k.starts_with("sh000") && !k.starts_with("sz399"))
            .filter(|k| {
                mock_upstream::history::listing_date(k)
                    .is_some_and(|d| chrono::Datelike::year(&d) < 2015)
            })
            .take(n)
            .collect()
    }

    fn ten_years(c: &mut Criterion) {
        let rt = Runtime::new().unwrap();
        let mock = mock(&rt);
        let key = old_stocks(1).remove(0);
        let request = HistoryRequest::range("20161201", "20261130").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let writer = rt
            .block_on(client(&mock).cache_dir(dir.path()).build())
            .unwrap();
        let bars = rt.block_on(writer.get_stock_data(&key, request)).unwrap();
        let qfq = request.adjust(Adjust::Qfq);
        rt.block_on(writer.get_stock_data(&key, qfq)).unwrap();
        rt.block_on(writer.flush()).unwrap();
        assert!(bars.len() > 2_300, "{} bars", bars.len());
        let open = || {
            rt.block_on(client(&mock).cache_dir(dir.path()).build())
                .unwrap()
        };
        mock.reset_counts();
        let mut group = c.benchmark_group("history_ten_years");
        group.bench_function("file_cache_fresh_client", |b| {
            b.iter_batched(
                open,
                |fresh| {
                    (
                        rt.block_on(fresh.get_stock_data(&key, request)).unwrap(),
                        fresh,
                    )
                },
                BatchSize::PerIteration,
            )
        });
        group.bench_function("memory_qfq", |b| {
            b.iter(|| {
                rt.block_on(writer.get_stock_data(&key, black_box(qfq)))
                    .unwrap()
            })
        });
        group.finish();
        assert_eq!(
            mock.history_counts().total,
            0,
            "every figure above is from the cache"
        );
    }

    fn derive_qfq(c: &mut Criterion) {
        let start = chrono::NaiveDate::from_ymd_opt(2016, 1, 4).unwrap();
        let raw: Vec<RawBar> = (0..2_500)
            .map(|i| {
                let close = 10.0 + (i % 50) as f64 / 10.0;
                RawBar {
                    date: start + chrono::Days::new(i),
                    open: close,
                    high: close + 0.2,
                    low: close - 0.2,
                    close,
                    volume: 1e6,
                    amount: Some(1e7),
                    turnover_rate: Some(1.0),
                    prev_close: None,
                }
            })
            .collect();
        let factors = Factors::new(
            (0..10)
                .map(|y| {
                    (
                        start + chrono::Days::new(180 + 365 * y),
                        1.0 + 0.05 * y as f64,
                    )
                })
                .collect(),
        );
        c.bench_function("derive_qfq_2500_bars", |b| {
            b.iter(|| derive(black_box(&raw), None, Some(&factors), Adjust::Qfq))
        });
    }

    fn three_hundred(c: &mut Criterion) {
        let rt = Runtime::new().unwrap();
        let mock = mock(&rt);
        mock.set_latency(Duration::from_millis(50));
        let symbols = old_stocks(300);
        let year = HistoryRequest::range("20251201", "20261130").unwrap();
        let mut group = c.benchmark_group("history_300_symbols_one_year");
        group
            .sample_size(10)
            .measurement_time(Duration::from_secs(10));
        mock.reset_counts();
        let mut runs = 0;
        group.bench_function("cold_mock_50ms_latency", |b| {
            b.iter_batched(
                || {
                    rt.block_on(client(&mock).persistent(false).build())
                        .unwrap()
                },
                |fresh| {
                    runs += 1;
                    let entries = rt.block_on(fresh.get_multiple_stocks(&symbols, year));
                    assert!(entries
                        .iter()
                        .all(|e| matches!(e, HistoryEntry::Bars { .. })));
                    (entries, fresh)
                },
                BatchSize::PerIteration,
            )
        });
        let requests = mock.history_counts().total;
        println!(
            "history_300_symbols_one_year/cold: {requests} requests over {runs} runs ({} a run)",
            requests / runs.max(1)
        );
        assert_eq!(requests, 300 * runs, "one request a symbol");
        let warm = rt
            .block_on(client(&mock).persistent(false).build())
            .unwrap();
        rt.block_on(warm.get_multiple_stocks(&symbols, year));
        mock.reset_counts();
        group.bench_function("warm", |b| {
            b.iter(|| rt.block_on(warm.get_multiple_stocks(black_box(&symbols), year)))
        });
        assert_eq!(mock.history_counts().total, 0);
        group.finish();
    }

    criterion_group!(benches, derive_qfq, ten_years, three_hundred);
}
