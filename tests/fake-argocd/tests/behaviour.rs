//! The fake's own behaviour: auth, sessions, lists, `fields`, faults, gzip, counters, TLS,
//! root path. (Body shapes are covered by contract.rs.)

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Reply, client, client_with, get, rich_server, send};
use fake_argocd::{App, Cluster, Endpoint, FakeArgoCd, Fault, Options, jwt};
use reqwest::Method;
use serde_json::{Value, json};

fn now() -> i64 {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs();
    i64::try_from(secs).expect("fits")
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|i| i["metadata"]["name"].as_str().or(i["name"].as_str()).unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn assert_error(r: &Reply, status: u16, code: i64, message: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.json(), json!({"error": message, "code": code, "message": message}));
    assert_eq!(r.header("content-type"), Some("application/json"));
}

async fn login(fake: &FakeArgoCd, body: &str, content_type: &str) -> Reply {
    send(
        &client(),
        fake,
        Method::POST,
        "/api/v1/session",
        None,
        &[("content-type", content_type)],
        Some(body),
    )
    .await
}

// ---------------------------------------------------------------------------------------
// Auth and sessions

#[tokio::test]
async fn version_is_public_but_says_more_to_a_logged_in_caller() {
    let (fake, token) = rich_server("v3.5.1+109ca7c").await;
    let anon = get(&fake, "/api/version", None).await;
    assert_eq!(anon.json(), json!({"Version": "v3.5.1+109ca7c"}));
    // An invalid token is not an error here either.
    let bad = get(&fake, "/api/version", Some(&jwt("nobody:apiKey", None))).await;
    assert_eq!(bad.json(), json!({"Version": "v3.5.1+109ca7c"}));
    let full = get(&fake, "/api/version", Some(&token)).await.json();
    assert_eq!(full["Version"], "v3.5.1+109ca7c");
    assert_eq!(full["GitCommit"], "109ca7ca71139e514114499d294a492e7910a965");
    assert!(full["KubectlVersion"].is_string());
    assert!(full.get("GitTag").is_none(), "untagged build has no GitTag");
}

#[tokio::test]
async fn api_calls_need_an_accepted_three_part_bearer() {
    let (fake, token) = rich_server("v3.5.1").await;
    let no_session = |r: &Reply| assert_error(r, 401, 16, "no session information");
    no_session(&get(&fake, "/api/v1/clusters", None).await);
    // Not three dot-separated parts: ignored like no token at all.
    no_session(&get(&fake, "/api/v1/applications", Some("not-a-jwt")).await);
    let r = send(
        &client(),
        &fake,
        Method::GET,
        "/api/v1/clusters",
        None,
        &[("authorization", &format!("Basic {token}"))],
        None,
    )
    .await;
    no_session(&r);
    // Three parts but never issued: the signature check fails.
    assert_error(
        &get(&fake, "/api/v1/clusters", Some(&jwt("x:apiKey", None))).await,
        401,
        16,
        "invalid session: token signature is invalid: signature is invalid",
    );
    assert_eq!(get(&fake, "/api/v1/clusters", Some(&token)).await.status, 200);
    assert_eq!(get(&fake, "/api/v1/account/can-i/clusters/get/*", Some(&token)).await.status, 200);

    // Other places Argo CD reads a token from.
    for header in [("grpc-metadata-token", token.clone()), ("cookie", format!("argocd.token={token}"))] {
        let r = send(&client(), &fake, Method::GET, "/api/v1/clusters", None, &[(header.0, &header.1)], None)
            .await;
        assert_eq!(r.status, 200, "{}", header.0);
    }

    fake.revoke_tokens();
    assert_eq!(get(&fake, "/api/v1/clusters", Some(&token)).await.status, 401);
}

#[tokio::test]
async fn expired_tokens_get_the_exact_expiry_error() {
    let fake = FakeArgoCd::start(Options::default()).await;
    let expired = jwt("argomap:apiKey", Some(now() - 10));
    fake.add_token(&expired);
    let r = get(&fake, "/api/v1/applications", Some(&expired)).await;
    let example: Value = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/argocd-examples/error-401-token-expired.json"
    )))
    .expect("fixture parses");
    assert_eq!(r.status, 401);
    assert_eq!(r.json(), example);
    // userinfo swallows it.
    let me = get(&fake, "/api/v1/session/userinfo", Some(&expired)).await;
    assert_eq!((me.status, me.json()), (200, json!({})));
}

#[tokio::test]
async fn login_issues_a_session_token() {
    let ttl = Duration::from_secs(3600);
    let fake = FakeArgoCd::start(Options {
        users: vec![("admin".to_owned(), "s3cr3t".to_owned())],
        session_ttl: ttl,
        ..Options::default()
    })
    .await;
    let creds = r#"{"username":"admin","password":"s3cr3t"}"#;

    // Content-Type must be exactly application/json.
    for ct in ["text/plain", "application/json; charset=utf-8"] {
        let r = login(&fake, creds, ct).await;
        assert_eq!(r.status, 415, "{ct}");
        assert_eq!(r.body, "Invalid content type\n");
        assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    }
    assert_error(
        &login(&fake, r#"{"username":"admin","password":"wrong"}"#, "application/json").await,
        401,
        16,
        "Invalid username or password",
    );
    assert_error(
        &login(&fake, r#"{"username":"admin","password":""}"#, "application/json").await,
        401,
        16,
        "no credentials supplied",
    );

    let ok = login(&fake, creds, "application/json").await;
    assert_eq!(ok.status, 200);
    let token = ok.json()["token"].as_str().expect("token").to_owned();
    assert_eq!(token.split('.').count(), 3);
    let cookie = ok.header("set-cookie").expect("cookie set");
    assert!(cookie.starts_with(&format!("argocd.token={token}; path=/;")), "{cookie}");
    let payload = token.split('.').nth(1).expect("payload");
    let claims: Value = {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("base64url");
        serde_json::from_slice(&bytes).expect("claims JSON")
    };
    assert_eq!(claims["sub"], "admin:login");
    assert_eq!(claims["iss"], "argocd");
    let exp = claims["exp"].as_i64().expect("exp");
    assert!((exp - now() - 3600).abs() <= 2, "exp {exp}");

    assert_eq!(get(&fake, "/api/v1/clusters", Some(&token)).await.status, 200);
    let me = get(&fake, "/api/v1/session/userinfo", Some(&token)).await;
    assert_eq!(me.json(), json!({"loggedIn": true, "username": "admin", "iss": "argocd"}));
    assert_eq!(get(&fake, "/api/v1/session/userinfo", None).await.json(), json!({}));
    assert_eq!(fake.requests(Endpoint::Session), 5);

    // Logout needs the content type too and answers {}.
    let out = send(
        &client(),
        &fake,
        Method::DELETE,
        "/api/v1/session",
        None,
        &[("content-type", "application/json")],
        None,
    )
    .await;
    assert_eq!((out.status, out.json()), (200, json!({})));
}

#[tokio::test]
async fn login_tokens_close_to_expiry_are_renewed() {
    let fake = FakeArgoCd::start(Options {
        users: vec![("admin".to_owned(), "pw".to_owned())],
        session_ttl: Duration::from_secs(60),
        ..Options::default()
    })
    .await;
    let ok = login(&fake, r#"{"username":"admin","password":"pw"}"#, "application/json").await;
    let token = ok.json()["token"].as_str().expect("token").to_owned();
    let r = get(&fake, "/api/v1/clusters", Some(&token)).await;
    let renewed = r.header("grpc-metadata-renew-token").expect("renewed").to_owned();
    assert_ne!(renewed, token);
    assert_eq!(get(&fake, "/api/v1/clusters", Some(&renewed)).await.status, 200);
    // API keys are never renewed.
    let key = jwt("argomap:apiKey", Some(now() + 60));
    fake.add_token(&key);
    let r = get(&fake, "/api/v1/clusters", Some(&key)).await;
    assert!(r.header("grpc-metadata-renew-token").is_none());
}

// ---------------------------------------------------------------------------------------
// Lists

#[tokio::test]
async fn clusters_list_synthesises_in_cluster_last() {
    let (fake, token) = rich_server("v3.5.1").await;
    let t = Some(token.as_str());
    let list = get(&fake, "/api/v1/clusters", t).await.json();
    assert_eq!(names(&list), ["prod-eu", "staging", "dev", "nocache", "", "edge-1", "in-cluster"]);
    let items = &list["items"];
    assert_eq!(items[1]["server"], "https://10.20.30.40:6443", "trailing / trimmed");
    assert_eq!(items[1]["connectionState"]["status"], "Failed");
    assert_eq!(items[3]["info"]["connectionState"]["attemptedAt"], Value::Null);
    assert_eq!(items[3]["info"]["applicationsCount"], 5, "as configured");
    assert_eq!(items[2]["info"]["applicationsCount"], 0, "present even when 0");
    assert_eq!(items[2]["project"], "team-a");
    let in_cluster = &items[6];
    assert_eq!(in_cluster["server"], "https://kubernetes.default.svc");
    assert_eq!(in_cluster["connectionState"]["status"], "Successful");
    // guestbook and team-a-api by server, cert-manager by name
    assert_eq!(in_cluster["info"]["applicationsCount"], 3);
    assert_eq!(list["metadata"], json!({}));

    fake.set_in_cluster_enabled(false);
    let list = get(&fake, "/api/v1/clusters", t).await.json();
    assert!(!names(&list).contains(&"in-cluster".to_owned()));

    // A real in-cluster secret is listed where it is, not duplicated; hidden when disabled.
    let mut clusters = vec![Cluster::new("https://kubernetes.default.svc", "local")];
    clusters.extend(common::rich_clusters());
    fake.set_clusters(clusters);
    let list = get(&fake, "/api/v1/clusters", t).await.json();
    assert_eq!(names(&list)[0], "prod-eu");
    fake.set_in_cluster_enabled(true);
    let list = get(&fake, "/api/v1/clusters", t).await.json();
    assert_eq!(names(&list).len(), 7);
    assert_eq!(names(&list)[0], "local");

    // Query filters: first match only; no match is a null list.
    let one = get(&fake, "/api/v1/clusters?server=https://dev.k8s.example.com", t).await;
    assert_eq!(names(&one.json()), ["dev"]);
    let one = get(&fake, "/api/v1/clusters?id.type=name&id.value=staging", t).await;
    assert_eq!(names(&one.json()), ["staging"]);
    let none = get(&fake, "/api/v1/clusters?name=nope", t).await;
    assert_eq!(none.json()["items"], Value::Null);
}

#[tokio::test]
async fn clusters_carry_secret_labels_and_agents_as_the_principal_registers_them() {
    let (fake, token) = rich_server("v3.6.1").await;
    let t = Some(token.as_str());
    let list = get(&fake, "/api/v1/clusters", t).await.json();
    let items = &list["items"];
    // Go writes map keys sorted; what toAPIResponse drops is gone.
    assert_eq!(
        items[0]["labels"],
        json!({"env": "prod", "multicluster.x-k8s.io/inventory-member-id": "prod-eu"})
    );
    assert_eq!(items[0]["annotations"], json!({"clusterprofile.x-k8s.io/origin": "fleet/prod-eu"}));
    assert!(items[1].get("labels").is_none() && items[1].get("annotations").is_none(), "omitempty");

    let agent = &items[5];
    let server = format!("{}?agentName=edge-1", common::RESOURCE_PROXY);
    assert_eq!(agent["server"], server.as_str());
    assert_eq!(agent["name"], "edge-1");
    assert_eq!(agent["labels"], json!({"argocd-agent.argoproj-labs.io/agent-name": "edge-1"}));
    assert_eq!(agent["annotations"], json!({"argocd.argoproj.io/skip-reconcile": "true"}));
    let state = &agent["info"]["connectionState"];
    assert_eq!(state["status"], "Successful");
    assert_eq!(state["message"], "Agent: 'edge-1' is connected with principal");
    assert!(state["attemptedAt"].is_string());
    assert_eq!(agent["connectionState"], *state, "the deprecated copy");
    // The principal's cache entry holds the connection only.
    assert_eq!(agent["info"]["cacheInfo"], json!({}));
    assert!(agent["info"].get("apiVersions").is_none() && agent.get("serverVersion").is_none());

    assert!(fake.update_cluster(&server, |c| *c = c.clone().with_agent_connected(false)));
    let list = get(&fake, "/api/v1/clusters", t).await.json();
    let state = &list["items"][5]["info"]["connectionState"];
    assert_eq!(state["status"], "Failed");
    assert_eq!(state["message"], "Agent: 'edge-1' is disconnected with principal");

    // A message of one's own replaces the fake's, except without a cache entry.
    for server in ["https://dev.k8s.example.com", "https://nocache.example.com"] {
        assert!(fake.update_cluster(server, |c| c.connection_message = Some("said by the cache".to_owned())));
    }
    assert!(!fake.update_cluster("https://nowhere.example.com", |_| {}));
    let list = get(&fake, "/api/v1/clusters", t).await.json();
    assert_eq!(list["items"][2]["info"]["connectionState"]["message"], "said by the cache");
    assert_eq!(list["items"][3]["info"]["connectionState"]["message"], "");
}

#[tokio::test]
async fn applications_are_sorted_and_filtered() {
    let (fake, token) = rich_server("v3.5.1").await;
    let t = Some(token.as_str());
    let list = get(&fake, "/api/v1/applications", t).await.json();
    assert_eq!(
        names(&list),
        [
            "cert-manager",
            "fresh",
            "frontend-prod",
            "frontend-staging",
            "guestbook",
            "orphan",
            "payments-prod",
            "team-a-api"
        ]
    );
    let items = &list["items"];
    assert!(list["metadata"]["resourceVersion"].is_string());
    let cert_manager = &items[0];
    assert_eq!(
        cert_manager["spec"]["destination"],
        json!({"namespace": "cert-manager", "name": "in-cluster"})
    );
    let payments = &items[6];
    assert!(payments["spec"].get("source").is_none());
    assert_eq!(payments["spec"]["sources"].as_array().map(Vec::len), Some(2));
    assert_eq!(payments["status"]["sync"]["comparedTo"]["source"], json!({"repoURL": ""}));
    assert_eq!(items[7]["metadata"]["namespace"], "team-a");
    let fresh = &items[1];
    assert_eq!(fresh["spec"]["project"], "");
    assert_eq!(fresh["status"]["sync"]["status"], "");
    assert_eq!(fresh["status"]["health"], json!({}));

    let by_ns = get(&fake, "/api/v1/applications?appNamespace=team-a", t).await;
    assert_eq!(names(&by_ns.json()), ["team-a-api"]);
    // An empty project counts as "default".
    let by_project = get(&fake, "/api/v1/applications?projects=default&projects=payments", t).await;
    assert_eq!(
        names(&by_project.json()),
        ["fresh", "frontend-prod", "frontend-staging", "guestbook", "orphan", "payments-prod"]
    );
    // The legacy `project` parameter wins over `projects`.
    let legacy = get(&fake, "/api/v1/applications?projects=default&project=team-a", t).await;
    assert_eq!(names(&legacy.json()), ["team-a-api"]);
    let by_name = get(&fake, "/api/v1/applications?name=guestbook", t).await;
    assert_eq!(names(&by_name.json()), ["guestbook"]);
    // Unknown parameters are ignored.
    let all = get(&fake, "/api/v1/applications?limit=1&page=2", t).await;
    assert_eq!(names(&all.json()).len(), 8);

    // A new data set bumps the list resourceVersion.
    let before = list["metadata"]["resourceVersion"].clone();
    fake.set_applications(vec![App::to_server("x", "https://y")]);
    let after = get(&fake, "/api/v1/applications", t).await.json();
    assert_ne!(after["metadata"]["resourceVersion"], before);
}

#[tokio::test]
async fn fields_semantics_follow_the_server_version() {
    let dest = "fields=items.metadata.name,items.spec.destination";
    let portable = "fields=items.metadata.name,items.spec";

    // 2.6 .. 3.4: spec sub-keys are unknown, only `items.spec` works.
    let (old, token) = rich_server("v3.4.2").await;
    let r = get(&old, &format!("/api/v1/applications?{dest}"), Some(&token)).await.json();
    assert_eq!(r["items"][0], json!({"metadata": {"name": "cert-manager"}}));
    assert!(r["metadata"]["resourceVersion"].is_string(), "list metadata always kept");
    let r = get(&old, &format!("/api/v1/applications?{portable}"), Some(&token)).await.json();
    assert_eq!(r["items"][0]["spec"]["destination"]["name"], "in-cluster");

    // 3.5: spec sub-keys work; a key with its parent fails.
    let (v35, token) = rich_server("v3.5.1+109ca7c").await;
    let r = get(&v35, &format!("/api/v1/applications?{dest}"), Some(&token)).await.json();
    assert_eq!(
        r["items"][0],
        json!({"metadata": {"name": "cert-manager"},
               "spec": {"destination": {"namespace": "cert-manager", "name": "in-cluster"}}})
    );
    let r = get(&v35, "/api/v1/applications?fields=items.spec,items.spec.destination", Some(&token)).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.body, r#"{"error": "failed to marshal error message"}"#);
    // Exclusion, unknown keys.
    let r = get(&v35, "/api/v1/applications?fields=-items.spec,items.status", Some(&token)).await.json();
    let item = &r["items"][0];
    assert!(item["spec"].get("destination").is_some(), "sub-keys still included");
    assert!(item["metadata"].get("uid").is_none(), "uid is not in the allow-list");
    assert_eq!(item["metadata"]["labels"], Value::Null, "typed nil is written");
    let r = get(&v35, "/api/v1/applications?fields=items.nope", Some(&token)).await.json();
    assert_eq!(r["items"][0], json!({}));

    // master: ancestors cover descendants; streamed framing.
    let (master, token) = rich_server("v3.6.0").await;
    let r = get(&master, "/api/v1/applications?fields=items.spec,items.spec.destination", Some(&token)).await;
    assert_eq!(r.status, 200);
    assert!(r.body.starts_with("{\"metadata\":{\"resourceVersion\":"));
    assert!(r.body.contains("}\n,\"items\":["));
    assert_eq!(r.json()["items"][0]["spec"]["project"], "platform");
}

#[tokio::test]
async fn health_and_sync_are_projected_by_the_allow_list() {
    // argomap's projections with `spec.applications.health`.
    let narrow = "items.metadata.name,items.metadata.namespace,items.spec.destination,items.status.sync.status,items.status.health";
    let portable = "items.metadata.name,items.metadata.namespace,items.spec,items.status.sync.status,items.status.health";
    for (version, fields) in [("v3.6.1", narrow), ("v3.5.1", narrow), ("v3.4.2", portable)] {
        let (fake, token) = rich_server(version).await;
        let t = Some(token.as_str());
        let r = get(&fake, &format!("/api/v1/applications?fields={fields}"), t).await;
        assert_eq!(r.status, 200, "{version}: {}", r.body);
        let list = r.json();
        let frontend = &list["items"][2];
        assert_eq!(frontend["metadata"]["name"], "frontend-prod");
        // `status.health` is whole in the allow-list, `status.sync` is not.
        let status = frontend["status"].as_object().expect("status projected");
        assert_eq!(status.keys().collect::<Vec<_>>(), ["health", "sync"], "{version}");
        assert_eq!(status["sync"], json!({"status": "OutOfSync"}), "{version}");
        let health = &status["health"];
        assert_eq!(health["status"], "Degraded");
        assert_eq!(health["message"], "Deployment \"frontend\" exceeded its progress deadline");
        assert!(health["lastTransitionTime"].is_string());
        assert_eq!(frontend["spec"]["destination"]["server"], "https://prod-eu.example.com", "{version}");
        // Never reconciled: an empty sync status and an empty health.
        assert_eq!(list["items"][1]["status"], json!({"health": {}, "sync": {"status": ""}}), "{version}");

        // A change through the control API shows in the next list.
        assert!(fake.set_application_status("argocd", "frontend-prod", "Synced", "Healthy", ""));
        assert!(!fake.set_application_status("argocd", "no-such-app", "Synced", "Healthy", ""));
        let list = get(&fake, &format!("/api/v1/applications?fields={fields}"), t).await.json();
        let health = &list["items"][2]["status"]["health"];
        assert_eq!(health["status"], "Healthy", "{version}");
        assert!(health.get("message").is_none(), "{version}");
        assert_eq!(list["items"][2]["status"]["sync"]["status"], "Synced");
    }
    // `status.health.status` is no allow-list key: ignored from v2.6 on, a plain path before.
    let (v36, token) = rich_server("v3.6.1").await;
    let fields = "fields=items.metadata.name,items.status.health.status";
    let r = get(&v36, &format!("/api/v1/applications?{fields}"), Some(&token)).await.json();
    assert_eq!(r["items"][2], json!({"metadata": {"name": "frontend-prod"}}));
    let (v25, token) = rich_server("v2.5.0").await;
    let r = get(&v25, &format!("/api/v1/applications?{fields}"), Some(&token)).await.json();
    assert_eq!(
        r["items"][2],
        json!({"metadata": {"name": "frontend-prod"}, "status": {"health": {"status": "Degraded"}}})
    );
}

#[tokio::test]
async fn can_i_answers_the_configured_value() {
    let (fake, token) = rich_server("v3.5.1").await;
    let t = Some(token.as_str());
    let path = "/api/v1/account/can-i/clusters/get/*";
    assert_eq!(get(&fake, path, t).await.json(), json!({"value": "yes"}));
    fake.set_can_i(false);
    assert_eq!(get(&fake, path, t).await.json(), json!({"value": "no"}));
    let nested = get(&fake, "/api/v1/account/can-i/applications/get/default/argocd/x", t).await;
    assert_eq!(nested.json(), json!({"value": "no"}));
    assert_eq!(get(&fake, path, None).await.status, 401);
    let bad = get(&fake, "/api/v1/account/can-i/clusters/peek/*", t).await;
    assert_error(
        &bad,
        400,
        3,
        "[get create update delete sync rollback override action invoke] does not contain peek",
    );
    assert_eq!(fake.requests(Endpoint::CanI), 5);
}

// ---------------------------------------------------------------------------------------
// Routing

#[tokio::test]
async fn unknown_paths_and_methods() {
    let (fake, token) = rich_server("v3.5.1").await;
    let t = Some(token.as_str());
    let r = get(&fake, "/api/v1/nothing", t).await;
    assert_eq!((r.status, r.body.as_str()), (404, "Not Found\n"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    let r = send(
        &client(),
        &fake,
        Method::PUT,
        "/api/version",
        t,
        &[("content-type", "application/json")],
        Some("{}"),
    )
    .await;
    assert_eq!((r.status, r.body.as_str()), (405, "Method Not Allowed\n"));
    assert_eq!(fake.requests(Endpoint::Other), 1);

    // UI: a browser gets index.html, an API client Go's FileServer 404.
    let html = send(
        &client(),
        &fake,
        Method::GET,
        "/applications",
        None,
        &[("accept", "text/html,application/xhtml+xml")],
        None,
    )
    .await;
    assert_eq!(html.status, 200);
    assert_eq!(html.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(html.body.contains("<title>Argo CD</title>"));
    let json_client = send(
        &client(),
        &fake,
        Method::GET,
        "/wrong/api/v1/clusters",
        t,
        &[("accept", "application/json")],
        None,
    )
    .await;
    assert_eq!((json_client.status, json_client.body.as_str()), (404, "404 page not found\n"));
    assert_eq!(get(&fake, "/", None).await.status, 200);
}

#[tokio::test]
async fn root_path_prefixes_every_route() {
    let fake = FakeArgoCd::start(Options { root_path: "argocd/".to_owned(), ..Options::default() }).await;
    let url = fake.url();
    assert!(url.starts_with("http://127.0.0.1:") && url.ends_with("/argocd"), "{url}");
    let token = jwt("argomap:apiKey", None);
    fake.add_token(&token);
    assert_eq!(get(&fake, "/api/version", None).await.status, 200);
    assert_eq!(get(&fake, "/api/v1/clusters", Some(&token)).await.status, 200);
    let base = url.trim_end_matches("/argocd");
    let outside = client().get(format!("{base}/api/version")).send().await.expect("reachable");
    assert_eq!(outside.status(), 404);
    assert_eq!(outside.text().await.expect("body"), "404 page not found\n");
    let page = get(&fake, "/", None).await;
    assert!(page.body.contains("<base href=\"/argocd/\">"));
    assert_eq!(fake.requests(Endpoint::Version), 1);
    assert_eq!(fake.requests(Endpoint::Other), 2);
}

#[tokio::test]
async fn tls_uses_a_self_signed_certificate() {
    let fake = FakeArgoCd::start(Options { tls: true, ..Options::default() }).await;
    assert!(fake.url().starts_with("https://127.0.0.1:"));
    let pem = fake.ca_pem().expect("PEM when tls");
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    let trusted = client_with(true, Some(&pem));
    let r = trusted
        .get(format!("{}/api/version", fake.url()))
        .send()
        .await
        .expect("TLS handshake with the fake's CA");
    assert_eq!(r.status(), 200);
    let localhost = fake.url().replace("127.0.0.1", "localhost");
    let r = trusted.get(format!("{localhost}/api/version")).send().await;
    assert!(r.is_ok(), "certificate also names localhost: {r:?}");
    // Without trusting it the handshake fails.
    let untrusted = client_with(true, None);
    assert!(untrusted.get(format!("{}/api/version", fake.url())).send().await.is_err());
    assert!(FakeArgoCd::start(Options::default()).await.ca_pem().is_none());
}

#[tokio::test]
async fn dropping_the_fake_stops_it() {
    let fake = FakeArgoCd::start(Options::default()).await;
    let url = format!("{}/api/version", fake.url());
    let c = client();
    assert!(c.get(&url).send().await.is_ok());
    drop(fake);
    // The server task ends asynchronously: poll (fresh clients, no pooled connection) until a
    // deadline instead of sleeping a fixed time.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while client().get(&url).send().await.is_ok() {
        assert!(std::time::Instant::now() < deadline, "still answering 5 s after drop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------
// Compression and bookkeeping

#[tokio::test]
async fn gzip_when_asked_and_vary_always() {
    let (fake, token) = rich_server("v3.5.1").await;
    let raw = client_with(false, None);
    let zipped = raw
        .get(format!("{}/api/v1/applications", fake.url()))
        .bearer_auth(&token)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("reachable");
    assert_eq!(zipped.headers()["content-encoding"], "gzip");
    assert_eq!(zipped.headers()["vary"], "Accept-Encoding");
    let bytes = zipped.bytes().await.expect("body");
    assert_eq!(&bytes[..2], &[0x1f, 0x8b], "gzip magic");
    // Even tiny bodies are compressed (gorilla has no minimum size).
    let small = raw
        .get(format!("{}/api/version", fake.url()))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("reachable");
    assert_eq!(small.headers()["content-encoding"], "gzip");

    let plain = get(&fake, "/api/v1/clusters", Some(&token)).await;
    assert_eq!(plain.header("vary"), Some("Accept-Encoding"));
    let identity = raw
        .get(format!("{}/api/v1/clusters", fake.url()))
        .bearer_auth(&token)
        .send()
        .await
        .expect("reachable");
    assert!(identity.headers().get("content-encoding").is_none());
    assert_eq!(identity.headers()["vary"], "Accept-Encoding");

    // reqwest's own gzip support decodes it transparently.
    let decoded = get(&fake, "/api/v1/applications", Some(&token)).await;
    assert_eq!(names(&decoded.json()).len(), 8);
    let sent = fake.last_header(Endpoint::Applications, "Accept-Encoding");
    assert!(sent.is_some_and(|v| v.contains("gzip")));
}

#[tokio::test]
async fn requests_queries_and_headers_are_recorded() {
    let (fake, token) = rich_server("v3.5.1").await;
    assert_eq!(fake.requests(Endpoint::Applications), 0);
    assert_eq!(fake.last_query(Endpoint::Applications), None);
    get(&fake, "/api/v1/applications?fields=items.metadata.name&projects=a%20b", Some(&token)).await;
    get(&fake, "/api/v1/applications", None).await; // 401s count too
    get(&fake, "/api/v1/clusters", Some(&token)).await;
    assert_eq!(fake.requests(Endpoint::Applications), 2);
    assert_eq!(fake.requests(Endpoint::Clusters), 1);
    assert_eq!(fake.requests(Endpoint::Version), 0);
    assert_eq!(fake.last_query(Endpoint::Applications), None, "last one had no query");
    assert_eq!(fake.last_header(Endpoint::Applications, "authorization"), None);
    assert_eq!(fake.last_header(Endpoint::Clusters, "Authorization"), Some(format!("Bearer {token}")));
    get(&fake, "/api/v1/applications?fields=items.metadata.name&projects=a%20b", Some(&token)).await;
    assert_eq!(
        fake.last_query(Endpoint::Applications).as_deref(),
        Some("fields=items.metadata.name&projects=a%20b")
    );
    let q = "fields=items.metadata.name&projects=a%20b";
    assert_eq!(fake.queries(Endpoint::Applications), [q, "", q], "every query, oldest first");
    assert_eq!(fake.queries(Endpoint::Version), Vec::<String>::new());
    for n in 0..fake_argocd::RECORDED_QUERIES {
        get(&fake, &format!("/api/v1/clusters?name=c{n}"), Some(&token)).await;
    }
    let kept = fake.queries(Endpoint::Clusters);
    assert_eq!(kept.len(), fake_argocd::RECORDED_QUERIES, "bounded");
    assert_eq!(kept[0], "name=c0");
}

// ---------------------------------------------------------------------------------------
// Faults

#[tokio::test]
async fn status_and_auth_faults() {
    let (fake, token) = rich_server("v3.5.1").await;
    let t = Some(token.as_str());
    fake.set_fault(Some(Fault::Status(503)));
    let r = get(&fake, "/api/v1/clusters", t).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["code"], 14);
    // /api/version is exempt; the session endpoints are not.
    assert_eq!(get(&fake, "/api/version", None).await.status, 200);
    assert_eq!(get(&fake, "/api/v1/session/userinfo", t).await.status, 503);
    for (status, code) in [(500, 2), (504, 4), (429, 8), (502, 2), (400, 3), (404, 5)] {
        fake.set_fault(Some(Fault::Status(status)));
        let r = get(&fake, "/api/v1/applications", t).await;
        assert_eq!((r.status, r.json()["code"].as_i64()), (status, Some(code)));
    }
    fake.set_fault(Some(Fault::Unauthenticated));
    assert_error(&get(&fake, "/api/v1/clusters", t).await, 401, 16, "no session information");
    fake.set_fault(Some(Fault::TokenExpired));
    assert_error(
        &get(&fake, "/api/v1/clusters", t).await,
        401,
        16,
        "invalid session: token has invalid claims: token is expired",
    );
    fake.set_fault(Some(Fault::PermissionDenied));
    assert_error(&get(&fake, "/api/v1/applications", t).await, 403, 7, "permission denied");
    fake.set_fault(None);
    assert_eq!(get(&fake, "/api/v1/clusters", t).await.status, 200);
    assert_eq!(fake.requests(Endpoint::Clusters), 4, "faulted requests are counted");
}

#[tokio::test]
async fn body_faults() {
    let (fake, token) = rich_server("v3.5.1").await;
    let t = Some(token.as_str());
    fake.set_fault(Some(Fault::HtmlOk));
    let r = get(&fake, "/api/v1/clusters", t).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(r.body.starts_with("<!DOCTYPE html>"));

    fake.set_fault(Some(Fault::MalformedJson));
    let r = get(&fake, "/api/v1/applications", t).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(serde_json::from_str::<Value>(&r.body).is_err());

    fake.set_fault(Some(Fault::Oversized(3_000_000)));
    let r = get(&fake, "/api/v1/applications", t).await;
    assert_eq!(r.status, 200);
    assert!(r.body.len() >= 3_000_000, "{}", r.body.len());
    assert!(r.header("content-length").is_none(), "streamed");
    let list = r.json();
    assert!(list["items"][0]["spec"]["destination"]["server"].is_string());
    let r = get(&fake, "/api/v1/clusters", t).await;
    assert!(r.json()["items"][0]["info"]["applicationsCount"].is_i64());
}

#[tokio::test]
async fn latency_delays_the_answer() {
    let (fake, token) = rich_server("v3.5.1").await;
    fake.set_fault(Some(Fault::Latency(Duration::from_millis(300))));
    let start = Instant::now();
    let r = get(&fake, "/api/v1/clusters", Some(&token)).await;
    assert_eq!(r.status, 200);
    assert!(start.elapsed() >= Duration::from_millis(300));
    // A client timeout shorter than the latency fires.
    let quick = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([])
        .timeout(Duration::from_millis(100))
        .build()
        .expect("client");
    let err = quick.get(format!("{}/api/v1/clusters", fake.url())).send().await.expect_err("times out");
    assert!(err.is_timeout());
}

#[tokio::test]
async fn slow_drip_sends_headers_at_once_and_the_body_slowly() {
    let (fake, token) = rich_server("v3.5.1").await;
    let every = Duration::from_millis(20);
    fake.set_fault(Some(Fault::SlowDrip(every)));
    let start = Instant::now();
    let resp = client_with(true, None)
        .get(format!("{}/api/v1/account/can-i/clusters/get/*", fake.url()))
        .bearer_auth(&token)
        .send()
        .await
        .expect("headers arrive");
    let headers_after = start.elapsed();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("content-encoding").is_none(), "drips are not gzipped");
    let body = resp.text().await.expect("body");
    assert_eq!(body, r#"{"value":"yes"}"#);
    let total = start.elapsed();
    assert!(headers_after < every * 5, "headers took {headers_after:?}");
    assert!(total >= every * 15, "body took only {total:?}");
}
