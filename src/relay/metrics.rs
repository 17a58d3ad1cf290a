//! `GET /metrics` in the Prometheus text format (prometheus-client): requests by endpoint and
//! status, upstream requests and failures by provider, cache lookups by tier, stale answers,
//! push subscribers, and whether the persistent (shared) tier is available.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::App;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// The route (`/api/v1/realtime/{symbol}`), not the path, so that the label set is small.
    endpoint: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabels {
    provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TierLabels {
    tier: String,
}

/// The relay's own counters (the engine keeps the rest).
#[derive(Default)]
pub(super) struct Metrics {
    requests: Family<RequestLabels, Counter>,
}

/// Counts each request by its route and status.
pub(super) async fn count(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let endpoint = (request.extensions().get::<MatchedPath>())
        .map_or("other", |p| p.as_str())
        .to_string();
    let response = next.run(request).await;
    let labels = RequestLabels {
        endpoint,
        status: response.status().as_u16(),
    };
    metrics.requests.get_or_create(&labels).inc();
    response
}

/// `GET /metrics`.
pub(super) async fn metrics(State(app): State<App>) -> Response {
    let stats = match tokio::task::spawn_blocking({
        let db = app.db.clone();
        move || db.cache_stats()
    })
    .await
    {
        Ok(stats) => stats,
        Err(_) => return axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let mut registry = Registry::with_prefix("quantdb");
    registry.register(
        "http_requests",
        "Requests answered, by route and status",
        app.metrics.requests.clone(),
    );
    let upstream = Family::<ProviderLabels, Counter>::default();
    let failures = Family::<ProviderLabels, Counter>::default();
    for (provider, asked, failed) in app.db.upstream_counts() {
        let labels = ProviderLabels {
            provider: provider.name().into(),
        };
        upstream.get_or_create(&labels).inc_by(asked);
        failures.get_or_create(&labels).inc_by(failed);
    }
    registry.register(
        "upstream_requests",
        "Requests sent to each upstream",
        upstream,
    );
    registry.register(
        "upstream_failures",
        "Upstream requests that failed (status, timeout, connection, unreadable answer)",
        failures,
    );
    let lookups = Family::<TierLabels, Counter>::default();
    for (tier, n) in [
        ("memory", stats.memory_hits),
        ("persistent", stats.persistent_hits),
        ("miss", stats.misses),
    ] {
        lookups
            .get_or_create(&TierLabels { tier: tier.into() })
            .inc_by(n);
    }
    registry.register(
        "cache_lookups",
        "Symbols looked up, by the tier that answered (miss: the upstream)",
        lookups,
    );
    let stale = Counter::<u64>::default();
    stale.inc_by(stats.stale_served);
    registry.register(
        "stale_served",
        "Expired quotes answered because every upstream failed",
        stale,
    );
    let subscribers = Gauge::<i64>::default();
    subscribers.set(app.hub.handle().subscribers() as i64);
    registry.register("push_subscribers", "Push streams open now", subscribers);
    let available = Gauge::<i64>::default();
    available.set(i64::from(
        stats.persistent_enabled && !stats.persistent_unavailable,
    ));
    registry.register(
        "persistent_available",
        "1 when the persistent tier (the file cache, or Redis shared by relays) is in use",
        available,
    );
    let mut text = String::new();
    if encode(&mut text, &registry).is_err() {
        return axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
