//! One check of one Argo CD, shared by the controller and `argomap check`: what was observed,
//! and the statuses it gives the ArgoCdInstance and its ClusterMappings. Apart from
//! [`fetch`], everything here is pure.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use kube::ResourceExt;

use crate::argocd::{self, ArgoCdError, RequestObserver, Snapshot};
use crate::crd::{
    ArgoCdInstance, ArgoCdInstanceStatus, ClusterMapping, ClusterMappingStatus, MappingState, Reason,
};
use crate::mapping::{self, Destinations, Linkage, MappingInput, MappingOutcome};
use crate::status::{self, InstanceUpdate, Observation};

/// Parses a spec duration such as `60s` or `1m30s` (the schema admits only these forms).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

/// What a successful check saw, reduced to what attribution needs: the raw application list
/// is dropped here so memory does not grow with the fleet's application count.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    pub destinations: Destinations,
    pub version: Option<String>,
    pub credentials_expire_at: Option<Timestamp>,
    pub can_get_clusters: Option<bool>,
}

impl Observed {
    pub fn from_snapshot(s: Snapshot) -> Self {
        Observed {
            destinations: mapping::destinations(&s.clusters, &s.applications),
            version: s.version,
            credentials_expire_at: s.credentials_expire_at,
            can_get_clusters: s.can_get_clusters,
        }
    }
}

/// Fetches and reduces one snapshot.
pub async fn fetch(client: &argocd::Client, observer: &dyn RequestObserver) -> Result<Observed, ArgoCdError> {
    let snapshot = client.snapshot(observer).await?;
    if snapshot.applications.is_empty() && snapshot.clusters.is_empty() {
        tracing::debug!("Argo CD lists neither clusters nor applications");
    }
    Ok(Observed::from_snapshot(snapshot))
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
            let linkage = mapping::link(&obs.destinations, &inputs, &instance.spec.agent_cluster);
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
    let url = mapping::normalize_url(&m.spec.argocd_cluster_url);
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
    use crate::crd::{
        ArgoCdInstanceSpec, ClusterMappingSpec, ConnectionState, CredentialsSpec, KnownCluster, LocalRef,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn known(name: &str) -> KnownCluster {
        serde_json::from_value(serde_json::json!({
            "id": "0b9f6a1e-0000-4000-8000-000000000001", "name": name, "cloudProvider": "AWS"
        }))
        .expect("cluster")
    }

    fn instance() -> ArgoCdInstance {
        let mut i = ArgoCdInstance::new(
            "prod",
            ArgoCdInstanceSpec {
                url: "https://argocd.example.com".into(),
                credentials: CredentialsSpec {
                    secret_ref: LocalRef { name: "s".into() },
                    ..Default::default()
                },
                agent_cluster: known("Agent"),
                organization_id: None,
                interval: "60s".into(),
                timeout: "10s".into(),
                tls: None,
                suspend: false,
            },
        );
        i.metadata.namespace = Some("platform".into());
        i.metadata.generation = Some(2);
        i
    }

    fn mapping(name: &str, url: &str, created: &str) -> ClusterMapping {
        let mut m = ClusterMapping::new(
            name,
            ClusterMappingSpec {
                instance_ref: LocalRef { name: "prod".into() },
                argocd_cluster_url: url.into(),
                cluster: known(name),
            },
        );
        m.metadata.namespace = Some("platform".into());
        m.metadata.generation = Some(1);
        m.metadata.creation_timestamp = Some(Time(created.parse().expect("ts")));
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
            destinations: mapping::destinations(&clusters, &apps),
            version: Some("v3.5.1".into()),
            credentials_expire_at: None,
            can_get_clusters: None,
        })
    }

    fn now() -> Timestamp {
        "2026-11-22T10:00:00Z".parse().expect("ts")
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
    fn suspended_instance() {
        let i = instance();
        let e = evaluate(&i, &[], &Outcome::Suspended, None, now());
        let conn = e.instance.connection.expect("connection");
        assert_eq!(conn.reason, Reason::Suspended);
        assert_eq!(conn.last_checked_at, None);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("soon").is_err());
    }
}
