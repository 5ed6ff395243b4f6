//! Where a mapping's URL and cluster come from.

use super::*;
use crate::argocd::identity::AGENT_NAME;
use crate::crd::ProfileRef;
use crate::fixtures::{cluster, known, labelled_cluster, mapping};
use crate::model::destinations::destinations;

fn profile(
    ns: &str,
    name: &str,
    servers: &[&str],
    cluster: Option<KnownCluster>,
    healthy: Option<bool>,
) -> Profile {
    Profile {
        namespace: ns.into(),
        name: name.into(),
        created: None,
        display_name: Some(format!("{name} display")),
        kubernetes_version: Some("v1.34.0".into()),
        healthy,
        servers: servers.iter().map(|s| s.to_string()).collect(),
        member_id: None,
        cluster,
    }
}

fn referencing(url: Option<&str>, with_cluster: bool) -> ClusterMapping {
    let mut m = mapping("platform", "m", "prod", "https://unused");
    m.spec.argocd_cluster_url = url.map(String::from);
    m.spec.cluster_profile_ref = Some(ProfileRef { namespace: "fleet".into(), name: "spoke".into() });
    if !with_cluster {
        m.spec.cluster = None;
    }
    m
}

#[test]
fn a_written_mapping_needs_no_profile() {
    let m = mapping("platform", "m", "prod", "https://A.example.com/");
    let r = resolve(&m, &Profiles::default(), None);
    assert_eq!(r, Resolved::written("https://a.example.com", Some(known("m"))));
}

#[test]
fn the_url_comes_from_a_server_argo_cd_deploys_to_then_from_identity() {
    let dest = destinations(
        &[
            cluster("https://b.example.com", "b"),
            labelled_cluster("https://proxy:9090?agentName=spoke", "spoke", &[(AGENT_NAME, "spoke")], &[]),
        ],
        &[],
    );
    let two = Profiles::new([profile(
        "fleet",
        "spoke",
        &["https://a.example.com", "https://b.example.com"],
        None,
        None,
    )]);
    let r = resolve(&referencing(None, true), &two, Some(&dest));
    assert_eq!(
        (r.url.as_deref(), r.url_from_profile, &r.problem),
        (Some("https://b.example.com"), true, &None)
    );
    // No server of the profile is a destination: the Argo CD cluster whose identity names it.
    let none = Profiles::new([profile("fleet", "spoke", &["https://a.example.com"], None, None)]);
    let r = resolve(&referencing(None, true), &none, Some(&dest));
    assert_eq!(r.url.as_deref(), Some("https://proxy:9090?agentName=spoke"));
    // A written URL wins.
    let r = resolve(&referencing(Some("https://c.example.com"), true), &two, Some(&dest));
    assert_eq!((r.url.as_deref(), r.url_from_profile), (Some("https://c.example.com"), false));
}

#[test]
fn what_cannot_be_told_is_a_problem_naming_the_profile() {
    let r = resolve(&referencing(None, true), &Profiles::default(), None);
    assert!(
        r.problem.as_deref().is_some_and(|p| p.contains("ClusterProfile fleet/spoke does not exist")),
        "{r:?}"
    );
    assert_eq!(r.profile.as_ref().map(|p| p.found), Some(false));
    let empty = Profiles::new([profile("fleet", "spoke", &[], None, Some(true))]);
    let r = resolve(&referencing(None, true), &empty, Some(&destinations(&[], &[])));
    assert!(r.problem.as_deref().is_some_and(|p| p.contains("no access provider server")), "{r:?}");
    let r = resolve(&referencing(Some("https://a"), false), &empty, None);
    assert!(r.problem.as_deref().is_some_and(|p| p.contains("argomap.io/cluster-id")), "{r:?}");
}

#[test]
fn the_cluster_and_the_view_come_from_the_profile() {
    let id = known("Spoke");
    let p = Profiles::new([profile("fleet", "spoke", &["https://a"], Some(id.clone()), Some(false))]);
    let r = resolve(&referencing(None, false), &p, None);
    assert_eq!(r.cluster, Some(id));
    assert_eq!(r.problem, None);
    let view = r.profile.expect("a view");
    assert_eq!(
        (
            view.found,
            view.display_name.as_deref(),
            view.kubernetes_version.as_deref(),
            view.control_plane_healthy.as_deref()
        ),
        (true, Some("spoke display"), Some("v1.34.0"), Some("False"))
    );
}
