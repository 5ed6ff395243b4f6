//! `GET /organization/{organizationId}/argoCdClusterDeployments`: the same checks as Qovery's
//! path (they share them), its body, and Qovery's answer unchanged beside it.

use super::*;
use crate::crd::LinkedCluster;
use crate::model::qovery;
use pretty_assertions::assert_eq;

const EKS: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";

fn clusters_path(org: &str) -> String {
    format!("/organization/{org}/argoCdClusterDeployments")
}

fn link(url: &str, id: &str, name: &str, mapping: Option<&str>, apps: u64) -> LinkedCluster {
    LinkedCluster {
        argocd_cluster_url: url.into(),
        argocd_cluster_name: None,
        mapping: mapping.map(str::to_owned),
        cluster: KnownCluster {
            id: id.into(),
            name: name.into(),
            cloud_provider: CloudProvider::Aws,
            kind: KubernetesType::Managed,
        },
        applications_count: apps,
        argocd_connection_state: None,
        also_deployed_by: Vec::new(),
        also_deployed_by_count: 0,
        details: Default::default(),
    }
}

fn linked_to(mut i: ArgoCdInstance, links: Vec<LinkedCluster>) -> ArgoCdInstance {
    if let Some(s) = i.status.as_mut() {
        s.linked_clusters = links;
    }
    i
}

/// a/one and a/two deploy to EKS, so does b/three (stale: its last success is old) and c/four
/// of the other organization; a/one also deploys in-cluster to its agent cluster.
fn fleet_instances() -> Vec<ArgoCdInstance> {
    let eks = |url: &str, apps| link(url, EKS, "Prod EKS", Some("eks"), apps);
    let mut three = linked_to(instance("b", "three", ORG), vec![eks("https://eks.b", 1)]);
    if let Some(c) = three.status.as_mut().and_then(|s| s.connection.as_mut()) {
        c.last_successful_check_at = Some(Time("2020-01-01T00:00:00Z".parse().expect("time")));
    }
    vec![
        linked_to(
            instance("a", "one", ORG),
            vec![
                eks("https://10.0.0.1:6443", 12),
                link("https://kubernetes.default.svc", AGENT, "a/one", None, 3),
            ],
        ),
        linked_to(instance("a", "two", ORG), vec![eks("https://eks.example.com", 2)]),
        three,
        linked_to(instance("c", "four", OTHER_ORG), vec![eks("https://eks.c", 9)]),
    ]
}

/// The credentials Secrets' UIDs of [`fleet_instances`].
fn fleet_secrets() -> SecretUids {
    [("a", "one"), ("a", "two"), ("b", "three"), ("c", "four")]
        .into_iter()
        .enumerate()
        .map(|(n, (ns, name))| {
            ((ns.to_string(), format!("{name}-creds")), format!("9a3d8c55-3333-4333-8333-3333333333{n:02}"))
        })
        .collect()
}

fn fleet_harness(config: HttpConfig) -> Harness {
    harness_with(config, reviewer(), &fleet_secrets(), fleet_instances())
}

/// (cluster id, [(namespace/name, applications)]) of a 200.
fn deployments(r: &Reply) -> Vec<(String, Vec<(String, u64)>)> {
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let v = r.json();
    v["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|c| {
            let instances = c["argocd_instances"]
                .as_array()
                .expect("instances")
                .iter()
                .map(|i| {
                    let key = format!(
                        "{}/{}",
                        i["namespace"].as_str().expect("ns"),
                        i["name"].as_str().expect("name")
                    );
                    (key, i["applications_count"].as_u64().expect("count"))
                })
                .collect();
            (c["cluster_id"].as_str().expect("id").to_string(), instances)
        })
        .collect()
}

#[tokio::test]
async fn each_platform_cluster_lists_the_instances_of_the_organization_the_caller_may_see() {
    let h = fleet_harness(HttpConfig::default());
    let r = get(&h, &clusters_path(ORG), Some("token-all")).await;
    assert_eq!(r.headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(
        r.json(),
        json!({"results": [
            {
                "cluster_id": EKS, "cluster_name": "Prod EKS", "cloud_provider": "AWS", "type": "MANAGED",
                "argocd_instances": [
                    {
                        "namespace": "a", "name": "one", "argocd_url": "https://one.a.example.com",
                        "status": "connected", "applications_count": 12,
                        "argocd_cluster_urls": ["https://10.0.0.1:6443"]
                    },
                    {
                        "namespace": "a", "name": "two", "argocd_url": "https://two.a.example.com",
                        "status": "connected", "applications_count": 2,
                        "argocd_cluster_urls": ["https://eks.example.com"]
                    },
                    {
                        "namespace": "b", "name": "three", "argocd_url": "https://three.b.example.com",
                        "status": "error", "applications_count": 1,
                        "argocd_cluster_urls": ["https://eks.b"]
                    }
                ]
            },
            {
                "cluster_id": AGENT, "cluster_name": "a/one", "cloud_provider": "AWS", "type": "MANAGED",
                "argocd_instances": [{
                    "namespace": "a", "name": "one", "argocd_url": "https://one.a.example.com",
                    "status": "connected", "applications_count": 3,
                    "argocd_cluster_urls": ["https://kubernetes.default.svc"]
                }]
            }
        ]})
    );
    // Only namespaces the caller may list; never another organization's instances.
    let only_a = deployments(&get(&h, &clusters_path(ORG), Some("token-a")).await);
    assert_eq!(
        only_a,
        [
            (EKS.to_string(), vec![("a/one".to_string(), 12), ("a/two".to_string(), 2)]),
            (AGENT.to_string(), vec![("a/one".to_string(), 3)]),
        ]
    );
    let other = deployments(&get(&h, &clusters_path(OTHER_ORG), Some("token-all")).await);
    assert_eq!(other, [(EKS.to_string(), vec![("c/four".to_string(), 9)])]);
    // The organization id is compared as Qovery's path compares it.
    let upper = deployments(&get(&h, &clusters_path(&ORG.to_uppercase()), Some("token-a")).await);
    assert_eq!(upper, only_a);
}

#[tokio::test]
async fn the_cluster_view_answers_every_refusal_as_qovery_s_path_does() {
    let h = fleet_harness(HttpConfig::default());
    let unknown = "00000000-0000-4000-8000-000000000000";
    for auth in [None, Some("Bearer nope")] {
        for org in [ORG, "not-a-uuid"] {
            let r = send(&h.router, "GET", &clusters_path(org), auth).await;
            r.error(StatusCode::UNAUTHORIZED, "Unauthorized");
        }
    }
    get(&h, &clusters_path("not-a-uuid"), Some("token-all"))
        .await
        .error(StatusCode::BAD_REQUEST, "BadRequest");
    get(&h, &clusters_path(ORG), Some("token-none")).await.error(StatusCode::FORBIDDEN, "Forbidden");
    // No existence oracle: an unknown organization answers as one the caller cannot see.
    let exists = get(&h, &clusters_path(OTHER_ORG), Some("token-a")).await;
    let missing = get(&h, &clusters_path(unknown), Some("token-a")).await;
    exists.error(StatusCode::FORBIDDEN, "Forbidden");
    assert_eq!(missing.text, exists.text);
    let r = get(&h, &clusters_path(unknown), Some("token-all")).await;
    assert_eq!((r.status, r.json()), (StatusCode::OK, json!({"results": []})));
    send(&h.router, "POST", &clusters_path(ORG), Some("Bearer token-a"))
        .await
        .error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed");
    send(&h.admin, "GET", &clusters_path(ORG), Some("Bearer token-all"))
        .await
        .error(StatusCode::NOT_FOUND, "NotFound");
    h.readiness.set(false);
    get(&h, &clusters_path(ORG), Some("token-all")).await.error(StatusCode::SERVICE_UNAVAILABLE, "NotReady");

    let small = fleet_harness(HttpConfig { max_response_bytes: 300, ..Default::default() });
    get(&small, &clusters_path(ORG), Some("token-all"))
        .await
        .error(StatusCode::PAYLOAD_TOO_LARGE, "ResponseTooLarge");
}

#[tokio::test]
async fn qovery_s_answer_stays_byte_for_byte_what_its_model_writes() {
    let h = fleet_harness(HttpConfig::default());
    let r = get(&h, &path(ORG), Some("token-all")).await;
    assert_eq!(r.names(), ["a/one", "a/two", "b/three"]);
    // The same instances, straight through the model: the shared checks changed no byte.
    let instances: Vec<ArgoCdInstance> =
        fleet_instances().into_iter().filter(|i| qovery::in_organization(i, ORG)).collect();
    let stale = |i: &ArgoCdInstance| i.metadata.name.as_deref() == Some("three");
    let (bytes, skipped) =
        qovery::write_capped(instances.iter(), &fleet_secrets(), &stale, 1 << 20).expect("fits");
    assert!(skipped.is_empty());
    assert_eq!(r.text.as_bytes(), bytes.as_slice());
    assert!(r.text.contains("\"status\":\"error\""), "b/three is stale there too: {}", r.text);
}
