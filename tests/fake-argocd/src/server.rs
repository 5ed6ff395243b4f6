//! HTTP side: connection handling, routing, auth, faults and response shapes.
//!
//! One fallback handler routes by path rather than axum routes, because Argo CD's layering
//! (root path → `/api/` gateway vs UI, content-type check, auth interceptor) is easiest to
//! follow as straight-line code.

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Extensions, Method, StatusCode, Version};
use axum::response::Response;
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower_http::compression::CompressionLayer;

pub(crate) use crate::auth::now_unix;
use crate::auth::{Claims, claims_of, jwt, looks_like_jwt, username_of};
use crate::data::{self, App, Cluster, WireClusterList, WireListMeta, wire_app};
use crate::fields::{self, ListBody, ServerVersion};
use crate::stream::{self, Note};
use crate::{Endpoint, Fault, Options, StreamFault};

// ---------------------------------------------------------------------------------------
// State

pub(crate) struct Shared {
    opts: Options,
    version: ServerVersion,
    /// `""` or `/prefix` without trailing slash.
    root: String,
    state: Mutex<Data>,
    /// Application changes and stream faults, to every open stream.
    notes: broadcast::Sender<Note>,
}

pub(crate) struct Data {
    pub clusters: Vec<Cluster>,
    pub apps: Vec<App>,
    pub tokens: HashSet<String>,
    /// Tokens once accepted and then revoked.
    pub revoked: HashSet<String>,
    pub fault: Option<Fault>,
    /// The endpoints `fault` applies to; `None`: every `/api/v1/*` request.
    pub fault_on: Option<Vec<Endpoint>>,
    pub can_i: bool,
    pub in_cluster_enabled: bool,
    pub stats: HashMap<Endpoint, Stats>,
    pub apps_resource_version: u64,
    /// How every new application stream breaks, once its first events are out.
    pub stream_fault: Option<StreamFault>,
}

/// How many query strings are kept per endpoint ([`crate::FakeArgoCd::queries`]).
pub const RECORDED_QUERIES: usize = 256;

#[derive(Default)]
pub(crate) struct Stats {
    pub count: u64,
    pub last_query: Option<String>,
    /// The last [`RECORDED_QUERIES`] query strings (`""` for none), oldest first.
    pub queries: VecDeque<String>,
    pub last_headers: HeaderMap,
    /// Response bytes as sent on the wire (after gzip).
    pub bytes: u64,
}

impl Shared {
    pub fn new(opts: Options) -> Shared {
        Shared {
            version: ServerVersion::parse(&opts.version),
            root: normalise_root(&opts.root_path),
            opts,
            state: Mutex::new(Data {
                clusters: Vec::new(),
                apps: Vec::new(),
                tokens: HashSet::new(),
                revoked: HashSet::new(),
                fault: None,
                fault_on: None,
                can_i: true,
                in_cluster_enabled: true,
                stats: HashMap::new(),
                apps_resource_version: 918_455,
                stream_fault: None,
            }),
            notes: broadcast::channel(stream::BUFFER).0,
        }
    }

    /// A receiver of every note sent from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Note> {
        self.notes.subscribe()
    }

    /// Sends to every open stream (none open is fine).
    pub fn notify(&self, note: Note) {
        let _ = self.notes.send(note);
    }

    /// Streams open now.
    pub fn open_streams(&self) -> usize {
        self.notes.receiver_count()
    }

    pub fn keepalive(&self) -> Duration {
        self.opts.stream_keepalive
    }

    /// A panicking test thread must not wedge the server for the others.
    pub fn lock(&self) -> MutexGuard<'_, Data> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, ep: Endpoint, req: &Request) {
        let mut state = self.lock();
        let stats = state.stats.entry(ep).or_default();
        stats.count += 1;
        stats.last_query = req.uri().query().map(str::to_owned);
        if stats.queries.len() == RECORDED_QUERIES {
            stats.queries.pop_front();
        }
        stats.queries.push_back(stats.last_query.clone().unwrap_or_default());
        stats.last_headers = req.headers().clone();
    }
}

/// `argocd`, `/argocd/`, `/argocd` → `/argocd`; `""`, `/` → `""`.
pub(crate) fn normalise_root(root: &str) -> String {
    let trimmed = root.trim_matches('/');
    if trimmed.is_empty() { String::new() } else { format!("/{trimmed}") }
}

// ---------------------------------------------------------------------------------------
// Connections

/// Accepts connections until aborted; dropping the `JoinSet` then closes every connection.
pub(crate) async fn serve(listener: TcpListener, tls: Option<TlsAcceptor>, shared: Arc<Shared>) {
    let app = router(shared);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    // e.g. out of file descriptors: back off instead of spinning
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let service = TowerToHyperService::new(app.clone());
                let tls = tls.clone();
                connections.spawn(async move {
                    let builder = auto::Builder::new(TokioExecutor::new());
                    // Connection errors are client hang-ups or failed handshakes: nothing to do.
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                            }
                        }
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                        }
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Marks a response gzip must leave alone (drips, and what sits outside Argo CD's gzip
/// handler).
#[derive(Clone, Copy)]
pub(crate) struct NoCompress;

fn router(shared: Arc<Shared>) -> Router {
    // gorilla's CompressHandler compresses whatever size; tower-http's default skips < 32 bytes.
    let compression = CompressionLayer::new().compress_when(
        |_: StatusCode, _: Version, headers: &HeaderMap, ext: &Extensions| {
            ext.get::<NoCompress>().is_none()
                && headers.get(header::CONTENT_TYPE) != Some(&HeaderValue::from_static("text/event-stream"))
        },
    );
    Router::new()
        .fallback(handle)
        .with_state(shared.clone())
        .layer(compression)
        .layer(axum::middleware::map_response_with_state(shared, count_bytes))
}

/// Outermost: counts what each endpoint sends on the wire, compressed or not.
async fn count_bytes(State(shared): State<Arc<Shared>>, resp: Response) -> Response {
    let Some(&ep) = resp.extensions().get::<Endpoint>() else {
        return resp;
    };
    resp.map(|inner| Body::new(Counted { inner, shared, ep }))
}

struct Counted {
    inner: Body,
    shared: Arc<Shared>,
    ep: Endpoint,
}

impl hyper::body::Body for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            let n = data.len() as u64;
            self.shared.lock().stats.entry(self.ep).or_default().bytes += n;
        }
        polled
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}

// ---------------------------------------------------------------------------------------
// Routing

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let Some(rest) = strip_root(&shared.root, &path) else {
        shared.record(Endpoint::Other, &req);
        return outside_root(&shared.root, &path);
    };
    let ep = classify(&rest);
    shared.record(ep, &req);
    let resp =
        if rest.starts_with("/api/") { api(&shared, req, &rest, ep).await } else { ui(&shared, &req, &rest) };
    let mut resp = with_vary(resp);
    resp.extensions_mut().insert(ep);
    resp
}

fn strip_root(root: &str, path: &str) -> Option<String> {
    if root.is_empty() {
        return Some(path.to_owned());
    }
    path.strip_prefix(root).filter(|rest| rest.starts_with('/')).map(str::to_owned)
}

fn classify(path: &str) -> Endpoint {
    match path {
        "/api/version" => Endpoint::Version,
        "/api/v1/session" => Endpoint::Session,
        "/api/v1/session/userinfo" => Endpoint::UserInfo,
        "/api/v1/clusters" => Endpoint::Clusters,
        "/api/v1/applications" => Endpoint::Applications,
        "/api/v1/stream/applications" => Endpoint::ApplicationStream,
        p if p.starts_with("/api/v1/account/can-i/") => Endpoint::CanI,
        _ => Endpoint::Other,
    }
}

/// `withRootPath` mounts the server on a plain Go ServeMux at `<root>/`.
fn outside_root(root: &str, path: &str) -> Response {
    let mut resp = if path == root {
        let mut r = status_only(StatusCode::MOVED_PERMANENTLY);
        insert(&mut r, header::LOCATION, &format!("{root}/"));
        r
    } else {
        go_http_error(StatusCode::NOT_FOUND, "404 page not found")
    };
    resp.extensions_mut().insert(NoCompress);
    resp
}

/// gorilla's CompressHandler always announces `Vary: Accept-Encoding`.
fn with_vary(mut resp: Response) -> Response {
    if resp.extensions().get::<NoCompress>().is_none() && !resp.headers().contains_key(header::VARY) {
        resp.headers_mut().insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    resp
}

async fn api(shared: &Shared, req: Request, rest: &str, ep: Endpoint) -> Response {
    let fault = if rest.starts_with("/api/v1/") {
        let state = shared.lock();
        state.fault.clone().filter(|_| state.fault_on.as_ref().is_none_or(|on| on.contains(&ep)))
    } else {
        None
    };
    match fault {
        None => gateway(shared, req, rest, ep).await,
        Some(Fault::Latency(delay)) => {
            tokio::time::sleep(delay).await;
            gateway(shared, req, rest, ep).await
        }
        Some(Fault::SlowDrip(every)) => drip(gateway(shared, req, rest, ep).await, every).await,
        Some(Fault::Redirect { status, location }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::TEMPORARY_REDIRECT);
            let target =
                format!("{location}{}", req.uri().path_and_query().map(|p| p.as_str()).unwrap_or(""));
            let mut resp = status_only(status);
            insert(&mut resp, header::LOCATION, &target);
            resp
        }
        Some(Fault::Echo) => echo(req).await,
        Some(Fault::CutOff) => cut_off(gateway(shared, req, rest, ep).await).await,
        Some(Fault::GzipBomb(bytes)) => gzip_bomb(bytes),
        Some(other) => fault_response(shared, other, ep),
    }
}

/// The `Echo` fault: a grpc-gateway 401 whose message quotes the credentials back.
async fn echo(req: Request) -> Response {
    let auth =
        req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let body = axum::body::to_bytes(req.into_body(), 1 << 20).await.unwrap_or_default();
    let message = format!("rejected Authorization {auth:?} with body {}", String::from_utf8_lossy(&body));
    runtime_error(StatusCode::UNAUTHORIZED, 16, &message)
}

/// The `/api/` handler chain: content-type enforcement, then grpc-gateway routes.
async fn gateway(shared: &Shared, req: Request, rest: &str, ep: Endpoint) -> Response {
    if req.method() != Method::GET && !content_type_allowed(req.headers()) {
        // enforceContentTypes sits outside the gzip handler.
        let mut resp = go_http_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Invalid content type");
        resp.extensions_mut().insert(NoCompress);
        return resp;
    }
    let method = req.method().clone();
    match (ep, method) {
        (Endpoint::Version, Method::GET) => version(shared, req.headers()),
        (Endpoint::Session, Method::POST) => login(shared, req).await,
        // Logout answers an empty SessionResponse and revokes nothing server-side.
        (Endpoint::Session, Method::DELETE) => json(StatusCode::OK, "{}".to_owned()),
        (Endpoint::UserInfo, Method::GET) => userinfo(shared, req.headers()),
        (Endpoint::Clusters, Method::GET) => clusters(shared, &req),
        (Endpoint::Applications, Method::GET) => applications(shared, &req),
        (Endpoint::ApplicationStream, Method::GET) => stream::applications(shared, req).await,
        (Endpoint::CanI, Method::GET) => can_i(shared, &req, rest),
        // grpc-gateway v1.16 fallbacks are plain text, not the JSON error shape.
        (Endpoint::Other, _) => go_http_error(StatusCode::NOT_FOUND, "Not Found"),
        _ => go_http_error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed"),
    }
}

/// Exact (case-insensitive) match: `application/json; charset=utf-8` is refused by Argo CD.
fn content_type_allowed(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("application/json"))
}

// ---------------------------------------------------------------------------------------
// Auth

pub(crate) enum Auth {
    /// No usable token (none, not `Bearer `, or not three dot-separated parts).
    Anonymous,
    /// A token was presented but is not valid; the message follows `invalid session: `.
    Invalid(String),
    Valid(Claims),
}

impl Auth {
    /// The claims, or the 401 the gRPC auth interceptor answers with.
    pub(crate) fn require(self) -> Result<Claims, Unauthorized> {
        match self {
            Auth::Valid(claims) => Ok(claims),
            Auth::Anonymous => Err(Unauthorized(None)),
            Auth::Invalid(why) => Err(Unauthorized(Some(why))),
        }
    }
}

/// A rejected call: no session, or an invalid one (with the reason).
pub(crate) struct Unauthorized(pub Option<String>);

impl Unauthorized {
    fn response(self) -> Response {
        match self.0 {
            None => no_session(),
            Some(why) => invalid_session(&why),
        }
    }
}

pub(crate) const TOKEN_EXPIRED: &str = "token has invalid claims: token is expired";

fn no_session() -> Response {
    runtime_error(StatusCode::UNAUTHORIZED, 16, "no session information")
}

fn invalid_session(why: &str) -> Response {
    runtime_error(StatusCode::UNAUTHORIZED, 16, &format!("invalid session: {why}"))
}

/// `getToken` order: `token` metadata header, `Authorization: Bearer`, `argocd.token` cookie.
fn presented_token(headers: &HeaderMap) -> Option<String> {
    let metadata = headers.get("grpc-metadata-token").and_then(|v| v.to_str().ok()).filter(|t| !t.is_empty());
    let bearer = || {
        headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.strip_prefix("Bearer "))
            .find(|t| looks_like_jwt(t))
    };
    let cookie = || {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().strip_prefix("argocd.token="))
            .find(|t| looks_like_jwt(t))
    };
    metadata.or_else(bearer).or_else(cookie).map(str::to_owned)
}

pub(crate) fn authenticate(shared: &Shared, headers: &HeaderMap) -> Auth {
    let Some(token) = presented_token(headers) else {
        return Auth::Anonymous;
    };
    let (known, revoked) = {
        let state = shared.lock();
        (state.tokens.contains(&token), state.revoked.contains(&token))
    };
    if revoked {
        // Argo CD checks a token's id against the account's list in argocd-secret.
        let claims = claims_of(&token).unwrap_or_default();
        return Auth::Invalid(format!(
            "account {} does not have token with id {}",
            username_of(&claims.sub),
            claims.jti
        ));
    }
    if !known {
        // golang-jwt checks the signature before the claims, so unknown tokens fail here.
        return Auth::Invalid("token signature is invalid: signature is invalid".to_owned());
    }
    let claims = claims_of(&token).unwrap_or_default();
    if claims.exp.is_some_and(|exp| exp <= now_unix()) {
        return Auth::Invalid(TOKEN_EXPIRED.to_owned());
    }
    Auth::Valid(claims)
}

/// Login tokens with less than 5 minutes left are re-issued on any authenticated call.
fn renew_if_due(shared: &Shared, claims: &Claims, resp: &mut Response) {
    let due = claims.sub.ends_with(":login") && claims.exp.is_some_and(|exp| exp - now_unix() < 5 * 60);
    if !due {
        return;
    }
    let token = issue_session(shared, &claims.sub);
    insert(resp, HeaderName::from_static("grpc-metadata-renew-token"), &token);
    set_token_cookie(shared, resp, &token);
}

fn issue_session(shared: &Shared, sub: &str) -> String {
    let ttl = i64::try_from(shared.opts.session_ttl.as_secs()).unwrap_or(i64::MAX);
    let token = jwt(sub, Some(now_unix().saturating_add(ttl)));
    shared.lock().tokens.insert(token.clone());
    token
}

fn set_token_cookie(shared: &Shared, resp: &mut Response, token: &str) {
    let secure = if shared.opts.tls { "; Secure" } else { "" };
    let cookie = format!("argocd.token={token}; path={}/; SameSite=lax; httpOnly{secure}", shared.root);
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(header::SET_COOKIE, value);
    }
}

// ---------------------------------------------------------------------------------------
// Endpoints

/// `version.VersionMessage`: Go field order, capitalised keys, empty ones omitted.
#[derive(Serialize, Default)]
#[serde(rename_all = "PascalCase")]
struct VersionMessage {
    version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    build_date: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    git_commit: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    git_tag: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    git_tree_state: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    go_version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    compiler: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    platform: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    kustomize_version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    helm_version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    kubectl_version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    jsonnet_version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    extra_build_info: String,
}

/// No auth needed; only a logged-in caller gets more than `Version`.
fn version(shared: &Shared, headers: &HeaderMap) -> Response {
    let v = &shared.opts.version;
    let Auth::Valid(claims) = authenticate(shared, headers) else {
        return json_of(&VersionMessage { version: v.clone(), ..VersionMessage::default() });
    };
    // `v<VERSION>+<commit>[.dirty]` for untagged builds, the bare tag for clean tagged ones.
    let (commit, tag) = match v.split_once('+') {
        Some((_, rest)) => (rest.trim_end_matches(".dirty"), String::new()),
        None => ("", v.clone()),
    };
    // The full hash of v3.5.1 when it matches, else the short one padded (opaque anyway).
    const V3_5_1: &str = "109ca7ca71139e514114499d294a492e7910a965";
    let commit = if !commit.is_empty() && V3_5_1.starts_with(commit) {
        V3_5_1.to_owned()
    } else {
        format!("{commit:0<40}")
    };
    let message = VersionMessage {
        version: v.clone(),
        build_date: "2026-08-12T11:40:02Z".to_owned(),
        git_commit: commit,
        git_tag: tag,
        git_tree_state: if v.ends_with(".dirty") { "dirty" } else { "clean" }.to_owned(),
        go_version: "go1.26.3".to_owned(),
        compiler: "gc".to_owned(),
        platform: "linux/amd64".to_owned(),
        kustomize_version: "v5.8.1 2026-06-30T17:21:43Z".to_owned(),
        helm_version: "v4.2.1+g8a51cfd".to_owned(),
        kubectl_version: "v0.36.1".to_owned(),
        jsonnet_version: "v0.22.0".to_owned(),
        extra_build_info: String::new(),
    };
    let mut resp = json_of(&message);
    renew_if_due(shared, &claims, &mut resp);
    resp
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SessionCreateRequest {
    username: String,
    password: String,
    token: String,
}

#[derive(Serialize)]
struct SessionResponse {
    token: String,
}

async fn login(shared: &Shared, req: Request) -> Response {
    let body = match axum::body::to_bytes(req.into_body(), 1 << 20).await {
        Ok(body) => body,
        Err(e) => return runtime_error(StatusCode::BAD_REQUEST, 3, &e.to_string()),
    };
    let q: SessionCreateRequest = match serde_json::from_slice(&body) {
        Ok(q) => q,
        Err(e) => return runtime_error(StatusCode::BAD_REQUEST, 3, &e.to_string()),
    };
    let unauthenticated = |msg: &str| runtime_error(StatusCode::UNAUTHORIZED, 16, msg);
    if !q.token.is_empty() {
        return unauthenticated(
            "token-based session creation no longer supported. please upgrade argocd cli to v0.7+",
        );
    }
    if q.username.is_empty() || q.password.is_empty() {
        return unauthenticated("no credentials supplied");
    }
    if q.username.len() > 32 {
        return runtime_error(StatusCode::BAD_REQUEST, 3, "Username is too long (32 bytes max)");
    }
    let known = shared.opts.users.iter().any(|(u, p)| *u == q.username && *p == q.password);
    if !known {
        return unauthenticated("Invalid username or password");
    }
    let token = issue_session(shared, &format!("{}:login", q.username));
    let mut resp = json_of(&SessionResponse { token: token.clone() });
    set_token_cookie(shared, &mut resp, &token);
    resp
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserInfo<'a> {
    logged_in: bool,
    username: &'a str,
    iss: &'a str,
}

/// Always 200: auth errors are swallowed and an anonymous caller gets `{}`.
fn userinfo(shared: &Shared, headers: &HeaderMap) -> Response {
    let Auth::Valid(claims) = authenticate(shared, headers) else {
        return json(StatusCode::OK, "{}".to_owned());
    };
    let iss = if claims.iss.is_empty() { "argocd" } else { &claims.iss };
    let mut resp = json_of(&UserInfo { logged_in: true, username: username_of(&claims.sub), iss });
    renew_if_due(shared, &claims, &mut resp);
    resp
}

fn clusters(shared: &Shared, req: &Request) -> Response {
    let claims = match authenticate(shared, req.headers()).require() {
        Ok(claims) => claims,
        Err(rejected) => return rejected.response(),
    };
    let query = Query::parse(req.uri().query());
    let mut items = {
        let state = shared.lock();
        data::cluster_list(&state.clusters, &state.apps, state.in_cluster_enabled, now_unix())
    };
    // filterClustersByID, then name, then server; each keeps the first match only.
    let id_value = query.first("id.value");
    if !id_value.is_empty() {
        let by_name = matches!(query.first("id.type"), "name" | "name_escaped");
        let hit =
            items.iter().position(|c| if by_name { c.name() == id_value } else { c.server() == id_value });
        keep_only(&mut items, hit);
    }
    let name = query.first("name");
    if !name.is_empty() {
        let hit = items.iter().position(|c| c.name() == name);
        keep_only(&mut items, hit);
    }
    let server = query.first("server");
    if !server.is_empty() {
        let hit = items.iter().position(|c| c.server() == server);
        keep_only(&mut items, hit);
    }
    let list = WireClusterList {
        metadata: WireListMeta { resource_version: None },
        items: Some(items).filter(|i| !i.is_empty()),
    };
    let mut resp = json_of(&list);
    renew_if_due(shared, &claims, &mut resp);
    resp
}

fn keep_only<T>(items: &mut Vec<T>, index: Option<usize>) {
    match index {
        Some(i) => {
            items.swap(0, i);
            items.truncate(1);
        }
        None => items.clear(),
    }
}

fn applications(shared: &Shared, req: &Request) -> Response {
    let claims = match authenticate(shared, req.headers()).require() {
        Ok(claims) => claims,
        Err(rejected) => return rejected.response(),
    };
    let query = Query::parse(req.uri().query());
    let (mut apps, resource_version) = {
        let state = shared.lock();
        (state.apps.clone(), state.apps_resource_version.to_string())
    };
    let app_namespace = query.first("appNamespace");
    if !app_namespace.is_empty() {
        apps.retain(|a| a.namespace == app_namespace);
    }
    let name = query.first("name");
    if !name.is_empty() {
        let hit = apps.iter().position(|a| a.name == name);
        keep_only(&mut apps, hit);
    }
    // The legacy `project` parameter wins whenever present.
    let legacy = query.all("project");
    let projects = if legacy.is_empty() { query.all("projects") } else { legacy };
    if !projects.is_empty() {
        apps.retain(|a| projects.contains(&a.effective_project()));
    }
    apps.sort_by(|a, b| a.name.cmp(&b.name));
    let now = now_unix();
    let wire: Vec<_> = apps.iter().map(|a| wire_app(a, now)).collect();
    let mut resp =
        match fields::application_list(shared.version, &resource_version, &wire, query.get("fields")) {
            ListBody::Pieces(pieces) if pieces.len() == 1 => json(StatusCode::OK, pieces.concat()),
            ListBody::Pieces(pieces) => streamed(pieces),
            // grpc-gateway's fallback when even the error cannot be marshalled.
            ListBody::MarshalError => json(
                StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"error": "failed to marshal error message"}"#.to_owned(),
            ),
        };
    renew_if_due(shared, &claims, &mut resp);
    resp
}

const RBAC_ACTIONS: &[&str] =
    &["get", "create", "update", "delete", "sync", "rollback", "override", "action", "invoke"];
const RBAC_RESOURCES: &[&str] = &[
    "clusters",
    "projects",
    "applications",
    "applicationsets",
    "repositories",
    "write-repositories",
    "certificates",
    "accounts",
    "gpgkeys",
    "logs",
    "exec",
    "extensions",
];

/// `/api/v1/account/can-i/{resource}/{action}/{subresource=**}`
fn can_i(shared: &Shared, req: &Request, rest: &str) -> Response {
    let tail = rest.trim_start_matches("/api/v1/account/can-i/");
    let mut parts = tail.splitn(3, '/');
    let (Some(resource), Some(action)) = (parts.next(), parts.next()) else {
        return go_http_error(StatusCode::NOT_FOUND, "Not Found");
    };
    let claims = match authenticate(shared, req.headers()).require() {
        Ok(claims) => claims,
        Err(rejected) => return rejected.response(),
    };
    let (resource, action) = (percent_decode(resource), percent_decode(action));
    if !RBAC_ACTIONS.contains(&action.as_str()) {
        let msg = format!("[{}] does not contain {action}", RBAC_ACTIONS.join(" "));
        return runtime_error(StatusCode::BAD_REQUEST, 3, &msg);
    }
    if !RBAC_RESOURCES.contains(&resource.as_str()) {
        let msg = format!("[{}] does not contain {resource}", RBAC_RESOURCES.join(" "));
        return runtime_error(StatusCode::BAD_REQUEST, 3, &msg);
    }
    let value = if shared.lock().can_i { "yes" } else { "no" };
    let mut resp = json(StatusCode::OK, format!(r#"{{"value":"{value}"}}"#));
    renew_if_due(shared, &claims, &mut resp);
    resp
}

/// The UI handler: `index.html` for browsers (an `Accept` element exactly `text/html`) and for
/// `/`, Go's FileServer 404 otherwise. So a wrong base URL only "succeeds" with HTML for a
/// browser-like Accept header.
fn ui(shared: &Shared, req: &Request, rest: &str) -> Response {
    let accept_html = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t == "text/html" || t == "html"));
    let get = matches!(*req.method(), Method::GET | Method::HEAD);
    if (accept_html && get) || rest == "/" {
        index_page(shared)
    } else if rest == "/index.html" {
        let mut resp = status_only(StatusCode::MOVED_PERMANENTLY);
        insert(&mut resp, header::LOCATION, "./");
        resp
    } else {
        go_http_error(StatusCode::NOT_FOUND, "404 page not found")
    }
}

fn index_page(shared: &Shared) -> Response {
    let html = format!(
        concat!(
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"UTF-8\"><title>Argo CD</title>",
            "<base href=\"{}/\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">",
            "<link rel=\"icon\" type=\"image/png\" href=\"assets/favicon/favicon-32x32.png\" sizes=\"32x32\"/>",
            "</head><body><noscript><p>Your browser does not support JavaScript. Please enable JavaScript ",
            "to view the site. Alternatively, Argo CD can be used with the ",
            "<a href=\"https://argo-cd.readthedocs.io/en/stable/cli_installation/\">Argo CD CLI</a>.</p>",
            "</noscript><div id=\"app\"></div></body>",
            "<script defer=\"defer\" src=\"main.0f6d0d0c4a7e2b1d9c3a.js\"></script></html>"
        ),
        shared.root
    );
    let mut resp = Response::new(Body::from(html));
    for (name, value) in [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CACHE_CONTROL, "no-cache, private, max-age=0"),
        (header::PRAGMA, "no-cache"),
        (header::X_FRAME_OPTIONS, "sameorigin"),
        (header::CONTENT_SECURITY_POLICY, "frame-ancestors 'self';"),
        (header::X_XSS_PROTECTION, "1"),
    ] {
        insert(&mut resp, name, value);
    }
    insert(&mut resp, HeaderName::from_static("x-robots-tag"), "noindex, nofollow");
    resp
}

// ---------------------------------------------------------------------------------------
// Faults

fn fault_response(shared: &Shared, fault: Fault, ep: Endpoint) -> Response {
    match fault {
        Fault::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let (grpc, message) = grpc_for_http(status);
            runtime_error(status, grpc, &message)
        }
        Fault::Unauthenticated => no_session(),
        Fault::TokenExpired => invalid_session(TOKEN_EXPIRED),
        Fault::PermissionDenied => runtime_error(StatusCode::FORBIDDEN, 7, "permission denied"),
        Fault::HtmlOk => index_page(shared),
        Fault::MalformedJson => json(
            StatusCode::OK,
            r#"{"metadata":{"resourceVersion":"918455"},"items":[{"metadata":{"name":"guestbook","namespace":"argo"#
                .to_owned(),
        ),
        Fault::Oversized(min_bytes) => oversized(ep, min_bytes),
        Fault::PlainNotFound => {
            let mut resp = Response::new(Body::from("404 page not found\n"));
            *resp.status_mut() = StatusCode::NOT_FOUND;
            insert(&mut resp, header::CONTENT_TYPE, "text/plain; charset=utf-8");
            insert(&mut resp, HeaderName::from_static("x-content-type-options"), "nosniff");
            resp
        }
        Fault::InvalidJson => json(StatusCode::OK, r#"{"metadata":{},"items":{"not":"a list"}}"#.to_owned()),
        // Handled before routing; listed for completeness.
        Fault::Latency(_)
        | Fault::SlowDrip(_)
        | Fault::Redirect { .. }
        | Fault::Echo
        | Fault::CutOff
        | Fault::GzipBomb(_) => status_only(StatusCode::OK),
    }
}

/// Inverse of grpc-gateway v1.16 `HTTPStatusFromCode`, with a typical message.
pub(crate) fn grpc_for_http(status: StatusCode) -> (i32, String) {
    let (code, message) = match status.as_u16() {
        400 => (3, "invalid argument"),
        401 => (16, "no session information"),
        403 => (7, "permission denied"),
        404 => (5, "not found"),
        408 => (1, "context canceled"),
        409 => (10, "aborted"),
        429 => (8, "resource exhausted"),
        501 => (12, "unimplemented"),
        503 => (
            14,
            "connection error: desc = \"transport: Error while dialing: dial tcp 127.0.0.1:8083: connect: connection refused\"",
        ),
        504 => (4, "context deadline exceeded"),
        _ => (2, ""),
    };
    if message.is_empty() {
        (code, format!("injected fault: HTTP {}", status.as_u16()))
    } else {
        (code, message.to_owned())
    }
}

/// A valid list body of at least `min_bytes`, streamed so the fake never holds it whole.
fn oversized(ep: Endpoint, min_bytes: usize) -> Response {
    // One serialised item with a fixed-width placeholder that each copy renumbers.
    const MARK: &str = "filler-00000000";
    let now = now_unix();
    let template = if ep == Endpoint::Clusters {
        let clusters = [Cluster::new(format!("https://{MARK}.example.com"), MARK)];
        serde_json::to_string(&data::cluster_list(&clusters, &[], false, now))
    } else {
        serde_json::to_string(&[wire_app(&App::to_server(MARK, "https://kubernetes.default.svc"), now)])
    }
    .expect("fake-argocd: wire types always serialise");
    let item = template.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(&template).to_owned();
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    tokio::spawn(async move {
        let head = r#"{"metadata":{},"items":["#;
        let mut sent = head.len();
        if tx.send(Bytes::from_static(head.as_bytes())).await.is_err() {
            return;
        }
        let mut index = 0u64;
        while sent + 2 < min_bytes {
            let mut chunk = String::with_capacity(64 * 1024);
            while chunk.len() < 64 * 1024 && sent + chunk.len() + 2 < min_bytes {
                if index > 0 {
                    chunk.push(',');
                }
                chunk.push_str(&item.replace(MARK, &format!("filler-{index:08}")));
                index += 1;
            }
            sent += chunk.len();
            if tx.send(Bytes::from(chunk)).await.is_err() {
                return;
            }
        }
        let _ = tx.send(Bytes::from_static(b"]}")).await;
    });
    let mut resp = Response::new(Body::new(ChannelBody::new(rx)));
    insert(&mut resp, header::CONTENT_TYPE, "application/json");
    resp
}

/// Same status and headers at once, then the body one byte per `every`.
async fn drip(resp: Response, every: Duration) -> Response {
    let (mut parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.extensions.insert(NoCompress);
    let (tx, rx) = mpsc::channel::<Bytes>(1);
    tokio::spawn(async move {
        for i in 0..bytes.len() {
            tokio::time::sleep(every).await;
            if tx.send(bytes.slice(i..=i)).await.is_err() {
                return;
            }
        }
    });
    Response::from_parts(parts, Body::new(ChannelBody::new(rx)))
}

/// The `CutOff` fault: the normal answer's headers with its full `Content-Length`, then half
/// the body, then the connection closes.
async fn cut_off(resp: Response) -> Response {
    let (mut parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    parts.extensions.insert(NoCompress);
    if let Ok(len) = HeaderValue::from_str(&bytes.len().to_string()) {
        parts.headers.insert(header::CONTENT_LENGTH, len);
    }
    let half = bytes.slice(..bytes.len() / 2);
    let wait = Box::pin(tokio::time::sleep(Duration::from_millis(200)));
    Response::from_parts(parts, Body::new(CutBody { half: Some(half), wait }))
}

/// Half a body, a pause (so it is on the wire), then an error: hyper closes the connection
/// short of its Content-Length.
struct CutBody {
    half: Option<Bytes>,
    wait: Pin<Box<tokio::time::Sleep>>,
}

impl hyper::body::Body for CutBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if let Some(half) = self.half.take() {
            return Poll::Ready(Some(Ok(Frame::data(half))));
        }
        self.wait.as_mut().poll(cx).map(|()| Some(Err(std::io::Error::other("cut off"))))
    }
}

/// The `GzipBomb` fault: gzip of a list that is `{"items":[` and then spaces, at least
/// `bytes` long once inflated, compressed as it is sent (about 1 KB per MB).
fn gzip_bomb(bytes: usize) -> Response {
    use std::io::Write;
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    tokio::task::spawn_blocking(move || {
        struct Sink(mpsc::Sender<Bytes>);
        impl Write for Sink {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.blocking_send(Bytes::copy_from_slice(buf)).map_err(std::io::Error::other)?;
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut gz = flate2::write::GzEncoder::new(Sink(tx), flate2::Compression::best());
        let spaces = vec![b' '; 1 << 20];
        let _ = gz.write_all(br#"{"items":["#);
        let mut written = 0;
        while written < bytes {
            if gz.write_all(&spaces).is_err() {
                return; // the client hung up
            }
            written += spaces.len();
        }
        let _ = gz.write_all(b"]}");
        let _ = gz.finish();
    });
    let mut resp = Response::new(Body::new(ChannelBody::new(rx)));
    insert(&mut resp, header::CONTENT_TYPE, "application/json");
    insert(&mut resp, header::CONTENT_ENCODING, "gzip");
    resp.extensions_mut().insert(NoCompress);
    resp
}

/// A body fed chunk by chunk: chunked transfer, no Content-Length, like a Go handler that
/// writes as it goes.
pub(crate) struct ChannelBody {
    /// A chunk read off the channel already (the stream waits for its first event before it
    /// answers), sent first.
    first: Option<Bytes>,
    rest: mpsc::Receiver<Bytes>,
}

impl ChannelBody {
    pub(crate) fn new(rest: mpsc::Receiver<Bytes>) -> ChannelBody {
        ChannelBody { first: None, rest }
    }

    pub(crate) fn after(first: Bytes, rest: mpsc::Receiver<Bytes>) -> ChannelBody {
        ChannelBody { first: Some(first), rest }
    }
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        self.rest.poll_recv(cx).map(|chunk| chunk.map(|bytes| Ok(Frame::data(bytes))))
    }
}

fn streamed(pieces: Vec<String>) -> Response {
    let (tx, rx) = mpsc::channel::<Bytes>(pieces.len().max(1));
    for piece in pieces {
        // Capacity equals the number of pieces, so this never fails.
        let _ = tx.try_send(Bytes::from(piece));
    }
    let mut resp = Response::new(Body::new(ChannelBody::new(rx)));
    insert(&mut resp, header::CONTENT_TYPE, "application/json");
    grpc_metadata(&mut resp);
    resp
}

// ---------------------------------------------------------------------------------------
// Response helpers

fn insert(resp: &mut Response, name: HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, value);
    }
}

fn status_only(status: StatusCode) -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = status;
    resp
}

/// grpc-gateway forwards the gRPC response headers, so real replies carry this one.
fn grpc_metadata(resp: &mut Response) {
    insert(resp, HeaderName::from_static("grpc-metadata-content-type"), "application/grpc");
}

fn json(status: StatusCode, body: String) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    insert(&mut resp, header::CONTENT_TYPE, "application/json");
    grpc_metadata(&mut resp);
    resp
}

fn json_of<T: Serialize>(value: &T) -> Response {
    let body = serde_json::to_string(value).expect("fake-argocd: wire types always serialise");
    json(StatusCode::OK, body)
}

/// grpc-gateway v1.16 `DefaultHTTPError` body: `error` and `message` identical.
#[derive(Serialize)]
struct RuntimeError<'a> {
    error: &'a str,
    code: i32,
    message: &'a str,
}

fn runtime_error(status: StatusCode, code: i32, message: &str) -> Response {
    let body = RuntimeError { error: message, code, message };
    let mut resp = json_of(&body);
    *resp.status_mut() = status;
    resp
}

/// Go's `http.Error`: text/plain, nosniff, message plus newline.
pub(crate) fn go_http_error(status: StatusCode, message: &str) -> Response {
    let mut resp = Response::new(Body::from(format!("{message}\n")));
    *resp.status_mut() = status;
    insert(&mut resp, header::CONTENT_TYPE, "text/plain; charset=utf-8");
    insert(&mut resp, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    resp
}

// ---------------------------------------------------------------------------------------
// Query strings

/// Decoded `key=value` pairs, like Go's `url.ParseQuery` (which grpc-gateway uses).
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    pub(crate) fn parse(raw: Option<&str>) -> Query {
        let pairs = raw
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect();
        Query(pairs)
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// First value or `""`.
    pub(crate) fn first(&self, key: &str) -> &str {
        self.get(key).unwrap_or_default()
    }

    pub(crate) fn all(&self, key: &str) -> Vec<&str> {
        self.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_and_classes() {
        assert_eq!(normalise_root("argocd/"), "/argocd");
        assert_eq!(normalise_root("/"), "");
        assert_eq!(strip_root("/argocd", "/argocd/api/version").as_deref(), Some("/api/version"));
        assert_eq!(strip_root("/argocd", "/argocdx/api"), None);
        assert_eq!(strip_root("/argocd", "/api/version"), None);
        assert_eq!(classify("/api/v1/account/can-i/clusters/get/x"), Endpoint::CanI);
        assert_eq!(classify("/api/v1/applications/foo"), Endpoint::Other);
    }

    #[test]
    fn query_decoding() {
        let q = Query::parse(Some("fields=items.a%2Citems.b&projects=a&projects=b+c&x"));
        assert_eq!(q.first("fields"), "items.a,items.b");
        assert_eq!(q.all("projects"), vec!["a", "b c"]);
        assert_eq!(q.first("x"), "");
        assert_eq!(q.get("missing"), None);
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn tokens_are_looked_up_in_argo_order() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer a.b.c"));
        h.insert(header::COOKIE, HeaderValue::from_static("x=1; argocd.token=d.e.f"));
        assert_eq!(presented_token(&h).as_deref(), Some("a.b.c"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        assert_eq!(presented_token(&h).as_deref(), Some("d.e.f"));
        h.insert("grpc-metadata-token", HeaderValue::from_static("g.h.i"));
        assert_eq!(presented_token(&h).as_deref(), Some("g.h.i"));
        assert!(presented_token(&HeaderMap::new()).is_none());
    }

    #[test]
    fn grpc_codes_for_statuses() {
        assert_eq!(grpc_for_http(StatusCode::SERVICE_UNAVAILABLE).0, 14);
        assert_eq!(grpc_for_http(StatusCode::BAD_GATEWAY).0, 2);
    }
}
