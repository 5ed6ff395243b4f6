//! `/healthz`, `/readyz` and `/metrics` (for callers allowed to `get /metrics` when
//! authenticated scraping is on; the probes never need a token: the kubelet sends none).

use axum::Json;
use axum::extract::State;
use std::time::{Duration, Instant};

use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use std::net::IpAddr;

use axum::Extension;
use axum::http::HeaderMap;

use super::auth::{Access, bearer_token};
use super::error::ApiError;
use super::response::Encoded;
use super::{AppState, ClientAddr};

pub(super) async fn healthz() -> Response {
    Json(serde_json::json!({"status": "ok"})).into_response()
}

pub(super) async fn readyz(State(app): State<AppState>) -> Response {
    if app.inner.readiness.is_ready() {
        Json(serde_json::json!({"status": "ready"})).into_response()
    } else {
        ApiError::NotReady.into_response()
    }
}

/// How long one encoding of the metrics serves the scrapes that follow: many scrapers (or
/// clients that never read) share one buffer instead of holding an encoding each.
const METRICS_REUSE: Duration = Duration::from_secs(1);

pub(super) async fn metrics(
    State(app): State<AppState>,
    client: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
) -> Response {
    let inner = &app.inner;
    if let Some(access) = &inner.metrics_access {
        let client = client.map(|Extension(ClientAddr(addr))| addr.ip());
        let deadline = inner.config.request_timeout;
        match tokio::time::timeout(deadline, may_scrape(access, client, &headers)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return e.into_response(),
            Err(_) => return ApiError::Timeout(deadline).into_response(),
        }
    }
    let text = {
        let mut last = inner.metrics_text.lock().unwrap_or_else(|e| e.into_inner());
        match &*last {
            Some((at, text)) if at.elapsed() < METRICS_REUSE => text.clone(),
            _ => match inner.metrics.encode() {
                Ok(text) => {
                    let text = Bytes::from(text);
                    *last = Some((Instant::now(), text.clone()));
                    text
                }
                Err(e) => return ApiError::Metrics(e).into_response(),
            },
        }
    };
    Encoded::new(text, inner.config.response_deadline, None).into_response_with(prometheus::TEXT_FORMAT)
}

/// The non-resource URL a scraper must be allowed to `get`, as with kube-rbac-proxy.
pub(super) const METRICS_PATH: &str = "/metrics";

/// Whether the request's token may `get` [`METRICS_PATH`]: 401 without a valid token, 403
/// without the grant.
async fn may_scrape(access: &Access, client: Option<IpAddr>, headers: &HeaderMap) -> Result<(), ApiError> {
    let (key, user) = access.authenticate(&bearer_token(headers)?, client).await?;
    if access.may_get(key, &user, METRICS_PATH).await? { Ok(()) } else { Err(ApiError::MetricsForbidden) }
}
