//! The instance and mapping reconcilers against a mocked Kubernetes API (tower-test, as
//! kube-rs/controller-rs does) and the fake Argo CD: the exact requests sent, the status
//! patches, and that unchanged data writes nothing and polls nothing.

use std::sync::Arc;
use std::time::Duration;

use argomap::controller::{self, Context, Settings, Stores};
use argomap::crd::{
    ArgoCdInstance, ArgoCdInstanceStatus, ClusterMapping, ClusterMappingStatus, REFRESH_ANNOTATION,
};
use argomap::metrics::Metrics;
use argomap_test_support::{fake, fixtures};
use fake_argocd::Endpoint;
use http::{Request, Response, StatusCode};
use k8s_openapi::api::core::v1::Secret;
use kube::client::Body;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher::Event;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tower_test::mock::{self, Handle};

type ApiHandle = Handle<Request<Body>, Response<Body>>;

const NS: &str = "platform";

/// `platform/prod` at `url`, token Secret `argocd-readonly`, checking every 60 s.
fn instance(url: &str) -> ArgoCdInstance {
    let mut i = fixtures::instance(NS, "prod");
    i.metadata.uid = Some("i-1".into());
    i.spec.url = url.into();
    i.spec.credentials.secret_ref.name = "argocd-readonly".into();
    i.spec.timeout = "5s".into();
    i.spec.agent_cluster.name = "Production EU".into();
    i.spec.organization_id = None;
    i
}

fn mapping(name: &str, url: &str, created: &str) -> ClusterMapping {
    let mut m = fixtures::mapping(NS, name, "prod", url);
    m.metadata.creation_timestamp = Some(fixtures::time(created));
    if let Some(c) = m.spec.cluster.as_mut() {
        c.id = "0b9f6a1e-0000-4000-8000-000000000002".into();
        c.cloud_provider = argomap::crd::CloudProvider::Gcp;
    }
    m
}

fn secret(token: &str) -> Value {
    use base64::Engine;
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "argocd-readonly", "namespace": NS, "uid": "s-1", "labels": {"argomap.io/credentials": "true"}},
        "data": {"token": base64::engine::general_purpose::STANDARD.encode(token)}
    })
}

/// A Kubernetes API error body.
fn api_error(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason, "message": message})
}

fn not_found(what: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404,
           "message": format!("{what} not found")})
}

struct Harness {
    ctx: Arc<Context>,
    handle: ApiHandle,
    mappings: Writer<ClusterMapping>,
}

/// The reconcilers with empty caches but for the opted-in Secret `argocd-readonly`, as the
/// label-selected Secret watch would hold it.
fn harness() -> Harness {
    harness_with_secrets(&[secret("unused")])
}

fn harness_with_secrets(opted_in: &[Value]) -> Harness {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let (reader, writer) = reflector::store();
    let (secrets, mut secret_writer) = reflector::store::<PartialObjectMeta<Secret>>();
    for s in opted_in {
        let meta = serde_json::from_value(s.clone()).expect("secret metadata");
        secret_writer.apply_watcher_event(&Event::Apply(meta));
    }
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let stores = Stores {
        instances: reflector::store().0,
        mappings: reader,
        secrets,
        namespaces: reflector::store().0,
        profiles: reflector::store().0,
    };
    let (ctx, _) = Context::new(client, Settings::default(), stores, metrics, CancellationToken::new());
    let ctx = Arc::new(ctx);
    Harness { ctx, handle, mappings: writer }
}

/// Receives the next request, checks method and path, answers `status` with `body`, and
/// returns the request's JSON body (Null when empty).
async fn answer(handle: &mut ApiHandle, method: &str, path: &str, status: StatusCode, body: Value) -> Value {
    let (req, send) = handle.next_request().await.expect("a request");
    assert_eq!(req.method().as_str(), method, "method of {}", req.uri());
    assert_eq!(req.uri().path(), path);
    if method == "PATCH" {
        let query = req.uri().query().unwrap_or("");
        assert!(
            query.contains("fieldManager=argomap") && query.contains("force=true"),
            "server-side apply: {query}"
        );
        let ct = req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
        assert_eq!(ct, "application/apply-patch+yaml");
    }
    let bytes = req.into_body().collect_bytes().await.expect("body");
    let sent =
        if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("json body") };
    // A status patch answers with the object: the apiVersion/kind/metadata sent, an empty spec
    // being enough for the client to decode it.
    let body = if method == "PATCH" && body.is_null() { echo(&sent) } else { body };
    let resp = Response::builder()
        .status(status)
        .body(Body::from(serde_json::to_vec(&body).expect("json")))
        .expect("resp");
    send.send_response(resp);
    sent
}

fn echo(sent: &Value) -> Value {
    let mut obj = sent.clone();
    obj["metadata"]["namespace"] = json!(NS);
    obj["spec"] = match sent["kind"].as_str() {
        Some("ClusterMapping") => {
            serde_json::to_value(mapping("x", "https://x", "2026-01-01T00:00:00Z").spec)
        }
        _ => serde_json::to_value(instance("https://x").spec),
    }
    .expect("spec");
    obj
}

const EVENTS_PATH: &str = "/apis/events.k8s.io/v1/namespaces/platform/events";

/// Answers one Event creation and returns its reason.
async fn event(handle: &mut ApiHandle) -> String {
    let (req, send) = handle.next_request().await.expect("an event");
    assert_eq!((req.method().as_str(), req.uri().path()), ("POST", EVENTS_PATH));
    let bytes = req.into_body().collect_bytes().await.expect("body");
    let ev: Value = serde_json::from_slice(&bytes).expect("event json");
    assert_eq!(ev["reportingController"], "argomap");
    send.send_response(Response::builder().body(Body::from(bytes.to_vec())).expect("resp"));
    ev["reason"].as_str().unwrap_or("").to_string()
}

async fn events(handle: &mut ApiHandle, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(event(handle).await);
    }
    out
}

const SECRET_PATH: &str = "/api/v1/namespaces/platform/secrets/argocd-readonly";
const INSTANCE_STATUS: &str = "/apis/argomap.io/v1alpha1/namespaces/platform/argocdinstances/prod/status";

/// The status a new instance is given before its first check (a status-less object is
/// Current to kstatus): Ready Unknown and Reconciling True, both `Pending`.
async fn awaiting_first_check(handle: &mut ApiHandle) {
    let patch = answer(handle, "PATCH", INSTANCE_STATUS, StatusCode::OK, Value::Null).await;
    let conds: Vec<(String, String, String)> = patch["status"]["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .map(|c| {
            let f = |k: &str| c[k].as_str().unwrap_or("").to_string();
            (f("type"), f("status"), f("reason"))
        })
        .collect();
    let want = |t: &str, s: &str| (t.to_string(), s.to_string(), "Pending".to_string());
    assert_eq!(conds, vec![want("Ready", "Unknown"), want("Reconciling", "True")]);
    assert!(patch["status"].get("connection").is_none(), "no check, no connection: {patch}");
}

fn mapping_status_path(name: &str) -> String {
    format!("/apis/argomap.io/v1alpha1/namespaces/platform/clustermappings/{name}/status")
}

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("reconcile finished (an unanswered request hangs it)")
}

#[tokio::test]
async fn first_check_applies_statuses_then_a_steady_state_writes_and_polls_nothing() {
    let (argocd, token) = fake().await;
    let Harness { ctx, mut handle, mut mappings } = harness();
    let m_linked = mapping("prod-eks", "https://10.0.0.1:6443/", "2026-01-01T00:00:00Z");
    let m_orphan = mapping("legacy-gke", "https://gke.example.com", "2026-01-01T00:00:00Z");
    mappings.apply_watcher_event(&Event::Apply(m_linked.clone()));
    mappings.apply_watcher_event(&Event::Apply(m_orphan.clone()));
    let inst = instance(&argocd.url());

    let verifier = tokio::spawn(async move {
        answer(&mut handle, "GET", SECRET_PATH, StatusCode::OK, secret(&token)).await;
        awaiting_first_check(&mut handle).await;
        let patch = answer(&mut handle, "PATCH", INSTANCE_STATUS, StatusCode::OK, Value::Null).await;
        let legacy =
            answer(&mut handle, "PATCH", &mapping_status_path("legacy-gke"), StatusCode::OK, Value::Null)
                .await;
        let linked =
            answer(&mut handle, "PATCH", &mapping_status_path("prod-eks"), StatusCode::OK, Value::Null).await;
        let reasons = events(&mut handle, 4).await;
        (handle, token, patch, legacy, linked, reasons)
    });
    within(controller::reconcile_instance(&inst, &ctx)).await.expect("reconcile");
    let (mut handle, token, patch, legacy, linked, reasons) = verifier.await.expect("verifier");
    assert_eq!(reasons, vec!["Connected", "UnlinkedClusterDetected", "MappingOrphaned", "MappingLinked"]);

    assert_eq!(patch["apiVersion"], "argomap.io/v1alpha1");
    assert_eq!(patch["kind"], "ArgoCdInstance");
    assert_eq!(patch["metadata"]["name"], "prod");
    let status = &patch["status"];
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(status["connection"]["status"], "connected");
    assert_eq!(status["connection"]["reason"], "Connected");
    assert_eq!(status["connection"]["argocdVersion"], "v3.6.1");
    assert_eq!(
        status["summary"],
        json!({"linkedClusters": 2, "unlinkedClusters": 1, "orphanedMappings": 1, "applications": 3, "unresolvedApplications": 0, "danglingDestinations": 0, "sharedClusters": 0})
    );
    assert_eq!(status["linkedClusters"][0]["argocdClusterUrl"], "https://10.0.0.1:6443");
    assert_eq!(status["linkedClusters"][0]["mapping"], "prod-eks");
    assert_eq!(status["linkedClusters"][0]["applicationsCount"], 2);
    assert_eq!(status["linkedClusters"][0]["argocdConnectionState"], "Successful");
    assert_eq!(status["linkedClusters"][1]["argocdClusterUrl"], "https://kubernetes.default.svc");
    assert_eq!(
        status["linkedClusters"][1]["cluster"]["name"], "Production EU",
        "in-cluster links to the agent cluster"
    );
    assert!(status["linkedClusters"][1].get("mapping").is_none());
    assert_eq!(
        status["unlinkedClusters"],
        json!([{"argocdClusterUrl": "https://old.example.com", "argocdClusterName": "old", "applicationsCount": 0, "argocdConnectionState": "Unknown"}])
    );
    assert_eq!(status["orphanedMappings"], json!(["legacy-gke"]));
    let conds: Vec<(String, String)> = status["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .map(|c| {
            (c["type"].as_str().unwrap_or("").to_string(), c["status"].as_str().unwrap_or("").to_string())
        })
        .collect();
    assert_eq!(
        conds,
        vec![
            ("Ready".into(), "True".into()),
            ("Connected".into(), "True".into()),
            ("ClustersVisible".into(), "True".into()),
            ("ApplicationsVisible".into(), "True".into())
        ]
    );
    assert!(
        status["conditions"].as_array().expect("conditions").iter().all(|c| c["observedGeneration"] == 1)
    );
    assert!(!patch.to_string().contains(&token), "no secret in status");

    assert_eq!(legacy["status"]["state"], "Orphaned");
    assert_eq!(linked["status"]["state"], "Linked");
    assert_eq!(linked["status"]["applicationsCount"], 2);
    assert_eq!(linked["status"]["argocdClusterName"], "prod-eks");
    assert_eq!(linked["status"]["conditions"][0]["type"], "Ready");
    assert_eq!(linked["status"]["conditions"][0]["status"], "True");

    // What the apiserver would now hold: the statuses as written.
    let mut inst2 = inst.clone();
    inst2.status = Some(serde_json::from_value::<ArgoCdInstanceStatus>(status.clone()).expect("status"));
    let mut m1 = m_linked.clone();
    m1.status =
        Some(serde_json::from_value::<ClusterMappingStatus>(linked["status"].clone()).expect("status"));
    let mut m2 = m_orphan.clone();
    m2.status =
        Some(serde_json::from_value::<ClusterMappingStatus>(legacy["status"].clone()).expect("status"));
    mappings.apply_watcher_event(&Event::Apply(m1));
    mappings.apply_watcher_event(&Event::Apply(m2));

    // Reconciled again before the interval (as a watch event would): the Secret is read, and
    // nothing else happens: no Argo CD request, no write.
    let verifier = tokio::spawn(async move {
        answer(&mut handle, "GET", SECRET_PATH, StatusCode::OK, secret(&token)).await;
        (handle, token)
    });
    let action = within(controller::reconcile_instance(&inst2, &ctx)).await.expect("reconcile");
    let (mut handle, token) = verifier.await.expect("verifier");
    assert_eq!(argocd.requests(Endpoint::Clusters), 1, "no poll without a due check");
    assert_eq!(argocd.requests(Endpoint::Applications), 1);
    assert!(format!("{action:?}").contains("requeue_after: Some"), "{action:?}");

    // The refresh annotation forces a check; the new poll changes only lastCheckedAt and the
    // echo of the annotation, so only the instance status is written.
    let mut inst3 = inst2.clone();
    inst3.metadata.annotations =
        Some([(REFRESH_ANNOTATION.to_string(), "2026-11-23T10:00:00Z".to_string())].into());
    let verifier = tokio::spawn(async move {
        answer(&mut handle, "GET", SECRET_PATH, StatusCode::OK, secret(&token)).await;
        answer(&mut handle, "PATCH", INSTANCE_STATUS, StatusCode::OK, Value::Null).await
    });
    within(controller::reconcile_instance(&inst3, &ctx)).await.expect("reconcile");
    let patch = verifier.await.expect("verifier");
    assert_eq!(patch["status"]["lastHandledRefreshAt"], "2026-11-23T10:00:00Z");
    assert_eq!(argocd.requests(Endpoint::Clusters), 2);
    assert_eq!(argocd.requests(Endpoint::Version), 1, "same connection: version not asked again");
}

#[tokio::test]
async fn missing_secret_is_credentials_not_found_and_new_mappings_wait() {
    let (argocd, _) = fake().await;
    let Harness { ctx, mut handle, mut mappings } = harness();
    mappings.apply_watcher_event(&Event::Apply(mapping(
        "prod-eks",
        "https://10.0.0.1:6443",
        "2026-01-01T00:00:00Z",
    )));
    let inst = instance(&argocd.url());
    let verifier = tokio::spawn(async move {
        answer(
            &mut handle,
            "GET",
            SECRET_PATH,
            StatusCode::NOT_FOUND,
            not_found("secrets \"argocd-readonly\""),
        )
        .await;
        awaiting_first_check(&mut handle).await;
        let patch = answer(&mut handle, "PATCH", INSTANCE_STATUS, StatusCode::OK, Value::Null).await;
        let m =
            answer(&mut handle, "PATCH", &mapping_status_path("prod-eks"), StatusCode::OK, Value::Null).await;
        let reasons = events(&mut handle, 1).await;
        (patch, m, reasons)
    });
    within(controller::reconcile_instance(&inst, &ctx)).await.expect("reconcile");
    let (patch, m, reasons) = verifier.await.expect("verifier");
    assert_eq!(reasons, vec!["ConnectionFailed"]);
    let conn = &patch["status"]["connection"];
    assert_eq!(conn["status"], "error");
    assert_eq!(conn["reason"], "CredentialsNotFound");
    assert_eq!(conn["message"], "Secret argocd-readonly does not exist in namespace platform");
    assert_eq!(patch["status"]["conditions"][0]["type"], "Ready");
    assert_eq!(patch["status"]["conditions"][0]["status"], "False");
    assert_eq!(patch["status"]["conditions"][0]["reason"], "CredentialsNotFound");
    assert_eq!(m["status"]["state"], "Pending");
    assert_eq!(argocd.requests(Endpoint::Clusters), 0, "no credentials, no request");
}

#[tokio::test]
async fn a_spec_change_checks_at_once() {
    let (argocd, token) = fake().await;
    let Harness { ctx, mut handle, .. } = harness();
    let inst = instance(&argocd.url());
    let t = token.clone();
    let verifier = tokio::spawn(async move {
        answer(&mut handle, "GET", SECRET_PATH, StatusCode::OK, secret(&t)).await;
        awaiting_first_check(&mut handle).await;
        let patch = answer(&mut handle, "PATCH", INSTANCE_STATUS, StatusCode::OK, Value::Null).await;
        let reasons = events(&mut handle, 2).await;
        (handle, patch, reasons)
    });
    within(controller::reconcile_instance(&inst, &ctx)).await.expect("reconcile");
    let (mut handle, patch, reasons) = verifier.await.expect("verifier");
    assert_eq!(reasons, vec!["Connected", "UnlinkedClusterDetected"]);
    let mut inst2 = inst.clone();
    inst2.status = Some(serde_json::from_value(patch["status"].clone()).expect("status"));
    inst2.metadata.generation = Some(2);
    let verifier = tokio::spawn(async move {
        answer(&mut handle, "GET", SECRET_PATH, StatusCode::OK, secret(&token)).await;
        answer(&mut handle, "PATCH", INSTANCE_STATUS, StatusCode::OK, Value::Null).await
    });
    within(controller::reconcile_instance(&inst2, &ctx)).await.expect("reconcile");
    let patch = verifier.await.expect("verifier");
    assert_eq!(patch["status"]["observedGeneration"], 2);
    assert_eq!(argocd.requests(Endpoint::Clusters), 2);
}

#[tokio::test]
async fn suspended_instance_is_not_polled() {
    let (argocd, _) = fake().await;
    let Harness { ctx, mut handle, .. } = harness();
    let mut inst = instance(&argocd.url());
    inst.spec.suspend = true;
    let verifier = tokio::spawn(async move {
        answer(&mut handle, "PATCH", INSTANCE_STATUS, StatusCode::OK, Value::Null).await
    });
    within(controller::reconcile_instance(&inst, &ctx)).await.expect("reconcile");
    let patch = verifier.await.expect("verifier");
    assert_eq!(patch["status"]["connection"]["reason"], "Suspended");
    assert_eq!(argocd.requests(Endpoint::Clusters) + argocd.requests(Endpoint::Version), 0);
}

#[tokio::test]
async fn mapping_without_instance_is_marked_once() {
    let Harness { ctx, mut handle, .. } = harness();
    let m = mapping("orphan", "https://x.example.com", "2026-01-01T00:00:00Z");
    let verifier = tokio::spawn(async move {
        let path = "/apis/argomap.io/v1alpha1/namespaces/platform/argocdinstances/prod";
        answer(&mut handle, "GET", path, StatusCode::NOT_FOUND, not_found("argocdinstances \"prod\"")).await;
        let patch =
            answer(&mut handle, "PATCH", &mapping_status_path("orphan"), StatusCode::OK, Value::Null).await;
        (handle, patch)
    });
    within(controller::reconcile_mapping(&m, &ctx)).await.expect("reconcile");
    let (mut handle, patch) = verifier.await.expect("verifier");
    assert_eq!(patch["status"]["state"], "InstanceNotFound");
    assert_eq!(patch["status"]["conditions"][0]["reason"], "InstanceNotFound");

    // Already marked: the next reconcile reads the instance and writes nothing.
    let mut marked = m.clone();
    marked.status = Some(serde_json::from_value(patch["status"].clone()).expect("status"));
    let verifier = tokio::spawn(async move {
        let path = "/apis/argomap.io/v1alpha1/namespaces/platform/argocdinstances/prod";
        answer(&mut handle, "GET", path, StatusCode::NOT_FOUND, not_found("argocdinstances \"prod\"")).await;
    });
    within(controller::reconcile_mapping(&marked, &ctx)).await.expect("reconcile");
    verifier.await.expect("verifier");
}

#[tokio::test]
async fn an_unlabelled_secret_is_never_read_and_says_how_to_opt_in() {
    let (argocd, token) = fake().await;
    let Harness { ctx, mut handle, .. } = harness_with_secrets(&[]);
    let inst = instance(&argocd.url());
    let verifier = tokio::spawn(async move {
        let mut unlabelled = secret(&token);
        unlabelled["metadata"]["labels"] = json!({});
        // Only the metadata is asked for (the PartialObjectMetadata Accept header)...
        let (req, send) = handle.next_request().await.expect("a request");
        assert_eq!((req.method().as_str(), req.uri().path()), ("GET", SECRET_PATH));
        let accept = req.headers().get("accept").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        assert!(accept.contains("as=PartialObjectMetadata"), "a metadata read, not the data: {accept}");
        unlabelled.as_object_mut().expect("object").remove("data");
        send.send_response(
            Response::builder().body(Body::from(unlabelled.to_string().into_bytes())).expect("resp"),
        );
        awaiting_first_check(&mut handle).await;
        // ...and the next request is the status write, not a read of the data.
        let patch = answer(&mut handle, "PATCH", INSTANCE_STATUS, StatusCode::OK, Value::Null).await;
        let reasons = events(&mut handle, 1).await;
        (patch, reasons)
    });
    within(controller::reconcile_instance(&inst, &ctx)).await.expect("reconcile");
    let (patch, reasons) = verifier.await.expect("verifier");
    assert_eq!(reasons, vec!["ConnectionFailed"]);
    let conn = &patch["status"]["connection"];
    assert_eq!(conn["reason"], "CredentialsNotOptedIn");
    assert_eq!(
        conn["message"],
        "Secret argocd-readonly is not labelled argomap.io/credentials=true, so argomap does not read it; if it is meant for argomap: kubectl label secret argocd-readonly -n platform argomap.io/credentials=true"
    );
    assert_eq!(patch["status"]["conditions"][0]["reason"], "CredentialsNotOptedIn");
    assert_eq!(argocd.requests(Endpoint::Clusters), 0, "nothing sent to Argo CD");
}

#[tokio::test]
async fn a_status_refused_as_too_large_is_replaced_by_a_minimal_one() {
    let (argocd, token) = fake().await;
    let Harness { ctx, mut handle, .. } = harness();
    let inst = instance(&argocd.url());
    let verifier = tokio::spawn(async move {
        answer(&mut handle, "GET", SECRET_PATH, StatusCode::OK, secret(&token)).await;
        awaiting_first_check(&mut handle).await;
        // What kube-apiserver answers when etcd refuses the object.
        let refused = api_error(500, "InternalError", "etcdserver: request is too large");
        let full =
            answer(&mut handle, "PATCH", INSTANCE_STATUS, StatusCode::INTERNAL_SERVER_ERROR, refused).await;
        let minimal = answer(&mut handle, "PATCH", INSTANCE_STATUS, StatusCode::OK, Value::Null).await;
        let _ = events(&mut handle, 2).await;
        (full, minimal)
    });
    within(controller::reconcile_instance(&inst, &ctx)).await.expect("reconcile");
    let (full, minimal) = verifier.await.expect("verifier");
    assert!(!full["status"]["unlinkedClusters"].as_array().expect("lists").is_empty());
    let s = &minimal["status"];
    assert_eq!(s["unlinkedClusters"], json!([]));
    assert_eq!(s["truncated"], true);
    assert_eq!(s["summary"], full["status"]["summary"], "counts stay exact");
    assert_eq!(s["conditions"][0]["type"], "Ready");
    assert_eq!(s["conditions"][0]["status"], "False");
    assert_eq!(s["conditions"][0]["reason"], "StatusTooLarge");
    let message = s["conditions"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("request is too large"), "{message}");
}

#[tokio::test]
async fn a_forbidden_secret_is_a_reason_in_status_not_a_silent_retry() {
    let (argocd, _) = fake().await;
    let Harness { ctx, mut handle, .. } = harness();
    let inst = instance(&argocd.url());
    let verifier = tokio::spawn(async move {
        let forbidden = api_error(
            403,
            "Forbidden",
            "secrets \"argocd-readonly\" is forbidden: User \"system:serviceaccount:argomap:argomap\" cannot get resource \"secrets\"",
        );
        answer(&mut handle, "GET", SECRET_PATH, StatusCode::FORBIDDEN, forbidden).await;
        awaiting_first_check(&mut handle).await;
        let patch = answer(&mut handle, "PATCH", INSTANCE_STATUS, StatusCode::OK, Value::Null).await;
        let _ = events(&mut handle, 1).await;
        patch
    });
    within(controller::reconcile_instance(&inst, &ctx)).await.expect("the reconcile itself succeeds");
    let patch = verifier.await.expect("verifier");
    let conn = &patch["status"]["connection"];
    assert_eq!(conn["reason"], "KubernetesAPIError");
    let message = conn["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("cannot read Secret argocd-readonly") && message.contains("forbidden"),
        "{message}"
    );
    assert_eq!(argocd.requests(Endpoint::Clusters), 0);
}

#[tokio::test]
async fn a_409_on_the_status_write_is_retried_without_asking_argocd_again() {
    let (argocd, token) = fake().await;
    let Harness { ctx, mut handle, .. } = harness();
    let inst = instance(&argocd.url());
    let t = token.clone();
    let verifier = tokio::spawn(async move {
        answer(&mut handle, "GET", SECRET_PATH, StatusCode::OK, secret(&t)).await;
        awaiting_first_check(&mut handle).await;
        let conflict = api_error(
            409,
            "Conflict",
            "Operation cannot be fulfilled on argocdinstances.argomap.io \"prod\": the object has been modified",
        );
        answer(&mut handle, "PATCH", INSTANCE_STATUS, StatusCode::CONFLICT, conflict).await;
        handle
    });
    let err = within(controller::reconcile_instance(&inst, &ctx)).await.expect_err("the write failed");
    assert_eq!(err.category(), "KubeError");
    let mut handle = verifier.await.expect("verifier");
    // The retry writes what the check found; Argo CD is not asked again (nothing is due).
    let verifier = tokio::spawn(async move {
        answer(&mut handle, "GET", SECRET_PATH, StatusCode::OK, secret(&token)).await;
        let patch = answer(&mut handle, "PATCH", INSTANCE_STATUS, StatusCode::OK, Value::Null).await;
        let _ = events(&mut handle, 2).await;
        patch
    });
    within(controller::reconcile_instance(&inst, &ctx)).await.expect("the retry");
    let patch = verifier.await.expect("verifier");
    assert_eq!(patch["status"]["connection"]["status"], "connected");
    assert_eq!(argocd.requests(Endpoint::Clusters), 1, "one check for both writes");
}
