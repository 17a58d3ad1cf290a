//! Speed figures: parsing 5,000-symbol answers, 100-symbol batches from memory, from the file
//! cache in a fresh client, and cold against the mock upstream with 50 ms latency; the whole
//! market cold (with and without the persistent tier), warm, and from the file cache in a
//! fresh client; a 100-symbol forced refresh.
//! Run with `cargo bench --bench quotes`.
//! (Native only: on wasm32 this target is empty.)

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
criterion::criterion_main!(native::benches);

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::cell::RefCell;
    use std::hint::black_box;
    use std::time::Duration;

    use criterion::{criterion_group, BatchSize, Criterion};
    use mock_upstream::{MockConfig, MockUpstream};
    use quantdb::{FetchOptions, FixedClock, MarketPhase, Provider, QuantDb, QuantDbBuilder};
    use tokio::runtime::Runtime;

    fn keys(n: usize) -> Vec<String> {
        MockUpstream::listed_keys().into_iter().take(n).collect()
    }

    fn parse(c: &mut Criterion) {
        let keys = keys(5000);
        let mut group = c.benchmark_group("parse_5000");
        for (provider, mock_provider) in [
            (Provider::Sina, mock_upstream::Provider::Sina),
            (Provider::Tencent, mock_upstream::Provider::Tencent),
            (Provider::Eastmoney, mock_upstream::Provider::Eastmoney),
        ] {
            let body = mock_upstream::answer_body(mock_provider, &keys, 0);
            let now = chrono::Utc::now();
            let answers = provider.answers(&body, now, MarketPhase::Trading).unwrap();
            assert_eq!(answers.iter().filter(|(_, a)| a.is_ok()).count(), 5000);
            group.bench_function(provider.name(), |b| {
                b.iter(|| {
                    provider
                        .answers(black_box(&body), now, MarketPhase::Trading)
                        .unwrap()
                })
            });
        }
        group.finish();
    }

    /// A client of the mock on a clock stopped on a Monday at 10:00 (continuous trading): no
    /// figure depends on the time of day it was measured at (a TTL ends at a session boundary).
    fn client(mock: &MockUpstream) -> QuantDbBuilder {
        let monday = chrono::DateTime::parse_from_rfc3339("2026-11-30T10:00:00+08:00").unwrap();
        let mut b = QuantDb::builder().clock(std::sync::Arc::new(FixedClock(monday.to_utc())));
        for p in Provider::ALL {
            b = b.base_url(p, mock.base_url());
        }
        b
    }

    fn batches(c: &mut Criterion) {
        let rt = Runtime::new().unwrap();
        let mock = rt
            .block_on(MockUpstream::start(MockConfig::default()))
            .unwrap();
        let symbols = keys(103)[3..].to_vec(); // 100 stocks, indices left out
        let mut group = c.benchmark_group("batch_100");

        let memory = rt
            .block_on(client(&mock).persistent(false).build())
            .unwrap();
        rt.block_on(memory.get_realtime_data_batch(&symbols));
        group.bench_function("memory", |b| {
            b.iter(|| rt.block_on(memory.get_realtime_data_batch(black_box(&symbols))))
        });

        let dir = tempfile::tempdir().unwrap();
        let writer = rt
            .block_on(client(&mock).cache_dir(dir.path()).build())
            .unwrap();
        rt.block_on(writer.get_realtime_data_batch(&symbols));
        rt.block_on(writer.flush()).unwrap();
        let open = || {
            rt.block_on(client(&mock).cache_dir(dir.path()).build())
                .unwrap()
        };
        let check = open();
        rt.block_on(check.get_realtime_data_batch(&symbols));
        assert_eq!(check.cache_stats().persistent_hits, 100);
        group.bench_function("file_cache_fresh_client", |b| {
            b.iter_batched(
                open,
                |fresh| (rt.block_on(fresh.get_realtime_data_batch(&symbols)), fresh),
                BatchSize::PerIteration,
            )
        });

        mock.set_latency(Duration::from_millis(50));
        mock.reset_counts();
        let mut runs = 0;
        group
            .sample_size(10)
            .measurement_time(Duration::from_secs(3));
        group.bench_function("cold_mock_50ms_latency", |b| {
            b.iter_batched(
                || {
                    rt.block_on(client(&mock).persistent(false).build())
                        .unwrap()
                },
                |fresh| {
                    runs += 1;
                    rt.block_on(fresh.get_realtime_data_batch(&symbols))
                },
                BatchSize::PerIteration,
            )
        });
        assert_eq!(mock.requests().total, runs, "one request per cold batch");
        group.finish();
    }

    /// The whole market (every listed symbol) through Sina in chunks of 800, against the
    /// mock with 50 ms latency: cold with and without the persistent tier, warm in one
    /// client, and from the file cache in a fresh client; and a 100-symbol forced refresh.
    fn whole_market(c: &mut Criterion) {
        let rt = Runtime::new().unwrap();
        let mock = rt
            .block_on(MockUpstream::start(MockConfig::default()))
            .unwrap();
        mock.set_latency(Duration::from_millis(50));
        let all = MockUpstream::listed_keys();
        let sina = |b: QuantDbBuilder| b.providers([Provider::Sina]);
        let mut group = c.benchmark_group("whole_market");
        group
            .sample_size(10)
            .measurement_time(Duration::from_secs(4));

        // Cold: a fresh client on an empty cache directory each time. The previous client's
        // writes are flushed before the next one starts, outside the timing.
        for (name, persistent) in [("cold", true), ("cold_memory_only", false)] {
            let last: RefCell<Option<(QuantDb, tempfile::TempDir)>> = RefCell::new(None);
            group.bench_function(name, |b| {
                b.iter_batched(
                    || {
                        if let Some((db, _dir)) = last.borrow_mut().take() {
                            rt.block_on(db.flush()).unwrap();
                        }
                        let dir = tempfile::tempdir().unwrap();
                        let db = rt
                            .block_on(
                                sina(client(&mock))
                                    .persistent(persistent)
                                    .cache_dir(dir.path())
                                    .build(),
                            )
                            .unwrap();
                        (db, dir)
                    },
                    |(db, dir)| {
                        let entries = rt.block_on(db.get_realtime_data_batch(&all));
                        *last.borrow_mut() = Some((db, dir));
                        entries
                    },
                    BatchSize::PerIteration,
                )
            });
        }

        let dir = tempfile::tempdir().unwrap();
        let warm = rt
            .block_on(sina(client(&mock)).cache_dir(dir.path()).build())
            .unwrap();
        rt.block_on(warm.get_realtime_data_batch(&all));
        rt.block_on(warm.flush()).unwrap();
        group.bench_function("warm_one_client", |b| {
            b.iter(|| rt.block_on(warm.get_realtime_data_batch(black_box(&all))))
        });
        let open = || {
            rt.block_on(sina(client(&mock)).cache_dir(dir.path()).build())
                .unwrap()
        };
        let check = open();
        rt.block_on(check.get_realtime_data_batch(&all));
        assert_eq!(check.cache_stats().persistent_hits, all.len() as u64);
        group.bench_function("fresh_client_warm_cache", |b| {
            b.iter_batched(
                open,
                |fresh| (rt.block_on(fresh.get_realtime_data_batch(&all)), fresh),
                BatchSize::PerIteration,
            )
        });
        group.bench_function("fresh_client_warm_cache_with_open", |b| {
            b.iter(|| {
                let fresh = rt
                    .block_on(sina(client(&mock)).cache_dir(dir.path()).build())
                    .unwrap();
                rt.block_on(fresh.get_realtime_data_batch(&all))
            })
        });
        group.finish();

        let symbols = keys(103)[3..].to_vec();
        let mut group = c.benchmark_group("batch_100_mock_50ms_latency");
        group
            .sample_size(10)
            .measurement_time(Duration::from_secs(3));
        group.bench_function("forced_refresh", |b| {
            b.iter(|| {
                rt.block_on(warm.get_realtime_data_batch_with(&symbols, FetchOptions::refresh()))
            })
        });
        group.bench_function("cold_persistent", |b| {
            b.iter_batched(
                || {
                    let dir = tempfile::tempdir().unwrap();
                    let db = rt
                        .block_on(client(&mock).cache_dir(dir.path()).build())
                        .unwrap();
                    (db, dir)
                },
                |(db, dir)| (rt.block_on(db.get_realtime_data_batch(&symbols)), db, dir),
                BatchSize::PerIteration,
            )
        });
        group.finish();
        rt.block_on(warm.flush()).unwrap();
    }

    criterion_group!(benches, parse, batches, whole_market);
}
