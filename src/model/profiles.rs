//! ClusterProfiles as attribution reads them: what a mapping that references one shows
//! (health, Kubernetes version, display name), where its destination URL and platform cluster
//! come from when the mapping leaves them out, and which profile an Argo CD cluster's identity
//! names. Pure.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::de::DeserializeOwned;

use super::url::normalize_url;
use crate::argocd::identity::AGENT_NAME;
use crate::crd::cluster_profile::{CONTROL_PLANE_HEALTHY, ClusterProfile, MEMBER_ID_LABEL};
use crate::crd::{CloudProvider, KnownCluster, KubernetesType};
use crate::text::printable;

/// The annotations on a ClusterProfile that give the platform's cluster (Qovery's fields)
/// when a ClusterMapping or an automatic link takes it from the profile.
pub const CLUSTER_ID_ANNOTATION: &str = "argomap.io/cluster-id";
/// Defaults to the profile's `spec.displayName`, then its name.
pub const CLUSTER_NAME_ANNOTATION: &str = "argomap.io/cluster-name";
/// One of the CRD's `cloudProvider` values (`AWS`, `GCP`, …).
pub const CLOUD_PROVIDER_ANNOTATION: &str = "argomap.io/cloud-provider";
/// One of `MANAGED` (the default), `SELF_MANAGED`, `PARTIALLY_MANAGED`.
pub const CLUSTER_TYPE_ANNOTATION: &str = "argomap.io/cluster-type";

/// Longest text kept of a profile's field.
const TEXT_CAP: usize = 253;
/// Servers kept of one profile.
const SERVERS_CAP: usize = 8;

/// One ClusterProfile, reduced to what argomap shows and links by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    pub namespace: String,
    pub name: String,
    pub created: Option<Timestamp>,
    pub display_name: Option<String>,
    pub kubernetes_version: Option<String>,
    /// `ControlPlaneHealthy`: `None` when the profile has no such condition (or `Unknown`).
    pub healthy: Option<bool>,
    /// Its access providers' servers, normalised.
    pub servers: Vec<String>,
    pub member_id: Option<String>,
    /// The platform's cluster, from the `argomap.io/*` annotations; `None` unless the id and
    /// the cloud provider are both there and valid.
    pub cluster: Option<KnownCluster>,
}

fn text(s: Option<&String>) -> Option<String> {
    s.map(|s| printable(s.trim(), TEXT_CAP)).filter(|s| !s.is_empty())
}

/// `value` read as the CRD's enum (its serialized form), if it is one.
fn from_wire<T: DeserializeOwned>(value: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(value.trim().to_string())).ok()
}

impl Profile {
    pub fn from_object(p: &ClusterProfile) -> Self {
        let meta = &p.metadata;
        let status = p.status.clone().unwrap_or_default();
        let healthy =
            status.conditions.iter().find(|c| c.type_ == CONTROL_PLANE_HEALTHY).and_then(|c| {
                match c.status.as_str() {
                    "True" => Some(true),
                    "False" => Some(false),
                    _ => None,
                }
            });
        let mut servers: Vec<String> = status
            .access_providers
            .iter()
            .chain(&status.credential_providers)
            .filter_map(|a| a.cluster.as_ref()?.server.as_deref())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| printable(&normalize_url(s), 2048))
            .collect();
        servers.dedup();
        servers.truncate(SERVERS_CAP);
        let annotations = meta.annotations.as_ref();
        let annotation = |k: &str| text(annotations.and_then(|a| a.get(k)));
        let name = meta.name.clone().unwrap_or_default();
        let display_name = text(p.spec.display_name.as_ref());
        let cluster = (|| {
            let id = annotation(CLUSTER_ID_ANNOTATION).filter(|id| super::qovery::is_uuid(id))?;
            let cloud_provider: CloudProvider = from_wire(&annotation(CLOUD_PROVIDER_ANNOTATION)?)?;
            let kind = match annotation(CLUSTER_TYPE_ANNOTATION) {
                Some(t) => from_wire::<KubernetesType>(&t)?,
                None => KubernetesType::default(),
            };
            let name = annotation(CLUSTER_NAME_ANNOTATION)
                .or_else(|| display_name.clone())
                .unwrap_or_else(|| printable(&name, TEXT_CAP));
            Some(KnownCluster { id, name, cloud_provider, kind })
        })();
        Profile {
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: printable(&name, TEXT_CAP),
            created: meta.creation_timestamp.as_ref().map(|t| t.0),
            display_name,
            kubernetes_version: text(status.version.as_ref().and_then(|v| v.kubernetes.as_ref())),
            healthy,
            servers,
            member_id: text(meta.labels.as_ref().and_then(|l| l.get(MEMBER_ID_LABEL))),
            cluster,
        }
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Whether the Argo CD identity `key: value` names this profile.
    pub fn is_named_by(&self, key: &str, value: &str) -> bool {
        match key {
            // The ClusterProfile integration for Argo CD: `<namespace>-<name>`.
            "argocd.argoproj.io/cluster-profile-origin" => {
                value.strip_prefix(self.namespace.as_str()).and_then(|r| r.strip_prefix('-'))
                    == Some(self.name.as_str())
            }
            // GKE's syncer: `<namespace>/<name>`.
            "clusterprofile.x-k8s.io/origin" => value.split_once('/') == Some((&self.namespace, &self.name)),
            MEMBER_ID_LABEL => self.member_id.as_deref() == Some(value),
            // Open Cluster Management and argocd-agent name the cluster as its profile is named.
            "apps.open-cluster-management.io/cluster-name" | AGENT_NAME => self.name == value,
            _ => false,
        }
    }
}

/// Which profile an identity names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Named<'a> {
    None,
    /// One profile, or the oldest of several (the others in `duplicates`).
    One {
        profile: &'a Profile,
        duplicates: Vec<&'a Profile>,
    },
    /// Several, the oldest created at the same time: the SIG's rule links none.
    Tie(Vec<&'a Profile>),
}

/// Every ClusterProfile argomap sees, by `namespace/name`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Profiles {
    by_key: BTreeMap<String, Profile>,
}

impl Profiles {
    pub fn new(profiles: impl IntoIterator<Item = Profile>) -> Self {
        Profiles { by_key: profiles.into_iter().map(|p| (p.key(), p)).collect() }
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<&Profile> {
        self.by_key.get(&format!("{namespace}/{name}"))
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// The profile the identity `key: value` names. Several: the oldest wins and the others
    /// are duplicates; a tie of the oldest names none (the Cluster Inventory API's rule).
    pub fn named_by(&self, key: &str, value: &str) -> Named<'_> {
        let mut found: Vec<&Profile> = self.by_key.values().filter(|p| p.is_named_by(key, value)).collect();
        // Oldest first; no creation time sorts last.
        found.sort_by_key(|p| (p.created.is_none(), p.created, p.key()));
        match found.as_slice() {
            [] => Named::None,
            [only] => Named::One { profile: only, duplicates: Vec::new() },
            [first, second, ..] if first.created == second.created => Named::Tie(found),
            [first, rest @ ..] => Named::One { profile: first, duplicates: rest.to_vec() },
        }
    }
}

#[cfg(test)]
mod tests;
