//! A mock of the three upstream quote servers, for tests, benchmarks, browser tests and the demo.
//!
//! It speaks the wire formats described in `UPSTREAMS.md` over a deterministic synthetic market
//! (about 5,500 stocks and 3 indices), so that nothing in the test suite touches the internet:
//!
//! - Sina `hq.sinajs.cn`: `GET /list=sh600000,sz000001` (also `GET /rn=<anything>&list=...`),
//!   GBK text, needs `Referer: https://finance.sina.com.cn/...` unless the check is off.
//! - Tencent `qt.gtimg.cn`: `GET /q=sh600000,sz000001`, GBK text, `~`-separated records.
//! - Eastmoney push2: `GET /api/qt/ulist.np/get?secids=1.600000,0.000001&fields=f2,f3&fltt=2`,
//!   UTF-8 JSON, or JSONP with `cb=NAME`.
//!
//! Daily history (see [`history`]) in the same upstreams' kline formats:
//!
//! - Eastmoney push2his: `GET /api/qt/stock/kline/get?secid=1.600000&klt=101&fqt=0&beg=..&end=..`.
//! - Tencent: `GET /appstock/app/fqkline/get?param=sh600000,day,2024-01-01,2024-12-31,640,qfq`.
//! - Sina: `GET /quotes_service/api/json_v2.php/CN_MarketData.getKLineData?symbol=..&datalen=N`
//!   and the adjustment factors `GET /realstock/company/sh600000/hfq.js`.
//!
//! Control endpoints (never counted as upstream requests):
//! `GET /__mock/stats`, `POST /__mock/reset`, `GET|POST /__mock/config`,
//! `GET /__mock/quote/<key>` (the market data the upstreams would answer for `key`) and
//! `GET /__mock/history/<key>` (the daily bars and factors the history endpoints serve).
//!
//! Knobs (latency, failure rate, providers down, CORS, Referer check, price tick, the clock) live
//! in shared state and can be changed from Rust through [`MockUpstream`] or over HTTP.
//!
//! The clock: by default the system clock (China time). [`MockConfig::now`], `POST /__mock/config
//! {"now": "2026-11-30T10:00:00+08:00"}` or the binary's `--now` stop it at a chosen instant. Its
//! date is the history's "today", and the realtime previous close is the history's close before
//! that day; the realtime answers carry its date and time. On a stopped clock a trading day's
//! quotes settle at 15:00 into the day's final bar; on the running clock the tick moves prices
//! at any hour.
//!
//! It does not depend on the `quantdb` library: it is an independent implementation of the
//! upstreams' formats, so the library's parsers are checked against something they did not write.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::serve::ListenerExt;
use axum::Router;
use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Most codes accepted in one upstream request; longer lists get `400`.
pub const MAX_CODES: usize = 2000;

/// Largest control request body read (`POST /__mock/config`).
const MAX_CONTROL_BODY: usize = 64 * 1024;

const CT_SINA: &str = "application/javascript; charset=GBK";
const CT_TENCENT: &str = "text/html; charset=GBK";
const CT_JSONP: &str = "application/javascript; charset=UTF-8";
const CT_JSON: &str = "application/json; charset=UTF-8";
const CT_TEXT: &str = "text/plain; charset=UTF-8";

pub mod history;

// ---------------------------------------------------------------------------------------------
// Public configuration and results
// ---------------------------------------------------------------------------------------------

/// Initial settings of a mock server.
#[derive(Clone, Debug)]
pub struct MockConfig {
    /// Sleep before answering any upstream request.
    pub latency: Duration,
    /// Fraction (0.0..=1.0) of upstream requests answered with `500`.
    pub failure_rate: f64,
    /// Add `Access-Control-Allow-Origin: *` everywhere and answer `OPTIONS` preflights.
    pub cors: bool,
    /// Sina answers `403` unless `Referer` starts with `https://finance.sina.com.cn`.
    pub referer_check: bool,
    /// Providers that always answer `500`: `"sina"`, `"tencent"`, `"eastmoney"` (their history
    /// endpoints too).
    pub down: Vec<String>,
    /// A stopped clock: the instant every answer is made at. `None` is the system clock.
    /// Its date (in China time, clamped to 1991-2099) is the history's "today"; from 15:00 on a
    /// trading day the quotes are the day's final bar (see [`history`]).
    pub now: Option<DateTime<FixedOffset>>,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            latency: Duration::ZERO,
            failure_rate: 0.0,
            cors: false,
            referer_check: true,
            down: Vec::new(),
            now: None,
        }
    }
}

/// Per-provider counters (realtime quote requests only; see [`HistoryCounts`] for the rest).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counts {
    pub sina: u64,
    pub tencent: u64,
    pub eastmoney: u64,
    pub total: u64,
}

/// Requests to the history endpoints, per endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HistoryCounts {
    /// `GET /api/qt/stock/kline/get`.
    pub eastmoney_kline: u64,
    /// `GET /appstock/app/fqkline/get`.
    pub tencent_kline: u64,
    /// `GET /quotes_service/api/json_v2.php/CN_MarketData.getKLineData`.
    pub sina_kline: u64,
    /// `GET /realstock/company/<symbol>/hfq.js`.
    pub sina_factors: u64,
    /// The sum of the four.
    pub total: u64,
}

/// The synthetic truth behind every wire format, for assertions.
///
/// For a suspended stock: `volume` and `amount` are 0, `open`, `high` and `low` are 0.0, and
/// `price` equals `prev_close` (the last traded price; Sina sends `0.000` for it on the wire,
/// Tencent sends the previous close, Eastmoney sends `"-"`).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct MarketQuote {
    /// Upstream key, e.g. `"sh600000"`.
    pub key: String,
    /// Six-digit code, e.g. `"600000"`.
    pub code: String,
    pub name: String,
    pub open: f64,
    pub prev_close: f64,
    pub price: f64,
    pub high: f64,
    pub low: f64,
    /// Shares (always a multiple of 100).
    pub volume: u64,
    /// Yuan (an integer value).
    pub amount: f64,
    pub suspended: bool,
    pub is_index: bool,
}

/// The three upstreams.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Provider {
    Sina,
    Tencent,
    Eastmoney,
}

impl Provider {
    pub const ALL: [Provider; 3] = [Provider::Sina, Provider::Tencent, Provider::Eastmoney];

    pub fn name(self) -> &'static str {
        match self {
            Provider::Sina => "sina",
            Provider::Tencent => "tencent",
            Provider::Eastmoney => "eastmoney",
        }
    }

    /// Parses `"sina"`, `"tencent"` or `"eastmoney"` (case-insensitive).
    pub fn parse(name: &str) -> Option<Provider> {
        Provider::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(name.trim()))
    }

    fn index(self) -> usize {
        self as usize
    }
}

// ---------------------------------------------------------------------------------------------
// Shared state
// ---------------------------------------------------------------------------------------------

struct Shared {
    latency_nanos: AtomicU64,
    failure_rate_bits: AtomicU64,
    cors: AtomicBool,
    referer_check: AtomicBool,
    down: [AtomicBool; 3],
    tick: AtomicU64,
    requests: [AtomicU64; 3],
    symbols: [AtomicU64; 3],
    /// Per [`history::Endpoint`].
    history: [AtomicU64; 4],
    /// The stopped clock, if any.
    now: RwLock<Option<DateTime<FixedOffset>>>,
    /// Upstream requests being answered right now, and the most seen at once.
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    /// When the last quote request came (Unix milliseconds, the system clock).
    last_request_ms: AtomicU64,
}

impl Shared {
    fn new(config: &MockConfig) -> Shared {
        let shared = Shared {
            latency_nanos: AtomicU64::new(0),
            failure_rate_bits: AtomicU64::new(0f64.to_bits()),
            cors: AtomicBool::new(config.cors),
            referer_check: AtomicBool::new(config.referer_check),
            down: Default::default(),
            tick: AtomicU64::new(0),
            requests: Default::default(),
            symbols: Default::default(),
            history: Default::default(),
            now: RwLock::new(config.now),
            in_flight: AtomicU64::new(0),
            max_in_flight: AtomicU64::new(0),
            last_request_ms: AtomicU64::new(0),
        };
        shared.set_latency(config.latency);
        shared.set_failure_rate(config.failure_rate);
        for name in &config.down {
            if let Some(p) = Provider::parse(name) {
                shared.set_down(p, true);
            }
        }
        shared
    }

    fn latency(&self) -> Duration {
        Duration::from_nanos(self.latency_nanos.load(Ordering::Relaxed))
    }

    fn set_latency(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.latency_nanos.store(nanos, Ordering::Relaxed);
    }

    fn failure_rate(&self) -> f64 {
        f64::from_bits(self.failure_rate_bits.load(Ordering::Relaxed))
    }

    fn set_failure_rate(&self, rate: f64) {
        let rate = if rate.is_nan() {
            0.0
        } else {
            rate.clamp(0.0, 1.0)
        };
        self.failure_rate_bits
            .store(rate.to_bits(), Ordering::Relaxed);
    }

    fn is_down(&self, p: Provider) -> bool {
        self.down[p.index()].load(Ordering::Relaxed)
    }

    fn set_down(&self, p: Provider, down: bool) {
        self.down[p.index()].store(down, Ordering::Relaxed);
    }

    fn down_names(&self) -> Vec<&'static str> {
        Provider::ALL
            .into_iter()
            .filter(|p| self.is_down(*p))
            .map(Provider::name)
            .collect()
    }

    fn tick(&self) -> u64 {
        self.tick.load(Ordering::Relaxed)
    }

    fn count(&self, p: Provider, codes: usize) {
        self.requests[p.index()].fetch_add(1, Ordering::Relaxed);
        self.symbols[p.index()].fetch_add(codes as u64, Ordering::Relaxed);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        let ms = now.map_or(0, |d| d.as_millis() as u64);
        self.last_request_ms.store(ms, Ordering::Relaxed);
    }

    fn count_history(&self, endpoint: history::Endpoint) {
        self.history[endpoint as usize].fetch_add(1, Ordering::Relaxed);
    }

    fn history_counts(&self) -> HistoryCounts {
        let [eastmoney_kline, tencent_kline, sina_kline, sina_factors] =
            self.history.each_ref().map(|c| c.load(Ordering::Relaxed));
        HistoryCounts {
            eastmoney_kline,
            tencent_kline,
            sina_kline,
            sina_factors,
            total: eastmoney_kline + tencent_kline + sina_kline + sina_factors,
        }
    }

    /// The configured stopped clock, if any.
    fn fixed_now(&self) -> Option<DateTime<FixedOffset>> {
        *self.now.read().unwrap_or_else(|e| e.into_inner())
    }

    fn set_now(&self, now: Option<DateTime<FixedOffset>>) {
        *self.now.write().unwrap_or_else(|e| e.into_inner()) = now;
    }

    /// When answers are made: the stopped clock, or the running system clock.
    fn at(&self) -> At {
        match self.fixed_now() {
            Some(now) => At::stopped(now),
            None => At::running(),
        }
    }

    /// The instant answers are made at, in China time.
    fn now_cn(&self) -> DateTime<FixedOffset> {
        match self.fixed_now() {
            Some(now) => now.with_timezone(&cn_offset()),
            None => now_cn(),
        }
    }

    fn reset_counts(&self) {
        for c in self
            .requests
            .iter()
            .chain(self.symbols.iter())
            .chain(self.history.iter())
        {
            c.store(0, Ordering::Relaxed);
        }
        self.max_in_flight.store(0, Ordering::Relaxed);
    }

    fn should_fail(&self) -> bool {
        let rate = self.failure_rate();
        rate > 0.0 && fastrand::f64() < rate
    }

    fn config_json(&self) -> String {
        let config = ConfigView {
            latency_ms: u64::try_from(self.latency().as_millis()).unwrap_or(u64::MAX),
            failure_rate: self.failure_rate(),
            down: self.down_names(),
            tick: self.tick(),
            referer_check: self.referer_check.load(Ordering::Relaxed),
            cors: self.cors.load(Ordering::Relaxed),
            now: self.fixed_now().map(|t| t.to_rfc3339()),
        };
        serde_json::to_string(&config).unwrap_or_default()
    }

    fn stats_json(&self) -> String {
        let stats = StatsView {
            requests: counts_of(&self.requests),
            symbols: counts_of(&self.symbols),
            history: self.history_counts(),
            max_in_flight: self.max_in_flight.load(Ordering::Relaxed),
            last_request_ms: self.last_request_ms.load(Ordering::Relaxed),
        };
        serde_json::to_string(&stats).unwrap_or_default()
    }
}

/// Body of `GET /__mock/config` and `POST /__mock/config`.
#[derive(serde::Serialize)]
struct ConfigView {
    latency_ms: u64,
    failure_rate: f64,
    down: Vec<&'static str>,
    tick: u64,
    referer_check: bool,
    cors: bool,
    /// The stopped clock (RFC 3339), or `null` for the system clock.
    now: Option<String>,
}

/// Body of `GET /__mock/stats`.
#[derive(serde::Serialize)]
struct StatsView {
    requests: Counts,
    symbols: Counts,
    history: HistoryCounts,
    max_in_flight: u64,
    /// When the last quote request came (Unix milliseconds, the system clock; 0 for none).
    last_request_ms: u64,
}

fn counts_of(counters: &[AtomicU64; 3]) -> Counts {
    let [sina, tencent, eastmoney] = counters.each_ref().map(|c| c.load(Ordering::Relaxed));
    Counts {
        sina,
        tencent,
        eastmoney,
        total: sina + tencent + eastmoney,
    }
}

// ---------------------------------------------------------------------------------------------
// The server handle
// ---------------------------------------------------------------------------------------------

/// A running mock server. Dropping it stops the server (gracefully, in the background).
pub struct MockUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl MockUpstream {
    /// Binds `127.0.0.1:0` and serves on the current tokio runtime.
    pub async fn start(config: MockConfig) -> std::io::Result<MockUpstream> {
        MockUpstream::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
    }

    /// Binds `addr` and serves on the current tokio runtime.
    pub async fn start_on(addr: SocketAddr, config: MockConfig) -> std::io::Result<MockUpstream> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let shared = Arc::new(Shared::new(&config));
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
        });
        Ok(MockUpstream {
            addr,
            shared,
            stop: Some(stop),
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Realtime quote requests that reached the server (including `403`, `500` and `400`
    /// answers); history requests are not included (see [`MockUpstream::history_counts`]).
    pub fn requests(&self) -> Counts {
        counts_of(&self.shared.requests)
    }

    /// Codes asked for, summed over requests.
    pub fn symbols_requested(&self) -> Counts {
        counts_of(&self.shared.symbols)
    }

    /// History requests that reached the server, per endpoint (including `500` and `400`
    /// answers and unknown symbols).
    pub fn history_counts(&self) -> HistoryCounts {
        self.shared.history_counts()
    }

    /// Resets the quote counters, the history counters and the most in flight.
    pub fn reset_counts(&self) {
        self.shared.reset_counts();
    }

    /// Stops the clock at `now` (`None`: back to the system clock).
    pub fn set_now(&self, now: Option<DateTime<FixedOffset>>) {
        self.shared.set_now(now);
    }

    /// The instant the mock answers at, in China time (the stopped clock or the system clock).
    pub fn now(&self) -> DateTime<FixedOffset> {
        self.shared.now_cn()
    }

    /// The daily bars the history endpoints serve for `key` at the mock's clock and tick
    /// (see [`history::bars`]).
    pub fn history(&self, key: &str) -> Option<Vec<history::MockBar>> {
        history::bars(key, self.now(), self.tick())
    }

    /// The most upstream requests the mock was answering at once since the last reset.
    pub fn max_in_flight(&self) -> u64 {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    pub fn set_latency(&self, d: Duration) {
        self.shared.set_latency(d);
    }

    /// Clamped to `0.0..=1.0`.
    pub fn set_failure_rate(&self, rate: f64) {
        self.shared.set_failure_rate(rate);
    }

    /// `provider` is `"sina"`, `"tencent"` or `"eastmoney"`; anything else is ignored.
    pub fn set_down(&self, provider: &str, down: bool) {
        if let Some(p) = Provider::parse(provider) {
            self.shared.set_down(p, down);
        }
    }

    pub fn set_tick(&self, tick: u64) {
        self.shared.tick.store(tick, Ordering::Relaxed);
    }

    pub fn tick(&self) -> u64 {
        self.shared.tick()
    }

    pub fn set_cors(&self, on: bool) {
        self.shared.cors.store(on, Ordering::Relaxed);
    }

    pub fn set_referer_check(&self, on: bool) {
        self.shared.referer_check.store(on, Ordering::Relaxed);
    }

    /// The quote every upstream serves for `key` (like `"sh600000"`) at the current tick and
    /// the mock's clock.
    pub fn market_quote(&self, key: &str) -> Option<MarketQuote> {
        let at = self.shared.at();
        market()
            .get(key)
            .map(|sec| quote_snap(sec, self.shared.tick(), at).quote(sec))
    }

    /// All listed stocks and indices (indices first), in a fixed order.
    pub fn listed_keys() -> Vec<String> {
        market().list.iter().map(|s| s.key.clone()).collect()
    }

    /// Stops accepting, lets open requests finish (at most 5 s), then returns.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The quote for `key` at `tick` on the system clock's date, without a server.
pub fn market_quote_at(key: &str, tick: u64) -> Option<MarketQuote> {
    let at = At::running();
    market()
        .get(key)
        .map(|sec| quote_snap(sec, tick, at).quote(sec))
}

/// The quote for `key` at `tick` when the mock's clock is stopped at `now`, without a server:
/// the previous close is the history's close before `now`'s date, and from 15:00 on a trading
/// day the quote is the day's settled bar (see [`history`]).
pub fn market_quote_on(key: &str, tick: u64, now: DateTime<FixedOffset>) -> Option<MarketQuote> {
    let at = At::stopped(now);
    market()
        .get(key)
        .map(|sec| quote_snap(sec, tick, at).quote(sec))
}

/// When an answer is made.
#[derive(Clone, Copy, Debug)]
struct At {
    /// The instant, in China time.
    now: DateTime<FixedOffset>,
    /// Whether a trading day's quotes settle at 15:00: on a stopped clock they do (the day's
    /// final bar is what the history serves for that day later); on the running system clock
    /// the tick moves prices at any hour, as tests that move the tick expect.
    settle: bool,
}

impl At {
    fn stopped(now: DateTime<FixedOffset>) -> At {
        At {
            now: now.with_timezone(&cn_offset()),
            settle: true,
        }
    }

    fn running() -> At {
        At {
            now: now_cn(),
            settle: false,
        }
    }

    fn day(&self) -> NaiveDate {
        history::today_of(self.now)
    }
}

/// The quote of `sec` at `tick` and `at`: [`snapshot`], or from 15:00 on a stopped clock the
/// day's settled bar.
fn quote_snap(sec: &Security, tick: u64, at: At) -> Snap {
    let mut snap = snapshot(sec, tick, at.day());
    if at.settle {
        if let Some(bar) = history::settled_bar(sec, at.now) {
            snap.settle(sec, bar);
        }
    }
    snap
}

/// Serves on `addr` until Ctrl-C or SIGTERM. Prints one line
/// `mock upstream listening on http://ADDR:PORT` to stdout once bound.
pub async fn serve_forever(addr: SocketAddr, config: MockConfig) -> std::io::Result<()> {
    let server = MockUpstream::start_on(addr, config).await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "mock upstream listening on {}", server.base_url())?;
    out.flush()?;
    drop(out);
    shutdown_signal().await;
    server.shutdown().await;
    Ok(())
}

/// Resolves on Ctrl-C or (on Unix) SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Synthetic market
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Exchange {
    Sh,
    Sz,
    Bj,
}

impl Exchange {
    fn prefix(self) -> &'static str {
        match self {
            Exchange::Sh => "sh",
            Exchange::Sz => "sz",
            Exchange::Bj => "bj",
        }
    }

    fn from_key(key: &str) -> Option<Exchange> {
        match key.get(..2)? {
            "sh" => Some(Exchange::Sh),
            "sz" => Some(Exchange::Sz),
            "bj" => Some(Exchange::Bj),
            _ => None,
        }
    }

    /// Eastmoney market number: 1 Shanghai, 0 Shenzhen and Beijing.
    fn eastmoney_market(self) -> u8 {
        match self {
            Exchange::Sh => 1,
            Exchange::Sz | Exchange::Bj => 0,
        }
    }

    /// Tencent's first field: 1 Shanghai, 51 Shenzhen, 62 Beijing.
    fn tencent_market(self) -> &'static str {
        match self {
            Exchange::Sh => "1",
            Exchange::Sz => "51",
            Exchange::Bj => "62",
        }
    }
}

const STOCK_RANGES: [(Exchange, u32, u32); 7] = [
    (Exchange::Sh, 600_000, 601_999),
    (Exchange::Sh, 688_000, 688_499),
    (Exchange::Sz, 1, 1_000),
    (Exchange::Sz, 2_000, 2_999),
    (Exchange::Sz, 300_000, 300_799),
    (Exchange::Bj, 430_000, 430_099),
    (Exchange::Bj, 830_000, 830_099),
];

/// Indices with their name and a base level in cents.
const INDICES: [(&str, &str, i64); 3] = [
    ("sh000001", "上证指数", 320_000),
    ("sz399001", "深证成指", 1_000_000),
    ("sh000300", "沪深300", 380_000),
];

const FIXED_NAMES: [(&str, &str); 5] = [
    ("sh600000", "浦发银行"),
    ("sz000001", "平安银行"),
    ("sz300750", "宁德时代"),
    ("bj430017", "星昊医药"),
    ("sh601318", "中国平安"),
];

/// Common characters (all in GB2312) for synthetic names.
const NAME_CHARS: [char; 64] = [
    '中', '华', '国', '新', '天', '科', '技', '电', '子', '信', '息', '能', '源', '材', '料', '医',
    '药', '生', '物', '环', '保', '建', '设', '发', '展', '投', '资', '控', '股', '集', '团', '实',
    '业', '金', '融', '地', '产', '交', '通', '运', '输', '航', '空', '港', '口', '光', '伏', '风',
    '汽', '车', '机', '械', '化', '工', '钢', '铁', '煤', '炭', '海', '洋', '精', '密', '智', '造',
];

struct Security {
    key: String,
    code: String,
    name: String,
    exchange: Exchange,
    is_index: bool,
    suspended: bool,
    seed: u64,
    /// Index base level in cents (0 for stocks).
    index_base: i64,
    /// The daily-history parameters, computed on first use.
    history: OnceLock<history::Profile>,
}

impl Security {
    fn new(exchange: Exchange, code: String, name: String, index_base: i64) -> Security {
        let key = format!("{}{}", exchange.prefix(), code);
        let is_index = index_base > 0;
        let suspended = !is_index && code.parse::<u32>().is_ok_and(|n| n % 97 == 0);
        let seed = fnv1a(key.as_bytes());
        Security {
            key,
            code,
            name,
            exchange,
            is_index,
            suspended,
            seed,
            index_base,
            history: OnceLock::new(),
        }
    }
}

struct Market {
    list: Vec<Security>,
    by_key: HashMap<String, usize>,
}

impl Market {
    fn get(&self, key: &str) -> Option<&Security> {
        self.by_key.get(key).map(|&i| &self.list[i])
    }
}

fn market() -> &'static Market {
    static MARKET: OnceLock<Market> = OnceLock::new();
    MARKET.get_or_init(build_market)
}

fn build_market() -> Market {
    let mut list = Vec::with_capacity(5_600);
    for (key, name, base) in INDICES {
        let exchange = Exchange::from_key(key).unwrap_or(Exchange::Sh);
        list.push(Security::new(
            exchange,
            key[2..].to_string(),
            name.to_string(),
            base,
        ));
    }
    for (exchange, first, last) in STOCK_RANGES {
        for n in first..=last {
            let code = format!("{n:06}");
            let key = format!("{}{}", exchange.prefix(), code);
            let name = FIXED_NAMES
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, name)| name.to_string())
                .unwrap_or_else(|| synthetic_name(&key));
            list.push(Security::new(exchange, code, name, 0));
        }
    }
    let by_key = list
        .iter()
        .enumerate()
        .map(|(i, s)| (s.key.clone(), i))
        .collect();
    Market { list, by_key }
}

/// Four common characters chosen by a hash of the key; about one in 60 is `*ST` plus two.
fn synthetic_name(key: &str) -> String {
    let seed = fnv1a(key.as_bytes());
    let st = mix(seed ^ 0x5354).is_multiple_of(61);
    let mut name = String::from(if st { "*ST" } else { "" });
    for i in 0..if st { 2 } else { 4 } {
        let pick = mix(seed.wrapping_add(i + 1)) % NAME_CHARS.len() as u64;
        name.push(NAME_CHARS[pick as usize]);
    }
    name
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// splitmix64 finalizer.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// Uniform in [0, 1), fixed per security.
fn key_rand(sec: &Security, salt: u64) -> f64 {
    unit(mix(sec.seed ^ mix(salt)))
}

/// Uniform in [0, 1), per security and tick.
fn tick_rand(sec: &Security, tick: u64, salt: u64) -> f64 {
    unit(mix(
        sec.seed ^ mix(salt ^ mix(tick.wrapping_add(0x7469_636b)))
    ))
}

fn round_i(x: f64) -> i64 {
    x.round() as i64
}

/// Everything the wire formats need, prices in cents.
struct Snap {
    prev: i64,
    /// Equals `prev` when suspended.
    price: i64,
    /// 0 when suspended.
    open: i64,
    high: i64,
    low: i64,
    limit_up: i64,
    limit_down: i64,
    /// Shares.
    volume: u64,
    /// Yuan.
    amount: u64,
    /// (price in cents, lots), best first; zeros for indices and suspended stocks.
    bids: [(i64, u64); 5],
    asks: [(i64, u64); 5],
    total_shares: f64,
    float_shares: f64,
    pe: f64,
    pb: f64,
    volume_ratio: f64,
}

impl Snap {
    fn quote(&self, sec: &Security) -> MarketQuote {
        MarketQuote {
            key: sec.key.clone(),
            code: sec.code.clone(),
            name: sec.name.clone(),
            open: yuan(self.open),
            prev_close: yuan(self.prev),
            price: yuan(self.price),
            high: yuan(self.high),
            low: yuan(self.low),
            volume: self.volume,
            amount: self.amount as f64,
            suspended: sec.suspended,
            is_index: sec.is_index,
        }
    }

    fn lots(&self) -> u64 {
        self.volume / 100
    }

    /// Replaces the day's prices and volumes by its settled bar (the order book follows).
    fn settle(&mut self, sec: &Security, bar: history::DayBar) {
        self.open = bar.open;
        self.high = bar.high;
        self.low = bar.low;
        self.price = bar.close;
        self.volume = bar.volume;
        self.amount = bar.amount;
        if !sec.is_index {
            for (i, (bid, ask)) in self.bids.iter_mut().zip(self.asks.iter_mut()).enumerate() {
                bid.0 = (bar.close - 1 - i as i64).max(1);
                ask.0 = bar.close + i as i64;
            }
        }
    }

    fn change(&self) -> i64 {
        self.price - self.prev
    }

    fn change_pct(&self) -> f64 {
        round2(self.change() as f64 * 100.0 / self.prev as f64)
    }

    fn amplitude_pct(&self) -> f64 {
        round2((self.high - self.low) as f64 * 100.0 / self.prev as f64)
    }

    fn turnover_pct(&self) -> f64 {
        round2(self.volume as f64 * 100.0 / self.float_shares)
    }

    fn total_cap(&self) -> f64 {
        (yuan(self.price) * self.total_shares).round()
    }

    fn float_cap(&self) -> f64 {
        (yuan(self.price) * self.float_shares).round()
    }
}

fn yuan(cents: i64) -> f64 {
    cents as f64 / 100.0
}

/// Rounds to 2 decimals, never returning `-0.0`.
fn round2(x: f64) -> f64 {
    let v = (x * 100.0).round() / 100.0;
    if v == 0.0 || !v.is_finite() {
        0.0
    } else {
        v
    }
}

/// The close on the history's anchor day ([`history::ANCHOR_DATE`]): the realtime previous
/// close when the mock's today is the next trading day.
fn anchor_close_cents(sec: &Security) -> i64 {
    let r = key_rand(sec, 1);
    if sec.is_index {
        round_i(sec.index_base as f64 * (0.9 + 0.2 * r))
    } else {
        // Log-uniform in [2.00, 200.00]: many cheap stocks, a few expensive ones.
        round_i(200.0 * 100f64.powf(r)).clamp(200, 20_000)
    }
}

fn raw_price(sec: &Security, prev: i64, tick: u64, lo: i64, hi: i64) -> i64 {
    let span = if sec.is_index { 0.03 } else { 0.10 };
    let u = 2.0 * tick_rand(sec, tick, 2) - 1.0;
    (prev + round_i(prev as f64 * span * u * u.abs())).clamp(lo, hi)
}

/// The price at `tick`; never equal to the price at tick 0 for another tick, so that tests that
/// move the tick always see a change.
fn price_cents(sec: &Security, prev: i64, tick: u64, lo: i64, hi: i64) -> i64 {
    let price = raw_price(sec, prev, tick, lo, hi);
    if tick == 0 || price != raw_price(sec, prev, 0, lo, hi) {
        price
    } else if price < hi {
        price + 1
    } else {
        price - 1
    }
}

/// Total and floating shares.
fn share_counts(sec: &Security) -> (f64, f64) {
    // Indices: roughly the whole market's shares, so turnover stays near 1%.
    let (magnitude, spread) = if sec.is_index {
        (12.5, 0.3)
    } else {
        (8.0, 2.5)
    };
    let total_shares = (10f64.powf(magnitude + spread * key_rand(sec, 20)) / 100.0).round() * 100.0;
    let float_shares = (total_shares * (0.5 + 0.5 * key_rand(sec, 21)) / 100.0).round() * 100.0;
    (total_shares, float_shares)
}

/// The quote at `tick` on the mock's date `day` (whose history gives the previous close).
fn snapshot(sec: &Security, tick: u64, day: NaiveDate) -> Snap {
    let prev = history::prev_close_cents(sec, day);
    let limit_up = round_i(prev as f64 * 1.1);
    let limit_down = round_i(prev as f64 * 0.9);
    let (total_shares, float_shares) = share_counts(sec);
    let mut snap = Snap {
        prev,
        price: prev,
        open: 0,
        high: 0,
        low: 0,
        limit_up,
        limit_down,
        volume: 0,
        amount: 0,
        bids: [(0, 0); 5],
        asks: [(0, 0); 5],
        total_shares,
        float_shares,
        pe: round2(5.0 + 75.0 * key_rand(sec, 22)),
        pb: round2(0.5 + 9.5 * key_rand(sec, 23)),
        volume_ratio: round2(0.3 + 2.7 * tick_rand(sec, tick, 24)),
    };
    if sec.suspended {
        return snap;
    }
    let r = |salt| tick_rand(sec, tick, salt);
    let price = price_cents(sec, prev, tick, limit_down, limit_up);
    let open_span = if sec.is_index { 0.01 } else { 0.03 };
    let open =
        (prev + round_i(prev as f64 * open_span * (2.0 * r(3) - 1.0))).clamp(limit_down, limit_up);
    let wick = if sec.is_index { 0.005 } else { 0.02 };
    let high = (open.max(price) + round_i(prev as f64 * wick * r(4))).min(limit_up);
    let low = (open.min(price) - round_i(prev as f64 * wick * r(5))).max(limit_down);
    let lots = if sec.is_index {
        200_000_000 + (400_000_000.0 * r(6)) as u64
    } else {
        10f64.powf(3.0 + 3.3 * r(6)) as u64
    };
    let volume = lots * 100;
    let avg_yuan = if sec.is_index {
        8.0 + 4.0 * r(7)
    } else {
        (low + high + 2 * price) as f64 / 400.0
    };
    snap.price = price;
    snap.open = open;
    snap.high = high;
    snap.low = low;
    snap.volume = volume;
    snap.amount = (volume as f64 * avg_yuan).round() as u64;
    if !sec.is_index {
        for i in 0..5 {
            let bid_lots = 1 + mix(sec.seed ^ mix(tick ^ (100 + i))) % 5_000;
            let ask_lots = 1 + mix(sec.seed ^ mix(tick ^ (200 + i))) % 5_000;
            snap.bids[i as usize] = ((price - 1 - i as i64).max(1), bid_lots);
            snap.asks[i as usize] = (price + i as i64, ask_lots);
        }
    }
    snap
}

// ---------------------------------------------------------------------------------------------
// Number formatting
// ---------------------------------------------------------------------------------------------

/// Cents as `9.05` (2 decimals).
fn c2(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let a = cents.unsigned_abs();
    format!("{sign}{}.{:02}", a / 100, a % 100)
}

/// Cents as `9.050` (3 decimals, as Sina writes prices).
fn c3(cents: i64) -> String {
    format!("{}0", c2(cents))
}

fn cn_offset() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset")
}

/// The system clock in China time.
fn now_cn() -> DateTime<FixedOffset> {
    Utc::now().with_timezone(&cn_offset())
}

// ---------------------------------------------------------------------------------------------
// Sina
// ---------------------------------------------------------------------------------------------

fn sina_body(codes: &[String], tick: u64, at: At) -> String {
    let date = at.now.format("%Y-%m-%d").to_string();
    let time = at.now.format("%H:%M:%S").to_string();
    let mut body = String::with_capacity(codes.len() * 320);
    for code in codes {
        match market().get(code) {
            Some(sec) => sina_line(&mut body, sec, &quote_snap(sec, tick, at), &date, &time),
            None => {
                let _ = writeln!(body, "var hq_str_{code}=\"\";");
            }
        }
    }
    body
}

fn sina_line(out: &mut String, sec: &Security, s: &Snap, date: &str, time: &str) {
    let traded = !sec.suspended;
    let p = |cents: i64| c3(if traded { cents } else { 0 });
    let _ = write!(
        out,
        "var hq_str_{}=\"{},{},{},{},{},{},{},{},{},{}.000",
        sec.key,
        sec.name,
        p(s.open),
        c3(s.prev),
        p(s.price),
        p(s.high),
        p(s.low),
        p(s.bids[0].0),
        p(s.asks[0].0),
        // Sina gives a Shanghai index's volume in lots.
        if sec.is_index && sec.exchange == Exchange::Sh {
            s.volume / 100
        } else {
            s.volume
        },
        s.amount,
    );
    for (price, lots) in s.bids.iter().chain(s.asks.iter()) {
        let _ = write!(out, ",{},{}", lots * 100, p(*price));
    }
    let status = if traded { "00" } else { "03" };
    let _ = writeln!(out, ",{date},{time},{status},D|0|0.000\";");
}

// ---------------------------------------------------------------------------------------------
// Tencent
// ---------------------------------------------------------------------------------------------

fn tencent_body(codes: &[String], tick: u64, at: At) -> String {
    let stamp = at.now.format("%Y%m%d%H%M%S").to_string();
    let mut body = String::with_capacity(codes.len() * 400);
    let mut unknown = false;
    for code in codes {
        match market().get(code) {
            Some(sec) => {
                let fields = tencent_fields(sec, &quote_snap(sec, tick, at), &stamp);
                let _ = writeln!(body, "v_{}=\"{}\";", sec.key, fields.join("~"));
            }
            None => unknown = true,
        }
    }
    if unknown {
        body.push_str("v_pv_none_match=\"1\";\n");
    }
    body
}

fn tencent_fields(sec: &Security, s: &Snap, stamp: &str) -> Vec<String> {
    let traded = !sec.suspended;
    let lots = s.lots();
    // Tencent gives a STAR board stock's volume (fields 6, 35 and 36) in shares.
    let volume = if sec.code.starts_with("688") || sec.code.starts_with("689") {
        s.volume
    } else {
        lots
    };
    let outer = (lots as f64 * (0.3 + 0.4 * unit(mix(sec.seed ^ lots)))) as u64;
    let amount = s.amount;
    let mut f: Vec<String> = Vec::with_capacity(54);
    f.push(sec.exchange.tencent_market().into()); // 0
    f.push(sec.name.clone()); // 1
    f.push(sec.code.clone()); // 2
    f.push(c2(s.price)); // 3
    f.push(c2(s.prev)); // 4
    f.push(c2(s.open)); // 5
    f.push(volume.to_string()); // 6
    f.push(outer.to_string()); // 7
    f.push((lots - outer).to_string()); // 8
    for (price, book_lots) in s.bids.iter().chain(s.asks.iter()) {
        f.push(c2(*price)); // 9..28
        f.push(book_lots.to_string());
    }
    f.push(String::new()); // 29: recent trades
    f.push(stamp.to_string()); // 30
    f.push(c2(s.change())); // 31
    f.push(format!("{:.2}", s.change_pct())); // 32
    f.push(c2(s.high)); // 33
    f.push(c2(s.low)); // 34
    f.push(format!("{}/{}/{}", c2(s.price), volume, amount)); // 35
    f.push(volume.to_string()); // 36
    f.push(format!("{}.{:04}", amount / 10_000, amount % 10_000)); // 37
    f.push(format!(
        "{:.2}",
        if traded { s.turnover_pct() } else { 0.0 }
    )); // 38
    f.push(format!("{:.2}", s.pe)); // 39
    f.push(String::new()); // 40
    f.push(c2(s.high)); // 41
    f.push(c2(s.low)); // 42
    f.push(format!(
        "{:.2}",
        if traded { s.amplitude_pct() } else { 0.0 }
    )); // 43
    f.push(format!("{:.2}", s.float_cap() / 1e8)); // 44
    f.push(format!("{:.2}", s.total_cap() / 1e8)); // 45
    f.push(format!("{:.2}", s.pb)); // 46
    f.push(c2(s.limit_up)); // 47
    f.push(c2(s.limit_down)); // 48
    f.push(format!("{:.2}", s.volume_ratio)); // 49
    f.push("0".into()); // 50: order imbalance
    let avg = if lots > 0 {
        amount as f64 / s.volume as f64
    } else {
        yuan(s.price)
    };
    f.push(format!("{avg:.2}")); // 51: average price
    f.push(format!("{:.2}", s.pe)); // 52: dynamic PE
    f.push(format!("{:.2}", s.pe * 1.1)); // 53: static PE
    f
}

// ---------------------------------------------------------------------------------------------
// Eastmoney
// ---------------------------------------------------------------------------------------------

const EASTMONEY_DEFAULT_FIELDS: &str = "f2,f3,f4,f12,f13,f14";

/// `1.600000` -> `sh600000`; `0.000001` -> `sz000001`; `0.430017` -> `bj430017`.
fn secid_to_key(secid: &str) -> Option<String> {
    let (market, code) = secid.trim().split_once('.')?;
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let prefix = match (market, code.as_bytes()[0]) {
        ("1", _) => "sh",
        ("0", b'4' | b'8' | b'9') => "bj",
        ("0", _) => "sz",
        _ => return None,
    };
    Some(format!("{prefix}{code}"))
}

fn eastmoney_body(secids: &[String], fields: &[String], fltt2: bool, tick: u64, at: At) -> String {
    let now = at.now.timestamp();
    let mut diff = Vec::new();
    for secid in secids {
        let Some(sec) = secid_to_key(secid).and_then(|k| market().get(&k)) else {
            continue;
        };
        diff.push(eastmoney_object(
            sec,
            &quote_snap(sec, tick, at),
            fields,
            fltt2,
            now,
        ));
    }
    let data = if diff.is_empty() {
        "null".to_string()
    } else {
        format!("{{\"total\":{},\"diff\":[{}]}}", diff.len(), diff.join(","))
    };
    format!(
        "{{\"rc\":0,\"rt\":11,\"svr\":181735,\"lt\":1,\"full\":1,\"dlmkts\":\"\",\"data\":{data}}}"
    )
}

fn eastmoney_object(sec: &Security, s: &Snap, fields: &[String], fltt2: bool, now: i64) -> String {
    let traded = !sec.suspended;
    // A price-like value: plain decimal with fltt=2, else an integer x100; "-" when not traded.
    let dec = |v: f64, needs_trade: bool| -> String {
        if needs_trade && !traded {
            "\"-\"".to_string()
        } else if fltt2 {
            format!("{:.2}", round2(v))
        } else {
            format!("{}", (v * 100.0).round() as i64)
        }
    };
    let mut parts = Vec::with_capacity(fields.len());
    for field in fields {
        let value = match field.as_str() {
            "f1" | "f152" => "2".to_string(),
            "f2" => dec(yuan(s.price), true),
            "f3" => dec(s.change_pct(), true),
            "f4" => dec(yuan(s.change()), true),
            "f5" => s.lots().to_string(),
            "f6" => s.amount.to_string(),
            "f7" => dec(s.amplitude_pct(), true),
            "f8" => dec(s.turnover_pct(), true),
            "f9" => dec(s.pe, false),
            "f10" => dec(s.volume_ratio, true),
            "f12" => format!("\"{}\"", sec.code),
            "f13" => sec.exchange.eastmoney_market().to_string(),
            "f14" => serde_json::to_string(&sec.name).unwrap_or_else(|_| "\"\"".into()),
            "f15" => dec(yuan(s.high), true),
            "f16" => dec(yuan(s.low), true),
            "f17" => dec(yuan(s.open), true),
            "f18" => dec(yuan(s.prev), false),
            "f20" => format!("{}", s.total_cap()),
            "f21" => format!("{}", s.float_cap()),
            "f23" => dec(s.pb, false),
            "f124" => now.to_string(),
            _ => "\"-\"".to_string(),
        };
        parts.push(format!("\"{field}\":{value}"));
    }
    format!("{{{}}}", parts.join(","))
}

fn valid_callback(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'$' | b'.'))
}

// ---------------------------------------------------------------------------------------------
// Request parsing
// ---------------------------------------------------------------------------------------------

/// Decodes `%XX` escapes (and `+` as space when `plus_space`); invalid escapes stay as they are.
fn percent_decode(s: &str, plus_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (b'+', _) if plus_space => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_params(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn split_list(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

/// Sina (`/list=..`, `/rn=..&list=..`, `/?list=..`) or Tencent (`/q=..`, `/?q=..`).
fn parse_text_request(path: &str, query: Option<&str>) -> Option<(Provider, Vec<String>)> {
    let path = path.strip_prefix('/')?;
    let from_parts = |s: &str| {
        s.split('&').find_map(|part| {
            if let Some(list) = part.strip_prefix("list=") {
                Some((Provider::Sina, split_list(&percent_decode(list, false))))
            } else {
                part.strip_prefix("q=")
                    .map(|list| (Provider::Tencent, split_list(&percent_decode(list, false))))
            }
        })
    };
    match from_parts(path) {
        Some(found) => Some(found),
        None if path.is_empty() => query.and_then(from_parts),
        None => None,
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP handling
// ---------------------------------------------------------------------------------------------

fn respond(status: StatusCode, content_type: &'static str, body: impl Into<Body>) -> Response {
    let mut resp = Response::new(body.into());
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

fn text(status: StatusCode, body: &'static str) -> Response {
    respond(status, CT_TEXT, body)
}

fn json(body: String) -> Response {
    respond(StatusCode::OK, CT_JSON, body)
}

fn gbk(s: &str) -> Vec<u8> {
    encoding_rs::GBK.encode(s).0.into_owned()
}

/// The single entry point: CORS, then dispatch on the path.
async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let cors = shared.cors.load(Ordering::Relaxed);
    if cors && req.method() == Method::OPTIONS {
        return preflight();
    }
    let mut resp = route(&shared, req).await;
    if cors {
        resp.headers_mut().insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    }
    resp
}

fn preflight() -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    resp
}

async fn route(shared: &Arc<Shared>, req: Request) -> Response {
    let method = req.method().clone();
    let is_get = method == Method::GET || method == Method::HEAD;
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    match path.as_str() {
        "/__mock/stats" if is_get => json(shared.stats_json()),
        "/__mock/reset" if method == Method::POST => {
            shared.reset_counts();
            json(shared.stats_json())
        }
        "/__mock/config" if is_get => json(shared.config_json()),
        "/__mock/config" if method == Method::POST => {
            match axum::body::to_bytes(req.into_body(), MAX_CONTROL_BODY).await {
                Ok(body) => apply_config(shared, &body),
                Err(_) => text(StatusCode::PAYLOAD_TOO_LARGE, "body too large"),
            }
        }
        _ if is_get && path.starts_with("/__mock/quote/") => {
            // The expected market data for one key, for tests that cannot call Rust.
            let key = &path["/__mock/quote/".len()..];
            let at = shared.at();
            match market()
                .get(key)
                .map(|sec| quote_snap(sec, shared.tick(), at).quote(sec))
            {
                Some(q) => json(serde_json::to_string(&q).unwrap_or_default()),
                None => text(StatusCode::NOT_FOUND, "not listed"),
            }
        }
        _ if is_get && path.starts_with("/__mock/history/") => {
            let key = &path["/__mock/history/".len()..];
            match history::control_json(key, shared.now_cn(), shared.tick()) {
                Some(body) => json(body),
                None => text(StatusCode::NOT_FOUND, "not listed"),
            }
        }
        "/__mock/stats" | "/__mock/reset" | "/__mock/config" => {
            text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        "/api/qt/ulist.np/get" if is_get => eastmoney(shared, query.as_deref().unwrap_or("")).await,
        _ if is_get && history::Endpoint::of_path(&path).is_some() => {
            history_upstream(shared, &path, query.as_deref().unwrap_or("")).await
        }
        _ => match parse_text_request(&path, query.as_deref()) {
            Some(_) if !is_get => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
            Some((provider, codes)) => text_upstream(shared, provider, &codes, req.headers()).await,
            None => text(StatusCode::NOT_FOUND, "not found"),
        },
    }
}

/// Counting, latency, outages and injected failures, common to all upstreams.
async fn gate(shared: &Shared, provider: Provider, codes: usize) -> Option<Response> {
    shared.count(provider, codes);
    delay_and_fail(shared, provider).await
}

/// Latency, outages and injected failures, after the request was counted.
async fn delay_and_fail(shared: &Shared, provider: Provider) -> Option<Response> {
    let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let latency = shared.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    shared.in_flight.fetch_sub(1, Ordering::SeqCst);
    if shared.is_down(provider) {
        return Some(text(StatusCode::INTERNAL_SERVER_ERROR, "upstream down"));
    }
    if shared.should_fail() {
        return Some(text(StatusCode::INTERNAL_SERVER_ERROR, "injected failure"));
    }
    None
}

/// A history endpoint: counted in the history counters, then the same gate as the quotes.
async fn history_upstream(shared: &Shared, path: &str, query: &str) -> Response {
    let Some(endpoint) = history::Endpoint::of_path(path) else {
        return text(StatusCode::NOT_FOUND, "not found");
    };
    shared.count_history(endpoint);
    if let Some(resp) = delay_and_fail(shared, endpoint.provider()).await {
        return resp;
    }
    let at = shared.at();
    let answer = history::answer(endpoint, path, query, at.now, shared.tick(), at.settle);
    respond(answer.status, answer.content_type, answer.body)
}

fn too_many() -> Response {
    text(StatusCode::BAD_REQUEST, "too many codes (max 2000)")
}

async fn text_upstream(
    shared: &Shared,
    provider: Provider,
    codes: &[String],
    headers: &HeaderMap,
) -> Response {
    if let Some(resp) = gate(shared, provider, codes.len()).await {
        return resp;
    }
    if provider == Provider::Sina
        && shared.referer_check.load(Ordering::Relaxed)
        && !sina_referer_ok(headers)
    {
        return respond(StatusCode::FORBIDDEN, CT_TEXT, Body::empty());
    }
    if codes.len() > MAX_CODES {
        return too_many();
    }
    let at = shared.at();
    let tick = shared.tick();
    match provider {
        Provider::Sina => respond(StatusCode::OK, CT_SINA, gbk(&sina_body(codes, tick, at))),
        _ => respond(
            StatusCode::OK,
            CT_TENCENT,
            gbk(&tencent_body(codes, tick, at)),
        ),
    }
}

fn sina_referer_ok(headers: &HeaderMap) -> bool {
    headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|r| r.starts_with("https://finance.sina.com.cn"))
}

async fn eastmoney(shared: &Shared, query: &str) -> Response {
    let params = query_params(query);
    let secids = split_list(param(&params, "secids").unwrap_or(""));
    if let Some(resp) = gate(shared, Provider::Eastmoney, secids.len()).await {
        return resp;
    }
    if secids.len() > MAX_CODES {
        return too_many();
    }
    let fields = split_list(param(&params, "fields").unwrap_or(EASTMONEY_DEFAULT_FIELDS));
    let fltt2 = param(&params, "fltt") == Some("2");
    let body = eastmoney_body(&secids, &fields, fltt2, shared.tick(), shared.at());
    match param(&params, "cb").filter(|cb| !cb.is_empty()) {
        None => respond(StatusCode::OK, CT_JSON, body),
        Some(cb) if valid_callback(cb) => {
            respond(StatusCode::OK, CT_JSONP, format!("{cb}({body});"))
        }
        Some(_) => text(StatusCode::BAD_REQUEST, "invalid callback name"),
    }
}

#[derive(serde::Deserialize)]
struct ConfigPatch {
    latency_ms: Option<u64>,
    failure_rate: Option<f64>,
    down: Option<Vec<String>>,
    tick: Option<u64>,
    referer_check: Option<bool>,
    cors: Option<bool>,
    /// Absent: unchanged; `null`: the system clock; a string: a stopped clock.
    #[serde(default, deserialize_with = "present")]
    now: Option<serde_json::Value>,
}

/// Deserializes a field that is present (even `null`) as `Some`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    <serde_json::Value as serde::Deserialize>::deserialize(d).map(Some)
}

/// Parses a clock setting: RFC 3339 (`2026-11-30T10:00:00+08:00`), or a date and time without
/// an offset (`2026-11-30T10:00:00`, `2026-11-30 10:00:00`), taken as China time. Years
/// 1991-2099 only (the history's span).
pub fn parse_time(s: &str) -> Option<DateTime<FixedOffset>> {
    let s = s.trim();
    let parsed = DateTime::parse_from_rfc3339(s).ok().or_else(|| {
        [
            "%Y-%m-%dT%H:%M:%S",
            "%Y-%m-%d %H:%M:%S",
            "%Y-%m-%dT%H:%M",
            "%Y-%m-%d %H:%M",
        ]
        .iter()
        .find_map(|f| chrono::NaiveDateTime::parse_from_str(s, f).ok())
        .and_then(|t| t.and_local_timezone(cn_offset()).single())
    })?;
    let year = chrono::Datelike::year(&parsed.with_timezone(&cn_offset()));
    (1991..=2099).contains(&year).then_some(parsed)
}

fn apply_config(shared: &Shared, body: &[u8]) -> Response {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    let patch: ConfigPatch = match serde_json::from_slice(body) {
        Ok(patch) => patch,
        Err(_) => return text(StatusCode::BAD_REQUEST, "invalid config JSON"),
    };
    let down = match patch.down {
        Some(names) => match names
            .iter()
            .map(|n| Provider::parse(n))
            .collect::<Option<Vec<Provider>>>()
        {
            Some(list) => Some(list),
            None => return text(StatusCode::BAD_REQUEST, "unknown provider in down"),
        },
        None => None,
    };
    let now = match patch.now {
        None => None,
        Some(serde_json::Value::Null) => Some(None),
        Some(serde_json::Value::String(s)) => match parse_time(&s) {
            Some(t) => Some(Some(t)),
            None => {
                return text(
                    StatusCode::BAD_REQUEST,
                    "invalid now (RFC 3339, years 1991-2099)",
                )
            }
        },
        Some(_) => {
            return text(
                StatusCode::BAD_REQUEST,
                "invalid now (RFC 3339, years 1991-2099)",
            )
        }
    };
    if let Some(now) = now {
        shared.set_now(now);
    }
    if let Some(ms) = patch.latency_ms {
        shared.set_latency(Duration::from_millis(ms));
    }
    if let Some(rate) = patch.failure_rate {
        shared.set_failure_rate(rate);
    }
    if let Some(down) = down {
        for p in Provider::ALL {
            shared.set_down(p, down.contains(&p));
        }
    }
    if let Some(tick) = patch.tick {
        shared.tick.store(tick, Ordering::Relaxed);
    }
    if let Some(on) = patch.referer_check {
        shared.referer_check.store(on, Ordering::Relaxed);
    }
    if let Some(on) = patch.cors {
        shared.cors.store(on, Ordering::Relaxed);
    }
    json(shared.config_json())
}

/// The body the mock would answer for `keys` (like `sh600000`), without a server: for
/// benchmarks of the parsers. Eastmoney gets the fields quantdb asks for, with `fltt=2`.
pub fn answer_body(provider: Provider, keys: &[String], tick: u64) -> Vec<u8> {
    bodies(provider, keys, tick, At::running())
}

/// [`answer_body`] when the mock's clock is stopped at `now`.
pub fn answer_body_at(
    provider: Provider,
    keys: &[String],
    tick: u64,
    now: DateTime<FixedOffset>,
) -> Vec<u8> {
    bodies(provider, keys, tick, At::stopped(now))
}

fn bodies(provider: Provider, keys: &[String], tick: u64, at: At) -> Vec<u8> {
    match provider {
        Provider::Sina => gbk(&sina_body(keys, tick, at)),
        Provider::Tencent => gbk(&tencent_body(keys, tick, at)),
        Provider::Eastmoney => {
            let secids: Vec<String> = keys
                .iter()
                .map(|k| format!("{}.{}", if k.starts_with("sh") { 1 } else { 0 }, &k[2..]))
                .collect();
            let fields: Vec<String> = "f2,f3,f4,f5,f6,f12,f13,f14,f15,f16,f17,f18,f124"
                .split(',')
                .map(String::from)
                .collect();
            eastmoney_body(&secids, &fields, true, tick, at).into_bytes()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The anchor close as the mock computed every previous close before it had a history.
    fn old_prev_close_cents(sec: &Security) -> i64 {
        let r = key_rand(sec, 1);
        if sec.is_index {
            round_i(sec.index_base as f64 * (0.9 + 0.2 * r))
        } else {
            round_i(200.0 * 100f64.powf(r)).clamp(200, 20_000)
        }
    }

    fn monday() -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339("2026-11-30T10:00:00+08:00").unwrap()
    }

    #[test]
    fn prev_close_unchanged_on_2026_11_30() {
        let day = history::today_of(monday());
        for sec in &market().list {
            assert_eq!(
                snapshot(sec, 3, day).prev,
                old_prev_close_cents(sec),
                "{}",
                sec.key
            );
        }
    }

    /// Hashes of the whole-market realtime answers the mock gave before it had a history.
    #[test]
    fn realtime_bodies_unchanged_on_2026_11_30() {
        let now = At::stopped(monday());
        let keys: Vec<String> = market().list.iter().map(|s| s.key.clone()).collect();
        let secids: Vec<String> = keys
            .iter()
            .map(|k| format!("{}.{}", if k.starts_with("sh") { 1 } else { 0 }, &k[2..]))
            .collect();
        let fields: Vec<String> =
            "f1,f2,f3,f4,f5,f6,f7,f8,f9,f10,f12,f13,f14,f15,f16,f17,f18,f20,f21,f23"
                .split(',')
                .map(String::from)
                .collect();
        let expected = [
            (
                0,
                [
                    0x121ba4ec6a71c0bd_u64,
                    0x509a27fd4f260cb2,
                    0x3e8069297ab6f272,
                    0x5e18cac62e975d7e,
                ],
            ),
            (
                7,
                [
                    0xdd2bae3a356a3e36,
                    0xe0c259877eb3ed36,
                    0x1a96989e3806f97c,
                    0x00adf5d55495ce7c,
                ],
            ),
            (
                12345,
                [
                    0xfa90ddc680a82a9a,
                    0x2d6df60dde1bddfe,
                    0x80c2f46381e50507,
                    0x374e10201dc64323,
                ],
            ),
        ];
        for (tick, hashes) in expected {
            let got = [
                fnv1a(sina_body(&keys, tick, now).as_bytes()),
                fnv1a(tencent_body(&keys, tick, now).as_bytes()),
                fnv1a(eastmoney_body(&secids, &fields, true, tick, now).as_bytes()),
                fnv1a(eastmoney_body(&secids, &fields, false, tick, now).as_bytes()),
            ];
            assert_eq!(got, hashes, "tick {tick}");
        }
    }
}
