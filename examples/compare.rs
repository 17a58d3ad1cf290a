//! The quantdb side of `scripts/compare.sh`: times batch calls against a running mock upstream
//! (Sina only, its default chunk of 800, the persistent tier on in a fresh temporary cache
//! directory), and prints one JSON line per case with the median over `--runs`.
//!
//! ```text
//! cargo run --release --example compare -- --url http://127.0.0.1:PORT --runs 7
//! cargo run --release --example compare -- --print-keys    # the mock market's keys, one a line
//! ```
//!
//! Cases, for 4 symbols, 100 symbols and the whole market (keys evenly spaced over the market):
//! `cold` (a new client on an empty cache directory), `warm` (the same client again: memory),
//! and for the whole market `restart` (a new client on the directory the cold call filled).
//! Only the batch call is timed; `build_ms` is the client's build. `requests` is the most
//! upstream requests one call cost (the mock's own count, reset before each call). After each
//! cold call, `flush()` (untimed) waits for the persistent tier's background writes.
//! (Native only: on wasm32 this target is empty.)

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    native::main()
}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::path::Path;
    use std::time::{Duration, Instant};

    use clap::Parser;
    use quantdb::{Provider, QuantDb};

    use mock_upstream::MockUpstream;

    type Res<T> = Result<T, Box<dyn std::error::Error>>;

    #[derive(Parser, Debug)]
    #[command(about = "Times quantdb batch calls against the mock upstream (JSON lines)")]
    struct Args {
        /// The mock upstream's base URL.
        #[arg(long, required_unless_present = "print_keys")]
        url: Option<String>,
        /// Repetitions of each case (the median is reported).
        #[arg(long, default_value_t = 7)]
        runs: usize,
        /// Print the mock market's keys, one a line, and exit.
        #[arg(long)]
        print_keys: bool,
    }

    /// Timings of one case over the runs.
    #[derive(Default)]
    struct Case {
        ms: Vec<f64>,
        build_ms: Vec<f64>,
        requests: u64,
        quotes: usize,
    }

    /// `n` keys evenly spaced over the market (the Python driver picks the same ones).
    fn sample(keys: &[String], n: usize) -> Vec<String> {
        (0..n).map(|i| keys[i * keys.len() / n].clone()).collect()
    }

    fn ms(d: Duration) -> f64 {
        d.as_secs_f64() * 1000.0
    }

    fn median(v: &[f64]) -> f64 {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    }

    struct Mock {
        http: reqwest::Client,
        url: String,
    }

    impl Mock {
        async fn reset(&self) -> Res<()> {
            let url = format!("{}/__mock/reset", self.url);
            self.http.post(url).send().await?.error_for_status()?;
            Ok(())
        }

        /// Upstream requests since the last reset.
        async fn requests(&self) -> Res<u64> {
            let url = format!("{}/__mock/stats", self.url);
            let body = self.http.get(url).send().await?.bytes().await?;
            let stats: serde_json::Value = serde_json::from_slice(&body)?;
            stats["requests"]["total"]
                .as_u64()
                .ok_or_else(|| "no requests.total in the mock's stats".into())
        }
    }

    async fn client(url: &str, dir: &Path) -> Res<QuantDb> {
        Ok(QuantDb::builder()
            .providers([Provider::Sina])
            .base_url(Provider::Sina, url)
            .cache_dir(dir)
            .build()
            .await?)
    }

    /// One timed batch call: adds its time, request count and quote count to `case`.
    async fn timed(mock: &Mock, db: &QuantDb, keys: &[String], case: &mut Case) -> Res<()> {
        mock.reset().await?;
        let start = Instant::now();
        let entries = db.get_realtime_data_batch(keys).await;
        case.ms.push(ms(start.elapsed()));
        case.requests = case.requests.max(mock.requests().await?);
        case.quotes = entries.iter().filter(|e| e.quote().is_some()).count();
        if case.quotes != keys.len() {
            eprintln!(
                "warning: quantdb returned {} quotes for {} symbols",
                case.quotes,
                keys.len()
            );
        }
        Ok(())
    }

    fn print(name: &str, symbols: usize, case: &Case) {
        let mut line = serde_json::json!({
            "tool": "quantdb",
            "case": name,
            "symbols": symbols,
            "runs": case.ms.len(),
            "median_ms": median(&case.ms),
            "min_ms": case.ms.iter().copied().fold(f64::INFINITY, f64::min),
            "requests": case.requests,
            "quotes": case.quotes,
        });
        if !case.build_ms.is_empty() {
            line["build_ms"] = median(&case.build_ms).into();
        }
        println!("{line}");
    }

    #[tokio::main]
    pub async fn main() -> Res<()> {
        let args = Args::parse();
        let market = MockUpstream::listed_keys();
        if args.print_keys {
            println!("{}", market.join("\n"));
            return Ok(());
        }
        let url = args.url.unwrap_or_default();
        let url = url.trim_end_matches('/').to_string();
        let mock = Mock {
            http: reqwest::Client::new(),
            url: url.clone(),
        };
        for (label, n) in [("4", 4), ("100", 100), ("market", market.len())] {
            let keys = sample(&market, n);
            let (mut cold, mut warm, mut restart) = (Case::default(), Case::default(), None);
            for _ in 0..args.runs.max(1) {
                let dir = tempfile::tempdir()?;
                let start = Instant::now();
                let db = client(&url, dir.path()).await?;
                cold.build_ms.push(ms(start.elapsed()));
                timed(&mock, &db, &keys, &mut cold).await?;
                // Background persistent writes finish here, untimed, before anything else runs.
                db.flush().await?;
                timed(&mock, &db, &keys, &mut warm).await?;
                if label == "market" {
                    let case = restart.get_or_insert_with(Case::default);
                    let start = Instant::now();
                    let db = client(&url, dir.path()).await?;
                    case.build_ms.push(ms(start.elapsed()));
                    timed(&mock, &db, &keys, case).await?;
                }
            }
            print(&format!("{label} cold"), n, &cold);
            print(&format!("{label} warm"), n, &warm);
            if let Some(case) = &restart {
                print(&format!("{label} restart"), n, case);
            }
        }
        Ok(())
    }
}
