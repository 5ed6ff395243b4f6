//! The evaluation over every outcome, and the whole status it gives.

use super::*;
use crate::argocd::types::{Application, Cluster};
use crate::crd::ConnectionState;
use crate::fixtures;
use crate::model::destinations::destinations;

/// Instance `platform/prod` at generation 2 (so observedGeneration is visibly copied).
fn instance() -> ArgoCdInstance {
    let mut i = fixtures::instance("platform", "prod");
    i.spec.url = "https://argocd.example.com".into();
    i.spec.organization_id = None;
    i.metadata.generation = Some(2);
    i
}

fn mapping(name: &str, url: &str, created: &str) -> ClusterMapping {
    let mut m = fixtures::mapping("platform", name, "prod", url);
    m.metadata.creation_timestamp = Some(fixtures::time(created));
    m
}

fn observed() -> Arc<Observed> {
    let clusters: Vec<Cluster> = serde_json::from_str(
        r#"[{"server":"https://10.0.0.1:6443","name":"prod-eks"},{"server":"https://old.example.com","name":"old"}]"#,
    )
    .expect("clusters");
    let apps: Vec<Application> = serde_json::from_str(
        r#"[{"spec":{"destination":{"server":"https://10.0.0.1:6443"}}},{"spec":{"destination":{"name":"prod-eks"}}}]"#,
    )
    .expect("apps");
    Arc::new(Observed {
        destinations: destinations(&clusters, &apps),
        version: Some("v3.5.1".into()),
        credentials_expire_at: None,
        can_get_clusters: None,
        can_get_applications: None,
    })
}

fn now() -> Timestamp {
    "2026-11-22T10:00:00Z".parse().expect("ts")
}

#[test]
fn no_mapping_is_called_orphaned_while_the_cluster_list_is_hidden() {
    let i = instance();
    let ms = [
        mapping("prod-eks", "https://10.0.0.1:6443", "2026-01-01T00:00:00Z"),
        mapping("idle", "https://idle.example.com", "2026-01-01T00:00:00Z"),
    ];
    let mine: Vec<&ClusterMapping> = ms.iter().collect();
    // The token may not get clusters: Argo CD lists none, applications still name one.
    let apps: Vec<Application> =
        serde_json::from_str(r#"[{"spec":{"destination":{"server":"https://10.0.0.1:6443"}}}]"#)
            .expect("apps");
    let hidden = Arc::new(Observed {
        destinations: destinations(&[], &apps),
        version: None,
        credentials_expire_at: None,
        can_get_clusters: Some(false),
        can_get_applications: None,
    });
    let e = evaluate(
        &i,
        &mine,
        &Outcome::Observed { observed: hidden, fresh: true },
        &Circumstances::default(),
        now(),
    );
    let state = |name: &str| e.mappings.iter().find(|(n, _)| n == name).and_then(|(_, s)| s.state);
    assert_eq!(state("prod-eks"), Some(MappingState::Linked));
    assert_eq!(state("idle"), Some(MappingState::Unverified), "a registered idle cluster may hide here");
    assert!(e.instance.orphaned_mappings.is_empty());
    assert_eq!(e.instance.summary.as_ref().map(|s| s.orphaned_mappings), Some(0));
    let cv = e
        .instance
        .conditions
        .iter()
        .find(|c| c.type_ == crate::model::conditions::CLUSTERS_VISIBLE)
        .expect("cv");
    assert_eq!(cv.status, "False");
    // Once the list is visible, the same mapping is orphaned.
    let visible = Arc::new(Observed { can_get_clusters: Some(true), ..(*observed()).clone() });
    let e = evaluate(
        &i,
        &mine,
        &Outcome::Observed { observed: visible, fresh: true },
        &Circumstances::default(),
        now(),
    );
    let state = |name: &str| e.mappings.iter().find(|(n, _)| n == name).and_then(|(_, s)| s.state);
    assert_eq!(state("idle"), Some(MappingState::Orphaned));
}

#[test]
fn observed_outcome_links_and_states_every_mapping() {
    let i = instance();
    let ms = [
        mapping("prod-eks", "https://10.0.0.1:6443", "2026-01-01T00:00:00Z"),
        mapping("dup", "https://10.0.0.1:6443/", "2026-02-01T00:00:00Z"),
        mapping("legacy", "https://gke.example.com", "2026-01-01T00:00:00Z"),
        mapping("other-instance", "https://x", "2026-01-01T00:00:00Z"),
    ];
    let mut other = ms[3].clone();
    other.spec.instance_ref.name = "staging".into();
    let all = [ms[0].clone(), ms[1].clone(), ms[2].clone(), other];
    let mine = mappings_of(&i, &all);
    assert_eq!(mine.len(), 3);
    let e = evaluate(
        &i,
        &mine,
        &Outcome::Observed { observed: observed(), fresh: true },
        &Circumstances { refresh_handled: Some("r".into()), ..Default::default() },
        now(),
    );
    let summary = e.instance.summary.clone().expect("summary");
    assert_eq!((summary.linked_clusters, summary.unlinked_clusters, summary.orphaned_mappings), (1, 1, 1));
    assert_eq!(summary.applications, 2);
    assert_eq!(e.instance.linked_clusters[0].applications_count, 2);
    assert_eq!(e.instance.last_handled_refresh_at.as_deref(), Some("r"));
    let states: Vec<_> = e.mappings.iter().map(|(n, s)| (n.as_str(), s.state)).collect();
    assert_eq!(
        states,
        vec![
            ("dup", Some(MappingState::Conflict)),
            ("legacy", Some(MappingState::Orphaned)),
            ("prod-eks", Some(MappingState::Linked))
        ]
    );
    assert_eq!(e.mappings[2].1.applications_count, Some(2));
}

#[test]
fn failure_keeps_mapping_states_and_marks_new_ones_pending() {
    let mut i = instance();
    let mut known_mapping = mapping("prod-eks", "https://10.0.0.1:6443", "2026-01-01T00:00:00Z");
    let first = evaluate(
        &i,
        &[&known_mapping],
        &Outcome::Observed { observed: observed(), fresh: true },
        &Circumstances::default(),
        now(),
    );
    i.status = Some(first.instance);
    known_mapping.status = Some(first.mappings[0].1.clone());
    let new_mapping = mapping("new", "https://new", "2026-03-01T00:00:00Z");
    let failed =
        Outcome::Failed { reason: Reason::Unreachable, message: "connection refused".into(), fresh: true };
    let e = evaluate(&i, &[&known_mapping, &new_mapping], &failed, &Circumstances::default(), now());
    assert_eq!(e.mappings.len(), 1);
    assert_eq!(e.mappings[0].0, "new");
    assert_eq!(e.mappings[0].1.state, Some(MappingState::Pending));
    let conn = e.instance.connection.expect("connection");
    assert_eq!((conn.status, conn.reason), (ConnectionState::Error, Reason::Unreachable));
    assert_eq!(e.instance.linked_clusters.len(), 1, "last known lists stay");
}

#[test]
fn recompute_leaves_connection_alone() {
    let mut i = instance();
    let first = evaluate(
        &i,
        &[],
        &Outcome::Observed { observed: observed(), fresh: true },
        &Circumstances::default(),
        now(),
    );
    i.status = Some(first.instance.clone());
    let later: Timestamp = "2026-11-22T10:00:30Z".parse().expect("ts");
    let m = mapping("old", "https://old.example.com", "2026-01-01T00:00:00Z");
    let e = evaluate(
        &i,
        &[&m],
        &Outcome::Observed { observed: observed(), fresh: false },
        &Circumstances::default(),
        later,
    );
    assert_eq!(e.instance.connection, first.instance.connection);
    assert_eq!(e.instance.summary.expect("summary").linked_clusters, 1, "the new mapping links at once");
}

#[test]
fn argocd_errors_become_design_reasons() {
    let e = ArgoCdError::Tls { endpoint: "clusters", detail: String::new() };
    assert_eq!(reason_of(&e), Reason::TlsError);
    let e = ArgoCdError::LoginFailed { status: 401, message: String::new() };
    assert_eq!(reason_of(&e).as_str(), "AuthenticationFailed");
    match Outcome::failed(&ArgoCdError::Timeout { endpoint: "clusters", timeout_secs: 3 }) {
        Outcome::Failed { reason, message, fresh } => {
            assert_eq!((reason, fresh), (Reason::Timeout, true));
            assert!(message.contains("within 3s"), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn suspended_instance() {
    let i = instance();
    let e = evaluate(&i, &[], &Outcome::Suspended, &Circumstances::default(), now());
    let conn = e.instance.connection.expect("connection");
    assert_eq!(conn.reason, Reason::Suspended);
    assert_eq!(conn.last_checked_at, None);
}

#[test]
fn the_whole_status_says_stale_stream_and_organization() {
    let mut i = instance();
    i.spec.organization_id = Some(crate::fixtures::ORG.into());
    i.metadata.namespace = Some("team-a".into());
    let first = evaluate(
        &i,
        &[],
        &Outcome::Observed { observed: observed(), fresh: true },
        &Circumstances::default(),
        now(),
    );
    i.status = Some(first.instance);
    let later = now() + jiff::SignedDuration::from_mins(10);
    let circumstances = Circumstances {
        refresh_handled: None,
        stale_after: Some(jiff::SignedDuration::from_mins(3)),
        stream: Some((StreamState::Streaming, 10)),
        organization: Some((organization::Binding::NamespaceLabel, None)),
        profiles: Default::default(),
        fleet: Vec::new(),
    };
    let e =
        evaluate(&i, &[], &Outcome::Observed { observed: observed(), fresh: false }, &circumstances, later);
    let of =
        |t: &str| conditions::find(&e.instance.conditions, t).map(|c| (c.status.clone(), c.reason.clone()));
    assert_eq!(of(conditions::READY), Some(("Unknown".into(), conditions::reason::STALE.into())));
    assert_eq!(of(conditions::APPLICATION_STREAM), Some(("True".into(), "Streaming".into())));
    assert_eq!(
        of(conditions::ORGANIZATION_BOUND),
        Some(("False".into(), conditions::reason::NAMESPACE_NOT_IN_ORGANIZATION.into()))
    );
    let plain = evaluate(
        &i,
        &[],
        &Outcome::Observed { observed: observed(), fresh: false },
        &Circumstances::default(),
        later,
    );
    assert!(conditions::find(&plain.instance.conditions, conditions::APPLICATION_STREAM).is_none());
    assert!(conditions::find(&plain.instance.conditions, conditions::ORGANIZATION_BOUND).is_none());
}
