//! The HTTP servers (docs/operating.md, "HTTP servers"): the accept loop with its connection budget and
//! timeouts, the routes, and shutdown. What each route does lives beside it:
//! - `probes`: `/healthz`, `/readyz`, `/metrics`;
//! - `read_api`: the Qovery-compatible `GET /organization/{organizationId}/argoCdDestinationClusterMapping`,
//!   and `GET /organization/{organizationId}/argoCdClusterDeployments` beside it;
//! - `auth`: TokenReview/SubjectAccessReview of read-API callers, and their caches;
//! - `error`: the JSON errors, and `review_error` why a review had no answer;
//! - `config`: the knobs ([`HttpConfig`]) and their production values.
//!
//! Every client is bounded before it is trusted: its request head by bytes and time (which
//! also closes idle keep-alive connections), its connections by a budget per server and per
//! client address (`connections`), and its answer by bytes, by a write that must make progress
//! and by a deadline for the whole of it (`response`). Tokens are never logged.

mod auth;
mod config;
mod connections;
mod error;
mod probes;
mod read_api;
mod response;
mod review_error;
mod tls;

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

pub use auth::{DEFAULT_AUDIENCE, KubeReviewer, RESOURCE, Reviewer, User};
pub use config::{DEFAULT_MAX_HEADER_BYTES, HttpConfig};
pub use error::{ApiError, ErrorBody};
pub use read_api::{CLUSTERS_PATH as READ_API_CLUSTERS_PATH, PATH as READ_API_PATH};
pub use review_error::ReviewError;
pub use tls::{TlsError, TlsFiles, server_config as tls_server_config};

use crate::crd::ArgoCdInstance;
use crate::metrics::Metrics;
use crate::readiness::Readiness;
use auth::Access;
use config::MIN_READ_BUFFER;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::core::PartialObjectMeta;

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
    /// Namespaces bound to an organization (the controller's watch).
    namespaces: Store<PartialObjectMeta<Namespace>>,
    /// Metadata of credentials Secrets (the controller's watch), for their UIDs.
    secrets: Store<PartialObjectMeta<Secret>>,
    /// Read-API callers; `None` when auth is off.
    access: Option<Access>,
    /// Scrapers of `/metrics`; `None` unless `metrics_auth`.
    metrics_access: Option<Access>,
    /// Read-API requests worked on at once.
    requests: Semaphore,
    /// Read-API answer bytes held until written, in KiB.
    inflight: Arc<Semaphore>,
    /// The last metrics encoding, shared by the scrapes of the next moment (see `probes`).
    metrics_text: std::sync::Mutex<Option<(std::time::Instant, bytes::Bytes)>>,
}

impl AppState {
    pub fn new(
        config: HttpConfig,
        metrics: Arc<Metrics>,
        readiness: Readiness,
        instances: Store<ArgoCdInstance>,
        namespaces: Store<PartialObjectMeta<Namespace>>,
        secrets: Store<PartialObjectMeta<Secret>>,
        reviewer: Arc<dyn Reviewer>,
    ) -> Self {
        let access =
            config.auth.then(|| Access::new(reviewer.clone(), config.read_api_audiences.clone(), &config));
        let metrics_access =
            config.metrics_auth.then(|| Access::new(reviewer, config.metrics_audiences.clone(), &config));
        let requests = Semaphore::new(config.max_concurrent_requests.max(1));
        let inflight = Arc::new(Semaphore::new(kib(config.max_inflight_response_bytes).max(1)));
        AppState {
            inner: Arc::new(Inner {
                config,
                metrics,
                readiness,
                instances,
                namespaces,
                secrets,
                access,
                metrics_access,
                requests,
                inflight,
                metrics_text: std::sync::Mutex::new(None),
            }),
        }
    }
}

/// Which of the two servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "kebab-case")]
pub enum Role {
    /// `/healthz`, `/readyz`, `/metrics`: for the kubelet and Prometheus (`--admin-addr`).
    Admin,
    /// The Qovery read API (`--http-addr`).
    ReadApi,
}

/// The routes of one server, for [`serve`] and for tests. Each server answers only its own
/// paths: `/metrics` (namespaces, instance names, destination URLs) is not on the read API's
/// port, which may face more clients than the scrapers.
pub fn router(role: Role, state: AppState) -> Router {
    let routes = match role {
        Role::Admin => Router::new()
            .route("/healthz", get(probes::healthz))
            .route("/readyz", get(probes::readyz))
            .route("/metrics", get(probes::metrics)),
        Role::ReadApi => Router::new()
            .route(read_api::PATH, get(read_api::destination_cluster_mappings))
            .route(read_api::CLUSTERS_PATH, get(read_api::cluster_deployments)),
    };
    routes
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state)
}

/// `bytes` in KiB, rounded up (the unit of the in-flight answer budget).
fn kib(bytes: usize) -> usize {
    bytes.div_ceil(1024)
}

/// The peer address of a request's connection, put on every request by [`serve`].
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub SocketAddr);

/// Says loudly that the read API has no authentication. [`serve`] calls it at start.
pub fn warn_auth_disabled() {
    tracing::warn!(
        "READ API AUTHENTICATION IS DISABLED (--read-api-insecure-no-auth): anyone who can reach the HTTP \
         port reads the Argo CD mappings of every organization. For local use only; never run it so in a cluster."
    );
}

/// Binds the listener, so the caller can fail at start when the port is taken. The error
/// names the address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
}

/// Serves `role`'s routes until `shutdown` completes, then lets requests in flight finish (at
/// most `shutdown_grace`). HTTP/1.1 only: probes, Prometheus and API clients all speak it. Each
/// server has its own connection budget.
pub async fn serve(
    role: Role,
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send,
) {
    let config = state.inner.config.clone();
    let name: &'static str = role.into();
    if role == Role::ReadApi && !config.auth {
        warn_auth_disabled();
    }
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, server = %name, "HTTP server listening");
    }
    // The per-client limiter forgets clients that went quiet, so it holds only recent ones.
    let sweeper = {
        let state = state.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(30));
            loop {
                every.tick().await;
                let access = match role {
                    Role::Admin => &state.inner.metrics_access,
                    Role::ReadApi => &state.inner.access,
                };
                if let Some(access) = access {
                    access.forget_idle_clients();
                }
            }
        })
    };
    let router = router(role, state.clone());
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_header_size(config.max_header_bytes)
        .max_buf_size(config.max_header_bytes.max(MIN_READ_BUFFER));
    let graceful = GracefulShutdown::new();
    let (max_connections, per_client) = match role {
        Role::Admin => (config.admin_max_connections, config.admin_max_connections_per_client),
        Role::ReadApi => (config.max_connections, config.max_connections_per_client),
    };
    let budget = connections::Budget::new(max_connections, per_client);
    // Only the read API speaks TLS: the kubelet's probes and Prometheus use plain HTTP.
    let tls = match role {
        Role::ReadApi => config.read_api_tls.clone().map(tokio_rustls::TlsAcceptor::from),
        Role::Admin => None,
    };
    let metrics = state.inner.metrics.clone();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, server = %name, "cannot accept an HTTP connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let evicted = || metrics.http_connection_refused(name, connections::Refusal::Evicted.into());
        let admission = tokio::select! {
            _ = &mut shutdown => break,
            admitted = budget.admit(peer.ip(), evicted) => match admitted {
                Ok(admission) => admission,
                Err(refusal) => {
                    // Closed at once: it costs nothing but the accept.
                    metrics.http_connection_refused(name, refusal.into());
                    tracing::debug!(client = %peer.ip(), server = %name, "connection refused: the client holds its share");
                    continue;
                }
            },
        };
        let activity = admission.activity.clone();
        let service = tower::ServiceBuilder::new()
            .map_request(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ClientAddr(peer));
                req
            })
            .map_future(move |answer| {
                // Computing an answer is not a stall: the connection is not evicted meanwhile.
                let handling = activity.handling();
                async move {
                    let answer = answer.await;
                    drop(handling);
                    answer
                }
            })
            .service(router.clone());
        connections::fix_send_buffer(&stream);
        let socket = connections::Metered::new(stream, &admission, config.write_timeout);
        let service = TowerToHyperService::new(service);
        let (http, watcher) = (http.clone(), graceful.watcher());
        let tls = tls.clone();
        let handshake_timeout = config.header_read_timeout;
        tokio::spawn(async move {
            let served = async move {
                let ended = match tls {
                    None => watcher.watch(http.serve_connection(TokioIo::new(socket), service)).await,
                    Some(acceptor) => {
                        match tokio::time::timeout(handshake_timeout, acceptor.accept(socket)).await {
                            Ok(Ok(stream)) => {
                                watcher.watch(http.serve_connection(TokioIo::new(stream), service)).await
                            }
                            Ok(Err(e)) => return tracing::debug!(error = %e, "TLS handshake failed"),
                            Err(_) => return tracing::debug!("TLS handshake not finished in time"),
                        }
                    }
                };
                if let Err(e) = ended {
                    tracing::debug!(error = %e, "HTTP connection ended with an error");
                }
            };
            tokio::select! {
                () = served => {},
                () = admission.evicted() => tracing::debug!("HTTP connection closed: stalled while the budget was full"),
            }
            drop(admission);
        });
    }
    drop(listener);
    sweeper.abort();
    tracing::info!(server = %name, "HTTP server shutting down");
    if tokio::time::timeout(config.shutdown_grace, graceful.shutdown()).await.is_err() {
        tracing::warn!(grace = ?config.shutdown_grace, server = %name, "HTTP requests still running at shutdown were dropped");
    }
}

#[cfg(test)]
mod tests;
