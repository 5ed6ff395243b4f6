//! Attribution as Argo CD routes, end to end: `argomap run` against fleets the fake Argo CD
//! serves as the real one would. An argocd-agent principal's agents (namespace mapping for
//! managed and autonomous agents, destination mapping), the identity its registrar stamps on
//! each cluster, destinations Argo CD cannot resolve, and the opt-in counts by health and sync,
//! polled and watched.

use std::time::Duration;

use argomap::crd::{ArgoCdInstance, REFRESH_ANNOTATION};
use fake_argocd::{AGENT_NAME_LABEL, App, Cluster, Endpoint, FakeArgoCd, IN_CLUSTER_SERVER};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use crate::common::*;
use argomap_test_support::watch_checks::{LIVE, stream_reason, writes_nothing};

/// The first check of a new instance (the operator starts, then lists the fleet).
const FIRST_CHECK: Duration = Duration::from_secs(30);
/// A check asked for with the refresh annotation.
const REFRESHED: Duration = Duration::from_secs(10);
/// argocd-agent's resource proxy on the principal, which every agent's cluster points at.
const PROXY: &str = "https://argocd-agent-resource-proxy.argocd.svc:9090";

/// A test's namespace, fake Argo CD and running operator.
struct Fleet {
    client: kube::Client,
    ns: String,
    argocd: FakeArgoCd,
    _op: Operator,
}

/// Serves `clusters` and `apps`, maps each (name, URL) of `mappings`, creates instance `prod`
/// (its `spec.applications` set to `applications`, checked every `interval`), starts the
/// operator and waits for the first check's status.
async fn fleet(
    test: &str,
    clusters: Vec<Cluster>,
    apps: Vec<App>,
    mappings: &[(&str, &str)],
    applications: Value,
    interval: &str,
) -> (Fleet, ArgoCdInstance) {
    let client = client().await;
    let ns = namespace(&client, test).await;
    let (argocd, token) = fake().await;
    argocd.set_clusters(clusters);
    argocd.set_applications(apps);
    token_secret(&client, &ns, "argocd-readonly", &token).await;
    for (name, url) in mappings {
        create_mapping(&client, &ns, mapping_json(name, "prod", url)).await;
    }
    let mut instance = instance_json("prod", &argocd.url(), interval);
    instance["spec"]["applications"] = applications;
    create_instance(&client, &ns, instance).await;
    let op = Operator::start(&ns);
    let i = instance_where(&client, &ns, "prod", FIRST_CHECK, "the first check", |i| {
        connected(i) && i.status.as_ref().is_some_and(|s| s.summary.is_some())
    })
    .await;
    (Fleet { client, ns, argocd, _op: op }, i)
}

impl Fleet {
    /// Asks for a check now (the refresh annotation) and returns the status it wrote.
    async fn refreshed(&self, token: &str) -> ArgoCdInstance {
        let api = Api::<ArgoCdInstance>::namespaced(self.client.clone(), &self.ns);
        let refresh = json!({"metadata": {"annotations": {REFRESH_ANNOTATION: token}}});
        api.patch("prod", &PatchParams::default(), &Patch::Merge(&refresh)).await.expect("annotate");
        instance_where(&self.client, &self.ns, "prod", REFRESHED, &format!("refresh {token}"), |i| {
            i.status.as_ref().is_some_and(|s| s.last_handled_refresh_at.as_deref() == Some(token))
        })
        .await
    }
}

/// The instance's status as JSON, named as `kubectl get -o json` shows it.
fn status(i: &ArgoCdInstance) -> Value {
    serde_json::to_value(&i.status).expect("status JSON")
}

/// The status entry of destination `url` and the list it is in (`linkedClusters` or
/// `unlinkedClusters`).
fn entry(i: &ArgoCdInstance, url: &str) -> Option<(&'static str, Value)> {
    let s = status(i);
    ["linkedClusters", "unlinkedClusters"].into_iter().find_map(|list| {
        let found = s[list].as_array()?.iter().find(|e| e["argocdClusterUrl"] == url)?;
        Some((list, found.clone()))
    })
}

/// [`entry`], which must exist.
fn entry_of(i: &ArgoCdInstance, url: &str) -> (&'static str, Value) {
    entry(i, url).unwrap_or_else(|| panic!("no status entry for {url}: {}", status(i)))
}

/// The server URL the principal registers agent `name`'s cluster under.
fn agent_url(name: &str) -> String {
    format!("{PROXY}?agentName={name}")
}

/// The decoded `fields` of a raw query string (`""` without one).
fn fields_of(query: &str) -> String {
    query
        .split('&')
        .find_map(|p| p.strip_prefix("fields="))
        .unwrap_or_default()
        .replace("%2C", ",")
        .replace("%2c", ",")
}

/// Whether a request's projection asks for health and sync: the list's allow-list keys, or the
/// stream's paths.
fn asks_status(ep: Endpoint, query: &str) -> bool {
    let fields = fields_of(query);
    let keys: &[&str] = match ep {
        Endpoint::ApplicationStream => {
            &["result.application.status.sync.status", "result.application.status.health.status"]
        }
        _ => &["items.status.sync.status", "items.status.health"],
    };
    keys.iter().all(|k| fields.split(',').any(|f| f == *k))
}

// ---------------------------------------------------------------------------------------
// argocd-agent

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_fleet_is_attributed_as_each_agent_routes() {
    let managed = agent_url("edge-managed");
    let autonomous = agent_url("edge-autonomous");
    let by_destination = agent_url("edge-dest");
    let clusters = vec![
        Cluster::agent(PROXY, "edge-managed"),
        // An agent that went away: the principal says so in the connection message.
        Cluster::agent(PROXY, "edge-autonomous").with_agent_connected(false),
        Cluster::agent(PROXY, "edge-dest"),
        Cluster::new("https://10.0.0.1:6443", "prod-eks"),
    ];
    let apps = vec![
        // A managed agent with namespace mapping: the principal keeps its applications in the
        // agent's namespace and the agent deploys them to its own cluster, whatever their
        // destination says (here the agent's in-cluster, and a cluster the principal knows).
        App::to_server("web", IN_CLUSTER_SERVER).in_namespace("edge-managed"),
        App::to_server("api", IN_CLUSTER_SERVER).in_namespace("edge-managed"),
        App::to_server("db", "https://10.0.0.1:6443").in_namespace("edge-managed"),
        // ... unless the destination is an agent's cluster (destination mapping wins).
        App::to_name("reporting", "edge-dest").in_namespace("edge-managed"),
        // An autonomous agent: the principal rewrites its applications to name the agent.
        App::to_name("web", "edge-autonomous").in_namespace("edge-autonomous"),
        App::to_name("cache", "edge-autonomous").in_namespace("edge-autonomous"),
        // Destination-based mapping: applications in the principal's namespace aimed at an
        // agent's cluster, by name and by server.
        App::to_name("edge-dest-web", "edge-dest"),
        App::to_server("edge-dest-api", by_destination.clone()),
        // The principal's own applications.
        App::to_server("guestbook", IN_CLUSTER_SERVER),
        App::to_server("payments", "https://10.0.0.1:6443"),
    ];
    let (f, i) = fleet(
        "agents",
        clusters,
        apps,
        &[("edge-managed", managed.as_str())],
        json!({"mode": "Poll"}),
        "60s",
    )
    .await;
    let summary = status(&i)["summary"].clone();
    assert_eq!(summary["applications"], 10, "{summary}");
    assert_eq!(summary["unresolvedApplications"], 0, "{summary}");
    assert_eq!(summary["danglingDestinations"], 0, "{summary}");

    // Each mode is checked on its own, and every mismatch reported.
    let agent = |name: &str, state: &str| json!({"name": name, "connection": format!("Agent: '{name}' is {state} with principal")});
    let modes = [
        ("managed agent, namespace mapping", &managed, "linkedClusters", 3, "edge-managed", "connected"),
        (
            "autonomous agent, namespace mapping",
            &autonomous,
            "unlinkedClusters",
            2,
            "edge-autonomous",
            "disconnected",
        ),
        ("destination-based mapping", &by_destination, "unlinkedClusters", 3, "edge-dest", "connected"),
    ];
    let mut wrong = Vec::new();
    for (mode, url, list, apps, name, state) in modes {
        let Some((found_in, e)) = entry(&i, url) else {
            wrong.push(format!("{mode}: no status entry for {url}"));
            continue;
        };
        let seen = json!({
            "list": found_in,
            "applicationsCount": e["applicationsCount"],
            "argocdAgent": e["argocdAgent"],
            "argocdClusterName": e["argocdClusterName"],
            "identity": e["identity"],
        });
        let want = json!({
            "list": list,
            "applicationsCount": apps,
            "argocdAgent": agent(name, state),
            "argocdClusterName": name,
            "identity": [{"key": AGENT_NAME_LABEL, "value": name}],
        });
        if seen != want {
            wrong.push(format!("{mode}: {url} is {seen}, expected {want}"));
        }
    }
    // The agents' applications are nowhere else: the principal's in-cluster keeps its own.
    let (_, in_cluster) = entry_of(&i, IN_CLUSTER_SERVER);
    if in_cluster["applicationsCount"] != 1 {
        wrong.push(format!("in-cluster got an agent's applications: {in_cluster}"));
    }
    let (_, prod) = entry_of(&i, "https://10.0.0.1:6443");
    if prod["applicationsCount"] != 1 || prod.get("argocdAgent").is_some() {
        wrong.push(format!("prod-eks got a managed agent's application: {prod}"));
    }
    assert!(wrong.is_empty(), "{}\nstatus: {}", wrong.join("\n"), status(&i));
    let (_, e) = entry_of(&i, &autonomous);
    assert_eq!(e["argocdConnectionState"], "Failed", "{e}");

    // The connection as the principal reports it now, on the next check.
    assert!(f.argocd.update_cluster(&managed, |c| *c = c.clone().with_agent_connected(false)));
    let i = f.refreshed("agent-gone").await;
    let (_, e) = entry_of(&i, &managed);
    assert_eq!(e["argocdAgent"], agent("edge-managed", "disconnected"), "{e}");
    assert_eq!(e["argocdConnectionState"], "Failed", "{e}");
    assert_eq!(e["applicationsCount"], 3, "a disconnected agent keeps its applications: {e}");
}

// ---------------------------------------------------------------------------------------
// Identity

#[tokio::test(flavor = "multi_thread")]
async fn each_destination_lists_the_identity_its_registrar_gave_it() {
    let profile = "https://profile.example.com";
    let gke = "https://gke.example.com";
    let ocm = "https://ocm.example.com";
    let capi = "https://capi.example.com";
    let plain = "https://plain.example.com";
    let clusters = vec![
        // The ClusterProfile integration for Argo CD, with the inventory's member id, and an
        // annotation that sorts between its labels.
        Cluster::new(profile, "profile-a")
            .with_label("argocd.argoproj.io/cluster-profile-origin", "fleet-profile-a")
            .with_label("multicluster.x-k8s.io/inventory-member-id", "member-a")
            .with_label("env", "prod")
            .with_annotation("clusterprofile.x-k8s.io/origin", "fleet/profile-a"),
        // GKE's ClusterProfile syncer: an annotation.
        Cluster::new(gke, "gke-b")
            .with_annotation("clusterprofile.x-k8s.io/origin", "gke-fleet/gke-b")
            .with_annotation("container.googleapis.com/fleet-membership", "projects/p/memberships/gke-b")
            .with_label("team", "platform"),
        // Open Cluster Management's GitOpsCluster.
        Cluster::new(ocm, "ocm-c")
            .with_label("apps.open-cluster-management.io/cluster-name", "ocm-c")
            .with_label("apps.open-cluster-management.io/acm-cluster", "true")
            .with_label("cluster.open-cluster-management.io/clusterset", "default"),
        // Cluster API to Argo CD.
        Cluster::new(capi, "capi-d")
            .with_label("capi-to-argocd/owned", "true")
            .with_label("capi-to-argocd/cluster-secret-name", "capi-d-kubeconfig")
            .with_label("capi-to-argocd/cluster-namespace", "clusters")
            .with_label("cluster.x-k8s.io/cluster-name", "capi-d"),
        // Nothing argomap recognises.
        Cluster::new(plain, "plain").with_label("env", "dev").with_annotation("owner", "someone"),
    ];
    let apps = vec![
        App::to_server("web", profile),
        App::to_name("api", "gke-b"),
        App::to_name("ocm-app", "ocm-c"),
        App::to_server("capi-app", capi),
    ];
    let (_f, i) =
        fleet("identity", clusters, apps, &[("capi-d", capi)], json!({"mode": "Poll"}), "60s").await;
    let id = |pairs: &[(&str, &str)]| -> Value {
        pairs.iter().map(|(k, v)| json!({"key": k, "value": v})).collect()
    };
    let expected = [
        (
            profile,
            "unlinkedClusters",
            id(&[
                ("argocd.argoproj.io/cluster-profile-origin", "fleet-profile-a"),
                ("clusterprofile.x-k8s.io/origin", "fleet/profile-a"),
                ("multicluster.x-k8s.io/inventory-member-id", "member-a"),
            ]),
        ),
        (gke, "unlinkedClusters", id(&[("clusterprofile.x-k8s.io/origin", "gke-fleet/gke-b")])),
        (ocm, "unlinkedClusters", id(&[("apps.open-cluster-management.io/cluster-name", "ocm-c")])),
        (
            capi,
            "linkedClusters",
            id(&[
                ("capi-to-argocd/cluster-namespace", "clusters"),
                ("capi-to-argocd/cluster-secret-name", "capi-d-kubeconfig"),
            ]),
        ),
    ];
    for (url, list, identity) in expected {
        let (found_in, e) = entry_of(&i, url);
        assert_eq!(found_in, list, "{url}: {e}");
        assert_eq!(e["identity"], identity, "{url}: exactly the recognised keys, in order");
        assert!(e.get("argocdAgent").is_none(), "{url}: no agent: {e}");
    }
    let (_, e) = entry_of(&i, plain);
    assert!(e.get("identity").is_none(), "no recognised key, no identity: {e}");
    let (_, e) = entry_of(&i, IN_CLUSTER_SERVER);
    assert!(e.get("identity").is_none(), "the synthesised in-cluster has none: {e}");
}

// ---------------------------------------------------------------------------------------
// Dangling destinations

#[tokio::test(flavor = "multi_thread")]
async fn destinations_argo_cd_cannot_resolve_are_dangling() {
    let clusters = vec![
        Cluster::new("https://10.0.0.1:6443", "prod-eks"),
        // Two clusters of one name: a name Argo CD cannot resolve either.
        Cluster::new("https://twin-1.example.com", "twin"),
        Cluster::new("https://twin-2.example.com", "twin"),
    ];
    let apps = vec![
        App::to_server("api", "https://10.0.0.1:6443"),
        // No cluster registered for these servers (one of them mapped all the same).
        App::to_server("legacy-a", "https://gone.example.com/"),
        App::to_server("legacy-b", "https://gone.example.com"),
        App::to_server("retired", "https://retired.example.com"),
        // No cluster of this name, and one name two clusters share.
        App::to_name("ghost", "no-such-cluster").in_namespace("team-a"),
        App::to_name("twin-app", "twin"),
    ];
    let (_f, i) = fleet(
        "dangling",
        clusters,
        apps,
        &[("retired", "https://retired.example.com")],
        json!({"mode": "Poll"}),
        "60s",
    )
    .await;
    let s = status(&i);
    assert_eq!(
        s["danglingDestinations"],
        json!([
            {"destination": "https://gone.example.com", "kind": "Server", "registered": false, "applicationsCount": 2},
            {"destination": "https://retired.example.com", "kind": "Server", "registered": false, "applicationsCount": 1},
            {"destination": "no-such-cluster", "kind": "Name", "registered": false, "applicationsCount": 1},
            {"destination": "twin", "kind": "Name", "registered": true, "applicationsCount": 1},
        ]),
        "{s}"
    );
    assert_eq!(s["summary"]["danglingDestinations"], 4, "{s}");
    assert_eq!(s["summary"]["unresolvedApplications"], 2, "the two names: {s}");

    let (list, gone) = entry_of(&i, "https://gone.example.com");
    assert_eq!(
        (list, &gone["dangling"], &gone["applicationsCount"]),
        ("unlinkedClusters", &json!(true), &json!(2))
    );
    let (list, retired) = entry_of(&i, "https://retired.example.com");
    assert_eq!((list, &retired["dangling"]), ("linkedClusters", &json!(true)), "{retired}");
    for url in ["https://10.0.0.1:6443", "https://twin-1.example.com", IN_CLUSTER_SERVER] {
        let (_, e) = entry_of(&i, url);
        assert!(e.get("dangling").is_none(), "{url} is registered: {e}");
    }
    // Applications of names Argo CD cannot resolve go to no cluster.
    let (_, twin) = entry_of(&i, "https://twin-1.example.com");
    assert_eq!(twin["applicationsCount"], 0, "{twin}");
}

// ---------------------------------------------------------------------------------------
// Health and sync

/// A fleet whose applications are in every state: two destinations and a cluster without any.
fn health_fleet() -> (Vec<Cluster>, Vec<App>) {
    let clusters = fake_argocd::sample_clusters();
    let apps = vec![
        App::to_server("api", "https://10.0.0.1:6443"),
        App::to_name("web", "prod-eks")
            .in_namespace("team-a")
            .with_status("OutOfSync", "Degraded")
            .with_health_message("Deployment \"web\" exceeded its progress deadline"),
        // Never reconciled yet: Argo CD has neither sync status nor health.
        App::to_server("worker", "https://10.0.0.1:6443").with_status("", ""),
        App::to_server("guestbook", IN_CLUSTER_SERVER).with_status("Synced", "Progressing"),
    ];
    (clusters, apps)
}

/// `applicationsByStatus` of destination `url` (`null` when there is none).
fn by_status(i: &ArgoCdInstance, url: &str) -> Value {
    entry_of(i, url).1.get("applicationsByStatus").cloned().unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread")]
async fn polled_counts_by_health_and_sync_are_opt_in() {
    let (clusters, apps) = health_fleet();
    let (f, i) = fleet(
        "health-poll",
        clusters.clone(),
        apps.clone(),
        &[("prod-eks", "https://10.0.0.1:6443")],
        json!({"mode": "Poll", "health": true}),
        "10s",
    )
    .await;
    assert_eq!(
        by_status(&i, "https://10.0.0.1:6443"),
        json!({"health": {"Healthy": 1, "Degraded": 1, "Unknown": 1}, "sync": {"Synced": 1, "OutOfSync": 1, "Unknown": 1}})
    );
    assert_eq!(
        by_status(&i, IN_CLUSTER_SERVER),
        json!({"health": {"Progressing": 1}, "sync": {"Synced": 1}})
    );
    assert_eq!(
        by_status(&i, "https://old.example.com"),
        json!({"health": {}, "sync": {}}),
        "no applications"
    );

    // Argo CD's controller assesses the application again: the next check (one interval) shows it.
    assert!(f.argocd.set_application_status("team-a", "web", "Synced", "Healthy", ""));
    let healed = json!({"health": {"Healthy": 2, "Unknown": 1}, "sync": {"Synced": 2, "Unknown": 1}});
    instance_where(&f.client, &f.ns, "prod", Duration::from_secs(30), "the next poll", |i| {
        by_status(i, "https://10.0.0.1:6443") == healed
    })
    .await;
    let queries = f.argocd.queries(Endpoint::Applications);
    assert!(queries.len() >= 2, "{queries:?}");
    assert!(queries.iter().all(|q| asks_status(Endpoint::Applications, q)), "{queries:?}");

    // The same fleet without health: no counts by status, and none asked of Argo CD.
    let (g, plain) = fleet("health-off", clusters, apps, &[], json!({"mode": "Poll"}), "60s").await;
    for e in ["linkedClusters", "unlinkedClusters"]
        .iter()
        .flat_map(|l| status(&plain)[*l].as_array().cloned().unwrap_or_default())
    {
        assert!(e.get("applicationsByStatus").is_none(), "health is off: {e}");
    }
    let queries = g.argocd.queries(Endpoint::Applications);
    assert!(!queries.is_empty());
    for q in &queries {
        assert!(!fields_of(q).contains("status"), "health is off, yet the list asked for {q}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn watched_health_changes_arrive_through_the_stream() {
    let (clusters, apps) = health_fleet();
    let (f, i) = fleet("health-watch", clusters, apps, &[], json!({"mode": "Watch"}), "60s").await;
    let api = Api::<ArgoCdInstance>::namespaced(f.client.clone(), &f.ns);
    instance_where(&f.client, &f.ns, "prod", FIRST_CHECK, "streaming", |i| {
        connected(i) && stream_reason(i).as_deref() == Some("Streaming")
    })
    .await;
    assert_eq!(by_status(&i, "https://10.0.0.1:6443"), Value::Null, "health is off");
    // What was asked of Argo CD while health was off.
    let off = |ep| f.argocd.queries(ep);
    let (lists_off, streams_off) = (off(Endpoint::Applications), off(Endpoint::ApplicationStream));
    assert!(!streams_off.is_empty(), "a stream was opened");
    for (ep, q) in lists_off
        .iter()
        .map(|q| (Endpoint::Applications, q))
        .chain(streams_off.iter().map(|q| (Endpoint::ApplicationStream, q)))
    {
        assert!(!fields_of(q).contains("status"), "health is off, yet {ep:?} asked for {q}");
    }

    // Health on: a new client, a new stream carrying each application's health and sync.
    let on = json!({"spec": {"applications": {"mode": "Watch", "health": true}}});
    api.patch("prod", &PatchParams::default(), &Patch::Merge(&on)).await.expect("health on");
    let want = json!({"health": {"Healthy": 1, "Degraded": 1, "Unknown": 1}, "sync": {"Synced": 1, "OutOfSync": 1, "Unknown": 1}});
    instance_where(&f.client, &f.ns, "prod", FIRST_CHECK, "streaming with health", |i| {
        let observed = i.status.as_ref().and_then(|s| s.observed_generation) == Some(2);
        observed
            && stream_reason(i).as_deref() == Some("Streaming")
            && by_status(i, "https://10.0.0.1:6443") == want
    })
    .await;
    eventually(FIRST_CHECK, "a stream asking for health", || async {
        let streams = f.argocd.queries(Endpoint::ApplicationStream);
        let asked = streams.last().is_some_and(|q| asks_status(Endpoint::ApplicationStream, q));
        if asked && f.argocd.open_streams() == 1 {
            Ok(())
        } else {
            Err(format!("{streams:?}, {} open", f.argocd.open_streams()))
        }
    })
    .await;
    let lists = f.argocd.queries(Endpoint::Applications);
    assert!(lists[lists_off.len()..].iter().any(|q| asks_status(Endpoint::Applications, q)), "{lists:?}");

    // A health change: through the stream, well within the minute's interval.
    let listed = f.argocd.requests(Endpoint::Applications);
    assert!(f.argocd.set_application_status("team-a", "web", "OutOfSync", "Progressing", "rolling out"));
    let progressing = json!({"health": {"Healthy": 1, "Progressing": 1, "Unknown": 1}, "sync": {"Synced": 1, "OutOfSync": 1, "Unknown": 1}});
    instance_where(&f.client, &f.ns, "prod", LIVE, "the health change, live", |i| {
        by_status(i, "https://10.0.0.1:6443") == progressing
    })
    .await;
    assert_eq!(f.argocd.requests(Endpoint::Applications), listed, "no list: the stream told it");
    // A new health message alone is no projected byte: Argo CD sends nothing, nothing is written.
    assert!(f.argocd.set_application_status(
        "team-a",
        "web",
        "OutOfSync",
        "Progressing",
        "still rolling out"
    ));
    writes_nothing(&f.client, &f.ns, "prod", "a health message").await;
    // A first assessment, sync and health, is.
    assert!(f.argocd.set_application_status("argocd", "worker", "OutOfSync", "Missing", ""));
    let changed = json!({"health": {"Healthy": 1, "Progressing": 1, "Missing": 1}, "sync": {"Synced": 1, "OutOfSync": 2}});
    instance_where(&f.client, &f.ns, "prod", LIVE, "the first assessment, live", |i| {
        by_status(i, "https://10.0.0.1:6443") == changed
    })
    .await;
    assert_eq!(f.argocd.requests(Endpoint::Applications), listed, "still no list");
}
