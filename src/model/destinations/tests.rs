//! Attribution's tests: the union of clusters and destinations, names, bounds, argocd-agent's
//! routing, identity and dangling destinations.

use super::*;
use crate::argocd::identity::AGENT_NAME;
use crate::argocd::types::{AppSpec, ClusterInfo, ConnectionState};
use crate::fixtures::{app, app_with_status, cluster, labelled_cluster};

#[test]
fn destinations_union_of_clusters_and_apps() {
    let clusters = vec![cluster("https://10.0.0.1:6443", "prod"), cluster("https://old.example.com", "old")];
    let apps = vec![
        app("argocd", "a", Some("https://10.0.0.1:6443/"), None),
        app("argocd", "b", Some("https://UNLISTED.example.com"), None),
    ];
    let d = destinations(&clusters, &apps);
    assert_eq!(d.by_url.len(), 3);
    assert_eq!(d.by_url["https://10.0.0.1:6443"].applications, 1);
    assert!(d.by_url["https://10.0.0.1:6443"].listed);
    assert_eq!(d.by_url["https://old.example.com"].applications, 0);
    let unlisted = &d.by_url["https://unlisted.example.com"];
    assert!(!unlisted.listed);
    assert_eq!(unlisted.name, None);
    assert_eq!(d.applications, 2);
    assert_eq!(d.unresolved, 0);
}

#[test]
fn name_only_destinations_resolve_through_cluster_list() {
    let clusters = vec![cluster("https://kubernetes.default.svc", "in-cluster"), cluster("https://b", "b")];
    let apps = vec![
        app("argocd", "cert-manager", None, Some("in-cluster")),
        app("argocd", "x", None, Some("b")),
        app("argocd", "ghost", None, Some("no-such-cluster")),
    ];
    let d = destinations(&clusters, &apps);
    assert_eq!(d.by_url["https://kubernetes.default.svc"].applications, 1);
    assert_eq!(d.by_url["https://b"].applications, 1);
    assert_eq!(d.unresolved, 1);
    assert_eq!(d.unresolved_examples, vec!["argocd/ghost".to_string()]);
}

#[test]
fn ambiguous_names_and_bad_destinations_are_unresolved() {
    let clusters = vec![cluster("https://a", "dup"), cluster("https://b", "dup")];
    let mut neither = app("argocd", "neither", None, None);
    neither.spec = Some(AppSpec { destination: None });
    let apps = vec![
        app("argocd", "ambiguous", None, Some("dup")),
        app("argocd", "both", Some("https://a"), Some("dup")),
        neither,
        Application::default(),
    ];
    let d = destinations(&clusters, &apps);
    assert_eq!(d.unresolved, 4);
    assert_eq!(d.by_url["https://a"].applications, 0);
    assert_eq!(d.applications, 4);
}

#[test]
fn apps_in_other_namespaces_count_separately() {
    let apps =
        vec![app("argocd", "api", Some("https://a"), None), app("team-a", "api", Some("https://a"), None)];
    let d = destinations(&[cluster("https://a", "a")], &apps);
    assert_eq!(d.by_url["https://a"].applications, 2);
}

#[test]
fn what_argo_cd_names_is_kept_printable_and_bounded() {
    let mut huge =
        Cluster { server: Some(format!("https://{}.example.com", "x".repeat(10_000))), ..Default::default() };
    huge.name = Some(format!("prod\n{}", "n".repeat(1 << 20)));
    let d = destinations(&[huge], &[]);
    let (url, info) = d.by_url.iter().next().expect("one destination");
    assert!(url.len() <= URL_CAP && url.ends_with('…'));
    let name = info.name.as_deref().expect("name");
    assert!(name.len() <= NAME_CAP && name.starts_with("prodn") && !name.contains('\n'), "{name}");
}

#[test]
fn connection_state_is_copied_as_hint() {
    let mut c = cluster("https://a", "a");
    c.info = Some(ClusterInfo {
        connection_state: Some(ConnectionState { status: Some("Failed".into()), message: None }),
    });
    let d = destinations(&[c, cluster("https://b", "")], &[]);
    assert_eq!(d.by_url["https://a"].connection_state.as_deref(), Some("Failed"));
    assert_eq!(d.by_url["https://b"].connection_state, None);
    assert_eq!(d.by_url["https://b"].name, None, "an empty Argo CD name is no name");
}

#[test]
fn empty_cluster_list_while_apps_name_destinations_is_flagged() {
    let d = destinations(&[], &[app("argocd", "a", Some("https://a"), None)]);
    assert!(d.cluster_list_empty);
    assert!(d.apps_name_destinations);
    assert_eq!(d.by_url["https://a"].applications, 1);
    let d = destinations(&[], &[]);
    assert!(d.cluster_list_empty && !d.apps_name_destinations);
}

#[test]
fn multi_source_apps_use_their_single_destination() {
    // The projected body of a multi-source app: spec.sources is dropped by the projection,
    // spec.destination stays.
    let raw = r#"{"items":[{"metadata":{"name":"payments-prod","namespace":"argocd"},
        "spec":{"sources":[{"repoURL":"https://x"},{"repoURL":"https://y","ref":"values"}],
        "destination":{"server":"https://10.0.0.1:6443","namespace":"payments"},"project":"default"}}]}"#;
    let list: crate::argocd::types::ApplicationList = serde_json::from_str(raw).expect("decode");
    let d = destinations(&[], list.items.as_deref().unwrap_or_default());
    assert_eq!(d.by_url["https://10.0.0.1:6443"].applications, 1);
}

fn agent_cluster(agent: &str) -> Cluster {
    let mut c = labelled_cluster(
        &format!("https://argocd-agent-resource-proxy:9090?agentName={agent}"),
        agent,
        &[(AGENT_NAME, agent)],
        &[("argocd.argoproj.io/skip-reconcile", "true")],
    );
    c.info = Some(ClusterInfo {
        connection_state: Some(ConnectionState {
            status: Some("Successful".into()),
            message: Some(format!("Agent: '{agent}' is connected with principal")),
        }),
    });
    c
}

fn proxy(agent: &str) -> String {
    format!("https://argocd-agent-resource-proxy:9090?agentName={agent}")
}

#[test]
fn a_managed_agents_applications_go_to_the_agent_whatever_their_destination() {
    // Namespace mapping: the principal keeps agent `edge-1`'s applications in namespace
    // `edge-1`, their destination as written (typically in-cluster), and routes them to the agent.
    let clusters = vec![cluster("https://kubernetes.default.svc", "in-cluster"), agent_cluster("edge-1")];
    let apps = vec![
        app("edge-1", "web", Some("https://kubernetes.default.svc"), None),
        app("edge-1", "api", None, Some("in-cluster")),
        app("edge-1", "odd", Some("https://nowhere.example.com"), None),
        app("argocd", "principal-own", Some("https://kubernetes.default.svc"), None),
    ];
    let d = destinations(&clusters, &apps);
    assert_eq!(d.by_url[&proxy("edge-1")].applications, 3);
    assert_eq!(d.by_url["https://kubernetes.default.svc"].applications, 1);
    assert!(!d.by_url.contains_key("https://nowhere.example.com"), "the destination is not where it goes");
    assert!(d.dangling.is_empty(), "{:?}", d.dangling);
    let agent = d.by_url[&proxy("edge-1")].agent.clone().expect("an agent");
    assert_eq!(agent.name, "edge-1");
    assert_eq!(agent.connection.as_deref(), Some("Agent: 'edge-1' is connected with principal"));
    assert_eq!(d.by_url["https://kubernetes.default.svc"].agent, None);
}

#[test]
fn an_autonomous_agents_applications_name_the_agent() {
    // The principal rewrites an autonomous agent's applications to `destination.name: <agent>`
    // (in the agent's namespace): by name or by namespace, they reach the agent.
    let clusters = vec![cluster("https://kubernetes.default.svc", "in-cluster"), agent_cluster("edge-2")];
    let apps = vec![app("edge-2", "web", None, Some("edge-2")), app("edge-2", "db", None, Some("edge-2"))];
    let d = destinations(&clusters, &apps);
    assert_eq!(d.by_url[&proxy("edge-2")].applications, 2);
    assert_eq!(d.by_url["https://kubernetes.default.svc"].applications, 0);
}

#[test]
fn destination_mapping_routes_by_the_destination_that_names_an_agent() {
    // Destination mapping (argocd-agent v0.7+): applications anywhere name their agent; one in
    // another agent's namespace that names an agent still goes where it names.
    let clusters = vec![
        cluster("https://kubernetes.default.svc", "in-cluster"),
        agent_cluster("edge-1"),
        agent_cluster("edge-2"),
    ];
    let apps = vec![
        app("argocd", "a", None, Some("edge-1")),
        app("team", "b", None, Some("edge-2")),
        app("edge-1", "c", None, Some("edge-2")),
        app("edge-1", "d", Some(&proxy("edge-2")), None),
    ];
    let d = destinations(&clusters, &apps);
    assert_eq!(d.by_url[&proxy("edge-1")].applications, 1);
    assert_eq!(d.by_url[&proxy("edge-2")].applications, 3);
    assert_eq!(d.by_url["https://kubernetes.default.svc"].applications, 0);
}

#[test]
fn an_agent_from_the_proxy_url_alone_and_an_agent_claimed_twice() {
    // No label (an older principal): the URL's agentName says it. Two clusters claiming one
    // agent: neither gets the namespace's applications, which go where they point.
    let unlabelled = cluster(&proxy("edge-3"), "edge-3");
    let twice = [
        labelled_cluster("https://a", "a", &[(AGENT_NAME, "dup")], &[]),
        labelled_cluster("https://b", "b", &[(AGENT_NAME, "dup")], &[]),
    ];
    let mut clusters = vec![cluster("https://kubernetes.default.svc", "in-cluster"), unlabelled];
    clusters.extend(twice);
    let apps = vec![
        app("edge-3", "x", Some("https://kubernetes.default.svc"), None),
        app("dup", "y", Some("https://kubernetes.default.svc"), None),
    ];
    let d = destinations(&clusters, &apps);
    assert_eq!(d.by_url[&proxy("edge-3")].applications, 1);
    assert_eq!(d.by_url[&proxy("edge-3")].agent.as_ref().map(|a| a.name.as_str()), Some("edge-3"));
    assert_eq!(d.by_url["https://kubernetes.default.svc"].applications, 1);
}

#[test]
fn identity_comes_from_labels_then_annotations() {
    let c = labelled_cluster(
        "https://gke.example.com",
        "gke-prod",
        &[("multicluster.x-k8s.io/inventory-member-id", "m-1"), ("team", "x")],
        &[
            ("clusterprofile.x-k8s.io/origin", "fleet/gke-prod"),
            ("multicluster.x-k8s.io/inventory-member-id", "ignored"),
        ],
    );
    let d = destinations(&[c], &[]);
    let got: Vec<_> = d.by_url["https://gke.example.com"].identity.iter().collect();
    assert_eq!(
        got,
        vec![
            ("clusterprofile.x-k8s.io/origin", "fleet/gke-prod"),
            ("multicluster.x-k8s.io/inventory-member-id", "m-1")
        ]
    );
}

#[test]
fn dangling_destinations_are_unlisted_servers_and_unresolved_names() {
    let clusters =
        vec![cluster("https://a", "a"), cluster("https://b1", "dup"), cluster("https://b2", "dup")];
    let apps = vec![
        app("argocd", "1", Some("https://gone.example.com/"), None),
        app("argocd", "2", Some("https://gone.example.com"), None),
        app("argocd", "3", None, Some("nowhere")),
        app("team", "4", None, Some("dup")),
        app("argocd", "5", Some("https://a"), None),
    ];
    let d = destinations(&clusters, &apps);
    assert_eq!(
        d.dangling,
        vec![
            Dangling { destination: "dup".into(), by_name: true, registered: true, applications: 1 },
            Dangling {
                destination: "https://gone.example.com".into(),
                by_name: false,
                registered: false,
                applications: 2
            },
            Dangling { destination: "nowhere".into(), by_name: true, registered: false, applications: 1 },
        ]
    );
    assert_eq!(d.unresolved, 2);
    // A registered cluster without applications is not dangling; neither is one with.
    assert!(d.dangling.iter().all(|x| x.destination != "https://a"));
}

#[test]
fn health_and_sync_are_summed_per_destination_across_namespaces() {
    use crate::argocd::types::{Health, Sync};
    let apps = vec![
        app_with_status("argocd", "a", Some("https://a"), None, "Healthy", "Synced"),
        app_with_status("team", "b", None, Some("a"), "Degraded", "OutOfSync"),
        app_with_status("team", "c", Some("https://a/"), None, "Healthy", "Synced"),
    ];
    let d = destinations(&[cluster("https://a", "a")], &apps);
    let s = &d.by_url["https://a"].by_status;
    assert_eq!(s.apps, 3);
    assert_eq!((s.health[Health::Healthy as usize], s.health[Health::Degraded as usize]), (2, 1));
    assert_eq!((s.sync[Sync::Synced as usize], s.sync[Sync::OutOfSync as usize]), (2, 1));
}
