//! The read-API suite on the real control plane: the Qovery read API called with real
//! ServiceAccount tokens (TokenRequest, TokenReview, SubjectAccessReview), its bodies validated
//! against the contract, its hardening (the admin port apart, bounded reviews, revocation, no
//! existence oracle), and fuzzed by schemathesis. Its helpers, shared with the metrics suite,
//! are in `served.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use argomap::crd::ArgoCdInstance;
use argomap_test_support::contract::{assert_valid as assert_contract, strict_document};
use argomap_test_support::fixtures::ORG;
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use crate::common::*;
use crate::served::*;
// Not `common`'s: the namespace these suites start from has a running operator.
use crate::served::setup;

/// An organization no instance belongs to.
const OTHER_ORG: &str = "5e1c0e4e-0000-4000-8000-00000000ffff";

/// `spec.agentCluster.id` of `instance_json`; `spec.cluster.id` of `mapping_json`.
const AGENT_ID: &str = "0b9f6a1e-2c1d-4e4f-9a4b-1f2e3d4c5b6a";

const MAPPED_ID: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";

fn schemathesis() -> PathBuf {
    let cache = std::env::var_os("ARGOMAP_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/argomap"));
    tool("ARGOMAP_TEST_SCHEMATHESIS", cache.join("tools/venv/bin/schemathesis"))
}

// ---------------------------------------------------------------------------------------------
// The read API with ServiceAccount tokens

/// A read-API token (audience `argomap`) of ServiceAccount `name` (created if needed) from the
/// TokenRequest API.
async fn service_account_token(client: &Client, ns: &str, name: &str) -> String {
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), ns);
    if accounts.get_opt(name).await.expect("get service account").is_none() {
        let sa: ServiceAccount =
            serde_json::from_value(json!({"metadata": {"name": name}})).expect("service account");
        accounts.create(&PostParams::default(), &sa).await.expect("create service account");
    }
    token_of(&accounts, name, &[argomap::server::DEFAULT_AUDIENCE]).await
}

/// Role + RoleBinding: ServiceAccount `sa` may `list argocdinstances.argomap.io` in `ns`. Waits
/// until the API server's authorizer says so (it caches RBAC objects), so a review made after
/// this returns is answered with the grant.
async fn grant_list(client: &Client, ns: &str, sa: &str) {
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "argomap-viewer"},
        "rules": [{"apiGroups": ["argomap.io"], "resources": ["argocdinstances"], "verbs": ["list"]}]
    }))
    .expect("role");
    Api::<Role>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &role)
        .await
        .expect("create role");
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": format!("argomap-viewer-{sa}")},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "argomap-viewer"},
        "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}]
    }))
    .expect("role binding");
    Api::<RoleBinding>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &binding)
        .await
        .expect("create role binding");
    let reviews = Api::<SubjectAccessReview>::all(client.clone());
    let user = format!("system:serviceaccount:{ns}:{sa}");
    eventually(FAST, "the RoleBinding takes effect", || {
        let (reviews, user) = (&reviews, &user);
        async move {
            let review = SubjectAccessReview {
                spec: SubjectAccessReviewSpec {
                    user: Some(user.clone()),
                    groups: Some(vec![
                        "system:serviceaccounts".into(),
                        format!("system:serviceaccounts:{ns}"),
                    ]),
                    resource_attributes: Some(ResourceAttributes {
                        verb: Some("list".into()),
                        group: Some("argomap.io".into()),
                        resource: Some("argocdinstances".into()),
                        namespace: Some(ns.into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ..Default::default()
            };
            let answer = reviews.create(&PostParams::default(), &review).await.map_err(|e| e.to_string())?;
            if answer.status.as_ref().is_some_and(|s| s.allowed) {
                Ok(())
            } else {
                Err(format!("{:?}", answer.status))
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_read_api_with_service_account_tokens_through_every_status() {
    let s = setup("obs-readapi").await;
    let (client, ns, op) = (&s.client, s.ns.as_str(), &s.op);
    ready(op).await;
    let url = mapping_url(op, ORG);
    let unknown = mapping_url(op, "00000000-0000-4000-8000-000000000000");

    // 401: no token, a garbage one, or one of a scheme that is not a bearer token.
    for auth in [None, Some("Bearer garbage"), Some("Bearer a.b.c"), Some("Basic dXNlcjpwYXNz")] {
        let r = get(&url, auth).await.expect("GET");
        assert_error(&r, 401, "Unauthorized");
        assert_eq!(r.www_authenticate.as_deref(), Some("Bearer"));
    }
    // Even with a malformed organization id: the token is checked first.
    assert_error(&get(&mapping_url(op, "not-a-uuid"), None).await.expect("GET"), 401, "Unauthorized");

    // A valid ServiceAccount token without RBAC: 403 (before the operator sees the instance too:
    // the caller cannot list instances everywhere, so an unknown organization is 403 as well).
    let no_rbac = bearer(&service_account_token(client, ns, "viewer").await);
    let r = eventually(CHECK, "403 without RBAC", || {
        let (url, auth) = (url.as_str(), no_rbac.as_str());
        async move {
            let r = get(url, Some(auth)).await?;
            match r.status {
                403 => Ok(r),
                200 if r.json() == json!({"results": []}) => Err(r.show()),
                _ => panic!("a token without RBAC got {}", r.show()),
            }
        }
    })
    .await;
    assert_error(&r, 403, "Forbidden");
    // 400 with a JSON body for a malformed organizationId.
    for bad in ["not-a-uuid", "5e1c0e4e8f5a4c369d381f0d9c7c2b11", "5e1c0e4e-8f5a-4c36-9d38-1f0d9c7c2b1g"] {
        assert_error(&get(&mapping_url(op, bad), Some(&no_rbac)).await.expect("GET"), 400, "BadRequest");
    }
    // No existence oracle: an unknown organization answers exactly as one the caller cannot see.
    let existing = get(&url, Some(&no_rbac)).await.expect("GET");
    let r = get(&unknown, Some(&no_rbac)).await.expect("GET");
    assert_error(&r, 403, "Forbidden");
    assert_eq!(r.body, existing.body, "same answer for an organization that exists and one that does not");

    // Granted: the same ServiceAccount with a fresh token (review answers of the first token are
    // cached for 30 s).
    grant_list(client, ns, "viewer").await;
    let viewer = bearer(&service_account_token(client, ns, "viewer").await);
    // The entry follows the instance's status, which follows the mappings: wait for both links.
    let r = eventually(FAST, "200 with both linked clusters", || {
        let (url, auth) = (url.as_str(), viewer.as_str());
        async move {
            let r = get(url, Some(auth)).await?;
            let linked = |b: &Value| b["results"][0]["linked_clusters"].as_array().map(Vec::len);
            if r.status == 200 && linked(&r.json()) == Some(2) { Ok(r) } else { Err(r.show()) }
        }
    })
    .await;
    let body = r.json();
    assert!(r.content_type.starts_with("application/json"), "{}", r.content_type);
    assert_contract(&body);
    let instance = Api::<ArgoCdInstance>::namespaced(client.clone(), ns).get("prod").await.expect("prod");
    let secret = Api::<Secret>::namespaced(client.clone(), ns).get("argocd-readonly").await.expect("secret");
    let last_checked = instance
        .status
        .as_ref()
        .and_then(|st| st.connection.as_ref())
        .and_then(|c| c.last_checked_at.as_ref())
        .map(|t| t.0.to_string())
        .expect("lastCheckedAt");
    assert_eq!(
        body,
        json!({"results": [{
            "agent_cluster_id": AGENT_ID,
            "agent_cluster_name": "Production EU",
            "agent_cluster_cloud_provider": "AWS",
            "credentials_id": secret.uid().expect("secret uid"),
            "argocd_url": s.argocd.url(),
            "status": "connected",
            "last_checked_at": last_checked,
            "linked_clusters": [
                {
                    "argocd_cluster_url": "https://10.0.0.1:6443",
                    "argocd_cluster_name": "prod-eks",
                    "qovery_cluster_id": MAPPED_ID,
                    "qovery_cluster_name": "Cluster prod-eks",
                    "qovery_cluster_cloud_provider": "GCP",
                    "qovery_cluster_type": "SELF_MANAGED",
                    "applications_count": 2
                },
                {
                    "argocd_cluster_url": "https://kubernetes.default.svc",
                    "argocd_cluster_name": "in-cluster",
                    "qovery_cluster_id": AGENT_ID,
                    "qovery_cluster_name": "Production EU",
                    "qovery_cluster_cloud_provider": "AWS",
                    "qovery_cluster_type": "MANAGED",
                    "applications_count": 1
                }
            ],
            "unlinked_clusters": [
                {"argocd_cluster_url": APPS_ONLY, "argocd_cluster_name": APPS_ONLY, "applications_count": 1},
                {"argocd_cluster_url": "https://old.example.com", "argocd_cluster_name": "old", "applications_count": 0}
            ]
        }]})
    );
    // The organization id compares ignoring case; the contract's `Token` scheme works too.
    let r = get(&mapping_url(op, &ORG.to_uppercase()), Some(&viewer)).await.expect("GET");
    assert_eq!((r.status, r.json()), (200, body.clone()));
    let token_scheme = viewer.replacen("Bearer ", "Token ", 1);
    assert_eq!(get(&url, Some(&token_scheme)).await.expect("GET").json(), body);
    // Granted in this namespace only, not cluster-wide: an unknown organization stays 403.
    assert_error(&get(&unknown, Some(&viewer)).await.expect("GET"), 403, "Forbidden");

    // Another ServiceAccount, granted in another namespace only, still gets 403 here.
    let other_ns = namespace(client, "obs-readapi-other").await;
    grant_list(client, &other_ns, "elsewhere").await;
    let elsewhere = bearer(&service_account_token(client, &other_ns, "elsewhere").await);
    assert_error(&get(&url, Some(&elsewhere)).await.expect("GET"), 403, "Forbidden");
}

// ---------------------------------------------------------------------------------------------
// Hardening: the admin port apart, bounded reviews, revocation, no oracle

#[tokio::test(flavor = "multi_thread")]
async fn probes_and_metrics_answer_while_the_read_api_connections_are_all_taken() {
    let s = setup_with("obs-admin", &["--read-api-max-connections", "8"]).await;
    ready(&s.op).await;
    let read_api = s.op.http.trim_start_matches("http://").to_string();
    // Idle connections that never send a request: the read API's whole budget, and more.
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(tokio::net::TcpStream::connect(&read_api).await.expect("connect"));
    }
    let quick = reqwest::Client::builder().timeout(Duration::from_secs(3)).build().expect("client");
    for path in ["/healthz", "/readyz", "/metrics"] {
        let r = quick.get(format!("{}{path}", s.op.admin)).send().await;
        assert!(r.as_ref().is_ok_and(|r| r.status() == 200), "{path} while the read API is full: {r:?}");
    }
    // The idle connections give way (after a second without a byte) to a client with a request.
    let started = std::time::Instant::now();
    let r = quick.get(mapping_url(&s.op, ORG)).send().await;
    assert!(r.as_ref().is_ok_and(|r| r.status() == 401), "a new client is answered: {r:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    metrics_where(&s.op, "the eviction is counted", |e| {
        let evicted = e
            .samples
            .iter()
            .filter(|x| x.name == "argomap_http_connections_refused_total")
            .filter(|x| x.labels.get("reason").map(String::as_str) == Some("evicted"))
            .filter(|x| x.labels.get("server").map(String::as_str) == Some("read-api"))
            .map(|x| x.value)
            .sum::<f64>();
        if evicted >= 1.0 { Ok(()) } else { Err(format!("{evicted} evictions")) }
    })
    .await;
    drop(idle);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_counts_for_its_organization_only_while_its_namespace_is_bound_to_it() {
    use argomap::model::organization::ORGANIZATION_LABEL;
    use k8s_openapi::api::core::v1::Namespace;
    let client = client().await;
    let ns = namespace_labelled(&client, "obs-org", None).await;
    let (argocd, token) = fake_with_expiry(now_secs() + 30 * 24 * 3600).await;
    token_secret(&client, &ns, "argocd-readonly", &token).await;
    create_instance(&client, &ns, instance_json("prod", &argocd.url(), "60s")).await;
    let op = Operator::start(&ns);
    let condition = |i: &ArgoCdInstance| {
        i.status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "OrganizationBound"))
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    };
    // Unbound: connected, Ready, and left out of its organization's answer, saying why.
    let i = instance_where(&client, &ns, "prod", CHECK, "NamespaceNotInOrganization", |i| {
        connected(i) && condition(i).is_some_and(|c| c.1 == "NamespaceNotInOrganization")
    })
    .await;
    let (status, _, message) = condition(&i).expect("condition");
    assert_eq!(status, "False");
    assert!(
        message.contains(&format!("kubectl label namespace {ns} {ORGANIZATION_LABEL}={ORG}")),
        "{message}"
    );
    get_until(&format!("{}/readyz", op.admin), None, 200, CHECK).await;
    let reader = bearer(&reader_token(&client).await);
    let url = mapping_url(&op, ORG);
    let results = |r: &Reply| r.json()["results"].as_array().map(Vec::len).unwrap_or_default();
    assert_eq!(results(&get_until(&url, Some(&reader), 200, FAST).await), 0);
    // An administrator binds the namespace: the condition turns at once, the answer holds it.
    let namespaces = Api::<Namespace>::all(client.clone());
    let bind = json!({"metadata": {"labels": {ORGANIZATION_LABEL: ORG}}});
    namespaces.patch(&ns, &PatchParams::default(), &Patch::Merge(&bind)).await.expect("label");
    instance_where(&client, &ns, "prod", FAST, "NamespaceLabelled", |i| {
        condition(i).is_some_and(|c| c.0 == "True" && c.1 == "NamespaceLabelled")
    })
    .await;
    eventually(FAST, "the instance in its organization's answer", || {
        let (url, reader) = (&url, &reader);
        async move {
            let r = get(url, Some(reader)).await?;
            if results(&r) == 1 { Ok(()) } else { Err(r.show()) }
        }
    })
    .await;
    // Bound to another organization: out again.
    let other = json!({"metadata": {"labels": {ORGANIZATION_LABEL: OTHER_ORG}}});
    namespaces.patch(&ns, &PatchParams::default(), &Patch::Merge(&other)).await.expect("relabel");
    instance_where(&client, &ns, "prod", FAST, "NamespaceInOtherOrganization", |i| {
        condition(i).is_some_and(|c| c.1 == "NamespaceInOtherOrganization")
    })
    .await;
    assert_eq!(results(&get(&url, Some(&reader)).await.expect("GET")), 0);
    drop(argocd);
}

#[tokio::test(flavor = "multi_thread")]
async fn only_tokens_issued_for_argomap_are_accepted() {
    let s = setup("obs-audience").await;
    ready(&s.op).await;
    let url = mapping_url(&s.op, ORG);
    // The API server's own tokens (the admin's; a ServiceAccount's without an audience) could be
    // replayed against it: refused.
    assert_error(&get(&url, Some(&bearer(&admin_token()))).await.expect("GET"), 401, "Unauthorized");
    grant_list(&s.client, &s.ns, "plain").await;
    let plain = plain_token(&s.client, &s.ns, "plain").await;
    assert_error(&get(&url, Some(&bearer(&plain))).await.expect("GET"), 401, "Unauthorized");
    // The same ServiceAccount with a token for argomap is let in.
    let for_argomap = bearer(&service_account_token(&s.client, &s.ns, "plain").await);
    get_until(&url, Some(&for_argomap), 200, FAST).await;
    // An empty --read-api-audience accepts the API server's audience (the old behaviour).
    let ns = namespace(&s.client, "obs-audience-any").await;
    let op = Operator::start_with(&ns, &["--read-api-audience", ""]);
    get_until(&format!("{}/readyz", op.admin), None, 200, CHECK).await;
    get_until(&mapping_url(&op, ORG), Some(&bearer(&admin_token())), 200, FAST).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_never_reviewed_are_throttled_per_client_with_429() {
    let s = setup_with("obs-throttle", &["--read-api-reviews-per-client", "2"]).await;
    ready(&s.op).await;
    let url = mapping_url(&s.op, ORG);
    let mut seen: BTreeMap<u16, usize> = BTreeMap::new();
    let started = std::time::Instant::now();
    for n in 0..60 {
        let r = get(&url, Some(&format!("Bearer not-a-token-{n}"))).await.expect("GET");
        if r.status == 429 {
            assert_error(&r, 429, "TooManyRequests");
        }
        *seen.entry(r.status).or_default() += 1;
    }
    // Every 401 cost one TokenReview: a burst of 4, then 2 per second.
    let reviewed = seen.get(&401).copied().unwrap_or(0);
    // Bounded by the time the loop took, however slow the machine; every other request was
    // answered 429 (so some were, unless the loop took half a minute).
    let budget = 4 + (2.0 * started.elapsed().as_secs_f64()).ceil() as usize;
    assert!(reviewed <= budget, "{reviewed} reviews > {budget}: {seen:?}");
    let throttled = seen.get(&429).copied().unwrap_or(0);
    assert_eq!(reviewed + throttled, 60, "only 401 and 429: {seen:?}");
    assert!(budget >= 60 || throttled > 0, "{seen:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_role_binding_is_refused_within_the_review_ttl() {
    let s = setup_with("obs-revoke", &["--read-api-review-ttl", "2s"]).await;
    ready(&s.op).await;
    grant_list(&s.client, &s.ns, "revoked").await;
    let auth = bearer(&service_account_token(&s.client, &s.ns, "revoked").await);
    let url = mapping_url(&s.op, ORG);
    get_until(&url, Some(&auth), 200, FAST).await;
    Api::<RoleBinding>::namespaced(s.client.clone(), &s.ns)
        .delete("argomap-viewer-revoked", &DeleteParams::default())
        .await
        .expect("delete role binding");
    let deleted = std::time::Instant::now();
    get_until(&url, Some(&auth), 403, Duration::from_secs(10)).await;
    // The TTL, plus the API server's own RBAC cache catching up.
    assert!(deleted.elapsed() < Duration::from_secs(8), "refused after {:?}", deleted.elapsed());
}

#[tokio::test(flavor = "multi_thread")]
async fn only_a_caller_who_sees_everything_learns_an_organization_is_unknown() {
    let s = setup("obs-oracle").await;
    ready(&s.op).await;
    let no_rbac = bearer(&service_account_token(&s.client, &s.ns, "nobody").await);
    let existing = get(&mapping_url(&s.op, ORG), Some(&no_rbac)).await.expect("GET");
    let unknown = get(&mapping_url(&s.op, OTHER_ORG), Some(&no_rbac)).await.expect("GET");
    assert_error(&existing, 403, "Forbidden");
    assert_eq!((unknown.status, unknown.body.clone()), (existing.status, existing.body.clone()));
    // A reader allowed to list everywhere: for it an unknown organization is empty.
    let admin = bearer(&reader_token(&s.client).await);
    let r = get(&mapping_url(&s.op, OTHER_ORG), Some(&admin)).await.expect("GET");
    assert_eq!((r.status, r.json()), (200, json!({"results": []})), "{}", r.show());
}

// ---------------------------------------------------------------------------------------------
// schemathesis

/// The contract as schemathesis reads it: the fixture with the organization of the test
/// instance as the example of `organizationId` (so the examples phase asks for a populated
/// body, not only random unknown organizations), and every object schema strict as the
/// contract's validator has them (`strict_document`). Paths, parameters and responses are
/// otherwise the fixture's.
fn schemathesis_spec(dir: &Path) -> PathBuf {
    let mut doc = strict_document();
    doc["components"]["parameters"]["organizationId"]["example"] = json!(ORG);
    let path = dir.join("contract.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&doc).expect("json")).expect("write spec");
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_response_that_breaks_the_contract() {
    let s = setup("obs-fuzz").await;
    ready(&s.op).await;
    grant_list(&s.client, &s.ns, "fuzzer").await;
    let token = service_account_token(&s.client, &s.ns, "fuzzer").await;
    let auth = bearer(&token);
    let populated = get_until(&mapping_url(&s.op, ORG), Some(&auth), 200, FAST).await;
    assert_eq!(populated.json()["results"].as_array().map(Vec::len), Some(1), "{}", populated.show());
    assert_contract(&populated.json());
    // The cases this test stands for are sent explicitly, not left to what schemathesis
    // happens to generate: an unknown organization, a malformed id, no token, a bad token.
    // Allowed in one namespace only: an unknown organization is 403, as one it cannot see.
    let unknown = get(&mapping_url(&s.op, OTHER_ORG), Some(&auth)).await.expect("GET");
    assert_error(&unknown, 403, "Forbidden");
    assert_error(&get(&mapping_url(&s.op, "not-a-uuid"), Some(&auth)).await.expect("GET"), 400, "BadRequest");
    assert_error(&get(&mapping_url(&s.op, ORG), None).await.expect("GET"), 401, "Unauthorized");
    assert_error(
        &get(&mapping_url(&s.op, ORG), Some("Bearer nope")).await.expect("GET"),
        401,
        "Unauthorized",
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let spec = schemathesis_spec(dir.path());
    let log = log_dir().join(format!("{}-schemathesis.log", s.ns));
    let junit = dir.path().join("junit.xml");
    let har = dir.path().join("requests.har");
    let st = schemathesis();
    let op_url = s.op.http.clone();
    let args: Vec<String> = vec![
        "run".into(),
        spec.display().to_string(),
        "--url".into(),
        op_url,
        "--header".into(),
        format!("Authorization: {auth}"),
        "--include-operation-id".into(),
        "listArgoCdDestinationClusterMappings".into(),
        // Every check but status_code_conformance: the contract lists 200, 401, 403 and 404
        // only, while the read API deliberately answers a malformed organizationId with 400
        // (docs/read-api.md), and 503 while not ready or when reviews fail. That check flags
        // the 400s (ST103 "Undocumented status code") and nothing else. The others include
        // response_schema_conformance (every 200 body against the strict schema above),
        // not_a_server_error, negative_data_rejection (a malformed id is a 4xx),
        // positive_data_acceptance and ignored_auth (no or a bad token is 401).
        "--checks".into(),
        "all".into(),
        "--exclude-checks".into(),
        "status_code_conformance".into(),
        "--phases".into(),
        "examples,coverage,fuzzing".into(),
        "--max-examples".into(),
        "200".into(),
        "--workers".into(),
        "2".into(),
        "--request-timeout".into(),
        "10".into(),
        // The same requests on every run: a fixed seed, and deterministic generation (which
        // also keeps no example database between runs).
        "--seed".into(),
        "20261201".into(),
        "--generation-deterministic".into(),
        "--report".into(),
        "junit,har".into(),
        "--report-junit-path".into(),
        junit.display().to_string(),
        "--report-har-path".into(),
        har.display().to_string(),
        "--no-color".into(),
    ];
    let workdir = dir.path().to_path_buf();
    let out =
        tokio::task::spawn_blocking(move || run_bounded(&st, &args, &workdir, Duration::from_secs(240)))
            .await
            .expect("schemathesis thread");
    let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    std::fs::write(&log, text.replace(&token, "<token>")).expect("write schemathesis log");
    assert!(
        out.status.success(),
        "schemathesis failed ({}), output in {}:\n{text}",
        out.status,
        log.display()
    );
    let report = std::fs::read_to_string(&junit).expect("junit report");
    assert!(report.contains("<testcase"), "schemathesis ran no test case:\n{report}\n{text}");

    // Every answer it got is one the read API documents, and every populated body is valid.
    // Which statuses it happened to draw is not asserted: the explicit requests above cover them.
    let har: Value = serde_json::from_slice(&std::fs::read(&har).expect("HAR report")).expect("HAR JSON");
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for entry in har["log"]["entries"].as_array().expect("HAR entries") {
        let status = entry["response"]["status"].as_u64().unwrap_or(0);
        let body: Value = entry["response"]["content"]["text"]
            .as_str()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or(Value::Null);
        let kind = match status {
            200 if body["results"].as_array().is_some_and(|r| !r.is_empty()) => {
                assert_contract(&body);
                "200 populated"
            }
            200 => {
                assert_contract(&body);
                "200 empty"
            }
            400 => "400",
            401 => "401",
            403 => "403",
            404 => "404",
            // Methods the operation does not have (the coverage phase tries them).
            405 => "405",
            other => panic!("schemathesis got status {other}: {entry}"),
        };
        *seen.entry(kind).or_default() += 1;
    }
    let total: usize = seen.values().sum();
    assert!(total >= 20, "schemathesis sent only {total} requests: {seen:?}");
    std::fs::write(log_dir().join(format!("{}-schemathesis-statuses.txt", s.ns)), format!("{seen:?}\n"))
        .expect("write summary");
}

/// Runs `cmd args` in `dir`, killed after `limit`.
fn run_bounded(cmd: &Path, args: &[String], dir: &Path, limit: Duration) -> std::process::Output {
    let child = Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}", cmd.display()));
    let pid = child.id();
    let (done, wait) = std::sync::mpsc::channel();
    let watchdog = std::thread::spawn(move || {
        if wait.recv_timeout(limit).is_err() {
            // Still running after the limit: end it (only this child, by its pid).
            let _ = Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
        }
    });
    let out = child.wait_with_output().expect("wait");
    let _ = done.send(());
    let _ = watchdog.join();
    out
}
