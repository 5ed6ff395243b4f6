//! `/healthz`, `/readyz` and `/metrics`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;

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

pub(super) async fn metrics(State(app): State<AppState>) -> Response {
    match app.inner.metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, HeaderValue::from_static(prometheus::TEXT_FORMAT))], text)
            .into_response(),
        Err(e) => ApiError::Metrics(e).into_response(),
    }
}
