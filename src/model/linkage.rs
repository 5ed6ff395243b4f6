//! Linking: which ClusterMappings hold which destinations, which conflict, and which point at
//! nothing. Pure.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;

use super::destinations::{DestinationInfo, Destinations};
use super::profiles::{Named, Profile, Profiles};
use super::url::normalize_url;
use crate::argocd::tally::Count;
use crate::argocd::types::{Health, Sync};
use crate::crd::{
    AgentStatus, AutomaticLink, DestinationDetails, HealthCounts, IN_CLUSTER_URL, IdentityLabel,
    KnownCluster, LinkedCluster, MappingState, ProfileRef, StatusCounts, SuggestedMapping, SyncCounts,
    UnlinkedCluster,
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
                also_deployed_by: Vec::new(),
                also_deployed_by_count: 0,
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
        automatic: None,
        suggested_mapping: None,
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
    /// What ClusterProfiles say of the unlinked destinations: each whose identity names a
    /// profile gets a suggested mapping, and with `trusted` (`spec.autoLink.identityKeys`) one
    /// named by a trusted key, of a profile that gives the platform's cluster, is linked
    /// without a ClusterMapping. A key names the oldest of several profiles (the others are
    /// named in the note); a tie of the oldest links none.
    pub fn with_profiles(mut self, profiles: &Profiles, trusted: Option<&[String]>) -> Self {
        let mut unlinked = Vec::with_capacity(self.unlinked.len());
        for mut u in std::mem::take(&mut self.unlinked) {
            match by_identity(&u.details.identity, profiles, trusted) {
                Some(Found::Link { identity, profile, cluster, note, duplicates }) => {
                    self.linked.push(LinkedCluster {
                        argocd_cluster_url: u.argocd_cluster_url,
                        argocd_cluster_name: u.argocd_cluster_name,
                        mapping: None,
                        cluster,
                        applications_count: u.applications_count,
                        argocd_connection_state: u.argocd_connection_state,
                        also_deployed_by: Vec::new(),
                        also_deployed_by_count: 0,
                        details: DestinationDetails {
                            automatic: Some(AutomaticLink {
                                identity,
                                cluster_profile_ref: profile,
                                note,
                                duplicates,
                            }),
                            ..u.details
                        },
                    })
                }
                Some(Found::Suggest(s)) => {
                    u.details.suggested_mapping = Some(s);
                    unlinked.push(u);
                }
                None => unlinked.push(u),
            }
        }
        self.unlinked = unlinked;
        self.linked.sort_by(|a, b| a.argocd_cluster_url.cmp(&b.argocd_cluster_url));
        self
    }

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

/// What a destination's identity found among the profiles.
enum Found {
    Link {
        identity: IdentityLabel,
        profile: ProfileRef,
        cluster: KnownCluster,
        note: String,
        duplicates: Vec<String>,
    },
    Suggest(SuggestedMapping),
}

fn profile_ref(p: &Profile) -> ProfileRef {
    ProfileRef { namespace: p.namespace.clone(), name: p.name.clone() }
}

/// What the identity (most specific first) finds: a link by the first trusted key that names
/// one profile (or the oldest of several) giving the platform's cluster; else a suggestion
/// from the first key that names a profile; else, from GKE's origin annotation alone, the
/// profile it names.
fn by_identity(identity: &[IdentityLabel], profiles: &Profiles, trusted: Option<&[String]>) -> Option<Found> {
    let trusts = |id: &IdentityLabel| trusted.is_some_and(|t| t.contains(&id.key));
    for id in identity.iter().filter(|id| trusts(id)) {
        match profiles.named_by(&id.key, &id.value) {
            Named::One { profile, duplicates } if profile.cluster.is_some() => {
                return Some(Found::Link {
                    identity: id.clone(),
                    profile: profile_ref(profile),
                    cluster: profile.cluster.clone()?,
                    note: duplicates_note(&duplicates),
                    duplicates: keys(&duplicates),
                });
            }
            // A tie of a trusted key links nothing (the SIG's rule), whatever other keys say.
            Named::Tie(tied) => return Some(Found::Suggest(tie(id, &tied))),
            _ => {}
        }
    }
    for id in identity {
        let suggestion = |cluster_profile_ref: Option<ProfileRef>,
                          profile_gives_cluster: bool,
                          note: String,
                          duplicates: Vec<String>| {
            Some(Found::Suggest(SuggestedMapping {
                identity: id.clone(),
                cluster_profile_ref,
                profile_gives_cluster,
                note,
                duplicates,
            }))
        };
        match profiles.named_by(&id.key, &id.value) {
            Named::None => continue,
            Named::Tie(tied) => return Some(Found::Suggest(tie(id, &tied))),
            Named::One { profile, duplicates } => {
                let mut note = duplicates_note(&duplicates);
                if profile.cluster.is_none() {
                    note = join(
                        &note,
                        "the profile lacks the argomap.io/cluster-id and argomap.io/cloud-provider annotations",
                    );
                }
                return suggestion(
                    Some(profile_ref(profile)),
                    profile.cluster.is_some(),
                    note,
                    keys(&duplicates),
                );
            }
        }
    }
    // No profile seen: GKE's origin annotation still says which one (`<namespace>/<name>`).
    let origin = identity.iter().find(|i| i.key == "clusterprofile.x-k8s.io/origin")?;
    let (namespace, name) = origin.value.split_once('/')?;
    Some(Found::Suggest(SuggestedMapping {
        identity: origin.clone(),
        cluster_profile_ref: Some(ProfileRef { namespace: namespace.into(), name: name.into() }),
        profile_gives_cluster: false,
        note: "argomap sees no such ClusterProfile".into(),
        duplicates: Vec::new(),
    }))
}

fn duplicates_note(duplicates: &[&Profile]) -> String {
    if duplicates.is_empty() {
        return String::new();
    }
    let keys: Vec<String> = duplicates.iter().map(|p| p.key()).collect();
    format!("also named: {} (newer, not used)", keys.join(", "))
}

fn tie(id: &IdentityLabel, tied: &[&Profile]) -> SuggestedMapping {
    let tied = keys(tied);
    SuggestedMapping {
        identity: id.clone(),
        cluster_profile_ref: None,
        profile_gives_cluster: false,
        note: format!("ClusterProfiles {} were created at the same time: none is linked", tied.join(", ")),
        duplicates: tied,
    }
}

fn keys(profiles: &[&Profile]) -> Vec<String> {
    profiles.iter().map(|p| p.key()).collect()
}

fn join(a: &str, b: &str) -> String {
    if a.is_empty() { b.to_string() } else { format!("{a}; {b}") }
}

#[cfg(test)]
mod tests;
