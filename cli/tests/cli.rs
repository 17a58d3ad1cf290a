//! The `quantdb` command-line tool, run as a process against the mock upstream.
#![cfg(not(target_arch = "wasm32"))]

use std::path::Path;
use std::process::Output;

use mock_upstream::{MockConfig, MockUpstream};

/// A Monday during continuous trading: the CLI runs on this fixed clock, never the wall
/// clock's time of day (a TTL would end at 11:30 or 13:00 between two runs).
const NOW: &str = "2026-11-30T10:00:00+08:00";

/// `quantdb --cache-dir DIR ARGS...` with every upstream aimed at the mock.
fn command(mock: &MockUpstream, dir: &Path, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_quantdb"));
    cmd.arg("--cache-dir")
        .arg(dir)
        .args(args)
        .env("QUANTDB_NOW", NOW)
        .env_remove("RUST_LOG");
    for var in [
        "QUANTDB_SINA_URL",
        "QUANTDB_TENCENT_URL",
        "QUANTDB_EASTMONEY_URL",
    ] {
        cmd.env(var, mock.base_url());
    }
    cmd
}

async fn quantdb(mock: &MockUpstream, dir: &Path, args: &[&str]) -> Output {
    command(mock, dir, args).output().await.unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[tokio::test]
async fn quote_prints_a_table_then_serves_from_the_file_cache() {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = quantdb(&mock, dir.path(), &["quote", "000001", "600000", "300750"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    for needle in [
        "SYMBOL",
        "NAME",
        "平安银行",
        "浦发银行",
        "宁德时代",
        "600000.SH",
        "network",
        "sina",
    ] {
        assert!(text.contains(needle), "{needle} missing in\n{text}");
    }
    let price = format!("{:.2}", mock.market_quote("sh600000").unwrap().price);
    assert!(text.contains(&price), "{price} missing in\n{text}");
    let again = stdout(&quantdb(&mock, dir.path(), &["quote", "000001", "600000", "300750"]).await);
    assert!(
        again.contains("disk") && !again.contains("network"),
        "{again}"
    );
    assert_eq!(mock.requests().total, 1);
}

#[tokio::test]
async fn quote_json_keeps_errors_per_symbol_and_exits_non_zero() {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = quantdb(
        &mock,
        dir.path(),
        &["quote", "--json", "600000", "nope", "sz000001"],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let list = json.as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list[0]["symbol"], "600000");
    assert_eq!(list[0]["cache_hit"], false);
    assert_eq!(list[1]["symbol"], "nope");
    assert_eq!(list[1]["code"], "invalid_symbol");
    assert_eq!(list[2]["name"], "平安银行");
    let forced = quantdb(
        &mock,
        dir.path(),
        &["quote", "--json", "--force-refresh", "600000"],
    )
    .await;
    let json: serde_json::Value = serde_json::from_str(&stdout(&forced)).unwrap();
    assert_eq!(json[0]["cache_source"], "network");
    assert_eq!(mock.requests().total, 2);
}

#[tokio::test]
async fn stats_and_clear() {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    quantdb(&mock, dir.path(), &["quote", "600000", "000001"]).await;
    let stats = |o: Output| serde_json::from_str::<serde_json::Value>(&stdout(&o)).unwrap();
    let s = stats(quantdb(&mock, dir.path(), &["stats", "--json"]).await);
    assert_eq!(s["persistent_entries"], 2);
    assert_eq!(
        (s["market_phase"].as_str(), s["ttl_seconds"].as_u64()),
        (Some("trading"), Some(30))
    );
    let cleared = quantdb(&mock, dir.path(), &["clear", "600000"]).await;
    assert!(cleared.status.success());
    assert!(
        stdout(&cleared).starts_with("cleared 600000 in "),
        "{}",
        stdout(&cleared)
    );
    let again = stdout(&quantdb(&mock, dir.path(), &["clear", "600000"]).await);
    assert!(again.starts_with("no entry for 600000"), "{again}");
    assert_eq!(
        stats(quantdb(&mock, dir.path(), &["stats", "--json"]).await)["persistent_entries"],
        1
    );
    let all = quantdb(&mock, dir.path(), &["clear"]).await;
    assert!(all.status.success());
    assert!(
        stdout(&all).starts_with("cleared 1 quote from "),
        "{}",
        stdout(&all)
    );
    assert_eq!(
        stats(quantdb(&mock, dir.path(), &["stats", "--json"]).await)["persistent_entries"],
        0
    );
    let off = stdout(&quantdb(&mock, dir.path(), &["--memory-only", "clear"]).await);
    assert!(off.contains("persistent cache is off"), "{off}");
    let text = stdout(&quantdb(&mock, dir.path(), &["stats"]).await);
    assert!(text.contains("per process"), "{text}");
    let bad = quantdb(&mock, dir.path(), &["clear", "bad!"]).await;
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("bad!"));
    let short = [
        "--ttl-trading-secs",
        "7",
        "--ttl-closed-secs",
        "7",
        "stats",
        "--json",
    ];
    let short = stats(quantdb(&mock, dir.path(), &short).await);
    assert_eq!(short["ttl_seconds"], 7, "{short}");
    // Another instant: Saturday, closed, the 60 s TTL.
    let mut saturday = command(&mock, dir.path(), &["stats", "--json"]);
    saturday.env("QUANTDB_NOW", "2026-11-28T10:00:00+08:00");
    let s = stats(saturday.output().await.unwrap());
    assert_eq!(
        (s["market_phase"].as_str(), s["ttl_seconds"].as_u64()),
        (Some("closed"), Some(60))
    );
    // A clock that starts on Saturday and runs: closed too; not together with a stopped one.
    let mut running = command(&mock, dir.path(), &["stats", "--json"]);
    running.env_remove("QUANTDB_NOW");
    running.env("QUANTDB_CLOCK_START", "2026-11-28T10:00:00+08:00");
    let s = stats(running.output().await.unwrap());
    assert_eq!(
        (s["market_phase"].as_str(), s["ttl_seconds"].as_u64()),
        (Some("closed"), Some(60))
    );
    let mut both = command(&mock, dir.path(), &["stats"]);
    both.env("QUANTDB_CLOCK_START", "2026-11-28T10:00:00+08:00");
    let out = both.output().await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--clock-start"));
    let mut bad_now = command(&mock, dir.path(), &["stats"]);
    bad_now.env("QUANTDB_NOW", "yesterday");
    let out = bad_now.output().await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--now"));
    let text = stdout(&quantdb(&mock, dir.path(), &["stats"]).await);
    assert!(
        text.contains("market phase") && text.contains("entries on disk  0"),
        "{text}"
    );
}

#[tokio::test]
async fn help_names_the_environment_overrides() {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let help = stdout(&quantdb(&mock, dir.path(), &["--help"]).await);
    assert!(
        help.contains("QUANTDB_SINA_URL") && help.contains("quote"),
        "{help}"
    );
    let bad = quantdb(
        &mock,
        dir.path(),
        &["--providers", "yahoo", "quote", "600000"],
    )
    .await;
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("yahoo"));
}

/// Starts `quantdb serve` with `args`, returns the child and the URL it prints.
async fn start_relay(
    mock: &MockUpstream,
    dir: &Path,
    args: &[&str],
) -> (tokio::process::Child, String) {
    listening(command(mock, dir, &[&["serve"], args].concat())).await
}

/// Starts a `quantdb serve` command; its process and the address it listens on.
async fn listening(mut cmd: tokio::process::Command) -> (tokio::process::Child, String) {
    use tokio::io::AsyncBufReadExt;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next_line().await.unwrap().expect("a listening line");
    let url = line
        .strip_prefix("quantdb relay listening on ")
        .expect(&line)
        .to_string();
    (child, url)
}

#[tokio::test]
async fn serve_answers_then_stops_cleanly_on_sigterm() {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    mock.set_latency(std::time::Duration::from_millis(500));
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url) = start_relay(&mock, dir.path(), &["--port", "0"]).await;
    // A request in flight when SIGTERM arrives is still answered.
    let in_flight = tokio::spawn(reqwest::get(format!("{url}/api/v1/realtime/600000")));
    while mock.requests().total == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let answer = in_flight.await.unwrap().unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    let status = child.wait().await.unwrap();
    assert!(status.success(), "{status:?}");
    // The quote fetched for it reached the file cache before the relay exited.
    let store = quantdb::native::FileStore::open(dir.path()).unwrap();
    let key = quantdb::Symbol::from_key("sh600000").unwrap();
    let slots = quantdb::Store::load(&store, &[key]).await.unwrap();
    assert!(matches!(slots[0], quantdb::Stored::Found(_)), "{slots:?}");
}

#[tokio::test]
async fn serve_refuses_settings_it_cannot_honour() {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    for args in [
        ["--max-symbols", "0"],
        ["--client-timeout-secs", "0"],
        ["--client-timeout-secs", "6000000000000000000"],
    ] {
        let out = quantdb(
            &mock,
            dir.path(),
            &[&["serve", "--port", "0"][..], &args].concat(),
        )
        .await;
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(args[0]), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn serve_on_a_public_address_needs_named_origins() {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = quantdb(
        &mock,
        dir.path(),
        &["serve", "--bind", "0.0.0.0", "--port", "0"],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--allow-origin"));
}

#[tokio::test]
async fn offline_errors_are_said_once_and_do_not_grow_with_the_batch() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed); // nothing listens there now: connection refused
    let dir = tempfile::tempdir().unwrap();
    let symbols = |n: usize| -> Vec<String> {
        mock_upstream::MockUpstream::listed_keys()
            .into_iter()
            .take(n)
            .collect()
    };
    let run = |args: Vec<String>| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_quantdb"));
        cmd.arg("--cache-dir")
            .arg(dir.path())
            .args(args)
            .env("QUANTDB_NOW", NOW);
        for var in [
            "QUANTDB_SINA_URL",
            "QUANTDB_TENCENT_URL",
            "QUANTDB_EASTMONEY_URL",
        ] {
            cmd.env(var, &url);
        }
        cmd.output()
    };
    let mut summaries = Vec::new();
    let mut messages = Vec::new();
    for n in [2, 300] {
        let table = run([vec!["quote".into()], symbols(n)].concat())
            .await
            .unwrap();
        assert_eq!(table.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&table.stderr).into_owned();
        assert!(
            stderr.contains("cannot connect") && stderr.contains("hint:"),
            "{stderr}"
        );
        assert!(
            !stderr.contains("list=") && !stderr.contains("sz000001"),
            "{stderr}"
        );
        assert_eq!(stderr.lines().count(), 2, "one cause, one hint: {stderr}");
        summaries.push(stderr.replace(&format!("({n} symbols)"), "(N symbols)"));
        let json = run([vec!["quote".into(), "--json".into()], symbols(n)].concat())
            .await
            .unwrap();
        let entries: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
        let lengths: std::collections::BTreeSet<usize> = (entries.as_array().unwrap().iter())
            .map(|e| e["error"].as_str().unwrap().len())
            .collect();
        assert_eq!(lengths.len(), 1, "every symbol gets the same message");
        messages.push(lengths.into_iter().next().unwrap());
    }
    assert_eq!(
        summaries[0], summaries[1],
        "the summary does not grow with the batch"
    );
    assert_eq!(messages[0], messages[1], "nor does each symbol's message");
}

/// `quantdb history`: a table, JSON and CSV of the same bars; the second process reads the
/// file cache; bad dates are usage errors.
#[tokio::test]
async fn history_prints_bars_and_the_next_process_reads_them_from_disk() {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    mock.set_now(Some(chrono::DateTime::parse_from_rfc3339(NOW).unwrap()));
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "history",
        "600000",
        "--start",
        "20240101",
        "--end",
        "2024-12-31",
        "--adjust",
        "qfq",
    ];
    let out = quantdb(&mock, dir.path(), &[&args[..], &["--json"]].concat()).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bars: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let truth = mock_upstream::history::bars_between(
        "sh600000",
        chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(),
        chrono::NaiveDate::from_ymd_opt(2024, 12, 31).unwrap(),
        mock.now(),
        0,
    )
    .unwrap();
    assert_eq!(bars.len(), truth.len());
    assert_eq!(bars[0]["date"], truth[0].date.to_string());
    assert_eq!(bars[0]["adjust"], "qfq");
    assert_eq!(
        mock.history_counts().total,
        2,
        "one kline, one factor request"
    );

    let csv = stdout(&quantdb(&mock, dir.path(), &[&args[..], &["--csv"]].concat()).await);
    let mut lines = csv.lines();
    assert!(lines
        .next()
        .unwrap()
        .starts_with("date,open,high,low,close,volume,amount"));
    assert_eq!(lines.count(), truth.len());
    let table = stdout(&quantdb(&mock, dir.path(), &args).await);
    assert!(
        table.starts_with("      DATE") || table.contains("DATE"),
        "{table}"
    );
    assert!(
        table.contains(&truth.last().unwrap().date.to_string()),
        "{table}"
    );
    assert_eq!(
        mock.history_counts().total,
        2,
        "later processes read the file cache"
    );

    let bad = quantdb(
        &mock,
        dir.path(),
        &["history", "600000", "--start", "2024/01/01"],
    )
    .await;
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("YYYYMMDD"));
    let future = quantdb(
        &mock,
        dir.path(),
        &["history", "600000", "--start", "20300101"],
    )
    .await;
    assert_eq!(future.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&future.stderr).contains("future"),
        "{}",
        String::from_utf8_lossy(&future.stderr)
    );
}

/// `quantdb watch` off a terminal: a JSON line an entry (quotes and errors), until SIGTERM,
/// then a clean exit with the quotes written to the file cache.
#[tokio::test]
async fn watch_prints_json_lines_until_sigterm() {
    use tokio::io::AsyncBufReadExt;
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut child = command(&mock, dir.path(), &["watch", "600000", "bad!"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut entries = Vec::new();
    for _ in 0..2 {
        let line = tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line())
            .await
            .expect("an entry within 20 s")
            .unwrap()
            .unwrap();
        entries.push(serde_json::from_str::<serde_json::Value>(&line).unwrap());
    }
    assert_eq!(
        entries[0]["current_price"],
        mock.market_quote("sh600000").unwrap().price
    );
    assert_eq!(entries[1]["code"], "invalid_symbol");
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = tokio::time::timeout(std::time::Duration::from_secs(20), child.wait())
        .await
        .expect("it stops")
        .unwrap();
    assert!(status.success(), "{status:?}");
    let store = quantdb::native::FileStore::open(dir.path()).unwrap();
    let key = quantdb::Symbol::from_key("sh600000").unwrap();
    let slots = quantdb::Store::load(&store, &[key]).await.unwrap();
    assert!(matches!(slots[0], quantdb::Stored::Found(_)), "{slots:?}");
}

#[path = "../../tests/support/redis_server.rs"]
mod redis_server;

/// Two relay processes on one Redis: the first is killed (SIGKILL) while it holds the lease of
/// a symbol it is fetching; the second fetches it itself once its wait for the lease is over,
/// and nothing hangs.
#[tokio::test]
async fn a_relay_killed_while_holding_leases_holds_up_nobody() {
    let redis = redis_server::RedisServer::start(redis_server::free_port());
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    mock.set_latency(std::time::Duration::from_millis(1500));
    let dir = tempfile::tempdir().unwrap();
    let url = redis.url();
    let relay = |timeout: &'static str| {
        let url = url.clone();
        let (mock, dir) = (&mock, dir.path());
        async move {
            start_relay(
                mock,
                dir,
                &["--port", "0", "--redis", &url, "--timeout-ms", timeout],
            )
            .await
        }
    };
    let (mut doomed, a) = relay("5000").await;
    let (_survivor, b) = relay("2000").await;
    // The first relay takes the lease and fetches (slowly); it dies mid-fetch.
    let asked = tokio::spawn(reqwest::get(format!("{a}/api/v1/realtime/600000")));
    while mock.requests().total == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    doomed.kill().await.unwrap();
    assert!(
        asked.await.unwrap().is_err(),
        "the killed relay's client sees the connection drop"
    );
    // The second finds the lease taken, waits at most twice its own timeout, then fetches.
    let answer = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        reqwest::get(format!("{b}/api/v1/realtime/600000")),
    )
    .await
    .expect("nothing hangs")
    .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    let quote: serde_json::Value = serde_json::from_slice(&answer.bytes().await.unwrap()).unwrap();
    assert_eq!(
        quote["current_price"],
        mock.market_quote("sh600000").unwrap().price
    );
    assert_eq!(
        mock.requests().total,
        2,
        "the dead relay's request, and the survivor's own"
    );
}

async fn get_json(url: String) -> serde_json::Value {
    let answer = reqwest::get(url).await.unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    serde_json::from_slice(&answer.bytes().await.unwrap()).unwrap()
}

/// Relays on a Redis that speaks TLS only (`rediss://`), with a certificate of a private CA
/// they trust through `SSL_CERT_FILE`: they share it. A relay that does not trust the CA
/// refuses the server, says it is degraded, and still answers.
#[tokio::test]
async fn relays_share_a_redis_over_tls() {
    let certs = tempfile::tempdir().unwrap();
    let redis = redis_server::RedisServer::start_tls(redis_server::free_port(), certs.path());
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = redis.url();
    assert!(url.starts_with("rediss://"), "{url}");
    let relay = |trusted: bool| {
        let mut cmd = command(
            &mock,
            dir.path(),
            &["serve", "--port", "0", "--redis", &url],
        );
        if trusted {
            cmd.env("SSL_CERT_FILE", certs.path().join("ca.pem"));
        } else {
            cmd.env_remove("SSL_CERT_FILE");
        }
        listening(cmd)
    };
    let (_a, a) = relay(true).await;
    let (_b, b) = relay(true).await;
    assert_eq!(get_json(format!("{a}/healthz")).await["status"], "ok");
    let first = get_json(format!("{a}/api/v1/realtime/600000")).await;
    assert_eq!(first["cache_source"], "network");
    let shared = get_json(format!("{b}/api/v1/realtime/600000")).await;
    assert_eq!(shared["cache_source"], "disk", "from Redis, over TLS");
    assert_eq!(shared["current_price"], first["current_price"]);
    assert_eq!(mock.requests().total, 1);

    let (_c, c) = relay(false).await;
    assert_eq!(get_json(format!("{c}/healthz")).await["status"], "degraded");
    let own = get_json(format!("{c}/api/v1/realtime/600000")).await;
    assert_eq!(
        own["cache_source"], "network",
        "no Redis it trusts: its own fetch"
    );
    assert_eq!(mock.requests().total, 2);
}

/// The relay that polls for a fleet's streams dies (SIGKILL): another relay holds the poll
/// lease within the lease's 6 s, although a TTL window is 30 s here.
#[tokio::test]
async fn a_dead_polling_relay_is_replaced_within_its_lease() {
    let redis = redis_server::RedisServer::start(redis_server::free_port());
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = redis.url();
    let (a, a_url) = start_relay(&mock, dir.path(), &["--port", "0", "--redis", &url]).await;
    let (b, b_url) = start_relay(&mock, dir.path(), &["--port", "0", "--redis", &url]).await;
    let mut streams = Vec::new();
    for base in [&a_url, &b_url] {
        let stream = reqwest::get(format!("{base}/api/v1/stream?symbols=600000"))
            .await
            .unwrap();
        assert_eq!(stream.status().as_u16(), 200);
        streams.push(stream);
    }
    // The lease holder's name starts with its process id.
    let holder = || {
        let name = redis.cli(&["GET", "quantdb:push:leader"]);
        name.split('-')
            .next()
            .and_then(|pid| pid.parse::<u32>().ok())
    };
    let start = std::time::Instant::now();
    let polling = loop {
        if let Some(pid) = holder() {
            break pid;
        }
        assert!(
            start.elapsed().as_secs() < 10,
            "no relay took the poll lease"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let (mut dead, survivor) = if a.id() == Some(polling) {
        (a, b)
    } else {
        (b, a)
    };
    assert_eq!(dead.id(), Some(polling));
    dead.kill().await.unwrap();
    let killed = std::time::Instant::now();
    while holder() != survivor.id() {
        assert!(
            killed.elapsed().as_secs() < 15,
            "the lease was not taken over within 15 s (it lasts 6 s; a window is 30 s)"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
