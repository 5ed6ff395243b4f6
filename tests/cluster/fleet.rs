//! One platform cluster, two Argo CDs, on the real control plane: two ArgoCdInstances (two fake
//! Argo CDs) whose ClusterMappings map a destination each to the same platform cluster see
//! each other in status (`alsoDeployedBy`, `summary.sharedClusters`, `-o wide`'s SHARED), get
//! one Warning event each, and show in `argomap_cluster_instances` and in the read API's view
//! per cluster, while Qovery's answer beside it keeps its contract.

use std::collections::BTreeMap;
use std::time::Duration;

use argomap::crd::ArgoCdInstance;
use argomap_test_support::contract::assert_valid as assert_contract;
use argomap_test_support::fixtures::ORG;
use fake_argocd::{App, Endpoint, FakeArgoCd};
use k8s_openapi::api::events::v1::Event;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use crate::common::*;
use crate::served::{CHECK, bearer, get, mapping_url, metrics_where, ready};

/// The platform cluster both instances deploy to (`mapping_json`'s cluster id).
const SHARED_ID: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
/// `prod`'s agent cluster (`instance_json`'s); `backup` runs on another.
const PROD_AGENT: &str = "0b9f6a1e-2c1d-4e4f-9a4b-1f2e3d4c5b6a";
const BACKUP_AGENT: &str = "0b9f6a1e-2c1d-4e4f-9a4b-00000000bac0";
const SHARED_URL: &str = "https://10.0.0.1:6443";

/// Both instances' checks come every 10 s: the second one checked sees the first at once, the
/// first sees the second at its next check.
const CONVERGED: Duration = Duration::from_secs(45);

/// A mapping of `instance`'s `url` to the shared platform cluster, named alike by both.
fn shared_mapping(name: &str, instance: &str) -> Value {
    let mut m = mapping_json(name, instance, SHARED_URL);
    m["spec"]["cluster"]["name"] = json!("Shared EKS");
    m
}

/// `(alsoDeployedBy, alsoDeployedByCount)` of the instance's destination to the shared cluster,
/// and its `summary.sharedClusters`.
fn sharing(i: &ArgoCdInstance) -> Option<(Vec<String>, u64, u64)> {
    let s = i.status.as_ref()?;
    let l = s.linked_clusters.iter().find(|l| l.cluster.id == SHARED_ID)?;
    Some((l.also_deployed_by.clone(), l.also_deployed_by_count, s.summary.as_ref()?.shared_clusters))
}

/// The ClusterSharedWithInstances events of the namespace: (instance, type, note, count).
async fn shared_events(client: &Client, ns: &str) -> Result<Vec<(String, String, String, i32)>, String> {
    let list = Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .map_err(|e| e.to_string())?;
    let mut out: Vec<_> = list
        .items
        .iter()
        .filter(|e| e.reason.as_deref() == Some("ClusterSharedWithInstances"))
        .map(|e| {
            (
                e.regarding.as_ref().and_then(|r| r.name.clone()).unwrap_or_default(),
                e.type_.clone().unwrap_or_default(),
                e.note.clone().unwrap_or_default(),
                e.series.as_ref().map(|s| s.count).unwrap_or(1),
            )
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Waits until each fake Argo CD has been asked for its applications `more` times more.
async fn checks_pass(fakes: &[&FakeArgoCd], more: u64) {
    let from: Vec<u64> = fakes.iter().map(|f| f.requests(Endpoint::Applications)).collect();
    eventually(CONVERGED, &format!("{more} more checks of each instance"), || {
        let from = &from;
        async move {
            let now: Vec<u64> = fakes.iter().map(|f| f.requests(Endpoint::Applications)).collect();
            if now.iter().zip(from).all(|(n, f)| *n >= f + more) {
                Ok(())
            } else {
                Err(format!("{from:?} → {now:?}"))
            }
        }
    })
    .await;
}

fn kubectl(ns: &str, args: &[&str]) -> String {
    let out = std::process::Command::new("kubectl")
        .env("KUBECONFIG", kubeconfig_path())
        .args(args)
        .args(["-n", ns])
        .output()
        .expect("run kubectl");
    assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_deploying_to_one_platform_cluster_see_each_other_everywhere() {
    let client = client().await;
    let ns = namespace(&client, "fleet").await;
    let (prod_cd, prod_token) = fake().await;
    let (backup_cd, backup_token) = fake().await;
    // backup aims three applications at the shared cluster (prod: two, and one in-cluster).
    backup_cd.set_applications(vec![
        App::to_server("api", SHARED_URL),
        App::to_server("jobs", SHARED_URL),
        App::to_name("web", "prod-eks"),
    ]);
    token_secret(&client, &ns, "argocd-readonly", &prod_token).await;
    token_secret(&client, &ns, "backup-token", &backup_token).await;
    create_mapping(&client, &ns, shared_mapping("prod-eks", "prod")).await;
    create_mapping(&client, &ns, shared_mapping("backup-eks", "backup")).await;
    create_instance(&client, &ns, instance_json("prod", &prod_cd.url(), "10s")).await;
    let mut backup = instance_json("backup", &backup_cd.url(), "10s");
    backup["spec"]["credentials"]["secretRef"]["name"] = json!("backup-token");
    backup["spec"]["agentCluster"]["id"] = json!(BACKUP_AGENT);
    backup["spec"]["agentCluster"]["name"] = json!("Backup EU");
    create_instance(&client, &ns, backup).await;
    // No heartbeat writes: once the fleet is steady, nothing at all is written.
    let op = Operator::start_with(&ns, &["--status-heartbeat", "1h"]);

    // Status: each names the other on its destination to the shared cluster.
    for (name, other) in [("prod", "backup"), ("backup", "prod")] {
        let want = (vec![format!("{ns}/{other}")], 1, 1);
        instance_where(&client, &ns, name, CONVERGED, &format!("{name} sees {other}"), |i| {
            sharing(i).as_ref() == Some(&want)
        })
        .await;
    }
    // The in-cluster destinations link each instance's own agent cluster: not shared.
    let api = Api::<ArgoCdInstance>::namespaced(client.clone(), &ns);
    for (name, agent) in [("prod", PROD_AGENT), ("backup", BACKUP_AGENT)] {
        let i = api.get(name).await.expect("instance");
        let in_cluster =
            i.status.as_ref().and_then(|s| s.linked_clusters.iter().find(|l| l.cluster.id == agent));
        assert!(in_cluster.is_some_and(|l| l.also_deployed_by.is_empty()), "{name}: {:?}", i.status);
    }

    // One Warning each, naming the cluster and the other instance.
    let events = eventually(CHECK, "a ClusterSharedWithInstances event for each instance", || {
        let (client, ns) = (&client, &ns);
        async move {
            let got = shared_events(client, ns).await?;
            if got.len() == 2 { Ok(got) } else { Err(format!("{got:?}")) }
        }
    })
    .await;
    for ((instance, type_, note, count), other) in events.iter().zip(["prod", "backup"]) {
        assert_eq!((type_.as_str(), *count), ("Warning", 1), "{instance}: {note}");
        assert!(note.contains(&format!("Shared EKS ({SHARED_ID}) by {ns}/{other}")), "{instance}: {note}");
    }

    // A steady fleet: two more checks of each instance write nothing and repeat no event.
    let versions = |list: &[ArgoCdInstance]| -> BTreeMap<String, Option<String>> {
        list.iter().map(|i| (i.name_any(), i.resource_version())).collect()
    };
    let before = versions(&api.list(&ListParams::default()).await.expect("list").items);
    checks_pass(&[&prod_cd, &backup_cd], 2).await;
    let after = versions(&api.list(&ListParams::default()).await.expect("list").items);
    assert_eq!(before, after, "statuses rewritten by a steady fleet");
    assert_eq!(shared_events(&client, &ns).await.expect("events"), events, "the event once");

    // kubectl get -o wide: SHARED is 1 for both.
    let out = kubectl(&ns, &["get", "aci", "-o", "wide"]);
    let header: Vec<&str> = out.lines().next().unwrap_or("").split_whitespace().collect();
    let column =
        header.iter().position(|h| *h == "SHARED").unwrap_or_else(|| panic!("no SHARED column: {out}"));
    for row in out.lines().skip(1) {
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells.get(column), Some(&"1"), "{out}");
    }

    // The metric: two instances on the shared cluster, one on each agent cluster.
    metrics_where(&op, "argomap_cluster_instances", |m| {
        let n = |id: &str, name: &str| {
            m.value("argomap_cluster_instances", &[("cluster_id", id), ("cluster_name", name)])
        };
        match (n(SHARED_ID, "Shared EKS"), n(PROD_AGENT, "Production EU"), n(BACKUP_AGENT, "Backup EU")) {
            (Some(2.0), Some(1.0), Some(1.0)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    // The read API's view per cluster: both instances and their counts.
    ready(&op).await;
    let token = bearer(&reader_token(&client).await);
    let url = format!("{}/organization/{ORG}/argoCdClusterDeployments", op.http);
    let r = get(&url, Some(&token)).await.expect("GET");
    assert_eq!(r.status, 200, "{}", r.show());
    assert!(r.content_type.starts_with("application/json"), "{}", r.content_type);
    let instance = |name: &str, url: String, apps: u64| {
        json!({"namespace": ns, "name": name, "argocd_url": url, "status": "connected",
               "applications_count": apps, "argocd_cluster_urls": [SHARED_URL]})
    };
    assert_eq!(
        r.json(),
        json!({"results": [
            {
                "cluster_id": BACKUP_AGENT, "cluster_name": "Backup EU", "cloud_provider": "AWS", "type": "MANAGED",
                "argocd_instances": [{
                    "namespace": ns, "name": "backup", "argocd_url": backup_cd.url(), "status": "connected",
                    "applications_count": 0, "argocd_cluster_urls": ["https://kubernetes.default.svc"]
                }]
            },
            {
                "cluster_id": PROD_AGENT, "cluster_name": "Production EU", "cloud_provider": "AWS", "type": "MANAGED",
                "argocd_instances": [{
                    "namespace": ns, "name": "prod", "argocd_url": prod_cd.url(), "status": "connected",
                    "applications_count": 1, "argocd_cluster_urls": ["https://kubernetes.default.svc"]
                }]
            },
            {
                "cluster_id": SHARED_ID, "cluster_name": "Shared EKS", "cloud_provider": "GCP", "type": "SELF_MANAGED",
                "argocd_instances": [instance("backup", backup_cd.url(), 3), instance("prod", prod_cd.url(), 2)]
            }
        ]})
    );

    // Qovery's answer beside it: its contract, strictly (no new member), one entry per instance.
    let r = get(&mapping_url(&op, ORG), Some(&token)).await.expect("GET");
    assert_eq!(r.status, 200, "{}", r.show());
    let body = r.json();
    assert_contract(&body);
    let agents: Vec<&str> = body["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|e| e["agent_cluster_name"].as_str())
        .collect();
    assert_eq!(agents, ["Backup EU", "Production EU"]);
}
