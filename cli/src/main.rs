//! The `quantdb` command-line tool: quotes, daily history, cache statistics, cache clearing,
//! the relay.

fn main() -> std::process::ExitCode {
    cli::main()
}

mod cli {
    use std::net::{IpAddr, SocketAddr};
    use std::path::PathBuf;
    use std::process::ExitCode;
    use std::time::Duration;

    use clap::{Parser, Subcommand};
    use quantdb::history::{Adjust, Bar, HistoryRequest, Period};
    use quantdb::relay::{self, RelayConfig};
    use quantdb::{
        BatchEntry, FetchOptions, FixedClock, Provider, QuantDb, Quote, ShiftedClock, TtlMode,
    };
    use unicode_width::UnicodeWidthStr;

    /// Cached realtime quotes and daily history for Chinese A-shares (Shanghai, Shenzhen,
    /// Beijing).
    ///
    /// Upstream base URLs can be redirected (a proxy, a mirror, a local test server) with
    /// QUANTDB_SINA_URL, QUANTDB_TENCENT_URL and QUANTDB_EASTMONEY_URL; QUANTDB_RELAY_URL
    /// names a relay for `--providers relay`.
    #[derive(Parser, Debug)]
    #[command(name = "quantdb", version, about, long_about)]
    struct Cli {
        /// Directory of the file cache [default: the platform cache dir, e.g. ~/.cache/quantdb]
        #[arg(long, global = true, env = "QUANTDB_CACHE_DIR", value_name = "DIR")]
        cache_dir: Option<PathBuf>,
        /// Keep nothing on disk: memory cache only
        #[arg(long, global = true)]
        memory_only: bool,
        /// Providers to try, in order (comma-separated: sina, tencent, eastmoney)
        #[arg(long, global = true, value_delimiter = ',', value_name = "LIST")]
        providers: Option<Vec<Provider>>,
        /// Timeout of each upstream request, in milliseconds
        #[arg(long, global = true, default_value_t = 5000, value_name = "MS")]
        timeout_ms: u64,
        /// Cache TTL during trading sessions, in seconds
        #[arg(long, global = true, default_value_t = 30, value_name = "SECS")]
        ttl_trading_secs: u64,
        /// Cache TTL outside trading sessions, in seconds
        #[arg(long, global = true, default_value_t = 60, value_name = "SECS")]
        ttl_closed_secs: u64,
        /// Keep quotes fetched after the close (once settled) until the next session opens
        #[arg(long, global = true)]
        until_next_open: bool,
        /// When every upstream fails, answer a symbol's last quote (marked stale) if it is at
        /// most this old; 0 never answers stale [default: until the next session starts]
        #[arg(long, global = true, value_name = "SECS")]
        max_stale_secs: Option<u64>,
        /// A testing aid: run on a clock stopped at this instant (RFC 3339, e.g.
        /// 2026-11-30T10:00:00+08:00) instead of the system clock
        #[arg(
            long,
            global = true,
            env = "QUANTDB_NOW",
            value_name = "TIME",
            hide_env_values = true
        )]
        now: Option<chrono::DateTime<chrono::FixedOffset>>,
        /// A testing aid: run on a clock that reads this instant (RFC 3339) when the command
        /// starts, and then runs with the system clock
        #[arg(
            long,
            global = true,
            env = "QUANTDB_CLOCK_START",
            value_name = "TIME",
            hide_env_values = true,
            conflicts_with = "now"
        )]
        clock_start: Option<chrono::DateTime<chrono::FixedOffset>>,
        #[command(subcommand)]
        command: Command,
    }

    #[derive(Subcommand, Debug)]
    enum Command {
        /// Print realtime quotes: `quantdb quote 000001 600000 300750`
        Quote {
            /// Symbols: 000001, sz000001, 000001.SZ, sh000001 (an index), bj430017, ...
            #[arg(required = true)]
            symbols: Vec<String>,
            /// Print the batch as JSON (one entry per distinct symbol, errors included)
            #[arg(long)]
            json: bool,
            /// Skip the cache and ask the upstream (the answer refreshes the cache)
            #[arg(long)]
            force_refresh: bool,
        },
        /// Watch quotes live: a table updated in place on a terminal (a JSON line an update
        /// otherwise) until Ctrl-C. Through a relay (--providers relay) it follows the relay's
        /// push stream; otherwise it asks once a TTL window: `quantdb watch 600000 000001`
        Watch {
            /// Symbols, as for `quote`
            #[arg(required = true)]
            symbols: Vec<String>,
        },
        /// Print daily (weekly, monthly) bars from the history cache, fetching only the dates
        /// not cached yet: `quantdb history 600000 --start 20240101 --end 20241231 --adjust qfq`
        History {
            /// The symbol: 600000, sh600000, 600000.SH, sh000001 (an index), ...
            symbol: String,
            /// First date, YYYYMMDD or YYYY-MM-DD
            #[arg(long, value_parser = date_arg, conflicts_with = "days")]
            start: Option<chrono::NaiveDate>,
            /// Last date (default and at most: today)
            #[arg(long, value_parser = date_arg)]
            end: Option<chrono::NaiveDate>,
            /// The last N bars instead of --start [default: 30 when --start is not given]
            #[arg(long)]
            days: Option<u32>,
            /// Price adjustment: none, qfq (forward) or hfq (backward)
            #[arg(long, default_value = "none")]
            adjust: Adjust,
            /// Bar length: daily, weekly or monthly
            #[arg(long, default_value = "daily")]
            period: Period,
            /// Print the bars as JSON
            #[arg(long, conflicts_with = "csv")]
            json: bool,
            /// Print the bars as CSV
            #[arg(long)]
            csv: bool,
            /// Fetch the range (and the factors) again from the upstream
            #[arg(long)]
            force_refresh: bool,
        },
        /// Print cache statistics (entries on disk, the TTL in force, the market phase)
        Stats {
            /// Print as JSON
            #[arg(long)]
            json: bool,
        },
        /// Clear the cache, or one symbol's entries
        Clear {
            /// Only this symbol
            symbol: Option<String>,
        },
        /// Run the relay: a shared cache with a JSON API for dashboards and scripts
        /// (GET /api/v1/realtime?symbols=..., GET /api/v1/realtime/{symbol},
        /// POST /api/v1/realtime, GET /api/v1/history/{symbol}, GET /api/v1/stream?symbols=...
        /// (Server-Sent Events), GET /api/v1/stats, GET /healthz)
        Serve {
            /// Address to listen on (keep 127.0.0.1 unless other machines must reach it)
            #[arg(long, default_value = "127.0.0.1")]
            bind: IpAddr,
            /// Port to listen on (0 picks a free one)
            #[arg(long, default_value_t = 8650)]
            port: u16,
            /// Origin allowed to call the relay from a browser (repeatable; * allows any).
            /// Default: any origin on a loopback address; none elsewhere, so name them
            #[arg(long = "allow-origin", value_name = "ORIGIN")]
            allow_origins: Vec<String>,
            /// The most symbols one request may ask for (1 to 100000)
            #[arg(long, default_value_t = 1000,
                  value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100_000))]
            max_symbols: usize,
            /// Seconds a client has to send its request head, then its body (1 to 3600);
            /// slower clients are cut off
            #[arg(long, default_value_t = 10, value_name = "SECS",
                  value_parser = clap::value_parser!(u64).range(1..=3600))]
            client_timeout_secs: u64,
            /// Share the cache with other relays on this Redis (redis://[:password@]host:port/db,
            /// rediss:// for TLS) instead of the file cache; a Redis that is down or restarts
            /// never fails a request
            #[arg(
                long,
                env = "QUANTDB_REDIS_URL",
                value_name = "URL",
                hide_env_values = true
            )]
            redis: Option<String>,
            /// The prefix of this deployment's keys in Redis
            #[arg(long, default_value = "quantdb:", value_name = "PREFIX")]
            redis_prefix: String,
            /// The most push streams (GET /api/v1/stream) open at once (1 to 1000000)
            #[arg(long, default_value_t = 1000,
                  value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
            max_streams: usize,
        },
    }

    pub fn main() -> ExitCode {
        let cli = Cli::parse();
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .init();
        let runtime = match tokio::runtime::Runtime::new() {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("error: cannot start the async runtime: {e}");
                return ExitCode::FAILURE;
            }
        };
        match runtime.block_on(run(cli)) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        }
    }

    async fn run(cli: Cli) -> Result<ExitCode, quantdb::Error> {
        let mut builder = QuantDb::builder()
            .persistent(!cli.memory_only)
            .timeout(Duration::from_millis(cli.timeout_ms))
            .ttl_trading(Duration::from_secs(cli.ttl_trading_secs))
            .ttl_closed(Duration::from_secs(cli.ttl_closed_secs));
        if cli.until_next_open {
            builder = builder.ttl_mode(TtlMode::UntilNextOpen);
        }
        if let Some(secs) = cli.max_stale_secs {
            builder = builder.max_stale(Duration::from_secs(secs));
        }
        if let Some(now) = cli.now {
            builder = builder.clock(std::sync::Arc::new(FixedClock(now.to_utc())));
        }
        if let Some(start) = cli.clock_start {
            builder = builder.clock(std::sync::Arc::new(ShiftedClock::starting_at(
                start.to_utc(),
            )));
        }
        let cache_dir_shown = (cli.cache_dir.clone())
            .or_else(quantdb::native::default_cache_dir)
            .map(|d| d.display().to_string());
        if let Some(dir) = cli.cache_dir {
            builder = builder.cache_dir(dir);
        }
        if let Some(providers) = cli.providers {
            builder = builder.providers(providers);
        }
        let mut fleet: Option<std::sync::Arc<dyn relay::fleet::PushBus>> = None;
        if let Command::Serve {
            redis: Some(url),
            redis_prefix,
            ..
        } = &cli.command
        {
            // Kept past the TTL for stale-on-error answers, within their bound.
            let keep = Duration::from_secs(cli.max_stale_secs.unwrap_or(10 * 86_400))
                + Duration::from_secs(cli.ttl_closed_secs.max(cli.ttl_trading_secs));
            let store = quantdb::native::RedisStore::open(url, redis_prefix, keep).await?;
            // The shared tier, the leases that make one relay of the fleet fetch a symbol, and
            // the bus that makes one relay poll for every relay's streams.
            builder = builder
                .store(std::sync::Arc::new(store.clone()))
                .coordinator(std::sync::Arc::new(store.clone()));
            fleet = Some(std::sync::Arc::new(store));
        }
        let db = builder.build().await?;
        let code = match cli.command {
            Command::Quote {
                symbols,
                json,
                force_refresh,
            } => {
                let options = FetchOptions { force_refresh };
                let entries = db.get_realtime_data_batch_with(&symbols, options).await;
                if json {
                    println!("{}", to_json(&entries));
                } else {
                    print!("{}", table(&entries));
                    eprint!("{}", failure_summary(&entries));
                }
                let failed = entries.iter().any(|e| e.error().is_some());
                if failed {
                    ExitCode::FAILURE
                } else {
                    ExitCode::SUCCESS
                }
            }
            Command::Watch { symbols } => {
                watch(&db, &symbols).await;
                ExitCode::SUCCESS
            }
            Command::History {
                symbol,
                start,
                end,
                days,
                adjust,
                period,
                json,
                csv,
                force_refresh,
            } => {
                let request = HistoryRequest {
                    start,
                    end,
                    days,
                    adjust,
                    period,
                    force_refresh,
                };
                match db.get_stock_data(&symbol, request).await {
                    Ok(bars) if json => println!("{}", to_json(&bars)),
                    Ok(bars) if csv => print!("{}", bars_csv(&bars)),
                    Ok(bars) => print!("{}", bars_table(&bars)),
                    Err(e) => {
                        eprintln!("error: {e}");
                        if e.is_upstream_failure() {
                            eprintln!("{HINT}");
                        }
                        db.flush().await.ok();
                        let usage = matches!(e.code(), "invalid_symbol" | "invalid_request");
                        return Ok(if usage {
                            ExitCode::from(2)
                        } else {
                            ExitCode::FAILURE
                        });
                    }
                }
                ExitCode::SUCCESS
            }
            Command::Stats { json } => {
                let stats = db.cache_stats();
                if json {
                    println!("{}", to_json(&stats));
                } else {
                    let entries = stats
                        .persistent_entries
                        .map_or("off".to_string(), |n| n.to_string());
                    println!("market phase     {}", stats.market_phase.as_str());
                    println!("ttl now          {} s", stats.ttl_seconds);
                    println!("entries on disk  {entries}");
                    println!(
                        "counters         hits, misses and requests are per process: a running \
                         relay's are at /api/v1/stats"
                    );
                    if !stats.calendar_covers_today {
                        println!("calendar         no holiday data for this year: weekdays count as open");
                    }
                }
                ExitCode::SUCCESS
            }
            Command::Clear { symbol } => {
                let stats = db.cache_stats();
                let Some(before) = stats
                    .persistent_entries
                    .filter(|_| stats.persistent_enabled)
                else {
                    println!("the persistent cache is off (memory only): nothing on disk to clear");
                    return Ok(ExitCode::SUCCESS);
                };
                let dir = cache_dir_shown.as_deref().unwrap_or("the cache directory");
                match symbol {
                    Some(symbol) => {
                        db.clear_symbol(&symbol).await?;
                        let after = db.cache_stats().persistent_entries.unwrap_or(0);
                        let what = if after < before {
                            "cleared"
                        } else {
                            "no entry for"
                        };
                        println!("{what} {symbol} in {dir}");
                    }
                    None => {
                        db.clear_cache().await?;
                        let quotes = if before == 1 { "quote" } else { "quotes" };
                        println!("cleared {before} {quotes} from {dir}");
                    }
                }
                ExitCode::SUCCESS
            }
            Command::Serve {
                bind,
                port,
                mut allow_origins,
                max_symbols,
                client_timeout_secs,
                max_streams,
                ..
            } => {
                if allow_origins.is_empty() {
                    if !bind.is_loopback() {
                        eprintln!(
                            "error: listening on {bind} needs --allow-origin (the origins of your \
                             dashboards, or * for any)"
                        );
                        return Ok(ExitCode::from(2));
                    }
                    allow_origins.push("*".to_string());
                }
                let config = RelayConfig {
                    allow_origins,
                    max_symbols,
                    client_timeout: Duration::from_secs(client_timeout_secs),
                    stream: relay::StreamConfig {
                        max_streams,
                        fleet,
                        ..relay::StreamConfig::default()
                    },
                    ..RelayConfig::default()
                };
                serve(db.clone(), SocketAddr::new(bind, port), config).await?
            }
        };
        // Quotes are written to the file cache behind the answers: wait for them.
        if let Err(e) = db.flush().await {
            eprintln!("warning: {e}");
        }
        Ok(code)
    }

    async fn serve(
        db: QuantDb,
        addr: SocketAddr,
        config: RelayConfig,
    ) -> Result<ExitCode, quantdb::Error> {
        let (router, streams) = relay::router_with_streams(db, &config)?;
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: cannot listen on {addr}: {e}");
                return Ok(ExitCode::from(2));
            }
        };
        let local = listener.local_addr().unwrap_or(addr);

        println!("quantdb relay listening on {}", relay::url_of(local));
        let _ = std::io::Write::flush(&mut std::io::stdout());
        if let Err(e) = relay::serve(listener, router, config.client_timeout, async move {
            shutdown_signal().await;
            streams.close(); // push streams end, so the shutdown does not wait for them
        })
        .await
        {
            eprintln!("error: {e}");
            return Ok(ExitCode::FAILURE);
        }
        Ok(ExitCode::SUCCESS)
    }

    /// `quantdb watch`: every entry of the subscription, until Ctrl-C or SIGTERM.
    async fn watch(db: &QuantDb, symbols: &[String]) {
        use futures_util::StreamExt;
        use std::io::{IsTerminal, Write};
        let terminal = std::io::stdout().is_terminal();
        let mut live = db.subscribe(symbols);
        // The latest entry of each symbol, in the order they first came.
        let mut latest: Vec<BatchEntry> = Vec::new();
        let stop = shutdown_signal();
        tokio::pin!(stop);
        loop {
            let entry = tokio::select! {
                entry = live.next() => entry,
                () = &mut stop => None,
            };
            let Some(entry) = entry else { break };
            if !terminal {
                println!("{}", serde_json::to_string(&entry).unwrap_or_default());
                let _ = std::io::stdout().flush();
                continue;
            }
            let id = |e: &BatchEntry| match e {
                BatchEntry::Quote(q) => format!("{}{}", q.exchange, q.symbol),
                BatchEntry::Error(err) => err.symbol.clone(),
            };
            match latest.iter_mut().find(|e| id(e) == id(&entry)) {
                Some(slot) => *slot = entry,
                None => latest.push(entry),
            }
            // Home, clear, the table.
            print!("\x1b[H\x1b[2J{}", table(&latest));
            eprint!("{}", failure_summary(&latest));
            let _ = std::io::stdout().flush();
        }
    }

    /// Ctrl-C, or SIGTERM on Unix.
    async fn shutdown_signal() {
        let ctrl_c = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            () = ctrl_c => {}
            () = term => {}
        }
    }

    fn is_upstream_failure(code: &str) -> bool {
        [
            "timeout",
            "upstream_error",
            "parse_error",
            "upstream_unavailable",
        ]
        .contains(&code)
    }

    /// Each distinct upstream failure of a batch once, with how many symbols it hit, and what
    /// to do when no upstream could be reached.
    fn failure_summary(entries: &[BatchEntry]) -> String {
        let mut distinct: Vec<(&str, usize)> = Vec::new();
        for err in entries.iter().filter_map(BatchEntry::error) {
            if !is_upstream_failure(&err.code) {
                continue;
            }
            match distinct.iter_mut().find(|(e, _)| *e == err.error) {
                Some((_, n)) => *n += 1,
                None => distinct.push((&err.error, 1)),
            }
        }
        let mut out = String::new();
        for (error, n) in &distinct {
            let symbols = if *n == 1 { "symbol" } else { "symbols" };
            out.push_str(&format!("error ({n} {symbols}): {error}\n"));
        }
        if !distinct.is_empty() {
            out.push_str(HINT);
            out.push('\n');
        }
        out
    }

    /// What to do when no upstream could be reached.
    const HINT: &str = "hint: no network, or a blocked upstream? Point QUANTDB_SINA_URL, \
        QUANTDB_TENCENT_URL, QUANTDB_EASTMONEY_URL at a mirror, a relay or the mock upstream \
        (cargo run -p mock-upstream -- --port 18080)";

    /// `--start` and `--end`: YYYYMMDD or YYYY-MM-DD.
    fn date_arg(text: &str) -> Result<chrono::NaiveDate, String> {
        quantdb::history::parse_date(text).map_err(|e| e.to_string())
    }

    /// A number, or `-` when unknown.
    fn opt(value: Option<f64>, decimals: usize) -> String {
        value.map_or("-".to_string(), |v| format!("{v:.decimals$}"))
    }

    fn bars_table(bars: &[Bar]) -> String {
        let header = [
            "DATE", "OPEN", "HIGH", "LOW", "CLOSE", "VOLUME", "AMOUNT", "CHANGE", "%",
        ];
        let rows: Vec<[String; 9]> = bars
            .iter()
            .map(|b| {
                [
                    b.date.to_string(),
                    format!("{:.2}", b.open),
                    format!("{:.2}", b.high),
                    format!("{:.2}", b.low),
                    format!("{:.2}", b.close),
                    format!("{:.0}", b.volume),
                    opt(b.amount, 0),
                    b.change.map_or("-".into(), |c| format!("{c:+.2}")),
                    b.change_percent.map_or("-".into(), |c| format!("{c:+.2}%")),
                ]
            })
            .collect();
        let mut widths = header.map(str::len);
        for r in &rows {
            for (w, cell) in widths.iter_mut().zip(r) {
                *w = (*w).max(cell.len());
            }
        }
        let line = |cells: &[String]| {
            let mut out = cells
                .iter()
                .zip(widths)
                .map(|(c, w)| format!("{c:>w$}"))
                .collect::<Vec<_>>()
                .join("  ");
            out.push('\n');
            out
        };
        let mut out = line(&header.map(String::from));
        for r in &rows {
            out.push_str(&line(r));
        }
        if bars.is_empty() {
            out.push_str("no bars in this range\n");
        }
        out
    }

    fn bars_csv(bars: &[Bar]) -> String {
        let mut out = String::from(
            "date,open,high,low,close,volume,amount,change,change_percent,amplitude,turnover_rate,adjust\n",
        );
        let cell = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
        for b in bars {
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},{},{},{}\n",
                b.date,
                b.open,
                b.high,
                b.low,
                b.close,
                b.volume,
                cell(b.amount),
                cell(b.change),
                cell(b.change_percent),
                cell(b.amplitude),
                cell(b.turnover_rate),
                b.adjust,
            ));
        }
        out
    }

    fn to_json<T: serde::Serialize>(value: &T) -> String {
        serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// Left-aligns `text` in `width` terminal columns (CJK names are two columns a character).
    fn pad(text: &str, width: usize) -> String {
        let fill = width.saturating_sub(text.width());
        format!("{text}{}", " ".repeat(fill))
    }

    fn row(q: &Quote) -> [String; 7] {
        [
            format!("{}.{}", q.symbol, q.exchange),
            q.name.clone(),
            format!("{:.2}", q.current_price),
            format!("{:+.2}", q.change),
            if q.market_status == quantdb::MarketStatus::Suspended {
                "suspended".to_string()
            } else {
                format!("{:+.2}%", q.change_percent)
            },
            q.source.to_string(),
            match q.stale {
                true => format!("{:?}, stale", q.cache_source).to_lowercase(),
                false => format!("{:?}", q.cache_source).to_lowercase(),
            },
        ]
    }

    fn table(entries: &[BatchEntry]) -> String {
        let header =
            ["SYMBOL", "NAME", "PRICE", "CHANGE", "%", "SOURCE", "CACHE"].map(String::from);
        let rows: Vec<Result<[String; 7], (String, String)>> = entries
            .iter()
            .map(|e| match e {
                BatchEntry::Quote(q) => Ok(row(q)),
                // Upstream failures are the same for the whole batch: said once, below.
                BatchEntry::Error(err) if is_upstream_failure(&err.code) => {
                    Err((err.symbol.clone(), format!("{} (below)", err.code)))
                }
                BatchEntry::Error(err) => Err((err.symbol.clone(), err.error.clone())),
            })
            .collect();
        let mut widths = header.clone().map(|h| h.width());
        for r in rows.iter().flatten() {
            for (w, cell) in widths.iter_mut().zip(r) {
                *w = (*w).max(cell.width());
            }
        }
        let line = |cells: &[String; 7]| {
            let mut out = String::new();
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                // Numbers right-aligned, text left-aligned.
                if (2..=4).contains(&i) {
                    out.push_str(&format!(
                        "{}{cell}  ",
                        " ".repeat(w.saturating_sub(cell.width()))
                    ));
                } else {
                    out.push_str(&format!("{}  ", pad(cell, w)));
                }
            }
            out.trim_end().to_string() + "\n"
        };
        let mut out = line(&header);
        for r in &rows {
            match r {
                Ok(cells) => out.push_str(&line(cells)),
                Err((symbol, error)) => {
                    out.push_str(&format!("{}  error: {error}\n", pad(symbol, widths[0])))
                }
            }
        }
        out
    }
}
