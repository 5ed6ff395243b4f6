//! The body of Qovery's `GET /organization/{organizationId}/argoCdDestinationClusterMapping`
//! (`ArgoCdInstanceMappingResponseList` of `tests/fixtures/qovery-argocd-mapping-openapi.yaml`),
//! built from the status of ArgoCdInstances. Pure: no I/O, so every rule is unit-tested here.
//!
//! Rules (docs/read-api.md): one entry per ArgoCdInstance whose `spec.organizationId`
//! matches; `credentials_id` is the UID of the credentials Secret; `argocd_cluster_name` is Argo
//! CD's cluster name, else the URL; `last_checked_at` is `status.connection.lastCheckedAt`.
//!
//! Where the contract is silent (every field is required; ids are `format: uuid`):
//!
//! - **Not checked yet** (no `status.connection`, or no `lastCheckedAt`): the entry is returned,
//!   with `status: error` (argomap never claims `connected` before a check has succeeded) and
//!   `last_checked_at` = the object's `creationTimestamp`. The contract itself describes
//!   `last_checked_at` as "the last configuration update" for now, so the creation time is the
//!   value it documents, and the console shows a new instance at once instead of having it pop in
//!   a few seconds later. An object without a creation time (never true of one read from the API
//!   server) is skipped.
//! - **No credentials Secret** (missing, or its UID unknown): the entry is skipped. The contract
//!   returns "one entry per ArgoCD agent cluster that has credentials configured", and
//!   `credentials_id` must be the id of real stored credentials: inventing one (or the nil UUID)
//!   would hand the console an id that points at nothing. The problem stays visible where
//!   operators look: `Ready=False`/`CredentialsNotFound` in status, an Event, `argomap_instance_up 0`.
//! - **Ids that are not UUIDs** (the CRD schema rejects them, so only objects written around it):
//!   an instance whose `agentCluster.id` is not a UUID is skipped; a linked destination whose
//!   cluster id is not a UUID is listed under `unlinked_clusters`, since no usable mapping links it.
//!   Either way the response still validates against the contract.
//!
//! Order is deterministic: entries by agent cluster name, Argo CD URL, then namespace and name;
//! clusters by URL, then name. Lists are what status holds (capped at 500 entries each).

use std::collections::BTreeMap;

use jiff::Timestamp;
use kube::ResourceExt;
use serde::{Deserialize, Serialize};

use crate::crd::{
    ArgoCdInstance, CloudProvider, ConnectionState, KubernetesType, LinkedCluster, UnlinkedCluster,
};

/// UIDs of Secrets by (namespace, name).
pub type SecretUids = BTreeMap<(String, String), String>;

/// `ArgoCdInstanceMappingResponseList`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct ArgoCdInstanceMappingResponseList {
    pub results: Vec<ArgoCdInstanceMappingResponse>,
}

/// `ArgoCdInstanceMappingResponse`: one ArgoCdInstance.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ArgoCdInstanceMappingResponse {
    pub agent_cluster_id: String,
    pub agent_cluster_name: String,
    pub agent_cluster_cloud_provider: CloudProvider,
    pub credentials_id: String,
    pub argocd_url: String,
    pub status: ConnectionState,
    /// RFC 3339 (jiff's serde form, `2026-11-22T10:00:00Z`).
    pub last_checked_at: Timestamp,
    pub linked_clusters: Vec<ArgoCdLinkedClusterDetails>,
    pub unlinked_clusters: Vec<ArgoCdUnlinkedClusterDetails>,
}

/// `ArgoCdLinkedClusterDetails`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ArgoCdLinkedClusterDetails {
    pub argocd_cluster_url: String,
    pub argocd_cluster_name: String,
    pub qovery_cluster_id: String,
    pub qovery_cluster_name: String,
    pub qovery_cluster_cloud_provider: CloudProvider,
    pub qovery_cluster_type: KubernetesType,
    pub applications_count: u64,
}

/// `ArgoCdUnlinkedClusterDetails`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ArgoCdUnlinkedClusterDetails {
    pub argocd_cluster_url: String,
    pub argocd_cluster_name: String,
    pub applications_count: u64,
}

/// Why an instance of the organization has no entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::IntoStaticStr)]
pub enum SkipReason {
    /// Its credentials Secret does not exist (or has no UID).
    NoCredentialsSecret,
    /// `spec.agentCluster.id` is not a UUID.
    InvalidAgentClusterId,
    /// Neither `lastCheckedAt` nor a creation time.
    NoTimestamp,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// An instance left out of the response, for the caller to log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub namespace: String,
    pub name: String,
    pub reason: SkipReason,
}

/// The response and the instances left out of it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Built {
    pub list: ArgoCdInstanceMappingResponseList,
    pub skipped: Vec<Skipped>,
}

/// Whether `s` is a UUID in its 8-4-4-4-12 hex form (either case, as RFC 9562 allows).
pub fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Whether the instance belongs to `organization_id`. UUIDs compare case-insensitively.
pub fn in_organization(instance: &ArgoCdInstance, organization_id: &str) -> bool {
    instance.spec.organization_id.as_deref().is_some_and(|o| o.eq_ignore_ascii_case(organization_id))
}

/// The response from instances the caller has already filtered (by organization and access),
/// with the instances `stale` says yes to reported as `error`: their status says connected,
/// but the last successful check is too old for that to be true.
pub fn build_with<'a>(
    instances: impl IntoIterator<Item = &'a ArgoCdInstance>,
    secret_uids: &SecretUids,
    stale: &dyn Fn(&ArgoCdInstance) -> bool,
) -> Built {
    let mut results = Vec::new();
    let Ok(skipped) = each_entry(instances, secret_uids, stale, |e| {
        results.push(e);
        Ok::<_, std::convert::Infallible>(())
    });
    Built { list: ArgoCdInstanceMappingResponseList { results }, skipped }
}

/// The answer was over the byte limit given to [`write_capped`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the answer is over {limit} bytes")]
pub struct TooLarge {
    pub limit: usize,
}

/// The JSON of [`build_with`]'s list, byte for byte, written entry by entry and abandoned as
/// soon as it passes `limit` bytes: one entry at a time is held besides the bytes written, so
/// an organization of many large instances costs at most `limit` plus one entry.
pub fn write_capped<'a>(
    instances: impl IntoIterator<Item = &'a ArgoCdInstance>,
    secret_uids: &SecretUids,
    stale: &dyn Fn(&ArgoCdInstance) -> bool,
    limit: usize,
) -> Result<(Vec<u8>, Vec<Skipped>), TooLarge> {
    let mut out = b"{\"results\":[".to_vec();
    let mut first = true;
    let skipped = each_entry(instances, secret_uids, stale, |e| {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        // Writing into a Vec fails only on a serializer error, which these plain types cannot have.
        serde_json::to_writer(&mut out, &e).map_err(|_| TooLarge { limit })?;
        if out.len() > limit { Err(TooLarge { limit }) } else { Ok(()) }
    })?;
    out.extend_from_slice(b"]}");
    if out.len() > limit {
        return Err(TooLarge { limit });
    }
    Ok((out, skipped))
}

/// Hands each instance's entry to `take`, in the answer's order (agent cluster name, Argo CD
/// URL, namespace, name: all from the spec, so instances are sorted before any entry is
/// built), and returns the instances left out.
fn each_entry<'a, E>(
    instances: impl IntoIterator<Item = &'a ArgoCdInstance>,
    secret_uids: &SecretUids,
    stale: &dyn Fn(&ArgoCdInstance) -> bool,
    mut take: impl FnMut(ArgoCdInstanceMappingResponse) -> Result<(), E>,
) -> Result<Vec<Skipped>, E> {
    let mut ordered: Vec<(String, String, &ArgoCdInstance)> =
        instances.into_iter().map(|i| (i.namespace().unwrap_or_default(), i.name_any(), i)).collect();
    ordered.sort_by(|(ans, an, a), (bns, bn, b)| {
        a.spec
            .agent_cluster
            .name
            .cmp(&b.spec.agent_cluster.name)
            .then_with(|| a.spec.url.cmp(&b.spec.url))
            .then_with(|| ans.cmp(bns))
            .then_with(|| an.cmp(bn))
    });
    let mut skipped = Vec::new();
    for (namespace, name, instance) in ordered {
        match entry(instance, &namespace, secret_uids) {
            Ok(mut e) => {
                if stale(instance) {
                    e.status = ConnectionState::Error;
                }
                take(e)?;
            }
            Err(reason) => skipped.push(Skipped { namespace, name, reason }),
        }
    }
    skipped.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Ok(skipped)
}

fn entry(
    instance: &ArgoCdInstance,
    namespace: &str,
    secret_uids: &SecretUids,
) -> Result<ArgoCdInstanceMappingResponse, SkipReason> {
    let spec = &instance.spec;
    if !is_uuid(&spec.agent_cluster.id) {
        return Err(SkipReason::InvalidAgentClusterId);
    }
    let credentials_id = secret_uids
        .get(&(namespace.to_string(), spec.credentials.secret_ref.name.clone()))
        .filter(|uid| is_uuid(uid))
        .ok_or(SkipReason::NoCredentialsSecret)?;
    let connection = instance.status.as_ref().and_then(|s| s.connection.as_ref());
    let last_checked_at = connection
        .and_then(|c| c.last_checked_at.as_ref())
        .or(instance.metadata.creation_timestamp.as_ref())
        .map(|t| t.0)
        .ok_or(SkipReason::NoTimestamp)?;
    // Before the first check there is nothing to claim a connection on.
    let status = connection.map(|c| c.status).unwrap_or(ConnectionState::Error);

    let mut linked_clusters = Vec::new();
    let mut unlinked_clusters = Vec::new();
    if let Some(st) = &instance.status {
        for l in &st.linked_clusters {
            if is_uuid(&l.cluster.id) {
                linked_clusters.push(linked(l));
            } else {
                unlinked_clusters.push(ArgoCdUnlinkedClusterDetails {
                    argocd_cluster_url: l.argocd_cluster_url.clone(),
                    argocd_cluster_name: display_name(
                        l.argocd_cluster_name.as_deref(),
                        &l.argocd_cluster_url,
                    ),
                    applications_count: l.applications_count,
                });
            }
        }
        unlinked_clusters.extend(st.unlinked_clusters.iter().map(unlinked));
    }
    linked_clusters.sort_by(|a, b| {
        (&a.argocd_cluster_url, &a.argocd_cluster_name).cmp(&(&b.argocd_cluster_url, &b.argocd_cluster_name))
    });
    unlinked_clusters.sort_by(|a, b| {
        (&a.argocd_cluster_url, &a.argocd_cluster_name).cmp(&(&b.argocd_cluster_url, &b.argocd_cluster_name))
    });

    Ok(ArgoCdInstanceMappingResponse {
        agent_cluster_id: spec.agent_cluster.id.clone(),
        agent_cluster_name: spec.agent_cluster.name.clone(),
        agent_cluster_cloud_provider: spec.agent_cluster.cloud_provider,
        credentials_id: credentials_id.clone(),
        argocd_url: spec.url.clone(),
        status,
        last_checked_at,
        linked_clusters,
        unlinked_clusters,
    })
}

/// Argo CD's cluster name, else the URL (an empty name counts as none).
fn display_name(name: Option<&str>, url: &str) -> String {
    name.filter(|n| !n.is_empty()).unwrap_or(url).to_string()
}

fn linked(l: &LinkedCluster) -> ArgoCdLinkedClusterDetails {
    ArgoCdLinkedClusterDetails {
        argocd_cluster_url: l.argocd_cluster_url.clone(),
        argocd_cluster_name: display_name(l.argocd_cluster_name.as_deref(), &l.argocd_cluster_url),
        qovery_cluster_id: l.cluster.id.clone(),
        qovery_cluster_name: l.cluster.name.clone(),
        qovery_cluster_cloud_provider: l.cluster.cloud_provider,
        qovery_cluster_type: l.cluster.kind,
        applications_count: l.applications_count,
    }
}

fn unlinked(u: &UnlinkedCluster) -> ArgoCdUnlinkedClusterDetails {
    ArgoCdUnlinkedClusterDetails {
        argocd_cluster_url: u.argocd_cluster_url.clone(),
        argocd_cluster_name: display_name(u.argocd_cluster_name.as_deref(), &u.argocd_cluster_url),
        applications_count: u.applications_count,
    }
}

#[cfg(test)]
mod tests;
