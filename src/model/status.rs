//! Builds the statuses argomap writes, and decides whether a write is needed. Pure: the
//! current time is an argument, so a steady fleet compares equal and writes nothing.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::conditions::{
    APPLICATIONS_VISIBLE, CLUSTERS_VISIBLE, CONNECTED, CREDENTIALS_EXPIRING, Conditions, INSECURE_TLS, READY,
    RECONCILING, STALLED, Status, reason,
};
use super::destinations::Destinations;
use super::linkage::{Linkage, MappingOutcome};
use crate::crd::{
    ArgoCdInstanceStatus, ClusterMappingStatus, ConnectionState, ConnectionStatus, MappingState, Reason,
    Summary,
};
use crate::text::cap;

use super::size::capped;
pub use super::size::{LIST_BYTES, LIST_CAP, STATUS_TOO_LARGE, minimal};

/// `CredentialsExpiringSoon` turns true this long before the token expires.
pub const EXPIRY_WARNING: SignedDuration = SignedDuration::from_hours(7 * 24);

/// Whether a failed check stays failed until the instance or its Secret changes: argomap
/// refused to read an unlabelled Secret or to send credentials to a URL their Secret does not
/// allow, or Argo CD refused the credentials. Both are fixed
/// only by a change argomap watches, so retrying alone cannot help. Every other failure
/// (Argo CD down or slow, a missing Secret that may still be created, a policy Argo CD may
/// still grant) can pass on its own and is retried.
pub fn stalls(reason: Reason) -> bool {
    matches!(
        reason,
        Reason::CredentialsNotOptedIn | Reason::CredentialsNotAllowed | Reason::AuthenticationFailed
    )
}

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
    pub can_get_applications: Option<bool>,
}

/// Destinations named in one condition message, at most.
const NAMED_DESTINATIONS: usize = 5;

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

/// The status written when argomap first sees an instance, before its first check: an object
/// with no status at all is `Current` to kstatus (Flux's `wait: true` would pass at once), so
/// this one says `Ready=Unknown` and `Reconciling=True` (reason `Pending`) until the check ends.
pub fn awaiting_first_check(generation: Option<i64>, now: Timestamp) -> ArgoCdInstanceStatus {
    let message = "waiting for argomap's first check".to_string();
    let pending = Reason::Pending.as_str();
    ArgoCdInstanceStatus {
        observed_generation: generation,
        conditions: {
            let c = Conditions::new(&[], generation, now);
            vec![
                c.make(READY, Status::Unknown, pending, &message),
                c.make(RECONCILING, Status::True, pending, &message),
            ]
        },
        ..Default::default()
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
    let c = Conditions::new(prev_conditions, generation, now);
    let cond = |type_: &str, status: bool, reason: &str, message: String| {
        c.make(type_, status.into(), reason, message)
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
            Some((clusters_visible(&c, obs), Some(applications_visible(&c, obs))))
        }
        None => {
            if let Some(p) = prev {
                out.linked_clusters = p.linked_clusters.clone();
                out.unlinked_clusters = p.unlinked_clusters.clone();
                out.orphaned_mappings = p.orphaned_mappings.clone();
                out.truncated = p.truncated;
                out.summary = p.summary.clone();
            }
            let kept = |type_: &str| {
                prev_conditions.iter().find(|c| c.type_ == type_).cloned().map(|mut c| {
                    c.observed_generation = generation;
                    c
                })
            };
            kept(CLUSTERS_VISIBLE).map(|c| (c, kept(APPLICATIONS_VISIBLE)))
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
    if !is_connected && connection.reason != Reason::Suspended {
        let type_ = if stalls(connection.reason) { STALLED } else { RECONCILING };
        out.conditions.push(cond(type_, true, connection.reason.as_str(), connection.message.clone()));
    }
    if let Some((clusters, applications)) = clusters_visible {
        out.conditions.push(clusters);
        out.conditions.extend(applications);
    }
    if let Some(exp) = connection.credentials_expire_at.as_ref().map(|t| t.0) {
        let soon = exp.duration_since(now) < EXPIRY_WARNING;
        let message = format!("the Argo CD token expires at {exp}");
        out.conditions.push(cond(
            CREDENTIALS_EXPIRING,
            soon,
            if soon { reason::TOKEN_EXPIRES_SOON } else { reason::TOKEN_VALID },
            message,
        ));
    }
    if insecure_tls {
        out.conditions.push(cond(
            INSECURE_TLS,
            true,
            reason::INSECURE_SKIP_VERIFY,
            "TLS certificate verification is disabled (spec.tls.insecureSkipVerify)".into(),
        ));
    }
    out.connection = Some(connection);
    out
}

/// Whether Argo CD keeps (part of) its cluster list from the token: exactly when
/// ClustersVisible is False. A mapping is then never called orphaned on the list's word.
pub fn clusters_hidden(d: &Destinations, can_get_clusters: Option<bool>) -> bool {
    let gap = d.by_url.values().any(|x| !x.listed) || d.unresolved > 0;
    match can_get_clusters {
        Some(false) => d.cluster_list_empty || gap,
        None => d.cluster_list_empty && d.apps_name_destinations,
        Some(true) => false,
    }
}

/// Whether the cluster list shows every destination. Argo CD drops the clusters a token may
/// not get and still answers 200, so an empty list, or applications aimed at clusters the list
/// lacks, are read with `can-i clusters get *`: a "no" means the list is partial or hidden.
fn clusters_visible(c: &Conditions<'_>, obs: &Observation<'_>) -> Condition {
    let d = obs.destinations;
    let unlisted: Vec<&str> = d.by_url.values().filter(|x| !x.listed).map(|x| x.url.as_str()).collect();
    let named = |urls: &[&str]| {
        let shown: Vec<&str> = urls.iter().take(NAMED_DESTINATIONS).copied().collect();
        let more = urls.len().saturating_sub(NAMED_DESTINATIONS);
        if more > 0 { format!("{} and {more} more", shown.join(", ")) } else { shown.join(", ") }
    };
    let gap = !unlisted.is_empty() || d.unresolved > 0;
    let (status, reason, message) = match obs.can_get_clusters {
        Some(false) if d.cluster_list_empty => (
            Status::False,
            reason::MISSING_CLUSTERS_GET,
            if d.apps_name_destinations {
                "Argo CD lists no clusters to this token, which lacks `clusters, get` (confirmed by can-i); destinations come from applications only".to_string()
            } else {
                "Argo CD lists no clusters to this token, which lacks `clusters, get` (confirmed by can-i)".to_string()
            },
        ),
        Some(false) if gap => {
            let mut parts = Vec::new();
            if !unlisted.is_empty() {
                parts.push(format!(
                    "{} destination(s) of applications are missing from it: {}",
                    unlisted.len(),
                    named(&unlisted)
                ));
            }
            if d.unresolved > 0 {
                parts.push(format!(
                    "{} application(s) could not be attributed (unresolvedApplications)",
                    d.unresolved
                ));
            }
            (
                Status::False,
                reason::MISSING_CLUSTERS_GET,
                format!(
                    "the token may get only some clusters (can-i clusters get * says no), so Argo CD's cluster list is partial: {}",
                    parts.join("; ")
                ),
            )
        }
        Some(true) if d.cluster_list_empty && d.apps_name_destinations => (
            Status::True,
            reason::NO_CLUSTERS_REGISTERED,
            "Argo CD lists no clusters although applications name destinations".to_string(),
        ),
        None if d.cluster_list_empty && d.apps_name_destinations => (
            Status::False,
            reason::MISSING_CLUSTERS_GET,
            "Argo CD lists no clusters although applications name destinations: the token probably lacks `clusters, get` (unconfirmed: can-i could not be asked); destinations come from applications only".to_string(),
        ),
        _ => (Status::True, reason::CLUSTERS_LISTED, String::new()),
    };
    c.make(CLUSTERS_VISIBLE, status, reason, message)
}

/// Whether the application list can be trusted: an empty list is read with
/// `can-i applications get *`, and a "no" means the counts are not Argo CD's.
fn applications_visible(c: &Conditions<'_>, obs: &Observation<'_>) -> Condition {
    let (status, reason, message) = if obs.can_get_applications == Some(false)
        && obs.destinations.applications == 0
    {
        (
            Status::False,
            reason::MISSING_APPLICATIONS_GET,
            "Argo CD lists no applications to this token, which lacks `applications, get` (confirmed by can-i): application counts are unknown".to_string(),
        )
    } else {
        (Status::True, reason::APPLICATIONS_LISTED, String::new())
    };
    c.make(APPLICATIONS_VISIBLE, status, reason, message)
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
        MappingState::Unverified => format!(
            "no application of ArgoCdInstance {instance} deploys to {url}, and Argo CD hides (part of) its cluster list from the token (ClustersVisible=False), so whether {url} is registered cannot be told; grant the token `clusters, get` to know"
        ),
    };
    let prev_conditions = prev.map(|p| p.conditions.as_slice()).unwrap_or_default();
    let linked = outcome.state == MappingState::Linked;
    let c = Conditions::new(prev_conditions, generation, now);
    let mut conditions = vec![c.make(READY, linked.into(), outcome.state.as_str(), &message)];
    // An older mapping holds the URL: only a change of a ClusterMapping (which argomap
    // watches) can end it, so kstatus may call it Failed. Every other state can pass on its
    // own (Argo CD registers the cluster, the instance is created) and stays InProgress.
    if outcome.state == MappingState::Conflict {
        conditions.push(c.make(STALLED, Status::True, outcome.state.as_str(), message));
    }
    ClusterMappingStatus {
        observed_generation: generation,
        state: Some(outcome.state),
        argocd_cluster_name: outcome.argocd_cluster_name.clone(),
        applications_count: outcome.applications_count,
        conflicts_with: outcome.conflicts_with.clone(),
        conditions,
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
                observation: Some(Observation {
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
        assert_eq!(
            (summary.linked_clusters, summary.unlinked_clusters, summary.orphaned_mappings),
            (1, 1, 1)
        );
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
            observation: None,
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
                Reason::CredentialsNotOptedIn
                | Reason::CredentialsNotAllowed
                | Reason::AuthenticationFailed => {
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
        assert_eq!(
            (s.observed_generation, s.connection.is_none(), s.summary.is_none()),
            (Some(4), true, true)
        );
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
                    observation: Some(Observation {
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
                observation: Some(Observation {
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
        let (c, _) = visibility(
            &[cluster("https://a.example.com")],
            &format!("[{}]", many.join(",")),
            Some(false),
            None,
        );
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
                    observation: Some(Observation {
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
        let a = mapping_status(None, Some(1), &o, "https://a", "i", t("2026-11-22T10:00:00Z"));
        let b = mapping_status(Some(&a), Some(1), &o, "https://a", "i", t("2026-11-22T11:00:00Z"));
        assert_eq!(a, b);
        let conflict =
            MappingOutcome { state: MappingState::Conflict, conflicts_with: Some("older".into()), ..o };
        let c = mapping_status(Some(&a), Some(1), &conflict, "https://a", "i", t("2026-11-22T11:00:00Z"));
        assert_eq!(c.conditions[0].status, "False");
        assert_eq!(c.conditions[0].reason, "Conflict");
        assert!(c.conditions[0].message.contains("older"));
        assert_eq!((c.conditions[1].type_.as_str(), c.conditions[1].status.as_str()), (STALLED, "True"));
        assert_eq!(c.conditions[1].message, c.conditions[0].message);
        assert_eq!(a.conditions.len(), 1, "a linked mapping is neither stalled nor reconciling");
        assert_eq!(c.conditions[0].last_transition_time, Time(t("2026-11-22T11:00:00Z")));
    }
}
