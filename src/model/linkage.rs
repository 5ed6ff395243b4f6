//! Linking: which ClusterMappings hold which destinations, which conflict, and which point at
//! nothing. Pure.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;

use super::destinations::{DestinationInfo, Destinations};
use super::url::normalize_url;
use crate::argocd::tally::Count;
use crate::argocd::types::{Health, Sync};
use crate::crd::{
    AgentStatus, DestinationDetails, HealthCounts, IN_CLUSTER_URL, IdentityLabel, KnownCluster,
    LinkedCluster, MappingState, StatusCounts, SyncCounts, UnlinkedCluster,
};

/// What the linker needs of a ClusterMapping.
#[derive(Clone, Debug)]
pub struct MappingInput<'a> {
    pub name: &'a str,
    pub url: &'a str,
    pub created: Option<Timestamp>,
    pub cluster: &'a KnownCluster,
}

/// The state one ClusterMapping ends in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MappingOutcome {
    pub state: MappingState,
    pub argocd_cluster_name: Option<String>,
    pub applications_count: Option<u64>,
    pub conflicts_with: Option<String>,
}

/// The result of linking destinations to mappings, lists sorted by URL (or name).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Linkage {
    pub linked: Vec<LinkedCluster>,
    pub unlinked: Vec<UnlinkedCluster>,
    pub orphaned: Vec<String>,
    pub mappings: BTreeMap<String, MappingOutcome>,
}

/// Links every destination to the ClusterMapping with an equal normalised URL. Several
/// mappings for one URL: the oldest (creation time, then name) holds it and the others are
/// `Conflict`. No mapping: unlinked, except Argo CD's in-cluster destination, which links
/// implicitly to the agent cluster. A mapping whose URL is no destination is `Orphaned`, or
/// `Unverified` when `clusters_hidden` (Argo CD keeps part of its cluster list from the token,
/// so a registered cluster without applications would look orphaned).
pub fn link(
    dest: &Destinations,
    mappings: &[MappingInput<'_>],
    agent: &KnownCluster,
    clusters_hidden: bool,
) -> Linkage {
    let mut claims: BTreeMap<String, Vec<&MappingInput<'_>>> = BTreeMap::new();
    for m in mappings {
        claims.entry(normalize_url(m.url)).or_default().push(m);
    }
    let mut out = Linkage::default();
    // Destination URL → the mapping that holds it.
    let mut holders: HashMap<String, &MappingInput<'_>> = HashMap::new();
    for (url, mut claimants) in claims {
        // Oldest first; a missing creation time sorts last, then by name for a stable order.
        claimants.sort_by(|a, b| {
            (a.created.is_none(), a.created, a.name).cmp(&(b.created.is_none(), b.created, b.name))
        });
        let holder = claimants[0];
        let found = dest.by_url.get(&url);
        for loser in &claimants[1..] {
            out.mappings.insert(
                loser.name.to_string(),
                MappingOutcome {
                    state: MappingState::Conflict,
                    argocd_cluster_name: found.and_then(|d| d.name.clone()),
                    applications_count: None,
                    conflicts_with: Some(holder.name.to_string()),
                },
            );
        }
        match found {
            Some(d) => {
                holders.insert(url, holder);
                out.mappings.insert(
                    holder.name.to_string(),
                    MappingOutcome {
                        state: MappingState::Linked,
                        argocd_cluster_name: d.name.clone(),
                        applications_count: Some(d.applications),
                        conflicts_with: None,
                    },
                );
            }
            None if clusters_hidden => {
                out.mappings.insert(
                    holder.name.to_string(),
                    MappingOutcome {
                        state: MappingState::Unverified,
                        argocd_cluster_name: None,
                        applications_count: None,
                        conflicts_with: None,
                    },
                );
            }
            None => {
                out.orphaned.push(holder.name.to_string());
                out.mappings.insert(
                    holder.name.to_string(),
                    MappingOutcome {
                        state: MappingState::Orphaned,
                        argocd_cluster_name: None,
                        applications_count: None,
                        conflicts_with: None,
                    },
                );
            }
        }
    }

    let in_cluster = normalize_url(IN_CLUSTER_URL);
    for d in dest.by_url.values() {
        let linked_to = match holders.get(&d.url) {
            Some(m) => Some((Some(m.name.to_string()), m.cluster.clone())),
            None if d.url == in_cluster => Some((None, agent.clone())),
            None => None,
        };
        match linked_to {
            Some((mapping, cluster)) => out.linked.push(LinkedCluster {
                argocd_cluster_url: d.url.clone(),
                argocd_cluster_name: d.name.clone(),
                mapping,
                cluster,
                applications_count: d.applications,
                argocd_connection_state: d.connection_state.clone(),
                details: details(d, clusters_hidden),
            }),
            None => out.unlinked.push(UnlinkedCluster {
                argocd_cluster_url: d.url.clone(),
                argocd_cluster_name: d.name.clone(),
                applications_count: d.applications,
                argocd_connection_state: d.connection_state.clone(),
                details: details(d, clusters_hidden),
            }),
        }
    }
    out.orphaned.sort();
    out
}

/// A destination's identity, agent, dangling mark and counts by status, as status shows them.
/// Dangling is not told while the token cannot see the whole cluster list.
fn details(d: &DestinationInfo, clusters_hidden: bool) -> DestinationDetails {
    DestinationDetails {
        identity: d
            .identity
            .iter()
            .map(|(k, v)| IdentityLabel { key: k.to_string(), value: v.to_string() })
            .collect(),
        argocd_agent: d
            .agent
            .as_ref()
            .map(|a| AgentStatus { name: a.name.clone(), connection: a.connection.clone() }),
        dangling: !clusters_hidden && !d.listed && d.applications > 0,
        applications_by_status: Some(status_counts(&d.by_status)),
    }
}

/// Counts by status as status shows them.
pub fn status_counts(c: &Count) -> StatusCounts {
    let h = |x: Health| c.health[x as usize];
    let s = |x: Sync| c.sync[x as usize];
    StatusCounts {
        health: HealthCounts {
            healthy: h(Health::Healthy),
            progressing: h(Health::Progressing),
            degraded: h(Health::Degraded),
            suspended: h(Health::Suspended),
            missing: h(Health::Missing),
            unknown: h(Health::Unknown),
        },
        sync: SyncCounts {
            synced: s(Sync::Synced),
            out_of_sync: s(Sync::OutOfSync),
            unknown: s(Sync::Unknown),
        },
    }
}

impl Linkage {
    /// Drops the counts by status (health was not asked for: they would all be `Unknown`).
    pub fn without_health(mut self) -> Self {
        for l in &mut self.linked {
            l.details.applications_by_status = None;
        }
        for u in &mut self.unlinked {
            u.details.applications_by_status = None;
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{app, cluster, known};
    use crate::model::destinations::destinations;

    fn ts(s: &str) -> Option<Timestamp> {
        Some(s.parse().expect("timestamp"))
    }

    #[test]
    fn link_linked_unlinked_orphaned() {
        let clusters =
            vec![cluster("https://10.0.0.1:6443", "prod-eks"), cluster("https://old.example.com", "old")];
        let apps = vec![app("argocd", "a", Some("https://10.0.0.1:6443"), None)];
        let d = destinations(&clusters, &apps);
        let prod = known("Prod EKS");
        let gke = known("Legacy GKE");
        let mappings = vec![
            MappingInput {
                name: "prod-eks",
                url: "HTTPS://10.0.0.1:6443/",
                created: ts("2026-01-01T00:00:00Z"),
                cluster: &prod,
            },
            MappingInput {
                name: "legacy-gke",
                url: "https://gke.example.com",
                created: ts("2026-01-01T00:00:00Z"),
                cluster: &gke,
            },
        ];
        let l = link(&d, &mappings, &known("Agent"), false);
        assert_eq!(l.linked.len(), 1);
        assert_eq!(l.linked[0].mapping.as_deref(), Some("prod-eks"));
        assert_eq!(l.linked[0].applications_count, 1);
        assert_eq!(l.linked[0].argocd_cluster_name.as_deref(), Some("prod-eks"));
        assert_eq!(l.unlinked.len(), 1);
        assert_eq!(l.unlinked[0].argocd_cluster_url, "https://old.example.com");
        assert_eq!(l.orphaned, vec!["legacy-gke".to_string()]);
        assert_eq!(l.mappings["prod-eks"].state, MappingState::Linked);
        assert_eq!(l.mappings["prod-eks"].applications_count, Some(1));
        assert_eq!(l.mappings["legacy-gke"].state, MappingState::Orphaned);
    }

    #[test]
    fn conflict_oldest_wins_then_name() {
        let d = destinations(&[cluster("https://a", "a")], &[]);
        let c = known("C");
        let mappings = vec![
            MappingInput {
                name: "young",
                url: "https://a",
                created: ts("2026-02-01T00:00:00Z"),
                cluster: &c,
            },
            MappingInput {
                name: "old-b",
                url: "https://a/",
                created: ts("2026-01-01T00:00:00Z"),
                cluster: &c,
            },
            MappingInput {
                name: "old-a",
                url: "https://A",
                created: ts("2026-01-01T00:00:00Z"),
                cluster: &c,
            },
        ];
        let l = link(&d, &mappings, &known("Agent"), false);
        assert_eq!(l.mappings["old-a"].state, MappingState::Linked);
        assert_eq!(l.mappings["old-b"].state, MappingState::Conflict);
        assert_eq!(l.mappings["old-b"].conflicts_with.as_deref(), Some("old-a"));
        assert_eq!(l.mappings["young"].state, MappingState::Conflict);
        assert_eq!(l.linked.len(), 1);
        assert_eq!(l.linked[0].mapping.as_deref(), Some("old-a"));
    }

    #[test]
    fn conflict_on_a_url_argocd_does_not_know() {
        let d = destinations(&[], &[]);
        let c = known("C");
        let mappings = vec![
            MappingInput { name: "a", url: "https://x", created: ts("2026-01-01T00:00:00Z"), cluster: &c },
            MappingInput { name: "b", url: "https://x", created: ts("2026-01-02T00:00:00Z"), cluster: &c },
        ];
        let l = link(&d, &mappings, &known("Agent"), false);
        assert_eq!(l.mappings["a"].state, MappingState::Orphaned);
        assert_eq!(l.mappings["b"].state, MappingState::Conflict);
        assert_eq!(l.orphaned, vec!["a".to_string()]);
    }

    #[test]
    fn in_cluster_links_implicitly_to_agent_unless_mapped() {
        let clusters = vec![cluster("https://kubernetes.default.svc", "in-cluster")];
        let apps = vec![app("argocd", "g", Some("https://kubernetes.default.svc/"), None)];
        let d = destinations(&clusters, &apps);
        let agent = known("Agent");
        let l = link(&d, &[], &agent, false);
        assert_eq!(l.linked.len(), 1);
        assert_eq!(l.linked[0].mapping, None);
        assert_eq!(l.linked[0].cluster, agent);
        assert_eq!(l.linked[0].applications_count, 1);

        let other = known("Explicit");
        let m = [MappingInput { name: "explicit", url: IN_CLUSTER_URL, created: None, cluster: &other }];
        let l = link(&d, &m, &agent, false);
        assert_eq!(l.linked[0].mapping.as_deref(), Some("explicit"));
        assert_eq!(l.linked[0].cluster, other);
    }

    #[test]
    fn agent_urls_link_separately() {
        let clusters = vec![
            cluster("https://proxy:9090?agentName=prod", "prod"),
            cluster("https://proxy:9090?agentName=staging", "staging"),
        ];
        let d = destinations(&clusters, &[]);
        let c = known("Prod");
        let m = [MappingInput {
            name: "prod",
            url: "https://proxy:9090/?agentName=prod",
            created: None,
            cluster: &c,
        }];
        let l = link(&d, &m, &known("Agent"), false);
        assert_eq!(l.linked.len(), 1);
        assert_eq!(l.unlinked.len(), 1);
        assert_eq!(l.unlinked[0].argocd_cluster_url, "https://proxy:9090?agentName=staging");
    }
}
