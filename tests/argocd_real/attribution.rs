//! Attribution as the real argocd-server lists what registrars write: cluster Secrets labelled
//! and annotated the way the ClusterProfile integration, GKE's syncer and argocd-agent's
//! principal write them, applications in an agent's namespace, and each application's health
//! and sync written into its status (no application controller runs here: the test writes
//! them, as Argo CD's controller would). The same attribution runs on the fake in
//! `tests/cluster/attribution.rs`, with what only a principal can produce (the agent's
//! connection message).

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::common::*;
use crate::server::{self, Dest, Opts, Server};
use crate::{CHECK, LISTED, argomap_setup, check, file};

/// A cluster Secret in Argo CD's namespace with `labels` and `annotations` of its registrar.
async fn registered(
    client: &kube::Client,
    ns: &str,
    name: &str,
    server: &str,
    labels: Value,
    annotations: Value,
) {
    let mut all = json!({"argocd.argoproj.io/secret-type": "cluster"});
    for (k, v) in labels.as_object().into_iter().flatten() {
        all[k] = v.clone();
    }
    let s: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "labels": all, "annotations": annotations},
        "stringData": {"name": name, "server": server, "config": "{\"tlsClientConfig\":{\"insecure\":true}}"}
    }))
    .expect("cluster secret");
    Api::<Secret>::namespaced(client.clone(), ns).create(&PostParams::default(), &s).await.expect("create");
}

fn proxy(agent: &str) -> String {
    format!("https://argocd-agent-resource-proxy:9090?agentName={agent}")
}

/// The status entry of destination `url` among linked and unlinked clusters.
fn entry<'a>(status: &'a Value, url: &str) -> &'a Value {
    ["linkedClusters", "unlinkedClusters"]
        .iter()
        .flat_map(|k| status[k].as_array().into_iter().flatten())
        .find(|e| e["argocdClusterUrl"] == url)
        .unwrap_or_else(|| panic!("no destination {url} in {status}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn identity_agents_and_dangling_destinations_as_the_server_lists_them() {
    let client = client().await;
    let acd = namespace(&client, "acd-attr").await;
    // The namespace a managed agent's applications live in on the principal is the agent's name.
    let agent = namespace(&client, "edge").await;
    registered(
        &client,
        &acd,
        "gke-prod",
        "https://gke.example.com",
        json!({"multicluster.x-k8s.io/inventory-member-id": "m-1", "x-k8s.io/cluster-manager": "gke", "team": "a"}),
        json!({"clusterprofile.x-k8s.io/origin": "fleet/gke-prod"}),
    )
    .await;
    registered(
        &client,
        &acd,
        "ocm-1",
        "https://ocm-1.example.com",
        json!({"argocd.argoproj.io/cluster-profile-origin": "fleet-ocm-1"}),
        json!({}),
    )
    .await;
    registered(
        &client,
        &acd,
        &agent,
        &proxy(&agent),
        json!({"argocd-agent.argoproj-labs.io/agent-name": agent}),
        json!({"argocd.argoproj.io/skip-reconcile": "true"}),
    )
    .await;
    server::applications(
        &client,
        &acd,
        vec![
            server::application("web", Dest::Server("https://gke.example.com")),
            server::application("by-agent-name", Dest::Name(&agent)),
            server::application("lost", Dest::Server("https://gone.example.com")),
            server::application("nameless", Dest::Name("no-such-cluster")),
        ],
    )
    .await;
    // A managed agent's application as the principal keeps it: its destination as written.
    server::applications(
        &client,
        &agent,
        vec![server::application("managed", Dest::Server("https://kubernetes.default.svc"))],
    )
    .await;
    let server = Server::start(&acd, Opts { app_namespaces: Some(agent.clone()), ..Default::default() });
    server::listed(&server, &server.token, 4, 5, LISTED).await;

    // What the server itself sends: the registrar's labels and annotations, passed through.
    let clusters = server.clusters(&server.token);
    let gke = clusters["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == "gke-prod")
        .unwrap_or_else(|| panic!("gke-prod not listed: {clusters}"));
    assert_eq!(gke["labels"]["multicluster.x-k8s.io/inventory-member-id"], "m-1", "{gke}");
    assert_eq!(gke["annotations"]["clusterprofile.x-k8s.io/origin"], "fleet/gke-prod", "{gke}");

    let (_dir, token) = file("token", &server.token);
    let (code, report) = check(&["--url", &server.url, "--token-file", token.to_str().expect("path")]);
    assert_eq!(code, 0, "{report}");
    let s = &report["status"];
    assert_eq!(
        entry(s, "https://gke.example.com")["identity"],
        json!([
            {"key": "clusterprofile.x-k8s.io/origin", "value": "fleet/gke-prod"},
            {"key": "multicluster.x-k8s.io/inventory-member-id", "value": "m-1"}
        ])
    );
    assert_eq!(
        entry(s, "https://ocm-1.example.com")["identity"],
        json!([{"key": "argocd.argoproj.io/cluster-profile-origin", "value": "fleet-ocm-1"}])
    );
    // The agent's cluster: its own application (namespace mapping) and the one naming it
    // (destination mapping); in-cluster keeps none of them.
    let edge = entry(s, &proxy(&agent));
    assert_eq!(edge["applicationsCount"], 2, "{edge}");
    assert_eq!(edge["argocdAgent"]["name"], json!(agent), "{edge}");
    assert_eq!(entry(s, "https://kubernetes.default.svc")["applicationsCount"], 0, "{s}");
    // Dangling: an unregistered server and an unknown name.
    assert_eq!(
        s["danglingDestinations"],
        json!([
            {"applicationsCount": 1, "destination": "https://gone.example.com", "kind": "Server", "registered": false},
            {"applicationsCount": 1, "destination": "no-such-cluster", "kind": "Name", "registered": false}
        ])
    );
    assert_eq!(entry(s, "https://gone.example.com")["dangling"], true);
    assert_eq!(s["summary"]["danglingDestinations"], 2);
    let table = std::process::Command::new(env!("CARGO_BIN_EXE_argomap"))
        .args(["check", "--url", &server.url, "--token-file", token.to_str().expect("path")])
        .output()
        .expect("argomap check");
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.contains("clusterprofile.x-k8s.io/origin=fleet/gke-prod (+1)"), "{table}");
    assert!(table.contains("Dangling destination no-such-cluster: no cluster has this name"), "{table}");
}

fn apps(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &server::app_resource())
}

/// Writes application `name`'s health and sync, as Argo CD's application controller would.
async fn set_status(client: &kube::Client, ns: &str, name: &str, health: &str, sync: &str) {
    apps(client, ns)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"sync": {"status": sync}, "health": {"status": health, "message": "m"}}}),
            ),
        )
        .await
        .expect("patch the application's status");
}

/// `applicationsByStatus` of destination `url` in instance `prod`'s status, once it equals `want`.
async fn until_counts(client: &kube::Client, ns: &str, url: &str, want: Value, deadline: Duration) {
    instance_where(client, ns, "prod", deadline, &format!("{url} counted as {want}"), |i| {
        let s = serde_json::to_value(&i.status).unwrap_or_default();
        ["linkedClusters", "unlinkedClusters"]
            .iter()
            .flat_map(|k| s[k].as_array().cloned().unwrap_or_default())
            .any(|e| e["argocdClusterUrl"] == url && e["applicationsByStatus"] == want)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn health_and_sync_per_destination_in_poll_and_watch_mode() {
    let client = client().await;
    let acd = namespace(&client, "acd-health").await;
    server::cluster_secret(&client, &acd, "a-cluster", "https://a.example.com").await;
    server::applications(
        &client,
        &acd,
        vec![
            server::application("web", Dest::Server("https://a.example.com")),
            server::application("api", Dest::Name("a-cluster")),
        ],
    )
    .await;
    set_status(&client, &acd, "web", "Healthy", "Synced").await;
    set_status(&client, &acd, "api", "Degraded", "OutOfSync").await;
    let server = Server::start(&acd, Opts::default());
    server::listed(&server, &server.token, 2, 2, LISTED).await;

    // Poll mode, health on.
    let polled = argomap_setup(&client, "real-health-poll", &server.url, &server.token, &[], |i| {
        i["spec"]["interval"] = json!("10s");
        i["spec"]["applications"] = json!({"health": true});
    })
    .await;
    // Watch mode, health on, a one-minute interval: a change within seconds came by the stream.
    let watched = argomap_setup(&client, "real-health-watch", &server.url, &server.token, &[], |i| {
        i["spec"]["interval"] = json!("60s");
        i["spec"]["applications"] = json!({"mode": "Watch", "health": true});
    })
    .await;
    // Health off: no counts by status.
    let plain = argomap_setup(&client, "real-health-off", &server.url, &server.token, &[], |i| {
        i["spec"]["interval"] = json!("10s");
    })
    .await;
    let _ops: Vec<Operator> = [&polled, &watched, &plain].iter().map(|ns| Operator::start(ns)).collect();
    let first = json!({"health": {"Degraded": 1, "Healthy": 1}, "sync": {"OutOfSync": 1, "Synced": 1}});
    for ns in [&polled, &watched] {
        until_counts(&client, ns, "https://a.example.com", first.clone(), CHECK).await;
    }
    instance_where(&client, &plain, "prod", CHECK, "checked without counts by status", |i| {
        let s = serde_json::to_value(&i.status).unwrap_or_default();
        s["summary"]["applications"] == 2 && !s.to_string().contains("applicationsByStatus")
    })
    .await;

    set_status(&client, &acd, "api", "Healthy", "Synced").await;
    let healed = json!({"health": {"Healthy": 2}, "sync": {"Synced": 2}});
    until_counts(&client, &watched, "https://a.example.com", healed.clone(), Duration::from_secs(15)).await;
    until_counts(&client, &polled, "https://a.example.com", healed, CHECK).await;
}

fn profiles_api(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    let ar = kube::core::ApiResource::from_gvk_with_plural(
        &kube::core::GroupVersionKind::gvk("multicluster.x-k8s.io", "v1alpha1", "ClusterProfile"),
        "clusterprofiles",
    );
    Api::namespaced_with(client.clone(), ns, &ar)
}

#[tokio::test(flavor = "multi_thread")]
async fn clusters_registered_by_the_cluster_profile_integration_link_automatically() {
    let client = client().await;
    let acd = namespace(&client, "acd-profiles").await;
    let fleet = namespace(&client, "fleet").await;
    // Cluster Secrets as the ClusterProfile integration for Argo CD writes them: the origin label
    // `<namespace>-<name>` and the profile's labels copied.
    for name in ["spoke-a", "spoke-b"] {
        registered(
            &client,
            &acd,
            name,
            &format!("https://{name}.example.com"),
            json!({
                "argocd.argoproj.io/cluster-profile-origin": format!("{fleet}-{name}"),
                "multicluster.x-k8s.io/inventory-member-id": name,
                "x-k8s.io/cluster-manager": "open-cluster-management"
            }),
            json!({}),
        )
        .await;
        let p: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ClusterProfile",
            "metadata": {"name": name, "labels": {"x-k8s.io/cluster-manager": "open-cluster-management",
                                                  "multicluster.x-k8s.io/inventory-member-id": name},
                         "annotations": if name == "spoke-a" {
                             json!({"argomap.io/cluster-id": "5f0c1a2b-0000-4000-8000-0000000000aa", "argomap.io/cloud-provider": "AWS"})
                         } else { json!({}) }},
            "spec": {"displayName": name, "clusterManager": {"name": "open-cluster-management"}}
        }))
        .expect("profile");
        profiles_api(&client, &fleet).create(&PostParams::default(), &p).await.expect("create profile");
    }
    server::applications(
        &client,
        &acd,
        vec![
            server::application("a", Dest::Server("https://spoke-a.example.com")),
            server::application("b", Dest::Name("spoke-b")),
        ],
    )
    .await;
    let server = Server::start(&acd, Opts::default());
    server::listed(&server, &server.token, 3, 2, LISTED).await;

    let ns = argomap_setup(&client, "real-autolink", &server.url, &server.token, &[], |i| {
        i["spec"]["autoLink"] = json!({"identityKeys": ["argocd.argoproj.io/cluster-profile-origin"]});
    })
    .await;
    let _op = Operator::start_with(&ns, &["--cluster-profiles"]);
    let i = instance_where(&client, &ns, "prod", CHECK, "spoke-a linked automatically", |i| {
        i.status.as_ref().is_some_and(|s| s.linked_clusters.iter().any(|l| l.details.automatic.is_some()))
    })
    .await;
    let s = serde_json::to_value(i.status.as_ref()).expect("status");
    let a = entry(&s, "https://spoke-a.example.com");
    assert_eq!(a["cluster"]["id"], "5f0c1a2b-0000-4000-8000-0000000000aa", "{a}");
    assert_eq!(a["applicationsCount"], 1);
    assert_eq!(a["automatic"]["clusterProfileRef"], json!({"namespace": fleet, "name": "spoke-a"}));
    // spoke-b's profile gives no platform cluster: suggested, with the profile filled in.
    let b = entry(&s, "https://spoke-b.example.com");
    assert!(b.get("cluster").is_none(), "{b}");
    assert_eq!(
        b["suggestedMapping"]["clusterProfileRef"],
        json!({"namespace": fleet, "name": "spoke-b"}),
        "{b}"
    );
}
