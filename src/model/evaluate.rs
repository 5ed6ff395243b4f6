//! Evaluation, shared by the controller and `argomap check`: what one check observed, how it
//! ended, and the statuses that gives the ArgoCdInstance and its ClusterMappings. Pure.

use std::sync::Arc;

use jiff::Timestamp;
use kube::ResourceExt;

use super::destinations::{Destinations, destinations_from};
use super::linkage::{self, Linkage, MappingInput, MappingOutcome};
use super::status::{self, InstanceUpdate, Observation};
use super::url::normalize_url;
use crate::argocd::{ArgoCdError, ErrorKind, Snapshot};
use crate::crd::{
    ArgoCdInstance, ArgoCdInstanceStatus, ClusterMapping, ClusterMappingStatus, MappingState, Reason,
};

/// The status reason of a failed request: the client's kinds are the reasons' failure half.
pub fn reason_of(e: &ArgoCdError) -> Reason {
    match e.kind() {
        ErrorKind::AuthenticationFailed => Reason::AuthenticationFailed,
        ErrorKind::InsufficientPermissions => Reason::InsufficientPermissions,
        ErrorKind::Unreachable => Reason::Unreachable,
        ErrorKind::Timeout => Reason::Timeout,
        ErrorKind::Tls => Reason::TlsError,
        ErrorKind::InvalidResponse => Reason::InvalidResponse,
    }
}

/// What a successful check saw, reduced to what attribution needs: the raw application list
/// is dropped here so memory does not grow with the fleet's application count.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    pub destinations: Destinations,
    pub version: Option<String>,
    pub credentials_expire_at: Option<Timestamp>,
    pub can_get_clusters: Option<bool>,
    pub can_get_applications: Option<bool>,
}

impl Observed {
    pub fn from_snapshot(s: Snapshot) -> Self {
        Observed {
            destinations: destinations_from(&s.clusters, &s.applications),
            version: s.version,
            credentials_expire_at: s.credentials_expire_at,
            can_get_clusters: s.can_get_clusters,
            can_get_applications: s.can_get_applications,
        }
    }
}

/// How the latest attempt at this instance ended.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// A check succeeded; `fresh` is false when the lists are recomputed from an earlier
    /// check (a ClusterMapping changed), which leaves the connection fields alone.
    Observed {
        observed: Arc<Observed>,
        fresh: bool,
    },
    /// A check failed, or could not start (credentials), with a fixed reason; `fresh` is false
    /// when it is the earlier failure, re-evaluated because a ClusterMapping changed.
    Failed {
        reason: Reason,
        message: String,
        fresh: bool,
    },
    Suspended,
}

impl Outcome {
    /// A check that just failed with `e`.
    pub fn failed(e: &ArgoCdError) -> Self {
        Outcome::Failed { reason: reason_of(e), message: e.to_string(), fresh: true }
    }
}

/// The statuses one outcome gives. Mappings absent from `mappings` keep their status.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    pub instance: ArgoCdInstanceStatus,
    pub mappings: Vec<(String, ClusterMappingStatus)>,
    /// The linkage, when destinations were known.
    pub linkage: Option<Linkage>,
}

/// The ClusterMappings of `instance` among `all` (same namespace, `instanceRef` naming it).
pub fn mappings_of<'a>(
    instance: &ArgoCdInstance,
    all: impl IntoIterator<Item = &'a ClusterMapping>,
) -> Vec<&'a ClusterMapping> {
    let ns = instance.namespace();
    let name = instance.name_any();
    let mut out: Vec<_> =
        all.into_iter().filter(|m| m.namespace() == ns && m.spec.instance_ref.name == name).collect();
    out.sort_by_key(|m| m.name_any());
    out
}

pub fn evaluate(
    instance: &ArgoCdInstance,
    mappings: &[&ClusterMapping],
    outcome: &Outcome,
    refresh_handled: Option<String>,
    now: Timestamp,
) -> Evaluation {
    let prev = instance.status.as_ref();
    let prev_conn = prev.and_then(|p| p.connection.as_ref());
    let generation = instance.metadata.generation;
    let insecure_tls = instance.spec.tls.as_ref().is_some_and(|t| t.insecure_skip_verify);
    let name = instance.name_any();

    let (connection, observed) = match outcome {
        Outcome::Observed { observed, fresh: true } => (
            status::connected(now, observed.version.clone(), observed.credentials_expire_at),
            Some(observed.as_ref()),
        ),
        Outcome::Observed { observed, fresh: false } => (
            prev_conn.cloned().unwrap_or_else(|| {
                status::connected(now, observed.version.clone(), observed.credentials_expire_at)
            }),
            Some(observed.as_ref()),
        ),
        Outcome::Failed { reason, message, fresh } => {
            (status::failed(prev_conn, now, *reason, message, *fresh), None)
        }
        Outcome::Suspended => (
            status::failed(
                prev_conn,
                now,
                Reason::Suspended,
                "checks are suspended (spec.suspend: true)",
                false,
            ),
            None,
        ),
    };

    let inputs: Vec<MappingInput<'_>> = mappings
        .iter()
        .map(|m| MappingInput {
            name: m.metadata.name.as_deref().unwrap_or(""),
            url: &m.spec.argocd_cluster_url,
            created: m.metadata.creation_timestamp.as_ref().map(|t| t.0),
            cluster: &m.spec.cluster,
        })
        .collect();

    let (instance_status, mapping_statuses, linkage) = match observed {
        Some(obs) => {
            let hidden = status::clusters_hidden(&obs.destinations, obs.can_get_clusters);
            let linkage = linkage::link(&obs.destinations, &inputs, &instance.spec.agent_cluster, hidden);
            let statuses = mappings
                .iter()
                .filter_map(|m| {
                    let outcome = linkage.mappings.get(&m.name_any())?;
                    Some(mapping_entry(m, outcome, &name, now))
                })
                .collect();
            let observation = Observation {
                destinations: &obs.destinations,
                linkage: &linkage,
                can_get_clusters: obs.can_get_clusters,
                can_get_applications: obs.can_get_applications,
            };
            let s = status::instance_status(
                prev,
                InstanceUpdate {
                    generation,
                    connection,
                    observation: Some(observation),
                    refresh_handled,
                    insecure_tls,
                    now,
                },
            );
            (s, statuses, Some(linkage))
        }
        None => {
            // Nothing new is known about destinations: mappings keep their state, new ones wait.
            let pending = MappingOutcome {
                state: MappingState::Pending,
                argocd_cluster_name: None,
                applications_count: None,
                conflicts_with: None,
            };
            let statuses = mappings
                .iter()
                .filter(|m| {
                    m.status
                        .as_ref()
                        .and_then(|s| s.state)
                        .is_none_or(|s| s == MappingState::InstanceNotFound)
                })
                .map(|m| mapping_entry(m, &pending, &name, now))
                .collect();
            let s = status::instance_status(
                prev,
                InstanceUpdate {
                    generation,
                    connection,
                    observation: None,
                    refresh_handled,
                    insecure_tls,
                    now,
                },
            );
            (s, statuses, None)
        }
    };
    Evaluation { instance: instance_status, mappings: mapping_statuses, linkage }
}

fn mapping_entry(
    m: &ClusterMapping,
    outcome: &MappingOutcome,
    instance: &str,
    now: Timestamp,
) -> (String, ClusterMappingStatus) {
    let url = normalize_url(&m.spec.argocd_cluster_url);
    let s = status::mapping_status(m.status.as_ref(), m.metadata.generation, outcome, &url, instance, now);
    (m.name_any(), s)
}

/// The status of a mapping whose ArgoCdInstance does not exist.
pub fn instance_not_found(m: &ClusterMapping, now: Timestamp) -> ClusterMappingStatus {
    let outcome = MappingOutcome {
        state: MappingState::InstanceNotFound,
        argocd_cluster_name: None,
        applications_count: None,
        conflicts_with: None,
    };
    mapping_entry(m, &outcome, &m.spec.instance_ref.name, now).1
}

#[cfg(test)]
mod tests {
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
        let e = evaluate(&i, &mine, &Outcome::Observed { observed: hidden, fresh: true }, None, now());
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
        let e = evaluate(&i, &mine, &Outcome::Observed { observed: visible, fresh: true }, None, now());
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
            Some("r".into()),
            now(),
        );
        let summary = e.instance.summary.clone().expect("summary");
        assert_eq!(
            (summary.linked_clusters, summary.unlinked_clusters, summary.orphaned_mappings),
            (1, 1, 1)
        );
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
            None,
            now(),
        );
        i.status = Some(first.instance);
        known_mapping.status = Some(first.mappings[0].1.clone());
        let new_mapping = mapping("new", "https://new", "2026-03-01T00:00:00Z");
        let failed = Outcome::Failed {
            reason: Reason::Unreachable,
            message: "connection refused".into(),
            fresh: true,
        };
        let e = evaluate(&i, &[&known_mapping, &new_mapping], &failed, None, now());
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
        let first = evaluate(&i, &[], &Outcome::Observed { observed: observed(), fresh: true }, None, now());
        i.status = Some(first.instance.clone());
        let later: Timestamp = "2026-11-22T10:00:30Z".parse().expect("ts");
        let m = mapping("old", "https://old.example.com", "2026-01-01T00:00:00Z");
        let e = evaluate(&i, &[&m], &Outcome::Observed { observed: observed(), fresh: false }, None, later);
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
        let e = evaluate(&i, &[], &Outcome::Suspended, None, now());
        let conn = e.instance.connection.expect("connection");
        assert_eq!(conn.reason, Reason::Suspended);
        assert_eq!(conn.last_checked_at, None);
    }
}
