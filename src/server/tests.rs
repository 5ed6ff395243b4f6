//! The server's tests: routes driven through the router with a fake reviewer, and the real
//! accept loop on a loopback port.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;

use axum::body::Body;
use axum::http::Request;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector;
use kube::runtime::reflector::Store;
use kube::runtime::watcher::Event;
use pretty_assertions::assert_eq;
use rustls::pki_types::pem::PemObject;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

use super::auth::{Question, bearer_token, token_key};
use super::*;
use crate::crd::{
    ArgoCdInstanceSpec, ArgoCdInstanceStatus, CloudProvider, ConnectionState, ConnectionStatus, KnownCluster,
    KubernetesType, Reason, UnlinkedCluster,
};
use crate::fixtures::contract::assert_valid;
use crate::model::qovery::SecretUids;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};

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
    /// Access reviews running now, and the most that ever ran at once.
    access_in_flight: AtomicUsize,
    access_max_in_flight: AtomicUsize,
    /// The audiences of each token review.
    audiences_asked: Mutex<Vec<Vec<String>>>,
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
        audiences: &'a [String],
    ) -> BoxFuture<'a, Result<Option<User>, ReviewError>> {
        Box::pin(async move {
            self.authentications.fetch_add(1, Ordering::SeqCst);
            self.audiences_asked.lock().expect("lock").push(audiences.to_vec());
            tokio::time::sleep(self.delay).await;
            if self.fail.load(Ordering::SeqCst) {
                return Err(ReviewError::TokenReview(Self::error()));
            }
            Ok(self.users.get(token.expose_secret()).cloned())
        })
    }

    fn can<'a>(&'a self, user: &'a User, question: &'a Question) -> BoxFuture<'a, Result<bool, ReviewError>> {
        Box::pin(async move {
            let grants = self.grants.get(&user.username).cloned().unwrap_or_default();
            let namespace = match question {
                Question::GetPath(path) => return Ok(grants.iter().any(|g| g == path)),
                Question::ListInstances(namespace) => namespace.as_deref(),
            };
            self.access_reviews.lock().expect("lock").push(namespace.map(str::to_owned));
            let now = self.access_in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.access_max_in_flight.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            self.access_in_flight.fetch_sub(1, Ordering::SeqCst);
            if self.fail.load(Ordering::SeqCst) {
                return Err(ReviewError::AccessReview(Self::error()));
            }
            Ok(grants.iter().any(|g| g == "*" || Some(g.as_str()) == namespace))
        })
    }
}

fn instance(ns: &str, name: &str, org: &str) -> ArgoCdInstance {
    let mut i = ArgoCdInstance::new(
        name,
        ArgoCdInstanceSpec {
            organization_id: Some(org.into()),
            ..ArgoCdInstanceSpec::new(
                format!("https://{name}.{ns}.example.com"),
                format!("{name}-creds"),
                KnownCluster {
                    id: AGENT.into(),
                    name: format!("{ns}/{name}"),
                    cloud_provider: CloudProvider::Gcp,
                    kind: KubernetesType::Managed,
                },
            )
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
            details: Default::default(),
        }],
        ..Default::default()
    });
    i
}

/// The read API's router (`router`) and the admin server's (`admin`) over one state.
struct Harness {
    router: Router,
    admin: Router,
    reviewer: Arc<FakeReviewer>,
    readiness: Readiness,
}

fn harness_with(
    config: HttpConfig,
    reviewer: FakeReviewer,
    secrets: &SecretUids,
    instances: Vec<ArgoCdInstance>,
) -> Harness {
    let reviewer = Arc::new(reviewer);
    let (state, readiness) = app_state(config, reviewer.clone(), secrets, instances);
    Harness {
        router: router(Role::ReadApi, state.clone()),
        admin: router(Role::Admin, state),
        reviewer,
        readiness,
    }
}

/// The servers' state over `instances` (synced, ready) and the bound namespaces.
fn app_state(
    config: HttpConfig,
    reviewer: Arc<FakeReviewer>,
    secrets: &SecretUids,
    instances: Vec<ArgoCdInstance>,
) -> (AppState, Readiness) {
    let (store, mut writer) = reflector::store();
    writer.apply_watcher_event(&Event::Init);
    for i in instances {
        writer.apply_watcher_event(&Event::InitApply(i));
    }
    writer.apply_watcher_event(&Event::InitDone);
    let readiness = Readiness::default();
    readiness.set(true);
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let secrets = secret_store(secrets);
    let state =
        AppState::new(config, metrics, readiness.clone(), store, bound_namespaces(), secrets, reviewer);
    (state, readiness)
}

/// A synced store of Secret metadata holding `uids`, as the controller's Secret watch fills it.
fn secret_store(uids: &SecretUids) -> Store<PartialObjectMeta<k8s_openapi::api::core::v1::Secret>> {
    let (store, mut writer) = reflector::store();
    writer.apply_watcher_event(&Event::Init);
    for ((namespace, name), uid) in uids {
        let secret: PartialObjectMeta<k8s_openapi::api::core::v1::Secret> = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"namespace": namespace, "name": name, "uid": uid}
        }))
        .expect("secret");
        writer.apply_watcher_event(&Event::InitApply(secret));
    }
    writer.apply_watcher_event(&Event::InitDone);
    store
}

/// Namespaces a, b, d and ns00..ns39 bound to ORG, c to OTHER_ORG; e carries no label.
fn bound_namespaces() -> Store<PartialObjectMeta<k8s_openapi::api::core::v1::Namespace>> {
    let (store, mut writer) = reflector::store();
    writer.apply_watcher_event(&Event::Init);
    let mut bound: Vec<(String, &str)> = ["a", "b", "d"].iter().map(|n| (n.to_string(), ORG)).collect();
    bound.extend((0..40).map(|n| (format!("ns{n:02}"), ORG)));
    bound.push(("c".into(), OTHER_ORG));
    for (name, org) in bound {
        let ns: PartialObjectMeta<k8s_openapi::api::core::v1::Namespace> = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {crate::model::organization::ORGANIZATION_LABEL: org}}
        }))
        .expect("namespace");
        writer.apply_watcher_event(&Event::InitApply(ns));
    }
    writer.apply_watcher_event(&Event::InitDone);
    store
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
    harness_with(config, reviewer, &secrets, instances)
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
    send_from(router, method, uri, auth, ([192, 0, 2, 1], 40000).into()).await
}

/// A request as if from the client at `from` (what `serve` puts on every request).
async fn send_from(router: &Router, method: &str, uri: &str, auth: Option<&str>, from: SocketAddr) -> Reply {
    let mut req = Request::builder().method(method).uri(uri).extension(ClientAddr(from));
    if let Some(a) = auth {
        req = req.header(header::AUTHORIZATION, a);
    }
    let res = router.clone().oneshot(req.body(Body::empty()).expect("request")).await.expect("infallible");
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20).await.expect("body");
    Reply { status, headers, text: String::from_utf8(bytes.to_vec()).expect("utf-8") }
}

async fn get(h: &Harness, uri: &str, token: Option<&str>) -> Reply {
    send(&h.router, "GET", uri, token.map(|t| format!("Bearer {t}")).as_deref()).await
}

/// A GET of the admin server.
async fn admin(h: &Harness, uri: &str) -> Reply {
    send(&h.admin, "GET", uri, None).await
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let h = harness(HttpConfig::default(), reviewer());
    let r = admin(&h, "/healthz").await;
    assert_eq!((r.status, r.json()), (StatusCode::OK, json!({"status": "ok"})));
    assert_eq!(admin(&h, "/readyz").await.status, StatusCode::OK);
    h.readiness.set(false);
    admin(&h, "/readyz").await.error(StatusCode::SERVICE_UNAVAILABLE, "NotReady");
    assert_eq!(admin(&h, "/healthz").await.status, StatusCode::OK);

    let r = admin(&h, "/metrics").await;
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
    for org in
        ["not-a-uuid", "5e1c2b7a00004000800000000000000001", "5e1c2b7a-0000-4000-8000-00000000000g", "%20"]
    {
        get(&h, &path(org), Some("token-all")).await.error(StatusCode::BAD_REQUEST, "BadRequest");
    }
    // Percent-encoding that is not UTF-8 is rejected by the extractor, still as JSON.
    get(&h, &path("%FF"), Some("token-all")).await.error(StatusCode::BAD_REQUEST, "BadRequest");
}

#[tokio::test]
async fn an_unknown_organization_is_an_empty_200_for_a_caller_who_sees_everything() {
    let h = harness(HttpConfig::default(), reviewer());
    let r = get(&h, &path("00000000-0000-4000-8000-000000000000"), Some("token-all")).await;
    assert_eq!(r.names(), Vec::<String>::new());
    assert_eq!(r.json(), json!({"results": []}));
}

#[tokio::test]
async fn a_caller_without_access_cannot_tell_an_organization_that_exists_from_one_that_does_not() {
    let h = harness(HttpConfig::default(), reviewer());
    let unknown = path("00000000-0000-4000-8000-000000000000");
    for token in ["token-none", "token-a"] {
        // OTHER_ORG exists (namespace c), token-a may list only a, token-none nothing.
        let exists = get(&h, &path(OTHER_ORG), Some(token)).await;
        let missing = get(&h, &unknown, Some(token)).await;
        exists.error(StatusCode::FORBIDDEN, "Forbidden");
        assert_eq!((missing.status, missing.text.clone()), (exists.status, exists.text.clone()), "{token}");
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
    get(&h, &format!("{}/extra", path(ORG)), Some("token-a")).await.error(StatusCode::NOT_FOUND, "NotFound");
    send(&h.router, "POST", &path(ORG), Some("Bearer token-a"))
        .await
        .error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed");
    send(&h.admin, "DELETE", "/healthz", None)
        .await
        .error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed");
}

#[tokio::test]
async fn each_server_answers_only_its_own_paths() {
    let h = harness(HttpConfig::default(), reviewer());
    for probe in ["/metrics", "/healthz", "/readyz"] {
        get(&h, probe, None).await.error(StatusCode::NOT_FOUND, "NotFound");
    }
    send(&h.admin, "GET", &path(ORG), Some("Bearer token-all"))
        .await
        .error(StatusCode::NOT_FOUND, "NotFound");
}

#[tokio::test]
async fn new_tokens_are_rate_limited_per_client_address() {
    let config = HttpConfig { reviews_per_client: 2, ..Default::default() };
    let h = harness(config, reviewer());
    let attacker: SocketAddr = ([198, 51, 100, 7], 5000).into();
    let started = std::time::Instant::now();
    let mut statuses = Vec::new();
    for n in 0..30 {
        let auth = format!("Bearer random-{n}");
        let r = send_from(&h.router, "GET", &path(ORG), Some(&auth), attacker).await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(r.headers[header::RETRY_AFTER], "1");
            r.error(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests");
        }
        statuses.push(r.status.as_u16());
    }
    // A burst of twice the rate, then the rate (5 when the loop is quick): bounded by the time
    // the loop took, however slow the machine; every other request was answered 429.
    let reviewed = h.reviewer.authentications.load(Ordering::SeqCst);
    let budget = 4 + (2.0 * started.elapsed().as_secs_f64()).ceil() as usize;
    assert!(reviewed <= budget, "{reviewed} reviews > {budget}: {statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 30 - reviewed, "{statuses:?}");
    // Another client is not affected, and a token reviewed recently costs nothing.
    let other: SocketAddr = ([203, 0, 113, 9], 5000).into();
    let r = send_from(&h.router, "GET", &path(ORG), Some("Bearer token-a"), other).await;
    assert_eq!(r.names(), ["a/one", "a/two"]);
    for _ in 0..20 {
        let r = send_from(&h.router, "GET", &path(ORG), Some("Bearer token-a"), other).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    // An IPv6 client is one client for its whole /64.
    let started = std::time::Instant::now();
    let mut throttled = 0;
    for n in 0..10u16 {
        let from: SocketAddr = (std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, n), 5000).into();
        let auth = format!("Bearer v6-{n}");
        if send_from(&h.router, "GET", &path(ORG), Some(&auth), from).await.status
            == StatusCode::TOO_MANY_REQUESTS
        {
            throttled += 1;
        }
    }
    let budget = 4 + (2.0 * started.elapsed().as_secs_f64()).ceil() as usize;
    assert!(10 - throttled <= budget, "{throttled} of 10 throttled, budget {budget}");
}

#[tokio::test]
async fn behind_one_address_a_client_sending_made_up_tokens_does_not_lock_out_known_ones() {
    // As behind a NAT: a valid client and an attacker share one address.
    let config =
        HttpConfig { reviews_per_client: 1, review_ttl: Duration::from_millis(50), ..Default::default() };
    let h = harness(config, reviewer());
    let nat: SocketAddr = ([198, 51, 100, 7], 5000).into();
    let valid = send_from(&h.router, "GET", &path(ORG), Some("Bearer token-a"), nat).await;
    assert_eq!(valid.names(), ["a/one", "a/two"]);
    let reviewed = h.reviewer.authentications.load(Ordering::SeqCst);
    let router = &h.router;
    let spray = |round: usize| async move {
        let mut limited = 0;
        for n in 0..10 {
            let auth = format!("Bearer made-up-{round}-{n}");
            if send_from(router, "GET", &path(ORG), Some(&auth), nat).await.status
                == StatusCode::TOO_MANY_REQUESTS
            {
                limited += 1;
            }
        }
        limited
    };
    // The valid token is reviewed again once its answer expires, with the address's quota
    // spent by the attacker every time, and is never refused.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut round = 0;
    while h.reviewer.authentications.load(Ordering::SeqCst) < reviewed + 3 {
        assert!(std::time::Instant::now() < deadline, "the valid token was not reviewed again");
        assert!(spray(round).await > 0, "the address's quota is spent");
        let r = send_from(&h.router, "GET", &path(ORG), Some("Bearer token-a"), nat).await;
        assert_eq!(r.names(), ["a/one", "a/two"], "round {round}");
        round += 1;
    }
}

#[tokio::test]
async fn access_reviews_of_one_request_are_bounded_and_share_the_review_slots() {
    // 40 namespaces of one organization, a caller allowed in some of them only.
    let secrets: SecretUids = (0..40)
        .map(|n| {
            (
                (format!("ns{n:02}"), "i-creds".to_string()),
                format!("9a3d8c55-3333-4333-8333-3333333333{n:02}"),
            )
        })
        .collect();
    let instances: Vec<ArgoCdInstance> = (0..40).map(|n| instance(&format!("ns{n:02}"), "i", ORG)).collect();
    let reviewer = FakeReviewer { delay: Duration::from_millis(20), ..FakeReviewer::default() }
        .with("token-some", "some", &["ns00", "ns01"])
        .with("token-all", "root", &["*"]);
    let config = HttpConfig { max_concurrent_reviews: 2, ..Default::default() };
    let h = harness_with(config, reviewer, &secrets, instances.clone());
    // Past the bound, only the cluster-wide question is asked, and the caller is refused as
    // anyone without access is.
    get(&h, &path(ORG), Some("token-some")).await.error(StatusCode::FORBIDDEN, "Forbidden");
    assert_eq!(h.reviewer.reviews(), [None]);
    // A cluster-wide grant needs one question.
    assert_eq!(get(&h, &path(ORG), Some("token-all")).await.names().len(), 40);
    // Under the bound, one question per namespace, never more at once than the review slots.
    let few: Vec<ArgoCdInstance> = instances.into_iter().take(20).collect();
    let reviewer = FakeReviewer { delay: Duration::from_millis(20), ..FakeReviewer::default() }.with(
        "token-some",
        "some",
        &["ns00", "ns01"],
    );
    let config = HttpConfig { max_concurrent_reviews: 2, ..Default::default() };
    let h = harness_with(config, reviewer, &secrets, few);
    assert_eq!(get(&h, &path(ORG), Some("token-some")).await.names().len(), 2);
    assert_eq!(h.reviewer.reviews().len(), 21);
    assert!(h.reviewer.access_max_in_flight.load(Ordering::SeqCst) <= 2);
}

#[tokio::test]
async fn reviews_in_flight_are_bounded() {
    let config = HttpConfig { max_concurrent_reviews: 1, reviews_per_client: 100, ..Default::default() };
    let h = harness(config, FakeReviewer { delay: Duration::from_secs(3), ..reviewer() });
    let url = path(ORG);
    let first = get(&h, &url, Some("slow-1"));
    let second = async {
        // Once the first review is in flight (it takes 3 s), the one slot is taken.
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while h.reviewer.authentications.load(Ordering::SeqCst) == 0 {
            assert!(std::time::Instant::now() < deadline, "the first review never started");
            tokio::task::yield_now().await;
        }
        get(&h, &url, Some("slow-2")).await
    };
    let (first, second) = tokio::join!(first, second);
    first.error(StatusCode::UNAUTHORIZED, "Unauthorized");
    second.error(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests");
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
        (ApiError::MetricsForbidden, 403, "Forbidden"),
        (ApiError::NotFound, 404, "NotFound"),
        (ApiError::MethodNotAllowed, 405, "MethodNotAllowed"),
        (ApiError::NotReady, 503, "NotReady"),
        (ApiError::Review(review()), 503, "ReviewFailed"),
        (ApiError::Timeout(Duration::from_secs(1)), 503, "Timeout"),
        (ApiError::TooLarge(1), 413, "ResponseTooLarge"),
        (ApiError::Metrics(prometheus::Error::Msg(String::new())), 500, "Internal"),
    ];
    for (err, status, category) in cases {
        assert_eq!((err.status().as_u16(), err.category()), (status, category), "{err}");
    }
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
        bound_namespaces(),
        secret_store(&SecretUids::new()),
        Arc::new(reviewer()),
    );
    let listener = bind(([127, 0, 0, 1], 0).into()).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(Role::Admin, listener, state, async {
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

/// A server of `role` on a loopback port of its own, stopped when the sender is dropped.
async fn running(role: Role, config: HttpConfig) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let (state, _) = app_state(config, Arc::new(reviewer()), &SecretUids::new(), Vec::new());
    let listener = bind(([0, 0, 0, 0], 0).into()).await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(role, listener, state, async {
        let _ = stopped.await;
    }));
    (([127, 0, 0, 1], port).into(), stop)
}

/// A connection to `to` from the loopback address `127.0.0.<from>` (each its own client).
async fn connect_from(from: u8, to: SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind(([127, 0, 0, from], 0).into()).expect("bind a loopback source");
    socket.connect(to).await.expect("connect")
}

/// `GET path` on a fresh connection; the status line, or `None` if not answered within `within`.
async fn timed_get(to: SocketAddr, path: &str, within: Duration) -> Option<String> {
    tokio::time::timeout(within, async {
        let reply =
            raw_request(to, &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")).await;
        reply.lines().next().unwrap_or_default().to_string()
    })
    .await
    .ok()
}

#[tokio::test]
async fn a_request_head_over_the_limit_is_431_and_the_connection_closed() {
    let (addr, _stop) = running(Role::ReadApi, HttpConfig::default()).await;
    let mut s = connect_from(1, addr).await;
    let head = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n", "a".repeat(64 * 1024));
    // The server may close before all of it is sent: what matters is its answer.
    let _ = s.write_all(head.as_bytes()).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await.expect("closed");
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 431"), "{out}");
    // A head under the limit (a bearer token of a few KiB) is read.
    let token = "t".repeat(8 * 1024);
    let reply = raw_request(
        addr,
        &format!(
            "GET {} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n",
            path(ORG)
        ),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 401"), "{reply}");
}

/// Polls `GET path` until it is answered (within `settle`: the attack's connections must first
/// stall), then asks it `times` more, each on a new connection that must be answered within 1 s.
async fn answered_within_a_second(to: SocketAddr, path: &str, settle: Duration, times: usize) -> Vec<String> {
    let started = std::time::Instant::now();
    while timed_get(to, path, Duration::from_secs(1)).await.is_none() {
        assert!(started.elapsed() < settle, "{path} not answered within {settle:?} of the attack");
    }
    let mut answers = Vec::new();
    for n in 0..times {
        let answer = timed_get(to, path, Duration::from_secs(1)).await;
        answers.push(answer.unwrap_or_else(|| panic!("{path}: request {n} not answered within 1 s")));
    }
    answers
}

/// Opens `count` connections from `sources` loopback addresses (in turn) that pipeline
/// `burst` (`rounds` times, or until the server stops reading) and never read a byte of the
/// answers.
async fn non_readers(
    to: SocketAddr,
    sources: std::ops::Range<u8>,
    count: usize,
    burst: &str,
    rounds: usize,
) -> Vec<tokio::task::JoinHandle<()>> {
    let sources: Vec<u8> = sources.collect();
    let mut held = Vec::new();
    for n in 0..count {
        let mut s = connect_from(sources[n % sources.len()], to).await;
        let burst = burst.to_owned();
        held.push(tokio::spawn(async move {
            for _ in 0..rounds {
                if s.write_all(burst.as_bytes()).await.is_err() {
                    break;
                }
            }
            std::future::pending::<()>().await;
        }));
    }
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_never_read_cannot_starve_the_probes() {
    let (addr, _stop) = running(Role::Admin, HttpConfig::default()).await;
    // 64 clients, each from an address of its own, as many as the admin budget holds.
    let attack =
        non_readers(addr, 10..74, 64, &"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(200), usize::MAX)
            .await;
    let probes = answered_within_a_second(addr, "/healthz", Duration::from_secs(20), 4).await;
    assert!(probes.iter().all(|p| p == "HTTP/1.1 200 OK"), "{probes:?}");
    // From one address, a client gets its share (8) and no more.
    let one =
        non_readers(addr, 200..201, 32, &"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(200), usize::MAX)
            .await;
    let probes = answered_within_a_second(addr, "/healthz", Duration::from_secs(20), 4).await;
    assert!(probes.iter().all(|p| p == "HTTP/1.1 200 OK"), "{probes:?}");
    for task in attack.into_iter().chain(one) {
        task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eleven_hundred_read_api_clients_that_never_read_leave_the_probes_answering() {
    let (api, _stop_api) = running(Role::ReadApi, HttpConfig::default()).await;
    let (admin, _stop_admin) = running(Role::Admin, HttpConfig::default()).await;
    // 1 100 connections over 20 addresses (55 each, under the per-client share of 64): more
    // than the read API's budget of 1 024.
    let request = format!("GET {} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer token-a\r\n\r\n", path(ORG));
    let attack = non_readers(api, 10..30, 1100, &request, 1).await;
    for n in 0..4 {
        let answer = timed_get(admin, "/healthz", Duration::from_secs(1)).await;
        assert_eq!(answer.as_deref(), Some("HTTP/1.1 200 OK"), "probe {n} within 1 s");
    }
    for task in attack {
        task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_read_api_budget_of_clients_that_never_read_gives_way_to_new_clients() {
    let config = HttpConfig { max_connections: 48, ..Default::default() };
    let (api, _stop) = running(Role::ReadApi, config).await;
    let request = format!("GET {} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer token-a\r\n\r\n", path(ORG));
    let attack = non_readers(api, 10..74, 64, &request.repeat(200), usize::MAX).await;
    let answers = answered_within_a_second(api, &path(ORG), Duration::from_secs(30), 4).await;
    assert!(answers.iter().all(|a| a == "HTTP/1.1 401 Unauthorized"), "{answers:?}");
    for task in attack {
        task.abort();
    }
}

#[tokio::test]
async fn an_answer_over_the_byte_limit_is_413() {
    let config = HttpConfig { max_response_bytes: 600, ..Default::default() };
    let h = harness(config, reviewer());
    get(&h, &path(ORG), Some("token-all")).await.error(StatusCode::PAYLOAD_TOO_LARGE, "ResponseTooLarge");
    // One instance's answer fits.
    let config = HttpConfig { max_response_bytes: 4096, ..Default::default() };
    let h = harness(config, reviewer());
    assert_eq!(get(&h, &path(OTHER_ORG), Some("token-all")).await.names(), ["c/four"]);
}

#[tokio::test]
async fn answers_not_yet_written_hold_the_in_flight_budget() {
    // Room for one answer of ~1 KiB: a second waits for it, and ends at the request deadline.
    let config = HttpConfig {
        max_inflight_response_bytes: 2048,
        request_timeout: Duration::from_millis(300),
        ..Default::default()
    };
    let h = harness(config, reviewer());
    let req = || {
        Request::builder()
            .uri(path(ORG))
            .header(header::AUTHORIZATION, "Bearer token-all")
            .extension(ClientAddr(([192, 0, 2, 1], 1).into()))
            .body(Body::empty())
            .expect("request")
    };
    let held = h.router.clone().oneshot(req()).await.expect("infallible");
    assert_eq!(held.status(), StatusCode::OK);
    // Its body is not read yet: the budget is taken.
    let second = h.router.clone().oneshot(req()).await.expect("infallible");
    assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
    drop(held);
    let third = h.router.clone().oneshot(req()).await.expect("infallible");
    assert_eq!(third.status(), StatusCode::OK, "the budget is back once the first answer is gone");
}

#[tokio::test]
async fn metrics_scrapers_need_a_token_allowed_to_get_metrics_when_auth_is_on() {
    let reviewer = reviewer().with("token-scraper", "prometheus", &["/metrics"]);
    let config = HttpConfig { metrics_auth: true, ..Default::default() };
    let h = harness(config, reviewer);
    let scrape = |auth: Option<&'static str>| send(&h.admin, "GET", "/metrics", auth);
    scrape(None).await.error(StatusCode::UNAUTHORIZED, "Unauthorized");
    scrape(Some("Bearer nope")).await.error(StatusCode::UNAUTHORIZED, "Unauthorized");
    // A valid token of someone who may read every organization, but not /metrics.
    scrape(Some("Bearer token-all")).await.error(StatusCode::FORBIDDEN, "Forbidden");
    let ok = scrape(Some("Bearer token-scraper")).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert!(ok.text.contains("argomap_build_info"));
    // The probes never need a token (the kubelet sends none).
    assert_eq!(admin(&h, "/healthz").await.status, StatusCode::OK);
    assert_eq!(admin(&h, "/readyz").await.status, StatusCode::OK);
    // Scrape tokens are reviewed for the API server's audience, read-API tokens for argomap's.
    get(&h, &path(ORG), Some("token-a")).await.names();
    let asked = h.reviewer.audiences_asked.lock().expect("lock").clone();
    assert!(asked.contains(&vec![]), "{asked:?}");
    assert!(asked.contains(&vec![DEFAULT_AUDIENCE.to_string()]), "{asked:?}");
    // A token valid for /metrics is not thereby valid for the read API: separate caches.
    assert_eq!(asked.iter().filter(|a| a.is_empty()).count(), 3, "{asked:?}");
}

#[tokio::test]
async fn without_metrics_auth_metrics_are_open_as_before() {
    let h = harness(HttpConfig::default(), reviewer());
    let r = admin(&h, "/metrics").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(h.reviewer.authentications.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn the_read_api_speaks_tls_when_given_a_certificate() {
    let dir = tempfile::tempdir().expect("dir");
    let pair = super::tls::tests::self_signed();
    let files = super::tls::tests::write(dir.path(), &pair);
    let config =
        HttpConfig { read_api_tls: Some(tls_server_config(files).expect("tls")), ..Default::default() };
    let (addr, _stop) = running(Role::ReadApi, config.clone()).await;

    let mut roots = rustls::RootCertStore::empty();
    let cert = rustls::pki_types::CertificateDer::from_pem_slice(pair.0.as_bytes()).expect("pem");
    roots.add(cert).expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut tls = connector.connect(name, tcp).await.expect("handshake");
    let request = format!("GET {} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", path(ORG));
    tls.write_all(request.as_bytes()).await.expect("write");
    let mut reply = Vec::new();
    let _ = tls.read_to_end(&mut reply).await;
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 401"), "{reply}");

    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = timed_get(addr, &path(ORG), Duration::from_secs(5)).await;
    assert!(plain.as_deref().is_none_or(|l| !l.starts_with("HTTP/1.1")), "{plain:?}");
    // The admin server stays plain HTTP (the kubelet's probes, Prometheus).
    let (admin, _stop_admin) = running(Role::Admin, config).await;
    let answer = timed_get(admin, "/healthz", Duration::from_secs(5)).await;
    assert_eq!(answer.as_deref(), Some("HTTP/1.1 200 OK"));
}

#[tokio::test]
async fn an_instance_counts_for_its_organization_only_when_its_namespace_is_bound_to_it() {
    let instances = vec![
        instance("a", "one", ORG),
        // Claims ORG from a namespace bound to another organization, and from an unbound one.
        instance("c", "intruder", ORG),
        instance("e", "unbound", ORG),
    ];
    let secrets: SecretUids = [("a", "one"), ("c", "intruder"), ("e", "unbound")]
        .into_iter()
        .enumerate()
        .map(|(n, (ns, name))| {
            ((ns.to_string(), format!("{name}-creds")), format!("9a3d8c55-3333-4333-8333-3333333333{n:02}"))
        })
        .collect();
    let h = harness_with(HttpConfig::default(), reviewer(), &secrets, instances.clone());
    assert_eq!(get(&h, &path(ORG), Some("token-all")).await.names(), ["a/one"]);
    // Trusting spec.organizationId as written (--organization-binding=none): all three.
    let config =
        HttpConfig { organization_binding: crate::model::organization::Binding::None, ..Default::default() };
    let h = harness_with(config, reviewer(), &secrets, instances);
    let mut names = get(&h, &path(ORG), Some("token-all")).await.names();
    names.sort();
    assert_eq!(names, ["a/one", "c/intruder", "e/unbound"]);
}

mod fleet;
