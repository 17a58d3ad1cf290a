//! Speed figures: parsing 5,000-symbol answers, 100-symbol batches from memory, from the file
//! cache in a fresh client, and cold against the mock upstream with 50 ms latency.
//! Run with `cargo bench --bench quotes`.
//! (Native only: on wasm32 this target is empty.)

#[cfg(not(target_arch = "wasm32"))]
#[path = "../tests/support/mock_upstream.rs"]
mod mock_upstream;

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
criterion::criterion_main!(native::benches);

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use super::mock_upstream;
    use std::hint::black_box;
    use std::time::Duration;

    use criterion::{criterion_group, BatchSize, Criterion};
    use mock_upstream::{MockConfig, MockUpstream};
    use quantdb::{MarketPhase, Provider, QuantDb, QuantDbBuilder};
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

    fn client(mock: &MockUpstream) -> QuantDbBuilder {
        let mut b = QuantDb::builder();
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
        group.bench_function("file_cache_fresh_client", |b| {
            b.iter_batched(
                || {
                    rt.block_on(client(&mock).cache_dir(dir.path()).build())
                        .unwrap()
                },
                |fresh| {
                    let entries = rt.block_on(fresh.get_realtime_data_batch(&symbols));
                    assert_eq!(fresh.cache_stats().persistent_hits, 100);
                    entries
                },
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

    criterion_group!(benches, parse, batches);
}
