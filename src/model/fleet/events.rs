//! The Warning Event of an instance that starts sharing a platform cluster with other
//! instances. Pure, like `model::events`, whose [`Transition`] it returns; the controller
//! publishes it with the instance's other transitions.

use std::collections::{BTreeMap, BTreeSet};

use super::cluster_key;
use crate::crd::{ArgoCdInstanceStatus, LinkedCluster};
use crate::model::events::{EventType, Transition};
use crate::text::printable;

/// The event's reason.
pub const CLUSTER_SHARED: &str = "ClusterSharedWithInstances";

/// At most this many clusters are named in one event.
pub const MAX_CLUSTERS_NAMED: usize = 10;

/// Longest cluster name in the note, in bytes (the schema admits 253).
const NAME_MAX: usize = 128;

/// `ClusterSharedWithInstances`, when a platform cluster linked in `next` has other instances
/// deploying to it (`alsoDeployedBy`) and had none in `prev`: one event per check, naming the
/// clusters and the other instances. Another instance joining a cluster already shared is no
/// news (status shows it).
pub fn shared(prev: Option<&ArgoCdInstanceStatus>, next: &ArgoCdInstanceStatus) -> Option<Transition> {
    let was: BTreeSet<String> = prev.map(shared_clusters).unwrap_or_default();
    let mut fresh: BTreeMap<String, &LinkedCluster> = BTreeMap::new();
    for l in next.linked_clusters.iter().filter(|l| !l.also_deployed_by.is_empty()) {
        if let Some(id) = cluster_key(&l.cluster.id).filter(|id| !was.contains(id)) {
            fresh.entry(id).or_insert(l);
        }
    }
    if fresh.is_empty() {
        return None;
    }
    let mut named: Vec<String> = fresh
        .iter()
        .take(MAX_CLUSTERS_NAMED)
        .map(|(id, l)| {
            let more = l.also_deployed_by_count.saturating_sub(l.also_deployed_by.len() as u64);
            let tail = if more > 0 { format!(" and {more} more") } else { String::new() };
            let name = printable(&l.cluster.name, NAME_MAX);
            format!("{name} ({id}) by {}{tail}", l.also_deployed_by.join(", "))
        })
        .collect();
    if fresh.len() > MAX_CLUSTERS_NAMED {
        named.push(format!(
            "and {} more clusters; see status.linkedClusters[].alsoDeployedBy",
            fresh.len() - MAX_CLUSTERS_NAMED
        ));
    }
    Some(Transition {
        type_: EventType::Warning,
        reason: CLUSTER_SHARED,
        action: "Check",
        note: format!(
            "other ArgoCdInstances also deploy to platform clusters this one deploys to: {}",
            named.join("; ")
        ),
    })
}

/// The platform clusters of `s` that other instances deploy to.
fn shared_clusters(s: &ArgoCdInstanceStatus) -> BTreeSet<String> {
    s.linked_clusters
        .iter()
        .filter(|l| !l.also_deployed_by.is_empty())
        .filter_map(|l| cluster_key(&l.cluster.id))
        .collect()
}
