//! The read API's errors: each has one status code and one fixed category, and every error
//! body is `{"error": <category>, "message": <text>}`.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::review_error::ReviewError;

/// Why a request failed. Each variant has one status code and one fixed category.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("organizationId must be a UUID (8-4-4-4-12 hexadecimal digits)")]
    BadOrganizationId,
    #[error("invalid path: {0}")]
    BadPath(String),
    #[error("a bearer token is required: Authorization: Bearer <token>")]
    MissingToken,
    #[error("the bearer token is not valid")]
    InvalidToken,
    /// The caller may list instances in no namespace that holds instances of the organization,
    /// or, when the organization has none, in no namespace at all: the same answer, so that a
    /// caller learns nothing of organizations it cannot see.
    #[error(
        "not allowed to list argocdinstances.argomap.io in a namespace holding instances of this organization"
    )]
    Forbidden,
    /// The caller may not `get` the non-resource URL `/metrics`.
    #[error("not allowed to get /metrics (a ClusterRole with nonResourceURLs: [/metrics], verbs: [get])")]
    MetricsForbidden,
    #[error("no such path")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("not ready: the watches have not synced yet")]
    NotReady,
    #[error(transparent)]
    Review(Arc<ReviewError>),
    #[error("the request did not finish within {0:?}")]
    Timeout(Duration),
    /// The organization's answer is larger than the read API may send.
    #[error(
        "the answer for this organization is over the read API's limit of {0} bytes (--read-api-max-response-bytes)"
    )]
    TooLarge(usize),
    #[error("cannot encode the metrics: {0}")]
    Metrics(#[source] prometheus::Error),
}

impl ApiError {
    /// Fixed label, also the `error` member of the body.
    pub fn category(&self) -> &'static str {
        match self {
            ApiError::BadOrganizationId | ApiError::BadPath(_) => "BadRequest",
            ApiError::MissingToken | ApiError::InvalidToken => "Unauthorized",
            ApiError::Forbidden | ApiError::MetricsForbidden => "Forbidden",
            ApiError::NotFound => "NotFound",
            ApiError::MethodNotAllowed => "MethodNotAllowed",
            ApiError::NotReady => "NotReady",
            ApiError::Review(e) => e.category(),
            ApiError::Timeout(_) => "Timeout",
            ApiError::TooLarge(_) => "ResponseTooLarge",
            ApiError::Metrics(_) => "Internal",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadOrganizationId | ApiError::BadPath(_) => StatusCode::BAD_REQUEST,
            ApiError::MissingToken | ApiError::InvalidToken => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden | ApiError::MetricsForbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Review(e) if matches!(**e, ReviewError::RateLimited | ReviewError::Busy) => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::NotReady | ApiError::Review(_) | ApiError::Timeout(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Metrics(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What the client is told: server-side details stay in the log, since the caller may not
    /// even be authenticated.
    pub(super) fn public_message(&self) -> String {
        match self {
            ApiError::Review(e) if matches!(**e, ReviewError::RateLimited | ReviewError::Busy) => {
                e.to_string()
            }
            ApiError::Review(_) => "cannot review the request's credentials now; retry later".into(),
            ApiError::Metrics(_) => "cannot encode the metrics".into(),
            other => other.to_string(),
        }
    }
}

/// The JSON body of every error.
#[derive(Serialize, serde::Deserialize, Debug, PartialEq, Eq)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() && !matches!(self, ApiError::NotReady) {
            tracing::warn!(category = self.category(), error = %self, "HTTP request failed");
        }
        let body = ErrorBody { error: self.category().into(), message: self.public_message() };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
