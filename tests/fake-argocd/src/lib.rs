//! A fake Argo CD API server for argomap's tests. Never shipped.
//!
//! It answers the handful of read-only endpoints argomap polls, with the wire format and quirks
//! of the real server (Go `encoding/json` bodies, grpc-gateway error shapes, `fields=`
//! projection per server version, `--rootpath`, gzip, the synthesised `in-cluster` entry, ...).
//! Every body it can send is checked against Argo CD's own swagger definitions by
//! `tests/contract.rs`.
//!
//! Details checked against the Argo CD source (v3.5.1 and master `37ee009`) that are easy to
//! get wrong in a client:
//! * an empty list has `"items": null` (the list crosses an internal gRPC hop, which turns an
//!   empty slice into nil), projected or not, clusters and applications alike;
//! * a `fields=` projection writes Go typed nils as `null` (e.g. `metadata.labels` of an app
//!   without labels, `spec.source` of a multi-source app), it does not drop them;
//! * an unknown three-part bearer token is `invalid session: token signature is invalid: ...`
//!   (401), a missing or non-JWT one `no session information` (401);
//! * outside `/api/`, only a browser-like `Accept` (an element exactly `text/html`) or `/`
//!   gets the 200 HTML page; other clients get Go's `404 page not found`. Use
//!   [`Fault::HtmlOk`] for "a wrong base URL answers 200 HTML";
//! * v3.5.x fails a projection naming a key and its parent at random; the fake always fails
//!   it (500 `{"error": "failed to marshal error message"}`);
//! * a cluster's `labels` and `annotations` are its Secret's, minus the secret-type label,
//!   `managed-by` and the last-applied annotation; an argocd-agent agent's cluster
//!   ([`Cluster::agent`]) points at the principal's resource proxy with `?agentName=<agent>`,
//!   and its cache entry, written by the principal, holds the connection state only;
//! * an application's `status.health` (message included) is whole in the list's allow-list,
//!   while the stream's generic paths can keep `status.health.status` alone: a new message
//!   then changes no projected byte, and the stream sends nothing.
//!
//! The application stream (`GET /api/v1/stream/applications`) is emulated too: see `stream.rs`
//! for what it sends, and [`StreamFault`] for how it breaks on demand.
//!
//! Not emulated: RBAC filtering, the `selector`/`repo` filters, single-object GETs, watching
//! from a `resourceVersion`, deflate, chunked token cookies.
//!
//! ```no_run
//! # async fn demo() {
//! use fake_argocd::{App, Cluster, FakeArgoCd, Options, jwt};
//! let argocd = FakeArgoCd::start(Options::default()).await;
//! let token = jwt("argomap:apiKey", None);
//! argocd.add_token(&token);
//! argocd.set_clusters(vec![Cluster::new("https://prod.example.com", "prod")]);
//! argocd.set_applications(vec![App::to_name("web", "prod")]);
//! // point the client at argocd.url() with `Authorization: Bearer {token}`
//! # }
//! ```

mod auth;
mod data;
mod fields;
mod server;
mod stream;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use auth::jwt;
pub use data::{
    AGENT_NAME_LABEL, App, CONTROL_PLANE_NAMESPACE, Cluster, IN_CLUSTER_NAME, IN_CLUSTER_SERVER,
    SKIP_RECONCILE_ANNOTATION,
};

pub use server::RECORDED_QUERIES;
use server::Shared;

/// How the fake server is set up. Fixed for the server's lifetime.
#[derive(Clone, Debug)]
pub struct Options {
    /// HTTPS with a fresh self-signed certificate for `127.0.0.1` and `localhost`.
    pub tls: bool,
    /// Reported by `/api/version` (default `v3.6.1`, as a clean tagged build), e.g. `v3.5.1+109ca7c`. Its major.minor also picks the
    /// `fields=` semantics and the list framing of the matching Argo CD release.
    pub version: String,
    /// `""` or a prefix such as `/argocd` that every route is mounted under (`--rootpath`).
    pub root_path: String,
    /// Username/password pairs accepted by `POST /api/v1/session`.
    pub users: Vec<(String, String)>,
    /// Lifetime (`exp - iat`) of the session JWTs issued by `POST /api/v1/session`.
    pub session_ttl: Duration,
    /// Address to listen on; `None` is `127.0.0.1:0` (a free loopback port).
    pub addr: Option<SocketAddr>,
    /// How often an idle event stream sends a keepalive (Argo CD: 15 s).
    pub stream_keepalive: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            tls: false,
            // What a clean tagged build reports: no `+commit` suffix.
            version: "v3.6.1".to_owned(),
            root_path: String::new(),
            users: Vec::new(),
            session_ttl: Duration::from_secs(24 * 60 * 60),
            addr: None,
            stream_keepalive: stream::KEEPALIVE,
        }
    }
}

/// The small fleet most argomap tests start from: `prod-eks` (Successful) and `old` (Unknown)
/// registered, and three applications: one by server, one by name from another namespace, one
/// on the synthesised in-cluster destination.
pub fn sample_clusters() -> Vec<Cluster> {
    vec![
        Cluster::new("https://10.0.0.1:6443", "prod-eks").with_status("Successful"),
        Cluster::new("https://old.example.com", "old").with_status("Unknown"),
    ]
}

/// The applications of [`sample_clusters`]' fleet.
pub fn sample_apps() -> Vec<App> {
    vec![
        App::to_server("api", "https://10.0.0.1:6443"),
        App::to_name("web", "prod-eks").in_namespace("team-a"),
        App::to_server("guestbook", "https://kubernetes.default.svc"),
    ]
}

/// The endpoints whose requests are counted separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `GET /api/version`
    Version,
    /// `/api/v1/session` (login/logout)
    Session,
    /// `GET /api/v1/session/userinfo`
    UserInfo,
    /// `GET /api/v1/clusters`
    Clusters,
    /// `GET /api/v1/applications`
    Applications,
    /// `GET /api/v1/stream/applications`
    ApplicationStream,
    /// `GET /api/v1/account/can-i/{resource}/{action}/{subresource}`
    CanI,
    /// Anything else, including paths outside `/api/` and outside the root path.
    Other,
}

/// A misbehaviour injected into every `/api/v1/*` request until cleared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Wait this long, then answer normally.
    Latency(Duration),
    /// This HTTP status with a grpc-gateway `runtimeError` body (gRPC code per the
    /// grpc-gateway v1.16 mapping, code 2 "Unknown" for statuses it never produces).
    Status(u16),
    /// 401 `no session information`.
    Unauthenticated,
    /// 401 `invalid session: token has invalid claims: token is expired`.
    TokenExpired,
    /// 403 `permission denied`.
    PermissionDenied,
    /// 200 `text/html` UI page: what a wrong base URL (or a proxy login page) returns.
    HtmlOk,
    /// 200 `application/json` whose body is cut off mid-document.
    MalformedJson,
    /// 200 `application/json`, a valid list of at least this many bytes (streamed, chunked).
    Oversized(usize),
    /// 200 with the normal headers at once, then the normal body one byte per interval.
    SlowDrip(Duration),
    /// This redirect status with `Location: <location><the request's path and query>`: a proxy,
    /// a moved server, or Argo CD without `--insecure` answering plain HTTP with 307 to https.
    Redirect { status: u16, location: String },
    /// 401 whose message repeats the request's `Authorization` header and body: a careless or
    /// hostile server reflecting the credentials it was sent.
    Echo,
    /// 404 `text/plain` `404 page not found`: Go's default handler, what a base URL pointing
    /// at another Go service (or a wrong path prefix behind a proxy) answers.
    PlainNotFound,
    /// 200 `application/json` whose complete body is not JSON of the expected shape.
    InvalidJson,
    /// 200 with a `Content-Length`, then the connection closes halfway through the body.
    CutOff,
    /// 200 `Content-Encoding: gzip`: a small body that inflates to at least this many bytes.
    GzipBomb(usize),
}

/// How application streams break (see [`FakeArgoCd::break_streams`] and
/// [`FakeArgoCd::set_stream_fault`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamFault {
    /// Silence, keepalives included, with the connection left open: a hung server, or a
    /// proxy that stopped passing bytes.
    Stall,
    /// Half a line, then the end of the response.
    CutLine,
    /// An error chunk (`runtimeStreamError`) with this HTTP code, then the end. 401 says
    /// `invalid session: token has invalid claims: token is expired`.
    Error(u16),
    /// A 401 error chunk whose message repeats the stream request's `Authorization` header.
    EchoError,
    /// For a new stream, nothing at all, not even the headers (a proxy buffering the whole
    /// response); for an open one, the same as `Stall`.
    Unanswered,
    /// For a new stream, Go's plain-text `404 page not found` instead of the stream (a proxy
    /// that routes only the list, or a path it does not know); for an open one, the end.
    NotRouted,
    /// A hostile server: `lines` `MODIFIED` events of the streamed applications in turn, each
    /// carrying `pad` bytes in an annotation whatever `fields` asked for, then the stream goes
    /// on as before.
    Flood { lines: usize, pad: usize },
}

/// A running fake Argo CD. Dropping it stops the server and closes its connections.
pub struct FakeArgoCd {
    shared: Arc<Shared>,
    url: String,
    ca_pem: Option<String>,
    task: JoinHandle<()>,
}

impl FakeArgoCd {
    /// Binds `opts.addr` (default `127.0.0.1:0`) and starts serving (HTTP/1.1 and HTTP/2) on
    /// the current runtime.
    pub async fn start(opts: Options) -> FakeArgoCd {
        let bind = opts.addr.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let listener =
            TcpListener::bind(bind).await.unwrap_or_else(|e| panic!("fake-argocd: bind {bind}: {e}"));
        let addr = listener.local_addr().expect("fake-argocd: listener address");
        let (acceptor, ca_pem) = if opts.tls {
            let (acceptor, pem) = tls::self_signed_acceptor();
            (Some(acceptor), Some(pem))
        } else {
            (None, None)
        };
        let scheme = if opts.tls { "https" } else { "http" };
        let url = format!("{scheme}://{addr}{}", server::normalise_root(&opts.root_path));
        let shared = Arc::new(Shared::new(opts));
        let task = tokio::spawn(server::serve(listener, acceptor, shared.clone()));
        FakeArgoCd { shared, url, ca_pem, task }
    }

    /// `http(s)://127.0.0.1:PORT` followed by the root path (no trailing slash).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// PEM of the self-signed server certificate when `tls` is on.
    pub fn ca_pem(&self) -> Option<String> {
        self.ca_pem.clone()
    }

    /// Accept `token` as a bearer token (like an apiKey listed in `argocd-cm`).
    pub fn add_token(&self, token: &str) {
        self.shared.lock().tokens.insert(token.to_owned());
    }

    /// Revoke every accepted token, including session tokens issued by login: they are then
    /// refused as Argo CD refuses a deleted token (`account <name> does not have token with id <jti>`).
    pub fn revoke_tokens(&self) {
        let mut state = self.shared.lock();
        let tokens: Vec<String> = state.tokens.drain().collect();
        state.revoked.extend(tokens);
    }

    /// Replace the cluster secrets. Order is kept; the synthesised in-cluster entry goes last.
    pub fn set_clusters(&self, clusters: Vec<Cluster>) {
        self.shared.lock().clusters = clusters;
    }

    /// Changes the cluster whose `server` is `server` (as set, before any trimming) in place;
    /// whether there is one.
    pub fn update_cluster(&self, server: &str, change: impl FnOnce(&mut Cluster)) -> bool {
        let mut state = self.shared.lock();
        match state.clusters.iter_mut().find(|c| c.server == server) {
            Some(cluster) => {
                change(cluster);
                true
            }
            None => false,
        }
    }

    /// Replace the applications (the list endpoint sorts them by name, like Argo CD). Open
    /// application streams get an event for each one added, changed or removed.
    pub fn set_applications(&self, apps: Vec<App>) {
        let mut state = self.shared.lock();
        // Sent under the lock, so a stream opening now sees either the old list and these
        // events, or the new list and none of them.
        for note in stream::diff(&state.apps, &apps) {
            self.shared.notify(note);
        }
        state.apps = apps;
        state.apps_resource_version += 1;
    }

    /// Changes the application `namespace`/`name` in place, as Argo CD's controller updates
    /// one: open streams get a `MODIFIED` event for it (which each stream sends only if the
    /// bytes its projection keeps changed). Whether there is such an application.
    pub fn update_application(&self, namespace: &str, name: &str, change: impl FnOnce(&mut App)) -> bool {
        let mut state = self.shared.lock();
        let mut apps = state.apps.clone();
        let Some(app) = apps.iter_mut().find(|a| a.namespace == namespace && a.name == name) else {
            return false;
        };
        change(app);
        for note in stream::diff(&state.apps, &apps) {
            self.shared.notify(note);
        }
        state.apps = apps;
        state.apps_resource_version += 1;
        true
    }

    /// Sets the sync status, health status and health message of the application
    /// `namespace`/`name` ([`FakeArgoCd::update_application`]). Whether there is one.
    pub fn set_application_status(
        &self,
        namespace: &str,
        name: &str,
        sync: &str,
        health: &str,
        health_message: &str,
    ) -> bool {
        self.update_application(namespace, name, |app| {
            *app = app.clone().with_status(sync, health).with_health_message(health_message);
        })
    }

    /// Replace the applications without an event to the open streams: what a watcher sees when
    /// Argo CD drops its events (its per-watcher buffer was full). Only a list shows the change.
    pub fn set_applications_dropping_events(&self, apps: Vec<App>) {
        let mut state = self.shared.lock();
        state.apps = apps;
        state.apps_resource_version += 1;
    }

    /// Every application stream open now breaks this way at once.
    pub fn break_streams(&self, fault: StreamFault) {
        self.shared.notify(stream::Note::Break(fault));
    }

    /// Every new application stream breaks this way once its `ADDED` events are out (or, for
    /// [`StreamFault::Unanswered`] and [`StreamFault::NotRouted`], instead of answering);
    /// `None` to stop.
    pub fn set_stream_fault(&self, fault: Option<StreamFault>) {
        self.shared.lock().stream_fault = fault;
    }

    /// Application streams open now (each ends soon after its client goes).
    pub fn open_streams(&self) -> usize {
        self.shared.open_streams()
    }

    /// Response bytes `ep` sent, as on the wire (gzipped where it was).
    pub fn bytes_sent(&self, ep: Endpoint) -> u64 {
        self.shared.lock().stats.get(&ep).map_or(0, |s| s.bytes)
    }

    /// Inject (or with `None` clear) a fault for every `/api/v1/*` request.
    pub fn set_fault(&self, fault: Option<Fault>) {
        let mut state = self.shared.lock();
        state.fault = fault;
        state.fault_on = None;
    }

    /// Inject a fault for the requests of these endpoints only (logins and the rest answer
    /// normally).
    pub fn set_fault_on(&self, fault: Fault, endpoints: &[Endpoint]) {
        let mut state = self.shared.lock();
        state.fault = Some(fault);
        state.fault_on = Some(endpoints.to_vec());
    }

    /// Answer of `/api/v1/account/can-i/...` (`yes`/`no`).
    pub fn set_can_i(&self, allowed: bool) {
        self.shared.lock().can_i = allowed;
    }

    /// `cluster.inClusterEnabled` of `argocd-cm` (default true). When true and no cluster has
    /// server `https://kubernetes.default.svc`, the list appends a synthesised `in-cluster`
    /// entry; when false, that entry and any cluster with that server are hidden.
    pub fn set_in_cluster_enabled(&self, enabled: bool) {
        self.shared.lock().in_cluster_enabled = enabled;
    }

    /// How many requests were routed to `ep`, whatever their outcome.
    pub fn requests(&self, ep: Endpoint) -> u64 {
        self.shared.lock().stats.get(&ep).map_or(0, |s| s.count)
    }

    /// Raw (still percent-encoded) query string of the last request to `ep`; `None` if there
    /// was no such request or it had no `?`.
    pub fn last_query(&self, ep: Endpoint) -> Option<String> {
        self.shared.lock().stats.get(&ep).and_then(|s| s.last_query.clone())
    }

    /// Raw (still percent-encoded) query strings of the last [`RECORDED_QUERIES`] requests to
    /// `ep`, oldest first; `""` for a request without one.
    pub fn queries(&self, ep: Endpoint) -> Vec<String> {
        self.shared.lock().stats.get(&ep).map(|s| s.queries.iter().cloned().collect()).unwrap_or_default()
    }

    /// A request header (case-insensitive name) of the last request to `ep`.
    pub fn last_header(&self, ep: Endpoint, name: &str) -> Option<String> {
        let state = self.shared.lock();
        let headers = &state.stats.get(&ep)?.last_headers;
        headers.get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }
}

impl Drop for FakeArgoCd {
    fn drop(&mut self) {
        self.task.abort();
    }
}
