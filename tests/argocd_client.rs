//! The Argo CD client against the fake Argo CD: every connection reason, the
//! projection per version, session handling and the request budget per check.

use std::time::Duration;

use argomap::argocd::{ArgoCdError, Client, ClientConfig, Credentials, Snapshot, TlsSettings};
use fake_argocd::{App, Cluster, Endpoint, FakeArgoCd, Fault, Options, jwt};
use secrecy::SecretString;

/// The status reason an error becomes (what users see).
fn reason(e: &ArgoCdError) -> &'static str {
    argomap::model::evaluate::reason_of(e).as_str()
}

fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn token_config(url: &str, token: &str) -> ClientConfig {
    let credentials = Credentials::Token(SecretString::from(token.to_string()));
    ClientConfig::new(url, credentials, Duration::from_secs(2)).with_max_response_bytes(1024 * 1024)
}

async fn fake_with_data(opts: Options) -> (FakeArgoCd, String) {
    init();
    let argocd = FakeArgoCd::start(opts).await;
    let token = jwt("argomap:apiKey", None);
    argocd.add_token(&token);
    argocd.set_clusters(vec![Cluster::new("https://10.0.0.1:6443", "prod-eks").with_status("Successful")]);
    argocd.set_applications(vec![
        App::to_server("guestbook", "https://kubernetes.default.svc"),
        App::to_name("cert-manager", "in-cluster"),
        App::to_server("api", "https://10.0.0.1:6443/").in_namespace("team-a"),
        App::to_server("payments", "https://10.0.0.1:6443").as_multi_source(),
    ]);
    (argocd, token)
}

async fn snapshot(config: ClientConfig) -> Result<Snapshot, ArgoCdError> {
    Client::new(config)?.snapshot(&()).await
}

#[tokio::test]
async fn a_check_reads_clusters_and_projected_applications() {
    let (argocd, token) = fake_with_data(Options::default()).await;
    let client = Client::new(token_config(&argocd.url(), &token)).expect("client");
    let s = client.snapshot(&()).await.expect("snapshot");
    assert_eq!(s.version.as_deref(), Some("v3.6.1"));
    let servers: Vec<_> = s.clusters.iter().filter_map(|c| c.server.clone()).collect();
    assert_eq!(
        servers,
        vec!["https://10.0.0.1:6443", "https://kubernetes.default.svc"],
        "in-cluster synthesised last"
    );
    assert_eq!(s.applications.total, 4);
    assert_eq!(s.applications.unaddressed, 0, "the projection keeps destinations");

    let query = argocd.last_query(Endpoint::Applications).expect("query");
    assert!(query.contains("items.spec.destination"), "{query}");
    assert!(
        !query.contains("items.spec%2C") && !query.ends_with("items.spec"),
        "never a key with its parent: {query}"
    );
    let enc = argocd.last_header(Endpoint::Applications, "accept-encoding").unwrap_or_default();
    assert!(enc.contains("gzip"), "{enc}");
    assert_eq!(argocd.last_header(Endpoint::Clusters, "authorization"), Some(format!("Bearer {token}")));

    // A second check: two list requests, the version is not asked again, nobody logs in.
    client.snapshot(&()).await.expect("second snapshot");
    assert_eq!(argocd.requests(Endpoint::Version), 1);
    assert_eq!(argocd.requests(Endpoint::Clusters), 2);
    assert_eq!(argocd.requests(Endpoint::Applications), 2);
    assert_eq!(argocd.requests(Endpoint::Session), 0);
    assert_eq!(argocd.requests(Endpoint::CanI), 0);
}

#[tokio::test]
async fn older_servers_get_the_portable_projection() {
    let (argocd, token) =
        fake_with_data(Options { version: "v3.4.2+abcdef0".into(), ..Default::default() }).await;
    let s = snapshot(token_config(&argocd.url(), &token)).await.expect("snapshot");
    let query = argocd.last_query(Endpoint::Applications).expect("query");
    assert!(query.ends_with("items.spec"), "{query}");
    assert_eq!((s.applications.total, s.applications.unaddressed), (4, 0), "destinations kept");
}

#[tokio::test]
async fn root_path_prefix_and_wrong_base_url() {
    let (argocd, token) = fake_with_data(Options { root_path: "/argocd".into(), ..Default::default() }).await;
    snapshot(token_config(&argocd.url(), &token)).await.expect("with the root path");
    let without = argocd.url().trim_end_matches("/argocd").to_string();
    let err = snapshot(token_config(&without, &token)).await.expect_err("without the root path");
    assert_eq!(reason(&err), "InvalidResponse", "{err}");
}

#[tokio::test]
async fn html_at_a_wrong_url_is_invalid_response() {
    let (argocd, token) = fake_with_data(Options::default()).await;
    argocd.set_fault(Some(Fault::HtmlOk));
    let err = snapshot(token_config(&argocd.url(), &token)).await.expect_err("html");
    assert_eq!(reason(&err), "InvalidResponse");
    assert!(err.to_string().contains("not JSON"), "{err}");
}

#[tokio::test]
async fn a_server_that_answers_any_json_object_is_not_argo_cd() {
    init();
    // `{}` to every path: before, a check of it was "connected" with no destination.
    let app = axum::Router::new().fallback(|| async { axum::Json(serde_json::json!({})) });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let err = snapshot(token_config(&url, "a-token")).await.expect_err("not Argo CD");
    assert_eq!(reason(&err), "InvalidResponse");
    assert!(err.to_string().contains("no \"Version\"") && err.to_string().contains("spec.url"), "{err}");
}

#[tokio::test]
async fn every_failure_has_its_reason() {
    let (argocd, token) = fake_with_data(Options::default()).await;
    let cases = [
        (Fault::Unauthenticated, "AuthenticationFailed"),
        (Fault::TokenExpired, "AuthenticationFailed"),
        (Fault::PermissionDenied, "InsufficientPermissions"),
        (Fault::Status(503), "Unreachable"),
        (Fault::Status(500), "Unreachable"),
        (Fault::MalformedJson, "InvalidResponse"),
        (Fault::Oversized(4 * 1024 * 1024), "InvalidResponse"),
        (Fault::Latency(Duration::from_secs(5)), "Timeout"),
        (Fault::SlowDrip(Duration::from_millis(200)), "Timeout"),
    ];
    for (fault, want) in cases {
        argocd.set_fault(Some(fault.clone()));
        let err = snapshot(token_config(&argocd.url(), &token)).await.expect_err("fault");
        assert_eq!(reason(&err), want, "{fault:?}: {err}");
        assert!(!err.to_string().contains(&token), "the token leaked into {err}");
    }
    argocd.set_fault(Some(Fault::TokenExpired));
    let err = snapshot(token_config(&argocd.url(), &token)).await.expect_err("expired");
    assert!(err.to_string().contains("token is expired"), "{err}");
    argocd.set_fault(None);
    snapshot(token_config(&argocd.url(), &token)).await.expect("healthy again");
}

#[tokio::test]
async fn unknown_token_is_authentication_failed() {
    let (argocd, _) = fake_with_data(Options::default()).await;
    let err = snapshot(token_config(&argocd.url(), &jwt("someone:apiKey", None))).await.expect_err("unknown");
    assert_eq!(reason(&err), "AuthenticationFailed");
}

#[tokio::test]
async fn nothing_listening_is_unreachable() {
    init();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let err =
        snapshot(token_config(&format!("http://127.0.0.1:{port}"), "a.b.c")).await.expect_err("refused");
    assert_eq!(reason(&err), "Unreachable", "{err}");
    // A closed port reads as a filtered one: status tells no port scan what is open.
    let text = err.to_string();
    assert!(text.contains("no connection could be made"), "{text}");
    assert!(!text.to_lowercase().contains("refused") || text.contains("refused, reset"), "{text}");
    assert!(!text.contains("os error"), "{text}");
}

#[tokio::test]
async fn tls_verification_ca_server_name_and_insecure() {
    let (argocd, token) = fake_with_data(Options { tls: true, ..Default::default() }).await;
    let ca = argocd.ca_pem().expect("ca").into_bytes();
    let url = argocd.url();

    let err = snapshot(token_config(&url, &token)).await.expect_err("unknown CA");
    assert_eq!(reason(&err), "TLSError", "{err}");

    let mut with_ca = token_config(&url, &token);
    with_ca.tls = TlsSettings { ca_pem: Some(ca.clone()), ..Default::default() };
    snapshot(with_ca).await.expect("trusted CA");

    let mut named = token_config(&url, &token);
    named.tls =
        TlsSettings { ca_pem: Some(ca.clone()), server_name: Some("localhost".into()), ..Default::default() };
    snapshot(named).await.expect("certificate valid for localhost");

    let mut wrong = token_config(&url, &token);
    wrong.tls = TlsSettings {
        ca_pem: Some(ca),
        server_name: Some("argocd.example.com".into()),
        ..Default::default()
    };
    let err = snapshot(wrong).await.expect_err("wrong name");
    assert_eq!(reason(&err), "TLSError", "{err}");

    let mut insecure = token_config(&url, &token);
    insecure.tls = TlsSettings { insecure_skip_verify: true, ..Default::default() };
    snapshot(insecure).await.expect("insecure");

    let http = url.replacen("https://", "http://", 1);
    let err = snapshot(token_config(&http, &token)).await.expect_err("http to an https port");
    assert!(matches!(reason(&err), "Unreachable" | "InvalidResponse"), "{err}");
}

#[tokio::test]
async fn https_client_against_plain_http_is_a_tls_error() {
    let (argocd, token) = fake_with_data(Options::default()).await;
    let https = argocd.url().replacen("http://", "https://", 1);
    let err = snapshot(token_config(&https, &token)).await.expect_err("tls to http");
    assert_eq!(reason(&err), "TLSError", "{err}");
}

fn login_config(url: &str, password: &str) -> ClientConfig {
    ClientConfig {
        credentials: Credentials::Login {
            username: "argomap".into(),
            password: SecretString::from(password.to_string()),
        },
        ..token_config(url, "unused")
    }
}

#[tokio::test]
async fn login_once_then_again_only_on_401() {
    let (argocd, _) =
        fake_with_data(Options { users: vec![("argomap".into(), "s3cret".into())], ..Default::default() })
            .await;
    let client = Client::new(login_config(&argocd.url(), "s3cret")).expect("client");
    let s = client.snapshot(&()).await.expect("first");
    assert_eq!(s.credentials_expire_at, None, "sessions are renewed by argomap, not reported as expiring");
    client.snapshot(&()).await.expect("second");
    client.snapshot(&()).await.expect("third");
    assert_eq!(argocd.requests(Endpoint::Session), 1, "never a login per poll");

    argocd.revoke_tokens();
    client.snapshot(&()).await.expect("after revocation the client logs in again");
    assert_eq!(argocd.requests(Endpoint::Session), 2);
}

#[tokio::test]
async fn short_sessions_are_not_renewed_per_request() {
    let opts = Options {
        users: vec![("argomap".into(), "s3cret".into())],
        session_ttl: Duration::from_secs(60),
        ..Default::default()
    };
    let (argocd, _) = fake_with_data(opts).await;
    let client = Client::new(login_config(&argocd.url(), "s3cret")).expect("client");
    client.snapshot(&()).await.expect("first");
    client.snapshot(&()).await.expect("second");
    assert_eq!(argocd.requests(Endpoint::Session), 1, "a fresh 60 s JWT serves several requests");
}

#[tokio::test]
async fn wrong_password_is_authentication_failed_without_the_password() {
    let (argocd, _) =
        fake_with_data(Options { users: vec![("argomap".into(), "s3cret".into())], ..Default::default() })
            .await;
    let err = snapshot(login_config(&argocd.url(), "wrong-password")).await.expect_err("login");
    assert_eq!(reason(&err), "AuthenticationFailed");
    assert!(!err.to_string().contains("wrong-password"));
    assert!(err.to_string().contains("Invalid username or password"), "{err}");
}

#[tokio::test]
async fn token_expiry_is_read_from_the_jwt() {
    let (argocd, _) = fake_with_data(Options::default()).await;
    let exp = jiff::Timestamp::now().as_second() + 3 * 24 * 3600;
    let token = jwt("argomap:apiKey", Some(exp));
    argocd.add_token(&token);
    let s = snapshot(token_config(&argocd.url(), &token)).await.expect("snapshot");
    assert_eq!(s.credentials_expire_at.map(|t| t.as_second()), Some(exp));
}

#[tokio::test]
async fn hidden_clusters_ask_can_i() {
    let (argocd, token) = fake_with_data(Options::default()).await;
    argocd.set_clusters(vec![]);
    argocd.set_in_cluster_enabled(false);
    argocd.set_can_i(false);
    let s = snapshot(token_config(&argocd.url(), &token)).await.expect("snapshot");
    assert!(s.clusters.is_empty());
    assert_eq!(s.can_get_clusters, Some(false));
    assert_eq!(argocd.requests(Endpoint::CanI), 1);
    argocd.set_can_i(true);
    let s = snapshot(token_config(&argocd.url(), &token)).await.expect("snapshot");
    assert_eq!(s.can_get_clusters, Some(true));
}

// ---------------------------------------------------------------------------------------
// Redirects and reflection: credentials go only where they were meant to go.

/// Requests of every kind a fake has seen.
fn all_requests(argocd: &FakeArgoCd) -> u64 {
    [Endpoint::Version, Endpoint::Clusters, Endpoint::Applications, Endpoint::Session, Endpoint::CanI]
        .into_iter()
        .map(|e| argocd.requests(e))
        .sum()
}

#[tokio::test]
async fn a_redirect_to_another_origin_is_reported_not_followed() {
    let (argocd, token) = fake_with_data(Options::default()).await;
    let (elsewhere, _) = fake_with_data(Options::default()).await;
    elsewhere.add_token(&token);
    for status in [301, 302, 307, 308] {
        argocd.set_fault(Some(Fault::Redirect { status, location: elsewhere.url() }));
        let err = snapshot(token_config(&argocd.url(), &token)).await.expect_err("a redirect");
        assert_eq!(reason(&err), "InvalidResponse", "{err}");
        let text = err.to_string();
        assert!(
            text.contains(&format!("HTTP {status} redirecting to {}/api/v1/clusters", elsewhere.url())),
            "{text}"
        );
        assert!(text.contains(&format!("set spec.url to {}", elsewhere.url())), "{text}");
    }
    assert_eq!(all_requests(&elsewhere), 0, "the other origin never saw the token");
}

#[tokio::test]
async fn a_redirected_login_does_not_resend_the_password() {
    let opts = || Options { users: vec![("argomap".into(), "hunter2-secret".into())], ..Default::default() };
    let (argocd, _) = fake_with_data(opts()).await;
    let (elsewhere, _) = fake_with_data(opts()).await;
    argocd.set_fault(Some(Fault::Redirect { status: 307, location: elsewhere.url() }));
    let err = snapshot(login_config(&argocd.url(), "hunter2-secret")).await.expect_err("a redirect");
    assert_eq!(reason(&err), "InvalidResponse", "{err}");
    assert!(err.to_string().contains("/api/v1/session"), "{err}");
    assert_eq!(elsewhere.requests(Endpoint::Session), 0, "the password went nowhere else");
}

#[tokio::test]
async fn plain_http_to_a_tls_argocd_says_to_use_https() {
    // Argo CD without --insecure answers plain HTTP with 307 to the same URL over https.
    let (argocd, token) = fake_with_data(Options::default()).await;
    let https = argocd.url().replacen("http://", "https://", 1);
    argocd.set_fault(Some(Fault::Redirect { status: 307, location: https.clone() }));
    let err = snapshot(token_config(&argocd.url(), &token)).await.expect_err("a redirect");
    assert_eq!(reason(&err), "InvalidResponse", "not AuthenticationFailed: {err}");
    assert!(err.to_string().ends_with(&format!("set spec.url to {https}")), "{err}");
}

#[tokio::test]
async fn a_server_echoing_credentials_leaves_none_in_the_error() {
    let (argocd, token) = fake_with_data(Options::default()).await;
    argocd.set_fault(Some(Fault::Echo));
    let err = snapshot(token_config(&argocd.url(), &token)).await.expect_err("echo");
    let text = format!("{err} {err:?}");
    assert!(!text.contains(&token), "{text}");
    assert!(text.contains("Bearer [redacted]"), "the echo is there, redacted: {text}");

    let password = r#"s3cr"et\pw"#;
    let (argocd, _) =
        fake_with_data(Options { users: vec![("argomap".into(), password.into())], ..Default::default() })
            .await;
    argocd.set_fault(Some(Fault::Echo));
    let err = snapshot(login_config(&argocd.url(), password)).await.expect_err("echo");
    let text = format!("{err} {err:?}");
    assert!(!text.contains("s3cr"), "neither raw nor JSON-escaped: {text}");
    assert!(text.contains("[redacted]"), "{text}");
}

#[tokio::test]
async fn can_i_is_asked_only_for_an_empty_list_or_a_destination_the_list_lacks() {
    let (argocd, token) = fake_with_data(Options::default()).await;
    let s = snapshot(token_config(&argocd.url(), &token)).await.expect("snapshot");
    assert_eq!((s.can_get_clusters, s.can_get_applications), (None, None));
    assert_eq!(argocd.requests(Endpoint::CanI), 0, "every destination listed: two list calls only");
    argocd.set_applications(vec![App::to_server("web", "https://hidden.example.com")]);
    argocd.set_can_i(false);
    let s = snapshot(token_config(&argocd.url(), &token)).await.expect("snapshot");
    assert_eq!((s.can_get_clusters, s.can_get_applications), (Some(false), None));
    argocd.set_applications(vec![]);
    let s = snapshot(token_config(&argocd.url(), &token)).await.expect("snapshot");
    assert_eq!((s.can_get_clusters, s.can_get_applications), (None, Some(false)));
    assert_eq!(argocd.requests(Endpoint::CanI), 2);
}

// ---------------------------------------------------------------------------------------
// The same assertions as the real-Argo-CD suite (tests/argocd_real), on the fake.

use argomap_test_support::argocd_answers as answers;

/// The `jti` claim of a JWT the test minted.
fn jti(token: &str) -> String {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("base64");
    let claims: serde_json::Value = serde_json::from_slice(&bytes).expect("claims");
    claims["jti"].as_str().expect("jti").to_string()
}

#[tokio::test]
async fn the_fake_answers_what_the_real_server_answers() {
    let (argocd, token) = fake_with_data(Options::default()).await;
    let url = argocd.url();
    answers::assert_version(&url, "v3.6.1").await;
    answers::assert_wrong_base_url_is_plain_404(&url, &token).await;
    answers::assert_list_order(&url, &token).await;

    let err = snapshot(token_config(&format!("{url}/wrong"), &token)).await.expect_err("wrong base URL");
    assert_eq!(err.to_string(), answers::WRONG_BASE_URL);
    let err = snapshot(token_config(&url, "not-a-jwt")).await.expect_err("garbage");
    assert_eq!(err.to_string(), answers::NO_SESSION);
    let expired = jwt("argomap:apiKey", Some(1));
    argocd.add_token(&expired);
    let err = snapshot(token_config(&url, &expired)).await.expect_err("expired");
    assert_eq!(err.to_string(), answers::EXPIRED);
    argocd.revoke_tokens();
    let err = snapshot(token_config(&url, &token)).await.expect_err("revoked");
    assert_eq!(err.to_string(), answers::revoked("argomap", &jti(&token)));

    // Nothing visible: `items` is null, as Argo CD's RBAC-filtered lists are.
    let empty = FakeArgoCd::start(Options::default()).await;
    let t = jwt("argomap:apiKey", None);
    empty.add_token(&t);
    empty.set_in_cluster_enabled(false);
    answers::assert_filtered_list_is_null(&format!("{}/api/v1/clusters", empty.url()), &t).await;
}
