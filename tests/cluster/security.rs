//! Security on the real control plane: argomap uses only the Secrets meant for it, sends
//! credentials only to the URL they were given for, and never lets a server's echo of them
//! into status, Events or its log.

use std::time::Duration;

use argomap::crd::ArgoCdInstance;
use fake_argocd::{Endpoint, FakeArgoCd, Fault};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use crate::common::*;

const CHECK: Duration = Duration::from_secs(20);

fn message(i: &ArgoCdInstance) -> String {
    i.status.as_ref().and_then(|s| s.connection.as_ref()).map(|c| c.message.clone()).unwrap_or_default()
}

fn all_requests(argocd: &FakeArgoCd) -> u64 {
    [Endpoint::Version, Endpoint::Clusters, Endpoint::Applications, Endpoint::Session, Endpoint::CanI]
        .into_iter()
        .map(|e| argocd.requests(e))
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_without_the_opt_in_label_is_never_sent() {
    let client = client().await;
    let ns = namespace(&client, "sec-optin").await;
    let (argocd, token) = fake().await;
    // Someone who may create instances names a Secret that was not made for argomap.
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "argocd-readonly"},
        "stringData": {"token": token}
    }))
    .expect("secret");
    let secrets = Api::<Secret>::namespaced(client.clone(), &ns);
    secrets.create(&PostParams::default(), &secret).await.expect("create secret");
    create_instance(&client, &ns, instance_json("prod", &argocd.url(), "60s")).await;
    let op = Operator::start(&ns);

    let i = instance_where(&client, &ns, "prod", CHECK, "CredentialsNotOptedIn", |i| {
        reason(i).as_deref() == Some("CredentialsNotOptedIn")
    })
    .await;
    assert!(
        message(&i).contains("kubectl label secret argocd-readonly -n")
            && message(&i).contains("argomap.io/credentials=true"),
        "says how to opt in: {}",
        message(&i)
    );
    let ready =
        i.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready")).expect("Ready");
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "CredentialsNotOptedIn"));
    assert_eq!(all_requests(&argocd), 0, "the value was sent nowhere");
    // argomap's Secret cache does not even hold it: the read API, which takes credentials_id
    // from that cache, leaves the instance out (it has no known credentials Secret).
    let read_api = format!(
        "{}/organization/{}/argoCdDestinationClusterMapping",
        op.http,
        argomap_test_support::fixtures::ORG
    );
    assert_eq!(read_api_results(&client, &read_api).await, 0, "an unlabelled Secret is in argomap's cache");

    // Opting in is picked up by the label-selected watch: checked at once, no restart.
    let label = json!({"metadata": {"labels": {"argomap.io/credentials": "true"}}});
    secrets.patch("argocd-readonly", &PatchParams::default(), &Patch::Merge(&label)).await.expect("label");
    instance_where(&client, &ns, "prod", CHECK, "connected once labelled", connected).await;
    eventually(CHECK, "the labelled Secret is known to the read API", || async {
        match read_api_results(&client, &read_api).await {
            1 => Ok(()),
            n => Err(format!("{n} entries")),
        }
    })
    .await;
}

/// Entries of a read-API answer, asked by a reader of every namespace.
async fn read_api_results(client: &Client, url: &str) -> usize {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let text = reqwest::Client::new()
        .get(url)
        .bearer_auth(reader_token(client).await)
        .send()
        .await
        .expect("GET read API")
        .text()
        .await
        .expect("body");
    let body: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    body["results"].as_array().map(Vec::len).unwrap_or_else(|| panic!("no results: {body}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redirect_is_reported_and_the_token_goes_nowhere_else() {
    let s = setup("sec-redirect", &[], "60s").await;
    let (elsewhere, _) = fake().await;
    elsewhere.add_token(&s.token);
    s.argocd.set_fault(Some(Fault::Redirect { status: 302, location: elsewhere.url() }));
    let _op = Operator::start(&s.ns);
    let i = instance_where(&s.client, &s.ns, "prod", CHECK, "InvalidResponse", |i| {
        reason(i).as_deref() == Some("InvalidResponse")
    })
    .await;
    let m = message(&i);
    assert!(m.contains(&format!("HTTP 302 redirecting to {}/api/v1/clusters", elsewhere.url())), "{m}");
    assert!(m.contains(&format!("set spec.url to {}", elsewhere.url())), "{m}");
    assert_eq!(all_requests(&elsewhere), 0, "not followed: the other server saw no token");
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_a_server_echoes_appear_in_no_status_event_or_log() {
    let s = setup("sec-echo", &[], "60s").await;
    s.argocd.set_fault(Some(Fault::Echo));
    let op = Operator::start(&s.ns);
    let i = instance_where(&s.client, &s.ns, "prod", CHECK, "AuthenticationFailed", |i| {
        reason(i).as_deref() == Some("AuthenticationFailed")
    })
    .await;
    let m = message(&i);
    assert!(m.contains("Bearer [redacted]"), "the echo arrived, redacted: {m}");
    let status = serde_json::to_string(&i.status).expect("status json");
    assert!(!status.contains(&s.token), "token in status: {status}");

    let events = Api::<Event>::namespaced(s.client.clone(), &s.ns);
    let notes = eventually(CHECK, "a ConnectionFailed event", || async {
        let list = events.list(&ListParams::default()).await.map_err(|e| e.to_string())?;
        let notes: Vec<String> = list.items.iter().filter_map(|e| e.note.clone()).collect();
        if list.items.iter().any(|e| e.reason.as_deref() == Some("ConnectionFailed")) {
            Ok(notes)
        } else {
            Err(format!("{notes:?}"))
        }
    })
    .await;
    assert!(notes.iter().all(|n| !n.contains(&s.token)), "token in an event: {notes:?}");
    assert!(notes.iter().any(|n| n.contains("[redacted]")), "{notes:?}");

    let log = std::fs::read_to_string(&op.log).expect("operator log");
    assert!(log.contains("Bearer [redacted]"), "the failure is logged");
    assert!(!log.contains(&s.token), "token in the operator log");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refresh_annotation_rewritten_every_200_ms_checks_every_5_s_at_most() {
    use argomap::crd::REFRESH_ANNOTATION;
    let client = client().await;
    let ns = namespace(&client, "sec-refresh").await;
    let (argocd, token) = fake().await;
    token_secret(&client, &ns, "argocd-readonly", &token).await;
    create_instance(&client, &ns, instance_json("prod", &argocd.url(), "60s")).await;
    let _op = Operator::start(&ns);
    instance_where(&client, &ns, "prod", CHECK, "connected", connected).await;
    let before = argocd.requests(Endpoint::Clusters);
    let api = Api::<ArgoCdInstance>::namespaced(client.clone(), &ns);
    // 15 s of a new value every 200 ms (75 refreshes): a check, and a status write, each.
    let started = std::time::Instant::now();
    let mut n = 0;
    while started.elapsed() < Duration::from_secs(15) {
        let refresh = json!({"metadata": {"annotations": {REFRESH_ANNOTATION: format!("r-{n}")}}});
        api.patch("prod", &PatchParams::default(), &Patch::Merge(&refresh)).await.expect("annotate");
        n += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let checks = argocd.requests(Endpoint::Clusters) - before;
    assert!((2..=5).contains(&checks), "{checks} checks for {n} refreshes in 15 s (one per 5 s at most)");
    // The last one is still honoured.
    let last = format!("r-{}", n - 1);
    instance_where(&client, &ns, "prod", Duration::from_secs(10), "the last refresh handled", |i| {
        i.status.as_ref().is_some_and(|s| s.last_handled_refresh_at.as_deref() == Some(last.as_str()))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_bound_to_other_urls_is_sent_nowhere_else() {
    use argomap::crd::ALLOWED_URLS_ANNOTATION;
    let client = client().await;
    let ns = namespace(&client, "sec-bound").await;
    let (argocd, token) = fake().await;
    // Labelled for argomap, but its owner binds it to another Argo CD.
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "argocd-readonly", "labels": {"argomap.io/credentials": "true"},
                     "annotations": {ALLOWED_URLS_ANNOTATION: "https://argocd.example.com"}},
        "stringData": {"token": token}
    }))
    .expect("secret");
    let secrets = Api::<Secret>::namespaced(client.clone(), &ns);
    secrets.create(&PostParams::default(), &secret).await.expect("create secret");
    create_instance(&client, &ns, instance_json("prod", &argocd.url(), "60s")).await;
    let _op = Operator::start(&ns);
    let i = instance_where(&client, &ns, "prod", CHECK, "CredentialsNotAllowed", |i| {
        reason(i).as_deref() == Some("CredentialsNotAllowed")
    })
    .await;
    assert!(message(&i).contains(ALLOWED_URLS_ANNOTATION), "{}", message(&i));
    assert!(
        !message(&i).contains("argocd.example.com"),
        "the allowed URLs stay the Secret's: {}",
        message(&i)
    );
    assert_eq!(all_requests(&argocd), 0, "the token was sent nowhere");
    // Its owner lists this Argo CD too: checked at once.
    let both = json!({"metadata": {"annotations": {ALLOWED_URLS_ANNOTATION: format!("https://argocd.example.com, {}", argocd.url())}}});
    secrets.patch("argocd-readonly", &PatchParams::default(), &Patch::Merge(&both)).await.expect("annotate");
    instance_where(&client, &ns, "prod", CHECK, "connected", connected).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_url_policy_keeps_instances_off_denied_networks_by_address_and_by_name() {
    use argomap::argocd::url_policy::DEFAULT_DENIED;
    let client = client().await;
    let ns = namespace(&client, "sec-policy").await;
    let (argocd, token) = fake().await;
    token_secret(&client, &ns, "argocd-readonly", &token).await;
    // The same loopback server, written as an address and as a name that resolves to it.
    let by_name = argocd.url().replace("127.0.0.1", "localhost");
    create_instance(&client, &ns, instance_json("by-address", &argocd.url(), "60s")).await;
    create_instance(&client, &ns, instance_json("by-name", &by_name, "60s")).await;
    let _op = Operator::start_with(&ns, &["--deny-url-cidrs", DEFAULT_DENIED]);
    for name in ["by-address", "by-name"] {
        let i = instance_where(&client, &ns, name, CHECK, "refused by the URL policy", |i| {
            message(i).contains("--deny-url-cidrs")
        })
        .await;
        assert_eq!(reason(&i).as_deref(), Some("InvalidResponse"), "{name}");
        if name == "by-name" {
            assert!(!message(&i).contains("127.0.0.1"), "the resolved address is not told: {}", message(&i));
        }
    }
    assert_eq!(all_requests(&argocd), 0, "nothing reached the denied server");
}
