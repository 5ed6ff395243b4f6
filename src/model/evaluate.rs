//! Evaluation, shared by the controller and `argomap check`: what one check observed, how it
//! ended, and the statuses that gives the ArgoCdInstance and its ClusterMappings. Pure.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;

use super::conditions;
use super::destinations::{Destinations, destinations_from};
use super::linkage::{self, Linkage, MappingInput, MappingOutcome};
use super::profiles::Profiles;
use super::resolve::{Resolved, resolve};
use super::status::{self, Attribution, InstanceUpdate};
use super::stream::{StreamState, stream_condition};
use super::{fleet, organization, staleness};
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

/// What decides an instance's status besides the check's outcome.
#[derive(Clone, Debug, Default)]
pub struct Circumstances {
    /// The refresh annotation value this check handled.
    pub refresh_handled: Option<String>,
    /// A connected status whose last successful check is older than this is stale (`None`:
    /// never).
    pub stale_after: Option<SignedDuration>,
    /// Watch mode: where the application stream stands, and every how many intervals it
    /// relists.
    pub stream: Option<(StreamState, u32)>,
    /// How organizations are bound to namespaces, and the organization label of the instance's
    /// namespace (`None`: not known, no `OrganizationBound` condition).
    pub organization: Option<(organization::Binding, Option<String>)>,
    /// The ClusterProfiles argomap reads (none without `--cluster-profiles`).
    pub profiles: Arc<Profiles>,
    /// The instances argomap sees (this one may be among them): where their statuses say they
    /// deploy gives `alsoDeployedBy` (none: no other instance).
    pub fleet: Vec<Arc<ArgoCdInstance>>,
}

/// The whole status of `instance` and of its ClusterMappings, from the check's `outcome`.
pub fn evaluate(
    instance: &ArgoCdInstance,
    mappings: &[&ClusterMapping],
    outcome: &Outcome,
    circumstances: &Circumstances,
    now: Timestamp,
) -> Evaluation {
    let mut e = evaluate_check(
        instance,
        mappings,
        outcome,
        &circumstances.profiles,
        circumstances.refresh_handled.clone(),
        now,
    );
    let s = &mut e.instance;
    fleet::share(s, instance, &circumstances.fleet);
    if let Some(limit) = circumstances.stale_after {
        // Recomputed from an old check (a mapping changed while checks fail to finish).
        staleness::mark_stale(s, limit, now);
    }
    let prev = instance.status.as_ref().map(|p| p.conditions.as_slice()).unwrap_or_default();
    let generation = instance.metadata.generation;
    if let Some((stream, relist_every)) = &circumstances.stream {
        conditions::set(&mut s.conditions, stream_condition(prev, generation, now, stream, *relist_every));
    }
    if let (Some(org), Some((binding, label))) = (&instance.spec.organization_id, &circumstances.organization)
    {
        let ns = instance.namespace().unwrap_or_default();
        let bound =
            organization::bound_condition(prev, generation, now, *binding, org, &ns, label.as_deref());
        conditions::set(&mut s.conditions, bound);
    }
    e
}

/// The statuses the check's outcome alone gives.
fn evaluate_check(
    instance: &ArgoCdInstance,
    mappings: &[&ClusterMapping],
    outcome: &Outcome,
    profiles: &Profiles,
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

    // Each mapping's URL and cluster, from its spec or its ClusterProfile; those that cannot be
    // told link nothing and are `Unresolved`.
    let resolved: Vec<Resolved> =
        mappings.iter().map(|m| resolve(m, profiles, observed.map(|o| &o.destinations))).collect();
    let inputs: Vec<MappingInput<'_>> = mappings
        .iter()
        .zip(&resolved)
        .filter_map(|(m, r)| {
            Some(MappingInput {
                name: m.metadata.name.as_deref().unwrap_or(""),
                url: r.url.as_deref()?,
                created: m.metadata.creation_timestamp.as_ref().map(|t| t.0),
                cluster: r.cluster.as_ref()?,
            })
        })
        .collect();
    let unresolved = MappingOutcome {
        state: MappingState::Unresolved,
        argocd_cluster_name: None,
        applications_count: None,
        conflicts_with: None,
    };

    let (instance_status, mapping_statuses, linkage) = match observed {
        Some(obs) => {
            let hidden = status::clusters_hidden(&obs.destinations, obs.can_get_clusters);
            let linkage = linkage::link(&obs.destinations, &inputs, &instance.spec.agent_cluster, hidden);
            let linkage = if instance.spec.applications.health { linkage } else { linkage.without_health() };
            let trusted = instance.spec.auto_link.as_ref().map(|a| a.identity_keys.as_slice());
            let linkage = linkage.with_profiles(profiles, trusted);
            let statuses = mappings
                .iter()
                .zip(&resolved)
                .filter_map(|(m, r)| {
                    let outcome = match r.problem {
                        Some(_) => &unresolved,
                        None => linkage.mappings.get(&m.name_any())?,
                    };
                    Some(mapping_entry(m, outcome, r, &name, now))
                })
                .collect();
            let attribution = Attribution {
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
                    attribution: Some(attribution),
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
                .zip(&resolved)
                .filter(|(m, _)| {
                    m.status
                        .as_ref()
                        .and_then(|s| s.state)
                        .is_none_or(|s| s == MappingState::InstanceNotFound)
                })
                .map(|(m, r)| mapping_entry(m, &pending, r, &name, now))
                .collect();
            let s = status::instance_status(
                prev,
                InstanceUpdate {
                    generation,
                    connection,
                    attribution: None,
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
    resolved: &Resolved,
    instance: &str,
    now: Timestamp,
) -> (String, ClusterMappingStatus) {
    let s =
        status::mapping_status(m.status.as_ref(), m.metadata.generation, outcome, resolved, instance, now);
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
    let resolved = resolve(m, &Profiles::default(), None);
    mapping_entry(m, &outcome, &resolved, &m.spec.instance_ref.name, now).1
}

#[cfg(test)]
mod tests;
