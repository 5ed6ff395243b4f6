//! `/healthz`, `/readyz` and `/metrics`.

use axum::Json;
use axum::extract::State;
use std::time::{Duration, Instant};

use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::AppState;
use super::error::ApiError;
use super::response::Encoded;

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

pub(super) async fn metrics(State(app): State<AppState>) -> Response {
    let inner = &app.inner;
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
