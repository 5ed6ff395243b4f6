//! The response's tests: every rule of the module, checked against the contract's schema.

use super::*;
use crate::crd::{ArgoCdInstanceStatus, ConnectionStatus, IN_CLUSTER_URL, KnownCluster, Reason};
use crate::fixtures::contract::{assert_valid, violations};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

const ORG: &str = "5e1c2b7a-0000-4000-8000-000000000001";
const OTHER_ORG: &str = "5e1c2b7a-0000-4000-8000-000000000002";
const AGENT: &str = "0b9f6a1e-1111-4111-8111-111111111111";
const EKS: &str = "0b9f6a1e-2222-4222-8222-222222222222";
const SECRET_UID: &str = "9a3d8c55-3333-4333-8333-333333333333";

fn ts(s: &str) -> Time {
    Time(s.parse().expect("timestamp"))
}

fn cluster(id: &str, name: &str) -> KnownCluster {
    KnownCluster {
        id: id.into(),
        name: name.into(),
        cloud_provider: CloudProvider::Aws,
        kind: KubernetesType::Managed,
    }
}

fn instance(ns: &str, name: &str, agent_name: &str) -> ArgoCdInstance {
    let mut i = crate::fixtures::instance(ns, name);
    i.spec.agent_cluster = cluster(AGENT, agent_name);
    i.spec.organization_id = Some(ORG.into());
    i.metadata.generation = None;
    i.metadata.creation_timestamp = Some(ts("2026-11-01T08:00:00Z"));
    i
}

fn connected(i: &mut ArgoCdInstance, at: &str) {
    i.status = Some(ArgoCdInstanceStatus {
        connection: Some(ConnectionStatus {
            status: ConnectionState::Connected,
            reason: Reason::Connected,
            message: String::new(),
            last_checked_at: Some(ts(at)),
            last_successful_check_at: Some(ts(at)),
            argocd_version: Some("v3.5.1".into()),
            credentials_expire_at: None,
        }),
        ..Default::default()
    });
}

fn uids(entries: &[(&str, &str, &str)]) -> SecretUids {
    entries.iter().map(|(ns, n, uid)| ((ns.to_string(), n.to_string()), uid.to_string())).collect()
}

fn full_instance() -> (ArgoCdInstance, SecretUids) {
    let mut i = instance("platform", "prod-argocd", "Production EU");
    connected(&mut i, "2026-11-22T10:00:00Z");
    let st = i.status.as_mut().expect("status");
    st.linked_clusters = vec![
        LinkedCluster {
            argocd_cluster_url: "https://10.0.0.1:6443".into(),
            argocd_cluster_name: Some("prod-eks".into()),
            mapping: Some("prod-eks".into()),
            cluster: KnownCluster {
                id: EKS.into(),
                name: "Prod EKS".into(),
                cloud_provider: CloudProvider::Aws,
                kind: KubernetesType::SelfManaged,
            },
            applications_count: 12,
            argocd_connection_state: Some("Successful".into()),
            also_deployed_by: Vec::new(),
            also_deployed_by_count: 0,
            details: Default::default(),
        },
        // The implicit in-cluster link: no mapping, linked to spec.agentCluster.
        LinkedCluster {
            argocd_cluster_url: IN_CLUSTER_URL.into(),
            argocd_cluster_name: Some("in-cluster".into()),
            mapping: None,
            cluster: cluster(AGENT, "Production EU"),
            applications_count: 3,
            argocd_connection_state: None,
            also_deployed_by: Vec::new(),
            also_deployed_by_count: 0,
            details: Default::default(),
        },
    ];
    st.unlinked_clusters = vec![UnlinkedCluster {
        argocd_cluster_url: "https://old.example.com".into(),
        argocd_cluster_name: None,
        applications_count: 0,
        argocd_connection_state: Some("Unknown".into()),
        details: Default::default(),
    }];
    (i, uids(&[("platform", "prod-argocd-creds", SECRET_UID)]))
}

/// The answer for `organization_id`, its instances chosen as the read API chooses them.
fn for_organization<'a>(
    instances: impl IntoIterator<Item = &'a ArgoCdInstance>,
    organization_id: &str,
    uids: &SecretUids,
) -> Built {
    build_with(instances.into_iter().filter(|i| in_organization(i, organization_id)), uids, &|_| false)
}

fn to_json(built: &Built) -> Value {
    let v = serde_json::to_value(&built.list).expect("serialize");
    assert_valid(&v);
    v
}

#[test]
fn every_field_maps_as_the_contract_says() {
    let (i, uids) = full_instance();
    let built = for_organization([&i], ORG, &uids);
    assert!(built.skipped.is_empty());
    assert_eq!(
        to_json(&built),
        json!({"results": [{
            "agent_cluster_id": AGENT,
            "agent_cluster_name": "Production EU",
            "agent_cluster_cloud_provider": "AWS",
            "credentials_id": SECRET_UID,
            "argocd_url": "https://prod-argocd.example.com",
            "status": "connected",
            "last_checked_at": "2026-11-22T10:00:00Z",
            "linked_clusters": [
                {
                    "argocd_cluster_url": "https://10.0.0.1:6443",
                    "argocd_cluster_name": "prod-eks",
                    "qovery_cluster_id": EKS,
                    "qovery_cluster_name": "Prod EKS",
                    "qovery_cluster_cloud_provider": "AWS",
                    "qovery_cluster_type": "SELF_MANAGED",
                    "applications_count": 12
                },
                {
                    "argocd_cluster_url": "https://kubernetes.default.svc",
                    "argocd_cluster_name": "in-cluster",
                    "qovery_cluster_id": AGENT,
                    "qovery_cluster_name": "Production EU",
                    "qovery_cluster_cloud_provider": "AWS",
                    "qovery_cluster_type": "MANAGED",
                    "applications_count": 3
                }
            ],
            "unlinked_clusters": [{
                "argocd_cluster_url": "https://old.example.com",
                "argocd_cluster_name": "https://old.example.com",
                "applications_count": 0
            }]
        }]})
    );
}

#[test]
fn the_response_round_trips_through_its_own_types() {
    let (i, uids) = full_instance();
    let built = for_organization([&i], ORG, &uids);
    let text = serde_json::to_string(&built.list).expect("serialize");
    let back: ArgoCdInstanceMappingResponseList = serde_json::from_str(&text).expect("deserialize");
    assert_eq!(back, built.list);
}

#[test]
fn names_fall_back_to_urls_when_argo_cd_has_none_or_an_empty_one() {
    let (mut i, uids) = full_instance();
    let st = i.status.as_mut().expect("status");
    st.linked_clusters[0].argocd_cluster_name = None;
    st.linked_clusters[1].argocd_cluster_name = Some(String::new());
    st.unlinked_clusters[0].argocd_cluster_name = Some("old".into());
    let built = for_organization([&i], ORG, &uids);
    let e = &built.list.results[0];
    assert_eq!(e.linked_clusters[0].argocd_cluster_name, "https://10.0.0.1:6443");
    assert_eq!(e.linked_clusters[1].argocd_cluster_name, IN_CLUSTER_URL);
    assert_eq!(e.unlinked_clusters[0].argocd_cluster_name, "old");
    to_json(&built);
}

#[test]
fn the_implicit_in_cluster_link_is_a_linked_cluster_to_the_agent_cluster() {
    let (i, uids) = full_instance();
    let built = for_organization([&i], ORG, &uids);
    let in_cluster = built.list.results[0]
        .linked_clusters
        .iter()
        .find(|l| l.argocd_cluster_url == IN_CLUSTER_URL)
        .expect("in-cluster destination is linked");
    assert_eq!(in_cluster.qovery_cluster_id, AGENT);
    assert_eq!(in_cluster.qovery_cluster_name, "Production EU");
    assert!(built.list.results[0].unlinked_clusters.iter().all(|u| u.argocd_cluster_url != IN_CLUSTER_URL));
}

#[test]
fn only_the_organization_asked_for_is_returned_and_uuids_compare_ignoring_case() {
    let (a, mut uids) = full_instance();
    let mut b = instance("team-b", "other-org", "B");
    b.spec.organization_id = Some(OTHER_ORG.into());
    let mut c = instance("team-c", "no-org", "C");
    c.spec.organization_id = None;
    let mut d = instance("team-d", "upper", "D");
    d.spec.organization_id = Some(ORG.to_uppercase());
    for (ns, n) in [("team-b", "other-org-creds"), ("team-c", "no-org-creds"), ("team-d", "upper-creds")] {
        uids.insert((ns.into(), n.into()), SECRET_UID.into());
    }
    let all = [&a, &b, &c, &d];
    let names = |org: &str| -> Vec<String> {
        for_organization(all, org, &uids).list.results.into_iter().map(|e| e.agent_cluster_name).collect()
    };
    assert_eq!(names(ORG), vec!["D", "Production EU"]);
    assert_eq!(names(&ORG.to_uppercase()), vec!["D", "Production EU"]);
    assert_eq!(names(OTHER_ORG), vec!["B"]);
    let unknown = for_organization(all, "00000000-0000-4000-8000-000000000000", &uids);
    assert_eq!(to_json(&unknown), json!({"results": []}));
}

#[test]
fn order_is_deterministic_whatever_the_input_order() {
    let mut instances = Vec::new();
    let mut uids = SecretUids::new();
    // Same agent name twice (tie broken by URL), same name and URL in two namespaces.
    for (ns, name, agent) in
        [("b", "x", "Zeta"), ("a", "y", "Alpha"), ("b", "z", "Alpha"), ("c", "y", "Alpha"), ("a", "w", "Mid")]
    {
        let mut i = instance(ns, name, agent);
        connected(&mut i, "2026-11-22T10:00:00Z");
        let st = i.status.as_mut().expect("status");
        st.unlinked_clusters = ["https://c", "https://a", "https://b"]
            .into_iter()
            .map(|u| UnlinkedCluster {
                argocd_cluster_url: u.into(),
                argocd_cluster_name: None,
                applications_count: 1,
                argocd_connection_state: None,
                details: Default::default(),
            })
            .collect();
        uids.insert((ns.into(), format!("{name}-creds")), SECRET_UID.into());
        instances.push(i);
    }
    let forward = for_organization(instances.iter(), ORG, &uids);
    let backward = for_organization(instances.iter().rev(), ORG, &uids);
    assert_eq!(forward, backward);
    let keys: Vec<(String, String)> =
        forward.list.results.iter().map(|e| (e.agent_cluster_name.clone(), e.argocd_url.clone())).collect();
    assert_eq!(
        keys,
        vec![
            ("Alpha".to_string(), "https://y.example.com".to_string()),
            ("Alpha".to_string(), "https://y.example.com".to_string()),
            ("Alpha".to_string(), "https://z.example.com".to_string()),
            ("Mid".to_string(), "https://w.example.com".to_string()),
            ("Zeta".to_string(), "https://x.example.com".to_string()),
        ]
    );
    let urls: Vec<&str> =
        forward.list.results[0].unlinked_clusters.iter().map(|u| u.argocd_cluster_url.as_str()).collect();
    assert_eq!(urls, ["https://a", "https://b", "https://c"]);
    to_json(&forward);
}

#[test]
fn an_instance_not_checked_yet_is_an_error_as_of_its_creation() {
    let (mut i, uids) = full_instance();
    i.status = None;
    let built = for_organization([&i], ORG, &uids);
    let e = &built.list.results[0];
    assert_eq!(e.status, ConnectionState::Error);
    assert_eq!(e.last_checked_at.to_string(), "2026-11-01T08:00:00Z");
    assert!(e.linked_clusters.is_empty() && e.unlinked_clusters.is_empty());
    to_json(&built);

    // A connection without lastCheckedAt keeps its state and uses the creation time.
    let (mut i, uids) = full_instance();
    let conn = i.status.as_mut().and_then(|s| s.connection.as_mut()).expect("connection");
    conn.status = ConnectionState::Error;
    conn.reason = Reason::Pending;
    conn.last_checked_at = None;
    let built = for_organization([&i], ORG, &uids);
    assert_eq!(built.list.results[0].status, ConnectionState::Error);
    assert_eq!(built.list.results[0].last_checked_at.to_string(), "2026-11-01T08:00:00Z");
    to_json(&built);
}

#[test]
fn an_error_status_is_reported_with_its_last_check() {
    let (mut i, uids) = full_instance();
    let conn = i.status.as_mut().and_then(|s| s.connection.as_mut()).expect("connection");
    conn.status = ConnectionState::Error;
    conn.reason = Reason::Unreachable;
    conn.last_checked_at = Some(ts("2026-11-22T11:30:00Z"));
    let built = for_organization([&i], ORG, &uids);
    let v = to_json(&built);
    assert_eq!(v["results"][0]["status"], "error");
    assert_eq!(v["results"][0]["last_checked_at"], "2026-11-22T11:30:00Z");
}

#[test]
fn an_instance_without_its_credentials_secret_is_left_out() {
    let (i, _) = full_instance();
    // Same Secret name, other namespace: not this instance's Secret.
    let uids = uids(&[("elsewhere", "prod-argocd-creds", SECRET_UID)]);
    let built = for_organization([&i], ORG, &uids);
    assert!(built.list.results.is_empty());
    assert_eq!(
        built.skipped,
        vec![Skipped {
            namespace: "platform".into(),
            name: "prod-argocd".into(),
            reason: SkipReason::NoCredentialsSecret
        }]
    );
    // A UID that is not a UUID could not be a credentials_id.
    let bad = super::tests::uids(&[("platform", "prod-argocd-creds", "not-a-uid")]);
    assert_eq!(for_organization([&i], ORG, &bad).skipped[0].reason, SkipReason::NoCredentialsSecret);
}

#[test]
fn ids_that_are_not_uuids_never_reach_the_response() {
    let (mut i, uids) = full_instance();
    i.status.as_mut().expect("status").linked_clusters[0].cluster.id = "prod-eks".into();
    let built = for_organization([&i], ORG, &uids);
    let e = &built.list.results[0];
    assert_eq!(e.linked_clusters.len(), 1);
    assert_eq!(
        e.unlinked_clusters.iter().map(|u| u.argocd_cluster_url.as_str()).collect::<Vec<_>>(),
        ["https://10.0.0.1:6443", "https://old.example.com"]
    );
    to_json(&built);

    i.spec.agent_cluster.id = "agent".into();
    let built = for_organization([&i], ORG, &uids);
    assert!(built.list.results.is_empty());
    assert_eq!(built.skipped[0].reason, SkipReason::InvalidAgentClusterId);
}

#[test]
fn an_object_without_any_time_is_left_out() {
    let (mut i, uids) = full_instance();
    i.status = None;
    i.metadata.creation_timestamp = None;
    let built = for_organization([&i], ORG, &uids);
    assert_eq!(built.skipped[0].reason, SkipReason::NoTimestamp);
    assert_eq!(SkipReason::NoTimestamp.as_str(), "NoTimestamp");
}

#[test]
fn every_enum_value_is_one_the_contract_knows() {
    let (i, uids) = full_instance();
    let providers = [
        CloudProvider::Aws,
        CloudProvider::Scw,
        CloudProvider::Gcp,
        CloudProvider::Do,
        CloudProvider::Azure,
        CloudProvider::Ovh,
        CloudProvider::Civo,
        CloudProvider::Hetzner,
        CloudProvider::Oracle,
        CloudProvider::Ibm,
        CloudProvider::OnPremise,
    ];
    let kinds = [KubernetesType::Managed, KubernetesType::SelfManaged, KubernetesType::PartiallyManaged];
    for (n, p) in providers.into_iter().enumerate() {
        let mut i = i.clone();
        i.spec.agent_cluster.cloud_provider = p;
        let l = &mut i.status.as_mut().expect("status").linked_clusters[0];
        l.cluster.cloud_provider = p;
        l.cluster.kind = kinds[n % kinds.len()];
        for state in [ConnectionState::Connected, ConnectionState::Error] {
            let mut i = i.clone();
            i.status.as_mut().and_then(|s| s.connection.as_mut()).expect("connection").status = state;
            to_json(&for_organization([&i], ORG, &uids));
        }
    }
}

#[test]
fn the_validator_checks_formats_enums_and_field_names() {
    let (i, uids) = full_instance();
    let good = serde_json::to_value(for_organization([&i], ORG, &uids).list).expect("serialize");
    assert_valid(&good);
    type Breaks = fn(&mut Value);
    let broken: [(&str, Breaks); 7] = [
        ("uuid", |v| v["results"][0]["credentials_id"] = json!("prod-argocd-creds")),
        ("date-time", |v| v["results"][0]["last_checked_at"] = json!("yesterday")),
        ("enum", |v| v["results"][0]["status"] = json!("Connected")),
        ("provider", |v| v["results"][0]["agent_cluster_cloud_provider"] = json!("aws")),
        ("required", |v| {
            v["results"][0].as_object_mut().map(|o| o.remove("argocd_url"));
        }),
        ("extra member", |v| v["results"][0]["linked_clusters"][0]["mapping"] = json!("prod-eks")),
        ("integer", |v| v["results"][0]["unlinked_clusters"][0]["applications_count"] = json!("0")),
    ];
    for (what, breaks) in broken {
        let mut v = good.clone();
        breaks(&mut v);
        assert!(!violations(&v).is_empty(), "{what}: validator accepted {v}");
    }
}

#[test]
fn the_capped_answer_is_the_built_one_byte_for_byte_and_stops_at_its_limit() {
    let (full, uids) = full_instance();
    let mut instances = vec![full.clone()];
    for (ns, name, agent) in [("b", "z", "Zed"), ("a", "y", "Alpha"), ("c", "x", "Alpha")] {
        let mut i = full.clone();
        i.metadata.namespace = Some(ns.into());
        i.metadata.name = Some(name.into());
        i.spec.agent_cluster.name = agent.into();
        instances.push(i);
    }
    let mut uids = uids.clone();
    for ns in ["a", "b", "c"] {
        let secret = full.spec.credentials.secret_ref.name.clone();
        uids.insert((ns.into(), secret), "9a3d8c55-3333-4333-8333-333333333399".into());
    }
    let stale = |i: &ArgoCdInstance| i.metadata.name.as_deref() == Some("y");
    let built = build_with(&instances, &uids, &stale);
    assert_eq!(built.list.results.len(), 4);
    let expected = serde_json::to_vec(&built.list).expect("json");
    let (bytes, skipped) = write_capped(&instances, &uids, &stale, usize::MAX).expect("no limit");
    assert_eq!(String::from_utf8(bytes).expect("utf-8"), String::from_utf8(expected.clone()).expect("utf-8"));
    assert_eq!(skipped, built.skipped);
    assert!(write_capped(&instances, &uids, &stale, expected.len()).is_ok(), "exactly at the limit");
    assert_eq!(
        write_capped(&instances, &uids, &stale, expected.len() - 1).err(),
        Some(TooLarge { limit: expected.len() - 1 })
    );
    let empty = write_capped(std::iter::empty(), &uids, &stale, 64).expect("empty");
    assert_eq!(empty.0, b"{\"results\":[]}");
}

#[test]
fn uuids_are_recognised_in_either_case_and_nothing_else() {
    assert!(is_uuid(AGENT));
    assert!(is_uuid(&AGENT.to_uppercase()));
    for bad in [
        "",
        "0b9f6a1e11114111811111111111111111111",
        "0b9f6a1e-1111-4111-8111-11111111111",
        "0b9f6a1e-1111-4111-8111-1111111111111",
        "0b9f6a1g-1111-4111-8111-111111111111",
        "0b9f6a1e_1111-4111-8111-111111111111",
        "{0b9f6a1e-1111-4111-8111-11111111111}",
        "0b9f6a1e-1111-4111-8111-1111111111é",
    ] {
        assert!(!is_uuid(bad), "{bad}");
    }
}
