//! Builds the statuses argomap writes, and decides whether a write is needed. Pure: the
//! current time is an argument, so a steady fleet compares equal and writes nothing.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::destinations::Destinations;
use super::linkage::{Linkage, MappingOutcome};
use crate::crd::{
    ArgoCdInstanceStatus, ClusterMappingStatus, ConnectionState, ConnectionStatus, MappingState, Reason,
    Summary,
};
use crate::text::cap;

/// Entries kept per status list; the summary counts stay exact.
pub const LIST_CAP: usize = 500;
/// `CredentialsExpiringSoon` turns true this long before the token expires.
pub const EXPIRY_WARNING: SignedDuration = SignedDuration::from_hours(7 * 24);

pub const READY: &str = "Ready";
pub const CONNECTED: &str = "Connected";
pub const CLUSTERS_VISIBLE: &str = "ClustersVisible";
pub const CREDENTIALS_EXPIRING: &str = "CredentialsExpiringSoon";
pub const INSECURE_TLS: &str = "InsecureTLS";

/// `t` cut to the second: Kubernetes stores times so, and a finer time would make every
/// comparison with a stored status differ.
pub fn to_second(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// What a check produced for the status's lists.
pub struct Observation<'a> {
    pub destinations: &'a Destinations,
    pub linkage: &'a Linkage,
    pub can_get_clusters: Option<bool>,
}

/// The connection part after a successful check.
pub fn connected(now: Timestamp, version: Option<String>, expires: Option<Timestamp>) -> ConnectionStatus {
    ConnectionStatus {
        status: ConnectionState::Connected,
        reason: Reason::Connected,
        message: String::new(),
        last_checked_at: Some(Time(now)),
        last_successful_check_at: Some(Time(now)),
        argocd_version: version,
        credentials_expire_at: expires.map(Time),
    }
}

/// The connection part after a failed check (or, with `checked: false`, a check that could
/// not start, such as a suspended instance): what was last known stays.
pub fn failed(
    prev: Option<&ConnectionStatus>,
    now: Timestamp,
    reason: Reason,
    message: &str,
    checked: bool,
) -> ConnectionStatus {
    ConnectionStatus {
        status: ConnectionState::Error,
        reason,
        message: cap(message),
        last_checked_at: if checked { Some(Time(now)) } else { prev.and_then(|p| p.last_checked_at.clone()) },
        last_successful_check_at: prev.and_then(|p| p.last_successful_check_at.clone()),
        argocd_version: prev.and_then(|p| p.argocd_version.clone()),
        credentials_expire_at: prev.and_then(|p| p.credentials_expire_at.clone()),
    }
}

/// Everything that decides an ArgoCdInstance status besides the previous one.
pub struct InstanceUpdate<'a> {
    pub generation: Option<i64>,
    pub connection: ConnectionStatus,
    /// `None` keeps the previous lists, summary and ClustersVisible (nothing new was seen).
    pub observation: Option<Observation<'a>>,
    pub refresh_handled: Option<String>,
    pub insecure_tls: bool,
    pub now: Timestamp,
}

pub fn instance_status(
    prev: Option<&ArgoCdInstanceStatus>,
    update: InstanceUpdate<'_>,
) -> ArgoCdInstanceStatus {
    let InstanceUpdate { generation, connection, observation, refresh_handled, insecure_tls, now } = update;
    let prev_conditions = prev.map(|p| p.conditions.as_slice()).unwrap_or_default();
    let cond = |type_: &str, status: bool, reason: &str, message: String| {
        condition(
            prev_conditions,
            generation,
            now,
            type_,
            if status { "True" } else { "False" },
            reason,
            message,
        )
    };

    let mut out = ArgoCdInstanceStatus {
        observed_generation: generation,
        last_handled_refresh_at: refresh_handled
            .or_else(|| prev.and_then(|p| p.last_handled_refresh_at.clone())),
        ..Default::default()
    };
    let clusters_visible = match &observation {
        Some(obs) => {
            let l = obs.linkage;
            let (linked, t1) = capped(&l.linked);
            let (unlinked, t2) = capped(&l.unlinked);
            let (orphaned, t3) = capped(&l.orphaned);
            out.linked_clusters = linked;
            out.unlinked_clusters = unlinked;
            out.orphaned_mappings = orphaned;
            out.truncated = t1 || t2 || t3;
            out.summary = Some(Summary {
                linked_clusters: l.linked.len() as u64,
                unlinked_clusters: l.unlinked.len() as u64,
                orphaned_mappings: l.orphaned.len() as u64,
                applications: obs.destinations.applications,
                unresolved_applications: obs.destinations.unresolved,
            });
            Some(clusters_visible(prev_conditions, generation, now, obs))
        }
        None => {
            if let Some(p) = prev {
                out.linked_clusters = p.linked_clusters.clone();
                out.unlinked_clusters = p.unlinked_clusters.clone();
                out.orphaned_mappings = p.orphaned_mappings.clone();
                out.truncated = p.truncated;
                out.summary = p.summary.clone();
            }
            prev_conditions.iter().find(|c| c.type_ == CLUSTERS_VISIBLE).cloned().map(|mut c| {
                c.observed_generation = generation;
                c
            })
        }
    };

    let is_connected = connection.status == ConnectionState::Connected;
    let (ready_reason, ready_message) = if is_connected {
        let s = out.summary.clone().unwrap_or_default();
        (
            Reason::Connected.as_str(),
            format!(
                "{} linked, {} unlinked, {} orphaned",
                s.linked_clusters, s.unlinked_clusters, s.orphaned_mappings
            ),
        )
    } else {
        (connection.reason.as_str(), connection.message.clone())
    };
    out.conditions.push(cond(READY, is_connected, ready_reason, ready_message));
    out.conditions.push(cond(
        CONNECTED,
        is_connected,
        connection.reason.as_str(),
        connection.message.clone(),
    ));
    if let Some(c) = clusters_visible {
        out.conditions.push(c);
    }
    if let Some(exp) = connection.credentials_expire_at.as_ref().map(|t| t.0) {
        let soon = exp.duration_since(now) < EXPIRY_WARNING;
        let message = format!("the Argo CD token expires at {exp}");
        out.conditions.push(cond(
            CREDENTIALS_EXPIRING,
            soon,
            if soon { "TokenExpiresSoon" } else { "TokenValid" },
            message,
        ));
    }
    if insecure_tls {
        out.conditions.push(cond(
            INSECURE_TLS,
            true,
            "InsecureSkipVerify",
            "TLS certificate verification is disabled (spec.tls.insecureSkipVerify)".into(),
        ));
    }
    out.connection = Some(connection);
    out
}

fn clusters_visible(
    prev: &[Condition],
    generation: Option<i64>,
    now: Timestamp,
    obs: &Observation<'_>,
) -> Condition {
    let d = obs.destinations;
    let (status, reason, message) = if d.cluster_list_empty && d.apps_name_destinations {
        if obs.can_get_clusters == Some(true) {
            (
                "True",
                "NoClustersRegistered",
                "Argo CD lists no clusters although applications name destinations".to_string(),
            )
        } else {
            let confirmed =
                if obs.can_get_clusters == Some(false) { "confirmed by can-i" } else { "unconfirmed" };
            (
                "False",
                "MissingClustersGetPermission",
                format!(
                    "Argo CD lists no clusters although applications name destinations: the token probably lacks `clusters, get` ({confirmed}); destinations come from applications only"
                ),
            )
        }
    } else {
        ("True", "ClustersListed", String::new())
    };
    condition(prev, generation, now, CLUSTERS_VISIBLE, status, reason, message)
}

/// A condition whose `lastTransitionTime` moves only when its status changes.
fn condition(
    prev: &[Condition],
    generation: Option<i64>,
    now: Timestamp,
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
) -> Condition {
    let last_transition_time = prev
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message: cap(&message),
        observed_generation: generation,
        last_transition_time,
    }
}

fn capped<T: Clone>(items: &[T]) -> (Vec<T>, bool) {
    (items.iter().take(LIST_CAP).cloned().collect(), items.len() > LIST_CAP)
}

/// Whether `desired` must be written over `current`: any change besides the check
/// timestamps, or the heartbeat period has passed since `lastCheckedAt` was last written.
pub fn instance_needs_write(
    current: Option<&ArgoCdInstanceStatus>,
    desired: &ArgoCdInstanceStatus,
    heartbeat: std::time::Duration,
) -> bool {
    let Some(current) = current else { return true };
    if without_check_times(current) != without_check_times(desired) {
        return true;
    }
    let checked = |s: &ArgoCdInstanceStatus| {
        s.connection.as_ref().and_then(|c| c.last_checked_at.as_ref()).map(|t| t.0)
    };
    match (checked(current), checked(desired)) {
        (Some(old), Some(new)) => {
            new > old
                && new.duration_since(old)
                    >= SignedDuration::try_from(heartbeat).unwrap_or(SignedDuration::MAX)
        }
        (None, Some(_)) => true,
        _ => false,
    }
}

fn without_check_times(s: &ArgoCdInstanceStatus) -> ArgoCdInstanceStatus {
    let mut s = s.clone();
    if let Some(c) = s.connection.as_mut() {
        c.last_checked_at = None;
        c.last_successful_check_at = None;
    }
    s
}

/// The status of one ClusterMapping. It carries no timestamp that moves on its own, so a
/// steady fleet writes nothing.
pub fn mapping_status(
    prev: Option<&ClusterMappingStatus>,
    generation: Option<i64>,
    outcome: &MappingOutcome,
    url: &str,
    instance: &str,
    now: Timestamp,
) -> ClusterMappingStatus {
    let message = match outcome.state {
        MappingState::Linked => format!("Argo CD deploys to {url}"),
        MappingState::Orphaned => format!("ArgoCdInstance {instance} has no destination {url}"),
        MappingState::Conflict => format!(
            "ClusterMapping {} already maps {url}",
            outcome.conflicts_with.as_deref().unwrap_or("another mapping")
        ),
        MappingState::InstanceNotFound => {
            format!("ArgoCdInstance {instance} does not exist in this namespace")
        }
        MappingState::Pending => {
            format!("waiting for the first successful check of ArgoCdInstance {instance}")
        }
    };
    let prev_conditions = prev.map(|p| p.conditions.as_slice()).unwrap_or_default();
    let linked = outcome.state == MappingState::Linked;
    ClusterMappingStatus {
        observed_generation: generation,
        state: Some(outcome.state),
        argocd_cluster_name: outcome.argocd_cluster_name.clone(),
        applications_count: outcome.applications_count,
        conflicts_with: outcome.conflicts_with.clone(),
        conditions: vec![condition(
            prev_conditions,
            generation,
            now,
            READY,
            if linked { "True" } else { "False" },
            outcome.state.as_str(),
            message,
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::argocd::types::{Application, Cluster};
    use crate::crd::{CloudProvider, KnownCluster, KubernetesType};
    use crate::model::destinations::destinations;
    use crate::model::linkage::{MappingInput, link};
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
        let l = link(&d, &m, &k);
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
                observation: Some(Observation { destinations: d, linkage: l, can_get_clusters: None }),
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
        assert_eq!(
            (summary.linked_clusters, summary.unlinked_clusters, summary.orphaned_mappings),
            (1, 1, 1)
        );
        let types: Vec<_> = s.conditions.iter().map(|c| (c.type_.as_str(), c.status.as_str())).collect();
        assert_eq!(types, vec![("Ready", "True"), ("Connected", "True"), ("ClustersVisible", "True")]);
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

    #[test]
    fn failure_keeps_lists_and_last_success() {
        let (d, l) = observed(&[cluster("https://a")], &[]);
        let ok = status_at(t("2026-11-22T10:00:00Z"), None, &d, &l);
        let now = t("2026-11-22T10:01:00Z");
        let conn = failed(ok.connection.as_ref(), now, Reason::AuthenticationFailed, "expired", true);
        let s = instance_status(
            Some(&ok),
            InstanceUpdate {
                generation: Some(3),
                connection: conn,
                observation: None,
                refresh_handled: None,
                insecure_tls: false,
                now,
            },
        );
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
        let l = link(&d, &[], &known());
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
                    observation: Some(Observation { destinations: &d, linkage: &l, can_get_clusters: can }),
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
                    observation: Some(Observation { destinations: &d, linkage: &l, can_get_clusters: None }),
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
    fn mapping_status_is_time_stable() {
        let o = MappingOutcome {
            state: MappingState::Linked,
            argocd_cluster_name: Some("prod".into()),
            applications_count: Some(3),
            conflicts_with: None,
        };
        let a = mapping_status(None, Some(1), &o, "https://a", "i", t("2026-11-22T10:00:00Z"));
        let b = mapping_status(Some(&a), Some(1), &o, "https://a", "i", t("2026-11-22T11:00:00Z"));
        assert_eq!(a, b);
        let conflict =
            MappingOutcome { state: MappingState::Conflict, conflicts_with: Some("older".into()), ..o };
        let c = mapping_status(Some(&a), Some(1), &conflict, "https://a", "i", t("2026-11-22T11:00:00Z"));
        assert_eq!(c.conditions[0].status, "False");
        assert_eq!(c.conditions[0].reason, "Conflict");
        assert!(c.conditions[0].message.contains("older"));
        assert_eq!(c.conditions[0].last_transition_time, Time(t("2026-11-22T11:00:00Z")));
    }
}
