//! Where a ClusterMapping's destination URL and platform cluster come from: its spec, or the
//! ClusterProfile it references. Pure.

use super::destinations::Destinations;
use super::profiles::{Profile, Profiles};
use super::url::normalize_url;
use crate::crd::{ClusterMapping, ClusterProfileStatus, KnownCluster};

/// One mapping's URL and cluster, as far as they can be told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// Normalised.
    pub url: Option<String>,
    /// Whether the URL came from the profile (status then shows it).
    pub url_from_profile: bool,
    pub cluster: Option<KnownCluster>,
    /// The referenced profile as status shows it.
    pub profile: Option<ClusterProfileStatus>,
    /// Why the URL or the cluster is missing.
    pub problem: Option<String>,
}

impl Resolved {
    /// A mapping that writes its URL (already normalised) and cluster itself, no profile.
    pub fn written(url: &str, cluster: Option<KnownCluster>) -> Self {
        Resolved {
            url: Some(url.to_string()),
            url_from_profile: false,
            cluster,
            profile: None,
            problem: None,
        }
    }
}

/// `m`'s URL and cluster: the spec's, else the profile's (`profiles`), else, for the URL, the
/// one destination of `destinations` whose Argo CD identity names the profile.
pub fn resolve(m: &ClusterMapping, profiles: &Profiles, destinations: Option<&Destinations>) -> Resolved {
    let spec = &m.spec;
    let r = spec.cluster_profile_ref.as_ref();
    let profile = r.and_then(|r| profiles.get(&r.namespace, &r.name));
    let view = r.map(|r| ClusterProfileStatus {
        namespace: r.namespace.clone(),
        name: r.name.clone(),
        found: profile.is_some(),
        display_name: profile.and_then(|p| p.display_name.clone()),
        kubernetes_version: profile.and_then(|p| p.kubernetes_version.clone()),
        control_plane_healthy: profile.map(|p| {
            match p.healthy {
                Some(true) => "True",
                Some(false) => "False",
                None => "Unknown",
            }
            .to_string()
        }),
    });
    let from_profile = match (&spec.argocd_cluster_url, profile) {
        (Some(_), _) | (None, None) => None,
        (None, Some(p)) => url_of(p, destinations),
    };
    let url = spec.argocd_cluster_url.as_deref().map(normalize_url).or(from_profile.clone());
    let cluster = spec.cluster.clone().or_else(|| profile.and_then(|p| p.cluster.clone()));
    let name = || r.map(|r| format!("ClusterProfile {}/{}", r.namespace, r.name)).unwrap_or_default();
    let problem = match (&url, &cluster, profile) {
        (Some(_), Some(_), _) => None,
        (_, _, None) => Some(format!("{} does not exist (or argomap does not read ClusterProfiles)", name())),
        (None, _, Some(_)) => Some(format!(
            "{} has no access provider server, and no Argo CD cluster's identity names it: set argocdClusterUrl",
            name()
        )),
        (Some(_), None, Some(_)) => Some(format!(
            "{} lacks the argomap.io/cluster-id and argomap.io/cloud-provider annotations: set cluster",
            name()
        )),
    };
    Resolved { url, url_from_profile: from_profile.is_some(), cluster, profile: view, problem }
}

/// The destination a profile stands for: one of its servers that Argo CD deploys to, else the
/// one destination whose identity names it, else its first server.
fn url_of(p: &Profile, destinations: Option<&Destinations>) -> Option<String> {
    let Some(d) = destinations else { return p.servers.first().cloned() };
    if let Some(s) = p.servers.iter().find(|s| d.by_url.contains_key(s.as_str())) {
        return Some(s.clone());
    }
    let named: Vec<&String> = d
        .by_url
        .values()
        .filter(|x| x.identity.iter().any(|(k, v)| p.is_named_by(k, v)))
        .map(|x| &x.url)
        .collect();
    match named.as_slice() {
        [only] => Some((*only).clone()),
        _ => p.servers.first().cloned(),
    }
}

#[cfg(test)]
mod tests;
