//! The fleet view's tests: grouping by platform cluster, `alsoDeployedBy`, its event, and the
//! read API's view.

use std::sync::Arc;

use pretty_assertions::assert_eq;

use super::*;
use crate::crd::{
    AutomaticLink, CloudProvider, ConnectionState, ConnectionStatus, DestinationDetails, IdentityLabel,
    KubernetesType, ProfileRef, Reason, Summary,
};
use crate::model::size::{LIST_BYTES, LIST_CAP};

const EKS: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
const GKE: &str = "0b9f6a1e-2222-4222-8222-222222222222";
const AGENT: &str = "0b9f6a1e-1111-4111-8111-111111111111";

fn cluster(id: &str, name: &str) -> KnownCluster {
    KnownCluster {
        id: id.into(),
        name: name.into(),
        cloud_provider: CloudProvider::Aws,
        kind: KubernetesType::Managed,
    }
}

/// A destination `url` linked to cluster `id` by `mapping` (`None`: the implicit link).
fn linked(url: &str, id: &str, name: &str, mapping: Option<&str>, apps: u64) -> LinkedCluster {
    LinkedCluster {
        argocd_cluster_url: url.into(),
        argocd_cluster_name: None,
        mapping: mapping.map(str::to_owned),
        cluster: cluster(id, name),
        applications_count: apps,
        argocd_connection_state: None,
        also_deployed_by: Vec::new(),
        also_deployed_by_count: 0,
        details: Default::default(),
    }
}

fn automatic(url: &str, id: &str, name: &str, apps: u64) -> LinkedCluster {
    LinkedCluster {
        details: DestinationDetails {
            automatic: Some(AutomaticLink {
                identity: IdentityLabel {
                    key: "clusterprofile.x-k8s.io/origin".into(),
                    value: "fleet/x".into(),
                },
                cluster_profile_ref: ProfileRef { namespace: "fleet".into(), name: "x".into() },
                note: String::new(),
                duplicates: Vec::new(),
            }),
            ..Default::default()
        },
        ..linked(url, id, name, None, apps)
    }
}

fn status(state: ConnectionState, links: Vec<LinkedCluster>) -> ArgoCdInstanceStatus {
    ArgoCdInstanceStatus {
        connection: Some(ConnectionStatus {
            status: state,
            reason: if state == ConnectionState::Connected { Reason::Connected } else { Reason::Timeout },
            message: String::new(),
            last_checked_at: None,
            last_successful_check_at: None,
            argocd_version: None,
            credentials_expire_at: None,
        }),
        summary: Some(Summary { linked_clusters: links.len() as u64, ..Default::default() }),
        linked_clusters: links,
        ..Default::default()
    }
}

fn instance(ns: &str, name: &str, links: Vec<LinkedCluster>) -> ArgoCdInstance {
    let mut i = crate::fixtures::instance(ns, name);
    i.status = Some(status(ConnectionState::Connected, links));
    i
}

fn fleet(instances: &[&ArgoCdInstance]) -> Vec<Arc<ArgoCdInstance>> {
    instances.iter().map(|i| Arc::new((*i).clone())).collect()
}

/// `i`'s status after [`share`] against `all`.
fn shared_status(i: &ArgoCdInstance, all: &[&ArgoCdInstance]) -> ArgoCdInstanceStatus {
    let mut s = i.status.clone().expect("status");
    share(&mut s, i, &fleet(all));
    s
}

fn also(s: &ArgoCdInstanceStatus) -> Vec<(String, Vec<String>, u64)> {
    s.linked_clusters
        .iter()
        .map(|l| (l.argocd_cluster_url.clone(), l.also_deployed_by.clone(), l.also_deployed_by_count))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The view per platform cluster

#[test]
fn each_cluster_lists_the_instances_deploying_to_it_with_their_counts_and_links() {
    let a = instance(
        "team-a",
        "argocd",
        vec![
            linked("https://10.0.0.1:6443", EKS, "Prod EKS", Some("prod-eks"), 12),
            linked("https://kubernetes.default.svc", AGENT, "Agent", None, 3),
            // A second destination to the same cluster: counted with the first.
            automatic("https://eks.internal:443", EKS, "Prod EKS", 4),
        ],
    );
    let b = instance(
        "team-b",
        "argocd",
        vec![linked("https://eks.example.com", EKS, "Prod EKS", Some("eks"), 1)],
    );
    let view = clusters([&b, &a]);
    assert_eq!(
        view,
        vec![
            ClusterDeployments {
                cluster: cluster(AGENT, "Agent"),
                instances: vec![Deployment {
                    namespace: "team-a".into(),
                    name: "argocd".into(),
                    argocd_url: "https://argocd.example.com".into(),
                    applications_count: 3,
                    destinations: vec![Destination {
                        argocd_cluster_url: "https://kubernetes.default.svc".into(),
                        link: Link::Implicit,
                        applications_count: 3,
                    }],
                }],
            },
            ClusterDeployments {
                cluster: cluster(EKS, "Prod EKS"),
                instances: vec![
                    Deployment {
                        namespace: "team-a".into(),
                        name: "argocd".into(),
                        argocd_url: "https://argocd.example.com".into(),
                        applications_count: 16,
                        destinations: vec![
                            Destination {
                                argocd_cluster_url: "https://10.0.0.1:6443".into(),
                                link: Link::Mapping("prod-eks".into()),
                                applications_count: 12,
                            },
                            Destination {
                                argocd_cluster_url: "https://eks.internal:443".into(),
                                link: Link::Automatic,
                                applications_count: 4,
                            },
                        ],
                    },
                    Deployment {
                        namespace: "team-b".into(),
                        name: "argocd".into(),
                        argocd_url: "https://argocd.example.com".into(),
                        applications_count: 1,
                        destinations: vec![Destination {
                            argocd_cluster_url: "https://eks.example.com".into(),
                            link: Link::Mapping("eks".into()),
                            applications_count: 1,
                        }],
                    },
                ],
            },
        ]
    );
}

#[test]
fn ids_compare_case_insensitively_and_ids_that_are_not_uuids_are_left_out() {
    let a = instance("n", "a", vec![linked("https://a", &EKS.to_uppercase(), "Prod EKS", Some("m"), 1)]);
    let b = instance(
        "n",
        "b",
        vec![
            linked("https://b", EKS, "Prod EKS", Some("m"), 2),
            linked("https://c", "not-a-uuid", "Odd", Some("o"), 5),
        ],
    );
    let view = clusters([&a, &b]);
    assert_eq!(view.len(), 1, "{view:?}");
    assert_eq!(view[0].cluster.id, EKS, "reported in lower case");
    let names: Vec<&str> = view[0].instances.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(cluster_key(&EKS.to_uppercase()).as_deref(), Some(EKS));
    assert_eq!(cluster_key("not-a-uuid"), None);
}

#[test]
fn instances_without_a_status_or_links_deploy_nowhere() {
    let mut bare = crate::fixtures::instance("n", "bare");
    bare.status = None;
    let empty = instance("n", "empty", Vec::new());
    let failing = {
        let mut i = crate::fixtures::instance("n", "failing");
        i.status = Some(status(ConnectionState::Error, Vec::new()));
        i
    };
    assert_eq!(clusters([&bare, &empty, &failing]), Vec::new());
}

#[test]
fn failing_and_stale_statuses_still_say_where_their_argo_cd_deploys() {
    let mut down = instance("n", "down", vec![linked("https://a", EKS, "Prod EKS", Some("m"), 7)]);
    if let Some(c) = down.status.as_mut().and_then(|s| s.connection.as_mut()) {
        c.status = ConnectionState::Error;
        c.reason = Reason::Unreachable;
    }
    let up = instance("n", "up", vec![linked("https://b", EKS, "Prod EKS", Some("m"), 1)]);
    let view = clusters([&down, &up]);
    assert_eq!(view[0].instances.iter().map(|d| d.applications_count).collect::<Vec<_>>(), [7, 1]);
    assert_eq!(also(&shared_status(&up, &[&down, &up])), [("https://b".into(), vec!["n/down".into()], 1)]);
}

#[test]
fn when_statuses_disagree_on_a_cluster_the_first_instance_names_it_whatever_the_input_order() {
    let mut b = instance("n", "b", vec![linked("https://b", EKS, "EKS (as b says)", Some("m"), 1)]);
    if let Some(l) = b.status.as_mut().and_then(|s| s.linked_clusters.first_mut()) {
        l.cluster.cloud_provider = CloudProvider::Gcp;
    }
    let a = instance(
        "n",
        "a",
        vec![
            linked("https://z", EKS, "EKS (a's second)", Some("z"), 1),
            linked("https://a", EKS, "EKS (as a says)", Some("m"), 1),
        ],
    );
    for order in [vec![&a, &b], vec![&b, &a]] {
        let view = clusters(order);
        assert_eq!(view[0].cluster, cluster(EKS, "EKS (as a says)"));
    }
}

#[test]
fn clusters_are_ordered_by_name_then_id() {
    let i = instance(
        "n",
        "a",
        vec![
            linked("https://1", GKE, "Beta", Some("m1"), 0),
            linked("https://2", EKS, "Alpha", Some("m2"), 0),
            linked("https://3", AGENT, "Beta", None, 0),
        ],
    );
    let ids: Vec<String> = clusters([&i]).into_iter().map(|c| c.cluster.id).collect();
    assert_eq!(ids, [EKS, AGENT, GKE]);
}

#[test]
fn a_zero_application_link_still_counts() {
    let a = instance("n", "a", vec![linked("https://a", EKS, "Prod EKS", Some("m"), 0)]);
    let b = instance("n", "b", vec![linked("https://b", EKS, "Prod EKS", Some("m"), 0)]);
    assert_eq!(clusters([&a, &b])[0].instances.len(), 2);
}

// ---------------------------------------------------------------------------------------------
// alsoDeployedBy and summary.sharedClusters

#[test]
fn each_link_names_the_other_instances_of_its_cluster_and_the_summary_counts_shared_clusters() {
    let me = instance(
        "team-a",
        "argocd",
        vec![
            linked("https://10.0.0.1:6443", EKS, "Prod EKS", Some("prod-eks"), 12),
            linked("https://eks.internal", &EKS.to_uppercase(), "Prod EKS", Some("eks-internal"), 1),
            linked("https://kubernetes.default.svc", AGENT, "Agent", None, 3),
            linked("https://gke", GKE, "GKE", Some("gke"), 0),
        ],
    );
    // Same name in another namespace: another instance. Its own second link to EKS: one name.
    let b = instance(
        "team-b",
        "argocd",
        vec![
            linked("https://x", EKS, "Prod EKS", Some("x"), 1),
            linked("https://y", EKS, "Prod EKS", Some("y"), 1),
        ],
    );
    let c = instance("team-c", "cd", vec![linked("https://kubernetes.default.svc", AGENT, "Agent", None, 0)]);
    let unrelated = instance("team-d", "other", vec![linked("https://z", "not-a-uuid", "Odd", Some("z"), 1)]);
    let s = shared_status(&me, &[&c, &me, &unrelated, &b]);
    assert_eq!(
        also(&s),
        [
            ("https://10.0.0.1:6443".into(), vec!["team-b/argocd".into()], 1),
            ("https://eks.internal".into(), vec!["team-b/argocd".into()], 1),
            ("https://kubernetes.default.svc".into(), vec!["team-c/cd".into()], 1),
            ("https://gke".into(), vec![], 0),
        ]
    );
    assert_eq!(s.summary.as_ref().map(|x| x.shared_clusters), Some(2), "EKS and the agent cluster");
    assert!(!s.truncated);
}

#[test]
fn at_most_ten_are_named_and_the_count_is_exact() {
    let me = instance("n", "me", vec![linked("https://a", EKS, "Prod EKS", Some("m"), 1)]);
    let others: Vec<ArgoCdInstance> = (0..25)
        .map(|n| instance("n", &format!("other-{n:02}"), vec![linked("https://o", EKS, "EKS", Some("m"), 1)]))
        .collect();
    let mut all: Vec<&ArgoCdInstance> = others.iter().rev().collect();
    all.push(&me);
    let s = shared_status(&me, &all);
    let l = &s.linked_clusters[0];
    let want: Vec<String> = (0..MAX_NAMED).map(|n| format!("n/other-{n:02}")).collect();
    assert_eq!((l.also_deployed_by.clone(), l.also_deployed_by_count), (want, 25), "the first ten in order");
}

#[test]
fn what_no_longer_holds_is_cleared() {
    let mut me = instance("n", "me", vec![linked("https://a", EKS, "Prod EKS", Some("m"), 1)]);
    let other = instance("n", "other", vec![linked("https://o", EKS, "EKS", Some("m"), 1)]);
    let s = shared_status(&me, &[&me, &other]);
    assert_eq!(s.summary.as_ref().map(|x| x.shared_clusters), Some(1));
    me.status = Some(s);
    let alone = shared_status(&me, &[&me]);
    assert_eq!(also(&alone), [("https://a".into(), vec![], 0)]);
    assert_eq!(alone.summary.as_ref().map(|x| x.shared_clusters), Some(0));
    let moved = instance("n", "other", vec![linked("https://o", GKE, "GKE", Some("m"), 1)]);
    assert_eq!(also(&shared_status(&me, &[&me, &moved])), [("https://a".into(), vec![], 0)]);
}

#[test]
fn a_steady_fleet_gives_equal_statuses_whatever_the_others_wrote() {
    let mut a = instance("n", "a", vec![linked("https://a", EKS, "Prod EKS", Some("m"), 1)]);
    let mut b = instance("n", "b", vec![linked("https://b", EKS, "Prod EKS", Some("m"), 2)]);
    // Each writes in turn, from what the other wrote last; then again.
    let first_a = shared_status(&a, &[&a, &b]);
    a.status = Some(first_a.clone());
    let first_b = shared_status(&b, &[&a, &b]);
    b.status = Some(first_b.clone());
    assert_eq!(shared_status(&a, &[&b, &a]), first_a, "input order does not matter");
    assert_eq!(shared_status(&b, &[&a, &b]), first_b);
    assert_eq!(also(&first_a), [("https://a".into(), vec!["n/b".into()], 1)]);
    assert_eq!(also(&first_b), [("https://b".into(), vec!["n/a".into()], 1)]);
}

#[test]
fn the_names_count_towards_the_lists_byte_budget() {
    // Enough links that ten long names each push the list past LIST_BYTES.
    let long = |n: usize| format!("{}-{n:02}", "x".repeat(240));
    let n_links = LIST_BYTES / 2000;
    let links: Vec<LinkedCluster> =
        (0..n_links).map(|n| linked(&format!("https://c{n:04}"), EKS, "Prod EKS", Some("m"), 1)).collect();
    let me = instance("n", "me", links);
    let others: Vec<ArgoCdInstance> = (0..MAX_NAMED)
        .map(|n| instance("n", &long(n), vec![linked("https://o", EKS, "EKS", Some("m"), 1)]))
        .collect();
    let mut all: Vec<&ArgoCdInstance> = others.iter().collect();
    all.push(&me);
    let s = shared_status(&me, &all);
    assert!(s.truncated, "cut to the budget");
    assert!(s.linked_clusters.len() < n_links && !s.linked_clusters.is_empty());
    let bytes = serde_json::to_vec(&s.linked_clusters).expect("json").len();
    assert!(bytes <= LIST_BYTES + LIST_CAP, "{bytes}");
    assert_eq!(s.summary.as_ref().map(|x| x.shared_clusters), Some(1));
}

#[test]
fn a_status_with_no_summary_gets_none() {
    let mut i = instance("n", "a", Vec::new());
    if let Some(s) = i.status.as_mut() {
        s.summary = None;
    }
    let s = shared_status(&i, &[&i]);
    assert_eq!(s.summary, None);
}

#[test]
fn evaluation_fills_it_in_from_the_circumstances_and_a_second_one_writes_nothing() {
    use crate::model::evaluate::{Circumstances, Observed, Outcome, evaluate};
    use crate::model::status::instance_needs_write;
    let other =
        instance("n", "other", vec![linked("https://o", crate::fixtures::CLUSTER_ID, "Agent", None, 1)]);
    let mut me = crate::fixtures::instance("n", "me");
    let observed = Arc::new(Observed {
        destinations: crate::model::destinations::destinations(
            &[crate::fixtures::cluster(crate::crd::IN_CLUSTER_URL, "in-cluster")],
            &[crate::fixtures::app("argocd", "guestbook", Some(crate::crd::IN_CLUSTER_URL), None)],
        ),
        version: None,
        credentials_expire_at: None,
        can_get_clusters: None,
        can_get_applications: None,
    });
    let circumstances = Circumstances { fleet: fleet(&[&me, &other]), ..Default::default() };
    let now = jiff::Timestamp::UNIX_EPOCH;
    let outcome = Outcome::Observed { observed, fresh: true };
    let first = evaluate(&me, &[], &outcome, &circumstances, now).instance;
    assert_eq!(also(&first), [(crate::crd::IN_CLUSTER_URL.into(), vec!["n/other".into()], 1)]);
    assert_eq!(first.summary.as_ref().map(|s| s.shared_clusters), Some(1));
    me.status = Some(first.clone());
    let second = evaluate(&me, &[], &outcome, &circumstances, now).instance;
    assert!(!instance_needs_write(Some(&first), &second, std::time::Duration::ZERO), "steady");
    // A failed check keeps the lists and recomputes who else deploys there.
    let failed = Outcome::Failed { reason: Reason::Timeout, message: "slow".into(), fresh: true };
    let alone = Circumstances { fleet: fleet(&[&me]), ..Default::default() };
    let third = evaluate(&me, &[], &failed, &alone, now).instance;
    assert_eq!(also(&third), [(crate::crd::IN_CLUSTER_URL.into(), vec![], 0)]);
}

// ---------------------------------------------------------------------------------------------
// The event

use super::events::{CLUSTER_SHARED, MAX_CLUSTERS_NAMED, shared};
use crate::model::events::EventType;

/// A status whose links have these `alsoDeployedBy` (cluster id, others).
fn with_others(links: &[(&str, &[&str])]) -> ArgoCdInstanceStatus {
    let links = links
        .iter()
        .enumerate()
        .map(|(n, (id, others))| LinkedCluster {
            also_deployed_by: others.iter().map(|o| o.to_string()).collect(),
            also_deployed_by_count: others.len() as u64,
            ..linked(&format!("https://c{n}"), id, &format!("Cluster {n}"), Some("m"), 1)
        })
        .collect();
    status(ConnectionState::Connected, links)
}

#[test]
fn the_event_comes_when_a_linked_cluster_first_has_other_instances() {
    let alone = with_others(&[(EKS, &[]), (GKE, &[])]);
    let shared_eks = with_others(&[(EKS, &["n/b", "m/c"]), (GKE, &[])]);
    let t = shared(Some(&alone), &shared_eks).expect("an event");
    assert_eq!((t.type_, t.reason, t.action), (EventType::Warning, CLUSTER_SHARED, "Check"));
    assert_eq!(
        t.note,
        format!(
            "other ArgoCdInstances also deploy to platform clusters this one deploys to: Cluster 0 ({EKS}) by n/b, m/c"
        )
    );
    assert!(shared(None, &shared_eks).is_some(), "a first status is news too");
    assert_eq!(shared(Some(&shared_eks), &shared_eks), None, "steady");
    assert_eq!(
        shared(Some(&shared_eks), &with_others(&[(EKS, &["n/b", "m/c", "n/d"])])),
        None,
        "one more is no news"
    );
    assert_eq!(shared(Some(&shared_eks), &alone), None, "no longer shared: no event");
    assert!(shared(Some(&alone), &with_others(&[(EKS, &[]), (GKE, &["n/b"])])).is_some(), "another cluster");
    assert_eq!(shared(Some(&alone), &alone), None);
}

#[test]
fn the_event_names_each_cluster_once_and_at_most_ten() {
    // Two destinations of one cluster, one with an id in capitals: one cluster.
    let upper = EKS.to_uppercase();
    let t = shared(None, &with_others(&[(EKS, &["n/b"]), (&upper, &["n/b"])])).expect("event");
    assert_eq!(t.note.matches(EKS).count(), 1, "{}", t.note);
    // Capped: the others beyond alsoDeployedBy's ten are counted.
    let mut s = with_others(&[(EKS, &["n/b"])]);
    s.linked_clusters[0].also_deployed_by_count = 14;
    let t = shared(None, &s).expect("event");
    assert!(t.note.ends_with("by n/b and 13 more"), "{}", t.note);
    let ids: Vec<String> = (0..15).map(|n| format!("0b9f6a1e-0000-4000-8000-0000000000{n:02}")).collect();
    let links: Vec<(&str, &[&str])> = ids.iter().map(|id| (id.as_str(), &["n/b"][..])).collect();
    let t = shared(None, &with_others(&links)).expect("event");
    assert_eq!(t.note.matches(" by n/b").count(), MAX_CLUSTERS_NAMED, "{}", t.note);
    assert!(
        t.note.ends_with("and 5 more clusters; see status.linkedClusters[].alsoDeployedBy"),
        "{}",
        t.note
    );
}

#[test]
fn the_event_note_keeps_cluster_names_printable() {
    let mut s = with_others(&[(EKS, &["n/b"])]);
    s.linked_clusters[0].cluster.name = "Prod\nEKS\u{1b}[31m".into();
    let t = shared(None, &s).expect("event");
    assert!(t.note.contains("ProdEKS[31m ("), "{}", t.note);
}

// ---------------------------------------------------------------------------------------------
// The read API's view

use super::response::{build, write_capped};
use crate::model::qovery::TooLarge;

#[test]
fn the_answer_is_the_view_in_snake_case_with_each_instances_connection() {
    let mut a = instance(
        "team-a",
        "argocd",
        vec![
            linked("https://10.0.0.1:6443", EKS, "Prod EKS", Some("prod-eks"), 12),
            automatic("https://eks.internal", EKS, "Prod EKS", 4),
        ],
    );
    if let Some(l) = a.status.as_mut().and_then(|s| s.linked_clusters.first_mut()) {
        l.cluster.kind = KubernetesType::SelfManaged;
    }
    let stale = instance("team-b", "stale", vec![linked("https://eks", EKS, "Prod EKS", Some("m"), 1)]);
    let mut down = instance("team-c", "down", vec![linked("https://eks", EKS, "Prod EKS", Some("m"), 2)]);
    down.status = down.status.map(|s| ArgoCdInstanceStatus {
        connection: status(ConnectionState::Error, Vec::new()).connection,
        ..s
    });
    let is_stale = |i: &ArgoCdInstance| i.metadata.name.as_deref() == Some("stale");
    let list = build([&stale, &down, &a], &is_stale);
    assert_eq!(
        serde_json::to_value(&list).expect("json"),
        serde_json::json!({"results": [{
            "cluster_id": EKS,
            "cluster_name": "Prod EKS",
            "cloud_provider": "AWS",
            "type": "SELF_MANAGED",
            "argocd_instances": [
                {
                    "namespace": "team-a", "name": "argocd", "argocd_url": "https://argocd.example.com",
                    "status": "connected", "applications_count": 16,
                    "argocd_cluster_urls": ["https://10.0.0.1:6443", "https://eks.internal"]
                },
                {
                    "namespace": "team-b", "name": "stale", "argocd_url": "https://stale.example.com",
                    "status": "error", "applications_count": 1, "argocd_cluster_urls": ["https://eks"]
                },
                {
                    "namespace": "team-c", "name": "down", "argocd_url": "https://down.example.com",
                    "status": "error", "applications_count": 2, "argocd_cluster_urls": ["https://eks"]
                }
            ]
        }]})
    );
    let bytes = write_capped([&a, &stale, &down], &is_stale, 1 << 20).expect("fits");
    assert_eq!(bytes, serde_json::to_vec(&list).expect("json"), "written as serde writes it");
}

#[test]
fn no_instance_no_cluster_and_the_byte_limit_holds() {
    let none: [&ArgoCdInstance; 0] = [];
    assert_eq!(write_capped(none, &|_| false, 64).expect("empty"), b"{\"results\":[]}");
    let a = instance("n", "a", vec![linked("https://a", EKS, "Prod EKS", Some("m"), 1)]);
    let b = instance("n", "b", vec![linked("https://b", GKE, "GKE", Some("m"), 1)]);
    let whole = write_capped([&a, &b], &|_| false, 1 << 20).expect("fits");
    assert_eq!(write_capped([&a, &b], &|_| false, whole.len()), Ok(whole.clone()));
    assert_eq!(write_capped([&a, &b], &|_| false, whole.len() - 1), Err(TooLarge { limit: whole.len() - 1 }));
    assert_eq!(write_capped([&a, &b], &|_| false, 40), Err(TooLarge { limit: 40 }), "cut after one cluster");
}
