//! Linking's tests: mappings against destinations, conflicts, the implicit in-cluster link,
//! and what ClusterProfiles add (suggestions, automatic links).

use super::*;
use crate::crd::ProfileRef;
use crate::fixtures::{app, cluster, known};
use crate::model::destinations::destinations;

fn ts(s: &str) -> Option<Timestamp> {
    Some(s.parse().expect("timestamp"))
}

#[test]
fn link_linked_unlinked_orphaned() {
    let clusters =
        vec![cluster("https://10.0.0.1:6443", "prod-eks"), cluster("https://old.example.com", "old")];
    let apps = vec![app("argocd", "a", Some("https://10.0.0.1:6443"), None)];
    let d = destinations(&clusters, &apps);
    let prod = known("Prod EKS");
    let gke = known("Legacy GKE");
    let mappings = vec![
        MappingInput {
            name: "prod-eks",
            url: "HTTPS://10.0.0.1:6443/",
            created: ts("2026-01-01T00:00:00Z"),
            cluster: &prod,
        },
        MappingInput {
            name: "legacy-gke",
            url: "https://gke.example.com",
            created: ts("2026-01-01T00:00:00Z"),
            cluster: &gke,
        },
    ];
    let l = link(&d, &mappings, &known("Agent"), false);
    assert_eq!(l.linked.len(), 1);
    assert_eq!(l.linked[0].mapping.as_deref(), Some("prod-eks"));
    assert_eq!(l.linked[0].applications_count, 1);
    assert_eq!(l.linked[0].argocd_cluster_name.as_deref(), Some("prod-eks"));
    assert_eq!(l.unlinked.len(), 1);
    assert_eq!(l.unlinked[0].argocd_cluster_url, "https://old.example.com");
    assert_eq!(l.orphaned, vec!["legacy-gke".to_string()]);
    assert_eq!(l.mappings["prod-eks"].state, MappingState::Linked);
    assert_eq!(l.mappings["prod-eks"].applications_count, Some(1));
    assert_eq!(l.mappings["legacy-gke"].state, MappingState::Orphaned);
}

#[test]
fn conflict_oldest_wins_then_name() {
    let d = destinations(&[cluster("https://a", "a")], &[]);
    let c = known("C");
    let mappings = vec![
        MappingInput { name: "young", url: "https://a", created: ts("2026-02-01T00:00:00Z"), cluster: &c },
        MappingInput { name: "old-b", url: "https://a/", created: ts("2026-01-01T00:00:00Z"), cluster: &c },
        MappingInput { name: "old-a", url: "https://A", created: ts("2026-01-01T00:00:00Z"), cluster: &c },
    ];
    let l = link(&d, &mappings, &known("Agent"), false);
    assert_eq!(l.mappings["old-a"].state, MappingState::Linked);
    assert_eq!(l.mappings["old-b"].state, MappingState::Conflict);
    assert_eq!(l.mappings["old-b"].conflicts_with.as_deref(), Some("old-a"));
    assert_eq!(l.mappings["young"].state, MappingState::Conflict);
    assert_eq!(l.linked.len(), 1);
    assert_eq!(l.linked[0].mapping.as_deref(), Some("old-a"));
}

#[test]
fn conflict_on_a_url_argocd_does_not_know() {
    let d = destinations(&[], &[]);
    let c = known("C");
    let mappings = vec![
        MappingInput { name: "a", url: "https://x", created: ts("2026-01-01T00:00:00Z"), cluster: &c },
        MappingInput { name: "b", url: "https://x", created: ts("2026-01-02T00:00:00Z"), cluster: &c },
    ];
    let l = link(&d, &mappings, &known("Agent"), false);
    assert_eq!(l.mappings["a"].state, MappingState::Orphaned);
    assert_eq!(l.mappings["b"].state, MappingState::Conflict);
    assert_eq!(l.orphaned, vec!["a".to_string()]);
}

#[test]
fn in_cluster_links_implicitly_to_agent_unless_mapped() {
    let clusters = vec![cluster("https://kubernetes.default.svc", "in-cluster")];
    let apps = vec![app("argocd", "g", Some("https://kubernetes.default.svc/"), None)];
    let d = destinations(&clusters, &apps);
    let agent = known("Agent");
    let l = link(&d, &[], &agent, false);
    assert_eq!(l.linked.len(), 1);
    assert_eq!(l.linked[0].mapping, None);
    assert_eq!(l.linked[0].cluster, agent);
    assert_eq!(l.linked[0].applications_count, 1);

    let other = known("Explicit");
    let m = [MappingInput { name: "explicit", url: IN_CLUSTER_URL, created: None, cluster: &other }];
    let l = link(&d, &m, &agent, false);
    assert_eq!(l.linked[0].mapping.as_deref(), Some("explicit"));
    assert_eq!(l.linked[0].cluster, other);
}

#[test]
fn agent_urls_link_separately() {
    let clusters = vec![
        cluster("https://proxy:9090?agentName=prod", "prod"),
        cluster("https://proxy:9090?agentName=staging", "staging"),
    ];
    let d = destinations(&clusters, &[]);
    let c = known("Prod");
    let m = [MappingInput {
        name: "prod",
        url: "https://proxy:9090/?agentName=prod",
        created: None,
        cluster: &c,
    }];
    let l = link(&d, &m, &known("Agent"), false);
    assert_eq!(l.linked.len(), 1);
    assert_eq!(l.unlinked.len(), 1);
    assert_eq!(l.unlinked[0].argocd_cluster_url, "https://proxy:9090?agentName=staging");
}

fn profile(
    ns: &str,
    name: &str,
    member: Option<&str>,
    created: &str,
    cluster: Option<KnownCluster>,
) -> Profile {
    Profile {
        namespace: ns.into(),
        name: name.into(),
        created: ts(created),
        display_name: None,
        kubernetes_version: None,
        healthy: Some(true),
        servers: Vec::new(),
        member_id: member.map(String::from),
        cluster,
    }
}

/// Destinations registered by the ClusterProfile integration (origin label and member id), one
/// by GKE's syncer (origin annotation) and one with no identity.
fn registered() -> Destinations {
    use crate::fixtures::labelled_cluster;
    destinations(
        &[
            labelled_cluster(
                "https://a",
                "a",
                &[
                    ("argocd.argoproj.io/cluster-profile-origin", "fleet-a"),
                    ("multicluster.x-k8s.io/inventory-member-id", "m-a"),
                ],
                &[],
            ),
            labelled_cluster("https://g", "g", &[], &[("clusterprofile.x-k8s.io/origin", "gke/g")]),
            labelled_cluster(
                "https://m",
                "m",
                &[("multicluster.x-k8s.io/inventory-member-id", "m-dup")],
                &[],
            ),
            cluster("https://plain", "plain"),
        ],
        &[],
    )
}

const ORIGIN: &str = "argocd.argoproj.io/cluster-profile-origin";
const MEMBER: &str = "multicluster.x-k8s.io/inventory-member-id";

#[test]
fn trusted_identities_of_annotated_profiles_link_without_a_mapping() {
    let a = known("A");
    let profiles =
        Profiles::new([profile("fleet", "a", Some("m-a"), "2026-01-01T00:00:00Z", Some(a.clone()))]);
    let l = link(&registered(), &[], &known("Agent"), false)
        .with_profiles(&profiles, Some(&[MEMBER.to_string()]));
    let auto = l.linked.iter().find(|x| x.argocd_cluster_url == "https://a").expect("linked automatically");
    assert_eq!(auto.mapping, None);
    assert_eq!(auto.cluster, a);
    let how = auto.details.automatic.as_ref().expect("marked automatic");
    // The origin is more specific but not trusted: the member id links.
    assert_eq!((how.identity.key.as_str(), how.cluster_profile_ref.name.as_str()), (MEMBER, "a"));
    assert!(l.unlinked.iter().all(|u| u.argocd_cluster_url != "https://a"));
}

#[test]
fn untrusted_or_unannotated_profiles_are_suggested_not_linked() {
    let profiles = Profiles::new([profile("fleet", "a", Some("m-a"), "2026-01-01T00:00:00Z", None)]);
    for trusted in [None, Some(vec![ORIGIN.to_string()])] {
        let l = link(&registered(), &[], &known("Agent"), false).with_profiles(&profiles, trusted.as_deref());
        let a = l.unlinked.iter().find(|x| x.argocd_cluster_url == "https://a").expect("still unlinked");
        let s = a.details.suggested_mapping.as_ref().expect("a suggestion");
        assert_eq!(s.identity.key, ORIGIN);
        assert_eq!(s.cluster_profile_ref, Some(ProfileRef { namespace: "fleet".into(), name: "a".into() }));
        assert!(s.note.contains("argomap.io/cluster-id"), "{}", s.note);
    }
    let annotated = Profiles::new([profile("fleet", "a", None, "2026-01-01T00:00:00Z", Some(known("A")))]);
    let l = link(&registered(), &[], &known("Agent"), false).with_profiles(&annotated, None);
    let s = l.unlinked[0].details.suggested_mapping.as_ref().expect("suggested while autoLink is off");
    assert_eq!(s.note, "");
}

#[test]
fn gkes_origin_is_suggested_even_without_the_profile() {
    let l = link(&registered(), &[], &known("Agent"), false).with_profiles(&Profiles::default(), None);
    let g = l.unlinked.iter().find(|x| x.argocd_cluster_url == "https://g").expect("unlinked");
    let s = g.details.suggested_mapping.as_ref().expect("suggested");
    assert_eq!(s.cluster_profile_ref, Some(ProfileRef { namespace: "gke".into(), name: "g".into() }));
    let plain = l.unlinked.iter().find(|x| x.argocd_cluster_url == "https://plain").expect("unlinked");
    assert_eq!(plain.details.suggested_mapping, None);
}

#[test]
fn the_oldest_of_duplicate_profiles_links_and_a_tie_links_none() {
    let trusted = [MEMBER.to_string()];
    let older = profile("x", "one", Some("m-dup"), "2026-01-01T00:00:00Z", Some(known("Old")));
    let newer = profile("y", "two", Some("m-dup"), "2026-03-01T00:00:00Z", Some(known("New")));
    let l = link(&registered(), &[], &known("Agent"), false)
        .with_profiles(&Profiles::new([older.clone(), newer.clone()]), Some(&trusted));
    let m = l.linked.iter().find(|x| x.argocd_cluster_url == "https://m").expect("linked");
    assert_eq!(m.cluster.name, "Old");
    assert!(m.details.automatic.as_ref().is_some_and(|a| a.note.contains("y/two")), "{m:?}");
    let twin = profile("z", "three", Some("m-dup"), "2026-01-01T00:00:00Z", Some(known("Twin")));
    let l = link(&registered(), &[], &known("Agent"), false)
        .with_profiles(&Profiles::new([older, newer, twin]), Some(&trusted));
    let m = l.unlinked.iter().find(|x| x.argocd_cluster_url == "https://m").expect("not linked on a tie");
    let s = m.details.suggested_mapping.as_ref().expect("explained");
    assert_eq!(s.cluster_profile_ref, None);
    assert!(s.note.contains("at the same time"), "{}", s.note);
}

#[test]
fn a_mapping_always_wins_over_an_automatic_link() {
    let profiles =
        Profiles::new([profile("fleet", "a", Some("m-a"), "2026-01-01T00:00:00Z", Some(known("Auto")))]);
    let cluster = known("Mapped");
    let m = [MappingInput { name: "a", url: "https://a", created: None, cluster: &cluster }];
    let l =
        link(&registered(), &m, &known("Agent"), false).with_profiles(&profiles, Some(&[ORIGIN.to_string()]));
    let a = l.linked.iter().find(|x| x.argocd_cluster_url == "https://a").expect("linked");
    assert_eq!((a.mapping.as_deref(), a.cluster.name.as_str()), (Some("a"), "Mapped"));
    assert_eq!(a.details.automatic, None);
    assert!(l.linked.windows(2).all(|w| w[0].argocd_cluster_url <= w[1].argocd_cluster_url), "sorted");
}
