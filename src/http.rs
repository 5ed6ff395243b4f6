//! The one HTTP server (DESIGN.md, "HTTP server"): `/healthz`, `/readyz`, `/metrics`, and the
//! Qovery-compatible read API `GET /organization/{organizationId}/argoCdDestinationClusterMapping`.
//!
//! Read API access: the bearer token is checked with a TokenReview, then a SubjectAccessReview
//! asks whether its user may `list argocdinstances.argomap.io` (the contract's "VIEWER role"),
//! first cluster-wide, else per namespace holding instances of the organization; only instances
//! in allowed namespaces are returned. Answers are cached for a short time in bounded caches keyed
//! by the SHA-256 of the token (never the token), and concurrent requests with one token share
//! one review.
//!
//! Order of checks: token (401), then organizationId (400), then readiness (503), then access
//! (403), so a caller without a valid token learns nothing about the server. Every error is
//! `{"error": <fixed category>, "message": <text>}`. Every request of the read API has one
//! deadline (`request_timeout`) that includes waiting for a slot, reviews and Secret reads; slow
//! clients are cut off by a header-read timeout, which also closes idle keep-alive connections.
//! Tokens are never logged.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::future::BoxFuture;
use futures::{StreamExt, stream};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, UserInfo};
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use k8s_openapi::api::core::v1::Secret;
use kube::api::PostParams;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::crd::{ArgoCdInstance, GROUP};
use crate::metrics::Metrics;
use crate::qovery::{self, ArgoCdInstanceMappingResponseList, SecretUids};

/// Route of the read API (axum path syntax).
pub const MAPPING_PATH: &str = "/organization/{organization_id}/argoCdDestinationClusterMapping";
/// The resource a caller must be allowed to `list` to see an instance.
pub const RESOURCE: &str = "argocdinstances";

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

/// Whether the process can serve: set by the controller once its watches have synced.
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// The authenticated user of a token, as TokenReview tells it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct User {
    pub username: String,
    pub uid: Option<String>,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

impl From<UserInfo> for User {
    fn from(u: UserInfo) -> Self {
        User {
            username: u.username.unwrap_or_default(),
            uid: u.uid,
            groups: u.groups.unwrap_or_default(),
            extra: u.extra.unwrap_or_default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("TokenReview failed: {0}")]
    TokenReview(#[source] kube::Error),
    #[error("SubjectAccessReview failed: {0}")]
    AccessReview(#[source] kube::Error),
}

impl ReviewError {
    pub fn category(&self) -> &'static str {
        "ReviewFailed"
    }
}

/// Authentication and authorization of read-API callers; Kubernetes reviews in production
/// ([`KubeReviewer`]), a fake in tests.
pub trait Reviewer: Send + Sync + 'static {
    /// The token's user; `Ok(None)` when the token is not valid.
    fn authenticate<'a>(
        &'a self,
        token: &'a SecretString,
    ) -> BoxFuture<'a, Result<Option<User>, ReviewError>>;
    /// Whether `user` may list ArgoCdInstances in `namespace` (`None`: in every namespace).
    fn can_list<'a>(
        &'a self,
        user: &'a User,
        namespace: Option<&'a str>,
    ) -> BoxFuture<'a, Result<bool, ReviewError>>;
}

/// TokenReview and SubjectAccessReview against the API server. Needs `create` on
/// `tokenreviews.authentication.k8s.io` and `subjectaccessreviews.authorization.k8s.io`.
#[derive(Clone)]
pub struct KubeReviewer {
    client: kube::Client,
}

impl KubeReviewer {
    pub fn new(client: kube::Client) -> Self {
        KubeReviewer { client }
    }
}

impl Reviewer for KubeReviewer {
    fn authenticate<'a>(
        &'a self,
        token: &'a SecretString,
    ) -> BoxFuture<'a, Result<Option<User>, ReviewError>> {
        Box::pin(async move {
            let review = TokenReview {
                // No audiences: the API server's own, which `kubectl create token` issues for.
                spec: TokenReviewSpec { token: Some(token.expose_secret().to_owned()), audiences: None },
                ..Default::default()
            };
            let api: Api<TokenReview> = Api::all(self.client.clone());
            let answer =
                api.create(&PostParams::default(), &review).await.map_err(ReviewError::TokenReview)?;
            Ok(answer.status.filter(|s| s.authenticated == Some(true)).and_then(|s| s.user).map(User::from))
        })
    }

    fn can_list<'a>(
        &'a self,
        user: &'a User,
        namespace: Option<&'a str>,
    ) -> BoxFuture<'a, Result<bool, ReviewError>> {
        Box::pin(async move {
            let review = SubjectAccessReview {
                spec: SubjectAccessReviewSpec {
                    user: Some(user.username.clone()),
                    uid: user.uid.clone(),
                    groups: Some(user.groups.clone()),
                    extra: Some(user.extra.clone()),
                    resource_attributes: Some(ResourceAttributes {
                        verb: Some("list".into()),
                        group: Some(GROUP.into()),
                        resource: Some(RESOURCE.into()),
                        namespace: namespace.map(str::to_owned),
                        ..Default::default()
                    }),
                    non_resource_attributes: None,
                },
                ..Default::default()
            };
            let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
            let answer =
                api.create(&PostParams::default(), &review).await.map_err(ReviewError::AccessReview)?;
            Ok(answer.status.is_some_and(|s| s.allowed))
        })
    }
}

/// UIDs of credentials Secrets.
pub trait SecretLookup: Send + Sync + 'static {
    /// The UID of Secret `name` in `namespace`; `Ok(None)` when it does not exist.
    fn uid<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, kube::Error>>;
}

/// Reads Secret metadata from the API server on each request (needs `get` on Secrets).
#[derive(Clone)]
pub struct KubeSecrets {
    client: kube::Client,
}

impl KubeSecrets {
    pub fn new(client: kube::Client) -> Self {
        KubeSecrets { client }
    }
}

impl SecretLookup for KubeSecrets {
    fn uid<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, kube::Error>> {
        Box::pin(async move {
            let api: Api<PartialObjectMeta<Secret>> = Api::namespaced(self.client.clone(), namespace);
            Ok(api.get_metadata_opt(name).await?.and_then(|m| m.metadata.uid))
        })
    }
}

/// A reflector store of Secret metadata (the controller's metadata-only Secret watch): no API
/// call per request.
impl SecretLookup for Store<PartialObjectMeta<Secret>> {
    fn uid<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, kube::Error>> {
        let uid = self.get(&ObjectRef::new(name).within(namespace)).and_then(|m| m.metadata.uid.clone());
        Box::pin(std::future::ready(Ok(uid)))
    }
}

/// A fixed map, for tests and local use.
impl SecretLookup for SecretUids {
    fn uid<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, kube::Error>> {
        let uid = self.get(&(namespace.to_owned(), name.to_owned())).cloned();
        Box::pin(std::future::ready(Ok(uid)))
    }
}

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
    #[error(
        "not allowed to list argocdinstances.argomap.io in any namespace that holds instances of this organization"
    )]
    Forbidden,
    #[error("no such path")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("not ready: the watches have not synced yet")]
    NotReady,
    #[error(transparent)]
    Review(Arc<ReviewError>),
    #[error("cannot read the credentials Secrets: {0}")]
    Secrets(#[source] kube::Error),
    #[error("the request did not finish within {0:?}")]
    Timeout(Duration),
    #[error("cannot encode the metrics: {0}")]
    Metrics(#[source] prometheus::Error),
}

impl ApiError {
    /// Fixed label, also the `error` member of the body.
    pub fn category(&self) -> &'static str {
        match self {
            ApiError::BadOrganizationId | ApiError::BadPath(_) => "BadRequest",
            ApiError::MissingToken | ApiError::InvalidToken => "Unauthorized",
            ApiError::Forbidden => "Forbidden",
            ApiError::NotFound => "NotFound",
            ApiError::MethodNotAllowed => "MethodNotAllowed",
            ApiError::NotReady => "NotReady",
            ApiError::Review(e) => e.category(),
            ApiError::Secrets(_) => "KubeError",
            ApiError::Timeout(_) => "Timeout",
            ApiError::Metrics(_) => "Internal",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadOrganizationId | ApiError::BadPath(_) => StatusCode::BAD_REQUEST,
            ApiError::MissingToken | ApiError::InvalidToken => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::NotReady | ApiError::Review(_) | ApiError::Secrets(_) | ApiError::Timeout(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Metrics(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What the client is told: server-side details stay in the log, since the caller may not
    /// even be authenticated.
    fn public_message(&self) -> String {
        match self {
            ApiError::Review(_) => "cannot review the request's credentials now; retry later".into(),
            ApiError::Secrets(_) => "cannot read the Kubernetes API now; retry later".into(),
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
        response
    }
}

type TokenKey = [u8; 32];

/// SHA-256 of the token: the cache key, so no token is kept in memory beyond its request.
fn token_key(token: &SecretString) -> TokenKey {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.expose_secret().as_bytes());
    let mut key = [0; 32];
    key.copy_from_slice(digest.as_ref()); // SHA-256 is always 32 bytes
    key
}

/// The reviewer behind two short-lived bounded caches. `try_get_with` runs one review per key
/// while concurrent callers of that key wait for its answer; failures are not cached.
struct Access {
    reviewer: Arc<dyn Reviewer>,
    users: moka::future::Cache<TokenKey, Option<Arc<User>>>,
    grants: moka::future::Cache<(TokenKey, Option<String>), bool>,
}

impl Access {
    fn new(reviewer: Arc<dyn Reviewer>, config: &HttpConfig) -> Self {
        let (capacity, ttl) = (config.review_cache_capacity, config.review_ttl);
        Access {
            reviewer,
            users: moka::future::Cache::builder().max_capacity(capacity).time_to_live(ttl).build(),
            grants: moka::future::Cache::builder().max_capacity(capacity).time_to_live(ttl).build(),
        }
    }

    async fn authenticate(&self, token: &SecretString) -> Result<(TokenKey, Arc<User>), ApiError> {
        let key = token_key(token);
        let reviewer = &self.reviewer;
        let user = self
            .users
            .try_get_with(key, async move { reviewer.authenticate(token).await.map(|u| u.map(Arc::new)) })
            .await
            .map_err(ApiError::Review)?;
        user.map(|u| (key, u)).ok_or(ApiError::InvalidToken)
    }

    async fn can_list(&self, key: TokenKey, user: &User, namespace: Option<&str>) -> Result<bool, ApiError> {
        self.grants
            .try_get_with((key, namespace.map(str::to_owned)), self.reviewer.can_list(user, namespace))
            .await
            .map_err(ApiError::Review)
    }

    /// The namespaces of `namespaces` where the caller may list instances.
    async fn allowed(
        &self,
        key: TokenKey,
        user: &User,
        namespaces: BTreeSet<String>,
    ) -> Result<BTreeSet<String>, ApiError> {
        // One cluster-wide answer (a ClusterRoleBinding) covers every namespace at once.
        if self.can_list(key, user, None).await? {
            return Ok(namespaces);
        }
        let answers: Vec<Result<(String, bool), ApiError>> = stream::iter(namespaces)
            .map(|ns| async move { self.can_list(key, user, Some(&ns)).await.map(|ok| (ns, ok)) })
            .buffer_unordered(8)
            .collect()
            .await;
        let mut allowed = BTreeSet::new();
        for answer in answers {
            let (ns, ok) = answer?;
            if ok {
                allowed.insert(ns);
            }
        }
        Ok(allowed)
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

    /// Production wiring: Kubernetes reviews, and Secret UIDs read from the API per request.
    pub fn with_kube(
        client: kube::Client,
        config: HttpConfig,
        metrics: Arc<Metrics>,
        readiness: Readiness,
        instances: Store<ArgoCdInstance>,
    ) -> Self {
        let secrets = Arc::new(KubeSecrets::new(client.clone()));
        AppState::new(config, metrics, readiness, instances, secrets, Arc::new(KubeReviewer::new(client)))
    }
}

/// The routes, for [`serve`] and for tests.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(MAPPING_PATH, get(mapping))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state)
}

async fn healthz() -> Response {
    Json(serde_json::json!({"status": "ok"})).into_response()
}

async fn readyz(State(app): State<AppState>) -> Response {
    if app.inner.readiness.is_ready() {
        Json(serde_json::json!({"status": "ready"})).into_response()
    } else {
        ApiError::NotReady.into_response()
    }
}

async fn metrics(State(app): State<AppState>) -> Response {
    match app.inner.metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, HeaderValue::from_static(prometheus::TEXT_FORMAT))], text)
            .into_response(),
        Err(e) => ApiError::Metrics(e).into_response(),
    }
}

async fn mapping(
    State(app): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    let deadline = app.inner.config.request_timeout;
    match tokio::time::timeout(deadline, list_mappings(&app.inner, &headers, path)).await {
        Ok(Ok(list)) => Json(list).into_response(),
        Ok(Err(e)) => e.into_response(),
        Err(_) => ApiError::Timeout(deadline).into_response(),
    }
}

async fn list_mappings(
    app: &Inner,
    headers: &HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<ArgoCdInstanceMappingResponseList, ApiError> {
    // Never closed, so an error cannot happen; were it to, refusing is the safe answer.
    let _slot = app.requests.acquire().await.map_err(|_| ApiError::NotReady)?;
    let caller = match &app.access {
        Some(access) => Some(access.authenticate(&bearer_token(headers)?).await?),
        None => None,
    };
    let Path(organization_id) = path.map_err(|e| ApiError::BadPath(e.body_text()))?;
    if !qovery::is_uuid(&organization_id) {
        return Err(ApiError::BadOrganizationId);
    }
    // An unsynced store would make every organization look unknown.
    if !app.readiness.is_ready() {
        return Err(ApiError::NotReady);
    }
    let instances: Vec<Arc<ArgoCdInstance>> =
        app.instances.state().into_iter().filter(|i| qovery::in_organization(i, &organization_id)).collect();
    if instances.is_empty() {
        return Ok(ArgoCdInstanceMappingResponseList::default());
    }
    let namespaces: BTreeSet<String> = instances.iter().map(|i| i.namespace().unwrap_or_default()).collect();
    let allowed = match (&app.access, &caller) {
        (Some(access), Some((key, user))) => access.allowed(*key, user, namespaces).await?,
        _ => namespaces,
    };
    if allowed.is_empty() {
        return Err(ApiError::Forbidden);
    }
    let visible: Vec<&ArgoCdInstance> = instances
        .iter()
        .map(|i| i.as_ref())
        .filter(|i| allowed.contains(&i.namespace().unwrap_or_default()))
        .collect();
    let uids = secret_uids(app.secrets.as_ref(), &visible).await?;
    let built = qovery::build(visible, &uids);
    for s in &built.skipped {
        tracing::debug!(namespace = %s.namespace, instance = %s.name, reason = s.reason.as_str(), "instance left out of the read API response");
    }
    Ok(built.list)
}

/// The token of `Authorization: Bearer <token>`. The contract's other scheme, `Token <token>`
/// (its ApiKeyAuth), is accepted too: either way the value is a Kubernetes token to review.
fn bearer_token(headers: &HeaderMap) -> Result<SecretString, ApiError> {
    let value = headers.get(header::AUTHORIZATION).ok_or(ApiError::MissingToken)?;
    let value = value.to_str().map_err(|_| ApiError::InvalidToken)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or(ApiError::InvalidToken)?;
    let token = token.trim();
    let known = scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token");
    if !known || token.is_empty() || token.contains(char::is_whitespace) {
        return Err(ApiError::InvalidToken);
    }
    Ok(SecretString::from(token))
}

async fn secret_uids(
    secrets: &dyn SecretLookup,
    instances: &[&ArgoCdInstance],
) -> Result<SecretUids, ApiError> {
    let wanted: BTreeSet<(String, String)> = instances
        .iter()
        .map(|i| (i.namespace().unwrap_or_default(), i.spec.credentials.secret_ref.name.clone()))
        .collect();
    let mut found = stream::iter(wanted)
        .map(|(ns, name)| async move { secrets.uid(&ns, &name).await.map(|uid| (ns, name, uid)) })
        .buffer_unordered(8);
    let mut uids = SecretUids::new();
    while let Some(answer) = found.next().await {
        if let (ns, name, Some(uid)) = answer.map_err(ApiError::Secrets)? {
            uids.insert((ns, name), uid);
        }
    }
    Ok(uids)
}

/// Says loudly that the read API has no authentication. [`serve`] calls it at start.
pub fn warn_auth_disabled() {
    tracing::warn!(
        "READ API AUTHENTICATION IS DISABLED (--read-api-insecure-no-auth): anyone who can reach the HTTP \
         port reads the Argo CD mappings of every organization. For local use only; never run it so in a cluster."
    );
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

impl HttpError {
    pub fn category(&self) -> &'static str {
        match self {
            HttpError::Bind { .. } => "BindError",
        }
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
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::sync::atomic::AtomicUsize;

    use axum::body::Body;
    use axum::http::Request;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use kube::runtime::reflector;
    use kube::runtime::watcher::Event;
    use pretty_assertions::assert_eq;
    use serde_json::{Value, json};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tower::ServiceExt;

    use super::*;
    use crate::crd::{
        ArgoCdInstanceSpec, ArgoCdInstanceStatus, CloudProvider, ConnectionState, ConnectionStatus,
        CredentialsSpec, KnownCluster, KubernetesType, LocalRef, Reason, UnlinkedCluster,
    };
    use crate::qovery::contract::assert_valid;

    const ORG: &str = "5e1c2b7a-0000-4000-8000-000000000001";
    const OTHER_ORG: &str = "5e1c2b7a-0000-4000-8000-000000000002";
    const AGENT: &str = "0b9f6a1e-1111-4111-8111-111111111111";

    /// Tokens → users; users → namespaces they may list (`"*"`: cluster-wide).
    #[derive(Default)]
    struct FakeReviewer {
        users: HashMap<String, User>,
        grants: HashMap<String, Vec<String>>,
        delay: Duration,
        fail: AtomicBool,
        authentications: AtomicUsize,
        access_reviews: Mutex<Vec<Option<String>>>,
    }

    impl FakeReviewer {
        fn with(mut self, token: &str, user: &str, namespaces: &[&str]) -> Self {
            self.users.insert(token.into(), User { username: user.into(), ..Default::default() });
            self.grants.insert(user.into(), namespaces.iter().map(|s| s.to_string()).collect());
            self
        }

        fn reviews(&self) -> Vec<Option<String>> {
            self.access_reviews.lock().expect("lock").clone()
        }

        fn error() -> kube::Error {
            kube::Error::Service("apiserver unreachable".into())
        }
    }

    impl Reviewer for FakeReviewer {
        fn authenticate<'a>(
            &'a self,
            token: &'a SecretString,
        ) -> BoxFuture<'a, Result<Option<User>, ReviewError>> {
            Box::pin(async move {
                self.authentications.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(self.delay).await;
                if self.fail.load(Ordering::SeqCst) {
                    return Err(ReviewError::TokenReview(Self::error()));
                }
                Ok(self.users.get(token.expose_secret()).cloned())
            })
        }

        fn can_list<'a>(
            &'a self,
            user: &'a User,
            namespace: Option<&'a str>,
        ) -> BoxFuture<'a, Result<bool, ReviewError>> {
            Box::pin(async move {
                self.access_reviews.lock().expect("lock").push(namespace.map(str::to_owned));
                tokio::time::sleep(self.delay).await;
                if self.fail.load(Ordering::SeqCst) {
                    return Err(ReviewError::AccessReview(Self::error()));
                }
                let grants = self.grants.get(&user.username).cloned().unwrap_or_default();
                Ok(grants.iter().any(|g| g == "*" || Some(g.as_str()) == namespace))
            })
        }
    }

    struct FailingSecrets;

    impl SecretLookup for FailingSecrets {
        fn uid<'a>(&'a self, _: &'a str, _: &'a str) -> BoxFuture<'a, Result<Option<String>, kube::Error>> {
            Box::pin(async { Err(FakeReviewer::error()) })
        }
    }

    fn instance(ns: &str, name: &str, org: &str) -> ArgoCdInstance {
        let mut i = ArgoCdInstance::new(
            name,
            ArgoCdInstanceSpec {
                url: format!("https://{name}.{ns}.example.com"),
                credentials: CredentialsSpec {
                    secret_ref: LocalRef { name: format!("{name}-creds") },
                    ..Default::default()
                },
                agent_cluster: KnownCluster {
                    id: AGENT.into(),
                    name: format!("{ns}/{name}"),
                    cloud_provider: CloudProvider::Gcp,
                    kind: KubernetesType::Managed,
                },
                organization_id: Some(org.into()),
                interval: "60s".into(),
                timeout: "10s".into(),
                tls: None,
                suspend: false,
            },
        );
        i.metadata.namespace = Some(ns.into());
        i.metadata.creation_timestamp = Some(Time("2026-11-01T08:00:00Z".parse().expect("time")));
        i.status = Some(ArgoCdInstanceStatus {
            connection: Some(ConnectionStatus {
                status: ConnectionState::Connected,
                reason: Reason::Connected,
                message: String::new(),
                last_checked_at: Some(Time("2026-11-22T10:00:00Z".parse().expect("time"))),
                last_successful_check_at: None,
                argocd_version: None,
                credentials_expire_at: None,
            }),
            unlinked_clusters: vec![UnlinkedCluster {
                argocd_cluster_url: "https://old.example.com".into(),
                argocd_cluster_name: None,
                applications_count: 2,
                argocd_connection_state: None,
            }],
            ..Default::default()
        });
        i
    }

    struct Harness {
        router: Router,
        reviewer: Arc<FakeReviewer>,
        readiness: Readiness,
    }

    fn harness_with(
        config: HttpConfig,
        reviewer: FakeReviewer,
        secrets: Arc<dyn SecretLookup>,
        instances: Vec<ArgoCdInstance>,
    ) -> Harness {
        let (store, mut writer) = reflector::store();
        writer.apply_watcher_event(&Event::Init);
        for i in instances {
            writer.apply_watcher_event(&Event::InitApply(i));
        }
        writer.apply_watcher_event(&Event::InitDone);
        let reviewer = Arc::new(reviewer);
        let readiness = Readiness::default();
        readiness.set(true);
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        let state = AppState::new(config, metrics, readiness.clone(), store, secrets, reviewer.clone());
        Harness { router: router(state), reviewer, readiness }
    }

    /// Instances of ORG in namespaces a and b, one of OTHER_ORG in c, one with no Secret in d.
    fn harness(config: HttpConfig, reviewer: FakeReviewer) -> Harness {
        let uid = |n: u8| format!("9a3d8c55-3333-4333-8333-3333333333{n:02}");
        let secrets: SecretUids = [("a", "one"), ("a", "two"), ("b", "three"), ("c", "four")]
            .into_iter()
            .enumerate()
            .map(|(n, (ns, name))| ((ns.to_string(), format!("{name}-creds")), uid(n as u8)))
            .collect();
        let instances = vec![
            instance("a", "one", ORG),
            instance("a", "two", ORG),
            instance("b", "three", ORG),
            instance("c", "four", OTHER_ORG),
            instance("d", "no-secret", ORG),
        ];
        harness_with(config, reviewer, Arc::new(secrets), instances)
    }

    fn reviewer() -> FakeReviewer {
        FakeReviewer::default()
            .with("token-a", "alice", &["a"])
            .with("token-ab", "bob", &["a", "b"])
            .with("token-all", "root", &["*"])
            .with("token-none", "nobody", &[])
    }

    fn path(org: &str) -> String {
        format!("/organization/{org}/argoCdDestinationClusterMapping")
    }

    struct Reply {
        status: StatusCode,
        headers: HeaderMap,
        text: String,
    }

    impl Reply {
        fn json(&self) -> Value {
            serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
        }

        /// A 200 of the read API: validated against the contract; the agent names returned.
        fn names(&self) -> Vec<String> {
            assert_eq!(self.status, StatusCode::OK, "{}", self.text);
            let v = self.json();
            assert_valid(&v);
            v["results"]
                .as_array()
                .expect("results")
                .iter()
                .map(|e| e["agent_cluster_name"].as_str().expect("name").to_string())
                .collect()
        }

        fn error(&self, status: StatusCode, category: &str) {
            assert_eq!(self.status, status, "{}", self.text);
            let ct = self.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
            assert_eq!(ct, "application/json");
            let body: ErrorBody = serde_json::from_str(&self.text).expect("error body");
            assert_eq!(body.error, category);
            assert!(!body.message.is_empty());
        }
    }

    async fn send(router: &Router, method: &str, uri: &str, auth: Option<&str>) -> Reply {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(a) = auth {
            req = req.header(header::AUTHORIZATION, a);
        }
        let res =
            router.clone().oneshot(req.body(Body::empty()).expect("request")).await.expect("infallible");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20).await.expect("body");
        Reply { status, headers, text: String::from_utf8(bytes.to_vec()).expect("utf-8") }
    }

    async fn get(h: &Harness, uri: &str, token: Option<&str>) -> Reply {
        send(&h.router, "GET", uri, token.map(|t| format!("Bearer {t}")).as_deref()).await
    }

    #[tokio::test]
    async fn health_readiness_and_metrics() {
        let h = harness(HttpConfig::default(), reviewer());
        let r = get(&h, "/healthz", None).await;
        assert_eq!((r.status, r.json()), (StatusCode::OK, json!({"status": "ok"})));
        assert_eq!(get(&h, "/readyz", None).await.status, StatusCode::OK);
        h.readiness.set(false);
        get(&h, "/readyz", None).await.error(StatusCode::SERVICE_UNAVAILABLE, "NotReady");
        assert_eq!(get(&h, "/healthz", None).await.status, StatusCode::OK);

        let r = get(&h, "/metrics", None).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.headers[header::CONTENT_TYPE], "text/plain; version=0.0.4");
        assert!(r.text.contains("argomap_build_info{version="), "{}", r.text);
    }

    #[tokio::test]
    async fn no_token_or_a_bad_one_is_401_whatever_the_path_says() {
        let h = harness(HttpConfig::default(), reviewer());
        for auth in [None, Some("Bearer nope"), Some("Basic dXNlcjpwYXNz"), Some("Bearer"), Some("token-a")] {
            for org in [ORG, "not-a-uuid"] {
                let r = send(&h.router, "GET", &path(org), auth).await;
                r.error(StatusCode::UNAUTHORIZED, "Unauthorized");
                assert_eq!(r.headers[header::WWW_AUTHENTICATE], "Bearer");
            }
        }
    }

    #[tokio::test]
    async fn a_malformed_organization_id_is_400() {
        let h = harness(HttpConfig::default(), reviewer());
        for org in [
            "not-a-uuid",
            "5e1c2b7a00004000800000000000000001",
            "5e1c2b7a-0000-4000-8000-00000000000g",
            "%20",
        ] {
            get(&h, &path(org), Some("token-all")).await.error(StatusCode::BAD_REQUEST, "BadRequest");
        }
        // Percent-encoding that is not UTF-8 is rejected by the extractor, still as JSON.
        get(&h, &path("%FF"), Some("token-all")).await.error(StatusCode::BAD_REQUEST, "BadRequest");
    }

    #[tokio::test]
    async fn an_unknown_organization_is_an_empty_200_for_any_valid_token() {
        let h = harness(HttpConfig::default(), reviewer());
        for token in ["token-none", "token-a"] {
            let r = get(&h, &path("00000000-0000-4000-8000-000000000000"), Some(token)).await;
            assert_eq!(r.names(), Vec::<String>::new());
            assert_eq!(r.json(), json!({"results": []}));
        }
    }

    #[tokio::test]
    async fn entries_are_those_of_namespaces_the_caller_may_list() {
        let h = harness(HttpConfig::default(), reviewer());
        assert_eq!(get(&h, &path(ORG), Some("token-a")).await.names(), ["a/one", "a/two"]);
        assert_eq!(get(&h, &path(ORG), Some("token-ab")).await.names(), ["a/one", "a/two", "b/three"]);
        // The instance of namespace d has no credentials Secret: left out, not an error.
        assert_eq!(get(&h, &path(ORG), Some("token-all")).await.names(), ["a/one", "a/two", "b/three"]);
        assert_eq!(get(&h, &path(OTHER_ORG), Some("token-all")).await.names(), ["c/four"]);
        assert_eq!(get(&h, &path(&ORG.to_uppercase()), Some("token-a")).await.names(), ["a/one", "a/two"]);
        // The contract's ApiKeyAuth scheme carries a token just the same.
        let r = send(&h.router, "GET", &path(ORG), Some("Token token-a")).await;
        assert_eq!(r.names(), ["a/one", "a/two"]);
    }

    #[tokio::test]
    async fn a_caller_allowed_in_no_namespace_of_the_organization_is_403() {
        let h = harness(HttpConfig::default(), reviewer());
        get(&h, &path(ORG), Some("token-none")).await.error(StatusCode::FORBIDDEN, "Forbidden");
        // Allowed in a only, which holds no instance of the other organization.
        get(&h, &path(OTHER_ORG), Some("token-a")).await.error(StatusCode::FORBIDDEN, "Forbidden");
    }

    #[tokio::test]
    async fn access_is_asked_cluster_wide_first_then_per_namespace() {
        let h = harness(HttpConfig::default(), reviewer());
        get(&h, &path(ORG), Some("token-all")).await.names();
        assert_eq!(h.reviewer.reviews(), [None]);
        get(&h, &path(ORG), Some("token-ab")).await.names();
        let mut asked = h.reviewer.reviews();
        asked.sort();
        assert_eq!(asked, [None, None, Some("a".into()), Some("b".into()), Some("d".into())]);
    }

    #[tokio::test]
    async fn a_burst_with_one_token_does_one_token_review_and_reuses_access_answers() {
        let reviewer = FakeReviewer { delay: Duration::from_millis(50), ..reviewer() };
        let h = harness(HttpConfig::default(), reviewer);
        let uri = path(ORG);
        let burst = (0..20).map(|_| get(&h, &uri, Some("token-a")));
        for r in futures::future::join_all(burst).await {
            assert_eq!(r.names(), ["a/one", "a/two"]);
        }
        assert_eq!(h.reviewer.authentications.load(Ordering::SeqCst), 1);
        // One cluster-wide question, then one per namespace of the organization (a, b, d).
        assert_eq!(h.reviewer.reviews().len(), 4);
        // Another token is another review.
        get(&h, &path(ORG), Some("token-ab")).await.names();
        assert_eq!(h.reviewer.authentications.load(Ordering::SeqCst), 2);
        // Invalid tokens are remembered too.
        get(&h, &path(ORG), Some("nope")).await.error(StatusCode::UNAUTHORIZED, "Unauthorized");
        get(&h, &path(ORG), Some("nope")).await.error(StatusCode::UNAUTHORIZED, "Unauthorized");
        assert_eq!(h.reviewer.authentications.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn review_answers_expire() {
        let config = HttpConfig { review_ttl: Duration::from_millis(100), ..Default::default() };
        let h = harness(config, reviewer());
        get(&h, &path(ORG), Some("token-a")).await.names();
        get(&h, &path(ORG), Some("token-a")).await.names();
        assert_eq!(h.reviewer.authentications.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_millis(250)).await;
        get(&h, &path(ORG), Some("token-a")).await.names();
        assert_eq!(h.reviewer.authentications.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn failing_reviews_are_503_and_not_remembered() {
        let h = harness(HttpConfig::default(), reviewer());
        h.reviewer.fail.store(true, Ordering::SeqCst);
        let r = get(&h, &path(ORG), Some("token-a")).await;
        r.error(StatusCode::SERVICE_UNAVAILABLE, "ReviewFailed");
        assert!(!r.text.contains("apiserver unreachable"), "details stay in the log: {}", r.text);
        h.reviewer.fail.store(false, Ordering::SeqCst);
        assert_eq!(get(&h, &path(ORG), Some("token-a")).await.names(), ["a/one", "a/two"]);
        assert_eq!(h.reviewer.authentications.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn failing_secret_reads_are_503() {
        let h = harness_with(
            HttpConfig::default(),
            reviewer(),
            Arc::new(FailingSecrets),
            vec![instance("a", "one", ORG)],
        );
        get(&h, &path(ORG), Some("token-a")).await.error(StatusCode::SERVICE_UNAVAILABLE, "KubeError");
    }

    #[tokio::test]
    async fn a_slow_review_ends_at_the_deadline() {
        let reviewer = FakeReviewer { delay: Duration::from_secs(5), ..reviewer() };
        let config = HttpConfig { request_timeout: Duration::from_millis(100), ..Default::default() };
        let h = harness(config, reviewer);
        let started = std::time::Instant::now();
        get(&h, &path(ORG), Some("token-a")).await.error(StatusCode::SERVICE_UNAVAILABLE, "Timeout");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn before_the_watches_sync_the_read_api_is_503_not_empty() {
        let h = harness(HttpConfig::default(), reviewer());
        h.readiness.set(false);
        get(&h, &path(ORG), Some("token-a")).await.error(StatusCode::SERVICE_UNAVAILABLE, "NotReady");
    }

    #[tokio::test]
    async fn without_auth_every_instance_is_returned_to_anyone() {
        let h = harness(HttpConfig { auth: false, ..Default::default() }, reviewer());
        assert_eq!(get(&h, &path(ORG), None).await.names(), ["a/one", "a/two", "b/three"]);
        assert_eq!(get(&h, &path(ORG), Some("garbage")).await.names(), ["a/one", "a/two", "b/three"]);
        get(&h, &path("nope"), None).await.error(StatusCode::BAD_REQUEST, "BadRequest");
        assert_eq!(h.reviewer.authentications.load(Ordering::SeqCst), 0);
        assert!(h.reviewer.reviews().is_empty());
    }

    #[tokio::test]
    async fn unknown_paths_and_methods_are_json_errors() {
        let h = harness(HttpConfig::default(), reviewer());
        get(&h, "/nope", None).await.error(StatusCode::NOT_FOUND, "NotFound");
        get(&h, &format!("{}/extra", path(ORG)), Some("token-a"))
            .await
            .error(StatusCode::NOT_FOUND, "NotFound");
        send(&h.router, "POST", &path(ORG), Some("Bearer token-a"))
            .await
            .error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed");
        send(&h.router, "DELETE", "/healthz", None)
            .await
            .error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed");
    }

    #[test]
    fn bearer_tokens_are_parsed_strictly() {
        let parse = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).expect("header"));
            bearer_token(&h).map(|t| t.expose_secret().to_string()).map_err(|e| e.category())
        };
        assert_eq!(parse("Bearer abc.def"), Ok("abc.def".into()));
        assert_eq!(parse("bearer  abc "), Ok("abc".into()));
        assert_eq!(parse("Token abc"), Ok("abc".into()));
        for bad in ["Bearer", "Bearer ", "Basic abc", "abc", "Bearer a b", ""] {
            assert_eq!(parse(bad), Err("Unauthorized"), "{bad:?}");
        }
        assert!(matches!(bearer_token(&HeaderMap::new()), Err(ApiError::MissingToken)));
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_bytes(b"Bearer \xff").expect("header"));
        assert!(matches!(bearer_token(&h), Err(ApiError::InvalidToken)));
    }

    #[test]
    fn cache_keys_are_sha256_of_the_token() {
        let key = token_key(&SecretString::from("abc"));
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn every_error_has_a_fixed_status_and_category() {
        let review = || Arc::new(ReviewError::TokenReview(FakeReviewer::error()));
        let cases = [
            (ApiError::BadOrganizationId, 400, "BadRequest"),
            (ApiError::BadPath(String::new()), 400, "BadRequest"),
            (ApiError::MissingToken, 401, "Unauthorized"),
            (ApiError::InvalidToken, 401, "Unauthorized"),
            (ApiError::Forbidden, 403, "Forbidden"),
            (ApiError::NotFound, 404, "NotFound"),
            (ApiError::MethodNotAllowed, 405, "MethodNotAllowed"),
            (ApiError::NotReady, 503, "NotReady"),
            (ApiError::Review(review()), 503, "ReviewFailed"),
            (ApiError::Secrets(FakeReviewer::error()), 503, "KubeError"),
            (ApiError::Timeout(Duration::from_secs(1)), 503, "Timeout"),
            (ApiError::Metrics(prometheus::Error::Msg(String::new())), 500, "Internal"),
        ];
        for (err, status, category) in cases {
            assert_eq!((err.status().as_u16(), err.category()), (status, category), "{err}");
        }
        let bind = HttpError::Bind {
            addr: ([127, 0, 0, 1], 1).into(),
            source: std::io::ErrorKind::AddrInUse.into(),
        };
        assert_eq!(bind.category(), "BindError");
    }

    async fn raw_request(addr: SocketAddr, request: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.write_all(request.as_bytes()).await.expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).await.expect("read");
        out
    }

    #[tokio::test]
    async fn serve_answers_cuts_slow_clients_and_shuts_down() {
        let config = HttpConfig { header_read_timeout: Duration::from_millis(200), ..Default::default() };
        let (store, mut writer) = reflector::store::<ArgoCdInstance>();
        writer.apply_watcher_event(&Event::InitDone);
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        let state = AppState::new(
            config,
            metrics,
            Readiness::default(),
            store,
            Arc::new(SecretUids::new()),
            Arc::new(reviewer()),
        );
        let listener = bind(([127, 0, 0, 1], 0).into()).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, state, async {
            let _ = stopped.await;
        }));

        let reply = raw_request(addr, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        let reply = raw_request(addr, "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
        assert!(reply.starts_with("HTTP/1.1 503") && reply.contains("\"NotReady\""), "{reply}");

        // An idle keep-alive connection is closed after the header-read timeout too.
        let started = std::time::Instant::now();
        let mut idle = tokio::net::TcpStream::connect(addr).await.expect("connect");
        idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), idle.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "idle connection still open");
        assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200"));
        assert!(started.elapsed() < Duration::from_secs(3));

        // A client that never finishes its headers is disconnected.
        let started = std::time::Instant::now();
        let mut slow = tokio::net::TcpStream::connect(addr).await.expect("connect");
        slow.write_all(b"GET /healthz HTTP/1.1\r\nHost:").await.expect("write");
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "slow client still connected");
        assert!(started.elapsed() < Duration::from_secs(3));

        stop.send(()).expect("stop");
        tokio::time::timeout(Duration::from_secs(5), server).await.expect("shut down").expect("no panic");
        assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "still listening");
    }

    #[tokio::test]
    async fn binding_a_taken_port_is_an_error() {
        let first = bind(([127, 0, 0, 1], 0).into()).await.expect("bind");
        let addr = first.local_addr().expect("addr");
        let err = bind(addr).await.expect_err("port is taken");
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
    }
}
