//! The HTTP server (DESIGN.md, "HTTP server"): the accept loop with its connection budget and
//! timeouts, the routes, and shutdown. What each route does lives beside it:
//! - `probes`: `/healthz`, `/readyz`, `/metrics`;
//! - `read_api`: the Qovery-compatible `GET /organization/{organizationId}/argoCdDestinationClusterMapping`;
//! - `auth`: TokenReview/SubjectAccessReview of read-API callers, and their caches;
//! - `error`: the JSON errors.
//!
//! Slow clients are cut off by a header-read timeout, which also closes idle keep-alive
//! connections. Tokens are never logged.

mod auth;
mod error;
mod probes;
mod read_api;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use kube::runtime::reflector::Store;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

pub use auth::{KubeReviewer, RESOURCE, ReviewError, Reviewer, User};
pub use error::{ApiError, ErrorBody};
pub use read_api::{PATH as READ_API_PATH, SecretLookup};

use crate::crd::ArgoCdInstance;
use crate::metrics::Metrics;
use crate::readiness::Readiness;
use auth::Access;

/// Knobs of the server. `Default` holds the production values.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Review tokens and access. `false` only for local use (`--read-api-insecure-no-auth`):
    /// anyone reaching the port then reads every organization; `serve` warns loudly at start.
    pub auth: bool,
    /// Deadline of one read-API request, reviews and Secret reads included.
    pub request_timeout: Duration,
    /// A client must send its request headers within this (also ends idle keep-alive connections).
    pub header_read_timeout: Duration,
    /// How long a TokenReview or SubjectAccessReview answer is reused.
    pub review_ttl: Duration,
    /// Entries of each review cache (tokens; token × namespace answers).
    pub review_cache_capacity: u64,
    /// Read-API requests worked on at once; more wait (within their deadline).
    pub max_concurrent_requests: usize,
    /// Open connections; more wait in the listen backlog.
    pub max_connections: usize,
    /// How long shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            auth: true,
            request_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            review_ttl: Duration::from_secs(30),
            review_cache_capacity: 10_000,
            max_concurrent_requests: 64,
            max_connections: 1024,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Everything the handlers read; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: HttpConfig,
    metrics: Arc<Metrics>,
    readiness: Readiness,
    instances: Store<ArgoCdInstance>,
    secrets: Arc<dyn SecretLookup>,
    /// `None` when auth is off.
    access: Option<Access>,
    /// Read-API requests worked on at once.
    requests: Semaphore,
}

impl AppState {
    pub fn new(
        config: HttpConfig,
        metrics: Arc<Metrics>,
        readiness: Readiness,
        instances: Store<ArgoCdInstance>,
        secrets: Arc<dyn SecretLookup>,
        reviewer: Arc<dyn Reviewer>,
    ) -> Self {
        let access = config.auth.then(|| Access::new(reviewer, &config));
        let requests = Semaphore::new(config.max_concurrent_requests.max(1));
        AppState {
            inner: Arc::new(Inner { config, metrics, readiness, instances, secrets, access, requests }),
        }
    }
}

/// The routes, for [`serve`] and for tests.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(probes::healthz))
        .route("/readyz", get(probes::readyz))
        .route("/metrics", get(probes::metrics))
        .route(read_api::PATH, get(read_api::destination_cluster_mappings))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state)
}

/// Says loudly that the read API has no authentication. [`serve`] calls it at start.
pub fn warn_auth_disabled() {
    tracing::warn!(
        "READ API AUTHENTICATION IS DISABLED (--read-api-insecure-no-auth): anyone who can reach the HTTP \
         port reads the Argo CD mappings of every organization. For local use only; never run it so in a cluster."
    );
}

#[derive(Debug, thiserror::Error, strum::IntoStaticStr)]
pub enum HttpError {
    #[error("cannot listen on {addr}: {source}")]
    #[strum(serialize = "BindError")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

impl HttpError {
    /// Fixed label for logs.
    pub fn category(&self) -> &'static str {
        self.into()
    }
}

/// Binds the listener, so the caller can fail at start when the port is taken.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, HttpError> {
    TcpListener::bind(addr).await.map_err(|source| HttpError::Bind { addr, source })
}

/// Serves until `shutdown` completes, then lets requests in flight finish (at most
/// `shutdown_grace`). HTTP/1.1 only: probes, Prometheus and API clients all speak it.
pub async fn serve(listener: TcpListener, state: AppState, shutdown: impl Future<Output = ()> + Send) {
    let config = state.inner.config.clone();
    if !config.auth {
        warn_auth_disabled();
    }
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "HTTP server listening");
    }
    let service = TowerToHyperService::new(router(state));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(config.header_read_timeout);
    let graceful = GracefulShutdown::new();
    let connections = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            _ = &mut shutdown => break,
            slot = connections.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break, // never closed
            },
        };
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "cannot accept an HTTP connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service.clone()));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    tracing::info!("HTTP server shutting down");
    if tokio::time::timeout(config.shutdown_grace, graceful.shutdown()).await.is_err() {
        tracing::warn!(grace = ?config.shutdown_grace, "HTTP requests still running at shutdown were dropped");
    }
}

#[cfg(test)]
mod tests;
