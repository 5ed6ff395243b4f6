//! One platform cluster seen across ArgoCdInstances: from the statuses of the instances
//! argomap sees, which instances deploy to each platform cluster (the `cluster.id` of a linked
//! destination), with their application counts and how each destination is linked; and, for
//! one instance's status, which other instances deploy to the clusters it links. Pure.
//!
//! Rules (docs/how-it-works.md, "One cluster, several Argo CDs"):
//!
//! - An instance deploys to a platform cluster when its status links a destination to it
//!   (`linkedClusters[]`): by a ClusterMapping, implicitly (the in-cluster destination, linked to
//!   `spec.agentCluster`) or automatically (`spec.autoLink`), whatever its application count: a
//!   registered cluster is one that Argo CD connects to and may deploy to at any time.
//! - The status is taken as it is, whether the instance is connected, failing, stale or
//!   suspended: its last successful check still says where that Argo CD deploys, and its
//!   applications are still there. The read API gives each instance's connection beside it.
//! - Clusters are told apart by id, compared case-insensitively. An id that is not a UUID (only
//!   an object written around the schema has one) is left out, as Qovery's view leaves such a
//!   link out of `linked_clusters`.
//! - When statuses disagree on a cluster's name, cloud provider or type (two mappings spelling
//!   it differently), the first instance in namespace/name order gives them (its first
//!   destination to that cluster by URL): the choice does not move between checks.
//! - Bounded by the statuses: each holds at most 500 linked destinations (`size`), so the view
//!   holds at most that many entries per instance, and `alsoDeployedBy` names at most
//!   [`MAX_NAMED`] instances.
//! - Deterministic: clusters by name then id, instances by namespace then name, destinations by
//!   URL; `alsoDeployedBy` in namespace/name order. A steady fleet gives equal statuses.

pub mod events;
pub mod response;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kube::ResourceExt;

use super::qovery::is_uuid;
use super::size::capped;
use crate::crd::{ArgoCdInstance, ArgoCdInstanceStatus, KnownCluster, LinkedCluster};

/// At most this many other instances are named in one `alsoDeployedBy`
/// (`alsoDeployedByCount` counts them all).
pub const MAX_NAMED: usize = 10;

/// How an instance's destination is linked to the platform cluster.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Link {
    /// By this ClusterMapping.
    Mapping(String),
    /// The in-cluster destination, linked to `spec.agentCluster` with no mapping.
    Implicit,
    /// By `spec.autoLink`, through the ClusterProfile its identity names.
    Automatic,
}

impl Link {
    pub fn of(l: &LinkedCluster) -> Link {
        match (&l.mapping, &l.details.automatic) {
            (Some(m), _) => Link::Mapping(m.clone()),
            (None, Some(_)) => Link::Automatic,
            (None, None) => Link::Implicit,
        }
    }
}

/// One destination of an instance that links to the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    pub argocd_cluster_url: String,
    pub link: Link,
    pub applications_count: u64,
}

/// One instance deploying to a platform cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deployment {
    pub namespace: String,
    pub name: String,
    /// `spec.url`.
    pub argocd_url: String,
    /// The applications of its destinations to this cluster, summed.
    pub applications_count: u64,
    /// By URL.
    pub destinations: Vec<Destination>,
}

/// One platform cluster and the instances deploying to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterDeployments {
    /// Its id in lower case.
    pub cluster: KnownCluster,
    /// By namespace, then name; never empty.
    pub instances: Vec<Deployment>,
}

/// How a platform cluster is told apart: its id in lower case, when it is a UUID.
pub fn cluster_key(id: &str) -> Option<String> {
    key(id).map(Cow::into_owned)
}

/// [`cluster_key`], borrowed when the id is already in lower case.
fn key(id: &str) -> Option<Cow<'_, str>> {
    if !is_uuid(id) {
        return None;
    }
    Some(match id.bytes().any(|b| b.is_ascii_uppercase()) {
        true => Cow::Owned(id.to_ascii_lowercase()),
        false => Cow::Borrowed(id),
    })
}

/// How an instance is named in `alsoDeployedBy`, events and logs.
pub fn instance_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// Every platform cluster the statuses of `instances` link a destination to, with the
/// instances deploying to it (see the module's rules).
pub fn clusters<'a>(instances: impl IntoIterator<Item = &'a ArgoCdInstance>) -> Vec<ClusterDeployments> {
    let mut ordered: Vec<(String, String, &ArgoCdInstance)> =
        instances.into_iter().map(|i| (i.namespace().unwrap_or_default(), i.name_any(), i)).collect();
    ordered.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    let mut by_id: BTreeMap<String, ClusterDeployments> = BTreeMap::new();
    for (namespace, name, instance) in ordered {
        let Some(status) = &instance.status else { continue };
        // This instance's destinations, per cluster.
        let mut mine: BTreeMap<String, Vec<&LinkedCluster>> = BTreeMap::new();
        for l in &status.linked_clusters {
            if let Some(k) = cluster_key(&l.cluster.id) {
                mine.entry(k).or_default().push(l);
            }
        }
        for (id, mut links) in mine {
            links.sort_by(|a, b| {
                (&a.argocd_cluster_url, &a.mapping).cmp(&(&b.argocd_cluster_url, &b.mapping))
            });
            let Some(first) = links.first() else { continue };
            let entry = by_id.entry(id.clone()).or_insert_with(|| ClusterDeployments {
                cluster: KnownCluster { id, ..first.cluster.clone() },
                instances: Vec::new(),
            });
            entry.instances.push(Deployment {
                namespace: namespace.clone(),
                name: name.clone(),
                argocd_url: instance.spec.url.clone(),
                applications_count: links.iter().fold(0u64, |n, l| n.saturating_add(l.applications_count)),
                destinations: links
                    .iter()
                    .map(|l| Destination {
                        argocd_cluster_url: l.argocd_cluster_url.clone(),
                        link: Link::of(l),
                        applications_count: l.applications_count,
                    })
                    .collect(),
            });
        }
    }
    let mut out: Vec<ClusterDeployments> = by_id.into_values().collect();
    out.sort_by(|a, b| (&a.cluster.name, &a.cluster.id).cmp(&(&b.cluster.name, &b.cluster.id)));
    out
}

/// Fills in, on each linked destination of `status` (the status being written for
/// `instance`), the other instances of `fleet` whose statuses link a destination to the same
/// platform cluster, and `summary.sharedClusters`. `fleet` may hold `instance` itself (it is
/// skipped, by namespace and name). Only the other instances' `linkedClusters[].cluster.id`
/// are read, never their `alsoDeployedBy`, so one instance's write cannot move another's.
///
/// The names count towards the list's byte budget: the linked list is capped again after, and
/// `truncated` set when that cut it.
pub fn share(status: &mut ArgoCdInstanceStatus, instance: &ArgoCdInstance, fleet: &[Arc<ArgoCdInstance>]) {
    let (namespace, name) = (instance.namespace().unwrap_or_default(), instance.name_any());
    let mine: BTreeSet<String> =
        status.linked_clusters.iter().filter_map(|l| cluster_key(&l.cluster.id)).collect();
    let mut others: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    if !mine.is_empty() {
        for other in fleet {
            let Some(s) = &other.status else { continue };
            let (ns, n) = (other.namespace().unwrap_or_default(), other.name_any());
            if ns == namespace && n == name {
                continue;
            }
            for l in &s.linked_clusters {
                if let Some(k) = key(&l.cluster.id)
                    && let Some(id) = mine.get(k.as_ref())
                {
                    others.entry(id.as_str()).or_default().insert(instance_key(&ns, &n));
                }
            }
        }
    }
    for l in &mut status.linked_clusters {
        let names = key(&l.cluster.id).and_then(|k| others.get(k.as_ref()));
        l.also_deployed_by = names.map(|n| n.iter().take(MAX_NAMED).cloned().collect()).unwrap_or_default();
        l.also_deployed_by_count = names.map_or(0, |n| n.len() as u64);
    }
    if let Some(summary) = status.summary.as_mut() {
        summary.shared_clusters = others.len() as u64;
    }
    let (kept, cut) = capped(&status.linked_clusters);
    if cut {
        status.linked_clusters = kept;
        status.truncated = true;
    }
}

#[cfg(test)]
mod tests;
