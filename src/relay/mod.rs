//! The relay (`quantdb serve`): one shared cache in front of the upstreams for a team's
//! dashboards and scripts. Browsers cannot call the upstreams (no CORS, and Sina needs a
//! Referer a page cannot send), and the upstreams ban addresses that ask too often; the relay
//! answers both. Many clients asking for overlapping symbols cost the upstream one request per
//! chunk per TTL window: the engine's dedup and coalescing, now across clients.
//!
//! - `GET /api/v1/realtime/{symbol}`: one quote, or `{symbol, error, code}` with a 4xx/5xx status.
//! - `GET /api/v1/realtime?symbols=000001,600000` and `POST /api/v1/realtime` with a JSON list
//!   (or `{"symbols": [...]}`): one entry per distinct symbol, per-symbol errors inside a 200.
//! - `GET /api/v1/history/{symbol}?start=&end=&days=&adjust=&period=`: daily (weekly,
//!   monthly) bars, `{symbol, adjust, period, bars}`, through the relay's history cache. With
//!   `raw=1` (start and end only): the cached raw bars, for clients that use the relay as
//!   their history provider; a symbol no upstream knows is then a `200` error object.
//! - `GET /api/v1/factors/{symbol}`: the backward-adjustment factor table,
//!   `{symbol, factors: [[date, factor], ...]}`.
//! - `GET /api/v1/stream?symbols=...` (or `POST` with the list): the quotes pushed as
//!   Server-Sent Events (see [`stream`]).
//! - `GET /api/v1/stats`: the cache statistics. `GET /healthz`: `{"status": "ok"}` (or
//!   `degraded`, still 200, while the shared tier is unavailable). `GET /metrics`: Prometheus.
//!
//! Upstream addresses come from the relay's configuration only: no request can make it fetch
//! an address of its choosing (unknown query parameters are refused).

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde::Deserialize;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::TimeoutLayer;

pub mod fleet;
mod json;
mod metrics;
pub mod stream;

use crate::history::{self, HistoryRequest};
use crate::{Error, QuantDb, Symbol, SymbolError};
pub use stream::{StreamConfig, Streams};

/// How the relay treats its clients.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Origins allowed by CORS: `*` for any, or exact origins such as `https://desk.example`.
    pub allow_origins: Vec<String>,
    /// The most symbols one request may ask for.
    pub max_symbols: usize,
    /// The largest request body accepted (the POST list).
    pub max_body_bytes: usize,
    /// A client must send its request head within this, then its whole body within this; the
    /// whole request must be answered within three times this (upstream fallbacks included).
    /// At most an hour.
    pub client_timeout: Duration,
    /// Push over Server-Sent Events.
    pub stream: StreamConfig,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            allow_origins: vec!["*".to_string()],
            max_symbols: 1000,
            max_body_bytes: 64 * 1024,
            client_timeout: Duration::from_secs(10),
            stream: StreamConfig::default(),
        }
    }
}

#[derive(Clone)]
struct App {
    db: QuantDb,
    max_symbols: usize,
    hub: std::sync::Arc<stream::Hub>,
    json: std::sync::Arc<json::QuoteJson>,
    metrics: std::sync::Arc<metrics::Metrics>,
}

/// A request-level error: `{ "error": message, "code": code }`.
fn refuse(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = serde_json::json!({ "error": message.into(), "code": code });
    (status, Json(body)).into_response()
}

/// The HTTP status for an error about one symbol.
fn status_of(err: &Error) -> StatusCode {
    StatusCode::from_u16(err.http_status()).unwrap_or(StatusCode::BAD_GATEWAY)
}

/// The longest `client_timeout` accepted.
const MAX_CLIENT_TIMEOUT: Duration = Duration::from_secs(3600);

/// Reads the whole request body within the client timeout (not only each chunk within it):
/// a body dripped slowly is cut off like a slow request head.
async fn body_deadline(
    State((timeout, max_bytes)): State<(Duration, usize)>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (parts, body) = request.into_parts();
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, max_bytes)).await {
        Ok(Ok(bytes)) => {
            let request = axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes));
            next.run(request).await
        }
        Ok(Err(_)) => refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body larger than {max_bytes} bytes"),
        ),
        Err(_) => refuse(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!("the request body did not arrive within {timeout:?}"),
        ),
    }
}

/// The relay's routes and layers, ready to serve. Its streams end when the process does; use
/// [`router_with_streams`] to end them at shutdown.
pub fn router(db: QuantDb, config: &RelayConfig) -> Result<Router, Error> {
    router_with_streams(db, config).map(|(router, _)| router)
}

/// The relay's routes, and the handle that ends its push streams ([`Streams::close`]): call
/// it when shutting down, or the open streams hold the shutdown until its timeout.
pub fn router_with_streams(db: QuantDb, config: &RelayConfig) -> Result<(Router, Streams), Error> {
    if config.stream.max_streams == 0 || config.stream.stream_buffer == 0 {
        return Err(Error::Config(
            "max_streams and stream_buffer must be at least 1".into(),
        ));
    }
    if config.max_symbols == 0 {
        return Err(Error::Config("max_symbols must be at least 1".into()));
    }
    if config.client_timeout.is_zero() || config.client_timeout > MAX_CLIENT_TIMEOUT {
        return Err(Error::Config(format!(
            "client_timeout must be more than zero and at most {} s",
            MAX_CLIENT_TIMEOUT.as_secs()
        )));
    }
    let origins = if config.allow_origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let list = (config.allow_origins.iter())
            .map(|o| {
                HeaderValue::from_str(o).map_err(|_| Error::Config(format!("bad origin {o:?}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        AllowOrigin::list(list)
    };
    let cors = CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([axum::http::header::CONTENT_TYPE])
        .max_age(Duration::from_secs(600));
    let hub = stream::Hub::new(db.clone(), config.stream.clone());
    let streams = hub.handle();
    let counters = std::sync::Arc::new(metrics::Metrics::default());
    let app = App {
        db,
        max_symbols: config.max_symbols,
        hub,
        json: Default::default(),
        metrics: counters.clone(),
    };
    let router = Router::new()
        .route("/api/v1/realtime", get(batch_get).post(batch_post))
        .route("/api/v1/realtime/{symbol}", get(one))
        .route("/api/v1/history/{symbol}", get(history))
        .route("/api/v1/factors/{symbol}", get(factors))
        .route("/api/v1/stream", get(stream_get).post(stream_post))
        .route("/api/v1/stats", get(stats))
        .route("/healthz", get(health))
        .route("/metrics", get(metrics::metrics))
        .fallback(|| async { refuse(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            refuse(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed here",
            )
        })
        .with_state(app)
        .route_layer(axum::middleware::from_fn_with_state(
            counters,
            metrics::count,
        ))
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            (config.client_timeout, config.max_body_bytes),
            body_deadline,
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            config.client_timeout * 3,
        ))
        .layer(axum::middleware::map_response(json_timeouts))
        .layer(cors)
        .layer(CatchPanicLayer::custom(|_| {
            refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "internal error",
            )
        }));
    Ok((router, streams))
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets requests in flight
/// finish (for at most `client_timeout`). Clients slower than `client_timeout` to send their
/// request head are disconnected.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    client_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(client_timeout);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        // Out of file descriptors and the like: wait a little, keep serving.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let service = TowerToHyperService::new(router.clone());
                let conn = http.serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!("connection ended: {e}");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(client_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections were still open at shutdown");
    }
    Ok(())
}

/// Gives the timeout layer's bare 504 the same JSON shape as every other error.
async fn json_timeouts(response: Response) -> Response {
    let bare = !response
        .headers()
        .contains_key(axum::http::header::CONTENT_TYPE);
    if response.status() == StatusCode::GATEWAY_TIMEOUT && bare {
        return refuse(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            "the answer took too long",
        );
    }
    response
}

/// The address a relay listening on `addr` is reached at.
pub fn url_of(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

/// The 400 for a path that does not end with one symbol.
fn no_symbol() -> Response {
    refuse(
        StatusCode::BAD_REQUEST,
        "bad_request",
        "the path must end with one symbol",
    )
}

/// A 200 with a JSON body already written.
fn json_bytes(body: Vec<u8>) -> Response {
    let json = HeaderValue::from_static("application/json");
    ([(axum::http::header::CONTENT_TYPE, json)], body).into_response()
}

/// A symbol's error with its status.
fn symbol_error(symbol: String, e: &Error) -> Response {
    (status_of(e), Json(SymbolError::new(symbol, e))).into_response()
}

async fn one(State(app): State<App>, symbol: Result<Path<String>, PathRejection>) -> Response {
    let Ok(Path(symbol)) = symbol else {
        return no_symbol();
    };
    match app.db.get_realtime_data(&symbol).await {
        Ok(quote) => json_bytes(app.json.quote(&quote)),
        Err(e) => symbol_error(symbol, &e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchQuery {
    symbols: String,
}

async fn batch_get(
    State(app): State<App>,
    query: Result<Query<BatchQuery>, QueryRejection>,
) -> Response {
    match query {
        Ok(Query(q)) => app.batch(split_symbols(&q.symbols)).await,
        Err(e) => refuse_query(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SymbolsObject {
    symbols: Vec<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SymbolsBody {
    List(Vec<String>),
    Object(SymbolsObject),
}

async fn batch_post(
    State(app): State<App>,
    body: Result<Json<SymbolsBody>, JsonRejection>,
) -> Response {
    match body {
        Ok(Json(
            SymbolsBody::List(list) | SymbolsBody::Object(SymbolsObject { symbols: list }),
        )) => app.batch(list.iter().map(String::as_str)).await,
        Err(e) => refuse_body(e),
    }
}

/// The 4xx for a symbols body that is not a JSON list (or too large).
fn refuse_body(e: JsonRejection) -> Response {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "request body too large",
        );
    }
    refuse(
        e.status(),
        "bad_request",
        format!(
            "expected a JSON list of symbols or {{\"symbols\": [...]}}: {}",
            e.body_text()
        ),
    )
}

/// The 400 for a query that is not `?symbols=...` alone.
fn refuse_query(e: QueryRejection) -> Response {
    refuse(
        StatusCode::BAD_REQUEST,
        "bad_request",
        format!(
            "expected ?symbols=000001,600000 and nothing else: {}",
            e.body_text()
        ),
    )
}

/// The symbols of `?symbols=000001, 600000,` (blanks left out).
fn split_symbols(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|s| !s.is_empty())
}

impl App {
    /// The symbols of a batch or a stream, checked: some, within the limit, one valid at
    /// least (bad ones stay per-symbol errors beside the good ones). Else the code and the
    /// message of a 400.
    fn checked<'a>(
        &self,
        symbols: impl Iterator<Item = &'a str>,
    ) -> Result<Vec<&'a str>, (&'static str, String)> {
        let symbols: Vec<&str> = symbols.collect();
        if symbols.is_empty() {
            return Err(("bad_request", "no symbols given".into()));
        }
        if symbols.len() > self.max_symbols {
            let message = format!(
                "too many symbols: {} (the limit is {})",
                symbols.len(),
                self.max_symbols
            );
            return Err(("too_many_symbols", message));
        }
        if symbols.iter().all(|s| Symbol::parse(s).is_err()) {
            let message = format!("no valid symbol in {}", symbols.join(","));
            return Err(("invalid_symbol", message));
        }
        Ok(symbols)
    }

    async fn batch<'a>(&self, symbols: impl Iterator<Item = &'a str>) -> Response {
        match self.checked(symbols) {
            Ok(symbols) => {
                let entries = self.db.get_realtime_data_batch(&symbols).await;
                json_bytes(self.json.batch(&entries))
            }
            Err((code, message)) => refuse(StatusCode::BAD_REQUEST, code, message),
        }
    }

    async fn stream<'a>(
        &self,
        symbols: impl Iterator<Item = &'a str>,
        headers: &axum::http::HeaderMap,
    ) -> Response {
        let symbols = match self.checked(symbols) {
            Ok(symbols) => symbols.into_iter().map(String::from).collect(),
            Err((code, message)) => return refuse(StatusCode::BAD_REQUEST, code, message),
        };
        let last_id = (headers.get("last-event-id")).and_then(|v| v.to_str().ok());
        match self.hub.subscribe(symbols, last_id).await {
            Ok(sse) => sse.into_response(),
            Err(why) => refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "too_many_streams",
                match why {
                    stream::Refused::Closing => "the relay is shutting down",
                    stream::Refused::Full => {
                        "the relay has as many streams open as it serves: try again later"
                    }
                },
            ),
        }
    }
}

async fn stream_get(
    State(app): State<App>,
    headers: axum::http::HeaderMap,
    query: Result<Query<BatchQuery>, QueryRejection>,
) -> Response {
    match query {
        Ok(Query(q)) => app.stream(split_symbols(&q.symbols), &headers).await,
        Err(e) => refuse_query(e),
    }
}

async fn stream_post(
    State(app): State<App>,
    headers: axum::http::HeaderMap,
    body: Result<Json<SymbolsBody>, JsonRejection>,
) -> Response {
    match body {
        Ok(Json(
            SymbolsBody::List(list) | SymbolsBody::Object(SymbolsObject { symbols: list }),
        )) => app.stream(list.iter().map(String::as_str), &headers).await,
        Err(e) => refuse_body(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    start: Option<String>,
    end: Option<String>,
    days: Option<u32>,
    adjust: Option<String>,
    period: Option<String>,
    force_refresh: Option<bool>,
    raw: Option<u8>,
}

impl HistoryQuery {
    fn request(&self) -> Result<HistoryRequest, Error> {
        let date = |d: &Option<String>| d.as_deref().map(history::parse_date).transpose();
        Ok(HistoryRequest {
            start: date(&self.start)?,
            end: date(&self.end)?,
            days: self.days,
            adjust: self.adjust.as_deref().unwrap_or("").parse()?,
            period: self.period.as_deref().unwrap_or("daily").parse()?,
            force_refresh: self.force_refresh.unwrap_or(false),
        })
    }
}

async fn history(
    State(app): State<App>,
    symbol: Result<Path<String>, PathRejection>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Response {
    let (Ok(Path(symbol)), Ok(Query(query))) = (symbol, query) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "expected /api/v1/history/{symbol} with start, end, days, adjust, period, \
             force_refresh: nothing else",
        );
    };
    let request = match query.request() {
        Ok(r) => r,
        Err(e) => return symbol_error(symbol, &e),
    };
    if query.raw == Some(1) {
        let (Some(start), Some(end)) = (request.start, request.end) else {
            return refuse(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "raw=1 needs start and end",
            );
        };
        return match app.db.get_raw_bars(&symbol, start, end).await {
            Ok(bars) => Json(serde_json::json!({ "symbol": symbol, "bars": bars })).into_response(),
            // Said inside a 200, so that the client reads it as "not known" rather than as
            // a failed relay.
            Err(e @ Error::NotFound { .. }) => Json(SymbolError::new(symbol, &e)).into_response(),
            Err(e) => symbol_error(symbol, &e),
        };
    }
    match app.db.get_stock_data(&symbol, request).await {
        Ok(bars) => Json(serde_json::json!({
            "symbol": Symbol::parse(&symbol).map(|s| s.key()).unwrap_or(symbol),
            "adjust": request.adjust,
            "period": request.period,
            "bars": bars,
        }))
        .into_response(),
        Err(e) => symbol_error(symbol, &e),
    }
}

async fn factors(State(app): State<App>, symbol: Result<Path<String>, PathRejection>) -> Response {
    let Ok(Path(symbol)) = symbol else {
        return no_symbol();
    };
    match app.db.get_factors(&symbol).await {
        Ok(table) => {
            Json(serde_json::json!({ "symbol": symbol, "factors": table.rows() })).into_response()
        }
        Err(e) => symbol_error(symbol, &e),
    }
}

async fn stats(State(app): State<App>) -> Response {
    // Counting the file cache's entries reads its directory: keep that off the async workers.
    match tokio::task::spawn_blocking(move || app.db.cache_stats()).await {
        Ok(stats) => Json(stats).into_response(),
        Err(_) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "statistics failed",
        ),
    }
}

/// `ok`, or `degraded` (still 200: every request is still answered) when the shared tier is
/// unavailable.
async fn health(State(app): State<App>) -> Response {
    let degraded = app.db.cache_stats().persistent_unavailable;
    let status = if degraded { "degraded" } else { "ok" };
    let mut body = serde_json::json!({ "status": status, "version": env!("CARGO_PKG_VERSION") });
    if degraded {
        body["reason"] =
            "the persistent tier is unavailable: answering from memory and the upstreams".into();
    }
    Json(body).into_response()
}
