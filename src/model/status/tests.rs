//! The statuses' tests: conditions, lists and their caps, staleness, and when a write is due.

use super::*;
use crate::argocd::types::{Application, Cluster};
use crate::crd::{CloudProvider, KnownCluster, KubernetesType};
use crate::model::destinations::destinations;
use crate::model::linkage::{MappingInput, link};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use std::time::Duration;

fn t(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

fn known() -> KnownCluster {
    KnownCluster {
        id: "0b9f6a1e-0000-4000-8000-000000000001".into(),
        name: "Agent".into(),
        cloud_provider: CloudProvider::Aws,
        kind: KubernetesType::Managed,
    }
}

fn observed(clusters: &[Cluster], apps: &[Application]) -> (Destinations, Linkage) {
    let d = destinations(clusters, apps);
    let k = known();
    let m = [MappingInput { name: "gone", url: "https://gone", created: None, cluster: &k }];
    let l = link(&d, &m, &k, false);
    (d, l)
}

fn cluster(server: &str) -> Cluster {
    Cluster { server: Some(server.into()), name: Some("n".into()), ..Default::default() }
}

fn status_at(
    now: Timestamp,
    prev: Option<&ArgoCdInstanceStatus>,
    d: &Destinations,
    l: &Linkage,
) -> ArgoCdInstanceStatus {
    instance_status(
        prev,
        InstanceUpdate {
            generation: Some(3),
            connection: connected(now, Some("v3.5.1".into()), None),
            attribution: Some(Attribution {
                destinations: d,
                linkage: l,
                can_get_clusters: None,
                can_get_applications: None,
            }),
            refresh_handled: None,
            insecure_tls: false,
            now,
        },
    )
}

#[test]
fn connected_status_has_summary_and_conditions() {
    let (d, l) = observed(&[cluster("https://a"), cluster("https://kubernetes.default.svc")], &[]);
    let s = status_at(t("2026-11-22T10:00:00Z"), None, &d, &l);
    let summary = s.summary.clone().expect("summary");
    assert_eq!((summary.linked_clusters, summary.unlinked_clusters, summary.orphaned_mappings), (1, 1, 1));
    let types: Vec<_> = s.conditions.iter().map(|c| (c.type_.as_str(), c.status.as_str())).collect();
    assert_eq!(
        types,
        vec![
            ("Ready", "True"),
            ("Connected", "True"),
            ("ClustersVisible", "True"),
            ("ApplicationsVisible", "True")
        ]
    );
    assert!(s.conditions.iter().all(|c| c.observed_generation == Some(3)));
    assert_eq!(s.observed_generation, Some(3));
}

#[test]
fn steady_state_differs_only_in_check_time_and_is_not_written_within_heartbeat() {
    let (d, l) = observed(&[cluster("https://a")], &[]);
    let first = status_at(t("2026-11-22T10:00:00Z"), None, &d, &l);
    let second = status_at(t("2026-11-22T10:01:00Z"), Some(&first), &d, &l);
    assert_eq!(first.conditions, second.conditions, "transition times carry over");
    assert!(
        instance_needs_write(Some(&first), &second, Duration::ZERO),
        "heartbeat 0 refreshes lastCheckedAt"
    );
    assert!(!instance_needs_write(Some(&first), &second, Duration::from_secs(600)));
    let later = status_at(t("2026-11-22T10:11:00Z"), Some(&first), &d, &l);
    assert!(instance_needs_write(Some(&first), &later, Duration::from_secs(600)));
    assert!(!instance_needs_write(Some(&first), &first, Duration::ZERO), "an echo writes nothing");
}

/// The status after a failed check (generation 3) over `prev`.
fn after_failure(
    prev: &ArgoCdInstanceStatus,
    now: Timestamp,
    reason: Reason,
    message: &str,
) -> ArgoCdInstanceStatus {
    let connection = failed(prev.connection.as_ref(), now, reason, message, true);
    let update = InstanceUpdate {
        generation: Some(3),
        connection,
        attribution: None,
        refresh_handled: None,
        insecure_tls: false,
        now,
    };
    instance_status(Some(prev), update)
}

#[test]
fn failure_keeps_lists_and_last_success() {
    let (d, l) = observed(&[cluster("https://a")], &[]);
    let ok = status_at(t("2026-11-22T10:00:00Z"), None, &d, &l);
    let now = t("2026-11-22T10:01:00Z");
    let s = after_failure(&ok, now, Reason::AuthenticationFailed, "expired");
    assert_eq!(s.unlinked_clusters, ok.unlinked_clusters);
    assert_eq!(s.summary, ok.summary);
    let c = s.connection.as_ref().expect("connection");
    assert_eq!(c.status, ConnectionState::Error);
    assert_eq!(c.reason, Reason::AuthenticationFailed);
    assert_eq!(c.last_checked_at, Some(Time(now)));
    assert_eq!(c.last_successful_check_at, Some(Time(t("2026-11-22T10:00:00Z"))));
    let ready = &s.conditions[0];
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "AuthenticationFailed"));
    assert_eq!(ready.last_transition_time, Time(now));
    assert!(s.conditions.iter().any(|c| c.type_ == CLUSTERS_VISIBLE), "kept from before");
}

#[test]
fn failed_checks_carry_reconciling_or_stalled_for_kstatus() {
    use strum::VariantArray;
    let (d, l) = observed(&[cluster("https://a")], &[]);
    let ok = status_at(t("2026-11-22T10:00:00Z"), None, &d, &l);
    let types = |s: &ArgoCdInstanceStatus| -> Vec<(String, String, String)> {
        s.conditions
            .iter()
            .filter(|c| c.type_ == RECONCILING || c.type_ == STALLED)
            .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone()))
            .collect()
    };
    assert!(types(&ok).is_empty(), "a connected instance has neither");
    let now = t("2026-11-22T10:01:00Z");
    // `Connected` is never a failure's reason.
    for &reason in Reason::VARIANTS.iter().filter(|r| **r != Reason::Connected) {
        let s = after_failure(&ok, now, reason, "why");
        let expected = match reason {
            Reason::Suspended => vec![],
            Reason::CredentialsNotOptedIn | Reason::CredentialsNotAllowed | Reason::AuthenticationFailed => {
                vec![(STALLED.to_string(), "True".to_string(), reason.as_str().to_string())]
            }
            _ => vec![(RECONCILING.to_string(), "True".to_string(), reason.as_str().to_string())],
        };
        assert_eq!(types(&s), expected, "{reason}");
        if let Some(c) = s.conditions.iter().find(|c| c.type_ == RECONCILING || c.type_ == STALLED) {
            assert_eq!((c.message.as_str(), c.observed_generation), ("why", Some(3)));
        }
    }
}

#[test]
fn a_new_instance_says_it_waits_for_its_first_check() {
    let s = awaiting_first_check(Some(4), t("2026-11-22T10:00:00Z"));
    let conds: Vec<_> =
        s.conditions.iter().map(|c| (c.type_.as_str(), c.status.as_str(), c.reason.as_str())).collect();
    assert_eq!(conds, vec![(READY, "Unknown", "Pending"), (RECONCILING, "True", "Pending")]);
    assert!(s.conditions.iter().all(|c| c.observed_generation == Some(4)));
    assert_eq!((s.observed_generation, s.connection.is_none(), s.summary.is_none()), (Some(4), true, true));
}

#[test]
fn suspended_does_not_touch_last_checked() {
    let (d, l) = observed(&[cluster("https://a")], &[]);
    let ok = status_at(t("2026-11-22T10:00:00Z"), None, &d, &l);
    let conn =
        failed(ok.connection.as_ref(), t("2026-11-22T11:00:00Z"), Reason::Suspended, "suspended", false);
    assert_eq!(conn.last_checked_at, Some(Time(t("2026-11-22T10:00:00Z"))));
}

#[test]
fn hidden_clusters_give_missing_permission() {
    let apps: Vec<Application> = serde_json::from_str(
        r#"[{"metadata":{"name":"a","namespace":"argocd"},"spec":{"destination":{"server":"https://a"}}}]"#,
    )
    .expect("apps");
    let d = destinations(&[], &apps);
    let l = link(&d, &[], &known(), false);
    let now = t("2026-11-22T10:00:00Z");
    for (can, status, reason) in [
        (None, "False", "MissingClustersGetPermission"),
        (Some(false), "False", "MissingClustersGetPermission"),
        (Some(true), "True", "NoClustersRegistered"),
    ] {
        let s = instance_status(
            None,
            InstanceUpdate {
                generation: Some(1),
                connection: connected(now, None, None),
                attribution: Some(Attribution {
                    destinations: &d,
                    linkage: &l,
                    can_get_clusters: can,
                    can_get_applications: None,
                }),
                refresh_handled: None,
                insecure_tls: false,
                now,
            },
        );
        let c = s.conditions.iter().find(|c| c.type_ == CLUSTERS_VISIBLE).expect("condition");
        assert_eq!((c.status.as_str(), c.reason.as_str()), (status, reason));
        assert_eq!(s.unlinked_clusters.len(), 1, "destinations still come from the apps");
    }
}

fn visibility(
    clusters: &[Cluster],
    apps_json: &str,
    can_clusters: Option<bool>,
    can_apps: Option<bool>,
) -> (Condition, Condition) {
    let apps: Vec<Application> = serde_json::from_str(apps_json).expect("apps");
    let d = destinations(clusters, &apps);
    let l = link(&d, &[], &known(), false);
    let now = t("2026-11-22T10:00:00Z");
    let s = instance_status(
        None,
        InstanceUpdate {
            generation: Some(2),
            connection: connected(now, None, None),
            attribution: Some(Attribution {
                destinations: &d,
                linkage: &l,
                can_get_clusters: can_clusters,
                can_get_applications: can_apps,
            }),
            refresh_handled: None,
            insecure_tls: false,
            now,
        },
    );
    let find = |ty: &str| s.conditions.iter().find(|c| c.type_ == ty).cloned().expect("condition");
    (find(CLUSTERS_VISIBLE), find(APPLICATIONS_VISIBLE))
}

#[test]
fn a_token_with_no_role_sees_nothing_and_is_told_so() {
    let (c, a) = visibility(&[], "[]", Some(false), Some(false));
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", "MissingClustersGetPermission"));
    assert_eq!((a.status.as_str(), a.reason.as_str()), ("False", "MissingApplicationsGetPermission"));
    assert_eq!(a.observed_generation, Some(2));
    // An Argo CD that really is empty.
    let (c, a) = visibility(&[], "[]", Some(true), Some(true));
    assert_eq!((c.status.as_str(), a.status.as_str()), ("True", "True"));
}

#[test]
fn a_partial_cluster_policy_names_what_is_missing() {
    let apps = r#"[{"spec":{"destination":{"server":"https://b.example.com"}}},
                   {"spec":{"destination":{"name":"hidden"}}},
                   {"spec":{"destination":{"server":"https://a.example.com"}}}]"#;
    let (c, a) = visibility(&[cluster("https://a.example.com")], apps, Some(false), None);
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", "MissingClustersGetPermission"));
    assert!(
        c.message.contains("1 destination(s) of applications are missing from it: https://b.example.com"),
        "{}",
        c.message
    );
    assert!(c.message.contains("1 application(s) could not be attributed"), "{}", c.message);
    assert_eq!(a.status, "True");
    // can-i yes: the apps aim at clusters Argo CD does not have; the list is complete.
    let (c, _) = visibility(&[cluster("https://a.example.com")], apps, Some(true), None);
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("True", "ClustersListed"));
    // Many: five named, the rest counted.
    let many: Vec<String> = (0..7)
        .map(|i| format!(r#"{{"spec":{{"destination":{{"server":"https://x{i}.example.com"}}}}}}"#))
        .collect();
    let (c, _) =
        visibility(&[cluster("https://a.example.com")], &format!("[{}]", many.join(",")), Some(false), None);
    assert!(c.message.contains("and 2 more"), "{}", c.message);
}

#[test]
fn expiring_credentials_and_insecure_tls_warn() {
    let (d, l) = observed(&[], &[]);
    let now = t("2026-11-22T10:00:00Z");
    let mk = |exp: &str| {
        instance_status(
            None,
            InstanceUpdate {
                generation: Some(1),
                connection: connected(now, None, Some(t(exp))),
                attribution: Some(Attribution {
                    destinations: &d,
                    linkage: &l,
                    can_get_clusters: None,
                    can_get_applications: None,
                }),
                refresh_handled: Some("r1".into()),
                insecure_tls: true,
                now,
            },
        )
    };
    let soon = mk("2026-11-25T10:00:00Z");
    let c = soon.conditions.iter().find(|c| c.type_ == CREDENTIALS_EXPIRING).expect("cond");
    assert_eq!(c.status, "True");
    let later = mk("2027-11-25T10:00:00Z");
    let c = later.conditions.iter().find(|c| c.type_ == CREDENTIALS_EXPIRING).expect("cond");
    assert_eq!(c.status, "False");
    assert!(soon.conditions.iter().any(|c| c.type_ == INSECURE_TLS && c.status == "True"));
    assert_eq!(soon.last_handled_refresh_at.as_deref(), Some("r1"));
}

#[test]
fn lists_are_capped_with_exact_counts() {
    let clusters: Vec<Cluster> =
        (0..1200).map(|i| cluster(&format!("https://c{i:04}.example.com"))).collect();
    let (d, l) = observed(&clusters, &[]);
    let s = status_at(t("2026-11-22T10:00:00Z"), None, &d, &l);
    assert_eq!(s.unlinked_clusters.len(), LIST_CAP);
    assert!(s.truncated);
    assert_eq!(s.summary.expect("summary").unlinked_clusters, 1200);
}

#[test]
fn lists_are_capped_by_bytes_so_etcd_takes_the_status() {
    // 600 destinations with 4 KB URLs: 2.4 MB by count, which etcd refuses.
    let long = "x".repeat(4000);
    let clusters: Vec<Cluster> =
        (0..600).map(|i| cluster(&format!("https://c{i:04}.{long}.example.com"))).collect();
    let (d, l) = observed(&clusters, &[]);
    let s = status_at(t("2026-11-22T10:00:00Z"), None, &d, &l);
    assert!(s.truncated);
    assert!(!s.unlinked_clusters.is_empty() && s.unlinked_clusters.len() < 600);
    assert_eq!(s.summary.as_ref().expect("summary").unlinked_clusters, 600, "counts stay exact");
    let bytes = serde_json::to_vec(&s).expect("json").len();
    assert!(bytes < 512 * 1024, "status is {bytes} bytes");
    // One URL larger than the whole budget is kept cut (destinations bound their URLs).
    let huge = vec![cluster(&format!("https://{}.example.com", "y".repeat(LIST_BYTES)))];
    let (d, l) = observed(&huge, &[]);
    let s = status_at(t("2026-11-22T10:00:00Z"), None, &d, &l);
    let url = &s.unlinked_clusters[0].argocd_cluster_url;
    assert!(!s.truncated && url.len() <= crate::model::destinations::URL_CAP && url.ends_with('…'));
}

#[test]
fn a_refused_status_becomes_a_minimal_one_that_says_why() {
    let clusters: Vec<Cluster> = (0..3).map(|i| cluster(&format!("https://c{i}.example.com"))).collect();
    let (d, l) = observed(&clusters, &[]);
    let full = status_at(t("2026-11-22T10:00:00Z"), None, &d, &l);
    let m = minimal(&full, "etcdserver: request is too large", t("2026-11-22T10:00:05Z"));
    assert!(m.unlinked_clusters.is_empty() && m.orphaned_mappings.is_empty() && m.truncated);
    assert_eq!(m.summary, full.summary, "counts stay");
    let ready = m.conditions.iter().find(|c| c.type_ == READY).expect("ready");
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", STATUS_TOO_LARGE));
    assert!(ready.message.contains("request is too large"), "{}", ready.message);
    assert_eq!(m.conditions.len(), full.conditions.len());
}

#[test]
fn a_connected_status_older_than_the_limit_is_stale() {
    let (d, l) = observed(&[cluster("https://a.example.com")], &[]);
    let mut s = status_at(t("2026-11-22T10:00:00Z"), None, &d, &l);
    let limit = SignedDuration::from_mins(15);
    use crate::model::staleness::{is_stale, mark_stale};
    assert!(!mark_stale(&mut s, limit, t("2026-11-22T10:15:00Z")), "exactly at the limit is fresh");
    assert!(mark_stale(&mut s, limit, t("2026-11-22T10:15:01Z")));
    let ready = s.conditions.iter().find(|c| c.type_ == READY).expect("ready");
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("Unknown", "Stale"));
    assert!(ready.message.contains("2026-11-22T10:00:00Z"), "{}", ready.message);
    assert!(!mark_stale(&mut s, limit, t("2026-11-22T10:20:00Z")), "marked once");
    // A failed instance is not `connected`: it says so already.
    let mut failed = s.clone();
    failed.connection.as_mut().expect("conn").status = ConnectionState::Error;
    assert!(!is_stale(&failed, limit, t("2026-11-23T00:00:00Z")));
}

#[test]
fn mapping_status_is_time_stable() {
    let o = MappingOutcome {
        state: MappingState::Linked,
        argocd_cluster_name: Some("prod".into()),
        applications_count: Some(3),
        conflicts_with: None,
    };
    let a = mapping_status(
        None,
        Some(1),
        &o,
        &Resolved::written("https://a", None),
        "i",
        t("2026-11-22T10:00:00Z"),
    );
    let b = mapping_status(
        Some(&a),
        Some(1),
        &o,
        &Resolved::written("https://a", None),
        "i",
        t("2026-11-22T11:00:00Z"),
    );
    assert_eq!(a, b);
    let conflict =
        MappingOutcome { state: MappingState::Conflict, conflicts_with: Some("older".into()), ..o };
    let c = mapping_status(
        Some(&a),
        Some(1),
        &conflict,
        &Resolved::written("https://a", None),
        "i",
        t("2026-11-22T11:00:00Z"),
    );
    assert_eq!(c.conditions[0].status, "False");
    assert_eq!(c.conditions[0].reason, "Conflict");
    assert!(c.conditions[0].message.contains("older"));
    assert_eq!((c.conditions[1].type_.as_str(), c.conditions[1].status.as_str()), (STALLED, "True"));
    assert_eq!(c.conditions[1].message, c.conditions[0].message);
    assert_eq!(a.conditions.len(), 1, "a linked mapping is neither stalled nor reconciling");
    assert_eq!(c.conditions[0].last_transition_time, Time(t("2026-11-22T11:00:00Z")));
}
