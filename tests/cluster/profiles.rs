//! ClusterProfiles (SIG-Multicluster's Cluster Inventory API, the CRD from its Go module,
//! installed by the test control plane): a ClusterMapping that references one shows its health,
//! version and display name and takes its URL and cluster from it; `spec.autoLink` links a fleet
//! registered from profiles without one ClusterMapping. Profiles in the shapes Open Cluster
//! Management and KubeFleet write; Argo CD clusters labelled as the ClusterProfile integration for
//! Argo CD labels them.

use std::time::Duration;

use kube::Api;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

use crate::common::*;
use fake_argocd::{App, Cluster};

const CHECK: Duration = Duration::from_secs(30);
const SPOKE_ID: &str = "5f0c1a2b-0000-4000-8000-00000000a001";

fn profiles_api(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("multicluster.x-k8s.io", "v1alpha1", "ClusterProfile"),
        "clusterprofiles",
    );
    Api::namespaced_with(client.clone(), ns, &ar)
}

/// A ClusterProfile as Open Cluster Management writes it (`manager`: `open-cluster-management`)
/// or KubeFleet (`fleet`), with argomap's cluster annotations when `id` is given; its status
/// (written through the status subresource, as the cluster manager does).
async fn profile(
    client: &kube::Client,
    ns: &str,
    name: &str,
    manager: &str,
    id: Option<&str>,
    server: &str,
    healthy: &str,
) {
    let mut annotations = json!({});
    if let Some(id) = id {
        annotations = json!({"argomap.io/cluster-id": id, "argomap.io/cloud-provider": "GCP"});
    }
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ClusterProfile",
        "metadata": {"name": name, "annotations": annotations, "labels": {
            "x-k8s.io/cluster-manager": manager,
            "multicluster.x-k8s.io/inventory-member-id": format!("member-{name}")
        }},
        "spec": {"displayName": format!("{name} ({manager})"), "clusterManager": {"name": manager}}
    }))
    .expect("profile");
    let api = profiles_api(client, ns);
    api.create(&PostParams::default(), &obj).await.expect("create profile");
    set_profile_status(client, ns, name, server, healthy).await;
}

async fn set_profile_status(client: &kube::Client, ns: &str, name: &str, server: &str, healthy: &str) {
    let status = json!({"status": {
        "conditions": [
            {"type": "ControlPlaneHealthy", "status": healthy, "reason": "Probed", "message": "",
             "lastTransitionTime": "2026-12-01T00:00:00Z"},
            {"type": "Joined", "status": "True", "reason": "Joined", "message": "",
             "lastTransitionTime": "2026-12-01T00:00:00Z"}
        ],
        "version": {"kubernetes": "v1.34.2"},
        "properties": [{"name": "cluster.clusterset.k8s.io", "value": "default"}],
        "accessProviders": [{"name": "open-cluster-management", "cluster": {"server": server}}]
    }});
    profiles_api(client, ns)
        .patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await
        .expect("profile status");
}

/// The mapping's status as JSON, once `check` holds.
async fn mapping_until(
    client: &kube::Client,
    ns: &str,
    name: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let api: Api<argomap::crd::ClusterMapping> = Api::namespaced(client.clone(), ns);
    eventually(CHECK, &format!("mapping {name}: {what}"), || {
        let api = api.clone();
        let check = &check;
        async move {
            let m = api.get(name).await.map_err(|e| e.to_string())?;
            let status = serde_json::to_value(&m.status).unwrap_or_default();
            if check(&status) { Ok(status) } else { Err(status.to_string()) }
        }
    })
    .await
}

fn ready(s: &Value) -> (String, String) {
    let c = s["conditions"].as_array().and_then(|cs| cs.iter().find(|c| c["type"] == "Ready")).cloned();
    let c = c.unwrap_or_default();
    (c["status"].as_str().unwrap_or_default().into(), c["reason"].as_str().unwrap_or_default().into())
}

#[tokio::test]
async fn a_mapping_that_references_a_profile_shows_its_health_and_version_and_takes_its_url() {
    let s = setup("profile-ref", &[], "10s").await;
    let fleet = namespace(&s.client, "fleet-ocm").await;
    s.argocd.set_clusters(vec![
        Cluster::new("https://kubernetes.default.svc", "in-cluster"),
        Cluster::new("https://spoke-1.example.com", "spoke-1"),
    ]);
    s.argocd.set_applications(vec![App::to_server("web", "https://spoke-1.example.com")]);
    profile(
        &s.client,
        &fleet,
        "spoke-1",
        "open-cluster-management",
        Some(SPOKE_ID),
        "https://Spoke-1.example.com:443/",
        "True",
    )
    .await;
    // No URL and no cluster: both from the profile.
    let m: argomap::crd::ClusterMapping = serde_json::from_value(json!({
        "apiVersion": "argomap.io/v1alpha1", "kind": "ClusterMapping",
        "metadata": {"name": "spoke-1"},
        "spec": {"instanceRef": {"name": "prod"}, "clusterProfileRef": {"namespace": fleet, "name": "spoke-1"}}
    }))
    .expect("mapping");
    Api::<argomap::crd::ClusterMapping>::namespaced(s.client.clone(), &s.ns)
        .create(&PostParams::default(), &m)
        .await
        .expect("create mapping");
    let _op = Operator::start_with(&s.ns, &["--cluster-profiles"]);

    let st =
        mapping_until(&s.client, &s.ns, "spoke-1", "Linked from the profile", |st| st["state"] == "Linked")
            .await;
    assert_eq!(st["argocdClusterUrl"], "https://spoke-1.example.com", "{st}");
    assert_eq!(st["applicationsCount"], 1);
    assert_eq!(
        st["clusterProfile"],
        json!({"namespace": fleet, "name": "spoke-1", "found": true, "displayName": "spoke-1 (open-cluster-management)",
               "kubernetesVersion": "v1.34.2", "controlPlaneHealthy": "True"})
    );
    assert_eq!(ready(&st), ("True".into(), "Linked".into()));
    let i = instance_where(&s.client, &s.ns, "prod", CHECK, "spoke-1 linked to the profile's cluster", |i| {
        i.status.as_ref().is_some_and(|st| {
            st.linked_clusters
                .iter()
                .any(|l| l.cluster.id == SPOKE_ID && l.mapping.as_deref() == Some("spoke-1"))
        })
    })
    .await;
    assert!(i.status.is_some());

    // Unhealthy, then gone: Ready says so.
    set_profile_status(&s.client, &fleet, "spoke-1", "https://spoke-1.example.com", "False").await;
    let st = mapping_until(&s.client, &s.ns, "spoke-1", "ClusterProfileUnhealthy", |st| {
        ready(st).1 == "ClusterProfileUnhealthy"
    })
    .await;
    assert_eq!(ready(&st).0, "False");
    assert_eq!(st["state"], "Linked", "the link stands: {st}");
    profiles_api(&s.client, &fleet)
        .delete("spoke-1", &DeleteParams::default())
        .await
        .expect("delete profile");
    let st = mapping_until(&s.client, &s.ns, "spoke-1", "Unresolved without its profile", |st| {
        st["state"] == "Unresolved"
    })
    .await;
    assert_eq!(ready(&st), ("False".into(), "Unresolved".into()));
    assert_eq!(st["clusterProfile"]["found"], false);
    let message = st["conditions"][0]["message"].as_str().unwrap_or_default().to_string();
    assert!(message.contains(&format!("ClusterProfile {fleet}/spoke-1 does not exist")), "{message}");
}

#[tokio::test]
async fn auto_link_links_a_fleet_registered_from_cluster_profiles_without_a_mapping() {
    let s = setup("profile-auto", &[], "10s").await;
    let fleet = namespace(&s.client, "fleet-kf").await;
    // Argo CD clusters as the ClusterProfile integration registers them: the origin label
    // `<namespace>-<name>` and the profile's labels copied.
    let registered = |name: &str| {
        Cluster::new(format!("https://{name}.example.com"), name)
            .with_label("argocd.argoproj.io/cluster-profile-origin", &format!("{fleet}-{name}"))
            .with_label("multicluster.x-k8s.io/inventory-member-id", &format!("member-{name}"))
            .with_label("x-k8s.io/cluster-manager", "fleet")
    };
    s.argocd.set_clusters(vec![
        Cluster::new("https://kubernetes.default.svc", "in-cluster"),
        registered("member-a"),
        registered("member-b"),
        registered("member-c"),
    ]);
    s.argocd.set_applications(vec![
        App::to_server("a1", "https://member-a.example.com"),
        App::to_server("a2", "https://member-a.example.com"),
        App::to_name("b1", "member-b"),
    ]);
    profile(
        &s.client,
        &fleet,
        "member-a",
        "fleet",
        Some("5f0c1a2b-0000-4000-8000-00000000b00a"),
        "https://member-a.example.com",
        "True",
    )
    .await;
    profile(
        &s.client,
        &fleet,
        "member-b",
        "fleet",
        Some("5f0c1a2b-0000-4000-8000-00000000b00b"),
        "https://member-b.example.com",
        "True",
    )
    .await;
    // No argomap annotations: suggested, not linked.
    profile(&s.client, &fleet, "member-c", "fleet", None, "https://member-c.example.com", "True").await;
    Api::<argomap::crd::ArgoCdInstance>::namespaced(s.client.clone(), &s.ns)
        .patch(
            "prod",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"autoLink": {"identityKeys": ["argocd.argoproj.io/cluster-profile-origin"]}}})),
        )
        .await
        .expect("autoLink on");
    let _op = Operator::start_with(&s.ns, &["--cluster-profiles"]);

    let i = instance_where(&s.client, &s.ns, "prod", CHECK, "a and b linked automatically", |i| {
        i.status.as_ref().is_some_and(|st| {
            st.linked_clusters.iter().filter(|l| l.details.automatic.is_some()).count() == 2
        })
    })
    .await;
    let st = serde_json::to_value(i.status.as_ref()).expect("status");
    let linked = |url: &str| {
        st["linkedClusters"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|l| l["argocdClusterUrl"] == url)
            .cloned()
            .unwrap_or_default()
    };
    let a = linked("https://member-a.example.com");
    assert_eq!(a["applicationsCount"], 2);
    assert!(a.get("mapping").is_none(), "no ClusterMapping: {a}");
    assert_eq!(a["cluster"]["id"], "5f0c1a2b-0000-4000-8000-00000000b00a");
    assert_eq!(a["cluster"]["name"], "member-a (fleet)", "displayName as the name");
    assert_eq!(
        a["automatic"],
        json!({"identity": {"key": "argocd.argoproj.io/cluster-profile-origin", "value": format!("{fleet}-member-a")},
               "clusterProfileRef": {"namespace": fleet, "name": "member-a"}})
    );
    assert_eq!(linked("https://member-b.example.com")["applicationsCount"], 1);
    let c = st["unlinkedClusters"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|u| u["argocdClusterUrl"] == "https://member-c.example.com")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        c["suggestedMapping"]["clusterProfileRef"],
        json!({"namespace": fleet, "name": "member-c"}),
        "{c}"
    );
    assert!(
        c["suggestedMapping"]["note"].as_str().is_some_and(|n| n.contains("argomap.io/cluster-id")),
        "{c}"
    );

    // Annotating member-c links it on the next look, without a check of Argo CD being needed.
    profiles_api(&s.client, &fleet)
        .patch(
            "member-c",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {
                "argomap.io/cluster-id": "5f0c1a2b-0000-4000-8000-00000000b00c", "argomap.io/cloud-provider": "AWS"}}})),
        )
        .await
        .expect("annotate");
    instance_where(&s.client, &s.ns, "prod", CHECK, "member-c linked automatically", |i| {
        i.status.as_ref().is_some_and(|st| {
            st.linked_clusters.iter().filter(|l| l.details.automatic.is_some()).count() == 3
        })
    })
    .await;
}
