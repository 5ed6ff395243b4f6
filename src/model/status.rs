//! Builds the statuses argomap writes, and decides whether a write is needed. Pure: the
//! current time is an argument, so a steady fleet compares equal and writes nothing.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::conditions::{
    APPLICATIONS_VISIBLE, CLUSTERS_VISIBLE, CONNECTED, CREDENTIALS_EXPIRING, Conditions, INSECURE_TLS, READY,
    RECONCILING, STALLED, Status, reason,
};
use super::destinations::Destinations;
use super::linkage::{Linkage, MappingOutcome};
use super::resolve::Resolved;
use crate::crd::{
    ArgoCdInstanceStatus, ClusterMappingStatus, ConnectionState, ConnectionStatus, DanglingDestination,
    DestinationKind, MappingState, Reason, Summary,
};
use crate::text::cap;

use super::size::capped;
pub use super::size::{LIST_BYTES, LIST_CAP, STATUS_TOO_LARGE, minimal};
pub use super::visibility::clusters_hidden;
use super::visibility::{applications_visible, clusters_visible};

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

/// What a successful check attributed, as the status shows it: its destinations, how they link
/// to mappings, and what the token could see (the lists, the summary and the visibility
/// conditions are made from it).
pub struct Attribution<'a> {
    pub destinations: &'a Destinations,
    pub linkage: &'a Linkage,
    pub can_get_clusters: Option<bool>,
    pub can_get_applications: Option<bool>,
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
    pub attribution: Option<Attribution<'a>>,
    pub refresh_handled: Option<String>,
    pub insecure_tls: bool,
    pub now: Timestamp,
}

/// The destinations Argo CD cannot resolve, as status lists them: none while the token cannot
/// see the whole cluster list (a cluster hidden from it would look unregistered).
fn dangling(d: &Destinations, can_get_clusters: Option<bool>) -> Vec<DanglingDestination> {
    if clusters_hidden(d, can_get_clusters) {
        return Vec::new();
    }
    d.dangling
        .iter()
        .map(|x| DanglingDestination {
            destination: x.destination.clone(),
            kind: if x.by_name { DestinationKind::Name } else { DestinationKind::Server },
            registered: x.registered,
            applications_count: x.applications,
        })
        .collect()
}

pub fn instance_status(
    prev: Option<&ArgoCdInstanceStatus>,
    update: InstanceUpdate<'_>,
) -> ArgoCdInstanceStatus {
    let InstanceUpdate { generation, connection, attribution, refresh_handled, insecure_tls, now } = update;
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
    let clusters_visible = match &attribution {
        Some(obs) => {
            let l = obs.linkage;
            let (linked, t1) = capped(&l.linked);
            let (unlinked, t2) = capped(&l.unlinked);
            let (orphaned, t3) = capped(&l.orphaned);
            let all_dangling = dangling(obs.destinations, obs.can_get_clusters);
            let (dangling, t4) = capped(&all_dangling);
            out.linked_clusters = linked;
            out.unlinked_clusters = unlinked;
            out.orphaned_mappings = orphaned;
            out.dangling_destinations = dangling;
            out.truncated = t1 || t2 || t3 || t4;
            out.summary = Some(Summary {
                linked_clusters: l.linked.len() as u64,
                unlinked_clusters: l.unlinked.len() as u64,
                orphaned_mappings: l.orphaned.len() as u64,
                applications: obs.destinations.applications,
                unresolved_applications: obs.destinations.unresolved,
                dangling_destinations: all_dangling.len() as u64,
                // Other instances' statuses tell (`fleet::share`, in `evaluate`).
                shared_clusters: 0,
            });
            Some((
                clusters_visible(&c, obs.destinations, obs.can_get_clusters),
                Some(applications_visible(&c, obs.destinations, obs.can_get_applications)),
            ))
        }
        None => {
            if let Some(p) = prev {
                out.linked_clusters = p.linked_clusters.clone();
                out.unlinked_clusters = p.unlinked_clusters.clone();
                out.orphaned_mappings = p.orphaned_mappings.clone();
                out.dangling_destinations = p.dangling_destinations.clone();
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
    resolved: &Resolved,
    instance: &str,
    now: Timestamp,
) -> ClusterMappingStatus {
    let url = resolved.url.as_deref().unwrap_or("(no URL)");
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
        MappingState::Unresolved => resolved.problem.clone().unwrap_or_default(),
    };
    let prev_conditions = prev.map(|p| p.conditions.as_slice()).unwrap_or_default();
    let linked = outcome.state == MappingState::Linked;
    // A linked mapping is not Ready while its ClusterProfile is missing or unhealthy.
    let profile = resolved.profile.as_ref();
    let (ready, reason, message) = match profile {
        Some(p) if linked && !p.found => (
            false,
            reason::CLUSTER_PROFILE_NOT_FOUND,
            format!("{message}, but ClusterProfile {}/{} does not exist", p.namespace, p.name),
        ),
        Some(p) if linked && p.control_plane_healthy.as_deref() == Some("False") => (
            false,
            reason::CLUSTER_PROFILE_UNHEALTHY,
            format!(
                "{message}, but ClusterProfile {}/{} says its control plane is not healthy",
                p.namespace, p.name
            ),
        ),
        _ => (linked, outcome.state.as_str(), message),
    };
    let c = Conditions::new(prev_conditions, generation, now);
    let mut conditions = vec![c.make(READY, ready.into(), reason, &message)];
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
        argocd_cluster_url: resolved.url.clone().filter(|_| resolved.url_from_profile),
        cluster_profile: resolved.profile.clone(),
        conditions,
    }
}

#[cfg(test)]
mod tests;
