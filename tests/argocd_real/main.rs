//! The real-Argo-CD suite (`make argocd-test`): argomap against argocd-server (v3.6.1, or the
//! version `make argocd-test ARGOCD_VERSION=...` names: `server::version()`) built from its Go module, seeded through the Kubernetes API only. Tests that need data or
//! settings of their own start their own server (own namespace, redis and settings: a shared
//! server's lists, RBAC and login lock-out would couple the tests); tests that only read
//! what any Argo CD answers use the shared one `make argocd-test` starts.
//!
//! Every test has its own namespace for argomap's objects, its own `argomap run` process,
//! and polls with deadlines.

mod attribution;
#[allow(dead_code)]
#[path = "../cluster/common.rs"]
mod common;
mod health;
mod server;
mod watch;
mod watch_cost;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use argomap::crd::ArgoCdInstance;
use argomap_test_support::argocd_answers as answers;
use common::*;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{Patch, PatchParams};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};
use server::{ACCOUNT, Dest, Opts, Server, version};

/// A check against a real server, from the operator's start.
const CHECK: Duration = Duration::from_secs(40);
/// Argo CD seen catching up with the Kubernetes API.
const LISTED: Duration = Duration::from_secs(60);

/// A file in a fresh temporary directory (kept alive by the returned guard).
fn file(name: &str, content: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(name);
    std::fs::write(&path, content).expect("write");
    (dir, path)
}

/// `argomap check ... -o json`: its exit code and report.
fn check(args: &[&str]) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_argomap"))
        .arg("check")
        .args(args)
        .args(["-o", "json"])
        .output()
        .expect("argomap check");
    let text = String::from_utf8_lossy(&out.stdout);
    let report = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "argomap check printed no JSON ({e}): {text}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), report)
}

fn check_token(url: &str, token: &str, extra: &[&str]) -> (i32, Value) {
    let (_dir, path) = file("token", token);
    let mut args = vec!["--url", url, "--token-file", path.to_str().expect("path")];
    args.extend_from_slice(extra);
    check(&args)
}

/// A status with its clock readings replaced by `"<time>"`, so it compares exactly.
fn timeless(mut v: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    if matches!(
                        k.as_str(),
                        "lastCheckedAt"
                            | "lastSuccessfulCheckAt"
                            | "lastTransitionTime"
                            | "credentialsExpireAt"
                    ) && !x.is_null()
                    {
                        *x = json!("<time>");
                    } else {
                        walk(x);
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
    v
}

fn status_json(i: &ArgoCdInstance) -> Value {
    timeless(serde_json::to_value(i.status.as_ref().expect("status")).expect("status JSON"))
}

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .unwrap_or_else(|| panic!("no condition {type_} in {status}"))
}

fn message(status: &Value) -> String {
    status["connection"]["message"].as_str().unwrap_or_default().to_string()
}

fn reason_of(status: &Value) -> String {
    status["connection"]["reason"].as_str().unwrap_or_default().to_string()
}

/// The namespace of argomap's objects with the token Secret, the given mappings and the
/// instance `prod` at `url`.
async fn argomap_setup(
    client: &kube::Client,
    test: &str,
    url: &str,
    token: &str,
    mappings: &[(&str, &str)],
    change: impl FnOnce(&mut Value),
) -> String {
    let ns = namespace(client, test).await;
    token_secret(client, &ns, "argocd-readonly", token).await;
    for (name, u) in mappings {
        create_mapping(client, &ns, mapping_json(name, "prod", u)).await;
    }
    let mut i = instance_json("prod", url, "10s");
    change(&mut i);
    create_instance(client, &ns, i).await;
    ns
}

async fn until_reason(client: &kube::Client, ns: &str, want: &str) -> ArgoCdInstance {
    instance_where(client, ns, "prod", CHECK, &format!("reason {want}"), |i| {
        reason(i).as_deref() == Some(want)
    })
    .await
}

/// The seeded fleet: two registered clusters (one written with a trailing `/`, which Argo CD
/// trims), the synthesised in-cluster, applications by server, by name, an unresolvable
/// name, and one in a second namespace.
async fn seed_fleet(client: &kube::Client, acd: &str, apps_ns: &str) {
    server::cluster_secret(client, acd, "a-cluster", "https://a.example.com/").await;
    server::cluster_secret(client, acd, "b-cluster", "https://b.example.com:6443").await;
    server::applications(
        client,
        acd,
        vec![
            server::application("web", Dest::Server("https://a.example.com")),
            server::application("api", Dest::Name("b-cluster")),
            server::application("zz-local", Dest::Server("https://kubernetes.default.svc")),
            server::application("ghost", Dest::Name("no-such-cluster")),
        ],
    )
    .await;
    server::applications(
        client,
        apps_ns,
        vec![server::application("team-app", Dest::Server("https://a.example.com"))],
    )
    .await;
}

/// The conditions of a connected check of the seeded fleet (kstatus: observedGeneration on
/// each when written by the controller).
fn fleet_conditions(ready: &str, generation: Option<i64>) -> Value {
    let mut cs = json!([
        {"lastTransitionTime": "<time>", "message": ready, "reason": "Connected", "status": "True", "type": "Ready"},
        {"lastTransitionTime": "<time>", "message": "", "reason": "Connected", "status": "True", "type": "Connected"},
        {"lastTransitionTime": "<time>", "message": "", "reason": "ClustersListed", "status": "True", "type": "ClustersVisible"},
        {"lastTransitionTime": "<time>", "message": "", "reason": "ApplicationsListed", "status": "True", "type": "ApplicationsVisible"}
    ]);
    if let Some(g) = generation {
        cs.as_array_mut().expect("array").iter_mut().for_each(|c| c["observedGeneration"] = json!(g));
    }
    cs
}

fn connected_connection() -> Value {
    json!({"argocdVersion": version(), "lastCheckedAt": "<time>", "lastSuccessfulCheckAt": "<time>",
           "message": "", "reason": "Connected", "status": "connected"})
}

// ---------------------------------------------------------------------------------------
// (a) the core cases

#[tokio::test(flavor = "multi_thread")]
async fn read_only_token_exact_status_from_check_and_run() {
    let client = client().await;
    let acd = namespace(&client, "acd-ro").await;
    let apps_ns = namespace(&client, "acd-ro-apps").await;
    seed_fleet(&client, &acd, &apps_ns).await;
    let server = Server::start(&acd, Opts { app_namespaces: Some(apps_ns.clone()), ..Default::default() });
    server::listed(&server, &server.token, 3, 5, LISTED).await;

    // The server's own lists: clusters with the trailing `/` trimmed and in-cluster last,
    // applications sorted by name (namespace aside).
    let clusters = server.clusters(&server.token);
    let servers: Vec<&str> =
        clusters["items"].as_array().expect("items").iter().filter_map(|c| c["server"].as_str()).collect();
    assert_eq!(servers.last(), Some(&"https://kubernetes.default.svc"), "in-cluster is listed last");
    assert!(servers.contains(&"https://a.example.com"), "trailing / trimmed: {servers:?}");
    let apps = server.applications(&server.token);
    let names: Vec<&str> = apps["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|a| a["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names, ["api", "ghost", "team-app", "web", "zz-local"]);
    // The projection argomap asks v3.5 and later for: before v3.5, `items.spec.destination`
    // brings no `spec` at all (hence `items.spec` there, src/argocd/projection.rs).
    let narrow = server.applications_with(
        &server.token,
        "items.metadata.name,items.metadata.namespace,items.spec.destination",
    );
    let destinations = narrow["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|a| a["spec"]["destination"].is_object())
        .count();
    assert_eq!(destinations, if server::at_least(3, 5) { 5 } else { 0 }, "{narrow}");
    let answered = server.curl("GET", "/api/version", None, None).json();
    assert_eq!(answered, json!({"Version": version()}));
    // The assertions the fake passes too (tests/argocd_client.rs).
    answers::assert_version(&server.url, &version()).await;
    answers::assert_list_order(&server.url, &server.token).await;

    // argomap check: no mappings, so a.example.com is unlinked and in-cluster links to the
    // placeholder agent cluster.
    let (code, report) = check_token(&server.url, &server.token, &[]);
    assert_eq!(code, 0, "{report}");
    let in_cluster = |cluster: Value| {
        json!({"applicationsCount": 1, "argocdClusterName": "in-cluster", "argocdClusterUrl": "https://kubernetes.default.svc",
               "argocdConnectionState": "Successful", "cluster": cluster})
    };
    let b = json!({"applicationsCount": 1, "argocdClusterName": "b-cluster", "argocdClusterUrl": "https://b.example.com:6443"});
    assert_eq!(
        timeless(report["status"].clone()),
        json!({
            "conditions": fleet_conditions("1 linked, 2 unlinked, 0 orphaned", None),
            "connection": connected_connection(),
            "linkedClusters": [in_cluster(json!({"cloudProvider": "ON_PREMISE", "id": "00000000-0000-0000-0000-000000000000", "name": "(agent cluster)", "type": "MANAGED"}))],
            "orphanedMappings": [],
            "danglingDestinations": [{"applicationsCount": 1, "destination": "no-such-cluster", "kind": "Name", "registered": false}],
            "summary": {"applications": 5, "danglingDestinations": 1, "linkedClusters": 1, "orphanedMappings": 0, "sharedClusters": 0, "unlinkedClusters": 2, "unresolvedApplications": 1},
            "unlinkedClusters": [
                {"applicationsCount": 2, "argocdClusterName": "a-cluster", "argocdClusterUrl": "https://a.example.com"},
                b.clone()
            ]
        })
    );

    // argomap run, with a.example.com mapped.
    let ns = argomap_setup(
        &client,
        "real-ro",
        &server.url,
        &server.token,
        &[("prod-a", "https://a.example.com")],
        |_| {},
    )
    .await;
    let _op = Operator::start(&ns);
    let i = until_reason(&client, &ns, "Connected").await;
    // The instance's namespace is bound to its organization, as every test namespace is.
    let mut conditions = fleet_conditions("2 linked, 1 unlinked, 0 orphaned", Some(1));
    conditions.as_array_mut().expect("array").push(json!({
        "lastTransitionTime": "<time>", "observedGeneration": 1, "reason": "NamespaceLabelled", "status": "True",
        "type": "OrganizationBound",
        "message": format!("namespace {ns} is labelled argomap.io/organization-id={}", argomap_test_support::fixtures::ORG),
    }));
    assert_eq!(
        status_json(&i),
        json!({
            "conditions": conditions,
            "connection": connected_connection(),
            "linkedClusters": [
                {"applicationsCount": 2, "argocdClusterName": "a-cluster", "argocdClusterUrl": "https://a.example.com",
                 "cluster": {"cloudProvider": "GCP", "id": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "name": "Cluster prod-a", "type": "SELF_MANAGED"},
                 "mapping": "prod-a"},
                in_cluster(json!({"cloudProvider": "AWS", "id": "0b9f6a1e-2c1d-4e4f-9a4b-1f2e3d4c5b6a", "name": "Production EU", "type": "MANAGED"}))
            ],
            "observedGeneration": 1,
            "orphanedMappings": [],
            "danglingDestinations": [{"applicationsCount": 1, "destination": "no-such-cluster", "kind": "Name", "registered": false}],
            "summary": {"applications": 5, "danglingDestinations": 1, "linkedClusters": 2, "orphanedMappings": 0, "sharedClusters": 0, "unlinkedClusters": 1, "unresolvedApplications": 1},
            "unlinkedClusters": [b]
        })
    );
    assert_eq!(mapping_state(&client, &ns, "prod-a").await.as_deref(), Some("Linked"));
}

/// The value of one sample of the operator's `/metrics` (0 when absent).
fn metric(op: &Operator, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = server::curl("GET", &format!("{}/metrics", op.admin), None, None, &[]).body;
    text.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn login_secret(client: &kube::Client, ns: &str, password: &str) {
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "argocd-login", "labels": {"argomap.io/credentials": "true"}},
        "stringData": {"username": ACCOUNT, "password": password}
    }))
    .expect("secret");
    Api::<Secret>::namespaced(client.clone(), ns)
        .patch("argocd-login", &PatchParams::apply("argomap-test").force(), &Patch::Apply(&secret))
        .await
        .expect("apply login secret");
}

fn use_login(i: &mut Value) {
    i["spec"]["credentials"] =
        json!({"secretRef": {"name": "argocd-login"}, "usernameKey": "username", "passwordKey": "password"});
}

#[tokio::test(flavor = "multi_thread")]
async fn username_and_password_log_in_once_per_controller_lifetime() {
    let client = client().await;
    let acd = namespace(&client, "acd-login").await;
    server::cluster_secret(&client, &acd, "a-cluster", "https://a.example.com").await;
    let server = Server::start(&acd, Opts::default());
    server.set_password(ACCOUNT, "correct-horse-battery");
    let ns = namespace(&client, "real-login").await;
    login_secret(&client, &ns, "correct-horse-battery").await;
    let mut i = instance_json("prod", &server.url, "10s");
    use_login(&mut i);
    create_instance(&client, &ns, i).await;
    let op = Operator::start(&ns);
    until_reason(&client, &ns, "Connected").await;
    // Three more checks (interval 10 s), each a clusters request; still one login.
    let session = [("endpoint", "session"), ("code", "2xx")];
    let clusters = [("endpoint", "clusters"), ("code", "2xx")];
    eventually(Duration::from_secs(60), "three checks", || {
        let op = &op;
        async move {
            let n = metric(op, "argomap_argocd_request_duration_seconds_count", &clusters);
            if n >= 3.0 { Ok(()) } else { Err(format!("{n} checks")) }
        }
    })
    .await;
    assert_eq!(metric(&op, "argomap_argocd_request_duration_seconds_count", &session), 1.0, "one login");
    let i = until_reason(&client, &ns, "Connected").await;
    let s = status_json(&i);
    assert_eq!(
        s["connection"],
        connected_connection(),
        "a session JWT's expiry is not the credentials' expiry"
    );
    assert_eq!(s["summary"]["unlinkedClusters"], json!(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_base_url_is_an_invalid_response_naming_the_url() {
    let server = Server::shared();
    // What the real server answers: 404 text/plain unless the request accepts HTML.
    let wrong = format!("{}/wrong", server.url);
    let r = server::curl("GET", &format!("{wrong}/api/v1/clusters"), Some(&server.token), None, &[]);
    assert_eq!(
        (r.status, r.content_type.as_str(), r.body.trim()),
        (404, "text/plain; charset=utf-8", "404 page not found")
    );
    let html = server::curl("GET", &format!("{wrong}/api/v1/clusters"), None, None, &["Accept: text/html"]);
    assert_eq!(html.status, 500, "the UI (not built into this binary): {}", html.body);

    answers::assert_wrong_base_url_is_plain_404(&server.url, &server.token).await;
    let (code, report) = check_token(&wrong, &server.token, &[]);
    assert_eq!(code, 1);
    let s = &report["status"];
    assert_eq!(reason_of(s), "InvalidResponse");
    assert_eq!(message(s), answers::WRONG_BASE_URL);
    let client = client().await;
    let ns = argomap_setup(&client, "real-wrong-url", &wrong, &server.token, &[], |_| {}).await;
    let _op = Operator::start(&ns);
    let i = until_reason(&client, &ns, "InvalidResponse").await;
    assert_eq!(message(&status_json(&i)), message(s));
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_and_revoked_tokens_fail_authentication_with_argocd_words() {
    let server = Server::shared();
    let now = server::now_secs();
    let expired = server.offline_token(ACCOUNT, "argomap-expired", now - 7200, Some(now - 3600));
    let (code, report) = check_token(&server.url, &expired, &[]);
    assert_eq!(code, 1);
    assert_eq!(reason_of(&report["status"]), "AuthenticationFailed");
    assert_eq!(message(&report["status"]), answers::EXPIRED);

    let id = format!("argomap-revoked-{}", rand::random::<u32>());
    let token = server.mint_token(ACCOUNT, &id, 0);
    let (code, _) = check_token(&server.url, &token, &[]);
    assert_eq!(code, 0, "the minted token works before it is revoked");
    let client = client().await;
    let ns = argomap_setup(&client, "real-revoked", &server.url, &token, &[], |_| {}).await;
    let _op = Operator::start(&ns);
    until_reason(&client, &ns, "Connected").await;
    server.revoke_token(ACCOUNT, &id);
    let want = answers::revoked(ACCOUNT, &id);
    let (code, report) = check_token(&server.url, &token, &[]);
    assert_eq!((code, message(&report["status"])), (1, want.clone()));
    let i = instance_where(&client, &ns, "prod", CHECK, "revoked", |i| {
        reason(i).as_deref() == Some("AuthenticationFailed")
    })
    .await;
    let s = status_json(&i);
    assert_eq!(message(&s), want);
    assert_eq!(s["summary"]["linkedClusters"], json!(1), "the last known lists stay");

    // A garbage token.
    let (_, report) = check_token(&server.url, "not-a-jwt", &[]);
    assert_eq!(message(&report["status"]), answers::NO_SESSION);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_thousand_applications_counted_as_the_server_lists_them() {
    let client = client().await;
    let acd = namespace(&client, "acd-2000").await;
    let servers = ["https://c0.example.com", "https://c1.example.com", "https://c2.example.com"];
    for (n, s) in servers.iter().enumerate() {
        server::cluster_secret(&client, &acd, &format!("c{n}"), s).await;
    }
    let apps: Vec<Value> = (0..2000)
        .map(|n| {
            let name = format!("app-{n:04}");
            match n % 4 {
                0 => server::application(&name, Dest::Server(servers[0])),
                1 => server::application(&name, Dest::Name("c1")),
                2 => server::application(&name, Dest::Server(servers[2])),
                _ => server::application(&name, Dest::Server("https://kubernetes.default.svc")),
            }
        })
        .collect();
    server::applications(&client, &acd, apps).await;
    let server = Server::start(&acd, Opts::default());
    server::listed(&server, &server.token, 4, 2000, LISTED).await;

    // The server's own count per destination (by server, or by name through the cluster list).
    let clusters = server.clusters(&server.token);
    let by_name: std::collections::HashMap<&str, &str> = clusters["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|c| Some((c["name"].as_str()?, c["server"].as_str()?)))
        .collect();
    let listed = server.applications(&server.token);
    let mut counts: std::collections::BTreeMap<String, u64> = Default::default();
    for a in listed["items"].as_array().expect("items") {
        let d = &a["spec"]["destination"];
        let url = d["server"].as_str().or_else(|| d["name"].as_str().and_then(|n| by_name.get(n).copied()));
        *counts.entry(url.expect("resolvable").to_string()).or_default() += 1;
    }
    assert_eq!(counts.values().sum::<u64>(), 2000);

    let started = std::time::Instant::now();
    let (code, report) = check_token(&server.url, &server.token, &[]);
    let took = started.elapsed();
    assert_eq!(code, 0, "{report}");
    let s = &report["status"];
    assert_eq!(s["summary"]["applications"], json!(2000));
    assert_eq!(s["summary"]["unresolvedApplications"], json!(0));
    let mut argomap: std::collections::BTreeMap<String, u64> = Default::default();
    for d in s["linkedClusters"].as_array().into_iter().chain(s["unlinkedClusters"].as_array()).flatten() {
        argomap.insert(
            d["argocdClusterUrl"].as_str().expect("url").into(),
            d["applicationsCount"].as_u64().expect("n"),
        );
    }
    assert_eq!(argomap, counts);
    println!("argomap check of 2000 applications: {took:?}");
}

/// A CA of the test's own and a serving certificate from it for `IP:127.0.0.1` and
/// `DNS:argocd.test`: (dir guard, ca.crt, tls.crt, tls.key).
fn own_ca() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_path_buf();
    let sh = |script: &str| {
        let out = Command::new("bash").arg("-ec").arg(script).current_dir(&d).output().expect("openssl");
        assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
    };
    sh("openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=argomap-test-ca 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -keyout tls.key -out tls.csr -subj /CN=argocd.test 2>/dev/null
        printf 'subjectAltName=IP:127.0.0.1,DNS:argocd.test\\n' >ext
        openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out tls.crt -days 2 -extfile ext 2>/dev/null");
    let (ca, crt, key) = (d.join("ca.crt"), d.join("tls.crt"), d.join("tls.key"));
    (dir, ca, crt, key)
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_with_an_own_ca_server_name_insecure_and_plain_http_redirected() {
    let client = client().await;
    let acd = namespace(&client, "acd-tls").await;
    let (_guard, ca, crt, key) = own_ca();
    let server = Server::start(&acd, Opts { tls: true, cert: Some((crt, key)), ..Default::default() });
    assert!(server.url.starts_with("https://127.0.0.1:"), "{}", server.url);

    // Not trusted without the CA.
    let (code, report) = check_token(&server.url, &server.token, &[]);
    assert_eq!((code, reason_of(&report["status"]).as_str()), (1, "TLSError"), "{report}");
    assert!(message(&report["status"]).contains("UnknownIssuer"), "{report}");
    // The CA: connected. serverName: the certificate's other name, or a wrong one.
    let ca_arg = ["--ca-file", path_str(&ca)];
    let (code, report) = check_token(&server.url, &server.token, &ca_arg);
    assert_eq!(code, 0, "{report}");
    let (code, _) =
        check_token(&server.url, &server.token, &[ca_arg[0], ca_arg[1], "--server-name", "argocd.test"]);
    assert_eq!(code, 0, "serverName argocd.test matches the certificate");
    let (code, report) =
        check_token(&server.url, &server.token, &[ca_arg[0], ca_arg[1], "--server-name", "wrong.test"]);
    assert_eq!((code, reason_of(&report["status"]).as_str()), (1, "TLSError"));
    assert!(message(&report["status"]).contains("certificate not valid for name \"wrong.test\""), "{report}");
    assert!(
        !message(&report["status"]).contains("argocd.test"),
        "the certificate's own names stay unsaid: {report}"
    );
    // insecureSkipVerify: connected, with the warning condition.
    let (code, report) = check_token(&server.url, &server.token, &["--insecure-skip-verify"]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(condition(&report["status"], "InsecureTLS")["status"], "True");

    // http:// to the TLS server: Argo CD answers 307 to https; argomap follows no redirect.
    let http_url = server.url.replacen("https://", "http://", 1);
    let r = server::curl("GET", &format!("{http_url}/api/version"), None, None, &[]);
    assert_eq!(r.status, 307);
    let (code, report) = check_token(&http_url, &server.token, &[]);
    assert_eq!(code, 1);
    assert_eq!(reason_of(&report["status"]), "InvalidResponse");
    assert_eq!(
        message(&report["status"]),
        format!(
            "version answered HTTP 307 redirecting to {}/api/version; argomap follows no redirect: set spec.url to {}",
            server.url, server.url
        )
    );

    // The controller, with the CA from a labelled Secret.
    let ns = argomap_setup(&client, "real-tls", &server.url, &server.token, &[], |i| {
        i["spec"]["tls"] = json!({"caSecretRef": {"name": "argocd-ca", "key": "ca.crt"}});
    })
    .await;
    let ca_secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "argocd-ca", "labels": {"argomap.io/credentials": "true"}},
        "stringData": {"ca.crt": std::fs::read_to_string(&ca).expect("ca")}
    }))
    .expect("secret");
    Api::<Secret>::namespaced(client.clone(), &ns)
        .create(&Default::default(), &ca_secret)
        .await
        .expect("create CA secret");
    let _op = Operator::start(&ns);
    let i = until_reason(&client, &ns, "Connected").await;
    assert_eq!(status_json(&i)["connection"], connected_connection());
}

#[tokio::test(flavor = "multi_thread")]
async fn server_stopped_and_restarted() {
    let client = client().await;
    let acd = namespace(&client, "acd-restart").await;
    server::cluster_secret(&client, &acd, "a-cluster", "https://a.example.com").await;
    let mut server = Server::start(&acd, Opts::default());
    let ns = argomap_setup(&client, "real-restart", &server.url, &server.token, &[], |_| {}).await;
    let _op = Operator::start(&ns);
    until_reason(&client, &ns, "Connected").await;

    server.stop();
    let i = until_reason(&client, &ns, "Unreachable").await;
    let s = status_json(&i);
    // A stopped server reads as any port nothing answers on: status does not say "refused".
    assert!(message(&s).contains("no connection could be made"), "{s}");
    assert!(!message(&s).contains("os error"), "{s}");
    assert_eq!(s["summary"]["unlinkedClusters"], json!(1), "the last known lists stay");

    server.start_again();
    assert_eq!(server.ns, acd);
    let i = until_reason(&client, &ns, "Connected").await;
    assert_eq!(status_json(&i)["connection"], connected_connection());
}

#[tokio::test(flavor = "multi_thread")]
async fn rootpath_is_part_of_the_base_url() {
    let client = client().await;
    let acd = namespace(&client, "acd-rootpath").await;
    let server = Server::start(&acd, Opts { rootpath: Some("/argocd".into()), ..Default::default() });
    assert_eq!(server.url, format!("{}/argocd", server.origin));
    let (code, report) = check_token(&server.url, &server.token, &[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["status"]["summary"]["linkedClusters"], json!(1), "in-cluster");
    // Without the prefix: the server's 404 text/plain, reported as a wrong base URL.
    let (code, report) = check_token(&server.origin, &server.token, &[]);
    assert_eq!((code, reason_of(&report["status"]).as_str()), (1, "InvalidResponse"));
    assert!(message(&report["status"]).contains("--rootpath"), "{report}");
    let ns = argomap_setup(&client, "real-rootpath", &server.url, &server.token, &[], |_| {}).await;
    let _op = Operator::start(&ns);
    until_reason(&client, &ns, "Connected").await;
}

// ---------------------------------------------------------------------------------------
// (b) permission gaps: RBAC filters Argo CD's lists silently; argomap says what is missing.

/// A server with the seeded fleet and `policy` for `argomap`; the report of `argomap check`
/// and the status `argomap run` writes.
async fn fleet_with_policy(test: &str, policy: &str) -> (Server, Value, Value) {
    let client = client().await;
    let acd = namespace(&client, &format!("acd-{test}")).await;
    let apps_ns = namespace(&client, &format!("acd-{test}-apps")).await;
    seed_fleet(&client, &acd, &apps_ns).await;
    let server = Server::start(
        &acd,
        Opts { app_namespaces: Some(apps_ns), policy: Some(policy.into()), ..Default::default() },
    );
    // What the server itself shows the admin (everything) before argomap looks.
    let admin = server.admin_session();
    server::listed(&server, &admin, 3, 5, LISTED).await;
    let (code, report) = check_token(&server.url, &server.token, &[]);
    assert_eq!(code, 0, "connected: the gaps are conditions, not a failure: {report}");
    let ns = argomap_setup(&client, &format!("real-{test}"), &server.url, &server.token, &[], |_| {}).await;
    let _op = Operator::start(&ns);
    let i = until_reason(&client, &ns, "Connected").await;
    let run = status_json(&i);
    (server, timeless(report["status"].clone()), run)
}

/// The condition `type_` of a status has this status, reason and message.
#[track_caller]
fn assert_condition(s: &Value, type_: &str, status: &str, reason: &str, message: &str) {
    let c = condition(s, type_);
    assert_eq!(
        (c["status"].as_str(), c["reason"].as_str(), c["message"].as_str()),
        (Some(status), Some(reason), Some(message)),
        "{type_}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn blind_profile_clusters_hidden_apps_visible() {
    let (server, check, run) =
        fleet_with_policy("blind", &format!("p, {ACCOUNT}, applications, get, */*, allow")).await;
    assert_eq!(server.clusters(&server.token), json!({"metadata": {}, "items": null}), "RBAC-filtered: null");
    answers::assert_filtered_list_is_null(&format!("{}/api/v1/clusters", server.url), &server.token).await;
    for s in [&check, &run] {
        assert_condition(
            s,
            "ClustersVisible",
            "False",
            "MissingClustersGetPermission",
            "Argo CD lists no clusters to this token, which lacks `clusters, get` (confirmed by can-i); destinations come from applications only",
        );
        assert_eq!(condition(s, "ApplicationsVisible")["status"], "True");
        // Destinations from the apps alone: a.example.com (2), in-cluster (1); the two apps
        // that name clusters cannot be resolved without the list.
        assert_eq!(
            s["summary"],
            json!({"applications": 5, "danglingDestinations": 0, "linkedClusters": 1, "orphanedMappings": 0, "sharedClusters": 0, "unlinkedClusters": 1, "unresolvedApplications": 2})
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn partial_cluster_policy_names_the_missing_destinations() {
    let policy = format!(
        "p, {ACCOUNT}, applications, get, */*, allow\np, {ACCOUNT}, clusters, get, https://a*, allow"
    );
    let (server, check, run) = fleet_with_policy("partial", &policy).await;
    let listed = server.clusters(&server.token);
    let servers: Vec<&str> =
        listed["items"].as_array().expect("items").iter().filter_map(|c| c["server"].as_str()).collect();
    assert_eq!(servers, ["https://a.example.com"], "only what the policy allows");
    let can_i = server.curl("GET", "/api/v1/account/can-i/clusters/get/*", Some(&server.token), None);
    assert_eq!(can_i.json(), json!({"value": "no"}));
    for s in [&check, &run] {
        assert_condition(
            s,
            "ClustersVisible",
            "False",
            "MissingClustersGetPermission",
            "the token may get only some clusters (can-i clusters get * says no), so Argo CD's cluster list is partial: 1 destination(s) of applications are missing from it: https://kubernetes.default.svc; 2 application(s) could not be attributed (unresolvedApplications)",
        );
        assert_eq!(s["summary"]["unresolvedApplications"], json!(2));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn account_with_no_role_is_not_a_healthy_empty_argocd() {
    let (server, check, run) = fleet_with_policy("norole", "").await;
    assert_eq!(server.applications(&server.token)["items"], Value::Null);
    for s in [&check, &run] {
        assert_condition(
            s,
            "ClustersVisible",
            "False",
            "MissingClustersGetPermission",
            "Argo CD lists no clusters to this token, which lacks `clusters, get` (confirmed by can-i)",
        );
        assert_condition(
            s,
            "ApplicationsVisible",
            "False",
            "MissingApplicationsGetPermission",
            "Argo CD lists no applications to this token, which lacks `applications, get` (confirmed by can-i): application counts are unknown",
        );
        assert_eq!(s["summary"]["applications"], json!(0));
    }
}

// ---------------------------------------------------------------------------------------
// (c) login lock-out: a wrong password is tried once, then not before the Secret changes.

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_login_is_not_retried_until_the_secret_changes() {
    let client = client().await;
    let acd = namespace(&client, "acd-lockout").await;
    let server = Server::start(&acd, Opts::default());
    server.set_password(ACCOUNT, "correct-horse-battery");
    let ns = namespace(&client, "real-lockout").await;
    login_secret(&client, &ns, "wrong-password").await;
    let mut i = instance_json("prod", &server.url, "10s");
    use_login(&mut i);
    create_instance(&client, &ns, i).await;
    let op = Operator::start(&ns);
    let i = until_reason(&client, &ns, "AuthenticationFailed").await;
    assert_eq!(
        message(&status_json(&i)),
        "login to Argo CD failed (HTTP 401): Invalid username or password (Argo CD may be locking the account: after 5 failed logins it refuses every login for 300 s, even with the right password); argomap logs in again when the credentials Secret changes, or in 5 minutes"
    );
    let refused = [("endpoint", "session"), ("code", "401")];
    assert_eq!(metric(&op, "argomap_argocd_request_duration_seconds_count", &refused), 1.0);

    // Three intervals and a refresh request later: still the one refused login (the old
    // behaviour retried at +5 s, +10 s, ... and locked the account within about a minute).
    let api = Api::<ArgoCdInstance>::namespaced(client.clone(), &ns);
    let refresh = json!({"metadata": {"annotations": {argomap::crd::REFRESH_ANNOTATION: "now"}}});
    api.patch("prod", &PatchParams::default(), &Patch::Merge(&refresh)).await.expect("refresh");
    let until = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < until {
        let logins = metric(&op, "argomap_argocd_request_duration_seconds_count", &[("endpoint", "session")]);
        assert_eq!(logins, 1.0, "no second login before the Secret changes");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The right password: at once, and the account was never locked.
    login_secret(&client, &ns, "correct-horse-battery").await;
    let i = until_reason(&client, &ns, "Connected").await;
    assert_eq!(status_json(&i)["connection"], connected_connection());
    let ok = [("endpoint", "session"), ("code", "2xx")];
    assert_eq!(metric(&op, "argomap_argocd_request_duration_seconds_count", &ok), 1.0);
}

// ---------------------------------------------------------------------------------------
// (d) https:// to a plain-HTTP Argo CD: a TLS error that names the likely cause.

#[tokio::test(flavor = "multi_thread")]
async fn https_to_a_plain_http_server_is_a_tls_error_naming_the_cause() {
    let server = Server::shared();
    let https = server.url.replacen("http://", "https://", 1);
    let (code, report) = check_token(&https, &server.token, &[]);
    assert_eq!((code, reason_of(&report["status"]).as_str()), (1, "TLSError"), "{report}");
    let m = message(&report["status"]);
    assert!(m.contains("Connection reset by peer"), "{m}");
    assert!(
        m.ends_with(&format!(
            "the server most likely speaks plain HTTP on this port (Argo CD with --insecure); if so, set spec.url to {}",
            server.url
        )),
        "{m}"
    );
}
